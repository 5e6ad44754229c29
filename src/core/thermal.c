/*
 * thermal.c: the per-GPU state machine (see thermal.h). Pure: every function here
 * depends on its arguments only.
 *
 * A step computes three levels from the reading: the "up" level (the state the reading
 * alone calls for), the "hysteresis" level (the same with every boundary lowered by the
 * hysteresis margin; never below the up level), and from them the new state: up when
 * that is at least the previous state, else the previous state lowered only as far as
 * the hysteresis level allows. Then the CRITICAL pause holds CRITICAL, and the throttle
 * cooldown holds THROTTLED. Reasons describe the final state in sentences for the API.
 *
 * Called by gpu-policy.c on every GPU sample, and by tests/test-thermal.c.
 */
#include "thermal.h"

#include "gpu.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const thermal_names[THERMAL_NSTATES] = {
    [THERMAL_OPTIMAL] = "OPTIMAL",     [THERMAL_NORMAL] = "NORMAL",
    [THERMAL_THROTTLED] = "THROTTLED", [THERMAL_CRITICAL] = "CRITICAL",
    [THERMAL_SHUTDOWN] = "SHUTDOWN",   [THERMAL_UNAVAILABLE] = "UNAVAILABLE",
};

const char *
thermal_state_name(enum thermal_state state)
{
	return (unsigned)state < THERMAL_NSTATES ? thermal_names[state] : "UNKNOWN";
}

void
thermal_config_default(struct thermal_config *cfg)
{
	*cfg = (struct thermal_config){
	    .temp_normal_c = 65,
	    .temp_throttled_c = 75,
	    .temp_critical_c = 85,
	    .mem_normal_pct = 70,
	    .mem_throttled_pct = 85,
	    .mem_critical_pct = 95,
	    .hysteresis_c = 3,
	    .hysteresis_pct = 3,
	    .speed = {1.0, 0.8, 0.5, 0.0},
	    .critical_pause_ms = 60000,
	    .throttle_cooldown_ms = 30000,
	};
}

void
thermal_init(struct thermal_status *st, int64_t now_ms)
{
	memset(st, 0, sizeof(*st));
	st->state = THERMAL_UNAVAILABLE;
	st->since_ms = now_ms;
}

static void thermal_reason(struct thermal_status *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
thermal_reason(struct thermal_status *st, const char *fmt, ...)
{
	if (st->nreasons >= THERMAL_MAX_REASONS)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->reasons[st->nreasons++], THERMAL_REASON_LEN, fmt, ap);
	va_end(ap);
}

/* The level of value against ascending boundaries: at or above normal or throttled,
 * above critical. With a margin (moving down) a level is kept while the value is above
 * its boundary minus the margin. */
static enum thermal_state
thermal_level(double value, double normal, double throttled, double critical, double margin)
{
	if (value > critical - margin)
		return THERMAL_CRITICAL;
	if (margin > 0 ? value > throttled - margin : value >= throttled)
		return THERMAL_THROTTLED;
	if (margin > 0 ? value > normal - margin : value >= normal)
		return THERMAL_NORMAL;
	return THERMAL_OPTIMAL;
}

static enum thermal_state
thermal_max(enum thermal_state a, enum thermal_state b)
{
	return a > b ? a : b;
}

static bool
thermal_bits_throttle(const struct thermal_input *in)
{
	return in->has_clock_events && (in->clock_events & GPU_CLOCK_EVENT_THERMAL_MASK) != 0;
}

/* The level the reading calls for, with boundaries lowered by the hysteresis margins
 * (0 for the "up" level). */
static enum thermal_state
thermal_reading_level(const struct thermal_input *in, const struct thermal_config *cfg,
		      int32_t critical_c, bool hysteresis)
{
	enum thermal_state level = THERMAL_OPTIMAL;
	if (in->has_temp)
		level = thermal_level(in->temp_c, cfg->temp_normal_c, cfg->temp_throttled_c,
				      critical_c, hysteresis ? cfg->hysteresis_c : 0);
	if (in->has_mem)
		level =
		    thermal_max(level, thermal_level(in->mem_other_pct, cfg->mem_normal_pct,
						     cfg->mem_throttled_pct, cfg->mem_critical_pct,
						     hysteresis ? cfg->hysteresis_pct : 0));
	if (thermal_bits_throttle(in))
		level = thermal_max(level, THERMAL_THROTTLED);
	return level;
}

