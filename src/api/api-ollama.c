/*
 * api-ollama.c: vramd answers as Ollama (docs/api.md "Ollama-compatible API"). A client
 * of Ollama points at vramd and changes nothing else:
 *
 *   POST /api/generate, /api/chat, /api/embed, /api/embeddings
 *        become jobs attached to the connection (api-door.h): queued with the priority
 *        of X-Vramd-Priority, placed by the scheduler, run on a node, and the node's
 *        reply passed back as it comes, streamed (NDJSON, Ollama's default) or whole.
 *        load_duration and total_duration of the final object include the time the job
 *        waited in vramd's queue (for its model's load too), as Ollama's own do.
 *        An empty generate or chat is a load (the model is loaded for it and the node
 *        answers "load"); with keep_alive 0 it is an unload, done by vramd.
 *
 * A client's keep_alive never reaches the node (vramd loads with keep_alive -1 and
 * unloads itself): with CLIENT_KEEP_ALIVE=hint it keeps the model loaded at least that
 * long after the job, at most API_OLLAMA_KEEP_ALIVE_CAP x MODEL_KEEP_ALIVE, and never
 * against a load that needs the memory (sched_model.keep_until_ms). The rest of Ollama's
 * API is in api-ollama-admin.c.
 */
#include "api.h"

#include "api-door.h"
#include "api-parse.h"
#include "config.h"
#include "daemon.h"
#include "engine.h"
#include "fleet.h"
#include "http-util.h"
#include "httpd.h"
#include "log.h"
#include "node.h"
#include "registry.h"
#include "runner-opts.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* --- Rendering the node's reply as Ollama's -------------------------------------------- */

/* Adds the time the job waited in vramd to a final object's load and total durations. */
static void
api_ollama_add_wait(json_t *o, const struct job *job)
{
	json_int_t wait_ns = (json_int_t)job->wait_ms * 1000000;
	static const char *const keys[] = {"load_duration", "total_duration"};
	for (size_t i = 0; i < VD_ARRAY_LEN(keys); i++) {
		json_t *v = json_object_get(o, keys[i]);
		if (json_is_integer(v))
			json_integer_set(v, json_integer_value(v) + wait_ns);
	}
}

/* The line as it goes to the client: a final object gets the wait added, others pass
 * through as they are. */
static void
api_ollama_line(struct api_door *door, const char *line, size_t len)
{
	json_t *o = NULL;
	/* Only the last object says "done": true; parse nothing else. */
	if (memmem(line, len, "\"done\":true", 11) != NULL)
		o = json_loadb(line, len, JSON_DECODE_ANY, NULL);
	if (json_is_object(o)) {
		api_ollama_add_wait(o, api_door_job(door));
		char *text = vd_json_dumps_go(o); /* as Ollama writes it: Go's escapes */
		api_door_send(door, text, strlen(text));
		free(text);
	} else {
		api_door_send(door, line, len);
	}
	json_decref(o);
	api_door_send(door, "\n", 1);
}

static void
api_ollama_close(struct api_door *door)
{
	(void)door;
}

static void
api_ollama_body(struct api_door *door, const char *body, size_t len)
{
	json_t *o = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	struct vd_http_req *req = api_door_req(door);
	if (json_is_object(o)) {
		api_ollama_add_wait(o, api_door_job(door));
		vd_http_reply_json(req, 200, o);
		return;
	}
	json_decref(o);
	vd_http_req_set_header(req, "Content-Type", "application/json; charset=utf-8");
	vd_http_req_reply(req, 200, body, len);
}

static void
api_ollama_error(struct api_door *door, int status, const char *message)
{
	vd_http_reply_error(api_door_req(door), status, "%s", message);
}

/* Inside a stream, Ollama reports a failure as one more line: {"error": "..."}. */
static void
api_ollama_stream_error(struct api_door *door, const char *message)
{
	json_t *o = json_pack("{s:s}", "error", message);
	char *text = vd_json_dumps_go(o);
	api_door_send(door, text, strlen(text));
	api_door_send(door, "\n", 1);
	free(text);
	json_decref(o);
}

static const struct api_door_ops api_ollama_ops = {
    .line = api_ollama_line,
    .close = api_ollama_close,
    .body = api_ollama_body,
    .error = api_ollama_error,
    .stream_error = api_ollama_stream_error,
    .content_type = "application/x-ndjson",
};

/* --- Requests ----------------------------------------------------------------------------- */

/* What each inference endpoint is. */
struct api_ollama_endpoint {
	enum job_kind kind;
	const char *path;    /* node endpoint when not the kind's; NULL */
	bool streams;	     /* Ollama streams its reply unless "stream": false */
	const char *payload; /* the field that carries the work ("prompt", "messages", ...) */
	bool pull_hint;	     /* Ollama's 404 says "try pulling it first" (the embed handlers) */
};

