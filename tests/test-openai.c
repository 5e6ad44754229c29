/*
 * test-openai.c: unit tests for src/api/openai.c: OpenAI requests into Ollama's native
 * ones, native replies and streamed chunks back into OpenAI's shapes, errors and models.
 * Expected values follow Ollama's compatibility layer (openai/openai_test.go,
 * middleware/openai_test.go) and OpenAI's documented shapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "openai.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 1x1 PNG, as in Ollama's tests. */
#define PNG_B64                                                                                    \
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk+"                            \
	"A8AAQUBAScY42YAAAAASUVORK5CYII="

static json_t *
parse(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, 0, &err);
	if (v == NULL)
		fail_msg("bad JSON in test: %s: %s", err.text, text);
	return v;
}

/* Translates a chat body that must be accepted; returns the native request. */
static json_t *
chat_ok(const char *body_text, struct openai_req_info *info)
{
	json_t *body = parse(body_text);
	json_t *native = NULL;
	char *error = NULL;
	int status = 0;
	int rc = openai_chat_to_ollama(body, &native, info, &error, &status);
	if (rc != 0)
		fail_msg("refused: %s (param %s)", error, info->param);
	assert_int_equal(status, 200);
	assert_non_null(native);
	json_decref(body);
	return native;
}

typedef int (*translate_fn)(const json_t *, json_t **, struct openai_req_info *, char **, int *);

/* A body that must be refused: checks status 400, the param, the code and that the
 * message holds want_msg; returns nothing. */
static void
expect_refused(translate_fn fn, const char *body_text, const char *want_param,
	       const char *want_code, const char *want_msg)
{
	json_t *body = parse(body_text);
	json_t *native = (json_t *)0x1;
	struct openai_req_info info;
	char *error = NULL;
	int status = 0;
	int rc = fn(body, &native, &info, &error, &status);
	if (rc == 0)
		fail_msg("accepted: %s", body_text);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(status, 400);
	assert_null(native);
	assert_non_null(error);
	if (strcmp(info.param, want_param) != 0)
		fail_msg("param '%s', want '%s' (%s) for %s", info.param, want_param, error,
			 body_text);
	if (want_code != NULL && (info.code == NULL || strcmp(info.code, want_code) != 0))
		fail_msg("code %s, want %s (%s)", info.code ? info.code : "NULL", want_code, error);
	if (want_msg != NULL && strstr(error, want_msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", error, want_msg);

	/* The error object the handler answers names the same param. */
	json_t *err = openai_error_json(status, error, NULL, info.param, info.code);
	json_t *e = json_object_get(err, "error");
	assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
	assert_string_equal(json_string_value(json_object_get(e, "param")), want_param);
	assert_string_equal(json_string_value(json_object_get(e, "message")), error);
	json_decref(err);
	free(error);
	json_decref(body);
}

static void
assert_json_equal(const json_t *got, const char *want_text)
{
	json_t *want = parse(want_text);
	if (!json_equal((json_t *)got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		fail_msg("got  %s\nwant %s", g, w);
	}
	json_decref(want);
}

/* --- chat requests ----------------------------------------------------------------------- */

static void
test_chat_basic(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native =
	    chat_ok("{\"model\":\"test-model\",\"messages\":[{\"role\":\"user\",\"content\":"
		    "\"Hello\"}]}",
		    &info);
	/* OpenAI's defaults for temperature and top_p, as Ollama sends them; no stream or
	 * keep_alive: the engine sets those. */
	assert_json_equal(native, "{\"model\":\"test-model\",\"messages\":[{\"role\":\"user\","
				  "\"content\":\"Hello\"}],\"options\":{\"temperature\":1.0,"
				  "\"top_p\":1.0}}");
	assert_int_equal(info.endpoint, OPENAI_CHAT);
	assert_false(info.stream);
	assert_false(info.include_usage);
	json_decref(native);
}

static void
test_chat_options(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native = chat_ok(
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
	    "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":999,"
	    "\"seed\":123,\"stop\":[\"\\n\",\"stop\"],\"temperature\":1.5,"
	    "\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,\"top_p\":0.25,"
	    "\"response_format\":{\"type\":\"json_object\"},\"user\":\"u-1\",\"n\":1,"
	    "\"some_future_field\":{}}",
	    &info);
	assert_json_equal(json_object_get(native, "options"),
			  "{\"num_predict\":999,\"seed\":123,\"stop\":[\"\\n\",\"stop\"],"
			  "\"temperature\":1.5,\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,"
			  "\"top_p\":0.25}");
	/* Integers stay integers: vramd's option checks and Ollama's want them so. */
	assert_true(
	    json_is_integer(json_object_get(json_object_get(native, "options"), "num_predict")));
	assert_string_equal(json_string_value(json_object_get(native, "format")), "json");
	assert_null(json_object_get(native, "stream"));
	assert_null(json_object_get(native, "user"));
	assert_true(info.stream);
	assert_true(info.include_usage);
	json_decref(native);

	/* include_usage without stream is unused, not an error. */
	native = chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"stream_options\":{\"include_usage\":true},\"stop\":\"END\","
			 "\"max_tokens\":5,\"max_completion_tokens\":7,\"seed\":4.0}",
			 &info);
	assert_false(info.stream);
	assert_false(info.include_usage);
	json_t *options = json_object_get(native, "options");
	assert_json_equal(json_object_get(options, "stop"), "[\"END\"]");
	/* max_completion_tokens, OpenAI's current name, wins over max_tokens. */
	assert_int_equal(json_integer_value(json_object_get(options, "num_predict")), 7);
	assert_true(json_is_integer(json_object_get(options, "seed")));
	assert_int_equal(json_integer_value(json_object_get(options, "seed")), 4);
	json_decref(native);
}

static void
test_chat_images(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native = chat_ok(
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Hello\"},"
	    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64," PNG_B64
	    "\"}},"
	    "{\"type\":\"image_url\",\"image_url\":\"data:;base64," PNG_B64 "\"}]}]}",
	    &info);
	/* One native message per part, as Ollama does. */
	assert_json_equal(json_object_get(native, "messages"),
			  "[{\"role\":\"user\",\"content\":\"Hello\"},"
			  "{\"role\":\"user\",\"content\":\"\",\"images\":[\"" PNG_B64 "\"]},"
			  "{\"role\":\"user\",\"content\":\"\",\"images\":[\"" PNG_B64 "\"]}]");
	json_decref(native);

	/* Line breaks inside the base64 are dropped (Go's decoder does so too). */
	native = chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
			 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
			 "aGVs\\nbG8=\"}}]}]}",
			 &info);
	assert_string_equal(
	    json_string_value(json_array_get(
		json_object_get(json_array_get(json_object_get(native, "messages"), 0), "images"),
		0)),
	    "aGVsbG8=");
	json_decref(native);

	const char *part = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
			   "{\"type\":\"text\",\"text\":\"x\"},%s]}]}";
	char body[512];
	snprintf(body, sizeof(body), part,
		 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].image_url",
		       "invalid_value", "image URLs are not currently supported");
	snprintf(body, sizeof(body), part,
		 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/gif;base64,"
		 "aGVsbG8=\"}}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].image_url",
		       "invalid_value", "invalid image input");
	snprintf(body, sizeof(body), part,
		 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,a$b\"}}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].image_url",
		       "invalid_value", "base64");
	snprintf(body, sizeof(body), part, "{\"type\":\"image_url\",\"image_url\":{\"u\":1}}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].image_url",
		       "invalid_type", NULL);
	snprintf(body, sizeof(body), part, "{\"type\":\"video\"}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].type", "invalid_value",
		       "'video'");
	snprintf(body, sizeof(body), part, "{\"type\":\"text\",\"text\":7}");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1].text", "invalid_type",
		       "expected a string, but got an integer");
	snprintf(body, sizeof(body), part, "\"loose text\"");
	expect_refused(openai_chat_to_ollama, body, "messages[0].content[1]", "invalid_type", NULL);
}

