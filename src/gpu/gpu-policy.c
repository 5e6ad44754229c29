/*
 * gpu-policy.c: GPU states, throttling and reservations (see gpu-policy.h).
 *
 * Per GPU (a slot per provider index, created on the first sample that shows it) the
 * policy keeps the thermal status (thermal.c), whether the GPU was lost, and the
 * baseline of other-process memory its reservations are measured against. On every
 * complete sample it steps every GPU's state machine, emits the events the change
 * implies (state_change, throttle, resume, critical, gpu_shutdown, overheat, gpu_lost,
 * gpu_recovered), expires reservations and marks them satisfied. A one-second timer
 * also expires reservations while sampling is stopped.
 *
 * Reservations: memory for a program that is not a model. They live in an array (by
 * creation) and in the store (so they survive a restart). What the scheduler sees as
 * reserved_bytes on a GPU is the part not yet taken: the sum of its reservations minus
 * how much other-process memory grew since the first of them was made (the reserving
 * program's own allocation shows up as other-process memory). After a restart the
 * baseline is the first sample's, which can only over-count: safe.
 * A reservation is satisfied while its GPU's measured free memory covers that part plus
 * the safety margin; the scheduler unloads idle models until it is.
 *
 * Decision on duplicates: an allocate with an id that exists is refused (409) unless
 * it says renew; a renew restarts the ttl and must not change mb or gpu (409).
 *
 * Only the loop thread calls this; the engine calls the three scheduling questions
 * each time it builds a snapshot, so they are cheap.
 */
#include "gpu-policy.h"

#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "events.h"
#include "gpu.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MAX_RESERVATIONS 256
#define MIB			(1024ull * 1024ull)

struct policy_gpu {
	bool used;
	uint32_t index;
	bool evaluated; /* thermal_step ran at least once with the GPU available */
	bool lost;
	bool overheat;
	struct thermal_status st;
	bool baseline_set;
	uint64_t other_baseline; /* other-process memory when reservations began */
};

struct gpu_policy {
	struct daemon *d;
	struct gpu_policy_models models; /* what the daemon's nodes hold on each GPU */
	struct events *events;
	struct event *timer;
	struct policy_gpu gpus[GPU_MAX_DEVICES];
	struct gpu_reservation *res;
	size_t nres;
};

static struct policy_gpu *
policy_gpu_find(const struct gpu_policy *p, int gpu)
{
	for (size_t i = 0; i < GPU_MAX_DEVICES; i++)
		if (p->gpus[i].used && (int)p->gpus[i].index == gpu)
			return (struct policy_gpu *)&p->gpus[i];
	return NULL;
}

static struct policy_gpu *
policy_gpu_get(struct gpu_policy *p, uint32_t index)
{
	struct policy_gpu *g = policy_gpu_find(p, (int)index);
	if (g != NULL)
		return g;
	for (size_t i = 0; i < GPU_MAX_DEVICES; i++) {
		if (!p->gpus[i].used) {
			g = &p->gpus[i];
			memset(g, 0, sizeof(*g));
			g->used = true;
			g->index = index;
			thermal_init(&g->st, vd_now_mono_ms());
			return g;
		}
	}
	return NULL;
}

void
gpu_policy_thermal_config(const struct gpu_policy *p, struct thermal_config *out)
{
	const struct config *cfg = p->d->config;
	*out = (struct thermal_config){
	    .temp_normal_c = (int32_t)config_int(cfg, CONFIG_TEMP_NORMAL_C),
	    .temp_throttled_c = (int32_t)config_int(cfg, CONFIG_TEMP_THROTTLED_C),
	    .temp_critical_c = (int32_t)config_int(cfg, CONFIG_TEMP_CRITICAL_C),
	    .temp_shutdown_c = (int32_t)config_int(cfg, CONFIG_TEMP_SHUTDOWN_C),
	    .mem_normal_pct = config_double(cfg, CONFIG_MEMORY_NORMAL_PCT),
	    .mem_throttled_pct = config_double(cfg, CONFIG_MEMORY_THROTTLED_PCT),
	    .mem_critical_pct = config_double(cfg, CONFIG_MEMORY_CRITICAL_PCT),
	    .hysteresis_c = (double)config_int(cfg, CONFIG_HYSTERESIS_C),
	    .hysteresis_pct = (double)config_int(cfg, CONFIG_HYSTERESIS_C),
	    .speed = {config_double(cfg, CONFIG_SPEED_OPTIMAL),
		      config_double(cfg, CONFIG_SPEED_NORMAL),
		      config_double(cfg, CONFIG_SPEED_THROTTLED),
		      config_double(cfg, CONFIG_SPEED_CRITICAL)},
	    .critical_pause_ms = config_int(cfg, CONFIG_CRITICAL_PAUSE_SECONDS) * 1000,
	    .throttle_cooldown_ms = config_int(cfg, CONFIG_THROTTLE_COOLDOWN_SECONDS) * 1000,
	};
}

