/*
 * test-store.c: unit tests for src/store/ (store.c and its backends): every job field
 * survives a round trip, unfinished jobs come back queued after a restart, many jobs
 * commit in one batch, reservations persist, bad data directories give clear errors,
 * and a database of schema version 1 (before API keys) opens, keeps its jobs and gains
 * the key column.
 *
 * The same program tests both backends: with VRAMD_TEST_PG_URL set (tests/pgserver.py
 * sets it) every backend-independent test runs on PostgreSQL, each in a fresh public
 * schema, the SQLite-only ones skip, and the PostgreSQL-only ones run (schema upgrade
 * from version 4, bad URLs, a server restart and outage under the writer). Without it,
 * the reverse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
tmpdir(void)
{
	char tmpl[] = "/tmp/vramd-test-store-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return xstrdup(d);
}

static void
rmtree(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* The PostgreSQL server under test (tests/pgserver.py), or NULL: SQLite. */
static const char *pg_url;

static void
pg_quiet_cb(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Runs sql on the test server (a connection of the test's own); fails the test on error. */
static void
pg_exec(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", pg_url, PQerrorMessage(c));
	PQsetNoticeProcessor(c, pg_quiet_cb, NULL); /* DROP SCHEMA's list of what it dropped */
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

/* The first value of the first row of a query on the test server (caller frees). */
static char *
pg_value(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", pg_url, PQerrorMessage(c));
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	char *v = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	return v;
}

/* Where a test's store lives: a new temporary directory, or the test server with an
 * empty public schema. Free with location_free. */
static char *
location_new(void)
{
	if (pg_url == NULL)
		return tmpdir();
	pg_exec("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	return xstrdup(pg_url);
}

static void
location_free(char *location)
{
	if (pg_url == NULL)
		rmtree(location);
	free(location);
}

static void
skip_on_pg(void)
{
	if (pg_url != NULL)
		skip();
}

static void
skip_on_sqlite(void)
{
	if (pg_url == NULL)
		skip();
}

static struct store *
open_store(const char *dir)
{
	struct store *st = NULL;
	char *cause = NULL;
	int rc = store_open(dir, STORE_SYNC_NORMAL, &st, &cause);
	if (rc != 0)
		fail_msg("store_open: %s", cause);
	return st;
}

static void
commit(struct store *st)
{
	char *cause = NULL;
	if (store_commit(st, &cause) != 0)
		fail_msg("store_commit: %s", cause);
}

static struct job *
full_job(struct store *st)
{
	json_t *req = json_pack("{s:s,s:{s:f}}", "prompt", "why is the sky blue?", "options",
				"temperature", 0.5);
	json_t *meta = json_pack("{s:s}", "user", "alice");
	struct job *job = job_new(store_next_seq(st, NULL), "llama3.2:latest", JOB_KIND_CHAT,
				  JOB_PRIO_HIGH, req, meta);
	job->status = JOB_COMPLETE;
	job->result = json_pack("{s:s}", "response", "Rayleigh scattering");
	job->error = xstrdup("none really");
	job->submitted_at_ms = 1700000000123;
	job->started_at_ms = 1700000001000;
	job->completed_at_ms = 1700000002000;
	job->wait_ms = 877;
	job->load_ms = 1234;
	job->run_ms = 999;
	job->attempts = 2;
	job->key = xstrdup("team-a");
	return job;
}

static void
test_round_trip(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	assert_non_null(strstr(store_path(st), pg_url != NULL ? "127.0.0.1" : "vramd.db"));
	struct job *job = full_job(st);
	assert_false(store_has_pending(st));
	assert_int_equal(store_job_save(st, job, NULL), 0);
	assert_true(store_has_pending(st));
	commit(st);
	assert_false(store_has_pending(st));
	store_close(st);

	st = open_store(dir);
	struct job *got = store_job_get(st, job->id);
	assert_non_null(got);
	assert_int_equal(got->seq, job->seq);
	assert_string_equal(got->id, job->id);
	assert_string_equal(got->model, "llama3.2:latest");
	assert_int_equal(got->kind, JOB_KIND_CHAT);
	assert_int_equal(got->priority, JOB_PRIO_HIGH);
	assert_int_equal(got->status, JOB_COMPLETE);
	assert_string_equal(got->request_text, job->request_text);
	assert_string_equal(got->metadata_text, job->metadata_text);
	assert_true(json_equal(got->result, job->result));
	assert_string_equal(got->error, "none really");
	assert_true(got->submitted_at_ms == job->submitted_at_ms);
	assert_true(got->started_at_ms == job->started_at_ms);
	assert_true(got->completed_at_ms == job->completed_at_ms);
	assert_int_equal(got->wait_ms, 877);
	assert_int_equal(got->load_ms, 1234);
	assert_int_equal(got->run_ms, 999);
	assert_int_equal(got->attempts, 2);
	assert_string_equal(got->key, "team-a");
	/* The sequence counter continues after the stored maximum (on PostgreSQL after the
	 * block the previous process claimed, which may have gaps). */
	if (pg_url == NULL)
		assert_true(store_next_seq(st, NULL) == job->seq + 1);
	else
		assert_true(store_next_seq(st, NULL) > job->seq);
	assert_null(store_job_get(st, "j-00000000000000ff"));
	assert_null(store_job_get(st, "nonsense"));
	job_unref(got);
	job_unref(job);
	store_close(st);
	location_free(dir);
}

struct collected {
	struct job *jobs[64];
	int n;
};

static void
collect_cb(struct job *job, void *arg)
{
	struct collected *c = arg;
	assert_true(c->n < 64);
	c->jobs[c->n++] = job;
}

static void
collected_free(struct collected *c)
{
	for (int i = 0; i < c->n; i++)
		job_unref(c->jobs[i]);
	c->n = 0;
}

static void
test_restart_recovery(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	enum job_status statuses[] = {JOB_QUEUED,  JOB_RUNNING, JOB_COMPLETE,
				      JOB_PENDING, JOB_FAILED,	JOB_CANCELLED};
	int64_t seqs[6];
	for (int i = 0; i < 6; i++) {
		struct job *job = job_new(store_next_seq(st, NULL), "m", JOB_KIND_GENERATE,
					  JOB_PRIO_NORMAL, NULL, NULL);
		job->status = statuses[i];
		if (statuses[i] == JOB_RUNNING)
			job->started_at_ms = 5;
		job->deadline_at_ms = 1000 + i; /* kept across the restart */
		seqs[i] = job->seq;
		assert_int_equal(store_job_save(st, job, NULL), 0);
		job_unref(job);
	}
	commit(st);
	store_close(st);

	st = open_store(dir);
	struct collected c = {0};
	char *cause = NULL;
	assert_int_equal(store_load_unfinished(st, collect_cb, &c, &cause), 3);
	assert_int_equal(c.n, 3);
	int64_t want[] = {seqs[0], seqs[1], seqs[3]};
	for (int i = 0; i < 3; i++) {
		assert_true(c.jobs[i]->seq == want[i]);
		assert_int_equal(c.jobs[i]->status, JOB_QUEUED);
		assert_int_equal(c.jobs[i]->started_at_ms, 0);
		assert_int_equal(c.jobs[i]->deadline_at_ms, 1000 + (want[i] - seqs[0]));
		assert_int_equal(c.jobs[i]->refcount, 1);
	}
	collected_free(&c);

	/* Listing: newest first, filtered. */
	assert_int_equal(store_jobs_list(st, &(struct store_job_filter){0}, collect_cb, &c, &cause),
			 6);
	assert_true(c.jobs[0]->seq == seqs[5]);
	collected_free(&c);
	struct store_job_filter f = {.status_mask = 1u << JOB_COMPLETE, .limit = 10};
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 1);
	assert_int_equal(c.jobs[0]->status, JOB_COMPLETE);
	collected_free(&c);
	f = (struct store_job_filter){.model = "m", .limit = 2};
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 2);
	collected_free(&c);
	f = (struct store_job_filter){
	    .status_mask = 1u << JOB_QUEUED, .model = "other", .limit = 2};
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 0);

	struct store_counts counts;
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, 6);
	assert_int_equal(counts.by_status[JOB_RUNNING], 1);
	assert_int_equal(counts.by_status[JOB_CANCELLED], 1);
	assert_int_equal(counts.by_priority[JOB_PRIO_NORMAL], 6);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(counts.per_model, "m"), "queued")),
	    1);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
	store_close(st);
	location_free(dir);
}