static void
test_chat_tool_messages(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native = chat_ok(
	    "{\"model\":\"m\",\"messages\":["
	    "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
	    "{\"role\":\"assistant\",\"content\":null,\"reasoning\":\"need the tool\","
	    "\"tool_calls\":[{\"id\":\"id_abc\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"get_current_weather\",\"arguments\":\"{\\\"location\\\": \\\"Paris, France\\\", "
	    "\\\"format\\\": \\\"celsius\\\"}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"id_abc\",\"content\":\"20 degrees\"},"
	    "{\"role\":\"tool\",\"name\":\"named_tool\",\"content\":\"ok\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"id_2\","
	    "\"type\":\"function\",\"function\":{\"name\":\"noargs\",\"arguments\":\"\"}}]},"
	    "{\"role\":\"developer\",\"content\":\"be brief\"}]}",
	    &info);
	assert_json_equal(
	    json_object_get(native, "messages"),
	    "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"need the tool\","
	    "\"tool_calls\":[{\"id\":\"id_abc\",\"function\":{\"name\":\"get_current_weather\","
	    "\"arguments\":{\"location\":\"Paris, France\",\"format\":\"celsius\"}}}]},"
	    "{\"role\":\"tool\",\"content\":\"20 degrees\",\"tool_name\":\"get_current_weather\","
	    "\"tool_call_id\":\"id_abc\"},"
	    "{\"role\":\"tool\",\"content\":\"ok\",\"tool_name\":\"named_tool\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"id_2\","
	    "\"function\":{\"name\":\"noargs\",\"arguments\":{}}}]},"
	    "{\"role\":\"system\",\"content\":\"be brief\"}]");
	/* The arguments keep the client's order. */
	const json_t *args = json_object_get(
	    json_object_get(
		json_array_get(
		    json_object_get(json_array_get(json_object_get(native, "messages"), 1),
				    "tool_calls"),
		    0),
		"function"),
	    "arguments");
	char *text = json_dumps(args, JSON_COMPACT);
	assert_string_equal(text, "{\"location\":\"Paris, France\",\"format\":\"celsius\"}");
	free(text);
	json_decref(native);

	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
		       "{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\","
		       "\"arguments\":\"not json\"}}]}]}",
		       "messages[0].tool_calls[0]", "invalid_value", "invalid tool call arguments");
	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
		       "{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}]}",
		       "messages[0].tool_calls[0]", "invalid_type", "string of JSON");
	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":"
		       "{\"id\":\"a\"}}]}",
		       "messages[0].tool_calls", "invalid_type", NULL);
	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
		       "{\"id\":\"a\",\"function\":{\"arguments\":\"{}\"}}]}]}",
		       "messages[0].tool_calls[0]", "invalid_value", "function.name");
}

static void
test_chat_tools_and_choice(void **state)
{
	(void)state;
	const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
			    "\"description\":\"Get the current weather\",\"parameters\":{"
			    "\"type\":\"object\",\"required\":[\"location\"],\"properties\":{"
			    "\"location\":{\"type\":\"string\"}}}}}]";
	char body[1024];
	struct openai_req_info info;
	const char *choices[] = {"", ",\"tool_choice\":\"auto\"", ",\"tool_choice\":\"required\"",
				 (",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
				  "\"get_weather\"}}")};
	for (size_t i = 0; i < VD_ARRAY_LEN(choices); i++) {
		snprintf(body, sizeof(body),
			 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"tools\":%s%s}",
			 tools, choices[i]);
		json_t *native = chat_ok(body, &info);
		assert_json_equal(json_object_get(native, "tools"), tools);
		json_decref(native);
	}
	/* "none": the model is not told about the tools, so it cannot call them. */
	snprintf(body, sizeof(body),
		 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		 "\"tools\":%s,\"tool_choice\":\"none\"}",
		 tools);
	json_t *native = chat_ok(body, &info);
	assert_null(json_object_get(native, "tools"));
	json_decref(native);

	const char *m = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],";
	snprintf(body, sizeof(body), "%s\"tools\":\"get_weather\"}", m);
	expect_refused(openai_chat_to_ollama, body, "tools", "invalid_type", NULL);
	snprintf(body, sizeof(body), "%s\"tools\":[{\"type\":\"function\"}]}", m);
	expect_refused(openai_chat_to_ollama, body, "tools[0].function", "invalid_value", NULL);
	snprintf(body, sizeof(body), "%s\"tool_choice\":\"sometimes\"}", m);
	expect_refused(openai_chat_to_ollama, body, "tool_choice", "invalid_value", "sometimes");
}

static void
test_chat_response_format(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native =
	    chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		    "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"p\","
		    "\"schema\":{\"type\":\"object\",\"properties\":{\"age\":{\"type\":"
		    "\"integer\"}}}}}}",
		    &info);
	assert_json_equal(json_object_get(native, "format"),
			  "{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\"}}}");
	json_decref(native);

	/* Ollama trims and lower-cases the type; "text" asks for nothing. */
	native = chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"response_format\":{\"type\":\" JSON_Object \"}}",
			 &info);
	assert_string_equal(json_string_value(json_object_get(native, "format")), "json");
	json_decref(native);
	native = chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"response_format\":{\"type\":\"text\"}}",
			 &info);
	assert_null(json_object_get(native, "format"));
	json_decref(native);

	const char *m = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],";
	char body[512];
	snprintf(body, sizeof(body), "%s\"response_format\":{\"type\":\"xml\"}}", m);
	expect_refused(openai_chat_to_ollama, body, "response_format.type", "invalid_value",
		       "'xml'");
	snprintf(body, sizeof(body), "%s\"response_format\":\"json\"}", m);
	expect_refused(openai_chat_to_ollama, body, "response_format", "invalid_type", NULL);
	snprintf(body, sizeof(body),
		 "%s\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
		 "[]}}}",
		 m);
	expect_refused(openai_chat_to_ollama, body, "response_format.json_schema.schema",
		       "invalid_type", NULL);
}

static void
test_chat_reasoning_effort(void **state)
{
	(void)state;
	/* Ollama's table (openai_test.go TestFromChatRequest_ReasoningEffort). */
	static const struct {
		const char *effort;
		const char *think; /* "false" for false */
	} cases[] = {
	    {"high", "high"},	{"medium", "medium"}, {"low", "low"},	{"max", "max"},
	    {"minimal", "low"}, {"xhigh", "max"},     {"ultra", "max"}, {"none", "false"},
	};
	char body[256];
	struct openai_req_info info;
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		for (int form = 0; form < 2; form++) {
			snprintf(body, sizeof(body),
				 form == 0
				     ? "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
				       "\"content\":\"x\"}],\"reasoning_effort\":\"%s\"}"
				     : "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
				       "\"content\":\"x\"}],\"reasoning\":{\"effort\":\"%s\"}}",
				 cases[i].effort);
			json_t *native = chat_ok(body, &info);
			const json_t *think = json_object_get(native, "think");
			if (strcmp(cases[i].think, "false") == 0)
				assert_true(json_is_false(think));
			else
				assert_string_equal(json_string_value(think), cases[i].think);
			json_decref(native);
		}
	}
	json_t *native = chat_ok(
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &info);
	assert_null(json_object_get(native, "think"));
	json_decref(native);
	/* The reasoning object wins over reasoning_effort. */
	native = chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"reasoning\":{\"effort\":\"low\"},\"reasoning_effort\":\"high\"}",
			 &info);
	assert_string_equal(json_string_value(json_object_get(native, "think")), "low");
	json_decref(native);

	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		       "\"reasoning_effort\":\"extreme\"}",
		       "reasoning_effort", "invalid_value", "invalid reasoning value: \"extreme\"");
	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		       "\"reasoning\":{\"effort\":5}}",
		       "reasoning.effort", "invalid_type", NULL);
}

