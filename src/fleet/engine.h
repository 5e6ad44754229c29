/*
 * engine.h: the "act" step. The engine keeps the runtime state of every model it has
 * touched (loading, loaded, unloading, jobs in flight), builds the scheduler's snapshot
 * from that state, the queue, the registry and the GPU monitor, runs sched_decide, and
 * carries out the plan through the backend. Results come back as callbacks on the loop.
 */
#ifndef VRAMD_ENGINE_H
#define VRAMD_ENGINE_H

#include "job.h"
#include "scheduler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct backend_running_list;
struct daemon;
struct engine;
struct node;
struct queue_model_summary;

/* How the engine reports up, never calling its owners: arg is hooks.arg. */
struct engine_hooks {
	void (*kick)(void *arg);			 /* decide again soon */
	void (*job_changed)(struct job *job, void *arg); /* record it (daemon_job_changed) */
	void *arg;
};

/* The engine of node. It reads the configuration, the queue and the host's GPU policy
 * from d, and reports through hooks. */
struct engine *engine_new(struct daemon *d, struct node *node, const struct engine_hooks *hooks);
/* Every node's engine (engines[0..n), this one included), so runners on GPUs that nodes of
 * this host share are told apart. Borrowed until engine_free. */
void engine_set_siblings(struct engine *e, struct engine *const *engines, size_t n);
/* Cancels everything in flight (jobs in flight go back to the queue in the store, so a
 * restart runs them) and frees the engine. */
void engine_free(struct engine *e);

/* Asks for a decision soon (the fleet coalesces them per loop turn). */
void engine_kick(struct engine *e);

/*
 * A decision, driven by the fleet (fleet.c) in three steps:
 * engine_snapshot() confirms unloads, observes loads, and builds the scheduler snapshot of
 * the node with sums (the queue's waiting jobs per model, nsum of them); it returns false
 * when the node cannot decide now (unreachable, not reconciled since an outage, no GPU
 * sample yet). engine_snapshot_view() and the accessors let the fleet read it;
 * engine_decide() then runs sched_decide with only the queues serve[] gives this node
 * (per snapshot model) and carries out the plan.
 */
bool engine_snapshot(struct engine *e, int64_t now, const struct queue_model_summary *sums,
		     size_t nsum);
/* The snapshot of the decision under way; NULL when the node is not deciding. */
const struct sched_snapshot *engine_snapshot_view(const struct engine *e);
/* Snapshot model i: its index in sums (-1: nothing queued), and whether the fleet gave it
 * to this node last time. */
int engine_snapshot_summary(const struct engine *e, size_t model);
bool engine_snapshot_model_routed(const struct engine *e, size_t model);
/* Loads of this node in flight on GPU id whose memory does not show yet; and adding
 * another node's such loads there (nodes sharing a GPU). */
uint64_t engine_own_pending(const struct engine *e, int gpu);
void engine_snapshot_add_pending(struct engine *e, int gpu, uint64_t bytes);
/* Snapshot model i is pinned on another node: here it is an ordinary model this time;
 * extra_copy: it is loaded here too, so unload it if nothing uses it. */
void engine_snapshot_unpin(struct engine *e, size_t model, bool extra_copy);
void engine_decide(struct engine *e, const bool *serve);
/* Fails the queued jobs of model name with why. */
void engine_fail_model(struct engine *e, const char *name, const char *why);

/* Cancels a job that is pending or running (aborting its backend request). Returns
 * false if the engine does not hold it. */
bool engine_cancel_job(struct engine *e, struct job *job);

/*
 * Reconciles the engine's model states with a fresh /api/ps listing of its server,
 * requested at sent_ms (monotonic), after the registry recorded it (reconcile.h has the
 * rules): models the server holds that vramd did not load are adopted (their memory
 * counts, jobs run on them, keep-alive applies); models vramd believed loaded that are
 * gone become unloaded, and after a server restart their running jobs are requeued.
 * Logs and emits model_adopted, model_gone and server_restarted. list is borrowed.
 */
void engine_observe_ps(struct engine *e, const struct backend_running_list *list, int64_t sent_ms);

