/*
 * test-config.c: unit tests for src/config.c: defaults, precedence (flag > environment >
 * file), validation messages that name the key, the source and the range, unknown
 * keys and flags, runtime changes that are all-or-nothing, and the help text and
 * docs/configuration.md listing every key of the table.
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
#include <sys/stat.h>
#include <unistd.h>

static char *empty_env[] = {NULL};

/* Loads argv (NULL-terminated) and env into a fresh config; returns rc, *cause set. */
static int
load(struct config **cfg, char **argv, char **env, char **cause)
{
	int argc = 0;
	while (argv[argc] != NULL)
		argc++;
	*cfg = config_new();
	bool help = false, version = false;
	return config_load(*cfg, argc, argv, env, &help, &version, cause);
}

static char *
write_file(const char *text)
{
	char tmpl[] = "/tmp/vramd-test-config-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return xstrdup(tmpl);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BASE_URL), "http://127.0.0.1:11434");
	assert_string_equal(config_str(cfg, CONFIG_LISTEN), "127.0.0.1:5001");
	assert_string_equal(config_str(cfg, CONFIG_DATA_DIR), "./vramd-data");
	assert_int_equal(config_int(cfg, CONFIG_VRAM_SAFETY_MARGIN_MB), 1024);
	assert_true(config_double(cfg, CONFIG_VRAM_ESTIMATION_MULTIPLIER) == 1.3);
	assert_int_equal(config_int(cfg, CONFIG_SCHEDULER_LOOP_INTERVAL), 100);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 300);
	assert_int_equal(config_int(cfg, CONFIG_MAX_CONCURRENT_PER_MODEL), 1);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 1000);
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 30);
	assert_true(config_size(cfg, CONFIG_MAX_BODY_BYTES) == 8 * VD_MIB);
	assert_false(config_bool(cfg, CONFIG_ALLOW_CPU));
	assert_string_equal(config_str(cfg, CONFIG_SYNC), "full");
	assert_string_equal(config_str(cfg, CONFIG_GPU_SOURCE), "auto");
	assert_int_equal(config_int(cfg, CONFIG_TEMP_CRITICAL_C), 85);
	assert_true(config_double(cfg, CONFIG_SPEED_THROTTLED) == 0.5);
	assert_int_equal(config_int(cfg, CONFIG_GPU_HISTORY_LENGTH), 200);
	assert_int_equal(config_source_of(cfg, CONFIG_LISTEN), CONFIG_SRC_DEFAULT);
	config_free(cfg);
}

static void
test_precedence(void **state)
{
	(void)state;
	char *path = write_file("# a comment\n"
				"QUEUE_MAX_SIZE = 10\n"
				"\n"
				"MAX_BATCH_WAIT = 5   # trailing comment\n"
				"MODEL_KEEP_ALIVE = 7\n"
				"listen = \"0.0.0.0:6000\"\n");
	char *argv[] = {"vramd", "--config", path, "--queue-max-size=30", "--allow-cpu", NULL};
	char *env[] = {"VRAMD_QUEUE_MAX_SIZE=20", "MAX_BATCH_WAIT=6",
		       "OLLAMA_BASE_URL=http://gpu-box:11434", "UNRELATED=1", NULL};
	struct config *cfg;
	char *cause = NULL;
	int rc = load(&cfg, argv, env, &cause);
	if (rc != 0)
		fail_msg("%s", cause);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 30); /* flag wins */
	assert_int_equal(config_source_of(cfg, CONFIG_QUEUE_MAX_SIZE), CONFIG_SRC_FLAG);
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 6); /* env over file */
	assert_int_equal(config_source_of(cfg, CONFIG_MAX_BATCH_WAIT), CONFIG_SRC_ENV);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 7); /* file over default */
	assert_int_equal(config_source_of(cfg, CONFIG_MODEL_KEEP_ALIVE), CONFIG_SRC_FILE);
	assert_string_equal(config_str(cfg, CONFIG_LISTEN), "0.0.0.0:6000");
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BASE_URL), "http://gpu-box:11434");
	assert_true(config_bool(cfg, CONFIG_ALLOW_CPU));
	config_free(cfg);

	/* VRAMD_<KEY> wins over the bare alias; "--flag value" form; bool with a value. */
	char *argv2[] = {"vramd", "--ollama", "http://flag:1", "--allow-cpu", "false", NULL};
	char *env2[] = {"VRAMD_MAX_BATCH_WAIT=8", "MAX_BATCH_WAIT=9", NULL};
	rc = load(&cfg, argv2, env2, &cause);
	if (rc != 0)
		fail_msg("%s", cause);
	assert_int_equal(config_int(cfg, CONFIG_MAX_BATCH_WAIT), 8);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BASE_URL), "http://flag:1");
	assert_false(config_bool(cfg, CONFIG_ALLOW_CPU));
	config_free(cfg);
	unlink(path);
	free(path);
}

/* Loads expecting failure; checks every needle is in the message. */
static void
expect_error(char **argv, char **env, const char *needles[])
{
	struct config *cfg;
	char *cause = NULL;
	assert_int_equal(load(&cfg, argv, env, &cause), -EINVAL);
	assert_non_null(cause);
	for (int i = 0; needles[i] != NULL; i++)
		if (strstr(cause, needles[i]) == NULL)
			fail_msg("\"%s\" not in \"%s\"", needles[i], cause);
	/* A failed load changes nothing. */
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 1000);
	free(cause);
	config_free(cfg);
}

