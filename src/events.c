/*
 * events.c: the event bus (see events.h): log, SSE clients, webhooks.
 *
 * SSE clients are a singly linked list, at most MAX_EVENT_CLIENTS long. Each holds its
 * request (a streamed reply) and a heartbeat timer, no faster than once a second.
 * Before any write the client's backlog in bytes (what our output buffer and the
 * kernel's send queue still hold, the latter bounded by SO_SNDBUF) is checked against
 * one cap; over it the connection is aborted. The request's close callback unlinks a
 * client that went away by itself; aborting clears it first, so a client is unlinked
 * exactly once.
 *
 * Webhooks: one struct per URL with a ring of serialised events. At most one request
 * is in flight per URL; a failure (transport error or a non-2xx status) retries the
 * same event after a backoff that doubles up to 30 s, at most EVENTS_WEBHOOK_RETRIES
 * times, then gives it up. The URL list is compared with WEBHOOK_URLS on every event
 * and rebuilt when it changed (queued events of removed URLs are dropped).
 *
 * Invariants: everything runs on the loop thread; nothing here waits.
 */
#include "events.h"

#include "config.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_DEFAULT_HEARTBEAT_MS 15000
#define EVENTS_MIN_HEARTBEAT_MS	    1000
#define EVENTS_DEFAULT_BACKLOG	    (256 * 1024)
#define EVENTS_DEFAULT_RETRY_MS	    500
#define EVENTS_DEFAULT_SNDBUF	    (64 * 1024)
#define EVENTS_MAX_RETRY_MS	    30000
#define EVENTS_WEBHOOK_TIMEOUT_MS   5000

static const char *const events_types[] = {
    "state_change",
    "throttle",
    "resume",
    "critical",
    "gpu_shutdown",
    "overheat",
    "gpu_lost",
    "gpu_recovered",
    "model_on_cpu",
    "load_timeout",
    "model_spilled",
    "model_moved",
    "host_memory_pressure",
    "model_adopted",
    "model_gone",
    "server_restarted",
    "reservation_satisfied",
    "reservation_expired",
    "job_complete",
    "job_failed",
    "deadline_missed",
    "job_waiting",
};
#define EVENTS_NTYPES (sizeof(events_types) / sizeof(events_types[0]))

struct events_client {
	struct events_client *next;
	struct events *ev;
	struct vd_http_req *req;
	struct event *heartbeat;
	uint32_t mask;
};

struct events_webhook {
	struct events *ev;
	char *url;
	char *shown; /* url for the log: credentials and query masked (vd_url_redact) */
	char *queue[EVENTS_WEBHOOK_QUEUE]; /* ring of JSON bodies, owned */
	size_t head, count;
	struct httpc_request *inflight;
	struct event *retry_timer;
	int attempt; /* failures of the event at head */
};

struct events {
	struct event_base *base;
	struct httpc *httpc;
	const struct config *cfg;
	int64_t next_id;
	int64_t heartbeat_ms;
	int64_t min_heartbeat_ms;
	size_t max_backlog;
	int sndbuf; /* SO_SNDBUF of SSE sockets: bounds what the kernel holds per client */
	int64_t retry_ms;
	struct events_client *clients;
	size_t nclients;
	uint64_t clients_dropped;
	char *webhook_urls; /* the WEBHOOK_URLS text the list was built from */
	struct events_webhook *webhooks[EVENTS_MAX_WEBHOOKS];
	size_t nwebhooks;
	uint64_t webhook_delivered, webhook_failed, webhook_dropped;
};

static int64_t
events_env_int(const char *name, int64_t def, int64_t min, int64_t max)
{
	const char *text = getenv(name);
	int64_t v;
	if (text == NULL || vd_parse_int64(text, min, max, &v, name, NULL) < 0)
		return def;
	return v;
}

struct events *
events_new(struct event_base *base, struct httpc *httpc, const struct config *cfg)
{
	struct events *ev = xcalloc(1, sizeof(*ev));
	ev->base = base;
	ev->httpc = httpc;
	ev->cfg = cfg;
	ev->next_id = 1;
	ev->heartbeat_ms =
	    events_env_int("VRAMD_SSE_HEARTBEAT_MS", EVENTS_DEFAULT_HEARTBEAT_MS, 10, 3600000);
	ev->min_heartbeat_ms =
	    events_env_int("VRAMD_SSE_MIN_HEARTBEAT_MS", EVENTS_MIN_HEARTBEAT_MS, 1, 3600000);
	ev->max_backlog =
	    (size_t)events_env_int("VRAMD_SSE_MAX_BACKLOG", EVENTS_DEFAULT_BACKLOG, 1024, 1 << 30);
	ev->sndbuf = (int)events_env_int("VRAMD_SSE_SNDBUF", EVENTS_DEFAULT_SNDBUF, 1024, 64 << 20);
	ev->retry_ms = events_env_int("VRAMD_WEBHOOK_RETRY_MS", EVENTS_DEFAULT_RETRY_MS, 1,
				      EVENTS_MAX_RETRY_MS);
	ev->webhook_urls = xstrdup("");
	return ev;
}

