/*
 * api-openai.c: vramd answers as OpenAI (docs/api.md "OpenAI-compatible API"). A client
 * written for OpenAI changes only its base URL:
 *
 *   POST /v1/chat/completions, /v1/completions, /v1/embeddings
 *        are translated into Ollama's native request (openai.c, pure) and become jobs
 *        attached to the connection (api-door.h), exactly as the Ollama front door's:
 *        queued with the priority of X-Vramd-Priority or the API key's default, placed
 *        by the scheduler, run on a node, cancelled when the client goes away. The node's
 *        reply comes back translated: server-sent events as the node streams its chunks,
 *        or one JSON body.
 *   GET  /v1/models, /v1/models/{id}
 *        the union of the nodes' installed models, in OpenAI's shape.
 *
 * Every error these endpoints answer has OpenAI's shape, {"error": {"message", "type",
 * "param", "code"}}, which the official clients turn into their typed errors.
 */
#include "api.h"

#include "api-door.h"
#include "api-parse.h"
#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "http-util.h"
#include "httpd.h"
#include "log.h"
#include "openai.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The most server-sent event text one native chunk may become. */
#define API_OPENAI_MAX_EVENTS (4u << 20)

static void
api_openai_reply_error(struct vd_http_req *req, int status, const char *message, const char *param,
		       const char *code)
{
	vd_http_reply_json(req, status, openai_error_json(status, message, NULL, param, code));
}

/* --- Rendering the node's reply as OpenAI's --------------------------------------------- */

/* One /v1 request waiting on its job. */
struct api_openai {
	struct openai_req_info info;
	char *model;	 /* as the client named it */
	int64_t created; /* Unix seconds of the request: one value for the whole reply */
	struct openai_stream stream;
	bool stream_ready; /* stream initialised (at the first chunk: the id needs the job) */
	struct vd_buf events;
};

static void
api_openai_free(void *state)
{
	struct api_openai *o = state;
	if (o == NULL)
		return;
	if (o->stream_ready)
		openai_stream_cleanup(&o->stream);
	vd_buf_cleanup(&o->events);
	free(o->model);
	free(o);
}

/* The reply's id and created, shared by every event of it. */
static void
api_openai_meta(struct api_door *door, char *id, size_t size, struct openai_reply_meta *meta)
{
	struct api_openai *o = api_door_state(door);
	openai_make_id(o->info.endpoint, (uint64_t)api_door_job(door)->seq, id, size);
	*meta = (struct openai_reply_meta){.id = id, .created = o->created, .model = o->model};
}

static struct openai_stream *
api_openai_stream(struct api_door *door)
{
	struct api_openai *o = api_door_state(door);
	if (!o->stream_ready) {
		char id[OPENAI_ID_MAX];
		struct openai_reply_meta meta;
		api_openai_meta(door, id, sizeof(id), &meta);
		openai_stream_init(&o->stream, &o->info, &meta);
		o->stream_ready = true;
	}
	return &o->stream;
}

/* Sends what the last call appended to the events buffer. */
static void
api_openai_flush(struct api_door *door)
{
	struct api_openai *o = api_door_state(door);
	if (o->events.len > 0)
		api_door_send(door, o->events.data, o->events.len);
	vd_buf_reset(&o->events);
}

static void
api_openai_line(struct api_door *door, const char *line, size_t len)
{
	struct api_openai *o = api_door_state(door);
	struct openai_stream *st = api_openai_stream(door);
	json_error_t jerr;
	json_t *chunk = json_loadb(line, len, 0, &jerr);
	char *cause = NULL;
	int rc = chunk != NULL ? openai_stream_feed(st, chunk, &o->events, &cause) : -EINVAL;
	json_decref(chunk);
	if (rc < 0) {
		/* Not a chunk of the endpoint: the stream cannot go on truthfully. */
		vd_warn(API, "job %s: a streamed chunk from the node could not be translated: %s",
			api_door_job(door)->id, cause != NULL ? cause : jerr.text);
		vd_buf_reset(&o->events);
		openai_stream_fail(st, 502, "the node sent a chunk vramd could not translate",
				   &o->events);
	}
	free(cause);
	api_openai_flush(door);
}

static void
api_openai_close(struct api_door *door)
{
	struct api_openai *o = api_door_state(door);
	struct openai_stream *st = api_openai_stream(door);
	if (!openai_stream_is_done(st))
		openai_stream_fail(st, 502, "the node's reply ended before its final chunk",
				   &o->events);
	api_openai_flush(door);
}

