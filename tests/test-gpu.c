/*
 * test-gpu.c: the GPU monitor of src/gpu/gpu.c: the history ring, the temperature trend,
 * the device filter, and whole monitors on a real event loop: NVML through the
 * simulated library (filter, memory used by others, a lost GPU and its return), the
 * nvidia-smi provider end to end through build/sim-bin/nvidia-smi (exit codes 9 and
 * 15), a hung nvidia-smi killed at the timeout, and no provider at all.
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
#include <sys/stat.h>

#include <event2/event.h>

#define FULL_LIB BUILD_DIR "/nvml/libnvidia-ml.so.1"
#define SIM_SMI	 BUILD_DIR "/sim-bin/nvidia-smi"

static void
test_ring_buffer(void **state)
{
	(void)state;
	struct gpu_history_point ring[3];
	struct gpu_device dev = {.ring = ring, .ring_len = 3};
	for (int i = 0; i < 5; i++) {
		struct gpu_history_point p = {.mono_ms = i, .temperature_c = 40 + i};
		gpu_ring_push(ring, 3, &dev.ring_head, &dev.ring_count, &p);
		assert_int_equal(gpu_device_history_count(&dev), i < 3 ? i + 1 : 3);
	}
	/* Oldest first: the last three pushed. */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(gpu_device_history_at(&dev, i)->temperature_c, 42 + (int)i);
	assert_null(gpu_device_history_at(&dev, 3));
}

static void
fill_ramp(struct gpu_history_point *pts, size_t n, int start_c, double step_c, int64_t step_ms)
{
	for (size_t i = 0; i < n; i++)
		pts[i] = (struct gpu_history_point){
		    .mono_ms = 1000000 + (int64_t)i * step_ms,
		    .valid = GPU_HAS_TEMPERATURE,
		    .temperature_c = start_c + (int32_t)(step_c * (double)i),
		};
}

static void
test_temperature_trend(void **state)
{
	(void)state;
	struct gpu_history_point pts[61];
	struct gpu_temp_trend t;
	int64_t now = 1000000 + 60 * 1000;

	fill_ramp(pts, 61, 50, 0.25, 1000); /* +15 C over a minute */
	gpu_temp_trend_compute(pts, 61, now, 5 * 60 * 1000, &t);
	assert_int_equal(t.nsamples, 61);
	assert_int_equal(t.min_c, 50);
	assert_int_equal(t.max_c, 65);
	assert_true(t.avg_c > 56 && t.avg_c < 58);
	assert_int_equal(t.direction, GPU_TREND_RISING);
	assert_true(t.slope_c_per_min > 14 && t.slope_c_per_min < 16);

	fill_ramp(pts, 61, 80, -0.25, 1000);
	gpu_temp_trend_compute(pts, 61, now, 5 * 60 * 1000, &t);
	assert_int_equal(t.direction, GPU_TREND_FALLING);

	fill_ramp(pts, 61, 70, 0.0, 1000);
	pts[30].temperature_c = 71; /* noise */
	gpu_temp_trend_compute(pts, 61, now, 5 * 60 * 1000, &t);
	assert_int_equal(t.direction, GPU_TREND_STABLE);

	/* The window: only the last 10 s, which are flat after a rise. */
	fill_ramp(pts, 61, 50, 0.25, 1000);
	for (size_t i = 50; i < 61; i++)
		pts[i].temperature_c = 62;
	gpu_temp_trend_compute(pts, 61, now, 10 * 1000, &t);
	assert_int_equal(t.nsamples, 11);
	assert_int_equal(t.direction, GPU_TREND_STABLE);
	assert_int_equal(t.min_c, 62);

	/* Unknown temperatures are not zeros. */
	for (size_t i = 0; i < 61; i++)
		pts[i].valid = 0;
	gpu_temp_trend_compute(pts, 61, now, 5 * 60 * 1000, &t);
	assert_int_equal(t.nsamples, 0);
}

