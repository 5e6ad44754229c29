/*
 * openai.c: OpenAI's API translated to Ollama's native one and back (see openai.h).
 *
 * The mapping follows Ollama's compatibility layer (openai/openai.go, middleware/openai.go
 * at v0.33), read for its behaviour and written anew here. Where vramd differs it says so
 * at the spot: requests are checked more strictly (a wrong type or a value out of
 * OpenAI's range is a 400 naming the parameter, where Ollama passes it on or fails in
 * its JSON decoder), "developer" messages become "system" ones, tool_choice "none"
 * withholds the tools, and an error in a stream becomes an OpenAI error event.
 *
 * Invariants: nothing here reads a clock or keeps state between calls besides the
 * caller's struct openai_stream; every message that quotes client input cuts it to
 * OPENAI_QUOTE_MAX bytes, so an error never grows with the body.
 */
#include "openai.h"

#include "buf.h"
#include "http-util.h"
#include "ollama-parse.h"
#include "util.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The most bytes of a client's value an error message quotes. */
#define OPENAI_QUOTE_MAX 64
/* The largest reply body built here; replies are a small multiple of a node's reply,
 * which the backend caps already. */
#define OPENAI_REPLY_MAX (256 * VD_MIB)
/* JSON numbers are doubles: integers beyond this lose digits. */
#define OPENAI_EXACT_INT_MAX 9007199254740992.0

/* Ollama stamps every reply with this fingerprint; clients only echo it. */
static const char openai_fingerprint[] = "fp_ollama";

/* --- base64 ----------------------------------------------------------------------------- */

static const char openai_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
openai_base64_encode(const unsigned char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		out[o++] = openai_b64_alphabet[(v >> 18) & 63];
		out[o++] = openai_b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? openai_b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? openai_b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int
openai_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
openai_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
	unsigned char *buf = xmalloc(len / 4 * 3 + 3);
	size_t o = 0;
	uint32_t acc = 0;
	int nchars = 0, pad = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\r' || c == '\n') /* as Go's decoder, which Ollama uses */
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = openai_b64_value(c);
		if (v < 0 || pad > 0)
			goto out_bad;
		acc = acc << 6 | (uint32_t)v;
		if (++nchars == 4) {
			buf[o++] = (unsigned char)(acc >> 16);
			buf[o++] = (unsigned char)(acc >> 8);
			buf[o++] = (unsigned char)acc;
			acc = 0;
			nchars = 0;
		}
	}
	if (nchars == 2 && pad == 2) {
		buf[o++] = (unsigned char)(acc >> 4);
	} else if (nchars == 3 && pad == 1) {
		buf[o++] = (unsigned char)(acc >> 10);
		buf[o++] = (unsigned char)(acc >> 2);
	} else if (nchars != 0 || pad != 0) {
		goto out_bad;
	}
	*out = buf;
	*out_len = o;
	return 0;
out_bad:
	free(buf);
	return -EINVAL;
}

/* --- refusing a request ------------------------------------------------------------------ */

/* How OpenAI names a JSON type in its messages. */
static const char *
openai_type_text(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a decimal";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_ARRAY:
		return "an array";
	case JSON_OBJECT:
		return "an object";
	default:
		return "null";
	}
}

/* The value as compact JSON (strings without quotes), cut to OPENAI_QUOTE_MAX bytes. */
static void
openai_quote(const json_t *v, char *buf, size_t size)
{
	char *text = json_is_string(v) ? xstrdup(json_string_value(v))
				       : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		text = xstrdup("?");
	if (strlen(text) > OPENAI_QUOTE_MAX)
		memcpy(text + OPENAI_QUOTE_MAX - 3, "...", 4);
	vd_strlcpy(buf, text, size);
	free(text);
}

/* Refuses the request: fills info's param and code and *error; returns -EINVAL. */
static int openai_reject(struct openai_req_info *info, char **error, const char *code,
			 const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
openai_reject(struct openai_req_info *info, char **error, const char *code, const char *param,
	      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vd_strlcpy(info->param, param != NULL ? param : "", sizeof(info->param));
	info->code = code;
	*error = xstrdup(msg);
	return -EINVAL;
}

static int
openai_reject_type(struct openai_req_info *info, char **error, const char *param,
		   const char *expected, const json_t *got)
{
	return openai_reject(info, error, "invalid_type", param,
			     "Invalid type for '%s': expected %s, but got %s instead.", param,
			     expected, openai_type_text(got));
}

static int
openai_reject_missing(struct openai_req_info *info, char **error, const char *param)
{
	return openai_reject(info, error, "missing_required_parameter", param,
			     "Missing required parameter: '%s'.", param);
}

/* A field that is absent or JSON null counts as not given, as in OpenAI's API. */
static const json_t *
openai_field(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	return v == NULL || json_is_null(v) ? NULL : v;
}

/* Reads an optional string field: 1 given (*out borrowed), 0 not given, -EINVAL. */
static int
openai_string(const json_t *obj, const char *name, const char *param, const char **out,
	      struct openai_req_info *info, char **error)
{
	const json_t *v = openai_field(obj, name);
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return openai_reject_type(info, error, param, "a string", v);
	*out = json_string_value(v);
	return 1;
}

/* Reads an optional boolean field: 1 given, 0 not given, -EINVAL. */
static int
openai_bool(const json_t *obj, const char *name, bool *out, struct openai_req_info *info,
	    char **error)
{
	const json_t *v = openai_field(obj, name);
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return openai_reject_type(info, error, name, "a boolean", v);
	*out = json_is_true(v);
	return 1;
}

/*
 * Reads an optional number field within [min, max]; integer fields also take a decimal
 * with no fraction (1.0), as JSON does not tell them apart. Returns 1 given (*out),
 * 0 not given, -EINVAL.
 */
static int
openai_number(const json_t *obj, const char *name, bool integer, double min, double max,
	      double *out, struct openai_req_info *info, char **error)
{
	const json_t *v = openai_field(obj, name);
	if (v == NULL)
		return 0;
	double x = json_number_value(v);
	if (!json_is_number(v) ||
	    (integer && json_is_real(v) && (x != floor(x) || fabs(x) > OPENAI_EXACT_INT_MAX)))
		return openai_reject_type(info, error, name, integer ? "an integer" : "a number",
					  v);
	const char *kind = integer ? "integer" : "decimal";
	if (x < min)
		return openai_reject(
		    info, error, integer ? "integer_below_min_value" : "decimal_below_min_value",
		    name,
		    "Invalid '%s': %s below minimum value. Expected a value >= %g, "
		    "but got %g instead.",
		    name, kind, min, x);
	if (x > max)
		return openai_reject(
		    info, error, integer ? "integer_above_max_value" : "decimal_above_max_value",
		    name,
		    "Invalid '%s': %s above maximum value. Expected a value <= %g, "
		    "but got %g instead.",
		    name, kind, max, x);
	*out = x;
	return 1;
}

/* --- the parts chat and completions share ------------------------------------------------ */

#define OPENAI_EP_CHAT	      (1u << OPENAI_CHAT)
#define OPENAI_EP_COMPLETIONS (1u << OPENAI_COMPLETIONS)

/*
 * The sampling parameters that become Ollama options, with OpenAI's ranges. When absent
 * some are sent anyway with OpenAI's default, as Ollama does, so a model's own Modelfile
 * defaults (temperature 0.8, top_p 0.9) do not apply to OpenAI clients. Later rows win
 * over earlier ones of the same option: max_completion_tokens, OpenAI's current name,
 * over the deprecated max_tokens.
 */
static const struct openai_sampling {
	const char *name;   /* OpenAI's field */
	const char *option; /* Ollama's option */
	bool integer;
	double min, max;
	unsigned endpoints;			 /* OPENAI_EP_* where the field exists */
	double chat_default, completion_default; /* NAN: nothing when absent */
} openai_sampling[] = {
    {"temperature", "temperature", false, 0, 2, OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS, 1.0, 1.0},
    {"top_p", "top_p", false, 0, 1, OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS, 1.0, 1.0},
    {"frequency_penalty", "frequency_penalty", false, -2, 2, OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS,
     NAN, 0.0},
    {"presence_penalty", "presence_penalty", false, -2, 2, OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS,
     NAN, 0.0},
    {"seed", "seed", true, -OPENAI_EXACT_INT_MAX, OPENAI_EXACT_INT_MAX,
     OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS, NAN, NAN},
    {"max_tokens", "num_predict", true, 1, OPENAI_EXACT_INT_MAX,
     OPENAI_EP_CHAT | OPENAI_EP_COMPLETIONS, NAN, NAN},
    {"max_completion_tokens", "num_predict", true, 1, OPENAI_EXACT_INT_MAX, OPENAI_EP_CHAT, NAN,
     NAN},
};

static json_t *
openai_option_value(bool integer, double x)
{
	return integer ? json_integer((json_int_t)x) : json_real(x);
}

/* Fills options from the sampling parameters and stop; -EINVAL on a bad one. */
static int
openai_options(const json_t *body, enum openai_endpoint ep, json_t *options,
	       struct openai_req_info *info, char **error)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(openai_sampling); i++) {
		const struct openai_sampling *s = &openai_sampling[i];
		if (!(s->endpoints & (1u << ep)))
			continue;
		double x;
		int rc = openai_number(body, s->name, s->integer, s->min, s->max, &x, info, error);
		if (rc < 0)
			return rc;
		double dflt = ep == OPENAI_CHAT ? s->chat_default : s->completion_default;
		if (rc == 1)
			json_object_set_new(options, s->option, openai_option_value(s->integer, x));
		else if (!isnan(dflt) && json_object_get(options, s->option) == NULL)
			json_object_set_new(options, s->option,
					    openai_option_value(s->integer, dflt));
	}

	const json_t *stop = openai_field(body, "stop");
	if (stop != NULL) {
		json_t *list = json_array();
		if (json_is_string(stop)) {
			json_array_append(list, (json_t *)stop);
		} else if (json_is_array(stop)) {
			size_t i;
			json_t *v;
			json_array_foreach(stop, i, v)
			{
				if (!json_is_string(v)) {
					json_decref(list);
					char param[OPENAI_PARAM_MAX];
					snprintf(param, sizeof(param), "stop[%zu]", i);
					return openai_reject_type(info, error, param, "a string",
								  v);
				}
				json_array_append(list, v);
			}
		} else {
			json_decref(list);
			return openai_reject_type(info, error, "stop",
						  "one of a string or array of strings", stop);
		}
		json_object_set_new(options, "stop", list);
	}
	return 0;
}

