/*
 * sim-shm.h: the shared state file between ollama-sim (the only writer) and the
 * simulated NVML library libnvidia-ml.so.1 (readers, in other processes).
 *
 * ollama-sim --state FILE creates FILE, sizes it to sizeof(struct sim_shm) and maps it
 * MAP_SHARED; it rewrites the GPU records whenever simulated memory, temperature or
 * processes change. The NVML library maps the file named by OLLAMA_SIM_STATE read-only.
 *
 * Consistency: a seqlock. The writer increments seq to an odd value, writes, then
 * increments it to an even value (with release ordering); a reader copies the whole
 * struct and retries while seq is odd or changed during the copy (acquire ordering).
 * Use sim_shm_read() below rather than reading fields in place.
 *
 * Bump SIM_SHM_VERSION when the layout changes; readers refuse other versions.
 */
#ifndef VRAMD_SIM_SHM_H
#define VRAMD_SIM_SHM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SIM_SHM_MAGIC	  0x4d495356u /* "VSIM" */
#define SIM_SHM_VERSION	  1u
#define SIM_SHM_MAX_GPUS  16
#define SIM_SHM_MAX_PROCS 32

/* Bits of sim_shm_gpu.unsupported: fields the simulated card answers NOT_SUPPORTED for. */
#define SIM_FIELD_TEMPERATURE  (1u << 0)
#define SIM_FIELD_POWER	       (1u << 1)
#define SIM_FIELD_FAN	       (1u << 2)
#define SIM_FIELD_UTILIZATION  (1u << 3)
#define SIM_FIELD_CLOCKS       (1u << 4)
#define SIM_FIELD_THRESHOLDS   (1u << 5)
#define SIM_FIELD_PROCESSES    (1u << 6)
#define SIM_FIELD_MEMORY_V2    (1u << 7)
#define SIM_FIELD_CLOCK_EVENTS (1u << 8)

struct sim_shm_proc {
	uint32_t pid;
	uint32_t is_model_runner; /* 1: a runner of a model ollama-sim loaded; 0: another program */
	uint64_t used_bytes;
	char name[64]; /* process name as nvmlSystemGetProcessName would give it */
};

struct sim_shm_gpu {
	uint32_t lost;	      /* 1: "fell off the bus": NVML answers NVML_ERROR_GPU_IS_LOST */
	uint32_t unsupported; /* SIM_FIELD_* bits */
	char name[96];	      /* "NVIDIA GeForce RTX 4090 (simulated)" */
	char uuid[96];	      /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
	char pci_bus_id[32];  /* "00000000:01:00.0" */
	uint32_t pci_domain, pci_bus, pci_device, pci_device_id;
	uint64_t total_bytes;
	uint64_t reserved_bytes;       /* driver-reserved; v2 memory info reports it */
	uint64_t used_by_models_bytes; /* sum of the runner processes below */
	uint64_t used_by_others_bytes; /* set through POST /sim/gpu/{index} */
	uint32_t temperature_c;
	uint32_t slowdown_c, shutdown_c, gpu_max_c; /* thresholds in degrees C */
	uint32_t util_gpu_pct, util_mem_pct;
	uint32_t power_mw, power_limit_mw;
	uint32_t fan_pct;
	uint32_t sm_clock_mhz, sm_clock_max_mhz;
	uint64_t clock_event_reasons; /* NVML clock event reason bits */
	uint32_t nprocs;
	struct sim_shm_proc procs[SIM_SHM_MAX_PROCS];
};

struct sim_shm {
	uint32_t magic;
	uint32_t version;
	uint32_t seq; /* seqlock: odd while the writer is writing */
	uint32_t ngpus;
	uint32_t writer_pid;
	char driver_version[80];     /* "555.42.06-sim" */
	int32_t cuda_driver_version; /* 12050 */
	struct sim_shm_gpu gpus[SIM_SHM_MAX_GPUS];
};

/* Writer side: bracket every update. */
static inline void
sim_shm_write_begin(struct sim_shm *shm)
{
	__atomic_store_n(&shm->seq, shm->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void
sim_shm_write_end(struct sim_shm *shm)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&shm->seq, shm->seq + 1, __ATOMIC_RELEASE);
}

/* Reader side: copies a consistent snapshot into out. Returns false if the mapping
 * is not a valid state file of this version. */
static inline bool
sim_shm_read(const struct sim_shm *shm, struct sim_shm *out)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t before = __atomic_load_n(&shm->seq, __ATOMIC_ACQUIRE);
		if (before & 1u)
			continue;
		memcpy(out, (const void *)shm, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint32_t after = __atomic_load_n(&shm->seq, __ATOMIC_RELAXED);
		if (before == after)
			return out->magic == SIM_SHM_MAGIC && out->version == SIM_SHM_VERSION &&
			       out->ngpus <= SIM_SHM_MAX_GPUS;
	}
	return false;
}

#endif