static void
test_validation_messages(void **state)
{
	(void)state;
	expect_error((char *[]){"vramd", "--queue-max-size", "lots", "--keep-alive=1", NULL},
		     empty_env,
		     (const char *[]){"QUEUE_MAX_SIZE", "flag --queue-max-size", "\"lots\"",
				      "not an integer", "1 to 10000000", NULL});
	expect_error((char *[]){"vramd", NULL}, (char *[]){"VRAMD_QUEUE_MAX_SIZE=0", NULL},
		     (const char *[]){"QUEUE_MAX_SIZE", "environment VRAMD_QUEUE_MAX_SIZE",
				      "out of range", NULL});
	expect_error(
	    (char *[]){"vramd", NULL}, (char *[]){"VRAM_ESTIMATION_MULTIPLIER=abc", NULL},
	    (const char *[]){"VRAM_ESTIMATION_MULTIPLIER", "not a number", "0.1 to 10", NULL});
	expect_error((char *[]){"vramd", "--gpu-source", "cuda", NULL}, empty_env,
		     (const char *[]){"GPU_SOURCE", "auto|nvml|nvidia-smi|none", NULL});
	expect_error((char *[]){"vramd", "--max-body-bytes", "12 parsecs", NULL}, empty_env,
		     (const char *[]){"MAX_BODY_BYTES", "not a size", NULL});
	expect_error((char *[]){"vramd", "--allow-cpu=maybe", NULL}, empty_env,
		     (const char *[]){"ALLOW_CPU", "true or false", NULL});
	expect_error((char *[]){"vramd", "--no-such-flag", NULL}, empty_env,
		     (const char *[]){"unknown option --no-such-flag", NULL});
	expect_error((char *[]){"vramd", "--listen", NULL}, empty_env,
		     (const char *[]){"--listen needs a value", NULL});
	expect_error((char *[]){"vramd", "stray", NULL}, empty_env,
		     (const char *[]){"stray", NULL});
	/* Ordered thresholds. */
	expect_error((char *[]){"vramd", "--temp-throttled", "90", NULL}, empty_env,
		     (const char *[]){"TEMP_THROTTLED_C", "TEMP_CRITICAL_C", NULL});
	expect_error((char *[]){"vramd", "--speed-normal", "1", "--speed-optimal", "0.9", NULL},
		     empty_env, (const char *[]){"SPEED_NORMAL", "SPEED_OPTIMAL", NULL});
}

static void
test_file_errors(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	char *cause = NULL;
	assert_int_equal(
	    config_load_text(cfg, "QUEUE_MAX_SIZE = 5\nBOGUS_KEY = 1\n", "my.conf", &cause),
	    -EINVAL);
	assert_non_null(strstr(cause, "my.conf:2"));
	assert_non_null(strstr(cause, "BOGUS_KEY"));
	vd_free(cause);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 1000); /* all or nothing */

	assert_int_equal(config_load_text(cfg, "\n\nMAX_BATCH_WAIT = 1.5\n", "f", &cause), -EINVAL);
	assert_non_null(strstr(cause, "f:3"));
	assert_non_null(strstr(cause, "MAX_BATCH_WAIT"));
	assert_non_null(strstr(cause, "not a whole number of seconds"));
	vd_free(cause);

	assert_int_equal(config_load_text(cfg, "just some words\n", "f", &cause), -EINVAL);
	assert_non_null(strstr(cause, "KEY = value"));
	vd_free(cause);

	assert_true(config_load_file(cfg, "/nonexistent/vramd.conf", &cause) < 0);
	assert_non_null(strstr(cause, "/nonexistent/vramd.conf"));
	vd_free(cause);

	/* --config naming a missing file fails the load. */
	char *argv[] = {"vramd", "--config=/nonexistent/x.conf", NULL};
	config_free(cfg);
	assert_true(load(&cfg, argv, empty_env, &cause) < 0);
	assert_non_null(strstr(cause, "x.conf"));
	vd_free(cause);

	assert_int_equal(config_load_text(cfg, "vramd_sync = NORMAL\n", "f", &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_SYNC), "normal");
	config_free(cfg);
}

/* config_set_many_kept writes runtime-config.json before the change applies: when the
 * file cannot be written (here a directory stands in its place), nothing changes, the
 * cause names the file and the error, and persist_failed tells it from a bad value. */
static void
test_runtime_changes_kept_first(void **state)
{
	(void)state;
	char dir[] = "/tmp/vramd-test-config-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct config *cfg = config_new();
	char *cause = NULL;
	json_t *changed = NULL;
	bool failed = true;
	assert_int_equal(config_set(cfg, "DATA_DIR", dir, &cause), 0);

	json_t *ok = json_pack("{s:i}", "HYSTERESIS_C", 4);
	assert_int_equal(config_set_many_kept(cfg, ok, &changed, &failed, &cause), 0);
	assert_false(failed);
	assert_int_equal(config_int(cfg, CONFIG_HYSTERESIS_C), 4);
	json_decref(changed);
	char *path = config_persist_path(cfg);
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	json_t *more = json_pack("{s:i,s:i}", "HYSTERESIS_C", 6, "RESERVATION_DEFAULT_TTL_S", 99);
	assert_int_equal(config_set_many_kept(cfg, more, &changed, &failed, &cause), -EISDIR);
	assert_true(failed);
	assert_non_null(strstr(cause, "runtime-config.json"));
	assert_non_null(strstr(cause, "Is a directory"));
	vd_free(cause);
	assert_int_equal(config_int(cfg, CONFIG_HYSTERESIS_C), 4);
	assert_int_equal(config_int(cfg, CONFIG_RESERVATION_DEFAULT_TTL_S), 3600);
	assert_int_equal(access(tmp, F_OK), -1);

	/* A bad value is not a persistence failure. */
	json_t *bad = json_pack("{s:i}", "HYSTERESIS_C", 500);
	assert_int_equal(config_set_many_kept(cfg, bad, NULL, &failed, &cause), -EINVAL);
	assert_false(failed);
	vd_free(cause);

	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
	json_decref(bad);
	json_decref(more);
	json_decref(ok);
	free(tmp);
	free(path);
	config_free(cfg);
}

