/*
 * monitor.c: watches the Ollama server. Every OLLAMA_POLL_INTERVAL it asks
 * GET /api/version; when that answers, GET /api/tags (installed models, file sizes) and
 * GET /api/ps (resident models, measured sizes) follow and feed the registry. While the
 * server does not answer, probes back off exponentially (up to MONITOR_MAX_BACKOFF_MS);
 * the engine pauses dispatch until the server is back. Each change of health is logged
 * once. Every fresh /api/ps listing (one requested before a listing already applied is
 * dropped) goes to the registry, then to the ps hook (the engine's reconciliation); an
 * /api/ps that cannot connect counts as the server going down. A new version answering
 * /api/version is a restart: the up hook hears "down" then "up".
 *
 * At most one probe chain and one extra /api/ps refresh are in flight at a time.
 */
#include "monitor.h"

#include "backend.h"
#include "log.h"
#include "registry.h"
#include "http-util.h"
#include "util.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define MONITOR_MAX_BACKOFF_MS 30000
#define MONITOR_PS_REFRESH_MS  100

struct monitor {
	struct event_base *base;
	struct backend *backend;
	struct registry *registry;
	struct monitor_hooks hooks;
	int64_t interval_ms;
	struct event *timer;	    /* the next health probe */
	struct event *ps_timer;	    /* a pending /api/ps refresh */
	struct backend_call *probe; /* version -> tags -> ps chain in flight */
	struct backend_call *ps_call;
	bool up;
	bool models_known;
	char *version;
	char *last_error;
	int consecutive_failures;
	int64_t last_ok_wall_ms;
	int64_t next_probe_wall_ms;
	int64_t backoff_ms;
	int64_t chain_ps_sent_ms;    /* monotonic: when the chain's /api/ps was sent */
	int64_t refresh_ps_sent_ms;  /* monotonic: when the extra /api/ps was sent */
	int64_t ps_fresh_since_ms;   /* monotonic: request time of the newest listing applied */
	int64_t tags_sent_ms;	     /* monotonic: when the chain's /api/tags was sent */
	int64_t tags_fresh_since_ms; /* monotonic: request time of the newest tags applied */
	bool tags_again;	     /* monitor_refresh_tags during a chain: poll again after it */
};

static void monitor_schedule(struct monitor *m, int64_t delay_ms);

static void
monitor_apply_ps(struct monitor *m, const struct backend_status *st,
		 const struct backend_running_list *list, int64_t sent_ms)
{
	if (st->error == BACKEND_OK) {
		/* A listing older than one applied already would undo what that one showed. */
		if (sent_ms < m->ps_fresh_since_ms)
			return;
		m->ps_fresh_since_ms = sent_ms;
		int64_t now = vd_now_mono_ms();
		registry_begin_ps(m->registry);
		for (size_t i = 0; i < list->n; i++)
			registry_observe_loaded(m->registry, list->models[i].name,
						list->models[i].size_bytes,
						list->models[i].size_vram_bytes, now);
		registry_end_ps(m->registry);
		m->hooks.ps(m->hooks.arg, list, sent_ms);
	} else {
		vd_warn(MONITOR, "GET /api/ps failed: %s", st->message);
		/* A failed connection: the server may be restarting. The engine pauses and
		 * reconciles fully once it is back. */
		if (st->error == BACKEND_ERR_UNAVAILABLE) {
			m->hooks.up(m->hooks.arg, false);
			monitor_poll_now(m);
		}
	}
}

/* The /api/ps at the end of a probe chain. */
static void
monitor_chain_ps_cb(const struct backend_status *st, const struct backend_running_list *list,
		    void *arg)
{
	struct monitor *m = arg;
	m->probe = NULL;
	monitor_apply_ps(m, st, list, m->chain_ps_sent_ms);
	if (m->tags_again)
		monitor_poll_now(m);
}

