/*
 * top-view.c: the screen of `vramctl top` built from vramd's replies (top-view.h). The
 * sections, top to bottom: a title line, the GPUs (a memory bar split into our models,
 * other programs, reservations and free, then temperature and state), the loaded models
 * per node, the queue by priority, the running jobs with their elapsed time, and the
 * newest events. Every line is cut to the width here, so the drawing code only copies.
 */
#include "top-view.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* Characters of the memory bar, so plain output still tells the parts apart. */
#define TOP_BAR_OURS	 '#'
#define TOP_BAR_OTHER	 '='
#define TOP_BAR_RESERVED '~'
#define TOP_BAR_FREE	 '.'

/* Priorities in dispatch order; the queue section lists them in this order. */
static const char *const top_priorities[] = {"high", "normal", "low"};

static const char *const top_sort_names[TOP_SORT_COUNT] = {
    [TOP_SORT_NAME] = "name",
    [TOP_SORT_MEMORY] = "memory",
    [TOP_SORT_ACTIVITY] = "activity",
};

/* GPU states and the attribute each is drawn with (docs/api.md, the GPU object). */
static const struct {
	const char *state;
	enum top_attr attr;
} top_state_attrs[] = {
    {"OPTIMAL", TOP_ATTR_GOOD}, {"NORMAL", TOP_ATTR_NORMAL}, {"THROTTLED", TOP_ATTR_WARN},
    {"CRITICAL", TOP_ATTR_BAD}, {"SHUTDOWN", TOP_ATTR_BAD},  {"UNAVAILABLE", TOP_ATTR_BAD},
    {"running", TOP_ATTR_GOOD}, {"pending", TOP_ATTR_WARN},  {"queued", TOP_ATTR_WARN},
    {"loaded", TOP_ATTR_GOOD},	{"loading", TOP_ATTR_WARN},  {"unloading", TOP_ATTR_WARN},
};

/* The line being built and how many columns it has left. */
struct top_builder {
	struct top_screen *s;
	int width;
	int left;
};

const char *
top_sort_name(enum top_sort sort)
{
	return sort < TOP_SORT_COUNT ? top_sort_names[sort] : "?";
}

static enum top_attr
top_state_attr(const char *state)
{
	for (size_t i = 0; state != NULL && i < VD_ARRAY_LEN(top_state_attrs); i++)
		if (strcmp(top_state_attrs[i].state, state) == 0)
			return top_state_attrs[i].attr;
	return TOP_ATTR_NORMAL;
}

static void
top_line_new(struct top_builder *b)
{
	struct top_screen *s = b->s;
	if (s->nlines == s->cap) {
		s->cap = s->cap != 0 ? s->cap * 2 : 32;
		s->lines = xreallocarray(s->lines, s->cap, sizeof(*s->lines));
	}
	s->lines[s->nlines++] = (struct top_line){0};
	b->left = b->width;
}

/* Appends text to the current line, cut to what is left of the width. */
static void
top_span_add(struct top_builder *b, enum top_attr attr, const char *text)
{
	size_t len = strlen(text);
	if (b->left <= 0 || len == 0)
		return;
	if (len > (size_t)b->left)
		len = (size_t)b->left;
	struct top_line *l = &b->s->lines[b->s->nlines - 1];
	l->spans = xreallocarray(l->spans, l->nspans + 1, sizeof(*l->spans));
	l->spans[l->nspans++] = (struct top_span){.attr = attr, .text = xstrndup(text, len)};
	b->left -= (int)len;
}

static void __attribute__((format(printf, 3, 4)))
top_span_addf(struct top_builder *b, enum top_attr attr, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	top_span_add(b, attr, buf);
}

static void
top_span_repeat(struct top_builder *b, enum top_attr attr, char c, int n)
{
	char buf[256];
	if (n <= 0)
		return;
	if (n >= (int)sizeof(buf))
		n = (int)sizeof(buf) - 1;
	memset(buf, c, (size_t)n);
	buf[n] = '\0';
	top_span_add(b, attr, buf);
}

void
top_screen_cleanup(struct top_screen *s)
{
	for (size_t i = 0; i < s->nlines; i++) {
		for (size_t j = 0; j < s->lines[i].nspans; j++)
			free(s->lines[i].spans[j].text);
		free(s->lines[i].spans);
	}
	free(s->lines);
	*s = (struct top_screen){0};
}

