/*
 * test-sim-sched.c: unit tests for sim/sim-sched.c, ollama-sim's copy of Ollama's
 * scheduler: placement (best fit, spread, CPU, partial offload), eviction order,
 * the 80% fit rule, out-of-memory loads, reloads and the pending-queue limit. Each
 * test runs the real scheduler on a private event loop at a huge time scale.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim-catalogue.h"
#include "sim-hw.h"
#include "sim-sched.h"
#include "util.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	struct event_base *base;
	struct sim_hw hw;
	struct sim_catalogue *cat;
	struct sim_sched *s;
};

struct probe {
	struct sim_job job;
	int ready, failed;
};

static void
probe_ready_cb(struct sim_job *job, void *arg)
{
	(void)job;
	((struct probe *)arg)->ready++;
}

static void
probe_error_cb(struct sim_job *job, void *arg)
{
	(void)job;
	((struct probe *)arg)->failed++;
}

/* The Ollama minor version the next fx_init simulates: the tests written for the
 * v0.12 rules (500 on overcommit) set 12, the v0.33 tests 33. */
static int fx_minor = 12;

static void
fx_init(struct fixture *fx, const uint64_t *gpus, unsigned n, int max_loaded)
{
	memset(fx, 0, sizeof(*fx));
	fx->base = event_base_new();
	fx->cat = sim_catalogue_default();
	sim_hw_init(&fx->hw, gpus, n, 16 * VD_GIB, 1);
	struct sim_sched_config cfg;
	sim_sched_config_defaults(&cfg);
	cfg.time_scale = 1e4;
	cfg.keep_alive_ns = 1000000 * VD_NS_PER_S;
	cfg.max_loaded = max_loaded;
	cfg.context_length = 4096;
	cfg.ollama_minor = fx_minor;
	fx->s = sim_sched_new(fx->base, &fx->hw, fx->cat, &cfg);
}

static void
fx_cleanup(struct fixture *fx)
{
	sim_sched_free(fx->s);
	sim_hw_cleanup(&fx->hw);
	sim_catalogue_free(fx->cat);
	event_base_free(fx->base);
}

/* Runs the loop until the probe got an answer (or 2 s pass). */
static void
fx_wait(struct fixture *fx, struct probe *p)
{
	int64_t deadline = vd_now_mono_ns() + 2 * VD_NS_PER_S;
	while (p->ready == 0 && p->failed == 0 && vd_now_mono_ns() < deadline)
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_true(p->ready + p->failed > 0);
}

static void
fx_drain(struct fixture *fx)
{
	for (int i = 0; i < 50; i++)
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
}

static void
probe_init(struct probe *p, struct fixture *fx, const char *model, int64_t keep_alive_s)
{
	memset(p, 0, sizeof(*p));
	p->job.model = sim_catalogue_find(fx->cat, model);
	assert_non_null(p->job.model);
	p->job.opts = (struct sim_load_opts){.num_ctx = 0,
					     .num_gpu = -1,
					     .main_gpu = -1,
					     .num_batch = 512,
					     .use_mmap = -1,
					     .draft_num_predict = 4};
	if (keep_alive_s != 0) {
		p->job.has_keep_alive = true;
		p->job.keep_alive_ns = keep_alive_s * VD_NS_PER_S;
	}
	p->job.ready_cb = probe_ready_cb;
	p->job.error_cb = probe_error_cb;
	p->job.arg = p;
	p->job.start_mono_ns = vd_now_mono_ns();
}

/* Loads a model and gives the job back, leaving it loaded and idle. */
static struct sim_runner *
load(struct fixture *fx, const char *model, int64_t keep_alive_s, int64_t num_gpu)
{
	struct probe p;
	probe_init(&p, fx, model, keep_alive_s);
	p.job.opts.num_gpu = num_gpu;
	assert_int_equal(sim_sched_submit(fx->s, &p.job), 0);
	fx_wait(fx, &p);
	assert_int_equal(p.ready, 1);
	struct sim_runner *r = p.job.runner;
	sim_sched_finish(fx->s, &p.job);
	return r;
}