static const struct api_ollama_endpoint api_ollama_generate_ep = {JOB_KIND_GENERATE, NULL, true,
								  "prompt", false};
static const struct api_ollama_endpoint api_ollama_chat_ep = {JOB_KIND_CHAT, NULL, true, "messages",
							      false};
static const struct api_ollama_endpoint api_ollama_embed_ep = {JOB_KIND_EMBED, NULL, false, "input",
							       true};
static const struct api_ollama_endpoint api_ollama_embeddings_ep = {
    JOB_KIND_EMBED, "/api/embeddings", false, "prompt", true};

/* Whether the request carries no work: a load (or, with keep_alive 0, an unload). */
static bool
api_ollama_is_empty(const json_t *body, const struct api_ollama_endpoint *ep)
{
	json_t *payload = json_object_get(body, ep->payload);
	if (ep->kind == JOB_KIND_EMBED)
		return false;
	if (ep->kind == JOB_KIND_CHAT)
		return payload == NULL || (json_is_array(payload) && json_array_size(payload) == 0);
	return (payload == NULL || (json_is_string(payload) && json_string_length(payload) == 0)) &&
	       json_object_get(body, "images") == NULL;
}

/* The most a client's keep_alive keeps a model after its job, in MODEL_KEEP_ALIVEs. */
#define API_OLLAMA_KEEP_ALIVE_CAP 4

/*
 * The request's keep_alive: *given says whether it has one, *ms its value (INT64_MAX:
 * forever). Returns 0, or -EINVAL with *cause in Ollama's words.
 */
static int
api_ollama_keep_alive(const json_t *body, bool *given, int64_t *ms, char **cause)
{
	json_t *k = json_object_get(body, "keep_alive");
	*given = k != NULL && !json_is_null(k);
	*ms = 0;
	return *given ? runner_opts_keep_alive(k, ms, cause) : 0;
}

/* What vramd makes of a client's keep_alive (CLIENT_KEEP_ALIVE): with hint, at most
 * API_OLLAMA_KEEP_ALIVE_CAP x MODEL_KEEP_ALIVE (forever is that cap); 0: nothing. */
static int64_t
api_ollama_keep_alive_hint(const struct daemon *d, int64_t ms)
{
	int64_t own_ms = config_int(d->config, CONFIG_MODEL_KEEP_ALIVE) * 1000;
	if (strcmp(config_str(d->config, CONFIG_CLIENT_KEEP_ALIVE), "hint") != 0 || own_ms == 0)
		return 0; /* ignored, or vramd never unloads idle models anyway */
	int64_t cap = own_ms * API_OLLAMA_KEEP_ALIVE_CAP;
	return ms > cap ? cap : ms;
}

/* The body checked as vramd's own submit would check it: only the fields vramd knows (the
 * node gets all of them), and a load request given the payload it lacks. */
static json_t *
api_ollama_check_body(const json_t *body, const struct api_ollama_endpoint *ep)
{
	json_t *check = json_object();
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)body, key, value)
	{
		if (api_submit_field_known(key) && strcmp(key, "stream") != 0 &&
		    strcmp(key, "keep_alive") != 0 && strcmp(key, "priority") != 0 &&
		    strcmp(key, "kind") != 0 && strcmp(key, "metadata") != 0)
			json_object_set(check, key, value);
	}
	json_object_set_new(check, "kind", json_string(job_kind_name(ep->kind)));
	if (ep->path != NULL) { /* /api/embeddings: "prompt" is its input */
		json_object_del(check, "prompt");
		json_object_set(check, "input", json_object_get(body, "prompt"));
	}
	if (api_ollama_is_empty(body, ep))
		json_object_set_new(check, ep->kind == JOB_KIND_CHAT ? "messages" : "prompt",
				    ep->kind == JOB_KIND_CHAT
					? json_pack("[{s:s,s:s}]", "role", "user", "content", "")
					: json_string(""));
	return check;
}

/* keep_alive 0 with no work: vramd unloads the model on every node (not a job). */
static void
api_ollama_unload(struct daemon *d, struct vd_http_req *req, const char *model,
		  const struct api_ollama_endpoint *ep)
{
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		char *cause = NULL;
		if (engine_model_unload(fleet_node(d->fleet, i)->engine, model, &cause) < 0) {
			vd_log(API, "unload of %s asked through the Ollama API refused: %s", model,
			       cause);
			free(cause);
		}
	}
	char at[64];
	vd_format_rfc3339_utc(vd_now_wall_ms() * 1000000, at, sizeof(at));
	json_t *o = json_pack("{s:s,s:s}", "model", model, "created_at", at);
	if (ep->kind == JOB_KIND_CHAT)
		json_object_set_new(o, "message",
				    json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
	else
		json_object_set_new(o, "response", json_string(""));
	json_object_set_new(o, "done", json_true());
	json_object_set_new(o, "done_reason", json_string("unload"));
	vd_http_reply_json(req, 200, o);
}

