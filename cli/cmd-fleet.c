/*
 * cmd-fleet.c: the model-operation and node commands (docs/api.md "Models and nodes").
 *
 *   force-gpu, force-cpu, placement   POST /api/models/force_gpu, force_cpu, placement
 *   load, unload                      POST /api/models/load, unload
 *   vram-report, lb-stats, nodes      GET /api/vram_report, /api/lb_stats, /api/nodes
 *
 * The POST commands always send "timeout" (how long vramd holds the reply while the model
 * moves) and wait a little longer than that for the HTTP reply. vramd answers 200 once the
 * move is done and 202 ("done": false) when the timeout passed first; the command then
 * prints where the model is now and exits 1, like `job --wait` when a job is not final.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "table.h"
#include "util.h"
#include "vramctl.h"

/* Seconds vramd holds a model operation by default (--timeout), and the HTTP slack. */
#define FLEET_WAIT_S	   120.0
#define FLEET_MAX_WAIT_S   3600.0
#define FLEET_HTTP_SLACK_S 30L

/* What a model-operation command was given. */
struct fleet_op {
	const char *model;
	const char *node;      /* NULL: vramd's default node */
	const char *placement; /* placement only: "gpu", "cpu" or "auto" */
	int64_t gpu;	       /* load only: -1 for none */
	double wait_s;
};

/* "gpu 0", "cpu", "gpu 0 + cpu" (spilled) or "-". */
static void
fleet_fmt_location(const json_t *m, char *buf, size_t size)
{
	const char *location = ctl_json_str(m, "location");
	const json_t *gpu = json_object_get(m, "gpu");
	long long idx = json_is_integer(gpu) ? (long long)json_integer_value(gpu) : -1;

	if (location == NULL || strcmp(location, "none") == 0)
		vd_strlcpy(buf, "-", size);
	else if (strcmp(location, "gpu") == 0 && idx >= 0)
		snprintf(buf, size, "gpu %lld", idx);
	else if (strcmp(location, "gpu+cpu") == 0 && idx >= 0)
		snprintf(buf, size, "gpu %lld + cpu", idx);
	else
		vd_strlcpy(buf, location, size);
}

/* The model's flags worth a glance: "pinned", "gpu-priority", "moving". */
static void
fleet_fmt_flags(const json_t *m, char *buf, size_t size)
{
	struct vd_buf b;
	vd_buf_init(&b, size - 1);
	if (json_is_true(json_object_get(m, "pinned")))
		vd_buf_printf(&b, "%spinned", b.len ? "," : "");
	if (json_is_true(json_object_get(m, "gpu_priority")))
		vd_buf_printf(&b, "%sgpu-priority", b.len ? "," : "");
	if (json_is_true(json_object_get(m, "pending")))
		vd_buf_printf(&b, "%smoving", b.len ? "," : "");
	vd_strlcpy(buf, b.len > 0 ? vd_buf_str(&b) : "-", size);
	vd_buf_cleanup(&b);
}

/* The reply of a model operation as key/value lines. */
static void
fleet_print_model(const json_t *m)
{
	struct ctl_kv *kv = ctl_kv_new();
	char a[128], b[64], c[64];
	const char *state = ctl_json_str(m, "state");

	ctl_kv_add(kv, "model", "%s", ctl_fmt_num(json_object_get(m, "model"), a, sizeof(a)));
	ctl_kv_add(kv, "node", "%s", ctl_fmt_num(json_object_get(m, "node"), a, sizeof(a)));
	if (json_is_false(json_object_get(m, "done")))
		ctl_kv_add(kv, "state", "%s (not done yet)", state != NULL ? state : "-");
	else
		ctl_kv_add(kv, "state", "%s", state != NULL ? state : "-");
	fleet_fmt_location(m, a, sizeof(a));
	ctl_kv_add(kv, "location", "%s", a);
	if (strcmp(a, "-") == 0)
		ctl_kv_add(kv, "vram", "-");
	else
		ctl_kv_add(kv, "vram", "%s of %s",
			   ctl_fmt_bytes(json_object_get(m, "size_vram_bytes"), b, sizeof(b)),
			   ctl_fmt_bytes(json_object_get(m, "size_bytes"), c, sizeof(c)));
	ctl_kv_add(kv, "placement", "%s",
		   ctl_fmt_num(json_object_get(m, "placement"), a, sizeof(a)));
	fleet_fmt_flags(m, a, sizeof(a));
	ctl_kv_add(kv, "flags", "%s", a);
	ctl_kv_add(kv, "running", "%s", ctl_fmt_num(json_object_get(m, "running"), a, sizeof(a)));
	ctl_kv_print(kv, stdout);
	ctl_kv_free(kv);
}

