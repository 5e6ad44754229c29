/*
 * job.h: an inference job as vramd tracks it from submission to a final status.
 *
 * A job is reference-counted: the job table, the queue, an HTTP long-poll and a
 * backend transfer may each hold it. The loop thread alone touches jobs.
 *
 * Status lifecycle:
 *   queued    accepted and durably stored, waiting in the queue
 *   pending   taken from the queue by the scheduler; its backend request is being set up
 *             or retried (connection failure backoff)
 *   running   its request is in flight on an Ollama server
 *   complete | failed | cancelled   final
 */
#ifndef VRAMD_JOB_H
#define VRAMD_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum job_kind { JOB_KIND_GENERATE, JOB_KIND_CHAT, JOB_KIND_EMBED, JOB_NKINDS };

/* Lower value = more urgent; arrays indexed by priority use JOB_NPRIORITIES. */
enum job_priority { JOB_PRIO_HIGH, JOB_PRIO_NORMAL, JOB_PRIO_LOW, JOB_NPRIORITIES };

/*
 * Where a job may run (issue 11, per-request placement): gpu never on the CPU (it fails
 * fast when no GPU could ever hold its model), cpu never makes its model load on a GPU
 * (it runs wherever the model already is, else loads it on the CPU), any takes a GPU and
 * falls back to the CPU when none can hold the model, or after WAIT_WARN_S of waiting.
 */
enum job_placement { JOB_PLACE_ANY, JOB_PLACE_GPU, JOB_PLACE_CPU, JOB_NPLACEMENTS };

enum job_status {
	JOB_QUEUED,
	JOB_PENDING,
	JOB_RUNNING,
	JOB_COMPLETE,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_NSTATUSES
};

#define JOB_ID_LEN 24 /* "j-" + 16 hex + NUL, with room */

struct job;

/*
 * A client waiting on its connection for a job's answer (the Ollama and OpenAI front
 * doors), instead of submitting and polling. The node's reply is passed through to it as
 * it comes. Owned by the front door, which keeps it alive until end(); the engine and
 * the daemon only call it.
 */
struct job_attach {
	/* A piece of the node's reply body (2xx), as it arrives. */
	void (*chunk)(struct job *job, const char *data, size_t len, void *arg);
	/* The job became final (job->status, job->error); called once, then the job is
	 * detached (job->attach NULL). */
	void (*end)(struct job *job, void *arg);
	void *arg;
	bool stream;	       /* ask the node for a streamed (NDJSON) reply */
	const char *path;      /* the node's endpoint when not the kind's ("/api/embeddings") */
	bool replied;	       /* part of the answer reached the client: it cannot run again */
	int status;	       /* the node's HTTP status when its run failed with one; else 0 */
	int64_t keep_alive_ms; /* the client's keep_alive hint (CLIENT_KEEP_ALIVE=hint, capped):
				  its model stays loaded at least this long after the job; 0 */
};

struct job {
	int refcount;
	char id[JOB_ID_LEN]; /* public id, e.g. "j-0000018c2f3a9b11" */
	int64_t seq;	     /* submission order (store row id); FIFO tiebreak */
	char *model;	     /* model name as the client gave it */
	enum job_kind kind;
	enum job_priority priority;
	enum job_placement placement; /* where it may run; resolved at submit (never "unset") */
	enum job_status status;
	/* owned: the Ollama request fields (prompt / messages / input, images, options,
	 * system, format, ...) without model and stream, as compact JSON text: a queued job
	 * keeps a few hundred bytes, not a tree of JSON objects (job_request parses it) */
	char *request_text;
	int64_t num_ctx; /* its options.num_ctx, or 0 when it gives none */
	/* owned: client metadata as compact JSON text, echoed back; NULL if none. Text,
	 * not a jansson tree: a small object costs ~340 bytes as a tree per queued job */
	char *metadata_text;
	char *key;	/* owned: the name of the API key that submitted it; NULL: none */
	json_t *result; /* owned when complete: the Ollama reply's text / message / embeddings */
	char *error;	/* owned when failed or cancelled: a clear message */
	int64_t submitted_at_ms;	  /* wall clock, Unix ms */
	int64_t started_at_ms;		  /* wall clock when it began running; 0 if never */
	int64_t completed_at_ms;	  /* wall clock when final; 0 if not */
	int64_t enqueued_mono_ms;	  /* monotonic, when it (re)entered the queue */
	int64_t wait_ms, load_ms, run_ms; /* metrics */
	int attempts;			  /* backend attempts so far */
	size_t request_bytes; /* size of request as stored (compact JSON); QUEUE_MAX_BYTES */
	/* Deadline (deadline_s at submit, X-Vramd-Deadline): when it should have finished.
	 * deadline_at_ms is the wall clock (Unix ms; stored, shown); deadline_mono_ms the same
	 * instant on the monotonic clock, which the queue and the scheduler order by, set by
	 * job_set_deadline when the job enters this vramd (submit or recovery). 0: none. */
	int64_t deadline_at_ms;
	int64_t deadline_mono_ms;
	bool wait_warned; /* the engine sent its job_waiting event (WAIT_WARN_S) */

