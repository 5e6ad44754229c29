/*
 * test-api-ui.c: unit tests for src/api/api-ui.c: the files built in from web/ (every one
 * served with a content type, the page's references all embedded), which file a path
 * names, the ETag and If-None-Match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api-ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct api_ui_file *
file_named(const char *name)
{
	for (size_t i = 0; i < api_ui_nfiles; i++)
		if (strcmp(api_ui_files[i].name, name) == 0)
			return &api_ui_files[i];
	return NULL;
}

/* The embedded bytes are the files of web/, each with a type the table knows. */
static void
test_files_embedded_with_types(void **state)
{
	(void)state;
	assert_true(api_ui_nfiles >= 4);
	for (size_t i = 0; i < api_ui_nfiles; i++) {
		const struct api_ui_file *f = &api_ui_files[i];
		assert_non_null(api_ui_content_type(f->name));
		char path[512];
		snprintf(path, sizeof(path), "%s/web/%s", SOURCE_DIR, f->name);
		FILE *fp = fopen(path, "rb");
		assert_non_null(fp);
		char *disk = malloc(f->size + 1);
		size_t n = fread(disk, 1, f->size + 1, fp);
		fclose(fp);
		assert_int_equal(n, f->size);
		assert_memory_equal(disk, f->data, f->size);
		free(disk);
	}
	assert_string_equal(api_ui_content_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(api_ui_content_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(api_ui_content_type("style.css"), "text/css; charset=utf-8");
	assert_string_equal(api_ui_content_type("favicon.svg"), "image/svg+xml");
	assert_null(api_ui_content_type("notes.txt"));
}

/* Every /ui/ file index.html refers to is embedded, and nothing it loads is elsewhere. */
static void
test_index_refers_only_to_embedded_files(void **state)
{
	(void)state;
	const struct api_ui_file *index = file_named("index.html");
	assert_non_null(index);
	char *html = strndup((const char *)index->data, index->size);
	int refs = 0;
	for (const char *p = html; (p = strstr(p, "=\"")) != NULL; p += 2) {
		const char *v = p + 2;
		if (strncmp(v, "/ui/", 4) == 0) {
			size_t len = strcspn(v + 4, "\"");
			char *name = strndup(v + 4, len);
			if (file_named(name) == NULL)
				fail_msg("index.html refers to /ui/%s, which is not embedded",
					 name);
			free(name);
			refs++;
		}
		if (strncmp(v, "http:", 5) == 0 || strncmp(v, "https:", 6) == 0 ||
		    strncmp(v, "//", 2) == 0)
			fail_msg("index.html loads something from elsewhere: %.60s", v);
	}
	assert_int_equal(refs, 3); /* the icon, the style sheet, the script */
	free(html);
}

static void
test_find(void **state)
{
	(void)state;
	const struct api_ui_file *index = file_named("index.html");
	assert_ptr_equal(api_ui_find("/ui"), index);
	assert_ptr_equal(api_ui_find("/ui/"), index);
	assert_ptr_equal(api_ui_find("/ui/index.html"), index);
	assert_ptr_equal(api_ui_find("/ui/app.js"), file_named("app.js"));
	assert_null(api_ui_find("/uix"));
	assert_null(api_ui_find("/ui/nope.js"));
	assert_null(api_ui_find("/ui/../ui/app.js"));
	assert_null(api_ui_find("/ui/sub/app.js"));
	assert_null(api_ui_find("/api/ui"));
}

static void
test_etag(void **state)
{
	(void)state;
	char a[24], b[24], a2[24];
	api_ui_etag(file_named("app.js"), a, sizeof(a));
	api_ui_etag(file_named("style.css"), b, sizeof(b));
	api_ui_etag(file_named("app.js"), a2, sizeof(a2));
	assert_int_equal(strlen(a), 18);
	assert_true(a[0] == '"' && a[17] == '"');
	assert_string_equal(a, a2);
	assert_string_not_equal(a, b);

	assert_false(api_ui_etag_matches(NULL, a));
	assert_false(api_ui_etag_matches("", a));
	assert_true(api_ui_etag_matches(a, a));
	assert_true(api_ui_etag_matches("*", a));
	assert_false(api_ui_etag_matches(b, a));
	char list[80];
	snprintf(list, sizeof(list), "%s, W/%s", b, a);
	assert_true(api_ui_etag_matches(list, a));
	snprintf(list, sizeof(list), " %s ,%s", b, b);
	assert_false(api_ui_etag_matches(list, a));
	/* A prefix or an unquoted tag is not the tag. */
	char unquoted[24];
	snprintf(unquoted, sizeof(unquoted), "%.16s", a + 1);
	assert_false(api_ui_etag_matches(unquoted, a));
	assert_false(api_ui_etag_matches("\"", a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_files_embedded_with_types),
	    cmocka_unit_test(test_index_refers_only_to_embedded_files),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_etag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
