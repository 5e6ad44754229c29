/*
 * sim-validate.h: the request checks of Ollama's GenerateHandler and ChatHandler
 * (server/routes.go) that reject a request with 400 before it is scheduled:
 * top_logprobs out of 0-20, raw mode with template/system/context, think on a model
 * without thinking, and a capability the request needs (tools, insert for a suffix)
 * that the model lacks. Each check returns 0, or a negative code with *cause set to
 * Ollama's text (the caller frees it); the caller replies 400 and decides when each
 * check runs, in Ollama's order. Callers: sim-api.c.
 */
#ifndef VRAMD_SIM_VALIDATE_H
#define VRAMD_SIM_VALIDATE_H

#include "sim-catalogue.h"

#include <jansson.h>
#include <stdbool.h>

/* Which Ollama rules apply: v0.33, or Ollama 0.12's (--ollama-version 0.12). */
enum sim_api_rules { SIM_RULES_V033, SIM_RULES_V012 };

/* What a generate or chat request asks of its model, read from its body. */
struct sim_request_needs {
	bool think;		 /* "think" is true or a level ("high", ...) */
	const char *think_level; /* "think" as a string, else NULL; borrowed from the body */
	bool tools;		 /* chat: a non-empty "tools" array */
	bool insert;		 /* generate: a non-empty "suffix" */
	bool raw_conflict;	 /* generate: "raw" with "template", "system" or "context" */
};

/*
 * Reads the fields behind the checks from a generate (chat = false) or chat body,
 * with Go's decoder messages for wrong types (`json: cannot unmarshal string into Go
 * struct field ChatRequest.tools of type api.Tools`) and api.ThinkValue's for a bad
 * "think". Then, in v0.33, the top_logprobs range (`top_logprobs must be between 0
 * and 20`): Ollama checks it right after decoding, before the model name. Returns 0
 * or -EINVAL with *cause.
 */
int sim_validate_decode(const json_t *body, bool chat, enum sim_api_rules rules,
			struct sim_request_needs *needs, char **cause);

/*
 * The checks after the model lookup and the unload path, in Ollama's order: raw mode
 * (generate), then thinking, then the capabilities the request needs. name is the
 * model as the request spelled it (quoted in `"NAME" does not support thinking`);
 * m the model found. Returns 0 or -EINVAL with *cause: `raw mode does not support
 * template, system, or context`, `"NAME" does not support thinking|generate|chat`, or
 * `registry.ollama.ai/library/NAME:TAG does not support tools` (insert, and in 0.12
 * thinking; several missing are joined by newlines as Go's errors.Join does).
 */
int sim_validate_model(const struct sim_model *m, const char *name, bool chat,
		       enum sim_api_rules rules, const struct sim_request_needs *needs,
		       char **cause);

/* The model's fully qualified name as Ollama's model.Name prints it:
 * registry.ollama.ai/library/NAME:TAG for a bare name. Caller frees. */
char *sim_model_full_name(const char *name);

/* Go's encoding/json message for a value of the wrong type in go_struct.field
 * ("json: cannot unmarshal string into Go struct field GenerateRequest.raw of type bool";
 * a number a numeric field cannot hold is quoted: "number 2.5"). Returns -EINVAL. */
int sim_go_type_error(char **cause, const json_t *v, const char *go_struct, const char *field,
		      const char *go_type);

#endif
