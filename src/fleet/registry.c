/*
 * registry.c: the model registry of one Ollama server (see registry.h). The monitor
 * feeds it /api/tags and /api/ps results and load timings; the API asks it whether a
 * model exists and what it can do; the scheduler wiring asks it for footprints.
 *
 * Models live in an array of pointers (insertion order, never shrunk, so pointers stay
 * valid) and an open-addressing hash table (linear probing, no deletions) keyed by the
 * normalised name.
 *
 * Footprint learning: size_vram from /api/ps is the measured footprint (size when the
 * model was partly offloaded to CPU, since all of it on a GPU needs that), plus the runner
 * overhead: what NVML shows the model's runner process holding beyond size_vram (the CUDA
 * context, per registry_record_runner); the last overhead measured is added to the
 * estimates of models not measured yet. An NVML delta
 * recorded for a load raises it when the delta is larger but plausible (at most 1.5x
 * the reference plus 512 MiB), because the CUDA context is real memory Ollama does not
 * count; a larger delta means another program allocated at the same time and is
 * ignored. Without any size_vram a plausible delta alone is the measurement.
 */
#include "registry.h"

#include "job.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_NAME_MAX    512
#define REGISTRY_DELTA_SLACK (512 * VD_MIB)

struct registry {
	double multiplier;
	int64_t num_ctx;  /* the context loads get; 0 = unknown (no KV term) */
	int64_t parallel; /* slots per model */
	struct registry_model **models;
	size_t nmodels, alloc;
	size_t *slots; /* index + 1 into models; 0 = empty */
	size_t nslots; /* power of two, > 2 * nmodels */
	bool *seen;    /* per model: listed since registry_begin_tags */
	bool *seen_ps; /* per model: listed since registry_begin_ps */
	size_t seen_alloc;
	uint64_t runner_overhead_bytes; /* NVML memory a runner holds beyond /api/ps size_vram,
					   as last measured (the CUDA context); 0 = unknown */
	uint64_t loaded_file_bytes;	/* file sizes of every recorded load, summed */
	int64_t loaded_ms;		/* their durations, summed */
	uint64_t generation;		/* bumped when a model is added: a name that found
					   nothing may find one now (registry_generation) */
	size_t finds;			/* registry_find calls, for the tests of issue 12's
					   lookups per decision (registry_find_count) */
};

char *
registry_normalize_name(const char *name, char *buf, size_t size)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash != NULL ? slash + 1 : name;
	if (strchr(base, ':') != NULL)
		vd_strlcpy(buf, name, size);
	else
		snprintf(buf, size, "%s:latest", name);
	return buf;
}

static uint64_t
registry_hash(const char *key)
{
	return vd_hash64(key, strlen(key), 0x5eed);
}

static size_t
registry_slot_find(const struct registry *reg, const char *key)
{
	size_t mask = reg->nslots - 1;
	for (size_t i = registry_hash(key) & mask;; i = (i + 1) & mask) {
		size_t s = reg->slots[i];
		if (s == 0 || strcmp(reg->models[s - 1]->key, key) == 0)
			return i;
	}
}

static void
registry_rehash(struct registry *reg, size_t nslots)
{
	free(reg->slots);
	reg->slots = xcalloc(nslots, sizeof(*reg->slots));
	reg->nslots = nslots;
	for (size_t m = 0; m < reg->nmodels; m++)
		reg->slots[registry_slot_find(reg, reg->models[m]->key)] = m + 1;
}

struct registry *
registry_new(double multiplier)
{
	struct registry *reg = xcalloc(1, sizeof(*reg));
	reg->multiplier = multiplier > 0 ? multiplier : 1.3;
	registry_rehash(reg, 64);
	return reg;
}

static void
registry_model_free(struct registry_model *m)
{
	free(m->name);
	free(m->key);
	free(m->family);
	free(m->parameter_size);
	free(m->quantization);
	free(m);
}

void
registry_free(struct registry *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i < reg->nmodels; i++)
		registry_model_free(reg->models[i]);
	free(reg->models);
	free(reg->slots);
	free(reg->seen);
	free(reg->seen_ps);
	free(reg);
}

/* The f16 KV cache Ollama predicts for m at context num_ctx and the registry's
 * parallelism. */
