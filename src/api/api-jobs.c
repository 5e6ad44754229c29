/*
 * api-jobs.c: the job endpoints. POST /api/submit validates a job, queues it, saves it
 * into the store's batch and answers 202 only after the batch commits (group commit,
 * daemon.c). GET /api/job/{id} reads a job from memory (not final) or the store (final),
 * optionally long-polling; DELETE cancels; GET /api/jobs lists from the store.
 *
 * With API keys (api_request_key), a job carries its key's name: a submission gets its
 * key's default priority, may not ask above its max_priority (403, never clamped, so a
 * client learns its job would not run as urgently as it asked) nor name a model outside
 * its list (403), and waits behind at most max_queued jobs of its key (429). A non-admin
 * key sees and cancels only its own jobs (403 for others) and lists only them.
 */
#include "api.h"

#include "api-parse.h"
#include "backend.h"
#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "node.h"
#include "http-util.h"
#include "keys.h"
#include "log.h"

#include "queue.h"
#include "registry.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void
api_retry_after(struct daemon *d, struct vd_http_req *req, const struct job *job, size_t waiting)
{
	double eta = fleet_eta_s(d->fleet, job, waiting);
	int retry = eta > 1 ? (int)fmin(ceil(eta), 300) : 5;
	vd_http_set_header(req, "Retry-After", "%d", retry);
}

/* Retry-After for a job of model, not made yet, that waits behind waiting jobs. */
static void
api_submit_retry_after(struct daemon *d, struct vd_http_req *req, const char *model, size_t waiting)
{
	api_retry_after(d, req, &(struct job){.model = (char *)model}, waiting);
}

/* Whether list (comma-separated model names, as PIN_MODELS) names model; a name without
 * a tag means its ":latest", as Ollama reads it. */
static bool
api_model_listed(const char *list, const char *model)
{
	char *copy = xstrdup(list);
	char *save = NULL;
	bool found = false;
	for (char *tok = strtok_r(copy, ", ", &save); tok != NULL && !found;
	     tok = strtok_r(NULL, ", ", &save)) {
		size_t n = strlen(tok);
		found = strcmp(tok, model) == 0 ||
			(strchr(tok, ':') == NULL && strncmp(tok, model, n) == 0 &&
			 strcmp(model + n, ":latest") == 0);
	}
	free(copy);
	return found;
}

int
api_model_admit(struct daemon *d, const char *model, char **msg)
{
	if (config_bool(d->config, CONFIG_DYNAMIC_LOADING_ENABLED))
		return 0;
	const char *pinned = config_str(d->config, CONFIG_PIN_MODELS);
	if (api_model_listed(pinned, model))
		return 0;
	*msg = xasprintf("model \"%s\" is not pinned and DYNAMIC_LOADING_ENABLED is false: only "
			 "the models of PIN_MODELS (%s) take jobs",
			 model, pinned[0] != '\0' ? pinned : "none");
	return 409;
}

int
api_key_admit(struct daemon *d, struct vd_http_req *req, const struct api_key *key,
	      const char *model, bool priority_given, enum job_priority *priority, char **msg)
{
	if (!priority_given)
		*priority = key->default_priority;
	if (!keys_allows_priority(key, *priority)) {
		*msg = xasprintf("API key \"%s\" may not submit %s priority jobs: its "
				 "max_priority is %s",
				 key->name, job_priority_name(*priority),
				 job_priority_name(key->max_priority));
		return 403;
	}
	if (!keys_allows_model(key, model)) {
		*msg = xasprintf("API key \"%s\" may not use model \"%s\" (see \"models\" in "
				 "API_KEYS_FILE)",
				 key->name, model);
		return 403;
	}
	struct queue_key_stats ks;
	queue_key_stats(d->queue, key->name, &ks);
	if (key->max_queued > 0 && ks.queued >= key->max_queued) {
		api_submit_retry_after(d, req, model, queue_length(d->queue));
		*msg = xasprintf("API key \"%s\" has %zu jobs queued, its max_queued; retry later",
				 key->name, ks.queued);
		return 429;
	}
	return 0;
}