/* --- Memory accounting --------------------------------------------------------------- */

void
gpu_policy_set_models(struct gpu_policy *p, const struct gpu_policy_models *models)
{
	p->models = *models;
}

static uint64_t
policy_models_on(const struct gpu_policy *p, int gpu)
{
	return p->models.bytes != NULL ? p->models.bytes(p->models.arg, gpu) : 0;
}

static void
policy_models_bytes(const struct gpu_policy *p, int gpu, uint64_t *all, uint64_t *busy)
{
	*all = *busy = 0;
	if (p->models.list == NULL)
		return;
	json_t *list = p->models.list(p->models.arg);
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m)
	{
		json_t *g = json_object_get(m, "gpu");
		if (!json_is_integer(g) || json_integer_value(g) != gpu)
			continue;
		uint64_t bytes =
		    (uint64_t)json_integer_value(json_object_get(m, "footprint_bytes"));
		*all += bytes;
		if (json_integer_value(json_object_get(m, "running")) > 0)
			*busy += bytes;
	}
	json_decref(list);
}

/* Other-process memory of a device: used minus Ollama runners when the process list is
 * known, else used minus our models' footprints. */
static bool
policy_other_bytes(const struct gpu_device *dev, uint64_t models, uint64_t *out)
{
	if (!dev->has_sample || !(dev->latest.valid & GPU_HAS_MEM_USED))
		return false;
	if (gpu_device_used_by_others(dev, out))
		return true;
	uint64_t used = dev->latest.mem_used_bytes;
	*out = used > models ? used - models : 0;
	return true;
}

static uint64_t
policy_reserved_sum(const struct gpu_policy *p, int gpu)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < p->nres; i++)
		if (p->res[i].gpu == gpu)
			sum += p->res[i].bytes;
	return sum;
}

/* The part of gpu's reservations not yet visible as other-process memory. */
static uint64_t
policy_reserved_pending(const struct gpu_policy *p, int gpu, const struct gpu_device *dev)
{
	uint64_t sum = policy_reserved_sum(p, gpu);
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	uint64_t other;
	if (sum == 0 || g == NULL || !g->baseline_set || dev == NULL ||
	    !policy_other_bytes(dev, policy_models_on(p, gpu), &other))
		return sum;
	uint64_t taken = other > g->other_baseline ? other - g->other_baseline : 0;
	return taken < sum ? sum - taken : 0;
}

