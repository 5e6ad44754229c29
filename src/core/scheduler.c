/*
 * scheduler.c: the decide step. sched_decide() turns a snapshot (GPUs, models with
 * their queue summaries, loads in flight) into a plan: unloads first, then loads, then
 * dispatches. It is pure: no I/O, no clock reads, no globals; the only state kept
 * between calls is the plan's scratch memory, which never influences a decision.
 *
 * The decision, in order (docs/scheduling.md has the long version):
 *   0. Shutdown: every loaded model on a GPU in shutdown (TEMP_SHUTDOWN_C) is unloaded,
 *      busy or pinned alike; the caller stops and requeues its jobs first.
 *   1. Keep-alive: idle models (LOADED, nothing running or queued) unused for
 *      keep_alive_ms are unloaded, and idle models that spilled to the CPU at once
 *      (where the CPU is allowed, only when a GPU has room for all of it now).
 *   2. Pressure and relocation: a GPU whose free memory fell below
 *      pending + reserved + margin (a VRAM reservation, or another program grew) gets
 *      idle models unloaded, in eviction order, when that restores the margin; idle CPU
 *      models are unloaded while host memory is below host_memory_min_bytes; an
 *      idle-but-wanted model on a paused or lost GPU is unloaded when another GPU fits
 *      it now, so its jobs run there.
 *  2b. Moves: a resident model away from its forced placement (placement), or an idle
 *      gpu_priority model on the CPU while the optimizer runs (snapshot.optimize), is
 *      unloaded once no job of it runs, when a GPU has room for it or can make it by
 *      unloading idle models that are neither pinned nor priority; the caller reloads
 *      it where it belongs (it marks the model wanted).
 *   3. Demand: unloaded models with queued jobs, ranked (starving first, then effective
 *      priority after aging, then a deadline in that class with the least slack, then the
 *      age of the job each would serve next), are placed
 *      one by one: a direct best fit; else, when the swap pays (its waiting work against
 *      two of its loads), evictions of idle models in eviction order (an unused
 *      pre-warmed model, then the lowest reuse cost = arrival rate x load time, then
 *      least recently used; victims the others make unnecessary are dropped), on
 *      the GPU that needs the least evicted memory (the load itself follows on a later
 *      decision, once the memory is back); else CPU when allowed and no GPU could ever
 *      hold it. A starving model may also claim models that still have queued or
 *      running jobs: they get no new dispatch, drain, and are then unloaded.
 *      A model starves when its oldest job's wait plus its load time plus the drain of
 *      a busy model would pass max_batch_wait, so the bound holds.
 *      Then wanted models with no job (pinned, manual loads, moves) are placed the same
 *      way. A model's placement limits where it may go; pinned models are never
 *      victims of keep-alive, room-making or the resident cap. With a per-GPU cap
 *      (max_models_per_gpu) a full GPU takes no load while another may; when all are
 *      full, an idle model on one of them is unloaded first. With nothing waiting,
 *      config.prewarm loads the likeliest model into free room (never evicting).
 *   4. Dispatch: every loaded model that is not frozen gets up to its concurrency cap
 *      (scaled by its GPU's speed), models with higher-ranked jobs first.
 *
 * Invariants: a plan never commits more memory on a GPU than
 * free - pending - reserved - margin (each load or claim lowers the GPU's headroom in
 * the plan); a model with running jobs, or a LOADING / UNLOADING one, is never
 * unloaded, except that a LOADED model on a GPU in shutdown (gpu.shutdown) always is,
 * whatever runs or waits: its GPU must cool, and the caller requeues its jobs; an empty plan means
 * nothing can progress until the snapshot changes.
 *
 * Caller: the engine's loop (on every event and every SCHEDULER_LOOP_INTERVAL);
 * tests/test-scheduler.c and bench/bench-scheduler.c on hand-made snapshots.
 */
#include "scheduler.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Byte counts are clamped to this before signed arithmetic, so four of them can be
 * added or subtracted without overflow whatever a snapshot holds. */
#define SCHED_BYTES_MAX (INT64_MAX / 8)

/* What sched_decide derives about one model. */
struct sched_mstate {
	int64_t footprint; /* clamped footprint_bytes */
	int64_t need;	   /* headroom a load on one GPU needs: the footprint, or more where
			      the server's pre-flight asks for more (preflight_bytes) */
	int64_t oldest_ms; /* oldest queued job of any priority */
	int64_t head_ms;   /* oldest queued job of best_prio: the one served next */
	int queued;	   /* queued jobs over all priorities */
	int best_prio;	   /* most urgent priority with queued jobs */
	bool has_deadline; /* a job of class best_prio has a deadline */
	int64_t slack_ms;  /* then the least slack among them: deadline - now - run_ms */
	int gpu_index;	   /* index into snap->gpus, or -1 (CPU, unloaded or unknown id) */
	double reuse_cost; /* expected load time lost per second if it is not resident:
			      arrival rate x load time; 0 when unknown */
	bool starving;	   /* its oldest job will have waited max_batch_wait by the time a
			      load for it could start serving (sched_derive) */
	bool gone;	   /* unloaded or claimed as a victim in this plan */
	bool frozen;	   /* no new dispatch: it drains for a starving model */
};

/* What sched_decide derives about one GPU. */
struct sched_gstate {
	int64_t head;	  /* memory a load may take now: free - pending - reserved - margin */
	int64_t incoming; /* memory that unloads in progress or in this plan give back */
	int64_t ours;	  /* footprints of models resident (or loading) there */
	int nmodels;	  /* models resident (or loading) there */
	int planned;	  /* loads this plan puts there (the per-GPU cap counts them) */
	int running;	  /* jobs running on them */
	size_t lru_begin, lru_end; /* this GPU's range in scratch.lru */
	bool usable;		   /* available and speed > 0: loads and dispatch may go here */
};

/* Sort key of a model in demand and dispatch order. */
struct sched_rank {
	int cls;	   /* 0: starving, 1: not */
	int64_t oldest_ms; /* starving models: the oldest job first (earliest bound) */
	int prio;
	bool deadline;	  /* a job of class prio has a deadline: before those without */
	int64_t slack_ms; /* its least slack: the least first */
	int64_t head_ms;
	size_t model;
};

/* A resident model in eviction order within its GPU: a pre-warmed model nobody used
 * first, then the cheapest to need again (reuse_cost), then least recently used. */
struct sched_lru {
	int gpu_index;
	bool prewarmed;
	double reuse_cost;
	int64_t last_used_ms;
	size_t model;
};

/* Working memory, grown as needed and kept in the plan between decisions. */
struct sched_scratch {
	size_t cap_models, cap_gpus;
	struct sched_mstate *models;
	struct sched_gstate *gpus;
	struct sched_rank *ranks;
	struct sched_lru *lru;
	struct sched_lru *host; /* idle CPU models in eviction order (host memory pressure) */
	size_t *victims, *best_victims;
	struct sched_action *loads;
	bool resident_busy; /* some resident model has jobs running or queued */
	size_t nresident;   /* models not unloaded in the snapshot (a decision changes no
			       residency: victims it picks still count until they go) */
	size_t nlru;	    /* entries in lru */
	int nsplit;	    /* split models resident: each counts on every GPU's cap */
	bool any_resident;  /* some model is resident, loading or unloading: the server's
			       pre-flight applies to the next load */
};

void
sched_plan_init(struct sched_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
}

static void
sched_scratch_free(struct sched_scratch *s)
{
	if (s == NULL)
		return;
	free(s->models);
	free(s->gpus);
	free(s->ranks);
	free(s->lru);
	free(s->host);
	free(s->victims);
	free(s->best_victims);
	free(s->loads);
	free(s);
}

void
sched_plan_cleanup(struct sched_plan *plan)
{
	free(plan->actions);
	free(plan->splits);
	sched_scratch_free(plan->scratch);
	memset(plan, 0, sizeof(*plan));
}

