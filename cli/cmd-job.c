/*
 * cmd-job.c: `vramctl job ID [--wait S]` shows one job, `vramctl cancel ID` cancels
 * one; also the job helpers other commands share (long-poll until final, print a job
 * and its result), used by cmd-submit.c and cmd-bench.c.
 *
 * Long polls go out in slices of at most CTL_WAIT_SLICE_S seconds so a dropped
 * connection or a daemon restart costs one slice, not the whole wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "table.h"
#include "util.h"
#include "vramctl.h"

#define CTL_WAIT_SLICE_S 60.0

bool
ctl_job_status_is_final(const char *status)
{
	return status != NULL &&
	       (strcmp(status, "complete") == 0 || strcmp(status, "failed") == 0 ||
		strcmp(status, "cancelled") == 0);
}

int
ctl_job_wait(const struct ctl *ctl, const char *id, double wait_s, struct ctl_reply *reply,
	     char **cause)
{
	return ctl_job_wait_progress(ctl, id, wait_s, NULL, NULL, reply, cause);
}

int
ctl_job_wait_progress(const struct ctl *ctl, const char *id, double wait_s,
		      ctl_job_progress_cb *progress, void *arg, struct ctl_reply *reply,
		      char **cause)
{
	double slice = progress != NULL ? CTL_PROGRESS_SLICE_S : CTL_WAIT_SLICE_S;
	char *eid = ctl_http_escape(id);
	int64_t deadline = wait_s >= 0 ? vd_now_mono_ms() + (int64_t)(wait_s * 1000) : INT64_MAX;
	int rc;

	for (;;) {
		double left = wait_s < 0 ? slice : (double)(deadline - vd_now_mono_ms()) / 1000.0;
		if (left < 0)
			left = 0;
		if (left > slice)
			left = slice;
		char *path = left > 0 ? xasprintf("/api/job/%s?wait=%.3f", eid, left)
				      : xasprintf("/api/job/%s", eid);
		rc = ctl_api(ctl, "GET", path, NULL, (long)left + CTL_DEFAULT_TIMEOUT_S, reply,
			     cause);
		free(path);
		if (rc != CTL_EXIT_OK)
			break;
		if (ctl_job_status_is_final(ctl_json_str(reply->json, "status")) || left <= 0 ||
		    (wait_s >= 0 && vd_now_mono_ms() >= deadline))
			break;
		if (progress != NULL) {
			/* A long-poll that times out answers without queue_position and eta_s
			 * (src/daemon.c replies with the bare job); a plain GET has them. */
			struct ctl_reply now = {0};
			char *now_path = xasprintf("/api/job/%s", eid);
			char *now_cause = NULL;
			bool got = ctl_api(ctl, "GET", now_path, NULL, CTL_DEFAULT_TIMEOUT_S, &now,
					   &now_cause) == CTL_EXIT_OK;
			progress(got ? now.json : reply->json, arg);
			free(now_path);
			free(now_cause);
			ctl_reply_cleanup(&now);
		}
		ctl_reply_cleanup(reply);
	}
	free(eid);
	return rc;
}

void
ctl_print_result(const json_t *job)
{
	const json_t *result = json_object_get(job, "result");
	const char *text = ctl_json_str(result, "response");
	if (text == NULL)
		text = ctl_json_str(json_object_get(result, "message"), "content");
	if (text != NULL) {
		size_t len = strlen(text);
		fputs(text, stdout);
		if (len == 0 || text[len - 1] != '\n')
			fputc('\n', stdout);
		return;
	}
	const json_t *emb = json_object_get(result, "embeddings");
	if (json_is_array(emb)) {
		size_t n = json_array_size(emb);
		size_t dim = n > 0 ? json_array_size(json_array_get(emb, 0)) : 0;
		printf("%zu embedding%s of dimension %zu", n, n == 1 ? "" : "s", dim);
		if (dim > 0) {
			printf(": [");
			for (size_t i = 0; i < dim && i < 4; i++) {
				json_t *x = json_array_get(json_array_get(emb, 0), i);
				printf("%s%.6g", i ? ", " : "", json_number_value(x));
			}
			printf("%s]", dim > 4 ? ", ..." : "");
		}
		printf("\n");
		return;
	}
	if (result != NULL) {
		char *dump = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER |
						    JSON_REAL_PRECISION(15));
		printf("%s\n", dump != NULL ? dump : "");
		free(dump);
	}
}

