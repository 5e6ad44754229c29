/*
 * events.h: the event bus (issue 4). GPU and scheduling events (state_change, throttle,
 * resume, critical, overheat, gpu_lost, gpu_recovered, model_on_cpu,
 * reservation_satisfied, reservation_expired, job_waiting, ...) each get an increasing id and a
 * time, and are
 *   - written to the log (one line, component EVENTS),
 *   - streamed as Server-Sent Events to every GET /api/events client (api-events.c),
 *     with a heartbeat comment; a client whose unsent backlog passes a cap is
 *     disconnected, so a slow client never holds anything up,
 *   - POSTed as JSON to every URL in WEBHOOK_URLS (comma-separated, re-read on every
 *     event, so PUT /api/gpu/config takes effect at once), one request at a time per
 *     URL, retried with exponential backoff, from a bounded queue per URL that drops
 *     its oldest event when full (counted).
 * Nothing here blocks: SSE writes go to libevent's buffers, webhooks through httpc.
 *
 * The bus is created by gpu_policy_new (gpu-policy.h: gpu_policy_events() returns it);
 * other components emit through events_emit().
 *
 * Environment (for tests): VRAMD_SSE_HEARTBEAT_MS (default 15000),
 * VRAMD_SSE_MAX_BACKLOG (bytes, default 262144), VRAMD_SSE_SNDBUF (SO_SNDBUF of SSE
 * sockets, default 65536), VRAMD_WEBHOOK_RETRY_MS (first backoff, default 500).
 */
#ifndef VRAMD_EVENTS_H
#define VRAMD_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct vd_http_req;
struct events;
struct httpc;

#define EVENTS_WEBHOOK_QUEUE   256 /* events queued per webhook URL before the oldest drops */
#define EVENTS_WEBHOOK_RETRIES 5   /* retries of one event before it is given up */
#define EVENTS_MAX_WEBHOOKS    16

/* Creates the bus. base, httpc and cfg are borrowed and must outlive it. Never NULL. */
struct events *events_new(struct event_base *base, struct httpc *httpc, const struct config *cfg);
/* Ends every SSE stream, cancels webhook deliveries in flight, frees the bus. NULL is a
 * no-op. */
void events_free(struct events *ev);

/*
 * Publishes an event of type (any name; the known ones are listed above). payload
 * (stolen; may be NULL) holds the type's extra fields and may hold "gpu" (an index)
 * and "message" (one sentence; the type when absent). The event JSON is {"id", "type",
 * "time", "gpu", "message", ...payload}. Returns the event's id.
 */
int64_t events_emit(struct events *ev, const char *type, json_t *payload);

/* Known event type names as a bit mask for subscriptions. */
uint32_t events_type_bit(const char *type); /* 0 when unknown */
#define EVENTS_ALL_TYPES 0xffffffffu
/* Parses "critical,gpu_lost" into a mask. Returns 0 or -EINVAL with *cause naming the
 * unknown type. NULL or "" means all. */
int events_types_parse(const char *csv, uint32_t *mask, char **cause);

/*
 * Turns req into an SSE stream (200, text/event-stream) that receives every later
 * event whose type is in mask, until the client goes away or the bus is freed.
 * heartbeat_ms > 0 overrides the bus's heartbeat for this client. The bus owns the
 * stream from here on. Returns -EBUSY with *cause (and req untouched) when
 * MAX_EVENT_CLIENTS streams are open.
 */
int events_add_client(struct events *ev, struct vd_http_req *req, uint32_t mask,
		      int64_t heartbeat_ms, char **cause);
/* The shortest heartbeat a client may ask for (1 s; tests lower it by environment). */
int64_t events_min_heartbeat_ms(const struct events *ev);

struct events_stats {
	int64_t last_id;
	size_t clients;
	uint64_t clients_dropped; /* disconnected for a backlog over the cap */
	size_t webhooks;
	uint64_t webhook_delivered, webhook_failed, webhook_dropped;
	size_t webhook_queued;
};
void events_get_stats(const struct events *ev, struct events_stats *out);

#endif
