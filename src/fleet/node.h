/*
 * node.h: one Ollama server of the fleet and what vramd keeps for it. fleet.c creates a
 * node per configured server and owns it; everything here is read by the engine, the
 * monitor and the API, and written only by fleet.c (and the monitor's callbacks there).
 *
 *   backend   the server's HTTP API (generate, ps, tags, ...)
 *   registry  the models installed there, and what their loads measured there
 *   monitor   observe: health probes, /api/tags, /api/ps into the registry
 *   engine    act: the node's model states, loads, unloads and runs
 *   gpus      its GPU telemetry: this host's monitor (shared by the nodes of this host,
 *             gpu_filter says which GPUs are the node's) or one of its own reading a
 *             remote vramd; NULL with a budget or on CPU only
 */
#ifndef VRAMD_NODE_H
#define VRAMD_NODE_H

#include "breaker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;
struct engine;
struct gpu_device;
struct gpu_monitor;
struct monitor;
struct registry;

/* How the node's GPUs are known. */
enum node_telemetry {
	NODE_TELEMETRY_LOCAL,  /* this host's GPU monitor (NVML or nvidia-smi) */
	NODE_TELEMETRY_REMOTE, /* a vramd on the node's machine: /api/gpu/status/all */
	NODE_TELEMETRY_BUDGET, /* no telemetry: a declared VRAM budget, one virtual GPU 0 */
	NODE_TELEMETRY_NONE,   /* no telemetry and no budget: models run on the CPU */
};

/* Requests a node served, for /api/lb_stats. */
struct node_stats {
	int64_t requests;  /* runs that ended (any outcome) */
	int64_t completed; /* runs that ended with an answer */
	int64_t failures;  /* runs that failed on the node's side (unreachable, timeout, 5xx) */
	int64_t latency_ms_sum;
};

struct node {
	size_t index; /* in the fleet, 0-based; also the order of every listing */
	char *name;
	char *url;
	char **labels;
	size_t nlabels;
	enum node_telemetry telemetry;
	struct gpu_monitor *gpus; /* NULL for BUDGET and NONE */
	bool owns_gpus;		  /* gpus is the node's own (REMOTE) */
	char *gpu_filter;	  /* LOCAL: the host GPUs that are the node's; NULL: all */
	uint64_t budget_bytes;	  /* BUDGET */
	struct backend *backend;
	struct registry *registry;
	struct monitor *monitor;
	struct engine *engine;
	struct node_stats stats;
	bool up;		/* its health probe answers */
	struct breaker breaker; /* consecutive failures of probes, loads and runs */
};

/* The node's GPUs: those of its monitor that pass its filter, in provider order. */
size_t node_gpu_count(const struct node *n);
const struct gpu_device *node_gpu_at(const struct node *n, size_t i);
/* The node's GPU with provider index id; NULL if it is not the node's. */
const struct gpu_device *node_gpu_find(const struct node *n, int id);
/* Where the node's server counts the GPU with provider index id: its position among the
 * node's GPUs (the server sees only those, numbered from 0 in provider order); -1 if it
 * is not the node's. */
int node_gpu_position(const struct node *n, int id);
/* The node's circuit breaker: "closed" (in use), "open" (failing: no work sent),
 * "half_open" (one trial under way). */
const char *node_breaker_state(const struct node *n);
/* "local", "remote", "budget", "none". */
const char *node_telemetry_name(enum node_telemetry t);

#endif
