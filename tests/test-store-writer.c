/*
 * test-store-writer.c: unit tests for the store's writer thread (src/store/store.c):
 * writes commit in the order they were saved, however they are split into batches;
 * writes handed over while a commit runs all go into the next one; a failed batch is
 * rolled back whole and reported through its last ticket; a read sees every write saved
 * before it; a state update leaves the request alone; store_close commits what is left.
 *
 * To hold the writer inside a commit, the tests take SQLite's write lock from a
 * connection of their own (BEGIN IMMEDIATE): the writer's first write then waits on it
 * (busy timeout) until the test commits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

#include <sqlite3.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	char *dir;
	struct store *st;
};

static int
setup(void **state)
{
	char tmpl[] = "/tmp/vramd-test-store-writer-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->dir = xstrdup(d);
	char *cause = NULL;
	if (store_open(f->dir, STORE_SYNC_NORMAL, &f->st, &cause) != 0)
		fail_msg("store_open: %s", cause);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->st);
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->dir);
	free(f);
	return 0;
}

static struct job *
new_job(struct store *st, const char *model)
{
	struct job *job = job_new(store_next_seq(st, NULL), model, JOB_KIND_GENERATE,
				  JOB_PRIO_NORMAL, json_pack("{s:s}", "prompt", "hello"), NULL);
	job->submitted_at_ms = 1700000000000;
	return job;
}

/* The completions the loop would see. */
struct seen {
	int n;
	uint64_t through[64];
	int rc[64];
};

static void
seen_cb(uint64_t through, int rc, const char *cause, void *arg)
{
	struct seen *s = arg;
	assert_true(s->n < 64);
	assert_true(rc == 0 ? cause == NULL : cause != NULL);
	s->through[s->n] = through;
	s->rc[s->n] = rc;
	s->n++;
}

/* Waits (bounded) until the writer has taken everything handed over. */
static void
wait_taken(struct store *st)
{
	for (int i = 0; i < 5000; i++) {
		struct store_stats ss;
		store_get_stats(st, &ss);
		if (ss.queued == 0)
			return;
		usleep(1000);
	}
	fail_msg("the writer did not take its batch in 5 s");
}

/* Holds SQLite's write lock from a connection of the test's own. */
static sqlite3 *
lock_db(const char *dir)
{
	char *path = xasprintf("%s/vramd.db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	free(path);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static void
unlock_db(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static enum job_status
stored_status(struct store *st, const char *id)
{
	struct job *job = store_job_get(st, id);
	assert_non_null(job);
	enum job_status status = job->status;
	job_unref(job);
	return status;
}

/* Each write flushed on its own while the writer is held: they reach the database in
 * the order they were saved, the later state of a job over the earlier. */
static void
test_order_across_batches(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	enum { N = 40 };
	struct job *jobs[N];
	for (int i = 0; i < N; i++) {
		jobs[i] = new_job(st, "m");
		store_job_save(st, jobs[i], NULL);
		store_flush(st);
	}
	static const enum job_status path[] = {JOB_PENDING, JOB_RUNNING, JOB_QUEUED, JOB_RUNNING,
					       JOB_COMPLETE};
	for (size_t p = 0; p < VD_ARRAY_LEN(path); p++)
		for (int i = 0; i < N; i++) {
			jobs[i]->status = (i % 2 == 0 || p < 3) ? path[p] : JOB_FAILED;
			jobs[i]->attempts = (int)p;
			store_job_update(st, jobs[i], NULL);
			if (i % 3 == 0)
				store_flush(st);
		}
	assert_int_equal(store_last_ticket(st), N * (1 + VD_ARRAY_LEN(path)));
	assert_int_equal(store_commit(st, NULL), 0);
	for (int i = 0; i < N; i++) {
		struct job *back = store_job_get(st, jobs[i]->id);
		assert_non_null(back);
		assert_int_equal(back->status, i % 2 == 0 ? JOB_COMPLETE : JOB_FAILED);
		assert_int_equal(back->attempts, VD_ARRAY_LEN(path) - 1);
		job_unref(back);
		job_unref(jobs[i]);
	}
	struct store_counts counts;
	assert_int_equal(store_counts(st, &counts, NULL), 0);
	assert_int_equal(counts.total, N);
	assert_int_equal(counts.by_status[JOB_COMPLETE], N / 2);
	assert_int_equal(counts.by_status[JOB_FAILED], N / 2);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
}

/* While the writer is inside a commit, writes handed over in many flushes wait and then
 * go together into one transaction: two commits in all, reported in ticket order. */
static void
test_batches_what_arrived_during_a_commit(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	sqlite3 *lock = lock_db(f->dir);
	struct job *first = new_job(st, "m");
	store_job_save(st, first, NULL);
	store_flush(st);
	wait_taken(st); /* the writer holds it and waits for the lock */
	enum { N = 50 };
	for (int i = 0; i < N; i++) {
		struct job *job = new_job(st, "m");
		store_job_save(st, job, NULL);
		store_flush(st);
		job_unref(job);
	}
	struct store_stats ss;
	store_get_stats(st, &ss);
	assert_int_equal(ss.commits, 0);
	assert_int_equal(ss.queued, N);
	assert_true(store_has_pending(st));
	unlock_db(lock);

	store_wait(st);
	struct seen seen = {0};
	store_completions(st, seen_cb, &seen);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.through[0], 1);
	assert_int_equal(seen.through[1], 1 + N);
	assert_int_equal(seen.rc[0], 0);
	assert_int_equal(seen.rc[1], 0);
	store_get_stats(st, &ss);
	assert_int_equal(ss.commits, 2);
	assert_int_equal(ss.writes, 1 + N);
	assert_int_equal(ss.max_batch, N);
	assert_false(store_has_pending(st));
	job_unref(first);
}

/* The loop learns of a commit through the notify descriptor. */
static void
test_notify_fd(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	struct pollfd pfd = {.fd = store_notify_fd(st), .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 0), 0);
	struct job *job = new_job(st, "m");
	store_job_save(st, job, NULL);
	store_flush(st);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	struct seen seen = {0};
	store_completions(st, seen_cb, &seen);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.through[0], 1);
	assert_int_equal(poll(&pfd, 1, 0), 0); /* drained */
	job_unref(job);
}

