/*
 * test-sim-catalogue.c: unit tests for sim/sim-catalogue.c (loading, validation
 * messages, lookups, the estimate/actual memory model) and the keep_alive and
 * options parsing of sim/sim-api.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim-api.h"
#include "sim-catalogue.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void
test_default_matches_file(void **state)
{
	(void)state;
	struct sim_catalogue *builtin = sim_catalogue_default();
	struct sim_catalogue *file = NULL;
	char *cause = NULL;
	assert_int_equal(
	    sim_catalogue_load(SOURCE_DIR "/sim/catalogues/default.json", &file, &cause), 0);
	assert_int_equal(builtin->nmodels, 10);
	assert_int_equal(file->nmodels, builtin->nmodels);
	for (size_t i = 0; i < builtin->nmodels; i++) {
		const struct sim_model *a = &builtin->models[i], *b = &file->models[i];
		assert_string_equal(a->name, b->name);
		assert_true(a->file_bytes == b->file_bytes);
		assert_true(a->footprint_bytes == b->footprint_bytes);
		assert_true(a->vocab_size == b->vocab_size);
		/* Real vocabularies: 30k (BERT) to 256k (Gemma). */
		assert_true(a->vocab_size >= 30000 && a->vocab_size <= 262144);
		/* The real footprint is 1.2-1.35 x the file. */
		double ratio = (double)a->footprint_bytes / (double)a->file_bytes;
		assert_true(ratio >= 1.19 && ratio <= 1.36);
		assert_int_equal(strlen(a->digest), 64);
		assert_string_equal(a->digest, b->digest);
	}
	assert_true(builtin->npullable >= 1);
	assert_int_equal(file->npullable, builtin->npullable);
	for (size_t i = 0; i < builtin->npullable; i++) {
		const struct sim_model *a = &builtin->pullable[i], *b = &file->pullable[i];
		assert_string_equal(a->name, b->name);
		assert_true(a->file_bytes == b->file_bytes && a->vocab_size == b->vocab_size);
		assert_false(a->installed);
		assert_true(a->pullable);
	}
	sim_catalogue_free(builtin);
	sim_catalogue_free(file);
}

static void
test_large_catalogue(void **state)
{
	(void)state;
	struct sim_catalogue *cat = NULL;
	assert_int_equal(sim_catalogue_load(SOURCE_DIR "/sim/catalogues/large.json", &cat, NULL),
			 0);
	assert_true(cat->nmodels >= 8);
	for (size_t i = 0; i < cat->nmodels; i++) {
		assert_true(cat->models[i].file_bytes >= 4 * VD_GIB / 1.1);
		assert_true(cat->models[i].file_bytes <= 40 * VD_GIB);
		assert_true(cat->models[i].vocab_size >= 30000 &&
			    cat->models[i].vocab_size <= 262144);
		assert_true(cat->models[i].block_count >= 24 && cat->models[i].block_count <= 128);
	}
	sim_catalogue_free(cat);
}

static void
test_find(void **state)
{
	(void)state;
	struct sim_catalogue *cat = sim_catalogue_default();
	assert_non_null(sim_catalogue_find(cat, "all-minilm"));
	assert_non_null(sim_catalogue_find(cat, "all-minilm:latest"));
	assert_non_null(sim_catalogue_find(cat, "registry.ollama.ai/library/phi3:mini"));
	assert_null(sim_catalogue_find(cat, "phi3"));
	assert_null(sim_catalogue_find(cat, ""));
	const struct sim_model *m = sim_catalogue_find(cat, "llama3.2:1b");
	assert_non_null(m);
	assert_true(m->capabilities & SIM_CAP_COMPLETION);
	assert_true(sim_catalogue_find(cat, "nomic-embed-text")->capabilities & SIM_CAP_EMBEDDING);
	/* Case does not matter (Ollama's getExistingName). */
	assert_ptr_equal(sim_catalogue_find(cat, "LLAMA3.2:1B"), m);
	sim_catalogue_free(cat);
}

