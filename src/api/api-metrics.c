/*
 * api-metrics.c: GET /metrics, vramd in the Prometheus text exposition format 0.0.4
 * (docs/operations.md lists every series).
 *
 * Two kinds of series. Counters and histograms of events (jobs by final status, queue
 * waits, runs, loads, scheduler decisions, HTTP requests) live in d->metrics, a
 * struct metrics built from the table below, and are updated where the events happen
 * (daemon.c, engine.c, the HTTP status hook here) by one-line calls naming the family.
 * Everything else (GPU readings, resident models, queue lengths, node health, which
 * instance of a cluster leads, the process) is state vramd already observes, read at
 * scrape time, so /metrics never disagrees with /api/gpu/status or /api/stats and
 * nothing is remembered twice.
 *
 * Units are Prometheus's base units (bytes, seconds, ratios 0..1, watts, celsius);
 * enumerations are one gauge per value (vramd_gpu_state{state="normal"} 1, the others 0)
 * so a query can select a state without knowing its number. The HTTP counter's route
 * label is the route table's pattern, never the raw path, to keep its cardinality
 * bounded by the table. /metrics is public like /api/health unless METRICS_REQUIRE_KEY
 * is set (Prometheus scrapers are usually given no key).
 */
#include "api.h"

#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "gpu.h"
#include "gpu-policy.h"
#include "http-util.h"
#include "metrics.h"
#include "node.h"
#include "queue.h"
#include "thermal.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The exposition of a large fleet is a few hundred kB; this only stops a runaway. */
#define API_METRICS_MAX_BYTES (32u << 20)

/* Buckets, in seconds, sized to what each measures. */
static const double api_metrics_wait_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,	  2.5, 5,
						 10,   30,   60,  120,	300, 600, 1800};
static const double api_metrics_run_bounds[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
						10,   30,  60,	 120, 300, 600};
static const double api_metrics_load_bounds[] = {0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};
static const double api_metrics_decision_bounds[] = {
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1};

#define API_METRICS_HIST(b) (b), VD_ARRAY_LEN(b)

/* The event series: the names the hooks pass to metrics_add() and metrics_observe(). */
static const struct metrics_def api_metrics_defs[] = {
    {"vramd_jobs_submitted_total",
     METRICS_COUNTER,
     "Jobs accepted (submitted, or recovered from the store at start), by priority.",
     {"priority"},
     NULL,
     0},
    {"vramd_jobs_completed_total",
     METRICS_COUNTER,
     "Jobs that ended complete, by priority.",
     {"priority"},
     NULL,
     0},
    {"vramd_jobs_failed_total",
     METRICS_COUNTER,
     "Jobs that ended failed, by priority.",
     {"priority"},
     NULL,
     0},
    {"vramd_jobs_cancelled_total",
     METRICS_COUNTER,
     "Jobs that ended cancelled, by priority.",
     {"priority"},
     NULL,
     0},
    {"vramd_job_queue_wait_seconds",
     METRICS_HISTOGRAM,
     "Time a job waited in the queue before it was dispatched to a node (each dispatch).",
     {"priority"},
     API_METRICS_HIST(api_metrics_wait_bounds)},
    {"vramd_job_run_seconds",
     METRICS_HISTOGRAM,
     "Time a job's last run took on its node, for jobs that ran, by priority.",
     {"priority"},
     API_METRICS_HIST(api_metrics_run_bounds)},
    {"vramd_model_loads_total",
     METRICS_COUNTER,
     "Model loads that succeeded.",
     {"node", "model"},
     NULL,
     0},
    {"vramd_model_load_failures_total",
     METRICS_COUNTER,
     "Model loads that failed or timed out (LOAD_TIMEOUT).",
     {"node", "model"},
     NULL,
     0},
    {"vramd_model_load_seconds",
     METRICS_HISTOGRAM,
     "Time a successful model load took.",
     {"node", "model"},
     API_METRICS_HIST(api_metrics_load_bounds)},
    {"vramd_scheduler_decision_seconds",
     METRICS_HISTOGRAM,
     "Time one node's scheduling decision (sched_decide) took.",
     {"node"},
     API_METRICS_HIST(api_metrics_decision_bounds)},
    {"vramd_route_decision_seconds",
     METRICS_HISTOGRAM,
     "Time the fleet's routing decision (route_decide: which node serves each model) took.",
     {NULL},
     API_METRICS_HIST(api_metrics_decision_bounds)},
    {"vramd_http_requests_total",
     METRICS_COUNTER,
     "HTTP requests answered, by the route table's pattern (\"unmatched\": no route, or "
     "refused before routing) and status.",
     {"route", "status"},
     NULL,
     0},
};