int
api_deadline_admit(struct daemon *d, struct vd_http_req *req, const struct job *job, double *eta_s,
		   char **msg)
{
	if (job->deadline_at_ms <= 0 ||
	    strcmp(config_str(d->config, CONFIG_DEADLINE_POLICY), "reject") != 0)
		return 0;
	size_t position = queue_position(d->queue, job) + 1;
	double done = fleet_eta_done_s(d->fleet, job, position);
	double left = (double)(job->deadline_at_ms - vd_now_wall_ms()) / 1000.0;
	/* Unknown (no run measured yet): the estimator cannot say it will miss. */
	if (done < 0 || done <= left)
		return 0;
	*eta_s = fleet_eta_s(d->fleet, job, position);
	if (*eta_s < 0)
		*eta_s = 0;
	api_retry_after(d, req, job, position);
	*msg = xasprintf("job cannot finish before its deadline (%.1f s from now): it is expected "
			 "to start in %.1f s and finish in %.1f s (DEADLINE_POLICY=reject)",
			 left > 0 ? left : 0, *eta_s, done);
	return 429;
}

void
api_withdraw(struct daemon *d, struct job *job)
{
	queue_remove(d->queue, job);
	queue_release_bytes(d->queue, job);
}

void
api_submit(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	const struct api_key *key = api_request_key(req);
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	bool priority_given = json_object_get(body, "priority") != NULL;
	struct api_submit sub;
	char *request_text = NULL;
	/* The model is judged by a node that has it installed (any node's list will do for
	 * a model none has). */
	const char *asked = json_string_value(json_object_get(body, "model"));
	char *urls = xstrdup("");
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		char *next =
		    xasprintf("%s%s%s", urls, i > 0 ? ", " : "", fleet_node(d->fleet, i)->url);
		free(urls);
		urls = next;
	}
	struct api_submit_env env = {
	    .registry = fleet_registry_for(d->fleet, asked != NULL ? asked : ""),
	    .models_known = fleet_models_known(d->fleet),
	    .backend_url = urls,
	};
	char *msg = NULL;
	int status = api_submit_parse(body, &env, &sub, &msg);
	free(urls);
	json_decref(body);
	if (status != 0)
		goto out_error;
	const char *name = sub.model->name;
	status = api_model_admit(d, name, &msg);
	if (status != 0)
		goto out_error;
	if (key != NULL) {
		status = api_key_admit(d, req, key, name, priority_given, &sub.priority, &msg);
		if (status != 0)
			goto out_error;
	}

	/* Serialised once: measured here and kept as the job's text, which the store
	 * writes as it is. */
	request_text = json_dumps(sub.request, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(sub.request);
	sub.request = NULL;
	size_t request_bytes = request_text != NULL ? strlen(request_text) : 0;
	if (request_bytes > queue_capacity_bytes(d->queue)) {
		status = 413;
		msg = xasprintf("the job's request takes %zu bytes, more than QUEUE_MAX_BYTES "
				"(%zu) allows for all jobs together",
				request_bytes, queue_capacity_bytes(d->queue));
		goto out_error;
	}
	/* A follower's own queue holds only what it is committing: the cluster's is counted
	 * by the shared store. */
	int64_t shared = cluster_queued(d->cluster);
	bool full = queue_length(d->queue) >= queue_capacity(d->queue) ||
		    (shared >= 0 && (size_t)shared >= queue_capacity(d->queue));
	if (full || !queue_has_room_bytes(d->queue, request_bytes)) {
		api_submit_retry_after(d, req, name, queue_length(d->queue));
		status = 429;
		if (full)
			msg = xasprintf("queue is full (%zu jobs); retry later",
					queue_capacity(d->queue));
		else
			msg = xasprintf("queue is full: its jobs hold %zu of QUEUE_MAX_BYTES %zu "
					"request bytes and this job needs %zu; retry later",
					queue_bytes(d->queue), queue_capacity_bytes(d->queue),
					request_bytes);
		goto out_error;
	}

	char *seq_cause = NULL;
	int64_t seq = store_next_seq(d->store, &seq_cause);
	if (seq < 0) {
		status = 503;
		msg = xasprintf("cannot give the job an id: %s", seq_cause);
		free(seq_cause);
		goto out_error;
	}
	struct job *job = job_new_text(seq, name, sub.kind, sub.priority, request_text, sub.num_ctx,
				       sub.metadata);
	request_text = NULL;
	sub.metadata = NULL;
	job->key = key != NULL ? xstrdup(key->name) : NULL;
	job->placement =
	    sub.placement >= 0 ? (enum job_placement)sub.placement : api_placement_default(d, name);
	job->request_bytes = request_bytes;
	job->submitted_at_ms = vd_now_wall_ms();
	job->enqueued_mono_ms = vd_now_mono_ms();
	if (sub.deadline_ms > 0)
		job_set_deadline(job, job->submitted_at_ms + sub.deadline_ms, job->submitted_at_ms,
				 job->enqueued_mono_ms);
	if (queue_push(d->queue, job) < 0) {
		job_unref(job);
		status = 429;
		msg = xstrdup("queue is full; retry later");
		goto out_error;
	}
	double late_eta = 0;
	status = api_deadline_admit(d, req, job, &late_eta, &msg);
	if (status != 0) {
		api_withdraw(d, job);
		job_unref(job);
		json_t *err = json_pack("{s:s,s:f}", "error", msg, "eta_s", late_eta);
		vd_http_reply_json(req, status, err);
		free(msg);
		api_submit_cleanup(&sub);
		return;
	}
	daemon_job_add(d, job);
	char *cause = NULL;
	if (store_job_save(d->store, job, &cause) < 0) {
		queue_remove(d->queue, job);
		vd_error(STORE, "cannot save job: %s", cause);
		status = 500;
		msg = xasprintf("could not store the job: %s", cause);
		free(cause);
		job->status = JOB_FAILED;
		daemon_job_changed(d, job);
		job_unref(job);
		goto out_error;
	}
	size_t position = queue_position(d->queue, job) + 1;
	double eta = fleet_eta_s(d->fleet, job, position);
	json_t *reply =
	    json_pack("{s:s,s:s,s:I,s:o}", "job_id", job->id, "status", "queued", "position",
		      (json_int_t)position, "eta_s", eta >= 0 ? json_real(eta) : json_null());
	vd_http_set_header(req, "Location", "/api/job/%s", job->id);
	vd_debug(API, "job %s queued: %s %s %s", job->id, job_kind_name(job->kind), job->model,
		 job_priority_name(job->priority));
	daemon_reply_after_commit(d, req, job, reply);
	daemon_kick(d);
	job_unref(job);
	return;
out_error:
	vd_http_reply_error(req, status, "%s", msg);
	free(msg);
	free(request_text);
	api_submit_cleanup(&sub);
}

