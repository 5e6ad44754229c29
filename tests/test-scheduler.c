/*
 * test-scheduler.c: unit tests for src/core/scheduler.c on hand-made snapshots. Each test
 * builds a small world (GPUs, models, queue summaries), runs sched_decide and asserts
 * the exact plan; a last group checks the plan's invariants over many random
 * snapshots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scheduler.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define GIB	 ((uint64_t)VD_GIB)
#define MIB	 ((uint64_t)VD_MIB)
#define NOW	 INT64_C(10000000)
#define W_MS	 INT64_C(30000)
#define MAX_GPUS 8
#define MAX_MOD	 64

struct world {
	struct sched_config cfg;
	struct sched_gpu gpus[MAX_GPUS];
	struct sched_model models[MAX_MOD];
	size_t ngpus, nmodels;
	struct sched_snapshot snap;
	struct sched_plan plan;
};

static void
world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->cfg = (struct sched_config){.safety_margin_bytes = 1 * GIB,
				       .max_batch_wait_ms = W_MS,
				       .max_concurrent_per_model = 2,
				       .keep_alive_ms = 300000,
				       .max_loads_in_flight = 1,
				       .allow_cpu = false};
	sched_plan_init(&w->plan);
}

static void
world_cleanup(struct world *w)
{
	sched_plan_cleanup(&w->plan);
}

/* Adds a GPU with all memory free and full speed; returns its index. */
static size_t
gpu_add(struct world *w, int id, uint64_t total)
{
	size_t i = w->ngpus++;
	w->gpus[i] = (struct sched_gpu){
	    .id = id, .available = true, .total_bytes = total, .free_bytes = total, .speed = 1.0};
	return i;
}

static size_t
model_add(struct world *w, const char *name, uint64_t footprint)
{
	size_t i = w->nmodels++;
	w->models[i] = (struct sched_model){.name = name,
					    .footprint_bytes = footprint,
					    .residency = SCHED_UNLOADED,
					    .gpu = SCHED_GPU_CPU};
	return i;
}

/* Marks model resident on gpu id (index gi), taking its memory from free_bytes. */
static void
model_loaded(struct world *w, size_t m, size_t gi, int64_t last_used)
{
	w->models[m].residency = SCHED_LOADED;
	w->models[m].gpu = w->gpus[gi].id;
	w->models[m].last_used_ms = last_used;
	w->gpus[gi].free_bytes -= w->models[m].footprint_bytes;
}

static void
model_queue(struct world *w, size_t m, enum job_priority p, int n, int64_t oldest)
{
	w->models[m].queued[p] = n;
	w->models[m].oldest_enqueued_ms[p] = oldest;
}

static void
decide(struct world *w)
{
	w->snap.now_ms = NOW;
	w->snap.config = &w->cfg;
	w->snap.gpus = w->gpus;
	w->snap.ngpus = w->ngpus;
	w->snap.models = w->models;
	w->snap.nmodels = w->nmodels;
	sched_decide(&w->snap, &w->plan);
}

static void
print_plan(const struct world *w)
{
	for (size_t i = 0; i < w->plan.nactions; i++) {
		const struct sched_action *a = &w->plan.actions[i];
		fprintf(stderr, "  %zu: %s %s gpu=%d count=%d (%s)\n", i,
			sched_action_name(a->type), w->models[a->model].name, a->gpu, a->count,
			sched_reason_name(a->reason));
	}
}

static void
expect_n(const struct world *w, size_t n)
{
	if (w->plan.nactions != n)
		print_plan(w);
	assert_int_equal(w->plan.nactions, n);
}

static void
expect(const struct world *w, size_t i, enum sched_action_type type, size_t model, int gpu,
       int count, enum sched_reason reason)
{
	const struct sched_action *a;

	if (i >= w->plan.nactions)
		print_plan(w);
	assert_true(i < w->plan.nactions);
	a = &w->plan.actions[i];
	if (a->type != type || a->model != model || a->gpu != gpu || a->count != count ||
	    a->reason != reason)
		print_plan(w);
	assert_string_equal(sched_action_name(a->type), sched_action_name(type));
	assert_string_equal(w->models[a->model].name, w->models[model].name);
	assert_int_equal(a->gpu, gpu);
	assert_int_equal(a->count, count);
	assert_string_equal(sched_reason_name(a->reason), sched_reason_name(reason));
}

/* footprint <= free - margin loads; one byte more does not. */
static void
test_fit_with_margin(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 7 * GIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);

	w.models[a].footprint_bytes = 7 * GIB + 1;
	decide(&w);
	expect_n(&w, 0);
	assert_false(sched_model_can_ever_fit(&w.snap, a));
	world_cleanup(&w);
}

/* Memory held by other processes lowers free_bytes and so blocks a load. */
static void
test_other_process_memory(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	w.gpus[0].free_bytes = 4 * GIB; /* 4 GiB used by someone else */
	a = model_add(&w, "a", 3 * GIB + 512 * MIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 0);
	assert_true(sched_model_can_ever_fit(&w.snap, a));

	w.gpus[0].free_bytes = 5 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* Pending loads and reservations count against free memory. */
static void
test_reserved_and_pending(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 3 * GIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 10);

	w.gpus[0].reserved_bytes = 4 * GIB + 1;
	decide(&w);
	expect_n(&w, 0);
	w.gpus[0].reserved_bytes = 4 * GIB;
	decide(&w);
	expect_n(&w, 1);

	w.gpus[0].reserved_bytes = 2 * GIB;
	w.gpus[0].pending_bytes = 2 * GIB + 1;
	decide(&w);
	expect_n(&w, 0);
	w.gpus[0].pending_bytes = 2 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* Two loads in one plan never overcommit a GPU, and loads in flight are capped. */
static void
test_no_overcommit_in_one_plan(void **state)
{
	struct world w;
	size_t a, b;

	(void)state;
	world_init(&w);
	w.cfg.max_loads_in_flight = 2;
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	b = model_add(&w, "b", 4 * GIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 20);
	model_queue(&w, b, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1); /* 7 GiB usable: only one of them */
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);

	w.models[a].footprint_bytes = 3 * GIB;
	w.models[b].footprint_bytes = 3 * GIB;
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	expect(&w, 1, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_DEMAND);

	w.snap.loads_in_flight = 1;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	w.snap.loads_in_flight = 2;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Idle models are evicted least recently used first, only as many as needed, and the
 * load follows once the memory is back. */
static void
test_eviction_lru(void **state)
{
	struct world w;
	size_t a, b, c, x;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	c = model_add(&w, "c", 2 * GIB);
	x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, 0, NOW - 100);
	model_loaded(&w, b, 0, NOW - 500); /* least recently used */
	model_loaded(&w, c, 0, NOW - 200);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w); /* usable 1 GiB, needs 3: one 2 GiB model is enough */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* While b unloads, nothing more is evicted. */
	w.models[b].residency = SCHED_UNLOADING;
	decide(&w);
	expect_n(&w, 0);

	/* b is gone: x loads. */
	w.models[b].residency = SCHED_UNLOADED;
	w.gpus[0].free_bytes += 2 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, x, 0, 0, SCHED_REASON_DEMAND);

	/* A bigger x needs two: b and then c (a is the most recent). */
	w.models[b].residency = SCHED_LOADED;
	w.gpus[0].free_bytes -= 2 * GIB;
	w.models[x].footprint_bytes = 5 * GIB;
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);
	expect(&w, 1, SCHED_ACTION_UNLOAD, c, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* A reservation (or another program) eating into the margin unloads idle models,
 * least recently used first, only when that restores the margin. */
static void
test_reservation_pressure(void **state)
{
	struct world w;
	size_t a, b, c;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	c = model_add(&w, "c", 2 * GIB);
	model_loaded(&w, a, 0, NOW - 900);
	model_loaded(&w, b, 0, NOW - 100);
	model_loaded(&w, c, 0, NOW - 1000);
	w.models[c].running = 1; /* busy: never a victim */
	w.gpus[0].reserved_bytes = 1 * GIB;
	decide(&w); /* 2 - 1 - 1 = 0: satisfied */
	expect_n(&w, 0);

	w.gpus[0].reserved_bytes = 2 * GIB; /* -1: a (LRU among idle) is enough */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);

	w.gpus[0].reserved_bytes = 5 * GIB; /* -4: both idle ones */
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	expect(&w, 1, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	w.gpus[0].reserved_bytes = 6 * GIB; /* -5: cannot be satisfied, evict nothing */
	decide(&w);
	expect_n(&w, 0);

	/* An unload under way already covers the deficit. */
	w.gpus[0].reserved_bytes = 2 * GIB;
	w.models[a].residency = SCHED_UNLOADING;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Room being made for a model is not taken by a lower-ranked one in the same plan. */
static void
test_eviction_claims_room(void **state)
{
	struct world w;
	size_t a, x, y;

	(void)state;
	world_init(&w);
	w.cfg.max_loads_in_flight = 2;
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	x = model_add(&w, "x", 5 * GIB);
	y = model_add(&w, "y", 3 * GIB);
	model_loaded(&w, a, 0, NOW - 1);
	model_queue(&w, x, JOB_PRIO_HIGH, 1, NOW - 10);
	model_queue(&w, y, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w); /* y alone would fit now (3 GiB usable), but x counts on that */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Busy models (running or queued jobs) are never evicted; an eviction that would not
 * make room is not made. */
static void
test_never_evict_busy(void **state)
{
	struct world w;
	size_t a, b, c, x;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	c = model_add(&w, "c", 2 * GIB);
	x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, 0, NOW - 900);
	model_loaded(&w, b, 0, NOW - 800);
	model_loaded(&w, c, 0, NOW - 100);
	w.models[a].running = 1;			 /* busy: running */
	w.models[b].running = 2;			 /* at its cap, and ... */
	model_queue(&w, b, JOB_PRIO_NORMAL, 1, NOW - 5); /* busy: queued */
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, c, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* x needs 5 GiB: only c is idle, 1 + 2 < 5, so nothing is evicted. */
	w.models[x].footprint_bytes = 5 * GIB;
	decide(&w);
	expect_n(&w, 0);

	/* LOADING and UNLOADING models are not victims either. */
	w.models[x].footprint_bytes = 3 * GIB;
	w.models[c].residency = SCHED_LOADING;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* A job of an unloaded model that waited past max_batch_wait stops the feeding of the
 * model that blocks it; once that one drains it is unloaded and the job's model loads. */
static void
test_starvation_bound(void **state)
{
	struct world w;
	size_t a, x;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 5 * GIB);
	x = model_add(&w, "x", 5 * GIB);
	model_loaded(&w, a, 0, NOW - 1);
	w.models[a].running = 1;
	model_queue(&w, a, JOB_PRIO_NORMAL, 50, NOW - 1000);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - W_MS);

	/* Within the bound: batching by model, a keeps being fed. */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 1, SCHED_REASON_DEMAND);

	/* Past the bound: a gets no new job; it still runs one, so nothing else yet. */
	w.models[x].oldest_enqueued_ms[JOB_PRIO_NORMAL] = NOW - W_MS - 1;
	decide(&w);
	expect_n(&w, 0);

	/* a drained: it is unloaded although it has queued jobs. */
	w.models[a].running = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* a's memory is back: x loads, for starvation. */
	w.models[a].residency = SCHED_UNLOADED;
	w.gpus[0].free_bytes += 5 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, x, 0, 0, SCHED_REASON_STARVATION);

	/* x loaded; a's jobs now starve too, but x's job is older: x is served first,
	 * not drained right away (no swap without progress). */
	w.models[x].residency = SCHED_LOADED;
	w.models[x].gpu = 0;
	w.gpus[0].free_bytes -= 5 * GIB;
	w.models[x].oldest_enqueued_ms[JOB_PRIO_NORMAL] = NOW - W_MS - 500;
	w.models[a].oldest_enqueued_ms[JOB_PRIO_NORMAL] = NOW - W_MS - 100;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, x, 0, 1, SCHED_REASON_STARVATION);

	/* Had a's job been waiting longer, x would make way (it runs nothing). */
	w.models[a].oldest_enqueued_ms[JOB_PRIO_NORMAL] = NOW - W_MS - 900;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, x, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* A starving job outranks priority: a low-priority job past the bound loads before a
 * fresh high-priority one, and stops the feeding of a model with high-priority work. */
