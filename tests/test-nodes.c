/*
 * test-nodes.c: unit tests for src/fleet/nodes.c: which source lists the nodes
 * (NODES_FILE, OLLAMA_NODES and --ollama, OLLAMA_BASE_URL) and their conflicts, the
 * defaults (names, local, gpus, budget), every field of the nodes file, and messages that
 * name the file, the node and the field for every kind of mistake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "nodes.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *empty_env[] = {NULL};

/* A config loaded from argv (NULL-terminated) and env; fails the test on error. */
static struct config *
load(char **argv, char **env)
{
	int argc = 0;
	while (argv[argc] != NULL)
		argc++;
	struct config *cfg = config_new();
	char *cause = NULL;
	if (config_load(cfg, argc, argv, env, NULL, NULL, &cause) != 0)
		fail_msg("config_load: %s", cause);
	return cfg;
}

/* A config with NODES_FILE set to a label (the file's text is passed separately). */
static struct config *
with_file(void)
{
	struct config *cfg = config_new();
	assert_int_equal(config_set(cfg, "NODES_FILE", "nodes.json", NULL), 0);
	return cfg;
}

/* nodes_from_text must fail with -EINVAL and a message holding every needle. */
static void
expect_fail(const struct config *cfg, const char *text, const char *hostname,
	    const char *const needles[])
{
	struct node_spec *specs = NULL;
	size_t n = 0;
	char *cause = NULL;
	int rc = nodes_from_text(cfg, text, hostname, &specs, &n, &cause);
	if (rc != -EINVAL)
		fail_msg("expected -EINVAL for %s, got %d", text ? text : "(no file)", rc);
	assert_non_null(cause);
	for (int i = 0; needles[i] != NULL; i++)
		if (strstr(cause, needles[i]) == NULL)
			fail_msg("\"%s\" not in \"%s\"", needles[i], cause);
	assert_null(specs);
	free(cause);
}

static struct node_spec *
expect_ok(const struct config *cfg, const char *text, const char *hostname, size_t *n)
{
	struct node_spec *specs = NULL;
	char *cause = NULL;
	if (nodes_from_text(cfg, text, hostname, &specs, n, &cause) != 0)
		fail_msg("nodes_from_text: %s", cause);
	return specs;
}

/* No list anywhere: the default OLLAMA_BASE_URL is the one node, local, with GPUS and
 * VRAM_BUDGET as the one-node daemon uses them. */
static void
test_one_node_form(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	size_t n = 0;
	struct node_spec *specs = expect_ok(cfg, NULL, "box", &n);
	assert_int_equal(n, 1);
	assert_string_equal(specs[0].name, "node0");
	assert_string_equal(specs[0].url, "http://127.0.0.1:11434");
	assert_true(specs[0].local);
	assert_null(specs[0].gpus);
	assert_null(specs[0].telemetry_url);
	assert_int_equal(specs[0].vram_budget_bytes, 0);
	assert_int_equal(specs[0].nlabels, 0);
	nodes_free(specs, n);

	char *env[] = {"OLLAMA_BASE_URL=http://gpu-box:11434/", "VRAMD_GPUS=1",
		       "VRAMD_VRAM_BUDGET=8GiB", NULL};
	config_free(cfg);
	cfg = load((char *[]){"vramd", NULL}, env);
	specs = expect_ok(cfg, NULL, "other", &n);
	assert_int_equal(n, 1);
	assert_string_equal(specs[0].url, "http://gpu-box:11434"); /* trailing '/' dropped */
	assert_false(specs[0].local);
	assert_null(specs[0].gpus); /* GPUS is about this host */
	assert_int_equal(specs[0].vram_budget_bytes, 8 * VD_GIB);
	nodes_free(specs, n);

	/* The same URL when it names this host: local, with this host's GPUS. */
	specs = expect_ok(cfg, NULL, "GPU-BOX", &n);
	assert_true(specs[0].local);
	assert_string_equal(specs[0].gpus, "1");
	assert_int_equal(specs[0].vram_budget_bytes, 8 * VD_GIB);
	nodes_free(specs, n);
	config_free(cfg);
}

