/*
 * store-pg.c: the store's PostgreSQL backend (store-backend.h), chosen by a
 * postgresql:// or postgres:// URL in STORE; the only file that includes libpq-fe.h.
 * store.c's shared front calls it; nothing else does.
 *
 * Two connections, like the SQLite backend: the writer thread's (wconn: its batches,
 * BEGIN ... COMMIT, with synchronous_commit on, so a batch is on the server's disk
 * before the daemon sends a 202) and the loop's reads (rconn). Each prepares its
 * statements once (PQprepare) after it connects; parameters travel as text. A batch's
 * writes and its COMMIT go out in libpq's pipeline mode, STORE_PG_PIPELINE_DEPTH at a
 * time, so a batch of n writes costs about n / STORE_PG_PIPELINE_DEPTH + 2 round trips
 * instead of n + 2.
 *
 * The schema lives in the connection's default schema (search_path): tables jobs,
 * reservations, job_counts (kept by triggers in the jobs' own transactions, so
 * store_counts reads a few rows, never the whole history, as on SQLite) and
 * vramd_schema_version. Version numbers follow the SQLite schema's: a new database is
 * created at version 4 (the SQLite columns up to deadline_at) and migrated like an old
 * one, in one transaction under an advisory lock.
 *
 * A connection that breaks (the server restarted, the network dropped) is reset
 * (PQreset) before its next use: the writer's at the next batch, the reader's at the
 * next read. A batch whose connection broke under it fails and is reported as a failed
 * commit; a BEGIN that fails on a broken connection is retried once after a reset, as
 * nothing of the batch ran yet; a read is retried once likewise.
 *
 * Errors name the URL without its credentials (vd_url_redact) and carry libpq's message.
 */
#include "store-backend.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_PG_SCHEMA_VERSION 8
/* Job seqs an instance claims from the shared sequence at once: one round trip per this
 * many submissions. */
#define STORE_PG_SEQ_BLOCK	256
#define STORE_PG_SEQ_BLOCK_TEXT "256"
/* Opening waits at most this long for the server (a URL's connect_timeout wins). */
#define STORE_PG_CONNECT_TIMEOUT_S "10"
/* The advisory lock the schema setup holds, so two vramd starting at once on one
 * database do not both create it. ASCII "vramdsch". */
#define STORE_PG_SCHEMA_LOCK "8536966771563833192"
/* A batch's writes are pipelined: this many are sent before their results are read
 * (a sync point, not a commit), so neither side's socket buffer fills while the other
 * waits for it to be read. */
#define STORE_PG_PIPELINE_DEPTH 256

enum store_pg_stmt {
	STORE_PG_JOB_SAVE,
	STORE_PG_JOB_UPDATE,
	STORE_PG_RES_SAVE,
	STORE_PG_RES_DELETE,
	STORE_PG_JOB_GET,
	STORE_PG_JOB_UNFINISHED,
	STORE_PG_COUNTS,
	STORE_PG_RES_LOAD,
	STORE_PG_NSTMTS
};

