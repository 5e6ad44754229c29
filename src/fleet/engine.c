/*
 * engine.c: the "act" step, and the driver of "decide".
 *
 * On every kick (a job arrived or ended, a load or unload finished, a GPU sample came
 * in) and every SCHEDULER_LOOP_INTERVAL, the engine builds a scheduler snapshot from
 * its model states, the queue, the registry and the GPU monitor, calls sched_decide()
 * (pure), and carries out the plan through the backend:
 *
 *   UNLOAD   keep_alive 0; the model stays UNLOADING until /api/ps stops listing it
 *            and NVML no longer shows its runner (Ollama 0.33 frees the memory after
 *            replying), bounded by ENGINE_UNLOAD_CONFIRM_MS, then a fresh GPU sample is
 *            taken.
 *   LOAD     first waits for a GPU sample taken after it was planned (the scheduler
 *            decides again on it), then an empty-prompt generate with keep_alive -1
 *            (vramd, not Ollama's timer, decides unloads), bounded by LOAD_TIMEOUT.
 *            Its runner is the Ollama process that appears on the GPU meanwhile. Until
 *            a GPU sample taken after the load shows its memory, the part of the
 *            model's footprint its runner does not hold yet counts as pending. Once
 *            /api/ps lists it, a load /api/ps shows partly on the CPU is counted as a
 *            spill, and the runner's NVML memory teaches the registry its overhead.
 *   DISPATCH pops jobs of the model (highest priority first) and runs them, with
 *            NORMALIZE_OPTIONS given the runner's reload options (runner-opts.h); a job
 *            asking more context than the runner has is not sent to it: the runner is
 *            unloaded once idle, and the next load gives that context.
 *
 * Reconciliation: every fresh /api/ps listing is reconciled with the model states
 * (engine_observe_ps, rules in reconcile.c): models the server holds that vramd did not
 * load are adopted, models gone without an unload become unloaded, and after a failed
 * connection nothing is decided until a listing taken since the server came back has
 * been reconciled (bounded by ENGINE_RECONCILE_WAIT_MS).
 *
 * Failures: an Ollama error reply fails the job with Ollama's message; a connection
 * failure puts the job back at the head of the queue (at most ENGINE_MAX_ATTEMPTS
 * attempts) and pauses dispatch until the monitor sees the server again. A run or a
 * load past its timeout holds all work for the server until it answers a probe (it may
 * be hung); the load is abandoned and the model unloaded. A load that fails is retried
 * with backoff; after ENGINE_MAX_LOAD_FAILURES in a row the model's queued jobs fail
 * with the load's error.
 */
#include "engine.h"
#include "eta.h"

#include "backend.h"
#include "config.h"
#include "events.h"
#include "daemon.h"
#include "gpu.h"
#include "gpu-map.h"
#include "gpu-policy.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "node.h"
#include "queue.h"
#include "reconcile.h"
#include "registry.h"
#include "runner-opts.h"
#include "scheduler.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE_MAX_ATTEMPTS	 5
#define ENGINE_MAX_LOAD_FAILURES 3
#define ENGINE_UNLOAD_CONFIRM_MS 5000
#define ENGINE_LOAD_BACKOFF_MS	 1000
#define ENGINE_RELEASE_POLL_MS	 50    /* GPU samples while an unloaded runner holds memory */
#define ENGINE_RECONCILE_WAIT_MS 10000 /* after an outage, the longest wait for a listing */
#define ENGINE_FIT_RESERVE	 (1024 * VD_MIB) /* llama-server --fit's free memory per GPU */
/* Arrival rates decay with this time constant: a model asked for a few minutes ago still
 * counts, one not asked for in ten has faded. */
#define ENGINE_RATE_TAU_MS 120000.0

struct engine_model {
	char *name; /* the registry's display name; the queue key */
	enum sched_residency residency;
	int gpu;			/* scheduler gpu id, SCHED_GPU_CPU or SCHED_GPU_SPLIT */
	struct sched_split split;	/* gpu SCHED_GPU_SPLIT: the GPUs and the memory on each */
	int preferred[SCHED_SPLIT_MAX]; /* MODEL_GPU_MAP, resolved at each decision */
	int running;
	int64_t last_used_ms;	   /* monotonic */
	int64_t load_started_ms;   /* monotonic */
	int64_t load_done_ms;	   /* monotonic; 0 if never */
	int64_t unload_replied_ms; /* monotonic; 0 while the unload call is in flight */
	int64_t not_before_ms;	   /* no load before this (backoff after a failure) */
	int load_failures;	   /* consecutive */
	int64_t load_timeout_ms;   /* the bound given to the load in flight */
	bool load_abandoned;	   /* the unload in flight follows a load that timed out */
	/* Its runner as NVML shows it (Ollama v0.33 hides a loading runner from /api/ps and
	 * its CUDA context always): */
	uint32_t pids_before[GPU_MAX_PROCESSES]; /* Ollama processes on its GPU when its load
						    began; the new one is its runner */
	size_t npids_before;
	bool pids_known;	   /* pids_before came from a process list */
	uint32_t runner_pid;	   /* its runner once identified; 0 = unknown */
	bool runner_recorded;	   /* this load's runner memory went to the registry */
	bool spilled;		   /* /api/ps showed part of it on the CPU after this load */
	bool adopted;		   /* loaded by someone else (or before a restart); vramd adopted
				      it from /api/ps */
	int64_t unloaded_ms;	   /* monotonic: its last unload was confirmed; 0 = never */
	struct backend_call *call; /* the load or unload in flight */
	/* Model operations (the last section of this file): */
	bool pinned, gpu_priority;	     /* in PIN_MODELS, GPU_PRIORITY_MODELS */
	bool wanted;			     /* load it with no job: a manual load or a move */
	enum sched_placement want_placement; /* where the wanted load goes */
	int want_gpu;			     /* SCHED_PLACE_GPU_ID */
	enum sched_placement placement;	     /* forced (force_gpu/force_cpu); stays until
						changed */
	bool unload_requested;		     /* POST /api/models/unload */
	char move_from[24];		     /* where a move began ("cpu", "gpu 0"); "" none */
	const char *move_why;		     /* static: "optimizer", "placement", ... */
	struct engine *engine;
	/* registry_find(m->name), cached: every decision reads it for each model, and the
	 * lookup normalises and hashes the name. Valid while the registry's generation is
	 * rm_generation (a NULL answer may change when a model is added). */
	struct registry_model *rm;
	uint64_t rm_generation;
	bool rm_known;
	struct queue_model_summary queue; /* its waiting jobs, as of the current decision */
	const struct job *head;		  /* queue_peek_model() as of the snapshot being built (one
					     lookup, not one per reader); read through engine_model_head */
	int sum_index;			  /* its index in the decision's queue summaries; -1 */
	bool routed;			  /* the fleet sent its queued jobs here last decision */
	/* Its runner's reload options (NORMALIZE_OPTIONS, runner-opts.h): */
	json_t *runner_opts;   /* what vramd's load sent ({}: automatic); NULL: unknown */
	int64_t runner_ctx;    /* its context as /api/ps lists it; 0 until listed */
	int64_t fit_ctx;       /* the lower context it is loaded with because it fits no GPU at
				  the automatic one (engine_fit_context); 0: the automatic one */
	int64_t keep_until_ms; /* monotonic: a client's keep_alive hint; no keep-alive unload
				  before this (0: none) */
	/* What the scheduler's issue-11 policy learns (engine_learn_*): */
	double arrival_rate;   /* decaying count of its jobs / ENGINE_RATE_TAU_MS, as of
				  arrival_at_ms */
	int64_t arrival_at_ms; /* monotonic: the newest arrival counted */
	double load_ms_mean;   /* moving average of its load times; 0 until one loaded */
	double run_ms_mean;    /* moving average of its jobs' run times; 0 until one ran */
	bool prewarmed;	       /* loaded by pre-warm and not used since */
	bool no_prewarm;       /* not pre-warmed again until a job of it runs: its last
				  pre-warm went unused, or a user unloaded it */
	/* Per-request placement and WAIT_WARN_S (issue 11, engine_watch_waits): */
	int64_t blocked_since_ms; /* monotonic: its waiting jobs have had a waiting_reason
				     since; 0 = not blocked */
	bool wait_fallback;	  /* blocked WAIT_WARN_S with only jobs of placement any and
				     cpu: it loads on the CPU */
	bool gpu_never_fits;	  /* its jobs of placement gpu can never fit a GPU of this
				     node (this decision) */
};

struct engine_run {
	struct engine_run *next;
	struct engine *engine;
	struct engine_model *model;
	struct job *job; /* a reference */
	struct backend_call *call;
	int64_t started_mono_ms;
};

/* The snapshot of one decision, kept between engine_snapshot() and engine_decide(). */
struct engine_decision {
	bool ready; /* a snapshot was built: the node can decide */
	struct sched_config cfg;
	struct sched_gpu gpus[GPU_MAX_DEVICES];
	uint64_t own_pending[GPU_MAX_DEVICES]; /* gpus[i].pending_bytes of this node's loads */
	struct sched_snapshot snap;
	struct sched_model *models;
	struct engine_model **src;
	int *sum; /* per snapshot model: its index in the queue summaries, or -1 */
	size_t alloc;
};

struct engine {
	struct daemon *d;
	struct node *node;
	struct engine_hooks hooks;	/* how results travel up: a job changed, decide again */
	struct engine *const *siblings; /* every node's engine, for runners on shared GPUs */
	size_t nsiblings;
	char tag[80]; /* "node NAME: " before its log lines when there are several; "" */
	struct engine_model **models;
	size_t nmodels, models_alloc;
	/* models by name (open addressing, index + 1, 0 = empty; a power of two, more than
	 * twice nmodels): every decision looks up each queued model, and a scan of names
	 * was most of vramd's CPU at 1000 models. Models are never removed. */
	size_t *model_slots;
	size_t nmodel_slots;
	/* The model of each queue summary index in the last snapshot: the queue keeps its
	 * models in a stable order, so a name compare usually replaces the hash lookup. */
	struct engine_model **by_sum;
	size_t by_sum_alloc;
	size_t name_lookups; /* engine_model_find calls (engine_lookup_count) */
	struct engine_run *runs;
	struct engine_decision dec;
	bool heads_valid; /* the models' head fields hold this snapshot's queue heads: only
			     while engine_snapshot builds it, as nothing changes the queue */
	bool backend_up;
	bool outage;		     /* a connection failed; the next listing reconciles fully */
	int64_t backend_up_since_ms; /* monotonic: when the server last became reachable */
	struct engine_counters counters;
	double run_ms_mean;	   /* moving average of run times */
	double swap_ms_mean;	   /* moving average of the time from one load's end to the
				      next one's, when the next model's jobs waited through it:
				      the pace of back-to-back swaps (drain, unload, sample,
				      load), for the ETA; 0 until measured */
	int64_t last_load_done_ms; /* monotonic: when the last load ended; 0 before any */
	struct sched_plan plan;
	int loads_in_flight;
	int64_t load_sample_asked_ms; /* monotonic: a planned load asked for a fresh GPU
					 sample then; 0 when no load waits for one */
	int64_t optimize_next_ms;     /* monotonic: the GPU optimizer's next turn */
	bool optimize_now;	      /* a GPU freed memory: the optimizer runs next decision */
	int64_t num_ctx;	      /* the context loads get (engine_size_kv_caches) */
};

static void engine_ops_prepare(struct engine *e);
static void engine_ops_unloading(struct engine *e, struct engine_model *m,
				 enum sched_reason reason);
static void engine_ops_loaded(struct engine *e, struct engine_model *m);

static void engine_unload_cb(const struct backend_status *st, void *arg);
static uint64_t engine_model_vram(const struct engine *e, const struct engine_model *m);
static int64_t engine_auto_ctx(const struct engine *e, const struct engine_model *m);
static void engine_adopt_placement(struct engine *e, struct engine_model *m, uint64_t size_vram);
static size_t engine_requeue_runs(struct engine *e, struct engine_model *m, const char *why,
				  bool counted);
static char *engine_model_waiting_reason(const struct engine *e, const char *name);

static int64_t
engine_now(void)
{
	return vd_now_mono_ms();
}

static size_t
engine_model_slot(const struct engine *e, const char *name)
{
	size_t mask = e->nmodel_slots - 1;
	for (size_t i = vd_hash64(name, strlen(name), 0x5eed) & mask;; i = (i + 1) & mask) {
		size_t s = e->model_slots[i];
		if (s == 0 || strcmp(e->models[s - 1]->name, name) == 0)
			return i;
	}
}

static struct engine_model *
engine_model_find(const struct engine *e, const char *name)
{
	((struct engine *)e)->name_lookups++; /* a statistic, not the engine's state */
	if (e->nmodel_slots == 0)
		return NULL;
	size_t s = e->model_slots[engine_model_slot(e, name)];
	return s != 0 ? e->models[s - 1] : NULL;
}

/* Rebuilds the name index with nslots slots (a power of two). */
static void
engine_model_rehash(struct engine *e, size_t nslots)
{
	free(e->model_slots);
	e->model_slots = xcalloc(nslots, sizeof(*e->model_slots));
	e->nmodel_slots = nslots;
	for (size_t i = 0; i < e->nmodels; i++)
		e->model_slots[engine_model_slot(e, e->models[i]->name)] = i + 1;
}

/* The registry's entry for m (NULL: not known yet), looked up again only when the
 * registry gained a model since the last look. */
/* The job m's next load would serve (the first of its queue), or NULL. */
static const struct job *
engine_model_head(const struct engine *e, const struct engine_model *m)
{
	return e->heads_valid ? m->head : queue_peek_model(e->d->queue, m->name);
}

static struct registry_model *
engine_model_registry(const struct engine *e, const struct engine_model *m)
{
	struct engine_model *cache = (struct engine_model *)m; /* only the cache changes */
	uint64_t gen = registry_generation(e->node->registry);
	if (cache->rm == NULL && (!cache->rm_known || cache->rm_generation != gen)) {
		cache->rm = registry_find(e->node->registry, m->name);
		cache->rm_generation = gen;
		cache->rm_known = true;
	}
	return cache->rm;
}

/* The model's runtime state, created (unloaded, idle) on first use. */
static struct engine_model *
engine_model_get(struct engine *e, const char *name)
{
	struct engine_model *found = engine_model_find(e, name);
	if (found != NULL)
		return found;
	if (e->nmodels == e->models_alloc) {
		e->models_alloc = e->models_alloc ? e->models_alloc * 2 : 16;
		e->models = xreallocarray(e->models, e->models_alloc, sizeof(*e->models));
	}
	struct engine_model *m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->residency = SCHED_UNLOADED;
	m->gpu = SCHED_GPU_CPU;
	m->engine = e;
	e->models[e->nmodels++] = m;
	if (e->nmodels * 2 >= e->nmodel_slots)
		engine_model_rehash(e, e->nmodel_slots != 0 ? e->nmodel_slots * 2 : 64);
	else
		e->model_slots[engine_model_slot(e, m->name)] = e->nmodels;
	return m;
}

/* A job of m arrived (was enqueued) at t: the exponentially decaying arrival count moves
 * on. Arrivals may be counted out of order (jobs are counted when dispatched). */
static void
engine_learn_arrival(struct engine_model *m, int64_t t)
{
	if (m->arrival_at_ms == 0 || t >= m->arrival_at_ms) {
		double dt = m->arrival_at_ms == 0 ? 0.0 : (double)(t - m->arrival_at_ms);
		m->arrival_rate = m->arrival_rate * exp(-dt / ENGINE_RATE_TAU_MS) + 1.0;
		m->arrival_at_ms = t;
	} else {
		m->arrival_rate += exp(-(double)(m->arrival_at_ms - t) / ENGINE_RATE_TAU_MS);
	}
}

/* m's arrival rate at now, in jobs per second. */
static double
engine_arrival_rate(const struct engine_model *m, int64_t now)
{
	if (m->arrival_at_ms == 0)
		return 0.0;
	double dt = now > m->arrival_at_ms ? (double)(now - m->arrival_at_ms) : 0.0;
	return m->arrival_rate * exp(-dt / ENGINE_RATE_TAU_MS) * 1000.0 / ENGINE_RATE_TAU_MS;
}

