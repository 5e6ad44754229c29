/*
 * api-ollama-admin.c: the parts of Ollama's API that are not inference, answered by vramd
 * for its nodes (docs/api.md "Ollama-compatible API"):
 *
 *   GET/HEAD /            "Ollama is running"
 *   GET/HEAD /api/version the version of the first reachable node
 *   GET/HEAD /api/tags    the union of the reachable nodes' /api/tags "models" (by name, the
 *   GET /api/ps           first node's object kept), and the same for /api/ps; a node that
 *                         fails is left out (logged); 503 when none answers
 *   POST /api/show        forwarded to a node that has the model installed, the reply passed
 *                         through as it is (status and body)
 *   POST /api/pull        forwarded to every reachable node, one after the other, each node's
 *                         progress lines passed on as they come; or to the node that
 *                         X-Vramd-Node names. Stops at the first node that fails.
 *   DELETE /api/delete,   forwarded to every node that has the model (source) installed, or
 *   POST /api/copy        to the node X-Vramd-Node names.
 *
 * Where no node has the model, the request goes to the first reachable node, so the client
 * gets Ollama's own error for it. After a pull, delete or copy that succeeded on a node,
 * its monitor lists the models again, and the reply ends only once the registry has that
 * listing (at most API_ADMIN_REFRESH_MS), so a client may use the model it pulled or
 * copied at once.
 *
 * Requests to the nodes go through the daemon's httpc on the loop; a client that goes
 * away aborts them.
 */
#include "api.h"

#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "http-util.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "monitor.h"
#include "node.h"
#include "registry.h"
#include "util.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <stdlib.h>
#include <string.h>

#define API_ADMIN_CONTROL_TIMEOUT_MS 30000		  /* tags, ps, show, copy, delete */
#define API_ADMIN_PULL_TIMEOUT_MS    (24 * 3600 * 1000LL) /* a pull of a large model */
#define API_ADMIN_MAX_REPLY	     (64u << 20)	  /* a listing or a show */
#define API_ADMIN_MAX_LINE	     (1u << 20)		  /* a progress line */
#define API_ADMIN_MAX_ERROR	     (1u << 20)		  /* an error reply */
#define API_ADMIN_REFRESH_MS	     5000 /* the longest a reply waits for the registry */
#define API_ADMIN_REFRESH_POLL_MS    20

/* --- Small endpoints -------------------------------------------------------------------- */

void
api_ollama_root(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	(void)arg;
	vd_http_reply_text(req, 200, "Ollama is running");
}

void
api_ollama_version(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		const struct node *n = fleet_node(d->fleet, i);
		const char *version = monitor_server_version(n->monitor);
		if (n->up && version != NULL) {
			vd_http_reply_json(req, 200, json_pack("{s:s}", "version", version));
			return;
		}
	}
	vd_http_reply_error(req, 503, "no Ollama node is reachable (GET /api/nodes tells why)");
}

/* --- GET /api/tags and /api/ps: the union over the nodes -------------------------------- */

struct api_admin_listing;

struct api_admin_listing_call {
	struct api_admin_listing *listing;
	struct node *node;
	struct httpc_request *call; /* NULL once it answered */
	json_t *models;		    /* its "models", or NULL when it failed */
};

struct api_admin_listing {
	struct daemon *d;
	struct vd_http_req *req;
	const char *path; /* "/api/tags", "/api/ps" */
	const struct api_listing_ops *ops;
	char *id; /* the caller's, owned; may be NULL */
	struct api_admin_listing_call *calls;
	size_t ncalls, pending;
};

static void
api_admin_listing_free(struct api_admin_listing *l)
{
	for (size_t i = 0; i < l->ncalls; i++) {
		httpc_cancel(l->calls[i].call);
		json_decref(l->calls[i].models);
	}
	free(l->calls);
	free(l->id);
	free(l);
}

