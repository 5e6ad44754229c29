/*
 * sim-fault.c: the fault machinery of ollama-sim (see sim-fault.h).
 *
 * Pending faults are kept in arrival order; a request draws the first one whose
 * model, endpoint and kind match it, and each draw takes one of the fault's count
 * (the fault goes at zero). Kinds that act on a generation (slow, oom_runtime, and
 * crash or reset after some chunks) match only the generating endpoints. A crash
 * without after_chunks is drawn by the next matching load instead, and kills the
 * process halfway through that load. Random faults (--fault-rate) are drawn only
 * when no pending fault matched, from a generator seeded by --fault-seed, so a soak
 * run can be repeated. A hang parks every Ollama request (the control endpoints under /sim stay
 * answered) until its timer fires, then replays them in arrival order. Callers:
 * sim-api.c (draws, hangs, parking, the endpoints) and sim-sched.c (loads).
 */
#include "sim-fault.h"

#include "httpd.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

static const char *const sim_fault_names[SIM_FAULT_NKINDS] = {
    [SIM_FAULT_CRASH] = "crash",
    [SIM_FAULT_HANG] = "hang",
    [SIM_FAULT_ERROR] = "error",
    [SIM_FAULT_SLOW] = "slow",
    [SIM_FAULT_OOM_RUNTIME] = "oom_runtime",
    [SIM_FAULT_RESET] = "reset",
};

static const char *const sim_fault_endpoints[] = {
    "/",	 "/api/version", "/api/tags",	    "/api/ps", "/api/show", "/api/generate",
    "/api/chat", "/api/embed",	 "/api/embeddings",
};

#define SIM_FAULT_MAX_COUNT   1000000
#define SIM_FAULT_MAX_SECONDS 3600.0
#define SIM_FAULT_MAX_CHUNKS  1000000

struct sim_fault {
	uint64_t id;
	int64_t count; /* draws left */
	char *model;   /* NULL: any */
	char *endpoint;
	struct sim_fault_effect effect;
	bool on_load; /* a crash without after_chunks */
	TAILQ_ENTRY(sim_fault) entry;
};

struct sim_parked {
	struct sim_faults *f;
	struct vd_http_req *req;
	TAILQ_ENTRY(sim_parked) entry;
};

struct sim_faults {
	struct event_base *base;
	double rate;
	unsigned kinds; /* random faults: 1 << kind */
	uint64_t seed, rng;
	sim_fault_resume_cb *resume_cb;
	void *resume_arg;
	TAILQ_HEAD(, sim_fault) pending;
	size_t npending;
	uint64_t next_id;
	uint64_t counters[SIM_FAULT_NKINDS];
	int64_t hang_until_mono_ns; /* 0: not hanging */
	struct event *hang_timer;
	struct event *crash_timer;
	TAILQ_HEAD(, sim_parked) parked;
};

void
sim_fault_effect_cleanup(struct sim_fault_effect *e)
{
	json_decref(e->body);
	memset(e, 0, sizeof(*e));
}

static void
sim_fault_free(struct sim_fault *ft)
{
	free(ft->model);
	free(ft->endpoint);
	sim_fault_effect_cleanup(&ft->effect);
	free(ft);
}

void
sim_fault_crash_now(const char *why)
{
	vd_log(SIM, "fault: crash (%s): exiting as if killed", why);
	kill(getpid(), SIGKILL);
	_exit(137); /* not reached */
}

static void
sim_faults_crash_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sim_fault_crash_now("during a load");
}

/* ---- hang ---------------------------------------------------------------- */

static void
sim_parked_free(struct sim_parked *p)
{
	TAILQ_REMOVE(&p->f->parked, p, entry);
	free(p);
}

static void
sim_parked_close_cb(struct vd_http_req *req, void *arg)
{
	struct sim_parked *p = arg;
	sim_parked_free(p);
	vd_http_req_release(req);
}

