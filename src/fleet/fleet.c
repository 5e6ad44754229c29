/*
 * fleet.c: the nodes and the decision across them (fleet.h). Each node gets its own
 * backend, registry (what is installed there, and what loads measured there), monitor and
 * engine; the host's GPU monitor is shared by the nodes of this host, a remote node reads
 * its machine's vramd with a monitor of its own.
 */
#include "fleet.h"

#include "backend.h"
#include "cluster.h"
#include "config.h"
#include "daemon.h"
#include "gpu.h"
#include "gpu-map.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "node.h"
#include "nodes.h"
#include "queue.h"
#include "registry.h"
#include "route.h"
#include "scheduler.h"
#include "supervisor.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fleet {
	struct daemon *d;
	struct fleet_hooks hooks;
	struct supervisor *supervisor; /* SUPERVISE=per-gpu: the servers vramd runs; or NULL */
	struct node **nodes;
	struct engine **engines; /* nodes[i]->engine, for engine_set_siblings */
	size_t nnodes;
	struct event *kick_event;
	struct event *tick;
	bool started;	/* fleet_start: decisions run (a cluster's follower never starts) */
	bool observing; /* fleet_observe: the nodes' monitors poll */
	bool kick_requested;
	/* Working memory of a decision, kept to avoid allocating each time. */
	struct queue_model_summary *sums;
	struct route_model *rmodels;
	struct route_cell *cells;
	struct route_node *rnodes;
	bool *serve, *serve_node;
	enum route_verdict *verdicts;
	void *scratch;
	size_t models_alloc;
};

/* --- Monitor reports ------------------------------------------------------------------ */

static void
fleet_node_up_cb(void *arg, bool up)
{
	struct node *n = arg;
	n->up = up;
	if (up)
		breaker_success(&n->breaker, vd_now_mono_ms());
	else
		breaker_failure(&n->breaker, vd_now_mono_ms());
	engine_set_backend_up(n->engine, up);
}

static void
fleet_node_ps_cb(void *arg, const struct backend_running_list *list, int64_t sent_ms)
{
	struct node *n = arg;
	engine_observe_ps(n->engine, list, sent_ms);
}

static void
fleet_kick_engine_cb(void *arg)
{
	fleet_kick(arg);
}

static void
fleet_job_changed_cb(struct job *job, void *arg)
{
	struct fleet *f = arg;
	f->hooks.job_changed(job, f->hooks.arg);
}

/* --- Building the nodes ----------------------------------------------------------------- */

static void
fleet_node_free(struct node *n)
{
	if (n == NULL)
		return;
	monitor_free(n->monitor);
	engine_free(n->engine);
	if (n->owns_gpus)
		gpu_monitor_free(n->gpus);
	backend_free(n->backend);
	registry_free(n->registry);
	for (size_t i = 0; i < n->nlabels; i++)
		free(n->labels[i]);
	free(n->labels);
	free(n->name);
	free(n->url);
	free(n->gpu_filter);
	free(n);
}

static void
fleet_remote_sample_cb(struct gpu_monitor *mon, void *arg)
{
	(void)mon;
	fleet_kick(arg);
}

/* How the node's GPUs are known: its own remote vramd, this host's telemetry, a budget, or
 * nothing (CPU only). */
static int
fleet_node_telemetry(struct fleet *f, struct node *n, const struct node_spec *spec, char **cause)
{
	struct daemon *d = f->d;
	bool host_has_telemetry = strcmp(gpu_monitor_source(d->gpus), "none") != 0;
	if (spec->telemetry_url != NULL) {
		/* The node's own monitor reading its machine's vramd; a sample is a reason to
		 * decide again, as one of this host's is. */
		struct gpu_options opts = {
		    .provider = GPU_PROVIDER_REMOTE,
		    .remote_url = spec->telemetry_url,
		    .interval_ms = config_int(d->config, CONFIG_MEMORY_MONITORING_INTERVAL),
		    .history_len = (size_t)config_int(d->config, CONFIG_GPU_HISTORY_LENGTH),
		    .device_filter = spec->gpus,
		    .on_sample = fleet_remote_sample_cb,
		    .on_sample_arg = f,
		};
		char *why = NULL;
		n->gpus = gpu_monitor_new(d->base, &opts, &why);
		if (n->gpus == NULL) {
			int rc =
			    vd_fail(cause, -EINVAL, "node %s: telemetry_url %s: %s", spec->name,
				    spec->telemetry_url, why != NULL ? why : "unusable");
			free(why);
			return rc;
		}
		n->owns_gpus = true;
		n->telemetry = NODE_TELEMETRY_REMOTE;
		return 0;
	}
	if (spec->local && host_has_telemetry) {
		n->telemetry = NODE_TELEMETRY_LOCAL;
		n->gpus = d->gpus;
		n->gpu_filter = spec->gpus != NULL && *spec->gpus ? xstrdup(spec->gpus) : NULL;
		return 0;
	}
	n->budget_bytes = spec->vram_budget_bytes > 0 ? spec->vram_budget_bytes
						      : config_size(d->config, CONFIG_VRAM_BUDGET);
	n->telemetry = n->budget_bytes > 0 ? NODE_TELEMETRY_BUDGET : NODE_TELEMETRY_NONE;
	return 0;
}

