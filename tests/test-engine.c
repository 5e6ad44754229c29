/*
 * test-engine.c: unit tests for src/fleet/engine.c's decision snapshot (issue 12): at
 * 1000 models, building a snapshot must not look every model up in the registry again
 * (it was several registry_find calls per model and decision, each normalising and
 * hashing the name), and a model the registry learns later is found. The engine runs
 * inside a real daemon (daemon_new) over the simulated NVML, as in bench/bench-decide.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "fleet.h"
#include "gpu-sim-state.h"
#include "gpu.h"
#include "job.h"
#include "log.h"
#include "node.h"
#include "queue.h"
#include "registry.h"
#include "scheduler.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NMODELS	  1000
#define NQUEUED	  10000
#define NRESIDENT 24

struct fixture {
	struct test_state st;
	char dir[64];
	struct daemon *d;
	struct node *node;
	struct engine *e;
	struct queue_model_summary *sums;
	size_t nsum;
};

static void
fx_name(char *buf, size_t size, int i)
{
	snprintf(buf, size, "model-%04d:latest", i);
}

static int
fx_setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	char *cause = NULL;
	assert_int_equal(test_state_create(&fx->st, 8), 0);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vramd-test-engine-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	struct config *cfg = config_new();
	const char *set[][2] = {
	    {"DATA_DIR", fx->dir},
	    {"LISTEN", "127.0.0.1:0"},
	    {"QUEUE_MAX_SIZE", "100000"},
	    {"QUEUE_MAX_BYTES", "1G"},
	    {"OLLAMA_BASE_URL", "http://127.0.0.1:9"},
	    {"GPU_SOURCE", "nvml"},
	    {"NVML_LIB", BUILD_DIR "/nvml/libnvidia-ml.so.1"},
	    {"MAX_LOADED_MODELS", "24"},
	};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		assert_int_equal(config_set(cfg, set[i][0], set[i][1], &cause), 0);
	assert_int_equal(daemon_new(cfg, &fx->d, &cause), 0);
	fx->node = fleet_node(fx->d->fleet, 0);
	fx->e = fx->node->engine;
	gpu_monitor_sample_now(fx->d->gpus);
	for (int i = 0; i < 5000 && gpu_monitor_reading_count(fx->node->gpus) == 0; i++) {
		event_base_loop(fx->d->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_true(gpu_monitor_reading_count(fx->node->gpus) > 0);

	/* Every model but the last installed; the first NRESIDENT loaded. */
	char name[64];
	struct backend_running_model rm[NRESIDENT];
	for (int i = 0; i < NMODELS - 1; i++) {
		fx_name(name, sizeof(name), i);
		uint64_t size = (uint64_t)(1 + i % 7) * VD_GIB;
		registry_set_installed(fx->node->registry, name, size, "llama", "7B", "Q4_K_M", 0);
		if (i < NRESIDENT)
			rm[i] = (struct backend_running_model){.name = xstrdup(name),
							       .model = xstrdup(name),
							       .digest = xstrdup("0"),
							       .size_bytes = size,
							       .size_vram_bytes = size};
	}
	engine_set_backend_up(fx->e, true);
	engine_observe_ps(fx->e, &(struct backend_running_list){.models = rm, .n = NRESIDENT},
			  vd_now_mono_ms());
	for (int i = 0; i < NRESIDENT; i++) {
		free(rm[i].name);
		free(rm[i].model);
		free(rm[i].digest);
	}
	/* Jobs for every model, the unknown last one included. */
	for (int j = 0; j < NQUEUED; j++) {
		fx_name(name, sizeof(name), j % NMODELS);
		struct job *job = job_new(j + 1, name, JOB_KIND_GENERATE,
					  (enum job_priority)(j % JOB_NPRIORITIES), NULL, NULL);
		assert_int_equal(queue_push(fx->d->queue, job), 0);
		job_unref(job);
	}
	fx->sums = xcalloc(queue_model_count(fx->d->queue) + 1, sizeof(*fx->sums));
	fx->nsum = queue_summaries(fx->d->queue, fx->sums, queue_model_count(fx->d->queue));
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fixture *fx = *state;
	free(fx->sums);
	daemon_free(fx->d); /* and the configuration */
	test_state_destroy(&fx->st);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Builds a snapshot and decides on it; returns the registry lookups it took. */
