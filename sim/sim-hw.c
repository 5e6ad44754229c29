/*
 * sim-hw.c: the simulated GPUs and the shared state file writer.
 *
 * The scheduler owns the memory accounting (used_by_models_bytes); this file holds
 * what the outside world sets (other processes, temperature, lost) and what derives
 * from activity (utilization, power, fan, SM clock, thermal clock-event reasons).
 * Temperature drifts toward 35 C idle / 83 C busy with a 20 s time constant of
 * simulated time unless fixed through /sim/gpu. sim_hw_publish writes everything
 * through the machine file (sim-machine.c), which merges every server's processes
 * under the seqlock of sim-shm.h; callers: sim-sched.c after every change, the
 * thermal tick in ollama-sim.c.
 */
#include "sim-hw.h"

#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_IDLE_C	      35.0
#define SIM_BUSY_C	      83.0
#define SIM_TAU_S	      20.0
#define SIM_IDLE_MW	      30000u
#define SIM_IDLE_MHZ	      210u
#define SIM_REASON_IDLE	      0x1ull
#define SIM_REASON_SW_THERMAL 0x20ull
#define SIM_REASON_HW_THERMAL 0x40ull

int
sim_hw_parse_gpus(const char *text, uint64_t *sizes, unsigned *n, char **cause)
{
	*n = 0;
	if (strcmp(text, "none") == 0 || *text == '\0')
		return 0;
	char *copy = xstrdup(text);
	char *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*n >= SIM_MAX_GPUS) {
			rc = vd_fail(cause, -EINVAL, "--gpus: at most %d GPUs", SIM_MAX_GPUS);
			break;
		}
		char *why = NULL;
		if (vd_parse_size(tok, &sizes[*n], &why) < 0 || sizes[*n] < 512 * VD_MIB) {
			rc = vd_fail(cause, -EINVAL, "--gpus: \"%s\": %s", tok,
				     why != NULL ? why : "a GPU needs at least 512MiB");
			free(why);
			break;
		}
		(*n)++;
	}
	free(copy);
	return rc;
}

static const char *
sim_gpu_model_name(uint64_t total)
{
	if (total <= 8 * VD_GIB)
		return "NVIDIA GeForce RTX 4060";
	if (total <= 12 * VD_GIB)
		return "NVIDIA GeForce RTX 4070";
	if (total <= 16 * VD_GIB)
		return "NVIDIA GeForce RTX 4080";
	if (total <= 24 * VD_GIB)
		return "NVIDIA GeForce RTX 4090";
	if (total <= 48 * VD_GIB)
		return "NVIDIA RTX 6000 Ada Generation";
	return "NVIDIA H100 80GB HBM3";
}

