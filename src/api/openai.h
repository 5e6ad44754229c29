/*
 * openai.h: the translation between OpenAI's API (/v1/chat/completions, /v1/completions,
 * /v1/embeddings, /v1/models) and Ollama's native one (/api/chat, /api/generate,
 * /api/embed, /api/tags), field by field as Ollama's own compatibility layer does it
 * (openai/openai.go and middleware/openai.go in github.com/ollama/ollama). vramd's nodes
 * are Ollama servers that may not serve /v1, so vramd speaks OpenAI to its clients and
 * Ollama to its nodes.
 *
 * Pure: JSON in, JSON or text out. No I/O, no clock, no globals: the caller passes the
 * reply id and the `created` time. The /v1 handlers call it in three steps:
 *
 *   1. a request body -> the native request and what the reply must look like
 *      (openai_chat_to_ollama, openai_completion_to_ollama, openai_embeddings_to_ollama);
 *      on a bad body, the OpenAI error to answer (openai_error_json with info.param);
 *   2. the node's native reply -> the OpenAI reply body (openai_chat_reply,
 *      openai_completion_reply, openai_embeddings_reply), or, when streaming, each native
 *      NDJSON chunk -> server-sent events (struct openai_stream);
 *   3. an error from vramd or from the node -> OpenAI's error object (openai_error_json,
 *      openai_error_from_ollama).
 *
 * Ownership: every returned json_t * is a new reference and every returned char * is
 * the caller's to free; const arguments are borrowed for the call only.
 */
#ifndef VRAMD_OPENAI_H
#define VRAMD_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_buf;

/* The longest param name an error names ("messages[12].content[3].image_url"). */
#define OPENAI_PARAM_MAX 64
/* The most inputs one embeddings request may carry (OpenAI's own limit). */
#define OPENAI_EMBED_INPUTS_MAX 2048
/* Room for an id made by openai_make_id. */
#define OPENAI_ID_MAX 48

enum openai_endpoint {
	OPENAI_CHAT,	    /* /v1/chat/completions -> /api/chat */
	OPENAI_COMPLETIONS, /* /v1/completions -> /api/generate */
	OPENAI_EMBEDDINGS,  /* /v1/embeddings -> /api/embed */
};

enum openai_encoding {
	OPENAI_ENCODING_FLOAT,	/* arrays of numbers */
	OPENAI_ENCODING_BASE64, /* little-endian float32 bytes, base64: the official clients'
				   default */
};

/* What a translated request says about the reply it wants. */
struct openai_req_info {
	enum openai_endpoint endpoint;
	bool stream;		       /* "stream": true: answer with server-sent events */
	bool include_usage;	       /* "stream_options": {"include_usage": true} */
	enum openai_encoding encoding; /* embeddings only */
	/* On a refused request: the parameter at fault in OpenAI's notation
	 * ("messages[1].content"), "" when none, and OpenAI's error code
	 * ("invalid_type", "missing_required_parameter", "invalid_value", ...), NULL when
	 * none. Pass both to openai_error_json. */
	char param[OPENAI_PARAM_MAX];
	const char *code;
};

/*
 * Requests. Each checks an OpenAI request body and builds the native Ollama request:
 * "model", the endpoint's fields and "options" (sampling parameters), never "stream" or
 * "keep_alive" (vramd's engine sets those). The native request may carry "logprobs" and
 * "top_logprobs", Ollama fields that vramd's /api/submit does not accept.
 *
 * Returns 0 with *out_native a new object and *info filled, or -EINVAL with
 * *http_status 400, *error an OpenAI-style message naming the field (caller frees) and
 * info->param / info->code set; *out_native is then NULL.
 *
 * Chat: model, messages (string content, or an array of text, image_url (a base64 data
 * URI) and input_audio parts, each part becoming its own native message as Ollama does;
 * assistant tool_calls with JSON-string arguments -> native tool_calls with object
 * arguments; tool messages get tool_name from "name" or from the assistant tool call
 * with their tool_call_id; "developer" becomes "system"), stream, stream_options,
 * max_completion_tokens or max_tokens -> num_predict, temperature (default 1) and
 * top_p (default 1) as OpenAI's defaults, seed, stop, frequency_penalty,
 * presence_penalty, response_format (json_object -> format "json", json_schema -> its
 * schema), tools (passed through), tool_choice ("none" drops the tools; other values
 * are accepted and not enforced), reasoning_effort or reasoning.effort -> think, logprobs
 * and top_logprobs, n (1 only). Unknown fields and "user" are ignored, as OpenAI
 * clients send many that do not apply.
 */