static void
test_starvation_beats_priority(void **state)
{
	struct world w;
	size_t a, x, y;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	x = model_add(&w, "x", 2 * GIB);
	y = model_add(&w, "y", 2 * GIB);
	model_queue(&w, x, JOB_PRIO_LOW, 1, NOW - W_MS - 1);
	model_queue(&w, y, JOB_PRIO_HIGH, 1, NOW - 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, x, 0, 0, SCHED_REASON_STARVATION);

	/* x needs a's room; a has a high-priority job queued and none running. */
	world_cleanup(&w);
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 5 * GIB);
	x = model_add(&w, "x", 5 * GIB);
	model_loaded(&w, a, 0, NOW - 1);
	model_queue(&w, a, JOB_PRIO_HIGH, 4, NOW - 5);
	model_queue(&w, x, JOB_PRIO_LOW, 1, NOW - W_MS + 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 2, SCHED_REASON_DEMAND);
	model_queue(&w, x, JOB_PRIO_LOW, 1, NOW - W_MS - 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Across models, higher-priority waiting jobs are served first, then older ones. */
static void
test_priority_order(void **state)
{
	struct world w;
	size_t a, b, c, x, y;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	c = model_add(&w, "c", 2 * GIB);
	model_loaded(&w, a, 0, NOW - 1);
	model_loaded(&w, b, 0, NOW - 1);
	model_loaded(&w, c, 0, NOW - 1);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 500);
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - 10);
	model_queue(&w, c, JOB_PRIO_LOW, 1, NOW - 900);
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 100);
	decide(&w);
	expect_n(&w, 3);
	expect(&w, 0, SCHED_ACTION_DISPATCH, b, 0, 1, SCHED_REASON_DEMAND);
	expect(&w, 1, SCHED_ACTION_DISPATCH, a, 0, 1, SCHED_REASON_DEMAND);
	expect(&w, 2, SCHED_ACTION_DISPATCH, c, 0, 2, SCHED_REASON_DEMAND);

	/* One load slot: the model with the high-priority job loads first. */
	x = model_add(&w, "x", 2 * GIB);
	y = model_add(&w, "y", 2 * GIB);
	model_queue(&w, x, JOB_PRIO_NORMAL, 5, NOW - 1000);
	model_queue(&w, y, JOB_PRIO_HIGH, 1, NOW - 1);
	w.models[a].queued[JOB_PRIO_NORMAL] = 0;
	w.models[b].queued[JOB_PRIO_HIGH] = 0;
	w.models[c].queued[JOB_PRIO_LOW] = 0;
	w.models[c].queued[JOB_PRIO_NORMAL] = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, y, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* At most max_concurrent_per_model jobs of a model at once, counting running ones. */
static void
test_concurrency_cap(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	w.cfg.max_concurrent_per_model = 4;
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	model_loaded(&w, a, 0, NOW - 1);
	w.models[a].running = 1;
	model_queue(&w, a, JOB_PRIO_NORMAL, 10, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 3, SCHED_REASON_DEMAND);

	model_queue(&w, a, JOB_PRIO_NORMAL, 2, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 2, SCHED_REASON_DEMAND);

	w.models[a].running = 4;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* The cap scales with the GPU's speed; speed 0 or a lost GPU pauses dispatch; CPU
 * models use the plain cap. */
static void
test_cap_scaled_by_speed(void **state)
{
	static const struct {
		double speed;
		bool available;
		int expect;
	} cases[] = {
	    {1.0, true, 4}, {0.8, true, 3},  {0.5, true, 2},  {0.1, true, 1},
	    {0.0, true, 0}, {1.0, false, 0}, {0.5, false, 0},
	};
	struct world w;
	size_t a, cpu;

	(void)state;
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		world_init(&w);
		w.cfg.max_concurrent_per_model = 4;
		gpu_add(&w, 0, 8 * GIB);
		a = model_add(&w, "a", 2 * GIB);
		model_loaded(&w, a, 0, NOW - 1);
		model_queue(&w, a, JOB_PRIO_NORMAL, 10, NOW - 10);
		w.gpus[0].speed = cases[i].speed;
		w.gpus[0].available = cases[i].available;
		decide(&w);
		if (cases[i].expect == 0) {
			expect_n(&w, 0);
		} else {
			expect_n(&w, 1);
			expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, cases[i].expect,
			       SCHED_REASON_DEMAND);
		}
		world_cleanup(&w);
	}

	world_init(&w);
	w.cfg.max_concurrent_per_model = 4;
	gpu_add(&w, 0, 8 * GIB);
	w.gpus[0].speed = 0.0;
	cpu = model_add(&w, "cpu", 2 * GIB);
	w.models[cpu].residency = SCHED_LOADED;
	w.models[cpu].gpu = SCHED_GPU_CPU;
	model_queue(&w, cpu, JOB_PRIO_NORMAL, 10, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, cpu, SCHED_GPU_CPU, 4, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* Idle models unload after keep_alive; busy ones do not; keep_alive <= 0 never expires. */
static void
test_keep_alive(void **state)
{
	struct world w;
	size_t a, b;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	model_loaded(&w, a, 0, NOW - 300000 + 1);
	model_loaded(&w, b, 0, NOW - 400000);
	w.models[b].running = 1;
	decide(&w);
	expect_n(&w, 0);

	w.models[a].last_used_ms = NOW - 300000;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_KEEP_ALIVE);

	w.cfg.keep_alive_ms = 0;
	decide(&w);
	expect_n(&w, 0);
	w.cfg.keep_alive_ms = -1;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* A client's keep_alive hint (keep_until_ms) delays the keep-alive unload of an idle
 * model, but never an unload that makes room for a model with waiting jobs. */
static void
test_keep_alive_hint(void **state)
{
	struct world w;
	size_t a, c;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	model_loaded(&w, a, 0, NOW - 400000);
	w.models[a].keep_until_ms = NOW + 1;
	decide(&w);
	expect_n(&w, 0);
	w.models[a].keep_until_ms = NOW;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_KEEP_ALIVE);

	/* Another model needs its memory: the hint does not keep it. */
	w.models[a].keep_until_ms = NOW + 3600000;
	w.models[a].last_used_ms = NOW - 1000;
	c = model_add(&w, "c", 4 * GIB);
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	assert_true(w.plan.nactions >= 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* A model the server spilled partly to the CPU is a wrong placement: it keeps serving
 * its queued and running jobs, and is unloaded (relocate) as soon as it is idle, long
 * before its keep-alive, so its next load is planned with the footprint learnt. */
static void
test_spilled_model_unloaded_when_idle(void **state)
{
	struct world w;
	size_t a, b;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 2 * GIB);
	b = model_add(&w, "b", 2 * GIB);
	model_loaded(&w, a, 0, NOW - 1000);
	model_loaded(&w, b, 0, NOW - 1000);
	w.models[a].spilled = true;
	w.models[a].running = 1;
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	/* Busy and wanted: it keeps its job flowing, nothing is unloaded. */
	for (size_t i = 0; i < w.plan.nactions; i++)
		assert_int_not_equal(w.plan.actions[i].type, SCHED_ACTION_UNLOAD);

	w.models[a].running = 0;
	memset(w.models[a].queued, 0, sizeof(w.models[a].queued));
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_RELOCATE);

	/* Without the flag the same idle model stays for its keep-alive. */
	w.models[a].spilled = false;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Where the CPU is allowed, a spilled idle model is accepted where it is while no GPU
 * has room for all of it, and moved (unloaded, to load whole) once one has. */
static void
test_spilled_model_accepted_where_cpu_allowed(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	a = model_add(&w, "a", 6 * GIB);
	model_loaded(&w, a, 0, NOW - 1000);
	w.models[a].spilled = true;
	w.cfg.allow_cpu = true;
	w.models[a].cpu_allowed = true;
	w.gpus[0].free_bytes = 3 * GIB; /* less than its footprint */
	decide(&w);
	expect_n(&w, 0);

	w.gpus[0].free_bytes = 7 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_RELOCATE);

	/* Without ALLOW_CPU it is unloaded once idle, room or not. */
	w.gpus[0].free_bytes = 3 * GIB;
	w.cfg.allow_cpu = false;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_RELOCATE);
	world_cleanup(&w);
}

/* Several GPUs: best fit (least leftover, ties to the lower id); a paused GPU takes
 * nothing new, and a model stuck on it moves to another GPU that fits it. */