/* Each statement, its prepared name and which connection prepares it. */
static const struct {
	const char *name;
	bool writes; /* prepared on wconn, else on rconn */
	const char *sql;
} store_pg_stmts[STORE_PG_NSTMTS] = {
    /* An upsert: the row is updated in place, so the counting trigger sees the old
     * status and the new one. */
    [STORE_PG_JOB_SAVE] = {"vramd_job_save", true,
			   "INSERT INTO jobs (" STORE_JOB_COLUMNS ") VALUES "
			   "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
			   "$16, $17, $18, $19, $20) "
			   "ON CONFLICT (seq) DO UPDATE SET id = EXCLUDED.id, "
			   "model = EXCLUDED.model, kind = EXCLUDED.kind, "
			   "priority = EXCLUDED.priority, status = EXCLUDED.status, "
			   "request = EXCLUDED.request, metadata = EXCLUDED.metadata, "
			   "result = EXCLUDED.result, error = EXCLUDED.error, "
			   "submitted_at = EXCLUDED.submitted_at, "
			   "started_at = EXCLUDED.started_at, "
			   "completed_at = EXCLUDED.completed_at, wait_ms = EXCLUDED.wait_ms, "
			   "load_ms = EXCLUDED.load_ms, run_ms = EXCLUDED.run_ms, "
			   "attempts = EXCLUDED.attempts, key = EXCLUDED.key, "
			   "deadline_at = EXCLUDED.deadline_at, placement = EXCLUDED.placement"},
    /* A state change: only what changes after submission (the indexed id, model and
     * key are left alone). */
    [STORE_PG_JOB_UPDATE] = {"vramd_job_update", true,
			     "UPDATE jobs SET status = $2, result = $3, error = $4, "
			     "started_at = $5, completed_at = $6, wait_ms = $7, load_ms = $8, "
			     "run_ms = $9, attempts = $10 WHERE seq = $1"},
    [STORE_PG_RES_SAVE] = {"vramd_res_save", true,
			   "INSERT INTO reservations (id, gpu, bytes, created_at, expires_at, "
			   "ttl_ms, owner) VALUES ($1, $2, $3, $4, $5, $6, $7) "
			   "ON CONFLICT (id) DO UPDATE SET gpu = EXCLUDED.gpu, "
			   "bytes = EXCLUDED.bytes, created_at = EXCLUDED.created_at, "
			   "expires_at = EXCLUDED.expires_at, ttl_ms = EXCLUDED.ttl_ms, "
			   "owner = EXCLUDED.owner"},
    [STORE_PG_RES_DELETE] = {"vramd_res_delete", true, "DELETE FROM reservations WHERE id = $1"},
    [STORE_PG_JOB_GET] = {"vramd_job_get", false,
			  "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE seq = $1 AND id = $2"},
    [STORE_PG_JOB_UNFINISHED] = {"vramd_job_unfinished", false,
				 "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE status IN "
				 "('queued', 'pending', 'running') ORDER BY seq"},
    [STORE_PG_COUNTS] = {"vramd_counts", false,
			 "SELECT model, status, priority, NULLIF(key, ''), SUM(n) FROM job_counts "
			 "GROUP BY model, status, priority, key HAVING SUM(n) > 0"},
    [STORE_PG_RES_LOAD] = {"vramd_res_load", false,
			   "SELECT id, gpu, bytes, created_at, expires_at, ttl_ms, owner "
			   "FROM reservations ORDER BY created_at, id"},
};

/* The statement each kind of write runs. */
static const enum store_pg_stmt store_pg_write_stmt[STORE_NWRITE_KINDS] = {
    [STORE_WRITE_JOB_SAVE] = STORE_PG_JOB_SAVE,
    [STORE_WRITE_JOB_UPDATE] = STORE_PG_JOB_UPDATE,
    [STORE_WRITE_RES_SAVE] = STORE_PG_RES_SAVE,
    [STORE_WRITE_RES_DELETE] = STORE_PG_RES_DELETE,
};

/*
 * Version 4, what a new database starts from: the SQLite schema's columns up to
 * deadline_at (versions 1 to 3 never existed here). Never changed: later versions are
 * rows of store_pg_migrations. The counts table is kept by one trigger function, for
 * inserts, deletes and the updates that move a job between counts.
 */
static const char store_pg_schema_v4[] =
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
    "INSERT INTO vramd_schema_version (version) VALUES (4);";

