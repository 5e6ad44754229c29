/*
 * httpd.c: vramd's HTTP/1.1 server (see httpd.h for why it exists and who owns what).
 *
 * One struct vd_http_conn per client socket, one bufferevent each. A connection reads a
 * request head line by line (every line bounded), then its body (Content-Length or
 * chunked, bounded by max_body_bytes before anything is buffered), then hands the request
 * to the server's callback and keeps reading only to notice a hang-up. When the request
 * ends the connection goes back to reading the next one (keep-alive) or closes.
 *
 * One timer per connection guards whichever phase it is in: idle (no byte of a request
 * yet), head, body, and the lingering close after an error reply. The bufferevent's own
 * write timeout guards replies that make no progress.
 *
 * Errors the server finds itself are answered as {"error": "..."} with Connection:
 * close, then the connection lingers briefly, discarding input, so the client reads the
 * reply instead of a reset.
 *
 * Invariants: conn->req is the one request being read or handled; a handled request
 * whose connection closes gets req->conn = NULL and lives on until its handler ends it.
 * Everything runs on the loop thread.
 */
#include "httpd.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SIOCOUTQ
#define SIOCOUTQ TIOCOUTQ
#endif

#define HTTPD_LINGER_MS	   2000
#define HTTPD_LINGER_BYTES (1024 * 1024)
#define HTTPD_PAUSE_LOG_MS 10000
#define HTTPD_MAX_METHOD   32
#define HTTPD_CHUNK_LINE   256

enum httpd_state {
	HTTPD_IDLE,	  /* waiting for the first byte of a request */
	HTTPD_HEAD,	  /* reading the request line and headers */
	HTTPD_BODY,	  /* reading a Content-Length body */
	HTTPD_CHUNK_SIZE, /* reading a chunk-size line */
	HTTPD_CHUNK_DATA, /* reading chunk data */
	HTTPD_CHUNK_CRLF, /* reading the CRLF after chunk data */
	HTTPD_TRAILER,	  /* reading trailer lines after the last chunk */
	HTTPD_HANDLING,	  /* the request is with its handler */
	HTTPD_CLOSING,	  /* flushing the last reply, then close */
	HTTPD_LINGER,	  /* error reply sent: discard input for a while, then close */
};

struct vd_http_hdr {
	char *name;
	char *value;
};

struct httpd_listener {
	struct httpd_listener *next;
	struct vd_httpd *s;
	struct evconnlistener *lev;
	char local[64];
	uint16_t port;
};

struct vd_http_conn {
	LIST_ENTRY(vd_http_conn) entry;
	struct vd_httpd *s;
	struct bufferevent *bev;
	struct event *timer; /* idle, head, body or linger, by state */
	struct event *kick;  /* reads the next pipelined request after a reply */
	const char *local;   /* the listener's host:port, borrowed */
	enum httpd_state state;
	struct vd_http_req *req;
	size_t head_bytes;
	uint64_t body_left;
	size_t linger_bytes;
};

struct vd_http_req {
	struct vd_http_conn *conn; /* NULL once the client is gone */
	struct vd_httpd *s;
	int method;
	char method_name[HTTPD_MAX_METHOD + 1];
	char *target;
	char *path;
	char *query;
	int minor; /* HTTP/1.minor */
	struct vd_http_hdr *in;
	size_t nin;
	struct vd_http_hdr *out;
	size_t nout;
	struct evbuffer *body;
	bool chunked_in;
	bool keep_alive;
	bool started;	  /* a streamed reply's head was sent */
	bool chunked_out; /* the streamed reply uses chunked framing */
	bool handled;	  /* given to the handler */
	vd_http_close_cb *close_cb;
	void *close_arg;
	const void *user;  /* vd_http_req_set_user */
	const char *route; /* vd_http_req_set_route */
	char local[64];
};

struct vd_httpd {
	struct event_base *base;
	struct vd_httpd_limits lim;
	vd_httpd_request_cb *on_request;
	void *arg;
	struct httpd_listener *listeners;
	struct event *resume_timer;
	bool paused;
	int64_t pause_logged_ms;
	uint64_t pauses_unlogged;
	LIST_HEAD(, vd_http_conn) conns;
	struct vd_httpd_stats stats;
	vd_httpd_status_cb *on_status; /* vd_httpd_on_status */
	void *status_arg;
	char adopted_local[64]; /* the local address of adopted sockets */
};

