/*
 * httpd.h: the HTTP/1.1 server of vramd and ollama-sim, on bufferevents of the one loop.
 *
 * It replaces libevent's evhttp because a daemon that owns the GPUs must not be stalled
 * or exhausted by one client, and every answer it gives must be JSON. So this server
 *   - bounds everything a client sends: the request line (414), the head (431), the body,
 *     refused from its Content-Length before a byte of it is buffered (413), and the time
 *     the head, the body and an idle keep-alive connection may take (slowloris);
 *   - caps connections (503 beyond MAX_CONNECTIONS, derived from RLIMIT_NOFILE less a
 *     reserve) and pauses accepting, logging once per interval, when out of descriptors;
 *   - keeps reading while a request is handled, so a client that hangs up is noticed at
 *     once (a long-poll, a queued job, a stream) instead of when the answer is written;
 *   - answers every error it detects itself as {"error": "..."} with the right status.
 *
 * Ownership: a request belongs to the server until the handler is called; from then on
 * it stays valid until the handler ends it with one of vd_http_req_reply(),
 * vd_http_req_end(), vd_http_req_abort() or vd_http_req_release(), even when the client
 * has gone away in between (replies to a departed client are dropped). The close
 * callback only tells the handler early that nobody listens any more.
 */
#ifndef VRAMD_HTTPD_H
#define VRAMD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct vd_httpd;
struct vd_http_req;

/* Methods as a bit mask. */
#define VD_HTTP_GET	(1 << 0)
#define VD_HTTP_POST	(1 << 1)
#define VD_HTTP_HEAD	(1 << 2)
#define VD_HTTP_PUT	(1 << 3)
#define VD_HTTP_DELETE	(1 << 4)
#define VD_HTTP_OPTIONS (1 << 5)
#define VD_HTTP_PATCH	(1 << 6)

struct vd_httpd_limits {
	size_t max_uri_bytes;	   /* the request target; over it: 414 */
	size_t max_head_bytes;	   /* request line and headers together; over it: 431 */
	size_t max_headers;	   /* header lines; over it: 431 */
	size_t max_body_bytes;	   /* declared or received; over it: 413 before buffering */
	int64_t head_timeout_ms;   /* from the first byte of a request to its blank line */
	int64_t body_timeout_ms;   /* from the end of the head to the last body byte */
	int64_t idle_timeout_ms;   /* a keep-alive connection with no request started */
	int64_t write_timeout_ms;  /* a reply that makes no progress */
	size_t max_connections;	   /* 0: derived from RLIMIT_NOFILE less fd_reserve */
	size_t fd_reserve;	   /* descriptors kept for everything but clients */
	int64_t accept_backoff_ms; /* pause of the listener when out of descriptors */
};

/* Called when the status line of a reply to a request the application handled is
 * written (once per request; not for the errors the server answers itself, nor for a
 * request whose client left first): request counters. */
typedef void vd_httpd_status_cb(struct vd_http_req *req, int status, void *arg);

/* Fills limits with the defaults (the values docs/configuration.md lists). */
void vd_httpd_limits_default(struct vd_httpd_limits *limits);

typedef void vd_httpd_request_cb(struct vd_http_req *req, void *arg);
typedef void vd_http_close_cb(struct vd_http_req *req, void *arg);

struct vd_httpd_stats {
	uint64_t accepted;
	uint64_t refused_busy;	/* over max_connections: 503 */
	uint64_t accept_pauses; /* out of descriptors */
	uint64_t timeouts;	/* head, body, idle or write */
	uint64_t bad_requests;	/* answered 4xx/5xx by the server itself */
	size_t connections;	/* open now */
	size_t max_connections; /* in force */
};

/* A server on base whose every complete request goes to on_request(req, arg). */
struct vd_httpd *vd_httpd_new(struct event_base *base, const struct vd_httpd_limits *limits,
			      vd_httpd_request_cb *on_request, void *arg);