static void
api_ollama_infer(struct vd_http_req *req, struct daemon *d, const struct api_ollama_endpoint *ep)
{
	json_t *body = api_read_object(d, req);
	if (body == NULL)
		return;
	bool priority_given;
	int priority = api_door_priority(req, &priority_given);
	const char *model = json_string_value(json_object_get(body, "model"));
	json_t *stream = json_object_get(body, "stream");
	if (priority < 0) {
		vd_http_reply_error(req, 400,
				    "header X-Vramd-Priority must be high, normal or low (got %s)",
				    vd_http_req_header(req, "X-Vramd-Priority"));
		goto out;
	}
	int64_t deadline_ms;
	if (api_door_deadline(req, &deadline_ms) < 0) {
		vd_http_reply_error(
		    req, 400,
		    "header X-Vramd-Deadline must be a number of seconds, more than 0 "
		    "and at most %.0f (got %.64s)",
		    API_DEADLINE_S_MAX, vd_http_req_header(req, "X-Vramd-Deadline"));
		goto out;
	}
	if (model == NULL || *model == '\0') {
		vd_http_reply_error(req, 400, "model is required");
		goto out;
	}
	if (stream != NULL && !json_is_boolean(stream)) {
		vd_http_reply_error(req, 400, "field 'stream' must be a boolean");
		goto out;
	}
	struct registry *reg = fleet_registry_for(d->fleet, model);
	const struct registry_model *rm = registry_find(reg, model);
	bool keep_alive_given;
	int64_t keep_alive_ms;
	char *why = NULL;
	if (api_ollama_keep_alive(body, &keep_alive_given, &keep_alive_ms, &why) < 0) {
		vd_http_reply_error(req, 400, "%s", why);
		free(why);
		goto out;
	}
	if (fleet_models_known(d->fleet) && (rm == NULL || !rm->installed)) {
		/* Ollama's own words, which differ between its handlers. */
		if (ep->pull_hint)
			vd_http_reply_error(req, 404,
					    "model \"%s\" not found, try pulling it first", model);
		else
			vd_http_reply_error(req, 404, "model '%s' not found", model);
		goto out;
	}
	if (rm != NULL && api_ollama_is_empty(body, ep) && keep_alive_given && keep_alive_ms == 0) {
		api_ollama_unload(d, req, rm->name, ep);
		goto out;
	}
	json_t *check = api_ollama_check_body(body, ep);
	json_object_set_new(check, "model", json_string(model));
	char *urls = NULL;
	struct api_submit_env env = {
	    .registry = reg,
	    .models_known = fleet_models_known(d->fleet),
	    .backend_url = urls,
	};
	struct api_submit sub;
	char *msg = NULL;
	int status = api_submit_parse(check, &env, &sub, &msg);
	json_decref(check);
	if (status != 0) {
		vd_http_reply_error(req, status, "%s", msg);
		free(msg);
		goto out;
	}
	/* The node gets the client's fields as they are; vramd decides model, stream and
	 * keep_alive (its own keep-alive policy holds the model). */
	json_t *request = json_deep_copy(body);
	json_object_del(request, "model");
	json_object_del(request, "stream");
	json_object_del(request, "keep_alive");
	struct api_door_job dj = {
	    .model = sub.model->name,
	    .kind = ep->kind,
	    .priority = (enum job_priority)priority,
	    .priority_given = priority_given,
	    .request = request,
	    .stream = ep->streams && !json_is_false(stream),
	    .path = ep->path,
	    .keep_alive_ms = api_ollama_keep_alive_hint(d, keep_alive_ms),
	    .deadline_ms = deadline_ms,
	};
	api_submit_cleanup(&sub);
	api_door_run(d, req, &dj, &api_ollama_ops, NULL);
out:
	json_decref(body);
}

void
api_ollama_generate(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_ollama_infer(req, arg, &api_ollama_generate_ep);
}

void
api_ollama_chat(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_ollama_infer(req, arg, &api_ollama_chat_ep);
}

void
api_ollama_embed(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_ollama_infer(req, arg, &api_ollama_embed_ep);
}

void
api_ollama_embeddings(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	api_ollama_infer(req, arg, &api_ollama_embeddings_ep);
}