/* Moving average of a measured duration (the first measurement sets it). */
static void
engine_learn_mean(double *mean, int64_t ms)
{
	if (ms < 0)
		return;
	*mean = *mean <= 0.0 ? (double)ms : 0.8 * *mean + 0.2 * (double)ms;
}

static bool
engine_budget_mode(const struct engine *e)
{
	return e->node->telemetry == NODE_TELEMETRY_BUDGET;
}

static bool
engine_cpu_only(const struct engine *e)
{
	return e->node->telemetry == NODE_TELEMETRY_NONE;
}

/* The host's GPU policy (thermal states, reservations) governs only this host's GPUs. */
static bool
engine_gpus_are_local(const struct engine *e)
{
	return e->node->telemetry == NODE_TELEMETRY_LOCAL;
}

static void
engine_sample_now(struct engine *e)
{
	if (e->node->gpus != NULL)
		gpu_monitor_sample_now(e->node->gpus);
}

struct engine *
engine_new(struct daemon *d, struct node *node, const struct engine_hooks *hooks)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->d = d;
	e->node = node;
	e->hooks = *hooks;
	e->backend_up = false;
	e->run_ms_mean = -1;
	sched_plan_init(&e->plan);
	return e;
}

void
engine_set_siblings(struct engine *e, struct engine *const *engines, size_t n)
{
	e->siblings = engines;
	e->nsiblings = n;
	if (n > 1)
		snprintf(e->tag, sizeof(e->tag), "node %s: ", e->node->name);
}

void
engine_kick(struct engine *e)
{
	e->hooks.kick(e->hooks.arg);
}

void
engine_set_backend_up(struct engine *e, bool up)
{
	if (e->backend_up == up)
		return;
	e->backend_up = up;
	if (!up)
		e->outage = true;
	if (up) {
		e->backend_up_since_ms = engine_now();
		e->optimize_now = true; /* a node change: the GPU optimizer looks again */
		engine_kick(e);
	}
}

bool
engine_backend_is_up(const struct engine *e)
{
	return e->backend_up;
}

/* A request to the server ran past its timeout: the server may be hung, so nothing more
 * is sent (jobs stay queued) until it answers the probe asked for here. */
static void
engine_hold_backend(struct engine *e, const char *what)
{
	if (e->backend_up)
		vd_warn(ENGINE, "%s; holding work for ollama at %s until it answers a probe", what,
			e->node->url);
	engine_set_backend_up(e, false);
	monitor_poll_now(e->node->monitor);
}

size_t
engine_lookup_count(const struct engine *e)
{
	return e->name_lookups;
}

void
engine_counters(const struct engine *e, struct engine_counters *out)
{
	*out = e->counters;
}

/* --- Runners as NVML shows them ---------------------------------------------------------- */

/* The latest sample of GPU id when it lists processes; NULL otherwise (no NVML, a
 * provider without process lists, budget or CPU-only mode). */
static const struct gpu_sample *
engine_gpu_process_sample(const struct engine *e, int gpu)
{
	if (gpu < 0 || engine_budget_mode(e) || engine_cpu_only(e))
		return NULL;
	const struct gpu_device *dev = node_gpu_find(e->node, gpu);
	if (dev == NULL || !dev->has_sample || !(dev->latest.valid & GPU_HAS_PROCESSES))
		return NULL;
	return &dev->latest;
}

static const struct gpu_process *
engine_sample_process(const struct gpu_sample *s, uint32_t pid)
{
	for (size_t i = 0; i < s->nprocesses; i++)
		if (s->processes[i].pid == pid)
			return &s->processes[i];
	return NULL;
}

/* Whether pid is the runner of a model other than self, on this node or on another node
 * of this host that sees the same GPUs. */
static bool
engine_pid_is_claimed(const struct engine *e, const struct engine_model *self, uint32_t pid)
{
	for (size_t i = 0; i < e->nmodels; i++)
		if (e->models[i] != self && e->models[i]->runner_pid == pid)
			return true;
	for (size_t k = 0; k < e->nsiblings; k++) {
		const struct engine *o = e->siblings[k];
		if (o == e || o->node->gpus != e->node->gpus)
			continue;
		for (size_t i = 0; i < o->nmodels; i++)
			if (o->models[i]->runner_pid == pid)
				return true;
	}
	return false;
}

/* Remembers which Ollama processes are on the GPU as a load of m begins. */
/* The model has no runner any more (unloaded, gone, a failed load): nothing of it holds. */
static void
engine_model_forget_runner(struct engine_model *m)
{
	json_decref(m->runner_opts);
	m->runner_opts = NULL;
	m->runner_ctx = 0;
	m->keep_until_ms = 0;
}

static void
engine_model_note_pids(struct engine *e, struct engine_model *m)
{
	const struct gpu_sample *s = engine_gpu_process_sample(e, m->gpu);
	m->runner_pid = 0;
	m->runner_recorded = false;
	m->spilled = false;
	m->adopted = false;
	m->npids_before = 0;
	m->pids_known = s != NULL;
	for (size_t i = 0; s != NULL && i < s->nprocesses; i++)
		if (s->processes[i].is_ollama)
			m->pids_before[m->npids_before++] = s->processes[i].pid;
}

/*
 * The runner of m in sample s: the process it was identified as before, or else, while
 * its load runs or once it is done, an Ollama process with a known size that was not on
 * the GPU when the load began and is no other model's runner (vramd loads one model at
 * a time per server). NULL when none shows (yet, or any more).
 */
static const struct gpu_process *
engine_model_runner(const struct engine *e, struct engine_model *m, const struct gpu_sample *s)
{
	if (s == NULL)
		return NULL;
	if (m->runner_pid != 0)
		return engine_sample_process(s, m->runner_pid);
	if (!m->pids_known || (m->residency != SCHED_LOADING && m->residency != SCHED_LOADED))
		return NULL;
	for (size_t i = 0; i < s->nprocesses; i++) {
		const struct gpu_process *p = &s->processes[i];
		bool before = false;
		for (size_t j = 0; j < m->npids_before && !before; j++)
			before = m->pids_before[j] == p->pid;
		if (!p->is_ollama || !p->used_known || before ||
		    engine_pid_is_claimed(e, m, p->pid))
			continue;
		m->runner_pid = p->pid;
		return p;
	}
	return NULL;
}

/*
 * After a load, once /api/ps has been read since: a model placed on a GPU that the
 * server put partly on the CPU (size_vram < size) is a wrong placement, counted and
 * flagged for the scheduler; and the memory its runner holds in a GPU sample taken after
 * the load teaches the registry the runner overhead /api/ps does not show.
 */
static void
engine_observe_loads(struct engine *e)
{
	int64_t ps_since = monitor_ps_fresh_since(e->node->monitor);
	for (size_t i = 0; i < e->nmodels; i++) {
		struct engine_model *m = e->models[i];
		if (m->adopted && m->residency == SCHED_LOADED && m->runner_pid == 0 &&
		    m->gpu != SCHED_GPU_CPU)
			engine_adopt_placement(e, m, engine_model_vram(e, m));
		if (m->residency != SCHED_LOADED || m->gpu == SCHED_GPU_CPU ||
		    m->load_done_ms == 0 || ps_since < m->load_done_ms)
			continue;
		const struct registry_model *rm = engine_model_registry(e, m);
		if (rm == NULL || !rm->loaded)
			continue;
		if (!m->spilled && rm->size_vram_bytes < rm->size_bytes) {
			m->spilled = true;
			e->counters.cpu_spills++;
			char *what = xasprintf(
			    "ollama put %llu of %llu MiB of %s on the CPU although %s GPU %d",
			    (unsigned long long)((rm->size_bytes - rm->size_vram_bytes) >> 20),
			    (unsigned long long)(rm->size_bytes >> 20), m->name,
			    m->adopted ? "it holds the rest on" : "vramd planned it on", m->gpu);
			vd_warn(ENGINE, "%s; it is unloaded once idle%s", what,
				config_bool(e->d->config, CONFIG_ALLOW_CPU)
				    ? " if a GPU has room for all of it (ALLOW_CPU accepts it)"
				    : "");
			events_emit(gpu_policy_events(e->d->policy), "model_spilled",
				    json_pack("{s:s,s:s,s:s}", "model", m->name, "server",
					      e->node->url, "message", what));
			free(what);
		}
		if (m->runner_recorded)
			continue;
		const struct gpu_sample *s = engine_gpu_process_sample(e, m->gpu);
		const struct gpu_process *r =
		    s != NULL && s->mono_ms > m->load_done_ms ? engine_model_runner(e, m, s) : NULL;
		if (r == NULL)
			continue;
		m->runner_recorded = true;
		if (registry_record_runner(e->node->registry, m->name, r->used_bytes) == 0)
			vd_debug(ENGINE, "runner of %s (pid %u) holds %llu MiB; /api/ps shows %llu",
				 m->name, r->pid, (unsigned long long)(r->used_bytes >> 20),
				 (unsigned long long)(rm->size_vram_bytes >> 20));
	}
}

/* --- Snapshot --------------------------------------------------------------------------- */

/* Loaded by vramd on a GPU, but no /api/ps listing taken since: where Ollama really put it
 * (all of it, or part on the CPU) is not known yet. Until a listing says, it is not
 * unloaded for room, the margin or keep-alive: an unload then would lose the spill
 * unnoticed (and its measured footprint), and undo a load made a moment ago on a guess. */
static bool
engine_model_unobserved(const struct engine *e, const struct engine_model *m)
{
	return m->residency == SCHED_LOADED && m->gpu != SCHED_GPU_CPU && m->load_done_ms > 0 &&
	       monitor_ps_fresh_since(e->node->monitor) < m->load_done_ms;
}

static bool
engine_model_is_resident(const struct engine_model *m)
{
	return m->residency != SCHED_UNLOADED;
}

/* What a load at context ctx saves on the estimate's KV cache (taken at the automatic
 * context). */
static uint64_t
engine_kv_saved(const struct engine *e, const struct registry_model *rm, int64_t ctx)
{
	uint64_t kv = registry_kv_bytes_at(e->node->registry, rm, ctx);
	return rm->kv_bytes > kv ? rm->kv_bytes - kv : 0;
}

/* The footprint to plan with; a model to be loaded for a job that asks for a larger
 * context (options.num_ctx) needs the larger KV cache. */
static uint64_t
engine_model_footprint(const struct engine *e, const struct engine_model *m)
{
	const struct registry_model *rm = engine_model_registry(e, m);
	if (rm == NULL)
		return 0;
	const struct job *next = engine_model_is_resident(m) ? NULL : engine_model_head(e, m);
	if (next != NULL && job_num_ctx(next) > 0)
		return registry_footprint_at_ctx(e->node->registry, rm, job_num_ctx(next));
	if (m->fit_ctx > 0 && !rm->measured)
		return registry_footprint(rm) - engine_kv_saved(e, rm, m->fit_ctx);
	return registry_footprint(rm);
}

/* What /api/ps last showed of m in VRAM (0 when not listed). */
static uint64_t
engine_model_vram(const struct engine *e, const struct engine_model *m)
{
	const struct registry_model *rm = engine_model_registry(e, m);
	return rm != NULL && rm->loaded ? rm->size_vram_bytes : 0;
}

/* "CPU" or "GPU n" into buf; returns buf. */
static const char *
engine_place_name(int gpu, char *buf, size_t size)
{
	if (gpu == SCHED_GPU_CPU)
		snprintf(buf, size, "CPU");
	else if (gpu == SCHED_GPU_SPLIT)
		snprintf(buf, size, "GPUs (split)");
	else
		snprintf(buf, size, "GPU %d", gpu);
	return buf;
}

/*
 * MEMORY_LIMIT_MB and GPU_MEMORY_FRACTION: what vramd may fill on a GPU with its models
 * and reservations. The cap lowers the GPU's capacity (a model bigger than it never
 * fits there) and its free memory to what the cap leaves beside the models resident on
 * it, so a load that would take vramd past the cap waits for an unload, or goes to the
 * CPU or fails like any model too big for the GPU.
 */
static void
engine_gpu_apply_limit(const struct engine *e, struct sched_gpu *g)
{
	const struct config *c = e->d->config;
	uint64_t cap = UINT64_MAX;
	uint64_t limit = (uint64_t)config_int(c, CONFIG_MEMORY_LIMIT_MB) * VD_MIB;
	double fraction = config_double(c, CONFIG_GPU_MEMORY_FRACTION);
	if (limit > 0)
		cap = limit;
	if (fraction < 1.0 && (uint64_t)((double)g->total_bytes * fraction) < cap)
		cap = (uint64_t)((double)g->total_bytes * fraction);
	if (cap == UINT64_MAX || g->total_bytes == 0)
		return;
	uint64_t ours = 0;
	for (size_t j = 0; j < e->nmodels; j++) {
		const struct engine_model *m = e->models[j];
		if (!engine_model_is_resident(m))
			continue;
		if (m->gpu == g->id)
			ours += engine_model_footprint(e, m);
		else if (m->gpu == SCHED_GPU_SPLIT)
			for (size_t k = 0; k < m->split.ngpus; k++)
				if (m->split.gpu[k] == g->id)
					ours += m->split.bytes[k];
	}
	/* pending_bytes and reserved_bytes are subtracted from free_bytes later (room =
	 * free - pending - reserved); pending is part of ours already, reservations not. */
	uint64_t left = cap > ours + g->reserved_bytes ? cap - ours - g->reserved_bytes : 0;
	uint64_t free_cap = left + g->pending_bytes + g->reserved_bytes;
	if (g->free_bytes > free_cap)
		g->free_bytes = free_cap;
	uint64_t capacity = cap + g->driver_reserved_bytes;
	if (g->total_bytes > capacity)
		g->total_bytes = capacity;
}

/* Fills gpus (room for GPU_MAX_DEVICES); returns the count. */
static size_t
engine_snapshot_gpus(struct engine *e, struct sched_gpu *gpus)
{
	struct daemon *d = e->d;
	size_t n = 0;
	if (engine_cpu_only(e))
		return 0;
	if (engine_budget_mode(e)) {
		uint64_t budget = e->node->budget_bytes;
		uint64_t used = 0;
		for (size_t i = 0; i < e->nmodels; i++)
			if (engine_model_is_resident(e->models[i]) && e->models[i]->gpu == 0)
				used += engine_model_footprint(e, e->models[i]);
		gpus[0] = (struct sched_gpu){.id = 0,
					     .available = true,
					     .total_bytes = budget,
					     .free_bytes = used < budget ? budget - used : 0,
					     .speed = 1.0};
		return 1;
	}
	for (size_t i = 0; i < node_gpu_count(e->node) && n < GPU_MAX_DEVICES; i++) {
		const struct gpu_device *dev = node_gpu_at(e->node, i);
		const struct gpu_sample *s = &dev->latest;
		struct sched_gpu *g = &gpus[n++];
		*g = (struct sched_gpu){.id = (int)dev->index, .speed = 1.0};
		bool mem_known = dev->has_sample && (s->valid & GPU_HAS_MEM_TOTAL) &&
				 (s->valid & GPU_HAS_MEM_FREE);
		g->available = dev->state == GPU_DEVICE_AVAILABLE && mem_known;
		if (engine_gpus_are_local(e)) {
			g->available = g->available && gpu_policy_accepts_work(d->policy, g->id);
			g->shutdown = gpu_policy_is_shutdown(d->policy, g->id);
			g->speed = gpu_policy_speed(d->policy, g->id);
			g->reserved_bytes = gpu_policy_reserved_bytes(d->policy, g->id);
		}
		if (!mem_known)
			continue;
		g->total_bytes = s->mem_total_bytes;
		if (s->valid & GPU_HAS_MEM_RESERVED)
			g->driver_reserved_bytes = s->mem_reserved_bytes;
		g->free_bytes = s->mem_free_bytes;
		/* Loads whose memory this sample cannot show yet. Count each byte once: what
		 * the load's runner already holds (its memory grows while it loads) is in
		 * free_bytes, so only the rest is pending. */
		const struct gpu_sample *ps = engine_gpu_process_sample(e, g->id);
		int64_t measured = s->measured_mono_ms > 0 ? s->measured_mono_ms : s->mono_ms;
		for (size_t j = 0; j < e->nmodels; j++) {
			struct engine_model *m = e->models[j];
			uint64_t footprint = 0;
			if (m->gpu == SCHED_GPU_SPLIT) {
				for (size_t k = 0; k < m->split.ngpus; k++)
					if (m->split.gpu[k] == g->id)
						footprint = m->split.bytes[k];
				if (footprint == 0)
					continue;
			} else if (m->gpu != g->id) {
				continue;
			}
			if (m->residency == SCHED_LOADING ||
			    (m->residency == SCHED_LOADED && m->load_done_ms >= measured)) {
				if (footprint == 0)
					footprint = engine_model_footprint(e, m);
				const struct gpu_process *r = engine_model_runner(e, m, ps);
				uint64_t shown = r != NULL ? r->used_bytes : 0;
				/* An adopted model was loaded before it was listed: its runner
				 * shows all it holds; unseen, what /api/ps puts in VRAM. */
				if (m->adopted)
					footprint = r != NULL ? 0 : engine_model_vram(e, m);
				g->pending_bytes += footprint > shown ? footprint - shown : 0;
			}
		}
	}
	return n;
}

