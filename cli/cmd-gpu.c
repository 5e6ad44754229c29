/*
 * cmd-gpu.c: the GPU commands. `gpus` prints every GPU (GET /api/gpu/status/all) and the
 * reservations; `gpu-watch` redraws that view every --interval seconds with ANSI clear-
 * screen codes; `reserve` and `release` make and drop VRAM reservations
 * (POST /api/gpu/memory/allocate and /deallocate).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"
#include "util.h"
#include "vramctl.h"

/* "68 C" or "-"; percentages and watts likewise. */
static const char *
gpu_fmt_unit(const json_t *v, const char *unit, char *buf, size_t size)
{
	char num[32];
	if (!json_is_number(v)) {
		vd_strlcpy(buf, "-", size);
		return buf;
	}
	snprintf(buf, size, "%s%s", ctl_fmt_num(v, num, sizeof(num)), unit);
	return buf;
}

static void
gpu_print_table(const json_t *status)
{
	const json_t *gpus = json_object_get(status, "gpus");
	char a[64], b[64], c[64];
	const char *telemetry = ctl_json_str(status, "telemetry");
	const json_t *monitoring = json_object_get(status, "monitoring");

	printf("telemetry: %s%s\n", telemetry != NULL ? telemetry : "-",
	       json_is_false(monitoring) ? " (monitoring stopped)" : "");
	if (json_array_size(gpus) == 0) {
		printf("no GPUs\n");
		return;
	}
	struct ctl_table *t =
	    ctl_table_new(11, "GPU", "NAME", "STATE", "TEMP", "MEM_USED", "MEM_TOTAL", "OTHER",
			  "RESERVED", "UTIL", "POWER", "SPEED");
	size_t i;
	json_t *g;
	json_array_foreach(gpus, i, g)
	{
		ctl_table_cell(t, ctl_fmt_num(json_object_get(g, "index"), a, sizeof(a)));
		ctl_table_cell(t, ctl_json_str(g, "name"));
		const char *state = ctl_json_str(g, "state");
		if (json_is_true(json_object_get(g, "dispatch_paused")))
			ctl_table_cellf(t, "%s (paused)", state != NULL ? state : "-");
		else
			ctl_table_cell(t, state);
		ctl_table_cell(
		    t, gpu_fmt_unit(json_object_get(g, "temperature_c"), " C", a, sizeof(a)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_used_bytes"), a, sizeof(a)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_total_bytes"), b, sizeof(b)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_other_bytes"), c, sizeof(c)));
		ctl_table_cell(
		    t, ctl_fmt_bytes(json_object_get(g, "memory_reserved_bytes"), a, sizeof(a)));
		ctl_table_cell(
		    t, gpu_fmt_unit(json_object_get(g, "gpu_util_percent"), "%", a, sizeof(a)));
		ctl_table_cell(t, gpu_fmt_unit(json_object_get(g, "power_w"), " W", a, sizeof(a)));
		const json_t *speed = json_object_get(g, "speed_multiplier");
		if (json_is_number(speed))
			ctl_table_cellf(t, "%.2f", json_number_value(speed));
		else
			ctl_table_cell(t, NULL);
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static int
gpu_fetch_and_print(const struct ctl *ctl)
{
	return ctl_view_show(ctl, "/api/gpu/status/all", gpu_print_table);
}

static int
cmd_gpus_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1)
		if (opt == -2)
			return rc;
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	return gpu_fetch_and_print(ctl);
}

const struct ctl_cmd ctl_cmd_gpus = {
    .name = "gpus",
    .usage = "",
    .help = "show every GPU: state, temperature, memory, utilisation, power",
    .details = "OTHER is memory held by programs other than the models vramd placed;\n"
	       "SPEED the throttling multiplier on how many jobs run at once.\n",
    .exec = cmd_gpus_exec,
};

static int
cmd_gpu_watch_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"interval", required_argument, NULL, 'i'},
						 {"count", required_argument, NULL, 'n'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	double interval = 2.0;
	int64_t count = 0;
	char *cause = NULL;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "i:n:", longopts, &rc)) != -1) {
		if (opt == -2)
			return rc;
		if (opt == 'i' &&
		    vd_parse_double(optarg, 0.05, 86400, &interval, "--interval", &cause) != 0)
			goto usage;
		if (opt == 'n' &&
		    vd_parse_int64(optarg, 1, INT64_MAX, &count, "--count", &cause) != 0)
			goto usage;
	}
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);

	for (int64_t n = 1;; n++) {
		char now[48];
		if (!ctl->json) {
			vd_format_rfc3339_local(vd_now_wall_ns(), now, sizeof(now));
			now[19] = '\0';
			/* Home the cursor and clear the screen, then draw. */
			printf("\033[H\033[2Jvramd %s  every %gs  %s\n\n", ctl->url, interval, now);
		}
		rc = gpu_fetch_and_print(ctl);
		fflush(stdout);
		if (rc == CTL_EXIT_UNREACHABLE || (count > 0 && n >= count))
			break;
		struct timespec ts = {.tv_sec = (time_t)interval,
				      .tv_nsec = (long)((interval - floor(interval)) * 1e9)};
		nanosleep(&ts, NULL);
	}
	return rc;
