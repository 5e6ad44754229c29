/*
 * store.h: the durable store. Jobs (with their results) and VRAM reservations live in a
 * SQLite database (WAL mode) in the data directory, so a restart loses nothing that was
 * accepted. Only store.c knows SQLite.
 *
 * Group commit: store_job_save() and the reservation writers add their row to the
 * current batch transaction (opened lazily); store_commit() makes the batch durable.
 * The daemon calls store_commit() once per loop turn, before it sends the 202 replies
 * of the jobs submitted in that turn, so one fsync covers many jobs.
 *
 * Times are wall clock Unix milliseconds; 0 means "never happened".
 * The store is used from the loop thread only.
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
 * Opens (creating if missing) the data directory dir and the database vramd.db in it,
 * and creates or checks the schema. A directory it creates is mode 0700; the database
 * and its -wal/-shm files are 0600 (an existing database readable by others is
 * narrowed to 0600; an existing directory keeps its mode). On success *out is the store (free with
 * store_close). Returns 0, or a negative errno with *cause naming the directory or the
 * SQLite problem (unwritable directory, corrupt database, newer schema).
 */
int store_open(const char *dir, enum store_sync sync, struct store **out, char **cause);
/* Commits any pending batch (errors are logged) and closes the database. NULL is a no-op. */
void store_close(struct store *st);
/* The path of the database file; borrowed, valid until store_close. */
const char *store_path(const struct store *st);

/* Hands out the next job sequence number (an in-memory counter that starts after the
 * largest seq in the database). Never returns the same number twice in a process. */
int64_t store_next_seq(struct store *st);

/*
 * Adds job (all its fields: status, request, metadata, result, error, times, metrics,
 * attempts) to the current batch, replacing the previous row of the same job. The job is
 * only read; the row is written at once inside the open transaction, so the caller may
 * change or free the job afterwards. Returns 0, or a negative errno with *cause set
 * (the batch is then rolled back by the next store_commit, which reports the failure).
 */
int store_job_save(struct store *st, const struct job *job, char **cause);
/* Commits the current batch, if any. Returns 0, or a negative errno with *cause set;
 * after a failure the batch is rolled back and its writes are lost. */
int store_commit(struct store *st, char **cause);
/* Whether a batch is open (something saved since the last commit). */
bool store_has_pending(const struct store *st);

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
