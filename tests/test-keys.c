/*
 * test-keys.c: unit tests for src/api/keys.c: the API_KEYS_FILE parser (defaults, every
 * field's checks, unknown fields, duplicates, messages that name the entry and field
 * but never a secret), the constant-time lookup, the Authorization header and the
 * model and priority rights.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "keys.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET_A "sk-alpha-0123456789abcdef"
#define SECRET_B "sk-bravo-0123456789abcdef"
#define SECRET_C "sk-alpha-0123456789abcdeg" /* differs from A in its last byte */

static struct api_keys *
parse_ok(const char *text)
{
	struct api_keys *keys = NULL;
	char *cause = NULL;
	int rc = keys_parse(text, "keys.json", &keys, &cause);
	if (rc != 0)
		fail_msg("keys_parse refused %s: %s", text, cause);
	assert_non_null(keys);
	return keys;
}

/* Parses text expecting a refusal whose message holds every one of the NULL-ended
 * fragments and never a secret; returns nothing. */
static void
parse_fails(const char *text, ...)
{
	struct api_keys *keys = (struct api_keys *)1;
	char *cause = NULL;
	int rc = keys_parse(text, "keys.json", &keys, &cause);
	if (rc == 0)
		fail_msg("keys_parse accepted %s", text);
	assert_int_equal(rc, -EINVAL);
	assert_null(keys);
	assert_non_null(cause);
	va_list ap;
	va_start(ap, text);
	for (const char *want = va_arg(ap, const char *); want != NULL;
	     want = va_arg(ap, const char *))
		if (strstr(cause, want) == NULL)
			fail_msg("message \"%s\" lacks \"%s\"", cause, want);
	va_end(ap);
	assert_null(strstr(cause, "sk-"));
	assert_non_null(strstr(cause, "keys.json"));
	free(cause);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct api_keys *keys = parse_ok("[{\"key\": \"" SECRET_A "\", \"name\": \"alpha\"}]");
	assert_int_equal(keys_count(keys), 1);
	const struct api_key *k = keys_at(keys, 0);
	assert_string_equal(k->name, "alpha");
	assert_int_equal(k->default_priority, JOB_PRIO_NORMAL);
	/* Without max_priority a key may not ask above its default. */
	assert_int_equal(k->max_priority, JOB_PRIO_NORMAL);
	assert_false(k->admin);
	assert_null(k->models);
	assert_int_equal(k->max_queued, 0);
	assert_int_equal(k->weight, 1);
	assert_null(keys_at(keys, 1));
	keys_free(keys);
}

static void
test_every_field(void **state)
{
	(void)state;
	struct api_keys *keys = parse_ok(
	    "[{\"key\": \"" SECRET_A "\", \"name\": \"alpha\", \"default_priority\": \"low\", "
	    "\"max_priority\": \"high\", \"admin\": true, \"models\": [\"llama3.2:1b\", "
	    "\"gemma\"], \"max_queued\": 7, \"weight\": 3},"
	    " {\"key\": \"" SECRET_B "\", \"name\": \"bravo\", \"max_priority\": \"low\", "
	    "\"default_priority\": \"low\"}]");
	assert_int_equal(keys_count(keys), 2);
	const struct api_key *a = keys_find_name(keys, "alpha");
	assert_ptr_equal(a, keys_at(keys, 0));
	assert_int_equal(a->default_priority, JOB_PRIO_LOW);
	assert_int_equal(a->max_priority, JOB_PRIO_HIGH);
	assert_true(a->admin);
	assert_int_equal(a->nmodels, 2);
	assert_string_equal(a->models[1], "gemma:latest"); /* normalised */
	assert_int_equal(a->max_queued, 7);
	assert_int_equal(a->weight, 3);
	const struct api_key *b = keys_find_name(keys, "bravo");
	assert_ptr_equal(b, keys_at(keys, 1));
	assert_int_equal(b->max_priority, JOB_PRIO_LOW);
	assert_null(keys_find_name(keys, "charlie"));
	keys_free(keys);
}

