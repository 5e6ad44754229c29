/*
 * sim-validate.c: the 400s that Ollama's GenerateHandler and ChatHandler give before
 * a request is scheduled (server/routes.go at v0.33, fb30760: top_logprobs at 256
 * and 2452, raw mode at 422, thinking at 454-462 and 2616-2630, capabilities through
 * scheduleRunner's CheckCapabilities, server/images.go:543). Ollama 0.12.3 differs:
 * no top_logprobs field, "think" levels only for harmony models, and thinking is one
 * more capability. The module reads a request body and a catalogue model and holds
 * no state. Callers: sim-api.c, which runs each check where Ollama's handler does.
 */
#include "sim-validate.h"

#include "buf.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *
sim_go_json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "bool";
	default:
		return "null";
	}
}

int
sim_go_type_error(char **cause, const json_t *v, const char *go_struct, const char *field,
		  const char *go_type)
{
	/* Go quotes the number when a numeric field cannot hold it (2.5 into an int). */
	bool numeric = strncmp(go_type, "int", 3) == 0 || strncmp(go_type, "uint", 4) == 0 ||
		       strncmp(go_type, "float", 5) == 0;
	if (json_is_number(v) && numeric) {
		char *num = json_dumps(v, JSON_ENCODE_ANY);
		int rc = vd_fail(cause, -EINVAL,
				 "json: cannot unmarshal number %s into Go struct field %s.%s of "
				 "type %s",
				 num != NULL ? num : "", go_struct, field, go_type);
		free(num);
		return rc;
	}
	return vd_fail(cause, -EINVAL,
		       "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
		       sim_go_json_type_name(v), go_struct, field, go_type);
}

static int
sim_validate_type_error(char **cause, const json_t *v, bool chat, const char *field,
			const char *go_type)
{
	return sim_go_type_error(cause, v, chat ? "ChatRequest" : "GenerateRequest", field,
				 go_type);
}

static bool
sim_validate_is_set(const json_t *v)
{
	return v != NULL && !json_is_null(v);
}

/* Go's %q for ASCII text: quotes, with backslash escapes for quotes, backslashes and
 * control characters (other bytes are passed through). Caller frees. */
static char *
sim_validate_quote(const char *s)
{
	struct vd_buf b;
	vd_buf_init(&b, 4 * strlen(s) + 3); /* every byte escaped, and the quotes */
	vd_buf_append_str(&b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			vd_buf_printf(&b, "\\%c", *p);
		else if (*p == '\n')
			vd_buf_append_str(&b, "\\n");
		else if (*p == '\t')
			vd_buf_append_str(&b, "\\t");
		else if (*p == '\r')
			vd_buf_append_str(&b, "\\r");
		else if (*p < 0x20 || *p == 0x7f)
			vd_buf_printf(&b, "\\x%02x", *p);
		else
			vd_buf_printf(&b, "%c", *p);
	}
	vd_buf_append_str(&b, "\"");
	return vd_buf_take(&b);
}

/* api.ThinkValue's UnmarshalJSON: a bool, or a level string. */
static int
sim_validate_think(const json_t *v, enum sim_api_rules rules, struct sim_request_needs *needs,
		   char **cause)
{
	bool v033 = rules == SIM_RULES_V033;
	if (json_is_boolean(v)) {
		needs->think = json_is_true(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strcmp(s, "high") == 0 || strcmp(s, "medium") == 0 || strcmp(s, "low") == 0 ||
		    (v033 && strcmp(s, "max") == 0)) {
			needs->think = true;
			needs->think_level = s;
			return 0;
		}
		char *quoted = sim_validate_quote(s);
		int rc = vd_fail(cause, -EINVAL,
				 "invalid think value: %s (must be \"high\", \"medium\", \"low\", "
				 "%strue, or false)",
				 quoted, v033 ? "\"max\", " : "");
		free(quoted);
		return rc;
	}
	return vd_fail(cause, -EINVAL,
		       "think must be a boolean or string (\"high\", \"medium\", \"low\"%s)",
		       v033 ? ", \"max\", true, or false" : "");
}

