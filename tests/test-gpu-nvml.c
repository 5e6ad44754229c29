/*
 * test-gpu-nvml.c: src/gpu/gpu-nvml.c against the simulated NVML (build/nvml and
 * build/nvml-minimal libnvidia-ml.so.1) reading a state file this test writes: every
 * field as written, v1 and v2 memory semantics, NOT_SUPPORTED fields unknown and not
 * asked again, a lost GPU and its return, the process list protocol, the minimal
 * library, no state file and no library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu-sim-state.h"
#include "gpu.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FULL_LIB    BUILD_DIR "/nvml/libnvidia-ml.so.1"
#define MINIMAL_LIB BUILD_DIR "/nvml-minimal/libnvidia-ml.so.1"

static struct gpu_reading readings[GPU_MAX_DEVICES];

static void
check_gpu_matches(const struct gpu_reading *r, const struct sim_shm_gpu *g, unsigned index)
{
	const struct gpu_sample *s = &r->sample;
	assert_false(r->lost);
	assert_int_equal(r->index, index);
	assert_string_equal(r->name, g->name);
	assert_string_equal(r->uuid, g->uuid);
	assert_string_equal(r->bus_id, g->pci_bus_id);
	/* v2: used excludes reserved; total = reserved + used + free. */
	assert_true(s->valid & GPU_HAS_MEM_RESERVED);
	assert_true(s->mem_total_bytes == g->total_bytes);
	assert_true(s->mem_reserved_bytes == g->reserved_bytes);
	assert_true(s->mem_used_bytes == g->used_by_models_bytes + g->used_by_others_bytes);
	assert_true(s->mem_free_bytes == g->total_bytes - g->reserved_bytes - s->mem_used_bytes);
	assert_int_equal(s->util_gpu_pct, g->util_gpu_pct);
	assert_int_equal(s->util_mem_pct, g->util_mem_pct);
	assert_int_equal(s->temperature_c, g->temperature_c);
	assert_int_equal(s->slowdown_c, g->slowdown_c);
	assert_int_equal(s->shutdown_c, g->shutdown_c);
	assert_int_equal(s->gpu_max_c, g->gpu_max_c);
	assert_int_equal(s->margin_c, (int)g->slowdown_c - (int)g->temperature_c);
	assert_int_equal(s->power_draw_mw, g->power_mw);
	assert_int_equal(s->power_limit_mw, g->power_limit_mw);
	assert_int_equal(s->fan_pct, g->fan_pct);
	assert_int_equal(s->sm_clock_mhz, g->sm_clock_mhz);
	assert_true(s->clock_event_reasons == g->clock_event_reasons);
	assert_true(s->valid & GPU_HAS_PROCESSES);
	assert_int_equal(s->nprocesses, g->nprocs);
	for (size_t i = 0; i < s->nprocesses; i++) {
		assert_int_equal(s->processes[i].pid, g->procs[i].pid);
		assert_true(s->processes[i].used_known);
		assert_true(s->processes[i].used_bytes == g->procs[i].used_bytes);
		assert_string_equal(s->processes[i].name, g->procs[i].name);
	}
}

static void
test_full_library_reports_every_field(void **state)
{
	(void)state;
	struct test_state st;
	struct gpu_nvml *nv;
	char *cause = NULL;
	assert_int_equal(test_state_create(&st, 2), 0);
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), 0);
	assert_true(gpu_nvml_has_memory_v2(nv));
	assert_string_equal(gpu_nvml_driver_version(nv), "555.42.06-sim");
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	check_gpu_matches(&readings[0], &st.shm->gpus[0], 0);
	check_gpu_matches(&readings[1], &st.shm->gpus[1], 1);
	assert_true(readings[0].sample.processes[0].is_ollama);
	assert_false(readings[0].sample.processes[1].is_ollama);

	/* Values are live: a change in the file shows at the next read. */
	sim_shm_write_begin(st.shm);
	st.shm->gpus[1].temperature_c = 83;
	st.shm->gpus[1].used_by_others_bytes = 5ull << 30;
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	check_gpu_matches(&readings[1], &st.shm->gpus[1], 1);
	assert_int_equal(readings[1].sample.temperature_c, 83);

	gpu_nvml_close(nv);
	test_state_destroy(&st);
}

static void
test_unsupported_fields_are_unknown_and_not_asked_again(void **state)
{
	(void)state;
	struct test_state st;
	struct gpu_nvml *nv;
	char *cause = NULL;
	assert_int_equal(test_state_create(&st, 2), 0);
	sim_shm_write_begin(st.shm);
	st.shm->gpus[1].unsupported = SIM_FIELD_FAN | SIM_FIELD_POWER | SIM_FIELD_THRESHOLDS |
				      SIM_FIELD_CLOCK_EVENTS | SIM_FIELD_PROCESSES |
				      SIM_FIELD_MEMORY_V2;
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), 0);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	const struct gpu_sample *s = &readings[1].sample;
	uint32_t unknown = GPU_HAS_FAN | GPU_HAS_POWER_DRAW | GPU_HAS_POWER_LIMIT |
			   GPU_HAS_SLOWDOWN | GPU_HAS_SHUTDOWN | GPU_HAS_GPU_MAX |
			   GPU_HAS_CLOCK_EVENTS | GPU_HAS_PROCESSES | GPU_HAS_MEM_RESERVED;
	assert_int_equal(s->valid & unknown, 0);
	/* Unknown is not zero-valued data: values stay 0 but the bits say "unknown". */
	assert_true(s->valid & GPU_HAS_TEMPERATURE);
	/* Without v2, memory falls back to v1: used includes reserved. */
	const struct sim_shm_gpu *g = &st.shm->gpus[1];
	assert_true(s->valid & GPU_HAS_MEM_USED);
	assert_true(s->mem_used_bytes ==
		    g->reserved_bytes + g->used_by_models_bytes + g->used_by_others_bytes);
	assert_true(s->mem_free_bytes == g->total_bytes - s->mem_used_bytes);
	/* GPU 0 is unaffected. */
	check_gpu_matches(&readings[0], &st.shm->gpus[0], 0);

	/* Once NOT_SUPPORTED, a field is not asked again, even if the card would answer. */
	sim_shm_write_begin(st.shm);
	st.shm->gpus[1].unsupported = 0;
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	assert_int_equal(readings[1].sample.valid & unknown, 0);

	gpu_nvml_close(nv);
	test_state_destroy(&st);
}