bool
gpu_policy_memory(const struct gpu_policy *p, int gpu, struct gpu_policy_memory *out)
{
	memset(out, 0, sizeof(*out));
	const struct gpu_device *dev = gpu_monitor_find(p->d->gpus, (uint32_t)gpu);
	if (gpu < 0 || dev == NULL)
		return false;
	const struct config *cfg = p->d->config;
	const struct gpu_sample *s = &dev->latest;
	policy_models_bytes(p, gpu, &out->models_bytes, &out->busy_models_bytes);
	out->reserved_bytes = policy_reserved_sum(p, gpu);
	out->reserved_pending = policy_reserved_pending(p, gpu, dev);
	out->reserve_bytes = (uint64_t)config_int(cfg, CONFIG_MEMORY_RESERVE_MB) * MIB +
			     (uint64_t)config_int(cfg, CONFIG_VRAM_SAFETY_MARGIN_MB) * MIB;
	out->known = dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE &&
		     (s->valid & GPU_HAS_MEM_TOTAL) && (s->valid & GPU_HAS_MEM_USED) &&
		     s->mem_total_bytes > 0;
	if (!out->known)
		return true;
	out->total_bytes = s->mem_total_bytes;
	out->used_bytes = s->mem_used_bytes;
	out->free_bytes =
	    (s->valid & GPU_HAS_MEM_FREE)
		? s->mem_free_bytes
		: (s->mem_total_bytes > s->mem_used_bytes ? s->mem_total_bytes - s->mem_used_bytes
							  : 0);
	policy_other_bytes(dev, out->models_bytes, &out->other_bytes);
	out->other_percent = 100.0 * (double)out->other_bytes / (double)out->total_bytes;
	/* Memory the driver keeps for itself (NVML v2 "reserved") is never ours to give. */
	uint64_t usable = out->total_bytes;
	if ((s->valid & GPU_HAS_MEM_RESERVED) && s->mem_reserved_bytes < usable)
		usable -= s->mem_reserved_bytes;
	uint64_t limit = (uint64_t)config_int(cfg, CONFIG_MEMORY_LIMIT_MB) * MIB;
	out->limit_bytes = limit > 0 && limit < usable ? limit : usable;
	uint64_t unsatisfied = 0;
	for (size_t i = 0; i < p->nres; i++)
		if (p->res[i].gpu == gpu && !p->res[i].satisfied)
			unsatisfied += p->res[i].bytes;
	if (unsatisfied > out->reserved_pending)
		unsatisfied = out->reserved_pending;
	uint64_t taken = out->reserve_bytes + unsatisfied;
	out->available_bytes = out->free_bytes > taken ? out->free_bytes - taken : 0;
	uint64_t need =
	    out->reserve_bytes + out->other_bytes + out->busy_models_bytes + out->reserved_pending;
	out->reservable_bytes = out->limit_bytes > need ? out->limit_bytes - need : 0;
	return true;
}

/* --- Reservations --------------------------------------------------------------------- */

bool
gpu_reservation_id_is_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > GPU_RESERVATION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static struct gpu_reservation *
policy_res_find(const struct gpu_policy *p, const char *id)
{
	for (size_t i = 0; i < p->nres; i++)
		if (strcmp(p->res[i].id, id) == 0)
			return &p->res[i];
	return NULL;
}

static void
policy_res_remove(struct gpu_policy *p, struct gpu_reservation *r)
{
	size_t i = (size_t)(r - p->res);
	memmove(&p->res[i], &p->res[i + 1], (p->nres - i - 1) * sizeof(*p->res));
	p->nres--;
}

static int
policy_res_persist(struct gpu_policy *p, const struct gpu_reservation *r, char **cause)
{
	struct store_reservation sr = {
	    .id = (char *)r->id,
	    .gpu = r->gpu,
	    .bytes = r->bytes,
	    .created_at_ms = r->created_wall_ms,
	    .expires_at_ms = r->expires_wall_ms,
	    .ttl_ms = r->ttl_ms,
	};
	int rc = store_reservation_save(p->d->store, &sr, cause);
	if (rc == 0)
		daemon_request_commit(p->d);
	return rc;
}

/* Sets the other-process baseline of a GPU when its first reservation arrives. */
static void
policy_baseline(struct gpu_policy *p, int gpu)
{
	struct policy_gpu *g = policy_gpu_find(p, gpu);
	const struct gpu_device *dev = gpu_monitor_find(p->d->gpus, (uint32_t)gpu);
	uint64_t other;
	if (g == NULL || dev == NULL)
		return;
	if (policy_reserved_sum(p, gpu) == 0) {
		g->baseline_set = false;
		return;
	}
	if (g->baseline_set)
		return;
	if (policy_other_bytes(dev, policy_models_on(p, gpu), &other)) {
		g->other_baseline = other;
		g->baseline_set = true;
	}
}

static json_t *
policy_res_payload(const struct gpu_reservation *r, const char *what)
{
	json_t *o = json_object();
	json_object_set_new(o, "gpu", json_integer(r->gpu));
	json_object_set_new(o, "message",
			    json_sprintf("reservation \"%s\" (%llu MiB on GPU %d) %s", r->id,
					 (unsigned long long)(r->bytes / MIB), r->gpu, what));
	json_object_set_new(o, "reservation", json_string(r->id));
	json_object_set_new(o, "mb", json_integer((json_int_t)(r->bytes / MIB)));
	return o;
}

