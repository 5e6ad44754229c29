/*
 * test-util.c: unit tests for src/common/util.c (size and Go-duration parsing, formatting)
 * and src/common/buf.c (the capped buffer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "http-util.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void
test_parse_size_units(void **state)
{
	(void)state;
	uint64_t b;
	assert_int_equal(vd_parse_size("24GiB", &b, NULL), 0);
	assert_true(b == 24 * VD_GIB);
	assert_int_equal(vd_parse_size("1.5gib", &b, NULL), 0);
	assert_true(b == 3 * VD_GIB / 2);
	assert_int_equal(vd_parse_size("512MB", &b, NULL), 0);
	assert_true(b == 512000000);
	assert_int_equal(vd_parse_size("4096", &b, NULL), 0);
	assert_true(b == 4096);
}

static void
test_parse_size_errors(void **state)
{
	(void)state;
	uint64_t b;
	char *cause = NULL;
	assert_int_equal(vd_parse_size("12 parsecs", &b, &cause), -EINVAL);
	assert_non_null(strstr(cause, "12 parsecs"));
	free(cause);
	assert_int_equal(vd_parse_size("-3GiB", &b, NULL), -EINVAL);
	assert_int_equal(vd_parse_size("", &b, NULL), -EINVAL);
}

static void
test_go_duration(void **state)
{
	(void)state;
	int64_t ns;
	assert_int_equal(vd_parse_go_duration("5m", &ns, NULL), 0);
	assert_true(ns == 300 * VD_NS_PER_S);
	assert_int_equal(vd_parse_go_duration("1h30m", &ns, NULL), 0);
	assert_true(ns == 5400 * VD_NS_PER_S);
	assert_int_equal(vd_parse_go_duration("300ms", &ns, NULL), 0);
	assert_true(ns == 300 * VD_NS_PER_MS);
	assert_int_equal(vd_parse_go_duration("-1m", &ns, NULL), 0);
	assert_true(ns == -60 * VD_NS_PER_S);
	assert_int_equal(vd_parse_go_duration("0", &ns, NULL), 0);
	assert_true(ns == 0);
	assert_int_equal(vd_parse_go_duration("1.5s", &ns, NULL), 0);
	assert_true(ns == 1500 * VD_NS_PER_MS);
}

static void
test_go_duration_errors_match_go(void **state)
{
	(void)state;
	int64_t ns;
	char *cause = NULL;
	assert_int_equal(vd_parse_go_duration("300", &ns, &cause), -EINVAL);
	assert_string_equal(cause, "time: missing unit in duration \"300\"");
	vd_free(cause);
	assert_int_equal(vd_parse_go_duration("-1", &ns, &cause), -EINVAL);
	assert_string_equal(cause, "time: missing unit in duration \"-1\"");
	vd_free(cause);
	assert_int_equal(vd_parse_go_duration("5x", &ns, &cause), -EINVAL);
	assert_string_equal(cause, "time: unknown unit \"x\" in duration \"5x\"");
	vd_free(cause);
	assert_int_equal(vd_parse_go_duration("abc", &ns, &cause), -EINVAL);
	assert_string_equal(cause, "time: invalid duration \"abc\"");
	vd_free(cause);
}

static void
test_rfc3339_trims_zeros(void **state)
{
	(void)state;
	char buf[48];
	vd_format_rfc3339_utc(INT64_C(1726175849110811000), buf, sizeof(buf));
	assert_string_equal(buf, "2024-09-12T21:17:29.110811Z");
	vd_format_rfc3339_utc(INT64_C(1726175849000000000), buf, sizeof(buf));
	assert_string_equal(buf, "2024-09-12T21:17:29Z");
}

/* vramd's own timestamps always carry exactly three fraction digits. */
static void
test_rfc3339_ms(void **state)
{
	(void)state;
	char buf[48];
	vd_format_rfc3339_ms(INT64_C(1736847014433), buf, sizeof(buf));
	assert_string_equal(buf, "2025-01-14T09:30:14.433Z");
	vd_format_rfc3339_ms(INT64_C(1736847014000), buf, sizeof(buf));
	assert_string_equal(buf, "2025-01-14T09:30:14.000Z");
	vd_format_rfc3339_ms(INT64_C(1736847014040), buf, sizeof(buf));
	assert_string_equal(buf, "2025-01-14T09:30:14.040Z");
}

/* The API's JSON writes reals in their short form. */
static void
test_json_reals_short(void **state)
{
	(void)state;
	json_t *o = json_pack("{s:f,s:f,s:f}", "speed_normal", 0.8, "third", 1.0 / 3.0, "one", 1.0);
	char *text = vd_json_dumps_go(o);
	assert_string_equal(text, "{\"speed_normal\":0.8,\"third\":0.333333333333333,\"one\":1.0}");
	free(text);
	json_decref(o);
}

static void
test_buf_cap(void **state)
{
	(void)state;
	struct vd_buf b;
	vd_buf_init(&b, 8);
	assert_int_equal(vd_buf_append_str(&b, "12345"), 0);
	assert_int_equal(vd_buf_append_str(&b, "6789"), -E2BIG);
	assert_string_equal(vd_buf_str(&b), "12345");
	assert_int_equal(vd_buf_printf(&b, "%d", 678), 0);
	assert_string_equal(vd_buf_str(&b), "12345678");
	char *s = vd_buf_take(&b);
	assert_string_equal(s, "12345678");
	free(s);
	assert_int_equal((int)b.len, 0);
	vd_buf_cleanup(&b);
}

/* Credentials and query tokens never survive; host, port and path do. */
static void
test_url_redact(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"http://user:pw@host:8080/p/q?k=1#frag", "http://***@host:8080/p/q?***"},
	    {"https://token@hooks.example.com", "https://***@hooks.example.com"},
	    {"http://host/path", "http://host/path"},
	    {"http://host/a@b", "http://host/a@b"},
	    {"http://u:p@h/x@y", "http://***@h/x@y"},
	    {"http://u@v:p@h?x", "http://***@h?***"},
	    {"http://h#frag?not-a-query", "http://h"},
	    {"http://@h/", "http://***@h/"},
	    {"no scheme here", "no scheme here"},
	    {"", ""},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		char *got = vd_url_redact(cases[i][0]);
		if (strcmp(got, cases[i][1]) != 0)
			fail_msg("vd_url_redact(\"%s\") = \"%s\", want \"%s\"", cases[i][0], got,
				 cases[i][1]);
		free(got);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size_units),
	    cmocka_unit_test(test_parse_size_errors),
	    cmocka_unit_test(test_go_duration),
	    cmocka_unit_test(test_go_duration_errors_match_go),
	    cmocka_unit_test(test_rfc3339_trims_zeros),
	    cmocka_unit_test(test_rfc3339_ms),
	    cmocka_unit_test(test_json_reals_short),
	    cmocka_unit_test(test_buf_cap),
	    cmocka_unit_test(test_url_redact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
