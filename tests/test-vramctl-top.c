/*
 * test-vramctl-top.c: the screen of `vramctl top` built from hand-written vramd replies
 * (cli/top-view.c), and the progress line of long-running commands (cli/progress.c):
 * no terminal, no daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "top-view.h"

#define GIB (1024.0 * 1024 * 1024)
/* 2025-01-14T09:30:20.000Z */
#define NOW_MS 1736847020000LL

static json_t *
load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	if (j == NULL)
		fail_msg("bad test JSON at %d: %s", err.position, err.text);
	return j;
}

/* An 8 GiB GPU: 4 GiB our models, 2 GiB other programs, 1 GiB reserved, 1 GiB free. */
static json_t *
gpus_reply(void)
{
	json_t *g = json_pack(
	    "{s:s,s:[{s:i,s:s,s:s,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:f}]}", "telemetry", "nvml",
	    "gpus", "index", 0, "name", "NVIDIA GeForce RTX 3070", "state", "THROTTLED",
	    "temperature_c", 77, "memory_total_bytes", 8 * GIB, "memory_used_bytes", 6 * GIB,
	    "memory_models_bytes", 4 * GIB, "memory_other_bytes", 2 * GIB, "memory_reserved_bytes",
	    1 * GIB, "memory_free_bytes", 1 * GIB, "gpu_util_percent", 87, "power_w", 182.4);
	assert_non_null(g);
	return g;
}

static json_t *
report_reply(void)
{
	return load("{\"nodes\": ["
		    "{\"node\": \"node0\", \"models\": ["
		    "  {\"model\": \"qwen2.5:0.5b\", \"state\": \"loaded\", \"location\": \"gpu\","
		    "   \"gpu\": 0, \"size_vram_bytes\": 637534208, \"running\": 1},"
		    "  {\"model\": \"gemma:2b\", \"state\": \"loaded\", \"location\": \"gpu\","
		    "   \"gpu\": 0, \"size_vram_bytes\": 2147483648, \"running\": 0}]},"
		    "{\"node\": \"node1\", \"models\": ["
		    "  {\"model\": \"all-minilm:latest\", \"state\": \"loading\","
		    "   \"location\": \"cpu\", \"gpu\": null, \"size_vram_bytes\": 0,"
		    "   \"running\": 3}]}]}");
}

/* Newest first, as GET /api/jobs answers. */
static json_t *
jobs_reply(void)
{
	return load("{\"jobs\": ["
		    "{\"job_id\": \"j-05\", \"status\": \"queued\", \"priority\": \"low\","
		    " \"model\": \"aa\", \"kind\": \"generate\", \"submitted_at\": "
		    "\"2025-01-14T09:30:19.000Z\"},"
		    "{\"job_id\": \"j-04\", \"status\": \"queued\", \"priority\": \"high\","
		    " \"model\": \"zz\", \"kind\": \"generate\", \"submitted_at\": "
		    "\"2025-01-14T09:30:10.000Z\"},"
		    "{\"job_id\": \"j-03\", \"status\": \"pending\", \"priority\": \"normal\","
		    " \"model\": \"mm\", \"kind\": \"chat\", \"submitted_at\": "
		    "\"2025-01-14T09:28:00.000Z\"},"
		    "{\"job_id\": \"j-02\", \"status\": \"running\", \"priority\": \"normal\","
		    " \"model\": \"qwen2.5:0.5b\", \"kind\": \"chat\","
		    " \"submitted_at\": \"2025-01-14T09:29:00.000Z\","
		    " \"started_at\": \"2025-01-14T09:29:15.500Z\"},"
		    "{\"job_id\": \"j-01\", \"status\": \"running\", \"priority\": \"high\","
		    " \"model\": \"tinyllama:1.1b\", \"kind\": \"generate\","
		    " \"submitted_at\": \"2025-01-14T08:00:00.000Z\","
		    " \"started_at\": \"2025-01-14T08:00:00.000Z\"}]}");
}