/* The job by id: from memory when not final, else from the store. Returns a new
 * reference, or NULL. */
static struct job *
api_job_lookup(struct daemon *d, const char *id)
{
	struct job *job = daemon_job_find(d, id);
	if (job != NULL)
		return job_ref(job);
	return store_job_get(d->store, id);
}

static void
api_job_cancel(struct daemon *d, struct vd_http_req *req, struct job *job)
{
	if (job_is_final(job)) {
		vd_http_reply_error(req, 409, "job %s is already %s", job->id,
				    job_status_name(job->status));
		return;
	}
	if (!daemon_cancel_job(d, job)) {
		vd_http_reply_error(req, 409, "job %s cannot be cancelled now (status %s)", job->id,
				    job_status_name(job->status));
		return;
	}
	vd_log(API, "job %s cancelled by client", job->id);
	vd_http_reply_json(req, 200, job_to_json(job));
}

void
api_job(struct vd_http_req *req, const char *path, void *arg)
{
	struct daemon *d = arg;
	const char *id = path + strlen("/api/job/");
	struct job *job = *id ? api_job_lookup(d, id) : NULL;
	if (job == NULL) {
		vd_http_reply_error(req, 404, "job \"%s\" not found", id);
		return;
	}
	const struct api_key *key = api_request_key(req);
	if (!api_key_may_see(key, job->key)) {
		vd_http_reply_error(req, 403,
				    "job %s was submitted with another API key; only an admin "
				    "key may %s it",
				    job->id,
				    vd_http_req_method(req) == VD_HTTP_DELETE ? "cancel" : "read");
		job_unref(job);
		return;
	}
	if (vd_http_req_method(req) == VD_HTTP_DELETE) {
		/* A job not final is cancelled where it is queued or runs: on the leader. */
		if (!job_is_final(job) && cluster_redirect_to_leader(d->cluster, req)) {
			job_unref(job);
			return;
		}
		api_job_cancel(d, req, job);
		job_unref(job);
		return;
	}
	char *wait = vd_http_query_param(req, "wait");
	double wait_s = 0;
	if (wait != NULL && vd_parse_double(wait, 0, 300, &wait_s, "wait", NULL) < 0) {
		vd_http_reply_error(
		    req, 400, "parameter 'wait' must be a number of seconds between 0 and 300");
	} else if (wait_s > 0 && !job_is_final(job)) {
		daemon_wait_for_job(d, req, job, (int64_t)(wait_s * 1000));
	} else {
		json_t *o = api_job_status_json(d, job);
		vd_http_reply_json(req, 200, o);
	}
	free(wait);
	job_unref(job);
}

