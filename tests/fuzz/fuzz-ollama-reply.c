/*
 * fuzz-ollama-reply.c: feeds arbitrary bytes to every Ollama reply parser of
 * ollama-parse.h (version, tags, show, ps, load, run replies of each job kind, error
 * bodies, RFC 3339 times). They must never crash, leak or read out of bounds, and must
 * leave their outputs empty on failure. The corpus holds replies shaped like the
 * reference's (tests/fuzz/corpus/ollama-reply/).
 */
#include "ollama-parse.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char *cause = NULL;
	char *version = NULL;

	if (ollama_parse_version(body, size, &version, &cause) == 0)
		assert(version != NULL);
	free(version);
	free(cause);
	cause = NULL;

	struct backend_model_list tags;
	if (ollama_parse_tags(body, size, &tags, &cause) == 0) {
		for (size_t i = 0; i < tags.n; i++)
			assert(tags.models[i].name && tags.models[i].digest &&
			       tags.models[i].family);
	} else {
		assert(tags.n == 0 && cause);
	}
	backend_model_list_cleanup(&tags);
	free(cause);
	cause = NULL;

	unsigned caps = 0;
	(void)ollama_parse_show_capabilities(body, size, &caps, &cause);
	free(cause);
	cause = NULL;

	struct backend_running_list ps;
	if (ollama_parse_ps(body, size, &ps, &cause) == 0) {
		for (size_t i = 0; i < ps.n; i++)
			assert(ps.models[i].name && ps.models[i].model && ps.models[i].digest);
	} else {
		assert(ps.n == 0 && cause);
	}
	backend_running_list_cleanup(&ps);
	free(cause);
	cause = NULL;

	(void)ollama_parse_load_reply(body, size, &cause);
	free(cause);
	cause = NULL;

	for (int kind = 0; kind < JOB_NKINDS; kind++) {
		struct ollama_run_reply reply;
		if (ollama_parse_run_reply((enum job_kind)kind, body, size, &reply, &cause) == 0)
			assert(reply.result != NULL);
		else
			assert(reply.result == NULL && cause);
		ollama_run_reply_cleanup(&reply);
		free(cause);
		cause = NULL;
	}

	free(ollama_parse_error(body, size));

	/* The time parser takes a C string. */
	char *text = malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
		int64_t ms;
		(void)ollama_parse_time(text, &ms);
		free(text);
	}
	return 0;
}
