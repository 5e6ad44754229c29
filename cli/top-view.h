/*
 * top-view.h: what `vramctl top` shows, as a pure function from vramd's JSON replies to
 * a screen of lines. Each line is a list of spans, each span a text with one attribute
 * (a colour role); cmd-top.c draws them with ncurses, or prints them as plain text when
 * stdout is not a terminal. Nothing here does I/O, reads a clock or touches a terminal,
 * so tests/test-vramctl-top.c checks the screen from hand-written replies.
 *
 *	struct top_input in = {.gpus = status_all, .report = vram_report, .jobs = jobs};
 *	struct top_opts o = {.width = 100, .now_ms = now, .sort = TOP_SORT_NAME};
 *	struct top_screen s = {0};
 *	top_view_build(&in, &o, &s);
 *	top_screen_print(&s, stdout);
 *	top_screen_cleanup(&s);
 */
#ifndef VRAMCTL_TOP_VIEW_H
#define VRAMCTL_TOP_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a span means; cmd-top.c maps each to a colour pair. */
enum top_attr {
	TOP_ATTR_NORMAL,
	TOP_ATTR_TITLE,	   /* the top line */
	TOP_ATTR_HEADER,   /* section and column headings */
	TOP_ATTR_OURS,	   /* memory bar: models vramd placed */
	TOP_ATTR_OTHER,	   /* memory bar: other programs */
	TOP_ATTR_RESERVED, /* memory bar: reservations */
	TOP_ATTR_FREE,	   /* memory bar: free */
	TOP_ATTR_GOOD,	   /* OPTIMAL, up, running */
	TOP_ATTR_WARN,	   /* NORMAL/THROTTLED, queued */
	TOP_ATTR_BAD,	   /* CRITICAL/SHUTDOWN/UNAVAILABLE, errors */
	TOP_ATTR_COUNT,
};

/* The sort of the models and jobs lists; `s` cycles through them in this order. */
enum top_sort {
	TOP_SORT_NAME,	   /* models by name; jobs by model, then id */
	TOP_SORT_MEMORY,   /* models by VRAM, largest first; jobs by priority */
	TOP_SORT_ACTIVITY, /* models by running jobs; jobs by time waited or run, longest first */
	TOP_SORT_COUNT,
};

struct top_span {
	enum top_attr attr;
	char *text; /* owned */
};

struct top_line {
	struct top_span *spans; /* owned */
	size_t nspans;
};

struct top_screen {
	struct top_line *lines; /* owned */
	size_t nlines;
	size_t cap;
};

/* The replies a screen is built from; all borrowed, any may be NULL (not fetched). */
struct top_input {
	const json_t *gpus;   /* GET /api/gpu/status/all */
	const json_t *report; /* GET /api/vram_report: loaded models per node */
	const json_t *jobs;   /* GET /api/jobs?status=queued,pending,running */
	const json_t *events; /* an array of event objects (GET /api/events data), oldest first */
	const char *error;    /* why the last fetch failed, shown on the top line; or NULL */
};

struct top_opts {
	int width;	    /* columns; every line is cut to it (at least 20 is used) */
	enum top_sort sort; /* the models/jobs sort */
	const char *node;   /* show only this node's models; NULL: every node */
	int64_t now_ms;	    /* wall clock, Unix ms, for elapsed times and the title */
	const char *url;    /* vramd's URL for the title; may be NULL */
	double interval_s;  /* refresh interval for the title; 0: one-shot */
	size_t max_events;  /* the newest this many events are shown */
	bool help;	    /* show the key help instead of the lists */
};

/* Builds the screen into *s (emptied first; clean it with top_screen_cleanup). */
void top_view_build(const struct top_input *in, const struct top_opts *o, struct top_screen *s);
void top_screen_cleanup(struct top_screen *s);
/* Writes the screen as plain text, one line each, attributes dropped. */
void top_screen_print(const struct top_screen *s, FILE *out);
/* The text of line i, spans joined; the caller frees it. */
char *top_line_text(const struct top_screen *s, size_t i);

const char *top_sort_name(enum top_sort sort);
/* The name of the i-th node of a /api/vram_report reply, or NULL past the end. Borrowed
 * from report. */
const char *top_node_name(const json_t *report, size_t i);
/* "2025-01-14T09:30:12.401Z" as Unix ms; -1 when it is not such a UTC time. */
int64_t top_parse_time_ms(const char *text);

#endif
