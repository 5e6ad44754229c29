/*
 * sim-sched.h: Ollama's scheduler (server/sched.go at v0.33) as ollama-sim runs it:
 * runners with parallel slots, a bounded pending queue (503 when full), loads one at
 * a time, keep_alive expiry, eviction of the idle runner with the shortest
 * keep_alive (ties by name), single-GPU best fit then spread, partial CPU offload
 * only for the first model, num_gpu 0 on CPU, reloads when load options change, and
 * physical memory enforcement (out-of-memory loads fail like llama-server's).
 *
 * Callers hand in a struct sim_job they own; the scheduler calls job->ready_cb once
 * the job holds a runner (and a slot, when it asked for one) or job->error_cb when
 * the load failed. Every job that was submitted is given back with
 * sim_sched_finish(), whatever state it is in.
 */
#ifndef VRAMD_SIM_SCHED_H
#define VRAMD_SIM_SCHED_H

#include "sim-catalogue.h"
#include "sim-hw.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct sim_job;
struct sim_runner;

#define SIM_FOREVER_NS INT64_MAX

typedef void sim_job_cb(struct sim_job *job, void *arg);

/* Load-time options (Ollama's Options.Runner subset that matters here). */
struct sim_load_opts {
	int64_t num_ctx;   /* 0: automatic (OLLAMA_CONTEXT_LENGTH or the VRAM tier) */
	int64_t num_gpu;   /* -1 auto, 0 CPU, N>0 layers on GPU */
	int64_t main_gpu;  /* -1: not set */
	int64_t num_batch; /* 512 default */
};

enum sim_job_state {
	SIM_JOB_NEW,
	SIM_JOB_PENDING,   /* in the pending queue (needs a load or an eviction) */
	SIM_JOB_WAIT_SLOT, /* holds a runner reference, waits for a parallel slot */
	SIM_JOB_READY,	   /* ready_cb was called */
	SIM_JOB_FAILED,	   /* error_cb was called */
	SIM_JOB_DONE,
};

struct sim_job {
	/* Set by the caller before sim_sched_submit. */
	const struct sim_model *model;
	struct sim_load_opts opts;
	bool has_keep_alive;
	int64_t keep_alive_ns; /* SIM_FOREVER_NS for negative values */
	bool wants_slot;       /* generation/embedding: also take a parallel slot */
	sim_job_cb *ready_cb;
	sim_job_cb *error_cb;
	void *arg;
	int64_t start_mono_ns; /* when the handler started (for load_duration) */

	/* Set by the scheduler. */
	enum sim_job_state state;
	struct sim_runner *runner; /* valid from ready_cb until sim_sched_finish */
	int64_t runner_mono_ns;	   /* when the runner was obtained */
	int error_status;	   /* for error_cb: HTTP status */
	char *error_message;	   /* for error_cb: owned by the job, freed by finish */
	bool holds_slot;
	TAILQ_ENTRY(sim_job) entry;
};

struct sim_runner {
	const struct sim_model *model;
	struct sim_load_opts opts; /* as requested by the load */
	int64_t ctx;		   /* per-request context (api/ps context_length) */
	int parallel;
	uint64_t size_bytes;		   /* actual total footprint */
	uint64_t vram_bytes[SIM_MAX_GPUS]; /* actual bytes per GPU */
	uint64_t ram_bytes;		   /* part on CPU */
	uint64_t estimate_bytes;	   /* Ollama's estimate */
	int64_t session_ns;		   /* keep_alive, SIM_FOREVER_NS = forever */
	int64_t expires_wall_ns;
	int refcount;
	int slots_busy;
	bool loading;
	bool oom;      /* this load will fail with out-of-memory */
	bool expiring; /* unload as soon as idle */
	uint32_t pid;
	double tokens_per_s;
	struct sim_sched *sched;
	struct event *timer; /* load completion, then idle expiry */
	TAILQ_HEAD(, sim_job) slot_waiters;
	TAILQ_ENTRY(sim_runner) entry;
};

