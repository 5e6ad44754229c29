/*
 * http.h: vramctl's HTTP client, a thin blocking layer over libcurl's easy interface.
 * The CLI is a one-shot program, so blocking is fine here; the daemon uses its own
 * asynchronous client. Every reply body is read under a cap.
 */
#ifndef VRAMCTL_HTTP_H
#define VRAMCTL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Largest reply body vramctl accepts (embeddings of long inputs are the big ones). */
#define CTL_HTTP_MAX_REPLY (64u << 20)

struct ctl_http_reply {
	long status;	  /* HTTP status, 0 if none arrived */
	char *body;	  /* owned, NUL-terminated, never NULL after a successful request */
	size_t body_len;  /* bytes in body */
	long retry_after; /* Retry-After header in seconds, -1 if absent */
};

/* Called once per Server-Sent Event; return false to stop the stream. event is the
 * "event:" field ("message" when absent), data the joined "data:" lines. Both borrowed
 * for the duration of the call. */
typedef bool ctl_http_sse_cb(const char *event, const char *data, void *arg);

/* Initialises and cleans up libcurl; call once at start and at exit. */
void ctl_http_global_init(void);
void ctl_http_global_cleanup(void);

/*
 * Performs one request: method ("GET", "POST", ...), a full URL, an optional JSON body
 * (NULL for none), an API key sent as "Authorization: Bearer KEY" (NULL for none), and a
 * total timeout in seconds (0 = none). On success returns 0 and
 * fills *reply (clean it with ctl_http_reply_cleanup) whatever the HTTP status. Returns
 * -ECONNREFUSED when the server cannot be reached or the transfer fails (*cause says
 * why, caller frees), or -E2BIG when the reply is larger than CTL_HTTP_MAX_REPLY.
 */
int ctl_http_request(const char *method, const char *url, const char *body, const char *api_key,
		     long timeout_s, struct ctl_http_reply *reply, char **cause);
void ctl_http_reply_cleanup(struct ctl_http_reply *reply);

/*
 * GETs a text/event-stream URL (with api_key as ctl_http_request) and calls cb for every event
 * until cb returns false or the server closes the stream. An event larger than 1 MiB ends the
 * stream with an error. Returns 0 when cb stopped it or the server closed it after a 200;
 * -ECONNREFUSED (cause set) for a transport failure; -EPROTO with *status and *cause set when the
 * server answered with an error status (cause then holds the reply body).
 */
int ctl_http_sse(const char *url, const char *api_key, ctl_http_sse_cb *cb, void *arg, long *status,
		 char **cause);

/* Percent-encodes s for a URL query value or path segment; the caller frees the result. */
char *ctl_http_escape(const char *s);

#endif
