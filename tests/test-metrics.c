/*
 * test-metrics.c: unit tests for src/common/metrics.c: histogram buckets, counters by
 * label values, number formatting, escaping, the series bound, and a parser check of the
 * whole exposition (every sample's family has HELP and TYPE before it, histogram buckets
 * are cumulative, and the +Inf bucket equals _count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double test_bounds[] = {0.1, 1, 10};

static const struct metrics_def test_defs[] = {
    {"t_jobs_total", METRICS_COUNTER, "Jobs.", {"priority"}, NULL, 0},
    {"t_requests_total",
     METRICS_COUNTER,
     "Requests\\by \"route\"\nand status.",
     {"route", "status"},
     NULL,
     0},
    {"t_wait_seconds", METRICS_HISTOGRAM, "Wait.", {"priority"}, test_bounds, 3},
    {"t_plain_seconds", METRICS_HISTOGRAM, "No labels.", {NULL}, test_bounds, 3},
    {"t_unused_total", METRICS_COUNTER, "Never updated.", {NULL}, NULL, 0},
};

static void
test_histogram_buckets(void **state)
{
	(void)state;
	struct metrics_histogram h;
	metrics_histogram_init(&h, test_bounds, 3);
	double values[] = {0.05, 0.1, 0.5, 1, 5, 100, NAN};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		metrics_histogram_observe(&h, values[i]);
	/* le is inclusive: 0.1 goes to the 0.1 bucket, 1 to the 1 bucket; NaN is dropped. */
	assert_int_equal(h.count, 6);
	assert_int_equal(metrics_histogram_cumulative(&h, 0), 2);
	assert_int_equal(metrics_histogram_cumulative(&h, 1), 4);
	assert_int_equal(metrics_histogram_cumulative(&h, 2), 5);
	assert_int_equal(metrics_histogram_cumulative(&h, 3), 6);
	assert_true(fabs(h.sum - 106.65) < 1e-9);
}

static void
test_format_value(void **state)
{
	(void)state;
	char text[40];
	assert_string_equal(metrics_format_value(0, text, sizeof(text)), "0");
	assert_string_equal(metrics_format_value(8589934592.0, text, sizeof(text)), "8589934592");
	assert_string_equal(metrics_format_value(0.1, text, sizeof(text)), "0.1");
	assert_string_equal(metrics_format_value(0.35, text, sizeof(text)), "0.35");
	assert_string_equal(metrics_format_value(-2.5, text, sizeof(text)), "-2.5");
	assert_string_equal(metrics_format_value(INFINITY, text, sizeof(text)), "+Inf");
	assert_string_equal(metrics_format_value(-INFINITY, text, sizeof(text)), "-Inf");
	assert_string_equal(metrics_format_value(NAN, text, sizeof(text)), "NaN");
	/* A value %.15g cannot round-trip takes 17 digits. */
	double third = 1.0 / 3.0;
	assert_true(strtod(metrics_format_value(third, text, sizeof(text)), NULL) == third);
	assert_true(strtod(metrics_format_value(1e300, text, sizeof(text)), NULL) == 1e300);
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(metrics_name_is_valid("vramd_gpu_memory_used_bytes", false));
	assert_true(metrics_name_is_valid("job:rate5m", false));
	assert_false(metrics_name_is_valid("job:rate5m", true));
	assert_false(metrics_name_is_valid("9lives", false));
	assert_false(metrics_name_is_valid("has-dash", false));
	assert_false(metrics_name_is_valid("__name__", true));
	assert_false(metrics_name_is_valid("", false));
}

static char *
test_write(const struct metrics *m)
{
	struct metrics_out out = {.err = 0};
	vd_buf_init(&out.buf, 1 << 20);
	metrics_write(m, &out);
	assert_int_equal(out.err, 0);
	return vd_buf_take(&out.buf);
}

