/*
 * test-job.c: unit tests for src/core/job.c: ids, names, reference counting, finishing, and
 * the JSON shape of GET /api/job/{id}, deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "job.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void
test_ids(void **state)
{
	(void)state;
	char id[JOB_ID_LEN];
	job_format_id(0x18c2f3a9b11, id);
	assert_string_equal(id, "j-0000018c2f3a9b11");
	int64_t seq = 0;
	assert_true(job_parse_id(id, &seq));
	assert_true(seq == 0x18c2f3a9b11);
	assert_false(job_parse_id("j-0000018C2F3A9B11", &seq)); /* upper case is not ours */
	assert_false(job_parse_id("j-123", &seq));
	assert_false(job_parse_id("x-0000018c2f3a9b11", &seq));
	assert_false(job_parse_id("j-ffffffffffffffff", &seq)); /* beyond INT64_MAX */
	assert_false(job_parse_id("", &seq));
}

static void
test_names(void **state)
{
	(void)state;
	for (int k = 0; k < JOB_NKINDS; k++)
		assert_int_equal(job_kind_from_name(job_kind_name(k)), k);
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		assert_int_equal(job_priority_from_name(job_priority_name(p)), p);
	for (int s = 0; s < JOB_NSTATUSES; s++)
		assert_int_equal(job_status_from_name(job_status_name(s)), s);
	assert_int_equal(job_priority_from_name("urgent"), -1);
	assert_string_equal(job_status_name(JOB_NSTATUSES), "?");
}

static void
test_lifecycle_and_json(void **state)
{
	(void)state;
	struct job *job = job_new(7, "llama3.2", JOB_KIND_GENERATE, JOB_PRIO_LOW,
				  json_pack("{s:s}", "prompt", "hi"), json_pack("{s:i}", "k", 1));
	assert_int_equal(job->refcount, 1);
	assert_int_equal(job->status, JOB_QUEUED);
	assert_false(job_is_final(job));
	/* The request is kept as compact text and parsed back whole. */
	assert_string_equal(job->request_text, "{\"prompt\":\"hi\"}");
	json_t *request = job_request(job);
	assert_string_equal(json_string_value(json_object_get(request, "prompt")), "hi");
	json_decref(request);
	assert_int_equal(job_num_ctx(job), 0);
	assert_ptr_equal(job_ref(job), job);
	assert_int_equal(job->refcount, 2);
	job_unref(job);

	json_t *j = job_to_json(job);
	assert_string_equal(json_string_value(json_object_get(j, "job_id")), "j-0000000000000007");
	assert_string_equal(json_string_value(json_object_get(j, "status")), "queued");
	assert_string_equal(json_string_value(json_object_get(j, "priority")), "low");
	assert_null(json_object_get(j, "result"));
	assert_true(json_is_null(json_object_get(j, "started_at")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "metadata"), "k")),
			 1);
	assert_true(json_is_null(json_object_get(j, "key"))); /* no API keys */
	json_decref(j);
	job->key = xstrdup("batch");
	j = job_to_json(job);
	assert_string_equal(json_string_value(json_object_get(j, "key")), "batch");
	json_decref(j);

	job->submitted_at_ms = 1726175849110;
	job_finish(job, JOB_COMPLETE, json_pack("{s:s}", "response", "hello"), NULL, 1726175850000);
	assert_true(job_is_final(job));
	j = job_to_json(job);
	assert_string_equal(json_string_value(json_object_get(j, "submitted_at")),
			    "2024-09-12T21:17:29.110Z");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "result"), "response")), "hello");
	json_decref(j);

	job_finish(job, JOB_FAILED, NULL, "model not found", 1726175851000);
	j = job_to_json(job);
	assert_null(json_object_get(j, "result"));
	assert_string_equal(json_string_value(json_object_get(j, "error")), "model not found");
	json_decref(j);
	job_unref(job);

	/* options.num_ctx is read once, when the job is made. */
	job = job_new(9, "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL,
		      json_pack("{s:s,s:{s:i}}", "prompt", "x", "options", "num_ctx", 8192), NULL);
	assert_int_equal(job_num_ctx(job), 8192);
	job_unref(job);

	/* No request and no metadata. */
	job = job_new(8, "m", JOB_KIND_EMBED, JOB_PRIO_HIGH, NULL, NULL);
	assert_string_equal(job->request_text, "{}");
	j = job_to_json(job);
	assert_true(json_is_null(json_object_get(j, "metadata")));
	json_decref(j);
	job_unref(job);
	job_unref(NULL);
}