/* Reads stream and stream_options.include_usage into info. */
static int
openai_stream_fields(const json_t *body, struct openai_req_info *info, char **error)
{
	int rc = openai_bool(body, "stream", &info->stream, info, error);
	if (rc < 0)
		return rc;
	const json_t *so = openai_field(body, "stream_options");
	if (so == NULL)
		return 0;
	if (!json_is_object(so))
		return openai_reject_type(info, error, "stream_options", "an object", so);
	const json_t *iu = openai_field(so, "include_usage");
	if (iu != NULL && !json_is_boolean(iu))
		return openai_reject_type(info, error, "stream_options.include_usage", "a boolean",
					  iu);
	/* OpenAI refuses stream_options without stream; clients that always send it would
	 * fail for nothing, so it is just unused then. */
	info->include_usage = info->stream && iu != NULL && json_is_true(iu);
	return 0;
}

/* The request's model: a non-empty string. */
static int
openai_model(const json_t *body, json_t *native, struct openai_req_info *info, char **error)
{
	const char *model = NULL;
	int rc = openai_string(body, "model", "model", &model, info, error);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return openai_reject_missing(info, error, "model");
	if (model[0] == '\0')
		return openai_reject(info, error, "invalid_value", "model",
				     "Invalid 'model': empty string. Expected a model name.");
	json_object_set_new(native, "model", json_string(model));
	return 0;
}

/* n (and best_of for completions): vramd returns one choice per request, as Ollama. */
static int
openai_single_choice(const json_t *body, const char *name, struct openai_req_info *info,
		     char **error)
{
	double n = 1;
	int rc = openai_number(body, name, true, 1, OPENAI_EXACT_INT_MAX, &n, info, error);
	if (rc == 1 && n != 1)
		return openai_reject(info, error, "invalid_value", name,
				     "Invalid '%s': only 1 is supported (got %g): each request "
				     "returns one choice.",
				     name, n);
	return rc < 0 ? rc : 0;
}

/* --- chat messages ----------------------------------------------------------------------- */

static const char *const openai_roles[] = {"system", "developer", "user", "assistant", "tool"};

/* An image_url (a base64 data URI of an image, as Ollama takes) -> its canonical base64. */
static int
openai_image(const char *url, const char *param, char **b64, struct openai_req_info *info,
	     char **error)
{
	static const char *const prefixes[] = {
	    "data:;base64,",	      "data:image/jpeg;base64,", "data:image/jpg;base64,",
	    "data:image/png;base64,", "data:image/webp;base64,",
	};
	if (vd_str_has_prefix(url, "http://") || vd_str_has_prefix(url, "https://"))
		return openai_reject(info, error, "invalid_value", param,
				     "Invalid '%s': image URLs are not currently supported, please "
				     "use base64 encoded data instead.",
				     param);
	const char *data = NULL;
	for (size_t i = 0; i < VD_ARRAY_LEN(prefixes) && data == NULL; i++)
		if (vd_str_has_prefix(url, prefixes[i]))
			data = url + strlen(prefixes[i]);
	unsigned char *bytes;
	size_t len;
	if (data == NULL || openai_base64_decode(data, strlen(data), &bytes, &len) < 0)
		return openai_reject(info, error, "invalid_value", param,
				     "Invalid '%s': invalid image input: expected a base64 data "
				     "URI of a jpeg, png or webp image "
				     "(data:image/png;base64,...).",
				     param);
	*b64 = openai_base64_encode(bytes, len);
	free(bytes);
	return 0;
}

/* An assistant message's tool_calls -> Ollama's, whose arguments are objects. */
static int
openai_tool_calls_in(const json_t *calls, size_t m, json_t **out, struct openai_req_info *info,
		     char **error)
{
	char param[OPENAI_PARAM_MAX];
	snprintf(param, sizeof(param), "messages[%zu].tool_calls", m);
	if (!json_is_array(calls))
		return openai_reject_type(info, error, param, "an array", calls);
	json_t *list = json_array();
	size_t i;
	json_t *call;
	json_array_foreach(calls, i, call)
	{
		const json_t *fn = json_is_object(call) ? openai_field(call, "function") : NULL;
		const json_t *id = json_is_object(call) ? openai_field(call, "id") : NULL;
		const json_t *name = fn != NULL ? openai_field(fn, "name") : NULL;
		const json_t *args = fn != NULL ? openai_field(fn, "arguments") : NULL;
		snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]", m, i);
		int rc = 0;
		if (!json_is_object(call))
			rc = openai_reject_type(info, error, param, "an object", call);
		else if (id != NULL && !json_is_string(id))
			rc = openai_reject_type(info, error, param, "a string 'id'", id);
		else if (fn == NULL || !json_is_object(fn))
			rc = openai_reject(info, error, "invalid_value", param,
					   "Invalid '%s': expected a 'function' object with 'name' "
					   "and 'arguments'.",
					   param);
		else if (name == NULL || !json_is_string(name))
			rc =
			    openai_reject(info, error, "invalid_value", param,
					  "Invalid '%s': 'function.name' must be a string.", param);
		else if (args != NULL && !json_is_string(args))
			rc = openai_reject(info, error, "invalid_type", param,
					   "Invalid '%s': 'function.arguments' must be a string of "
					   "JSON.",
					   param);
		if (rc < 0) {
			json_decref(list);
			return rc;
		}
		/* An absent or empty arguments string is a call without arguments. */
		json_t *obj = NULL;
		const char *text = args != NULL ? json_string_value(args) : "";
		if (text[0] == '\0')
			obj = json_object();
		else
			obj = json_loadb(text, json_string_length(args), 0, NULL);
		if (obj == NULL || !json_is_object(obj)) {
			json_decref(obj);
			json_decref(list);
			return openai_reject(info, error, "invalid_value", param,
					     "Invalid '%s': invalid tool call arguments: "
					     "'function.arguments' must be a JSON object.",
					     param);
		}
		json_t *native_fn = json_pack("{s:O,s:o}", "name", name, "arguments", obj);
		json_t *native_call = json_object();
		if (id != NULL)
			json_object_set(native_call, "id", (json_t *)id);
		json_object_set_new(native_call, "function", native_fn);
		json_array_append_new(list, native_call);
	}
	*out = list;
	return 0;
}

