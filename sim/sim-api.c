/*
 * sim-api.c: the HTTP handlers of ollama-sim.
 *
 * Each Ollama endpoint follows the order of checks of server/routes.go at v0.33
 * (body, model name, lookup, unload, capabilities, scheduling, load reply,
 * generation), so the first error a client sees is the one Ollama would give.
 * Generation is paced by a libevent timer per request: tokens come out at the
 * runner's tokens/s divided into real time by the time scale, and streaming replies
 * send no headers until the first token exists. A request owns a struct sim_req
 * that lives until its reply ends or its client goes away (connection close
 * callback), whichever is first; either way its scheduler job is finished exactly
 * once. Callers: ollama-sim.c serves it with its vd_httpd server.
 */
#include "sim-api.h"

#include "buf.h"
#include "http-util.h"
#include "log.h"
#include "sim-fault.h"
#include "sim-compute.h"
#include "sim-models.h"
#include "sim-text.h"
#include "sim-validate.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

enum sim_req_kind { SIM_REQ_GENERATE, SIM_REQ_CHAT, SIM_REQ_EMBED, SIM_REQ_EMBEDDINGS };

struct sim_req {
	struct sim_api *api;
	struct vd_http_req *req;
	enum sim_req_kind kind;
	char *model_name; /* as the client spelled it, echoed in replies */
	bool stream;
	bool raw;
	bool load_only;
	char *prompt;
	json_t *inputs; /* embed: array of strings */
	int64_t dimensions;
	struct sim_gen_opts opts;
	struct sim_job job;
	bool job_submitted;
	struct event *timer;
	int64_t slot_mono_ns;
	int64_t prompt_tokens;
	int64_t target_tokens;
	int64_t emitted;
	bool length_limited;
	uint64_t text_seed;
	int64_t prompt_eval_ns; /* simulated */
	int64_t tick_mono_ns;	/* the generation timer's last tick */
	int64_t eval_left_ns;	/* simulated prompt evaluation still to do */
	double gen_tokens;	/* tokens generated so far, fractional */
	int64_t gen_ns;		/* simulated time spent generating (eval_duration) */
	bool headers_sent;
	struct vd_buf text;	       /* the whole reply, for "stream": false */
	struct sim_fault_effect fault; /* drawn by this request (sim-fault.h) */
	struct event *reset_timer;     /* reset or crash fault: acts after the partial reply */
	LIST_ENTRY(sim_req) entry;
};

struct sim_api {
	struct event_base *base;
	struct sim_sched *sched;
	struct sim_hw *hw;
	const struct sim_catalogue *cat;
	struct sim_api_config cfg;
	struct vd_http_router router;
	struct sim_models *models; /* /api/pull, /api/delete, /api/copy, /api/blobs */
	LIST_HEAD(, sim_req) live;
	struct sim_faults *faults;
	struct sim_fault_effect cur_fault; /* drawn by the request being routed */
};

/* Ollama's reply when the GPU runs out of memory during a generation. */
#define SIM_RUNTIME_OOM_ERROR                                                                      \
	"an error was encountered while running the model: CUDA error: out of memory"

/* ---- parsing helpers ---------------------------------------------------- */

/* Reads an optional string field; null and absent give def. */
static int
sim_get_string(json_t *body, const char *key, const char *go_struct, const char **out,
	       const char *def, char **cause)
{
	json_t *v = json_object_get(body, key);
	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_string(v))
		return sim_go_type_error(cause, v, go_struct, key, "string");
	*out = json_string_value(v);
	return 0;
}

static int
sim_get_bool(json_t *body, const char *key, const char *go_struct, bool *out, bool def,
	     char **cause)
{
	json_t *v = json_object_get(body, key);
	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return sim_go_type_error(cause, v, go_struct, key, "bool");
	*out = json_is_true(v);
	return 0;
}

int
sim_parse_keep_alive(const json_t *value, int64_t *ns, char **cause)
{
	if (json_is_number(value)) {
		double secs = json_number_value(value);
		if (secs < 0) {
			*ns = SIM_FOREVER_NS;
			return 0;
		}
		double v = secs * 1e9;
		*ns = v >= 9.2e18 ? SIM_FOREVER_NS : (int64_t)v;
		return 0;
	}
	if (json_is_string(value)) {
		int64_t d;
		int rc = vd_parse_go_duration(json_string_value(value), &d, cause);
		if (rc < 0)
			return rc;
		*ns = d < 0 ? SIM_FOREVER_NS : d;
		return 0;
	}
	const char *t = json_is_boolean(value)	? "bool"
			: json_is_array(value)	? "[]interface {}"
			: json_is_object(value) ? "map[string]interface {}"
						: "<nil>";
	return vd_fail(cause, -EINVAL, "Unsupported type: '%s'", t);
}

/* Go's int64(f) on amd64: truncation toward zero; out of range gives INT64_MIN. */
static int64_t
sim_go_float_to_int(double f)
{
	if (!(f > -9223372036854775808.0 && f < 9223372036854775808.0))
		return INT64_MIN;
	return (int64_t)f;
}

int
sim_parse_options(const json_t *options, struct sim_gen_opts *out, char **cause)
{
	out->load.num_ctx = 0;
	out->load.num_gpu = -1;
	out->load.main_gpu = -1;
	out->load.num_batch = 0;
	out->load.num_thread = 0;
	out->load.use_mmap = -1;
	out->load.draft_num_predict = 4;
	out->num_predict = -1;
	out->seed = -1;
	if (options == NULL || json_is_null(options))
		return 0;
	struct {
		const char *key;
		int64_t *dst;
	} ints[] = {
	    {"num_ctx", &out->load.num_ctx},
	    {"num_gpu", &out->load.num_gpu},
	    {"main_gpu", &out->load.main_gpu},
	    {"num_batch", &out->load.num_batch},
	    {"num_predict", &out->num_predict},
	    {"seed", &out->seed},
	    {"num_thread", &out->load.num_thread},
	    {"draft_num_predict", &out->load.draft_num_predict},
	};
	static const char *const other_ints[] = {"num_keep", "top_k", "repeat_last_n"};
	static const char *const floats[] = {"top_p",
					     "min_p",
					     "typical_p",
					     "temperature",
					     "repeat_penalty",
					     "presence_penalty",
					     "frequency_penalty"};
	for (size_t i = 0; i < VD_ARRAY_LEN(ints); i++) {
		json_t *v = json_object_get(options, ints[i].key);
		if (v == NULL || json_is_null(v))
			continue;
		/* JSON numbers reach Ollama's FromMap as float64, converted with Go's
		 * int64(t): truncated toward zero (2.9 is 2, -1.5 is -1). */
		if (json_is_integer(v))
			*ints[i].dst = json_integer_value(v);
		else if (json_is_real(v))
			*ints[i].dst = sim_go_float_to_int(json_real_value(v));
		else
			return vd_fail(cause, -EINVAL, "option \"%s\" must be of type integer",
				       ints[i].key);
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(other_ints); i++) {
		json_t *v = json_object_get(options, other_ints[i]);
		if (v != NULL && !json_is_null(v) && !json_is_number(v))
			return vd_fail(cause, -EINVAL, "option \"%s\" must be of type integer",
				       other_ints[i]);
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(floats); i++) {
		json_t *v = json_object_get(options, floats[i]);
		if (v != NULL && !json_is_null(v) && !json_is_number(v))
			return vd_fail(cause, -EINVAL, "option \"%s\" must be of type float32",
				       floats[i]);
	}
	json_t *mmap = json_object_get(options, "use_mmap");
	if (mmap != NULL && !json_is_null(mmap)) {
		if (!json_is_boolean(mmap))
			return vd_fail(cause, -EINVAL,
				       "option \"use_mmap\" must be of type boolean");
		out->load.use_mmap = json_is_true(mmap) ? 1 : 0;
	}
	json_t *ctx = json_object_get(options, "num_ctx");
	if (ctx != NULL && !json_is_null(ctx) && out->load.num_ctx <= 0)
		out->load.num_ctx = SIM_NUM_CTX_ZERO;
	if (out->load.main_gpu < 0)
		out->load.main_gpu = -1;
	return 0;
}

