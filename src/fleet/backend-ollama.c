/*
 * backend-ollama.c: the Ollama inference backend (struct backend_ops backend_ollama_ops).
 * Each operation is one or a few HTTP calls through httpc on the daemon's loop:
 *
 *   version         GET  /api/version
 *   list_installed  GET  /api/tags, then POST /api/show for each model not seen before:
 *                   its architecture (to size the KV cache) and, for older servers whose
 *                   tags reply carries none, its capabilities. Answers are cached by name
 *                   and digest, so a model is shown once; if /api/show fails or has no
 *                   capabilities, they are inferred from the family (bert-like: embedding).
 *   list_running    GET  /api/ps
 *   load            POST /api/generate {"model","keep_alive":-1,"options"} (success:
 *                   "done":true, done_reason "load"); embedding-only models, or a generate
 *                   refused with "does not support generate", go through POST /api/embed
 *                   {"model","input":[],"keep_alive":-1}.
 *   unload          POST /api/generate {"model","keep_alive":0}, falling back to /api/embed
 *                   {"model","input":[],"keep_alive":0} the same way.
 *   run             POST /api/generate | /api/chat | /api/embed with the job's request plus
 *                   "model", "stream":false and "keep_alive":-1, so Ollama's own timer never
 *                   unloads a model behind vramd's back.
 *
 * Errors are classified once, in ollama_classify(): an {"error"} reply is REMOTE with
 * Ollama's message (503 "server busy" is UNAVAILABLE), connection failures and timeouts
 * are UNAVAILABLE, bad or cut-off replies are PROTOCOL naming the server. Every reply is
 * capped (control calls 4 MiB, runs 64 MiB by default) and every call has a timeout.
 *
 * Invariants: every call in flight is on priv->calls; a call owns at most one main HTTP
 * request (plus /api/show requests while listing) and possibly a zero-delay timer used to
 * report failures found before any I/O, so callbacks never run inside a start function.
 * A call is unlinked and freed right after its callback returns, or on cancel.
 */
#include "backend.h"

#include "buf.h"
#include "httpc.h"
#include "log.h"
#include "ollama-parse.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define OLLAMA_CONTROL_TIMEOUT_MS (10 * 1000)
#define OLLAMA_LOAD_TIMEOUT_MS	  (10 * 60 * 1000)
#define OLLAMA_RUN_TIMEOUT_MS	  (30 * 60 * 1000)
#define OLLAMA_MAX_CONTROL_REPLY  (4u << 20)
#define OLLAMA_MAX_RUN_REPLY	  (64u << 20)
#define OLLAMA_MAX_ERROR_TEXT	  200	     /* of a non-JSON error body quoted in a message */
#define OLLAMA_MAX_LINE		  (4u << 20) /* a pass-through reply's line kept for metrics */

enum ollama_op { OLLAMA_VERSION, OLLAMA_TAGS, OLLAMA_PS, OLLAMA_LOAD, OLLAMA_UNLOAD, OLLAMA_RUN };

struct ollama_caps_entry {
	char *key; /* "name@digest" */
	unsigned caps;
	bool reported;
	struct backend_model_arch arch;
};

struct ollama {
	struct backend *b;
	struct httpc *httpc;
	int64_t control_timeout_ms, load_timeout_ms, run_timeout_ms;
	size_t max_control_reply, max_run_reply;
	struct backend_call *calls;
	struct ollama_caps_entry *caps_cache;
	size_t ncaps;
};

struct ollama_show {
	struct backend_call *call;
	size_t index; /* into call->list.models */
	struct httpc_request *http;
};

struct backend_call {
	struct ollama *o;
	struct backend_call *prev, *next;
	enum ollama_op op;
	union {
		backend_version_cb *version;
		backend_models_cb *models;
		backend_running_cb *running;
		backend_done_cb *done;
		backend_run_cb *run;
	} cb;
	void *arg;
	int64_t started_ms;
	int64_t timeout_ms;
	size_t max_reply;
	const char *path; /* endpoint of the request in flight (a string literal) */
	struct httpc_request *http;
	struct event *defer; /* reports defer_status without I/O */
	enum backend_error defer_error;
	char *defer_message;

	/* load / unload */
	char *model;
	json_t *options; /* placement and load options, or NULL */
	bool embed_path; /* going through /api/embed */

