/*
 * api-relay.c: a cluster's follower serves the front doors (Ollama's and OpenAI's
 * inference endpoints) to the clients connected to it by relaying each request to the
 * leader and its answer back as it comes, streamed answers chunk by chunk (cluster.h).
 * The leader queues, places and runs the job as it does its own; the client never learns
 * that another instance did the work. The other leader-only endpoints (model and GPU
 * operations, cancels) are answered with a 307 to the leader instead: their clients are
 * tools that follow it.
 *
 * What goes along: the method, the path and query, the body, and the headers the doors
 * read (Content-Type, Authorization, X-Vramd-*, Accept). What comes back: the status,
 * Content-Type and body. A client that goes away aborts the leader request, which
 * cancels the job there as any closed door connection does.
 */
#include "api.h"

#include "cluster.h"
#include "daemon.h"
#include "http-util.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#include <event2/buffer.h>

#include <stdlib.h>
#include <string.h>

/* The headers a front door reads, passed to the leader as they came (Content-Type goes
 * as the body's type). */
static const char *const api_relay_headers[] = {
    "Authorization",	 "Accept", "X-Vramd-Priority", "X-Vramd-Deadline", "X-Vramd-Placement",
    "X-Vramd-Client-Id",
};

struct api_relay {
	struct vd_http_req *req;
	struct httpc_request *call;
	bool started; /* the reply's status line went out */
};

static void
api_relay_free(struct api_relay *r)
{
	httpc_cancel(r->call);
	free(r);
}

static void
api_relay_start_cb(int status, const char *content_type, void *arg)
{
	struct api_relay *r = arg;
	r->started = true;
	vd_http_req_set_header(r->req, "Content-Type",
			       content_type != NULL ? content_type : "application/json");
	vd_http_req_start(r->req, status > 0 ? status : 502);
}

static bool
api_relay_data_cb(int status, const char *data, size_t len, void *arg)
{
	(void)status;
	struct api_relay *r = arg;
	vd_http_req_send(r->req, data, len);
	return true;
}

static void
api_relay_done_cb(const struct httpc_result *res, void *arg)
{
	struct api_relay *r = arg;
	r->call = NULL;
	vd_http_req_on_close(r->req, NULL, NULL);
	if (r->started) {
		if (res->error != HTTPC_OK)
			vd_warn(API, "relay to the leader broke off: %s", res->error_message);
		vd_http_req_end(r->req);
	} else if (res->error != HTTPC_OK) {
		vd_http_set_header(r->req, "Retry-After", "1");
		vd_http_reply_error(r->req, 503, "the leader did not answer: %s",
				    res->error_message);
	} else { /* an answer without a body */
		vd_http_req_reply(r->req, res->status, "", 0);
	}
	api_relay_free(r);
}

static void
api_relay_close_cb(struct vd_http_req *req, void *arg)
{
	api_relay_free(arg);
	vd_http_req_release(req);
}

bool
api_relay_to_leader(struct daemon *d, struct vd_http_req *req)
{
	char *base = cluster_leader_url(d->cluster);
	if (base == NULL)
		return false;
	const char *query = vd_http_req_query(req);
	char *url = xasprintf("%s%s%s%s", base, vd_http_req_path(req), query != NULL ? "?" : "",
			      query != NULL ? query : "");
	free(base);
	const char *lines[VD_ARRAY_LEN(api_relay_headers) + 1];
	char *owned[VD_ARRAY_LEN(api_relay_headers)];
	size_t n = 0;
	for (size_t i = 0; i < VD_ARRAY_LEN(api_relay_headers); i++) {
		const char *v = vd_http_req_header(req, api_relay_headers[i]);
		if (v == NULL)
			continue;
		owned[n] = xasprintf("%s: %s", api_relay_headers[i], v);
		lines[n] = owned[n];
		n++;
	}
	lines[n] = NULL;
	struct evbuffer *body = vd_http_req_body(req);
	size_t len = evbuffer_get_length(body);
	struct api_relay *r = xcalloc(1, sizeof(*r));
	r->req = req;
	const char *type = vd_http_req_header(req, "Content-Type");
	r->call = httpc_start(d->httpc,
			      &(struct httpc_options){
				  .method = vd_http_req_method_name(req),
				  .url = url,
				  .body = len > 0 ? evbuffer_pullup(body, -1) : NULL,
				  .body_len = len,
				  .content_type = type != NULL ? type : "application/json",
				  .headers = lines,
				  .timeout_ms = 0, /* a job may wait in the queue for long */
				  .on_data = api_relay_data_cb,
				  .on_start = api_relay_start_cb,
				  .data_arg = r,
			      },
			      api_relay_done_cb, r);
	for (size_t i = 0; i < n; i++)
		free(owned[i]);
	free(url);
	vd_http_req_on_close(req, api_relay_close_cb, r);
	return true;
}
