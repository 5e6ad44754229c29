/*
 * test-supervisor.c: src/fleet/supervisor.c with small shell children: output reaches the
 * log under [NODE] with the child's name, the child gets its extra environment, a child
 * that exits is started again (after the 1 s backoff), and freeing the supervisor stops a
 * child that runs forever, with SIGKILL for one that ignores SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char log_path[] = "/tmp/vramd-test-supervisor-XXXXXX";

static char *
read_log(void)
{
	FILE *f = fopen(log_path, "r");
	assert_non_null(f);
	char *buf = xcalloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Runs the loop until pred(s) holds or ms pass; returns whether it held. */
static bool
run_until(struct event_base *base, struct supervisor *s, bool (*pred)(struct supervisor *),
	  int64_t ms)
{
	int64_t deadline = vd_now_mono_ms() + ms;
	while (!pred(s) && vd_now_mono_ms() < deadline) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return pred(s);
}

static bool
restarted_once(struct supervisor *s)
{
	struct supervisor_child_info info;
	supervisor_child(s, 0, &info);
	return info.starts >= 2;
}

static void
test_output_env_and_restart(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	const char *argv[] = {"sh", "-c", "echo hello $VRAMD_TEST_NAME; echo oops >&2; exit 3",
			      NULL};
	struct supervisor *s = supervisor_new(base, argv);
	const char *env[] = {"VRAMD_TEST_NAME=gpu0", NULL};
	assert_int_equal(supervisor_add(s, "ollama-gpu0", env), 0);
	assert_true(run_until(base, s, restarted_once, 5000));
	struct supervisor_child_info info;
	supervisor_child(s, 0, &info);
	assert_string_equal(info.name, "ollama-gpu0");
	assert_true(WIFEXITED(info.last_status) && WEXITSTATUS(info.last_status) == 3);
	supervisor_free(s);
	event_base_free(base);
	char *log = read_log();
	assert_non_null(strstr(log, "[NODE] ollama-gpu0: hello gpu0"));
	assert_non_null(strstr(log, "[NODE] ollama-gpu0: oops"));
	assert_non_null(strstr(log, "exited with status 3"));
	assert_non_null(strstr(log, "restarting ollama-gpu0 in 1000 ms"));
	free(log);
}

/* Both children have set up their signal handling (they say "ready" after it). */
static bool
both_ready(struct supervisor *s)
{
	(void)s;
	char *log = read_log();
	bool ready = strstr(log, "plain: ready") != NULL && strstr(log, "stubborn: ready") != NULL;
	free(log);
	return ready;
}

static void
test_free_stops_children(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	const char *argv[] = {"sh", "-c",
			      "if [ -n \"$STUBBORN\" ]; then trap '' TERM; echo ready; "
			      "while :; do sleep 1; done; else echo ready; exec sleep 60; fi",
			      NULL};
	struct supervisor *s = supervisor_new(base, argv);
	const char *plain[] = {NULL};
	const char *stubborn[] = {"STUBBORN=1", NULL};
	supervisor_add(s, "plain", plain);
	supervisor_add(s, "stubborn", stubborn);
	assert_true(run_until(base, s, both_ready, 10000));
	struct supervisor_child_info a, b;
	supervisor_child(s, 0, &a);
	supervisor_child(s, 1, &b);
	int64_t t0 = vd_now_mono_ms();
	supervisor_free(s);
	int64_t took = vd_now_mono_ms() - t0;
	assert_true(took < 8000);
	/* Both are gone (reaped: kill reports no such process). */
	assert_int_equal(kill(a.pid, 0), -1);
	assert_int_equal(kill(b.pid, 0), -1);
	event_base_free(base);
	char *log = read_log();
	assert_non_null(strstr(log, "stubborn"));
	assert_non_null(strstr(log, "ignored SIGTERM"));
	free(log);
}

static void
test_missing_binary_is_retried(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	const char *argv[] = {"/nonexistent/ollama", "serve", NULL};
	struct supervisor *s = supervisor_new(base, argv);
	const char *env[] = {NULL};
	supervisor_add(s, "ghost", env);
	struct supervisor_child_info info;
	supervisor_child(s, 0, &info);
	assert_false(info.running);
	assert_int_equal(info.starts, 0);
	supervisor_free(s);
	event_base_free(base);
	char *log = read_log();
	assert_non_null(strstr(log, "cannot start ghost: /nonexistent/ollama"));
	free(log);
}

int
main(void)
{
	int fd = mkstemp(log_path);
	assert_true(fd >= 0);
	close(fd);
	char *cause = NULL;
	if (vd_log_open(log_path, &cause) < 0) {
		fprintf(stderr, "%s\n", cause);
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_output_env_and_restart),
	    cmocka_unit_test(test_free_stops_children),
	    cmocka_unit_test(test_missing_binary_is_retried),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(log_path);
	return rc;
}
