/*
 * store-sqlite.c: the store's SQLite backend (store-backend.h), the default, and the
 * only file that includes sqlite3.h. store.c's shared front calls it; nothing else does.
 *
 * The database is DIR/vramd.db in WAL mode, so readers never block the writer and a
 * commit costs one append and (with SYNC=full) one fsync of the WAL.
 *
 * Two connections, one per thread (SQLITE_OPEN_NOMUTEX: SQLite's multi-thread mode):
 * wdb for the writer thread's batches and rdb (read-only) for the loop's reads. The
 * schema is created on wdb before the writer thread starts (pthread_create orders it).
 *
 * The data directory is created 0700 and the database, -wal and -shm files 0600 (they
 * hold prompts and results); an existing directory keeps its mode.
 *
 * Every statement is prepared once and cached (the job list, whose shape follows its
 * filter, is prepared per call). Errors carry SQLite's own message and never abort.
 */
#include "store-backend.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION  5
#define STORE_BUSY_TIMEOUT_MS 5000

enum store_stmt {
	STORE_BEGIN,
	STORE_COMMIT,
	STORE_ROLLBACK,
	STORE_JOB_SAVE,
	STORE_JOB_UPDATE,
	STORE_JOB_GET,
	STORE_JOB_UNFINISHED,
	STORE_COUNTS,
	STORE_RES_SAVE,
	STORE_RES_DELETE,
	STORE_RES_LOAD,
	STORE_NSTMTS
};

static const char *const store_sql[STORE_NSTMTS] = {
    [STORE_BEGIN] = "BEGIN",
    [STORE_COMMIT] = "COMMIT",
    [STORE_ROLLBACK] = "ROLLBACK",
    /* An upsert, not INSERT OR REPLACE: the row is updated in place, so the counting
     * triggers see the old status and the new one. */
    [STORE_JOB_SAVE] =
	"INSERT INTO jobs (" STORE_JOB_COLUMNS ") VALUES "
	"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, "
	"?20) "
	"ON CONFLICT (seq) DO UPDATE SET id = excluded.id, model = excluded.model, "
	"kind = excluded.kind, priority = excluded.priority, status = excluded.status, "
	"request = excluded.request, metadata = excluded.metadata, result = excluded.result, "
	"error = excluded.error, submitted_at = excluded.submitted_at, "
	"started_at = excluded.started_at, completed_at = excluded.completed_at, "
	"wait_ms = excluded.wait_ms, load_ms = excluded.load_ms, run_ms = excluded.run_ms, "
	"attempts = excluded.attempts, key = excluded.key, deadline_at = excluded.deadline_at, "
	"placement = excluded.placement",
    /* A state change: only what changes after submission. The indexed id, model and
     * key are left out of SET, so SQLite leaves their indexes alone. */
    [STORE_JOB_UPDATE] = "UPDATE jobs SET status = ?2, result = ?3, error = ?4, "
			 "started_at = ?5, completed_at = ?6, wait_ms = ?7, load_ms = ?8, "
			 "run_ms = ?9, attempts = ?10 WHERE seq = ?1",
    [STORE_JOB_GET] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE seq = ?1 AND id = ?2",
    [STORE_JOB_UNFINISHED] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE status IN "
			     "('queued', 'pending', 'running') ORDER BY seq",
    [STORE_COUNTS] = "SELECT model, status, priority, NULLIF(key, ''), n FROM job_counts "
		     "WHERE n > 0",
    [STORE_RES_SAVE] = "INSERT OR REPLACE INTO reservations (id, gpu, bytes, created_at, "
		       "expires_at, ttl_ms, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STORE_RES_DELETE] = "DELETE FROM reservations WHERE id = ?1",
    [STORE_RES_LOAD] = "SELECT id, gpu, bytes, created_at, expires_at, ttl_ms, owner "
		       "FROM reservations ORDER BY created_at, id",
};

