/*
 * test-reconcile.c: unit tests for src/core/reconcile.c, the rules that reconcile the
 * engine's model states with one server's /api/ps listing: adoption (and not of a model
 * vramd just unloaded), gone models (not before their load ended, not with jobs running
 * unless after an outage), what counts as a server restart, and the runner matching of
 * an adopted model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "reconcile.h"

#define MIB (1024ull * 1024)

static struct reconcile_summary
judge(const char *const *keys, size_t nkeys, int64_t sent_ms, bool after_outage,
      const struct reconcile_model *models, size_t n, enum reconcile_verdict *verdicts)
{
	struct reconcile_listing ps = {
	    .keys = keys, .n = nkeys, .sent_ms = sent_ms, .after_outage = after_outage};
	struct reconcile_summary sum;
	reconcile_server(&ps, models, n, verdicts, &sum);
	return sum;
}

static void
test_adopts_listed_unloaded_model(void **state)
{
	(void)state;
	const char *keys[] = {"phi3:mini"};
	struct reconcile_model models[] = {
	    {.key = "phi3:mini", .residency = SCHED_UNLOADED},
	    {.key = "gemma:2b", .residency = SCHED_UNLOADED},
	};
	enum reconcile_verdict v[2];
	struct reconcile_summary sum = judge(keys, 1, 1000, false, models, 2, v);
	assert_int_equal(v[0], RECONCILE_ADOPT);
	assert_int_equal(v[1], RECONCILE_KEEP);
	assert_int_equal(sum.adopted, 1);
	assert_int_equal(sum.gone, 0);
	assert_false(sum.restarted);
}

static void
test_no_adoption_from_listing_before_own_unload(void **state)
{
	(void)state;
	/* vramd confirmed its unload at 1000; a listing requested at 900 still shows it. */
	const char *keys[] = {"phi3:mini"};
	struct reconcile_model m = {
	    .key = "phi3:mini", .residency = SCHED_UNLOADED, .unloaded_ms = 1000};
	enum reconcile_verdict v;
	assert_int_equal(judge(keys, 1, 900, false, &m, 1, &v).adopted, 0);
	assert_int_equal(v, RECONCILE_KEEP);
	/* Listed again by a listing requested later: someone loaded it again. */
	judge(keys, 1, 1100, false, &m, 1, &v);
	assert_int_equal(v, RECONCILE_ADOPT);
}

static void
test_in_flight_states_are_kept(void **state)
{
	(void)state;
	/* Listed while loading or unloading, or not listed while loading (Ollama v0.33
	 * lists a runner only once loaded): the engine's own transitions. */
	const char *keys[] = {"a:latest", "b:latest"};
	struct reconcile_model models[] = {
	    {.key = "a:latest", .residency = SCHED_LOADING},
	    {.key = "b:latest", .residency = SCHED_UNLOADING},
	    {.key = "c:latest", .residency = SCHED_LOADING},
	    {.key = "d:latest", .residency = SCHED_UNLOADING},
	};
	enum reconcile_verdict v[4];
	struct reconcile_summary sum = judge(keys, 2, 5000, true, models, 4, v);
	for (int i = 0; i < 4; i++)
		assert_int_equal(v[i], RECONCILE_KEEP);
	assert_int_equal(sum.adopted + sum.gone, 0);
	assert_false(sum.restarted);
}

static void
test_gone_only_after_its_load(void **state)
{
	(void)state;
	struct reconcile_model m = {
	    .key = "phi3:mini", .residency = SCHED_LOADED, .load_done_ms = 2000};
	enum reconcile_verdict v;
	const char *other[] = {"gemma:2b"};
	/* Requested before the load ended: says nothing about it. */
	judge(other, 1, 1500, false, &m, 1, &v);
	assert_int_equal(v, RECONCILE_KEEP);
	struct reconcile_summary sum = judge(other, 1, 2500, false, &m, 1, &v);
	assert_int_equal(v, RECONCILE_GONE);
	assert_int_equal(sum.gone, 1);
	/* Another model is still listed and no connection failed: not a restart (another
	 * client unloaded it). */
	assert_false(sum.restarted);
	const char *same[] = {"phi3:mini"};
	judge(same, 1, 2500, false, &m, 1, &v);
	assert_int_equal(v, RECONCILE_KEEP);
}

static void
test_running_model_gone_only_after_outage(void **state)
{
	(void)state;
	struct reconcile_model m = {
	    .key = "phi3:mini", .residency = SCHED_LOADED, .load_done_ms = 100, .running = 2};
	enum reconcile_verdict v;
	struct reconcile_summary sum = judge(NULL, 0, 500, false, &m, 1, &v);
	assert_int_equal(v, RECONCILE_KEEP);
	assert_false(sum.restarted);
	sum = judge(NULL, 0, 500, true, &m, 1, &v);
	assert_int_equal(v, RECONCILE_GONE);
	assert_true(sum.restarted);
}

static void
test_restart_detection(void **state)
{
	(void)state;
	struct reconcile_model models[] = {
	    {.key = "a:latest", .residency = SCHED_LOADED, .load_done_ms = 100},
	    {.key = "b:latest", .residency = SCHED_LOADED, .load_done_ms = 100},
	};
	enum reconcile_verdict v[2];
	/* The list emptied: restarted. */
	struct reconcile_summary sum = judge(NULL, 0, 500, false, models, 2, v);
	assert_int_equal(sum.gone, 2);
	assert_true(sum.restarted);
	/* After an outage, one model gone and one still listed (reloaded by someone
	 * else already): restarted. */
	const char *keys[] = {"b:latest"};
	sum = judge(keys, 1, 500, true, models, 2, v);
	assert_int_equal(v[0], RECONCILE_GONE);
	assert_int_equal(v[1], RECONCILE_KEEP);
	assert_true(sum.restarted);
	/* After an outage with everything still listed: a network blip, no restart. */
	const char *both[] = {"a:latest", "b:latest"};
	sum = judge(both, 2, 500, true, models, 2, v);
	assert_int_equal(sum.gone, 0);
	assert_false(sum.restarted);
	/* Nothing believed loaded and nothing listed (vramd's own start): no restart. */
	struct reconcile_model idle = {.key = "a:latest", .residency = SCHED_UNLOADED};
	sum = judge(NULL, 0, 500, true, &idle, 1, v);
	assert_false(sum.restarted);
}

static void
test_match_runner(void **state)
{
	(void)state;
	/* Runners hold size_vram plus a CUDA context: the smallest that holds enough. */
	uint64_t bytes[] = {5000 * MIB, 2400 * MIB, 1200 * MIB, 2100 * MIB};
	assert_int_equal(reconcile_match_runner(bytes, 4, 2000 * MIB), 3);
	assert_int_equal(reconcile_match_runner(bytes, 4, 2200 * MIB), 1);
	assert_int_equal(reconcile_match_runner(bytes, 4, 6000 * MIB), -1);
	assert_int_equal(reconcile_match_runner(bytes, 0, 1), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_adopts_listed_unloaded_model),
	    cmocka_unit_test(test_no_adoption_from_listing_before_own_unload),
	    cmocka_unit_test(test_in_flight_states_are_kept),
	    cmocka_unit_test(test_gone_only_after_its_load),
	    cmocka_unit_test(test_running_model_gone_only_after_outage),
	    cmocka_unit_test(test_restart_detection),
	    cmocka_unit_test(test_match_runner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