static void
test_best_fit_picks_most_free_gpu(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {8 * VD_GIB, 16 * VD_GIB};
	fx_init(&fx, gpus, 2, 0);
	struct sim_runner *r = load(&fx, "llama3.2:1b", 0, -1);
	assert_true(r->vram_bytes[1] == r->size_bytes);
	assert_true(r->vram_bytes[0] == 0);
	assert_true(r->ram_bytes == 0);
	/* Ollama's estimate is below what the load really takes. */
	assert_true(r->estimate_bytes < r->size_bytes);
	assert_true(fx.hw.gpus[1].used_by_models_bytes == r->size_bytes);
	fx_cleanup(&fx);
}

static void
test_num_gpu_zero_runs_on_cpu(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	struct sim_runner *r = load(&fx, "qwen2.5:0.5b", 0, 0);
	assert_true(sim_runner_vram_total(r) == 0);
	assert_true(r->ram_bytes == r->size_bytes);
	/* CPU speed. */
	assert_true(r->tokens_per_s == r->model->cpu_tokens_per_s);
	assert_true(fx.hw.gpus[0].used_by_models_bytes == 0);
	fx_cleanup(&fx);
}

static void
test_eviction_shortest_keep_alive_first(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 2);
	load(&fx, "smollm:360m", 1000000, -1);
	load(&fx, "tinyllama:1.1b", 100000, -1);
	load(&fx, "gemma:2b", 1000000, -1);
	fx_drain(&fx);
	assert_non_null(sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "smollm:360m")));
	assert_null(sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "tinyllama:1.1b")));
	assert_non_null(sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "gemma:2b")));
	assert_int_equal(fx.s->counters.evictions, 1);
	assert_int_equal(fx.s->counters.loads, 3);
	fx_cleanup(&fx);
}

static void
test_eviction_ties_broken_by_name(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 2);
	load(&fx, "tinyllama:1.1b", 300000, -1);
	load(&fx, "smollm:360m", 300000, -1);
	struct sim_runner *v = sim_sched_pick_victim(fx.s);
	assert_string_equal(v->model->name, "smollm:360m");
	/* Forever sorts last. */
	v->session_ns = SIM_FOREVER_NS;
	assert_string_equal(sim_sched_pick_victim(fx.s)->model->name, "tinyllama:1.1b");
	fx_cleanup(&fx);
}

static void
test_busy_runner_is_not_preferred_victim(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	load(&fx, "tinyllama:1.1b", 1000000, -1);
	struct probe busy;
	probe_init(&busy, &fx, "smollm:360m", 100000);
	busy.job.wants_slot = true;
	assert_int_equal(sim_sched_submit(fx.s, &busy.job), 0);
	fx_wait(&fx, &busy);
	/* smollm has the shorter keep_alive but is in use: the idle one goes first. */
	assert_string_equal(sim_sched_pick_victim(fx.s)->model->name, "tinyllama:1.1b");
	sim_sched_finish(fx.s, &busy.job);
	assert_string_equal(sim_sched_pick_victim(fx.s)->model->name, "smollm:360m");
	fx_cleanup(&fx);
}

static void
test_partial_offload_only_for_first_model(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {2 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	/* phi3:mini at 4096 ctx needs ~4.3 GB: the first model spills to the CPU. */
	struct sim_runner *r = load(&fx, "phi3:mini", 0, -1);
	assert_true(r->ram_bytes > 0);
	assert_true(sim_runner_vram_total(r) > 0);
	assert_true(r->tokens_per_s < r->model->gpu_tokens_per_s);
	assert_true(r->tokens_per_s > r->model->cpu_tokens_per_s);
	/* A second model must fit fully: the first is evicted instead of offloading. */
	struct sim_runner *r2 = load(&fx, "qwen2.5:0.5b", 0, -1);
	fx_drain(&fx);
	assert_null(sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "phi3:mini")));
	assert_true(r2->ram_bytes == 0);
	assert_int_equal(fx.s->counters.evictions, 1);
	fx_cleanup(&fx);
}

