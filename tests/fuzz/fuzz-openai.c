/*
 * fuzz-openai.c: feeds arbitrary bytes to every function of openai.h, which parse what
 * clients send (request bodies) and what nodes answer (replies, streamed chunks, model
 * listings, error bodies). None may crash, leak or read out of bounds; a refusal must
 * come with a message and a 400, and everything produced must be valid JSON (each
 * streamed event too). The corpus holds requests and replies shaped like the real ones
 * (tests/fuzz/corpus/openai/).
 */
#include "buf.h"
#include "openai.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*fuzz_translate_fn)(const json_t *, json_t **, struct openai_req_info *, char **,
				 int *);
typedef int (*fuzz_reply_fn)(const json_t *, const struct openai_reply_meta *, char **, char **);

static void
fuzz_assert_json(const char *text)
{
	json_t *v = json_loads(text, 0, NULL);
	assert(v != NULL);
	json_decref(v);
}

/* Every event of an SSE buffer is "data: <JSON or [DONE]>\n\n". */
static void
fuzz_assert_events(const char *sse)
{
	while (*sse != '\0') {
		assert(strncmp(sse, "data: ", 6) == 0);
		const char *end = strstr(sse, "\n\n");
		assert(end != NULL);
		char *payload = strndup(sse + 6, (size_t)(end - sse - 6));
		if (strcmp(payload, "[DONE]") != 0)
			fuzz_assert_json(payload);
		free(payload);
		sse = end + 2;
	}
}

static void
fuzz_stream(enum openai_endpoint ep, const json_t *chunk)
{
	struct openai_req_info info = {.endpoint = ep, .stream = true, .include_usage = true};
	struct openai_reply_meta meta = {.id = "chatcmpl-1", .created = 1, .model = "m"};
	struct openai_stream st;
	openai_stream_init(&st, &info, &meta);
	struct vd_buf out;
	vd_buf_init(&out, 1 << 22);
	/* Twice, so the second goes through the "not first" paths. */
	for (int i = 0; i < 2; i++) {
		char *cause = NULL;
		size_t before = out.len;
		if (openai_stream_feed(&st, chunk, &out, &cause) < 0)
			assert(cause != NULL && out.len == before);
		free(cause);
	}
	assert(openai_stream_fail(&st, 500, "end", &out) == 0);
	assert(openai_stream_is_done(&st));
	fuzz_assert_events(vd_buf_str(&out));
	vd_buf_cleanup(&out);
	openai_stream_cleanup(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *bytes = NULL;
	size_t len = 0;
	if (openai_base64_decode((const char *)data, size, &bytes, &len) == 0) {
		char *again = openai_base64_encode(bytes, len);
		free(again);
		free(bytes);
	}

	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (v == NULL)
		return 0;

	static const fuzz_translate_fn translators[] = {
	    openai_chat_to_ollama, openai_completion_to_ollama, openai_embeddings_to_ollama};
	for (size_t i = 0; i < sizeof(translators) / sizeof(translators[0]); i++) {
		json_t *native = NULL;
		struct openai_req_info info;
		char *error = NULL;
		int status = 0;
		if (translators[i](v, &native, &info, &error, &status) == 0) {
			assert(native != NULL && error == NULL && status == 200);
			assert(json_is_string(json_object_get(native, "model")));
		} else {
			assert(native == NULL && error != NULL && status == 400);
			json_decref(openai_error_json(status, error, NULL, info.param, info.code));
		}
		json_decref(native);
		free(error);
	}

	struct openai_reply_meta meta = {.id = "chatcmpl-1", .created = 1, .model = "m"};
	static const fuzz_reply_fn replies[] = {openai_chat_reply, openai_completion_reply};
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		char *out = NULL, *cause = NULL;
		if (replies[i](v, &meta, &out, &cause) == 0)
			fuzz_assert_json(out);
		else
			assert(out == NULL && cause != NULL);
		free(out);
		free(cause);
	}
	for (int enc = OPENAI_ENCODING_FLOAT; enc <= OPENAI_ENCODING_BASE64; enc++) {
		char *out = NULL, *cause = NULL;
		if (openai_embeddings_reply(v, &meta, (enum openai_encoding)enc, &out, &cause) == 0)
			fuzz_assert_json(out);
		else
			assert(out == NULL && cause != NULL);
		free(out);
		free(cause);
	}

	fuzz_stream(OPENAI_CHAT, v);
	fuzz_stream(OPENAI_COMPLETIONS, v);

	json_t *models = openai_models_json(v, 0);
	assert(json_is_array(json_object_get(models, "data")));
	json_decref(models);
	json_decref(openai_error_from_ollama(400, (const char *)data, size));
	json_decref(v);
	return 0;
}
