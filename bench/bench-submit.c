/*
 * bench-submit.c: submit throughput of a running vramd with durable commits, over
 * loopback. N keep-alive HTTP connections (libevent's evhttp client on one loop, no
 * threads) each keep one POST /api/submit in flight until JOBS jobs are accepted; it
 * prints jobs/s, the latency p50/p99/max of one submit, the replies other than 202,
 * and, with --pid, vramd's resident memory (VmRSS from /proc/PID/status) before and
 * after, so a run of 100 000 jobs against a vramd whose jobs cannot leave the queue
 * also gives the memory cost of queued jobs. See bench/README.md for the setup.
 *
 * --url may list several servers separated by commas (the instances of a cluster on one
 * store): connection i goes to server i modulo their number, so the load is spread round
 * robin and the percentiles are those of every submit together (cluster-bench.py).
 *
 * usage: bench-submit [--url http://127.0.0.1:5001[,http://...]] [--jobs N] [--conns N]
 *                     [--pid PID] [--model M] [--priority high|normal|low]
 *
 * Without --priority the jobs take the three priorities in turn.
 */
#include "util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench;

/* At most this many servers in --url. */
#define BENCH_MAX_SERVERS 64

struct bench_server {
	char host[256];
	int port;
};

struct bench_conn {
	struct bench *b;
	struct evhttp_connection *evcon;
	int64_t sent_ns;
};

struct bench {
	struct event_base *base;
	struct bench_server servers[BENCH_MAX_SERVERS];
	int nservers;
	const char *model;
	const char *priority; /* NULL: the three priorities in turn */
	int64_t jobs;	      /* to submit in all */
	int64_t sent;	      /* requests started */
	int64_t done;	      /* replies received */
	int64_t accepted;     /* 202 replies */
	int64_t other;	      /* replies other than 202 */
	int64_t failed;	      /* requests without a reply */
	int64_t *latency_ns;
	int last_code;
	char last_error[256];
};

static void bench_send(struct bench_conn *c);

static void
bench_reply_cb(struct evhttp_request *req, void *arg)
{
	struct bench_conn *c = arg;
	struct bench *b = c->b;
	int64_t now = vd_now_mono_ns();
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		b->failed++;
	} else {
		int code = evhttp_request_get_response_code(req);
		if (code == 202) {
			b->accepted++;
		} else {
			b->other++;
			b->last_code = code;
			struct evbuffer *in = evhttp_request_get_input_buffer(req);
			size_t len = evbuffer_get_length(in);
			if (len >= sizeof(b->last_error))
				len = sizeof(b->last_error) - 1;
			evbuffer_copyout(in, b->last_error, len);
			b->last_error[len] = '\0';
		}
	}
	b->latency_ns[b->done++] = now - c->sent_ns;
	if (b->sent < b->jobs)
		bench_send(c);
	else if (b->done == b->jobs)
		event_base_loopexit(b->base, NULL);
}

static void
bench_send(struct bench_conn *c)
{
	struct bench *b = c->b;
	struct evhttp_request *req = evhttp_request_new(bench_reply_cb, c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", "localhost");
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Connection", "keep-alive");
	static const char *const prio[] = {"high", "normal", "low"};
	evbuffer_add_printf(evhttp_request_get_output_buffer(req),
			    "{\"model\":\"%s\",\"prompt\":\"bench job %" PRId64 "\","
			    "\"priority\":\"%s\",\"metadata\":{\"n\":%" PRId64 "}}",
			    b->model, b->sent,
			    b->priority != NULL ? b->priority : prio[b->sent % 3], b->sent);
	b->sent++;
	c->sent_ns = vd_now_mono_ns();
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, "/api/submit") != 0) {
		b->failed++;
		b->latency_ns[b->done++] = 0;
		if (b->done == b->jobs)
			event_base_loopexit(b->base, NULL);
	}
}