static void
test_spread_across_gpus(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {3 * VD_GIB, 3 * VD_GIB};
	fx_init(&fx, gpus, 2, 0);
	struct sim_runner *r = load(&fx, "phi3:mini", 0, -1);
	assert_true(r->vram_bytes[0] > 0 && r->vram_bytes[1] > 0);
	assert_true(r->ram_bytes == 0);
	assert_true(sim_runner_vram_total(r) == r->size_bytes);
	fx_cleanup(&fx);
}

static void
test_oom_when_others_grew_since_last_look(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {8 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	load(&fx, "smollm:360m", 0, -1);
	/* Another process takes memory; Ollama's view (from its runners) is stale. */
	fx.hw.gpus[0].other_bytes = 5 * VD_GIB;
	struct probe p;
	probe_init(&p, &fx, "phi3:mini", 0);
	assert_int_equal(sim_sched_submit(fx.s, &p.job), 0);
	fx_wait(&fx, &p);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.job.error_status, 500);
	assert_non_null(strstr(p.job.error_message, "out-of-memory during startup"));
	sim_sched_finish(fx.s, &p.job);
	fx_drain(&fx);
	assert_int_equal(fx.s->counters.oom_failures, 1);
	assert_null(sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "phi3:mini")));
	/* Memory is what it was: the failed load holds nothing. */
	struct sim_runner *small =
	    sim_sched_find_runner(fx.s, sim_catalogue_find(fx.cat, "smollm:360m"));
	assert_true(fx.hw.gpus[0].used_by_models_bytes == small->size_bytes);
	fx_cleanup(&fx);
}

static void
test_reload_on_num_ctx_change(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	struct sim_runner *r = load(&fx, "llama3.2:1b", 0, -1);
	struct sim_load_opts same = r->opts, more = r->opts, gpu_any = r->opts;
	more.num_ctx = 8192;
	gpu_any.num_gpu = -1;
	assert_false(sim_runner_needs_reload(fx.s, r, &same));
	assert_false(sim_runner_needs_reload(fx.s, r, &gpu_any));
	assert_true(sim_runner_needs_reload(fx.s, r, &more));
	struct probe p;
	probe_init(&p, &fx, "llama3.2:1b", 0);
	p.job.opts.num_ctx = 8192;
	assert_int_equal(sim_sched_submit(fx.s, &p.job), 0);
	fx_wait(&fx, &p);
	assert_int_equal(p.job.runner->ctx, 8192);
	sim_sched_finish(fx.s, &p.job);
	assert_int_equal(fx.s->counters.loads, 2);
	assert_int_equal(fx.s->counters.unloads, 1);
	fx_cleanup(&fx);
}

static void
test_pending_queue_limit(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	fx.s->cfg.max_queue = 2;
	/* As Ollama's pendingReqCh: the loop takes a at once (it was idle); b and c fill
	 * the two slots of the buffer; d finds it full. */
	struct probe a, b, c, d;
	probe_init(&a, &fx, "smollm:360m", 0);
	probe_init(&b, &fx, "gemma:2b", 0);
	probe_init(&c, &fx, "phi3:mini", 0);
	probe_init(&d, &fx, "tinyllama:1.1b", 0);
	assert_int_equal(sim_sched_submit(fx.s, &a.job), 0);
	assert_int_equal(sim_sched_submit(fx.s, &b.job), 0);
	assert_int_equal(sim_sched_submit(fx.s, &c.job), 0);
	assert_int_equal(sim_sched_submit(fx.s, &d.job), 503);
	assert_int_equal(fx.s->counters.rejected_503, 1);
	fx_wait(&fx, &a);
	fx_wait(&fx, &b);
	fx_wait(&fx, &c);
	sim_sched_finish(fx.s, &a.job);
	sim_sched_finish(fx.s, &b.job);
	sim_sched_finish(fx.s, &c.job);
	fx_cleanup(&fx);
}

/* OLLAMA_MAX_QUEUE=0: pendingReqCh has no buffer, so a load-needing request gets in
 * only while processPending waits for one (idle), and is refused while it works. */
