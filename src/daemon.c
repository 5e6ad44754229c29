/*
 * daemon.c: builds the running daemon from its configuration, owns the job table, and
 * implements the two loop-level mechanisms every API handler relies on:
 *
 *   - group commit: handlers save jobs into the store's batch and hand their 202 reply
 *     to daemon_reply_after_commit(), which notes the store's last write ticket; one
 *     low-priority event per loop turn hands the batch to the store's writer thread
 *     (store_flush), and when the writer reports a commit through a ticket
 *     (daemon_store_cb on its notify descriptor) the replies waiting on it are sent. A
 *     reply never precedes durability, the loop never waits for an fsync, and one fsync
 *     covers everything that arrived while the previous one ran;
 *   - long-polls: GET /api/job/{id}?wait=S parks the request (no thread) until the job
 *     becomes final, the timer fires, or the client goes away.
 *
 * The final record of a job a client waited for on its connection (the front doors) is
 * history only: the client has its answer and the job never runs again, committed or
 * not. Its commit waits up to DAEMON_LAZY_COMMIT_MS for the next batch, so a client's
 * requests one after another do not each wait for an fsync of their predecessor's record
 * (bench/bench-proxy measured that fsync as most of the latency vramd added).
 *
 * Invariants: every non-final job is in the job table with one reference; a job leaves
 * the table when it becomes final (after being saved).
 */
#include "daemon.h"

#include "api.h"
#include "cluster.h"
#include "config.h"
#include "fleet.h"
#include "gpu.h"
#include "gpu-map.h"
#include "gpu-policy.h"
#include "http-util.h"
#include "httpd.h"
#include "httpc.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "queue.h"
#include "store.h"
#include "util.h"
#include "waiters.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

struct daemon_reply {
	struct daemon_reply *next;
	uint64_t ticket; /* the store's write ticket that must be durable first */
	struct vd_http_req *req;
	struct job *job; /* a reference */
	json_t *body;
};

struct daemon_waiter {
	struct waiter link; /* in d->waiters, under its job's seq */
	struct daemon *d;
	struct vd_http_req *req;
	struct job *job; /* a reference */
	struct event *timer;
};

/* --- The job table: open addressing on seq, linear probing, backward-shift delete --- */

static size_t
daemon_jobs_slot(const struct daemon_job_table *t, int64_t seq)
{
	return (size_t)(vd_hash64(&seq, sizeof(seq), 0) & (t->nslots - 1));
}

static void
daemon_jobs_insert_slot(struct daemon_job_table *t, struct job *job)
{
	size_t i = daemon_jobs_slot(t, job->seq);
	while (t->slots[i] != NULL)
		i = (i + 1) & (t->nslots - 1);
	t->slots[i] = job;
}

static void
daemon_jobs_grow(struct daemon_job_table *t)
{
	struct job **old = t->slots;
	size_t oldn = t->nslots;
	t->nslots = oldn ? oldn * 2 : 1024;
	t->slots = xcalloc(t->nslots, sizeof(*t->slots));
	for (size_t i = 0; i < oldn; i++)
		if (old[i] != NULL)
			daemon_jobs_insert_slot(t, old[i]);
	free(old);
}

static struct job *
daemon_jobs_get(const struct daemon_job_table *t, int64_t seq)
{
	if (t->nslots == 0)
		return NULL;
	for (size_t i = daemon_jobs_slot(t, seq); t->slots[i] != NULL;
	     i = (i + 1) & (t->nslots - 1))
		if (t->slots[i]->seq == seq)
			return t->slots[i];
	return NULL;
}

static void
daemon_jobs_remove(struct daemon_job_table *t, struct job *job)
{
	if (t->nslots == 0)
		return;
	size_t mask = t->nslots - 1;
	size_t i = daemon_jobs_slot(t, job->seq);
	while (t->slots[i] != NULL && t->slots[i] != job)
		i = (i + 1) & mask;
	if (t->slots[i] == NULL)
		return;
	t->slots[i] = NULL;
	t->count--;
	/* Re-place the rest of the cluster so lookups never stop at the hole. */
	for (size_t j = (i + 1) & mask; t->slots[j] != NULL; j = (j + 1) & mask) {
		struct job *moved = t->slots[j];
		t->slots[j] = NULL;
		daemon_jobs_insert_slot(t, moved);
	}
	job_unref(job);
}

