/*
 * nodes.h: the fleet's node list from the configuration. A node is one Ollama server.
 * The list comes from exactly one of, in this order:
 *   NODES_FILE      a JSON file with every node and its settings (docs/fleet.md);
 *   OLLAMA_NODES    comma-separated URLs (each --ollama URL on the command line adds one);
 *   OLLAMA_BASE_URL the one-node form.
 * Nothing here does I/O except nodes_from_config(), which reads NODES_FILE and this
 * host's name and hands both to the pure nodes_from_text().
 */
#ifndef VRAMD_NODES_H
#define VRAMD_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define NODES_MAX	     64	       /* nodes in one fleet at most */
#define NODES_FILE_MAX_BYTES (1 << 20) /* a bigger NODES_FILE is refused */
#define NODES_NAME_MAX	     64	       /* bytes of a node name or a label */
#define NODES_LABELS_MAX     32	       /* labels of one node at most */

/* One node; every string is owned by the array nodes_free() frees. */
struct node_spec {
	char *name; /* unique; "node0", "node1", ... by position unless the file names it */
	char *url;  /* the Ollama server's base URL as given, without trailing '/'; unique */
	/* GPU filter as GPUS takes it ("0,1" or UUIDs, "none" for CPU only) over the GPUs
	 * the node's telemetry reports; NULL = all of them. A local node without its own
	 * gpus takes GPUS. */
	char *gpus;
	/* Memory to plan with when the node has no GPU telemetry (for a local node: when
	 * this host's telemetry is unavailable); 0 = none. A node without a budget of its
	 * own and without telemetry_url takes VRAM_BUDGET. */
	uint64_t vram_budget_bytes;
	char *telemetry_url; /* base URL of a vramd on the node's machine; NULL = none */
	char **labels;	     /* nlabels distinct labels, in file order */
	size_t nlabels;
	bool local; /* its GPUs are this host's: telemetry comes from the local NVML */
};

/*
 * Builds the node list from c: reads NODES_FILE when set (at most NODES_FILE_MAX_BYTES)
 * and this host's name (gethostname), then as nodes_from_text(). On success *out (the
 * caller's; nodes_free) holds *n >= 1 nodes. Errors: -errno from reading the file, or
 * -EINVAL; *cause (the caller's) names the file, the node (nodes[i] and its name) and the
 * field, or the keys that conflict.
 */
int nodes_from_config(const struct config *c, struct node_spec **out, size_t *n, char **cause);

/*
 * The pure part of nodes_from_config(): file_text is NODES_FILE's content (NULL when
 * NODES_FILE is empty; required when it is set), hostname this host's name (NULL: only
 * loopback names and addresses count as this host). Rules:
 * - NODES_FILE set: the file is the whole list; OLLAMA_NODES must be empty.
 * - else OLLAMA_NODES, else OLLAMA_BASE_URL alone.
 * - OLLAMA_BASE_URL set explicitly (not its default) beside a list must be one of its URLs.
 * - Names and URLs are unique (URLs compared by scheme, host, port and path, so
 *   "http://Host:80/" and "http://host" are the same server).
 * - local: true when the URL's host is loopback (localhost, *.localhost, 127.0.0.0/8,
 *   ::1) or hostname, unless the file says "local": false or gives a telemetry_url.
 *   Several local nodes without gpus all see every GPU of this host.
 * - gpus needs telemetry: a node that is neither local nor has a telemetry_url may not
 *   name GPUs.
 */
int nodes_from_text(const struct config *c, const char *file_text, const char *hostname,
		    struct node_spec **out, size_t *n, char **cause);

void nodes_free(struct node_spec *specs, size_t n);

#endif
