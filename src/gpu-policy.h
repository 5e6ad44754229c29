/*
 * gpu-policy.h: what vramd does with GPU telemetry (issue 4). Per GPU a thermal/memory
 * state (OPTIMAL, NORMAL, THROTTLED, CRITICAL, UNAVAILABLE) with hysteresis, the speed
 * multiplier it implies for scheduling, the CRITICAL pause, and VRAM reservations for
 * programs that are not models (persisted in the store, expiring after their ttl).
 * State changes are published as events (events.h).
 *
 * The engine asks three questions per GPU when it builds a scheduler snapshot; the
 * daemon feeds every complete GPU sample in.
 */
#ifndef VRAMD_GPU_POLICY_H
#define VRAMD_GPU_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct gpu_policy;

struct gpu_policy *gpu_policy_new(struct daemon *d);
void gpu_policy_free(struct gpu_policy *p);

/* A complete GPU sample arrived: update states, expire reservations, emit events. */
void gpu_policy_on_sample(struct gpu_policy *p);

/* Scheduling inputs for the GPU with this provider index. */
double gpu_policy_speed(const struct gpu_policy *p, int gpu);	   /* 1.0 .. 0.0 */
bool gpu_policy_accepts_work(const struct gpu_policy *p, int gpu); /* not paused/unavailable */
/* The GPU's state name: "OPTIMAL", "NORMAL", "THROTTLED", "CRITICAL" or "UNAVAILABLE"
 * (static string). */
const char *gpu_policy_state_name(const struct gpu_policy *p, int gpu);
/* Reserved bytes not yet visible as used memory on that GPU. */
uint64_t gpu_policy_reserved_bytes(const struct gpu_policy *p, int gpu);

#endif
