/*
 * job.c: job objects: creation, reference counting, names of kinds, priorities and
 * statuses, and the JSON shape GET /api/job/{id} returns.
 */
#include "job.h"

#include "http-util.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const job_kind_names[JOB_NKINDS] = {"generate", "chat", "embed"};
static const char *const job_priority_names[JOB_NPRIORITIES] = {"high", "normal", "low"};
static const char *const job_status_names[JOB_NSTATUSES] = {"queued",	"pending", "running",
							    "complete", "failed",  "cancelled"};
static const char *const job_placement_names[JOB_NPLACEMENTS] = {"any", "gpu", "cpu"};

struct job *
job_new(int64_t seq, const char *model, enum job_kind kind, enum job_priority priority,
	json_t *request, json_t *metadata)
{
	json_t *ctx = json_object_get(json_object_get(request, "options"), "num_ctx");
	int64_t num_ctx =
	    json_is_integer(ctx) && json_integer_value(ctx) > 0 ? json_integer_value(ctx) : 0;
	char *text = request != NULL ? json_dumps(request, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(request);
	return job_new_text(seq, model, kind, priority, text, num_ctx, metadata);
}

struct job *
job_new_text(int64_t seq, const char *model, enum job_kind kind, enum job_priority priority,
	     char *request_text, int64_t num_ctx, json_t *metadata)
{
	struct job *job = xcalloc(1, sizeof(*job));
	job->refcount = 1;
	job->seq = seq;
	job_format_id(seq, job->id);
	job->model = xstrdup(model);
	job->kind = kind;
	job->priority = priority;
	job->status = JOB_QUEUED;
	job->num_ctx = num_ctx;
	job->request_text = request_text != NULL ? request_text : xstrdup("{}");
	if (metadata != NULL)
		job->metadata_text = json_dumps(metadata, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(metadata);
	return job;
}

int64_t
job_num_ctx(const struct job *job)
{
	return job->num_ctx;
}

json_t *
job_request(const struct job *job)
{
	json_t *o = json_loads(job->request_text, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		o = json_object();
	}
	return o;
}

size_t
job_request_bytes(const json_t *request)
{
	return request != NULL ? json_dumpb(request, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

struct job *
job_ref(struct job *job)
{
	job->refcount++;
	return job;
}

void
job_unref(struct job *job)
{
	if (job == NULL || --job->refcount > 0)
		return;
	free(job->model);
	free(job->key);
	free(job->request_text);
	free(job->metadata_text);
	json_decref(job->result);
	free(job->error);
	free(job);
}

bool
job_is_final(const struct job *job)
{
	return job->status == JOB_COMPLETE || job->status == JOB_FAILED ||
	       job->status == JOB_CANCELLED;
}

void
job_format_id(int64_t seq, char *buf)
{
	snprintf(buf, JOB_ID_LEN, "j-%016" PRIx64, (uint64_t)seq);
}

bool
job_parse_id(const char *id, int64_t *seq)
{
	if (strncmp(id, "j-", 2) != 0 || strlen(id) != 18)
		return false;
	uint64_t v = 0;
	for (const char *p = id + 2; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return false;
		v = v * 16 + (uint64_t)d;
	}
	if (v > INT64_MAX)
		return false;
	*seq = (int64_t)v;
	return true;
}

static int
job_lookup(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *
job_kind_name(enum job_kind kind)
{
	return kind < JOB_NKINDS ? job_kind_names[kind] : "?";
}

int
job_effective_priority(int prio, int64_t enqueued_ms, int64_t now_ms, int64_t aging_ms)
{
	int64_t steps;

	if (aging_ms <= 0 || now_ms <= enqueued_ms)
		return prio;
	steps = (now_ms - enqueued_ms) / aging_ms;
	return steps >= prio ? JOB_PRIO_HIGH : prio - (int)steps;
}

void
job_set_deadline(struct job *job, int64_t deadline_at_ms, int64_t now_wall_ms, int64_t now_mono_ms)
{
	job->deadline_at_ms = deadline_at_ms > 0 ? deadline_at_ms : 0;
	job->deadline_mono_ms = 0;
	if (job->deadline_at_ms == 0)
		return;
	int64_t mono = now_mono_ms + (job->deadline_at_ms - now_wall_ms);
	/* 0 means none: a deadline long past still counts as one, the most urgent. */
	job->deadline_mono_ms = mono > 0 ? mono : 1;
}

bool
job_deadline_missed(const struct job *job)
{
	if (job->deadline_at_ms <= 0)
		return false;
	return job->started_at_ms > job->deadline_at_ms ||
	       job->completed_at_ms > job->deadline_at_ms;
}

const char *
job_priority_name(enum job_priority priority)
{
	return priority < JOB_NPRIORITIES ? job_priority_names[priority] : "?";
}

const char *
job_status_name(enum job_status status)
{
	return status < JOB_NSTATUSES ? job_status_names[status] : "?";
}

const char *
job_placement_name(enum job_placement placement)
{
	return placement < JOB_NPLACEMENTS ? job_placement_names[placement] : "?";
}

int
job_placement_from_name(const char *name)
{
	return job_lookup(job_placement_names, JOB_NPLACEMENTS, name);
}

/* One "model=placement" entry of a MODEL_PLACEMENT list, trimmed: [name, name + nlen)
 * and [value, value + vlen). Returns the text after it (NULL at the end). */
static const char *
job_placement_entry(const char *p, const char **name, size_t *nlen, const char **value,
		    size_t *vlen)
{
	const char *end = strchr(p, ',');
	size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
	const char *eq = memchr(p, '=', len);

	*name = p;
	*nlen = eq != NULL ? (size_t)(eq - p) : len;
	*value = eq != NULL ? eq + 1 : p + len;
	*vlen = eq != NULL ? len - *nlen - 1 : 0;
	while (*nlen > 0 && (**name == ' ' || **name == '\t')) {
		(*name)++;
		(*nlen)--;
	}
	while (*nlen > 0 && ((*name)[*nlen - 1] == ' ' || (*name)[*nlen - 1] == '\t'))
		(*nlen)--;
	while (*vlen > 0 && (**value == ' ' || **value == '\t')) {
		(*value)++;
		(*vlen)--;
	}
	while (*vlen > 0 && ((*value)[*vlen - 1] == ' ' || (*value)[*vlen - 1] == '\t'))
		(*vlen)--;
	return end != NULL ? end + 1 : NULL;
}

static int
job_placement_lookup(const char *value, size_t vlen)
{
	for (int i = 0; i < JOB_NPLACEMENTS; i++)
		if (strlen(job_placement_names[i]) == vlen &&
		    strncmp(job_placement_names[i], value, vlen) == 0)
			return i;
	return -1;
}

int
job_placement_list_check(const char *list, char **cause)
{
	const char *p = list, *name, *value;
	size_t nlen, vlen;

	while (p != NULL && *p != '\0') {
		const char *entry = p;
		p = job_placement_entry(p, &name, &nlen, &value, &vlen);
		size_t elen = p != NULL ? (size_t)(p - 1 - entry) : strlen(entry);
		if (nlen == 0 && vlen == 0 && memchr(entry, '=', elen) == NULL)
			continue; /* an empty entry ("a=gpu,,b=cpu") */
		if (nlen == 0 || job_placement_lookup(value, vlen) < 0)
			return vd_fail(cause, -EINVAL,
				       "entry '%.*s' is not model=gpu, model=cpu or model=any",
				       (int)elen, entry);
	}
	return 0;
}

int
job_placement_for_model(const char *list, const char *model)
{
	const char *p = list, *name, *value;
	size_t nlen, vlen, mlen = strlen(model);

	while (p != NULL && *p != '\0') {
		p = job_placement_entry(p, &name, &nlen, &value, &vlen);
		if (nlen == 0)
			continue;
		bool same = nlen == mlen && strncmp(name, model, mlen) == 0;
		/* "phi3" names "phi3:latest", as a model name without a tag does in Ollama. */
		if (!same && memchr(name, ':', nlen) == NULL && mlen == nlen + 7 &&
		    strncmp(name, model, nlen) == 0 && strcmp(model + nlen, ":latest") == 0)
			same = true;
		if (same)
			return job_placement_lookup(value, vlen);
	}
	return -1;
}

enum job_placement
job_placement_default(const char *list, const char *model, bool allow_cpu)
{
	int p = list != NULL && model != NULL ? job_placement_for_model(list, model) : -1;
	if (p >= 0)
		return (enum job_placement)p;
	return allow_cpu ? JOB_PLACE_ANY : JOB_PLACE_GPU;
}

int
job_kind_from_name(const char *name)
{
	return job_lookup(job_kind_names, JOB_NKINDS, name);
}

int
job_priority_from_name(const char *name)
{
	return job_lookup(job_priority_names, JOB_NPRIORITIES, name);
}

int
job_status_from_name(const char *name)
{
	return job_lookup(job_status_names, JOB_NSTATUSES, name);
}

void
job_finish(struct job *job, enum job_status status, json_t *result, const char *error,
	   int64_t now_wall_ms)
{
	job->status = status;
	json_decref(job->result);
	job->result = result;
	free(job->error);
	job->error = error != NULL ? xstrdup(error) : NULL;
	job->completed_at_ms = now_wall_ms;
}

json_t *
job_to_json(const struct job *job)
{
	json_t *o = json_object();
	json_object_set_new(o, "job_id", json_string(job->id));
	json_object_set_new(o, "status", json_string(job_status_name(job->status)));
	json_object_set_new(o, "model", json_string(job->model));
	json_object_set_new(o, "kind", json_string(job_kind_name(job->kind)));
	json_object_set_new(o, "priority", json_string(job_priority_name(job->priority)));
	json_object_set_new(o, "placement",
			    job->placement < JOB_NPLACEMENTS
				? json_string(job_placement_name(job->placement))
				: json_null());
	json_object_set_new(o, "key", job->key != NULL ? json_string(job->key) : json_null());
	if (job->status == JOB_COMPLETE && job->result != NULL)
		json_object_set(o, "result", job->result);
	if (job->error != NULL)
		json_object_set_new(o, "error", json_string(job->error));
	json_object_set_new(o, "submitted_at", vd_json_time_ms(job->submitted_at_ms));
	json_object_set_new(o, "started_at", vd_json_time_ms(job->started_at_ms));
	json_object_set_new(o, "completed_at", vd_json_time_ms(job->completed_at_ms));
	/* Unix ms, as the client computes it from its own deadline_s. */
	json_object_set_new(o, "deadline_at",
			    job->deadline_at_ms > 0 ? json_integer(job->deadline_at_ms)
						    : json_null());
	json_object_set_new(o, "deadline_missed", json_boolean(job_deadline_missed(job)));
	json_object_set_new(o, "metrics",
			    json_pack("{s:I,s:I,s:I}", "wait_ms", (json_int_t)job->wait_ms,
				      "load_ms", (json_int_t)job->load_ms, "run_ms",
				      (json_int_t)job->run_ms));
	json_object_set_new(o, "attempts", json_integer(job->attempts));
	json_t *metadata = job->metadata_text != NULL
			       ? json_loads(job->metadata_text, JSON_DECODE_ANY, NULL)
			       : NULL;
	json_object_set_new(o, "metadata", metadata != NULL ? metadata : json_null());
	return o;
}
