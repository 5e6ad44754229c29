/*
 * fuzz-gpu-body.c: the body parsers of POST /api/gpu/memory/allocate and PUT
 * /api/gpu/config (api_gpu_allocate_parse and api_gpu_config_parse in src/api/api-gpu.c) on
 * arbitrary bytes parsed as JSON. The first byte picks the parser. A config change that
 * parses is then applied with config_set_many to a fresh configuration, which must stay
 * valid (its own invariant) whether the change is accepted or refused.
 */
#include "api.h"
#include "config.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_allocate(const json_t *body)
{
	struct api_gpu_allocation a;
	char *cause = NULL;
	int status = api_gpu_allocate_parse(body, &a, &cause);
	if (status == 0) {
		assert(cause == NULL && a.id != NULL && *a.id != '\0' && strlen(a.id) <= 64);
		assert(a.renew || a.bytes > 0);
		assert(a.ttl_s >= -1 && a.ttl_s <= 604800);
	} else {
		assert(status == 400 && cause != NULL && strlen(cause) < 2048);
		free(cause);
	}
}

static void
fuzz_config(const json_t *body)
{
	struct api_gpu_config_change change;
	char *cause = NULL;
	int status = api_gpu_config_parse(body, &change, &cause);
	if (status == 0) {
		struct config *cfg = config_new();
		json_t *changed = NULL;
		if (config_set_many(cfg, change.config, &changed, &cause) == 0) {
			assert(cause == NULL);
			assert(config_int(cfg, CONFIG_TEMP_NORMAL_C) <=
			       config_int(cfg, CONFIG_TEMP_THROTTLED_C));
			json_decref(changed);
		} else {
			assert(cause != NULL);
		}
		free(cause);
		config_free(cfg);
	} else {
		assert((status == 400 || status == 403) && cause != NULL);
		free(cause);
	}
	json_decref(change.config);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	json_t *body = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if (json_is_object(body)) {
		if (data[0] & 1)
			fuzz_config(body);
		else
			fuzz_allocate(body);
	}
	json_decref(body);
	return 0;
}
