/*
 * sim-machine.h: one simulated machine shared by several ollama-sim processes.
 *
 * A machine file starts with the NVML view (struct sim_shm, sim-shm.h, unchanged, so
 * the simulated NVML and nvidia-smi read it as before) and continues with the
 * machine's own record (struct sim_machine_file below): how it was created (GPU
 * sizes, seed, host RAM, time scale), a machine-wide runner PID counter, and one slot
 * per attached server holding that server's processes (runners and the "other
 * process" set through /sim/gpu) and its host-RAM use.
 *
 * Writers (ollama-sim processes) serialise on flock(LOCK_EX) of the file; the kernel
 * drops the lock of a process that dies, so a crash never wedges the others. Under
 * the lock a writer rewrites its own slot, clears the slots of servers that no
 * longer exist, and rebuilds every GPU's process list and memory sums in the NVML
 * view from all slots (under the seqlock readers rely on). Telemetry (temperature,
 * utilization, lost, ...) of a GPU comes from the last server that published it.
 *
 * Each server sees only the GPUs CUDA_VISIBLE_DEVICES names, renumbered from 0;
 * the other servers' processes on them count as other-process memory
 * (sim_gpu.peer_bytes), refreshed by sim_machine_refresh.
 */
#ifndef VRAMD_SIM_MACHINE_H
#define VRAMD_SIM_MACHINE_H

#include "sim-shm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MACHINE_MAGIC	0x4843414du /* "MACH" */
#define SIM_MACHINE_VERSION	1u
#define SIM_MACHINE_MAX_SERVERS 16
#define SIM_MACHINE_MAX_PROCS	64 /* per server */

struct sim_machine_proc {
	uint32_t gpu; /* machine index */
	uint32_t pid;
	uint32_t is_model_runner;
	uint32_t pad;
	uint64_t bytes;
	char name[64];
};

struct sim_machine_server {
	uint32_t pid; /* 0: free slot */
	uint32_t nprocs;
	uint64_t ram_used_bytes;
	struct sim_machine_proc procs[SIM_MACHINE_MAX_PROCS];
};

struct sim_machine_record {
	uint32_t magic;
	uint32_t version;
	uint32_t ngpus;
	uint32_t next_runner_pid;
	uint64_t gpu_bytes[SIM_SHM_MAX_GPUS];
	uint64_t ram_bytes;
	uint64_t seed;
	double time_scale;
	struct sim_machine_server servers[SIM_MACHINE_MAX_SERVERS];
};

/* The layout of a machine file. */
struct sim_machine_file {
	struct sim_shm shm;
	struct sim_machine_record machine;
};

/* What a machine is made of. */
struct sim_machine_desc {
	unsigned ngpus;
	uint64_t gpu_bytes[SIM_SHM_MAX_GPUS];
	uint64_t ram_bytes;
	uint64_t seed;
	double time_scale;
};

enum sim_machine_mode {
	SIM_MACHINE_ATTACH,  /* attach; create from the desc if absent and desc->ngpus given */
	SIM_MACHINE_CREATE,  /* create; fail if the file exists (--create) */
	SIM_MACHINE_REPLACE, /* create, replacing any file there (--state) */
};

struct sim_machine;
struct sim_hw;
struct sim_hw_proc;

/*
 * Opens the machine file at path. ATTACH with want == NULL only attaches; with want
 * it creates the machine when there is none and otherwise checks that the GPU sizes
 * agree. *got receives the machine's description. Returns 0 with *out (free with
 * sim_machine_close) or a negative errno with *cause.
 */
int sim_machine_open(const char *path, enum sim_machine_mode mode,
		     const struct sim_machine_desc *want, struct sim_machine **out,
		     struct sim_machine_desc *got, char **cause);
/* Claims a server slot for this process and attaches hw (whose GPUs carry their
 * machine_index) to the machine. Returns 0 or -ENOSPC with *cause. */
int sim_machine_join(struct sim_machine *m, struct sim_hw *hw, char **cause);
/* Rewrites this server's slot from procs (local GPU indexes) and hw, then the NVML
 * view of the whole machine; refreshes hw's peer memory. */
void sim_machine_publish(struct sim_machine *m, struct sim_hw *hw, const struct sim_hw_proc *procs,
			 size_t nprocs);
/* Updates hw's view of the other servers: peer_bytes per GPU and peer_ram_bytes. */
void sim_machine_refresh(struct sim_machine *m, struct sim_hw *hw);
/* A runner PID unique on the machine. */
uint32_t sim_machine_next_pid(struct sim_machine *m);
/* The path the machine was opened with; borrowed until sim_machine_close. */
const char *sim_machine_path(const struct sim_machine *m);
/* Leaves the machine (this server's processes disappear from it) and unmaps it. */
void sim_machine_close(struct sim_machine *m);

/*
 * Parses CUDA_VISIBLE_DEVICES as CUDA does: a comma-separated list of indexes or
 * GPU UUIDs (a unique prefix such as "GPU-8a3" suffices); the list ends at the first
 * entry that names no GPU or a GPU already listed. uuids[i] is GPU i's UUID. Fills
 * sel with machine indexes and *n with their count (0: no GPU visible).
 */
void sim_visible_devices_parse(const char *text, const char *const *uuids, unsigned ngpus,
			       unsigned *sel, unsigned *n);

#endif
