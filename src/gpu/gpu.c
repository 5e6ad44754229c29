/*
 * gpu.c: the GPU monitor. It owns one telemetry provider from the provider table
 * (NVML, else nvidia-smi, else none; or, only when asked for, another vramd over
 * HTTP), samples it on a libevent timer every interval
 * (MEMORY_MONITORING_INTERVAL, 1 s by default) and keeps, per GPU that passes the
 * device filter, the static identity, the latest reading, a ring of compact history
 * points and the temperature trend derived from it. Host memory (/proc/meminfo) is read
 * with every sample. After each complete sample it calls the owner's callback, so the
 * daemon re-runs its scheduler on fresh numbers.
 *
 * Invariants: at most one sample is in flight; devices keep their slot (and history)
 * for the monitor's life, so pointers returned by gpu_monitor_device stay valid until
 * gpu_monitor_free; a device the provider stops reporting, or reports lost, is LOST
 * and is probed again at every sample. No provider is not an error: the reason is kept
 * and logged once. Runs on the loop thread only.
 */
#include "gpu.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

/* The providers in the order auto tries them; the remote one only when named, since
 * it needs a URL and reads another machine's GPUs. */
static const struct {
	const struct gpu_provider *provider;
	enum gpu_provider_pref pref;
	bool in_auto;
} gpu_providers[] = {
    {&gpu_provider_nvml, GPU_PROVIDER_NVML, true},
    {&gpu_provider_smi, GPU_PROVIDER_SMI, true},
    {&gpu_provider_remote, GPU_PROVIDER_REMOTE, false},
};

/* API names of the clock event reasons (NVML's nvmlClocksEventReason* bits). */
static const struct gpu_clock_event_name gpu_clock_event_table[] = {
    {0x1, "gpu_idle"},
    {0x2, "applications_clocks_setting"},
    {0x4, "sw_power_cap"},
    {0x8, "hw_slowdown"},
    {0x10, "sync_boost"},
    {0x20, "sw_thermal_slowdown"},
    {0x40, "hw_thermal_slowdown"},
    {0x80, "hw_power_brake_slowdown"},
    {0x100, "display_clock_setting"},
};

struct gpu_monitor {
	struct event_base *base;
	char *nvml_lib, *smi_path, *filter, *meminfo_path, *remote_url;
	size_t history_len;
	int64_t interval_ms;
	int64_t smi_timeout_ms;
	gpu_sample_cb on_sample;
	void *on_sample_arg;

	const struct gpu_provider *provider; /* NULL: none */
	void *provider_state;
	char *reason;
	char *logged_reason; /* the last reason logged, to say each thing once */

	struct event *timer;
	bool running;
	bool in_flight;
	uint64_t nsamples;
	uint64_t nreadings; /* samples the provider answered (rc >= 0) */

	size_t ndevices;
	struct gpu_device devices[GPU_MAX_DEVICES];
	struct gpu_host_memory host;
};

/* --- pure helpers ------------------------------------------------------------------------ */

void
gpu_ring_push(struct gpu_history_point *ring, size_t ring_len, size_t *head, size_t *count,
	      const struct gpu_history_point *point)
{
	if (ring_len == 0)
		return;
	ring[*head] = *point;
	*head = (*head + 1) % ring_len;
	if (*count < ring_len)
		(*count)++;
}

void
gpu_temp_trend_compute(const struct gpu_history_point *points, size_t n, int64_t now_mono_ms,
		       int64_t window_ms, struct gpu_temp_trend *out)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, xmin = 0, xmax = 0;
	memset(out, 0, sizeof(*out));
	out->direction = GPU_TREND_STABLE;
	for (size_t i = 0; i < n; i++) {
		const struct gpu_history_point *p = &points[i];
		if (!(p->valid & GPU_HAS_TEMPERATURE) || p->mono_ms > now_mono_ms ||
		    p->mono_ms < now_mono_ms - window_ms)
			continue;
		double x = (double)(p->mono_ms - now_mono_ms) / 60000.0; /* minutes */
		double y = p->temperature_c;
		if (out->nsamples == 0 || p->temperature_c < out->min_c)
			out->min_c = p->temperature_c;
		if (out->nsamples == 0 || p->temperature_c > out->max_c)
			out->max_c = p->temperature_c;
		if (out->nsamples == 0 || x < xmin)
			xmin = x;
		if (out->nsamples == 0 || x > xmax)
			xmax = x;
		sx += x, sy += y, sxx += x * x, sxy += x * y;
		out->nsamples++;
	}
	if (out->nsamples == 0)
		return;
	double k = (double)out->nsamples;
	out->avg_c = sy / k;
	double den = k * sxx - sx * sx;
	if (out->nsamples < 2 || fabs(den) < 1e-12)
		return;
	out->slope_c_per_min = (k * sxy - sx * sy) / den;
	double change = out->slope_c_per_min * (xmax - xmin);
	if (change >= GPU_TREND_THRESHOLD_C)
		out->direction = GPU_TREND_RISING;
	else if (change <= -GPU_TREND_THRESHOLD_C)
		out->direction = GPU_TREND_FALLING;
}