/* The counts follow each job's status as it is saved again (moved from one status to the
 * next, never counted twice), and stay right across a reopen. */
static void
test_counts_follow_status_changes(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	struct job *job =
	    job_new(store_next_seq(st, NULL), "m", JOB_KIND_GENERATE, JOB_PRIO_HIGH, NULL, NULL);
	job->key = xstrdup("alpha");
	enum job_status path[] = {JOB_QUEUED, JOB_QUEUED, JOB_RUNNING, JOB_COMPLETE};
	char *cause = NULL;
	struct store_counts counts;
	for (size_t i = 0; i < VD_ARRAY_LEN(path); i++) {
		job->status = path[i];
		job->attempts = (int)i;
		assert_int_equal(store_job_save(st, job, NULL), 0);
		commit(st);
		assert_int_equal(store_counts(st, &counts, &cause), 0);
		assert_int_equal(counts.total, 1);
		assert_int_equal(counts.by_status[path[i]], 1);
		assert_int_equal(counts.by_priority_status[JOB_PRIO_HIGH][path[i]], 1);
		json_t *k = json_object_get(counts.per_key, "alpha");
		assert_int_equal(json_integer_value(json_object_get(k, job_status_name(path[i]))),
				 1);
		assert_int_equal(json_object_size(k), 1);
		json_decref(counts.per_model);
		json_decref(counts.per_key);
	}
	job_unref(job);
	store_close(st);
	st = open_store(dir);
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, 1);
	assert_int_equal(counts.by_status[JOB_COMPLETE], 1);
	assert_int_equal(counts.by_status[JOB_QUEUED], 0);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
	store_close(st);
	location_free(dir);
}

/* The list filter: sets of statuses and priorities in one query, newest first, the limit
 * counted after every filter. */
