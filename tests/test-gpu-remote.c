/*
 * test-gpu-remote.c: the remote vramd provider (src/gpu/gpu-remote.c). Its parsers on
 * replies of GET /api/gpu/status/all recorded from a vramd on ollama-sim's simulated
 * NVML (tests/data/vramd: two GPUs with a runner, the utilisation, power and throttle
 * reasons of GPU 0 then edited away from the simulator's idle values; one GPU lost) and on
 * hand-written bodies: missing and null fields stay unknown, wrong types and ranges fail with a
 * message naming the field, and no more than max readings are written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ull * 1024ull)

static struct gpu_reading readings[GPU_MAX_DEVICES + 1];

static char *
read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/vramd/%s", TEST_DATA_DIR, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = xmalloc(1 << 16);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static int
parse_text(const char *text, size_t max, char **cause)
{
	return gpu_remote_parse(text, strlen(text), readings, max, cause);
}

static void
test_full_reply(void **state)
{
	(void)state;
	size_t len;
	char *body = read_data("status-all-two.json", &len);
	char *cause = NULL;
	assert_int_equal(gpu_remote_parse(body, len, readings, GPU_MAX_DEVICES, &cause), 2);
	assert_null(cause);

	const struct gpu_reading *r = &readings[0];
	const struct gpu_sample *s = &r->sample;
	assert_int_equal(r->index, 0);
	assert_string_equal(r->name, "NVIDIA GeForce RTX 4060 (simulated)");
	assert_string_equal(r->uuid, "GPU-e99ff867-dbf6-82c9-382f-f84cb27281e9");
	assert_string_equal(r->bus_id, "00000000:01:00.0");
	assert_false(r->lost);
	uint32_t expected = GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE |
			    GPU_HAS_MEM_RESERVED | GPU_HAS_UTIL_GPU | GPU_HAS_UTIL_MEM |
			    GPU_HAS_TEMPERATURE | GPU_HAS_SLOWDOWN | GPU_HAS_SHUTDOWN |
			    GPU_HAS_POWER_DRAW | GPU_HAS_POWER_LIMIT | GPU_HAS_FAN |
			    GPU_HAS_SM_CLOCK | GPU_HAS_CLOCK_EVENTS | GPU_HAS_PROCESSES;
	/* The API serves neither the max operating temperature nor the margin. */
	assert_int_equal(s->valid, expected);
	assert_int_equal(s->mem_total_bytes, 8192 * MIB);
	assert_int_equal(s->mem_used_bytes, 1288267008ull);
	assert_int_equal(s->mem_free_bytes, 7033232128ull);
	/* NVML v2 on the remote: used excludes the driver's 256 MiB. */
	assert_int_equal(s->mem_reserved_bytes, 256 * MIB);
	assert_int_equal(s->util_gpu_pct, 57);
	assert_int_equal(s->util_mem_pct, 23);
	assert_int_equal(s->temperature_c, 39);
	assert_int_equal(s->slowdown_c, 87);
	assert_int_equal(s->shutdown_c, 92);
	assert_int_equal(s->power_draw_mw, 31400);
	assert_int_equal(s->power_limit_mw, 220000);
	assert_int_equal(s->fan_pct, 30);
	assert_int_equal(s->sm_clock_mhz, 210);
	assert_int_equal(s->clock_event_reasons,
			 GPU_CLOCK_EVENT_IDLE | GPU_CLOCK_EVENT_SW_POWER_CAP);
	assert_int_equal(s->nprocesses, 1);
	assert_int_equal(s->processes[0].pid, 51000); /* the remote machine's pid, as is */
	assert_string_equal(s->processes[0].name, "llama-server");
	assert_true(s->processes[0].used_known);
	assert_int_equal(s->processes[0].used_bytes, 1288267008ull);
	/* 2026-12-03T02:46:08.247Z */
	assert_int_equal(s->wall_ms, 1796265968247ll);

	r = &readings[1];
	assert_int_equal(r->index, 1);
	assert_string_equal(r->uuid, "GPU-6d1db36c-cba9-82d2-b4a0-472e578069ae");
	assert_true(r->sample.valid & GPU_HAS_PROCESSES);
	assert_int_equal(r->sample.nprocesses, 0);
	assert_int_equal(r->sample.mem_used_bytes, 0);

	struct gpu_host_memory host;
	assert_int_equal(gpu_remote_parse_host(body, len, &host, &cause), 0);
	assert_true(host.valid);
	assert_int_equal(host.total_bytes, 25275953152ull);
	assert_true(host.available_bytes > 0 && host.available_bytes <= host.total_bytes);
	free(body);
}