/*
 * Parses MODEL [gpu|cpu|auto] [--node N] [--gpu G] [--timeout S] into *op; with_placement
 * and with_gpu say which the command takes. Returns CTL_EXIT_OK, or the exit code to stop
 * with (after --help, or a usage error already printed).
 */
static int
fleet_parse_op(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
	       bool with_placement, bool with_gpu, struct fleet_op *op)
{
	static const struct option longopts_gpu[] = {{"node", required_argument, NULL, 'N'},
						     {"gpu", required_argument, NULL, 'g'},
						     {"timeout", required_argument, NULL, 't'},
						     CTL_COMMON_LONGOPTS,
						     {NULL, 0, NULL, 0}};
	static const struct option longopts[] = {{"node", required_argument, NULL, 'N'},
						 {"timeout", required_argument, NULL, 't'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	char *cause = NULL;
	int opt, rc = CTL_EXIT_OK;

	*op = (struct fleet_op){.gpu = -1, .wait_s = FLEET_WAIT_S};
	while ((opt = ctl_getopt(ctl, cmd, argc, argv, with_gpu ? "g:t:" : "t:",
				 with_gpu ? longopts_gpu : longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			return rc;
		case 'N':
			if (*optarg == '\0')
				return ctl_usage_error(cmd, "--node needs a node name");
			op->node = optarg;
			break;
		case 'g':
			if (vd_parse_int64(optarg, 0, 1024, &op->gpu, "--gpu", &cause) != 0)
				goto usage;
			break;
		case 't':
			if (vd_parse_double(optarg, 0, FLEET_MAX_WAIT_S, &op->wait_s, "--timeout",
					    &cause) != 0)
				goto usage;
			break;
		}
	}
	if (optind >= argc || *argv[optind] == '\0')
		return ctl_usage_error(cmd, "a model is required");
	op->model = argv[optind++];
	if (with_placement) {
		if (optind >= argc)
			return ctl_usage_error(cmd, "a placement is required: gpu, cpu or auto");
		op->placement = argv[optind++];
		if (strcmp(op->placement, "gpu") != 0 && strcmp(op->placement, "cpu") != 0 &&
		    strcmp(op->placement, "auto") != 0)
			return ctl_usage_error(
			    cmd, "the placement must be gpu, cpu or auto (got \"%s\")",
			    op->placement);
	}
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	return CTL_EXIT_OK;
usage:
	rc = ctl_usage_error(cmd, "%s", cause);
	free(cause);
	return rc;
}

/* Runs one model operation: parse, POST to path, print the model. */
static int
fleet_op_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, const char *path,
	      bool with_placement, bool with_gpu)
{
	struct fleet_op op;
	struct ctl_reply reply = {0};
	int rc = fleet_parse_op(ctl, cmd, argc, argv, with_placement, with_gpu, &op);
	if (rc != CTL_EXIT_OK || op.model == NULL)
		return rc; /* a usage error, or --help */

	json_t *body = json_pack("{s:s}", "model", op.model);
	if (op.node != NULL)
		json_object_set_new(body, "node", json_string(op.node));
	if (op.placement != NULL)
		json_object_set_new(body, "placement", json_string(op.placement));
	if (op.gpu >= 0)
		json_object_set_new(body, "gpu", json_integer(op.gpu));
	json_object_set_new(body, "timeout", json_real(op.wait_s));
	rc = ctl_api_print(ctl, "POST", path, body, (long)op.wait_s + FLEET_HTTP_SLACK_S, &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	if (ctl->json)
		ctl_print_raw(&reply);
	else
		fleet_print_model(reply.json);
	if (json_is_false(json_object_get(reply.json, "done"))) {
		fprintf(stderr,
			"vramctl: %s of %s is not done after %g s; `vramctl vram-report` shows "
			"where it is\n",
			cmd->name, op.model, op.wait_s);
		rc = CTL_EXIT_API;
	}
out:
	json_decref(body);
	ctl_reply_cleanup(&reply);
	return rc;
}

#define FLEET_OP_DETAILS                                                                           \
	"  --node N           the node (GET /api/nodes; default: vramd's only node)\n"             \
	"  -t, --timeout S    seconds vramd waits for the move (default 120, at most 3600)\n"      \
	"Prints where the model is afterwards; exits 1 when the move is not done in time.\n"

static int
cmd_force_gpu_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return fleet_op_exec(ctl, cmd, argc, argv, "/api/models/force_gpu", false, false);
}

const struct ctl_cmd ctl_cmd_force_gpu = {
    .name = "force-gpu",
    .usage = "MODEL [--node N] [--timeout S]",
    .help = "run a model on a GPU from now on (until `placement MODEL auto`)",
    .details = FLEET_OP_DETAILS,
    .exec = cmd_force_gpu_exec,
};

static int
cmd_force_cpu_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return fleet_op_exec(ctl, cmd, argc, argv, "/api/models/force_cpu", false, false);
}

const struct ctl_cmd ctl_cmd_force_cpu = {
    .name = "force-cpu",
    .usage = "MODEL [--node N] [--timeout S]",
    .help = "run a model on the CPU from now on (until `placement MODEL auto`)",
    .details = FLEET_OP_DETAILS,
    .exec = cmd_force_cpu_exec,
};

static int
cmd_placement_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return fleet_op_exec(ctl, cmd, argc, argv, "/api/models/placement", true, false);
}