void
daemon_job_add(struct daemon *d, struct job *job)
{
	struct daemon_job_table *t = &d->jobs;
	if ((t->count + 1) * 2 > t->nslots)
		daemon_jobs_grow(t);
	daemon_jobs_insert_slot(t, job_ref(job));
	t->count++;
	metrics_add(d->metrics, "vramd_jobs_submitted_total", 1, job_priority_name(job->priority));
}

struct job *
daemon_job_find(struct daemon *d, const char *id)
{
	int64_t seq;
	if (!job_parse_id(id, &seq))
		return NULL;
	return daemon_jobs_get(&d->jobs, seq);
}

static void
daemon_jobs_cleanup(struct daemon_job_table *t)
{
	for (size_t i = 0; i < t->nslots; i++)
		job_unref(t->slots[i]);
	vd_free(t->slots);
	t->nslots = 0;
	t->count = 0;
}

/* The name of the API keys' document in a cluster's shared store (store_setting_get). */
#define DAEMON_KEYS_SETTING "api-keys"

/* --- Group commit ------------------------------------------------------------------ */

#define DAEMON_LAZY_COMMIT_MS 100 /* the most a front-door job's final record waits */

void
daemon_request_commit(struct daemon *d)
{
	if (d->commit_requested)
		return;
	d->commit_requested = true;
	event_active(d->commit_event, 0, 0);
}

void
daemon_reply_after_commit(struct daemon *d, struct vd_http_req *req, struct job *job, json_t *body)
{
	struct daemon_reply *r = xcalloc(1, sizeof(*r));
	r->req = req;
	r->job = job_ref(job);
	r->body = body;
	r->ticket = store_last_ticket(d->store);
	*d->replies_tail = r;
	d->replies_tail = &r->next;
	daemon_request_commit(d);
}

/* Commits the current batch within DAEMON_LAZY_COMMIT_MS, or with the next commit
 * requested before then. */
static void
daemon_request_lazy_commit(struct daemon *d)
{
	if (d->commit_requested || evtimer_pending(d->lazy_commit, NULL))
		return;
	struct timeval tv = {0, DAEMON_LAZY_COMMIT_MS * 1000};
	evtimer_add(d->lazy_commit, &tv);
}

/* The end of a loop turn (or the lazy timer): what was saved goes to the writer. */
static void
daemon_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	d->commit_requested = false;
	if (d->lazy_commit != NULL)
		evtimer_del(d->lazy_commit); /* this commit takes its records too */
	store_flush(d->store);
}

/* Takes a job out of this instance's memory: the queue, its request bytes, the table. */
static void
daemon_forget_job(struct daemon *d, struct job *job)
{
	queue_remove(d->queue, job);
	queue_release_bytes(d->queue, job);
	daemon_jobs_remove(&d->jobs, job);
}

/*
 * Withdraws a job whose submission did not commit, so the 500 its client hears ("not
 * accepted") is true: still queued, it leaves the queue; already dispatched (the engine
 * may start it in the loop turn of its submission, before the writer reports), its run
 * is cancelled. Returns what became of it, for the reply. A job that already ended ran
 * to its end and only leaves the job table (done when it became final).
 */
static const char *
daemon_withdraw_uncommitted(struct daemon *d, struct job *job)
{
	if (job_is_final(job))
		return "it had already ended";
	if (job->status != JOB_QUEUED && fleet_cancel_job(d->fleet, job))
		return "its run was cancelled"; /* final now: out of the table, bytes released */
	daemon_forget_job(d, job);
	return "it was not queued";
}

/* The writer finished a commit through ticket through: answer the submissions waiting
 * on it, 202 if it is durable, else 500 with the job withdrawn. */
static void
daemon_committed_cb(uint64_t through, int rc, const char *cause, void *arg)
{
	struct daemon *d = arg;
	if (rc < 0)
		vd_error(STORE, "commit failed: %s", cause);
	while (d->replies != NULL && d->replies->ticket <= through) {
		struct daemon_reply *r = d->replies;
		d->replies = r->next;
		if (d->replies == NULL)
			d->replies_tail = &d->replies;
		if (rc == 0) {
			vd_http_reply_json(r->req, 202, r->body);
			/* A follower's accepted job is the leader's from its commit on
			 * (the commit's notification wakes the leader); its status is read
			 * from the store. */
			if (!d->leading)
				daemon_forget_job(d, r->job);
		} else {
			/* Not durable, so not accepted: withdraw the job. */
			json_decref(r->body);
			const char *fate = daemon_withdraw_uncommitted(d, r->job);
			vd_warn(STORE, "job %s withdrawn, its submission did not commit: %s",
				r->job->id, fate);
			vd_http_reply_error(r->req, 500, "could not store the job: %s (%s)", cause,
					    fate);
		}
		job_unref(r->job);
		free(r);
	}
}