char *
top_line_text(const struct top_screen *s, size_t i)
{
	size_t len = 0;
	for (size_t j = 0; j < s->lines[i].nspans; j++)
		len += strlen(s->lines[i].spans[j].text);
	char *text = xmalloc(len + 1);
	text[0] = '\0';
	for (size_t j = 0, at = 0; j < s->lines[i].nspans; j++) {
		size_t n = strlen(s->lines[i].spans[j].text);
		memcpy(text + at, s->lines[i].spans[j].text, n + 1);
		at += n;
	}
	return text;
}

void
top_screen_print(const struct top_screen *s, FILE *out)
{
	for (size_t i = 0; i < s->nlines; i++) {
		char *text = top_line_text(s, i);
		fprintf(out, "%s\n", text);
		free(text);
	}
}

int64_t
top_parse_time_ms(const char *text)
{
	struct tm tm = {0};
	int ms = 0, n = 0;
	if (text == NULL || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
				   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	const char *p = text + n;
	if (*p == '.') {
		/* Milliseconds from the first three fraction digits, whatever follows. */
		int scale = 100;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (strcmp(p, "Z") != 0)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t * 1000 + ms;
}

const char *
top_node_name(const json_t *report, size_t i)
{
	const json_t *node = json_array_get(json_object_get(report, "nodes"), i);
	return json_string_value(json_object_get(node, "node"));
}

static const char *
top_str(const json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s != NULL ? s : fallback;
}

static double
top_num(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static const char *
top_fmt_bytes(double bytes, char *buf, size_t size)
{
	vd_format_size(bytes > 0 ? (uint64_t)bytes : 0, buf, size);
	return buf;
}

/* "42s", "3m07s", "2h05m". */
static const char *
top_fmt_duration(int64_t ms, char *buf, size_t size)
{
	int64_t s = ms > 0 ? ms / 1000 : 0;
	if (s < 60)
		snprintf(buf, size, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(buf, size, "%lldh%02lldm", (long long)(s / 3600),
			 (long long)(s % 3600 / 60));
	return buf;
}

static void
top_build_title(struct top_builder *b, const struct top_input *in, const struct top_opts *o)
{
	char now[48];
	vd_format_rfc3339_utc(o->now_ms * 1000000, now, sizeof(now));
	now[19] = '\0';
	now[10] = ' ';
	/* What the keys change first, so a narrow window still shows it. */
	top_line_new(b);
	top_span_addf(b, TOP_ATTR_TITLE, "vramd top  sort: %s  node: %s", top_sort_name(o->sort),
		      o->node != NULL ? o->node : "all");
	if (o->interval_s > 0)
		top_span_addf(b, TOP_ATTR_TITLE, "  every %gs", o->interval_s);
	top_span_addf(b, TOP_ATTR_TITLE, "  %s UTC  %s", now, o->url != NULL ? o->url : "");
	if (o->interval_s > 0)
		top_span_add(b, TOP_ATTR_TITLE, "  (h help, q quit)");
	if (in->error != NULL) {
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_BAD, "error: %s", in->error);
	}
}

static void
top_build_help(struct top_builder *b)
{
	static const char *const help[] = {
	    "Keys:",
	    "  q        quit",
	    "  s        cycle the sort of the models and jobs lists (name, memory, activity)",
	    "  n        cycle the node filter of the models list (all, then each node)",
	    "  h        show or hide this help",
	    "",
	    "Memory bars: # our models, = other programs, ~ reservations, . free",
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(help); i++) {
		top_line_new(b);
		top_span_add(b, i == 0 ? TOP_ATTR_HEADER : TOP_ATTR_NORMAL, help[i]);
	}
}

/* The memory bar of one GPU: parts rounded so they add up to the bar's width. */
static void
top_build_bar(struct top_builder *b, const json_t *g, int width)
{
	double total = top_num(g, "memory_total_bytes");
	double parts[3] = {top_num(g, "memory_models_bytes"), top_num(g, "memory_other_bytes"),
			   top_num(g, "memory_reserved_bytes")};
	static const struct {
		enum top_attr attr;
		char c;
	} looks[4] = {{TOP_ATTR_OURS, TOP_BAR_OURS},
		      {TOP_ATTR_OTHER, TOP_BAR_OTHER},
		      {TOP_ATTR_RESERVED, TOP_BAR_RESERVED},
		      {TOP_ATTR_FREE, TOP_BAR_FREE}};
	int used = 0, cells[4] = {0};
	double cum = 0;
	for (int i = 0; i < 3 && total > 0; i++) {
		cum += parts[i] > 0 ? parts[i] : 0;
		int end = (int)(cum / total * width + 0.5);
		if (end > width)
			end = width;
		cells[i] = end > used ? end - used : 0;
		used += cells[i];
	}
	cells[3] = width - used;
	top_span_add(b, TOP_ATTR_NORMAL, "[");
	for (int i = 0; i < 4; i++)
		top_span_repeat(b, looks[i].attr, looks[i].c, cells[i]);
	top_span_add(b, TOP_ATTR_NORMAL, "]");
}

static void
top_build_gpus(struct top_builder *b, const json_t *status)
{
	const json_t *gpus = json_object_get(status, "gpus");
	char a[32], c[32], d[32], e[32];
	top_line_new(b);
	top_span_addf(b, TOP_ATTR_HEADER,
		      "GPUS (telemetry: %s)  bar: # models = other ~ reserved . free",
		      top_str(status, "telemetry", "-"));
	if (json_array_size(gpus) == 0) {
		top_line_new(b);
		top_span_add(b, TOP_ATTR_NORMAL, "  no GPUs");
		return;
	}
	/* The rest of the line: 48 columns before the bar, 20 after (brackets, used/total). */
	int bar = b->width - 68;
	bar = bar < 10 ? 10 : bar > 60 ? 60 : bar;
	size_t i;
	const json_t *g;
	json_array_foreach(gpus, i, g)
	{
		const char *state = top_str(g, "state", "-");
		const json_t *temp = json_object_get(g, "temperature_c");
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_NORMAL, "  %-2lld %-24.24s ",
			      (long long)top_num(g, "index"), top_str(g, "name", "-"));
		top_span_addf(b, top_state_attr(state), "%-11s", state);
		if (json_is_number(temp))
			top_span_addf(b, top_state_attr(state), " %3.0f C ",
				      json_number_value(temp));
		else
			top_span_add(b, TOP_ATTR_NORMAL, "   - C ");
		top_build_bar(b, g, bar);
		top_span_addf(b, TOP_ATTR_NORMAL, " %s/%s",
			      top_fmt_bytes(top_num(g, "memory_used_bytes"), a, sizeof(a)),
			      top_fmt_bytes(top_num(g, "memory_total_bytes"), c, sizeof(c)));

		top_line_new(b);
		top_span_addf(b, TOP_ATTR_NORMAL, "     models %s  other %s  reserved %s  free %s",
			      top_fmt_bytes(top_num(g, "memory_models_bytes"), a, sizeof(a)),
			      top_fmt_bytes(top_num(g, "memory_other_bytes"), c, sizeof(c)),
			      top_fmt_bytes(top_num(g, "memory_reserved_bytes"), d, sizeof(d)),
			      top_fmt_bytes(top_num(g, "memory_free_bytes"), e, sizeof(e)));
		if (json_is_number(json_object_get(g, "gpu_util_percent")))
			top_span_addf(b, TOP_ATTR_NORMAL, "  util %.0f%%",
				      top_num(g, "gpu_util_percent"));
		if (json_is_number(json_object_get(g, "power_w")))
			top_span_addf(b, TOP_ATTR_NORMAL, "  %.0f W", top_num(g, "power_w"));
		if (json_is_true(json_object_get(g, "dispatch_paused")))
			top_span_add(b, TOP_ATTR_BAD, "  dispatch paused");
	}
}

/* One loaded model and the node it is on, for sorting. */
struct top_model_row {
	const char *node;
	const json_t *m;
};

static int
top_cmp_name(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static int
top_model_cmp(const void *pa, const void *pb, void *arg)
{
	const struct top_model_row *a = pa, *b = pb;
	enum top_sort sort = *(const enum top_sort *)arg;
	double d = 0;
	if (sort == TOP_SORT_MEMORY)
		d = top_num(b->m, "size_vram_bytes") - top_num(a->m, "size_vram_bytes");
	else if (sort == TOP_SORT_ACTIVITY)
		d = top_num(b->m, "running") - top_num(a->m, "running");
	if (d != 0)
		return d < 0 ? -1 : 1;
	int c = top_cmp_name(top_str(a->m, "model", NULL), top_str(b->m, "model", NULL));
	return c != 0 ? c : top_cmp_name(a->node, b->node);
}

static void
top_build_models(struct top_builder *b, const json_t *report, const struct top_opts *o)
{
	const json_t *nodes = json_object_get(report, "nodes");
	struct top_model_row *rows = NULL;
	size_t nrows = 0, i, j;
	const json_t *n, *m;
	char a[32];

	json_array_foreach(nodes, i, n)
	{
		const char *name = top_str(n, "node", "-");
		if (o->node != NULL && strcmp(o->node, name) != 0)
			continue;
		json_array_foreach(json_object_get(n, "models"), j, m)
		{
			rows = xreallocarray(rows, nrows + 1, sizeof(*rows));
			rows[nrows++] = (struct top_model_row){.node = name, .m = m};
		}
	}
	if (nrows > 1)
		qsort_r(rows, nrows, sizeof(*rows), top_model_cmp, (void *)&o->sort);

	top_line_new(b);
	top_span_addf(b, TOP_ATTR_HEADER, "MODELS loaded (%zu)", nrows);
	top_line_new(b);
	top_span_addf(b, TOP_ATTR_HEADER, "  %-10s %-28s %-9s %-8s %10s %7s", "NODE", "MODEL",
		      "STATE", "WHERE", "VRAM", "RUNNING");
	for (i = 0; i < nrows; i++) {
		const json_t *gpu = json_object_get(rows[i].m, "gpu");
		const char *where = top_str(rows[i].m, "location", "-");
		char loc[32];
		if (json_is_integer(gpu))
			snprintf(loc, sizeof(loc), "gpu %lld", (long long)json_integer_value(gpu));
		else
			vd_strlcpy(loc, where, sizeof(loc));
		const char *state = top_str(rows[i].m, "state", "-");
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_NORMAL, "  %-10.10s %-28.28s ", rows[i].node,
			      top_str(rows[i].m, "model", "-"));
		top_span_addf(b, top_state_attr(state), "%-9.9s", state);
		top_span_addf(b, TOP_ATTR_NORMAL, " %-8.8s %10s %7.0f", loc,
			      top_fmt_bytes(top_num(rows[i].m, "size_vram_bytes"), a, sizeof(a)),
			      top_num(rows[i].m, "running"));
	}
	if (nrows == 0) {
		top_line_new(b);
		top_span_add(b, TOP_ATTR_NORMAL, "  none");
	}
	free(rows);
}

/* One job with what the lists sort it by. */
struct top_job_row {
	const json_t *job;
	int prio;	/* index in top_priorities; past the end when unknown */
	int64_t age_ms; /* queued: waited so far; running: run so far */
};

static int
top_job_cmp(const void *pa, const void *pb, void *arg)
{
	const struct top_job_row *a = pa, *b = pb;
	enum top_sort sort = *(const enum top_sort *)arg;
	int c = 0;
	if (sort == TOP_SORT_MEMORY)
		c = a->prio - b->prio;
	else if (sort == TOP_SORT_ACTIVITY)
		c = a->age_ms > b->age_ms ? -1 : a->age_ms < b->age_ms ? 1 : 0;
	else
		c = top_cmp_name(top_str(a->job, "model", NULL), top_str(b->job, "model", NULL));
	return c != 0
		   ? c
		   : top_cmp_name(top_str(a->job, "job_id", NULL), top_str(b->job, "job_id", NULL));
}

static int
top_prio_index(const char *prio)
{
	for (size_t i = 0; prio != NULL && i < VD_ARRAY_LEN(top_priorities); i++)
		if (strcmp(top_priorities[i], prio) == 0)
			return (int)i;
	return (int)VD_ARRAY_LEN(top_priorities);
}

/* The jobs whose status is one of statuses, sorted; the caller frees the array. */
static struct top_job_row *
top_jobs_select(const json_t *jobs, const char *const *statuses, size_t nstatuses,
		const char *since, const struct top_opts *o, size_t *count)
{
	struct top_job_row *rows = NULL;
	size_t n = 0, i;
	const json_t *j;
	json_array_foreach(json_object_get(jobs, "jobs"), i, j)
	{
		const char *status = top_str(j, "status", "");
		bool want = false;
		for (size_t k = 0; k < nstatuses; k++)
			want = want || strcmp(status, statuses[k]) == 0;
		if (!want)
			continue;
		int64_t t = top_parse_time_ms(top_str(j, since, NULL));
		rows = xreallocarray(rows, n + 1, sizeof(*rows));
		rows[n++] = (struct top_job_row){
		    .job = j,
		    .prio = top_prio_index(top_str(j, "priority", NULL)),
		    .age_ms = t >= 0 ? o->now_ms - t : 0,
		};
	}
	if (n > 1)
		qsort_r(rows, n, sizeof(*rows), top_job_cmp, (void *)&o->sort);
	*count = n;
	return rows;
}

static void
top_build_queue(struct top_builder *b, const json_t *jobs, const struct top_opts *o)
{
	static const char *const waiting[] = {"queued", "pending"};
	size_t n, per[VD_ARRAY_LEN(top_priorities) + 1] = {0};
	struct top_job_row *rows = top_jobs_select(jobs, waiting, 2, "submitted_at", o, &n);
	char a[32];

	for (size_t i = 0; i < n; i++)
		per[rows[i].prio]++;
	top_line_new(b);
	top_span_addf(b, TOP_ATTR_HEADER, "QUEUE (%zu)", n);
	for (size_t p = 0; p < VD_ARRAY_LEN(top_priorities); p++)
		top_span_addf(b, TOP_ATTR_HEADER, "  %s %zu", top_priorities[p], per[p]);
	if (n > 0) {
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_HEADER, "  %-20s %-7s %-8s %-28s %8s", "JOB", "PRIO",
			      "STATUS", "MODEL", "WAITING");
	}
	/* By priority first, as vramd dispatches; the sort orders each priority's jobs. */
	for (size_t p = 0; p <= VD_ARRAY_LEN(top_priorities); p++)
		for (size_t i = 0; i < n; i++) {
			if (rows[i].prio != (int)p)
				continue;
			const char *status = top_str(rows[i].job, "status", "-");
			top_line_new(b);
			top_span_addf(b, TOP_ATTR_NORMAL, "  %-20.20s %-7.7s ",
				      top_str(rows[i].job, "job_id", "-"),
				      top_str(rows[i].job, "priority", "-"));
			top_span_addf(b, top_state_attr(status), "%-8.8s", status);
			top_span_addf(b, TOP_ATTR_NORMAL, " %-28.28s %8s",
				      top_str(rows[i].job, "model", "-"),
				      top_fmt_duration(rows[i].age_ms, a, sizeof(a)));
		}
	free(rows);
}

static void
top_build_running(struct top_builder *b, const json_t *jobs, const struct top_opts *o)
{
	static const char *const running[] = {"running"};
	size_t n;
	struct top_job_row *rows = top_jobs_select(jobs, running, 1, "started_at", o, &n);
	char a[32];

	top_line_new(b);
	top_span_addf(b, TOP_ATTR_HEADER, "RUNNING (%zu)", n);
	if (n > 0) {
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_HEADER, "  %-20s %-7s %-8s %-28s %8s", "JOB", "PRIO",
			      "KIND", "MODEL", "ELAPSED");
	}
	for (size_t i = 0; i < n; i++) {
		top_line_new(b);
		top_span_addf(
		    b, TOP_ATTR_NORMAL, "  %-20.20s %-7.7s %-8.8s %-28.28s ",
		    top_str(rows[i].job, "job_id", "-"), top_str(rows[i].job, "priority", "-"),
		    top_str(rows[i].job, "kind", "-"), top_str(rows[i].job, "model", "-"));
		top_span_addf(b, TOP_ATTR_GOOD, "%8s",
			      top_fmt_duration(rows[i].age_ms, a, sizeof(a)));
	}
	free(rows);
}

