/*
 * cmd-top.c: `vramctl top`, a full-screen view of vramd in the spirit of nvtop and htop.
 * Every --interval seconds it fetches GET /api/gpu/status/all, /api/vram_report and
 * /api/jobs?status=queued,pending,running, builds the screen with top-view.c (pure) and
 * draws it with ncurses. Events are live only (GET /api/events has no replay), so a child
 * process follows the stream and writes each event's JSON as one line to a pipe the
 * screen loop reads without blocking; the child owns its connection, the parent its
 * list, and they share nothing else. When stdout is not a terminal, or with --once, top
 * prints the screen once as plain text and exits.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "top-view.h"
#include "util.h"
#include "vramctl.h"

/* Events kept for the screen, and the most one event line may hold. */
#define TOP_EVENTS_KEPT	   200
#define TOP_EVENT_LINE_MAX (64u << 10)
/* Width of the one-shot output when $COLUMNS does not say. */
#define TOP_PLAIN_WIDTH 120
/* How often the screen loop wakes for keys and events between refreshes. */
#define TOP_TICK_MS 100

/* The replies of the last refresh. */
struct top_data {
	json_t *gpus;
	json_t *report;
	json_t *jobs;
	char *error; /* the last fetch's failure, or NULL */
};

/* The child following /api/events, and what it has sent. */
struct top_events {
	pid_t pid; /* 0: none */
	int fd;	   /* read end of its pipe; -1: none */
	char *partial;
	size_t partial_len;
	json_t *list; /* event objects, oldest first, at most TOP_EVENTS_KEPT */
};

static const char *const top_paths[] = {
    "/api/gpu/status/all",
    "/api/vram_report",
    "/api/jobs?status=queued,pending,running&limit=1000",
};

static void
top_data_cleanup(struct top_data *d)
{
	json_decref(d->gpus);
	json_decref(d->report);
	json_decref(d->jobs);
	free(d->error);
	*d = (struct top_data){0};
}

/* Fetches every reply; keeps the old one of a request that failed. Returns a ctl_exit. */
static int
top_fetch(const struct ctl *ctl, struct top_data *d, long timeout_s)
{
	json_t **slots[] = {&d->gpus, &d->report, &d->jobs};
	int rc = CTL_EXIT_OK;
	free(d->error);
	d->error = NULL;
	for (size_t i = 0; i < VD_ARRAY_LEN(top_paths); i++) {
		struct ctl_reply reply = {0};
		char *cause = NULL;
		int r = ctl_api(ctl, "GET", top_paths[i], NULL, timeout_s, &reply, &cause);
		if (r == CTL_EXIT_OK) {
			json_decref(*slots[i]);
			*slots[i] = json_incref(reply.json);
		} else {
			if (d->error == NULL)
				d->error = xasprintf("%s: %s", top_paths[i],
						     cause != NULL ? cause : "failed");
			rc = rc == CTL_EXIT_OK ? r : rc;
		}
		free(cause);
		ctl_reply_cleanup(&reply);
		if (r == CTL_EXIT_UNREACHABLE)
			break;
	}
	return rc;
}

static bool
top_events_child_cb(const char *event, const char *data, void *arg)
{
	int fd = *(int *)arg;
	(void)event;
	/* data is one JSON object on one line (docs/api.md); a newline ends it here. */
	size_t len = strlen(data);
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return write(fd, "\n", 1) == 1;
}

/* Starts the child that follows /api/events; without it the screen says no events. */
static void
top_events_start(const struct ctl *ctl, struct top_events *ev)
{
	int fds[2];
	ev->list = json_array();
	ev->fd = -1;
	if (pipe(fds) != 0)
		return;
	char *url = xasprintf("%s/api/events", ctl->url);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		/* The parent closing the pipe ends the child with EPIPE, not a signal. */
		signal(SIGPIPE, SIG_IGN);
		long status = 0;
		char *cause = NULL;
		ctl_http_sse(url, ctl->api_key, top_events_child_cb, &fds[1], &status, &cause);
		_exit(0);
	}
	free(url);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return;
	}
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	ev->pid = pid;
	ev->fd = fds[0];
}

