/*
 * nodes.c: the node list from the configuration (see nodes.h for the rules). The daemon
 * calls nodes_from_config() once at start and builds one backend, monitor and engine per
 * node from the result; a bad list stops vramd with a message naming the file, the node
 * and the field.
 *
 * Everything but nodes_from_config() is pure: the file's text and this host's name come
 * in as arguments, so the tests cover every rule without files or a particular host.
 * The fields of a node in NODES_FILE are one table (nodes_fields[]), each with its own
 * parser; a field not in the table is an error, so a typo never passes silently.
 */
#include "nodes.h"

#include "config.h"
#include "gpu.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define NODES_URL_MAX	 2048
#define NODES_BUDGET_MAX UINT64_C(1125899906842624) /* 1 PiB, as VRAM_BUDGET */

/* A node URL taken apart into what says which server it is. */
struct nodes_url {
	const char *scheme; /* "http" or "https" (static) */
	char host[256];	    /* lowercase; an IPv6 address without its brackets */
	unsigned port;	    /* the scheme's default when the URL has none */
	char *path;	    /* without trailing '/', "" for none; freed by nodes_url_cleanup */
};

/* What the file said about a node beyond its strings, for the defaults. */
struct nodes_given {
	bool has_local, local;
	bool has_budget;
	bool has_gpus; /* even "all", which leaves spec->gpus NULL */
};

static void
nodes_url_cleanup(struct nodes_url *u)
{
	vd_free(u->path);
}

static bool
nodes_host_char_ok(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/*
 * Takes an http:// or https:// URL apart. Userinfo is allowed (a proxy in front of
 * Ollama may want it) but not part of the server's identity; a query or fragment is
 * refused because the backend appends API paths to the base URL. Returns 0, or -EINVAL
 * with *why (static text) saying what is wrong.
 */
static int
nodes_url_parse(const char *url, struct nodes_url *u, const char **why)
{
	memset(u, 0, sizeof(*u));
	const char *rest;
	if (strncasecmp(url, "http://", 7) == 0) {
		u->scheme = "http";
		u->port = 80;
		rest = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		u->scheme = "https";
		u->port = 443;
		rest = url + 8;
	} else {
		*why = "is not an http:// or https:// URL";
		return -EINVAL;
	}
	if (strlen(url) > NODES_URL_MAX) {
		*why = "is longer than 2048 bytes";
		return -EINVAL;
	}
	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			*why = "contains whitespace, a control or a non-ASCII character";
			return -EINVAL;
		}
	if (strpbrk(rest, "?#") != NULL) {
		*why = "has a query or a fragment (expected http://host:port[/path])";
		return -EINVAL;
	}
	const char *auth_end = rest + strcspn(rest, "/");
	const char *host = rest;
	for (const char *p = rest; p < auth_end; p++)
		if (*p == '@')
			host = p + 1;
	const char *host_start = host, *host_end, *port_text = NULL;
	if (*host == '[') {
		host_start = host + 1;
		host_end = memchr(host_start, ']', (size_t)(auth_end - host_start));
		if (host_end == NULL) {
			*why = "has a '[' without ']' in its host";
			return -EINVAL;
		}
		if (host_end + 1 < auth_end) {
			if (host_end[1] != ':') {
				*why = "has text after its [IPv6] host";
				return -EINVAL;
			}
			port_text = host_end + 2;
		}
	} else {
		host_end = memchr(host, ':', (size_t)(auth_end - host));
		if (host_end != NULL)
			port_text = host_end + 1;
		else
			host_end = auth_end;
	}
	size_t host_len = (size_t)(host_end - host_start);
	if (host_len == 0) {
		*why = "has no host";
		return -EINVAL;
	}
	if (host_len >= sizeof(u->host)) {
		*why = "has a host longer than 255 bytes";
		return -EINVAL;
	}
	for (size_t i = 0; i < host_len; i++)
		u->host[i] = (char)tolower((unsigned char)host_start[i]);
	u->host[host_len] = '\0';
	if (host_start != host) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, u->host, &a6) != 1) {
			*why = "has an invalid IPv6 address in its host";
			return -EINVAL;
		}
	} else {
		for (size_t i = 0; i < host_len; i++)
			if (!nodes_host_char_ok(u->host[i])) {
				*why = "has a character that cannot be in a host name";
				return -EINVAL;
			}
	}
	if (port_text != NULL) {
		size_t digits = strspn(port_text, "0123456789");
		unsigned long port = 0;
		if (digits > 0 && digits <= 5)
			port = strtoul(port_text, NULL, 10);
		if (port_text + digits != auth_end || port < 1 || port > 65535) {
			*why = "has a port that is not a number from 1 to 65535";
			return -EINVAL;
		}
		u->port = (unsigned)port;
	}
	size_t path_len = strlen(auth_end);
	while (path_len > 0 && auth_end[path_len - 1] == '/')
		path_len--;
	u->path = xstrndup(auth_end, path_len);
	return 0;
}

