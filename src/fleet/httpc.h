/*
 * httpc.h: an asynchronous HTTP client on the daemon's libevent loop (libcurl's multi
 * interface driven by curl_multi_socket_action). No thread per request and nothing
 * ever blocks: a request is started, the loop runs, and its callback fires once with
 * the result. Only httpc.c includes curl/curl.h.
 *
 * Ownership and lifetime:
 *   - struct httpc is owned by whoever called httpc_new() (the daemon: one per loop,
 *     shared by every backend). httpc_free() cancels everything in flight WITHOUT calling
 *     any callback, then removes every fd and timer it registered with the loop.
 *   - struct httpc_request is owned by httpc. The handle stays valid until its callback
 *     returns or httpc_cancel() returns, whichever comes first; after that it is freed.
 *   - The done callback is called exactly once per request unless the request is
 *     cancelled (then never). It is never called from inside httpc_start(), so the
 *     caller may store the handle before any callback can run. Inside a callback one
 *     may start new requests and cancel OTHER requests, but not free the httpc.
 *   - Every buffer is capped: a reply over max_reply_bytes fails with HTTPC_ERR_TOO_LARGE.
 *   - Only http:// and https:// URLs are fetched, and redirects are never followed: a
 *     3xx reply is the result (HTTPC_OK with its status), like any other status.
 */
#ifndef VRAMD_HTTPC_H
#define VRAMD_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct httpc;
struct httpc_request;

#define HTTPC_DEFAULT_MAX_REPLY	      (4u << 20) /* 4 MiB when max_reply_bytes is 0 */
#define HTTPC_DEFAULT_CONNECT_TIMEOUT 10000	 /* ms, when connect_timeout_ms is 0 */

/* Why a request failed. A reply with any HTTP status (also 4xx/5xx) is HTTPC_OK:
 * the status is in the result and the caller decides what it means. */
enum httpc_error {
	HTTPC_OK,
	HTTPC_ERR_CONNECT,   /* could not connect: refused, unreachable, DNS failure */
	HTTPC_ERR_TIMEOUT,   /* connect or whole-transfer timeout */
	HTTPC_ERR_TOO_LARGE, /* the reply body passed max_reply_bytes */
	HTTPC_ERR_TRANSPORT, /* anything else: reset, closed mid-reply, bad HTTP, bad URL */
};

struct httpc_options {
	const char *method; /* "GET" (default when NULL), "POST", "DELETE", "HEAD", ... */
	const char *url;    /* "http://127.0.0.1:11434/api/ps"; copied */
	const void *body;   /* request body, copied; NULL for none */
	size_t body_len;
	const char *content_type;   /* of the body; "application/json" when NULL */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated; copied */
	int64_t timeout_ms;	    /* whole transfer; 0 = no limit (avoid) */
	int64_t connect_timeout_ms; /* 0 = HTTPC_DEFAULT_CONNECT_TIMEOUT */
	size_t max_reply_bytes;	    /* 0 = HTTPC_DEFAULT_MAX_REPLY */
	/* Send "Host: localhost:<port>" when the URL's host is a loopback address or name
	 * (127.0.0.0/8, ::1, localhost, *.localhost), as a loopback-bound Ollama accepts. */
	bool loopback_host;
	/* Streaming: when set, every piece of the reply body is handed to
	 * on_data(status, data, len, data_arg) as it arrives, on the loop, instead of being
	 * buffered (result.body is then "" and result.streamed_bytes counts what came).
	 * Returning false aborts the transfer (HTTPC_ERR_TRANSPORT). It must not cancel
	 * or free anything of the client itself. */
	bool (*on_data)(int status, const char *data, size_t len, void *data_arg);
	/* With on_data, optional: called once before the first piece, with the reply's
	 * status and Content-Type (NULL if none; borrowed for the call). */
	void (*on_start)(int status, const char *content_type, void *data_arg);
	void *data_arg;
};

struct httpc_result {
	enum httpc_error error;
	int status;		   /* HTTP status; 0 when no reply came (transport failure) */
	bool timed_out;		   /* error == HTTPC_ERR_TIMEOUT */
	const char *error_message; /* curl's message, e.g. "Failed to connect to 127.0.0.1 port
				      9: Connection refused"; NULL when error == HTTPC_OK */
	const char *body;	   /* the reply body, NUL-terminated ("" when empty) */
	size_t body_len;
	const char *content_type; /* the reply's Content-Type, NULL if none */
	int64_t elapsed_ms;	  /* from httpc_start() to completion */
	size_t streamed_bytes;	  /* with on_data: reply body bytes handed over */
	/* Every pointer above is borrowed: valid only while the callback runs. */
};

typedef void httpc_done_cb(const struct httpc_result *result, void *arg);

/* Creates a client whose sockets and timers live on base. Never NULL (aborts on OOM or
 * if libcurl cannot initialise). */
struct httpc *httpc_new(struct event_base *base);
/* Cancels every request in flight without calling callbacks, unregisters everything
 * from the loop and frees the client. NULL is a no-op. Not from inside a callback. */
void httpc_free(struct httpc *client);

/*
 * Starts a request. opts and everything it points to are copied, so they may be freed
 * when this returns. cb(result, arg) is called once from the loop when the request
 * completes (never from inside this function). Returns the request handle (never NULL;
 * an invalid URL fails later through the callback with HTTPC_ERR_TRANSPORT).
 */
struct httpc_request *httpc_start(struct httpc *client, const struct httpc_options *opts,
				  httpc_done_cb *cb, void *arg);
/* Aborts a request in flight (closing its connection); its callback is not called after
 * this returns. The handle is freed. Must not be called on a request whose callback has
 * already started. NULL is a no-op. */
void httpc_cancel(struct httpc_request *req);

/* The loop the client runs on (borrowed). */
struct event_base *httpc_base(const struct httpc *client);
/* Number of requests in flight (started, not yet completed or cancelled). */
size_t httpc_in_flight(const struct httpc *client);

/* A short name for an error class ("connect", "timeout", ...). */
const char *httpc_error_name(enum httpc_error error);

#endif
