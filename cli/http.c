/*
 * http.c: the blocking libcurl client behind every vramctl command, and a small
 * Server-Sent Events reader for `vramctl events`.
 *
 * Invariants: every reply body goes into a capped vd_buf, so a misbehaving server
 * cannot make vramctl allocate without bound; proxies from the environment are ignored
 * (vramd is a local service); transport failures come back as -ECONNREFUSED with
 * curl's own explanation so the caller can say "cannot reach vramd".
 * Callers: vramctl.c (ctl_api) and cmd-events.c.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define CTL_HTTP_CONNECT_TIMEOUT_S 10L
#define CTL_HTTP_MAX_EVENT	   (1u << 20)

struct http_transfer {
	struct vd_buf body;
	long retry_after;
	bool too_big;
};

void
ctl_http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
ctl_http_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t
http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_transfer *t = arg;
	size_t len = size * nmemb;
	if (vd_buf_append(&t->body, data, len) != 0) {
		t->too_big = true;
		return 0;
	}
	return len;
}

static size_t
http_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct http_transfer *t = arg;
	size_t len = size * nitems;
	static const char name[] = "retry-after:";
	if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char value[32];
		size_t n = len - (sizeof(name) - 1);
		if (n >= sizeof(value))
			n = sizeof(value) - 1;
		memcpy(value, data + sizeof(name) - 1, n);
		value[n] = '\0';
		char *end;
		long v = strtol(value, &end, 10);
		if (end != value && v >= 0)
			t->retry_after = v;
	}
	return len;
}

/* Applies the options every vramctl transfer shares. */
static void
http_setup(CURL *curl, const char *url, char *errbuf)
{
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CTL_HTTP_CONNECT_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "vramctl/0.1");
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	errbuf[0] = '\0';
}

/* Adds "Authorization: Bearer KEY" when there is a key (vramd's API_KEYS_FILE). */
static struct curl_slist *
http_add_api_key(struct curl_slist *headers, const char *api_key)
{
	if (api_key == NULL)
		return headers;
	char *line = xasprintf("Authorization: Bearer %s", api_key);
	headers = curl_slist_append(headers, line);
	explicit_bzero(line, strlen(line));
	free(line);
	return headers;
}

static const char *
http_error_text(CURLcode rc, const char *errbuf)
{
	return errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
}

int
ctl_http_request(const char *method, const char *url, const char *body, const char *api_key,
		 long timeout_s, struct ctl_http_reply *reply, char **cause)
{
	struct http_transfer t = {.retry_after = -1};
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE];
	int rc = 0;

	memset(reply, 0, sizeof(*reply));
	reply->retry_after = -1;
	vd_buf_init(&t.body, CTL_HTTP_MAX_REPLY);

	CURL *curl = curl_easy_init();
	if (curl == NULL) {
		rc = vd_fail(cause, -ENOMEM, "cannot initialise libcurl");
		goto out_buf;
	}
	http_setup(curl, url, errbuf);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	if (body != NULL) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = http_add_api_key(headers, api_key);
	/* No "Expect: 100-continue" round trip for larger bodies. */
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	if (timeout_s > 0)
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);

	CURLcode crc = curl_easy_perform(curl);
	if (t.too_big) {
		rc = vd_fail(cause, -E2BIG, "reply is larger than %u bytes", CTL_HTTP_MAX_REPLY);
		goto out_curl;
	}
	if (crc != CURLE_OK) {
		rc = vd_fail(cause, -ECONNREFUSED, "%s", http_error_text(crc, errbuf));
		goto out_curl;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
	reply->body_len = t.body.len;
	reply->body = vd_buf_take(&t.body);
	reply->retry_after = t.retry_after;

out_curl:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
out_buf:
	vd_buf_cleanup(&t.body);
	return rc;
}

void
ctl_http_reply_cleanup(struct ctl_http_reply *reply)
{
	vd_free(reply->body);
	reply->body_len = 0;
	reply->status = 0;
}

/* State of one event stream: bytes not yet split into lines, the event being built,
 * and (for an error status) the reply body. */
struct http_sse {
	CURL *curl;
	ctl_http_sse_cb *cb;
	void *arg;
	struct vd_buf line;
	struct vd_buf event;
	struct vd_buf data;
	struct vd_buf error_body;
	bool has_data;
	bool stopped;
	bool too_big;
};

/* Handles one complete line of the stream (without its line ending). Returns false
 * to stop. */
