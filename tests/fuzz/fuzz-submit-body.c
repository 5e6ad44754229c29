/*
 * fuzz-submit-body.c: the submit body validation of src/api/api-parse.c
 * (api_submit_parse) on arbitrary bytes parsed as JSON, against a registry of a
 * completion model with a known training context and an embedding model. It must never
 * crash or leak; an accepted body must give a job the model can run, with checked
 * options; a refused one a status of 400, 404 or 503 and a bounded message. The corpus
 * holds realistic bodies (tests/fuzz/corpus/submit-body/).
 */
#include "api-parse.h"
#include "registry.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built once and kept: reachable at exit, so not a leak. */
static struct registry *fuzz_registry;

static struct registry *
fuzz_registry_get(void)
{
	if (fuzz_registry == NULL) {
		fuzz_registry = registry_new(1.3);
		registry_set_context(fuzz_registry, 4096, 1);
		registry_begin_tags(fuzz_registry);
		registry_set_installed(fuzz_registry, "qwen2.5:0.5b", 500000000, "qwen2", "494M",
				       "Q4_K_M", REGISTRY_CAP_COMPLETION | REGISTRY_CAP_TOOLS);
		registry_set_installed(fuzz_registry, "all-minilm:latest", 90000000, "bert", "23M",
				       "F16", REGISTRY_CAP_EMBEDDING);
		registry_set_installed(fuzz_registry, "smollm:360m", 200000000, "llama", "362M",
				       "Q4_0", 0);
		registry_end_tags(fuzz_registry);
		registry_set_arch(fuzz_registry, "qwen2.5:0.5b", 32768, 24, 14, 2, 896);
	}
	return fuzz_registry;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = json_loadb((const char *)data, size, 0, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		return 0;
	}
	struct api_submit_env env = {
	    .registry = fuzz_registry_get(),
	    .models_known = size % 7 != 0, /* now and then, the model list is not known */
	    .backend_url = "http://127.0.0.1:11434",
	};
	struct api_submit sub;
	char *cause = NULL;
	int status = api_submit_parse(body, &env, &sub, &cause);
	if (status == 0) {
		assert(cause == NULL && sub.model != NULL && sub.model->installed);
		assert(registry_supports_kind(sub.model, (int)sub.kind));
		assert(json_is_object(sub.request));
		assert(json_object_get(sub.request, "model") == NULL);
		assert(json_object_get(sub.request, "stream") == NULL);
		json_t *options = json_object_get(sub.request, "options");
		assert(options == NULL || json_is_object(options));
		assert(json_object_get(options, "num_gpu") == NULL);
		assert(json_object_get(options, "main_gpu") == NULL);
		(void)options; /* only read by the asserts: unused in a Release build */
		assert(sub.num_ctx >= 0 && sub.num_ctx <= API_NUM_CTX_MAX);
		assert(sub.model->ctx_train <= 0 || sub.num_ctx <= sub.model->ctx_train);
		assert(sub.metadata == NULL || json_is_object(sub.metadata));
		assert(env.models_known);
		api_submit_cleanup(&sub);
	} else {
		assert(status == 400 || status == 404 || status == 503);
		assert(cause != NULL && sub.request == NULL && sub.metadata == NULL);
		/* Messages quote client text only in bounded pieces (a model name is at most
		 * API_MODEL_NAME_MAX). */
		assert(strlen(cause) < 2048);
		free(cause);
	}
	json_decref(body);
	return 0;
}
