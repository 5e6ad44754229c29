/*
 * test-route.c: unit tests for src/core/route.c: which node serves each model's queue,
 * on hand-made fleets (rules in route.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "route.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define GIB	   ((uint64_t)VD_GIB)
#define MAX_NODES  4
#define MAX_MODELS 8

struct fleet_world {
	struct route_config cfg;
	struct route_node nodes[MAX_NODES];
	struct route_model models[MAX_MODELS];
	struct route_cell cells[MAX_MODELS * MAX_NODES];
	size_t nnodes, nmodels;
	bool serve[MAX_MODELS * MAX_NODES];
	enum route_verdict verdicts[MAX_MODELS];
};

/* n ready nodes with room GiB free each; m models of 4 GiB, installed everywhere, fitting
 * everywhere, queued 1 at normal priority, oldest first by index. */
static void
world_init(struct fleet_world *w, size_t n, size_t m, uint64_t room)
{
	memset(w, 0, sizeof(*w));
	w->cfg = (struct route_config){.max_replicas = 1, .max_concurrent = 2, .spread = true};
	w->nnodes = n;
	w->nmodels = m;
	for (size_t i = 0; i < n; i++)
		w->nodes[i] = (struct route_node){.ready = true, .room_bytes = room};
	for (size_t k = 0; k < m; k++) {
		w->models[k] = (struct route_model){
		    .queued = 1, .top_priority = 1, .oldest_ms = 1000 + (int64_t)k};
		for (size_t i = 0; i < n; i++)
			w->cells[k * n + i] = (struct route_cell){.installed = true,
								  .ever_fits = true,
								  .map_rank = -1,
								  .footprint_bytes = 4 * GIB};
	}
}

static struct route_cell *
cell(struct fleet_world *w, size_t m, size_t n)
{
	return &w->cells[m * w->nnodes + n];
}

static void
decide(struct fleet_world *w)
{
	struct route_input in = {.config = &w->cfg,
				 .nodes = w->nodes,
				 .nnodes = w->nnodes,
				 .models = w->models,
				 .nmodels = w->nmodels,
				 .cells = w->cells};
	void *scratch = malloc(route_scratch_size(w->nmodels, w->nnodes));
	route_decide(&in, w->serve, w->verdicts, scratch);
	free(scratch);
}

/* The one node serving model m; -1 if none, -2 if several. */
static int
served_by(const struct fleet_world *w, size_t m)
{
	int found = -1;
	for (size_t n = 0; n < w->nnodes; n++) {
		if (!w->serve[m * w->nnodes + n])
			continue;
		if (found >= 0)
			return -2;
		found = (int)n;
	}
	return found;
}

static void
test_warm_node_first(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 20 * GIB);
	w.nodes[0].room_bytes = 30 * GIB; /* more room, but the model is warm on node 1 */
	cell(&w, 0, 1)->warm = true;
	decide(&w);
	assert_int_equal(w.verdicts[0], ROUTE_SERVED);
	assert_int_equal(served_by(&w, 0), 1);
}

static void
test_spread_gives_models_different_nodes(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 2, 10 * GIB);
	decide(&w);
	/* The first model takes room on one node; the second goes where more room is left. */
	assert_int_equal(served_by(&w, 0), 0);
	assert_int_equal(served_by(&w, 1), 1);
}

static void
test_pack_fills_one_node(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 2, 10 * GIB);
	w.cfg.spread = false;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
	assert_int_equal(served_by(&w, 1), 0);
}

static void
test_fit_now_beats_eviction_and_eviction_beats_waiting(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 3, 1, 2 * GIB);
	w.nodes[1].idle_bytes = 3 * GIB; /* 2 + 3 >= 4: fits after evicting */
	w.nodes[2].room_bytes = 5 * GIB; /* fits now */
	decide(&w);
	assert_int_equal(served_by(&w, 0), 2);
	w.nodes[2].ready = false;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 1);
	w.nodes[1].idle_bytes = 0;
	w.nodes[0].work = 5; /* neither fits: the node with less work */
	decide(&w);
	assert_int_equal(served_by(&w, 0), 1);
}

static void
test_only_nodes_with_the_model_installed(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 10 * GIB);
	w.nodes[1].room_bytes = 40 * GIB;
	cell(&w, 0, 1)->installed = false;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
}