static void
test_chat_logprobs(void **state)
{
	(void)state;
	struct openai_req_info info;
	json_t *native =
	    chat_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		    "\"logprobs\":true,\"top_logprobs\":5}",
		    &info);
	assert_true(json_is_true(json_object_get(native, "logprobs")));
	assert_int_equal(json_integer_value(json_object_get(native, "top_logprobs")), 5);
	json_decref(native);
	expect_refused(openai_chat_to_ollama,
		       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		       "\"top_logprobs\":21}",
		       "top_logprobs", "integer_above_max_value", NULL);
}

/* Bad bodies: each refused with a 400 naming the parameter. */
static void
test_chat_bad_input(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		const char *param, *code, *msg;
	} cases[] = {
	    {"[]", "body", "invalid_type", "expected an object, but got an array"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model",
	     "missing_required_parameter", "Missing required parameter: 'model'."},
	    {"{\"model\":3,\"messages\":[]}", "model", "invalid_type",
	     "Invalid type for 'model': expected a string, but got an integer instead."},
	    {"{\"model\":\"\",\"messages\":[]}", "model", "invalid_value", NULL},
	    {"{\"model\":\"m\"}", "messages", "missing_required_parameter", NULL},
	    {"{\"model\":\"m\",\"messages\":\"hi\"}", "messages", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty_array",
	     "[] is too short - 'messages'"},
	    {"{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role",
	     "missing_required_parameter", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
	     "messages[0].role", "invalid_value", "Invalid value: 'robot'."},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":2}]}",
	     "messages[0].content", "invalid_type",
	     "expected one of a string or array of objects, but got an integer"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content",
	     "missing_required_parameter", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
	     "messages[0].content", "empty_array", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
	     "\"tool\",\"content\":\"b\",\"tool_call_id\":5}]}",
	     "messages[1].tool_call_id", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"max_tokens\":\"5\"}",
	     "max_tokens", "invalid_type",
	     "Invalid type for 'max_tokens': expected an integer, but got a string instead."},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"max_tokens\":1.5}",
	     "max_tokens", "invalid_type", "but got a decimal instead"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"max_tokens\":0}",
	     "max_tokens", "integer_below_min_value", "Expected a value >= 1, but got 0 instead."},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"max_completion_tokens\":-3}",
	     "max_completion_tokens", "integer_below_min_value", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"temperature\":3}",
	     "temperature", "decimal_above_max_value", "Expected a value <= 2, but got 3 instead."},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"temperature\":\"hot\"}",
	     "temperature", "invalid_type", "expected a number"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"top_p\":1.5}",
	     "top_p", "decimal_above_max_value", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"presence_penalty\":-2.5}",
	     "presence_penalty", "decimal_below_min_value", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"seed\":\"s\"}",
	     "seed", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n",
	     "invalid_value", "only 1 is supported"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"stop\":[1]}",
	     "stop[0]", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":5}",
	     "stop", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"stream\":\"yes\"}",
	     "stream", "invalid_type", "expected a boolean, but got a string"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
	     "stream_options.include_usage", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"stream_options\":[]}",
	     "stream_options", "invalid_type", NULL},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	     "\"logprobs\":1}",
	     "logprobs", "invalid_type", NULL},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++)
		expect_refused(openai_chat_to_ollama, cases[i].body, cases[i].param, cases[i].code,
			       cases[i].msg);

	/* A value quoted in a message is cut, so errors stay small. */
	char body[1024];
	char role[301];
	memset(role, 'r', 300);
	role[300] = '\0';
	snprintf(body, sizeof(body),
		 "{\"model\":\"m\",\"messages\":[{\"role\":\"%s\",\"content\":\"x\"}]}", role);
	json_t *jbody = parse(body);
	json_t *native;
	struct openai_req_info info;
	char *error = NULL;
	int status;
	assert_int_equal(openai_chat_to_ollama(jbody, &native, &info, &error, &status), -EINVAL);
	assert_true(strlen(error) < 200);
	assert_non_null(strstr(error, "..."));
	free(error);
	json_decref(jbody);
}

/* --- completions and embeddings requests ------------------------------------------------- */

static void
test_completion_request(void **state)
{
	(void)state;
	json_t *body = parse("{\"model\":\"test-model\",\"prompt\":\"Hello\",\"temperature\":0.8,"
			     "\"stop\":[\"\\n\",\"stop\"],\"suffix\":\"suffix\",\"stream\":true,"
			     "\"stream_options\":{\"include_usage\":true},\"max_tokens\":16,"
			     "\"logprobs\":3,\"echo\":false,\"best_of\":1,\"n\":1}");
	json_t *native = NULL;
	struct openai_req_info info;
	char *error = NULL;
	int status = 0;
	assert_int_equal(openai_completion_to_ollama(body, &native, &info, &error, &status), 0);
	/* Penalties are sent as 0 when absent, as Ollama does. */
	assert_json_equal(native, "{\"model\":\"test-model\",\"prompt\":\"Hello\",\"suffix\":"
				  "\"suffix\",\"options\":{\"temperature\":0.8,\"top_p\":1.0,"
				  "\"frequency_penalty\":0.0,\"presence_penalty\":0.0,"
				  "\"num_predict\":16,\"stop\":[\"\\n\",\"stop\"]},"
				  "\"logprobs\":true,\"top_logprobs\":3}");
	assert_int_equal(info.endpoint, OPENAI_COMPLETIONS);
	assert_true(info.stream);
	assert_true(info.include_usage);
	json_decref(native);
	json_decref(body);

	/* An array of one prompt is the same request. */
	body = parse("{\"model\":\"m\",\"prompt\":[\"only one\"]}");
	assert_int_equal(openai_completion_to_ollama(body, &native, &info, &error, &status), 0);
	assert_string_equal(json_string_value(json_object_get(native, "prompt")), "only one");
	assert_null(json_object_get(native, "suffix"));
	json_decref(native);
	json_decref(body);

	expect_refused(openai_completion_to_ollama, "{\"model\":\"m\"}", "prompt",
		       "missing_required_parameter", NULL);
	expect_refused(openai_completion_to_ollama, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}",
		       "prompt", "invalid_type", "several prompts");
	expect_refused(openai_completion_to_ollama, "{\"model\":\"m\",\"prompt\":[1,2,3]}",
		       "prompt", "invalid_type", "token arrays");
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true}", "echo", "invalid_value",
		       "not supported");
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"best_of\":3}", "best_of",
		       "invalid_value", NULL);
	expect_refused(openai_completion_to_ollama, "{\"model\":\"m\",\"prompt\":\"x\",\"n\":4}",
		       "n", "invalid_value", NULL);
	/* Ollama's own case: stop [1, 2]. */
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"stop\":[1,2]}", "stop[0]",
		       "invalid_type", NULL);
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":false}", "suffix",
		       "invalid_type", NULL);
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":true}", "logprobs",
		       "invalid_type", NULL);
	expect_refused(openai_completion_to_ollama,
		       "{\"model\":\"m\",\"prompt\":\"x\",\"max_completion_tokens\":0,"
		       "\"max_tokens\":0}",
		       "max_tokens", "integer_below_min_value", NULL);
}