/* The statements the writer thread runs on wdb; every other one runs on rdb. */
static const bool store_stmt_writes[STORE_NSTMTS] = {
    [STORE_BEGIN] = true,      [STORE_COMMIT] = true,	  [STORE_ROLLBACK] = true,
    [STORE_JOB_SAVE] = true,   [STORE_JOB_UPDATE] = true, [STORE_RES_SAVE] = true,
    [STORE_RES_DELETE] = true,
};

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, model TEXT NOT NULL,"
    " kind TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,"
    " request TEXT, metadata TEXT, result TEXT, error TEXT,"
    " submitted_at INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL DEFAULT 0,"
    " completed_at INTEGER NOT NULL DEFAULT 0, wait_ms INTEGER NOT NULL DEFAULT 0,"
    " load_ms INTEGER NOT NULL DEFAULT 0, run_ms INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_model ON jobs (model, seq);"
    "CREATE TABLE IF NOT EXISTS reservations ("
    " id TEXT PRIMARY KEY, gpu INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0,"
    " ttl_ms INTEGER NOT NULL DEFAULT 0, owner TEXT);";

/*
 * How the schema evolves: store_schema above creates version 1 and is never changed;
 * each later version is one row here, applied in order inside the opening transaction
 * to any database older than it, a new one included. So an old database opens with
 * its rows intact, and a new one takes the same path.
 */
static const struct {
	int version;
	const char *sql;
} store_migrations[] = {
    /* The API key that submitted a job (API_KEYS_FILE); NULL for jobs from before. */
    {2, "ALTER TABLE jobs ADD COLUMN key TEXT;"
	"CREATE INDEX IF NOT EXISTS jobs_key ON jobs (key, seq);"},
    /* Jobs counted as they are written (GET /api/stats reads this, not the whole
     * history): one row per model, status, priority and key ('' for none), kept by
     * triggers in the same transaction as the jobs, so a rolled-back batch leaves the
     * counts as it leaves the jobs. */
    {3, "CREATE TABLE IF NOT EXISTS job_counts ("
	" model TEXT NOT NULL, status TEXT NOT NULL, priority TEXT NOT NULL,"
	" key TEXT NOT NULL, n INTEGER NOT NULL,"
	" PRIMARY KEY (model, status, priority, key)) WITHOUT ROWID;"
	"INSERT INTO job_counts (model, status, priority, key, n)"
	" SELECT model, status, priority, IFNULL(key, ''), COUNT(*) FROM jobs"
	" GROUP BY model, status, priority, IFNULL(key, '');"
	"CREATE TRIGGER IF NOT EXISTS jobs_counted AFTER INSERT ON jobs BEGIN"
	" INSERT INTO job_counts (model, status, priority, key, n)"
	"  VALUES (NEW.model, NEW.status, NEW.priority, IFNULL(NEW.key, ''), 1)"
	"  ON CONFLICT (model, status, priority, key) DO UPDATE SET n = n + 1;"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS jobs_recounted AFTER UPDATE OF model, status, priority, key"
	" ON jobs WHEN OLD.model IS NOT NEW.model OR OLD.status IS NOT NEW.status"
	" OR OLD.priority IS NOT NEW.priority OR OLD.key IS NOT NEW.key BEGIN"
	" UPDATE job_counts SET n = n - 1 WHERE model = OLD.model AND status = OLD.status"
	"  AND priority = OLD.priority AND key = IFNULL(OLD.key, '');"
	" INSERT INTO job_counts (model, status, priority, key, n)"
	"  VALUES (NEW.model, NEW.status, NEW.priority, IFNULL(NEW.key, ''), 1)"
	"  ON CONFLICT (model, status, priority, key) DO UPDATE SET n = n + 1;"
	" END;"
	"CREATE TRIGGER IF NOT EXISTS jobs_uncounted AFTER DELETE ON jobs BEGIN"
	" UPDATE job_counts SET n = n - 1 WHERE model = OLD.model AND status = OLD.status"
	"  AND priority = OLD.priority AND key = IFNULL(OLD.key, '');"
	" END;"},
    /* A job's deadline (deadline_s, X-Vramd-Deadline) as wall-clock Unix ms, so a
     * restart orders recovered jobs by it; 0 for none and for jobs from before. */
    {4, "ALTER TABLE jobs ADD COLUMN deadline_at INTEGER NOT NULL DEFAULT 0;"},
    /* Where a job may run (issue 11: gpu, cpu, any); NULL for jobs from before, which
     * the daemon gives their model's default when it recovers them. */
    {5, "ALTER TABLE jobs ADD COLUMN placement TEXT;"},
};

