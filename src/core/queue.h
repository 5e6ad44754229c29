/*
 * queue.h: the job queue. Jobs wait per model, and per model in three FIFOs, one per
 * priority, so the scheduler can ask "how many jobs of model M wait, and since when"
 * in O(1) and take the next job of a model (highest priority first, FIFO within a
 * priority) in O(1). The queue holds one reference on each job in it.
 *
 * Capacity is QUEUE_MAX_SIZE jobs in all; a push beyond it fails with -ENOSPC (the API
 * answers 429 with Retry-After). The queue also counts the request bytes
 * (job->request_bytes) of every job pushed and not yet released, that is of every job
 * that is not final, whether it still waits or already runs: a push that would take
 * them beyond QUEUE_MAX_BYTES fails with -ENOBUFS. The owner of a job calls
 * queue_release_bytes() when the job becomes final.
 *
 * Fair share between API keys (job->key; jobs without one share the NULL key): within
 * one model's FIFO of one priority, the next job is the oldest of the key that has been
 * served the fewest tokens per unit of weight (weighted fair queuing on virtual token
 * counters, queue_charge), so a key that floods the queue cannot starve another key's
 * jobs of the same model and priority. Priorities still come first, and without keys
 * the order is plain FIFO. A key that becomes active again starts at the virtual time
 * of the keys that kept the queue busy, never earlier (start-time fair queuing).
 *
 * Deadlines (job->deadline_mono_ms): within a model and effective class, jobs with a
 * deadline go first, earliest deadline first (least slack: a model's jobs share one
 * expected run time), before fair share; jobs without one follow as above.
 */
#ifndef VRAMD_QUEUE_H
#define VRAMD_QUEUE_H

#include "job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct queue;

/* What the scheduler needs to know about one model's waiting jobs. */
struct queue_model_summary {
	const char *model; /* borrowed; valid while the model has jobs in the queue */
	int count[JOB_NPRIORITIES];
	int64_t oldest_enqueued_ms[JOB_NPRIORITIES]; /* monotonic; 0 when count is 0 */
	/* monotonic: the earliest deadline (job->deadline_mono_ms) of its waiting jobs of each
	 * priority; 0 when none of them has one */
	int64_t earliest_deadline_ms[JOB_NPRIORITIES];
	int placed[JOB_NPLACEMENTS]; /* the same jobs by placement (gpu, ...) */
	/* The job queue_peek_model would return (borrowed, valid until the queue changes):
	 * the engine's snapshot reads it for every waiting model, and a second lookup by
	 * name per model was a tenth of a decision's time (bench-decide). */
	const struct job *head;
};

struct queue *queue_new(size_t max_size);
/* Frees the queue and drops its reference on every job still in it. */
void queue_free(struct queue *q);

/* Appends job at the tail of its model's FIFO for its priority and takes a reference.
 * Sets job->status to queued, and job->enqueued_mono_ms to now when it is 0 (the caller
 * may set it first). Models are keyed by job->model exactly as given, so callers
 * normalise names ("x" vs "x:latest") before. Counts job->request_bytes unless the
 * queue counts them already. Returns 0, -ENOSPC when the queue holds its capacity of
 * jobs, or -ENOBUFS when the job's bytes do not fit (queue_has_room_bytes). */
int queue_push(struct queue *q, struct job *job);
/* Puts a job back at the head of its FIFO (a dispatch that could not start), ignoring
 * the capacities so nothing accepted is ever dropped. Takes a reference; counts
 * job->request_bytes unless the queue counts them already (a recovered job). */
void queue_push_front(struct queue *q, struct job *job);
/* Appends job at the tail of its FIFO ignoring the capacities: a job recovered at start,
 * so nothing accepted is dropped; recovered in submission order, they keep that order. */
void queue_push_recovered(struct queue *q, struct job *job);
/* Removes and returns the next job of model (highest priority first; within it, the
 * oldest job of the key with the least virtual time), or NULL. The caller receives the
 * queue's reference. O(keys with jobs in that model's FIFO). */