/* The nodes' models by name in node order, the first node's object for each name. */
static void
api_admin_listing_answer(struct api_admin_listing *l)
{
	json_t *models = json_array();
	json_t *seen = json_object();
	size_t answered = 0;
	for (size_t i = 0; i < l->ncalls; i++) {
		json_t *list = l->calls[i].models;
		if (list == NULL)
			continue;
		answered++;
		size_t k;
		json_t *m;
		json_array_foreach(list, k, m)
		{
			const char *name = json_string_value(json_object_get(m, "name"));
			if (name == NULL)
				name = json_string_value(json_object_get(m, "model"));
			if (name == NULL || json_object_get(seen, name) != NULL)
				continue;
			json_object_set_new(seen, name, json_true());
			json_array_append(models, m);
		}
	}
	json_decref(seen);
	vd_http_req_on_close(l->req, NULL, NULL);
	if (answered == 0) {
		json_decref(models);
		char *msg = xasprintf("no Ollama node answered GET %s", l->path);
		l->ops->error(l->req, 503, msg, l->id);
		free(msg);
	} else {
		l->ops->answer(l->req, models, l->id);
	}
	api_admin_listing_free(l);
}

static void
api_admin_listing_done_cb(const struct httpc_result *res, void *arg)
{
	struct api_admin_listing_call *c = arg;
	struct api_admin_listing *l = c->listing;
	c->call = NULL;
	json_t *o = NULL;
	if (res->error == HTTPC_OK && res->status == 200)
		o = json_loadb(res->body, res->body_len, 0, NULL);
	json_t *models = json_object_get(o, "models");
	if (json_is_array(models))
		c->models = json_incref(models);
	else if (res->error != HTTPC_OK)
		vd_warn(API, "GET %s of node %s failed (%s), left out: %s", l->path, c->node->name,
			httpc_error_name(res->error), res->error_message);
	else
		vd_warn(API, "GET %s of node %s answered %d without a model list, left out",
			l->path, c->node->name, res->status);
	json_decref(o);
	if (--l->pending == 0)
		api_admin_listing_answer(l);
}

static void
api_admin_listing_close_cb(struct vd_http_req *req, void *arg)
{
	api_admin_listing_free(arg);
	vd_http_req_release(req);
}

void
api_nodes_listing(struct vd_http_req *req, struct daemon *d, const char *path,
		  const struct api_listing_ops *ops, const char *id)
{
	struct api_admin_listing *l = xcalloc(1, sizeof(*l));
	l->d = d;
	l->req = req;
	l->path = path;
	l->ops = ops;
	l->id = id != NULL ? xstrdup(id) : NULL;
	l->calls = xcalloc(fleet_count(d->fleet), sizeof(*l->calls));
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		struct node *n = fleet_node(d->fleet, i);
		if (!n->up)
			continue;
		char *url = xasprintf("%s%s", n->url, path);
		struct api_admin_listing_call *c = &l->calls[l->ncalls++];
		c->listing = l;
		c->node = n;
		c->call = httpc_start(d->httpc,
				      &(struct httpc_options){
					  .url = url,
					  .timeout_ms = API_ADMIN_CONTROL_TIMEOUT_MS,
					  .max_reply_bytes = API_ADMIN_MAX_REPLY,
					  .loopback_host = true,
				      },
				      api_admin_listing_done_cb, c);
		free(url);
	}
	l->pending = l->ncalls;
	if (l->ncalls == 0) {
		ops->error(req, 503, "no Ollama node is reachable (GET /api/nodes tells why)",
			   l->id);
		api_admin_listing_free(l);
		return;
	}
	vd_http_req_on_close(req, api_admin_listing_close_cb, l);
}