/* Drops expired reservations; marks the others satisfied or not. */
static void
policy_res_update(struct gpu_policy *p)
{
	int64_t now = vd_now_wall_ms();
	bool changed = false;
	for (size_t i = 0; i < p->nres;) {
		struct gpu_reservation *r = &p->res[i];
		if (r->expires_wall_ms == 0 || r->expires_wall_ms > now) {
			i++;
			continue;
		}
		char *cause = NULL;
		if (store_reservation_delete(p->d->store, r->id, &cause) < 0) {
			vd_warn(GPU, "reservation \"%s\": %s", r->id, cause);
			free(cause);
		}
		daemon_request_commit(p->d);
		events_emit(p->events, "reservation_expired", policy_res_payload(r, "expired"));
		int gpu = r->gpu;
		policy_res_remove(p, r);
		policy_baseline(p, gpu);
		changed = true;
	}
	for (size_t i = 0; i < p->nres; i++) {
		struct gpu_reservation *r = &p->res[i];
		const struct gpu_device *dev = gpu_monitor_find(p->d->gpus, (uint32_t)r->gpu);
		bool ok = false;
		if (dev != NULL && dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE &&
		    (dev->latest.valid & GPU_HAS_MEM_FREE)) {
			uint64_t margin =
			    (uint64_t)config_int(p->d->config, CONFIG_VRAM_SAFETY_MARGIN_MB) * MIB;
			ok = dev->latest.mem_free_bytes >=
			     policy_reserved_pending(p, r->gpu, dev) + margin;
		}
		if (ok && !r->satisfied)
			events_emit(p->events, "reservation_satisfied",
				    policy_res_payload(r, "is satisfied"));
		r->satisfied = ok;
	}
	if (changed)
		daemon_kick(p->d);
}

static void
policy_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gpu_policy *p = arg;
	if (!gpu_monitor_is_running(p->d->gpus))
		policy_res_update(p);
}

int
gpu_policy_reserve(struct gpu_policy *p, const char *id, int gpu, uint64_t bytes, int64_t ttl_ms,
		   bool renew, struct gpu_reservation *out, char **cause)
{
	if (!gpu_reservation_id_is_valid(id))
		return vd_fail(cause, -EINVAL,
			       "field 'id' must be 1-64 characters of A-Za-z0-9._-");
	struct gpu_reservation *r = policy_res_find(p, id);
	int64_t now = vd_now_wall_ms();
	if (renew) {
		if (r == NULL)
			return vd_fail(cause, -ENOENT, "reservation \"%s\" not found", id);
		if ((bytes != 0 && bytes != r->bytes) || (gpu >= 0 && gpu != r->gpu))
			return vd_fail(cause, -EEXIST,
				       "reservation \"%s\" is %llu MiB on GPU %d; a renewal cannot "
				       "change mb or gpu",
				       id, (unsigned long long)(r->bytes / MIB), r->gpu);
		if (ttl_ms > 0)
			r->ttl_ms = ttl_ms;
		r->expires_wall_ms = r->ttl_ms > 0 ? now + r->ttl_ms : 0;
		int rc = policy_res_persist(p, r, cause);
		if (rc < 0)
			return rc;
		vd_log(GPU, "reservation \"%s\" renewed for %lld s", id,
		       (long long)(r->ttl_ms / 1000));
		*out = *r;
		return 0;
	}
	if (r != NULL)
		return vd_fail(cause, -EEXIST,
			       "reservation \"%s\" already exists (%llu MiB on GPU %d); deallocate "
			       "it first or renew it",
			       id, (unsigned long long)(r->bytes / MIB), r->gpu);
	if (bytes == 0)
		return vd_fail(cause, -EINVAL, "field 'mb' must be a positive integer");
	if (p->nres >= POLICY_MAX_RESERVATIONS)
		return vd_fail(cause, -ENOSPC, "too many reservations (at most %d)",
			       POLICY_MAX_RESERVATIONS);
	size_t ngpus = gpu_monitor_count(p->d->gpus);
	if (ngpus == 0)
		return vd_fail(cause, -ENODEV, "no GPU telemetry: reservations need a GPU");
	struct gpu_policy_memory mem;
	if (gpu < 0) {
		uint64_t best = 0;
		for (size_t i = 0; i < ngpus; i++) {
			const struct gpu_device *dev = gpu_monitor_device(p->d->gpus, i);
			struct gpu_policy_memory m;
			if (gpu_policy_memory(p, (int)dev->index, &m) && m.known &&
			    (gpu < 0 || m.reservable_bytes > best)) {
				gpu = (int)dev->index;
				best = m.reservable_bytes;
			}
		}
		if (gpu < 0)
			return vd_fail(cause, -ENOSPC,
				       "cannot reserve %llu MiB: no GPU has known memory",
				       (unsigned long long)(bytes / MIB));
	}
	if (!gpu_policy_memory(p, gpu, &mem)) {
		char *list = xstrdup("");
		for (size_t i = 0; i < ngpus; i++) {
			char *next = xasprintf("%s%s%u", list, i ? ", " : "",
					       gpu_monitor_device(p->d->gpus, i)->index);
			free(list);
			list = next;
		}
		int rc = vd_fail(cause, -ENODEV, "gpu %d not found (GPUs: %s)", gpu, list);
		free(list);
		return rc;
	}
	if (!mem.known)
		return vd_fail(cause, -ENOSPC,
			       "cannot reserve %llu MiB on GPU %d: its memory is unknown (lost or "
			       "not sampled yet)",
			       (unsigned long long)(bytes / MIB), gpu);
	if (bytes > mem.reservable_bytes)
		return vd_fail(
		    cause, -ENOSPC,
		    "cannot reserve %llu MiB on GPU %d: at most %llu MiB fit (limit %llu "
		    "MiB - reserve %llu MiB - other processes %llu MiB - busy models "
		    "%llu MiB - reservations %llu MiB)",
		    (unsigned long long)(bytes / MIB), gpu,
		    (unsigned long long)(mem.reservable_bytes / MIB),
		    (unsigned long long)(mem.limit_bytes / MIB),
		    (unsigned long long)(mem.reserve_bytes / MIB),
		    (unsigned long long)(mem.other_bytes / MIB),
		    (unsigned long long)(mem.busy_models_bytes / MIB),
		    (unsigned long long)(mem.reserved_pending / MIB));
	struct gpu_reservation nr = {
	    .gpu = gpu,
	    .bytes = bytes,
	    .created_wall_ms = now,
	    .ttl_ms = ttl_ms,
	    .expires_wall_ms = ttl_ms > 0 ? now + ttl_ms : 0,
	};
	vd_strlcpy(nr.id, id, sizeof(nr.id));
	int rc = policy_res_persist(p, &nr, cause);
	if (rc < 0)
		return rc;
	p->res = xreallocarray(p->res, p->nres + 1, sizeof(*p->res));
	p->res[p->nres++] = nr;
	policy_baseline(p, gpu);
	vd_log(GPU, "reservation \"%s\": %llu MiB on GPU %d for %lld s", id,
	       (unsigned long long)(bytes / MIB), gpu, (long long)(ttl_ms / 1000));
	policy_res_update(p);
	daemon_kick(p->d);
	*out = *policy_res_find(p, id);
	return 0;
}

