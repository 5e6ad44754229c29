/*
 * monitor.h: the Ollama side of "observe". Polls the Ollama server every
 * OLLAMA_POLL_INTERVAL: GET /api/version for health (with consecutive-failure tracking,
 * the last error, and exponential backoff while it is down), GET /api/tags into the
 * registry (installed models and file sizes), GET /api/ps into the registry (what is
 * resident and its measured size). Health changes and listings go to the hooks its owner
 * gives (the engine pauses dispatch while the server is down) and are logged once per
 * change.
 */
#ifndef VRAMD_MONITOR_H
#define VRAMD_MONITOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct backend;
struct backend_running_list;
struct event_base;
struct monitor;
struct registry;

/* What the monitor reports, on the loop. arg is hooks.arg. */
struct monitor_hooks {
	/* The server answers its health probe, or stopped answering (down then up again: a
	 * restart seen as a new version). */
	void (*up)(void *arg, bool up);
	/* A fresh /api/ps listing, already in the registry; requested at sent_ms. */
	void (*ps)(void *arg, const struct backend_running_list *list, int64_t sent_ms);
	void *arg;
};

/* Watches backend into registry, probing every interval_ms (backing off while down). */
struct monitor *monitor_new(struct event_base *base, struct backend *backend,
			    struct registry *registry, int64_t interval_ms,
			    const struct monitor_hooks *hooks);
void monitor_free(struct monitor *m);

/* Polls now (health, then tags and ps) unless a poll is in flight. */
void monitor_poll_now(struct monitor *m);
/* Lists the installed models again (after a pull, copy or delete): a poll starts now, or
 * right after the one in flight, whose /api/tags may predate the change. */
void monitor_refresh_tags(struct monitor *m);
/* When the newest /api/tags listing applied to the registry was requested (monotonic ms;
 * 0 if never): the registry's installed models are at least that fresh. */
int64_t monitor_tags_fresh_since(const struct monitor *m);
/* Refreshes /api/ps soon (after a load or unload). */
void monitor_refresh_ps(struct monitor *m);

bool monitor_server_up(const struct monitor *m);
/* When the newest successful /api/ps listing was requested (monotonic ms; 0 if never):
 * the registry's residency is at least that fresh. */
int64_t monitor_ps_fresh_since(const struct monitor *m);
/*
 * Whether the server fits models layer by layer (Ollama 0.30 and later, whose
 * llama-server --fit keeps about 1 GiB free on every GPU and puts the layers that do not
 * fit on the CPU instead of failing), judged from its last /api/version. False while the
 * version is unknown or unparsable.
 */
bool monitor_server_fits_layers(const struct monitor *m);
/* Whether /api/tags has been read at least once (the model list is known). */
bool monitor_models_known(const struct monitor *m);
/* The version the server last reported; NULL before the first answer. */
const char *monitor_server_version(const struct monitor *m);
/* The server entry of GET /api/health. */
json_t *monitor_server_json(const struct monitor *m);

#endif
