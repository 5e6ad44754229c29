/*
 * cmd-health.c: `vramctl health` prints GET /api/health: vramd's version and uptime,
 * the GPU telemetry source, and each Ollama server's reachability. Exits 1 when vramd
 * reports itself degraded (an Ollama server unreachable), so scripts can check it.
 */
#include <stdio.h>
#include <string.h>

#include "table.h"
#include "util.h"
#include "vramctl.h"

static int
cmd_health_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct ctl_reply reply = {0};
	int opt, rc = CTL_EXIT_OK;
	char a[64];

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1)
		if (opt == -2)
			return rc;
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	rc = ctl_api_print(ctl, "GET", "/api/health", NULL, CTL_DEFAULT_TIMEOUT_S, &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	const json_t *h = reply.json;
	const char *status = ctl_json_str(h, "status");
	if (ctl->json) {
		ctl_print_raw(&reply);
	} else {
		struct ctl_kv *kv = ctl_kv_new();
		ctl_kv_add(kv, "status", "%s", status != NULL ? status : "-");
		ctl_kv_add(kv, "version", "%s",
			   ctl_fmt_num(json_object_get(h, "version"), a, sizeof(a)));
		ctl_kv_add(kv, "uptime", "%s s",
			   ctl_fmt_num(json_object_get(h, "uptime_s"), a, sizeof(a)));
		ctl_kv_add(kv, "gpu telemetry", "%s",
			   ctl_fmt_num(json_object_get(h, "gpu_telemetry"), a, sizeof(a)));
		ctl_kv_add(kv, "gpus", "%s",
			   ctl_fmt_num(json_object_get(h, "gpu_count"), a, sizeof(a)));
		ctl_kv_add(kv, "monitoring", "%s",
			   ctl_fmt_num(json_object_get(h, "monitoring"), a, sizeof(a)));
		ctl_kv_print(kv, stdout);
		ctl_kv_free(kv);

		const json_t *servers = json_object_get(h, "servers");
		struct ctl_table *t =
		    ctl_table_new(5, "SERVER", "REACHABLE", "VERSION", "FAILURES", "LAST_ERROR");
		size_t i;
		json_t *srv;
		json_array_foreach(servers, i, srv)
		{
			ctl_table_cell(t, ctl_json_str(srv, "url"));
			ctl_table_cell(
			    t, ctl_fmt_num(json_object_get(srv, "reachable"), a, sizeof(a)));
			ctl_table_cell(t,
				       ctl_fmt_num(json_object_get(srv, "version"), a, sizeof(a)));
			ctl_table_cell(t, ctl_fmt_num(json_object_get(srv, "consecutive_failures"),
						      a, sizeof(a)));
			ctl_table_cell(t, ctl_json_str(srv, "last_error"));
		}
		if (ctl_table_nrows(t) > 0) {
			printf("\n");
			ctl_table_print(t, stdout);
		}
		ctl_table_free(t);
	}
	if (status == NULL || strcmp(status, "ok") != 0) {
		if (!ctl->json)
			fprintf(stderr, "vramctl: vramd reports status %s\n",
				status != NULL ? status : "unknown");
		rc = CTL_EXIT_API;
	}
out:
	ctl_reply_cleanup(&reply);
	return rc;
}

const struct ctl_cmd ctl_cmd_health = {
    .name = "health",
    .usage = "",
    .help = "check vramd and its Ollama servers (exit 1 when degraded)",
    .details = "",
    .exec = cmd_health_exec,
};