/* The name of the tool an assistant call with this id asked for, the last one winning
 * as in Ollama; NULL when none. */
static const char *
openai_tool_name_for(const json_t *msgs, const char *call_id)
{
	for (size_t i = json_array_size(msgs); i-- > 0;) {
		const json_t *calls = json_object_get(json_array_get(msgs, i), "tool_calls");
		size_t j;
		json_t *call;
		json_array_foreach(calls, j, call)
		{
			const char *id = json_string_value(json_object_get(call, "id"));
			if (id != NULL && strcmp(id, call_id) == 0) {
				const char *name = json_string_value(
				    json_object_get(json_object_get(call, "function"), "name"));
				if (name != NULL)
					return name;
			}
		}
	}
	return NULL;
}

/* One content part -> a native message of role (images for image_url and input_audio,
 * which Ollama hands the model the same way). */
static int
openai_content_part(const json_t *part, size_t m, size_t p, const char *role, json_t **out,
		    struct openai_req_info *info, char **error)
{
	char param[OPENAI_PARAM_MAX];
	snprintf(param, sizeof(param), "messages[%zu].content[%zu]", m, p);
	if (!json_is_object(part))
		return openai_reject_type(info, error, param, "an object", part);
	const char *type = json_string_value(json_object_get(part, "type"));
	if (type == NULL) {
		snprintf(param, sizeof(param), "messages[%zu].content[%zu].type", m, p);
		return openai_reject_missing(info, error, param);
	}
	if (strcmp(type, "text") == 0) {
		const json_t *text = json_object_get(part, "text");
		snprintf(param, sizeof(param), "messages[%zu].content[%zu].text", m, p);
		if (text == NULL || !json_is_string(text))
			return text == NULL
				   ? openai_reject_missing(info, error, param)
				   : openai_reject_type(info, error, param, "a string", text);
		*out = json_pack("{s:s,s:O}", "role", role, "content", text);
		return 0;
	}
	char *b64 = NULL;
	if (strcmp(type, "image_url") == 0) {
		const json_t *iu = json_object_get(part, "image_url");
		const json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
		snprintf(param, sizeof(param), "messages[%zu].content[%zu].image_url", m, p);
		if (url == NULL || !json_is_string(url))
			return openai_reject(info, error, "invalid_type", param,
					     "Invalid '%s': expected a string or an object with a "
					     "string 'url'.",
					     param);
		int rc = openai_image(json_string_value(url), param, &b64, info, error);
		if (rc < 0)
			return rc;
	} else if (strcmp(type, "input_audio") == 0) {
		const json_t *audio = json_object_get(part, "input_audio");
		const json_t *data = json_is_object(audio) ? json_object_get(audio, "data") : NULL;
		snprintf(param, sizeof(param), "messages[%zu].content[%zu].input_audio", m, p);
		unsigned char *bytes;
		size_t len;
		if (data == NULL || !json_is_string(data) ||
		    openai_base64_decode(json_string_value(data), json_string_length(data), &bytes,
					 &len) < 0)
			return openai_reject(info, error, "invalid_value", param,
					     "Invalid '%s': expected an object with base64 "
					     "'data'.",
					     param);
		b64 = openai_base64_encode(bytes, len);
		free(bytes);
	} else {
		char got[OPENAI_QUOTE_MAX + 1];
		openai_quote(json_object_get(part, "type"), got, sizeof(got));
		snprintf(param, sizeof(param), "messages[%zu].content[%zu].type", m, p);
		return openai_reject(info, error, "invalid_value", param,
				     "Invalid value: '%s'. Supported values are: 'text', "
				     "'image_url' and 'input_audio'.",
				     got);
	}
	*out = json_pack("{s:s,s:s,s:[s]}", "role", role, "content", "", "images", b64);
	free(b64);
	return 0;
}

/* One OpenAI message -> one or more native messages appended to out. */
static int
openai_message(const json_t *msgs, size_t m, json_t *out, struct openai_req_info *info,
	       char **error)
{
	const json_t *msg = json_array_get(msgs, m);
	char param[OPENAI_PARAM_MAX];
	snprintf(param, sizeof(param), "messages[%zu]", m);
	if (!json_is_object(msg))
		return openai_reject_type(info, error, param, "an object", msg);

	snprintf(param, sizeof(param), "messages[%zu].role", m);
	const char *role = NULL;
	int rc = openai_string(msg, "role", param, &role, info, error);
	if (rc <= 0)
		return rc < 0 ? rc : openai_reject_missing(info, error, param);
	bool known = false;
	for (size_t i = 0; i < VD_ARRAY_LEN(openai_roles) && !known; i++)
		known = strcmp(role, openai_roles[i]) == 0;
	if (!known) {
		char got[OPENAI_QUOTE_MAX + 1];
		openai_quote(json_object_get(msg, "role"), got, sizeof(got));
		return openai_reject(info, error, "invalid_value", param,
				     "Invalid value: '%s'. Supported values are: 'system', "
				     "'developer', 'user', 'assistant', and 'tool'.",
				     got);
	}
	/* OpenAI's newer name for system instructions; Ollama's chat templates know only
	 * "system", so a developer message would otherwise be dropped by most of them. */
	if (strcmp(role, "developer") == 0)
		role = "system";

	const char *reasoning = NULL, *call_id = NULL, *tool_name = NULL;
	snprintf(param, sizeof(param), "messages[%zu].reasoning", m);
	if ((rc = openai_string(msg, "reasoning", param, &reasoning, info, error)) < 0)
		return rc;
	snprintf(param, sizeof(param), "messages[%zu].tool_call_id", m);
	if ((rc = openai_string(msg, "tool_call_id", param, &call_id, info, error)) < 0)
		return rc;
	if (strcmp(role, "tool") == 0) {
		snprintf(param, sizeof(param), "messages[%zu].name", m);
		if ((rc = openai_string(msg, "name", param, &tool_name, info, error)) < 0)
			return rc;
		if ((tool_name == NULL || tool_name[0] == '\0') && call_id != NULL)
			tool_name = openai_tool_name_for(msgs, call_id);
	}
	json_t *calls = NULL;
	const json_t *jcalls = openai_field(msg, "tool_calls");
	if (jcalls != NULL && (rc = openai_tool_calls_in(jcalls, m, &calls, info, error)) < 0)
		return rc;

	/* Each part of an array content becomes its own message, as Ollama does; the
	 * message's tool fields go on the last one. */
	size_t first = json_array_size(out);
	const json_t *content = openai_field(msg, "content");
	snprintf(param, sizeof(param), "messages[%zu].content", m);
	if (content == NULL && calls == NULL) {
		rc = openai_reject_missing(info, error, param);
	} else if (content == NULL || json_is_string(content)) {
		json_array_append_new(out,
				      json_pack("{s:s,s:s}", "role", role, "content",
						content != NULL ? json_string_value(content) : ""));
	} else if (json_is_array(content) && json_array_size(content) == 0) {
		rc = openai_reject(info, error, "empty_array", param,
				   "Invalid '%s': empty array. Expected an array with minimum "
				   "length 1, but got an empty array instead.",
				   param);
	} else if (json_is_array(content)) {
		size_t p;
		json_t *part;
		json_array_foreach(content, p, part)
		{
			json_t *native = NULL;
			if ((rc = openai_content_part(part, m, p, role, &native, info, error)) < 0)
				break;
			json_array_append_new(out, native);
		}
	} else {
		rc = openai_reject_type(info, error, param, "one of a string or array of objects",
					content);
	}
	if (rc < 0) {
		json_decref(calls);
		return rc;
	}
	json_t *last = json_array_get(out, json_array_size(out) - 1);
	if (json_array_size(out) > first) {
		if (reasoning != NULL && reasoning[0] != '\0')
			json_object_set_new(last, "thinking", json_string(reasoning));
		if (calls != NULL && json_array_size(calls) > 0)
			json_object_set(last, "tool_calls", calls);
		if (tool_name != NULL && tool_name[0] != '\0')
			json_object_set_new(last, "tool_name", json_string(tool_name));
		if (call_id != NULL)
			json_object_set_new(last, "tool_call_id", json_string(call_id));
	}
	json_decref(calls);
	return 0;
}

