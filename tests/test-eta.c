/* test-eta.c: the start-time estimate of a waiting job (src/core/eta.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eta.h"

#define assert_close(a, b) assert_true((a) > (b)-1e-9 && (a) < (b) + 1e-9)

/* A loaded model with a free slot: now; behind others, one run time per slot-full. */
static void
test_resident_model(void **state)
{
	(void)state;
	struct eta_input in = {.resident = true, .slots = 2, .run_s = 4.0};
	assert_close(eta_estimate(&in), 0);
	in.running = 1; /* one slot left */
	assert_close(eta_estimate(&in), 0);
	in.running = 2; /* both busy, half done on average: half a run time / 2 slots */
	assert_close(eta_estimate(&in), 1.0);
	in.ahead = 4; /* 4 more before it: (4 + 2 + 1 - 2 - 0.5) x 4 s / 2 */
	assert_close(eta_estimate(&in), 9.0);
}

/* Not resident: a load at once when it fits, else after the sooner of an eviction and the
 * batch bound. */
static void
test_model_to_load(void **state)
{
	(void)state;
	struct eta_input in = {.slots = 1, .run_s = 3.0, .load_s = 5.0, .fits_now = true};
	assert_close(eta_estimate(&in), 5.0);
	in.fits_now = false;
	in.evict_s = 20.0;
	in.bound_s = 12.0;
	assert_close(eta_estimate(&in), 17.0); /* the bound comes first */
	in.others_s = 14.0;		       /* models that waited longer go first */
	assert_close(eta_estimate(&in), 19.0);
	in.others_s = 0;
	in.evict_s = 0; /* an idle model can go now */
	assert_close(eta_estimate(&in), 5.0);
	in.ahead = 2; /* its own queue after the load: 2 x 3 s */
	assert_close(eta_estimate(&in), 11.0);
	/* A load already under way: what it still needs. */
	struct eta_input loading = {.resident = true, .slots = 1, .run_s = 3.0, .loading_s = 1.5};
	assert_close(eta_estimate(&loading), 1.5);
}

static void
test_unknown_run_time(void **state)
{
	(void)state;
	struct eta_input in = {.resident = true, .slots = 1, .run_s = -1};
	assert_true(eta_estimate(&in) < 0);
}

/* Measured swaps set the pace when loads run back to back: poisson seed 1 started jobs
 * of models not loaded 2-3 times later than the loads and queues alone predicted. */
static void
test_swap_pace(void **state)
{
	(void)state;
	/* Three models waited longer: their loads and queues add up to 6 s, but a swap
	 * (drain, unload, fresh sample, load) has taken 4 s each. */
	struct eta_input in = {.slots = 1,
			       .run_s = 3.0,
			       .load_s = 1.0,
			       .evict_s = 30.0,
			       .bound_s = 0,
			       .others_s = 6.0,
			       .others_n = 3};
	assert_close(eta_estimate(&in), 7.0); /* unmeasured: 6 + its own load */
	in.swap_s = 4.0;
	assert_close(eta_estimate(&in), 16.0); /* 3 swaps ahead, then its own */
	in.others_s = 20.0;		       /* long queues ahead still count */
	assert_close(eta_estimate(&in), 24.0);
	/* A load into free room needs no swap. */
	in.fits_now = true;
	assert_close(eta_estimate(&in), 1.0);
	/* Nothing ahead, no room: one swap of its own. */
	in.fits_now = false;
	in.others_s = 0;
	in.others_n = 0;
	in.evict_s = 0;
	assert_close(eta_estimate(&in), 4.0);
}

/* At the server's resident cap free memory is no room: the load waits for an unload. */
static void
test_resident_cap(void **state)
{
	(void)state;
	struct eta_input in = {.slots = 1,
			       .run_s = 3.0,
			       .load_s = 1.0,
			       .fits_now = true,
			       .evict_s = 5.0,
			       .bound_s = 20.0,
			       .resident_n = 3,
			       .resident_max = 3};
	assert_close(eta_estimate(&in), 6.0); /* a resident model drains first: 5 + 1 */
	in.resident_n = 2;
	assert_close(eta_estimate(&in), 1.0); /* below the cap: at once */
	in.resident_max = 0;
	in.resident_n = 9;
	assert_close(eta_estimate(&in), 1.0); /* no cap */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resident_model),   cmocka_unit_test(test_model_to_load),
	    cmocka_unit_test(test_unknown_run_time), cmocka_unit_test(test_swap_pace),
	    cmocka_unit_test(test_resident_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
