/*
 * gpu-nvml.c: the NVML telemetry provider. The only file of vramd that includes
 * dlfcn.h or knows NVML types: it re-declares the few it needs from
 * shared/reference/nvml.md section 2 and loads libnvidia-ml at run time (section 2.9),
 * so vramd builds and runs on machines without a driver.
 *
 * Loading: the --nvml-lib path alone when given, else libnvidia-ml.so.1 then
 * libnvidia-ml.so. Required symbols: nvmlInit_v2 (or nvmlInit), nvmlShutdown,
 * nvmlDeviceGetCount_v2 (or unsuffixed), nvmlDeviceGetHandleByIndex_v2 (or
 * unsuffixed); everything else is optional, resolved newest version first, and
 * NULL-checked at each call. nvmlInit runs once per open.
 *
 * Per field: NOT_SUPPORTED makes the field unknown and it is not asked again for that
 * device; GPU_IS_LOST marks the reading lost (the monitor probes it again next sample);
 * any other error leaves the field unknown for this sample only. Memory uses the v2
 * entry point (version 0x02000028, used excludes reserved) when the library has it,
 * v1 otherwise. Called by gpu.c through gpu_provider_nvml, and by tests directly.
 */
#include "gpu.h"
#include "log.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* NVML re-declarations (nvml.md section 2). */
typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;

#define NVML_SUCCESS		     0
#define NVML_ERROR_UNINITIALIZED     1
#define NVML_ERROR_NOT_SUPPORTED     3
#define NVML_ERROR_NO_PERMISSION     4
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST	     15
#define NVML_VALUE_NOT_AVAILABLE     0xFFFFFFFFFFFFFFFFull

struct nvml_memory_v1 {
	unsigned long long total, free, used;
};

struct nvml_memory_v2 {
	unsigned int version;
	unsigned long long total, reserved, free, used;
};

struct nvml_utilization {
	unsigned int gpu, memory;
};

struct nvml_pci_info {
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
};

struct nvml_temperature_v1 {
	unsigned int version;
	int sensor_type;
	int temperature;
};

struct nvml_margin_v1 {
	unsigned int version;
	int margin;
};

_Static_assert(sizeof(struct nvml_memory_v2) == 40, "nvmlMemory_v2_t layout");
_Static_assert(sizeof(struct nvml_pci_info) == 68, "nvmlPciInfo_t layout");
_Static_assert(sizeof(struct nvml_temperature_v1) == 12, "nvmlTemperature_v1_t layout");

#define NVML_MEMORY_V2_VERSION ((unsigned int)sizeof(struct nvml_memory_v2) | (2u << 24))
#define NVML_TEMP_V1_VERSION   ((unsigned int)sizeof(struct nvml_temperature_v1) | (1u << 24))
#define NVML_MARGIN_V1_VERSION ((unsigned int)sizeof(struct nvml_margin_v1) | (1u << 24))

#define NVML_THRESHOLD_SHUTDOWN 0
#define NVML_THRESHOLD_SLOWDOWN 1
#define NVML_THRESHOLD_GPU_MAX	3
#define NVML_CLOCK_SM		1

/* Bits of the per-device "not supported, stop asking" cache beyond GPU_HAS_*. */
#define NV_NO_MEMORY_V2 (1u << 30)
#define NV_NO_TEMP_V	(1u << 29)

struct gpu_nvml {
	void *dl;
	bool initialised;
	char driver_version[96];
	size_t process_stride;		       /* 16, 24 or 32 bytes per process entry */
	uint32_t unsupported[GPU_MAX_DEVICES]; /* GPU_HAS_* / NV_* bits not to ask again */

