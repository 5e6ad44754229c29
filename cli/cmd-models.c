/*
 * cmd-models.c: `vramctl models` prints vramd's model registry (GET /api/models): VRAM
 * estimate and measured footprint, where each model is loaded, its load times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "table.h"
#include "util.h"
#include "vramctl.h"

/* "0:612 MiB" for each place a model is loaded, comma-separated; "-" when none. */
static void
models_where(const json_t *model, char *buf, size_t size)
{
	const json_t *loaded_on = json_object_get(model, "loaded_on");
	const json_t *residency = json_object_get(model, "residency");
	struct vd_buf b;
	size_t i;
	json_t *place;

	/* Older daemons describe one placement as "residency" plus a top-level "gpu". */
	if (loaded_on == NULL && json_is_true(json_object_get(residency, "loaded"))) {
		const json_t *gpu = json_object_get(model, "gpu");
		const char *on = ctl_json_str(residency, "on");
		if (json_is_integer(gpu) && (on == NULL || strcmp(on, "cpu") != 0))
			snprintf(buf, size, "gpu%lld", (long long)json_integer_value(gpu));
		else
			snprintf(buf, size, "%s", on != NULL ? on : "yes");
		return;
	}
	vd_buf_init(&b, size - 1);
	json_array_foreach(loaded_on, i, place)
	{
		json_t *gpu = json_object_get(place, "gpu");
		if (json_is_integer(gpu))
			vd_buf_printf(&b, "%sgpu%lld", i ? "," : "",
				      (long long)json_integer_value(gpu));
		else
			vd_buf_printf(&b, "%scpu", i ? "," : "");
	}
	vd_strlcpy(buf, b.len > 0 ? vd_buf_str(&b) : "-", size);
	vd_buf_cleanup(&b);
}

static void
cmd_models_print(const json_t *reply)
{
	json_t *models = json_object_get(reply, "models");
	if (json_array_size(models) == 0) {
		printf("no models\n");
		return;
	}
	struct ctl_table *t = ctl_table_new(10, "NAME", "FILE", "ESTIMATE", "MEASURED", "PLANNED",
					    "LOADED", "QUEUED", "RUNNING", "LOADS", "MEAN_LOAD_MS");
	size_t i;
	json_t *m;
	json_array_foreach(models, i, m)
	{
		char buf[128];
		const json_t *stats = json_object_get(m, "load_stats");
		ctl_table_cell(t, ctl_json_str(m, "name"));
		const json_t *file = json_object_get(m, "file_size_bytes");
		if (file == NULL)
			file = json_object_get(m, "file_bytes");
		ctl_table_cell(t, ctl_fmt_bytes(file, buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(m, "estimate_bytes"), buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(m, "measured_bytes"), buf, sizeof(buf)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(m, "footprint_bytes"), buf, sizeof(buf)));
		models_where(m, buf, sizeof(buf));
		ctl_table_cell(t, buf);
		ctl_table_cell(t, ctl_fmt_num(json_object_get(m, "queued"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(m, "running"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(stats, "count"), buf, sizeof(buf)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(stats, "mean_ms"), buf, sizeof(buf)));
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static int
cmd_models_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return ctl_view_exec(ctl, cmd, argc, argv, "/api/models", cmd_models_print);
}

const struct ctl_cmd ctl_cmd_models = {
    .name = "models",
    .usage = "",
    .help = "list installed models: VRAM estimate, measured footprint, where loaded",
    .details = "Columns: FILE is the model file size, ESTIMATE the file size times\n"
	       "VRAM_ESTIMATION_MULTIPLIER, MEASURED the footprint seen once loaded, PLANNED\n"
	       "what the scheduler plans with (measured when known).\n",
    .exec = cmd_models_exec,
};
