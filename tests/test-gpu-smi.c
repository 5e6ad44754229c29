/*
 * test-gpu-smi.c: the nvidia-smi CSV parsers of src/gpu/gpu-smi.c and the /proc/meminfo
 * parser of src/gpu/gpu-host.c on recorded outputs in tests/data/nvidia-smi: [N/A],
 * [Not Supported] and [Unknown Error] fields, names with commas, CRLF, empty and
 * unsupported process lists, garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gpu_reading readings[8];
static struct gpu_smi_app apps[16];

static char *
read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/nvidia-smi/%s", TEST_DATA_DIR, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = xmalloc(1 << 16);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static size_t
parse_gpus_file(const char *name, size_t *bad)
{
	size_t len;
	char *text = read_data(name, &len);
	size_t n = gpu_smi_parse_gpus(text, len, readings, VD_ARRAY_LEN(readings), bad);
	free(text);
	return n;
}

static void
test_two_gpus(void **state)
{
	(void)state;
	size_t bad;
	assert_int_equal(parse_gpus_file("gpus-two.txt", &bad), 2);
	assert_int_equal(bad, 0);
	const struct gpu_reading *r = &readings[1];
	const struct gpu_sample *s = &r->sample;
	assert_int_equal(r->index, 1);
	assert_string_equal(r->name, "NVIDIA GeForce RTX 3090");
	assert_string_equal(r->uuid, "GPU-817285e3-758e-25e4-3b80-d38475e31dd6");
	assert_string_equal(r->bus_id, "00000000:02:00.0");
	assert_true(s->mem_total_bytes == 24576 * VD_MIB);
	assert_true(s->mem_used_bytes == 1 * VD_MIB);
	assert_true(s->mem_free_bytes == 24251 * VD_MIB);
	assert_true(s->mem_reserved_bytes == 323 * VD_MIB);
	assert_int_equal(s->util_gpu_pct, 0);
	assert_int_equal(s->temperature_c, 39);
	assert_int_equal(s->power_draw_mw, 42410);
	assert_int_equal(s->power_limit_mw, 420000);
	assert_int_equal(s->fan_pct, 30);
	assert_int_equal(s->sm_clock_mhz, 210);
	assert_true(s->clock_event_reasons == GPU_CLOCK_EVENT_IDLE);
	uint32_t all = GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE |
		       GPU_HAS_MEM_RESERVED | GPU_HAS_UTIL_GPU | GPU_HAS_UTIL_MEM |
		       GPU_HAS_TEMPERATURE | GPU_HAS_POWER_DRAW | GPU_HAS_POWER_LIMIT |
		       GPU_HAS_FAN | GPU_HAS_SM_CLOCK | GPU_HAS_CLOCK_EVENTS;
	assert_int_equal(s->valid, all);
	assert_int_equal(readings[0].sample.valid, all);
	assert_true(readings[0].sample.clock_event_reasons == GPU_CLOCK_EVENT_SW_POWER_CAP);
}

static void
test_bracketed_fields_are_unknown(void **state)
{
	(void)state;
	size_t bad;
	assert_int_equal(parse_gpus_file("gpus-missing.txt", &bad), 3);
	assert_int_equal(bad, 0);
	/* A100: only the fan is [N/A]. */
	assert_false(readings[0].sample.valid & GPU_HAS_FAN);
	assert_true(readings[0].sample.valid & GPU_HAS_POWER_DRAW);
	assert_int_equal(readings[0].sample.power_draw_mw, 61020);
	/* K80: [Not Supported] and [Unknown Error] are unknown, not zero. */
	const struct gpu_sample *k80 = &readings[1].sample;
	assert_int_equal(k80->valid, GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE |
					 GPU_HAS_TEMPERATURE);
	assert_true(k80->mem_used_bytes == 0);
	assert_int_equal(k80->temperature_c, 37);
	/* GB10 (unified memory): no memory at all. */
	const struct gpu_sample *gb10 = &readings[2].sample;
	assert_int_equal(gb10->valid & (GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE),
			 0);
	assert_true(gb10->valid & GPU_HAS_CLOCK_EVENTS);
	assert_true(gb10->clock_event_reasons == 0);
	assert_string_equal(readings[2].bus_id, "0000000F:01:00.0");
}

static void
test_name_with_commas_and_crlf(void **state)
{
	(void)state;
	size_t bad;
	assert_int_equal(parse_gpus_file("gpus-name-with-commas.txt", &bad), 1);
	assert_int_equal(bad, 0);
	assert_string_equal(readings[0].name, "NVIDIA RTX A6000, Lab, Rack 3");
	assert_string_equal(readings[0].uuid, "GPU-c0ffee00-0000-0000-0000-000000000004");
	assert_true(readings[0].sample.clock_event_reasons & GPU_CLOCK_EVENT_THERMAL_MASK);
	assert_int_equal(readings[0].sample.temperature_c, 86);
}

