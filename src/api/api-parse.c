/*
 * api-parse.c: the validation of submit bodies and job list queries (see api-parse.h).
 * Pure: called by the handlers of api-jobs.c and by the fuzz targets. Every bound on
 * what a client may send sits in the tables and constants of this file and api-parse.h,
 * so the cost of a request never depends on how its values are spelled.
 */
#include "api-parse.h"

#include "buf.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define API_KIND_GENERATE (1u << JOB_KIND_GENERATE)
#define API_KIND_CHAT	  (1u << JOB_KIND_CHAT)
#define API_KIND_EMBED	  (1u << JOB_KIND_EMBED)
#define API_KIND_ANY	  (API_KIND_GENERATE | API_KIND_CHAT | API_KIND_EMBED)

#define API_T_STRING (1u << 0)
#define API_T_ARRAY  (1u << 1)
#define API_T_OBJECT (1u << 2)
#define API_T_BOOL   (1u << 3)
#define API_T_INT    (1u << 4)

/* The Ollama request fields a job may carry, per kind, and their JSON types. */
static const struct api_field {
	const char *name;
	unsigned types;
	unsigned kinds;
	const char *type_text;
} api_fields[] = {
    {"prompt", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"suffix", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"system", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"template", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"context", API_T_ARRAY, API_KIND_GENERATE, "an array of integers"},
    {"raw", API_T_BOOL, API_KIND_GENERATE, "a boolean"},
    {"images", API_T_ARRAY, API_KIND_GENERATE, "an array of base64 strings"},
    {"messages", API_T_ARRAY, API_KIND_CHAT, "an array of {role, content} objects"},
    {"tools", API_T_ARRAY, API_KIND_CHAT, "an array"},
    {"input", API_T_STRING | API_T_ARRAY, API_KIND_EMBED, "a string or an array of strings"},
    {"dimensions", API_T_INT, API_KIND_EMBED, "an integer"},
    {"format", API_T_STRING | API_T_OBJECT, API_KIND_GENERATE | API_KIND_CHAT,
     "a string or a JSON schema object"},
    {"think", API_T_BOOL | API_T_STRING, API_KIND_GENERATE | API_KIND_CHAT,
     "a boolean or a string"},
    {"truncate", API_T_BOOL, API_KIND_ANY, "a boolean"},
    {"options", API_T_OBJECT, API_KIND_ANY, "an object"},
};

static unsigned
api_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return API_T_STRING;
	case JSON_ARRAY:
		return API_T_ARRAY;
	case JSON_OBJECT:
		return API_T_OBJECT;
	case JSON_TRUE:
	case JSON_FALSE:
		return API_T_BOOL;
	case JSON_INTEGER:
		return API_T_INT;
	default:
		return 0;
	}
}

static bool
api_array_of_strings(const json_t *a)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

/* Checks the fields the kind depends on; returns a message (caller frees) or NULL. */
static char *
api_check_kind_fields(const json_t *body, enum job_kind kind)
{
	if (kind == JOB_KIND_CHAT) {
		json_t *msgs = json_object_get(body, "messages");
		if (msgs == NULL)
			return xstrdup("field 'messages' is required for kind chat");
		if (json_array_size(msgs) == 0)
			return xstrdup("field 'messages' must not be empty");
		size_t i;
		json_t *msg;
		json_array_foreach(msgs, i, msg)
		{
			if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
				return xasprintf(
				    "field 'messages[%zu]' must be an object with a string 'role'",
				    i);
			json_t *content = json_object_get(msg, "content");
			if (content != NULL && !json_is_string(content))
				return xasprintf("field 'messages[%zu].content' must be a string",
						 i);
		}
	} else if (kind == JOB_KIND_EMBED) {
		json_t *input = json_object_get(body, "input");
		if (input == NULL)
			return xstrdup("field 'input' is required for kind embed");
		if (json_is_array(input) && !api_array_of_strings(input))
			return xstrdup("field 'input' must be a string or an array of strings");
		if ((json_is_string(input) && json_string_length(input) == 0) ||
		    (json_is_array(input) && json_array_size(input) == 0))
			return xstrdup("field 'input' must not be empty");
	} else {
		json_t *prompt = json_object_get(body, "prompt");
		json_t *images = json_object_get(body, "images");
		if (images != NULL && !api_array_of_strings(images))
			return xstrdup("field 'images' must be an array of base64 strings");
		if (prompt == NULL && images == NULL)
			return xstrdup("field 'prompt' is required for kind generate");
	}
	return NULL;
}