/* Deadlines: the monotonic twin of the wall-clock deadline, deadline_missed once the job
 * started or ended after it, and the two fields of GET /api/job/{id}. */
static void
test_deadline(void **state)
{
	(void)state;
	struct job *job = job_new(9, "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL, NULL, NULL);
	json_t *j = job_to_json(job);
	assert_true(json_is_null(json_object_get(j, "deadline_at")));
	assert_true(json_is_false(json_object_get(j, "deadline_missed")));
	json_decref(j);

	/* Wall 1 000 000, monotonic 5 000: a deadline 30 s on is at monotonic 35 000. */
	job_set_deadline(job, 1030000, 1000000, 5000);
	assert_int_equal(job->deadline_at_ms, 1030000);
	assert_int_equal(job->deadline_mono_ms, 35000);
	/* Long past on a young monotonic clock: still a deadline (1), the most urgent. */
	job_set_deadline(job, 1000, 1000000, 5000);
	assert_int_equal(job->deadline_mono_ms, 1);
	job_set_deadline(job, 0, 1000000, 5000);
	assert_int_equal(job->deadline_at_ms, 0);
	assert_int_equal(job->deadline_mono_ms, 0);

	job_set_deadline(job, 1030000, 1000000, 5000);
	assert_false(job_deadline_missed(job)); /* waiting */
	job->started_at_ms = 1029000;
	assert_false(job_deadline_missed(job));
	job_finish(job, JOB_COMPLETE, NULL, NULL, 1031000); /* finished late */
	assert_true(job_deadline_missed(job));
	j = job_to_json(job);
	assert_int_equal(json_integer_value(json_object_get(j, "deadline_at")), 1030000);
	assert_true(json_is_true(json_object_get(j, "deadline_missed")));
	json_decref(j);
	job->completed_at_ms = 0;
	job->started_at_ms = 1030001; /* started late */
	assert_true(job_deadline_missed(job));
	job_unref(job);
}

/* MODEL_PLACEMENT lists and the default placement of a job that names none (issue 11). */
static void
test_placement(void **state)
{
	(void)state;
	const char *list = " llama3.1:70b = cpu, phi3=gpu,,e:1b=any ";
	char *cause = NULL;

	assert_int_equal(job_placement_from_name("gpu"), JOB_PLACE_GPU);
	assert_int_equal(job_placement_from_name("GPU"), -1);
	assert_string_equal(job_placement_name(JOB_PLACE_ANY), "any");
	assert_int_equal(job_placement_list_check(list, &cause), 0);
	assert_int_equal(job_placement_list_check("", &cause), 0);
	assert_int_equal(job_placement_for_model(list, "llama3.1:70b"), JOB_PLACE_CPU);
	assert_int_equal(job_placement_for_model(list, "phi3:latest"), JOB_PLACE_GPU);
	assert_int_equal(job_placement_for_model(list, "phi3:mini"), -1);
	assert_int_equal(job_placement_for_model(list, "e:1b"), JOB_PLACE_ANY);
	assert_int_equal(job_placement_for_model(list, "llama3.1"), -1);
	/* Without an entry: any with ALLOW_CPU, else gpu. */
	assert_int_equal(job_placement_default(list, "x:1b", true), JOB_PLACE_ANY);
	assert_int_equal(job_placement_default(list, "x:1b", false), JOB_PLACE_GPU);
	assert_int_equal(job_placement_default(list, "llama3.1:70b", false), JOB_PLACE_CPU);

	assert_int_equal(job_placement_list_check("a=gpu,b=fast", &cause), -EINVAL);
	assert_non_null(strstr(cause, "'b=fast'"));
	free(cause);
	cause = NULL;
	assert_int_equal(job_placement_list_check("a=gpu,b", &cause), -EINVAL);
	assert_non_null(strstr(cause, "'b'"));
	free(cause);
	cause = NULL;
	assert_int_equal(job_placement_list_check("=cpu", &cause), -EINVAL);
	free(cause);

	struct job *job = job_new(1, "m", JOB_KIND_GENERATE, JOB_PRIO_NORMAL, NULL, NULL);
	job->placement = JOB_PLACE_CPU;
	json_t *o = job_to_json(job);
	assert_string_equal(json_string_value(json_object_get(o, "placement")), "cpu");
	json_decref(o);
	job_unref(job);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_placement),
	    cmocka_unit_test(test_lifecycle_and_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
