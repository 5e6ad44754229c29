/*
 * api.h: vramd's HTTP API. api.c holds the route table (one table, every endpoint) and
 * the helpers handlers share; the handlers live in api-<group>.c files.
 */
#ifndef VRAMD_API_H
#define VRAMD_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct evhttp_request;

/* Installs the route table on d->http. */
void api_install(struct daemon *d);

/* Handlers (api-jobs.c). path is the decoded path; arg is the daemon. */
void api_submit(struct evhttp_request *req, const char *path, void *arg);
void api_job(struct evhttp_request *req, const char *path, void *arg);
void api_jobs(struct evhttp_request *req, const char *path, void *arg);
/* api-status.c */
void api_stats(struct evhttp_request *req, const char *path, void *arg);
void api_health(struct evhttp_request *req, const char *path, void *arg);
void api_models(struct evhttp_request *req, const char *path, void *arg);

/* api-gpu.c: the /api/gpu endpoints (docs/api.md "GPUs"). */
void api_gpu_status(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_status_all(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_metrics(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_history(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_trend(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_memory(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_throttle(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_allocate(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_deallocate(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_monitoring_start(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_monitoring_stop(struct evhttp_request *req, const char *path, void *arg);
void api_gpu_config(struct evhttp_request *req, const char *path, void *arg);
/* api-events.c: GET /api/events (Server-Sent Events). */
void api_events(struct evhttp_request *req, const char *path, void *arg);

/* Parses a request body as a JSON object under MAX_BODY_BYTES; on failure answers the
 * request (400/413) and returns NULL. */
json_t *api_read_object(struct daemon *d, struct evhttp_request *req);

#endif
