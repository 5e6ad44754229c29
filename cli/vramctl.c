/*
 * vramctl.c: the command-line client for vramd: global options, the command table,
 * dispatch, and the helpers every command uses to call the API and print replies.
 *
 * vramctl [--url URL] [--api-key KEY] [--json] COMMAND [OPTIONS] [ARGS]
 *
 * Each command lives in its own cmd-*.c file and is one entry of ctl_cmd_table (tmux's
 * cmd_table). Exit statuses are fixed for every command: 0 success, 1 an API error or
 * failed job, 2 a usage error, 3 vramd unreachable. vramctl talks HTTP only.
 */
#include "vramctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

static const struct ctl_cmd *const ctl_cmd_table[] = {
    &ctl_cmd_submit, &ctl_cmd_job,	 &ctl_cmd_cancel,      &ctl_cmd_jobs,
    &ctl_cmd_stats,  &ctl_cmd_models,	 &ctl_cmd_health,      &ctl_cmd_bench,
    &ctl_cmd_gpus,   &ctl_cmd_gpu_watch, &ctl_cmd_reserve,     &ctl_cmd_release,
    &ctl_cmd_events, &ctl_cmd_force_gpu, &ctl_cmd_force_cpu,   &ctl_cmd_placement,
    &ctl_cmd_load,   &ctl_cmd_unload,	 &ctl_cmd_vram_report, &ctl_cmd_lb_stats,
    &ctl_cmd_nodes,  &ctl_cmd_top,	 &ctl_cmd_cluster,
};

static void
ctl_print_help(FILE *out)
{
	fprintf(
	    out,
	    "usage: vramctl [--url URL] [--api-key KEY] [--json] COMMAND [OPTIONS] [ARGS]\n\n"
	    "Talks to vramd, the VRAM-aware scheduler in front of Ollama.\n\n"
	    "Global options (also accepted after the command):\n"
	    "  --url URL       vramd's address (default $VRAMD_URL, else " CTL_DEFAULT_URL ")\n"
	    "  --api-key KEY   API key for a vramd with API_KEYS_FILE (default $VRAMD_API_KEY;\n"
	    "                  prefer the variable: arguments show in ps)\n"
	    "  --json          print the raw JSON replies instead of tables\n"
	    "  --help          this help; `vramctl COMMAND --help` describes one command\n\n"
	    "Commands:\n");
	size_t width = 0;
	for (size_t i = 0; i < VD_ARRAY_LEN(ctl_cmd_table); i++)
		if (strlen(ctl_cmd_table[i]->name) > width)
			width = strlen(ctl_cmd_table[i]->name);
	for (size_t i = 0; i < VD_ARRAY_LEN(ctl_cmd_table); i++)
		fprintf(out, "  %-*s  %s\n", (int)width, ctl_cmd_table[i]->name,
			ctl_cmd_table[i]->help);
	fprintf(out, "\nExit status: 0 success, 1 API error or failed job, 2 usage error, "
		     "3 vramd unreachable.\n");
}

static void
ctl_print_cmd_help(const struct ctl_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: vramctl %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->help);
	if (cmd->details != NULL && *cmd->details != '\0')
		fprintf(out, "\n%s", cmd->details);
	fprintf(out, "\nCommon options: --url URL, --api-key KEY, --json, --help\n");
}

int
ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "vramctl %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: vramctl %s %s\n(see vramctl %s --help)\n", cmd->name, cmd->usage,
		cmd->name);
	return CTL_EXIT_USAGE;
}

void
ctl_set_url(struct ctl *ctl, const char *url)
{
	free(ctl->url);
	if (strstr(url, "://") == NULL)
		ctl->url = xasprintf("http://%s", url);
	else
		ctl->url = xstrdup(url);
	size_t len = strlen(ctl->url);
	while (len > 0 && ctl->url[len - 1] == '/')
		ctl->url[--len] = '\0';
}

bool
ctl_set_api_key(struct ctl *ctl, const char *key)
{
	for (const char *p = key; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			/* The key itself is never printed: it is a secret. */
			fprintf(stderr,
				"vramctl: the API key holds a space or control character "
				"(character %zu); keys are visible ASCII\n",
				(size_t)(p - key) + 1);
			return false;
		}
	}
	free(ctl->api_key);
	ctl->api_key = *key != '\0' ? xstrdup(key) : NULL;
	return true;
}