static void
sim_faults_resume_all(struct sim_faults *f)
{
	f->hang_until_mono_ns = 0;
	if (f->hang_timer != NULL)
		evtimer_del(f->hang_timer);
	/* Requests parked by a hang that starts during the replay stay for that one. */
	TAILQ_HEAD(, sim_parked) batch = TAILQ_HEAD_INITIALIZER(batch);
	TAILQ_CONCAT(&batch, &f->parked, entry);
	struct sim_parked *p;
	while ((p = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, p, entry);
		struct vd_http_req *req = p->req;
		free(p);
		vd_http_req_on_close(req, NULL, NULL);
		if (sim_faults_is_hanging(f))
			sim_faults_park(f, req);
		else
			f->resume_cb(req, f->resume_arg);
	}
}

static void
sim_faults_hang_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_faults *f = arg;
	vd_log(SIM, "fault: hang over, answering again");
	sim_faults_resume_all(f);
}

void
sim_faults_hang(struct sim_faults *f, double seconds)
{
	int64_t until = vd_now_mono_ns() + (int64_t)(seconds * 1e9);
	if (until <= f->hang_until_mono_ns)
		return;
	f->hang_until_mono_ns = until;
	int64_t left = until - vd_now_mono_ns();
	struct timeval tv = {.tv_sec = (time_t)(left / 1000000000),
			     .tv_usec = (suseconds_t)(left % 1000000000 / 1000)};
	evtimer_add(f->hang_timer, &tv);
	vd_log(SIM, "fault: hang for %.3f s (Ollama requests get no answer)", seconds);
}

bool
sim_faults_is_hanging(const struct sim_faults *f)
{
	return f != NULL && f->hang_until_mono_ns > vd_now_mono_ns();
}

int64_t
sim_faults_hang_left_ns(const struct sim_faults *f)
{
	if (!sim_faults_is_hanging(f))
		return 0;
	return f->hang_until_mono_ns - vd_now_mono_ns();
}

void
sim_faults_park(struct sim_faults *f, struct vd_http_req *req)
{
	struct sim_parked *p = xcalloc(1, sizeof(*p));
	p->f = f;
	p->req = req;
	TAILQ_INSERT_TAIL(&f->parked, p, entry);
	vd_http_req_on_close(req, sim_parked_close_cb, p);
}

/* ---- lifecycle ------------------------------------------------------------ */

struct sim_faults *
sim_faults_new(struct event_base *base, double rate, unsigned kinds, uint64_t seed,
	       sim_fault_resume_cb *resume_cb, void *resume_arg)
{
	struct sim_faults *f = xcalloc(1, sizeof(*f));
	f->base = base;
	f->rate = rate;
	f->kinds = kinds != 0 ? kinds : (1u << SIM_FAULT_NKINDS) - 1;
	f->seed = seed;
	f->rng = seed ^ 0x5deece66dULL;
	f->resume_cb = resume_cb;
	f->resume_arg = resume_arg;
	f->next_id = 1;
	TAILQ_INIT(&f->pending);
	TAILQ_INIT(&f->parked);
	f->hang_timer = evtimer_new(base, sim_faults_hang_cb, f);
	f->crash_timer = evtimer_new(base, sim_faults_crash_cb, f);
	return f;
}

static void
sim_faults_drop_pending(struct sim_faults *f)
{
	struct sim_fault *ft;
	while ((ft = TAILQ_FIRST(&f->pending)) != NULL) {
		TAILQ_REMOVE(&f->pending, ft, entry);
		sim_fault_free(ft);
	}
	f->npending = 0;
}

void
sim_faults_free(struct sim_faults *f)
{
	if (f == NULL)
		return;
	struct sim_parked *p;
	while ((p = TAILQ_FIRST(&f->parked)) != NULL) {
		struct vd_http_req *req = p->req;
		vd_http_req_on_close(req, NULL, NULL);
		sim_parked_free(p);
		vd_http_req_release(req);
	}
	sim_faults_drop_pending(f);
	event_free(f->hang_timer);
	event_free(f->crash_timer);
	free(f);
}

void
sim_faults_clear(struct sim_faults *f, bool zero_counters)
{
	sim_faults_drop_pending(f);
	if (zero_counters)
		memset(f->counters, 0, sizeof(f->counters));
	if (f->hang_until_mono_ns != 0)
		sim_faults_resume_all(f);
}

/* ---- parsing --------------------------------------------------------------- */

static bool
sim_fault_kind_parse(const char *name, enum sim_fault_kind *out)
{
	for (int k = 0; k < SIM_FAULT_NKINDS; k++)
		if (strcmp(name, sim_fault_names[k]) == 0) {
			*out = (enum sim_fault_kind)k;
			return true;
		}
	return false;
}

