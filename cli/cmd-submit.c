/*
 * cmd-submit.c: `vramctl submit` builds a POST /api/submit body from the command line
 * and, with --wait, long-polls the job and prints its result.
 *
 * Local checks catch what the command line alone can get wrong (no model, no prompt,
 * an unknown kind or priority, a malformed --option or JSON argument) as usage errors
 * (exit 2); everything else is for vramd to judge (exit 1 with its message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "progress.h"
#include "util.h"
#include "vramctl.h"

static bool
submit_name_ok(const char *name, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(name, *names) == 0)
			return true;
	return false;
}

/* Adds "k=v" to options: v as JSON when it parses as JSON, else as a string. */
static int
submit_add_option(const struct ctl_cmd *cmd, json_t *options, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (eq == NULL || eq == kv)
		return ctl_usage_error(cmd, "--option wants KEY=VALUE (got \"%s\")", kv);
	char *key = xstrndup(kv, (size_t)(eq - kv));
	json_t *value = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	if (value == NULL)
		value = json_string(eq + 1);
	json_object_set_new(options, key, value);
	free(key);
	return CTL_EXIT_OK;
}

static int
submit_parse_json_arg(const struct ctl_cmd *cmd, const char *opt, const char *text, json_t **out)
{
	json_error_t err;
	json_decref(*out);
	*out = json_loads(text, JSON_DECODE_ANY, &err);
	if (*out == NULL)
		return ctl_usage_error(cmd, "%s is not valid JSON: %s", opt, err.text);
	return CTL_EXIT_OK;
}

static void
submit_progress_cb(const json_t *job, void *arg)
{
	ctl_progress_show(arg, 0, 0, job);
}

