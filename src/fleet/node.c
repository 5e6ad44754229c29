/*
 * node.c: the GPUs of a node (node.h). A node of this host sees the host's GPUs that pass
 * its filter (a GPUS-style list of indexes or UUIDs); a remote node all the GPUs its
 * remote vramd reports.
 */
#include "node.h"

#include "gpu.h"

static bool
node_gpu_is_mine(const struct node *n, const struct gpu_device *dev)
{
	return n->gpu_filter == NULL || gpu_filter_match(n->gpu_filter, dev->index, dev->uuid);
}

size_t
node_gpu_count(const struct node *n)
{
	if (n->gpus == NULL)
		return 0;
	size_t count = 0;
	for (size_t i = 0; i < gpu_monitor_count(n->gpus); i++)
		count += node_gpu_is_mine(n, gpu_monitor_device(n->gpus, i));
	return count;
}

const struct gpu_device *
node_gpu_at(const struct node *n, size_t i)
{
	if (n->gpus == NULL)
		return NULL;
	for (size_t k = 0; k < gpu_monitor_count(n->gpus); k++) {
		const struct gpu_device *dev = gpu_monitor_device(n->gpus, k);
		if (node_gpu_is_mine(n, dev) && i-- == 0)
			return dev;
	}
	return NULL;
}

const struct gpu_device *
node_gpu_find(const struct node *n, int id)
{
	if (n->gpus == NULL || id < 0)
		return NULL;
	const struct gpu_device *dev = gpu_monitor_find(n->gpus, (uint32_t)id);
	return dev != NULL && node_gpu_is_mine(n, dev) ? dev : NULL;
}

int
node_gpu_position(const struct node *n, int id)
{
	int pos = 0;
	for (size_t k = 0; n->gpus != NULL && k < gpu_monitor_count(n->gpus); k++) {
		const struct gpu_device *dev = gpu_monitor_device(n->gpus, k);
		if (!node_gpu_is_mine(n, dev))
			continue;
		if (id >= 0 && dev->index == (uint32_t)id)
			return pos;
		pos++;
	}
	return -1;
}

const char *
node_breaker_state(const struct node *n)
{
	return breaker_state_name(n->breaker.state);
}

const char *
node_telemetry_name(enum node_telemetry t)
{
	switch (t) {
	case NODE_TELEMETRY_LOCAL:
		return "local";
	case NODE_TELEMETRY_REMOTE:
		return "remote";
	case NODE_TELEMETRY_BUDGET:
		return "budget";
	case NODE_TELEMETRY_NONE:
		break;
	}
	return "none";
}
