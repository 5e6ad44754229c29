/*
 * ollama-parse.c: pure parsers of Ollama's replies (see ollama-parse.h). Called by
 * backend-ollama.c on reply bodies it has already capped, by tests/test-backend-ollama.c
 * and by the fuzz target. Invariants: no I/O, no globals, no clock; every failure returns
 * a negative errno with *cause set and leaves the output empty; strings in the outputs
 * are always non-NULL ("" when absent).
 */
#include "ollama-parse.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parses body as JSON; on failure sets *cause and returns NULL. */
static json_t *
ollama_load_json(const char *body, size_t len, char **cause)
{
	json_error_t err;
	json_t *root;

	if (!body || len == 0) {
		vd_fail(cause, -EINVAL, "empty reply");
		return NULL;
	}
	root = json_loadb(body, len, 0, &err);
	if (!root)
		vd_fail(cause, -EINVAL, "reply is not JSON (%s at byte %d)", err.text,
			err.position);
	return root;
}

static json_t *
ollama_load_object(const char *body, size_t len, char **cause)
{
	json_t *root = ollama_load_json(body, len, cause);
	if (root && !json_is_object(root)) {
		json_decref(root);
		vd_fail(cause, -EINVAL, "reply is not a JSON object");
		return NULL;
	}
	return root;
}

static char *
ollama_dup_string(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return xstrdup(s ? s : "");
}

/* A JSON integer (or integral real) as uint64; 0 when absent or negative. */
static uint64_t
ollama_get_u64(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
	if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1.8e19)
		return (uint64_t)json_real_value(v);
	return 0;
}

/* A JSON integer as int64, or def when absent or not an integer. */
static int64_t
ollama_get_i64(const json_t *obj, const char *key, int64_t def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

/* Sets *models to the array under "models" (NULL when absent or null: Go prints an
 * empty list as [], but be lenient). Returns 0, or -EINVAL when it is not an array. */
static int
ollama_models_array(json_t *root, json_t **models, char **cause)
{
	*models = json_object_get(root, "models");
	if (!*models || json_is_null(*models)) {
		*models = NULL;
		return 0;
	}
	if (!json_is_array(*models))
		return vd_fail(cause, -EINVAL, "\"models\" is not an array");
	return 0;
}

int
ollama_parse_version(const char *body, size_t len, char **version, char **cause)
{
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	const char *v = json_string_value(json_object_get(root, "version"));
	if (!v) {
		json_decref(root);
		return vd_fail(cause, -EINVAL, "reply has no \"version\" string");
	}
	*version = xstrdup(v);
	json_decref(root);
	return 0;
}

unsigned
ollama_capabilities_from_json(const json_t *array)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
	    {"completion", BACKEND_CAP_COMPLETION}, {"embedding", BACKEND_CAP_EMBEDDING},
	    {"vision", BACKEND_CAP_VISION},	    {"tools", BACKEND_CAP_TOOLS},
	    {"thinking", BACKEND_CAP_THINKING},	    {"insert", BACKEND_CAP_INSERT},
	};
	unsigned caps = 0;
	size_t i;
	const json_t *v;

	json_array_foreach(array, i, v)
	{
		const char *s = json_string_value(v);
		for (size_t k = 0; s && k < VD_ARRAY_LEN(names); k++)
			if (strcmp(s, names[k].name) == 0)
				caps |= names[k].bit;
	}
	return caps;
}

unsigned
ollama_capabilities_from_family(const char *family)
{
	static const char *const embedding_families[] = {
	    "bert",	   "nomic-bert", "nomic-bert-moe",
	    "xlm-roberta", "roberta",	 "jina-bert-v2",
	    "new",	   "gte",	 "snowflake-arctic-embed",
	};
	for (size_t i = 0; family && i < VD_ARRAY_LEN(embedding_families); i++)
		if (strcmp(family, embedding_families[i]) == 0)
			return BACKEND_CAP_EMBEDDING;
	return BACKEND_CAP_COMPLETION;
}