static void
test_lost_gpu_and_its_return(void **state)
{
	(void)state;
	struct test_state st;
	struct gpu_nvml *nv;
	char *cause = NULL;
	assert_int_equal(test_state_create(&st, 2), 0);
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), 0);

	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 1;
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	assert_true(readings[0].lost);
	assert_int_equal(readings[0].index, 0);
	assert_int_equal(readings[0].sample.valid, 0);
	check_gpu_matches(&readings[1], &st.shm->gpus[1], 1);

	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 0;
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 2);
	check_gpu_matches(&readings[0], &st.shm->gpus[0], 0);

	gpu_nvml_close(nv);
	test_state_destroy(&st);
}

static void
test_many_processes_grow_the_buffer(void **state)
{
	(void)state;
	struct test_state st;
	struct gpu_nvml *nv;
	char *cause = NULL;
	assert_int_equal(test_state_create(&st, 1), 0);
	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].nprocs = 20;
	for (unsigned i = 0; i < 20; i++) {
		st.shm->gpus[0].procs[i] =
		    (struct sim_shm_proc){.pid = 100 + i, .used_bytes = (i + 1) * VD_MIB};
		snprintf(st.shm->gpus[0].procs[i].name, sizeof(st.shm->gpus[0].procs[i].name),
			 i % 2 ? "llama-server" : "blender");
	}
	sim_shm_write_end(st.shm);
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), 0);
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 1);
	check_gpu_matches(&readings[0], &st.shm->gpus[0], 0);
	for (unsigned i = 0; i < 20; i++)
		assert_int_equal(readings[0].sample.processes[i].is_ollama, i % 2 == 1);
	gpu_nvml_close(nv);
	test_state_destroy(&st);
}

static void
test_minimal_library_needs_only_required_symbols(void **state)
{
	(void)state;
	struct test_state st;
	struct gpu_nvml *nv;
	char *cause = NULL;
	assert_int_equal(test_state_create(&st, 1), 0);
	assert_int_equal(gpu_nvml_open(MINIMAL_LIB, &nv, &cause), 0);
	assert_false(gpu_nvml_has_memory_v2(nv));
	assert_string_equal(gpu_nvml_driver_version(nv), "");
	assert_int_equal(gpu_nvml_read(nv, readings, GPU_MAX_DEVICES, &cause), 1);
	const struct gpu_sample *s = &readings[0].sample;
	const struct sim_shm_gpu *g = &st.shm->gpus[0];
	assert_false(readings[0].lost);
	assert_int_equal(s->valid, GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE);
	assert_true(s->mem_total_bytes == g->total_bytes);
	assert_true(s->mem_used_bytes ==
		    g->reserved_bytes + g->used_by_models_bytes + g->used_by_others_bytes);
	assert_true(s->mem_used_bytes + s->mem_free_bytes == g->total_bytes);
	assert_string_equal(readings[0].name, "");
	gpu_nvml_close(nv);
	test_state_destroy(&st);
}

static void
test_no_state_file_is_driver_not_loaded(void **state)
{
	(void)state;
	struct gpu_nvml *nv = NULL;
	char *cause = NULL;
	unsetenv("OLLAMA_SIM_STATE");
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), -ENODEV);
	assert_null(nv);
	assert_non_null(strstr(cause, "Driver Not Loaded"));
	vd_free(cause);

	/* A file that is not a state file is no driver either. */
	setenv("OLLAMA_SIM_STATE", SOURCE_DIR "/CMakeLists.txt", 1);
	assert_int_equal(gpu_nvml_open(FULL_LIB, &nv, &cause), -ENODEV);
	vd_free(cause);
	unsetenv("OLLAMA_SIM_STATE");
}

static void
test_no_library_is_a_clear_reason(void **state)
{
	(void)state;
	struct gpu_nvml *nv = NULL;
	char *cause = NULL;
	assert_int_equal(gpu_nvml_open("/nonexistent/libnvidia-ml.so.1", &nv, &cause), -ENOENT);
	assert_null(nv);
	assert_non_null(strstr(cause, "NVML library not found"));
	assert_non_null(strstr(cause, "/nonexistent/libnvidia-ml.so.1"));
	vd_free(cause);

	/* A library that is not NVML lacks the required entry points. */
	assert_int_equal(gpu_nvml_open("libm.so.6", &nv, &cause), -ENOSYS);
	assert_non_null(strstr(cause, "required entry point"));
	vd_free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_library_reports_every_field),
	    cmocka_unit_test(test_unsupported_fields_are_unknown_and_not_asked_again),
	    cmocka_unit_test(test_lost_gpu_and_its_return),
	    cmocka_unit_test(test_many_processes_grow_the_buffer),
	    cmocka_unit_test(test_minimal_library_needs_only_required_symbols),
	    cmocka_unit_test(test_no_state_file_is_driver_not_loaded),
	    cmocka_unit_test(test_no_library_is_a_clear_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