static void
test_lost_gpu(void **state)
{
	(void)state;
	size_t len;
	char *body = read_data("status-all-lost.json", &len);
	char *cause = NULL;
	assert_int_equal(gpu_remote_parse(body, len, readings, GPU_MAX_DEVICES, &cause), 2);
	assert_false(readings[0].lost);
	assert_true(readings[0].sample.valid & GPU_HAS_TEMPERATURE);
	assert_true(readings[1].lost);
	/* Identity stays, so the monitor marks the GPU it knows lost. */
	assert_int_equal(readings[1].index, 1);
	assert_string_equal(readings[1].uuid, "GPU-6d1db36c-cba9-82d2-b4a0-472e578069ae");
	assert_false(readings[1].sample.valid & GPU_HAS_TEMPERATURE);
	free(body);

	/* A GPU the remote has not sampled yet is UNAVAILABLE without lost_at: no reading. */
	assert_int_equal(parse_text("{\"gpus\": [{\"index\": 0, \"uuid\": \"GPU-a\", \"state\": "
				    "\"UNAVAILABLE\", \"memory_total_bytes\": null}]}",
				    4, &cause),
			 1);
	assert_true(readings[0].lost);
	assert_int_equal(
	    parse_text("{\"gpus\": [{\"index\": 0, \"state\": \"CRITICAL\"}]}", 4, &cause), 1);
	assert_false(readings[0].lost);
}

static void
test_missing_fields_stay_unknown(void **state)
{
	(void)state;
	char *cause = NULL;
	const char *body =
	    "{\"gpus\": [{\"index\": 3, \"uuid\": \"GPU-abc\", \"memory_total_bytes\": null,"
	    " \"memory_used_bytes\": 1024, \"power_w\": 12.345, \"processes\": null,"
	    " \"throttle_reasons\": [\"sw_thermal_slowdown\", \"from_a_newer_vramd\"]},"
	    " {\"index\": 4, \"processes\": [{\"pid\": 7, \"name\": null, \"used_bytes\": null},"
	    " {\"pid\": 8}], \"throttle_reasons\": null, \"sampled_at\": null}]}";
	assert_int_equal(parse_text(body, 4, &cause), 2);
	assert_null(cause);
	const struct gpu_sample *s = &readings[0].sample;
	assert_int_equal(readings[0].index, 3);
	assert_string_equal(readings[0].name, "");
	assert_string_equal(readings[0].bus_id, "");
	assert_int_equal(s->valid, GPU_HAS_MEM_USED | GPU_HAS_POWER_DRAW | GPU_HAS_CLOCK_EVENTS);
	assert_int_equal(s->mem_total_bytes, 0);
	assert_int_equal(s->mem_used_bytes, 1024);
	assert_int_equal(s->power_draw_mw, 12345);
	assert_int_equal(s->clock_event_reasons, GPU_CLOCK_EVENT_SW_THERMAL);
	assert_int_equal(s->wall_ms, 0); /* the provider stamps it */

	s = &readings[1].sample;
	assert_string_equal(readings[1].uuid, "");
	assert_int_equal(s->valid, GPU_HAS_PROCESSES);
	assert_int_equal(s->nprocesses, 2);
	assert_int_equal(s->processes[0].pid, 7);
	assert_string_equal(s->processes[0].name, "");
	assert_false(s->processes[0].used_known);
	assert_int_equal(s->processes[1].pid, 8);
	assert_false(s->processes[1].used_known);

	/* No memory known: nothing reserved is made up; equal sums say nothing either. */
	assert_int_equal(parse_text("{\"gpus\": [{\"index\": 0, \"memory_total_bytes\": 100, "
				    "\"memory_used_bytes\": 40, \"memory_free_bytes\": 60}]}",
				    4, &cause),
			 1);
	assert_false(readings[0].sample.valid & GPU_HAS_MEM_RESERVED);

	/* A reply with no GPUs (the remote has no telemetry) and no host object. */
	struct gpu_host_memory host = {.valid = true};
	const char *empty = "{\"telemetry\": \"none\", \"gpus\": []}";
	assert_int_equal(parse_text(empty, 4, &cause), 0);
	assert_int_equal(gpu_remote_parse_host(empty, strlen(empty), &host, &cause), 0);
	assert_false(host.valid);
	const char *half = "{\"host\": {\"memory_total_bytes\": 10, \"memory_available_bytes\": "
			   "null}, \"gpus\": []}";
	assert_int_equal(gpu_remote_parse_host(half, strlen(half), &host, &cause), 0);
	assert_false(host.valid);
}

