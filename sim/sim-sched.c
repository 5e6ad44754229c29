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

#include "sim-fault.h"

#include "log.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_OOM_MESSAGE                                                                            \
	"llama-server reported out-of-memory during startup: cudaMalloc failed: out of memory"

/* llama-server's VRAM recovery poll (waitForVRAMRecovery): every 250 ms for up to 5 s
 * until 75 % of the unloaded runner's memory shows free. */
#define SIM_RECOVERY_POLL_NS	(250 * VD_NS_PER_MS)
#define SIM_RECOVERY_TIMEOUT_NS (5 * VD_NS_PER_S)
#define SIM_RECOVERY_SHARE	0.75
/* Real milliseconds between NVML republishes while a load copies weights. */
#define SIM_LOAD_TICK_MS 20

static void sched_process_pending(struct sim_sched *s);
static void sched_publish_tick(struct sim_sched *s);

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
	cfg->ollama_minor = 33;
	cfg->cuda_context_bytes = 400 * VD_MIB;
	cfg->fit_target_bytes = VD_GIB;
	cfg->release_delay_ns = 300 * VD_NS_PER_MS;
	cfg->sched_spread = false;
}

bool
sim_sched_is_v033(const struct sim_sched *s)
{
	return s->cfg.ollama_minor >= 30;
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

static uint64_t
sched_gpus_free_sum(const struct sim_sched *s)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < s->hw->ngpus; i++)
		sum += sim_gpu_free_bytes(&s->hw->gpus[i]);
	return sum;
}

static void
sched_recovery_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_sched *s = arg;
	sim_hw_refresh(s->hw);
	uint64_t now_free = sched_gpus_free_sum(s);
	uint64_t gained = now_free > s->recovery_base_free ? now_free - s->recovery_base_free : 0;
	if (gained < s->recovery_target && vd_now_mono_ns() < s->recovery_deadline_mono_ns) {
		struct timeval tv = {0, 0};
		double real = (double)SIM_RECOVERY_POLL_NS / s->cfg.time_scale;
		tv.tv_sec = (time_t)(real / 1e9);
		tv.tv_usec = (suseconds_t)((int64_t)real % VD_NS_PER_S / 1000);
		evtimer_add(s->recovery_poll, &tv);
		return;
	}
	if (gained < s->recovery_target)
		vd_log(SIM, "gpu VRAM usage didn't recover within timeout");
	s->recovering = false;
	s->recovery_target = 0;
	sched_process_pending(s);
}

static void
sched_load_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_sched *s = arg;
	sim_sched_publish(s);
	sched_publish_tick(s);
}

