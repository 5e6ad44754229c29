/*
 * sim-catalogue.c: loads and validates ollama-sim's model catalogue.
 *
 * A catalogue is {"models":[{...}, ...]}; every field is validated with a message
 * naming the model and the field, because users write these files by hand. Sizes
 * are byte counts or strings such as "4.1GB" (vd_parse_size). Digests and
 * modification times are derived from the name, so two runs report the same values.
 * Callers: ollama-sim's main (--models), the scheduler and API (lookups), tests.
 */
#include "sim-catalogue.h"

#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The built-in catalogue (installed models, then the pullable ones): keep identical to
 * sim/catalogues/default.json
 * (tests/test-sim-catalogue.c checks that). */
static const char sim_catalogue_default_json[] =
    "{\n"
    "  \"models\": [\n"
    "    {\"name\": \"smollm:360m\", \"file_size\": \"0.2GB\", \"footprint\": \"0.260GB\", "
    "\"family\": \"llama\", \"parameter_size\": \"362M\", \"quantization_level\": \"Q4_0\", "
    "\"capabilities\": [\"completion\"], \"embedding_length\": 960, \"context_length\": 2048, "
    "\"vocab_size\": 49152, \"block_count\": 32, \"head_count\": 15, \"head_count_kv\": 5, "
    "\"tokens_per_second_gpu\": "
    "250, \"tokens_per_second_cpu\": 60},\n"
    "    {\"name\": \"all-minilm:latest\", \"file_size\": \"0.09GB\", \"footprint\": \"0.121GB\", "
    "\"family\": \"bert\", \"parameter_size\": \"23M\", \"quantization_level\": \"F16\", "
    "\"capabilities\": [\"embedding\"], \"embedding_length\": 384, \"context_length\": 512, "
    "\"vocab_size\": 30522, \"block_count\": 6, \"head_count\": 12, \"head_count_kv\": 12, "
    "\"tokens_per_second_gpu\": "
    "2000, \"tokens_per_second_cpu\": 500},\n"
    "    {\"name\": \"nomic-embed-text:latest\", \"file_size\": \"0.27GB\", \"footprint\": "
    "\"0.338GB\", \"family\": \"nomic-bert\", \"parameter_size\": \"137M\", "
    "\"quantization_level\": \"F16\", \"capabilities\": [\"embedding\"], \"embedding_length\": "
    "768, \"context_length\": 2048, \"vocab_size\": 30522, \"block_count\": 12, \"head_count\": "
    "12, \"head_count_kv\": "
    "12, \"tokens_per_second_gpu\": 1500, \"tokens_per_second_cpu\": 300},\n"
    "    {\"name\": \"qwen2.5:0.5b\", \"file_size\": \"0.5GB\", \"footprint\": \"0.650GB\", "
    "\"family\": \"qwen2\", \"parameter_size\": \"494.03M\", \"quantization_level\": \"Q4_K_M\", "
    "\"capabilities\": [\"completion\", \"tools\"], \"embedding_length\": 896, \"context_length\": "
    "32768, \"vocab_size\": 151936, \"block_count\": 24, \"head_count\": 14, \"head_count_kv\": 2, "
    "\"tokens_per_second_gpu\": 220, \"tokens_per_second_cpu\": 50},\n"
    "    {\"name\": \"tinyllama:1.1b\", \"file_size\": \"0.6GB\", \"footprint\": \"0.750GB\", "
    "\"family\": \"llama\", \"parameter_size\": \"1B\", \"quantization_level\": \"Q4_0\", "
    "\"capabilities\": [\"completion\"], \"embedding_length\": 2048, \"context_length\": 2048, "
    "\"vocab_size\": 32000, \"block_count\": 22, \"head_count\": 32, \"head_count_kv\": 4, "
    "\"tokens_per_second_gpu\": "
    "180, \"tokens_per_second_cpu\": 35},\n"
    "    {\"name\": \"smollm:1.7b\", \"file_size\": \"1.0GB\", \"footprint\": \"1.300GB\", "
    "\"family\": \"llama\", \"parameter_size\": \"1.7B\", \"quantization_level\": \"Q4_0\", "
    "\"capabilities\": [\"completion\"], \"embedding_length\": 2048, \"context_length\": 2048, "
    "\"vocab_size\": 49152, \"block_count\": 24, \"head_count\": 32, \"head_count_kv\": 32, "
    "\"tokens_per_second_gpu\": "
    "150, \"tokens_per_second_cpu\": 25},\n"
    "    {\"name\": \"llama3.2:1b\", \"file_size\": \"1.3GB\", \"footprint\": \"1.625GB\", "
    "\"family\": \"llama\", \"parameter_size\": \"1.2B\", \"quantization_level\": \"Q8_0\", "
    "\"capabilities\": [\"completion\", \"tools\"], \"embedding_length\": 2048, "
    "\"context_length\": 131072, \"vocab_size\": 128256, \"block_count\": 16, \"head_count\": 32, "
    "\"head_count_kv\": 8, "
    "\"tokens_per_second_gpu\": 160, \"tokens_per_second_cpu\": 30},\n"
    "    {\"name\": \"gemma:2b\", \"file_size\": \"1.4GB\", \"footprint\": \"1.890GB\", "
    "\"family\": \"gemma\", \"parameter_size\": \"3B\", \"quantization_level\": \"Q4_0\", "
    "\"capabilities\": [\"completion\"], \"embedding_length\": 2048, \"context_length\": 8192, "
    "\"vocab_size\": 256000, \"block_count\": 18, \"head_count\": 8, \"head_count_kv\": 1, "
    "\"tokens_per_second_gpu\": 140, "
    "\"tokens_per_second_cpu\": 22},\n"
    "    {\"name\": \"qwen2.5:1.5b\", \"file_size\": \"1.5GB\", \"footprint\": \"1.950GB\", "
    "\"family\": \"qwen2\", \"parameter_size\": \"1.5B\", \"quantization_level\": \"Q4_K_M\", "
    "\"capabilities\": [\"completion\", \"tools\"], \"embedding_length\": 1536, "
    "\"context_length\": 32768, \"vocab_size\": 151936, \"block_count\": 28, \"head_count\": 12, "
    "\"head_count_kv\": 2, "
    "\"tokens_per_second_gpu\": 130, \"tokens_per_second_cpu\": 20},\n"
    "    {\"name\": \"phi3:mini\", \"file_size\": \"2.2GB\", \"footprint\": \"2.640GB\", "
    "\"family\": \"phi3\", \"parameter_size\": \"3.8B\", \"quantization_level\": \"Q4_0\", "
    "\"capabilities\": [\"completion\"], \"embedding_length\": 3072, \"context_length\": 131072, "
    "\"vocab_size\": 32064, \"block_count\": 32, \"head_count\": 32, \"head_count_kv\": 32, "
    "\"tokens_per_second_gpu\": "
    "100, \"tokens_per_second_cpu\": 12}\n"
    "  ],\n"
    "  \"pullable\": [\n"
    "    {\"name\": \"llama3.2:3b\", \"file_size\": \"2.0GB\", "
    "\"footprint\": \"2.500GB\", \"family\": \"llama\", "
    "\"parameter_size\": \"3.2B\", \"quantization_level\": \"Q4_K_M\", "
    "\"capabilities\": [\"completion\", \"tools\"], \"embedding_length\": 3072, "
    "\"context_length\": 131072, \"vocab_size\": 128256, \"block_count\": 28, "
    "\"head_count\": 24, \"head_count_kv\": 8, \"tokens_per_second_gpu\": 110, "
    "\"tokens_per_second_cpu\": 15},\n"
    "    {\"name\": \"qwen2.5:3b\", \"file_size\": \"1.9GB\", "
    "\"footprint\": \"2.400GB\", \"family\": \"qwen2\", "
    "\"parameter_size\": \"3.1B\", \"quantization_level\": \"Q4_K_M\", "
    "\"capabilities\": [\"completion\", \"tools\"], \"embedding_length\": 2048, "
    "\"context_length\": 32768, \"vocab_size\": 151936, \"block_count\": 36, "
    "\"head_count\": 16, \"head_count_kv\": 2, \"tokens_per_second_gpu\": 115, "
    "\"tokens_per_second_cpu\": 16},\n"
    "    {\"name\": \"mxbai-embed-large:latest\", \"file_size\": \"0.67GB\", "
    "\"footprint\": \"0.840GB\", \"family\": \"bert\", \"parameter_size\": \"334M\", "
    "\"quantization_level\": \"F16\", \"capabilities\": [\"embedding\"], "
    "\"embedding_length\": 1024, \"context_length\": 512, \"vocab_size\": 30522, "
    "\"block_count\": 24, \"head_count\": 16, \"head_count_kv\": 16, "
    "\"tokens_per_second_gpu\": 1200, \"tokens_per_second_cpu\": 250}\n"
    "  ]\n"
    "}\n";