/* --- Event types ------------------------------------------------------------------- */

uint32_t
events_type_bit(const char *type)
{
	for (size_t i = 0; i < EVENTS_NTYPES; i++)
		if (strcmp(events_types[i], type) == 0)
			return 1u << i;
	return 0;
}

int
events_types_parse(const char *csv, uint32_t *mask, char **cause)
{
	*mask = EVENTS_ALL_TYPES;
	if (csv == NULL || *csv == '\0')
		return 0;
	uint32_t m = 0;
	char *copy = xstrdup(csv);
	char *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		uint32_t bit = events_type_bit(tok);
		if (bit == 0) {
			rc = vd_fail(cause, -EINVAL,
				     "parameter 'types' has an unknown event type '%s'", tok);
			goto out;
		}
		m |= bit;
	}
	if (m == 0) {
		rc = vd_fail(cause, -EINVAL, "parameter 'types' names no event type");
		goto out;
	}
	*mask = m;
out:
	free(copy);
	return rc;
}

/* --- SSE clients ------------------------------------------------------------------- */

static void
events_client_unlink(struct events_client *c)
{
	struct events *ev = c->ev;
	for (struct events_client **pp = &ev->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			ev->nclients--;
			break;
		}
	}
	if (c->heartbeat != NULL)
		event_free(c->heartbeat);
	free(c);
}

/* The client went away. */
static void
events_client_close_cb(struct vd_http_req *req, void *arg)
{
	struct events_client *c = arg;
	vd_debug(EVENTS, "SSE client left (%zu left)", c->ev->nclients - 1);
	events_client_unlink(c);
	vd_http_req_release(req);
}

/* Disconnects a client ourselves: the stream ends without a proper last chunk. */
static void
events_client_drop(struct events_client *c)
{
	struct vd_http_req *req = c->req;
	events_client_unlink(c);
	vd_http_req_abort(req);
}

/* Writes text to a client unless its backlog would pass the cap; then drops it. Returns
 * false when the client was dropped. */
static bool
events_client_write(struct events_client *c, const char *text, size_t len)
{
	struct events *ev = c->ev;
	size_t backlog = vd_http_req_backlog(c->req);
	if (backlog + len > ev->max_backlog) {
		ev->clients_dropped++;
		vd_warn(EVENTS, "SSE client disconnected: %zu bytes unsent (cap %zu)", backlog,
			ev->max_backlog);
		events_client_drop(c);
		return false;
	}
	vd_http_req_send(c->req, text, len);
	return true;
}

static void
events_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	static const char beat[] = ": heartbeat\n\n";
	events_client_write(arg, beat, sizeof(beat) - 1);
}

int64_t
events_min_heartbeat_ms(const struct events *ev)
{
	return ev->min_heartbeat_ms;
}

int
events_add_client(struct events *ev, struct vd_http_req *req, uint32_t mask, int64_t heartbeat_ms,
		  char **cause)
{
	size_t max_clients = (size_t)config_int(ev->cfg, CONFIG_MAX_EVENT_CLIENTS);
	if (ev->nclients >= max_clients)
		return vd_fail(cause, -EBUSY,
			       "too many event streams: the limit is %zu (MAX_EVENT_CLIENTS); "
			       "try again later",
			       max_clients);
	struct events_client *c = xcalloc(1, sizeof(*c));
	c->ev = ev;
	c->req = req;
	c->mask = mask;
	vd_http_req_set_header(req, "Content-Type", "text/event-stream");
	vd_http_req_set_header(req, "Cache-Control", "no-cache");
	vd_http_req_set_header(req, "X-Accel-Buffering", "no");
	/* The kernel may otherwise buffer megabytes for a client that does not read; the
	 * backlog check counts what it holds, and this bounds it. */
	vd_http_req_set_sndbuf(req, ev->sndbuf);
	vd_http_req_start(req, 200);
	vd_http_req_on_close(req, events_client_close_cb, c);
	int64_t period = heartbeat_ms > 0 ? heartbeat_ms : ev->heartbeat_ms;
	if (period < ev->min_heartbeat_ms)
		period = ev->min_heartbeat_ms;
	c->heartbeat = event_new(ev->base, -1, EV_PERSIST, events_heartbeat_cb, c);
	struct timeval tv = {.tv_sec = period / 1000, .tv_usec = (period % 1000) * 1000};
	event_add(c->heartbeat, &tv);
	c->next = ev->clients;
	ev->clients = c;
	ev->nclients++;
	vd_debug(EVENTS, "SSE client joined (%zu now)", ev->nclients);
	static const char hello[] = ": connected\n\n";
	events_client_write(c, hello, sizeof(hello) - 1);
	return 0;
}