static int
cmd_submit_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const kinds[] = {"generate", "chat", "embed", NULL};
	static const char *const priorities[] = {"high", "normal", "low", NULL};
	static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
						 {"prompt", required_argument, NULL, 'p'},
						 {"messages-json", required_argument, NULL, 'M'},
						 {"input", required_argument, NULL, 'i'},
						 {"kind", required_argument, NULL, 'k'},
						 {"priority", required_argument, NULL, 'P'},
						 {"option", required_argument, NULL, 'o'},
						 {"metadata-json", required_argument, NULL, 'D'},
						 {"wait", optional_argument, NULL, 'w'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	const char *model = NULL, *prompt = NULL, *kind = NULL, *priority = NULL;
	json_t *messages = NULL, *inputs = json_array(), *options = json_object();
	json_t *metadata = NULL, *body = NULL;
	struct ctl_reply reply = {0}, job = {0};
	double wait_s = -1;
	bool waiting = false;
	char *cause = NULL;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "m:p:i:k:P:o:", longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			goto out;
		case 'm':
			model = optarg;
			break;
		case 'p':
			prompt = optarg;
			break;
		case 'M':
			if ((rc = submit_parse_json_arg(cmd, "--messages-json", optarg, &messages)))
				goto out;
			if (!json_is_array(messages)) {
				rc = ctl_usage_error(cmd, "--messages-json must be a JSON array");
				goto out;
			}
			break;
		case 'i':
			json_array_append_new(inputs, json_string(optarg));
			break;
		case 'k':
			kind = optarg;
			break;
		case 'P':
			priority = optarg;
			break;
		case 'o':
			if ((rc = submit_add_option(cmd, options, optarg)))
				goto out;
			break;
		case 'D':
			if ((rc = submit_parse_json_arg(cmd, "--metadata-json", optarg, &metadata)))
				goto out;
			break;
		case 'w':
			waiting = true;
			wait_s = -1;
			if (optarg != NULL &&
			    vd_parse_double(optarg, 0, 1e9, &wait_s, "--wait", &cause) != 0) {
				rc = ctl_usage_error(cmd, "%s", cause);
				goto out;
			}
			break;
		}
	}
	if (optind < argc) {
		rc = ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (model == NULL) {
		rc = ctl_usage_error(cmd, "--model is required");
		goto out;
	}
	int ninputs = (prompt != NULL) + (messages != NULL) + (json_array_size(inputs) > 0);
	if (ninputs != 1) {
		rc = ctl_usage_error(
		    cmd, ninputs == 0 ? "one of --prompt, --messages-json or --input is required"
				      : "give only one of --prompt, --messages-json, --input");
		goto out;
	}
	if (kind != NULL && !submit_name_ok(kind, kinds)) {
		rc = ctl_usage_error(cmd, "--kind must be generate, chat or embed (got \"%s\")",
				     kind);
		goto out;
	}
	if (priority != NULL && !submit_name_ok(priority, priorities)) {
		rc = ctl_usage_error(cmd, "--priority must be high, normal or low (got \"%s\")",
				     priority);
		goto out;
	}

	body = json_pack("{s:s}", "model", model);
	if (prompt != NULL)
		json_object_set_new(body, "prompt", json_string(prompt));
	if (messages != NULL)
		json_object_set(body, "messages", messages);
	if (json_array_size(inputs) == 1)
		json_object_set(body, "input", json_array_get(inputs, 0));
	else if (json_array_size(inputs) > 1)
		json_object_set(body, "input", inputs);
	if (kind != NULL)
		json_object_set_new(body, "kind", json_string(kind));
	if (priority != NULL)
		json_object_set_new(body, "priority", json_string(priority));
	if (json_object_size(options) > 0)
		json_object_set(body, "options", options);
	if (metadata != NULL)
		json_object_set(body, "metadata", metadata);

	rc = ctl_api_print(ctl, "POST", "/api/submit", body, CTL_DEFAULT_TIMEOUT_S, &reply);
	if (rc != CTL_EXIT_OK)
		goto out;
	const char *id = ctl_json_str(reply.json, "job_id");
	if (!waiting || id == NULL) {
		if (ctl->json) {
			ctl_print_raw(&reply);
		} else {
			char a[64];
			struct ctl_kv *kv = ctl_kv_new();
			ctl_kv_add(kv, "job", "%s", id != NULL ? id : "-");
			ctl_kv_add(
			    kv, "status", "%s",
			    ctl_fmt_num(json_object_get(reply.json, "status"), a, sizeof(a)));
			ctl_kv_add(
			    kv, "position", "%s",
			    ctl_fmt_num(json_object_get(reply.json, "position"), a, sizeof(a)));
			ctl_kv_add(kv, "eta", "%s s",
				   ctl_fmt_num(json_object_get(reply.json, "eta_s"), a, sizeof(a)));
			ctl_kv_print(kv, stdout);
			ctl_kv_free(kv);
		}
		goto out;
	}

	/* On a terminal, a progress line on stderr while it waits (nothing otherwise). */
	struct ctl_progress progress;
	ctl_progress_init(&progress);
	rc = ctl_job_wait_progress(ctl, id, wait_s, progress.on ? submit_progress_cb : NULL,
				   &progress, &job, &cause);
	ctl_progress_end(&progress);
	if (rc != CTL_EXIT_OK) {
		fprintf(stderr, "vramctl: job %s: %s\n", id, cause);
		goto out;
	}
	const char *status = ctl_json_str(job.json, "status");
	if (ctl->json)
		ctl_print_raw(&job);
	else if (status != NULL && strcmp(status, "complete") == 0)
		ctl_print_result(job.json);
	if (status == NULL || strcmp(status, "complete") != 0) {
		const char *error = ctl_json_str(job.json, "error");
		if (ctl_job_status_is_final(status))
			fprintf(stderr, "vramctl: job %s %s: %s\n", id, status,
				error != NULL ? error : "no error message");
		else
			fprintf(stderr, "vramctl: job %s is still %s after %g s\n", id,
				status != NULL ? status : "unknown", wait_s);
		rc = CTL_EXIT_API;
	}
out:
	ctl_reply_cleanup(&job);
	ctl_reply_cleanup(&reply);
	free(cause);
	json_decref(body);
	json_decref(metadata);
	json_decref(options);
	json_decref(inputs);
	json_decref(messages);
	return rc;
}

const struct ctl_cmd ctl_cmd_submit = {
    .name = "submit",
    .usage = "--model M (--prompt TEXT | --messages-json JSON | --input TEXT...) [OPTIONS]",
    .help = "submit an inference job (generate, chat or embed)",
    .details =
	"  -m, --model M          the model, as `vramctl models` names it (required)\n"
	"  -p, --prompt TEXT      a prompt: a generate job\n"
	"  --messages-json JSON   a chat: '[{\"role\":\"user\",\"content\":\"Hi\"}]'\n"
	"  -i, --input TEXT       text to embed: an embed job (repeat for several)\n"
	"  -k, --kind K           generate, chat or embed (default: from the input given)\n"
	"  -P, --priority P       high, normal (default) or low\n"
	"  -o, --option K=V       an Ollama option (repeatable); V is JSON when it parses\n"
	"                         as JSON (temperature=0.2), else a string\n"
	"  --metadata-json JSON   your own data, stored with the job and echoed back\n"
	"  --wait[=S]             wait (up to S seconds; no limit without S) and print the\n"
	"                         result; exit 1 if the job failed, was cancelled or is not\n"
	"                         done in time\n",
    .exec = cmd_submit_exec,
};
