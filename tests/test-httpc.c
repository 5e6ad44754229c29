/*
 * test-httpc.c: the asynchronous HTTP client against in-process servers on the same
 * event loop: a libevent evhttp server (echo, large replies), a listening socket that
 * never accepts (timeouts, cancel), a raw server that closes mid-reply, and a closed
 * port (connection refused).
 */
#include "httpc.h"
#include "util.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	int port;      /* evhttp server */
	int silent_fd; /* listening, never accepts */
	int silent_port;
	struct evconnlistener *cutoff; /* replies half a body, then closes */
	int cutoff_port;
	struct httpc *client;
	struct event *watchdog;
	int held;	   /* /hold requests received (never answered) */
	int redirect_hits; /* requests to /target, where /redirect points */
	int closed;	   /* connections of held requests closed by the client */
};

struct outcome {
	bool done;
	enum httpc_error error;
	int status;
	bool timed_out;
	char *body;
	size_t body_len;
	char *content_type;
	char *message;
	int *counter; /* incremented when done, if set */
	struct fixture *fx;
	int stop_at; /* break the loop when *counter reaches this */
};

static int
socket_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* /echo: "<METHOD> <Host header>\n<body>" as text/plain. /big?n=N: N bytes, chunked.
 * /redirect: 307 to /target on the same server; /target counts its requests. */
static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *fx = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();

	if (strncmp(uri, "/echo", 5) == 0) {
		const char *host =
		    evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
		const char *method = evhttp_request_get_command(req) == EVHTTP_REQ_POST	 ? "POST"
				     : evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET"
											 : "OTHER";
		evbuffer_add_printf(out, "%s %s\n", method, host ? host : "-");
		evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strncmp(uri, "/big", 4) == 0) {
		size_t n = (size_t)strtoul(uri + 7, NULL, 10);
		char *blob = xmalloc(n);
		memset(blob, 'x', n);
		evbuffer_add(out, blob, n);
		free(blob);
		if (strstr(uri, "chunked")) {
			evhttp_send_reply_start(req, 200, "OK");
			evhttp_send_reply_chunk(req, out);
			evhttp_send_reply_end(req);
		} else {
			evhttp_send_reply(req, 200, "OK", out);
		}
	} else if (strncmp(uri, "/redirect", 9) == 0) {
		char location[64];
		snprintf(location, sizeof(location), "http://127.0.0.1:%d/target", fx->port);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
		evhttp_send_reply(req, 307, "Temporary Redirect", out);
	} else if (strncmp(uri, "/target", 7) == 0) {
		fx->redirect_hits++;
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evhttp_send_reply(req, 404, "Not Found", out);
	}
	evbuffer_free(out);
}

/* The raw server: for GET /hold reads the request and never answers (counting when the
 * client closes); otherwise promises 1000 bytes, sends 7, and closes. */
static void
cutoff_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fixture *fx = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		fx->closed++;
		bufferevent_free(bev);
		event_base_loopbreak(fx->base);
	}
}

static void
cutoff_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (p.pos < 0)
		return;
	struct fixture *fx = arg;
	if (evbuffer_search(in, "GET /hold", 9, NULL).pos == 0) {
		/* Hold: never answer, count when the client closes. */
		fx->held++;
		evbuffer_drain(in, evbuffer_get_length(in));
		event_base_loopbreak(fx->base);
		return;
	}
	const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial";
	int fd = bufferevent_getfd(bev);
	ssize_t w = write(fd, reply, sizeof(reply) - 1);
	(void)w;
	bufferevent_free(bev); /* BEV_OPT_CLOSE_ON_FREE: closes the connection */
}

static void
cutoff_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		 void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	struct fixture *fx = arg;
	struct bufferevent *bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, cutoff_read_cb, NULL, cutoff_event_cb, fx);
	bufferevent_enable(bev, EV_READ);
}