static void
test_pending_queue_zero_admits_when_idle(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	fx.s->cfg.max_queue = 0;
	struct probe a, b, c;
	probe_init(&a, &fx, "smollm:360m", 0);
	probe_init(&b, &fx, "gemma:2b", 0);
	probe_init(&c, &fx, "phi3:mini", 0);
	assert_int_equal(sim_sched_submit(fx.s, &a.job), 0);
	assert_int_equal(sim_sched_submit(fx.s, &b.job), 503); /* the loop holds a */
	fx_wait(&fx, &a);
	assert_int_equal(a.ready, 1);
	/* Idle again (a's load is done): the next load-needing request gets in. */
	assert_int_equal(sim_sched_submit(fx.s, &c.job), 0);
	fx_wait(&fx, &c);
	assert_int_equal(c.ready, 1);
	assert_int_equal(fx.s->counters.rejected_503, 1);
	sim_sched_finish(fx.s, &a.job);
	sim_sched_finish(fx.s, &c.job);
	fx_cleanup(&fx);
}

static void
test_context_tiers(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB, 24 * VD_GIB};
	fx_init(&fx, gpus, 2, 0);
	fx.s->cfg.context_length = 0;
	const struct sim_model *m = sim_catalogue_find(fx.cat, "llama3.2:1b");
	struct sim_load_opts o = {.num_ctx = 0, .num_gpu = -1, .main_gpu = -1, .num_batch = 512};
	assert_int_equal(sim_sched_context(fx.s, m, &o), 131072); /* 256k tier, clamped */
	fx.hw.ngpus = 1;
	assert_int_equal(sim_sched_context(fx.s, m, &o), 32768);
	o.num_ctx = 2;
	assert_int_equal(sim_sched_context(fx.s, m, &o), 4);
	fx.hw.ngpus = 2;
	fx_cleanup(&fx);
}

/* ---- Ollama v0.33 (llama-server's --fit) -------------------------------- */

static void
test_v033_later_model_spills_to_cpu_instead_of_oom(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {8 * VD_GIB};
	fx_minor = 33;
	fx_init(&fx, gpus, 1, 0);
	fx_minor = 12;
	load(&fx, "smollm:360m", 0, -1);
	/* The same stale view as test_oom_when_others_grew_since_last_look. */
	fx.hw.gpus[0].other_bytes = 5 * VD_GIB;
	struct sim_runner *r = load(&fx, "phi3:mini", 0, -1);
	assert_true(r->ram_bytes > 0);
	assert_true(r->gpu_layers > 0 && r->gpu_layers < r->layers);
	assert_int_equal(r->layers, 33);
	assert_true(sim_runner_vram_total(r) < r->size_bytes);
	assert_true(r->ram_bytes + sim_runner_vram_total(r) == r->size_bytes);
	/* llama.cpp keeps 1 GiB free: less than one more layer above that is left. */
	uint64_t free_now = sim_gpu_free_bytes(&fx.hw.gpus[0]);
	assert_true(free_now >= VD_GIB);
	assert_true(free_now < VD_GIB + r->size_bytes / (uint64_t)r->layers + 1);
	/* Speed mixes GPU and CPU in proportion to the layers. */
	double f = (double)r->gpu_layers / (double)r->layers;
	double want = 1.0 / (f / r->model->gpu_tokens_per_s + (1 - f) / r->model->cpu_tokens_per_s);
	assert_true(r->tokens_per_s > want * 0.999 && r->tokens_per_s < want * 1.001);
	assert_int_equal(fx.s->counters.cpu_spills, 1);
	assert_int_equal(fx.s->counters.oom_failures, 0);
	fx_cleanup(&fx);
}

/* Row 13: a load waiting for its victim to finish goes ahead as soon as any runner
 * unloads (v0.33, sched.go:349-358); 0.12 waited for that victim only. */
