/*
 * api-status.c: what vramd knows, read-only: GET /api/stats (job counts, loads, VRAM
 * per GPU, resident models), GET /api/health (vramd, the Ollama server, GPU telemetry)
 * and GET /api/models (the registry with residency and queue counts).
 *
 * With API keys, /api/stats also lists each key's jobs (from the store) and the tokens
 * it was served since vramd started (the queue's fair-share counters); a key that is not
 * admin sees its own entry only.
 */
#include "api.h"

#include "backend.h"
#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "fleet.h"
#include "node.h"
#include "gpu.h"
#include "gpu-policy.h"
#include "http-util.h"
#include "keys.h"
#include "monitor.h"
#include "queue.h"
#include "registry.h"
#include "store.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static json_t *
api_status_counts(const int64_t *by_status)
{
	json_t *o = json_object();
	for (int s = 0; s < JOB_NSTATUSES; s++)
		json_object_set_new(o, job_status_name((enum job_status)s),
				    json_integer(by_status[s]));
	return o;
}

/* {"model": {"complete": n, ...}} from the store, as a sorted array with every status
 * and the model's load count. Steals per_model. */
static json_t *
api_stats_per_model(struct daemon *d, json_t *per_model)
{
	json_t *list = json_array();
	const char *name;
	json_t *counts;
	json_object_foreach(per_model, name, counts)
	{
		json_t *o = json_pack("{s:s}", "model", name);
		for (int s = 0; s < JOB_NSTATUSES; s++) {
			json_t *n = json_object_get(counts, job_status_name((enum job_status)s));
			json_object_set_new(o, job_status_name((enum job_status)s),
					    json_integer(n != NULL ? json_integer_value(n) : 0));
		}
		int64_t loads = 0;
		for (size_t i = 0; i < fleet_count(d->fleet); i++) {
			const struct registry_model *rm =
			    registry_find(fleet_node(d->fleet, i)->registry, name);
			loads += rm != NULL ? rm->load_count : 0;
		}
		json_object_set_new(o, "loads", json_integer(loads));
		json_array_append_new(list, o);
	}
	json_decref(per_model);
	return list;
}

static int64_t
api_stats_count(const json_t *counts, enum job_status status)
{
	return json_integer_value(json_object_get(counts, job_status_name(status)));
}

/* One entry of "keys": the key's jobs by status and the tokens it was served. */
static json_t *
api_stats_key(struct daemon *d, const char *name, const json_t *counts)
{
	int64_t total = 0;
	for (int s = 0; s < JOB_NSTATUSES; s++)
		total += api_stats_count(counts, (enum job_status)s);
	struct queue_key_stats ks;
	queue_key_stats(d->queue, name, &ks);
	json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "name", name, "submitted",
			      (json_int_t)total, "queued",
			      (json_int_t)api_stats_count(counts, JOB_QUEUED), "running",
			      (json_int_t)(api_stats_count(counts, JOB_PENDING) +
					   api_stats_count(counts, JOB_RUNNING)),
			      "completed", (json_int_t)api_stats_count(counts, JOB_COMPLETE),
			      "failed", (json_int_t)api_stats_count(counts, JOB_FAILED),
			      "cancelled", (json_int_t)api_stats_count(counts, JOB_CANCELLED),
			      "tokens_served", (json_int_t)ks.tokens, "weight", (int)ks.weight);
	return o;
}

/* "keys": every key of API_KEYS_FILE in file order, then names only the store still
 * knows (keys since removed from the file); only the caller's own for a key that is
 * not admin. Steals per_key. */
static json_t *
api_stats_keys(struct daemon *d, const struct api_key *caller, json_t *per_key)
{
	json_t *list = json_array();
	for (size_t i = 0; i < keys_count(d->keys); i++) {
		const char *name = keys_at(d->keys, i)->name;
		if (api_key_may_see(caller, name))
			json_array_append_new(
			    list, api_stats_key(d, name, json_object_get(per_key, name)));
	}
	const char *name;
	json_t *counts;
	json_object_foreach(per_key, name, counts)
	{
		if (keys_find_name(d->keys, name) == NULL && api_key_may_see(caller, name))
			json_array_append_new(list, api_stats_key(d, name, counts));
	}
	json_decref(per_key);
	return list;
}

