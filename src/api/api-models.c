/*
 * api-models.c: model operations and fleet views (docs/api.md "Models and nodes"):
 *
 *   POST /api/models/force_gpu, force_cpu, placement   where a model runs from now on
 *   POST /api/models/load, unload                      load or unload with no job
 *   GET  /api/vram_report, /api/lb_stats, /api/nodes   per node views
 *
 * An operation applies to the node the body names ("node": its name or URL), else to
 * every node that has the model installed (a load: to one of them). The POST handlers
 * record the request in each node's engine and hold the client until they have all
 * carried it out (checked every API_MODELS_POLL_MS), or until the request's "timeout"
 * (default API_MODELS_TIMEOUT_S), then answer 202 with the operation still pending.
 */
#include "api.h"

#include "backend.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "fleet.h"
#include "gpu.h"
#include "http-util.h"
#include "httpd.h"
#include "monitor.h"
#include "node.h"
#include "queue.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define API_MODELS_POLL_MS   100
#define API_MODELS_TIMEOUT_S 120
#define API_MODELS_MAX_WAIT  3600

/* For each node n of the set nodes (a bit per node index). */
#define api_models_each(d, nodes, n)                                                               \
	for (size_t api_i_ = 0; api_i_ < fleet_count((d)->fleet); api_i_++)                        \
		for (struct node *n = fleet_node((d)->fleet, api_i_);                              \
		     n != NULL && api_i_ < 64 && ((nodes) & (1ull << api_i_)); n = NULL)

#define API_MODELS_MAX_NODES 64 /* nodes one operation spans at most (a bit each) */

/* A POST waiting for its operation to be carried out. */
struct api_models_wait {
	struct daemon *d;
	struct vd_http_req *req;
	char *model; /* display name */
	const char *op;
	uint64_t nodes; /* the nodes it applies to, a bit per node index */
	struct event *timer;
	int64_t deadline_ms; /* monotonic */
};

/* What a model operation's body says. */
struct api_models_target {
	const char *model; /* the registry's display name (borrowed from a registry) */
	struct node *node; /* "node", or NULL: every node that has the model */
	int gpu;	   /* "gpu", or -1 */
	int64_t timeout_ms;
};

/* The node a request names: by name or URL; "local" is the only node of a one-node
 * fleet. */
static struct node *
api_models_find_node(const struct daemon *d, const char *name)
{
	if (strcmp(name, "local") == 0 && fleet_count(d->fleet) == 1)
		return fleet_node(d->fleet, 0);
	return fleet_find(d->fleet, name);
}

static bool
api_models_installed(const struct node *n, const char *model)
{
	const struct registry_model *rm = registry_find(n->registry, model);
	return rm != NULL && rm->installed;
}

/*
 * Reads {"model", "node"?, "gpu"?, "timeout"?} into *t. Answers the request (400 naming
 * the field, 404 for an unknown model, node or GPU) and returns false on bad input.
 */
static bool
api_models_parse(struct daemon *d, struct vd_http_req *req, const json_t *body, bool with_gpu,
		 struct api_models_target *t)
{
	const json_t *model = json_object_get(body, "model");
	const json_t *node = json_object_get(body, "node");
	const json_t *gpu = json_object_get(body, "gpu");
	const json_t *timeout = json_object_get(body, "timeout");