static const struct {
	const char *name;
	unsigned bit;
} sim_capability_names[] = {
    {"completion", SIM_CAP_COMPLETION}, {"embedding", SIM_CAP_EMBEDDING},
    {"vision", SIM_CAP_VISION},		{"tools", SIM_CAP_TOOLS},
    {"thinking", SIM_CAP_THINKING},	{"insert", SIM_CAP_INSERT},
};

static int
sim_catalogue_size_field(json_t *obj, const char *model, const char *key, uint64_t *out,
			 char **cause)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return vd_fail(cause, -EINVAL, "model \"%s\": missing field \"%s\"", model, key);
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		char *why = NULL;
		if (vd_parse_size(json_string_value(v), out, &why) == 0 && *out > 0) {
			free(why);
			return 0;
		}
		int rc = vd_fail(cause, -EINVAL, "model \"%s\": field \"%s\": %s", model, key,
				 why != NULL ? why : "must be a positive size");
		free(why);
		return rc;
	}
	return vd_fail(cause, -EINVAL,
		       "model \"%s\": field \"%s\" must be a positive byte count or a size string",
		       model, key);
}

static int
sim_catalogue_int_field(json_t *obj, const char *model, const char *key, int64_t min, int64_t *out,
			char **cause)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return vd_fail(cause, -EINVAL, "model \"%s\": missing field \"%s\"", model, key);
	if (!json_is_integer(v) || json_integer_value(v) < min)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": field \"%s\" must be an integer >= %lld", model, key,
			       (long long)min);
	*out = json_integer_value(v);
	return 0;
}

