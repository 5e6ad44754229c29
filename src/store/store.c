/*
 * store.c: the durable store's shared front (see store.h). daemon.c opens it at start,
 * reloads unfinished jobs and reservations, hands the writes of each loop turn to the
 * writer thread (store_flush) and sends 202s on its completions; the API and the engine
 * save jobs whenever their state changes; GET endpoints read finished jobs and counts.
 *
 * The SQL runs in a backend (store-backend.h): store-sqlite.c for a data directory
 * (the default), store-pg.c for a postgresql:// URL (config key STORE). Everything
 * else is here and the same for both:
 *   - the writer thread (store_writer_main) owns the backend's write connection: it
 *     takes every write handed over (st->queue) at once, runs them in one transaction,
 *     commits, appends a completion (st->done) and writes a byte to the notify pipe. A
 *     failed write rolls back its whole batch, which the completion reports. Like
 *     Redis's bio threads it shares nothing else: a write is a row image (struct
 *     store_write) built on the loop from copies, and freed by the writer.
 *   - the loop owns the backend's read connection and everything else in struct store
 *     except the fields marked "under mu". Reads first wait for the writer to catch up
 *     (store_wait), so they see every write saved before them.
 * The backend opens (and creates the schema) before the thread starts.
 */
#include "store.h"

#include "store-backend.h"

#include "buf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_LIST_DEFAULT 100
#define STORE_LIST_MAX	   10000

/* A finished commit, from the writer to the loop. */
struct store_done {
	struct store_done *next;
	uint64_t through;
	int rc;
	char *cause; /* owned; NULL when rc is 0 */
};