struct metrics *
api_metrics_new(void)
{
	struct metrics *m = metrics_new(api_metrics_defs, VD_ARRAY_LEN(api_metrics_defs));
	/* Every priority's job counters exist from the start at 0, so rate() and increase()
	 * see the first job instead of a series that appears with it. */
	static const char *const finals[] = {
	    "vramd_jobs_submitted_total", "vramd_jobs_completed_total", "vramd_jobs_failed_total",
	    "vramd_jobs_cancelled_total"};
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		for (size_t i = 0; i < VD_ARRAY_LEN(finals); i++)
			metrics_add(m, finals[i], 0, job_priority_name((enum job_priority)p));
	return m;
}

void
api_metrics_job_final(struct metrics *m, const struct job *job)
{
	static const char *const names[JOB_NSTATUSES] = {
	    [JOB_COMPLETE] = "vramd_jobs_completed_total",
	    [JOB_FAILED] = "vramd_jobs_failed_total",
	    [JOB_CANCELLED] = "vramd_jobs_cancelled_total",
	};
	const char *priority = job_priority_name(job->priority);
	if ((unsigned)job->status < JOB_NSTATUSES && names[job->status] != NULL)
		metrics_add(m, names[job->status], 1, priority);
	if (job->started_at_ms > 0)
		metrics_observe(m, "vramd_job_run_seconds", (double)job->run_ms / 1000.0, priority);
}

void
api_metrics_http_cb(struct vd_http_req *req, int status, void *arg)
{
	struct daemon *d = arg;
	const char *route = vd_http_req_route(req);
	char code[16];
	snprintf(code, sizeof(code), "%d", status);
	metrics_add(d->metrics, "vramd_http_requests_total", 1, route != NULL ? route : "unmatched",
		    code);
}

/* --- Scrape-time series: GPUs ---------------------------------------------------------- */

/* One GPU as exported: the node that uses it, and what is known of it. */
struct api_metrics_gpu {
	const char *node;
	const struct engine *engine; /* the node's engine (its models on this GPU); NULL */
	const struct gpu_device *dev;
	const struct gpu_sample *sample; /* NULL when it has none or is lost */
	bool local;			 /* this host's GPU: the GPU policy accounts it */
	struct gpu_policy_memory mem;	 /* local: the policy's accounting */
	char index[16];
};

struct api_metrics_gpus {
	struct api_metrics_gpu *rows;
	size_t n, alloc;
};

static void
api_metrics_gpus_add(struct api_metrics_gpus *g, struct daemon *d, const struct node *n,
		     const struct gpu_device *dev, bool local)
{
	for (size_t i = 0; local && i < g->n; i++)
		if (g->rows[i].local && g->rows[i].dev->index == dev->index)
			return; /* nodes of this host sharing a GPU: it is counted once */
	if (g->n == g->alloc) {
		g->alloc = g->alloc ? g->alloc * 2 : 8;
		g->rows = xreallocarray(g->rows, g->alloc, sizeof(*g->rows));
	}
	struct api_metrics_gpu *row = &g->rows[g->n++];
	*row = (struct api_metrics_gpu){
	    .node = n != NULL ? n->name : "",
	    .engine = n != NULL ? n->engine : NULL,
	    .dev = dev,
	    .sample = dev->has_sample && dev->state == GPU_DEVICE_AVAILABLE ? &dev->latest : NULL,
	    .local = local,
	};
	snprintf(row->index, sizeof(row->index), "%u", dev->index);
	if (local && !gpu_policy_memory(d->policy, (int)dev->index, &row->mem))
		row->mem.known = false;
}

/* Every node's GPUs, then this host's GPUs that no node uses. */
static void
api_metrics_gpus_collect(struct daemon *d, struct api_metrics_gpus *g)
{
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		const struct node *n = fleet_node(d->fleet, i);
		if (n->gpus == NULL)
			continue;
		for (size_t k = 0; k < node_gpu_count(n); k++)
			api_metrics_gpus_add(g, d, n, node_gpu_at(n, k), !n->owns_gpus);
	}
	for (size_t k = 0; d->gpus != NULL && k < gpu_monitor_count(d->gpus); k++)
		api_metrics_gpus_add(g, d, NULL, gpu_monitor_device(d->gpus, k), true);
}

