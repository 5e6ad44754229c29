/*
 * api-gpu.c: the /api/gpu endpoints (docs/api.md, section "GPUs"): status, metrics,
 * history, temperature trend, memory and reservations, throttle status, monitoring
 * start/stop, and the GPU configuration (GET and PUT).
 *
 * Every handler reads the GPU monitor (gpu.h) and the policy (gpu-policy.h) and
 * answers at once; nothing here blocks. Unknown values are JSON null, never 0.
 * PUT /api/gpu/config validates every key against api_gpu_keys[] (the API names and
 * ranges), then hands the configuration keys to config_set_many (which checks the
 * ordering of the thresholds) and applies the rest only when that succeeded, so a bad
 * request changes nothing.
 */
#include "api.h"

#include "api-parse.h"
#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "events.h"
#include "gpu-policy.h"
#include "gpu.h"
#include "http-util.h"
#include "log.h"
#include "node.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ull * 1024ull)

/* --- Helpers ---------------------------------------------------------------------- */

static json_t *
api_gpu_time_wall(int64_t wall_ms)
{
	if (wall_ms <= 0)
		return json_null();
	char buf[40];
	vd_format_rfc3339_ms(wall_ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
api_gpu_time_mono(int64_t mono_ms)
{
	if (mono_ms <= 0)
		return json_null();
	return api_gpu_time_wall(vd_now_wall_ms() + (mono_ms - vd_now_mono_ms()));
}

static json_t *
api_gpu_bytes(bool known, uint64_t v)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *
api_gpu_int(const struct gpu_sample *s, uint32_t bit, int64_t v)
{
	return (s->valid & bit) ? json_integer(v) : json_null();
}

static json_t *
api_gpu_watts(const struct gpu_sample *s, uint32_t bit, uint32_t mw)
{
	return (s->valid & bit) ? json_real(round(mw / 100.0) / 10.0) : json_null();
}

static const char *
api_gpu_source(const struct daemon *d)
{
	if (d->budget_mode)
		return "budget";
	return gpu_monitor_source(d->gpus);
}

static char *
api_gpu_list(const struct daemon *d)
{
	char *list = xstrdup("");
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		char *next =
		    xasprintf("%s%s%u", list, i ? ", " : "", gpu_monitor_device(d->gpus, i)->index);
		free(list);
		list = next;
	}
	return list;
}

static void
api_gpu_not_found(struct vd_http_req *req, const struct daemon *d, const char *what)
{
	char *list = api_gpu_list(d);
	vd_http_reply_error(req, 404, "gpu %s not found (GPUs: %s)", what, *list ? list : "none");
	free(list);
}

/*
 * Resolves the ?gpu= parameter: *dev NULL when absent. Returns false after answering
 * the request (400 or 404).
 */
static bool
api_gpu_param(struct vd_http_req *req, struct daemon *d, const struct gpu_device **dev)
{
	*dev = NULL;
	char *text = vd_http_query_param(req, "gpu");
	if (text == NULL)
		return true;
	bool ok = true;
	int64_t index;
	if (vd_parse_int64(text, 0, UINT32_MAX, &index, "gpu", NULL) == 0) {
		*dev = gpu_monitor_find(d->gpus, (uint32_t)index);
	} else if (vd_str_has_prefix(text, "GPU-") || vd_str_has_prefix(text, "MIG-")) {
		*dev = gpu_monitor_find_uuid(d->gpus, text);
	} else {
		vd_http_reply_error(req, 400, "parameter 'gpu' must be a GPU index or UUID");
		ok = false;
	}
	if (ok && *dev == NULL) {
		api_gpu_not_found(req, d, text);
		ok = false;
	}
	free(text);
	return ok;
}

/* Running jobs per GPU (from the engine's resident models). */
static int64_t
api_gpu_running(const struct daemon *d, int gpu)
{
	int64_t n = 0;
	json_t *list = fleet_loaded_models_json(d->fleet, true);
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m)
	{
		json_t *g = json_object_get(m, "gpu");
		if (json_is_integer(g) && json_integer_value(g) == gpu)
			n += json_integer_value(json_object_get(m, "running"));
	}
	json_decref(list);
	return n;
}

