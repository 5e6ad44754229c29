/*
 * test-registry.c: unit tests for src/fleet/registry.c: the estimate, then learning the
 * footprint from /api/ps and NVML, name normalisation, load statistics, capabilities,
 * and models that disappear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "job.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GB VD_GIB

static void
test_estimate_then_learning(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	registry_begin_tags(reg);
	struct registry_model *m = registry_set_installed(
	    reg, "llama3.2:latest", 2 * GB, "llama", "3.2B", "Q4_K_M", REGISTRY_CAP_COMPLETION);
	registry_end_tags(reg);
	assert_true(m->installed);
	assert_false(m->measured);
	assert_true(m->estimate_bytes == (uint64_t)(2.0 * GB * 1.3));
	assert_true(registry_footprint(m) == m->estimate_bytes);

	/* The multiplier can change; estimates follow. */
	registry_set_multiplier(reg, 1.5);
	assert_true(registry_footprint(m) == 3 * GB);

	/* Loaded: size_vram becomes the footprint. */
	registry_observe_loaded(reg, "llama3.2:latest", 3200 * VD_MIB, 3200 * VD_MIB, 100);
	assert_true(m->measured);
	assert_true(m->loaded);
	assert_true(registry_footprint(m) == 3200 * VD_MIB);

	/* A plausible larger NVML delta (CUDA context) raises it... */
	registry_record_load(reg, "llama3.2", 1500, 3500 * VD_MIB);
	assert_true(registry_footprint(m) == 3500 * VD_MIB);
	assert_true(m->nvml_delta_bytes == (int64_t)(3500 * VD_MIB));
	/* ...an implausible one (another program allocated meanwhile) does not. */
	registry_record_load(reg, "llama3.2", 1500, 20 * (int64_t)GB);
	assert_true(registry_footprint(m) == 3200 * VD_MIB);
	/* A smaller delta never lowers the footprint below size_vram. */
	registry_record_load(reg, "llama3.2", 1500, 1 * (int64_t)GB);
	assert_true(registry_footprint(m) == 3200 * VD_MIB);

	/* Partly on CPU: full GPU placement needs the whole size. */
	registry_observe_loaded(reg, "llama3.2", 4 * GB, 1 * GB, 200);
	assert_true(registry_footprint(m) == 4 * GB);

	/* Unloaded: residency goes, the learnt footprint stays. */
	registry_observe_unloaded(reg, "llama3.2");
	assert_false(m->loaded);
	assert_true(registry_footprint(m) == 4 * GB);
	registry_free(reg);
}

/* Ollama v0.33: NVML shows each runner a CUDA context more than /api/ps size_vram. The
 * runner's NVML memory teaches the overhead: the footprint is size plus it (also when
 * the model spilled partly to the CPU), and models not measured yet pay it in their
 * estimate. An implausible reading (far beyond the model) teaches nothing. */
static void
test_runner_overhead(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.0);
	registry_begin_tags(reg);
	struct registry_model *a = registry_set_installed(reg, "a:1b", 1 * GB, NULL, NULL, NULL, 0);
	struct registry_model *b = registry_set_installed(reg, "b:1b", 2 * GB, NULL, NULL, NULL, 0);
	registry_end_tags(reg);
	assert_true(b->estimate_bytes == 2 * GB);

	/* Not listed by /api/ps yet (v0.33 hides a loading runner): nothing to learn. */
	assert_int_equal(registry_record_runner(reg, "a:1b", 1700 * VD_MIB), -1);
	assert_false(a->measured);

	registry_observe_loaded(reg, "a:1b", 1200 * VD_MIB, 1200 * VD_MIB, 100);
	assert_true(registry_footprint(a) == 1200 * VD_MIB);
	assert_int_equal(registry_record_runner(reg, "a:1b", 1600 * VD_MIB), 0);
	assert_true(a->runner_overhead_bytes == 400 * VD_MIB);
	assert_true(registry_footprint(a) == 1600 * VD_MIB);
	/* b was never loaded: its estimate now includes the overhead. */
	assert_true(registry_footprint(b) == 2 * GB + 400 * VD_MIB);

	/* Spilled: 1000 of 1200 MiB on the GPU, runner 1400 MiB: all on a GPU needs
	 * size + overhead. */
	registry_observe_loaded(reg, "a:1b", 1200 * VD_MIB, 1000 * VD_MIB, 200);
	assert_int_equal(registry_record_runner(reg, "a:1b", 1400 * VD_MIB), 0);
	assert_true(registry_footprint(a) == 1600 * VD_MIB);

	/* A runner reading far beyond the model is not its overhead. */
	assert_int_equal(registry_record_runner(reg, "a:1b", 8 * GB), -1);
	assert_true(a->runner_overhead_bytes == 400 * VD_MIB);
	assert_true(registry_footprint(a) == 1600 * VD_MIB);

	json_t *o = registry_model_to_json(a);
	assert_int_equal(json_integer_value(json_object_get(o, "runner_overhead_bytes")),
			 400 * VD_MIB);
	json_decref(o);
	registry_free(reg);
}