/* The statement each kind of write runs. */
static const enum store_stmt store_sqlite_write_stmt[STORE_NWRITE_KINDS] = {
    [STORE_WRITE_JOB_SAVE] = STORE_JOB_SAVE,
    [STORE_WRITE_JOB_UPDATE] = STORE_JOB_UPDATE,
    [STORE_WRITE_RES_SAVE] = STORE_RES_SAVE,
    [STORE_WRITE_RES_DELETE] = STORE_RES_DELETE,
};

struct store_db {
	sqlite3 *db;  /* rdb: the loop's reads */
	sqlite3 *wdb; /* the writer thread's (the opener's only before the thread starts) */
	char *path;
	sqlite3_stmt *stmt[STORE_NSTMTS]; /* each on the connection store_stmt_writes says */
};

static int
store_sqlite_fail_db(struct store_db *st, sqlite3 *db, char **cause, const char *what)
{
	return vd_fail(cause, -EIO, "store %s: %s: %s", st->path, what, sqlite3_errmsg(db));
}

static int
store_sqlite_fail(struct store_db *st, char **cause, const char *what)
{
	return store_sqlite_fail_db(st, st->db, cause, what);
}

static sqlite3_stmt *
store_sqlite_stmt(struct store_db *st, enum store_stmt which, char **cause)
{
	sqlite3 *db = store_stmt_writes[which] ? st->wdb : st->db;
	if (st->stmt[which] == NULL &&
	    sqlite3_prepare_v3(db, store_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
			       &st->stmt[which], NULL) != SQLITE_OK) {
		store_sqlite_fail_db(st, db, cause, "prepare");
		return NULL;
	}
	sqlite3_reset(st->stmt[which]);
	sqlite3_clear_bindings(st->stmt[which]);
	return st->stmt[which];
}

/* Runs a statement with no result rows. */
static int
store_sqlite_exec_stmt(struct store_db *st, enum store_stmt which, char **cause)
{
	sqlite3_stmt *s = store_sqlite_stmt(st, which, cause);
	if (s == NULL)
		return -EIO;
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_sqlite_fail_db(st, sqlite3_db_handle(s), cause, store_sql[which]);
	return 0;
}

static int
store_sqlite_mkdirs(const char *dir, char **cause)
{
	char *path = xstrdup(dir);
	int rc = 0;
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			rc = vd_fail(cause, -errno, "cannot create data directory %s: %s", path,
				     strerror(errno));
			break;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(path);
	if (rc == 0) {
		struct stat sb;
		if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
			return vd_fail(cause, -ENOTDIR, "data directory %s is not a directory",
				       dir);
		if (access(dir, W_OK | X_OK) < 0)
			return vd_fail(cause, -errno, "data directory %s is not writable: %s", dir,
				       strerror(errno));
	}
	return rc;
}

static int
store_sqlite_pragma(struct store_db *st, const char *sql, char **cause)
{
	char *err = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		int rc = vd_fail(cause, -EIO, "store %s: %s: %s", st->path, sql,
				 err != NULL ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
		return rc;
	}
	return 0;
}