/* Applied in order, in the opening transaction, to any database older than them. */
static const struct {
	int version;
	const char *sql;
} store_pg_migrations[] = {
    /* Where a job may run (issue 11); NULL for jobs from before, which the daemon gives
     * their model's default when it recovers them. */
    {5, "ALTER TABLE jobs ADD COLUMN placement TEXT;"},
    /* Several instances on one database (issue 14; PostgreSQL's own, SQLite stays at 5):
     * job seqs come from a sequence, each instance claiming STORE_PG_SEQ_BLOCK at a time;
     * and every new job and every change of a job's status is announced on commit, for
     * the leader's queue and the followers' long-polls (leader.h's channels). */
    {6, "CREATE SEQUENCE vramd_job_seq INCREMENT BY " STORE_PG_SEQ_BLOCK_TEXT " MINVALUE 1;"
	"SELECT setval('vramd_job_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), false);"
	"CREATE FUNCTION vramd_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN"
	"  IF TG_OP = 'INSERT' THEN PERFORM pg_notify('vramd_job_submitted', NEW.id);"
	"  ELSE PERFORM pg_notify('vramd_job_changed', NEW.id); END IF;"
	"  RETURN NULL;"
	" END $$;"
	"CREATE TRIGGER jobs_submitted_notify AFTER INSERT ON jobs"
	" FOR EACH ROW EXECUTE FUNCTION vramd_jobs_notify();"
	"CREATE TRIGGER jobs_changed_notify AFTER UPDATE OF status ON jobs"
	" FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)"
	" EXECUTE FUNCTION vramd_jobs_notify();"},
    /* Documents every instance shares: the run-time configuration (issue 14). */
    {7, "CREATE TABLE vramd_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL,"
	" updated_at TIMESTAMPTZ NOT NULL DEFAULT now());"},
    /* Counts per writer (issue 14): with one shared row per (model, status, priority,
     * key), two instances' batches took the same rows' locks in different orders and
     * deadlocked. Each writer connection now moves only its own rows (the session's
     * vramd.writer; a job's change may take one of them below zero), and a read sums
     * them. Rows stay bounded by the writers that ever ran times the combinations. */
    {8, "ALTER TABLE job_counts ADD COLUMN writer TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE job_counts DROP CONSTRAINT job_counts_pkey;"
	"ALTER TABLE job_counts ADD PRIMARY KEY (model, status, priority, key, writer);"
	"CREATE OR REPLACE FUNCTION vramd_jobs_count() RETURNS trigger LANGUAGE plpgsql AS $$"
	" DECLARE w TEXT := COALESCE(current_setting('vramd.writer', true), '');"
	" BEGIN"
	" IF TG_OP IN ('UPDATE', 'DELETE') THEN"
	"  INSERT INTO job_counts (model, status, priority, key, writer, n)"
	"   VALUES (OLD.model, OLD.status, OLD.priority, COALESCE(OLD.key, ''), w, -1)"
	"   ON CONFLICT (model, status, priority, key, writer)"
	"   DO UPDATE SET n = job_counts.n - 1;"
	" END IF;"
	" IF TG_OP IN ('INSERT', 'UPDATE') THEN"
	"  INSERT INTO job_counts (model, status, priority, key, writer, n)"
	"   VALUES (NEW.model, NEW.status, NEW.priority, COALESCE(NEW.key, ''), w, 1)"
	"   ON CONFLICT (model, status, priority, key, writer)"
	"   DO UPDATE SET n = job_counts.n + 1;"
	" END IF;"
	" RETURN NULL; END $$;"},
};

/* One connection and whether its statements are prepared on it. */
struct store_pg_conn {
	PGconn *pg;
	bool prepared;
	bool writes; /* prepares the writing statements, else the reading ones */
};

struct store_db {
	char *url;   /* as configured: may hold a password; never logged */
	char *shown; /* the URL as logs and errors show it */
	struct store_pg_conn w, r;
	char writer[64]; /* this store's name for its counter rows: host, pid, start time */
	int w_unread;	 /* the writer's statements sent in pipeline mode, results not read */
};

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the server
 * running...\n"); a cause is one line, so each run of whitespace becomes one space. */
static int
store_pg_fail_msg(const struct store_db *db, char **cause, int rc, const char *what,
		  const char *msg)
{
	char *line = xstrdup(msg);
	size_t n = 0;
	for (const char *p = msg; *p != '\0'; p++) {
		bool space = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
		if (!space)
			line[n++] = *p;
		else if (n > 0 && line[n - 1] != ' ')
			line[n++] = ' ';
	}
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n] = '\0';
	rc = vd_fail(cause, rc, "store %s: %s: %s", db->shown, what, line);
	free(line);
	return rc;
}

static int
store_pg_fail(const struct store_db *db, const struct store_pg_conn *c, char **cause,
	      const char *what)
{
	int rc = PQstatus(c->pg) == CONNECTION_OK ? -EIO : -ECONNRESET;
	return store_pg_fail_msg(db, cause, rc, what, PQerrorMessage(c->pg));
}

/* Notices (CREATE ... IF NOT EXISTS skipping, and the like) go to the debug log, not
 * to stderr as libpq's default does. */
static void
store_pg_notice_cb(void *arg, const char *message)
{
	(void)arg;
	vd_debug(STORE, "postgresql: %s", message);
}