/* The GPUs as the scheduler sees them: telemetry, or the budget. */
static json_t *
api_stats_gpus(struct daemon *d)
{
	json_t *list = json_array();
	if (d->budget_mode) {
		uint64_t budget = config_size(d->config, CONFIG_VRAM_BUDGET);
		uint64_t models = fleet_local_gpu_models_bytes(d->fleet, 0);
		json_array_append_new(
		    list, json_pack("{s:i,s:s,s:I,s:I,s:I,s:I,s:I}", "index", 0, "name", "budget",
				    "memory_total_bytes", (json_int_t)budget, "memory_used_bytes",
				    (json_int_t)models, "memory_free_bytes",
				    (json_int_t)(models < budget ? budget - models : 0),
				    "memory_models_bytes", (json_int_t)models, "memory_other_bytes",
				    (json_int_t)0));
		json_object_set_new(json_array_get(list, 0), "state",
				    json_string(gpu_policy_state_name(d->policy, 0)));
		json_object_set_new(
		    json_array_get(list, 0), "memory_reserved_bytes",
		    json_integer((json_int_t)gpu_policy_reserved_bytes(d->policy, 0)));
		return list;
	}
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		const struct gpu_sample *s = &dev->latest;
		json_t *o = json_object();
		json_object_set_new(o, "index", json_integer(dev->index));
		json_object_set_new(o, "name", json_string(dev->name));
		json_object_set_new(o, "state",
				    json_string(gpu_policy_state_name(d->policy, (int)dev->index)));
		const struct {
			const char *key;
			uint32_t bit;
			uint64_t value;
		} mem[] = {
		    {"memory_total_bytes", GPU_HAS_MEM_TOTAL, s->mem_total_bytes},
		    {"memory_used_bytes", GPU_HAS_MEM_USED, s->mem_used_bytes},
		    {"memory_free_bytes", GPU_HAS_MEM_FREE, s->mem_free_bytes},
		};
		for (size_t k = 0; k < VD_ARRAY_LEN(mem); k++)
			json_object_set_new(o, mem[k].key,
					    dev->has_sample && (s->valid & mem[k].bit)
						? json_integer((json_int_t)mem[k].value)
						: json_null());
		json_object_set_new(o, "memory_models_bytes",
				    json_integer((json_int_t)fleet_local_gpu_models_bytes(
					d->fleet, (int)dev->index)));
		uint64_t others;
		json_object_set_new(o, "memory_other_bytes",
				    gpu_device_used_by_others(dev, &others)
					? json_integer((json_int_t)others)
					: json_null());
		json_object_set_new(o, "memory_reserved_bytes",
				    json_integer((json_int_t)gpu_policy_reserved_bytes(
					d->policy, (int)dev->index)));
		json_array_append_new(list, o);
	}
	return list;
}

/*
 * Seed 001's fields, next to vramd's own so its clients keep working: "running" (jobs
 * dispatched and not final), "queue.total_jobs" and "queue.by_status" (the store's
 * counts), "resources.vram" (the GPUs of "gpus" summed, in bytes) and
 * "resources.loaded_models" (the names of "loaded_models").
 */
static void
api_stats_seed_fields(json_t *o, const struct store_counts *counts, const json_t *gpus,
		      const json_t *loaded)
{
	json_object_set_new(
	    o, "running",
	    json_integer(counts->by_status[JOB_PENDING] + counts->by_status[JOB_RUNNING]));
	json_t *queue = json_object_get(o, "queue");
	json_object_set_new(queue, "total_jobs", json_integer((json_int_t)counts->total));
	json_object_set_new(queue, "by_status", api_status_counts(counts->by_status));
	json_int_t total = 0, used = 0, free_bytes = 0;
	size_t i;
	json_t *g;
	json_array_foreach(gpus, i, g)
	{
		total += json_integer_value(json_object_get(g, "memory_total_bytes"));
		used += json_integer_value(json_object_get(g, "memory_used_bytes"));
		free_bytes += json_integer_value(json_object_get(g, "memory_free_bytes"));
	}
	json_t *names = json_array();
	json_array_foreach(loaded, i, g)
	{
		json_array_append(names, json_object_get(g, "model"));
	}
	json_object_set_new(o, "resources",
			    json_pack("{s:{s:I,s:I,s:I},s:o}", "vram", "total", total, "used", used,
				      "free", free_bytes, "loaded_models", names));
}

