/*
 * api.c: the route table of vramd's HTTP API (every endpoint in one table), the checks
 * every request passes before it (who may drive the daemon), and the helpers handlers
 * share. Handlers live in api-<group>.c; they run on the loop, never block, and answer
 * every error with {"error": "<clear message>"}.
 *
 * A web page the user opens must not drive the daemon: browsers let any page send
 * requests to 127.0.0.1, so vramd refuses (403) a Host that is not a name of this
 * listener (DNS rebinding), any request carrying an Origin that is neither a localhost
 * page nor in CORS_ORIGINS (cross-site requests), and (415) a body that is not declared
 * application/json (the "simple" text/plain POST a page can send without a preflight).
 *
 * With API_KEYS_FILE, the router asks api_admit() before every handler: the route's
 * flags in the table say whether it needs no key (API_ROUTE_PUBLIC), an admin key
 * (API_ROUTE_ADMIN) or any key (neither), so a new row is protected unless it says
 * otherwise. The key found rides on the request (api_request_key) for the handlers.
 */
#include "api.h"

#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "gpu.h"
#include "http-util.h"
#include "keys.h"
#include "openai.h"
#include "log.h"
#include "util.h"

#include <event2/buffer.h>

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

/* An error in the caller's dialect: OpenAI's error object on /v1, {"error": "..."}
 * elsewhere (vramd's and Ollama's). */