static void
api_admin_listing_json(struct vd_http_req *req, json_t *models, const char *id)
{
	(void)id;
	vd_http_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

static void
api_admin_listing_error(struct vd_http_req *req, int status, const char *message, const char *id)
{
	(void)id;
	vd_http_reply_error(req, status, "%s", message);
}

static const struct api_listing_ops api_admin_listing_ops = {
    .answer = api_admin_listing_json,
    .error = api_admin_listing_error,
};

void
api_ollama_tags(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_nodes_listing(req, arg, "/api/tags", &api_admin_listing_ops, NULL);
}

void
api_ollama_ps(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_nodes_listing(req, arg, "/api/ps", &api_admin_listing_ops, NULL);
}

/* --- show, pull, delete, copy: forwarded to nodes --------------------------------------- */

/* What each forwarded endpoint is. */
struct api_admin_op {
	const char *method;	 /* to the node */
	const char *path;	 /* the node's endpoint, the client's too */
	const char *model_field; /* the body field naming the model that picks the nodes;
				    NULL: every reachable node */
	bool first_only;	 /* only the first node that has it (show) */
	bool changes_models;	 /* the registry lists the node's models again after it */
	bool streams;		 /* its reply streams unless "stream": false (pull) */
	int64_t timeout_ms;	 /* of one node's request */
};

static const struct api_admin_op api_admin_show_op = {
    "POST", "/api/show", "model", true, false, false, API_ADMIN_CONTROL_TIMEOUT_MS};
static const struct api_admin_op api_admin_pull_op = {
    "POST", "/api/pull", NULL, false, true, true, API_ADMIN_PULL_TIMEOUT_MS};
static const struct api_admin_op api_admin_delete_op = {
    "DELETE", "/api/delete", "model", false, true, false, API_ADMIN_CONTROL_TIMEOUT_MS};
static const struct api_admin_op api_admin_copy_op = {
    "POST", "/api/copy", "source", false, true, false, API_ADMIN_CONTROL_TIMEOUT_MS};

struct api_admin_forward {
	struct daemon *d;
	struct vd_http_req *req;
	const struct api_admin_op *op;
	struct vd_buf body; /* the client's body, sent to every node as it is */
	bool stream;	    /* the node's progress lines are passed on as they come */
	struct node **targets;
	bool *changed; /* targets[i] carried it out: its registry is to be refreshed */
	size_t ntargets, at;
	struct httpc_request *call; /* to targets[at] */
	int status;		    /* of the reply streaming in */
	bool started;		    /* the streamed reply's head went out */
	bool node_failed;	    /* a progress line of this node was an error */
	struct vd_buf line;	    /* a progress line not complete yet */
	struct vd_buf error;	    /* the body of a streamed error reply */
	char *held;		    /* the last "success" line: sent once the registry knows */
	/* The reply of the last node, not streamed: */
	int reply_status;
	char *reply, *reply_type;
	size_t reply_len;
	/* Waiting for the registry after a change: */
	struct event *refresh_timer;
	int64_t refresh_since_ms, refresh_deadline_ms;
};

static void api_admin_forward_next(struct api_admin_forward *f);

static void
api_admin_forward_free(struct api_admin_forward *f)
{
	httpc_cancel(f->call);
	if (f->refresh_timer != NULL)
		event_free(f->refresh_timer);
	vd_buf_cleanup(&f->body);
	vd_buf_cleanup(&f->line);
	vd_buf_cleanup(&f->error);
	free(f->held);
	free(f->reply);
	free(f->reply_type);
	free(f->targets);
	free(f->changed);
	free(f);
}

/* Sends bytes of the streamed reply, starting it first. */
static void
api_admin_forward_send(struct api_admin_forward *f, const void *data, size_t len)
{
	if (!f->started) {
		f->started = true;
		vd_http_req_set_header(f->req, "Content-Type", "application/x-ndjson");
		vd_http_req_start(f->req, 200);
	}
	vd_http_req_send(f->req, data, len);
}

/* Answers the client and ends it all. After a failure: status and message, as an error
 * line inside a stream that began. */
static void
api_admin_forward_fail(struct api_admin_forward *f, int status, const char *message)
{
	vd_http_req_on_close(f->req, NULL, NULL);
	if (f->started) {
		json_t *o = json_pack("{s:s}", "error", message);
		char *text = vd_json_dumps_go(o);
		json_decref(o);
		api_admin_forward_send(f, text, strlen(text));
		api_admin_forward_send(f, "\n", 1);
		free(text);
		vd_http_req_end(f->req);
	} else {
		vd_http_reply_error(f->req, status, "%s", message);
	}
	api_admin_forward_free(f);
}

/* Every target carried it out (and the registry caught up): the last node's answer. */
static void
api_admin_forward_finish(struct api_admin_forward *f)
{
	struct vd_http_req *req = f->req;
	vd_http_req_on_close(req, NULL, NULL);
	if (f->stream) {
		if (f->held != NULL) {
			api_admin_forward_send(f, f->held, strlen(f->held));
			api_admin_forward_send(f, "\n", 1);
		}
		if (!f->started)
			api_admin_forward_send(f, "", 0);
		vd_http_req_end(req);
	} else {
		vd_http_req_set_header(req, "Content-Type",
				       f->reply_type != NULL ? f->reply_type
							     : "application/json; charset=utf-8");
		vd_http_req_reply(req, f->reply_status, f->reply != NULL ? f->reply : "",
				  f->reply_len);
	}
	api_admin_forward_free(f);
}

/* Whether every changed node's registry has a model list requested after the change. */
static bool
api_admin_forward_refreshed(const struct api_admin_forward *f)
{
	for (size_t i = 0; i < f->ntargets; i++)
		if (f->changed[i] &&
		    monitor_tags_fresh_since(f->targets[i]->monitor) < f->refresh_since_ms)
			return false;
	return true;
}

static void
api_admin_forward_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct api_admin_forward *f = arg;
	if (!api_admin_forward_refreshed(f)) {
		if (vd_now_mono_ms() < f->refresh_deadline_ms) {
			struct timeval tv = {0, API_ADMIN_REFRESH_POLL_MS * 1000};
			evtimer_add(f->refresh_timer, &tv);
			return;
		}
		vd_warn(API, "%s: the model list of a node did not refresh within %d ms; answering",
			f->op->path, API_ADMIN_REFRESH_MS);
	}
	api_admin_forward_finish(f);
}

