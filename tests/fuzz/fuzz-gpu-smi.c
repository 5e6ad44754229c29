/*
 * fuzz-gpu-smi.c: the nvidia-smi CSV parsers of src/gpu/gpu-smi.c on arbitrary bytes. The
 * first byte picks the parser (even: --query-gpu, odd: --query-compute-apps); the
 * results are joined so the join runs on whatever the parsers accepted. Checks that
 * parsed strings stay terminated and counts stay within bounds.
 */
#include "gpu.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gpu_reading readings[GPU_MAX_DEVICES];
static struct gpu_smi_app apps[32];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1, bad = 0;
	if (data[0] % 2 == 0) {
		size_t n = gpu_smi_parse_gpus(text, len, readings, GPU_MAX_DEVICES, &bad);
		assert(n <= GPU_MAX_DEVICES);
		for (size_t i = 0; i < n; i++) {
			assert(strlen(readings[i].name) < sizeof(readings[i].name));
			assert(strlen(readings[i].uuid) < sizeof(readings[i].uuid));
			assert(readings[i].sample.util_gpu_pct <= 100 ||
			       !(readings[i].sample.valid & GPU_HAS_UTIL_GPU));
		}
		gpu_smi_join_apps(readings, n, apps, 0);
	} else {
		size_t n = gpu_smi_parse_apps(text, len, apps, 32, &bad);
		assert(n <= 32);
		for (size_t i = 0; i < n; i++)
			assert(strlen(apps[i].process.name) < sizeof(apps[i].process.name));
		memset(readings, 0, sizeof(readings[0]));
		memcpy(readings[0].uuid, apps[0].gpu_uuid, sizeof(readings[0].uuid));
		gpu_smi_join_apps(readings, 1, apps, n);
		assert(readings[0].sample.nprocesses <= GPU_MAX_PROCESSES);
	}
	return 0;
}