static void
test_malformed_replies(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		const char *cause; /* a part of the message */
	} cases[] = {
	    {"", "reply is not JSON"},
	    {"{\"gpus\": [", "reply is not JSON"},
	    {"<html>502 Bad Gateway</html>", "reply is not JSON"},
	    {"[]", "reply is a JSON array, not an object"},
	    {"{}", "reply has no \"gpus\""},
	    {"{\"gpus\": 5}", "gpus: expected an array, got integer"},
	    {"{\"gpus\": [\"GPU-0\"]}", "gpus[0]: expected an object, got string"},
	    {"{\"gpus\": [{}]}", "gpus[0].index: expected a non-negative integer, got nothing"},
	    {"{\"gpus\": [{\"index\": -1}]}", "gpus[0].index: -1 is out of range"},
	    {"{\"gpus\": [{\"index\": 0}, {\"index\": 1, \"memory_used_bytes\": \"1 GiB\"}]}",
	     "gpus[1].memory_used_bytes: expected a non-negative integer, got string"},
	    {"{\"gpus\": [{\"index\": 0, \"memory_free_bytes\": -5}]}",
	     "gpus[0].memory_free_bytes: -5 is out of range"},
	    {"{\"gpus\": [{\"index\": 0, \"memory_total_bytes\": 1.5}]}",
	     "gpus[0].memory_total_bytes: expected a non-negative integer, got number"},
	    {"{\"gpus\": [{\"index\": 0, \"gpu_util_percent\": 150}]}",
	     "gpus[0].gpu_util_percent: 150 is out of range (0 to 100)"},
	    {"{\"gpus\": [{\"index\": 0, \"temperature_c\": \"hot\"}]}",
	     "gpus[0].temperature_c: expected an integer, got string"},
	    {"{\"gpus\": [{\"index\": 0, \"power_w\": true}]}",
	     "gpus[0].power_w: expected a number of watts, got boolean"},
	    {"{\"gpus\": [{\"index\": 0, \"power_w\": -3}]}",
	     "gpus[0].power_w: -3 W is out of range"},
	    {"{\"gpus\": [{\"index\": 0, \"uuid\": 5}]}",
	     "gpus[0].uuid: expected a string, got integer"},
	    {"{\"gpus\": [{\"index\": 0, \"processes\": {}}]}",
	     "gpus[0].processes: expected an array, got object"},
	    {"{\"gpus\": [{\"index\": 0, \"processes\": [{\"pid\": \"12\"}]}]}",
	     "gpus[0].processes[0].pid: expected a non-negative integer, got string"},
	    {"{\"gpus\": [{\"index\": 0, \"processes\": [{\"pid\": 4294967296}]}]}",
	     "gpus[0].processes[0].pid: 4294967296 is out of range"},
	    {"{\"gpus\": [{\"index\": 0, \"processes\": [1]}]}",
	     "gpus[0].processes[0]: expected an object, got integer"},
	    {"{\"gpus\": [{\"index\": 0, \"throttle_reasons\": \"gpu_idle\"}]}",
	     "gpus[0].throttle_reasons: expected an array of names, got string"},
	    {"{\"gpus\": [{\"index\": 0, \"throttle_reasons\": [1]}]}",
	     "gpus[0].throttle_reasons[0]: expected a name, got integer"},
	    {"{\"gpus\": [{\"index\": 0, \"sampled_at\": \"yesterday\"}]}",
	     "gpus[0].sampled_at: \"yesterday\" is not an RFC 3339 time"},
	    {"{\"gpus\": [{\"index\": 0, \"memory_used_bytes\": 99999999999999999999}]}",
	     "reply is not JSON"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		char *cause = NULL;
		int rc = parse_text(cases[i].body, GPU_MAX_DEVICES, &cause);
		if (rc != -EINVAL || cause == NULL || strstr(cause, cases[i].cause) == NULL)
			fail_msg("case %zu (%s): rc %d, cause \"%s\", expected \"%s\"", i,
				 cases[i].body, rc, cause ? cause : "(null)", cases[i].cause);
		free(cause);
	}
	/* A NULL cause is allowed. */
	assert_int_equal(parse_text("nope", 4, NULL), -EINVAL);

	struct gpu_host_memory host;
	char *cause = NULL;
	const char *bad_host = "{\"host\": 3, \"gpus\": []}";
	assert_int_equal(gpu_remote_parse_host(bad_host, strlen(bad_host), &host, &cause), -EINVAL);
	assert_non_null(strstr(cause, "host: expected an object, got integer"));
	free(cause);
	cause = NULL;
	const char *bad_total = "{\"host\": {\"memory_total_bytes\": \"big\", "
				"\"memory_available_bytes\": 1}, \"gpus\": []}";
	assert_int_equal(gpu_remote_parse_host(bad_total, strlen(bad_total), &host, &cause),
			 -EINVAL);
	assert_non_null(strstr(cause, "host.memory_total_bytes"));
	assert_false(host.valid);
	free(cause);
}