/* The estimate adds the KV cache Ollama predicts: phi3:mini-like (no GQA, 32 layers,
 * 3072 wide) at 4096 tokens is 1.5 GiB, on top of file x multiplier; a model trained on
 * less context gets its own; parallel slots multiply it. */
static void
test_estimate_includes_kv_cache(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	struct registry_model *m =
	    registry_set_installed(reg, "phi3:mini", 2200000000, "phi3", "3.8B", "Q4_0", 0);
	assert_true(m->estimate_bytes == 2860000000);
	registry_set_context(reg, 4096, 1);
	assert_true(m->estimate_bytes == 2860000000); /* architecture unknown: no KV term */
	registry_set_arch(reg, "phi3:mini", 131072, 32, 32, 32, 3072);
	uint64_t kv = UINT64_C(2) * 32 * 32 * 96 * 4096 * 2;
	assert_true(m->kv_bytes == kv);
	assert_true(m->estimate_bytes == 2860000000 + kv);
	assert_true(registry_footprint(m) == 2860000000 + kv);

	registry_set_context(reg, 4096, 2);
	assert_true(m->kv_bytes == 2 * kv);
	registry_set_context(reg, 262144, 1);
	assert_true(m->kv_bytes == kv * 32); /* clamped to the trained 131072 */

	/* Measured footprint still wins once loaded. */
	registry_observe_loaded(reg, "phi3:mini", 4000000000, 4000000000, 1);
	assert_true(registry_footprint(m) == 4000000000);
	registry_free(reg);
}

/* A job's num_ctx beyond the server's context grows the footprint by the extra KV cache,
 * scaled linearly and capped at the training context; a smaller one changes nothing. */
static void
test_footprint_at_ctx(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	struct registry_model *m =
	    registry_set_installed(reg, "phi3:mini", 2200000000, "phi3", "3.8B", "Q4_0", 0);
	registry_set_context(reg, 4096, 2);
	/* Architecture unknown: no KV term to scale. */
	assert_true(registry_footprint_at_ctx(reg, m, 65536) == registry_footprint(m));
	registry_set_arch(reg, "phi3:mini", 131072, 32, 32, 32, 3072);
	uint64_t kv = UINT64_C(2) * 32 * 32 * 96 * 4096 * 2 * 2; /* 4096 tokens x 2 slots */
	uint64_t base = registry_footprint(m);
	assert_true(registry_footprint_at_ctx(reg, m, 0) == base);
	assert_true(registry_footprint_at_ctx(reg, m, 2048) == base);
	assert_true(registry_footprint_at_ctx(reg, m, 4096) == base);
	assert_true(registry_footprint_at_ctx(reg, m, 16384) == base + 3 * kv);
	assert_true(registry_footprint_at_ctx(reg, m, 1 << 20) == base + 31 * kv);
	/* On top of a measured footprint too. */
	registry_observe_loaded(reg, "phi3:mini", 4000000000, 4000000000, 1);
	assert_true(registry_footprint_at_ctx(reg, m, 8192) == 4000000000 + kv);
	registry_free(reg);
}

static void
test_nvml_delta_without_ps(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.0);
	registry_begin_tags(reg);
	struct registry_model *m = registry_set_installed(reg, "qwen", 4 * GB, NULL, NULL, NULL, 0);
	registry_end_tags(reg);
	registry_record_load(reg, "qwen", 800, 5 * (int64_t)GB);
	assert_true(m->measured);
	assert_true(registry_footprint(m) == 5 * GB);
	registry_free(reg);
}