static void
test_multi_gpu(void **state)
{
	struct world w;
	size_t a, b;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 12 * GIB);
	gpu_add(&w, 2, 6 * GIB);
	gpu_add(&w, 1, 6 * GIB);
	gpu_add(&w, 3, 4 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 1, 0, SCHED_REASON_DEMAND);

	w.gpus[2].speed = 0.0; /* id 1 paused (CRITICAL) */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 2, 0, SCHED_REASON_DEMAND);
	w.gpus[1].available = false; /* id 2 lost */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);

	/* b sits on paused id 1 with jobs waiting: while it runs one, it finishes there. */
	b = model_add(&w, "b", 4 * GIB);
	w.models[a].queued[JOB_PRIO_NORMAL] = 0;
	model_loaded(&w, b, 2, NOW - 10);
	w.models[b].running = 1;
	model_queue(&w, b, JOB_PRIO_NORMAL, 3, NOW - 10);
	decide(&w);
	expect_n(&w, 0);
	/* Drained: it is unloaded to be loaded where it fits (id 0). */
	w.models[b].running = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 1, 0, SCHED_REASON_RELOCATE);
	/* Two models want to leave, id 0 holds only one of them: one goes. */
	{
		size_t c = model_add(&w, "c", 4 * GIB);
		w.gpus[2].free_bytes += 4 * GIB;
		model_loaded(&w, c, 2, NOW - 10);
		model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
		w.gpus[0].free_bytes = 8 * GIB;
		decide(&w);
		expect_n(&w, 1);
		expect(&w, 0, SCHED_ACTION_UNLOAD, b, 1, 0, SCHED_REASON_RELOCATE);
		w.models[c].queued[JOB_PRIO_NORMAL] = 0;
		w.gpus[0].free_bytes = 12 * GIB;
	}
	w.models[b].residency = SCHED_UNLOADED;
	w.gpus[2].free_bytes += 4 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* CPU placement only when allowed and no GPU could ever hold the model now. */
static void
test_cpu_fallback(void **state)
{
	struct world w;
	size_t big, busy;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	w.gpus[0].free_bytes = 3 * GIB; /* another program holds 5 GiB */
	w.snap.cpu_free_bytes = 32 * GIB;
	big = model_add(&w, "big", 6 * GIB);
	model_queue(&w, big, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 0); /* CPU not allowed by config */

	w.cfg.allow_cpu = true;
	decide(&w);
	expect_n(&w, 0); /* nor by the model */

	w.models[big].cpu_allowed = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, big, SCHED_GPU_CPU, 0, SCHED_REASON_DEMAND);

	w.snap.cpu_free_bytes = 6 * GIB - 1;
	decide(&w);
	expect_n(&w, 0);

	/* The GPU would fit it once a busy model of ours is done: wait for the GPU. */
	w.snap.cpu_free_bytes = 32 * GIB;
	w.gpus[0].free_bytes = 8 * GIB;
	busy = model_add(&w, "busy", 3 * GIB);
	model_loaded(&w, busy, 0, NOW - 10);
	w.models[busy].running = 1;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/*
 * Per-request placement (issue 11), as the engine hands it to the scheduler: jobs of
 * placement gpu make the model SCHED_PLACE_GPU, jobs that must go to the CPU make it
 * SCHED_PLACE_CPU, jobs of placement any leave it automatic with cpu_fallback.
 */
static void
test_request_placement(void **state)
{
	struct world w;
	size_t m, big;

	(void)state;
	world_init(&w);
	w.cfg.allow_cpu = true; /* even with the CPU allowed, gpu never goes there */
	gpu_add(&w, 0, 8 * GIB);
	w.gpus[0].free_bytes = 3 * GIB; /* another program holds 5 GiB */
	w.snap.cpu_free_bytes = 32 * GIB;
	m = model_add(&w, "phi3", 4 * GIB);
	w.models[m].cpu_allowed = true;
	model_queue(&w, m, JOB_PRIO_NORMAL, 1, NOW - 10);

	/* gpu: no GPU has room now, it waits (never the CPU), and it could fit one day. */
	w.models[m].placement = SCHED_PLACE_GPU;
	decide(&w);
	expect_n(&w, 0);
	assert_true(sched_model_can_ever_fit(&w.snap, m));

	/* any: automatic placement; the CPU once no GPU can hold it, even with ALLOW_CPU off
	 * (cpu_fallback), but not without it. */
	w.models[m].placement = SCHED_PLACE_AUTO;
	w.cfg.allow_cpu = false;
	decide(&w);
	expect_n(&w, 0);
	w.models[m].cpu_fallback = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, m, SCHED_GPU_CPU, 0, SCHED_REASON_DEMAND);
	/* any with room on the GPU takes the GPU. */
	w.gpus[0].free_bytes = 8 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, m, 0, 0, SCHED_REASON_DEMAND);

	/* cpu: the CPU although the GPU has room. */
	w.models[m].cpu_fallback = false;
	w.models[m].placement = SCHED_PLACE_CPU;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, m, SCHED_GPU_CPU, 0, SCHED_REASON_DEMAND);

	/* gpu on a model bigger than any GPU can ever hold: it can never fit (the daemon fails
	 * its jobs at once), with the CPU allowed and host memory to spare. */
	w.cfg.allow_cpu = true;
	w.snap.cpu_total_bytes = 64 * GIB;
	big = model_add(&w, "big", 12 * GIB);
	w.models[big].cpu_allowed = true;
	w.models[big].placement = SCHED_PLACE_GPU;
	model_queue(&w, big, JOB_PRIO_HIGH, 1, NOW - 10);
	w.snap.nmodels = w.nmodels;
	assert_false(sched_model_can_ever_fit(&w.snap, big));
	w.models[big].placement = SCHED_PLACE_AUTO; /* any: the CPU can hold it */
	assert_true(sched_model_can_ever_fit(&w.snap, big));
	w.models[big].placement = SCHED_PLACE_GPU;

	/* gpu on a model resident on the CPU: moved to the GPU once idle (it has room). */
	w.models[m].placement = SCHED_PLACE_GPU;
	w.models[m].residency = SCHED_LOADED;
	w.models[m].gpu = SCHED_GPU_CPU;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, m, SCHED_GPU_CPU, 0, SCHED_REASON_PLACEMENT);
	world_cleanup(&w);
}

/* A model that can never fit does not block others. */
static void
test_never_fits_does_not_block(void **state)
{
	struct world w;
	size_t huge, small;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	huge = model_add(&w, "huge", 40 * GIB);
	small = model_add(&w, "small", 2 * GIB);
	model_queue(&w, huge, JOB_PRIO_HIGH, 3, NOW - 100000);
	model_queue(&w, small, JOB_PRIO_LOW, 1, NOW - 1);
	assert_false(sched_model_can_ever_fit(&w.snap, huge));
	decide(&w);
	assert_false(sched_model_can_ever_fit(&w.snap, huge));
	assert_true(sched_model_can_ever_fit(&w.snap, small));
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, small, 0, 0, SCHED_REASON_DEMAND);

	/* With CPU allowed and enough host memory it can. */
	w.cfg.allow_cpu = true;
	w.models[huge].cpu_allowed = true;
	w.snap.cpu_total_bytes = 64 * GIB;
	assert_true(sched_model_can_ever_fit(&w.snap, huge));
	world_cleanup(&w);
}

/* Random worlds for the invariant and determinism checks. */
static void
random_world(struct world *w, uint64_t *seed)
{
	world_init(w);
	w->cfg.max_loads_in_flight = 1 + (int)(vd_rand64(seed) % 3);
	w->cfg.max_concurrent_per_model = 1 + (int)(vd_rand64(seed) % 4);
	w->cfg.allow_cpu = vd_rand64(seed) % 2;
	w->snap.cpu_free_bytes = (vd_rand64(seed) % 32) * GIB;
	for (int g = 0, n = 1 + (int)(vd_rand64(seed) % 4); g < n; g++) {
		size_t gi = gpu_add(w, g, (4 + vd_rand64(seed) % 20) * GIB);
		static const double speeds[] = {1.0, 0.8, 0.5, 0.0};
		w->gpus[gi].speed = speeds[vd_rand64(seed) % 4];
		w->gpus[gi].available = vd_rand64(seed) % 8 != 0;
		w->gpus[gi].free_bytes -= (vd_rand64(seed) % 3) * GIB;
		w->gpus[gi].reserved_bytes = (vd_rand64(seed) % 2) * GIB;
	}
	for (int m = 0, n = 1 + (int)(vd_rand64(seed) % 20); m < n; m++) {
		size_t mi = model_add(w, "m", (1 + vd_rand64(seed) % 8) * GIB);
		size_t gi = vd_rand64(seed) % w->ngpus;
		uint64_t r = vd_rand64(seed) % 10;

		w->models[mi].cpu_allowed = vd_rand64(seed) % 2;
		/* Issue 11, per-request placement: gpu, cpu, any (automatic, CPU fallback). */
		switch (vd_rand64(seed) % 4) {
		case 0:
			w->models[mi].placement = SCHED_PLACE_GPU;
			break;
		case 1:
			w->models[mi].placement = SCHED_PLACE_CPU;
			break;
		case 2:
			w->models[mi].cpu_fallback = true;
			break;
		default:
			break;
		}
		if (r < 4 && w->gpus[gi].free_bytes >= w->models[mi].footprint_bytes) {
			model_loaded(w, mi, gi, NOW - (int64_t)(vd_rand64(seed) % 600000));
			w->models[mi].running = (int)(vd_rand64(seed) % 3);
			if (r == 3)
				w->models[mi].residency = SCHED_UNLOADING;
		}
		for (int p = 0; p < JOB_NPRIORITIES; p++)
			if (vd_rand64(seed) % 3 == 0) {
				model_queue(w, mi, (enum job_priority)p,
					    1 + (int)(vd_rand64(seed) % 20),
					    NOW - (int64_t)(vd_rand64(seed) % 60000));
				/* Deadlines: some, a few already missed. */
				if (vd_rand64(seed) % 2)
					w->models[mi].deadline_ms[p] =
					    NOW - 5000 + (int64_t)(vd_rand64(seed) % 60000);
			}
		/* Issue 11: learned statistics, some models on the CPU, pre-warmed ones. */
		if (vd_rand64(seed) % 2) {
			w->models[mi].arrival_rate = (double)(vd_rand64(seed) % 100) / 50.0;
			w->models[mi].load_ms = (int64_t)(vd_rand64(seed) % 10000);
			w->models[mi].run_ms = (int64_t)(vd_rand64(seed) % 10000);
		}
		if (w->models[mi].residency == SCHED_LOADED) {
			w->models[mi].prewarmed = vd_rand64(seed) % 4 == 0;
			if (vd_rand64(seed) % 4 == 0) {
				w->gpus[gi].free_bytes += w->models[mi].footprint_bytes;
				w->models[mi].gpu = SCHED_GPU_CPU;
			}
		}
	}
	w->cfg.priority_aging_ms = (int64_t)(vd_rand64(seed) % 3) * 20000;
	w->cfg.prewarm = vd_rand64(seed) % 2;
	w->cfg.min_swap_batch = (int)(vd_rand64(seed) % 4);
	w->cfg.host_memory_min_bytes = (vd_rand64(seed) % 3) * 8 * GIB;
	w->snap.cpu_total_bytes = (vd_rand64(seed) % 2) * 64 * GIB;
	w->cfg.max_models_per_gpu = vd_rand64(seed) % 3 == 0 ? 1 + (int)(vd_rand64(seed) % 3) : 0;
	w->cfg.pinned_only = vd_rand64(seed) % 4 == 0;
	for (size_t g = 0; g < w->ngpus; g++)
		if (vd_rand64(seed) % 8 == 0) {
			w->gpus[g].shutdown = true;
			w->gpus[g].available = false;
		}
}