static void httpd_conn_free(struct vd_http_conn *c);
static void httpd_conn_process(struct vd_http_conn *c);

void
vd_httpd_limits_default(struct vd_httpd_limits *limits)
{
	*limits = (struct vd_httpd_limits){
	    .max_uri_bytes = 8 * 1024,
	    .max_head_bytes = 64 * 1024,
	    .max_headers = 100,
	    .max_body_bytes = 8 * 1024 * 1024,
	    .head_timeout_ms = 10000,
	    .body_timeout_ms = 60000,
	    .idle_timeout_ms = 60000,
	    .write_timeout_ms = 60000,
	    .max_connections = 0,
	    .fd_reserve = 64,
	    .accept_backoff_ms = 250,
	};
}

const char *
vd_http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 507:
		return "Insufficient Storage";
	default:
		return "Status";
	}
}

/* --- Timers ------------------------------------------------------------------------ */

static void
httpd_arm(struct vd_http_conn *c, int64_t ms)
{
	if (ms <= 0) {
		event_del(c->timer);
		return;
	}
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	event_add(c->timer, &tv);
}

/* --- Requests ---------------------------------------------------------------------- */

static void
httpd_req_free(struct vd_http_req *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nin; i++) {
		free(r->in[i].name);
		free(r->in[i].value);
	}
	for (size_t i = 0; i < r->nout; i++) {
		free(r->out[i].name);
		free(r->out[i].value);
	}
	free(r->in);
	free(r->out);
	free(r->target);
	free(r->path);
	free(r->query);
	if (r->body != NULL)
		evbuffer_free(r->body);
	free(r);
}

int
vd_http_req_method(const struct vd_http_req *req)
{
	return req->method;
}

const char *
vd_http_req_method_name(const struct vd_http_req *req)
{
	return req->method_name;
}

const char *
vd_http_req_target(const struct vd_http_req *req)
{
	return req->target;
}

const char *
vd_http_req_path(const struct vd_http_req *req)
{
	return req->path;
}

const char *
vd_http_req_query(const struct vd_http_req *req)
{
	return req->query;
}

static const char *
httpd_hdr_find(const struct vd_http_hdr *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

const char *
vd_http_req_header(const struct vd_http_req *req, const char *name)
{
	return httpd_hdr_find(req->in, req->nin, name);
}

struct evbuffer *
vd_http_req_body(struct vd_http_req *req)
{
	return req->body;
}

bool
vd_http_req_is_gone(const struct vd_http_req *req)
{
	return req->conn == NULL;
}

const char *
vd_http_req_local_addr(const struct vd_http_req *req)
{
	return req->local;
}

void
vd_http_req_set_user(struct vd_http_req *req, const void *user)
{
	req->user = user;
}

const void *
vd_http_req_user(const struct vd_http_req *req)
{
	return req->user;
}

void
vd_http_req_set_route(struct vd_http_req *req, const char *route)
{
	req->route = route;
}

const char *
vd_http_req_route(const struct vd_http_req *req)
{
	return req->route;
}

void
vd_http_req_set_header(struct vd_http_req *req, const char *name, const char *value)
{
	for (size_t i = 0; i < req->nout; i++) {
		if (strcasecmp(req->out[i].name, name) == 0) {
			free(req->out[i].value);
			req->out[i].value = xstrdup(value);
			return;
		}
	}
	req->out = xreallocarray(req->out, req->nout + 1, sizeof(*req->out));
	req->out[req->nout].name = xstrdup(name);
	req->out[req->nout].value = xstrdup(value);
	req->nout++;
}

void
vd_http_req_on_close(struct vd_http_req *req, vd_http_close_cb *cb, void *arg)
{
	req->close_cb = cb;
	req->close_arg = arg;
}

/* The Date header's value, formatted once per second. */
static const char *
httpd_date(void)
{
	static char text[40];
	static time_t cached = -1;
	time_t now = time(NULL);
	if (now != cached) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		cached = now;
	}
	return text;
}

/* Writes the status line and headers; length < 0 means streamed. */
static void
httpd_write_head(struct vd_http_req *req, int status, int64_t length, bool close)
{
	struct evbuffer *out = bufferevent_get_output(req->conn->bev);
	if (req->handled && req->s->on_status != NULL)
		req->s->on_status(req, status, req->s->status_arg);
	evbuffer_add_printf(out, "HTTP/1.%d %d %s\r\nDate: %s\r\n", req->minor, status,
			    vd_http_reason(status), httpd_date());
	for (size_t i = 0; i < req->nout; i++)
		evbuffer_add_printf(out, "%s: %s\r\n", req->out[i].name, req->out[i].value);
	if (length >= 0)
		evbuffer_add_printf(out, "Content-Length: %lld\r\n", (long long)length);
	else if (req->chunked_out)
		evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
	if (close)
		evbuffer_add(out, "Connection: close\r\n", 19);
	evbuffer_add(out, "\r\n", 2);
}