/* Runs sql (no parameters, any number of statements) and checks that it succeeded. */
static int
store_pg_exec(const struct store_db *db, const struct store_pg_conn *c, const char *sql,
	      const char *what, char **cause)
{
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType status = PQresultStatus(res);
	int rc = 0;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		rc = res != NULL && PQstatus(c->pg) == CONNECTION_OK
			 ? store_pg_fail_msg(db, cause, -EIO, what, PQresultErrorMessage(res))
			 : store_pg_fail(db, c, cause, what);
	PQclear(res);
	return rc;
}

/* Prepares c's statements (after each connect: the server forgets them on reset). */
static int
store_pg_prepare(const struct store_db *db, struct store_pg_conn *c, char **cause)
{
	for (int i = 0; i < STORE_PG_NSTMTS; i++) {
		if (store_pg_stmts[i].writes != c->writes)
			continue;
		PGresult *res =
		    PQprepare(c->pg, store_pg_stmts[i].name, store_pg_stmts[i].sql, 0, NULL);
		int rc = 0;
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = store_pg_fail_msg(db, cause, -EIO, store_pg_stmts[i].name,
					       res != NULL ? PQresultErrorMessage(res)
							   : PQerrorMessage(c->pg));
		PQclear(res);
		if (rc < 0)
			return rc;
	}
	c->prepared = true;
	return 0;
}

/* Settings every connection gets, before its first statement. The writer's commits
 * wait for the server's WAL flush whatever the database's default says. */
static int
store_pg_session(const struct store_db *db, struct store_pg_conn *c, char **cause)
{
	PQsetNoticeProcessor(c->pg, store_pg_notice_cb, NULL);
	if (!c->writes)
		return 0;
	/* The writer's own counter rows (schema 8): this process and connection. */
	char sql[160];
	snprintf(sql, sizeof(sql), "SET synchronous_commit = on; SET vramd.writer = '%s'",
		 db->writer);
	return store_pg_exec(db, c, sql, "session", cause);
}

static int
store_pg_connect(const struct store_db *db, struct store_pg_conn *c, char **cause)
{
	/* With expand_dbname, what the URL sets wins over the keywords before it. */
	const char *const keys[] = {"connect_timeout", "application_name", "client_encoding",
				    "dbname", NULL};
	const char *const values[] = {STORE_PG_CONNECT_TIMEOUT_S, "vramd", "UTF8", db->url, NULL};
	c->pg = PQconnectdbParams(keys, values, 1);
	if (c->pg == NULL)
		return vd_fail(cause, -ENOMEM, "store %s: cannot connect: out of memory",
			       db->shown);
	if (PQstatus(c->pg) != CONNECTION_OK)
		return store_pg_fail_msg(db, cause, -ECONNREFUSED, "cannot connect",
					 PQerrorMessage(c->pg));
	return store_pg_session(db, c, cause);
}

/*
 * Makes c usable: a broken connection is reset (PQreset blocks, up to the connect
 * timeout) and its statements prepared again.
 */
static int
store_pg_ready(const struct store_db *db, struct store_pg_conn *c, char **cause)
{
	if (PQstatus(c->pg) != CONNECTION_OK) {
		c->prepared = false;
		PQreset(c->pg);
		if (PQstatus(c->pg) != CONNECTION_OK)
			return store_pg_fail_msg(db, cause, -ECONNREFUSED, "cannot reconnect",
						 PQerrorMessage(c->pg));
		vd_log(STORE, "%s: reconnected (%s)", db->shown, c->writes ? "writes" : "reads");
		int rc = store_pg_session(db, c, cause);
		if (rc < 0)
			return rc;
	}
	return c->prepared ? 0 : store_pg_prepare(db, c, cause);
}