/* --- chat: the other fields -------------------------------------------------------------- */

/* tools are passed through after a shape check; tool_choice "none" withholds them. */
static int
openai_tools(const json_t *body, json_t *native, struct openai_req_info *info, char **error)
{
	char param[OPENAI_PARAM_MAX];
	const json_t *choice = openai_field(body, "tool_choice");
	bool withhold = false;
	if (choice != NULL) {
		const char *c = json_string_value(choice);
		bool ok = json_is_object(choice) ||
			  (c != NULL && (strcmp(c, "none") == 0 || strcmp(c, "auto") == 0 ||
					 strcmp(c, "required") == 0));
		if (!ok) {
			char got[OPENAI_QUOTE_MAX + 1];
			openai_quote(choice, got, sizeof(got));
			return openai_reject(info, error, "invalid_value", "tool_choice",
					     "Invalid value: '%s'. Supported values are: 'none', "
					     "'auto', 'required' or a named tool object.",
					     got);
		}
		withhold = c != NULL && strcmp(c, "none") == 0;
	}
	const json_t *tools = openai_field(body, "tools");
	if (tools == NULL)
		return 0;
	if (!json_is_array(tools))
		return openai_reject_type(info, error, "tools", "an array", tools);
	size_t i;
	json_t *tool;
	json_array_foreach(tools, i, tool)
	{
		snprintf(param, sizeof(param), "tools[%zu]", i);
		if (!json_is_object(tool))
			return openai_reject_type(info, error, param, "an object", tool);
		const json_t *type = json_object_get(tool, "type");
		const json_t *fn = json_object_get(tool, "function");
		if (type != NULL && !json_is_string(type)) {
			snprintf(param, sizeof(param), "tools[%zu].type", i);
			return openai_reject_type(info, error, param, "a string", type);
		}
		if (fn == NULL || !json_is_object(fn) ||
		    !json_is_string(json_object_get(fn, "name"))) {
			snprintf(param, sizeof(param), "tools[%zu].function", i);
			return openai_reject(info, error, "invalid_value", param,
					     "Invalid '%s': expected an object with a string "
					     "'name'.",
					     param);
		}
	}
	if (!withhold && json_array_size(tools) > 0)
		json_object_set_new(native, "tools", json_deep_copy(tools));
	return 0;
}

/* response_format -> format: json_object is "json", json_schema its schema. */
static int
openai_response_format(const json_t *body, json_t *native, struct openai_req_info *info,
		       char **error)
{
	const json_t *rf = openai_field(body, "response_format");
	if (rf == NULL)
		return 0;
	if (!json_is_object(rf))
		return openai_reject_type(info, error, "response_format", "an object", rf);
	const json_t *jtype = json_object_get(rf, "type");
	if (jtype == NULL || !json_is_string(jtype))
		return jtype == NULL ? openai_reject_missing(info, error, "response_format.type")
				     : openai_reject_type(info, error, "response_format.type",
							  "a string", jtype);
	/* Ollama trims and lower-cases the type. */
	char type[32];
	const char *t = json_string_value(jtype);
	while (*t == ' ' || *t == '\t')
		t++;
	size_t n = 0;
	for (; t[n] != '\0' && n < sizeof(type) - 1; n++)
		type[n] = (char)(t[n] >= 'A' && t[n] <= 'Z' ? t[n] - 'A' + 'a' : t[n]);
	while (n > 0 && (type[n - 1] == ' ' || type[n - 1] == '\t'))
		n--;
	type[n] = '\0';
	if (strcmp(type, "text") == 0)
		return 0;
	if (strcmp(type, "json_object") == 0) {
		json_object_set_new(native, "format", json_string("json"));
		return 0;
	}
	if (strcmp(type, "json_schema") == 0) {
		const json_t *js = openai_field(rf, "json_schema");
		if (js != NULL && !json_is_object(js))
			return openai_reject_type(info, error, "response_format.json_schema",
						  "an object", js);
		const json_t *schema = js != NULL ? openai_field(js, "schema") : NULL;
		if (schema != NULL && !json_is_object(schema))
			return openai_reject_type(info, error, "response_format.json_schema.schema",
						  "an object", schema);
		if (schema != NULL)
			json_object_set_new(native, "format", json_deep_copy(schema));
		return 0;
	}
	char got[OPENAI_QUOTE_MAX + 1];
	openai_quote(jtype, got, sizeof(got));
	return openai_reject(info, error, "invalid_value", "response_format.type",
			     "Invalid value: '%s'. Supported values are: 'text', 'json_object', "
			     "and 'json_schema'.",
			     got);
}

/* OpenAI's reasoning efforts -> Ollama's think values. OpenAI's scale goes past
 * Ollama's at both ends, and clients add tiers of their own: Ollama clamps those to the
 * nearest tier rather than refuse them, and so does vramd. */
static const struct openai_effort {
	const char *effort;
	const char *think; /* NULL: think false */
} openai_efforts[] = {
    {"none", NULL},   {"minimal", "low"}, {"low", "low"},   {"medium", "medium"},
    {"high", "high"}, {"max", "max"},	  {"xhigh", "max"}, {"ultra", "max"},
};

static int
openai_reasoning(const json_t *body, json_t *native, struct openai_req_info *info, char **error)
{
	const char *effort = NULL, *param = "reasoning_effort";
	const json_t *reasoning = openai_field(body, "reasoning");
	int rc;
	if (reasoning != NULL) {
		/* The object wins over reasoning_effort, as in Ollama. */
		if (!json_is_object(reasoning))
			return openai_reject_type(info, error, "reasoning", "an object", reasoning);
		param = "reasoning.effort";
		rc = openai_string(reasoning, "effort", param, &effort, info, error);
	} else {
		rc = openai_string(body, "reasoning_effort", param, &effort, info, error);
	}
	if (rc <= 0 || effort[0] == '\0')
		return rc < 0 ? rc : 0;
	for (size_t i = 0; i < VD_ARRAY_LEN(openai_efforts); i++) {
		const struct openai_effort *e = &openai_efforts[i];
		if (strcmp(effort, e->effort) == 0) {
			json_object_set_new(native, "think",
					    e->think != NULL ? json_string(e->think)
							     : json_false());
			return 0;
		}
	}
	char got[OPENAI_QUOTE_MAX + 1];
	vd_strlcpy(got, effort, sizeof(got));
	return openai_reject(info, error, "invalid_value", param,
			     "invalid reasoning value: \"%s\" (must be \"minimal\", \"low\", "
			     "\"medium\", \"high\", \"xhigh\", \"ultra\", \"max\", or \"none\")",
			     got);
}

/* Chat's logprobs (a boolean) and top_logprobs, passed on as Ollama's fields. */
static int
openai_chat_logprobs(const json_t *body, json_t *native, struct openai_req_info *info, char **error)
{
	bool logprobs = false;
	double top = 0;
	int rc = openai_bool(body, "logprobs", &logprobs, info, error);
	if (rc < 0)
		return rc;
	if ((rc = openai_number(body, "top_logprobs", true, 0, 20, &top, info, error)) < 0)
		return rc;
	if (logprobs)
		json_object_set_new(native, "logprobs", json_true());
	if (top > 0)
		json_object_set_new(native, "top_logprobs", json_integer((json_int_t)top));
	return 0;
}

static void
openai_info_init(struct openai_req_info *info, enum openai_endpoint ep)
{
	memset(info, 0, sizeof(*info));
	info->endpoint = ep;
}

/* Ends a request translation: hands native over, or drops it on failure. */
static int
openai_request_done(int rc, json_t *native, json_t **out_native, int *http_status)
{
	if (rc < 0) {
		json_decref(native);
		*out_native = NULL;
		*http_status = 400;
		return -EINVAL;
	}
	*out_native = native;
	*http_status = 200;
	return 0;
}

