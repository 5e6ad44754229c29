/*
 * gpu-remote.c: the "vramd" telemetry provider. It reads the GPUs of another machine
 * from the vramd running there: each sample is one GET <url>/api/gpu/status/all on the
 * libevent loop through the asynchronous HTTP client (httpc.h), whose JSON reply
 * (docs/api.md, "GPUs") becomes the same gpu_reading[] the local providers produce,
 * and whose "host" object stands in for /proc/meminfo (gpu_provider.host).
 *
 * Nothing here blocks: a request runs for at most the provider timeout (the nvidia-smi
 * timeout, 5 s by default), and a failure of any kind (no connection, timeout, an HTTP
 * status other than 200, a reply that is not the expected JSON) fails the sample as a
 * whole with a cause naming the URL, so the monitor marks every GPU lost until the
 * remote answers again. The result reaches the monitor from a libevent callback of
 * its own, never from inside httpc's callback, so the monitor's owner may even free
 * the monitor (and so this provider, and its httpc) from its sample callback.
 *
 * Process ids in the reply are the remote machine's: they are kept as reported, to be
 * matched against that node's runners, and never used as local pids.
 *
 * The parsers are pure functions (gpu.h) so tests and the fuzzer run them on recorded
 * replies. Called by gpu.c through gpu_provider_remote; each provider owns its httpc,
 * so a monitor made by gpu_monitor_new with GPU_PROVIDER_REMOTE needs nothing else.
 */
#include "gpu.h"
#include "httpc.h"
#include "ollama-parse.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define REMOTE_STATUS_PATH "/api/gpu/status/all"
/* 16 GPUs with 64 processes each are about 150 KB of JSON. */
#define REMOTE_REPLY_CAP (1024 * 1024)
/* How much of a remote error message a cause repeats. */
#define REMOTE_ERROR_SHOWN 200

/* --- parsers ------------------------------------------------------------------------------ */

enum remote_kind {
	REMOTE_BYTES, /* uint64_t, a JSON integer */
	REMOTE_U32,   /* uint32_t, a JSON integer within [min, max] */
	REMOTE_I32,   /* int32_t, a JSON integer within [min, max] */
	REMOTE_WATTS, /* uint32_t milliwatts from a JSON number of watts within [min, max] */
};

/* The scalar fields of a GPU object in the reply and where each goes. */
static const struct remote_field {
	const char *key;
	uint32_t bit;
	enum remote_kind kind;
	size_t offset; /* in struct gpu_sample */
	double min, max;
} remote_fields[] = {
    {"memory_total_bytes", GPU_HAS_MEM_TOTAL, REMOTE_BYTES,
     offsetof(struct gpu_sample, mem_total_bytes), 0, 0},
    {"memory_used_bytes", GPU_HAS_MEM_USED, REMOTE_BYTES,
     offsetof(struct gpu_sample, mem_used_bytes), 0, 0},
    {"memory_free_bytes", GPU_HAS_MEM_FREE, REMOTE_BYTES,
     offsetof(struct gpu_sample, mem_free_bytes), 0, 0},
    {"gpu_util_percent", GPU_HAS_UTIL_GPU, REMOTE_U32, offsetof(struct gpu_sample, util_gpu_pct), 0,
     100},
    {"memory_util_percent", GPU_HAS_UTIL_MEM, REMOTE_U32, offsetof(struct gpu_sample, util_mem_pct),
     0, 100},
    {"temperature_c", GPU_HAS_TEMPERATURE, REMOTE_I32, offsetof(struct gpu_sample, temperature_c),
     -273, 1000},
    {"slowdown_temp_c", GPU_HAS_SLOWDOWN, REMOTE_I32, offsetof(struct gpu_sample, slowdown_c), -273,
     1000},
    {"shutdown_temp_c", GPU_HAS_SHUTDOWN, REMOTE_I32, offsetof(struct gpu_sample, shutdown_c), -273,
     1000},
    {"power_w", GPU_HAS_POWER_DRAW, REMOTE_WATTS, offsetof(struct gpu_sample, power_draw_mw), 0,
     1e6},
    {"power_limit_w", GPU_HAS_POWER_LIMIT, REMOTE_WATTS,
     offsetof(struct gpu_sample, power_limit_mw), 0, 1e6},
    {"fan_percent", GPU_HAS_FAN, REMOTE_U32, offsetof(struct gpu_sample, fan_pct), 0, 255},
    {"sm_clock_mhz", GPU_HAS_SM_CLOCK, REMOTE_U32, offsetof(struct gpu_sample, sm_clock_mhz), 0,
     1000000},
};