/* The request is over on a live connection: go on with the next one or close. */
static void
httpd_req_done(struct vd_http_req *req, bool close)
{
	struct vd_http_conn *c = req->conn;
	c->req = NULL;
	httpd_req_free(req);
	if (close) {
		c->state = HTTPD_CLOSING;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			httpd_conn_free(c);
		return;
	}
	c->state = HTTPD_IDLE;
	c->head_bytes = 0;
	bufferevent_enable(c->bev, EV_READ);
	httpd_arm(c, c->s->lim.idle_timeout_ms);
	event_active(c->kick, 0, 0);
}

void
vd_http_req_reply(struct vd_http_req *req, int status, const void *body, size_t len)
{
	if (req->conn == NULL) {
		httpd_req_free(req);
		return;
	}
	bool close = !req->keep_alive;
	httpd_write_head(req, status, (int64_t)len, close);
	if (req->method != VD_HTTP_HEAD && len > 0)
		evbuffer_add(bufferevent_get_output(req->conn->bev), body, len);
	httpd_req_done(req, close);
}

void
vd_http_req_start(struct vd_http_req *req, int status)
{
	if (req->conn == NULL || req->started)
		return;
	req->started = true;
	/* HTTP/1.0 has no chunks: the end of the stream is the end of the connection. */
	req->chunked_out = req->minor >= 1;
	if (!req->chunked_out)
		req->keep_alive = false;
	httpd_write_head(req, status, -1, !req->keep_alive);
	/* A stream is with its handler for as long as it likes: no write timeout. */
}

void
vd_http_req_send(struct vd_http_req *req, const void *data, size_t len)
{
	if (req->conn == NULL || len == 0 || req->method == VD_HTTP_HEAD)
		return;
	struct evbuffer *out = bufferevent_get_output(req->conn->bev);
	if (req->chunked_out) {
		evbuffer_add_printf(out, "%zx\r\n", len);
		evbuffer_add(out, data, len);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add(out, data, len);
	}
}

void
vd_http_req_end(struct vd_http_req *req)
{
	if (req->conn == NULL) {
		httpd_req_free(req);
		return;
	}
	if (!req->started)
		vd_http_req_start(req, 200);
	if (req->chunked_out && req->method != VD_HTTP_HEAD)
		evbuffer_add(bufferevent_get_output(req->conn->bev), "0\r\n\r\n", 5);
	httpd_req_done(req, !req->keep_alive);
}

void
vd_http_req_abort(struct vd_http_req *req)
{
	struct vd_http_conn *c = req->conn;
	if (c != NULL) {
		req->close_cb = NULL;
		c->req = NULL;
		req->conn = NULL;
		httpd_conn_free(c);
	}
	httpd_req_free(req);
}

void
vd_http_req_release(struct vd_http_req *req)
{
	vd_http_req_abort(req);
}

size_t
vd_http_req_backlog(const struct vd_http_req *req)
{
	if (req->conn == NULL)
		return 0;
	size_t n = evbuffer_get_length(bufferevent_get_output(req->conn->bev));
	int queued = 0;
	if (ioctl(bufferevent_getfd(req->conn->bev), SIOCOUTQ, &queued) == 0 && queued > 0)
		n += (size_t)queued;
	return n;
}

void
vd_http_req_set_sndbuf(struct vd_http_req *req, int bytes)
{
	if (req->conn == NULL)
		return;
	(void)setsockopt(bufferevent_getfd(req->conn->bev), SOL_SOCKET, SO_SNDBUF, &bytes,
			 sizeof(bytes));
}

/* --- Connections ------------------------------------------------------------------- */

static void
httpd_resume(struct vd_httpd *s)
{
	if (!s->paused)
		return;
	s->paused = false;
	event_del(s->resume_timer);
	for (struct httpd_listener *l = s->listeners; l != NULL; l = l->next)
		evconnlistener_enable(l->lev);
}

