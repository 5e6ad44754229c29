/*
 * test-backend-ollama.c: the Ollama backend against an in-process fake Ollama (evhttp on
 * the same loop) that records every request, plus the pure reply parsers of
 * ollama-parse.h on hand-written replies shaped like the reference's.
 *
 * The fake's models: "llama3.2" (normal), "embedder" (refuses generate like an
 * embedding-only model), "missing" (404), "busy" (503), "garbage" (200 with a non-JSON
 * body), "truncated" (200 with half a JSON object), "huge" (a 1 MiB response). A second,
 * raw server promises a 1000-byte reply, sends part of it and closes the connection.
 */
#include "backend.h"
#include "httpc.h"
#include "ollama-parse.h"
#include "util.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_RECORDED 16

struct recorded {
	char method[8];
	char path[64];
	char *body;
	char host[64];
};

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	int port;
	char url[64];
	int silent_fd; /* listens, never accepts: timeouts */
	char silent_url[64];
	struct evconnlistener *cutoff; /* replies part of a body, then closes */
	char cutoff_url[64];
	struct httpc *httpc;
	struct backend *backend;
	struct event *watchdog;
	struct recorded rec[MAX_RECORDED];
	int nrec;
	int shows; /* /api/show requests seen */
	const char *tags_reply;
	const char *ps_reply;
};

static int
socket_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void
reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json; charset=utf-8");
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
	evbuffer_free(out);
}

static void
fake_generate_or_chat(struct fixture *fx, struct evhttp_request *req, json_t *body, bool chat)
{
	(void)fx;
	const char *model = json_string_value(json_object_get(body, "model"));
	json_t *ka = json_object_get(body, "keep_alive");
	const char *prompt = json_string_value(json_object_get(body, "prompt"));
	json_t *messages = json_object_get(body, "messages");
	bool empty = chat ? json_array_size(messages) == 0 : (!prompt || !*prompt);
	char buf[512];

	if (!model || strcmp(model, "missing") == 0) {
		snprintf(buf, sizeof(buf), "{\"error\":\"model '%s' not found\"}",
			 model ? model : "");
		reply(req, 404, buf);
	} else if (strcmp(model, "busy") == 0) {
		reply(req, 503,
		      "{\"error\":\"server busy, please try again.  maximum pending requests "
		      "exceeded\"}");
	} else if (strcmp(model, "embedder") == 0) {
		reply(req, 400, "{\"error\":\"\\\"embedder\\\" does not support generate\"}");
	} else if (strcmp(model, "garbage") == 0) {
		reply(req, 200, "<html>proxy error</html>");
	} else if (strcmp(model, "truncated") == 0) {
		reply(req, 200,
		      "{\"model\":\"truncated\",\"created_at\":\"2024-09-12T21:17:29Z\",\"resp");
	} else if (strcmp(model, "huge") == 0) {
		size_t n = 1u << 20;
		char *big = xmalloc(n + 100);
		int k = snprintf(big, n + 100, "{\"model\":\"huge\",\"response\":\"");
		memset(big + k, 'a', n);
		snprintf(big + k + n, 100, "\",\"done\":true}");
		reply(req, 200, big);
		free(big);
	} else if (empty && json_is_integer(ka) && json_integer_value(ka) == 0) {
		snprintf(
		    buf, sizeof(buf),
		    chat ? "{\"model\":\"%s\",\"created_at\":\"2024-09-12T03:54:03.516566Z\","
			   "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
			   "\"done_reason\":\"unload\"}"
			 : "{\"model\":\"%s\",\"created_at\":\"2024-09-12T03:54:03.516566Z\","
			   "\"response\":\"\",\"done\":true,\"done_reason\":\"unload\"}",
		    model);
		reply(req, 200, buf);
	} else if (empty) {
		snprintf(buf, sizeof(buf),
			 "{\"model\":\"%s\",\"created_at\":\"2024-09-12T21:17:29.110811Z\","
			 "\"response\":\"\",\"done\":true,\"done_reason\":\"load\"}",
			 model);
		reply(req, 200, buf);
	} else if (chat) {
		json_t *last = json_array_get(messages, json_array_size(messages) - 1);
		json_t *r = json_pack(
		    "{s:s,s:s,s:{s:s,s:s+},s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "model", model,
		    "created_at", "2024-09-12T21:17:29Z", "message", "role", "assistant", "content",
		    "echo: ", json_string_value(json_object_get(last, "content")), "done", 1,
		    "done_reason", "stop", "total_duration", (json_int_t)4883583458,
		    "load_duration", (json_int_t)1334875, "prompt_eval_count", (json_int_t)26,
		    "prompt_eval_duration", (json_int_t)342546000, "eval_count", (json_int_t)282,
		    "eval_duration", (json_int_t)4535599000);
		char *text = json_dumps(r, JSON_COMPACT);
		reply(req, 200, text);
		free(text);
		json_decref(r);
	} else {
		json_t *r =
		    json_pack("{s:s,s:s,s:s+,s:b,s:s,s:[iii],s:I,s:I,s:I,s:I,s:I,s:I}", "model",
			      model, "created_at", "2024-09-12T21:17:29Z", "response",
			      "echo: ", prompt, "done", 1, "done_reason", "stop", "context", 1, 2,
			      3, "total_duration", (json_int_t)10706818083, "load_duration",
			      (json_int_t)6338219291, "prompt_eval_count", (json_int_t)26,
			      "prompt_eval_duration", (json_int_t)130079000, "eval_count",
			      (json_int_t)259, "eval_duration", (json_int_t)4232710000);
		char *text = json_dumps(r, JSON_COMPACT);
		reply(req, 200, text);
		free(text);
		json_decref(r);
	}
}