bool
sim_host_allowed(const char *host)
{
	if (host == NULL || *host == '\0')
		return true;
	char name[256];
	vd_strlcpy(name, host, sizeof(name));
	/* Strip the port: "[::1]:11434", "127.0.0.1:11434", "localhost:11434". */
	if (name[0] == '[') {
		char *end = strchr(name, ']');
		if (end == NULL)
			return false;
		*end = '\0';
		memmove(name, name + 1, strlen(name + 1) + 1);
	} else {
		char *colon = strchr(name, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL)
			*colon = '\0';
	}
	unsigned char a4[4], a6[16];
	if (inet_pton(AF_INET, name, a4) == 1)
		return a4[0] == 127 || a4[0] == 10 || a4[0] == 0 ||
		       (a4[0] == 172 && (a4[1] & 0xf0) == 16) || (a4[0] == 192 && a4[1] == 168);
	if (inet_pton(AF_INET6, name, a6) == 1) {
		static const unsigned char loop[16] = {[15] = 1}, any[16] = {0};
		return memcmp(a6, loop, 16) == 0 || memcmp(a6, any, 16) == 0 ||
		       (a6[0] & 0xfe) == 0xfc;
	}
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strcmp(name, "localhost") == 0 || vd_str_has_suffix(name, ".localhost") ||
	    vd_str_has_suffix(name, ".local") || vd_str_has_suffix(name, ".internal"))
		return true;
	char hostname[256];
	if (gethostname(hostname, sizeof(hostname)) == 0) {
		hostname[sizeof(hostname) - 1] = '\0';
		if (strcasecmp(hostname, name) == 0)
			return true;
	}
	return false;
}

/* ---- reply helpers ------------------------------------------------------ */

static void
sim_now_utc(char *buf, size_t size)
{
	vd_format_rfc3339_utc(vd_now_wall_ns(), buf, size);
}

static json_t *
sim_model_details(const struct sim_model *m)
{
	return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf",
			 "family", m->family, "families", m->family, "parameter_size",
			 m->parameter_size, "quantization_level", m->quantization_level);
}

static json_t *
sim_capabilities_json(const struct sim_model *m)
{
	static const struct {
		unsigned bit;
		const char *name;
	} caps[] = {{SIM_CAP_COMPLETION, "completion"}, {SIM_CAP_VISION, "vision"},
		    {SIM_CAP_TOOLS, "tools"},		{SIM_CAP_THINKING, "thinking"},
		    {SIM_CAP_INSERT, "insert"},		{SIM_CAP_EMBEDDING, "embedding"}};
	json_t *arr = json_array();
	for (size_t i = 0; i < VD_ARRAY_LEN(caps); i++)
		if (m->capabilities & caps[i].bit)
			json_array_append_new(arr, json_string(caps[i].name));
	return arr;
}

/* /api/tags' capability order (model_list_cache.go): what the GGUF says (completion or
 * embedding), then tools, insert, thinking from the template, vision from a projector. */
static json_t *
sim_tags_capabilities_json(const struct sim_model *m)
{
	static const struct {
		unsigned bit;
		const char *name;
	} caps[] = {{SIM_CAP_COMPLETION, "completion"}, {SIM_CAP_EMBEDDING, "embedding"},
		    {SIM_CAP_TOOLS, "tools"},		{SIM_CAP_INSERT, "insert"},
		    {SIM_CAP_THINKING, "thinking"},	{SIM_CAP_VISION, "vision"}};
	json_t *arr = json_array();
	for (size_t i = 0; i < VD_ARRAY_LEN(caps); i++)
		if (m->capabilities & caps[i].bit)
			json_array_append_new(arr, json_string(caps[i].name));
	return arr;
}

static double
sim_scale(const struct sim_api *api)
{
	return api->sched->cfg.time_scale;
}

/* Real elapsed time since t0, as simulated nanoseconds. */
static int64_t
sim_elapsed_sim_ns(const struct sim_api *api, int64_t t0_mono_ns)
{
	return (int64_t)((double)(vd_now_mono_ns() - t0_mono_ns) * sim_scale(api));
}

/* ---- request lifecycle -------------------------------------------------- */

static void
sim_req_free(struct sim_req *r)
{
	if (r->job_submitted)
		sim_sched_finish(r->api->sched, &r->job);
	if (r->req != NULL)
		vd_http_req_release(r->req); /* nobody answered it: end it unanswered */
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->reset_timer != NULL)
		event_free(r->reset_timer);
	sim_fault_effect_cleanup(&r->fault);
	LIST_REMOVE(r, entry);
	free(r->model_name);
	free(r->prompt);
	json_decref(r->inputs);
	vd_buf_cleanup(&r->text);
	free(r);
}

static void
sim_req_close_cb(struct vd_http_req *req, void *arg)
{
	(void)req;
	struct sim_req *r = arg;
	vd_debug(API, "client went away during %s", r->model_name);
	sim_req_free(r); /* releases the request */
}

static void
sim_req_reply_json(struct sim_req *r, int status, json_t *body)
{
	if (r->req != NULL) {
		vd_http_reply_json(r->req, status, body);
		r->req = NULL;
	} else {
		json_decref(body);
	}
	sim_req_free(r);
}

