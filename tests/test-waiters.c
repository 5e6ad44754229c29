/*
 * test-waiters.c: unit tests for src/core/waiters.c, the long-poll index: taking one
 * job's waiters returns exactly them, removal works from anywhere in a chain, and
 * waking one job among many waiting looks at a bounded number of waiters (an operation
 * count, not a timing), where the list it replaces looked at every one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util.h"
#include "waiters.h"

#include <stdlib.h>

static size_t
chain_len(const struct waiter *w)
{
	size_t n = 0;
	for (; w != NULL; w = w->next)
		n++;
	return n;
}

static void
test_take_exactly_its_waiters(void **state)
{
	(void)state;
	struct waiters ix;
	waiters_init(&ix);
	enum { N = 1000 };
	struct waiter *ws = xcalloc(N, sizeof(*ws));
	for (int i = 0; i < N; i++)
		waiters_add(&ix, &ws[i], i % 100); /* 10 waiters per job */
	assert_int_equal(ix.count, N);
	struct waiter *got = waiters_take(&ix, 42);
	assert_int_equal(chain_len(got), 10);
	for (struct waiter *w = got; w != NULL; w = w->next) {
		assert_int_equal(w->seq, 42);
		assert_false(waiters_has(w));
	}
	assert_int_equal(ix.count, N - 10);
	assert_null(waiters_take(&ix, 42));
	assert_null(waiters_take(&ix, 100000));
	/* Removing from the middle, the head and the end of chains. */
	for (int i = 0; i < N; i++)
		if (i % 100 == 7)
			waiters_remove(&ix, &ws[i]);
	waiters_remove(&ix, &ws[42]); /* taken already: a no-op */
	assert_int_equal(ix.count, N - 20);
	assert_null(waiters_take(&ix, 7));
	assert_int_equal(chain_len(waiters_take(&ix, 8)), 10);
	size_t left = 0;
	for (struct waiter *w; (w = waiters_any(&ix)) != NULL; left++)
		waiters_remove(&ix, w);
	assert_int_equal(left, N - 30);
	assert_int_equal(ix.count, 0);
	waiters_cleanup(&ix);
	free(ws);
}

/* 100 000 long-polls, each on its own job: waking each job in turn looks at about one
 * waiter per wake (the index keeps at least a bucket per waiter), never all of them. */
static void
test_wake_is_bounded(void **state)
{
	(void)state;
	struct waiters ix;
	waiters_init(&ix);
	enum { N = 100000 };
	struct waiter *ws = xcalloc(N, sizeof(*ws));
	for (int i = 0; i < N; i++)
		waiters_add(&ix, &ws[i], 1000 + i);
	assert_true(ix.nbuckets >= N);
	uint64_t before = ix.visits;
	assert_int_equal(chain_len(waiters_take(&ix, 1000 + N / 2)), 1);
	assert_true(ix.visits - before <= 16);
	before = ix.visits;
	for (int i = 0; i < N; i++)
		if (i != N / 2)
			assert_int_equal(chain_len(waiters_take(&ix, 1000 + i)), 1);
	/* A linear scan would look at N * N / 2 = 5e9; chained hashing about 2 N. */
	assert_true(ix.visits - before <= 4 * (uint64_t)N);
	assert_int_equal(ix.count, 0);
	waiters_cleanup(&ix);
	free(ws);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_take_exactly_its_waiters),
	    cmocka_unit_test(test_wake_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