int
gpu_policy_release(struct gpu_policy *p, const char *id, struct gpu_reservation *out, char **cause)
{
	struct gpu_reservation *r = policy_res_find(p, id);
	if (r == NULL)
		return vd_fail(cause, -ENOENT, "reservation \"%s\" not found", id);
	int rc = store_reservation_delete(p->d->store, id, cause);
	if (rc < 0)
		return rc;
	daemon_request_commit(p->d);
	*out = *r;
	policy_res_remove(p, r);
	policy_baseline(p, out->gpu);
	vd_log(GPU, "reservation \"%s\" released (%llu MiB on GPU %d)", id,
	       (unsigned long long)(out->bytes / MIB), out->gpu);
	daemon_kick(p->d);
	return 0;
}

size_t
gpu_policy_reservation_count(const struct gpu_policy *p)
{
	return p->nres;
}

const struct gpu_reservation *
gpu_policy_reservation_at(const struct gpu_policy *p, size_t i)
{
	return i < p->nres ? &p->res[i] : NULL;
}

int64_t
gpu_policy_default_ttl_s(const struct gpu_policy *p)
{
	return config_int(p->d->config, CONFIG_RESERVATION_DEFAULT_TTL_S);
}

static void
policy_load_cb(const struct store_reservation *sr, void *arg)
{
	struct gpu_policy *p = arg;
	if (!gpu_reservation_id_is_valid(sr->id) || policy_res_find(p, sr->id) != NULL)
		return;
	struct gpu_reservation r = {
	    .gpu = sr->gpu,
	    .bytes = sr->bytes,
	    .created_wall_ms = sr->created_at_ms,
	    .expires_wall_ms = sr->expires_at_ms,
	    .ttl_ms = sr->ttl_ms,
	};
	vd_strlcpy(r.id, sr->id, sizeof(r.id));
	p->res = xreallocarray(p->res, p->nres + 1, sizeof(*p->res));
	p->res[p->nres++] = r;
}

