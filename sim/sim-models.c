/*
 * sim-models.c: model management as Ollama v0.33's server/routes.go answers it
 * (PullHandler, DeleteHandler, CopyHandler, HeadBlobHandler).
 *
 * The simulated registry is the catalogue: every model it was started with and every
 * "pullable" one can be pulled. A pull streams Ollama's progress objects ("pulling
 * manifest", "pulling <12 hex>" with digest/total/completed for the one weights layer,
 * "verifying sha256 digest", "writing manifest", "success"); the layer arrives at
 * --pull-bw bytes per simulated second, reported every 60 ms of simulated time as
 * Ollama's download ticker does. A layer whose blob is already present (an installed
 * model shares it) is reported complete at once. Delete unloads the model's runner
 * first (as `ollama rm` does before it calls the API) and clears `installed`; copy
 * adds a record with the source's digests. Records are never freed while ollama-sim
 * runs, so runners and jobs may keep pointing at a deleted model.
 * Callers: sim-api.c's route table.
 */
#include "sim-models.h"

#include "buf.h"
#include "http-util.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define SIM_PULL_TICK_NS     (60 * VD_NS_PER_MS) /* Ollama's progress ticker, simulated time */
#define SIM_PULL_MIN_REAL_NS (5 * VD_NS_PER_MS)

enum sim_pull_step { SIM_PULL_MANIFEST, SIM_PULL_LAYER };

struct sim_pull {
	struct sim_models *sm;
	struct vd_http_req *req;
	struct sim_model *model; /* NULL: not in the registry */
	bool stream;
	bool headers_sent;
	enum sim_pull_step step;
	int64_t layer_start_mono_ns;
	struct event *timer;
	LIST_ENTRY(sim_pull) entry;
};

struct sim_models {
	struct event_base *base;
	struct sim_sched *sched;
	struct sim_catalogue *cat;
	double pull_bytes_per_s;
	size_t body_cap;
	LIST_HEAD(, sim_pull) pulls;
};

/* ---- helpers ------------------------------------------------------------ */

/* Go's %q of s (strconv.Quote for the ASCII range; other bytes are copied). Caller
 * frees. */
static char *
sim_models_go_quote(const char *s)
{
	struct vd_buf b;
	vd_buf_init(&b, 4 * strlen(s) + 3);
	vd_buf_append_str(&b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			vd_buf_append_str(&b, "\\\"");
			break;
		case '\\':
			vd_buf_append_str(&b, "\\\\");
			break;
		case '\n':
			vd_buf_append_str(&b, "\\n");
			break;
		case '\r':
			vd_buf_append_str(&b, "\\r");
			break;
		case '\t':
			vd_buf_append_str(&b, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				vd_buf_printf(&b, "\\x%02x", *p);
			else
				vd_buf_append(&b, p, 1);
		}
	}
	vd_buf_append_str(&b, "\"");
	return vd_buf_take(&b);
}

static bool
sim_models_part_is_valid(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max || !(isalnum((unsigned char)p[0]) || p[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && strchr("_-.", p[i]) == NULL)
			return false;
	return true;
}

bool
sim_models_name_is_valid(const char *name)
{
	if (name == NULL || *name == '\0')
		return false;
	const char *slash = strrchr(name, '/');
	const char *base = slash != NULL ? slash + 1 : name;
	const char *colon = strchr(base, ':');
	size_t model_len = colon != NULL ? (size_t)(colon - base) : strlen(base);
	if (!sim_models_part_is_valid(base, model_len, 80))
		return false;
	if (colon != NULL && !sim_models_part_is_valid(colon + 1, strlen(colon + 1), 80))
		return false;
	/* host/namespace before the model: at most two parts. */
	int parts = 0;
	const char *p = name;
	while (p < base) {
		const char *end = strchr(p, '/');
		if (++parts > 2)
			return false;
		size_t len = (size_t)(end - p);
		/* A host may carry a port ("localhost:5000"). */
		bool ok = len > 0 && len <= 350;
		for (size_t i = 0; ok && i < len; i++)
			ok = isalnum((unsigned char)p[i]) || strchr("_-.:", p[i]) != NULL;
		if (!ok)
			return false;
		p = end + 1;
	}
	return true;
}

/* Reads an optional string field, with Go's decoder message on a wrong type. */
static int
sim_models_get_string(json_t *body, const char *key, const char *go_struct, const char **out,
		      char **cause)
{
	json_t *v = json_object_get(body, key);
	*out = "";
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		const char *t = json_is_number(v)    ? "number"
				: json_is_boolean(v) ? "bool"
				: json_is_array(v)   ? "array"
						     : "object";
		return vd_fail(
		    cause, -EINVAL,
		    "json: cannot unmarshal %s into Go struct field %s.%s of type string", t,
		    go_struct, key);
	}
	*out = json_string_value(v);
	return 0;
}