static struct sched_scratch *
sched_scratch_get(struct sched_plan *plan, size_t nmodels, size_t ngpus)
{
	struct sched_scratch *s = plan->scratch;

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		plan->scratch = s;
	}
	if (s->cap_models < nmodels || s->models == NULL) {
		size_t n = nmodels > 16 ? nmodels : 16;
		s->models = xreallocarray(s->models, n, sizeof(*s->models));
		s->ranks = xreallocarray(s->ranks, n, sizeof(*s->ranks));
		s->lru = xreallocarray(s->lru, n, sizeof(*s->lru));
		s->host = xreallocarray(s->host, n, sizeof(*s->host));
		s->victims = xreallocarray(s->victims, n, sizeof(*s->victims));
		s->best_victims = xreallocarray(s->best_victims, n, sizeof(*s->best_victims));
		s->loads = xreallocarray(s->loads, n, sizeof(*s->loads));
		s->cap_models = n;
	}
	if (s->cap_gpus < ngpus || s->gpus == NULL) {
		size_t n = ngpus > 8 ? ngpus : 8;
		s->gpus = xreallocarray(s->gpus, n, sizeof(*s->gpus));
		s->cap_gpus = n;
	}
	return s;
}

static void
sched_plan_push(struct sched_plan *plan, enum sched_action_type type, size_t model, int gpu,
		int count, enum sched_reason reason)
{
	if (plan->nactions == plan->alloc) {
		plan->alloc = plan->alloc ? plan->alloc * 2 : 16;
		plan->actions = xreallocarray(plan->actions, plan->alloc, sizeof(*plan->actions));
	}
	plan->actions[plan->nactions++] = (struct sched_action){
	    .type = type, .model = model, .gpu = gpu, .count = count, .reason = reason};
}

static int64_t
sched_bytes(uint64_t bytes)
{
	return bytes > (uint64_t)SCHED_BYTES_MAX ? SCHED_BYTES_MAX : (int64_t)bytes;
}

/* The most memory that could ever be free on g: its total less the driver's reservation. */
static int64_t
sched_gpu_capacity(const struct sched_gpu *g)
{
	uint64_t total = g->total_bytes;
	return sched_bytes(g->driver_reserved_bytes < total ? total - g->driver_reserved_bytes : 0);
}

static int
sched_gpu_index(const struct sched_snapshot *snap, int id)
{
	for (size_t i = 0; i < snap->ngpus; i++)
		if (snap->gpus[i].id == id)
			return (int)i;
	return -1;
}

static bool
sched_gpu_is_usable(const struct sched_gpu *gpu)
{
	return gpu->available && gpu->speed > 0.0;
}

/* Whether GPU index g holds max_models_per_gpu models (MODEL_CACHE_SIZE): its resident,
 * loading and unloading models, the loads this plan puts there and the split models.
 * Such a GPU takes no further load. */
static bool
sched_gpu_is_full(const struct sched_snapshot *snap, const struct sched_scratch *s, size_t g)
{
	int cap = snap->config->max_models_per_gpu;
	return cap > 0 && s->gpus[g].nmodels + s->gpus[g].planned + s->nsplit >= cap;
}

/* Whether m's placement lets it load on GPU id gpu. */
static bool
sched_placement_allows_gpu(const struct sched_model *m, int gpu)
{
	if (m->placement == SCHED_PLACE_CPU)
		return false;
	return m->placement != SCHED_PLACE_GPU_ID || gpu == m->placement_gpu;
}

/* Whether m may load on the CPU: forced there, or automatic placement with CPU allowed. */
static bool
sched_placement_allows_cpu(const struct sched_config *cfg, const struct sched_model *m)
{
	if (m->placement == SCHED_PLACE_CPU)
		return true;
	return m->placement == SCHED_PLACE_AUTO && (cfg->allow_cpu || m->cpu_fallback) &&
	       m->cpu_allowed;
}

/* Whether a resident model is where its placement says (a spilled model is not on a
 * GPU in the sense of SCHED_PLACE_GPU: part of it runs on the CPU). */
static bool
sched_is_placed_right(const struct sched_model *m)
{
	switch (m->placement) {
	case SCHED_PLACE_AUTO:
		return true;
	case SCHED_PLACE_GPU:
		return m->gpu != SCHED_GPU_CPU && !m->spilled;
	case SCHED_PLACE_CPU:
		return m->gpu == SCHED_GPU_CPU;
	case SCHED_PLACE_GPU_ID:
		return m->gpu == m->placement_gpu && !m->spilled;
	}
	return true;
}

/* Whether m, fitting no single GPU, could be split over every GPU of the server: each
 * holds the overhead and a share of the rest (paused or lost GPUs count). */
static bool
sched_split_can_ever_fit(const struct sched_snapshot *snap, const struct sched_model *m, int64_t fp,
			 int64_t margin)
{
	int64_t overhead = sched_bytes(m->split_overhead_bytes), room = 0;

	/* A split is entirely in VRAM: placement gpu (a job's or a forced one) allows it. */
	if (overhead == 0 || snap->ngpus < 2 || snap->ngpus > SCHED_SPLIT_MAX ||
	    (m->placement != SCHED_PLACE_AUTO && m->placement != SCHED_PLACE_GPU))
		return false;
	for (size_t g = 0; g < snap->ngpus; g++) {
		int64_t cap = sched_gpu_capacity(&snap->gpus[g]) - margin - overhead;
		if (cap <= 0)
			return false;
		room += cap;
	}
	return fp - overhead <= room;
}

bool
sched_model_can_ever_fit(const struct sched_snapshot *snap, size_t model)
{
	const struct sched_config *cfg = snap->config;
	const struct sched_model *m;
	int64_t fp, margin;

	if (model >= snap->nmodels || cfg == NULL)
		return false;
	m = &snap->models[model];
	if (m->residency != SCHED_UNLOADED)
		return true;
	fp = sched_bytes(m->footprint_bytes);
	margin = sched_bytes(cfg->safety_margin_bytes);
	for (size_t i = 0; i < snap->ngpus; i++)
		if (sched_placement_allows_gpu(m, snap->gpus[i].id) &&
		    fp <= sched_gpu_capacity(&snap->gpus[i]) - margin)
			return true;
	if (sched_split_can_ever_fit(snap, m, fp, margin))
		return true;
	if (sched_placement_allows_cpu(cfg, m)) {
		uint64_t host = snap->cpu_total_bytes > snap->cpu_free_bytes ? snap->cpu_total_bytes
									     : snap->cpu_free_bytes;
		if (fp <= sched_bytes(host))
			return true;
	}
	return false;
}

/* Jobs of a model that may run at once where it is now: the configured cap, scaled by
 * its GPU's speed (at least 1 while the GPU runs at all), 0 on a paused or lost GPU. */
static int
sched_split_cap(const struct sched_snapshot *snap, int cap)
{
	double speed = 1.0;
	int scaled;

	for (size_t g = 0; g < snap->ngpus; g++) {
		if (!sched_gpu_is_usable(&snap->gpus[g]))
			return 0;
		if (snap->gpus[g].speed < speed)
			speed = snap->gpus[g].speed;
	}
	scaled = (int)((double)cap * speed);
	return scaled < 1 ? 1 : scaled;
}

static int
sched_model_cap(const struct sched_snapshot *snap, const struct sched_model *m,
		const struct sched_mstate *ms)
{
	int cap = snap->config->max_concurrent_per_model;
	const struct sched_gpu *gpu;
	int scaled;

	if (cap < 1)
		cap = 1;
	if (m->gpu == SCHED_GPU_CPU)
		return cap;
	if (m->gpu == SCHED_GPU_SPLIT)
		return sched_split_cap(snap, cap);
	if (ms->gpu_index < 0)
		return 0;
	gpu = &snap->gpus[ms->gpu_index];
	if (!sched_gpu_is_usable(gpu))
		return 0;
	if (gpu->speed >= 1.0)
		return cap;
	scaled = (int)((double)cap * gpu->speed);
	return scaled < 1 ? 1 : scaled;
}

/* A model's load time when it was never measured: loads of the small models take about
 * this long, and any positive value lets the arrival rate rank models. */
#define SCHED_LOAD_MS_DEFAULT 1000

static int64_t
sched_load_ms(const struct sched_model *m)
{
	return m->load_ms > 0 ? m->load_ms : SCHED_LOAD_MS_DEFAULT;
}

/* The cost of not having m resident: the load time its expected jobs would wait for, per
 * second (arrival rate x load time). 0 for a model with no learned rate. */
static double
sched_reuse_cost(const struct sched_model *m)
{
	if (!(m->arrival_rate > 0.0))
		return 0.0;
	return m->arrival_rate * (double)sched_load_ms(m);
}