/* How urgent a model's next job is, as the rules say (written here from the rules, not
 * taken from the scheduler): its best class after aging, whether a job of that class
 * has a deadline, and the least slack among those. */
struct urgency {
	int cls;
	bool deadline;
	int64_t slack;
};

static struct urgency
model_urgency(const struct world *w, size_t i)
{
	const struct sched_model *m = &w->models[i];
	struct urgency u = {.cls = JOB_NPRIORITIES};
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		if (m->queued[p] > 0) {
			int eff = job_effective_priority(p, m->oldest_enqueued_ms[p], NOW,
							 w->cfg.priority_aging_ms);
			u.cls = eff < u.cls ? eff : u.cls;
		}
	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		if (m->queued[p] <= 0 || m->deadline_ms[p] <= 0 ||
		    job_effective_priority(p, m->oldest_enqueued_ms[p], NOW,
					   w->cfg.priority_aging_ms) != u.cls)
			continue;
		int64_t slack = m->deadline_ms[p] - NOW - m->run_ms;
		if (!u.deadline || slack < u.slack)
			u.slack = slack;
		u.deadline = true;
	}
	return u;
}

/* Plans keep their invariants on random snapshots. */
/* Whether m sits on a GPU in shutdown (a split model: on any), from the rule. */
static bool
model_on_shutdown_gpu(const struct world *w, const struct sched_model *m)
{
	for (size_t g = 0; g < w->ngpus; g++)
		if (w->gpus[g].shutdown && (m->gpu == w->gpus[g].id || m->gpu == SCHED_GPU_SPLIT))
			return true;
	return false;
}

static void
test_invariants_random(void **state)
{
	uint64_t seed = 42;
	int prewarms = 0, host_unloads = 0, deadline_orders = 0, cpu_loads = 0, capped = 0;
	int evacuated = 0;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		struct world w;
		int64_t used[MAX_GPUS] = {0};
		bool seen[MAX_MOD] = {0};
		int loads = 0, on_gpu[MAX_GPUS] = {0}, nsplit = 0;
		int64_t margin, cpu_loaded = 0;
		bool make_room = false, prewarm = false, any_queued = false;

		random_world(&w, &seed);
		decide(&w);
		margin = (int64_t)w.cfg.safety_margin_bytes;
		/* Models on each GPU before the plan (MODEL_CACHE_SIZE counts every one that is
		 * not unloaded, and a split one on each GPU). */
		for (size_t i = 0; i < w.nmodels; i++) {
			if (w.models[i].residency == SCHED_UNLOADED)
				continue;
			nsplit += w.models[i].gpu == SCHED_GPU_SPLIT;
			for (size_t g = 0; g < w.ngpus; g++)
				on_gpu[g] += w.gpus[g].id == w.models[i].gpu;
		}
		for (size_t i = 0; i < w.nmodels; i++)
			for (int p = 0; p < JOB_NPRIORITIES; p++)
				any_queued = any_queued || w.models[i].queued[p] > 0;
		for (size_t i = 0; i < w.plan.nactions; i++) {
			const struct sched_action *a = &w.plan.actions[i];
			const struct sched_model *m = &w.models[a->model];
			int queued = m->queued[0] + m->queued[1] + m->queued[2];

			assert_true(a->model < w.nmodels);
			assert_false(seen[a->model]); /* one action per model */
			seen[a->model] = true;
			if (i > 0) /* unloads, then loads, then dispatches */
				assert_true(w.plan.actions[i - 1].type <= a->type);
			switch (a->type) {
			case SCHED_ACTION_UNLOAD:
				assert_int_equal(m->residency, SCHED_LOADED);
				if (a->reason == SCHED_REASON_SHUTDOWN) {
					evacuated++;
					assert_true(model_on_shutdown_gpu(&w, m));
					break;
				}
				assert_int_equal(m->running, 0);
				make_room = make_room || a->reason == SCHED_REASON_MAKE_ROOM;
				if (a->reason == SCHED_REASON_MAKE_ROOM ||
				    a->reason == SCHED_REASON_KEEP_ALIVE ||
				    a->reason == SCHED_REASON_HOST_MEMORY)
					assert_false(m->pinned);
				if (a->reason == SCHED_REASON_HOST_MEMORY) {
					host_unloads++;
					assert_int_equal(m->gpu, SCHED_GPU_CPU);
					assert_int_equal(queued, 0);
					assert_true(w.snap.cpu_total_bytes > 0 &&
						    w.snap.cpu_free_bytes <
							w.cfg.host_memory_min_bytes);
				}
				break;
			case SCHED_ACTION_LOAD:
				assert_int_equal(m->residency, SCHED_UNLOADED);
				if (a->reason == SCHED_REASON_PREWARM) {
					/* only a guess when nothing waits, never on the CPU */
					prewarm = true;
					prewarms++;
					assert_true(w.cfg.prewarm);
					assert_false(any_queued);
					assert_true(a->gpu != SCHED_GPU_CPU);
					assert_true(m->arrival_rate > 0);
					assert_true(m->pinned || !w.cfg.pinned_only);
				} else {
					assert_true(queued > 0);
				}
				if (a->gpu == SCHED_GPU_CPU)
					cpu_loaded += (int64_t)m->footprint_bytes;
				loads++;
				if (a->gpu != SCHED_GPU_CPU) {
					size_t g = 0;
					while (w.gpus[g].id != a->gpu)
						g++;
					assert_true(w.gpus[g].available && w.gpus[g].speed > 0);
					if (w.cfg.max_models_per_gpu > 0) {
						assert_true(on_gpu[g] + nsplit <
							    w.cfg.max_models_per_gpu);
						capped++;
					}
					on_gpu[g]++;
					used[g] += (int64_t)m->footprint_bytes;
					assert_true(used[g] <=
						    (int64_t)w.gpus[g].free_bytes -
							(int64_t)w.gpus[g].pending_bytes -
							(int64_t)w.gpus[g].reserved_bytes - margin);
				} else {
					/* A gpu-only model is never planned on the CPU. */
					assert_true(m->placement != SCHED_PLACE_GPU);
					cpu_loads++;
					assert_true(m->placement == SCHED_PLACE_CPU ||
						    ((w.cfg.allow_cpu || m->cpu_fallback) &&
						     m->cpu_allowed));
				}
				break;
			case SCHED_ACTION_DISPATCH:
				assert_int_equal(m->residency, SCHED_LOADED);
				assert_true(a->count > 0 && a->count <= queued);
				assert_true(m->running + a->count <=
					    w.cfg.max_concurrent_per_model);
				break;
			}
		}
		assert_true(loads <= w.cfg.max_loads_in_flight);
		/* Dispatch order: starving models first; then by class, a deadline before none,
		 * the least slack first. */
		const struct sched_action *prev = NULL;
		for (size_t i = 0; i < w.plan.nactions; i++) {
			const struct sched_action *a = &w.plan.actions[i];
			if (a->type != SCHED_ACTION_DISPATCH)
				continue;
			if (prev != NULL && prev->reason == SCHED_REASON_DEMAND)
				assert_int_equal(a->reason, SCHED_REASON_DEMAND);
			if (prev != NULL && a->reason == SCHED_REASON_DEMAND &&
			    prev->reason == SCHED_REASON_DEMAND) {
				struct urgency u0 = model_urgency(&w, prev->model);
				struct urgency u1 = model_urgency(&w, a->model);
				assert_true(u0.cls <= u1.cls);
				if (u0.cls == u1.cls) {
					assert_true(u0.deadline || !u1.deadline);
					if (u0.deadline && u1.deadline)
						assert_true(u0.slack <= u1.slack);
					if (u0.deadline)
						deadline_orders++;
				}
			}
			prev = a;
		}
		/* Every loaded model on a GPU in shutdown leaves it, whatever it does. */
		for (size_t i = 0; i < w.nmodels; i++)
			if (w.models[i].residency == SCHED_LOADED &&
			    model_on_shutdown_gpu(&w, &w.models[i]))
				assert_true(seen[i]);
		/* Pre-warm never evicts; CPU loads leave HOST_MEMORY_MIN_MB available. */
		assert_false(prewarm && make_room);
		if (w.snap.cpu_total_bytes > 0 && cpu_loaded > 0)
			assert_true(cpu_loaded <= (int64_t)w.snap.cpu_free_bytes -
						      (int64_t)w.cfg.host_memory_min_bytes);
		world_cleanup(&w);
	}
	/* The random worlds do reach the new rules. */
	assert_true(prewarms > 0);
	assert_true(host_unloads > 0);
	assert_true(deadline_orders > 0);
	assert_true(cpu_loads > 0);
	assert_true(capped > 0);
	assert_true(evacuated > 0);
}

static void
expect_same_plan(const struct sched_plan *a, const struct sched_plan *b)
{
	assert_int_equal(a->nactions, b->nactions);
	for (size_t i = 0; i < a->nactions; i++) {
		assert_int_equal(a->actions[i].type, b->actions[i].type);
		assert_int_equal(a->actions[i].model, b->actions[i].model);
		assert_int_equal(a->actions[i].gpu, b->actions[i].gpu);
		assert_int_equal(a->actions[i].count, b->actions[i].count);
		assert_int_equal(a->actions[i].reason, b->actions[i].reason);
	}
}