static void
test_list_filter(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	/* 30 jobs: status cycles over the six, priority over the three, two models. */
	for (int i = 0; i < 30; i++) {
		struct job *job =
		    job_new(store_next_seq(st, NULL), i % 2 ? "a" : "b", JOB_KIND_GENERATE,
			    (enum job_priority)(i % 3), NULL, NULL);
		job->status = (enum job_status)(i % 6);
		assert_int_equal(store_job_save(st, job, NULL), 0);
		job_unref(job);
	}
	commit(st);
	char *cause = NULL;
	struct collected c = {0};
	struct store_job_filter f = {
	    .status_mask = (1u << JOB_COMPLETE) | (1u << JOB_FAILED),
	    .priority_mask = 1u << JOB_PRIO_HIGH,
	    .limit = 100,
	};
	/* i % 6 in {3, 4} and i % 3 == 0: i = 3, 9, 15, 21, 27. */
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 5);
	int64_t want[] = {28, 22, 16, 10, 4}; /* seq = i + 1, newest first */
	for (int i = 0; i < 5; i++)
		assert_true(c.jobs[i]->seq == want[i]);
	collected_free(&c);
	f.limit = 2;
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 2);
	assert_true(c.jobs[0]->seq == 28 && c.jobs[1]->seq == 22);
	collected_free(&c);
	/* Every status, every priority: the same as no filter. */
	f = (struct store_job_filter){.status_mask = 0x3f, .priority_mask = 0x7, .model = "a"};
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 15);
	collected_free(&c);
	/* Bits beyond the enums are ignored. */
	f = (struct store_job_filter){.status_mask = 1u << 20, .limit = 3};
	assert_int_equal(store_jobs_list(st, &f, collect_cb, &c, &cause), 3);
	collected_free(&c);
	store_close(st);
	location_free(dir);
}

static mode_t
file_mode(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return sb.st_mode & 07777;
}

/* A data directory vramd creates is 0700, the database and its WAL files 0600 whatever
 * the umask; an existing directory keeps its mode. */
static void
test_file_modes(void **state)
{
	(void)state;
	skip_on_pg();
	mode_t old_umask = umask(022);
	char *parent = tmpdir();
	assert_int_equal(chmod(parent, 0755), 0);
	char *dir = xasprintf("%s/new/data", parent);
	struct store *st = open_store(dir);
	struct job *job =
	    job_new(store_next_seq(st, NULL), "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL, NULL, NULL);
	assert_int_equal(store_job_save(st, job, NULL), 0);
	job_unref(job);
	commit(st);
	assert_int_equal(file_mode(dir), 0700);
	static const char *const files[] = {"vramd.db", "vramd.db-wal", "vramd.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		char *path = xasprintf("%s/%s", dir, files[i]);
		if (file_mode(path) != 0600)
			fail_msg("%s is mode %o", path, (unsigned)file_mode(path));
		free(path);
	}
	store_close(st);
	/* An existing directory keeps its mode; an existing world-readable database is
	 * narrowed. */
	assert_int_equal(chmod(dir, 0750), 0);
	char *db = xasprintf("%s/vramd.db", dir);
	assert_int_equal(chmod(db, 0644), 0);
	st = open_store(dir);
	assert_int_equal(file_mode(dir), 0750);
	assert_int_equal(file_mode(db), 0600);
	store_close(st);
	umask(old_umask);
	free(db);
	rmtree(parent);
	free(dir);
	free(parent);
}

static void
test_group_commit(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	enum { N = 5000 };
	for (int i = 0; i < N; i++) {
		struct job *job =
		    job_new(store_next_seq(st, NULL), i % 2 ? "a" : "b", JOB_KIND_EMBED,
			    (enum job_priority)(i % 3), json_pack("{s:i}", "input", i), NULL);
		assert_int_equal(store_job_save(st, job, NULL), 0);
		job_unref(job);
	}
	assert_true(store_has_pending(st));
	commit(st);
	/* Saving a job again replaces its row. */
	struct job *again = store_job_get(st, "j-0000000000000001");
	assert_non_null(again);
	again->status = JOB_COMPLETE;
	assert_int_equal(store_job_save(st, again, NULL), 0);
	commit(st);
	job_unref(again);
	store_close(st);

	st = open_store(dir);
	struct store_counts counts;
	char *cause = NULL;
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, N);
	assert_int_equal(counts.by_status[JOB_QUEUED], N - 1);
	assert_int_equal(counts.by_status[JOB_COMPLETE], 1);
	assert_int_equal(counts.by_priority[JOB_PRIO_HIGH], (N + 2) / 3);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
	store_close(st);
	location_free(dir);
}

struct res_seen {
	int n;
	char ids[4][32];
	uint64_t bytes[4];
	int gpu[4];
	int64_t expires[4];
	char owner[4][32];
};

static void
res_cb(const struct store_reservation *res, void *arg)
{
	struct res_seen *seen = arg;
	assert_true(seen->n < 4);
	vd_strlcpy(seen->ids[seen->n], res->id, sizeof(seen->ids[0]));
	seen->bytes[seen->n] = res->bytes;
	seen->gpu[seen->n] = res->gpu;
	seen->expires[seen->n] = res->expires_at_ms;
	vd_strlcpy(seen->owner[seen->n], res->owner != NULL ? res->owner : "(null)",
		   sizeof(seen->owner[0]));
	seen->n++;
}

