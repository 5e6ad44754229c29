/*
 * metrics.h: counters and histograms, and the Prometheus text exposition format (0.0.4)
 * they are written in.
 *
 * A program describes its metric families once, in a table (struct metrics_def), and
 * updates them where events happen: metrics_add() on a counter, metrics_observe() on a
 * histogram, each with the family's label values in the table's order. A series (one
 * combination of label values) is created the first time it is named; after that an
 * update is a lookup and an addition, with no allocation. Histograms keep a fixed array
 * of buckets (METRICS_MAX_BUCKETS), so observing never allocates either.
 *
 * Values that are read from the program's state at scrape time (gauges such as a GPU's
 * temperature) are not stored here: the scrape handler writes them with
 * metrics_write_head() and metrics_write_sample() next to metrics_write().
 *
 * Every function accepts a NULL struct metrics * and then does nothing, so components
 * built without one (unit tests) need no special case. Single-threaded, like the loop.
 */
#ifndef VRAMD_METRICS_H
#define VRAMD_METRICS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_LABELS  4
#define METRICS_MAX_BUCKETS 20
/* Series per family at most: labels come from bounded sets (priorities, route patterns,
 * installed models), and this bound keeps a bug from turning into unbounded memory.
 * Updates of series beyond it are dropped (metrics_dropped counts them). */
#define METRICS_MAX_SERIES 4096

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* One family, as a row of the program's table. Strings and bounds are borrowed for the
 * life of the struct metrics (static tables). */
struct metrics_def {
	const char *name; /* "vramd_jobs_completed_total" */
	enum metrics_type type;
	const char *help;
	const char *labels[METRICS_MAX_LABELS]; /* label names, unused ones NULL */
	const double *bounds;			/* histograms: upper bounds, ascending */
	size_t nbounds;				/* at most METRICS_MAX_BUCKETS */
};

/* A histogram: counts[i] observations in (bounds[i-1], bounds[i]], counts[nbounds] above
 * the last bound. Not cumulative; metrics_histogram_cumulative() gives Prometheus's le. */
struct metrics_histogram {
	const double *bounds; /* borrowed */
	size_t nbounds;
	uint64_t counts[METRICS_MAX_BUCKETS + 1];
	double sum;
	uint64_t count;
};

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds);
void metrics_histogram_observe(struct metrics_histogram *h, double value);
/* Observations <= bounds[i]; i == nbounds gives the count (le="+Inf"). */
uint64_t metrics_histogram_cumulative(const struct metrics_histogram *h, size_t i);

struct metrics;

/* A registry of the families in defs[0..n) (borrowed; asserts that each is well formed:
 * a valid name, a counter's ending in _total, ascending bounds). */
struct metrics *metrics_new(const struct metrics_def *defs, size_t n);
void metrics_free(struct metrics *m);

/*
 * Adds value (>= 0) to the counter family name, on the series the label values after
 * value name (as many as the family has labels, as const char *; NULL is written as "").
 * An unknown name or a wrong type is a broken invariant (assert).
 */
void metrics_add(struct metrics *m, const char *name, double value, ...);
/* Records value in the histogram family name, labels as for metrics_add. */
void metrics_observe(struct metrics *m, const char *name, double value, ...);
/* Updates of series past METRICS_MAX_SERIES, dropped. */
uint64_t metrics_dropped(const struct metrics *m);

/* --- The text format ---------------------------------------------------------------- */

/* Output with a sticky error: after the first failure (the buffer's cap) every write is
 * a no-op and err stays -E2BIG, so a truncated exposition is never served. */
struct metrics_out {
	struct vd_buf buf;
	int err;
};

/* A label of a sample written at scrape time. */
struct metrics_label {
	const char *name;
	const char *value; /* escaped when written; NULL is written as "" */
};

/* Writes every family of m in table order: HELP, TYPE, then its series. A family without
 * series yet writes only HELP and TYPE. */
void metrics_write(const struct metrics *m, struct metrics_out *out);
/* The "# HELP" and "# TYPE" lines of a family. */
void metrics_write_head(struct metrics_out *out, const char *name, enum metrics_type type,
			const char *help);
/* One sample line: name{labels} value. */
void metrics_write_sample(struct metrics_out *out, const char *name,
			  const struct metrics_label *labels, size_t nlabels, double value);
/* The _bucket, _sum and _count lines of one histogram series. */
void metrics_write_histogram(struct metrics_out *out, const char *name,
			     const struct metrics_label *labels, size_t nlabels,
			     const struct metrics_histogram *h);

/* value as the format writes it: integers exactly, others in the fewest digits that read
 * back to the same double, "NaN", "+Inf", "-Inf". Returns text (size >= 32). */
const char *metrics_format_value(double value, char *text, size_t size);
/* Whether name is a valid metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*; no ':' in a
 * label name). */
bool metrics_name_is_valid(const char *name, bool label);

#endif