static void
top_build_events(struct top_builder *b, const json_t *events, const struct top_opts *o)
{
	size_t n = json_array_size(events);
	top_line_new(b);
	top_span_add(b, TOP_ATTR_HEADER, "EVENTS");
	if (events == NULL) {
		top_span_add(b, TOP_ATTR_HEADER, " (live only: none in one-shot output)");
		return;
	}
	if (n == 0) {
		top_line_new(b);
		top_span_add(b, TOP_ATTR_NORMAL, "  none since start");
		return;
	}
	/* Newest first. */
	for (size_t k = 0; k < n && k < o->max_events; k++) {
		const json_t *e = json_array_get(events, n - 1 - k);
		const char *time = top_str(e, "time", "");
		const char *type = top_str(e, "type", "-");
		bool bad = strcmp(type, "critical") == 0 || strcmp(type, "gpu_lost") == 0 ||
			   strcmp(type, "overheat") == 0;
		top_line_new(b);
		top_span_addf(b, TOP_ATTR_NORMAL, "  %.8s ", strlen(time) >= 19 ? time + 11 : "");
		top_span_addf(b, bad ? TOP_ATTR_BAD : TOP_ATTR_WARN, "%-16s", type);
		top_span_addf(b, TOP_ATTR_NORMAL, " %s", top_str(e, "message", ""));
	}
}

void
top_view_build(const struct top_input *in, const struct top_opts *o, struct top_screen *s)
{
	struct top_builder b = {.s = s, .width = o->width < 20 ? 20 : o->width};
	top_screen_cleanup(s);
	top_build_title(&b, in, o);
	if (o->help) {
		top_build_help(&b);
		return;
	}
	top_build_gpus(&b, in->gpus);
	top_build_models(&b, in->report, o);
	top_build_queue(&b, in->jobs, o);
	top_build_running(&b, in->jobs, o);
	top_build_events(&b, in->events, o);
}