/* Creates or migrates the schema on wconn, in one transaction. */
static int
store_pg_init_schema(struct store_db *db, int64_t *max_seq, char **cause)
{
	struct store_pg_conn *c = &db->w;
	int rc = store_pg_exec(db, c, "BEGIN", "schema", cause);
	if (rc < 0)
		return rc;
	rc = store_pg_exec(db, c,
			   "SELECT pg_advisory_xact_lock(" STORE_PG_SCHEMA_LOCK ");"
			   "CREATE TABLE IF NOT EXISTS vramd_schema_version "
			   "(version INTEGER NOT NULL)",
			   "schema", cause);
	if (rc < 0)
		goto out_rollback;
	PGresult *res = PQexec(c->pg, "SELECT MAX(version) FROM vramd_schema_version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc =
		    store_pg_fail_msg(db, cause, -EIO, "schema version", PQresultErrorMessage(res));
		PQclear(res);
		goto out_rollback;
	}
	int64_t version = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (version > STORE_PG_SCHEMA_VERSION) {
		rc = vd_fail(cause, -EPROTO,
			     "store %s: schema version %" PRId64 " is newer than this vramd (%d)",
			     db->shown, version, STORE_PG_SCHEMA_VERSION);
		goto out_rollback;
	}
	bool created = version < 0;
	if (created) {
		rc = store_pg_exec(db, c, store_pg_schema_v4, "create schema", cause);
		if (rc < 0)
			goto out_rollback;
		version = 4;
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(store_pg_migrations); i++) {
		if (store_pg_migrations[i].version <= version)
			continue;
		rc = store_pg_exec(db, c, store_pg_migrations[i].sql, "migrate schema", cause);
		if (rc < 0)
			goto out_rollback;
		char sql[80];
		snprintf(sql, sizeof(sql), "UPDATE vramd_schema_version SET version = %d",
			 store_pg_migrations[i].version);
		rc = store_pg_exec(db, c, sql, "migrate schema", cause);
		if (rc < 0)
			goto out_rollback;
		if (!created)
			vd_log(STORE, "%s: schema upgraded to version %d", db->shown,
			       store_pg_migrations[i].version);
	}
	rc = store_pg_exec(db, c, "COMMIT", "schema", cause);
	if (rc < 0)
		goto out_rollback;

	res = PQexec(c->pg, "SELECT COALESCE(MAX(seq), 0) FROM jobs");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = store_pg_fail_msg(db, cause, -EIO, "read max seq", PQresultErrorMessage(res));
	else
		*max_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return rc;

out_rollback:
	PQclear(PQexec(c->pg, "ROLLBACK"));
	return rc;
}

/* --- Opening and closing ------------------------------------------------------------------- */

static void store_pg_close(struct store_db *db);

static int
store_pg_open(const char *url, enum store_sync sync, struct store_db **out, int64_t *max_seq,
	      char **cause)
{
	(void)sync; /* commits always wait for the server's flush (synchronous_commit) */
	*out = NULL;
	struct store_db *db = xcalloc(1, sizeof(*db));
	db->url = xstrdup(url);
	db->shown = vd_url_redact(url);
	db->w.writes = true;
	char host[32] = "host";
	gethostname(host, sizeof(host) - 1);
	for (char *h = host; *h != '\0'; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
			*h = '_'; /* it goes into a SET between quotes */
	snprintf(db->writer, sizeof(db->writer), "%s-%ld-%lld", host, (long)getpid(),
		 (long long)vd_now_wall_ms());
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &err);
	int rc;
	if (opts == NULL) {
		rc = store_pg_fail_msg(db, cause, -EINVAL, "invalid URL",
				       err != NULL ? err : "out of memory");
		PQfreemem(err);
		goto out_close;
	}
	PQconninfoFree(opts);
	rc = store_pg_connect(db, &db->w, cause);
	if (rc < 0)
		goto out_close;
	rc = store_pg_init_schema(db, max_seq, cause);
	if (rc < 0)
		goto out_close;
	rc = store_pg_prepare(db, &db->w, cause);
	if (rc < 0)
		goto out_close;
	rc = store_pg_connect(db, &db->r, cause);
	if (rc < 0)
		goto out_close;
	rc = store_pg_prepare(db, &db->r, cause);
	if (rc < 0)
		goto out_close;
	vd_log(STORE, "%s: PostgreSQL %d, schema version %d", db->shown, PQserverVersion(db->w.pg),
	       STORE_PG_SCHEMA_VERSION);
	*out = db;
	return 0;

out_close:
	store_pg_close(db);
	return rc;
}