void
ctl_print_job(const json_t *job)
{
	struct ctl_kv *kv = ctl_kv_new();
	char a[64], b[64], c[64];
	const json_t *metrics = json_object_get(job, "metrics");
	const json_t *metadata = json_object_get(job, "metadata");

	ctl_kv_add(kv, "job", "%s", ctl_fmt_num(json_object_get(job, "job_id"), a, sizeof(a)));
	ctl_kv_add(kv, "status", "%s", ctl_fmt_num(json_object_get(job, "status"), a, sizeof(a)));
	ctl_kv_add(kv, "model", "%s", ctl_fmt_num(json_object_get(job, "model"), a, sizeof(a)));
	ctl_kv_add(kv, "kind", "%s", ctl_fmt_num(json_object_get(job, "kind"), a, sizeof(a)));
	ctl_kv_add(kv, "priority", "%s",
		   ctl_fmt_num(json_object_get(job, "priority"), a, sizeof(a)));
	ctl_kv_add(kv, "submitted", "%s",
		   ctl_fmt_time(json_object_get(job, "submitted_at"), a, sizeof(a)));
	ctl_kv_add(kv, "started", "%s",
		   ctl_fmt_time(json_object_get(job, "started_at"), a, sizeof(a)));
	ctl_kv_add(kv, "completed", "%s",
		   ctl_fmt_time(json_object_get(job, "completed_at"), a, sizeof(a)));
	ctl_kv_add(kv, "wait/load/run", "%s / %s / %s ms",
		   ctl_fmt_num(json_object_get(metrics, "wait_ms"), a, sizeof(a)),
		   ctl_fmt_num(json_object_get(metrics, "load_ms"), b, sizeof(b)),
		   ctl_fmt_num(json_object_get(metrics, "run_ms"), c, sizeof(c)));
	ctl_kv_add(kv, "attempts", "%s",
		   ctl_fmt_num(json_object_get(job, "attempts"), a, sizeof(a)));
	if (ctl_json_str(job, "error") != NULL)
		ctl_kv_add(kv, "error", "%s", ctl_json_str(job, "error"));
	if (metadata != NULL && !json_is_null(metadata)) {
		char *dump = json_dumps(metadata, JSON_COMPACT | JSON_PRESERVE_ORDER |
						      JSON_REAL_PRECISION(15));
		ctl_kv_add(kv, "metadata", "%s", dump != NULL ? dump : "?");
		free(dump);
	}
	ctl_kv_print(kv, stdout);
	ctl_kv_free(kv);
	if (json_object_get(job, "result") != NULL) {
		printf("\n");
		ctl_print_result(job);
	}
}

static int
cmd_job_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"wait", required_argument, NULL, 'w'}, CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct ctl_reply reply;
	double wait_s = 0;
	bool waiting = false;
	char *cause = NULL;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "w:", longopts, &rc)) != -1) {
		if (opt == -2)
			return rc;
		if (opt == 'w') {
			if (vd_parse_double(optarg, 0, 1e9, &wait_s, "--wait", &cause) != 0) {
				rc = ctl_usage_error(cmd, "%s", cause);
				free(cause);
				return rc;
			}
			waiting = true;
		}
	}
	if (argc - optind != 1)
		return ctl_usage_error(cmd, argc - optind == 0 ? "a job id is required"
							       : "exactly one job id is expected");
	rc = ctl_job_wait(ctl, argv[optind], wait_s, &reply, &cause);
	if (rc != CTL_EXIT_OK) {
		fprintf(stderr, "vramctl: %s\n", cause);
		free(cause);
		ctl_reply_cleanup(&reply);
		return rc;
	}
	if (ctl->json)
		ctl_print_raw(&reply);
	else
		ctl_print_job(reply.json);
	const char *status = ctl_json_str(reply.json, "status");
	if (waiting && (status == NULL || strcmp(status, "complete") != 0)) {
		if (!ctl_job_status_is_final(status))
			fprintf(stderr, "vramctl: job %s is still %s after %g s\n", argv[optind],
				status != NULL ? status : "unknown", wait_s);
		rc = CTL_EXIT_API;
	}
	ctl_reply_cleanup(&reply);
	return rc;
}

const struct ctl_cmd ctl_cmd_job = {
    .name = "job",
    .usage = "[--wait S] ID",
    .help = "show one job: status, times, metrics, and its result when complete",
    .details = "  --wait S   long-poll up to S seconds for a final status; then exit 1 unless the\n"
	       "             job completed\n",
    .exec = cmd_job_exec,
};

static int
cmd_cancel_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct ctl_reply reply;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1)
		if (opt == -2)
			return rc;
	if (argc - optind != 1)
		return ctl_usage_error(cmd, argc - optind == 0 ? "a job id is required"
							       : "exactly one job id is expected");
	char *eid = ctl_http_escape(argv[optind]);
	char *path = xasprintf("/api/job/%s", eid);
	rc = ctl_api_print(ctl, "DELETE", path, NULL, CTL_DEFAULT_TIMEOUT_S, &reply);
	if (rc == CTL_EXIT_OK) {
		if (ctl->json)
			ctl_print_raw(&reply);
		else
			printf("%s %s\n", argv[optind],
			       ctl_json_str(reply.json, "status") != NULL
				   ? ctl_json_str(reply.json, "status")
				   : "cancelled");
	}
	ctl_reply_cleanup(&reply);
	free(path);
	free(eid);
	return rc;
}

const struct ctl_cmd ctl_cmd_cancel = {
    .name = "cancel",
    .usage = "ID",
    .help = "cancel a queued, pending or running job",
    .details = "",
    .exec = cmd_cancel_exec,
};
