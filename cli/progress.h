/*
 * progress.h: the progress line long-running vramctl commands (`submit --wait`, `bench`)
 * keep on stderr while they wait for jobs: a bar, how many jobs are done, and the state
 * of the job waited on now with its queue position and ETA from GET /api/job/{id}.
 * Shown only when stderr is a terminal, so pipes and logs see nothing extra.
 *
 *	struct ctl_progress p;
 *	ctl_progress_init(&p);
 *	ctl_progress_show(&p, done, total, job_json);   (as often as wanted)
 *	ctl_progress_end(&p);                           (clears the line)
 */
#ifndef VRAMCTL_PROGRESS_H
#define VRAMCTL_PROGRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Cells in the bar. */
#define CTL_PROGRESS_BAR 20

struct ctl_progress {
	bool on;    /* stderr is a terminal */
	bool shown; /* a line is on screen, to be cleared */
};

/*
 * Formats one progress line into buf, cut to width columns (pure; the unit test calls it).
 * total > 0: done of total jobs are final and the bar shows that share; total 0: one job,
 * and the bar fills as its wait approaches its ETA (full once it runs). job: the job
 * waited on now (a GET /api/job/{id} reply, borrowed) or NULL; now_ms: wall clock, Unix ms.
 *
 *	"[#####...............] 5/20 j-0000000000000006 queued, position 2, eta 4 s"
 */
void ctl_progress_format(char *buf, size_t size, int width, size_t done, size_t total,
			 const json_t *job, int64_t now_ms);
void ctl_progress_init(struct ctl_progress *p);
void ctl_progress_show(struct ctl_progress *p, size_t done, size_t total, const json_t *job);
void ctl_progress_end(struct ctl_progress *p);

#endif