/* --- Webhooks ---------------------------------------------------------------------- */

static void events_webhook_send(struct events_webhook *w);

static void
events_webhook_pop(struct events_webhook *w)
{
	free(w->queue[w->head]);
	w->queue[w->head] = NULL;
	w->head = (w->head + 1) % EVENTS_WEBHOOK_QUEUE;
	w->count--;
	w->attempt = 0;
}

static void
events_webhook_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	events_webhook_send(arg);
}

static void
events_webhook_done_cb(const struct httpc_result *result, void *arg)
{
	struct events_webhook *w = arg;
	struct events *ev = w->ev;
	w->inflight = NULL;
	if (result->error == HTTPC_OK && result->status >= 200 && result->status < 300) {
		ev->webhook_delivered++;
		events_webhook_pop(w);
		events_webhook_send(w);
		return;
	}
	w->attempt++;
	if (w->attempt > EVENTS_WEBHOOK_RETRIES) {
		ev->webhook_failed++;
		vd_warn(EVENTS, "webhook %s: event given up after %d attempts (%s)", w->shown,
			w->attempt, result->error_message ? result->error_message : "HTTP error");
		events_webhook_pop(w);
		events_webhook_send(w);
		return;
	}
	int64_t delay = ev->retry_ms;
	for (int i = 1; i < w->attempt && delay < EVENTS_MAX_RETRY_MS; i++)
		delay *= 2;
	if (delay > EVENTS_MAX_RETRY_MS)
		delay = EVENTS_MAX_RETRY_MS;
	if (result->error == HTTPC_OK)
		vd_debug(EVENTS, "webhook %s answered %d; retry in %lld ms", w->shown,
			 result->status, (long long)delay);
	else
		vd_debug(EVENTS, "webhook %s: %s; retry in %lld ms", w->shown,
			 result->error_message ? result->error_message : "error", (long long)delay);
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	event_add(w->retry_timer, &tv);
}

/* Starts delivery of the event at the head unless one is in flight or waiting. */
static void
events_webhook_send(struct events_webhook *w)
{
	if (w->inflight != NULL || w->count == 0 || evtimer_pending(w->retry_timer, NULL))
		return;
	const char *body = w->queue[w->head];
	static const char *const headers[] = {"User-Agent: vramd", NULL};
	struct httpc_options opts = {
	    .method = "POST",
	    .url = w->url,
	    .body = body,
	    .body_len = strlen(body),
	    .content_type = "application/json",
	    .headers = headers,
	    .timeout_ms = EVENTS_WEBHOOK_TIMEOUT_MS,
	    .connect_timeout_ms = EVENTS_WEBHOOK_TIMEOUT_MS,
	    .max_reply_bytes = 64 * 1024,
	};
	w->inflight = httpc_start(w->ev->httpc, &opts, events_webhook_done_cb, w);
}

static void
events_webhook_free(struct events_webhook *w)
{
	if (w->inflight != NULL)
		httpc_cancel(w->inflight);
	event_free(w->retry_timer);
	while (w->count > 0)
		events_webhook_pop(w);
	free(w->url);
	free(w->shown);
	free(w);
}

/* Rebuilds the webhook list when WEBHOOK_URLS changed. */
static void
events_webhooks_sync(struct events *ev)
{
	const char *urls = config_str(ev->cfg, CONFIG_WEBHOOK_URLS);
	if (strcmp(urls, ev->webhook_urls) == 0)
		return;
	for (size_t i = 0; i < ev->nwebhooks; i++)
		events_webhook_free(ev->webhooks[i]);
	ev->nwebhooks = 0;
	free(ev->webhook_urls);
	ev->webhook_urls = xstrdup(urls);
	char *copy = xstrdup(urls);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", ", &save);
	     tok != NULL && ev->nwebhooks < EVENTS_MAX_WEBHOOKS;
	     tok = strtok_r(NULL, ", ", &save)) {
		struct events_webhook *w = xcalloc(1, sizeof(*w));
		w->ev = ev;
		w->url = xstrdup(tok);
		w->shown = vd_url_redact(tok);
		w->retry_timer = evtimer_new(ev->base, events_webhook_retry_cb, w);
		ev->webhooks[ev->nwebhooks++] = w;
	}
	free(copy);
	vd_log(EVENTS, "webhooks: %zu URL(s)", ev->nwebhooks);
}