static void
test_pullable_and_copies(void **state)
{
	(void)state;
	struct sim_catalogue *cat = sim_catalogue_default();
	/* Pullable models are not installed: find misses them, a registry lookup hits. */
	assert_null(sim_catalogue_find(cat, "llama3.2:3b"));
	struct sim_model *p = sim_catalogue_lookup(cat, "llama3.2:3b", false);
	assert_non_null(p);
	assert_null(sim_catalogue_lookup(cat, "llama3.2:3b", true));
	p->installed = true;
	assert_ptr_equal(sim_catalogue_find(cat, "llama3.2:3b"), p);
	assert_int_equal(strlen(p->blob_digest), 64);
	assert_string_not_equal(p->blob_digest, p->digest);

	size_t before = sim_catalogue_count(cat);
	const struct sim_model *src = sim_catalogue_find(cat, "phi3:mini");
	struct sim_model *c = sim_catalogue_add_copy(cat, src, "me/phi:v1", 42);
	assert_non_null(c);
	assert_int_equal(sim_catalogue_count(cat), before + 1);
	assert_ptr_equal(sim_catalogue_at(cat, before), c);
	assert_ptr_equal(sim_catalogue_find(cat, "me/phi:v1"), c);
	assert_string_equal(c->digest, src->digest);
	assert_string_equal(c->blob_digest, src->blob_digest);
	assert_true(c->modified_ns == 42 && c->file_bytes == src->file_bytes);
	/* Copies are not in the registry: once deleted they cannot be pulled back. */
	c->installed = false;
	assert_null(sim_catalogue_lookup(cat, "me/phi:v1", false));
	assert_null(sim_catalogue_at(cat, before + 1));

	char *n = sim_catalogue_canonical_name("registry.ollama.ai/library/foo");
	assert_string_equal(n, "foo:latest");
	free(n);
	n = sim_catalogue_canonical_name("me/bar");
	assert_string_equal(n, "me/bar:latest");
	free(n);
	sim_catalogue_free(cat);
}

static void
test_pullable_validation(void **state)
{
	(void)state;
	static const char one[] =
	    "{\"name\": \"%s\", \"file_size\": 1000, \"footprint\": 1200, \"family\": \"llama\", "
	    "\"parameter_size\": \"1B\", \"quantization_level\": \"Q4_0\", \"capabilities\": "
	    "[\"completion\"], \"embedding_length\": 64, \"context_length\": 128, \"vocab_size\": "
	    "100, \"block_count\": 2, \"head_count\": 2, \"head_count_kv\": 2, "
	    "\"tokens_per_second_gpu\": 10, \"tokens_per_second_cpu\": 1}";
	char a[1024], b[1024], text[4096];
	snprintf(a, sizeof(a), one, "a");
	snprintf(b, sizeof(b), one, "A:latest");
	struct sim_catalogue *cat = NULL;
	char *cause = NULL;
	snprintf(text, sizeof(text), "{\"models\": [%s], \"pullable\": [%s]}", a, b);
	assert_int_equal(sim_catalogue_parse(text, strlen(text), &cat, &cause), -EINVAL);
	assert_string_equal(cause, "pullable: model \"A:latest\" is listed twice");
	free(cause);
	cause = NULL;
	snprintf(text, sizeof(text), "{\"models\": [%s], \"pullable\": {}}", a);
	assert_int_equal(sim_catalogue_parse(text, strlen(text), &cat, &cause), -EINVAL);
	assert_string_equal(cause, "\"pullable\" must be an array of models");
	free(cause);
	cause = NULL;
	snprintf(text, sizeof(text), "{\"models\": [%s], \"pullable\": [{\"name\": \"x\"}]}", a);
	assert_int_equal(sim_catalogue_parse(text, strlen(text), &cat, &cause), -EINVAL);
	assert_string_equal(cause, "pullable: model \"x\": missing field \"file_size\"");
	free(cause);
	cause = NULL;
	snprintf(text, sizeof(text), "{\"models\": [%s], \"pullable\": []}", a);
	assert_int_equal(sim_catalogue_parse(text, strlen(text), &cat, &cause), 0);
	assert_int_equal(cat->npullable, 0);
	sim_catalogue_free(cat);
}