static bool
api_metrics_has(const struct api_metrics_gpu *g, uint32_t bit)
{
	return g->sample != NULL && (g->sample->valid & bit);
}

/* Sets *v and says so: the getters below return whether the GPU knows the value. */
static bool
api_metrics_set(double *v, double value)
{
	*v = value;
	return true;
}

static bool
api_gpu_mem_total(const struct api_metrics_gpu *g, double *v)
{
	if (g->local && g->mem.known)
		return api_metrics_set(v, (double)g->mem.total_bytes);
	return api_metrics_has(g, GPU_HAS_MEM_TOTAL) &&
	       api_metrics_set(v, (double)g->sample->mem_total_bytes);
}

static bool
api_gpu_mem_used(const struct api_metrics_gpu *g, double *v)
{
	if (g->local && g->mem.known)
		return api_metrics_set(v, (double)g->mem.used_bytes);
	return api_metrics_has(g, GPU_HAS_MEM_USED) &&
	       api_metrics_set(v, (double)g->sample->mem_used_bytes);
}

static bool
api_gpu_mem_free(const struct api_metrics_gpu *g, double *v)
{
	if (g->local && g->mem.known)
		return api_metrics_set(v, (double)g->mem.free_bytes);
	return api_metrics_has(g, GPU_HAS_MEM_FREE) &&
	       api_metrics_set(v, (double)g->sample->mem_free_bytes);
}

static uint64_t
api_gpu_models_bytes(const struct api_metrics_gpu *g)
{
	if (g->local && g->mem.known)
		return g->mem.models_bytes;
	return g->engine != NULL ? engine_gpu_models_bytes(g->engine, (int)g->dev->index) : 0;
}

static bool
api_gpu_mem_models(const struct api_metrics_gpu *g, double *v)
{
	if (g->sample == NULL && !(g->local && g->mem.known))
		return false;
	*v = (double)api_gpu_models_bytes(g);
	return true;
}

static bool
api_gpu_mem_other(const struct api_metrics_gpu *g, double *v)
{
	if (g->local && g->mem.known)
		return api_metrics_set(v, (double)g->mem.other_bytes);
	double used;
	if (!api_gpu_mem_used(g, &used))
		return false;
	double models = (double)api_gpu_models_bytes(g);
	*v = used > models ? used - models : 0;
	return true;
}

static bool
api_gpu_mem_reserved(const struct api_metrics_gpu *g, double *v)
{
	/* VRAM reservations (POST /api/gpu/memory/allocate) exist for this host's GPUs. */
	return g->local && g->mem.known && api_metrics_set(v, (double)g->mem.reserved_bytes);
}

static bool
api_gpu_util(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_UTIL_GPU) &&
	       api_metrics_set(v, g->sample->util_gpu_pct / 100.0);
}

static bool
api_gpu_mem_util(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_UTIL_MEM) &&
	       api_metrics_set(v, g->sample->util_mem_pct / 100.0);
}

static bool
api_gpu_temp(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_TEMPERATURE) &&
	       api_metrics_set(v, (double)g->sample->temperature_c);
}

static bool
api_gpu_power(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_POWER_DRAW) &&
	       api_metrics_set(v, g->sample->power_draw_mw / 1000.0);
}

static bool
api_gpu_power_limit(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_POWER_LIMIT) &&
	       api_metrics_set(v, g->sample->power_limit_mw / 1000.0);
}

static bool
api_gpu_fan(const struct api_metrics_gpu *g, double *v)
{
	return api_metrics_has(g, GPU_HAS_FAN) && api_metrics_set(v, g->sample->fan_pct / 100.0);
}

static bool
api_gpu_up(const struct api_metrics_gpu *g, double *v)
{
	*v = g->sample != NULL ? 1 : 0;
	return true;
}