static int
sched_rank_cmp(const struct sched_rank *a, const struct sched_rank *b)
{
	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	/* Among starving models the bound comes first: the one whose oldest job passes it
	 * first goes first, whatever its priority; by priority, a low model starving with
	 * others kept losing its turn until aging lifted it. */
	if (a->cls == 0 && a->oldest_ms != b->oldest_ms)
		return a->oldest_ms < b->oldest_ms ? -1 : 1;
	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	/* Deadlines within a class: the model whose job has the least slack first, as the
	 * queue serves a model's own jobs. */
	if (a->deadline != b->deadline)
		return a->deadline ? -1 : 1;
	if (a->deadline && a->slack_ms != b->slack_ms)
		return a->slack_ms < b->slack_ms ? -1 : 1;
	if (a->head_ms != b->head_ms)
		return a->head_ms < b->head_ms ? -1 : 1;
	if (a->model != b->model)
		return a->model < b->model ? -1 : 1;
	return 0;
}

static int
sched_rank_qsort_cb(const void *a, const void *b)
{
	return sched_rank_cmp(a, b);
}

static int
sched_lru_qsort_cb(const void *pa, const void *pb)
{
	const struct sched_lru *a = pa, *b = pb;

	if (a->gpu_index != b->gpu_index)
		return a->gpu_index < b->gpu_index ? -1 : 1;
	if (a->prewarmed != b->prewarmed)
		return a->prewarmed ? -1 : 1;
	if (a->reuse_cost != b->reuse_cost)
		return a->reuse_cost < b->reuse_cost ? -1 : 1;
	if (a->last_used_ms != b->last_used_ms)
		return a->last_used_ms < b->last_used_ms ? -1 : 1;
	if (a->model != b->model)
		return a->model < b->model ? -1 : 1;
	return 0;
}

static struct sched_rank
sched_rank_of(const struct sched_mstate *ms, size_t model)
{
	return (struct sched_rank){.cls = ms->starving ? 0 : 1,
				   .oldest_ms = ms->oldest_ms,
				   .prio = ms->best_prio,
				   .deadline = ms->has_deadline,
				   .slack_ms = ms->slack_ms,
				   .head_ms = ms->head_ms,
				   .model = model};
}

/* An eviction option for one model on one GPU. */
struct sched_evict {
	int gpu_index;
	size_t nvictims;
	int64_t evicted; /* bytes the victims give back */
	int64_t leftover;
	bool must_drain; /* some victim still has jobs running */
};

/* Whether option a is better than b: no draining, less evicted, best fit, lower id. */
static bool
sched_evict_is_better(const struct sched_snapshot *snap, const struct sched_evict *a,
		      const struct sched_evict *b)
{
	if (a->must_drain != b->must_drain)
		return !a->must_drain;
	if (a->evicted != b->evicted)
		return a->evicted < b->evicted;
	if (a->leftover != b->leftover)
		return a->leftover < b->leftover;
	return snap->gpus[a->gpu_index].id < snap->gpus[b->gpu_index].id;
}

/*
 * Picks victims on GPU gi for model x in eviction order (cheapest to need again first,
 * then least recently used): idle models, then, when x starves, models it outranks that
 * may still have jobs (they will drain). Then drops every victim the others make
 * unnecessary, dearest first, so a big victim taken last does not leave small ones
 * evicted for nothing (that kept GPUs emptier than they had to be). Fills s->victims and
 * *ev; returns false when even all candidates would not make x fit (never evict for
 * nothing).
 */
static bool
sched_evict_plan(const struct sched_snapshot *snap, struct sched_scratch *s, size_t x, int gi,
		 struct sched_evict *ev)
{
	const struct sched_gstate *gs = &s->gpus[gi];
	const struct sched_mstate *xs = &s->models[x];
	struct sched_rank xr = sched_rank_of(xs, x);
	int64_t room = gs->head + gs->incoming;

	*ev = (struct sched_evict){.gpu_index = gi};
	/* Evicting for memory frees no slot: a GPU at its cap of models waits for the unload
	 * sched_gpu_slot plans, and is not a target until it is done. */
	if (sched_gpu_is_full(snap, s, (size_t)gi))
		return false;
	for (int pass = 0; pass < 2 && room + ev->evicted < xs->need; pass++) {
		if (pass == 1 && !xs->starving)
			break;
		for (size_t i = gs->lru_begin; i < gs->lru_end; i++) {
			size_t y = s->lru[i].model;
			const struct sched_model *ym = &snap->models[y];
			const struct sched_mstate *ys = &s->models[y];
			bool idle = ym->running == 0 && ys->queued == 0;

			if (room + ev->evicted >= xs->need)
				break;
			if (ym->residency != SCHED_LOADED || ys->gone || ym->pinned)
				continue;
			if (pass == 0 && !idle)
				continue;
			if (pass == 1) {
				struct sched_rank yr;
				if (idle)
					continue; /* taken in pass 0 */
				yr = sched_rank_of(ys, y);
				if (ys->queued > 0 && sched_rank_cmp(&xr, &yr) >= 0)
					continue;
			}
			s->victims[ev->nvictims++] = y;
			ev->evicted += ys->footprint;
		}
	}
	if (room + ev->evicted < xs->need)
		return false;
	size_t kept = ev->nvictims;
	for (size_t v = ev->nvictims; v-- > 0;) {
		int64_t fp = s->models[s->victims[v]].footprint;
		if (room + ev->evicted - fp >= xs->need) {
			ev->evicted -= fp;
			s->victims[v] = SIZE_MAX;
			kept--;
		}
	}
	size_t n = 0;
	for (size_t v = 0; v < ev->nvictims; v++) {
		if (s->victims[v] == SIZE_MAX)
			continue;
		s->victims[n++] = s->victims[v];
		if (snap->models[s->victims[v]].running > 0)
			ev->must_drain = true;
	}
	ev->nvictims = kept;
	ev->leftover = room + ev->evicted - xs->need;
	return true;
}

static int sched_direct_fit(const struct sched_snapshot *snap, const struct sched_scratch *s,
			    size_t x);

/* Whether idle model a costs less to lose than b: a pre-warmed one nobody used first,
 * then the lower reuse cost, then the less recently used. */
static bool
sched_victim_is_cheaper(const struct sched_snapshot *snap, const struct sched_scratch *s, size_t a,
			size_t b)
{
	const struct sched_model *ma = &snap->models[a], *mb = &snap->models[b];

	if (ma->prewarmed != mb->prewarmed)
		return ma->prewarmed;
	if (s->models[a].reuse_cost != s->models[b].reuse_cost)
		return s->models[a].reuse_cost < s->models[b].reuse_cost;
	return ma->last_used_ms < mb->last_used_ms;
}

/*
 * The per-GPU cap (MODEL_CACHE_SIZE, config.max_models_per_gpu): returns true when some
 * usable GPU that x may load on (and that could ever hold it) is below the cap, so the
 * placement finds it there. When every such GPU is full and eviction is allowed, plans
 * the unload of the cheapest idle model to lose on one of them (one whose memory also
 * makes room for x first), unless an unload there is already under way; the load waits
 * for a later decision. A model no single GPU could hold (CPU, split) is not held here.
 */
static bool
sched_gpu_slot(const struct sched_snapshot *snap, struct sched_plan *plan, struct sched_scratch *s,
	       size_t x, bool may_evict)
{
	const struct sched_model *xm = &snap->models[x];
	int64_t margin = sched_bytes(snap->config->safety_margin_bytes);
	size_t victim = SIZE_MAX, helps = SIZE_MAX;
	bool any = false, unloading = false;

	if (snap->config->max_models_per_gpu <= 0 || xm->placement == SCHED_PLACE_CPU)
		return true;
	for (size_t g = 0; g < snap->ngpus; g++) {
		if (!s->gpus[g].usable || !sched_placement_allows_gpu(xm, snap->gpus[g].id) ||
		    s->models[x].footprint > sched_gpu_capacity(&snap->gpus[g]) - margin)
			continue;
		if (!sched_gpu_is_full(snap, s, g))
			return true;
		any = true;
	}
	if (!any)
		return true;
	if (!may_evict)
		return false;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		const struct sched_mstate *ms = &s->models[i];
		int gi = ms->gpu_index;
		if (m->residency == SCHED_UNLOADED || gi < 0 || !s->gpus[gi].usable ||
		    !sched_placement_allows_gpu(xm, snap->gpus[gi].id) ||
		    !sched_gpu_is_full(snap, s, (size_t)gi) ||
		    s->models[x].footprint > sched_gpu_capacity(&snap->gpus[gi]) - margin)
			continue;
		if (m->residency == SCHED_UNLOADING || ms->gone) {
			unloading = true;
			continue;
		}
		if (m->residency != SCHED_LOADED || m->running > 0 || ms->queued > 0 || m->pinned)
			continue;
		if (victim == SIZE_MAX || sched_victim_is_cheaper(snap, s, i, victim))
			victim = i;
		if (s->gpus[gi].head + s->gpus[gi].incoming + ms->footprint >= s->models[x].need &&
		    (helps == SIZE_MAX || sched_victim_is_cheaper(snap, s, i, helps)))
			helps = i;
	}
	if (helps != SIZE_MAX)
		victim = helps;
	if (!unloading && victim != SIZE_MAX) {
		s->models[victim].gone = true;
		s->models[victim].frozen = true;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, victim, snap->models[victim].gpu, 0,
				SCHED_REASON_MAKE_ROOM);
	}
	return false;
}

