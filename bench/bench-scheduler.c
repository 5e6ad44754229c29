/*
 * bench-scheduler.c: how long one sched_decide() takes on a large world: 100 models,
 * 8 GPUs, 10 000 queued jobs spread over models and priorities, in several mixes; and
 * how long the pure part of one fleet decision takes: route_decide() over 4 nodes of
 * 2 GPUs each, then sched_decide() on each node's snapshot with the queues the route
 * gave it. Prints one table row per scenario: decisions timed, mean, p50, p99 and max
 * microseconds per decision, and the mean number of actions per plan (in the fleet row,
 * of the four plans together). Target: < 50 us per decision.
 *
 * Each decision runs on a slightly different snapshot (time moves on, a few queue
 * counts and running counts change), as in the daemon, where the plan and its scratch
 * memory are reused from one decision to the next. Build in Release for real numbers:
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel
 *   ./build-rel/bench/bench-scheduler [decisions-per-scenario]
 */
#include "route.h"
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
				       .allow_cpu = true,
				       .priority_aging_ms = 60000};
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
		    /* learned statistics, so reuse-aware eviction and the swap value run */
		    .arrival_rate = 0.05 * (double)(m % 7),
		    .load_ms = 1000 + 500 * (m % 5),
		    .run_ms = 2000 + 1000 * (m % 3),
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

/* --- The fleet case: route_decide over 4 nodes, then sched_decide on each ------------- */

#define FLEET_NODES 4
#define FLEET_GPUS  2 /* per node */
#define FLEET_LABEL "fleet 4 nodes x 2 GPUs, route+sched"

/* One node as its engine hands it to the fleet: its own GPUs and a snapshot holding every
 * model with queued jobs (all of them here), with the whole queue's counts. */
struct bench_node {
	struct sched_gpu gpus[FLEET_GPUS];
	struct sched_model models[NMODELS];
	struct sched_snapshot snap;
	struct sched_plan plan;
};

struct bench_fleet {
	struct sched_config cfg;
	struct route_config rcfg;
	char names[NMODELS][16];
	int64_t now_ms;
	/* The daemon's one queue, summarised per model (queue_summaries). */
	int queued[NMODELS][JOB_NPRIORITIES];
	int64_t oldest_ms[NMODELS][JOB_NPRIORITIES];
	bool installed[NMODELS][FLEET_NODES];
	struct bench_node nodes[FLEET_NODES];
	/* What fleet.c keeps between decisions; model k of the route is model k of every
	 * node's snapshot (the engine's summary index). */
	struct route_node rnodes[FLEET_NODES];
	struct route_model rmodels[NMODELS];
	struct route_cell cells[NMODELS * FLEET_NODES];
	bool serve[NMODELS * FLEET_NODES];
	bool routed[NMODELS * FLEET_NODES]; /* the last decision's serve: route's "previous" */
	enum route_verdict verdicts[NMODELS];
	void *scratch;
};

/* Builds 4 nodes x 2 GPUs of 24 GiB, 100 models of 1-7 GiB (each installed on three or
 * four nodes), about two thirds of them warm on their home node, some also on a second
 * node, and 10 000 queued jobs. The rest are cold: the route has to find them a home, and
 * the nodes' schedulers to make room for them. */