void
api_stats(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	struct store_counts counts;
	char *cause = NULL;
	if (store_counts(d->store, &counts, &cause) < 0) {
		vd_http_reply_error(req, 500, "cannot count jobs: %s", cause);
		free(cause);
		return;
	}
	struct engine_counters ec;
	fleet_counters(d->fleet, &ec);
	/* Per priority, each status as the store counts it, but "queued" as the queue holds
	 * it now: jobs of the front doors are stored only once they end. */
	json_t *by_priority = json_object();
	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		json_t *row = api_status_counts(counts.by_priority_status[p]);
		json_object_set_new(row, "queued",
				    json_integer((json_int_t)queue_length_priority(
					d->queue, (enum job_priority)p)));
		json_object_set_new(row, "total", json_integer((json_int_t)counts.by_priority[p]));
		json_object_set_new(by_priority, job_priority_name((enum job_priority)p), row);
	}
	json_t *o = json_object();
	json_object_set_new(o, "uptime_s", json_integer(daemon_uptime_s(d)));
	json_object_set_new(o, "queue",
			    json_pack("{s:I,s:I}", "length", (json_int_t)queue_length(d->queue),
				      "max", (json_int_t)queue_capacity(d->queue)));
	json_object_set_new(o, "jobs",
			    json_pack("{s:I,s:o,s:o}", "total", (json_int_t)counts.total,
				      "by_status", api_status_counts(counts.by_status),
				      "by_priority", by_priority));
	json_object_set_new(o, "per_model", api_stats_per_model(d, counts.per_model));
	json_object_set_new(o, "keys", api_stats_keys(d, api_request_key(req), counts.per_key));
	json_object_set_new(o, "loads", json_integer(ec.loads));
	json_object_set_new(o, "unloads", json_integer(ec.unloads));
	json_object_set_new(o, "load_failures", json_integer(ec.load_failures));
	json_object_set_new(o, "cpu_spills", json_integer(ec.cpu_spills));
	json_object_set_new(o, "dispatched", json_integer(ec.dispatched));
	json_object_set_new(o, "retries", json_integer(ec.retries));
	json_t *gpus = api_stats_gpus(d);
	json_t *loaded = fleet_loaded_models_json(d->fleet, false);
	api_stats_seed_fields(o, &counts, gpus, loaded);
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "loaded_models", loaded);
	vd_http_reply_json(req, 200, o);
}

void
api_health(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	bool up = true;
	json_t *servers = json_array();
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		const struct node *n = fleet_node(d->fleet, i);
		json_t *s = monitor_server_json(n->monitor);
		json_object_set_new(s, "node", json_string(n->name));
		json_array_append_new(servers, s);
		up = up && n->up;
	}
	const char *telemetry = d->budget_mode	   ? "budget"
				: d->cpu_only_mode ? "none"
						   : gpu_monitor_source(d->gpus);
	const char *reason = gpu_monitor_reason(d->gpus);
	json_t *o = json_object();
	json_object_set_new(o, "status", json_string(up ? "ok" : "degraded"));
	json_object_set_new(o, "version", json_string(VRAMD_VERSION));
	json_object_set_new(o, "uptime_s", json_integer(daemon_uptime_s(d)));
	json_object_set_new(o, "gpu_telemetry", json_string(telemetry));
	json_object_set_new(o, "gpu_telemetry_reason", reason ? json_string(reason) : json_null());
	json_object_set_new(
	    o, "gpu_count",
	    json_integer(d->budget_mode ? 1 : (json_int_t)gpu_monitor_count(d->gpus)));
	json_object_set_new(o, "monitoring", json_boolean(gpu_monitor_is_running(d->gpus)));
	json_object_set_new(o, "servers", servers);
	json_t *cluster = cluster_health_json(d->cluster);
	if (cluster != NULL)
		json_object_set_new(o, "cluster", cluster);
	vd_http_reply_json(req, 200, o);
}