static void
test_more_gpus_than_max(void **state)
{
	(void)state;
	char body[8192] = "{\"gpus\": [";
	size_t used = strlen(body);
	for (int i = 0; i < 20; i++)
		used += (size_t)snprintf(body + used, sizeof(body) - used,
					 "%s{\"index\": %d, \"uuid\": \"GPU-%02d\", "
					 "\"memory_total_bytes\": %d}",
					 i ? ", " : "", i, i, 1000 + i);
	snprintf(body + used, sizeof(body) - used, "]}");

	memset(readings, 0xa5, sizeof(readings));
	char *cause = NULL;
	assert_int_equal(parse_text(body, GPU_MAX_DEVICES, &cause), GPU_MAX_DEVICES);
	assert_int_equal(readings[GPU_MAX_DEVICES - 1].index, GPU_MAX_DEVICES - 1);
	assert_string_equal(readings[GPU_MAX_DEVICES - 1].uuid, "GPU-15");
	assert_int_equal(readings[GPU_MAX_DEVICES - 1].sample.mem_total_bytes, 1015);
	/* Nothing written past max. */
	assert_int_equal(readings[GPU_MAX_DEVICES].index, 0xa5a5a5a5u);

	memset(readings, 0xa5, sizeof(readings));
	assert_int_equal(parse_text(body, 1, &cause), 1);
	assert_string_equal(readings[0].uuid, "GPU-00");
	assert_int_equal(readings[1].index, 0xa5a5a5a5u);
	assert_int_equal(parse_text(body, 0, &cause), 0);

	/* Processes past GPU_MAX_PROCESSES are left out, the rest kept. */
	char *procs = xstrdup("{\"gpus\": [{\"index\": 0, \"processes\": [");
	for (int i = 0; i < GPU_MAX_PROCESSES + 10; i++) {
		char *next = xasprintf("%s%s{\"pid\": %d, \"name\": \"p\", \"used_bytes\": 1}",
				       procs, i ? ", " : "", 100 + i);
		free(procs);
		procs = next;
	}
	char *full = xasprintf("%s]}]}", procs);
	assert_int_equal(parse_text(full, 1, &cause), 1);
	assert_int_equal(readings[0].sample.nprocesses, GPU_MAX_PROCESSES);
	assert_int_equal(readings[0].sample.processes[GPU_MAX_PROCESSES - 1].pid,
			 100 + GPU_MAX_PROCESSES - 1);
	free(procs);
	free(full);
}