void
sim_hw_init(struct sim_hw *hw, const uint64_t *sizes, unsigned n, uint64_t ram_bytes, uint64_t seed)
{
	memset(hw, 0, sizeof(*hw));
	hw->ngpus = n;
	hw->ram_bytes = ram_bytes;
	hw->seed = seed;
	hw->next_pid = 51000;
	hw->other_pid_base = 40000;
	uint64_t rng = seed ^ 0x9e3779b97f4a7c15ULL;
	for (unsigned i = 0; i < n; i++) {
		struct sim_gpu *g = &hw->gpus[i];
		g->index = i;
		g->machine_index = i;
		g->total_bytes = sizes[i];
		/* Drivers reserve a few hundred MiB per card for contexts and ECC. */
		g->reserved_bytes = sizes[i] >= 16 * VD_GIB ? 384 * VD_MIB : 256 * VD_MIB;
		g->slowdown_c = 87;
		g->shutdown_c = 92;
		g->max_c = 89;
		g->power_limit_mw = sizes[i] >= 20 * VD_GIB ? 450000 : 220000;
		g->sm_clock_max_mhz = 2520;
		g->pci_bus = 1 + i;
		snprintf(g->name, sizeof(g->name), "%s (simulated)", sim_gpu_model_name(sizes[i]));
		uint64_t a = vd_rand64(&rng), b = vd_rand64(&rng);
		snprintf(g->uuid, sizeof(g->uuid), "GPU-%08x-%04x-%04x-%04x-%012llx",
			 (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff,
			 (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
		snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "00000000:%02X:00.0",
			 (unsigned)g->pci_bus);
	}
	sim_hw_reset(hw);
}

void
sim_hw_reset(struct sim_hw *hw)
{
	for (unsigned i = 0; i < hw->ngpus; i++) {
		struct sim_gpu *g = &hw->gpus[i];
		g->other_bytes = 0;
		vd_strlcpy(g->other_name, "python3", sizeof(g->other_name));
		g->other_pid = hw->other_pid_base + g->machine_index;
		g->temperature_c = SIM_IDLE_C;
		g->temperature_fixed = false;
		g->utilization_override = -1;
		g->lost = false;
		g->unsupported = 0;
	}
}

void
sim_hw_select(struct sim_hw *hw, const unsigned *sel, unsigned n)
{
	struct sim_gpu kept[SIM_MAX_GPUS];
	unsigned k = 0;
	for (unsigned i = 0; i < n && k < SIM_MAX_GPUS; i++)
		if (sel[i] < hw->ngpus)
			kept[k++] = hw->gpus[sel[i]];
	memset(hw->gpus, 0, sizeof(hw->gpus));
	for (unsigned i = 0; i < k; i++) {
		hw->gpus[i] = kept[i];
		hw->gpus[i].index = i;
	}
	hw->ngpus = k;
}

void
sim_hw_cleanup(struct sim_hw *hw)
{
	sim_machine_close(hw->machine);
	hw->machine = NULL;
	hw->shm = NULL;
	vd_free(hw->state_path);
}

void
sim_hw_refresh(struct sim_hw *hw)
{
	if (hw->machine != NULL)
		sim_machine_refresh(hw->machine, hw);
}

uint32_t
sim_hw_next_runner_pid(struct sim_hw *hw)
{
	if (hw->machine != NULL)
		return sim_machine_next_pid(hw->machine);
	return hw->next_pid++;
}

uint64_t
sim_gpu_others_bytes(const struct sim_gpu *gpu)
{
	return gpu->other_bytes + gpu->peer_bytes;
}

uint64_t
sim_gpu_free_bytes(const struct sim_gpu *gpu)
{
	uint64_t used = gpu->reserved_bytes + gpu->used_by_models_bytes + sim_gpu_others_bytes(gpu);
	return used >= gpu->total_bytes ? 0 : gpu->total_bytes - used;
}

unsigned
sim_gpu_utilization(const struct sim_gpu *gpu)
{
	if (gpu->utilization_override >= 0)
		return (unsigned)gpu->utilization_override;
	return gpu->busy ? 100 : 0;
}

unsigned
sim_gpu_power_mw(const struct sim_gpu *gpu)
{
	unsigned util = sim_gpu_utilization(gpu);
	return SIM_IDLE_MW + (unsigned)((uint64_t)(gpu->power_limit_mw - SIM_IDLE_MW) * util / 100);
}

unsigned
sim_gpu_fan_pct(const struct sim_gpu *gpu)
{
	double t = gpu->temperature_c;
	if (t <= 40)
		return 30;
	double pct = 30 + (t - 40) * 70 / 45;
	return pct > 100 ? 100 : (unsigned)pct;
}

static bool
sim_gpu_is_hot(const struct sim_gpu *gpu)
{
	return gpu->temperature_c >= gpu->slowdown_c;
}

unsigned
sim_gpu_sm_clock_mhz(const struct sim_gpu *gpu)
{
	if (sim_gpu_utilization(gpu) == 0)
		return SIM_IDLE_MHZ;
	return sim_gpu_is_hot(gpu) ? gpu->sm_clock_max_mhz / 2 : gpu->sm_clock_max_mhz;
}

uint64_t
sim_gpu_clock_event_reasons(const struct sim_gpu *gpu)
{
	uint64_t r = sim_gpu_utilization(gpu) == 0 ? SIM_REASON_IDLE : 0;
	if (sim_gpu_is_hot(gpu))
		r |= SIM_REASON_SW_THERMAL | SIM_REASON_HW_THERMAL;
	return r;
}

bool
sim_hw_tick(struct sim_hw *hw, int64_t dt_ns)
{
	bool changed = false;
	double k = 1.0 - exp(-((double)dt_ns / (double)VD_NS_PER_S) / SIM_TAU_S);
	for (unsigned i = 0; i < hw->ngpus; i++) {
		struct sim_gpu *g = &hw->gpus[i];
		if (g->temperature_fixed)
			continue;
		double target =
		    SIM_IDLE_C + (SIM_BUSY_C - SIM_IDLE_C) * sim_gpu_utilization(g) / 100;
		double before = g->temperature_c;
		g->temperature_c += (target - g->temperature_c) * k;
		if (fabs(target - g->temperature_c) < 0.05)
			g->temperature_c = target;
		if ((int)before != (int)g->temperature_c)
			changed = true;
	}
	return changed;
}

void
sim_hw_write_gpu_record(const struct sim_gpu *g, struct sim_shm_gpu *s)
{
	s->lost = g->lost;
	s->unsupported = g->unsupported;
	vd_strlcpy(s->name, g->name, sizeof(s->name));
	vd_strlcpy(s->uuid, g->uuid, sizeof(s->uuid));
	vd_strlcpy(s->pci_bus_id, g->pci_bus_id, sizeof(s->pci_bus_id));
	s->pci_domain = 0;
	s->pci_bus = g->pci_bus;
	s->pci_device = 0;
	s->pci_device_id = 0x268410de;
	s->total_bytes = g->total_bytes;
	s->reserved_bytes = g->reserved_bytes;
	s->temperature_c = (uint32_t)(g->temperature_c + 0.5);
	s->slowdown_c = g->slowdown_c;
	s->shutdown_c = g->shutdown_c;
	s->gpu_max_c = g->max_c;
	s->util_gpu_pct = sim_gpu_utilization(g);
	s->util_mem_pct = s->util_gpu_pct * 6 / 10;
	s->power_mw = sim_gpu_power_mw(g);
	s->power_limit_mw = g->power_limit_mw;
	s->fan_pct = sim_gpu_fan_pct(g);
	s->sm_clock_mhz = sim_gpu_sm_clock_mhz(g);
	s->sm_clock_max_mhz = g->sm_clock_max_mhz;
	s->clock_event_reasons = sim_gpu_clock_event_reasons(g);
}

void
sim_hw_publish(struct sim_hw *hw, const struct sim_hw_proc *procs, size_t nprocs)
{
	if (hw->machine != NULL)
		sim_machine_publish(hw->machine, hw, procs, nprocs);
}