static void
test_embeddings_request(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		const char *native;
		enum openai_encoding encoding;
	} cases[] = {
	    {"{\"model\":\"e\",\"input\":\"Hello\"}", "{\"model\":\"e\",\"input\":\"Hello\"}",
	     OPENAI_ENCODING_FLOAT},
	    {"{\"model\":\"e\",\"input\":[\"Hello\",\"World\"],\"encoding_format\":\"base64\"}",
	     "{\"model\":\"e\",\"input\":[\"Hello\",\"World\"]}", OPENAI_ENCODING_BASE64},
	    /* "" gets its one embedding, as Ollama sends it as [""]. */
	    {"{\"model\":\"e\",\"input\":\"\",\"encoding_format\":\"BASE64\"}",
	     "{\"model\":\"e\",\"input\":[\"\"]}", OPENAI_ENCODING_BASE64},
	    {"{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"Float\",\"dimensions\":256,"
	     "\"user\":\"u\"}",
	     "{\"model\":\"e\",\"input\":\"x\",\"dimensions\":256}", OPENAI_ENCODING_FLOAT},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		json_t *body = parse(cases[i].body);
		json_t *native = NULL;
		struct openai_req_info info;
		char *error = NULL;
		int status = 0;
		if (openai_embeddings_to_ollama(body, &native, &info, &error, &status) != 0)
			fail_msg("refused %s: %s", cases[i].body, error);
		assert_json_equal(native, cases[i].native);
		assert_int_equal(info.encoding, cases[i].encoding);
		assert_int_equal(info.endpoint, OPENAI_EMBEDDINGS);
		json_decref(native);
		json_decref(body);
	}
	expect_refused(openai_embeddings_to_ollama, "{\"model\":\"e\"}", "input",
		       "missing_required_parameter", NULL);
	expect_refused(openai_embeddings_to_ollama, "{\"model\":\"e\",\"input\":[]}", "input",
		       "invalid_value", NULL);
	expect_refused(openai_embeddings_to_ollama, "{\"model\":\"e\",\"input\":[[1,2],[3]]}",
		       "input[0]", "invalid_type", "token arrays are not supported");
	expect_refused(openai_embeddings_to_ollama, "{\"model\":\"e\",\"input\":[\"a\",7]}",
		       "input[1]", "invalid_type", NULL);
	expect_refused(openai_embeddings_to_ollama, "{\"model\":\"e\",\"input\":42}", "input",
		       "invalid_type", NULL);
	expect_refused(openai_embeddings_to_ollama,
		       "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"int8\"}",
		       "encoding_format", "invalid_value",
		       "Invalid value for 'encoding_format' = int8. Supported values: ['float', "
		       "'base64'].");
	expect_refused(openai_embeddings_to_ollama,
		       "{\"model\":\"e\",\"input\":\"x\",\"dimensions\":0}", "dimensions",
		       "integer_below_min_value", NULL);
	expect_refused(openai_embeddings_to_ollama,
		       "{\"model\":\"e\",\"input\":\"x\",\"dimensions\":\"big\"}", "dimensions",
		       "invalid_type", NULL);

	/* One input too many. */
	json_t *body = json_pack("{s:s}", "model", "e");
	json_t *input = json_array();
	for (int i = 0; i <= OPENAI_EMBED_INPUTS_MAX; i++)
		json_array_append_new(input, json_string("x"));
	json_object_set_new(body, "input", input);
	json_t *native;
	struct openai_req_info info;
	char *error = NULL;
	int status;
	assert_int_equal(openai_embeddings_to_ollama(body, &native, &info, &error, &status),
			 -EINVAL);
	assert_string_equal(info.param, "input");
	free(error);
	json_decref(body);
}

/* --- non-streaming replies --------------------------------------------------------------- */

static json_t *
reply_json(int (*fn)(const json_t *, const struct openai_reply_meta *, char **, char **),
	   const char *native_text, const struct openai_reply_meta *meta)
{
	json_t *native = parse(native_text);
	char *out = NULL, *cause = NULL;
	int rc = fn(native, meta, &out, &cause);
	if (rc != 0)
		fail_msg("reply failed: %s", cause);
	json_t *reply = parse(out);
	free(out);
	json_decref(native);
	return reply;
}

static void
test_chat_reply(void **state)
{
	(void)state;
	struct openai_reply_meta meta = {.id = "chatcmpl-17", .created = 1700000000, .model = "m"};
	json_t *r =
	    reply_json(openai_chat_reply,
		       "{\"model\":\"test-model\",\"created_at\":\"2026-08-21T10:00:04.5Z\","
		       "\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\","
		       "\"thinking\":\"hmm\"},\"done\":true,\"done_reason\":\"stop\","
		       "\"total_duration\":5,\"prompt_eval_count\":5,\"eval_count\":2}",
		       &meta);
	assert_json_equal(r, "{\"id\":\"chatcmpl-17\",\"object\":\"chat.completion\","
			     "\"created\":1700000000,\"model\":\"test-model\","
			     "\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
			     "\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\","
			     "\"reasoning\":\"hmm\"},\"finish_reason\":\"stop\"}],"
			     "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,"
			     "\"total_tokens\":7}}");
	json_decref(r);

	/* No done_reason: finish_reason null; the model falls back to the request's. */
	r = reply_json(openai_chat_reply,
		       "{\"message\":{\"role\":\"assistant\",\"content\":\"x\"},\"done\":true,"
		       "\"logprobs\":[{\"token\":\"x\",\"logprob\":-0.5,\"top_logprobs\":[]}]}",
		       &meta);
	const json_t *choice = json_array_get(json_object_get(r, "choices"), 0);
	assert_true(json_is_null(json_object_get(choice, "finish_reason")));
	assert_string_equal(json_string_value(json_object_get(r, "model")), "m");
	assert_json_equal(json_object_get(choice, "logprobs"),
			  "{\"content\":[{\"token\":\"x\",\"logprob\":-0.5,\"top_logprobs\":[]}]}");
	assert_json_equal(json_object_get(r, "usage"), "{\"prompt_tokens\":0,\"completion_tokens\":"
						       "0,\"total_tokens\":0}");
	json_decref(r);
}

static void
test_chat_reply_tool_calls(void **state)
{
	(void)state;
	struct openai_reply_meta meta = {.id = "chatcmpl-17", .created = 1, .model = "m"};
	const char *fmt = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\","
			  "\"tool_calls\":[{\"id\":\"call_abc123\",\"function\":{\"index\":2,"
			  "\"name\":\"get_weather\",\"arguments\":{\"location\":\"Seattle\","
			  "\"unit\":\"c\"}}},{\"function\":{\"name\":\"get_time\",\"arguments\":"
			  "{\"tz\":\"<UTC>\"}}}]},\"done\":true,\"done_reason\":\"%s\"}";
	char native[1024];
	snprintf(native, sizeof(native), fmt, "stop");
	json_t *r = reply_json(openai_chat_reply, native, &meta);
	const json_t *choice = json_array_get(json_object_get(r, "choices"), 0);
	assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")),
			    "tool_calls");
	/* Arguments become a JSON string in the node's key order; a call with no id gets one
	 * made from the reply's, and no index the next one. */
	assert_json_equal(json_object_get(json_object_get(choice, "message"), "tool_calls"),
			  "[{\"id\":\"call_abc123\",\"index\":2,\"type\":\"function\","
			  "\"function\":{\"name\":\"get_weather\",\"arguments\":"
			  "\"{\\\"location\\\":\\\"Seattle\\\",\\\"unit\\\":\\\"c\\\"}\"}},"
			  "{\"id\":\"call_17_3\",\"index\":3,\"type\":\"function\","
			  "\"function\":{\"name\":\"get_time\",\"arguments\":"
			  "\"{\\\"tz\\\":\\\"\\\\u003cUTC\\\\u003e\\\"}\"}}]");
	json_decref(r);

	/* A cut-off tool call stays "length"; other reasons pass through. */
	snprintf(native, sizeof(native), fmt, "length");
	r = reply_json(openai_chat_reply, native, &meta);
	choice = json_array_get(json_object_get(r, "choices"), 0);
	assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "length");
	json_decref(r);
	snprintf(native, sizeof(native), fmt, "unload");
	r = reply_json(openai_chat_reply, native, &meta);
	choice = json_array_get(json_object_get(r, "choices"), 0);
	assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "unload");
	json_decref(r);
}

