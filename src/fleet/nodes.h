/* TEMPORARY stand-in until h-nodes lands (same interface). */
#ifndef VRAMD_NODES_H
#define VRAMD_NODES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
struct config;
struct node_spec {
	char *name;
	char *url;
	char *gpus;
	uint64_t vram_budget_bytes;
	char *telemetry_url;
	char **labels;
	size_t nlabels;
	bool local;
};
int nodes_from_config(const struct config *c, struct node_spec **out, size_t *n, char **cause);
void nodes_free(struct node_spec *specs, size_t n);
#endif
