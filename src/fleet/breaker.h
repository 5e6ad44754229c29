/*
 * breaker.h: a circuit breaker per node, so that a dead Ollama server is not retried on
 * every job. Pure: the caller passes the time (monotonic ms) and sends the requests.
 *
 *   closed     requests go through; consecutive failures are counted, and the
 *              failure_threshold-th opens the breaker for backoff_min_ms.
 *   open       nothing goes through until retry_at_ms; then the next request the
 *              caller sends is a trial (breaker_begin_trial).
 *   half_open  one trial is in flight and nothing else goes through. Its success closes
 *              the breaker and resets the backoff; its failure opens it again for twice
 *              the last period, at most backoff_max_ms.
 *
 * A success in any state closes the breaker: the node answered. A failure reported while
 * open (a request sent before it opened) changes nothing but the count. Use:
 *
 *     if (breaker_allows(&b, now)) { breaker_begin_trial(&b, now); send(); }
 *     ... on the answer: breaker_success(&b, now) or breaker_failure(&b, now);
 *     ... or, when the request ended for a reason that says nothing about the node
 *         (cancelled by its client): breaker_cancel_trial(&b, now).
 */
#ifndef VRAMD_BREAKER_H
#define VRAMD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
	BREAKER_CLOSED,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN,
};

#define BREAKER_DEFAULT_THRESHOLD 3
#define BREAKER_DEFAULT_MIN_MS	  1000
#define BREAKER_DEFAULT_MAX_MS	  30000
#define BREAKER_NO_PROBE	  INT64_MAX /* breaker_next_probe_ms: wait for the trial */

struct breaker_config {
	int failure_threshold;	/* consecutive failures that open (< 1: the default 3) */
	int64_t backoff_min_ms; /* first open period (< 1: the default 1000) */
	int64_t backoff_max_ms; /* longest open period (< min: the larger of min and 30000) */
};

struct breaker {
	struct breaker_config cfg; /* with the defaults filled in */
	enum breaker_state state;
	int failures;	     /* consecutive failures; 0 after a success */
	int64_t opened_ms;   /* when it last opened */
	int64_t retry_at_ms; /* open: when the next trial may begin */
	int64_t backoff_ms;  /* the last open period; 0 while it has not opened since closing */
	uint64_t opens;	     /* times it opened, for status and logs */
};

/* A closed breaker; cfg may be NULL for the defaults. */
void breaker_init(struct breaker *b, const struct breaker_config *cfg);

/* Whether a request may be sent now: closed yes; open once retry_at_ms has come (that
 * request is then the trial); half_open no, its one trial is in flight. */
bool breaker_allows(const struct breaker *b, int64_t now_ms);

/* Marks the request about to be sent as the trial: open -> half_open when the retry time
 * has come. Otherwise it changes nothing, so it may be called before every request. */
void breaker_begin_trial(struct breaker *b, int64_t now_ms);

/* The node answered: -> closed, failures and backoff reset. */
void breaker_success(struct breaker *b, int64_t now_ms);

/* The node failed: counted; closed -> open at the threshold (backoff_min_ms); half_open ->
 * open with the backoff doubled (at most backoff_max_ms); open stays as it is. */
void breaker_failure(struct breaker *b, int64_t now_ms);

/* The trial ended without saying anything about the node: half_open -> open, with a new
 * trial allowed at once and the backoff unchanged. Otherwise nothing. */
void breaker_cancel_trial(struct breaker *b, int64_t now_ms);

/* When the caller should next probe the node: open, retry_at_ms; closed, now or whenever
 * its usual schedule says (returns INT64_MIN); half_open, BREAKER_NO_PROBE (the trial's
 * result decides). */
int64_t breaker_next_probe_ms(const struct breaker *b);

/* "closed", "open", "half_open"; "?" for a value out of range. */
const char *breaker_state_name(enum breaker_state state);

#endif