	nvml_return (*init)(void);
	nvml_return (*shutdown)(void);
	const char *(*error_string)(nvml_return);
	nvml_return (*get_count)(unsigned int *);
	nvml_return (*get_handle)(unsigned int, nvml_device *);
	nvml_return (*driver_version_fn)(char *, unsigned int);
	nvml_return (*process_name)(unsigned int, char *, unsigned int);
	nvml_return (*get_name)(nvml_device, char *, unsigned int);
	nvml_return (*get_uuid)(nvml_device, char *, unsigned int);
	nvml_return (*get_pci)(nvml_device, struct nvml_pci_info *);
	nvml_return (*memory_v1)(nvml_device, struct nvml_memory_v1 *);
	nvml_return (*memory_v2)(nvml_device, struct nvml_memory_v2 *);
	nvml_return (*utilization)(nvml_device, struct nvml_utilization *);
	nvml_return (*temperature)(nvml_device, int, unsigned int *);
	nvml_return (*temperature_v)(nvml_device, struct nvml_temperature_v1 *);
	nvml_return (*threshold)(nvml_device, int, unsigned int *);
	nvml_return (*margin)(nvml_device, struct nvml_margin_v1 *);
	nvml_return (*power_usage)(nvml_device, unsigned int *);
	nvml_return (*power_limit)(nvml_device, unsigned int *);
	nvml_return (*fan_speed)(nvml_device, unsigned int *);
	nvml_return (*clock_info)(nvml_device, int, unsigned int *);
	nvml_return (*clock_events)(nvml_device, unsigned long long *);
	nvml_return (*processes)(nvml_device, unsigned int *, void *);
};

static const char *
nvml_error_name(const struct gpu_nvml *nv, nvml_return rc)
{
	if (nv->error_string != NULL)
		return nv->error_string(rc);
	switch (rc) {
	case 1:
		return "Uninitialized";
	case 3:
		return "Not Supported";
	case 4:
		return "Insufficient Permissions";
	case 9:
		return "Driver Not Loaded";
	case 12:
		return "NVML Shared Library Not Found";
	case 15:
		return "GPU is lost";
	case 18:
		return "RM has detected an NVML/RM version mismatch.";
	default:
		return "Unknown Error";
	}
}

/* Resolves the first of the NULL-terminated names the library has, or NULL. */
static void *
nvml_sym(void *dl, const char *const *names)
{
	for (; *names != NULL; names++) {
		void *p = dlsym(dl, *names);
		if (p != NULL)
			return p;
	}
	return NULL;
}

#define NVML_RESOLVE(nv, field, ...)                                                               \
	do {                                                                                       \
		static const char *const names_[] = {__VA_ARGS__, NULL};                           \
		void *p_ = nvml_sym((nv)->dl, names_);                                             \
		memcpy(&(nv)->field, &p_, sizeof(p_));                                             \
	} while (0)