static void
test_garbage_is_skipped(void **state)
{
	(void)state;
	size_t bad;
	assert_int_equal(parse_gpus_file("gpus-garbage.txt", &bad), 1);
	assert_int_equal(bad, 4);
	const struct gpu_sample *s = &readings[0].sample;
	assert_int_equal(readings[0].index, 1);
	/* Negative, nan, out-of-range and malformed hex values are unknown. */
	assert_int_equal(s->valid & (GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_UTIL_GPU |
				     GPU_HAS_POWER_DRAW | GPU_HAS_CLOCK_EVENTS),
			 0);
	assert_true(s->valid & GPU_HAS_MEM_FREE);
	assert_true(s->valid & GPU_HAS_UTIL_MEM);

	/* Nothing at all, and a buffer with NUL bytes. */
	assert_int_equal(gpu_smi_parse_gpus("", 0, readings, 8, &bad), 0);
	assert_int_equal(gpu_smi_parse_gpus("0, a\0b, c", 10, readings, 8, &bad), 0);
	assert_int_equal(bad, 1);
}

static void
test_max_records(void **state)
{
	(void)state;
	size_t len, bad;
	char *text = read_data("gpus-two.txt", &len);
	assert_int_equal(gpu_smi_parse_gpus(text, len, readings, 1, &bad), 1);
	assert_int_equal(bad, 1);
	free(text);
}

static void
test_apps_and_join(void **state)
{
	(void)state;
	size_t len, bad;
	char *text = read_data("apps.txt", &len);
	size_t n = gpu_smi_parse_apps(text, len, apps, VD_ARRAY_LEN(apps), &bad);
	free(text);
	assert_int_equal(n, 3);
	assert_int_equal(bad, 0);
	assert_int_equal(apps[0].process.pid, 4000);
	assert_true(apps[0].process.used_bytes == 2048 * VD_MIB);
	assert_true(apps[0].process.is_ollama);
	assert_string_equal(apps[1].process.name, "python3 train.py, epoch=3");
	assert_false(apps[1].process.is_ollama);
	assert_false(apps[2].process.used_known);
	assert_true(apps[2].process.is_ollama);

	assert_int_equal(parse_gpus_file("gpus-two.txt", &bad), 2);
	gpu_smi_join_apps(readings, 2, apps, n);
	assert_true(readings[0].sample.valid & GPU_HAS_PROCESSES);
	assert_int_equal(readings[0].sample.nprocesses, 2);
	assert_int_equal(readings[1].sample.nprocesses, 1);
	assert_int_equal(readings[1].sample.processes[0].pid, 4339);
}

static void
test_empty_and_unsupported_process_lists(void **state)
{
	(void)state;
	size_t len, bad;
	char *text = read_data("apps-empty.txt", &len);
	size_t n = gpu_smi_parse_apps(text, len, apps, VD_ARRAY_LEN(apps), &bad);
	free(text);
	assert_int_equal(n, 0);
	assert_int_equal(parse_gpus_file("gpus-two.txt", &bad), 2);
	gpu_smi_join_apps(readings, 2, apps, n);
	/* Empty output after a successful query: known, and no processes. */
	assert_true(readings[0].sample.valid & GPU_HAS_PROCESSES);
	assert_int_equal(readings[0].sample.nprocesses, 0);

	text = read_data("apps-not-supported.txt", &len);
	n = gpu_smi_parse_apps(text, len, apps, VD_ARRAY_LEN(apps), &bad);
	free(text);
	assert_int_equal(n, 1);
	assert_int_equal(parse_gpus_file("gpus-two.txt", &bad), 2);
	gpu_smi_join_apps(readings, 2, apps, n);
	/* [Not Supported] is not "no processes". */
	assert_true(readings[0].sample.valid & GPU_HAS_PROCESSES);
	assert_false(readings[1].sample.valid & GPU_HAS_PROCESSES);
}

static void
test_meminfo(void **state)
{
	(void)state;
	size_t len;
	struct gpu_host_memory host;
	char *text = read_data("meminfo.txt", &len);
	assert_int_equal(gpu_host_parse_meminfo(text, len, &host), 0);
	free(text);
	assert_true(host.valid);
	assert_true(host.total_bytes == 65776672ull * 1024);
	assert_true(host.available_bytes == 48123456ull * 1024);

	const char *no_avail = "MemTotal:       65776672 kB\nMemFree: 1 kB\n";
	assert_int_equal(gpu_host_parse_meminfo(no_avail, strlen(no_avail), &host), -EINVAL);
	assert_false(host.valid);
	const char *bad = "MemTotal: lots\nMemAvailable: 5 kB\n";
	assert_int_equal(gpu_host_parse_meminfo(bad, strlen(bad), &host), -EINVAL);
	const char *huge = "MemTotal: 99999999999999999999999 kB\nMemAvailable: 5 kB\n";
	assert_int_equal(gpu_host_parse_meminfo(huge, strlen(huge), &host), -EINVAL);

	/* The real file parses on Linux. */
	assert_int_equal(gpu_host_read_meminfo(NULL, &host), 0);
	assert_true(host.total_bytes > 0 && host.available_bytes <= host.total_bytes);
	assert_true(gpu_host_read_meminfo("/nonexistent/meminfo", &host) < 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_gpus),
	    cmocka_unit_test(test_bracketed_fields_are_unknown),
	    cmocka_unit_test(test_name_with_commas_and_crlf),
	    cmocka_unit_test(test_garbage_is_skipped),
	    cmocka_unit_test(test_max_records),
	    cmocka_unit_test(test_apps_and_join),
	    cmocka_unit_test(test_empty_and_unsupported_process_lists),
	    cmocka_unit_test(test_meminfo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