static int
sim_catalogue_rate_field(json_t *obj, const char *model, const char *key, double *out, char **cause)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return vd_fail(cause, -EINVAL, "model \"%s\": missing field \"%s\"", model, key);
	if (!json_is_number(v) || json_number_value(v) <= 0)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": field \"%s\" must be a positive number", model, key);
	*out = json_number_value(v);
	return 0;
}

static int
sim_catalogue_string_field(json_t *obj, const char *model, const char *key, char **out,
			   char **cause)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return vd_fail(cause, -EINVAL, "model \"%s\": missing field \"%s\"", model, key);
	if (!json_is_string(v) || json_string_length(v) == 0)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": field \"%s\" must be a non-empty string", model, key);
	*out = xstrdup(json_string_value(v));
	return 0;
}

static void
sim_model_cleanup(struct sim_model *m)
{
	free(m->name);
	free(m->family);
	free(m->parameter_size);
	free(m->quantization_level);
}

static int
sim_catalogue_parse_model(json_t *obj, size_t index, struct sim_model *m, char **cause)
{
	if (!json_is_object(obj))
		return vd_fail(cause, -EINVAL, "models[%zu] must be an object", index);
	json_t *jname = json_object_get(obj, "name");
	if (!json_is_string(jname) || json_string_length(jname) == 0)
		return vd_fail(cause, -EINVAL,
			       "models[%zu]: field \"name\" must be a non-empty string", index);
	const char *name = json_string_value(jname);
	if (strchr(name, ' ') != NULL || strchr(name, '"') != NULL)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": names cannot contain spaces or quotes", name);
	m->name = strchr(name, ':') != NULL ? xstrdup(name) : xasprintf("%s:latest", name);
	int rc;
	if ((rc = sim_catalogue_size_field(obj, name, "file_size", &m->file_bytes, cause)) < 0 ||
	    (rc = sim_catalogue_size_field(obj, name, "footprint", &m->footprint_bytes, cause)) <
		0 ||
	    (rc = sim_catalogue_string_field(obj, name, "family", &m->family, cause)) < 0 ||
	    (rc = sim_catalogue_string_field(obj, name, "parameter_size", &m->parameter_size,
					     cause)) < 0 ||
	    (rc = sim_catalogue_string_field(obj, name, "quantization_level",
					     &m->quantization_level, cause)) < 0 ||
	    (rc = sim_catalogue_int_field(obj, name, "context_length", 1, &m->context_length,
					  cause)) < 0 ||
	    (rc = sim_catalogue_int_field(obj, name, "embedding_length", 1, &m->embedding_length,
					  cause)) < 0 ||
	    (rc = sim_catalogue_int_field(obj, name, "vocab_size", 1, &m->vocab_size, cause)) < 0 ||
	    (rc = sim_catalogue_int_field(obj, name, "block_count", 1, &m->block_count, cause)) <
		0 ||
	    (rc = sim_catalogue_int_field(obj, name, "head_count", 1, &m->head_count, cause)) < 0 ||
	    (rc = sim_catalogue_int_field(obj, name, "head_count_kv", 1, &m->head_count_kv,
					  cause)) < 0 ||
	    (rc = sim_catalogue_rate_field(obj, name, "tokens_per_second_gpu", &m->gpu_tokens_per_s,
					   cause)) < 0 ||
	    (rc = sim_catalogue_rate_field(obj, name, "tokens_per_second_cpu", &m->cpu_tokens_per_s,
					   cause)) < 0)
		return rc;
	if (m->footprint_bytes < m->file_bytes)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": footprint must be at least file_size (a loaded model "
			       "takes more memory than its file)",
			       name);
	json_t *caps = json_object_get(obj, "capabilities");
	if (!json_is_array(caps) || json_array_size(caps) == 0)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": field \"capabilities\" must be a non-empty array",
			       name);
	size_t i;
	json_t *c;
	json_array_foreach(caps, i, c)
	{
		unsigned bit = 0;
		for (size_t k = 0; k < VD_ARRAY_LEN(sim_capability_names); k++)
			if (json_is_string(c) &&
			    strcmp(json_string_value(c), sim_capability_names[k].name) == 0)
				bit = sim_capability_names[k].bit;
		if (bit == 0)
			return vd_fail(
			    cause, -EINVAL,
			    "model \"%s\": unknown capability at capabilities[%zu] (known: "
			    "completion, embedding, vision, tools, thinking, insert)",
			    name, i);
		m->capabilities |= bit;
	}
	if ((m->capabilities & (SIM_CAP_COMPLETION | SIM_CAP_EMBEDDING)) == 0)
		return vd_fail(cause, -EINVAL,
			       "model \"%s\": needs the completion or the embedding capability",
			       name);
	uint64_t h1 = vd_hash64(m->name, strlen(m->name), 0x6f6c6c616d61ULL);
	for (int k = 0; k < 4; k++) {
		uint64_t word = vd_rand64(&h1);
		snprintf(m->digest + 16 * k, 17, "%016llx", (unsigned long long)word);
	}
	uint64_t h2 = vd_hash64(m->name, strlen(m->name), 0x626c6f62ULL);
	for (int k = 0; k < 4; k++) {
		uint64_t word = vd_rand64(&h2);
		snprintf(m->blob_digest + 16 * k, 17, "%016llx", (unsigned long long)word);
	}
	/* Pulled some days before 2026-08-01, deterministic per name. */
	m->modified_ns = (INT64_C(1785542400) - (int64_t)(h1 % (86400 * 60))) * VD_NS_PER_S;
	return 0;
}