static void
sim_req_reply_error(struct sim_req *r, int status, const char *msg)
{
	sim_req_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* Sends one NDJSON line, starting the chunked reply on the first. */
static void
sim_req_send_line(struct sim_req *r, json_t *obj)
{
	char *text = vd_json_dumps_go(obj);
	json_decref(obj);
	if (r->req == NULL) {
		free(text);
		return;
	}
	if (!r->headers_sent) {
		vd_http_req_set_header(r->req, "Content-Type", "application/x-ndjson");
		vd_http_req_start(r->req, 200);
		r->headers_sent = true;
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL: one chunk per line, as Ollama flushes */
	vd_http_req_send(r->req, text, len + 1);
	free(text);
}

static void
sim_req_end_stream(struct sim_req *r)
{
	if (r->req != NULL) {
		vd_http_req_end(r->req);
		r->req = NULL;
	}
	sim_req_free(r);
}

/* ---- faults drawn by a request ----------------------------------------------- */

static double
sim_req_tps(const struct sim_req *r)
{
	double f = r->fault.active && r->fault.kind == SIM_FAULT_SLOW ? r->fault.factor : 1.0;
	return sim_compute_stream_tps(r->api->sched, r->job.runner) * f;
}

/* Whether the crash, reset or runtime OOM this request drew is due after emitted
 * tokens (at the latest when the reply is complete). */
static bool
sim_req_fault_due(const struct sim_req *r, bool complete)
{
	if (!r->fault.active ||
	    (r->fault.kind != SIM_FAULT_CRASH && r->fault.kind != SIM_FAULT_RESET &&
	     r->fault.kind != SIM_FAULT_OOM_RUNTIME))
		return false;
	return complete || r->emitted >= r->fault.after_chunks;
}

static void
sim_req_reset_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_req *r = arg;
	if (r->fault.kind == SIM_FAULT_CRASH)
		sim_fault_crash_now("mid-reply");
	if (r->req != NULL) {
		vd_http_req_abort(r->req);
		r->req = NULL;
	}
	sim_req_free(r);
}

static json_t *sim_chunk_new(struct sim_req *r, const char *content, bool done);
static void sim_req_send_line(struct sim_req *r, json_t *obj);
static void sim_req_end_stream(struct sim_req *r);

/* Applies the crash, reset or runtime OOM the request drew. Consumes r. */
static void
sim_req_fault_fire(struct sim_req *r)
{
	if (r->fault.kind == SIM_FAULT_OOM_RUNTIME) {
		vd_log(SIM, "fault: runtime out of memory during %s: every runner expires",
		       r->model_name);
		sim_sched_runtime_oom(r->api->sched);
		if (r->stream && r->headers_sent) {
			sim_req_send_line(r, json_pack("{s:s}", "error", SIM_RUNTIME_OOM_ERROR));
			sim_req_end_stream(r);
		} else {
			sim_req_reply_error(r, 500, SIM_RUNTIME_OOM_ERROR);
		}
		return;
	}
	/* A crash waits for the chunks sent so far to leave, then kills the process. A
	 * reset starts the reply (a non-streamed one with half its JSON), then closes the
	 * connection once that has left, without the rest. */
	r->fault.active = false;
	if (r->fault.kind == SIM_FAULT_CRASH) {
		r->reset_timer = evtimer_new(r->api->base, sim_req_reset_cb, r);
		struct timeval tv = {0, 50 * 1000};
		evtimer_add(r->reset_timer, &tv);
		return;
	}
	if (r->req != NULL && !r->headers_sent) {
		vd_http_req_set_header(r->req, "Content-Type",
				       r->stream ? "application/x-ndjson"
						 : "application/json; charset=utf-8");
		vd_http_req_start(r->req, 200);
		r->headers_sent = true;
	}
	if (r->req != NULL && !r->stream) {
		json_t *chunk = sim_chunk_new(r, vd_buf_str(&r->text), false);
		char *text = vd_json_dumps_go(chunk);
		json_decref(chunk);
		vd_http_req_send(r->req, text, strlen(text) / 2);
		free(text);
	}
	vd_log(SIM, "fault: reset of %s after %lld chunks", r->model_name, (long long)r->emitted);
	r->reset_timer = evtimer_new(r->api->base, sim_req_reset_cb, r);
	struct timeval tv = {0, 50 * 1000};
	evtimer_add(r->reset_timer, &tv);
}

/* A hang holds the replies of requests in flight too: run cb again when it ends. */
static bool
sim_req_wait_hang(struct sim_req *r, struct event **timer, event_callback_fn cb)
{
	int64_t left = sim_faults_hang_left_ns(r->api->faults);
	if (left <= 0)
		return false;
	if (*timer == NULL)
		*timer = evtimer_new(r->api->base, cb, r);
	struct timeval tv = {.tv_sec = (time_t)(left / 1000000000),
			     .tv_usec = (suseconds_t)(left % 1000000000 / 1000 + 1000)};
	evtimer_add(*timer, &tv);
	return true;
}

/* ---- generation --------------------------------------------------------- */

static json_t *
sim_chunk_new(struct sim_req *r, const char *content, bool done)
{
	char ts[48];
	sim_now_utc(ts, sizeof(ts));
	json_t *o = json_object();
	json_object_set_new(o, "model", json_string(r->model_name));
	json_object_set_new(o, "created_at", json_string(ts));
	if (r->kind == SIM_REQ_CHAT)
		json_object_set_new(
		    o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", content));
	else
		json_object_set_new(o, "response", json_string(content));
	json_object_set_new(o, "done", json_boolean(done));
	return o;
}

static void
sim_chunk_add_metrics(struct sim_req *r, json_t *o)
{
	json_object_set_new(o, "done_reason", json_string(r->length_limited ? "length" : "stop"));
	if (r->kind == SIM_REQ_GENERATE && !r->raw) {
		json_t *ctx = json_array();
		uint64_t st = r->text_seed;
		for (int64_t i = 0; i < r->prompt_tokens + r->emitted; i++)
			json_array_append_new(ctx,
					      json_integer((json_int_t)(vd_rand64(&st) % 128000)));
		json_object_set_new(o, "context", ctx);
	}
	json_object_set_new(o, "total_duration",
			    json_integer(sim_elapsed_sim_ns(r->api, r->job.start_mono_ns)));
	json_object_set_new(
	    o, "load_duration",
	    json_integer((json_int_t)((double)(r->job.runner_mono_ns - r->job.start_mono_ns) *
				      sim_scale(r->api))));
	json_object_set_new(o, "prompt_eval_count", json_integer(r->prompt_tokens));
	json_object_set_new(o, "prompt_eval_duration", json_integer(r->prompt_eval_ns));
	json_object_set_new(o, "eval_count", json_integer(r->emitted));
	json_object_set_new(o, "eval_duration", json_integer(r->gen_ns));
}

static void
sim_gen_finish(struct sim_req *r)
{
	json_t *o = sim_chunk_new(r, r->stream ? "" : vd_buf_str(&r->text), true);
	sim_chunk_add_metrics(r, o);
	if (r->stream) {
		sim_req_send_line(r, o);
		sim_req_end_stream(r);
	} else {
		sim_req_reply_json(r, 200, o);
	}
}

static void
sim_gen_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_req *r = arg;
	if (sim_req_wait_hang(r, &r->timer, sim_gen_timer_cb)) {
		r->tick_mono_ns = vd_now_mono_ns(); /* a hang pauses the stream */
		return;
	}
	/* The stream's pace follows the device's load (sim-compute.c), so progress is
	 * integrated tick by tick at the rate of the moment. */
	double tps = sim_req_tps(r);
	int64_t now = vd_now_mono_ns();
	double dt = (double)(now - r->tick_mono_ns) * sim_scale(r->api);
	r->tick_mono_ns = now;
	if (r->eval_left_ns > 0) {
		double used = dt < (double)r->eval_left_ns ? dt : (double)r->eval_left_ns;
		r->eval_left_ns -= (int64_t)used;
		dt -= used;
	}
	if (dt > 0 && r->eval_left_ns <= 0) {
		r->gen_tokens += dt / 1e9 * tps;
		r->gen_ns += (int64_t)dt;
	}
	int64_t due = (int64_t)r->gen_tokens;
	if (due > r->target_tokens)
		due = r->target_tokens;
	while (r->emitted < due) {
		if (sim_req_fault_due(r, false)) {
			sim_req_fault_fire(r);
			return;
		}
		const char *tok = sim_text_token(r->text_seed, r->emitted);
		if (r->emitted == 0 && tok[0] == ' ')
			tok++;
		r->emitted++;
		const struct sim_runner *runner = r->job.runner;
		if (runner->layers > 0 && runner->gpu_layers < runner->layers)
			r->api->sched->counters.cpu_tokens +=
			    (double)(runner->layers - runner->gpu_layers) / (double)runner->layers;
		if (r->stream)
			sim_req_send_line(r, sim_chunk_new(r, tok, false));
		else
			vd_buf_append_str(&r->text, tok);
	}
	if (r->emitted >= r->target_tokens) {
		/* The tick came after the last token was due: count time up to that token. */
		double over = r->gen_tokens - (double)r->target_tokens;
		if (over > 0)
			r->gen_ns -= (int64_t)(over / tps * 1e9);
		if (r->gen_ns < 0)
			r->gen_ns = 0;
		if (sim_req_fault_due(r, true))
			sim_req_fault_fire(r);
		else
			sim_gen_finish(r);
		return;
	}
	double next_sim = (double)(r->eval_left_ns > 0 ? r->eval_left_ns : 0) +
			  ((double)(r->emitted + 1) - r->gen_tokens) / tps * 1e9;
	double wait_real = next_sim / sim_scale(r->api);
	if (wait_real < 1e6)
		wait_real = 1e6;
	struct timeval tv = {.tv_sec = (time_t)(wait_real / 1e9),
			     .tv_usec = (suseconds_t)(fmod(wait_real, 1e9) / 1e3)};
	evtimer_add(r->timer, &tv);
}

static void
sim_embed_reply(struct sim_req *r)
{
	const struct sim_model *m = r->job.model;
	size_t dims = (size_t)m->embedding_length;
	if (r->dimensions > 0 && (size_t)r->dimensions < dims)
		dims = (size_t)r->dimensions;
	double *vec = xcalloc((size_t)m->embedding_length, sizeof(double));
	json_t *out;
	if (r->kind == SIM_REQ_EMBEDDINGS) {
		json_t *arr = json_array();
		if (*r->prompt != '\0') {
			sim_text_embed(m->name, r->prompt, vec, dims);
			for (size_t i = 0; i < dims; i++)
				json_array_append_new(arr, json_real(vec[i]));
		}
		out = json_pack("{s:o}", "embedding", arr);
	} else {
		json_t *all = json_array();
		size_t i;
		json_t *in;
		json_array_foreach(r->inputs, i, in)
		{
			json_t *arr = json_array();
			sim_text_embed(m->name, json_string_value(in), vec, dims);
			for (size_t k = 0; k < dims; k++)
				json_array_append_new(arr, json_real((float)vec[k]));
			json_array_append_new(all, arr);
		}
		out = json_object();
		json_object_set_new(out, "model", json_string(r->model_name));
		json_object_set_new(out, "embeddings", all);
		if (json_array_size(r->inputs) > 0) {
			json_object_set_new(
			    out, "total_duration",
			    json_integer(sim_elapsed_sim_ns(r->api, r->job.start_mono_ns)));
			json_object_set_new(
			    out, "load_duration",
			    json_integer((
				json_int_t)((double)(r->job.runner_mono_ns - r->job.start_mono_ns) *
					    sim_scale(r->api))));
			json_object_set_new(out, "prompt_eval_count",
					    json_integer(r->prompt_tokens));
		}
	}
	free(vec);
	sim_req_reply_json(r, 200, out);
}

static void
sim_embed_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_req *r = arg;
	if (sim_req_wait_hang(r, &r->timer, sim_embed_timer_cb))
		return;
	if (sim_req_fault_due(r, true))
		sim_req_fault_fire(r);
	else
		sim_embed_reply(r);
}