int
sim_fault_kinds_parse(const char *list, unsigned *mask, char **cause)
{
	char *copy = xstrdup(list), *save = NULL;
	*mask = 0;
	for (char *name = strtok_r(copy, ",", &save); name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		enum sim_fault_kind k;
		if (!sim_fault_kind_parse(name, &k)) {
			int rc = vd_fail(cause, -EINVAL,
					 "--fault-kinds: unknown fault \"%s\" (known: crash, hang, "
					 "error, slow, oom_runtime, reset)",
					 name);
			free(copy);
			return rc;
		}
		*mask |= 1u << k;
	}
	free(copy);
	if (*mask == 0)
		return vd_fail(cause, -EINVAL, "--fault-kinds: empty list");
	return 0;
}

bool
sim_faults_armed(const struct sim_faults *f)
{
	return f != NULL && (f->npending > 0 || f->rate > 0);
}

bool
sim_fault_endpoint_generates(const char *endpoint)
{
	return strcmp(endpoint, "/api/generate") == 0 || strcmp(endpoint, "/api/chat") == 0 ||
	       strcmp(endpoint, "/api/embed") == 0 || strcmp(endpoint, "/api/embeddings") == 0;
}

/* Whether a fault of this kind and shape acts on a generation only. */
static bool
sim_fault_needs_generation(const struct sim_fault_effect *e)
{
	return e->kind == SIM_FAULT_SLOW || e->kind == SIM_FAULT_OOM_RUNTIME ||
	       ((e->kind == SIM_FAULT_CRASH || e->kind == SIM_FAULT_RESET) && e->after_chunks >= 0);
}

/* The body Ollama sends with an error of this status. */
static json_t *
sim_fault_default_body(int status)
{
	const char *msg = status == 503 ? "server busy, please try again.  maximum pending "
					  "requests exceeded"
			  : status == 500
			      ? "model runner has unexpectedly stopped, this may be due "
				"to resource limitations or an internal error, check "
				"ollama server logs for details"
			      : vd_http_reason(status);
	return json_pack("{s:s}", "error", msg);
}

static int
sim_fault_parse_number(const json_t *spec, const char *key, double min, double max, bool integer,
		       double *out, char **cause)
{
	const json_t *v = json_object_get(spec, key);
	if (v == NULL)
		return 0;
	if (!json_is_number(v) || (integer && !json_is_integer(v)) || json_number_value(v) < min ||
	    json_number_value(v) > max) {
		if (integer)
			return vd_fail(cause, -EINVAL,
				       "fault: \"%s\" must be an integer from %.0f to %.0f", key,
				       min, max);
		return vd_fail(cause, -EINVAL,
			       "fault: \"%s\" must be a number above %g and at most %g", key, min,
			       max);
	}
	*out = json_number_value(v);
	return 1;
}