static void
test_refusals(void **state)
{
	(void)state;
	parse_fails("{\"key\": \"" SECRET_A "\"}", "JSON array", NULL);
	parse_fails("[]", "JSON array", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", ", "not valid JSON", NULL);
	parse_fails("[7]", "key 0 is not an object", NULL);
	parse_fails("[{\"name\": \"alpha\"}]", "key 0 (\"alpha\")", "field \"key\" is missing",
		    NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\"}]", "key 0", "field \"name\" is missing", NULL);
	parse_fails("[{\"key\": \"short\", \"name\": \"alpha\"}]", "key 0 (\"alpha\")",
		    "field \"key\"", "16 to 256", NULL);
	parse_fails("[{\"key\": \"sk-has a space-0123456\", \"name\": \"alpha\"}]", "field \"key\"",
		    "character 7", NULL);
	parse_fails("[{\"key\": 12, \"name\": \"alpha\"}]", "field \"key\" must be a string", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"\"}]", "field \"name\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"al\\npha\"}]", "field \"name\"",
		    "printable", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"default_priority\": "
		    "\"urgent\"}]",
		    "key 0 (\"a\")", "field \"default_priority\"", "\"high\", \"normal\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"max_priority\": 1}]",
		    "field \"max_priority\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"default_priority\": "
		    "\"high\", \"max_priority\": \"normal\"}]",
		    "field \"default_priority\"", "more urgent than its max_priority", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"admin\": \"yes\"}]",
		    "field \"admin\" must be true or false", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"models\": []}]",
		    "field \"models\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"models\": [\"x\", 3]}]",
		    "field \"models\"", "entry 1", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"max_queued\": 0}]",
		    "field \"max_queued\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"max_queued\": 1.5}]",
		    "field \"max_queued\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"weight\": 0}]",
		    "field \"weight\"", "1 to 1000", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"weight\": 1001}]",
		    "field \"weight\"", NULL);
	/* A typo must not pass silently. */
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"max_priorty\": \"low\"}]",
		    "key 0 (\"a\")", "unknown field \"max_priorty\"", NULL);
	/* The second entry is the one named. */
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}, {\"key\": \"" SECRET_B
		    "\", \"name\": \"b\", \"weight\": -1}]",
		    "key 1 (\"b\")", "field \"weight\"", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"key\": \"" SECRET_B "\", \"name\": \"a\"}]",
		    "not valid JSON", NULL);
	/* jansson's own message would quote the broken secret. */
	parse_fails("[{\"key\": \"sk-alpha-0123\\q456789abcdef\", \"name\": \"a\"}]",
		    "not valid JSON", NULL);
}

static void
test_duplicates(void **state)
{
	(void)state;
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}, {\"key\": \"" SECRET_B
		    "\", \"name\": \"b\"}, {\"key\": \"" SECRET_A "\", \"name\": \"c\"}]",
		    "keys 0 (\"a\") and 2 (\"c\") have the same key", NULL);
	parse_fails("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}, {\"key\": \"" SECRET_B
		    "\", \"name\": \"a\"}]",
		    "keys 0 (\"a\") and 1 (\"a\") have the same name", NULL);
	/* Keys that differ only in their last byte are two keys. */
	struct api_keys *keys = parse_ok("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}, "
					 "{\"key\": \"" SECRET_C "\", \"name\": \"c\"}]");
	keys_free(keys);
}

static void
test_lookup(void **state)
{
	(void)state;
	struct api_keys *keys = parse_ok("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}, "
					 "{\"key\": \"" SECRET_B "\", \"name\": \"b\"}, "
					 "{\"key\": \"" SECRET_C "\", \"name\": \"c\"}]");
	assert_ptr_equal(keys_lookup(keys, SECRET_A, strlen(SECRET_A)), keys_find_name(keys, "a"));
	assert_ptr_equal(keys_lookup(keys, SECRET_B, strlen(SECRET_B)), keys_find_name(keys, "b"));
	assert_ptr_equal(keys_lookup(keys, SECRET_C, strlen(SECRET_C)), keys_find_name(keys, "c"));
	/* A prefix, an extension, one byte changed, empty, too long, NULL. */
	assert_null(keys_lookup(keys, SECRET_A, strlen(SECRET_A) - 1));
	assert_null(keys_lookup(keys, SECRET_A "x", strlen(SECRET_A) + 1));
	assert_null(keys_lookup(keys, "sk-alpha-0123456789abcdeX", strlen(SECRET_A)));
	assert_null(keys_lookup(keys, "", 0));
	char big[KEYS_SECRET_MAX + 2];
	memset(big, 'x', sizeof(big));
	assert_null(keys_lookup(keys, big, sizeof(big)));
	assert_null(keys_lookup(keys, NULL, 0));
	/* A secret with a NUL inside is not the key that matches up to the NUL. */
	char nul[sizeof(SECRET_A) + 1];
	memcpy(nul, SECRET_A, sizeof(SECRET_A));
	nul[sizeof(SECRET_A)] = 'z';
	assert_null(keys_lookup(keys, nul, sizeof(nul)));
	assert_null(keys_lookup(NULL, SECRET_A, strlen(SECRET_A)));
	keys_free(keys);
}