	/* run */
	enum job_kind kind;
	/* a pass-through run (on_chunk set): the reply goes to on_chunk as it comes */
	void (*on_chunk)(const char *data, size_t len, void *arg);
	bool raw_path;		/* path given by the caller: no metrics to read */
	struct vd_buf line;	/* the reply's line being received */
	struct vd_buf last;	/* the last complete non-blank line (metrics, errors) */
	struct vd_buf err_body; /* the body of a non-2xx reply */

	/* list_installed */
	struct backend_model_list list;
	struct ollama_show *shows;
	size_t nshows, shows_pending;
};

static void ollama_http_cb(const struct httpc_result *r, void *arg);

static struct ollama *
ollama_priv(struct backend *b)
{
	return b->priv;
}

static struct backend_call *
ollama_call_new(struct backend *b, enum ollama_op op, void *arg)
{
	struct ollama *o = ollama_priv(b);
	struct backend_call *call = xcalloc(1, sizeof(*call));

	call->o = o;
	call->op = op;
	call->arg = arg;
	call->started_ms = vd_now_mono_ms();
	call->timeout_ms = o->control_timeout_ms;
	call->max_reply = o->max_control_reply;
	call->next = o->calls;
	if (call->next)
		call->next->prev = call;
	o->calls = call;
	return call;
}

/* Cancels whatever the call has in flight, unlinks and frees it. No callback. */
static void
ollama_call_free(struct backend_call *call)
{
	struct ollama *o = call->o;

	httpc_cancel(call->http);
	for (size_t i = 0; i < call->nshows; i++)
		httpc_cancel(call->shows[i].http);
	if (call->defer)
		event_free(call->defer);
	if (call->prev)
		call->prev->next = call->next;
	else
		o->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	free(call->defer_message);
	vd_buf_cleanup(&call->line);
	vd_buf_cleanup(&call->last);
	vd_buf_cleanup(&call->err_body);
	free(call->model);
	json_decref(call->options);
	backend_model_list_cleanup(&call->list);
	free(call->shows);
	free(call);
}

/* Calls the operation's callback with a failure status (no payload), then frees the call. */
static void
ollama_finish_error(struct backend_call *call, const struct backend_status *st)
{
	switch (call->op) {
	case OLLAMA_VERSION:
		call->cb.version(st, NULL, call->arg);
		break;
	case OLLAMA_TAGS:
		call->cb.models(st, NULL, call->arg);
		break;
	case OLLAMA_PS:
		call->cb.running(st, NULL, call->arg);
		break;
	case OLLAMA_LOAD:
	case OLLAMA_UNLOAD:
		call->cb.done(st, call->arg);
		break;
	case OLLAMA_RUN:
		call->cb.run(st, NULL, call->arg);
		break;
	}
	ollama_call_free(call);
}

static void
ollama_defer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct backend_call *call = arg;
	(void)fd;
	(void)events;
	struct backend_status st = {
	    .error = call->defer_error,
	    .message = call->defer_message,
	    .elapsed_ms = vd_now_mono_ms() - call->started_ms,
	};
	ollama_finish_error(call, &st);
}

/* Reports a failure found before any I/O from the loop, never from the start function.
 * Steals message. */
static void
ollama_fail_later(struct backend_call *call, enum backend_error error, char *message)
{
	call->defer_error = error;
	call->defer_message = message;
	call->defer = evtimer_new(httpc_base(call->o->httpc), ollama_defer_cb, call);
	if (!call->defer)
		abort();
	struct timeval now = {0, 0};
	evtimer_add(call->defer, &now);
}

static bool
ollama_blank(const struct vd_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] != ' ' && b->data[i] != '\t' && b->data[i] != '\r')
			return false;
	return true;
}

/* A pass-through run's reply body as it arrives: 2xx pieces go to the caller at once and
 * the last line is kept for the metrics; an error reply is kept for its message. */
static bool
ollama_stream_data(int status, const char *data, size_t len, void *arg)
{
	struct backend_call *call = arg;
	if (status < 200 || status >= 300) {
		vd_buf_append(&call->err_body, data, len); /* capped: the rest is dropped */
		return true;
	}
	call->on_chunk(data, len, call->arg);
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (vd_buf_append(&call->line, &data[i], 1) < 0)
				vd_buf_reset(
				    &call->line); /* a line too long to keep: not metrics */
			continue;
		}
		if (!ollama_blank(&call->line)) {
			struct vd_buf t = call->last;
			call->last = call->line;
			call->line = t;
		}
		vd_buf_reset(&call->line);
	}
	return true;
}

