/*
 * sim-models.h: ollama-sim's model management endpoints, as Ollama v0.33 answers them:
 * POST /api/pull (streamed progress from the simulated registry, the catalogue's
 * pullable models), DELETE /api/delete, POST /api/copy and HEAD /api/blobs/:digest.
 * They change the catalogue that /api/tags, /api/show and the scheduler read.
 */
#ifndef VRAMD_SIM_MODELS_H
#define VRAMD_SIM_MODELS_H

#include "sim-catalogue.h"
#include "sim-sched.h"

#include <stddef.h>

struct event_base;
struct vd_http_req;
struct sim_models;

/* Default --pull-bw: simulated download bandwidth in bytes/s. */
#define SIM_PULL_BYTES_PER_S_DEFAULT 100e6

/* The endpoints over cat (changed by them) and sched (unloads on delete). All pointers
 * are borrowed and must outlive it; pull_bytes_per_s is in simulated time (the
 * scheduler's time scale applies); body_cap bounds request bodies. */
struct sim_models *sim_models_new(struct event_base *base, struct sim_sched *sched,
				  struct sim_catalogue *cat, double pull_bytes_per_s,
				  size_t body_cap);
/* Drops the pulls in flight (their requests are released) and frees it. */
void sim_models_free(struct sim_models *sm);

/* The handlers; each answers or keeps req until its reply ends. */
void sim_models_pull(struct sim_models *sm, struct vd_http_req *req);
void sim_models_delete(struct sim_models *sm, struct vd_http_req *req);
void sim_models_copy(struct sim_models *sm, struct vd_http_req *req);
/* digest is the path after /api/blobs/. */
void sim_models_head_blob(struct sim_models *sm, struct vd_http_req *req, const char *digest);

/* Whether name parses as a valid Ollama model name ([host/][namespace/]model[:tag],
 * each part of letters, digits, '_', '-', '.' starting with a letter, digit or '_'). */
bool sim_models_name_is_valid(const char *name);

#endif
