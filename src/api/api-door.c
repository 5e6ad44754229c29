/*
 * api-door.c: a front-door client waiting on its connection for a job (api-door.h).
 *
 * Lifetime: the door lives until both its job has ended (job_attach.end) and its request
 * is over (answered, or the client went away). The job holds door->attach; the door holds
 * a reference on the job.
 */
#include "api-door.h"

#include "api.h"
#include "api-parse.h"
#include "buf.h"
#include "daemon.h"
#include "fleet.h"
#include "http-util.h"
#include "keys.h"
#include "httpd.h"
#include "log.h"
#include "queue.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_DOOR_MAX_LINE (4u << 20)  /* a streamed line longer than this is cut off */
#define API_DOOR_MAX_BODY (64u << 20) /* a whole reply longer than this fails */

struct api_door {
	struct daemon *d;
	struct vd_http_req *req; /* NULL once the request is over */
	struct job *job;	 /* a reference */
	struct job_attach attach;
	const struct api_door_ops *ops;
	void *state;
	bool started; /* the streamed reply's head went out */
	bool ended;   /* the job is final */
	struct vd_buf line;
	struct vd_buf body;
};

struct vd_http_req *
api_door_req(struct api_door *door)
{
	return door->req;
}

struct job *
api_door_job(struct api_door *door)
{
	return door->job;
}

void *
api_door_state(struct api_door *door)
{
	return door->state;
}

static void
api_door_free(struct api_door *door)
{
	if (door->ops->free_state != NULL)
		door->ops->free_state(door->state);
	vd_buf_cleanup(&door->line);
	vd_buf_cleanup(&door->body);
	job_unref(door->job);
	free(door);
}

void
api_door_send(struct api_door *door, const void *data, size_t len)
{
	if (door->req == NULL)
		return;
	if (!door->started) {
		door->started = true;
		vd_http_req_set_header(door->req, "Content-Type", door->ops->content_type);
		vd_http_req_start(door->req, 200);
	}
	door->attach.replied = true;
	vd_http_req_send(door->req, data, len);
}

/* Complete lines of a streamed reply go on as they come; the rest waits for its end. */
static void
api_door_chunk_cb(struct job *job, const char *data, size_t len, void *arg)
{
	(void)job;
	struct api_door *door = arg;
	if (!door->attach.stream) {
		vd_buf_append(&door->body, data, len); /* capped: a cut body fails to parse */
		return;
	}
	const char *end = data + len;
	while (data < end) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));
		if (nl == NULL) {
			vd_buf_append(&door->line, data, (size_t)(end - data));
			return;
		}
		if (door->line.len > 0) {
			vd_buf_append(&door->line, data, (size_t)(nl - data));
			if (door->req != NULL)
				door->ops->line(door, door->line.data, door->line.len);
			vd_buf_reset(&door->line);
		} else if (nl > data && door->req != NULL) {
			door->ops->line(door, data, (size_t)(nl - data));
		}
		data = nl + 1;
	}
}

/* The HTTP status to answer a job that ended without an answer. */
static int
api_door_status(const struct api_door *door)
{
	const struct job *job = door->job;
	if (job->status == JOB_CANCELLED)
		return 499; /* the client went away: nobody reads it */
	const char *e = job->error != NULL ? job->error : "";
	if (strstr(e, "not found") != NULL)
		return 404;
	if (strstr(e, "unreachable") != NULL || strstr(e, "did not answer") != NULL)
		return 503;
	if (strstr(e, "more than any GPU") != NULL)
		return 507;
	return door->attach.status >= 400 ? door->attach.status : 500;
}

static void
api_door_end_cb(struct job *job, void *arg)
{
	struct api_door *door = arg;
	door->ended = true;
	if (door->req != NULL) {
		struct vd_http_req *req = door->req;
		vd_http_req_on_close(req, NULL, NULL);
		if (job->status == JOB_COMPLETE && door->attach.stream) {
			if (door->line.len > 0)
				door->ops->line(door, door->line.data, door->line.len);
			door->ops->close(door);
			if (!door->started)
				api_door_send(door, "", 0);
			vd_http_req_end(req);
		} else if (job->status == JOB_COMPLETE) {
			door->ops->body(door, door->body.data != NULL ? door->body.data : "",
					door->body.len);
		} else if (door->started) {
			door->ops->stream_error(door, job->error != NULL ? job->error : "failed");
			vd_http_req_end(req);
		} else {
			door->ops->error(door, api_door_status(door),
					 job->error != NULL ? job->error : "failed");
		}
		door->req = NULL;
	}
	api_door_free(door);
}

/* The client went away: its job is cancelled (the queue drops it, or its node request
 * is aborted); the door goes once the job has ended. */
static void
api_door_close_cb(struct vd_http_req *req, void *arg)
{
	struct api_door *door = arg;
	door->req = NULL;
	vd_http_req_release(req);
	if (!door->ended && !daemon_cancel_job(door->d, door->job))
		vd_debug(API, "job %s: client gone; it ends on its own", door->job->id);
}