struct fixture {
	json_t *gpus, *report, *jobs, *events;
	struct top_input in;
	struct top_opts o;
	struct top_screen s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->gpus = gpus_reply();
	f->report = report_reply();
	f->jobs = jobs_reply();
	f->events = load("[{\"type\": \"state_change\", \"time\": \"2025-01-14T09:29:40.000Z\","
			 "  \"message\": \"GPU 0 NORMAL -> THROTTLED\"},"
			 " {\"type\": \"critical\", \"time\": \"2025-01-14T09:30:01.000Z\","
			 "  \"message\": \"GPU 0 CRITICAL\"}]");
	f->in = (struct top_input){
	    .gpus = f->gpus, .report = f->report, .jobs = f->jobs, .events = f->events};
	f->o = (struct top_opts){
	    .width = 120, .now_ms = NOW_MS, .url = "http://h:5001", .max_events = 10};
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	top_screen_cleanup(&f->s);
	json_decref(f->gpus);
	json_decref(f->report);
	json_decref(f->jobs);
	json_decref(f->events);
	free(f);
	return 0;
}

/* The index of the first line containing needle; fails when none does. */
static size_t
find(const struct top_screen *s, const char *needle)
{
	for (size_t i = 0; i < s->nlines; i++) {
		char *t = top_line_text(s, i);
		bool hit = strstr(t, needle) != NULL;
		free(t);
		if (hit)
			return i;
	}
	fail_msg("no line contains \"%s\"", needle);
	return 0;
}

static bool
has(const struct top_screen *s, const char *needle)
{
	for (size_t i = 0; i < s->nlines; i++) {
		char *t = top_line_text(s, i);
		bool hit = strstr(t, needle) != NULL;
		free(t);
		if (hit)
			return true;
	}
	return false;
}

/* The bar's parts are proportional and in order: models, other, reserved, free. */
static void
test_gpu_bar(void **state)
{
	struct fixture *f = *state;
	f->o.width = 68 + 16; /* a bar of 16 cells: 8 ours, 4 other, 2 reserved, 2 free */
	top_view_build(&f->in, &f->o, &f->s);
	size_t i = find(&f->s, "RTX 3070");
	char *line = top_line_text(&f->s, i);
	assert_non_null(strstr(line, "[########====~~..]"));
	assert_non_null(strstr(line, "THROTTLED"));
	assert_non_null(strstr(line, " 77 C "));
	free(line);
	/* The parts are their own spans, so the screen colours them. */
	const struct top_line *l = &f->s.lines[i];
	bool ours = false, other = false;
	for (size_t j = 0; j < l->nspans; j++) {
		ours = ours || (l->spans[j].attr == TOP_ATTR_OURS &&
				strcmp(l->spans[j].text, "########") == 0);
		other = other || (l->spans[j].attr == TOP_ATTR_OTHER &&
				  strcmp(l->spans[j].text, "====") == 0);
	}
	assert_true(ours && other);
	f->o.width = 120; /* the second line, whole */
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(
	    has(&f->s, "models 4.00 GiB  other 2.00 GiB  reserved 1.00 GiB  free 1.00 GiB"));
	assert_true(has(&f->s, "util 87%  182 W"));
}

/* No GPUs, and a GPU with no memory figures: an empty bar, no crash. */
static void
test_no_gpus(void **state)
{
	struct fixture *f = *state;
	json_t *none = load("{\"telemetry\": \"none\", \"gpus\": []}");
	f->in.gpus = none;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "GPUS (telemetry: none)"));
	assert_true(has(&f->s, "  no GPUs"));
	json_decref(none);
	json_t *lost = load("{\"gpus\": [{\"index\": 1, \"state\": \"UNAVAILABLE\"}]}");
	f->in.gpus = lost;
	f->o.width = 68 + 10;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "[..........]"));
	assert_true(has(&f->s, "UNAVAILABLE"));
	json_decref(lost);
	f->in = (struct top_input){0};
	top_view_build(&f->in, &f->o, &f->s); /* nothing fetched yet */
	assert_true(has(&f->s, "MODELS loaded (0)"));
	assert_true(has(&f->s, "QUEUE (0)"));
}