/* The per-GPU gauges: one family per row, one sample per GPU that knows the value. */
static const struct api_metrics_gpu_gauge {
	const char *name, *help;
	bool (*value)(const struct api_metrics_gpu *g, double *out);
} api_metrics_gpu_gauges[] = {
    {"vramd_gpu_up", "1 when the GPU has a current reading, 0 when lost or not read yet.",
     api_gpu_up},
    {"vramd_gpu_memory_total_bytes", "GPU memory in total.", api_gpu_mem_total},
    {"vramd_gpu_memory_used_bytes", "GPU memory in use, by anything.", api_gpu_mem_used},
    {"vramd_gpu_memory_free_bytes", "GPU memory free.", api_gpu_mem_free},
    {"vramd_gpu_memory_models_bytes", "GPU memory the models vramd placed there take.",
     api_gpu_mem_models},
    {"vramd_gpu_memory_other_bytes", "GPU memory used by anything but vramd's models.",
     api_gpu_mem_other},
    {"vramd_gpu_memory_reserved_bytes",
     "GPU memory held by VRAM reservations (POST /api/gpu/memory/allocate).", api_gpu_mem_reserved},
    {"vramd_gpu_utilization_ratio", "GPU compute utilisation, 0..1.", api_gpu_util},
    {"vramd_gpu_memory_utilization_ratio", "GPU memory bandwidth utilisation, 0..1.",
     api_gpu_mem_util},
    {"vramd_gpu_temperature_celsius", "GPU temperature.", api_gpu_temp},
    {"vramd_gpu_power_watts", "GPU power draw.", api_gpu_power},
    {"vramd_gpu_power_limit_watts", "GPU power limit.", api_gpu_power_limit},
    {"vramd_gpu_fan_ratio", "GPU fan speed, 0..1 of its maximum.", api_gpu_fan},
};

static size_t
api_metrics_gpu_labels(const struct api_metrics_gpu *g, struct metrics_label *labels)
{
	labels[0] = (struct metrics_label){"node", g->node};
	labels[1] = (struct metrics_label){"index", g->index};
	labels[2] = (struct metrics_label){"uuid", g->dev->uuid};
	labels[3] = (struct metrics_label){"name", g->dev->name};
	return 4;
}