void
api_cluster(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	vd_http_reply_json(req, 200, cluster_json(d->cluster));
}

static int
api_models_by_name(const void *a, const void *b)
{
	const char *na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
	const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
	return strcmp(na, nb);
}

/* The entry of model rm in items (one per model name across the nodes), created from the
 * first node that has it. */
static json_t *
api_models_entry(json_t *items, const struct registry_model *rm, const struct node *n)
{
	json_t *o = json_object_get(items, rm->name);
	if (o != NULL)
		return o;
	o = registry_model_to_json(rm);
	json_object_set_new(o, "server", json_string(n->url));
	json_object_set_new(o, "nodes", json_array());
	json_object_set_new(o, "loaded_on", json_array());
	json_object_set_new(o, "running", json_integer(0));
	json_object_set_new(o, "state", json_string("unloaded"));
	json_object_set_new(o, "gpu", json_null());
	json_object_set_new(items, rm->name, o);
	return o;
}

void
api_models(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *byname = json_object();
	for (size_t ni = 0; ni < fleet_count(d->fleet); ni++) {
		const struct node *n = fleet_node(d->fleet, ni);
		for (size_t i = 0; i < registry_count(n->registry); i++) {
			const struct registry_model *rm = registry_at(n->registry, i);
			if (!rm->installed)
				continue;
			json_t *o = api_models_entry(byname, rm, n);
			json_array_append_new(json_object_get(o, "nodes"), json_string(n->name));
			json_t *rt = engine_model_json(n->engine, rm->name);
			if (rt == NULL)
				continue;
			json_object_set_new(
			    o, "running",
			    json_integer(json_integer_value(json_object_get(o, "running")) +
					 json_integer_value(json_object_get(rt, "running"))));
			/* Every node that holds it (loading or loaded), with the VRAM Ollama
			 * reports for it there (0 until it does; null gpu: on the CPU). */
			if (strcmp(json_string_value(json_object_get(rt, "state")), "loaded") ==
				0 ||
			    strcmp(json_string_value(json_object_get(rt, "state")), "loading") == 0)
				json_array_append_new(
				    json_object_get(o, "loaded_on"),
				    json_pack("{s:s,s:s,s:O,s:s,s:I}", "node", n->name, "server",
					      n->url, "gpu", json_object_get(rt, "gpu"), "state",
					      json_string_value(json_object_get(rt, "state")),
					      "size_vram_bytes",
					      (json_int_t)(rm->loaded ? rm->size_vram_bytes : 0)));
			/* Where it runs: the first node that holds it. */
			if (strcmp(json_string_value(json_object_get(o, "state")), "unloaded") ==
			    0) {
				json_object_set(o, "state", json_object_get(rt, "state"));
				json_object_set(o, "gpu", json_object_get(rt, "gpu"));
				if (strcmp(json_string_value(json_object_get(rt, "state")),
					   "unloaded") != 0)
					json_object_set_new(o, "server", json_string(n->url));
			}
			json_decref(rt);
		}
	}
	size_t k = 0;
	json_t **items = xcalloc(json_object_size(byname) + 1, sizeof(*items));
	const char *key;
	json_t *o;
	json_object_foreach(byname, key, o)
	{
		struct queue_model_summary qs;
		queue_summary(d->queue, key, &qs);
		json_object_set_new(o, "queued",
				    json_integer(qs.count[0] + qs.count[1] + qs.count[2]));
		items[k++] = json_incref(o);
	}
	json_decref(byname);
	qsort(items, k, sizeof(*items), api_models_by_name);
	json_t *list = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(list, items[i]);
	free(items);
	vd_http_reply_json(req, 200, json_pack("{s:o}", "models", list));
}
