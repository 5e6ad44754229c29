/*
 * test-thermal.c: unit tests for src/core/thermal.c, the per-GPU state machine: a ramp up
 * and down with hysteresis, no flapping at a boundary, the slowdown-threshold clamp,
 * thermal clock-event bits, memory-driven states, the CRITICAL pause and the throttle
 * cooldown, lost GPUs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu.h"
#include "thermal.h"

#include <string.h>

/* A config without pause and cooldown, so only thresholds and hysteresis act. */
static struct thermal_config
plain_config(void)
{
	struct thermal_config cfg;
	thermal_config_default(&cfg);
	cfg.critical_pause_ms = 0;
	cfg.throttle_cooldown_ms = 0;
	return cfg;
}

static struct thermal_input
temp_input(int32_t temp_c)
{
	return (struct thermal_input){.available = true, .has_temp = true, .temp_c = temp_c};
}

static enum thermal_state
step_temp(struct thermal_status *st, const struct thermal_config *cfg, int32_t temp_c,
	  int64_t now_ms)
{
	struct thermal_input in = temp_input(temp_c);
	thermal_step(st, &in, cfg, now_ms, st);
	return st->state;
}

static bool
has_reason(const struct thermal_status *st, const char *needle)
{
	for (size_t i = 0; i < st->nreasons; i++)
		if (strstr(st->reasons[i], needle) != NULL)
			return true;
	return false;
}

static void
test_ramp_up_and_down(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	assert_int_equal(st.state, THERMAL_UNAVAILABLE);
	int64_t t = 0;
	/* Up: each boundary is crossed at once. */
	assert_int_equal(step_temp(&st, &cfg, 40, t += 1000), THERMAL_OPTIMAL);
	assert_int_equal(st.nreasons, 0);
	assert_int_equal(step_temp(&st, &cfg, 64, t += 1000), THERMAL_OPTIMAL);
	assert_int_equal(step_temp(&st, &cfg, 65, t += 1000), THERMAL_NORMAL);
	assert_true(has_reason(&st, "temperature 65 C >= 65 C"));
	assert_int_equal(st.since_ms, t);
	assert_int_equal(step_temp(&st, &cfg, 74, t += 1000), THERMAL_NORMAL);
	assert_int_equal(step_temp(&st, &cfg, 75, t += 1000), THERMAL_THROTTLED);
	assert_int_equal(step_temp(&st, &cfg, 85, t += 1000), THERMAL_THROTTLED);
	assert_int_equal(step_temp(&st, &cfg, 86, t += 1000), THERMAL_CRITICAL);
	assert_true(has_reason(&st, "temperature 86 C > 85 C"));
	/* Down: only 3 C below each boundary. */
	assert_int_equal(step_temp(&st, &cfg, 85, t += 1000), THERMAL_CRITICAL);
	assert_int_equal(step_temp(&st, &cfg, 83, t += 1000), THERMAL_CRITICAL);
	assert_true(has_reason(&st, "hysteresis"));
	assert_int_equal(step_temp(&st, &cfg, 82, t += 1000), THERMAL_THROTTLED);
	assert_int_equal(step_temp(&st, &cfg, 73, t += 1000), THERMAL_THROTTLED);
	assert_int_equal(step_temp(&st, &cfg, 72, t += 1000), THERMAL_NORMAL);
	assert_int_equal(step_temp(&st, &cfg, 63, t += 1000), THERMAL_NORMAL);
	assert_int_equal(step_temp(&st, &cfg, 62, t += 1000), THERMAL_OPTIMAL);
	/* A big drop goes down several levels at once. */
	assert_int_equal(step_temp(&st, &cfg, 90, t += 1000), THERMAL_CRITICAL);
	assert_int_equal(step_temp(&st, &cfg, 40, t += 1000), THERMAL_OPTIMAL);
	/* Speeds follow the states. */
	st.state = THERMAL_NORMAL;
	assert_true(thermal_speed(&st, &cfg) == 0.8);
	st.state = THERMAL_THROTTLED;
	assert_true(thermal_speed(&st, &cfg) == 0.5);
	st.state = THERMAL_CRITICAL;
	assert_true(thermal_speed(&st, &cfg) == 0.0);
	assert_false(thermal_accepts_work(&st, &cfg, t));
}