static void
httpd_conn_free(struct vd_http_conn *c)
{
	struct vd_httpd *s = c->s;
	struct vd_http_req *req = c->req;
	c->req = NULL;
	if (req != NULL) {
		if (req->handled) {
			/* The handler owns it until it ends it; tell it nobody listens. */
			req->conn = NULL;
			vd_http_close_cb *cb = req->close_cb;
			req->close_cb = NULL;
			if (cb != NULL)
				cb(req, req->close_arg);
		} else {
			httpd_req_free(req);
		}
	}
	LIST_REMOVE(c, entry);
	s->stats.connections--;
	event_free(c->timer);
	event_free(c->kick);
	bufferevent_free(c->bev);
	free(c);
	httpd_resume(s); /* a descriptor is free again */
}

/* The server's own error reply, then a lingering close. */
static void httpd_conn_fail(struct vd_http_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
httpd_conn_fail(struct vd_http_conn *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->s->stats.bad_requests++;
	httpd_req_free(c->req);
	c->req = NULL;
	/* Messages are ASCII without quotes or backslashes, so no JSON escaping is needed. */
	char body[640];
	int len = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json; "
			    "charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			    status, vd_http_reason(status), httpd_date(), len, body);
	c->state = HTTPD_LINGER;
	c->linger_bytes = 0;
	httpd_arm(c, HTTPD_LINGER_MS);
}

static bool
httpd_is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int
httpd_method_bit(const char *name)
{
	static const struct {
		const char *name;
		int bit;
	} methods[] = {{"GET", VD_HTTP_GET},	   {"POST", VD_HTTP_POST},
		       {"HEAD", VD_HTTP_HEAD},	   {"PUT", VD_HTTP_PUT},
		       {"DELETE", VD_HTTP_DELETE}, {"OPTIONS", VD_HTTP_OPTIONS},
		       {"PATCH", VD_HTTP_PATCH}};
	for (size_t i = 0; i < VD_ARRAY_LEN(methods); i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

/* Parses "METHOD SP target SP HTTP/1.x". Returns 0 or an HTTP status. */
static int
httpd_parse_request_line(struct vd_http_conn *c, char *line, const char **why)
{
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL) {
		*why = "malformed request line";
		return 400;
	}
	*sp1 = *sp2 = '\0';
	const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
	size_t mlen = strlen(method);
	if (mlen == 0 || mlen > HTTPD_MAX_METHOD) {
		*why = "malformed request method";
		return 400;
	}
	for (size_t i = 0; i < mlen; i++) {
		if (!httpd_is_tchar((unsigned char)method[i])) {
			*why = "malformed request method";
			return 400;
		}
	}
	if (strlen(target) > c->s->lim.max_uri_bytes) {
		*why = NULL;
		httpd_conn_fail(c, 414, "request target too long: the limit is %zu bytes",
				c->s->lim.max_uri_bytes);
		return 414;
	}
	if (target[0] != '/' && strcmp(target, "*") != 0) {
		*why = "request target must be an absolute path";
		return 400;
	}
	for (const char *p = target; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why = "request target contains a control character";
			return 400;
		}
	}
	if (strncmp(version, "HTTP/1.", 7) != 0 || (version[7] != '0' && version[7] != '1') ||
	    version[8] != '\0') {
		*why = "unsupported HTTP version: only HTTP/1.0 and HTTP/1.1 are served";
		return 505;
	}
	struct vd_http_req *r = xcalloc(1, sizeof(*r));
	r->s = c->s;
	r->conn = c;
	vd_strlcpy(r->method_name, method, sizeof(r->method_name));
	r->method = httpd_method_bit(method);
	r->target = xstrdup(target);
	const char *q = strchr(target, '?');
	r->path = q != NULL ? xstrndup(target, (size_t)(q - target)) : xstrdup(target);
	r->query = q != NULL ? xstrdup(q + 1) : NULL;
	r->minor = version[7] - '0';
	r->body = evbuffer_new();
	vd_strlcpy(r->local, c->local, sizeof(r->local));
	c->req = r;
	return 0;
}

/* Parses one header line into the request. Returns 0 or an HTTP status. */
static int
httpd_parse_header(struct vd_http_conn *c, char *line, const char **why)
{
	struct vd_http_req *r = c->req;
	if (line[0] == ' ' || line[0] == '\t') {
		*why = "obsolete header line folding is not supported";
		return 400;
	}
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line) {
		*why = "malformed header line";
		return 400;
	}
	for (char *p = line; p < colon; p++) {
		if (!httpd_is_tchar((unsigned char)*p)) {
			*why = "malformed header name";
			return 400;
		}
	}
	if (r->nin >= c->s->lim.max_headers) {
		*why = "too many header lines";
		return 431;
	}
	*colon = '\0';
	char *value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t vlen = strlen(value);
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		value[--vlen] = '\0';
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)value[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			*why = "header value contains a control character";
			return 400;
		}
	}
	r->in = xreallocarray(r->in, r->nin + 1, sizeof(*r->in));
	r->in[r->nin].name = xstrdup(line);
	r->in[r->nin].value = xstrdup(value);
	r->nin++;
	return 0;
}