static void api_reply_error(struct vd_http_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
api_reply_error(struct vd_http_req *req, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	const char *text = msg != NULL ? msg : "error";
	if (vd_str_has_prefix(vd_http_req_path(req), "/v1/"))
		vd_http_reply_json(req, status, openai_error_json(status, text, NULL, NULL, NULL));
	else
		vd_http_reply_error(req, status, "%s", text);
	free(msg);
}

static void
api_not_found(struct vd_http_req *req, const char *path, void *arg)
{
	(void)arg;
	api_reply_error(req, 404, "no such endpoint: %s %s (see docs/api.md)",
			vd_http_req_method_name(req), path);
}

static void
api_method_not_allowed(struct vd_http_req *req, const char *path, void *arg)
{
	(void)arg;
	api_reply_error(req, 405, "method %s is not allowed on %s", vd_http_req_method_name(req),
			path);
}

/* Every endpoint. The last column: API_ROUTE_PUBLIC (no API key needed), API_ROUTE_ADMIN
 * (an admin key), or 0 (any key); it only matters with API_KEYS_FILE. A path whose methods
 * differ in rights takes one row per right. */
static const struct vd_http_route api_routes[] = {
    {VD_HTTP_POST, "/api/submit", false, api_submit, 0},
    /* Another key's job: 403 for a non-admin key, decided by the handler. */
    {VD_HTTP_GET | VD_HTTP_DELETE, "/api/job/", true, api_job, 0},
    {VD_HTTP_GET, "/api/jobs", false, api_jobs, 0},
    {VD_HTTP_GET, "/api/stats", false, api_stats, 0},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/health", false, api_health, API_ROUTE_PUBLIC},
    {VD_HTTP_GET, "/api/cluster", false, api_cluster, 0},
    {VD_HTTP_GET, "/api/models", false, api_models, 0},
    {VD_HTTP_GET, "/api/gpu/status", false, api_gpu_status, 0},
    {VD_HTTP_GET, "/api/gpu/status/all", false, api_gpu_status_all, 0},
    {VD_HTTP_GET, "/api/gpu/metrics", false, api_gpu_metrics, 0},
    {VD_HTTP_GET, "/api/gpu/metrics/history", false, api_gpu_history, 0},
    {VD_HTTP_GET, "/api/gpu/temperature/trend", false, api_gpu_trend, 0},
    {VD_HTTP_GET, "/api/gpu/memory/available", false, api_gpu_memory, 0},
    {VD_HTTP_GET, "/api/gpu/throttle/status", false, api_gpu_throttle, 0},
    {VD_HTTP_POST, "/api/gpu/memory/allocate", false, api_gpu_allocate,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/gpu/memory/deallocate", false, api_gpu_deallocate,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/gpu/monitoring/start", false, api_gpu_monitoring_start, API_ROUTE_ADMIN},
    {VD_HTTP_POST, "/api/gpu/monitoring/stop", false, api_gpu_monitoring_stop, API_ROUTE_ADMIN},
    {VD_HTTP_GET, "/api/gpu/config", false, api_gpu_config, 0},
    {VD_HTTP_PUT, "/api/gpu/config", false, api_gpu_config, API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_GET, "/api/events", false, api_events, 0},
    {VD_HTTP_POST, "/api/models/force_gpu", false, api_models_force_gpu,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/models/force_cpu", false, api_models_force_cpu,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/models/placement", false, api_models_placement,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/models/load", false, api_models_load, API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/models/unload", false, api_models_unload,
     API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_GET, "/api/vram_report", false, api_vram_report, 0},
    {VD_HTTP_GET, "/api/lb_stats", false, api_lb_stats, 0},
    {VD_HTTP_GET, "/api/nodes", false, api_nodes, 0},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/metrics", false, api_metrics, API_ROUTE_METRICS},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/ui", true, api_ui, API_ROUTE_PUBLIC}, /* + /ui/FILE */
    {VD_HTTP_GET, "/api/whoami", false, api_whoami, API_ROUTE_PUBLIC},
    /* vramd answering as Ollama (api-ollama.c); a key's rights are checked per job */
    {VD_HTTP_POST, "/api/generate", false, api_ollama_generate, API_ROUTE_RELAY},
    {VD_HTTP_POST, "/api/chat", false, api_ollama_chat, API_ROUTE_RELAY},
    {VD_HTTP_POST, "/api/embed", false, api_ollama_embed, API_ROUTE_RELAY},
    {VD_HTTP_POST, "/api/embeddings", false, api_ollama_embeddings, API_ROUTE_RELAY},
    /* ... and the rest of Ollama's API, for the nodes (api-ollama-admin.c) */
    {VD_HTTP_GET | VD_HTTP_HEAD, "/", false, api_ollama_root, API_ROUTE_PUBLIC},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/version", false, api_ollama_version, API_ROUTE_PUBLIC},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/tags", false, api_ollama_tags, 0},
    {VD_HTTP_GET, "/api/ps", false, api_ollama_ps, 0},
    {VD_HTTP_POST, "/api/show", false, api_ollama_show, 0},
    {VD_HTTP_POST, "/api/pull", false, api_ollama_pull, API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_DELETE, "/api/delete", false, api_ollama_delete, API_ROUTE_ADMIN | API_ROUTE_LEADER},
    {VD_HTTP_POST, "/api/copy", false, api_ollama_copy, API_ROUTE_ADMIN | API_ROUTE_LEADER},
    /* vramd answering as OpenAI (api-openai.c) */
    {VD_HTTP_POST, "/v1/chat/completions", false, api_openai_chat, API_ROUTE_RELAY},
    {VD_HTTP_POST, "/v1/completions", false, api_openai_completions, API_ROUTE_RELAY},
    {VD_HTTP_POST, "/v1/embeddings", false, api_openai_embeddings, API_ROUTE_RELAY},
    {VD_HTTP_GET, "/v1/models", false, api_openai_models, 0},
    {VD_HTTP_GET, "/v1/models/", true, api_openai_model, 0},
};

/* Endpoints of the Ollama and OpenAI front doors: their clients send bodies without
 * declaring them JSON (curl -d, as Ollama's own docs do), and Ollama accepts that. A
 * page of another site is still refused by the Origin check. */
static bool
api_is_front_door(const char *path)
{
	static const char *const paths[] = {"/api/generate",   "/api/chat", "/api/embed",
					    "/api/embeddings", "/api/show", "/api/pull",
					    "/api/delete",     "/api/copy"};
	if (vd_str_has_prefix(path, "/v1/"))
		return true;
	for (size_t i = 0; i < VD_ARRAY_LEN(paths); i++)
		if (strcmp(path, paths[i]) == 0)
			return true;
	return false;
}

