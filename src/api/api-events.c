/*
 * api-events.c: GET /api/events, the Server-Sent Events stream of the event bus
 * (events.h, docs/api.md "GET /api/events"). The handler validates the query and hands
 * the request to the bus, which owns the stream from then on.
 *
 * Parameters: types (comma-separated event types; all when absent) and heartbeat_ms
 * (1-3600000; the bus's default, 15 s, when absent; for tests and proxies with short
 * idle timeouts).
 */
#include "api.h"

#include "daemon.h"
#include "events.h"
#include "gpu-policy.h"
#include "http-util.h"
#include "util.h"

#include <stdlib.h>

void
api_events(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	uint32_t mask;
	char *cause = NULL;
	char *types = vd_http_query_param(req, "types");
	int rc = events_types_parse(types, &mask, &cause);
	free(types);
	if (rc < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		free(cause);
		return;
	}
	struct events *ev = gpu_policy_events(d->policy);
	int64_t heartbeat_ms = 0;
	if (!vd_http_query_int(req, "heartbeat_ms", events_min_heartbeat_ms(ev), 3600000,
			       &heartbeat_ms))
		return;
	if (events_add_client(ev, req, mask, heartbeat_ms, &cause) < 0) {
		vd_http_set_header(req, "Retry-After", "5");
		vd_http_reply_error(req, 503, "%s", cause);
		free(cause);
	}
}