static void
test_runtime_changes(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	char *cause = NULL;
	json_t *changed = NULL;

	json_t *ok = json_pack("{s:i,s:f}", "critical_pause_seconds", 10, "SPEED_NORMAL", 0.7);
	assert_int_equal(config_set_many(cfg, ok, &changed, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_CRITICAL_PAUSE_SECONDS), 10);
	assert_true(config_double(cfg, CONFIG_SPEED_NORMAL) == 0.7);
	assert_int_equal(config_source_of(cfg, CONFIG_SPEED_NORMAL), CONFIG_SRC_RUNTIME);
	assert_int_equal(json_object_size(changed), 2);
	assert_non_null(json_object_get(changed, "CRITICAL_PAUSE_SECONDS"));
	json_decref(changed);
	json_decref(ok);

	/* One bad value: nothing changes. */
	json_t *bad = json_pack("{s:i,s:i}", "CRITICAL_PAUSE_SECONDS", 20, "TEMP_CRITICAL_C", 500);
	assert_int_equal(config_set_many(cfg, bad, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "TEMP_CRITICAL_C"));
	assert_non_null(strstr(cause, "0 to 150"));
	vd_free(cause);
	assert_int_equal(config_int(cfg, CONFIG_CRITICAL_PAUSE_SECONDS), 10);
	json_decref(bad);

	json_t *unknown = json_pack("{s:i}", "no_such_key", 1);
	assert_int_equal(config_set_many(cfg, unknown, NULL, &cause), -ENOENT);
	assert_non_null(strstr(cause, "no_such_key"));
	vd_free(cause);
	json_decref(unknown);

	json_t *fixed = json_pack("{s:s}", "listen", "0.0.0.0:1");
	assert_int_equal(config_set_many(cfg, fixed, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "LISTEN"));
	vd_free(cause);
	json_decref(fixed);

	json_t *wrong_type = json_pack("{s:[]}", "HYSTERESIS_C");
	assert_int_equal(config_set_many(cfg, wrong_type, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "HYSTERESIS_C"));
	vd_free(cause);
	json_decref(wrong_type);

	/* Thresholds must stay ordered, even when each value is in range. */
	json_t *order = json_pack("{s:i}", "temp_normal_c", 80);
	assert_int_equal(config_set_many(cfg, order, NULL, &cause), -EINVAL);
	vd_free(cause);
	json_decref(order);
	json_t *moved = json_pack("{s:i,s:i,s:i}", "temp_normal_c", 80, "temp_throttled_c", 88,
				  "temp_critical_c", 92);
	assert_int_equal(config_set_many(cfg, moved, NULL, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_NORMAL_C), 80);
	json_decref(moved);

	assert_int_equal(config_set(cfg, "allow_cpu", "yes", &cause), 0);
	assert_true(config_bool(cfg, CONFIG_ALLOW_CPU));
	assert_int_equal(config_set(cfg, "nope", "1", &cause), -ENOENT);
	vd_free(cause);

	json_t *all = config_to_json(cfg, false);
	json_t *rt = config_to_json(cfg, true);
	assert_int_equal(json_object_size(all), CONFIG_NKEYS);
	assert_true(json_object_size(rt) < CONFIG_NKEYS);
	assert_null(json_object_get(rt, "LISTEN"));
	assert_int_equal(json_integer_value(json_object_get(rt, "TEMP_NORMAL_C")), 80);
	assert_true(json_is_true(json_object_get(all, "ALLOW_CPU")));
	json_decref(all);
	json_decref(rt);
	config_free(cfg);
}

static char *
read_all(FILE *f)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
		if (n + 1 == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	buf[n] = '\0';
	return buf;
}

static void
test_help_lists_every_key(void **state)
{
	(void)state;
	FILE *f = tmpfile();
	assert_non_null(f);
	config_print_help(f, "vramd");
	rewind(f);
	char *help = read_all(f);
	fclose(f);
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = config_def(k);
		assert_non_null(strstr(help, def->name));
		assert_non_null(strstr(help, def->flag));
		assert_int_equal(config_key_from_name(def->name), k);
	}
	assert_non_null(strstr(help, "--config FILE"));
	free(help);
}