/* The same snapshot gives the same plan, with a fresh plan or a reused one. */
static void
test_determinism(void **state)
{
	uint64_t seed = 7;
	size_t nonempty = 0;

	(void)state;
	for (int round = 0; round < 200; round++) {
		struct world w;
		struct sched_plan other;

		random_world(&w, &seed);
		decide(&w);
		nonempty += w.plan.nactions > 0;
		sched_plan_init(&other);
		sched_decide(&w.snap, &other);
		expect_same_plan(&w.plan, &other);
		sched_decide(&w.snap, &other); /* reused plan and scratch */
		expect_same_plan(&w.plan, &other);
		sched_plan_cleanup(&other);
		world_cleanup(&w);
	}
	assert_true(nonempty > 100); /* the random worlds do exercise the scheduler */
}

/* At the resident-model cap, the LRU idle model is unloaded first; the load waits. */
static void
test_resident_cap(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_loaded_models = 2;
	size_t g = gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 1 * GIB);
	size_t c = model_add(&w, "c", 1 * GIB);
	model_loaded(&w, a, g, NOW - 5000);
	model_loaded(&w, b, g, NOW - 9000);
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* While that unload is under way, nothing more is evicted and nothing loads. */
	w.models[b].residency = SCHED_UNLOADING;
	decide(&w);
	expect_n(&w, 0);

	/* Once it is gone, c loads. */
	w.models[b].residency = SCHED_UNLOADED;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* Swap batching: while a resident model works, a model whose load needs an eviction
 * waits for min_swap_batch queued jobs, unless one is high priority or starving; a load
 * into free room, or onto an idle GPU, never waits. */
static void
test_swap_batching(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.min_swap_batch = 2;
	w.cfg.max_loaded_models = 2;
	size_t g = gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 1 * GIB);
	size_t c = model_add(&w, "c", 1 * GIB);
	model_loaded(&w, a, g, NOW - 5000);
	model_loaded(&w, b, g, NOW - 9000);

	/* Nothing resident is working: one job for c swaps at once. */
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* While a works, one normal job for c is not worth unloading b yet. */
	w.models[a].running = 1;
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 0);

	/* A second one makes the swap worth it: b (LRU) goes. */
	model_queue(&w, c, JOB_PRIO_NORMAL, 2, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* A single high-priority job is worth it at once. */
	model_queue(&w, c, JOB_PRIO_NORMAL, 0, 0);
	model_queue(&w, c, JOB_PRIO_HIGH, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* So is a single job that has waited past max_batch_wait. */
	model_queue(&w, c, JOB_PRIO_HIGH, 0, 0);
	model_queue(&w, c, JOB_PRIO_LOW, 1, NOW - W_MS - 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* Below the resident cap, with free memory, one job loads at once. */
	w.cfg.max_loaded_models = 3;
	model_queue(&w, c, JOB_PRIO_LOW, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* A pinned model is never unloaded by keep-alive, to make room, nor for the resident cap;
 * a wanted (pinned) model with no job is loaded, after every model with jobs. */
static void
test_pinned(void **state)
{
	struct world w;
	size_t p, b, c;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 8 * GIB);
	p = model_add(&w, "pinned", 4 * GIB);
	b = model_add(&w, "b", 4 * GIB);
	model_loaded(&w, p, 0, NOW - 10 * 300000);
	w.models[p].pinned = true;
	decide(&w);
	expect_n(&w, 0);
	w.models[p].pinned = false;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, p, 0, 0, SCHED_REASON_KEEP_ALIVE);

	/* b needs p's room (4 + 4 GiB > 8 - 1): an unpinned p is evicted, a pinned one not. */
	w.cfg.keep_alive_ms = 0;
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, p, 0, 0, SCHED_REASON_MAKE_ROOM);
	w.models[p].pinned = true;
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - W_MS - 1); /* even starving */
	decide(&w);
	expect_n(&w, 0);

	/* Nor for the resident cap. */
	w.cfg.max_loaded_models = 1;
	w.models[b].footprint_bytes = 1 * GIB;
	decide(&w);
	expect_n(&w, 0);

	/* Unloaded and wanted: loaded with no job, after the models that have jobs. */
	w.cfg.max_loaded_models = 0;
	w.gpus[0].free_bytes = 8 * GIB;
	w.models[p].residency = SCHED_UNLOADED;
	w.models[p].wanted = true;
	w.cfg.max_loads_in_flight = 2;
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_STARVATION);
	expect(&w, 1, SCHED_ACTION_LOAD, p, 0, 0, SCHED_REASON_WANTED);
	w.models[p].wanted = false;
	c = model_add(&w, "c", 1 * GIB);
	(void)c;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_STARVATION);
	world_cleanup(&w);
}

/* The optimizer moves an idle gpu_priority model off the CPU when a GPU has room, or can
 * make it from idle models that are neither pinned nor priority; only when it runs. */
static void
test_optimizer_moves_priority_model(void **state)
{
	struct world w;
	size_t pr, idle, busy;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 12 * GIB);
	pr = model_add(&w, "prio", 5 * GIB);
	idle = model_add(&w, "idle", 4 * GIB);
	busy = model_add(&w, "busy", 4 * GIB);
	w.models[pr].residency = SCHED_LOADED;
	w.models[pr].gpu = SCHED_GPU_CPU;
	w.models[pr].last_used_ms = NOW - 10;
	w.models[pr].gpu_priority = true;
	model_loaded(&w, idle, 0, NOW - 20);
	model_loaded(&w, busy, 0, NOW - 30);
	w.models[busy].running = 1;

	/* Not its time: nothing. */
	decide(&w);
	expect_n(&w, 0);

	/* 12 - 8 - 1 = 3 GiB free: the idle model goes, then prio. */
	w.snap.optimize = true;
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, idle, 0, 0, SCHED_REASON_MAKE_ROOM);
	expect(&w, 1, SCHED_ACTION_UNLOAD, pr, SCHED_GPU_CPU, 0, SCHED_REASON_OPTIMIZE);

	/* A pinned or priority neighbour is never the victim: no room, it stays. */
	w.models[idle].pinned = true;
	decide(&w);
	expect_n(&w, 0);
	w.models[idle].pinned = false;
	w.models[idle].gpu_priority = true;
	decide(&w);
	expect_n(&w, 0);
	w.models[idle].gpu_priority = false;

	/* A running job of prio is never interrupted. */
	w.models[pr].running = 1;
	decide(&w);
	expect_n(&w, 0);
	w.models[pr].running = 0;

	/* With the room free, prio alone is unloaded; once unloaded and wanted on a GPU it
	 * loads there. */
	w.gpus[0].free_bytes += 4 * GIB;
	w.models[idle].residency = SCHED_UNLOADED;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, pr, SCHED_GPU_CPU, 0, SCHED_REASON_OPTIMIZE);
	w.models[pr].residency = SCHED_UNLOADED;
	w.models[pr].wanted = true;
	w.models[pr].placement = SCHED_PLACE_GPU;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, pr, 0, 0, SCHED_REASON_WANTED);

	/* A GPU placement never falls back to the CPU, even with CPU allowed. */
	w.cfg.allow_cpu = true;
	w.models[pr].cpu_allowed = true;
	w.gpus[0].free_bytes = 2 * GIB;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Forced placements: a model on the wrong side drains (no new dispatch) and is unloaded
 * once idle; an unloaded one loads only where its placement allows. */
static void
test_forced_placement(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 16 * GIB);
	gpu_add(&w, 1, 16 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	model_loaded(&w, a, 0, NOW - 10);
	model_queue(&w, a, JOB_PRIO_NORMAL, 3, NOW - 10);
	w.models[a].running = 1;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 1, SCHED_REASON_DEMAND);

	/* Forced to the CPU (ALLOW_CPU off): no dispatch while its job runs, then unloaded. */
	w.snap.cpu_free_bytes = 32 * GIB;
	w.models[a].placement = SCHED_PLACE_CPU;
	decide(&w);
	expect_n(&w, 0);
	w.models[a].running = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_PLACEMENT);
	w.models[a].residency = SCHED_UNLOADED;
	w.gpus[0].free_bytes = 16 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, SCHED_GPU_CPU, 0, SCHED_REASON_DEMAND);
	assert_true(sched_model_can_ever_fit(&w.snap, a));
	w.snap.cpu_free_bytes = 1 * GIB;
	decide(&w);
	expect_n(&w, 0);

	/* Forced to GPU 1: loads there although GPU 0 fits as well. */
	w.models[a].placement = SCHED_PLACE_GPU_ID;
	w.models[a].placement_gpu = 1;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 1, 0, SCHED_REASON_DEMAND);
	/* Resident on GPU 0 with nothing running: moved. */
	model_loaded(&w, a, 0, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_PLACEMENT);
	/* A GPU placement on a model that spilled counts as misplaced too. */
	w.models[a].placement = SCHED_PLACE_GPU;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 2, SCHED_REASON_DEMAND);
	w.models[a].spilled = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_PLACEMENT);
	world_cleanup(&w);
}

/* unload_requested: no new dispatch, unloaded once no job runs, even with jobs queued. */
static void
test_unload_requested(void **state)
{
	struct world w;
	size_t a;

	(void)state;
	world_init(&w);
	gpu_add(&w, 0, 16 * GIB);
	a = model_add(&w, "a", 4 * GIB);
	model_loaded(&w, a, 0, NOW - 10);
	w.models[a].unload_requested = true;
	w.models[a].running = 1;
	model_queue(&w, a, JOB_PRIO_NORMAL, 3, NOW - 10);
	decide(&w);
	expect_n(&w, 0);
	w.models[a].running = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_REQUESTED);
	world_cleanup(&w);
}

/* Spread: two idle GPUs, the second model goes to the GPU the first left alone. Pack:
 * the GPU with the least room that fits, so the emptier one stays free. */