static void
daemon_store_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	store_completions(d->store, daemon_committed_cb, d);
}

/* --- Long-polls ----------------------------------------------------------------------- */

static void
daemon_waiter_free(struct daemon_waiter *w)
{
	waiters_remove(&w->d->waiters, &w->link);
	event_free(w->timer);
	job_unref(w->job);
	free(w);
}

static void
daemon_waiter_answer(struct daemon_waiter *w)
{
	vd_http_req_on_close(w->req, NULL, NULL);
	vd_http_reply_json(w->req, 200, api_job_status_json(w->d, w->job));
	daemon_waiter_free(w);
}

static void
daemon_waiter_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	daemon_waiter_answer(arg);
}

static void
daemon_waiter_close_cb(struct vd_http_req *req, void *arg)
{
	struct daemon_waiter *w = arg;
	/* The client went away: end its request now rather than at the timeout. */
	daemon_waiter_free(w);
	vd_http_req_release(req);
}

void
daemon_wait_for_job(struct daemon *d, struct vd_http_req *req, struct job *job, int64_t timeout_ms)
{
	struct daemon_waiter *w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->req = req;
	w->job = job_ref(job);
	w->timer = evtimer_new(d->base, daemon_waiter_timer_cb, w);
	struct timeval tv = {(time_t)(timeout_ms / 1000),
			     (suseconds_t)((timeout_ms % 1000) * 1000)};
	evtimer_add(w->timer, &tv);
	vd_http_req_on_close(req, daemon_waiter_close_cb, w);
	waiters_add(&d->waiters, &w->link, job->seq);
}

static void
daemon_wake_waiters(struct daemon *d, struct job *job)
{
	/* Only this job's waiters are looked at, however many others wait. */
	struct waiter *w = waiters_take(&d->waiters, job->seq);
	while (w != NULL) {
		struct waiter *next = w->next;
		daemon_waiter_answer((struct daemon_waiter *)w);
		w = next;
	}
}

void
daemon_job_changed(struct daemon *d, struct job *job)
{
	char *cause = NULL;
	/* A job a client waits for on its connection is recorded once it ends: nobody
	 * would wait for it after a restart, so it must not run again then. */
	if (job->attach == NULL || job_is_final(job)) {
		/* A job submitted and polled has had its row since its submission; one
		 * waited on by its client is written for the first time now. */
		int rc = job->attach == NULL ? store_job_update(d->store, job, &cause)
					     : store_job_save(d->store, job, &cause);
		if (rc < 0) {
			vd_error(STORE, "saving job %s failed: %s", job->id, cause);
			free(cause);
		}
		if (job->attach != NULL)
			daemon_request_lazy_commit(d);
		else
			daemon_request_commit(d);
	}
	if (job_is_final(job) && job->attach != NULL) {
		struct job_attach *a = job->attach;
		job->attach = NULL;
		a->end(job, a->arg);
	}
	if (job_is_final(job)) {
		api_metrics_job_final(d->metrics, job);
		queue_release_bytes(d->queue, job);
		daemon_wake_waiters(d, job);
		daemon_jobs_remove(&d->jobs, job);
	}
}

bool
daemon_cancel_job(struct daemon *d, struct job *job)
{
	if (job->status == JOB_QUEUED && queue_remove(d->queue, job)) {
		job_finish(job, JOB_CANCELLED, NULL, "cancelled by client", vd_now_wall_ms());
		daemon_job_changed(d, job);
		return true;
	}
	return fleet_cancel_job(d->fleet, job);
}

/* --- Life cycle --------------------------------------------------------------------------- */

void
daemon_kick(struct daemon *d)
{
	fleet_kick(d->fleet);
}

/* Applies MEMORY_MONITORING_INTERVAL and GPU_HISTORY_LENGTH to this host's monitor and
 * to the nodes' own (remote) monitors. */
