/*
 * sim-sched.c: Ollama's scheduler as ollama-sim runs it (see sim-sched.h and
 * docs/ollama-sim.md for the rules and where they come from in server/sched.go).
 *
 * Invariants: a model has at most one runner; runners hold memory (vram_bytes per
 * GPU, ram_bytes on the host) from the moment their load starts; s->busy is true
 * while a load runs or an eviction waits for its victim to drain, and then the
 * pending queue does not move (loads are serialised, head-of-line blocking
 * included). Requests for a loaded runner that needs no reload never enter the
 * pending queue. All waits are libevent timers divided by cfg.time_scale.
 * Callers: sim-api.c (jobs), ollama-sim.c (lifecycle), tests/test-sim-sched.c.
 */
#include "sim-sched.h"

#include "log.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_OOM_MESSAGE                                                                            \
	"llama-server reported out-of-memory during startup: cudaMalloc failed: out of memory"

static void sched_process_pending(struct sim_sched *s);

void
sim_sched_config_defaults(struct sim_sched_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_parallel = 1;
	cfg->max_loaded = 0;
	cfg->max_queue = 512;
	cfg->keep_alive_ns = 300 * VD_NS_PER_S;
	cfg->context_length = 0;
	cfg->load_bytes_per_s = 2e9;
	cfg->start_cost_ns = 300 * VD_NS_PER_MS;
	cfg->time_scale = 1.0;
}

static struct timeval
sched_real_tv(const struct sim_sched *s, int64_t sim_ns)
{
	double real = (double)sim_ns / s->cfg.time_scale;
	if (real > 1e17)
		real = 1e17;
	int64_t ns = (int64_t)real;
	struct timeval tv = {.tv_sec = ns / VD_NS_PER_S, .tv_usec = (ns % VD_NS_PER_S) / 1000};
	return tv;
}

static void
sched_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sched_process_pending(arg);
}

/* Defers processPending to the loop so that callbacks never recurse into it. */
static void
sched_kick(struct sim_sched *s)
{
	struct timeval zero = {0, 0};
	evtimer_add(s->kick, &zero);
}

struct sim_sched *
sim_sched_new(struct event_base *base, struct sim_hw *hw, const struct sim_catalogue *cat,
	      const struct sim_sched_config *cfg)
{
	struct sim_sched *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->hw = hw;
	s->cat = cat;
	s->cfg = *cfg;
	if (s->cfg.time_scale <= 0)
		s->cfg.time_scale = 1;
	TAILQ_INIT(&s->runners);
	TAILQ_INIT(&s->pending);
	s->kick = evtimer_new(base, sched_kick_cb, s);
	s->next_pid = 51000;
	for (unsigned i = 0; i < hw->ngpus; i++)
		s->others_seen[i] = hw->gpus[i].other_bytes;
	sim_sched_publish(s);
	return s;
}

static void
sched_runner_free(struct sim_runner *r)
{
	if (r->timer != NULL)
		event_free(r->timer);
	free(r);
}

void
sim_sched_free(struct sim_sched *s)
{
	if (s == NULL)
		return;
	struct sim_runner *r;
	while ((r = TAILQ_FIRST(&s->runners)) != NULL) {
		TAILQ_REMOVE(&s->runners, r, entry);
		sched_runner_free(r);
	}
	event_free(s->kick);
	free(s);
}

uint64_t
sim_runner_vram_total(const struct sim_runner *r)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < SIM_MAX_GPUS; i++)
		sum += r->vram_bytes[i];
	return sum;
}

void
sim_sched_publish(struct sim_sched *s)
{
	struct sim_hw *hw = s->hw;
	struct sim_hw_proc procs[SIM_MAX_GPUS * 8];
	size_t nprocs = 0;
	for (unsigned i = 0; i < hw->ngpus; i++) {
		hw->gpus[i].used_by_models_bytes = 0;
		hw->gpus[i].busy = false;
	}
	struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	{
		if (r->oom)
			continue;
		for (unsigned i = 0; i < hw->ngpus; i++) {
			if (r->vram_bytes[i] == 0)
				continue;
			hw->gpus[i].used_by_models_bytes += r->vram_bytes[i];
			if (r->slots_busy > 0)
				hw->gpus[i].busy = true;
			if (nprocs < VD_ARRAY_LEN(procs))
				procs[nprocs++] = (struct sim_hw_proc){
				    .gpu = i, .pid = r->pid, .bytes = r->vram_bytes[i]};
		}
	}
	sim_hw_publish(hw, procs, nprocs);
}