static bool api_admit(struct vd_http_req *req, const struct vd_http_route *route, void *arg);

static struct vd_http_router api_router = {
    .routes = api_routes,
    .nroutes = VD_ARRAY_LEN(api_routes),
    .not_found = api_not_found,
    .method_not_allowed = api_method_not_allowed,
    .admit = api_admit,
};

static bool
api_name_in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *end = p + strcspn(p, ",");
		size_t len = (size_t)(end - p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if ((len == 1 && *p == '*') ||
		    (len == n && len > 0 && strncasecmp(p, name, n) == 0))
			return true;
		p = end;
	}
	return false;
}

static bool
api_is_loopback_name(const char *name)
{
	return strcasecmp(name, "localhost") == 0 || vd_str_has_prefix(name, "127.") ||
	       strcmp(name, "::1") == 0 || vd_str_has_suffix(name, ".localhost");
}

/* The Host header names this daemon: a loopback name, the listen host, or ALLOWED_HOSTS.
 * A daemon told to listen beyond loopback accepts any name (it has warned at start). */
static bool
api_host_allowed(struct daemon *d, struct vd_http_req *req)
{
	const char *host = vd_http_req_header(req, "Host");
	char listen_host[128];
	vd_http_host_name(vd_http_req_local_addr(req), listen_host, sizeof(listen_host));
	if (!api_is_loopback_name(listen_host))
		return true;
	if (host == NULL) /* HTTP/1.0; HTTP/1.1 without Host was refused by the server */
		return true;
	char name[256];
	if (!vd_http_host_name(host, name, sizeof(name)))
		return false;
	return api_is_loopback_name(name) || strcasecmp(name, listen_host) == 0 ||
	       api_name_in_list(config_str(d->config, CONFIG_ALLOWED_HOSTS), name);
}

/* A localhost page, or an origin CORS_ORIGINS names. */
static bool
api_origin_configured(struct daemon *d, const char *origin)
{
	return api_name_in_list(config_str(d->config, CONFIG_CORS_ORIGINS), origin);
}

static bool
api_origin_allowed(struct daemon *d, const char *origin)
{
	if (api_origin_configured(d, origin))
		return true;
	const char *rest = vd_str_has_prefix(origin, "http://")	   ? origin + 7
			   : vd_str_has_prefix(origin, "https://") ? origin + 8
								   : NULL;
	char name[256];
	return rest != NULL && vd_http_host_name(rest, name, sizeof(name)) &&
	       api_is_loopback_name(name);
}

static bool
api_is_json_type(const char *type)
{
	if (type == NULL)
		return false;
	while (*type == ' ')
		type++;
	size_t n = strcspn(type, "; ");
	return n == 16 && strncasecmp(type, "application/json", 16) == 0;
}

void
api_request_cb(struct vd_http_req *req, void *arg)
{
	struct daemon *d = arg;
	api_router.arg = d;
	if (!api_host_allowed(d, req)) {
		api_reply_error(req, 403,
				"Host '%s' is not a name of this daemon; add it to ALLOWED_HOSTS "
				"to accept it",
				vd_http_req_header(req, "Host"));
		return;
	}
	const char *origin = vd_http_req_header(req, "Origin");
	if (origin != NULL) {
		if (!api_origin_allowed(d, origin)) {
			api_reply_error(req, 403,
					"cross-origin request from '%s' refused: allow the origin "
					"with CORS_ORIGINS",
					origin);
			return;
		}
		if (api_origin_configured(d, origin)) {
			vd_http_req_set_header(req, "Access-Control-Allow-Origin", origin);
			vd_http_req_set_header(req, "Vary", "Origin");
			if (vd_http_req_method(req) == VD_HTTP_OPTIONS &&
			    vd_http_req_header(req, "Access-Control-Request-Method") != NULL) {
				vd_http_req_set_header(req, "Access-Control-Allow-Methods",
						       "GET, HEAD, POST, PUT, DELETE");
				vd_http_req_set_header(req, "Access-Control-Allow-Headers",
						       "Content-Type, Authorization");
				vd_http_req_set_header(req, "Access-Control-Max-Age", "600");
				vd_http_req_reply(req, 204, NULL, 0);
				return;
			}
		}
	}
	size_t body_len = evbuffer_get_length(vd_http_req_body(req));
	const char *type = vd_http_req_header(req, "Content-Type");
	if (body_len > 0 && !api_is_json_type(type) && !api_is_front_door(vd_http_req_path(req))) {
		api_reply_error(req, 415, "Content-Type must be application/json (got %s)",
				type != NULL ? type : "none");
		return;
	}
	vd_http_router_cb(req, &api_router);
}

