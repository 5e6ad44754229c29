/*
 * sim-api.h: ollama-sim's HTTP API: Ollama's endpoints (/, /api/version, /api/tags,
 * /api/show, /api/ps, /api/generate, /api/chat, /api/embed, /api/embeddings; the model
 * management endpoints of sim-models.h) with
 * Ollama's field names, key order, status codes and error texts, and the control
 * endpoints /sim/state, /sim/gpu/{index}, /sim/reset, /sim/fault and /sim/faults
 * (faults on demand, sim-fault.h).
 */
#ifndef VRAMD_SIM_API_H
#define VRAMD_SIM_API_H

#include "sim-catalogue.h"
#include "sim-hw.h"
#include "sim-sched.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct vd_http_req;
struct sim_api;

/* Ollama has no body limit on its API; these only keep a test from exhausting memory. */
#define SIM_API_BODY_CAP  (256 * VD_MIB) /* bigger bodies get a JSON 413 */
#define SIM_API_BODY_HARD (256 * VD_MIB) /* the server's own limit */

struct sim_api_config {
	bool check_host;     /* listening on loopback: reject foreign Host headers (403) */
	const char *version; /* reported by /api/version */
	size_t body_cap;
	double fault_rate;	 /* random faults per Ollama request (--fault-rate), 0 = none */
	unsigned fault_kinds;	 /* --fault-kinds as a mask (sim-fault.h), 0 = all */
	uint64_t fault_seed;	 /* --fault-seed */
	double pull_bytes_per_s; /* /api/pull bandwidth, simulated bytes/s; 0 = default */
};

/* The API. All pointers are borrowed and must outlive it; /api/pull, /api/delete and
 * /api/copy change cat. */
struct sim_api *sim_api_new(struct event_base *base, struct sim_sched *sched, struct sim_hw *hw,
			    struct sim_catalogue *cat, const struct sim_api_config *cfg);
/* The HTTP server's request callback (httpd.h); arg is the struct sim_api. */
void sim_api_request_cb(struct vd_http_req *req, void *arg);
/* Drops every request in flight (their jobs are finished) and frees the API. Call
 * after vd_httpd_free. */
void sim_api_free(struct sim_api *api);

/*
 * Parses a keep_alive value as Ollama's api.Duration does: a JSON number is seconds
 * (fractions allowed), a string is a Go duration, anything negative means forever
 * (*ns = SIM_FOREVER_NS). Returns 0, or -EINVAL with *cause set to Go's message
 * (`time: missing unit in duration "300"`, `Unsupported type: 'bool'`).
 */
int sim_parse_keep_alive(const json_t *value, int64_t *ns, char **cause);

/* Generation options of a request. */
struct sim_gen_opts {
	struct sim_load_opts load;
	int64_t num_predict; /* -1: not set */
	int64_t seed;	     /* -1: not set */
};
/* Parses an "options" object (NULL allowed). Unknown keys are ignored as in Ollama;
 * a known key with the wrong type fails with -EINVAL and *cause =
 * `option "num_ctx" must be of type integer`. */
int sim_parse_options(const json_t *options, struct sim_gen_opts *out, char **cause);

/* Whether Ollama's loopback host check lets this Host header through. */
bool sim_host_allowed(const char *host);

#endif
