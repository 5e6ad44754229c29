/*
 * store.c: the durable store on SQLite (see store.h); the only file that includes
 * sqlite3.h. daemon.c opens it at start, reloads unfinished jobs and reservations,
 * hands the writes of each loop turn to the writer thread (store_flush) and sends 202s
 * on its completions; the API and the engine save jobs whenever their state changes;
 * GET endpoints read finished jobs and counts from it.
 *
 * The database is vramd-data/vramd.db in WAL mode, so readers never block the writer
 * and a commit costs one append and (with SYNC=full) one fsync of the WAL.
 *
 * Two connections, one per thread (SQLITE_OPEN_NOMUTEX: SQLite's multi-thread mode):
 *   - the writer thread (store_writer_main) owns wdb: it takes every write handed over
 *     (st->queue) at once, runs them in one transaction, commits, appends a completion
 *     (st->done) and writes a byte to the notify pipe. A failed write rolls back its
 *     whole batch, which the completion reports. Like Redis's bio threads it shares
 *     nothing else: a write is a row image (struct store_write) built on the loop from
 *     copies, and freed by the writer.
 *   - the loop owns rdb for reads, and everything else in struct store except the
 *     fields marked "under mu". Reads first wait for the writer to catch up
 *     (store_wait), so they see every write saved before them.
 * The schema is created on wdb before the thread starts (pthread_create orders it).
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
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION  5
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_LIST_DEFAULT    100
#define STORE_LIST_MAX	      10000

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

#define STORE_JOB_COLUMNS                                                                          \
	"seq, id, model, kind, priority, status, request, metadata, result, error, "               \
	"submitted_at, started_at, completed_at, wait_ms, load_ms, run_ms, attempts, key, "        \
	"deadline_at, placement"

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

/* One bound value of a write: SQL NULL, an integer or a text. */
enum store_value_type { STORE_NULL, STORE_INT, STORE_TEXT };

struct store_value {
	enum store_value_type type;
	bool owned; /* text: freed with the write (else a static string) */
	int64_t i;
	const char *text;
};

#define STORE_WRITE_MAX_VALUES 20

/* A row image: one statement with its values, built on the loop from copies, run and
 * freed by the writer thread. */
struct store_write {
	struct store_write *next;
	enum store_stmt stmt;
	uint64_t ticket;
	int nvalues;
	struct store_value values[STORE_WRITE_MAX_VALUES];
};

/* A finished commit, from the writer to the loop. */
struct store_done {
	struct store_done *next;
	uint64_t through;
	int rc;
	char *cause; /* owned; NULL when rc is 0 */
};

struct store {
	sqlite3 *db;  /* rdb: the loop's reads */
	sqlite3 *wdb; /* the writer thread's (the loop's only before the thread starts) */
	char *path;
	sqlite3_stmt *stmt[STORE_NSTMTS]; /* each on the connection store_stmt_writes says */
	int64_t next_seq;

	/* The loop's side: writes saved since the last flush, and the last ticket given. */
	struct store_write *local, **local_tail;
	uint64_t last_ticket;
	int notify_rd; /* the loop reads this end */

	pthread_t writer;
	bool writer_started;
	int notify_wr; /* the writer writes a byte here after each commit */
	pthread_mutex_t mu;
	pthread_cond_t wake;			 /* the writer waits here for writes or stop */
	pthread_cond_t idle;			 /* store_wait waits here for done_through */
	struct store_write *queue, **queue_tail; /* under mu: handed over, not yet taken */
	struct store_done *done, **done_tail;	 /* under mu: finished commits */
	uint64_t done_through;			 /* under mu: every ticket <= this finished */
	bool stopping;				 /* under mu: store_close asks the writer to end */
	struct store_stats stats;		 /* under mu */
};

static int
store_fail_db(struct store *st, sqlite3 *db, char **cause, const char *what)
{
	return vd_fail(cause, -EIO, "store %s: %s: %s", st->path, what, sqlite3_errmsg(db));
}

static int
store_fail(struct store *st, char **cause, const char *what)
{
	return store_fail_db(st, st->db, cause, what);
}