/*
 * Tells the registry what context and parallelism loads get, so estimates include the
 * KV cache: OLLAMA_CONTEXT_LENGTH, or Ollama's own default tier from the total VRAM.
 */
static void
engine_size_kv_caches(struct engine *e, const struct sched_gpu *gpus, size_t ngpus)
{
	struct config *cfg = e->d->config;
	int64_t num_ctx = config_int(cfg, CONFIG_OLLAMA_CONTEXT_LENGTH);
	if (num_ctx == 0) {
		uint64_t total = 0;
		for (size_t i = 0; i < ngpus; i++)
			total += gpus[i].total_bytes;
		num_ctx = total >= 47 * VD_GIB ? 262144 : total >= 23 * VD_GIB ? 32768 : 4096;
	}
	e->num_ctx = num_ctx;
	registry_set_context(e->node->registry, num_ctx,
			     config_int(cfg, CONFIG_MAX_CONCURRENT_PER_MODEL));
}

/* The micro-batch Ollama picks for a context: 2048 / 1024 / 512 tokens above 32768 /
 * 4096 / below. */
static uint64_t
engine_ubatch(int64_t num_ctx)
{
	return num_ctx > 32768 ? 2048 : num_ctx > 4096 ? 1024 : 512;
}

/* The batch surcharge of that micro-batch on Ollama's estimate: 2 GiB / 768 MiB / 0. */
static uint64_t
engine_batch_surcharge(int64_t num_ctx)
{
	return num_ctx > 32768 ? 2 * VD_GIB : num_ctx > 4096 ? 768 * VD_MIB : 0;
}

/*
 * Fills the multi-GPU parts of a snapshot model: its preferred GPUs (MODEL_GPU_MAP), what
 * each GPU of a split holds beyond its share (the CUDA context and a compute buffer of
 * the micro-batch size: 1 MiB per token of batch, a bound for vocabularies up to 256k),
 * and Ollama's own pre-flight prediction (file + KV cache + batch surcharge), so vramd
 * never plans a load that Ollama would answer by evicting one of vramd's models.
 */
static void
engine_model_multi_gpu(struct engine *e, struct engine_model *m, struct sched_model *sm,
		       size_t ngpus)
{
	const struct registry_model *rm = engine_model_registry(e, m);
	int64_t num_ctx = e->num_ctx;
	uint64_t context =
	    rm != NULL && rm->runner_overhead_bytes > 0 ? rm->runner_overhead_bytes : 512 * VD_MIB;

	sm->npreferred = gpu_map_lookup(e->d->gpu_map, m->name, e->node->name, e->node->gpus,
					m->preferred, SCHED_SPLIT_MAX);
	sm->preferred_gpus = sm->npreferred > 0 ? m->preferred : NULL;
	if (rm == NULL || engine_budget_mode(e) || engine_cpu_only(e))
		return;
	if (m->fit_ctx > 0)
		num_ctx = m->fit_ctx;
	if (ngpus > 1)
		sm->split_overhead_bytes = context + engine_ubatch(num_ctx) * VD_MIB;
	sm->preflight_bytes = rm->file_bytes + rm->kv_bytes - engine_kv_saved(e, rm, num_ctx);
	if (rm->caps == 0 || (rm->caps & REGISTRY_CAP_COMPLETION))
		sm->preflight_bytes += engine_batch_surcharge(num_ctx);
}

/* The contexts Ollama retries a load with after it ran out of memory at its automatic
 * one (262144 -> 32768 -> 4096). */
static const int64_t engine_ctx_tiers[] = {32768, 4096};

/*
 * A model that fits no GPU of the node, nor a split over them, at the automatic context
 * is loaded with the largest lower tier that fits, as Ollama's own retry after an
 * out-of-memory load would do, instead of failing its jobs as never fitting (nor going
 * to the CPU whole while a GPU could hold it). The choice is kept for the engine's life:
 * a footprint measured at the lower context says nothing of the automatic one. Only with
 * NORMALIZE_OPTIONS, which sends the context with the load and every job.
 */
static void
engine_fit_context(struct engine *e, struct engine_decision *dec)
{
	if (!config_bool(e->d->config, CONFIG_NORMALIZE_OPTIONS) || engine_budget_mode(e) ||
	    engine_cpu_only(e))
		return;
	for (size_t i = 0; i < dec->snap.nmodels; i++) {
		struct engine_model *m = dec->src[i];
		struct sched_model *sm = &dec->models[i];
		const struct registry_model *rm = engine_model_registry(e, m);
		const struct job *next = engine_model_head(e, m);
		if (m->fit_ctx > 0 || rm == NULL || rm->measured ||
		    sm->residency != SCHED_UNLOADED || (next != NULL && job_num_ctx(next) > 0))
			continue;
		bool cpu = sm->cpu_allowed;
		sm->cpu_allowed = false; /* the question is whether a GPU can hold it */
		uint64_t footprint = sm->footprint_bytes, preflight = sm->preflight_bytes,
			 split_overhead = sm->split_overhead_bytes;
		int64_t auto_ctx = engine_auto_ctx(e, m);
		for (size_t t = 0;
		     t < VD_ARRAY_LEN(engine_ctx_tiers) && !sched_model_can_ever_fit(&dec->snap, i);
		     t++) {
			int64_t ctx = engine_ctx_tiers[t];
			if (ctx >= auto_ctx)
				continue;
			uint64_t saved = engine_kv_saved(e, rm, ctx);
			sm->footprint_bytes = footprint > saved ? footprint - saved : 0;
			/* A split's compute buffer on each GPU shrinks with the micro-batch. */
			if (split_overhead > 0)
				sm->split_overhead_bytes =
				    split_overhead -
				    (engine_ubatch(e->num_ctx) - engine_ubatch(ctx)) * VD_MIB;
			if (preflight > 0)
				sm->preflight_bytes = preflight - saved -
						      engine_batch_surcharge(auto_ctx) +
						      engine_batch_surcharge(ctx);
			m->fit_ctx = ctx;
		}
		if (m->fit_ctx > 0 && !sched_model_can_ever_fit(&dec->snap, i)) {
			m->fit_ctx = 0; /* no tier helps: it stays a model that never fits */
			sm->footprint_bytes = footprint;
			sm->preflight_bytes = preflight;
			sm->split_overhead_bytes = split_overhead;
		} else if (m->fit_ctx > 0) {
			char size[32];
			vd_format_size(footprint, size, sizeof(size));
			vd_log(ENGINE,
			       "%s needs about %s at its automatic context %lld, more than any GPU "
			       "of %s: loading it with num_ctx %lld, as Ollama's retry would",
			       m->name, size, (long long)auto_ctx, e->node->name,
			       (long long)m->fit_ctx);
		}
		sm->cpu_allowed = cpu;
	}
}

/* --- Acting ---------------------------------------------------------------------------- */

static int
engine_placement(const struct engine *e, int gpu)
{
	if (gpu == SCHED_GPU_CPU)
		return BACKEND_PLACE_CPU;
	/* A split: Ollama spreads a model that fits no single GPU over all of them. */
	if (gpu == SCHED_GPU_SPLIT)
		return BACKEND_PLACE_AUTO;
	/* One GPU: let Ollama place it (adding main_gpu would only force reloads). */
	if (engine_budget_mode(e) || node_gpu_count(e->node) <= 1)
		return BACKEND_PLACE_AUTO;
	/* The server numbers only the GPUs it sees (CUDA_VISIBLE_DEVICES): main_gpu is the
	 * GPU's place among the node's, not its index on the host. */
	int pos = node_gpu_position(e->node, gpu);
	return pos >= 0 ? pos : BACKEND_PLACE_AUTO;
}

/* What a load or run says of the node's health, for its circuit breaker: an answer is a
 * success, no connection or no answer in time a failure; a cancelled call says nothing. */
static void
engine_breaker_report(struct engine *e, const struct backend_status *st, int64_t now)
{
	if (st->error == BACKEND_OK || st->error == BACKEND_ERR_REMOTE)
		breaker_success(&e->node->breaker, now);
	else if (st->error == BACKEND_ERR_UNAVAILABLE || st->timed_out)
		breaker_failure(&e->node->breaker, now);
	else
		breaker_cancel_trial(&e->node->breaker, now);
}

static bool
engine_model_embedding_only(const struct engine *e, const char *name)
{
	const struct registry_model *rm = registry_find(e->node->registry, name);
	return rm != NULL && (rm->caps & REGISTRY_CAP_EMBEDDING) &&
	       !(rm->caps & REGISTRY_CAP_COMPLETION);
}

/* Fails every queued job of a model (a load that keeps failing, a model that can never
 * fit). */
static void
engine_fail_queued(struct engine *e, struct engine_model *m, const char *why)
{
	struct job *job;
	int n = 0;
	while ((job = queue_pop_model(e->d->queue, m->name)) != NULL) {
		job_finish(job, JOB_FAILED, NULL, why, vd_now_wall_ms());
		e->counters.failed++;
		e->hooks.job_changed(job, e->hooks.arg);
		job_unref(job);
		n++;
	}
	if (n > 0)
		vd_warn(ENGINE, "%sfailed %d queued jobs of %s: %s", e->tag, n, m->name, why);
}

/* The pace of swaps: the time since the previous load ended counts when a job of m was
 * already waiting then (m waited for its turn all along), not when m's work is new. */
static void
engine_learn_swap(struct engine *e, const struct engine_model *m, int64_t now)
{
	struct queue_model_summary qs;
	queue_summary(e->d->queue, m->name, &qs);
	int64_t oldest = 0;
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		if (qs.count[p] > 0 && (oldest == 0 || qs.oldest_enqueued_ms[p] < oldest))
			oldest = qs.oldest_enqueued_ms[p];
	if (e->last_load_done_ms > 0 && oldest > 0 && oldest <= e->last_load_done_ms)
		engine_learn_mean(&e->swap_ms_mean, now - e->last_load_done_ms);
	e->last_load_done_ms = now;
}

/* Why vramd loaded m on the CPU, for the model_on_cpu event. */
static const char *
engine_cpu_why(const struct engine *e, const struct engine_model *m)
{
	if (engine_cpu_only(e))
		return "the node has no GPU (no telemetry and no VRAM_BUDGET): it runs on the CPU";
	if (m->placement == SCHED_PLACE_CPU)
		return "placed on the CPU (force_cpu)";
	return "no GPU can hold it (ALLOW_CPU): it runs on the CPU";
}

static void
engine_load_cb(const struct backend_status *st, void *arg)
{
	struct engine_model *m = arg;
	struct engine *e = m->engine;
	m->call = NULL;
	e->loads_in_flight--;
	int64_t now = engine_now();
	engine_breaker_report(e, st, now);
	if (st->error == BACKEND_OK) {
		m->residency = SCHED_LOADED;
		m->load_done_ms = now;
		m->last_used_ms = now;
		m->load_failures = 0;
		e->counters.loads++;
		metrics_add(e->d->metrics, "vramd_model_loads_total", 1, e->node->name, m->name);
		metrics_observe(e->d->metrics, "vramd_model_load_seconds",
				(double)(now - m->load_started_ms) / 1000.0, e->node->name,
				m->name);
		engine_learn_mean(&m->load_ms_mean, now - m->load_started_ms);
		engine_learn_swap(e, m, now);
		registry_record_load(e->node->registry, m->name, now - m->load_started_ms, -1);
		engine_ops_loaded(e, m);
		vd_log(ENGINE, "%sloaded %s on %s in %lld ms", m->engine->tag, m->name,
		       m->gpu == SCHED_GPU_CPU ? "CPU" : "GPU",
		       (long long)(now - m->load_started_ms));
		if (m->gpu == SCHED_GPU_CPU)
			events_emit(gpu_policy_events(e->d->policy), "model_on_cpu",
				    json_pack("{s:s,s:s,s:s}", "model", m->name, "server",
					      e->node->url, "message", engine_cpu_why(e, m)));
	} else if (st->timed_out) {
		/* The transfer is aborted; the server may still finish the load, so it is
		 * asked to unload the model, and the next load may start. */
		e->counters.load_failures++;
		metrics_add(e->d->metrics, "vramd_model_load_failures_total", 1, e->node->name,
			    m->name);
		char *what = xasprintf("loading %s did not finish within %lld s (LOAD_TIMEOUT); "
				       "abandoned it and asked ollama to unload it",
				       m->name, (long long)(m->load_timeout_ms / 1000));
		engine_hold_backend(e, what);
		vd_warn(ENGINE, "%s", what);
		events_emit(gpu_policy_events(e->d->policy), "load_timeout",
			    json_pack("{s:s,s:s,s:I,s:s}", "model", m->name, "server", e->node->url,
				      "timeout_s", (json_int_t)(m->load_timeout_ms / 1000),
				      "message", what));
		m->residency = SCHED_UNLOADING;
		m->unload_replied_ms = 0;
		m->load_abandoned = true;
		struct backend_load_request req = {
		    .model = m->name,
		    .embedding_only = engine_model_embedding_only(e, m->name),
		    .placement = engine_placement(e, m->gpu),
		};
		m->call = backend_unload(e->node->backend, &req, engine_unload_cb, m);
		if (++m->load_failures >= ENGINE_MAX_LOAD_FAILURES) {
			engine_fail_queued(e, m, what);
			m->load_failures = 0;
		} else {
			m->not_before_ms = now + ENGINE_LOAD_BACKOFF_MS * (1 << m->load_failures);
		}
		free(what);
	} else {
		m->residency = SCHED_UNLOADED;
		m->runner_pid = 0; /* a failed load leaves no runner of this model */
		engine_model_forget_runner(m);
		e->counters.load_failures++;
		metrics_add(e->d->metrics, "vramd_model_load_failures_total", 1, e->node->name,
			    m->name);
		vd_warn(ENGINE, "%sloading %s failed (%s): %s", m->engine->tag, m->name,
			backend_error_name(st->error), st->message);
		if (st->error == BACKEND_ERR_UNAVAILABLE) {
			engine_set_backend_up(e, false);
			monitor_poll_now(e->node->monitor);
		} else if (++m->load_failures >= ENGINE_MAX_LOAD_FAILURES ||
			   st->http_status == 404) {
			char *why = xasprintf("loading model %s failed: %s", m->name, st->message);
			m->wanted = false;
			engine_fail_queued(e, m, why);
			free(why);
			m->load_failures = 0;
		} else {
			m->not_before_ms = now + ENGINE_LOAD_BACKOFF_MS * (1 << m->load_failures);
		}
	}
	monitor_refresh_ps(e->node->monitor);
	engine_sample_now(e);
	engine_kick(e);
}