static void
test_no_flapping_at_boundary(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	int changes = 0;
	enum thermal_state last = step_temp(&st, &cfg, 74, 0);
	/* A sensor jittering around 75 C: one change up, then none. */
	static const int32_t jitter[] = {75, 74, 75, 73, 76, 74, 73, 75, 74, 73, 74, 75};
	for (size_t i = 0; i < sizeof(jitter) / sizeof(jitter[0]); i++) {
		enum thermal_state now = step_temp(&st, &cfg, jitter[i], (int64_t)(i + 1) * 1000);
		if (now != last)
			changes++;
		last = now;
	}
	assert_int_equal(changes, 1);
	assert_int_equal(last, THERMAL_THROTTLED);
	/* Without hysteresis the same jitter flaps. */
	cfg.hysteresis_c = 0;
	thermal_init(&st, 0);
	last = step_temp(&st, &cfg, 74, 0);
	changes = 0;
	for (size_t i = 0; i < sizeof(jitter) / sizeof(jitter[0]); i++) {
		enum thermal_state now = step_temp(&st, &cfg, jitter[i], (int64_t)(i + 1) * 1000);
		if (now != last)
			changes++;
		last = now;
	}
	assert_true(changes > 4);
}

static void
test_slowdown_clamp(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	struct thermal_input in = temp_input(81);
	in.has_slowdown = true;
	in.slowdown_c = 82; /* CRITICAL from 80 C, not 85 C */
	thermal_step(&st, &in, &cfg, 1000, &st);
	assert_int_equal(st.state, THERMAL_CRITICAL);
	assert_int_equal(st.critical_above_c, 80);
	assert_true(has_reason(&st, "slowdown 82 C - 2"));
	in.temp_c = 80;
	thermal_step(&st, &in, &cfg, 2000, &st);
	assert_int_equal(st.state, THERMAL_CRITICAL); /* hysteresis: needs <= 77 */
	in.temp_c = 77;
	thermal_step(&st, &in, &cfg, 3000, &st);
	assert_int_equal(st.state, THERMAL_THROTTLED);
	/* A slowdown threshold above the configured one changes nothing. */
	thermal_init(&st, 0);
	in.temp_c = 86;
	in.slowdown_c = 95;
	thermal_step(&st, &in, &cfg, 1000, &st);
	assert_int_equal(st.critical_above_c, 85);
	assert_int_equal(st.state, THERMAL_CRITICAL);
	in.temp_c = 85;
	thermal_init(&st, 0);
	thermal_step(&st, &in, &cfg, 1000, &st);
	assert_int_equal(st.state, THERMAL_THROTTLED);
}

static void
test_throttle_bits(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	struct thermal_input in = temp_input(50);
	in.has_clock_events = true;
	in.clock_events = GPU_CLOCK_EVENT_IDLE | GPU_CLOCK_EVENT_SW_POWER_CAP;
	thermal_step(&st, &in, &cfg, 1000, &st);
	assert_int_equal(st.state, THERMAL_OPTIMAL); /* not thermal */
	in.clock_events = GPU_CLOCK_EVENT_SW_THERMAL;
	thermal_step(&st, &in, &cfg, 2000, &st);
	assert_int_equal(st.state, THERMAL_THROTTLED);
	assert_true(has_reason(&st, "nvml: sw_thermal_slowdown"));
	in.clock_events = GPU_CLOCK_EVENT_HW_THERMAL;
	thermal_step(&st, &in, &cfg, 3000, &st);
	assert_int_equal(st.state, THERMAL_THROTTLED);
	assert_true(has_reason(&st, "hw_thermal_slowdown"));
	/* Bits without validity do not count. */
	in.has_clock_events = false;
	thermal_step(&st, &in, &cfg, 4000, &st);
	assert_int_equal(st.state, THERMAL_OPTIMAL);
}

static void
test_memory_states(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	struct thermal_input in = {.available = true, .has_mem = true};
	static const struct {
		double pct;
		enum thermal_state want;
	} steps[] = {
	    {10, THERMAL_OPTIMAL},   {69.9, THERMAL_OPTIMAL},	{70, THERMAL_NORMAL},
	    {85, THERMAL_THROTTLED}, {95, THERMAL_THROTTLED},	{95.5, THERMAL_CRITICAL},
	    {93, THERMAL_CRITICAL},  {91.9, THERMAL_THROTTLED}, {83, THERMAL_THROTTLED},
	    {81.9, THERMAL_NORMAL},  {67.5, THERMAL_NORMAL},	{66.9, THERMAL_OPTIMAL},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		in.mem_other_pct = steps[i].pct;
		thermal_step(&st, &in, &cfg, (int64_t)(i + 1) * 1000, &st);
		assert_int_equal(st.state, steps[i].want);
	}
	/* Temperature and memory: the hotter one wins; reasons name both. */
	in.has_temp = true;
	in.temp_c = 70;
	in.mem_other_pct = 90;
	thermal_step(&st, &in, &cfg, 100000, &st);
	assert_int_equal(st.state, THERMAL_THROTTLED);
	assert_true(has_reason(&st, "memory used by others 90.0 % >= 85 %"));
	assert_true(has_reason(&st, "temperature 70 C >= 65 C"));
}

