/*
 * api-ui.c: the live dashboard at GET /ui (docs/dashboard.md) and GET /api/whoami, which
 * the page asks who it is talking as.
 *
 * The page is web/index.html, app.js, style.css and favicon.svg, built into the binary
 * (api-ui.h), so it is always the page of this vramd and works offline. It holds no
 * data: every figure comes from the API in the browser, with the user's API key when
 * there are keys, so /ui is public and the API's own rules decide what the page sees.
 * Every reply carries a Content-Security-Policy that lets the page load nothing but its
 * own files and call nothing but this daemon, and an ETag with "Cache-Control: no-cache",
 * so a browser revalidates (304) and never runs the page of an older vramd.
 */
#include "api.h"
#include "api-ui.h"

#include "daemon.h"
#include "http-util.h"
#include "keys.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nothing from elsewhere: scripts, styles, images and connections to this origin only,
 * no inline script or style, no plugins, no framing, no forms posting anywhere. */
#define API_UI_CSP                                                                                 \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct {
	const char *extension;
	const char *type;
} api_ui_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
};

const char *
api_ui_content_type(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(api_ui_types); i++)
		if (vd_str_has_suffix(name, api_ui_types[i].extension))
			return api_ui_types[i].type;
	return NULL;
}

const struct api_ui_file *
api_ui_find(const char *path)
{
	const char *name;
	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
		name = "index.html";
	else if (vd_str_has_prefix(path, "/ui/"))
		name = path + strlen("/ui/");
	else
		return NULL;
	for (size_t i = 0; i < api_ui_nfiles; i++)
		if (strcmp(api_ui_files[i].name, name) == 0)
			return &api_ui_files[i];
	return NULL;
}

void
api_ui_etag(const struct api_ui_file *file, char *out, size_t size)
{
	/* FNV-1a: the files are small and static, and an ETag only needs to change when
	 * they do. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < file->size; i++) {
		h ^= file->data[i];
		h *= 0x100000001b3ull;
	}
	snprintf(out, size, "\"%016" PRIx64 "\"", h);
}

bool
api_ui_etag_matches(const char *if_none_match, const char *etag)
{
	if (if_none_match == NULL)
		return false;
	size_t etag_len = strlen(etag);
	for (const char *p = if_none_match; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p + strcspn(p, ",");
		size_t len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 1 && *p == '*')
			return true;
		const char *tag = p;
		if (len >= 2 && strncmp(tag, "W/", 2) == 0) {
			tag += 2;
			len -= 2;
		}
		if (len == etag_len && len > 0 && memcmp(tag, etag, len) == 0)
			return true;
		p = end;
	}
	return false;
}

void
api_ui(struct vd_http_req *req, const char *path, void *arg)
{
	(void)arg;
	const struct api_ui_file *file = api_ui_find(path);
	if (file == NULL) {
		vd_http_reply_error(req, 404,
				    "no such dashboard file: %s (the dashboard is at /ui)", path);
		return;
	}
	char etag[24];
	api_ui_etag(file, etag, sizeof(etag));
	vd_http_req_set_header(req, "Content-Security-Policy", API_UI_CSP);
	vd_http_req_set_header(req, "X-Content-Type-Options", "nosniff");
	vd_http_req_set_header(req, "Referrer-Policy", "no-referrer");
	vd_http_req_set_header(req, "Cache-Control", "no-cache");
	vd_http_req_set_header(req, "ETag", etag);
	if (api_ui_etag_matches(vd_http_req_header(req, "If-None-Match"), etag)) {
		vd_http_req_reply(req, 304, NULL, 0);
		return;
	}
	/* Every embedded file has a type: test-api-ui checks the table against them. */
	const char *type = api_ui_content_type(file->name);
	vd_http_req_set_header(req, "Content-Type",
			       type != NULL ? type : "application/octet-stream");
	vd_http_req_reply(req, 200, file->data, file->size);
}

void
api_whoami(struct vd_http_req *req, const char *path, void *arg)
{
	(void)path;
	struct daemon *d = arg;
	/* Public, so a page can learn that it needs a key without a 401 in its console;
	 * it checks the key like the router does and says no more than a 401 would. */
	if (d->keys == NULL) {
		vd_http_reply_json(
		    req, 200,
		    json_pack("{s:b,s:n,s:b,s:n}", "api_keys", 0, "key", "admin", 1, "error"));
		return;
	}
	const struct api_key *key = NULL;
	char *cause = NULL;
	if (keys_authenticate(d->keys, vd_http_req_header(req, "Authorization"), &key, &cause) <
	    0) {
		vd_http_reply_json(req, 200,
				   json_pack("{s:b,s:n,s:b,s:s}", "api_keys", 1, "key", "admin", 0,
					     "error", cause));
		free(cause);
		return;
	}
	vd_http_reply_json(req, 200,
			   json_pack("{s:b,s:s,s:b,s:n}", "api_keys", 1, "key", key->name, "admin",
				     key->admin ? 1 : 0, "error"));
}