static void
test_counters_and_escaping(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(test_defs, sizeof(test_defs) / sizeof(test_defs[0]));
	metrics_add(m, "t_jobs_total", 1, "high");
	metrics_add(m, "t_jobs_total", 2, "high");
	metrics_add(m, "t_jobs_total", 0, "low");  /* a series at zero, written */
	metrics_add(m, "t_jobs_total", -5, "low"); /* a counter never goes down */
	metrics_add(m, "t_requests_total", 1, "/api/job/", "200");
	metrics_add(m, "t_requests_total", 1, "a\"b\\c\nd", NULL);
	char *text = test_write(m);
	assert_non_null(strstr(text, "# HELP t_jobs_total Jobs.\n# TYPE t_jobs_total counter\n"
				     "t_jobs_total{priority=\"high\"} 3\n"
				     "t_jobs_total{priority=\"low\"} 0\n"));
	/* HELP escapes backslash and newline but not the quote; label values all three. */
	assert_non_null(strstr(text, "# HELP t_requests_total Requests\\\\by \"route\"\\nand "
				     "status.\n"));
	assert_non_null(strstr(text, "t_requests_total{route=\"/api/job/\",status=\"200\"} 1\n"));
	assert_non_null(
	    strstr(text, "t_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE t_unused_total counter\n"));
	free(text);
	metrics_free(m);
}

/* The checks Prometheus's parser and promtool make that matter here, on the text. */
struct parsed_family {
	char name[96];
	char type[96];
	bool help;
};

static struct parsed_family *
parsed_find(struct parsed_family *fams, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fams[i].name, name) == 0)
			return &fams[i];
	return NULL;
}

/* Returns NULL when text passes, else what is wrong. */
#define CHECK(cond, why)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return why;                                                                \
	} while (0)

static const char *
check_exposition(const char *text)
{
	struct parsed_family fams[64];
	size_t nfams = 0;
	char series_key[1024] = "";
	double last_bucket = -1, inf_bucket = -1;
	const char *line = text;
	CHECK(*text == '\0' || text[strlen(text) - 1] == '\n', "no final newline");
	while (*line) {
		const char *end = strchr(line, '\n');
		char buf[1024];
		size_t len = (size_t)(end - line);
		CHECK(len < sizeof(buf), "line too long");
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = end + 1;
		char name[96], rest[96];
		if (sscanf(buf, "# HELP %95s", name) == 1) {
			CHECK(parsed_find(fams, nfams, name) == NULL, "HELP twice");
			CHECK(nfams < 64, "too many families");
			snprintf(fams[nfams].name, sizeof(fams[nfams].name), "%s", name);
			fams[nfams].help = true;
			fams[nfams].type[0] = '\0';
			nfams++;
			continue;
		}
		if (sscanf(buf, "# TYPE %95s %95s", name, rest) == 2) {
			struct parsed_family *f = parsed_find(fams, nfams, name);
			CHECK(f != NULL, "TYPE without HELP");
			CHECK(f->type[0] == '\0', "TYPE twice");
			snprintf(f->type, sizeof(f->type), "%s", rest);
			continue;
		}
		/* A sample: name, optional {labels}, a space, a value. */
		size_t n = strcspn(buf, "{ ");
		CHECK(n > 0 && n < sizeof(name), "no metric name");
		memcpy(name, buf, n);
		name[n] = '\0';
		CHECK(metrics_name_is_valid(name, false), "invalid metric name");
		const char *value = strrchr(buf, ' ');
		CHECK(value != NULL, "no value");
		char *vend;
		double v = strtod(value + 1, &vend);
		CHECK(*vend == '\0' && vend != value + 1, "value is not a number");
		struct parsed_family *f = parsed_find(fams, nfams, name);
		const char *suffixes[] = {"_bucket", "_sum", "_count"};
		const char *suffix = NULL;
		for (size_t i = 0; f == NULL && i < 3; i++) {
			size_t sl = strlen(suffixes[i]);
			if (n > sl && strcmp(name + n - sl, suffixes[i]) == 0) {
				char base[96];
				memcpy(base, name, n - sl);
				base[n - sl] = '\0';
				f = parsed_find(fams, nfams, base);
				suffix = suffixes[i];
			}
		}
		CHECK(f != NULL, "sample without HELP before it");
		CHECK(f->type[0] != '\0', "sample without TYPE before it");
		if (strcmp(f->type, "counter") == 0)
			CHECK(v >= 0, "negative counter");
		if (strcmp(f->type, "histogram") != 0)
			continue;
		CHECK(suffix != NULL, "histogram sample without _bucket/_sum/_count");
		if (strcmp(suffix, "_bucket") == 0) {
			/* The series without its le label: buckets of one series are adjacent. */
			const char *le = strstr(buf, "le=\"");
			CHECK(le != NULL, "bucket without le");
			char key[1024];
			snprintf(key, sizeof(key), "%.*s", (int)(le - buf), buf);
			if (strcmp(key, series_key) != 0) {
				snprintf(series_key, sizeof(series_key), "%s", key);
				last_bucket = -1;
			}
			CHECK(v >= last_bucket, "buckets not cumulative");
			last_bucket = v;
			if (strncmp(le, "le=\"+Inf\"", 9) == 0)
				inf_bucket = v;
		} else if (strcmp(suffix, "_count") == 0) {
			CHECK(inf_bucket == v, "+Inf bucket differs from _count");
			inf_bucket = -1;
		}
	}
	return NULL;
}