int
ollama_parse_tags(const char *body, size_t len, struct backend_model_list *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	json_t *models;
	if (ollama_models_array(root, &models, cause) < 0) {
		json_decref(root);
		return -EINVAL;
	}
	size_t n = json_array_size(models);
	out->models = xcalloc(n ? n : 1, sizeof(*out->models));
	size_t i;
	json_t *m;
	json_array_foreach(models, i, m)
	{
		const char *name = json_string_value(json_object_get(m, "name"));
		if (!name || !*name)
			name = json_string_value(json_object_get(m, "model"));
		if (!name || !*name)
			continue;
		json_t *details = json_object_get(m, "details");
		struct backend_model_info *info = &out->models[out->n++];
		info->name = xstrdup(name);
		info->size_bytes = ollama_get_u64(m, "size");
		info->digest = ollama_dup_string(m, "digest");
		info->family = ollama_dup_string(details, "family");
		info->parameter_size = ollama_dup_string(details, "parameter_size");
		info->quantization_level = ollama_dup_string(details, "quantization_level");
		json_t *caps = json_object_get(m, "capabilities");
		if (json_is_array(caps)) {
			info->capabilities = ollama_capabilities_from_json(caps);
			info->capabilities_reported = true;
		} else {
			info->capabilities = ollama_capabilities_from_family(info->family);
		}
	}
	json_decref(root);
	return 0;
}

int
ollama_parse_show_capabilities(const char *body, size_t len, unsigned *caps, char **cause)
{
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	json_t *list = json_object_get(root, "capabilities");
	int rc = 0;
	if (json_is_array(list))
		*caps = ollama_capabilities_from_json(list);
	else
		rc = vd_fail(cause, -ENOENT, "reply has no \"capabilities\" list");
	json_decref(root);
	return rc;
}

/* A model_info number, or the largest element of an array of numbers; 0 if absent. */
static int64_t
ollama_info_i64(const json_t *info, const char *arch, const char *suffix)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	const json_t *v = json_object_get(info, key);
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? json_integer_value(v) : 0;
	int64_t max = 0;
	size_t i;
	const json_t *e;
	if (json_is_array(v))
		json_array_foreach(v, i, e) if (json_is_integer(e) && json_integer_value(e) > max)
		    max = json_integer_value(e);
	return max;
}

int
ollama_parse_show_arch(const char *body, size_t len, struct backend_model_arch *arch, char **cause)
{
	memset(arch, 0, sizeof(*arch));
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	int rc = 0;
	json_t *info = json_object_get(root, "model_info");
	const char *name = json_string_value(json_object_get(info, "general.architecture"));
	if (!json_is_object(info) || name == NULL || strlen(name) > 64) {
		rc = vd_fail(cause, -ENOENT, "reply has no model_info with general.architecture");
	} else {
		arch->context_length = ollama_info_i64(info, name, "context_length");
		arch->block_count = ollama_info_i64(info, name, "block_count");
		arch->head_count = ollama_info_i64(info, name, "attention.head_count");
		arch->head_count_kv = ollama_info_i64(info, name, "attention.head_count_kv");
		arch->embedding_length = ollama_info_i64(info, name, "embedding_length");
	}
	json_decref(root);
	return rc;
}

int
ollama_parse_ps(const char *body, size_t len, struct backend_running_list *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	json_t *models;
	if (ollama_models_array(root, &models, cause) < 0) {
		json_decref(root);
		return -EINVAL;
	}
	size_t n = json_array_size(models);
	out->models = xcalloc(n ? n : 1, sizeof(*out->models));
	size_t i;
	json_t *m;
	json_array_foreach(models, i, m)
	{
		const char *name = json_string_value(json_object_get(m, "name"));
		const char *model = json_string_value(json_object_get(m, "model"));
		if ((!name || !*name) && (!model || !*model))
			continue;
		struct backend_running_model *r = &out->models[out->n++];
		r->name = xstrdup(name && *name ? name : model);
		r->model = xstrdup(model && *model ? model : name);
		r->digest = ollama_dup_string(m, "digest");
		r->size_bytes = ollama_get_u64(m, "size");
		r->size_vram_bytes = ollama_get_u64(m, "size_vram");
		r->context_length = ollama_get_i64(m, "context_length", 0);
		const char *expires = json_string_value(json_object_get(m, "expires_at"));
		if (!expires || ollama_parse_time(expires, &r->expires_at_ms) < 0)
			r->expires_at_ms = 0;
	}
	json_decref(root);
	return 0;
}

char *
ollama_parse_error(const char *body, size_t len)
{
	json_error_t err;
	json_t *root = body && len ? json_loadb(body, len, 0, &err) : NULL;
	const char *msg = json_string_value(json_object_get(root, "error"));
	char *out = msg ? xstrdup(msg) : NULL;
	json_decref(root);
	return out;
}