static void
test_provider_pref(void **state)
{
	(void)state;
	enum gpu_provider_pref pref = GPU_PROVIDER_AUTO;
	assert_int_equal(gpu_provider_pref_parse("vramd", &pref, NULL), 0);
	assert_int_equal(pref, GPU_PROVIDER_REMOTE);
	assert_string_equal(gpu_provider_pref_name(GPU_PROVIDER_REMOTE), "vramd");
	assert_string_equal(gpu_provider_remote.name, "vramd");
	/* The API's names and the remote parser's are one table: every name round-trips. */
	const struct gpu_clock_event_name *names;
	size_t n = gpu_clock_event_names(&names);
	assert_true(n >= 9);
	for (size_t i = 0; i < n; i++) {
		char *body = xasprintf(
		    "{\"gpus\": [{\"index\": 0, \"throttle_reasons\": [\"%s\"]}]}", names[i].name);
		assert_int_equal(parse_text(body, 1, NULL), 1);
		assert_int_equal(readings[0].sample.clock_event_reasons, names[i].bit);
		free(body);
	}
}

/* --- the provider on a loop ---------------------------------------------------------- */

enum server_mode {
	SERVE_BODY,    /* 200 with fx->body */
	SERVE_STATUS,  /* 503 with a vramd error body */
	SERVE_GARBAGE, /* 200 with HTML */
	SERVE_HOLD,    /* the raw server at hold_port: reads the request, never answers */
};

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	int port;
	struct evconnlistener *hold;
	int hold_port;
	enum server_mode mode;
	char *body;
	size_t body_len;
	int requests; /* requests the server received */
	int closed;   /* connections of held requests closed by the client */
	char last_uri[128];
	struct event *watchdog;
	struct gpu_monitor *mon;
	int samples;	 /* on_sample calls */
	bool free_in_cb; /* on_sample frees the monitor */
};

/* The hold server: counts a request once its head is in, never answers, and counts
 * the client closing the connection (evhttp stops reading while a request waits for
 * its reply, so it would not notice). */
static void
fx_hold_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fixture *fx = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		fx->closed++;
		bufferevent_free(bev);
		event_base_loopbreak(fx->base);
	}
}

static void
fx_hold_read_cb(struct bufferevent *bev, void *arg)
{
	struct fixture *fx = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
		return;
	evbuffer_drain(in, evbuffer_get_length(in));
	fx->requests++;
	event_base_loopbreak(fx->base); /* the request is here: let the test act */
}

static void
fx_hold_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		  void *arg)
{
	(void)l, (void)sa, (void)len;
	struct fixture *fx = arg;
	struct bufferevent *bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, fx_hold_read_cb, NULL, fx_hold_event_cb, fx);
	bufferevent_enable(bev, EV_READ);
}

