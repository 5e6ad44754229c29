/*
 * api-jobs.c: the job endpoints. POST /api/submit validates a job, queues it, saves it
 * into the store's batch and answers 202 only after the batch commits (group commit,
 * daemon.c). GET /api/job/{id} reads a job from memory (not final) or the store (final),
 * optionally long-polling; DELETE cancels; GET /api/jobs lists from the store.
 */
#include "api.h"

#include "backend.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "http-util.h"
#include "log.h"
#include "monitor.h"
#include "queue.h"
#include "registry.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define API_KIND_GENERATE (1u << JOB_KIND_GENERATE)
#define API_KIND_CHAT	  (1u << JOB_KIND_CHAT)
#define API_KIND_EMBED	  (1u << JOB_KIND_EMBED)
#define API_KIND_ANY	  (API_KIND_GENERATE | API_KIND_CHAT | API_KIND_EMBED)

#define API_T_STRING (1u << 0)
#define API_T_ARRAY  (1u << 1)
#define API_T_OBJECT (1u << 2)
#define API_T_BOOL   (1u << 3)
#define API_T_INT    (1u << 4)

/* The Ollama request fields a job may carry, per kind, and their JSON types. */
static const struct api_field {
	const char *name;
	unsigned types;
	unsigned kinds;
	const char *type_text;
} api_fields[] = {
    {"prompt", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"suffix", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"system", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"template", API_T_STRING, API_KIND_GENERATE, "a string"},
    {"context", API_T_ARRAY, API_KIND_GENERATE, "an array of integers"},
    {"raw", API_T_BOOL, API_KIND_GENERATE, "a boolean"},
    {"images", API_T_ARRAY, API_KIND_GENERATE, "an array of base64 strings"},
    {"messages", API_T_ARRAY, API_KIND_CHAT, "an array of {role, content} objects"},
    {"tools", API_T_ARRAY, API_KIND_CHAT, "an array"},
    {"input", API_T_STRING | API_T_ARRAY, API_KIND_EMBED, "a string or an array of strings"},
    {"dimensions", API_T_INT, API_KIND_EMBED, "an integer"},
    {"format", API_T_STRING | API_T_OBJECT, API_KIND_GENERATE | API_KIND_CHAT,
     "a string or a JSON schema object"},
    {"think", API_T_BOOL | API_T_STRING, API_KIND_GENERATE | API_KIND_CHAT,
     "a boolean or a string"},
    {"truncate", API_T_BOOL, API_KIND_ANY, "a boolean"},
    {"options", API_T_OBJECT, API_KIND_ANY, "an object"},
};

static unsigned
api_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return API_T_STRING;
	case JSON_ARRAY:
		return API_T_ARRAY;
	case JSON_OBJECT:
		return API_T_OBJECT;
	case JSON_TRUE:
	case JSON_FALSE:
		return API_T_BOOL;
	case JSON_INTEGER:
		return API_T_INT;
	default:
		return 0;
	}
}

static bool
api_array_of_strings(const json_t *a)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

/* Checks the fields the kind depends on; returns a message (caller frees) or NULL. */
static char *
api_check_kind_fields(const json_t *body, enum job_kind kind)
{
	if (kind == JOB_KIND_CHAT) {
		json_t *msgs = json_object_get(body, "messages");
		if (msgs == NULL)
			return xstrdup("field 'messages' is required for kind chat");
		if (json_array_size(msgs) == 0)
			return xstrdup("field 'messages' must not be empty");
		size_t i;
		json_t *msg;
		json_array_foreach(msgs, i, msg)
		{
			if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
				return xasprintf(
				    "field 'messages[%zu]' must be an object with a string 'role'",
				    i);
			json_t *content = json_object_get(msg, "content");
			if (content != NULL && !json_is_string(content))
				return xasprintf("field 'messages[%zu].content' must be a string",
						 i);
		}
	} else if (kind == JOB_KIND_EMBED) {
		json_t *input = json_object_get(body, "input");
		if (input == NULL)
			return xstrdup("field 'input' is required for kind embed");
		if (json_is_array(input) && !api_array_of_strings(input))
			return xstrdup("field 'input' must be a string or an array of strings");
		if ((json_is_string(input) && json_string_length(input) == 0) ||
		    (json_is_array(input) && json_array_size(input) == 0))
			return xstrdup("field 'input' must not be empty");
	} else {
		json_t *prompt = json_object_get(body, "prompt");
		json_t *images = json_object_get(body, "images");
		if (images != NULL && !api_array_of_strings(images))
			return xstrdup("field 'images' must be an array of base64 strings");
		if (prompt == NULL && images == NULL)
			return xstrdup("field 'prompt' is required for kind generate");
	}
	return NULL;
}