struct job *queue_pop_model(struct queue *q, const char *model);
/* Removes job if it is queued (cancel); drops the queue's reference. Returns whether
 * it was in the queue. */
bool queue_remove(struct queue *q, struct job *job);

/* The job queue_pop_model would return, without removing it (borrowed), or NULL. */
struct job *queue_peek_model(const struct queue *q, const char *model);
/* The same with aging (PRIORITY_AGING_S): the FIFO heads are compared by their effective
 * priority at now_ms (job_effective_priority), the older on a tie, so a low job that waited
 * long enough runs before newer normal or high jobs of its model. aging_ms 0: as above. */
struct job *queue_pop_model_aged(struct queue *q, const char *model, int64_t now_ms,
				 int64_t aging_ms);
struct job *queue_peek_model_aged(const struct queue *q, const char *model, int64_t now_ms,
				  int64_t aging_ms);

size_t queue_length(const struct queue *q);
size_t queue_capacity(const struct queue *q);
/* Changes the capacity; jobs already waiting beyond it stay. */
void queue_set_capacity(struct queue *q, size_t max_size);
/* Request bytes: the cap (QUEUE_MAX_BYTES; SIZE_MAX, the default, is no cap), the bytes
 * of the jobs counted now, and whether bytes more would fit. */
void queue_set_capacity_bytes(struct queue *q, size_t max_bytes);
size_t queue_capacity_bytes(const struct queue *q);
size_t queue_bytes(const struct queue *q);
bool queue_has_room_bytes(const struct queue *q, size_t bytes);
/* Stops counting job's request bytes (the job became final or was withdrawn). Safe to
 * call on any job, more than once. */
void queue_release_bytes(struct queue *q, struct job *job);
size_t queue_length_priority(const struct queue *q, enum job_priority priority);
/* Number of jobs that would be dispatched before job if nothing else arrived, counting
 * every model: jobs of higher priority plus older jobs (smaller seq) of the same
 * priority, as if every job had the same key (an estimate under fair share). O(log n). */
size_t queue_position(const struct queue *q, const struct job *job);
/* Jobs of job's model and priority that wait and are served before job by deadline: those
 * with an earlier deadline (job queued or not); for a job without one, every job of that
 * FIFO with one. O(deadline jobs in that FIFO ahead of it). */
size_t queue_deadline_ahead(const struct queue *q, const struct job *job);

/* Number of models with waiting jobs, and their summaries in no particular order.
 * summaries must have room for queue_model_count() entries; returns the count written. */
size_t queue_model_count(const struct queue *q);
/* How many times a model was looked up by name (hashed): a decision must not look up
 * every waiting model again (issue 12; tests/test-engine.c counts them). */
size_t queue_lookup_count(const struct queue *q);
size_t queue_summaries(const struct queue *q, struct queue_model_summary *summaries, size_t max);
/* Summary for one model (all zero counts if it has no waiting jobs). */
void queue_summary(const struct queue *q, const char *model, struct queue_model_summary *out);

/* Calls fn for each queued job of model, highest priority first, FIFO within one (not
 * in fair-share order). fn must not change the queue. O(jobs of the model). */
void queue_each_model_job(const struct queue *q, const char *model,
			  void (*fn)(struct job *job, void *arg), void *arg);

/* Fair share. The weight of key (default 1; 0 counts as 1), set once per API key. */
void queue_set_key_weight(struct queue *q, const char *key, unsigned weight);
/* A job of key ended having been served tokens (prompt + generated; 0 when unknown or
 * failed, which counts as 1): its key's virtual time moves on by tokens / weight. The
 * engine calls it whenever a run ends, before any requeue. */
void queue_charge(struct queue *q, const char *key, uint64_t tokens);

struct queue_key_stats {
	size_t queued;	 /* its jobs in the queue now */
	uint64_t tokens; /* tokens charged since the queue was made */
	double vtime;	 /* its virtual time */
	unsigned weight;
};
/* What the queue knows of key (all zero but weight 1 for a key it never saw). */
void queue_key_stats(const struct queue *q, const char *key, struct queue_key_stats *out);

#endif