struct sim_runner *
sim_sched_find_runner(struct sim_sched *s, const struct sim_model *model)
{
	struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	if (r->model == model)
		return r;
	return NULL;
}

static int
sched_nrunners(const struct sim_sched *s)
{
	int n = 0;
	const struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	n++;
	return n;
}

static int
sched_max_runners(const struct sim_sched *s)
{
	if (s->cfg.max_loaded > 0)
		return s->cfg.max_loaded;
	return 3 * (s->hw->ngpus > 0 ? (int)s->hw->ngpus : 1);
}

int64_t
sim_sched_context(const struct sim_sched *s, const struct sim_model *m,
		  const struct sim_load_opts *opts)
{
	int64_t ctx = opts->num_ctx;
	if (ctx <= 0) {
		ctx = s->cfg.context_length;
		if (ctx <= 0) {
			uint64_t total = 0;
			for (unsigned i = 0; i < s->hw->ngpus; i++)
				total += s->hw->gpus[i].total_bytes;
			ctx = total >= 47 * VD_GIB ? 262144 : total >= 23 * VD_GIB ? 32768 : 4096;
		}
	}
	if (ctx > m->context_length)
		ctx = m->context_length;
	if (ctx < 4)
		ctx = 4;
	return ctx;
}

static int
sched_parallel(const struct sim_sched *s, const struct sim_model *m)
{
	if (m->capabilities & SIM_CAP_EMBEDDING)
		return 1;
	return s->cfg.num_parallel > 0 ? s->cfg.num_parallel : 1;
}

bool
sim_runner_needs_reload(const struct sim_sched *s, const struct sim_runner *r,
			const struct sim_load_opts *opts)
{
	bool both_auto = r->opts.num_ctx <= 0 && opts->num_ctx <= 0;
	if (!both_auto && sim_sched_context(s, r->model, opts) != r->ctx)
		return true;
	if (opts->num_gpu >= 0 && opts->num_gpu != r->opts.num_gpu)
		return true;
	if (opts->main_gpu != r->opts.main_gpu)
		return true;
	if (opts->num_batch != r->opts.num_batch)
		return true;
	return false;
}

static int
sched_victim_cmp(const struct sim_runner *a, const struct sim_runner *b)
{
	if (a->session_ns != b->session_ns)
		return a->session_ns < b->session_ns ? -1 : 1;
	return strcmp(a->model->name, b->model->name);
}

struct sim_runner *
sim_sched_pick_victim(struct sim_sched *s)
{
	struct sim_runner *best_idle = NULL, *best_any = NULL, *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	{
		if (best_any == NULL || sched_victim_cmp(r, best_any) < 0)
			best_any = r;
		if (r->refcount == 0 && !r->loading &&
		    (best_idle == NULL || sched_victim_cmp(r, best_idle) < 0))
			best_idle = r;
	}
	return best_idle != NULL ? best_idle : best_any;
}

static void
sched_unload(struct sim_sched *s, struct sim_runner *r)
{
	TAILQ_REMOVE(&s->runners, r, entry);
	if (!r->oom) {
		s->counters.unloads++;
		vd_log(SIM, "unloaded %s (pid %u)", r->model->name, r->pid);
	}
	if (s->awaiting_unload == r) {
		s->awaiting_unload = NULL;
		s->busy = false;
	}
	sched_runner_free(r);
	sim_sched_publish(s);
	sched_kick(s);
}

static void sched_runner_timer_cb(evutil_socket_t fd, short what, void *arg);

/* now + keep_alive, saturating: "forever" lands in 2262, the end of int64 ns time
 * (Ollama reports ~292 years ahead; clients treat anything past 20 years as forever). */
static int64_t
sched_expiry_wall_ns(int64_t session_ns)
{
	int64_t now = vd_now_wall_ns();
	if (session_ns >= INT64_MAX - now)
		return INT64_MAX - INT64_MAX % VD_NS_PER_S;
	return now + session_ns;
}