/* Builds the job's Ollama request fields from a submit body; returns a message on error. */
static char *
api_job_request(const json_t *body, enum job_kind kind, json_t **out)
{
	json_t *request = json_object();
	for (size_t i = 0; i < VD_ARRAY_LEN(api_fields); i++) {
		const struct api_field *f = &api_fields[i];
		json_t *v = json_object_get(body, f->name);
		if (v == NULL || json_is_null(v))
			continue;
		if (!(api_json_type(v) & f->types)) {
			json_decref(request);
			return xasprintf("field '%s' must be %s", f->name, f->type_text);
		}
		if (!(f->kinds & (1u << kind))) {
			json_decref(request);
			return xasprintf("field '%s' does not apply to kind %s", f->name,
					 job_kind_name(kind));
		}
		json_object_set(request, f->name, v);
	}
	*out = request;
	return NULL;
}

static int
api_infer_kind(const json_t *body, const struct registry_model *model)
{
	if (json_object_get(body, "messages") != NULL)
		return JOB_KIND_CHAT;
	if (json_object_get(body, "input") != NULL)
		return JOB_KIND_EMBED;
	if (json_object_get(body, "prompt") != NULL)
		return JOB_KIND_GENERATE;
	return model != NULL ? registry_default_kind(model) : -1;
}