static bool
gpu_filter_is_all(const char *filter)
{
	return filter == NULL || *filter == '\0' || strcasecmp(filter, "all") == 0;
}

static bool
gpu_filter_is_none(const char *filter)
{
	return filter != NULL && (strcmp(filter, "-1") == 0 || strcasecmp(filter, "none") == 0);
}

/* Calls fn for each trimmed token of a filter; stops and returns false when fn does. */
static bool
gpu_filter_each(const char *filter, bool (*fn)(const char *tok, size_t len, void *arg), void *arg)
{
	const char *p = filter;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		const char *end = comma != NULL ? comma : p + strlen(p);
		const char *s = p, *e = end;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		if (!fn(s, (size_t)(e - s), arg))
			return false;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return true;
}

static bool
gpu_filter_token_is_index(const char *tok, size_t len)
{
	if (len == 0 || len > 4)
		return false;
	for (size_t i = 0; i < len; i++)
		if (tok[i] < '0' || tok[i] > '9')
			return false;
	return true;
}

static bool
gpu_filter_token_valid_cb(const char *tok, size_t len, void *arg)
{
	(void)arg;
	if (gpu_filter_token_is_index(tok, len))
		return true;
	return len > 4 && len < GPU_UUID_LEN &&
	       (strncmp(tok, "GPU-", 4) == 0 || strncmp(tok, "MIG-", 4) == 0);
}

int
gpu_filter_validate(const char *filter, char **cause)
{
	if (gpu_filter_is_all(filter) || gpu_filter_is_none(filter))
		return 0;
	if (!gpu_filter_each(filter, gpu_filter_token_valid_cb, NULL))
		return vd_fail(
		    cause, -EINVAL,
		    "invalid GPU filter \"%s\": expected indices (0,1) or UUIDs (GPU-...)", filter);
	return 0;
}

struct gpu_filter_query {
	uint32_t index;
	const char *uuid;
	bool matched;
};

static bool
gpu_filter_match_cb(const char *tok, size_t len, void *arg)
{
	struct gpu_filter_query *q = arg;
	if (gpu_filter_token_is_index(tok, len)) {
		uint32_t v = 0;
		for (size_t i = 0; i < len; i++)
			v = v * 10 + (uint32_t)(tok[i] - '0');
		q->matched = v == q->index;
	} else {
		q->matched = len > 0 && q->uuid != NULL && strncmp(q->uuid, tok, len) == 0;
	}
	return !q->matched;
}

bool
gpu_filter_match(const char *filter, uint32_t index, const char *uuid)
{
	if (gpu_filter_is_all(filter))
		return true;
	if (gpu_filter_is_none(filter))
		return false;
	struct gpu_filter_query q = {.index = index, .uuid = uuid};
	gpu_filter_each(filter, gpu_filter_match_cb, &q);
	return q.matched;
}

bool
gpu_process_is_ollama(const char *name)
{
	return name != NULL &&
	       (strcasestr(name, "ollama") != NULL || strcasestr(name, "llama-server") != NULL ||
		strcasestr(name, "llama") != NULL);
}

const char *
gpu_provider_pref_name(enum gpu_provider_pref pref)
{
	switch (pref) {
	case GPU_PROVIDER_AUTO:
		return "auto";
	case GPU_PROVIDER_NVML:
		return "nvml";
	case GPU_PROVIDER_SMI:
		return "nvidia-smi";
	case GPU_PROVIDER_NONE:
		return "none";
	case GPU_PROVIDER_REMOTE:
		return "vramd";
	}
	return "?";
}

size_t
gpu_clock_event_names(const struct gpu_clock_event_name **names)
{
	*names = gpu_clock_event_table;
	return VD_ARRAY_LEN(gpu_clock_event_table);
}

