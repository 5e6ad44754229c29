/*
 * runner-opts.c: the options of a request that decide its model's runner, and keep_alive
 * (runner-opts.h). Pure: the engine calls runner_opts_normalize at dispatch, the Ollama
 * front door runner_opts_keep_alive when it reads a request.
 *
 * Ollama compares a request's reload options with its runner's and, when any differs,
 * waits for the runner to go idle, unloads it and loads the model again. Two clients
 * alternating num_ctx 2048 and 4096 on one model thus reload it for every request. A
 * runner with at least the context a job asks for serves that job as well, so the job is
 * given the runner's options instead; only a job asking more context than the runner has
 * needs a reload, and then one that keeps the larger context for everyone after it.
 */
#include "runner-opts.h"

#include "util.h"

#include <errno.h>
#include <string.h>

/* Ollama's needsReload compares these (and draft options vramd never sends). */
static const char *const runner_opts_reload_keys[] = {
    "num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread",
};

bool
runner_opts_is_reload_key(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(runner_opts_reload_keys); i++)
		if (strcmp(name, runner_opts_reload_keys[i]) == 0)
			return true;
	return false;
}

int64_t
runner_opts_num_ctx(const json_t *options)
{
	json_t *v = json_object_get(options, "num_ctx");
	return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

json_t *
runner_opts_reload_subset(const json_t *options)
{
	json_t *out = json_object();
	for (size_t i = 0; i < VD_ARRAY_LEN(runner_opts_reload_keys); i++) {
		json_t *v = json_object_get(options, runner_opts_reload_keys[i]);
		if (v != NULL)
			json_object_set(out, runner_opts_reload_keys[i], v);
	}
	return out;
}

enum runner_opts_fit
runner_opts_normalize(const json_t *options, const struct runner_opts *runner, json_t **out)
{
	*out = NULL;
	int64_t want = runner_opts_num_ctx(options);
	if (want > 0 && runner->ctx_max > 0 && want > runner->ctx_max)
		want = runner->ctx_max;
	/* A runner vramd started with an explicit num_ctx has it even when /api/ps lists
	 * less (a model trained on less): asking again must not reload it forever. */
	int64_t have = runner->ctx;
	int64_t loaded_with = runner_opts_num_ctx(runner->options);
	if (loaded_with > have)
		have = loaded_with;
	if (want > 0 && have > 0 && want > have)
		return RUNNER_OPTS_NEEDS_MORE;

	json_t *fitted = json_is_object(options) ? json_deep_copy(options) : json_object();
	for (size_t i = 0; i < VD_ARRAY_LEN(runner_opts_reload_keys); i++) {
		const char *key = runner_opts_reload_keys[i];
		json_t *theirs = json_object_get(runner->options, key);
		if (theirs != NULL)
			json_object_set(fitted, key, theirs);
		else if (strcmp(key, "num_ctx") != 0 || runner->options != NULL)
			json_object_del(fitted, key); /* automatic, as the runner has it */
		else if (runner->ctx > 0)
			/* An adopted runner: how it was started is unknown, but a num_ctx equal to
			 * its listed context is what it has, automatic or not. */
			json_object_set_new(fitted, key, json_integer(runner->ctx));
	}
	bool same = json_is_object(options) ? json_equal(fitted, (json_t *)options)
					    : json_object_size(fitted) == 0;
	if (same)
		json_decref(fitted);
	else
		*out = fitted;
	return RUNNER_OPTS_FITS;
}

int
runner_opts_keep_alive(const json_t *value, int64_t *ms, char **cause)
{
	if (json_is_number(value)) {
		double secs = json_number_value(value);
		if (secs < 0 || secs * 1000.0 >= 9.2e18) {
			*ms = INT64_MAX;
			return 0;
		}
		*ms = (int64_t)(secs * 1000.0);
		return 0;
	}
	if (json_is_string(value)) {
		int64_t ns;
		int rc = vd_parse_go_duration(json_string_value(value), &ns, cause);
		if (rc < 0)
			return rc;
		*ms = ns < 0 || ns == INT64_MAX ? INT64_MAX : ns / 1000000;
		return 0;
	}
	/* Go's words when api.Duration meets another JSON type. */
	const char *type = json_is_boolean(value)  ? "bool"
			   : json_is_array(value)  ? "[]interface {}"
			   : json_is_object(value) ? "map[string]interface {}"
						   : "<nil>";
	return vd_fail(cause, -EINVAL, "Unsupported type: '%s'", type);
}