static void
engine_unload_cb(const struct backend_status *st, void *arg)
{
	struct engine_model *m = arg;
	struct engine *e = m->engine;
	m->call = NULL;
	if (st->error == BACKEND_OK || st->http_status == 404) {
		/* Ollama answers before the runner is gone: wait for /api/ps to agree. */
		m->unload_replied_ms = engine_now();
		monitor_refresh_ps(e->node->monitor);
	} else {
		vd_warn(ENGINE, "%sunloading %s failed: %s", m->engine->tag, m->name, st->message);
		/* An abandoned load never became a resident model vramd can use. */
		m->residency = m->load_abandoned ? SCHED_UNLOADED : SCHED_LOADED;
		m->load_abandoned = false;
		if (st->error == BACKEND_ERR_UNAVAILABLE)
			engine_set_backend_up(e, false);
	}
	engine_kick(e);
}

/*
 * Whether the runner of an unloaded model still shows in NVML: Ollama answers the unload
 * and drops the model from /api/ps before the driver frees its memory (v0.33: about
 * 300 ms later), and until then that memory is not free to plan with. Asks for a fresh
 * sample every ENGINE_RELEASE_POLL_MS while it does. False when the runner is unknown.
 */
static bool
engine_runner_holds_memory(struct engine *e, const struct engine_model *m)
{
	const struct gpu_sample *s = engine_gpu_process_sample(e, m->gpu);
	if (m->runner_pid == 0 || s == NULL)
		return false;
	if (s->mono_ms > m->unload_replied_ms && engine_sample_process(s, m->runner_pid) == NULL)
		return false;
	/* A sample's arrival runs the engine again: asking on every decision would spin. */
	if (engine_now() - s->mono_ms >= ENGINE_RELEASE_POLL_MS)
		engine_sample_now(e);
	return true;
}

/* Finishes UNLOADING models that /api/ps no longer lists and whose runner's memory is
 * free again (or that took too long). */
static void
engine_confirm_unloads(struct engine *e, int64_t now)
{
	for (size_t i = 0; i < e->nmodels; i++) {
		struct engine_model *m = e->models[i];
		if (m->residency != SCHED_UNLOADING || m->unload_replied_ms == 0)
			continue;
		const struct registry_model *rm = engine_model_registry(e, m);
		bool gone = rm == NULL ||
			    (!rm->loaded &&
			     monitor_ps_fresh_since(e->node->monitor) >= m->unload_replied_ms);
		bool holding = gone && engine_runner_holds_memory(e, m);
		bool late = now - m->unload_replied_ms > ENGINE_UNLOAD_CONFIRM_MS;
		if ((!gone || holding) && !late) {
			if (!gone)
				monitor_refresh_ps(e->node->monitor);
			continue;
		}
		if (!gone)
			vd_warn(ENGINE,
				"%s still listed by /api/ps %d ms after its unload; going on",
				m->name, ENGINE_UNLOAD_CONFIRM_MS);
		else if (holding)
			vd_warn(ENGINE,
				"the runner of %s (pid %u) still holds GPU memory %d ms after its "
				"unload; going on",
				m->name, m->runner_pid, ENGINE_UNLOAD_CONFIRM_MS);
		m->runner_pid = 0;
		m->spilled = false;
		m->adopted = false;
		m->residency = SCHED_UNLOADED;
		engine_model_forget_runner(m);
		m->unloaded_ms = now;
		m->unload_replied_ms = 0;
		m->unload_requested = false;
		e->optimize_now = true; /* a GPU freed memory */
		m->load_abandoned = false;
		e->counters.unloads++;
		vd_log(ENGINE, "%sunloaded %s", m->engine->tag, m->name);
		engine_sample_now(e);
	}
}

/* Wraps Ollama's reply fields into the job's result object (see docs/api.md). */
static json_t *
engine_result_json(const struct job *job, struct backend_run_result *res)
{
	static const char *const keys[JOB_NKINDS] = {"response", "message", "embeddings"};
	json_t *o = json_object();
	json_object_set_new(o, keys[job->kind], res->result != NULL ? res->result : json_null());
	res->result = NULL;
	if (res->done_reason != NULL)
		json_object_set_new(o, "done_reason", json_string(res->done_reason));
	const struct backend_run_metrics *mt = &res->metrics;
	const struct {
		const char *key;
		int64_t value;
	} metrics[] = {
	    {"total_duration", mt->total_duration_ns},
	    {"load_duration", mt->load_duration_ns},
	    {"prompt_eval_count", mt->prompt_eval_count},
	    {"prompt_eval_duration", mt->prompt_eval_duration_ns},
	    {"eval_count", mt->eval_count},
	    {"eval_duration", mt->eval_duration_ns},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(metrics); i++)
		if (metrics[i].value >= 0)
			json_object_set_new(o, metrics[i].key, json_integer(metrics[i].value));
	return o;
}

static void
engine_run_unlink(struct engine *e, struct engine_run *run)
{
	for (struct engine_run **p = &e->runs; *p != NULL; p = &(*p)->next) {
		if (*p == run) {
			*p = run->next;
			return;
		}
	}
}

/* Whether a job whose run broke off may run again: not once part of the answer reached
 * a client waiting on its connection. */
static bool
engine_job_can_rerun(const struct job *job)
{
	return job->attach == NULL || !job->attach->replied;
}

static void
engine_run_cb(const struct backend_status *st, struct backend_run_result *res, void *arg)
{
	struct engine_run *run = arg;
	struct engine *e = run->engine;
	struct daemon *d = e->d;
	struct job *job = run->job;
	struct engine_model *m = run->model;
	int64_t now = engine_now();
	engine_run_unlink(e, run);
	m->running--;
	m->last_used_ms = now;
	if (job->attach != NULL && job->attach->keep_alive_ms > 0) {
		int64_t until = now + job->attach->keep_alive_ms;
		if (until > m->keep_until_ms)
			m->keep_until_ms = until;
	}
	registry_touch(e->node->registry, m->name, now);
	job->engine_transfer = NULL;
	job->run_ms = now - run->started_mono_ms;
	e->node->stats.requests++;
	e->node->stats.latency_ms_sum += job->run_ms;
	if (job->attach != NULL && st->error != BACKEND_OK)
		job->attach->status = st->http_status;
	if (st->error == BACKEND_OK)
		e->node->stats.completed++;
	else if (st->error != BACKEND_ERR_REMOTE || st->http_status >= 500)
		e->node->stats.failures++;
	engine_breaker_report(e, st, now);
	/* Fair share between API keys: the key is charged the tokens it was served. */
	const struct backend_run_metrics *mt = res != NULL ? &res->metrics : NULL;
	queue_charge(d->queue, job->key,
		     mt != NULL
			 ? (uint64_t)(mt->prompt_eval_count > 0 ? mt->prompt_eval_count : 0) +
			       (uint64_t)(mt->eval_count > 0 ? mt->eval_count : 0)
			 : 0);

	if (st->error == BACKEND_OK) {
		job_finish(job, JOB_COMPLETE, engine_result_json(job, res), NULL, vd_now_wall_ms());
		e->counters.completed++;
		e->run_ms_mean = e->run_ms_mean < 0
				     ? (double)job->run_ms
				     : 0.9 * e->run_ms_mean + 0.1 * (double)job->run_ms;
		engine_learn_mean(&m->run_ms_mean, job->run_ms);
	} else if (st->error == BACKEND_ERR_REMOTE) {
		job_finish(job, JOB_FAILED, NULL, st->message, vd_now_wall_ms());
		e->counters.failed++;
	} else if (st->timed_out && e->backend_up) {
		/* The first run past the timeout fails (it may just be too long), but the
		 * server may be hung: hold the rest until it answers. A run that times out
		 * while the hold is on was caught by the hang and goes back to the queue. */
		char *why = xasprintf("ollama at %s did not answer within %lld s", e->node->url,
				      (long long)config_int(d->config, CONFIG_REQUEST_TIMEOUT));
		job_finish(job, JOB_FAILED, NULL, why, vd_now_wall_ms());
		e->counters.failed++;
		char *what = xasprintf("job %s: %s", job->id, why);
		engine_hold_backend(e, what);
		free(what);
		free(why);
	} else if (!engine_job_can_rerun(job)) {
		job_finish(job, JOB_FAILED, NULL, st->message, vd_now_wall_ms());
		e->counters.failed++;
	} else if (job->attempts >= ENGINE_MAX_ATTEMPTS) {
		char *why = xasprintf("ollama at %s unreachable after %d attempts: %s",
				      e->node->url, job->attempts, st->message);
		job_finish(job, JOB_FAILED, NULL, why, vd_now_wall_ms());
		free(why);
		e->counters.failed++;
	} else {
		/* Connection trouble or a reply cut off: run it again later, first in line. */
		vd_warn(ENGINE, "%sjob %s attempt %d on %s failed (%s): %s; requeued",
			m->engine->tag, job->id, job->attempts, m->name,
			backend_error_name(st->error), st->message);
		e->counters.retries++;
		job->enqueued_mono_ms = now;
		queue_push_front(d->queue, job);
		if (st->error == BACKEND_ERR_UNAVAILABLE) {
			engine_set_backend_up(e, false);
			monitor_poll_now(e->node->monitor);
		}
	}
	if (job_is_final(job))
		vd_debug(ENGINE, "job %s %s in %lld ms", job->id, job_status_name(job->status),
			 (long long)job->run_ms);
	e->hooks.job_changed(job, e->hooks.arg);
	job_unref(job);
	free(run);
	engine_kick(e);
}

/* A piece of a pass-through run's reply, for the client waiting on its connection. */
static void
engine_run_chunk_cb(const char *data, size_t len, void *arg)
{
	struct engine_run *run = arg;
	struct job_attach *a = run->job->attach;
	if (a != NULL)
		a->chunk(run->job, data, len, a->arg);
}

/* The context the server gives a load of m that names none: its default, or the model's
 * trained context when that is less. */
static int64_t
engine_auto_ctx(const struct engine *e, const struct engine_model *m)
{
	const struct registry_model *rm = engine_model_registry(e, m);
	if (rm != NULL && rm->ctx_train > 0 && rm->ctx_train < e->num_ctx)
		return rm->ctx_train;
	return e->num_ctx;
}

/* m's runner as runner_opts_normalize sees it. An automatic load of vramd's has the
 * server's default context until /api/ps lists the real one. */
static struct runner_opts
engine_runner(const struct engine *e, const struct engine_model *m)
{
	const struct registry_model *rm = engine_model_registry(e, m);
	int64_t ctx = m->runner_ctx;
	if (ctx == 0 && m->runner_opts != NULL && runner_opts_num_ctx(m->runner_opts) == 0)
		ctx = engine_auto_ctx(e, m);
	return (struct runner_opts){
	    .options = m->runner_opts, .ctx = ctx, .ctx_max = rm != NULL ? rm->ctx_train : 0};
}

/*
 * The options of a load of m (NORMALIZE_OPTIONS): none, so the runner is automatic and
 * serves every job asking the server's context or less without a reload; or the context
 * of the first waiting job when it asks more (its footprint was planned with it), so that
 * job needs no second load. NULL: none; otherwise a new object.
 */
static json_t *
engine_load_options(const struct engine *e, const struct engine_model *m)
{
	if (!config_bool(e->d->config, CONFIG_NORMALIZE_OPTIONS))
		return NULL;
	const struct job *next = queue_peek_model(e->d->queue, m->name);
	int64_t want = next != NULL ? job_num_ctx(next) : 0;
	const struct registry_model *rm = engine_model_registry(e, m);
	if (rm != NULL && rm->ctx_train > 0 && want > rm->ctx_train)
		want = rm->ctx_train;
	if (m->fit_ctx > 0 && want <= m->fit_ctx)
		return json_pack("{s:I}", "num_ctx", (json_int_t)m->fit_ctx);
	if (want <= engine_auto_ctx(e, m))
		return NULL;
	return json_pack("{s:I}", "num_ctx", (json_int_t)want);
}

/*
 * NORMALIZE_OPTIONS: fits job to m's runner. *request is the request to send instead of
 * the job's own (a new object; NULL: the job's own as it is). RUNNER_OPTS_NEEDS_MORE: the
 * job asks a larger context than the runner has.
 */
static enum runner_opts_fit
engine_fit_job(const struct engine *e, const struct engine_model *m, const json_t *job_request,
	       json_t **request)
{
	*request = NULL;
	if (!config_bool(e->d->config, CONFIG_NORMALIZE_OPTIONS))
		return RUNNER_OPTS_FITS;
	struct runner_opts runner = engine_runner(e, m);
	json_t *options = NULL;
	enum runner_opts_fit fit =
	    runner_opts_normalize(json_object_get(job_request, "options"), &runner, &options);
	if (options != NULL) {
		*request = json_copy((json_t *)job_request);
		if (json_object_size(options) > 0)
			json_object_set_new(*request, "options", options);
		else {
			json_object_del(*request, "options");
			json_decref(options);
		}
	}
	return fit;
}

/* The next job of m asks more context than its runner has: the runner is unloaded once
 * no job of it runs (no job is dispatched to it meanwhile), and the next load gives that
 * job's context (engine_load_options), which every later job then shares. */
static void
engine_reload_for_context(struct engine *e, struct engine_model *m, const struct job *job)
{
	if (m->unload_requested)
		return;
	struct runner_opts runner = engine_runner(e, m);
	vd_log(ENGINE,
	       "job %s asks num_ctx %lld of %s, more than its runner's %lld: reloading it with "
	       "that context once its running jobs end",
	       job->id, (long long)job_num_ctx(job), m->name, (long long)runner.ctx);
	m->unload_requested = true;
	engine_kick(e);
}

#define ENGINE_ASIDE_MAX 64 /* gpu jobs set aside in one dispatch on a CPU copy */

static void
engine_dispatch(struct engine *e, struct engine_model *m, int count)
{
	struct daemon *d = e->d;
	int64_t now = engine_now();
	int64_t aging_ms = config_int(d->config, CONFIG_PRIORITY_AGING_S) * 1000;
	/* Jobs of placement gpu never run on a copy on the CPU: they are set aside and put
	 * back at the head of the queue after, to wait for the model's move to a GPU. */
	struct job *aside[ENGINE_ASIDE_MAX];
	size_t naside = 0;
	for (int i = 0; i < count; i++) {
		const struct job *next = queue_peek_model_aged(d->queue, m->name, now, aging_ms);
		if (next == NULL)
			break;
		if (m->gpu == SCHED_GPU_CPU && next->placement == JOB_PLACE_GPU) {
			if (naside == ENGINE_ASIDE_MAX)
				break;
			aside[naside++] = queue_pop_model_aged(d->queue, m->name, now, aging_ms);
			i--;
			continue;
		}
		json_t *request = job_request(next), *fitted = NULL;
		if (engine_fit_job(e, m, request, &fitted) == RUNNER_OPTS_NEEDS_MORE) {
			json_decref(request);
			engine_reload_for_context(e, m, next);
			break;
		}
		struct job *job = queue_pop_model_aged(d->queue, m->name, now, aging_ms);
		struct engine_run *run = xcalloc(1, sizeof(*run));
		if (job->attempts == 0) /* a retried job is not a new arrival */
			engine_learn_arrival(m, job->enqueued_mono_ms);
		m->prewarmed = false;
		m->no_prewarm = false;
		run->engine = e;
		run->model = m;
		run->job = job; /* the queue's reference */
		run->started_mono_ms = now;
		job->status = JOB_RUNNING;
		job->attempts++;
		job->started_at_ms = vd_now_wall_ms();
		job->wait_ms = now - job->enqueued_mono_ms;
		if (job->attempts == 1 && job->deadline_at_ms > 0 &&
		    job->started_at_ms > job->deadline_at_ms)
			events_emit(
			    gpu_policy_events(d->policy), "deadline_missed",
			    json_pack("{s:s,s:s,s:s,s:I,s:I}", "job", job->id, "model", job->model,
				      "node", e->node->url, "deadline_at",
				      (json_int_t)job->deadline_at_ms, "late_ms",
				      (json_int_t)(job->started_at_ms - job->deadline_at_ms)));
		metrics_observe(e->d->metrics, "vramd_job_queue_wait_seconds",
				(double)job->wait_ms / 1000.0, job_priority_name(job->priority));
		/* The part of its wait this job spent on its own model's load. */
		if (m->load_done_ms > job->enqueued_mono_ms) {
			int64_t from = m->load_started_ms > job->enqueued_mono_ms
					   ? m->load_started_ms
					   : job->enqueued_mono_ms;
			job->load_ms = m->load_done_ms - from;
		}
		m->running++;
		m->last_used_ms = now;
		e->counters.dispatched++;
		run->next = e->runs;
		e->runs = run;
		struct backend_run_request req = {
		    .model = m->name,
		    .kind = job->kind,
		    .request = fitted != NULL ? fitted : request,
		    .placement = engine_placement(e, m->gpu),
		};
		if (job->attach != NULL) {
			req.on_chunk = engine_run_chunk_cb;
			req.stream = job->attach->stream;
			req.path = job->attach->path;
		}
		run->call = backend_run(e->node->backend, &req, engine_run_cb, run);
		json_decref(fitted);
		json_decref(request);
		job->engine_transfer = run;
		e->hooks.job_changed(job, e->hooks.arg);
	}
	while (naside > 0) {
		struct job *job = aside[--naside];
		queue_push_front(d->queue, job);
		job_unref(job);
	}
}

