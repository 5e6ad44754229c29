/*
 * progress.c: the progress line of long-running vramctl commands (progress.h). The line
 * is redrawn in place with a carriage return and "erase to end of line", the way curl's
 * progress meter does, and cleared at the end so the command's own output stays clean.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "top-view.h"
#include "util.h"

static double
ctl_progress_num(const json_t *obj, const char *key, double fallback)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : fallback;
}

/* How far a lone job is: its wait against its ETA while queued, full once it runs. */
static double
ctl_progress_job_fraction(const json_t *job, int64_t now_ms)
{
	const char *status = json_string_value(json_object_get(job, "status"));
	if (status == NULL)
		return 0;
	if (strcmp(status, "queued") != 0)
		return 1;
	double eta = ctl_progress_num(job, "eta_s", -1);
	int64_t submitted =
	    top_parse_time_ms(json_string_value(json_object_get(job, "submitted_at")));
	if (eta < 0 || submitted < 0)
		return 0;
	double waited = (double)(now_ms - submitted) / 1000.0;
	if (waited <= 0)
		return 0;
	return waited / (waited + eta);
}

void
ctl_progress_format(char *buf, size_t size, int width, size_t done, size_t total, const json_t *job,
		    int64_t now_ms)
{
	char line[512], bar[CTL_PROGRESS_BAR + 1];
	double frac =
	    total > 0 ? (double)done / (double)total : ctl_progress_job_fraction(job, now_ms);
	int cells = (int)(frac * CTL_PROGRESS_BAR + 0.5);
	cells = cells < 0 ? 0 : cells > CTL_PROGRESS_BAR ? CTL_PROGRESS_BAR : cells;
	memset(bar, '#', (size_t)cells);
	memset(bar + cells, '.', (size_t)(CTL_PROGRESS_BAR - cells));
	bar[CTL_PROGRESS_BAR] = '\0';
	int n = snprintf(line, sizeof(line), "[%s]", bar);
	if (total > 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %zu/%zu", done, total);

	const char *id = json_string_value(json_object_get(job, "job_id"));
	const char *status = json_string_value(json_object_get(job, "status"));
	if (status != NULL && n < (int)sizeof(line)) {
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %s", id != NULL ? id : "",
			      status);
		const json_t *pos = json_object_get(job, "queue_position");
		const json_t *eta = json_object_get(job, "eta_s");
		int64_t started =
		    top_parse_time_ms(json_string_value(json_object_get(job, "started_at")));
		if (strcmp(status, "queued") == 0) {
			if (json_is_number(pos) && n < (int)sizeof(line))
				n += snprintf(line + n, sizeof(line) - (size_t)n, ", position %.0f",
					      json_number_value(pos));
			if (n < (int)sizeof(line)) {
				if (json_is_number(eta))
					n += snprintf(line + n, sizeof(line) - (size_t)n,
						      ", eta %.0f s", json_number_value(eta));
				else
					n += snprintf(line + n, sizeof(line) - (size_t)n,
						      ", eta unknown");
			}
		} else if (strcmp(status, "running") == 0 && started >= 0 &&
			   n < (int)sizeof(line)) {
			n += snprintf(line + n, sizeof(line) - (size_t)n, " for %.0f s",
				      (double)(now_ms - started) / 1000.0);
		}
	}
	if (width < 1)
		width = 1;
	if ((size_t)width < size)
		size = (size_t)width + 1;
	vd_strlcpy(buf, line, size);
}

void
ctl_progress_init(struct ctl_progress *p)
{
	*p = (struct ctl_progress){.on = isatty(STDERR_FILENO) == 1};
}

void
ctl_progress_show(struct ctl_progress *p, size_t done, size_t total, const json_t *job)
{
	if (!p->on)
		return;
	struct winsize ws;
	int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
	char line[512];
	/* One column short of the width, so the terminal never wraps the line. */
	ctl_progress_format(line, sizeof(line), width - 1, done, total, job, vd_now_wall_ms());
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->shown = true;
}

void
ctl_progress_end(struct ctl_progress *p)
{
	if (p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->shown = false;
}