/* docs/configuration.md must mention every key, so the docs never drift from the table. */
static void
test_docs_list_every_key(void **state)
{
	(void)state;
	FILE *f = fopen(SOURCE_DIR "/docs/configuration.md", "r");
	assert_non_null(f);
	char *doc = read_all(f);
	fclose(f);
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		char needle[96];
		snprintf(needle, sizeof(needle), "`%s`", config_def(k)->name);
		if (strstr(doc, needle) == NULL)
			fail_msg("docs/configuration.md does not document %s", config_def(k)->name);
		snprintf(needle, sizeof(needle), "`%s`", config_def(k)->flag);
		if (strstr(doc, needle) == NULL)
			fail_msg("docs/configuration.md lacks the flag %s", config_def(k)->flag);
	}
	/* Every row of the generated table stands in the doc as is (defaults, ranges and
	 * help text cannot drift). */
	char *table = NULL;
	size_t table_len = 0;
	FILE *mem = open_memstream(&table, &table_len);
	assert_non_null(mem);
	config_print_markdown(mem);
	fclose(mem);
	char *save = NULL;
	for (char *row = strtok_r(table, "\n", &save); row != NULL;
	     row = strtok_r(NULL, "\n", &save))
		if (strstr(doc, row) == NULL)
			fail_msg("docs/configuration.md is out of date (regenerate its table from "
				 "config_print_markdown); missing row:\n%s",
				 row);
	free(table);
	free(doc);
}

/* Webhook targets: configuration only (never at run time), validated at load with
 * messages that do not repeat credentials, and shown masked in JSON. */
static void
test_webhook_urls(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	char *argv[] = {"vramd", NULL};
	char *env[] = {"VRAMD_WEBHOOK_URLS=http://u:s3cret@127.0.0.1:9/hook?token=t0k, "
		       "https://hooks.example.com/a",
		       NULL};
	assert_int_equal(load(&cfg, argv, env, &cause), 0);
	json_t *all = config_to_json(cfg, false);
	json_t *urls = json_object_get(all, "WEBHOOK_URLS");
	assert_true(json_is_array(urls));
	assert_int_equal(json_array_size(urls), 2);
	assert_string_equal(json_string_value(json_array_get(urls, 0)),
			    "http://***@127.0.0.1:9/hook?***");
	assert_string_equal(json_string_value(json_array_get(urls, 1)),
			    "https://hooks.example.com/a");
	char *text = json_dumps(all, JSON_COMPACT);
	assert_null(strstr(text, "s3cret"));
	assert_null(strstr(text, "t0k"));
	free(text);
	json_decref(all);

	/* Not changeable at run time: neither by name nor hidden among valid keys. */
	json_t *put = json_pack("{s:i,s:s}", "critical_pause_seconds", 10, "webhook_urls",
				"http://169.254.169.254/latest");
	assert_int_equal(config_set_many(cfg, put, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "WEBHOOK_URLS"));
	vd_free(cause);
	json_decref(put);
	assert_string_equal(
	    config_str(cfg, CONFIG_WEBHOOK_URLS),
	    "http://u:s3cret@127.0.0.1:9/hook?token=t0k, https://hooks.example.com/a");
	assert_int_equal(config_int(cfg, CONFIG_CRITICAL_PAUSE_SECONDS), 60); /* the default */
	config_free(cfg);

	static const struct {
		const char *value, *needle;
	} bad[] = {
	    {"ftp://files.example.com/x", "item 1 \"ftp://files.example.com/x\" is not an http"},
	    {"http://ok/x,file:///etc/passwd", "item 2"},
	    {"http://", "has no host"},
	    {"http://u:s3cret@/x", "has no host"},
	    {"http://:80/x", "has no host"},
	    {"hooks.example.com/x", "not an http:// or https:// URL"},
	    {"http://a/\tb", "whitespace"},
	    {"http://a/\xc3\xa9", "non-ASCII"},
	    {"http://1,http://2,http://3,http://4,http://5,http://6,http://7,http://8,http://9,"
	     "http://10,http://11,http://12,http://13,http://14,http://15,http://16,http://17",
	     "17 URLs; expected comma-separated http:// or https:// URLs, at most 16"},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		char *flag = xasprintf("--webhook-urls=%s", bad[i].value);
		char *bad_argv[] = {"vramd", flag, NULL};
		assert_int_equal(load(&cfg, bad_argv, empty_env, &cause), -EINVAL);
		if (strstr(cause, bad[i].needle) == NULL ||
		    strstr(cause, "flag --webhook-urls") == NULL || strstr(cause, "s3cret") != NULL)
			fail_msg("--webhook-urls %s: message \"%s\" lacks \"%s\" or shows a secret",
				 bad[i].value, cause, bad[i].needle);
		vd_free(cause);
		free(flag);
		config_free(cfg);
	}

	char *path = write_file("WEBHOOK_URLS = gopher://x\n");
	char *file_argv[] = {"vramd", "--config", path, NULL};
	assert_int_equal(load(&cfg, file_argv, empty_env, &cause), -EINVAL);
	assert_non_null(strstr(cause, ":1"));
	assert_non_null(strstr(cause, "not an http"));
	vd_free(cause);
	config_free(cfg);
	unlink(path);
	free(path);
}

/* --ollama may be repeated: every use adds a node to OLLAMA_NODES (the first replaces a
 * list from the file or environment) and the first is also OLLAMA_BASE_URL. */