uint64_t
registry_kv_bytes_at(const struct registry *reg, const struct registry_model *m, int64_t num_ctx)
{
	if (num_ctx <= 0 || m->block_count <= 0 || m->head_count <= 0 || m->head_count_kv <= 0 ||
	    m->embedding_length <= 0)
		return 0;
	int64_t ctx = num_ctx;
	if (m->ctx_train > 0 && ctx > m->ctx_train)
		ctx = m->ctx_train;
	double head_dim = (double)m->embedding_length / (double)m->head_count;
	double kv = 2.0 * (double)m->block_count * (double)m->head_count_kv * head_dim *
		    (double)ctx * (double)(reg->parallel > 0 ? reg->parallel : 1) * 2.0;
	return kv < 1e18 ? (uint64_t)kv : UINT64_C(1000000000000000000);
}

static uint64_t
registry_kv_bytes(const struct registry *reg, const struct registry_model *m)
{
	return registry_kv_bytes_at(reg, m, reg->num_ctx);
}

/* Weights and compute buffers (file size x multiplier) plus the KV cache, plus the
 * runner overhead NVML showed for other models (a model not measured yet pays it too). */
static void
registry_estimate_model(const struct registry *reg, struct registry_model *m)
{
	m->kv_bytes = registry_kv_bytes(reg, m);
	m->estimate_bytes = (uint64_t)((double)m->file_bytes * reg->multiplier) + m->kv_bytes +
			    reg->runner_overhead_bytes;
}

static void
registry_estimate_all(struct registry *reg)
{
	for (size_t i = 0; i < reg->nmodels; i++)
		registry_estimate_model(reg, reg->models[i]);
}

void
registry_set_multiplier(struct registry *reg, double multiplier)
{
	if (!(multiplier > 0))
		return;
	reg->multiplier = multiplier;
	registry_estimate_all(reg);
}

void
registry_set_context(struct registry *reg, int64_t num_ctx, int64_t parallel)
{
	if (reg->num_ctx == num_ctx && reg->parallel == parallel)
		return;
	reg->num_ctx = num_ctx;
	reg->parallel = parallel;
	registry_estimate_all(reg);
}

void
registry_set_arch(struct registry *reg, const char *name, int64_t ctx_train, int64_t block_count,
		  int64_t head_count, int64_t head_count_kv, int64_t embedding_length)
{
	struct registry_model *m = registry_find(reg, name);
	if (m == NULL)
		return;
	m->ctx_train = ctx_train;
	m->block_count = block_count;
	m->head_count = head_count;
	m->head_count_kv = head_count_kv;
	m->embedding_length = embedding_length;
	registry_estimate_model(reg, m);
}

struct registry_model *
registry_find(const struct registry *reg, const char *name)
{
	char key[REGISTRY_NAME_MAX];
	if (name == NULL)
		return NULL;
	((struct registry *)reg)->finds++; /* a statistic, not the registry's state */
	registry_normalize_name(name, key, sizeof(key));
	size_t s = reg->slots[registry_slot_find(reg, key)];
	return s != 0 ? reg->models[s - 1] : NULL;
}

uint64_t
registry_generation(const struct registry *reg)
{
	return reg->generation;
}

size_t
registry_find_count(const struct registry *reg)
{
	return reg->finds;
}

/* Finds or creates the model for name (created not installed, nothing known). */
static struct registry_model *
registry_get(struct registry *reg, const char *name)
{
	char key[REGISTRY_NAME_MAX];
	registry_normalize_name(name, key, sizeof(key));
	size_t slot = registry_slot_find(reg, key);
	if (reg->slots[slot] != 0)
		return reg->models[reg->slots[slot] - 1];

	struct registry_model *m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->key = xstrdup(key);
	m->nvml_delta_bytes = -1;
	if (reg->nmodels == reg->alloc) {
		reg->alloc = reg->alloc != 0 ? reg->alloc * 2 : 16;
		reg->models = xreallocarray(reg->models, reg->alloc, sizeof(*reg->models));
	}
	if (reg->seen_alloc < reg->alloc) {
		reg->seen = xreallocarray(reg->seen, reg->alloc, sizeof(*reg->seen));
		reg->seen_ps = xreallocarray(reg->seen_ps, reg->alloc, sizeof(*reg->seen_ps));
		memset(reg->seen + reg->seen_alloc, 0,
		       (reg->alloc - reg->seen_alloc) * sizeof(*reg->seen));
		memset(reg->seen_ps + reg->seen_alloc, 0,
		       (reg->alloc - reg->seen_alloc) * sizeof(*reg->seen_ps));
		reg->seen_alloc = reg->alloc;
	}
	reg->models[reg->nmodels] = m;
	reg->slots[slot] = ++reg->nmodels;
	reg->generation++;
	if (reg->nmodels * 2 >= reg->nslots)
		registry_rehash(reg, reg->nslots * 2);
	return m;
}