int
gpu_provider_pref_parse(const char *text, enum gpu_provider_pref *out, char **cause)
{
	static const struct {
		const char *name;
		enum gpu_provider_pref pref;
	} names[] = {{"auto", GPU_PROVIDER_AUTO},      {"nvml", GPU_PROVIDER_NVML},
		     {"nvidia-smi", GPU_PROVIDER_SMI}, {"smi", GPU_PROVIDER_SMI},
		     {"none", GPU_PROVIDER_NONE},      {"vramd", GPU_PROVIDER_REMOTE}};
	for (size_t i = 0; text != NULL && i < VD_ARRAY_LEN(names); i++) {
		if (strcasecmp(text, names[i].name) == 0) {
			*out = names[i].pref;
			return 0;
		}
	}
	return vd_fail(
	    cause, -EINVAL,
	    "invalid GPU provider \"%s\": expected auto, nvml, nvidia-smi, none or vramd",
	    text != NULL ? text : "");
}

const char *
gpu_device_state_name(enum gpu_device_state state)
{
	return state == GPU_DEVICE_LOST ? "lost" : "available";
}

const char *
gpu_trend_name(enum gpu_trend_direction direction)
{
	switch (direction) {
	case GPU_TREND_RISING:
		return "rising";
	case GPU_TREND_FALLING:
		return "falling";
	case GPU_TREND_STABLE:
		break;
	}
	return "stable";
}

/* --- devices ----------------------------------------------------------------------------- */

size_t
gpu_device_history_count(const struct gpu_device *dev)
{
	return dev->ring_count;
}

const struct gpu_history_point *
gpu_device_history_at(const struct gpu_device *dev, size_t i)
{
	if (i >= dev->ring_count)
		return NULL;
	size_t oldest = (dev->ring_head + dev->ring_len - dev->ring_count) % dev->ring_len;
	return &dev->ring[(oldest + i) % dev->ring_len];
}

void
gpu_device_temp_trend(const struct gpu_device *dev, int64_t now_mono_ms, int64_t window_ms,
		      struct gpu_temp_trend *out)
{
	gpu_temp_trend_compute(dev->ring,
			       dev->ring_count == dev->ring_len ? dev->ring_len : dev->ring_head,
			       now_mono_ms, window_ms, out);
}

bool
gpu_device_used_by_others(const struct gpu_device *dev, uint64_t *bytes)
{
	const struct gpu_sample *s = &dev->latest;
	if (!dev->has_sample || !(s->valid & GPU_HAS_MEM_USED) || !(s->valid & GPU_HAS_PROCESSES))
		return false;
	uint64_t ours = 0;
	for (size_t i = 0; i < s->nprocesses; i++)
		if (s->processes[i].is_ollama && s->processes[i].used_known)
			ours += s->processes[i].used_bytes;
	*bytes = s->mem_used_bytes > ours ? s->mem_used_bytes - ours : 0;
	return true;
}

static void
gpu_set_state(struct gpu_device *dev, enum gpu_device_state state, int64_t now_ms)
{
	if (dev->state == state)
		return;
	dev->state = state;
	dev->state_since_ms = now_ms;
	if (state == GPU_DEVICE_LOST)
		vd_warn(GPU, "GPU %u (%s) is lost; probing it again every sample", dev->index,
			dev->uuid);
	else
		vd_log(GPU, "GPU %u (%s) is available again", dev->index, dev->uuid);
}

static struct gpu_device *
gpu_find_mut(struct gpu_monitor *mon, const struct gpu_reading *r)
{
	for (size_t i = 0; i < mon->ndevices; i++) {
		struct gpu_device *d = &mon->devices[i];
		if (r->uuid[0] != '\0' ? strcmp(d->uuid, r->uuid) == 0 : d->index == r->index)
			return d;
	}
	return NULL;
}

static struct gpu_device *
gpu_add_device(struct gpu_monitor *mon, const struct gpu_reading *r, int64_t now_ms)
{
	if (mon->ndevices >= GPU_MAX_DEVICES)
		return NULL;
	struct gpu_device *d = &mon->devices[mon->ndevices++];
	memset(d, 0, sizeof(*d));
	d->index = r->index;
	vd_strlcpy(d->name, r->name, sizeof(d->name));
	vd_strlcpy(d->uuid, r->uuid, sizeof(d->uuid));
	vd_strlcpy(d->bus_id, r->bus_id, sizeof(d->bus_id));
	d->state = GPU_DEVICE_AVAILABLE;
	d->state_since_ms = now_ms;
	d->ring_len = mon->history_len;
	d->ring = xcalloc(d->ring_len, sizeof(*d->ring));
	vd_log(GPU, "GPU %u: %s %s %s", d->index, d->name, d->uuid, d->bus_id);
	return d;
}