static void
nvml_resolve_all(struct gpu_nvml *nv)
{
	NVML_RESOLVE(nv, init, "nvmlInit_v2", "nvmlInit");
	NVML_RESOLVE(nv, shutdown, "nvmlShutdown");
	NVML_RESOLVE(nv, error_string, "nvmlErrorString");
	NVML_RESOLVE(nv, get_count, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
	NVML_RESOLVE(nv, get_handle, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
	NVML_RESOLVE(nv, driver_version_fn, "nvmlSystemGetDriverVersion");
	NVML_RESOLVE(nv, process_name, "nvmlSystemGetProcessName");
	NVML_RESOLVE(nv, get_name, "nvmlDeviceGetName");
	NVML_RESOLVE(nv, get_uuid, "nvmlDeviceGetUUID");
	NVML_RESOLVE(nv, get_pci, "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2",
		     "nvmlDeviceGetPciInfo");
	NVML_RESOLVE(nv, memory_v1, "nvmlDeviceGetMemoryInfo");
	NVML_RESOLVE(nv, memory_v2, "nvmlDeviceGetMemoryInfo_v2");
	NVML_RESOLVE(nv, utilization, "nvmlDeviceGetUtilizationRates");
	NVML_RESOLVE(nv, temperature, "nvmlDeviceGetTemperature");
	NVML_RESOLVE(nv, temperature_v, "nvmlDeviceGetTemperatureV");
	NVML_RESOLVE(nv, threshold, "nvmlDeviceGetTemperatureThreshold");
	NVML_RESOLVE(nv, margin, "nvmlDeviceGetMarginTemperature");
	NVML_RESOLVE(nv, power_usage, "nvmlDeviceGetPowerUsage");
	NVML_RESOLVE(nv, power_limit, "nvmlDeviceGetEnforcedPowerLimit",
		     "nvmlDeviceGetPowerManagementLimit");
	NVML_RESOLVE(nv, fan_speed, "nvmlDeviceGetFanSpeed");
	NVML_RESOLVE(nv, clock_info, "nvmlDeviceGetClockInfo");
	NVML_RESOLVE(nv, clock_events, "nvmlDeviceGetCurrentClocksEventReasons",
		     "nvmlDeviceGetCurrentClocksThrottleReasons");

	/* Running processes: v3 and v2 take 24-byte entries, v1 16-byte ones. Drivers
	 * 535.43-535.85 used 32-byte v3 entries; nvitop's test for them: the confidential
	 * compute query exists but the process detail list does not (nvml.md 1.3). */
	static const char *const v3[] = {"nvmlDeviceGetComputeRunningProcesses_v3", NULL};
	static const char *const v2[] = {"nvmlDeviceGetComputeRunningProcesses_v2", NULL};
	static const char *const v1[] = {"nvmlDeviceGetComputeRunningProcesses", NULL};
	void *p;
	if ((p = nvml_sym(nv->dl, v3)) != NULL) {
		bool cc = dlsym(nv->dl, "nvmlDeviceGetConfComputeMemSizeInfo") != NULL;
		bool detail = dlsym(nv->dl, "nvmlDeviceGetRunningProcessDetailList") != NULL;
		nv->process_stride = cc && !detail ? 32 : 24;
	} else if ((p = nvml_sym(nv->dl, v2)) != NULL) {
		nv->process_stride = 24;
	} else if ((p = nvml_sym(nv->dl, v1)) != NULL) {
		nv->process_stride = 16;
	}
	memcpy(&nv->processes, &p, sizeof(p));
}

int
gpu_nvml_open(const char *lib_path, struct gpu_nvml **out, char **cause)
{
	static const char *const defaults[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};
	const char *one[] = {lib_path, NULL};
	const char *const *names = lib_path != NULL ? one : defaults;
	struct gpu_nvml *nv = xcalloc(1, sizeof(*nv));
	char *first_error = NULL;
	int rc;

	*out = NULL;
	for (; *names != NULL && nv->dl == NULL; names++) {
		nv->dl = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
		if (nv->dl == NULL && first_error == NULL) {
			const char *e = dlerror();
			first_error = xstrdup(e != NULL ? e : *names);
		}
	}
	if (nv->dl == NULL) {
		rc = vd_fail(cause, -ENOENT, "NVML library not found (%s)", first_error);
		goto fail_free;
	}
	nvml_resolve_all(nv);
	if (nv->init == NULL || nv->shutdown == NULL || nv->get_count == NULL ||
	    nv->get_handle == NULL) {
		rc = vd_fail(cause, -ENOSYS,
			     "NVML library lacks a required entry point (nvmlInit, nvmlShutdown, "
			     "nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex)");
		goto fail_close;
	}
	nvml_return nrc = nv->init();
	if (nrc != NVML_SUCCESS) {
		rc = vd_fail(cause, -ENODEV, "NVML initialisation failed: %s (%d)",
			     nvml_error_name(nv, nrc), nrc);
		goto fail_close;
	}
	nv->initialised = true;
	if (nv->driver_version_fn == NULL ||
	    nv->driver_version_fn(nv->driver_version, sizeof(nv->driver_version)) != NVML_SUCCESS)
		nv->driver_version[0] = '\0';
	free(first_error);
	*out = nv;
	return 0;

fail_close:
	dlclose(nv->dl);
fail_free:
	free(first_error);
	free(nv);
	return rc;
}

void
gpu_nvml_close(struct gpu_nvml *nv)
{
	if (nv == NULL)
		return;
	if (nv->initialised)
		nv->shutdown();
	dlclose(nv->dl);
	free(nv);
}

const char *
gpu_nvml_driver_version(const struct gpu_nvml *nv)
{
	return nv->driver_version;
}

bool
gpu_nvml_has_memory_v2(const struct gpu_nvml *nv)
{
	return nv->memory_v2 != NULL;
}

/* Whether to ask for field on device idx: the entry point exists and it did not answer
 * NOT_SUPPORTED before. */
static bool
nvml_should_ask(const struct gpu_nvml *nv, uint32_t idx, const void *fn, uint32_t field)
{
	return fn != NULL && (nv->unsupported[idx] & field) == 0;
}

/* Books the result of one query: true on success; NOT_SUPPORTED is remembered;
 * GPU_IS_LOST marks the reading lost. */
static bool
nvml_check(struct gpu_nvml *nv, uint32_t idx, uint32_t field, nvml_return rc, struct gpu_reading *r)
{
	if (rc == NVML_SUCCESS)
		return true;
	if (rc == NVML_ERROR_NOT_SUPPORTED)
		nv->unsupported[idx] |= field;
	else if (rc == NVML_ERROR_GPU_IS_LOST)
		r->lost = true;
	return false;
}

static void
nvml_read_memory(struct gpu_nvml *nv, uint32_t idx, nvml_device dev, struct gpu_reading *r)
{
	struct gpu_sample *s = &r->sample;
	if (nvml_should_ask(nv, idx, nv->memory_v2, NV_NO_MEMORY_V2 | GPU_HAS_MEM_TOTAL)) {
		struct nvml_memory_v2 m = {.version = NVML_MEMORY_V2_VERSION};
		nvml_return rc = nv->memory_v2(dev, &m);
		if (rc == NVML_SUCCESS && m.total > 0) {
			s->mem_total_bytes = m.total;
			s->mem_used_bytes = m.used;
			s->mem_free_bytes = m.free;
			s->mem_reserved_bytes = m.reserved;
			s->valid |= GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE |
				    GPU_HAS_MEM_RESERVED;
			return;
		}
		if (rc == NVML_ERROR_GPU_IS_LOST) {
			r->lost = true;
			return;
		}
		/* NOT_SUPPORTED, a version mismatch on an R510 driver, total 0: try v1. */
		if (rc != NVML_SUCCESS)
			nv->unsupported[idx] |= NV_NO_MEMORY_V2;
	}
	if (nvml_should_ask(nv, idx, nv->memory_v1, GPU_HAS_MEM_TOTAL)) {
		struct nvml_memory_v1 m;
		nvml_return rc = nv->memory_v1(dev, &m);
		if (!nvml_check(nv, idx, GPU_HAS_MEM_TOTAL, rc, r) || m.total == 0)
			return; /* unknown: a unified-memory device; the monitor uses host RAM */
		s->mem_total_bytes = m.total;
		s->mem_used_bytes = m.used;
		s->mem_free_bytes = m.free;
		s->valid |= GPU_HAS_MEM_TOTAL | GPU_HAS_MEM_USED | GPU_HAS_MEM_FREE;
	}
}

static void
nvml_read_temperature(struct gpu_nvml *nv, uint32_t idx, nvml_device dev, struct gpu_reading *r)
{
	struct gpu_sample *s = &r->sample;
	unsigned int v;
	if (nvml_should_ask(nv, idx, nv->temperature_v, GPU_HAS_TEMPERATURE | NV_NO_TEMP_V)) {
		struct nvml_temperature_v1 t = {.version = NVML_TEMP_V1_VERSION, .sensor_type = 0};
		nvml_return rc = nv->temperature_v(dev, &t);
		if (rc == NVML_SUCCESS) {
			s->temperature_c = t.temperature;
			s->valid |= GPU_HAS_TEMPERATURE;
		} else if (rc == NVML_ERROR_NOT_SUPPORTED && nv->temperature != NULL) {
			nv->unsupported[idx] |= NV_NO_TEMP_V; /* the legacy call may still work */
		} else {
			nvml_check(nv, idx, GPU_HAS_TEMPERATURE, rc, r);
		}
	}
	if (!(s->valid & GPU_HAS_TEMPERATURE) &&
	    nvml_should_ask(nv, idx, nv->temperature, GPU_HAS_TEMPERATURE) &&
	    nvml_check(nv, idx, GPU_HAS_TEMPERATURE, nv->temperature(dev, 0, &v), r)) {
		s->temperature_c = (int32_t)v;
		s->valid |= GPU_HAS_TEMPERATURE;
	}

	static const struct {
		int type;
		uint32_t field;
		size_t offset;
	} thresholds[] = {
	    {NVML_THRESHOLD_SLOWDOWN, GPU_HAS_SLOWDOWN, offsetof(struct gpu_sample, slowdown_c)},
	    {NVML_THRESHOLD_SHUTDOWN, GPU_HAS_SHUTDOWN, offsetof(struct gpu_sample, shutdown_c)},
	    {NVML_THRESHOLD_GPU_MAX, GPU_HAS_GPU_MAX, offsetof(struct gpu_sample, gpu_max_c)},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(thresholds); i++) {
		if (!nvml_should_ask(nv, idx, nv->threshold, thresholds[i].field))
			continue;
		if (!nvml_check(nv, idx, thresholds[i].field,
				nv->threshold(dev, thresholds[i].type, &v), r))
			continue;
		int32_t c = (int32_t)v;
		memcpy((char *)s + thresholds[i].offset, &c, sizeof(c));
		s->valid |= thresholds[i].field;
	}
	if (nvml_should_ask(nv, idx, nv->margin, GPU_HAS_MARGIN)) {
		struct nvml_margin_v1 m = {.version = NVML_MARGIN_V1_VERSION};
		if (nvml_check(nv, idx, GPU_HAS_MARGIN, nv->margin(dev, &m), r)) {
			s->margin_c = m.margin;
			s->valid |= GPU_HAS_MARGIN;
		}
	}
}

static void
nvml_read_processes(struct gpu_nvml *nv, uint32_t idx, nvml_device dev, struct gpu_reading *r)
{
	struct gpu_sample *s = &r->sample;
	if (!nvml_should_ask(nv, idx, nv->processes, GPU_HAS_PROCESSES))
		return;
	unsigned int count = 0;
	nvml_return rc = nv->processes(dev, &count, NULL);
	unsigned char *buf = NULL;
	/* The list can grow between calls: over-allocate and retry a few times. */
	for (int attempt = 0; rc == NVML_ERROR_INSUFFICIENT_SIZE && attempt < 4; attempt++) {
		unsigned int cap = count * 2 + 5;
		buf = xreallocarray(buf, cap, nv->process_stride);
		count = cap;
		rc = nv->processes(dev, &count, buf);
	}
	if (!nvml_check(nv, idx, GPU_HAS_PROCESSES, rc, r)) {
		free(buf);
		return;
	}
	s->nprocesses = 0;
	for (unsigned int i = 0; i < count && s->nprocesses < GPU_MAX_PROCESSES; i++) {
		const unsigned char *e = buf + (size_t)i * nv->process_stride;
		struct gpu_process *p = &s->processes[s->nprocesses++];
		unsigned long long used;
		memset(p, 0, sizeof(*p));
		memcpy(&p->pid, e, sizeof(p->pid));
		memcpy(&used, e + 8, sizeof(used));
		p->used_known = used != NVML_VALUE_NOT_AVAILABLE;
		p->used_bytes = p->used_known ? used : 0;
		if (nv->process_name == NULL ||
		    nv->process_name(p->pid, p->name, sizeof(p->name)) != NVML_SUCCESS)
			p->name[0] = '\0';
		p->name[sizeof(p->name) - 1] = '\0';
		p->is_ollama = gpu_process_is_ollama(p->name);
	}
	s->valid |= GPU_HAS_PROCESSES;
	free(buf);
}

/* Reads one device. Identity first: a device whose handle says lost is reported by
 * index only. */
static void
nvml_read_device(struct gpu_nvml *nv, uint32_t idx, struct gpu_reading *r)
{
	struct gpu_sample *s = &r->sample;
	nvml_device dev;
	unsigned int v;

	memset(r, 0, offsetof(struct gpu_reading, sample) + offsetof(struct gpu_sample, processes));
	r->index = idx;
	s->wall_ms = vd_now_wall_ms();
	s->mono_ms = vd_now_mono_ms();
	nvml_return rc = nv->get_handle(idx, &dev);
	if (rc != NVML_SUCCESS) {
		r->lost = true; /* GPU_IS_LOST, or any reason the handle went away */
		return;
	}
	if (nv->get_name != NULL && nv->get_name(dev, r->name, sizeof(r->name)) != NVML_SUCCESS)
		r->name[0] = '\0';
	if (nv->get_uuid != NULL && nv->get_uuid(dev, r->uuid, sizeof(r->uuid)) != NVML_SUCCESS)
		r->uuid[0] = '\0';
	struct nvml_pci_info pci;
	if (nv->get_pci != NULL && nv->get_pci(dev, &pci) == NVML_SUCCESS) {
		pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
		vd_strlcpy(r->bus_id, pci.bus_id, sizeof(r->bus_id));
	}
	r->name[sizeof(r->name) - 1] = '\0';
	r->uuid[sizeof(r->uuid) - 1] = '\0';

	nvml_read_memory(nv, idx, dev, r);
	if (nvml_should_ask(nv, idx, nv->utilization, GPU_HAS_UTIL_GPU)) {
		struct nvml_utilization u;
		if (nvml_check(nv, idx, GPU_HAS_UTIL_GPU, nv->utilization(dev, &u), r)) {
			s->util_gpu_pct = u.gpu;
			s->util_mem_pct = u.memory;
			s->valid |= GPU_HAS_UTIL_GPU | GPU_HAS_UTIL_MEM;
		}
	}
	nvml_read_temperature(nv, idx, dev, r);
	if (nvml_should_ask(nv, idx, nv->power_usage, GPU_HAS_POWER_DRAW) &&
	    nvml_check(nv, idx, GPU_HAS_POWER_DRAW, nv->power_usage(dev, &v), r)) {
		s->power_draw_mw = v;
		s->valid |= GPU_HAS_POWER_DRAW;
	}
	if (nvml_should_ask(nv, idx, nv->power_limit, GPU_HAS_POWER_LIMIT) &&
	    nvml_check(nv, idx, GPU_HAS_POWER_LIMIT, nv->power_limit(dev, &v), r)) {
		s->power_limit_mw = v;
		s->valid |= GPU_HAS_POWER_LIMIT;
	}
	if (nvml_should_ask(nv, idx, nv->fan_speed, GPU_HAS_FAN) &&
	    nvml_check(nv, idx, GPU_HAS_FAN, nv->fan_speed(dev, &v), r)) {
		s->fan_pct = v;
		s->valid |= GPU_HAS_FAN;
	}
	if (nvml_should_ask(nv, idx, nv->clock_info, GPU_HAS_SM_CLOCK) &&
	    nvml_check(nv, idx, GPU_HAS_SM_CLOCK, nv->clock_info(dev, NVML_CLOCK_SM, &v), r)) {
		s->sm_clock_mhz = v;
		s->valid |= GPU_HAS_SM_CLOCK;
	}
	unsigned long long reasons;
	if (nvml_should_ask(nv, idx, nv->clock_events, GPU_HAS_CLOCK_EVENTS) &&
	    nvml_check(nv, idx, GPU_HAS_CLOCK_EVENTS, nv->clock_events(dev, &reasons), r)) {
		s->clock_event_reasons = reasons;
		s->valid |= GPU_HAS_CLOCK_EVENTS;
	}
	nvml_read_processes(nv, idx, dev, r);
	if (r->lost)
		s->valid = 0;
}

int
gpu_nvml_read(struct gpu_nvml *nv, struct gpu_reading *readings, size_t max, char **cause)
{
	unsigned int count = 0;
	nvml_return rc = nv->get_count(&count);
	if (rc == NVML_ERROR_UNINITIALIZED && nv->init() == NVML_SUCCESS)
		rc = nv->get_count(&count);
	if (rc != NVML_SUCCESS)
		return vd_fail(cause, -EIO, "nvmlDeviceGetCount failed: %s (%d)",
			       nvml_error_name(nv, rc), rc);
	size_t n = 0;
	for (uint32_t i = 0; i < count && i < GPU_MAX_DEVICES && n < max; i++)
		nvml_read_device(nv, i, &readings[n++]);
	return (int)n;
}

/* --- the provider ---------------------------------------------------------------------- */

struct nvml_provider {
	struct gpu_nvml *nv;
	struct gpu_reading readings[GPU_MAX_DEVICES];
};

static int
nvml_provider_open(const struct gpu_provider_config *config, void **state, char **cause)
{
	struct gpu_nvml *nv;
	int rc = gpu_nvml_open(config->nvml_lib, &nv, cause);
	if (rc < 0)
		return rc;
	struct nvml_provider *p = xcalloc(1, sizeof(*p));
	p->nv = nv;
	*state = p;
	return 0;
}

static void
nvml_provider_sample(void *state, gpu_provider_done_cb done, void *arg)
{
	struct nvml_provider *p = state;
	char *cause = NULL;
	int n = gpu_nvml_read(p->nv, p->readings, GPU_MAX_DEVICES, &cause);
	if (n < 0)
		done(NULL, 0, n, cause, arg);
	else
		done(p->readings, (size_t)n, 0, NULL, arg);
	free(cause);
}

static void
nvml_provider_close(void *state)
{
	struct nvml_provider *p = state;
	if (p == NULL)
		return;
	gpu_nvml_close(p->nv);
	free(p);
}

const struct gpu_provider gpu_provider_nvml = {
    .name = "nvml",
    .open = nvml_provider_open,
    .sample = nvml_provider_sample,
    .close = nvml_provider_close,
};
