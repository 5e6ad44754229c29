/*
 * fuzz-gpu-meminfo.c: the /proc/meminfo parser of src/gpu/gpu-host.c on arbitrary bytes.
 * A successful parse must be self-consistent (available <= total).
 */
#include "gpu.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gpu_host_memory host;
	if (gpu_host_parse_meminfo((const char *)data, size, &host) == 0)
		assert(host.valid && host.available_bytes <= host.total_bytes);
	else
		assert(!host.valid);
	return 0;
}