static void
events_webhook_enqueue(struct events_webhook *w, const char *body)
{
	if (w->count == EVENTS_WEBHOOK_QUEUE) {
		/* Full: the oldest event goes, unless it is being delivered right now. */
		size_t victim = w->inflight != NULL || w->attempt > 0 ? 1 : 0;
		size_t slot = (w->head + victim) % EVENTS_WEBHOOK_QUEUE;
		free(w->queue[slot]);
		for (size_t i = victim; i + 1 < w->count; i++) {
			size_t a = (w->head + i) % EVENTS_WEBHOOK_QUEUE;
			size_t b = (w->head + i + 1) % EVENTS_WEBHOOK_QUEUE;
			w->queue[a] = w->queue[b];
		}
		w->count--;
		w->queue[(w->head + w->count) % EVENTS_WEBHOOK_QUEUE] = NULL;
		w->ev->webhook_dropped++;
	}
	w->queue[(w->head + w->count) % EVENTS_WEBHOOK_QUEUE] = xstrdup(body);
	w->count++;
	events_webhook_send(w);
}

/* --- Emit -------------------------------------------------------------------------- */

int64_t
events_emit(struct events *ev, const char *type, json_t *payload)
{
	int64_t id = ev->next_id++;
	char when[40];
	vd_format_rfc3339_ms(vd_now_wall_ms(), when, sizeof(when));
	json_t *gpu = payload != NULL ? json_object_get(payload, "gpu") : NULL;
	json_t *message = payload != NULL ? json_object_get(payload, "message") : NULL;
	json_t *obj = json_object();
	json_object_set_new(obj, "id", json_integer(id));
	json_object_set_new(obj, "type", json_string(type));
	json_object_set_new(obj, "time", json_string(when));
	json_object_set(obj, "gpu", gpu != NULL ? gpu : json_null());
	if (json_is_string(message))
		json_object_set(obj, "message", message);
	else
		json_object_set_new(obj, "message", json_string(type));
	if (payload != NULL) {
		const char *key;
		json_t *value;
		json_object_foreach(payload, key, value)
		{
			if (strcmp(key, "gpu") != 0 && strcmp(key, "message") != 0 &&
			    strcmp(key, "id") != 0 && strcmp(key, "type") != 0 &&
			    strcmp(key, "time") != 0)
				json_object_set(obj, key, value);
		}
	}
	const char *text = json_string_value(json_object_get(obj, "message"));
	vd_log(EVENTS, "#%lld %s: %s", (long long)id, type, text != NULL ? text : type);

	char *data = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12));
	if (data != NULL) {
		uint32_t bit = events_type_bit(type);
		char *frame =
		    xasprintf("id: %lld\nevent: %s\ndata: %s\n\n", (long long)id, type, data);
		size_t len = strlen(frame);
		struct events_client *next;
		for (struct events_client *c = ev->clients; c != NULL; c = next) {
			next = c->next;
			if (bit == 0 ? c->mask == EVENTS_ALL_TYPES : (c->mask & bit) != 0)
				events_client_write(c, frame, len);
		}
		free(frame);
		events_webhooks_sync(ev);
		for (size_t i = 0; i < ev->nwebhooks; i++)
			events_webhook_enqueue(ev->webhooks[i], data);
		free(data);
	}
	json_decref(obj);
	json_decref(payload);
	return id;
}

void
events_get_stats(const struct events *ev, struct events_stats *out)
{
	*out = (struct events_stats){
	    .last_id = ev->next_id - 1,
	    .clients = ev->nclients,
	    .clients_dropped = ev->clients_dropped,
	    .webhooks = ev->nwebhooks,
	    .webhook_delivered = ev->webhook_delivered,
	    .webhook_failed = ev->webhook_failed,
	    .webhook_dropped = ev->webhook_dropped,
	};
	for (size_t i = 0; i < ev->nwebhooks; i++)
		out->webhook_queued += ev->webhooks[i]->count;
}

void
events_free(struct events *ev)
{
	if (ev == NULL)
		return;
	while (ev->clients != NULL)
		events_client_drop(ev->clients);
	for (size_t i = 0; i < ev->nwebhooks; i++)
		events_webhook_free(ev->webhooks[i]);
	free(ev->webhook_urls);
	free(ev);
}