static void
test_authenticate(void **state)
{
	(void)state;
	struct api_keys *keys = parse_ok("[{\"key\": \"" SECRET_A "\", \"name\": \"a\"}]");
	const struct api_key *key = (const struct api_key *)1;
	char *cause = NULL;
	assert_int_equal(keys_authenticate(keys, "Bearer " SECRET_A, &key, &cause), 0);
	assert_ptr_equal(key, keys_at(keys, 0));
	assert_null(cause);
	assert_int_equal(keys_authenticate(keys, "bearer " SECRET_A, &key, &cause), 0);

	static const struct {
		const char *header;
		const char *says;
	} bad[] = {
	    {NULL, "an API key is required"},	     {"", "must be \"Bearer KEY\""},
	    {SECRET_A, "must be \"Bearer KEY\""},    {"Basic " SECRET_A, "must be \"Bearer KEY\""},
	    {"Bearer", "must be \"Bearer KEY\""},    {"Bearer ", "one space"},
	    {"Bearer  " SECRET_A, "one space"},	     {"Bearer " SECRET_A " extra", "one space"},
	    {"Bearer " SECRET_B, "unknown API key"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		key = (const struct api_key *)1;
		assert_int_equal(keys_authenticate(keys, bad[i].header, &key, &cause), -EACCES);
		assert_null(key);
		if (strstr(cause, bad[i].says) == NULL)
			fail_msg("header %s: message \"%s\" lacks \"%s\"",
				 bad[i].header ? bad[i].header : "(none)", cause, bad[i].says);
		assert_null(strstr(cause, "sk-")); /* never repeats what was sent */
		free(cause);
		cause = NULL;
	}
	keys_free(keys);
}

static void
test_rights(void **state)
{
	(void)state;
	struct api_keys *keys =
	    parse_ok("[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"models\": [\"llama3.2\", "
		     "\"qwen2.5:0.5b\"], \"default_priority\": \"low\", \"max_priority\": "
		     "\"normal\"}, {\"key\": \"" SECRET_B "\", \"name\": \"b\"}]");
	const struct api_key *a = keys_at(keys, 0);
	assert_true(keys_allows_model(a, "llama3.2"));
	assert_true(keys_allows_model(a, "llama3.2:latest"));
	assert_true(keys_allows_model(a, "qwen2.5:0.5b"));
	assert_false(keys_allows_model(a, "qwen2.5"));
	assert_false(keys_allows_model(a, "gemma:2b"));
	assert_true(keys_allows_priority(a, JOB_PRIO_LOW));
	assert_true(keys_allows_priority(a, JOB_PRIO_NORMAL));
	assert_false(keys_allows_priority(a, JOB_PRIO_HIGH));
	const struct api_key *b = keys_at(keys, 1);
	assert_true(keys_allows_model(b, "anything:7b"));
	assert_false(keys_allows_priority(b, JOB_PRIO_HIGH));
	keys_free(keys);
}

static void
test_load_file(void **state)
{
	(void)state;
	char path[] = "/tmp/test-keys-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"admin\": true}]";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	struct api_keys *keys = NULL;
	char *cause = NULL;
	assert_int_equal(keys_load(path, &keys, &cause), 0);
	assert_true(keys_at(keys, 0)->admin);
	keys_free(keys);

	fd = open(path, O_WRONLY | O_TRUNC);
	const char broken[] = "[{\"key\": \"" SECRET_A "\", \"name\": \"a\", \"wieght\": 2}]";
	assert_int_equal(write(fd, broken, sizeof(broken) - 1), (ssize_t)(sizeof(broken) - 1));
	close(fd);
	assert_int_equal(keys_load(path, &keys, &cause), -EINVAL);
	assert_null(keys);
	assert_non_null(strstr(cause, path));
	assert_non_null(strstr(cause, "API_KEYS_FILE"));
	assert_non_null(strstr(cause, "\"wieght\""));
	free(cause);
	unlink(path);

	assert_int_equal(keys_load(path, &keys, &cause), -ENOENT);
	assert_non_null(strstr(cause, path));
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults), cmocka_unit_test(test_every_field),
	    cmocka_unit_test(test_refusals), cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_lookup),   cmocka_unit_test(test_authenticate),
	    cmocka_unit_test(test_rights),   cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