static bool
sim_models_parse_body(struct sim_models *sm, struct vd_http_req *req, json_t **body)
{
	char *cause = NULL;
	int status = vd_http_parse_json_object(req, sm->body_cap, body, &cause);
	if (status == 0)
		return true;
	vd_http_reply_error(req, status, "%s", cause);
	free(cause);
	return false;
}

/* Whether an installed model holds the blob with this hex digest. */
static bool
sim_models_blob_exists(const struct sim_catalogue *cat, const char *hex)
{
	for (size_t i = 0; i < sim_catalogue_count(cat); i++) {
		const struct sim_model *m = sim_catalogue_at(cat, i);
		if (m->installed && strcmp(m->blob_digest, hex) == 0)
			return true;
	}
	return false;
}

/* ---- pull --------------------------------------------------------------- */

static void
sim_pull_free(struct sim_pull *p)
{
	if (p->req != NULL)
		vd_http_req_release(p->req);
	if (p->timer != NULL)
		event_free(p->timer);
	LIST_REMOVE(p, entry);
	free(p);
}

static void
sim_pull_close_cb(struct vd_http_req *req, void *arg)
{
	(void)req;
	struct sim_pull *p = arg;
	vd_debug(API, "pull client went away");
	sim_pull_free(p);
}

/* One progress object: streamed as an NDJSON line, or kept for the final reply. */
static void
sim_pull_progress(struct sim_pull *p, const char *status, uint64_t total, uint64_t completed)
{
	if (!p->stream)
		return; /* waitForStream replies with the last one, always "success" */
	json_t *o = json_object();
	json_object_set_new(o, "status", json_string(status));
	if (total > 0) {
		json_object_set_new(o, "digest", json_sprintf("sha256:%s", p->model->blob_digest));
		json_object_set_new(o, "total", json_integer((json_int_t)total));
		if (completed > 0)
			json_object_set_new(o, "completed", json_integer((json_int_t)completed));
	}
	char *text = vd_json_dumps_go(o);
	json_decref(o);
	if (!p->headers_sent) {
		vd_http_req_set_header(p->req, "Content-Type", "application/x-ndjson");
		vd_http_req_start(p->req, 200);
		p->headers_sent = true;
	}
	size_t len = strlen(text);
	text[len] = '\n';
	vd_http_req_send(p->req, text, len + 1);
	free(text);
}

static void
sim_pull_end(struct sim_pull *p)
{
	if (p->stream) {
		vd_http_req_end(p->req);
	} else {
		vd_http_reply_json(p->req, 200, json_pack("{s:s}", "status", "success"));
	}
	p->req = NULL;
	sim_pull_free(p);
}

static void
sim_pull_fail(struct sim_pull *p, const char *msg)
{
	if (p->headers_sent) {
		json_t *o = json_pack("{s:s}", "error", msg);
		char *text = vd_json_dumps_go(o);
		json_decref(o);
		size_t len = strlen(text);
		text[len] = '\n';
		vd_http_req_send(p->req, text, len + 1);
		free(text);
		vd_http_req_end(p->req);
	} else {
		vd_http_reply_error(p->req, 500, "%s", msg);
	}
	p->req = NULL;
	sim_pull_free(p);
}

static void
sim_pull_schedule(struct sim_pull *p, double real_ns)
{
	if (real_ns < SIM_PULL_MIN_REAL_NS)
		real_ns = SIM_PULL_MIN_REAL_NS;
	struct timeval tv = {.tv_sec = (time_t)(real_ns / 1e9),
			     .tv_usec = (suseconds_t)(fmod(real_ns, 1e9) / 1e3)};
	evtimer_add(p->timer, &tv);
}

static void
sim_pull_finish(struct sim_pull *p)
{
	sim_pull_progress(p, "verifying sha256 digest", 0, 0);
	sim_pull_progress(p, "writing manifest", 0, 0);
	if (!p->model->installed) {
		p->model->installed = true;
		p->model->modified_ns = vd_now_wall_ns();
	}
	vd_log(SIM, "pulled %s", p->model->name);
	sim_pull_progress(p, "success", 0, 0);
	sim_pull_end(p);
}