static void
test_spread_vs_pack(void **state)
{
	struct world w;
	(void)state;

	for (int spread = 0; spread < 2; spread++) {
		world_init(&w);
		w.cfg.spread = spread;
		w.cfg.max_loads_in_flight = 2;
		gpu_add(&w, 0, 24 * GIB);
		gpu_add(&w, 1, 24 * GIB);
		size_t a = model_add(&w, "a", 4 * GIB);
		size_t b = model_add(&w, "b", 4 * GIB);
		model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 2);
		model_queue(&w, b, JOB_PRIO_NORMAL, 1, NOW - 1);
		decide(&w);
		expect_n(&w, 2);
		expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
		expect(&w, 1, SCHED_ACTION_LOAD, b, spread ? 1 : 0, 0, SCHED_REASON_DEMAND);
		world_cleanup(&w);
	}
	/* Pack with uneven GPUs: the one with less free memory that still fits. */
	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	gpu_add(&w, 1, 12 * GIB);
	size_t c = model_add(&w, "c", 4 * GIB);
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 1, 0, SCHED_REASON_DEMAND);
	w.cfg.spread = true;
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);
	/* Spread, equal room: the GPU with fewer models (then less work) wins. */
	w.gpus[0].total_bytes = w.gpus[0].free_bytes = 20 * GIB;
	w.gpus[1].total_bytes = w.gpus[1].free_bytes = 16 * GIB;
	size_t d = model_add(&w, "d", 4 * GIB);
	model_loaded(&w, d, 0, NOW);
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 1, 0, SCHED_REASON_DEMAND);
	w.models[d].residency = SCHED_UNLOADED;
	w.gpus[0].speed = 0.5; /* cooler GPU 1 wins a tie */
	w.gpus[0].free_bytes = 16 * GIB;
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 1, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* MODEL_GPU_MAP: the listed GPUs in order before the policy's choice; one that has no
 * room is skipped. */
static void
test_preferred_gpu_order(void **state)
{
	struct world w;
	int prefer[] = {2, 1};
	(void)state;

	world_init(&w);
	w.cfg.spread = true;
	gpu_add(&w, 0, 24 * GIB);
	gpu_add(&w, 1, 12 * GIB);
	gpu_add(&w, 2, 8 * GIB);
	size_t a = model_add(&w, "a", 4 * GIB);
	w.models[a].preferred_gpus = prefer;
	w.models[a].npreferred = 2;
	model_queue(&w, a, JOB_PRIO_NORMAL, 1, NOW - 1);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 2, 0, SCHED_REASON_DEMAND);
	w.gpus[2].free_bytes = 2 * GIB; /* no room on the first choice */
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 1, 0, SCHED_REASON_DEMAND);
	w.gpus[1].free_bytes = 2 * GIB; /* nor the second: the policy picks */
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* A model larger than any GPU is split over both when they hold it with the overhead on
 * each; without split_overhead_bytes it can never fit; with idle models in the way they
 * are unloaded first. */
/* "Can it ever fit" counts only memory that can ever be free: a split that fits the GPUs'
 * totals but not their totals less the driver's reservation must say no (it used to say
 * yes while no decision could place it, so its jobs waited silently). */
static void
test_split_capacity_excludes_driver_reserve(void **state)
{
	struct world w;
	(void)state;

	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	gpu_add(&w, 1, 24 * GIB);
	/* Room per GPU: 24 GiB - 1 GiB margin - 2 GiB overhead = 21 GiB; the rest of the
	 * footprint beyond the overhead (41.5 GiB) fits 42 GiB, not 41. */
	size_t big = model_add(&w, "big", 43 * GIB + GIB / 2);
	w.models[big].split_overhead_bytes = 2 * GIB;
	model_queue(&w, big, JOB_PRIO_NORMAL, 1, NOW - 1);
	w.snap.config = &w.cfg;
	w.snap.gpus = w.gpus;
	w.snap.ngpus = w.ngpus;
	w.snap.models = w.models;
	w.snap.nmodels = w.nmodels;
	assert_true(sched_model_can_ever_fit(&w.snap, big));
	for (size_t g = 0; g < w.ngpus; g++) {
		w.gpus[g].driver_reserved_bytes = GIB / 2;
		w.gpus[g].free_bytes = w.gpus[g].total_bytes - GIB / 2;
	}
	assert_false(sched_model_can_ever_fit(&w.snap, big));
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

static void
test_split_placement(void **state)
{
	struct world w;
	(void)state;

	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	gpu_add(&w, 1, 24 * GIB);
	size_t big = model_add(&w, "big", 30 * GIB);
	model_queue(&w, big, JOB_PRIO_NORMAL, 1, NOW - 1);
	w.snap.config = &w.cfg;
	w.snap.gpus = w.gpus;
	w.snap.ngpus = w.ngpus;
	w.snap.models = w.models;
	w.snap.nmodels = w.nmodels;
	assert_false(sched_model_can_ever_fit(&w.snap, big));
	decide(&w);
	expect_n(&w, 0);

	w.models[big].split_overhead_bytes = 2 * GIB;
	assert_true(sched_model_can_ever_fit(&w.snap, big));
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, big, SCHED_GPU_SPLIT, 0, SCHED_REASON_DEMAND);
	const struct sched_split *sp = &w.plan.splits[w.plan.actions[0].split];
	assert_int_equal(sp->ngpus, 2);
	assert_int_equal(sp->gpu[0], 0);
	assert_int_equal(sp->gpu[1], 1);
	/* Equal room: the 28 GiB beyond the overhead halves, plus the overhead on each. */
	assert_true(sp->bytes[0] + sp->bytes[1] == 32 * GIB);
	assert_true(sp->bytes[0] == 16 * GIB);

	/* Too big even together: never. */
	w.models[big].footprint_bytes = 46 * GIB;
	assert_false(sched_model_can_ever_fit(&w.snap, big));
	w.models[big].footprint_bytes = 30 * GIB;

	/* An idle model on GPU 1 is in the way: unloaded, the split follows later. */
	size_t idle = model_add(&w, "idle", 16 * GIB);
	model_loaded(&w, idle, 1, NOW - 1000);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, idle, 1, 0, SCHED_REASON_MAKE_ROOM);

	/* A paused GPU: the split waits (and never goes to the CPU). */
	w.nmodels = 1;
	w.gpus[1].free_bytes = 24 * GIB;
	w.gpus[1].speed = 0.0;
	w.cfg.allow_cpu = true;
	w.models[big].cpu_allowed = true;
	w.snap.cpu_free_bytes = 64 * GIB;
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Ollama's pre-flight: while another model is resident, a load needs
 * preflight <= 0.8 x (free - pending - reserved) on its GPU, else Ollama would evict. */
static void
test_preflight_fit_rule(void **state)
{
	struct world w;
	(void)state;

	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 8 * GIB);
	size_t other = model_add(&w, "other", 4 * GIB);
	model_loaded(&w, other, 0, NOW);
	w.models[other].running = 1;
	model_queue(&w, a, JOB_PRIO_NORMAL, 5, NOW - 1);
	/* free 20 GiB: 16 GiB of preflight is exactly 0.8 x 20: loads. */
	w.models[a].preflight_bytes = 16 * GIB;
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	/* One byte more: Ollama would evict, so vramd does not plan the load. */
	w.models[a].preflight_bytes = 16 * GIB + 1;
	decide(&w);
	for (size_t i = 0; i < w.plan.nactions; i++)
		assert_int_not_equal(w.plan.actions[i].type, SCHED_ACTION_LOAD);
	/* Nothing resident: Ollama does not check, nor does vramd. */
	w.models[other].residency = SCHED_UNLOADED;
	w.models[other].running = 0;
	w.gpus[0].free_bytes = 24 * GIB;
	w.models[a].preflight_bytes = 22 * GIB;
	decide(&w);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* --- Issue 11: the policy ------------------------------------------------------------ */

/* Reuse-aware eviction: the idle model cheapest to need again goes (arrival rate x load
 * time), not the least recently used; with no learned rates, LRU as before; pinned
 * models are never victims. */
static void
test_reuse_aware_eviction(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 3 * GIB);
	size_t b = model_add(&w, "b", 3 * GIB);
	size_t x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, g, NOW - 90000); /* least recently used, but asked for often */
	model_loaded(&w, b, g, NOW - 1000);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);

	decide(&w); /* nothing learned: LRU */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);

	w.models[a].arrival_rate = 0.5; /* one job every 2 s, 3 s to load */
	w.models[a].load_ms = 3000;
	w.models[b].arrival_rate = 0.01;
	w.models[b].load_ms = 3000;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* A slow load weighs as much as a high rate: b at 0.01/s but 200 s to load. */
	w.models[b].load_ms = 200000;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* The cheap one pinned: the dear one goes rather than nothing. */
	w.models[b].load_ms = 3000;
	w.models[b].pinned = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Eviction takes no more than it needs: a small victim taken before the big one that
 * alone makes room is kept resident. */
static void
test_eviction_drops_unneeded_victims(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 4 * GIB);
	size_t x = model_add(&w, "x", 5 * GIB);
	model_loaded(&w, a, g, NOW - 9000); /* LRU first */
	model_loaded(&w, b, g, NOW - 1000);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w); /* usable 7, free 2: b alone gives 6 >= 5 */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Aging: a job's class rises one step per PRIORITY_AGING_S waited, across models. */
static void
test_aging_across_models(void **state)
{
	(void)state;
	assert_int_equal(job_effective_priority(JOB_PRIO_LOW, NOW - 59999, NOW, 60000),
			 JOB_PRIO_LOW);
	assert_int_equal(job_effective_priority(JOB_PRIO_LOW, NOW - 60000, NOW, 60000),
			 JOB_PRIO_NORMAL);
	assert_int_equal(job_effective_priority(JOB_PRIO_LOW, NOW - 120000, NOW, 60000),
			 JOB_PRIO_HIGH);
	assert_int_equal(job_effective_priority(JOB_PRIO_LOW, NOW - 900000, NOW, 60000),
			 JOB_PRIO_HIGH);
	assert_int_equal(job_effective_priority(JOB_PRIO_LOW, NOW - 900000, NOW, 0), JOB_PRIO_LOW);

	struct world w;
	world_init(&w);
	w.cfg.max_batch_wait_ms = INT64_C(1) << 40; /* no starvation in this test */
	gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	model_queue(&w, a, JOB_PRIO_LOW, 1, NOW - 130000);
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - 10);

	decide(&w); /* no aging: high first (one load slot) */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_DEMAND);

	w.cfg.priority_aging_ms = 60000; /* low for 130 s counts as high, and is older */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);

	/* Loaded models dispatch in the same order. */
	model_loaded(&w, a, 0, NOW - 1000);
	model_loaded(&w, b, 0, NOW - 1000);
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 1, SCHED_REASON_DEMAND);
	expect(&w, 1, SCHED_ACTION_DISPATCH, b, 0, 1, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* MAX_BATCH_WAIT as a hard bound: with measured drain and load times, a model starves
 * early enough that draining the busy model and loading it end within the bound. */
static void
test_hard_batch_bound(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_concurrent_per_model = 4;
	w.cfg.min_swap_batch = 2;
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 5 * GIB);
	size_t x = model_add(&w, "x", 5 * GIB);
	model_loaded(&w, a, g, NOW - 100);
	w.models[a].running = 2;
	model_queue(&w, a, JOB_PRIO_NORMAL, 5, NOW - 1000);

	/* 24 s waited of a 30 s bound, nothing measured: not starving, a keeps serving. */
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 24000);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 2, SCHED_REASON_DEMAND);

	/* a's jobs take 4 s to drain, x 3 s to load: 24 + 7 > 30, x starves now and a
	 * gets no new job (it drains for x). */
	w.models[a].run_ms = 4000;
	w.models[x].load_ms = 3000;
	decide(&w);
	expect_n(&w, 0);

	/* At 20 s, 20 + 7 <= 30: not yet. */
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 20000);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, a, 0, 2, SCHED_REASON_DEMAND);

	/* Once a has drained, it is unloaded for x at once. */
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 24000);
	w.models[a].running = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Swap when it pays: with measured times, a model whose load needs an eviction while
 * others work loads when jobs x run time x class weight x (1 + age / bound) reaches two
 * of its loads. */