/* Reads what the child wrote; returns true when an event arrived. */
static bool
top_events_poll(struct top_events *ev)
{
	bool got = false;
	char buf[4096];
	ssize_t n;
	while (ev->fd >= 0) {
		n = read(ev->fd, buf, sizeof(buf));
		if (n == 0) { /* the child ended: the stream closed or was refused */
			close(ev->fd);
			ev->fd = -1;
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				close(ev->fd);
				ev->fd = -1;
			}
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				/* An over-long line is dropped, not grown without bound. */
				if (ev->partial_len < TOP_EVENT_LINE_MAX) {
					ev->partial = xrealloc(ev->partial, ev->partial_len + 2);
					ev->partial[ev->partial_len++] = buf[i];
				}
				continue;
			}
			json_t *e = NULL;
			if (ev->partial_len > 0 && ev->partial_len < TOP_EVENT_LINE_MAX)
				e = json_loadb(ev->partial, ev->partial_len, 0, NULL);
			ev->partial_len = 0;
			if (json_is_object(e)) {
				json_array_append_new(ev->list, e);
				if (json_array_size(ev->list) > TOP_EVENTS_KEPT)
					json_array_remove(ev->list, 0);
				got = true;
			} else {
				json_decref(e);
			}
		}
	}
	return got;
}

static void
top_events_stop(struct top_events *ev)
{
	if (ev->fd >= 0)
		close(ev->fd);
	if (ev->pid > 0) {
		kill(ev->pid, SIGTERM);
		waitpid(ev->pid, NULL, 0);
	}
	free(ev->partial);
	json_decref(ev->list);
	*ev = (struct top_events){.fd = -1};
}

/* Colour pair of each attribute (0: the terminal's default). */
static const struct {
	enum top_attr attr;
	short fg;
	bool bold;
} top_colours[] = {
    {TOP_ATTR_TITLE, COLOR_CYAN, true},	    {TOP_ATTR_HEADER, COLOR_WHITE, true},
    {TOP_ATTR_OURS, COLOR_GREEN, false},    {TOP_ATTR_OTHER, COLOR_MAGENTA, false},
    {TOP_ATTR_RESERVED, COLOR_BLUE, false}, {TOP_ATTR_FREE, -1, false},
    {TOP_ATTR_GOOD, COLOR_GREEN, false},    {TOP_ATTR_WARN, COLOR_YELLOW, false},
    {TOP_ATTR_BAD, COLOR_RED, true},
};

static attr_t
top_curses_attr(enum top_attr attr)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(top_colours); i++)
		if (top_colours[i].attr == attr)
			return (has_colors() ? COLOR_PAIR((short)(i + 1)) : 0) |
			       (top_colours[i].bold ? A_BOLD : 0);
	return A_NORMAL;
}

static void
top_curses_init(void)
{
	initscr();
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	timeout(TOP_TICK_MS);
	if (has_colors()) {
		start_color();
		use_default_colors();
		for (size_t i = 0; i < VD_ARRAY_LEN(top_colours); i++)
			init_pair((short)(i + 1), top_colours[i].fg, -1);
	}
}

static void
top_curses_draw(const struct top_screen *s)
{
	erase();
	for (size_t y = 0; y < s->nlines && (int)y < LINES; y++) {
		move((int)y, 0);
		for (size_t j = 0; j < s->lines[y].nspans; j++) {
			attr_t a = top_curses_attr(s->lines[y].spans[j].attr);
			attron(a);
			addnstr(s->lines[y].spans[j].text, COLS);
			attroff(a);
		}
	}
	refresh();
}

/* The node after current in the report's order, NULL (all) after the last. */
static const char *
top_next_node(const json_t *report, const char *current)
{
	if (current == NULL)
		return top_node_name(report, 0);
	for (size_t i = 0; top_node_name(report, i) != NULL; i++)
		if (strcmp(top_node_name(report, i), current) == 0)
			return top_node_name(report, i + 1);
	return NULL;
}

