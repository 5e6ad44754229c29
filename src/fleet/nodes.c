/* TEMPORARY stand-in until h-nodes lands. */
#include "nodes.h"
#include "config.h"
#include "util.h"
#include <stdlib.h>
int
nodes_from_config(const struct config *c, struct node_spec **out, size_t *n, char **cause)
{
	(void)cause;
	struct node_spec *s = xcalloc(1, sizeof(*s));
	s->name = xstrdup("node0");
	s->url = xstrdup(config_str(c, CONFIG_OLLAMA_BASE_URL));
	s->vram_budget_bytes = config_size(c, CONFIG_VRAM_BUDGET);
	s->local = true;
	*out = s;
	*n = 1;
	return 0;
}
void
nodes_free(struct node_spec *specs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(specs[i].name);
		free(specs[i].url);
		free(specs[i].gpus);
		free(specs[i].telemetry_url);
		for (size_t j = 0; j < specs[i].nlabels; j++)
			free(specs[i].labels[j]);
		free(specs[i].labels);
	}
	free(specs);
}
