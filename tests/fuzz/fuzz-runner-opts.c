/*
 * fuzz-runner-opts.c: src/core/runner-opts.c on arbitrary bytes. Up to four lines: a
 * request's options (JSON), the runner's load options (JSON; "null" or a line that does
 * not parse: unknown), "CTX CTX_MAX" (decimal), and a keep_alive value (JSON). It must
 * never crash; fitted options give every reload option the runner's value or drop it,
 * and keep_alive is never negative. The corpus is tests/fuzz/corpus/runner-opts/.
 */
#include "runner-opts.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *
fuzz_json(const char *line)
{
	return line != NULL ? json_loads(line, JSON_DECODE_ANY, NULL) : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	char *lines[4] = {NULL, NULL, NULL, NULL};
	char *p = text;
	for (int i = 0; i < 4 && p != NULL; i++) {
		lines[i] = p;
		p = strchr(p, '\n');
		if (p != NULL)
			*p++ = '\0';
	}
	json_t *options = fuzz_json(lines[0]);
	json_t *loaded = fuzz_json(lines[1]);
	long long ctx = 0, ctx_max = 0;
	if (lines[2] != NULL && sscanf(lines[2], "%lld %lld", &ctx, &ctx_max) < 1)
		ctx = 0;
	struct runner_opts runner = {
	    .options = json_is_object(loaded) ? loaded : NULL, .ctx = ctx, .ctx_max = ctx_max};
	json_t *out = NULL;
	enum runner_opts_fit fit = runner_opts_normalize(options, &runner, &out);
	if (fit == RUNNER_OPTS_NEEDS_MORE) {
		assert(out == NULL && runner_opts_num_ctx(options) > 0);
	} else if (out != NULL) {
		assert(json_is_object(out));
		const char *key;
		json_t *v;
		json_object_foreach(out, key, v)
		{
			json_t *theirs = json_object_get(runner.options, key);
			if (!runner_opts_is_reload_key(key))
				continue;
			/* A known runner: its value, or none (automatic). */
			assert(runner.options == NULL || theirs != NULL);
			assert(theirs == NULL || json_equal(v, theirs));
		}
	}
	json_decref(out);
	json_t *sub = runner_opts_reload_subset(options);
	assert(json_is_object(sub));
	json_decref(sub);
	json_t *keep = fuzz_json(lines[3]);
	if (keep != NULL) {
		int64_t ms = -1;
		char *cause = NULL;
		if (runner_opts_keep_alive(keep, &ms, &cause) == 0)
			assert(ms >= 0 && cause == NULL);
		else
			assert(cause != NULL);
		free(cause);
	}
	json_decref(keep);
	json_decref(options);
	json_decref(loaded);
	free(text);
	return 0;
}