/* OLLAMA_NODES: nodes by position, local by host, VRAM_BUDGET for all without telemetry. */
static void
test_url_list(void **state)
{
	(void)state;
	char *env[] = {"OLLAMA_NODES=http://127.0.0.1:11434,http://10.0.0.2:11434, "
		       "https://u:pw@gpu7.example.com/ollama/,http://myhost:11500",
		       "VRAMD_VRAM_BUDGET=24GiB", "VRAMD_GPUS=0,1", NULL};
	struct config *cfg = load((char *[]){"vramd", NULL}, env);
	size_t n = 0;
	struct node_spec *specs = expect_ok(cfg, NULL, "myhost", &n);
	assert_int_equal(n, 4);
	static const struct {
		const char *name, *url, *gpus;
		bool local;
	} want[] = {
	    {"node0", "http://127.0.0.1:11434", "0,1", true},
	    {"node1", "http://10.0.0.2:11434", NULL, false},
	    {"node2", "https://u:pw@gpu7.example.com/ollama", NULL, false},
	    {"node3", "http://myhost:11500", "0,1", true},
	};
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(specs[i].name, want[i].name);
		assert_string_equal(specs[i].url, want[i].url);
		assert_int_equal(specs[i].local, want[i].local);
		if (want[i].gpus == NULL)
			assert_null(specs[i].gpus);
		else
			assert_string_equal(specs[i].gpus, want[i].gpus);
		assert_int_equal(specs[i].vram_budget_bytes, 24 * VD_GIB);
		assert_null(specs[i].telemetry_url);
	}
	nodes_free(specs, n);

	/* Without a host name only loopback counts as this host. */
	specs = expect_ok(cfg, NULL, NULL, &n);
	assert_true(specs[0].local);
	assert_false(specs[3].local);
	nodes_free(specs, n);
	config_free(cfg);
}

/* Repeated --ollama gives several nodes; one --ollama beats OLLAMA_NODES from the
 * environment, as flags beat the environment. */
static void
test_repeated_ollama_flag(void **state)
{
	(void)state;
	struct config *cfg =
	    load((char *[]){"vramd", "--ollama", "http://127.0.0.1:11434", "--ollama",
			    "http://127.0.0.1:11435", "--ollama=http://10.1.1.1:11434", NULL},
		 empty_env);
	size_t n = 0;
	struct node_spec *specs = expect_ok(cfg, NULL, "h", &n);
	assert_int_equal(n, 3);
	assert_string_equal(specs[0].url, "http://127.0.0.1:11434");
	assert_string_equal(specs[1].url, "http://127.0.0.1:11435");
	assert_string_equal(specs[2].url, "http://10.1.1.1:11434");
	assert_string_equal(specs[2].name, "node2");
	nodes_free(specs, n);
	config_free(cfg);

	cfg = load((char *[]){"vramd", "--ollama", "http://127.0.0.1:9", NULL},
		   (char *[]){"OLLAMA_NODES=http://a:1,http://b:2", NULL});
	specs = expect_ok(cfg, NULL, "h", &n);
	assert_int_equal(n, 1);
	assert_string_equal(specs[0].url, "http://127.0.0.1:9");
	nodes_free(specs, n);
	config_free(cfg);
}