static size_t
registry_index(const struct registry *reg, const struct registry_model *m)
{
	size_t s = reg->slots[registry_slot_find(reg, m->key)];
	return s - 1;
}

static void
registry_replace(char **field, const char *value)
{
	if (value == NULL)
		return;
	free(*field);
	*field = xstrdup(value);
}

void
registry_begin_tags(struct registry *reg)
{
	if (reg->nmodels > 0)
		memset(reg->seen, 0, reg->nmodels * sizeof(*reg->seen));
}

struct registry_model *
registry_set_installed(struct registry *reg, const char *name, uint64_t file_bytes,
		       const char *family, const char *parameter_size, const char *quantization,
		       unsigned caps)
{
	struct registry_model *m = registry_get(reg, name);
	bool was_installed = m->installed;
	m->installed = true;
	if (strcmp(m->name, name) != 0)
		registry_replace(&m->name, name);
	m->file_bytes = file_bytes;
	registry_estimate_model(reg, m);
	if (!was_installed)
		vd_log(REGISTRY, "model %s installed (%" PRIu64 " bytes, estimate %" PRIu64 ")",
		       name, file_bytes, m->estimate_bytes);
	registry_replace(&m->family, family);
	registry_replace(&m->parameter_size, parameter_size);
	registry_replace(&m->quantization, quantization);
	if (caps != 0)
		m->caps = caps;
	reg->seen[registry_index(reg, m)] = true;
	return m;
}

size_t
registry_end_tags(struct registry *reg)
{
	size_t removed = 0;
	for (size_t i = 0; i < reg->nmodels; i++) {
		struct registry_model *m = reg->models[i];
		if (m->installed && !reg->seen[i]) {
			m->installed = false;
			removed++;
			vd_log(REGISTRY, "model %s is no longer installed", m->name);
		}
	}
	return removed;
}

void
registry_set_caps(struct registry *reg, const char *name, unsigned caps)
{
	struct registry_model *m = registry_find(reg, name);
	if (m != NULL)
		m->caps = caps;
}

/* Recomputes the measured footprint from size_vram, the runner overhead and the NVML
 * delta. */
static void
registry_learn(struct registry_model *m)
{
	/* Partly offloaded to CPU (size_vram < size): all of it on a GPU needs size. The
	 * runner's own NVML memory beyond size_vram (the CUDA context) comes on top. */
	uint64_t footprint = m->size_vram_bytes == 0		  ? 0
			     : m->size_vram_bytes < m->size_bytes ? m->size_bytes
								  : m->size_vram_bytes;
	if (footprint != 0)
		footprint += m->runner_overhead_bytes;
	uint64_t ref = footprint != 0 ? footprint : m->estimate_bytes;
	if (m->nvml_delta_bytes > 0 && ref > 0) {
		uint64_t delta = (uint64_t)m->nvml_delta_bytes;
		bool plausible = delta <= ref + ref / 2 + REGISTRY_DELTA_SLACK;
		if (plausible && delta > footprint)
			footprint = delta;
	}
	if (footprint == 0)
		return;
	if (!m->measured || m->measured_bytes != footprint)
		vd_debug(REGISTRY, "model %s footprint %" PRIu64 " bytes (estimate %" PRIu64 ")",
			 m->name, footprint, m->estimate_bytes);
	m->measured = true;
	m->measured_bytes = footprint;
}

int
registry_record_runner(struct registry *reg, const char *name, uint64_t runner_bytes)
{
	struct registry_model *m = registry_find(reg, name);
	if (m == NULL || !m->loaded || m->size_vram_bytes == 0)
		return -1;
	uint64_t overhead =
	    runner_bytes > m->size_vram_bytes ? runner_bytes - m->size_vram_bytes : 0;
	/* More than the model's own size again plus the slack is not one runner's overhead
	 * (a wrong process, or a reading mid-change): ignored. */
	if (overhead > m->size_vram_bytes + REGISTRY_DELTA_SLACK)
		return -1;
	m->runner_overhead_bytes = overhead;
	registry_learn(m);
	if (reg->runner_overhead_bytes != overhead) {
		reg->runner_overhead_bytes = overhead;
		registry_estimate_all(reg);
	}
	return 0;
}

