/*
 * thermal.h: the per-GPU state machine (issue 4) as a pure function. One step takes the
 * previous state, one reading (temperature, the card's slowdown threshold, memory used
 * by others as a share of the total, clock-event bits), the thresholds and the current
 * time, and gives the new state with the reasons for it. No I/O, no clock reads, no
 * globals, so tests drive it sample by sample (tests/test-thermal.c); gpu-policy.c runs
 * it on every GPU sample.
 *
 * States, hottest last: OPTIMAL < NORMAL < THROTTLED < CRITICAL < SHUTDOWN; UNAVAILABLE
 * when the GPU is not detected or lost. SHUTDOWN (only with temp_shutdown_c set, seed
 * 002's temp_critical) is where vramd stops using the GPU entirely: its jobs are stopped
 * and requeued and its models unloaded so it can cool (the engine acts on it). It is
 * entered at or above temp_shutdown_c and held until the temperature falls below the
 * CRITICAL boundary; then the GPU steps down as from CRITICAL (hysteresis, a new pause,
 * the cooldown). A reading without a temperature holds it. Going up is immediate. Going down needs
 * the reading to be a hysteresis margin below the boundary (hysteresis_c degrees, and as many
 * percentage points of memory), so a GPU sitting at a boundary does not flap. On top:
 *   - CRITICAL pauses dispatch for critical_pause_ms; the state is held until the pause
 *     ends, then re-evaluated (a GPU still critical starts a new pause);
 *   - leaving THROTTLED (or CRITICAL) for a cooler state waits throttle_cooldown_ms,
 *     counted from the first reading that allowed it; a hotter reading restarts it.
 */
#ifndef VRAMD_THERMAL_H
#define VRAMD_THERMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum thermal_state {
	THERMAL_OPTIMAL,
	THERMAL_NORMAL,
	THERMAL_THROTTLED,
	THERMAL_CRITICAL,
	THERMAL_SHUTDOWN,
	THERMAL_UNAVAILABLE,
};
#define THERMAL_NSTATES 6

/* Thresholds and timings (from the configuration; see config.h). */
struct thermal_config {
	int32_t temp_normal_c;	  /* at or above: NORMAL (TEMP_NORMAL_C) */
	int32_t temp_throttled_c; /* at or above: THROTTLED (TEMP_THROTTLED_C) */
	int32_t temp_critical_c;  /* above: CRITICAL (TEMP_CRITICAL_C), clamped to slowdown - 2 */
	int32_t temp_shutdown_c;  /* at or above: SHUTDOWN (TEMP_SHUTDOWN_C); 0: no such state */
	double mem_normal_pct;	  /* at or above: NORMAL (MEMORY_NORMAL_PCT) */
	double mem_throttled_pct; /* at or above: THROTTLED */
	double mem_critical_pct;  /* above: CRITICAL */
	double hysteresis_c;	  /* degrees below a boundary before moving down */
	double hysteresis_pct;	  /* percentage points of memory below a boundary */
	double speed[4];	  /* multiplier of OPTIMAL .. CRITICAL (SHUTDOWN: 0) */
	int64_t critical_pause_ms;
	int64_t throttle_cooldown_ms;
};

/* One reading. A field whose has_ flag is clear is unknown and does not count. */
struct thermal_input {
	bool available; /* detected, sampled and not lost */
	bool lost;	/* the driver says the GPU is lost (for the reason text) */
	bool has_temp;
	int32_t temp_c;
	bool has_slowdown;
	int32_t slowdown_c; /* the card's own slowdown threshold */
	bool has_mem;
	double mem_other_pct; /* memory used by others, percent of the total */
	bool has_clock_events;
	uint64_t clock_events; /* GPU_CLOCK_EVENT_* bits */
};

#define THERMAL_MAX_REASONS 6
#define THERMAL_REASON_LEN  112

/* The state of one GPU. Zero-initialised (with state UNAVAILABLE set by thermal_init)
 * before the first step. */
struct thermal_status {
	enum thermal_state state;
	int64_t since_ms;	   /* when state was entered (caller's clock) */
	int64_t paused_until_ms;   /* CRITICAL: no dispatch before this; 0 when not paused */
	int64_t cooldown_until_ms; /* leaving THROTTLED may happen at this time; 0: none */
	int32_t critical_above_c;  /* the effective CRITICAL boundary of the last step */
	size_t nreasons;
	char reasons[THERMAL_MAX_REASONS][THERMAL_REASON_LEN];
};

/* Default thresholds (the values); tests start from these. */
void thermal_config_default(struct thermal_config *cfg);

/* A status in UNAVAILABLE since now_ms. */
void thermal_init(struct thermal_status *st, int64_t now_ms);

/*
 * One step: the new status (out may alias prev) from prev, the reading in, cfg and the
 * time now_ms (any monotonic clock in milliseconds). Pure and total: every input gives
 * a defined state.
 */
void thermal_step(const struct thermal_status *prev, const struct thermal_input *in,
		  const struct thermal_config *cfg, int64_t now_ms, struct thermal_status *out);

/* The speed multiplier of a status (SHUTDOWN, UNAVAILABLE: 0). */
double thermal_speed(const struct thermal_status *st, const struct thermal_config *cfg);
/* Whether new work may be dispatched at now_ms: not UNAVAILABLE or SHUTDOWN, not in a
 * CRITICAL pause, and a speed above 0. */
bool thermal_accepts_work(const struct thermal_status *st, const struct thermal_config *cfg,
			  int64_t now_ms);
/* "OPTIMAL", ... (static strings). */
const char *thermal_state_name(enum thermal_state state);

#endif