static void
daemon_apply_monitors(struct daemon *d)
{
	int64_t interval_ms = config_int(d->config, CONFIG_MEMORY_MONITORING_INTERVAL);
	size_t history = (size_t)config_int(d->config, CONFIG_GPU_HISTORY_LENGTH);
	gpu_monitor_set_interval_ms(d->gpus, interval_ms);
	gpu_monitor_set_history_len(d->gpus, history);
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		struct node *n = fleet_node(d->fleet, i);
		if (n->gpus != NULL && n->owns_gpus) {
			gpu_monitor_set_interval_ms(n->gpus, interval_ms);
			gpu_monitor_set_history_len(n->gpus, history);
		}
	}
}

void
daemon_config_changed(struct daemon *d, const json_t *changed, const char *why)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)changed, key, v)
	{
		char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
					       JSON_REAL_PRECISION(VD_JSON_REAL_DIGITS));
		vd_log(CONFIG, "%s set to %s (%s)", key, text != NULL ? text : "?", why);
		free(text);
		/* The fleet keeps the multiplier in its estimators; every other run-time key
		 * is read through config.h when it is used. */
		if (strcmp(key, "VRAM_ESTIMATION_MULTIPLIER") == 0)
			fleet_set_multiplier(d->fleet, json_number_value(v));
	}
	if (json_object_get(changed, "MEMORY_MONITORING_INTERVAL") != NULL ||
	    json_object_get(changed, "GPU_HISTORY_LENGTH") != NULL)
		daemon_apply_monitors(d);
	gpu_policy_config_changed(d->policy);
	daemon_kick(d);
}

int64_t
daemon_uptime_s(const struct daemon *d)
{
	return (vd_now_mono_ms() - d->started_mono_ms) / 1000;
}

static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct daemon *d = arg;
	vd_log(SYSTEM, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	event_base_loopexit(d->base, NULL);
}

/* Queues a job read from the store (takes the reference). recovered: it may have been
 * pending or running under a previous process, and its row says queued again. */
static void
daemon_enqueue_stored(struct daemon *d, struct job *job, bool recovered)
{
	/* Its wait so far counts on this process's monotonic clock, so aging and the
	 * order between recovered jobs carry over the restart. */
	int64_t now_mono = vd_now_mono_ms(), now_wall = vd_now_wall_ms();
	int64_t waited = now_wall - job->submitted_at_ms;
	if (waited < 0)
		waited = 0;
	job->enqueued_mono_ms = now_mono > waited ? now_mono - waited : 1;
	/* Its deadline on this process's monotonic clock, for the queue's order. */
	job_set_deadline(job, job->deadline_at_ms, now_wall, now_mono);
	if (job->placement >= JOB_NPLACEMENTS) /* stored before placements existed */
		job->placement = api_placement_default(d, job->model);
	daemon_job_add(d, job);
	/* The store gives them in submission order: appended, they run oldest first. */
	queue_push_recovered(d->queue, job);
	/* A job that was running is queued again: the store (GET /api/jobs, /api/stats)
	 * says so too, not only the job in memory (GET /api/job/{id}). */
	if (recovered)
		daemon_job_changed(d, job);
	job_unref(job);
}

/* Recovery: every job that was queued, pending or running when vramd stopped (or when
 * the previous leader did). */
static void
daemon_recover_cb(struct job *job, void *arg)
{
	struct daemon *d = arg;
	if (daemon_job_find(d, job->id) != NULL) { /* taken from a notification already */
		job_unref(job);
		return;
	}
	daemon_enqueue_stored(d, job, true);
}

void
daemon_take_job(struct daemon *d, const char *id)
{
	if (!d->leading || daemon_job_find(d, id) != NULL)
		return; /* this instance's own submission, or taken already */
	struct job *job = store_job_get(d->store, id);
	if (job == NULL)
		return;
	if (job->status != JOB_QUEUED) { /* cancelled or finished since */
		job_unref(job);
		return;
	}
	daemon_enqueue_stored(d, job, false);
	daemon_kick(d);
}

void
daemon_job_changed_elsewhere(struct daemon *d, const char *id)
{
	int64_t seq;
	if (!job_parse_id(id, &seq) || !waiters_for(&d->waiters, seq))
		return; /* nobody here waits for it: no read */
	struct job *job = store_job_get(d->store, id);
	if (job == NULL)
		return;
	if (job_is_final(job)) {
		struct waiter *w = waiters_take(&d->waiters, seq);
		while (w != NULL) {
			struct waiter *next = w->next;
			struct daemon_waiter *dw = (struct daemon_waiter *)w;
			job_unref(dw->job);
			dw->job = job_ref(job);
			daemon_waiter_answer(dw);
			w = next;
		}
	}
	job_unref(job);
}