/* What every request starts with: info reset for ep, the body an object, its model. */
static int
openai_request_begin(const json_t *body, enum openai_endpoint ep, json_t *native,
		     struct openai_req_info *info, char **error)
{
	openai_info_init(info, ep);
	if (!json_is_object(body))
		return openai_reject_type(info, error, "body", "an object", body);
	return openai_model(body, native, info, error);
}

int
openai_chat_to_ollama(const json_t *body, json_t **out_native, struct openai_req_info *info,
		      char **error, int *http_status)
{
	json_t *native = json_object();
	int rc = openai_request_begin(body, OPENAI_CHAT, native, info, error);
	if (rc < 0)
		goto out;

	const json_t *msgs = openai_field(body, "messages");
	if (msgs == NULL) {
		rc = openai_reject_missing(info, error, "messages");
		goto out;
	}
	if (!json_is_array(msgs)) {
		rc = openai_reject_type(info, error, "messages", "an array", msgs);
		goto out;
	}
	if (json_array_size(msgs) == 0) {
		/* Ollama's (and OpenAI's) words. */
		rc = openai_reject(info, error, "empty_array", "messages",
				   "[] is too short - 'messages'");
		goto out;
	}
	json_t *messages = json_array();
	json_object_set_new(native, "messages", messages);
	for (size_t m = 0; m < json_array_size(msgs) && rc == 0; m++)
		rc = openai_message(msgs, m, messages, info, error);
	if (rc < 0)
		goto out;

	if ((rc = openai_stream_fields(body, info, error)) < 0 ||
	    (rc = openai_single_choice(body, "n", info, error)) < 0 ||
	    (rc = openai_response_format(body, native, info, error)) < 0)
		goto out;
	json_t *options = json_object();
	json_object_set_new(native, "options", options);
	if ((rc = openai_options(body, OPENAI_CHAT, options, info, error)) < 0 ||
	    (rc = openai_tools(body, native, info, error)) < 0 ||
	    (rc = openai_reasoning(body, native, info, error)) < 0 ||
	    (rc = openai_chat_logprobs(body, native, info, error)) < 0)
		goto out;
out:
	return openai_request_done(rc, native, out_native, http_status);
}

int
openai_completion_to_ollama(const json_t *body, json_t **out_native, struct openai_req_info *info,
			    char **error, int *http_status)
{
	json_t *native = json_object();
	int rc = openai_request_begin(body, OPENAI_COMPLETIONS, native, info, error);
	if (rc < 0)
		goto out;

	/* Ollama takes one prompt string; an array of exactly one is the same request. */
	const json_t *prompt = openai_field(body, "prompt");
	if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
	    json_is_string(json_array_get(prompt, 0)))
		prompt = json_array_get(prompt, 0);
	if (prompt == NULL) {
		rc = openai_reject_missing(info, error, "prompt");
		goto out;
	}
	if (!json_is_string(prompt)) {
		rc = openai_reject(info, error, "invalid_type", "prompt",
				   "Invalid type for 'prompt': expected a string, but got %s "
				   "instead (several prompts and token arrays are not supported).",
				   openai_type_text(prompt));
		goto out;
	}
	json_object_set_new(native, "prompt", json_string(json_string_value(prompt)));
	const char *suffix = NULL;
	if ((rc = openai_string(body, "suffix", "suffix", &suffix, info, error)) < 0)
		goto out;
	if (suffix != NULL && suffix[0] != '\0')
		json_object_set_new(native, "suffix", json_string(suffix));

	bool echo = false;
	if ((rc = openai_bool(body, "echo", &echo, info, error)) < 0)
		goto out;
	if (echo) {
		rc = openai_reject(info, error, "invalid_value", "echo",
				   "Invalid 'echo': echoing the prompt is not supported.");
		goto out;
	}
	double logprobs = 0;
	if ((rc = openai_stream_fields(body, info, error)) < 0 ||
	    (rc = openai_single_choice(body, "n", info, error)) < 0 ||
	    (rc = openai_single_choice(body, "best_of", info, error)) < 0 ||
	    (rc = openai_number(body, "logprobs", true, 0, 20, &logprobs, info, error)) < 0)
		goto out;
	json_t *options = json_object();
	json_object_set_new(native, "options", options);
	if ((rc = openai_options(body, OPENAI_COMPLETIONS, options, info, error)) < 0)
		goto out;
	if (logprobs > 0) {
		json_object_set_new(native, "logprobs", json_true());
		json_object_set_new(native, "top_logprobs", json_integer((json_int_t)logprobs));
	}
out:
	return openai_request_done(rc, native, out_native, http_status);
}

int
openai_embeddings_to_ollama(const json_t *body, json_t **out_native, struct openai_req_info *info,
			    char **error, int *http_status)
{
	json_t *native = json_object();
	int rc = openai_request_begin(body, OPENAI_EMBEDDINGS, native, info, error);
	if (rc < 0)
		goto out;

	const json_t *input = openai_field(body, "input");
	if (input == NULL) {
		rc = openai_reject_missing(info, error, "input");
		goto out;
	}
	if (json_is_string(input)) {
		/* Ollama sends "" as [""], so an empty input still gets its one embedding. */
		json_object_set_new(native, "input",
				    json_string_length(input) == 0
					? json_pack("[s]", "")
					: json_string(json_string_value(input)));
	} else if (json_is_array(input)) {
		size_t n = json_array_size(input);
		if (n == 0 || n > OPENAI_EMBED_INPUTS_MAX) {
			rc =
			    openai_reject(info, error, "invalid_value", "input",
					  "Invalid 'input': expected 1 to %d strings, but got %zu.",
					  OPENAI_EMBED_INPUTS_MAX, n);
			goto out;
		}
		size_t i;
		json_t *v;
		json_array_foreach(input, i, v)
		{
			if (!json_is_string(v)) {
				char param[OPENAI_PARAM_MAX];
				snprintf(param, sizeof(param), "input[%zu]", i);
				rc = openai_reject(info, error, "invalid_type", param,
						   "Invalid type for '%s': expected a string, but "
						   "got %s instead (token arrays are not "
						   "supported: Ollama embeds text).",
						   param, openai_type_text(v));
				goto out;
			}
		}
		json_object_set_new(native, "input", json_deep_copy(input));
	} else {
		rc = openai_reject_type(info, error, "input", "one of a string or array of strings",
					input);
		goto out;
	}

	const char *format = NULL;
	if ((rc = openai_string(body, "encoding_format", "encoding_format", &format, info, error)) <
	    0)
		goto out;
	if (format != NULL && strcasecmp(format, "base64") == 0) {
		info->encoding = OPENAI_ENCODING_BASE64;
	} else if (format != NULL && format[0] != '\0' && strcasecmp(format, "float") != 0) {
		char got[OPENAI_QUOTE_MAX + 1];
		vd_strlcpy(got, format, sizeof(got));
		/* Ollama's words. */
		rc = openai_reject(info, error, "invalid_value", "encoding_format",
				   "Invalid value for 'encoding_format' = %s. Supported values: "
				   "['float', 'base64'].",
				   got);
		goto out;
	}
	double dims = 0;
	if ((rc = openai_number(body, "dimensions", true, 1, OPENAI_EXACT_INT_MAX, &dims, info,
				error)) < 0)
		goto out;
	if (rc == 1)
		json_object_set_new(native, "dimensions", json_integer((json_int_t)dims));
	rc = 0;
out:
	return openai_request_done(rc, native, out_native, http_status);
}

/* --- replies ----------------------------------------------------------------------------- */

const char *
openai_make_id(enum openai_endpoint endpoint, uint64_t n, char *buf, size_t size)
{
	static const char *const prefixes[] = {
	    [OPENAI_CHAT] = "chatcmpl-", [OPENAI_COMPLETIONS] = "cmpl-", [OPENAI_EMBEDDINGS] = ""};
	if (endpoint == OPENAI_EMBEDDINGS)
		vd_strlcpy(buf, "", size);
	else
		snprintf(buf, size, "%s%llu", prefixes[endpoint], (unsigned long long)n);
	return buf;
}