/* Keeps republishing while a load's memory grows in NVML. */
static void
sched_publish_tick(struct sim_sched *s)
{
	struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	if (r->loading && !r->oom && sim_sched_is_v033(s)) {
		struct timeval tv = {0, SIM_LOAD_TICK_MS * 1000};
		evtimer_add(s->load_tick, &tv);
		return;
	}
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
	TAILQ_INIT(&s->releasing);
	s->kick = evtimer_new(base, sched_kick_cb, s);
	s->recovery_poll = evtimer_new(base, sched_recovery_poll_cb, s);
	s->load_tick = evtimer_new(base, sched_load_tick_cb, s);
	for (unsigned i = 0; i < hw->ngpus; i++)
		s->others_seen[i] = sim_gpu_others_bytes(&hw->gpus[i]);
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
	while ((r = TAILQ_FIRST(&s->releasing)) != NULL) {
		TAILQ_REMOVE(&s->releasing, r, entry);
		sched_runner_free(r);
	}
	event_free(s->recovery_poll);
	event_free(s->load_tick);
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
	hw->ram_used_bytes = 0;
	struct sim_runner *rr;
	TAILQ_FOREACH(rr, &s->runners, entry)
	if (!rr->oom)
		hw->ram_used_bytes += rr->ram_bytes;
	int64_t now = vd_now_mono_ns();
	for (int list = 0; list < 2; list++) {
		struct sim_runner *r;
		struct sim_runner_list *head = list == 0 ? &s->runners : &s->releasing;
		TAILQ_FOREACH(r, head, entry)
		{
			if (r->oom)
				continue;
			/* v0.33: while loading, NVML shows the CUDA context and compute
			 * buffer at once and the weights as they are copied. */
			double progress = 1.0;
			if (r->loading && r->load_ns > 0 && sim_sched_is_v033(s)) {
				progress =
				    (double)(now - r->load_start_mono_ns) / (double)r->load_ns;
				progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;
			}
			for (unsigned i = 0; i < hw->ngpus; i++) {
				if (r->vram_bytes[i] == 0)
					continue;
				uint64_t fixed = r->cuda_ctx_bytes[i];
				uint64_t grows = r->vram_bytes[i];
				if (progress < 1.0) {
					uint64_t compute = r->vram_bytes[i] > r->compute_bytes
							       ? r->compute_bytes
							       : r->vram_bytes[i];
					fixed += compute;
					grows = (uint64_t)((double)(r->vram_bytes[i] - compute) *
							   progress);
				}
				uint64_t bytes = fixed + grows;
				hw->gpus[i].used_by_models_bytes += bytes;
				if (r->slots_busy > 0)
					hw->gpus[i].busy = true;
				if (nprocs < VD_ARRAY_LEN(procs))
					procs[nprocs++] = (struct sim_hw_proc){
					    .gpu = i, .pid = r->pid, .bytes = bytes};
			}
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
	/* v0.33: an explicit "num_ctx": 0 is 4 (num_ctx < 4 means 4); v0.12: automatic. */
	if (ctx == SIM_NUM_CTX_ZERO && sim_sched_is_v033(s))
		ctx = 4;
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
	bool v033 = sim_sched_is_v033(s);
	bool runner_auto = r->opts.num_ctx == 0 || (!v033 && r->opts.num_ctx < 0);
	bool request_auto = opts->num_ctx == 0 || (!v033 && opts->num_ctx < 0);
	if (!(runner_auto && request_auto) && sim_sched_context(s, r->model, opts) != r->ctx)
		return true;
	if (opts->num_gpu >= 0 && opts->num_gpu != r->opts.num_gpu)
		return true;
	if (opts->main_gpu != r->opts.main_gpu)
		return true;
	if (!v033) {
		int64_t want = opts->num_batch > 0 ? opts->num_batch : 512;
		int64_t have = r->opts.num_batch > 0 ? r->opts.num_batch : 512;
		return want != have;
	}
	/* v0.33 (needsReload): automatic num_batch matches automatic; an unset use_mmap
	 * matches the automatic choice; num_thread and draft_num_predict must match. */
	if (opts->num_batch != r->opts.num_batch)
		return true;
	if (opts->use_mmap >= 0 && r->opts.use_mmap >= 0 && opts->use_mmap != r->opts.use_mmap)
		return true;
	if (opts->num_thread != r->opts.num_thread)
		return true;
	if (opts->draft_num_predict != r->opts.draft_num_predict)
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

/* v0.33: the killed runner's memory stays in use until the simulated driver releases
 * it (cfg.release_delay_ns later); the scheduler blocks meanwhile, polling every 250 ms
 * for up to 5 s until 75 % of it shows free (waitForVRAMRecovery). */
static void
sched_release_later(struct sim_sched *s, struct sim_runner *r)
{
	uint64_t bytes = 0;
	for (unsigned i = 0; i < SIM_MAX_GPUS; i++)
		bytes += r->vram_bytes[i] + r->cuda_ctx_bytes[i];
	if (bytes == 0 || r->oom) {
		sched_runner_free(r);
		return;
	}
	if (!s->recovering) {
		s->recovering = true;
		s->recovery_base_free = sched_gpus_free_sum(s);
		s->recovery_target = 0;
		s->counters.recovery_waits++;
		struct timeval poll = sched_real_tv(s, SIM_RECOVERY_POLL_NS);
		evtimer_add(s->recovery_poll, &poll);
	}
	s->recovery_target += (uint64_t)((double)bytes * SIM_RECOVERY_SHARE);
	s->recovery_deadline_mono_ns =
	    vd_now_mono_ns() + (int64_t)((double)SIM_RECOVERY_TIMEOUT_NS / s->cfg.time_scale);
	r->loading = false;
	r->release_due_mono_ns =
	    vd_now_mono_ns() + (int64_t)((double)s->cfg.release_delay_ns / s->cfg.time_scale);
	TAILQ_INSERT_TAIL(&s->releasing, r, entry);
	struct timeval tv = sched_real_tv(s, s->cfg.release_delay_ns);
	evtimer_add(r->timer, &tv);
}

static void
sched_unload(struct sim_sched *s, struct sim_runner *r)
{
	TAILQ_REMOVE(&s->runners, r, entry);
	if (!r->oom) {
		s->counters.unloads++;
		vd_log(SIM, "unloaded %s (pid %u)", r->model->name, r->pid);
	}
	/* v0.33: any unload wakes a load waiting for room (v0.12: only its victim). */
	if (s->awaiting_unload == r || (s->awaiting_unload != NULL && sim_sched_is_v033(s))) {
		s->awaiting_unload = NULL;
		s->busy = false;
	}
	if (sim_sched_is_v033(s))
		sched_release_later(s, r);
	else
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
		job = TAILQ_FIRST(&r->slot_waiters);
		if (job != NULL && sim_sched_is_v033(s) && job->oom_retries == 0) {
			/* v0.33 retries once: a tier lower with the automatic context, and
			 * with every other runner evicted first. */
			TAILQ_REMOVE(&r->slot_waiters, job, entry);
			job->runner = NULL;
			job->oom_retries = 1;
			job->evict_all = !TAILQ_EMPTY(&s->runners);
			job->retry_ctx = 0;
			if (job->opts.num_ctx == 0)
				job->retry_ctx = r->ctx > 32768 ? 32768 : 4096;
			job->state = SIM_JOB_PENDING;
			TAILQ_INSERT_HEAD(&s->pending, job, entry);
			s->npending++;
			s->counters.load_retries++;
			vd_log(SIM, "retrying the load of %s once%s", r->model->name,
			       job->evict_all ? " after evicting every runner" : "");
		}
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
	if (r->release_due_mono_ns != 0) {
		/* The driver released an unloaded runner's memory. */
		TAILQ_REMOVE(&s->releasing, r, entry);
		sched_runner_free(r);
		sim_sched_publish(s);
		return;
	}
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
	if (counted && !r->expiring) {
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
	uint64_t cuda_ctx[SIM_MAX_GPUS];
	uint64_t ram;
	uint64_t size, estimate, compute;
	int64_t ubatch, gpu_layers, layers;
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
	/* Other servers on the same machine share its host memory. */
	used += s->hw->peer_ram_bytes;
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
	p->size = act;
	p->estimate = est;
	p->ubatch = job->opts.num_batch > 0 ? job->opts.num_batch : 512;
	p->layers = m->block_count + 1;
	bool require_full = !TAILQ_EMPTY(&s->runners);
	sim_hw_refresh(hw);
	if (!require_full)
		for (unsigned i = 0; i < hw->ngpus; i++)
			s->others_seen[i] = sim_gpu_others_bytes(&hw->gpus[i]);

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

static bool
sched_gpu_has_runner(const struct sim_sched *s, unsigned gpu)
{
	const struct sim_runner *r;
	TAILQ_FOREACH(r, &s->runners, entry)
	if (r->vram_bytes[gpu] > 0)
		return true;
	return false;
}

/* Ollama's batch surcharge on its estimate (completion models): 0 / 768 MiB / 2 GiB
 * for a batch of 512 / 1024 / 2048. */
static uint64_t
sched_batch_surcharge(const struct sim_model *m, int64_t ubatch)
{
	if ((m->capabilities & SIM_CAP_COMPLETION) == 0)
		return 0;
	return ubatch >= 2048 ? 2 * VD_GIB : ubatch >= 1024 ? 768 * VD_MIB : 0;
}

/*
 * Ollama v0.33: Ollama's coarse pre-flight (single GPU where the estimate fits 80 % of
 * its view of free memory, else all GPUs, else evict when other models are loaded),
 * then llama-server's --fit on the chosen devices from physically free memory: each
 * device keeps fit_target_bytes free and holds a CUDA context and a compute buffer;
 * block_count + 1 equal layers of weights + KV go on the GPUs in proportion to what
 * is left, the rest on the CPU. Only an explicit num_gpu above what fits is an OOM.
 */
static void
sched_plan_fit(struct sim_sched *s, const struct sim_job *job, int64_t ctx, int parallel,
	       struct sched_plan *p)
{
	const struct sim_model *m = job->model;
	struct sim_hw *hw = s->hw;
	unsigned n = hw->ngpus;
	memset(p, 0, sizeof(*p));
	p->kind = PLAN_LOAD;
	bool require_full = !TAILQ_EMPTY(&s->runners);
	sim_hw_refresh(hw);

	/* Free memory is re-measured on every GPU (other processes included) whenever
	 * any GPU has no runner; otherwise it comes from the runners' accounting. */
	bool any_gpu_idle = false;
	for (unsigned i = 0; i < n; i++)
		any_gpu_idle = any_gpu_idle || !sched_gpu_has_runner(s, i);
	if (any_gpu_idle)
		for (unsigned i = 0; i < n; i++)
			s->others_seen[i] = sim_gpu_others_bytes(&hw->gpus[i]);

	uint64_t ofree[SIM_MAX_GPUS] = {0}, pfree[SIM_MAX_GPUS] = {0}, osum = 0;
	bool usable[SIM_MAX_GPUS] = {false};
	bool any = false;
	for (unsigned i = 0; i < n; i++) {
		usable[i] = !hw->gpus[i].lost &&
			    (job->opts.main_gpu < 0 || (int64_t)i == job->opts.main_gpu);
		ofree[i] = usable[i] ? sched_ollama_free(s, i) : 0;
		pfree[i] = usable[i] ? sim_gpu_free_bytes(&hw->gpus[i]) : 0;
		osum += ofree[i];
		any = any || usable[i];
	}

	uint64_t kv = sim_model_kv_bytes(m, ctx * parallel);
	uint64_t model_bytes = m->file_bytes + kv;
	/* The micro-batch: explicit num_batch, else 2048 / 1024 / 512 for contexts above
	 * 32768 / 4096 / below, lowered while the estimate leaves under 25 % headroom. */
	int64_t ub = job->opts.num_batch;
	if (ub <= 0) {
		ub = ctx > 32768 ? 2048 : ctx > 4096 ? 1024 : 512;
		while (ub > 512 &&
		       (double)(model_bytes + sched_batch_surcharge(m, ub)) > 0.75 * (double)osum)
			ub /= 2;
	}
	p->ubatch = ub;
	p->compute = sim_model_compute_bytes(m, ub);
	p->estimate = model_bytes + sched_batch_surcharge(m, ub);
	p->layers = m->block_count + 1;
	p->size = model_bytes + p->compute;
	if (job->opts.num_gpu == 0 || !any) {
		p->ram = p->size;
		return;
	}
	int64_t wanted =
	    job->opts.num_gpu > 0 && job->opts.num_gpu < p->layers ? job->opts.num_gpu : p->layers;
	bool explicit_partial = job->opts.num_gpu > 0 && job->opts.num_gpu < p->layers;

	bool dev[SIM_MAX_GPUS] = {false};
	int best = -1;
	if (!s->cfg.sched_spread)
		for (unsigned i = 0; i < n; i++)
			if (usable[i] && (double)p->estimate <= 0.8 * (double)ofree[i] &&
			    (best < 0 || ofree[i] > ofree[best]))
				best = (int)i;
	if (best >= 0) {
		dev[best] = true;
	} else {
		if (require_full && !explicit_partial && (double)p->estimate > 0.8 * (double)osum) {
			p->kind = PLAN_EVICT;
			return;
		}
		for (unsigned i = 0; i < n; i++)
			dev[i] = usable[i];
	}

	/* llama.cpp --fit over the chosen devices. */
	uint64_t layer_bytes = (model_bytes + (uint64_t)p->layers - 1) / (uint64_t)p->layers;
	uint64_t avail[SIM_MAX_GPUS] = {0}, asum = 0;
	int64_t cap[SIM_MAX_GPUS] = {0}, fit = 0;
	uint64_t overhead = s->cfg.cuda_context_bytes + p->compute + s->cfg.fit_target_bytes;
	for (unsigned i = 0; i < n; i++) {
		if (!dev[i] || pfree[i] <= overhead)
			continue;
		avail[i] = pfree[i] - overhead;
		cap[i] = (int64_t)(avail[i] / layer_bytes);
		if (cap[i] > p->layers)
			cap[i] = p->layers;
		if (cap[i] > 0)
			asum += avail[i];
		fit += cap[i];
	}
	if (job->opts.num_gpu > 0 && wanted > fit) {
		p->oom = true;
		return;
	}
	int64_t ngpu = wanted < fit ? wanted : fit;
	int64_t layers_on[SIM_MAX_GPUS] = {0}, placed = 0;
	for (unsigned i = 0; i < n && asum > 0; i++) {
		if (cap[i] <= 0)
			continue;
		int64_t l = (int64_t)((double)ngpu * (double)avail[i] / (double)asum);
		layers_on[i] = l < cap[i] ? l : cap[i];
		placed += layers_on[i];
	}
	for (unsigned i = 0; i < n && placed < ngpu; i++) {
		int64_t add = cap[i] - layers_on[i];
		if (add > ngpu - placed)
			add = ngpu - placed;
		layers_on[i] += add;
		placed += add;
	}
	/* Bytes of the first k layers, so that all layers sum to model_bytes exactly. */
	int64_t done = 0;
	unsigned ndev = 0;
	uint64_t on_gpu = 0;
	for (unsigned i = 0; i < n; i++) {
		if (layers_on[i] == 0)
			continue;
		uint64_t from = (uint64_t)((double)model_bytes * (double)done / (double)p->layers);
		done += layers_on[i];
		uint64_t to = (uint64_t)((double)model_bytes * (double)done / (double)p->layers);
		if (done == p->layers)
			to = model_bytes;
		p->vram[i] = to - from + p->compute;
		p->cuda_ctx[i] = s->cfg.cuda_context_bytes;
		on_gpu += to - from;
		ndev++;
	}
	p->gpu_layers = ngpu;
	p->size = model_bytes + p->compute * (ndev > 0 ? ndev : 1);
	p->ram = model_bytes - on_gpu + (ndev == 0 ? p->compute : 0);
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
	r->size_bytes = p->size;
	r->estimate_bytes = p->estimate;
	memcpy(r->vram_bytes, p->vram, sizeof(r->vram_bytes));
	memcpy(r->cuda_ctx_bytes, p->cuda_ctx, sizeof(r->cuda_ctx_bytes));
	r->ram_bytes = p->ram;
	r->ubatch = p->ubatch;
	r->compute_bytes = p->compute;
	r->layers = p->layers;
	r->oom = p->oom;
	r->loading = true;
	r->session_ns = job->has_keep_alive ? job->keep_alive_ns : s->cfg.keep_alive_ns;
	r->expires_wall_ns = sched_expiry_wall_ns(r->session_ns);
	r->pid = sim_hw_next_runner_pid(s->hw);
	/* Time per token mixes GPU and CPU speed by where the layers (v0.12: the bytes)
	 * live. */
	double gpu_frac = r->size_bytes > 0 ? (double)sim_runner_vram_total(r) / r->size_bytes : 0;
	if (sim_sched_is_v033(s))
		gpu_frac = (double)p->gpu_layers / (double)p->layers;
	r->gpu_layers =
	    sim_sched_is_v033(s) ? p->gpu_layers : (int64_t)(gpu_frac * (double)p->layers + 0.5);
	if (!r->oom && sim_sched_is_v033(s) && job->opts.num_gpu < 0 && p->gpu_layers < p->layers) {
		s->counters.cpu_spills++;
		vd_log(SIM, "%s: %lld of %lld layers fit the GPUs, the rest run on the CPU",
		       m->name, (long long)p->gpu_layers, (long long)p->layers);
	}
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
	r->load_start_mono_ns = vd_now_mono_ns();
	r->load_ns = (int64_t)((double)load_ns / s->cfg.time_scale);
	struct timeval tv = sched_real_tv(s, load_ns);
	evtimer_add(r->timer, &tv);
	sim_faults_on_load(s->faults, m, r->load_ns);
	sim_sched_publish(s);
	sched_publish_tick(s);
}

/* Whether job can use the model's runner r as it is: no reload needed, and r not
 * expiring (v0.33 reuses a runner being drained for eviction). */
static bool
sched_can_reuse(const struct sim_sched *s, const struct sim_runner *r, const struct sim_job *job)
{
	if (r->loading || r->oom || sim_runner_needs_reload(s, r, &job->opts))
		return false;
	return !r->expiring || sim_sched_is_v033(s);
}

/* A drained runner that gets a new request stays, with that request's keep_alive. */
static void
sched_revive(struct sim_sched *s, struct sim_runner *r, const struct sim_job *job)
{
	if (!r->expiring)
		return;
	r->expiring = false;
	if (!job->has_keep_alive)
		r->session_ns = s->cfg.keep_alive_ns;
	if (s->awaiting_unload == r) {
		s->awaiting_unload = NULL;
		s->busy = false;
		sched_kick(s);
	}
	vd_log(SIM, "%s: reused while draining", r->model->name);
}

static void
sched_process_pending(struct sim_sched *s)
{
	struct sim_job *job;
	while (!s->busy && !s->recovering && (job = TAILQ_FIRST(&s->pending)) != NULL) {
		struct sim_runner *r = sim_sched_find_runner(s, job->model);
		if (r != NULL) {
			if (sched_can_reuse(s, r, job)) {
				TAILQ_REMOVE(&s->pending, job, entry);
				s->npending--;
				sched_revive(s, r, job);
				sched_attach(s, job, r);
				continue;
			}
			if (r->loading) {
				/* v0.33 ignores unloads while loading: wait for the load. */
				s->awaiting_unload = r;
				s->busy = true;
				continue;
			}
			sched_evict(s, r, !r->expiring);
			continue;
		}
		if (job->evict_all && !TAILQ_EMPTY(&s->runners)) {
			/* The OOM retry: evict every runner and wait until all are gone. */
			struct sim_runner *v, *tmp;
			for (v = TAILQ_FIRST(&s->runners); v != NULL; v = tmp) {
				tmp = TAILQ_NEXT(v, entry);
				sched_evict(s, v, true);
				if (s->busy)
					break;
			}
			continue;
		}
		job->evict_all = false;
		if (sched_nrunners(s) >= sched_max_runners(s)) {
			sched_evict(s, sim_sched_pick_victim(s), true);
			continue;
		}
		int64_t ctx = sim_sched_context(s, job->model, &job->opts);
		if (job->retry_ctx > 0 && job->retry_ctx < ctx)
			ctx = job->retry_ctx;
		int parallel = sched_parallel(s, job->model);
		struct sched_plan plan;
		if (sim_sched_is_v033(s))
			sched_plan_fit(s, job, ctx, parallel, &plan);
		else
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

/*
 * Whether a request that needs the pending loop gets in, as Ollama's getRunner sends
 * it to pendingReqCh, a channel of OLLAMA_MAX_QUEUE slots, without blocking: the send
 * succeeds while processPending waits to receive (idle: no load or eviction under way,
 * nothing pending; so OLLAMA_MAX_QUEUE=0 admits a request then), or while the buffer,
 * the pending requests minus the one the loop has taken, has room. The loop holds the
 * head of the queue unless it is busy with a load (whose job left the queue).
 */
static bool
sched_admits(const struct sim_sched *s)
{
	bool loading = s->busy && s->awaiting_unload == NULL;
	if (TAILQ_EMPTY(&s->pending) && !s->busy)
		return true;
	int buffered = s->npending - (!TAILQ_EMPTY(&s->pending) && !loading ? 1 : 0);
	return buffered < s->cfg.max_queue;
}

int
sim_sched_submit(struct sim_sched *s, struct sim_job *job)
{
	job->runner = NULL;
	job->holds_slot = false;
	job->error_message = NULL;
	job->oom_retries = 0;
	job->evict_all = false;
	job->retry_ctx = 0;
	struct sim_runner *r = sim_sched_find_runner(s, job->model);
	if (r != NULL && sched_can_reuse(s, r, job)) {
		sched_revive(s, r, job);
		sched_attach(s, job, r);
		return 0;
	}
	if (!sched_admits(s)) {
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
		if (r->loading && sim_sched_is_v033(s) && !r->oom) {
			/* v0.33: the client left during its own load: llama-server is
			 * killed and its memory freed. */
			evtimer_del(r->timer);
			TAILQ_REMOVE(&s->runners, r, entry);
			s->counters.aborted_loads++;
			s->busy = false;
			vd_log(SIM, "load of %s aborted: client connection closed", r->model->name);
			sched_release_later(s, r);
			sim_sched_publish(s);
			sched_kick(s);
			break;
		}
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
	if (r->loading && sim_sched_is_v033(s))
		return; /* v0.33: an unload of a model still loading is a no-op */
	r->session_ns = 0;
	r->expiring = true;
	r->expires_wall_ns = vd_now_wall_ns();
	if (r->refcount == 0 && !r->loading)
		sched_unload(s, r);
}

void
sim_sched_runtime_oom(struct sim_sched *s)
{
	s->counters.runtime_ooms++;
	struct sim_runner *r, *tmp;
	for (r = TAILQ_FIRST(&s->runners); r != NULL; r = tmp) {
		tmp = TAILQ_NEXT(r, entry);
		if (r->loading)
			continue;
		r->session_ns = 0;
		r->expiring = true;
		r->expires_wall_ns = vd_now_wall_ns();
		if (r->refcount == 0)
			sched_unload(s, r);
	}
	sim_sched_publish(s);
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

bool
sim_runner_is_listed(const struct sim_sched *s, const struct sim_runner *r)
{
	return !r->oom && !(r->loading && sim_sched_is_v033(s));
}

int
sim_sched_parse_version(const char *text, int *minor, char *out, size_t len, char **cause)
{
	unsigned maj = 0, min = 0, patch = 0;
	int used = 0;
	int n = sscanf(text, "%u.%u%n", &maj, &min, &used);
	if (n == 2 && text[used] == '.') {
		int more = 0;
		if (sscanf(text + used, ".%u%n", &patch, &more) != 1)
			n = 0;
		used += more;
	}
	if (n != 2 || text[used] != '\0' || maj != 0 || min < 1 || min > 99)
		return vd_fail(
		    cause, -EINVAL,
		    "--ollama-version \"%s\": expected 0.MINOR[.PATCH], e.g. 0.12 or 0.33", text);
	*minor = (int)min;
	snprintf(out, len, "0.%u.%u", min, patch);
	return 0;
}