/* A thermal state's name as a label value: "normal", "throttled", ... */
static void
api_metrics_lower(const char *in, char *out, size_t size)
{
	size_t i = 0;
	for (; in[i] && i + 1 < size; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

static void
api_metrics_write_gpus(struct daemon *d, struct metrics_out *out)
{
	struct api_metrics_gpus g = {0};
	api_metrics_gpus_collect(d, &g);
	struct metrics_label labels[METRICS_MAX_LABELS + 1];
	for (size_t f = 0; f < VD_ARRAY_LEN(api_metrics_gpu_gauges); f++) {
		const struct api_metrics_gpu_gauge *gauge = &api_metrics_gpu_gauges[f];
		metrics_write_head(out, gauge->name, METRICS_GAUGE, gauge->help);
		for (size_t i = 0; i < g.n; i++) {
			double v;
			if (gauge->value(&g.rows[i], &v))
				metrics_write_sample(out, gauge->name, labels,
						     api_metrics_gpu_labels(&g.rows[i], labels), v);
		}
	}

	/* The thermal/memory state machine of this host's GPUs, as an enum gauge. */
	metrics_write_head(
	    out, "vramd_gpu_state", METRICS_GAUGE,
	    "The GPU's state (docs/api.md, the GPU object): 1 for the state it is in, 0 "
	    "for the others.");
	for (size_t i = 0; i < g.n; i++) {
		if (!g.rows[i].local)
			continue;
		const struct thermal_status *st =
		    gpu_policy_status(d->policy, (int)g.rows[i].dev->index);
		enum thermal_state now = g.rows[i].sample == NULL ? THERMAL_UNAVAILABLE
					 : st != NULL		  ? st->state
								  : THERMAL_OPTIMAL;
		size_t n = api_metrics_gpu_labels(&g.rows[i], labels);
		for (int s = 0; s < THERMAL_NSTATES; s++) {
			char name[32];
			api_metrics_lower(thermal_state_name((enum thermal_state)s), name,
					  sizeof(name));
			labels[n] = (struct metrics_label){"state", name};
			metrics_write_sample(out, "vramd_gpu_state", labels, n + 1, s == (int)now);
		}
	}
	metrics_write_head(out, "vramd_gpu_speed_ratio", METRICS_GAUGE,
			   "The share of its normal job rate vramd gives the GPU (1: no throttling "
			   "by vramd, 0: paused).");
	for (size_t i = 0; i < g.n; i++)
		if (g.rows[i].local)
			metrics_write_sample(
			    out, "vramd_gpu_speed_ratio", labels,
			    api_metrics_gpu_labels(&g.rows[i], labels),
			    gpu_policy_speed(d->policy, (int)g.rows[i].dev->index));

	/* The card's own clock event (throttle) reasons, when the provider reports them. */
	const struct gpu_clock_event_name *reasons;
	size_t nreasons = gpu_clock_event_names(&reasons);
	metrics_write_head(out, "vramd_gpu_throttle_reason", METRICS_GAUGE,
			   "1 when the GPU reports this clock event (throttle) reason active.");
	for (size_t i = 0; i < g.n; i++) {
		if (!api_metrics_has(&g.rows[i], GPU_HAS_CLOCK_EVENTS))
			continue;
		size_t n = api_metrics_gpu_labels(&g.rows[i], labels);
		for (size_t r = 0; r < nreasons; r++) {
			labels[n] = (struct metrics_label){"reason", reasons[r].name};
			metrics_write_sample(
			    out, "vramd_gpu_throttle_reason", labels, n + 1,
			    (g.rows[i].sample->clock_event_reasons & reasons[r].bit) ? 1 : 0);
		}
	}
	free(g.rows);
}

/* --- Scrape-time series: models, queue, nodes, process ---------------------------------- */

static void
api_metrics_write_models(struct daemon *d, struct metrics_out *out)
{
	metrics_write_head(out, "vramd_model_resident_bytes", METRICS_GAUGE,
			   "Memory a resident model takes on its node (GPU and CPU).");
	json_t *lists = json_array();
	for (size_t i = 0; i < fleet_count(d->fleet); i++)
		json_array_append_new(lists,
				      engine_loaded_models_json(fleet_node(d->fleet, i)->engine));
	size_t i;
	json_t *list;
	json_array_foreach(lists, i, list)
	{
		const char *node = fleet_node(d->fleet, i)->name;
		size_t k;
		json_t *m;
		json_array_foreach(list, k, m)
		{
			json_int_t vram = json_integer_value(json_object_get(m, "size_vram_bytes"));
			json_int_t foot = json_integer_value(json_object_get(m, "footprint_bytes"));
			struct metrics_label labels[] = {
			    {"node", node},
			    {"model", json_string_value(json_object_get(m, "model"))}};
			metrics_write_sample(out, "vramd_model_resident_bytes", labels, 2,
					     (double)(vram > 0 ? vram : foot));
		}
	}
	metrics_write_head(out, "vramd_model_running_jobs", METRICS_GAUGE,
			   "Jobs of a resident model running on its node now.");
	json_array_foreach(lists, i, list)
	{
		const char *node = fleet_node(d->fleet, i)->name;
		size_t k;
		json_t *m;
		json_array_foreach(list, k, m)
		{
			struct metrics_label labels[] = {
			    {"node", node},
			    {"model", json_string_value(json_object_get(m, "model"))}};
			metrics_write_sample(
			    out, "vramd_model_running_jobs", labels, 2,
			    (double)json_integer_value(json_object_get(m, "running")));
		}
	}
	json_decref(lists);

	/* The queue is shared by the nodes: queued jobs have a model, not yet a node. */
	metrics_write_head(out, "vramd_model_queued_jobs", METRICS_GAUGE,
			   "Jobs of a model waiting in the queue, by priority.");
	size_t n = queue_model_count(d->queue);
	struct queue_model_summary *sums = xcalloc(n > 0 ? n : 1, sizeof(*sums));
	n = queue_summaries(d->queue, sums, n);
	for (size_t k = 0; k < n; k++)
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			if (sums[k].count[p] == 0)
				continue;
			struct metrics_label labels[] = {
			    {"model", sums[k].model},
			    {"priority", job_priority_name((enum job_priority)p)}};
			metrics_write_sample(out, "vramd_model_queued_jobs", labels, 2,
					     sums[k].count[p]);
		}
	free(sums);
	metrics_write_head(out, "vramd_queue_jobs", METRICS_GAUGE,
			   "Jobs waiting in the queue, by priority.");
	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		struct metrics_label label = {"priority", job_priority_name((enum job_priority)p)};
		metrics_write_sample(out, "vramd_queue_jobs", &label, 1,
				     (double)queue_length_priority(d->queue, (enum job_priority)p));
	}
	metrics_write_head(out, "vramd_queue_capacity_jobs", METRICS_GAUGE,
			   "Jobs the queue accepts at most (QUEUE_MAX_SIZE).");
	metrics_write_sample(out, "vramd_queue_capacity_jobs", NULL, 0,
			     (double)queue_capacity(d->queue));
	int running = 0;
	double run_ms_mean;
	fleet_run_stats(d->fleet, &running, &run_ms_mean);
	metrics_write_head(out, "vramd_running_jobs", METRICS_GAUGE,
			   "Jobs running on all nodes now.");
	metrics_write_sample(out, "vramd_running_jobs", NULL, 0, running);
}

