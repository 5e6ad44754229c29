/*
 * waiters.c: the long-poll index by job seq (see waiters.h). Chained hashing with
 * doubly linked chains (pprev), so a waiter whose client went away leaves in O(1).
 * Invariant: count is the number of indexed waiters, and nbuckets >= count once
 * anything was added (the index doubles when count would pass nbuckets).
 */
#include "waiters.h"

#include "util.h"

#include <stdlib.h>

#define WAITERS_MIN_BUCKETS 64

void
waiters_init(struct waiters *ix)
{
	*ix = (struct waiters){0};
}

void
waiters_cleanup(struct waiters *ix)
{
	free(ix->buckets);
	waiters_init(ix);
}

static size_t
waiters_bucket(const struct waiters *ix, int64_t seq)
{
	return (size_t)(vd_hash64(&seq, sizeof(seq), 0) & (ix->nbuckets - 1));
}

static void
waiters_link(struct waiters *ix, struct waiter *w)
{
	struct waiter **head = &ix->buckets[waiters_bucket(ix, w->seq)];
	w->next = *head;
	if (w->next != NULL)
		w->next->pprev = &w->next;
	w->pprev = head;
	*head = w;
}

static void
waiters_grow(struct waiters *ix)
{
	struct waiter **old = ix->buckets;
	size_t oldn = ix->nbuckets;
	ix->nbuckets = oldn > 0 ? oldn * 2 : WAITERS_MIN_BUCKETS;
	ix->buckets = xcalloc(ix->nbuckets, sizeof(*ix->buckets));
	for (size_t i = 0; i < oldn; i++) {
		struct waiter *w = old[i];
		while (w != NULL) {
			struct waiter *next = w->next;
			waiters_link(ix, w);
			w = next;
		}
	}
	free(old);
}

void
waiters_add(struct waiters *ix, struct waiter *w, int64_t seq)
{
	if (ix->count + 1 > ix->nbuckets)
		waiters_grow(ix);
	w->seq = seq;
	waiters_link(ix, w);
	ix->count++;
}

bool
waiters_has(const struct waiter *w)
{
	return w->pprev != NULL;
}

void
waiters_remove(struct waiters *ix, struct waiter *w)
{
	if (w->pprev == NULL)
		return;
	*w->pprev = w->next;
	if (w->next != NULL)
		w->next->pprev = w->pprev;
	w->next = NULL;
	w->pprev = NULL;
	ix->count--;
}

struct waiter *
waiters_take(struct waiters *ix, int64_t seq)
{
	if (ix->nbuckets == 0)
		return NULL;
	struct waiter *taken = NULL;
	struct waiter *w = ix->buckets[waiters_bucket(ix, seq)];
	while (w != NULL) {
		struct waiter *next = w->next;
		ix->visits++;
		if (w->seq == seq) {
			waiters_remove(ix, w);
			w->next = taken;
			taken = w;
		}
		w = next;
	}
	return taken;
}

bool
waiters_for(const struct waiters *ix, int64_t seq)
{
	if (ix->nbuckets == 0)
		return false;
	for (const struct waiter *w = ix->buckets[waiters_bucket(ix, seq)]; w != NULL; w = w->next)
		if (w->seq == seq)
			return true;
	return false;
}

struct waiter *
waiters_any(const struct waiters *ix)
{
	for (size_t i = 0; i < ix->nbuckets; i++)
		if (ix->buckets[i] != NULL)
			return ix->buckets[i];
	return NULL;
}
