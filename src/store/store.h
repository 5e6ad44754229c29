/*
 * store.h: the durable store. Jobs (with their results) and VRAM reservations live in a
 * SQLite database (WAL mode) in the data directory, or in a PostgreSQL database (config
 * key STORE), so a restart loses nothing that was accepted. store.c is the front that
 * both share; store-sqlite.c and store-pg.c are the only files that know SQLite and
 * libpq (store-backend.h).
 *
 * Writes are committed off the loop thread. store_job_save() and the other writers
 * copy their row into a write (a "row image": bound values, nothing shared with the
 * caller) and give it a ticket, a number that grows by one per write. store_flush()
 * hands every write saved since the last flush to the store's writer thread, which
 * owns the database's write connection: it commits, in one transaction and one fsync,
 * everything that was handed to it while its previous commit ran, then reports
 * "committed (or failed) through ticket T" and makes store_notify_fd() readable. The
 * loop then calls store_completions(). A write is durable once a completion reports
 * through >= its ticket; the daemon sends a job's 202 only then (group commit).
 *
 * Reads (store_job_get, store_jobs_list, store_counts, the startup loads) run on the
 * caller's thread on a second, read-only connection (WAL lets one reader run beside the
 * writer). Each read first waits until every write saved so far is committed
 * (store_wait), so a read sees what the loop wrote before it, as with one connection.
 *
 * Threads: everything here is called from one thread (the loop) except what the
 * writer thread does inside store.c; the two share only the hand-over queue and the
 * completion list, under one mutex.
 *
 * Times are wall clock Unix milliseconds; 0 means "never happened".
 */
#ifndef VRAMD_STORE_H
#define VRAMD_STORE_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

/* Durability of a commit (config key SYNC). FULL: a committed batch survives power
 * loss. NORMAL: it survives a crash of vramd, not necessarily of the machine. */
enum store_sync { STORE_SYNC_FULL, STORE_SYNC_NORMAL };

/*
 * Opens the store at location and creates or checks the schema.
 *
 * A postgresql:// or postgres:// URL: that PostgreSQL database (libpq's URL and PG*
 * environment variables), two connections; sync is not used (commits always wait for
 * the server's flush). Errors: -EINVAL (a URL libpq cannot parse), -ECONNREFUSED
 * (no server, login refused, no such database), -EIO, -EPROTO (a newer schema), with
 * *cause naming the URL without its credentials and giving libpq's message.
 *
 * Anything else is a data directory: it is opened (created if missing) with the
 * database vramd.db in it. A directory it creates is mode 0700; the database and its
 * -wal/-shm files are 0600 (an existing database readable by others is narrowed to
 * 0600; an existing directory keeps its mode). Errors name the directory or the SQLite
 * problem (unwritable directory, corrupt database, newer schema).
 *
 * On success *out is the store (free with store_close).
 */
int store_open(const char *location, enum store_sync sync, struct store **out, char **cause);
/* Commits any pending batch (errors are logged) and closes the database. NULL is a no-op. */
void store_close(struct store *st);
/* The path of the database file, or the PostgreSQL URL without its credentials; for
 * logs. Borrowed, valid until store_close. */
const char *store_path(const struct store *st);

/* Hands out the next job sequence number: on SQLite an in-memory counter that starts
 * after the largest seq in the database; on PostgreSQL from blocks claimed from a
 * sequence shared by every instance on the database (one round trip per block), so
 * several instances never hand out the same seq. Returns -errno with *cause when a block
 * cannot be claimed (the server is down). */
int64_t store_next_seq(struct store *st, char **cause);

/* Named documents every instance on a PostgreSQL store shares (the run-time
 * configuration), read and written at once on the loop's connection (not through the
 * writer's batches). get sets *value (caller frees) or NULL when there is none. On
 * SQLite, which one process owns, both are -ENOTSUP. */
bool store_shares_settings(const struct store *st);
int store_setting_get(struct store *st, const char *name, char **value, char **cause);
int store_setting_put(struct store *st, const char *name, const char *value, char **cause);

/*
 * Adds a write of job's whole row (status, request, metadata, result, error, times,
 * metrics, attempts, key) to the current batch: an insert, or a replacement of the
 * previous row of the same job. The job is only read, now: the caller may change or
 * free it afterwards. Returns 0 (the write itself happens on the writer thread; its
 * failure comes back in a completion). cause may be NULL.
 */
int store_job_save(struct store *st, const struct job *job, char **cause);
/*
 * Adds a write of job's state only (status, result, error, started/completed times,
 * metrics, attempts) to the current batch: an UPDATE of those columns of the row that
 * store_job_save wrote before; the request, metadata and indexed columns stay as they
 * are, so a state change neither copies nor serialises the request. Returns 0.
 */
int store_job_update(struct store *st, const struct job *job, char **cause);

/* Hands every write saved since the last flush to the writer thread and returns at
 * once. The writer commits them with the next commit it starts. */
