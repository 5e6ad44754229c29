/*
 * metrics.c: counters and histograms kept by label values, and the Prometheus text
 * exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Families come from the caller's static table; each holds its series in an array that
 * grows by doubling, searched linearly: a family has a handful to a few hundred series
 * (priorities, route patterns times statuses, models), and an update costs a few string
 * compares, which is nothing next to the event it counts. The text writer escapes label
 * values (backslash, double quote, newline) and HELP text (backslash, newline), and
 * writes numbers so that Prometheus reads back the same double.
 */
#include "metrics.h"

#include "util.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_series {
	char *values[METRICS_MAX_LABELS]; /* owned */
	double value;			  /* counters */
	struct metrics_histogram hist;	  /* histograms */
};

struct metrics_family {
	const struct metrics_def *def;
	size_t nlabels;
	struct metrics_series *series;
	size_t nseries, alloc;
};

struct metrics {
	struct metrics_family *families;
	size_t nfamilies;
	uint64_t dropped;
};

void
metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds)
{
	assert(nbounds <= METRICS_MAX_BUCKETS);
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = nbounds;
}

void
metrics_histogram_observe(struct metrics_histogram *h, double value)
{
	/* A NaN would poison the sum for good; it can only come from a broken caller. */
	if (isnan(value))
		return;
	size_t i = 0;
	while (i < h->nbounds && value > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += value;
	h->count++;
}

uint64_t
metrics_histogram_cumulative(const struct metrics_histogram *h, size_t i)
{
	uint64_t sum = 0;
	for (size_t b = 0; b <= i && b <= h->nbounds; b++)
		sum += h->counts[b];
	return sum;
}

bool
metrics_name_is_valid(const char *name, bool label)
{
	if (name == NULL || *name == '\0')
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (c == ':' && !label) || (p != name && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	/* Names starting with __ are reserved for Prometheus's own labels. */
	return !(label && strncmp(name, "__", 2) == 0);
}

static bool
metrics_def_is_valid(const struct metrics_def *def)
{
	if (!metrics_name_is_valid(def->name, false) || def->help == NULL)
		return false;
	size_t n = strlen(def->name);
	bool total = n > 6 && strcmp(def->name + n - 6, "_total") == 0;
	if ((def->type == METRICS_COUNTER) != total)
		return false;
	for (size_t i = 0; i < METRICS_MAX_LABELS && def->labels[i] != NULL; i++)
		if (!metrics_name_is_valid(def->labels[i], false) ||
		    strcmp(def->labels[i], "le") == 0)
			return false;
	if (def->type != METRICS_HISTOGRAM)
		return true;
	if (def->nbounds == 0 || def->nbounds > METRICS_MAX_BUCKETS)
		return false;
	for (size_t i = 1; i < def->nbounds; i++)
		if (!(def->bounds[i] > def->bounds[i - 1]))
			return false;
	return true;
}

struct metrics *
metrics_new(const struct metrics_def *defs, size_t n)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->families = xcalloc(n > 0 ? n : 1, sizeof(*m->families));
	m->nfamilies = n;
	for (size_t i = 0; i < n; i++) {
		/* A bad table is a programming error, in a Release build too. */
		if (!metrics_def_is_valid(&defs[i])) {
			fprintf(stderr, "fatal: metrics: bad definition of %s\n",
				defs[i].name != NULL ? defs[i].name : "(null)");
			abort();
		}
		m->families[i].def = &defs[i];
		while (m->families[i].nlabels < METRICS_MAX_LABELS &&
		       defs[i].labels[m->families[i].nlabels] != NULL)
			m->families[i].nlabels++;
	}
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfamilies; i++) {
		struct metrics_family *f = &m->families[i];
		for (size_t s = 0; s < f->nseries; s++)
			for (size_t l = 0; l < f->nlabels; l++)
				free(f->series[s].values[l]);
		free(f->series);
	}
	free(m->families);
	free(m);
}