static void
test_reply_errors(void **state)
{
	(void)state;
	struct openai_reply_meta meta = {.id = "chatcmpl-1", .created = 1, .model = "m"};
	static const struct {
		const char *native;
		int rc;
		const char *cause;
	} cases[] = {
	    {"{\"error\":\"model 'm' not found\"}", -EIO, "model 'm' not found"},
	    {"{\"model\":\"m\",\"done\":true}", -EINVAL, "'message'"},
	    {"{\"model\":\"m\",\"message\":\"hi\"}", -EINVAL, "'message'"},
	    {"[1]", -EINVAL, "not a JSON object"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		json_t *native = parse(cases[i].native);
		char *out = NULL, *cause = NULL;
		assert_int_equal(openai_chat_reply(native, &meta, &out, &cause), cases[i].rc);
		assert_null(out);
		assert_non_null(strstr(cause, cases[i].cause));
		free(cause);
		json_decref(native);
	}
	json_t *native = parse("{\"model\":\"m\",\"response\":5}");
	char *out = NULL, *cause = NULL;
	assert_int_equal(openai_completion_reply(native, &meta, &out, &cause), -EINVAL);
	free(cause);
	json_decref(native);
}

static void
test_completion_reply(void **state)
{
	(void)state;
	struct openai_reply_meta meta = {.id = "cmpl-9", .created = 1234567890, .model = "m"};
	json_t *r =
	    reply_json(openai_completion_reply,
		       "{\"model\":\"g\",\"created_at\":\"2026-08-21T10:00:04.5Z\","
		       "\"response\":\"Once upon\",\"done\":true,\"done_reason\":\"length\","
		       "\"context\":[1,2],\"prompt_eval_count\":26,\"eval_count\":259}",
		       &meta);
	assert_json_equal(r, "{\"id\":\"cmpl-9\",\"object\":\"text_completion\","
			     "\"created\":1234567890,\"model\":\"g\",\"system_fingerprint\":"
			     "\"fp_ollama\",\"choices\":[{\"text\":\"Once upon\",\"index\":0,"
			     "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":26,"
			     "\"completion_tokens\":259,\"total_tokens\":285}}");
	json_decref(r);
}

/* --- embeddings replies and base64 ------------------------------------------------------- */

static char *
embeddings_text(const char *native_text, enum openai_encoding enc)
{
	struct openai_reply_meta meta = {.created = 1, .model = "test-model"};
	json_t *native = parse(native_text);
	char *out = NULL, *cause = NULL;
	if (openai_embeddings_reply(native, &meta, enc, &out, &cause) != 0)
		fail_msg("embeddings reply failed: %s", cause);
	json_decref(native);
	return out;
}

static void
test_embeddings_base64_known(void **state)
{
	(void)state;
	/* The vectors of Ollama's openai_encoding_format_test.go. */
	char *text = embeddings_text("{\"model\":\"node-model\",\"embeddings\":[[0.1,-0.2,0.3]],"
				     "\"prompt_eval_count\":5}",
				     OPENAI_ENCODING_BASE64);
	json_t *r = parse(text);
	assert_json_equal(r, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
			     "\"embedding\":\"zczMPc3MTL6amZk+\",\"index\":0}],"
			     "\"model\":\"test-model\",\"usage\":{\"prompt_tokens\":5,"
			     "\"total_tokens\":5}}");
	json_decref(r);
	free(text);

	text = embeddings_text("{\"embeddings\":[[0.1,0.2],[0.3,0.4],[0.5,0.6]]}",
			       OPENAI_ENCODING_BASE64);
	r = parse(text);
	const char *want[] = {"zczMPc3MTD4=", "mpmZPs3MzD4=", "AAAAP5qZGT8="};
	json_t *data = json_object_get(r, "data");
	assert_int_equal(json_array_size(data), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(data, i);
		assert_string_equal(json_string_value(json_object_get(e, "embedding")), want[i]);
		assert_int_equal(json_integer_value(json_object_get(e, "index")), (json_int_t)i);
	}
	json_decref(r);
	free(text);
}

static void
test_embeddings_float_and_round_trip(void **state)
{
	(void)state;
	/* Floats come out in their shortest float32 form, as Go prints []float32. */
	char *text =
	    embeddings_text("{\"embeddings\":[[0.1,-0.2,0.3,0.010071029,1e-7,-0.0017594862,"
			    "12345.678]],\"prompt_eval_count\":8}",
			    OPENAI_ENCODING_FLOAT);
	assert_non_null(strstr(text, "\"embedding\":[0.1,-0.2,0.3,0.010071029,1e-07,"
				     "-0.0017594862,12345.678]"));
	free(text);

	/* base64 of known floats decodes back to the same little-endian float32 values. */
	const float values[] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, 3.4028235e38f, -1.17549435e-38f,
				0.0f};
	json_t *vec = json_array();
	for (size_t i = 0; i < VD_ARRAY_LEN(values); i++)
		json_array_append_new(vec, json_real(values[i]));
	json_t *native = json_pack("{s:[o]}", "embeddings", vec);
	char *dump = json_dumps(native, JSON_COMPACT);
	json_decref(native);
	text = embeddings_text(dump, OPENAI_ENCODING_BASE64);
	free(dump);
	json_t *r = parse(text);
	const char *b64 = json_string_value(
	    json_object_get(json_array_get(json_object_get(r, "data"), 0), "embedding"));
	unsigned char *bytes;
	size_t len;
	assert_int_equal(openai_base64_decode(b64, strlen(b64), &bytes, &len), 0);
	assert_int_equal(len, 4 * VD_ARRAY_LEN(values));
	for (size_t i = 0; i < VD_ARRAY_LEN(values); i++) {
		uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
			     (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
		float f;
		memcpy(&f, &u, sizeof(f));
		assert_true(f == values[i]);
	}
	free(bytes);
	json_decref(r);
	free(text);

	/* No embeddings: an empty list, not an error. */
	text = embeddings_text("{\"model\":\"e\",\"embeddings\":[]}", OPENAI_ENCODING_FLOAT);
	r = parse(text);
	assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
	json_decref(r);
	free(text);

	/* Not embeddings. */
	static const char *const bad[] = {"{\"embeddings\":{}}", "{\"embeddings\":[[\"a\"]]}",
					  "{\"embeddings\":[[1e39]]}", "{\"embeddings\":[1]}",
					  "{\"error\":\"boom\"}"};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		struct openai_reply_meta meta = {.model = "e"};
		json_t *n = parse(bad[i]);
		char *out = NULL, *cause = NULL;
		assert_true(openai_embeddings_reply(n, &meta, OPENAI_ENCODING_FLOAT, &out, &cause) <
			    0);
		assert_null(out);
		assert_non_null(cause);
		free(cause);
		json_decref(n);
	}
}

static void
test_base64(void **state)
{
	(void)state;
	static const struct {
		const char *plain, *b64;
	} known[] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(known); i++) {
		char *enc = openai_base64_encode((const unsigned char *)known[i].plain,
						 strlen(known[i].plain));
		assert_string_equal(enc, known[i].b64);
		free(enc);
		unsigned char *dec;
		size_t len;
		assert_int_equal(
		    openai_base64_decode(known[i].b64, strlen(known[i].b64), &dec, &len), 0);
		assert_int_equal(len, strlen(known[i].plain));
		assert_memory_equal(dec, known[i].plain, len);
		free(dec);
	}
	static const char *const bad[] = {
	    "Zg", "Zg=", "Z===", "Zm9v=", "Zg==Zg==", "Zm$v", "=", "Zm9vY"};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		unsigned char *dec = NULL;
		size_t len;
		if (openai_base64_decode(bad[i], strlen(bad[i]), &dec, &len) == 0)
			fail_msg("decoded bad base64 %s", bad[i]);
		assert_null(dec);
	}
}