/* --- States and events ----------------------------------------------------------------- */

static int
policy_max_concurrent(const struct gpu_policy *p, double speed)
{
	int cap = (int)config_int(p->d->config, CONFIG_MAX_CONCURRENT_PER_MODEL);
	if (speed <= 0)
		return 0;
	if (speed >= 1.0)
		return cap;
	int scaled = (int)((double)cap * speed);
	return scaled < 1 ? 1 : scaled;
}

static json_t *
policy_reasons_json(const struct thermal_status *st)
{
	json_t *a = json_array();
	for (size_t i = 0; i < st->nreasons; i++)
		json_array_append_new(a, json_string(st->reasons[i]));
	return a;
}

static char *
policy_reasons_text(const struct thermal_status *st)
{
	char *text = xstrdup("");
	for (size_t i = 0; i < st->nreasons; i++) {
		char *next = xasprintf("%s%s%s", text, i ? "; " : "", st->reasons[i]);
		free(text);
		text = next;
	}
	return text;
}

static json_t *
policy_wall_time(int64_t mono_ms)
{
	if (mono_ms <= 0)
		return json_null();
	int64_t wall = vd_now_wall_ms() + (mono_ms - vd_now_mono_ms());
	char buf[40];
	vd_format_rfc3339_ms(wall, buf, sizeof(buf));
	return json_string(buf);
}

static void
policy_emit_changes(struct gpu_policy *p, struct policy_gpu *g, const struct gpu_device *dev,
		    const struct thermal_status *old, double other_pct, bool mem_known)
{
	struct thermal_config tc;
	gpu_policy_thermal_config(p, &tc);
	const struct thermal_status *st = &g->st;
	int gpu = (int)g->index;
	const struct gpu_sample *s = &dev->latest;
	bool has_temp = dev->has_sample && (s->valid & GPU_HAS_TEMPERATURE);

	if (old->state != st->state && (g->evaluated || st->state != THERMAL_UNAVAILABLE)) {
		char *why = policy_reasons_text(st);
		json_t *o = json_object();
		json_object_set_new(o, "gpu", json_integer(gpu));
		json_object_set_new(
		    o, "message",
		    json_sprintf("GPU %d %s -> %s%s%s", gpu, thermal_state_name(old->state),
				 thermal_state_name(st->state), *why ? ": " : "", why));
		json_object_set_new(o, "from", json_string(thermal_state_name(old->state)));
		json_object_set_new(o, "to", json_string(thermal_state_name(st->state)));
		json_object_set_new(o, "reasons", policy_reasons_json(st));
		events_emit(p->events, "state_change", o);
		free(why);

		double speed = thermal_speed(st, &tc);
		bool old_known = old->state != THERMAL_UNAVAILABLE;
		if (st->state == THERMAL_CRITICAL) {
			o = json_object();
			json_object_set_new(o, "gpu", json_integer(gpu));
			json_object_set_new(
			    o, "message",
			    json_sprintf("GPU %d is CRITICAL: new dispatch paused for %lld s", gpu,
					 (long long)(tc.critical_pause_ms / 1000)));
			json_object_set_new(o, "temperature_c",
					    has_temp ? json_integer(s->temperature_c)
						     : json_null());
			json_object_set_new(o, "memory_other_percent",
					    mem_known ? json_real(other_pct) : json_null());
			json_object_set_new(o, "paused_until",
					    policy_wall_time(st->paused_until_ms));
			events_emit(p->events, "critical", o);
		} else if (st->state == THERMAL_SHUTDOWN) {
			/* The engine stops the GPU's jobs (requeued) and unloads its models. */
			o = json_object();
			json_object_set_new(o, "gpu", json_integer(gpu));
			json_object_set_new(
			    o, "message",
			    json_sprintf(
				"GPU %d reached TEMP_SHUTDOWN_C %d C: vramd stops its jobs "
				"(requeued), unloads its models and uses it again once it "
				"is below %d C",
				gpu, tc.temp_shutdown_c, st->critical_above_c));
			json_object_set_new(o, "temperature_c",
					    has_temp ? json_integer(s->temperature_c)
						     : json_null());
			json_object_set_new(o, "shutdown_c", json_integer(tc.temp_shutdown_c));
			json_object_set_new(o, "resume_below_c",
					    json_integer(st->critical_above_c));
			events_emit(p->events, "gpu_shutdown", o);
		} else if (old_known && st->state != THERMAL_UNAVAILABLE &&
			   st->state > old->state && st->state >= THERMAL_NORMAL) {
			o = json_object();
			json_object_set_new(o, "gpu", json_integer(gpu));
			json_object_set_new(o, "message",
					    json_sprintf("GPU %d throttled to %.2f x (%s)", gpu,
							 speed, thermal_state_name(st->state)));
			json_object_set_new(o, "state", json_string(thermal_state_name(st->state)));
			json_object_set_new(o, "speed_multiplier", json_real(speed));
			json_object_set_new(o, "max_concurrent",
					    json_integer(policy_max_concurrent(p, speed)));
			events_emit(p->events, "throttle", o);
		} else if (old_known && st->state < old->state && old->state >= THERMAL_THROTTLED) {
			o = json_object();
			json_object_set_new(o, "gpu", json_integer(gpu));
			json_object_set_new(o, "message",
					    json_sprintf("GPU %d resumes at %.2f x (%s)", gpu,
							 speed, thermal_state_name(st->state)));
			json_object_set_new(o, "state", json_string(thermal_state_name(st->state)));
			json_object_set_new(o, "speed_multiplier", json_real(speed));
			events_emit(p->events, "resume", o);
		}
	}

	int32_t slowdown = 0;
	bool has_slowdown = false;
	if (dev->has_sample && (s->valid & GPU_HAS_SLOWDOWN)) {
		slowdown = s->slowdown_c;
		has_slowdown = true;
	} else if (has_temp && (s->valid & GPU_HAS_MARGIN)) {
		slowdown = s->temperature_c + s->margin_c;
		has_slowdown = true;
	}
	bool hot = dev->state == GPU_DEVICE_AVAILABLE && has_temp && has_slowdown &&
		   s->temperature_c >= slowdown;
	if (hot && !g->overheat) {
		json_t *o = json_object();
		json_object_set_new(o, "gpu", json_integer(gpu));
		json_object_set_new(
		    o, "message",
		    json_sprintf("GPU %d at %d C reached its slowdown threshold %d C", gpu,
				 s->temperature_c, slowdown));
		json_object_set_new(o, "temperature_c", json_integer(s->temperature_c));
		json_object_set_new(o, "slowdown_temp_c", json_integer(slowdown));
		events_emit(p->events, "overheat", o);
	}
	g->overheat = hot;
}

