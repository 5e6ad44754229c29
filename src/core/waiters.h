/*
 * waiters.h: an index of long-polls by the job they wait for, so that a job's change
 * wakes its own waiters without looking at anyone else's (GET /api/job/{id}?wait=S).
 *
 * Intrusive: the caller embeds a struct waiter in its own record and keeps it alive
 * while indexed. Buckets are chained by the job's seq, and grow with the number of
 * waiters, so adding, removing and finding one job's waiters cost O(1 + its waiters).
 * No I/O, no clock; the loop thread alone uses it.
 */
#ifndef VRAMD_WAITERS_H
#define VRAMD_WAITERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct waiter {
	struct waiter *next, **pprev; /* private: the bucket chain */
	int64_t seq;		      /* the job waited for */
};

struct waiters {
	struct waiter **buckets; /* owned; nbuckets a power of two, or 0 */
	size_t nbuckets;
	size_t count;
	uint64_t visits; /* waiters looked at by waiters_take: an operation count for tests */
};

void waiters_init(struct waiters *ix);
/* Frees the buckets; the waiters themselves are the caller's. */
void waiters_cleanup(struct waiters *ix);
/* Indexes w (not indexed yet) under seq. */
void waiters_add(struct waiters *ix, struct waiter *w, int64_t seq);
/* Takes w out of the index if it is in it (a no-op otherwise). */
void waiters_remove(struct waiters *ix, struct waiter *w);
/* Whether w is in the index. */
bool waiters_has(const struct waiter *w);
/*
 * Takes every waiter of seq out of the index and returns them, chained through
 * ->next (NULL when none), in no particular order. Only seq's bucket is looked at.
 */
struct waiter *waiters_take(struct waiters *ix, int64_t seq);
/* Whether anyone waits for seq (only seq's bucket is looked at). */
bool waiters_for(const struct waiters *ix, int64_t seq);
/* Any indexed waiter, or NULL when none (scans the buckets: for shutdown only). */
struct waiter *waiters_any(const struct waiters *ix);

#endif