static void
test_name_normalisation(void **state)
{
	(void)state;
	char buf[128];
	assert_string_equal(registry_normalize_name("llama3.2", buf, sizeof(buf)),
			    "llama3.2:latest");
	assert_string_equal(registry_normalize_name("llama3.2:1b", buf, sizeof(buf)),
			    "llama3.2:1b");
	assert_string_equal(registry_normalize_name("host:5000/ns/model", buf, sizeof(buf)),
			    "host:5000/ns/model:latest");

	struct registry *reg = registry_new(1.3);
	registry_begin_tags(reg);
	struct registry_model *m =
	    registry_set_installed(reg, "llama3.2:latest", GB, NULL, NULL, NULL, 0);
	struct registry_model *small =
	    registry_set_installed(reg, "llama3.2:1b", GB / 2, NULL, NULL, NULL, 0);
	registry_end_tags(reg);
	assert_ptr_equal(registry_find(reg, "llama3.2"), m);
	assert_ptr_equal(registry_find(reg, "llama3.2:latest"), m);
	assert_ptr_equal(registry_find(reg, "llama3.2:1b"), small);
	assert_null(registry_find(reg, "llama3.2:3b"));
	assert_null(registry_find(reg, "mistral"));
	assert_string_equal(m->name, "llama3.2:latest"); /* display name kept */
	assert_int_equal(registry_count(reg), 2);

	/* /api/ps under the short name updates the same model. */
	registry_observe_loaded(reg, "llama3.2", GB, GB, 1);
	assert_true(m->loaded);
	assert_int_equal(registry_count(reg), 2);
	registry_touch(reg, "llama3.2", 42);
	assert_int_equal(m->last_used_ms, 42);
	registry_free(reg);
}

static void
test_load_stats(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	registry_record_load(reg, "m", 1000, -1);
	registry_record_load(reg, "m", 2000, -1);
	registry_record_load(reg, "m", 6000, -1);
	struct registry_model *m = registry_find(reg, "m:latest");
	assert_non_null(m);
	assert_false(m->installed); /* learnt of through a load, not /api/tags */
	assert_int_equal(m->load_count, 3);
	assert_int_equal(m->load_ms_last, 6000);
	assert_true(fabs(m->load_ms_mean - 3000.0) < 1e-9);
	assert_int_equal(m->nvml_delta_bytes, -1);
	assert_false(m->measured);
	registry_free(reg);
}

/* The automatic load timeout: 4x the file over the measured bandwidth, within bounds. */
static void
test_load_timeout(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	struct registry_model *small =
	    registry_set_installed(reg, "small", 1000 * 1000 * 1000, NULL, NULL, NULL, 0);
	struct registry_model *big =
	    registry_set_installed(reg, "big", 40ull * 1000 * 1000 * 1000, NULL, NULL, NULL, 0);
	/* Nothing measured: an assumed 100 MB/s; 4 x 10 s = 40 s, 4 x 400 s over the cap. */
	assert_true(registry_load_bandwidth(reg) == 0);
	assert_int_equal(registry_load_timeout_ms(reg, small), 40000);
	assert_int_equal(registry_load_timeout_ms(reg, big), REGISTRY_LOAD_TIMEOUT_CAP_MS);
	assert_int_equal(registry_load_timeout_ms(reg, NULL), REGISTRY_LOAD_TIMEOUT_CAP_MS);
	/* 1 GB in 500 ms and 1 GB in 1500 ms: 2 GB in 2 s = 1 GB/s. */
	registry_record_load(reg, "small", 500, -1);
	registry_record_load(reg, "small", 1500, -1);
	assert_true(fabs(registry_load_bandwidth(reg) - 1e9) < 1);
	assert_int_equal(registry_load_timeout_ms(reg, small), REGISTRY_LOAD_TIMEOUT_FLOOR_MS);
	assert_int_equal(registry_load_timeout_ms(reg, big), 160000);
	/* A slow load weighs in: 40 GB in 198 s makes 42 GB in 200 s = 210 MB/s. */
	registry_record_load(reg, "big", 198000, -1);
	assert_int_equal(registry_load_timeout_ms(reg, big), REGISTRY_LOAD_TIMEOUT_CAP_MS);
	assert_int_equal(registry_load_timeout_ms(reg, small), REGISTRY_LOAD_TIMEOUT_FLOOR_MS);
	registry_free(reg);
}

static void
test_removal_and_ps_listing(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	registry_begin_tags(reg);
	struct registry_model *a = registry_set_installed(reg, "a", GB, NULL, NULL, NULL, 0);
	struct registry_model *b = registry_set_installed(reg, "b", GB, NULL, NULL, NULL, 0);
	assert_int_equal(registry_end_tags(reg), 0);

	registry_begin_tags(reg);
	registry_set_installed(reg, "a", GB, NULL, NULL, NULL, 0);
	assert_int_equal(registry_end_tags(reg), 1);
	assert_true(a->installed);
	assert_false(b->installed);
	assert_ptr_equal(registry_find(reg, "b"), b); /* pointer stays valid */

	json_t *all = registry_to_json(reg, false);
	json_t *inst = registry_to_json(reg, true);
	assert_int_equal(json_array_size(json_object_get(all, "models")), 2);
	assert_int_equal(json_array_size(json_object_get(inst, "models")), 1);
	json_decref(all);
	json_decref(inst);

	/* A model comes back. */
	registry_begin_tags(reg);
	registry_set_installed(reg, "a", GB, NULL, NULL, NULL, 0);
	registry_set_installed(reg, "b:latest", 2 * GB, NULL, NULL, NULL, 0);
	assert_int_equal(registry_end_tags(reg), 0);
	assert_true(b->installed);
	assert_true(b->file_bytes == 2 * GB);

	/* /api/ps listings: models not listed any more are unloaded. */
	registry_begin_ps(reg);
	registry_observe_loaded(reg, "a", GB, GB, 10);
	registry_observe_loaded(reg, "b", GB, GB, 10);
	registry_end_ps(reg);
	assert_true(a->loaded && b->loaded);
	registry_begin_ps(reg);
	registry_observe_loaded(reg, "b", GB, GB, 20);
	registry_end_ps(reg);
	assert_false(a->loaded);
	assert_true(b->loaded);
	registry_free(reg);
}