static int
fleet_node_new(struct fleet *f, size_t index, const struct node_spec *spec, struct node **out,
	       char **cause)
{
	struct daemon *d = f->d;
	struct node *n = xcalloc(1, sizeof(*n));
	n->index = index;
	breaker_init(&n->breaker, NULL);
	n->name = xstrdup(spec->name);
	n->url = xstrdup(spec->url);
	n->labels = xcalloc(spec->nlabels + 1, sizeof(*n->labels));
	for (size_t i = 0; i < spec->nlabels; i++)
		n->labels[n->nlabels++] = xstrdup(spec->labels[i]);
	int rc = fleet_node_telemetry(f, n, spec, cause);
	if (rc < 0)
		goto out_fail;
	n->registry = registry_new(config_double(d->config, CONFIG_VRAM_ESTIMATION_MULTIPLIER));
	struct backend_config bcfg = {
	    .url = spec->url,
	    .httpc = d->httpc,
	    .run_timeout_ms = config_int(d->config, CONFIG_REQUEST_TIMEOUT) * 1000,
	};
	rc = backend_new("ollama", &bcfg, &n->backend, cause);
	if (rc < 0)
		goto out_fail;
	n->engine = engine_new(d, n,
			       &(struct engine_hooks){.kick = fleet_kick_engine_cb,
						      .job_changed = fleet_job_changed_cb,
						      .arg = f});
	struct monitor_hooks hooks = {
	    .up = fleet_node_up_cb,
	    .ps = fleet_node_ps_cb,
	    .arg = n,
	};
	n->monitor = monitor_new(d->base, n->backend, n->registry,
				 config_int(d->config, CONFIG_OLLAMA_POLL_INTERVAL), &hooks);
	*out = n;
	return 0;
out_fail:
	fleet_node_free(n);
	return rc;
}

static void fleet_decide_cb(evutil_socket_t fd, short what, void *arg);

static void
fleet_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	f->kick_requested = false;
	fleet_decide_cb(fd, what, arg);
}

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick), or -errno. */
static int
fleet_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int rc = 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		rc = -errno;
	close(fd);
	return rc < 0 ? rc : ntohs(sa.sin_port);
}

/*
 * SUPERVISE=per-gpu: one OLLAMA_BIN serve per GPU of this host, each seeing only its GPU
 * (CUDA_VISIBLE_DEVICES, by UUID when known) and serving on a loopback port of its own;
 * they are the fleet's nodes ("gpu0", "gpu1", ...), local, each owning its GPU.
 */