static void
run_unload_wakes_waiting_load(int minor, bool want_woken)
{
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_minor = minor;
	fx_init(&fx, gpus, 1, 2);
	fx_minor = 12;
	struct probe a, c, d;
	probe_init(&a, &fx, "smollm:360m", 60);
	probe_init(&c, &fx, "gemma:2b", 600);
	probe_init(&d, &fx, "phi3:mini", 0);
	assert_int_equal(sim_sched_submit(fx.s, &a.job), 0);
	fx_wait(&fx, &a);
	assert_int_equal(sim_sched_submit(fx.s, &c.job), 0);
	fx_wait(&fx, &c);
	/* Two runners, both busy: d must evict; the victim is a (shortest keep_alive),
	 * which stays busy throughout. */
	assert_int_equal(sim_sched_submit(fx.s, &d.job), 0);
	fx_drain(&fx);
	assert_int_equal(d.ready, 0);
	/* c's request ends and c is unloaded: another runner than the victim. */
	sim_sched_finish(fx.s, &c.job);
	sim_sched_expire_model(fx.s, c.job.model);
	if (want_woken) {
		fx_wait(&fx, &d);
		assert_int_equal(d.ready, 1);
	} else {
		fx_drain(&fx);
		assert_int_equal(d.ready + d.failed, 0);
	}
	sim_sched_finish(fx.s, &a.job);
	fx_wait(&fx, &d);
	assert_int_equal(d.ready, 1);
	sim_sched_finish(fx.s, &d.job);
	fx_cleanup(&fx);
}

static void
test_v033_any_unload_wakes_a_waiting_load(void **state)
{
	(void)state;
	run_unload_wakes_waiting_load(33, true);
	run_unload_wakes_waiting_load(12, false);
}

static void
test_v033_footprint_and_cuda_context(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_minor = 33;
	fx_init(&fx, gpus, 1, 0);
	fx_minor = 12;
	struct sim_runner *r = load(&fx, "llama3.2:1b", 0, -1);
	const struct sim_model *m = r->model;
	/* size = weights + KV (context x parallel) + compute buffer of the micro-batch. */
	assert_int_equal(r->ubatch, 512);
	uint64_t want =
	    m->file_bytes + sim_model_kv_bytes(m, 4096) + sim_model_compute_bytes(m, 512);
	assert_true(r->size_bytes == want);
	assert_true(sim_runner_vram_total(r) == r->size_bytes);
	/* NVML also counts the CUDA context, which /api/ps does not show. */
	assert_true(fx.hw.gpus[0].used_by_models_bytes == r->size_bytes + 400 * VD_MIB);
	assert_int_equal(fx.s->counters.cpu_spills, 0);
	/* An automatic micro-batch grows with the context (1024 above 4096). */
	fx.s->cfg.context_length = 8192;
	struct probe p;
	probe_init(&p, &fx, "qwen2.5:1.5b", 0);
	p.job.opts.num_batch = 0;
	assert_int_equal(sim_sched_submit(fx.s, &p.job), 0);
	fx_wait(&fx, &p);
	assert_int_equal(p.ready, 1);
	assert_int_equal(p.job.runner->ubatch, 1024);
	assert_true(p.job.runner->compute_bytes == sim_model_compute_bytes(p.job.model, 1024));
	sim_sched_finish(fx.s, &p.job);
	fx_cleanup(&fx);
}

static void
test_v033_split_model_pays_overhead_on_each_device(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {4 * VD_GIB, 4 * VD_GIB};
	fx_minor = 33;
	fx_init(&fx, gpus, 2, 0);
	fx_minor = 12;
	struct sim_runner *r = load(&fx, "phi3:mini", 0, -1);
	assert_true(r->vram_bytes[0] > r->compute_bytes && r->vram_bytes[1] > r->compute_bytes);
	assert_true(r->cuda_ctx_bytes[0] == 400 * VD_MIB && r->cuda_ctx_bytes[1] == 400 * VD_MIB);
	uint64_t model = r->model->file_bytes + sim_model_kv_bytes(r->model, 4096);
	assert_true(r->size_bytes == model + 2 * r->compute_bytes);
	fx_cleanup(&fx);
}

