/*
 * keys.c: API keys (see keys.h). The daemon loads API_KEYS_FILE once at start; a bad
 * file stops vramd with a message naming the file, the entry and the field. api.c then
 * authenticates every request of a protected route with keys_authenticate(), and the
 * handlers read the caller's rights from the struct api_key it found.
 *
 * Everything but keys_load() is pure. The fields of an entry are one table
 * (keys_fields[]), each with its own parser; a field not in the table is an error, so a
 * typo (say "max_priorty") never silently leaves a key with more rights than meant.
 *
 * Secrets: each is kept zero-padded in a KEYS_SECRET_MAX buffer with its length, and a
 * lookup compares the candidate, padded the same way, with every key over the whole
 * buffer, folding the differences without a branch. Nothing here logs or formats a
 * secret: messages name entries by index and name. keys_free wipes the buffers.
 */
#include "keys.h"

#include "api-parse.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct keys_entry {
	struct api_key key;
	size_t secret_len;
	unsigned char secret[KEYS_SECRET_MAX]; /* zero-padded */
};

struct api_keys {
	struct keys_entry *entries;
	size_t n;
};

/* --- The fields of an entry ---------------------------------------------------------- */

/* What an entry said besides the fields struct api_key holds. */
struct keys_given {
	bool has_secret;
	bool has_max_priority;
};

typedef int keys_field_parse(const json_t *value, struct keys_entry *e, struct keys_given *given,
			     char **why);