static json_t *
api_gpu_throttle_reasons(const struct gpu_sample *s)
{
	if (!(s->valid & GPU_HAS_CLOCK_EVENTS))
		return json_null();
	const struct gpu_clock_event_name *names;
	size_t n = gpu_clock_event_names(&names);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		if (s->clock_event_reasons & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	return a;
}

static json_t *
api_gpu_reasons(const struct thermal_status *st)
{
	json_t *a = json_array();
	for (size_t i = 0; st != NULL && i < st->nreasons; i++)
		json_array_append_new(a, json_string(st->reasons[i]));
	return a;
}

static int
api_gpu_max_concurrent(const struct daemon *d, double speed)
{
	int cap = (int)config_int(d->config, CONFIG_MAX_CONCURRENT_PER_MODEL);
	if (speed <= 0)
		return 0;
	if (speed >= 1.0)
		return cap;
	int scaled = (int)((double)cap * speed);
	return scaled < 1 ? 1 : scaled;
}

static bool
api_gpu_paused(const struct thermal_status *st)
{
	return st != NULL && st->state == THERMAL_CRITICAL &&
	       st->paused_until_ms > vd_now_mono_ms();
}

/* The GPU object (full) or its summary. */
static json_t *
api_gpu_json(struct daemon *d, const struct gpu_device *dev, bool full)
{
	const struct thermal_status *st = gpu_policy_status(d->policy, (int)dev->index);
	const char *state = gpu_policy_state_name(d->policy, (int)dev->index);
	if (dev->state == GPU_DEVICE_LOST || !dev->has_sample)
		state = "UNAVAILABLE";
	bool live = dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE;
	const struct gpu_sample *s = &dev->latest;
	struct gpu_sample none = {0};
	if (!live)
		s = &none;
	struct gpu_policy_memory mem;
	gpu_policy_memory(d->policy, (int)dev->index, &mem);
	double speed = gpu_policy_speed(d->policy, (int)dev->index);
	json_t *o = json_object();
	json_object_set_new(o, "index", json_integer(dev->index));
	if (full) {
		json_object_set_new(o, "uuid", json_string(dev->uuid));
		json_object_set_new(o, "name", json_string(dev->name));
		json_object_set_new(o, "pci_bus_id", json_string(dev->bus_id));
		json_object_set_new(o, "state", json_string(state));
		json_object_set_new(o, "state_since",
				    api_gpu_time_mono(st != NULL ? st->since_ms : 0));
		json_object_set_new(o, "state_reasons", api_gpu_reasons(st));
		json_object_set_new(o, "speed_multiplier", json_real(speed));
		json_object_set_new(o, "dispatch_paused", json_boolean(api_gpu_paused(st)));
		json_object_set_new(
		    o, "paused_until",
		    api_gpu_time_mono(api_gpu_paused(st) ? st->paused_until_ms : 0));
		if (dev->state == GPU_DEVICE_LOST)
			json_object_set_new(o, "lost_at", api_gpu_time_mono(dev->state_since_ms));
		json_object_set_new(o, "memory_total_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_TOTAL, (int64_t)s->mem_total_bytes));
		json_object_set_new(o, "memory_used_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_USED, (int64_t)s->mem_used_bytes));
		json_object_set_new(o, "memory_free_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_FREE, (int64_t)s->mem_free_bytes));
		json_object_set_new(o, "memory_models_bytes",
				    json_integer((json_int_t)mem.models_bytes));
		json_object_set_new(o, "memory_other_bytes",
				    api_gpu_bytes(mem.known, mem.other_bytes));
		json_object_set_new(o, "memory_reserved_bytes",
				    json_integer((json_int_t)mem.reserved_bytes));
		json_object_set_new(o, "memory_other_percent",
				    mem.known ? json_real(round(mem.other_percent * 10) / 10)
					      : json_null());
		json_object_set_new(o, "gpu_util_percent",
				    api_gpu_int(s, GPU_HAS_UTIL_GPU, s->util_gpu_pct));
		json_object_set_new(o, "memory_util_percent",
				    api_gpu_int(s, GPU_HAS_UTIL_MEM, s->util_mem_pct));
		json_object_set_new(o, "temperature_c",
				    api_gpu_int(s, GPU_HAS_TEMPERATURE, s->temperature_c));
		json_object_set_new(o, "slowdown_temp_c",
				    api_gpu_int(s, GPU_HAS_SLOWDOWN, s->slowdown_c));
		json_object_set_new(o, "shutdown_temp_c",
				    api_gpu_int(s, GPU_HAS_SHUTDOWN, s->shutdown_c));
		json_object_set_new(o, "power_w",
				    api_gpu_watts(s, GPU_HAS_POWER_DRAW, s->power_draw_mw));
		json_object_set_new(o, "power_limit_w",
				    api_gpu_watts(s, GPU_HAS_POWER_LIMIT, s->power_limit_mw));
		json_object_set_new(o, "fan_percent", api_gpu_int(s, GPU_HAS_FAN, s->fan_pct));
		json_object_set_new(o, "sm_clock_mhz",
				    api_gpu_int(s, GPU_HAS_SM_CLOCK, s->sm_clock_mhz));
		json_object_set_new(o, "throttle_reasons", api_gpu_throttle_reasons(s));
		if (s->valid & GPU_HAS_PROCESSES) {
			json_t *procs = json_array();
			for (size_t i = 0; i < s->nprocesses; i++) {
				const struct gpu_process *pr = &s->processes[i];
				json_t *po = json_object();
				json_object_set_new(po, "pid", json_integer(pr->pid));
				json_object_set_new(
				    po, "name", pr->name[0] ? json_string(pr->name) : json_null());
				json_object_set_new(po, "used_bytes",
						    api_gpu_bytes(pr->used_known, pr->used_bytes));
				json_object_set_new(po, "ours", json_boolean(pr->is_ollama));
				json_array_append_new(procs, po);
			}
			json_object_set_new(o, "processes", procs);
		} else {
			json_object_set_new(o, "processes", json_null());
		}
		json_object_set_new(o, "source", json_string(api_gpu_source(d)));
		json_object_set_new(o, "sampled_at",
				    api_gpu_time_wall(dev->has_sample ? dev->latest.wall_ms : 0));
		return o;
	}
	json_object_set_new(o, "name", json_string(dev->name));
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "temperature_c",
			    api_gpu_int(s, GPU_HAS_TEMPERATURE, s->temperature_c));
	json_object_set_new(o, "memory_used_bytes",
			    api_gpu_int(s, GPU_HAS_MEM_USED, (int64_t)s->mem_used_bytes));
	json_object_set_new(o, "memory_total_bytes",
			    api_gpu_int(s, GPU_HAS_MEM_TOTAL, (int64_t)s->mem_total_bytes));
	json_object_set_new(o, "memory_other_percent",
			    mem.known ? json_real(round(mem.other_percent * 10) / 10)
				      : json_null());
	json_object_set_new(o, "speed_multiplier", json_real(speed));
	return o;
}

/* The rank of a state name in thermal.h's order (OPTIMAL .. SHUTDOWN, UNAVAILABLE last):
 * the overall state is the worst. */
static int
api_gpu_state_rank(const char *state)
{
	for (int i = 0; i < THERMAL_NSTATES; i++)
		if (strcmp(thermal_state_name((enum thermal_state)i), state) == 0)
			return i;
	return 0;
}

/* --- GET /api/gpu/status, /api/gpu/status/all --------------------------------------- */

void
api_gpu_status(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	const struct gpu_device *one;
	if (!api_gpu_param(req, d, &one))
		return;
	if (one != NULL) {
		vd_http_reply_json(req, 200, api_gpu_json(d, one, true));
		return;
	}
	json_t *gpus = json_array();
	const char *overall = NULL;
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		json_t *g = api_gpu_json(d, gpu_monitor_device(d->gpus, i), false);
		const char *state = json_string_value(json_object_get(g, "state"));
		if (overall == NULL || api_gpu_state_rank(state) > api_gpu_state_rank(overall))
			overall = state;
		json_array_append_new(gpus, g);
	}
	json_t *o = json_object();
	json_object_set_new(o, "telemetry", json_string(api_gpu_source(d)));
	json_object_set_new(o, "monitoring", json_boolean(gpu_monitor_is_running(d->gpus)));
	json_object_set_new(o, "gpu_count", json_integer((json_int_t)json_array_size(gpus)));
	json_object_set_new(o, "overall_state", overall ? json_string(overall) : json_null());
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

void
api_gpu_status_all(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *gpus = json_array();
	bool unified = false;
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		unified = unified || dev->unified_memory;
		json_array_append_new(gpus, api_gpu_json(d, dev, true));
	}
	const struct gpu_host_memory *host = gpu_monitor_host(d->gpus);
	json_t *h = json_object();
	json_object_set_new(h, "memory_total_bytes", api_gpu_bytes(host->valid, host->total_bytes));
	json_object_set_new(h, "memory_available_bytes",
			    api_gpu_bytes(host->valid, host->available_bytes));
	json_object_set_new(h, "unified_memory", json_boolean(unified));
	json_t *o = json_object();
	json_object_set_new(o, "telemetry", json_string(api_gpu_source(d)));
	json_object_set_new(o, "monitoring", json_boolean(gpu_monitor_is_running(d->gpus)));
	json_object_set_new(o, "host", h);
	/* Now on this machine's clock: with each GPU's sampled_at, how old its sample is
	 * (a vramd reading these GPUs remotely needs that; its own clock may differ). */
	json_object_set_new(o, "served_at", api_gpu_time_wall(vd_now_wall_ms()));
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

/* --- GET /api/gpu/metrics, /metrics/history, /temperature/trend ---------------------- */

void
api_gpu_metrics(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *gpus = json_array();
	int64_t newest = 0;
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		bool live = dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE;
		struct gpu_sample none = {0};
		const struct gpu_sample *s = live ? &dev->latest : &none;
		if (dev->has_sample && dev->latest.wall_ms > newest)
			newest = dev->latest.wall_ms;
		json_t *o = json_object();
		json_object_set_new(o, "index", json_integer(dev->index));
		json_object_set_new(
		    o, "state",
		    json_string(live ? gpu_policy_state_name(d->policy, (int)dev->index)
				     : "UNAVAILABLE"));
		json_object_set_new(o, "temperature_c",
				    api_gpu_int(s, GPU_HAS_TEMPERATURE, s->temperature_c));
		json_object_set_new(o, "gpu_util_percent",
				    api_gpu_int(s, GPU_HAS_UTIL_GPU, s->util_gpu_pct));
		json_object_set_new(o, "memory_util_percent",
				    api_gpu_int(s, GPU_HAS_UTIL_MEM, s->util_mem_pct));
		json_object_set_new(o, "memory_used_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_USED, (int64_t)s->mem_used_bytes));
		json_object_set_new(o, "memory_total_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_TOTAL, (int64_t)s->mem_total_bytes));
		json_object_set_new(o, "memory_free_bytes",
				    api_gpu_int(s, GPU_HAS_MEM_FREE, (int64_t)s->mem_free_bytes));
		json_object_set_new(o, "power_w",
				    api_gpu_watts(s, GPU_HAS_POWER_DRAW, s->power_draw_mw));
		json_object_set_new(o, "power_limit_w",
				    api_gpu_watts(s, GPU_HAS_POWER_LIMIT, s->power_limit_mw));
		json_object_set_new(o, "fan_percent", api_gpu_int(s, GPU_HAS_FAN, s->fan_pct));
		json_object_set_new(o, "sm_clock_mhz",
				    api_gpu_int(s, GPU_HAS_SM_CLOCK, s->sm_clock_mhz));
		json_array_append_new(gpus, o);
	}
	json_t *o = json_object();
	json_object_set_new(o, "sampled_at", api_gpu_time_wall(newest));
	json_object_set_new(o, "interval_ms", json_integer(gpu_monitor_interval_ms(d->gpus)));
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

void
api_gpu_history(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	const struct gpu_device *one;
	if (!api_gpu_param(req, d, &one))
		return;
	int64_t limit = 0;
	if (!vd_http_query_int(req, "limit", 1, 10000, &limit))
		return;
	json_t *gpus = json_array();
	size_t capacity = 0;
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		capacity = dev->ring_len;
		if (one != NULL && dev != one)
			continue;
		size_t n = gpu_device_history_count(dev);
		size_t from = limit > 0 && (size_t)limit < n ? n - (size_t)limit : 0;
		json_t *samples = json_array();
		for (size_t k = from; k < n; k++) {
			const struct gpu_history_point *pt = gpu_device_history_at(dev, k);
			json_t *s = json_object();
			json_object_set_new(s, "t", api_gpu_time_wall(pt->wall_ms));
			json_object_set_new(s, "temperature_c",
					    (pt->valid & GPU_HAS_TEMPERATURE)
						? json_integer(pt->temperature_c)
						: json_null());
			json_object_set_new(s, "gpu_util_percent",
					    (pt->valid & GPU_HAS_UTIL_GPU)
						? json_integer(pt->util_gpu_pct)
						: json_null());
			json_object_set_new(s, "memory_used_bytes",
					    (pt->valid & GPU_HAS_MEM_USED)
						? json_integer((json_int_t)pt->mem_used_bytes)
						: json_null());
			json_object_set_new(s, "power_w",
					    (pt->valid & GPU_HAS_POWER_DRAW)
						? json_real(round(pt->power_draw_mw / 100.0) / 10.0)
						: json_null());
			json_array_append_new(samples, s);
		}
		json_t *g = json_object();
		json_object_set_new(g, "index", json_integer(dev->index));
		json_object_set_new(g, "samples", samples);
		json_array_append_new(gpus, g);
	}
	json_t *o = json_object();
	json_object_set_new(o, "interval_ms", json_integer(gpu_monitor_interval_ms(d->gpus)));
	json_object_set_new(o, "capacity", json_integer((json_int_t)capacity));
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

void
api_gpu_trend(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	const struct gpu_device *one;
	if (!api_gpu_param(req, d, &one))
		return;
	double minutes = 5;
	char *text = vd_http_query_param(req, "minutes");
	if (text != NULL) {
		int rc = vd_parse_double(text, 0, 1440, &minutes, "minutes", NULL);
		free(text);
		if (rc < 0 || !(minutes > 0)) {
			vd_http_reply_error(
			    req, 400, "parameter 'minutes' must be a number between 0 and 1440");
			return;
		}
	}
	int64_t now = vd_now_mono_ms();
	json_t *gpus = json_array();
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		if (one != NULL && dev != one)
			continue;
		struct gpu_temp_trend t;
		gpu_device_temp_trend(dev, now, (int64_t)(minutes * 60000.0), &t);
		bool known = t.nsamples >= 2;
		bool live = dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE &&
			    (dev->latest.valid & GPU_HAS_TEMPERATURE);
		json_t *g = json_object();
		json_object_set_new(g, "index", json_integer(dev->index));
		json_object_set_new(g, "samples", json_integer((json_int_t)t.nsamples));
		json_object_set_new(g, "current_c",
				    live ? json_integer(dev->latest.temperature_c) : json_null());
		json_object_set_new(g, "min_c", known ? json_integer(t.min_c) : json_null());
		json_object_set_new(g, "max_c", known ? json_integer(t.max_c) : json_null());
		json_object_set_new(g, "avg_c",
				    known ? json_real(round(t.avg_c * 10) / 10) : json_null());
		json_object_set_new(g, "trend",
				    json_string(known ? gpu_trend_name(t.direction) : "unknown"));
		json_object_set_new(g, "slope_c_per_min",
				    known ? json_real(round(t.slope_c_per_min * 100) / 100)
					  : json_null());
		json_array_append_new(gpus, g);
	}
	json_t *o = json_object();
	json_object_set_new(o, "minutes", json_real(minutes));
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

/* --- Memory and reservations ----------------------------------------------------------- */

static json_t *
api_gpu_reservation_json(const struct gpu_reservation *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "gpu", json_integer(r->gpu));
	json_object_set_new(o, "mb", json_integer((json_int_t)(r->bytes / MIB)));
	json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
	json_object_set_new(o, "status", json_string(r->satisfied ? "satisfied" : "pending"));
	json_object_set_new(o, "ttl_s", json_integer(r->ttl_ms / 1000));
	json_object_set_new(o, "created_at", api_gpu_time_wall(r->created_wall_ms));
	json_object_set_new(o, "expires_at", api_gpu_time_wall(r->expires_wall_ms));
	return o;
}

void
api_gpu_memory(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	/* A follower shows the reservations the leader keeps, as stored now. */
	if (cluster_is_follower(d->cluster))
		gpu_policy_load_reservations(d->policy);
	json_t *gpus = json_array();
	uint64_t total = 0;
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		struct gpu_policy_memory m;
		gpu_policy_memory(d->policy, (int)dev->index, &m);
		json_t *o = json_object();
		json_object_set_new(o, "index", json_integer(dev->index));
		json_object_set_new(o, "total_bytes", api_gpu_bytes(m.known, m.total_bytes));
		json_object_set_new(o, "free_bytes", api_gpu_bytes(m.known, m.free_bytes));
		json_object_set_new(o, "limit_bytes", api_gpu_bytes(m.known, m.limit_bytes));
		json_object_set_new(o, "reserve_bytes", json_integer((json_int_t)m.reserve_bytes));
		json_object_set_new(o, "other_bytes", api_gpu_bytes(m.known, m.other_bytes));
		json_object_set_new(o, "models_bytes", json_integer((json_int_t)m.models_bytes));
		json_object_set_new(
		    o, "idle_models_bytes",
		    json_integer((json_int_t)(m.models_bytes - m.busy_models_bytes)));
		json_object_set_new(o, "reserved_bytes",
				    json_integer((json_int_t)m.reserved_bytes));
		json_object_set_new(o, "available_bytes",
				    api_gpu_bytes(m.known, m.available_bytes));
		json_object_set_new(o, "available_mb",
				    api_gpu_bytes(m.known, m.available_bytes / MIB));
		json_object_set_new(o, "reservable_bytes",
				    api_gpu_bytes(m.known, m.reservable_bytes));
		json_object_set_new(o, "reservable_mb",
				    api_gpu_bytes(m.known, m.reservable_bytes / MIB));
		json_array_append_new(gpus, o);
		if (m.known)
			total += m.available_bytes;
	}
	json_t *res = json_array();
	for (size_t i = 0; i < gpu_policy_reservation_count(d->policy); i++)
		json_array_append_new(
		    res, api_gpu_reservation_json(gpu_policy_reservation_at(d->policy, i)));
	json_t *o = json_object();
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "total_available_bytes", json_integer((json_int_t)total));
	json_object_set_new(o, "total_available_mb", json_integer((json_int_t)(total / MIB)));
	json_object_set_new(o, "reservations", res);
	vd_http_reply_json(req, 200, o);
}

static int
api_gpu_errno_status(int rc)
{
	switch (rc) {
	case -EINVAL:
		return 400;
	case -ENODEV:
	case -ENOENT:
		return 404;
	case -EEXIST:
		return 409;
	case -ENOSPC:
		return 507;
	default:
		return 500;
	}
}

static bool
api_gpu_allocate_field_known(const char *name)
{
	static const char *const fields[] = {"id", "mb", "gpu", "ttl_s", "renew"};
	for (size_t i = 0; i < VD_ARRAY_LEN(fields); i++)
		if (strcmp(name, fields[i]) == 0)
			return true;
	return false;
}

int
api_gpu_allocate_parse(const json_t *body, struct api_gpu_allocation *out, char **cause)
{
	*out = (struct api_gpu_allocation){.ttl_s = -1};
	char *unknown =
	    api_unknown_fields(body, api_gpu_allocate_field_known, "id, mb, gpu, ttl_s, renew");
	if (unknown != NULL) {
		*cause = unknown;
		return 400;
	}
	json_t *id = json_object_get(body, "id");
	json_t *mb = json_object_get(body, "mb");
	json_t *gpu = json_object_get(body, "gpu");
	json_t *ttl = json_object_get(body, "ttl_s");
	json_t *renew = json_object_get(body, "renew");
	if (id == NULL)
		return vd_fail(cause, 400, "field 'id' is required");
	if (!json_is_string(id) || !gpu_reservation_id_is_valid(json_string_value(id)))
		return vd_fail(cause, 400, "field 'id' must be 1-64 characters of A-Za-z0-9._-");
	if (renew != NULL && !json_is_boolean(renew))
		return vd_fail(cause, 400, "field 'renew' must be true or false");
	out->renew = json_is_true(renew);
	if (mb == NULL && !out->renew)
		return vd_fail(cause, 400, "field 'mb' is required");
	if (mb != NULL) {
		if (!json_is_integer(mb) || json_integer_value(mb) < 1 ||
		    json_integer_value(mb) > 16777216)
			return vd_fail(cause, 400, "field 'mb' must be a positive integer");
		out->bytes = (uint64_t)json_integer_value(mb) * MIB;
	}
	if (gpu != NULL && !json_is_null(gpu)) {
		bool index_ok = json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
				json_integer_value(gpu) <= INT32_MAX;
		if (!index_ok && !json_is_string(gpu))
			return vd_fail(cause, 400, "field 'gpu' must be a GPU index or UUID");
		out->gpu = gpu;
	}
	if (ttl != NULL) {
		if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
		    json_integer_value(ttl) > 604800)
			return vd_fail(cause, 400,
				       "field 'ttl_s' must be an integer between 1 and 604800");
		out->ttl_s = json_integer_value(ttl);
	} else if (out->renew) {
		out->ttl_s = 0; /* keep the reservation's own ttl */
	}
	out->id = json_string_value(id);
	return 0;
}

void
api_gpu_allocate(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	struct api_gpu_allocation a;
	char *cause = NULL;
	int status = api_gpu_allocate_parse(body, &a, &cause);
	if (status != 0) {
		vd_http_reply_error(req, status, "%s", cause);
		goto out;
	}
	int gpu_index = -1;
	if (a.gpu != NULL) {
		const struct gpu_device *dev =
		    json_is_integer(a.gpu)
			? gpu_monitor_find(d->gpus, (uint32_t)json_integer_value(a.gpu))
			: gpu_monitor_find_uuid(d->gpus, json_string_value(a.gpu));
		if (dev == NULL) {
			char *what = json_is_string(a.gpu)
					 ? xstrdup(json_string_value(a.gpu))
					 : xasprintf("%lld", (long long)json_integer_value(a.gpu));
			api_gpu_not_found(req, d, what);
			free(what);
			goto out;
		}
		gpu_index = (int)dev->index;
	}
	int64_t ttl_s = a.ttl_s >= 0 ? a.ttl_s : gpu_policy_default_ttl_s(d->policy);
	struct gpu_reservation r;
	int rc = gpu_policy_reserve(d->policy, a.id, gpu_index, a.bytes, ttl_s * 1000, a.renew, &r,
				    &cause);
	if (rc < 0) {
		vd_http_reply_error(req, api_gpu_errno_status(rc), "%s", cause);
		goto out;
	}
	vd_http_reply_json(req, r.satisfied ? 200 : 202, api_gpu_reservation_json(&r));
out:
	free(cause);
	json_decref(body);
}

static bool
api_gpu_deallocate_field_known(const char *name)
{
	return strcmp(name, "id") == 0;
}

void
api_gpu_deallocate(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	json_t *id = json_object_get(body, "id");
	char *unknown = api_unknown_fields(body, api_gpu_deallocate_field_known, "id");
	if (unknown != NULL) {
		vd_http_reply_error(req, 400, "%s", unknown);
		free(unknown);
	} else if (id == NULL) {
		vd_http_reply_error(req, 400, "field 'id' is required");
	} else if (!json_is_string(id)) {
		vd_http_reply_error(req, 400, "field 'id' must be a string");
	} else {
		struct gpu_reservation r;
		char *cause = NULL;
		int rc = gpu_policy_release(d->policy, json_string_value(id), &r, &cause);
		if (rc < 0) {
			vd_http_reply_error(req, api_gpu_errno_status(rc), "%s", cause);
			free(cause);
		} else {
			json_t *o = json_object();
			json_object_set_new(o, "id", json_string(r.id));
			json_object_set_new(o, "gpu", json_integer(r.gpu));
			json_object_set_new(o, "mb", json_integer((json_int_t)(r.bytes / MIB)));
			json_object_set_new(o, "released", json_true());
			vd_http_reply_json(req, 200, o);
		}
	}
	json_decref(body);
}

/* --- Throttle status -------------------------------------------------------------------- */

void
api_gpu_throttle(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *gpus = json_array();
	for (size_t i = 0; i < gpu_monitor_count(d->gpus); i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		int gpu = (int)dev->index;
		const struct thermal_status *st = gpu_policy_status(d->policy, gpu);
		double speed = gpu_policy_speed(d->policy, gpu);
		json_t *o = json_object();
		json_object_set_new(o, "index", json_integer(gpu));
		json_object_set_new(o, "state", json_string(gpu_policy_state_name(d->policy, gpu)));
		json_object_set_new(o, "since", api_gpu_time_mono(st != NULL ? st->since_ms : 0));
		json_object_set_new(o, "speed_multiplier", json_real(speed));
		json_object_set_new(o, "max_concurrent",
				    json_integer(gpu_policy_accepts_work(d->policy, gpu)
						     ? api_gpu_max_concurrent(d, speed)
						     : 0));
		json_object_set_new(o, "running", json_integer(api_gpu_running(d, gpu)));
		json_object_set_new(o, "accepts_work",
				    json_boolean(gpu_policy_accepts_work(d->policy, gpu)));
		json_object_set_new(o, "dispatch_paused", json_boolean(api_gpu_paused(st)));
		json_object_set_new(
		    o, "paused_until",
		    api_gpu_time_mono(api_gpu_paused(st) ? st->paused_until_ms : 0));
		json_object_set_new(o, "cooldown_until",
				    api_gpu_time_mono(st != NULL ? st->cooldown_until_ms : 0));
		json_object_set_new(o, "reasons", api_gpu_reasons(st));
		json_array_append_new(gpus, o);
	}
	json_t *o = json_object();
	json_object_set_new(o, "gpus", gpus);
	vd_http_reply_json(req, 200, o);
}

/* --- Monitoring start / stop --------------------------------------------------------- */

static void
api_gpu_monitoring(struct vd_http_req *req, struct daemon *d, bool start)
{
	if (evbuffer_get_length(vd_http_req_body(req)) > 0) {
		json_t *body = api_read_object(d, req);
		if (body == NULL)
			return;
		size_t n = json_object_size(body);
		json_decref(body);
		if (n > 0) {
			vd_http_reply_error(req, 400,
					    "this endpoint takes no fields (send {} or "
					    "nothing)");
			return;
		}
	}
	bool was = gpu_monitor_is_running(d->gpus);
	if (start)
		gpu_monitor_start(d->gpus);
	else
		gpu_monitor_stop(d->gpus);
	if (was != start)
		vd_log(GPU, "monitoring %s (API)", start ? "started" : "stopped");
	json_t *o = json_object();
	json_object_set_new(o, "monitoring", json_boolean(gpu_monitor_is_running(d->gpus)));
	json_object_set_new(o, "interval_ms", json_integer(gpu_monitor_interval_ms(d->gpus)));
	vd_http_reply_json(req, 200, o);
}

void
api_gpu_monitoring_start(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_gpu_monitoring(req, arg, true);
}

void
api_gpu_monitoring_stop(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_gpu_monitoring(req, arg, false);
}

/* --- GET / PUT /api/gpu/config ----------------------------------------------------------- */

enum api_gpu_key_kind {
	API_KEY_CONFIG,	  /* maps to a configuration key */
	API_KEY_INTERVAL, /* the monitor's sampling period, in ms (MEMORY_MONITORING_INTERVAL) */
	API_KEY_WEBHOOKS, /* WEBHOOK_URLS as an array, read-only, credentials masked */
};

static const struct api_gpu_key {
	const char *name;
	enum api_gpu_key_kind kind;
	enum config_key key; /* API_KEY_CONFIG */
	bool integer;
	double min, max;
} api_gpu_keys[] = {
    {"monitoring_interval_ms", API_KEY_INTERVAL, 0, true, 100, 60000},
    {"history_size", API_KEY_CONFIG, CONFIG_GPU_HISTORY_LENGTH, true, 10, 10000},
    {"temp_optimal_max_c", API_KEY_CONFIG, CONFIG_TEMP_NORMAL_C, true, 20, 120},
    {"temp_normal_max_c", API_KEY_CONFIG, CONFIG_TEMP_THROTTLED_C, true, 20, 120},
    {"temp_throttled_max_c", API_KEY_CONFIG, CONFIG_TEMP_CRITICAL_C, true, 20, 120},
    {"temp_shutdown_c", API_KEY_CONFIG, CONFIG_TEMP_SHUTDOWN_C, true, 0, 150},
    {"memory_optimal_max_percent", API_KEY_CONFIG, CONFIG_MEMORY_NORMAL_PCT, false, 1, 100},
    {"memory_normal_max_percent", API_KEY_CONFIG, CONFIG_MEMORY_THROTTLED_PCT, false, 1, 100},
    {"memory_throttled_max_percent", API_KEY_CONFIG, CONFIG_MEMORY_CRITICAL_PCT, false, 1, 100},
    {"hysteresis_c", API_KEY_CONFIG, CONFIG_HYSTERESIS_C, true, 0, 20},
    {"speed_optimal", API_KEY_CONFIG, CONFIG_SPEED_OPTIMAL, false, 0, 1},
    {"speed_normal", API_KEY_CONFIG, CONFIG_SPEED_NORMAL, false, 0, 1},
    {"speed_throttled", API_KEY_CONFIG, CONFIG_SPEED_THROTTLED, false, 0, 1},
    {"speed_critical", API_KEY_CONFIG, CONFIG_SPEED_CRITICAL, false, 0, 1},
    {"critical_pause_seconds", API_KEY_CONFIG, CONFIG_CRITICAL_PAUSE_SECONDS, true, 1, 3600},
    {"throttle_cooldown_seconds", API_KEY_CONFIG, CONFIG_THROTTLE_COOLDOWN_SECONDS, true, 0, 3600},
    {"memory_limit_mb", API_KEY_CONFIG, CONFIG_MEMORY_LIMIT_MB, true, 0, 16777216},
    {"memory_reserve_mb", API_KEY_CONFIG, CONFIG_MEMORY_RESERVE_MB, true, 0, 16777216},
    {"safety_margin_mb", API_KEY_CONFIG, CONFIG_VRAM_SAFETY_MARGIN_MB, true, 0, 1048576},
    {"reservation_default_ttl_s", API_KEY_CONFIG, CONFIG_RESERVATION_DEFAULT_TTL_S, true, 1,
     604800},
    {"webhooks", API_KEY_WEBHOOKS, 0, false, 0, 0},
};

/* Webhook targets are configuration only: whoever reaches the API must not be able to
 * make vramd POST to an address of their choosing (an internal service, with the Basic
 * auth of a configured URL). API keys with an admin role are a later issue. */
static const char api_gpu_webhooks_refused[] =
    "webhooks are set in the configuration (WEBHOOK_URLS in the config file, "
    "VRAMD_WEBHOOK_URLS or --webhook-urls), not through the API";

static json_t *
api_gpu_config_json(struct daemon *d)
{
	json_t *o = json_object();
	for (size_t i = 0; i < VD_ARRAY_LEN(api_gpu_keys); i++) {
		const struct api_gpu_key *k = &api_gpu_keys[i];
		json_t *v = NULL;
		switch (k->kind) {
		case API_KEY_CONFIG:
			v = config_def(k->key)->type == CONFIG_TYPE_INT
				? json_integer(config_int(d->config, k->key))
				: json_real(config_double(d->config, k->key));
			break;
		case API_KEY_INTERVAL:
			v = json_integer(gpu_monitor_interval_ms(d->gpus));
			break;
		case API_KEY_WEBHOOKS:
			v = config_urls_json(config_str(d->config, CONFIG_WEBHOOK_URLS));
			break;
		}
		json_object_set_new(o, k->name, v);
	}
	return o;
}

static const struct api_gpu_key *
api_gpu_key_find(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(api_gpu_keys); i++)
		if (strcmp(api_gpu_keys[i].name, name) == 0)
			return &api_gpu_keys[i];
	return NULL;
}

