/*
 * http-util.c: route-table dispatch and reply helpers over vd_httpd (httpd.h).
 *
 * Handlers run on the loop thread and must not block. Bodies arrive complete and
 * already bounded by the server (max_body_bytes); handlers may apply a smaller cap.
 */
#include "http-util.h"

#include "buf.h"
#include "util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

static bool
vd_http_route_matches(const struct vd_http_route *r, const char *path)
{
	if (r->prefix)
		return vd_str_has_prefix(path, r->path);
	return strcmp(path, r->path) == 0;
}

/* Adds "Allow: GET, POST" for a VD_HTTP_* mask, as a 405 reply should carry. */
static void
vd_http_add_allow(struct vd_http_req *req, int methods)
{
	static const struct {
		int bit;
		const char *name;
	} names[] = {{VD_HTTP_GET, "GET"},	 {VD_HTTP_HEAD, "HEAD"},
		     {VD_HTTP_POST, "POST"},	 {VD_HTTP_PUT, "PUT"},
		     {VD_HTTP_DELETE, "DELETE"}, {VD_HTTP_OPTIONS, "OPTIONS"}};
	char allow[64] = "";
	size_t n = 0;
	for (size_t i = 0; i < VD_ARRAY_LEN(names); i++)
		if (methods & names[i].bit)
			n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "",
					      names[i].name);
	vd_http_req_set_header(req, "Allow", allow);
}

void
vd_http_router_cb(struct vd_http_req *req, void *arg)
{
	const struct vd_http_router *router = arg;
	const char *raw = vd_http_req_path(req);
	size_t decoded_len = 0;
	char *path = evhttp_uridecode(*raw ? raw : "/", 0, &decoded_len);
	if (path == NULL || strlen(path) != decoded_len) {
		free(path);
		vd_http_reply_error(req, 400, "invalid percent-encoding in the request path");
		return;
	}
	int method = vd_http_req_method(req);
	int allowed = 0;
	for (size_t i = 0; i < router->nroutes; i++) {
		const struct vd_http_route *r = &router->routes[i];
		if (!vd_http_route_matches(r, path))
			continue;
		allowed |= r->methods;
		vd_http_req_set_route(req, r->path);
		if (r->methods & method) {
			if (router->admit == NULL || router->admit(req, r, router->arg))
				r->handler(req, path, router->arg);
			free(path);
			return;
		}
	}
	if (allowed != 0) {
		vd_http_add_allow(req, allowed);
		router->method_not_allowed(req, path, router->arg);
	} else
		router->not_found(req, path, router->arg);
	free(path);
}

int
vd_http_read_body(struct vd_http_req *req, struct vd_buf *out)
{
	struct evbuffer *in = vd_http_req_body(req);
	size_t len = evbuffer_get_length(in);
	if (len > out->cap)
		return -E2BIG;
	vd_buf_reset(out);
	if (len == 0)
		return 0;
	const unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)len);
	return vd_buf_append(out, data, len);
}

int
vd_http_parse_json_object(struct vd_http_req *req, size_t cap, json_t **out, char **cause)
{
	struct vd_buf body;
	vd_buf_init(&body, cap);
	int status = 0;
	if (vd_http_read_body(req, &body) < 0) {
		status = vd_fail(cause, 413, "request body too large: the limit is %zu bytes", cap);
		goto out_cleanup;
	}
	if (body.len == 0) {
		status = vd_fail(cause, 400, "missing request body");
		goto out_cleanup;
	}
	json_error_t err;
	json_t *value = json_loadb(body.data, body.len, JSON_REJECT_DUPLICATES, &err);
	if (value == NULL) {
		status =
		    vd_fail(cause, 400, "invalid JSON in request body at line %d column %d: %s",
			    err.line, err.column, err.text);
		goto out_cleanup;
	}
	if (!json_is_object(value)) {
		json_decref(value);
		status = vd_fail(cause, 400, "request body must be a JSON object");
		goto out_cleanup;
	}
	*out = value;
out_cleanup:
	vd_buf_cleanup(&body);
	return status;
}