static void
fake_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *fx = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *text = xmalloc(len + 1);
	evbuffer_remove(in, text, len);
	text[len] = '\0';

	assert_true(fx->nrec < MAX_RECORDED);
	struct recorded *r = &fx->rec[fx->nrec++];
	vd_strlcpy(r->method, evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "GET",
		   sizeof(r->method));
	vd_strlcpy(r->path, uri, sizeof(r->path));
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	vd_strlcpy(r->host, host ? host : "", sizeof(r->host));
	r->body = text;

	json_error_t err;
	json_t *body = len ? json_loads(text, 0, &err) : NULL;
	if (strcmp(uri, "/api/version") == 0) {
		reply(req, 200, "{\"version\":\"0.33.0\"}");
	} else if (strcmp(uri, "/api/tags") == 0) {
		reply(req, 200, fx->tags_reply);
	} else if (strcmp(uri, "/api/ps") == 0) {
		reply(req, 200, fx->ps_reply);
	} else if (strcmp(uri, "/api/show") == 0) {
		const char *model = json_string_value(json_object_get(body, "model"));
		fx->shows++;
		if (model && strcmp(model, "nomic-embed-text:latest") == 0)
			reply(req, 200,
			      "{\"details\":{\"family\":\"nomic-bert\"},\"capabilities\":"
			      "[\"embedding\"]}");
		else if (model && strcmp(model, "llava:7b") == 0)
			reply(req, 200, "{\"capabilities\":[\"completion\",\"vision\"]}");
		else if (model && strcmp(model, "qwen3:8b") == 0)
			reply(
			    req, 200,
			    "{\"model_info\":{\"general.architecture\":\"qwen3\","
			    "\"qwen3.context_length\":40960,\"qwen3.block_count\":36,"
			    "\"qwen3.attention.head_count\":32,"
			    "\"qwen3.attention.head_count_kv\":[8,8,4],"
			    "\"qwen3.embedding_length\":4096},\"capabilities\":[\"completion\"]}");
		else
			reply(req, 404, "{\"error\":\"model not found\"}");
	} else if (strcmp(uri, "/api/generate") == 0) {
		fake_generate_or_chat(fx, req, body, false);
	} else if (strcmp(uri, "/api/chat") == 0) {
		fake_generate_or_chat(fx, req, body, true);
	} else if (strcmp(uri, "/api/embed") == 0) {
		json_t *input = json_object_get(body, "input");
		bool empty = !input || (json_is_array(input) && json_array_size(input) == 0) ||
			     (json_is_string(input) && !*json_string_value(input));
		reply(req, 200,
		      empty ? "{\"model\":\"embedder\",\"embeddings\":[]}"
			    : "{\"model\":\"embedder\",\"embeddings\":[[0.5,-0.25]],"
			      "\"total_duration\":14143917,\"load_duration\":1019500,"
			      "\"prompt_eval_count\":8}");
	} else {
		reply(req, 404, "404 page not found");
	}
	json_decref(body);
}

static void
cutoff_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer_ptr p = evbuffer_search(bufferevent_get_input(bev), "\r\n\r\n", 4, NULL);
	if (p.pos < 0)
		return;
	const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			     "Content-Length: 1000\r\n\r\n{\"model\":\"cutoff\",\"response\":\"par";
	ssize_t w = write(bufferevent_getfd(bev), reply, sizeof(reply) - 1);
	(void)w;
	bufferevent_free(bev); /* closes the connection */
}

static void
cutoff_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		 void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	struct fixture *fx = arg;
	struct bufferevent *bev = bufferevent_socket_new(fx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, cutoff_read_cb, NULL, NULL, fx);
	bufferevent_enable(bev, EV_READ);
}

static void
watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	fail_msg("watchdog: the loop ran 20 s without finishing");
}