void
sim_catalogue_free(struct sim_catalogue *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->nmodels; i++)
		sim_model_cleanup(&cat->models[i]);
	for (size_t i = 0; i < cat->npullable; i++)
		sim_model_cleanup(&cat->pullable[i]);
	for (size_t i = 0; i < cat->ncopies; i++) {
		sim_model_cleanup(cat->copies[i]);
		free(cat->copies[i]);
	}
	free(cat->models);
	free(cat->pullable);
	free(cat->copies);
	free(cat);
}

/* Parses one array of model objects into *out; installed marks them pulled. The
 * records parsed so far count in *n even on failure (for sim_catalogue_free). */
static int
sim_catalogue_parse_list(struct sim_catalogue *cat, json_t *list, bool installed,
			 struct sim_model **out, size_t *n, char **cause)
{
	*out = xcalloc(json_array_size(list) ? json_array_size(list) : 1, sizeof(**out));
	size_t i;
	json_t *obj;
	json_array_foreach(list, i, obj)
	{
		struct sim_model *m = &(*out)[i];
		*n = i + 1;
		int rc = sim_catalogue_parse_model(obj, i, m, cause);
		if (rc < 0)
			return rc;
		m->installed = installed;
		m->pullable = true;
		for (size_t k = 0; k + 1 < sim_catalogue_count(cat); k++)
			if (strcasecmp(sim_catalogue_at(cat, k)->name, m->name) == 0)
				return vd_fail(cause, -EINVAL, "model \"%s\" is listed twice",
					       m->name);
	}
	return 0;
}