/* Parses spec into a new fault. */
static int
sim_fault_parse(const json_t *spec, struct sim_fault **out, char **cause)
{
	static const char *const known[] = {"type",	"count",	"model",
					    "endpoint", "after_chunks", "seconds",
					    "status",	"body",		"factor"};
	/* Which kinds take each of the kind-specific fields. */
	static const struct {
		const char *key;
		unsigned kinds;
	} applies[] = {
	    {"after_chunks",
	     1u << SIM_FAULT_CRASH | 1u << SIM_FAULT_RESET | 1u << SIM_FAULT_OOM_RUNTIME},
	    {"seconds", 1u << SIM_FAULT_HANG},
	    {"status", 1u << SIM_FAULT_ERROR},
	    {"body", 1u << SIM_FAULT_ERROR},
	    {"factor", 1u << SIM_FAULT_SLOW},
	};
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)spec, key, v)
	{
		bool ok = false;
		for (size_t i = 0; i < VD_ARRAY_LEN(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok)
			return vd_fail(cause, -EINVAL,
				       "fault: unknown field \"%s\" (known: type, count, model, "
				       "endpoint, after_chunks, seconds, status, body, factor)",
				       key);
	}
	const json_t *type = json_object_get(spec, "type");
	enum sim_fault_kind kind;
	if (!json_is_string(type) || !sim_fault_kind_parse(json_string_value(type), &kind))
		return vd_fail(cause, -EINVAL,
			       "fault: \"type\" must be one of crash, hang, error, slow, "
			       "oom_runtime, reset");
	for (size_t i = 0; i < VD_ARRAY_LEN(applies); i++)
		if (json_object_get(spec, applies[i].key) != NULL &&
		    !(applies[i].kinds & (1u << kind)))
			return vd_fail(cause, -EINVAL, "fault: \"%s\" does not apply to a %s fault",
				       applies[i].key, sim_fault_names[kind]);

	struct sim_fault *ft = xcalloc(1, sizeof(*ft));
	ft->count = 1;
	ft->effect.active = true;
	ft->effect.kind = kind;
	ft->effect.after_chunks = kind == SIM_FAULT_OOM_RUNTIME ? 0 : -1;
	ft->effect.factor = 1.0;
	double d;
	int rc;
	if ((rc = sim_fault_parse_number(spec, "count", 1, SIM_FAULT_MAX_COUNT, true, &d, cause)) <
	    0)
		goto out_free;
	if (rc > 0)
		ft->count = (int64_t)d;
	if ((rc = sim_fault_parse_number(spec, "after_chunks", 0, SIM_FAULT_MAX_CHUNKS, true, &d,
					 cause)) < 0)
		goto out_free;
	if (rc > 0)
		ft->effect.after_chunks = (int64_t)d;
	if (kind == SIM_FAULT_HANG) {
		rc = sim_fault_parse_number(spec, "seconds", 0, SIM_FAULT_MAX_SECONDS, false, &d,
					    cause);
		if (rc == 0 || (rc > 0 && d <= 0))
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"seconds\" must be a number above 0 and at most %g",
				     SIM_FAULT_MAX_SECONDS);
		if (rc < 0)
			goto out_free;
		ft->effect.seconds = d;
	}
	if (kind == SIM_FAULT_SLOW) {
		rc = sim_fault_parse_number(spec, "factor", 0, 1000, false, &d, cause);
		if (rc == 0 || (rc > 0 && d <= 0))
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"factor\" must be a number above 0 and at most 1000");
		if (rc < 0)
			goto out_free;
		ft->effect.factor = d;
	}
	if (kind == SIM_FAULT_ERROR) {
		ft->effect.status = 500;
		if ((rc = sim_fault_parse_number(spec, "status", 400, 599, true, &d, cause)) < 0)
			goto out_free;
		if (rc > 0)
			ft->effect.status = (int)d;
		const json_t *body = json_object_get(spec, "body");
		if (body == NULL) {
			ft->effect.body = sim_fault_default_body(ft->effect.status);
		} else if (json_is_string(body)) {
			ft->effect.body = json_pack("{s:O}", "error", body);
		} else if (json_is_object(body)) {
			ft->effect.body = json_deep_copy(body);
		} else {
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"body\" must be a string (the error message) or an "
				     "object (the whole reply)");
			goto out_free;
		}
	}
	ft->on_load = kind == SIM_FAULT_CRASH && ft->effect.after_chunks < 0;
	const json_t *model = json_object_get(spec, "model");
	if (model != NULL) {
		if (!json_is_string(model) || json_string_length(model) == 0 ||
		    json_string_length(model) > 255) {
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"model\" must be a string of 1 to 255 bytes");
			goto out_free;
		}
		ft->model = xstrdup(json_string_value(model));
	}
	const json_t *endpoint = json_object_get(spec, "endpoint");
	if (endpoint != NULL) {
		bool ok = false;
		for (size_t i = 0;
		     json_is_string(endpoint) && i < VD_ARRAY_LEN(sim_fault_endpoints); i++)
			ok = ok || strcmp(json_string_value(endpoint), sim_fault_endpoints[i]) == 0;
		if (!ok) {
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"endpoint\" must be one of /, /api/version, "
				     "/api/tags, /api/ps, /api/show, /api/generate, /api/chat, "
				     "/api/embed, /api/embeddings");
			goto out_free;
		}
		if (ft->on_load) {
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"endpoint\" does not apply to a crash without "
				     "after_chunks (it happens during the next load of the model)");
			goto out_free;
		}
		if (sim_fault_needs_generation(&ft->effect) &&
		    !sim_fault_endpoint_generates(json_string_value(endpoint))) {
			rc = vd_fail(cause, -EINVAL,
				     "fault: \"endpoint\": a %s fault%s acts on a generation: "
				     "/api/generate, /api/chat, /api/embed or /api/embeddings",
				     sim_fault_names[kind],
				     ft->effect.after_chunks >= 0 && kind != SIM_FAULT_OOM_RUNTIME
					 ? " with after_chunks"
					 : "");
			goto out_free;
		}
		ft->endpoint = xstrdup(json_string_value(endpoint));
	}
	*out = ft;
	return 0;