/*
 * The resident-model cap: the Ollama server evicts on its own beyond
 * OLLAMA_MAX_LOADED_MODELS, so a load must wait until fewer models are resident.
 * Returns true when one more may load. Otherwise, unless an unload is already under way,
 * plans the unload of the cheapest idle model to lose (eviction order) among those whose
 * memory also makes room for x on their GPU, else anywhere, and the load waits for a
 * later decision.
 */
static bool
sched_resident_room(const struct sched_snapshot *snap, struct sched_plan *plan,
		    struct sched_scratch *s, size_t x, size_t nloads, bool may_evict)
{
	int cap = snap->config->max_loaded_models;
	size_t resident = nloads;
	size_t victim = SIZE_MAX, helps = SIZE_MAX;
	bool unloading = false;
	if (!sched_gpu_slot(snap, plan, s, x, may_evict))
		return false;
	if (cap <= 0 || nloads + s->nresident < (size_t)cap)
		return true;
	/* At the cap. Without leave to evict the answer is no: the scan for a victim below
	 * runs at most once a decision (the callers stop when it is allowed), not once per
	 * waiting model. */
	if (!may_evict)
		return false;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		const struct sched_mstate *ms = &s->models[i];
		if (m->residency == SCHED_UNLOADED)
			continue;
		resident++;
		if (m->residency == SCHED_UNLOADING || ms->gone) {
			unloading = true;
			continue;
		}
		if (m->residency != SCHED_LOADED || m->running > 0 || ms->queued > 0 || m->pinned)
			continue;
		if (victim == SIZE_MAX || sched_victim_is_cheaper(snap, s, i, victim))
			victim = i;
		/* A victim whose memory also makes room for x on its GPU: one unload then
		 * serves both the cap and the memory, where the cheapest one anywhere may
		 * be followed by a second unload for the memory. */
		if (ms->gpu_index >= 0 && s->gpus[ms->gpu_index].usable &&
		    sched_placement_allows_gpu(&snap->models[x], snap->gpus[ms->gpu_index].id) &&
		    s->gpus[ms->gpu_index].head + s->gpus[ms->gpu_index].incoming + ms->footprint >=
			s->models[x].need &&
		    (helps == SIZE_MAX || sched_victim_is_cheaper(snap, s, i, helps)))
			helps = i;
	}
	if (resident < (size_t)cap)
		return true;
	if (helps != SIZE_MAX && sched_direct_fit(snap, s, x) < 0)
		victim = helps;
	if (may_evict && !unloading && victim != SIZE_MAX) {
		s->models[victim].gone = true;
		s->models[victim].frozen = true;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, victim, snap->models[victim].gpu, 0,
				SCHED_REASON_MAKE_ROOM);
	}
	return false;
}

/* Weight of a job's waiting work by its effective class (high, normal, low). */
static const double sched_class_weight[JOB_NPRIORITIES] = {4.0, 1.0, 0.5};

/*
 * Swap batching: evicting a model to load another costs two loads if the evicted one is
 * wanted again soon, so while the resident models have work, a model whose load needs
 * an eviction waits until its waiting work is worth the swap, unless it starves or a job
 * of it is (effectively) high priority. With measured run and load times the work is
 *     sum over classes of jobs x run_ms x weight(class) x (1 + age / MAX_BATCH_WAIT)
 * and the swap costs two of its loads (its own, and likely a reload of what it evicts);
 * without them, min_swap_batch jobs. A load into free room, or onto an idle GPU, never
 * waits, nor one for a deadline at risk: a job that can still make its deadline but has
 * less slack than two of its loads (it cannot wait for a batch to gather).
 */
static bool
sched_swap_is_worth_it(const struct sched_snapshot *snap, const struct sched_scratch *s, size_t x)
{
	const struct sched_config *cfg = snap->config;
	const struct sched_model *xm = &snap->models[x];
	const struct sched_mstate *xs = &s->models[x];
	double work = 0.0;

	if (!s->resident_busy || xs->starving || xs->best_prio == JOB_PRIO_HIGH)
		return true;
	if (xs->has_deadline && xs->slack_ms >= 0 && xs->slack_ms < 2 * sched_load_ms(xm))
		return true;
	if (xm->run_ms <= 0 || xm->load_ms <= 0)
		return xs->queued >= cfg->min_swap_batch;
	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		if (xm->queued[p] <= 0)
			continue;
		int64_t t = xm->oldest_enqueued_ms[p];
		int eff = job_effective_priority(p, t, snap->now_ms, cfg->priority_aging_ms);
		double age = cfg->max_batch_wait_ms > 0 && snap->now_ms > t
				 ? (double)(snap->now_ms - t) / (double)cfg->max_batch_wait_ms
				 : 0.0;
		work += (double)xm->queued[p] * (double)xm->run_ms * sched_class_weight[eff] *
			(1.0 + age);
	}
	return work >= 2.0 * (double)xm->load_ms;
}

/* Plans the load of model x on the CPU when host memory holds it. */
static void
sched_place_cpu(struct sched_scratch *s, size_t x, enum sched_reason why, int *load_slots,
		size_t *nloads, int64_t *cpu_room)
{
	if (s->models[x].footprint > *cpu_room)
		return;
	if (*load_slots > 0) {
		s->loads[(*nloads)++] = (struct sched_action){
		    .type = SCHED_ACTION_LOAD, .model = x, .gpu = SCHED_GPU_CPU, .reason = why};
		(*load_slots)--;
	}
	*cpu_room -= s->models[x].footprint;
}

/*
 * Whether GPU index a is a better direct fit than b for a load that needs need bytes.
 * Pack: the least room left over. Spread: the most room, then the fewest resident
 * models and the least running work, then the faster (cooler) state. Ties: lower id.
 */
static bool
sched_fit_is_better(const struct sched_snapshot *snap, const struct sched_scratch *s, int a, int b)
{
	const struct sched_gstate *ga = &s->gpus[a], *gb = &s->gpus[b];

	if (ga->head != gb->head)
		return snap->config->spread ? ga->head > gb->head : ga->head < gb->head;
	if (snap->config->spread) {
		if (ga->nmodels != gb->nmodels)
			return ga->nmodels < gb->nmodels;
		if (ga->running != gb->running)
			return ga->running < gb->running;
		if (snap->gpus[a].speed != snap->gpus[b].speed)
			return snap->gpus[a].speed > snap->gpus[b].speed;
	}
	return snap->gpus[a].id < snap->gpus[b].id;
}

/* Whether GPU index g can take model x now, without evicting anything (nor at its cap of
 * models). */
static bool
sched_gpu_takes(const struct sched_snapshot *snap, const struct sched_scratch *s, size_t x,
		size_t g)
{
	return s->gpus[g].usable && s->gpus[g].head >= s->models[x].need &&
	       !sched_gpu_is_full(snap, s, g) &&
	       sched_placement_allows_gpu(&snap->models[x], snap->gpus[g].id);
}

/* The GPU index where model x fits now: the first of its preferred GPUs that does, else
 * the best by the placement policy; -1 when none. */
static int
sched_direct_fit(const struct sched_snapshot *snap, const struct sched_scratch *s, size_t x)
{
	const struct sched_model *xm = &snap->models[x];
	int best = -1;

	for (size_t p = 0; p < xm->npreferred; p++) {
		int g = sched_gpu_index(snap, xm->preferred_gpus[p]);
		if (g >= 0 && sched_gpu_takes(snap, s, x, (size_t)g))
			return g;
	}
	for (size_t g = 0; g < snap->ngpus; g++)
		if (sched_gpu_takes(snap, s, x, g) &&
		    (best < 0 || sched_fit_is_better(snap, s, (int)g, best)))
			best = (int)g;
	return best;
}