usage:
	rc = ctl_usage_error(cmd, "%s", cause);
	free(cause);
	return rc;
}

const struct ctl_cmd ctl_cmd_gpu_watch = {
    .name = "gpu-watch",
    .usage = "[--interval S] [--count N]",
    .help = "a refreshing GPU view (Ctrl-C to stop)",
    .details = "  -i, --interval S   seconds between refreshes (default 2)\n"
	       "  -n, --count N      stop after N refreshes\n"
	       "With --json, prints one JSON reply per refresh and does not clear the screen.\n",
    .exec = cmd_gpu_watch_exec,
};

static void
gpu_print_reservation(const json_t *r)
{
	struct ctl_kv *kv = ctl_kv_new();
	char a[64];
	ctl_kv_add(kv, "reservation", "%s", ctl_fmt_num(json_object_get(r, "id"), a, sizeof(a)));
	ctl_kv_add(kv, "gpu", "%s", ctl_fmt_num(json_object_get(r, "gpu"), a, sizeof(a)));
	ctl_kv_add(kv, "size", "%s MiB", ctl_fmt_num(json_object_get(r, "mb"), a, sizeof(a)));
	ctl_kv_add(kv, "status", "%s", ctl_fmt_num(json_object_get(r, "status"), a, sizeof(a)));
	ctl_kv_add(kv, "expires", "%s",
		   ctl_fmt_time(json_object_get(r, "expires_at"), a, sizeof(a)));
	ctl_kv_print(kv, stdout);
	ctl_kv_free(kv);
}

