/*
 * bench-ref-server.c: the HTTP ceiling bench-submit compares vramd against: a bare
 * libevent evhttp server on one thread that answers every POST /api/submit with the
 * same 202 JSON vramd sends (job_id, status, position, eta_s, and a Location header),
 * after reading the body and parsing it with jansson as vramd does, but with no queue,
 * no store and no fsync. What vramd reaches against it on the same machine in the same
 * run is the fraction of the ceiling the issue 12 target speaks of.
 *
 * usage: bench-ref-server [--listen 127.0.0.1:19503]
 */
#include "util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ref_server {
	int64_t next_seq;
};

static void
ref_submit_cb(struct evhttp_request *req, void *arg)
{
	struct ref_server *rs = arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_send_error(req, 405, NULL);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t err;
	json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err);
	if (!json_is_object(body)) {
		json_decref(body);
		evhttp_send_error(req, 400, NULL);
		return;
	}
	json_decref(body);
	char id[32];
	snprintf(id, sizeof(id), "j-%016" PRIx64, (uint64_t)rs->next_seq++);
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_printf(out,
			    "{\"job_id\":\"%s\",\"status\":\"queued\",\"position\":1,"
			    "\"eta_s\":null}",
			    id);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	char location[64];
	snprintf(location, sizeof(location), "/api/job/%s", id);
	evhttp_add_header(h, "Location", location);
	evhttp_send_reply(req, 202, "Accepted", out);
	evbuffer_free(out);
}

static void
ref_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:19503";
	if (argc == 3 && strcmp(argv[1], "--listen") == 0) {
		listen = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "usage: bench-ref-server [--listen HOST:PORT]\n");
		return 2;
	}
	char host[256];
	int port = 0;
	if (sscanf(listen, "%255[^:]:%d", host, &port) != 2 || port <= 0 || port > 65535) {
		fprintf(stderr, "bench-ref-server: bad --listen %s\n", listen);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct ref_server rs = {.next_seq = 1};
	evhttp_set_cb(http, "/api/submit", ref_submit_cb, &rs);
	if (evhttp_bind_socket(http, host, (uint16_t)port) != 0) {
		fprintf(stderr, "bench-ref-server: cannot listen on %s\n", listen);
		return 1;
	}
	struct event *sigterm = evsignal_new(base, SIGTERM, ref_signal_cb, base);
	struct event *sigint = evsignal_new(base, SIGINT, ref_signal_cb, base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	event_base_dispatch(base);
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