int
ollama_parse_load_reply(const char *body, size_t len, char **cause)
{
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	int rc = 0;
	const char *error = json_string_value(json_object_get(root, "error"));
	json_t *done = json_object_get(root, "done");
	if (error)
		rc = vd_fail(cause, -EIO, "%s", error);
	else if (json_is_array(json_object_get(root, "embeddings")))
		rc = 0; /* /api/embed with empty input */
	else if (!json_is_true(done))
		rc = vd_fail(cause, -EINVAL, "reply does not say done");
	json_decref(root);
	return rc;
}

void
ollama_run_reply_cleanup(struct ollama_run_reply *reply)
{
	json_decref(reply->result);
	free(reply->done_reason);
	memset(reply, 0, sizeof(*reply));
}

int
ollama_parse_run_reply(enum job_kind kind, const char *body, size_t len,
		       struct ollama_run_reply *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	json_t *root = ollama_load_object(body, len, cause);
	if (!root)
		return -EINVAL;
	int rc = 0;
	const char *error = json_string_value(json_object_get(root, "error"));
	json_t *done = json_object_get(root, "done");
	json_t *result = NULL;

	if (error) {
		rc = vd_fail(cause, -EIO, "%s", error);
		goto out;
	}
	switch (kind) {
	case JOB_KIND_GENERATE:
		result = json_object_get(root, "response");
		if (!json_is_string(result))
			rc = vd_fail(cause, -EINVAL, "reply has no \"response\" string");
		break;
	case JOB_KIND_CHAT:
		result = json_object_get(root, "message");
		if (!json_is_object(result))
			rc = vd_fail(cause, -EINVAL, "reply has no \"message\" object");
		break;
	case JOB_KIND_EMBED:
		result = json_object_get(root, "embeddings");
		if (!json_is_array(result))
			rc = vd_fail(cause, -EINVAL, "reply has no \"embeddings\" array");
		break;
	default:
		rc = vd_fail(cause, -EINVAL, "unknown job kind %d", (int)kind);
		break;
	}
	if (rc < 0)
		goto out;
	/* Non-streaming generate/chat replies end with done true; embed has no "done". */
	if (kind != JOB_KIND_EMBED && !json_is_true(done)) {
		rc = vd_fail(cause, -EINVAL, "reply is not final (\"done\" is not true)");
		goto out;
	}
	out->result = json_incref(result);
	const char *reason = json_string_value(json_object_get(root, "done_reason"));
	out->done_reason = reason ? xstrdup(reason) : NULL;
	out->metrics.total_duration_ns = ollama_get_i64(root, "total_duration", -1);
	out->metrics.load_duration_ns = ollama_get_i64(root, "load_duration", -1);
	out->metrics.prompt_eval_count = ollama_get_i64(root, "prompt_eval_count", -1);
	out->metrics.prompt_eval_duration_ns = ollama_get_i64(root, "prompt_eval_duration", -1);
	out->metrics.eval_count = ollama_get_i64(root, "eval_count", -1);
	out->metrics.eval_duration_ns = ollama_get_i64(root, "eval_duration", -1);
out:
	json_decref(root);
	return rc;
}

/* Reads exactly n digits at *p into *out, advancing *p. */
static bool
ollama_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
ollama_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int
ollama_parse_time(const char *text, int64_t *wall_ms)
{
	const char *p = text;
	int year, mon, day, hour, min, sec, ms = 0;

	if (!ollama_digits(&p, 4, &year) || *p++ != '-' || !ollama_digits(&p, 2, &mon) ||
	    *p++ != '-' || !ollama_digits(&p, 2, &day) || (*p != 'T' && *p != 't'))
		return -EINVAL;
	p++;
	if (!ollama_digits(&p, 2, &hour) || *p++ != ':' || !ollama_digits(&p, 2, &min) ||
	    *p++ != ':' || !ollama_digits(&p, 2, &sec))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	if (*p == '.') {
		p++;
		int ndigits = 0;
		while (isdigit((unsigned char)*p)) {
			if (ndigits < 3)
				ms = ms * 10 + (*p - '0');
			ndigits++;
			p++;
		}
		if (ndigits == 0)
			return -EINVAL;
		for (int i = ndigits; i < 3; i++)
			ms *= 10;
	}
	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!ollama_digits(&p, 2, &oh) || *p++ != ':' || !ollama_digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
		offset_s = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	int64_t secs = ollama_days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 +
		       sec - offset_s;
	*wall_ms = secs * 1000 + ms;
	return 0;
}