out_free:
	sim_fault_free(ft);
	return rc;
}

static json_t *
sim_fault_json(const struct sim_fault *ft)
{
	const struct sim_fault_effect *e = &ft->effect;
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)ft->id));
	json_object_set_new(o, "type", json_string(sim_fault_names[e->kind]));
	json_object_set_new(o, "count", json_integer(ft->count));
	json_object_set_new(o, "model", ft->model ? json_string(ft->model) : json_null());
	json_object_set_new(o, "endpoint", ft->endpoint ? json_string(ft->endpoint) : json_null());
	switch (e->kind) {
	case SIM_FAULT_CRASH:
		json_object_set_new(o, "during", json_string(ft->on_load ? "load" : "reply"));
		/* fall through */
	case SIM_FAULT_RESET:
	case SIM_FAULT_OOM_RUNTIME:
		if (e->after_chunks >= 0)
			json_object_set_new(o, "after_chunks", json_integer(e->after_chunks));
		break;
	case SIM_FAULT_HANG:
		json_object_set_new(o, "seconds", json_real(e->seconds));
		break;
	case SIM_FAULT_ERROR:
		json_object_set_new(o, "status", json_integer(e->status));
		json_object_set_new(o, "body", json_incref(e->body));
		break;
	case SIM_FAULT_SLOW:
		json_object_set_new(o, "factor", json_real(e->factor));
		break;
	default:
		break;
	}
	return o;
}

int
sim_faults_add(struct sim_faults *f, const json_t *spec, json_t **added, char **cause)
{
	if (f->npending >= SIM_FAULT_MAX_PENDING)
		return vd_fail(cause, -EINVAL, "fault: %d faults are pending already; the limit",
			       SIM_FAULT_MAX_PENDING);
	struct sim_fault *ft;
	int rc = sim_fault_parse(spec, &ft, cause);
	if (rc < 0)
		return rc;
	ft->id = f->next_id++;
	TAILQ_INSERT_TAIL(&f->pending, ft, entry);
	f->npending++;
	*added = sim_fault_json(ft);
	vd_log(SIM, "fault %llu queued: %s x%lld", (unsigned long long)ft->id,
	       sim_fault_names[ft->effect.kind], (long long)ft->count);
	return 0;
}

json_t *
sim_faults_json(const struct sim_faults *f)
{
	json_t *pending = json_array();
	const struct sim_fault *ft;
	TAILQ_FOREACH(ft, &f->pending, entry)
	json_array_append_new(pending, sim_fault_json(ft));
	json_t *counters = json_object();
	for (int k = 0; k < SIM_FAULT_NKINDS; k++)
		json_object_set_new(counters, sim_fault_names[k],
				    json_integer((json_int_t)f->counters[k]));
	json_t *o = json_object();
	json_object_set_new(o, "pending", pending);
	json_object_set_new(o, "counters", counters);
	json_object_set_new(o, "rate", json_real(f->rate));
	json_object_set_new(o, "seed", json_integer((json_int_t)f->seed));
	json_object_set_new(o, "hanging_s", json_real((double)sim_faults_hang_left_ns(f) / 1e9));
	return o;
}

/* ---- drawing --------------------------------------------------------------- */

static bool
sim_fault_matches(const struct sim_fault *ft, const char *endpoint, const char *model)
{
	if (ft->on_load)
		return false;
	if (ft->model != NULL && (model == NULL || strcmp(ft->model, model) != 0))
		return false;
	if (ft->endpoint != NULL && strcmp(ft->endpoint, endpoint) != 0)
		return false;
	return !sim_fault_needs_generation(&ft->effect) || sim_fault_endpoint_generates(endpoint);
}