int
api_door_priority(struct vd_http_req *req, bool *given)
{
	const char *p = vd_http_req_header(req, "X-Vramd-Priority");
	*given = p != NULL;
	if (p == NULL)
		return JOB_PRIO_NORMAL;
	int prio = job_priority_from_name(p);
	if (prio < 0)
		return -1;
	return prio;
}

int
api_door_deadline(struct vd_http_req *req, int64_t *ms)
{
	const char *h = vd_http_req_header(req, "X-Vramd-Deadline");
	*ms = 0;
	if (h == NULL)
		return 0;
	char *end = NULL;
	errno = 0;
	double seconds = strtod(h, &end);
	if (end == h || *end != '\0' || errno != 0)
		return -EINVAL;
	return api_deadline_ms(seconds, ms);
}

void
api_door_run(struct daemon *d, struct vd_http_req *req, const struct api_door_job *dj,
	     const struct api_door_ops *ops, void *state)
{
	struct api_door *door = xcalloc(1, sizeof(*door));
	door->d = d;
	door->req = req;
	door->ops = ops;
	door->state = state;
	vd_buf_init(&door->line, API_DOOR_MAX_LINE);
	vd_buf_init(&door->body, API_DOOR_MAX_BODY);
	door->attach = (struct job_attach){
	    .chunk = api_door_chunk_cb,
	    .end = api_door_end_cb,
	    .arg = door,
	    .stream = dj->stream,
	    .path = dj->path,
	    .keep_alive_ms = dj->keep_alive_ms,
	};
	enum job_priority priority = dj->priority;
	const struct api_key *key = api_request_key(req);
	char *msg = NULL;
	int status = api_model_admit(d, dj->model, &msg);
	if (status == 0 && key != NULL)
		status = api_key_admit(d, req, key, dj->model, dj->priority_given, &priority, &msg);
	if (status != 0) {
		ops->error(door, status, msg);
		free(msg);
		json_decref(dj->request);
		door->req = NULL;
		api_door_free(door);
		return;
	}
	/* X-Vramd-Placement: where the job may run (gpu, cpu, any), else the model's
	 * default. Read here so every front door takes it the same way. */
	const char *placement_text = vd_http_req_header(req, "X-Vramd-Placement");
	int placement = placement_text != NULL ? job_placement_from_name(placement_text)
					       : (int)api_placement_default(d, dj->model);
	if (placement < 0) {
		msg = xasprintf("header X-Vramd-Placement must be gpu, cpu or any (got %.64s)",
				placement_text);
		ops->error(door, 400, msg);
		free(msg);
		json_decref(dj->request);
		door->req = NULL;
		api_door_free(door);
		return;
	}
	char *cause = NULL;
	int64_t seq = store_next_seq(d->store, &cause);
	if (seq < 0) {
		msg = xasprintf("cannot give the job an id: %s", cause);
		free(cause);
		ops->error(door, 503, msg);
		free(msg);
		json_decref(dj->request);
		door->req = NULL;
		api_door_free(door);
		return;
	}
	size_t request_bytes = job_request_bytes(dj->request);
	bool full = queue_length(d->queue) >= queue_capacity(d->queue) ||
		    !queue_has_room_bytes(d->queue, request_bytes);
	struct job *job = job_new(seq, dj->model, dj->kind, priority, dj->request, NULL);
	door->job = job;
	job->placement = (enum job_placement)placement;
	job->key = key != NULL ? xstrdup(key->name) : NULL;
	job->request_bytes = request_bytes;
	job->submitted_at_ms = vd_now_wall_ms();
	job->enqueued_mono_ms = vd_now_mono_ms();
	if (dj->deadline_ms > 0)
		job_set_deadline(job, job->submitted_at_ms + dj->deadline_ms, job->submitted_at_ms,
				 job->enqueued_mono_ms);
	if (full || queue_push(d->queue, job) < 0) {
		api_retry_after(d, req, job, queue_length(d->queue));
		/* Ollama's own words for a full queue. */
		ops->error(door, 503,
			   "server busy, please try again.  maximum pending requests "
			   "exceeded");
		door->req = NULL;
		api_door_free(door);
		return;
	}
	double late_eta = 0;
	status = api_deadline_admit(d, req, job, &late_eta, &msg);
	if (status != 0) {
		api_withdraw(d, job);
		vd_http_set_header(req, "X-Vramd-ETA", "%.1f", late_eta);
		ops->error(door, status, msg);
		free(msg);
		door->req = NULL;
		api_door_free(door);
		return;
	}
	job->attach = &door->attach;
	daemon_job_add(d, job);
	size_t position = queue_position(d->queue, job) + 1;
	double eta = fleet_eta_s(d->fleet, job, position);
	vd_http_set_header(req, "X-Vramd-Queue-Position", "%zu", position);
	if (eta >= 0)
		vd_http_set_header(req, "X-Vramd-ETA", "%.1f", eta);
	vd_http_set_header(req, "X-Vramd-Job", "%s", job->id);
	vd_http_req_on_close(req, api_door_close_cb, door);
	vd_debug(API, "job %s attached: %s %s %s%s", job->id, job_kind_name(job->kind), job->model,
		 job_priority_name(job->priority), dj->stream ? " (streamed)" : "");
	daemon_kick(d);
}
