/*
 * gpu-map.c: MODEL_GPU_MAP, the preferred GPUs of each model. The file is read once at
 * start (a bad file stops vramd with a message naming the problem); UUIDs are resolved
 * at each lookup, so a GPU that shows up later is used once it does. Caller: the engine,
 * when it fills the scheduler snapshot (struct sched_model.preferred_gpus).
 */
#include "gpu-map.h"

#include "gpu.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define GPU_MAP_MAX_GPUS 16 /* entries per model at most */

struct gpu_map_entry {
	char *model; /* normalised name */
	size_t ngpus;
	int index[GPU_MAP_MAX_GPUS];  /* -1 when uuid is set */
	char *uuid[GPU_MAP_MAX_GPUS]; /* NULL when index is set */
	char *node[GPU_MAP_MAX_GPUS]; /* "node:gpu": the node's name; NULL: any node */
};

struct gpu_map {
	struct gpu_map_entry *entries;
	size_t nentries;
};

void
gpu_map_free(struct gpu_map *map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->nentries; i++) {
		free(map->entries[i].model);
		for (size_t g = 0; g < map->entries[i].ngpus; g++) {
			free(map->entries[i].uuid[g]);
			free(map->entries[i].node[g]);
		}
	}
	free(map->entries);
	free(map);
}

/* Fills entry from the list of GPUs of model; 0 or -EINVAL with *cause. */
static int
gpu_map_parse_list(const char *path, const char *model, json_t *list, struct gpu_map_entry *entry,
		   char **cause)
{
	size_t i;
	json_t *gpu;

	if (!json_is_array(list))
		return vd_fail(
		    cause, -EINVAL,
		    "MODEL_GPU_MAP %s: \"%s\" must map to a list of GPU indexes or UUIDs", path,
		    model);
	if (json_array_size(list) > GPU_MAP_MAX_GPUS)
		return vd_fail(cause, -EINVAL, "MODEL_GPU_MAP %s: \"%s\" lists more than %d GPUs",
			       path, model, GPU_MAP_MAX_GPUS);
	json_array_foreach(list, i, gpu)
	{
		entry->index[i] = -1;
		entry->uuid[i] = NULL;
		entry->node[i] = NULL;
		const char *text = json_is_string(gpu) ? json_string_value(gpu) : NULL;
		const char *colon = text != NULL ? strchr(text, ':') : NULL;
		if (colon != NULL && colon > text) { /* "node:gpu" */
			entry->node[i] = xstrndup(text, (size_t)(colon - text));
			text = colon + 1;
		}
		int64_t index;
		if (json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
		    json_integer_value(gpu) < 256) {
			entry->index[i] = (int)json_integer_value(gpu);
		} else if (entry->node[i] != NULL &&
			   vd_parse_int64(text, 0, 255, &index, "", NULL) == 0) {
			entry->index[i] = (int)index;
		} else if (text != NULL && *text != '\0' && strlen(text) < GPU_UUID_LEN &&
			   (entry->node[i] == NULL || vd_str_has_prefix(text, "GPU-"))) {
			entry->uuid[i] = xstrdup(text);
		} else {
			entry->ngpus = i + 1;
			return vd_fail(cause, -EINVAL,
				       "MODEL_GPU_MAP %s: \"%s\": entry %zu is neither a GPU index "
				       "(0-255), a GPU UUID, nor \"node:gpu\" with one of them",
				       path, model, i);
		}
	}
	entry->ngpus = json_array_size(list);
	return 0;
}

int
gpu_map_load(const char *path, struct gpu_map **out, char **cause)
{
	json_error_t err;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	struct gpu_map *map;
	const char *model;
	json_t *list;
	int rc = 0;

	*out = NULL;
	if (root == NULL)
		return vd_fail(cause, -EINVAL, "MODEL_GPU_MAP %s: %s (line %d)", path, err.text,
			       err.line);
	if (!json_is_object(root)) {
		json_decref(root);
		return vd_fail(cause, -EINVAL,
			       "MODEL_GPU_MAP %s: must be a JSON object of model -> list of GPUs",
			       path);
	}
	map = xcalloc(1, sizeof(*map));
	map->entries = xcalloc(json_object_size(root) + 1, sizeof(*map->entries));
	json_object_foreach(root, model, list)
	{
		struct gpu_map_entry *entry = &map->entries[map->nentries++];
		char key[256];
		entry->model = xstrdup(registry_normalize_name(model, key, sizeof(key)));
		rc = gpu_map_parse_list(path, model, list, entry, cause);
		if (rc < 0)
			goto out_free;
	}
	json_decref(root);
	*out = map;
	return 0;
out_free:
	json_decref(root);
	gpu_map_free(map);
	return rc;
}

/* The entry of model; NULL when it has none. */
static const struct gpu_map_entry *
gpu_map_entry_of(const struct gpu_map *map, const char *model)
{
	char key[256];
	if (map == NULL || model == NULL)
		return NULL;
	registry_normalize_name(model, key, sizeof(key));
	for (size_t i = 0; i < map->nentries; i++)
		if (strcmp(map->entries[i].model, key) == 0)
			return &map->entries[i];
	return NULL;
}

size_t
gpu_map_lookup(const struct gpu_map *map, const char *model, const char *node,
	       const struct gpu_monitor *mon, int *ids, size_t cap)
{
	const struct gpu_map_entry *entry = gpu_map_entry_of(map, model);
	size_t n = 0;
	for (size_t g = 0; entry != NULL && g < entry->ngpus && n < cap; g++) {
		if (entry->node[g] != NULL && (node == NULL || strcmp(entry->node[g], node) != 0))
			continue;
		if (entry->uuid[g] == NULL) {
			ids[n++] = entry->index[g];
			continue;
		}
		const struct gpu_device *dev =
		    mon != NULL ? gpu_monitor_find_uuid(mon, entry->uuid[g]) : NULL;
		if (dev != NULL)
			ids[n++] = (int)dev->index;
	}
	return n;
}

int
gpu_map_node_rank(const struct gpu_map *map, const char *model, const char *node)
{
	const struct gpu_map_entry *entry = gpu_map_entry_of(map, model);
	for (size_t g = 0; entry != NULL && g < entry->ngpus; g++)
		if (entry->node[g] != NULL && strcmp(entry->node[g], node) == 0)
			return (int)g;
	return -1;
}
