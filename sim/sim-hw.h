/*
 * sim-hw.h: ollama-sim's simulated hardware: GPUs (memory, other processes,
 * temperature, utilization, power, fan, clocks, lost/unsupported flags) and host RAM,
 * plus the writer of the shared state file (sim-shm.h) that the simulated NVML reads.
 */
#ifndef VRAMD_SIM_HW_H
#define VRAMD_SIM_HW_H

#include "sim-machine.h"
#include "sim-shm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_GPUS SIM_SHM_MAX_GPUS

struct sim_gpu {
	unsigned index;
	uint64_t total_bytes;
	uint64_t reserved_bytes;       /* driver/context reserve: never usable by models */
	uint64_t used_by_models_bytes; /* kept up to date by the scheduler */
	uint64_t other_bytes;	       /* memory of "other processes" (POST /sim/gpu) */
	uint64_t peer_bytes;	       /* other servers' processes on the machine's GPU */
	unsigned machine_index;	       /* index on the machine (CUDA_VISIBLE_DEVICES) */
	char other_name[64];	       /* their process name ("python3") */
	uint32_t other_pid;
	double temperature_c;
	bool temperature_fixed;	  /* set through /sim/gpu: no drift toward the target */
	int utilization_override; /* -1: derived from activity */
	bool busy;		  /* a runner on it is generating */
	bool lost;
	uint32_t unsupported; /* SIM_FIELD_* */
	uint32_t slowdown_c, shutdown_c, max_c;
	uint32_t power_limit_mw;
	uint32_t sm_clock_max_mhz;
	char name[96];
	char uuid[96];
	char pci_bus_id[32];
	uint32_t pci_bus;
};

/* A model runner as the state file lists it. */
struct sim_hw_proc {
	unsigned gpu;
	uint32_t pid;
	uint64_t bytes;
};

struct sim_hw {
	struct sim_gpu gpus[SIM_MAX_GPUS];
	unsigned ngpus;
	uint64_t ram_bytes;
	uint64_t seed;
	struct sim_shm *shm; /* NULL without a machine file; points into it */
	char *state_path;
	struct sim_machine *machine; /* NULL without a machine file */
	uint64_t ram_used_bytes;     /* host RAM of our runners (set by the scheduler) */
	uint64_t peer_ram_bytes;     /* host RAM of the other servers' runners */
	uint32_t other_pid_base;     /* "other process" PIDs: base + machine index */
	uint32_t next_pid;	     /* runner PIDs without a machine */
};

/* Parses --gpus: "24GiB,24GiB" or "none". Returns the count in *n (<= SIM_MAX_GPUS)
 * or -EINVAL with *cause. */
int sim_hw_parse_gpus(const char *text, uint64_t *sizes, unsigned *n, char **cause);
/* Initialises the GPUs with deterministic names, UUIDs and PCI ids from seed. */
void sim_hw_init(struct sim_hw *hw, const uint64_t *sizes, unsigned n, uint64_t ram_bytes,
		 uint64_t seed);
/* Resets the settable state (other memory, temperature, overrides, lost, unsupported). */
void sim_hw_reset(struct sim_hw *hw);
/* Keeps only the GPUs in sel (machine indexes, in that order), renumbered from 0 as
 * CUDA_VISIBLE_DEVICES does. */
void sim_hw_select(struct sim_hw *hw, const unsigned *sel, unsigned n);
/* Leaves the machine, if any (its file stays on disk for the other servers and
 * readers), and frees what hw holds. */
void sim_hw_cleanup(struct sim_hw *hw);
/* Re-reads the other servers' memory from the machine (no-op without one). */
void sim_hw_refresh(struct sim_hw *hw);
/* A new runner PID, unique on the machine. */
uint32_t sim_hw_next_runner_pid(struct sim_hw *hw);

/* Memory physically free on a GPU right now (others, other servers and models
 * included). */
uint64_t sim_gpu_free_bytes(const struct sim_gpu *gpu);
/* Memory of other processes as Ollama sees it: POST /sim/gpu's plus the other
 * servers' on the same machine. */
uint64_t sim_gpu_others_bytes(const struct sim_gpu *gpu);
/* The utilization reported: the override, or 100 while busy, else 0. */
unsigned sim_gpu_utilization(const struct sim_gpu *gpu);
unsigned sim_gpu_power_mw(const struct sim_gpu *gpu);
unsigned sim_gpu_fan_pct(const struct sim_gpu *gpu);
unsigned sim_gpu_sm_clock_mhz(const struct sim_gpu *gpu);
uint64_t sim_gpu_clock_event_reasons(const struct sim_gpu *gpu);

/* Advances temperatures by dt_ns of simulated time toward their targets. Returns
 * true if any whole degree changed. */
bool sim_hw_tick(struct sim_hw *hw, int64_t dt_ns);

/* Rewrites the machine file (no-op without one) from the GPUs and the runner list. */
void sim_hw_publish(struct sim_hw *hw, const struct sim_hw_proc *procs, size_t nprocs);
/* Fills the static and telemetry fields of a GPU's NVML record (not its processes
 * or memory sums, which the machine merges from every server). */
void sim_hw_write_gpu_record(const struct sim_gpu *gpu, struct sim_shm_gpu *rec);

#endif
