/*
 * route.h: which node serves each model's queued jobs, the first half of a fleet
 * decision (the second is sched_decide on each node). Pure, like the scheduler: the
 * caller describes the nodes and, for every queued model, what each node can do with
 * it; route_decide() says which nodes get the model's queue.
 *
 * The rules, in order, for each model (highest priority first, then oldest job first):
 *  1. Warm first: every ready node where the model is loaded or loading serves it.
 *  2. Replicas: when its queue is longer than its warm nodes can run at once
 *     (max_concurrent per node) and fewer than max_replicas nodes hold it, one more
 *     ready node where it fits now without evicting anything serves it too.
 *  3. Not warm anywhere: the node it was sent to last time, if that node can still
 *     take it (sticky, so a load planned there is not undone by a small change) and
 *     either fits it now or no other node does;
 *     else the node MODEL_GPU_MAP ranks first among those that can take it; else a
 *     node where it fits now (spread: the most room; pack: the least room that fits);
 *     else where it fits after evicting idle models (the most room that way); else the
 *     ready node with the least work, where it waits.
 *  A node "can take" a model when the node is ready, has the model installed and could
 *  ever fit it. Room a model is given is taken off its node for the models after it.
 * Verdicts: SERVED; WAIT when no ready node can take it but a node that is not ready may;
 * NEVER_FITS when the model is installed somewhere but no node could ever fit it (its
 * jobs fail with a clear message); a model installed nowhere is served by the first
 * ready node, whose server then answers that it does not know it.
 */
#ifndef VRAMD_ROUTE_H
#define VRAMD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct route_config {
	int max_replicas;   /* MAX_REPLICAS: nodes a model may run on at once (>= 1) */
	int max_concurrent; /* MAX_CONCURRENT_PER_MODEL: jobs one node runs of a model */
	bool spread;	    /* PLACEMENT=spread, else pack */
};

struct route_node {
	bool ready;	     /* reachable, reconciled, telemetry known: may get work */
	uint64_t room_bytes; /* the most a new model can take now on one of its GPUs (or
				the CPU on a CPU-only node), margin and pending loads off */
	uint64_t idle_bytes; /* memory of its idle, unpinned resident models (evictable) */
	int work;	     /* jobs running and queued there */
};

/* What node n can do with model m: cells[m * nnodes + n]. */
struct route_cell {
	bool installed;
	bool ever_fits; /* the model could ever fit the node (sched_model_can_ever_fit) */
	bool warm;	/* loaded or loading there, and not being unloaded */
	bool previous;	/* the node served this model in the last decision */
	int map_rank;	/* MODEL_GPU_MAP rank of the node (lower first); -1 none */
	uint64_t footprint_bytes;
};

struct route_model {
	int queued;	  /* jobs waiting */
	int top_priority; /* the highest priority waiting (JOB_PRIORITY_*: lower is higher) */
	int64_t oldest_ms;
};

enum route_verdict {
	ROUTE_SERVED,
	ROUTE_WAIT,
	ROUTE_NEVER_FITS,
};

struct route_input {
	const struct route_config *config;
	const struct route_node *nodes;
	size_t nnodes;
	const struct route_model *models;
	size_t nmodels;
	const struct route_cell *cells; /* nmodels x nnodes, model-major */
};

/*
 * Fills serve (nmodels x nnodes, model-major: does node n get model m's queue) and
 * verdicts (nmodels). scratch: room for nmodels indexes and nnodes room and work
 * counters (route_scratch_size bytes), so a decision allocates nothing.
 */
size_t route_scratch_size(size_t nmodels, size_t nnodes);
void route_decide(const struct route_input *in, bool *serve, enum route_verdict *verdicts,
		  void *scratch);

const char *route_verdict_name(enum route_verdict v);

#endif