static bool
httpd_token_in_list(const char *list, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = list; p != NULL && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncasecmp(p, token, n) == 0 &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* Hands a complete request to the server's callback. */
static void
httpd_dispatch(struct vd_http_conn *c)
{
	struct vd_http_req *r = c->req;
	c->state = HTTPD_HANDLING;
	event_del(c->timer);
	r->handled = true;
	c->s->on_request(r, c->s->arg);
}

/* The head is complete: decide how the body is framed. Returns 0 or an HTTP status with
 * *why to answer, or with *why NULL when the answer was sent already. */
static int
httpd_head_done(struct vd_http_conn *c, const char **why)
{
	struct vd_http_req *r = c->req;
	const struct vd_httpd_limits *lim = &c->s->lim;
	const char *conn_hdr = vd_http_req_header(r, "Connection");
	r->keep_alive = r->minor >= 1 ? !httpd_token_in_list(conn_hdr, "close")
				      : httpd_token_in_list(conn_hdr, "keep-alive");
	if (r->minor >= 1 && vd_http_req_header(r, "Host") == NULL) {
		*why = "missing required Host header";
		return 400;
	}
	const char *te = vd_http_req_header(r, "Transfer-Encoding");
	const char *cl = NULL;
	for (size_t i = 0; i < r->nin; i++) {
		if (strcasecmp(r->in[i].name, "Content-Length") != 0)
			continue;
		if (cl != NULL && strcmp(cl, r->in[i].value) != 0) {
			*why = "conflicting Content-Length headers";
			return 400;
		}
		cl = r->in[i].value;
	}
	c->body_left = 0;
	if (te != NULL) {
		if (cl != NULL) {
			*why = "both Transfer-Encoding and Content-Length are present";
			return 400;
		}
		if (strcasecmp(te, "chunked") != 0) {
			*why = "unsupported Transfer-Encoding: only chunked is accepted";
			return 501;
		}
		r->chunked_in = true;
	} else if (cl != NULL) {
		if (*cl < '0' || *cl > '9' || strlen(cl) > 19) {
			*why = "malformed Content-Length";
			return 400;
		}
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);
		if (*end != '\0') {
			*why = "malformed Content-Length";
			return 400;
		}
		if (n > lim->max_body_bytes) {
			*why = NULL; /* answered here, with the limit in the message */
			httpd_conn_fail(c, 413, "request body too large: the limit is %zu bytes",
					lim->max_body_bytes);
			return 413;
		}
		c->body_left = n;
	}
	const char *expect = vd_http_req_header(r, "Expect");
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0) {
			*why = "unsupported Expect header";
			return 417;
		}
		if ((r->chunked_in || c->body_left > 0) && r->minor >= 1) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			evbuffer_add(bufferevent_get_output(c->bev), cont, sizeof(cont) - 1);
		}
	}
	if (r->chunked_in)
		c->state = HTTPD_CHUNK_SIZE;
	else if (c->body_left > 0)
		c->state = HTTPD_BODY;
	else
		return 0;
	httpd_arm(c, lim->body_timeout_ms);
	return 0;
}

/* Takes one line (without its end) from the input if a whole one is there. Returns 1 and
 * a new string, 0 when the line is not complete, or -1 when it is longer than max. */
static int
httpd_read_line(struct vd_http_conn *c, size_t max, char **out)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t eol_len = 0;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0)
		return evbuffer_get_length(in) > max ? -1 : 0;
	if ((size_t)eol.pos > max)
		return -1;
	char *line = xmalloc((size_t)eol.pos + 1);
	evbuffer_remove(in, line, (size_t)eol.pos);
	line[eol.pos] = '\0';
	evbuffer_drain(in, eol_len);
	c->head_bytes += (size_t)eol.pos + eol_len;
	*out = line;
	return 1;
}