const struct ctl_cmd ctl_cmd_placement = {
    .name = "placement",
    .usage = "MODEL gpu|cpu|auto [--node N] [--timeout S]",
    .help = "set where a model runs: gpu, cpu, or auto (vramd decides again)",
    .details = FLEET_OP_DETAILS,
    .exec = cmd_placement_exec,
};

static int
cmd_load_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return fleet_op_exec(ctl, cmd, argc, argv, "/api/models/load", false, true);
}

const struct ctl_cmd ctl_cmd_load = {
    .name = "load",
    .usage = "MODEL [--node N] [--gpu G] [--timeout S]",
    .help = "load a model with no job (it stays for MODEL_KEEP_ALIVE)",
    .details = "  -g, --gpu G        load it on GPU index G (default: where vramd places "
	       "it)\n" FLEET_OP_DETAILS,
    .exec = cmd_load_exec,
};

static int
cmd_unload_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	return fleet_op_exec(ctl, cmd, argc, argv, "/api/models/unload", false, false);
}

const struct ctl_cmd ctl_cmd_unload = {
    .name = "unload",
    .usage = "MODEL [--node N] [--timeout S]",
    .help = "unload a model once its running jobs finish",
    .details = FLEET_OP_DETAILS "A pinned model (PIN_MODELS) cannot be unloaded.\n",
    .exec = cmd_unload_exec,
};

/* GETs a node view with no arguments; returns the exit code, *reply filled on OK. */
static int
fleet_get(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, const char *path,
	  struct ctl_reply *reply)
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1)
		if (opt == -2)
			return rc == CTL_EXIT_OK ? -1 : rc;
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	rc = ctl_api_print(ctl, "GET", path, NULL, CTL_DEFAULT_TIMEOUT_S, reply);
	if (rc == CTL_EXIT_OK && ctl->json) {
		ctl_print_raw(reply);
		return -1;
	}
	return rc;
}