static json_int_t
openai_count(const json_t *native, const char *name)
{
	const json_t *v = json_object_get(native, name);
	return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

static json_t *
openai_usage(const json_t *native)
{
	json_int_t prompt = openai_count(native, "prompt_eval_count");
	json_int_t completion = openai_count(native, "eval_count");
	return json_pack("{s:I,s:I,s:I}", "prompt_tokens", prompt, "completion_tokens", completion,
			 "total_tokens", prompt + completion);
}

/* The reply's model: the node's echo of the request, else the request's own. */
static const char *
openai_reply_model(const json_t *native, const char *fallback)
{
	const char *model = json_string_value(json_object_get(native, "model"));
	return model != NULL ? model : fallback != NULL ? fallback : "";
}

/* A non-empty string field, or NULL. */
static const char *
openai_text(const json_t *obj, const char *name)
{
	const char *s = json_string_value(json_object_get(obj, name));
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* The node's logprobs, which already have OpenAI's shape, as a choice's logprobs. */
static json_t *
openai_logprobs(const json_t *native)
{
	const json_t *lp = json_object_get(native, "logprobs");
	if (!json_is_array(lp) || json_array_size(lp) == 0)
		return NULL;
	return json_pack("{s:O}", "content", lp);
}

/*
 * Native tool calls -> OpenAI's, whose arguments are a JSON string. A call the node
 * does not number gets the next index of the reply, and one without an id gets one
 * made from the reply's id, since clients match tool results to calls by id.
 */
static json_t *
openai_tool_calls_out(const json_t *calls, const char *reply_id, int *next_index)
{
	json_t *list = json_array();
	const char *dash = strrchr(reply_id, '-');
	const char *suffix = dash != NULL ? dash + 1 : reply_id;
	size_t i;
	json_t *call;
	json_array_foreach(calls, i, call)
	{
		const json_t *fn = json_object_get(call, "function");
		const json_t *jindex = json_object_get(fn, "index");
		int index = json_is_integer(jindex) && json_integer_value(jindex) >= 0 &&
				    json_integer_value(jindex) < INT32_MAX
				? (int)json_integer_value(jindex)
				: *next_index;
		if (index >= *next_index)
			*next_index = index + 1;
		const json_t *args = json_object_get(fn, "arguments");
		char *args_text = json_is_string(args) ? xstrdup(json_string_value(args))
				  : args != NULL       ? vd_json_dumps_go(args)
						       : xstrdup("{}");
		const char *id = json_string_value(json_object_get(call, "id"));
		char made_id[OPENAI_ID_MAX + 16];
		if (id == NULL) {
			snprintf(made_id, sizeof(made_id), "call_%s_%d", suffix, index);
			id = made_id;
		}
		const char *name = json_string_value(json_object_get(fn, "name"));
		json_array_append_new(list,
				      json_pack("{s:s,s:i,s:s,s:{s:s,s:s}}", "id", id, "index",
						index, "type", "function", "function", "name",
						name != NULL ? name : "", "arguments", args_text));
		free(args_text);
	}
	return list;
}

/* A native reply that is an error, or that is not an object: -EIO / -EINVAL. */
static int
openai_reply_check(const json_t *native, char **cause)
{
	if (!json_is_object(native))
		return vd_fail(cause, -EINVAL, "the node's reply is not a JSON object");
	const char *err = json_string_value(json_object_get(native, "error"));
	if (err != NULL)
		return vd_fail(cause, -EIO, "%s", err);
	return 0;
}

/* finish_reason: done_reason, where "stop" with tool calls is "tool_calls"; only that
 * one is relabelled (a cut-off tool call stays "length"). NULL: none yet. */
static const char *
openai_finish_reason(const char *done_reason, bool tool_calls)
{
	if (done_reason == NULL || done_reason[0] == '\0')
		return NULL;
	if (tool_calls && strcmp(done_reason, "stop") == 0)
		return "tool_calls";
	return done_reason;
}

static json_t *
openai_string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Serialises a reply the way Go's encoding/json does, as Ollama's replies are. */
static char *
openai_dump(json_t *reply)
{
	char *text = vd_json_dumps_go(reply);
	json_decref(reply);
	return text;
}

int
openai_chat_reply(const json_t *native, const struct openai_reply_meta *meta, char **out,
		  char **cause)
{
	int rc = openai_reply_check(native, cause);
	if (rc < 0)
		return rc;
	const json_t *msg = json_object_get(native, "message");
	if (!json_is_object(msg))
		return vd_fail(cause, -EINVAL, "the node's chat reply has no 'message' object");

	const char *role = json_string_value(json_object_get(msg, "role"));
	const char *content = json_string_value(json_object_get(msg, "content"));
	json_t *message = json_pack("{s:s,s:s}", "role", role != NULL ? role : "assistant",
				    "content", content != NULL ? content : "");
	const char *thinking = openai_text(msg, "thinking");
	if (thinking != NULL)
		json_object_set_new(message, "reasoning", json_string(thinking));
	const json_t *calls = json_object_get(msg, "tool_calls");
	bool has_calls = json_is_array(calls) && json_array_size(calls) > 0;
	if (has_calls) {
		int next = 0;
		json_object_set_new(message, "tool_calls",
				    openai_tool_calls_out(calls, meta->id, &next));
	}
	const char *finish = openai_finish_reason(
	    json_string_value(json_object_get(native, "done_reason")), has_calls);
	json_t *choice = json_pack("{s:i,s:o,s:o}", "index", 0, "message", message, "finish_reason",
				   openai_string_or_null(finish));
	json_t *lp = openai_logprobs(native);
	if (lp != NULL)
		json_object_set_new(choice, "logprobs", lp);
	json_t *reply =
	    json_pack("{s:s,s:s,s:I,s:s,s:s,s:[o],s:o}", "id", meta->id, "object",
		      "chat.completion", "created", (json_int_t)meta->created, "model",
		      openai_reply_model(native, meta->model), "system_fingerprint",
		      openai_fingerprint, "choices", choice, "usage", openai_usage(native));
	*out = openai_dump(reply);
	return 0;
}

int
openai_completion_reply(const json_t *native, const struct openai_reply_meta *meta, char **out,
			char **cause)
{
	int rc = openai_reply_check(native, cause);
	if (rc < 0)
		return rc;
	const json_t *text = json_object_get(native, "response");
	if (!json_is_string(text))
		return vd_fail(cause, -EINVAL,
			       "the node's generate reply has no 'response' string");
	const char *finish =
	    openai_finish_reason(json_string_value(json_object_get(native, "done_reason")), false);
	json_t *choice = json_pack("{s:O,s:i,s:o}", "text", text, "index", 0, "finish_reason",
				   openai_string_or_null(finish));
	json_t *lp = openai_logprobs(native);
	if (lp != NULL)
		json_object_set_new(choice, "logprobs", lp);
	json_t *reply =
	    json_pack("{s:s,s:s,s:I,s:s,s:s,s:[o],s:o}", "id", meta->id, "object",
		      "text_completion", "created", (json_int_t)meta->created, "model",
		      openai_reply_model(native, meta->model), "system_fingerprint",
		      openai_fingerprint, "choices", choice, "usage", openai_usage(native));
	*out = openai_dump(reply);
	return 0;
}

/* Writes f in the shortest form that reads back as the same float32, as Go prints a
 * []float32: 0.1f is "0.1", not 0.10000000149011612. */
static void
openai_format_float(float f, char *buf, size_t size)
{
	/* A float32 needs at most 9 significant digits; below 6 "%g" already strips the
	 * zeros, so 6 is the first precision worth trying. */
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, size, "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			return;
	}
}

/* Appends one embedding (a native array of numbers) in the requested encoding. */
static int
openai_embedding_out(const json_t *values, enum openai_encoding encoding, struct vd_buf *b,
		     char **cause)
{
	size_t n = json_array_size(values);
	unsigned char *bytes = encoding == OPENAI_ENCODING_BASE64 ? xmalloc(4 * n + 1) : NULL;
	int rc = encoding == OPENAI_ENCODING_FLOAT ? vd_buf_append_str(b, "[") : 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const json_t *v = json_array_get(values, i);
		double d = json_number_value(v);
		if (!json_is_number(v) || !(fabs(d) <= FLT_MAX)) {
			free(bytes);
			return vd_fail(cause, -EINVAL,
				       "the node's embedding holds a value that is not a float32");
		}
		float f = (float)d;
		if (bytes != NULL) {
			uint32_t u;
			memcpy(&u, &f, sizeof(u));
			for (int k = 0; k < 4; k++)
				bytes[4 * i + (size_t)k] = (unsigned char)(u >> (8 * k));
		} else {
			char num[32];
			openai_format_float(f, num, sizeof(num));
			rc = vd_buf_append_str(b, i > 0 ? "," : "");
			if (rc == 0)
				rc = vd_buf_append_str(b, num);
		}
	}
	if (bytes != NULL) {
		char *b64 = openai_base64_encode(bytes, 4 * n);
		rc = vd_buf_printf(b, "\"%s\"", b64);
		free(b64);
		free(bytes);
	} else if (rc == 0) {
		rc = vd_buf_append_str(b, "]");
	}
	return rc < 0 ? vd_fail(cause, rc, "the embeddings reply is over %llu bytes",
				(unsigned long long)OPENAI_REPLY_MAX)
		      : 0;
}

