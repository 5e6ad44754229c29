/*
 * keys.h: API keys (API_KEYS_FILE), who may call vramd and with what rights.
 *
 * The file is a JSON array with one object per key (docs/api.md, "API keys"):
 *
 *   [{"key": "a long random secret", "name": "batch", "default_priority": "low",
 *     "max_priority": "normal", "admin": false, "models": ["llama3.2:1b"],
 *     "max_queued": 1000, "weight": 1}]
 *
 * "key" and "name" are required; the rest default to normal, default_priority, false,
 * every model, no limit and 1. Unknown fields, duplicate keys and duplicate names are
 * refused, and every message names the file, the entry and the field, never a secret.
 *
 * Secrets stay inside keys.c: a lookup compares the candidate with every key over a
 * fixed length, so its time does not depend on which key matches or on how many
 * leading bytes of one do. The parsed keys are read-only and live until keys_free.
 */
#ifndef VRAMD_KEYS_H
#define VRAMD_KEYS_H

#include "job.h"

#include <stdbool.h>
#include <stddef.h>

#define KEYS_SECRET_MIN	    16	/* bytes: a shorter secret can be guessed */
#define KEYS_SECRET_MAX	    256 /* bytes: the fixed length lookups compare */
#define KEYS_NAME_MAX	    64
#define KEYS_MAX	    1024 /* entries in one file */
#define KEYS_WEIGHT_MAX	    1000
#define KEYS_FILE_MAX_BYTES (4 << 20)

/* One key's rights, without its secret. */
struct api_key {
	char *name; /* shown in jobs, stats and the log in place of the secret */
	enum job_priority default_priority; /* a job that names no priority gets this */
	enum job_priority max_priority;	    /* the most urgent priority its jobs may ask for */
	bool admin;			    /* may use the admin routes, see others' jobs */
	char **models;			    /* normalised ("x:latest"); NULL: every model */
	size_t nmodels;
	size_t max_queued; /* its jobs waiting in the queue at most; 0: no limit */
	unsigned weight;   /* its share of tokens against other keys (fair share), >= 1 */
};

struct api_keys;

/*
 * Reads and checks the file at path (at most KEYS_FILE_MAX_BYTES). Returns 0 with *out
 * set (free with keys_free), or a negative errno with *cause (caller frees) naming the
 * file, the entry ("key 2 (\"batch\")") and the field.
 */
int keys_load(const char *path, struct api_keys **out, char **cause);
/* keys_load, also giving the file's text in *text on success (caller wipes with
 * explicit_bzero and frees): what a cluster's instance shares through the store. */
int keys_load_text(const char *path, struct api_keys **out, char **text, char **cause);
/* The same on the file's text; label names the file in messages (tests, fuzzing). */
int keys_parse(const char *text, const char *label, struct api_keys **out, char **cause);
/* Frees the keys, wiping their secrets from memory. NULL is a no-op. */
void keys_free(struct api_keys *keys);

size_t keys_count(const struct api_keys *keys);
/* Entry i in file order; borrowed until keys_free. */
const struct api_key *keys_at(const struct api_keys *keys, size_t i);
/* The key of that name, or NULL; borrowed until keys_free. */
const struct api_key *keys_find_name(const struct api_keys *keys, const char *name);

/*
 * The key whose secret is the len bytes at secret, or NULL. Constant time in the keys:
 * every key is compared over KEYS_SECRET_MAX bytes whatever matches.
 */
const struct api_key *keys_lookup(const struct api_keys *keys, const char *secret, size_t len);

/*
 * Checks an Authorization header value (NULL when absent): it must be exactly
 * "Bearer <key>" (the scheme in any case, one space) with a known key. Returns 0 with
 * *out set, or -EACCES with *cause (caller frees) saying what is wrong without
 * repeating what was sent.
 */
int keys_authenticate(const struct api_keys *keys, const char *authorization,
		      const struct api_key **out, char **cause);

/* Whether key may run jobs on model (any spelling: "x" is "x:latest"). */
bool keys_allows_model(const struct api_key *key, const char *model);
/* Whether key may ask for priority: not more urgent than its max_priority. */
bool keys_allows_priority(const struct api_key *key, enum job_priority priority);

#endif
