/*
 * http-util.h: helpers for the HTTP servers (httpd.h) of vramd and ollama-sim: a route
 * table, JSON replies, {"error": ...} replies, and reading a request body under a cap.
 */
#ifndef VRAMD_HTTP_UTIL_H
#define VRAMD_HTTP_UTIL_H

#include <jansson.h>

/* Significant digits of the reals vramd writes in JSON (JSON_REAL_PRECISION): enough for
 * every value set or measured, short enough that 0.8 prints as 0.8. */
#define VD_JSON_REAL_DIGITS 15
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpd.h"

struct vd_buf;

typedef void vd_http_handler_cb(struct vd_http_req *req, const char *path, void *arg);

struct vd_http_route {
	int methods;	  /* VD_HTTP_* mask */
	const char *path; /* exact path, or a prefix when it ends in '/' and prefix is set */
	bool prefix;	  /* match path as a prefix (the handler parses the rest) */
	vd_http_handler_cb *handler;
	unsigned flags; /* the application's own bits (vramd: API_ROUTE_*), for admit */
};

/* Asked before a matched route's handler runs: returns true to let it run, or answers
 * the request itself and returns false (vramd: who may call the route). */
typedef bool vd_http_admit_cb(struct vd_http_req *req, const struct vd_http_route *route,
			      void *arg);

struct vd_http_router {
	const struct vd_http_route *routes;
	size_t nroutes;
	vd_http_handler_cb *not_found;		/* no route has this path */
	vd_http_handler_cb *method_not_allowed; /* a route has this path, not this method */
	vd_http_admit_cb *admit;		/* NULL: every matched route runs */
	void *arg;				/* passed to every handler and to admit */
};

/* A vd_httpd_request_cb: arg is a struct vd_http_router *. Matches the decoded path
 * against the table and calls the handler once admit agrees (404 and 405 with Allow when
 * no route matches). */
void vd_http_router_cb(struct vd_http_req *req, void *arg);

/*
 * Copies the request body into out (initialised by the caller with its cap).
 * Returns 0, or -E2BIG when the body is over the cap.
 */
int vd_http_read_body(struct vd_http_req *req, struct vd_buf *out);

/*
 * Parses the request body as a JSON object no larger than cap bytes. On failure returns
 * the HTTP status to answer (400 for empty/malformed/not an object, 413 for too large)
 * and sets *cause to a clear message the caller frees; on success returns 0 and *out
 * holds a new reference.
 */
int vd_http_parse_json_object(struct vd_http_req *req, size_t cap, json_t **out, char **cause);

/*
 * The host name of a Host header or an authority ("[::1]:5001" -> "::1",
 * "localhost:5001" -> "localhost"). Returns false when it is malformed or too long.
 */
bool vd_http_host_name(const char *authority, char *out, size_t size);

/* Value of query parameter name (decoded, caller frees), or NULL if absent. */
char *vd_http_query_param(struct vd_http_req *req, const char *name);
/*
 * An optional integer query parameter within [min, max]: *out keeps its value when the
 * parameter is absent. On a bad value answers 400 ("parameter 'limit' must be an integer
 * between 1 and 1000") and returns false; the handler then just returns.
 */
bool vd_http_query_int(struct vd_http_req *req, const char *name, int64_t min, int64_t max,
		       int64_t *out);

/* Sends a JSON reply with Content-Type "application/json; charset=utf-8". Steals body. */
void vd_http_reply_json(struct vd_http_req *req, int status, json_t *body);
/* Sends {"error": "<message>"} with the given status. */
void vd_http_reply_error(struct vd_http_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends a text/plain; charset=utf-8 reply. */
void vd_http_reply_text(struct vd_http_req *req, int status, const char *text);
/* Sets a reply header (replacing one of the same name), printf-style value. */
void vd_http_set_header(struct vd_http_req *req, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A wall-clock time in Unix ms as an RFC 3339 UTC string, or JSON null for 0 (the event
 * has not happened). A new reference. */
json_t *vd_json_time_ms(int64_t wall_ms);

/*
 * Serialises a JSON value compactly with keys in insertion order, the way Go's
 * encoding/json does: '<', '>' and '&' become \u003c, \u003e, \u0026. Caller frees.
 */
char *vd_json_dumps_go(const json_t *value);

#endif
