/*
 * scheduler.h: the decision step of observe -> decide -> act. sched_decide() is a pure
 * function: a snapshot of GPUs, models and queue summaries in, a plan out (unload
 * these models, load those, dispatch N jobs of these). No I/O, no clock reads, no
 * globals; the caller puts the current time in the snapshot.
 *
 * Memory model: a GPU's free_bytes is what NVML measures (so memory of other processes
 * is already subtracted). Loads in flight whose memory does not show yet are in
 * pending_bytes, reservations for other programs not yet taken in reserved_bytes.
 * A model fits a GPU when
 *     footprint <= free - pending - reserved - safety_margin.
 * Without NVML the daemon fills free_bytes from the configured budget minus the
 * footprints of resident models.
 */
#ifndef VRAMD_SCHEDULER_H
#define VRAMD_SCHEDULER_H

#include "job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched_config {
	uint64_t safety_margin_bytes; /* VRAM_SAFETY_MARGIN_MB */
	int64_t max_batch_wait_ms;    /* MAX_BATCH_WAIT: the most a job waits behind other models */
	int max_concurrent_per_model; /* MAX_CONCURRENT_PER_MODEL */
	int64_t keep_alive_ms;	      /* MODEL_KEEP_ALIVE: idle models unload after this */
	int max_loads_in_flight;      /* loads at once in all (Ollama serialises them: 1) */
	bool allow_cpu;		      /* models that fit no GPU may run on CPU (host RAM) */
	int max_loaded_models; /* resident models at most (the server evicts past it); 0 = no cap */
	int min_swap_batch;    /* a load that needs an eviction waits for this many queued jobs,
				  unless they starve or one is high priority; 0 or 1 = never waits */
	/* Added for multi-GPU placement (zero: pack, as before): */
	bool spread; /* PLACEMENT=spread: a direct fit goes to the GPU with the most room, then
			the fewest models and least running work, then the cooler one; false
			(pack): to the GPU with the least room that fits */
	/* Added for the issue-11 policy (zero: off, the behaviour before): */
	int64_t priority_aging_ms;	/* PRIORITY_AGING_S: a job's class rises one step per
					   interval waited (low -> normal -> high); 0 = never */
	bool prewarm;			/* PREWARM: an idle GPU with room loads the model most
					   likely to be asked for next, never evicting for it */
	uint64_t host_memory_min_bytes; /* HOST_MEMORY_MIN_MB: below this much available
					   host memory, idle CPU models are unloaded; 0 = off */
	/* Added for seed 004's keys (zero: off, the behaviour before): */
	int max_models_per_gpu; /* MODEL_CACHE_SIZE: models resident on one GPU at most (a
				   split model counts on each GPU, an unloading one until it
				   is gone); a GPU at it takes no load while another GPU may,
				   else an idle model on a full GPU is unloaded; 0 = no cap */
	bool pinned_only;	/* DYNAMIC_LOADING_ENABLED=false: pre-warm loads only pinned
				   models (so, in practice, none: the pinned are wanted) */
};

struct sched_gpu {
	int id;		/* index as the engine knows it */
	bool available; /* false: lost, or paused (CRITICAL); nothing new goes there */
	uint64_t total_bytes;
	uint64_t free_bytes;	 /* measured free memory */
	uint64_t pending_bytes;	 /* loads in flight not yet visible in free_bytes */
	uint64_t reserved_bytes; /* reservations for other programs not yet visible */
	double speed;		 /* 1.0 OPTIMAL .. 0.0 paused: scales concurrency on this GPU */
	/* Added later (zero when a caller does not set it): memory the driver keeps for itself
	 * (NVML's reserved), never free, so never counted as room a model could ever have. */
	uint64_t driver_reserved_bytes;
	/* Added for TEMP_SHUTDOWN_C (zero: no): the GPU is too hot to use at all (it is not
	 * available either). Every model of ours on it is unloaded at once, with its jobs
	 * running: the engine stops them and puts them back in the queue first. */
	bool shutdown;
};

enum sched_residency {
	SCHED_UNLOADED,
	SCHED_LOADING,
	SCHED_LOADED,
	SCHED_UNLOADING,
};

#define SCHED_GPU_CPU	(-1) /* gpu value of a model placed on CPU */
#define SCHED_GPU_SPLIT (-2) /* gpu value of a model split over every GPU of the server */
#define SCHED_SPLIT_MAX 16   /* GPUs a split may span */