static void
test_filter(void **state)
{
	(void)state;
	char *cause = NULL;
	const char *uuid = "GPU-817285e3-758e-25e4-3b80-d38475e31dd6";
	assert_int_equal(gpu_filter_validate(NULL, NULL), 0);
	assert_int_equal(gpu_filter_validate("0,1", NULL), 0);
	assert_int_equal(gpu_filter_validate(" 0 , GPU-8172", NULL), 0);
	assert_int_equal(gpu_filter_validate("-1", NULL), 0);
	assert_int_equal(gpu_filter_validate("zero", &cause), -EINVAL);
	assert_non_null(strstr(cause, "zero"));
	vd_free(cause);
	assert_int_equal(gpu_filter_validate("0,,1", NULL), -EINVAL);

	assert_true(gpu_filter_match(NULL, 3, uuid));
	assert_true(gpu_filter_match("all", 3, uuid));
	assert_true(gpu_filter_match("0,1", 1, uuid));
	assert_false(gpu_filter_match("0,1", 2, uuid));
	assert_false(gpu_filter_match("10", 1, uuid));
	assert_true(gpu_filter_match("GPU-8172", 7, uuid));
	assert_true(gpu_filter_match("3, GPU-817285e3-758e-25e4-3b80-d38475e31dd6", 7, uuid));
	assert_false(gpu_filter_match("GPU-9999", 0, uuid));
	assert_false(gpu_filter_match("-1", 0, uuid));

	enum gpu_provider_pref p;
	assert_int_equal(gpu_provider_pref_parse("nvidia-smi", &p, NULL), 0);
	assert_int_equal(p, GPU_PROVIDER_SMI);
	assert_int_equal(gpu_provider_pref_parse("cuda", &p, NULL), -EINVAL);
	assert_true(gpu_process_is_ollama("/usr/bin/ollama"));
	assert_true(gpu_process_is_ollama("llama-server"));
	assert_false(gpu_process_is_ollama("python3"));
}

/* --- whole monitors ------------------------------------------------------------------- */

struct loop {
	struct event_base *base;
	int samples;
};

static void
on_sample_cb(struct gpu_monitor *mon, void *arg)
{
	struct loop *l = arg;
	(void)mon;
	l->samples++;
	event_base_loopbreak(l->base);
}

/* Generous, so a loaded machine never fails the end-to-end tests; the timeout test sets
 * a short one. */
static int64_t smi_timeout_ms = 5000;

static struct gpu_monitor *
new_monitor(struct loop *l, enum gpu_provider_pref pref, const char *lib, const char *smi,
	    const char *filter)
{
	struct gpu_options o = {
	    .provider = pref,
	    .nvml_lib = lib,
	    .smi_path = smi,
	    .device_filter = filter,
	    .interval_ms = 3600 * 1000, /* samples only when the test asks */
	    .history_len = 4,
	    .smi_timeout_ms = smi_timeout_ms,
	    .on_sample = on_sample_cb,
	    .on_sample_arg = l,
	};
	char *cause = NULL;
	struct gpu_monitor *mon = gpu_monitor_new(l->base, &o, &cause);
	assert_non_null(mon);
	return mon;
}

/* Takes one sample and runs the loop until it completes (bounded by a 10 s timer). */
static void
sample_and_wait(struct loop *l, struct gpu_monitor *mon)
{
	int before = l->samples;
	gpu_monitor_sample_now(mon);
	int64_t deadline = vd_now_mono_ms() + 10000;
	while (l->samples == before && vd_now_mono_ms() < deadline) {
		struct timeval tv = {0, 100000};
		event_base_loopexit(l->base, &tv);
		event_base_dispatch(l->base);
	}
	assert_int_equal(l->samples, before + 1);
}