void store_flush(struct store *st);
/* The ticket of the latest write saved (0 before the first). */
uint64_t store_last_ticket(const struct store *st);
/* A descriptor (non-blocking, owned by the store) that becomes readable when the
 * writer finishes a commit: the loop watches it and calls store_completions(). */
int store_notify_fd(const struct store *st);
/* A finished commit: every write with a ticket <= through is durable (rc 0), or was
 * rolled back (rc < 0, cause says why; borrowed for the call). */
typedef void store_commit_cb(uint64_t through, int rc, const char *cause, void *arg);
/* Calls cb for each commit finished since the last call, oldest first (empties the
 * notify descriptor). */
void store_completions(struct store *st, store_commit_cb *cb, void *arg);
/* Flushes and blocks until every write saved so far is committed or failed. Its
 * completions are still delivered by store_completions(). */
void store_wait(struct store *st);
/*
 * The synchronous commit, for callers that do not watch store_notify_fd (tests, tools,
 * store_close): flushes, waits and takes the pending completions. Returns 0, or the
 * first failure's negative errno with *cause set; a failed batch's writes are lost.
 */
int store_commit(struct store *st, char **cause);
/* Whether a write was saved and is not yet committed (or failed). */
bool store_has_pending(const struct store *st);

/* What the writer thread has done, for GET /api/status-like reports, benches and tests. */
struct store_stats {
	uint64_t commits;   /* transactions finished (committed or rolled back) */
	uint64_t writes;    /* writes they held */
	uint64_t max_batch; /* the most writes one transaction held */
	uint64_t queued;    /* writes handed over (store_flush) that the writer has not taken */
};
void store_get_stats(struct store *st, struct store_stats *out);

/*
 * Loads every job that was queued, pending or running, oldest first, and calls cb with
 * each as a new job object (refcount 1, owned by cb) whose status is queued again
 * (at-least-once: a job that was running may run twice). Returns the number of jobs, or
 * a negative errno with *cause set. A job stored before placements existed (schema 4)
 * has placement JOB_NPLACEMENTS, for cb to resolve to its model's default.
 */
typedef void store_job_cb(struct job *job, void *arg);
int store_load_unfinished(struct store *st, store_job_cb *cb, void *arg, char **cause);

/* Any job by public id, finished ones included: a new job object the caller unrefs, or
 * NULL if there is none (or on a database error, which is logged). */
struct job *store_job_get(struct store *st, const char *id);

/* What GET /api/jobs asks for: sets of statuses and priorities as bit masks (bit
 * 1 << JOB_x; 0 = any), one model (NULL = any) and a row limit. */
struct store_job_filter {
	unsigned status_mask;	/* bits 1 << enum job_status */
	unsigned priority_mask; /* bits 1 << enum job_priority */
	const char *model;	/* borrowed for the call; NULL = any */
	const char *key;	/* the submitting API key's name, borrowed; NULL = any */
	int limit;		/* <= 0: 100; capped at 10000 */
};

/*
 * Lists the jobs matching filter, newest first, at most filter->limit. One query with
 * bound parameters whatever the filter: its cost depends on the number of distinct
 * values and the limit, never on how a client spelled them. cb receives each as a new
 * job object it owns. Returns the number listed, or a negative errno with *cause set.
 */
int store_jobs_list(struct store *st, const struct store_job_filter *filter, store_job_cb *cb,
		    void *arg, char **cause);

/* Job counts over the whole store, for GET /api/stats. */
struct store_counts {
	int64_t total;
	int64_t by_status[JOB_NSTATUSES];
	int64_t by_priority[JOB_NPRIORITIES];
	int64_t by_priority_status[JOB_NPRIORITIES][JOB_NSTATUSES];
	json_t *per_model; /* owned: {"model": {"queued": n, "complete": n, ...}, ...} */
	json_t *per_key;   /* owned: the same per API key name (jobs with a key only) */
};
/* Fills out (free per_model and per_key with json_decref). Returns 0 or a negative
 * errno + *cause. */
int store_counts(struct store *st, struct store_counts *out, char **cause);

/* A VRAM reservation for a program that is not a model (issue 4). */
struct store_reservation {
	char *id;	       /* owned */
	int gpu;	       /* GPU index, or -1 for "any" */
	uint64_t bytes;	       /* memory reserved */
	int64_t created_at_ms; /* wall clock */
	int64_t expires_at_ms; /* wall clock; 0 = never */
	int64_t ttl_ms;	       /* renewal extends expires_at by this; 0 = no ttl */
	char *owner;	       /* owned, may be NULL: free text from the client */
};

/* Inserts or replaces a reservation in the current batch. Returns 0 or -errno + *cause. */
int store_reservation_save(struct store *st, const struct store_reservation *res, char **cause);
/* Deletes a reservation by id in the current batch (no-op if absent). */
int store_reservation_delete(struct store *st, const char *id, char **cause);
/* Calls cb with every stored reservation (borrowed for the call). Returns the count or
 * -errno + *cause. */
typedef void store_reservation_cb(const struct store_reservation *res, void *arg);
int store_reservations_load(struct store *st, store_reservation_cb *cb, void *arg, char **cause);

#endif