/* VmRSS of pid in KiB, or -1. */
static long
bench_rss_kib(long pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static int
bench_cmp_cb(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double
bench_pct_ms(const int64_t *sorted, int64_t n, double p)
{
	if (n == 0)
		return 0;
	int64_t rank = (int64_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	return (double)sorted[rank - 1] / 1e6;
}

static void
bench_usage(void)
{
	fprintf(stderr, "usage: bench-submit [--url http://HOST:PORT[,http://HOST:PORT...]] "
			"[--jobs N] [--conns N] [--pid PID] [--model M] [--priority P]\n");
	exit(2);
}

/* Parses --url's comma-separated http://HOST:PORT list into b->servers; false if one is
 * malformed or there are too many. */
static bool
bench_parse_servers(struct bench *b, const char *urls)
{
	const char *p = urls;
	while (*p != '\0') {
		if (b->nservers == BENCH_MAX_SERVERS || strncmp(p, "http://", 7) != 0)
			return false;
		struct bench_server *s = &b->servers[b->nservers++];
		if (sscanf(p + 7, "%255[^:/,]:%d", s->host, &s->port) != 2 || s->port <= 0 ||
		    s->port > 65535)
			return false;
		const char *comma = strchr(p, ',');
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return b->nservers > 0;
}

int
main(int argc, char **argv)
{
	const char *url = "http://127.0.0.1:5001";
	int64_t jobs = 20000, conns = 16, pid = 0;
	struct bench b = {.model = "qwen2.5:0.5b"};
	static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
					     {"jobs", required_argument, NULL, 'n'},
					     {"conns", required_argument, NULL, 'c'},
					     {"pid", required_argument, NULL, 'p'},
					     {"model", required_argument, NULL, 'm'},
					     {"priority", required_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *cause = NULL;
		int rc = 0;
		switch (ch) {
		case 'u':
			url = optarg;
			break;
		case 'n':
			rc = vd_parse_int64(optarg, 1, 100000000, &jobs, "--jobs", &cause);
			break;
		case 'c':
			rc = vd_parse_int64(optarg, 1, 10000, &conns, "--conns", &cause);
			break;
		case 'p':
			rc = vd_parse_int64(optarg, 1, 1 << 30, &pid, "--pid", &cause);
			break;
		case 'm':
			b.model = optarg;
			break;
		case 'r':
			if (strcmp(optarg, "high") != 0 && strcmp(optarg, "normal") != 0 &&
			    strcmp(optarg, "low") != 0)
				bench_usage();
			b.priority = optarg;
			break;
		default:
			bench_usage();
		}
		if (rc < 0) {
			fprintf(stderr, "bench-submit: %s\n", cause);
			free(cause);
			return 2;
		}
	}
	if (!bench_parse_servers(&b, url))
		bench_usage();
	if (conns > jobs)
		conns = jobs;
	b.jobs = jobs;
	b.latency_ns = xcalloc((size_t)jobs, sizeof(*b.latency_ns));
	b.base = event_base_new();
	struct bench_conn *cs = xcalloc((size_t)conns, sizeof(*cs));
	long rss_before = pid > 0 ? bench_rss_kib(pid) : -1;

	int64_t start = vd_now_mono_ns();
	for (int64_t i = 0; i < conns; i++) {
		cs[i].b = &b;
		const struct bench_server *s = &b.servers[i % b.nservers];
		cs[i].evcon = evhttp_connection_base_new(b.base, NULL, s->host, (uint16_t)s->port);
		evhttp_connection_set_timeout(cs[i].evcon, 60);
		bench_send(&cs[i]);
	}
	event_base_dispatch(b.base);
	double secs = (double)(vd_now_mono_ns() - start) / 1e9;
	long rss_after = pid > 0 ? bench_rss_kib(pid) : -1;

	qsort(b.latency_ns, (size_t)b.done, sizeof(*b.latency_ns), bench_cmp_cb);
	printf("bench-submit: %" PRId64 " jobs to %s over %" PRId64 " connections\n\n", jobs, url,
	       conns);
	printf("%-10s %10s %10s %8s %8s %10s %10s %10s\n", "ACCEPTED", "SECONDS", "JOBS/S", "OTHER",
	       "FAILED", "P50_MS", "P99_MS", "MAX_MS");
	printf("%-10" PRId64 " %10.2f %10.0f %8" PRId64 " %8" PRId64 " %10.2f %10.2f %10.2f\n",
	       b.accepted, secs, (double)b.accepted / secs, b.other, b.failed,
	       bench_pct_ms(b.latency_ns, b.done, 50), bench_pct_ms(b.latency_ns, b.done, 99),
	       b.done > 0 ? (double)b.latency_ns[b.done - 1] / 1e6 : 0.0);
	if (b.other > 0)
		printf("\nlast reply other than 202: %d %s\n", b.last_code, b.last_error);
	if (pid > 0) {
		printf("\n%-14s %14s %14s %16s\n", "VRAMD_PID", "RSS_BEFORE_MIB", "RSS_AFTER_MIB",
		       "BYTES_PER_JOB");
		printf("%-14" PRId64 " %14.1f %14.1f %16.0f\n", pid, (double)rss_before / 1024.0,
		       (double)rss_after / 1024.0,
		       b.accepted > 0
			   ? (double)(rss_after - rss_before) * 1024.0 / (double)b.accepted
			   : 0.0);
	}
	for (int64_t i = 0; i < conns; i++)
		evhttp_connection_free(cs[i].evcon);
	free(cs);
	free(b.latency_ns);
	event_base_free(b.base);
	return b.failed > 0 ? 1 : 0;
}
