/*
 * api-parse.h: the validation of what clients send, as pure functions: a submit body
 * becomes a job request, a GET /api/jobs query becomes a store filter. No HTTP, no I/O,
 * no clock: the handlers in api-jobs.c call them, and so do the fuzz targets
 * (tests/fuzz/fuzz-submit-body.c, fuzz-jobs-query.c).
 *
 * Every limit lives here: the fields a body may carry and their types, the Ollama
 * options a job may carry and their types and ranges, and the bounds of the list
 * parameters. A rejection comes with a message that names what is wrong.
 */
#ifndef VRAMD_API_PARSE_H
#define VRAMD_API_PARSE_H

#include "job.h"
#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct registry;
struct registry_model;

/* The longest model name a query or body may give (longer ones are refused). */
#define API_MODEL_NAME_MAX 256
/* A list parameter (status=a,b,...) holds at most this many values, duplicates included;
 * each is at most API_LIST_VALUE_MAX bytes. */
#define API_LIST_VALUES_MAX 8192
#define API_LIST_VALUE_MAX  32
/* num_ctx a job may ask for when the model's training context is not known. */
#define API_NUM_CTX_MAX 16777216

/* What submit validation needs to know besides the body. */
struct api_submit_env {
	const struct registry *registry; /* installed models, caps, training contexts */
	bool models_known;		 /* the registry has seen the server's model list */
	const char *backend_url;	 /* for messages; may be NULL */
};

/* A valid submission. */
struct api_submit {
	const struct registry_model *model; /* borrowed from env->registry */
	enum job_kind kind;
	enum job_priority priority;
	json_t *request;     /* owned: the Ollama request fields */
	json_t *metadata;    /* owned, NULL if none */
	int64_t num_ctx;     /* options.num_ctx, 0 when not given */
	int64_t deadline_ms; /* deadline_s in ms from submission; 0 when not given */
	int placement;	     /* enum job_placement the body names, or -1 (the model's default) */
};

/* The longest deadline_s / X-Vramd-Deadline accepted (a year): far from overflow. */
#define API_DEADLINE_S_MAX 31536000.0

/* A deadline of seconds from now in ms (rounded up): 0 when seconds is a finite number in
 * (0, API_DEADLINE_S_MAX], else -EINVAL. */
int api_deadline_ms(double seconds, int64_t *ms);

/*
 * Checks a submit body and builds the job it asks for. Returns 0 with *out filled (the
 * caller releases it with api_submit_cleanup), or the HTTP status to answer (400 bad
 * body, 404 unknown model, 503 model list unknown) with *cause set to a message the
 * caller frees; *out is then empty.
 */
int api_submit_parse(const json_t *body, const struct api_submit_env *env, struct api_submit *out,
		     char **cause);
void api_submit_cleanup(struct api_submit *sub);
/* Whether a submit body may carry a top-level field of this name. */
bool api_submit_field_known(const char *name);

/*
 * Names the fields of obj that is_known refuses (the first five, each cut to 64 bytes),
 * followed by "(accepted: <accepted>)": a message the caller frees, or NULL when every
 * field is known.
 */
char *api_unknown_fields(const json_t *obj, bool (*is_known)(const char *name),
			 const char *accepted);

/*
 * Parses the parameters of GET /api/jobs (each NULL when absent): status and priority
 * are comma-separated lists, deduplicated into the masks of out; model is borrowed into
 * out->model. Returns 0, or -EINVAL with *cause naming the parameter and the offending
 * value. out->limit is left as it was.
 */
int api_jobs_filter_parse(const char *status, const char *priority, const char *model,
			  struct store_job_filter *out, char **cause);

#endif