/* The server's identity: scheme, host, port and path, without userinfo. */
static char *
nodes_url_key(const struct nodes_url *u)
{
	return xasprintf("%s://%s:%u%s", u->scheme, u->host, u->port, u->path);
}

/* Whether host (lowercase) names this machine: a loopback name or address, or hostname. */
static bool
nodes_host_is_this(const char *host, const char *hostname)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	if (strcmp(host, "localhost") == 0 || vd_str_has_suffix(host, ".localhost"))
		return true;
	return hostname != NULL && hostname[0] != '\0' && strcasecmp(host, hostname) == 0;
}

/* A URL for messages: credentials masked, long ones cut. The caller frees. */
static char *
nodes_url_shown(const char *url)
{
	char *shown = vd_url_redact(url);
	if (strlen(shown) > 200)
		shown[200] = '\0';
	return shown;
}

/* A copy of url without trailing '/' (the backend appends "/api/..."). */
static char *
nodes_url_trimmed(const char *url)
{
	size_t len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	return xstrndup(url, len);
}

/* Checks url and returns its trimmed copy in *out; else *why (the caller's) shows the URL
 * and what is wrong with it. */
static int
nodes_url_take(const char *url, char **out, char **why)
{
	struct nodes_url u;
	const char *what = NULL;
	int rc = nodes_url_parse(url, &u, &what);
	nodes_url_cleanup(&u);
	if (rc < 0) {
		char *shown = nodes_url_shown(url);
		*why = xasprintf("\"%s\" %s", shown, what);
		free(shown);
		return rc;
	}
	*out = nodes_url_trimmed(url);
	return 0;
}

void
nodes_free(struct node_spec *specs, size_t n)
{
	if (specs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(specs[i].name);
		free(specs[i].url);
		free(specs[i].gpus);
		free(specs[i].telemetry_url);
		for (size_t l = 0; l < specs[i].nlabels; l++)
			free(specs[i].labels[l]);
		free(specs[i].labels);
	}
	free(specs);
}

/* A name or label: 1..NODES_NAME_MAX-1 bytes of letters, digits and ._- (plus extra),
 * starting with a letter or digit, so it is safe in logs, paths and metric labels. */
static bool
nodes_word_ok(const char *s, const char *extra)
{
	size_t len = strlen(s);
	if (len == 0 || len >= NODES_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL &&
		    (extra == NULL || strchr(extra, *p) == NULL))
			return false;
	return true;
}

/* ---- NODES_FILE fields: one parser each. They set *why (the caller's) on error. ---- */

typedef int nodes_field_fn(const json_t *value, struct node_spec *spec, struct nodes_given *given,
			   char **why);

static int
nodes_field_name(const json_t *value, struct node_spec *spec, struct nodes_given *given, char **why)
{
	(void)given;
	if (!json_is_string(value) || !nodes_word_ok(json_string_value(value), NULL)) {
		*why = xasprintf("expected a string of 1 to %d letters, digits, '.', '_' or '-', "
				 "starting with a letter or digit",
				 NODES_NAME_MAX - 1);
		return -EINVAL;
	}
	spec->name = xstrdup(json_string_value(value));
	return 0;
}

