/*
 * sim-sched.h: Ollama's scheduler (server/sched.go at v0.33) as ollama-sim runs it:
 * runners with parallel slots, a bounded pending queue (503 when full), loads one at
 * a time, keep_alive expiry, eviction of the idle runner with the shortest
 * keep_alive (ties by name), single-GPU best fit then spread, num_gpu 0 on CPU,
 * reloads when load options change. By default (v0.33) llama-server's --fit puts the
 * layers that do not fit on the CPU, an OOM (explicit num_gpu) is retried once after
 * evicting every runner, unloaded memory is released late and waited for, and loads
 * in flight grow in NVML; with cfg.ollama_minor < 30 the v0.12 rules hold (partial
 * offload only for the first model, out-of-memory loads fail at once).
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
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct sim_faults;
struct sim_job;
struct sim_runner;

#define SIM_FOREVER_NS INT64_MAX

typedef void sim_job_cb(struct sim_job *job, void *arg);

/* Load-time options (Ollama's Options.Runner subset that matters here). */
struct sim_load_opts {
	int64_t num_ctx;	   /* 0: automatic (OLLAMA_CONTEXT_LENGTH or the VRAM tier);
				    * SIM_NUM_CTX_ZERO: the request said 0 or less */
	int64_t num_gpu;	   /* -1 auto, 0 CPU, N>0 layers on GPU */
	int64_t main_gpu;	   /* -1: not set */
	int64_t num_batch;	   /* 0: automatic (v0.33: by headroom; v0.12: 512) */
	int64_t num_thread;	   /* 0: automatic */
	int64_t use_mmap;	   /* -1: not set, 0 false, 1 true */
	int64_t draft_num_predict; /* 4 by default */
};

/* num_ctx as a request with "num_ctx": 0 (or less) gives it: v0.33 uses 4, v0.12
 * the automatic context. */
#define SIM_NUM_CTX_ZERO (-1)

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
	int oom_retries;   /* v0.33: a startup OOM is retried once */
	bool evict_all;	   /* the retry evicts every loaded runner first */
	int64_t retry_ctx; /* the retry's context (a tier lower), 0 = as computed */
	TAILQ_ENTRY(sim_job) entry;
};

struct sim_runner {
	const struct sim_model *model;
	struct sim_load_opts opts; /* as requested by the load */
	int64_t ctx;		   /* per-request context (api/ps context_length) */
	int parallel;
	uint64_t size_bytes;		       /* actual total footprint (/api/ps size) */
	uint64_t vram_bytes[SIM_MAX_GPUS];     /* actual bytes per GPU (/api/ps size_vram) */
	uint64_t cuda_ctx_bytes[SIM_MAX_GPUS]; /* v0.33: CUDA context, in NVML only */
	uint64_t ram_bytes;		       /* part on CPU */
	uint64_t estimate_bytes;	       /* Ollama's estimate */
	int64_t ubatch;			       /* micro-batch the compute buffer follows */
	uint64_t compute_bytes;		       /* compute buffer per device */
	int64_t gpu_layers, layers;	       /* layers on GPUs / block_count + 1 */
	int64_t load_start_mono_ns, load_ns;   /* real time: NVML grows during the load */
	int64_t release_due_mono_ns;	       /* unloaded: memory shows free from then */
	int64_t session_ns;		       /* keep_alive, SIM_FOREVER_NS = forever */
	int64_t expires_wall_ns;
	int refcount;
	int slots_busy;
	bool loading;
	bool oom;      /* this load will fail with out-of-memory */
	bool expiring; /* unload as soon as idle */
	uint32_t pid;
	double tokens_per_s; /* one stream alone on its GPUs */
	struct sim_sched *sched;
	struct event *timer; /* load completion, then idle expiry */
	TAILQ_HEAD(, sim_job) slot_waiters;
	TAILQ_ENTRY(sim_runner) entry;
};