static void
test_reservations(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	struct store_reservation a = {.id = "train",
				      .gpu = 0,
				      .bytes = 4 * VD_GIB,
				      .created_at_ms = 1000,
				      .expires_at_ms = 61000,
				      .ttl_ms = 60000,
				      .owner = "trainer"};
	struct store_reservation b = {
	    .id = "sd", .gpu = -1, .bytes = 2 * VD_GIB, .created_at_ms = 2000};
	struct store_reservation c = {.id = "gone", .gpu = 1, .bytes = 1, .created_at_ms = 3000};
	assert_int_equal(store_reservation_save(st, &a, NULL), 0);
	assert_int_equal(store_reservation_save(st, &b, NULL), 0);
	assert_int_equal(store_reservation_save(st, &c, NULL), 0);
	commit(st);
	assert_int_equal(store_reservation_delete(st, "gone", NULL), 0);
	assert_int_equal(store_reservation_delete(st, "never-existed", NULL), 0);
	commit(st);
	store_close(st);

	st = open_store(dir);
	struct res_seen seen = {0};
	char *cause = NULL;
	assert_int_equal(store_reservations_load(st, res_cb, &seen, &cause), 2);
	assert_string_equal(seen.ids[0], "train");
	assert_true(seen.bytes[0] == 4 * VD_GIB);
	assert_int_equal(seen.gpu[0], 0);
	assert_int_equal(seen.expires[0], 61000);
	assert_string_equal(seen.owner[0], "trainer");
	assert_string_equal(seen.ids[1], "sd");
	assert_int_equal(seen.gpu[1], -1);
	assert_string_equal(seen.owner[1], "(null)");
	store_close(st);
	location_free(dir);
}

static void
test_bad_data_dir(void **state)
{
	(void)state;
	skip_on_pg();
	char *dir = tmpdir();
	struct store *st = NULL;
	char *cause = NULL;

	/* A data dir path that is a regular file. */
	char *file = xasprintf("%s/plainfile", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_true(store_open(file, STORE_SYNC_FULL, &st, &cause) < 0);
	assert_null(st);
	assert_non_null(strstr(cause, file));
	vd_free(cause);

	/* A corrupt database file. */
	char *bad = xasprintf("%s/corrupt", dir);
	assert_int_equal(mkdir(bad, 0700), 0);
	char *db = xasprintf("%s/vramd.db", bad);
	f = fopen(db, "w");
	assert_non_null(f);
	for (int i = 0; i < 512; i++)
		fputs("this is not a sqlite database at all. ", f);
	fclose(f);
	assert_true(store_open(bad, STORE_SYNC_FULL, &st, &cause) < 0);
	assert_null(st);
	assert_non_null(strstr(cause, "vramd.db"));
	assert_non_null(strstr(cause, "not a database"));
	vd_free(cause);

	/* An unwritable directory (root can write anywhere: skip that check as root). */
	if (geteuid() != 0) {
		char *ro = xasprintf("%s/readonly", dir);
		assert_int_equal(mkdir(ro, 0500), 0);
		assert_true(store_open(ro, STORE_SYNC_FULL, &st, &cause) < 0);
		assert_non_null(strstr(cause, "not writable"));
		vd_free(cause);
		chmod(ro, 0700);
		free(ro);
	}

	/* A nested directory that does not exist yet is created. */
	char *nested = xasprintf("%s/a/b/c", dir);
	assert_int_equal(store_open(nested, STORE_SYNC_FULL, &st, &cause), 0);
	store_close(st);

	free(nested);
	free(db);
	free(bad);
	free(file);
	rmtree(dir);
	free(dir);
}

/* The schema of version 1 exactly as vramd created it, with one finished job. */
static const char schema_v1[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version (version) VALUES (1);"
    "CREATE TABLE jobs ("
    " seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, model TEXT NOT NULL,"
    " kind TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,"
    " request TEXT, metadata TEXT, result TEXT, error TEXT,"
    " submitted_at INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL DEFAULT 0,"
    " completed_at INTEGER NOT NULL DEFAULT 0, wait_ms INTEGER NOT NULL DEFAULT 0,"
    " load_ms INTEGER NOT NULL DEFAULT 0, run_ms INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_status ON jobs (status, seq);"
    "CREATE INDEX jobs_model ON jobs (model, seq);"
    "CREATE TABLE reservations ("
    " id TEXT PRIMARY KEY, gpu INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0,"
    " ttl_ms INTEGER NOT NULL DEFAULT 0, owner TEXT);"
    "INSERT INTO jobs (seq, id, model, kind, priority, status, request, result) VALUES"
    " (7, 'j-0000000000000007', 'm:latest', 'generate', 'low', 'complete',"
    " '{\"prompt\":\"hi\"}', '{\"response\":\"yo\"}');";

static int count_jobs_cb_n;

static void
count_jobs_cb(struct job *job, void *arg)
{
	(void)arg;
	assert_string_equal(job->key, "alpha");
	count_jobs_cb_n++;
	job_unref(job);
}

static void
test_schema_upgrade(void **state)
{
	(void)state;
	skip_on_pg();
	char *dir = tmpdir();
	char *path = xasprintf("%s/vramd.db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct store *st = open_store(dir);
	struct job *old = store_job_get(st, "j-0000000000000007");
	assert_non_null(old);
	assert_string_equal(old->model, "m:latest");
	assert_int_equal(old->priority, JOB_PRIO_LOW);
	assert_null(old->key);
	assert_int_equal(old->deadline_at_ms, 0); /* v4: no deadline for jobs from before */
	assert_int_equal(old->placement, JOB_NPLACEMENTS); /* from before schema 5: unknown */
	assert_string_equal(json_string_value(json_object_get(old->result, "response")), "yo");
	job_unref(old);
	assert_int_equal(store_next_seq(st, NULL), 8);

	struct job *job = full_job(st);
	free(job->key);
	job->key = xstrdup("alpha");
	job->deadline_at_ms = 1700000000123;
	job->placement = JOB_PLACE_CPU;
	char *cause = NULL;
	assert_int_equal(store_job_save(st, job, &cause), 0);
	commit(st);
	store_close(st);

	/* Opened again: already at the new version, the key kept. */
	st = open_store(dir);
	struct job *back = store_job_get(st, job->id);
	assert_string_equal(back->key, "alpha");
	assert_int_equal(back->deadline_at_ms, 1700000000123);
	assert_int_equal(back->placement, JOB_PLACE_CPU); /* schema 5 keeps it */
	job_unref(back);
	struct store_job_filter f = {.key = "alpha"};
	count_jobs_cb_n = 0;
	assert_int_equal(store_jobs_list(st, &f, count_jobs_cb, NULL, &cause), 1);
	assert_int_equal(count_jobs_cb_n, 1);
	f.key = "nobody";
	assert_int_equal(store_jobs_list(st, &f, count_jobs_cb, NULL, &cause), 0);
	struct store_counts counts;
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, 2);
	assert_int_equal(json_object_size(counts.per_key), 1);
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(counts.per_key, "alpha"), "complete")),
			 1);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
	store_close(st);
	job_unref(job);

	db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *s = NULL;
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_version", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 5);
	sqlite3_finalize(s);
	sqlite3_close(db);
	free(path);
	rmtree(dir);
	free(dir);
}