/* --- streaming --------------------------------------------------------------------------- */

/* The events of an SSE buffer, each the text after "data: ". */
struct events {
	char *items[32];
	size_t n;
};

static void
events_split(const char *sse, struct events *ev)
{
	memset(ev, 0, sizeof(*ev));
	const char *p = sse;
	while (*p != '\0') {
		if (strncmp(p, "data: ", 6) != 0)
			fail_msg("event does not start with 'data: ': %s", p);
		const char *end = strstr(p, "\n\n");
		if (end == NULL)
			fail_msg("event not ended by a blank line: %s", p);
		assert_true(ev->n < VD_ARRAY_LEN(ev->items));
		ev->items[ev->n++] = xstrndup(p + 6, (size_t)(end - p - 6));
		p = end + 2;
	}
}

static void
events_free(struct events *ev)
{
	for (size_t i = 0; i < ev->n; i++)
		free(ev->items[i]);
}

/* Feeds native chunks (JSON texts) and returns the events. */
static void
stream_run(struct openai_stream *st, const char *const *chunks, size_t n, struct events *ev)
{
	struct vd_buf out;
	vd_buf_init(&out, 1 << 20);
	for (size_t i = 0; i < n; i++) {
		json_t *chunk = parse(chunks[i]);
		char *cause = NULL;
		if (openai_stream_feed(st, chunk, &out, &cause) != 0)
			fail_msg("feed failed: %s", cause);
		json_decref(chunk);
	}
	events_split(vd_buf_str(&out), ev);
	vd_buf_cleanup(&out);
}

static void
stream_start(struct openai_stream *st, enum openai_endpoint ep, bool include_usage)
{
	struct openai_req_info info = {
	    .endpoint = ep, .stream = true, .include_usage = include_usage};
	struct openai_reply_meta meta = {.id = ep == OPENAI_CHAT ? "chatcmpl-5" : "cmpl-5",
					 .created = 1700000000,
					 .model = "req-model"};
	openai_stream_init(st, &info, &meta);
}

/* Checks the fields every chat chunk shares and returns choices[0] (or NULL). */
static json_t *
chat_event(const char *text, json_t **root)
{
	*root = parse(text);
	assert_string_equal(json_string_value(json_object_get(*root, "id")), "chatcmpl-5");
	assert_string_equal(json_string_value(json_object_get(*root, "object")),
			    "chat.completion.chunk");
	assert_int_equal(json_integer_value(json_object_get(*root, "created")), 1700000000);
	assert_string_equal(json_string_value(json_object_get(*root, "system_fingerprint")),
			    "fp_ollama");
	return json_array_get(json_object_get(*root, "choices"), 0);
}

static void
test_stream_chat_basic(void **state)
{
	(void)state;
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, false);
	const char *chunks[] = {
	    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\","
	    "\"content\":\"Hel\"},\"done\":false}",
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},"
	    "\"done\":false}",
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
	    "\"done_reason\":\"stop\",\"prompt_eval_count\":3,\"eval_count\":2}",
	};
	struct events ev;
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	/* Two content deltas, no empty one for the metrics trailer, the finish, [DONE]. */
	assert_int_equal(ev.n, 4);
	json_t *root;
	json_t *c = chat_event(ev.items[0], &root);
	assert_json_equal(json_object_get(c, "delta"),
			  "{\"role\":\"assistant\",\"content\":\"Hel\"}");
	assert_true(json_is_null(json_object_get(c, "finish_reason")));
	assert_int_equal(json_integer_value(json_object_get(c, "index")), 0);
	assert_string_equal(json_string_value(json_object_get(root, "model")), "m");
	assert_null(json_object_get(root, "usage"));
	json_decref(root);
	c = chat_event(ev.items[1], &root);
	assert_json_equal(json_object_get(c, "delta"), "{\"content\":\"lo\"}");
	json_decref(root);
	c = chat_event(ev.items[2], &root);
	assert_json_equal(json_object_get(c, "delta"), "{}");
	assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
	assert_null(json_object_get(root, "usage"));
	json_decref(root);
	assert_string_equal(ev.items[3], "[DONE]");
	assert_true(openai_stream_is_done(&st));
	events_free(&ev);

	/* Chunks after the end add nothing. */
	stream_run(&st, chunks, 1, &ev);
	assert_int_equal(ev.n, 0);
	openai_stream_cleanup(&st);
}

static void
test_stream_chat_usage_and_length(void **state)
{
	(void)state;
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, true);
	/* No model in the chunks: the request's. */
	const char *chunks[] = {
	    "{\"message\":{\"role\":\"assistant\",\"content\":\"a b c\"},\"done\":false}",
	    "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
	    "\"done_reason\":\"length\",\"prompt_eval_count\":3,\"eval_count\":7}",
	};
	struct events ev;
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	assert_int_equal(ev.n, 4);
	json_t *root;
	json_t *c = chat_event(ev.items[1], &root);
	assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
	assert_string_equal(json_string_value(json_object_get(root, "model")), "req-model");
	json_decref(root);
	/* The usage chunk: no choices, the counts of the final chunk. */
	c = chat_event(ev.items[2], &root);
	assert_null(c);
	assert_int_equal(json_array_size(json_object_get(root, "choices")), 0);
	assert_json_equal(json_object_get(root, "usage"),
			  "{\"prompt_tokens\":3,\"completion_tokens\":7,\"total_tokens\":10}");
	json_decref(root);
	assert_string_equal(ev.items[3], "[DONE]");
	events_free(&ev);
	openai_stream_cleanup(&st);
}

static void
test_stream_chat_tool_calls(void **state)
{
	(void)state;
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, false);
	const char *chunks[] = {
	    /* Thinking and a tool call in one chunk: split in two events. */
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":"
	    "\"need a tool\",\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"index\":0,"
	    "\"name\":\"get_weather\",\"arguments\":{\"location\":\"Paris\"}}}]},\"done\":false}",
	    /* A second call the node does not number. */
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
	    "[{\"id\":\"call_2\",\"function\":{\"name\":\"get_time\",\"arguments\":{}}}]},"
	    "\"done\":false}",
	    ("{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
	     "\"done_reason\":\"stop\"}"),
	};
	struct events ev;
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	assert_int_equal(ev.n, 5);
	json_t *root;
	json_t *c = chat_event(ev.items[0], &root);
	assert_json_equal(json_object_get(c, "delta"),
			  "{\"role\":\"assistant\",\"reasoning\":\"need a tool\"}");
	json_decref(root);
	c = chat_event(ev.items[1], &root);
	assert_json_equal(json_object_get(c, "delta"),
			  "{\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"index\":0,"
			  "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
			  "\"arguments\":\"{\\\"location\\\":\\\"Paris\\\"}\"}}]}");
	json_decref(root);
	c = chat_event(ev.items[2], &root);
	assert_json_equal(json_object_get(c, "delta"),
			  "{\"content\":\"\",\"tool_calls\":[{\"id\":\"call_2\",\"index\":1,"
			  "\"type\":\"function\",\"function\":{\"name\":\"get_time\","
			  "\"arguments\":\"{}\"}}]}");
	json_decref(root);
	c = chat_event(ev.items[3], &root);
	assert_json_equal(json_object_get(c, "delta"), "{}");
	assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "tool_calls");
	json_decref(root);
	assert_string_equal(ev.items[4], "[DONE]");
	events_free(&ev);
	openai_stream_cleanup(&st);
}