/* Rewrites configuration key names in a config_set_many message into the API's. */
static void
api_gpu_cause_names(char **cause)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(api_gpu_keys); i++) {
		const struct api_gpu_key *k = &api_gpu_keys[i];
		if (k->kind != API_KEY_CONFIG)
			continue;
		const char *name = config_def(k->key)->name;
		char *at;
		while ((at = strstr(*cause, name)) != NULL) {
			char *next = xasprintf("%.*s'%s'%s", (int)(at - *cause), *cause, k->name,
					       at + strlen(name));
			free(*cause);
			*cause = next;
		}
	}
}

int
api_gpu_config_parse(const json_t *body, struct api_gpu_config_change *out, char **cause)
{
	*out = (struct api_gpu_config_change){.config = json_object()};
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)body, key, v)
	{
		const struct api_gpu_key *k = api_gpu_key_find(key);
		if (k == NULL) {
			int ck = config_key_from_name(key);
			if (ck == CONFIG_WEBHOOK_URLS)
				return vd_fail(cause, 403, "%s", api_gpu_webhooks_refused);
			if (ck >= 0 && config_def((enum config_key)ck)->runtime) {
				/* A runtime key by its configuration name or a seed's alias
				 * (temp_throttle): config_set_many checks it. Values keep their
				 * own form: a bare number means the unit of the key's name. */
				json_object_set(out->config, key, v);
				continue;
			}
			if (ck >= 0)
				return vd_fail(
				    cause, 400,
				    "key '%s' (%s) cannot be changed at run time: set it "
				    "at start (config file, environment or flag)",
				    key, config_def((enum config_key)ck)->name);
			return vd_fail(cause, 400, "unknown key '%s'", key);
		}
		if (k->kind == API_KEY_WEBHOOKS)
			return vd_fail(cause, 403, "key 'webhooks': %s", api_gpu_webhooks_refused);
		bool ok = k->integer ? json_is_integer(v) : json_is_number(v);
		double x = json_number_value(v);
		if (!ok || x < k->min || x > k->max) {
			char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			int status =
			    vd_fail(cause, 400, "key '%s' must be %s between %g and %g (got %s)",
				    key, k->integer ? "an integer" : "a number", k->min, k->max,
				    got != NULL ? got : "?");
			free(got);
			return status;
		}
		if (k->kind == API_KEY_INTERVAL) {
			/* The same setting as MEMORY_MONITORING_INTERVAL, whose bare number is
			 * seconds: handed over with its unit. */
			out->interval_ms = (int64_t)x;
			json_object_set_new(out->config, "MEMORY_MONITORING_INTERVAL",
					    json_sprintf("%lldms", (long long)x));
		} else
			json_object_set(out->config, config_def(k->key)->name, v);
	}
	return 0;
}