static void
sched_arm_expiry(struct sim_sched *s, struct sim_runner *r)
{
	r->expires_wall_ns = sched_expiry_wall_ns(r->session_ns);
	if (r->session_ns == SIM_FOREVER_NS) {
		evtimer_del(r->timer);
		return;
	}
	struct timeval tv = sched_real_tv(s, r->session_ns);
	evtimer_add(r->timer, &tv);
}

/* processCompleted: a runner's last reference went away. */
static void
sched_runner_idle(struct sim_sched *s, struct sim_runner *r)
{
	if (r->refcount > 0 || r->loading)
		return;
	if (r->expiring || r->session_ns <= 0) {
		sched_unload(s, r);
		return;
	}
	sched_arm_expiry(s, r);
}

static void
sched_job_ready(struct sim_sched *s, struct sim_job *job)
{
	job->state = SIM_JOB_READY;
	sim_sched_publish(s);
	job->ready_cb(job, job->arg);
}

/* Takes a reference on r for job and, if wanted, a slot (or queues for one). */
static void
sched_attach(struct sim_sched *s, struct sim_job *job, struct sim_runner *r)
{
	r->refcount++;
	evtimer_del(r->timer);
	if (job->has_keep_alive)
		r->session_ns = job->keep_alive_ns;
	job->runner = r;
	job->runner_mono_ns = vd_now_mono_ns();
	if (!job->wants_slot) {
		sched_job_ready(s, job);
		return;
	}
	if (r->slots_busy < r->parallel) {
		r->slots_busy++;
		job->holds_slot = true;
		sched_job_ready(s, job);
		return;
	}
	job->state = SIM_JOB_WAIT_SLOT;
	TAILQ_INSERT_TAIL(&r->slot_waiters, job, entry);
}

static void
sched_job_fail(struct sim_sched *s, struct sim_job *job, int status, const char *msg)
{
	(void)s;
	job->state = SIM_JOB_FAILED;
	job->error_status = status;
	free(job->error_message);
	job->error_message = xstrdup(msg);
	job->error_cb(job, job->arg);
}

static void
sched_load_done(struct sim_sched *s, struct sim_runner *r)
{
	r->loading = false;
	s->busy = false;
	struct sim_job *job;
	if (r->oom) {
		s->counters.oom_failures++;
		vd_log(SIM, "load of %s failed: out of memory", r->model->name);
		TAILQ_REMOVE(&s->runners, r, entry);
		while ((job = TAILQ_FIRST(&r->slot_waiters)) != NULL) {
			TAILQ_REMOVE(&r->slot_waiters, job, entry);
			job->runner = NULL;
			sched_job_fail(s, job, 500, SIM_OOM_MESSAGE);
		}
		sched_runner_free(r);
		sim_sched_publish(s);
		sched_kick(s);
		return;
	}
	vd_log(SIM, "loaded %s (pid %u): %llu bytes, %llu on GPU", r->model->name, r->pid,
	       (unsigned long long)r->size_bytes, (unsigned long long)sim_runner_vram_total(r));
	/* The loading request waits in slot_waiters with its reference already counted. */
	job = TAILQ_FIRST(&r->slot_waiters);
	if (job != NULL) {
		TAILQ_REMOVE(&r->slot_waiters, job, entry);
		r->refcount--;
		sched_attach(s, job, r);
	} else {
		sched_runner_idle(s, r);
	}
	sim_sched_publish(s);
	sched_kick(s);
}

static void
sched_runner_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_runner *r = arg;
	struct sim_sched *s = r->sched;
	if (r->loading) {
		sched_load_done(s, r);
		return;
	}
	/* keep_alive expired. */
	r->expiring = true;
	if (r->refcount == 0)
		sched_unload(s, r);
}

/* Marks r for eviction; unloads now if idle, else processPending waits for it. */
static void
sched_evict(struct sim_sched *s, struct sim_runner *r, bool counted)
{
	if (counted) {
		s->counters.evictions++;
		vd_log(SIM, "evicting %s", r->model->name);
	}
	r->session_ns = 0;
	r->expiring = true;
	if (r->refcount == 0 && !r->loading) {
		sched_unload(s, r);
		return;
	}
	s->awaiting_unload = r;
	s->busy = true;
}