static struct backend *
make_backend(struct fixture *fx, const char *url, size_t max_run_reply)
{
	struct backend *b = NULL;
	char *cause = NULL;
	int rc = backend_new("ollama",
			     &(struct backend_config){.url = url,
						      .httpc = fx->httpc,
						      .control_timeout_ms = 300,
						      .run_timeout_ms = 5000,
						      .load_timeout_ms = 5000,
						      .max_run_reply_bytes = max_run_reply},
			     &b, &cause);
	assert_int_equal(rc, 0);
	assert_null(cause);
	return b;
}

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	fx->base = event_base_new();
	fx->http = evhttp_new(fx->base);
	evhttp_set_gencb(fx->http, fake_cb, fx);
	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(fx->http, "127.0.0.1", 0);
	assert_non_null(bound);
	fx->port = socket_port(evhttp_bound_socket_get_fd(bound));
	snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d/", fx->port);

	fx->silent_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fx->silent_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fx->silent_fd, 16), 0);
	snprintf(fx->silent_url, sizeof(fx->silent_url), "http://127.0.0.1:%d",
		 socket_port(fx->silent_fd));

	fx->cutoff = evconnlistener_new_bind(fx->base, cutoff_accept_cb, fx,
					     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					     (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(fx->cutoff);
	snprintf(fx->cutoff_url, sizeof(fx->cutoff_url), "http://127.0.0.1:%d",
		 socket_port(evconnlistener_get_fd(fx->cutoff)));

	fx->httpc = httpc_new(fx->base);
	fx->backend = make_backend(fx, fx->url, 0);
	fx->watchdog = evtimer_new(fx->base, watchdog_cb, fx);
	struct timeval tv = {20, 0};
	evtimer_add(fx->watchdog, &tv);
	fx->tags_reply = "{\"models\":[]}";
	fx->ps_reply = "{\"models\":[]}";
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	backend_free(fx->backend);
	httpc_free(fx->httpc);
	event_free(fx->watchdog);
	close(fx->silent_fd);
	evconnlistener_free(fx->cutoff);
	evhttp_free(fx->http);
	event_base_free(fx->base);
	for (int i = 0; i < fx->nrec; i++)
		free(fx->rec[i].body);
	free(fx);
	return 0;
}

/* What a callback saw, copied out of the borrowed status. */
struct seen {
	struct fixture *fx;
	bool done;
	enum backend_error error;
	int http_status;
	bool timed_out;
	char *message;
	char *version;
	json_t *result;
	struct backend_run_metrics metrics;
	char *done_reason;
	size_t n;
	struct backend_model_info models[8];
	struct backend_running_model running[8];
};

static void
seen_status(struct seen *s, const struct backend_status *st)
{
	assert_false(s->done);
	s->done = true;
	s->error = st->error;
	s->http_status = st->http_status;
	s->timed_out = st->timed_out;
	s->message = st->message ? xstrdup(st->message) : NULL;
	if (st->error == BACKEND_OK)
		assert_null(st->message);
	else
		assert_non_null(st->message);
	event_base_loopbreak(s->fx->base);
}

static void
seen_cleanup(struct seen *s)
{
	free(s->message);
	free(s->version);
	free(s->done_reason);
	json_decref(s->result);
	for (size_t i = 0; i < s->n && i < 8; i++) {
		free(s->models[i].name);
		free(s->models[i].family);
		free(s->running[i].name);
	}
	memset(s, 0, sizeof(*s));
}

static void
version_cb(const struct backend_status *st, const char *version, void *arg)
{
	struct seen *s = arg;
	seen_status(s, st);
	s->version = version ? xstrdup(version) : NULL;
}

static void
models_cb(const struct backend_status *st, const struct backend_model_list *list, void *arg)
{
	struct seen *s = arg;
	seen_status(s, st);
	for (size_t i = 0; list && i < list->n && i < 8; i++) {
		s->models[i] = list->models[i];
		s->models[i].name = xstrdup(list->models[i].name);
		s->models[i].family = xstrdup(list->models[i].family);
		s->models[i].digest = s->models[i].parameter_size = NULL;
		s->models[i].quantization_level = NULL;
	}
	s->n = list ? list->n : 0;
}

static void
running_cb(const struct backend_status *st, const struct backend_running_list *list, void *arg)
{
	struct seen *s = arg;
	seen_status(s, st);
	for (size_t i = 0; list && i < list->n && i < 8; i++) {
		s->running[i] = list->models[i];
		s->running[i].name = xstrdup(list->models[i].name);
		s->running[i].model = s->running[i].digest = NULL;
	}
	s->n = list ? list->n : 0;
}

static void
done_cb(const struct backend_status *st, void *arg)
{
	seen_status(arg, st);
}

static void
run_cb(const struct backend_status *st, struct backend_run_result *result, void *arg)
{
	struct seen *s = arg;
	seen_status(s, st);
	if (result) {
		s->result = result->result; /* steal */
		result->result = NULL;
		s->metrics = result->metrics;
		s->done_reason = result->done_reason ? xstrdup(result->done_reason) : NULL;
	}
}

static void
wait_for(struct fixture *fx, struct seen *s)
{
	assert_false(s->done); /* callbacks never run inside the start function */
	event_base_dispatch(fx->base);
	assert_true(s->done);
}

static const struct recorded *
last_request(struct fixture *fx)
{
	assert_true(fx->nrec > 0);
	return &fx->rec[fx->nrec - 1];
}

static void
test_version_and_host_header(void **state)
{
	struct fixture *fx = *state;
	struct seen s = {.fx = fx};

	backend_version(fx->backend, version_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_string_equal(s.version, "0.33.0");
	const struct recorded *r = last_request(fx);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->path, "/api/version"); /* the trailing '/' of the URL is gone */
	char host[64];
	snprintf(host, sizeof(host), "localhost:%d", fx->port);
	assert_string_equal(r->host, host);
	assert_string_equal(backend_name(fx->backend), "ollama");
	seen_cleanup(&s);
}

static void
test_list_installed_capabilities(void **state)
{
	struct fixture *fx = *state;
	struct seen s = {.fx = fx};

	/* Capabilities absent (older server): /api/show for each model, once. */
	fx->tags_reply =
	    "{\"models\":[{\"name\":\"llama3.2:latest\",\"model\":\"llama3.2:latest\","
	    "\"modified_at\":\"2024-09-12T21:17:29.110811-07:00\",\"size\":2019393189,"
	    "\"digest\":\"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72\","
	    "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\","
	    "\"families\":[\"llama\"],\"parameter_size\":\"3.2B\",\"quantization_level\":"
	    "\"Q4_K_M\"}},"
	    "{\"name\":\"nomic-embed-text:latest\",\"size\":274302450,\"digest\":\"0a109f422b47\","
	    "\"details\":{\"family\":\"nomic-bert\"}},"
	    "{\"name\":\"llava:7b\",\"size\":4733363377,\"digest\":\"8dd30f6b0cb1\","
	    "\"details\":{\"family\":\"llama\"}},"
	    "{\"name\":\"all-minilm:latest\",\"size\":45960996,\"digest\":\"1b226e2802db\","
	    "\"details\":{\"family\":\"bert\"}},"
	    "{\"size\":1}]}";
	backend_list_installed(fx->backend, models_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_int_equal(s.n, 4); /* the nameless entry is skipped */
	assert_int_equal(fx->shows, 4);
	assert_string_equal(s.models[0].name, "llama3.2:latest");
	assert_int_equal(s.models[0].size_bytes, 2019393189);
	/* /api/show 404 for llama3.2: the family guess stands, not reported. */
	assert_int_equal(s.models[0].capabilities, BACKEND_CAP_COMPLETION);
	assert_false(s.models[0].capabilities_reported);
	assert_int_equal(s.models[1].capabilities, BACKEND_CAP_EMBEDDING);
	assert_true(s.models[1].capabilities_reported);
	assert_int_equal(s.models[2].capabilities, BACKEND_CAP_COMPLETION | BACKEND_CAP_VISION);
	assert_true(s.models[2].capabilities_reported);
	assert_int_equal(s.models[3].capabilities, BACKEND_CAP_EMBEDDING);
	assert_false(s.models[3].capabilities_reported);
	seen_cleanup(&s);

	/* Second listing: shown models come from the cache; failed ones are asked again. */
	s.fx = fx;
	backend_list_installed(fx->backend, models_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(fx->shows, 6);
	assert_int_equal(s.models[2].capabilities, BACKEND_CAP_COMPLETION | BACKEND_CAP_VISION);
	seen_cleanup(&s);

	/* Capabilities present in /api/tags: they stand; /api/show is still asked once, for
	 * the architecture that sizes the KV cache (per-layer arrays count as their largest). */
	fx->tags_reply = "{\"models\":[{\"name\":\"qwen3:8b\",\"size\":5,\"digest\":\"d\","
			 "\"details\":{\"family\":\"qwen3\"},\"capabilities\":[\"completion\","
			 "\"tools\",\"thinking\"]}]}";
	s.fx = fx;
	backend_list_installed(fx->backend, models_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(fx->shows, 7);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.models[0].capabilities,
			 BACKEND_CAP_COMPLETION | BACKEND_CAP_TOOLS | BACKEND_CAP_THINKING);
	assert_int_equal(s.models[0].arch.context_length, 40960);
	assert_int_equal(s.models[0].arch.block_count, 36);
	assert_int_equal(s.models[0].arch.head_count, 32);
	assert_int_equal(s.models[0].arch.head_count_kv, 8);
	assert_int_equal(s.models[0].arch.embedding_length, 4096);
	seen_cleanup(&s);

	/* And from the cache on the next listing: no new /api/show. */
	s.fx = fx;
	backend_list_installed(fx->backend, models_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(fx->shows, 7);
	assert_int_equal(s.models[0].arch.block_count, 36);
	seen_cleanup(&s);
}

static void
test_list_running(void **state)
{
	struct fixture *fx = *state;
	struct seen s = {.fx = fx};

	fx->ps_reply =
	    "{\"models\":[{\"name\":\"llama3.2:latest\",\"model\":\"llama3.2:latest\",\"size\":"
	    "3093236736,\"digest\":"
	    "\"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"
	    "\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\"},"
	    "\"expires_at\":\"2024-06-04T14:38:31.83753-07:00\",\"size_vram\":2500000000,"
	    "\"context_length\":4096}]}";
	backend_list_running(fx->backend, running_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.running[0].name, "llama3.2:latest");
	assert_int_equal(s.running[0].size_bytes, 3093236736u);
	assert_int_equal(s.running[0].size_vram_bytes, 2500000000u);
	assert_int_equal(s.running[0].context_length, 4096);
	/* 2024-06-04T21:38:31.837Z */
	assert_int_equal(s.running[0].expires_at_ms, INT64_C(1717537111837));
	seen_cleanup(&s);

	fx->ps_reply = "{\"models\":7}";
	s.fx = fx;
	backend_list_running(fx->backend, running_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_ERR_PROTOCOL);
	assert_non_null(strstr(s.message, "/api/ps"));
	assert_non_null(strstr(s.message, "127.0.0.1"));
	seen_cleanup(&s);
}

static void
load_and_check(struct fixture *fx, const struct backend_load_request *req, bool unload,
	       const char *path, const char *want_body)
{
	struct seen s = {.fx = fx};
	if (unload)
		backend_unload(fx->backend, req, done_cb, &s);
	else
		backend_load(fx->backend, req, done_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	const struct recorded *r = last_request(fx);
	assert_string_equal(r->method, "POST");
	assert_string_equal(r->path, path);
	assert_string_equal(r->body, want_body);
	seen_cleanup(&s);
}

static void
test_load_unload_bodies(void **state)
{
	struct fixture *fx = *state;

	load_and_check(
	    fx,
	    &(struct backend_load_request){.model = "llama3.2", .placement = BACKEND_PLACE_AUTO},
	    false, "/api/generate", "{\"model\":\"llama3.2\",\"keep_alive\":-1}");
	load_and_check(
	    fx, &(struct backend_load_request){.model = "llama3.2", .placement = BACKEND_PLACE_CPU},
	    false, "/api/generate",
	    "{\"model\":\"llama3.2\",\"keep_alive\":-1,\"options\":{\"num_gpu\":0}}");
	json_t *opts = json_pack("{s:i,s:i}", "num_ctx", 8192, "num_gpu", 0);
	load_and_check(
	    fx,
	    &(struct backend_load_request){.model = "llama3.2", .placement = 1, .options = opts},
	    false, "/api/generate",
	    "{\"model\":\"llama3.2\",\"keep_alive\":-1,\"options\":{\"num_ctx\":8192,"
	    "\"main_gpu\":1}}");
	json_decref(opts);
	load_and_check(fx, &(struct backend_load_request){.model = "llama3.2", .placement = 0},
		       true, "/api/generate", "{\"model\":\"llama3.2\",\"keep_alive\":0}");

	/* Embedding-only: straight to /api/embed. */
	load_and_check(
	    fx,
	    &(struct backend_load_request){
		.model = "embedder", .placement = BACKEND_PLACE_AUTO, .embedding_only = true},
	    false, "/api/embed", "{\"model\":\"embedder\",\"input\":[],\"keep_alive\":-1}");
	/* Not flagged: generate is refused, then /api/embed. */
	int before = fx->nrec;
	load_and_check(
	    fx,
	    &(struct backend_load_request){.model = "embedder", .placement = BACKEND_PLACE_AUTO},
	    false, "/api/embed", "{\"model\":\"embedder\",\"input\":[],\"keep_alive\":-1}");
	assert_int_equal(fx->nrec, before + 2);
	assert_string_equal(fx->rec[before].path, "/api/generate");
	/* Unload of an embedding model: generate first, then embed with keep_alive 0. */
	load_and_check(
	    fx,
	    &(struct backend_load_request){
		.model = "embedder", .placement = BACKEND_PLACE_AUTO, .embedding_only = true},
	    true, "/api/embed", "{\"model\":\"embedder\",\"input\":[],\"keep_alive\":0}");
}

static void
test_run_kinds(void **state)
{
	struct fixture *fx = *state;
	struct seen s = {.fx = fx};

	/* The job's own stream/keep_alive/model are overridden; options keep the job's keys
	 * and gain the placement. */
	json_t *request =
	    json_pack("{s:s,s:{s:i},s:b,s:s,s:s}", "prompt", "hi", "options", "temperature", 0,
		      "stream", 1, "keep_alive", "5m", "model", "other");
	backend_run(
	    fx->backend,
	    &(struct backend_run_request){
		.model = "llama3.2", .kind = JOB_KIND_GENERATE, .request = request, .placement = 0},
	    run_cb, &s);
	json_decref(request);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_string_equal(last_request(fx)->path, "/api/generate");
	assert_string_equal(last_request(fx)->body,
			    "{\"model\":\"llama3.2\",\"prompt\":\"hi\",\"stream\":false,"
			    "\"keep_alive\":-1,\"options\":{\"temperature\":0,\"main_gpu\":0}}");
	assert_string_equal(json_string_value(s.result), "echo: hi");
	assert_string_equal(s.done_reason, "stop");
	assert_int_equal(s.metrics.total_duration_ns, INT64_C(10706818083));
	assert_int_equal(s.metrics.load_duration_ns, INT64_C(6338219291));
	assert_int_equal(s.metrics.prompt_eval_count, 26);
	assert_int_equal(s.metrics.eval_count, 259);
	seen_cleanup(&s);

	request = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "hello");
	s.fx = fx;
	backend_run(fx->backend,
		    &(struct backend_run_request){.model = "llama3.2",
						  .kind = JOB_KIND_CHAT,
						  .request = request,
						  .placement = BACKEND_PLACE_AUTO},
		    run_cb, &s);
	json_decref(request);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_string_equal(last_request(fx)->body,
			    "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":"
			    "\"hello\"}],\"stream\":false,\"keep_alive\":-1}");
	assert_true(json_is_object(s.result));
	assert_string_equal(json_string_value(json_object_get(s.result, "content")), "echo: hello");
	assert_int_equal(s.metrics.eval_duration_ns, INT64_C(4535599000));
	seen_cleanup(&s);

	request = json_pack("{s:[s]}", "input", "why is the sky blue");
	s.fx = fx;
	backend_run(fx->backend,
		    &(struct backend_run_request){.model = "embedder",
						  .kind = JOB_KIND_EMBED,
						  .request = request,
						  .placement = BACKEND_PLACE_CPU},
		    run_cb, &s);
	json_decref(request);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_OK);
	assert_string_equal(last_request(fx)->path, "/api/embed");
	assert_string_equal(
	    last_request(fx)->body,
	    "{\"model\":\"embedder\",\"input\":[\"why is the sky blue\"],\"stream\":"
	    "false,\"keep_alive\":-1,\"options\":{\"num_gpu\":0}}");
	assert_true(json_is_array(s.result));
	assert_int_equal(json_array_size(s.result), 1);
	assert_int_equal(s.metrics.prompt_eval_count, 8);
	assert_int_equal(s.metrics.eval_count, -1); /* not in the reply */
	seen_cleanup(&s);
}

static void
run_model(struct fixture *fx, struct backend *b, const char *model, struct seen *s)
{
	json_t *request = json_pack("{s:s}", "prompt", "x");
	memset(s, 0, sizeof(*s));
	s->fx = fx;
	backend_run(b,
		    &(struct backend_run_request){.model = model,
						  .kind = JOB_KIND_GENERATE,
						  .request = request,
						  .placement = BACKEND_PLACE_AUTO},
		    run_cb, s);
	json_decref(request);
	wait_for(fx, s);
}

static void
test_errors(void **state)
{
	struct fixture *fx = *state;
	struct seen s;

	/* Ollama's own message and status. */
	run_model(fx, fx->backend, "missing", &s);
	assert_int_equal(s.error, BACKEND_ERR_REMOTE);
	assert_int_equal(s.http_status, 404);
	assert_string_equal(s.message, "model 'missing' not found");
	assert_null(s.result);
	seen_cleanup(&s);

	run_model(fx, fx->backend, "busy", &s);
	assert_int_equal(s.error, BACKEND_ERR_UNAVAILABLE);
	assert_int_equal(s.http_status, 503);
	assert_non_null(strstr(s.message, "server busy"));
	seen_cleanup(&s);

	run_model(fx, fx->backend, "garbage", &s);
	assert_int_equal(s.error, BACKEND_ERR_PROTOCOL);
	char server[64];
	snprintf(server, sizeof(server), "ollama at http://127.0.0.1:%d:", fx->port);
	assert_non_null(strstr(s.message, server));
	assert_non_null(strstr(s.message, "not JSON"));
	seen_cleanup(&s);

	run_model(fx, fx->backend, "truncated", &s);
	assert_int_equal(s.error, BACKEND_ERR_PROTOCOL);
	assert_non_null(strstr(s.message, "/api/generate"));
	seen_cleanup(&s);

	struct backend *cut = make_backend(fx, fx->cutoff_url, 0);
	run_model(fx, cut, "llama3.2", &s);
	assert_int_equal(s.error, BACKEND_ERR_PROTOCOL);
	assert_non_null(strstr(s.message, "cut off"));
	assert_non_null(strstr(s.message, fx->cutoff_url));
	seen_cleanup(&s);
	backend_free(cut);

	/* A generate-refusing model run as generate: Ollama's 400 message, not a fallback. */
	run_model(fx, fx->backend, "embedder", &s);
	assert_int_equal(s.error, BACKEND_ERR_REMOTE);
	assert_int_equal(s.http_status, 400);
	assert_string_equal(s.message, "\"embedder\" does not support generate");
	seen_cleanup(&s);

	/* Over the run reply cap. */
	struct backend *small = make_backend(fx, fx->url, 65536);
	run_model(fx, small, "huge", &s);
	assert_int_equal(s.error, BACKEND_ERR_PROTOCOL);
	assert_non_null(strstr(s.message, "too large"));
	seen_cleanup(&s);
	run_model(fx, fx->backend, "huge", &s); /* under the default 64 MiB */
	assert_int_equal(s.error, BACKEND_OK);
	assert_int_equal(strlen(json_string_value(s.result)), 1u << 20);
	seen_cleanup(&s);
	backend_free(small);
}

static void
test_unreachable_and_timeout(void **state)
{
	struct fixture *fx = *state;
	struct seen s;

	/* Connection refused: retryable, naming the server. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", socket_port(fd));
	close(fd);
	struct backend *down = make_backend(fx, url, 0);
	run_model(fx, down, "llama3.2", &s);
	assert_int_equal(s.error, BACKEND_ERR_UNAVAILABLE);
	assert_false(s.timed_out);
	assert_int_equal(s.http_status, 0);
	assert_non_null(strstr(s.message, url));
	assert_non_null(strstr(s.message, "refused"));
	seen_cleanup(&s);
	backend_free(down);

	/* A server that never answers: the control timeout (300 ms here). */
	struct backend *silent = make_backend(fx, fx->silent_url, 0);
	s = (struct seen){.fx = fx};
	backend_version(silent, version_cb, &s);
	wait_for(fx, &s);
	assert_int_equal(s.error, BACKEND_ERR_UNAVAILABLE);
	assert_true(s.timed_out);
	assert_non_null(strstr(s.message, "/api/version"));
	seen_cleanup(&s);
	backend_free(silent);
}

static void
never_run_cb(const struct backend_status *st, struct backend_run_result *result, void *arg)
{
	(void)st;
	(void)result;
	(void)arg;
	fail_msg("a cancelled call's callback ran");
}

static void
break_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	event_base_loopbreak(arg);
}

static void
test_cancel_and_free(void **state)
{
	struct fixture *fx = *state;
	struct backend *silent = make_backend(fx, fx->silent_url, 0);
	json_t *request = json_pack("{s:s}", "prompt", "x");
	struct backend_run_request rr = {
	    .model = "llama3.2", .kind = JOB_KIND_GENERATE, .request = request};

	struct backend_call *call = backend_run(silent, &rr, never_run_cb, NULL);
	struct timeval tv = {0, 50000};
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	backend_call_cancel(silent, call);
	assert_int_equal(httpc_in_flight(fx->httpc), 0);

	/* A deferred failure (no model) is cancelled too. */
	rr.model = "";
	backend_call_cancel(silent, backend_run(silent, &rr, never_run_cb, NULL));
	rr.model = "llama3.2";

	/* backend_free with calls in flight: no callbacks, nothing left in httpc. */
	backend_run(silent, &rr, never_run_cb, NULL);
	backend_run(fx->backend, &rr, never_run_cb, NULL);
	backend_free(silent);
	backend_free(fx->backend);
	fx->backend = NULL;
	assert_int_equal(httpc_in_flight(fx->httpc), 0);
	tv.tv_usec = 200000;
	event_base_once(fx->base, -1, EV_TIMEOUT, break_cb, fx->base, &tv);
	event_base_dispatch(fx->base);
	json_decref(request);
}

static void
test_backend_new_errors(void **state)
{
	struct fixture *fx = *state;
	struct backend *b = NULL;
	char *cause = NULL;

	assert_int_equal(backend_new("vllm",
				     &(struct backend_config){.url = fx->url, .httpc = fx->httpc},
				     &b, &cause),
			 -EINVAL);
	assert_non_null(strstr(cause, "vllm"));
	vd_free(cause);
	assert_int_equal(
	    backend_new(NULL,
			&(struct backend_config){.url = "localhost:11434", .httpc = fx->httpc}, &b,
			&cause),
	    -EINVAL);
	assert_non_null(strstr(cause, "http://"));
	vd_free(cause);
	assert_null(b);
}

/* ---- the pure parsers ---- */

static void
test_parse_ps_fields(void **state)
{
	(void)state;
	struct backend_running_list list;
	char *cause = NULL;

	/* Missing optional fields, extra fields, a null list, an entry with model only. */
	const char *body = "{\"models\":[{\"model\":\"a:1\",\"size\":10,\"extra\":{\"x\":[1]}},"
			   "{\"name\":\"b\",\"size_vram\":-5,\"expires_at\":\"garbage\","
			   "\"context_length\":\"big\"},42]}";
	assert_int_equal(ollama_parse_ps(body, strlen(body), &list, &cause), 0);
	assert_int_equal(list.n, 2);
	assert_string_equal(list.models[0].name, "a:1");
	assert_string_equal(list.models[0].model, "a:1");
	assert_string_equal(list.models[0].digest, "");
	assert_int_equal(list.models[0].size_bytes, 10);
	assert_int_equal(list.models[0].size_vram_bytes, 0);
	assert_int_equal(list.models[0].expires_at_ms, 0);
	assert_int_equal(list.models[1].size_vram_bytes, 0);
	assert_int_equal(list.models[1].context_length, 0);
	backend_running_list_cleanup(&list);

	assert_int_equal(ollama_parse_ps("{\"models\":null}", 15, &list, &cause), 0);
	assert_int_equal(list.n, 0);
	backend_running_list_cleanup(&list);
	assert_int_equal(ollama_parse_ps("[]", 2, &list, &cause), -EINVAL);
	assert_non_null(cause);
	vd_free(cause);
	assert_int_equal(ollama_parse_ps("", 0, &list, &cause), -EINVAL);
	vd_free(cause);
	assert_int_equal(ollama_parse_ps("{\"models\":[", 11, &list, &cause), -EINVAL);
	assert_non_null(strstr(cause, "not JSON"));
	vd_free(cause);
}

static void
test_parse_run_replies(void **state)
{
	(void)state;
	struct ollama_run_reply r;
	char *cause = NULL;

	const char *gen =
	    "{\"model\":\"m\",\"created_at\":\"2024-09-12T21:17:29Z\",\"response\":\"\","
	    "\"done\":true,\"done_reason\":\"length\"}";
	assert_int_equal(ollama_parse_run_reply(JOB_KIND_GENERATE, gen, strlen(gen), &r, &cause),
			 0);
	assert_string_equal(json_string_value(r.result), "");
	assert_string_equal(r.done_reason, "length");
	assert_int_equal(r.metrics.total_duration_ns, -1);
	ollama_run_reply_cleanup(&r);

	/* A streaming chunk is not a final answer. */
	const char *chunk = "{\"model\":\"m\",\"response\":\"The\",\"done\":false}";
	assert_int_equal(
	    ollama_parse_run_reply(JOB_KIND_GENERATE, chunk, strlen(chunk), &r, &cause), -EINVAL);
	assert_null(r.result);
	vd_free(cause);
	/* Error carried in a 200 body. */
	const char *err = "{\"error\":\"an error was encountered while running the model\"}";
	assert_int_equal(ollama_parse_run_reply(JOB_KIND_CHAT, err, strlen(err), &r, &cause), -EIO);
	assert_string_equal(cause, "an error was encountered while running the model");
	vd_free(cause);
	/* Wrong shapes for the kind. */
	assert_int_equal(ollama_parse_run_reply(JOB_KIND_CHAT, gen, strlen(gen), &r, &cause),
			 -EINVAL);
	vd_free(cause);
	const char *emb = "{\"model\":\"e\",\"embeddings\":{}}";
	assert_int_equal(ollama_parse_run_reply(JOB_KIND_EMBED, emb, strlen(emb), &r, &cause),
			 -EINVAL);
	vd_free(cause);

	/* Load replies. */
	const char *load = "{\"model\":\"m\",\"created_at\":\"2024-09-12T21:17:29.110811Z\","
			   "\"response\":\"\",\"done\":true,\"done_reason\":\"load\"}";
	assert_int_equal(ollama_parse_load_reply(load, strlen(load), &cause), 0);
	assert_int_equal(ollama_parse_load_reply("{\"embeddings\":[]}", 17, &cause), 0);
	assert_int_equal(ollama_parse_load_reply("{\"done\":false}", 14, &cause), -EINVAL);
	vd_free(cause);

	char *e = ollama_parse_error("{\"error\":\"model 'x' not found\"}", 31);
	assert_string_equal(e, "model 'x' not found");
	free(e);
	assert_null(ollama_parse_error("404 page not found", 18));
	assert_null(ollama_parse_error("", 0));
}

static void
test_parse_time(void **state)
{
	(void)state;
	int64_t ms;

	assert_int_equal(ollama_parse_time("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(ollama_parse_time("2024-09-12T21:17:29.110811Z", &ms), 0);
	assert_int_equal(ms, INT64_C(1726175849110));
	assert_int_equal(ollama_parse_time("2024-06-04T14:38:31.83753-07:00", &ms), 0);
	assert_int_equal(ms, INT64_C(1717537111837));
	assert_int_equal(ollama_parse_time("2024-06-04T14:38:31+05:30", &ms), 0);
	assert_int_equal(ms, INT64_C(1717492111000));
	/* keep_alive forever: ~292 years ahead. */
	assert_int_equal(ollama_parse_time("2318-09-21T10:05:00.123456789-07:00", &ms), 0);
	assert_true(ms > INT64_C(10000000000000));
	assert_int_equal(ollama_parse_time("2024-06-04 14:38:31Z", &ms), -EINVAL);
	assert_int_equal(ollama_parse_time("2024-13-04T14:38:31Z", &ms), -EINVAL);
	assert_int_equal(ollama_parse_time("2024-06-04T14:38:31", &ms), -EINVAL);
	assert_int_equal(ollama_parse_time("2024-06-04T14:38:31.Z", &ms), -EINVAL);
	assert_int_equal(ollama_parse_time("2024-06-04T14:38:31Zjunk", &ms), -EINVAL);
	assert_int_equal(ollama_parse_time("", &ms), -EINVAL);
}

static void
test_capabilities_from_family(void **state)
{
	(void)state;
	assert_int_equal(ollama_capabilities_from_family("bert"), BACKEND_CAP_EMBEDDING);
	assert_int_equal(ollama_capabilities_from_family("nomic-bert"), BACKEND_CAP_EMBEDDING);
	assert_int_equal(ollama_capabilities_from_family("llama"), BACKEND_CAP_COMPLETION);
	assert_int_equal(ollama_capabilities_from_family(""), BACKEND_CAP_COMPLETION);
	assert_int_equal(ollama_capabilities_from_family(NULL), BACKEND_CAP_COMPLETION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_version_and_host_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_installed_capabilities, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_unload_bodies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreachable_and_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_and_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backend_new_errors, setup, teardown),
	    cmocka_unit_test(test_parse_ps_fields),
	    cmocka_unit_test(test_parse_run_replies),
	    cmocka_unit_test(test_parse_time),
	    cmocka_unit_test(test_capabilities_from_family),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