void
registry_observe_loaded(struct registry *reg, const char *name, uint64_t size_bytes,
			uint64_t size_vram_bytes, int64_t now_ms)
{
	struct registry_model *m = registry_get(reg, name);
	m->loaded = true;
	m->size_bytes = size_bytes;
	m->size_vram_bytes = size_vram_bytes;
	m->observed_at_ms = now_ms;
	reg->seen_ps[registry_index(reg, m)] = true;
	if (size_vram_bytes > 0)
		registry_learn(m);
}

void
registry_observe_unloaded(struct registry *reg, const char *name)
{
	struct registry_model *m = registry_find(reg, name);
	if (m == NULL)
		return;
	m->loaded = false;
	m->size_bytes = 0;
	m->size_vram_bytes = 0;
}

void
registry_begin_ps(struct registry *reg)
{
	if (reg->nmodels > 0)
		memset(reg->seen_ps, 0, reg->nmodels * sizeof(*reg->seen_ps));
}

void
registry_end_ps(struct registry *reg)
{
	for (size_t i = 0; i < reg->nmodels; i++)
		if (reg->models[i]->loaded && !reg->seen_ps[i])
			registry_observe_unloaded(reg, reg->models[i]->key);
}

void
registry_record_load(struct registry *reg, const char *name, int64_t load_ms,
		     int64_t nvml_delta_bytes)
{
	struct registry_model *m = registry_get(reg, name);
	if (load_ms < 0)
		load_ms = 0;
	m->load_count++;
	m->load_ms_last = load_ms;
	m->load_ms_mean += ((double)load_ms - m->load_ms_mean) / (double)m->load_count;
	reg->loaded_file_bytes += m->file_bytes;
	reg->loaded_ms += load_ms;
	if (nvml_delta_bytes >= 0) {
		m->nvml_delta_bytes = nvml_delta_bytes;
		registry_learn(m);
	}
}

double
registry_load_bandwidth(const struct registry *reg)
{
	if (reg->loaded_ms <= 0 || reg->loaded_file_bytes == 0)
		return 0;
	return (double)reg->loaded_file_bytes * 1000.0 / (double)reg->loaded_ms;
}

int64_t
registry_load_timeout_ms(const struct registry *reg, const struct registry_model *model)
{
	if (model == NULL || model->file_bytes == 0)
		return REGISTRY_LOAD_TIMEOUT_CAP_MS;
	double bw = registry_load_bandwidth(reg);
	if (bw <= 0)
		bw = REGISTRY_ASSUMED_LOAD_BW;
	double ms = REGISTRY_LOAD_TIMEOUT_SLACK * (double)model->file_bytes * 1000.0 / bw;
	if (ms < REGISTRY_LOAD_TIMEOUT_FLOOR_MS)
		return REGISTRY_LOAD_TIMEOUT_FLOOR_MS;
	if (ms > REGISTRY_LOAD_TIMEOUT_CAP_MS)
		return REGISTRY_LOAD_TIMEOUT_CAP_MS;
	return (int64_t)ms;
}

void
registry_touch(struct registry *reg, const char *name, int64_t now_ms)
{
	struct registry_model *m = registry_find(reg, name);
	if (m != NULL)
		m->last_used_ms = now_ms;
}

uint64_t
registry_footprint(const struct registry_model *model)
{
	return model->measured ? model->measured_bytes : model->estimate_bytes;
}

uint64_t
registry_footprint_at_ctx(const struct registry *reg, const struct registry_model *model,
			  int64_t num_ctx)
{
	uint64_t base = registry_footprint(model);
	if (num_ctx <= reg->num_ctx)
		return base;
	uint64_t kv = registry_kv_bytes_at(reg, model, num_ctx);
	return kv > model->kv_bytes ? base + (kv - model->kv_bytes) : base;
}