static int
api_infer_kind(const json_t *body, const struct registry_model *model)
{
	if (json_object_get(body, "messages") != NULL)
		return JOB_KIND_CHAT;
	if (json_object_get(body, "input") != NULL)
		return JOB_KIND_EMBED;
	if (json_object_get(body, "prompt") != NULL)
		return JOB_KIND_GENERATE;
	return model != NULL ? registry_default_kind(model) : -1;
}

/* Top-level fields of a submit body besides api_fields[]. */
static const char *const api_submit_fields[] = {"model",    "kind",	  "priority",
						"metadata", "deadline_s", "placement"};

/* Fields refused with a reason rather than as unknown. */
static const char *const api_submit_refused[] = {"stream", "keep_alive"};

bool
api_submit_field_known(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(api_submit_fields); i++)
		if (strcmp(name, api_submit_fields[i]) == 0)
			return true;
	for (size_t i = 0; i < VD_ARRAY_LEN(api_fields); i++)
		if (strcmp(name, api_fields[i].name) == 0)
			return true;
	for (size_t i = 0; i < VD_ARRAY_LEN(api_submit_refused); i++)
		if (strcmp(name, api_submit_refused[i]) == 0)
			return true;
	return false;
}

/* Appends name to out for a message, cut to 64 bytes so a client cannot make the
 * message as large as its body. */
static void
api_append_name(struct vd_buf *out, const char *name)
{
	size_t len = strlen(name);
	vd_buf_append_str(out, "'");
	vd_buf_append(out, name, len > 64 ? 64 : len);
	vd_buf_append_str(out, len > 64 ? "...'" : "'");
}

char *
api_unknown_fields(const json_t *obj, bool (*is_known)(const char *name), const char *accepted)
{
	struct vd_buf names;
	vd_buf_init(&names, 4096);
	size_t unknown = 0;
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)obj, key, value)
	{
		if (is_known(key))
			continue;
		if (unknown < 5) {
			if (unknown > 0)
				vd_buf_append_str(&names, ", ");
			api_append_name(&names, key);
		}
		unknown++;
	}
	char *msg = NULL;
	if (unknown > 0)
		msg = xasprintf("unknown field%s %s%s (accepted: %s)", unknown > 1 ? "s" : "",
				vd_buf_str(&names), unknown > 5 ? ", ..." : "", accepted);
	vd_buf_cleanup(&names);
	return msg;
}

/* --- options ------------------------------------------------------------------------ */

enum api_opt_type { API_OPT_INT, API_OPT_NUMBER, API_OPT_BOOL, API_OPT_STRINGS };

/*
 * The options Ollama knows (api/types.go, Options and Runner, older runner options
 * included) and their JSON types. min/max bound integers where a value can hurt the
 * server; refused options are vramd's to set.
 */
static const struct api_option {
	const char *name;
	enum api_opt_type type;
	int64_t min, max; /* integers only; min > max: no range */
	const char *refused;
} api_options[] = {
    {"num_keep", API_OPT_INT, 1, 0, NULL},
    {"seed", API_OPT_INT, 1, 0, NULL},
    {"num_predict", API_OPT_INT, 1, 0, NULL},
    {"top_k", API_OPT_INT, 1, 0, NULL},
    {"top_p", API_OPT_NUMBER, 1, 0, NULL},
    {"min_p", API_OPT_NUMBER, 1, 0, NULL},
    {"typical_p", API_OPT_NUMBER, 1, 0, NULL},
    {"tfs_z", API_OPT_NUMBER, 1, 0, NULL},
    {"repeat_last_n", API_OPT_INT, 1, 0, NULL},
    {"temperature", API_OPT_NUMBER, 1, 0, NULL},
    {"repeat_penalty", API_OPT_NUMBER, 1, 0, NULL},
    {"presence_penalty", API_OPT_NUMBER, 1, 0, NULL},
    {"frequency_penalty", API_OPT_NUMBER, 1, 0, NULL},
    {"mirostat", API_OPT_INT, 1, 0, NULL},
    {"mirostat_tau", API_OPT_NUMBER, 1, 0, NULL},
    {"mirostat_eta", API_OPT_NUMBER, 1, 0, NULL},
    {"penalize_newline", API_OPT_BOOL, 1, 0, NULL},
    {"stop", API_OPT_STRINGS, 1, 0, NULL},
    {"num_ctx", API_OPT_INT, 1, API_NUM_CTX_MAX, NULL},
    {"num_batch", API_OPT_INT, 1, API_NUM_CTX_MAX, NULL},
    {"num_thread", API_OPT_INT, 0, 65536, NULL},
    {"draft_num_predict", API_OPT_INT, 1, 0, NULL},
    {"use_mmap", API_OPT_BOOL, 1, 0, NULL},
    {"use_mlock", API_OPT_BOOL, 1, 0, NULL},
    {"numa", API_OPT_BOOL, 1, 0, NULL},
    {"low_vram", API_OPT_BOOL, 1, 0, NULL},
    {"f16_kv", API_OPT_BOOL, 1, 0, NULL},
    {"logits_all", API_OPT_BOOL, 1, 0, NULL},
    {"vocab_only", API_OPT_BOOL, 1, 0, NULL},
    {"num_gpu", API_OPT_INT, 1, 0, "vramd decides where and how a model is placed"},
    {"main_gpu", API_OPT_INT, 1, 0, "vramd decides which GPU runs a model"},
};

