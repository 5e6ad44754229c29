/*
 * gpu-host.c: host memory from /proc/meminfo (MemTotal, MemAvailable). The monitor
 * reads it every sample for CPU placement, and for unified-memory GPUs (no dedicated
 * framebuffer, NVML memory NOT_SUPPORTED or total 0) the way nvtop and Ollama do. The
 * parser is a pure function over the file's text so tests and the fuzzer can drive it.
 */
#include "gpu.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define MEMINFO_MAX (64 * 1024)

/* Parses "<digits> kB" after a "Key:" label; false if malformed. */
static bool
host_parse_kb(const char *p, const char *end, uint64_t *bytes)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	uint64_t v = 0;
	const char *start = p;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10 / 1024)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (p == start)
		return false;
	while (p < end && *p == ' ')
		p++;
	/* The unit is "kB" (KiB in truth) on every Linux; a bare number is bytes. */
	if (end - p >= 2 && p[0] == 'k' && p[1] == 'B')
		v *= 1024;
	*bytes = v;
	return true;
}

int
gpu_host_parse_meminfo(const char *text, size_t len, struct gpu_host_memory *out)
{
	bool have_total = false, have_avail = false;
	const char *p = text, *end = text + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl != NULL ? nl : end;
		size_t n = (size_t)(line_end - p);
		if (n > 9 && memcmp(p, "MemTotal:", 9) == 0)
			have_total = host_parse_kb(p + 9, line_end, &out->total_bytes);
		else if (n > 13 && memcmp(p, "MemAvailable:", 13) == 0)
			have_avail = host_parse_kb(p + 13, line_end, &out->available_bytes);
		p = nl != NULL ? nl + 1 : end;
	}
	if (!have_total || !have_avail || out->available_bytes > out->total_bytes) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	out->valid = true;
	return 0;
}

int
gpu_host_read_meminfo(const char *path, struct gpu_host_memory *out)
{
	char buf[MEMINFO_MAX];
	size_t len = 0;
	int fd = open(path != NULL ? path : "/proc/meminfo", O_RDONLY | O_CLOEXEC);
	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf)) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	return gpu_host_parse_meminfo(buf, len, out);
}