/* Secrets travel in an HTTP header: visible ASCII only, no spaces. */
static int
keys_parse_secret(const json_t *value, struct keys_entry *e, struct keys_given *given, char **why)
{
	if (!json_is_string(value))
		return vd_fail(why, -EINVAL, "must be a string");
	const char *s = json_string_value(value);
	size_t len = json_string_length(value);
	if (len < KEYS_SECRET_MIN || len > KEYS_SECRET_MAX)
		return vd_fail(why, -EINVAL, "must be %d to %d characters long (this one has %zu)",
			       KEYS_SECRET_MIN, KEYS_SECRET_MAX, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return vd_fail(why, -EINVAL,
				       "character %zu cannot travel in an HTTP header: use "
				       "visible ASCII without spaces",
				       i + 1);
	memcpy(e->secret, s, len);
	e->secret_len = len;
	given->has_secret = true;
	return 0;
}

static int
keys_parse_name(const json_t *value, struct keys_entry *e, struct keys_given *given, char **why)
{
	(void)given;
	if (!json_is_string(value))
		return vd_fail(why, -EINVAL, "must be a string");
	const char *s = json_string_value(value);
	size_t len = json_string_length(value);
	if (len == 0 || len > KEYS_NAME_MAX)
		return vd_fail(why, -EINVAL, "must be 1 to %d characters long", KEYS_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"' ||
		    s[i] == '\\')
			return vd_fail(why, -EINVAL,
				       "character %zu is not printable ASCII (names appear in "
				       "logs and job listings)",
				       i + 1);
	free(e->key.name);
	e->key.name = xstrdup(s);
	return 0;
}

static int
keys_parse_priority_value(const json_t *value, enum job_priority *out, char **why)
{
	int p = json_is_string(value) ? job_priority_from_name(json_string_value(value)) : -1;
	if (p < 0)
		return vd_fail(why, -EINVAL, "must be \"high\", \"normal\" or \"low\"");
	*out = (enum job_priority)p;
	return 0;
}

static int
keys_parse_default_priority(const json_t *value, struct keys_entry *e, struct keys_given *given,
			    char **why)
{
	(void)given;
	return keys_parse_priority_value(value, &e->key.default_priority, why);
}

static int
keys_parse_max_priority(const json_t *value, struct keys_entry *e, struct keys_given *given,
			char **why)
{
	given->has_max_priority = true;
	return keys_parse_priority_value(value, &e->key.max_priority, why);
}

static int
keys_parse_admin(const json_t *value, struct keys_entry *e, struct keys_given *given, char **why)
{
	(void)given;
	if (!json_is_boolean(value))
		return vd_fail(why, -EINVAL, "must be true or false");
	e->key.admin = json_is_true(value);
	return 0;
}

static int
keys_parse_models(const json_t *value, struct keys_entry *e, struct keys_given *given, char **why)
{
	(void)given;
	if (!json_is_array(value) || json_array_size(value) == 0)
		return vd_fail(why, -EINVAL,
			       "must be a non-empty list of model names (leave it out to allow "
			       "every model)");
	size_t i;
	json_t *m;
	json_array_foreach(value, i, m)
	{
		if (!json_is_string(m) || json_string_length(m) == 0 ||
		    json_string_length(m) > API_MODEL_NAME_MAX)
			return vd_fail(why, -EINVAL,
				       "entry %zu must be a model name of 1 to %d bytes", i,
				       API_MODEL_NAME_MAX);
	}
	e->key.models = xcalloc(json_array_size(value), sizeof(*e->key.models));
	json_array_foreach(value, i, m)
	{
		char name[API_MODEL_NAME_MAX + 16];
		e->key.models[i] =
		    xstrdup(registry_normalize_name(json_string_value(m), name, sizeof(name)));
		e->key.nmodels = i + 1;
	}
	return 0;
}

static int
keys_parse_max_queued(const json_t *value, struct keys_entry *e, struct keys_given *given,
		      char **why)
{
	(void)given;
	if (!json_is_integer(value) || json_integer_value(value) < 1 ||
	    json_integer_value(value) > 100000000)
		return vd_fail(why, -EINVAL, "must be an integer from 1 to 100000000");
	e->key.max_queued = (size_t)json_integer_value(value);
	return 0;
}

static int
keys_parse_weight(const json_t *value, struct keys_entry *e, struct keys_given *given, char **why)
{
	(void)given;
	if (!json_is_integer(value) || json_integer_value(value) < 1 ||
	    json_integer_value(value) > KEYS_WEIGHT_MAX)
		return vd_fail(why, -EINVAL, "must be an integer from 1 to %d", KEYS_WEIGHT_MAX);
	e->key.weight = (unsigned)json_integer_value(value);
	return 0;
}

/* name first, so that messages about the other fields can show it. */
static const struct {
	const char *name;
	keys_field_parse *parse;
} keys_fields[] = {
    {"name", keys_parse_name},
    {"key", keys_parse_secret},
    {"default_priority", keys_parse_default_priority},
    {"max_priority", keys_parse_max_priority},
    {"admin", keys_parse_admin},
    {"models", keys_parse_models},
    {"max_queued", keys_parse_max_queued},
    {"weight", keys_parse_weight},
};

static bool
keys_field_is_known(const char *name)
{
	for (size_t f = 0; f < VD_ARRAY_LEN(keys_fields); f++)
		if (strcmp(keys_fields[f].name, name) == 0)
			return true;
	return false;
}

/* "key 2" or "key 2 (\"batch\")" for messages; the caller frees it. */
static char *
keys_entry_label(size_t i, const struct keys_entry *e)
{
	if (e->key.name != NULL)
		return xasprintf("key %zu (\"%s\")", i, e->key.name);
	return xasprintf("key %zu", i);
}

static int
keys_entry_fail(char **cause, const char *label, size_t i, const struct keys_entry *e,
		const char *field, const char *why)
{
	char *entry = keys_entry_label(i, e);
	int rc = field != NULL
		     ? vd_fail(cause, -EINVAL, "%s: %s: field \"%s\" %s", label, entry, field, why)
		     : vd_fail(cause, -EINVAL, "%s: %s: %s", label, entry, why);
	free(entry);
	return rc;
}

static void
keys_entry_cleanup(struct keys_entry *e)
{
	free(e->key.name);
	for (size_t m = 0; m < e->key.nmodels; m++)
		free(e->key.models[m]);
	free(e->key.models);
	explicit_bzero(e->secret, sizeof(e->secret));
}

/* Parses entry i of the file into e. */
static int
keys_parse_entry(const char *label, size_t i, const json_t *obj, struct keys_entry *e, char **cause)
{
	struct keys_given given = {0};
	e->key.default_priority = JOB_PRIO_NORMAL;
	e->key.weight = 1;
	if (!json_is_object(obj))
		return vd_fail(cause, -EINVAL, "%s: key %zu is not an object", label, i);
	for (size_t f = 0; f < VD_ARRAY_LEN(keys_fields); f++) {
		json_t *value = json_object_get(obj, keys_fields[f].name);
		if (value == NULL)
			continue;
		char *why = NULL;
		if (keys_fields[f].parse(value, e, &given, &why) < 0) {
			int rc = keys_entry_fail(cause, label, i, e, keys_fields[f].name, why);
			free(why);
			return rc;
		}
	}
	const char *field;
	json_t *value;
	json_object_foreach((json_t *)obj, field, value)
	{
		if (!keys_field_is_known(field)) {
			char *why = xasprintf("unknown field \"%.64s\" (known: key, name, "
					      "default_priority, max_priority, admin, models, "
					      "max_queued, weight)",
					      field);
			int rc = keys_entry_fail(cause, label, i, e, NULL, why);
			free(why);
			return rc;
		}
	}
	if (e->key.name == NULL)
		return keys_entry_fail(cause, label, i, e, "name", "is missing");
	if (!given.has_secret)
		return keys_entry_fail(cause, label, i, e, "key", "is missing");
	/* Without max_priority a key may ask for its default and less urgent, no more. */
	if (!given.has_max_priority)
		e->key.max_priority = e->key.default_priority;
	if (e->key.default_priority < e->key.max_priority) {
		char *why = xasprintf("is \"%s\", more urgent than its max_priority \"%s\"",
				      job_priority_name(e->key.default_priority),
				      job_priority_name(e->key.max_priority));
		int rc = keys_entry_fail(cause, label, i, e, "default_priority", why);
		free(why);
		return rc;
	}
	return 0;
}

/* Folds the differences of two buffers of n bytes without an early exit; 0 when equal. */
static unsigned
keys_ct_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	volatile unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff;
}

