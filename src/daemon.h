/*
 * daemon.h: the running vramd: every component and the glue between them, on one
 * libevent loop (observe -> decide -> act).
 *
 *   monitor.c   observe: polls each Ollama server (health, /api/tags, /api/ps) into its
 *               node's registry; the GPU monitor (gpu.c) samples memory and temperature.
 *   route.c,    decide: pure functions from snapshots to a plan: which node serves each
 *   scheduler.c model's queue, then per node what to unload, load and run.
 *   fleet.c     the nodes (one Ollama server each) and the decision across them.
 *   engine.c    act, per node: builds the node's snapshot and carries out its plan
 *               through the backend (load, unload, run), feeding results back.
 *   api-*.c     the HTTP API; store.c makes accepted jobs durable.
 *
 * Jobs that are not final live in the job table (and the queue or the engine); final
 * jobs are dropped from memory once stored and read back from the store on demand.
 * Only the loop thread touches any of this.
 */
#ifndef VRAMD_DAEMON_H
#define VRAMD_DAEMON_H

#include "job.h"
#include "waiters.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api_keys;
struct config;
struct fleet;
struct event;
struct event_base;
struct vd_httpd;
struct vd_http_req;
struct gpu_monitor;
struct gpu_policy;
struct httpc;
struct queue;
struct store;

struct daemon_job_table {
	struct job **slots; /* open addressing by seq; NULL = empty */
	size_t nslots;
	size_t count;
};

struct daemon {
	struct event_base *base;
	struct config *config;
	struct store *store;
	struct queue *queue;
	struct httpc *httpc;
	struct gpu_monitor *gpus;  /* this host's GPUs */
	struct gpu_map *gpu_map;   /* MODEL_GPU_MAP, or NULL */
	struct gpu_policy *policy; /* GPU states, throttling, reservations */
	struct fleet *fleet; /* the Ollama servers (nodes), each with its monitor and engine */
	struct vd_httpd *http;
	struct api_keys *keys;	      /* API_KEYS_FILE, or NULL: no keys, every caller may */
	struct daemon_job_table jobs; /* non-final jobs by seq, one reference each */
	struct metrics *metrics;      /* event counters for GET /metrics (api-metrics.c) */

	/* This host's telemetry, from which nodes of this host take theirs: */
	bool budget_mode;   /* no GPU telemetry: plan against VRAM_BUDGET */
	bool cpu_only_mode; /* no telemetry and no budget: models run on CPU */

	int64_t started_mono_ms;
	int64_t started_wall_ms;

	/* Group commit: 202 replies wait here until the batch holding their job commits. */
	struct event *commit_event;
	bool commit_requested;	      /* commit_event is active */
	struct event *lazy_commit;    /* a later commit for records nobody waits on */
	struct event *store_event;    /* the store's writer finished a commit */
	struct daemon_reply *replies; /* singly linked, oldest first */
	struct daemon_reply **replies_tail;
	/* Long-polls (GET /api/job/{id}?wait=S) waiting for a job to become final, by
	 * the job's seq (struct daemon_waiter, daemon.c). */
	struct waiters waiters;

	struct event *signal_int, *signal_term;

	/* Several instances on one PostgreSQL store (cluster.h); NULL with SQLite. */
	struct cluster *cluster;
	bool leading; /* the fleet runs here: always without a cluster, else once elected */
};

/*
 * Builds the daemon from a loaded configuration: opens the store (recovering unfinished
 * jobs into the queue), the GPU monitor, the backend, and the HTTP listener. Returns 0
 * or a negative errno with *cause (e.g. the port is taken, the data dir is unwritable).
 * Takes ownership of config.
 */
int daemon_new(struct config *config, struct daemon **out, char **cause);
/* Runs the loop until SIGINT/SIGTERM. */
int daemon_run(struct daemon *d);

/* Several instances (cluster.c). daemon_lead: this instance now runs the fleet, with
 * every unfinished job of the store queued (those in flight under a previous leader run
 * again); 0 or -errno with the cause logged. daemon_take_job: the leader queues a job
 * another instance accepted (a no-op for a job it has, or one no longer queued).
 * daemon_job_changed_elsewhere: a follower answers the long-polls of a job the leader
 * finished. */
int daemon_lead(struct daemon *d);
void daemon_take_job(struct daemon *d, const char *id);
void daemon_job_changed_elsewhere(struct daemon *d, const char *id);
void daemon_free(struct daemon *d);

/* Job table: non-final jobs by id. Borrowed pointer; NULL if not in memory. */
struct job *daemon_job_find(struct daemon *d, const char *id);
void daemon_job_add(struct daemon *d, struct job *job);

/*
 * Records a change of job (status, result, metrics) durably (in the current batch) and,
 * when the job became final, wakes its long-polls and drops it from the job table.
 */
void daemon_job_changed(struct daemon *d, struct job *job);

/* Cancels a job that is queued (taken out of the queue) or running (its node request
 * aborted): "cancelled by client". False when it is neither (final, or between states). */
bool daemon_cancel_job(struct daemon *d, struct job *job);

/* Makes sure the current batch is committed at the end of this loop turn. */
void daemon_request_commit(struct daemon *d);

/*
 * Replies to req once the batch holding the job commits: status 202 and body (stolen).
 * If the commit fails the client gets a 500 and the job is withdrawn.
 */
void daemon_reply_after_commit(struct daemon *d, struct vd_http_req *req, struct job *job,
			       json_t *body);

/* Holds req until job is final or timeout_ms passes, then answers with the job. */
void daemon_wait_for_job(struct daemon *d, struct vd_http_req *req, struct job *job,
			 int64_t timeout_ms);

/* Asks the engine to run the scheduler soon (coalesced; at most once per loop turn). */
void daemon_kick(struct daemon *d);

/*
 * After run-time configuration keys changed (PUT /api/gpu/config, SIGHUP): logs each key
 * of changed (an object of new values, borrowed) with why ("PUT /api/gpu/config"),
 * passes the ones a component caches on to it, re-evaluates the GPU policy and runs the
 * scheduler. It writes nothing: PUT /api/gpu/config has already kept the change in
 * DATA_DIR/runtime-config.json (config_set_many_kept), and SIGHUP rewrites it itself.
 */
void daemon_config_changed(struct daemon *d, const json_t *changed, const char *why);

int64_t daemon_uptime_s(const struct daemon *d);

#endif
