/*
 * api-models.c: model operations and fleet views (docs/api.md "Models and nodes"):
 *
 *   POST /api/models/force_gpu, force_cpu, placement   where a model runs from now on
 *   POST /api/models/load, unload                      load or unload with no job
 *   GET  /api/vram_report, /api/lb_stats, /api/nodes   per node views
 *
 * vramd drives one Ollama server today; every reply is already shaped for several (a
 * "node" field, or a "nodes" array), the node being named after its URL. The POST
 * handlers record the request in the engine and hold the client until the engine has
 * carried it out (checked every API_MODELS_POLL_MS), or until the request's "timeout"
 * (default API_MODELS_TIMEOUT_S), then answer 202 with the operation still pending.
 */
#include "api.h"

#include "backend.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "gpu.h"
#include "http-util.h"
#include "httpd.h"
#include "monitor.h"
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

/* A POST waiting for its operation to be carried out. */
struct api_models_wait {
	struct daemon *d;
	struct vd_http_req *req;
	char *model; /* display name */
	const char *op;
	struct event *timer;
	int64_t deadline_ms; /* monotonic */
};

/* What a model operation's body says. */
struct api_models_target {
	const char *model; /* the registry's display name (borrowed from the registry) */
	int gpu;	   /* "gpu", or -1 */
	int64_t timeout_ms;
};

static const char *
api_models_node_name(const struct daemon *d)
{
	return d->backend->url;
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
	if (node != NULL && json_is_string(node) &&
	    strcmp(json_string_value(node), api_models_node_name(d)) != 0 &&
	    strcmp(json_string_value(node), "local") != 0) {
		vd_http_reply_error(req, 404, "node '%s' not found (GET /api/nodes lists them)",
				    json_string_value(node));
		return false;
	}
	const struct registry_model *rm = registry_find(d->registry, json_string_value(model));
	if (rm == NULL || !rm->installed) {
		vd_http_reply_error(req, 404, "model '%s' is not installed on node %s",
				    json_string_value(model), api_models_node_name(d));
		return false;
	}
	t->model = rm->name;
	if (gpu != NULL && json_is_integer(gpu)) {
		t->gpu = (int)json_integer_value(gpu);
		if (d->budget_mode ? t->gpu != 0
				   : gpu_monitor_find(d->gpus, (uint32_t)t->gpu) == NULL) {
			vd_http_reply_error(req, 404, "GPU %d not found on node %s", t->gpu,
					    api_models_node_name(d));
			return false;
		}
	}
	return true;
}

static void
api_models_wait_free(struct api_models_wait *w)
{
	event_free(w->timer);
	free(w->model);
	free(w);
}

/* 200 with the model's location once settled; 202 with it (pending) at the deadline. */
static void
api_models_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct api_models_wait *w = arg;
	bool settled = engine_model_is_settled(w->d->engine, w->model);
	if (!settled && vd_now_mono_ms() < w->deadline_ms)
		return;
	json_t *o = engine_model_location_json(w->d->engine, w->model);
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
		int64_t timeout_ms)
{
	struct api_models_wait *w = xcalloc(1, sizeof(*w));
	w->d = d;
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
		engine_model_force(d->engine, t.model, placement);
		api_models_hold(d, req, t.model, op, t.timeout_ms);
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
		engine_model_force(d->engine, t.model,
				   strcmp(p, "gpu") == 0   ? SCHED_PLACE_GPU
				   : strcmp(p, "cpu") == 0 ? SCHED_PLACE_CPU
							   : SCHED_PLACE_AUTO);
		api_models_hold(d, req, t.model, "placement", t.timeout_ms);
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
		engine_model_load(d->engine, t.model, t.gpu);
		api_models_hold(d, req, t.model, "load", t.timeout_ms);
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
		if (engine_model_unload(d->engine, t.model, &cause) < 0) {
			vd_http_reply_error(req, 409, "%s", cause);
			free(cause);
		} else {
			api_models_hold(d, req, t.model, "unload", t.timeout_ms);
		}
	}
	json_decref(body);
}

/* The node's GPUs: index, name, total, used and free bytes as last sampled. */
static json_t *
api_models_gpus_json(struct daemon *d)
{
	json_t *list = json_array();
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
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
api_models_loaded_json(struct daemon *d)
{
	json_t *list = json_array();
	for (size_t i = 0; i < registry_count(d->registry); i++) {
		const struct registry_model *rm = registry_at(d->registry, i);
		json_t *o = engine_model_location_json(d->engine, rm->name);
		if (rm->loaded ||
		    strcmp(json_string_value(json_object_get(o, "state")), "unloaded") != 0)
			json_array_append_new(list, o);
		else
			json_decref(o);
	}
	return list;
}

static json_t *
api_models_node_base(struct daemon *d)
{
	return json_pack("{s:s,s:s}", "node", api_models_node_name(d), "url", d->backend->url);
}

void
api_vram_report(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *node = api_models_node_base(d);
	json_object_set_new(node, "models", api_models_loaded_json(d));
	json_object_set_new(node, "gpus", api_models_gpus_json(d));
	vd_http_reply_json(req, 200, json_pack("{s:[o]}", "nodes", node));
}

void
api_lb_stats(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	struct engine_counters c;
	int running;
	double mean_ms;
	engine_counters(d->engine, &c);
	engine_run_stats(d->engine, &running, &mean_ms);
	json_t *node = api_models_node_base(d);
	json_object_set_new(node, "requests", json_integer(c.dispatched));
	json_object_set_new(node, "completed", json_integer(c.completed));
	json_object_set_new(node, "failures", json_integer(c.failed));
	json_object_set_new(node, "mean_latency_ms",
			    mean_ms >= 0 ? json_real(mean_ms) : json_null());
	json_object_set_new(node, "running", json_integer(running));
	json_object_set_new(node, "queued", json_integer((json_int_t)queue_length(d->queue)));
	/* Until nodes get a real circuit breaker: derived from the monitor's health. */
	json_object_set_new(node, "breaker",
			    json_string(monitor_server_up(d->monitor) ? "closed" : "open"));
	vd_http_reply_json(req, 200, json_pack("{s:[o]}", "nodes", node));
}

void
api_nodes(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *server = monitor_server_json(d->monitor);
	json_t *node = api_models_node_base(d);
	json_object_set_new(node, "state",
			    json_string(monitor_server_up(d->monitor) ? "up" : "down"));
	json_object_set(node, "version", json_object_get(server, "version"));
	json_decref(server);
	json_object_set_new(node, "gpus", api_models_gpus_json(d));
	json_t *names = json_array();
	json_t *loaded = api_models_loaded_json(d);
	size_t i;
	json_t *m;
	json_array_foreach(loaded, i, m)
	{
		json_array_append(names, json_object_get(m, "model"));
	}
	json_decref(loaded);
	json_object_set_new(node, "models", names);
	vd_http_reply_json(req, 200, json_pack("{s:[o]}", "nodes", node));
}
