/*
 * test-queue.c: unit tests for src/core/queue.c: FIFO within a priority, priority order per
 * model, capacity, remove, push_front, summaries, positions, and a 100 000-job run
 * checked against a naive model of the queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "queue.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct job *
mkjob(int64_t seq, const char *model, enum job_priority prio)
{
	return job_new(seq, model, JOB_KIND_GENERATE, prio, NULL, NULL);
}

/* Pushes a new job and drops the test's reference (the queue keeps one). */
static struct job *
push(struct queue *q, int64_t seq, const char *model, enum job_priority prio)
{
	struct job *job = mkjob(seq, model, prio);
	assert_int_equal(queue_push(q, job), 0);
	job_unref(job);
	return job;
}

static void
test_fifo_within_priority(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	for (int i = 1; i <= 5; i++)
		push(q, i, "m", JOB_PRIO_NORMAL);
	for (int i = 1; i <= 5; i++) {
		struct job *job = queue_pop_model(q, "m");
		assert_non_null(job);
		assert_int_equal(job->seq, i);
		assert_int_equal(job->refcount, 1);
		job_unref(job);
	}
	assert_null(queue_pop_model(q, "m"));
	assert_int_equal(queue_length(q), 0);
	assert_int_equal(queue_model_count(q), 0);
	queue_free(q);
}

static void
test_priority_order_per_model(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	push(q, 1, "a", JOB_PRIO_LOW);
	push(q, 2, "a", JOB_PRIO_NORMAL);
	push(q, 3, "b", JOB_PRIO_HIGH);
	push(q, 4, "a", JOB_PRIO_HIGH);
	push(q, 5, "a", JOB_PRIO_NORMAL);
	int64_t want[] = {4, 2, 5, 1};
	for (size_t i = 0; i < VD_ARRAY_LEN(want); i++) {
		struct job *job = queue_pop_model(q, "a");
		assert_non_null(job);
		assert_int_equal(job->seq, want[i]);
		assert_string_equal(job->model, "a");
		job_unref(job);
	}
	assert_null(queue_pop_model(q, "a"));
	assert_int_equal(queue_length(q), 1);
	assert_int_equal(queue_length_priority(q, JOB_PRIO_HIGH), 1);
	queue_free(q); /* frees job 3 still inside */
}

static void
test_capacity(void **state)
{
	(void)state;
	struct queue *q = queue_new(3);
	assert_int_equal(queue_capacity(q), 3);
	for (int i = 1; i <= 3; i++)
		push(q, i, "m", JOB_PRIO_NORMAL);
	struct job *extra = mkjob(4, "m", JOB_PRIO_HIGH);
	assert_int_equal(queue_push(q, extra), -ENOSPC);
	assert_int_equal(extra->refcount, 1);
	assert_int_equal(queue_length(q), 3);
	/* push_front ignores the capacity: nothing accepted is dropped. */
	struct job *back = queue_pop_model(q, "m");
	queue_push_front(q, back);
	job_unref(back);
	queue_push_front(q, extra);
	assert_int_equal(queue_length(q), 4);
	job_unref(extra);
	queue_set_capacity(q, 10);
	assert_int_equal(queue_capacity(q), 10);
	queue_free(q);
}

/* QUEUE_MAX_BYTES: request bytes of every job pushed and not released count, whether it
 * waits or runs; a push beyond the cap fails with -ENOBUFS; releasing is idempotent and a
 * job put back (push_front) is not counted twice. */
static void
test_capacity_bytes(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	assert_true(queue_has_room_bytes(q, SIZE_MAX / 2)); /* no cap by default */
	queue_set_capacity_bytes(q, 1000);
	assert_int_equal(queue_capacity_bytes(q), 1000);
	struct job *jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = job_new(i + 1, "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL,
				  json_pack("{s:s}", "prompt", "p"), NULL);
		jobs[i]->request_bytes = 400;
	}
	assert_int_equal(queue_push(q, jobs[0]), 0);
	assert_int_equal(queue_push(q, jobs[1]), 0);
	assert_int_equal(queue_bytes(q), 800);
	assert_false(queue_has_room_bytes(q, 201));
	assert_true(queue_has_room_bytes(q, 200));
	assert_int_equal(queue_push(q, jobs[2]), -ENOBUFS);
	assert_int_equal(jobs[2]->refcount, 1);
	assert_int_equal(queue_length(q), 2);
	/* A job taken to run still counts; put back, it is not counted twice. */
	struct job *running = queue_pop_model(q, "m");
	assert_ptr_equal(running, jobs[0]);
	assert_int_equal(queue_bytes(q), 800);
	queue_push_front(q, running);
	job_unref(running);
	assert_int_equal(queue_bytes(q), 800);
	running = queue_pop_model(q, "m");
	/* Final: released once, however often it is told. */
	queue_release_bytes(q, running);
	queue_release_bytes(q, running);
	job_unref(running);
	assert_int_equal(queue_bytes(q), 400);
	assert_int_equal(queue_push(q, jobs[2]), 0);
	assert_int_equal(queue_bytes(q), 800);
	/* A cancelled job leaves the queue and releases. */
	assert_true(queue_remove(q, jobs[1]));
	queue_release_bytes(q, jobs[1]);
	assert_int_equal(queue_bytes(q), 400);
	/* A recovered job (push_front) counts even beyond the cap. */
	jobs[3]->request_bytes = 5000;
	queue_push_front(q, jobs[3]);
	assert_int_equal(queue_bytes(q), 5400);
	assert_false(queue_has_room_bytes(q, 1));
	assert_false(queue_has_room_bytes(q, SIZE_MAX));
	for (int i = 0; i < 4; i++)
		job_unref(jobs[i]);
	queue_free(q);
}