/* An extra /api/ps (after a load or unload). */
static void
monitor_refresh_ps_cb(const struct backend_status *st, const struct backend_running_list *list,
		      void *arg)
{
	struct monitor *m = arg;
	m->ps_call = NULL;
	monitor_apply_ps(m, st, list, m->refresh_ps_sent_ms);
}

static void
monitor_tags_cb(const struct backend_status *st, const struct backend_model_list *list, void *arg)
{
	struct monitor *m = arg;
	m->probe = NULL;
	if (st->error == BACKEND_OK) {
		registry_begin_tags(m->registry);
		for (size_t i = 0; i < list->n; i++) {
			const struct backend_model_info *mi = &list->models[i];
			/* The backend's capability bits and the registry's share names, not values.
			 */
			unsigned caps = 0;
			if (mi->capabilities & BACKEND_CAP_COMPLETION)
				caps |= REGISTRY_CAP_COMPLETION;
			if (mi->capabilities & BACKEND_CAP_EMBEDDING)
				caps |= REGISTRY_CAP_EMBEDDING;
			if (mi->capabilities & BACKEND_CAP_VISION)
				caps |= REGISTRY_CAP_VISION;
			registry_set_installed(m->registry, mi->name, mi->size_bytes, mi->family,
					       mi->parameter_size, mi->quantization_level, caps);
			registry_set_arch(m->registry, mi->name, mi->arch.context_length,
					  mi->arch.block_count, mi->arch.head_count,
					  mi->arch.head_count_kv, mi->arch.embedding_length);
		}
		size_t gone = registry_end_tags(m->registry);
		if (!m->models_known)
			vd_log(REGISTRY, "%zu models installed on %s", list->n, m->backend->url);
		if (gone > 0)
			vd_log(REGISTRY, "%zu models no longer installed on %s", gone,
			       m->backend->url);
		m->models_known = true;
		m->tags_fresh_since_ms = m->tags_sent_ms;
	} else {
		vd_warn(MONITOR, "GET /api/tags failed: %s", st->message);
	}
	m->chain_ps_sent_ms = vd_now_mono_ms();
	m->probe = backend_list_running(m->backend, monitor_chain_ps_cb, m);
}

static void
monitor_version_cb(const struct backend_status *st, const char *version, void *arg)
{
	struct monitor *m = arg;
	m->probe = NULL;
	int64_t interval = m->interval_ms;
	if (st->error == BACKEND_OK) {
		if (!m->up)
			vd_log(MONITOR, "ollama at %s is up (version %s)%s", m->backend->url,
			       version, m->consecutive_failures > 0 ? " again" : "");
		/* Another version answering means another server process: whatever the
		 * old one had loaded is gone, even if vramd never saw it down. */
		bool restarted = m->version != NULL && strcmp(m->version, version) != 0;
		if (restarted)
			vd_warn(MONITOR, "ollama at %s restarted (version %s, was %s)",
				m->backend->url, version, m->version);
		m->up = true;
		m->consecutive_failures = 0;
		m->backoff_ms = interval;
		m->last_ok_wall_ms = vd_now_wall_ms();
		free(m->version);
		m->version = xstrdup(version);
		vd_free(m->last_error);
		if (restarted)
			m->hooks.up(m->hooks.arg, false);
		m->hooks.up(m->hooks.arg, true);
		m->tags_sent_ms = vd_now_mono_ms();
		m->probe = backend_list_installed(m->backend, monitor_tags_cb, m);
		monitor_schedule(m, interval);
		return;
	}
	m->consecutive_failures++;
	free(m->last_error);
	m->last_error = xstrdup(st->message != NULL ? st->message : "unknown error");
	if (m->up || m->consecutive_failures == 1)
		vd_warn(MONITOR, "ollama at %s is unreachable: %s", m->backend->url, m->last_error);
	m->up = false;
	m->hooks.up(m->hooks.arg, false);
	m->backoff_ms = m->backoff_ms < interval ? interval : m->backoff_ms * 2;
	if (m->backoff_ms > MONITOR_MAX_BACKOFF_MS)
		m->backoff_ms = MONITOR_MAX_BACKOFF_MS;
	monitor_schedule(m, m->backoff_ms);
}