static void
watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	struct fixture *fx = arg;
	fail_msg("watchdog: the loop ran 20 s without finishing");
	event_base_loopbreak(fx->base);
}

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	fx->base = event_base_new();
	fx->http = evhttp_new(fx->base);
	evhttp_set_gencb(fx->http, server_cb, fx);
	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(fx->http, "127.0.0.1", 0);
	assert_non_null(bound);
	fx->port = socket_port(evhttp_bound_socket_get_fd(bound));

	fx->silent_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fx->silent_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fx->silent_fd, 64), 0);
	fx->silent_port = socket_port(fx->silent_fd);

	fx->cutoff = evconnlistener_new_bind(fx->base, cutoff_accept_cb, fx,
					     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					     (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(fx->cutoff);
	fx->cutoff_port = socket_port(evconnlistener_get_fd(fx->cutoff));

	fx->client = httpc_new(fx->base);
	fx->watchdog = evtimer_new(fx->base, watchdog_cb, fx);
	struct timeval tv = {20, 0};
	evtimer_add(fx->watchdog, &tv);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	httpc_free(fx->client);
	event_free(fx->watchdog);
	evconnlistener_free(fx->cutoff);
	close(fx->silent_fd);
	evhttp_free(fx->http);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

static void
done_cb(const struct httpc_result *r, void *arg)
{
	struct outcome *o = arg;
	assert_false(o->done);
	o->done = true;
	o->error = r->error;
	o->status = r->status;
	o->timed_out = r->timed_out;
	o->body = xstrndup(r->body, r->body_len);
	o->body_len = r->body_len;
	assert_int_equal(r->body[r->body_len], '\0');
	o->content_type = r->content_type ? xstrdup(r->content_type) : NULL;
	o->message = r->error_message ? xstrdup(r->error_message) : NULL;
	if (r->error == HTTPC_OK)
		assert_null(r->error_message);
	else
		assert_non_null(r->error_message);
	if (o->counter) {
		(*o->counter)++;
		if (*o->counter == o->stop_at)
			event_base_loopbreak(o->fx->base);
	} else {
		event_base_loopbreak(o->fx->base);
	}
}

static void
outcome_cleanup(struct outcome *o)
{
	free(o->body);
	free(o->content_type);
	free(o->message);
}

/* Starts one request and runs the loop until it completes. */
static void
run_one(struct fixture *fx, const struct httpc_options *opts, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->fx = fx;
	httpc_start(fx->client, opts, done_cb, o);
	assert_false(o->done); /* never called from inside httpc_start */
	event_base_dispatch(fx->base);
	assert_true(o->done);
	assert_int_equal(httpc_in_flight(fx->client), 0);
}

static void
test_get_and_post(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx->port);
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 5000}, &o);
	assert_int_equal(o.error, HTTPC_OK);
	assert_int_equal(o.status, 200);
	char want[128];
	snprintf(want, sizeof(want), "GET 127.0.0.1:%d\n", fx->port);
	assert_string_equal(o.body, want);
	assert_string_equal(o.content_type, "text/plain");
	outcome_cleanup(&o);

	/* POST with a body (with a NUL inside, so the length is honoured) and the loopback
	 * Host rewrite. */
	const char body[] = "{\"a\":1}\0tail";
	run_one(fx,
		&(struct httpc_options){.method = "POST",
					.url = url,
					.body = body,
					.body_len = sizeof(body) - 1,
					.timeout_ms = 5000,
					.loopback_host = true},
		&o);
	assert_int_equal(o.status, 200);
	snprintf(want, sizeof(want), "POST localhost:%d\n", fx->port);
	assert_int_equal(o.body_len, strlen(want) + sizeof(body) - 1);
	assert_memory_equal(o.body, want, strlen(want));
	assert_memory_equal(o.body + strlen(want), body, sizeof(body) - 1);
	outcome_cleanup(&o);

	/* An HTTP error status is a completed request, not a transport error. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nowhere", fx->port);
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 5000}, &o);
	assert_int_equal(o.error, HTTPC_OK);
	assert_int_equal(o.status, 404);
	outcome_cleanup(&o);
}

/* A 3xx is the answer: the client never follows it (webhooks must not be bounced to
 * another address), and a URL of another protocol is refused before any connection. */