static int
top_run_screen(const struct ctl *ctl, double interval)
{
	struct top_data d = {0};
	struct top_events ev = {.fd = -1};
	struct top_screen s = {0};
	struct top_opts o = {.url = ctl->url, .interval_s = interval, .sort = TOP_SORT_NAME};
	char *node = NULL; /* owned copy: the report it came from is replaced */
	long timeout_s = interval * 2 < 5 ? 5 : (long)(interval * 2);

	top_events_start(ctl, &ev);
	top_curses_init();
	int64_t next = 0;
	bool dirty = true;
	for (;;) {
		if (vd_now_mono_ms() >= next) {
			top_fetch(ctl, &d, timeout_s);
			next = vd_now_mono_ms() + (int64_t)(interval * 1000);
			dirty = true;
		}
		if (top_events_poll(&ev))
			dirty = true;
		if (dirty) {
			struct top_input in = {.gpus = d.gpus,
					       .report = d.report,
					       .jobs = d.jobs,
					       .events = ev.list,
					       .error = d.error};
			o.width = COLS;
			o.now_ms = vd_now_wall_ms();
			o.node = node;
			/* Events fill the rows the other sections leave. */
			o.max_events = 0;
			top_view_build(&in, &o, &s);
			if (!o.help && (int)s.nlines < LINES && json_array_size(ev.list) > 0) {
				o.max_events = (size_t)LINES - s.nlines;
				top_view_build(&in, &o, &s);
			}
			top_curses_draw(&s);
			dirty = false;
		}
		int key = getch();
		if (key == 'q' || key == 'Q')
			break;
		switch (key) {
		case 's':
			o.sort = (enum top_sort)((o.sort + 1) % TOP_SORT_COUNT);
			dirty = true;
			break;
		case 'n': {
			const char *next_node = top_next_node(d.report, node);
			free(node);
			node = next_node != NULL ? xstrdup(next_node) : NULL;
			dirty = true;
			break;
		}
		case 'h':
		case '?':
			o.help = !o.help;
			dirty = true;
			break;
		case KEY_RESIZE:
			dirty = true;
			break;
		default:
			break;
		}
	}
	endwin();
	free(node);
	top_screen_cleanup(&s);
	top_events_stop(&ev);
	top_data_cleanup(&d);
	return CTL_EXIT_OK;
}

static int
top_run_once(const struct ctl *ctl)
{
	struct top_data d = {0};
	int rc = top_fetch(ctl, &d, CTL_DEFAULT_TIMEOUT_S);
	if (rc != CTL_EXIT_OK) {
		fprintf(stderr, "vramctl: %s\n", d.error);
		goto out;
	}
	if (ctl->json) {
		json_t *all = json_pack("{s:O,s:O,s:O}", "gpus", d.gpus, "vram_report", d.report,
					"jobs", d.jobs);
		char *text = json_dumps(all, JSON_COMPACT);
		printf("%s\n", text);
		free(text);
		json_decref(all);
		goto out;
	}
	int64_t width = TOP_PLAIN_WIDTH;
	const char *columns = getenv("COLUMNS");
	char *cause = NULL;
	if (columns != NULL && vd_parse_int64(columns, 20, 1000, &width, "COLUMNS", &cause) != 0)
		width = TOP_PLAIN_WIDTH; /* a bad $COLUMNS is not worth failing for */
	free(cause);
	struct top_screen s = {0};
	struct top_input in = {.gpus = d.gpus, .report = d.report, .jobs = d.jobs};
	struct top_opts o = {.width = (int)width, .now_ms = vd_now_wall_ms(), .url = ctl->url};
	top_view_build(&in, &o, &s);
	top_screen_print(&s, stdout);
	top_screen_cleanup(&s);
out:
	top_data_cleanup(&d);
	return rc;
}

static int
cmd_top_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"interval", required_argument, NULL, 'd'},
						 {"once", no_argument, NULL, 'o'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	double interval = 2.0;
	bool once = false;
	char *cause = NULL;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "d:", longopts, &rc)) != -1) {
		if (opt == -2)
			return rc;
		if (opt == 'd' &&
		    vd_parse_double(optarg, 0.1, 3600, &interval, "--interval", &cause) != 0) {
			rc = ctl_usage_error(cmd, "%s", cause);
			free(cause);
			return rc;
		}
		if (opt == 'o')
			once = true;
	}
	if (optind < argc)
		return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	if (once || ctl->json || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))
		return top_run_once(ctl);
	/* Refuse before taking the screen, so the message is readable. */
	struct top_data probe = {0};
	rc = top_fetch(ctl, &probe, CTL_DEFAULT_TIMEOUT_S);
	if (rc == CTL_EXIT_UNREACHABLE)
		fprintf(stderr, "vramctl: %s\n", probe.error);
	top_data_cleanup(&probe);
	if (rc == CTL_EXIT_UNREACHABLE)
		return rc;
	return top_run_screen(ctl, interval);
}

const struct ctl_cmd ctl_cmd_top = {
    .name = "top",
    .usage = "[-d|--interval S] [--once]",
    .help = "a full-screen live view: GPUs, loaded models, queue, running jobs, events",
    .details = "  -d, --interval S   seconds between refreshes (default 2)\n"
	       "      --once         print the view once as plain text and exit (also what\n"
	       "                     happens when stdout is not a terminal)\n"
	       "Keys: q quit, s cycle the sort (name, memory, activity), n cycle the node\n"
	       "filter, h help. Memory bars: # our models, = other programs, ~ reservations,\n"
	       ". free. With --json, prints the replies the view is built from, once.\n",
    .exec = cmd_top_exec,
};