/* Every field of the nodes file, and the defaults between them. */
static void
test_file_fields(void **state)
{
	(void)state;
	struct config *cfg = with_file();
	assert_int_equal(config_set(cfg, "VRAM_BUDGET", "4GiB", NULL), 0);
	assert_int_equal(config_set(cfg, "GPUS", "2", NULL), 0);
	const char *text =
	    "{\"nodes\": [\n"
	    " {\"name\": \"a\", \"url\": \"http://127.0.0.1:11434/\", \"gpus\": \"0\",\n"
	    "  \"labels\": [\"fast\", \"zone=eu\"]},\n"
	    " {\"name\": \"b\", \"url\": \"http://10.0.0.2:11434\",\n"
	    "  \"telemetry_url\": \"http://10.0.0.2:7860/\", \"vram_budget\": \"24GiB\"},\n"
	    " {\"url\": \"http://10.0.0.3:11434\", \"telemetry_url\": \"http://10.0.0.3:7860\",\n"
	    "  \"gpus\": [1, \"GPU-8a3c\"]},\n"
	    " {\"url\": \"http://localhost:11435\", \"local\": false, \"vram_budget\": 1000},\n"
	    " {\"name\": \"far\", \"url\": \"http://10.0.0.5:11434\", \"local\": true,\n"
	    "  \"gpus\": \"all\"},\n"
	    " {\"name\": \"cpu\", \"url\": \"http://[::1]:11436\", \"vram_budget\": 0,\n"
	    "  \"gpus\": \"none\", \"labels\": []},\n"
	    " {\"name\": \"x.y-z_1\", \"url\": \"http://10.0.0.7:11434\"}\n"
	    "]}\n";
	size_t n = 0;
	struct node_spec *specs = expect_ok(cfg, text, "host", &n);
	assert_int_equal(n, 7);

	assert_string_equal(specs[0].name, "a");
	assert_string_equal(specs[0].url, "http://127.0.0.1:11434");
	assert_string_equal(specs[0].gpus, "0"); /* its own, not GPUS */
	assert_true(specs[0].local);
	assert_int_equal(specs[0].nlabels, 2);
	assert_string_equal(specs[0].labels[0], "fast");
	assert_string_equal(specs[0].labels[1], "zone=eu");
	assert_int_equal(specs[0].vram_budget_bytes, 4 * VD_GIB); /* VRAM_BUDGET */

	assert_string_equal(specs[1].name, "b");
	assert_string_equal(specs[1].telemetry_url, "http://10.0.0.2:7860");
	assert_false(specs[1].local);
	assert_null(specs[1].gpus);
	assert_int_equal(specs[1].vram_budget_bytes, 24 * VD_GIB);

	assert_string_equal(specs[2].name, "node2"); /* by position */
	assert_string_equal(specs[2].gpus, "1,GPU-8a3c");
	assert_false(specs[2].local);
	assert_int_equal(specs[2].vram_budget_bytes, 0); /* telemetry: no VRAM_BUDGET */

	assert_string_equal(specs[3].name, "node3");
	assert_false(specs[3].local); /* loopback, but the file says not local */
	assert_null(specs[3].gpus);
	assert_int_equal(specs[3].vram_budget_bytes, 1000);

	assert_string_equal(specs[4].name, "far");
	assert_true(specs[4].local); /* remote address, declared local */
	assert_null(specs[4].gpus);  /* "all" */

	assert_true(specs[5].local);
	assert_string_equal(specs[5].gpus, "none");
	assert_int_equal(specs[5].vram_budget_bytes, 0); /* an explicit 0 stays 0 */
	assert_int_equal(specs[5].nlabels, 0);

	assert_string_equal(specs[6].name, "x.y-z_1");
	assert_false(specs[6].local);
	assert_int_equal(specs[6].vram_budget_bytes, 4 * VD_GIB);
	nodes_free(specs, n);

	/* A local node without gpus takes GPUS ("2" here); with GPUS empty, every GPU. */
	specs = expect_ok(cfg,
			  "{\"nodes\": [{\"url\": \"http://127.0.0.1:1\"}, "
			  "{\"url\": \"http://127.0.0.1:2\"}]}",
			  "host", &n);
	assert_string_equal(specs[0].gpus, "2");
	assert_string_equal(specs[1].gpus, "2");
	nodes_free(specs, n);
	assert_int_equal(config_set(cfg, "GPUS", "", NULL), 0);
	specs = expect_ok(cfg,
			  "{\"nodes\": [{\"url\": \"http://127.0.0.1:1\"}, "
			  "{\"url\": \"http://127.0.0.1:2\"}]}",
			  "host", &n);
	assert_null(specs[0].gpus);
	assert_null(specs[1].gpus);
	assert_true(specs[0].local && specs[1].local);
	nodes_free(specs, n);
	config_free(cfg);
}

/* Which hosts are this host. */
static void
test_local_hosts(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		bool local;
	} cases[] = {
	    {"http://localhost:11434", true},
	    {"http://LOCALHOST:11434", true},
	    {"http://ollama.localhost:11434", true},
	    {"http://127.0.0.1:11434", true},
	    {"http://127.8.9.10:11434", true},
	    {"http://[::1]:11434", true},
	    {"http://[0:0:0:0:0:0:0:1]:11434", true},
	    {"http://Build-Host:11434", true},
	    {"http://build-host.example.com:11434", false},
	    {"http://128.0.0.1:11434", false},
	    {"http://127.example.com:11434", false},
	    {"http://[::2]:11434", false},
	    {"http://localhost.example.com:11434", false},
	    {"https://10.0.0.1", false},
	};
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		struct config *cfg = config_new();
		assert_int_equal(config_set(cfg, "OLLAMA_NODES", cases[i].url, NULL), 0);
		size_t n = 0;
		struct node_spec *specs = expect_ok(cfg, NULL, "build-host", &n);
		if (specs[0].local != cases[i].local)
			fail_msg("%s: local is %d", cases[i].url, specs[0].local);
		nodes_free(specs, n);
		config_free(cfg);
	}
}