/* A write that fails (a second job with the first one's id) rolls its whole batch back,
 * however many writes came before it, and the next batch commits. */
static void
test_failed_batch_rolls_back(void **state)
{
	(void)state;
	char *dir = location_new();
	struct store *st = open_store(dir);
	enum { N = 600 }; /* more than one pipeline round on PostgreSQL */
	struct job *first = NULL;
	for (int i = 0; i < N; i++) {
		struct job *job = job_new(store_next_seq(st, NULL), "m", JOB_KIND_GENERATE,
					  JOB_PRIO_NORMAL, NULL, NULL);
		if (first == NULL)
			first = job_ref(job);
		if (i == N - 10)
			vd_strlcpy(job->id, first->id, sizeof(job->id)); /* a UNIQUE violation */
		assert_int_equal(store_job_save(st, job, NULL), 0);
		job_unref(job);
	}
	char *cause = NULL;
	assert_true(store_commit(st, &cause) < 0);
	assert_non_null(strstr(cause, "rolled back"));
	free(cause);
	cause = NULL;
	assert_null(store_job_get(st, first->id));
	struct store_counts counts;
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, 0);
	json_decref(counts.per_model);
	json_decref(counts.per_key);

	assert_int_equal(store_job_save(st, first, NULL), 0);
	commit(st);
	struct job *got = store_job_get(st, first->id);
	assert_non_null(got);
	job_unref(got);
	job_unref(first);
	store_close(st);
	location_free(dir);
}

/* --- PostgreSQL only ------------------------------------------------------------------------ */

/* The PostgreSQL schema of version 4 exactly as vramd created it (store-pg.c), with one
 * finished job and one queued one. */