static void
test_monitor_nvml(void **state)
{
	(void)state;
	struct test_state st;
	struct loop l = {.base = event_base_new()};
	assert_int_equal(test_state_create(&st, 3), 0);
	struct gpu_monitor *mon = new_monitor(&l, GPU_PROVIDER_AUTO, FULL_LIB, NULL, "0,2");
	assert_string_equal(gpu_monitor_source(mon), "nvml");
	assert_null(gpu_monitor_reason(mon));
	sample_and_wait(&l, mon);

	assert_int_equal(gpu_monitor_count(mon), 2);
	const struct gpu_device *d = gpu_monitor_device(mon, 1);
	assert_int_equal(d->index, 2);
	assert_string_equal(d->uuid, st.shm->gpus[2].uuid);
	assert_null(gpu_monitor_find(mon, 1));
	assert_ptr_equal(gpu_monitor_find_uuid(mon, st.shm->gpus[2].uuid), d);
	assert_int_equal(d->state, GPU_DEVICE_AVAILABLE);
	uint64_t others;
	assert_true(gpu_device_used_by_others(d, &others));
	assert_true(others == st.shm->gpus[2].used_by_others_bytes);
	assert_true(gpu_monitor_host(mon)->valid);

	/* A lost GPU becomes LOST, keeps its last reading, and comes back. */
	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 1;
	st.shm->gpus[2].temperature_c = 77;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	const struct gpu_device *d0 = gpu_monitor_find(mon, 0);
	assert_int_equal(d0->state, GPU_DEVICE_LOST);
	assert_true(d0->has_sample);
	assert_int_equal(gpu_monitor_find(mon, 2)->latest.temperature_c, 77);
	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 0;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	assert_int_equal(d0->state, GPU_DEVICE_AVAILABLE);

	/* The ring keeps history_len points. */
	sample_and_wait(&l, mon);
	sample_and_wait(&l, mon);
	assert_int_equal(gpu_device_history_count(d), 4);
	assert_int_equal(gpu_device_history_at(d, 3)->temperature_c, 77);
	assert_int_equal(gpu_monitor_sample_count(mon), 5);
	assert_int_equal(gpu_monitor_reading_count(mon), 5);

	/* GPU_HISTORY_LENGTH changed at run time: shrinking keeps the newest points in order,
	 * growing keeps them all and fills from there. */
	sim_shm_write_begin(st.shm);
	st.shm->gpus[2].temperature_c = 78;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	gpu_monitor_set_history_len(mon, 2);
	assert_int_equal(gpu_monitor_history_len(mon), 2);
	assert_int_equal(gpu_device_history_count(d), 2);
	assert_int_equal(gpu_device_history_at(d, 0)->temperature_c, 77);
	assert_int_equal(gpu_device_history_at(d, 1)->temperature_c, 78);
	gpu_monitor_set_history_len(mon, 6);
	sim_shm_write_begin(st.shm);
	st.shm->gpus[2].temperature_c = 79;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	assert_int_equal(gpu_device_history_count(d), 3);
	assert_int_equal(gpu_device_history_at(d, 0)->temperature_c, 77);
	assert_int_equal(gpu_device_history_at(d, 2)->temperature_c, 79);
	for (int i = 0; i < 4; i++)
		sample_and_wait(&l, mon);
	assert_int_equal(gpu_device_history_count(d), 6);
	assert_int_equal(gpu_device_history_at(d, 5)->temperature_c, 79);
	assert_int_equal(gpu_device_history_at(d, 0)->temperature_c, 78);

	gpu_monitor_stop(mon);
	assert_false(gpu_monitor_is_running(mon));
	gpu_monitor_start(mon);
	assert_true(gpu_monitor_is_running(mon));
	gpu_monitor_free(mon);
	event_base_free(l.base);
	test_state_destroy(&st);
}

static void
test_monitor_smi_end_to_end(void **state)
{
	(void)state;
	struct test_state st;
	struct loop l = {.base = event_base_new()};
	assert_int_equal(test_state_create(&st, 2), 0);
	/* AUTO falls back to nvidia-smi when NVML cannot be loaded. */
	struct gpu_monitor *mon =
	    new_monitor(&l, GPU_PROVIDER_AUTO, "/nonexistent/libnvidia-ml.so.1", SIM_SMI, NULL);
	assert_string_equal(gpu_monitor_source(mon), "nvidia-smi");
	sample_and_wait(&l, mon);
	assert_null(gpu_monitor_reason(mon));
	assert_int_equal(gpu_monitor_count(mon), 2);
	for (unsigned i = 0; i < 2; i++) {
		const struct gpu_device *d = gpu_monitor_device(mon, i);
		const struct sim_shm_gpu *g = &st.shm->gpus[i];
		const struct gpu_sample *s = &d->latest;
		assert_string_equal(d->uuid, g->uuid);
		assert_string_equal(d->name, g->name);
		assert_string_equal(d->bus_id, g->pci_bus_id);
		assert_true(s->mem_total_bytes == g->total_bytes);
		assert_true(s->mem_used_bytes == g->used_by_models_bytes + g->used_by_others_bytes);
		assert_true(s->mem_reserved_bytes == g->reserved_bytes);
		assert_int_equal(s->temperature_c, g->temperature_c);
		assert_int_equal(s->power_draw_mw, g->power_mw);
		assert_int_equal(s->fan_pct, g->fan_pct);
		assert_true(s->clock_event_reasons == g->clock_event_reasons);
		assert_int_equal(s->nprocesses, 2);
		uint64_t others;
		assert_true(gpu_device_used_by_others(d, &others));
		assert_true(others == g->used_by_others_bytes);
	}

	/* Exit 15: the healthy GPU keeps reporting, the lost one is LOST. */
	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 1;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	assert_int_equal(gpu_monitor_device(mon, 0)->state, GPU_DEVICE_LOST);
	assert_int_equal(gpu_monitor_device(mon, 1)->state, GPU_DEVICE_AVAILABLE);
	assert_non_null(strstr(gpu_monitor_reason(mon), "15"));

	/* Exit 9: no driver; every GPU becomes unavailable and the reason says why. */
	unsetenv("OLLAMA_SIM_STATE");
	sample_and_wait(&l, mon);
	assert_non_null(strstr(gpu_monitor_reason(mon), "exited with 9"));
	assert_int_equal(gpu_monitor_device(mon, 1)->state, GPU_DEVICE_LOST);

	/* And back. */
	setenv("OLLAMA_SIM_STATE", st.path, 1);
	sim_shm_write_begin(st.shm);
	st.shm->gpus[0].lost = 0;
	sim_shm_write_end(st.shm);
	sample_and_wait(&l, mon);
	assert_null(gpu_monitor_reason(mon));
	assert_int_equal(gpu_monitor_device(mon, 0)->state, GPU_DEVICE_AVAILABLE);

	gpu_monitor_free(mon);
	event_base_free(l.base);
	test_state_destroy(&st);
}