static void sim_req_ready_cb(struct sim_job *job, void *arg);

static void
sim_req_ready_later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_req *r = arg;
	sim_req_ready_cb(&r->job, r);
}

static void
sim_req_ready_cb(struct sim_job *job, void *arg)
{
	struct sim_req *r = arg;
	(void)job;
	if (sim_req_wait_hang(r, &r->timer, sim_req_ready_later_cb))
		return;
	if (r->timer != NULL) {
		event_free(r->timer); /* the hang's; a new timer paces the reply */
		r->timer = NULL;
	}
	if (r->load_only && sim_req_fault_due(r, true)) {
		sim_req_fault_fire(r);
		return;
	}
	if (r->load_only) {
		char ts[48];
		sim_now_utc(ts, sizeof(ts));
		json_t *o;
		if (r->kind == SIM_REQ_CHAT)
			o = json_pack("{s:s,s:s,s:{s:s,s:s},s:b,s:s}", "model", r->model_name,
				      "created_at", ts, "message", "role", "assistant", "content",
				      "", "done", 1, "done_reason", "load");
		else if (r->kind == SIM_REQ_GENERATE)
			o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "model", r->model_name, "created_at",
				      ts, "response", "", "done", 1, "done_reason", "load");
		else if (r->kind == SIM_REQ_EMBED)
			o = json_pack("{s:s,s:[]}", "model", r->model_name, "embeddings");
		else
			o = json_pack("{s:[]}", "embedding");
		sim_req_reply_json(r, 200, o);
		return;
	}
	r->slot_mono_ns = vd_now_mono_ns();
	double tps = r->job.runner->tokens_per_s;
	bool embedding = r->kind == SIM_REQ_EMBED || r->kind == SIM_REQ_EMBEDDINGS;
	/* Prompt processing runs about 8x (embeddings 20x) faster than generation. */
	double pp_rate = tps * (embedding ? 20 : 8);
	int64_t ptoks = r->prompt_tokens > 0 ? r->prompt_tokens : 1;
	r->prompt_eval_ns = (int64_t)((double)ptoks / pp_rate * 1e9);
	if (embedding) {
		r->timer = evtimer_new(r->api->base, sim_embed_timer_cb, r);
		double real = (double)r->prompt_eval_ns / sim_scale(r->api);
		struct timeval tv = {.tv_sec = (time_t)(real / 1e9),
				     .tv_usec = (suseconds_t)(fmod(real, 1e9) / 1e3)};
		evtimer_add(r->timer, &tv);
		return;
	}
	r->timer = evtimer_new(r->api->base, sim_gen_timer_cb, r);
	r->tick_mono_ns = r->slot_mono_ns;
	r->eval_left_ns = r->prompt_eval_ns;
	sim_gen_timer_cb(-1, 0, r);
}

static void
sim_req_error_cb(struct sim_job *job, void *arg)
{
	struct sim_req *r = arg;
	if (r->stream && r->headers_sent) {
		sim_req_send_line(r, json_pack("{s:s}", "error", job->error_message));
		sim_req_end_stream(r);
		return;
	}
	char *msg = xstrdup(job->error_message);
	sim_req_reply_error(r, job->error_status, msg);
	free(msg);
}

static struct sim_req *
sim_req_new(struct sim_api *api, struct vd_http_req *req, enum sim_req_kind kind)
{
	struct sim_req *r = xcalloc(1, sizeof(*r));
	r->api = api;
	r->req = req;
	r->kind = kind;
	r->stream = true;
	r->dimensions = 0;
	vd_buf_init(&r->text, 64 * VD_MIB);
	r->job.start_mono_ns = vd_now_mono_ns();
	r->fault = api->cur_fault; /* taken over */
	memset(&api->cur_fault, 0, sizeof(api->cur_fault));
	LIST_INSERT_HEAD(&api->live, r, entry);
	vd_http_req_on_close(req, sim_req_close_cb, r);
	return r;
}

/* Common tail: options, scheduling. Consumes r on every path. */
static void
sim_req_schedule(struct sim_req *r, const struct sim_model *m, json_t *body)
{
	char *cause = NULL;
	json_t *options = json_object_get(body, "options");
	if (options != NULL && !json_is_null(options) && !json_is_object(options)) {
		const char *st = r->kind == SIM_REQ_GENERATE ? "GenerateRequest"
				 : r->kind == SIM_REQ_CHAT   ? "ChatRequest"
				 : r->kind == SIM_REQ_EMBED  ? "EmbedRequest"
							     : "EmbeddingRequest";
		sim_go_type_error(&cause, options, st, "options", "map[string]interface {}");
		sim_req_reply_error(r, 400, cause);
		free(cause);
		return;
	}
	if (sim_parse_options(options, &r->opts, &cause) < 0) {
		sim_req_reply_error(r, 500, cause);
		free(cause);
		return;
	}
	r->job.model = m;
	r->job.opts = r->opts.load;
	r->job.wants_slot = !r->load_only;
	r->job.ready_cb = sim_req_ready_cb;
	r->job.error_cb = sim_req_error_cb;
	r->job.arg = r;
	if (r->prompt != NULL) {
		r->prompt_tokens = sim_text_count_tokens(r->prompt);
		r->text_seed = sim_text_seed(m->name, r->prompt, r->opts.seed);
		if (r->opts.num_predict >= 0) {
			int64_t natural = sim_text_default_length(r->text_seed);
			r->target_tokens =
			    r->opts.num_predict < natural ? r->opts.num_predict : natural;
			r->length_limited = r->opts.num_predict < natural;
		} else {
			r->target_tokens = sim_text_default_length(r->text_seed);
		}
	}
	/* The callbacks may run (and free r) inside submit: mark it first, and touch r
	 * afterwards only when the scheduler refused it. */
	r->job_submitted = true;
	if (sim_sched_submit(r->api->sched, &r->job) == 503) {
		r->job_submitted = false;
		sim_req_reply_error(
		    r, 503, "server busy, please try again.  maximum pending requests exceeded");
	}
}

static int
sim_req_keep_alive(struct sim_req *r, json_t *body, char **cause)
{
	json_t *ka = json_object_get(body, "keep_alive");
	if (ka == NULL || json_is_null(ka))
		return 0;
	int rc = sim_parse_keep_alive(ka, &r->job.keep_alive_ns, cause);
	if (rc == 0)
		r->job.has_keep_alive = true;
	return rc;
}

static bool
sim_parse_body(struct sim_api *api, struct vd_http_req *req, json_t **body)
{
	char *cause = NULL;
	int status = vd_http_parse_json_object(req, api->cfg.body_cap, body, &cause);
	if (status == 0)
		return true;
	vd_http_reply_error(req, status, "%s", cause);
	free(cause);
	return false;
}