struct store {
	const struct store_backend *backend;
	struct store_db *db; /* the backend's connections: writes on the writer thread */
	int64_t next_seq;
	int64_t seq_end; /* with claim_seqs: the end (exclusive) of the block claimed */

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

bool
store_location_is_pg(const char *location)
{
	return vd_str_has_prefix(location, "postgresql://") ||
	       vd_str_has_prefix(location, "postgres://");
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

/*
 * Commits one batch in one transaction (writer thread) and frees it. The first failure
 * rolls the whole batch back, as a batch is what the loop's replies wait on.
 */
static int
store_writer_commit(struct store *st, struct store_write *batch, char **cause)
{
	const struct store_backend *be = st->backend;
	size_t n = 0;
	int rc = be->batch_begin(st->db, cause);
	bool begun = rc == 0;
	for (struct store_write *w = batch; rc == 0 && w != NULL; w = w->next, n++)
		rc = be->write(st->db, w, cause);
	if (rc == 0)
		rc = be->batch_commit(st->db, cause);
	if (rc < 0 && begun)
		be->batch_rollback(st->db);
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
		return vd_fail(cause, -errno, "store %s: pipe: %s", store_path(st),
			       strerror(errno));
	st->notify_rd = fds[0];
	st->notify_wr = fds[1];
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->wake, NULL);
	pthread_cond_init(&st->idle, NULL);
	int rc = pthread_create(&st->writer, NULL, store_writer_main, st);
	if (rc != 0)
		return vd_fail(cause, -rc, "store %s: cannot start the writer thread: %s",
			       store_path(st), strerror(rc));
	st->writer_started = true;
	return 0;
}

/* --- Opening and closing ------------------------------------------------------------------- */

int
store_open(const char *location, enum store_sync sync, struct store **out, char **cause)
{
	*out = NULL;
	struct store *st = xcalloc(1, sizeof(*st));
	st->backend = store_location_is_pg(location) ? &store_pg_backend : &store_sqlite_backend;
	st->local_tail = &st->local;
	st->queue_tail = &st->queue;
	st->done_tail = &st->done;
	st->notify_rd = st->notify_wr = -1;
	int64_t max_seq = 0;
	int rc = st->backend->open(location, sync, &st->db, &max_seq, cause);
	if (rc < 0)
		goto out_close;
	/* A shared database gives seqs in blocks, claimed at the first submission. */
	st->next_seq = st->backend->claim_seqs != NULL ? 0 : max_seq + 1;
	rc = store_writer_start(st, cause);
	if (rc < 0)
		goto out_close;
	if (st->backend->claim_seqs != NULL)
		vd_log(STORE, "opened %s (%s, commits on a writer thread)", store_path(st),
		       st->backend->name);
	else
		vd_log(STORE, "opened %s (%s, commits on a writer thread), next job seq %lld",
		       store_path(st), st->backend->name, (long long)st->next_seq);
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
	if (st->db != NULL)
		st->backend->close(st->db);
	if (st->notify_rd >= 0)
		close(st->notify_rd);
	if (st->notify_wr >= 0)
		close(st->notify_wr);
	free(st);
}

const char *
store_path(const struct store *st)
{
	return st->db != NULL ? st->backend->describe(st->db) : "(store not open)";
}

bool
store_shares_settings(const struct store *st)
{
	return st->backend->setting_get != NULL;
}

int
store_setting_get(struct store *st, const char *name, char **value, char **cause)
{
	*value = NULL;
	if (st->backend->setting_get == NULL)
		return vd_fail(cause, -ENOTSUP, "the %s store shares no settings",
			       st->backend->name);
	return st->backend->setting_get(st->db, name, value, cause);
}

int
store_setting_put(struct store *st, const char *name, const char *value, char **cause)
{
	if (st->backend->setting_put == NULL)
		return vd_fail(cause, -ENOTSUP, "the %s store shares no settings",
			       st->backend->name);
	return st->backend->setting_put(st->db, name, value, cause);
}

int64_t
store_next_seq(struct store *st, char **cause)
{
	if (st->backend->claim_seqs != NULL && st->next_seq >= st->seq_end) {
		int64_t first = 0;
		int rc = st->backend->claim_seqs(st->db, &first, cause);
		if (rc < 0)
			return rc;
		st->next_seq = first;
		st->seq_end = first + st->backend->seq_block;
	}
	return st->next_seq++;
}

/* --- The loop's side of the writes ------------------------------------------------------- */

static struct store_write *
store_write_new(enum store_write_kind kind, int nvalues)
{
	struct store_write *w = xcalloc(1, sizeof(*w));
	w->kind = kind;
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
	struct store_write *w = store_write_new(STORE_WRITE_JOB_SAVE, 20);
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
	struct store_write *w = store_write_new(STORE_WRITE_JOB_UPDATE, 10);
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

/* --- Reads (the loop, on the backend's read connection) ------------------------------------ */

static json_t *
store_value_json_parse(const char *where, const struct store_value *v, int col)
{
	if (v->type != STORE_TEXT)
		return NULL;
	json_error_t err;
	json_t *value = json_loadb(v->text, v->len, JSON_DECODE_ANY, &err);
	if (value == NULL)
		vd_warn(STORE, "%s: unreadable JSON in column %d: %s", where, col, err.text);
	return value;
}

static const char *
store_value_str(const struct store_value *v)
{
	return v->type == STORE_TEXT ? v->text : NULL;
}

static char *
store_value_strdup(const struct store_value *v)
{
	return v->type == STORE_TEXT ? xstrdup(v->text) : NULL;
}

struct job *
store_job_from_row(const char *where, const struct store_value *c)
{
	const char *model = store_value_str(&c[2]);
	const char *kind_name = store_value_str(&c[3]);
	const char *prio_name = store_value_str(&c[4]);
	const char *status_name = store_value_str(&c[5]);
	int kind = kind_name != NULL ? job_kind_from_name(kind_name) : -1;
	int prio = prio_name != NULL ? job_priority_from_name(prio_name) : -1;
	int status = status_name != NULL ? job_status_from_name(status_name) : -1;
	json_t *request = store_value_json_parse(where, &c[6], 6);
	if (!json_is_object(request)) {
		json_decref(request);
		request = NULL;
	}
	struct job *job =
	    job_new(c[0].i, model != NULL ? model : "", kind >= 0 ? kind : JOB_KIND_GENERATE,
		    prio >= 0 ? prio : JOB_PRIO_NORMAL, request, NULL);
	job->status = status >= 0 ? status : JOB_FAILED;
	job->request_bytes = c[6].type == STORE_TEXT ? c[6].len : 0;
	job->metadata_text = store_value_strdup(&c[7]);
	job->result = store_value_json_parse(where, &c[8], 8);
	job->error = store_value_strdup(&c[9]);
	job->submitted_at_ms = c[10].i;
	job->started_at_ms = c[11].i;
	job->completed_at_ms = c[12].i;
	job->wait_ms = c[13].i;
	job->load_ms = c[14].i;
	job->run_ms = c[15].i;
	job->attempts = (int)c[16].i;
	job->key = store_value_strdup(&c[17]);
	job->deadline_at_ms = c[18].i; /* deadline_mono_ms: the reader's */
	const char *place_name = store_value_str(&c[19]);
	int place = place_name != NULL ? job_placement_from_name(place_name) : -1;
	/* JOB_NPLACEMENTS: not stored (a row from before schema 5); the loader's caller
	 * resolves it (store.h). */
	job->placement = place >= 0 ? (enum job_placement)place : JOB_NPLACEMENTS;
	return job;
}

int
store_load_unfinished(struct store *st, store_job_cb *cb, void *arg, char **cause)
{
	store_wait(st);
	return st->backend->load_unfinished(st->db, cb, arg, cause);
}

struct job *
store_job_get(struct store *st, const char *id)
{
	int64_t seq;
	if (id == NULL || !job_parse_id(id, &seq))
		return NULL;
	store_wait(st);
	struct job *job = NULL;
	char *cause = NULL;
	if (st->backend->job_get(st->db, seq, id, &job, &cause) < 0) {
		vd_error(STORE, "%s", cause);
		free(cause);
		return NULL;
	}
	return job;
}

/* Appends " AND <column> IN (?1,...)" with one text parameter per bit of mask. */
static void
store_sql_in(struct vd_buf *sql, struct store_query *q, char mark, const char *column,
	     unsigned mask, unsigned nbits, const char *(*name)(unsigned bit))
{
	vd_buf_printf(sql, " AND %s IN (", column);
	for (unsigned bit = 0, n = 0; bit < nbits; bit++) {
		if (!(mask & (1u << bit)))
			continue;
		q->params[q->nparams++] =
		    (struct store_value){.type = STORE_TEXT, .text = name(bit)};
		vd_buf_printf(sql, "%s%c%d", n++ > 0 ? "," : "", mark, q->nparams);
	}
	vd_buf_append_str(sql, ")");
}

/* Appends " AND <column> = ?n" with value (borrowed) as its parameter. */
static void
store_sql_eq(struct vd_buf *sql, struct store_query *q, char mark, const char *column,
	     const char *value)
{
	q->params[q->nparams++] = (struct store_value){.type = STORE_TEXT, .text = value};
	vd_buf_printf(sql, " AND %s = %c%d", column, mark, q->nparams);
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

	/* At most 6 + 3 + 1 + 1 + 1 parameters, whatever the request looked like. */
	struct vd_buf sql;
	vd_buf_init(&sql, 4096);
	struct store_query q = {0};
	char mark = st->backend->param_mark;
	vd_buf_append_str(&sql, "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE TRUE");
	if (status_mask != 0 && status_mask != all_status)
		store_sql_in(&sql, &q, mark, "status", status_mask, JOB_NSTATUSES,
			     store_status_name);
	if (prio_mask != 0 && prio_mask != all_prio)
		store_sql_in(&sql, &q, mark, "priority", prio_mask, JOB_NPRIORITIES,
			     store_priority_name);
	if (filter->model != NULL)
		store_sql_eq(&sql, &q, mark, "model", filter->model);
	if (filter->key != NULL)
		store_sql_eq(&sql, &q, mark, "key", filter->key);
	q.params[q.nparams++] = (struct store_value){.type = STORE_INT, .i = limit};
	vd_buf_printf(&sql, " ORDER BY seq DESC LIMIT %c%d", mark, q.nparams);
	q.sql = vd_buf_str(&sql);
	int rc = st->backend->jobs_list(st->db, &q, cb, arg, cause);
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

static void
store_count_row_cb_add(const char *model, const char *status, const char *priority, const char *key,
		       int64_t n, void *arg)
{
	struct store_counts *out = arg;
	int st_idx = job_status_from_name(status != NULL ? status : "");
	int prio = job_priority_from_name(priority != NULL ? priority : "");
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

/* Counts come from a table of counts the backend keeps in the jobs' own transactions
 * (one row per model, status, priority and key), never from a scan of the jobs. */
int
store_counts(struct store *st, struct store_counts *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	store_wait(st);
	out->per_model = json_object();
	out->per_key = json_object();
	int rc = st->backend->counts(st->db, store_count_row_cb_add, out, cause);
	if (rc < 0) {
		json_decref(out->per_model);
		json_decref(out->per_key);
		memset(out, 0, sizeof(*out));
		return rc;
	}
	return 0;
}

int
store_reservation_save(struct store *st, const struct store_reservation *res, char **cause)
{
	(void)cause;
	struct store_write *w = store_write_new(STORE_WRITE_RES_SAVE, 7);
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
	struct store_write *w = store_write_new(STORE_WRITE_RES_DELETE, 1);
	store_value_text(w, 1, id);
	store_save(st, w);
	return 0;
}

int
store_reservations_load(struct store *st, store_reservation_cb *cb, void *arg, char **cause)
{
	store_wait(st);
	return st->backend->reservations_load(st->db, cb, arg, cause);
}