static void
gpu_apply_reading(struct gpu_monitor *mon, struct gpu_device *d, const struct gpu_reading *r)
{
	d->index = r->index;
	if (r->name[0] != '\0')
		vd_strlcpy(d->name, r->name, sizeof(d->name));
	if (r->bus_id[0] != '\0')
		vd_strlcpy(d->bus_id, r->bus_id, sizeof(d->bus_id));
	d->latest = r->sample;
	d->has_sample = true;
	struct gpu_sample *s = &d->latest;
	/* No dedicated framebuffer (iGPU / unified memory): memory is host RAM. */
	d->unified_memory = !(s->valid & GPU_HAS_MEM_TOTAL) && mon->host.valid;
	if (d->unified_memory) {
		s->mem_total_bytes = mon->host.total_bytes;
		s->mem_free_bytes = mon->host.available_bytes;
		s->mem_used_bytes = mon->host.total_bytes - mon->host.available_bytes;
		s->valid |= GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE;
	}
	for (size_t i = 0; i < s->nprocesses; i++)
		s->processes[i].is_ollama = gpu_process_is_ollama(s->processes[i].name);
	struct gpu_history_point pt = {
	    .wall_ms = s->wall_ms,
	    .mono_ms = s->mono_ms,
	    .valid = s->valid & (GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE | GPU_HAS_UTIL_GPU |
				 GPU_HAS_TEMPERATURE | GPU_HAS_POWER_DRAW),
	    .mem_used_bytes = s->mem_used_bytes,
	    .mem_free_bytes = s->mem_free_bytes,
	    .util_gpu_pct = s->util_gpu_pct,
	    .temperature_c = s->temperature_c,
	    .power_draw_mw = s->power_draw_mw,
	};
	gpu_ring_push(d->ring, d->ring_len, &d->ring_head, &d->ring_count, &pt);
}

/* Host memory: the remote provider's figures for its machine, else /proc/meminfo. */
static void
gpu_read_host(struct gpu_monitor *mon)
{
	if (mon->provider != NULL && mon->provider->host != NULL)
		mon->host = *mon->provider->host(mon->provider_state);
	else
		gpu_host_read_meminfo(mon->meminfo_path, &mon->host);
}

/* Sets the reason (NULL clears it) and logs it when it differs from the last one
 * logged, so each condition is said once. */
static void
gpu_set_reason(struct gpu_monitor *mon, const char *reason, bool warn)
{
	vd_free(mon->reason);
	if (reason == NULL)
		return;
	mon->reason = xstrdup(reason);
	if (mon->logged_reason == NULL || strcmp(mon->logged_reason, reason) != 0) {
		if (warn)
			vd_warn(GPU, "%s", reason);
		else
			vd_log(GPU, "%s", reason);
		free(mon->logged_reason);
		mon->logged_reason = xstrdup(reason);
	}
}

static void
gpu_sample_done_cb(const struct gpu_reading *readings, size_t n, int rc, const char *cause,
		   void *arg)
{
	struct gpu_monitor *mon = arg;
	int64_t now = vd_now_mono_ms();
	bool seen[GPU_MAX_DEVICES] = {false};

	mon->in_flight = false;
	gpu_read_host(mon);
	if (rc < 0) {
		char *msg = cause != NULL ? xstrdup(cause)
					  : xasprintf("%s: %s", mon->provider->name, strerror(-rc));
		gpu_set_reason(mon, msg, true);
		free(msg);
	} else {
		mon->nreadings++;
		gpu_set_reason(mon, cause, true);
		if (cause == NULL)
			vd_free(mon->logged_reason);
		for (size_t i = 0; i < n; i++) {
			const struct gpu_reading *r = &readings[i];
			struct gpu_device *d = gpu_find_mut(mon, r);
			if (d == NULL) {
				if (r->lost || !gpu_filter_match(mon->filter, r->index, r->uuid))
					continue;
				d = gpu_add_device(mon, r, now);
				if (d == NULL)
					continue;
			}
			seen[d - mon->devices] = true;
			if (r->lost) {
				gpu_set_state(d, GPU_DEVICE_LOST, now);
				continue;
			}
			gpu_apply_reading(mon, d, r);
			gpu_set_state(d, GPU_DEVICE_AVAILABLE, now);
		}
	}
	/* Whatever the provider no longer reports (or a failed sample) is lost. */
	for (size_t i = 0; i < mon->ndevices; i++)
		if (!seen[i])
			gpu_set_state(&mon->devices[i], GPU_DEVICE_LOST, now);
	mon->nsamples++;
	if (mon->on_sample != NULL)
		mon->on_sample(mon, mon->on_sample_arg);
}