static void
test_remove(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *j1 = push(q, 1, "m", JOB_PRIO_NORMAL);
	struct job *j2 = push(q, 2, "m", JOB_PRIO_NORMAL);
	struct job *j3 = push(q, 3, "m", JOB_PRIO_NORMAL);
	struct job *other = push(q, 4, "n", JOB_PRIO_NORMAL);
	job_ref(j2);
	assert_true(queue_remove(q, j2));
	assert_int_equal(j2->refcount, 1);
	assert_false(queue_remove(q, j2)); /* not queued any more */
	job_unref(j2);

	/* A job that was never queued, with the same model, is not removed. */
	struct job *stranger = mkjob(9, "m", JOB_PRIO_NORMAL);
	assert_false(queue_remove(q, stranger));
	job_unref(stranger);

	assert_int_equal(queue_length(q), 3);
	assert_int_equal(queue_position(q, j3), 1);
	assert_true(queue_remove(q, j1));
	assert_true(queue_remove(q, j3));
	assert_int_equal(queue_model_count(q), 1);
	struct queue_model_summary s;
	queue_summary(q, "m", &s);
	assert_null(s.model);
	assert_int_equal(s.count[JOB_PRIO_NORMAL], 0);
	assert_int_equal(queue_position(q, other), 0);
	queue_free(q);
}

static void
test_push_front(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	push(q, 1, "m", JOB_PRIO_NORMAL);
	push(q, 2, "m", JOB_PRIO_NORMAL);
	struct job *job = queue_pop_model(q, "m");
	assert_int_equal(job->seq, 1);
	job->status = JOB_PENDING;
	int64_t enq = job->enqueued_mono_ms;
	queue_push_front(q, job);
	assert_int_equal(job->status, JOB_QUEUED);
	assert_int_equal(job->enqueued_mono_ms, enq); /* keeps its original wait */
	assert_int_equal(queue_position(q, job), 0);
	job_unref(job);
	struct job *again = queue_pop_model(q, "m");
	assert_int_equal(again->seq, 1);
	job_unref(again);
	queue_free(q);
}

static void
test_summaries(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *a = mkjob(1, "a", JOB_PRIO_LOW);
	a->enqueued_mono_ms = 1000;
	assert_int_equal(queue_push(q, a), 0);
	job_unref(a);
	struct job *b = mkjob(2, "a", JOB_PRIO_LOW);
	b->enqueued_mono_ms = 2000;
	assert_int_equal(queue_push(q, b), 0);
	job_unref(b);
	struct job *c = mkjob(3, "b", JOB_PRIO_HIGH);
	c->enqueued_mono_ms = 3000;
	assert_int_equal(queue_push(q, c), 0);
	job_unref(c);

	assert_int_equal(queue_model_count(q), 2);
	struct queue_model_summary s[4];
	assert_int_equal(queue_summaries(q, s, 4), 2);
	assert_int_equal(queue_summaries(q, s, 1), 1);
	queue_summaries(q, s, 4);
	struct queue_model_summary *sa = strcmp(s[0].model, "a") == 0 ? &s[0] : &s[1];
	struct queue_model_summary *sb = sa == &s[0] ? &s[1] : &s[0];
	assert_string_equal(sb->model, "b");
	assert_int_equal(sa->count[JOB_PRIO_LOW], 2);
	assert_int_equal(sa->count[JOB_PRIO_HIGH], 0);
	assert_int_equal(sa->oldest_enqueued_ms[JOB_PRIO_LOW], 1000);
	assert_int_equal(sa->oldest_enqueued_ms[JOB_PRIO_HIGH], 0);
	assert_int_equal(sb->count[JOB_PRIO_HIGH], 1);
	assert_int_equal(sb->oldest_enqueued_ms[JOB_PRIO_HIGH], 3000);

	struct queue_model_summary one;
	queue_summary(q, "a", &one);
	assert_string_equal(one.model, "a");
	assert_int_equal(one.count[JOB_PRIO_LOW], 2);
	struct job *popped = queue_pop_model(q, "a");
	job_unref(popped);
	queue_summary(q, "a", &one);
	assert_int_equal(one.oldest_enqueued_ms[JOB_PRIO_LOW], 2000);
	assert_non_null(queue_peek_model(q, "b"));
	assert_null(queue_peek_model(q, "zzz"));
	queue_free(q);
}