int
daemon_lead(struct daemon *d)
{
	if (d->leading)
		return 0;
	d->leading = true;
	char *cause = NULL;
	int rc = store_load_unfinished(d->store, daemon_recover_cb, d, &cause);
	if (rc < 0) {
		vd_error(QUEUE, "cannot read the unfinished jobs: %s", cause);
		free(cause);
		return rc;
	}
	if (rc > 0)
		vd_log(QUEUE, "recovered %d unfinished jobs from %s", rc, store_path(d->store));
	if (d->cluster != NULL) /* made through the previous leader since this one started */
		gpu_policy_load_reservations(d->policy);
	fleet_start(d->fleet);
	return 0;
}

/* Every complete GPU sample is a reason to decide again. */
static void
daemon_gpu_sample_cb(struct gpu_monitor *mon, void *arg)
{
	(void)mon;
	struct daemon *d = arg;
	if (d->policy != NULL)
		gpu_policy_on_sample(d->policy);
	if (d->fleet != NULL)
		fleet_kick(d->fleet);
}

static void
daemon_job_changed_cb(struct job *job, void *arg)
{
	daemon_job_changed(arg, job);
}

/* The GPU policy's view of what vramd's models hold on this host's GPUs. */
static json_t *
daemon_local_models_cb(void *arg)
{
	struct daemon *d = arg;
	return fleet_loaded_models_json(d->fleet, true);
}

static uint64_t
daemon_local_models_bytes_cb(void *arg, int gpu)
{
	struct daemon *d = arg;
	return fleet_local_gpu_models_bytes(d->fleet, gpu);
}

static int
daemon_open_gpus(struct daemon *d, char **cause)
{
	struct config *cfg = d->config;
	struct gpu_options opts = {0};
	if (gpu_provider_pref_parse(config_str(cfg, CONFIG_GPU_SOURCE), &opts.provider, cause) < 0)
		return -EINVAL;
	const char *lib = config_str(cfg, CONFIG_NVML_LIB);
	opts.nvml_lib = *lib ? lib : NULL;
	const char *filter = config_str(cfg, CONFIG_GPUS);
	/* CUDA_VISIBLE_DEVICES names this host's GPUs, not a remote vramd's. */
	if (*filter == '\0' && opts.provider != GPU_PROVIDER_REMOTE)
		filter = getenv("CUDA_VISIBLE_DEVICES");
	opts.device_filter = filter != NULL && *filter ? filter : NULL;
	opts.interval_ms = config_int(cfg, CONFIG_MEMORY_MONITORING_INTERVAL);
	opts.history_len = (size_t)config_int(cfg, CONFIG_GPU_HISTORY_LENGTH);
	const char *remote = config_str(cfg, CONFIG_GPU_REMOTE_URL);
	opts.remote_url = *remote ? remote : NULL;
	opts.on_sample = daemon_gpu_sample_cb;
	opts.on_sample_arg = d;
	d->gpus = gpu_monitor_new(d->base, &opts, cause);
	if (d->gpus == NULL)
		return -EINVAL;
	if (strcmp(gpu_monitor_source(d->gpus), "none") != 0) {
		vd_log(GPU, "telemetry from %s", gpu_monitor_source(d->gpus));
		return 0;
	}
	const char *why = gpu_monitor_reason(d->gpus);
	/* A provider named explicitly must work: falling back would plan without the
	 * telemetry the operator asked for. Only auto falls back. */
	if (opts.provider != GPU_PROVIDER_AUTO && opts.provider != GPU_PROVIDER_NONE)
		return vd_fail(cause, -ENODEV,
			       "GPU_SOURCE is %s but it cannot be used (%s); use --gpu-source "
			       "auto to fall back to another source",
			       gpu_provider_pref_name(opts.provider), why ? why : "unknown reason");
	if (config_size(cfg, CONFIG_VRAM_BUDGET) > 0) {
		char size[32];
		vd_format_size(config_size(cfg, CONFIG_VRAM_BUDGET), size, sizeof(size));
		d->budget_mode = true;
		vd_log(GPU, "no GPU telemetry (%s); planning against a VRAM budget of %s",
		       why ? why : "none", size);
	} else {
		d->cpu_only_mode = true;
		vd_log(GPU, "no GPU telemetry (%s) and no --vram-budget: models run on CPU",
		       why ? why : "none");
	}
	return 0;
}