static void
test_stream_chat_edge_cases(void **state)
{
	(void)state;
	/* A wholly empty completion still opens with the role. */
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, false);
	const char *empty[] = {"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":"
			       "\"\"},\"done\":true,\"done_reason\":\"stop\"}"};
	struct events ev;
	stream_run(&st, empty, 1, &ev);
	assert_int_equal(ev.n, 3);
	json_t *root;
	json_t *c = chat_event(ev.items[0], &root);
	assert_json_equal(json_object_get(c, "delta"), "{\"role\":\"assistant\",\"content\":\"\"}");
	json_decref(root);
	events_free(&ev);
	openai_stream_cleanup(&st);

	/* Thinking alone stays one event with content "" (Ollama's toChunk); a done chunk
	 * with logprobs is not a trailer; no done_reason finishes as "stop". */
	stream_start(&st, OPENAI_CHAT, false);
	const char *chunks[] = {
	    "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\"},"
	    "\"done\":false}",
	    "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
	    "\"logprobs\":[{\"token\":\"x\",\"logprob\":-1}]}",
	};
	stream_run(&st, chunks, 2, &ev);
	assert_int_equal(ev.n, 4);
	c = chat_event(ev.items[0], &root);
	assert_json_equal(json_object_get(c, "delta"),
			  "{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"hmm\"}");
	json_decref(root);
	c = chat_event(ev.items[1], &root);
	assert_json_equal(json_object_get(c, "delta"), "{\"content\":\"\"}");
	assert_json_equal(json_object_get(c, "logprobs"),
			  "{\"content\":[{\"token\":\"x\",\"logprob\":-1}]}");
	json_decref(root);
	c = chat_event(ev.items[2], &root);
	assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
	json_decref(root);
	events_free(&ev);
	openai_stream_cleanup(&st);
}

static void
test_stream_errors(void **state)
{
	(void)state;
	/* Ollama fails a started stream with an {"error"} line: an OpenAI error event. */
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, true);
	const char *chunks[] = {
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"par\"},"
	    "\"done\":false}",
	    "{\"error\":\"an error was encountered while running the model\"}",
	    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"more\"},"
	    "\"done\":false}",
	};
	struct events ev;
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	assert_int_equal(ev.n, 3);
	json_t *err = parse(ev.items[1]);
	assert_json_equal(err, "{\"error\":{\"message\":\"an error was encountered while running "
			       "the model\",\"type\":\"api_error\",\"param\":null,\"code\":null}}");
	json_decref(err);
	assert_string_equal(ev.items[2], "[DONE]");
	assert_true(openai_stream_is_done(&st));
	events_free(&ev);
	openai_stream_cleanup(&st);

	/* vramd ends a stream itself (node gone, job cancelled). */
	stream_start(&st, OPENAI_COMPLETIONS, false);
	struct vd_buf out;
	vd_buf_init(&out, 4096);
	assert_int_equal(openai_stream_fail(&st, 503, "node http://n1 went away", &out), 0);
	events_split(vd_buf_str(&out), &ev);
	assert_int_equal(ev.n, 2);
	err = parse(ev.items[0]);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(err, "error"), "message")),
	    "node http://n1 went away");
	json_decref(err);
	events_free(&ev);
	/* Once done, nothing more. */
	size_t len = out.len;
	assert_int_equal(openai_stream_fail(&st, 500, "again", &out), 0);
	assert_int_equal(out.len, len);
	vd_buf_cleanup(&out);
	openai_stream_cleanup(&st);

	/* Chunks that are not native chunks are refused, leaving out untouched. */
	stream_start(&st, OPENAI_CHAT, false);
	vd_buf_init(&out, 4096);
	static const char *const bad[] = {"[1]", "{\"message\":\"x\"}", "\"text\""};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		json_t *chunk = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		char *cause = NULL;
		assert_int_equal(openai_stream_feed(&st, chunk, &out, &cause), -EINVAL);
		assert_non_null(cause);
		free(cause);
		json_decref(chunk);
	}
	assert_int_equal(out.len, 0);
	vd_buf_cleanup(&out);
	openai_stream_cleanup(&st);
	stream_start(&st, OPENAI_COMPLETIONS, false);
	vd_buf_init(&out, 4096);
	json_t *chunk = parse("{\"response\":3}");
	char *cause = NULL;
	assert_int_equal(openai_stream_feed(&st, chunk, &out, &cause), -EINVAL);
	free(cause);
	json_decref(chunk);
	vd_buf_cleanup(&out);
	openai_stream_cleanup(&st);
}

static void
test_stream_buffer_full(void **state)
{
	(void)state;
	struct openai_stream st;
	stream_start(&st, OPENAI_CHAT, true);
	json_t *chunk = parse("{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":"
			      "\"x\"},\"done\":true,\"done_reason\":\"stop\"}");
	/* Room for some events of the chunk but not all: nothing is appended and the
	 * stream has not moved on. */
	struct vd_buf out;
	vd_buf_init(&out, 300);
	vd_buf_append_str(&out, "prev");
	char *cause = NULL;
	assert_int_equal(openai_stream_feed(&st, chunk, &out, &cause), -E2BIG);
	free(cause);
	assert_string_equal(vd_buf_str(&out), "prev");
	assert_false(openai_stream_is_done(&st));
	vd_buf_cleanup(&out);

	vd_buf_init(&out, 1 << 16);
	assert_int_equal(openai_stream_feed(&st, chunk, &out, &cause), 0);
	struct events ev;
	events_split(vd_buf_str(&out), &ev);
	assert_int_equal(ev.n, 4);
	json_t *root;
	json_t *c = chat_event(ev.items[0], &root);
	assert_string_equal(json_string_value(json_object_get(json_object_get(c, "delta"), "role")),
			    "assistant");
	json_decref(root);
	events_free(&ev);
	vd_buf_cleanup(&out);
	json_decref(chunk);
	openai_stream_cleanup(&st);
}

static void
test_stream_completion(void **state)
{
	(void)state;
	struct openai_stream st;
	stream_start(&st, OPENAI_COMPLETIONS, true);
	const char *chunks[] = {
	    "{\"model\":\"g\",\"response\":\"Once\",\"done\":false}",
	    "{\"model\":\"g\",\"response\":\" upon\",\"done\":false}",
	    ("{\"model\":\"g\",\"response\":\"\",\"done\":true,\"done_reason\":\"length\","
	     "\"context\":[1],\"prompt_eval_count\":4,\"eval_count\":2}"),
	};
	struct events ev;
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	assert_int_equal(ev.n, 5);
	const char *texts[] = {"Once", " upon", ""};
	for (size_t i = 0; i < 3; i++) {
		json_t *r = parse(ev.items[i]);
		assert_string_equal(json_string_value(json_object_get(r, "id")), "cmpl-5");
		assert_string_equal(json_string_value(json_object_get(r, "object")),
				    "text_completion");
		assert_int_equal(json_integer_value(json_object_get(r, "created")), 1700000000);
		assert_string_equal(json_string_value(json_object_get(r, "model")), "g");
		json_t *c = json_array_get(json_object_get(r, "choices"), 0);
		assert_string_equal(json_string_value(json_object_get(c, "text")), texts[i]);
		if (i < 2)
			assert_true(json_is_null(json_object_get(c, "finish_reason")));
		else
			assert_string_equal(json_string_value(json_object_get(c, "finish_reason")),
					    "length");
		assert_null(json_object_get(r, "usage"));
		json_decref(r);
	}
	json_t *r = parse(ev.items[3]);
	assert_int_equal(json_array_size(json_object_get(r, "choices")), 0);
	assert_json_equal(json_object_get(r, "usage"),
			  "{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}");
	json_decref(r);
	assert_string_equal(ev.items[4], "[DONE]");
	events_free(&ev);
	openai_stream_cleanup(&st);

	/* Without include_usage: no usage chunk. */
	stream_start(&st, OPENAI_COMPLETIONS, false);
	stream_run(&st, chunks, VD_ARRAY_LEN(chunks), &ev);
	assert_int_equal(ev.n, 4);
	assert_string_equal(ev.items[3], "[DONE]");
	events_free(&ev);
	openai_stream_cleanup(&st);
}