static const char *const api_opt_type_text[] = {
    [API_OPT_INT] = "an integer",
    [API_OPT_NUMBER] = "a number",
    [API_OPT_BOOL] = "a boolean",
    [API_OPT_STRINGS] = "an array of strings",
};

static bool
api_option_type_ok(const struct api_option *o, const json_t *v)
{
	switch (o->type) {
	case API_OPT_INT:
		return json_is_integer(v);
	case API_OPT_NUMBER:
		return json_is_number(v);
	case API_OPT_BOOL:
		return json_is_boolean(v);
	case API_OPT_STRINGS:
		return json_is_array(v) && api_array_of_strings(v);
	}
	return false;
}

/* Checks options (an object) for model; sets *num_ctx when given. Returns a message
 * (caller frees) or NULL. */
static char *
api_check_options(const json_t *options, const struct registry_model *model, int64_t *num_ctx)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)options, key, v)
	{
		const struct api_option *o = NULL;
		for (size_t i = 0; i < VD_ARRAY_LEN(api_options) && o == NULL; i++)
			if (strcmp(key, api_options[i].name) == 0)
				o = &api_options[i];
		struct vd_buf name;
		vd_buf_init(&name, 128);
		api_append_name(&name, key);
		char *msg = NULL;
		if (o == NULL)
			msg = xasprintf("unknown option %s in field 'options' (Ollama's options "
					"are listed in docs/api.md)",
					vd_buf_str(&name));
		else if (o->refused != NULL)
			msg = xasprintf("option %s is not accepted: %s", vd_buf_str(&name),
					o->refused);
		else if (!api_option_type_ok(o, v))
			msg = xasprintf("option %s must be %s", vd_buf_str(&name),
					api_opt_type_text[o->type]);
		else if (o->type == API_OPT_INT && o->min <= o->max &&
			 (json_integer_value(v) < o->min || json_integer_value(v) > o->max))
			msg = xasprintf("option %s must be between %lld and %lld (got %lld)",
					vd_buf_str(&name), (long long)o->min, (long long)o->max,
					(long long)json_integer_value(v));
		vd_buf_cleanup(&name);
		if (msg != NULL)
			return msg;
	}
	json_t *jctx = json_object_get(options, "num_ctx");
	if (jctx != NULL) {
		int64_t ctx = json_integer_value(jctx);
		if (model->ctx_train > 0 && ctx > model->ctx_train)
			return xasprintf(
			    "option 'num_ctx' (%lld) is beyond the training context of "
			    "model \"%s\" (%lld tokens)",
			    (long long)ctx, model->name, (long long)model->ctx_train);
		*num_ctx = ctx;
	}
	return NULL;
}

/* Builds the job's Ollama request fields from a submit body; returns a message on error. */
static char *
api_job_request(const json_t *body, enum job_kind kind, json_t **out)
{
	json_t *request = json_object();
	for (size_t i = 0; i < VD_ARRAY_LEN(api_fields); i++) {
		const struct api_field *f = &api_fields[i];
		json_t *v = json_object_get(body, f->name);
		if (v == NULL || json_is_null(v))
			continue;
		if (!(api_json_type(v) & f->types)) {
			json_decref(request);
			return xasprintf("field '%s' must be %s", f->name, f->type_text);
		}
		if (!(f->kinds & (1u << kind))) {
			json_decref(request);
			return xasprintf("field '%s' does not apply to kind %s", f->name,
					 job_kind_name(kind));
		}
		json_object_set(request, f->name, v);
	}
	*out = request;
	return NULL;
}