static void
thermal_explain(struct thermal_status *st, const struct thermal_input *in,
		const struct thermal_config *cfg, int32_t critical_c, enum thermal_state up)
{
	if (st->state == THERMAL_SHUTDOWN) {
		if (in->has_temp && in->temp_c >= cfg->temp_shutdown_c)
			thermal_reason(st,
				       "temperature %d C >= %d C (TEMP_SHUTDOWN_C): vramd stops "
				       "using this GPU until it cools",
				       in->temp_c, cfg->temp_shutdown_c);
		else if (in->has_temp)
			thermal_reason(st,
				       "held in SHUTDOWN until the temperature (%d C) falls below "
				       "%d C",
				       in->temp_c, critical_c);
		else
			thermal_reason(st, "held in SHUTDOWN: no temperature reading");
		return;
	}
	if (in->has_temp) {
		enum thermal_state t = thermal_level(in->temp_c, cfg->temp_normal_c,
						     cfg->temp_throttled_c, critical_c, 0);
		if (t == THERMAL_CRITICAL && critical_c < cfg->temp_critical_c)
			thermal_reason(st, "temperature %d C > %d C (the card's slowdown %d C - 2)",
				       in->temp_c, critical_c, in->slowdown_c);
		else if (t == THERMAL_CRITICAL)
			thermal_reason(st, "temperature %d C > %d C", in->temp_c, critical_c);
		else if (t == THERMAL_THROTTLED)
			thermal_reason(st, "temperature %d C >= %d C", in->temp_c,
				       cfg->temp_throttled_c);
		else if (t == THERMAL_NORMAL)
			thermal_reason(st, "temperature %d C >= %d C", in->temp_c,
				       cfg->temp_normal_c);
	}
	if (in->has_mem) {
		enum thermal_state m =
		    thermal_level(in->mem_other_pct, cfg->mem_normal_pct, cfg->mem_throttled_pct,
				  cfg->mem_critical_pct, 0);
		if (m == THERMAL_CRITICAL)
			thermal_reason(st, "memory used by others %.1f %% > %g %%",
				       in->mem_other_pct, cfg->mem_critical_pct);
		else if (m == THERMAL_THROTTLED)
			thermal_reason(st, "memory used by others %.1f %% >= %g %%",
				       in->mem_other_pct, cfg->mem_throttled_pct);
		else if (m == THERMAL_NORMAL)
			thermal_reason(st, "memory used by others %.1f %% >= %g %%",
				       in->mem_other_pct, cfg->mem_normal_pct);
	}
	if (thermal_bits_throttle(in)) {
		if (in->clock_events & GPU_CLOCK_EVENT_SW_THERMAL)
			thermal_reason(st, "nvml: sw_thermal_slowdown");
		if (in->clock_events & GPU_CLOCK_EVENT_HW_THERMAL)
			thermal_reason(st, "nvml: hw_thermal_slowdown");
	}
	if (st->state > up && st->state != THERMAL_UNAVAILABLE) {
		if (st->paused_until_ms > 0 && up < THERMAL_CRITICAL)
			thermal_reason(st, "held in CRITICAL until the dispatch pause ends");
		else if (st->cooldown_until_ms > 0)
			thermal_reason(st,
				       "cooling down: leaves %s after %lld s below its thresholds",
				       thermal_state_name(st->state),
				       (long long)(cfg->throttle_cooldown_ms / 1000));
		else
			thermal_reason(st,
				       "hysteresis: stays %s until %g C / %g %% below its "
				       "threshold",
				       thermal_state_name(st->state), cfg->hysteresis_c,
				       cfg->hysteresis_pct);
	}
}