static void
fx_server_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *fx = arg;
	fx->requests++;
	vd_strlcpy(fx->last_uri, evhttp_request_get_uri(req), sizeof(fx->last_uri));
	struct evbuffer *out = evbuffer_new();
	switch (fx->mode) {
	case SERVE_BODY:
		evbuffer_add(out, fx->body, fx->body_len);
		evhttp_send_reply(req, 200, "OK", out);
		break;
	case SERVE_STATUS:
		evbuffer_add_printf(out, "{\"error\": \"monitor busy\"}");
		evhttp_send_reply(req, 503, "Service Unavailable", out);
		break;
	case SERVE_GARBAGE:
		evbuffer_add_printf(out, "<html>hello</html>");
		evhttp_send_reply(req, 200, "OK", out);
		break;
	case SERVE_HOLD: /* served by the hold server */
		evhttp_send_reply(req, 500, "Wrong Server", out);
		break;
	}
	evbuffer_free(out);
}

static void
fx_watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd, (void)events;
	struct fixture *fx = arg;
	fail_msg("watchdog: the loop ran 20 s without finishing");
	event_base_loopbreak(fx->base);
}

static void
fx_sample_cb(struct gpu_monitor *mon, void *arg)
{
	struct fixture *fx = arg;
	assert_ptr_equal(mon, fx->mon);
	fx->samples++;
	if (fx->free_in_cb) {
		gpu_monitor_free(mon);
		fx->mon = NULL;
	}
	event_base_loopbreak(fx->base);
}

static int
fx_setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	fx->base = event_base_new();
	fx->http = evhttp_new(fx->base);
	evhttp_set_gencb(fx->http, fx_server_cb, fx);
	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(fx->http, "127.0.0.1", 0);
	assert_non_null(bound);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	assert_int_equal(
	    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len), 0);
	fx->port = ntohs(sin.sin_port);
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	fx->hold = evconnlistener_new_bind(fx->base, fx_hold_accept_cb, fx,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					   (struct sockaddr *)&any, sizeof(any));
	assert_non_null(fx->hold);
	len = sizeof(sin);
	assert_int_equal(
	    getsockname(evconnlistener_get_fd(fx->hold), (struct sockaddr *)&sin, &len), 0);
	fx->hold_port = ntohs(sin.sin_port);
	fx->body = read_data("status-all-two.json", &fx->body_len);
	fx->watchdog = evtimer_new(fx->base, fx_watchdog_cb, fx);
	struct timeval tv = {20, 0};
	evtimer_add(fx->watchdog, &tv);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fixture *fx = *state;
	gpu_monitor_free(fx->mon);
	event_free(fx->watchdog);
	evconnlistener_free(fx->hold);
	evhttp_free(fx->http);
	event_base_free(fx->base);
	free(fx->body);
	free(fx);
	return 0;
}

/* A monitor reading the fixture's server (url_suffix after host:port, e.g. "/"); the
 * hold server when the mode is SERVE_HOLD. */
static struct gpu_monitor *
fx_monitor(struct fixture *fx, const char *url_suffix, int64_t timeout_ms)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
		 fx->mode == SERVE_HOLD ? fx->hold_port : fx->port, url_suffix);
	struct gpu_options opts = {
	    .provider = GPU_PROVIDER_REMOTE,
	    .remote_url = url,
	    .interval_ms = 3600000, /* samples only when the test asks */
	    .smi_timeout_ms = timeout_ms,
	    .meminfo_path = "/nonexistent/meminfo", /* host memory must come from the reply */
	    .on_sample = fx_sample_cb,
	    .on_sample_arg = fx,
	};
	char *cause = NULL;
	fx->mon = gpu_monitor_new(fx->base, &opts, &cause);
	assert_non_null(fx->mon);
	assert_null(cause);
	return fx->mon;
}

/* Takes one sample and runs the loop until the monitor reports it. */
static void
fx_sample(struct fixture *fx)
{
	int before = fx->samples;
	gpu_monitor_sample_now(fx->mon);
	assert_int_equal(fx->samples, before); /* never synchronous */
	event_base_dispatch(fx->base);
	assert_int_equal(fx->samples, before + 1);
}