static int
store_sqlite_init_schema(struct store_db *st, enum store_sync sync, int64_t *max_seq, char **cause)
{
	/* journal_mode=WAL answers the mode it ended in; anything else is a failure. */
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
		return store_sqlite_fail(st, cause, "cannot read the database");
	int rc = sqlite3_step(s);
	bool wal = rc == SQLITE_ROW &&
		   sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_sqlite_fail(st, cause, "cannot read the database");
	if (!wal)
		return vd_fail(cause, -EIO, "store %s: cannot switch to WAL mode", st->path);
	rc = store_sqlite_pragma(
	    st, sync == STORE_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
	    cause);
	if (rc < 0)
		return rc;
	rc = store_sqlite_pragma(st, "BEGIN IMMEDIATE", cause);
	if (rc < 0)
		return rc;
	rc = store_sqlite_pragma(st, store_schema, cause);
	if (rc < 0)
		goto out_rollback;

	int64_t version = -1;
	if (sqlite3_prepare_v2(st->db, "SELECT MAX(version) FROM schema_version", -1, &s, NULL) !=
	    SQLITE_OK) {
		rc = store_sqlite_fail(st, cause, "schema");
		goto out_rollback;
	}
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		version = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (version > STORE_SCHEMA_VERSION) {
		rc = vd_fail(cause, -EPROTO,
			     "store %s: schema version %lld is newer than this vramd (%d)",
			     st->path, (long long)version, STORE_SCHEMA_VERSION);
		goto out_rollback;
	}
	bool created = version < 0;
	if (created) {
		rc = store_sqlite_pragma(st, "INSERT INTO schema_version (version) VALUES (1)",
					 cause);
		if (rc < 0)
			goto out_rollback;
		version = 1;
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(store_migrations); i++) {
		if (store_migrations[i].version <= version)
			continue;
		rc = store_sqlite_pragma(st, store_migrations[i].sql, cause);
		if (rc < 0)
			goto out_rollback;
		char *sql = xasprintf("UPDATE schema_version SET version = %d",
				      store_migrations[i].version);
		rc = store_sqlite_pragma(st, sql, cause);
		free(sql);
		if (rc < 0)
			goto out_rollback;
		if (!created)
			vd_log(STORE, "%s: schema upgraded to version %d", st->path,
			       store_migrations[i].version);
	}
	rc = store_sqlite_pragma(st, "COMMIT", cause);
	if (rc < 0)
		goto out_rollback;

	if (sqlite3_prepare_v2(st->db, "SELECT MAX(seq) FROM jobs", -1, &s, NULL) != SQLITE_OK)
		return store_sqlite_fail(st, cause, "read max seq");
	*max_seq = 0;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*max_seq = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return 0;

out_rollback:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * Creates the database file mode 0600 before SQLite opens it (SQLite would create it
 * 0644, and gives its -wal and -shm files the mode of the database), and narrows an
 * existing database and WAL files that others could read to 0600: jobs hold prompts.
 */
static int
store_sqlite_create_private(const struct store_db *st, char **cause)
{
	int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return vd_fail(cause, -errno, "store %s: cannot create: %s", st->path,
			       strerror(errno));
	close(fd);
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < VD_ARRAY_LEN(suffixes); i++) {
		char *path = xasprintf("%s%s", st->path, suffixes[i]);
		struct stat sb;
		if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0) {
			if (chmod(path, 0600) == 0)
				vd_warn(STORE, "%s was readable by others; now mode 0600", path);
			else
				vd_warn(STORE, "%s is readable by others and chmod failed: %s",
					path, strerror(errno));
		}
		free(path);
	}
	return 0;
}

/* --- Opening and closing ------------------------------------------------------------------- */

static void store_sqlite_close(struct store_db *st);

