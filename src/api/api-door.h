/*
 * api-door.h: a client of a front door (vramd's Ollama-compatible and OpenAI-compatible
 * APIs) waiting on its connection for a job. The door turns the request into a job
 * attached to the connection (struct job_attach), queues it like any job, and passes the
 * node's reply back as it arrives, rendered by the front door's ops:
 *
 *   streamed   each complete line of the node's NDJSON reply goes to ops->line as it
 *              arrives (the reply head is sent before the first), then ops->close;
 *   whole      the node's body is collected and goes to ops->body at the end.
 *
 * A job that fails or is cancelled before anything was sent is answered by ops->error
 * with an HTTP status; after a streamed reply began, by ops->stream_error inside it. A
 * client that goes away cancels its job (taken from the queue, or its node request
 * aborted). Such jobs are written to the store only once they end, so they are never run
 * again after a restart.
 */
#ifndef VRAMD_API_DOOR_H
#define VRAMD_API_DOOR_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct vd_http_req;
struct api_door;

struct api_door_ops {
	/* One complete line of a streamed node reply (without its newline). */
	void (*line)(struct api_door *door, const char *line, size_t len);
	/* The streamed reply ended well: anything the format sends last ("data: [DONE]"). */
	void (*close)(struct api_door *door);
	/* The whole node reply of a job not streamed: reply to the client. */
	void (*body)(struct api_door *door, const char *body, size_t len);
	/* The job failed or was cancelled before a byte was sent: reply with status. */
	void (*error)(struct api_door *door, int status, const char *message);
	/* It failed after a streamed reply began: say so inside the stream. */
	void (*stream_error)(struct api_door *door, const char *message);
	/* Frees the format's state (door_state). May be NULL. */
	void (*free_state)(void *state);
	const char *content_type; /* of a streamed reply ("application/x-ndjson") */
};

/* What a front door asks to run. request is stolen; it holds the fields to send to the
 * node (the client's body without model, stream and keep_alive). */
struct api_door_job {
	const char *model; /* the registry's display name */
	enum job_kind kind;
	enum job_priority priority;
	bool priority_given; /* the client named it (else an API key's default applies) */
	json_t *request;
	bool stream;	       /* ask the node for a streamed reply, pass its lines on */
	const char *path;      /* node endpoint when not the kind's (a string literal) */
	int64_t keep_alive_ms; /* the client's keep_alive hint (job_attach.keep_alive_ms); 0 */
	int64_t deadline_ms;   /* X-Vramd-Deadline in ms from now (api_door_deadline); 0: none */
};

/*
 * Queues the job and holds req until it has been answered. Replies itself, through
 * ops->error, on a full queue (503 with Retry-After and Ollama's text), when the
 * caller's API key does not allow the job (api_key_admit), and when DEADLINE_POLICY=reject
 * refuses its deadline (429 with Retry-After and X-Vramd-ETA, api_deadline_admit). state is the
 * format's (freed with ops->free_state). Sets X-Vramd-Queue-Position and X-Vramd-ETA.
 */
void api_door_run(struct daemon *d, struct vd_http_req *req, const struct api_door_job *dj,
		  const struct api_door_ops *ops, void *state);

/* For ops: the request, the job (its wait_ms, metrics), the format's state. */
struct vd_http_req *api_door_req(struct api_door *door);
struct job *api_door_job(struct api_door *door);
void *api_door_state(struct api_door *door);
/* Sends bytes of a streamed reply (starting it with 200 and ops->content_type first). */
void api_door_send(struct api_door *door, const void *data, size_t len);

/* The priority a front-door request asks for: header X-Vramd-Priority (high, normal,
 * low), else normal (*given false). Returns -1 when the header is none of those. */
int api_door_priority(struct vd_http_req *req, bool *given);

/* The deadline a front-door request asks for: header X-Vramd-Deadline, seconds from now
 * (a number, more than 0, at most API_DEADLINE_S_MAX), in *ms; 0 when absent. Returns
 * -EINVAL when the header is not such a number (the door answers 400). */
int api_door_deadline(struct vd_http_req *req, int64_t *ms);

#endif