static void
bench_fleet_build(struct bench_fleet *f, uint64_t *rng)
{
	memset(f, 0, sizeof(*f));
	f->now_ms = T0_MS;
	/* As the engine configures each node: Ollama's resident cap of 3 per GPU, the default
	 * MIN_SWAP_BATCH; the rest as in the single-server scenarios. */
	f->cfg = (struct sched_config){.safety_margin_bytes = GIB_BYTES,
				       .max_batch_wait_ms = 30000,
				       .max_concurrent_per_model = 4,
				       .keep_alive_ms = 300000,
				       .max_loads_in_flight = 1,
				       .allow_cpu = true,
				       .max_loaded_models = 3 * FLEET_GPUS,
				       .min_swap_batch = 2};
	/* Two replicas, so the route's replica rule is exercised too (fleet.c still passes
	 * 1 until MAX_REPLICAS is wired). */
	f->rcfg = (struct route_config){.max_replicas = 2, .max_concurrent = 4, .spread = false};
	for (int n = 0; n < FLEET_NODES; n++) {
		struct bench_node *node = &f->nodes[n];
		for (int g = 0; g < FLEET_GPUS; g++)
			node->gpus[g] =
			    (struct sched_gpu){.id = g,
					       .available = true,
					       .total_bytes = 24 * GIB_BYTES,
					       .free_bytes = 24 * GIB_BYTES - GIB_BYTES / 2,
					       .speed = 1.0};
	}
	for (int m = 0; m < NMODELS; m++) {
		uint64_t footprint =
		    (1 + vd_rand64(rng) % 6) * GIB_BYTES + (vd_rand64(rng) % 1024) * VD_MIB;
		int64_t last_used = T0_MS - (int64_t)(vd_rand64(rng) % 200000);
		snprintf(f->names[m], sizeof(f->names[m]), "model-%d", m);
		for (int n = 0; n < FLEET_NODES; n++) {
			f->nodes[n].models[m] = (struct sched_model){
			    .name = f->names[m],
			    .footprint_bytes = footprint,
			    .residency = SCHED_UNLOADED,
			    .gpu = SCHED_GPU_CPU,
			    .last_used_ms = last_used,
			    .cpu_allowed = m % 10 == 0,
			};
			f->installed[m][n] = !(m % 7 == 0 && n == (m + 2) % FLEET_NODES);
		}
	}
	/* Warm models: on their home node (m mod 4) unless m mod 3 == 0, and every tenth one
	 * on the next node too, while the GPU has room and the node is under its cap. */
	for (int m = 0; m < NMODELS; m++) {
		int home = m % FLEET_NODES;
		for (int copy = 0; copy < 2; copy++) {
			int n = (home + copy) % FLEET_NODES, g = (m / FLEET_NODES) % FLEET_GPUS;
			struct bench_node *node = &f->nodes[n];
			struct sched_model *sm = &node->models[m];
			int resident = 0;
			if ((copy == 0 && m % 3 == 0) || (copy == 1 && m % 10 != 1))
				continue;
			for (int i = 0; i < NMODELS; i++)
				resident += node->models[i].residency == SCHED_LOADED;
			if (resident >= f->cfg.max_loaded_models - 1 ||
			    node->gpus[g].free_bytes < sm->footprint_bytes + GIB_BYTES)
				continue;
			node->gpus[g].free_bytes -= sm->footprint_bytes;
			sm->residency = SCHED_LOADED;
			sm->gpu = g;
			sm->running = (int)(vd_rand64(rng) % 3);
		}
	}
	for (int j = 0; j < NJOBS; j++) {
		int m = (int)(vd_rand64(rng) % NMODELS);
		int p = (int)(vd_rand64(rng) % JOB_NPRIORITIES);
		int64_t enq = T0_MS - (int64_t)(vd_rand64(rng) % 20000);
		if (m % 5 == 2) /* no jobs: idle where warm, victims for room */
			m = (m + 1) % NMODELS;
		if (f->queued[m][p] == 0 || enq < f->oldest_ms[m][p])
			f->oldest_ms[m][p] = enq;
		f->queued[m][p]++;
	}
	for (int n = 0; n < FLEET_NODES; n++) {
		struct bench_node *node = &f->nodes[n];
		node->snap = (struct sched_snapshot){.now_ms = T0_MS,
						     .config = &f->cfg,
						     .gpus = node->gpus,
						     .ngpus = FLEET_GPUS,
						     .models = node->models,
						     .nmodels = NMODELS,
						     .cpu_free_bytes = 64 * GIB_BYTES,
						     .cpu_total_bytes = 128 * GIB_BYTES};
		sched_plan_init(&node->plan);
	}
	f->scratch = xcalloc(1, route_scratch_size(NMODELS, FLEET_NODES));
}

static void
bench_fleet_cleanup(struct bench_fleet *f)
{
	for (int n = 0; n < FLEET_NODES; n++)
		sched_plan_cleanup(&f->nodes[n].plan);
	free(f->scratch);
}

/* Moves the world on a little, then fills each node's snapshot with the whole queue, as
 * engine_snapshot() does before every decision (observation: not timed). */
