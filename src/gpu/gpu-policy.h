/*
 * gpu-policy.h: what vramd does with GPU telemetry (issue 4). Per GPU a thermal/memory
 * state (OPTIMAL, NORMAL, THROTTLED, CRITICAL, SHUTDOWN, UNAVAILABLE) with hysteresis, the speed
 * multiplier it implies for scheduling, the CRITICAL pause, and VRAM reservations for
 * programs that are not models (persisted in the store, expiring after their ttl).
 * State changes are published as events (events.h); the policy creates the event bus.
 *
 * The engine asks three questions per GPU when it builds a scheduler snapshot; the
 * daemon feeds every complete GPU sample in; the /api/gpu handlers read the rest.
 */
#ifndef VRAMD_GPU_POLICY_H
#define VRAMD_GPU_POLICY_H

#include "thermal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct events;
struct gpu_policy;

/* Creates the policy and its event bus, and loads the stored reservations (expired
 * ones are deleted). Call after d->gpus, d->store and d->httpc exist. Never NULL. */
/* (Re)reads the reservations from the store, replacing those in memory: at start, and
 * when a cluster's instance starts to lead or a follower shows them (another instance
 * made them). Returns how many, or -errno (logged; memory unchanged). */
int gpu_policy_load_reservations(struct gpu_policy *p);
struct gpu_policy *gpu_policy_new(struct daemon *d);

/* Where the policy learns what vramd's models hold on this host's GPUs (the daemon wires
 * it to the fleet, so the policy never calls the engines above it). list returns a new
 * array of {"gpu", "footprint_bytes", "running", ...} objects; bytes the sum on one GPU. */
struct gpu_policy_models {
	json_t *(*list)(void *arg);
	uint64_t (*bytes)(void *arg, int gpu);
	void *arg;
};
void gpu_policy_set_models(struct gpu_policy *p, const struct gpu_policy_models *models);
void gpu_policy_free(struct gpu_policy *p);

/* A complete GPU sample arrived: update states, expire reservations, emit events. */
void gpu_policy_on_sample(struct gpu_policy *p);
/* The thresholds changed (PUT /api/gpu/config): re-evaluate every GPU now. */
void gpu_policy_config_changed(struct gpu_policy *p);

/* Scheduling inputs for the GPU with this provider index. */
double gpu_policy_speed(const struct gpu_policy *p, int gpu);	   /* 1.0 .. 0.0 */
bool gpu_policy_accepts_work(const struct gpu_policy *p, int gpu); /* not paused/unavailable */
/* Whether the GPU is SHUTDOWN (TEMP_SHUTDOWN_C): vramd's models leave it, its jobs are
 * stopped and requeued, nothing is placed there until it cools. */
bool gpu_policy_is_shutdown(const struct gpu_policy *p, int gpu);
/* The GPU's state name: "OPTIMAL", "NORMAL", "THROTTLED", "CRITICAL" or "UNAVAILABLE"
 * (static string; "OPTIMAL" for a GPU the policy does not track, such as the budget). */
const char *gpu_policy_state_name(const struct gpu_policy *p, int gpu);
/* Reserved bytes not yet visible as used memory on that GPU. */
uint64_t gpu_policy_reserved_bytes(const struct gpu_policy *p, int gpu);

/* The event bus (borrowed for the policy's lifetime): events_emit(gpu_policy_events(
 * d->policy), "model_on_cpu", payload). */
struct events *gpu_policy_events(struct gpu_policy *p);

/* The thresholds in force (from the configuration). */
void gpu_policy_thermal_config(const struct gpu_policy *p, struct thermal_config *out);
/* The state of a GPU (borrowed until the next sample); NULL if the policy never saw it.
 * Times in it are monotonic milliseconds (vd_now_mono_ms). */
const struct thermal_status *gpu_policy_status(const struct gpu_policy *p, int gpu);

/* Memory of one GPU as the policy accounts it. */
struct gpu_policy_memory {
	bool known; /* total and used known from the latest sample */
	uint64_t total_bytes, used_bytes, free_bytes;
	uint64_t models_bytes;	    /* resident models vramd placed there */
	uint64_t busy_models_bytes; /* of those, the ones running jobs */
	uint64_t other_bytes;	    /* used by anything else */
	double other_percent;	    /* other / total */
	uint64_t limit_bytes;	    /* MEMORY_LIMIT_MB, or the total */
	uint64_t reserve_bytes;	    /* MEMORY_RESERVE_MB + VRAM_SAFETY_MARGIN_MB */
	uint64_t reserved_bytes;    /* reservations on this GPU, all */
	uint64_t reserved_pending;  /* of those, not yet taken by their programs */
	uint64_t available_bytes;   /* free - reserve - reservations not satisfied */
	uint64_t reservable_bytes;  /* limit - reserve - other - busy - reserved_pending */
};
/* Fills out for the GPU with this index; false when the monitor does not know it. */
bool gpu_policy_memory(const struct gpu_policy *p, int gpu, struct gpu_policy_memory *out);

/* A VRAM reservation. */
#define GPU_RESERVATION_ID_MAX 64
struct gpu_reservation {
	char id[GPU_RESERVATION_ID_MAX + 1];
	int gpu; /* provider index */
	uint64_t bytes;
	int64_t created_wall_ms;
	int64_t expires_wall_ms; /* 0: never */
	int64_t ttl_ms;
	bool satisfied; /* its GPU's free memory covers it (and the safety margin) */
};

size_t gpu_policy_reservation_count(const struct gpu_policy *p);
/* The i-th reservation, by creation; borrowed until the next change. */
const struct gpu_reservation *gpu_policy_reservation_at(const struct gpu_policy *p, size_t i);

/*
 * POST /api/gpu/memory/allocate. gpu < 0 picks the GPU with the most reservable memory.
 * renew: extend the existing reservation id (bytes 0 / gpu < 0 mean "as it is"), its
 * ttl restarting from now. On success copies the reservation into *out and persists
 * it. Errors (with *cause): -EINVAL bad id or values, -ENODEV unknown GPU, -ENOENT
 * renew of an unknown id, -EEXIST duplicate id (or a renew whose mb/gpu differ),
 * -ENOSPC it cannot fit (the message gives the arithmetic), -EIO the store failed.
 */
int gpu_policy_reserve(struct gpu_policy *p, const char *id, int gpu, uint64_t bytes,
		       int64_t ttl_ms, bool renew, struct gpu_reservation *out, char **cause);
/* POST /api/gpu/memory/deallocate: removes id (copied to *out). -ENOENT if unknown. */
int gpu_policy_release(struct gpu_policy *p, const char *id, struct gpu_reservation *out,
		       char **cause);
/* Whether id is 1-64 characters of A-Za-z0-9._- */
bool gpu_reservation_id_is_valid(const char *id);

/* The ttl of a reservation that gives none: RESERVATION_DEFAULT_TTL_S
 * (reservation_default_ttl_s in PUT /api/gpu/config). */
int64_t gpu_policy_default_ttl_s(const struct gpu_policy *p);

#endif