static void
test_monitor_smi_timeout(void **state)
{
	(void)state;
	char path[] = "/tmp/vramd-hung-smi-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char script[] = "#!/bin/sh\nexec sleep 30\n";
	assert_int_equal(write(fd, script, sizeof(script) - 1), (ssize_t)sizeof(script) - 1);
	close(fd);
	chmod(path, 0700);

	struct loop l = {.base = event_base_new()};
	smi_timeout_ms = 300;
	struct gpu_monitor *mon = new_monitor(&l, GPU_PROVIDER_SMI, NULL, path, NULL);
	smi_timeout_ms = 5000;
	assert_string_equal(gpu_monitor_source(mon), "nvidia-smi");
	int64_t start = vd_now_mono_ms();
	sample_and_wait(&l, mon);
	int64_t took = vd_now_mono_ms() - start;
	assert_non_null(strstr(gpu_monitor_reason(mon), "did not answer within 300 ms"));
	assert_true(took >= 250 && took < 5000);
	assert_int_equal(gpu_monitor_count(mon), 0);
	/* A sample completed, but it says nothing about memory. */
	assert_int_equal(gpu_monitor_sample_count(mon), 1);
	assert_int_equal(gpu_monitor_reading_count(mon), 0);
	gpu_monitor_free(mon);
	event_base_free(l.base);
	unlink(path);
}

static void
test_monitor_without_provider(void **state)
{
	(void)state;
	struct loop l = {.base = event_base_new()};
	struct gpu_monitor *mon =
	    new_monitor(&l, GPU_PROVIDER_NVML, "/nonexistent/libnvidia-ml.so.1", NULL, NULL);
	assert_string_equal(gpu_monitor_source(mon), "none");
	assert_non_null(strstr(gpu_monitor_reason(mon), "NVML library not found"));
	sample_and_wait(&l, mon);
	assert_int_equal(gpu_monitor_count(mon), 0);
	assert_true(gpu_monitor_host(mon)->valid);
	gpu_monitor_free(mon);

	mon = new_monitor(&l, GPU_PROVIDER_SMI, NULL, "/nonexistent/nvidia-smi", NULL);
	assert_string_equal(gpu_monitor_source(mon), "none");
	assert_non_null(strstr(gpu_monitor_reason(mon), "not found"));
	gpu_monitor_free(mon);

	char *cause = NULL;
	struct gpu_options bad = {.device_filter = "first"};
	assert_null(gpu_monitor_new(l.base, &bad, &cause));
	assert_non_null(strstr(cause, "first"));
	free(cause);
	event_base_free(l.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_buffer),
	    cmocka_unit_test(test_temperature_trend),
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_monitor_nvml),
	    cmocka_unit_test(test_monitor_smi_end_to_end),
	    cmocka_unit_test(test_monitor_smi_timeout),
	    cmocka_unit_test(test_monitor_without_provider),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