int
openai_embeddings_reply(const json_t *native, const struct openai_reply_meta *meta,
			enum openai_encoding encoding, char **out, char **cause)
{
	int rc = openai_reply_check(native, cause);
	if (rc < 0)
		return rc;
	/* Built as text: jansson prints every number with 17 digits, which would double the
	 * size of a float32 embedding for nothing. */
	const json_t *embeddings = json_object_get(native, "embeddings");
	if (embeddings != NULL && !json_is_null(embeddings) && !json_is_array(embeddings))
		return vd_fail(cause, -EINVAL, "the node's embed reply has no 'embeddings' array");
	struct vd_buf b;
	vd_buf_init(&b, OPENAI_REPLY_MAX);
	vd_buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
	size_t i;
	json_t *values;
	json_array_foreach(embeddings, i, values)
	{
		if (!json_is_array(values)) {
			rc = vd_fail(cause, -EINVAL,
				     "the node's embeddings[%zu] is not an array of numbers", i);
			break;
		}
		vd_buf_printf(&b, "%s{\"object\":\"embedding\",\"embedding\":", i > 0 ? "," : "");
		if ((rc = openai_embedding_out(values, encoding, &b, cause)) < 0)
			break;
		rc = vd_buf_printf(&b, ",\"index\":%zu}", i);
		if (rc < 0) {
			rc = vd_fail(cause, rc, "the embeddings reply is over %llu bytes",
				     (unsigned long long)OPENAI_REPLY_MAX);
			break;
		}
	}
	if (rc < 0) {
		vd_buf_cleanup(&b);
		return rc;
	}
	/* Ollama names the request's model here, not the node's echo. */
	json_t *model = json_string(meta->model != NULL ? meta->model : "");
	if (model == NULL)
		model = json_string("");
	char *model_text = vd_json_dumps_go(model);
	json_decref(model);
	json_int_t prompt = openai_count(native, "prompt_eval_count");
	rc = vd_buf_printf(
	    &b, "],\"model\":%s,\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
	    model_text, (long long)prompt, (long long)prompt);
	free(model_text);
	if (rc < 0) {
		vd_buf_cleanup(&b);
		return vd_fail(cause, rc, "the embeddings reply is over %llu bytes",
			       (unsigned long long)OPENAI_REPLY_MAX);
	}
	*out = vd_buf_take(&b);
	return 0;
}

/* --- streaming --------------------------------------------------------------------------- */

void
openai_stream_init(struct openai_stream *st, const struct openai_req_info *info,
		   const struct openai_reply_meta *meta)
{
	memset(st, 0, sizeof(*st));
	st->endpoint = info->endpoint;
	st->include_usage = info->include_usage;
	vd_strlcpy(st->id, meta->id != NULL ? meta->id : "", sizeof(st->id));
	st->created = meta->created;
	st->model = xstrdup(meta->model != NULL ? meta->model : "");
}

void
openai_stream_cleanup(struct openai_stream *st)
{
	vd_free(st->model);
}

bool
openai_stream_is_done(const struct openai_stream *st)
{
	return st->done;
}

/* Appends "data: <json>\n\n" (reply is stolen). */
static int
openai_sse(struct vd_buf *out, json_t *reply)
{
	char *text = openai_dump(reply);
	int rc = vd_buf_printf(out, "data: %s\n\n", text);
	free(text);
	return rc;
}

static int
openai_sse_done(struct openai_stream *st, struct vd_buf *out)
{
	st->done = true;
	return vd_buf_append_str(out, "data: [DONE]\n\n");
}

/* A chat chunk around choices (stolen) and usage (stolen; NULL: none). */
static json_t *
openai_chat_chunk(const struct openai_stream *st, const char *model, json_t *choices, json_t *usage)
{
	json_t *chunk =
	    json_pack("{s:s,s:s,s:I,s:s,s:s,s:o}", "id", st->id, "object", "chat.completion.chunk",
		      "created", (json_int_t)st->created, "model", model, "system_fingerprint",
		      openai_fingerprint, "choices", choices);
	if (usage != NULL)
		json_object_set_new(chunk, "usage", usage);
	return chunk;
}

/* One choice of a chat chunk: delta (stolen), finish_reason (NULL: null), logprobs
 * (stolen; NULL: none). */
static json_t *
openai_chunk_choice(json_t *delta, const char *finish, json_t *logprobs)
{
	json_t *choice = json_pack("{s:i,s:o,s:o}", "index", 0, "delta", delta, "finish_reason",
				   openai_string_or_null(finish));
	if (logprobs != NULL)
		json_object_set_new(choice, "logprobs", logprobs);
	return choice;
}

static int
openai_stream_error_event(struct openai_stream *st, int status, const char *message,
			  struct vd_buf *out)
{
	int rc = openai_sse(out, openai_error_json(status, message, NULL, NULL, NULL));
	return rc < 0 ? rc : openai_sse_done(st, out);
}

static int
openai_stream_chat(struct openai_stream *st, const json_t *chunk, struct vd_buf *out)
{
	const json_t *msg = json_object_get(chunk, "message");
	const char *content = json_string_value(json_object_get(msg, "content"));
	const char *thinking = openai_text(msg, "thinking");
	const json_t *calls = json_object_get(msg, "tool_calls");
	bool has_calls = json_is_array(calls) && json_array_size(calls) > 0;
	json_t *logprobs = openai_logprobs(chunk);
	bool done = json_is_true(json_object_get(chunk, "done"));
	const char *model = openai_reply_model(chunk, st->model);
	if (content == NULL)
		content = "";
	int rc = 0;

	/* The final chunk only carries metrics: OpenAI goes from the last content straight
	 * to the finish chunk. A stream's only chunk still opens with the role. */
	bool trailer = done && st->first_sent && content[0] == '\0' && thinking == NULL &&
		       !has_calls && logprobs == NULL;
	if (!trailer) {
		json_t *tool_calls =
		    has_calls ? openai_tool_calls_out(calls, st->id, &st->tool_calls) : NULL;
		json_t *delta = json_object();
		if (!st->first_sent)
			json_object_set_new(delta, "role", json_string("assistant"));
		if (thinking != NULL && (content[0] != '\0' || has_calls)) {
			/* Thinking and an answer in one chunk: OpenAI's clients expect them as
			 * two deltas, the reasoning first (with the logprobs). */
			json_object_set_new(delta, "reasoning", json_string(thinking));
			rc = openai_sse(
			    out, openai_chat_chunk(
				     st, model,
				     json_pack("[o]", openai_chunk_choice(delta, NULL, logprobs)),
				     NULL));
			logprobs = NULL;
			delta = json_object();
			thinking = NULL;
		}
		json_object_set_new(delta, "content", json_string(content));
		if (thinking != NULL)
			json_object_set_new(delta, "reasoning", json_string(thinking));
		if (tool_calls != NULL) {
			json_object_set_new(delta, "tool_calls", tool_calls);
			st->tool_call_sent = true;
		}
		json_t *choices = json_pack("[o]", openai_chunk_choice(delta, NULL, logprobs));
		logprobs = NULL;
		if (rc == 0)
			rc = openai_sse(out, openai_chat_chunk(st, model, choices, NULL));
		else
			json_decref(choices);
		st->first_sent = true;
	}
	json_decref(logprobs);
	if (!done || rc < 0)
		return rc;

	const char *reason = openai_text(chunk, "done_reason");
	const char *finish =
	    openai_finish_reason(reason != NULL ? reason : "stop", st->tool_call_sent);
	rc = openai_sse(out, openai_chat_chunk(
				 st, model,
				 json_pack("[o]", openai_chunk_choice(json_object(), finish, NULL)),
				 NULL));
	if (rc == 0 && st->include_usage)
		rc = openai_sse(out,
				openai_chat_chunk(st, model, json_array(), openai_usage(chunk)));
	return rc < 0 ? rc : openai_sse_done(st, out);
}