static void
bench_fleet_step(struct bench_fleet *f, uint64_t *rng)
{
	int m = (int)(vd_rand64(rng) % NMODELS), p = (int)(vd_rand64(rng) % JOB_NPRIORITIES);
	struct sched_model *busy = &f->nodes[vd_rand64(rng) % FLEET_NODES].models[m];

	f->now_ms += 1 + (int64_t)(vd_rand64(rng) % 100);
	if (vd_rand64(rng) % 2 && f->queued[m][p] > 0)
		f->queued[m][p]--;
	else
		f->queued[m][p]++;
	if (busy->residency == SCHED_LOADED)
		busy->running = (int)(vd_rand64(rng) % 5);
	for (int n = 0; n < FLEET_NODES; n++) {
		struct bench_node *node = &f->nodes[n];
		node->snap.now_ms = f->now_ms;
		for (int k = 0; k < NMODELS; k++) {
			memcpy(node->models[k].queued, f->queued[k], sizeof(f->queued[k]));
			memcpy(node->models[k].oldest_enqueued_ms, f->oldest_ms[k],
			       sizeof(f->oldest_ms[k]));
		}
	}
}

/* A node as the route sees it: the most room on one of its GPUs, its idle models'
 * memory and its running work (fleet_route_node in src/fleet/fleet.c). */
static void
bench_fleet_route_node(const struct sched_snapshot *snap, struct route_node *rn)
{
	uint64_t margin = snap->config->safety_margin_bytes;
	*rn = (struct route_node){.ready = true};
	for (size_t g = 0; g < snap->ngpus; g++) {
		const struct sched_gpu *gpu = &snap->gpus[g];
		uint64_t taken = gpu->pending_bytes + gpu->reserved_bytes + margin;
		uint64_t room = gpu->free_bytes > taken ? gpu->free_bytes - taken : 0;
		if (gpu->available && room > rn->room_bytes)
			rn->room_bytes = room;
	}
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		int queued = m->queued[0] + m->queued[1] + m->queued[2];
		rn->work += m->running;
		if (m->residency == SCHED_LOADED && m->running == 0 && !m->pinned && queued == 0)
			rn->idle_bytes += m->footprint_bytes;
	}
}

/* One fleet decision's pure part, as fleet_decide_cb() and engine_decide() do it, in two
 * halves timed apart: the route's input from the queue and the nodes' snapshots and
 * route_decide(); then on each node the queues of models it does not serve zeroed and
 * sched_decide(). */
static void
bench_fleet_route(struct bench_fleet *f)
{
	const size_t N = FLEET_NODES;

	for (size_t k = 0; k < NMODELS; k++) {
		struct route_model *rm = &f->rmodels[k];
		*rm = (struct route_model){.queued =
					       f->queued[k][0] + f->queued[k][1] + f->queued[k][2]};
		for (int p = JOB_NPRIORITIES - 1; p >= 0; p--) {
			if (f->queued[k][p] > 0) {
				rm->top_priority = p;
				rm->oldest_ms = f->oldest_ms[k][p];
			}
		}
	}
	for (size_t n = 0; n < N; n++) {
		const struct sched_snapshot *snap = &f->nodes[n].snap;
		bench_fleet_route_node(snap, &f->rnodes[n]);
		for (size_t k = 0; k < NMODELS; k++) {
			const struct sched_model *m = &snap->models[k];
			f->cells[k * N + n] = (struct route_cell){
			    .installed = f->installed[k][n],
			    .ever_fits = sched_model_can_ever_fit(snap, k),
			    .warm =
				(m->residency == SCHED_LOADED || m->residency == SCHED_LOADING) &&
				!m->unload_requested,
			    .previous = f->routed[k * N + n],
			    .map_rank = -1,
			    .footprint_bytes = m->footprint_bytes,
			};
		}
	}
	struct route_input in = {.config = &f->rcfg,
				 .nodes = f->rnodes,
				 .nnodes = N,
				 .models = f->rmodels,
				 .nmodels = NMODELS,
				 .cells = f->cells};
	route_decide(&in, f->serve, f->verdicts, f->scratch);
}

