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
/* Removes and returns the next job of model (highest priority, oldest first), or NULL.
 * The caller receives the queue's reference. */
struct job *queue_pop_model(struct queue *q, const char *model);
/* Removes job if it is queued (cancel); drops the queue's reference. Returns whether
 * it was in the queue. */
bool queue_remove(struct queue *q, struct job *job);

/* The next job of model without removing it (borrowed), or NULL. */
struct job *queue_peek_model(const struct queue *q, const char *model);

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
 * priority. O(log n). */
size_t queue_position(const struct queue *q, const struct job *job);

/* Number of models with waiting jobs, and their summaries in no particular order.
 * summaries must have room for queue_model_count() entries; returns the count written. */
size_t queue_model_count(const struct queue *q);
size_t queue_summaries(const struct queue *q, struct queue_model_summary *summaries, size_t max);
/* Summary for one model (all zero counts if it has no waiting jobs). */
void queue_summary(const struct queue *q, const char *model, struct queue_model_summary *out);

#endif
