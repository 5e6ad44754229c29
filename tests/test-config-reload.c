/*
 * test-config-reload.c: unit tests for the service side of src/config.c: the installed
 * vramd.conf (every key at its default), SIGHUP reloads (config_reload_file: run-time
 * keys applied, the others reported, flags still winning, a bad file changing nothing)
 * and run-time changes kept in the data directory (config_persist_save / _load, applied
 * after the file, the environment and the flags).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *empty_env[] = {NULL};

static void
put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *
temp_dir(void)
{
	char tmpl[] = "/tmp/vramd-test-reload-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void
remove_dir(char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

/* A config loaded as vramd --config DIR/vramd.conf --data-dir DIR [extra flag value]. */
static struct config *
load_in(const char *dir, char **env, const char *flag, const char *value)
{
	char *conf = xasprintf("%s/vramd.conf", dir);
	char *argv[] = {"vramd",     "--config",   conf,	  "--data-dir",
			(char *)dir, (char *)flag, (char *)value, NULL};
	int argc = flag != NULL ? 7 : 5;
	struct config *cfg = config_new();
	bool help = false, version = false;
	char *cause = NULL;
	int rc = config_load(cfg, argc, argv, env, &help, &version, &cause);
	if (rc < 0)
		fail_msg("config_load: %s", cause);
	free(conf);
	return cfg;
}

static void
reload_ok(struct config *cfg, json_t **changed, json_t **restart)
{
	char *cause = NULL;
	int rc = config_reload_file(cfg, changed, restart, &cause);
	if (rc < 0)
		fail_msg("config_reload_file: %s", cause);
}

/* Uncommenting every "#KEY = default" line of the installed file gives the defaults:
 * the file is valid and says what vramd does without it. */
static void
test_conf_lists_every_default(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	config_print_conf(out);
	fclose(out);
	size_t keys = 0;
	for (char *p = text; (p = strstr(p, "\n#")) != NULL; p++)
		if (p[2] >= 'A' && p[2] <= 'Z' && strstr(p, " =") != NULL &&
		    strstr(p, " =") < strchr(p + 1, '\n')) {
			p[1] = ' ';
			keys++;
		}
	assert_int_equal(keys, CONFIG_NKEYS);
	struct config *from_file = config_new(), *defaults = config_new();
	char *cause = NULL;
	if (config_load_text(from_file, text, "vramd.conf", &cause) < 0)
		fail_msg("the installed vramd.conf does not load: %s", cause);
	json_t *a = config_to_json(from_file, false), *b = config_to_json(defaults, false);
	assert_true(json_equal(a, b));
	for (int k = 0; k < CONFIG_NKEYS; k++) /* every key was read from the file */
		assert_int_equal(config_source_of(from_file, (enum config_key)k), CONFIG_SRC_FILE);
	json_decref(a);
	json_decref(b);
	config_free(from_file);
	config_free(defaults);
	free(text);
}

/* The man page has one entry per key, and nothing roff would take as a request. */
static void
test_man_lists_every_key(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	config_print_man(out);
	fclose(out);
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		char *entry = xasprintf(".TP\n.B %s\n", config_def((enum config_key)k)->name);
		assert_non_null(strstr(text, entry));
		free(entry);
	}
	assert_null(strstr(text, "\n--"));
	free(text);
}

static void
test_reload_applies_runtime_keys_only(void **state)
{
	(void)state;
	char *dir = temp_dir();
	char *conf = xasprintf("%s/vramd.conf", dir);
	put_file(conf, "MODEL_KEEP_ALIVE = 100\nQUEUE_MAX_SIZE = 10\n");
	struct config *cfg = load_in(dir, empty_env, NULL, NULL);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 100);

	put_file(conf, "MODEL_KEEP_ALIVE = 200\nQUEUE_MAX_SIZE = 20\n");
	json_t *changed, *restart;
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(json_object_size(changed), 1);
	assert_int_equal(json_integer_value(json_object_get(changed, "MODEL_KEEP_ALIVE")), 200);
	assert_int_equal(json_array_size(restart), 1);
	assert_string_equal(json_string_value(json_array_get(restart, 0)), "QUEUE_MAX_SIZE");
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 200);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 10); /* needs a restart */
	json_decref(changed);
	json_decref(restart);

	/* Nothing new: nothing applied, the restart still pending is said again. */
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(json_object_size(changed), 0);
	assert_int_equal(json_array_size(restart), 1);
	json_decref(changed);
	json_decref(restart);

	/* A key removed from the file goes back to its default. */
	put_file(conf, "QUEUE_MAX_SIZE = 10\n");
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(json_integer_value(json_object_get(changed, "MODEL_KEEP_ALIVE")), 300);
	assert_int_equal(json_array_size(restart), 0); /* back to the running value */
	assert_int_equal(config_source_of(cfg, CONFIG_MODEL_KEEP_ALIVE), CONFIG_SRC_DEFAULT);
	json_decref(changed);
	json_decref(restart);
	config_free(cfg);
	free(conf);
	remove_dir(dir);
}