static void
test_dead_warm_node_fails_over(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 10 * GIB);
	cell(&w, 0, 0)->warm = true;
	w.nodes[0].ready = false;
	decide(&w);
	assert_int_equal(w.verdicts[0], ROUTE_SERVED);
	assert_int_equal(served_by(&w, 0), 1);
}

static void
test_sticky_previous_node(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 10 * GIB);
	w.nodes[1].room_bytes = 20 * GIB;
	cell(&w, 0, 0)->previous = true;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
}

/* A previous node that would have to evict first gives the queue up to one with room. */
static void
test_previous_node_without_room_yields(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 10 * GIB);
	w.nodes[0].room_bytes = 1 * GIB;
	w.nodes[0].idle_bytes = 8 * GIB;
	cell(&w, 0, 0)->previous = true;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 1);
	/* With no room anywhere, it stays where it was. */
	w.nodes[1].room_bytes = 1 * GIB;
	w.nodes[1].idle_bytes = 20 * GIB;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
}

static void
test_map_rank_prefers_named_node(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 3, 1, 10 * GIB);
	w.nodes[0].room_bytes = 30 * GIB;
	cell(&w, 0, 2)->map_rank = 0;
	cell(&w, 0, 1)->map_rank = 1;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 2);
	w.nodes[2].ready = false; /* the next in the map's order */
	decide(&w);
	assert_int_equal(served_by(&w, 0), 1);
}

static void
test_never_fits_and_wait(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 1, 10 * GIB);
	cell(&w, 0, 0)->ever_fits = false;
	cell(&w, 0, 1)->ever_fits = false;
	decide(&w);
	assert_int_equal(w.verdicts[0], ROUTE_NEVER_FITS);
	assert_int_equal(served_by(&w, 0), -1);
	/* A node that is down might fit it once it is back: wait. */
	w.nodes[1].ready = false;
	decide(&w);
	assert_int_equal(w.verdicts[0], ROUTE_WAIT);
	/* Installed nowhere: the first ready node answers (its server says unknown model). */
	cell(&w, 0, 0)->installed = false;
	cell(&w, 0, 1)->installed = false;
	decide(&w);
	assert_int_equal(w.verdicts[0], ROUTE_SERVED);
	assert_int_equal(served_by(&w, 0), 0);
}

static void
test_replica_when_queue_is_long(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 3, 1, 10 * GIB);
	cell(&w, 0, 0)->warm = true;
	w.models[0].queued = 10;
	decide(&w); /* max_replicas 1: only the warm node */
	assert_int_equal(served_by(&w, 0), 0);
	w.cfg.max_replicas = 2;
	w.nodes[2].room_bytes = 12 * GIB;
	decide(&w);
	assert_true(w.serve[0 * 3 + 0]);
	assert_false(w.serve[0 * 3 + 1]);
	assert_true(w.serve[0 * 3 + 2]);
	/* A short queue needs no replica. */
	w.models[0].queued = 2;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
	/* Nor where it does not fit now. */
	w.models[0].queued = 10;
	w.nodes[1].room_bytes = w.nodes[2].room_bytes = 1 * GIB;
	decide(&w);
	assert_int_equal(served_by(&w, 0), 0);
}

static void
test_urgent_model_chooses_first(void **state)
{
	(void)state;
	struct fleet_world w;
	world_init(&w, 2, 2, 5 * GIB);
	w.nodes[1].room_bytes = 3 * GIB;
	/* Only node 0 fits either model now; the high-priority one (model 1) gets it. */
	w.models[1].top_priority = 0;
	decide(&w);
	assert_int_equal(served_by(&w, 1), 0);
	assert_int_equal(served_by(&w, 0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_warm_node_first),
	    cmocka_unit_test(test_spread_gives_models_different_nodes),
	    cmocka_unit_test(test_pack_fills_one_node),
	    cmocka_unit_test(test_fit_now_beats_eviction_and_eviction_beats_waiting),
	    cmocka_unit_test(test_only_nodes_with_the_model_installed),
	    cmocka_unit_test(test_dead_warm_node_fails_over),
	    cmocka_unit_test(test_sticky_previous_node),
	    cmocka_unit_test(test_previous_node_without_room_yields),
	    cmocka_unit_test(test_map_rank_prefers_named_node),
	    cmocka_unit_test(test_never_fits_and_wait),
	    cmocka_unit_test(test_replica_when_queue_is_long),
	    cmocka_unit_test(test_urgent_model_chooses_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