static struct sched_split *
sched_split_push(struct sched_plan *plan)
{
	if (plan->nsplits == plan->splits_alloc) {
		plan->splits_alloc = plan->splits_alloc ? plan->splits_alloc * 2 : 4;
		plan->splits =
		    xreallocarray(plan->splits, plan->splits_alloc, sizeof(*plan->splits));
	}
	return &plan->splits[plan->nsplits++];
}

/*
 * A model that fits no single GPU, split over every GPU of the server as Ollama does
 * (it spans the whole group): each GPU holds the overhead plus a share of the rest in
 * proportion to its room. All GPUs must be usable. Loads when the room is there now;
 * else unloads idle models (least recently used first on each GPU, never for nothing)
 * and the load follows on a later decision. Returns true when a split could ever hold
 * the model (so it waits for one rather than going to the CPU).
 */
static bool
sched_place_split(const struct sched_snapshot *snap, struct sched_plan *plan,
		  struct sched_scratch *s, size_t x, enum sched_reason why, int *load_slots,
		  size_t *nloads)
{
	const struct sched_model *xm = &snap->models[x];
	struct sched_mstate *xs = &s->models[x];
	int64_t overhead = sched_bytes(xm->split_overhead_bytes);
	int64_t margin = sched_bytes(snap->config->safety_margin_bytes);
	int64_t room = 0, incoming = 0, total = 0, rest = xs->footprint - overhead;
	int64_t pre = sched_bytes(xm->preflight_bytes);
	size_t n = snap->ngpus;

	if (!sched_split_can_ever_fit(snap, xm, xs->footprint, margin))
		return false;
	for (size_t g = 0; g < n; g++)
		if (xs->footprint <= sched_gpu_capacity(&snap->gpus[g]) - margin)
			return false; /* fits one GPU: it waits for room there */
	bool each_holds_overhead = true;
	for (size_t g = 0; g < n; g++) {
		if (!s->gpus[g].usable || sched_gpu_is_full(snap, s, g))
			return true; /* the split needs every GPU, and a slot on each */
		each_holds_overhead = each_holds_overhead && s->gpus[g].head >= overhead;
		room += s->gpus[g].head - overhead;
		incoming += s->gpus[g].incoming;
		total += s->gpus[g].head + margin;
	}
	/* Ollama's pre-flight over the group: preflight <= 0.8 x what is free there. */
	bool preflight_ok = !s->any_resident || pre == 0 || pre * 5 <= total * 4;
	if (room >= rest && each_holds_overhead && preflight_ok) {
		int64_t left = rest;
		if (*load_slots <= 0)
			return true;
		struct sched_split *sp = sched_split_push(plan);
		sp->ngpus = n;
		for (size_t g = 0; g < n; g++) {
			int64_t share =
			    g + 1 == n
				? left
				: (int64_t)((double)rest * (double)(s->gpus[g].head - overhead) /
					    (double)room);
			if (share > left)
				share = left;
			left -= share;
			sp->gpu[g] = snap->gpus[g].id;
			sp->bytes[g] = (uint64_t)(share + overhead);
			s->gpus[g].head -= share + overhead;
			s->gpus[g].planned++;
		}
		s->loads[(*nloads)++] = (struct sched_action){.type = SCHED_ACTION_LOAD,
							      .model = x,
							      .gpu = SCHED_GPU_SPLIT,
							      .reason = why,
							      .split = plan->nsplits - 1};
		(*load_slots)--;
		return true;
	}
	/* Unloads already under way may be enough; else evict idle models. */
	if (room + incoming >= rest && incoming > 0)
		return true;
	if (!xm->wanted && !sched_swap_is_worth_it(snap, s, x))
		return true;
	int64_t freed = 0;
	size_t nv = 0;
	for (size_t i = 0; i < s->nlru && room + incoming + freed < rest; i++) {
		size_t y = s->lru[i].model;
		const struct sched_model *ym = &snap->models[y];
		if (ym->residency != SCHED_LOADED || ym->running > 0 || s->models[y].queued > 0 ||
		    s->models[y].gone || ym->pinned)
			continue;
		s->victims[nv++] = y;
		freed += s->models[y].footprint;
	}
	/* Other split models are in no GPU's list. */
	for (size_t y = 0; y < snap->nmodels && room + incoming + freed < rest; y++) {
		const struct sched_model *ym = &snap->models[y];
		if (ym->gpu != SCHED_GPU_SPLIT || ym->residency != SCHED_LOADED ||
		    ym->running > 0 || s->models[y].queued > 0 || s->models[y].gone || ym->pinned)
			continue;
		s->victims[nv++] = y;
		freed += s->models[y].footprint;
	}
	if (room + incoming + freed < rest)
		return true;
	for (size_t v = 0; v < nv; v++) {
		size_t y = s->victims[v];
		s->models[y].gone = true;
		s->models[y].frozen = true;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, y, snap->models[y].gpu, 0,
				SCHED_REASON_MAKE_ROOM);
	}
	for (size_t g = 0; g < n; g++) {
		s->gpus[g].head = s->gpus[g].head < 0 ? s->gpus[g].head : 0;
		s->gpus[g].incoming = 0;
	}
	return true;
}

/* Places one unloaded model with demand (or wanted); see the file comment, step 3. */
static void
sched_place(const struct sched_snapshot *snap, struct sched_plan *plan, struct sched_scratch *s,
	    size_t x, int *load_slots, size_t *nloads, int64_t *cpu_room)
{
	const struct sched_model *xm = &snap->models[x];
	struct sched_mstate *xs = &s->models[x];
	enum sched_reason why = xs->starving ? SCHED_REASON_STARVATION : SCHED_REASON_DEMAND;
	int best = -1;
	struct sched_evict ev, best_ev = {0};
	int64_t max_room = -1;

	if (xm->placement == SCHED_PLACE_CPU) {
		sched_place_cpu(s, x, why, load_slots, nloads, cpu_room);
		return;
	}
	best = sched_direct_fit(snap, s, x);
	if (best >= 0) {
		if (*load_slots > 0) {
			s->loads[(*nloads)++] = (struct sched_action){.type = SCHED_ACTION_LOAD,
								      .model = x,
								      .gpu = snap->gpus[best].id,
								      .reason = why};
			(*load_slots)--;
		}
		s->gpus[best].head -= xs->need;
		s->gpus[best].planned++;
		return;
	}

	/* Room after evictions (or after unloads already under way). */
	if (!xm->wanted && !sched_swap_is_worth_it(snap, s, x))
		return;
	best = -1;
	for (size_t g = 0; g < snap->ngpus; g++) {
		if (!s->gpus[g].usable || !sched_placement_allows_gpu(xm, snap->gpus[g].id) ||
		    !sched_evict_plan(snap, s, x, (int)g, &ev))
			continue;
		if (best < 0 || sched_evict_is_better(snap, &ev, &best_ev)) {
			size_t *tmp = s->best_victims;
			s->best_victims = s->victims;
			s->victims = tmp;
			best_ev = ev;
			best = (int)g;
		}
	}
	if (best >= 0) {
		struct sched_gstate *gs = &s->gpus[best];
		int64_t after = gs->head + gs->incoming + best_ev.evicted - xs->need;

		for (size_t i = 0; i < best_ev.nvictims; i++) {
			size_t y = s->best_victims[i];
			s->models[y].gone = true;
			s->models[y].frozen = true;
			if (!best_ev.must_drain)
				sched_plan_push(plan, SCHED_ACTION_UNLOAD, y, snap->models[y].gpu,
						0, SCHED_REASON_MAKE_ROOM);
		}
		if (after < gs->head)
			gs->head = after;
		gs->incoming = 0;
		return;
	}

	/* Split, or CPU, only when no usable GPU could hold it even with all our models
	 * gone. A split that could work once our models go waits for that, not the CPU. */
	for (size_t g = 0; g < snap->ngpus; g++) {
		const struct sched_gstate *gs = &s->gpus[g];
		if (gs->usable && gs->head + gs->incoming + gs->ours > max_room)
			max_room = gs->head + gs->incoming + gs->ours;
	}
	if (max_room >= xs->footprint)
		return;
	if (sched_place_split(snap, plan, s, x, why, load_slots, nloads))
		return;
	if (!sched_placement_allows_cpu(snap->config, xm))
		return;
	sched_place_cpu(s, x, why, load_slots, nloads, cpu_room);
}