/* Where a model must be (a forced placement, a manual load, a move in progress). */
enum sched_placement {
	SCHED_PLACE_AUTO,   /* wherever it fits: a GPU, or the CPU when allowed */
	SCHED_PLACE_GPU,    /* any GPU, entirely in VRAM (not spilled); never the CPU */
	SCHED_PLACE_CPU,    /* the CPU (host memory), even when ALLOW_CPU is off */
	SCHED_PLACE_GPU_ID, /* the GPU whose id is placement_gpu */
};

struct sched_model {
	const char *name;	  /* borrowed */
	uint64_t footprint_bytes; /* measured footprint, or the estimate until measured */
	enum sched_residency residency;
	int gpu;     /* where it is (or is loading): a sched_gpu id or SCHED_GPU_CPU */
	int running; /* jobs in flight (pending or running) */
	int queued[JOB_NPRIORITIES];
	int64_t oldest_enqueued_ms[JOB_NPRIORITIES]; /* monotonic; meaningful when queued > 0 */
	int64_t last_used_ms; /* monotonic: last job start or end, or load end */
	bool cpu_allowed;     /* this model may be placed on CPU */
	bool spilled;	      /* placed on a GPU, but the server put part of it on the CPU (a wrong
				 placement): unloaded as soon as it is idle, so its next load is
				 planned with the footprint learnt from it */
	/* Added for seed 003/000 operations (zero: none of them): */
	bool pinned;	       /* PIN_MODELS: never unloaded for keep-alive, room or the resident
				  cap (a spilled one is still reloaded to fix its placement) */
	bool wanted;	       /* loaded even with no job queued (pinned, a manual load, a move) */
	bool gpu_priority;     /* GPU_PRIORITY_MODELS: with snapshot.optimize, an idle one on the
				  CPU or spilled is moved to a GPU that has (or can make) room */
	bool unload_requested; /* unloaded as soon as no job of it runs; no new dispatch */
	enum sched_placement placement; /* a resident model elsewhere is moved once idle */
	int placement_gpu;		/* SCHED_PLACE_GPU_ID: the sched_gpu id */
	/* Added for multi-GPU placement (zero: none of them): */
	const int *preferred_gpus; /* MODEL_GPU_MAP: sched_gpu ids tried in this order before
				      the others (borrowed for the call); NULL: none */
	size_t npreferred;
	uint64_t split_overhead_bytes; /* what each GPU of a split holds beyond its share of
					  the footprint (CUDA context, compute buffer); a
					  model that fits no single GPU is split over every
					  GPU of the server only when this is set */
	uint64_t preflight_bytes;      /* the server's own prediction (Ollama: file + KV + batch
					  surcharge); while other models are resident a load must
					  leave preflight <= 0.8 x (free - pending - reserved) on the
					  GPUs it goes to, or the server evicts; 0: not checked */
	/* Added for the Ollama front door (zero: none): */
	int64_t keep_until_ms; /* monotonic: a client's keep_alive hint (CLIENT_KEEP_ALIVE);
				  not unloaded for keep-alive before this. Unloads that make
				  room for other models do not look at it. */
	/* Learned by the engine, for the issue-11 policy (zero: unknown; the rules that use
	 * them then fall back to recency and job counts): */
	double arrival_rate; /* jobs per second asked of it lately (decaying average) */
	int64_t load_ms;     /* measured time of its last loads */
	int64_t run_ms;	     /* measured time of one of its jobs (mean) */
	bool prewarmed;	     /* loaded by pre-warm and not used since: the first victim */
	/* Added for deadlines (zero: none): monotonic, the earliest deadline of its queued
	 * jobs of each priority (queue_model_summary.earliest_deadline_ms); 0 when none. */
	int64_t deadline_ms[JOB_NPRIORITIES];
	/* Added for per-request placement (issue 11; zero: as config.allow_cpu says): */
	bool cpu_fallback; /* its waiting jobs have placement any: with automatic placement
			      it may go to the CPU when no GPU can hold it even with
			      config.allow_cpu off (cpu_allowed still applies). The engine
			      gives jobs of placement gpu as cpu_allowed false (and
			      SCHED_PLACE_GPU for a copy on the CPU, so it moves), and jobs
			      that must go to the CPU as SCHED_PLACE_CPU. */
};

