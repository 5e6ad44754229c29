/*
 * api.h: vramd's HTTP API. api.c holds the route table (one table, every endpoint) and
 * the helpers handlers share; the handlers live in api-<group>.c files.
 */
#ifndef VRAMD_API_H
#define VRAMD_API_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct api_key;
struct daemon;
struct metrics;
struct vd_http_req;

/* Route flags (the last column of the route table in api.c), for API_KEYS_FILE. */
#define API_ROUTE_PUBLIC (1u << 0) /* no API key needed (health checks) */
#define API_ROUTE_ADMIN	 (1u << 1) /* an admin key needed */
#define API_ROUTE_METRICS                                                                          \
	(1u << 2) /* public, unless METRICS_REQUIRE_KEY asks for any key (GET /metrics) */
/* Served by a cluster's leader only: a follower redirects it (cluster.h). */
#define API_ROUTE_LEADER (1u << 3)
/* A front door: a follower relays it to the leader and streams the answer back. */
#define API_ROUTE_RELAY (1u << 4)

/*
 * The server's request callback (arg is the daemon): checks who is asking (Host, Origin,
 * Content-Type; CORS when configured) and then dispatches through the route table.
 */
void api_request_cb(struct vd_http_req *req, void *arg);

/*
 * The API key the caller authenticated with, for handlers: its name, default and
 * maximum priority, allowed models and max_queued (keys.h). NULL when vramd has no
 * API_KEYS_FILE (and on API_ROUTE_PUBLIC routes). Borrowed for the daemon's life.
 */
const struct api_key *api_request_key(struct vd_http_req *req);
/* Whether the caller with key (NULL: no keys file) may see or cancel a job submitted
 * by the key named owner (NULL: a job from before keys): admins and the owner may. */
bool api_key_may_see(const struct api_key *key, const char *owner);

/*
 * What key (not NULL) lets a job of model do, for every endpoint that queues one: sets
 * *priority to the key's default unless the request named one, then returns 0, or the
 * status to answer with *msg (caller frees): 403 above the key's max_priority or outside
 * its models, 429 (with Retry-After set) at its max_queued.
 */
int api_key_admit(struct daemon *d, struct vd_http_req *req, const struct api_key *key,
		  const char *model, bool priority_given, enum job_priority *priority, char **msg);
/* DYNAMIC_LOADING_ENABLED=false: a job for a model not in PIN_MODELS is refused. Returns
 * 0, or the HTTP status (409) with *msg (caller frees) saying why. */
int api_model_admit(struct daemon *d, const char *model, char **msg);

/* GET /api/job/{id}'s object: the job, and for a queued one queue_position, eta_s and
 * waiting_reason (also the answer of a long-poll that timed out). */
json_t *api_job_status_json(struct daemon *d, struct job *job);
/* Sets Retry-After for job, refused while waiting jobs are queued: their expected time
 * (fleet_eta_s), 5 s when unknown, at most 300 s. */
void api_retry_after(struct daemon *d, struct vd_http_req *req, const struct job *job,
		     size_t waiting);

/*
 * DEADLINE_POLICY for job, just queued with a deadline: 0 when it has none, the policy is
 * best_effort, or the ETA says it can start and run before its deadline (or cannot say).
 * Else 429: *msg (the caller frees it) says why, *eta_s is its start ETA, and Retry-After
 * is set; the caller withdraws the job (api_withdraw) and stores nothing.
 */
int api_deadline_admit(struct daemon *d, struct vd_http_req *req, const struct job *job,
		       double *eta_s, char **msg);
/* Takes a job that was queued but is refused back out of the queue (and its bytes). */
void api_withdraw(struct daemon *d, struct job *job);
/* The placement of a job that names none (issue 11): the model's MODEL_PLACEMENT entry,
 * else any with ALLOW_CPU on, else gpu. model is the registry's display name. */
enum job_placement api_placement_default(struct daemon *d, const char *model);

/* Handlers (api-jobs.c). path is the decoded path; arg is the daemon. */
void api_submit(struct vd_http_req *req, const char *path, void *arg);
void api_job(struct vd_http_req *req, const char *path, void *arg);
void api_jobs(struct vd_http_req *req, const char *path, void *arg);
/* api-status.c */
void api_stats(struct vd_http_req *req, const char *path, void *arg);
void api_health(struct vd_http_req *req, const char *path, void *arg);
void api_cluster(struct vd_http_req *req, const char *path, void *arg);
/* On a cluster's follower: relays req to the leader (api-relay.c) and returns true; false
 * while no leader is known. */
bool api_relay_to_leader(struct daemon *d, struct vd_http_req *req);
void api_models(struct vd_http_req *req, const char *path, void *arg);