bool
registry_supports_kind(const struct registry_model *model, int job_kind)
{
	if (model->caps == 0)
		return true;
	if (job_kind == JOB_KIND_EMBED)
		return (model->caps & REGISTRY_CAP_EMBEDDING) != 0;
	return (model->caps & REGISTRY_CAP_COMPLETION) != 0;
}

int
registry_default_kind(const struct registry_model *model)
{
	if ((model->caps & REGISTRY_CAP_EMBEDDING) != 0 &&
	    (model->caps & REGISTRY_CAP_COMPLETION) == 0)
		return JOB_KIND_EMBED;
	return JOB_KIND_GENERATE;
}

size_t
registry_count(const struct registry *reg)
{
	return reg->nmodels;
}

struct registry_model *
registry_at(const struct registry *reg, size_t index)
{
	return index < reg->nmodels ? reg->models[index] : NULL;
}

static const struct {
	const char *name;
	unsigned bit;
} registry_cap_names[] = {
    {"completion", REGISTRY_CAP_COMPLETION}, {"embedding", REGISTRY_CAP_EMBEDDING},
    {"vision", REGISTRY_CAP_VISION},	     {"tools", REGISTRY_CAP_TOOLS},
    {"insert", REGISTRY_CAP_INSERT},	     {"thinking", REGISTRY_CAP_THINKING},
};

unsigned
registry_cap_from_name(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(registry_cap_names); i++)
		if (strcmp(registry_cap_names[i].name, name) == 0)
			return registry_cap_names[i].bit;
	return 0;
}

static json_t *
registry_opt_string(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
registry_model_to_json(const struct registry_model *m)
{
	json_t *caps = json_array();
	for (size_t i = 0; i < VD_ARRAY_LEN(registry_cap_names); i++)
		if (m->caps & registry_cap_names[i].bit)
			json_array_append_new(caps, json_string(registry_cap_names[i].name));
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "installed", json_boolean(m->installed));
	json_object_set_new(o, "family", registry_opt_string(m->family));
	json_object_set_new(o, "parameter_size", registry_opt_string(m->parameter_size));
	json_object_set_new(o, "quantization_level", registry_opt_string(m->quantization));
	json_object_set_new(o, "capabilities", caps);
	json_object_set_new(o, "file_size_bytes", json_integer((json_int_t)m->file_bytes));
	json_object_set_new(o, "estimate_bytes", json_integer((json_int_t)m->estimate_bytes));
	json_object_set_new(o, "kv_cache_bytes", json_integer((json_int_t)m->kv_bytes));
	json_object_set_new(o, "measured_bytes",
			    m->measured ? json_integer((json_int_t)m->measured_bytes)
					: json_null());
	json_object_set_new(o, "footprint_bytes", json_integer((json_int_t)registry_footprint(m)));
	json_object_set_new(o, "footprint_source",
			    json_string(m->measured ? "measured" : "estimate"));
	json_object_set_new(o, "runner_overhead_bytes",
			    json_integer((json_int_t)m->runner_overhead_bytes));
	json_object_set_new(o, "nvml_delta_bytes",
			    m->nvml_delta_bytes >= 0 ? json_integer(m->nvml_delta_bytes)
						     : json_null());
	const char *where = !m->loaded				 ? "none"
			    : m->size_vram_bytes == 0		 ? "cpu"
			    : m->size_vram_bytes < m->size_bytes ? "gpu+cpu"
								 : "gpu";
	json_object_set_new(o, "loaded", json_boolean(m->loaded));
	json_object_set_new(o, "placement", m->loaded ? json_string(where) : json_null());
	json_object_set_new(o, "size_bytes", json_integer((json_int_t)m->size_bytes));
	json_object_set_new(o, "size_vram_bytes", json_integer((json_int_t)m->size_vram_bytes));
	bool loaded_once = m->load_count > 0;
	json_object_set_new(
	    o, "load_stats",
	    json_pack("{s:I,s:o,s:o}", "count", (json_int_t)m->load_count, "last_ms",
		      loaded_once ? json_integer(m->load_ms_last) : json_null(), "mean_ms",
		      loaded_once ? json_real(m->load_ms_mean) : json_null()));
	return o;
}

json_t *
registry_to_json(const struct registry *reg, bool installed_only)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < reg->nmodels; i++)
		if (!installed_only || reg->models[i]->installed)
			json_array_append_new(arr, registry_model_to_json(reg->models[i]));
	return json_pack("{s:o}", "models", arr);
}
