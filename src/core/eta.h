/*
 * eta.h: when a waiting job should start, from what its node knows now (pure). The engine
 * fills one struct eta_input per job and node from its own state; the fleet takes the
 * soonest node. Used for eta_s at submit and in a waiting job's status, X-Vramd-ETA, and
 * Retry-After.
 *
 * The model: the job starts once its model is resident and the jobs ahead of it (its own
 * model's, in dispatch order) have left it a slot. A model not resident waits for a load:
 * at once when it fits; else, behind the models not loaded that have waited longer (the
 * scheduler serves starving models oldest first), until a resident model can go (an idle
 * one at once; a busy one once its queue drains) or its oldest job reaches MAX_BATCH_WAIT,
 * whichever comes first; then the load itself. At the server's resident cap a load needs
 * an unload even when the memory is free. Where swaps have been measured
 * (swap_s), the models served first take at least one swap each, and a load that needs
 * room at least one swap itself: loads run one at a time, and between two of them a
 * resident model drains and unloads, which the loads' own times leave out.
 */
#ifndef VRAMD_ETA_H
#define VRAMD_ETA_H

#include <stdbool.h>

struct eta_input {
	bool resident;	  /* the model is loaded (or loading) on the node */
	int running;	  /* its jobs in flight there */
	int ahead;	  /* its jobs that dispatch before this one */
	int slots;	  /* jobs of it that may run at once (>= 1) */
	double run_s;	  /* a job's mean run time; < 0: unknown (no estimate) */
	double load_s;	  /* a load's expected time (0 when resident) */
	bool fits_now;	  /* a load could start now without unloading anything */
	double evict_s;	  /* until a resident model can be unloaded: 0 if one is idle */
	double bound_s;	  /* until its oldest job reaches MAX_BATCH_WAIT (>= 0) */
	double loading_s; /* a load in flight: the time it still needs (0 when loaded) */
	double others_s;  /* models not loaded that have waited longer: their loads and queues,
			     which the scheduler serves first */
	int others_n;	  /* how many models others_s counts */
	int resident_n;	  /* models resident (or loading) on the node */
	int resident_max; /* the most the server keeps (OLLAMA_MAX_LOADED_MODELS); 0: none */
	double swap_s;	  /* measured time from one load's end to the next while models wait
			     for loads (drain, unload, fresh sample, load); 0: unknown */
};

/* Seconds from now until the job starts, or -1 when run_s is unknown. */
double eta_estimate(const struct eta_input *in);

#endif