/* Starts the call's HTTP request: GET when body is NULL, else POST of body (stolen). */
static void
ollama_request(struct backend_call *call, const char *path, json_t *body)
{
	struct ollama *o = call->o;
	static const char *const headers[] = {"Accept: application/json", "User-Agent: vramd/0.1",
					      NULL};
	char *url = xasprintf("%s%s", o->b->url, path);
	/* Options as the client wrote them: 0.8, not 0.80000000000000004. */
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

	if (body && !text)
		abort(); /* jansson fails only on allocation (or invalid UTF-8 it produced) */
	call->path = path;
	call->http = httpc_start(o->httpc,
				 &(struct httpc_options){
				     .method = body ? "POST" : "GET",
				     .url = url,
				     .body = text,
				     .body_len = text ? strlen(text) : 0,
				     .headers = headers,
				     .timeout_ms = call->timeout_ms,
				     .max_reply_bytes = call->max_reply,
				     .loopback_host = true,
				     .on_data = call->on_chunk != NULL ? ollama_stream_data : NULL,
				     .data_arg = call,
				 },
				 ollama_http_cb, call);
	free(text);
	free(url);
	json_decref(body);
}

/*
 * Classifies a finished HTTP request. Returns true when it is a 2xx reply whose body the
 * caller should parse; otherwise fills *st (with *message owned by the caller) and
 * returns false.
 */
static bool
ollama_classify(const struct backend_call *call, const struct httpc_result *r,
		struct backend_status *st, char **message)
{
	const char *url = call->o->b->url;

	st->http_status = r->status;
	st->timed_out = r->timed_out;
	st->elapsed_ms = vd_now_mono_ms() - call->started_ms;
	*message = NULL;
	switch (r->error) {
	case HTTPC_OK:
		break;
	case HTTPC_ERR_CONNECT:
		st->error = BACKEND_ERR_UNAVAILABLE;
		*message = xasprintf("ollama at %s is unreachable: %s", url, r->error_message);
		return false;
	case HTTPC_ERR_TIMEOUT:
		st->error = BACKEND_ERR_UNAVAILABLE;
		*message = xasprintf("ollama at %s did not answer %s within %lld ms: %s", url,
				     call->path, (long long)call->timeout_ms, r->error_message);
		return false;
	case HTTPC_ERR_TOO_LARGE:
		st->error = BACKEND_ERR_PROTOCOL;
		*message = xasprintf("ollama at %s: reply to %s is too large (%s)", url, call->path,
				     r->error_message);
		return false;
	case HTTPC_ERR_TRANSPORT:
		/* Nothing received: the server went away (retry); part of a reply: cut off. */
		st->error = r->body_len == 0 && r->streamed_bytes == 0 ? BACKEND_ERR_UNAVAILABLE
								       : BACKEND_ERR_PROTOCOL;
		*message =
		    xasprintf("ollama at %s: %s to %s (%s)", url,
			      st->error == BACKEND_ERR_UNAVAILABLE ? "no reply" : "reply cut off",
			      call->path, r->error_message);
		return false;
	}
	if (r->status >= 200 && r->status < 300)
		return true;

