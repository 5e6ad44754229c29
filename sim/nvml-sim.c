/*
 * nvml-sim.c: a simulated NVML, built as libnvidia-ml.so.1. It reports the simulated
 * GPUs of the ollama-sim instance whose state file (sim-shm.h) is named by the
 * environment variable OLLAMA_SIM_STATE, with the exact entry point names, struct
 * layouts, versioned-struct rules and return codes of real NVML
 * (shared/reference/nvml.md section 2), so a monitor cannot tell it from the real one.
 *
 * nvmlInit maps the file read-only; every query takes a consistent seqlock snapshot
 * (sim_shm_read) and answers from it, so values are live. No variable, an unreadable
 * file or one of another layout -> NVML_ERROR_DRIVER_NOT_LOADED. A GPU marked lost (or
 * gone from the file) -> NVML_ERROR_GPU_IS_LOST on every per-device query; a field in
 * the GPU's `unsupported` mask -> NVML_ERROR_NOT_SUPPORTED.
 *
 * Built twice: in full, and with NVML_SIM_MINIMAL=1 with only the entry points of an
 * old driver (unsuffixed nvmlInit, nvmlShutdown, nvmlErrorString, nvmlDeviceGetCount,
 * nvmlDeviceGetHandleByIndex, nvmlDeviceGetMemoryInfo v1). Symbols are hidden unless
 * marked NVML_API. Init is reference counted and guarded by a mutex; queries only read.
 */
#include "nvml-sim.h"
#include "sim-shm.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NVML_SIM_MINIMAL
#define NVML_SIM_MINIMAL 0
#endif

/* Device handles point into this table; the handle of GPU i is &nvml_devices[i]. */
struct nvmlDevice_st {
	unsigned int index;
};

static struct nvmlDevice_st nvml_devices[SIM_SHM_MAX_GPUS] = {
    {0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}, {12}, {13}, {14}, {15},
};

static pthread_mutex_t nvml_lock = PTHREAD_MUTEX_INITIALIZER;
static int nvml_refcount;	       /* under nvml_lock */
static const struct sim_shm *nvml_map; /* non-NULL while initialised */

/* Per-thread snapshot buffer: NVML is thread-safe, and a snapshot is ~50 KB. */
static _Thread_local struct sim_shm nvml_snap;

static nvmlReturn_t
nvml_sim_init(void)
{
	nvmlReturn_t rc = NVML_SUCCESS;
	pthread_mutex_lock(&nvml_lock);
	if (nvml_refcount > 0) {
		nvml_refcount++;
		goto out;
	}
	const char *path = getenv("OLLAMA_SIM_STATE");
	if (path == NULL || *path == '\0') {
		rc = NVML_ERROR_DRIVER_NOT_LOADED;
		goto out;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = NVML_ERROR_DRIVER_NOT_LOADED;
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(struct sim_shm)) {
		close(fd);
		rc = NVML_ERROR_DRIVER_NOT_LOADED;
		goto out;
	}
	void *map = mmap(NULL, sizeof(struct sim_shm), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		rc = NVML_ERROR_DRIVER_NOT_LOADED;
		goto out;
	}
	if (!sim_shm_read(map, &nvml_snap)) {
		munmap(map, sizeof(struct sim_shm));
		rc = NVML_ERROR_DRIVER_NOT_LOADED;
		goto out;
	}
	nvml_map = map;
	nvml_refcount = 1;
out:
	pthread_mutex_unlock(&nvml_lock);
	return rc;
}

NVML_API nvmlReturn_t
nvmlInit(void)
{
	return nvml_sim_init();
}

NVML_API nvmlReturn_t
nvmlShutdown(void)
{
	nvmlReturn_t rc = NVML_SUCCESS;
	pthread_mutex_lock(&nvml_lock);
	if (nvml_refcount == 0) {
		rc = NVML_ERROR_UNINITIALIZED;
	} else if (--nvml_refcount == 0) {
		munmap((void *)nvml_map, sizeof(struct sim_shm));
		nvml_map = NULL;
	}
	pthread_mutex_unlock(&nvml_lock);
	return rc;
}