	/* Private to queue.c: links in the per-model, per-priority FIFO and in its key's
	 * part of that FIFO (the flow), and whether the queue counts request_bytes (from
	 * the first push until queue_release_bytes). */
	struct job *queue_prev, *queue_next;
	struct job *queue_flow_prev, *queue_flow_next;
	void *queue_flow;
	/* Private to queue.c: links in the per-model, per-priority list of jobs with a
	 * deadline, earliest first. */
	struct job *queue_deadline_prev, *queue_deadline_next;
	bool queue_holds_bytes;
	/* Private to the engine: the transfer in flight, if any. */
	void *engine_transfer;
	/* A client waiting on its connection, or NULL (submit-and-poll). Such a job is
	 * written to the store only once final, so a restart never runs it again. */
	struct job_attach *attach;
};

/* Creates a job with refcount 1 and status queued; takes ownership of request and
 * metadata (either may be NULL). The id is derived from seq. */
struct job *job_new(int64_t seq, const char *model, enum job_kind kind, enum job_priority priority,
		    json_t *request, json_t *metadata);
/* The same with the request already as compact JSON text (taken; NULL: "{}") and its
 * options.num_ctx (0: none), for a caller that serialised it to measure it: the
 * submit path serialises a request once. */
struct job *job_new_text(int64_t seq, const char *model, enum job_kind kind,
			 enum job_priority priority, char *request_text, int64_t num_ctx,
			 json_t *metadata);
struct job *job_ref(struct job *job);
void job_unref(struct job *job);

bool job_is_final(const struct job *job);
/* Formats the public id for a sequence number into buf (JOB_ID_LEN bytes). */
void job_format_id(int64_t seq, char *buf);
/* Parses a public id back to its sequence number; returns false if malformed. */
bool job_parse_id(const char *id, int64_t *seq);

/*
 * Aging (PRIORITY_AGING_S): the effective priority class, at now_ms, of a job of priority
 * prio enqueued at enqueued_ms: one class more urgent per aging_ms waited, never above
 * JOB_PRIO_HIGH; prio itself when aging_ms <= 0. The queue hands out a model's jobs and the
 * scheduler ranks models by it, so both agree on what is served next.
 */
int job_effective_priority(int prio, int64_t enqueued_ms, int64_t now_ms, int64_t aging_ms);

/*
 * Deadlines. job_set_deadline sets both clocks of the deadline from deadline_at_ms (wall,
 * Unix ms; 0 clears it), given the two clocks now, so a job recovered after a restart is
 * ordered by the deadline it was given. job_deadline_missed: it has a deadline and it
 * started, or became final, after it.
 */
void job_set_deadline(struct job *job, int64_t deadline_at_ms, int64_t now_wall_ms,
		      int64_t now_mono_ms);
bool job_deadline_missed(const struct job *job);

const char *job_kind_name(enum job_kind kind);
const char *job_priority_name(enum job_priority priority);
const char *job_status_name(enum job_status status);
const char *job_placement_name(enum job_placement placement);
/* Name-to-enum lookups; return -1 for an unknown name. */
int job_kind_from_name(const char *name);
int job_priority_from_name(const char *name);
int job_status_from_name(const char *name);
int job_placement_from_name(const char *name);

/*
 * The placement a MODEL_PLACEMENT list ("llama3.1:70b=cpu,phi3:mini=gpu") gives model,
 * or -1 when the list does not name it. An entry without a tag also names the model
 * with ":latest" ("phi3=gpu" names "phi3:latest"). The list must be valid
 * (job_placement_list_check).
 */
int job_placement_for_model(const char *list, const char *model);
/* Checks a MODEL_PLACEMENT list: returns 0, or -EINVAL with *cause (caller frees) naming
 * the entry that is not "model=gpu|cpu|any". "" is a valid empty list. */
int job_placement_list_check(const char *list, char **cause);
/*
 * The placement of a job that asks for none: the model's MODEL_PLACEMENT entry, else
 * any when ALLOW_CPU is on (allow_cpu), else gpu.
 */
enum job_placement job_placement_default(const char *list, const char *model, bool allow_cpu);

/* Sets a final status (complete, failed or cancelled) and its completion time.
 * error is copied (may be NULL); result is stolen (may be NULL). */
void job_finish(struct job *job, enum job_status status, json_t *result, const char *error,
		int64_t now_wall_ms);

/* The context the job asks for (options.num_ctx), or 0 when it gives none. */
int64_t job_num_ctx(const struct job *job);

/* The job's request as a JSON object (a new reference; an empty object if its text
 * does not parse, which job_new never writes). */
json_t *job_request(const struct job *job);

/* The size of a request as the store keeps it (compact JSON), without building it. */
size_t job_request_bytes(const json_t *request);

/* The job as the API shows it (GET /api/job/{id}); a new reference. */
json_t *job_to_json(const struct job *job);

#endif