static void
api_metrics_write_nodes(struct daemon *d, struct metrics_out *out)
{
	metrics_write_head(out, "vramd_node_up", METRICS_GAUGE,
			   "1 when the node's Ollama answers its health probe.");
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		const struct node *n = fleet_node(d->fleet, i);
		struct metrics_label labels[] = {{"node", n->name}, {"url", n->url}};
		metrics_write_sample(out, "vramd_node_up", labels, 2, n->up);
	}
	static const char *const breaker_states[] = {"closed", "open", "half_open"};
	metrics_write_head(out, "vramd_node_breaker_state", METRICS_GAUGE,
			   "The node's circuit breaker: 1 for the state it is in (closed: in use, "
			   "open: failing, no work sent, half_open: one trial under way).");
	for (size_t i = 0; i < fleet_count(d->fleet); i++) {
		const struct node *n = fleet_node(d->fleet, i);
		const char *now = node_breaker_state(n);
		for (size_t s = 0; s < VD_ARRAY_LEN(breaker_states); s++) {
			struct metrics_label labels[] = {{"node", n->name},
							 {"state", breaker_states[s]}};
			metrics_write_sample(out, "vramd_node_breaker_state", labels, 2,
					     strcmp(now, breaker_states[s]) == 0);
		}
	}
}

/* The HTTP server's own counters: what it refused or answered before any handler. */
static void
api_metrics_write_httpd(struct daemon *d, struct metrics_out *out)
{
	struct vd_httpd_stats hs;
	vd_httpd_get_stats(d->http, &hs);
	const struct {
		const char *name, *help;
		enum metrics_type type;
		double value;
	} rows[] = {
	    {"vramd_http_connections", "Client connections open now.", METRICS_GAUGE,
	     (double)hs.connections},
	    {"vramd_http_max_connections", "Client connections allowed at once (MAX_CONNECTIONS).",
	     METRICS_GAUGE, (double)hs.max_connections},
	    {"vramd_http_connections_accepted_total", "Client connections accepted.",
	     METRICS_COUNTER, (double)hs.accepted},
	    {"vramd_http_connections_refused_total",
	     "Connections refused with 503 at the connection cap.", METRICS_COUNTER,
	     (double)hs.refused_busy},
	    {"vramd_http_timeouts_total",
	     "Connections closed because a request head, body, idle wait or reply took too long.",
	     METRICS_COUNTER, (double)hs.timeouts},
	    {"vramd_http_server_errors_total",
	     "Requests the HTTP server answered itself with an error (400, 408, 413, 414, 431, "
	     "...).",
	     METRICS_COUNTER, (double)hs.bad_requests},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(rows); i++) {
		metrics_write_head(out, rows[i].name, rows[i].type, rows[i].help);
		metrics_write_sample(out, rows[i].name, NULL, 0, rows[i].value);
	}
}

/* --- Scrape-time series: the cluster ------------------------------------------------- */

/* Whether an instance of GET /api/cluster's listing is alive: its row was written within
 * LEADER_TAKEOVER_S (leader.h: older means likely gone; stopped instances keep their row
 * for a day, so counting every row would count the departed too). */
static bool
api_metrics_instance_is_alive(const json_t *inst, int64_t takeover_ms)
{
	const json_t *age = json_object_get(inst, "last_seen_ms_ago");
	return json_is_integer(age) && json_integer_value(age) <= takeover_ms;
}

/* Which instance leads, and how many there are: only with several instances on one
 * PostgreSQL store (cluster.h), so a scrape of any instance says whether it leads. The
 * values come from the latest listing of the database's vramd_instances table, as
 * GET /api/cluster does. */