static int
nodes_field_url(const json_t *value, struct node_spec *spec, struct nodes_given *given, char **why)
{
	(void)given;
	if (!json_is_string(value)) {
		*why = xstrdup("expected a string, the Ollama server's http://host:port");
		return -EINVAL;
	}
	return nodes_url_take(json_string_value(value), &spec->url, why);
}

static int
nodes_field_telemetry_url(const json_t *value, struct node_spec *spec, struct nodes_given *given,
			  char **why)
{
	(void)given;
	if (!json_is_string(value)) {
		*why = xstrdup("expected a string, the base URL of a vramd on the node's machine");
		return -EINVAL;
	}
	return nodes_url_take(json_string_value(value), &spec->telemetry_url, why);
}

/* "gpus": "0,1" as GPUS takes it, or a list of indexes and UUIDs: [0, "GPU-..."]. */
static int
nodes_field_gpus(const json_t *value, struct node_spec *spec, struct nodes_given *given, char **why)
{
	char *filter = NULL;
	if (json_is_string(value)) {
		filter = xstrdup(json_string_value(value));
	} else if (json_is_array(value) && json_array_size(value) > 0) {
		size_t i;
		json_t *gpu;
		json_array_foreach(value, i, gpu)
		{
			char *item;
			if (json_is_integer(gpu) && json_integer_value(gpu) >= 0 &&
			    json_integer_value(gpu) < 256)
				item = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(gpu));
			else if (json_is_string(gpu) && json_string_length(gpu) > 0 &&
				 strchr(json_string_value(gpu), ',') == NULL)
				item = xstrdup(json_string_value(gpu));
			else {
				free(filter);
				*why = xasprintf("entry %zu is neither a GPU index (0-255) nor a "
						 "GPU UUID",
						 i);
				return -EINVAL;
			}
			char *joined = filter != NULL ? xasprintf("%s,%s", filter, item) : item;
			if (filter != NULL)
				free(item);
			free(filter);
			filter = joined;
		}
	} else {
		*why = xstrdup("expected a string such as \"0,1\" or a non-empty list of GPU "
			       "indexes and UUIDs");
		return -EINVAL;
	}
	char *filter_cause = NULL;
	if (gpu_filter_validate(filter, &filter_cause) < 0) {
		*why = filter_cause;
		free(filter);
		return -EINVAL;
	}
	/* "" and "all" mean every GPU, which is what NULL says. */
	if (filter[0] == '\0' || strcasecmp(filter, "all") == 0)
		vd_free(filter);
	spec->gpus = filter;
	given->has_gpus = true;
	return 0;
}

/* "vram_budget": bytes as a whole number, or a size string as VRAM_BUDGET takes. */
static int
nodes_field_vram_budget(const json_t *value, struct node_spec *spec, struct nodes_given *given,
			char **why)
{
	uint64_t bytes = 0;
	bool ok = false;
	if (json_is_integer(value) && json_integer_value(value) >= 0) {
		bytes = (uint64_t)json_integer_value(value);
		ok = true;
	} else if (json_is_string(value)) {
		char *size_cause = NULL;
		ok = vd_parse_size(json_string_value(value), &bytes, &size_cause) == 0;
		free(size_cause);
	}
	if (!ok || bytes > NODES_BUDGET_MAX) {
		*why = xstrdup("expected a size from 0 to 1 PiB: a whole number of bytes or a "
			       "string such as \"24GiB\"");
		return -EINVAL;
	}
	spec->vram_budget_bytes = bytes;
	given->has_budget = true;
	return 0;
}

static int
nodes_field_labels(const json_t *value, struct node_spec *spec, struct nodes_given *given,
		   char **why)
{
	(void)given;
	if (!json_is_array(value) || json_array_size(value) > NODES_LABELS_MAX) {
		*why = xasprintf("expected a list of at most %d labels", NODES_LABELS_MAX);
		return -EINVAL;
	}
	size_t i;
	json_t *label;
	spec->labels = xcalloc(json_array_size(value) + 1, sizeof(*spec->labels));
	json_array_foreach(value, i, label)
	{
		if (!json_is_string(label) || !nodes_word_ok(json_string_value(label), ":=/")) {
			*why = xasprintf("label %zu: expected a string of 1 to %d letters, "
					 "digits or ._-:=/, starting with a letter or digit",
					 i, NODES_NAME_MAX - 1);
			return -EINVAL;
		}
		for (size_t j = 0; j < spec->nlabels; j++)
			if (strcmp(spec->labels[j], json_string_value(label)) == 0) {
				*why = xasprintf("label %zu: \"%s\" is listed twice", i,
						 json_string_value(label));
				return -EINVAL;
			}
		spec->labels[spec->nlabels++] = xstrdup(json_string_value(label));
	}
	return 0;
}