static void
test_v033_explicit_num_gpu_oom_is_retried_once(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {4 * VD_GIB};
	fx_minor = 33;
	fx_init(&fx, gpus, 1, 0);
	fx_minor = 12;
	struct probe p;
	probe_init(&p, &fx, "phi3:mini", 0);
	p.job.opts.num_gpu = 99;
	assert_int_equal(sim_sched_submit(fx.s, &p.job), 0);
	fx_wait(&fx, &p);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.job.error_status, 500);
	assert_non_null(strstr(p.job.error_message, "out-of-memory during startup"));
	assert_int_equal(fx.s->counters.load_retries, 1);
	assert_int_equal(fx.s->counters.oom_failures, 2);
	sim_sched_finish(fx.s, &p.job);
	/* num_gpu within what fits loads those layers, no spill counted. */
	struct sim_runner *r = load(&fx, "phi3:mini", 0, 4);
	assert_int_equal(r->gpu_layers, 4);
	assert_int_equal(fx.s->counters.cpu_spills, 0);
	fx_cleanup(&fx);
}

static void
test_v033_num_ctx_zero_means_4(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_init(&fx, gpus, 1, 0);
	const struct sim_model *m = sim_catalogue_find(fx.cat, "llama3.2:1b");
	struct sim_load_opts o = {.num_ctx = SIM_NUM_CTX_ZERO, .num_gpu = -1, .main_gpu = -1};
	assert_int_equal(sim_sched_context(fx.s, m, &o), 4096); /* v0.12: automatic */
	fx.s->cfg.ollama_minor = 33;
	assert_int_equal(sim_sched_context(fx.s, m, &o), 4);
	fx_cleanup(&fx);
}

static void
test_v033_reload_triggers(void **state)
{
	(void)state;
	struct fixture fx;
	uint64_t gpus[] = {24 * VD_GIB};
	fx_minor = 33;
	fx_init(&fx, gpus, 1, 0);
	fx_minor = 12;
	struct sim_runner *r = load(&fx, "qwen2.5:0.5b", 0, -1);
	struct sim_load_opts o = r->opts;
	assert_false(sim_runner_needs_reload(fx.s, r, &o));
	o.num_thread = 8;
	assert_true(sim_runner_needs_reload(fx.s, r, &o));
	o = r->opts;
	o.draft_num_predict = 8;
	assert_true(sim_runner_needs_reload(fx.s, r, &o));
	o = r->opts;
	o.use_mmap = 0; /* the runner's use_mmap was automatic: matches */
	assert_false(sim_runner_needs_reload(fx.s, r, &o));
	fx.s->cfg.ollama_minor = 12;
	o = r->opts;
	o.num_thread = 8;
	assert_false(sim_runner_needs_reload(fx.s, r, &o));
	fx_cleanup(&fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_best_fit_picks_most_free_gpu),
	    cmocka_unit_test(test_num_gpu_zero_runs_on_cpu),
	    cmocka_unit_test(test_eviction_shortest_keep_alive_first),
	    cmocka_unit_test(test_eviction_ties_broken_by_name),
	    cmocka_unit_test(test_busy_runner_is_not_preferred_victim),
	    cmocka_unit_test(test_partial_offload_only_for_first_model),
	    cmocka_unit_test(test_spread_across_gpus),
	    cmocka_unit_test(test_oom_when_others_grew_since_last_look),
	    cmocka_unit_test(test_reload_on_num_ctx_change),
	    cmocka_unit_test(test_pending_queue_limit),
	    cmocka_unit_test(test_pending_queue_zero_admits_when_idle),
	    cmocka_unit_test(test_context_tiers),
	    cmocka_unit_test(test_v033_later_model_spills_to_cpu_instead_of_oom),
	    cmocka_unit_test(test_v033_footprint_and_cuda_context),
	    cmocka_unit_test(test_v033_any_unload_wakes_a_waiting_load),
	    cmocka_unit_test(test_v033_split_model_pays_overhead_on_each_device),
	    cmocka_unit_test(test_v033_explicit_num_gpu_oom_is_retried_once),
	    cmocka_unit_test(test_v033_num_ctx_zero_means_4),
	    cmocka_unit_test(test_v033_reload_triggers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