static int
fleet_supervise(struct fleet *f, struct node_spec **out, size_t *n, char **cause)
{
	struct daemon *d = f->d;
	if (config_str(d->config, CONFIG_NODES_FILE)[0] != '\0' ||
	    config_str(d->config, CONFIG_OLLAMA_NODES)[0] != '\0')
		return vd_fail(cause, -EINVAL,
			       "SUPERVISE=per-gpu makes the nodes itself (one per GPU); "
			       "NODES_FILE and OLLAMA_NODES (--ollama) must not be given with it");
	gpu_monitor_sample_now(d->gpus); /* NVML answers at once: the GPUs are known */
	size_t ngpus = gpu_monitor_count(d->gpus);
	if (ngpus == 0)
		return vd_fail(
		    cause, -ENODEV,
		    "SUPERVISE=per-gpu found no GPU on this host (GPU telemetry: %s%s%s)",
		    gpu_monitor_source(d->gpus), gpu_monitor_reason(d->gpus) ? ", " : "",
		    gpu_monitor_reason(d->gpus) ? gpu_monitor_reason(d->gpus) : "");
	const char *argv[] = {config_str(d->config, CONFIG_OLLAMA_BIN), "serve", NULL};
	f->supervisor = supervisor_new(d->base, argv);
	struct node_spec *specs = xcalloc(ngpus, sizeof(*specs));
	for (size_t i = 0; i < ngpus; i++) {
		const struct gpu_device *dev = gpu_monitor_device(d->gpus, i);
		int port = fleet_free_port();
		if (port < 0) {
			nodes_free(specs, i);
			return vd_fail(cause, port, "SUPERVISE=per-gpu: no free loopback port: %s",
				       strerror(-port));
		}
		char *visible =
		    dev->uuid[0] != '\0' ? xstrdup(dev->uuid) : xasprintf("%u", dev->index);
		char *host = xasprintf("OLLAMA_HOST=127.0.0.1:%d", port);
		char *cuda = xasprintf("CUDA_VISIBLE_DEVICES=%s", visible);
		const char *env[] = {host, cuda, NULL};
		specs[i] = (struct node_spec){
		    .name = xasprintf("gpu%u", dev->index),
		    .url = xasprintf("http://127.0.0.1:%d", port),
		    .gpus = xasprintf("%u", dev->index),
		    .local = true,
		};
		supervisor_add(f->supervisor, specs[i].name, env);
		vd_log(FLEET, "supervising %s serve for GPU %u (%s) on %s", argv[0], dev->index,
		       visible, specs[i].url);
		free(visible);
		free(host);
		free(cuda);
	}
	*out = specs;
	*n = ngpus;
	return 0;
}

int
fleet_new(struct daemon *d, const struct fleet_hooks *hooks, struct fleet **out, char **cause)
{
	struct node_spec *specs;
	size_t nspecs;
	struct fleet *f = xcalloc(1, sizeof(*f));
	f->d = d;
	f->hooks = *hooks;
	int rc = strcmp(config_str(d->config, CONFIG_SUPERVISE), "per-gpu") == 0
		     ? fleet_supervise(f, &specs, &nspecs, cause)
		     : nodes_from_config(d->config, &specs, &nspecs, cause);
	if (rc < 0) {
		fleet_free(f);
		return rc;
	}
	f->nodes = xcalloc(nspecs + 1, sizeof(*f->nodes));
	f->engines = xcalloc(nspecs + 1, sizeof(*f->engines));
	for (size_t i = 0; i < nspecs; i++) {
		rc = fleet_node_new(f, i, &specs[i], &f->nodes[i], cause);
		if (rc < 0)
			break;
		f->engines[i] = f->nodes[i]->engine;
		f->nnodes++;
	}
	nodes_free(specs, nspecs);
	if (rc < 0) {
		fleet_free(f);
		return rc;
	}
	for (size_t i = 0; i < f->nnodes; i++) {
		struct node *n = f->nodes[i];
		engine_set_siblings(n->engine, f->engines, f->nnodes);
		char budget[32] = "";
		if (n->telemetry == NODE_TELEMETRY_BUDGET)
			vd_format_size(n->budget_bytes, budget, sizeof(budget));
		vd_log(FLEET, "node %s: %s, GPUs %s%s%s", n->name, n->url,
		       node_telemetry_name(n->telemetry),
		       n->gpu_filter != NULL ? " " : (*budget ? " of " : ""),
		       n->gpu_filter != NULL ? n->gpu_filter : budget);
	}
	f->kick_event = event_new(d->base, -1, 0, fleet_kick_cb, f);
	f->tick = event_new(d->base, -1, EV_PERSIST, fleet_decide_cb, f);
	*out = f;
	return 0;
}

void
fleet_start(struct fleet *f)
{
	if (f->started)
		return;
	f->started = true;
	int64_t ms = config_int(f->d->config, CONFIG_SCHEDULER_LOOP_INTERVAL);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	event_add(f->tick, &tv);
	fleet_observe(f);
	fleet_kick(f);
}

void
fleet_observe(struct fleet *f)
{
	if (f->observing)
		return;
	f->observing = true;
	for (size_t i = 0; i < f->nnodes; i++)
		monitor_poll_now(f->nodes[i]->monitor);
}

void
fleet_free(struct fleet *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nnodes; i++)
		fleet_node_free(f->nodes[i]);
	supervisor_free(f->supervisor); /* after the nodes: nothing talks to them any more */
	free(f->nodes);
	free(f->engines);
	if (f->kick_event != NULL)
		event_free(f->kick_event);
	if (f->tick != NULL)
		event_free(f->tick);
	free(f->sums);
	free(f->rmodels);
	free(f->cells);
	free(f->rnodes);
	free(f->serve);
	free(f->serve_node);
	free(f->verdicts);
	free(f->scratch);
	free(f);
}

