/*
 * runner-opts.h: what a request asks of its model's runner besides the work itself, as pure
 * functions (no I/O, no clock, no globals), for the engine and the Ollama front door:
 *
 *   - the options that make Ollama start a runner anew when they differ from the ones it
 *     was started with (Ollama's needsReload): num_ctx, num_batch, num_gpu, main_gpu,
 *     use_mmap, num_thread. With NORMALIZE_OPTIONS a job on a loaded model gets the
 *     runner's own values, so two clients that differ only there do not make Ollama
 *     reload the model for each other's requests;
 *   - how long the client wants the model kept after its request (Ollama's keep_alive).
 */
#ifndef VRAMD_RUNNER_OPTS_H
#define VRAMD_RUNNER_OPTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether an option of that name makes Ollama reload a runner when it differs. */
bool runner_opts_is_reload_key(const char *name);

/* A model's runner as vramd knows it. */
struct runner_opts {
	/* The reload options it was started with, as vramd's load sent them ({}: all
	 * automatic); NULL when unknown (a runner vramd adopted). Borrowed for the call. */
	const json_t *options;
	int64_t ctx;	 /* its context in tokens (/api/ps context_length, else what its load
			    asked or the server's default); 0: unknown */
	int64_t ctx_max; /* the model's trained context: Ollama gives no runner more, so a
			    larger num_ctx counts as this; 0: unknown */
};

enum runner_opts_fit {
	RUNNER_OPTS_FITS,	/* the job runs on the runner as it is */
	RUNNER_OPTS_NEEDS_MORE, /* it asks a larger num_ctx than the runner has: the model is to
				   be reloaded with that context first */
};

/*
 * Fits a job's options (the request's "options" object, or NULL) to runner. RUNNER_OPTS_FITS
 * sets *out to the options to send instead (a new object the caller decrefs; NULL when
 * they need no change): each reload option takes the runner's value, or is dropped when
 * the runner has it automatic; num_ctx of an adopted runner becomes its listed context.
 * RUNNER_OPTS_NEEDS_MORE leaves *out NULL.
 */
enum runner_opts_fit runner_opts_normalize(const json_t *options, const struct runner_opts *runner,
					   json_t **out);

/* The reload options of options (NULL: none), as a new object ({} when none). */
json_t *runner_opts_reload_subset(const json_t *options);

/* options.num_ctx when it is a positive integer, else 0. */
int64_t runner_opts_num_ctx(const json_t *options);

/*
 * Parses Ollama's keep_alive: a number of seconds or a Go duration string ("5m", "1h30m",
 * "0"); a negative value means forever. Returns 0 with *ms set (INT64_MAX: forever), or
 * -EINVAL with *cause (caller frees) in Ollama's words.
 */
int runner_opts_keep_alive(const json_t *value, int64_t *ms, char **cause);

#endif