int openai_chat_to_ollama(const json_t *body, json_t **out_native, struct openai_req_info *info,
			  char **error, int *http_status);
/* Completions: model, prompt (a string, or an array of one string), suffix, stream,
 * stream_options, max_tokens, temperature, top_p, seed, stop, frequency_penalty and
 * presence_penalty (sent as 0 when absent, as Ollama does), logprobs (N -> top_logprobs
 * N). echo: true, best_of > 1 and n > 1 are refused. */
int openai_completion_to_ollama(const json_t *body, json_t **out_native,
				struct openai_req_info *info, char **error, int *http_status);
/* Embeddings: model, input (a string or an array of 1..OPENAI_EMBED_INPUTS_MAX strings;
 * "" becomes [""]; token arrays are refused: Ollama embeds text only), encoding_format
 * (float or base64, any case; absent: float), dimensions. */
int openai_embeddings_to_ollama(const json_t *body, json_t **out_native,
				struct openai_req_info *info, char **error, int *http_status);

/* What every reply carries besides the native content. */
struct openai_reply_meta {
	const char *id;	   /* "chatcmpl-17", "cmpl-17" (openai_make_id); embeddings: unused */
	int64_t created;   /* Unix seconds, one value for a whole stream */
	const char *model; /* the request's model: used when the native reply names none,
			      and always for embeddings (as Ollama) */
};

/* Writes the id of a reply for endpoint: "chatcmpl-<n>" or "cmpl-<n>" (embeddings have
 * none: ""). n should differ between requests (a job's sequence number). Returns buf. */
const char *openai_make_id(enum openai_endpoint endpoint, uint64_t n, char *buf, size_t size);

/*
 * Non-streaming replies: a native reply (the JSON object of a "stream": false request)
 * -> the OpenAI reply body as JSON text (*out, caller frees), ready to send as
 * application/json. Returns 0, -EIO when the native reply is an {"error": ...} (the
 * message in *cause), or -EINVAL when it does not have the endpoint's shape (*cause
 * says what is missing).
 *
 * Chat: a chat.completion with choices[0].message (role, content, reasoning from
 * "thinking", tool_calls with JSON-string arguments), finish_reason (done_reason;
 * "stop" with tool calls becomes "tool_calls"), logprobs when the node gave some, usage
 * from prompt_eval_count and eval_count. Completions: a text_completion. Embeddings: a
 * list of embeddings, each an array of numbers (float32, shortest form) or base64 of
 * its little-endian float32 bytes, with usage.prompt_tokens = prompt_eval_count.
 */
int openai_chat_reply(const json_t *native, const struct openai_reply_meta *meta, char **out,
		      char **cause);
int openai_completion_reply(const json_t *native, const struct openai_reply_meta *meta, char **out,
			    char **cause);
int openai_embeddings_reply(const json_t *native, const struct openai_reply_meta *meta,
			    enum openai_encoding encoding, char **out, char **cause);