/* api-gpu.c: the /api/gpu endpoints (docs/api.md "GPUs"). */
void api_gpu_status(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_status_all(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_metrics(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_history(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_trend(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_memory(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_throttle(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_allocate(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_deallocate(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_monitoring_start(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_monitoring_stop(struct vd_http_req *req, const char *path, void *arg);
void api_gpu_config(struct vd_http_req *req, const char *path, void *arg);
/* api-metrics.c: GET /metrics, the Prometheus exposition (docs/operations.md). */
void api_metrics(struct vd_http_req *req, const char *path, void *arg);
/* The registry of vramd's event counters and histograms (d->metrics); the hooks name
 * its families (api-metrics.c has the table). metrics_free() frees it. */
struct metrics *api_metrics_new(void);
/* Counts a job that became final (by status and priority) and its run time. */
void api_metrics_job_final(struct metrics *m, const struct job *job);
/* The HTTP server's status hook (vd_httpd_on_status): counts the request by its route's
 * pattern and status. arg is the daemon. */
void api_metrics_http_cb(struct vd_http_req *req, int status, void *arg);
/* api-events.c: GET /api/events (Server-Sent Events). */
void api_events(struct vd_http_req *req, const char *path, void *arg);
/* api-ui.c: the dashboard's files under /ui (public), and GET /api/whoami (public: the
 * caller's key, checked, and whether it is admin). */
void api_ui(struct vd_http_req *req, const char *path, void *arg);
void api_whoami(struct vd_http_req *req, const char *path, void *arg);

/* api-models.c: model operations and node views (docs/api.md "Models and nodes"). */
void api_models_force_gpu(struct vd_http_req *req, const char *path, void *arg);
void api_models_force_cpu(struct vd_http_req *req, const char *path, void *arg);
void api_models_placement(struct vd_http_req *req, const char *path, void *arg);
void api_models_load(struct vd_http_req *req, const char *path, void *arg);
void api_models_unload(struct vd_http_req *req, const char *path, void *arg);
void api_vram_report(struct vd_http_req *req, const char *path, void *arg);
void api_lb_stats(struct vd_http_req *req, const char *path, void *arg);
/* api-ollama.c: vramd answering as Ollama */
void api_ollama_generate(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_chat(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_embed(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_embeddings(struct vd_http_req *req, const char *path, void *arg);
/* api-ollama-admin.c: the rest of Ollama's API, answered for the nodes */
void api_ollama_root(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_version(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_tags(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_ps(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_show(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_pull(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_delete(struct vd_http_req *req, const char *path, void *arg);
void api_ollama_copy(struct vd_http_req *req, const char *path, void *arg);
void api_nodes(struct vd_http_req *req, const char *path, void *arg);

/*
 * Asks every reachable node GET path (/api/tags, /api/ps) and hands the union of their
 * "models" (by name, in node order, the first node's entry) to ops->answer, which owns
 * the array and replies; ops->error replies when no node answered. id is copied and
 * passed to both (NULL allowed).
 */
struct api_listing_ops {
	void (*answer)(struct vd_http_req *req, json_t *models, const char *id);
	void (*error)(struct vd_http_req *req, int status, const char *message, const char *id);
};
void api_nodes_listing(struct vd_http_req *req, struct daemon *d, const char *path,
		       const struct api_listing_ops *ops, const char *id);

/* api-openai.c: vramd answering as OpenAI (/v1) */
void api_openai_chat(struct vd_http_req *req, const char *path, void *arg);
void api_openai_completions(struct vd_http_req *req, const char *path, void *arg);
void api_openai_embeddings(struct vd_http_req *req, const char *path, void *arg);
void api_openai_models(struct vd_http_req *req, const char *path, void *arg);
void api_openai_model(struct vd_http_req *req, const char *path, void *arg);

/* Parses a request body as a JSON object under MAX_BODY_BYTES; on failure answers the
 * request (400/413) and returns NULL. */
/*
 * The pure halves of two GPU endpoints, for the handlers and the fuzz targets. Each
 * returns 0, or the HTTP status to answer with *cause (caller frees) naming the field.
 */
struct api_gpu_allocation {
	const char *id;	   /* borrowed from the body */
	uint64_t bytes;	   /* 0 when absent (a renewal) */
	const json_t *gpu; /* index or UUID, borrowed; NULL: any GPU */
	int64_t ttl_s;	   /* -1: the default; 0: keep the reservation's own */
	bool renew;
};
int api_gpu_allocate_parse(const json_t *body, struct api_gpu_allocation *out, char **cause);

struct api_gpu_config_change {
	json_t *config;	     /* configuration keys to set (config_set_many); caller decrefs */
	int64_t interval_ms; /* monitoring_interval_ms, 0 when absent */
};
int api_gpu_config_parse(const json_t *body, struct api_gpu_config_change *out, char **cause);

json_t *api_read_object(struct daemon *d, struct vd_http_req *req);

#endif
