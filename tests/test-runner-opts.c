/*
 * test-runner-opts.c: unit tests for src/core/runner-opts.c: a job's reload options fitted
 * to its model's runner (NORMALIZE_OPTIONS), and Ollama's keep_alive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner-opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_t *
parse(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	return v;
}

/* Fits options (JSON text, or NULL) to a runner started with runner_options (JSON text,
 * or NULL: unknown) and context ctx; returns the verdict and the options sent as text
 * ("same" when unchanged). */
static enum runner_opts_fit
fit(const char *options, const char *runner_options, int64_t ctx, int64_t ctx_max, char **sent)
{
	json_t *o = options != NULL ? parse(options) : NULL;
	json_t *r = runner_options != NULL ? parse(runner_options) : NULL;
	struct runner_opts runner = {.options = r, .ctx = ctx, .ctx_max = ctx_max};
	json_t *out = (json_t *)0x1;
	enum runner_opts_fit verdict = runner_opts_normalize(o, &runner, &out);
	*sent = out != NULL ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : strdup("same");
	json_decref(out);
	json_decref(o);
	json_decref(r);
	return verdict;
}

static void
expect_fit(const char *options, const char *runner_options, int64_t ctx, const char *want)
{
	char *sent = NULL;
	assert_int_equal(fit(options, runner_options, ctx, 0, &sent), RUNNER_OPTS_FITS);
	assert_string_equal(sent, want);
	free(sent);
}

/* An automatic runner (vramd's own load, no options) of context 4096: smaller or equal
 * contexts drop num_ctx, so the request matches it; other options pass. */
static void
test_automatic_runner_takes_smaller_contexts(void **state)
{
	(void)state;
	expect_fit("{\"num_ctx\":2048,\"temperature\":0.5}", "{}", 4096, "{\"temperature\":0.5}");
	expect_fit("{\"num_ctx\":4096}", "{}", 4096, "{}");
	expect_fit("{\"temperature\":0.5}", "{}", 4096, "same");
	expect_fit(NULL, "{}", 4096, "same");
}

/* Every reload option takes the runner's value or goes (automatic), never staying as the
 * client gave it. */
static void
test_reload_options_follow_the_runner(void **state)
{
	(void)state;
	expect_fit("{\"num_batch\":256,\"num_gpu\":10,\"main_gpu\":1,\"use_mmap\":false,"
		   "\"num_thread\":3,\"seed\":7}",
		   "{}", 4096, "{\"seed\":7}");
	expect_fit("{\"num_batch\":256,\"num_thread\":3}", "{\"num_batch\":512,\"num_ctx\":8192}",
		   8192, "{\"num_batch\":512,\"num_ctx\":8192}");
	/* A runner started with an explicit context keeps getting it, also from requests
	 * that give none (automatic would be another context: a reload). */
	expect_fit("{\"top_k\":5}", "{\"num_ctx\":8192}", 8192, "{\"num_ctx\":8192,\"top_k\":5}");
	expect_fit("{\"num_ctx\":2048}", "{\"num_ctx\":8192}", 8192, "{\"num_ctx\":8192}");
}

/* A larger context than the runner has needs a reload; the trained context caps what a
 * request can ask, and the context vramd loaded with counts even when /api/ps lists less,
 * so asking again never reloads it forever. */
static void
test_larger_context_needs_more(void **state)
{
	(void)state;
	char *sent = NULL;
	assert_int_equal(fit("{\"num_ctx\":8192}", "{}", 4096, 0, &sent), RUNNER_OPTS_NEEDS_MORE);
	assert_string_equal(sent, "same");
	free(sent);
	/* Trained on 4096: 8192 is 4096 for Ollama, which the runner has. */
	assert_int_equal(fit("{\"num_ctx\":8192}", "{}", 4096, 4096, &sent), RUNNER_OPTS_FITS);
	assert_string_equal(sent, "{}");
	free(sent);
	/* Loaded with 8192, listed with 2048 (its trained context). */
	assert_int_equal(fit("{\"num_ctx\":8192}", "{\"num_ctx\":8192}", 2048, 0, &sent),
			 RUNNER_OPTS_FITS);
	assert_string_equal(sent, "same");
	free(sent);
}