/* One bad write rolls back its whole batch (and only it), reported through its last
 * ticket; the next batch commits. */
static void
test_failed_batch(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	struct job *a = new_job(st, "m");
	store_job_save(st, a, NULL);
	assert_int_equal(store_commit(st, NULL), 0);

	sqlite3 *lock = lock_db(f->dir);
	struct job *held = new_job(st, "m");
	store_job_save(st, held, NULL);
	store_flush(st);
	wait_taken(st);
	/* The next batch: a good job, then a row whose public id is a's (UNIQUE). */
	struct job *b = new_job(st, "m");
	store_job_save(st, b, NULL);
	struct job *dup = new_job(st, "m");
	memcpy(dup->id, a->id, sizeof(dup->id));
	store_job_save(st, dup, NULL);
	store_flush(st);
	unlock_db(lock);
	store_wait(st); /* else c could join the failing batch */
	struct job *c = new_job(st, "m");
	store_job_save(st, c, NULL);

	store_wait(st);
	struct seen seen = {0};
	store_completions(st, seen_cb, &seen);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.through[0], 2);
	assert_int_equal(seen.rc[0], 0);
	assert_int_equal(seen.through[1], 4);
	assert_true(seen.rc[1] < 0);
	assert_int_equal(seen.through[2], 5);
	assert_int_equal(seen.rc[2], 0);

	struct job *kept = store_job_get(st, held->id);
	assert_non_null(kept);
	job_unref(kept);
	struct job *gone = store_job_get(st, b->id);
	assert_null(gone);
	struct job *there = store_job_get(st, c->id);
	assert_non_null(there);
	job_unref(there);
	job_unref(a);
	job_unref(held);
	job_unref(b);
	job_unref(dup);
	job_unref(c);
}

/* A read right after a save, with no commit asked for, sees the write. */
static void
test_read_sees_earlier_writes(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	struct job *job = new_job(st, "m");
	store_job_save(st, job, NULL);
	assert_int_equal(stored_status(st, job->id), JOB_QUEUED);
	job->status = JOB_COMPLETE;
	job->result = json_pack("{s:s}", "response", "done");
	store_job_update(st, job, NULL);
	assert_int_equal(stored_status(st, job->id), JOB_COMPLETE);
	job_unref(job);
	struct seen seen = {0};
	store_completions(st, seen_cb, &seen);
	assert_true(seen.n >= 1);
	assert_int_equal(seen.through[seen.n - 1], 2);
}

/* A state update keeps the request, metadata and key written at submission. */
static void
test_update_keeps_the_request(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	struct job *job =
	    job_new(store_next_seq(st, NULL), "m", JOB_KIND_CHAT, JOB_PRIO_HIGH,
		    json_pack("{s:s}", "prompt", "keep me"), json_pack("{s:i}", "n", 7));
	job->key = xstrdup("team");
	store_job_save(st, job, NULL);
	/* What the update must not write: */
	free(job->request_text);
	job->request_text = xstrdup("{\"prompt\":\"changed\"}");
	free(job->key);
	job->key = xstrdup("other");
	job->status = JOB_RUNNING;
	job->started_at_ms = 1700000000500;
	store_job_update(st, job, NULL);
	assert_int_equal(store_commit(st, NULL), 0);
	struct job *back = store_job_get(st, job->id);
	assert_non_null(back);
	assert_int_equal(back->status, JOB_RUNNING);
	assert_int_equal(back->started_at_ms, 1700000000500);
	assert_string_equal(back->request_text, "{\"prompt\":\"keep me\"}");
	assert_string_equal(back->key, "team");
	assert_string_equal(back->metadata_text, "{\"n\":7}");
	job_unref(back);
	job_unref(job);
}

/* store_close commits what was saved and never flushed. */
static void
test_close_commits(void **state)
{
	struct fixture *f = *state;
	struct job *job = new_job(f->st, "m");
	store_job_save(f->st, job, NULL);
	store_close(f->st);
	char *cause = NULL;
	if (store_open(f->dir, STORE_SYNC_NORMAL, &f->st, &cause) != 0)
		fail_msg("store_open: %s", cause);
	assert_int_equal(stored_status(f->st, job->id), JOB_QUEUED);
	job_unref(job);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order_across_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batches_what_arrived_during_a_commit, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_notify_fd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_sees_earlier_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_keeps_the_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_commits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