void
api_submit(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	json_t *request = NULL;
	char *msg = NULL;
	int status = 400;

	json_t *jmodel = json_object_get(body, "model");
	if (jmodel == NULL || json_is_null(jmodel)) {
		msg = xstrdup("field 'model' is required");
		goto out_error;
	}
	if (!json_is_string(jmodel) || json_string_length(jmodel) == 0) {
		msg = xstrdup("field 'model' must be a non-empty string");
		goto out_error;
	}
	const char *name = json_string_value(jmodel);
	static const char *const refused[] = {"stream", "keep_alive"};
	for (size_t i = 0; i < VD_ARRAY_LEN(refused); i++) {
		if (json_object_get(body, refused[i]) != NULL) {
			msg = xasprintf("field '%s' is not accepted: vramd runs jobs without "
					"streaming and decides unloads itself",
					refused[i]);
			goto out_error;
		}
	}
	int priority = JOB_PRIO_NORMAL;
	json_t *jprio = json_object_get(body, "priority");
	if (jprio != NULL && !json_is_null(jprio)) {
		priority =
		    json_is_string(jprio) ? job_priority_from_name(json_string_value(jprio)) : -1;
		if (priority < 0) {
			char *got = json_dumps(jprio, JSON_ENCODE_ANY);
			msg = xasprintf(
			    "field 'priority' must be one of high, normal, low (got %s)", got);
			free(got);
			goto out_error;
		}
	}
	json_t *jkind = json_object_get(body, "kind");
	int kind = -1;
	if (jkind != NULL && !json_is_null(jkind)) {
		kind = json_is_string(jkind) ? job_kind_from_name(json_string_value(jkind)) : -1;
		if (kind < 0) {
			char *got = json_dumps(jkind, JSON_ENCODE_ANY);
			msg = xasprintf(
			    "field 'kind' must be one of generate, chat, embed (got %s)", got);
			free(got);
			goto out_error;
		}
	}
	json_t *metadata = json_object_get(body, "metadata");
	if (metadata != NULL && !json_is_null(metadata) && !json_is_object(metadata)) {
		msg = xstrdup("field 'metadata' must be a JSON object");
		goto out_error;
	}

	if (!monitor_models_known(d->monitor)) {
		status = 503;
		msg = xasprintf("the model list of ollama at %s is not known yet (is it running?); "
				"retry shortly",
				d->backend->url);
		goto out_error;
	}
	const struct registry_model *model = registry_find(d->registry, name);
	if (model == NULL || !model->installed) {
		status = 404;
		msg = xasprintf(
		    "model \"%s\" not found; GET /api/models lists the installed models", name);
		goto out_error;
	}
	if (kind < 0)
		kind = api_infer_kind(body, model);
	if (kind < 0) {
		msg = xstrdup("one of 'prompt', 'messages' or 'input' is required");
		goto out_error;
	}
	if (!registry_supports_kind(model, kind)) {
		msg = xasprintf(
		    "model \"%s\" does not support %s%s", model->name, job_kind_name(kind),
		    (model->caps & REGISTRY_CAP_EMBEDDING) ? " (it is an embedding model)" : "");
		goto out_error;
	}
	msg = api_job_request(body, (enum job_kind)kind, &request);
	if (msg == NULL)
		msg = api_check_kind_fields(body, (enum job_kind)kind);
	if (msg != NULL)
		goto out_error;

	if (queue_length(d->queue) >= queue_capacity(d->queue)) {
		double eta = engine_eta_s(d->engine, &(struct job){.model = (char *)name},
					  queue_length(d->queue));
		int retry = eta > 1 ? (int)fmin(ceil(eta), 300) : 5;
		vd_http_set_header(req, "Retry-After", "%d", retry);
		status = 429;
		msg = xasprintf("queue is full (%zu jobs); retry later", queue_capacity(d->queue));
		goto out_error;
	}

	struct job *job = job_new(
	    store_next_seq(d->store), model->name, (enum job_kind)kind, (enum job_priority)priority,
	    request, metadata != NULL && !json_is_null(metadata) ? json_incref(metadata) : NULL);
	request = NULL;
	job->submitted_at_ms = vd_now_wall_ms();
	job->enqueued_mono_ms = vd_now_mono_ms();
	if (queue_push(d->queue, job) < 0) {
		job_unref(job);
		status = 429;
		msg = xstrdup("queue is full; retry later");
		goto out_error;
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
	double eta = engine_eta_s(d->engine, job, position);
	json_t *reply =
	    json_pack("{s:s,s:s,s:I,s:o}", "job_id", job->id, "status", "queued", "position",
		      (json_int_t)position, "eta_s", eta >= 0 ? json_real(eta) : json_null());
	vd_http_set_header(req, "Location", "/api/job/%s", job->id);
	vd_debug(API, "job %s queued: %s %s %s", job->id, job_kind_name(job->kind), job->model,
		 job_priority_name(job->priority));
	daemon_reply_after_commit(d, req, job, reply);
	daemon_kick(d);
	job_unref(job);
	json_decref(body);
	return;
out_error:
	vd_http_reply_error(req, status, "%s", msg);
	free(msg);
	json_decref(request);
	json_decref(body);
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
	if (job->status == JOB_QUEUED && queue_remove(d->queue, job)) {
		job_finish(job, JOB_CANCELLED, NULL, "cancelled by client", vd_now_wall_ms());
		daemon_job_changed(d, job);
	} else if (!engine_cancel_job(d->engine, job)) {
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
	if (vd_http_req_method(req) == VD_HTTP_DELETE) {
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
		vd_http_reply_json(req, 200, job_to_json(job));
	}
	free(wait);
	job_unref(job);
}

struct api_list {
	json_t *jobs;
	int priority; /* -1 = any */
};

static void
api_jobs_cb(struct job *job, void *arg)
{
	struct api_list *list = arg;
	if (list->priority < 0 || (int)job->priority == list->priority) {
		json_t *o = job_to_json(job);
		json_object_del(o, "result");
		json_array_append_new(list->jobs, o);
	}
	job_unref(job);
}

static int
api_jobs_seq_desc(const void *a, const void *b)
{
	const char *ia = json_string_value(json_object_get(*(json_t *const *)a, "job_id"));
	const char *ib = json_string_value(json_object_get(*(json_t *const *)b, "job_id"));
	return strcmp(ib, ia); /* ids are fixed-width hex of seq */
}

void
api_jobs(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	char *status = vd_http_query_param(req, "status");
	char *model = vd_http_query_param(req, "model");
	char *prio = vd_http_query_param(req, "priority");
	struct api_list list = {.jobs = json_array(), .priority = -1};
	int64_t limit = 100;
	char *cause = NULL;
	if (!vd_http_query_int(req, "limit", 1, 1000, &limit))
		goto out;
	if (prio != NULL && (list.priority = job_priority_from_name(prio)) < 0) {
		vd_http_reply_error(
		    req, 400, "parameter 'priority' must be one of high, normal, low (got \"%s\")",
		    prio);
		goto out;
	}
	/* Without a priority filter the store's limit is exact; with one, over-fetch. */
	int fetch = (int)(list.priority < 0 ? limit : 1000);
	if (status == NULL) {
		if (store_jobs_list(d->store, NULL, model, fetch, api_jobs_cb, &list, &cause) < 0)
			goto out_store_error;
	} else {
		char *save = NULL;
		for (char *s = strtok_r(status, ",", &save); s != NULL;
		     s = strtok_r(NULL, ",", &save)) {
			if (job_status_from_name(s) < 0) {
				vd_http_reply_error(
				    req, 400,
				    "parameter 'status' must be a list of queued, pending, "
				    "running, complete, failed, cancelled (got \"%s\")",
				    s);
				goto out;
			}
			if (store_jobs_list(d->store, s, model, fetch, api_jobs_cb, &list, &cause) <
			    0)
				goto out_store_error;
		}
	}
	size_t n = json_array_size(list.jobs);
	json_t **items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(list.jobs, i));
	qsort(items, n, sizeof(*items), api_jobs_seq_desc);
	json_t *sorted = json_array();
	for (size_t i = 0; i < n; i++) {
		if ((int64_t)i < limit)
			json_array_append(sorted, items[i]);
		json_decref(items[i]);
	}
	free(items);
	vd_http_reply_json(
	    req, 200,
	    json_pack("{s:o,s:I}", "jobs", sorted, "count", (json_int_t)json_array_size(sorted)));
	goto out;
out_store_error:
	vd_http_reply_error(req, 500, "cannot list jobs: %s", cause);
out:
	free(cause);
	json_decref(list.jobs);
	free(status);
	free(model);
	free(prio);
}