NVML_API const char *
nvmlErrorString(nvmlReturn_t result)
{
	switch (result) {
	case 0:
		return "Success";
	case 1:
		return "Uninitialized";
	case 2:
		return "Invalid Argument";
	case 3:
		return "Not Supported";
	case 4:
		return "Insufficient Permissions";
	case 5:
		return "Already Initialized";
	case 6:
		return "Not Found";
	case 7:
		return "Insufficient Size";
	case 8:
		return "Insufficient External Power";
	case 9:
		return "Driver Not Loaded";
	case 10:
		return "Timeout";
	case 11:
		return "Interrupt request issue";
	case 12:
		return "NVML Shared Library Not Found";
	case 13:
		return "Function Not Found";
	case 14:
		return "Corrupted infoROM";
	case 15:
		return "GPU is lost";
	case 16:
		return "GPU requires restart";
	case 17:
		return "The operating system has blocked the request.";
	case 18:
		return "RM has detected an NVML/RM version mismatch.";
	case 19:
		return "In use by another client";
	case 20:
		return "Insufficient Memory";
	case 21:
		return "No data";
	case 22:
		return "The requested vgpu operation is not available on target device, because "
		       "ECC is enabled";
	case 23:
		return "Insufficient resources for request";
	case 24:
		return "Frequency not supported";
	case 25:
		return "Argument version mismatch";
	case 26:
		return "Deprecated";
	case 27:
		return "Not ready";
	case 28:
		return "GPU not found";
	case 29:
		return "Invalid state";
	case 30:
		return "Reset type not supported";
	case 999:
		return "Unknown Error";
	default:
		return "Unknown Error";
	}
}

/* Takes a snapshot into this thread's buffer. Caller holds no lock: the mapping stays
 * valid because a well-behaved caller does not shut down while querying. */
static nvmlReturn_t
nvml_sim_snapshot(const struct sim_shm **out)
{
	const struct sim_shm *map = __atomic_load_n(&nvml_map, __ATOMIC_ACQUIRE);
	if (map == NULL)
		return NVML_ERROR_UNINITIALIZED;
	if (!sim_shm_read(map, &nvml_snap))
		return NVML_ERROR_UNKNOWN;
	*out = &nvml_snap;
	return NVML_SUCCESS;
}

/* Resolves a handle to its GPU record in a fresh snapshot, answering the per-device
 * errors: not initialised, bad handle, lost or vanished GPU, unsupported field. */
static nvmlReturn_t
nvml_sim_gpu(nvmlDevice_t device, uint32_t field, const struct sim_shm_gpu **out)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (device == NULL || device < &nvml_devices[0] ||
	    device >= &nvml_devices[SIM_SHM_MAX_GPUS])
		return NVML_ERROR_INVALID_ARGUMENT;
	if (device->index >= snap->ngpus || snap->gpus[device->index].lost)
		return NVML_ERROR_GPU_IS_LOST;
	const struct sim_shm_gpu *gpu = &snap->gpus[device->index];
	if (gpu->unsupported & field)
		return NVML_ERROR_NOT_SUPPORTED;
	*out = gpu;
	return NVML_SUCCESS;
}

static nvmlReturn_t
nvml_sim_count(unsigned int *count)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (count == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*count = snap->ngpus;
	return NVML_SUCCESS;
}

static nvmlReturn_t
nvml_sim_handle(unsigned int index, nvmlDevice_t *device)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (device == NULL || index >= snap->ngpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (snap->gpus[index].lost)
		return NVML_ERROR_GPU_IS_LOST;
	*device = &nvml_devices[index];
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetCount(unsigned int *count)
{
	return nvml_sim_count(count);
}

NVML_API nvmlReturn_t
nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
	return nvml_sim_handle(index, device);
}

NVML_API nvmlReturn_t
nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	const struct sim_shm_gpu *gpu;
	if (memory == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, 0, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	/* v1: used includes the driver's reserved memory. */
	uint64_t used = gpu->reserved_bytes + gpu->used_by_models_bytes + gpu->used_by_others_bytes;
	if (used > gpu->total_bytes)
		used = gpu->total_bytes;
	memory->total = gpu->total_bytes;
	memory->free = gpu->total_bytes - used;
	memory->used = gpu->total_bytes - memory->free;
	return NVML_SUCCESS;
}

#if !NVML_SIM_MINIMAL

NVML_API nvmlReturn_t
nvmlInit_v2(void)
{
	return nvml_sim_init();
}