static bool api_admit_key(struct vd_http_req *req, const struct vd_http_route *route, void *arg);

/* Who may call route, and whether this instance serves it: answers 401 or 403 itself, and
 * on a cluster's follower the front doors relayed to the leader (API_ROUTE_RELAY) and
 * 307 to the leader for what else only the leader does (API_ROUTE_LEADER). */
static bool
api_admit(struct vd_http_req *req, const struct vd_http_route *route, void *arg)
{
	struct daemon *d = arg;
	if (!api_admit_key(req, route, arg))
		return false;
	if ((route->flags & API_ROUTE_RELAY) && cluster_is_follower(d->cluster))
		return !(api_relay_to_leader(d, req) ||
			 cluster_redirect_to_leader(d->cluster, req));
	return !((route->flags & API_ROUTE_LEADER) && cluster_redirect_to_leader(d->cluster, req));
}

/* Who may call route (see the top of this file); answers 401 or 403 itself. */
static bool
api_admit_key(struct vd_http_req *req, const struct vd_http_route *route, void *arg)
{
	struct daemon *d = arg;
	if (d->keys == NULL || (route->flags & API_ROUTE_PUBLIC))
		return true;
	if ((route->flags & API_ROUTE_METRICS) &&
	    !config_bool(d->config, CONFIG_METRICS_REQUIRE_KEY))
		return true;
	const struct api_key *key = NULL;
	char *cause = NULL;
	if (keys_authenticate(d->keys, vd_http_req_header(req, "Authorization"), &key, &cause) <
	    0) {
		vd_http_req_set_header(req, "WWW-Authenticate", "Bearer realm=\"vramd\"");
		api_reply_error(req, 401, "%s", cause);
		free(cause);
		return false;
	}
	if ((route->flags & API_ROUTE_ADMIN) && !key->admin) {
		api_reply_error(req, 403,
				"API key \"%s\" may not call %s %s: it needs an admin key "
				"(\"admin\": true in API_KEYS_FILE)",
				key->name, vd_http_req_method_name(req), route->path);
		return false;
	}
	vd_http_req_set_user(req, key);
	return true;
}

const struct api_key *
api_request_key(struct vd_http_req *req)
{
	return vd_http_req_user(req);
}

bool
api_key_may_see(const struct api_key *key, const char *owner)
{
	return key == NULL || key->admin || (owner != NULL && strcmp(owner, key->name) == 0);
}

json_t *
api_read_object(struct daemon *d, struct vd_http_req *req)
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

enum job_placement
api_placement_default(struct daemon *d, const char *model)
{
	/* Without GPU telemetry (GPU_SOURCE=none) everything runs on the CPU, as with
	 * ALLOW_CPU. */
	bool cpu = config_bool(d->config, CONFIG_ALLOW_CPU) ||
		   (d->gpus != NULL && strcmp(gpu_monitor_source(d->gpus), "none") == 0);
	return job_placement_default(config_str(d->config, CONFIG_MODEL_PLACEMENT), model, cpu);
}