static struct metrics_family *
metrics_family_find(struct metrics *m, const char *name, enum metrics_type type)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		if (strcmp(m->families[i].def->name, name) == 0 && m->families[i].def->type == type)
			return &m->families[i];
	assert(!"metrics: no such family");
	return NULL;
}

/* The series with the label values in ap, created when new; NULL past the bound. */
static struct metrics_series *
metrics_series_get(struct metrics *m, struct metrics_family *f, va_list ap)
{
	const char *values[METRICS_MAX_LABELS];
	for (size_t l = 0; l < f->nlabels; l++) {
		values[l] = va_arg(ap, const char *);
		if (values[l] == NULL)
			values[l] = "";
	}
	for (size_t s = 0; s < f->nseries; s++) {
		struct metrics_series *series = &f->series[s];
		size_t l = 0;
		while (l < f->nlabels && strcmp(series->values[l], values[l]) == 0)
			l++;
		if (l == f->nlabels)
			return series;
	}
	if (f->nseries >= METRICS_MAX_SERIES) {
		m->dropped++;
		return NULL;
	}
	if (f->nseries == f->alloc) {
		f->alloc = f->alloc ? f->alloc * 2 : 8;
		f->series = xreallocarray(f->series, f->alloc, sizeof(*f->series));
	}
	struct metrics_series *series = &f->series[f->nseries++];
	memset(series, 0, sizeof(*series));
	for (size_t l = 0; l < f->nlabels; l++)
		series->values[l] = xstrdup(values[l]);
	if (f->def->type == METRICS_HISTOGRAM)
		metrics_histogram_init(&series->hist, f->def->bounds, f->def->nbounds);
	return series;
}

/* The series of family name (of type) with the label values in ap; NULL when m is NULL,
 * no such family exists (a programming error, caught by assert in Debug builds) or the
 * family is past its series bound. */
static struct metrics_series *
metrics_series_vfind(struct metrics *m, const char *name, enum metrics_type type, va_list ap)
{
	if (m == NULL)
		return NULL;
	struct metrics_family *f = metrics_family_find(m, name, type);
	return f != NULL ? metrics_series_get(m, f, ap) : NULL;
}

void
metrics_add(struct metrics *m, const char *name, double value, ...)
{
	va_list ap;
	va_start(ap, value);
	struct metrics_series *series = metrics_series_vfind(m, name, METRICS_COUNTER, ap);
	va_end(ap);
	/* A counter only goes up; a negative or NaN amount is dropped, not written. */
	if (series != NULL && value >= 0)
		series->value += value;
}

void
metrics_observe(struct metrics *m, const char *name, double value, ...)
{
	va_list ap;
	va_start(ap, value);
	struct metrics_series *series = metrics_series_vfind(m, name, METRICS_HISTOGRAM, ap);
	va_end(ap);
	if (series != NULL)
		metrics_histogram_observe(&series->hist, value);
}

uint64_t
metrics_dropped(const struct metrics *m)
{
	return m != NULL ? m->dropped : 0;
}

/* --- The text format ---------------------------------------------------------------- */

static void
metrics_out_append(struct metrics_out *out, const char *data, size_t len)
{
	if (out->err == 0 && vd_buf_append(&out->buf, data, len) < 0)
		out->err = -E2BIG;
}

static void
metrics_out_str(struct metrics_out *out, const char *s)
{
	metrics_out_append(out, s, strlen(s));
}

/* Appends s escaped: backslash and newline always, the double quote in label values. */
static void
metrics_out_escaped(struct metrics_out *out, const char *s, bool quote)
{
	const char *run = s;
	for (const char *p = s; *p; p++) {
		const char *esc = *p == '\\'		 ? "\\\\"
				  : *p == '\n'		 ? "\\n"
				  : (*p == '"' && quote) ? "\\\""
							 : NULL;
		if (esc == NULL)
			continue;
		metrics_out_append(out, run, (size_t)(p - run));
		metrics_out_str(out, esc);
		run = p + 1;
	}
	metrics_out_str(out, run);
}