/* API_KEYS_FILE: who may call, and each key's weight in the queue's fair share. */
static int
daemon_load_keys(struct daemon *d, char **cause)
{
	const char *path = config_str(d->config, CONFIG_API_KEYS_FILE);
	bool shared = store_shares_settings(d->store);
	char *text = NULL;
	int rc;
	if (path[0] != '\0') {
		rc = keys_load_text(path, &d->keys, shared ? &text : NULL, cause);
		if (rc < 0)
			return rc;
		/* Several instances answer alike: the file of the instance started last is
		 * the one every instance started after it uses. */
		if (shared) {
			rc = store_setting_put(d->store, DAEMON_KEYS_SETTING, text, cause);
			explicit_bzero(text, strlen(text));
			free(text);
			if (rc < 0)
				return rc;
		}
	} else if (shared) {
		rc = store_setting_get(d->store, DAEMON_KEYS_SETTING, &text, cause);
		if (rc < 0)
			return rc;
		if (text == NULL)
			return 0; /* no instance was given API_KEYS_FILE */
		rc = keys_parse(text, "the cluster's API keys (from the store)", &d->keys, cause);
		explicit_bzero(text, strlen(text));
		free(text);
		if (rc < 0)
			return rc;
		path = "the cluster's shared store";
	} else {
		return 0;
	}
	size_t admins = 0;
	for (size_t i = 0; i < keys_count(d->keys); i++) {
		const struct api_key *key = keys_at(d->keys, i);
		queue_set_key_weight(d->queue, key->name, key->weight);
		admins += key->admin;
	}
	struct stat sb;
	if (config_str(d->config, CONFIG_API_KEYS_FILE)[0] != '\0' && stat(path, &sb) == 0 &&
	    (sb.st_mode & 077) != 0)
		vd_warn(API, "API_KEYS_FILE %s can be read by other users: chmod 600 it", path);
	vd_log(API, "API keys: %zu from %s (%zu admin); every endpoint but /api/health needs one",
	       keys_count(d->keys), path, admins);
	return 0;
}

/* Listens on the HOST:PORT of configuration key key, warning when it is beyond loopback. */
static int
daemon_listen_on(struct daemon *d, enum config_key key, const char *what, char **cause)
{
	const char *name = config_def(key)->name;
	const char *listen = config_str(d->config, key);
	const char *colon = strrchr(listen, ':');
	if (colon == NULL)
		return vd_fail(cause, -EINVAL, "%s: \"%s\" is not ADDR:PORT", name, listen);
	char *host = xstrndup(listen, (size_t)(colon - listen));
	char *label = xasprintf("%s port", name);
	int64_t port;
	int rc = vd_parse_int64(colon + 1, 0, 65535, &port, label, cause);
	if (rc < 0)
		goto out_free;
	rc = vd_httpd_listen(d->http, host, (uint16_t)port, cause);
	if (rc < 0)
		goto out_free;
	vd_log(API, "%s on http://%s", what, listen);
	if (strcmp(host, "localhost") != 0 && !vd_str_has_prefix(host, "127.") &&
	    strcmp(host, "::1") != 0 && d->keys == NULL)
		vd_warn(API,
			"WARNING: listening on %s, beyond loopback, without API_KEYS_FILE: "
			"anyone who can reach this address can submit and cancel jobs, reserve "
			"VRAM and change the configuration. Bind to 127.0.0.1 or set "
			"API_KEYS_FILE unless a firewall or proxy guards the port.",
			listen);
out_free:
	free(label);
	free(host);
	return rc;
}

/* The HTTP server on LISTEN, and on OLLAMA_LISTEN too when set: one server, so both
 * addresses serve the same routes through the same checks. */