static void
test_critical_pause(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	cfg.critical_pause_ms = 60000;
	struct thermal_status st;
	thermal_init(&st, 0);
	assert_int_equal(step_temp(&st, &cfg, 50, 0), THERMAL_OPTIMAL);
	assert_true(thermal_accepts_work(&st, &cfg, 0));
	assert_int_equal(step_temp(&st, &cfg, 90, 1000), THERMAL_CRITICAL);
	assert_int_equal(st.paused_until_ms, 61000);
	assert_false(thermal_accepts_work(&st, &cfg, 1000));
	/* Cool at once: still held until the pause ends. */
	assert_int_equal(step_temp(&st, &cfg, 40, 2000), THERMAL_CRITICAL);
	assert_true(has_reason(&st, "pause"));
	assert_int_equal(step_temp(&st, &cfg, 40, 60999), THERMAL_CRITICAL);
	assert_false(thermal_accepts_work(&st, &cfg, 60999));
	/* The pause ends: re-evaluated. */
	assert_int_equal(step_temp(&st, &cfg, 40, 61000), THERMAL_OPTIMAL);
	assert_int_equal(st.paused_until_ms, 0);
	assert_true(thermal_accepts_work(&st, &cfg, 61000));
	/* Still hot when the pause ends: a new pause. */
	assert_int_equal(step_temp(&st, &cfg, 90, 70000), THERMAL_CRITICAL);
	assert_int_equal(st.paused_until_ms, 130000);
	assert_int_equal(step_temp(&st, &cfg, 90, 100000), THERMAL_CRITICAL);
	assert_int_equal(st.paused_until_ms, 130000);
	assert_int_equal(step_temp(&st, &cfg, 90, 130000), THERMAL_CRITICAL);
	assert_int_equal(st.paused_until_ms, 190000);
	assert_int_equal(st.since_ms, 70000);
	/* A non-zero critical speed without a pause still accepts work. */
	cfg.critical_pause_ms = 0;
	cfg.speed[THERMAL_CRITICAL] = 0.25;
	thermal_init(&st, 0);
	assert_int_equal(step_temp(&st, &cfg, 90, 1000), THERMAL_CRITICAL);
	assert_true(thermal_accepts_work(&st, &cfg, 1000));
}

static void
test_throttle_cooldown(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	cfg.throttle_cooldown_ms = 30000;
	struct thermal_status st;
	thermal_init(&st, 0);
	assert_int_equal(step_temp(&st, &cfg, 80, 0), THERMAL_THROTTLED);
	/* Cool enough to leave, but the cooldown holds it. */
	assert_int_equal(step_temp(&st, &cfg, 60, 10000), THERMAL_THROTTLED);
	assert_int_equal(st.cooldown_until_ms, 40000);
	assert_true(has_reason(&st, "cooling down"));
	assert_int_equal(step_temp(&st, &cfg, 60, 39999), THERMAL_THROTTLED);
	/* Hot again: the cooldown restarts from the next cool reading. */
	assert_int_equal(step_temp(&st, &cfg, 76, 35000), THERMAL_THROTTLED);
	assert_int_equal(st.cooldown_until_ms, 0);
	assert_int_equal(step_temp(&st, &cfg, 60, 36000), THERMAL_THROTTLED);
	assert_int_equal(st.cooldown_until_ms, 66000);
	/* 60 C is 3 C below NORMAL's boundary too: straight to OPTIMAL. */
	assert_int_equal(step_temp(&st, &cfg, 60, 66000), THERMAL_OPTIMAL);
	assert_int_equal(st.cooldown_until_ms, 0);
	/* From CRITICAL (after its pause) to cool: via THROTTLED and its cooldown. */
	cfg.critical_pause_ms = 5000;
	assert_int_equal(step_temp(&st, &cfg, 90, 100000), THERMAL_CRITICAL);
	assert_int_equal(step_temp(&st, &cfg, 50, 105000), THERMAL_THROTTLED);
	assert_int_equal(st.cooldown_until_ms, 135000);
	assert_int_equal(step_temp(&st, &cfg, 50, 135000), THERMAL_OPTIMAL);
}

static void
test_lost_and_back(void **state)
{
	(void)state;
	struct thermal_config cfg = plain_config();
	struct thermal_status st;
	thermal_init(&st, 0);
	assert_int_equal(step_temp(&st, &cfg, 80, 1000), THERMAL_THROTTLED);
	struct thermal_input in = {.available = false, .lost = true};
	thermal_step(&st, &in, &cfg, 2000, &st);
	assert_int_equal(st.state, THERMAL_UNAVAILABLE);
	assert_int_equal(st.since_ms, 2000);
	assert_true(has_reason(&st, "lost"));
	assert_false(thermal_accepts_work(&st, &cfg, 2000));
	assert_true(thermal_speed(&st, &cfg) == 0.0);
	/* Back: evaluated afresh, no hysteresis from before it was lost. */
	assert_int_equal(step_temp(&st, &cfg, 50, 3000), THERMAL_OPTIMAL);
	assert_int_equal(st.since_ms, 3000);
	/* Nothing known: OPTIMAL (nothing calls for more). */
	struct thermal_input none = {.available = true};
	thermal_step(&st, &none, &cfg, 4000, &st);
	assert_int_equal(st.state, THERMAL_OPTIMAL);
	assert_string_equal(thermal_state_name(THERMAL_UNAVAILABLE), "UNAVAILABLE");
}