bool
vd_http_host_name(const char *authority, char *out, size_t size)
{
	const char *start = authority, *end;
	if (*authority == '[') {
		start = authority + 1;
		end = strchr(start, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
	} else {
		end = strchr(authority, ':');
		if (end != NULL && strchr(end + 1, ':') != NULL)
			end = authority + strlen(authority); /* a bare IPv6 address */
		else if (end == NULL)
			end = authority + strlen(authority);
	}
	for (const char *p = end; *p && *p != '/'; p++)
		if (*p == ':' && p[1] != '\0' && strspn(p + 1, "0123456789") != strcspn(p + 1, "/"))
			return false; /* a port that is not a number */
	size_t len = (size_t)(end - start);
	if (len == 0 || len >= size)
		return false;
	memcpy(out, start, len);
	out[len] = '\0';
	return true;
}

char *
vd_http_query_param(struct vd_http_req *req, const char *name)
{
	const char *query = vd_http_req_query(req);
	if (query == NULL)
		return NULL;
	struct evkeyvalq params;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) != 0) {
		evhttp_clear_headers(&params);
		return NULL;
	}
	const char *v = evhttp_find_header(&params, name);
	char *copy = v != NULL ? xstrdup(v) : NULL;
	evhttp_clear_headers(&params);
	return copy;
}

bool
vd_http_query_int(struct vd_http_req *req, const char *name, int64_t min, int64_t max, int64_t *out)
{
	char *text = vd_http_query_param(req, name);
	if (text == NULL)
		return true;
	int rc = vd_parse_int64(text, min, max, out, name, NULL);
	free(text);
	if (rc < 0)
		vd_http_reply_error(req, 400,
				    "parameter '%s' must be an integer between %lld and %lld", name,
				    (long long)min, (long long)max);
	return rc == 0;
}

static void
vd_http_send(struct vd_http_req *req, int status, const char *content_type, const char *body,
	     size_t len)
{
	vd_http_req_set_header(req, "Content-Type", content_type);
	vd_http_req_reply(req, status, body, len);
}

json_t *
vd_json_time_ms(int64_t wall_ms)
{
	if (wall_ms == 0)
		return json_null();
	char buf[48];
	vd_format_rfc3339_ms(wall_ms, buf, sizeof(buf));
	return json_string(buf);
}

char *
vd_json_dumps_go(const json_t *value)
{
	/* 15 significant digits: the shortest form of the numbers people set and read
	 * ("speed_normal": 0.8, not 0.80000000000000004). */
	char *raw = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
					  JSON_REAL_PRECISION(VD_JSON_REAL_DIGITS));
	if (raw == NULL)
		return xstrdup("null");
	size_t extra = 0;
	for (const char *p = raw; *p; p++)
		if (*p == '<' || *p == '>' || *p == '&')
			extra += 5;
	if (extra == 0)
		return raw;
	/* These bytes can only occur inside JSON strings, so replacing them everywhere is safe. */
	char *out = xmalloc(strlen(raw) + extra + 1);
	char *o = out;
	for (const char *p = raw; *p; p++) {
		const char *esc = *p == '<'   ? "\\u003c"
				  : *p == '>' ? "\\u003e"
				  : *p == '&' ? "\\u0026"
					      : NULL;
		if (esc != NULL) {
			memcpy(o, esc, 6);
			o += 6;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	free(raw);
	return out;
}

void
vd_http_reply_json(struct vd_http_req *req, int status, json_t *body)
{
	char *text = vd_json_dumps_go(body);
	vd_http_send(req, status, "application/json; charset=utf-8", text, strlen(text));
	free(text);
	json_decref(body);
}

/* The length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t
vd_utf8_char_len(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = u[0] < 0x80		   ? 1
		   : (u[0] & 0xe0) == 0xc0 ? 2
		   : (u[0] & 0xf0) == 0xe0 ? 3
		   : (u[0] & 0xf8) == 0xf0 ? 4
					   : 0;
	if (n == 2 && u[0] < 0xc2)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((u[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void
vd_http_reply_error(struct vd_http_req *req, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A message may quote client bytes that are not UTF-8; JSON strings must be. */
	for (size_t i = 0; msg[i] != '\0';) {
		size_t n = vd_utf8_char_len(msg + i);
		if (n == 0)
			msg[i++] = '?';
		else
			i += n;
	}
	vd_http_reply_json(req, status, json_pack("{s:s}", "error", msg));
}

void
vd_http_reply_text(struct vd_http_req *req, int status, const char *text)
{
	vd_http_send(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

void
vd_http_set_header(struct vd_http_req *req, const char *name, const char *fmt, ...)
{
	char value[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	vd_http_req_set_header(req, name, value);
}