static void
store_pg_close(struct store_db *db)
{
	PQfinish(db->r.pg);
	PQfinish(db->w.pg);
	if (db->url != NULL)
		explicit_bzero(db->url, strlen(db->url));
	free(db->url);
	free(db->shown);
	free(db);
}

static const char *
store_pg_describe(const struct store_db *db)
{
	return db->shown;
}

/* --- The writer thread's batches (on wconn) ------------------------------------------------ */

/*
 * Reads the results of the writer's statements sent since the last sync, after a new
 * sync point. Returns 0, or the first failure (later statements of the pipeline were
 * skipped by the server: PGRES_PIPELINE_ABORTED).
 */
static int
store_pg_drain(struct store_db *db, char **cause)
{
	PGconn *pg = db->w.pg;
	if (PQpipelineSync(pg) != 1)
		return store_pg_fail(db, &db->w, cause, "pipeline sync");
	int rc = 0;
	while (db->w_unread > 0) {
		PGresult *res = PQgetResult(pg);
		if (res == NULL) { /* the end of one statement's results */
			db->w_unread--;
			continue;
		}
		ExecStatusType status = PQresultStatus(res);
		if (status != PGRES_COMMAND_OK && rc == 0)
			rc = status == PGRES_PIPELINE_ABORTED || PQstatus(pg) != CONNECTION_OK
				 ? store_pg_fail(db, &db->w, cause, "write")
				 : store_pg_fail_msg(db, cause, -EIO, "write",
						     PQresultErrorMessage(res));
		PQclear(res);
	}
	/* The sync point's own result; NULL if the connection broke. */
	PGresult *res = PQgetResult(pg);
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && rc == 0)
		rc = store_pg_fail(db, &db->w, cause, "pipeline sync");
	PQclear(res);
	return rc;
}

static int
store_pg_batch_begin(struct store_db *db, char **cause)
{
	int rc = store_pg_ready(db, &db->w, cause);
	if (rc < 0)
		return rc;
	rc = store_pg_exec(db, &db->w, "BEGIN", "begin", cause);
	if (rc < 0 && PQstatus(db->w.pg) != CONNECTION_OK) {
		/* Broken since its last use (a server restart between batches): nothing of
		 * this batch ran, so reconnecting and beginning again is safe. */
		if (cause != NULL) {
			free(*cause);
			*cause = NULL;
		}
		rc = store_pg_ready(db, &db->w, cause);
		if (rc == 0)
			rc = store_pg_exec(db, &db->w, "BEGIN", "begin", cause);
	}
	if (rc == 0 && PQenterPipelineMode(db->w.pg) != 1)
		rc = store_pg_fail(db, &db->w, cause, "pipeline mode");
	db->w_unread = 0;
	return rc;
}