static void
sim_fault_take(struct sim_faults *f, struct sim_fault *ft, struct sim_fault_effect *out)
{
	*out = ft->effect;
	out->body = json_incref(ft->effect.body);
	if (--ft->count == 0) {
		TAILQ_REMOVE(&f->pending, ft, entry);
		f->npending--;
		sim_fault_free(ft);
	}
}

static double
sim_faults_uniform(struct sim_faults *f)
{
	return (double)(vd_rand64(&f->rng) >> 11) * 0x1.0p-53;
}

/* A random fault that can act on this endpoint. */
static void
sim_faults_random(struct sim_faults *f, const char *endpoint, struct sim_fault_effect *out)
{
	/* Off a generation only a crash, hang, error or reset can act. */
	bool gen = sim_fault_endpoint_generates(endpoint);
	unsigned usable = f->kinds;
	if (!gen)
		usable &= ~(1u << SIM_FAULT_SLOW | 1u << SIM_FAULT_OOM_RUNTIME);
	memset(out, 0, sizeof(*out));
	enum sim_fault_kind choice[SIM_FAULT_NKINDS];
	size_t n = 0;
	for (int k = 0; k < SIM_FAULT_NKINDS; k++)
		if (usable & (1u << k))
			choice[n++] = (enum sim_fault_kind)k;
	if (n == 0)
		return;
	enum sim_fault_kind kind = choice[vd_rand64(&f->rng) % n];
	out->active = true;
	out->kind = kind;
	out->factor = 1.0;
	out->after_chunks = -1;
	switch (kind) {
	case SIM_FAULT_CRASH:
	case SIM_FAULT_RESET:
	case SIM_FAULT_OOM_RUNTIME:
		/* Off a generation, a crash or reset acts at once (after_chunks -1). */
		if (gen)
			out->after_chunks = (int64_t)(vd_rand64(&f->rng) % 9);
		break;
	case SIM_FAULT_HANG:
		out->seconds = 0.2 + 1.8 * sim_faults_uniform(f);
		break;
	case SIM_FAULT_ERROR:
		out->status = vd_rand64(&f->rng) % 2 ? 503 : 500;
		out->body = sim_fault_default_body(out->status);
		break;
	case SIM_FAULT_SLOW:
		out->factor = 0.1 + 0.4 * sim_faults_uniform(f);
		break;
	default:
		break;
	}
}

bool
sim_faults_draw(struct sim_faults *f, const char *endpoint, const char *model,
		struct sim_fault_effect *out)
{
	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return false;
	struct sim_fault *ft;
	TAILQ_FOREACH(ft, &f->pending, entry)
	if (sim_fault_matches(ft, endpoint, model)) {
		sim_fault_take(f, ft, out);
		break;
	}
	if (!out->active && f->rate > 0 && sim_faults_uniform(f) < f->rate)
		sim_faults_random(f, endpoint, out);
	if (!out->active)
		return false;
	f->counters[out->kind]++;
	vd_log(SIM, "fault: %s on %s %s", sim_fault_names[out->kind], endpoint,
	       model != NULL ? model : "");
	return true;
}

void
sim_faults_on_load(struct sim_faults *f, const struct sim_model *m, int64_t load_real_ns)
{
	if (f == NULL)
		return;
	struct sim_fault *ft;
	TAILQ_FOREACH(ft, &f->pending, entry)
	if (ft->on_load && (ft->model == NULL || strcmp(ft->model, m->name) == 0))
		break;
	if (ft == NULL)
		return;
	struct sim_fault_effect e;
	sim_fault_take(f, ft, &e);
	sim_fault_effect_cleanup(&e);
	f->counters[SIM_FAULT_CRASH]++;
	int64_t half = load_real_ns / 2;
	if (half < 1000000)
		half = 1000000;
	vd_log(SIM, "fault: crash during the load of %s, in %.3f s", m->name, (double)half / 1e9);
	struct timeval tv = {.tv_sec = (time_t)(half / 1000000000),
			     .tv_usec = (suseconds_t)(half % 1000000000 / 1000)};
	evtimer_add(f->crash_timer, &tv);
}