/* An adopted runner: its options are unknown, its listed context is what it has. */
static void
test_adopted_runner(void **state)
{
	(void)state;
	expect_fit("{\"num_ctx\":2048,\"num_gpu\":3}", NULL, 4096, "{\"num_ctx\":4096}");
	expect_fit("{\"temperature\":1}", NULL, 4096, "{\"num_ctx\":4096,\"temperature\":1}");
	/* Context unknown too: num_ctx is left as given. */
	expect_fit("{\"num_ctx\":2048}", NULL, 0, "same");
	char *sent = NULL;
	assert_int_equal(fit("{\"num_ctx\":8192}", NULL, 4096, 0, &sent), RUNNER_OPTS_NEEDS_MORE);
	free(sent);
}

/* Two clients alternating num_ctx 2048 and 4096 send the runner the same options. */
static void
test_alternating_clients_send_the_same(void **state)
{
	(void)state;
	char *a = NULL, *b = NULL;
	assert_int_equal(fit("{\"num_ctx\":2048}", "{}", 4096, 0, &a), RUNNER_OPTS_FITS);
	assert_int_equal(fit("{\"num_ctx\":4096}", "{}", 4096, 0, &b), RUNNER_OPTS_FITS);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void
test_reload_keys_and_subset(void **state)
{
	(void)state;
	assert_true(runner_opts_is_reload_key("num_ctx"));
	assert_true(runner_opts_is_reload_key("use_mmap"));
	assert_false(runner_opts_is_reload_key("temperature"));
	json_t *o = parse("{\"num_ctx\":2048,\"seed\":1,\"main_gpu\":0}");
	json_t *sub = runner_opts_reload_subset(o);
	char *text = json_dumps(sub, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"main_gpu\":0,\"num_ctx\":2048}");
	free(text);
	json_decref(sub);
	assert_int_equal(runner_opts_num_ctx(o), 2048);
	json_decref(o);
	sub = runner_opts_reload_subset(NULL);
	assert_int_equal(json_object_size(sub), 0);
	json_decref(sub);
	o = parse("{\"num_ctx\":\"big\"}");
	assert_int_equal(runner_opts_num_ctx(o), 0);
	json_decref(o);
}

static int64_t
keep_alive(const char *text, int expect_rc, const char *cause_part)
{
	json_t *v = parse(text);
	int64_t ms = -7;
	char *cause = NULL;
	assert_int_equal(runner_opts_keep_alive(v, &ms, &cause), expect_rc);
	if (expect_rc < 0) {
		assert_non_null(cause);
		assert_non_null(strstr(cause, cause_part));
	}
	free(cause);
	json_decref(v);
	return ms;
}

static void
test_keep_alive(void **state)
{
	(void)state;
	assert_int_equal(keep_alive("300", 0, NULL), 300000);
	assert_int_equal(keep_alive("1.5", 0, NULL), 1500);
	assert_int_equal(keep_alive("0", 0, NULL), 0);
	assert_int_equal(keep_alive("-1", 0, NULL), INT64_MAX);
	assert_int_equal(keep_alive("\"5m\"", 0, NULL), 300000);
	assert_int_equal(keep_alive("\"1h30m\"", 0, NULL), 5400000);
	assert_int_equal(keep_alive("\"0\"", 0, NULL), 0);
	assert_int_equal(keep_alive("\"-1m\"", 0, NULL), INT64_MAX);
	assert_int_equal(keep_alive("1e300", 0, NULL), INT64_MAX);
	keep_alive("\"300\"", -EINVAL, "missing unit");
	keep_alive("\"soon\"", -EINVAL, "invalid duration");
	keep_alive("true", -EINVAL, "Unsupported type: 'bool'");
	keep_alive("[1]", -EINVAL, "Unsupported type");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_automatic_runner_takes_smaller_contexts),
	    cmocka_unit_test(test_reload_options_follow_the_runner),
	    cmocka_unit_test(test_larger_context_needs_more),
	    cmocka_unit_test(test_adopted_runner),
	    cmocka_unit_test(test_alternating_clients_send_the_same),
	    cmocka_unit_test(test_reload_keys_and_subset),
	    cmocka_unit_test(test_keep_alive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
