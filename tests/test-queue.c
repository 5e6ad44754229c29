/*
 * test-queue.c: unit tests for src/core/queue.c: FIFO within a priority, priority order per
 * model, capacity, remove, push_front, summaries, positions, a 100 000-job run
 * checked against a naive model of the queue, and fair share between API keys (the
 * fair pop, weights, a key joining a busy queue or rejoining an idle one, random
 * operations checked against the invariants), and deadlines (least slack first within a
 * class, jobs without one after, aging still across classes, random operations checked
 * against a naive model).
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

/* Jobs recovered at start come in submission order and must run in it, past the
 * capacity (a restart with a smaller queue drops nothing). */
static void
test_push_recovered(void **state)
{
	(void)state;
	struct queue *q = queue_new(2);
	for (int64_t seq = 1; seq <= 3; seq++) {
		struct job *job = mkjob(seq, "m", JOB_PRIO_NORMAL);
		job->enqueued_mono_ms = seq; /* as the daemon sets it: the older, the smaller */
		queue_push_recovered(q, job);
		job_unref(job);
	}
	assert_int_equal(queue_length(q), 3);
	for (int64_t seq = 1; seq <= 3; seq++) {
		struct job *job = queue_pop_model(q, "m");
		assert_non_null(job);
		assert_int_equal(job->seq, seq);
		job_unref(job);
	}
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
	/* Each summary carries the job a peek returns (the engine's snapshot reads it). */
	assert_ptr_equal(sa->head, queue_peek_model(q, "a"));
	assert_ptr_equal(sb->head, queue_peek_model(q, "b"));
	assert_non_null(sa->head);

	struct queue_model_summary one;
	queue_summary(q, "a", &one);
	assert_string_equal(one.model, "a");
	assert_int_equal(one.count[JOB_PRIO_LOW], 2);
	struct job *popped = queue_pop_model(q, "a");
	queue_summary(q, "a", &one);
	assert_int_equal(one.oldest_enqueued_ms[JOB_PRIO_LOW], 2000);
	assert_ptr_equal(one.head, queue_peek_model(q, "a"));
	assert_ptr_not_equal(one.head, popped);
	job_unref(popped);
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

/* Pushes a job of key and drops the test's reference. */
static struct job *
push_key(struct queue *q, int64_t seq, const char *model, enum job_priority prio, const char *key)
{
	struct job *job = mkjob(seq, model, prio);
	job->key = key != NULL ? xstrdup(key) : NULL;
	assert_int_equal(queue_push(q, job), 0);
	job_unref(job);
	return job;
}

/* Pops the next job of model, checks peek agreed, charges its key tokens (as the engine
 * does when the run ends) and returns its seq. */
static int64_t
pop_charge(struct queue *q, const char *model, uint64_t tokens, char *key_out)
{
	struct job *peeked = queue_peek_model(q, model);
	struct job *job = queue_pop_model(q, model);
	assert_non_null(job);
	assert_ptr_equal(job, peeked);
	queue_charge(q, job->key, tokens);
	if (key_out != NULL)
		*key_out = job->key != NULL ? job->key[0] : '-';
	int64_t seq = job->seq;
	job_unref(job);
	return seq;
}

static void
test_fair_pop(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	/* Key a floods first; b comes later with fewer jobs of the same model and priority. */
	for (int i = 1; i <= 10; i++)
		push_key(q, i, "m", JOB_PRIO_NORMAL, "a");
	for (int i = 11; i <= 13; i++)
		push_key(q, i, "m", JOB_PRIO_NORMAL, "b");
	/* A high priority job still comes first, whatever its key has been served; it
	 * counts against a, so b goes first among the normal ones. */
	push_key(q, 14, "m", JOB_PRIO_HIGH, "a");
	int64_t want[] = {14, 11, 1, 12, 2, 13, 3, 4, 5, 6, 7, 8, 9, 10};
	for (size_t i = 0; i < VD_ARRAY_LEN(want); i++)
		assert_int_equal(pop_charge(q, "m", 10, NULL), want[i]);
	assert_null(queue_pop_model(q, "m"));
	struct queue_key_stats ks;
	queue_key_stats(q, "a", &ks);
	assert_int_equal(ks.tokens, 110);
	assert_int_equal(ks.queued, 0);
	queue_key_stats(q, "b", &ks);
	assert_int_equal(ks.tokens, 30);
	queue_free(q);
}

/* Without keys (every job->key NULL) the order stays FIFO whatever is charged. */
static void
test_no_keys_is_fifo(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	for (int i = 1; i <= 20; i++)
		push_key(q, i, "m", JOB_PRIO_LOW, NULL);
	for (int i = 1; i <= 20; i++)
		assert_int_equal(pop_charge(q, "m", (uint64_t)(i * 37 % 11), NULL), i);
	struct queue_key_stats ks;
	queue_key_stats(q, NULL, &ks);
	assert_true(ks.tokens > 0);
	queue_free(q);
}

/* Shares follow weights: a (weight 3) gets three turns for each of b's. */
static void
test_fair_weights(void **state)
{
	(void)state;
	struct queue *q = queue_new(1000);
	queue_set_key_weight(q, "a", 3);
	queue_set_key_weight(q, "b", 1);
	for (int i = 0; i < 200; i++)
		push_key(q, i + 1, "m", JOB_PRIO_NORMAL, i % 2 ? "a" : "b");
	int got_a = 0;
	for (int i = 0; i < 80; i++) {
		char key;
		pop_charge(q, "m", 100, &key);
		got_a += key == 'a';
	}
	assert_in_range(got_a, 59, 61);
	struct queue_key_stats ks;
	queue_key_stats(q, "a", &ks);
	assert_int_equal(ks.weight, 3);
	assert_int_equal(ks.queued, 100 - got_a);
	queue_key_stats(q, "nobody", &ks);
	assert_int_equal(ks.weight, 1);
	assert_int_equal(ks.queued, 0);
	queue_free(q);
}

/* Tokens, not jobs: b's jobs cost ten times a's, so a runs ten jobs per b job. */
static void
test_fair_tokens(void **state)
{
	(void)state;
	struct queue *q = queue_new(1000);
	for (int i = 0; i < 400; i++)
		push_key(q, i + 1, "m", JOB_PRIO_NORMAL, i % 2 ? "a" : "b");
	int got_b = 0;
	for (int i = 0; i < 110; i++) {
		char key;
		struct job *next = queue_peek_model(q, "m");
		bool is_b = next->key[0] == 'b';
		pop_charge(q, "m", is_b ? 1000 : 100, &key);
		got_b += key == 'b';
	}
	assert_in_range(got_b, 9, 11);
	queue_free(q);
}

static void
test_fair_join_and_rejoin(void **state)
{
	(void)state;
	struct queue *q = queue_new(1000);
	/* b was served long ago; a has run alone since. When b joins the busy queue it
	 * starts where a is, so it takes turns with a instead of running alone until its
	 * counter catches up with a's. */
	push_key(q, 1, "m", JOB_PRIO_NORMAL, "b");
	pop_charge(q, "m", 10, NULL);
	for (int i = 0; i < 100; i++)
		push_key(q, 100 + i, "m", JOB_PRIO_NORMAL, "a");
	for (int i = 0; i < 50; i++)
		pop_charge(q, "m", 10, NULL);
	for (int i = 0; i < 10; i++)
		push_key(q, 300 + i, "m", JOB_PRIO_NORMAL, "b");
	int run_b = 0, longest_b = 0;
	for (int i = 0; i < 20; i++) {
		char key;
		pop_charge(q, "m", 10, &key);
		run_b = key == 'b' ? run_b + 1 : 0;
		longest_b = run_b > longest_b ? run_b : longest_b;
	}
	assert_true(longest_b <= 2);

	/* The queue empties; a's credit from the busy time is gone: a key arriving
	 * later (c, never served) starts at the virtual time the queue reached, and
	 * when a comes back the two take turns. */
	while (queue_length(q) > 0)
		pop_charge(q, "m", 10, NULL);
	for (int i = 0; i < 10; i++)
		push_key(q, 400 + i, "m", JOB_PRIO_NORMAL, "c");
	pop_charge(q, "m", 10, NULL);
	for (int i = 0; i < 10; i++)
		push_key(q, 500 + i, "m", JOB_PRIO_NORMAL, "a");
	int got_a = 0;
	for (int i = 0; i < 6; i++) {
		char key;
		pop_charge(q, "m", 10, &key);
		got_a += key == 'a';
	}
	assert_in_range(got_a, 2, 4);
	queue_free(q);
}

/* Keys are per queue, not per model: a key's jobs of other models still count. Jobs of
 * one key keep their FIFO order, push_front puts a job back first in its key's line,
 * and remove takes a job out of it. */
static void
test_fair_flows(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *b1 = push_key(q, 1, "m", JOB_PRIO_NORMAL, "b");
	push_key(q, 2, "m", JOB_PRIO_NORMAL, "b");
	push_key(q, 3, "m", JOB_PRIO_NORMAL, "a");
	push_key(q, 4, "m", JOB_PRIO_NORMAL, "a");
	push_key(q, 5, "other", JOB_PRIO_NORMAL, "b");
	/* b was served on another model: a goes first on m although b's jobs are older. */
	assert_int_equal(pop_charge(q, "other", 50, NULL), 5);
	struct job *job = queue_pop_model(q, "m");
	assert_int_equal(job->seq, 3);
	queue_push_front(q, job); /* a dispatch that could not start */
	job_unref(job);
	assert_true(queue_remove(q, b1));
	struct queue_model_summary sum;
	queue_summary(q, "m", &sum);
	assert_int_equal(sum.count[JOB_PRIO_NORMAL], 3);
	assert_int_equal(pop_charge(q, "m", 30, NULL), 3);
	assert_int_equal(pop_charge(q, "m", 30, NULL), 4);
	assert_int_equal(pop_charge(q, "m", 30, NULL), 2);
	assert_int_equal(queue_length(q), 0);
	assert_int_equal(queue_model_count(q), 0);
	queue_free(q);
}

/* Random pushes, push_fronts, removes and pops over models, priorities and keys,
 * checked against the invariants: every pop is the head of its key's line for the
 * first non-empty priority, and per-key counts match. */
static void
test_fair_random(void **state)
{
	(void)state;
	enum { OPS = 20000, KEYS = 5, MODELS = 3 };
	static const char *const keys[KEYS] = {"k0", "k1", "k2", "k3", NULL};
	static const char *const models[MODELS] = {"m0", "m1", "m2"};
	struct queue *q = queue_new(OPS);
	struct job **live = xcalloc(OPS, sizeof(*live));
	size_t nlive = 0;
	uint64_t rng = 7;
	for (int op = 0; op < OPS; op++) {
		int what = (int)(vd_rand64(&rng) % 10);
		const char *model = models[vd_rand64(&rng) % MODELS];
		if (what < 5 || nlive == 0) {
			struct job *job =
			    mkjob(op + 1, model, (enum job_priority)(vd_rand64(&rng) % 3));
			const char *key = keys[vd_rand64(&rng) % KEYS];
			job->key = key != NULL ? xstrdup(key) : NULL;
			assert_int_equal(queue_push(q, job), 0);
			live[nlive++] = job; /* the test's reference */
		} else if (what < 7) {
			size_t i = vd_rand64(&rng) % nlive;
			assert_true(queue_remove(q, live[i]));
			job_unref(live[i]);
			live[i] = live[--nlive];
		} else {
			struct job *job = queue_pop_model(q, model);
			if (job == NULL)
				continue;
			/* Nothing of a more urgent priority, nor older of its key and FIFO. */
			for (size_t i = 0; i < nlive; i++) {
				const struct job *o = live[i];
				if (o == job || strcmp(o->model, model) != 0)
					continue;
				assert_true(o->priority >= job->priority);
				bool same_key = (o->key == NULL && job->key == NULL) ||
						(o->key != NULL && job->key != NULL &&
						 strcmp(o->key, job->key) == 0);
				if (same_key && o->priority == job->priority)
					assert_true(o->seq > job->seq);
			}
			queue_charge(q, job->key, vd_rand64(&rng) % 200);
			size_t i = 0;
			while (live[i] != job)
				i++;
			live[i] = live[--nlive];
			if (vd_rand64(&rng) % 4 == 0) {
				queue_push_front(q, job);
				job_unref(job); /* the pop's; the test keeps its own */
				live[nlive++] = job;
			} else {
				job_unref(job);
				job_unref(job);
			}
		}
		if (op % 1000 == 0) {
			for (int k = 0; k < KEYS; k++) {
				size_t want = 0;
				for (size_t i = 0; i < nlive; i++)
					if ((live[i]->key == NULL && keys[k] == NULL) ||
					    (live[i]->key != NULL && keys[k] != NULL &&
					     strcmp(live[i]->key, keys[k]) == 0))
						want++;
				struct queue_key_stats ks;
				queue_key_stats(q, keys[k], &ks);
				assert_int_equal(ks.queued, want);
			}
			assert_int_equal(queue_length(q), nlive);
		}
	}
	for (size_t i = 0; i < nlive; i++)
		job_unref(live[i]);
	free(live);
	queue_free(q);
}

/* Aging: a low job that waited two PRIORITY_AGING_S intervals is served before a newer
 * high job of its model; one interval makes it normal, still behind high. */
static void
test_aging_pop(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *low = mkjob(1, "m", JOB_PRIO_LOW);
	low->enqueued_mono_ms = 1000;
	assert_int_equal(queue_push(q, low), 0);
	job_unref(low);
	struct job *high = mkjob(2, "m", JOB_PRIO_HIGH);
	high->enqueued_mono_ms = 60000;
	assert_int_equal(queue_push(q, high), 0);
	job_unref(high);

	assert_ptr_equal(queue_peek_model(q, "m"), high);		     /* no aging */
	assert_ptr_equal(queue_peek_model_aged(q, "m", 61000, 60000), high); /* normal */
	assert_ptr_equal(queue_peek_model_aged(q, "m", 121000, 60000), low); /* high, older */
	struct job *job = queue_pop_model_aged(q, "m", 121000, 60000);
	assert_ptr_equal(job, low);
	job_unref(job);
	job = queue_pop_model_aged(q, "m", 121000, 60000);
	assert_ptr_equal(job, high);
	job_unref(job);
	assert_null(queue_pop_model_aged(q, "m", 121000, 60000));
	queue_free(q);
}

/* Pushes a job of model m, priority prio with a deadline at deadline_ms (0: none). */
static struct job *
push_deadline(struct queue *q, int64_t seq, const char *model, enum job_priority prio,
	      int64_t deadline_ms)
{
	struct job *job = mkjob(seq, model, prio);
	job->enqueued_mono_ms = 1000 + seq;
	if (deadline_ms > 0)
		job_set_deadline(job, deadline_ms, 0, 0);
	assert_int_equal(queue_push(q, job), 0);
	job_unref(job);
	return job;
}

static void
expect_pop(struct queue *q, const char *model, struct job *want)
{
	struct job *job = queue_pop_model(q, model);
	assert_ptr_equal(job, want);
	if (job != NULL)
		job_unref(job);
}

/* Within a class, the earliest deadline first (ties by submission), jobs without one
 * after them in FIFO order; the summary shows each priority's earliest deadline. */
static void
test_deadline_order(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *a = push_deadline(q, 1, "m", JOB_PRIO_NORMAL, 0);
	struct job *b = push_deadline(q, 2, "m", JOB_PRIO_NORMAL, 50000);
	struct job *c = push_deadline(q, 3, "m", JOB_PRIO_NORMAL, 30000);
	struct job *d = push_deadline(q, 4, "m", JOB_PRIO_NORMAL, 0);
	struct job *e = push_deadline(q, 5, "m", JOB_PRIO_NORMAL, 30000);
	struct job *h = push_deadline(q, 6, "m", JOB_PRIO_HIGH, 0);
	struct job *l = push_deadline(q, 7, "m", JOB_PRIO_LOW, 10000);

	struct queue_model_summary s;
	queue_summary(q, "m", &s);
	assert_int_equal(s.earliest_deadline_ms[JOB_PRIO_HIGH], 0);
	assert_int_equal(s.earliest_deadline_ms[JOB_PRIO_NORMAL], 30000);
	assert_int_equal(s.earliest_deadline_ms[JOB_PRIO_LOW], 10000);
	/* Jobs served before each by deadline within its FIFO. */
	assert_int_equal(queue_deadline_ahead(q, c), 0);
	assert_int_equal(queue_deadline_ahead(q, e), 1);
	assert_int_equal(queue_deadline_ahead(q, b), 2);
	assert_int_equal(queue_deadline_ahead(q, a), 3); /* every deadline job of its FIFO */
	struct job *probe = mkjob(99, "m", JOB_PRIO_NORMAL);
	job_set_deadline(probe, 40000, 0, 0); /* not queued: between e and b */
	assert_int_equal(queue_deadline_ahead(q, probe), 2);
	job_unref(probe);

	/* A deadline does not lift a job above a higher class: high, then normal by
	 * deadline, then low. */
	expect_pop(q, "m", h);
	expect_pop(q, "m", c);
	/* Removing one from the middle of the deadline list keeps it ordered. */
	assert_true(queue_remove(q, b));
	expect_pop(q, "m", e);
	expect_pop(q, "m", a);
	expect_pop(q, "m", d);
	queue_summary(q, "m", &s);
	assert_int_equal(s.earliest_deadline_ms[JOB_PRIO_NORMAL], 0);
	expect_pop(q, "m", l);
	assert_int_equal(queue_length(q), 0);
	queue_free(q);
}

/* Aging still lifts across classes: an old low job aged to high goes before a newer
 * normal job with a deadline. Within one effective class, a deadline beats age: a low
 * FIFO aged into normal serves a normal deadline job before its own older job, and its
 * own deadline job before an older normal job without one. */
static void
test_deadline_aging(void **state)
{
	(void)state;
	struct queue *q = queue_new(100);
	struct job *low = mkjob(1, "m", JOB_PRIO_LOW);
	low->enqueued_mono_ms = 1000;
	assert_int_equal(queue_push(q, low), 0);
	job_unref(low);
	struct job *norm = mkjob(2, "m", JOB_PRIO_NORMAL);
	norm->enqueued_mono_ms = 100000;
	job_set_deadline(norm, 200000, 0, 0);
	assert_int_equal(queue_push(q, norm), 0);
	job_unref(norm);

	/* 121 s: low aged two classes (high) beats the normal deadline job. */
	assert_ptr_equal(queue_peek_model_aged(q, "m", 121000, 60000), low);
	/* 61 s: low aged one class (normal), same class as norm: the deadline first. */
	assert_ptr_equal(queue_peek_model_aged(q, "m", 61000, 60000), norm);
	/* Without aging: normal before low. */
	assert_ptr_equal(queue_peek_model(q, "m"), norm);

	/* A low deadline job in the aged low FIFO goes before an older normal job without
	 * one (both normal now). */
	struct job *n2 = mkjob(3, "m", JOB_PRIO_NORMAL);
	n2->enqueued_mono_ms = 30000;
	assert_int_equal(queue_push(q, n2), 0);
	job_unref(n2);
	struct job *l2 = mkjob(4, "m", JOB_PRIO_LOW);
	l2->enqueued_mono_ms = 50000;
	job_set_deadline(l2, 150000, 0, 0);
	assert_int_equal(queue_push(q, l2), 0);
	job_unref(l2);
	struct job *job = queue_pop_model_aged(q, "m", 61000, 60000);
	assert_ptr_equal(job, l2); /* deadline 150 s, before norm's 200 s */
	job_unref(job);
	job = queue_pop_model_aged(q, "m", 61000, 60000);
	assert_ptr_equal(job, norm);
	job_unref(job);
	job = queue_pop_model_aged(q, "m", 61000, 60000);
	assert_ptr_equal(job, low); /* no deadlines left: the older head of the class */
	job_unref(job);
	job = queue_pop_model_aged(q, "m", 61000, 60000);
	assert_ptr_equal(job, n2);
	job_unref(job);
	queue_free(q);
}

/* Random pushes (with and without deadlines, several keys), pops and removes on one
 * model, checked against a naive model: class first, then deadline jobs by (deadline,
 * seq), then the rest; with one key the rest is FIFO. */
static void
test_deadline_random(void **state)
{
	(void)state;
	enum { N = 3000 };
	struct queue *q = queue_new(N);
	struct job **live = xcalloc(N, sizeof(*live));
	size_t nlive = 0;
	uint64_t rng = 12345;
	int64_t seq = 0, with_deadline = 0;

	for (int step = 0; step < 20000; step++) {
		uint64_t r = vd_rand64(&rng) % 10;
		if ((r < 5 || nlive == 0) && nlive < N) {
			int64_t dl = vd_rand64(&rng) % 2 ? 1 + (int64_t)(vd_rand64(&rng) % 50) : 0;
			with_deadline += dl > 0;
			live[nlive++] = push_deadline(q, ++seq, "m",
						      (enum job_priority)(vd_rand64(&rng) % 3), dl);
		} else if (r < 8) {
			/* The naive choice: the smallest (priority, no deadline, deadline, seq). */
			size_t best = 0;
			for (size_t i = 1; i < nlive; i++) {
				const struct job *a = live[i], *b = live[best];
				if (a->priority != b->priority) {
					if (a->priority < b->priority)
						best = i;
					continue;
				}
				bool ad = a->deadline_mono_ms > 0, bd = b->deadline_mono_ms > 0;
				if (ad != bd) {
					if (ad)
						best = i;
					continue;
				}
				if (ad && a->deadline_mono_ms != b->deadline_mono_ms) {
					if (a->deadline_mono_ms < b->deadline_mono_ms)
						best = i;
					continue;
				}
				if (a->seq < b->seq)
					best = i;
			}
			struct job *want = live[best];
			live[best] = live[--nlive];
			expect_pop(q, "m", want);
		} else {
			size_t i = vd_rand64(&rng) % nlive;
			assert_true(queue_remove(q, live[i]));
			live[i] = live[--nlive];
		}
		assert_int_equal(queue_length(q), nlive);
	}
	assert_true(with_deadline > 1000);
	free(live);
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
	    cmocka_unit_test(test_push_recovered),
	    cmocka_unit_test(test_summaries),
	    cmocka_unit_test(test_position),
	    cmocka_unit_test(test_many_jobs),
	    cmocka_unit_test(test_fair_pop),
	    cmocka_unit_test(test_no_keys_is_fifo),
	    cmocka_unit_test(test_fair_weights),
	    cmocka_unit_test(test_fair_tokens),
	    cmocka_unit_test(test_fair_join_and_rejoin),
	    cmocka_unit_test(test_fair_flows),
	    cmocka_unit_test(test_fair_random),
	    cmocka_unit_test(test_aging_pop),
	    cmocka_unit_test(test_deadline_order),
	    cmocka_unit_test(test_deadline_aging),
	    cmocka_unit_test(test_deadline_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
