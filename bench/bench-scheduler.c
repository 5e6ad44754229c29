/*
 * bench-scheduler.c: how long one sched_decide() takes on a large world: 100 models,
 * 8 GPUs, 10 000 queued jobs spread over models and priorities, in several mixes.
 * Prints one table row per scenario: decisions timed, mean and p99 microseconds per
 * decision, and the mean number of actions per plan. Target: < 50 us per decision.
 *
 * Each decision runs on a slightly different snapshot (time moves on, a few queue
 * counts and running counts change), as in the daemon, where the plan and its scratch
 * memory are reused from one decision to the next. Build in Release for real numbers:
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel
 *   ./build-rel/bench/bench-scheduler [decisions-per-scenario]
 */
#include "scheduler.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NMODELS	  100
#define NGPUS	  8
#define NJOBS	  10000
#define T0_MS	  INT64_C(100000000)
#define GIB_BYTES ((uint64_t)VD_GIB)

enum bench_mix {
	MIX_ALL_LOADED,	 /* every model resident, jobs for all: dispatch only */
	MIX_NONE_LOADED, /* cold start: all models wanted, none resident */
	MIX_TIGHT,	 /* GPUs full of idle models, many unloaded models wanted */
	MIX_STARVING,	 /* GPUs full of busy models, unloaded models past max_batch_wait */
	MIX_THROTTLED,	 /* half loaded, GPUs at mixed speeds, two paused, reservations */
};

struct bench_world {
	struct sched_config cfg;
	struct sched_gpu gpus[NGPUS];
	struct sched_model models[NMODELS];
	char names[NMODELS][16];
	struct sched_snapshot snap;
};

static const char *
bench_mix_name(enum bench_mix mix)
{
	static const char *names[] = {"all loaded", "none loaded", "memory-tight evictions",
				      "starvation", "throttled + reserved"};
	return names[mix];
}

/* Builds the world for a mix; rng drives model sizes and the queue spread. */
static void
bench_world_build(struct bench_world *w, enum bench_mix mix, uint64_t *rng)
{
	uint64_t gpu_total = mix == MIX_ALL_LOADED ? 80 * GIB_BYTES : 24 * GIB_BYTES;

	memset(w, 0, sizeof(*w));
	w->cfg = (struct sched_config){.safety_margin_bytes = GIB_BYTES,
				       .max_batch_wait_ms = 30000,
				       .max_concurrent_per_model = 4,
				       .keep_alive_ms = 300000,
				       .max_loads_in_flight = 1,
				       .allow_cpu = true};
	for (int g = 0; g < NGPUS; g++) {
		w->gpus[g] = (struct sched_gpu){.id = g,
						.available = true,
						.total_bytes = gpu_total,
						.free_bytes = gpu_total - GIB_BYTES / 2,
						.speed = 1.0};
		if (mix == MIX_THROTTLED) {
			static const double speeds[] = {1.0, 0.8, 0.5, 0.0};
			w->gpus[g].speed = speeds[g % 4];
			w->gpus[g].reserved_bytes = (uint64_t)(g % 3) * GIB_BYTES;
		}
	}
	for (int m = 0; m < NMODELS; m++) {
		struct sched_model *sm = &w->models[m];
		snprintf(w->names[m], sizeof(w->names[m]), "model-%d", m);
		*sm = (struct sched_model){
		    .name = w->names[m],
		    .footprint_bytes =
			(1 + vd_rand64(rng) % 6) * GIB_BYTES + (vd_rand64(rng) % 1024) * VD_MIB,
		    .residency = SCHED_UNLOADED,
		    .gpu = SCHED_GPU_CPU,
		    .last_used_ms = T0_MS - (int64_t)(vd_rand64(rng) % 200000),
		    .cpu_allowed = m % 10 == 0,
		};
		if (mix == MIX_ALL_LOADED)
			sm->footprint_bytes = (1 + vd_rand64(rng) % 3) * GIB_BYTES;
	}
	/* Place models while they fit: all of them, half, or as many as fit. */
	for (int m = 0; m < NMODELS; m++) {
		struct sched_model *sm = &w->models[m];
		int g = m % NGPUS;
		if (mix == MIX_NONE_LOADED || (mix == MIX_THROTTLED && m % 2 == 1))
			continue;
		if (w->gpus[g].free_bytes < sm->footprint_bytes + GIB_BYTES)
			continue;
		w->gpus[g].free_bytes -= sm->footprint_bytes;
		sm->residency = SCHED_LOADED;
		sm->gpu = g;
		if (mix == MIX_STARVING)
			sm->running = 1 + (int)(vd_rand64(rng) % 4);
	}
	/* 10 000 jobs over models and priorities; in the tight mix, only unloaded models
	 * have jobs, so resident ones are idle and can be evicted. */
	for (int j = 0; j < NJOBS; j++) {
		int m = (int)(vd_rand64(rng) % NMODELS);
		int p = (int)(vd_rand64(rng) % JOB_NPRIORITIES);
		int64_t enq = T0_MS - (int64_t)(vd_rand64(rng) % 20000);
		struct sched_model *sm = &w->models[m];

		if (mix == MIX_TIGHT && sm->residency == SCHED_LOADED) {
			m = (m + 1) % NMODELS;
			sm = &w->models[m];
		}
		if (mix == MIX_STARVING && sm->residency != SCHED_LOADED)
			enq -= 40000; /* past max_batch_wait */
		if (sm->queued[p] == 0 || enq < sm->oldest_enqueued_ms[p])
			sm->oldest_enqueued_ms[p] = enq;
		sm->queued[p]++;
	}
	w->snap = (struct sched_snapshot){.now_ms = T0_MS,
					  .config = &w->cfg,
					  .gpus = w->gpus,
					  .ngpus = NGPUS,
					  .models = w->models,
					  .nmodels = NMODELS,
					  .cpu_free_bytes = 64 * GIB_BYTES,
					  .cpu_total_bytes = 128 * GIB_BYTES};
}