/* --- errors and models ------------------------------------------------------------------- */

static void
test_error_json(void **state)
{
	(void)state;
	static const struct {
		int status;
		const char *type, *code;
	} cases[] = {
	    {400, "invalid_request_error", NULL},
	    {401, "authentication_error", NULL},
	    {403, "permission_error", NULL},
	    {404, "not_found_error", NULL},
	    {413, "invalid_request_error", NULL},
	    {429, "rate_limit_error", "rate_limit_exceeded"},
	    {500, "api_error", NULL},
	    {503, "api_error", NULL},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		json_t *err = openai_error_json(cases[i].status, "test message", NULL, NULL, NULL);
		json_t *e = json_object_get(err, "error");
		assert_int_equal(json_object_size(err), 1);
		assert_int_equal(json_object_size(e), 4);
		assert_string_equal(json_string_value(json_object_get(e, "message")),
				    "test message");
		assert_string_equal(json_string_value(json_object_get(e, "type")), cases[i].type);
		assert_true(json_is_null(json_object_get(e, "param")));
		if (cases[i].code == NULL)
			assert_true(json_is_null(json_object_get(e, "code")));
		else
			assert_string_equal(json_string_value(json_object_get(e, "code")),
					    cases[i].code);
		json_decref(err);
	}
	json_t *err = openai_error_json(404, "The model 'x' does not exist",
					"invalid_request_error", "model", "model_not_found");
	assert_json_equal(err, "{\"error\":{\"message\":\"The model 'x' does not exist\","
			       "\"type\":\"invalid_request_error\",\"param\":\"model\","
			       "\"code\":\"model_not_found\"}}");
	json_decref(err);
	/* A message that is not UTF-8 still gives an error object. */
	err = openai_error_json(400, "bad \xff byte", NULL, NULL, NULL);
	assert_non_null(
	    json_string_value(json_object_get(json_object_get(err, "error"), "message")));
	json_decref(err);
}

static void
test_error_from_ollama(void **state)
{
	(void)state;
	const char *body = "{\"error\":\"model 'nope' not found\"}";
	json_t *err = openai_error_from_ollama(404, body, strlen(body));
	assert_json_equal(err, "{\"error\":{\"message\":\"model 'nope' not found\",\"type\":"
			       "\"not_found_error\",\"param\":\"model\",\"code\":"
			       "\"model_not_found\"}}");
	json_decref(err);
	body = "{\"error\":\"server busy, please try again.  maximum pending requests exceeded\"}";
	err = openai_error_from_ollama(503, body, strlen(body));
	json_t *e = json_object_get(err, "error");
	assert_string_equal(json_string_value(json_object_get(e, "type")), "api_error");
	assert_true(json_is_null(json_object_get(e, "code")));
	json_decref(err);
	/* Not Ollama's shape: the text itself. */
	err = openai_error_from_ollama(404, "404 page not found\n", 19);
	e = json_object_get(err, "error");
	assert_string_equal(json_string_value(json_object_get(e, "message")), "404 page not found");
	assert_true(json_is_null(json_object_get(e, "code")));
	json_decref(err);
	err = openai_error_from_ollama(502, "", 0);
	e = json_object_get(err, "error");
	assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "status 502"));
	json_decref(err);
}

static void
test_models(void **state)
{
	(void)state;
	json_t *tags = parse(
	    "{\"models\":[{\"name\":\"legacy-name:latest\",\"model\":\"namespace/exposed-model:"
	    "latest\",\"modified_at\":\"2009-02-13T23:31:30Z\"},{\"name\":\"fallback-name:latest\","
	    "\"modified_at\":\"2009-02-13T15:31:31-08:00\"},{\"name\":\"hf.co/bartowski/x:Q4\"},"
	    "{\"size\":1},{\"name\":\"registry.ollama.ai/library/y@sha256:abc\"}]}");
	json_t *list = openai_models_json(tags, 42);
	assert_json_equal(
	    list, "{\"object\":\"list\",\"data\":["
		  "{\"id\":\"namespace/exposed-model:latest\",\"object\":\"model\",\"created\":"
		  "1234567890,\"owned_by\":\"namespace\"},"
		  "{\"id\":\"fallback-name:latest\",\"object\":\"model\",\"created\":1234567891,"
		  "\"owned_by\":\"library\"},"
		  "{\"id\":\"hf.co/bartowski/x:Q4\",\"object\":\"model\",\"created\":42,"
		  "\"owned_by\":\"bartowski\"},"
		  "{\"id\":\"registry.ollama.ai/library/y@sha256:abc\",\"object\":\"model\","
		  "\"created\":42,\"owned_by\":\"library\"}]}");
	json_decref(list);
	json_decref(tags);

	tags = parse("{\"models\":[]}");
	list = openai_models_json(tags, 42);
	assert_json_equal(list, "{\"object\":\"list\",\"data\":[]}");
	json_decref(list);
	json_decref(tags);
	list = openai_models_json(NULL, 42);
	assert_json_equal(list, "{\"object\":\"list\",\"data\":[]}");
	json_decref(list);

	json_t *m = openai_model_json("llama3.2:1b", 1686935002);
	assert_json_equal(m, "{\"id\":\"llama3.2:1b\",\"object\":\"model\",\"created\":1686935002,"
			     "\"owned_by\":\"library\"}");
	json_decref(m);
	m = openai_model_json("mine/llama:v1", 1);
	assert_string_equal(json_string_value(json_object_get(m, "owned_by")), "mine");
	json_decref(m);
}

static void
test_make_id(void **state)
{
	(void)state;
	char buf[OPENAI_ID_MAX];
	assert_string_equal(openai_make_id(OPENAI_CHAT, 17, buf, sizeof(buf)), "chatcmpl-17");
	assert_string_equal(openai_make_id(OPENAI_COMPLETIONS, 3, buf, sizeof(buf)), "cmpl-3");
	assert_string_equal(openai_make_id(OPENAI_EMBEDDINGS, 3, buf, sizeof(buf)), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chat_basic),
	    cmocka_unit_test(test_chat_options),
	    cmocka_unit_test(test_chat_images),
	    cmocka_unit_test(test_chat_tool_messages),
	    cmocka_unit_test(test_chat_tools_and_choice),
	    cmocka_unit_test(test_chat_response_format),
	    cmocka_unit_test(test_chat_reasoning_effort),
	    cmocka_unit_test(test_chat_logprobs),
	    cmocka_unit_test(test_chat_bad_input),
	    cmocka_unit_test(test_completion_request),
	    cmocka_unit_test(test_embeddings_request),
	    cmocka_unit_test(test_chat_reply),
	    cmocka_unit_test(test_chat_reply_tool_calls),
	    cmocka_unit_test(test_reply_errors),
	    cmocka_unit_test(test_completion_reply),
	    cmocka_unit_test(test_embeddings_base64_known),
	    cmocka_unit_test(test_embeddings_float_and_round_trip),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_stream_chat_basic),
	    cmocka_unit_test(test_stream_chat_usage_and_length),
	    cmocka_unit_test(test_stream_chat_tool_calls),
	    cmocka_unit_test(test_stream_chat_edge_cases),
	    cmocka_unit_test(test_stream_errors),
	    cmocka_unit_test(test_stream_buffer_full),
	    cmocka_unit_test(test_stream_completion),
	    cmocka_unit_test(test_error_json),
	    cmocka_unit_test(test_error_from_ollama),
	    cmocka_unit_test(test_models),
	    cmocka_unit_test(test_make_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