/* TEMP_SHUTDOWN_C (seed 002's temp_critical): at or above it SHUTDOWN, no work and speed
 * 0; held while the temperature stays at or above the CRITICAL boundary (or is unknown);
 * then the GPU steps down as from CRITICAL: CRITICAL within the hysteresis, with a new
 * pause. Unset (0), the same temperatures give CRITICAL only. */
static void
test_shutdown(void **state)
{
	(void)state;
	struct thermal_config cfg;
	thermal_config_default(&cfg);
	cfg.temp_shutdown_c = 90;
	cfg.critical_pause_ms = 5000;
	cfg.throttle_cooldown_ms = 0;
	struct thermal_status st;
	thermal_init(&st, 0);
	int64_t t = 0;
	assert_int_equal(step_temp(&st, &cfg, 86, t += 1000), THERMAL_CRITICAL);
	assert_int_equal(step_temp(&st, &cfg, 89, t += 1000), THERMAL_CRITICAL);
	assert_int_equal(step_temp(&st, &cfg, 90, t += 1000), THERMAL_SHUTDOWN);
	assert_int_equal(st.since_ms, t);
	assert_true(has_reason(&st, "90 C >= 90 C (TEMP_SHUTDOWN_C)"));
	assert_string_equal(thermal_state_name(st.state), "SHUTDOWN");
	assert_false(thermal_accepts_work(&st, &cfg, t));
	assert_true(thermal_speed(&st, &cfg) == 0.0);
	assert_int_equal(st.paused_until_ms, 0);

	/* Held while at or above the CRITICAL boundary (85), and without a temperature. */
	assert_int_equal(step_temp(&st, &cfg, 87, t += 1000), THERMAL_SHUTDOWN);
	assert_int_equal(step_temp(&st, &cfg, 85, t += 1000), THERMAL_SHUTDOWN);
	assert_true(has_reason(&st, "falls below 85 C"));
	struct thermal_input none = {.available = true};
	thermal_step(&st, &none, &cfg, t += 1000, &st);
	assert_int_equal(st.state, THERMAL_SHUTDOWN);
	assert_int_equal(st.since_ms, t - 3000); /* entered once */

	/* Below it: CRITICAL within the hysteresis, with a new pause; then down as usual. */
	assert_int_equal(step_temp(&st, &cfg, 84, t += 1000), THERMAL_CRITICAL);
	assert_int_equal(st.paused_until_ms, t + 5000);
	assert_false(thermal_accepts_work(&st, &cfg, t));
	assert_int_equal(step_temp(&st, &cfg, 80, t += 6000), THERMAL_THROTTLED);
	assert_true(thermal_accepts_work(&st, &cfg, t));

	/* Straight from a cool reading to SHUTDOWN, and from SHUTDOWN far below: the
	 * hysteresis levels apply. */
	assert_int_equal(step_temp(&st, &cfg, 95, t += 1000), THERMAL_SHUTDOWN);
	assert_int_equal(step_temp(&st, &cfg, 50, t += 1000), THERMAL_OPTIMAL);

	/* Lost while SHUTDOWN: UNAVAILABLE, as any state. */
	assert_int_equal(step_temp(&st, &cfg, 92, t += 1000), THERMAL_SHUTDOWN);
	struct thermal_input lost = {.available = false, .lost = true};
	thermal_step(&st, &lost, &cfg, t += 1000, &st);
	assert_int_equal(st.state, THERMAL_UNAVAILABLE);

	/* Unset: no SHUTDOWN at any temperature. */
	cfg.temp_shutdown_c = 0;
	thermal_init(&st, t);
	assert_int_equal(step_temp(&st, &cfg, 120, t += 1000), THERMAL_CRITICAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ramp_up_and_down),
	    cmocka_unit_test(test_no_flapping_at_boundary),
	    cmocka_unit_test(test_slowdown_clamp),
	    cmocka_unit_test(test_throttle_bits),
	    cmocka_unit_test(test_memory_states),
	    cmocka_unit_test(test_critical_pause),
	    cmocka_unit_test(test_throttle_cooldown),
	    cmocka_unit_test(test_lost_and_back),
	    cmocka_unit_test(test_shutdown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