static void
test_repeated_ollama(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	char *env[] = {"OLLAMA_NODES=http://env-a:1,http://env-b:2", NULL};

	/* Without --ollama the environment's list stands and the base URL is the default. */
	assert_int_equal(load(&cfg, (char *[]){"vramd", NULL}, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_NODES), "http://env-a:1,http://env-b:2");
	assert_int_equal(config_source_of(cfg, CONFIG_OLLAMA_NODES), CONFIG_SRC_ENV);
	assert_int_equal(config_source_of(cfg, CONFIG_OLLAMA_BASE_URL), CONFIG_SRC_DEFAULT);
	config_free(cfg);

	/* One --ollama: one node, replacing the environment's list. */
	char *one[] = {"vramd", "--ollama", "http://a:1", NULL};
	assert_int_equal(load(&cfg, one, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BASE_URL), "http://a:1");
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_NODES), "http://a:1");
	assert_int_equal(config_source_of(cfg, CONFIG_OLLAMA_NODES), CONFIG_SRC_FLAG);
	config_free(cfg);

	char *three[] = {
	    "vramd",	"--ollama",   "http://a:1", "--queue-max-size", "5", "--ollama=http://b:2",
	    "--ollama", "http://c:3", NULL};
	assert_int_equal(load(&cfg, three, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BASE_URL), "http://a:1");
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_NODES),
			    "http://a:1,http://b:2,http://c:3");
	json_t *all = config_to_json(cfg, false);
	assert_int_equal(json_array_size(json_object_get(all, "OLLAMA_NODES")), 3);
	json_decref(all);
	config_free(cfg);

	/* A list given on the command line grows with later --ollama flags. */
	char *mixed[] = {"vramd",    "--ollama-nodes", "http://a:1,http://b:2",
			 "--ollama", "http://c:3",     NULL};
	assert_int_equal(load(&cfg, mixed, empty_env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_NODES),
			    "http://a:1,http://b:2,http://c:3");
	config_free(cfg);

	/* Each --ollama is checked as a URL; the message names the flag and the item. */
	expect_error(
	    (char *[]){"vramd", "--ollama", "http://a:1", "--ollama", "gpu-box:11434", NULL}, env,
	    (const char *[]){"OLLAMA_NODES", "flag --ollama", "item 2", "gpu-box:11434",
			     "not an http:// or https:// URL", NULL});
	expect_error((char *[]){"vramd", "--ollama", "ftp://a", NULL}, empty_env,
		     (const char *[]){"flag --ollama", "item 1", NULL});
	expect_error(
	    (char *[]){"vramd", NULL}, (char *[]){"VRAMD_OLLAMA_NODES=http://a,b", NULL},
	    (const char *[]){"OLLAMA_NODES", "environment VRAMD_OLLAMA_NODES", "item 2", NULL});

	/* The new keys and their ranges. */
	assert_int_equal(load(&cfg, (char *[]){"vramd", NULL}, empty_env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_SUPERVISE), "off");
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BIN), "ollama");
	assert_int_equal(config_int(cfg, CONFIG_MAX_REPLICAS), 1);
	assert_string_equal(config_str(cfg, CONFIG_NODES_FILE), "");
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_NODES), "");
	config_free(cfg);
	char *set[] = {"vramd",
		       "--supervise",
		       "per-gpu",
		       "--max-replicas",
		       "16",
		       "--ollama-bin",
		       "/opt/ollama/bin/ollama",
		       "--nodes-file",
		       "/etc/vramd/nodes.json",
		       NULL};
	assert_int_equal(load(&cfg, set, empty_env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_SUPERVISE), "per-gpu");
	assert_int_equal(config_int(cfg, CONFIG_MAX_REPLICAS), 16);
	assert_string_equal(config_str(cfg, CONFIG_OLLAMA_BIN), "/opt/ollama/bin/ollama");
	assert_string_equal(config_str(cfg, CONFIG_NODES_FILE), "/etc/vramd/nodes.json");
	config_free(cfg);
	expect_error((char *[]){"vramd", "--max-replicas", "17", NULL}, empty_env,
		     (const char *[]){"MAX_REPLICAS", "1 to 16", NULL});
	expect_error((char *[]){"vramd", "--supervise", "always", NULL}, empty_env,
		     (const char *[]){"SUPERVISE", "off|per-gpu", NULL});
	/* At most 64 nodes. */
	char *many = xstrdup("VRAMD_OLLAMA_NODES=");
	for (int i = 0; i < 65; i++) {
		char *next = xasprintf("%s%shttp://n:%d", many, i > 0 ? "," : "", 1000 + i);
		free(many);
		many = next;
	}
	expect_error((char *[]){"vramd", NULL}, (char *[]){many, NULL},
		     (const char *[]){"OLLAMA_NODES", "65 URLs", "at most 64", NULL});
	free(many);
}

/* GPU_SOURCE=vramd reads another vramd's GPUs: it needs GPU_REMOTE_URL, from any source,
 * and that URL is checked like the webhook URLs (one only). */
static void
test_gpu_remote_url(void **state)
{
	(void)state;
	expect_error((char *[]){"vramd", "--gpu-source", "vramd", NULL}, empty_env,
		     (const char *[]){"GPU_SOURCE", "GPU_REMOTE_URL", NULL});
	expect_error((char *[]){"vramd", "--gpu-remote-url", "10.0.0.2:5001", NULL}, empty_env,
		     (const char *[]){"GPU_REMOTE_URL", "not an http:// or https:// URL",
				      "one http:// or https:// URL", NULL});
	expect_error((char *[]){"vramd", "--gpu-remote-url", "http://a:1,http://b:1", NULL},
		     empty_env, (const char *[]){"GPU_REMOTE_URL", "2 URLs", NULL});

	struct config *cfg;
	char *cause = NULL;
	char *argv[] = {"vramd", "--gpu-remote-url", "http://10.0.0.2:5001", NULL};
	char *env[] = {"VRAMD_GPU_SOURCE=vramd", NULL};
	assert_int_equal(load(&cfg, argv, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_GPU_SOURCE), "vramd");
	assert_string_equal(config_str(cfg, CONFIG_GPU_REMOTE_URL), "http://10.0.0.2:5001");
	config_free(cfg);
}