/* After the last target: the changed nodes list their models again before the answer. */
static void
api_admin_forward_done(struct api_admin_forward *f)
{
	bool any = false;
	f->refresh_since_ms = vd_now_mono_ms();
	for (size_t i = 0; i < f->ntargets; i++) {
		if (f->changed[i]) {
			monitor_refresh_tags(f->targets[i]->monitor);
			any = true;
		}
	}
	if (!any) {
		api_admin_forward_finish(f);
		return;
	}
	f->refresh_deadline_ms = f->refresh_since_ms + API_ADMIN_REFRESH_MS;
	f->refresh_timer = evtimer_new(f->d->base, api_admin_forward_refresh_cb, f);
	struct timeval tv = {0, API_ADMIN_REFRESH_POLL_MS * 1000};
	evtimer_add(f->refresh_timer, &tv);
}

/* One complete progress line of a node: passed on, except "success", which is held back
 * (only the last node's goes out, once the registry knows the model). */
static void
api_admin_forward_line(struct api_admin_forward *f, const char *line, size_t len)
{
	if (len == 0)
		return;
	json_t *o = json_loadb(line, len, 0, NULL);
	const char *status = json_string_value(json_object_get(o, "status"));
	if (json_object_get(o, "error") != NULL)
		f->node_failed = true;
	if (status != NULL && strcmp(status, "success") == 0) {
		free(f->held);
		f->held = xstrndup(line, len);
	} else {
		api_admin_forward_send(f, line, len);
		api_admin_forward_send(f, "\n", 1);
	}
	json_decref(o);
}

/* A piece of a node's streamed reply. */
static bool
api_admin_forward_data_cb(int status, const char *data, size_t len, void *arg)
{
	struct api_admin_forward *f = arg;
	f->status = status;
	if (status < 200 || status > 299) {
		vd_buf_append(&f->error, data, len); /* capped: a cut error still reads */
		return true;
	}
	const char *end = data + len;
	while (data < end) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));
		if (nl == NULL) {
			if (vd_buf_append(&f->line, data, (size_t)(end - data)) < 0)
				return false; /* a line past any sane length: not Ollama */
			return true;
		}
		if (f->line.len > 0) {
			if (vd_buf_append(&f->line, data, (size_t)(nl - data)) < 0)
				return false;
			api_admin_forward_line(f, f->line.data, f->line.len);
			vd_buf_reset(&f->line);
		} else {
			api_admin_forward_line(f, data, (size_t)(nl - data));
		}
		data = nl + 1;
	}
	return true;
}