static void
test_memory_model(void **state)
{
	(void)state;
	struct sim_catalogue *cat = sim_catalogue_default();
	const struct sim_model *m = sim_catalogue_find(cat, "llama3.2:1b");
	/* 2 x 16 blocks x 8 kv heads x 64 head dim x ctx x 2 bytes */
	assert_true(sim_model_kv_bytes(m, 4096) == 2ull * 16 * 8 * 64 * 4096 * 2);
	assert_true(sim_model_estimate_bytes(m, 4096) ==
		    m->file_bytes + sim_model_kv_bytes(m, 4096));
	/* The real footprint is always above Ollama's estimate by footprint - file. */
	for (int64_t ctx = 512; ctx <= 131072; ctx *= 4)
		assert_true(sim_model_actual_bytes(m, ctx) - sim_model_estimate_bytes(m, ctx) ==
			    m->footprint_bytes - m->file_bytes);
	/* The compute buffer: logits (128256 x 512 x 4 B) plus activations (4 x 2048 x 512 x 4 B),
	 * about 280 MB as llama.cpp reports for a Llama 3 vocabulary, and linear in ubatch. */
	assert_true(sim_model_compute_bytes(m, 512) == 512ull * (128256 + 4 * 2048) * 4);
	assert_true(sim_model_compute_bytes(m, 2048) == 4 * sim_model_compute_bytes(m, 512));
	sim_catalogue_free(cat);
}

static const char good_model[] =
    "\"file_size\":\"1GB\",\"footprint\":1300000000,\"family\":\"llama\","
    "\"parameter_size\":\"1B\",\"quantization_level\":\"Q4_0\",\"capabilities\":[\"completion\"],"
    "\"embedding_length\":2048,\"context_length\":4096,\"vocab_size\":32000,\"block_count\":16,"
    "\"head_count\":32,"
    "\"head_count_kv\":8,\"tokens_per_second_gpu\":100,\"tokens_per_second_cpu\":10";

static void
expect_error(const char *json, const char *fragment)
{
	struct sim_catalogue *cat = NULL;
	char *cause = NULL;
	assert_int_equal(sim_catalogue_parse(json, strlen(json), &cat, &cause), -EINVAL);
	assert_null(cat);
	assert_non_null(cause);
	if (strstr(cause, fragment) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", cause, fragment);
	free(cause);
}

static void
test_validation_errors(void **state)
{
	(void)state;
	char buf[2048];
	expect_error("{\"models\": [", "invalid JSON");
	expect_error("{\"models\": []}", "non-empty \"models\"");
	expect_error("{\"models\": [1]}", "models[0] must be an object");
	expect_error("{\"models\": [{\"file_size\":1}]}", "\"name\"");
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"a\",%s},{\"name\":\"a:latest\",%s}]}",
		 good_model, good_model);
	expect_error(buf, "listed twice");
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"a\",%s,\"footprint\":5}]}",
		 good_model);
	/* Duplicate keys are rejected by the JSON parser itself. */
	expect_error(buf, "duplicate");
	char *m = xstrdup(good_model);
	char *p = strstr(m, "1300000000");
	memcpy(p, "   1000000", 10);
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"b\",%s}]}", m);
	expect_error(buf, "footprint must be at least file_size");
	free(m);
	m = xstrdup(good_model);
	p = strstr(m, "\"completion\"");
	memcpy(p, "\"teleporter\"", 12);
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"c\",%s}]}", m);
	expect_error(buf, "unknown capability");
	free(m);
	m = xstrdup(good_model);
	p = strstr(m, "\"1GB\"");
	memcpy(p, "\"1XB\"", 5);
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"d\",%s}]}", m);
	expect_error(buf, "model \"d\": field \"file_size\"");
	free(m);
	expect_error("{\"models\":[{\"name\":\"e\",\"file_size\":1,\"footprint\":1}]}",
		     "missing field \"family\"");
	m = xstrdup(good_model);
	p = strstr(m, "\"vocab_size\":32000,");
	memmove(p, p + strlen("\"vocab_size\":32000,"),
		strlen(p + strlen("\"vocab_size\":32000,")) + 1);
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"v\",%s}]}", m);
	expect_error(buf, "model \"v\": missing field \"vocab_size\"");
	free(m);
	struct sim_catalogue *cat = NULL;
	char *cause = NULL;
	assert_int_equal(sim_catalogue_load("/nonexistent/catalogue.json", &cat, &cause), -ENOENT);
	assert_non_null(strstr(cause, "/nonexistent/catalogue.json"));
	free(cause);
	snprintf(buf, sizeof(buf), "{\"models\":[{\"name\":\"ok\",%s}]}", good_model);
	assert_int_equal(sim_catalogue_parse(buf, strlen(buf), &cat, NULL), 0);
	assert_string_equal(cat->models[0].name, "ok:latest");
	assert_true(cat->models[0].file_bytes == 1000000000);
	sim_catalogue_free(cat);
}