static void
sim_handle_generate_or_chat(struct vd_http_req *req, struct sim_api *api, bool chat)
{
	json_t *body = NULL;
	if (!sim_parse_body(api, req, &body))
		return;
	const char *st = chat ? "ChatRequest" : "GenerateRequest";
	char *cause = NULL;
	const char *model_name = "", *prompt = "", *system = "", *suffix = "";
	bool stream = true, raw = false;
	struct vd_buf text;
	vd_buf_init(&text, SIM_API_BODY_HARD);
	if (sim_get_string(body, "model", st, &model_name, "", &cause) < 0 ||
	    sim_get_bool(body, "stream", st, &stream, true, &cause) < 0)
		goto out_bad;
	if (!chat && (sim_get_string(body, "prompt", st, &prompt, "", &cause) < 0 ||
		      sim_get_string(body, "system", st, &system, "", &cause) < 0 ||
		      sim_get_string(body, "suffix", st, &suffix, "", &cause) < 0 ||
		      sim_get_bool(body, "raw", st, &raw, false, &cause) < 0))
		goto out_bad;
	size_t nmessages = 0;
	if (chat) {
		json_t *msgs = json_object_get(body, "messages");
		if (msgs != NULL && !json_is_null(msgs)) {
			if (!json_is_array(msgs)) {
				sim_go_type_error(&cause, msgs, st, "messages", "[]api.Message");
				goto out_bad;
			}
			size_t i;
			json_t *msg;
			json_array_foreach(msgs, i, msg)
			{
				const char *role = "", *content = "";
				if (!json_is_object(msg)) {
					sim_go_type_error(&cause, msg, st, "messages",
							  "api.Message");
					goto out_bad;
				}
				if (sim_get_string(msg, "role", "Message", &role, "", &cause) < 0 ||
				    sim_get_string(msg, "content", "Message", &content, "",
						   &cause) < 0)
					goto out_bad;
				vd_buf_printf(&text, "%s: %s\n", role, content);
			}
			nmessages = json_array_size(msgs);
		}
	} else {
		vd_buf_printf(&text, "%s%s%s", system, prompt, suffix);
	}
	enum sim_api_rules rules = sim_sched_is_v033(api->sched) ? SIM_RULES_V033 : SIM_RULES_V012;
	struct sim_request_needs needs;
	if (sim_validate_decode(body, chat, rules, &needs, &cause) < 0)
		goto out_bad;
	if (*model_name == '\0') {
		if (chat)
			vd_http_reply_error(req, 400, "model is required");
		else
			vd_http_reply_error(req, 404, "model '' not found");
		goto out;
	}
	struct sim_req *r = sim_req_new(api, req, chat ? SIM_REQ_CHAT : SIM_REQ_GENERATE);
	r->model_name = xstrdup(model_name);
	r->stream = stream;
	r->raw = raw;
	if (sim_req_keep_alive(r, body, &cause) < 0) {
		sim_req_reply_error(r, 400, cause);
		goto out;
	}
	const struct sim_model *m = sim_catalogue_find(api->cat, model_name);
	if (m == NULL) {
		char *msg = xasprintf("model '%s' not found", model_name);
		sim_req_reply_error(r, 404, msg);
		free(msg);
		goto out;
	}
	bool empty = chat ? nmessages == 0 : *prompt == '\0';
	if (empty && r->job.has_keep_alive && r->job.keep_alive_ns == 0) {
		sim_sched_expire_model(api->sched, m);
		char ts[48];
		sim_now_utc(ts, sizeof(ts));
		json_t *o =
		    chat ? json_pack("{s:s,s:s,s:{s:s,s:s},s:b,s:s}", "model", model_name,
				     "created_at", ts, "message", "role", "assistant", "content",
				     "", "done", 1, "done_reason", "unload")
			 : json_pack("{s:s,s:s,s:s,s:b,s:s}", "model", model_name, "created_at", ts,
				     "response", "", "done", 1, "done_reason", "unload");
		sim_req_reply_json(r, 200, o);
		goto out;
	}
	if (sim_validate_model(m, model_name, chat, rules, &needs, &cause) < 0) {
		sim_req_reply_error(r, 400, cause);
		goto out;
	}
	r->load_only = empty;
	r->prompt = vd_buf_take(&text);
	sim_req_schedule(r, m, body);
	goto out;
out_bad:
	vd_http_reply_error(req, 400, "%s", cause);
out:
	free(cause);
	vd_buf_cleanup(&text);
	json_decref(body);
}

static void
sim_handle_generate(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_handle_generate_or_chat(req, arg, false);
}

static void
sim_handle_chat(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_handle_generate_or_chat(req, arg, true);
}

static void
sim_handle_embed_common(struct vd_http_req *req, struct sim_api *api, bool legacy)
{
	json_t *body = NULL;
	if (!sim_parse_body(api, req, &body))
		return;
	const char *st = legacy ? "EmbeddingRequest" : "EmbedRequest";
	char *cause = NULL;
	const char *model_name = "", *prompt = "";
	json_t *inputs = json_array();
	if (sim_get_string(body, "model", st, &model_name, "", &cause) < 0)
		goto out_bad;
	if (legacy) {
		if (sim_get_string(body, "prompt", st, &prompt, "", &cause) < 0)
			goto out_bad;
	} else {
		json_t *in = json_object_get(body, "input");
		if (json_is_string(in)) {
			if (json_string_length(in) > 0)
				json_array_append(inputs, in);
		} else if (json_is_array(in)) {
			size_t i;
			json_t *s;
			json_array_foreach(in, i, s)
			{
				if (!json_is_string(s)) {
					cause = xstrdup("invalid input type");
					goto out_bad;
				}
				json_array_append(inputs, s);
			}
		} else if (in != NULL && !json_is_null(in)) {
			cause = xstrdup("invalid input type");
			goto out_bad;
		}
	}
	if (*model_name == '\0') {
		if (legacy)
			vd_http_reply_error(req, 400, "model is required");
		else
			vd_http_reply_error(req, 404, "model '' not found");
		goto out;
	}
	struct sim_req *r = sim_req_new(api, req, legacy ? SIM_REQ_EMBEDDINGS : SIM_REQ_EMBED);
	r->model_name = xstrdup(model_name);
	r->stream = false;
	json_t *dims = json_object_get(body, "dimensions");
	if (!legacy && dims != NULL && !json_is_null(dims)) {
		if (!json_is_integer(dims)) {
			sim_go_type_error(&cause, dims, st, "dimensions", "int");
			sim_req_reply_error(r, 400, cause);
			goto out;
		}
		r->dimensions = json_integer_value(dims);
	}
	if (sim_req_keep_alive(r, body, &cause) < 0) {
		sim_req_reply_error(r, 400, cause);
		goto out;
	}
	const struct sim_model *m = sim_catalogue_find(api->cat, model_name);
	if (m == NULL) {
		char *msg = xasprintf("model \"%s\" not found, try pulling it first", model_name);
		sim_req_reply_error(r, 404, msg);
		free(msg);
		goto out;
	}
	struct vd_buf all;
	vd_buf_init(&all, SIM_API_BODY_HARD);
	if (legacy) {
		vd_buf_append_str(&all, prompt);
		r->load_only = *prompt == '\0';
	} else {
		size_t i;
		json_t *s;
		json_array_foreach(inputs, i, s) vd_buf_append_str(&all, json_string_value(s));
		r->load_only = json_array_size(inputs) == 0;
	}
	r->prompt = vd_buf_take(&all);
	vd_buf_cleanup(&all);
	r->inputs = json_incref(inputs);
	sim_req_schedule(r, m, body);
	goto out;
out_bad:
	vd_http_reply_error(req, 400, "%s", cause);
out:
	free(cause);
	json_decref(inputs);
	json_decref(body);
}

static void
sim_handle_embed(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_handle_embed_common(req, arg, false);
}

static void
sim_handle_embeddings(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_handle_embed_common(req, arg, true);
}

/* ---- simple endpoints --------------------------------------------------- */

static void
sim_handle_root(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	(void)arg;
	vd_http_reply_text(req, 200, "Ollama is running");
}

static void
sim_handle_version(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	vd_http_reply_json(req, 200, json_pack("{s:s}", "version", api->cfg.version));
}

static void
sim_handle_tags(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	size_t total = sim_catalogue_count(api->cat), n = 0;
	const struct sim_model **order = xcalloc(total ? total : 1, sizeof(*order));
	for (size_t i = 0; i < total; i++)
		if (sim_catalogue_at(api->cat, i)->installed)
			order[n++] = sim_catalogue_at(api->cat, i);
	/* Newest modified_at first (insertion sort: catalogues are small). */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && order[k]->modified_ns > order[k - 1]->modified_ns;
		     k--) {
			const struct sim_model *t = order[k];
			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	json_t *models = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct sim_model *m = order[i];
		char ts[48];
		vd_format_rfc3339_local(m->modified_ns, ts, sizeof(ts));
		json_t *details = sim_model_details(m);
		json_object_set_new(details, "context_length", json_integer(m->context_length));
		json_object_set_new(details, "embedding_length", json_integer(m->embedding_length));
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(m->name));
		json_object_set_new(o, "model", json_string(m->name));
		json_object_set_new(o, "modified_at", json_string(ts));
		json_object_set_new(o, "size", json_integer((json_int_t)m->file_bytes));
		json_object_set_new(o, "digest", json_string(m->digest));
		json_object_set_new(o, "details", details);
		json_object_set_new(o, "capabilities", sim_tags_capabilities_json(m));
		json_array_append_new(models, o);
	}
	free(order);
	vd_http_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