static void
test_histograms_exposition(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(test_defs, sizeof(test_defs) / sizeof(test_defs[0]));
	metrics_observe(m, "t_wait_seconds", 0.05, "high");
	metrics_observe(m, "t_wait_seconds", 3, "high");
	metrics_observe(m, "t_wait_seconds", 30, "high");
	metrics_observe(m, "t_wait_seconds", 0.5, "low");
	metrics_observe(m, "t_plain_seconds", 0.5);
	metrics_add(m, "t_jobs_total", 1, "normal");
	char *text = test_write(m);
	assert_non_null(strstr(text, "t_wait_seconds_bucket{priority=\"high\",le=\"0.1\"} 1\n"
				     "t_wait_seconds_bucket{priority=\"high\",le=\"1\"} 1\n"
				     "t_wait_seconds_bucket{priority=\"high\",le=\"10\"} 2\n"
				     "t_wait_seconds_bucket{priority=\"high\",le=\"+Inf\"} 3\n"
				     "t_wait_seconds_sum{priority=\"high\"} 33.05\n"
				     "t_wait_seconds_count{priority=\"high\"} 3\n"));
	assert_non_null(strstr(text, "t_plain_seconds_bucket{le=\"+Inf\"} 1\n"
				     "t_plain_seconds_sum 0.5\n"
				     "t_plain_seconds_count 1\n"));
	assert_null(check_exposition(text));
	free(text);
	metrics_free(m);
}

static void
test_series_bound_and_cap(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(test_defs, sizeof(test_defs) / sizeof(test_defs[0]));
	char label[32];
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(label, sizeof(label), "p%d", i);
		metrics_add(m, "t_jobs_total", 1, label);
	}
	assert_int_equal(metrics_dropped(m), 10);
	/* An existing series still counts past the bound. */
	metrics_add(m, "t_jobs_total", 1, "p0");
	assert_int_equal(metrics_dropped(m), 10);

	/* A full buffer: the error sticks, nothing half-written follows. */
	struct metrics_out out = {.err = 0};
	vd_buf_init(&out.buf, 4096);
	metrics_write(m, &out);
	assert_int_equal(out.err, -E2BIG);
	size_t len = out.buf.len;
	metrics_write_sample(&out, "x", NULL, 0, 1);
	assert_int_equal(out.buf.len, len);
	vd_buf_cleanup(&out.buf);
	metrics_free(m);

	/* NULL registries are a no-op everywhere (components built without metrics). */
	metrics_add(NULL, "t_jobs_total", 1, "x");
	metrics_observe(NULL, "t_wait_seconds", 1, "x");
	metrics_free(NULL);
}

/* The parser check catches what it is there for, so passing it means something. */
static void
test_checker_rejects(void **state)
{
	(void)state;
	static const struct {
		const char *text, *why;
	} cases[] = {
	    {"# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", NULL},
	    {"a_total 1\n", "sample without HELP before it"},
	    {"# HELP a_total A.\na_total 1\n", "sample without TYPE before it"},
	    {"# HELP a_total A.\n# TYPE a_total counter\na_total -1\n", "negative counter"},
	    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
	     "buckets not cumulative"},
	    {"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
	     "+Inf bucket differs from _count"},
	    {"# HELP a A.\n# TYPE a gauge\na x\n", "value is not a number"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = check_exposition(cases[i].text);
		if (cases[i].why == NULL)
			assert_null(why);
		else
			assert_string_equal(why, cases[i].why);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_histogram_buckets),
	    cmocka_unit_test(test_format_value),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_counters_and_escaping),
	    cmocka_unit_test(test_histograms_exposition),
	    cmocka_unit_test(test_series_bound_and_cap),
	    cmocka_unit_test(test_checker_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
