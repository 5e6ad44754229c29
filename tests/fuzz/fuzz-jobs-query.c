/*
 * fuzz-jobs-query.c: the GET /api/jobs parameter parser of src/api/api-parse.c
 * (api_jobs_filter_parse) on arbitrary bytes: up to three lines give status, priority
 * and model (a missing line is an absent parameter). It must never crash; a success
 * gives masks within the enums (non-empty for a given list), a refusal a bounded
 * message. The corpus is tests/fuzz/corpus/jobs-query/.
 */
#include "api-parse.h"

#include <assert.h>
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
	char *params[3] = {NULL, NULL, NULL};
	char *p = text;
	for (int i = 0; i < 3 && p != NULL && (size_t)(p - text) < strlen(text) + 1; i++) {
		params[i] = p;
		p = strchr(p, '\n');
		if (p != NULL)
			*p++ = '\0';
	}
	struct store_job_filter filter = {.limit = 7};
	char *cause = NULL;
	int rc = api_jobs_filter_parse(params[0], params[1], params[2], &filter, &cause);
	if (rc == 0) {
		assert(cause == NULL && filter.limit == 7);
		assert((filter.status_mask & ~((1u << JOB_NSTATUSES) - 1)) == 0);
		assert((filter.priority_mask & ~((1u << JOB_NPRIORITIES) - 1)) == 0);
		assert(params[0] == NULL || filter.status_mask != 0);
		assert(params[1] == NULL || filter.priority_mask != 0);
		assert(filter.model == params[2]);
		assert(filter.model == NULL || strlen(filter.model) <= API_MODEL_NAME_MAX);
	} else {
		assert(cause != NULL && strlen(cause) < 512);
		free(cause);
	}
	free(text);
	return 0;
}