	char *error = ollama_parse_error(r->body, r->body_len);
	if (error) {
		*message = error;
	} else if (r->body_len == 0) {
		*message = xasprintf("ollama at %s answered %s with status %d and no body%s", url,
				     call->path, r->status,
				     r->status == 403 ? " (Host header refused?)" : "");
	} else {
		char text[OLLAMA_MAX_ERROR_TEXT + 1];
		vd_strlcpy(text, r->body, sizeof(text));
		for (char *p = text; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		*message = xasprintf("ollama at %s answered %s with status %d: %s", url, call->path,
				     r->status, text);
	}
	/* 503 is Ollama's "server busy, please try again": retry like a connection failure. */
	st->error = r->status == 503 ? BACKEND_ERR_UNAVAILABLE : BACKEND_ERR_REMOTE;
	return false;
}

static void
ollama_finish_protocol(struct backend_call *call, struct backend_status *st, const char *cause)
{
	char *message =
	    xasprintf("ollama at %s: invalid reply to %s: %s", call->o->b->url, call->path, cause);
	st->error = BACKEND_ERR_PROTOCOL;
	st->message = message;
	ollama_finish_error(call, st);
	free(message);
}

/* ---- capabilities cache (list_installed) ---- */

static struct ollama_caps_entry *
ollama_caps_find(struct ollama *o, const struct backend_model_info *m)
{
	for (size_t i = 0; i < o->ncaps; i++) {
		const char *key = o->caps_cache[i].key;
		size_t nlen = strlen(m->name);
		if (strncmp(key, m->name, nlen) == 0 && key[nlen] == '@' &&
		    strcmp(key + nlen + 1, m->digest) == 0)
			return &o->caps_cache[i];
	}
	return NULL;
}

static void
ollama_caps_store(struct ollama *o, const struct backend_model_info *m)
{
	struct ollama_caps_entry *e = ollama_caps_find(o, m);
	if (!e) {
		o->caps_cache = xreallocarray(o->caps_cache, o->ncaps + 1, sizeof(*o->caps_cache));
		e = &o->caps_cache[o->ncaps++];
		e->key = xasprintf("%s@%s", m->name, m->digest);
	}
	e->caps = m->capabilities;
	e->reported = m->capabilities_reported;
	e->arch = m->arch;
}

static void
ollama_tags_finish(struct backend_call *call)
{
	struct backend_status st = {
	    .error = BACKEND_OK,
	    .http_status = 200,
	    .elapsed_ms = vd_now_mono_ms() - call->started_ms,
	};
	call->cb.models(&st, &call->list, call->arg);
	ollama_call_free(call);
}

static void
ollama_show_cb(const struct httpc_result *r, void *arg)
{
	struct ollama_show *show = arg;
	struct backend_call *call = show->call;
	struct backend_model_info *m = &call->list.models[show->index];
	unsigned caps;
	char *cause = NULL;

	show->http = NULL;
	if (r->error == HTTPC_OK && r->status == 200) {
		int rc = ollama_parse_show_capabilities(r->body, r->body_len, &caps, &cause);
		if (rc == 0 && !m->capabilities_reported) {
			m->capabilities = caps;
			m->capabilities_reported = true;
		}
		char *arch_cause = NULL;
		if (ollama_parse_show_arch(r->body, r->body_len, &m->arch, &arch_cause) < 0)
			vd_debug(MONITOR, "ollama at %s: /api/show %s: %s", call->o->b->url,
				 m->name, arch_cause);
		free(arch_cause);
		/* Cached even without a list (older server): the family guess stands. */
		if (rc == 0 || rc == -ENOENT)
			ollama_caps_store(call->o, m);
		free(cause);
	} else {
		vd_debug(MONITOR, "ollama at %s: /api/show %s failed (status %d, %s)",
			 call->o->b->url, m->name, r->status,
			 r->error_message ? r->error_message : "error reply");
	}
	if (--call->shows_pending == 0)
		ollama_tags_finish(call);
}

/* The tags reply is parsed into call->list: fill capabilities from the cache, and ask
 * /api/show for the rest. */
static void
ollama_tags_parsed(struct backend_call *call)
{
	struct ollama *o = call->o;

	call->shows = xcalloc(call->list.n ? call->list.n : 1, sizeof(*call->shows));
	for (size_t i = 0; i < call->list.n; i++) {
		struct backend_model_info *m = &call->list.models[i];
		struct ollama_caps_entry *e = ollama_caps_find(o, m);
		if (e) {
			if (!m->capabilities_reported) {
				m->capabilities = e->caps;
				m->capabilities_reported = e->reported;
			}
			m->arch = e->arch;
			continue;
		}
		struct ollama_show *show = &call->shows[call->nshows++];
		show->call = call;
		show->index = i;
		json_t *body = json_pack("{s:s}", "model", m->name);
		char *text = json_dumps(body, JSON_COMPACT);
		char *url = xasprintf("%s/api/show", o->b->url);
		static const char *const headers[] = {"Accept: application/json", NULL};
		show->http = httpc_start(o->httpc,
					 &(struct httpc_options){
					     .method = "POST",
					     .url = url,
					     .body = text,
					     .body_len = strlen(text),
					     .headers = headers,
					     .timeout_ms = o->control_timeout_ms,
					     .max_reply_bytes = o->max_control_reply,
					     .loopback_host = true,
					 },
					 ollama_show_cb, show);
		call->shows_pending++;
		free(url);
		free(text);
		json_decref(body);
	}
	if (call->shows_pending == 0)
		ollama_tags_finish(call);
}

/* ---- the main HTTP callback ---- */

static json_t *ollama_load_body(const struct backend_call *call, int64_t keep_alive);

static bool
ollama_generate_refused(const struct backend_status *st, const char *message)
{
	return st->error == BACKEND_ERR_REMOTE && st->http_status == 400 && message &&
	       strstr(message, "does not support generate");
}

/* The end of a pass-through run: the metrics (and an error Ollama sent as the last line
 * of a streamed reply) from the last line. */
static void
ollama_stream_done(struct backend_call *call, struct backend_status *st)
{
	if (!ollama_blank(&call->line)) { /* a last line without its newline */
		struct vd_buf t = call->last;
		call->last = call->line;
		call->line = t;
	}
	char *error = ollama_parse_error(vd_buf_str(&call->last), call->last.len);
	if (error != NULL) {
		st->error = BACKEND_ERR_REMOTE;
		st->message = error;
		ollama_finish_error(call, st);
		free(error);
		return;
	}
	struct backend_run_result result = {0};
	struct ollama_run_reply reply;
	char *cause = NULL;
	bool parsed =
	    !call->raw_path && ollama_parse_run_reply(call->kind, vd_buf_str(&call->last),
						      call->last.len, &reply, &cause) == 0;
	memset(&result.metrics, 0xff, sizeof(result.metrics)); /* -1: not said */
	if (parsed) {
		result.metrics = reply.metrics;
		result.done_reason = reply.done_reason;
	}
	call->cb.run(st, &result, call->arg);
	if (parsed)
		ollama_run_reply_cleanup(&reply);
	free(cause);
	ollama_call_free(call);
}

static void
ollama_http_cb(const struct httpc_result *r, void *arg)
{
	struct backend_call *call = arg;
	struct backend_status st = {0};
	char *message = NULL;
	char *cause = NULL;

	call->http = NULL;
	struct httpc_result streamed;
	if (call->on_chunk != NULL) {
		/* The error reply was kept aside; a 2xx body went to the caller. */
		streamed = *r;
		streamed.body = vd_buf_str(&call->err_body);
		streamed.body_len = call->err_body.len;
		r = &streamed;
	}
	if (!ollama_classify(call, r, &st, &message)) {
		/* A model without generate (embedding-only): load/unload through /api/embed. */
		if ((call->op == OLLAMA_LOAD || call->op == OLLAMA_UNLOAD) && !call->embed_path &&
		    ollama_generate_refused(&st, message)) {
			free(message);
			call->embed_path = true;
			ollama_request(call, "/api/embed",
				       ollama_load_body(call, call->op == OLLAMA_LOAD ? -1 : 0));
			return;
		}
		st.message = message;
		ollama_finish_error(call, &st);
		free(message);
		return;
	}

	switch (call->op) {
	case OLLAMA_VERSION: {
		char *version = NULL;
		if (ollama_parse_version(r->body, r->body_len, &version, &cause) < 0)
			break;
		call->cb.version(&st, version, call->arg);
		free(version);
		ollama_call_free(call);
		return;
	}
	case OLLAMA_TAGS:
		if (ollama_parse_tags(r->body, r->body_len, &call->list, &cause) < 0)
			break;
		ollama_tags_parsed(call);
		return;
	case OLLAMA_PS: {
		struct backend_running_list list;
		if (ollama_parse_ps(r->body, r->body_len, &list, &cause) < 0)
			break;
		call->cb.running(&st, &list, call->arg);
		backend_running_list_cleanup(&list);
		ollama_call_free(call);
		return;
	}
	case OLLAMA_LOAD:
	case OLLAMA_UNLOAD:
		if (ollama_parse_load_reply(r->body, r->body_len, &cause) < 0)
			break;
		call->cb.done(&st, call->arg);
		ollama_call_free(call);
		return;
	case OLLAMA_RUN: {
		if (call->on_chunk != NULL) {
			ollama_stream_done(call, &st);
			return;
		}
		struct ollama_run_reply reply;
		if (ollama_parse_run_reply(call->kind, r->body, r->body_len, &reply, &cause) < 0)
			break;
		struct backend_run_result result = {
		    .result = reply.result,
		    .metrics = reply.metrics,
		    .done_reason = reply.done_reason,
		};
		reply.result = NULL; /* handed to result; the callback may steal it */
		call->cb.run(&st, &result, call->arg);
		json_decref(result.result);
		ollama_run_reply_cleanup(&reply);
		ollama_call_free(call);
		return;
	}
	}
	ollama_finish_protocol(call, &st, cause ? cause : "unusable reply");
	free(cause);
}

/* ---- operations ---- */

static struct backend_call *
ollama_version(struct backend *b, backend_version_cb *cb, void *arg)
{
	struct backend_call *call = ollama_call_new(b, OLLAMA_VERSION, arg);
	call->cb.version = cb;
	ollama_request(call, "/api/version", NULL);
	return call;
}

static struct backend_call *
ollama_list_installed(struct backend *b, backend_models_cb *cb, void *arg)
{
	struct backend_call *call = ollama_call_new(b, OLLAMA_TAGS, arg);
	call->cb.models = cb;
	ollama_request(call, "/api/tags", NULL);
	return call;
}

static struct backend_call *
ollama_list_running(struct backend *b, backend_running_cb *cb, void *arg)
{
	struct backend_call *call = ollama_call_new(b, OLLAMA_PS, arg);
	call->cb.running = cb;
	ollama_request(call, "/api/ps", NULL);
	return call;
}

/*
 * The options object for a placement merged over given options (NULL when there is
 * nothing to send). CPU: num_gpu 0 (main_gpu dropped). GPU N: main_gpu N (a given
 * num_gpu 0 dropped, since vramd placed the model on a GPU).
 */
static json_t *
ollama_placement_options(const json_t *given, int placement)
{
	json_t *options = json_is_object(given) ? json_copy((json_t *)given) : NULL;

	if (placement == BACKEND_PLACE_AUTO)
		return options;
	if (!options)
		options = json_object();
	if (placement == BACKEND_PLACE_CPU) {
		json_object_del(options, "main_gpu");
		json_object_set_new(options, "num_gpu", json_integer(0));
	} else {
		json_t *num_gpu = json_object_get(options, "num_gpu");
		if (json_is_integer(num_gpu) && json_integer_value(num_gpu) == 0)
			json_object_del(options, "num_gpu");
		json_object_set_new(options, "main_gpu", json_integer(placement));
	}
	return options;
}

/* The body of a load (keep_alive -1) or unload (keep_alive 0), for call->embed_path. */
static json_t *
ollama_load_body(const struct backend_call *call, int64_t keep_alive)
{
	json_t *body = json_object();
	json_object_set_new(body, "model", json_string(call->model));
	if (call->embed_path)
		json_object_set_new(body, "input", json_array());
	json_object_set_new(body, "keep_alive", json_integer(keep_alive));
	if (call->options && keep_alive != 0)
		json_object_set(body, "options", call->options);
	return body;
}

static struct backend_call *
ollama_load_or_unload(struct backend *b, enum ollama_op op, const struct backend_load_request *req,
		      backend_done_cb *cb, void *arg)
{
	struct ollama *o = ollama_priv(b);
	struct backend_call *call = ollama_call_new(b, op, arg);

	call->cb.done = cb;
	call->model = xstrdup(req->model ? req->model : "");
	call->embed_path = req->embedding_only;
	if (op == OLLAMA_LOAD) {
		call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : o->load_timeout_ms;
		call->options = ollama_placement_options(req->options, req->placement);
	} else {
		call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : o->control_timeout_ms;
	}
	if (!*call->model) {
		ollama_fail_later(call, BACKEND_ERR_REMOTE, xstrdup("no model given"));
		return call;
	}
	/* Unload goes through generate first even for embedding models: Ollama checks for an
	 * unload before capabilities, and an embed with keep_alive 0 would load the model. */
	if (op == OLLAMA_UNLOAD)
		call->embed_path = false;
	ollama_request(call, call->embed_path ? "/api/embed" : "/api/generate",
		       ollama_load_body(call, op == OLLAMA_LOAD ? -1 : 0));
	return call;
}

static struct backend_call *
ollama_load(struct backend *b, const struct backend_load_request *req, backend_done_cb *cb,
	    void *arg)
{
	return ollama_load_or_unload(b, OLLAMA_LOAD, req, cb, arg);
}

static struct backend_call *
ollama_unload(struct backend *b, const struct backend_load_request *req, backend_done_cb *cb,
	      void *arg)
{
	return ollama_load_or_unload(b, OLLAMA_UNLOAD, req, cb, arg);
}

static struct backend_call *
ollama_run(struct backend *b, const struct backend_run_request *req, backend_run_cb *cb, void *arg)
{
	static const char *const paths[JOB_NKINDS] = {
	    [JOB_KIND_GENERATE] = "/api/generate",
	    [JOB_KIND_CHAT] = "/api/chat",
	    [JOB_KIND_EMBED] = "/api/embed",
	};
	struct ollama *o = ollama_priv(b);
	struct backend_call *call = ollama_call_new(b, OLLAMA_RUN, arg);

	call->cb.run = cb;
	call->kind = req->kind;
	call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : o->run_timeout_ms;
	call->max_reply = o->max_run_reply;
	call->on_chunk = req->on_chunk;
	call->raw_path = req->path != NULL;
	vd_buf_init(&call->line, OLLAMA_MAX_LINE);
	vd_buf_init(&call->last, OLLAMA_MAX_LINE);
	vd_buf_init(&call->err_body, OLLAMA_MAX_CONTROL_REPLY);
	if ((int)req->kind < 0 || req->kind >= JOB_NKINDS) {
		ollama_fail_later(call, BACKEND_ERR_REMOTE,
				  xasprintf("unknown job kind %d", (int)req->kind));
		return call;
	}
	if (!req->model || !*req->model) {
		ollama_fail_later(call, BACKEND_ERR_REMOTE, xstrdup("no model given"));
		return call;
	}
	if (req->request && !json_is_object(req->request)) {
		ollama_fail_later(call, BACKEND_ERR_REMOTE,
				  xstrdup("the job's request is not a JSON object"));
		return call;
	}

	/* model first, then the job's fields, then what vramd decides. */
	json_t *body = json_object();
	json_object_set_new(body, "model", json_string(req->model));
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)req->request, key, value)
	{
		if (strcmp(key, "model") != 0 && strcmp(key, "stream") != 0 &&
		    strcmp(key, "keep_alive") != 0 && strcmp(key, "options") != 0)
			json_object_set(body, key, value);
	}
	json_object_set_new(body, "stream", json_boolean(req->on_chunk != NULL && req->stream));
	json_object_set_new(body, "keep_alive", json_integer(-1));
	json_t *options =
	    ollama_placement_options(json_object_get(req->request, "options"), req->placement);
	if (options)
		json_object_set_new(body, "options", options);
	ollama_request(call, req->path != NULL ? req->path : paths[req->kind], body);
	return call;
}