struct sched_snapshot {
	int64_t now_ms; /* monotonic */
	const struct sched_config *config;
	const struct sched_gpu *gpus;
	size_t ngpus;
	const struct sched_model *models;
	size_t nmodels;
	uint64_t cpu_free_bytes; /* host memory available for CPU placement */
	int loads_in_flight;
	/* Added after the first version (zero when a caller does not set it): */
	uint64_t cpu_total_bytes; /* host memory in all; 0: unknown (cpu_free_bytes is used) */
	bool optimize; /* the GPU optimizer runs in this decision (OPTIMIZER_INTERVAL passed or a
			  GPU freed memory): gpu_priority models on the CPU may move */
};

enum sched_action_type {
	SCHED_ACTION_UNLOAD,   /* unload model (it is idle) */
	SCHED_ACTION_LOAD,     /* load model on gpu (or SCHED_GPU_CPU) */
	SCHED_ACTION_DISPATCH, /* start count jobs of model (it is loaded) */
};

enum sched_reason {
	SCHED_REASON_KEEP_ALIVE,  /* unload: idle longer than keep_alive */
	SCHED_REASON_MAKE_ROOM,	  /* unload: room for a load */
	SCHED_REASON_DEMAND,	  /* load or dispatch: jobs wait for it */
	SCHED_REASON_STARVATION,  /* load or dispatch: a job waited past max_batch_wait */
	SCHED_REASON_RELOCATE,	  /* unload: its GPU is paused or lost and another GPU fits it,
				     or it spilled to the CPU and is idle */
	SCHED_REASON_OPTIMIZE,	  /* unload: a gpu_priority model leaves the CPU; it is to be
				     reloaded on a GPU (the caller marks it wanted there) */
	SCHED_REASON_PLACEMENT,	  /* unload: it is not where its placement says; it is to be
				     reloaded there */
	SCHED_REASON_REQUESTED,	  /* unload: unload_requested */
	SCHED_REASON_WANTED,	  /* load: wanted with no job queued */
	SCHED_REASON_PREWARM,	  /* load: nothing waits and a GPU has room; the model most
				     likely to be asked for next (config.prewarm) */
	SCHED_REASON_HOST_MEMORY, /* unload: an idle CPU model, host memory is below
				     host_memory_min_bytes */
	SCHED_REASON_SHUTDOWN,	  /* unload: its GPU (or one GPU of its split) is SHUTDOWN;
				     even with jobs running (the engine requeues them first),
				     pinned or with jobs queued */
};

struct sched_action {
	enum sched_action_type type;
	size_t model; /* index into snapshot.models */
	int gpu;      /* LOAD: target gpu id, SCHED_GPU_CPU or SCHED_GPU_SPLIT; otherwise the
			 model's gpu */
	int count;    /* DISPATCH: number of jobs */
	enum sched_reason reason;
	size_t split; /* LOAD with gpu SCHED_GPU_SPLIT: index into plan.splits */
};

/* A load split over several GPUs: the GPUs and the memory it takes on each. */
struct sched_split {
	size_t ngpus;
	int gpu[SCHED_SPLIT_MAX];	 /* sched_gpu ids */
	uint64_t bytes[SCHED_SPLIT_MAX]; /* memory on each, overhead included */
};

struct sched_plan {
	struct sched_action *actions;
	size_t nactions;
	size_t alloc;
	struct sched_split *splits; /* referenced by split loads */
	size_t nsplits, splits_alloc;
	void *scratch; /* private to scheduler.c: working memory reused across decisions */
};

void sched_plan_init(struct sched_plan *plan);
void sched_plan_cleanup(struct sched_plan *plan);

/*
 * Decides what to do now. Clears plan and fills it with actions, in the order to carry
 * them out (unloads first). Deterministic: the same snapshot gives the same plan.
 */
void sched_decide(const struct sched_snapshot *snap, struct sched_plan *plan);

/*
 * Whether model could ever be placed: its footprint fits some GPU's total memory minus
 * the safety margin (paused or lost GPUs count, they may come back), or, with
 * split_overhead_bytes set, all GPUs together hold it with the overhead on each, or it
 * may run on CPU and fits host memory. A model that cannot is never planned; the daemon fails its
 * jobs with a clear message instead of letting them wait forever.
 */
bool sched_model_can_ever_fit(const struct sched_snapshot *snap, size_t model);

/* Static names for logs and the API ("unload", "make_room", ...). */
const char *sched_action_name(enum sched_action_type type);
const char *sched_reason_name(enum sched_reason reason);

#endif