void
gpu_monitor_sample_now(struct gpu_monitor *mon)
{
	if (mon->in_flight)
		return;
	if (mon->provider == NULL) {
		gpu_read_host(mon);
		mon->nsamples++;
		if (mon->on_sample != NULL)
			mon->on_sample(mon, mon->on_sample_arg);
		return;
	}
	mon->in_flight = true;
	mon->provider->sample(mon->provider_state, gpu_sample_done_cb, mon);
}

static void
gpu_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	gpu_monitor_sample_now(arg);
}

static void
gpu_arm_timer(struct gpu_monitor *mon)
{
	struct timeval tv = {mon->interval_ms / 1000, (mon->interval_ms % 1000) * 1000};
	event_del(mon->timer);
	event_add(mon->timer, &tv);
}

/* --- the monitor ------------------------------------------------------------------------- */

static bool
gpu_try_provider(struct gpu_monitor *mon, const struct gpu_provider *p, char **why)
{
	struct gpu_provider_config config = {
	    .base = mon->base,
	    .nvml_lib = mon->nvml_lib,
	    .smi_path = mon->smi_path,
	    .smi_timeout_ms = mon->smi_timeout_ms,
	    .remote_url = mon->remote_url,
	};
	char *cause = NULL;
	if (p->open(&config, &mon->provider_state, &cause) == 0) {
		mon->provider = p;
		return true;
	}
	char *joined = *why != NULL ? xasprintf("%s; %s: %s", *why, p->name, cause)
				    : xasprintf("%s: %s", p->name, cause);
	free(*why);
	free(cause);
	*why = joined;
	return false;
}

struct gpu_monitor *
gpu_monitor_new(struct event_base *base, const struct gpu_options *opts, char **cause)
{
	if (gpu_filter_validate(opts->device_filter, cause) < 0)
		return NULL;
	struct gpu_monitor *mon = xcalloc(1, sizeof(*mon));
	mon->base = base;
	mon->nvml_lib = opts->nvml_lib != NULL ? xstrdup(opts->nvml_lib) : NULL;
	mon->smi_path = opts->smi_path != NULL ? xstrdup(opts->smi_path) : NULL;
	mon->filter = opts->device_filter != NULL ? xstrdup(opts->device_filter) : NULL;
	mon->meminfo_path = opts->meminfo_path != NULL ? xstrdup(opts->meminfo_path) : NULL;
	mon->remote_url = opts->remote_url != NULL ? xstrdup(opts->remote_url) : NULL;
	mon->interval_ms = opts->interval_ms > 0 ? opts->interval_ms : GPU_DEFAULT_INTERVAL_MS;
	mon->history_len = opts->history_len > 0 ? opts->history_len : GPU_DEFAULT_HISTORY;
	mon->smi_timeout_ms =
	    opts->smi_timeout_ms > 0 ? opts->smi_timeout_ms : GPU_DEFAULT_SMI_TIMEOUT_MS;
	mon->on_sample = opts->on_sample;
	mon->on_sample_arg = opts->on_sample_arg;
	mon->timer = event_new(base, -1, EV_PERSIST, gpu_timer_cb, mon);

	char *why = NULL;
	for (size_t i = 0; i < VD_ARRAY_LEN(gpu_providers); i++) {
		bool wanted = opts->provider == GPU_PROVIDER_AUTO
				  ? gpu_providers[i].in_auto
				  : opts->provider == gpu_providers[i].pref;
		if (wanted && gpu_try_provider(mon, gpu_providers[i].provider, &why))
			break;
	}
	if (mon->provider != NULL) {
		vd_log(GPU, "GPU telemetry from %s", mon->provider->name);
		if (why != NULL)
			vd_log(GPU, "(not used: %s)", why);
	} else {
		char *msg = opts->provider == GPU_PROVIDER_NONE
				? xstrdup("GPU telemetry disabled (provider none)")
				: xasprintf("running without GPU telemetry: %s", why);
		gpu_set_reason(mon, msg, false);
		free(msg);
	}
	free(why);
	gpu_read_host(mon);
	gpu_monitor_start(mon);
	return mon;
}