/* All ones when x is 0, else 0, without a branch. */
static uintptr_t
keys_ct_mask_if_zero(uint64_t x)
{
	uint64_t nonzero = (x | (0 - x)) >> 63;
	return (uintptr_t)0 - (uintptr_t)(nonzero ^ 1);
}

static const struct keys_entry *
keys_lookup_entry(const struct api_keys *keys, const char *secret, size_t len)
{
	if (secret == NULL || len > KEYS_SECRET_MAX)
		return NULL; /* the caller's own length: it tells nothing about the keys */
	unsigned char probe[KEYS_SECRET_MAX] = {0};
	memcpy(probe, secret, len);
	uintptr_t hit = 0;
	for (size_t i = 0; i < keys->n; i++) {
		const struct keys_entry *e = &keys->entries[i];
		uint64_t diff = keys_ct_diff(probe, e->secret, KEYS_SECRET_MAX) |
				(uint64_t)(e->secret_len ^ len);
		hit |= keys_ct_mask_if_zero(diff) & (uintptr_t)e;
	}
	explicit_bzero(probe, sizeof(probe));
	return (const struct keys_entry *)hit;
}

int
keys_parse(const char *text, const char *label, struct api_keys **out, char **cause)
{
	*out = NULL;
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jansson quotes the text "near" the error, which may be part of a secret. */
		char *near = strstr(jerr.text, " near '");
		if (near != NULL)
			*near = '\0';
		return vd_fail(cause, -EINVAL, "%s: not valid JSON at line %d column %d: %s", label,
			       jerr.line, jerr.column, jerr.text);
	}
	int rc = 0;
	struct api_keys *keys = NULL;
	if (!json_is_array(root) || json_array_size(root) == 0 ||
	    json_array_size(root) > KEYS_MAX) {
		rc = vd_fail(cause, -EINVAL,
			     "%s: must be a JSON array of 1 to %d keys, each an object with at "
			     "least \"key\" and \"name\"",
			     label, KEYS_MAX);
		goto out;
	}
	keys = xcalloc(1, sizeof(*keys));
	keys->entries = xcalloc(json_array_size(root), sizeof(*keys->entries));
	size_t i;
	json_t *obj;
	json_array_foreach(root, i, obj)
	{
		struct keys_entry *e = &keys->entries[i];
		keys->n = i + 1;
		rc = keys_parse_entry(label, i, obj, e, cause);
		if (rc < 0)
			goto out;
		for (size_t j = 0; j < i; j++) {
			const struct keys_entry *other = &keys->entries[j];
			const char *what = NULL;
			if (strcmp(other->key.name, e->key.name) == 0)
				what = "name";
			else if (other->secret_len == e->secret_len &&
				 keys_ct_diff(other->secret, e->secret, KEYS_SECRET_MAX) == 0)
				what = "key";
			if (what != NULL) {
				rc = vd_fail(cause, -EINVAL,
					     "%s: keys %zu (\"%s\") and %zu (\"%s\") have the same "
					     "%s",
					     label, j, other->key.name, i, e->key.name, what);
				goto out;
			}
		}
	}