static void
test_redirect_not_followed(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect", fx->port);
	for (int i = 0; i < 2; i++) {
		const char *method = i == 0 ? "GET" : "POST";
		run_one(fx,
			&(struct httpc_options){.method = method,
						.url = url,
						.body = i ? "{}" : NULL,
						.body_len = i ? 2 : 0,
						.timeout_ms = 5000},
			&o);
		assert_int_equal(o.error, HTTPC_OK);
		assert_int_equal(o.status, 307);
		outcome_cleanup(&o);
	}
	/* The target is reachable; it just was never asked. */
	assert_int_equal(fx->redirect_hits, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/target", fx->port);
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 5000}, &o);
	assert_int_equal(o.status, 200);
	assert_int_equal(fx->redirect_hits, 1);
	outcome_cleanup(&o);

	run_one(fx, &(struct httpc_options){.url = "file:///etc/passwd", .timeout_ms = 5000}, &o);
	assert_int_equal(o.error, HTTPC_ERR_TRANSPORT);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.body_len, 0);
	outcome_cleanup(&o);
}

static void
test_large_post_body(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;
	size_t n = 3u << 20;
	char *body = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx->port);
	run_one(fx,
		&(struct httpc_options){.method = "POST",
					.url = url,
					.body = body,
					.body_len = n,
					.timeout_ms = 10000,
					.max_reply_bytes = 8u << 20},
		&o);
	assert_int_equal(o.error, HTTPC_OK);
	assert_int_equal(o.status, 200);
	const char *nl = strchr(o.body, '\n');
	assert_non_null(nl);
	assert_int_equal(o.body_len - (size_t)(nl + 1 - o.body), n);
	assert_memory_equal(nl + 1, body, n);
	outcome_cleanup(&o);
	free(body);
}

#define NCONCURRENT 200

static void
test_many_concurrent(void **state)
{
	struct fixture *fx = *state;
	static struct outcome outs[NCONCURRENT];
	char url[128], body[64];
	int counter = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx->port);
	for (int i = 0; i < NCONCURRENT; i++) {
		memset(&outs[i], 0, sizeof(outs[i]));
		outs[i].fx = fx;
		outs[i].counter = &counter;
		outs[i].stop_at = NCONCURRENT;
		int len = snprintf(body, sizeof(body), "request %d", i);
		httpc_start(fx->client,
			    &(struct httpc_options){.method = "POST",
						    .url = url,
						    .body = body,
						    .body_len = (size_t)len,
						    .timeout_ms = 10000},
			    done_cb, &outs[i]);
	}
	assert_int_equal(httpc_in_flight(fx->client), NCONCURRENT);
	event_base_dispatch(fx->base);
	assert_int_equal(counter, NCONCURRENT);
	for (int i = 0; i < NCONCURRENT; i++) {
		char want[64];
		snprintf(want, sizeof(want), "request %d", i);
		assert_int_equal(outs[i].error, HTTPC_OK);
		assert_int_equal(outs[i].status, 200);
		const char *nl = strchr(outs[i].body, '\n');
		assert_non_null(nl);
		assert_string_equal(nl + 1, want);
		outcome_cleanup(&outs[i]);
	}
	assert_int_equal(httpc_in_flight(fx->client), 0);
}

static void
test_timeout(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", fx->silent_port);
	int64_t t0 = vd_now_mono_ms();
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 300}, &o);
	int64_t took = vd_now_mono_ms() - t0;
	assert_int_equal(o.error, HTTPC_ERR_TIMEOUT);
	assert_true(o.timed_out);
	assert_int_equal(o.status, 0);
	assert_true(took >= 250);
	assert_non_null(strstr(o.message, "imeout") ? o.message : strstr(o.message, "timed out"));
	outcome_cleanup(&o);
}