int
ctl_getopt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, const char *shortopts,
	   const struct option *longopts, int *exit_code)
{
	char *opts = xasprintf(":h%s", shortopts);
	int longindex = -1;
	int opt;

	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, opts, longopts, &longindex);
		if (opt == CTL_OPT_JSON) {
			ctl->json = true;
			continue;
		}
		if (opt == CTL_OPT_URL) {
			ctl_set_url(ctl, optarg);
			continue;
		}
		if (opt == CTL_OPT_API_KEY) {
			if (ctl_set_api_key(ctl, optarg))
				continue;
			*exit_code = CTL_EXIT_USAGE;
			opt = -2;
			break;
		}
		if (opt == 'h') {
			ctl_print_cmd_help(cmd, stdout);
			*exit_code = CTL_EXIT_OK;
			opt = -2;
		} else if (opt == '?' || opt == ':') {
			const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";
			if (optopt != 0 && strncmp(arg, "--", 2) != 0)
				*exit_code = ctl_usage_error(cmd,
							     opt == ':' ? "option -%c needs a value"
									: "unknown option -%c",
							     optopt);
			else if (opt == ':')
				*exit_code = ctl_usage_error(cmd, "option %s needs a value", arg);
			else
				*exit_code = ctl_usage_error(cmd, "unknown option %s", arg);
			opt = -2;
		}
		break;
	}
	free(opts);
	return opt;
}

int
ctl_api(const struct ctl *ctl, const char *method, const char *path, json_t *body, long timeout_s,
	struct ctl_reply *reply, char **cause)
{
	struct ctl_http_reply http;
	char *url = xasprintf("%s%s", ctl->url, path);
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char *why = NULL;
	int rc = CTL_EXIT_OK;

	memset(reply, 0, sizeof(*reply));
	reply->retry_after = -1;
	int hrc = ctl_http_request(method, url, text, ctl->api_key, timeout_s, &http, &why);
	if (hrc == -E2BIG) {
		rc = CTL_EXIT_API;
		vd_fail(cause, rc, "reply from vramd at %s: %s", ctl->url, why);
		goto out;
	}
	if (hrc != 0) {
		rc = CTL_EXIT_UNREACHABLE;
		vd_fail(cause, rc, "cannot reach vramd at %s: %s", ctl->url, why);
		goto out;
	}
	reply->status = http.status;
	reply->body = http.body;
	reply->retry_after = http.retry_after;
	json_error_t jerr;
	reply->json = json_loadb(http.body, http.body_len, JSON_DECODE_ANY, &jerr);

	if (reply->status >= 200 && reply->status < 300) {
		if (reply->json == NULL) {
			rc = CTL_EXIT_API;
			vd_fail(cause, rc, "%s %s: vramd answered %ld with a body that is not JSON",
				method, path, reply->status);
		}
		goto out;
	}
	rc = CTL_EXIT_API;
	const char *msg = ctl_json_str(reply->json, "error");
	if (msg != NULL && reply->retry_after >= 0)
		vd_fail(cause, rc, "%s (retry after %ld s)", msg, reply->retry_after);
	else if (msg != NULL)
		vd_fail(cause, rc, "%s", msg);
	else
		vd_fail(cause, rc, "%s %s: vramd answered HTTP %ld: %.200s", method, path,
			reply->status, reply->body);
out:
	free(why);
	free(text);
	free(url);
	return rc;
}

int
ctl_api_print(const struct ctl *ctl, const char *method, const char *path, json_t *body,
	      long timeout_s, struct ctl_reply *reply)
{
	char *cause = NULL;
	int rc = ctl_api(ctl, method, path, body, timeout_s, reply, &cause);
	if (rc != CTL_EXIT_OK)
		fprintf(stderr, "vramctl: %s\n", cause);
	free(cause);
	return rc;
}

void
ctl_reply_cleanup(struct ctl_reply *reply)
{
	json_decref(reply->json);
	reply->json = NULL;
	vd_free(reply->body);
}

void
ctl_print_raw(const struct ctl_reply *reply)
{
	const char *body = reply->body != NULL ? reply->body : "";
	size_t len = strlen(body);
	fputs(body, stdout);
	if (len == 0 || body[len - 1] != '\n')
		fputc('\n', stdout);
}

int
ctl_view_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv, const char *path,
	      void (*print)(const json_t *reply))
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1)
		if (opt == -2)
			return rc;
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	return ctl_view_show(ctl, path, print);
}

int
ctl_view_show(const struct ctl *ctl, const char *path, void (*print)(const json_t *reply))
{
	struct ctl_reply reply = {0};
	int rc = ctl_api_print(ctl, "GET", path, NULL, CTL_DEFAULT_TIMEOUT_S, &reply);
	if (rc == CTL_EXIT_OK) {
		if (ctl->json)
			ctl_print_raw(&reply);
		else
			print(reply.json);
	}
	ctl_reply_cleanup(&reply);
	return rc;
}