/* Loads a config file text; returns rc (cause freed by the caller). */
static int
load_text(struct config **cfg, const char *text, char **cause)
{
	*cfg = config_new();
	return config_load_text(*cfg, text, "seed.conf", cause);
}

/* Durations take ms, s, m and h; a bare number is the key's unit, or seconds for the two
 * keys whose seed documents seconds, unless given with the flag. */
static void
test_duration_units(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	assert_int_equal(load_text(&cfg,
				   "SCHEDULER_LOOP_INTERVAL = 0.1\n"
				   "MEMORY_MONITORING_INTERVAL=30\n"
				   "MODEL_KEEP_ALIVE = 5m\n"
				   "OLLAMA_POLL_INTERVAL = 2s\n"
				   "REQUEST_TIMEOUT = 1h\n",
				   &cause),
			 0);
	assert_int_equal(config_int(cfg, CONFIG_SCHEDULER_LOOP_INTERVAL), 100);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_MONITORING_INTERVAL), 30000);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 300);
	assert_int_equal(config_int(cfg, CONFIG_OLLAMA_POLL_INTERVAL), 2000);
	assert_int_equal(config_int(cfg, CONFIG_REQUEST_TIMEOUT), 3600);
	config_free(cfg);
	/* 1500 ms is not a whole number of seconds: refused, not rounded. */
	assert_int_equal(load_text(&cfg, "MAX_BATCH_WAIT = 1500ms\n", &cause), -EINVAL);
	assert_non_null(strstr(cause, "whole number of seconds"));
	vd_free(cause);
	config_free(cfg);
	assert_int_equal(load_text(&cfg, "MODEL_KEEP_ALIVE = 5 fortnights\n", &cause), -EINVAL);
	assert_non_null(strstr(cause, "unknown unit"));
	vd_free(cause);
	config_free(cfg);

	/* Bare numbers by key name in the environment are seconds too; flags keep ms. */
	char *env[] = {"SCHEDULER_LOOP_INTERVAL=0.5", "VRAMD_MODEL_KEEP_ALIVE=90", NULL};
	assert_int_equal(
	    load(&cfg, (char *[]){"vramd", "--monitor-interval", "250", NULL}, env, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_SCHEDULER_LOOP_INTERVAL), 500);
	assert_int_equal(config_int(cfg, CONFIG_MODEL_KEEP_ALIVE), 90);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_MONITORING_INTERVAL), 250);
	config_free(cfg);
	assert_int_equal(
	    load(&cfg, (char *[]){"vramd", "--loop-interval", "0.2s", NULL}, empty_env, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_SCHEDULER_LOOP_INTERVAL), 200);
	config_free(cfg);
	/* Range is checked after conversion, and the message gives the unit. */
	expect_error((char *[]){"vramd", NULL}, (char *[]){"MEMORY_MONITORING_INTERVAL=700", NULL},
		     (const char *[]){"MEMORY_MONITORING_INTERVAL", "out of range", "ms",
				      "bare number is s", NULL});
}

/* MiB keys take sizes; a bare number stays MiB. */
static void
test_size_units(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	assert_int_equal(load_text(&cfg,
				   "MEMORY_LIMIT_MB = 6GiB\nMEMORY_RESERVE_MB = 512MiB\n"
				   "VRAM_SAFETY_MARGIN_MB = 1536\n",
				   &cause),
			 0);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_LIMIT_MB), 6144);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_RESERVE_MB), 512);
	assert_int_equal(config_int(cfg, CONFIG_VRAM_SAFETY_MARGIN_MB), 1536);
	config_free(cfg);
	assert_int_equal(load_text(&cfg, "MEMORY_LIMIT_MB = 100MB\n", &cause), -EINVAL);
	assert_non_null(strstr(cause, "whole number of MiB"));
	vd_free(cause);
	config_free(cfg);
	/* JSON numbers through the API: a real that prints long still converts exactly. */
	cfg = config_new();
	json_t *o = json_pack("{s:f,s:s}", "monitor_interval", 0.1, "memory_limit_mb", "3GiB");
	assert_int_equal(config_set_many(cfg, o, NULL, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_MONITORING_INTERVAL), 100);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_LIMIT_MB), 3072);
	json_decref(o);
	config_free(cfg);
}

/* Seed 002's names work in the file and at run time, with seed 002's meaning: each names
 * a state's upper bound, temp_critical the shutdown-side bound. */
