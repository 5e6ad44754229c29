/*
 * test-log.c: the log line formats (text and LOG_FORMAT=json): one event is one line
 * whatever the message holds, and a JSON line parses back to the same message.
 */
#include "log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* 2026-12-03T09:30:14.400Z */
static const int64_t now_ns = 1796290214400LL * 1000000LL;

static void
test_json_line(void **state)
{
	(void)state;
	char line[1024];
	const char *msg = "job \"j-1\" said \\ hi\nand\tmore \x01 caf\xc3\xa9";
	size_t n = vd_log_format_line(line, sizeof(line), VD_LOG_JSON, now_ns, VD_LOG_WARN,
				      VD_LOG_SCHEDULER, msg);
	assert_true(n > 0 && line[n - 1] == '\n');
	assert_null(memchr(line, '\n', n - 1)); /* one line */
	line[n] = '\0';
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "time")),
			    "2026-12-03T09:30:14.400Z");
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(o, "component")), "SCHEDULER");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), msg);
	json_decref(o);
}

static void
test_text_line(void **state)
{
	(void)state;
	char line[1024];
	size_t n = vd_log_format_line(line, sizeof(line), VD_LOG_TEXT, now_ns, VD_LOG_ERROR,
				      VD_LOG_STORE, "disk full\nreally");
	line[n] = '\0';
	/* local time, so only the shape: "[HH:MM:SS.400] [STORE] ERROR: disk full\x0areally" */
	assert_int_equal(line[0], '[');
	assert_memory_equal(line + 9, ".400] [STORE] ERROR: disk full\\x0areally\n", 41);
}

/* A message longer than the line: cut, still one line, still valid JSON. */
static void
test_json_long_message_is_cut_whole(void **state)
{
	(void)state;
	char msg[3000], line[512];
	memset(msg, '"', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	size_t n = vd_log_format_line(line, sizeof(line), VD_LOG_JSON, now_ns, VD_LOG_INFO,
				      VD_LOG_API, msg);
	assert_true(n < sizeof(line));
	line[n] = '\0';
	json_t *o = json_loads(line, 0, NULL);
	assert_non_null(o);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_line),
	    cmocka_unit_test(test_text_line),
	    cmocka_unit_test(test_json_long_message_is_cut_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