/* Mistakes in the nodes file: each message names the file, the node and the field. */
static void
test_file_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *needles[4];
	} cases[] = {
	    {"{\"nodes\": [", {"nodes.json", "not valid JSON", "line 1", NULL}},
	    {"[]", {"nodes.json", "{\"nodes\": [...]}", NULL}},
	    {"{\"node\": []}", {"nodes.json", "{\"nodes\": [...]}", NULL}},
	    {"{\"nodes\": {}}", {"{\"nodes\": [...]}", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\"}], \"extra\": 1}",
	     {"unknown top-level field \"extra\"", NULL}},
	    {"{\"nodes\": []}", {"nodes.json", "0 nodes", "1 to 64", NULL}},
	    {"{\"nodes\": [1]}", {"nodes[0] is not an object", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\"}]}", {"nodes[0] \"a\"", "url is missing", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"url\": \"http://b\"}]}",
	     {"not valid JSON", "duplicate", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\", \"url\": \"http://a\", \"gpu\": \"0\"}]}",
	     {"nodes.json: nodes[0] \"a\": unknown field \"gpu\"", "gpus", NULL}},
	    {"{\"nodes\": [{\"name\": 7, \"url\": \"http://a\"}]}",
	     {"nodes[0]: name: expected a string", NULL}},
	    {"{\"nodes\": [{\"name\": \"bad name\", \"url\": \"http://a\"}]}",
	     {"nodes[0]: name:", "letters, digits", NULL}},
	    {"{\"nodes\": [{\"name\": \"-a\", \"url\": \"http://a\"}]}",
	     {"nodes[0]: name:", "starting with a letter or digit", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\", \"url\": 11434}]}",
	     {"nodes[0] \"a\": url: expected a string", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\", \"url\": \"ftp://a\"}]}",
	     {"nodes[0] \"a\": url: \"ftp://a\" is not an http:// or https:// URL", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://\"}]}",
	     {"nodes[0] \"node0\": url:", "has no host", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://u:s3cret@:80\"}]}",
	     {"nodes[0] \"node0\": url:", "has no host", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a:0\"}]}", {"url:", "port", "1 to 65535", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a:65536\"}]}", {"url:", "port", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a:\"}]}", {"url:", "port", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a:12x/\"}]}", {"url:", "port", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a/?x=1\"}]}", {"url:", "query", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a/#top\"}]}", {"url:", "fragment", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a b\"}]}", {"url:", "whitespace", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://[::1:11434\"}]}", {"url:", "']'", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://[zz]:1\"}]}", {"url:", "IPv6", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://[::1]x:1\"}]}", {"url:", "after", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a!b:1\"}]}", {"url:", "host name", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"telemetry_url\": \"vramd:7860\"}]}",
	     {"nodes[0] \"node0\": telemetry_url:", "not an http://", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"telemetry_url\": true}]}",
	     {"telemetry_url: expected a string", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"vram_budget\": \"lots\"}]}",
	     {"vram_budget:", "24GiB", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"vram_budget\": -1}]}", {"vram_budget:", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"vram_budget\": 2.5}]}",
	     {"vram_budget:", "whole number", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"vram_budget\": \"2048TiB\"}]}",
	     {"vram_budget:", "1 PiB", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"vram_budget\": 1125899906842625}]}",
	     {"vram_budget:", "1 PiB", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"labels\": \"fast\"}]}",
	     {"labels: expected a list", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"labels\": [\"ok\", \"not ok\"]}]}",
	     {"labels: label 1:", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"labels\": [\"ok\", 3]}]}",
	     {"labels: label 1:", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"labels\": [\"ok\", \"ok\"]}]}",
	     {"labels: label 1: \"ok\" is listed twice", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://a\", \"local\": \"yes\"}]}",
	     {"local: expected true or false", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://127.0.0.1:1\", \"gpus\": true}]}",
	     {"gpus: expected a string", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://127.0.0.1:1\", \"gpus\": []}]}",
	     {"gpus: expected a string", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://127.0.0.1:1\", \"gpus\": [0, 300]}]}",
	     {"gpus: entry 1 is neither a GPU index", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://127.0.0.1:1\", \"gpus\": \"0,x\"}]}",
	     {"nodes[0] \"node0\": gpus:", "invalid GPU filter", NULL}},
	    {"{\"nodes\": [{\"name\": \"r\", \"url\": \"http://10.0.0.9:1\", \"gpus\": \"0\"}]}",
	     {"nodes[0] \"r\": gpus needs GPU telemetry", "telemetry_url", NULL}},
	    {"{\"nodes\": [{\"url\": \"http://10.0.0.9:1\", \"local\": true, "
	     "\"telemetry_url\": \"http://10.0.0.9:7860\"}]}",
	     {"nodes[0] \"node0\"", "contradict", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\", \"url\": \"http://a:1\"}, "
	     "{\"name\": \"A\", \"url\": \"http://a:2\"}]}",
	     {"nodes.json", "nodes[0] \"a\" and nodes[1] \"A\" have the same name", NULL}},
	    {"{\"nodes\": [{\"name\": \"node1\", \"url\": \"http://a:1\"}, "
	     "{\"url\": \"http://a:2\"}]}",
	     {"nodes[0] \"node1\" and nodes[1] \"node1\" have the same name", NULL}},
	    {"{\"nodes\": [{\"name\": \"a\", \"url\": \"http://Host:80/\"}, "
	     "{\"name\": \"b\", \"url\": \"http://u:pw@host\"}]}",
	     {"nodes[0] \"a\" and nodes[1] \"b\" are the same server", NULL}},
	    {"{\"nodes\": [{\"url\": \"https://h/o\"}, {\"url\": \"https://h:443/o//\"}]}",
	     {"same server", NULL}},
	};
	struct config *cfg = with_file();
	for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
		struct node_spec *specs = NULL;
		size_t n = 0;
		char *cause = NULL;
		int rc = nodes_from_text(cfg, cases[i].text, "host", &specs, &n, &cause);
		if (rc != -EINVAL)
			fail_msg("case %zu (%s): rc %d", i, cases[i].text, rc);
		assert_null(specs);
		if (strstr(cause, "NODES_FILE nodes.json: ") != cause)
			fail_msg("case %zu: message \"%s\" does not start with the file", i, cause);
		for (int k = 0; cases[i].needles[k] != NULL; k++)
			if (strstr(cause, cases[i].needles[k]) == NULL)
				fail_msg("case %zu (%s): \"%s\" not in \"%s\"", i, cases[i].text,
					 cases[i].needles[k], cause);
		if (strstr(cause, "s3cret") != NULL)
			fail_msg("case %zu: message shows a password: %s", i, cause);
		free(cause);
	}
	config_free(cfg);

	/* Different ports, paths or schemes are different servers. */
	cfg = with_file();
	size_t n = 0;
	struct node_spec *specs =
	    expect_ok(cfg,
		      "{\"nodes\": [{\"url\": \"http://h:1\"}, {\"url\": \"http://h:2\"}, "
		      "{\"url\": \"http://h:1/x\"}, {\"url\": \"https://h:1\"}]}",
		      NULL, &n);
	assert_int_equal(n, 4);
	nodes_free(specs, n);
	config_free(cfg);
}

/* At most NODES_MAX nodes. */
static void
test_file_cap(void **state)
{
	(void)state;
	struct config *cfg = with_file();
	for (int count = NODES_MAX; count <= NODES_MAX + 1; count++) {
		char *text = xstrdup("{\"nodes\": [");
		for (int i = 0; i < count; i++) {
			char *next = xasprintf("%s%s{\"url\": \"http://10.0.0.1:%d\"}", text,
					       i > 0 ? "," : "", 10000 + i);
			free(text);
			text = next;
		}
		char *closed = xasprintf("%s]}", text);
		free(text);
		struct node_spec *specs = NULL;
		size_t n = 0;
		char *cause = NULL;
		int rc = nodes_from_text(cfg, closed, NULL, &specs, &n, &cause);
		if (count == NODES_MAX) {
			assert_int_equal(rc, 0);
			assert_int_equal(n, NODES_MAX);
			assert_string_equal(specs[NODES_MAX - 1].name, "node63");
			nodes_free(specs, n);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(strstr(cause, "65 nodes; expected 1 to 64"));
			free(cause);
		}
		free(closed);
	}
	config_free(cfg);
}

/* Only one source lists the nodes; OLLAMA_BASE_URL set beside a list must agree. */
static void
test_source_conflicts(void **state)
{
	(void)state;
	const char *file = "{\"nodes\": [{\"url\": \"http://127.0.0.1:11434\"}, "
			   "{\"url\": \"http://10.0.0.2:11434\"}]}";
	struct config *cfg = load((char *[]){"vramd", "--nodes-file", "nodes.json", NULL},
				  (char *[]){"OLLAMA_NODES=http://a:1", NULL});
	expect_fail(cfg, file, NULL,
		    (const char *const[]){"NODES_FILE nodes.json lists every node",
					  "OLLAMA_NODES (from the environment) must be empty",
					  NULL});
	config_free(cfg);

	cfg = load((char *[]){"vramd", "--nodes-file=nodes.json", "--ollama", "http://a:1", NULL},
		   empty_env);
	expect_fail(cfg, file, NULL,
		    (const char *const[]){"NODES_FILE nodes.json",
					  "OLLAMA_NODES (from --ollama or --ollama-nodes)", NULL});
	config_free(cfg);

	/* A base URL that is one of the file's nodes is fine; another one is not. */
	cfg = load((char *[]){"vramd", "--nodes-file", "nodes.json", NULL},
		   (char *[]){"OLLAMA_BASE_URL=http://10.0.0.2:11434/", NULL});
	size_t n = 0;
	struct node_spec *specs = expect_ok(cfg, file, NULL, &n);
	assert_int_equal(n, 2);
	nodes_free(specs, n);
	config_free(cfg);
	cfg = load((char *[]){"vramd", "--nodes-file", "nodes.json", NULL},
		   (char *[]){"OLLAMA_BASE_URL=http://u:s3cret@10.0.0.3:11434", NULL});
	expect_fail(cfg, file, NULL,
		    (const char *const[]){"OLLAMA_BASE_URL (from the environment)",
					  "10.0.0.3:11434", "not one of the nodes of NODES_FILE",
					  NULL});
	config_free(cfg);

	/* The same against OLLAMA_NODES, from a config file this time. */
	char tmpl[] = "/tmp/vramd-test-nodes-conf-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	const char *conf = "OLLAMA_BASE_URL = http://b:2\nOLLAMA_NODES = http://a:1,http://b:2\n";
	assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	cfg = load((char *[]){"vramd", "--config", tmpl, NULL}, empty_env);
	specs = expect_ok(cfg, NULL, NULL, &n);
	assert_int_equal(n, 2);
	nodes_free(specs, n);
	config_free(cfg);
	cfg = load((char *[]){"vramd", "--config", tmpl, NULL},
		   (char *[]){"OLLAMA_BASE_URL=http://c:3", NULL});
	expect_fail(cfg, NULL, NULL,
		    (const char *const[]){"OLLAMA_BASE_URL (from the environment) is http://c:3",
					  "OLLAMA_NODES (from the config file)", NULL});
	config_free(cfg);
	/* --ollama-nodes after --ollama replaces the list; the first --ollama is then the
	 * base URL and no node. */
	cfg = load(
	    (char *[]){"vramd", "--ollama", "http://c:3", "--ollama-nodes", "http://a:1", NULL},
	    empty_env);
	expect_fail(cfg, NULL, NULL,
		    (const char *const[]){"OLLAMA_BASE_URL (from --ollama) is http://c:3", NULL});
	config_free(cfg);
	unlink(tmpl);
}

/* URL rules the config's URL list does not check are still enforced on OLLAMA_NODES
 * and OLLAMA_BASE_URL, and duplicates are refused there too. */
static void
test_url_list_errors(void **state)
{
	(void)state;
	struct config *cfg = load((char *[]){"vramd", NULL},
				  (char *[]){"VRAMD_OLLAMA_NODES=http://a:1,http://a:2#top", NULL});
	expect_fail(cfg, NULL, NULL,
		    (const char *const[]){"OLLAMA_NODES (from the environment): nodes[1]:",
					  "a query or a fragment", NULL});
	config_free(cfg);

	cfg = load((char *[]){"vramd", "--ollama", "http://a:1", "--ollama", "http://A:1/", NULL},
		   empty_env);
	expect_fail(cfg, NULL, NULL,
		    (const char *const[]){"OLLAMA_NODES (from --ollama or --ollama-nodes)",
					  "nodes[0] \"node0\" and nodes[1] \"node1\" are the same "
					  "server",
					  NULL});
	config_free(cfg);

	/* A malformed OLLAMA_BASE_URL never gets here: config_load refuses it
	 * (test-config.c, test_malformed_ollama_url). */

	/* NODES_FILE set but its text not handed over. */
	cfg = with_file();
	expect_fail(cfg, NULL, NULL, (const char *const[]){"NODES_FILE nodes.json", NULL});
	config_free(cfg);
}

/* nodes_from_config reads the file; a missing or oversized file is named. */
static void
test_from_config_reads_file(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/vramd-test-nodes-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	const char *text = "{\"nodes\": [{\"name\": \"solo\", \"url\": \"http://127.0.0.1:11434\", "
			   "\"labels\": [\"gpu\"]}]}";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);

	struct config *cfg = config_new();
	assert_int_equal(config_set(cfg, "NODES_FILE", tmpl, NULL), 0);
	struct node_spec *specs = NULL;
	size_t n = 0;
	char *cause = NULL;
	if (nodes_from_config(cfg, &specs, &n, &cause) != 0)
		fail_msg("%s", cause);
	assert_int_equal(n, 1);
	assert_string_equal(specs[0].name, "solo");
	assert_true(specs[0].local);
	assert_string_equal(specs[0].labels[0], "gpu");
	nodes_free(specs, n);

	/* Too big. */
	FILE *f = fopen(tmpl, "w");
	assert_non_null(f);
	for (int i = 0; i <= NODES_FILE_MAX_BYTES / 64; i++)
		fputs("                                                               \n", f);
	fclose(f);
	assert_int_equal(nodes_from_config(cfg, &specs, &n, &cause), -EFBIG);
	assert_non_null(strstr(cause, tmpl));
	vd_free(cause);

	/* A NUL byte. */
	f = fopen(tmpl, "w");
	assert_non_null(f);
	fwrite("{\"nodes\"\0: []}", 1, 14, f);
	fclose(f);
	assert_int_equal(nodes_from_config(cfg, &specs, &n, &cause), -EINVAL);
	assert_non_null(strstr(cause, "NUL"));
	vd_free(cause);

	unlink(tmpl);
	assert_int_equal(nodes_from_config(cfg, &specs, &n, &cause), -ENOENT);
	assert_non_null(strstr(cause, tmpl));
	assert_non_null(strstr(cause, "NODES_FILE"));
	vd_free(cause);
	config_free(cfg);

	/* Without NODES_FILE nothing is read: the one-node form. */
	cfg = config_new();
	assert_int_equal(nodes_from_config(cfg, &specs, &n, &cause), 0);
	assert_int_equal(n, 1);
	assert_true(specs[0].local);
	nodes_free(specs, n);
	config_free(cfg);
}

/* Every ```json block of docs/fleet.md is a valid nodes file, so the doc cannot drift. */
static void
test_doc_examples(void **state)
{
	(void)state;
	FILE *f = fopen(SOURCE_DIR "/docs/fleet.md", "r");
	assert_non_null(f);
	char *doc = xmalloc(1 << 20);
	size_t len = fread(doc, 1, (1 << 20) - 1, f);
	fclose(f);
	doc[len] = '\0';
	struct config *cfg = with_file();
	int blocks = 0;
	for (char *p = strstr(doc, "```json\n"); p != NULL; p = strstr(p, "```json\n")) {
		p += strlen("```json\n");
		char *end = strstr(p, "```");
		assert_non_null(end);
		char *text = xstrndup(p, (size_t)(end - p));
		size_t n = 0;
		struct node_spec *specs = expect_ok(cfg, text, NULL, &n);
		assert_true(n >= 2);
		assert_string_equal(specs[0].name, "gpu0");
		assert_true(specs[0].local);
		nodes_free(specs, n);
		free(text);
		blocks++;
		p = end + 3;
	}
	assert_int_equal(blocks, 2);
	config_free(cfg);
	free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_node_form),
	    cmocka_unit_test(test_url_list),
	    cmocka_unit_test(test_repeated_ollama_flag),
	    cmocka_unit_test(test_file_fields),
	    cmocka_unit_test(test_local_hosts),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_file_cap),
	    cmocka_unit_test(test_source_conflicts),
	    cmocka_unit_test(test_url_list_errors),
	    cmocka_unit_test(test_from_config_reads_file),
	    cmocka_unit_test(test_doc_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