int
sim_validate_decode(const json_t *body, bool chat, enum sim_api_rules rules,
		    struct sim_request_needs *needs, char **cause)
{
	memset(needs, 0, sizeof(*needs));
	json_t *think = json_object_get(body, "think");
	if (sim_validate_is_set(think) && sim_validate_think(think, rules, needs, cause) < 0)
		return -EINVAL;
	if (chat) {
		json_t *tools = json_object_get(body, "tools");
		if (sim_validate_is_set(tools)) {
			if (!json_is_array(tools))
				return sim_validate_type_error(cause, tools, chat, "tools",
							       "api.Tools");
			size_t i;
			json_t *tool;
			json_array_foreach(tools, i, tool)
			{
				if (!json_is_object(tool) && !json_is_null(tool))
					return sim_validate_type_error(cause, tool, chat, "tools",
								       "api.Tool");
			}
			needs->tools = json_array_size(tools) > 0;
		}
	} else {
		/* prompt, system and suffix are checked by the handler. */
		json_t *suffix = json_object_get(body, "suffix");
		needs->insert = json_is_string(suffix) && json_string_length(suffix) > 0;
		json_t *tmpl = json_object_get(body, "template");
		if (sim_validate_is_set(tmpl) && !json_is_string(tmpl))
			return sim_validate_type_error(cause, tmpl, chat, "template", "string");
		json_t *ctx = json_object_get(body, "context");
		if (sim_validate_is_set(ctx)) {
			if (!json_is_array(ctx))
				return sim_validate_type_error(cause, ctx, chat, "context",
							       "[]int");
			size_t i;
			json_t *tok;
			json_array_foreach(ctx, i, tok)
			{
				if (!json_is_integer(tok) && !json_is_null(tok))
					return sim_validate_type_error(cause, tok, chat, "context",
								       "int");
			}
		}
		json_t *raw = json_object_get(body, "raw");
		json_t *system = json_object_get(body, "system");
		needs->raw_conflict = json_is_true(raw) &&
				      ((json_is_string(tmpl) && json_string_length(tmpl) > 0) ||
				       (json_is_string(system) && json_string_length(system) > 0) ||
				       (json_is_array(ctx) && json_array_size(ctx) > 0));
	}
	if (rules != SIM_RULES_V033)
		return 0; /* 0.12 has no top_logprobs: the field is ignored */
	json_t *top = json_object_get(body, "top_logprobs");
	if (!sim_validate_is_set(top))
		return 0;
	if (!json_is_integer(top))
		return sim_validate_type_error(cause, top, chat, "top_logprobs", "int");
	json_int_t n = json_integer_value(top);
	if (n < 0 || n > 20)
		return vd_fail(cause, -EINVAL, "top_logprobs must be between 0 and 20");
	return 0;
}

char *
sim_model_full_name(const char *name)
{
	const char *slash = strchr(name, '/');
	if (slash == NULL)
		return xasprintf("registry.ollama.ai/library/%s", name);
	if (strchr(slash + 1, '/') == NULL)
		return xasprintf("registry.ollama.ai/%s", name);
	return xstrdup(name);
}

int
sim_validate_model(const struct sim_model *m, const char *name, bool chat, enum sim_api_rules rules,
		   const struct sim_request_needs *needs, char **cause)
{
	bool v033 = rules == SIM_RULES_V033;
	if (!chat && needs->raw_conflict)
		return vd_fail(cause, -EINVAL,
			       "raw mode does not support template, system, or context");
	bool thinks = (m->capabilities & SIM_CAP_THINKING) != 0;
	if (v033 && needs->think && !thinks)
		return vd_fail(cause, -EINVAL, "\"%s\" does not support thinking", name);
	if (!v033 && needs->think_level != NULL) {
		/* 0.12: levels are for harmony (gpt-oss) models only; none is simulated. */
		char *quoted = sim_validate_quote(needs->think_level);
		int rc = vd_fail(cause, -EINVAL, "think value %s is not supported for this model",
				 quoted);
		free(quoted);
		return rc;
	}
	if (!(m->capabilities & SIM_CAP_COMPLETION))
		return vd_fail(cause, -EINVAL, "\"%s\" does not support %s", name,
			       chat ? "chat" : "generate");
	/* CheckCapabilities: the missing ones in the order the handler asked for them. */
	const char *missing[3];
	size_t n = 0;
	if (needs->insert && !(m->capabilities & SIM_CAP_INSERT))
		missing[n++] = "insert";
	if (needs->tools && !(m->capabilities & SIM_CAP_TOOLS))
		missing[n++] = "tools";
	if (!v033 && needs->think && !thinks)
		missing[n++] = "thinking";
	if (n == 0)
		return 0;
	char *full = sim_model_full_name(m->name);
	char *list = xstrdup(missing[0]);
	for (size_t i = 1; i < n; i++) {
		char *longer = xasprintf("%s\n%s", list, missing[i]);
		free(list);
		list = longer;
	}
	int rc = vd_fail(cause, -EINVAL, "%s does not support %s", full, list);
	free(list);
	free(full);
	return rc;
}