static void
test_connection_refused(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	/* A port that was just bound and closed: nothing listens there. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	int port = socket_port(fd);
	close(fd);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/version", port);
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 5000}, &o);
	assert_int_equal(o.error, HTTPC_ERR_CONNECT);
	assert_false(o.timed_out);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.message, "refused"));
	assert_non_null(strstr(o.message, "127.0.0.1"));
	outcome_cleanup(&o);

	/* A malformed URL fails through the callback too. */
	run_one(fx, &(struct httpc_options){.url = "http://[::1", .timeout_ms = 5000}, &o);
	assert_int_not_equal(o.error, HTTPC_OK);
	assert_int_equal(o.status, 0);
	outcome_cleanup(&o);
}

static void
test_reply_over_cap(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	/* With Content-Length (refused before buffering) and chunked (cut in the write
	 * callback): both fail with a clear message; a reply just under the cap passes. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big?n=200000", fx->port);
	run_one(fx,
		&(struct httpc_options){.url = url, .timeout_ms = 5000, .max_reply_bytes = 65536},
		&o);
	assert_int_equal(o.error, HTTPC_ERR_TOO_LARGE);
	assert_non_null(strstr(o.message, "65536"));
	outcome_cleanup(&o);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big?n=200000&chunked", fx->port);
	run_one(fx,
		&(struct httpc_options){.url = url, .timeout_ms = 5000, .max_reply_bytes = 65536},
		&o);
	assert_int_equal(o.error, HTTPC_ERR_TOO_LARGE);
	assert_true(o.body_len <= 65536);
	outcome_cleanup(&o);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big?n=65536&chunked", fx->port);
	run_one(fx,
		&(struct httpc_options){.url = url, .timeout_ms = 5000, .max_reply_bytes = 65536},
		&o);
	assert_int_equal(o.error, HTTPC_OK);
	assert_int_equal(o.body_len, 65536);
	outcome_cleanup(&o);
}

static void
break_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	event_base_loopbreak(arg);
}

static void
test_cancel_in_flight(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o = {.fx = fx};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", fx->silent_port);
	struct httpc_request *req = httpc_start(
	    fx->client, &(struct httpc_options){.url = url, .timeout_ms = 200}, done_cb, &o);
	/* Let it connect and send, then cancel, then run past its timeout. */
	struct timeval tv = {0, 50000};
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_false(o.done);
	httpc_cancel(req);
	assert_int_equal(httpc_in_flight(fx->client), 0);
	tv.tv_usec = 400000;
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_false(o.done);

	/* Cancel right after start, before the loop ever ran. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx->port);
	req = httpc_start(fx->client, &(struct httpc_options){.url = url, .timeout_ms = 200},
			  done_cb, &o);
	httpc_cancel(req);
	tv.tv_usec = 100000;
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_false(o.done);

	/* The client still works afterwards. */
	run_one(fx, &(struct httpc_options){.url = url, .timeout_ms = 5000}, &o);
	assert_int_equal(o.status, 200);
	outcome_cleanup(&o);
}

static void
test_cancel_closes_connection(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o = {.fx = fx};

	/* The server must see the connection go away, so a generation stops there. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hold", fx->cutoff_port);
	struct httpc_request *req = httpc_start(
	    fx->client, &(struct httpc_options){.url = url, .timeout_ms = 5000}, done_cb, &o);
	event_base_dispatch(fx->base); /* until the server holds it */
	assert_int_equal(fx->held, 1);
	assert_int_equal(fx->closed, 0);
	httpc_cancel(req);
	event_base_dispatch(fx->base); /* until the server sees the close */
	assert_int_equal(fx->closed, 1);
	assert_false(o.done);
}

/* A callback that cancels a sibling and starts a new request. */
struct chain {
	struct fixture *fx;
	struct httpc_request *sibling;
	struct outcome second;
	bool first_done;
	char url[128];
};

static void
chain_first_cb(const struct httpc_result *r, void *arg)
{
	struct chain *c = arg;
	assert_int_equal(r->status, 200);
	c->first_done = true;
	httpc_cancel(c->sibling);
	c->second.fx = c->fx;
	httpc_start(c->fx->client, &(struct httpc_options){.url = c->url, .timeout_ms = 5000},
		    done_cb, &c->second);
}