struct sched_plan {
	enum { PLAN_LOAD, PLAN_EVICT, PLAN_FAIL } kind;
	bool oom;
	uint64_t vram[SIM_MAX_GPUS];
	uint64_t ram;
	int status;
	char message[256];
};

static uint64_t
sched_ram_free(const struct sim_sched *s)
{
	uint64_t used = 0;
	const struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	used += r->ram_bytes;
	return used >= s->hw->ram_bytes ? 0 : s->hw->ram_bytes - used;
}

/* Ollama's view of a GPU's free memory: its last look at other processes (refreshed
 * only when nothing is loaded) minus what its runners use. */
static uint64_t
sched_ollama_free(const struct sim_sched *s, unsigned i)
{
	const struct sim_gpu *g = &s->hw->gpus[i];
	if (g->lost)
		return 0;
	uint64_t used = g->reserved_bytes + g->used_by_models_bytes + s->others_seen[i];
	return used >= g->total_bytes ? 0 : g->total_bytes - used;
}

/* Puts bytes of a partial/spread load on the GPUs in mask, proportionally to
 * weight[], capping each GPU at cap[] when cap is not NULL; returns what is left. */
static uint64_t
sched_spread(uint64_t bytes, const uint64_t *weight, const uint64_t *cap, unsigned n,
	     uint64_t *vram)
{
	uint64_t wsum = 0;
	for (unsigned i = 0; i < n; i++)
		wsum += weight[i];
	if (wsum == 0)
		return bytes;
	uint64_t left = bytes;
	for (unsigned i = 0; i < n && left > 0; i++) {
		uint64_t share = (uint64_t)((double)bytes * ((double)weight[i] / (double)wsum));
		if (share > left)
			share = left;
		if (cap != NULL && share > cap[i])
			share = cap[i];
		vram[i] = share;
		left -= share;
	}
	/* Rounding leftovers go to the first GPU with room. */
	for (unsigned i = 0; i < n && left > 0; i++) {
		if (weight[i] == 0)
			continue;
		uint64_t room = cap != NULL ? cap[i] - vram[i] : left;
		uint64_t add = room < left ? room : left;
		vram[i] += add;
		left -= add;
	}
	return left;
}

static void
sched_plan_load(struct sim_sched *s, const struct sim_job *job, int64_t ctx, int parallel,
		struct sched_plan *p)
{
	const struct sim_model *m = job->model;
	struct sim_hw *hw = s->hw;
	memset(p, 0, sizeof(*p));
	p->kind = PLAN_LOAD;
	uint64_t est = sim_model_estimate_bytes(m, ctx * parallel);
	uint64_t act = sim_model_actual_bytes(m, ctx * parallel);
	bool require_full = !TAILQ_EMPTY(&s->runners);
	if (!require_full)
		for (unsigned i = 0; i < hw->ngpus; i++)
			s->others_seen[i] = hw->gpus[i].other_bytes;

	unsigned n = hw->ngpus;
	uint64_t ofree[SIM_MAX_GPUS] = {0}, pfree[SIM_MAX_GPUS] = {0};
	bool usable[SIM_MAX_GPUS] = {false};
	bool any = false;
	for (unsigned i = 0; i < n; i++) {
		usable[i] = !hw->gpus[i].lost &&
			    (job->opts.main_gpu < 0 || (int64_t)i == job->opts.main_gpu);
		ofree[i] = usable[i] ? sched_ollama_free(s, i) : 0;
		pfree[i] = usable[i] ? sim_gpu_free_bytes(&hw->gpus[i]) : 0;
		any = any || usable[i];
	}
	if (job->opts.num_gpu == 0 || !any) {
		p->ram = act;
		goto check_ram;
	}

	/* num_gpu N>0 below the layer count: that share of the model on GPU. */
	uint64_t gpu_part = act;
	bool explicit_partial = job->opts.num_gpu > 0 && job->opts.num_gpu < m->block_count + 1;
	if (explicit_partial)
		gpu_part = (uint64_t)((double)act * (double)job->opts.num_gpu /
				      (double)(m->block_count + 1));

