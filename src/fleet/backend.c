/*
 * backend.c: the inference backend registry and the wrappers callers use instead of the
 * ops table (see backend.h). The table of backends is explicit; today it holds Ollama.
 * Called by the engine (load, unload, run, cancel) and the monitor (version, tags, ps).
 */
#include "backend.h"

#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct backend_ops *const backend_table[] = {
    &backend_ollama_ops,
};

int
backend_new(const char *kind, const struct backend_config *config, struct backend **out,
	    char **cause)
{
	const struct backend_ops *ops = NULL;

	*out = NULL;
	if (!kind)
		kind = "ollama";
	for (size_t i = 0; i < VD_ARRAY_LEN(backend_table); i++)
		if (strcmp(backend_table[i]->name, kind) == 0)
			ops = backend_table[i];
	if (!ops)
		return vd_fail(cause, -EINVAL, "unknown backend \"%s\"", kind);
	if (!config->url || !*config->url)
		return vd_fail(cause, -EINVAL, "backend %s: no URL", kind);
	if (!vd_str_has_prefix(config->url, "http://") &&
	    !vd_str_has_prefix(config->url, "https://"))
		return vd_fail(cause, -EINVAL,
			       "backend URL \"%s\" must start with http:// or https://",
			       config->url);
	if (!config->httpc)
		return vd_fail(cause, -EINVAL, "backend %s: no HTTP client", kind);

	struct backend *b = xcalloc(1, sizeof(*b));
	b->ops = ops;
	b->url = xstrdup(config->url);
	size_t len = strlen(b->url);
	while (len > 0 && b->url[len - 1] == '/')
		b->url[--len] = '\0';
	int rc = ops->init(b, config, cause);
	if (rc < 0) {
		free(b->url);
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void
backend_free(struct backend *b)
{
	if (!b)
		return;
	b->ops->free(b);
	free(b->url);
	free(b);
}

const char *
backend_name(const struct backend *b)
{
	return b->ops->name;
}

struct backend_call *
backend_version(struct backend *b, backend_version_cb *cb, void *arg)
{
	return b->ops->version(b, cb, arg);
}

struct backend_call *
backend_list_installed(struct backend *b, backend_models_cb *cb, void *arg)
{
	return b->ops->list_installed(b, cb, arg);
}

struct backend_call *
backend_list_running(struct backend *b, backend_running_cb *cb, void *arg)
{
	return b->ops->list_running(b, cb, arg);
}

struct backend_call *
backend_load(struct backend *b, const struct backend_load_request *req, backend_done_cb *cb,
	     void *arg)
{
	return b->ops->load(b, req, cb, arg);
}

struct backend_call *
backend_unload(struct backend *b, const struct backend_load_request *req, backend_done_cb *cb,
	       void *arg)
{
	return b->ops->unload(b, req, cb, arg);
}

struct backend_call *
backend_run(struct backend *b, const struct backend_run_request *req, backend_run_cb *cb, void *arg)
{
	return b->ops->run(b, req, cb, arg);
}

void
backend_call_cancel(struct backend *b, struct backend_call *call)
{
	if (call)
		b->ops->cancel(call);
}

void
backend_model_list_cleanup(struct backend_model_list *list)
{
	for (size_t i = 0; i < list->n; i++) {
		struct backend_model_info *m = &list->models[i];
		free(m->name);
		free(m->digest);
		free(m->family);
		free(m->parameter_size);
		free(m->quantization_level);
	}
	free(list->models);
	list->models = NULL;
	list->n = 0;
}

void
backend_running_list_cleanup(struct backend_running_list *list)
{
	for (size_t i = 0; i < list->n; i++) {
		free(list->models[i].name);
		free(list->models[i].model);
		free(list->models[i].digest);
	}
	free(list->models);
	list->models = NULL;
	list->n = 0;
}

const char *
backend_error_name(enum backend_error error)
{
	switch (error) {
	case BACKEND_OK:
		return "ok";
	case BACKEND_ERR_REMOTE:
		return "remote";
	case BACKEND_ERR_UNAVAILABLE:
		return "unavailable";
	case BACKEND_ERR_PROTOCOL:
		return "protocol";
	}
	return "unknown";
}