static void
sim_handle_show(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	json_t *body = NULL;
	if (!sim_parse_body(api, req, &body))
		return;
	char *cause = NULL;
	const char *model_name = "", *legacy_name = "";
	if (sim_get_string(body, "model", "ShowRequest", &model_name, "", &cause) < 0 ||
	    sim_get_string(body, "name", "ShowRequest", &legacy_name, "", &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	if (*model_name == '\0')
		model_name = legacy_name;
	if (*model_name == '\0') {
		vd_http_reply_error(req, 400, "model is required");
		goto out;
	}
	if (!sim_models_name_is_valid(model_name)) {
		vd_http_reply_error(req, 400, "invalid model name");
		goto out;
	}
	const struct sim_model *m = sim_catalogue_find(api->cat, model_name);
	if (m == NULL) {
		/* ShowHandler names the model as model.Name's DisplayShortest: with a tag. */
		char *shortest = sim_catalogue_canonical_name(model_name);
		vd_http_reply_error(req, 404, "model '%s' not found", shortest);
		free(shortest);
		goto out;
	}
	char ts[48];
	vd_format_rfc3339_local(m->modified_ns, ts, sizeof(ts));
	const char *arch = m->family;
	char key[128];
	json_t *info = json_object();
	json_object_set_new(info, "general.architecture", json_string(arch));
	json_object_set_new(info, "general.file_type", json_integer(2));
	json_object_set_new(info, "general.parameter_count",
			    json_integer((json_int_t)(m->file_bytes * 2)));
	json_object_set_new(info, "general.quantization_version", json_integer(2));
	snprintf(key, sizeof(key), "%s.attention.head_count", arch);
	json_object_set_new(info, key, json_integer(m->head_count));
	snprintf(key, sizeof(key), "%s.attention.head_count_kv", arch);
	json_object_set_new(info, key, json_integer(m->head_count_kv));
	snprintf(key, sizeof(key), "%s.block_count", arch);
	json_object_set_new(info, key, json_integer(m->block_count));
	snprintf(key, sizeof(key), "%s.context_length", arch);
	json_object_set_new(info, key, json_integer(m->context_length));
	snprintf(key, sizeof(key), "%s.embedding_length", arch);
	json_object_set_new(info, key, json_integer(m->embedding_length));
	json_object_set_new(info, "tokenizer.ggml.tokens", json_array());
	json_t *o = json_object();
	json_object_set_new(o, "license", json_string("Simulated model: no license."));
	json_object_set_new(
	    o, "modelfile",
	    json_sprintf("# Modelfile generated by ollama-sim\nFROM %s\n", m->name));
	json_object_set_new(o, "parameters",
			    json_string("stop                           \"<|end|>\""));
	json_object_set_new(o, "template", json_string("{{ .System }}{{ .Prompt }}"));
	json_object_set_new(o, "details", sim_model_details(m));
	json_object_set_new(o, "model_info", info);
	json_object_set_new(o, "capabilities", sim_capabilities_json(m));
	json_object_set_new(o, "modified_at", json_string(ts));
	vd_http_reply_json(req, 200, o);
out:
	free(cause);
	json_decref(body);
}

static void
sim_handle_ps(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	struct sim_runner *list[64];
	size_t n = 0;
	struct sim_runner *r;
	TAILQ_FOREACH(r, &api->sched->runners, entry)
	if (sim_runner_is_listed(api->sched, r) && n < VD_ARRAY_LEN(list))
		list[n++] = r;
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && list[k]->expires_wall_ns > list[k - 1]->expires_wall_ns;
		     k--) {
			struct sim_runner *t = list[k];
			list[k] = list[k - 1];
			list[k - 1] = t;
		}
	json_t *models = json_array();
	for (size_t i = 0; i < n; i++) {
		r = list[i];
		char ts[48];
		vd_format_rfc3339_local(r->expires_wall_ns, ts, sizeof(ts));
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(r->model->name));
		json_object_set_new(o, "model", json_string(r->model->name));
		json_object_set_new(o, "size", json_integer((json_int_t)r->size_bytes));
		json_object_set_new(o, "digest", json_string(r->model->digest));
		json_object_set_new(o, "details", sim_model_details(r->model));
		json_object_set_new(o, "expires_at", json_string(ts));
		json_object_set_new(o, "size_vram",
				    json_integer((json_int_t)sim_runner_vram_total(r)));
		json_object_set_new(o, "context_length", json_integer(r->ctx));
		json_array_append_new(models, o);
	}
	vd_http_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

/* ---- control endpoints -------------------------------------------------- */

static const struct {
	const char *name;
	uint32_t bit;
} sim_field_names[] = {
    {"temperature", SIM_FIELD_TEMPERATURE},
    {"power", SIM_FIELD_POWER},
    {"fan", SIM_FIELD_FAN},
    {"utilization", SIM_FIELD_UTILIZATION},
    {"clocks", SIM_FIELD_CLOCKS},
    {"thresholds", SIM_FIELD_THRESHOLDS},
    {"processes", SIM_FIELD_PROCESSES},
    {"memory_v2", SIM_FIELD_MEMORY_V2},
    {"clock_events", SIM_FIELD_CLOCK_EVENTS},
};

static json_t *
sim_gpu_json(const struct sim_gpu *g)
{
	json_t *unsup = json_array();
	for (size_t i = 0; i < VD_ARRAY_LEN(sim_field_names); i++)
		if (g->unsupported & sim_field_names[i].bit)
			json_array_append_new(unsup, json_string(sim_field_names[i].name));
	json_t *o = json_object();
	json_object_set_new(o, "index", json_integer(g->index));
	json_object_set_new(o, "machine_index", json_integer(g->machine_index));
	json_object_set_new(o, "name", json_string(g->name));
	json_object_set_new(o, "uuid", json_string(g->uuid));
	json_object_set_new(o, "total", json_integer((json_int_t)g->total_bytes));
	json_object_set_new(o, "reserved", json_integer((json_int_t)g->reserved_bytes));
	json_object_set_new(o, "used",
			    json_integer((json_int_t)(g->reserved_bytes + g->used_by_models_bytes +
						      sim_gpu_others_bytes(g))));
	json_object_set_new(o, "used_by_models", json_integer((json_int_t)g->used_by_models_bytes));
	json_object_set_new(o, "used_by_others", json_integer((json_int_t)g->other_bytes));
	json_object_set_new(o, "used_by_other_servers", json_integer((json_int_t)g->peer_bytes));
	json_object_set_new(o, "other_process_name", json_string(g->other_name));
	json_object_set_new(o, "free", json_integer((json_int_t)sim_gpu_free_bytes(g)));
	json_object_set_new(o, "temperature", json_integer((json_int_t)(g->temperature_c + 0.5)));
	json_object_set_new(o, "utilization", json_integer(sim_gpu_utilization(g)));
	json_object_set_new(o, "power_mw", json_integer(sim_gpu_power_mw(g)));
	json_object_set_new(o, "fan_pct", json_integer(sim_gpu_fan_pct(g)));
	json_object_set_new(o, "sm_clock_mhz", json_integer(sim_gpu_sm_clock_mhz(g)));
	json_object_set_new(o, "clock_event_reasons",
			    json_integer((json_int_t)sim_gpu_clock_event_reasons(g)));
	json_object_set_new(o, "lost", json_boolean(g->lost));
	json_object_set_new(o, "unsupported", unsup);
	return o;
}

static void
sim_handle_state(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	struct sim_sched *s = api->sched;
	sim_hw_refresh(api->hw);
	json_t *gpus = json_array();
	for (unsigned i = 0; i < api->hw->ngpus; i++)
		json_array_append_new(gpus, sim_gpu_json(&api->hw->gpus[i]));
	json_t *models = json_array();
	struct sim_runner *r;
	uint64_t ram_used = 0;
	TAILQ_FOREACH(r, &s->runners, entry)
	{
		if (r->oom)
			continue;
		ram_used += r->ram_bytes;
		json_t *vram = json_array();
		int first_gpu = -1;
		for (unsigned i = 0; i < api->hw->ngpus; i++) {
			if (r->vram_bytes[i] == 0)
				continue;
			if (first_gpu < 0)
				first_gpu = (int)i;
			json_array_append_new(vram, json_pack("{s:i,s:I}", "gpu", (int)i, "bytes",
							      (json_int_t)r->vram_bytes[i]));
		}
		const char *placement = first_gpu < 0	   ? "cpu"
					: r->ram_bytes > 0 ? "partial"
							   : "gpu";
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(r->model->name));
		json_object_set_new(o, "placement", json_string(placement));
		json_object_set_new(o, "gpu",
				    first_gpu < 0 ? json_null() : json_integer(first_gpu));
		json_object_set_new(o, "gpus", vram);
		json_object_set_new(o, "size", json_integer((json_int_t)r->size_bytes));
		json_object_set_new(o, "size_vram",
				    json_integer((json_int_t)sim_runner_vram_total(r)));
		json_object_set_new(o, "ram_bytes", json_integer((json_int_t)r->ram_bytes));
		json_object_set_new(o, "estimate", json_integer((json_int_t)r->estimate_bytes));
		json_object_set_new(o, "context_length", json_integer(r->ctx));
		json_object_set_new(o, "parallel", json_integer(r->parallel));
		json_object_set_new(o, "pid", json_integer(r->pid));
		json_object_set_new(o, "loading", json_boolean(r->loading));
		json_object_set_new(o, "layers", json_integer(r->layers));
		json_object_set_new(o, "gpu_layers", json_integer(r->gpu_layers));
		json_object_set_new(o, "cpu_share",
				    json_real(r->layers > 0 ? (double)(r->layers - r->gpu_layers) /
								  (double)r->layers
							    : 0.0));
		json_object_set_new(o, "ubatch", json_integer(r->ubatch));
		json_object_set_new(o, "active", json_integer(r->slots_busy));
		json_object_set_new(o, "refcount", json_integer(r->refcount));
		json_object_set_new(o, "waiting", json_integer(r->refcount - r->slots_busy));
		json_object_set_new(o, "keep_alive_ns", json_integer(r->session_ns));
		json_array_append_new(models, o);
	}
	json_t *counters = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)s->counters.requests, "loads",
	    (json_int_t)s->counters.loads, "unloads", (json_int_t)s->counters.unloads, "evictions",
	    (json_int_t)s->counters.evictions, "oom_failures", (json_int_t)s->counters.oom_failures,
	    "rejected_503", (json_int_t)s->counters.rejected_503);
	json_t *o = json_object();
	json_object_set_new(o, "gpus", gpus);
	json_object_set_new(o, "ram",
			    json_pack("{s:I,s:I,s:I}", "total", (json_int_t)api->hw->ram_bytes,
				      "used_by_models", (json_int_t)ram_used,
				      "used_by_other_servers",
				      (json_int_t)api->hw->peer_ram_bytes));
	json_object_set_new(o, "models", models);
	json_object_set_new(o, "pending", json_integer(s->npending));
	json_object_set_new(counters, "cpu_spills",
			    json_integer((json_int_t)s->counters.cpu_spills));
	json_object_set_new(counters, "load_retries",
			    json_integer((json_int_t)s->counters.load_retries));
	json_object_set_new(counters, "aborted_loads",
			    json_integer((json_int_t)s->counters.aborted_loads));
	json_object_set_new(counters, "recovery_waits",
			    json_integer((json_int_t)s->counters.recovery_waits));
	json_object_set_new(counters, "runtime_ooms",
			    json_integer((json_int_t)s->counters.runtime_ooms));
	json_object_set_new(counters, "cpu_tokens", json_real(s->counters.cpu_tokens));
	json_object_set_new(o, "counters", counters);
	json_object_set_new(o, "faults", sim_faults_json(api->faults));
	json_object_set_new(o, "time_scale", json_real(s->cfg.time_scale));
	json_object_set_new(o, "state_file",
			    api->hw->state_path ? json_string(api->hw->state_path) : json_null());
	vd_http_reply_json(req, 200, o);
}