static int
store_pg_batch_commit(struct store_db *db, char **cause)
{
	if (PQsendQueryParams(db->w.pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1)
		return store_pg_fail(db, &db->w, cause, "commit");
	db->w_unread++;
	int rc = store_pg_drain(db, cause);
	if (rc == 0 && PQexitPipelineMode(db->w.pg) != 1)
		rc = store_pg_fail(db, &db->w, cause, "commit");
	return rc;
}

static void
store_pg_batch_rollback(struct store_db *db)
{
	if (PQpipelineStatus(db->w.pg) != PQ_PIPELINE_OFF) {
		if (db->w_unread > 0 && PQstatus(db->w.pg) == CONNECTION_OK)
			store_pg_drain(db, NULL);
		db->w_unread = 0;
		PQexitPipelineMode(db->w.pg);
	}
	if (PQstatus(db->w.pg) == CONNECTION_OK && PQtransactionStatus(db->w.pg) != PQTRANS_IDLE)
		PQclear(PQexec(db->w.pg, "ROLLBACK"));
}

/* Parameters as texts: ints printed into ints[i], NULL for SQL NULL. */
static void
store_pg_params(const struct store_value *values, int n, const char **params, char (*ints)[24])
{
	for (int i = 0; i < n; i++) {
		if (values[i].type == STORE_INT) {
			snprintf(ints[i], sizeof(ints[i]), "%" PRId64, values[i].i);
			params[i] = ints[i];
		} else {
			params[i] = values[i].type == STORE_TEXT ? values[i].text : NULL;
		}
	}
}

/* Sends one write into the batch's pipeline; its result is read at the next sync. */
static int
store_pg_write(struct store_db *db, const struct store_write *w, char **cause)
{
	const char *params[STORE_WRITE_MAX_VALUES];
	char ints[STORE_WRITE_MAX_VALUES][24];
	store_pg_params(w->values, w->nvalues, params, ints);
	if (PQsendQueryPrepared(db->w.pg, store_pg_stmts[store_pg_write_stmt[w->kind]].name,
				w->nvalues, params, NULL, NULL, 0) != 1)
		return store_pg_fail(db, &db->w, cause, "write");
	if (++db->w_unread >= STORE_PG_PIPELINE_DEPTH)
		return store_pg_drain(db, cause);
	return 0;
}

/* --- Reads (the loop, on rconn) ------------------------------------------------------------ */

/*
 * Runs a read: a prepared statement (name) or, when name is NULL, sql with
 * parameters. A read that fails because the connection broke is retried once on a new
 * one. Returns the result (PQclear it) or NULL with *cause set.
 */
static PGresult *
store_pg_read(struct store_db *db, const char *name, const char *sql, int nparams,
	      const char *const *params, const char *what, char **cause)
{
	for (int attempt = 0;; attempt++) {
		if (store_pg_ready(db, &db->r, cause) < 0)
			return NULL;
		PGresult *res =
		    name != NULL
			? PQexecPrepared(db->r.pg, name, nparams, params, NULL, NULL, 0)
			: PQexecParams(db->r.pg, sql, nparams, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			return res;
		bool broken = PQstatus(db->r.pg) != CONNECTION_OK;
		if (!broken || attempt > 0) {
			if (res != NULL && !broken)
				store_pg_fail_msg(db, cause, -EIO, what, PQresultErrorMessage(res));
			else
				store_pg_fail(db, &db->r, cause, what);
			PQclear(res);
			return NULL;
		}
		PQclear(res);
	}
}

/* The value of a column of res's row (texts borrowed until PQclear). */
static struct store_value
store_pg_value(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return (struct store_value){.type = STORE_NULL};
	const char *text = PQgetvalue(res, row, col);
	return (struct store_value){.type = STORE_TEXT,
				    .text = text,
				    .len = (size_t)PQgetlength(res, row, col),
				    .i = strtoll(text, NULL, 10)};
}

/* Hands each row of res as a job to cb. Returns the count. */
static int
store_pg_each_job(struct store_db *db, PGresult *res, bool requeue, store_job_cb *cb, void *arg)
{
	int rows = PQntuples(res);
	for (int row = 0; row < rows; row++) {
		struct store_value cols[STORE_JOB_NCOLUMNS];
		for (int i = 0; i < STORE_JOB_NCOLUMNS; i++)
			cols[i] = store_pg_value(res, row, i);
		struct job *job = store_job_from_row(db->shown, cols);
		if (requeue) {
			job->status = JOB_QUEUED;
			job->started_at_ms = 0;
		}
		cb(job, arg);
	}
	return rows;
}

static int
store_pg_load_unfinished(struct store_db *db, store_job_cb *cb, void *arg, char **cause)
{
	PGresult *res = store_pg_read(db, store_pg_stmts[STORE_PG_JOB_UNFINISHED].name, NULL, 0,
				      NULL, "read jobs", cause);
	if (res == NULL)
		return -EIO;
	int n = store_pg_each_job(db, res, true, cb, arg);
	PQclear(res);
	return n;
}

static int
store_pg_job_get(struct store_db *db, int64_t seq, const char *id, struct job **out, char **cause)
{
	*out = NULL;
	char seq_text[24];
	snprintf(seq_text, sizeof(seq_text), "%" PRId64, seq);
	const char *params[] = {seq_text, id};
	PGresult *res = store_pg_read(db, store_pg_stmts[STORE_PG_JOB_GET].name, NULL, 2, params,
				      "get job", cause);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) > 0) {
		struct store_value cols[STORE_JOB_NCOLUMNS];
		for (int i = 0; i < STORE_JOB_NCOLUMNS; i++)
			cols[i] = store_pg_value(res, 0, i);
		*out = store_job_from_row(db->shown, cols);
	}
	PQclear(res);
	return 0;
}