void
thermal_step(const struct thermal_status *prev, const struct thermal_input *in,
	     const struct thermal_config *cfg, int64_t now_ms, struct thermal_status *out)
{
	struct thermal_status st = *prev;
	st.nreasons = 0;
	if (!in->available) {
		if (st.state != THERMAL_UNAVAILABLE)
			st.since_ms = now_ms;
		st.state = THERMAL_UNAVAILABLE;
		st.paused_until_ms = 0;
		st.cooldown_until_ms = 0;
		thermal_reason(&st, in->lost ? "GPU lost (the driver reports it fell off the bus)"
					     : "GPU not detected or not sampled yet");
		*out = st;
		return;
	}

	int32_t critical_c = cfg->temp_critical_c;
	if (in->has_slowdown && in->slowdown_c - 2 < critical_c)
		critical_c = in->slowdown_c - 2;
	st.critical_above_c = critical_c;
	enum thermal_state up = thermal_reading_level(in, cfg, critical_c, false);
	enum thermal_state hyst = thermal_reading_level(in, cfg, critical_c, true);
	enum thermal_state from = prev->state == THERMAL_UNAVAILABLE ? up : prev->state;
	/* SHUTDOWN: entered at or above temp_shutdown_c, held until the temperature falls
	 * below the CRITICAL boundary (or is unknown). Leaving it is leaving CRITICAL. */
	bool shutdown =
	    cfg->temp_shutdown_c > 0 &&
	    (in->has_temp ? in->temp_c >= cfg->temp_shutdown_c ||
				(prev->state == THERMAL_SHUTDOWN && in->temp_c >= critical_c)
			  : prev->state == THERMAL_SHUTDOWN);
	if (shutdown) {
		if (prev->state != THERMAL_SHUTDOWN)
			st.since_ms = now_ms;
		st.state = THERMAL_SHUTDOWN;
		st.paused_until_ms = 0;
		st.cooldown_until_ms = 0;
		thermal_explain(&st, in, cfg, critical_c, up);
		*out = st;
		return;
	}
	if (from == THERMAL_SHUTDOWN) {
		from = THERMAL_CRITICAL;
		st.paused_until_ms = 0; /* a new pause starts if it stays CRITICAL */
	}

	enum thermal_state next = up >= from ? up : (hyst < from ? hyst : from);
	/* The CRITICAL pause holds the state until it ends, then re-evaluates. */
	if (from == THERMAL_CRITICAL && st.paused_until_ms > now_ms)
		next = THERMAL_CRITICAL;

	/* Leaving THROTTLED (or CRITICAL) for a cooler state waits the cooldown. */
	if (next >= THERMAL_THROTTLED) {
		st.cooldown_until_ms = 0;
	} else if (from >= THERMAL_THROTTLED && cfg->throttle_cooldown_ms > 0) {
		if (st.cooldown_until_ms == 0)
			st.cooldown_until_ms = now_ms + cfg->throttle_cooldown_ms;
		if (now_ms < st.cooldown_until_ms)
			next = THERMAL_THROTTLED;
		else
			st.cooldown_until_ms = 0;
	} else {
		st.cooldown_until_ms = 0;
	}

	if (next == THERMAL_CRITICAL) {
		if (cfg->critical_pause_ms <= 0)
			st.paused_until_ms = 0;
		else if (from != THERMAL_CRITICAL || st.paused_until_ms <= now_ms)
			st.paused_until_ms = now_ms + cfg->critical_pause_ms;
	} else {
		st.paused_until_ms = 0;
	}

	if (next != prev->state)
		st.since_ms = now_ms;
	st.state = next;
	thermal_explain(&st, in, cfg, critical_c, up);
	*out = st;
}

double
thermal_speed(const struct thermal_status *st, const struct thermal_config *cfg)
{
	if (st->state >= THERMAL_SHUTDOWN)
		return 0.0;
	return cfg->speed[st->state];
}

bool
thermal_accepts_work(const struct thermal_status *st, const struct thermal_config *cfg,
		     int64_t now_ms)
{
	if (st->state == THERMAL_UNAVAILABLE || st->state == THERMAL_SHUTDOWN)
		return false;
	if (st->state == THERMAL_CRITICAL && st->paused_until_ms > now_ms)
		return false;
	return thermal_speed(st, cfg) > 0.0;
}