static void
test_monitor_reads_remote(void **state)
{
	struct fixture *fx = *state;
	struct gpu_monitor *mon = fx_monitor(fx, "/", 0);
	assert_string_equal(gpu_monitor_source(mon), "vramd");
	fx_sample(fx);
	assert_string_equal(fx->last_uri, "/api/gpu/status/all");
	assert_null(gpu_monitor_reason(mon));
	assert_int_equal(gpu_monitor_count(mon), 2);
	const struct gpu_device *d =
	    gpu_monitor_find_uuid(mon, "GPU-e99ff867-dbf6-82c9-382f-f84cb27281e9");
	assert_non_null(d);
	assert_int_equal(d->state, GPU_DEVICE_AVAILABLE);
	assert_false(d->unified_memory);
	assert_int_equal(d->latest.mem_used_bytes, 1288267008ull);
	assert_true(d->latest.processes[0].is_ollama);
	uint64_t others = 1;
	assert_true(gpu_device_used_by_others(d, &others));
	assert_int_equal(others, 0);
	const struct gpu_host_memory *host = gpu_monitor_host(mon);
	assert_true(host->valid);
	assert_int_equal(host->total_bytes, 25275953152ull);
}

/* A sample the remote took 1.5 s before it served it cannot show a load that ended
 * 1 s ago: its measured time is 1.5 s before its arrival. */
static void
test_sample_age_from_served_at(void **state)
{
	struct fixture *fx = *state;
	struct gpu_monitor *mon = fx_monitor(fx, "/", 0);
	fx_sample(fx); /* no served_at: measured when it arrived */
	const struct gpu_device *d = gpu_monitor_device(mon, 1);
	assert_int_equal(d->latest.measured_mono_ms, d->latest.mono_ms);

	char *body = fx->body;
	json_t *root = json_loadb(body, fx->body_len, 0, NULL);
	assert_non_null(root);
	json_object_set_new(root, "served_at", json_string("2026-12-03T02:46:09.748Z"));
	fx->body = json_dumps(root, 0);
	fx->body_len = strlen(fx->body);
	json_decref(root);
	fx_sample(fx);
	d = gpu_monitor_device(mon, 1);
	assert_int_equal(d->latest.mono_ms - d->latest.measured_mono_ms, 1500);
	free(fx->body);
	fx->body = body;
}