static const char pg_schema_v4[] =
    "CREATE TABLE vramd_schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE jobs ("
    " seq BIGINT PRIMARY KEY, id TEXT UNIQUE NOT NULL, model TEXT NOT NULL,"
    " kind TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,"
    " request TEXT, metadata TEXT, result TEXT, error TEXT,"
    " submitted_at BIGINT NOT NULL DEFAULT 0, started_at BIGINT NOT NULL DEFAULT 0,"
    " completed_at BIGINT NOT NULL DEFAULT 0, wait_ms BIGINT NOT NULL DEFAULT 0,"
    " load_ms BIGINT NOT NULL DEFAULT 0, run_ms BIGINT NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, key TEXT,"
    " deadline_at BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_status ON jobs (status, seq);"
    "CREATE INDEX jobs_model ON jobs (model, seq);"
    "CREATE INDEX jobs_key ON jobs (key, seq);"
    "CREATE TABLE reservations ("
    " id TEXT PRIMARY KEY, gpu INTEGER NOT NULL, bytes BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL DEFAULT 0,"
    " ttl_ms BIGINT NOT NULL DEFAULT 0, owner TEXT);"
    "CREATE TABLE job_counts ("
    " model TEXT NOT NULL, status TEXT NOT NULL, priority TEXT NOT NULL,"
    " key TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (model, status, priority, key));"
    "CREATE FUNCTION vramd_jobs_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    "  UPDATE job_counts SET n = n - 1 WHERE model = OLD.model AND status = OLD.status"
    "   AND priority = OLD.priority AND key = COALESCE(OLD.key, '');"
    " END IF;"
    " IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    "  INSERT INTO job_counts (model, status, priority, key, n)"
    "   VALUES (NEW.model, NEW.status, NEW.priority, COALESCE(NEW.key, ''), 1)"
    "   ON CONFLICT (model, status, priority, key) DO UPDATE SET n = job_counts.n + 1;"
    " END IF;"
    " RETURN NULL; END $$;"
    "CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON jobs"
    " FOR EACH ROW EXECUTE FUNCTION vramd_jobs_count();"
    "CREATE TRIGGER jobs_recounted AFTER UPDATE OF model, status, priority, key ON jobs"
    " FOR EACH ROW WHEN (OLD.model IS DISTINCT FROM NEW.model"
    " OR OLD.status IS DISTINCT FROM NEW.status OR OLD.priority IS DISTINCT FROM NEW.priority"
    " OR OLD.key IS DISTINCT FROM NEW.key) EXECUTE FUNCTION vramd_jobs_count();"
    "INSERT INTO vramd_schema_version (version) VALUES (4);"
    "INSERT INTO jobs (seq, id, model, kind, priority, status, request, result, key,"
    " deadline_at) VALUES"
    " (7, 'j-0000000000000007', 'm:latest', 'generate', 'low', 'complete',"
    " '{\"prompt\":\"hi\"}', '{\"response\":\"yo\"}', 'alpha', 0),"
    " (9, 'j-0000000000000009', 'm:latest', 'chat', 'high', 'queued',"
    " '{\"messages\":[]}', NULL, NULL, 1700000000999);";

/* A database of schema version 4 (before placements) opens, keeps its jobs and their
 * counts, recovers the queued one with its placement unknown (JOB_NPLACEMENTS, for the
 * daemon to resolve), and stores placements from then on. */
/* Two instances on one database (issue 14): their seqs never collide, and each new job
 * and each change of a job's status is announced on the leader's channels when, and only
 * when, its batch commits. */
static void
test_pg_shared_seqs_and_notifications(void **state)
{
	(void)state;
	skip_on_sqlite();
	char *loc = location_new();
	struct store *a = open_store(loc), *b = open_store(loc);
	PGconn *listen = PQconnectdb(pg_url);
	assert_int_equal(PQstatus(listen), CONNECTION_OK);
	PQclear(PQexec(listen, "LISTEN vramd_job_submitted; LISTEN vramd_job_changed"));

	/* 600 seqs from each, interleaved: more than two blocks each, all distinct. */
	enum { N = 600 };
	int64_t *seqs = xcalloc(2 * N, sizeof(*seqs));
	for (int i = 0; i < N; i++) {
		seqs[2 * i] = store_next_seq(a, NULL);
		seqs[2 * i + 1] = store_next_seq(b, NULL);
	}
	for (int i = 0; i < 2 * N; i++) {
		assert_true(seqs[i] > 0);
		for (int j = 0; j < i; j++)
			if (seqs[i] == seqs[j])
				fail_msg("seq %lld handed out twice", (long long)seqs[i]);
	}
	free(seqs);

	struct job *job =
	    job_new(store_next_seq(a, NULL), "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL, NULL, NULL);
	assert_int_equal(store_job_save(a, job, NULL), 0);
	PQconsumeInput(listen);
	assert_null(PQnotifies(listen)); /* nothing before the commit */
	commit(a);
	job->status = JOB_RUNNING;
	assert_int_equal(store_job_update(b, job, NULL), 0);
	commit(b);
	job->run_ms = 5; /* not a change of status: no notification */
	assert_int_equal(store_job_update(b, job, NULL), 0);
	commit(b);
	job->status = JOB_COMPLETE;
	assert_int_equal(store_job_update(a, job, NULL), 0);
	commit(a);
	const char *want[][2] = {{"vramd_job_submitted", job->id},
				 {"vramd_job_changed", job->id},
				 {"vramd_job_changed", job->id}};
	for (size_t i = 0; i < VD_ARRAY_LEN(want); i++) {
		PGnotify *n = NULL;
		for (int tries = 0; n == NULL && tries < 200; tries++) {
			PQconsumeInput(listen);
			if ((n = PQnotifies(listen)) == NULL)
				usleep(10000);
		}
		assert_non_null(n);
		assert_string_equal(n->relname, want[i][0]);
		assert_string_equal(n->extra, want[i][1]);
		PQfreemem(n);
	}
	usleep(50000);
	PQconsumeInput(listen);
	assert_null(PQnotifies(listen));
	PQfinish(listen);
	job_unref(job);
	store_close(a);
	store_close(b);
	location_free(loc);
}

static void
count_failures_cb(uint64_t through, int rc, const char *cause, void *arg)
{
	(void)through;
	if (rc < 0) {
		print_message("batch failed: %s\n", cause);
		(*(int *)arg)++;
	}
}

/* Two instances' batches count the same (model, status, priority) combinations in
 * opposite orders at the same time: with one shared counter row per combination they
 * deadlocked (PostgreSQL aborts one batch after deadlock_timeout); each writer has its
 * own rows now, and the summed counts stay right. */
static void
test_pg_concurrent_writers_do_not_deadlock(void **state)
{
	(void)state;
	skip_on_sqlite();
	char *loc = location_new();
	struct store *a = open_store(loc), *b = open_store(loc);
	enum { ROUNDS = 15, MODELS = 12 };
	int failures = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < MODELS; i++) {
			char model[16];
			snprintf(model, sizeof(model), "m%d", i);
			struct job *ja = job_new(store_next_seq(a, NULL), model, JOB_KIND_GENERATE,
						 JOB_PRIO_NORMAL, NULL, NULL);
			snprintf(model, sizeof(model), "m%d", MODELS - 1 - i);
			struct job *jb = job_new(store_next_seq(b, NULL), model, JOB_KIND_GENERATE,
						 JOB_PRIO_NORMAL, NULL, NULL);
			assert_int_equal(store_job_save(a, ja, NULL), 0);
			assert_int_equal(store_job_save(b, jb, NULL), 0);
			job_unref(ja);
			job_unref(jb);
		}
		store_flush(a);
		store_flush(b);
		store_wait(a);
		store_wait(b);
		store_completions(a, count_failures_cb, &failures);
		store_completions(b, count_failures_cb, &failures);
	}
	assert_int_equal(failures, 0);
	struct store_counts c;
	char *cause = NULL;
	assert_int_equal(store_counts(a, &c, &cause), 0);
	assert_int_equal(c.total, 2 * ROUNDS * MODELS);
	json_decref(c.per_model);
	json_decref(c.per_key);
	store_close(a);
	store_close(b);
	location_free(loc);
}