	*t = (struct api_models_target){.gpu = -1, .timeout_ms = API_MODELS_TIMEOUT_S * 1000};
	if (model == NULL) {
		vd_http_reply_error(req, 400, "field 'model' is required");
		return false;
	}
	if (!json_is_string(model) || json_string_length(model) == 0) {
		vd_http_reply_error(req, 400, "field 'model' must be a non-empty string");
		return false;
	}
	if (node != NULL && !json_is_null(node) && !json_is_string(node)) {
		vd_http_reply_error(req, 400, "field 'node' must be a string (a node name)");
		return false;
	}
	if (gpu != NULL && !json_is_null(gpu) &&
	    (!with_gpu || !json_is_integer(gpu) || json_integer_value(gpu) < 0 ||
	     json_integer_value(gpu) > 1024)) {
		vd_http_reply_error(req, 400,
				    with_gpu ? "field 'gpu' must be a GPU index (an integer >= 0)"
					     : "field 'gpu' is not accepted here");
		return false;
	}
	if (timeout != NULL && !json_is_null(timeout) &&
	    (!json_is_number(timeout) || json_number_value(timeout) < 0 ||
	     json_number_value(timeout) > API_MODELS_MAX_WAIT)) {
		vd_http_reply_error(req, 400, "field 'timeout' must be seconds from 0 to %d",
				    API_MODELS_MAX_WAIT);
		return false;
	}
	if (timeout != NULL && json_is_number(timeout))
		t->timeout_ms = (int64_t)(json_number_value(timeout) * 1000);
	if (node != NULL && json_is_string(node)) {
		t->node = api_models_find_node(d, json_string_value(node));
		if (t->node == NULL) {
			vd_http_reply_error(req, 404,
					    "node '%s' not found (GET /api/nodes lists them)",
					    json_string_value(node));
			return false;
		}
	}
	const char *name = json_string_value(model);
	const struct registry_model *rm = registry_find(
	    t->node != NULL ? t->node->registry : fleet_registry_for(d->fleet, name), name);
	if (rm == NULL || !rm->installed) {
		if (t->node != NULL || fleet_count(d->fleet) == 1)
			vd_http_reply_error(
			    req, 404, "model '%s' is not installed on node %s", name,
			    (t->node != NULL ? t->node : fleet_node(d->fleet, 0))->name);
		else
			vd_http_reply_error(req, 404, "model '%s' is not installed on any node",
					    name);
		return false;
	}
	t->model = rm->name;
	if (gpu != NULL && json_is_integer(gpu)) {
		t->gpu = (int)json_integer_value(gpu);
		/* A GPU names a GPU of one node: the one given, or the only one. */
		struct node *n = t->node != NULL ? t->node : fleet_node(d->fleet, 0);
		if (t->node == NULL && fleet_count(d->fleet) > 1) {
			vd_http_reply_error(req, 400, "field 'gpu' needs field 'node' (%zu nodes)",
					    fleet_count(d->fleet));
			return false;
		}
		bool found = n->telemetry == NODE_TELEMETRY_BUDGET
				 ? t->gpu == 0
				 : node_gpu_find(n, t->gpu) != NULL;
		if (!found) {
			vd_http_reply_error(req, 404, "GPU %d not found on node %s", t->gpu,
					    n->name);
			return false;
		}
		t->node = n;
	}
	return true;
}

/* The nodes an operation on t applies to: the one named, else every node that has the
 * model installed (a load without a node: the one where it is resident, else the first
 * reachable one). */
static uint64_t
api_models_nodes(struct daemon *d, const struct api_models_target *t, bool one)
{
	if (t->node != NULL)
		return 1ull << t->node->index;
	uint64_t set = 0;
	for (size_t i = 0; i < fleet_count(d->fleet) && i < API_MODELS_MAX_NODES; i++) {
		struct node *n = fleet_node(d->fleet, i);
		if (api_models_installed(n, t->model))
			set |= 1ull << i;
	}
	if (!one)
		return set;
	uint64_t up = 0;
	for (size_t i = 0; i < fleet_count(d->fleet) && i < API_MODELS_MAX_NODES; i++) {
		struct node *n = fleet_node(d->fleet, i);
		if (!(set & (1ull << i)))
			continue;
		if (engine_model_is_placed(n->engine, t->model))
			return 1ull << i;
		if (n->up && up == 0)
			up = 1ull << i;
	}
	return up != 0 ? up : set & -set;
}

static void
api_models_wait_free(struct api_models_wait *w)
{
	event_free(w->timer);
	free(w->model);
	free(w);
}

/* The model's location on each node of w: one object for one node, else the first with
 * "locations" listing every node's. */
static json_t *
api_models_location(struct api_models_wait *w, bool *settled)
{
	json_t *all = json_array();
	*settled = true;
	for (size_t i = 0; i < fleet_count(w->d->fleet) && i < API_MODELS_MAX_NODES; i++) {
		if (!(w->nodes & (1ull << i)))
			continue;
		struct node *n = fleet_node(w->d->fleet, i);
		*settled = *settled && engine_model_is_settled(n->engine, w->model);
		json_array_append_new(all, engine_model_location_json(n->engine, w->model));
	}
	json_t *o = json_deep_copy(json_array_get(all, 0));
	if (o == NULL)
		o = json_pack("{s:s,s:n}", "model", w->model, "node");
	if (json_array_size(all) > 1)
		json_object_set(o, "locations", all);
	json_decref(all);
	return o;
}

/* 200 with the model's location once settled; 202 with it (pending) at the deadline. */
static void
api_models_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct api_models_wait *w = arg;
	bool settled = true;
	for (size_t i = 0; i < fleet_count(w->d->fleet) && i < API_MODELS_MAX_NODES; i++)
		if (w->nodes & (1ull << i))
			settled = settled && engine_model_is_settled(
						 fleet_node(w->d->fleet, i)->engine, w->model);
	if (!settled && vd_now_mono_ms() < w->deadline_ms)
		return;
	json_t *o = api_models_location(w, &settled);
	json_object_set_new(o, "operation", json_string(w->op));
	json_object_set_new(o, "done", json_boolean(settled));
	if (!settled)
		json_object_set_new(o, "poll", json_string("/api/vram_report"));
	vd_http_req_on_close(w->req, NULL, NULL);
	vd_http_reply_json(w->req, settled ? 200 : 202, o);
	api_models_wait_free(w);
}