json_t *
api_job_status_json(struct daemon *d, struct job *job)
{
	json_t *o = job_to_json(job);
	/* A waiting job says where it stands: its place in dispatch order and when it
	 * should start (null until vramd has run something to estimate from). */
	if (job->status == JOB_QUEUED && !cluster_is_follower(d->cluster)) {
		size_t position = queue_position(d->queue, job) + 1;
		double eta = fleet_eta_s(d->fleet, job, position);
		json_object_set_new(o, "queue_position", json_integer((json_int_t)position));
		json_object_set_new(o, "eta_s", eta >= 0 ? json_real(eta) : json_null());
		char *why = fleet_waiting_reason(d->fleet, job);
		json_object_set_new(o, "waiting_reason",
				    why != NULL ? json_string(why) : json_null());
		free(why);
	}
	return o;
}

static void
api_jobs_cb(struct job *job, void *arg)
{
	json_t *jobs = arg;
	json_t *o = job_to_json(job);
	json_object_del(o, "result");
	json_array_append_new(jobs, o);
	job_unref(job);
}

void
api_jobs(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	char *status = vd_http_query_param(req, "status");
	char *model = vd_http_query_param(req, "model");
	char *prio = vd_http_query_param(req, "priority");
	json_t *jobs = json_array();
	int64_t limit = 100;
	char *cause = NULL;
	struct store_job_filter filter = {0};
	const struct api_key *key = api_request_key(req);
	if (!vd_http_query_int(req, "limit", 1, 1000, &limit))
		goto out;
	if (api_jobs_filter_parse(status, prio, model, &filter, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	filter.limit = (int)limit;
	/* A key that is not admin lists its own jobs only. */
	filter.key = key != NULL && !key->admin ? key->name : NULL;
	if (store_jobs_list(d->store, &filter, api_jobs_cb, jobs, &cause) < 0) {
		vd_http_reply_error(req, 500, "cannot list jobs: %s", cause);
		goto out;
	}
	vd_http_reply_json(
	    req, 200,
	    json_pack("{s:O,s:I}", "jobs", jobs, "count", (json_int_t)json_array_size(jobs)));
out:
	free(cause);
	json_decref(jobs);
	free(status);
	free(model);
	free(prio);
}