/* Reads the head. Returns true when the loop may go on (state changed). */
static bool
httpd_step_head(struct vd_http_conn *c)
{
	const struct vd_httpd_limits *lim = &c->s->lim;
	size_t room = lim->max_head_bytes > c->head_bytes ? lim->max_head_bytes - c->head_bytes : 0;
	char *line = NULL;
	int rc = httpd_read_line(c, room, &line);
	if (rc == 0)
		return false;
	if (rc < 0) {
		if (c->req == NULL)
			httpd_conn_fail(c, 414, "request line too long: the limit is %zu bytes",
					lim->max_uri_bytes);
		else
			httpd_conn_fail(c, 431, "request head too large: the limit is %zu bytes",
					lim->max_head_bytes);
		return false;
	}
	const char *why = NULL;
	int status = 0;
	if (c->req == NULL) {
		if (line[0] != '\0') /* blank lines before a request are allowed */
			status = httpd_parse_request_line(c, line, &why);
	} else if (line[0] != '\0') {
		status = httpd_parse_header(c, line, &why);
	} else {
		status = httpd_head_done(c, &why);
		if (status == 0 && c->state == HTTPD_HEAD) {
			free(line);
			httpd_dispatch(c);
			return false;
		}
	}
	free(line);
	if (status != 0) {
		if (why != NULL)
			httpd_conn_fail(c, status, "%s", why);
		return false;
	}
	return true;
}

/* Reads body bytes (plain or chunk data). Returns true when the loop may go on. */
static bool
httpd_step_body(struct vd_http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return false;
	size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
	evbuffer_remove_buffer(in, c->req->body, n);
	c->body_left -= n;
	if (c->body_left > 0)
		return false;
	if (c->state == HTTPD_CHUNK_DATA) {
		c->state = HTTPD_CHUNK_CRLF;
		return true;
	}
	httpd_dispatch(c);
	return false;
}

/* Reads a chunk-size line, the CRLF after data, or a trailer line. */
static bool
httpd_step_chunk_line(struct vd_http_conn *c)
{
	char *line = NULL;
	int rc = httpd_read_line(c, HTTPD_CHUNK_LINE, &line);
	if (rc == 0)
		return false;
	if (rc < 0) {
		httpd_conn_fail(c, 400, "malformed chunked body");
		return false;
	}
	bool ok = true;
	if (c->state == HTTPD_CHUNK_SIZE) {
		char *end;
		errno = 0;
		unsigned long long size = strtoull(line, &end, 16);
		ok = end != line && errno == 0 && (*end == '\0' || *end == ';');
		size_t have = evbuffer_get_length(c->req->body);
		if (ok && size > c->s->lim.max_body_bytes - have) {
			free(line);
			httpd_conn_fail(c, 413, "request body too large: the limit is %zu bytes",
					c->s->lim.max_body_bytes);
			return false;
		}
		c->body_left = size;
		c->state = size > 0 ? HTTPD_CHUNK_DATA : HTTPD_TRAILER;
	} else if (c->state == HTTPD_CHUNK_CRLF) {
		ok = line[0] == '\0';
		c->state = HTTPD_CHUNK_SIZE;
	} else if (line[0] == '\0') { /* HTTPD_TRAILER: the blank line ends the body */
		free(line);
		httpd_dispatch(c);
		return false;
	} else if (c->head_bytes > c->s->lim.max_head_bytes) {
		ok = false;
	}
	free(line);
	if (!ok)
		httpd_conn_fail(c, 400, "malformed chunked body");
	return ok;
}

static void
httpd_conn_process(struct vd_http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	for (;;) {
		switch (c->state) {
		case HTTPD_IDLE:
			if (evbuffer_get_length(in) == 0)
				return;
			c->state = HTTPD_HEAD;
			httpd_arm(c, c->s->lim.head_timeout_ms);
			break;
		case HTTPD_HEAD:
			if (!httpd_step_head(c))
				return;
			break;
		case HTTPD_BODY:
		case HTTPD_CHUNK_DATA:
			if (!httpd_step_body(c))
				return;
			break;
		case HTTPD_CHUNK_SIZE:
		case HTTPD_CHUNK_CRLF:
		case HTTPD_TRAILER:
			if (!httpd_step_chunk_line(c))
				return;
			break;
		case HTTPD_HANDLING:
			/* Pipelined bytes wait; past a head's worth stop reading altogether. */
			if (evbuffer_get_length(in) > c->s->lim.max_head_bytes)
				bufferevent_disable(c->bev, EV_READ);
			return;
		case HTTPD_CLOSING:
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		case HTTPD_LINGER:
			c->linger_bytes += evbuffer_get_length(in);
			evbuffer_drain(in, evbuffer_get_length(in));
			if (c->linger_bytes > HTTPD_LINGER_BYTES)
				httpd_conn_free(c);
			return;
		}
	}
}