static int
daemon_listen(struct daemon *d, char **cause)
{
	struct vd_httpd_limits lim;
	vd_httpd_limits_default(&lim);
	lim.max_body_bytes = config_size(d->config, CONFIG_MAX_BODY_BYTES);
	lim.max_connections = (size_t)config_int(d->config, CONFIG_MAX_CONNECTIONS);
	lim.head_timeout_ms = config_int(d->config, CONFIG_HTTP_HEAD_TIMEOUT) * 1000;
	lim.body_timeout_ms = config_int(d->config, CONFIG_HTTP_BODY_TIMEOUT) * 1000;
	lim.idle_timeout_ms = config_int(d->config, CONFIG_HTTP_IDLE_TIMEOUT) * 1000;
	/* Descriptors kept for the store, backends, webhooks and nvidia-smi; tests set 0
	 * to drive the server into EMFILE. */
	const char *reserve = getenv("VRAMD_HTTP_FD_RESERVE");
	int64_t n;
	if (reserve != NULL && vd_parse_int64(reserve, 0, 100000, &n, "", NULL) == 0)
		lim.fd_reserve = (size_t)n;
	d->http = vd_httpd_new(d->base, &lim, api_request_cb, d);
	vd_httpd_on_status(d->http, api_metrics_http_cb, d);
	int rc = daemon_listen_on(d, CONFIG_LISTEN, "listening", cause);
	if (rc < 0)
		return rc;
	if (config_str(d->config, CONFIG_OLLAMA_LISTEN)[0] != '\0') {
		rc = daemon_listen_on(d, CONFIG_OLLAMA_LISTEN,
				      "also listening, for Ollama clients,", cause);
		if (rc < 0)
			return rc;
	}
	struct vd_httpd_stats hs;
	vd_httpd_get_stats(d->http, &hs);
	if ((size_t)config_int(d->config, CONFIG_MAX_CONNECTIONS) > hs.max_connections)
		vd_warn(API, "MAX_CONNECTIONS lowered to %zu by the descriptor limit (ulimit -n)",
			hs.max_connections);
	return 0;
}

/* The longest vramd waits for its first GPU sample before it listens (nvidia-smi and a
 * remote vramd answer asynchronously; NVML at once). */
#define DAEMON_FIRST_SAMPLE_WAIT_S 5

static void
daemon_first_sample_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	*(bool *)arg = true;
}

/*
 * Takes the first GPU sample before vramd listens, so that the first GET /api/health or
 * /api/gpu/status already lists the GPUs (it said "gpu_count": 0 for a moment), running
 * the loop only for it, at most DAEMON_FIRST_SAMPLE_WAIT_S.
 */
static void
daemon_first_gpu_sample(struct daemon *d)
{
	if (strcmp(gpu_monitor_source(d->gpus), "none") == 0)
		return;
	uint64_t before = gpu_monitor_sample_count(d->gpus);
	bool expired = false;
	struct event *deadline = evtimer_new(d->base, daemon_first_sample_deadline_cb, &expired);
	struct timeval tv = {DAEMON_FIRST_SAMPLE_WAIT_S, 0};
	evtimer_add(deadline, &tv);
	gpu_monitor_sample_now(d->gpus);
	while (gpu_monitor_sample_count(d->gpus) == before && !expired)
		event_base_loop(d->base, EVLOOP_ONCE);
	event_free(deadline);
	if (gpu_monitor_sample_count(d->gpus) == before)
		vd_warn(GPU, "no GPU sample within %d s of start; listening without one",
			DAEMON_FIRST_SAMPLE_WAIT_S);
}