static int
store_sqlite_open(const char *dir, enum store_sync sync, struct store_db **out, int64_t *max_seq,
		  char **cause)
{
	*out = NULL;
	if (!sqlite3_threadsafe())
		return vd_fail(cause, -ENOTSUP, "store: this SQLite is built without threads");
	int rc = store_sqlite_mkdirs(dir, cause);
	if (rc < 0)
		return rc;
	struct store_db *st = xcalloc(1, sizeof(*st));
	st->path = xasprintf("%s/vramd.db", dir);
	rc = store_sqlite_create_private(st, cause);
	if (rc < 0)
		goto out_close;
	/* The write connection first, in st->db while the schema is set up here. */
	if (sqlite3_open_v2(st->path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		rc = st->db != NULL ? store_sqlite_fail(st, cause, "cannot open")
				    : vd_fail(cause, -ENOMEM, "store %s: cannot open", st->path);
		goto out_close;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	rc = store_sqlite_init_schema(st, sync, max_seq, cause);
	if (rc < 0)
		goto out_close;
	st->wdb = st->db;
	st->db = NULL;
	if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		rc = st->db != NULL ? store_sqlite_fail(st, cause, "cannot open for reading")
				    : vd_fail(cause, -ENOMEM, "store %s: cannot open", st->path);
		goto out_close;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	vd_log(STORE, "%s: WAL, synchronous=%s", st->path,
	       sync == STORE_SYNC_FULL ? "full" : "normal");
	*out = st;
	return 0;

out_close:
	store_sqlite_close(st);
	return rc;
}

static void
store_sqlite_close(struct store_db *st)
{
	for (int i = 0; i < STORE_NSTMTS; i++)
		sqlite3_finalize(st->stmt[i]);
	/* The reader first: the writer's close, the last, checkpoints the WAL. */
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		vd_error(STORE, "close %s: %s", st->path, sqlite3_errmsg(st->db));
	if (st->wdb != NULL && sqlite3_close(st->wdb) != SQLITE_OK)
		vd_error(STORE, "close %s: %s", st->path, sqlite3_errmsg(st->wdb));
	free(st->path);
	free(st);
}

static const char *
store_sqlite_describe(const struct store_db *st)
{
	return st->path;
}

/* --- The writer thread's batches (on wdb) -------------------------------------------------- */

static int
store_sqlite_batch_begin(struct store_db *st, char **cause)
{
	return store_sqlite_exec_stmt(st, STORE_BEGIN, cause);
}

static int
store_sqlite_batch_commit(struct store_db *st, char **cause)
{
	return store_sqlite_exec_stmt(st, STORE_COMMIT, cause);
}

static void
store_sqlite_batch_rollback(struct store_db *st)
{
	if (sqlite3_get_autocommit(st->wdb) == 0)
		sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
}

/* Binds values[0..n) to s's parameters 1..n (texts borrowed: SQLITE_STATIC). */
static void
store_sqlite_bind(sqlite3_stmt *s, const struct store_value *values, int n)
{
	for (int i = 0; i < n; i++) {
		const struct store_value *v = &values[i];
		if (v->type == STORE_INT)
			sqlite3_bind_int64(s, i + 1, v->i);
		else if (v->type == STORE_TEXT)
			sqlite3_bind_text(s, i + 1, v->text, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, i + 1);
	}
}

static int
store_sqlite_write(struct store_db *st, const struct store_write *w, char **cause)
{
	sqlite3_stmt *s = store_sqlite_stmt(st, store_sqlite_write_stmt[w->kind], cause);
	if (s == NULL)
		return -EIO;
	store_sqlite_bind(s, w->values, w->nvalues);
	int rc =
	    sqlite3_step(s) == SQLITE_DONE ? 0 : store_sqlite_fail_db(st, st->wdb, cause, "write");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* --- Reads (the loop, on rdb) ---------------------------------------------------------------- */

/* The value of column col of s's current row; a text is borrowed until the next step. */
static struct store_value
store_sqlite_column(sqlite3_stmt *s, int col)
{
	switch (sqlite3_column_type(s, col)) {
	case SQLITE_NULL:
		return (struct store_value){.type = STORE_NULL};
	case SQLITE_INTEGER:
		return (struct store_value){.type = STORE_INT, .i = sqlite3_column_int64(s, col)};
	default: {
		const char *text = (const char *)sqlite3_column_text(s, col);
		return (struct store_value){.type = STORE_TEXT,
					    .text = text != NULL ? text : "",
					    .len = (size_t)sqlite3_column_bytes(s, col)};
	}
	}
}

static struct job *
store_sqlite_row_job(struct store_db *st, sqlite3_stmt *s)
{
	struct store_value cols[STORE_JOB_NCOLUMNS];
	for (int i = 0; i < STORE_JOB_NCOLUMNS; i++)
		cols[i] = store_sqlite_column(s, i);
	return store_job_from_row(st->path, cols);
}

/* Steps s to the end, handing each row as a job to cb. Returns the count or -EIO. */
static int
store_sqlite_each_job(struct store_db *st, sqlite3_stmt *s, bool requeue, store_job_cb *cb,
		      void *arg, char **cause)
{
	int n = 0, rc;
	for (rc = sqlite3_step(s); rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		struct job *job = store_sqlite_row_job(st, s);
		if (requeue) {
			job->status = JOB_QUEUED;
			job->started_at_ms = 0;
		}
		cb(job, arg);
		n++;
	}
	int result = rc == SQLITE_DONE ? n : store_sqlite_fail(st, cause, "read jobs");
	sqlite3_reset(s);
	return result;
}

static int
store_sqlite_load_unfinished(struct store_db *st, store_job_cb *cb, void *arg, char **cause)
{
	sqlite3_stmt *s = store_sqlite_stmt(st, STORE_JOB_UNFINISHED, cause);
	if (s == NULL)
		return -EIO;
	return store_sqlite_each_job(st, s, true, cb, arg, cause);
}

static int
store_sqlite_job_get(struct store_db *st, int64_t seq, const char *id, struct job **out,
		     char **cause)
{
	*out = NULL;
	sqlite3_stmt *s = store_sqlite_stmt(st, STORE_JOB_GET, cause);
	if (s == NULL)
		return -EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int result = 0;
	if (rc == SQLITE_ROW)
		*out = store_sqlite_row_job(st, s);
	else if (rc != SQLITE_DONE)
		result = store_sqlite_fail(st, cause, "get job");
	sqlite3_reset(s);
	return result;
}

static int
store_sqlite_jobs_list(struct store_db *st, const struct store_query *q, store_job_cb *cb,
		       void *arg, char **cause)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, q->sql, -1, &s, NULL) != SQLITE_OK)
		return store_sqlite_fail(st, cause, "list jobs");
	store_sqlite_bind(s, q->params, q->nparams);
	int rc = store_sqlite_each_job(st, s, false, cb, arg, cause);
	sqlite3_finalize(s);
	return rc;
}