static void
policy_step_gpu(struct gpu_policy *p, const struct gpu_device *dev, int64_t now)
{
	struct policy_gpu *g = policy_gpu_get(p, dev->index);
	if (g == NULL)
		return;
	struct thermal_config tc;
	gpu_policy_thermal_config(p, &tc);
	const struct gpu_sample *s = &dev->latest;
	struct thermal_input in = {
	    .available = dev->state == GPU_DEVICE_AVAILABLE && dev->has_sample,
	    .lost = dev->state == GPU_DEVICE_LOST,
	};
	if (in.available) {
		in.has_temp = (s->valid & GPU_HAS_TEMPERATURE) != 0;
		in.temp_c = s->temperature_c;
		if (s->valid & GPU_HAS_SLOWDOWN) {
			in.has_slowdown = true;
			in.slowdown_c = s->slowdown_c;
		} else if (in.has_temp && (s->valid & GPU_HAS_MARGIN)) {
			in.has_slowdown = true;
			in.slowdown_c = s->temperature_c + s->margin_c;
		}
		in.has_clock_events = (s->valid & GPU_HAS_CLOCK_EVENTS) != 0;
		in.clock_events = s->clock_event_reasons;
	}
	struct gpu_policy_memory mem;
	if (in.available && gpu_policy_memory(p, (int)dev->index, &mem) && mem.known) {
		in.has_mem = true;
		in.mem_other_pct = mem.other_percent;
	}

	if (in.lost && !g->lost) {
		g->lost = true;
		json_t *o = json_object();
		json_object_set_new(o, "gpu", json_integer(dev->index));
		json_object_set_new(o, "message",
				    json_sprintf("GPU %u (%s) was lost", dev->index, dev->name));
		const char *reason = gpu_monitor_reason(p->d->gpus);
		json_object_set_new(o, "error",
				    json_string(reason != NULL ? reason : "GPU is lost"));
		events_emit(p->events, "gpu_lost", o);
	} else if (in.available && g->lost) {
		g->lost = false;
		json_t *o = json_object();
		json_object_set_new(o, "gpu", json_integer(dev->index));
		json_object_set_new(o, "message",
				    json_sprintf("GPU %u (%s) is back", dev->index, dev->name));
		json_object_set_new(o, "name", json_string(dev->name));
		json_object_set_new(o, "uuid", json_string(dev->uuid));
		events_emit(p->events, "gpu_recovered", o);
	}

	struct thermal_status old = g->st;
	thermal_step(&g->st, &in, &tc, now, &g->st);
	policy_emit_changes(p, g, dev, &old, in.mem_other_pct, in.has_mem);
	if (in.available)
		g->evaluated = true;
	if (!g->baseline_set)
		policy_baseline(p, (int)dev->index);
}

