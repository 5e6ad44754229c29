/*
 * test-breaker.c: unit tests for src/fleet/breaker.c on a fake clock: the threshold,
 * open until the retry time, one trial at a time while half open, the backoff doubling
 * to its cap and resetting after a success, failures and successes that arrive late,
 * cancelled trials, and the configuration defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "breaker.h"

#include <string.h>

/* Fails the breaker until it opens; returns the time it opened. */
static int64_t
open_it(struct breaker *b, int64_t now)
{
	for (int i = 0; i < b->cfg.failure_threshold; i++)
		breaker_failure(b, now);
	assert_int_equal(b->state, BREAKER_OPEN);
	return now;
}

/* Waits out the open period, begins a trial, and fails it; returns the time. */
static int64_t
fail_trial(struct breaker *b)
{
	int64_t now = b->retry_at_ms;
	assert_false(breaker_allows(b, now - 1));
	assert_true(breaker_allows(b, now));
	breaker_begin_trial(b, now);
	assert_int_equal(b->state, BREAKER_HALF_OPEN);
	breaker_failure(b, now);
	assert_int_equal(b->state, BREAKER_OPEN);
	return now;
}

static void
test_defaults(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_int_equal(b.cfg.failure_threshold, 3);
	assert_int_equal(b.cfg.backoff_min_ms, 1000);
	assert_int_equal(b.cfg.backoff_max_ms, 30000);
	assert_true(breaker_allows(&b, 0));
	assert_true(breaker_next_probe_ms(&b) <= 0);
	assert_int_equal(b.failures, 0);
	assert_int_equal(b.opens, 0);

	/* Out-of-range settings fall back to the defaults; max is never below min. */
	static const struct {
		struct breaker_config in, want;
	} cases[] = {
	    {{0, 0, 0}, {3, 1000, 30000}},	{{-1, -5, -5}, {3, 1000, 30000}},
	    {{1, 200, 800}, {1, 200, 800}},	{{5, 5000, 100}, {5, 5000, 30000}},
	    {{2, 60000, 0}, {2, 60000, 60000}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		breaker_init(&b, &cases[i].in);
		assert_int_equal(b.cfg.failure_threshold, cases[i].want.failure_threshold);
		assert_int_equal(b.cfg.backoff_min_ms, cases[i].want.backoff_min_ms);
		assert_int_equal(b.cfg.backoff_max_ms, cases[i].want.backoff_max_ms);
	}
}

/* Only consecutive failures count: a success in between starts the count again. */
static void
test_threshold(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	breaker_failure(&b, 10);
	breaker_failure(&b, 20);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_int_equal(b.failures, 2);
	assert_true(breaker_allows(&b, 20));
	breaker_success(&b, 30);
	assert_int_equal(b.failures, 0);
	breaker_failure(&b, 40);
	breaker_failure(&b, 50);
	assert_int_equal(b.state, BREAKER_CLOSED);
	breaker_failure(&b, 60);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_int_equal(b.failures, 3);
	assert_int_equal(b.opened_ms, 60);
	assert_int_equal(b.backoff_ms, 1000);
	assert_int_equal(b.retry_at_ms, 1060);
	assert_int_equal(b.opens, 1);

	/* A threshold of 1 opens on the first failure. */
	breaker_init(&b, &(struct breaker_config){.failure_threshold = 1});
	breaker_failure(&b, 5);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_int_equal(b.retry_at_ms, 1005);
}

/* Open: nothing until the retry time; then exactly one trial at a time. */
static void
test_open_and_half_open(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	open_it(&b, 1000);
	assert_string_equal(breaker_state_name(b.state), "open");
	assert_false(breaker_allows(&b, 1000));
	assert_false(breaker_allows(&b, 1999));
	assert_int_equal(breaker_next_probe_ms(&b), 2000);

	/* Too early: begin_trial changes nothing. */
	breaker_begin_trial(&b, 1500);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_false(breaker_allows(&b, 1500));

	assert_true(breaker_allows(&b, 2000));
	assert_true(breaker_allows(&b, 5000));
	breaker_begin_trial(&b, 2100);
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	assert_string_equal(breaker_state_name(b.state), "half_open");
	/* The trial is in flight: no second request, whatever the time. */
	assert_false(breaker_allows(&b, 2100));
	assert_false(breaker_allows(&b, 1000000));
	assert_int_equal(breaker_next_probe_ms(&b), BREAKER_NO_PROBE);
	breaker_begin_trial(&b, 2200); /* no effect */
	assert_int_equal(b.state, BREAKER_HALF_OPEN);

	/* It succeeds: closed, everything reset. */
	breaker_success(&b, 2300);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_string_equal(breaker_state_name(b.state), "closed");
	assert_int_equal(b.failures, 0);
	assert_int_equal(b.backoff_ms, 0);
	assert_true(breaker_allows(&b, 2300));
	assert_true(breaker_next_probe_ms(&b) <= 2300);

	/* begin_trial while closed is harmless. */
	breaker_begin_trial(&b, 2400);
	assert_int_equal(b.state, BREAKER_CLOSED);
}

/* Failed trials double the open period up to the cap; a success resets it. */
static void
test_backoff_doubles_to_cap(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	open_it(&b, 0);
	static const int64_t want[] = {2000, 4000, 8000, 16000, 30000, 30000, 30000};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int64_t at = fail_trial(&b);
		assert_int_equal(b.backoff_ms, want[i]);
		assert_int_equal(b.opened_ms, at);
		assert_int_equal(b.retry_at_ms, at + want[i]);
		assert_int_equal(breaker_next_probe_ms(&b), at + want[i]);
	}
	assert_int_equal(b.opens, 8);
	assert_int_equal(b.failures, 3 + 7);

	/* Recovery, then the next outage starts again from the minimum. */
	int64_t now = b.retry_at_ms;
	breaker_begin_trial(&b, now);
	breaker_success(&b, now);
	open_it(&b, now + 10);
	assert_int_equal(b.backoff_ms, 1000);
	assert_int_equal(fail_trial(&b), now + 10 + 1000);
	assert_int_equal(b.backoff_ms, 2000);

	/* A cap that is not a power-of-two multiple of the minimum is reached exactly. */
	breaker_init(&b, &(struct breaker_config){.failure_threshold = 2,
						  .backoff_min_ms = 1000,
						  .backoff_max_ms = 5000});
	open_it(&b, 0);
	static const int64_t capped[] = {2000, 4000, 5000, 5000};
	for (size_t i = 0; i < sizeof(capped) / sizeof(capped[0]); i++) {
		fail_trial(&b);
		assert_int_equal(b.backoff_ms, capped[i]);
	}
}

