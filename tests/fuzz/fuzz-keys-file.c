/*
 * fuzz-keys-file.c: the API_KEYS_FILE parser of src/api/keys.c on arbitrary bytes. A file
 * it accepts gives 1 to KEYS_MAX keys with unique names, weights within range and a
 * default priority no more urgent than the maximum, and no key for an empty secret; one
 * it refuses must say why, naming the file.
 */
#include "keys.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct api_keys *keys = NULL;
	char *cause = NULL;
	if (keys_parse(text, "fuzz.json", &keys, &cause) == 0) {
		size_t n = keys_count(keys);
		assert(n >= 1 && n <= KEYS_MAX);
		for (size_t i = 0; i < n; i++) {
			const struct api_key *k = keys_at(keys, i);
			assert(k->name != NULL && k->name[0] != '\0');
			assert(k->weight >= 1 && k->weight <= KEYS_WEIGHT_MAX);
			assert(k->default_priority >= k->max_priority);
			assert(keys_find_name(keys, k->name) == k);
			(void)k; /* the asserts are its only use */
		}
		assert(keys_lookup(keys, "", 0) == NULL);
		keys_free(keys);
	} else {
		assert(keys == NULL && cause != NULL);
		assert(strstr(cause, "fuzz.json") != NULL);
		free(cause);
	}
	free(text);
	return 0;
}