static void
httpd_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	httpd_conn_process(arg);
}

static void
httpd_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	httpd_conn_process(arg);
}

static void
httpd_write_cb(struct bufferevent *bev, void *arg)
{
	struct vd_http_conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->state == HTTPD_CLOSING)
		httpd_conn_free(c);
	else if (c->state == HTTPD_LINGER)
		shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void
httpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct vd_http_conn *c = arg;
	if (what & BEV_EVENT_TIMEOUT)
		c->s->stats.timeouts++;
	/* EOF, an error or a stalled write: the client is gone (as Go's server decides). */
	httpd_conn_free(c);
}

static void
httpd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct vd_http_conn *c = arg;
	switch (c->state) {
	case HTTPD_HEAD:
		c->s->stats.timeouts++;
		httpd_conn_fail(c, 408, "timed out reading the request head after %lld ms",
				(long long)c->s->lim.head_timeout_ms);
		break;
	case HTTPD_BODY:
	case HTTPD_CHUNK_SIZE:
	case HTTPD_CHUNK_DATA:
	case HTTPD_CHUNK_CRLF:
	case HTTPD_TRAILER:
		c->s->stats.timeouts++;
		httpd_conn_fail(c, 408, "timed out reading the request body after %lld ms",
				(long long)c->s->lim.body_timeout_ms);
		break;
	case HTTPD_IDLE:
		c->s->stats.timeouts++;
		httpd_conn_free(c);
		break;
	default:
		httpd_conn_free(c);
		break;
	}
}

/* Over the connection cap: a 503 written straight to the socket, then close. */
static void
httpd_refuse_busy(struct vd_httpd *s, evutil_socket_t fd)
{
	char reply[512];
	char body[160];
	int blen = snprintf(body, sizeof(body),
			    "{\"error\":\"too many connections: the limit is %zu "
			    "(MAX_CONNECTIONS); try again later\"}",
			    s->stats.max_connections);
	int len = snprintf(reply, sizeof(reply),
			   "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; "
			   "charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: "
			   "close\r\n\r\n%s",
			   blen, body);
	char sink[4096];
	(void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
	(void)send(fd, reply, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	close(fd);
	s->stats.refused_busy++;
}

static void
httpd_conn_new(struct vd_httpd *s, evutil_socket_t fd, const char *local)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	struct vd_http_conn *c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->local = local;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(s->base, httpd_timer_cb, c);
	c->kick = event_new(s->base, -1, 0, httpd_kick_cb, c);
	c->state = HTTPD_IDLE;
	bufferevent_setcb(c->bev, httpd_read_cb, httpd_write_cb, httpd_event_cb, c);
	int64_t wms = s->lim.write_timeout_ms;
	struct timeval wtv = {(time_t)(wms / 1000), (suseconds_t)((wms % 1000) * 1000)};
	bufferevent_set_timeouts(c->bev, NULL, wms > 0 ? &wtv : NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&s->conns, c, entry);
	s->stats.connections++;
	s->stats.accepted++;
	httpd_arm(c, s->lim.idle_timeout_ms);
}

static void
httpd_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
		void *arg)
{
	(void)lev;
	(void)sa;
	(void)salen;
	struct httpd_listener *l = arg;
	struct vd_httpd *s = l->s;
	if (s->stats.connections >= s->stats.max_connections) {
		httpd_refuse_busy(s, fd);
		return;
	}
	httpd_conn_new(s, fd, l->local);
}

void
vd_httpd_adopt(struct vd_httpd *s, int fd, const char *local)
{
	vd_strlcpy(s->adopted_local, local, sizeof(s->adopted_local));
	httpd_conn_new(s, fd, s->adopted_local);
}

static void
httpd_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	httpd_resume(arg);
}

/* accept() failed for a reason other than a retriable one: usually out of descriptors.
 * Pause every listener instead of spinning on the readable socket. */