/* Listens on host:port (port 0: any free one). Returns 0 or -errno with *cause set. */
int vd_httpd_listen(struct vd_httpd *s, const char *host, uint16_t port, char **cause);
/*
 * Serves an already connected socket as if it had been accepted on a listener whose
 * address is local ("127.0.0.1:5001"): for sockets handed over by a supervisor, and for
 * tests and fuzzing over a socketpair. The server owns fd from here on.
 */
void vd_httpd_adopt(struct vd_httpd *s, int fd, const char *local);
/* The port of the first listener (after port 0 was chosen), 0 if none. */
uint16_t vd_httpd_port(const struct vd_httpd *s);
void vd_httpd_get_stats(const struct vd_httpd *s, struct vd_httpd_stats *out);
/* Sets the status hook (NULL: none). */
void vd_httpd_on_status(struct vd_httpd *s, vd_httpd_status_cb *cb, void *arg);
/* Closes every connection (running close callbacks) and every listener. */
void vd_httpd_free(struct vd_httpd *s);

/* --- The request (valid as described above) --------------------------------------- */

int vd_http_req_method(const struct vd_http_req *req);		    /* a VD_HTTP_* bit */
const char *vd_http_req_method_name(const struct vd_http_req *req); /* as sent */
const char *vd_http_req_target(const struct vd_http_req *req);	    /* "/path?query", as sent */
const char *vd_http_req_path(const struct vd_http_req *req);	    /* raw, up to '?' */
const char *vd_http_req_query(const struct vd_http_req *req);	    /* after '?', or NULL */
/* The first header of that name (case-insensitive), or NULL; borrowed from req. */
const char *vd_http_req_header(const struct vd_http_req *req, const char *name);
/* The request body, complete (already de-chunked). */
struct evbuffer *vd_http_req_body(struct vd_http_req *req);
/* True once the client went away; replies are then dropped. */
bool vd_http_req_is_gone(const struct vd_http_req *req);
/* The listener's address as host:port of the connection ("127.0.0.1:5001"). */
const char *vd_http_req_local_addr(const struct vd_http_req *req);

/* The application's own pointer for this request (vramd: the caller's API key), NULL
 * until set; the request only carries it, the application owns what it points to. */
void vd_http_req_set_user(struct vd_http_req *req, const void *user);
const void *vd_http_req_user(const struct vd_http_req *req);

/* The route that matched the request, as the router's table spells it ("/api/job/"), for
 * request counters whose labels must stay few; NULL until a router set it. route is
 * borrowed and must outlive the request (a static table). */
void vd_http_req_set_route(struct vd_http_req *req, const char *route);
const char *vd_http_req_route(const struct vd_http_req *req);

/* Sets a reply header (replacing one of the same name). */
void vd_http_req_set_header(struct vd_http_req *req, const char *name, const char *value);
/* Sends a whole reply (Content-Length) and ends the request. */
void vd_http_req_reply(struct vd_http_req *req, int status, const void *body, size_t len);
/* Starts a streamed reply (chunked; close-delimited for HTTP/1.0 clients). */
void vd_http_req_start(struct vd_http_req *req, int status);
/* Sends one piece of a streamed reply. */
void vd_http_req_send(struct vd_http_req *req, const void *data, size_t len);
/* Ends a streamed reply and the request. */
void vd_http_req_end(struct vd_http_req *req);
/* Closes the connection without finishing the reply, and ends the request. */
void vd_http_req_abort(struct vd_http_req *req);
/* Ends a request whose client has gone (nothing is sent). */
void vd_http_req_release(struct vd_http_req *req);
/* Bytes of this reply not yet taken by the kernel plus what the kernel has not sent. */
size_t vd_http_req_backlog(const struct vd_http_req *req);
/* Bounds what the kernel buffers for this connection (SO_SNDBUF). */
void vd_http_req_set_sndbuf(struct vd_http_req *req, int bytes);
/* Called once if the client goes away before the request is ended. */
void vd_http_req_on_close(struct vd_http_req *req, vd_http_close_cb *cb, void *arg);

/* The standard reason phrase for a status ("Not Found"). */
const char *vd_http_reason(int status);

#endif