static void
sim_pull_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_pull *p = arg;
	struct sim_models *sm = p->sm;
	double scale = sm->sched->cfg.time_scale;
	const char *short_digest = NULL;
	char label[32];
	if (p->model != NULL) {
		snprintf(label, sizeof(label), "pulling %.12s", p->model->blob_digest);
		short_digest = label;
	}
	if (p->step == SIM_PULL_MANIFEST) {
		if (p->model == NULL) {
			sim_pull_fail(p, "pull model manifest: file does not exist");
			return;
		}
		if (sim_models_blob_exists(sm->cat, p->model->blob_digest)) {
			sim_pull_progress(p, short_digest, p->model->file_bytes,
					  p->model->file_bytes);
			sim_pull_finish(p);
			return;
		}
		p->step = SIM_PULL_LAYER;
		p->layer_start_mono_ns = vd_now_mono_ns();
		sim_pull_schedule(p, (double)SIM_PULL_TICK_NS / scale);
		return;
	}
	double elapsed_sim = (double)(vd_now_mono_ns() - p->layer_start_mono_ns) * scale / 1e9;
	double total = (double)p->model->file_bytes;
	double done = elapsed_sim * sm->pull_bytes_per_s;
	if (done >= total) {
		sim_pull_progress(p, short_digest, p->model->file_bytes, p->model->file_bytes);
		sim_pull_finish(p);
		return;
	}
	sim_pull_progress(p, short_digest, p->model->file_bytes, (uint64_t)done);
	double left_real_ns = (total - done) / sm->pull_bytes_per_s * 1e9 / scale;
	double tick_real_ns = (double)SIM_PULL_TICK_NS / scale;
	sim_pull_schedule(p, left_real_ns < tick_real_ns ? left_real_ns : tick_real_ns);
}