const char *
ctl_fmt_num(const json_t *v, char *buf, size_t size)
{
	if (json_is_integer(v))
		snprintf(buf, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d == (double)(long long)d && d > -1e15 && d < 1e15)
			snprintf(buf, size, "%lld", (long long)d);
		else
			snprintf(buf, size, "%.1f", d);
	} else if (json_is_string(v))
		vd_strlcpy(buf, json_string_value(v), size);
	else if (json_is_boolean(v))
		vd_strlcpy(buf, json_is_true(v) ? "yes" : "no", size);
	else
		vd_strlcpy(buf, "-", size);
	return buf;
}

const char *
ctl_fmt_bytes(const json_t *v, char *buf, size_t size)
{
	if (!json_is_number(v) || json_number_value(v) < 0) {
		vd_strlcpy(buf, "-", size);
		return buf;
	}
	char tmp[32];
	vd_format_size((uint64_t)json_number_value(v), tmp, sizeof(tmp));
	vd_strlcpy(buf, tmp, size);
	return buf;
}

const char *
ctl_fmt_time(const json_t *v, char *buf, size_t size)
{
	if (!json_is_string(v)) {
		vd_strlcpy(buf, "-", size);
		return buf;
	}
	vd_strlcpy(buf, json_string_value(v), size);
	/* Keep "YYYY-MM-DDTHH:MM:SS", print the T as a space, drop the fraction and zone. */
	if (strlen(buf) >= 19 && buf[10] == 'T') {
		buf[10] = ' ';
		buf[19] = '\0';
	}
	return buf;
}

const char *
ctl_json_str(const json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	return json_string_value(json_object_get(obj, key));
}

static const struct ctl_cmd *
ctl_find_cmd(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(ctl_cmd_table); i++)
		if (strcmp(ctl_cmd_table[i]->name, name) == 0)
			return ctl_cmd_table[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {CTL_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct ctl ctl = {0};
	int rc = CTL_EXIT_OK;
	int opt;

	const char *env_url = getenv("VRAMD_URL");
	ctl_set_url(&ctl, env_url != NULL && *env_url != '\0' ? env_url : CTL_DEFAULT_URL);
	const char *env_key = getenv("VRAMD_API_KEY");
	if (env_key != NULL && !ctl_set_api_key(&ctl, env_key)) {
		rc = CTL_EXIT_USAGE;
		goto out;
	}

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (opt) {
		case CTL_OPT_JSON:
			ctl.json = true;
			break;
		case CTL_OPT_URL:
			ctl_set_url(&ctl, optarg);
			break;
		case CTL_OPT_API_KEY:
			if (!ctl_set_api_key(&ctl, optarg)) {
				rc = CTL_EXIT_USAGE;
				goto out;
			}
			break;
		case 'h':
			ctl_print_help(stdout);
			goto out;
		case ':':
			fprintf(stderr, "vramctl: option %s needs a value\n", argv[optind - 1]);
			rc = CTL_EXIT_USAGE;
			goto out;
		default:
			fprintf(stderr, "vramctl: unknown option %s\n(see vramctl --help)\n",
				argv[optind - 1]);
			rc = CTL_EXIT_USAGE;
			goto out;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "vramctl: no command given\n\n");
		ctl_print_help(stderr);
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	if (strcmp(argv[optind], "help") == 0) {
		const struct ctl_cmd *cmd =
		    optind + 1 < argc ? ctl_find_cmd(argv[optind + 1]) : NULL;
		if (cmd != NULL)
			ctl_print_cmd_help(cmd, stdout);
		else
			ctl_print_help(stdout);
		goto out;
	}
	const struct ctl_cmd *cmd = ctl_find_cmd(argv[optind]);
	if (cmd == NULL) {
		fprintf(stderr, "vramctl: unknown command \"%s\"\n(see vramctl --help)\n",
			argv[optind]);
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	ctl_http_global_init();
	int cmd_argc = argc - optind;
	char **cmd_argv = argv + optind;
	optind = 0; /* glibc: start a fresh scan of the command's arguments */
	rc = cmd->exec(&ctl, cmd, cmd_argc, cmd_argv);
	fflush(stdout);
	ctl_http_global_cleanup();
out:
	free(ctl.url);
	if (ctl.api_key != NULL)
		explicit_bzero(ctl.api_key, strlen(ctl.api_key));
	free(ctl.api_key);
	return rc;
}
