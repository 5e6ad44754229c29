/*
 * httpc.c: the asynchronous HTTP client (see httpc.h) — libcurl's multi_socket API
 * driven by the daemon's libevent loop, after curl's docs/examples/ghiper.c and
 * evhiperfifo.c.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); we hold one struct event per socket (assigned to the socket
 * with curl_multi_assign) and one timer, and feed readiness back with
 * curl_multi_socket_action(). After each action finished transfers are collected with
 * curl_multi_info_read() and their callbacks run — outside any curl callback, so a user
 * callback may start or cancel requests.
 *
 * Invariants: every request in flight is on client->requests and its easy handle is in
 * the multi handle; a socket event exists exactly while curl watches the socket; when a
 * request ends (done, cancelled or freed) its easy handle leaves the multi handle before
 * it is cleaned up, which makes curl remove its sockets (and their events) first. This
 * is the only file that includes curl/curl.h.
 */
#include "httpc.h"

#include "buf.h"
#include "util.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct httpc_request *requests; /* doubly linked list of requests in flight */
	struct httpc_sock *socks;	/* every socket curl asked us to watch */
	size_t nrequests;
	bool in_callback; /* a done callback is running (httpc_free is forbidden) */
};

struct httpc_request {
	struct httpc *client;
	struct httpc_request *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	char *body;	     /* owned copy of the request body */
	struct vd_buf reply; /* capped reply body */
	bool too_large;
	bool (*on_data)(int status, const char *data, size_t len, void *arg); /* streaming */
	void (*on_start)(int status, const char *content_type, void *arg);
	void *data_arg;
	size_t streamed;
	char errbuf[CURL_ERROR_SIZE];
	int64_t started_ms;
	bool finished;	/* collected by httpc_check_done, not yet delivered */
	bool cancelled; /* cancelled while finished: freed by httpc_check_done */
	CURLcode result;
	struct httpc_request *done_next;
	httpc_done_cb *cb;
	void *arg;
};

/* Per-socket state, attached to the socket with curl_multi_assign. */
struct httpc_sock {
	struct httpc_sock *prev, *next;
	struct event *ev;
	curl_socket_t fd;
	int what; /* CURL_POLL_* last asked for */
};

static void httpc_check_done(struct httpc *client);

static void
httpc_sock_free(struct httpc *client, struct httpc_sock *sock)
{
	if (sock->prev)
		sock->prev->next = sock->next;
	else
		client->socks = sock->next;
	if (sock->next)
		sock->next->prev = sock->prev;
	if (sock->ev)
		event_free(sock->ev);
	free(sock);
}

static void
httpc_unlink(struct httpc_request *req)
{
	struct httpc *client = req->client;

	if (req->prev)
		req->prev->next = req->next;
	else
		client->requests = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
	client->nrequests--;
}

/* Removes the request from curl (closing its sockets, hence their events) and frees it. */
static void
httpc_request_free(struct httpc_request *req)
{
	curl_multi_remove_handle(req->client->multi, req->easy);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	free(req->body);
	vd_buf_cleanup(&req->reply);
	free(req);
}

static void
httpc_socket_event_cb(evutil_socket_t fd, short events, void *arg)
{
	struct httpc *client = arg;
	int running = 0;
	int action = 0;

	if (events & EV_READ)
		action |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(client->multi, fd, action, &running);
	httpc_check_done(client);
}

static void
httpc_timer_event_cb(evutil_socket_t fd, short events, void *arg)
{
	struct httpc *client = arg;
	int running = 0;

	(void)fd;
	(void)events;
	curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_check_done(client);
}

/* CURLMOPT_SOCKETFUNCTION: curl says which events it wants on a socket. */
static int
httpc_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct httpc *client = userp;
	struct httpc_sock *sock = socketp;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sock) {
			httpc_sock_free(client, sock);
			curl_multi_assign(client->multi, fd, NULL);
		}
		return 0;
	}
	if (!sock) {
		sock = xcalloc(1, sizeof(*sock));
		sock->fd = fd;
		sock->next = client->socks;
		if (sock->next)
			sock->next->prev = sock;
		client->socks = sock;
		curl_multi_assign(client->multi, fd, sock);
	} else {
		if (sock->what == what)
			return 0;
		event_free(sock->ev);
	}
	short events = EV_PERSIST;
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	sock->what = what;
	sock->ev = event_new(client->base, fd, events, httpc_socket_event_cb, client);
	if (!sock->ev)
		abort();
	event_add(sock->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be woken after timeout_ms (-1: never). We never
 * call curl back from inside this callback; a 0 timeout goes through the loop. */
static int
httpc_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc *client = userp;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(client->timer);
		return 0;
	}
	struct timeval tv = {
	    .tv_sec = timeout_ms / 1000,
	    .tv_usec = (timeout_ms % 1000) * 1000,
	};
	evtimer_add(client->timer, &tv);
	return 0;
}

