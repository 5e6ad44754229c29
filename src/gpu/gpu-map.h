/*
 * gpu-map.h: preferred GPUs per model (MODEL_GPU_MAP), a JSON file mapping model names to
 * ordered lists of GPUs, each an index (0) or a UUID ("GPU-..."), alone (any node's GPU
 * of that index or UUID) or after a node's name ("a:1", "b:GPU-2b5f..."):
 *     {"llama3.2:1b": [1, 0], "qwen2.5:7b": ["GPU-2b5f..."], "phi3:mini": ["b:0", "a:1"]}
 * The fleet sends a model's jobs to the nodes its list names, in order, before the others
 * (when they can take it), and the scheduler tries the listed GPUs of a node in order.
 */
#ifndef VRAMD_GPU_MAP_H
#define VRAMD_GPU_MAP_H

#include <stddef.h>

struct gpu_map;
struct gpu_monitor;

/*
 * Reads and checks the file at path into *out (the caller's; gpu_map_free). Errors: -errno
 * or -EINVAL with *cause (the caller's) naming the file and the problem: unreadable, not
 * JSON, not an object, an entry that is not a list, a GPU that is neither an index
 * (0..255) nor a string, a list longer than 16.
 */
int gpu_map_load(const char *path, struct gpu_map **out, char **cause);
void gpu_map_free(struct gpu_map *map);

/*
 * The preferred GPU indexes of model (its name normalised: "x" is "x:latest") on the node
 * named node (entries of other nodes are skipped; node NULL: only entries without one),
 * resolved against mon (UUIDs of GPUs it does not know are skipped; mon may be NULL:
 * indexes only), written to ids (room for cap). Returns how many; 0 when none.
 */
size_t gpu_map_lookup(const struct gpu_map *map, const char *model, const char *node,
		      const struct gpu_monitor *mon, int *ids, size_t cap);
/* The position of the first entry of model that names node ("node:gpu"); -1 when none
 * does. Lower is more preferred. */
int gpu_map_node_rank(const struct gpu_map *map, const char *model, const char *node);

#endif