struct sim_sched_config {
	int num_parallel;	     /* OLLAMA_NUM_PARALLEL, default 1 */
	int max_loaded;		     /* OLLAMA_MAX_LOADED_MODELS, 0 = 3 x max(GPUs, 1) */
	int max_queue;		     /* OLLAMA_MAX_QUEUE, default 512 */
	int64_t keep_alive_ns;	     /* OLLAMA_KEEP_ALIVE, default 5m */
	int64_t context_length;	     /* OLLAMA_CONTEXT_LENGTH, 0 = VRAM tier */
	double load_bytes_per_s;     /* --load-bw, default 2e9 */
	int64_t start_cost_ns;	     /* fixed llama-server start cost, default 300ms */
	double time_scale;	     /* every wait is divided by this */
	int ollama_minor;	     /* --ollama-version 0.X: 33 (default) or 12 (legacy fit) */
	uint64_t cuda_context_bytes; /* v0.33: NVML-only CUDA context per runner per GPU */
	uint64_t fit_target_bytes;   /* v0.33: llama.cpp --fit keeps this free per device */
	int64_t release_delay_ns;    /* v0.33: the driver frees an unloaded runner's memory */
	bool sched_spread;	     /* OLLAMA_SCHED_SPREAD: skip the single-GPU fit */
};

struct sim_counters {
	uint64_t requests, loads, unloads, evictions, oom_failures, rejected_503;
	uint64_t cpu_spills, load_retries, aborted_loads, recovery_waits, runtime_ooms;
	double cpu_tokens; /* tokens generated, each weighted by its runner's CPU layer share */
};

struct sim_sched {
	struct event_base *base;
	struct sim_hw *hw;
	const struct sim_catalogue *cat;
	struct sim_sched_config cfg;
	TAILQ_HEAD(sim_runner_list, sim_runner) runners;
	TAILQ_HEAD(, sim_job) pending;
	int npending;
	bool busy;			    /* a load or an eviction holds processPending */
	struct sim_runner *awaiting_unload; /* the victim an eviction waits for */
	uint64_t others_seen[SIM_MAX_GPUS]; /* other-process memory Ollama last saw */
	struct sim_runner_list releasing;   /* v0.33: unloaded, memory not yet free */
	bool recovering;		    /* v0.33: waiting for VRAM to recover */
	uint64_t recovery_base_free;	    /* sum of free memory before the unloads */
	uint64_t recovery_target;	    /* bytes that must show free (75 %) */
	int64_t recovery_deadline_mono_ns;
	struct event *recovery_poll;
	struct event *load_tick; /* republishes NVML memory while loads grow */
	struct event *kick;
	struct sim_counters counters;
	struct sim_faults *faults; /* borrowed, may be NULL: told of every load start */
};

/* Whether the scheduler behaves like Ollama v0.30+ (llama-server's --fit, OOM retry,
 * VRAM recovery waits) rather than v0.12. */
bool sim_sched_is_v033(const struct sim_sched *s);
/* Whether /api/ps lists r: loaded (v0.33 hides runners still loading) and not failed. */
bool sim_runner_is_listed(const struct sim_sched *s, const struct sim_runner *r);

/* Parses --ollama-version ("0.12", "0.33.0"): *minor gets the minor version and out
 * (len bytes) the version /api/version reports ("0.12.0"). Returns 0 or -EINVAL with
 * *cause. Minors below 30 behave like Ollama 0.12, 30 and above like 0.33. */
int sim_sched_parse_version(const char *text, int *minor, char *out, size_t len, char **cause);

/* Defaults of Ollama's environment (before env vars and flags). */
void sim_sched_config_defaults(struct sim_sched_config *cfg);
/* Creates a scheduler on base over hw and cat (both borrowed, must outlive it). */
struct sim_sched *sim_sched_new(struct event_base *base, struct sim_hw *hw,
				const struct sim_catalogue *cat,
				const struct sim_sched_config *cfg);
/* Frees every runner; every submitted job must have been finished first. */
void sim_sched_free(struct sim_sched *s);

/* Starts scheduling job. Returns 0 (ready_cb or error_cb follow, possibly before
 * this returns), or 503 when the pending queue is full: max_queue requests wait
 * besides the one the loop works on, and with max_queue 0 only an idle loop takes a
 * request (job untouched, nothing to finish). */
int sim_sched_submit(struct sim_sched *s, struct sim_job *job);
/* Gives a job back in any state: leaves the queue, frees its slot and reference
 * (idle runners start their keep_alive timer). Safe to call once per submitted job. */
void sim_sched_finish(struct sim_sched *s, struct sim_job *job);
/* The unload request (empty prompt + keep_alive 0): expire the model's runner now if
 * idle, else once its requests finish. No-op when not loaded. */
void sim_sched_expire_model(struct sim_sched *s, const struct sim_model *model);
/* A runtime OOM during a generation (Ollama's expireRunnersForRuntimeOOM): counts it
 * and marks every runner to unload, idle ones at once, busy ones when they finish. */
void sim_sched_runtime_oom(struct sim_sched *s);
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