static void
test_reload_bad_file_changes_nothing(void **state)
{
	(void)state;
	char *dir = temp_dir();
	char *conf = xasprintf("%s/vramd.conf", dir);
	put_file(conf, "MODEL_KEEP_ALIVE = 100\n");
	struct config *cfg = load_in(dir, empty_env, NULL, NULL);
	const char *bad[] = {
	    "MODEL_KEEP_ALIVE = 200\nNO_SUCH_KEY = 1\n", "MODEL_KEEP_ALIVE = -5\n",
	    "TEMP_NORMAL_C = 90\n", /* above TEMP_THROTTLED_C: out of order */
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		put_file(conf, bad[i]);
		json_t *changed = NULL, *restart = NULL;
		char *cause = NULL;
		assert_int_equal(config_reload_file(cfg, &changed, &restart, &cause), -EINVAL);
		assert_non_null(cause);
		assert_null(changed);
		free(cause);
		assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 100);
		assert_int_equal(config_int(cfg, CONFIG_TEMP_NORMAL_C), 65);
	}
	/* A file gone is an error too (the service's file was moved away). */
	unlink(conf);
	json_t *changed = NULL, *restart = NULL;
	char *cause = NULL;
	assert_int_equal(config_reload_file(cfg, &changed, &restart, &cause), -ENOENT);
	assert_non_null(strstr(cause, "vramd.conf"));
	free(cause);
	config_free(cfg);
	free(conf);
	remove_dir(dir);
}

/* A flag or the environment still wins over the file after a reload; a run-time change
 * survives a reload that does not touch its key and gives way to one that does. */
static void
test_reload_layers(void **state)
{
	(void)state;
	char *dir = temp_dir();
	char *conf = xasprintf("%s/vramd.conf", dir);
	put_file(conf, "MODEL_KEEP_ALIVE = 100\nMAX_BATCH_WAIT = 10\nMIN_SWAP_BATCH = 3\n");
	char *env[] = {"VRAMD_MIN_SWAP_BATCH=4", NULL};
	struct config *cfg = load_in(dir, env, "--keep-alive", "50");
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 50);
	assert_int_equal(config_int(cfg, CONFIG_MIN_SWAP_BATCH), 4);

	json_t *put = json_pack("{s:i}", "MAX_BATCH_WAIT", 5);
	char *cause = NULL;
	assert_int_equal(config_set_many(cfg, put, NULL, &cause), 0);
	json_decref(put);

	put_file(conf, "MODEL_KEEP_ALIVE = 200\nMAX_BATCH_WAIT = 10\nMIN_SWAP_BATCH = 9\n");
	json_t *changed, *restart;
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(json_object_size(changed), 0);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 50); /* the flag */
	assert_int_equal(config_int(cfg, CONFIG_MIN_SWAP_BATCH), 4);	/* the environment */
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 5);	/* untouched: run-time */
	assert_int_equal(config_source_of(cfg, CONFIG_MAX_BATCH_WAIT), CONFIG_SRC_RUNTIME);
	json_decref(changed);
	json_decref(restart);

	put_file(conf, "MODEL_KEEP_ALIVE = 200\nMAX_BATCH_WAIT = 20\n");
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(json_object_size(changed), 1);
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 20); /* the file's newer word */
	assert_int_equal(config_source_of(cfg, CONFIG_MAX_BATCH_WAIT), CONFIG_SRC_FILE);
	json_decref(changed);
	json_decref(restart);
	config_free(cfg);
	free(conf);
	remove_dir(dir);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *buf = xcalloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_persist_round_trip(void **state)
{
	(void)state;
	char *dir = temp_dir();
	char *conf = xasprintf("%s/vramd.conf", dir);
	put_file(conf, "MODEL_KEEP_ALIVE = 100\nTEMP_CRITICAL_C = 88\n");
	char *env[] = {"VRAMD_MAX_BATCH_WAIT=7", NULL};
	struct config *cfg = load_in(dir, env, "--hysteresis", "4");

	/* Nothing saved yet: no file, no error, nothing changes. */
	json_t *skipped = NULL;
	char *cause = NULL;
	assert_int_equal(config_persist_load(cfg, &skipped, &cause), 0);
	assert_int_equal(json_array_size(skipped), 0);
	json_decref(skipped);

	json_t *put = json_pack("{s:i, s:i, s:i, s:f}", "MODEL_KEEP_ALIVE", 111, "MAX_BATCH_WAIT",
				12, "HYSTERESIS_C", 6, "SPEED_NORMAL", 0.75);
	assert_int_equal(config_set_many(cfg, put, NULL, &cause), 0);
	json_decref(put);
	assert_int_equal(config_persist_save(cfg, &cause), 0);
	char *path = config_persist_path(cfg);
	char *text = read_all(path);
	assert_non_null(text);
	json_t *doc = json_loads(text, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(doc, "version")), 1);
	json_t *keys = json_object_get(doc, "config");
	assert_int_equal(json_object_size(keys), 4); /* only the run-time changes */
	assert_string_equal(json_string_value(json_object_get(keys, "MODEL_KEEP_ALIVE")), "111");
	json_decref(doc);
	free(text);
	char *tmp_path = xasprintf("%s.tmp", path);
	assert_int_equal(access(tmp_path, F_OK), -1); /* renamed into place */
	free(tmp_path);
	config_free(cfg);

	/* A new start: the file, environment and flags say otherwise; the kept changes win. */
	cfg = load_in(dir, env, "--hysteresis", "4");
	assert_int_equal(config_int(cfg, CONFIG_HYSTERESIS_C), 4);
	assert_int_equal(config_persist_load(cfg, &skipped, &cause), 0);
	assert_int_equal(json_array_size(skipped), 0);
	json_decref(skipped);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 111);
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 12);
	assert_int_equal(config_int(cfg, CONFIG_HYSTERESIS_C), 6);
	assert_true(config_double(cfg, CONFIG_SPEED_NORMAL) == 0.75);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_CRITICAL_C), 88); /* the file's, untouched */
	assert_int_equal(config_source_of(cfg, CONFIG_MODEL_KEEP_ALIVE), CONFIG_SRC_RUNTIME);

	/* The file changes one of them, SIGHUP: the file wins and the next save drops it. */
	put_file(conf, "MODEL_KEEP_ALIVE = 222\nTEMP_CRITICAL_C = 88\n");
	json_t *changed, *restart;
	reload_ok(cfg, &changed, &restart);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 222);
	json_decref(changed);
	json_decref(restart);
	assert_int_equal(config_persist_save(cfg, &cause), 0);
	text = read_all(path);
	doc = json_loads(text, 0, NULL);
	keys = json_object_get(doc, "config");
	assert_int_equal(json_object_size(keys), 3);
	assert_null(json_object_get(keys, "MODEL_KEEP_ALIVE"));
	json_decref(doc);
	free(text);
	config_free(cfg);
	free(path);
	free(conf);
	remove_dir(dir);
}