static void
bench_fleet_sched(struct bench_fleet *f)
{
	const size_t N = FLEET_NODES;

	for (size_t n = 0; n < N; n++) {
		struct bench_node *node = &f->nodes[n];
		for (size_t k = 0; k < NMODELS; k++) {
			bool serve = f->verdicts[k] == ROUTE_SERVED && f->serve[k * N + n];
			f->routed[k * N + n] = serve;
			if (!serve)
				memset(node->models[k].queued, 0, sizeof(node->models[k].queued));
		}
		sched_decide(&node->snap, &node->plan);
	}
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

/* Plan statistics summed over the timed decisions. */
struct bench_totals {
	double ns, actions, by_type[3];
};

static void
bench_totals_add(struct bench_totals *t, const struct sched_plan *plan)
{
	t->actions += (double)plan->nactions;
	for (size_t k = 0; k < plan->nactions; k++)
		t->by_type[plan->actions[k].type] += 1;
}

/* One table row; sorts ns. */
static void
bench_row(const char *label, int decisions, int64_t *ns, const struct bench_totals *t)
{
	qsort(ns, (size_t)decisions, sizeof(*ns), bench_cmp_i64);
	printf("%-36s %9d %8.2f %8.2f %8.2f %8.2f %8.1f %8.1f %8.1f %8.1f\n", label, decisions,
	       t->ns / decisions / 1000.0, (double)ns[decisions / 2] / 1000.0,
	       (double)ns[(size_t)decisions * 99 / 100] / 1000.0,
	       (double)ns[decisions - 1] / 1000.0, t->actions / decisions,
	       t->by_type[SCHED_ACTION_UNLOAD] / decisions,
	       t->by_type[SCHED_ACTION_LOAD] / decisions,
	       t->by_type[SCHED_ACTION_DISPATCH] / decisions);
}

static void
bench_fleet_run(int decisions, int64_t *ns)
{
	struct bench_fleet *f = xcalloc(1, sizeof(*f));
	struct bench_totals t = {0};
	int64_t *route_ns = xcalloc((size_t)decisions, sizeof(*route_ns));
	double route_total = 0, served = 0;
	uint64_t rng = 0xf1ee7;

	bench_fleet_build(f, &rng);
	for (int i = 0; i < 100; i++) { /* warm up caches and scratch */
		bench_fleet_step(f, &rng);
		bench_fleet_route(f);
		bench_fleet_sched(f);
	}
	for (int i = 0; i < decisions; i++) {
		int64_t t0, t1, t2;
		bench_fleet_step(f, &rng);
		t0 = bench_now_ns();
		bench_fleet_route(f);
		t1 = bench_now_ns();
		bench_fleet_sched(f);
		t2 = bench_now_ns();
		ns[i] = t2 - t0;
		route_ns[i] = t1 - t0;
		t.ns += (double)ns[i];
		route_total += (double)route_ns[i];
		for (int n = 0; n < FLEET_NODES; n++)
			bench_totals_add(&t, &f->nodes[n].plan);
		for (size_t k = 0; k < NMODELS * FLEET_NODES; k++)
			served += f->routed[k];
	}
	bench_row(FLEET_LABEL, decisions, ns, &t);
	qsort(route_ns, (size_t)decisions, sizeof(*route_ns), bench_cmp_i64);
	printf("  of which the route (its input and route_decide): mean %.2f us, p99 %.2f us; "
	       "%.1f model queues given to nodes per decision\n",
	       route_total / decisions / 1000.0,
	       (double)route_ns[(size_t)decisions * 99 / 100] / 1000.0, served / decisions);
	bench_fleet_cleanup(f);
	free(route_ns);
	free(f);
}

int
main(int argc, char **argv)
{
	int decisions = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
	int64_t *ns;

	if (decisions < 1)
		decisions = 1;
	ns = xcalloc((size_t)decisions, sizeof(*ns));
	printf("sched_decide: %d models x %d GPUs x %d queued jobs, %d decisions per scenario\n",
	       NMODELS, NGPUS, NJOBS, decisions);
	printf("fleet: route_decide over %d nodes x %d GPUs, then sched_decide on each node "
	       "(same models and jobs)\n\n",
	       FLEET_NODES, FLEET_GPUS);
	printf("%-36s %9s %8s %8s %8s %8s %8s %8s %8s %8s\n", "scenario", "decisions", "mean us",
	       "p50 us", "p99 us", "max us", "actions", "unloads", "loads", "dispatch");
	for (int mix = MIX_ALL_LOADED; mix <= MIX_THROTTLED; mix++) {
		struct bench_world w;
		struct sched_plan plan;
		uint64_t rng = 0x5eed + (uint64_t)mix;
		struct bench_totals t = {0};

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
			t.ns += (double)ns[i];
			bench_totals_add(&t, &plan);
		}
		bench_row(bench_mix_name(mix), decisions, ns, &t);
		sched_plan_cleanup(&plan);
	}
	bench_fleet_run(decisions, ns);
	printf("\ntarget: < 50 us per decision\n");
	free(ns);
	return 0;
}