/*
 * Whether the GPU memory a load was planned against was measured just now. The sample
 * the scheduler saw may be a monitoring interval old, and another program may have
 * taken memory since. So the first time a load is planned, a fresh sample is asked for
 * and the load waits; the sample's callback runs the scheduler again, and the load
 * starts only when a decision on a sample taken after the request still plans it.
 */
static bool
engine_load_sample_is_fresh(struct engine *e, int gpu)
{
	if (gpu == SCHED_GPU_CPU || engine_budget_mode(e) || engine_cpu_only(e))
		return true;
	if (e->load_sample_asked_ms == 0)
		e->load_sample_asked_ms = engine_now();
	/* A split: the GPUs are sampled together, the first stands for all. */
	const struct gpu_device *dev = gpu == SCHED_GPU_SPLIT && node_gpu_count(e->node) > 0
					   ? node_gpu_at(e->node, 0)
					   : node_gpu_find(e->node, gpu);
	if (dev != NULL && dev->has_sample && dev->latest.mono_ms >= e->load_sample_asked_ms)
		return true;
	engine_sample_now(e);
	return false;
}

/* LOAD_TIMEOUT, or the registry's bound from the model's size and measured bandwidth. */
static int64_t
engine_load_timeout_ms(const struct engine *e, const char *name)
{
	int64_t configured = config_int(e->d->config, CONFIG_LOAD_TIMEOUT);
	if (configured > 0)
		return configured * 1000;
	return registry_load_timeout_ms(e->node->registry, registry_find(e->node->registry, name));
}

/* An idle CPU model is unloaded because the host's available memory fell below
 * HOST_MEMORY_MIN_MB: logged and sent as a host_memory_pressure event. */
static void
engine_host_pressure_event(struct engine *e, const struct engine_model *m,
			   const struct sched_snapshot *snap)
{
	uint64_t min = snap->config->host_memory_min_bytes;
	char message[256];

	snprintf(message, sizeof(message),
		 "host memory available %llu MiB is below HOST_MEMORY_MIN_MB %llu: unloading "
		 "idle CPU model %s",
		 (unsigned long long)(snap->cpu_free_bytes / VD_MIB),
		 (unsigned long long)(min / VD_MIB), m->name);
	vd_warn(ENGINE, "%s", message);
	events_emit(gpu_policy_events(e->d->policy), "host_memory_pressure",
		    json_pack("{s:s,s:s,s:I,s:I,s:s}", "model", m->name, "node", e->node->url,
			      "available_bytes", (json_int_t)snap->cpu_free_bytes, "min_bytes",
			      (json_int_t)min, "message", message));
}

static void
engine_apply(struct engine *e, const struct sched_snapshot *snap, struct engine_model **src)
{
	bool load_planned = false;
	for (size_t i = 0; i < e->plan.nactions; i++) {
		const struct sched_action *a = &e->plan.actions[i];
		struct engine_model *m = src[a->model];
		struct backend_load_request req = {
		    .model = m->name,
		    .embedding_only = engine_model_embedding_only(e, m->name),
		};
		char place[16];
		switch (a->type) {
		case SCHED_ACTION_UNLOAD:
			vd_log(SCHEDULER, "%sunload %s (%s)", e->tag, m->name,
			       sched_reason_name(a->reason));
			if (a->reason == SCHED_REASON_HOST_MEMORY)
				engine_host_pressure_event(e, m, snap);
			/* Its GPU reached TEMP_SHUTDOWN_C: its runs stop and wait in the queue
			 * for another GPU or for this one to cool. */
			if (a->reason == SCHED_REASON_SHUTDOWN && m->running > 0) {
				int running = m->running;
				size_t n = engine_requeue_runs(
				    e, m, "its GPU reached TEMP_SHUTDOWN_C", false);
				vd_warn(ENGINE,
					"%s%s: GPU %d reached TEMP_SHUTDOWN_C: %d running jobs "
					"stopped, %zu requeued; unloading it",
					e->tag, m->name, m->gpu, running, n);
			}
			engine_ops_unloading(e, m, a->reason);
			/* A guess that went unused, or a user's unload, is not repeated until
			 * a job asks for the model (else pre-warm and keep-alive would take
			 * turns loading and unloading it). */
			if (m->prewarmed || a->reason == SCHED_REASON_REQUESTED)
				m->no_prewarm = true;
			m->prewarmed = false;
			m->residency = SCHED_UNLOADING;
			m->unload_replied_ms = 0;
			req.placement = engine_placement(e, m->gpu);
			m->call = backend_unload(e->node->backend, &req, engine_unload_cb, m);
			break;
		case SCHED_ACTION_LOAD:
			load_planned = true;
			if (!engine_load_sample_is_fresh(e, a->gpu)) {
				vd_debug(SCHEDULER, "load %s waits for a fresh GPU sample",
					 m->name);
				break;
			}
			e->load_sample_asked_ms = 0;
			vd_log(SCHEDULER, "%sload %s on %s (%s, footprint %llu MiB)", e->tag,
			       m->name, engine_place_name(a->gpu, place, sizeof(place)),
			       sched_reason_name(a->reason),
			       (unsigned long long)(snap->models[a->model].footprint_bytes >> 20));
			m->residency = SCHED_LOADING;
			m->gpu = a->gpu;
			m->prewarmed = a->reason == SCHED_REASON_PREWARM;
			if (a->gpu == SCHED_GPU_SPLIT && a->split < e->plan.nsplits)
				m->split = e->plan.splits[a->split];
			engine_model_note_pids(e, m);
			m->load_started_ms = engine_now();
			e->loads_in_flight++;
			req.placement = engine_placement(e, a->gpu);
			m->load_timeout_ms = engine_load_timeout_ms(e, m->name);
			req.timeout_ms = m->load_timeout_ms;
			json_t *load_options = engine_load_options(e, m);
			req.options = load_options;
			m->call = backend_load(e->node->backend, &req, engine_load_cb, m);
			json_decref(m->runner_opts);
			m->runner_opts = runner_opts_reload_subset(load_options);
			m->runner_ctx = 0;
			json_decref(load_options);
			break;
		case SCHED_ACTION_DISPATCH:
			engine_dispatch(e, m, a->count);
			break;
		}
	}
	/* A fresh sample asked for a load that is no longer planned is stale next time. */
	if (!load_planned)
		e->load_sample_asked_ms = 0;
}

/* Frees what the last snapshot allocated; the node is not ready until the next. */
static void
engine_decision_clear(struct engine *e)
{
	e->dec.ready = false;
}

/* Room for n snapshot models. */
static void
engine_decision_reserve(struct engine *e, size_t n)
{
	struct engine_decision *dec = &e->dec;
	if (n <= dec->alloc)
		return;
	dec->alloc = n < 16 ? 16 : n;
	free(dec->models);
	free(dec->src);
	free(dec->sum);
	dec->models = xcalloc(dec->alloc, sizeof(*dec->models));
	dec->src = xcalloc(dec->alloc, sizeof(*dec->src));
	dec->sum = xcalloc(dec->alloc, sizeof(*dec->sum));
}

/* The scheduler's configuration for this node. */
static void
engine_sched_config(struct engine *e, struct sched_config *cfg)
{
	struct config *c = e->d->config;
	*cfg = (struct sched_config){
	    .safety_margin_bytes = (uint64_t)config_int(c, CONFIG_VRAM_SAFETY_MARGIN_MB) * VD_MIB,
	    .max_batch_wait_ms = config_int(c, CONFIG_MAX_BATCH_WAIT) * 1000,
	    .max_concurrent_per_model = (int)config_int(c, CONFIG_MAX_CONCURRENT_PER_MODEL),
	    .keep_alive_ms = config_int(c, CONFIG_MODEL_KEEP_ALIVE) * 1000,
	    .max_loads_in_flight = 1,
	    .allow_cpu = config_bool(c, CONFIG_ALLOW_CPU) || engine_cpu_only(e),
	    .max_loaded_models = (int)config_int(c, CONFIG_MAX_LOADED_MODELS),
	    .min_swap_batch = (int)config_int(c, CONFIG_MIN_SWAP_BATCH),
	    .spread = strcmp(config_str(c, CONFIG_PLACEMENT), "spread") == 0,
	    .priority_aging_ms = config_int(c, CONFIG_PRIORITY_AGING_S) * 1000,
	    .prewarm = config_bool(c, CONFIG_PREWARM),
	    .host_memory_min_bytes = (uint64_t)config_int(c, CONFIG_HOST_MEMORY_MIN_MB) * VD_MIB,
	    /* Seed 004: MODEL_CACHE_SIZE is per GPU; DYNAMIC_LOADING_ENABLED=false keeps
	     * pre-warm to the pinned models. */
	    .max_models_per_gpu = (int)config_int(c, CONFIG_MODEL_CACHE_SIZE),
	    .pinned_only = !config_bool(c, CONFIG_DYNAMIC_LOADING_ENABLED),
	};
	/* Ollama 0.30+ keeps ENGINE_FIT_RESERVE free on each GPU and spills to the CPU what
	 * would eat into it: planning with a smaller margin only produces spills. */
	if (monitor_server_fits_layers(e->node->monitor) &&
	    cfg->safety_margin_bytes < ENGINE_FIT_RESERVE)
		cfg->safety_margin_bytes = ENGINE_FIT_RESERVE;
	if (engine_budget_mode(e))
		cfg->safety_margin_bytes = 0;
}

/*
 * Where a model must go for its waiting jobs (issue 11, per-request placement), unless a
 * forced placement, a manual load or a move already says: a job of placement gpu makes
 * it SCHED_PLACE_GPU (never the CPU; a copy on the CPU moves once idle and a GPU has
 * room); jobs of placement any send it to the CPU after WAIT_WARN_S blocked
 * (wait_fallback; engine_gpu_fit_check sends it at once when no GPU could ever hold it);
 * jobs of placement cpu alone load it on the CPU, but run wherever it already is: their
 * aim is that no GPU memory is taken for them, and a resident copy takes none more.
 */
static void
engine_job_placement(const struct engine_model *m, struct sched_model *sm)
{
	const int *placed = m->queue.placed;
	if (sm->placement != SCHED_PLACE_AUTO)
		return;
	if (placed[JOB_PLACE_GPU] > 0) {
		/* Automatic placement without the CPU plans as before issue 11 (a split
		 * allowed); only a copy on the CPU needs SCHED_PLACE_GPU, to be moved. */
		sm->cpu_allowed = false;
		if (engine_model_is_resident(m) && m->gpu == SCHED_GPU_CPU)
			sm->placement = SCHED_PLACE_GPU;
		return;
	}
	bool unloaded = m->residency == SCHED_UNLOADED;
	if (placed[JOB_PLACE_ANY] > 0) {
		if (m->wait_fallback && unloaded)
			sm->placement = SCHED_PLACE_CPU;
	} else if (placed[JOB_PLACE_CPU] > 0 && unloaded) {
		sm->placement = SCHED_PLACE_CPU;
	}
}

/* What the largest GPU of the current decision could ever give one model: its total
 * less the driver's reservation and the margin (0 without GPUs). */
static uint64_t
engine_largest_gpu_room(const struct engine *e)
{
	const struct engine_decision *dec = &e->dec;
	uint64_t best = 0;
	for (size_t i = 0; i < dec->snap.ngpus; i++) {
		const struct sched_gpu *g = &dec->snap.gpus[i];
		uint64_t cap = g->total_bytes > g->driver_reserved_bytes
				   ? g->total_bytes - g->driver_reserved_bytes
				   : 0;
		cap = cap > dec->cfg.safety_margin_bytes ? cap - dec->cfg.safety_margin_bytes : 0;
		if (cap > best)
			best = cap;
	}
	return best;
}

/* Whether model i of the decision could ever fit a GPU of the node (a split counts). */
static bool
engine_gpu_can_ever_fit(struct engine_decision *dec, size_t i)
{
	struct sched_model *sm = &dec->models[i];
	bool cpu = sm->cpu_allowed, fallback = sm->cpu_fallback;
	enum sched_placement placement = sm->placement;
	sm->cpu_allowed = sm->cpu_fallback = false;
	if (placement == SCHED_PLACE_CPU)
		sm->placement = SCHED_PLACE_AUTO;
	bool fits = sched_model_can_ever_fit(&dec->snap, i);
	sm->cpu_allowed = cpu;
	sm->cpu_fallback = fallback;
	sm->placement = placement;
	return fits;
}

/*
 * Models that can never fit any GPU of the node (even at the reduced context
 * engine_fit_context allows), for their jobs' placements: jobs of placement any may go to
 * the CPU at once (cpu_fallback, even with ALLOW_CPU off); jobs of placement gpu never
 * run, and while other jobs of the model could run on the CPU the model is planned for
 * those this decision (the fleet fails the gpu jobs when no node could hold them,
 * fleet_fail_gpu_never_fits). A model with only gpu jobs stays SCHED_PLACE_GPU: it never
 * fits, and the fleet fails its jobs as for any model.
 */
static void
engine_gpu_fit_check(struct engine_decision *dec)
{
	for (size_t i = 0; i < dec->snap.nmodels; i++) {
		struct engine_model *m = dec->src[i];
		struct sched_model *sm = &dec->models[i];
		const int *placed = m->queue.placed;
		m->gpu_never_fits = false;
		if (m->placement != SCHED_PLACE_AUTO || sm->residency != SCHED_UNLOADED ||
		    placed[JOB_PLACE_GPU] + placed[JOB_PLACE_ANY] == 0 ||
		    engine_gpu_can_ever_fit(dec, i))
			continue;
		m->gpu_never_fits = placed[JOB_PLACE_GPU] > 0;
		if (placed[JOB_PLACE_ANY] + placed[JOB_PLACE_CPU] == 0)
			continue;
		/* Planned as if its gpu jobs were gone; they never dispatch on the CPU. */
		if (placed[JOB_PLACE_GPU] > 0) {
			struct engine_model tmp = *m;
			tmp.queue.placed[JOB_PLACE_GPU] = 0;
			sm->placement = SCHED_PLACE_AUTO;
			sm->cpu_allowed = dec->cfg.allow_cpu;
			engine_job_placement(&tmp, sm);
		}
		if (sm->placement == SCHED_PLACE_AUTO && placed[JOB_PLACE_ANY] > 0) {
			sm->cpu_fallback = true;
			sm->cpu_allowed = true; /* the jobs asked for it, whatever ALLOW_CPU says */
		}
	}
}

bool
engine_gpu_never_fits(const struct engine *e, const char *name, uint64_t *footprint,
		      uint64_t *largest)
{
	const struct engine_model *m = engine_model_find(e, name);
	if (m == NULL || !m->gpu_never_fits || !e->dec.ready)
		return false;
	*footprint = engine_model_footprint(e, m);
	*largest = engine_largest_gpu_room(e);
	return true;
}