static int
nodes_field_local(const json_t *value, struct node_spec *spec, struct nodes_given *given,
		  char **why)
{
	(void)spec;
	if (!json_is_boolean(value)) {
		*why = xstrdup("expected true or false");
		return -EINVAL;
	}
	given->has_local = true;
	given->local = json_is_true(value);
	return 0;
}

/* The fields of a node, "name" first so that later messages can show it. */
static const struct nodes_field {
	const char *name;
	nodes_field_fn *parse;
} nodes_fields[] = {
    {"name", nodes_field_name},
    {"url", nodes_field_url},
    {"gpus", nodes_field_gpus},
    {"vram_budget", nodes_field_vram_budget},
    {"telemetry_url", nodes_field_telemetry_url},
    {"labels", nodes_field_labels},
    {"local", nodes_field_local},
};

static const struct nodes_field *
nodes_field_find(const char *name)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(nodes_fields); i++)
		if (strcmp(nodes_fields[i].name, name) == 0)
			return &nodes_fields[i];
	return NULL;
}

/* "nodes[1] \"b\"" or "nodes[1]": how messages name node i. */
static char *
nodes_node_label(size_t i, const char *name)
{
	return name != NULL ? xasprintf("nodes[%zu] \"%s\"", i, name) : xasprintf("nodes[%zu]", i);
}

/*
 * The defaults that hold for every source: name, local, gpus, budget; and the rules
 * between fields. label names the list in messages ("NODES_FILE f.json").
 */
static int
nodes_finish(const struct config *c, const char *hostname, const struct nodes_given *given,
	     struct node_spec *spec, size_t i, const char *label, char **cause)
{
	if (spec->name == NULL)
		spec->name = xasprintf("node%zu", i);
	char *node = nodes_node_label(i, spec->name);
	int rc = 0;
	if (given->has_local && given->local && spec->telemetry_url != NULL) {
		rc = vd_fail(cause, -EINVAL,
			     "%s: %s: \"local\": true and a telemetry_url contradict each other "
			     "(a local node's GPUs are read from this host)",
			     label, node);
		goto out;
	}
	if (given->has_local) {
		spec->local = given->local;
	} else if (spec->telemetry_url == NULL) {
		struct nodes_url u;
		const char *why = NULL;
		/* Checked already; parsed again for its host. */
		if (nodes_url_parse(spec->url, &u, &why) == 0)
			spec->local = nodes_host_is_this(u.host, hostname);
		nodes_url_cleanup(&u);
	}
	if (given->has_gpus && !spec->local && spec->telemetry_url == NULL) {
		rc = vd_fail(cause, -EINVAL,
			     "%s: %s: gpus needs GPU telemetry, but the node is not on this host "
			     "and has no telemetry_url (add one, or \"local\": true)",
			     label, node);
		goto out;
	}
	const char *host_gpus = config_str(c, CONFIG_GPUS);
	if (spec->local && !given->has_gpus && host_gpus[0] != '\0' &&
	    strcasecmp(host_gpus, "all") != 0)
		spec->gpus = xstrdup(host_gpus);
	if (!given->has_budget && spec->telemetry_url == NULL)
		spec->vram_budget_bytes = config_size(c, CONFIG_VRAM_BUDGET);
out:
	free(node);
	return rc;
}