static sqlite3_stmt *
store_stmt(struct store *st, enum store_stmt which, char **cause)
{
	sqlite3 *db = store_stmt_writes[which] ? st->wdb : st->db;
	if (st->stmt[which] == NULL &&
	    sqlite3_prepare_v3(db, store_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
			       &st->stmt[which], NULL) != SQLITE_OK) {
		store_fail_db(st, db, cause, "prepare");
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
		return store_fail_db(st, sqlite3_db_handle(s), cause, store_sql[which]);
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

/* --- The writer thread ------------------------------------------------------------------ */

static void
store_write_free(struct store_write *w)
{
	for (int i = 0; i < w->nvalues; i++)
		if (w->values[i].owned)
			free((char *)w->values[i].text);
	free(w);
}

static void
store_writes_free(struct store_write *w)
{
	while (w != NULL) {
		struct store_write *next = w->next;
		store_write_free(w);
		w = next;
	}
}

/* Runs one write on wdb (writer thread). */
static int
store_write_run(struct store *st, const struct store_write *w, char **cause)
{
	sqlite3_stmt *s = store_stmt(st, w->stmt, cause);
	if (s == NULL)
		return -EIO;
	for (int i = 0; i < w->nvalues; i++) {
		const struct store_value *v = &w->values[i];
		if (v->type == STORE_INT)
			sqlite3_bind_int64(s, i + 1, v->i);
		else if (v->type == STORE_TEXT)
			sqlite3_bind_text(s, i + 1, v->text, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, i + 1);
	}
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_fail_db(st, st->wdb, cause, "write");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/*
 * Commits one batch in one transaction (writer thread) and frees it. The first failure
 * rolls the whole batch back, as a batch is what the loop's replies wait on.
 */
static int
store_writer_commit(struct store *st, struct store_write *batch, char **cause)
{
	size_t n = 0;
	int rc = store_exec_stmt(st, STORE_BEGIN, cause);
	for (struct store_write *w = batch; rc == 0 && w != NULL; w = w->next, n++)
		rc = store_write_run(st, w, cause);
	if (rc == 0)
		rc = store_exec_stmt(st, STORE_COMMIT, cause);
	if (rc < 0 && sqlite3_get_autocommit(st->wdb) == 0)
		sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
	if (rc < 0 && cause != NULL && *cause != NULL) {
		char *why = xasprintf("%s (batch of %zu writes rolled back)", *cause, n);
		free(*cause);
		*cause = why;
	}
	store_writes_free(batch);
	return rc;
}

/*
 * The writer thread: takes everything handed over, commits it, reports, and again.
 * Writes handed over while a commit runs wait for the next one, so a batch holds all
 * that arrived during the previous fsync, however many loop turns that was.
 */
static void *
store_writer_main(void *arg)
{
	struct store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (st->queue == NULL && !st->stopping)
			pthread_cond_wait(&st->wake, &st->mu);
		if (st->queue == NULL)
			break; /* stopping, and nothing left to write */
		struct store_write *batch = st->queue;
		uint64_t through = batch->ticket, n = 0;
		for (struct store_write *w = batch; w != NULL; w = w->next, n++)
			through = w->ticket;
		st->queue = NULL;
		st->queue_tail = &st->queue;
		st->stats.queued = 0;
		pthread_mutex_unlock(&st->mu);

		char *cause = NULL;
		int rc = store_writer_commit(st, batch, &cause);
		struct store_done *done = xcalloc(1, sizeof(*done));
		done->through = through;
		done->rc = rc;
		done->cause = rc < 0 ? (cause != NULL ? cause : xstrdup("write failed")) : NULL;
		if (rc == 0)
			free(cause);

		pthread_mutex_lock(&st->mu);
		*st->done_tail = done;
		st->done_tail = &done->next;
		st->done_through = through;
		st->stats.commits++;
		st->stats.writes += n;
		if (n > st->stats.max_batch)
			st->stats.max_batch = n;
		pthread_cond_broadcast(&st->idle);
		/* The pipe may be full when the loop is slow: it reads every completion on
		 * its next wake-up anyway. */
		ssize_t wr = write(st->notify_wr, "c", 1);
		(void)wr;
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static int
store_writer_start(struct store *st, char **cause)
{
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return vd_fail(cause, -errno, "store %s: pipe: %s", st->path, strerror(errno));
	st->notify_rd = fds[0];
	st->notify_wr = fds[1];
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->wake, NULL);
	pthread_cond_init(&st->idle, NULL);
	int rc = pthread_create(&st->writer, NULL, store_writer_main, st);
	if (rc != 0)
		return vd_fail(cause, -rc, "store %s: cannot start the writer thread: %s", st->path,
			       strerror(rc));
	st->writer_started = true;
	return 0;
}

/* --- Opening and closing ------------------------------------------------------------------- */

int
store_open(const char *dir, enum store_sync sync, struct store **out, char **cause)
{
	*out = NULL;
	if (!sqlite3_threadsafe())
		return vd_fail(cause, -ENOTSUP, "store: this SQLite is built without threads");
	int rc = store_mkdirs(dir, cause);
	if (rc < 0)
		return rc;
	struct store *st = xcalloc(1, sizeof(*st));
	st->path = xasprintf("%s/vramd.db", dir);
	st->local_tail = &st->local;
	st->queue_tail = &st->queue;
	st->done_tail = &st->done;
	st->notify_rd = st->notify_wr = -1;
	rc = store_create_private(st, cause);
	if (rc < 0)
		goto out_close;
	/* The write connection first, in st->db while the schema is set up here. */
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
	st->wdb = st->db;
	st->db = NULL;
	if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		rc = st->db != NULL ? store_fail(st, cause, "cannot open for reading")
				    : vd_fail(cause, -ENOMEM, "store %s: cannot open", st->path);
		goto out_close;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	rc = store_writer_start(st, cause);
	if (rc < 0)
		goto out_close;
	vd_log(STORE,
	       "opened %s (WAL, synchronous=%s, commits on a writer thread), next job seq "
	       "%lld",
	       st->path, sync == STORE_SYNC_FULL ? "full" : "normal", (long long)st->next_seq);
	*out = st;
	return 0;

out_close:
	store_close(st);
	return rc;
}

static void
store_log_failure_cb(uint64_t through, int rc, const char *cause, void *arg)
{
	(void)through;
	(void)arg;
	if (rc < 0)
		vd_error(STORE, "final commit failed: %s", cause);
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->writer_started) {
		store_flush(st);
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		pthread_cond_signal(&st->wake);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->writer, NULL);
		store_completions(st, store_log_failure_cb, NULL);
		pthread_cond_destroy(&st->wake);
		pthread_cond_destroy(&st->idle);
		pthread_mutex_destroy(&st->mu);
	}
	store_writes_free(st->local);
	for (int i = 0; i < STORE_NSTMTS; i++)
		sqlite3_finalize(st->stmt[i]);
	/* The reader first: the writer's close, the last, checkpoints the WAL. */
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		vd_error(STORE, "close %s: %s", st->path, sqlite3_errmsg(st->db));
	if (st->wdb != NULL && sqlite3_close(st->wdb) != SQLITE_OK)
		vd_error(STORE, "close %s: %s", st->path, sqlite3_errmsg(st->wdb));
	if (st->notify_rd >= 0)
		close(st->notify_rd);
	if (st->notify_wr >= 0)
		close(st->notify_wr);
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

/* --- The loop's side of the writes ------------------------------------------------------- */

static struct store_write *
store_write_new(enum store_stmt stmt, int nvalues)
{
	struct store_write *w = xcalloc(1, sizeof(*w));
	w->stmt = stmt;
	w->nvalues = nvalues;
	return w;
}

static void
store_value_int(struct store_write *w, int col, int64_t i)
{
	w->values[col - 1] = (struct store_value){.type = STORE_INT, .i = i};
}

/* A copy of text (NULL: SQL NULL). */
static void
store_value_text(struct store_write *w, int col, const char *text)
{
	if (text != NULL)
		w->values[col - 1] =
		    (struct store_value){.type = STORE_TEXT, .owned = true, .text = xstrdup(text)};
}

/* A string that lives as long as the program (the names of kinds and statuses). */
static void
store_value_static(struct store_write *w, int col, const char *text)
{
	w->values[col - 1] = (struct store_value){.type = STORE_TEXT, .text = text};
}

/* A JSON value as compact text (NULL: SQL NULL). */
static void
store_value_json(struct store_write *w, int col, const json_t *value)
{
	char *text = value != NULL ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (text != NULL)
		w->values[col - 1] =
		    (struct store_value){.type = STORE_TEXT, .owned = true, .text = text};
}

static void
store_save(struct store *st, struct store_write *w)
{
	w->ticket = ++st->last_ticket;
	*st->local_tail = w;
	st->local_tail = &w->next;
}

void
store_flush(struct store *st)
{
	if (st->local == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	*st->queue_tail = st->local;
	st->queue_tail = st->local_tail;
	st->stats.queued += st->last_ticket - st->local->ticket + 1;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->mu);
	st->local = NULL;
	st->local_tail = &st->local;
}

uint64_t
store_last_ticket(const struct store *st)
{
	return st->last_ticket;
}

int
store_notify_fd(const struct store *st)
{
	return st->notify_rd;
}

void
store_completions(struct store *st, store_commit_cb *cb, void *arg)
{
	char sink[256];
	while (read(st->notify_rd, sink, sizeof(sink)) > 0)
		continue;
	pthread_mutex_lock(&st->mu);
	struct store_done *done = st->done;
	st->done = NULL;
	st->done_tail = &st->done;
	pthread_mutex_unlock(&st->mu);
	while (done != NULL) {
		struct store_done *next = done->next;
		cb(done->through, done->rc, done->cause, arg);
		free(done->cause);
		free(done);
		done = next;
	}
}

void
store_wait(struct store *st)
{
	store_flush(st);
	pthread_mutex_lock(&st->mu);
	while (st->done_through < st->last_ticket)
		pthread_cond_wait(&st->idle, &st->mu);
	pthread_mutex_unlock(&st->mu);
}

bool
store_has_pending(const struct store *st)
{
	struct store *mst = (struct store *)st; /* the mutex, not the store, changes */
	pthread_mutex_lock(&mst->mu);
	bool pending = st->done_through < st->last_ticket;
	pthread_mutex_unlock(&mst->mu);
	return pending;
}

void
store_get_stats(struct store *st, struct store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->mu);
}

struct store_first_failure {
	int rc;
	char *cause;
};

static void
store_first_failure_cb(uint64_t through, int rc, const char *cause, void *arg)
{
	(void)through;
	struct store_first_failure *f = arg;
	if (rc < 0 && f->rc == 0) {
		f->rc = rc;
		f->cause = xstrdup(cause);
	}
}

int
store_commit(struct store *st, char **cause)
{
	store_wait(st);
	struct store_first_failure f = {0};
	store_completions(st, store_first_failure_cb, &f);
	if (f.rc < 0 && cause != NULL)
		*cause = f.cause;
	else
		free(f.cause);
	return f.rc;
}

int
store_job_save(struct store *st, const struct job *job, char **cause)
{
	(void)cause;
	struct store_write *w = store_write_new(STORE_JOB_SAVE, 20);
	store_value_int(w, 1, job->seq);
	store_value_text(w, 2, job->id);
	store_value_text(w, 3, job->model);
	store_value_static(w, 4, job_kind_name(job->kind));
	store_value_static(w, 5, job_priority_name(job->priority));
	store_value_static(w, 6, job_status_name(job->status));
	store_value_text(w, 7, job->request_text);
	store_value_text(w, 8, job->metadata_text);
	store_value_json(w, 9, job->result);
	store_value_text(w, 10, job->error);
	store_value_int(w, 11, job->submitted_at_ms);
	store_value_int(w, 12, job->started_at_ms);
	store_value_int(w, 13, job->completed_at_ms);
	store_value_int(w, 14, job->wait_ms);
	store_value_int(w, 15, job->load_ms);
	store_value_int(w, 16, job->run_ms);
	store_value_int(w, 17, job->attempts);
	store_value_text(w, 18, job->key);
	store_value_int(w, 19, job->deadline_at_ms);
	store_value_static(w, 20, job_placement_name(job->placement));
	store_save(st, w);
	return 0;
}

int
store_job_update(struct store *st, const struct job *job, char **cause)
{
	(void)cause;
	struct store_write *w = store_write_new(STORE_JOB_UPDATE, 10);
	store_value_int(w, 1, job->seq);
	store_value_static(w, 2, job_status_name(job->status));
	store_value_json(w, 3, job->result);
	store_value_text(w, 4, job->error);
	store_value_int(w, 5, job->started_at_ms);
	store_value_int(w, 6, job->completed_at_ms);
	store_value_int(w, 7, job->wait_ms);
	store_value_int(w, 8, job->load_ms);
	store_value_int(w, 9, job->run_ms);
	store_value_int(w, 10, job->attempts);
	store_save(st, w);
	return 0;
}

/* --- Reads (the loop, on rdb) ---------------------------------------------------------------- */

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
	if (sqlite3_column_type(s, 7) != SQLITE_NULL)
		job->metadata_text = xstrdup((const char *)sqlite3_column_text(s, 7));
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
	job->deadline_at_ms = sqlite3_column_int64(s, 18); /* deadline_mono_ms: the reader's */
	int place = sqlite3_column_type(s, 19) != SQLITE_NULL
			? job_placement_from_name((const char *)sqlite3_column_text(s, 19))
			: -1;
	/* JOB_NPLACEMENTS: not stored (a row from before schema 5); the loader's caller
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
	store_wait(st);
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
	store_wait(st);
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
	store_wait(st);

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
	store_wait(st);
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
	(void)cause;
	struct store_write *w = store_write_new(STORE_RES_SAVE, 7);
	store_value_text(w, 1, res->id);
	store_value_int(w, 2, res->gpu);
	store_value_int(w, 3, (int64_t)res->bytes);
	store_value_int(w, 4, res->created_at_ms);
	store_value_int(w, 5, res->expires_at_ms);
	store_value_int(w, 6, res->ttl_ms);
	store_value_text(w, 7, res->owner);
	store_save(st, w);
	return 0;
}

int
store_reservation_delete(struct store *st, const char *id, char **cause)
{
	(void)cause;
	struct store_write *w = store_write_new(STORE_RES_DELETE, 1);
	store_value_text(w, 1, id);
	store_save(st, w);
	return 0;
}

int
store_reservations_load(struct store *st, store_reservation_cb *cb, void *arg, char **cause)
{
	store_wait(st);
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