static void
httpd_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	struct httpd_listener *l = arg;
	struct vd_httpd *s = l->s;
	int err = EVUTIL_SOCKET_ERROR();
	s->stats.accept_pauses++;
	s->pauses_unlogged++;
	int64_t now = vd_now_mono_ms();
	if (s->pause_logged_ms == 0 || now - s->pause_logged_ms >= HTTPD_PAUSE_LOG_MS) {
		vd_warn(API,
			"accept failed (%s) with %zu connections open; pausing new connections "
			"for %lld ms (%llu pauses since the last message)",
			strerror(err), s->stats.connections, (long long)s->lim.accept_backoff_ms,
			(unsigned long long)s->pauses_unlogged);
		s->pause_logged_ms = now;
		s->pauses_unlogged = 0;
	}
	if (s->paused)
		return;
	s->paused = true;
	for (struct httpd_listener *it = s->listeners; it != NULL; it = it->next)
		evconnlistener_disable(it->lev);
	struct timeval tv = {(time_t)(s->lim.accept_backoff_ms / 1000),
			     (suseconds_t)((s->lim.accept_backoff_ms % 1000) * 1000)};
	evtimer_add(s->resume_timer, &tv);
}

static size_t
httpd_max_connections(const struct vd_httpd_limits *lim)
{
	size_t limit = lim->max_connections;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t fds = (size_t)rl.rlim_cur;
		size_t usable = fds > lim->fd_reserve + 8 ? fds - lim->fd_reserve : 8;
		if (limit == 0 || limit > usable)
			limit = usable;
	}
	return limit > 0 ? limit : 1024;
}

struct vd_httpd *
vd_httpd_new(struct event_base *base, const struct vd_httpd_limits *limits,
	     vd_httpd_request_cb *on_request, void *arg)
{
	struct vd_httpd *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->lim = *limits;
	s->on_request = on_request;
	s->arg = arg;
	s->resume_timer = evtimer_new(base, httpd_resume_cb, s);
	s->stats.max_connections = httpd_max_connections(limits);
	LIST_INIT(&s->conns);
	return s;
}

int
vd_httpd_listen(struct vd_httpd *s, const char *host, uint16_t port, char **cause)
{
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
					.ai_socktype = SOCK_STREAM,
					.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG};
	struct evutil_addrinfo *ai = NULL;
	char portstr[8];
	snprintf(portstr, sizeof(portstr), "%u", port);
	int gai = evutil_getaddrinfo(host, portstr, &hints, &ai);
	if (gai != 0)
		return vd_fail(cause, -EINVAL, "cannot resolve listen address %s: %s", host,
			       evutil_gai_strerror(gai));
	struct httpd_listener *l = xcalloc(1, sizeof(*l));
	l->s = s;
	l->lev = evconnlistener_new_bind(s->base, httpd_accept_cb, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
					     LEV_OPT_CLOSE_ON_EXEC,
					 128, ai->ai_addr, (int)ai->ai_addrlen);
	int err = errno;
	evutil_freeaddrinfo(ai);
	if (l->lev == NULL) {
		free(l);
		return vd_fail(cause, -EADDRINUSE, "cannot listen on %s:%u: %s", host, port,
			       strerror(err));
	}
	evconnlistener_set_error_cb(l->lev, httpd_accept_error_cb);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	evutil_socket_t fd = evconnlistener_get_fd(l->lev);
	l->port = port;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(l->local, sizeof(l->local), "%s:%u", host, l->port);
	struct httpd_listener **tail = &s->listeners;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = l;
	return 0;
}

uint16_t
vd_httpd_port(const struct vd_httpd *s)
{
	return s->listeners != NULL ? s->listeners->port : 0;
}

void
vd_httpd_get_stats(const struct vd_httpd *s, struct vd_httpd_stats *out)
{
	*out = s->stats;
}

void
vd_httpd_on_status(struct vd_httpd *s, vd_httpd_status_cb *cb, void *arg)
{
	s->on_status = cb;
	s->status_arg = arg;
}

void
vd_httpd_free(struct vd_httpd *s)
{
	if (s == NULL)
		return;
	while (s->listeners != NULL) {
		struct httpd_listener *l = s->listeners;
		s->listeners = l->next;
		evconnlistener_free(l->lev);
		free(l);
	}
	s->paused = false;
	while (!LIST_EMPTY(&s->conns))
		httpd_conn_free(LIST_FIRST(&s->conns));
	event_free(s->resume_timer);
	free(s);
}
