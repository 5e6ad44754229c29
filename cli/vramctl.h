/*
 * vramctl.h: what the vramctl command files share: the global options, the command
 * table entry type, the exit codes, and helpers to call the vramd API and print its
 * replies. vramctl talks to vramd over HTTP only (docs/api.md); nothing here or in
 * any cli/ file includes a daemon header.
 */
#ifndef VRAMCTL_H
#define VRAMCTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit statuses, the same for every command. */
enum ctl_exit {
	CTL_EXIT_OK = 0,	  /* success */
	CTL_EXIT_API = 1,	  /* vramd answered with an error, or the job failed */
	CTL_EXIT_USAGE = 2,	  /* bad command line */
	CTL_EXIT_UNREACHABLE = 3, /* vramd could not be reached */
};

#define CTL_DEFAULT_URL	      "http://127.0.0.1:5001"
#define CTL_DEFAULT_TIMEOUT_S 60L

/* Global options, set from the command line and the environment. */
struct ctl {
	char *url;     /* owned: vramd's base URL, no trailing slash */
	bool json;     /* print raw JSON instead of tables */
	char *api_key; /* owned: sent as "Authorization: Bearer KEY"; NULL: none */
};

/* One entry of the command table (tmux's cmd_entry). */
struct ctl_cmd {
	const char *name;
	const char *usage;   /* what follows the name in a usage line */
	const char *help;    /* one line for `vramctl --help` */
	const char *details; /* option descriptions for `vramctl NAME --help` */
	int (*exec)(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
};

extern const struct ctl_cmd ctl_cmd_submit, ctl_cmd_job, ctl_cmd_cancel, ctl_cmd_jobs,
    ctl_cmd_stats, ctl_cmd_models, ctl_cmd_health, ctl_cmd_bench, ctl_cmd_gpus, ctl_cmd_gpu_watch,
    ctl_cmd_reserve, ctl_cmd_release, ctl_cmd_events, ctl_cmd_force_gpu, ctl_cmd_force_cpu,
    ctl_cmd_placement, ctl_cmd_load, ctl_cmd_unload, ctl_cmd_vram_report, ctl_cmd_lb_stats,
    ctl_cmd_nodes, ctl_cmd_top, ctl_cmd_cluster;

/* Long options every command accepts; put CTL_COMMON_LONGOPTS before the terminator. */
#define CTL_OPT_JSON	1000
#define CTL_OPT_URL	1001
#define CTL_OPT_API_KEY 1002
#define CTL_COMMON_LONGOPTS                                                                        \
	{"json", no_argument, NULL, CTL_OPT_JSON}, {"url", required_argument, NULL, CTL_OPT_URL},  \
	    {"api-key", required_argument, NULL, CTL_OPT_API_KEY},                                 \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

/*
 * getopt_long for a command's argv (argv[0] is the command name). Handles the common
 * options itself and returns the next command-specific option, or -1 at the end of the
 * options (optind then indexes the first operand). Returns -2 when the command must
 * stop with *exit_code: after --help (0) or a bad option (2, message printed).
 */
int ctl_getopt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
	       const char *shortopts, const struct option *longopts, int *exit_code);
/* Prints "vramctl NAME: message" and the usage line to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets the base URL (copied), adding "http://" when no scheme is given. */
void ctl_set_url(struct ctl *ctl, const char *url);
/* Sets the API key (copied; "" clears it). Returns false, printing why, when it cannot
 * travel in an HTTP header (spaces, control characters). */
bool ctl_set_api_key(struct ctl *ctl, const char *key);

/* A reply from vramd. */
struct ctl_reply {
	long status;	  /* HTTP status */
	json_t *json;	  /* owned: the parsed body, NULL if it was not JSON */
	char *body;	  /* owned: the raw body */
	long retry_after; /* seconds, -1 if absent */
};

/*
 * Calls the API: method, a path below the base URL ("/api/stats?x=1"), an optional JSON
 * body (borrowed), a timeout in seconds. Returns a ctl_exit code: OK with *reply filled
 * for a 2xx JSON reply; API for an error status or a reply that is not JSON (*reply
 * still filled, *cause holds the server's message); UNREACHABLE when vramd cannot be
 * reached (*cause says "cannot reach vramd at URL: why"). *cause is the caller's to free.
 * Always clean *reply with ctl_reply_cleanup.
 */
int ctl_api(const struct ctl *ctl, const char *method, const char *path, json_t *body,
	    long timeout_s, struct ctl_reply *reply, char **cause);
/* ctl_api that prints the failure ("vramctl: <cause>") to stderr itself. */
int ctl_api_print(const struct ctl *ctl, const char *method, const char *path, json_t *body,
		  long timeout_s, struct ctl_reply *reply);
void ctl_reply_cleanup(struct ctl_reply *reply);
/* Writes the raw reply body to stdout, ending with a newline. */
void ctl_print_raw(const struct ctl_reply *reply);
/* The whole of a command that takes no arguments of its own and shows one GET: the
 * reply as it came with --json, else print(reply's JSON). Returns the exit status. */
int ctl_view_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
		  const char *path, void (*print)(const json_t *reply));
/* Its GET and output alone (for commands with options of their own, or --watch). */
int ctl_view_show(const struct ctl *ctl, const char *path, void (*print)(const json_t *reply));

/* Formatting helpers for table cells; each writes into buf and returns it. A missing
 * or null value prints as "-". */
const char *ctl_fmt_num(const json_t *v, char *buf, size_t size);
const char *ctl_fmt_bytes(const json_t *v, char *buf, size_t size);
/* "2025-01-14T09:30:12.401Z" -> "2025-01-14 09:30:12". */
const char *ctl_fmt_time(const json_t *v, char *buf, size_t size);
/* The string member key of obj, or NULL. Borrowed from obj. */
const char *ctl_json_str(const json_t *obj, const char *key);

/*
 * Long-polls GET /api/job/{id}?wait=... until the job is final or wait_s seconds pass
 * (wait_s < 0: no limit). Returns a ctl_exit code as ctl_api does; on OK *reply holds the
 * job's last state (final or not). Prints nothing.
 */
int ctl_job_wait(const struct ctl *ctl, const char *id, double wait_s, struct ctl_reply *reply,
		 char **cause);
/* Called by ctl_job_wait_progress with each state of the job that is not final yet
 * (borrowed for the call). */
typedef void ctl_job_progress_cb(const json_t *job, void *arg);
/* ctl_job_wait that calls progress after each poll of a job not yet final; polls are then
 * at most CTL_PROGRESS_SLICE_S apart, so a progress line shows the queue position and ETA
 * as they change. progress NULL: exactly ctl_job_wait. */
#define CTL_PROGRESS_SLICE_S 1.0
int ctl_job_wait_progress(const struct ctl *ctl, const char *id, double wait_s,
			  ctl_job_progress_cb *progress, void *arg, struct ctl_reply *reply,
			  char **cause);
bool ctl_job_status_is_final(const char *status);
/* Prints a job for people: its fields, metrics, error, and result. */
void ctl_print_job(const json_t *job);
/* Prints a job's result alone: the text, the assistant message, or embedding sizes. */
void ctl_print_result(const json_t *job);

#endif