const char *
metrics_format_value(double value, char *text, size_t size)
{
	if (isnan(value))
		snprintf(text, size, "NaN");
	else if (isinf(value))
		snprintf(text, size, value > 0 ? "+Inf" : "-Inf");
	else if (value == floor(value) && fabs(value) < 1e15)
		snprintf(text, size, "%.0f", value);
	else {
		snprintf(text, size, "%.15g", value);
		if (strtod(text, NULL) != value)
			snprintf(text, size, "%.17g", value);
	}
	return text;
}

static const char *
metrics_type_name(enum metrics_type type)
{
	static const char *const names[] = {"counter", "gauge", "histogram"};
	return names[type];
}

void
metrics_write_head(struct metrics_out *out, const char *name, enum metrics_type type,
		   const char *help)
{
	metrics_out_str(out, "# HELP ");
	metrics_out_str(out, name);
	metrics_out_str(out, " ");
	metrics_out_escaped(out, help, false);
	metrics_out_str(out, "\n# TYPE ");
	metrics_out_str(out, name);
	metrics_out_str(out, " ");
	metrics_out_str(out, metrics_type_name(type));
	metrics_out_str(out, "\n");
}

/* name{labels[,le="le"]} value */
static void
metrics_write_line(struct metrics_out *out, const char *name, const char *suffix,
		   const struct metrics_label *labels, size_t nlabels, const char *le, double value)
{
	metrics_out_str(out, name);
	metrics_out_str(out, suffix);
	if (nlabels > 0 || le != NULL) {
		metrics_out_str(out, "{");
		for (size_t i = 0; i < nlabels; i++) {
			if (i > 0)
				metrics_out_str(out, ",");
			metrics_out_str(out, labels[i].name);
			metrics_out_str(out, "=\"");
			metrics_out_escaped(out, labels[i].value != NULL ? labels[i].value : "",
					    true);
			metrics_out_str(out, "\"");
		}
		if (le != NULL) {
			metrics_out_str(out, nlabels > 0 ? ",le=\"" : "le=\"");
			metrics_out_str(out, le);
			metrics_out_str(out, "\"");
		}
		metrics_out_str(out, "}");
	}
	char text[40];
	metrics_out_str(out, " ");
	metrics_out_str(out, metrics_format_value(value, text, sizeof(text)));
	metrics_out_str(out, "\n");
}

void
metrics_write_sample(struct metrics_out *out, const char *name, const struct metrics_label *labels,
		     size_t nlabels, double value)
{
	metrics_write_line(out, name, "", labels, nlabels, NULL, value);
}

void
metrics_write_histogram(struct metrics_out *out, const char *name,
			const struct metrics_label *labels, size_t nlabels,
			const struct metrics_histogram *h)
{
	char le[40];
	uint64_t cumulative = 0;
	for (size_t i = 0; i < h->nbounds; i++) {
		cumulative += h->counts[i];
		metrics_write_line(out, name, "_bucket", labels, nlabels,
				   metrics_format_value(h->bounds[i], le, sizeof(le)),
				   (double)cumulative);
	}
	metrics_write_line(out, name, "_bucket", labels, nlabels, "+Inf", (double)h->count);
	metrics_write_line(out, name, "_sum", labels, nlabels, NULL, h->sum);
	metrics_write_line(out, name, "_count", labels, nlabels, NULL, (double)h->count);
}

void
metrics_write(const struct metrics *m, struct metrics_out *out)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfamilies; i++) {
		const struct metrics_family *f = &m->families[i];
		metrics_write_head(out, f->def->name, f->def->type, f->def->help);
		for (size_t s = 0; s < f->nseries; s++) {
			const struct metrics_series *series = &f->series[s];
			struct metrics_label labels[METRICS_MAX_LABELS];
			for (size_t l = 0; l < f->nlabels; l++)
				labels[l] =
				    (struct metrics_label){f->def->labels[l], series->values[l]};
			if (f->def->type == METRICS_HISTOGRAM)
				metrics_write_histogram(out, f->def->name, labels, f->nlabels,
							&series->hist);
			else
				metrics_write_sample(out, f->def->name, labels, f->nlabels,
						     series->value);
		}
	}
}