/* Parses an optional enum-valued field; -1 absent (or null), -2 bad (message set). */
static int
api_enum_field(const json_t *body, const char *field, int (*from_name)(const char *),
	       const char *choices, char **msg)
{
	json_t *v = json_object_get(body, field);
	if (v == NULL || json_is_null(v))
		return -1;
	int value = json_is_string(v) ? from_name(json_string_value(v)) : -1;
	if (value >= 0)
		return value;
	char *got = json_dumps(v, JSON_ENCODE_ANY);
	size_t len = got != NULL ? strlen(got) : 0;
	if (len > 64)
		memcpy(got + 58, "...", 4);
	*msg = xasprintf("field '%s' must be one of %s (got %s)", field, choices,
			 got != NULL ? got : "?");
	free(got);
	return -2;
}

int
api_deadline_ms(double seconds, int64_t *ms)
{
	if (!isfinite(seconds) || !(seconds > 0) || seconds > API_DEADLINE_S_MAX)
		return -EINVAL;
	*ms = (int64_t)ceil(seconds * 1000.0);
	return 0;
}

int
api_submit_parse(const json_t *body, const struct api_submit_env *env, struct api_submit *out,
		 char **cause)
{
	memset(out, 0, sizeof(*out));
	char *msg = NULL;
	int status = 400;

	json_t *jmodel = json_object_get(body, "model");
	if (jmodel == NULL || json_is_null(jmodel)) {
		msg = xstrdup("field 'model' is required");
		goto out_error;
	}
	if (!json_is_string(jmodel) || json_string_length(jmodel) == 0) {
		msg = xstrdup("field 'model' must be a non-empty string");
		goto out_error;
	}
	const char *name = json_string_value(jmodel);
	if (json_string_length(jmodel) > API_MODEL_NAME_MAX) {
		msg = xasprintf("field 'model' is longer than %d bytes", API_MODEL_NAME_MAX);
		goto out_error;
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(api_submit_refused); i++) {
		if (json_object_get(body, api_submit_refused[i]) != NULL) {
			msg = xasprintf("field '%s' is not accepted: vramd runs jobs without "
					"streaming and decides unloads itself",
					api_submit_refused[i]);
			goto out_error;
		}
	}
	msg = api_unknown_fields(
	    body, api_submit_field_known,
	    "model, kind, priority, metadata, deadline_s, placement, prompt, suffix, "
	    "system, template, context, raw, images, messages, tools, input, "
	    "dimensions, format, think, truncate, options");
	if (msg != NULL)
		goto out_error;
	int priority =
	    api_enum_field(body, "priority", job_priority_from_name, "high, normal, low", &msg);
	if (priority == -2)
		goto out_error;
	int kind = api_enum_field(body, "kind", job_kind_from_name, "generate, chat, embed", &msg);
	if (kind == -2)
		goto out_error;
	json_t *deadline = json_object_get(body, "deadline_s");
	int64_t deadline_ms = 0;
	if (deadline != NULL && !json_is_null(deadline) &&
	    (!json_is_number(deadline) ||
	     api_deadline_ms(json_number_value(deadline), &deadline_ms) < 0)) {
		msg =
		    xasprintf("field 'deadline_s' must be a number of seconds, more than 0 and at "
			      "most %.0f",
			      API_DEADLINE_S_MAX);
		goto out_error;
	}
	int placement =
	    api_enum_field(body, "placement", job_placement_from_name, "gpu, cpu, any", &msg);
	if (placement == -2)
		goto out_error;
	json_t *metadata = json_object_get(body, "metadata");
	if (metadata != NULL && !json_is_null(metadata) && !json_is_object(metadata)) {
		msg = xstrdup("field 'metadata' must be a JSON object");
		goto out_error;
	}
	json_t *options = json_object_get(body, "options");
	if (options != NULL && !json_is_null(options) && !json_is_object(options)) {
		msg = xstrdup("field 'options' must be an object");
		goto out_error;
	}

	if (!env->models_known) {
		status = 503;
		msg = xasprintf("the model list of ollama at %s is not known yet (is it running?); "
				"retry shortly",
				env->backend_url != NULL ? env->backend_url : "?");
		goto out_error;
	}
	const struct registry_model *model = registry_find(env->registry, name);
	if (model == NULL || !model->installed) {
		status = 404;
		msg = xasprintf(
		    "model \"%s\" not found; GET /api/models lists the installed models", name);
		goto out_error;
	}
	if (kind < 0)
		kind = api_infer_kind(body, model);
	if (kind < 0) {
		msg = xstrdup("one of 'prompt', 'messages' or 'input' is required");
		goto out_error;
	}
	if (!registry_supports_kind(model, kind)) {
		msg = xasprintf(
		    "model \"%s\" does not support %s%s", model->name, job_kind_name(kind),
		    (model->caps & REGISTRY_CAP_EMBEDDING) ? " (it is an embedding model)" : "");
		goto out_error;
	}
	if (json_is_object(options)) {
		msg = api_check_options(options, model, &out->num_ctx);
		if (msg != NULL)
			goto out_error;
	}
	msg = api_job_request(body, (enum job_kind)kind, &out->request);
	if (msg == NULL)
		msg = api_check_kind_fields(body, (enum job_kind)kind);
	if (msg != NULL)
		goto out_error;
	out->model = model;
	out->kind = (enum job_kind)kind;
	out->priority = priority >= 0 ? (enum job_priority)priority : JOB_PRIO_NORMAL;
	out->deadline_ms = deadline_ms;
	out->placement = placement;
	if (metadata != NULL && !json_is_null(metadata))
		out->metadata = json_incref(metadata);
	return 0;

out_error:
	api_submit_cleanup(out);
	*cause = msg;
	return status;
}

