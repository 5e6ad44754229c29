/*
 * route.c: which node serves each queued model (rules in route.h). Pure: no I/O, no
 * clock, no allocation (the caller's scratch holds the working state).
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

struct route_scratch {
	size_t *order;	/* models, most urgent first */
	uint64_t *room; /* per node: room left as models are given to it */
	uint64_t *idle; /* per node: evictable memory left */
	int *work;	/* per node: work given so far */
};

static size_t
route_align(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

size_t
route_scratch_size(size_t nmodels, size_t nnodes)
{
	return route_align(nmodels * sizeof(size_t)) + 2 * route_align(nnodes * sizeof(uint64_t)) +
	       route_align(nnodes * sizeof(int));
}

static void
route_scratch_init(struct route_scratch *s, void *mem, size_t nmodels, size_t nnodes)
{
	char *p = mem;
	s->order = (size_t *)(void *)p;
	p += route_align(nmodels * sizeof(size_t));
	s->room = (uint64_t *)(void *)p;
	p += route_align(nnodes * sizeof(uint64_t));
	s->idle = (uint64_t *)(void *)p;
	p += route_align(nnodes * sizeof(uint64_t));
	s->work = (int *)(void *)p;
}

/* Most urgent first: higher priority, then the older oldest job, then index. */
static bool
route_before(const struct route_model *models, size_t a, size_t b)
{
	const struct route_model *x = &models[a], *y = &models[b];
	if (x->top_priority != y->top_priority)
		return x->top_priority < y->top_priority;
	if (x->oldest_ms != y->oldest_ms)
		return x->oldest_ms < y->oldest_ms;
	return a < b;
}

/* Insertion sort: a few hundred models at most, and nearly sorted from one decision to
 * the next; no qsort context needed. */
static void
route_sort(const struct route_input *in, size_t *order)
{
	for (size_t i = 0; i < in->nmodels; i++) {
		size_t x = i, j = i;
		while (j > 0 && route_before(in->models, x, order[j - 1])) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
}

static bool
route_can_take(const struct route_input *in, const struct route_cell *row, size_t n)
{
	return in->nodes[n].ready && row[n].installed && row[n].ever_fits;
}

/* Among nodes that can take the model: whether a is the better home than b (b may be
 * SIZE_MAX: none yet). fit: compare by room now; else by room after evictions. */
static bool
route_better(const struct route_input *in, const struct route_scratch *s,
	     const struct route_cell *row, size_t a, size_t b)
{
	if (b == SIZE_MAX)
		return true;
	uint64_t fa = row[a].footprint_bytes, fb = row[b].footprint_bytes;
	bool fits_a = s->room[a] >= fa, fits_b = s->room[b] >= fb;
	if (fits_a != fits_b)
		return fits_a;
	if (fits_a) {
		if (s->room[a] != s->room[b])
			return in->config->spread ? s->room[a] > s->room[b]
						  : s->room[a] < s->room[b];
	} else {
		bool evict_a = s->room[a] + s->idle[a] >= fa,
		     evict_b = s->room[b] + s->idle[b] >= fb;
		if (evict_a != evict_b)
			return evict_a;
		if (evict_a && s->room[a] + s->idle[a] != s->room[b] + s->idle[b])
			return s->room[a] + s->idle[a] > s->room[b] + s->idle[b];
	}
	if (s->work[a] != s->work[b])
		return s->work[a] < s->work[b];
	return a < b;
}

/* Gives model m's queue to node n. */
static void
route_give(const struct route_input *in, struct route_scratch *s, bool *serve, size_t m, size_t n,
	   bool load)
{
	serve[m * in->nnodes + n] = true;
	s->work[n] += in->models[m].queued;
	if (!load)
		return;
	uint64_t fp = in->cells[m * in->nnodes + n].footprint_bytes;
	if (s->room[n] >= fp) {
		s->room[n] -= fp;
	} else {
		uint64_t rest = fp - s->room[n];
		s->room[n] = 0;
		s->idle[n] = s->idle[n] > rest ? s->idle[n] - rest : 0;
	}
}

/* Rule 3: the home of a model warm nowhere; SIZE_MAX when no ready node can take it. */
static size_t
route_home(const struct route_input *in, const struct route_scratch *s,
	   const struct route_cell *row)
{
	size_t best = SIZE_MAX, previous = SIZE_MAX;
	bool room_elsewhere = false;
	for (size_t n = 0; n < in->nnodes; n++) {
		if (!route_can_take(in, row, n))
			continue;
		if (row[n].previous && previous == SIZE_MAX)
			previous = n;
		else if (s->room[n] >= row[n].footprint_bytes)
			room_elsewhere = true;
	}
	/* The node that had its queue keeps it (no bouncing while a load is planned there),
	 * unless it must first make room and another node has room now. */
	if (previous != SIZE_MAX &&
	    (s->room[previous] >= row[previous].footprint_bytes || !room_elsewhere))
		return previous;
	int best_rank = -1;
	for (size_t n = 0; n < in->nnodes; n++) {
		if (!route_can_take(in, row, n) || row[n].map_rank < 0)
			continue;
		if (best_rank < 0 || row[n].map_rank < best_rank) {
			best_rank = row[n].map_rank;
			best = n;
		}
	}
	if (best != SIZE_MAX)
		return best;
	for (size_t n = 0; n < in->nnodes; n++)
		if (route_can_take(in, row, n) && route_better(in, s, row, n, best))
			best = n;
	return best;
}

static enum route_verdict
route_model(const struct route_input *in, struct route_scratch *s, bool *serve, size_t m)
{
	const struct route_cell *row = &in->cells[m * in->nnodes];
	const struct route_model *rm = &in->models[m];
	size_t warm = 0;
	for (size_t n = 0; n < in->nnodes; n++) {
		if (row[n].warm && in->nodes[n].ready && row[n].installed) {
			route_give(in, s, serve, m, n, false);
			warm++;
		}
	}
	if (warm > 0) {
		int per_node = in->config->max_concurrent > 0 ? in->config->max_concurrent : 1;
		if ((int)warm >= in->config->max_replicas || rm->queued <= (int)warm * per_node)
			return ROUTE_SERVED;
		/* Rule 2: one more replica where it fits now. */
		size_t best = SIZE_MAX;
		for (size_t n = 0; n < in->nnodes; n++)
			if (!serve[m * in->nnodes + n] && route_can_take(in, row, n) &&
			    s->room[n] >= row[n].footprint_bytes &&
			    route_better(in, s, row, n, best))
				best = n;
		if (best != SIZE_MAX)
			route_give(in, s, serve, m, best, true);
		return ROUTE_SERVED;
	}
	size_t home = route_home(in, s, row);
	if (home != SIZE_MAX) {
		route_give(in, s, serve, m, home, true);
		return ROUTE_SERVED;
	}
	bool installed = false, maybe = false;
	for (size_t n = 0; n < in->nnodes; n++) {
		installed = installed || row[n].installed;
		/* A node that is not ready may fit it once it is back (its GPUs unknown). */
		maybe = maybe || (row[n].installed && (row[n].ever_fits || !in->nodes[n].ready));
	}
	if (installed)
		return maybe ? ROUTE_WAIT : ROUTE_NEVER_FITS;
	for (size_t n = 0; n < in->nnodes; n++) {
		if (in->nodes[n].ready) {
			route_give(in, s, serve, m, n, false);
			return ROUTE_SERVED;
		}
	}
	return ROUTE_WAIT;
}

void
route_decide(const struct route_input *in, bool *serve, enum route_verdict *verdicts, void *scratch)
{
	struct route_scratch s;
	route_scratch_init(&s, scratch, in->nmodels, in->nnodes);
	memset(serve, 0, in->nmodels * in->nnodes * sizeof(*serve));
	for (size_t n = 0; n < in->nnodes; n++) {
		s.room[n] = in->nodes[n].room_bytes;
		s.idle[n] = in->nodes[n].idle_bytes;
		s.work[n] = in->nodes[n].work;
	}
	route_sort(in, s.order);
	for (size_t i = 0; i < in->nmodels; i++) {
		size_t m = s.order[i];
		verdicts[m] =
		    in->models[m].queued > 0 ? route_model(in, &s, serve, m) : ROUTE_SERVED;
	}
}

const char *
route_verdict_name(enum route_verdict v)
{
	switch (v) {
	case ROUTE_SERVED:
		return "served";
	case ROUTE_WAIT:
		return "wait";
	case ROUTE_NEVER_FITS:
		return "never_fits";
	}
	return "unknown";
}
