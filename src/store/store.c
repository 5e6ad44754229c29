/*
 * store.c: the durable store on SQLite (see store.h); the only file that includes
 * sqlite3.h. vramd.c opens it at start, reloads unfinished jobs and reservations, and
 * calls store_commit() once per loop turn; the API and the engine save jobs whenever
 * their state changes; GET endpoints read finished jobs and counts from it.
 *
 * The database is vramd-data/vramd.db in WAL mode, so readers never block the writer
 * and a commit costs one append and (with SYNC=full) one fsync of the WAL. Writes go
 * into one open transaction (the batch) until store_commit(); a failed write marks the
 * batch failed, and the commit then rolls it back and reports the first error.
 *
 * The data directory is created 0700 and the database, -wal and -shm files 0600 (they
 * hold prompts and results); an existing directory keeps its mode.
 *
 * Every statement is prepared once and cached (the job list, whose shape follows its
 * filter, is prepared per call). Errors carry SQLite's own message and
 * never abort.
 */
#include "store.h"

#include "buf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION  4
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_LIST_DEFAULT    100
#define STORE_LIST_MAX	      10000

enum store_stmt {
	STORE_BEGIN,
	STORE_COMMIT,
	STORE_ROLLBACK,
	STORE_JOB_SAVE,
	STORE_JOB_GET,
	STORE_JOB_UNFINISHED,
	STORE_COUNTS,
	STORE_RES_SAVE,
	STORE_RES_DELETE,
	STORE_RES_LOAD,
	STORE_NSTMTS
};

#define STORE_JOB_COLUMNS                                                                          \
	"seq, id, model, kind, priority, status, request, metadata, result, error, "               \
	"submitted_at, started_at, completed_at, wait_ms, load_ms, run_ms, attempts, key, "        \
	"placement"

static const char *const store_sql[STORE_NSTMTS] = {
    [STORE_BEGIN] = "BEGIN",
    [STORE_COMMIT] = "COMMIT",
    [STORE_ROLLBACK] = "ROLLBACK",
    /* An upsert, not INSERT OR REPLACE: the row is updated in place, so the counting
     * triggers see the old status and the new one. */
    [STORE_JOB_SAVE] =
	"INSERT INTO jobs (" STORE_JOB_COLUMNS ") VALUES "
	"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) "
	"ON CONFLICT (seq) DO UPDATE SET id = excluded.id, model = excluded.model, "
	"kind = excluded.kind, priority = excluded.priority, status = excluded.status, "
	"request = excluded.request, metadata = excluded.metadata, result = excluded.result, "
	"error = excluded.error, submitted_at = excluded.submitted_at, "
	"started_at = excluded.started_at, completed_at = excluded.completed_at, "
	"wait_ms = excluded.wait_ms, load_ms = excluded.load_ms, run_ms = excluded.run_ms, "
	"attempts = excluded.attempts, key = excluded.key, placement = excluded.placement",
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
    /* Where a job may run (issue 11: gpu, cpu, any); NULL for jobs from before, which
     * the daemon gives their model's default when it recovers them. */
    {4, "ALTER TABLE jobs ADD COLUMN placement TEXT;"},
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[STORE_NSTMTS];
	int64_t next_seq;
	bool in_batch;
	int batch_rc;	   /* first error in the open batch, 0 if none */
	char *batch_cause; /* its message */
	size_t batch_rows;
};