static int64_t
keep_alive_ok(const char *json)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	int64_t ns = 12345;
	char *cause = NULL;
	assert_int_equal(sim_parse_keep_alive(v, &ns, &cause), 0);
	assert_null(cause);
	json_decref(v);
	return ns;
}

static void
keep_alive_err(const char *json, const char *message)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	int64_t ns;
	char *cause = NULL;
	assert_int_equal(sim_parse_keep_alive(v, &ns, &cause), -EINVAL);
	assert_string_equal(cause, message);
	free(cause);
	json_decref(v);
}

static void
test_keep_alive(void **state)
{
	(void)state;
	assert_true(keep_alive_ok("3600") == 3600 * VD_NS_PER_S);
	assert_true(keep_alive_ok("0.5") == 500 * VD_NS_PER_MS);
	assert_true(keep_alive_ok("0") == 0);
	assert_true(keep_alive_ok("-1") == SIM_FOREVER_NS);
	assert_true(keep_alive_ok("\"5m\"") == 300 * VD_NS_PER_S);
	assert_true(keep_alive_ok("\"1h30m\"") == 5400 * VD_NS_PER_S);
	assert_true(keep_alive_ok("\"300ms\"") == 300 * VD_NS_PER_MS);
	assert_true(keep_alive_ok("\"0\"") == 0);
	assert_true(keep_alive_ok("\"0s\"") == 0);
	assert_true(keep_alive_ok("\"-1m\"") == SIM_FOREVER_NS);
	keep_alive_err("\"300\"", "time: missing unit in duration \"300\"");
	keep_alive_err("\"-1\"", "time: missing unit in duration \"-1\"");
	keep_alive_err("true", "Unsupported type: 'bool'");
}

static void
test_options(void **state)
{
	(void)state;
	struct sim_gen_opts o;
	json_t *v = json_loads("{\"num_ctx\":8192,\"num_gpu\":0,\"num_predict\":5,\"seed\":7,"
			       "\"bogus\":\"ignored\",\"temperature\":0.1}",
			       0, NULL);
	assert_int_equal(sim_parse_options(v, &o, NULL), 0);
	assert_int_equal(o.load.num_ctx, 8192);
	assert_int_equal(o.load.num_gpu, 0);
	assert_int_equal(o.num_predict, 5);
	assert_int_equal(o.seed, 7);
	assert_int_equal(o.load.main_gpu, -1);
	json_decref(v);
	assert_int_equal(sim_parse_options(NULL, &o, NULL), 0);
	assert_int_equal(o.load.num_gpu, -1);
	v = json_loads("{\"num_ctx\":\"big\"}", 0, NULL);
	char *cause = NULL;
	assert_int_equal(sim_parse_options(v, &o, &cause), -EINVAL);
	assert_string_equal(cause, "option \"num_ctx\" must be of type integer");
	free(cause);
	json_decref(v);
	/* FromMap converts JSON's float64 with Go's int64(): truncation toward zero. */
	v = json_loads("{\"num_predict\":2.9,\"num_ctx\":4096.5,\"seed\":-1.5}", 0, NULL);
	assert_int_equal(sim_parse_options(v, &o, NULL), 0);
	assert_int_equal(o.num_predict, 2);
	assert_int_equal(o.load.num_ctx, 4096);
	assert_int_equal(o.seed, -1);
	json_decref(v);
	v = json_loads("{\"temperature\":\"hot\"}", 0, NULL);
	cause = NULL;
	assert_int_equal(sim_parse_options(v, &o, &cause), -EINVAL);
	assert_string_equal(cause, "option \"temperature\" must be of type float32");
	free(cause);
	json_decref(v);
}

static void
test_host_check(void **state)
{
	(void)state;
	assert_true(sim_host_allowed("localhost:11434"));
	assert_true(sim_host_allowed("127.0.0.1:11434"));
	assert_true(sim_host_allowed("[::1]:11434"));
	assert_true(sim_host_allowed("192.168.1.5"));
	assert_true(sim_host_allowed("box.internal:80"));
	assert_false(sim_host_allowed("evil.example.com"));
	assert_false(sim_host_allowed("8.8.8.8:11434"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_matches_file),
	    cmocka_unit_test(test_large_catalogue),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_pullable_and_copies),
	    cmocka_unit_test(test_pullable_validation),
	    cmocka_unit_test(test_memory_model),
	    cmocka_unit_test(test_validation_errors),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_host_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