static void
test_seed_aliases(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	assert_int_equal(load_text(&cfg,
				   "temp_optimal = 60\ntemp_normal = 70\ntemp_throttle = 80\n"
				   "temp_critical = 90\nmemory_optimal = 60\nmemory_normal = 80\n"
				   "memory_critical = 90\nmonitor_interval = 2\nhistory_size = 50\n"
				   "memory_limit_mb = 7168\nmemory_reserve_mb = 256\n"
				   "throttle_cooldown_seconds = 20\ncritical_pause_seconds = 40\n",
				   &cause),
			 0);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_NORMAL_C), 60);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_THROTTLED_C), 70);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_CRITICAL_C), 80);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_SHUTDOWN_C), 90);
	assert_true(config_double(cfg, CONFIG_MEMORY_NORMAL_PCT) == 60);
	assert_true(config_double(cfg, CONFIG_MEMORY_THROTTLED_PCT) == 80);
	assert_true(config_double(cfg, CONFIG_MEMORY_CRITICAL_PCT) == 90);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_MONITORING_INTERVAL), 2000);
	assert_int_equal(config_int(cfg, CONFIG_GPU_HISTORY_LENGTH), 50);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_LIMIT_MB), 7168);
	assert_int_equal(config_int(cfg, CONFIG_MEMORY_RESERVE_MB), 256);
	assert_int_equal(config_int(cfg, CONFIG_THROTTLE_COOLDOWN_SECONDS), 20);
	assert_int_equal(config_int(cfg, CONFIG_CRITICAL_PAUSE_SECONDS), 40);

	/* The PUT: both keys are run-time keys now. */
	json_t *changed = NULL;
	json_t *o = json_pack("{s:i,s:i,s:i}", "temp_throttle", 85, "memory_limit_mb", 7000,
			      "history_size", 30);
	assert_int_equal(config_set_many(cfg, o, &changed, &cause), 0);
	assert_int_equal(config_int(cfg, CONFIG_TEMP_CRITICAL_C), 85);
	assert_non_null(json_object_get(changed, "TEMP_CRITICAL_C"));
	assert_non_null(json_object_get(changed, "GPU_HISTORY_LENGTH"));
	json_decref(changed);
	json_decref(o);
	/* The shutdown-side bound stays above the CRITICAL bound. */
	o = json_pack("{s:i}", "temp_critical", 85);
	assert_int_equal(config_set_many(cfg, o, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "TEMP_SHUTDOWN_C"));
	vd_free(cause);
	json_decref(o);
	config_free(cfg);

	/* Every alias resolves to the key it documents. */
	enum config_key key;
	for (size_t i = 0; config_alias_at(i, &key) != NULL; i++)
		assert_int_equal(config_key_from_name(config_alias_at(i, &key)), (int)key);
}

/* A key that exists but is fixed at start is named as such, not as unknown. */
static void
test_not_runtime_message(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	char *cause = NULL;
	json_t *o = json_pack("{s:s}", "SCHEDULER_STRATEGY", "demand_based");
	assert_int_equal(config_set_many(cfg, o, NULL, &cause), -EINVAL);
	assert_non_null(strstr(cause, "cannot be changed at run time"));
	vd_free(cause);
	json_decref(o);
	config_free(cfg);
}

/* Seed 004's keys and seed 001's strategy. */
static void
test_seed_keys(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	char *env[] = {"GPU_MEMORY_FRACTION=0.9",	  "CPU_FALLBACK_ENABLED=true",
		       "DYNAMIC_LOADING_ENABLED=false",	  "MODEL_CACHE_SIZE=2",
		       "SCHEDULER_STRATEGY=demand_based", NULL};
	assert_int_equal(load(&cfg, (char *[]){"vramd", NULL}, env, &cause), 0);
	assert_true(config_double(cfg, CONFIG_GPU_MEMORY_FRACTION) == 0.9);
	assert_true(config_bool(cfg, CONFIG_ALLOW_CPU));
	assert_false(config_bool(cfg, CONFIG_DYNAMIC_LOADING_ENABLED));
	assert_int_equal(config_int(cfg, CONFIG_MODEL_CACHE_SIZE), 2);
	assert_string_equal(config_str(cfg, CONFIG_SCHEDULER_STRATEGY), "demand_based");
	config_free(cfg);
	/* Defaults change nothing: the whole GPU, loads on demand, no cache cap. */
	cfg = config_new();
	assert_true(config_double(cfg, CONFIG_GPU_MEMORY_FRACTION) == 1.0);
	assert_true(config_bool(cfg, CONFIG_DYNAMIC_LOADING_ENABLED));
	assert_int_equal(config_int(cfg, CONFIG_MODEL_CACHE_SIZE), 0);
	config_free(cfg);

	expect_error((char *[]){"vramd", NULL}, (char *[]){"SCHEDULER_STRATEGY=round_robin", NULL},
		     (const char *[]){"SCHEDULER_STRATEGY", "round_robin", "demand_based", NULL});
	expect_error((char *[]){"vramd", NULL}, (char *[]){"GPU_MEMORY_FRACTION=1.5", NULL},
		     (const char *[]){"GPU_MEMORY_FRACTION", "out of range", NULL});
	expect_error((char *[]){"vramd", NULL}, (char *[]){"CPU_FALLBACK_ENABLED=maybe", NULL},
		     (const char *[]){"ALLOW_CPU", "CPU_FALLBACK_ENABLED", "not a boolean", NULL});
}