static int
openai_stream_completion(struct openai_stream *st, const json_t *chunk, struct vd_buf *out)
{
	const char *text = json_string_value(json_object_get(chunk, "response"));
	bool done = json_is_true(json_object_get(chunk, "done"));
	const char *model = openai_reply_model(chunk, st->model);
	const char *finish = openai_finish_reason(openai_text(chunk, "done_reason"), false);
	json_t *choice = json_pack("{s:s,s:i,s:o}", "text", text != NULL ? text : "", "index", 0,
				   "finish_reason", openai_string_or_null(finish));
	json_t *lp = openai_logprobs(chunk);
	if (lp != NULL)
		json_object_set_new(choice, "logprobs", lp);
	json_t *event = json_pack("{s:s,s:s,s:I,s:[o],s:s,s:s}", "id", st->id, "object",
				  "text_completion", "created", (json_int_t)st->created, "choices",
				  choice, "model", model, "system_fingerprint", openai_fingerprint);
	int rc = openai_sse(out, event);
	if (rc < 0 || !done)
		return rc;
	if (st->include_usage) {
		json_t *usage = json_pack("{s:s,s:s,s:I,s:[],s:s,s:s,s:o}", "id", st->id, "object",
					  "text_completion", "created", (json_int_t)st->created,
					  "choices", "model", model, "system_fingerprint",
					  openai_fingerprint, "usage", openai_usage(chunk));
		if ((rc = openai_sse(out, usage)) < 0)
			return rc;
	}
	return openai_sse_done(st, out);
}

int
openai_stream_feed(struct openai_stream *st, const json_t *chunk, struct vd_buf *out, char **cause)
{
	if (st->done)
		return 0;
	if (!json_is_object(chunk))
		return vd_fail(cause, -EINVAL,
			       "a streamed chunk from the node is not a JSON object");
	const json_t *msg = json_object_get(chunk, "message");
	const json_t *text = json_object_get(chunk, "response");
	const char *err = json_string_value(json_object_get(chunk, "error"));
	if (err == NULL && st->endpoint == OPENAI_CHAT && msg != NULL && !json_is_object(msg))
		return vd_fail(cause, -EINVAL,
			       "a streamed chat chunk's 'message' is not an object");
	if (err == NULL && st->endpoint == OPENAI_COMPLETIONS && text != NULL &&
	    !json_is_string(text))
		return vd_fail(cause, -EINVAL,
			       "a streamed generate chunk's 'response' is not a string");

	/* All or nothing: a chunk whose events do not fit leaves out as it was, so the
	 * client never sees half an event. */
	size_t mark = out->len;
	bool was_first = st->first_sent, was_tool = st->tool_call_sent;
	int calls = st->tool_calls;
	int rc;
	if (err != NULL)
		rc = openai_stream_error_event(st, 500, err, out);
	else if (st->endpoint == OPENAI_CHAT)
		rc = openai_stream_chat(st, chunk, out);
	else
		rc = openai_stream_completion(st, chunk, out);
	if (rc < 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
		st->first_sent = was_first;
		st->tool_call_sent = was_tool;
		st->tool_calls = calls;
		st->done = false;
		return vd_fail(cause, rc, "the stream's events do not fit the output buffer");
	}
	return 0;
}

int
openai_stream_fail(struct openai_stream *st, int status, const char *message, struct vd_buf *out)
{
	if (st->done)
		return 0;
	size_t mark = out->len;
	int rc = openai_stream_error_event(st, status, message, out);
	if (rc < 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
		st->done = false;
	}
	return rc;
}

/* --- errors ------------------------------------------------------------------------------ */

/* The error types of the statuses that have their own; other 4xx are
 * invalid_request_error, everything else api_error. */
static const struct openai_error_type {
	int status;
	const char *type;
	const char *code; /* when the caller gives none */
} openai_error_types[] = {
    {401, "authentication_error", NULL},
    {403, "permission_error", NULL},
    {404, "not_found_error", NULL},
    {429, "rate_limit_error", "rate_limit_exceeded"},
};

json_t *
openai_error_json(int status, const char *message, const char *type, const char *param,
		  const char *code)
{
	const char *dflt_code = NULL;
	const char *dflt_type =
	    status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
	for (size_t i = 0; i < VD_ARRAY_LEN(openai_error_types); i++) {
		if (openai_error_types[i].status == status) {
			dflt_type = openai_error_types[i].type;
			dflt_code = openai_error_types[i].code;
		}
	}
	if (code == NULL || code[0] == '\0')
		code = dflt_code;
	/* json_string refuses invalid UTF-8; a message quoting a client's bytes may hold
	 * some, and the error must still go out. */
	json_t *jmsg = json_string(message != NULL ? message : "");
	if (jmsg == NULL)
		jmsg = json_string("(the error message is not valid UTF-8)");
	return json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", jmsg, "type",
			 type != NULL && type[0] != '\0' ? type : dflt_type, "param",
			 param != NULL && param[0] != '\0' ? json_string(param) : json_null(),
			 "code", openai_string_or_null(code));
}

json_t *
openai_error_from_ollama(int status, const char *body, size_t len)
{
	char *msg = ollama_parse_error(body, len);
	if (msg == NULL) {
		/* Not Ollama's {"error": ...}: the text itself, cut, says most. */
		size_t n = len > 512 ? 512 : len;
		while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' '))
			n--;
		msg = n > 0 ? xstrndup(body, n)
			    : xasprintf("the node answered with status %d and no message", status);
	}
	/* A 404 from /api/chat, /api/generate or /api/embed is Ollama's "model not found". */
	bool model = status == 404 && strstr(msg, "model") != NULL && strstr(msg, "not found");
	json_t *err = openai_error_json(status, msg, NULL, model ? "model" : NULL,
					model ? "model_not_found" : NULL);
	free(msg);
	return err;
}

/* --- models ------------------------------------------------------------------------------ */

/* Ollama's owned_by: the namespace of a name [host/][namespace/]model[:tag][@digest],
 * "library" when there is none. */
static void
openai_owner(const char *id, char *buf, size_t size)
{
	size_t end = strcspn(id, "@");
	const char *last = NULL;
	for (size_t i = 0; i < end; i++)
		if (id[i] == '/')
			last = id + i;
	const char *start = last;
	while (start != NULL && start > id && start[-1] != '/')
		start--;
	if (last == NULL || start == last) {
		vd_strlcpy(buf, "library", size);
		return;
	}
	size_t n = (size_t)(last - start);
	if (n >= size)
		n = size - 1;
	memcpy(buf, start, n);
	buf[n] = '\0';
}

json_t *
openai_model_json(const char *id, int64_t created)
{
	char owner[256];
	openai_owner(id, owner, sizeof(owner));
	json_t *jid = json_string(id);
	if (jid == NULL)
		jid = json_string("");
	return json_pack("{s:o,s:s,s:I,s:s}", "id", jid, "object", "model", "created",
			 (json_int_t)created, "owned_by", owner);
}

json_t *
openai_models_json(const json_t *tags, int64_t created_fallback)
{
	json_t *data = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(tags, "models"), i, m)
	{
		/* "model" is the name Ollama exposes; older listings only have "name". */
		const char *id = openai_text(m, "model");
		if (id == NULL)
			id = openai_text(m, "name");
		if (id == NULL)
			continue;
		int64_t created = created_fallback, ms;
		const char *modified = json_string_value(json_object_get(m, "modified_at"));
		if (modified != NULL && ollama_parse_time(modified, &ms) == 0)
			created = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
		json_array_append_new(data, openai_model_json(id, created));
	}
	return json_pack("{s:s,s:o}", "object", "list", "data", data);
}