static void
fleet_print_node_gpus(const json_t *gpus)
{
	char a[64];
	if (json_array_size(gpus) == 0) {
		printf("no GPUs\n");
		return;
	}
	struct ctl_table *t = ctl_table_new(6, "GPU", "NAME", "STATE", "TOTAL", "USED", "FREE");
	size_t i;
	json_t *g;
	json_array_foreach(gpus, i, g)
	{
		ctl_table_cell(t, ctl_fmt_num(json_object_get(g, "index"), a, sizeof(a)));
		ctl_table_cell(t, ctl_json_str(g, "name"));
		ctl_table_cell(t, ctl_json_str(g, "state"));
		ctl_table_cell(t, ctl_fmt_bytes(json_object_get(g, "total_bytes"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_bytes(json_object_get(g, "used_bytes"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_bytes(json_object_get(g, "free_bytes"), a, sizeof(a)));
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void
fleet_print_node_models(const json_t *models)
{
	char a[128];
	if (json_array_size(models) == 0) {
		printf("no models loaded\n");
		return;
	}
	struct ctl_table *t = ctl_table_new(8, "MODEL", "STATE", "LOCATION", "VRAM", "SIZE",
					    "PLACEMENT", "RUNNING", "FLAGS");
	size_t i;
	json_t *m;
	json_array_foreach(models, i, m)
	{
		ctl_table_cell(t, ctl_json_str(m, "model"));
		ctl_table_cell(t, ctl_json_str(m, "state"));
		fleet_fmt_location(m, a, sizeof(a));
		ctl_table_cell(t, a);
		ctl_table_cell(t,
			       ctl_fmt_bytes(json_object_get(m, "size_vram_bytes"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_bytes(json_object_get(m, "size_bytes"), a, sizeof(a)));
		ctl_table_cell(t, ctl_json_str(m, "placement"));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(m, "running"), a, sizeof(a)));
		fleet_fmt_flags(m, a, sizeof(a));
		ctl_table_cell(t, a);
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static int
cmd_vram_report_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_reply reply = {0};
	int rc = fleet_get(ctl, cmd, argc, argv, "/api/vram_report", &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	json_t *nodes = json_object_get(reply.json, "nodes");
	if (json_array_size(nodes) == 0)
		printf("no nodes\n");
	size_t i;
	json_t *node;
	json_array_foreach(nodes, i, node)
	{
		const char *name = ctl_json_str(node, "node");
		const char *url = ctl_json_str(node, "url");
		printf("%snode %s", i ? "\n" : "", name != NULL ? name : "-");
		if (url != NULL && (name == NULL || strcmp(url, name) != 0))
			printf(" (%s)", url);
		printf("\n\n");
		fleet_print_node_gpus(json_object_get(node, "gpus"));
		printf("\n");
		fleet_print_node_models(json_object_get(node, "models"));
	}
out:
	ctl_reply_cleanup(&reply);
	return rc < 0 ? CTL_EXIT_OK : rc;
}

const struct ctl_cmd ctl_cmd_vram_report = {
    .name = "vram-report",
    .usage = "",
    .help = "per node: GPU memory and every loaded model with its location and VRAM",
    .details = "LOCATION is \"gpu N\", \"cpu\", or \"gpu N + cpu\" for a model spilled\n"
	       "partly into system memory (VRAM below SIZE). FLAGS: pinned (PIN_MODELS),\n"
	       "gpu-priority (GPU_PRIORITY_MODELS), moving (a load, unload or move under way).\n",
    .exec = cmd_vram_report_exec,
};

static int
cmd_lb_stats_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_reply reply = {0};
	int rc = fleet_get(ctl, cmd, argc, argv, "/api/lb_stats", &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	json_t *nodes = json_object_get(reply.json, "nodes");
	if (json_array_size(nodes) == 0) {
		printf("no nodes\n");
		goto out;
	}
	struct ctl_table *t = ctl_table_new(8, "NODE", "REQUESTS", "COMPLETED", "FAILURES",
					    "MEAN_LATENCY_MS", "RUNNING", "QUEUED", "BREAKER");
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
	{
		char a[64];
		ctl_table_cell(t, ctl_json_str(n, "node"));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "requests"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "completed"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "failures"), a, sizeof(a)));
		const json_t *mean = json_object_get(n, "mean_latency_ms");
		if (json_is_number(mean))
			ctl_table_cellf(t, "%.1f", json_number_value(mean));
		else
			ctl_table_cell(t, NULL);
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "running"), a, sizeof(a)));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "queued"), a, sizeof(a)));
		ctl_table_cell(t, ctl_json_str(n, "breaker"));
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
out:
	ctl_reply_cleanup(&reply);
	return rc < 0 ? CTL_EXIT_OK : rc;
}