/* Parses node i of the file into spec. */
static int
nodes_parse_node(const struct config *c, const char *hostname, const char *label, size_t i,
		 json_t *obj, struct node_spec *spec, char **cause)
{
	struct nodes_given given = {0};
	if (!json_is_object(obj))
		return vd_fail(cause, -EINVAL, "%s: nodes[%zu] is not an object", label, i);
	/* The default name now, so that messages about other fields show it. */
	if (json_object_get(obj, "name") == NULL)
		spec->name = xasprintf("node%zu", i);
	for (size_t f = 0; f < VD_ARRAY_LEN(nodes_fields); f++) {
		json_t *value = json_object_get(obj, nodes_fields[f].name);
		if (value == NULL)
			continue;
		char *why = NULL;
		if (nodes_fields[f].parse(value, spec, &given, &why) < 0) {
			char *node = nodes_node_label(i, spec->name);
			int rc = vd_fail(cause, -EINVAL, "%s: %s: %s: %s", label, node,
					 nodes_fields[f].name, why);
			free(node);
			free(why);
			return rc;
		}
	}
	const char *key;
	json_t *value;
	json_object_foreach(obj, key, value)
	{
		if (nodes_field_find(key) == NULL) {
			char *node = nodes_node_label(i, spec->name);
			int rc = vd_fail(cause, -EINVAL,
					 "%s: %s: unknown field \"%.64s\" (known: name, url, gpus, "
					 "vram_budget, telemetry_url, labels, local)",
					 label, node, key);
			free(node);
			return rc;
		}
	}
	if (spec->url == NULL) {
		char *node = nodes_node_label(i, spec->name);
		int rc = vd_fail(cause, -EINVAL, "%s: %s: url is missing", label, node);
		free(node);
		return rc;
	}
	return nodes_finish(c, hostname, &given, spec, i, label, cause);
}

static int
nodes_parse_file(const struct config *c, const char *text, const char *hostname, const char *label,
		 struct node_spec **out, size_t *n, char **cause)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	struct node_spec *specs = NULL;
	size_t count = 0;
	int rc = 0;
	if (root == NULL) {
		rc = vd_fail(cause, -EINVAL, "%s: not valid JSON at line %d column %d: %s", label,
			     jerr.line, jerr.column, jerr.text);
		goto out;
	}
	json_t *list = json_object_get(root, "nodes");
	if (!json_is_object(root) || !json_is_array(list)) {
		rc = vd_fail(cause, -EINVAL,
			     "%s: expected an object {\"nodes\": [...]} with a list of nodes",
			     label);
		goto out;
	}
	if (json_object_size(root) != 1) {
		const char *key;
		json_t *value;
		json_object_foreach(root, key, value)
		{
			if (strcmp(key, "nodes") != 0) {
				rc = vd_fail(
				    cause, -EINVAL,
				    "%s: unknown top-level field \"%.64s\" (only \"nodes\")", label,
				    key);
				goto out;
			}
		}
	}
	if (json_array_size(list) == 0 || json_array_size(list) > NODES_MAX) {
		rc = vd_fail(cause, -EINVAL, "%s: \"nodes\" lists %zu nodes; expected 1 to %d",
			     label, json_array_size(list), NODES_MAX);
		goto out;
	}
	specs = xcalloc(json_array_size(list), sizeof(*specs));
	size_t i;
	json_t *obj;
	json_array_foreach(list, i, obj)
	{
		count = i + 1;
		rc = nodes_parse_node(c, hostname, label, i, obj, &specs[i], cause);
		if (rc < 0)
			goto out;
	}
out:
	json_decref(root);
	if (rc < 0) {
		nodes_free(specs, count);
		return rc;
	}
	*out = specs;
	*n = count;
	return 0;
}

/* Nodes from a comma-separated URL list (OLLAMA_NODES, or OLLAMA_BASE_URL alone). */
static int
nodes_parse_urls(const struct config *c, const char *urls, const char *hostname, const char *label,
		 struct node_spec **out, size_t *n, char **cause)
{
	struct node_spec *specs = xcalloc(NODES_MAX, sizeof(*specs));
	size_t count = 0;
	int rc = 0;
	char *copy = xstrdup(urls);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (count == NODES_MAX) {
			rc = vd_fail(cause, -EINVAL, "%s: more than %d nodes", label, NODES_MAX);
			goto out;
		}
		struct nodes_given given = {0};
		struct node_spec *spec = &specs[count++];
		char *why = NULL;
		rc = nodes_url_take(tok, &spec->url, &why);
		if (rc < 0) {
			rc = vd_fail(cause, -EINVAL, "%s: nodes[%zu]: %s", label, count - 1, why);
			free(why);
			goto out;
		}
		rc = nodes_finish(c, hostname, &given, spec, count - 1, label, cause);
		if (rc < 0)
			goto out;
	}
	if (count == 0)
		rc = vd_fail(cause, -EINVAL, "%s: no URL given", label);