static void
ollama_cancel(struct backend_call *call)
{
	ollama_call_free(call);
}

static int
ollama_init(struct backend *b, const struct backend_config *config, char **cause)
{
	(void)cause;
	struct ollama *o = xcalloc(1, sizeof(*o));
	o->b = b;
	o->httpc = config->httpc;
	o->control_timeout_ms =
	    config->control_timeout_ms > 0 ? config->control_timeout_ms : OLLAMA_CONTROL_TIMEOUT_MS;
	o->load_timeout_ms =
	    config->load_timeout_ms > 0 ? config->load_timeout_ms : OLLAMA_LOAD_TIMEOUT_MS;
	o->run_timeout_ms =
	    config->run_timeout_ms > 0 ? config->run_timeout_ms : OLLAMA_RUN_TIMEOUT_MS;
	o->max_control_reply = config->max_control_reply_bytes ? config->max_control_reply_bytes
							       : OLLAMA_MAX_CONTROL_REPLY;
	o->max_run_reply =
	    config->max_run_reply_bytes ? config->max_run_reply_bytes : OLLAMA_MAX_RUN_REPLY;
	b->priv = o;
	return 0;
}

static void
ollama_free(struct backend *b)
{
	struct ollama *o = ollama_priv(b);
	if (!o)
		return;
	while (o->calls)
		ollama_call_free(o->calls);
	for (size_t i = 0; i < o->ncaps; i++)
		free(o->caps_cache[i].key);
	free(o->caps_cache);
	free(o);
	b->priv = NULL;
}

const struct backend_ops backend_ollama_ops = {
    .name = "ollama",
    .init = ollama_init,
    .free = ollama_free,
    .version = ollama_version,
    .list_installed = ollama_list_installed,
    .list_running = ollama_list_running,
    .load = ollama_load,
    .unload = ollama_unload,
    .run = ollama_run,
    .cancel = ollama_cancel,
};