/* Identity strings of a GPU object: key, offset in struct gpu_reading, size. */
static const struct remote_string {
	const char *key;
	size_t offset;
	size_t size;
} remote_strings[] = {
    {"name", offsetof(struct gpu_reading, name), GPU_NAME_LEN},
    {"uuid", offsetof(struct gpu_reading, uuid), GPU_UUID_LEN},
    {"pci_bus_id", offsetof(struct gpu_reading, bus_id), GPU_BUS_ID_LEN},
};

static const char *
remote_type_name(const json_t *v)
{
	if (v == NULL)
		return "nothing (missing)";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

static int
remote_wrong_type(const char *where, const char *key, const char *expected, const json_t *v,
		  char **cause)
{
	return vd_fail(cause, -EINVAL, "%s.%s: expected %s, got %s", where, key, expected,
		       remote_type_name(v));
}

/* A JSON integer within [min, max] into *out; where.key names it in the message. */
static int
remote_integer(const json_t *v, const char *where, const char *key, json_int_t min, json_int_t max,
	       json_int_t *out, char **cause)
{
	if (!json_is_integer(v))
		return remote_wrong_type(
		    where, key, min >= 0 ? "a non-negative integer" : "an integer", v, cause);
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return vd_fail(cause, -EINVAL,
			       "%s.%s: %" JSON_INTEGER_FORMAT
			       " is out of range (%" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT
			       ")",
			       where, key, x, min, max);
	*out = x;
	return 0;
}

/* Sets one scalar field of s from obj when it is there and not null. */
static int
remote_field_parse(const json_t *obj, const struct remote_field *f, const char *where,
		   struct gpu_sample *s, char **cause)
{
	const json_t *v = json_object_get(obj, f->key);
	if (v == NULL || json_is_null(v))
		return 0;
	char *at = (char *)s + f->offset;
	json_int_t i = 0;
	switch (f->kind) {
	case REMOTE_BYTES:
		if (remote_integer(v, where, f->key, 0, INT64_MAX, &i, cause) < 0)
			return -EINVAL;
		*(uint64_t *)(void *)at = (uint64_t)i;
		break;
	case REMOTE_U32:
		if (remote_integer(v, where, f->key, (json_int_t)f->min, (json_int_t)f->max, &i,
				   cause) < 0)
			return -EINVAL;
		*(uint32_t *)(void *)at = (uint32_t)i;
		break;
	case REMOTE_I32:
		if (remote_integer(v, where, f->key, (json_int_t)f->min, (json_int_t)f->max, &i,
				   cause) < 0)
			return -EINVAL;
		*(int32_t *)(void *)at = (int32_t)i;
		break;
	case REMOTE_WATTS: {
		if (!json_is_number(v))
			return remote_wrong_type(where, f->key, "a number of watts", v, cause);
		double w = json_number_value(v);
		if (!(w >= f->min && w <= f->max))
			return vd_fail(cause, -EINVAL, "%s.%s: %g W is out of range (%g to %g)",
				       where, f->key, w, f->min, f->max);
		*(uint32_t *)(void *)at = (uint32_t)(w * 1000.0 + 0.5);
		break;
	}
	}
	s->valid |= f->bit;
	return 0;
}

/* A string field (missing or null: ""), copied into dst (truncated to size). */
static int
remote_string_parse(const json_t *obj, const char *key, const char *where, char *dst, size_t size,
		    char **cause)
{
	const json_t *v = json_object_get(obj, key);
	dst[0] = '\0';
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return remote_wrong_type(where, key, "a string", v, cause);
	vd_strlcpy(dst, json_string_value(v), size);
	return 0;
}

/* "throttle_reasons": API names back into GPU_CLOCK_EVENT_* bits. Names this vramd does
 * not know (a newer remote) are left out; the list itself is still known. */
static int
remote_clock_events_parse(const json_t *obj, const char *where, struct gpu_sample *s, char **cause)
{
	const json_t *list = json_object_get(obj, "throttle_reasons");
	if (list == NULL || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return remote_wrong_type(where, "throttle_reasons", "an array of names", list,
					 cause);
	const struct gpu_clock_event_name *names;
	size_t nnames = gpu_clock_event_names(&names);
	size_t i;
	const json_t *v;
	json_array_foreach(list, i, v)
	{
		if (!json_is_string(v))
			return vd_fail(cause, -EINVAL,
				       "%s.throttle_reasons[%zu]: expected a name, got %s", where,
				       i, remote_type_name(v));
		for (size_t k = 0; k < nnames; k++)
			if (strcmp(names[k].name, json_string_value(v)) == 0)
				s->clock_event_reasons |= names[k].bit;
	}
	s->valid |= GPU_HAS_CLOCK_EVENTS;
	return 0;
}

/* "processes": pid, name, used_bytes each; at most GPU_MAX_PROCESSES are kept. */
static int
remote_processes_parse(const json_t *obj, const char *where, struct gpu_sample *s, char **cause)
{
	const json_t *list = json_object_get(obj, "processes");
	if (list == NULL || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return remote_wrong_type(where, "processes", "an array", list, cause);
	size_t i;
	const json_t *v;
	json_array_foreach(list, i, v)
	{
		char at[64];
		snprintf(at, sizeof(at), "%s.processes[%zu]", where, i);
		if (!json_is_object(v))
			return vd_fail(cause, -EINVAL, "%s: expected an object, got %s", at,
				       remote_type_name(v));
		struct gpu_process pr = {0};
		json_int_t pid, used;
		if (remote_integer(json_object_get(v, "pid"), at, "pid", 0, UINT32_MAX, &pid,
				   cause) < 0)
			return -EINVAL;
		pr.pid = (uint32_t)pid;
		if (remote_string_parse(v, "name", at, pr.name, sizeof(pr.name), cause) < 0)
			return -EINVAL;
		const json_t *u = json_object_get(v, "used_bytes");
		if (u != NULL && !json_is_null(u)) {
			if (remote_integer(u, at, "used_bytes", 0, INT64_MAX, &used, cause) < 0)
				return -EINVAL;
			pr.used_known = true;
			pr.used_bytes = (uint64_t)used;
		}
		if (s->nprocesses < GPU_MAX_PROCESSES)
			s->processes[s->nprocesses++] = pr;
	}
	s->valid |= GPU_HAS_PROCESSES;
	return 0;
}

/* One element of "gpus" into r (cleared first). */
static int
remote_gpu_parse(const json_t *obj, size_t i, struct gpu_reading *r, char **cause)
{
	char where[32];
	snprintf(where, sizeof(where), "gpus[%zu]", i);
	memset(r, 0, sizeof(*r));
	if (!json_is_object(obj))
		return vd_fail(cause, -EINVAL, "%s: expected an object, got %s", where,
			       remote_type_name(obj));
	json_int_t provider_index;
	if (remote_integer(json_object_get(obj, "index"), where, "index", 0, UINT32_MAX,
			   &provider_index, cause) < 0)
		return -EINVAL;
	r->index = (uint32_t)provider_index;
	for (size_t k = 0; k < VD_ARRAY_LEN(remote_strings); k++)
		if (remote_string_parse(obj, remote_strings[k].key, where,
					(char *)r + remote_strings[k].offset,
					remote_strings[k].size, cause) < 0)
			return -EINVAL;

	/* The remote says UNAVAILABLE for a lost GPU (with lost_at) and for one it has not
	 * sampled yet: either way there is no reading to use. */
	char state[32];
	if (remote_string_parse(obj, "state", where, state, sizeof(state), cause) < 0)
		return -EINVAL;
	const json_t *lost_at = json_object_get(obj, "lost_at");
	r->lost = strcmp(state, "UNAVAILABLE") == 0 || (lost_at != NULL && !json_is_null(lost_at));

	struct gpu_sample *s = &r->sample;
	for (size_t k = 0; k < VD_ARRAY_LEN(remote_fields); k++)
		if (remote_field_parse(obj, &remote_fields[k], where, s, cause) < 0)
			return -EINVAL;
	if (remote_clock_events_parse(obj, where, s, cause) < 0 ||
	    remote_processes_parse(obj, where, s, cause) < 0)
		return -EINVAL;
	uint32_t mem = GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE;
	if ((s->valid & mem) == mem && s->mem_used_bytes <= s->mem_total_bytes &&
	    s->mem_free_bytes < s->mem_total_bytes - s->mem_used_bytes) {
		s->mem_reserved_bytes = s->mem_total_bytes - s->mem_used_bytes - s->mem_free_bytes;
		s->valid |= GPU_HAS_MEM_RESERVED;
	}

	char sampled[64];
	if (remote_string_parse(obj, "sampled_at", where, sampled, sizeof(sampled), cause) < 0)
		return -EINVAL;
	if (sampled[0] != '\0' && ollama_parse_time(sampled, &s->wall_ms) < 0)
		return vd_fail(cause, -EINVAL, "%s.sampled_at: \"%s\" is not an RFC 3339 time",
			       where, sampled);
	return 0;
}

static json_t *
remote_load(const char *body, size_t len, char **cause)
{
	json_error_t err;
	json_t *root = json_loadb(body, len, 0, &err);
	if (root == NULL) {
		vd_fail(cause, -EINVAL, "reply is not JSON: %s (line %d, column %d)", err.text,
			err.line, err.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		vd_fail(cause, -EINVAL, "reply is a JSON %s, not an object",
			remote_type_name(root));
		json_decref(root);
		return NULL;
	}
	return root;
}

static int
remote_parse_gpus(const json_t *root, struct gpu_reading *out, size_t max, char **cause)
{
	const json_t *gpus = json_object_get(root, "gpus");
	if (gpus == NULL)
		return vd_fail(cause, -EINVAL,
			       "reply has no \"gpus\" (not a vramd /api/gpu/status/all reply)");
	if (!json_is_array(gpus))
		return vd_fail(cause, -EINVAL, "gpus: expected an array, got %s",
			       remote_type_name(gpus));
	size_t n = json_array_size(gpus);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		if (remote_gpu_parse(json_array_get(gpus, i), i, &out[i], cause) < 0)
			return -EINVAL;
	return (int)n;
}

static int
remote_parse_host(const json_t *root, struct gpu_host_memory *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	const json_t *host = json_object_get(root, "host");
	if (host == NULL || json_is_null(host))
		return 0;
	if (!json_is_object(host))
		return vd_fail(cause, -EINVAL, "host: expected an object, got %s",
			       remote_type_name(host));
	const json_t *total = json_object_get(host, "memory_total_bytes");
	const json_t *avail = json_object_get(host, "memory_available_bytes");
	if (total == NULL || json_is_null(total) || avail == NULL || json_is_null(avail))
		return 0;
	json_int_t t, a;
	if (remote_integer(total, "host", "memory_total_bytes", 0, INT64_MAX, &t, cause) < 0 ||
	    remote_integer(avail, "host", "memory_available_bytes", 0, INT64_MAX, &a, cause) < 0)
		return -EINVAL;
	out->total_bytes = (uint64_t)t;
	out->available_bytes = (uint64_t)a;
	out->valid = true;
	return 0;
}

int
gpu_remote_parse(const char *body, size_t len, struct gpu_reading *out, size_t max, char **cause)
{
	json_t *root = remote_load(body, len, cause);
	if (root == NULL)
		return -EINVAL;
	int rc = remote_parse_gpus(root, out, max, cause);
	json_decref(root);
	return rc;
}

int
gpu_remote_parse_host(const char *body, size_t len, struct gpu_host_memory *out, char **cause)
{
	memset(out, 0, sizeof(*out));
	json_t *root = remote_load(body, len, cause);
	if (root == NULL)
		return -EINVAL;
	int rc = remote_parse_host(root, out, cause);
	json_decref(root);
	return rc;
}

/* --- the provider ------------------------------------------------------------------------- */

/* The oldest a served reading is taken to be (a remote whose monitoring stalled). */
#define REMOTE_MAX_AGE_MS 60000

struct remote_provider {
	int64_t served_wall_ms; /* the last reply's served_at (remote clock); 0: not given */
	struct event_base *base;
	struct httpc *client; /* our own: the provider needs nothing from its owner */
	char *url;	      /* <base URL>/api/gpu/status/all */
	char *shown;	      /* url with credentials masked, for messages */
	int64_t timeout_ms;
	struct httpc_request *req; /* the sample in flight, or NULL */
	struct event *deliver_ev;  /* hands the result to done() from the loop */
	bool busy;		   /* from sample() until done() is called */
	gpu_provider_done_cb done;
	void *done_arg;
	struct gpu_reading readings[GPU_MAX_DEVICES];
	size_t nreadings;
	int rc;
	char *cause; /* of the last sample; borrowed by done(), freed by the next */
	struct gpu_host_memory host;
};

/* The message of a non-200 reply: vramd's {"error": "..."}, else the body's start. */
static char *
remote_status_message(const struct httpc_result *res)
{
	json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
	const char *text = json_string_value(json_object_get(root, "error"));
	char *msg = text != NULL	? xasprintf(": %.*s", REMOTE_ERROR_SHOWN, text)
		    : res->body_len > 0 ? xasprintf(": %.*s", REMOTE_ERROR_SHOWN, res->body)
					: xstrdup("");
	json_decref(root);
	return msg;
}

static void
remote_reply_cb(const struct httpc_result *res, void *arg)
{
	struct remote_provider *p = arg;
	char *why = NULL;
	p->req = NULL;
	p->nreadings = 0;
	p->rc = 0;
	memset(&p->host, 0, sizeof(p->host));
	if (res->error != HTTPC_OK) {
		p->rc = res->error == HTTPC_ERR_TIMEOUT	  ? -ETIMEDOUT
			: res->error == HTTPC_ERR_CONNECT ? -ECONNREFUSED
							  : -EIO;
		p->cause = xasprintf("GET %s: %s: %s", p->shown, httpc_error_name(res->error),
				     res->error_message != NULL ? res->error_message : "failed");
	} else if (res->status != 200) {
		char *msg = remote_status_message(res);
		p->rc = -EIO;
		p->cause = xasprintf("GET %s: HTTP %d%s", p->shown, res->status, msg);
		free(msg);
	} else {
		json_t *root = remote_load(res->body, res->body_len, &why);
		int n = root != NULL ? remote_parse_gpus(root, p->readings, GPU_MAX_DEVICES, &why)
				     : -EINVAL;
		if (n >= 0 && remote_parse_host(root, &p->host, &why) < 0)
			n = -EINVAL;
		const char *served = json_string_value(json_object_get(root, "served_at"));
		if (served == NULL || ollama_parse_time(served, &p->served_wall_ms) < 0)
			p->served_wall_ms = 0;
		json_decref(root);
		if (n < 0) {
			p->rc = n;
			p->cause = xasprintf("GET %s: %s", p->shown, why);
		} else {
			p->nreadings = (size_t)n;
		}
	}
	free(why);
	int64_t wall = vd_now_wall_ms(), mono = vd_now_mono_ms();
	for (size_t i = 0; i < p->nreadings; i++) {
		struct gpu_sample *s = &p->readings[i].sample;
		/* How old the reading was when served, both times on the remote's clock (ours
		 * may differ): a load that ended after it was measured is not in it yet. */
		int64_t age =
		    p->served_wall_ms > 0 && s->wall_ms > 0 ? p->served_wall_ms - s->wall_ms : 0;
		if (age < 0 || age > REMOTE_MAX_AGE_MS)
			age = age < 0 ? 0 : REMOTE_MAX_AGE_MS;
		/* When the remote measured it, if it says; ours is the time it arrived. */
		if (s->wall_ms <= 0)
			s->wall_ms = wall;
		s->mono_ms = mono;
		s->measured_mono_ms = mono - age;
	}
	event_active(p->deliver_ev, EV_TIMEOUT, 1);
}

static void
remote_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct remote_provider *p = arg;
	gpu_provider_done_cb done = p->done;
	p->busy = false;
	p->done = NULL;
	/* Last: done() may close the provider. */
	done(p->readings, p->nreadings, p->rc, p->cause, p->done_arg);
}

static int
remote_provider_open(const struct gpu_provider_config *config, void **state, char **cause)
{
	const char *base = config->remote_url;
	if (base == NULL || *base == '\0')
		return vd_fail(cause, -EINVAL, "no URL of a remote vramd given");
	if (!vd_str_has_prefix(base, "http://") && !vd_str_has_prefix(base, "https://")) {
		char *shown = vd_url_redact(base);
		int rc = vd_fail(cause, -EINVAL, "\"%s\" is not an http:// or https:// URL", shown);
		free(shown);
		return rc;
	}
	struct remote_provider *p = xcalloc(1, sizeof(*p));
	size_t len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		len--;
	p->base = config->base;
	p->url = xasprintf("%.*s%s", (int)len, base, REMOTE_STATUS_PATH);
	p->shown = vd_url_redact(p->url);
	p->timeout_ms =
	    config->smi_timeout_ms > 0 ? config->smi_timeout_ms : GPU_DEFAULT_SMI_TIMEOUT_MS;
	p->client = httpc_new(p->base);
	p->deliver_ev = evtimer_new(p->base, remote_deliver_cb, p);
	*state = p;
	return 0;
}

static void
remote_provider_sample(void *state, gpu_provider_done_cb done, void *arg)
{
	struct remote_provider *p = state;
	if (p->busy) {
		done(NULL, 0, -EBUSY, "a sample of the remote vramd is already running", arg);
		return;
	}
	free(p->cause);
	p->cause = NULL;
	p->busy = true;
	p->done = done;
	p->done_arg = arg;
	struct httpc_options opts = {
	    .method = "GET",
	    .url = p->url,
	    .timeout_ms = p->timeout_ms,
	    .connect_timeout_ms = p->timeout_ms < HTTPC_DEFAULT_CONNECT_TIMEOUT
				      ? p->timeout_ms
				      : HTTPC_DEFAULT_CONNECT_TIMEOUT,
	    .max_reply_bytes = REMOTE_REPLY_CAP,
	};
	p->req = httpc_start(p->client, &opts, remote_reply_cb, p);
}

static void
remote_provider_close(void *state)
{
	struct remote_provider *p = state;
	if (p == NULL)
		return;
	httpc_cancel(p->req);
	httpc_free(p->client);
	event_free(p->deliver_ev);
	free(p->url);
	free(p->shown);
	free(p->cause);
	free(p);
}

static const struct gpu_host_memory *
remote_provider_host(void *state)
{
	const struct remote_provider *p = state;
	return &p->host;
}

const struct gpu_provider gpu_provider_remote = {
    .name = "vramd",
    .open = remote_provider_open,
    .sample = remote_provider_sample,
    .close = remote_provider_close,
    .host = remote_provider_host,
};
