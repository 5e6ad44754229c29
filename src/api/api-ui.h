/*
 * api-ui.h: the dashboard's files, built into vramd from web/ by cmake/embed-web.cmake
 * (the generated api-ui-files.c defines the table), and the pure rules api-ui.c serves
 * them by: which file a path names, its content type, its ETag.
 */
#ifndef VRAMD_API_UI_H
#define VRAMD_API_UI_H

#include <stdbool.h>
#include <stddef.h>

struct api_ui_file {
	const char *name;	   /* "app.js": its name in web/, and under /ui/ */
	const unsigned char *data; /* its bytes, static */
	size_t size;
};

/* Every file of web/ the build embeds (src/CMakeLists.txt VRAMD_WEB_FILES). */
extern const struct api_ui_file api_ui_files[];
extern const size_t api_ui_nfiles;

/* The file a request path names: "/ui" and "/ui/" name index.html, "/ui/NAME" the file
 * NAME. NULL for anything else (a name not embedded, "/uix", a subfolder). */
const struct api_ui_file *api_ui_find(const char *path);

/* The Content-Type of a file by its extension (with charset for text), or NULL when the
 * table does not know the extension. Static. */
const char *api_ui_content_type(const char *name);

/* The strong ETag of a file's bytes ("\"" 16 hex digits "\"") into out; size >= 19. */
void api_ui_etag(const struct api_ui_file *file, char *out, size_t size);

/* Whether an If-None-Match value (NULL: absent) names etag: "*", or a comma-separated
 * list in which it appears (a weak W/ form matches too, as RFC 9110 asks for GET). */
bool api_ui_etag_matches(const char *if_none_match, const char *etag);

#endif
