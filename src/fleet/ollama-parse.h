/*
 * ollama-parse.h: pure parsers of Ollama's JSON replies (/api/version, /api/tags,
 * /api/show, /api/ps, load/unload and run replies, {"error": ...} bodies) into the plain C
 * structs of backend.h. No I/O and no state, so backend-ollama.c, the unit tests and the
 * fuzz target (tests/fuzz/fuzz-ollama-reply.c) share them. Every function accepts any
 * bytes: malformed input is an error return with *cause set (caller frees), never a crash.
 * Missing optional fields get their "unknown" values; unknown fields are ignored.
 */
#ifndef VRAMD_OLLAMA_PARSE_H
#define VRAMD_OLLAMA_PARSE_H

#include "backend.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* {"version":"0.33.0"} -> *version (caller frees). */
int ollama_parse_version(const char *body, size_t len, char **version, char **cause);

/* /api/tags -> *out (cleanup with backend_model_list_cleanup). Models without a "name"
 * are skipped; without "capabilities" their capabilities are inferred from the family
 * (capabilities_reported false). */
int ollama_parse_tags(const char *body, size_t len, struct backend_model_list *out, char **cause);

/* /api/show -> the BACKEND_CAP_* bits of its "capabilities" list. Returns 0, or -ENOENT
 * when the reply has no capabilities list (older servers), or -EINVAL when malformed. */
int ollama_parse_show_capabilities(const char *body, size_t len, unsigned *caps, char **cause);

/* /api/show -> the architecture fields of "model_info" (arrays, as some models give per
 * layer, count as their largest element). Returns 0, or -ENOENT when model_info or
 * general.architecture is missing, or -EINVAL when malformed. */
int ollama_parse_show_arch(const char *body, size_t len, struct backend_model_arch *arch,
			   char **cause);

/* /api/ps -> *out (cleanup with backend_running_list_cleanup). */
int ollama_parse_ps(const char *body, size_t len, struct backend_running_list *out, char **cause);

/* A load or unload reply: /api/generate or /api/chat ({"done":true,"done_reason":"load"})
 * or /api/embed ({"embeddings":[]}). Returns 0 when it says the operation happened. */
int ollama_parse_load_reply(const char *body, size_t len, char **cause);

/* A parsed run reply; *result is a new reference (generate: the "response" string, chat:
 * the "message" object, embed: the "embeddings" array); done_reason is owned (or NULL). */
struct ollama_run_reply {
	json_t *result;
	struct backend_run_metrics metrics;
	char *done_reason;
};

/* A non-streaming /api/generate, /api/chat or /api/embed reply of the given job kind.
 * A reply carrying "error" or "done":false is an error. On failure *out is left empty. */
int ollama_parse_run_reply(enum job_kind kind, const char *body, size_t len,
			   struct ollama_run_reply *out, char **cause);
void ollama_run_reply_cleanup(struct ollama_run_reply *reply);

/* The "error" string of an error reply, or NULL when the body is not {"error": "..."}.
 * Caller frees. */
char *ollama_parse_error(const char *body, size_t len);

/* BACKEND_CAP_* bits for a JSON array of capability names (unknown names ignored). */
unsigned ollama_capabilities_from_json(const json_t *array);
/* Capabilities guessed from a model family when the server does not report them:
 * BERT-like families ("bert", "nomic-bert", "xlm-roberta", ...) are embedding-only,
 * everything else completion. */
unsigned ollama_capabilities_from_family(const char *family);

/* Parses an RFC 3339 time as Go prints it ("2024-06-04T14:38:31.83753-07:00", "...Z")
 * into Unix ms. Returns 0 or -EINVAL. */
int ollama_parse_time(const char *text, int64_t *wall_ms);

#endif
