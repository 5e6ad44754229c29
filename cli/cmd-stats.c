/*
 * cmd-stats.c: `vramctl stats` prints GET /api/stats: jobs by priority and status, the
 * queue, per-model counts, loads and unloads, VRAM per GPU, and the loaded models.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "table.h"
#include "util.h"
#include "vramctl.h"

static const char *const stats_statuses[] = {"queued",	 "pending", "running",
					     "complete", "failed",  "cancelled"};

static void
stats_print_jobs(const json_t *jobs)
{
	static const char *const priorities[] = {"high", "normal", "low"};
	const json_t *by_priority = json_object_get(jobs, "by_priority");
	const json_t *by_status = json_object_get(jobs, "by_status");
	struct ctl_table *t = ctl_table_new(7, "PRIORITY", "QUEUED", "PENDING", "RUNNING",
					    "COMPLETE", "FAILED", "CANCELLED");
	char buf[32];

	for (size_t p = 0; p < VD_ARRAY_LEN(priorities); p++) {
		const json_t *counts = json_object_get(by_priority, priorities[p]);
		ctl_table_cell(t, priorities[p]);
		for (size_t s = 0; s < VD_ARRAY_LEN(stats_statuses); s++)
			ctl_table_cell(t, ctl_fmt_num(json_object_get(counts, stats_statuses[s]),
						      buf, sizeof(buf)));
	}
	ctl_table_cell(t, "all");
	for (size_t s = 0; s < VD_ARRAY_LEN(stats_statuses); s++)
		ctl_table_cell(t, ctl_fmt_num(json_object_get(by_status, stats_statuses[s]), buf,
					      sizeof(buf)));
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

/* One row of the per-model table; in the object form ("model": {counts}) a missing
 * count is 0, in the documented array form it is unknown. */
static void
stats_model_row(struct ctl_table *t, const char *name, const json_t *m, bool zero_missing)
{
	static const char *const keys[] = {"queued", "running",	  "complete",
					   "failed", "cancelled", "loads"};
	char buf[32];
	ctl_table_cell(t, name);
	for (size_t k = 0; k < VD_ARRAY_LEN(keys); k++) {
		const json_t *v = json_object_get(m, keys[k]);
		ctl_table_cell(t,
			       v == NULL && zero_missing ? "0" : ctl_fmt_num(v, buf, sizeof(buf)));
	}
}

static void
stats_print_models(json_t *per_model)
{
	if (json_array_size(per_model) == 0 && json_object_size(per_model) == 0)
		return;
	struct ctl_table *t = ctl_table_new(7, "MODEL", "QUEUED", "RUNNING", "COMPLETE", "FAILED",
					    "CANCELLED", "LOADS");
	size_t i;
	json_t *m;
	const char *name;
	json_array_foreach(per_model, i, m)
	{
		stats_model_row(t, ctl_json_str(m, "model"), m, false);
	}
	json_object_foreach(per_model, name, m)
	{
		stats_model_row(t, name, m, true);
	}
	printf("\n");
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void
stats_print_gpus(const json_t *gpus)
{
	if (json_array_size(gpus) == 0)
		return;
	struct ctl_table *t = ctl_table_new(8, "GPU", "NAME", "STATE", "TOTAL", "USED", "MODELS",
					    "OTHER", "RESERVED");
	size_t i;
	json_t *g;
	char buf[64];
	json_array_foreach(gpus, i, g)
	{
		ctl_table_cell(t, ctl_fmt_num(json_object_get(g, "index"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_json_str(g, "name"));
		ctl_table_cell(t, ctl_json_str(g, "state"));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_total_bytes"), buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_used_bytes"), buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_models_bytes"), buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_other_bytes"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_bytes(json_object_get(g, "memory_reserved_bytes"), buf,
						sizeof(buf)));
	}
	printf("\n");
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void
stats_print_loaded(const json_t *loaded)
{
	printf("\n");
	if (json_array_size(loaded) == 0) {
		printf("no models loaded\n");
		return;
	}
	struct ctl_table *t =
	    ctl_table_new(6, "LOADED MODEL", "SERVER", "GPU", "VRAM", "RUNNING", "IDLE_S");
	size_t i;
	json_t *m;
	char buf[64];
	json_array_foreach(loaded, i, m)
	{
		json_t *gpu = json_object_get(m, "gpu");
		ctl_table_cell(t, ctl_json_str(m, "model"));
		ctl_table_cell(t, ctl_json_str(m, "server"));
		ctl_table_cell(t, json_is_null(gpu) ? "cpu" : ctl_fmt_num(gpu, buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(m, "size_vram_bytes"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(m, "running"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(m, "idle_s"), buf, sizeof(buf)));
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void
cmd_stats_print(const json_t *s)
{
	const json_t *queue = json_object_get(s, "queue");
	char a[32], b[32], c[32], d[32], e[32], f[32];
	printf("uptime %s s, queue %s/%s, loads %s, unloads %s, load failures %s\n\n",
	       ctl_fmt_num(json_object_get(s, "uptime_s"), a, sizeof(a)),
	       ctl_fmt_num(json_object_get(queue, "length"), b, sizeof(b)),
	       ctl_fmt_num(json_object_get(queue, "max"), c, sizeof(c)),
	       ctl_fmt_num(json_object_get(s, "loads"), d, sizeof(d)),
	       ctl_fmt_num(json_object_get(s, "unloads"), e, sizeof(e)),
	       ctl_fmt_num(json_object_get(s, "load_failures"), f, sizeof(f)));
	stats_print_jobs(json_object_get(s, "jobs"));
	stats_print_models(json_object_get(s, "per_model"));
	stats_print_gpus(json_object_get(s, "gpus"));
	stats_print_loaded(json_object_get(s, "loaded_models"));
}

static int
cmd_stats_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return ctl_view_exec(ctl, cmd, argc, argv, "/api/stats", cmd_stats_print);
}

const struct ctl_cmd ctl_cmd_stats = {
    .name = "stats",
    .usage = "",
    .help = "show counters: jobs by priority and status, per model, GPUs, loaded models",
    .details = "",
    .exec = cmd_stats_exec,
};