struct sim_sched_config {
	int num_parallel;	 /* OLLAMA_NUM_PARALLEL, default 1 */
	int max_loaded;		 /* OLLAMA_MAX_LOADED_MODELS, 0 = 3 x max(GPUs, 1) */
	int max_queue;		 /* OLLAMA_MAX_QUEUE, default 512 */
	int64_t keep_alive_ns;	 /* OLLAMA_KEEP_ALIVE, default 5m */
	int64_t context_length;	 /* OLLAMA_CONTEXT_LENGTH, 0 = VRAM tier */
	double load_bytes_per_s; /* --load-bw, default 2e9 */
	int64_t start_cost_ns;	 /* fixed llama-server start cost, default 300ms */
	double time_scale;	 /* every wait is divided by this */
};

struct sim_counters {
	uint64_t requests, loads, unloads, evictions, oom_failures, rejected_503;
};

struct sim_sched {
	struct event_base *base;
	struct sim_hw *hw;
	const struct sim_catalogue *cat;
	struct sim_sched_config cfg;
	TAILQ_HEAD(, sim_runner) runners;
	TAILQ_HEAD(, sim_job) pending;
	int npending;
	bool busy;			    /* a load or an eviction holds processPending */
	struct sim_runner *awaiting_unload; /* the victim an eviction waits for */
	uint64_t others_seen[SIM_MAX_GPUS]; /* other-process memory Ollama last saw */
	struct event *kick;
	uint32_t next_pid;
	struct sim_counters counters;
};

/* Defaults of Ollama's environment (before env vars and flags). */
void sim_sched_config_defaults(struct sim_sched_config *cfg);
/* Creates a scheduler on base over hw and cat (both borrowed, must outlive it). */
struct sim_sched *sim_sched_new(struct event_base *base, struct sim_hw *hw,
				const struct sim_catalogue *cat,
				const struct sim_sched_config *cfg);
/* Frees every runner; every submitted job must have been finished first. */
void sim_sched_free(struct sim_sched *s);

/* Starts scheduling job. Returns 0 (ready_cb or error_cb follow, possibly before
 * this returns), or 503 when the pending queue is full (job untouched, nothing to
 * finish). */
int sim_sched_submit(struct sim_sched *s, struct sim_job *job);
/* Gives a job back in any state: leaves the queue, frees its slot and reference
 * (idle runners start their keep_alive timer). Safe to call once per submitted job. */
void sim_sched_finish(struct sim_sched *s, struct sim_job *job);
/* The unload request (empty prompt + keep_alive 0): expire the model's runner now if
 * idle, else once its requests finish. No-op when not loaded. */
void sim_sched_expire_model(struct sim_sched *s, const struct sim_model *model);
/* /sim/reset: unloads idle runners, marks busy ones to unload when done, zeroes counters. */
void sim_sched_reset(struct sim_sched *s);

/* The loaded runner of a model, or NULL. */
struct sim_runner *sim_sched_find_runner(struct sim_sched *s, const struct sim_model *model);
/* The runner findRunnerToUnload would pick: idle with the shortest keep_alive, ties by
 * name; if none is idle, the shortest overall. NULL when nothing is loaded. */
struct sim_runner *sim_sched_pick_victim(struct sim_sched *s);
/* The context a load would use for opts (clamped to the model's training context). */
int64_t sim_sched_context(const struct sim_sched *s, const struct sim_model *m,
			  const struct sim_load_opts *opts);
/* Whether a runner must be reloaded to serve these load options (needsReload). */
bool sim_runner_needs_reload(const struct sim_sched *s, const struct sim_runner *r,
			     const struct sim_load_opts *opts);
uint64_t sim_runner_vram_total(const struct sim_runner *r);
/* Rewrites GPU accounting and the state file. */
void sim_sched_publish(struct sim_sched *s);

#endif