/* The "error" of an Ollama error reply, else the reply itself; caller frees. */
static char *
api_admin_error_text(const char *body, size_t len, int status)
{
	json_t *o = json_loadb(body, len, 0, NULL);
	const char *e = json_string_value(json_object_get(o, "error"));
	char *text = e != NULL ? xstrdup(e)
		     : len > 0 ? xstrndup(body, len < 512 ? len : 512)
			       : xasprintf("HTTP %d", status);
	json_decref(o);
	return text;
}

static void
api_admin_forward_done_cb(const struct httpc_result *res, void *arg)
{
	struct api_admin_forward *f = arg;
	struct node *n = f->targets[f->at];
	f->call = NULL;
	if (res->error != HTTPC_OK) {
		char *why = xasprintf("node %s (%s) did not answer %s %s: %s", n->name, n->url,
				      f->op->method, f->op->path, res->error_message);
		vd_warn(API, "%s", why);
		api_admin_forward_fail(f, res->error == HTTPC_ERR_TIMEOUT ? 504 : 502, why);
		free(why);
		return;
	}
	if (f->stream) {
		if (f->status >= 200 && f->status <= 299 && f->line.len > 0) {
			api_admin_forward_line(f, f->line.data, f->line.len);
			vd_buf_reset(&f->line);
		}
		int status = res->status;
		if (status < 200 || status > 299) {
			char *why = api_admin_error_text(f->error.data, f->error.len, status);
			vd_log(API, "%s on node %s failed (%d): %s", f->op->path, n->name, status,
			       why);
			if (!f->started) { /* the node's own answer, as it is */
				vd_http_req_on_close(f->req, NULL, NULL);
				vd_http_req_set_header(f->req, "Content-Type",
						       res->content_type != NULL
							   ? res->content_type
							   : "application/json; charset=utf-8");
				vd_http_req_reply(f->req, status, f->error.data, f->error.len);
				api_admin_forward_free(f);
			} else {
				api_admin_forward_fail(f, status, why);
			}
			free(why);
			return;
		}
		if (f->node_failed) { /* its error line went out: stop here */
			vd_log(API, "%s on node %s failed; the nodes after it were not asked",
			       f->op->path, n->name);
			vd_http_req_on_close(f->req, NULL, NULL);
			vd_http_req_end(f->req);
			api_admin_forward_free(f);
			return;
		}
	} else {
		free(f->reply);
		free(f->reply_type);
		f->reply = xstrndup(res->body, res->body_len);
		f->reply_len = res->body_len;
		f->reply_type = res->content_type != NULL ? xstrdup(res->content_type) : NULL;
		f->reply_status = res->status;
		if (res->status < 200 || res->status > 299) {
			/* Stop at the first node that fails, with its own answer. */
			vd_log(API, "%s on node %s failed (%d)", f->op->path, n->name, res->status);
			api_admin_forward_finish(f);
			return;
		}
	}
	vd_debug(API, "%s on node %s done", f->op->path, n->name);
	f->changed[f->at] = f->op->changes_models;
	f->at++;
	api_admin_forward_next(f);
}

static void
api_admin_forward_next(struct api_admin_forward *f)
{
	if (f->at == f->ntargets) {
		api_admin_forward_done(f);
		return;
	}
	struct node *n = f->targets[f->at];
	char *url = xasprintf("%s%s", n->url, f->op->path);
	f->status = 0;
	f->node_failed = false;
	vd_buf_reset(&f->line);
	vd_buf_reset(&f->error);
	f->call = httpc_start(f->d->httpc,
			      &(struct httpc_options){
				  .method = f->op->method,
				  .url = url,
				  .body = f->body.data != NULL ? f->body.data : "",
				  .body_len = f->body.len,
				  .timeout_ms = f->op->timeout_ms,
				  .max_reply_bytes = API_ADMIN_MAX_REPLY,
				  .loopback_host = true,
				  .on_data = f->stream ? api_admin_forward_data_cb : NULL,
				  .data_arg = f,
			      },
			      api_admin_forward_done_cb, f);
	vd_debug(API, "%s %s on node %s", f->op->method, f->op->path, n->name);
	free(url);
}