static void
api_metrics_write_cluster(struct daemon *d, struct metrics_out *out)
{
	if (d->cluster == NULL)
		return;
	json_t *c = cluster_json(d->cluster);
	struct metrics_label label = {"instance",
				      json_string_value(json_object_get(c, "instance"))};
	int64_t takeover_ms = config_int(d->config, CONFIG_LEADER_TAKEOVER_S) * 1000;
	size_t alive = 0, i;
	json_t *inst;
	json_array_foreach(json_object_get(c, "instances"), i, inst)
	{
		if (api_metrics_instance_is_alive(inst, takeover_ms))
			alive++;
	}
	metrics_write_head(out, "vramd_cluster_leader", METRICS_GAUGE,
			   "1 when this instance leads the instances sharing its PostgreSQL store "
			   "(runs the scheduler), 0 on a follower.");
	metrics_write_sample(out, "vramd_cluster_leader", &label, 1,
			     !cluster_is_follower(d->cluster));
	metrics_write_head(
	    out, "vramd_cluster_instances", METRICS_GAUGE,
	    "Instances sharing this PostgreSQL store whose last heartbeat, as of the "
	    "latest listing, is at most LEADER_TAKEOVER_S old.");
	metrics_write_sample(out, "vramd_cluster_instances", &label, 1, (double)alive);
	json_decref(c);
}

/* Counts the entries of /proc/self/fd (less the directory's own descriptor). */
static int
api_metrics_open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL)
		return -1;
	int n = 0;
	const struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;
}

/* The standard process_* series (the names every Prometheus client library uses). */
static void
api_metrics_write_process(struct daemon *d, struct metrics_out *out)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		metrics_write_head(out, "process_cpu_seconds_total", METRICS_COUNTER,
				   "Total user and system CPU time spent in seconds.");
		metrics_write_sample(out, "process_cpu_seconds_total", NULL, 0, cpu);
	}
	unsigned long long pages_virtual = 0, pages_resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%llu %llu", &pages_virtual, &pages_resident) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			metrics_write_head(out, "process_resident_memory_bytes", METRICS_GAUGE,
					   "Resident memory size in bytes.");
			metrics_write_sample(out, "process_resident_memory_bytes", NULL, 0,
					     (double)pages_resident * page);
			metrics_write_head(out, "process_virtual_memory_bytes", METRICS_GAUGE,
					   "Virtual memory size in bytes.");
			metrics_write_sample(out, "process_virtual_memory_bytes", NULL, 0,
					     (double)pages_virtual * page);
		}
		fclose(f);
	}
	int fds = api_metrics_open_fds();
	if (fds >= 0) {
		metrics_write_head(out, "process_open_fds", METRICS_GAUGE,
				   "Number of open file descriptors.");
		metrics_write_sample(out, "process_open_fds", NULL, 0, fds);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		metrics_write_head(out, "process_max_fds", METRICS_GAUGE,
				   "Maximum number of open file descriptors.");
		metrics_write_sample(out, "process_max_fds", NULL, 0, (double)rl.rlim_cur);
	}
	metrics_write_head(out, "process_start_time_seconds", METRICS_GAUGE,
			   "Start time of the process since unix epoch in seconds.");
	metrics_write_sample(out, "process_start_time_seconds", NULL, 0,
			     (double)d->started_wall_ms / 1000.0);

	struct metrics_label version = {"version", VRAMD_VERSION};
	metrics_write_head(out, "vramd_build_info", METRICS_GAUGE,
			   "Always 1; the version vramd was built from.");
	metrics_write_sample(out, "vramd_build_info", &version, 1, 1);
	metrics_write_head(out, "vramd_metrics_dropped_total", METRICS_COUNTER,
			   "Counter and histogram updates dropped because a family reached its "
			   "series bound (a bug if not 0).");
	metrics_write_sample(out, "vramd_metrics_dropped_total", NULL, 0,
			     (double)metrics_dropped(d->metrics));
}

void
api_metrics(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	struct metrics_out out = {.err = 0};
	vd_buf_init(&out.buf, API_METRICS_MAX_BYTES);
	api_metrics_write_gpus(d, &out);
	api_metrics_write_models(d, &out);
	api_metrics_write_nodes(d, &out);
	metrics_write(d->metrics, &out);
	api_metrics_write_httpd(d, &out);
	api_metrics_write_cluster(d, &out);
	api_metrics_write_process(d, &out);
	if (out.err < 0) {
		vd_buf_cleanup(&out.buf);
		vd_http_reply_error(req, 500, "the metrics exposition is over its %u byte bound",
				    API_METRICS_MAX_BYTES);
		return;
	}
	vd_http_req_set_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	vd_http_req_reply(req, 200, out.buf.data, out.buf.len);
	vd_buf_cleanup(&out.buf);
}
