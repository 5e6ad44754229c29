/*
 * fleet.h: the Ollama servers vramd drives (nodes, node.h) and the decision that spans
 * them. On every kick (coalesced to once per loop turn) and every
 * SCHEDULER_LOOP_INTERVAL, the fleet
 *   1. asks each node's engine for its snapshot (engine_snapshot: its GPUs, its models,
 *      the queue's waiting jobs), which also confirms the node can decide now;
 *   2. routes: route_decide (pure, route.h) says which node gets each model's queue
 *      (warm nodes first, replicas when a queue is long, else the best node that can
 *      take it); jobs of a model no node could ever hold fail here;
 *   3. lets each ready node decide (sched_decide, pure) and act on its share.
 * It owns each node's backend, registry, monitor and engine, and wires the monitor's
 * reports to the engine, so observation flows one way: monitor -> fleet -> engine.
 */
#ifndef VRAMD_FLEET_H
#define VRAMD_FLEET_H

#include "engine.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct fleet;
struct job;
struct node;
struct registry;

/* How the fleet reports up to the daemon that owns it. */
struct fleet_hooks {
	void (*job_changed)(struct job *job, void *arg); /* a job's state changed: record it */
	void *arg;
};

/* Builds the nodes of the configuration (nodes.h) on the daemon's loop, with the host's
 * GPU monitor d->gpus already open. 0, or -errno with *cause. */
int fleet_new(struct daemon *d, const struct fleet_hooks *hooks, struct fleet **out, char **cause);
/* Stops every node; jobs in flight go back to queued in the store. */
void fleet_free(struct fleet *f);
/* Starts deciding (the scheduler's tick, kicks) and observing. Once; later calls do
 * nothing. */
void fleet_start(struct fleet *f);
/* Starts only the nodes' monitors (/api/version, /api/tags, /api/ps): what a cluster's
 * follower does, so it knows the models and what is loaded, and acts on nothing. */
void fleet_observe(struct fleet *f);

/* Runs the decision soon (once per loop turn at most). */
void fleet_kick(struct fleet *f);

size_t fleet_count(const struct fleet *f);
struct node *fleet_node(const struct fleet *f, size_t i);
/* The node named name (or with that URL); NULL if none. */
struct node *fleet_find(const struct fleet *f, const char *name);

/* The registry to judge a model name against: the first node that has it installed, else
 * the first node's. */
struct registry *fleet_registry_for(const struct fleet *f, const char *model);
/* Whether every reachable node's model list has been read (and at least one's). */
bool fleet_models_known(const struct fleet *f);

/* Aggregates over the nodes. */
void fleet_counters(const struct fleet *f, struct engine_counters *out);
bool fleet_cancel_job(struct fleet *f, struct job *job);
double fleet_eta_s(const struct fleet *f, const struct job *job, size_t position);
/* The soonest node's engine_eta_done_s: when the job would finish; < 0 when unknown. */
double fleet_eta_done_s(const struct fleet *f, const struct job *job, size_t position);
/* Why a waiting job's model cannot be loaded now (engine_waiting_reason on the node its
 * queue goes to); NULL when nothing keeps it. The caller frees it. */
char *fleet_waiting_reason(const struct fleet *f, const struct job *job);
/* The models resident on every node (local_only: on nodes of this host). */
json_t *fleet_loaded_models_json(const struct fleet *f, bool local_only);
/* Sets VRAM_ESTIMATION_MULTIPLIER in every node's registry. */
void fleet_set_multiplier(struct fleet *f, double multiplier);
/* Memory the resident models of every node on this host's GPU gpu take. */
uint64_t fleet_local_gpu_models_bytes(const struct fleet *f, int gpu);
void fleet_run_stats(const struct fleet *f, int *running, double *run_ms_mean);

#endif