out:
	json_decref(root);
	if (rc < 0) {
		keys_free(keys);
		return rc;
	}
	*out = keys;
	return 0;
}

int
keys_load(const char *path, struct api_keys **out, char **cause)
{
	return keys_load_text(path, out, NULL, cause);
}

int
keys_load_text(const char *path, struct api_keys **out, char **text, char **cause)
{
	*out = NULL;
	if (text != NULL)
		*text = NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return vd_fail(cause, -errno, "cannot open API_KEYS_FILE %s: %s", path,
			       strerror(errno));
	char *buf = xmalloc(KEYS_FILE_MAX_BYTES + 1);
	size_t len = fread(buf, 1, KEYS_FILE_MAX_BYTES + 1, f);
	int failed = ferror(f);
	fclose(f);
	int rc = 0;
	if (failed)
		rc = vd_fail(cause, -EIO, "cannot read API_KEYS_FILE %s", path);
	else if (len > KEYS_FILE_MAX_BYTES)
		rc = vd_fail(cause, -EFBIG, "API_KEYS_FILE %s is over %d bytes", path,
			     KEYS_FILE_MAX_BYTES);
	else if (memchr(buf, '\0', len) != NULL)
		rc = vd_fail(cause, -EINVAL, "API_KEYS_FILE %s contains a NUL byte", path);
	if (rc == 0) {
		buf[len] = '\0';
		char *label = xasprintf("API_KEYS_FILE %s", path);
		rc = keys_parse(buf, label, out, cause);
		free(label);
		if (rc == 0 && text != NULL)
			*text = xstrdup(buf);
	}
	explicit_bzero(buf, len < KEYS_FILE_MAX_BYTES + 1 ? len : KEYS_FILE_MAX_BYTES + 1);
	free(buf);
	return rc;
}

void
keys_free(struct api_keys *keys)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < keys->n; i++)
		keys_entry_cleanup(&keys->entries[i]);
	free(keys->entries);
	free(keys);
}

size_t
keys_count(const struct api_keys *keys)
{
	return keys != NULL ? keys->n : 0;
}

const struct api_key *
keys_at(const struct api_keys *keys, size_t i)
{
	return i < keys_count(keys) ? &keys->entries[i].key : NULL;
}

const struct api_key *
keys_find_name(const struct api_keys *keys, const char *name)
{
	for (size_t i = 0; name != NULL && i < keys_count(keys); i++)
		if (strcmp(keys->entries[i].key.name, name) == 0)
			return &keys->entries[i].key;
	return NULL;
}

const struct api_key *
keys_lookup(const struct api_keys *keys, const char *secret, size_t len)
{
	const struct keys_entry *e = keys != NULL ? keys_lookup_entry(keys, secret, len) : NULL;
	return e != NULL ? &e->key : NULL;
}

int
keys_authenticate(const struct api_keys *keys, const char *authorization,
		  const struct api_key **out, char **cause)
{
	*out = NULL;
	if (authorization == NULL)
		return vd_fail(cause, -EACCES,
			       "an API key is required: send the header \"Authorization: Bearer "
			       "KEY\"");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return vd_fail(cause, -EACCES,
			       "the Authorization header must be \"Bearer KEY\" (an API key of "
			       "API_KEYS_FILE)");
	const char *secret = authorization + 7;
	size_t len = strlen(secret);
	if (len == 0 || strpbrk(secret, " \t") != NULL)
		return vd_fail(cause, -EACCES,
			       "the Authorization header must be \"Bearer KEY\" with one space "
			       "and nothing after the key");
	*out = keys_lookup(keys, secret, len);
	if (*out == NULL)
		return vd_fail(cause, -EACCES, "unknown API key");
	return 0;
}

bool
keys_allows_model(const struct api_key *key, const char *model)
{
	if (key->models == NULL)
		return true;
	char name[API_MODEL_NAME_MAX + 16];
	registry_normalize_name(model, name, sizeof(name));
	for (size_t i = 0; i < key->nmodels; i++)
		if (strcmp(key->models[i], name) == 0)
			return true;
	return false;
}

bool
keys_allows_priority(const struct api_key *key, enum job_priority priority)
{
	/* Lower values are more urgent. */
	return priority >= key->max_priority;
}