static size_t
httpc_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct httpc_request *req = userp;
	size_t len = size * nmemb;

	if (req->on_data != NULL) {
		long status = 0;
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
		if (req->streamed == 0 && req->on_start != NULL) {
			char *ctype = NULL;
			curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ctype);
			req->on_start((int)status, ctype, req->data_arg);
		}
		req->streamed += len;
		return req->on_data((int)status, data, len, req->data_arg) ? len : 0;
	}
	if (vd_buf_append(&req->reply, data, len) < 0) {
		req->too_large = true;
		return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
	}
	return len;
}

static enum httpc_error
httpc_classify(CURLcode code, bool too_large)
{
	switch (code) {
	case CURLE_OK:
		return HTTPC_OK;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return HTTPC_ERR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTPC_ERR_TIMEOUT;
	case CURLE_WRITE_ERROR:
		return too_large ? HTTPC_ERR_TOO_LARGE : HTTPC_ERR_TRANSPORT;
	case CURLE_FILESIZE_EXCEEDED:
		return HTTPC_ERR_TOO_LARGE;
	default:
		return HTTPC_ERR_TRANSPORT;
	}
}

/* Delivers one finished request to its callback and frees it. */
static void
httpc_deliver(struct httpc *client, struct httpc_request *req)
{
	CURLcode code = req->result;
	struct httpc_result result = {
	    .error = httpc_classify(code, req->too_large),
	    .body = vd_buf_str(&req->reply),
	    .body_len = req->reply.len,
	    .elapsed_ms = vd_now_mono_ms() - req->started_ms,
	    .streamed_bytes = req->streamed,
	};
	long status = 0;
	char *ctype = NULL;
	char *message = NULL;

	httpc_unlink(req);
	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ctype);
	result.content_type = ctype;
	if (result.error != HTTPC_OK) {
		const char *detail = req->errbuf[0] ? req->errbuf : curl_easy_strerror(code);
		long os_errno = 0;
		curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
		if (result.error == HTTPC_ERR_TOO_LARGE)
			message = xasprintf("reply body over the %zu-byte cap", req->reply.cap);
		else if (os_errno > 0 && !strcasestr(detail, strerror((int)os_errno)))
			message = xasprintf("%s (%s)", detail, strerror((int)os_errno));
		else
			message = xstrdup(detail);
		/* A failed transfer has no usable status even if headers came. */
		status = result.error == HTTPC_ERR_TOO_LARGE ? status : 0;
	}
	result.status = (int)status;
	result.timed_out = result.error == HTTPC_ERR_TIMEOUT;
	result.error_message = message;

	client->in_callback = true;
	req->cb(&result, req->arg);
	client->in_callback = false;
	free(message);
	httpc_request_free(req);
}

/*
 * Runs the callbacks of finished transfers. All of curl's messages are collected first
 * (their handles stay valid until delivered), then delivered one by one; a callback that
 * cancels another collected request only marks it, and it is freed here, undelivered.
 * So no message can outlive its request, whatever curl does with pending messages.
 */
static void
httpc_check_done(struct httpc *client)
{
	struct httpc_request *head = NULL, **tail = &head;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(client->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct httpc_request *req = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
		req->result = msg->data.result;
		req->finished = true;
		*tail = req;
		tail = &req->done_next;
	}
	while (head) {
		struct httpc_request *req = head;
		head = req->done_next;
		if (req->cancelled)
			httpc_request_free(req); /* already unlinked by httpc_cancel */
		else
			httpc_deliver(client, req);
	}
}

struct httpc *
httpc_new(struct event_base *base)
{
	static bool global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			abort();
		global_done = true;
	}

	struct httpc *client = xcalloc(1, sizeof(*client));
	client->base = base;
	client->multi = curl_multi_init();
	client->timer = evtimer_new(base, httpc_timer_event_cb, client);
	if (!client->multi || !client->timer)
		abort();
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, httpc_socket_cb);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	return client;
}

void
httpc_free(struct httpc *client)
{
	if (!client)
		return;
	assert(!client->in_callback);
	while (client->requests) {
		struct httpc_request *req = client->requests;
		httpc_unlink(req);
		httpc_request_free(req);
	}
	/* Idle cached connections still have sockets (and our events): cleanup closes them,
	 * normally telling us through the socket callback; free whatever it did not. */
	curl_multi_cleanup(client->multi);
	while (client->socks)
		httpc_sock_free(client, client->socks);
	event_free(client->timer);
	free(client);
}