void
gpu_monitor_free(struct gpu_monitor *mon)
{
	if (mon == NULL)
		return;
	event_free(mon->timer);
	if (mon->provider != NULL)
		mon->provider->close(mon->provider_state);
	for (size_t i = 0; i < mon->ndevices; i++)
		free(mon->devices[i].ring);
	free(mon->nvml_lib);
	free(mon->smi_path);
	free(mon->filter);
	free(mon->meminfo_path);
	free(mon->remote_url);
	free(mon->reason);
	free(mon->logged_reason);
	free(mon);
}

void
gpu_monitor_start(struct gpu_monitor *mon)
{
	if (mon->running)
		return;
	mon->running = true;
	gpu_arm_timer(mon);
	vd_debug(GPU, "monitoring started (every %lld ms)", (long long)mon->interval_ms);
}

void
gpu_monitor_stop(struct gpu_monitor *mon)
{
	if (!mon->running)
		return;
	mon->running = false;
	event_del(mon->timer);
	vd_debug(GPU, "monitoring stopped");
}

bool
gpu_monitor_is_running(const struct gpu_monitor *mon)
{
	return mon->running;
}

int64_t
gpu_monitor_interval_ms(const struct gpu_monitor *mon)
{
	return mon->interval_ms;
}

void
gpu_monitor_set_interval_ms(struct gpu_monitor *mon, int64_t interval_ms)
{
	if (interval_ms <= 0)
		return;
	mon->interval_ms = interval_ms;
	if (mon->running)
		gpu_arm_timer(mon);
}

/* Moves dev's history into a ring of len points, keeping the newest, oldest first. */
static void
gpu_device_resize_ring(struct gpu_device *dev, size_t len)
{
	struct gpu_history_point *ring = xcalloc(len, sizeof(*ring));
	size_t keep = dev->ring_count < len ? dev->ring_count : len;
	for (size_t i = 0; i < keep; i++)
		ring[i] = *gpu_device_history_at(dev, dev->ring_count - keep + i);
	free(dev->ring);
	dev->ring = ring;
	dev->ring_len = len;
	dev->ring_count = keep;
	dev->ring_head = keep % len;
}

void
gpu_monitor_set_history_len(struct gpu_monitor *mon, size_t len)
{
	if (len == 0 || len == mon->history_len)
		return;
	mon->history_len = len;
	for (size_t i = 0; i < mon->ndevices; i++)
		gpu_device_resize_ring(&mon->devices[i], len);
}

size_t
gpu_monitor_history_len(const struct gpu_monitor *mon)
{
	return mon->history_len;
}

uint64_t
gpu_monitor_sample_count(const struct gpu_monitor *mon)
{
	return mon->nsamples;
}

uint64_t
gpu_monitor_reading_count(const struct gpu_monitor *mon)
{
	return mon->nreadings;
}

const char *
gpu_monitor_source(const struct gpu_monitor *mon)
{
	return mon->provider != NULL ? mon->provider->name : "none";
}

const char *
gpu_monitor_reason(const struct gpu_monitor *mon)
{
	return mon->reason;
}

size_t
gpu_monitor_count(const struct gpu_monitor *mon)
{
	return mon->ndevices;
}

const struct gpu_device *
gpu_monitor_device(const struct gpu_monitor *mon, size_t i)
{
	return i < mon->ndevices ? &mon->devices[i] : NULL;
}

const struct gpu_device *
gpu_monitor_find(const struct gpu_monitor *mon, uint32_t index)
{
	for (size_t i = 0; i < mon->ndevices; i++)
		if (mon->devices[i].index == index)
			return &mon->devices[i];
	return NULL;
}

const struct gpu_device *
gpu_monitor_find_uuid(const struct gpu_monitor *mon, const char *uuid)
{
	for (size_t i = 0; i < mon->ndevices; i++)
		if (strcmp(mon->devices[i].uuid, uuid) == 0)
			return &mon->devices[i];
	return NULL;
}

const struct gpu_host_memory *
gpu_monitor_host(const struct gpu_monitor *mon)
{
	return &mon->host;
}