	/* Single-GPU best fit: estimate <= 80% of free, the most free memory wins. */
	int best = -1;
	for (unsigned i = 0; i < n; i++)
		if (usable[i] && (double)est <= 0.8 * (double)ofree[i] &&
		    (best < 0 || ofree[i] > ofree[best]))
			best = (int)i;
	if (best >= 0) {
		if (gpu_part > pfree[best]) {
			if (require_full) {
				p->oom = true;
				return;
			}
			/* The first model: llama-server's --fit moves layers to the CPU. */
			p->vram[best] = pfree[best];
		} else {
			p->vram[best] = gpu_part;
		}
		p->ram = act - p->vram[best];
		goto check_ram;
	}

	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += ofree[i];
	if (require_full && !explicit_partial && (double)est > 0.8 * (double)sum) {
		p->kind = PLAN_EVICT;
		return;
	}
	/* Spread across the GPUs (one backend library: all of ours are CUDA). */
	uint64_t left = sched_spread(gpu_part, ofree, NULL, n, p->vram);
	for (unsigned i = 0; i < n; i++) {
		if (p->vram[i] <= pfree[i])
			continue;
		if (require_full) {
			p->oom = true;
			return;
		}
		left += p->vram[i] - pfree[i];
		p->vram[i] = pfree[i];
	}
	p->ram = act - (gpu_part - left);
check_ram:
	if (p->ram > sched_ram_free(s)) {
		char need[32], have[32];
		vd_format_size(p->ram, need, sizeof(need));
		vd_format_size(sched_ram_free(s), have, sizeof(have));
		p->kind = PLAN_FAIL;
		p->status = 500;
		snprintf(p->message, sizeof(p->message),
			 "model requires more system memory (%s) than is available (%s)", need,
			 have);
	}
}

static void
sched_start_load(struct sim_sched *s, struct sim_job *job, int64_t ctx, int parallel,
		 const struct sched_plan *p)
{
	const struct sim_model *m = job->model;
	struct sim_runner *r = xcalloc(1, sizeof(*r));
	r->sched = s;
	r->model = m;
	r->opts = job->opts;
	r->ctx = ctx;
	r->parallel = parallel;
	r->size_bytes = sim_model_actual_bytes(m, ctx * parallel);
	r->estimate_bytes = sim_model_estimate_bytes(m, ctx * parallel);
	memcpy(r->vram_bytes, p->vram, sizeof(r->vram_bytes));
	r->ram_bytes = p->ram;
	r->oom = p->oom;
	r->loading = true;
	r->session_ns = job->has_keep_alive ? job->keep_alive_ns : s->cfg.keep_alive_ns;
	r->expires_wall_ns = sched_expiry_wall_ns(r->session_ns);
	r->pid = s->next_pid++;
	/* Time per token mixes GPU and CPU speed by where the bytes live. */
	double gpu_frac = r->size_bytes > 0 ? (double)sim_runner_vram_total(r) / r->size_bytes : 0;
	r->tokens_per_s =
	    1.0 / (gpu_frac / m->gpu_tokens_per_s + (1.0 - gpu_frac) / m->cpu_tokens_per_s);
	r->timer = evtimer_new(s->base, sched_runner_timer_cb, r);
	TAILQ_INIT(&r->slot_waiters);
	TAILQ_INSERT_TAIL(&s->runners, r, entry);
	r->refcount = 1;
	job->state = SIM_JOB_WAIT_SLOT;
	job->runner = r;
	TAILQ_INSERT_TAIL(&r->slot_waiters, job, entry);
	s->busy = true;
	if (!r->oom)
		s->counters.loads++;
	int64_t load_ns = s->cfg.start_cost_ns;
	if (!r->oom)
		load_ns += (int64_t)((double)m->file_bytes / s->cfg.load_bytes_per_s * 1e9);
	vd_log(SIM, "loading %s: ctx %lld x %d, estimate %llu, actual %llu, %llu on CPU", m->name,
	       (long long)ctx, parallel, (unsigned long long)r->estimate_bytes,
	       (unsigned long long)r->size_bytes, (unsigned long long)r->ram_bytes);
	struct timeval tv = sched_real_tv(s, load_ns);
	evtimer_add(r->timer, &tv);
	sim_sched_publish(s);
}