void
sim_models_pull(struct sim_models *sm, struct vd_http_req *req)
{
	json_t *body = NULL;
	if (!sim_models_parse_body(sm, req, &body))
		return;
	char *cause = NULL;
	const char *model = "", *legacy = "";
	json_t *jstream = json_object_get(body, "stream");
	if (sim_models_get_string(body, "model", "PullRequest", &model, &cause) < 0 ||
	    sim_models_get_string(body, "name", "PullRequest", &legacy, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	if (jstream != NULL && !json_is_null(jstream) && !json_is_boolean(jstream)) {
		vd_http_reply_error(req, 400,
				    "json: cannot unmarshal %s into Go struct field "
				    "PullRequest.stream of type bool",
				    json_is_string(jstream) ? "string" : "number");
		goto out;
	}
	const char *name = *model != '\0' ? model : legacy;
	if (!sim_models_name_is_valid(name)) {
		vd_http_reply_error(req, 400, "invalid model name");
		goto out;
	}
	struct sim_pull *p = xcalloc(1, sizeof(*p));
	p->sm = sm;
	p->req = req;
	p->stream = !json_is_false(jstream);
	p->model = sim_catalogue_lookup(sm->cat, name, false);
	p->timer = evtimer_new(sm->base, sim_pull_timer_cb, p);
	LIST_INSERT_HEAD(&sm->pulls, p, entry);
	vd_http_req_on_close(req, sim_pull_close_cb, p);
	sim_pull_progress(p, "pulling manifest", 0, 0);
	sim_pull_schedule(p, 0);
out:
	free(cause);
	json_decref(body);
}

/* ---- delete, copy, blobs ------------------------------------------------ */

void
sim_models_delete(struct sim_models *sm, struct vd_http_req *req)
{
	json_t *body = NULL;
	if (!sim_models_parse_body(sm, req, &body))
		return;
	char *cause = NULL;
	const char *model = "", *legacy = "";
	if (sim_models_get_string(body, "model", "DeleteRequest", &model, &cause) < 0 ||
	    sim_models_get_string(body, "name", "DeleteRequest", &legacy, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	const char *name = *model != '\0' ? model : legacy;
	if (!sim_models_name_is_valid(name)) {
		char *q = sim_models_go_quote(name);
		vd_http_reply_error(req, 400, "name %s is invalid", q);
		free(q);
		goto out;
	}
	struct sim_model *m = sim_catalogue_lookup(sm->cat, name, true);
	if (m == NULL) {
		vd_http_reply_error(req, 404, "model '%s' not found", name);
		goto out;
	}
	sim_sched_expire_model(sm->sched, m);
	m->installed = false;
	vd_log(SIM, "deleted %s", m->name);
	vd_http_req_reply(req, 200, NULL, 0);
out:
	free(cause);
	json_decref(body);
}

void
sim_models_copy(struct sim_models *sm, struct vd_http_req *req)
{
	json_t *body = NULL;
	if (!sim_models_parse_body(sm, req, &body))
		return;
	char *cause = NULL, *dst_name = NULL;
	const char *source = "", *destination = "";
	if (sim_models_get_string(body, "source", "CopyRequest", &source, &cause) < 0 ||
	    sim_models_get_string(body, "destination", "CopyRequest", &destination, &cause) < 0) {
		vd_http_reply_error(req, 400, "%s", cause);
		goto out;
	}
	if (!sim_models_name_is_valid(source) || !sim_models_name_is_valid(destination)) {
		bool src_bad = !sim_models_name_is_valid(source);
		char *q = sim_models_go_quote(src_bad ? source : destination);
		vd_http_reply_error(req, 400, "%s %s is invalid",
				    src_bad ? "source" : "destination", q);
		free(q);
		goto out;
	}
	struct sim_model *src = sim_catalogue_lookup(sm->cat, source, true);
	if (src == NULL) {
		char *q = sim_models_go_quote(source);
		vd_http_reply_error(req, 404, "model %s not found", q);
		free(q);
		goto out;
	}
	struct sim_model *old = sim_catalogue_lookup(sm->cat, destination, true);
	if (old == src) {
		vd_http_req_reply(req, 200, NULL, 0); /* the same manifest, rewritten */
		goto out;
	}
	/* An existing destination keeps its spelling (getExistingName) and is replaced. */
	dst_name = old != NULL ? xstrdup(old->name) : sim_catalogue_canonical_name(destination);
	struct sim_model *copy = sim_catalogue_add_copy(sm->cat, src, dst_name, vd_now_wall_ns());
	if (copy == NULL) {
		vd_http_reply_error(req, 500, "ollama-sim: more than %d copies",
				    SIM_CATALOGUE_MAX_COPIES);
		goto out;
	}
	if (old != NULL)
		old->installed = false;
	vd_log(SIM, "copied %s to %s", src->name, copy->name);
	vd_http_req_reply(req, 200, NULL, 0);
out:
	free(dst_name);
	free(cause);
	json_decref(body);
}

void
sim_models_head_blob(struct sim_models *sm, struct vd_http_req *req, const char *digest)
{
	if (*digest == '\0') {
		vd_http_reply_text(req, 404, "404 page not found");
		return;
	}
	bool valid = strlen(digest) == 71 && strncmp(digest, "sha256", 6) == 0 &&
		     (digest[6] == ':' || digest[6] == '-');
	for (size_t i = 7; valid && i < 71; i++)
		valid = isxdigit((unsigned char)digest[i]);
	if (!valid) {
		vd_http_reply_error(req, 400, "invalid digest format");
		return;
	}
	if (!sim_models_blob_exists(sm->cat, digest + 7)) {
		char *q = sim_models_go_quote(digest);
		vd_http_reply_error(req, 404, "blob %s not found", q);
		free(q);
		return;
	}
	vd_http_req_reply(req, 200, NULL, 0);
}

/* ---- lifecycle ---------------------------------------------------------- */

struct sim_models *
sim_models_new(struct event_base *base, struct sim_sched *sched, struct sim_catalogue *cat,
	       double pull_bytes_per_s, size_t body_cap)
{
	struct sim_models *sm = xcalloc(1, sizeof(*sm));
	sm->base = base;
	sm->sched = sched;
	sm->cat = cat;
	sm->pull_bytes_per_s =
	    pull_bytes_per_s > 0 ? pull_bytes_per_s : SIM_PULL_BYTES_PER_S_DEFAULT;
	sm->body_cap = body_cap;
	LIST_INIT(&sm->pulls);
	return sm;
}

void
sim_models_free(struct sim_models *sm)
{
	if (sm == NULL)
		return;
	struct sim_pull *p;
	while ((p = LIST_FIRST(&sm->pulls)) != NULL)
		sim_pull_free(p);
	free(sm);
}