static bool
http_sse_line(struct http_sse *s, const char *line)
{
	if (*line == '\0') {
		bool go_on = true;
		if (s->has_data) {
			const char *ev = s->event.len > 0 ? vd_buf_str(&s->event) : "message";
			go_on = s->cb(ev, vd_buf_str(&s->data), s->arg);
		}
		vd_buf_reset(&s->event);
		vd_buf_reset(&s->data);
		s->has_data = false;
		return go_on;
	}
	if (*line == ':')
		return true; /* a comment, such as the heartbeat */
	const char *colon = strchr(line, ':');
	size_t name_len = colon != NULL ? (size_t)(colon - line) : strlen(line);
	const char *value = colon != NULL ? colon + 1 : "";
	if (*value == ' ')
		value++;
	int rc = 0;
	if (name_len == 5 && strncmp(line, "event", 5) == 0) {
		vd_buf_reset(&s->event);
		rc = vd_buf_append_str(&s->event, value);
	} else if (name_len == 4 && strncmp(line, "data", 4) == 0) {
		if (s->has_data)
			rc = vd_buf_append_str(&s->data, "\n");
		if (rc == 0)
			rc = vd_buf_append_str(&s->data, value);
		s->has_data = true;
	}
	if (rc != 0) {
		s->too_big = true;
		return false;
	}
	return true;
}

static size_t
http_sse_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_sse *s = arg;
	size_t len = size * nmemb;
	long status = 0;

	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		if (vd_buf_append(&s->error_body, data, len) != 0)
			return 0;
		return len;
	}
	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (c != '\n') {
			if (vd_buf_append(&s->line, &c, 1) != 0) {
				s->too_big = true;
				return 0;
			}
			continue;
		}
		if (s->line.len > 0 && s->line.data[s->line.len - 1] == '\r')
			s->line.data[--s->line.len] = '\0';
		bool go_on = http_sse_line(s, vd_buf_str(&s->line));
		vd_buf_reset(&s->line);
		if (!go_on) {
			s->stopped = !s->too_big;
			return 0;
		}
	}
	return len;
}

int
ctl_http_sse(const char *url, const char *api_key, ctl_http_sse_cb *cb, void *arg, long *status,
	     char **cause)
{
	struct http_sse s = {.cb = cb, .arg = arg};
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE];
	int rc = 0;

	*status = 0;
	vd_buf_init(&s.line, CTL_HTTP_MAX_EVENT);
	vd_buf_init(&s.event, 256);
	vd_buf_init(&s.data, CTL_HTTP_MAX_EVENT);
	vd_buf_init(&s.error_body, 1u << 20);
	s.curl = curl_easy_init();
	if (s.curl == NULL) {
		rc = vd_fail(cause, -ENOMEM, "cannot initialise libcurl");
		goto out;
	}
	http_setup(s.curl, url, errbuf);
	headers = curl_slist_append(headers, "Accept: text/event-stream");
	headers = http_add_api_key(headers, api_key);
	curl_easy_setopt(s.curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(s.curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, http_sse_write_cb);
	curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);

	CURLcode crc = curl_easy_perform(s.curl);
	curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, status);
	if (s.stopped)
		goto out;
	if (s.too_big) {
		rc = vd_fail(cause, -E2BIG, "an event is larger than %u bytes", CTL_HTTP_MAX_EVENT);
		goto out;
	}
	if (crc != CURLE_OK && *status == 0) {
		rc = vd_fail(cause, -ECONNREFUSED, "%s", http_error_text(crc, errbuf));
		goto out;
	}
	if (*status != 200) {
		rc = vd_fail(cause, -EPROTO, "%s", vd_buf_str(&s.error_body));
		goto out;
	}
	if (crc != CURLE_OK)
		rc =
		    vd_fail(cause, -ECONNREFUSED, "stream ended: %s", http_error_text(crc, errbuf));
out:
	curl_slist_free_all(headers);
	if (s.curl != NULL)
		curl_easy_cleanup(s.curl);
	vd_buf_cleanup(&s.line);
	vd_buf_cleanup(&s.event);
	vd_buf_cleanup(&s.data);
	vd_buf_cleanup(&s.error_body);
	return rc;
}

char *
ctl_http_escape(const char *s)
{
	char *escaped = curl_easy_escape(NULL, s, 0);
	if (escaped == NULL)
		return xstrdup("");
	char *copy = xstrdup(escaped);
	curl_free(escaped);
	return copy;
}