static void
test_pg_schema_upgrade(void **state)
{
	(void)state;
	skip_on_sqlite();
	char *loc = location_new();
	pg_exec(pg_schema_v4);

	struct store *st = open_store(loc);
	char *v = pg_value("SELECT MAX(version) FROM vramd_schema_version");
	assert_string_equal(v, "8");
	free(v);
	struct job *old = store_job_get(st, "j-0000000000000007");
	assert_non_null(old);
	assert_string_equal(old->model, "m:latest");
	assert_int_equal(old->priority, JOB_PRIO_LOW);
	assert_string_equal(old->key, "alpha");
	assert_int_equal(old->placement, JOB_NPLACEMENTS);
	assert_string_equal(json_string_value(json_object_get(old->result, "response")), "yo");
	job_unref(old);
	struct collected c = {0};
	char *cause = NULL;
	assert_int_equal(store_load_unfinished(st, collect_cb, &c, &cause), 1);
	assert_true(c.jobs[0]->seq == 9);
	assert_int_equal(c.jobs[0]->kind, JOB_KIND_CHAT);
	assert_int_equal(c.jobs[0]->deadline_at_ms, 1700000000999);
	assert_int_equal(c.jobs[0]->placement, JOB_NPLACEMENTS);
	collected_free(&c);
	assert_int_equal(store_next_seq(st, NULL), 10);

	/* A job saved after the upgrade is counted beside the old ones. */
	struct job *job = full_job(st);
	job->placement = JOB_PLACE_CPU;
	assert_int_equal(store_job_save(st, job, &cause), 0);
	commit(st);
	store_close(st);

	st = open_store(loc);
	struct job *back = store_job_get(st, job->id);
	assert_non_null(back);
	assert_int_equal(back->placement, JOB_PLACE_CPU);
	job_unref(back);
	struct store_counts counts;
	assert_int_equal(store_counts(st, &counts, &cause), 0);
	assert_int_equal(counts.total, 3);
	assert_int_equal(counts.by_status[JOB_COMPLETE], 2);
	assert_int_equal(counts.by_status[JOB_QUEUED], 1);
	assert_int_equal(counts.by_priority_status[JOB_PRIO_HIGH][JOB_QUEUED], 1);
	json_decref(counts.per_model);
	json_decref(counts.per_key);
	store_close(st);
	job_unref(job);

	/* A newer schema than this vramd knows is refused. */
	pg_exec("UPDATE vramd_schema_version SET version = 99");
	assert_true(store_open(loc, STORE_SYNC_FULL, &st, &cause) < 0);
	assert_null(st);
	assert_non_null(strstr(cause, "newer than this vramd"));
	free(cause);
	location_free(loc);
}

/* The URL of the test server with a password and another user or port: pg_url is
 * postgresql://USER@HOST:PORT/DB. */
static char *
pg_url_with(const char *user_password, const char *port, const char *tail)
{
	const char *host = strchr(pg_url, '@') + 1;
	const char *colon = strchr(host, ':');
	const char *slash = strchr(colon, '/');
	return xasprintf("postgresql://%s@%.*s:%s%s%s", user_password, (int)(colon - host), host,
			 port != NULL ? port : "", port != NULL ? slash : colon + 1, tail);
}

/* A bad URL, a server that does not answer and a refused login fail store_open with a
 * cause naming the URL without its password and libpq's reason; a password in a good
 * URL never shows in store_path. */