/* Entries a newer or older vramd wrote are skipped one by one; a file that is not ours
 * or thresholds out of order change nothing. */
static void
test_persist_bad_files(void **state)
{
	(void)state;
	char *dir = temp_dir();
	char *conf = xasprintf("%s/vramd.conf", dir);
	put_file(conf, "");
	struct config *cfg = load_in(dir, empty_env, NULL, NULL);
	char *path = config_persist_path(cfg);
	json_t *skipped = NULL;
	char *cause = NULL;

	put_file(path, "{\"version\": 1, \"config\": {\"MODEL_KEEP_ALIVE\": \"42\", "
		       "\"QUEUE_MAX_SIZE\": \"5\", \"NO_SUCH_KEY\": \"1\", "
		       "\"MAX_BATCH_WAIT\": \"-3\", \"MIN_SWAP_BATCH\": 4}}");
	assert_int_equal(config_persist_load(cfg, &skipped, &cause), 0);
	assert_int_equal(json_array_size(skipped), 4);
	json_decref(skipped);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 42);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 1000); /* not run-time */
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 30);

	const char *bad[] = {
	    "not json",
	    "{\"version\": 2, \"config\": {}}",
	    "{\"version\": 1, \"config\": {\"TEMP_NORMAL_C\": \"95\"}}",
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		put_file(path, bad[i]);
		assert_int_equal(config_persist_load(cfg, &skipped, &cause), -EINVAL);
		assert_non_null(strstr(cause, CONFIG_PERSIST_FILE));
		vd_free(cause);
		json_decref(skipped);
		assert_int_equal(config_int(cfg, CONFIG_TEMP_NORMAL_C), 65);
		assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 42);
	}
	config_free(cfg);
	free(path);
	free(conf);
	remove_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conf_lists_every_default),
	    cmocka_unit_test(test_man_lists_every_key),
	    cmocka_unit_test(test_reload_applies_runtime_keys_only),
	    cmocka_unit_test(test_reload_bad_file_changes_nothing),
	    cmocka_unit_test(test_reload_layers),
	    cmocka_unit_test(test_persist_round_trip),
	    cmocka_unit_test(test_persist_bad_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