/* Moves the world on a little between decisions, as events would. */
static void
bench_world_step(struct bench_world *w, uint64_t *rng)
{
	struct sched_model *sm = &w->models[vd_rand64(rng) % NMODELS];
	int p = (int)(vd_rand64(rng) % JOB_NPRIORITIES);

	w->snap.now_ms += 1 + (int64_t)(vd_rand64(rng) % 100);
	if (vd_rand64(rng) % 2 && sm->queued[p] > 0)
		sm->queued[p]--;
	else
		sm->queued[p]++;
	if (sm->residency == SCHED_LOADED)
		sm->running = (int)(vd_rand64(rng) % 5);
}

static int
bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t
bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * VD_NS_PER_S + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	int decisions = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
	int64_t *ns;

	if (decisions < 1)
		decisions = 1;
	ns = xcalloc((size_t)decisions, sizeof(*ns));
	printf("sched_decide: %d models x %d GPUs x %d queued jobs, %d decisions per scenario\n\n",
	       NMODELS, NGPUS, NJOBS, decisions);
	printf("%-24s %9s %8s %8s %8s %8s %8s %8s %8s\n", "scenario", "decisions", "mean us",
	       "p50 us", "p99 us", "actions", "unloads", "loads", "dispatch");
	for (int mix = MIX_ALL_LOADED; mix <= MIX_THROTTLED; mix++) {
		struct bench_world w;
		struct sched_plan plan;
		uint64_t rng = 0x5eed + (uint64_t)mix;
		double total_ns = 0, actions = 0, by_type[3] = {0};

		bench_world_build(&w, (enum bench_mix)mix, &rng);
		sched_plan_init(&plan);
		for (int i = 0; i < 100; i++) /* warm up caches and scratch */
			sched_decide(&w.snap, &plan);
		for (int i = 0; i < decisions; i++) {
			int64_t t0, t1;
			bench_world_step(&w, &rng);
			t0 = bench_now_ns();
			sched_decide(&w.snap, &plan);
			t1 = bench_now_ns();
			ns[i] = t1 - t0;
			total_ns += (double)ns[i];
			actions += (double)plan.nactions;
			for (size_t k = 0; k < plan.nactions; k++)
				by_type[plan.actions[k].type] += 1;
		}
		qsort(ns, (size_t)decisions, sizeof(*ns), bench_cmp_i64);
		printf("%-24s %9d %8.2f %8.2f %8.2f %8.1f %8.1f %8.1f %8.1f\n", bench_mix_name(mix),
		       decisions, total_ns / decisions / 1000.0, (double)ns[decisions / 2] / 1000.0,
		       (double)ns[(size_t)decisions * 99 / 100] / 1000.0, actions / decisions,
		       by_type[SCHED_ACTION_UNLOAD] / decisions,
		       by_type[SCHED_ACTION_LOAD] / decisions,
		       by_type[SCHED_ACTION_DISPATCH] / decisions);
		sched_plan_cleanup(&plan);
	}
	printf("\ntarget: < 50 us per decision\n");
	free(ns);
	return 0;
}