/* An empty CUDA_VISIBLE_DEVICES means no GPUs: CPU only with ALLOW_CPU, else refused. */
static void
test_no_visible_gpus(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	expect_error((char *[]){"vramd", NULL}, (char *[]){"CUDA_VISIBLE_DEVICES=", NULL},
		     (const char *[]){"CUDA_VISIBLE_DEVICES is empty", "ALLOW_CPU", NULL});
	expect_error((char *[]){"vramd", "--gpu-source", "nvml", "--allow-cpu", NULL},
		     (char *[]){"CUDA_VISIBLE_DEVICES=", NULL},
		     (const char *[]){"CUDA_VISIBLE_DEVICES", "GPU_SOURCE is nvml", NULL});
	char *env[] = {"CUDA_VISIBLE_DEVICES=", "CPU_FALLBACK_ENABLED=1", NULL};
	assert_int_equal(load(&cfg, (char *[]){"vramd", NULL}, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_GPU_SOURCE), "none");
	assert_true(config_size(cfg, CONFIG_VRAM_BUDGET) == 0);
	config_free(cfg);
	/* A non-empty list is CUDA's business (and the supervised servers'), not ours. */
	char *env2[] = {"CUDA_VISIBLE_DEVICES=0", NULL};
	assert_int_equal(load(&cfg, (char *[]){"vramd", NULL}, env2, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_GPU_SOURCE), "auto");
	config_free(cfg);
}

/* A malformed Ollama URL stops vramd at start, from the flag or the environment. */
static void
test_malformed_ollama_url(void **state)
{
	(void)state;
	expect_error((char *[]){"vramd", "--ollama", "http://127.0.0.1:abc", NULL}, empty_env,
		     (const char *[]){"flag --ollama", "port that is not a number", NULL});
	expect_error((char *[]){"vramd", "--ollama", "http://127.0.0.1:99999", NULL}, empty_env,
		     (const char *[]){"port above 65535", NULL});
	expect_error((char *[]){"vramd", NULL}, (char *[]){"OLLAMA_BASE_URL=localhost:11434", NULL},
		     (const char *[]){"OLLAMA_BASE_URL", "environment OLLAMA_BASE_URL",
				      "not an http:// or https:// URL", NULL});
	expect_error((char *[]){"vramd", NULL}, (char *[]){"OLLAMA_BASE_URL=http://h:", NULL},
		     (const char *[]){"OLLAMA_BASE_URL", "empty port", NULL});
	struct config *cfg;
	char *cause = NULL;
	assert_int_equal(load(&cfg, (char *[]){"vramd", "--ollama", "http://[::1]:11434/", NULL},
			      empty_env, &cause),
			 0);
	config_free(cfg);
}

/* --help and --version are reported, not rejected, even among other flags. */
static void
test_help_flag(void **state)
{
	(void)state;
	char *argv[] = {"vramd", "--queue-max-size", "5", "--help", NULL};
	struct config *cfg = config_new();
	bool help = false, version = false;
	char *cause = NULL;
	assert_int_equal(config_load(cfg, 4, argv, empty_env, &help, &version, &cause), 0);
	assert_true(help);
	assert_false(version);
	assert_int_equal(config_int(cfg, CONFIG_QUEUE_MAX_SIZE), 5);
	config_free(cfg);
}

/* STORE: empty (SQLite) or a postgresql:// URL; its password never shows, neither in
 * GET /api/config's JSON nor in the message that refuses a bad value. */
static void
test_store_url(void **state)
{
	(void)state;
	struct config *cfg;
	char *cause = NULL;
	char *argv[] = {"vramd", NULL};
	assert_int_equal(load(&cfg, argv, empty_env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_STORE), "");
	config_free(cfg);

	char *env[] = {"VRAMD_STORE=postgresql://vramd:s3cret@db.example:5432/jobs", NULL};
	assert_int_equal(load(&cfg, argv, env, &cause), 0);
	assert_string_equal(config_str(cfg, CONFIG_STORE),
			    "postgresql://vramd:s3cret@db.example:5432/jobs");
	json_t *all = config_to_json(cfg, false);
	assert_string_equal(json_string_value(json_object_get(all, "STORE")),
			    "postgresql://***@db.example:5432/jobs");
	json_decref(all);
	config_free(cfg);

	char *flag[] = {"vramd", "--store", "postgres://h/db", NULL};
	assert_int_equal(load(&cfg, flag, empty_env, &cause), 0);
	config_free(cfg);

	const char *bad[] = {"mysql://u:s3cret@h/db", "host=h password=s3cret", "/var/lib/vramd"};
	for (size_t i = 0; i < VD_ARRAY_LEN(bad); i++) {
		char *value = xasprintf("VRAMD_STORE=%s", bad[i]);
		char *bad_env[] = {value, NULL};
		assert_int_equal(load(&cfg, argv, bad_env, &cause), -EINVAL);
		assert_non_null(strstr(cause, "STORE"));
		assert_non_null(strstr(cause, "postgresql://"));
		assert_null(strstr(cause, "s3cret"));
		free(cause);
		cause = NULL;
		config_free(cfg);
		free(value);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_help_flag),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_validation_messages),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_runtime_changes),
	    cmocka_unit_test(test_runtime_changes_kept_first),
	    cmocka_unit_test(test_webhook_urls),
	    cmocka_unit_test(test_repeated_ollama),
	    cmocka_unit_test(test_gpu_remote_url),
	    cmocka_unit_test(test_help_lists_every_key),
	    cmocka_unit_test(test_docs_list_every_key),
	    cmocka_unit_test(test_duration_units),
	    cmocka_unit_test(test_size_units),
	    cmocka_unit_test(test_seed_aliases),
	    cmocka_unit_test(test_not_runtime_message),
	    cmocka_unit_test(test_seed_keys),
	    cmocka_unit_test(test_no_visible_gpus),
	    cmocka_unit_test(test_malformed_ollama_url),
	    cmocka_unit_test(test_store_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