static int
cmd_reserve_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"id", required_argument, NULL, 'I'},
						 {"mb", required_argument, NULL, 'm'},
						 {"gpu", required_argument, NULL, 'g'},
						 {"ttl", required_argument, NULL, 't'},
						 {"renew", no_argument, NULL, 'r'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	const char *id = NULL;
	int64_t mb = -1, ttl = -1, gpu_index = -1;
	const char *gpu_uuid = NULL;
	bool renew = false;
	char *cause = NULL;
	json_t *body = NULL;
	struct ctl_reply reply = {0};
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "m:g:t:", longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			goto out;
		case 'I':
			id = optarg;
			break;
		case 'm':
			if (vd_parse_int64(optarg, 1, INT32_MAX, &mb, "--mb", &cause) != 0)
				goto usage;
			break;
		case 'g':
			if (vd_str_has_prefix(optarg, "GPU-"))
				gpu_uuid = optarg;
			else if (vd_parse_int64(optarg, 0, 1023, &gpu_index, "--gpu", &cause) != 0)
				goto usage;
			break;
		case 't':
			if (vd_parse_int64(optarg, 1, 604800, &ttl, "--ttl", &cause) != 0)
				goto usage;
			break;
		case 'r':
			renew = true;
			break;
		}
	}
	if (optind < argc && id == NULL)
		id = argv[optind++];
	if (optind < argc) {
		rc = ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (id == NULL || *id == '\0') {
		rc = ctl_usage_error(cmd, "--id is required");
		goto out;
	}
	if (mb < 0 && !renew) {
		rc = ctl_usage_error(cmd, "--mb is required");
		goto out;
	}
	body = json_pack("{s:s}", "id", id);
	if (mb >= 0)
		json_object_set_new(body, "mb", json_integer(mb));
	if (gpu_uuid != NULL)
		json_object_set_new(body, "gpu", json_string(gpu_uuid));
	else if (gpu_index >= 0)
		json_object_set_new(body, "gpu", json_integer(gpu_index));
	if (ttl > 0)
		json_object_set_new(body, "ttl_s", json_integer(ttl));
	if (renew)
		json_object_set_new(body, "renew", json_true());
	rc = ctl_api_print(ctl, "POST", "/api/gpu/memory/allocate", body, CTL_DEFAULT_TIMEOUT_S,
			   &reply);
	if (rc == CTL_EXIT_OK) {
		if (ctl->json)
			ctl_print_raw(&reply);
		else
			gpu_print_reservation(reply.json);
	}
	goto out;
usage:
	rc = ctl_usage_error(cmd, "%s", cause);
out:
	free(cause);
	json_decref(body);
	ctl_reply_cleanup(&reply);
	return rc;
}

const struct ctl_cmd ctl_cmd_reserve = {
    .name = "reserve",
    .usage = "--id ID --mb MB [--gpu N|UUID] [--ttl S] [--renew]",
    .help = "reserve GPU memory for a program that is not a model",
    .details = "  --id ID          your name for the reservation (A-Za-z0-9._-, up to 64)\n"
	       "  -m, --mb MB      MiB to keep free\n"
	       "  -g, --gpu N      GPU index or UUID (default: where it fits best)\n"
	       "  -t, --ttl S      expire after S seconds unless renewed (vramd's default 3600)\n"
	       "  --renew          extend an existing reservation's lifetime\n"
	       "Status \"pending\" means idle models are still being unloaded to make room.\n",
    .exec = cmd_reserve_exec,
};

static int
cmd_release_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"id", required_argument, NULL, 'I'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	const char *id = NULL;
	struct ctl_reply reply = {0};
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1) {
		if (opt == -2)
			return rc;
		if (opt == 'I')
			id = optarg;
	}
	if (optind < argc && id == NULL)
		id = argv[optind++];
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	if (id == NULL || *id == '\0')
		return ctl_usage_error(cmd, "--id is required");
	json_t *body = json_pack("{s:s}", "id", id);
	rc = ctl_api_print(ctl, "POST", "/api/gpu/memory/deallocate", body, CTL_DEFAULT_TIMEOUT_S,
			   &reply);
	if (rc == CTL_EXIT_OK) {
		if (ctl->json) {
			ctl_print_raw(&reply);
		} else {
			char a[32], b[32];
			printf("released %s (%s MiB on GPU %s)\n", id,
			       ctl_fmt_num(json_object_get(reply.json, "mb"), a, sizeof(a)),
			       ctl_fmt_num(json_object_get(reply.json, "gpu"), b, sizeof(b)));
		}
	}
	json_decref(body);
	ctl_reply_cleanup(&reply);
	return rc;
}

const struct ctl_cmd ctl_cmd_release = {
    .name = "release",
    .usage = "--id ID",
    .help = "release a GPU memory reservation",
    .details = "  --id ID   the reservation to release (may also be given as the argument)\n",
    .exec = cmd_release_exec,
};