struct engine_wait_warn {
	struct engine *e;
	const struct engine_model *m;
	const char *why;
	int64_t now, warn_ms;
	bool may_fallback; /* jobs of placement any go to the CPU once blocked long enough */
	bool any_due;	   /* out: a job of placement any has been blocked WAIT_WARN_S */
};

/* One queued job of a blocked model: its job_waiting event once it has been blocked
 * WAIT_WARN_S (counted from its enqueue or the start of the block, the later). */
static void
engine_warn_job_cb(struct job *job, void *arg)
{
	struct engine_wait_warn *w = arg;
	int64_t since = job->enqueued_mono_ms > w->m->blocked_since_ms ? job->enqueued_mono_ms
								       : w->m->blocked_since_ms;
	if (job->placement == JOB_PLACE_CPU || w->now - since < w->warn_ms)
		return;
	bool to_cpu = w->may_fallback && job->placement == JOB_PLACE_ANY;
	w->any_due = w->any_due || job->placement == JOB_PLACE_ANY;
	if (job->wait_warned)
		return;
	job->wait_warned = true;
	char *message = xasprintf("job %s has waited %lld s: %s%s", job->id,
				  (long long)((w->now - job->enqueued_mono_ms) / 1000), w->why,
				  to_cpu ? "; with placement any it falls back to the CPU" : "");
	vd_warn(ENGINE, "%s%s", w->e->tag, message);
	events_emit(gpu_policy_events(w->e->d->policy), "job_waiting",
		    json_pack("{s:s,s:s,s:s,s:s,s:I,s:b,s:s}", "job_id", job->id, "model",
			      job->model, "node", w->e->node->url, "placement",
			      job_placement_name(job->placement), "waited_ms",
			      (json_int_t)(w->now - job->enqueued_mono_ms), "cpu_fallback", to_cpu,
			      "message", message));
	free(message);
}

/*
 * WAIT_WARN_S (issue 11, "say why a job waits"): a model whose waiting jobs have a
 * waiting_reason (it cannot be loaded now) is blocked from that moment; each of its jobs
 * gets one job_waiting event once blocked WAIT_WARN_S, and a model whose jobs all allow
 * the CPU (any, cpu), some of them any, then loads on the CPU instead of waiting forever
 * (other programs' memory, a reservation, a paused GPU). Runs on the node the fleet routed the
 * model to last decision.
 */
static void
engine_watch_waits(struct engine *e, int64_t now)
{
	struct engine_decision *dec = &e->dec;
	int64_t warn_ms = config_int(e->d->config, CONFIG_WAIT_WARN_S) * 1000;
	for (size_t i = 0; i < e->nmodels; i++) {
		struct engine_model *m = e->models[i];
		const struct queue_model_summary *qs = &m->queue;
		bool waiting = qs->count[0] + qs->count[1] + qs->count[2] > 0;
		const struct job *head =
		    waiting && m->routed ? queue_peek_model(e->d->queue, m->name) : NULL;
		char *why = head != NULL && !engine_model_is_resident(m)
				? engine_model_waiting_reason(e, m->name)
				: NULL;
		if (why == NULL) {
			m->blocked_since_ms = 0;
			m->wait_fallback = false;
			continue;
		}
		if (m->blocked_since_ms == 0)
			m->blocked_since_ms = now;
		/* The CPU only when every job of it allows it (no gpu job waits). A model
		 * held back by vramd's own busy models has normally been served by the batch
		 * bound (MAX_BATCH_WAIT, 30 s) before WAIT_WARN_S (60 s). */
		bool may_fallback = qs->placed[JOB_PLACE_GPU] == 0 &&
				    qs->placed[JOB_PLACE_ANY] > 0 &&
				    m->placement == SCHED_PLACE_AUTO;
		struct engine_wait_warn w = {e, m, why, now, warn_ms, may_fallback, false};
		queue_each_model_job(e->d->queue, m->name, engine_warn_job_cb, &w);
		bool fallback = may_fallback && w.any_due;
		if (fallback && !m->wait_fallback)
			vd_log(ENGINE,
			       "%s%s waited %lld s for GPU memory that other programs hold: "
			       "its jobs of placement any fall back to the CPU",
			       e->tag, m->name, (long long)((now - m->blocked_since_ms) / 1000));
		m->wait_fallback = fallback;
		free(why);
		/* This decision's snapshot sees the fallback at once. */
		for (size_t k = 0; k < dec->snap.nmodels; k++)
			if (dec->src[k] == m && fallback &&
			    dec->models[k].placement == SCHED_PLACE_AUTO &&
			    m->residency == SCHED_UNLOADED)
				dec->models[k].placement = SCHED_PLACE_CPU;
	}
}

bool
engine_snapshot(struct engine *e, int64_t now, const struct queue_model_summary *sums, size_t nsum)
{
	struct daemon *d = e->d;
	struct engine_decision *dec = &e->dec;
	engine_decision_clear(e);
	engine_confirm_unloads(e, now);
	engine_observe_loads(e);
	/* After a failed connection nothing is decided until a listing taken since the
	 * server came back says what it still holds (it may have restarted); a server
	 * whose /api/ps keeps failing does not hold the jobs forever. */
	if (e->outage && e->backend_up && now - e->backend_up_since_ms > ENGINE_RECONCILE_WAIT_MS) {
		vd_warn(ENGINE,
			"no /api/ps listing from %s within %d s of it coming back; "
			"deciding on what vramd knew before",
			e->node->url, ENGINE_RECONCILE_WAIT_MS / 1000);
		e->outage = false;
	}
	if (!e->backend_up || e->outage) {
		e->load_sample_asked_ms = 0;
		return false;
	}
	/* With telemetry, nothing is decided before a sample says what is free: a provider
	 * that has not answered yet (NVML before its first tick, an nvidia-smi that hangs or
	 * fails) holds every job rather than having them judged against no GPU at all. */
	if (e->node->gpus != NULL && gpu_monitor_reading_count(e->node->gpus) == 0) {
		e->load_sample_asked_ms = 0;
		return false;
	}
	struct sched_config *cfg = &dec->cfg;
	engine_sched_config(e, cfg);
	size_t ngpus = engine_snapshot_gpus(e, dec->gpus);
	for (size_t g = 0; g < ngpus; g++)
		dec->own_pending[g] = dec->gpus[g].pending_bytes;
	if (cfg->max_loaded_models == 0) /* Ollama's default: 3 per GPU */
		cfg->max_loaded_models = 3 * (int)(ngpus > 0 ? ngpus : 1);
	engine_size_kv_caches(e, dec->gpus, ngpus);
	/* After the KV tier, which follows the GPUs' real size as Ollama's does. */
	for (size_t g = 0; g < ngpus; g++)
		engine_gpu_apply_limit(e, &dec->gpus[g]);

	/* Models: those with waiting jobs, and those resident or busy. */
	for (size_t i = 0; i < e->nmodels; i++) {
		memset(&e->models[i]->queue, 0, sizeof(e->models[i]->queue));
		e->models[i]->sum_index = -1;
		e->models[i]->head = NULL;
	}
	if (nsum > e->by_sum_alloc) {
		size_t old = e->by_sum_alloc;
		e->by_sum_alloc = nsum * 2;
		e->by_sum = xreallocarray(e->by_sum, e->by_sum_alloc, sizeof(*e->by_sum));
		memset(e->by_sum + old, 0, (e->by_sum_alloc - old) * sizeof(*e->by_sum));
	}
	for (size_t i = 0; i < nsum; i++) {
		struct engine_model *m = e->by_sum[i];
		if (m == NULL || strcmp(m->name, sums[i].model) != 0)
			m = e->by_sum[i] = engine_model_get(e, sums[i].model);
		m->queue = sums[i];
		m->queue.model = NULL; /* borrowed from the queue: not kept */
		m->queue.head = NULL;  /* borrowed: m->head holds it for this decision */
		m->sum_index = (int)i;
		m->head = sums[i].head;
	}
	e->heads_valid = true;
	engine_ops_prepare(e);
	engine_decision_reserve(e, e->nmodels + 1);
	size_t n = 0;
	for (size_t i = 0; i < e->nmodels; i++) {
		struct engine_model *m = e->models[i];
		const struct queue_model_summary *qs = &m->queue;
		bool waiting = qs->count[0] + qs->count[1] + qs->count[2] > 0;
		/* With PREWARM, a model asked for lately is a candidate even with no job. */
		bool likely = cfg->prewarm && !m->no_prewarm && engine_arrival_rate(m, now) > 0.0;
		if (!waiting && !engine_model_is_resident(m) && m->running == 0 && !m->wanted &&
		    !m->pinned && !likely)
			continue;
		struct sched_model *sm = &dec->models[n];
		*sm = (struct sched_model){0};
		dec->src[n] = m;
		dec->sum[n++] = m->sum_index;
		sm->name = m->name;
		sm->footprint_bytes = engine_model_footprint(e, m);
		sm->residency = m->residency;
		sm->gpu = m->gpu;
		sm->running = m->running;
		sm->last_used_ms = m->last_used_ms;
		sm->keep_until_ms = m->keep_until_ms;
		sm->cpu_allowed = cfg->allow_cpu;
		sm->spilled = m->spilled && m->residency == SCHED_LOADED;
		sm->pinned = m->pinned || engine_model_unobserved(e, m);
		sm->gpu_priority = m->gpu_priority;
		sm->unload_requested = m->unload_requested;
		sm->placement = m->wanted && m->want_placement != SCHED_PLACE_AUTO
				    ? m->want_placement
				    : m->placement;
		sm->placement_gpu = m->want_gpu;
		engine_job_placement(m, sm);
		engine_model_multi_gpu(e, m, sm, ngpus);
		/* A model in load backoff shows no demand until the backoff ends, nor one the
		 * registry does not know yet (after a restart, before /api/tags answered): its
		 * footprint would be 0, and a load planned with it would spill or fail. */
		if (m->residency == SCHED_UNLOADED &&
		    (m->not_before_ms > now || engine_model_registry(e, m) == NULL))
			continue;
		sm->wanted = m->wanted || m->pinned;
		sm->arrival_rate = engine_arrival_rate(m, now);
		if (m->no_prewarm && m->residency == SCHED_UNLOADED)
			sm->arrival_rate = 0.0; /* only pre-warm reads it for an unloaded model */
		sm->load_ms = (int64_t)m->load_ms_mean;
		sm->run_ms = (int64_t)m->run_ms_mean;
		sm->prewarmed = m->prewarmed && m->residency == SCHED_LOADED;
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			sm->queued[p] = qs->count[p];
			sm->oldest_enqueued_ms[p] = qs->oldest_enqueued_ms[p];
			sm->deadline_ms[p] = qs->earliest_deadline_ms[p];
		}
	}
	const struct gpu_host_memory *host =
	    e->node->gpus != NULL ? gpu_monitor_host(e->node->gpus) : gpu_monitor_host(d->gpus);
	dec->snap = (struct sched_snapshot){
	    .now_ms = now,
	    .config = cfg,
	    .gpus = dec->gpus,
	    .ngpus = ngpus,
	    .models = dec->models,
	    .nmodels = n,
	    .cpu_free_bytes = host != NULL && host->valid ? host->available_bytes : 0,
	    .cpu_total_bytes = host != NULL && host->valid ? host->total_bytes : 0,
	    .loads_in_flight = e->loads_in_flight,
	    .optimize = e->optimize_now || now >= e->optimize_next_ms,
	};
	engine_fit_context(e, dec);
	e->heads_valid = false; /* engine_watch_waits may fail jobs */
	engine_gpu_fit_check(dec);
	engine_watch_waits(e, now);
	dec->ready = true;
	return true;
}

const struct sched_snapshot *
engine_snapshot_view(const struct engine *e)
{
	return e->dec.ready ? &e->dec.snap : NULL;
}

int
engine_snapshot_summary(const struct engine *e, size_t model)
{
	return e->dec.sum[model];
}

uint64_t
engine_own_pending(const struct engine *e, int gpu)
{
	for (size_t i = 0; i < e->dec.snap.ngpus; i++)
		if (e->dec.gpus[i].id == gpu)
			return e->dec.own_pending[i];
	return 0;
}

bool
engine_snapshot_model_routed(const struct engine *e, size_t model)
{
	return e->dec.src[model]->routed;
}

void
engine_snapshot_add_pending(struct engine *e, int gpu, uint64_t bytes)
{
	for (size_t i = 0; i < e->dec.snap.ngpus; i++)
		if (e->dec.gpus[i].id == gpu)
			e->dec.gpus[i].pending_bytes += bytes;
}

void
engine_snapshot_unpin(struct engine *e, size_t model, bool extra_copy)
{
	struct sched_model *sm = &e->dec.models[model];
	sm->pinned = false;
	sm->wanted = e->dec.src[model]->wanted;
	/* A second copy of a pin nobody is using is unloaded, this decision only. */
	bool idle = sm->running == 0;
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		idle = idle && sm->queued[p] == 0;
	if (extra_copy && idle && sm->residency == SCHED_LOADED)
		sm->unload_requested = true;
}

void
engine_decide(struct engine *e, const bool *serve)
{
	struct engine_decision *dec = &e->dec;
	if (!dec->ready)
		return;
	struct sched_snapshot *snap = &dec->snap;
	for (size_t i = 0; i < snap->nmodels; i++) {
		dec->src[i]->routed = serve[i];
		if (!serve[i])
			for (int p = 0; p < JOB_NPRIORITIES; p++)
				dec->models[i].queued[p] = 0;
	}
	if (snap->optimize) {
		e->optimize_now = false;
		e->optimize_next_ms =
		    snap->now_ms + config_int(e->d->config, CONFIG_OPTIMIZER_INTERVAL) * 1000;
	}
	int64_t decide_ns = vd_now_mono_ns();
	sched_decide(snap, &e->plan);
	metrics_observe(e->d->metrics, "vramd_scheduler_decision_seconds",
			(double)(vd_now_mono_ns() - decide_ns) / 1e9, e->node->name);
	engine_apply(e, snap, dec->src);
	engine_decision_clear(e);
}

void
engine_fail_model(struct engine *e, const char *name, const char *why)
{
	engine_fail_queued(e, engine_model_get(e, name), why);
}

struct engine_collect {
	enum job_placement placement;
	struct job **jobs;
	size_t n, alloc;
};

static void
engine_collect_cb(struct job *job, void *arg)
{
	struct engine_collect *c = arg;
	if (job->placement != c->placement)
		return;
	if (c->n == c->alloc) {
		c->alloc = c->alloc > 0 ? 2 * c->alloc : 16;
		c->jobs = xreallocarray(c->jobs, c->alloc, sizeof(*c->jobs));
	}
	c->jobs[c->n++] = job_ref(job);
}

void
engine_fail_placement(struct engine *e, const char *name, enum job_placement placement,
		      const char *why)
{
	struct engine_collect c = {.placement = placement};
	queue_each_model_job(e->d->queue, name, engine_collect_cb, &c);
	for (size_t i = 0; i < c.n; i++) {
		struct job *job = c.jobs[i];
		if (queue_remove(e->d->queue, job)) {
			job_finish(job, JOB_FAILED, NULL, why, vd_now_wall_ms());
			e->counters.failed++;
			e->hooks.job_changed(job, e->hooks.arg);
		}
		job_unref(job);
	}
	free(c.jobs);
	if (c.n > 0)
		vd_warn(ENGINE, "%sfailed %zu queued jobs of %s with placement %s: %s", e->tag, c.n,
			name, job_placement_name(placement), why);
}

/* --- Reconciling with /api/ps ----------------------------------------------------------- */

/* Puts the jobs running on m back at the head of the queue, their transfers aborted: its
 * server restarted (their connections are dead, or soon will be), or its GPU reached
 * TEMP_SHUTDOWN_C. With counted, the attempt counted at dispatch stays and a job out of
 * attempts fails; without (a GPU shutdown: not the job's fault), the stopped run is not
 * counted, so no job fails for it. A job whose client already got part of an answer
 * cannot run again and fails either way. Returns the jobs requeued. */