void
api_submit_cleanup(struct api_submit *sub)
{
	json_decref(sub->request);
	json_decref(sub->metadata);
	memset(sub, 0, sizeof(*sub));
}

/* --- GET /api/jobs ------------------------------------------------------------------ */

/*
 * Parses a comma-separated list of names into a bit mask, in one pass over text. Each
 * value is looked up at most once however often it repeats; the count of values and the
 * length of each are capped, so the work is linear in the text and bounded by the caps.
 */
static int
api_parse_name_list(const char *param, const char *text, int (*from_name)(const char *),
		    const char *choices, unsigned *mask, char **cause)
{
	*mask = 0;
	size_t count = 0;
	for (const char *p = text;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (++count > API_LIST_VALUES_MAX)
			return vd_fail(cause, -EINVAL, "parameter '%s' has more than %d values",
				       param, API_LIST_VALUES_MAX);
		if (len == 0)
			return vd_fail(cause, -EINVAL,
				       "parameter '%s' has an empty value; give a comma-separated "
				       "list of %s",
				       param, choices);
		char value[API_LIST_VALUE_MAX + 1];
		int bit = -1;
		if (len <= API_LIST_VALUE_MAX) {
			memcpy(value, p, len);
			value[len] = '\0';
			bit = from_name(value);
		}
		if (bit < 0)
			return vd_fail(cause, -EINVAL,
				       "parameter '%s' must be a list of %s (got \"%.*s%s\")",
				       param, choices,
				       (int)(len > API_LIST_VALUE_MAX ? API_LIST_VALUE_MAX : len),
				       p, len > API_LIST_VALUE_MAX ? "..." : "");
		*mask |= 1u << bit;
		if (end == NULL)
			break;
		p = end;
	}
	return 0;
}

int
api_jobs_filter_parse(const char *status, const char *priority, const char *model,
		      struct store_job_filter *out, char **cause)
{
	out->status_mask = 0;
	out->priority_mask = 0;
	out->model = NULL;
	if (status != NULL &&
	    api_parse_name_list("status", status, job_status_from_name,
				"queued, pending, running, complete, failed, cancelled",
				&out->status_mask, cause) < 0)
		return -EINVAL;
	if (priority != NULL &&
	    api_parse_name_list("priority", priority, job_priority_from_name, "high, normal, low",
				&out->priority_mask, cause) < 0)
		return -EINVAL;
	if (model != NULL) {
		size_t len = strlen(model);
		if (len == 0 || len > API_MODEL_NAME_MAX)
			return vd_fail(cause, -EINVAL,
				       "parameter 'model' must be a model name of 1 to %d bytes",
				       API_MODEL_NAME_MAX);
		out->model = model;
	}
	return 0;
}
