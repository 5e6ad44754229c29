/*
 * breaker.c: the per-node circuit breaker (see breaker.h for the states). The monitor
 * and the engine of a node consult it before sending to the node's Ollama server and
 * report every answer; it only does arithmetic on the times they pass, so its tests
 * step a fake clock.
 *
 * Invariants: backoff_ms is 0 while closed and within [backoff_min_ms, backoff_max_ms]
 * otherwise; while open or half_open, retry_at_ms is opened_ms + backoff_ms, or the time
 * of a cancelled trial (a new one may start at once).
 */
#include "breaker.h"

#include "util.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

void
breaker_init(struct breaker *b, const struct breaker_config *cfg)
{
	memset(b, 0, sizeof(*b));
	if (cfg != NULL)
		b->cfg = *cfg;
	if (b->cfg.failure_threshold < 1)
		b->cfg.failure_threshold = BREAKER_DEFAULT_THRESHOLD;
	if (b->cfg.backoff_min_ms < 1)
		b->cfg.backoff_min_ms = BREAKER_DEFAULT_MIN_MS;
	if (b->cfg.backoff_max_ms < b->cfg.backoff_min_ms)
		b->cfg.backoff_max_ms = b->cfg.backoff_min_ms > BREAKER_DEFAULT_MAX_MS
					    ? b->cfg.backoff_min_ms
					    : BREAKER_DEFAULT_MAX_MS;
	b->state = BREAKER_CLOSED;
}

/* Opens for backoff_ms from now. */
static void
breaker_open(struct breaker *b, int64_t now_ms, int64_t backoff_ms)
{
	b->state = BREAKER_OPEN;
	b->backoff_ms = backoff_ms;
	b->opened_ms = now_ms;
	b->retry_at_ms = now_ms + backoff_ms;
	b->opens++;
}

bool
breaker_allows(const struct breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		return now_ms >= b->retry_at_ms;
	case BREAKER_HALF_OPEN:
		break;
	}
	return false;
}

void
breaker_begin_trial(struct breaker *b, int64_t now_ms)
{
	if (b->state == BREAKER_OPEN && now_ms >= b->retry_at_ms)
		b->state = BREAKER_HALF_OPEN;
}

void
breaker_success(struct breaker *b, int64_t now_ms)
{
	(void)now_ms;
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->backoff_ms = 0;
	b->retry_at_ms = 0;
}

void
breaker_failure(struct breaker *b, int64_t now_ms)
{
	if (b->failures < INT_MAX)
		b->failures++;
	switch (b->state) {
	case BREAKER_CLOSED:
		if (b->failures >= b->cfg.failure_threshold)
			breaker_open(b, now_ms, b->cfg.backoff_min_ms);
		break;
	case BREAKER_HALF_OPEN: {
		/* The trial failed: the node is still down, so wait longer each time. */
		int64_t next = b->backoff_ms > b->cfg.backoff_max_ms / 2 ? b->cfg.backoff_max_ms
									 : b->backoff_ms * 2;
		breaker_open(b, now_ms, next);
		break;
	}
	case BREAKER_OPEN:
		/* A request sent before the breaker opened; the open period stands. */
		break;
	}
}

void
breaker_cancel_trial(struct breaker *b, int64_t now_ms)
{
	if (b->state != BREAKER_HALF_OPEN)
		return;
	b->state = BREAKER_OPEN;
	b->retry_at_ms = now_ms;
}

int64_t
breaker_next_probe_ms(const struct breaker *b)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return INT64_MIN;
	case BREAKER_OPEN:
		return b->retry_at_ms;
	case BREAKER_HALF_OPEN:
		break;
	}
	return BREAKER_NO_PROBE;
}

const char *
breaker_state_name(enum breaker_state state)
{
	static const char *const names[] = {
	    [BREAKER_CLOSED] = "closed",
	    [BREAKER_OPEN] = "open",
	    [BREAKER_HALF_OPEN] = "half_open",
	};
	return (unsigned)state < VD_ARRAY_LEN(names) ? names[state] : "?";
}