out:
	free(copy);
	if (rc < 0) {
		nodes_free(specs, count);
		return rc;
	}
	*out = specs;
	*n = count;
	return 0;
}

/* No two nodes share a name or a server. */
static int
nodes_check_unique(const struct node_spec *specs, size_t n, const char *label, char **cause)
{
	char **keys = xcalloc(n, sizeof(*keys));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct nodes_url u;
		const char *why = NULL;
		if (nodes_url_parse(specs[i].url, &u, &why) == 0)
			keys[i] = nodes_url_key(&u);
		nodes_url_cleanup(&u);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		for (size_t j = 0; j < i && rc == 0; j++) {
			if (strcasecmp(specs[i].name, specs[j].name) == 0)
				rc = vd_fail(cause, -EINVAL,
					     "%s: nodes[%zu] \"%s\" and nodes[%zu] \"%s\" have the "
					     "same name (names are compared ignoring case)",
					     label, j, specs[j].name, i, specs[i].name);
			else if (keys[i] != NULL && keys[j] != NULL &&
				 strcmp(keys[i], keys[j]) == 0) {
				char *shown = nodes_url_shown(specs[i].url);
				rc = vd_fail(cause, -EINVAL,
					     "%s: nodes[%zu] \"%s\" and nodes[%zu] \"%s\" are the "
					     "same server %s",
					     label, j, specs[j].name, i, specs[i].name, shown);
				free(shown);
			}
		}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

/* A key and where its value came from, for messages: "OLLAMA_NODES (from --ollama or
 * --ollama-nodes)", "OLLAMA_BASE_URL (from the environment)". The caller frees. */
static char *
nodes_key_origin(const struct config *c, enum config_key key)
{
	const char *name = config_def(key)->name;
	switch (config_source_of(c, key)) {
	case CONFIG_SRC_DEFAULT:
		return xasprintf("%s (default)", name);
	case CONFIG_SRC_FILE:
		return xasprintf("%s (from the config file)", name);
	case CONFIG_SRC_ENV:
		return xasprintf("%s (from the environment)", name);
	case CONFIG_SRC_FLAG:
		/* --ollama feeds OLLAMA_NODES too (config.c, config_flag_lists). */
		return key == CONFIG_OLLAMA_NODES
			   ? xasprintf("%s (from --ollama or --ollama-nodes)", name)
			   : xasprintf("%s (from %s)", name, config_def(key)->flag);
	case CONFIG_SRC_RUNTIME:
		break;
	}
	return xasprintf("%s (set at run time)", name);
}

/* OLLAMA_BASE_URL set beside a list must be one of its nodes: two settings that
 * disagree about the servers are a mistake to report, not to resolve silently. */
static int
nodes_check_base_url(const struct config *c, const struct node_spec *specs, size_t n,
		     const char *label, char **cause)
{
	if (config_source_of(c, CONFIG_OLLAMA_BASE_URL) == CONFIG_SRC_DEFAULT)
		return 0;
	const char *base = config_str(c, CONFIG_OLLAMA_BASE_URL);
	struct nodes_url u;
	const char *why = NULL;
	char *shown = nodes_url_shown(base);
	char *origin = nodes_key_origin(c, CONFIG_OLLAMA_BASE_URL);
	int rc = nodes_url_parse(base, &u, &why);
	if (rc < 0) {
		rc = vd_fail(cause, -EINVAL, "%s: \"%s\" %s", origin, shown, why);
		goto out;
	}
	char *key = nodes_url_key(&u);
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		struct nodes_url v;
		if (nodes_url_parse(specs[i].url, &v, &why) == 0) {
			char *other = nodes_url_key(&v);
			found = strcmp(key, other) == 0;
			free(other);
		}
		nodes_url_cleanup(&v);
	}
	free(key);
	if (!found)
		rc = vd_fail(cause, -EINVAL,
			     "%s is %s, which is not one of the nodes of %s; unset it (the list "
			     "names every node)",
			     origin, shown, label);
out:
	nodes_url_cleanup(&u);
	free(origin);
	free(shown);
	return rc;
}