static int
sim_apply_gpu_settings(struct sim_gpu *g, json_t *body, char **cause)
{
	static const char *const known[] = {"other_mb",	     "other_bytes",	"process_name",
					    "temperature_c", "utilization_pct", "lost",
					    "unsupported"};
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v)
	{
		bool ok = false;
		for (size_t i = 0; i < VD_ARRAY_LEN(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok)
			return vd_fail(
			    cause, -EINVAL,
			    "unknown field \"%s\" (known: other_mb, other_bytes, "
			    "process_name, temperature_c, utilization_pct, lost, unsupported)",
			    key);
	}
	struct sim_gpu next = *g;
	if ((v = json_object_get(body, "other_mb")) != NULL) {
		if (!json_is_number(v) || json_number_value(v) < 0)
			return vd_fail(cause, -EINVAL, "\"other_mb\" must be a number >= 0");
		next.other_bytes = (uint64_t)(json_number_value(v) * (double)VD_MIB);
	}
	if ((v = json_object_get(body, "other_bytes")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return vd_fail(cause, -EINVAL, "\"other_bytes\" must be an integer >= 0");
		next.other_bytes = (uint64_t)json_integer_value(v);
	}
	if (next.other_bytes > g->total_bytes)
		return vd_fail(cause, -EINVAL, "other-process memory exceeds the GPU's %llu bytes",
			       (unsigned long long)g->total_bytes);
	if ((v = json_object_get(body, "process_name")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 63)
			return vd_fail(cause, -EINVAL,
				       "\"process_name\" must be a string of 1 to 63 bytes");
		vd_strlcpy(next.other_name, json_string_value(v), sizeof(next.other_name));
	}
	if ((v = json_object_get(body, "temperature_c")) != NULL) {
		if (json_is_null(v)) {
			next.temperature_fixed = false;
		} else if (json_is_number(v) && json_number_value(v) >= 0 &&
			   json_number_value(v) <= 150) {
			next.temperature_c = json_number_value(v);
			next.temperature_fixed = true;
		} else {
			return vd_fail(cause, -EINVAL,
				       "\"temperature_c\" must be a number from 0 to 150, or null");
		}
	}
	if ((v = json_object_get(body, "utilization_pct")) != NULL) {
		if (json_is_null(v))
			next.utilization_override = -1;
		else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
			 json_integer_value(v) <= 100)
			next.utilization_override = (int)json_integer_value(v);
		else
			return vd_fail(
			    cause, -EINVAL,
			    "\"utilization_pct\" must be an integer from 0 to 100, or null");
	}
	if ((v = json_object_get(body, "lost")) != NULL) {
		if (!json_is_boolean(v))
			return vd_fail(cause, -EINVAL, "\"lost\" must be true or false");
		next.lost = json_is_true(v);
	}
	if ((v = json_object_get(body, "unsupported")) != NULL) {
		if (!json_is_array(v))
			return vd_fail(cause, -EINVAL,
				       "\"unsupported\" must be an array of field names");
		next.unsupported = 0;
		size_t i;
		json_t *f;
		json_array_foreach(v, i, f)
		{
			uint32_t bit = 0;
			for (size_t k = 0; k < VD_ARRAY_LEN(sim_field_names); k++)
				if (json_is_string(f) &&
				    strcmp(json_string_value(f), sim_field_names[k].name) == 0)
					bit = sim_field_names[k].bit;
			if (bit == 0)
				return vd_fail(cause, -EINVAL,
					       "unsupported[%zu]: unknown field name (known: "
					       "temperature, power, fan, utilization, clocks, "
					       "thresholds, processes, memory_v2, clock_events)",
					       i);
			next.unsupported |= bit;
		}
	}
	*g = next;
	return 0;
}