/* Fills s->models, s->gpus and the per-GPU LRU lists from the snapshot. */
static void
sched_derive(const struct sched_snapshot *snap, struct sched_scratch *s)
{
	const struct sched_config *cfg = snap->config;
	int64_t margin = sched_bytes(cfg->safety_margin_bytes);
	int64_t drain_ms = 0;
	size_t nlru = 0;

	s->any_resident = false;
	s->nsplit = 0;
	/* The longest a busy resident model (running, or with work that keeps it running)
	 * takes to drain, for the lead of a starving load. Counting queued work too keeps
	 * the lead, and so the starvation, from vanishing the moment such a model drained. */
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		bool busy = m->running > 0;
		for (int p = 0; p < JOB_NPRIORITIES && !busy; p++)
			busy = m->queued[p] > 0;
		if (m->residency != SCHED_UNLOADED && busy && m->run_ms > drain_ms)
			drain_ms = m->run_ms;
	}
	for (size_t g = 0; g < snap->ngpus; g++) {
		const struct sched_gpu *gpu = &snap->gpus[g];
		s->gpus[g] = (struct sched_gstate){
		    .head = sched_bytes(gpu->free_bytes) - sched_bytes(gpu->pending_bytes) -
			    sched_bytes(gpu->reserved_bytes) - margin,
		    .usable = sched_gpu_is_usable(gpu),
		};
	}
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		struct sched_mstate *ms = &s->models[i];

		*ms = (struct sched_mstate){.footprint = sched_bytes(m->footprint_bytes),
					    .best_prio = JOB_NPRIORITIES,
					    .gpu_index = -1,
					    .reuse_cost = sched_reuse_cost(m)};
		/* Aging: each priority's oldest job counts at its effective class; the job
		 * served next is the oldest of the most urgent effective class. */
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			if (m->queued[p] <= 0)
				continue;
			int64_t t = m->oldest_enqueued_ms[p];
			int eff =
			    job_effective_priority(p, t, snap->now_ms, cfg->priority_aging_ms);
			if (ms->queued == 0 || t < ms->oldest_ms)
				ms->oldest_ms = t;
			ms->queued += m->queued[p];
			if (eff < ms->best_prio || (eff == ms->best_prio && t < ms->head_ms)) {
				ms->best_prio = eff;
				ms->head_ms = t;
			}
		}
		/* Deadlines: the least slack among the priorities that age into the class
		 * served next (a model's jobs share one run time, so the earliest deadline). */
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			int64_t dl = m->deadline_ms[p];
			if (m->queued[p] <= 0 || dl <= 0 ||
			    job_effective_priority(p, m->oldest_enqueued_ms[p], snap->now_ms,
						   cfg->priority_aging_ms) != ms->best_prio)
				continue;
			int64_t slack = dl - snap->now_ms - (m->run_ms > 0 ? m->run_ms : 0);
			if (!ms->has_deadline || slack < ms->slack_ms) {
				ms->has_deadline = true;
				ms->slack_ms = slack;
			}
		}
		/* MAX_BATCH_WAIT as a hard bound: an unloaded model starves early enough
		 * that the drain of a busy model and its own load fit in the bound. */
		int64_t lead = m->residency == SCHED_UNLOADED ? sched_load_ms(m) + drain_ms : 0;
		if (lead > cfg->max_batch_wait_ms)
			lead = cfg->max_batch_wait_ms;
		if (m->load_ms <= 0 && m->run_ms <= 0 && drain_ms == 0)
			lead = 0; /* nothing measured: the plain bound, as before */
		ms->starving =
		    ms->queued > 0 && snap->now_ms - ms->oldest_ms + lead > cfg->max_batch_wait_ms;
		if (m->residency != SCHED_UNLOADED)
			s->any_resident = true;
		if (m->residency == SCHED_UNLOADED || m->gpu == SCHED_GPU_CPU)
			continue;
		if (m->gpu == SCHED_GPU_SPLIT)
			s->nsplit++;
		ms->gpu_index = sched_gpu_index(snap, m->gpu);
		if (ms->gpu_index < 0)
			continue;
		s->gpus[ms->gpu_index].ours += ms->footprint;
		s->gpus[ms->gpu_index].nmodels++;
		s->gpus[ms->gpu_index].running += m->running;
		if (m->residency == SCHED_UNLOADING)
			s->gpus[ms->gpu_index].incoming += ms->footprint;
		if (m->residency == SCHED_LOADED)
			s->lru[nlru++] = (struct sched_lru){.gpu_index = ms->gpu_index,
							    .prewarmed = m->prewarmed,
							    .reuse_cost = ms->reuse_cost,
							    .last_used_ms = m->last_used_ms,
							    .model = i};
	}
	qsort(s->lru, nlru, sizeof(*s->lru), sched_lru_qsort_cb);
	s->nlru = nlru;
	/* Ollama's pre-flight while other models are resident: preflight <= 0.8 x (free -
	 * pending - reserved), that is head >= preflight x 1.25 - margin. */
	for (size_t i = 0; i < snap->nmodels; i++) {
		struct sched_mstate *ms = &s->models[i];
		int64_t pre = sched_bytes(snap->models[i].preflight_bytes);
		ms->need = ms->footprint;
		if (s->any_resident && pre > 0 && pre + pre / 4 - margin > ms->need)
			ms->need = pre + pre / 4 - margin;
	}
	for (size_t g = 0; g < snap->ngpus; g++)
		s->gpus[g].lru_begin = s->gpus[g].lru_end = 0;
	for (size_t i = 0; i < nlru; i++) {
		struct sched_gstate *gs = &s->gpus[s->lru[i].gpu_index];
		if (i == 0 || s->lru[i - 1].gpu_index != s->lru[i].gpu_index)
			gs->lru_begin = i;
		gs->lru_end = i + 1;
	}
}

/*
 * A GPU whose headroom is negative (a reservation not yet satisfied, or other programs
 * grew into the margin) gets idle models unloaded, least recently used first, but only
 * when that brings the headroom back to zero or more.
 */
static void
sched_relieve_pressure(const struct sched_snapshot *snap, struct sched_plan *plan,
		       struct sched_scratch *s, size_t g)
{
	struct sched_gstate *gs = &s->gpus[g];
	int64_t room = gs->head + gs->incoming, idle = 0;

	if (room >= 0)
		return;
	for (size_t i = gs->lru_begin; i < gs->lru_end && room + idle < 0; i++) {
		size_t y = s->lru[i].model;
		if (snap->models[y].running == 0 && s->models[y].queued == 0 &&
		    !s->models[y].gone && !snap->models[y].pinned)
			idle += s->models[y].footprint;
	}
	if (room + idle < 0)
		return;
	for (size_t i = gs->lru_begin; i < gs->lru_end && room < 0; i++) {
		size_t y = s->lru[i].model;
		if (snap->models[y].running > 0 || s->models[y].queued > 0 || s->models[y].gone ||
		    snap->models[y].pinned)
			continue;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, y, snap->models[y].gpu, 0,
				SCHED_REASON_MAKE_ROOM);
		s->models[y].gone = true;
		room += s->models[y].footprint;
	}
	/* The memory coming back first fills the deficit; only the rest is for loads. */
	gs->incoming = room - gs->head;
}

/* Whether a model the server spilled partly to the CPU should be unloaded once idle (so
 * its next load lands whole on a GPU): always where the CPU is not allowed; where it is,
 * only while some GPU has room for all of it now, else it is accepted where it is. */
static bool
sched_spill_is_misplaced(const struct sched_snapshot *snap, const struct sched_scratch *s,
			 size_t model)
{
	const struct sched_model *m = &snap->models[model];
	if (!(snap->config->allow_cpu || m->cpu_fallback) || !m->cpu_allowed)
		return true;
	for (size_t g = 0; g < snap->ngpus; g++)
		if (s->gpus[g].usable && s->gpus[g].head >= s->models[model].footprint)
			return true;
	return false;
}

/*
 * Host memory pressure: while the host's available memory is below
 * host_memory_min_bytes, idle models on the CPU are unloaded, least valuable first
 * (pre-warmed and unused, then the lowest reuse cost, then least recently used), until
 * what they give back lifts it over the minimum or none is left. Unlike a GPU, every
 * byte given back helps the host, so they go even when all of them are not enough.
 */
static void
sched_relieve_host(const struct sched_snapshot *snap, struct sched_plan *plan,
		   struct sched_scratch *s)
{
	int64_t min = sched_bytes(snap->config->host_memory_min_bytes);
	int64_t avail = sched_bytes(snap->cpu_free_bytes);
	size_t n = 0;