static void
api_models_close_cb(struct vd_http_req *req, void *arg)
{
	api_models_wait_free(arg);
	vd_http_req_release(req);
}

static void
api_models_hold(struct daemon *d, struct vd_http_req *req, const char *model, const char *op,
		uint64_t nodes, int64_t timeout_ms)
{
	struct api_models_wait *w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->nodes = nodes;
	w->req = req;
	w->model = xstrdup(model);
	w->op = op;
	w->deadline_ms = vd_now_mono_ms() + timeout_ms;
	w->timer = event_new(d->base, -1, EV_PERSIST, api_models_wait_cb, w);
	struct timeval tv = {0, API_MODELS_POLL_MS * 1000};
	event_add(w->timer, &tv);
	vd_http_req_on_close(req, api_models_close_cb, w);
}

static void
api_models_place(struct vd_http_req *req, struct daemon *d, enum sched_placement placement,
		 const char *op)
{
	json_t *body = api_read_object(d, req);
	struct api_models_target t;
	if (body == NULL)
		return;
	if (api_models_parse(d, req, body, false, &t)) {
		uint64_t nodes = api_models_nodes(d, &t, false);
		api_models_each(d, nodes, n) engine_model_force(n->engine, t.model, placement);
		api_models_hold(d, req, t.model, op, nodes, t.timeout_ms);
	}
	json_decref(body);
}

void
api_models_force_gpu(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_models_place(req, arg, SCHED_PLACE_GPU, "force_gpu");
}

void
api_models_force_cpu(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_models_place(req, arg, SCHED_PLACE_CPU, "force_cpu");
}

/* POST /api/models/placement {"model", "placement": "gpu"|"cpu"|"auto"}. */
void
api_models_placement(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	const char *p = json_string_value(json_object_get(body, "placement"));
	struct api_models_target t;
	if (p == NULL ||
	    (strcmp(p, "gpu") != 0 && strcmp(p, "cpu") != 0 && strcmp(p, "auto") != 0)) {
		vd_http_reply_error(req, 400,
				    "field 'placement' must be \"gpu\", \"cpu\" or "
				    "\"auto\"");
	} else if (api_models_parse(d, req, body, false, &t)) {
		enum sched_placement placement = strcmp(p, "gpu") == 0	 ? SCHED_PLACE_GPU
						 : strcmp(p, "cpu") == 0 ? SCHED_PLACE_CPU
									 : SCHED_PLACE_AUTO;
		uint64_t nodes = api_models_nodes(d, &t, false);
		api_models_each(d, nodes, n) engine_model_force(n->engine, t.model, placement);
		api_models_hold(d, req, t.model, "placement", nodes, t.timeout_ms);
	}
	json_decref(body);
}

void
api_models_load(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	struct api_models_target t;
	if (body == NULL)
		return;
	if (api_models_parse(d, req, body, true, &t)) {
		uint64_t nodes = api_models_nodes(d, &t, true);
		api_models_each(d, nodes, n) engine_model_load(n->engine, t.model, t.gpu);
		api_models_hold(d, req, t.model, "load", nodes, t.timeout_ms);
	}
	json_decref(body);
}

void
api_models_unload(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	struct api_models_target t;
	char *cause = NULL;
	if (body == NULL)
		return;
	if (api_models_parse(d, req, body, false, &t)) {
		uint64_t nodes = api_models_nodes(d, &t, false);
		int rc = 0;
		api_models_each(d, nodes, n) if (rc == 0) rc =
		    engine_model_unload(n->engine, t.model, &cause);
		if (rc < 0) {
			vd_http_reply_error(req, 409, "%s", cause);
			free(cause);
		} else {
			api_models_hold(d, req, t.model, "unload", nodes, t.timeout_ms);
		}
	}
	json_decref(body);
}

/* The node's GPUs: index, name, total, used and free bytes as last sampled (a budget
 * node: one GPU 0 of the budget, used by its models). */