static void
test_swap_value(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_batch_wait_ms = 60000;
	w.cfg.min_swap_batch = 2;
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 3 * GIB);
	size_t b = model_add(&w, "b", 3 * GIB);
	size_t x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, g, NOW - 100);
	model_loaded(&w, b, g, NOW - 5000);
	w.models[a].running = 1; /* the resident side works */
	w.models[x].run_ms = 1000;
	w.models[x].load_ms = 4000;

	model_queue(&w, x, JOB_PRIO_NORMAL, 7, NOW - 10); /* 7 s of work < 8 s: waits */
	decide(&w);
	expect_n(&w, 0);

	model_queue(&w, x, JOB_PRIO_NORMAL, 8, NOW - 10); /* 8 s: worth it */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	model_queue(&w, x, JOB_PRIO_NORMAL, 0, 0);
	model_queue(&w, x, JOB_PRIO_LOW, 12, NOW - 10); /* low weighs half: 6 s */
	decide(&w);
	expect_n(&w, 0);

	model_queue(&w, x, JOB_PRIO_LOW, 12, NOW - 30000); /* half the bound: x 1.5 */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* Nothing measured: min_swap_batch jobs, as before. */
	w.models[x].run_ms = 0;
	model_queue(&w, x, JOB_PRIO_LOW, 2, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Deadlines across models: within a class, a model whose next job has a deadline goes
 * before those without, the least slack (deadline - now - run time) first; a higher
 * class, or a class aging lifts, still comes first. */
static void
test_deadline_models(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_batch_wait_ms = INT64_C(1) << 40; /* no starvation in this test */
	gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	size_t c = model_add(&w, "c", 2 * GIB);
	model_queue(&w, a, JOB_PRIO_NORMAL, 3, NOW - 50000); /* oldest, no deadline */
	model_queue(&w, b, JOB_PRIO_NORMAL, 1, NOW - 10);
	w.models[b].deadline_ms[JOB_PRIO_NORMAL] = NOW + 20000;

	decide(&w); /* one load slot: the deadline goes first, not the older a */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_DEMAND);

	/* c's deadline is later, but its jobs run 15 s: 5 s of slack against b's 20 s. */
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	w.models[c].deadline_ms[JOB_PRIO_NORMAL] = NOW + 20000;
	w.models[c].run_ms = 15000;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);

	/* A high job without a deadline still goes before them. */
	model_queue(&w, a, JOB_PRIO_HIGH, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);

	/* Aging: a low job of a waited 130 s counts as high, before normal deadlines. */
	model_queue(&w, a, JOB_PRIO_HIGH, 0, 0);
	model_queue(&w, a, JOB_PRIO_NORMAL, 0, 0);
	model_queue(&w, a, JOB_PRIO_LOW, 1, NOW - 130000);
	w.cfg.priority_aging_ms = 60000;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_DEMAND);
	/* A deadline in a class below the model's best one does not count: b's low
	 * deadline job is behind its normal one without a deadline. */
	w.cfg.priority_aging_ms = 0;
	model_queue(&w, a, JOB_PRIO_LOW, 0, 0);
	w.models[b].deadline_ms[JOB_PRIO_NORMAL] = 0;
	model_queue(&w, b, JOB_PRIO_LOW, 1, NOW - 10);
	w.models[b].deadline_ms[JOB_PRIO_LOW] = NOW + 1000;
	w.models[c].deadline_ms[JOB_PRIO_NORMAL] = NOW + 90000; /* still a deadline */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);

	/* Loaded models dispatch in the same order: c (slack 75 s) before b (none). */
	model_loaded(&w, b, 0, NOW - 1000);
	model_loaded(&w, c, 0, NOW - 1000);
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_DISPATCH, c, 0, 1, SCHED_REASON_DEMAND);
	expect(&w, 1, SCHED_ACTION_DISPATCH, b, 0, 2, SCHED_REASON_DEMAND); /* normal + low */
	w.models[b].deadline_ms[JOB_PRIO_NORMAL] = NOW + 60000;		    /* slack 60 s < 75 s */
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_DISPATCH, b, 0, 2, SCHED_REASON_DEMAND);
	expect(&w, 1, SCHED_ACTION_DISPATCH, c, 0, 1, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* A deadline at risk (slack below two of its loads, not yet missed) makes a swap worth
 * it; one already missed, or with slack to spare, waits for the batch like the rest. */
static void
test_deadline_swap(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_batch_wait_ms = 60000;
	w.cfg.min_swap_batch = 2;
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 3 * GIB);
	size_t b = model_add(&w, "b", 3 * GIB);
	size_t x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, g, NOW - 100);
	model_loaded(&w, b, g, NOW - 5000);
	w.models[a].running = 1;
	w.models[x].run_ms = 1000;
	w.models[x].load_ms = 4000;
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10); /* 1 s of work < 8 s: waits */
	decide(&w);
	expect_n(&w, 0);

	w.models[x].deadline_ms[JOB_PRIO_NORMAL] = NOW + 60000; /* slack 59 s: waits */
	decide(&w);
	expect_n(&w, 0);

	w.models[x].deadline_ms[JOB_PRIO_NORMAL] = NOW + 8000; /* slack 7 s < 8 s: swap */
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	w.models[x].deadline_ms[JOB_PRIO_NORMAL] = NOW - 1000; /* missed: no hurry left */
	decide(&w);
	expect_n(&w, 0);
	world_cleanup(&w);
}

/* Pre-warm: when nothing waits, the model with the highest arrival rate loads where it
 * fits now; never with work waiting, never by evicting, never a model not expected
 * within its keep-alive; unused, it is the first victim. */
static void
test_prewarm(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	size_t c = model_add(&w, "c", 5 * GIB);
	w.models[a].arrival_rate = 0.1;
	w.models[b].arrival_rate = 0.5;

	decide(&w); /* off by default */
	expect_n(&w, 0);

	w.cfg.prewarm = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_PREWARM);

	/* A job waiting anywhere: no guessing (c has no room either way). */
	model_loaded(&w, c, g, NOW - 100);
	model_queue(&w, c, JOB_PRIO_LOW, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_DISPATCH, c, 0, 1, SCHED_REASON_DEMAND);

	/* No room (7 usable, c holds 5, b needs 2 + ... ): b fits exactly; make it not. */
	model_queue(&w, c, JOB_PRIO_LOW, 0, 0);
	w.models[b].footprint_bytes = 3 * GIB;
	decide(&w); /* never evicts c for a guess */
	expect_n(&w, 0);

	/* Rare models (not expected within the keep-alive) are not pre-warmed. */
	w.models[b].footprint_bytes = 2 * GIB;
	w.models[b].arrival_rate = 0.001;
	w.models[a].arrival_rate = 0.001;
	decide(&w);
	expect_n(&w, 0);

	/* A pre-warmed model nobody used is unloaded first when room is needed, even with
	 * the highest rate. */
	w.models[b].arrival_rate = 0.5;
	model_loaded(&w, b, g, NOW - 10);
	w.models[b].prewarmed = true;
	w.models[c].arrival_rate = 0.01;
	size_t x = model_add(&w, "x", 2 * GIB);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Host memory pressure: below HOST_MEMORY_MIN_MB available, idle CPU models are unloaded,
 * least valuable first, as many as it takes; busy or pinned ones never. */
static void
test_host_memory_pressure(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.allow_cpu = true;
	gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 1 * GIB);
	size_t c = model_add(&w, "c", 1 * GIB);
	size_t d = model_add(&w, "d", 1 * GIB);
	size_t e = model_add(&w, "e", 1 * GIB);
	for (size_t i = a; i <= d; i++) {
		w.models[i].residency = SCHED_LOADED;
		w.models[i].gpu = SCHED_GPU_CPU;
		w.models[i].last_used_ms = NOW - 1000;
		w.models[i].cpu_allowed = true;
	}
	w.models[a].arrival_rate = 0.5;
	w.models[b].arrival_rate = 0.01;
	w.models[c].running = 1;
	w.models[d].pinned = true;
	w.snap.cpu_total_bytes = 64 * GIB;
	w.snap.cpu_free_bytes = 2 * GIB;

	decide(&w); /* off by default */
	expect_n(&w, 0);

	w.cfg.host_memory_min_bytes = 3 * GIB;
	decide(&w); /* b alone lifts it to 3 */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, SCHED_GPU_CPU, 0, SCHED_REASON_HOST_MEMORY);

	w.cfg.host_memory_min_bytes = 6 * GIB;
	decide(&w); /* all idle ones, even if not enough; c runs, d is pinned */
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, SCHED_GPU_CPU, 0, SCHED_REASON_HOST_MEMORY);
	expect(&w, 1, SCHED_ACTION_UNLOAD, a, SCHED_GPU_CPU, 0, SCHED_REASON_HOST_MEMORY);

	/* Host memory unknown: nothing. */
	w.snap.cpu_total_bytes = 0;
	decide(&w);
	expect_n(&w, 0);

	/* A CPU load never takes the host below the minimum. */
	w.snap.cpu_total_bytes = 64 * GIB;
	w.snap.cpu_free_bytes = 8 * GIB;
	w.cfg.host_memory_min_bytes = 7 * GIB + 1;
	w.gpus[0].available = false;
	model_queue(&w, e, JOB_PRIO_NORMAL, 1, NOW - 10);
	w.models[e].cpu_allowed = true;
	decide(&w);
	expect_n(&w, 0);
	w.cfg.host_memory_min_bytes = 7 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, e, SCHED_GPU_CPU, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* At the resident cap, the unload for the cap is one that also makes room for the load:
 * not the cheapest model anywhere, which would need a second unload for the memory. */