	if (min == 0 || snap->cpu_total_bytes == 0 || avail >= min)
		return;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		if (m->residency != SCHED_LOADED || m->gpu != SCHED_GPU_CPU || m->running > 0 ||
		    s->models[i].queued > 0 || s->models[i].gone || m->pinned)
			continue;
		s->host[n++] = (struct sched_lru){.gpu_index = -1,
						  .prewarmed = m->prewarmed,
						  .reuse_cost = s->models[i].reuse_cost,
						  .last_used_ms = m->last_used_ms,
						  .model = i};
	}
	qsort(s->host, n, sizeof(*s->host), sched_lru_qsort_cb);
	for (size_t v = 0; v < n && avail < min; v++) {
		size_t y = s->host[v].model;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, y, SCHED_GPU_CPU, 0,
				SCHED_REASON_HOST_MEMORY);
		s->models[y].gone = true;
		avail += s->models[y].footprint;
	}
}

/* Whether model m sits on a GPU in shutdown (for a split model: any of the server's). */
static bool
sched_model_on_shutdown_gpu(const struct sched_snapshot *snap, const struct sched_mstate *ms,
			    const struct sched_model *m)
{
	if (m->gpu == SCHED_GPU_SPLIT) {
		for (size_t g = 0; g < snap->ngpus; g++)
			if (snap->gpus[g].shutdown)
				return true;
		return false;
	}
	return ms->gpu_index >= 0 && snap->gpus[ms->gpu_index].shutdown;
}

/*
 * Step 0, shutdown: every loaded model on a GPU in shutdown is unloaded now, busy,
 * pinned or wanted alike, so the GPU cools; its jobs go back to the queue (the caller
 * stops them) and load elsewhere or once the GPU is usable again.
 */
static void
sched_evacuate(const struct sched_snapshot *snap, struct sched_plan *plan, struct sched_scratch *s)
{
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		struct sched_mstate *ms = &s->models[i];
		if (m->residency != SCHED_LOADED || !sched_model_on_shutdown_gpu(snap, ms, m))
			continue;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, i, m->gpu, 0, SCHED_REASON_SHUTDOWN);
		ms->gone = true;
		ms->frozen = true;
	}
}

/* Steps 1 and 2: keep-alive expiry, reservations and memory pressure (GPU and host), and
 * relocation off paused or lost GPUs. */
static void
sched_unload_idle(const struct sched_snapshot *snap, struct sched_plan *plan,
		  struct sched_scratch *s)
{
	const struct sched_config *cfg = snap->config;

	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		struct sched_mstate *ms = &s->models[i];

		if (ms->gone)
			continue; /* sched_evacuate took it */
		if (m->residency == SCHED_LOADED && m->unload_requested) {
			ms->frozen = true;
			if (m->running > 0)
				continue;
			sched_plan_push(plan, SCHED_ACTION_UNLOAD, i, m->gpu, 0,
					SCHED_REASON_REQUESTED);
			ms->gone = true;
			if (ms->gpu_index >= 0)
				s->gpus[ms->gpu_index].incoming += ms->footprint;
			continue;
		}
		if (m->residency != SCHED_LOADED || m->running > 0 || ms->queued > 0)
			continue;
		bool expired = !m->pinned && cfg->keep_alive_ms > 0 &&
			       snap->now_ms - m->last_used_ms >= cfg->keep_alive_ms &&
			       snap->now_ms >= m->keep_until_ms;
		if (!expired && !(m->spilled && sched_spill_is_misplaced(snap, s, i)))
			continue;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, i, m->gpu, 0,
				expired ? SCHED_REASON_KEEP_ALIVE : SCHED_REASON_RELOCATE);
		ms->gone = true;
		if (ms->gpu_index >= 0)
			s->gpus[ms->gpu_index].incoming += ms->footprint;
	}
	for (size_t g = 0; g < snap->ngpus; g++)
		sched_relieve_pressure(snap, plan, s, g);
	sched_relieve_host(snap, plan, s);
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		struct sched_mstate *ms = &s->models[i];
		int best = -1;

		if (m->residency != SCHED_LOADED || m->running > 0 || ms->queued == 0 ||
		    m->gpu == SCHED_GPU_CPU || ms->gone)
			continue;
		if (ms->gpu_index >= 0 && s->gpus[ms->gpu_index].usable)
			continue;
		for (size_t g = 0; g < snap->ngpus; g++) {
			const struct sched_gstate *gs = &s->gpus[g];
			if (!gs->usable || gs->head < ms->footprint ||
			    sched_gpu_is_full(snap, s, g))
				continue;
			if (best < 0 || gs->head < s->gpus[best].head ||
			    (gs->head == s->gpus[best].head &&
			     snap->gpus[g].id < snap->gpus[best].id))
				best = (int)g;
		}
		if (best < 0)
			continue;
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, i, m->gpu, 0, SCHED_REASON_RELOCATE);
		ms->gone = true;
		s->gpus[best].head -= ms->footprint; /* keep its new place for it */
		s->gpus[best].planned++;
	}
}

/*
 * The GPU (index into snap->gpus) a model moving off the CPU (or to its forced GPU)
 * should go to: one with room now, else the one where unloading the fewest bytes of
 * idle models that are neither pinned nor gpu_priority makes room, least recently used
 * first (their indexes in s->best_victims, *nvictims of them). -1 when none can.
 */
static int
sched_move_target(const struct sched_snapshot *snap, struct sched_scratch *s, size_t x,
		  size_t *nvictims, int64_t *evicted)
{
	const struct sched_model *xm = &snap->models[x];
	int64_t fp = s->models[x].footprint;
	int best = -1;

	*nvictims = 0;
	*evicted = 0;
	for (size_t g = 0; g < snap->ngpus; g++) {
		const struct sched_gstate *gs = &s->gpus[g];
		int64_t room = gs->head + gs->incoming, freed = 0;
		size_t n = 0;

		if (!gs->usable || !sched_placement_allows_gpu(xm, snap->gpus[g].id) ||
		    sched_gpu_is_full(snap, s, g))
			continue;
		for (size_t i = gs->lru_begin; i < gs->lru_end && room + freed < fp; i++) {
			size_t y = s->lru[i].model;
			const struct sched_model *ym = &snap->models[y];
			if (y == x || ym->residency != SCHED_LOADED || ym->running > 0 ||
			    s->models[y].queued > 0 || s->models[y].gone || ym->pinned ||
			    ym->gpu_priority)
				continue;
			s->victims[n++] = y;
			freed += s->models[y].footprint;
		}
		if (room + freed < fp || (best >= 0 && freed >= *evicted))
			continue;
		size_t *tmp = s->best_victims;
		s->best_victims = s->victims;
		s->victims = tmp;
		*nvictims = n;
		*evicted = freed;
		best = (int)g;
	}
	return best;
}

/*
 * Step 2b, moves: a resident model that is not where its placement says, or (when the
 * optimizer runs) an idle gpu_priority model on the CPU, is unloaded so that it reloads
 * where it belongs, once a GPU has room for it (or can make it from idle models that are
 * neither pinned nor priority) and no job of it runs. A forced move stops new dispatch
 * so the model drains; a model with no room to go to keeps serving where it is.
 */
static void
sched_move_misplaced(const struct sched_snapshot *snap, struct sched_plan *plan,
		     struct sched_scratch *s)
{
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		struct sched_mstate *ms = &s->models[i];
		size_t nvictims = 0;
		int64_t evicted = 0;
		int gi = -1;

		if (m->residency != SCHED_LOADED || ms->gone)
			continue;
		bool forced = !sched_is_placed_right(m);
		bool optimize = snap->optimize && m->gpu_priority &&
				m->placement == SCHED_PLACE_AUTO && m->gpu == SCHED_GPU_CPU &&
				m->running == 0 && ms->queued == 0;
		if (!forced && !optimize)
			continue;
		if (m->placement != SCHED_PLACE_CPU) {
			gi = sched_move_target(snap, s, i, &nvictims, &evicted);
			if (gi < 0)
				continue;
		}
		ms->frozen = true;
		if (m->running > 0)
			continue;
		for (size_t v = 0; v < nvictims; v++) {
			size_t y = s->best_victims[v];
			s->models[y].gone = true;
			s->models[y].frozen = true;
			sched_plan_push(plan, SCHED_ACTION_UNLOAD, y, snap->models[y].gpu, 0,
					SCHED_REASON_MAKE_ROOM);
		}
		if (gi >= 0) {
			struct sched_gstate *gs = &s->gpus[gi];
			int64_t after = gs->head + gs->incoming + evicted - ms->footprint;
			if (after < gs->head)
				gs->head = after;
			gs->incoming = 0;
		}
		sched_plan_push(plan, SCHED_ACTION_UNLOAD, i, m->gpu, 0,
				forced ? SCHED_REASON_PLACEMENT : SCHED_REASON_OPTIMIZE);
		ms->gone = true;
		if (ms->gpu_index >= 0 && ms->gpu_index != gi)
			s->gpus[ms->gpu_index].incoming += ms->footprint;
	}
}