static void
test_position(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *n1 = push(q, 1, "a", JOB_PRIO_NORMAL);
	struct job *l1 = push(q, 2, "b", JOB_PRIO_LOW);
	struct job *n2 = push(q, 3, "b", JOB_PRIO_NORMAL);
	struct job *h1 = push(q, 4, "c", JOB_PRIO_HIGH);
	assert_int_equal(queue_position(q, h1), 0);
	assert_int_equal(queue_position(q, n1), 1);
	assert_int_equal(queue_position(q, n2), 2);
	assert_int_equal(queue_position(q, l1), 3);
	struct job *got = queue_pop_model(q, "a");
	job_unref(got);
	assert_int_equal(queue_position(q, n2), 1);
	assert_int_equal(queue_position(q, l1), 2);
	queue_free(q);
}

/* 100 000 jobs over 50 models with random priorities, popped and removed at random,
 * checked against the definition of position and of FIFO order. */
static void
test_many_jobs(void **state)
{
	(void)state;
	enum { N = 100000, MODELS = 50 };
	struct queue *q = queue_new(N);
	struct job **jobs = xcalloc(N, sizeof(*jobs));
	uint64_t rng = 42;
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "model-%d", (int)(vd_rand64(&rng) % MODELS));
		jobs[i] = mkjob(i + 1, name, (enum job_priority)(vd_rand64(&rng) % 3));
		assert_int_equal(queue_push(q, jobs[i]), 0);
	}
	assert_int_equal(queue_length(q), N);
	struct job *overflow = mkjob(N + 1, "x", JOB_PRIO_HIGH);
	assert_int_equal(queue_push(q, overflow), -ENOSPC);
	job_unref(overflow);

	/* Remove every seventh job (cancel), then check positions of a sample exactly. */
	for (int i = 0; i < N; i += 7)
		assert_true(queue_remove(q, jobs[i]));
	size_t live_prio[JOB_NPRIORITIES] = {0};
	for (int i = 0; i < N; i++)
		if (i % 7 != 0)
			live_prio[jobs[i]->priority]++;
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		assert_int_equal(queue_length_priority(q, p), live_prio[p]);
	for (int i = 1; i < N; i += 997) {
		if (i % 7 == 0)
			continue;
		size_t want = 0;
		for (int p = 0; p < (int)jobs[i]->priority; p++)
			want += live_prio[p];
		for (int k = 0; k < i; k++)
			if (k % 7 != 0 && jobs[k]->priority == jobs[i]->priority)
				want++;
		assert_int_equal(queue_position(q, jobs[i]), want);
	}

	/* Drain model by model: priorities never go up, seq grows within a priority. */
	size_t drained = 0;
	for (int m = 0; m < MODELS; m++) {
		snprintf(name, sizeof(name), "model-%d", m);
		int last_prio = -1;
		int64_t last_seq = 0;
		for (struct job *job = queue_pop_model(q, name); job != NULL;
		     job = queue_pop_model(q, name)) {
			assert_string_equal(job->model, name);
			if ((int)job->priority != last_prio) {
				assert_true((int)job->priority > last_prio);
				last_prio = job->priority;
				last_seq = 0;
			}
			assert_true(job->seq > last_seq);
			last_seq = job->seq;
			job_unref(job);
			drained++;
		}
	}
	assert_int_equal(drained, N - (N + 6) / 7);
	assert_int_equal(queue_length(q), 0);
	for (int i = 0; i < N; i++)
		job_unref(jobs[i]);
	free(jobs);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fifo_within_priority),
	    cmocka_unit_test(test_priority_order_per_model),
	    cmocka_unit_test(test_capacity),
	    cmocka_unit_test(test_capacity_bytes),
	    cmocka_unit_test(test_remove),
	    cmocka_unit_test(test_push_front),
	    cmocka_unit_test(test_summaries),
	    cmocka_unit_test(test_position),
	    cmocka_unit_test(test_many_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