static void
api_openai_body(struct api_door *door, const char *body, size_t len)
{
	struct api_openai *o = api_door_state(door);
	struct vd_http_req *req = api_door_req(door);
	char id[OPENAI_ID_MAX];
	struct openai_reply_meta meta;
	api_openai_meta(door, id, sizeof(id), &meta);
	json_t *native = json_loadb(body, len, 0, NULL);
	char *out = NULL, *cause = NULL;
	int rc = -EINVAL;
	if (native == NULL)
		cause = xstrdup("the node's reply is not JSON");
	else if (o->info.endpoint == OPENAI_CHAT)
		rc = openai_chat_reply(native, &meta, &out, &cause);
	else if (o->info.endpoint == OPENAI_COMPLETIONS)
		rc = openai_completion_reply(native, &meta, &out, &cause);
	else
		rc = openai_embeddings_reply(native, &meta, o->info.encoding, &out, &cause);
	json_decref(native);
	if (rc < 0) {
		vd_warn(API, "job %s: the node's reply could not be translated: %s",
			api_door_job(door)->id, cause);
		api_openai_reply_error(req, rc == -EIO ? 500 : 502, cause, NULL, NULL);
	} else {
		vd_http_req_set_header(req, "Content-Type", "application/json");
		vd_http_req_reply(req, 200, out, strlen(out));
	}
	free(out);
	free(cause);
}

static void
api_openai_error(struct api_door *door, int status, const char *message)
{
	bool model = status == 404 && strstr(message, "not found") != NULL;
	api_openai_reply_error(api_door_req(door), status, message, model ? "model" : NULL,
			       model ? "model_not_found" : NULL);
}

static void
api_openai_stream_error(struct api_door *door, const char *message)
{
	struct api_openai *o = api_door_state(door);
	openai_stream_fail(api_openai_stream(door), 500, message, &o->events);
	api_openai_flush(door);
}

static const struct api_door_ops api_openai_ops = {
    .line = api_openai_line,
    .close = api_openai_close,
    .body = api_openai_body,
    .error = api_openai_error,
    .stream_error = api_openai_stream_error,
    .free_state = api_openai_free,
    .content_type = "text/event-stream; charset=utf-8",
};

/* --- Requests ----------------------------------------------------------------------------- */

typedef int (*api_openai_translate)(const json_t *body, json_t **out_native,
				    struct openai_req_info *info, char **error, int *http_status);

struct api_openai_endpoint {
	enum job_kind kind;
	api_openai_translate translate;
};

static const struct api_openai_endpoint api_openai_chat_ep = {JOB_KIND_CHAT, openai_chat_to_ollama};
static const struct api_openai_endpoint api_openai_completions_ep = {JOB_KIND_GENERATE,
								     openai_completion_to_ollama};
static const struct api_openai_endpoint api_openai_embeddings_ep = {JOB_KIND_EMBED,
								    openai_embeddings_to_ollama};

/* The native request checked as vramd's own submit checks a job (the fields it knows),
 * which also finds the model in the registry. Returns 0 with *sub filled, or the status
 * to answer with *msg. */
static int
api_openai_check(struct daemon *d, const json_t *native, const struct api_openai_endpoint *ep,
		 struct api_submit *sub, char **msg)
{
	const char *model = json_string_value(json_object_get(native, "model"));
	json_t *check = json_object();
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)native, key, value)
	{
		if (api_submit_field_known(key) && strcmp(key, "metadata") != 0 &&
		    strcmp(key, "priority") != 0)
			json_object_set(check, key, value);
	}
	json_object_set_new(check, "kind", json_string(job_kind_name(ep->kind)));
	struct api_submit_env env = {
	    .registry = fleet_registry_for(d->fleet, model != NULL ? model : ""),
	    .models_known = fleet_models_known(d->fleet),
	};
	int status = api_submit_parse(check, &env, sub, msg);
	json_decref(check);
	return status;
}

