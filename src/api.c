/*
 * api.c: the route table of vramd's HTTP API (every endpoint in one table) and the
 * helpers its handlers share. Handlers live in api-<group>.c; they run on the loop,
 * never block, and answer every error with {"error": "<clear message>"}.
 */
#include "api.h"

#include "config.h"
#include "daemon.h"
#include "http-util.h"
#include "log.h"
#include "util.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

static void
api_not_found(struct evhttp_request *req, const char *path, void *arg)
{
	(void)arg;
	vd_http_reply_error(req, 404, "no such endpoint: %s %s (see docs/api.md)",
			    vd_http_method_name(req), path);
}

static void
api_method_not_allowed(struct evhttp_request *req, const char *path, void *arg)
{
	(void)arg;
	vd_http_reply_error(req, 405, "method %s is not allowed on %s", vd_http_method_name(req),
			    path);
}

static const struct vd_http_route api_routes[] = {
    {VD_HTTP_POST, "/api/submit", false, api_submit},
    {VD_HTTP_GET | VD_HTTP_DELETE, "/api/job/", true, api_job},
    {VD_HTTP_GET, "/api/jobs", false, api_jobs},
    {VD_HTTP_GET, "/api/stats", false, api_stats},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/health", false, api_health},
    {VD_HTTP_GET, "/api/models", false, api_models},
    {VD_HTTP_GET, "/api/gpu/status", false, api_gpu_status},
    {VD_HTTP_GET, "/api/gpu/status/all", false, api_gpu_status_all},
    {VD_HTTP_GET, "/api/gpu/metrics", false, api_gpu_metrics},
    {VD_HTTP_GET, "/api/gpu/metrics/history", false, api_gpu_history},
    {VD_HTTP_GET, "/api/gpu/temperature/trend", false, api_gpu_trend},
    {VD_HTTP_GET, "/api/gpu/memory/available", false, api_gpu_memory},
    {VD_HTTP_GET, "/api/gpu/throttle/status", false, api_gpu_throttle},
    {VD_HTTP_POST, "/api/gpu/memory/allocate", false, api_gpu_allocate},
    {VD_HTTP_POST, "/api/gpu/memory/deallocate", false, api_gpu_deallocate},
    {VD_HTTP_POST, "/api/gpu/monitoring/start", false, api_gpu_monitoring_start},
    {VD_HTTP_POST, "/api/gpu/monitoring/stop", false, api_gpu_monitoring_stop},
    {VD_HTTP_GET | VD_HTTP_PUT, "/api/gpu/config", false, api_gpu_config},
    {VD_HTTP_GET, "/api/events", false, api_events},
};

static struct vd_http_router api_router = {
    .routes = api_routes,
    .nroutes = VD_ARRAY_LEN(api_routes),
    .not_found = api_not_found,
    .method_not_allowed = api_method_not_allowed,
};

void
api_install(struct daemon *d)
{
	api_router.arg = d;
	evhttp_set_gencb(d->http, vd_http_router_cb, &api_router);
}

json_t *
api_read_object(struct daemon *d, struct evhttp_request *req)
{
	json_t *body = NULL;
	char *cause = NULL;
	int status = vd_http_parse_json_object(req, config_size(d->config, CONFIG_MAX_BODY_BYTES),
					       &body, &cause);
	if (status != 0) {
		vd_http_reply_error(req, status, "%s", cause);
		free(cause);
		return NULL;
	}
	return body;
}