static size_t
engine_requeue_runs(struct engine *e, struct engine_model *m, const char *why, bool counted)
{
	struct daemon *d = e->d;
	struct engine_run **p = &e->runs;
	int64_t now = engine_now();
	size_t requeued = 0;
	while (*p != NULL) {
		struct engine_run *run = *p;
		if (run->model != m) {
			p = &run->next;
			continue;
		}
		*p = run->next;
		struct job *job = run->job;
		backend_call_cancel(e->node->backend, run->call);
		m->running--;
		job->engine_transfer = NULL;
		job->run_ms = now - run->started_mono_ms;
		if ((counted && job->attempts >= ENGINE_MAX_ATTEMPTS) ||
		    !engine_job_can_rerun(job)) {
			char *msg = xasprintf("%s after %d attempts", why, job->attempts);
			job_finish(job, JOB_FAILED, NULL, msg, vd_now_wall_ms());
			free(msg);
			e->counters.failed++;
		} else {
			vd_warn(ENGINE, "%sjob %s attempt %d on %s: %s; requeued%s", m->engine->tag,
				job->id, job->attempts, m->name, why,
				counted ? "" : " (the attempt is not counted)");
			if (!counted && job->attempts > 0)
				job->attempts--;
			e->counters.retries++;
			job->status = JOB_QUEUED;
			job->enqueued_mono_ms = now;
			queue_push_front(d->queue, job);
			requeued++;
		}
		e->hooks.job_changed(job, e->hooks.arg);
		job_unref(job);
		free(run);
	}
	return requeued;
}

/*
 * The GPU and runner of a model adopted from /api/ps: the GPU whose process list shows
 * an unclaimed Ollama runner holding its size_vram (reconcile_match_runner); without
 * one (yet: vramd's first GPU sample may come after its first listing) the first GPU
 * (budget mode: GPU 0), and engine_observe_loads tries again on every decision; the CPU
 * when nothing of it is on a GPU. Never guesses a runner: pids_known stays false.
 */
static void
engine_adopt_placement(struct engine *e, struct engine_model *m, uint64_t size_vram)
{
	m->gpu = SCHED_GPU_CPU;
	m->runner_pid = 0;
	m->pids_known = false;
	m->npids_before = 0;
	if (size_vram == 0 || engine_cpu_only(e))
		return;
	if (engine_budget_mode(e) || node_gpu_count(e->node) == 0) {
		m->gpu = 0;
		return;
	}
	m->gpu = (int)node_gpu_at(e->node, 0)->index;
	for (size_t g = 0; g < node_gpu_count(e->node); g++) {
		int id = (int)node_gpu_at(e->node, g)->index;
		const struct gpu_sample *s = engine_gpu_process_sample(e, id);
		if (s == NULL)
			continue;
		uint64_t bytes[GPU_MAX_PROCESSES];
		uint32_t pids[GPU_MAX_PROCESSES];
		size_t n = 0;
		for (size_t i = 0; i < s->nprocesses && n < GPU_MAX_PROCESSES; i++) {
			const struct gpu_process *p = &s->processes[i];
			if (!p->is_ollama || !p->used_known || engine_pid_is_claimed(e, m, p->pid))
				continue;
			bytes[n] = p->used_bytes;
			pids[n++] = p->pid;
		}
		int best = reconcile_match_runner(bytes, n, size_vram);
		if (best >= 0) {
			m->gpu = id;
			m->runner_pid = pids[best];
			return;
		}
	}
}

void
engine_observe_ps(struct engine *e, const struct backend_running_list *list, int64_t sent_ms)
{
	struct daemon *d = e->d;
	int64_t now = engine_now();
	const char **keys = xcalloc(list->n + 1, sizeof(*keys));
	for (size_t i = 0; i < list->n; i++) {
		const struct registry_model *rm =
		    registry_find(e->node->registry, list->models[i].name);
		if (rm == NULL)
			continue; /* the registry records every listed model; never here */
		keys[i] = rm->key;
		struct engine_model *m = engine_model_get(e, rm->name);
		if (list->models[i].context_length > 0)
			m->runner_ctx = list->models[i].context_length;
	}
	struct reconcile_model *models = xcalloc(e->nmodels + 1, sizeof(*models));
	enum reconcile_verdict *verdicts = xcalloc(e->nmodels + 1, sizeof(*verdicts));
	for (size_t i = 0; i < e->nmodels; i++) {
		const struct engine_model *m = e->models[i];
		const struct registry_model *rm = engine_model_registry(e, m);
		models[i] = (struct reconcile_model){.key = rm != NULL ? rm->key : m->name,
						     .residency = m->residency,
						     .running = m->running,
						     .load_done_ms = m->load_done_ms,
						     .unloaded_ms = m->unloaded_ms};
	}
	size_t nkeys = 0;
	for (size_t i = 0; i < list->n; i++)
		if (keys[i] != NULL)
			keys[nkeys++] = keys[i];
	bool after_outage = e->outage && e->backend_up && sent_ms >= e->backend_up_since_ms;
	struct reconcile_listing ps = {
	    .keys = keys, .n = nkeys, .sent_ms = sent_ms, .after_outage = after_outage};
	struct reconcile_summary sum;
	reconcile_server(&ps, models, e->nmodels, verdicts, &sum);
	if (after_outage)
		e->outage = false;
	if (sum.restarted) {
		char *what = xasprintf("ollama at %s restarted: %zu model%s it had loaded %s gone",
				       e->node->url, sum.gone, sum.gone == 1 ? "" : "s",
				       sum.gone == 1 ? "is" : "are");
		vd_warn(ENGINE, "%s", what);
		events_emit(gpu_policy_events(d->policy), "server_restarted",
			    json_pack("{s:s,s:I,s:s}", "server", e->node->url, "models_gone",
				      (json_int_t)sum.gone, "message", what));
		free(what);
	}
	for (size_t i = 0; i < e->nmodels; i++) {
		struct engine_model *m = e->models[i];
		const struct registry_model *rm = engine_model_registry(e, m);
		/* After a restart every runner is new: identify them again. */
		if (sum.restarted && verdicts[i] == RECONCILE_KEEP &&
		    m->residency == SCHED_LOADED) {
			m->runner_pid = 0;
			m->npids_before = 0;
		}
		if (verdicts[i] == RECONCILE_ADOPT) {
			uint64_t size_vram = rm != NULL ? rm->size_vram_bytes : 0;
			engine_adopt_placement(e, m, size_vram);
			m->residency = SCHED_LOADED;
			m->adopted = true;
			json_decref(m->runner_opts);
			m->runner_opts = NULL; /* how someone else started it is unknown */
			m->spilled = false;
			m->runner_recorded = false;
			m->load_failures = 0;
			m->load_started_ms = m->load_done_ms = sent_ms; /* no job waited on it */
			m->last_used_ms = now;				/* keep-alive starts now */
			char place[16];
			char *what =
			    xasprintf("adopted %s on %s: ollama has it loaded (%llu MiB in VRAM), "
				      "not by vramd",
				      m->name, engine_place_name(m->gpu, place, sizeof(place)),
				      (unsigned long long)(size_vram >> 20));
			/* A cluster's follower only watches what the leader loads. */
			if (!d->leading) {
				free(what);
				continue;
			}
			vd_log(ENGINE, "%s", what);
			events_emit(gpu_policy_events(d->policy), "model_adopted",
				    json_pack("{s:s,s:s,s:o,s:s}", "model", m->name, "server",
					      e->node->url, "gpu",
					      m->gpu >= 0 ? json_integer(m->gpu) : json_null(),
					      "message", what));
			free(what);
		} else if (verdicts[i] == RECONCILE_GONE) {
			char *what = xasprintf(
			    "%s is no longer loaded on %s although vramd did not unload it",
			    m->name, e->node->url);
			if (d->leading) { /* a follower only watches the leader's unloads */
				vd_warn(ENGINE, "%s", what);
				events_emit(gpu_policy_events(d->policy), "model_gone",
					    json_pack("{s:s,s:s,s:s}", "model", m->name, "server",
						      e->node->url, "message", what));
			}
			if (m->running > 0)
				engine_requeue_runs(e, m, "its server restarted", true);
			free(what);
			m->residency = SCHED_UNLOADED;
			m->unloaded_ms = now;
			m->runner_pid = 0;
			m->spilled = false;
			m->adopted = false;
			engine_model_forget_runner(m);
		}
	}
	free(verdicts);
	free(models);
	free(keys);
	engine_kick(e);
}

/* --- Cancel, views, teardown ---------------------------------------------------------------- */

bool
engine_cancel_job(struct engine *e, struct job *job)
{
	struct engine_run *run = job->engine_transfer;
	if (run == NULL)
		return false;
	backend_call_cancel(e->node->backend, run->call);
	engine_run_unlink(e, run);
	run->model->running--;
	job->engine_transfer = NULL;
	job->run_ms = engine_now() - run->started_mono_ms;
	job_finish(job, JOB_CANCELLED, NULL, "cancelled by client", vd_now_wall_ms());
	e->hooks.job_changed(job, e->hooks.arg);
	job_unref(job);
	free(run);
	engine_kick(e);
	return true;
}

/* A mean learnt by the engine (0: none yet), else the registry's, in seconds; -1. */
static double
engine_eta_mean_s(double own_ms, double fallback_ms)
{
	if (own_ms > 0)
		return own_ms / 1000.0;
	return fallback_ms >= 0 ? fallback_ms / 1000.0 : -1;
}

/* What a GPU of a snapshot has free for a new load: measured free memory less the loads
 * and reservations it does not show yet. */
static uint64_t
engine_gpu_room(const struct sched_gpu *g)
{
	uint64_t taken = g->pending_bytes + g->reserved_bytes;
	return g->free_bytes > taken ? g->free_bytes - taken : 0;
}

/* Whether a model of footprint bytes could be loaded now without unloading anything, as
 * of the last decision (true when there was none). */
static bool
engine_eta_fits_now(const struct engine *e, uint64_t footprint)
{
	const struct engine_decision *dec = &e->dec; /* as of the last decision */
	if (dec->snap.ngpus == 0)
		return true;
	uint64_t margin = dec->cfg.safety_margin_bytes;
	for (size_t i = 0; i < dec->snap.ngpus; i++) {
		const struct sched_gpu *g = &dec->snap.gpus[i];
		if (g->available && g->speed > 0 && engine_gpu_room(g) >= footprint + margin)
			return true;
	}
	return false;
}

/* Until some resident model other than m could be unloaded: 0 when one is idle, else the
 * shortest time one of them needs to run the jobs it has; -1 when none could (the memory
 * is held by others: no estimate). */
static double
engine_eta_evict_s(const struct engine *e, const struct engine_model *m, int slots)
{
	double best = -1;
	for (size_t i = 0; i < e->nmodels; i++) {
		const struct engine_model *r = e->models[i];
		if (r == m || r->residency != SCHED_LOADED || r->pinned)
			continue;
		struct queue_model_summary qs;
		queue_summary(e->d->queue, r->name, &qs);
		int work = r->running + qs.count[0] + qs.count[1] + qs.count[2];
		double run_s = engine_eta_mean_s(r->run_ms_mean, e->run_ms_mean);
		double drain = work == 0 ? 0 : (double)work * (run_s > 0 ? run_s : 0) / slots;
		if (best < 0 || drain < best)
			best = drain;
	}
	return best;
}

/* The time the GPUs give the models not loaded whose oldest job has waited longer than
 * since oldest: one load and their queue each. */
static double
engine_eta_others_s(const struct engine *e, const struct engine_model *m, int64_t oldest, int slots,
		    int *count)
{
	double sum = 0;
	*count = 0;
	for (size_t i = 0; i < e->nmodels; i++) {
		const struct engine_model *o = e->models[i];
		if (o == m || engine_model_is_resident(o))
			continue;
		struct queue_model_summary qs;
		queue_summary(e->d->queue, o->name, &qs);
		int queued = 0;
		int64_t first = 0;
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			queued += qs.count[p];
			if (qs.count[p] > 0 && (first == 0 || qs.oldest_enqueued_ms[p] < first))
				first = qs.oldest_enqueued_ms[p];
		}
		if (queued == 0 || first >= oldest)
			continue;
		double run_s = engine_eta_mean_s(o->run_ms_mean, e->run_ms_mean);
		double load_s = engine_eta_mean_s(o->load_ms_mean, -1);
		sum += (load_s > 0 ? load_s : 0) + (double)queued * (run_s > 0 ? run_s : 0) / slots;
		(*count)++;
	}
	return sum;
}

double
engine_eta_s(const struct engine *e, const struct job *job, size_t position)
{
	(void)position; /* the queue of its own model is what it waits behind */
	const struct engine_model *m = engine_model_find(e, job->model);
	const struct registry_model *rm = registry_find(e->node->registry, job->model);
	int64_t now = engine_now();
	int slots = (int)config_int(e->d->config, CONFIG_MAX_CONCURRENT_PER_MODEL);
	slots = slots > 0 ? slots : 1;
	struct queue_model_summary qs;
	queue_summary(e->d->queue, job->model, &qs);
	int ahead = 0;
	for (int p = 0; p <= (int)job->priority && p < JOB_NPRIORITIES; p++)
		ahead += qs.count[p];
	if (job->status == JOB_QUEUED && ahead > 0)
		ahead--; /* itself, taken as the last of its class */
	if (job->deadline_mono_ms > 0 && (unsigned)job->priority < JOB_NPRIORITIES) {
		/* A deadline job waits only behind the earlier deadlines of its class. */
		ahead = (int)queue_deadline_ahead(e->d->queue, job);
		for (int p = 0; p < (int)job->priority; p++)
			ahead += qs.count[p];
	}
	double registry_load_ms = rm != NULL && rm->load_count > 0 ? rm->load_ms_mean
				  : rm != NULL
				      ? (double)registry_load_timeout_ms(e->node->registry, rm) / 4
				      : -1;
	struct eta_input in = {
	    .resident =
		m != NULL && (m->residency == SCHED_LOADED || m->residency == SCHED_LOADING),
	    .running = m != NULL ? m->running : 0,
	    .ahead = ahead,
	    .slots = slots,
	    .run_s = engine_eta_mean_s(m != NULL ? m->run_ms_mean : 0, e->run_ms_mean),
	    .load_s = engine_eta_mean_s(m != NULL ? m->load_ms_mean : 0, registry_load_ms),
	};
	if (in.load_s < 0)
		in.load_s = 0;
	if (in.resident && m->residency == SCHED_LOADING) {
		double spent = (double)(now - m->load_started_ms) / 1000.0;
		in.loading_s = in.load_s > spent ? in.load_s - spent : 0;
	}
	if (!in.resident) {
		uint64_t footprint = m != NULL	  ? engine_model_footprint(e, m)
				     : rm != NULL ? registry_footprint(rm)
						  : 0;
		in.fits_now = engine_eta_fits_now(e, footprint);
		in.resident_max = e->dec.cfg.max_loaded_models;
		for (size_t i = 0; i < e->nmodels; i++)
			if (e->models[i]->residency != SCHED_UNLOADED)
				in.resident_n++;
		in.evict_s = engine_eta_evict_s(e, m, slots);
		if (!in.fits_now && in.evict_s < 0)
			return -1;
		int64_t oldest = 0;
		for (int p = 0; p < JOB_NPRIORITIES; p++)
			if (qs.count[p] > 0 && (oldest == 0 || qs.oldest_enqueued_ms[p] < oldest))
				oldest = qs.oldest_enqueued_ms[p];
		double bound = (double)config_int(e->d->config, CONFIG_MAX_BATCH_WAIT);
		double age = oldest > 0 ? (double)(now - oldest) / 1000.0 : 0;
		in.bound_s = bound > age ? bound - age : 0;
		in.others_s =
		    engine_eta_others_s(e, m, oldest > 0 ? oldest : now, slots, &in.others_n);
		in.swap_s = e->swap_ms_mean / 1000.0;
	}
	double eta = eta_estimate(&in);
	return eta < 0 ? -1 : round(eta * 10) / 10;
}