NVML_API nvmlReturn_t
nvmlInitWithFlags(unsigned int flags)
{
	(void)flags;
	return nvml_sim_init();
}

/* Copies s into buf of length bytes, or INSUFFICIENT_SIZE if it does not fit. */
static nvmlReturn_t
nvml_sim_copy_string(char *buf, unsigned int length, const char *s)
{
	if (buf == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	size_t n = strnlen(s, 255);
	if (n + 1 > length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	char v[sizeof(snap->driver_version)];
	memcpy(v, snap->driver_version, sizeof(v));
	v[sizeof(v) - 1] = '\0';
	return nvml_sim_copy_string(version, length, v);
}

NVML_API nvmlReturn_t
nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	/* NVML's own version is "<cuda major>.<driver version>", e.g. "12.555.42.06". */
	char v[128];
	snprintf(v, sizeof(v), "%d.%.80s", snap->cuda_driver_version / 1000, snap->driver_version);
	return nvml_sim_copy_string(version, length, v);
}

NVML_API nvmlReturn_t
nvmlSystemGetCudaDriverVersion_v2(int *version)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (version == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*version = snap->cuda_driver_version;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlSystemGetCudaDriverVersion(int *version)
{
	return nvmlSystemGetCudaDriverVersion_v2(version);
}

NVML_API nvmlReturn_t
nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (name == NULL || length == 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (uint32_t g = 0; g < snap->ngpus; g++) {
		const struct sim_shm_gpu *gpu = &snap->gpus[g];
		uint32_t n = gpu->nprocs < SIM_SHM_MAX_PROCS ? gpu->nprocs : SIM_SHM_MAX_PROCS;
		for (uint32_t i = 0; i < n; i++) {
			if (gpu->procs[i].pid != pid)
				continue;
			char v[sizeof(gpu->procs[i].name)];
			memcpy(v, gpu->procs[i].name, sizeof(v));
			v[sizeof(v) - 1] = '\0';
			/* Real NVML truncates to length rather than failing. */
			size_t len = strlen(v);
			if (len >= length)
				len = length - 1;
			memcpy(name, v, len);
			name[len] = '\0';
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t
nvmlDeviceGetCount_v2(unsigned int *count)
{
	return nvml_sim_count(count);
}

NVML_API nvmlReturn_t
nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	return nvml_sim_handle(index, device);
}

NVML_API nvmlReturn_t
nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
	const struct sim_shm *snap;
	nvmlReturn_t rc = nvml_sim_snapshot(&snap);
	if (rc != NVML_SUCCESS)
		return rc;
	if (uuid == NULL || device == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (uint32_t g = 0; g < snap->ngpus; g++) {
		if (strncmp(snap->gpus[g].uuid, uuid, sizeof(snap->gpus[g].uuid)) != 0)
			continue;
		if (snap->gpus[g].lost)
			return NVML_ERROR_GPU_IS_LOST;
		*device = &nvml_devices[g];
		return NVML_SUCCESS;
	}
	return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t
nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
	const struct sim_shm_gpu *gpu;
	if (index == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, 0, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*index = device->index;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	const struct sim_shm_gpu *gpu;
	if (name == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, 0, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	char v[sizeof(gpu->name)];
	memcpy(v, gpu->name, sizeof(v));
	v[sizeof(v) - 1] = '\0';
	return nvml_sim_copy_string(name, length, v);
}

NVML_API nvmlReturn_t
nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	const struct sim_shm_gpu *gpu;
	if (uuid == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, 0, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	char v[sizeof(gpu->uuid)];
	memcpy(v, gpu->uuid, sizeof(v));
	v[sizeof(v) - 1] = '\0';
	return nvml_sim_copy_string(uuid, length, v);
}

static nvmlReturn_t
nvml_sim_pci(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	const struct sim_shm_gpu *gpu;
	if (pci == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, 0, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	memset(pci, 0, sizeof(*pci));
	pci->domain = gpu->pci_domain;
	pci->bus = gpu->pci_bus;
	pci->device = gpu->pci_device;
	pci->pciDeviceId = gpu->pci_device_id;
	pci->pciSubSystemId = 0;
	snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0",
		 gpu->pci_domain & 0xffffu, gpu->pci_bus & 0xffu, gpu->pci_device & 0xffu);
	snprintf(pci->busId, sizeof(pci->busId), "%08X:%02X:%02X.0", gpu->pci_domain,
		 gpu->pci_bus & 0xffu, gpu->pci_device & 0xffu);
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	return nvml_sim_pci(device, pci);
}

NVML_API nvmlReturn_t
nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	return nvml_sim_pci(device, pci);
}

NVML_API nvmlReturn_t
nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	return nvml_sim_pci(device, pci);
}

NVML_API nvmlReturn_t
nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	const struct sim_shm_gpu *gpu;
	if (memory == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (memory->version != NVML_MEMORY_V2_VERSION)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_MEMORY_V2, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	uint64_t total = gpu->total_bytes;
	uint64_t reserved = gpu->reserved_bytes < total ? gpu->reserved_bytes : total;
	uint64_t used = gpu->used_by_models_bytes + gpu->used_by_others_bytes;
	if (used > total - reserved)
		used = total - reserved;
	memory->total = total;
	memory->reserved = reserved;
	memory->used = used;
	memory->free = total - reserved - used;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u)
{
	const struct sim_shm_gpu *gpu;
	if (u == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_UTILIZATION, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	u->gpu = gpu->util_gpu_pct;
	u->memory = gpu->util_mem_pct;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp)
{
	const struct sim_shm_gpu *gpu;
	if (temp == NULL || sensor != NVML_TEMPERATURE_GPU)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_TEMPERATURE, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*temp = gpu->temperature_c;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *t)
{
	const struct sim_shm_gpu *gpu;
	if (t == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (t->version != NVML_TEMPERATURE_V1_VERSION)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	if (t->sensorType != NVML_TEMPERATURE_GPU)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_TEMPERATURE, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	t->temperature = (int)gpu->temperature_c;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int type, unsigned int *temp)
{
	const struct sim_shm_gpu *gpu;
	if (temp == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_THRESHOLDS, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	uint32_t v;
	switch (type) {
	case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
		v = gpu->shutdown_c;
		break;
	case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
		v = gpu->slowdown_c;
		break;
	case NVML_TEMPERATURE_THRESHOLD_GPU_MAX:
		v = gpu->gpu_max_c;
		break;
	case NVML_TEMPERATURE_THRESHOLD_MEM_MAX:
		return NVML_ERROR_NOT_SUPPORTED;
	default:
		if (type < 0 || type > 7)
			return NVML_ERROR_INVALID_ARGUMENT;
		return NVML_ERROR_NOT_SUPPORTED;
	}
	if (v == 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*temp = v;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetMarginTemperature(nvmlDevice_t device, nvmlMarginTemperature_v1_t *margin)
{
	const struct sim_shm_gpu *gpu;
	if (margin == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (margin->version != NVML_MARGIN_V1_VERSION)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_TEMPERATURE, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	/* The simulated card's T.Limit reference is its slowdown threshold. */
	if (gpu->slowdown_c == 0)
		return NVML_ERROR_NOT_SUPPORTED;
	margin->marginTemperature = (int)gpu->slowdown_c - (int)gpu->temperature_c;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
	const struct sim_shm_gpu *gpu;
	if (power == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_POWER, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*power = gpu->power_mw;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)
{
	const struct sim_shm_gpu *gpu;
	if (limit == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_POWER, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*limit = gpu->power_limit_mw;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)
{
	return nvmlDeviceGetEnforcedPowerLimit(device, limit);
}

NVML_API nvmlReturn_t
nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed)
{
	const struct sim_shm_gpu *gpu;
	if (speed == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_FAN, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*speed = gpu->fan_pct;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetFanSpeed_v2(nvmlDevice_t device, unsigned int fan, unsigned int *speed)
{
	if (fan != 0 && speed != NULL) {
		const struct sim_shm_gpu *gpu;
		nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_FAN, &gpu);
		return rc != NVML_SUCCESS ? rc : NVML_ERROR_INVALID_ARGUMENT;
	}
	return nvmlDeviceGetFanSpeed(device, speed);
}

NVML_API nvmlReturn_t
nvmlDeviceGetNumFans(nvmlDevice_t device, unsigned int *count)
{
	const struct sim_shm_gpu *gpu;
	if (count == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_FAN, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*count = 1;
	return NVML_SUCCESS;
}

static nvmlReturn_t
nvml_sim_clock(nvmlDevice_t device, int type, unsigned int *clock, bool max)
{
	const struct sim_shm_gpu *gpu;
	if (clock == NULL || type < NVML_CLOCK_GRAPHICS || type > NVML_CLOCK_VIDEO)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_CLOCKS, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	switch (type) {
	case NVML_CLOCK_GRAPHICS:
	case NVML_CLOCK_SM:
		*clock = max ? gpu->sm_clock_max_mhz : gpu->sm_clock_mhz;
		break;
	case NVML_CLOCK_MEM:
		*clock = max ? 10501 : 10501;
		break;
	default:
		*clock = max ? 2100 : (gpu->sm_clock_mhz ? 1500 : 0);
		break;
	}
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock)
{
	return nvml_sim_clock(device, type, clock, false);
}

NVML_API nvmlReturn_t
nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type, unsigned int *clock)
{
	return nvml_sim_clock(device, type, clock, true);
}

NVML_API nvmlReturn_t
nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)
{
	const struct sim_shm_gpu *gpu;
	if (reasons == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_CLOCK_EVENTS, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	*reasons = gpu->clock_event_reasons;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)
{
	return nvmlDeviceGetCurrentClocksEventReasons(device, reasons);
}

/*
 * The running-process protocol: *count is the capacity of infos on entry and the
 * number of processes on return. With capacity 0 (infos may be NULL) it answers
 * SUCCESS when there are none, else INSUFFICIENT_SIZE with the needed count; a too
 * small buffer also gets INSUFFICIENT_SIZE. stride is the element size (16 or 24).
 */
static nvmlReturn_t
nvml_sim_processes(nvmlDevice_t device, unsigned int *count, void *infos, size_t stride)
{
	const struct sim_shm_gpu *gpu;
	if (count == NULL || (*count > 0 && infos == NULL))
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_PROCESSES, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	unsigned int n = gpu->nprocs < SIM_SHM_MAX_PROCS ? gpu->nprocs : SIM_SHM_MAX_PROCS;
	if (*count < n) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (unsigned int i = 0; i < n; i++) {
		char *slot = (char *)infos + i * stride;
		if (stride == sizeof(nvmlProcessInfo_v1_t)) {
			nvmlProcessInfo_v1_t p = {.pid = gpu->procs[i].pid,
						  .usedGpuMemory = gpu->procs[i].used_bytes};
			memcpy(slot, &p, sizeof(p));
		} else {
			nvmlProcessInfo_v2_t p = {.pid = gpu->procs[i].pid,
						  .usedGpuMemory = gpu->procs[i].used_bytes,
						  .gpuInstanceId = 0xFFFFFFFFu,
						  .computeInstanceId = 0xFFFFFFFFu};
			memcpy(slot, &p, sizeof(p));
		}
	}
	*count = n;
	return NVML_SUCCESS;
}

NVML_API nvmlReturn_t
nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
					nvmlProcessInfo_v2_t *infos)
{
	return nvml_sim_processes(device, count, infos, sizeof(nvmlProcessInfo_v2_t));
}

NVML_API nvmlReturn_t
nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count,
					nvmlProcessInfo_v2_t *infos)
{
	return nvml_sim_processes(device, count, infos, sizeof(nvmlProcessInfo_v2_t));
}

NVML_API nvmlReturn_t
nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count,
				     nvmlProcessInfo_v1_t *infos)
{
	return nvml_sim_processes(device, count, infos, sizeof(nvmlProcessInfo_v1_t));
}

NVML_API nvmlReturn_t
nvmlDeviceGetPerformanceState(nvmlDevice_t device, int *pstate)
{
	const struct sim_shm_gpu *gpu;
	if (pstate == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = nvml_sim_gpu(device, SIM_FIELD_CLOCKS, &gpu);
	if (rc != NVML_SUCCESS)
		return rc;
	/* Busy cards run at P2 (compute), idle ones drop to P8. */
	*pstate = gpu->util_gpu_pct > 0 ? 2 : 8;
	return NVML_SUCCESS;
}

#endif /* !NVML_SIM_MINIMAL */