static void
test_capabilities_and_json(void **state)
{
	(void)state;
	struct registry *reg = registry_new(1.3);
	registry_begin_tags(reg);
	struct registry_model *emb =
	    registry_set_installed(reg, "nomic-embed-text", GB / 4, "nomic-bert", "137M", "F16",
				   registry_cap_from_name("embedding"));
	struct registry_model *llava = registry_set_installed(
	    reg, "llava", 4 * GB, NULL, NULL, NULL,
	    registry_cap_from_name("completion") | registry_cap_from_name("vision"));
	struct registry_model *unknown =
	    registry_set_installed(reg, "mystery", GB, NULL, NULL, NULL, 0);
	registry_end_tags(reg);

	assert_int_equal(registry_cap_from_name("nonsense"), 0);
	assert_true(registry_supports_kind(emb, JOB_KIND_EMBED));
	assert_false(registry_supports_kind(emb, JOB_KIND_GENERATE));
	assert_false(registry_supports_kind(emb, JOB_KIND_CHAT));
	assert_int_equal(registry_default_kind(emb), JOB_KIND_EMBED);
	assert_true(registry_supports_kind(llava, JOB_KIND_CHAT));
	assert_false(registry_supports_kind(llava, JOB_KIND_EMBED));
	assert_int_equal(registry_default_kind(llava), JOB_KIND_GENERATE);
	assert_true(registry_supports_kind(unknown, JOB_KIND_EMBED)); /* unknown: allow */

	/* caps 0 on a later refresh keeps what was known; set_caps replaces. */
	registry_begin_tags(reg);
	registry_set_installed(reg, "llava", 4 * GB, NULL, NULL, NULL, 0);
	registry_end_tags(reg);
	assert_true(llava->caps & REGISTRY_CAP_VISION);
	registry_set_caps(reg, "mystery", REGISTRY_CAP_COMPLETION);
	assert_false(registry_supports_kind(unknown, JOB_KIND_EMBED));

	json_t *j = registry_model_to_json(llava);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "llava");
	json_t *caps = json_object_get(j, "capabilities");
	assert_int_equal(json_array_size(caps), 2);
	assert_string_equal(json_string_value(json_array_get(caps, 1)), "vision");
	assert_true(json_is_null(json_object_get(j, "measured_bytes")));
	assert_int_equal(json_integer_value(json_object_get(j, "footprint_bytes")),
			 (json_int_t)llava->estimate_bytes);
	assert_true(json_is_false(json_object_get(j, "loaded")));
	assert_true(json_is_null(json_object_get(j, "placement")));
	assert_string_equal(json_string_value(json_object_get(j, "footprint_source")), "estimate");
	json_decref(j);

	/* Many models: the table grows and every one is still found. */
	char name[32];
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "model-%d", i);
		registry_set_installed(reg, name, (uint64_t)i * VD_MIB, NULL, NULL, NULL, 0);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "model-%d:latest", i);
		struct registry_model *m = registry_find(reg, name);
		assert_non_null(m);
		assert_true(m->file_bytes == (uint64_t)i * VD_MIB);
	}
	assert_ptr_equal(registry_find(reg, "llava"), llava);
	registry_free(reg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_estimate_then_learning),
	    cmocka_unit_test(test_estimate_includes_kv_cache),
	    cmocka_unit_test(test_nvml_delta_without_ps),
	    cmocka_unit_test(test_runner_overhead),
	    cmocka_unit_test(test_name_normalisation),
	    cmocka_unit_test(test_load_stats),
	    cmocka_unit_test(test_load_timeout),
	    cmocka_unit_test(test_footprint_at_ctx),
	    cmocka_unit_test(test_removal_and_ps_listing),
	    cmocka_unit_test(test_capabilities_and_json),
	};
	vd_log_set_level(VD_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