static void
never_cb(const struct httpc_result *r, void *arg)
{
	(void)r;
	(void)arg;
	fail_msg("a cancelled request's callback ran");
}

static void
test_callback_reentry(void **state)
{
	struct fixture *fx = *state;
	struct chain c = {.fx = fx};
	char silent[128];

	snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d/echo", fx->port);
	snprintf(silent, sizeof(silent), "http://127.0.0.1:%d/x", fx->silent_port);
	c.sibling = httpc_start(
	    fx->client, &(struct httpc_options){.url = silent, .timeout_ms = 5000}, never_cb, NULL);
	httpc_start(fx->client, &(struct httpc_options){.url = c.url, .timeout_ms = 5000},
		    chain_first_cb, &c);
	event_base_dispatch(fx->base);
	assert_true(c.first_done);
	assert_true(c.second.done);
	assert_int_equal(c.second.status, 200);
	assert_int_equal(httpc_in_flight(fx->client), 0);
	outcome_cleanup(&c.second);
}

/* Two requests that time out together; the first callback cancels the other, which
 * curl has most likely already reported finished in the same batch. */
struct pair {
	struct fixture *fx;
	struct httpc_request *req[2];
	int calls;
};

static void
pair_cb(const struct httpc_result *r, void *arg)
{
	struct pair *p = arg;
	assert_int_equal(r->error, HTTPC_ERR_TIMEOUT);
	p->calls++;
	httpc_cancel(p->req[1]);
	p->req[1] = NULL;
	event_base_loopbreak(p->fx->base);
}

static void
test_cancel_finished_sibling(void **state)
{
	struct fixture *fx = *state;
	struct pair p = {.fx = fx};
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", fx->silent_port);
	p.req[0] = httpc_start(fx->client, &(struct httpc_options){.url = url, .timeout_ms = 200},
			       pair_cb, &p);
	p.req[1] = httpc_start(fx->client, &(struct httpc_options){.url = url, .timeout_ms = 200},
			       never_cb, NULL);
	event_base_dispatch(fx->base);
	struct timeval tv = {0, 300000};
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_int_equal(p.calls, 1);
	assert_int_equal(httpc_in_flight(fx->client), 0);
}

static void
test_closed_mid_reply(void **state)
{
	struct fixture *fx = *state;
	char url[128];
	struct outcome o;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/generate", fx->cutoff_port);
	run_one(fx,
		&(struct httpc_options){
		    .method = "POST", .url = url, .body = "{}", .body_len = 2, .timeout_ms = 5000},
		&o);
	assert_int_equal(o.error, HTTPC_ERR_TRANSPORT);
	assert_int_equal(o.status, 0);
	assert_non_null(o.message);
	outcome_cleanup(&o);
}

static void
test_free_with_requests_in_flight(void **state)
{
	struct fixture *fx = *state;
	char url[128];

	/* Requests in flight (connected, waiting for a reply) and just started: httpc_free
	 * must cancel them all without callbacks and leave nothing registered (ASan/LSan
	 * checks the rest). */
	for (int i = 0; i < 5; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", fx->silent_port);
		httpc_start(fx->client, &(struct httpc_options){.url = url, .timeout_ms = 5000},
			    never_cb, NULL);
	}
	struct timeval tv = {0, 50000};
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	for (int i = 0; i < 5; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx->port);
		httpc_start(fx->client, &(struct httpc_options){.url = url, .timeout_ms = 5000},
			    never_cb, NULL);
	}
	assert_int_equal(httpc_in_flight(fx->client), 10);
	httpc_free(fx->client);
	fx->client = httpc_new(fx->base);
	/* Nothing of the old client may fire. */
	tv.tv_usec = 200000;
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_get_and_post, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_post_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reply_over_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_closes_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callback_reentry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_finished_sibling, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_closed_mid_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_with_requests_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
