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
		for (size_t g = 0; g < map->entries[i].ngpus; g++)
			free(map->entries[i].uuid[g]);
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
		if (json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
		    json_integer_value(gpu) < 256) {
			entry->index[i] = (int)json_integer_value(gpu);
		} else if (json_is_string(gpu) && json_string_length(gpu) > 0 &&
			   json_string_length(gpu) < GPU_UUID_LEN) {
			entry->uuid[i] = xstrdup(json_string_value(gpu));
		} else {
			entry->ngpus = i;
			return vd_fail(cause, -EINVAL,
				       "MODEL_GPU_MAP %s: \"%s\": entry %zu is neither a GPU index "
				       "(0-255) nor a GPU UUID",
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

size_t
gpu_map_lookup(const struct gpu_map *map, const char *model, const struct gpu_monitor *mon,
	       int *ids, size_t cap)
{
	char key[256];
	size_t n = 0;

	if (map == NULL || model == NULL)
		return 0;
	registry_normalize_name(model, key, sizeof(key));
	for (size_t i = 0; i < map->nentries; i++) {
		const struct gpu_map_entry *entry = &map->entries[i];
		if (strcmp(entry->model, key) != 0)
			continue;
		for (size_t g = 0; g < entry->ngpus && n < cap; g++) {
			if (entry->uuid[g] == NULL) {
				ids[n++] = entry->index[g];
				continue;
			}
			const struct gpu_device *dev =
			    mon != NULL ? gpu_monitor_find_uuid(mon, entry->uuid[g]) : NULL;
			if (dev != NULL)
				ids[n++] = (int)dev->index;
		}
		break;
	}
	return n;
}
