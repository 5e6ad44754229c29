/*
 * fuzz-nodes-file.c: the NODES_FILE parser of src/fleet/nodes.c on arbitrary bytes.
 * A file it accepts must give 1 to NODES_MAX nodes with unique names and URLs, and
 * never a local node with a telemetry_url; one it refuses must say why.
 */
#include "config.h"
#include "nodes.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *cfg;
	if (cfg == NULL) {
		cfg = config_new();
		int rc = config_set(cfg, "NODES_FILE", "fuzz.json", NULL);
		assert(rc == 0);
		(void)rc;
	}
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct node_spec *specs = NULL;
	size_t n = 0;
	char *cause = NULL;
	if (nodes_from_text(cfg, text, "fuzz-host", &specs, &n, &cause) == 0) {
		assert(n >= 1 && n <= NODES_MAX);
		for (size_t i = 0; i < n; i++) {
			assert(specs[i].name != NULL && specs[i].url != NULL);
			assert(!(specs[i].local && specs[i].telemetry_url != NULL));
			for (size_t j = 0; j < i; j++)
				assert(strcasecmp(specs[i].name, specs[j].name) != 0);
		}
		nodes_free(specs, n);
	} else {
		assert(specs == NULL && cause != NULL);
		free(cause);
	}
	free(text);
	return 0;
}