int
sim_catalogue_parse(const char *text, size_t len, struct sim_catalogue **out, char **cause)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL)
		return vd_fail(cause, -EINVAL, "invalid JSON at line %d column %d: %s", err.line,
			       err.column, err.text);
	int rc = 0;
	struct sim_catalogue *cat = xcalloc(1, sizeof(*cat));
	json_t *models = json_object_get(root, "models");
	if (!json_is_array(models) || json_array_size(models) == 0) {
		rc = vd_fail(cause, -EINVAL, "the catalogue needs a non-empty \"models\" array");
		goto out_free;
	}
	if ((rc = sim_catalogue_parse_list(cat, models, true, &cat->models, &cat->nmodels, cause)) <
	    0)
		goto out_free;
	json_t *pullable = json_object_get(root, "pullable");
	if (pullable != NULL && !json_is_array(pullable)) {
		rc = vd_fail(cause, -EINVAL, "\"pullable\" must be an array of models");
		goto out_free;
	}
	if (pullable != NULL && json_array_size(pullable) > 0 &&
	    (rc = sim_catalogue_parse_list(cat, pullable, false, &cat->pullable, &cat->npullable,
					   cause)) < 0) {
		if (cause != NULL && *cause != NULL) {
			char *inner = *cause;
			*cause = xasprintf("pullable: %s", inner);
			free(inner);
		}
		goto out_free;
	}
	json_decref(root);
	*out = cat;
	return 0;
out_free:
	sim_catalogue_free(cat);
	json_decref(root);
	return rc;
}

int
sim_catalogue_load(const char *path, struct sim_catalogue **out, char **cause)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return vd_fail(cause, -errno, "cannot open model catalogue %s: %s", path,
			       strerror(errno));
	char *text = NULL;
	size_t len = 0, alloc = 0;
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + n > 16 * VD_MIB) {
			fclose(f);
			free(text);
			return vd_fail(cause, -EFBIG, "model catalogue %s is larger than 16 MiB",
				       path);
		}
		if (len + n + 1 > alloc) {
			alloc = (len + n + 1) * 2;
			text = xrealloc(text, alloc);
		}
		memcpy(text + len, chunk, n);
		len += n;
	}
	fclose(f);
	char *why = NULL;
	int rc = sim_catalogue_parse(text != NULL ? text : "", len, out, &why);
	if (rc < 0) {
		vd_fail(cause, rc, "model catalogue %s: %s", path, why);
		free(why);
	}
	free(text);
	return rc;
}