/* The backend answered a health probe: reachable or not. Unreachable pauses dispatch. */
void engine_set_backend_up(struct engine *e, bool up);
bool engine_backend_is_up(const struct engine *e);

/* Counters since start. */
struct engine_counters {
	int64_t loads, unloads, load_failures, dispatched, completed, failed, retries;
	int64_t cpu_spills; /* loads planned on a GPU that the server put partly on the CPU */
};
void engine_counters(const struct engine *e, struct engine_counters *out);
/* How many times the engine looked a model up by name (hashed): a decision must not look
 * up every waiting model again (issue 12; tests/test-engine.c counts them). */
size_t engine_lookup_count(const struct engine *e);

/* A job's estimated start in seconds from now (rough); < 0 when unknown. */
double engine_eta_s(const struct engine *e, const struct job *job, size_t position);
/* Seconds from now until the job would finish: its start (engine_eta_s) plus one run of
 * its model (measured, else the node's mean); < 0 when unknown. DEADLINE_POLICY=reject. */
double engine_eta_done_s(const struct engine *e, const struct job *job, size_t position);
/* Why a waiting job's model cannot be loaded on this node now (what it needs, the most any
 * GPU has free, what holds the rest): a message the caller frees, or NULL when nothing
 * keeps it (resident, it fits, or nothing known yet). */
char *engine_waiting_reason(const struct engine *e, const struct job *job);
/* Whether this decision found that name's jobs of placement gpu can never fit a GPU of
 * this node (issue 11); then *footprint is the model's and *largest the most any GPU of
 * the node could ever give one model. False when it could, or no decision is under way. */
/* Fails the queued jobs of model name whose placement is placement, with why. */
void engine_fail_placement(struct engine *e, const char *name, enum job_placement placement,
			   const char *why);
bool engine_gpu_never_fits(const struct engine *e, const char *name, uint64_t *footprint,
			   uint64_t *largest);

/* JSON views for the API: the models resident or in transition, and per-model runtime. */
json_t *engine_loaded_models_json(const struct engine *e);
/* {"running": n, "gpu": g|null, "state": "loaded"} for one model (NULL if untouched). */
json_t *engine_model_json(const struct engine *e, const char *name);
/* Memory the engine's resident models take per GPU (for memory_models_bytes). */
uint64_t engine_gpu_models_bytes(const struct engine *e, int gpu);

/*
 * Model operations (seed 003/000; docs/api.md "Models"). name is the registry's display
 * name of an installed model. Each only records the request and kicks the scheduler;
 * engine_model_is_settled() says when it has been carried out.
 */
/* Forces where name runs from now on (SCHED_PLACE_GPU, SCHED_PLACE_CPU; SCHED_PLACE_AUTO
 * undoes it); a resident model elsewhere moves once no job of it runs, an unloaded one
 * is loaded there. */
void engine_model_force(struct engine *e, const char *name, enum sched_placement placement);
/* Loads name with no job (on GPU id gpu, or anywhere when gpu < 0); keep-alive applies
 * from the end of the load. */
void engine_model_load(struct engine *e, const char *name, int gpu);
/* Unloads name once no job of it runs. -EPERM with *cause (caller frees) when pinned. */
int engine_model_unload(struct engine *e, const char *name, char **cause);
/* Whether name is loaded or loading on this node. */
bool engine_model_is_placed(const struct engine *e, const char *name);
/* Whether the last decision gave this node the queued jobs of name. */
bool engine_model_routed(const struct engine *e, const char *name);
/* Jobs waiting in the queue that the last decision gave this node. */
int engine_queued_here(const struct engine *e);
/* Whether nothing asked of name is still under way (no load, unload or move pending). */
bool engine_model_is_settled(const struct engine *e, const char *name);
/* {"model","node","state","location","gpu","size_bytes","size_vram_bytes","placement",
 *  "pinned","gpu_priority","running","pending"}: a new reference. */
json_t *engine_model_location_json(const struct engine *e, const char *name);
/* Jobs running now, and the moving average of run times (ms; < 0 before the first). */
void engine_run_stats(const struct engine *e, int *running, double *run_ms_mean);

#endif