void
fleet_kick(struct fleet *f)
{
	if (f->kick_requested || !f->started)
		return;
	f->kick_requested = true;
	event_active(f->kick_event, 0, 0);
}

/* --- The decision ------------------------------------------------------------------------ */

static void
fleet_reserve(struct fleet *f, size_t nmodels)
{
	size_t need = nmodels + 1;
	if (need <= f->models_alloc)
		return;
	f->models_alloc = need < 32 ? 32 : need * 2;
	size_t m = f->models_alloc, n = f->nnodes + 1;
	free(f->sums);
	free(f->rmodels);
	free(f->cells);
	free(f->serve);
	free(f->verdicts);
	free(f->scratch);
	f->sums = xcalloc(m, sizeof(*f->sums));
	f->rmodels = xcalloc(m, sizeof(*f->rmodels));
	f->cells = xcalloc(m * n, sizeof(*f->cells));
	f->serve = xcalloc(m * n, sizeof(*f->serve));
	f->verdicts = xcalloc(m, sizeof(*f->verdicts));
	f->scratch = xcalloc(1, route_scratch_size(m, n));
}

/* Room for a new model on a node now: its best GPU, or host memory on a CPU-only one. */
static void
fleet_route_node(const struct sched_snapshot *snap, struct route_node *rn)
{
	uint64_t margin = snap->config->safety_margin_bytes;
	*rn = (struct route_node){.ready = true};
	for (size_t g = 0; g < snap->ngpus; g++) {
		const struct sched_gpu *gpu = &snap->gpus[g];
		if (!gpu->available)
			continue;
		uint64_t taken = gpu->pending_bytes + gpu->reserved_bytes + margin;
		uint64_t room = gpu->free_bytes > taken ? gpu->free_bytes - taken : 0;
		if (room > rn->room_bytes)
			rn->room_bytes = room;
	}
	if (snap->ngpus == 0 && snap->config->allow_cpu)
		rn->room_bytes = snap->cpu_free_bytes;
	for (size_t i = 0; i < snap->nmodels; i++) {
		const struct sched_model *m = &snap->models[i];
		rn->work += m->running + m->queued[0] + m->queued[1] + m->queued[2];
		if (m->residency == SCHED_LOADED && m->running == 0 && !m->pinned &&
		    m->queued[0] + m->queued[1] + m->queued[2] == 0)
			rn->idle_bytes += m->footprint_bytes;
	}
	/* Queued jobs are counted as the route gives them out. */
	for (size_t i = 0; i < snap->nmodels; i++)
		rn->work -= snap->models[i].queued[0] + snap->models[i].queued[1] +
			    snap->models[i].queued[2];
}

/* A node whose GPUs' totals are not all known yet cannot rule a model out. */
static bool
fleet_totals_known(const struct sched_snapshot *snap)
{
	for (size_t g = 0; g < snap->ngpus; g++)
		if (snap->gpus[g].total_bytes == 0)
			return false;
	return true;
}

/* Nodes of this host that see the same GPU each count the others' loads in flight there:
 * each byte of a GPU is free to one planner at a time. */
static void
fleet_share_pending(struct fleet *f)
{
	for (size_t i = 0; i < f->nnodes; i++) {
		const struct sched_snapshot *si = engine_snapshot_view(f->engines[i]);
		if (si == NULL || f->nodes[i]->telemetry != NODE_TELEMETRY_LOCAL)
			continue;
		for (size_t j = 0; j < f->nnodes; j++) {
			const struct sched_snapshot *sj = engine_snapshot_view(f->engines[j]);
			if (j == i || sj == NULL || f->nodes[j]->gpus != f->nodes[i]->gpus)
				continue;
			for (size_t g = 0; g < sj->ngpus; g++)
				if (sj->gpus[g].pending_bytes > 0)
					engine_snapshot_add_pending(
					    f->engines[i], sj->gpus[g].id,
					    engine_own_pending(f->engines[j], sj->gpus[g].id));
		}
	}
}