/*
 * Pre-warm (config.prewarm): when no job waits anywhere and nothing loads, the unloaded
 * model with the highest learned arrival rate is loaded where it fits now, without
 * evicting anything and within the resident cap; only a model expected to be asked for
 * within its keep-alive (rate x keep_alive >= 1), so it is not unloaded again unused;
 * with config.pinned_only (dynamic loading off) only a pinned model. The engine marks
 * it prewarmed until a job uses it: it is then the first victim.
 */
static void
sched_prewarm(const struct sched_snapshot *snap, struct sched_scratch *s, int *load_slots,
	      size_t *nloads)
{
	const struct sched_config *cfg = snap->config;
	size_t best = SIZE_MAX;
	size_t resident = 0;

	if (!cfg->prewarm)
		return;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		if (s->models[i].queued > 0)
			return; /* work waits: no guessing */
		if (m->residency != SCHED_UNLOADED) {
			resident++;
			continue;
		}
		if (!(m->arrival_rate > 0.0) || m->placement == SCHED_PLACE_CPU ||
		    (cfg->pinned_only && !m->pinned) ||
		    (cfg->keep_alive_ms > 0 &&
		     m->arrival_rate * (double)cfg->keep_alive_ms / 1000.0 < 1.0))
			continue;
		if (best == SIZE_MAX || m->arrival_rate > snap->models[best].arrival_rate)
			best = i;
	}
	if (best == SIZE_MAX ||
	    (cfg->max_loaded_models > 0 && resident >= (size_t)cfg->max_loaded_models))
		return;
	int g = sched_direct_fit(snap, s, best);
	if (g < 0)
		return;
	s->loads[(*nloads)++] = (struct sched_action){.type = SCHED_ACTION_LOAD,
						      .model = best,
						      .gpu = snap->gpus[g].id,
						      .reason = SCHED_REASON_PREWARM};
	(*load_slots)--;
	s->gpus[g].head -= s->models[best].need;
	s->gpus[g].planned++;
}

void
sched_decide(const struct sched_snapshot *snap, struct sched_plan *plan)
{
	const struct sched_config *cfg;
	struct sched_scratch *s;
	size_t ndemand = 0, nloads = 0, ndispatch = 0;
	int load_slots;
	int64_t cpu_room;

	plan->nactions = 0;
	plan->nsplits = 0;
	if (snap == NULL || snap->config == NULL)
		return;
	cfg = snap->config;
	s = sched_scratch_get(plan, snap->nmodels, snap->ngpus);
	sched_derive(snap, s);
	s->resident_busy = false;
	s->nresident = 0;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		if (m->residency != SCHED_UNLOADED)
			s->nresident++;
		if (m->residency != SCHED_UNLOADED && (m->running > 0 || s->models[i].queued > 0))
			s->resident_busy = true;
	}
	sched_evacuate(snap, plan, s);
	sched_unload_idle(snap, plan, s);
	sched_move_misplaced(snap, plan, s);

	/* Demand: unloaded models with jobs, in rank order. */
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		if (m->residency == SCHED_UNLOADED && s->models[i].queued > 0 &&
		    sched_model_can_ever_fit(snap, i))
			s->ranks[ndemand++] = sched_rank_of(&s->models[i], i);
	}
	qsort(s->ranks, ndemand, sizeof(*s->ranks), sched_rank_qsort_cb);
	load_slots =
	    (cfg->max_loads_in_flight > 0 ? cfg->max_loads_in_flight : 1) - snap->loads_in_flight;
	cpu_room = sched_bytes(snap->cpu_free_bytes);
	/* A CPU load never takes the host below HOST_MEMORY_MIN_MB (it would be unloaded
	 * again at once). */
	if (snap->cpu_total_bytes > 0)
		cpu_room -= sched_bytes(cfg->host_memory_min_bytes);
	bool blocked = false;
	for (size_t i = 0; i < ndemand; i++) {
		size_t x = s->ranks[i].model;
		bool worth = snap->models[x].wanted || sched_swap_is_worth_it(snap, s, x);
		if (!sched_resident_room(snap, plan, s, x, nloads, worth)) {
			if (worth) {
				blocked = true;
				break; /* an unload for it is planned or under way */
			}
			continue; /* a model further down may be worth a swap */
		}
		sched_place(snap, plan, s, x, &load_slots, &nloads, &cpu_room);
	}
	/* Wanted models with no job (pinned, a manual load, a move), after all demand. */
	for (size_t x = 0; x < snap->nmodels && !blocked; x++) {
		const struct sched_model *m = &snap->models[x];
		if (!m->wanted || m->residency != SCHED_UNLOADED || s->models[x].queued > 0 ||
		    !sched_model_can_ever_fit(snap, x))
			continue;
		if (!sched_resident_room(snap, plan, s, x, nloads, true))
			break;
		size_t before = nloads;
		sched_place(snap, plan, s, x, &load_slots, &nloads, &cpu_room);
		if (nloads > before)
			s->loads[nloads - 1].reason = SCHED_REASON_WANTED;
	}
	if (!blocked && nloads == 0 && load_slots > 0 && snap->loads_in_flight == 0)
		sched_prewarm(snap, s, &load_slots, &nloads);
	for (size_t i = 0; i < nloads; i++) {
		sched_plan_push(plan, s->loads[i].type, s->loads[i].model, s->loads[i].gpu, 0,
				s->loads[i].reason);
		plan->actions[plan->nactions - 1].split = s->loads[i].split;
	}

	/* Dispatch: loaded models not frozen, highest-ranked first. */
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		const struct sched_mstate *ms = &s->models[i];
		if (m->residency != SCHED_LOADED || ms->gone || ms->frozen || ms->queued == 0)
			continue;
		if (sched_model_cap(snap, m, ms) - m->running > 0)
			s->ranks[ndispatch++] = sched_rank_of(ms, i);
	}
	qsort(s->ranks, ndispatch, sizeof(*s->ranks), sched_rank_qsort_cb);
	for (size_t i = 0; i < ndispatch; i++) {
		size_t x = s->ranks[i].model;
		const struct sched_mstate *ms = &s->models[x];
		int n = sched_model_cap(snap, &snap->models[x], ms) - snap->models[x].running;
		if (n > ms->queued)
			n = ms->queued;
		sched_plan_push(plan, SCHED_ACTION_DISPATCH, x, snap->models[x].gpu, n,
				ms->starving ? SCHED_REASON_STARVATION : SCHED_REASON_DEMAND);
	}
}

const char *
sched_action_name(enum sched_action_type type)
{
	switch (type) {
	case SCHED_ACTION_UNLOAD:
		return "unload";
	case SCHED_ACTION_LOAD:
		return "load";
	case SCHED_ACTION_DISPATCH:
		return "dispatch";
	}
	return "unknown";
}

const char *
sched_reason_name(enum sched_reason reason)
{
	switch (reason) {
	case SCHED_REASON_KEEP_ALIVE:
		return "keep_alive";
	case SCHED_REASON_MAKE_ROOM:
		return "make_room";
	case SCHED_REASON_DEMAND:
		return "demand";
	case SCHED_REASON_STARVATION:
		return "starvation";
	case SCHED_REASON_RELOCATE:
		return "relocate";
	case SCHED_REASON_OPTIMIZE:
		return "optimize";
	case SCHED_REASON_PLACEMENT:
		return "placement";
	case SCHED_REASON_REQUESTED:
		return "requested";
	case SCHED_REASON_WANTED:
		return "wanted";
	case SCHED_REASON_PREWARM:
		return "prewarm";
	case SCHED_REASON_HOST_MEMORY:
		return "host_memory";
	case SCHED_REASON_SHUTDOWN:
		return "gpu_shutdown";
	}
	return "unknown";
}
