/*
 * backend.h: the inference backend interface. A backend is one inference server (today:
 * one Ollama server, backend-ollama.c) that vramd observes (version, installed models,
 * running models) and acts on (load, unload, run a job, cancel a run). Everything is
 * asynchronous on the daemon's libevent loop; results arrive as plain C structs, so no
 * other module parses a backend's wire format.
 *
 * Callers never touch the ops table: they call the backend_*() wrappers.
 *
 * Calls and callbacks:
 *   - Every operation returns a struct backend_call * (never NULL). Its callback is called
 *     exactly once, from the loop, never from inside the starting function, unless the
 *     call is cancelled with backend_call_cancel() first (then never).
 *   - The handle is valid until the callback returns or backend_call_cancel() returns.
 *   - Inside a callback one may start new calls and cancel OTHER calls, but not free the
 *     backend or its httpc.
 *   - Every pointer in a status or result passed to a callback is borrowed for the
 *     callback's duration, except what the comment says may be stolen.
 *   - Every call has a timeout (0 in a request = the backend's default for that kind).
 *
 * Errors (struct backend_status.error):
 *   BACKEND_OK           success
 *   BACKEND_ERR_REMOTE   the server answered with an error reply (Ollama's {"error": msg}):
 *                        message is the server's own text, http_status its status.
 *                        Do not retry (a 404 model, a 400 bad request, a 500 load failure).
 *   BACKEND_ERR_UNAVAILABLE  could not talk to the server: connection refused, DNS, timeout
 *                        (timed_out set), or the server said it is busy (503). Retry with
 *                        backoff; a health signal for the monitor.
 *   BACKEND_ERR_PROTOCOL the server answered but the reply is unusable: not JSON, cut off
 *                        mid-answer, the wrong shape, or over the size cap. message names
 *                        the server.
 */
#ifndef VRAMD_BACKEND_H
#define VRAMD_BACKEND_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct httpc;
struct backend;
struct backend_call;

enum backend_error {
	BACKEND_OK,
	BACKEND_ERR_REMOTE,
	BACKEND_ERR_UNAVAILABLE,
	BACKEND_ERR_PROTOCOL,
};

struct backend_status {
	enum backend_error error;
	int http_status;     /* 0 when no reply came */
	bool timed_out;	     /* the call ran past its timeout (error is UNAVAILABLE) */
	const char *message; /* NULL on success; a clear message otherwise (borrowed) */
	int64_t elapsed_ms;  /* wall time of the call */
};

/* Capabilities of an installed model (Ollama's "capabilities" list). */
#define BACKEND_CAP_COMPLETION (1u << 0)
#define BACKEND_CAP_EMBEDDING  (1u << 1)
#define BACKEND_CAP_VISION     (1u << 2)
#define BACKEND_CAP_TOOLS      (1u << 3)
#define BACKEND_CAP_THINKING   (1u << 4)
#define BACKEND_CAP_INSERT     (1u << 5)

/* A model's architecture from /api/show "model_info", enough to size its KV cache the
 * way Ollama does; 0 where the server did not say. */
struct backend_model_arch {
	int64_t context_length;	  /* <arch>.context_length: the trained context */
	int64_t block_count;	  /* <arch>.block_count: layers */
	int64_t head_count;	  /* <arch>.attention.head_count */
	int64_t head_count_kv;	  /* <arch>.attention.head_count_kv */
	int64_t embedding_length; /* <arch>.embedding_length */
};

/* One installed model (/api/tags). Strings are owned by the list; "" when absent. */
struct backend_model_info {
	char *name;		  /* "llama3.2:latest" */
	uint64_t size_bytes;	  /* file size on disk */
	char *digest;		  /* sha256 hex */
	char *family;		  /* details.family: "llama", "bert", "nomic-bert" */
	char *parameter_size;	  /* "3.2B" */
	char *quantization_level; /* "Q4_K_M" */
	unsigned capabilities;	  /* BACKEND_CAP_* */
	/* How capabilities were learnt: from the server (/api/tags or /api/show), or only
	 * inferred from the family (bert-like families are embedding-only, others completion). */
	bool capabilities_reported;
	struct backend_model_arch arch; /* from /api/show (asked once per name and digest) */
};

struct backend_model_list {
	struct backend_model_info *models;
	size_t n;
};

/* One model resident on the server (/api/ps). Strings owned by the list. */
struct backend_running_model {
	char *name;  /* "llama3.2:latest" */
	char *model; /* usually == name */
	char *digest;
	uint64_t size_bytes;	  /* total memory of the runner (GPU + CPU) */
	uint64_t size_vram_bytes; /* the part on GPUs */
	int64_t expires_at_ms;	  /* wall clock, Unix ms; 0 if absent or unparseable */
	int64_t context_length;	  /* 0 if absent */
};

struct backend_running_list {
	struct backend_running_model *models;
	size_t n;
};

/* Where a model is (or should be) placed. Ollama: AUTO sends nothing, CPU sends
 * options.num_gpu 0, a GPU index N sends options.main_gpu N. The same placement must be
 * given to every run of a loaded model, or Ollama reloads it (reference 2.6). */
#define BACKEND_PLACE_AUTO (-2)
#define BACKEND_PLACE_CPU  (-1)

struct backend_load_request {
	const char *model;     /* borrowed until the start function returns */
	int placement;	       /* BACKEND_PLACE_AUTO, BACKEND_PLACE_CPU, or a GPU index >= 0 */
	bool embedding_only;   /* load/unload through /api/embed (no generate capability) */
	const json_t *options; /* load-time options to send (num_ctx, ...), borrowed until the
				  start function returns; NULL for none. Placement overrides
				  num_gpu/main_gpu. */
	int64_t timeout_ms;    /* 0 = backend default (load_timeout_ms / control_timeout_ms) */
};