/* True if host (as curl_url returns it, IPv6 in brackets) is a loopback name/address. */
static bool
httpc_host_is_loopback(const char *host)
{
	if (strcasecmp(host, "localhost") == 0 || vd_str_has_suffix(host, ".localhost"))
		return true;
	if (strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0)
		return true;
	return vd_str_has_prefix(host, "127.");
}

/* "Host: localhost:<port>" for a loopback URL, or NULL. */
static char *
httpc_loopback_host_header(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *line = NULL;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	if (httpc_host_is_loopback(host))
		line = xasprintf("Host: localhost:%s", port);
out:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return line;
}

static struct curl_slist *
httpc_append_header(struct curl_slist *list, const char *line)
{
	struct curl_slist *n = curl_slist_append(list, line);
	if (!n)
		abort();
	return n;
}

struct httpc_request *
httpc_start(struct httpc *client, const struct httpc_options *opts, httpc_done_cb *cb, void *arg)
{
	struct httpc_request *req = xcalloc(1, sizeof(*req));
	const char *method = opts->method ? opts->method : "GET";

	req->client = client;
	req->cb = cb;
	req->arg = arg;
	req->on_data = opts->on_data;
	req->on_start = opts->on_start;
	req->data_arg = opts->data_arg;
	req->started_ms = vd_now_mono_ms();
	vd_buf_init(&req->reply,
		    opts->max_reply_bytes ? opts->max_reply_bytes : HTTPC_DEFAULT_MAX_REPLY);
	req->easy = curl_easy_init();
	if (!req->easy)
		abort();

	CURL *e = req->easy;
	curl_easy_setopt(e, CURLOPT_URL, opts->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Runs may wait minutes for a reply: notice a peer that vanished. */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
	/* Plain http and https only, and a 3xx reply is an answer, never followed: a
	 * webhook receiver must not be able to bounce vramd's POST (and its Basic auth)
	 * to another address, such as a service on vramd's own loopback. */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 (long)(opts->timeout_ms > 0 ? opts->timeout_ms : 0));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
							     : HTTPC_DEFAULT_CONNECT_TIMEOUT));
	/* A reply's declared length over the cap fails before any byte is buffered. */
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->reply.cap);

	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	if (opts->body || strcmp(method, "POST") == 0) {
		req->body = xmalloc(opts->body_len + 1);
		if (opts->body_len)
			memcpy(req->body, opts->body, opts->body_len);
		req->body[opts->body_len] = '\0';
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)opts->body_len);
		char *ct = xasprintf("Content-Type: %s",
				     opts->content_type ? opts->content_type : "application/json");
		req->headers = httpc_append_header(req->headers, ct);
		free(ct);
		/* No "Expect: 100-continue" round trip for large bodies. */
		req->headers = httpc_append_header(req->headers, "Expect:");
	}
	if (opts->loopback_host && opts->url) {
		char *host = httpc_loopback_host_header(opts->url);
		if (host) {
			req->headers = httpc_append_header(req->headers, host);
			free(host);
		}
	}
	for (const char *const *h = opts->headers; h && *h; h++)
		req->headers = httpc_append_header(req->headers, *h);
	if (req->headers)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);

	req->next = client->requests;
	if (req->next)
		req->next->prev = req;
	client->requests = req;
	client->nrequests++;
	/* curl_multi_add_handle only arms the timer (through the loop), so no callback can
	 * run before this returns. */
	curl_multi_add_handle(client->multi, e);
	return req;
}

void
httpc_cancel(struct httpc_request *req)
{
	if (!req)
		return;
	httpc_unlink(req);
	if (req->finished)
		req->cancelled = true; /* httpc_check_done holds it; it frees it */
	else
		httpc_request_free(req);
}

struct event_base *
httpc_base(const struct httpc *client)
{
	return client->base;
}

size_t
httpc_in_flight(const struct httpc *client)
{
	return client->nrequests;
}

const char *
httpc_error_name(enum httpc_error error)
{
	switch (error) {
	case HTTPC_OK:
		return "ok";
	case HTTPC_ERR_CONNECT:
		return "connect";
	case HTTPC_ERR_TIMEOUT:
		return "timeout";
	case HTTPC_ERR_TOO_LARGE:
		return "too large";
	case HTTPC_ERR_TRANSPORT:
		return "transport";
	}
	return "unknown";
}