static void
api_admin_forward_close_cb(struct vd_http_req *req, void *arg)
{
	struct api_admin_forward *f = arg;
	vd_log(API, "client of %s went away; request to the node aborted", f->op->path);
	api_admin_forward_free(f);
	vd_http_req_release(req);
}

/* Whether node n has the model installed. */
static bool
api_admin_node_has(const struct node *n, const char *model)
{
	const struct registry_model *rm = registry_find(n->registry, model);
	return rm != NULL && rm->installed;
}

/*
 * The nodes a request goes to, into f->targets: the one X-Vramd-Node names; else the
 * reachable nodes that have the model installed (all reachable nodes when op names none;
 * only the first for show), or the first reachable node when none has it, so it answers
 * in Ollama's words. Returns 0, or the status to answer with *cause.
 */
static int
api_admin_forward_targets(struct api_admin_forward *f, const char *model, char **cause)
{
	struct fleet *fleet = f->d->fleet;
	size_t n = fleet_count(fleet);
	f->targets = xcalloc(n, sizeof(*f->targets));
	f->changed = xcalloc(n, sizeof(*f->changed));
	const char *named = vd_http_req_header(f->req, "X-Vramd-Node");
	if (named != NULL) {
		struct node *node = fleet_find(fleet, named);
		if (node == NULL) {
			*cause = xasprintf("header X-Vramd-Node names no node: %s (GET /api/nodes "
					   "lists them)",
					   named);
			return 400;
		}
		f->targets[f->ntargets++] = node;
		return 0;
	}
	struct node *first_up = NULL;
	for (size_t i = 0; i < n; i++) {
		struct node *node = fleet_node(fleet, i);
		if (!node->up) {
			if (f->op->model_field == NULL)
				vd_log(API, "%s: node %s is unreachable, left out", f->op->path,
				       node->name);
			continue;
		}
		if (first_up == NULL)
			first_up = node;
		if (f->op->model_field != NULL && !api_admin_node_has(node, model))
			continue;
		f->targets[f->ntargets++] = node;
		if (f->op->first_only)
			break;
	}
	if (f->ntargets == 0 && first_up != NULL)
		f->targets[f->ntargets++] = first_up;
	if (f->ntargets == 0) {
		*cause = xstrdup("no Ollama node is reachable (GET /api/nodes tells why)");
		return 503;
	}
	return 0;
}

static void
api_admin_forward_start(struct vd_http_req *req, struct daemon *d, const struct api_admin_op *op)
{
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	struct api_admin_forward *f = xcalloc(1, sizeof(*f));
	f->d = d;
	f->req = req;
	f->op = op;
	f->stream = op->streams && !json_is_false(json_object_get(body, "stream"));
	vd_buf_init(&f->body, config_size(d->config, CONFIG_MAX_BODY_BYTES));
	vd_buf_init(&f->line, API_ADMIN_MAX_LINE);
	vd_buf_init(&f->error, API_ADMIN_MAX_ERROR);
	vd_http_read_body(req, &f->body); /* within MAX_BODY_BYTES: the server checked */
	const char *model = NULL;
	if (op->model_field != NULL) {
		model = json_string_value(json_object_get(body, op->model_field));
		if (model == NULL || *model == '\0') /* Ollama's older spelling */
			model = json_string_value(json_object_get(body, "name"));
		if (model == NULL)
			model = "";
	}
	char *cause = NULL;
	int status = api_admin_forward_targets(f, model, &cause);
	json_decref(body);
	if (status != 0) {
		vd_http_reply_error(req, status, "%s", cause);
		free(cause);
		api_admin_forward_free(f);
		return;
	}
	vd_http_req_on_close(req, api_admin_forward_close_cb, f);
	api_admin_forward_next(f);
}

void
api_ollama_show(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_admin_forward_start(req, arg, &api_admin_show_op);
}

void
api_ollama_pull(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_admin_forward_start(req, arg, &api_admin_pull_op);
}

void
api_ollama_delete(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_admin_forward_start(req, arg, &api_admin_delete_op);
}

void
api_ollama_copy(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_admin_forward_start(req, arg, &api_admin_copy_op);
}