static json_t *
api_models_gpus_json(const struct node *n)
{
	json_t *list = json_array();
	if (n->telemetry == NODE_TELEMETRY_BUDGET) {
		uint64_t used = engine_gpu_models_bytes(n->engine, 0);
		used = used < n->budget_bytes ? used : n->budget_bytes;
		json_array_append_new(list, json_pack("{s:i,s:s,s:s,s:I,s:I,s:I}", "index", 0,
						      "name", "budget", "state", "available",
						      "total_bytes", (json_int_t)n->budget_bytes,
						      "used_bytes", (json_int_t)used, "free_bytes",
						      (json_int_t)(n->budget_bytes - used)));
		return list;
	}
	for (size_t i = 0; i < node_gpu_count(n); i++) {
		const struct gpu_device *dev = node_gpu_at(n, i);
		const struct gpu_sample *s = &dev->latest;
		bool mem = dev->has_sample && (s->valid & GPU_HAS_MEM_TOTAL) &&
			   (s->valid & GPU_HAS_MEM_FREE);
		json_t *o = json_pack("{s:i,s:s,s:s}", "index", (int)dev->index, "name", dev->name,
				      "state", gpu_device_state_name(dev->state));
		json_object_set_new(o, "total_bytes",
				    mem ? json_integer((json_int_t)s->mem_total_bytes)
					: json_null());
		json_object_set_new(
		    o, "used_bytes",
		    mem ? json_integer((json_int_t)(s->mem_total_bytes - s->mem_free_bytes))
			: json_null());
		json_object_set_new(o, "free_bytes",
				    mem ? json_integer((json_int_t)s->mem_free_bytes)
					: json_null());
		json_array_append_new(list, o);
	}
	return list;
}

/* Every model loaded on the node (what /api/ps shows, and what vramd has in flight). */
static json_t *
api_models_loaded_json(const struct node *n)
{
	json_t *list = json_array();
	for (size_t i = 0; i < registry_count(n->registry); i++) {
		const struct registry_model *rm = registry_at(n->registry, i);
		json_t *o = engine_model_location_json(n->engine, rm->name);
		if (rm->loaded ||
		    strcmp(json_string_value(json_object_get(o, "state")), "unloaded") != 0)
			json_array_append_new(list, o);
		else
			json_decref(o);
	}
	return list;
}

static json_t *
api_models_node_base(const struct node *n)
{
	json_t *labels = json_array();
	for (size_t i = 0; i < n->nlabels; i++)
		json_array_append_new(labels, json_string(n->labels[i]));
	return json_pack("{s:s,s:s,s:o}", "node", n->name, "url", n->url, "labels", labels);
}

/* {"nodes": [view(node), ...]} for every node. */
static void
api_models_reply_nodes(struct vd_http_req *req, struct daemon *d,
		       json_t *(*view)(struct daemon *d, const struct node *n))
{
	json_t *nodes = json_array();
	for (size_t i = 0; i < fleet_count(d->fleet); i++)
		json_array_append_new(nodes, view(d, fleet_node(d->fleet, i)));
	vd_http_reply_json(req, 200, json_pack("{s:o}", "nodes", nodes));
}

static json_t *
api_vram_report_node(struct daemon *d, const struct node *n)
{
	(void)d;
	json_t *o = api_models_node_base(n);
	json_object_set_new(o, "models", api_models_loaded_json(n));
	json_object_set_new(o, "gpus", api_models_gpus_json(n));
	return o;
}

void
api_vram_report(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_models_reply_nodes(req, arg, api_vram_report_node);
}

static json_t *
api_lb_stats_node(struct daemon *d, const struct node *n)
{
	(void)d;
	int running;
	double mean_ms;
	engine_run_stats(n->engine, &running, &mean_ms);
	json_t *o = api_models_node_base(n);
	const struct node_stats *st = &n->stats;
	json_object_set_new(o, "requests", json_integer(st->requests));
	json_object_set_new(o, "completed", json_integer(st->completed));
	json_object_set_new(o, "failures", json_integer(st->failures));
	json_object_set_new(o, "mean_latency_ms",
			    st->requests > 0
				? json_real((double)st->latency_ms_sum / (double)st->requests)
				: json_null());
	json_object_set_new(o, "running", json_integer(running));
	json_object_set_new(o, "queued", json_integer(engine_queued_here(n->engine)));
	json_object_set_new(o, "breaker", json_string(node_breaker_state(n)));
	return o;
}

void
api_lb_stats(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_models_reply_nodes(req, arg, api_lb_stats_node);
}

static json_t *
api_nodes_node(struct daemon *d, const struct node *n)
{
	(void)d;
	json_t *o = api_models_node_base(n);
	const char *version = monitor_server_version(n->monitor);
	json_object_set_new(o, "state", json_string(n->up ? "up" : "down"));
	json_object_set_new(o, "version", version != NULL ? json_string(version) : json_null());
	json_object_set_new(o, "telemetry", json_string(node_telemetry_name(n->telemetry)));
	json_object_set_new(o, "breaker", json_string(node_breaker_state(n)));
	json_object_set_new(o, "gpus", api_models_gpus_json(n));
	json_t *names = json_array();
	json_t *loaded = api_models_loaded_json(n);
	size_t i;
	json_t *m;
	json_array_foreach(loaded, i, m)
	{
		json_array_append(names, json_object_get(m, "model"));
	}
	json_decref(loaded);
	json_object_set_new(o, "models", names);
	return o;
}

void
api_nodes(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_models_reply_nodes(req, arg, api_nodes_node);
}