int
daemon_new(struct config *config, struct daemon **out, char **cause)
{
	struct daemon *d = xcalloc(1, sizeof(*d));
	d->config = config;
	d->started_mono_ms = vd_now_mono_ms();
	d->started_wall_ms = vd_now_wall_ms();
	d->replies_tail = &d->replies;
	d->metrics = api_metrics_new();
	int rc;

	struct event_config *ecfg = event_config_new();
	d->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	event_base_priority_init(d->base, 2);
	d->commit_event = event_new(d->base, -1, 0, daemon_commit_cb, d);
	/* The default priority of two (0 would run first; a lower one than the handlers'
	 * would starve under steady load): it runs after the handlers already active in
	 * this loop turn, so one commit takes all they accepted. */
	event_priority_set(d->commit_event, 1);
	d->lazy_commit = evtimer_new(d->base, daemon_commit_cb, d);

	enum store_sync sync = strcmp(config_str(config, CONFIG_SYNC), "normal") == 0
				   ? STORE_SYNC_NORMAL
				   : STORE_SYNC_FULL;
	/* STORE names a PostgreSQL database; empty, the SQLite one in DATA_DIR. */
	const char *store_at = config_str(config, CONFIG_STORE)[0] != '\0'
				   ? config_str(config, CONFIG_STORE)
				   : config_str(config, CONFIG_DATA_DIR);
	rc = store_open(store_at, sync, &d->store, cause);
	if (rc < 0)
		goto out_fail;
	d->store_event =
	    event_new(d->base, store_notify_fd(d->store), EV_READ | EV_PERSIST, daemon_store_cb, d);
	event_add(d->store_event, NULL);
	d->queue = queue_new((size_t)config_int(config, CONFIG_QUEUE_MAX_SIZE));
	queue_set_capacity_bytes(d->queue, (size_t)config_size(config, CONFIG_QUEUE_MAX_BYTES));
	d->httpc = httpc_new(d->base);
	rc = daemon_open_gpus(d, cause);
	if (rc < 0)
		goto out_fail;
	daemon_first_gpu_sample(d);
	if (config_str(config, CONFIG_MODEL_GPU_MAP)[0] != '\0') {
		rc = gpu_map_load(config_str(config, CONFIG_MODEL_GPU_MAP), &d->gpu_map, cause);
		if (rc < 0)
			goto out_fail;
	}
	d->policy = gpu_policy_new(d);
	rc = fleet_new(d, &(struct fleet_hooks){.job_changed = daemon_job_changed_cb, .arg = d},
		       &d->fleet, cause);
	if (rc < 0)
		goto out_fail;
	gpu_policy_set_models(d->policy, &(struct gpu_policy_models){
					     .list = daemon_local_models_cb,
					     .bytes = daemon_local_models_bytes_cb,
					     .arg = d,
					 });
	if (gpu_monitor_reading_count(d->gpus) > 0) /* the first sample came before it */
		gpu_policy_on_sample(d->policy);

	rc = daemon_load_keys(d, cause);
	if (rc < 0)
		goto out_fail;
	rc = daemon_listen(d, cause);
	if (rc < 0)
		goto out_fail;

	d->signal_int = evsignal_new(d->base, SIGINT, daemon_signal_cb, d);
	d->signal_term = evsignal_new(d->base, SIGTERM, daemon_signal_cb, d);
	evsignal_add(d->signal_int, NULL);
	evsignal_add(d->signal_term, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* One instance leads now; one of a cluster once elected. */
	rc = cluster_open(d, &d->cluster, cause);
	if (rc < 0)
		goto out_fail;
	fleet_observe(d->fleet);
	if (d->cluster == NULL) {
		rc = daemon_lead(d);
		if (rc < 0) {
			*cause =
			    xstrdup("cannot read the unfinished jobs from the store (see the log)");
			goto out_fail;
		}
	}
	*out = d;
	return 0;
out_fail:
	daemon_free(d);
	return rc;
}

int
daemon_run(struct daemon *d)
{
	vd_log(SYSTEM, "vramd ready: %zu ollama node%s, data %s", fleet_count(d->fleet),
	       fleet_count(d->fleet) == 1 ? "" : "s", store_path(d->store));
	event_base_dispatch(d->base);
	return 0;
}

void
daemon_free(struct daemon *d)
{
	if (d == NULL)
		return;
	for (struct waiter *w; (w = waiters_any(&d->waiters)) != NULL;)
		daemon_waiter_answer((struct daemon_waiter *)w);
	waiters_cleanup(&d->waiters);
	vd_httpd_free(d->http);
	keys_free(d->keys);
	fleet_free(d->fleet);
	gpu_policy_free(d->policy);
	if (d->store != NULL) {
		/* Everything saved until now, committed before the last replies go out. */
		store_wait(d->store);
		store_completions(d->store, daemon_committed_cb, d);
	}
	/* The leader lock goes last: the runs fleet_free put back to queued are committed
	 * before another instance can lead and run them. */
	cluster_free(d->cluster);
	d->cluster = NULL;
	if (d->store_event != NULL)
		event_free(d->store_event); /* before store_close closes its descriptor */
	gpu_monitor_free(d->gpus);
	gpu_map_free(d->gpu_map);
	httpc_free(d->httpc);
	queue_free(d->queue);
	daemon_jobs_cleanup(&d->jobs);
	store_close(d->store);
	if (d->signal_int != NULL)
		event_free(d->signal_int);
	if (d->signal_term != NULL)
		event_free(d->signal_term);
	if (d->commit_event != NULL)
		event_free(d->commit_event);
	if (d->lazy_commit != NULL)
		event_free(d->lazy_commit);
	if (d->base != NULL)
		event_base_free(d->base);
	config_free(d->config);
	metrics_free(d->metrics);
	free(d);
}