/* Models per node, sorted by each key; the node filter keeps one node's. */
static void
test_models_sort_and_filter(void **state)
{
	struct fixture *f = *state;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "MODELS loaded (3)"));
	assert_true(find(&f->s, "all-minilm") < find(&f->s, "gemma:2b"));
	assert_true(find(&f->s, "gemma:2b") < find(&f->s, "qwen2.5"));
	assert_true(has(&f->s, "sort: name  node: all"));
	size_t i = find(&f->s, "qwen2.5:0.5b  ");
	char *line = top_line_text(&f->s, i);
	assert_non_null(strstr(line, "node0"));
	assert_non_null(strstr(line, "gpu 0"));
	assert_non_null(strstr(line, "608.00 MiB"));
	free(line);
	line = top_line_text(&f->s, find(&f->s, "all-minilm"));
	assert_non_null(strstr(line, "cpu"));
	free(line);

	f->o.sort = TOP_SORT_MEMORY; /* largest VRAM first */
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(find(&f->s, "gemma:2b  ") < find(&f->s, "qwen2.5:0.5b  "));
	assert_true(find(&f->s, "qwen2.5:0.5b  ") < find(&f->s, "all-minilm"));
	f->o.sort = TOP_SORT_ACTIVITY; /* most running first */
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(find(&f->s, "all-minilm") < find(&f->s, "qwen2.5:0.5b  "));
	assert_true(find(&f->s, "qwen2.5:0.5b  ") < find(&f->s, "gemma:2b  "));

	assert_string_equal(top_node_name(f->report, 1), "node1");
	assert_null(top_node_name(f->report, 2));
	f->o.node = "node1";
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "MODELS loaded (1)"));
	assert_true(has(&f->s, "node: node1"));
	assert_false(has(&f->s, "gemma:2b  "));
}

/* The queue by priority with counts and waits; running jobs with elapsed time. */
static void
test_queue_and_running(void **state)
{
	struct fixture *f = *state;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "QUEUE (3)  high 1  normal 1  low 1"));
	size_t hi = find(&f->s, "j-04"), no = find(&f->s, "j-03"), lo = find(&f->s, "j-05");
	assert_true(hi < no && no < lo);
	char *line = top_line_text(&f->s, no);
	assert_non_null(strstr(line, "pending"));
	assert_non_null(strstr(line, "2m20s")); /* submitted 09:28:00, now 09:30:20 */
	free(line);
	line = top_line_text(&f->s, hi);
	assert_non_null(strstr(line, "10s"));
	free(line);

	assert_true(has(&f->s, "RUNNING (2)"));
	line = top_line_text(&f->s, find(&f->s, "j-02"));
	assert_non_null(strstr(line, "1m04s")); /* started 09:29:15.5 */
	free(line);
	line = top_line_text(&f->s, find(&f->s, "j-01"));
	assert_non_null(strstr(line, "1h30m"));
	free(line);
	assert_true(find(&f->s, "RUNNING (2)") > lo);
	/* By name: model qwen before tinyllama. */
	assert_true(find(&f->s, "j-02") < find(&f->s, "j-01"));
	f->o.sort = TOP_SORT_MEMORY; /* jobs by priority: high j-01 first */
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(find(&f->s, "j-01") < find(&f->s, "j-02"));
	f->o.sort = TOP_SORT_ACTIVITY; /* the longest running first; in the queue the longest
					* waiting of each priority first */
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(find(&f->s, "j-01") < find(&f->s, "j-02"));
}

/* Newest event first, cut to max_events; none fetched in one-shot output. */
static void
test_events(void **state)
{
	struct fixture *f = *state;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(find(&f->s, "GPU 0 CRITICAL") < find(&f->s, "NORMAL -> THROTTLED"));
	char *line = top_line_text(&f->s, find(&f->s, "GPU 0 CRITICAL"));
	assert_non_null(strstr(line, "09:30:01 critical"));
	free(line);
	f->o.max_events = 1;
	top_view_build(&f->in, &f->o, &f->s);
	assert_false(has(&f->s, "NORMAL -> THROTTLED"));
	f->in.events = NULL;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "EVENTS (live only"));
}