static void
api_openai_infer(struct vd_http_req *req, struct daemon *d, const struct api_openai_endpoint *ep)
{
	json_t *body = NULL;
	char *msg = NULL;
	int status = vd_http_parse_json_object(req, config_size(d->config, CONFIG_MAX_BODY_BYTES),
					       &body, &msg);
	if (status != 0) {
		api_openai_reply_error(req, status, msg, NULL, NULL);
		free(msg);
		return;
	}
	bool priority_given;
	int priority = api_door_priority(req, &priority_given);
	if (priority < 0) {
		char *why =
		    xasprintf("header X-Vramd-Priority must be high, normal or low (got %s)",
			      vd_http_req_header(req, "X-Vramd-Priority"));
		api_openai_reply_error(req, 400, why, NULL, "invalid_value");
		free(why);
		json_decref(body);
		return;
	}
	int64_t deadline_ms;
	if (api_door_deadline(req, &deadline_ms) < 0) {
		char *why =
		    xasprintf("header X-Vramd-Deadline must be a number of seconds, more "
			      "than 0 and at most %.0f (got %.64s)",
			      API_DEADLINE_S_MAX, vd_http_req_header(req, "X-Vramd-Deadline"));
		api_openai_reply_error(req, 400, why, NULL, "invalid_value");
		free(why);
		json_decref(body);
		return;
	}
	struct api_openai *o = xcalloc(1, sizeof(*o));
	json_t *native = NULL;
	status = 0;
	if (ep->translate(body, &native, &o->info, &msg, &status) < 0) {
		api_openai_reply_error(req, status, msg, o->info.param, o->info.code);
		goto out;
	}
	struct api_submit sub;
	status = api_openai_check(d, native, ep, &sub, &msg);
	if (status != 0) {
		bool model = status == 404;
		api_openai_reply_error(req, status, msg, model ? "model" : NULL,
				       model ? "model_not_found" : NULL);
		goto out;
	}
	o->model = xstrdup(json_string_value(json_object_get(native, "model")));
	o->created = vd_now_wall_ms() / 1000;
	vd_buf_init(&o->events, API_OPENAI_MAX_EVENTS);
	json_object_del(native, "model");
	struct api_door_job dj = {
	    .model = sub.model->name,
	    .kind = ep->kind,
	    .priority = (enum job_priority)priority,
	    .priority_given = priority_given,
	    .request = native,
	    .stream = o->info.stream,
	    .deadline_ms = deadline_ms,
	};
	api_submit_cleanup(&sub);
	native = NULL;
	api_door_run(d, req, &dj, &api_openai_ops, o);
	o = NULL;
out:
	free(msg);
	json_decref(native);
	json_decref(body);
	api_openai_free(o);
}

void
api_openai_chat(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_openai_infer(req, arg, &api_openai_chat_ep);
}

void
api_openai_completions(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_openai_infer(req, arg, &api_openai_completions_ep);
}

void
api_openai_embeddings(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_openai_infer(req, arg, &api_openai_embeddings_ep);
}

/* --- Models -------------------------------------------------------------------------------- */

static void
api_openai_models_answer(struct vd_http_req *req, json_t *models, const char *id)
{
	json_t *tags = json_pack("{s:o}", "models", models);
	json_t *list = openai_models_json(tags, vd_now_wall_ms() / 1000);
	json_decref(tags);
	if (id == NULL) {
		vd_http_reply_json(req, 200, list);
		return;
	}
	/* One model: the name as listed, or without its ":latest". */
	char *wanted = strchr(id, ':') != NULL ? xstrdup(id) : xasprintf("%s:latest", id);
	size_t i;
	json_t *m;
	json_t *found = NULL;
	json_array_foreach(json_object_get(list, "data"), i, m)
	{
		const char *have = json_string_value(json_object_get(m, "id"));
		if (have != NULL && (strcmp(have, id) == 0 || strcmp(have, wanted) == 0)) {
			found = json_incref(m);
			break;
		}
	}
	json_decref(list);
	if (found != NULL) {
		vd_http_reply_json(req, 200, found);
	} else {
		char *msg = xasprintf("model \"%s\" not found", id);
		api_openai_reply_error(req, 404, msg, "model", "model_not_found");
		free(msg);
	}
	free(wanted);
}

static void
api_openai_models_error(struct vd_http_req *req, int status, const char *message, const char *id)
{
	(void)id;
	api_openai_reply_error(req, status, message, NULL, NULL);
}

static const struct api_listing_ops api_openai_models_ops = {
    .answer = api_openai_models_answer,
    .error = api_openai_models_error,
};

void
api_openai_models(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_nodes_listing(req, arg, "/api/tags", &api_openai_models_ops, NULL);
}

void
api_openai_model(struct vd_http_req *req, const char *path, void *arg)
{
	const char *id = path + strlen("/v1/models/");
	if (*id == '\0') {
		api_openai_models(req, path, arg);
		return;
	}
	api_nodes_listing(req, arg, "/api/tags", &api_openai_models_ops, id);
}