const struct ctl_cmd ctl_cmd_lb_stats = {
    .name = "lb-stats",
    .usage = "",
    .help = "per node: jobs dispatched and failed, mean run time, running, queued, breaker",
    .details = "REQUESTS counts jobs dispatched to the node, MEAN_LATENCY_MS is a moving\n"
	       "average of run times (\"-\" before the first), BREAKER \"closed\" while the\n"
	       "node answers and \"open\" while it is down.\n",
    .exec = cmd_lb_stats_exec,
};

static int
cmd_nodes_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_reply reply = {0};
	int rc = fleet_get(ctl, cmd, argc, argv, "/api/nodes", &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	json_t *nodes = json_object_get(reply.json, "nodes");
	if (json_array_size(nodes) == 0) {
		printf("no nodes\n");
		goto out;
	}
	struct ctl_table *t =
	    ctl_table_new(7, "NODE", "URL", "STATE", "VERSION", "GPUS", "VRAM", "MODELS");
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
	{
		char a[64];
		const json_t *gpus = json_object_get(n, "gpus");
		uint64_t total = 0;
		bool known = json_array_size(gpus) > 0;
		size_t j;
		json_t *g;
		json_array_foreach(gpus, j, g)
		{
			const json_t *bytes = json_object_get(g, "total_bytes");
			if (json_is_integer(bytes) && json_integer_value(bytes) >= 0)
				total += (uint64_t)json_integer_value(bytes);
			else
				known = false;
		}
		ctl_table_cell(t, ctl_json_str(n, "node"));
		ctl_table_cell(t, ctl_json_str(n, "url"));
		ctl_table_cell(t, ctl_json_str(n, "state"));
		ctl_table_cell(t, ctl_fmt_num(json_object_get(n, "version"), a, sizeof(a)));
		ctl_table_cellf(t, "%zu", json_array_size(gpus));
		if (known)
			vd_format_size(total, a, sizeof(a));
		ctl_table_cell(t, known ? a : NULL);

		struct vd_buf b;
		const json_t *models = json_object_get(n, "models");
		json_t *m;
		vd_buf_init(&b, 4096);
		json_array_foreach(models, j, m)
		{
			if (json_is_string(m))
				vd_buf_printf(&b, "%s%s", b.len ? "," : "", json_string_value(m));
		}
		ctl_table_cell(t, b.len > 0 ? vd_buf_str(&b) : NULL);
		vd_buf_cleanup(&b);
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
out:
	ctl_reply_cleanup(&reply);
	return rc < 0 ? CTL_EXIT_OK : rc;
}

const struct ctl_cmd ctl_cmd_nodes = {
    .name = "nodes",
    .usage = "",
    .help = "the Ollama nodes: URL, state, version, GPUs and loaded models",
    .details = "GPUS is how many GPUs the node has, VRAM their total memory (\"-\" until\n"
	       "sampled), MODELS the models loaded there now.\n",
    .exec = cmd_nodes_exec,
};