/* Every line fits the width; the help replaces the lists; a fetch error shows. */
static void
test_width_help_error(void **state)
{
	struct fixture *f = *state;
	for (int w = 20; w <= 140; w += 7) {
		f->o.width = w;
		top_view_build(&f->in, &f->o, &f->s);
		for (size_t i = 0; i < f->s.nlines; i++) {
			char *line = top_line_text(&f->s, i);
			assert_true(strlen(line) <= (size_t)w);
			free(line);
		}
	}
	f->o.width = 120;
	f->o.help = true;
	top_view_build(&f->in, &f->o, &f->s);
	assert_true(has(&f->s, "Keys:"));
	assert_false(has(&f->s, "QUEUE"));
	f->o.help = false;
	f->in.error = "cannot reach vramd at http://h:5001: Connection refused";
	top_view_build(&f->in, &f->o, &f->s);
	assert_int_equal(find(&f->s, "error: cannot reach vramd"), 1);
}

static void
test_parse_time(void **state)
{
	(void)state;
	assert_int_equal(top_parse_time_ms("2025-01-14T09:30:20.000Z"), NOW_MS);
	assert_int_equal(top_parse_time_ms("2025-01-14T09:30:20.5Z"), NOW_MS + 500);
	assert_int_equal(top_parse_time_ms("2025-01-14T09:30:20Z"), NOW_MS);
	assert_int_equal(top_parse_time_ms("2025-01-14T09:30:20+01:00"), -1);
	assert_int_equal(top_parse_time_ms("yesterday"), -1);
	assert_int_equal(top_parse_time_ms(NULL), -1);
}

/* The progress line: jobs done of all, or one job's wait against its ETA. */
static void
test_progress_line(void **state)
{
	(void)state;
	char buf[256];
	json_t *queued = load("{\"job_id\": \"j-07\", \"status\": \"queued\","
			      " \"submitted_at\": \"2025-01-14T09:30:14.000Z\","
			      " \"queue_position\": 2, \"eta_s\": 18}");
	/* Waited 6 s of 6 + 18: a quarter of the bar. */
	ctl_progress_format(buf, sizeof(buf), 200, 0, 0, queued, NOW_MS);
	assert_string_equal(buf, "[#####...............] j-07 queued, position 2, eta 18 s");
	ctl_progress_format(buf, sizeof(buf), 200, 5, 20, queued, NOW_MS);
	assert_string_equal(buf, "[#####...............] 5/20 j-07 queued, position 2, eta 18 s");
	ctl_progress_format(buf, sizeof(buf), 30, 5, 20, queued, NOW_MS);
	assert_string_equal(buf, "[#####...............] 5/20 j-");
	json_object_set_new(queued, "eta_s", json_null());
	ctl_progress_format(buf, sizeof(buf), 200, 0, 0, queued, NOW_MS);
	assert_string_equal(buf, "[....................] j-07 queued, position 2, eta unknown");
	json_decref(queued);

	json_t *running = load("{\"job_id\": \"j-08\", \"status\": \"running\","
			       " \"started_at\": \"2025-01-14T09:30:08.000Z\"}");
	ctl_progress_format(buf, sizeof(buf), 200, 0, 0, running, NOW_MS);
	assert_string_equal(buf, "[####################] j-08 running for 12 s");
	json_decref(running);
	ctl_progress_format(buf, sizeof(buf), 200, 20, 20, NULL, NOW_MS);
	assert_string_equal(buf, "[####################] 20/20");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_gpu_bar, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_gpus, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_models_sort_and_filter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_and_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_width_help_error, setup, teardown),
	    cmocka_unit_test(test_parse_time),
	    cmocka_unit_test(test_progress_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