static void
policy_step_all(struct gpu_policy *p)
{
	int64_t now = vd_now_mono_ms();
	for (size_t i = 0; i < gpu_monitor_count(p->d->gpus); i++)
		policy_step_gpu(p, gpu_monitor_device(p->d->gpus, i), now);
}

void
gpu_policy_on_sample(struct gpu_policy *p)
{
	policy_step_all(p);
	policy_res_update(p);
}

void
gpu_policy_config_changed(struct gpu_policy *p)
{
	policy_step_all(p);
	policy_res_update(p);
	daemon_kick(p->d);
}

/* --- Queries ------------------------------------------------------------------------- */

const struct thermal_status *
gpu_policy_status(const struct gpu_policy *p, int gpu)
{
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	return g != NULL ? &g->st : NULL;
}

double
gpu_policy_speed(const struct gpu_policy *p, int gpu)
{
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	if (g == NULL)
		return 1.0;
	struct thermal_config tc;
	gpu_policy_thermal_config(p, &tc);
	return thermal_speed(&g->st, &tc);
}

bool
gpu_policy_is_shutdown(const struct gpu_policy *p, int gpu)
{
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	return g != NULL && g->st.state == THERMAL_SHUTDOWN;
}

bool
gpu_policy_accepts_work(const struct gpu_policy *p, int gpu)
{
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	if (g == NULL)
		return true;
	struct thermal_config tc;
	gpu_policy_thermal_config(p, &tc);
	return thermal_accepts_work(&g->st, &tc, vd_now_mono_ms());
}

const char *
gpu_policy_state_name(const struct gpu_policy *p, int gpu)
{
	const struct policy_gpu *g = policy_gpu_find(p, gpu);
	return thermal_state_name(g != NULL ? g->st.state : THERMAL_OPTIMAL);
}

uint64_t
gpu_policy_reserved_bytes(const struct gpu_policy *p, int gpu)
{
	if (p->nres == 0)
		return 0;
	return policy_reserved_pending(p, gpu, gpu_monitor_find(p->d->gpus, (uint32_t)gpu));
}

struct events *
gpu_policy_events(struct gpu_policy *p)
{
	return p->events;
}

/* --- Lifecycle ----------------------------------------------------------------------- */

int
gpu_policy_load_reservations(struct gpu_policy *p)
{
	char *cause = NULL;
	struct gpu_reservation *old = p->res;
	size_t nold = p->nres;
	p->res = NULL;
	p->nres = 0;
	int n = store_reservations_load(p->d->store, policy_load_cb, p, &cause);
	if (n < 0) {
		vd_error(GPU, "cannot load reservations: %s", cause);
		free(cause);
		free(p->res); /* keep what was known */
		p->res = old;
		p->nres = nold;
		return n;
	}
	free(old);
	return n;
}

struct gpu_policy *
gpu_policy_new(struct daemon *d)
{
	struct gpu_policy *p = xcalloc(1, sizeof(*p));
	p->d = d;
	p->events = events_new(d->base, d->httpc, d->config);
	if (gpu_policy_load_reservations(p) > 0)
		vd_log(GPU, "loaded %zu reservation(s) from the store", p->nres);
	p->timer = event_new(d->base, -1, EV_PERSIST, policy_timer_cb, p);
	struct timeval tv = {.tv_sec = 1};
	event_add(p->timer, &tv);
	return p;
}

void
gpu_policy_free(struct gpu_policy *p)
{
	if (p == NULL)
		return;
	if (p->timer != NULL)
		event_free(p->timer);
	events_free(p->events);
	free(p->res);
	free(p);
}