/* Index of the snapshot model named name; SIZE_MAX if none. */
static size_t
fleet_snapshot_find(const struct sched_snapshot *snap, const char *name)
{
	for (size_t i = 0; i < snap->nmodels; i++)
		if (strcmp(snap->models[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

/*
 * PIN_MODELS keeps a model loaded somewhere, not on every node: on the nodes where it is
 * loaded or loading, else on the one ready node that could hold it with the most room
 * now. Every other node treats it as an ordinary model this decision.
 */
static bool
fleet_pin_loaded(struct fleet *f, size_t q, const char *name)
{
	const struct sched_snapshot *qs = engine_snapshot_view(f->engines[q]);
	return qs->models[fleet_snapshot_find(qs, name)].residency == SCHED_LOADED;
}

static void
fleet_place_pin(struct fleet *f, const char *name)
{
	uint64_t homes = 0, best_room = 0;
	size_t best = SIZE_MAX;
	for (size_t q = 0; q < f->nnodes; q++) {
		const struct sched_snapshot *qs = engine_snapshot_view(f->engines[q]);
		size_t k = qs != NULL ? fleet_snapshot_find(qs, name) : SIZE_MAX;
		if (k == SIZE_MAX || !qs->models[k].pinned)
			continue;
		const struct sched_model *qm = &qs->models[k];
		if (qm->residency == SCHED_LOADED || qm->residency == SCHED_LOADING)
			homes |= 1ull << q;
		struct route_node rn;
		fleet_route_node(qs, &rn);
		if (sched_model_can_ever_fit(qs, k) &&
		    (best == SIZE_MAX || rn.room_bytes > best_room)) {
			best = q;
			best_room = rn.room_bytes;
		}
	}
	if (homes == 0 && best != SIZE_MAX)
		homes = 1ull << best;
	/* Two homes happen when a node came back while the pin was reloading elsewhere: one
	 * keeps it (a loaded copy before a loading one), the other copy goes once idle. */
	size_t keep = SIZE_MAX;
	for (size_t q = 0; q < f->nnodes; q++) {
		if (!(homes & (1ull << q)))
			continue;
		if (keep == SIZE_MAX ||
		    (fleet_pin_loaded(f, q, name) && !fleet_pin_loaded(f, keep, name)))
			keep = q;
	}
	for (size_t q = 0; q < f->nnodes; q++) {
		const struct sched_snapshot *qs = engine_snapshot_view(f->engines[q]);
		size_t k = qs != NULL ? fleet_snapshot_find(qs, name) : SIZE_MAX;
		if (k == SIZE_MAX || !qs->models[k].pinned || q == keep)
			continue;
		engine_snapshot_unpin(f->engines[q], k, (homes & (1ull << q)) != 0);
	}
}

/*
 * PIN_MODELS keeps a model loaded somewhere, not on every node: on the nodes where it is
 * loaded or loading, else on the one ready node that could hold it with the most room
 * now. Every other node treats it as an ordinary model this decision.
 */
static void
fleet_place_pins(struct fleet *f)
{
	const char *names[64];
	size_t nnames = 0;
	for (size_t n = 0; n < f->nnodes; n++) {
		const struct sched_snapshot *snap = engine_snapshot_view(f->engines[n]);
		for (size_t i = 0; snap != NULL && i < snap->nmodels; i++) {
			if (!snap->models[i].pinned)
				continue;
			bool seen = false;
			for (size_t j = 0; j < nnames && !seen; j++)
				seen = strcmp(names[j], snap->models[i].name) == 0;
			if (!seen && nnames < VD_ARRAY_LEN(names))
				names[nnames++] = snap->models[i].name;
		}
	}
	/* Names are borrowed from the engines' models, which outlive this decision. */
	for (size_t j = 0; j < nnames; j++)
		fleet_place_pin(f, names[j]);
}

/* The most any GPU of the nodes that have model could ever give it (their totals less
 * the driver's reservation and the margin, as of this decision). */
static uint64_t
fleet_largest_gpu_room(struct fleet *f, const char *model)
{
	uint64_t best = 0;
	for (size_t n = 0; n < f->nnodes; n++) {
		const struct sched_snapshot *snap = engine_snapshot_view(f->engines[n]);
		const struct registry_model *rm = registry_find(f->nodes[n]->registry, model);
		if (snap == NULL || rm == NULL || !rm->installed)
			continue;
		for (size_t g = 0; g < snap->ngpus; g++) {
			const struct sched_gpu *gpu = &snap->gpus[g];
			uint64_t cap = gpu->total_bytes > gpu->driver_reserved_bytes
					   ? gpu->total_bytes - gpu->driver_reserved_bytes
					   : 0;
			uint64_t margin = snap->config->safety_margin_bytes;
			cap = cap > margin ? cap - margin : 0;
			best = cap > best ? cap : best;
		}
	}
	return best;
}

static void
fleet_fail_never_fits(struct fleet *f, size_t k)
{
	const char *name = f->sums[k].model;
	uint64_t footprint = 0;
	struct node *home = NULL;
	for (size_t n = 0; n < f->nnodes; n++) {
		const struct route_cell *c = &f->cells[k * f->nnodes + n];
		if (c->installed && home == NULL) {
			home = f->nodes[n];
			footprint = c->footprint_bytes;
		}
	}
	if (home == NULL)
		return;
	char size[32], room[32];
	vd_format_size(footprint, size, sizeof(size));
	vd_format_size(fleet_largest_gpu_room(f, name), room, sizeof(room));
	char *why = xasprintf("model %s needs about %s of VRAM, more than any GPU %scan give it "
			      "(the largest can give %s)%s",
			      name, size, f->nnodes > 1 ? "of any node " : "", room,
			      f->sums[k].placed[JOB_PLACE_GPU] > 0
				  ? "; jobs with placement gpu never run on the CPU"
				  : "");
	engine_fail_model(home->engine, name, why);
	free(why);
}

/*
 * Issue 11: jobs of placement gpu of a model that can never fit a GPU of any node that
 * has it, while its other jobs (placement any or cpu) can run on a CPU: only the gpu
 * jobs fail, at once, with the model's size and the largest GPU room.
 */
static void
fleet_fail_gpu_never_fits(struct fleet *f, size_t k)
{
	const char *name = f->sums[k].model;
	uint64_t footprint = 0, largest = 0;
	bool seen = false;
	for (size_t n = 0; n < f->nnodes; n++) {
		const struct route_cell *c = &f->cells[k * f->nnodes + n];
		if (!c->installed || engine_snapshot_view(f->engines[n]) == NULL)
			continue;
		uint64_t fp, room;
		if (!engine_gpu_never_fits(f->engines[n], name, &fp, &room))
			return; /* this node could hold it on a GPU, or does not know yet */
		seen = true;
		footprint = fp;
		largest = room > largest ? room : largest;
	}
	if (!seen)
		return;
	char size[32], room[32];
	vd_format_size(footprint, size, sizeof(size));
	vd_format_size(largest, room, sizeof(room));
	char *why = xasprintf("model %s needs about %s of VRAM, more than any GPU %scan give it "
			      "(the largest can give %s), and placement gpu never runs on the CPU",
			      name, size, f->nnodes > 1 ? "of any node " : "", room);
	for (size_t n = 0; n < f->nnodes; n++)
		if (f->cells[k * f->nnodes + n].installed) {
			engine_fail_placement(f->engines[n], name, JOB_PLACE_GPU, why);
			break;
		}
	free(why);
}

static void
fleet_decide_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct fleet *f = arg;
	struct daemon *d = f->d;
	/* A cluster's leader decides only while its lock is surely still its own. */
	if (!cluster_may_act(d->cluster))
		return;
	int64_t now = vd_now_mono_ms();
	size_t N = f->nnodes;
	fleet_reserve(f, queue_model_count(d->queue));
	size_t nsum = queue_summaries(d->queue, f->sums, f->models_alloc - 1);
	if (f->rnodes == NULL) {
		f->rnodes = xcalloc(N + 1, sizeof(*f->rnodes));
		f->serve_node = NULL;
	}
	bool any_ready = false;
	uint64_t blocked = 0; /* nodes whose breaker keeps work away (NODES_MAX is 64) */
	for (size_t n = 0; n < N; n++) {
		bool ready = engine_snapshot(f->engines[n], now, f->sums, nsum);
		any_ready = any_ready || ready;
		/* An open breaker keeps new work away until its retry time; then the node gets
		 * work again as a trial, and what that work does closes or reopens it. */
		struct breaker *b = &f->nodes[n]->breaker;
		if (ready && !breaker_allows(b, now))
			blocked |= 1ull << n;
		else if (ready && b->state == BREAKER_OPEN)
			breaker_begin_trial(b, now);
	}
	if (!any_ready)
		return;
	fleet_share_pending(f);
	if (N > 1)
		fleet_place_pins(f);

	struct route_config rcfg = {
	    .max_replicas = (int)config_int(d->config, CONFIG_MAX_REPLICAS),
	    .max_concurrent = (int)config_int(d->config, CONFIG_MAX_CONCURRENT_PER_MODEL),
	    .spread = strcmp(config_str(d->config, CONFIG_PLACEMENT), "spread") == 0,
	};
	for (size_t k = 0; k < nsum; k++) {
		const struct queue_model_summary *qs = &f->sums[k];
		struct route_model *rm = &f->rmodels[k];
		*rm = (struct route_model){.queued = qs->count[0] + qs->count[1] + qs->count[2]};
		for (int p = JOB_NPRIORITIES - 1; p >= 0; p--) {
			if (qs->count[p] > 0) {
				rm->top_priority = p;
				rm->oldest_ms = qs->oldest_enqueued_ms[p];
			}
		}
		for (size_t n = 0; n < N; n++) {
			const struct registry_model *reg =
			    registry_find(f->nodes[n]->registry, qs->model);
			f->cells[k * N + n] = (struct route_cell){
			    .installed = reg != NULL && reg->installed,
			    .map_rank = gpu_map_node_rank(d->gpu_map, qs->model, f->nodes[n]->name),
			};
		}
	}
	for (size_t n = 0; n < N; n++) {
		const struct sched_snapshot *snap = engine_snapshot_view(f->engines[n]);
		if (snap == NULL) {
			f->rnodes[n] = (struct route_node){.ready = false};
			continue;
		}
		fleet_route_node(snap, &f->rnodes[n]);
		f->rnodes[n].ready = !(blocked & (1ull << n));
		bool totals = fleet_totals_known(snap);
		for (size_t i = 0; i < snap->nmodels; i++) {
			int k = engine_snapshot_summary(f->engines[n], i);
			if (k < 0)
				continue;
			const struct sched_model *m = &snap->models[i];
			struct route_cell *c = &f->cells[(size_t)k * N + n];
			c->footprint_bytes = m->footprint_bytes;
			c->ever_fits = !totals || sched_model_can_ever_fit(snap, i);
			c->warm = (m->residency == SCHED_LOADED || m->residency == SCHED_LOADING) &&
				  !m->unload_requested;
			c->previous = engine_snapshot_model_routed(f->engines[n], i);
		}
	}
	struct route_input in = {
	    .config = &rcfg,
	    .nodes = f->rnodes,
	    .nnodes = N,
	    .models = f->rmodels,
	    .nmodels = nsum,
	    .cells = f->cells,
	};
	int64_t decide_ns = vd_now_mono_ns();
	route_decide(&in, f->serve, f->verdicts, f->scratch);
	metrics_observe(f->d->metrics, "vramd_route_decision_seconds",
			(double)(vd_now_mono_ns() - decide_ns) / 1e9);
	for (size_t k = 0; k < nsum; k++)
		if (f->verdicts[k] == ROUTE_NEVER_FITS)
			fleet_fail_never_fits(f, k);
		else if (f->sums[k].placed[JOB_PLACE_GPU] > 0)
			fleet_fail_gpu_never_fits(f, k);

	for (size_t n = 0; n < N; n++) {
		const struct sched_snapshot *snap = engine_snapshot_view(f->engines[n]);
		if (snap == NULL)
			continue;
		bool *serve = xcalloc(snap->nmodels + 1, sizeof(*serve));
		for (size_t i = 0; i < snap->nmodels; i++) {
			int k = engine_snapshot_summary(f->engines[n], i);
			serve[i] =
			    k >= 0 && f->verdicts[k] == ROUTE_SERVED && f->serve[(size_t)k * N + n];
		}
		engine_decide(f->engines[n], serve);
		free(serve);
	}
}

/* --- Lookups and aggregates ------------------------------------------------------------- */

size_t
fleet_count(const struct fleet *f)
{
	return f->nnodes;
}

struct node *
fleet_node(const struct fleet *f, size_t i)
{
	return i < f->nnodes ? f->nodes[i] : NULL;
}

struct node *
fleet_find(const struct fleet *f, const char *name)
{
	for (size_t i = 0; i < f->nnodes; i++)
		if (strcmp(f->nodes[i]->name, name) == 0 || strcmp(f->nodes[i]->url, name) == 0)
			return f->nodes[i];
	return NULL;
}

struct registry *
fleet_registry_for(const struct fleet *f, const char *model)
{
	for (size_t i = 0; i < f->nnodes; i++) {
		const struct registry_model *rm = registry_find(f->nodes[i]->registry, model);
		if (rm != NULL && rm->installed)
			return f->nodes[i]->registry;
	}
	return f->nodes[0]->registry;
}

bool
fleet_models_known(const struct fleet *f)
{
	bool any = false;
	for (size_t i = 0; i < f->nnodes; i++) {
		const struct node *n = f->nodes[i];
		bool known = monitor_models_known(n->monitor);
		if (n->up && !known)
			return false;
		any = any || known;
	}
	return any;
}

void
fleet_counters(const struct fleet *f, struct engine_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < f->nnodes; i++) {
		struct engine_counters c;
		engine_counters(f->nodes[i]->engine, &c);
		out->loads += c.loads;
		out->unloads += c.unloads;
		out->load_failures += c.load_failures;
		out->dispatched += c.dispatched;
		out->completed += c.completed;
		out->failed += c.failed;
		out->retries += c.retries;
		out->cpu_spills += c.cpu_spills;
	}
}

bool
fleet_cancel_job(struct fleet *f, struct job *job)
{
	for (size_t i = 0; i < f->nnodes; i++)
		if (engine_cancel_job(f->nodes[i]->engine, job))
			return true;
	return false;
}

double
fleet_eta_s(const struct fleet *f, const struct job *job, size_t position)
{
	double best = -1;
	for (size_t i = 0; i < f->nnodes; i++) {
		double eta = engine_eta_s(f->nodes[i]->engine, job, position);
		if (eta >= 0 && (best < 0 || eta < best))
			best = eta;
	}
	return best;
}

double
fleet_eta_done_s(const struct fleet *f, const struct job *job, size_t position)
{
	double best = -1;
	for (size_t i = 0; i < f->nnodes; i++) {
		double done = engine_eta_done_s(f->nodes[i]->engine, job, position);
		if (done >= 0 && (best < 0 || done < best))
			best = done;
	}
	return best;
}

char *
fleet_waiting_reason(const struct fleet *f, const struct job *job)
{
	/* The node its queue was routed to, else the first that has the model. */
	char *why = NULL;
	for (size_t i = 0; i < f->nnodes && why == NULL; i++)
		if (engine_model_routed(f->nodes[i]->engine, job->model))
			why = engine_waiting_reason(f->nodes[i]->engine, job);
	for (size_t i = 0; i < f->nnodes && why == NULL; i++)
		why = engine_waiting_reason(f->nodes[i]->engine, job);
	if (why != NULL)
		return why;
	/* Nothing on a node holds it back: it may be that no node can take work at all. */
	size_t up = 0;
	for (size_t i = 0; i < f->nnodes; i++)
		if (f->nodes[i]->up && f->nodes[i]->breaker.state != BREAKER_OPEN)
			up++;
	if (f->nnodes > 0 && up == 0)
		return xasprintf("no Ollama node answers (%zu node%s down or failing; GET "
				 "/api/nodes): the job waits until one comes back",
				 f->nnodes, f->nnodes == 1 ? "" : "s");
	return NULL;
}

static bool
fleet_node_is_local(const struct node *n)
{
	return n->telemetry == NODE_TELEMETRY_LOCAL || n->telemetry == NODE_TELEMETRY_BUDGET;
}

void
fleet_set_multiplier(struct fleet *f, double multiplier)
{
	for (size_t i = 0; i < f->nnodes; i++)
		registry_set_multiplier(f->nodes[i]->registry, multiplier);
}

json_t *
fleet_loaded_models_json(const struct fleet *f, bool local_only)
{
	json_t *all = json_array();
	for (size_t i = 0; i < f->nnodes; i++) {
		if (local_only && !fleet_node_is_local(f->nodes[i]))
			continue;
		json_t *list = engine_loaded_models_json(f->nodes[i]->engine);
		size_t k;
		json_t *o;
		json_array_foreach(list, k, o)
		{
			json_object_set_new(o, "node", json_string(f->nodes[i]->name));
			json_array_append(all, o);
		}
		json_decref(list);
	}
	return all;
}

uint64_t
fleet_local_gpu_models_bytes(const struct fleet *f, int gpu)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < f->nnodes; i++)
		if (fleet_node_is_local(f->nodes[i]))
			sum += engine_gpu_models_bytes(f->nodes[i]->engine, gpu);
	return sum;
}

void
fleet_run_stats(const struct fleet *f, int *running, double *run_ms_mean)
{
	*running = 0;
	*run_ms_mean = -1;
	double sum = 0;
	int with = 0;
	for (size_t i = 0; i < f->nnodes; i++) {
		int r;
		double mean;
		engine_run_stats(f->nodes[i]->engine, &r, &mean);
		*running += r;
		if (mean >= 0) {
			sum += mean;
			with++;
		}
	}
	if (with > 0)
		*run_ms_mean = sum / with;
}
