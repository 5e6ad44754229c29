/*
 * cmd-events.c: `vramctl events` follows GET /api/events (Server-Sent Events) and prints
 * one line per event until interrupted, the stream ends, or --count events were shown.
 * Heartbeat comments are skipped by the SSE reader in http.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"
#include "vramctl.h"

struct events_state {
	const struct ctl *ctl;
	int64_t count; /* stop after this many; 0 = never */
	int64_t seen;
};

static bool
events_cb(const char *event, const char *data, void *arg)
{
	struct events_state *st = arg;
	st->seen++;
	if (st->ctl->json) {
		printf("%s\n", data);
	} else {
		json_t *ev = json_loads(data, 0, NULL);
		char time_buf[64], gpu_buf[32];
		const char *type = ctl_json_str(ev, "type");
		const char *message = ctl_json_str(ev, "message");
		const json_t *gpu = json_object_get(ev, "gpu");
		ctl_fmt_time(json_object_get(ev, "time"), time_buf, sizeof(time_buf));
		if (json_is_integer(gpu))
			snprintf(gpu_buf, sizeof(gpu_buf), "gpu %lld",
				 (long long)json_integer_value(gpu));
		else
			vd_strlcpy(gpu_buf, "-", sizeof(gpu_buf));
		printf("%s  %-21s  %-6s  %s\n", time_buf, type != NULL ? type : event, gpu_buf,
		       message != NULL ? message : data);
		json_decref(ev);
	}
	fflush(stdout);
	return st->count == 0 || st->seen < st->count;
}

static int
cmd_events_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"types", required_argument, NULL, 't'},
						 {"count", required_argument, NULL, 'n'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	struct events_state st = {.ctl = ctl};
	char *types = NULL, *cause = NULL, *url = NULL;
	long status = 0;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "t:n:", longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			goto out;
		case 't':
			free(types);
			types = ctl_http_escape(optarg);
			break;
		case 'n':
			if (vd_parse_int64(optarg, 1, INT64_MAX, &st.count, "--count", &cause) !=
			    0) {
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
	url = types != NULL ? xasprintf("%s/api/events?types=%s", ctl->url, types)
			    : xasprintf("%s/api/events", ctl->url);
	int hrc = ctl_http_sse(url, ctl->api_key, events_cb, &st, &status, &cause);
	if (hrc == -ECONNREFUSED && status == 0) {
		fprintf(stderr, "vramctl: cannot reach vramd at %s: %s\n", ctl->url, cause);
		rc = CTL_EXIT_UNREACHABLE;
	} else if (hrc == -EPROTO) {
		json_t *err = json_loads(cause, 0, NULL);
		const char *msg = ctl_json_str(err, "error");
		fprintf(stderr, "vramctl: %s\n", msg != NULL ? msg : cause);
		json_decref(err);
		rc = CTL_EXIT_API;
	} else if (hrc != 0) {
		fprintf(stderr, "vramctl: event stream from %s: %s\n", ctl->url, cause);
		rc = CTL_EXIT_API;
	} else if (st.count > 0 && st.seen < st.count) {
		fprintf(stderr, "vramctl: the event stream ended after %lld of %lld events\n",
			(long long)st.seen, (long long)st.count);
		rc = CTL_EXIT_API;
	}
out:
	free(url);
	free(types);
	free(cause);
	return rc;
}

const struct ctl_cmd ctl_cmd_events = {
    .name = "events",
    .usage = "[--types T[,T...]] [--count N]",
    .help = "follow vramd's events (GPU state changes, throttling, ...) as they happen",
    .details = "  -t, --types T   only these event types (state_change, throttle, resume,\n"
	       "                  critical, overheat, gpu_lost, gpu_recovered, model_on_cpu,\n"
	       "                  reservation_satisfied, reservation_expired)\n"
	       "  -n, --count N   exit after N events\n"
	       "With --json, prints each event's JSON object on its own line.\n",
    .exec = cmd_events_exec,
};