static int
store_fail(struct store *st, char **cause, const char *what)
{
	return vd_fail(cause, -EIO, "store %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

static sqlite3_stmt *
store_stmt(struct store *st, enum store_stmt which, char **cause)
{
	if (st->stmt[which] == NULL &&
	    sqlite3_prepare_v3(st->db, store_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
			       &st->stmt[which], NULL) != SQLITE_OK) {
		store_fail(st, cause, "prepare");
		return NULL;
	}
	sqlite3_reset(st->stmt[which]);
	sqlite3_clear_bindings(st->stmt[which]);
	return st->stmt[which];
}

/* Runs a statement with no result rows. */
static int
store_exec_stmt(struct store *st, enum store_stmt which, char **cause)
{
	sqlite3_stmt *s = store_stmt(st, which, cause);
	if (s == NULL)
		return -EIO;
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, cause, store_sql[which]);
	return 0;
}

static int
store_mkdirs(const char *dir, char **cause)
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
store_pragma(struct store *st, const char *sql, char **cause)
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
store_init_schema(struct store *st, enum store_sync sync, char **cause)
{
	/* journal_mode=WAL answers the mode it ended in; anything else is a failure. */
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
		return store_fail(st, cause, "cannot read the database");
	int rc = sqlite3_step(s);
	bool wal = rc == SQLITE_ROW &&
		   sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_fail(st, cause, "cannot read the database");
	if (!wal)
		return vd_fail(cause, -EIO, "store %s: cannot switch to WAL mode", st->path);
	rc = store_pragma(
	    st, sync == STORE_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
	    cause);
	if (rc < 0)
		return rc;
	rc = store_pragma(st, "BEGIN IMMEDIATE", cause);
	if (rc < 0)
		return rc;
	rc = store_pragma(st, store_schema, cause);
	if (rc < 0)
		goto out_rollback;

	int64_t version = -1;
	if (sqlite3_prepare_v2(st->db, "SELECT MAX(version) FROM schema_version", -1, &s, NULL) !=
	    SQLITE_OK) {
		rc = store_fail(st, cause, "schema");
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
		rc = store_pragma(st, "INSERT INTO schema_version (version) VALUES (1)", cause);
		if (rc < 0)
			goto out_rollback;
		version = 1;
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(store_migrations); i++) {
		if (store_migrations[i].version <= version)
			continue;
		rc = store_pragma(st, store_migrations[i].sql, cause);
		if (rc < 0)
			goto out_rollback;
		char *sql = xasprintf("UPDATE schema_version SET version = %d",
				      store_migrations[i].version);
		rc = store_pragma(st, sql, cause);
		free(sql);
		if (rc < 0)
			goto out_rollback;
		if (!created)
			vd_log(STORE, "%s: schema upgraded to version %d", st->path,
			       store_migrations[i].version);
	}
	rc = store_pragma(st, "COMMIT", cause);
	if (rc < 0)
		goto out_rollback;

	if (sqlite3_prepare_v2(st->db, "SELECT MAX(seq) FROM jobs", -1, &s, NULL) != SQLITE_OK)
		return store_fail(st, cause, "read max seq");
	st->next_seq = 1;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		st->next_seq = sqlite3_column_int64(s, 0) + 1;
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
store_create_private(const struct store *st, char **cause)
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

int
store_open(const char *dir, enum store_sync sync, struct store **out, char **cause)
{
	*out = NULL;
	int rc = store_mkdirs(dir, cause);
	if (rc < 0)
		return rc;
	struct store *st = xcalloc(1, sizeof(*st));
	st->path = xasprintf("%s/vramd.db", dir);
	rc = store_create_private(st, cause);
	if (rc < 0)
		goto out_close;
	if (sqlite3_open_v2(st->path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		rc = st->db != NULL ? store_fail(st, cause, "cannot open")
				    : vd_fail(cause, -ENOMEM, "store %s: cannot open", st->path);
		goto out_close;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	rc = store_init_schema(st, sync, cause);
	if (rc < 0)
		goto out_close;
	vd_log(STORE, "opened %s (WAL, synchronous=%s), next job seq %lld", st->path,
	       sync == STORE_SYNC_FULL ? "full" : "normal", (long long)st->next_seq);
	*out = st;
	return 0;

out_close:
	sqlite3_close(st->db);
	free(st->path);
	free(st);
	return rc;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	char *cause = NULL;
	if (store_commit(st, &cause) < 0) {
		vd_error(STORE, "final commit failed: %s", cause);
		free(cause);
	}
	for (int i = 0; i < STORE_NSTMTS; i++)
		sqlite3_finalize(st->stmt[i]);
	if (sqlite3_close(st->db) != SQLITE_OK)
		vd_error(STORE, "close %s: %s", st->path, sqlite3_errmsg(st->db));
	free(st->batch_cause);
	free(st->path);
	free(st);
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

int64_t
store_next_seq(struct store *st)
{
	return st->next_seq++;
}

bool
store_has_pending(const struct store *st)
{
	return st->in_batch;
}

/* Opens the batch transaction if needed; a failure here fails the batch. */
static int
store_batch(struct store *st, char **cause)
{
	if (st->in_batch)
		return st->batch_rc != 0 ? vd_fail(cause, st->batch_rc, "%s", st->batch_cause) : 0;
	int rc = store_exec_stmt(st, STORE_BEGIN, cause);
	if (rc < 0)
		return rc;
	st->in_batch = true;
	st->batch_rc = 0;
	st->batch_rows = 0;
	return 0;
}

static void
store_batch_failed(struct store *st, int rc, const char *cause)
{
	if (st->batch_rc == 0) {
		st->batch_rc = rc;
		free(st->batch_cause);
		st->batch_cause = xstrdup(cause != NULL ? cause : "write failed");
	}
}

int
store_commit(struct store *st, char **cause)
{
	if (!st->in_batch)
		return 0;
	int rc;
	st->in_batch = false;
	if (st->batch_rc != 0) {
		rc = vd_fail(cause, st->batch_rc, "%s (batch of %zu writes rolled back)",
			     st->batch_cause, st->batch_rows);
		goto out_rollback;
	}
	rc = store_exec_stmt(st, STORE_COMMIT, cause);
	if (rc < 0)
		goto out_rollback;
	return 0;

out_rollback:
	if (sqlite3_get_autocommit(st->db) == 0)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->batch_rc = 0;
	return rc;
}

static void
store_bind_text(sqlite3_stmt *s, int col, const char *text)
{
	if (text != NULL)
		sqlite3_bind_text(s, col, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, col);
}

/* Binds a JSON value as compact text (NULL value: SQL NULL); the text is given to SQLite. */
static void
store_bind_json(sqlite3_stmt *s, int col, const json_t *value)
{
	char *text = value != NULL ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (text != NULL)
		sqlite3_bind_text(s, col, text, -1, free);
	else
		sqlite3_bind_null(s, col);
}

int
store_job_save(struct store *st, const struct job *job, char **cause)
{
	char *why = NULL;
	int rc = store_batch(st, cause);
	if (rc < 0)
		return rc;
	sqlite3_stmt *s = store_stmt(st, STORE_JOB_SAVE, &why);
	if (s == NULL) {
		rc = -EIO;
		goto out_fail;
	}
	sqlite3_bind_int64(s, 1, job->seq);
	store_bind_text(s, 2, job->id);
	store_bind_text(s, 3, job->model);
	store_bind_text(s, 4, job_kind_name(job->kind));
	store_bind_text(s, 5, job_priority_name(job->priority));
	store_bind_text(s, 6, job_status_name(job->status));
	store_bind_text(s, 7, job->request_text);
	store_bind_json(s, 8, job->metadata);
	store_bind_json(s, 9, job->result);
	store_bind_text(s, 10, job->error);
	sqlite3_bind_int64(s, 11, job->submitted_at_ms);
	sqlite3_bind_int64(s, 12, job->started_at_ms);
	sqlite3_bind_int64(s, 13, job->completed_at_ms);
	sqlite3_bind_int64(s, 14, job->wait_ms);
	sqlite3_bind_int64(s, 15, job->load_ms);
	sqlite3_bind_int64(s, 16, job->run_ms);
	sqlite3_bind_int64(s, 17, job->attempts);
	store_bind_text(s, 18, job->key);
	store_bind_text(s, 19, job_placement_name(job->placement));
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = store_fail(st, &why, "save job");
		sqlite3_reset(s);
		goto out_fail;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s); /* frees the JSON texts now */
	st->batch_rows++;
	return 0;

out_fail:
	store_batch_failed(st, rc, why);
	if (cause != NULL)
		*cause = why;
	else
		free(why);
	return rc;
}

static json_t *
store_column_json(struct store *st, sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	const char *text = (const char *)sqlite3_column_text(s, col);
	json_error_t err;
	json_t *value = json_loads(text != NULL ? text : "", JSON_DECODE_ANY, &err);
	if (value == NULL)
		vd_warn(STORE, "%s: unreadable JSON in column %d: %s", st->path, col, err.text);
	return value;
}

/* A job from a row of STORE_JOB_COLUMNS. */
static struct job *
store_row_job(struct store *st, sqlite3_stmt *s)
{
	const char *model = (const char *)sqlite3_column_text(s, 2);
	int kind = job_kind_from_name((const char *)sqlite3_column_text(s, 3));
	int prio = job_priority_from_name((const char *)sqlite3_column_text(s, 4));
	int status = job_status_from_name((const char *)sqlite3_column_text(s, 5));
	json_t *request = store_column_json(st, s, 6);
	if (!json_is_object(request)) {
		json_decref(request);
		request = NULL;
	}
	struct job *job = job_new(sqlite3_column_int64(s, 0), model != NULL ? model : "",
				  kind >= 0 ? kind : JOB_KIND_GENERATE,
				  prio >= 0 ? prio : JOB_PRIO_NORMAL, request, NULL);
	job->status = status >= 0 ? status : JOB_FAILED;
	job->request_bytes = (size_t)sqlite3_column_bytes(s, 6);
	job->metadata = store_column_json(st, s, 7);
	job->result = store_column_json(st, s, 8);
	if (sqlite3_column_type(s, 9) != SQLITE_NULL)
		job->error = xstrdup((const char *)sqlite3_column_text(s, 9));
	job->submitted_at_ms = sqlite3_column_int64(s, 10);
	job->started_at_ms = sqlite3_column_int64(s, 11);
	job->completed_at_ms = sqlite3_column_int64(s, 12);
	job->wait_ms = sqlite3_column_int64(s, 13);
	job->load_ms = sqlite3_column_int64(s, 14);
	job->run_ms = sqlite3_column_int64(s, 15);
	job->attempts = (int)sqlite3_column_int64(s, 16);
	if (sqlite3_column_type(s, 17) != SQLITE_NULL)
		job->key = xstrdup((const char *)sqlite3_column_text(s, 17));
	int place = sqlite3_column_type(s, 18) != SQLITE_NULL
			? job_placement_from_name((const char *)sqlite3_column_text(s, 18))
			: -1;
	/* JOB_NPLACEMENTS: not stored (a row from before schema 4); the loader's caller
	 * resolves it (store.h). */
	job->placement = place >= 0 ? (enum job_placement)place : JOB_NPLACEMENTS;
	return job;
}

/* Steps s to the end, handing each row as a job to cb. Returns the count or -EIO. */
static int
store_each_job(struct store *st, sqlite3_stmt *s, bool requeue, store_job_cb *cb, void *arg,
	       char **cause)
{
	int n = 0, rc;
	for (rc = sqlite3_step(s); rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		struct job *job = store_row_job(st, s);
		if (requeue) {
			job->status = JOB_QUEUED;
			job->started_at_ms = 0;
		}
		cb(job, arg);
		n++;
	}
	int result = rc == SQLITE_DONE ? n : store_fail(st, cause, "read jobs");
	sqlite3_reset(s);
	return result;
}

int
store_load_unfinished(struct store *st, store_job_cb *cb, void *arg, char **cause)
{
	sqlite3_stmt *s = store_stmt(st, STORE_JOB_UNFINISHED, cause);
	if (s == NULL)
		return -EIO;
	return store_each_job(st, s, true, cb, arg, cause);
}

struct job *
store_job_get(struct store *st, const char *id)
{
	int64_t seq;
	char *cause = NULL;
	if (id == NULL || !job_parse_id(id, &seq))
		return NULL;
	sqlite3_stmt *s = store_stmt(st, STORE_JOB_GET, &cause);
	if (s == NULL)
		goto out_log;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	struct job *job = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		job = store_row_job(st, s);
	else if (rc != SQLITE_DONE)
		store_fail(st, &cause, "get job");
	sqlite3_reset(s);
	if (cause == NULL)
		return job;
out_log:
	vd_error(STORE, "%s", cause);
	free(cause);
	return NULL;
}

/* Appends " AND <column> IN (?,...)" with one parameter per bit of mask. */
static void
store_sql_in(struct vd_buf *sql, const char *column, unsigned mask)
{
	vd_buf_printf(sql, " AND %s IN (", column);
	for (unsigned bit = 0, n = 0; bit < 32; bit++)
		if (mask & (1u << bit))
			vd_buf_append_str(sql, n++ > 0 ? ",?" : "?");
	vd_buf_append_str(sql, ")");
}

/* Binds the name of each bit of mask from parameter *param on. */
static void
store_bind_mask(sqlite3_stmt *s, int *param, unsigned mask, unsigned nbits,
		const char *(*name)(unsigned bit))
{
	for (unsigned bit = 0; bit < nbits; bit++)
		if (mask & (1u << bit))
			sqlite3_bind_text(s, (*param)++, name(bit), -1, SQLITE_STATIC);
}

static const char *
store_status_name(unsigned bit)
{
	return job_status_name((enum job_status)bit);
}

static const char *
store_priority_name(unsigned bit)
{
	return job_priority_name((enum job_priority)bit);
}

int
store_jobs_list(struct store *st, const struct store_job_filter *filter, store_job_cb *cb,
		void *arg, char **cause)
{
	const unsigned all_status = (1u << JOB_NSTATUSES) - 1;
	const unsigned all_prio = (1u << JOB_NPRIORITIES) - 1;
	unsigned status_mask = filter->status_mask & all_status;
	unsigned prio_mask = filter->priority_mask & all_prio;
	int limit = filter->limit <= 0 ? STORE_LIST_DEFAULT : filter->limit;
	if (limit > STORE_LIST_MAX)
		limit = STORE_LIST_MAX;

	/* At most 6 + 3 + 3 parameters, whatever the request looked like. */
	struct vd_buf sql;
	vd_buf_init(&sql, 4096);
	vd_buf_append_str(&sql, "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE 1");
	if (status_mask != 0 && status_mask != all_status)
		store_sql_in(&sql, "status", status_mask);
	if (prio_mask != 0 && prio_mask != all_prio)
		store_sql_in(&sql, "priority", prio_mask);
	if (filter->model != NULL)
		vd_buf_append_str(&sql, " AND model = ?");
	if (filter->key != NULL)
		vd_buf_append_str(&sql, " AND key = ?");
	vd_buf_append_str(&sql, " ORDER BY seq DESC LIMIT ?");

	sqlite3_stmt *s = NULL;
	int rc;
	if (sqlite3_prepare_v2(st->db, vd_buf_str(&sql), -1, &s, NULL) != SQLITE_OK) {
		rc = store_fail(st, cause, "list jobs");
		goto out;
	}
	int param = 1;
	if (status_mask != 0 && status_mask != all_status)
		store_bind_mask(s, &param, status_mask, JOB_NSTATUSES, store_status_name);
	if (prio_mask != 0 && prio_mask != all_prio)
		store_bind_mask(s, &param, prio_mask, JOB_NPRIORITIES, store_priority_name);
	if (filter->model != NULL)
		sqlite3_bind_text(s, param++, filter->model, -1, SQLITE_STATIC);
	if (filter->key != NULL)
		sqlite3_bind_text(s, param++, filter->key, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, param, limit);
	rc = store_each_job(st, s, false, cb, arg, cause);
out:
	sqlite3_finalize(s);
	vd_buf_cleanup(&sql);
	return rc;
}

/* Adds n to the count under name in counts. */
static void
store_count_add(json_t *counts, const char *name, int64_t n)
{
	json_t *old = json_object_get(counts, name);
	json_int_t sum = (old != NULL ? json_integer_value(old) : 0) + n;
	json_object_set_new(counts, name, json_integer(sum));
}

int
store_counts(struct store *st, struct store_counts *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = store_stmt(st, STORE_COUNTS, cause);
	if (s == NULL)
		return -EIO;
	out->per_model = json_object();
	out->per_key = json_object();
	int rc;
	for (rc = sqlite3_step(s); rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		const char *model = (const char *)sqlite3_column_text(s, 0);
		const char *status = (const char *)sqlite3_column_text(s, 1);
		int st_idx = job_status_from_name(status != NULL ? status : "");
		int prio = job_priority_from_name((const char *)sqlite3_column_text(s, 2));
		const char *key = (const char *)sqlite3_column_text(s, 3);
		int64_t n = sqlite3_column_int64(s, 4);
		out->total += n;
		if (st_idx >= 0)
			out->by_status[st_idx] += n;
		if (prio >= 0)
			out->by_priority[prio] += n;
		if (prio >= 0 && st_idx >= 0)
			out->by_priority_status[prio][st_idx] += n;
		json_t *m = json_object_get(out->per_model, model != NULL ? model : "");
		if (m == NULL) {
			m = json_object();
			json_object_set_new(out->per_model, model != NULL ? model : "", m);
		}
		if (st_idx >= 0)
			store_count_add(m, status, n);
		if (key != NULL && st_idx >= 0) {
			json_t *k = json_object_get(out->per_key, key);
			if (k == NULL) {
				k = json_object();
				json_object_set_new(out->per_key, key, k);
			}
			store_count_add(k, status, n);
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(out->per_model);
		out->per_model = NULL;
		json_decref(out->per_key);
		out->per_key = NULL;
		return store_fail(st, cause, "count jobs");
	}
	return 0;
}

int
store_reservation_save(struct store *st, const struct store_reservation *res, char **cause)
{
	char *why = NULL;
	int rc = store_batch(st, cause);
	if (rc < 0)
		return rc;
	sqlite3_stmt *s = store_stmt(st, STORE_RES_SAVE, &why);
	if (s == NULL) {
		rc = -EIO;
		goto out_fail;
	}
	store_bind_text(s, 1, res->id);
	sqlite3_bind_int(s, 2, res->gpu);
	sqlite3_bind_int64(s, 3, (int64_t)res->bytes);
	sqlite3_bind_int64(s, 4, res->created_at_ms);
	sqlite3_bind_int64(s, 5, res->expires_at_ms);
	sqlite3_bind_int64(s, 6, res->ttl_ms);
	store_bind_text(s, 7, res->owner);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_fail(st, &why, "save reservation");
	sqlite3_reset(s);
	if (rc < 0)
		goto out_fail;
	st->batch_rows++;
	return 0;

out_fail:
	store_batch_failed(st, rc, why);
	if (cause != NULL)
		*cause = why;
	else
		free(why);
	return rc;
}

int
store_reservation_delete(struct store *st, const char *id, char **cause)
{
	char *why = NULL;
	int rc = store_batch(st, cause);
	if (rc < 0)
		return rc;
	sqlite3_stmt *s = store_stmt(st, STORE_RES_DELETE, &why);
	if (s == NULL) {
		rc = -EIO;
		goto out_fail;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_fail(st, &why, "delete reservation");
	sqlite3_reset(s);
	if (rc < 0)
		goto out_fail;
	st->batch_rows++;
	return 0;

out_fail:
	store_batch_failed(st, rc, why);
	if (cause != NULL)
		*cause = why;
	else
		free(why);
	return rc;
}

int
store_reservations_load(struct store *st, store_reservation_cb *cb, void *arg, char **cause)
{
	sqlite3_stmt *s = store_stmt(st, STORE_RES_LOAD, cause);
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
	int result = rc == SQLITE_DONE ? n : store_fail(st, cause, "read reservations");
	sqlite3_reset(s);
	return result;
}