static void
api_gpu_config_put(struct vd_http_req *req, struct daemon *d)
{
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	struct api_gpu_config_change change;
	json_t *changed = NULL;
	char *cause = NULL;
	int status = api_gpu_config_parse(body, &change, &cause);
	if (status != 0) {
		vd_http_reply_error(req, status, "%s", cause);
		goto out;
	}
	/* Persist first, then apply: a change that the next start would silently lose is
	 * refused (500) and nothing changes. */
	bool persist_failed = false;
	if (config_set_many_kept(d->config, change.config, &changed, &persist_failed, &cause) < 0) {
		if (persist_failed) {
			vd_error(CONFIG, "PUT /api/gpu/config refused, nothing changed: %s", cause);
			vd_http_reply_error(req, 500,
					    "run-time configuration not changed: it could not be "
					    "kept for the next start: %s",
					    cause);
			goto out;
		}
		api_gpu_cause_names(&cause);
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	/* Logs and applies the change (already in DATA_DIR/runtime-config.json). */
	daemon_config_changed(d, changed, "PUT /api/gpu/config");
	vd_http_reply_json(req, 200, api_gpu_config_json(d));
out:
	free(cause);
	json_decref(changed);
	json_decref(change.config);
	json_decref(body);
}

void
api_gpu_config(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	if (vd_http_req_method(req) == VD_HTTP_PUT) {
		api_gpu_config_put(req, d);
		return;
	}
	if (cluster_is_follower(d->cluster)) /* it shows the leader's changes */
		cluster_refresh_config(d->cluster);
	vd_http_reply_json(req, 200, api_gpu_config_json(d));
}