static void
sched_process_pending(struct sim_sched *s)
{
	struct sim_job *job;
	while (!s->busy && (job = TAILQ_FIRST(&s->pending)) != NULL) {
		struct sim_runner *r = sim_sched_find_runner(s, job->model);
		if (r != NULL) {
			if (!r->expiring && !sim_runner_needs_reload(s, r, &job->opts)) {
				TAILQ_REMOVE(&s->pending, job, entry);
				s->npending--;
				sched_attach(s, job, r);
				continue;
			}
			sched_evict(s, r, !r->expiring);
			continue;
		}
		if (sched_nrunners(s) >= sched_max_runners(s)) {
			sched_evict(s, sim_sched_pick_victim(s), true);
			continue;
		}
		int64_t ctx = sim_sched_context(s, job->model, &job->opts);
		int parallel = sched_parallel(s, job->model);
		struct sched_plan plan;
		sched_plan_load(s, job, ctx, parallel, &plan);
		if (plan.kind == PLAN_EVICT) {
			sched_evict(s, sim_sched_pick_victim(s), true);
			continue;
		}
		TAILQ_REMOVE(&s->pending, job, entry);
		s->npending--;
		if (plan.kind == PLAN_FAIL) {
			sched_job_fail(s, job, plan.status, plan.message);
			continue;
		}
		sched_start_load(s, job, ctx, parallel, &plan);
	}
}

int
sim_sched_submit(struct sim_sched *s, struct sim_job *job)
{
	job->runner = NULL;
	job->holds_slot = false;
	job->error_message = NULL;
	struct sim_runner *r = sim_sched_find_runner(s, job->model);
	if (r != NULL && !r->loading && !r->expiring &&
	    !sim_runner_needs_reload(s, r, &job->opts)) {
		sched_attach(s, job, r);
		return 0;
	}
	if (s->npending >= s->cfg.max_queue) {
		s->counters.rejected_503++;
		return 503;
	}
	job->state = SIM_JOB_PENDING;
	TAILQ_INSERT_TAIL(&s->pending, job, entry);
	s->npending++;
	sched_kick(s);
	return 0;
}

void
sim_sched_finish(struct sim_sched *s, struct sim_job *job)
{
	struct sim_runner *r = job->runner;
	switch (job->state) {
	case SIM_JOB_PENDING:
		TAILQ_REMOVE(&s->pending, job, entry);
		s->npending--;
		break;
	case SIM_JOB_WAIT_SLOT:
		TAILQ_REMOVE(&r->slot_waiters, job, entry);
		r->refcount--;
		sched_runner_idle(s, r);
		break;
	case SIM_JOB_READY:
		if (job->holds_slot) {
			r->slots_busy--;
			job->holds_slot = false;
			struct sim_job *next = TAILQ_FIRST(&r->slot_waiters);
			if (next != NULL && !r->loading) {
				TAILQ_REMOVE(&r->slot_waiters, next, entry);
				r->slots_busy++;
				next->holds_slot = true;
				sched_job_ready(s, next);
			}
		}
		r->refcount--;
		sched_runner_idle(s, r);
		sim_sched_publish(s);
		break;
	default:
		break;
	}
	job->state = SIM_JOB_DONE;
	job->runner = NULL;
	vd_free(job->error_message);
}

void
sim_sched_expire_model(struct sim_sched *s, const struct sim_model *model)
{
	struct sim_runner *r = sim_sched_find_runner(s, model);
	if (r == NULL)
		return;
	r->session_ns = 0;
	r->expiring = true;
	r->expires_wall_ns = vd_now_wall_ns();
	if (r->refcount == 0 && !r->loading)
		sched_unload(s, r);
}

void
sim_sched_reset(struct sim_sched *s)
{
	struct sim_runner *r, *tmp;
	for (r = TAILQ_FIRST(&s->runners); r != NULL; r = tmp) {
		tmp = TAILQ_NEXT(r, entry);
		r->expiring = true;
		r->session_ns = 0;
		if (r->refcount == 0 && !r->loading)
			sched_unload(s, r);
	}
	memset(&s->counters, 0, sizeof(s->counters));
	sim_sched_publish(s);
}