static void
test_cap_victim_makes_room(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_loaded_models = 3;
	size_t g = gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 5 * GIB / 2);
	size_t c = model_add(&w, "c", 5 * GIB / 2);
	size_t x = model_add(&w, "x", 3 * GIB);
	model_loaded(&w, a, g, NOW - 9000); /* least recently used, but too small */
	model_loaded(&w, b, g, NOW - 5000);
	model_loaded(&w, c, g, NOW - 1000);
	model_queue(&w, x, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w); /* usable 7, free 1: a gives 2 < 3, b gives 3.5 */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);

	/* When x fits the memory anyway, the cheapest to lose goes. */
	w.models[x].footprint_bytes = 1 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_MAKE_ROOM);
	world_cleanup(&w);
}

/* Among starving models, the oldest job goes first whatever its priority: the bound is
 * the same for every class. */
static void
test_starving_oldest_first(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	gpu_add(&w, 0, 24 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	model_queue(&w, a, JOB_PRIO_LOW, 1, NOW - W_MS - 5000);
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - W_MS - 10);
	decide(&w); /* one load slot */
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_STARVATION);

	/* Not starving, priority decides as before. */
	model_queue(&w, a, JOB_PRIO_LOW, 1, NOW - 5000);
	model_queue(&w, b, JOB_PRIO_HIGH, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* MODEL_CACHE_SIZE is per GPU (seed 004): a GPU holding that many models takes no further
 * load while another GPU may, even when it has the memory; when every GPU is full, an
 * idle model on one is unloaded first and the load follows once it is gone. A node-wide
 * cap of 2 x 2 GPUs would have let the third model onto the first GPU. */
static void
test_model_cache_per_gpu(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.max_models_per_gpu = 2;
	w.cfg.spread = false; /* pack: the fuller GPU 0 would be the best fit */
	size_t g0 = gpu_add(&w, 0, 24 * GIB);
	size_t g1 = gpu_add(&w, 1, 24 * GIB);
	size_t a = model_add(&w, "a", 1 * GIB);
	size_t b = model_add(&w, "b", 1 * GIB);
	size_t c = model_add(&w, "c", 1 * GIB);
	size_t d = model_add(&w, "d", 1 * GIB);
	size_t e = model_add(&w, "e", 1 * GIB);
	model_loaded(&w, a, g0, NOW - 5000);
	model_loaded(&w, b, g0, NOW - 9000);
	model_queue(&w, c, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 1, 0, SCHED_REASON_DEMAND);

	/* Without the cap, pack puts it beside a and b on GPU 0. */
	w.cfg.max_models_per_gpu = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, c, 0, 0, SCHED_REASON_DEMAND);
	w.cfg.max_models_per_gpu = 2;

	/* A loading model counts: c loading on GPU 1 and d queued: d goes to GPU 1 too
	 * (one slot left there), then c is resident. */
	w.models[c].residency = SCHED_LOADING;
	w.models[c].gpu = 1;
	w.gpus[g1].free_bytes -= 1 * GIB;
	model_queue(&w, c, JOB_PRIO_NORMAL, 0, 0);
	model_queue(&w, d, JOB_PRIO_NORMAL, 1, NOW - 10);
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, d, 1, 0, SCHED_REASON_DEMAND);
	w.models[c].residency = SCHED_LOADED;
	w.models[c].last_used_ms = NOW - 7000;

	/* Both GPUs full (a, b on 0; c, d on 1): e gets the least recently used idle
	 * model unloaded (b), and loads only once it is gone. */
	model_loaded(&w, d, g1, NOW - 3000);
	model_queue(&w, d, JOB_PRIO_NORMAL, 0, 0);
	model_queue(&w, e, JOB_PRIO_NORMAL, 1, NOW - 10);
	w.cfg.min_swap_batch = 0;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_MAKE_ROOM);
	w.models[b].residency = SCHED_UNLOADING;
	decide(&w);
	expect_n(&w, 0);
	w.models[b].residency = SCHED_UNLOADED;
	w.gpus[g0].free_bytes += 1 * GIB;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, e, 0, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

/* DYNAMIC_LOADING_ENABLED=false (config.pinned_only): pre-warm loads no model that is not
 * pinned, however likely; a pinned one it still may. */
static void
test_prewarm_pinned_only(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	w.cfg.prewarm = true;
	gpu_add(&w, 0, 8 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	w.models[a].arrival_rate = 0.5;
	w.models[b].arrival_rate = 0.1;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, a, 0, 0, SCHED_REASON_PREWARM);

	w.cfg.pinned_only = true;
	decide(&w);
	expect_n(&w, 0);

	/* A pinned model (here not yet marked wanted) is still a candidate. */
	w.models[b].pinned = true;
	decide(&w);
	expect_n(&w, 1);
	expect(&w, 0, SCHED_ACTION_LOAD, b, 0, 0, SCHED_REASON_PREWARM);
	world_cleanup(&w);
}

/* A GPU in shutdown (TEMP_SHUTDOWN_C): every loaded model on it is unloaded at once,
 * with jobs running, queued, or pinned; nothing loads or dispatches there; the jobs'
 * model loads on the other GPU. A loading model is left to finish (unloaded next). */
static void
test_shutdown_evacuates(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	size_t g0 = gpu_add(&w, 0, 24 * GIB);
	size_t g1 = gpu_add(&w, 1, 24 * GIB);
	size_t a = model_add(&w, "a", 2 * GIB);
	size_t b = model_add(&w, "b", 2 * GIB);
	size_t c = model_add(&w, "c", 2 * GIB);
	size_t d = model_add(&w, "d", 2 * GIB);
	model_loaded(&w, a, g0, NOW - 10);
	w.models[a].running = 2;
	model_queue(&w, a, JOB_PRIO_NORMAL, 3, NOW - 100);
	model_loaded(&w, b, g0, NOW - 10);
	w.models[b].pinned = true;
	w.models[b].wanted = true;
	model_loaded(&w, c, g1, NOW - 10);
	w.models[d].residency = SCHED_LOADING;
	w.models[d].gpu = 0;
	w.gpus[g0].free_bytes -= 2 * GIB;

	/* Not in shutdown: a dispatches. */
	decide(&w);
	expect_n(&w, 0); /* a is at its cap of 2 */

	w.gpus[g0].shutdown = true;
	w.gpus[g0].available = false;
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, a, 0, 0, SCHED_REASON_SHUTDOWN);
	expect(&w, 1, SCHED_ACTION_UNLOAD, b, 0, 0, SCHED_REASON_SHUTDOWN);

	/* Once they are gone (the engine requeued a's two runs), a loads on GPU 1. */
	w.models[a].residency = SCHED_UNLOADED;
	w.models[a].running = 0;
	model_queue(&w, a, JOB_PRIO_NORMAL, 5, NOW - 100);
	w.models[b].residency = SCHED_UNLOADED;
	w.gpus[g0].free_bytes += 4 * GIB;
	w.models[d].residency = SCHED_LOADED; /* its load ended: it goes too */
	decide(&w);
	expect_n(&w, 2);
	expect(&w, 0, SCHED_ACTION_UNLOAD, d, 0, 0, SCHED_REASON_SHUTDOWN);
	expect(&w, 1, SCHED_ACTION_LOAD, a, 1, 0, SCHED_REASON_DEMAND);
	world_cleanup(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fit_with_margin),
	    cmocka_unit_test(test_spread_vs_pack),
	    cmocka_unit_test(test_preferred_gpu_order),
	    cmocka_unit_test(test_split_placement),
	    cmocka_unit_test(test_split_capacity_excludes_driver_reserve),
	    cmocka_unit_test(test_preflight_fit_rule),
	    cmocka_unit_test(test_other_process_memory),
	    cmocka_unit_test(test_reserved_and_pending),
	    cmocka_unit_test(test_no_overcommit_in_one_plan),
	    cmocka_unit_test(test_eviction_lru),
	    cmocka_unit_test(test_never_evict_busy),
	    cmocka_unit_test(test_starvation_bound),
	    cmocka_unit_test(test_starvation_beats_priority),
	    cmocka_unit_test(test_eviction_claims_room),
	    cmocka_unit_test(test_reservation_pressure),
	    cmocka_unit_test(test_priority_order),
	    cmocka_unit_test(test_concurrency_cap),
	    cmocka_unit_test(test_cap_scaled_by_speed),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_keep_alive_hint),
	    cmocka_unit_test(test_spilled_model_unloaded_when_idle),
	    cmocka_unit_test(test_spilled_model_accepted_where_cpu_allowed),
	    cmocka_unit_test(test_multi_gpu),
	    cmocka_unit_test(test_cpu_fallback),
	    cmocka_unit_test(test_request_placement),
	    cmocka_unit_test(test_never_fits_does_not_block),
	    cmocka_unit_test(test_invariants_random),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_resident_cap),
	    cmocka_unit_test(test_swap_batching),
	    cmocka_unit_test(test_pinned),
	    cmocka_unit_test(test_optimizer_moves_priority_model),
	    cmocka_unit_test(test_forced_placement),
	    cmocka_unit_test(test_unload_requested),
	    cmocka_unit_test(test_reuse_aware_eviction),
	    cmocka_unit_test(test_eviction_drops_unneeded_victims),
	    cmocka_unit_test(test_aging_across_models),
	    cmocka_unit_test(test_hard_batch_bound),
	    cmocka_unit_test(test_swap_value),
	    cmocka_unit_test(test_deadline_models),
	    cmocka_unit_test(test_deadline_swap),
	    cmocka_unit_test(test_prewarm),
	    cmocka_unit_test(test_host_memory_pressure),
	    cmocka_unit_test(test_cap_victim_makes_room),
	    cmocka_unit_test(test_starving_oldest_first),
	    cmocka_unit_test(test_model_cache_per_gpu),
	    cmocka_unit_test(test_prewarm_pinned_only),
	    cmocka_unit_test(test_shutdown_evacuates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
