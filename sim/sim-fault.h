/*
 * sim-fault.h: faults on demand for ollama-sim. POST /sim/fault queues a fault that
 * the next matching Ollama API requests draw (count, model, endpoint); --fault-rate
 * and --fault-seed draw random ones. The API applies what a request drew (crash,
 * hang, error, slow, oom_runtime, reset); this module owns the pending list, the
 * counters, the random draw, the hang (requests parked until it ends) and the crash
 * during a load. docs/ollama-sim.md "Faults" is the user's guide.
 */
#ifndef VRAMD_SIM_FAULT_H
#define VRAMD_SIM_FAULT_H

#include "sim-catalogue.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct vd_http_req;
struct sim_faults;

enum sim_fault_kind {
	SIM_FAULT_CRASH,
	SIM_FAULT_HANG,
	SIM_FAULT_ERROR,
	SIM_FAULT_SLOW,
	SIM_FAULT_OOM_RUNTIME,
	SIM_FAULT_RESET,
	SIM_FAULT_NKINDS,
};

#define SIM_FAULT_MAX_PENDING 1024

/* What one request drew. body is owned by the effect (sim_fault_effect_cleanup). */
struct sim_fault_effect {
	bool active;
	enum sim_fault_kind kind;
	int64_t after_chunks; /* crash, reset, oom_runtime: tokens generated first */
	double seconds;	      /* hang: real seconds */
	int status;	      /* error */
	json_t *body;	      /* error: the reply body */
	double factor;	      /* slow: tokens/s multiplier */
};

void sim_fault_effect_cleanup(struct sim_fault_effect *e);

/* Replays a request parked by a hang (the API's router, without a fault draw). */
typedef void sim_fault_resume_cb(struct vd_http_req *req, void *arg);

/* rate: random faults per request (0 = none), of the kinds in the mask kinds (bit
 * 1 << kind; 0 = all); seed for their draw. */
struct sim_faults *sim_faults_new(struct event_base *base, double rate, unsigned kinds,
				  uint64_t seed, sim_fault_resume_cb *resume_cb, void *resume_arg);
/* Parses "crash,error" into a kind mask for sim_faults_new. Returns 0 or -EINVAL
 * with *cause naming the unknown kind. */
int sim_fault_kinds_parse(const char *list, unsigned *mask, char **cause);
/* Ends the hang (parked requests are released unanswered) and frees everything. Call
 * before the HTTP server is freed. */
void sim_faults_free(struct sim_faults *f);

/* Queues the fault described by spec (POST /sim/fault). Returns 0 with *added (the
 * caller's reference) describing it, or -EINVAL with *cause naming the field. */
int sim_faults_add(struct sim_faults *f, const json_t *spec, json_t **added, char **cause);
/* {"pending": [...], "counters": {kind: n}, "rate", "seed", "hanging_s"}; new reference. */
json_t *sim_faults_json(const struct sim_faults *f);
/* Drops the pending faults and ends a hang; zero_counters also zeroes the counters. */
void sim_faults_clear(struct sim_faults *f, bool zero_counters);

/* Whether anything can be drawn: faults pending or a random rate. */
bool sim_faults_armed(const struct sim_faults *f);
/* Whether endpoint is one that generates (generate, chat, embed, embeddings). */
bool sim_fault_endpoint_generates(const char *endpoint);
/*
 * Draws the fault for one Ollama API request to endpoint for model (NULL: none
 * named): the first matching pending fault, else a random one at the configured
 * rate. Returns true with *out filled (and counted), false when the request runs
 * normally. Crashes during a load are drawn by sim_faults_on_load instead.
 */
bool sim_faults_draw(struct sim_faults *f, const char *endpoint, const char *model,
		     struct sim_fault_effect *out);

/* Starts (or extends) a hang of seconds real seconds. */
void sim_faults_hang(struct sim_faults *f, double seconds);
/* Whether the server is hanging now, and for how many more real nanoseconds. */
bool sim_faults_is_hanging(const struct sim_faults *f);
int64_t sim_faults_hang_left_ns(const struct sim_faults *f);
/* Keeps req unanswered until the hang ends, then hands it to resume_cb. A client
 * that leaves meanwhile has its request released. */
void sim_faults_park(struct sim_faults *f, struct vd_http_req *req);

/* The scheduler starts loading model m, taking load_real_ns: a pending crash without
 * after_chunks for this model (or any model) kills the process halfway through. */
void sim_faults_on_load(struct sim_faults *f, const struct sim_model *m, int64_t load_real_ns);

/* Exits the process as if it were killed (SIGKILL), logging why first. */
void sim_fault_crash_now(const char *why) __attribute__((noreturn));

#endif
