/*
 * store-backend.h: what the store's shared front (store.c) asks of a database, internal
 * to src/store/. store.c keeps the write queue, the writer thread, completions, the
 * notify descriptor, store_wait and the stats; a backend runs SQL on two connections
 * of its own: the writer thread's (the batch and write functions, called only from
 * that thread once it runs) and the loop's reads (every other function). Two backends:
 * store-sqlite.c (a data directory) and store-pg.c (a postgresql:// URL).
 *
 * A backend reports errors as -errno with *cause (the caller frees) naming the database
 * (path, or URL without its password) and the driver's own message.
 */
#ifndef VRAMD_STORE_BACKEND_H
#define VRAMD_STORE_BACKEND_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The statements a write runs, one per kind of row image. */
enum store_write_kind {
	STORE_WRITE_JOB_SAVE,	/* 20 values: STORE_JOB_COLUMNS; insert or replace */
	STORE_WRITE_JOB_UPDATE, /* 10 values: seq, status, result, error, started_at,
				 * completed_at, wait_ms, load_ms, run_ms, attempts */
	STORE_WRITE_RES_SAVE,	/* 7 values: id, gpu, bytes, created_at, expires_at,
				 * ttl_ms, owner; insert or replace */
	STORE_WRITE_RES_DELETE, /* 1 value: id */
	STORE_NWRITE_KINDS
};

/* The columns of a job row, in the order every job read returns them. */
#define STORE_JOB_COLUMNS                                                                          \
	"seq, id, model, kind, priority, status, request, metadata, result, error, "               \
	"submitted_at, started_at, completed_at, wait_ms, load_ms, run_ms, attempts, key, "        \
	"deadline_at, placement"
#define STORE_JOB_NCOLUMNS 20

/* One value: SQL NULL, an integer or a text. */
enum store_value_type { STORE_NULL, STORE_INT, STORE_TEXT };

struct store_value {
	enum store_value_type type;
	bool owned; /* text: freed with the write (else static or borrowed) */
	int64_t i;
	const char *text;
	size_t len; /* text: its length in bytes (reads only; writes leave it 0) */
};

#define STORE_WRITE_MAX_VALUES 20

/* A row image: one statement with its values, built on the loop from copies, run and
 * freed by the writer thread. */
struct store_write {
	struct store_write *next;
	enum store_write_kind kind;
	uint64_t ticket;
	int nvalues;
	struct store_value values[STORE_WRITE_MAX_VALUES];
};

/* A job list query built by store.c from a filter: sql with parameters numbered 1..n in
 * the backend's mark ('?' for ?1, '$' for $1), all of them texts but the last (the
 * limit, an integer). */
struct store_query {
	const char *sql;
	int nparams;
	struct store_value params[16];
};

/* One row of the job counts: (model, status, priority, key or NULL, n). */
typedef void store_count_row_cb(const char *model, const char *status, const char *priority,
				const char *key, int64_t n, void *arg);

/* A backend's open connections; each backend defines it. */
struct store_db;

struct store_backend {
	const char *name; /* "sqlite", "postgresql" */
	char param_mark;  /* how its SQL numbers parameters: '?' or '$' */
	/* Opens both connections at location (a directory or a URL), creates or migrates
	 * the schema, and sets *max_seq to the largest stored job seq (0 if none). */
	int (*open)(const char *location, enum store_sync sync, struct store_db **out,
		    int64_t *max_seq, char **cause);
	/* What the logs and store_path() call it: a file path, or the URL without its
	 * password. Borrowed, valid until close. */
	const char *(*describe)(const struct store_db *db);
	/* The writer thread's batch: begin, any number of writes, then commit, or rollback
	 * after a failure (which must leave the connection usable, or reconnect at the
	 * next begin). */
	int (*batch_begin)(struct store_db *db, char **cause);
	int (*write)(struct store_db *db, const struct store_write *w, char **cause);
	int (*batch_commit)(struct store_db *db, char **cause);
	void (*batch_rollback)(struct store_db *db);
	/* Reads, on the loop's connection. job_get sets *out to NULL when there is no row. */
	int (*job_get)(struct store_db *db, int64_t seq, const char *id, struct job **out,
		       char **cause);
	int (*jobs_list)(struct store_db *db, const struct store_query *q, store_job_cb *cb,
			 void *arg, char **cause);
	int (*load_unfinished)(struct store_db *db, store_job_cb *cb, void *arg, char **cause);
	int (*counts)(struct store_db *db, store_count_row_cb *cb, void *arg, char **cause);
	int (*reservations_load)(struct store_db *db, store_reservation_cb *cb, void *arg,
				 char **cause);
	/* Job seqs shared by several instances on one database: claims a block of seqs
	 * and sets *first to its start (seq_block seqs). NULL: the one process owning the store
	 * counts on from max_seq itself (SQLite). */
	int (*claim_seqs)(struct store_db *db, int64_t *first, char **cause);
	/* Named documents shared by several instances (the run-time configuration), on the
	 * loop's connection, committed at once. get sets *value NULL when there is none.
	 * NULL: not shared (SQLite). */
	int (*setting_get)(struct store_db *db, const char *name, char **value, char **cause);
	int (*setting_put)(struct store_db *db, const char *name, const char *value, char **cause);
	int64_t seq_block; /* how many seqs one claim gives */
	void (*close)(struct store_db *db);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

/*
 * A job from the values of one row of STORE_JOB_COLUMNS (cols[STORE_JOB_NCOLUMNS]);
 * where names the database for warnings about unreadable JSON. A new job, refcount 1.
 * A row without a placement (stored before schema 5) gets JOB_NPLACEMENTS (store.h).
 */
struct job *store_job_from_row(const char *where, const struct store_value *cols);

/* Whether location names a PostgreSQL database (postgresql:// or postgres://). */
bool store_location_is_pg(const char *location);

#endif