/*
 * Streaming: one struct per streamed reply, fed each native NDJSON chunk in order. Each
 * call appends complete server-sent events ("data: <json>\n\n") to out, which the
 * handler writes to the client as they come (Content-Type: text/event-stream).
 *
 * Chat, as Ollama: the first event's delta carries "role": "assistant"; content,
 * reasoning and tool calls travel as deltas (a chunk with both thinking and content or
 * tool calls is split in two events); the metrics-only final chunk adds no content event;
 * then a chunk with an empty delta and the finish_reason ("tool_calls" when a tool call
 * was streamed and the node said "stop"), then, with include_usage, a chunk with no
 * choices and the usage, then "data: [DONE]". Completions: one text_completion event
 * per native chunk, the usage chunk, [DONE].
 */
struct openai_stream {
	enum openai_endpoint endpoint; /* OPENAI_CHAT or OPENAI_COMPLETIONS */
	bool include_usage;
	char id[OPENAI_ID_MAX];
	int64_t created;
	char *model;	     /* owned: the request's model, when a chunk names none */
	bool first_sent;     /* an event with the role went out */
	bool tool_call_sent; /* a tool call went out: "stop" becomes "tool_calls" */
	int tool_calls;	     /* tool calls so far: the index of one the node does not number */
	bool done;	     /* [DONE] went out; later chunks are ignored */
};

void openai_stream_init(struct openai_stream *st, const struct openai_req_info *info,
			const struct openai_reply_meta *meta);
void openai_stream_cleanup(struct openai_stream *st);
/*
 * Feeds one native chunk. A chunk carrying "error" (Ollama's way of failing a stream
 * that has begun) becomes an OpenAI error event, {"error": {...}}, which the official
 * clients raise as an APIError, followed by [DONE]. Returns 0, -EINVAL when the chunk
 * is not a native chunk of the endpoint (*cause says why; nothing appended), or -E2BIG
 * when out is full.
 */
int openai_stream_feed(struct openai_stream *st, const json_t *chunk, struct vd_buf *out,
		       char **cause);
/* Ends a stream that cannot finish (the node failed or went away, the job was cancelled):
 * appends an error event with status's type and message, then [DONE]. Nothing when the
 * stream is already done. Returns 0 or -E2BIG. */
int openai_stream_fail(struct openai_stream *st, int status, const char *message,
		       struct vd_buf *out);
bool openai_stream_is_done(const struct openai_stream *st);

/*
 * Errors: {"error": {"message", "type", "param", "code"}}. type NULL picks it from the
 * status: 400, 413, 415, 422: invalid_request_error; 401: authentication_error; 403:
 * permission_error; 404: not_found_error (as Ollama); 429: rate_limit_error (code
 * rate_limit_exceeded when code is NULL); 5xx and others: api_error. param and code are
 * null when NULL or "". For an unknown model pass param "model" and code
 * "model_not_found", as OpenAI does.
 */
json_t *openai_error_json(int status, const char *message, const char *type, const char *param,
			  const char *code);
/* The OpenAI error for a node's error reply (status and body as the node sent them):
 * Ollama's {"error": "..."} message, or the body as text when it is not that shape. */
json_t *openai_error_from_ollama(int status, const char *body, size_t len);

/*
 * Models: an /api/tags-like listing {"models": [{"name" or "model", "modified_at"}...]}
 * -> {"object": "list", "data": [model...]} (entries without a name are skipped; no
 * models: an empty list). created is each model's modified_at in Unix seconds, or
 * created_fallback when it has none. owned_by is the name's namespace ("library" when
 * the name has none), as Ollama.
 */
json_t *openai_models_json(const json_t *tags, int64_t created_fallback);
/* One model object: {"id", "object": "model", "created", "owned_by"}. */
json_t *openai_model_json(const char *id, int64_t created);

/* Standard base64 with padding: encodes len bytes (the caller frees the result). */
char *openai_base64_encode(const unsigned char *data, size_t len);
/* Decodes standard base64 (padding required, no whitespace). Returns 0 with *out (caller
 * frees) and *out_len, or -EINVAL. */
int openai_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

#endif