static size_t
fx_decide(struct fixture *fx, size_t *nmodels)
{
	struct sched_plan plan;
	sched_plan_init(&plan);
	size_t before = registry_find_count(fx->node->registry);
	assert_true(engine_snapshot(fx->e, vd_now_mono_ms(), fx->sums, fx->nsum));
	const struct sched_snapshot *snap = engine_snapshot_view(fx->e);
	assert_non_null(snap);
	sched_decide(snap, &plan);
	*nmodels = snap->nmodels;
	sched_plan_cleanup(&plan);
	return registry_find_count(fx->node->registry) - before;
}

/* The jobs the last snapshot shows waiting for name; -1 if it is not in it. */
static int
fx_demand(const struct fixture *fx, const char *name)
{
	const struct sched_snapshot *snap = engine_snapshot_view(fx->e);
	for (size_t i = 0; i < snap->nmodels; i++)
		if (strcmp(snap->models[i].name, name) == 0)
			return snap->models[i].queued[0] + snap->models[i].queued[1] +
			       snap->models[i].queued[2];
	return -1;
}

static void
test_snapshot_lookups_per_decision(void **state)
{
	struct fixture *fx = *state;
	size_t n;
	/* The first decision meets every model once; a later one finds them cached. */
	size_t first = fx_decide(fx, &n);
	/* Those /api/ps listed were met when it was read. */
	assert_true(first >= NMODELS - NRESIDENT);
	assert_int_equal(n, NMODELS);
	size_t again = fx_decide(fx, &n);
	assert_int_equal(n, NMODELS);
	/* Only the model the registry does not know is looked for again: at most a few
	 * lookups, where each model used to take several per decision. */
	assert_true(again <= 4);
	assert_true(again < first / 100);
}

/* The decision's other lookups by name: the engine's own index and the queue's. Each
 * was one per waiting model and decision (the summary's model found in the engine, then
 * its head job peeked in the queue); the queue's summaries carry the head now, and the
 * engine finds each summary's model where the last decision did. */
static void
test_snapshot_name_lookups_per_decision(void **state)
{
	struct fixture *fx = *state;
	size_t n;
	fx_decide(fx, &n);
	size_t engine_before = engine_lookup_count(fx->e);
	size_t queue_before = queue_lookup_count(fx->d->queue);
	fx_decide(fx, &n);
	assert_int_equal(n, NMODELS);
	size_t engine_again = engine_lookup_count(fx->e) - engine_before;
	size_t queue_again = queue_lookup_count(fx->d->queue) - queue_before;
	printf("lookups by name in a second decision at %d models: engine %zu, queue %zu\n",
	       NMODELS, engine_again, queue_again);
	assert_true(engine_again <= 4);
	assert_true(queue_again <= 4);

	/* A new model's jobs change the summaries: every model is still the right one. */
	char name[64];
	snprintf(name, sizeof(name), "model-new:latest");
	registry_set_installed(fx->node->registry, name, VD_GIB, "llama", "7B", "Q4_K_M", 0);
	for (int j = 0; j < 3; j++) {
		struct job *job =
		    job_new(NQUEUED + j + 1, name, JOB_KIND_GENERATE, JOB_PRIO_NORMAL, NULL, NULL);
		assert_int_equal(queue_push(fx->d->queue, job), 0);
		job_unref(job);
	}
	free(fx->sums);
	fx->sums = xcalloc(queue_model_count(fx->d->queue) + 1, sizeof(*fx->sums));
	fx->nsum = queue_summaries(fx->d->queue, fx->sums, queue_model_count(fx->d->queue));
	fx_decide(fx, &n);
	assert_int_equal(fx_demand(fx, name), 3);
	fx_name(name, sizeof(name), 7);
	assert_int_equal(fx_demand(fx, name), NQUEUED / NMODELS);
}

static void
test_model_learned_later_is_found(void **state)
{
	struct fixture *fx = *state;
	char name[64];
	size_t n;
	fx_name(name, sizeof(name), NMODELS - 1);
	fx_decide(fx, &n);
	assert_int_equal(fx_demand(fx, name), 0); /* unknown: no demand shown */
	fx_decide(fx, &n);
	assert_int_equal(fx_demand(fx, name), 0);
	/* /api/tags lists it now: the cached "unknown" answer must not stick. */
	registry_set_installed(fx->node->registry, name, VD_GIB, "llama", "7B", "Q4_K_M", 0);
	fx_decide(fx, &n);
	assert_int_equal(fx_demand(fx, name), NQUEUED / NMODELS);
	/* Found, it is cached too. */
	assert_true(fx_decide(fx, &n) <= 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_snapshot_lookups_per_decision, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_name_lookups_per_decision, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_model_learned_later_is_found, fx_setup,
					    fx_teardown),
	};
	vd_log_set_level(VD_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