double
engine_eta_done_s(const struct engine *e, const struct job *job, size_t position)
{
	const struct engine_model *m = engine_model_find(e, job->model);
	double eta = engine_eta_s(e, job, position);
	double run_s = engine_eta_mean_s(m != NULL ? m->run_ms_mean : 0, e->run_ms_mean);
	return eta >= 0 && run_s >= 0 ? eta + run_s : -1;
}

bool
engine_model_routed(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	return m != NULL && m->routed;
}

char *
engine_waiting_reason(const struct engine *e, const struct job *job)
{
	/* A job of placement cpu never waits for GPU memory. */
	if (job->placement == JOB_PLACE_CPU)
		return NULL;
	return engine_model_waiting_reason(e, job->model);
}

static char *
engine_model_waiting_reason(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	const struct registry_model *rm = registry_find(e->node->registry, name);
	const struct engine_decision *dec = &e->dec;
	/* The GPUs as of the last decision (ready only while one is under way). */
	if (rm == NULL || (m != NULL && engine_model_is_resident(m)) || dec->snap.ngpus == 0)
		return NULL;
	uint64_t footprint = m != NULL ? engine_model_footprint(e, m) : registry_footprint(rm);
	if (engine_eta_fits_now(e, footprint))
		return NULL;
	/* The GPU with the most room, and what holds the rest of it. */
	const struct sched_gpu *best = NULL;
	uint64_t best_room = 0;
	for (size_t i = 0; i < dec->snap.ngpus; i++) {
		const struct sched_gpu *g = &dec->snap.gpus[i];
		uint64_t room = engine_gpu_room(g);
		if (best == NULL || room > best_room) {
			best = g;
			best_room = room;
		}
	}
	uint64_t others = 0, models = 0;
	const struct gpu_device *dev = node_gpu_find(e->node, best->id);
	if (dev != NULL)
		gpu_device_used_by_others(dev, &others);
	for (size_t i = 0; i < e->nmodels; i++)
		if (engine_model_is_resident(e->models[i]) && e->models[i]->gpu == best->id)
			models += engine_model_footprint(e, e->models[i]);
	char need[32], room[32], total[32], other[32], held[32], reserved[32];
	vd_format_size(footprint + dec->cfg.safety_margin_bytes, need, sizeof(need));
	vd_format_size(best_room, room, sizeof(room));
	vd_format_size(best->total_bytes, total, sizeof(total));
	vd_format_size(others, other, sizeof(other));
	vd_format_size(models, held, sizeof(held));
	vd_format_size(best->reserved_bytes, reserved, sizeof(reserved));
	return xasprintf("%s needs about %s of VRAM (with the margin) on %s; the most free now is "
			 "%s, on GPU %d (%s in all: %s held by other programs, %s by loaded "
			 "models, %s reserved); it loads once a model can be unloaded or memory "
			 "is freed",
			 name, need, e->node->name, room, best->id, total, other, held, reserved);
}

static const char *
engine_residency_name(enum sched_residency r)
{
	static const char *const names[] = {"unloaded", "loading", "loaded", "unloading"};
	return names[r];
}

json_t *
engine_model_json(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	if (m == NULL)
		return NULL;
	return json_pack("{s:s,s:o,s:i}", "state", engine_residency_name(m->residency), "gpu",
			 m->gpu >= 0 && engine_model_is_resident(m) ? json_integer(m->gpu)
								    : json_null(),
			 "running", m->running);
}

json_t *
engine_loaded_models_json(const struct engine *e)
{
	json_t *list = json_array();
	int64_t now = engine_now();
	for (size_t i = 0; i < e->nmodels; i++) {
		const struct engine_model *m = e->models[i];
		if (!engine_model_is_resident(m))
			continue;
		const struct registry_model *rm = engine_model_registry(e, m);
		json_t *o = json_object();
		json_object_set_new(o, "model", json_string(m->name));
		json_object_set_new(o, "server", json_string(e->node->url));
		json_object_set_new(o, "state", json_string(engine_residency_name(m->residency)));
		json_object_set_new(o, "gpu", m->gpu >= 0 ? json_integer(m->gpu) : json_null());
		json_object_set_new(
		    o, "size_vram_bytes",
		    json_integer(rm != NULL && rm->loaded ? (json_int_t)rm->size_vram_bytes : 0));
		json_object_set_new(o, "footprint_bytes",
				    json_integer((json_int_t)engine_model_footprint(e, m)));
		json_object_set_new(o, "running", json_integer(m->running));
		json_object_set_new(o, "adopted", json_boolean(m->adopted));
		json_object_set_new(
		    o, "idle_s", json_integer(m->running > 0 ? 0 : (now - m->last_used_ms) / 1000));
		json_array_append_new(list, o);
	}
	return list;
}

uint64_t
engine_gpu_models_bytes(const struct engine *e, int gpu)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < e->nmodels; i++)
		if (engine_model_is_resident(e->models[i]) && e->models[i]->gpu == gpu)
			sum += engine_model_footprint(e, e->models[i]);
	return sum;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	/* Jobs in flight go back to queued in the store, so a restart runs them again. */
	while (e->runs != NULL) {
		struct engine_run *run = e->runs;
		e->runs = run->next;
		backend_call_cancel(e->node->backend, run->call);
		run->job->status = JOB_QUEUED;
		run->job->engine_transfer = NULL;
		e->hooks.job_changed(run->job, e->hooks.arg);
		job_unref(run->job);
		free(run);
	}
	for (size_t i = 0; i < e->nmodels; i++) {
		backend_call_cancel(e->node->backend, e->models[i]->call);
		json_decref(e->models[i]->runner_opts);
		free(e->models[i]->name);
		free(e->models[i]);
	}
	free(e->models);
	free(e->model_slots);
	free(e->by_sum);
	free(e->dec.models);
	free(e->dec.src);
	free(e->dec.sum);
	sched_plan_cleanup(&e->plan);
	free(e);
}

/* --- Model operations: pinning, the GPU optimizer, forced placement, manual loads ----------- */

/* Calls fn for each entry of a comma-separated model list that the registry knows; list
 * entries go through the registry, so "phi3" names "phi3:latest". Stops when fn returns
 * true, and returns whether one did. */
static bool
engine_ops_each_listed(const struct engine *e, const char *list,
		       bool (*fn)(const struct registry_model *rm, void *arg), void *arg)
{
	const char *p = list;
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 0) {
			char *item = xstrndup(p, len);
			const struct registry_model *rm = registry_find(e->node->registry, item);
			free(item);
			if (rm != NULL && fn(rm, arg))
				return true;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return false;
}

static bool
engine_ops_is_named_cb(const struct registry_model *rm, void *arg)
{
	return strcmp(rm->name, arg) == 0;
}

/* Whether the comma-separated model list names name (a display name). */
static bool
engine_ops_list_has(const struct engine *e, const char *list, const char *name)
{
	return engine_ops_each_listed(e, list, engine_ops_is_named_cb, (void *)name);
}

struct engine_ops_mark {
	struct engine *e;
	bool pinned; /* else gpu_priority */
};

static bool
engine_ops_mark_cb(const struct registry_model *rm, void *arg)
{
	struct engine_ops_mark *mark = arg;
	if (rm->installed) {
		struct engine_model *m = engine_model_get(mark->e, rm->name);
		if (mark->pinned)
			m->pinned = true;
		else
			m->gpu_priority = true;
	}
	return false;
}

/* Marks every installed model of list pinned (or gpu_priority). */
static void
engine_ops_mark_list(struct engine *e, const char *list, bool pinned)
{
	struct engine_ops_mark mark = {e, pinned};
	engine_ops_each_listed(e, list, engine_ops_mark_cb, &mark);
}

/* Refreshes the pinned and gpu_priority flags from PIN_MODELS and GPU_PRIORITY_MODELS
 * (a pinned model that is not installed yet is pinned once /api/tags lists it). */
static void
engine_ops_prepare(struct engine *e)
{
	for (size_t i = 0; i < e->nmodels; i++)
		e->models[i]->pinned = e->models[i]->gpu_priority = false;
	engine_ops_mark_list(e, config_str(e->d->config, CONFIG_PIN_MODELS), true);
	engine_ops_mark_list(e, config_str(e->d->config, CONFIG_GPU_PRIORITY_MODELS), false);
}

static void
engine_ops_location(const struct engine_model *m, char *buf, size_t size)
{
	if (m->gpu == SCHED_GPU_CPU)
		snprintf(buf, size, "cpu");
	else
		snprintf(buf, size, "gpu %d%s", m->gpu, m->spilled ? " (spilled)" : "");
}

/* An unload is being sent: a move (optimizer, forced placement, a spilled model that
 * must be on a GPU) makes the model wanted where it belongs, so it is loaded there. */
static void
engine_ops_unloading(struct engine *e, struct engine_model *m, enum sched_reason reason)
{
	(void)e;
	switch (reason) {
	case SCHED_REASON_OPTIMIZE:
		m->wanted = true;
		m->want_placement = SCHED_PLACE_GPU;
		m->move_why = "optimizer";
		break;
	case SCHED_REASON_PLACEMENT:
		if (!m->wanted) {
			m->wanted = true;
			/* Automatic placement moved: jobs of placement gpu want it on a GPU. */
			m->want_placement =
			    m->placement != SCHED_PLACE_AUTO ? m->placement : SCHED_PLACE_GPU;
		}
		m->move_why = "placement";
		break;
	case SCHED_REASON_RELOCATE:
		if (!m->spilled ||
		    (!m->gpu_priority && !m->pinned && m->placement == SCHED_PLACE_AUTO))
			return;
		m->wanted = true;
		m->want_placement =
		    m->placement != SCHED_PLACE_AUTO ? m->placement : SCHED_PLACE_GPU;
		m->move_why = m->gpu_priority ? "optimizer" : "spilled";
		break;
	case SCHED_REASON_REQUESTED:
		m->wanted = false;
		return;
	default:
		return;
	}
	engine_ops_location(m, m->move_from, sizeof(m->move_from));
}

/* A load finished: a wanted model is no longer wanted, and a move is logged and sent as
 * a model_moved event. */
static void
engine_ops_loaded(struct engine *e, struct engine_model *m)
{
	m->wanted = false;
	m->want_placement = SCHED_PLACE_AUTO;
	if (m->move_from[0] == '\0')
		return;
	char to[24];
	engine_ops_location(m, to, sizeof(to));
	vd_log(ENGINE, "%smoved %s from %s to %s (%s)", m->engine->tag, m->name, m->move_from, to,
	       m->move_why != NULL ? m->move_why : "move");
	events_emit(gpu_policy_events(e->d->policy), "model_moved",
		    json_pack("{s:s,s:s,s:s,s:s,s:s}", "model", m->name, "node", e->node->url,
			      "from", m->move_from, "to", to, "reason",
			      m->move_why != NULL ? m->move_why : "move"));
	m->move_from[0] = '\0';
}

void
engine_model_force(struct engine *e, const char *name, enum sched_placement placement)
{
	struct engine_model *m = engine_model_get(e, name);
	m->placement = placement;
	m->unload_requested = false;
	if (placement != SCHED_PLACE_AUTO && !engine_model_is_resident(m)) {
		m->wanted = true;
		m->want_placement = placement;
	}
	engine_kick(e);
}

void
engine_model_load(struct engine *e, const char *name, int gpu)
{
	struct engine_model *m = engine_model_get(e, name);
	m->unload_requested = false;
	if (gpu >= 0) {
		m->want_placement = SCHED_PLACE_GPU_ID;
		m->want_gpu = gpu;
	} else {
		m->want_placement = SCHED_PLACE_AUTO;
	}
	bool placed = m->residency == SCHED_LOADED && (gpu < 0 || (m->gpu == gpu && !m->spilled));
	if (placed)
		m->last_used_ms = engine_now(); /* keep-alive counts from now */
	else
		m->wanted = true;
	engine_kick(e);
}

int
engine_model_unload(struct engine *e, const char *name, char **cause)
{
	if (engine_ops_list_has(e, config_str(e->d->config, CONFIG_PIN_MODELS), name)) {
		*cause = xasprintf("model %s is pinned (PIN_MODELS); it is never unloaded", name);
		return -EPERM;
	}
	struct engine_model *m = engine_model_find(e, name);
	if (m == NULL)
		return 0;
	m->wanted = false;
	if (engine_model_is_resident(m))
		m->unload_requested = true;
	engine_kick(e);
	return 0;
}

bool
engine_model_is_placed(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	return m != NULL && (m->residency == SCHED_LOADED || m->residency == SCHED_LOADING);
}

int
engine_queued_here(const struct engine *e)
{
	int n = 0;
	for (size_t i = 0; i < e->nmodels; i++)
		if (e->models[i]->routed)
			n += e->models[i]->queue.count[0] + e->models[i]->queue.count[1] +
			     e->models[i]->queue.count[2];
	return n;
}

bool
engine_model_is_settled(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	if (m == NULL)
		return true;
	if (m->residency == SCHED_LOADING || m->residency == SCHED_UNLOADING || m->wanted ||
	    m->unload_requested)
		return false;
	if (m->residency != SCHED_LOADED)
		return true;
	/* Done once /api/ps has been read since the load, so the reply shows its sizes. */
	if (m->load_done_ms > 0 && monitor_ps_fresh_since(e->node->monitor) <= m->load_done_ms) {
		monitor_refresh_ps(e->node->monitor);
		return false;
	}
	switch (m->placement) {
	case SCHED_PLACE_CPU:
		return m->gpu == SCHED_GPU_CPU;
	case SCHED_PLACE_GPU:
	case SCHED_PLACE_GPU_ID:
		return m->gpu != SCHED_GPU_CPU && !m->spilled;
	case SCHED_PLACE_AUTO:
		break;
	}
	return true;
}

static const char *
engine_placement_name(enum sched_placement p)
{
	switch (p) {
	case SCHED_PLACE_GPU:
	case SCHED_PLACE_GPU_ID:
		return "gpu";
	case SCHED_PLACE_CPU:
		return "cpu";
	case SCHED_PLACE_AUTO:
		break;
	}
	return "auto";
}

json_t *
engine_model_location_json(const struct engine *e, const char *name)
{
	const struct engine_model *m = engine_model_find(e, name);
	const struct registry_model *rm = registry_find(e->node->registry, name);
	bool loaded = rm != NULL && rm->loaded;
	uint64_t size = loaded ? rm->size_bytes : 0, vram = loaded ? rm->size_vram_bytes : 0;
	const char *location = "none";
	json_t *gpu = json_null();

	if (m != NULL && engine_model_is_resident(m)) {
		if (m->gpu == SCHED_GPU_CPU) {
			location = "cpu";
		} else {
			location = m->spilled ? "gpu+cpu" : "gpu";
			gpu = json_integer(m->gpu);
		}
	} else if (loaded) { /* loaded by someone else: where /api/ps says */
		location = vram == 0 ? "cpu" : vram < size ? "gpu+cpu" : "gpu";
	}
	return json_pack(
	    "{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:s,s:b,s:b,s:i,s:b}", "model", name, "node",
	    e->node->name, "state",
	    m != NULL ? engine_residency_name(m->residency)
	    : loaded  ? "loaded"
		      : "unloaded",
	    "location", location, "gpu", gpu, "size_bytes", (json_int_t)size, "size_vram_bytes",
	    (json_int_t)vram, "placement",
	    engine_placement_name(m != NULL ? m->placement : SCHED_PLACE_AUTO), "pinned",
	    engine_ops_list_has(e, config_str(e->d->config, CONFIG_PIN_MODELS), name),
	    "gpu_priority",
	    engine_ops_list_has(e, config_str(e->d->config, CONFIG_GPU_PRIORITY_MODELS), name),
	    "running", m != NULL ? m->running : 0, "pending", !engine_model_is_settled(e, name));
}

void
engine_run_stats(const struct engine *e, int *running, double *run_ms_mean)
{
	int n = 0;
	for (size_t i = 0; i < e->nmodels; i++)
		n += e->models[i]->running;
	*running = n;
	*run_ms_mean = e->run_ms_mean;
}
