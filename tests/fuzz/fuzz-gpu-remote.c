/*
 * fuzz-gpu-remote.c: the parsers of the remote vramd provider (gpu_remote_parse and
 * gpu_remote_parse_host in src/gpu/gpu-remote.c) on arbitrary bytes as a reply of GET
 * /api/gpu/status/all. Checks that a success fills at most max readings with terminated
 * strings, in-range values and process lists within bounds, and that a failure always
 * says why.
 */
#include "gpu.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 4

static struct gpu_reading readings[FUZZ_MAX];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char *cause = NULL;
	int n = gpu_remote_parse(body, size, readings, FUZZ_MAX, &cause);
	if (n < 0) {
		assert(n == -EINVAL && cause != NULL && *cause != '\0');
		free(cause);
	} else {
		assert(cause == NULL && n <= FUZZ_MAX);
		for (int i = 0; i < n; i++) {
			const struct gpu_reading *r = &readings[i];
			const struct gpu_sample *s = &r->sample;
			assert(strlen(r->name) < sizeof(r->name));
			assert(strlen(r->uuid) < sizeof(r->uuid));
			assert(strlen(r->bus_id) < sizeof(r->bus_id));
			assert(s->nprocesses <= GPU_MAX_PROCESSES);
			for (size_t k = 0; k < s->nprocesses; k++)
				assert(strlen(s->processes[k].name) < sizeof(s->processes[k].name));
			assert(!(s->valid & GPU_HAS_UTIL_GPU) || s->util_gpu_pct <= 100);
			assert(!(s->valid & GPU_HAS_MEM_RESERVED) ||
			       s->mem_reserved_bytes + s->mem_used_bytes + s->mem_free_bytes ==
				   s->mem_total_bytes);
			assert(s->valid & GPU_HAS_PROCESSES || s->nprocesses == 0);
		}
	}
	struct gpu_host_memory host;
	cause = NULL;
	if (gpu_remote_parse_host(body, size, &host, &cause) < 0) {
		assert(cause != NULL && !host.valid);
		free(cause);
	} else {
		assert(cause == NULL);
	}
	return 0;
}