struct sim_catalogue *
sim_catalogue_default(void)
{
	struct sim_catalogue *cat = NULL;
	char *cause = NULL;
	if (sim_catalogue_parse(sim_catalogue_default_json, strlen(sim_catalogue_default_json),
				&cat, &cause) < 0) {
		/* A broken built-in catalogue is a programming error caught by the tests. */
		fprintf(stderr, "built-in catalogue: %s\n", cause);
		abort();
	}
	return cat;
}

char *
sim_catalogue_canonical_name(const char *name)
{
	if (vd_str_has_prefix(name, "registry.ollama.ai/library/"))
		name += strlen("registry.ollama.ai/library/");
	else if (vd_str_has_prefix(name, "library/"))
		name += strlen("library/");
	const char *slash = strrchr(name, '/');
	const char *base = slash != NULL ? slash + 1 : name;
	return strchr(base, ':') != NULL ? xstrdup(name) : xasprintf("%s:latest", name);
}

size_t
sim_catalogue_count(const struct sim_catalogue *cat)
{
	return cat->nmodels + cat->npullable + cat->ncopies;
}

const struct sim_model *
sim_catalogue_at(const struct sim_catalogue *cat, size_t i)
{
	if (i < cat->nmodels)
		return &cat->models[i];
	i -= cat->nmodels;
	if (i < cat->npullable)
		return &cat->pullable[i];
	i -= cat->npullable;
	return i < cat->ncopies ? cat->copies[i] : NULL;
}

struct sim_model *
sim_catalogue_lookup(struct sim_catalogue *cat, const char *name, bool installed_only)
{
	if (name == NULL || *name == '\0')
		return NULL;
	char *full = sim_catalogue_canonical_name(name);
	struct sim_model *found = NULL;
	for (size_t i = 0; i < sim_catalogue_count(cat) && found == NULL; i++) {
		struct sim_model *m = (struct sim_model *)sim_catalogue_at(cat, i);
		bool wanted = installed_only ? m->installed : m->installed || m->pullable;
		if (wanted && strcasecmp(m->name, full) == 0)
			found = m;
	}
	free(full);
	return found;
}

const struct sim_model *
sim_catalogue_find(const struct sim_catalogue *cat, const char *name)
{
	/* The lookup does not modify the catalogue. */
	return sim_catalogue_lookup((struct sim_catalogue *)cat, name, true);
}

struct sim_model *
sim_catalogue_add_copy(struct sim_catalogue *cat, const struct sim_model *src, const char *name,
		       int64_t now_wall_ns)
{
	if (cat->ncopies >= SIM_CATALOGUE_MAX_COPIES)
		return NULL;
	struct sim_model *m = xcalloc(1, sizeof(*m));
	*m = *src;
	m->name = xstrdup(name);
	m->family = xstrdup(src->family);
	m->parameter_size = xstrdup(src->parameter_size);
	m->quantization_level = xstrdup(src->quantization_level);
	m->modified_ns = now_wall_ns;
	m->installed = true;
	m->pullable = false; /* the registry does not have it */
	cat->copies = xrealloc(cat->copies, (cat->ncopies + 1) * sizeof(*cat->copies));
	cat->copies[cat->ncopies++] = m;
	return m;
}

uint64_t
sim_model_kv_bytes(const struct sim_model *m, int64_t ctx)
{
	uint64_t head_dim = (uint64_t)(m->embedding_length / m->head_count);
	return 2 * (uint64_t)m->block_count * (uint64_t)m->head_count_kv * head_dim *
	       (uint64_t)ctx * 2;
}

uint64_t
sim_model_estimate_bytes(const struct sim_model *m, int64_t ctx)
{
	return m->file_bytes + sim_model_kv_bytes(m, ctx);
}

uint64_t
sim_model_compute_bytes(const struct sim_model *m, int64_t ubatch)
{
	return (uint64_t)ubatch * ((uint64_t)m->vocab_size + 4 * (uint64_t)m->embedding_length) * 4;
}

uint64_t
sim_model_actual_bytes(const struct sim_model *m, int64_t ctx)
{
	return m->footprint_bytes + sim_model_kv_bytes(m, ctx);
}
