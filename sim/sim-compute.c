/*
 * sim-compute.c: the shared-compute model of ollama-sim. A device (one GPU, or the
 * host CPU) runs n concurrent streams at an aggregate of single x n^0.5 tokens/s,
 * each stream at single / n^0.5: batching gains something, but parallelism is not
 * free. A runner split over several devices goes at the pace of its busiest one.
 * `single` is the runner's own tokens/s alone (its GPU/CPU layer mix). The model is
 * evaluated at every generation tick, so a stream speeds up when another ends.
 * Callers: sim-api.c's generation timer.
 */
#include "sim-compute.h"

#include <math.h>

static bool
sim_compute_uses_cpu(const struct sim_runner *r)
{
	return r->ram_bytes > 0 || sim_runner_vram_total(r) == 0;
}

int
sim_compute_streams(const struct sim_sched *s, const struct sim_runner *r)
{
	int busiest = 0;
	for (unsigned g = 0; g <= SIM_MAX_GPUS; g++) {
		bool cpu = g == SIM_MAX_GPUS;
		if (cpu ? !sim_compute_uses_cpu(r) : r->vram_bytes[g] == 0)
			continue;
		int n = 0;
		const struct sim_runner *o;
		TAILQ_FOREACH(o, &s->runners, entry)
		{
			if (cpu ? sim_compute_uses_cpu(o) : o->vram_bytes[g] > 0)
				n += o->slots_busy;
		}
		if (n > busiest)
			busiest = n;
	}
	return busiest > 1 ? busiest : 1;
}

double
sim_compute_stream_tps(const struct sim_sched *s, const struct sim_runner *r)
{
	return r->tokens_per_s / sqrt((double)sim_compute_streams(s, r));
}