int
nodes_from_text(const struct config *c, const char *file_text, const char *hostname,
		struct node_spec **out, size_t *n, char **cause)
{
	const char *file = config_str(c, CONFIG_NODES_FILE);
	const char *list = config_str(c, CONFIG_OLLAMA_NODES);
	struct node_spec *specs = NULL;
	size_t count = 0;
	char *label = NULL;
	int rc;
	if (file[0] != '\0') {
		label = xasprintf("NODES_FILE %s", file);
		if (list[0] != '\0') {
			char *origin = nodes_key_origin(c, CONFIG_OLLAMA_NODES);
			rc = vd_fail(cause, -EINVAL,
				     "%s lists every node, so %s must be empty; give one of them",
				     label, origin);
			free(origin);
			goto out;
		}
		if (file_text == NULL) {
			rc = vd_fail(cause, -EINVAL, "%s was not read", label);
			goto out;
		}
		rc = nodes_parse_file(c, file_text, hostname, label, &specs, &count, cause);
	} else if (list[0] != '\0') {
		label = nodes_key_origin(c, CONFIG_OLLAMA_NODES);
		rc = nodes_parse_urls(c, list, hostname, label, &specs, &count, cause);
	} else {
		label = nodes_key_origin(c, CONFIG_OLLAMA_BASE_URL);
		rc = nodes_parse_urls(c, config_str(c, CONFIG_OLLAMA_BASE_URL), hostname, label,
				      &specs, &count, cause);
	}
	if (rc == 0)
		rc = nodes_check_unique(specs, count, label, cause);
	if (rc == 0 && (file[0] != '\0' || list[0] != '\0'))
		rc = nodes_check_base_url(c, specs, count, label, cause);
out:
	free(label);
	if (rc < 0) {
		nodes_free(specs, count);
		return rc;
	}
	*out = specs;
	*n = count;
	return 0;
}

/* Reads NODES_FILE whole, refusing one over NODES_FILE_MAX_BYTES or with a NUL byte. */
static int
nodes_read_file(const char *path, char **text, char **cause)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return vd_fail(cause, -errno, "cannot open NODES_FILE %s: %s", path,
			       strerror(errno));
	char *buf = xmalloc(NODES_FILE_MAX_BYTES + 1);
	size_t len = fread(buf, 1, NODES_FILE_MAX_BYTES + 1, f);
	int failed = ferror(f);
	fclose(f);
	int rc = 0;
	if (failed)
		rc = vd_fail(cause, -EIO, "cannot read NODES_FILE %s", path);
	else if (len > NODES_FILE_MAX_BYTES)
		rc = vd_fail(cause, -EFBIG, "NODES_FILE %s is over %d bytes", path,
			     NODES_FILE_MAX_BYTES);
	else if (memchr(buf, '\0', len) != NULL)
		rc = vd_fail(cause, -EINVAL, "NODES_FILE %s contains a NUL byte", path);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[len] = '\0';
	*text = buf;
	return 0;
}

int
nodes_from_config(const struct config *c, struct node_spec **out, size_t *n, char **cause)
{
	const char *file = config_str(c, CONFIG_NODES_FILE);
	char *text = NULL;
	if (file[0] != '\0' && config_str(c, CONFIG_OLLAMA_NODES)[0] == '\0') {
		int rc = nodes_read_file(file, &text, cause);
		if (rc < 0)
			return rc;
	}
	char hostname[256] = "";
	if (gethostname(hostname, sizeof(hostname) - 1) < 0)
		hostname[0] = '\0'; /* then only loopback names count as this host */
	int rc = nodes_from_text(c, text, hostname, out, n, cause);
	free(text);
	return rc;
}