static int
store_sqlite_counts(struct store_db *st, store_count_row_cb *cb, void *arg, char **cause)
{
	sqlite3_stmt *s = store_sqlite_stmt(st, STORE_COUNTS, cause);
	if (s == NULL)
		return -EIO;
	int rc;
	for (rc = sqlite3_step(s); rc == SQLITE_ROW; rc = sqlite3_step(s))
		cb((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		   (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
		   sqlite3_column_int64(s, 4), arg);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : store_sqlite_fail(st, cause, "count jobs");
}

static int
store_sqlite_reservations_load(struct store_db *st, store_reservation_cb *cb, void *arg,
			       char **cause)
{
	sqlite3_stmt *s = store_sqlite_stmt(st, STORE_RES_LOAD, cause);
	if (s == NULL)
		return -EIO;
	int n = 0, rc;
	for (rc = sqlite3_step(s); rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		struct store_reservation res = {
		    .id = (char *)sqlite3_column_text(s, 0),
		    .gpu = sqlite3_column_int(s, 1),
		    .bytes = (uint64_t)sqlite3_column_int64(s, 2),
		    .created_at_ms = sqlite3_column_int64(s, 3),
		    .expires_at_ms = sqlite3_column_int64(s, 4),
		    .ttl_ms = sqlite3_column_int64(s, 5),
		    .owner = (char *)sqlite3_column_text(s, 6),
		};
		cb(&res, arg);
		n++;
	}
	int result = rc == SQLITE_DONE ? n : store_sqlite_fail(st, cause, "read reservations");
	sqlite3_reset(s);
	return result;
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .param_mark = '?',
    .open = store_sqlite_open,
    .describe = store_sqlite_describe,
    .batch_begin = store_sqlite_batch_begin,
    .write = store_sqlite_write,
    .batch_commit = store_sqlite_batch_commit,
    .batch_rollback = store_sqlite_batch_rollback,
    .job_get = store_sqlite_job_get,
    .jobs_list = store_sqlite_jobs_list,
    .load_unfinished = store_sqlite_load_unfinished,
    .counts = store_sqlite_counts,
    .reservations_load = store_sqlite_reservations_load,
    .close = store_sqlite_close,
};