struct backend_run_request {
	const char *model; /* borrowed until the start function returns */
	enum job_kind kind;
	const json_t *request; /* the job's request fields (job_request), borrowed until the
				  start function returns; model/stream/keep_alive are set by
				  the backend and override any given here */
	int placement;	       /* as for the load; BACKEND_PLACE_AUTO adds nothing */
	int64_t timeout_ms;    /* 0 = backend default (run_timeout_ms) */
	/* Pass-through, for a client waiting on its connection: when on_chunk is set, the
	 * reply body (a 2xx one) is handed to on_chunk(data, len, arg) piece by piece as it
	 * arrives, unparsed, and the run callback still follows, with the metrics of the
	 * reply's last line (result NULL). stream asks the server for a streamed (NDJSON)
	 * reply; path, when set, replaces the kind's endpoint ("/api/embeddings"), and then
	 * no metrics are read. */
	void (*on_chunk)(const char *data, size_t len, void *arg);
	bool stream;
	const char *path;
};

/* Ollama's metrics of a run; -1 where the reply did not say. */
struct backend_run_metrics {
	int64_t total_duration_ns;
	int64_t load_duration_ns;
	int64_t prompt_eval_count;
	int64_t prompt_eval_duration_ns;
	int64_t eval_count;
	int64_t eval_duration_ns;
};

struct backend_run_result {
	/* generate: the "response" string; chat: the "message" object; embed: the
	 * "embeddings" array. The callback may steal it (take it and set the field to
	 * NULL); otherwise it is released after the callback. NULL on failure. */
	json_t *result;
	struct backend_run_metrics metrics;
	const char *done_reason; /* "stop", "length", ... or NULL (borrowed) */
};

typedef void backend_version_cb(const struct backend_status *status, const char *version,
				void *arg);
typedef void backend_models_cb(const struct backend_status *status,
			       const struct backend_model_list *list, void *arg);
typedef void backend_running_cb(const struct backend_status *status,
				const struct backend_running_list *list, void *arg);
/* For load and unload. */
typedef void backend_done_cb(const struct backend_status *status, void *arg);
typedef void backend_run_cb(const struct backend_status *status, struct backend_run_result *result,
			    void *arg);

struct backend_config {
	const char *url;		/* base URL, e.g. "http://127.0.0.1:11434"; copied */
	struct httpc *httpc;		/* borrowed; must outlive the backend */
	int64_t control_timeout_ms;	/* version/tags/ps/unload; 0 = 10 s */
	int64_t load_timeout_ms;	/* 0 = 10 min (Ollama's own stall timeout is 5 min) */
	int64_t run_timeout_ms;		/* 0 = 30 min */
	size_t max_control_reply_bytes; /* 0 = 4 MiB */
	size_t max_run_reply_bytes;	/* 0 = 64 MiB */
};

struct backend_ops {
	const char *name; /* "ollama" */
	int (*init)(struct backend *b, const struct backend_config *config, char **cause);
	void (*free)(struct backend *b);
	struct backend_call *(*version)(struct backend *b, backend_version_cb *cb, void *arg);
	struct backend_call *(*list_installed)(struct backend *b, backend_models_cb *cb, void *arg);
	struct backend_call *(*list_running)(struct backend *b, backend_running_cb *cb, void *arg);
	struct backend_call *(*load)(struct backend *b, const struct backend_load_request *req,
				     backend_done_cb *cb, void *arg);
	struct backend_call *(*unload)(struct backend *b, const struct backend_load_request *req,
				       backend_done_cb *cb, void *arg);
	struct backend_call *(*run)(struct backend *b, const struct backend_run_request *req,
				    backend_run_cb *cb, void *arg);
	void (*cancel)(struct backend_call *call);
};

struct backend {
	const struct backend_ops *ops;
	char *url;  /* owned copy of config->url, without a trailing '/' */
	void *priv; /* the implementation's state */
};

extern const struct backend_ops backend_ollama_ops;

/*
 * Creates a backend of the named kind ("ollama"; NULL = "ollama"). Returns 0 and sets
 * *out (the caller frees it with backend_free), or -EINVAL with *cause set (unknown kind,
 * bad URL).
 */
int backend_new(const char *kind, const struct backend_config *config, struct backend **out,
		char **cause);
/* Cancels every call in flight (no callbacks) and frees the backend. NULL is a no-op. */
void backend_free(struct backend *b);
const char *backend_name(const struct backend *b);

/* The operations; see the callback types above. Each returns the call handle. */
struct backend_call *backend_version(struct backend *b, backend_version_cb *cb, void *arg);
struct backend_call *backend_list_installed(struct backend *b, backend_models_cb *cb, void *arg);
struct backend_call *backend_list_running(struct backend *b, backend_running_cb *cb, void *arg);
struct backend_call *backend_load(struct backend *b, const struct backend_load_request *req,
				  backend_done_cb *cb, void *arg);
struct backend_call *backend_unload(struct backend *b, const struct backend_load_request *req,
				    backend_done_cb *cb, void *arg);
struct backend_call *backend_run(struct backend *b, const struct backend_run_request *req,
				 backend_run_cb *cb, void *arg);
/* Aborts a call in flight (a run's connection is closed, so Ollama stops generating);
 * its callback is not called after this returns. NULL is a no-op. */
void backend_call_cancel(struct backend *b, struct backend_call *call);

/* Frees the contents of lists (the structs themselves may be on the stack). */
void backend_model_list_cleanup(struct backend_model_list *list);
void backend_running_list_cleanup(struct backend_running_list *list);
/* A short name for an error class ("ok", "remote", "unavailable", "protocol"). */
const char *backend_error_name(enum backend_error error);

#endif