static int
store_pg_claim_seqs(struct store_db *db, int64_t *first, char **cause)
{
	/* The sequence's increment is the block (STORE_PG_SEQ_BLOCK_TEXT). */
	PGresult *res = store_pg_read(db, NULL, "SELECT nextval('vramd_job_seq')", 0, NULL,
				      "claim job seqs", cause);
	if (res == NULL)
		return -EIO;
	*first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static int
store_pg_setting_get(struct store_db *db, const char *name, char **value, char **cause)
{
	*value = NULL;
	const char *params[] = {name};
	PGresult *res = store_pg_read(db, NULL, "SELECT value FROM vramd_settings WHERE name = $1",
				      1, params, "read setting", cause);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) > 0)
		*value = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int
store_pg_setting_put(struct store_db *db, const char *name, const char *value, char **cause)
{
	const char *params[] = {name, value};
	PGresult *res = store_pg_read(
	    db, NULL,
	    "INSERT INTO vramd_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) "
	    "DO UPDATE SET value = EXCLUDED.value, updated_at = now() RETURNING name",
	    2, params, "write setting", cause);
	if (res == NULL)
		return -EIO;
	PQclear(res);
	return 0;
}

static int
store_pg_jobs_list(struct store_db *db, const struct store_query *q, store_job_cb *cb, void *arg,
		   char **cause)
{
	const char *params[VD_ARRAY_LEN(q->params)];
	char ints[VD_ARRAY_LEN(q->params)][24];
	store_pg_params(q->params, q->nparams, params, ints);
	PGresult *res = store_pg_read(db, NULL, q->sql, q->nparams, params, "list jobs", cause);
	if (res == NULL)
		return -EIO;
	int n = store_pg_each_job(db, res, false, cb, arg);
	PQclear(res);
	return n;
}

static int
store_pg_counts(struct store_db *db, store_count_row_cb *cb, void *arg, char **cause)
{
	PGresult *res = store_pg_read(db, store_pg_stmts[STORE_PG_COUNTS].name, NULL, 0, NULL,
				      "count jobs", cause);
	if (res == NULL)
		return -EIO;
	for (int row = 0; row < PQntuples(res); row++)
		cb(PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), PQgetvalue(res, row, 2),
		   PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3),
		   strtoll(PQgetvalue(res, row, 4), NULL, 10), arg);
	PQclear(res);
	return 0;
}

static int
store_pg_reservations_load(struct store_db *db, store_reservation_cb *cb, void *arg, char **cause)
{
	PGresult *res = store_pg_read(db, store_pg_stmts[STORE_PG_RES_LOAD].name, NULL, 0, NULL,
				      "read reservations", cause);
	if (res == NULL)
		return -EIO;
	int rows = PQntuples(res);
	for (int row = 0; row < rows; row++) {
		struct store_reservation r = {
		    .id = PQgetvalue(res, row, 0),
		    .gpu = (int)strtol(PQgetvalue(res, row, 1), NULL, 10),
		    .bytes = strtoull(PQgetvalue(res, row, 2), NULL, 10),
		    .created_at_ms = strtoll(PQgetvalue(res, row, 3), NULL, 10),
		    .expires_at_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10),
		    .ttl_ms = strtoll(PQgetvalue(res, row, 5), NULL, 10),
		    .owner = PQgetisnull(res, row, 6) ? NULL : PQgetvalue(res, row, 6),
		};
		cb(&r, arg);
	}
	PQclear(res);
	return rows;
}

const struct store_backend store_pg_backend = {
    .name = "postgresql",
    .param_mark = '$',
    .open = store_pg_open,
    .describe = store_pg_describe,
    .batch_begin = store_pg_batch_begin,
    .write = store_pg_write,
    .batch_commit = store_pg_batch_commit,
    .batch_rollback = store_pg_batch_rollback,
    .job_get = store_pg_job_get,
    .jobs_list = store_pg_jobs_list,
    .load_unfinished = store_pg_load_unfinished,
    .counts = store_pg_counts,
    .reservations_load = store_pg_reservations_load,
    .claim_seqs = store_pg_claim_seqs,
    .setting_get = store_pg_setting_get,
    .setting_put = store_pg_setting_put,
    .seq_block = STORE_PG_SEQ_BLOCK,
    .close = store_pg_close,
};