static void
sim_handle_gpu(struct vd_http_req *req, const char *path, void *arg)
{
	struct sim_api *api = arg;
	const char *idx = path + strlen("/sim/gpu/");
	int64_t index;
	if (vd_parse_int64(idx, 0, SIM_MAX_GPUS - 1, &index, "GPU index", NULL) < 0 ||
	    (unsigned)index >= api->hw->ngpus) {
		vd_http_reply_error(req, 404, "no GPU \"%s\": this sim has %u GPU(s)", idx,
				    api->hw->ngpus);
		return;
	}
	json_t *body = NULL;
	if (!sim_parse_body(api, req, &body))
		return;
	char *cause = NULL;
	struct sim_gpu *g = &api->hw->gpus[index];
	if (sim_apply_gpu_settings(g, body, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		free(cause);
		json_decref(body);
		return;
	}
	json_decref(body);
	vd_log(SIM, "GPU %u: other processes %llu bytes, %.0f C, lost %d", g->index,
	       (unsigned long long)g->other_bytes, g->temperature_c, g->lost);
	sim_sched_publish(api->sched);
	vd_http_reply_json(req, 200, sim_gpu_json(g));
}

static void
sim_handle_reset(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	sim_hw_reset(api->hw);
	sim_sched_reset(api->sched);
	sim_faults_clear(api->faults, true);
	vd_http_reply_json(req, 200, json_pack("{s:s}", "status", "reset"));
}

static void
sim_handle_fault(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	json_t *body = NULL;
	if (!sim_parse_body(api, req, &body))
		return;
	char *cause = NULL;
	json_t *added = NULL;
	if (sim_faults_add(api->faults, body, &added, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		free(cause);
	} else {
		vd_http_reply_json(req, 200, added);
	}
	json_decref(body);
}

static void
sim_handle_faults(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct sim_api *api = arg;
	if (vd_http_req_method(req) == VD_HTTP_DELETE)
		sim_faults_clear(api->faults, false);
	vd_http_reply_json(req, 200, sim_faults_json(api->faults));
}

static void
sim_handle_pull(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_models_pull(((struct sim_api *)arg)->models, req);
}

static void
sim_handle_delete(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_models_delete(((struct sim_api *)arg)->models, req);
}

static void
sim_handle_copy(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	sim_models_copy(((struct sim_api *)arg)->models, req);
}

static void
sim_handle_blob(struct vd_http_req *req, const char *path, void *arg)
{
	sim_models_head_blob(((struct sim_api *)arg)->models, req, path + strlen("/api/blobs/"));
}

static void
sim_handle_not_found(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	(void)arg;
	vd_http_reply_text(req, 404, "404 page not found");
}

static void
sim_handle_method_not_allowed(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	(void)arg;
	vd_http_reply_text(req, 405, "405 method not allowed");
}

static const struct vd_http_route sim_routes[] = {
    {VD_HTTP_GET | VD_HTTP_HEAD, "/", false, sim_handle_root, 0},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/version", false, sim_handle_version, 0},
    {VD_HTTP_GET | VD_HTTP_HEAD, "/api/tags", false, sim_handle_tags, 0},
    {VD_HTTP_GET, "/api/ps", false, sim_handle_ps, 0},
    {VD_HTTP_POST, "/api/show", false, sim_handle_show, 0},
    {VD_HTTP_POST, "/api/generate", false, sim_handle_generate, 0},
    {VD_HTTP_POST, "/api/chat", false, sim_handle_chat, 0},
    {VD_HTTP_POST, "/api/embed", false, sim_handle_embed, 0},
    {VD_HTTP_POST, "/api/embeddings", false, sim_handle_embeddings, 0},
    {VD_HTTP_POST, "/api/pull", false, sim_handle_pull, 0},
    {VD_HTTP_DELETE, "/api/delete", false, sim_handle_delete, 0},
    {VD_HTTP_POST, "/api/copy", false, sim_handle_copy, 0},
    {VD_HTTP_HEAD, "/api/blobs/", true, sim_handle_blob, 0},
    {VD_HTTP_GET, "/sim/state", false, sim_handle_state, 0},
    {VD_HTTP_POST, "/sim/gpu/", true, sim_handle_gpu, 0},
    {VD_HTTP_POST, "/sim/reset", false, sim_handle_reset, 0},
    {VD_HTTP_POST, "/sim/fault", false, sim_handle_fault, 0},
    {VD_HTTP_GET | VD_HTTP_DELETE, "/sim/faults", false, sim_handle_faults, 0},
};

/* A request a hang parked, replayed when the hang is over. */
static void
sim_api_resume_cb(struct vd_http_req *req, void *arg)
{
	struct sim_api *api = arg;
	api->sched->counters.requests++;
	vd_http_router_cb(req, &api->router);
}

/* The model an Ollama request names, spelled as the catalogue does when it is there;
 * NULL when the body names none. The body stays for the handler. */
static char *
sim_api_peek_model(struct sim_api *api, struct vd_http_req *req)
{
	struct evbuffer *in = vd_http_req_body(req);
	size_t len = evbuffer_get_length(in);
	if (len == 0 || len > api->cfg.body_cap)
		return NULL;
	const unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)len);
	json_t *body = json_loadb((const char *)data, len, 0, NULL);
	const json_t *name = json_object_get(body, "model");
	if (!json_is_string(name) || json_string_length(name) == 0)
		name = json_object_get(body, "name");
	char *model = NULL;
	if (json_is_string(name) && json_string_length(name) > 0) {
		const struct sim_model *m = sim_catalogue_find(api->cat, json_string_value(name));
		model = xstrdup(m != NULL ? m->name : json_string_value(name));
	}
	json_decref(body);
	return model;
}

/* Draws a fault for an Ollama request. Returns true when the fault answered (or
 * parked, or dropped) the request; false when it goes on to its handler, with
 * api->cur_fault set for a generation to take. */
static bool
sim_api_fault_cb(struct sim_api *api, struct vd_http_req *req)
{
	const char *endpoint = vd_http_req_path(req);
	char *model = sim_api_peek_model(api, req);
	struct sim_fault_effect e;
	bool drawn = sim_faults_draw(api->faults, endpoint, model, &e);
	free(model);
	if (!drawn)
		return false;
	bool generates =
	    sim_fault_endpoint_generates(endpoint) && vd_http_req_method(req) == VD_HTTP_POST;
	switch (e.kind) {
	case SIM_FAULT_HANG:
		sim_faults_hang(api->faults, e.seconds);
		sim_faults_park(api->faults, req);
		break;
	case SIM_FAULT_ERROR:
		api->sched->counters.requests++;
		vd_http_reply_json(req, e.status, json_incref(e.body));
		break;
	case SIM_FAULT_CRASH:
		if (e.after_chunks < 0 || !generates)
			sim_fault_crash_now("on a request");
		api->cur_fault = e;
		return false;
	case SIM_FAULT_RESET:
		if (!generates) {
			vd_log(SIM, "fault: reset of %s before any reply", endpoint);
			vd_http_req_abort(req);
			break;
		}
		if (e.after_chunks < 0)
			e.after_chunks = 1;
		api->cur_fault = e;
		return false;
	default:
		api->cur_fault = e; /* slow, oom_runtime */
		return false;
	}
	sim_fault_effect_cleanup(&e);
	return true;
}

/* The generic callback: host check, OPTIONS, counters, then the route table. */
void
sim_api_request_cb(struct vd_http_req *req, void *arg)
{
	struct sim_api *api = arg;
	if (api->cfg.check_host && !sim_host_allowed(vd_http_req_header(req, "Host"))) {
		vd_http_req_reply(req, 403, NULL, 0);
		return;
	}
	if (vd_http_req_method(req) == VD_HTTP_OPTIONS) {
		vd_http_req_reply(req, 204, NULL, 0);
		return;
	}
	if (vd_str_has_prefix(vd_http_req_path(req), "/sim/")) {
		vd_http_router_cb(req, &api->router);
		return;
	}
	if (sim_faults_is_hanging(api->faults)) {
		sim_faults_park(api->faults, req);
		return;
	}
	if (sim_faults_armed(api->faults) && sim_api_fault_cb(api, req))
		return;
	api->sched->counters.requests++;
	vd_http_router_cb(req, &api->router);
	sim_fault_effect_cleanup(&api->cur_fault); /* when no request took it */
}

struct sim_api *
sim_api_new(struct event_base *base, struct sim_sched *sched, struct sim_hw *hw,
	    struct sim_catalogue *cat, const struct sim_api_config *cfg)
{
	struct sim_api *api = xcalloc(1, sizeof(*api));
	api->base = base;
	api->sched = sched;
	api->hw = hw;
	api->cat = cat;
	api->cfg = *cfg;
	if (api->cfg.body_cap == 0)
		api->cfg.body_cap = SIM_API_BODY_CAP;
	LIST_INIT(&api->live);
	api->faults = sim_faults_new(base, cfg->fault_rate, cfg->fault_kinds, cfg->fault_seed,
				     sim_api_resume_cb, api);
	sched->faults = api->faults;
	api->models = sim_models_new(base, sched, cat, cfg->pull_bytes_per_s, api->cfg.body_cap);
	api->router = (struct vd_http_router){
	    .routes = sim_routes,
	    .nroutes = VD_ARRAY_LEN(sim_routes),
	    .not_found = sim_handle_not_found,
	    .method_not_allowed = sim_handle_method_not_allowed,
	    .arg = api,
	};
	return api;
}

void
sim_api_free(struct sim_api *api)
{
	if (api == NULL)
		return;
	struct sim_req *r;
	while ((r = LIST_FIRST(&api->live)) != NULL)
		sim_req_free(r);
	api->sched->faults = NULL;
	sim_faults_free(api->faults);
	sim_models_free(api->models);
	free(api);
}
