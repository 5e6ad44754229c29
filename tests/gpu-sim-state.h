/*
 * gpu-sim-state.h: a tiny writer of ollama-sim state files (sim/sim-shm.h) for the GPU
 * telemetry tests, so they can drive the simulated NVML and nvidia-smi without running
 * ollama-sim. Header-only; each test program includes it once.
 */
#ifndef VRAMD_TEST_GPU_SIM_STATE_H
#define VRAMD_TEST_GPU_SIM_STATE_H

#include "../sim/sim-shm.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct test_state {
	char path[64];
	struct sim_shm *shm;
};

/* Fills GPU i with a plausible RTX 4090 whose values are derived from i. */
static inline void
test_state_fill_gpu(struct sim_shm_gpu *g, unsigned i)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "NVIDIA GeForce RTX 4090 (simulated %u)", i);
	snprintf(g->uuid, sizeof(g->uuid), "GPU-%08x-1111-2222-3333-44444444444%u", 0xabc0 + i, i);
	snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "00000000:%02X:00.0", i + 1);
	g->pci_domain = 0;
	g->pci_bus = i + 1;
	g->pci_device = 0;
	g->pci_device_id = 0x268410DE;
	g->total_bytes = 24ull << 30;
	g->reserved_bytes = 300ull << 20;
	g->used_by_models_bytes = (2ull + i) << 30;
	g->used_by_others_bytes = 1ull << 30;
	g->temperature_c = 50 + i;
	g->slowdown_c = 90;
	g->shutdown_c = 95;
	g->gpu_max_c = 88;
	g->util_gpu_pct = 40 + i;
	g->util_mem_pct = 20 + i;
	g->power_mw = 250000 + i * 1000;
	g->power_limit_mw = 450000;
	g->fan_pct = 35 + i;
	g->sm_clock_mhz = 2520;
	g->sm_clock_max_mhz = 3105;
	g->clock_event_reasons = 0x4;
	g->nprocs = 2;
	g->procs[0] = (struct sim_shm_proc){
	    .pid = 4000 + i, .is_model_runner = 1, .used_bytes = g->used_by_models_bytes};
	snprintf(g->procs[0].name, sizeof(g->procs[0].name), "/usr/bin/ollama");
	g->procs[1] = (struct sim_shm_proc){.pid = 5000 + i, .used_bytes = 1ull << 30};
	snprintf(g->procs[1].name, sizeof(g->procs[1].name), "python3 train.py");
}

/* Creates a state file with ngpus GPUs and sets OLLAMA_SIM_STATE to it. */
static inline int
test_state_create(struct test_state *st, unsigned ngpus)
{
	snprintf(st->path, sizeof(st->path), "/tmp/vramd-gpu-test-XXXXXX");
	int fd = mkstemp(st->path);
	if (fd < 0 || ftruncate(fd, sizeof(struct sim_shm)) != 0)
		return -1;
	st->shm = mmap(NULL, sizeof(struct sim_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (st->shm == MAP_FAILED)
		return -1;
	sim_shm_write_begin(st->shm);
	st->shm->magic = SIM_SHM_MAGIC;
	st->shm->version = SIM_SHM_VERSION;
	st->shm->ngpus = ngpus;
	st->shm->writer_pid = (uint32_t)getpid();
	snprintf(st->shm->driver_version, sizeof(st->shm->driver_version), "555.42.06-sim");
	st->shm->cuda_driver_version = 12050;
	for (unsigned i = 0; i < ngpus; i++)
		test_state_fill_gpu(&st->shm->gpus[i], i);
	sim_shm_write_end(st->shm);
	setenv("OLLAMA_SIM_STATE", st->path, 1);
	return 0;
}

static inline void
test_state_destroy(struct test_state *st)
{
	munmap(st->shm, sizeof(struct sim_shm));
	unlink(st->path);
	unsetenv("OLLAMA_SIM_STATE");
}

#endif