static void
test_pg_bad_urls(void **state)
{
	(void)state;
	skip_on_sqlite();
	char *loc = location_new();
	struct {
		char *url;
		const char *reason;
	} cases[] = {
	    {pg_url_with("vramd:sekrit", NULL, "?no_such_option=1"), "invalid URL"},
	    {pg_url_with("vramd:sekrit", "1", ""), "cannot connect"},
	    {pg_url_with("nobody:sekrit", NULL, ""), "role \"nobody\" does not exist"},
	    {pg_url_with("vramd:sekrit", NULL, "_no_such_db"), "does not exist"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		struct store *st = NULL;
		char *cause = NULL;
		assert_true(store_open(cases[i].url, STORE_SYNC_FULL, &st, &cause) < 0);
		assert_null(st);
		assert_non_null(cause);
		if (strstr(cause, cases[i].reason) == NULL || strstr(cause, "sekrit") != NULL ||
		    strstr(cause, "127.0.0.1") == NULL)
			fail_msg("case %zu: %s", i, cause);
		free(cause);
		free(cases[i].url);
	}
	/* The test server trusts loopback logins, so a password is accepted and unused. */
	char *url = pg_url_with("vramd:sekrit", NULL, "");
	struct store *st = open_store(url);
	assert_null(strstr(store_path(st), "sekrit"));
	assert_non_null(strstr(store_path(st), "127.0.0.1"));
	store_close(st);
	free(url);
	location_free(loc);
}

static void
pg_ctl(const char *action)
{
	const char *ctl = getenv("VRAMD_TEST_PG_CTL");
	if (ctl == NULL)
		skip(); /* run without tests/pgserver.py: no way to restart the server */
	char *cmd = xasprintf("%s %s >/dev/null", ctl, action);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
	free(cmd);
}

static struct job *
saved_job(struct store *st, int *rc, char **cause)
{
	struct job *job = job_new(store_next_seq(st, NULL), "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL,
				  json_pack("{s:s}", "prompt", "hi"), NULL);
	assert_int_equal(store_job_save(st, job, NULL), 0);
	*rc = store_commit(st, cause);
	return job;
}

/* The server restarts between two batches: the second commits on a new connection, and
 * reads reconnect too. The server is down: the batch fails with a cause naming the URL,
 * and once it is back the next batch commits. */
static void
test_pg_server_restart(void **state)
{
	(void)state;
	skip_on_sqlite();
	char *loc = location_new();
	struct store *st = open_store(loc);
	char *cause = NULL;
	int rc;
	struct job *a = saved_job(st, &rc, &cause);
	assert_int_equal(rc, 0);

	pg_ctl("-w -m fast restart");
	struct job *b = saved_job(st, &rc, &cause);
	if (rc != 0)
		fail_msg("commit after a restart: %s", cause);
	struct job *got = store_job_get(st, a->id);
	assert_non_null(got);
	job_unref(got);

	pg_ctl("-w -m fast stop");
	struct job *c = saved_job(st, &rc, &cause);
	const char *opts = getenv("VRAMD_TEST_PG_OPTS");
	char *start = xasprintf("-w -o \"%s\" start", opts != NULL ? opts : "");
	if (rc == 0) {
		pg_ctl(start);
		fail_msg("a commit with the server down succeeded");
	}
	assert_int_equal(rc, -ECONNREFUSED);
	assert_non_null(strstr(cause, "127.0.0.1"));
	assert_non_null(strstr(cause, "rolled back"));
	free(cause);
	cause = NULL;
	assert_null(store_job_get(st, a->id)); /* a read fails too (logged) */

	pg_ctl(start);
	free(start);
	struct job *d = saved_job(st, &rc, &cause);
	if (rc != 0)
		fail_msg("commit after the server came back: %s", cause);
	struct job *want[] = {a, b, d};
	for (size_t i = 0; i < VD_ARRAY_LEN(want); i++) {
		got = store_job_get(st, want[i]->id);
		assert_non_null(got);
		job_unref(got);
	}
	assert_null(store_job_get(st, c->id)); /* its batch failed: not stored */
	store_close(st);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	job_unref(d);
	location_free(loc);
}

int
main(void)
{
	pg_url = getenv("VRAMD_TEST_PG_URL");
	if (pg_url != NULL && pg_url[0] == '\0')
		pg_url = NULL;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_restart_recovery),
	    cmocka_unit_test(test_group_commit),
	    cmocka_unit_test(test_reservations),
	    cmocka_unit_test(test_bad_data_dir),
	    cmocka_unit_test(test_list_filter),
	    cmocka_unit_test(test_file_modes),
	    cmocka_unit_test(test_schema_upgrade),
	    cmocka_unit_test(test_counts_follow_status_changes),
	    cmocka_unit_test(test_failed_batch_rolls_back),
	    cmocka_unit_test(test_pg_shared_seqs_and_notifications),
	    cmocka_unit_test(test_pg_concurrent_writers_do_not_deadlock),
	    cmocka_unit_test(test_pg_schema_upgrade),
	    cmocka_unit_test(test_pg_bad_urls),
	    cmocka_unit_test(test_pg_server_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