/* Answers to requests sent before the breaker opened. */
static void
test_late_answers(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	open_it(&b, 100);
	/* A late failure neither extends nor doubles the open period. */
	breaker_failure(&b, 900);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_int_equal(b.retry_at_ms, 1100);
	assert_int_equal(b.backoff_ms, 1000);
	assert_int_equal(b.opens, 1);
	assert_int_equal(b.failures, 4);
	/* A late success shows the node is up: closed at once. */
	breaker_success(&b, 950);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_true(breaker_allows(&b, 950));
	assert_int_equal(b.failures, 0);
}

/* A trial cut short by something other than the node lets another begin at once. */
static void
test_cancelled_trial(void **state)
{
	(void)state;
	struct breaker b;
	breaker_init(&b, NULL);
	open_it(&b, 0);
	fail_trial(&b); /* backoff 2000, opened at 1000 */
	breaker_begin_trial(&b, 3000);
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	breaker_cancel_trial(&b, 3500);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_true(breaker_allows(&b, 3500));
	assert_int_equal(breaker_next_probe_ms(&b), 3500);
	assert_int_equal(b.backoff_ms, 2000);
	assert_int_equal(b.opens, 2); /* cancelling is not opening */
	/* The next trial fails: the doubling continues from where it was. */
	breaker_begin_trial(&b, 3600);
	breaker_failure(&b, 3600);
	assert_int_equal(b.backoff_ms, 4000);
	assert_int_equal(b.retry_at_ms, 7600);

	/* Cancelling outside half_open changes nothing. */
	breaker_cancel_trial(&b, 4000);
	assert_int_equal(b.retry_at_ms, 7600);
	breaker_success(&b, 8000);
	breaker_cancel_trial(&b, 8000);
	assert_int_equal(b.state, BREAKER_CLOSED);
}

static void
test_state_names(void **state)
{
	(void)state;
	assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
	assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
	assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
	assert_string_equal(breaker_state_name((enum breaker_state)7), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_threshold),
	    cmocka_unit_test(test_open_and_half_open),
	    cmocka_unit_test(test_backoff_doubles_to_cap),
	    cmocka_unit_test(test_late_answers),
	    cmocka_unit_test(test_cancelled_trial),
	    cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