static void
monitor_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct monitor *m = arg;
	if (m->probe != NULL)
		return;
	m->next_probe_wall_ms = 0;
	m->tags_again = false;
	m->probe = backend_version(m->backend, monitor_version_cb, m);
}

static void
monitor_schedule(struct monitor *m, int64_t delay_ms)
{
	struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
	evtimer_add(m->timer, &tv);
	m->next_probe_wall_ms = vd_now_wall_ms() + delay_ms;
}

static void
monitor_ps_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct monitor *m = arg;
	if (m->ps_call == NULL && m->up) {
		m->refresh_ps_sent_ms = vd_now_mono_ms();
		m->ps_call = backend_list_running(m->backend, monitor_refresh_ps_cb, m);
	}
}

struct monitor *
monitor_new(struct event_base *base, struct backend *backend, struct registry *registry,
	    int64_t interval_ms, const struct monitor_hooks *hooks)
{
	struct monitor *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->backend = backend;
	m->registry = registry;
	m->hooks = *hooks;
	m->interval_ms = interval_ms;
	m->timer = evtimer_new(base, monitor_timer_cb, m);
	m->ps_timer = evtimer_new(base, monitor_ps_timer_cb, m);
	m->backoff_ms = interval_ms;
	return m;
}

const char *
monitor_server_version(const struct monitor *m)
{
	return m->version;
}

void
monitor_poll_now(struct monitor *m)
{
	if (m->probe != NULL)
		return;
	monitor_schedule(m, 0);
}

void
monitor_refresh_tags(struct monitor *m)
{
	/* A chain in flight may have listed the models before the change the caller made. */
	if (m->probe != NULL)
		m->tags_again = true;
	else
		monitor_schedule(m, 0);
}

int64_t
monitor_tags_fresh_since(const struct monitor *m)
{
	return m->tags_fresh_since_ms;
}

void
monitor_refresh_ps(struct monitor *m)
{
	if (evtimer_pending(m->ps_timer, NULL))
		return;
	struct timeval tv = {0, MONITOR_PS_REFRESH_MS * 1000};
	evtimer_add(m->ps_timer, &tv);
}

bool
monitor_server_up(const struct monitor *m)
{
	return m->up;
}

bool
monitor_server_fits_layers(const struct monitor *m)
{
	if (m->version == NULL)
		return false;
	char *end;
	long major = strtol(m->version, &end, 10);
	if (end == m->version || *end != '.')
		return false;
	const char *minor_text = end + 1;
	long minor = strtol(minor_text, &end, 10);
	if (end == minor_text)
		return false;
	return major > 0 || minor >= 30;
}

int64_t
monitor_ps_fresh_since(const struct monitor *m)
{
	return m->ps_fresh_since_ms;
}

bool
monitor_models_known(const struct monitor *m)
{
	return m->models_known;
}

json_t *
monitor_server_json(const struct monitor *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "url", json_string(m->backend->url));
	json_object_set_new(o, "reachable", json_boolean(m->up));
	json_object_set_new(o, "version", m->version ? json_string(m->version) : json_null());
	json_object_set_new(o, "consecutive_failures", json_integer(m->consecutive_failures));
	json_object_set_new(o, "last_error",
			    m->last_error ? json_string(m->last_error) : json_null());
	json_object_set_new(o, "last_ok_at", vd_json_time_ms(m->last_ok_wall_ms));
	json_object_set_new(o, "next_probe_at",
			    m->up ? json_null() : vd_json_time_ms(m->next_probe_wall_ms));
	json_object_set_new(o, "models_known", json_boolean(m->models_known));
	return o;
}

void
monitor_free(struct monitor *m)
{
	if (m == NULL)
		return;
	backend_call_cancel(m->backend, m->probe);
	backend_call_cancel(m->backend, m->ps_call);
	event_free(m->timer);
	event_free(m->ps_timer);
	free(m->version);
	free(m->last_error);
	free(m);
}
