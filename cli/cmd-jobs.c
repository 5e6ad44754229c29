/*
 * cmd-jobs.c: `vramctl jobs [--status S] [--model M] [--priority P] [--limit N]` lists
 * jobs newest first (GET /api/jobs), one table row per job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "table.h"
#include "util.h"
#include "vramctl.h"

/* Appends "&name=value" (or "?name=value" first) to the query, escaped. */
static void
jobs_query_add(struct vd_buf *q, const char *name, const char *value)
{
	char *escaped = ctl_http_escape(value);
	vd_buf_printf(q, "%c%s=%s", q->len == 0 ? '?' : '&', name, escaped);
	free(escaped);
}

static int
cmd_jobs_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"status", required_argument, NULL, 's'},
						 {"model", required_argument, NULL, 'm'},
						 {"priority", required_argument, NULL, 'P'},
						 {"limit", required_argument, NULL, 'n'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	struct vd_buf query;
	struct ctl_reply reply = {0};
	char *cause = NULL;
	int64_t limit;
	int opt, rc = CTL_EXIT_OK;

	vd_buf_init(&query, 4096);
	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "s:m:P:n:", longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			goto out;
		case 's':
			jobs_query_add(&query, "status", optarg);
			break;
		case 'm':
			jobs_query_add(&query, "model", optarg);
			break;
		case 'P':
			jobs_query_add(&query, "priority", optarg);
			break;
		case 'n':
			if (vd_parse_int64(optarg, 1, 1000, &limit, "--limit", &cause) != 0) {
				rc = ctl_usage_error(cmd, "%s", cause);
				goto out;
			}
			jobs_query_add(&query, "limit", optarg);
			break;
		}
	}
	if (optind < argc) {
		rc = ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	char *path = xasprintf("/api/jobs%s", vd_buf_str(&query));
	rc = ctl_api_print(ctl, "GET", path, NULL, CTL_DEFAULT_TIMEOUT_S, &reply);
	free(path);
	if (rc != CTL_EXIT_OK)
		goto out;
	if (ctl->json) {
		ctl_print_raw(&reply);
		goto out;
	}
	json_t *jobs = json_object_get(reply.json, "jobs");
	if (json_array_size(jobs) == 0) {
		printf("no jobs\n");
		goto out;
	}
	struct ctl_table *t = ctl_table_new(9, "JOB", "STATUS", "MODEL", "KIND", "PRIORITY",
					    "SUBMITTED", "WAIT_MS", "RUN_MS", "ERROR");
	size_t i;
	json_t *job;
	json_array_foreach(jobs, i, job)
	{
		char buf[64];
		const json_t *metrics = json_object_get(job, "metrics");
		ctl_table_cell(t, ctl_json_str(job, "job_id"));
		ctl_table_cell(t, ctl_json_str(job, "status"));
		ctl_table_cell(t, ctl_json_str(job, "model"));
		ctl_table_cell(t, ctl_json_str(job, "kind"));
		ctl_table_cell(t, ctl_json_str(job, "priority"));
		ctl_table_cell(
		    t, ctl_fmt_time(json_object_get(job, "submitted_at"), buf, sizeof(buf)));
		ctl_table_cell(t,
			       ctl_fmt_num(json_object_get(metrics, "wait_ms"), buf, sizeof(buf)));
		ctl_table_cell(t,
			       ctl_fmt_num(json_object_get(metrics, "run_ms"), buf, sizeof(buf)));
		const char *error = ctl_json_str(job, "error");
		char short_error[61];
		vd_strlcpy(short_error, error != NULL ? error : "", sizeof(short_error));
		ctl_table_cell(t, error != NULL ? short_error : NULL);
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
out:
	ctl_reply_cleanup(&reply);
	vd_buf_cleanup(&query);
	free(cause);
	return rc;
}

const struct ctl_cmd ctl_cmd_jobs = {
    .name = "jobs",
    .usage = "[--status S[,S...]] [--model M] [--priority P] [--limit N]",
    .help = "list jobs, newest first",
    .details = "  -s, --status S     only jobs in these statuses (queued, pending, running,\n"
	       "                     complete, failed, cancelled; comma-separated)\n"
	       "  -m, --model M      only jobs of this model\n"
	       "  -P, --priority P   only jobs of this priority\n"
	       "  -n, --limit N      at most N jobs (1-1000; vramd's default is 100)\n",
    .exec = cmd_jobs_exec,
};