static void
test_failures_mark_gpus_lost(void **state)
{
	struct fixture *fx = *state;
	char url[96];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/gpu/status/all", fx->port);
	struct gpu_monitor *mon = fx_monitor(fx, "", 0);
	fx_sample(fx);
	assert_int_equal(gpu_monitor_count(mon), 2);

	static const struct {
		enum server_mode mode;
		const char *why;
	} failures[] = {
	    {SERVE_STATUS, "HTTP 503: monitor busy"},
	    {SERVE_GARBAGE, "reply is not JSON"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(failures); i++) {
		fx->mode = failures[i].mode;
		fx_sample(fx);
		const char *reason = gpu_monitor_reason(mon);
		assert_non_null(reason);
		assert_non_null(strstr(reason, url));
		assert_non_null(strstr(reason, failures[i].why));
		for (size_t k = 0; k < gpu_monitor_count(mon); k++)
			assert_int_equal(gpu_monitor_device(mon, k)->state, GPU_DEVICE_LOST);
		assert_false(gpu_monitor_host(mon)->valid);

		fx->mode = SERVE_BODY;
		fx_sample(fx);
		assert_null(gpu_monitor_reason(mon));
		for (size_t k = 0; k < gpu_monitor_count(mon); k++)
			assert_int_equal(gpu_monitor_device(mon, k)->state, GPU_DEVICE_AVAILABLE);
	}

	/* Nobody listening any more: connection refused. */
	evhttp_free(fx->http);
	fx->http = evhttp_new(fx->base);
	fx_sample(fx);
	assert_non_null(strstr(gpu_monitor_reason(mon), url));
	assert_non_null(strstr(gpu_monitor_reason(mon), "connect"));
	assert_int_equal(gpu_monitor_device(mon, 0)->state, GPU_DEVICE_LOST);
	assert_int_equal(gpu_monitor_reading_count(mon), 3);
}

static void
test_timeout_never_blocks(void **state)
{
	struct fixture *fx = *state;
	fx->mode = SERVE_HOLD;
	struct gpu_monitor *mon = fx_monitor(fx, "", 300);
	int64_t start = vd_now_mono_ms();
	gpu_monitor_sample_now(mon);
	event_base_dispatch(fx->base); /* until the server holds the request */
	assert_int_equal(fx->requests, 1);
	assert_int_equal(fx->samples, 0);
	event_base_dispatch(fx->base); /* until the timeout completes the sample */
	int64_t took = vd_now_mono_ms() - start;
	assert_int_equal(fx->samples, 1);
	assert_non_null(strstr(gpu_monitor_reason(mon), "timeout"));
	assert_true(took >= 250 && took < 5000);
	/* The timed-out request's connection is closed, not left to the server. */
	if (fx->closed == 0)
		event_base_dispatch(fx->base);
	assert_int_equal(fx->closed, 1);
}

static void
test_close_cancels_sample_in_flight(void **state)
{
	struct fixture *fx = *state;
	fx->mode = SERVE_HOLD;
	fx_monitor(fx, "", 0);
	gpu_monitor_sample_now(fx->mon);
	event_base_dispatch(fx->base);
	assert_int_equal(fx->requests, 1);
	assert_int_equal(fx->closed, 0);
	gpu_monitor_free(fx->mon);
	fx->mon = NULL;
	/* The request was aborted: the server sees its connection close. */
	event_base_dispatch(fx->base);
	assert_int_equal(fx->closed, 1);
	/* Nothing of the monitor may run any more: let the loop go on for a while. */
	struct timeval tv = {0, 200000};
	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_int_equal(fx->samples, 0);
}

static void
test_free_from_sample_callback(void **state)
{
	struct fixture *fx = *state;
	fx_monitor(fx, "", 0);
	fx->free_in_cb = true;
	gpu_monitor_sample_now(fx->mon);
	event_base_dispatch(fx->base);
	assert_int_equal(fx->samples, 1);
	assert_null(fx->mon);
}

static void
test_open_needs_a_url(void **state)
{
	struct fixture *fx = *state;
	static const struct {
		const char *url;
		const char *why;
	} cases[] = {
	    {NULL, "no URL of a remote vramd"},
	    {"ftp://user:secret@host/", "is not an http:// or https:// URL"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		struct gpu_options opts = {.provider = GPU_PROVIDER_REMOTE,
					   .remote_url = cases[i].url};
		struct gpu_monitor *mon = gpu_monitor_new(fx->base, &opts, NULL);
		assert_non_null(mon);
		assert_string_equal(gpu_monitor_source(mon), "none");
		assert_non_null(strstr(gpu_monitor_reason(mon), cases[i].why));
		assert_null(strstr(gpu_monitor_reason(mon), "secret"));
		gpu_monitor_free(mon);
	}
	/* auto never picks the remote provider, even with a URL. */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", fx->port);
	struct gpu_options opts = {.provider = GPU_PROVIDER_AUTO,
				   .remote_url = url,
				   .nvml_lib = "/nonexistent/libnvidia-ml.so",
				   .smi_path = "/nonexistent/nvidia-smi"};
	struct gpu_monitor *mon = gpu_monitor_new(fx->base, &opts, NULL);
	assert_string_equal(gpu_monitor_source(mon), "none");
	gpu_monitor_free(mon);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_reply),
	    cmocka_unit_test(test_lost_gpu),
	    cmocka_unit_test(test_missing_fields_stay_unknown),
	    cmocka_unit_test(test_malformed_replies),
	    cmocka_unit_test(test_more_gpus_than_max),
	    cmocka_unit_test(test_provider_pref),
	    cmocka_unit_test_setup_teardown(test_monitor_reads_remote, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_sample_age_from_served_at, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_mark_gpus_lost, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_never_blocks, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_close_cancels_sample_in_flight, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_free_from_sample_callback, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_open_needs_a_url, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
