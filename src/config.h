/*
 * config.h: vramd's configuration. One table (config.c, config_table[]) lists every key
 * with its flag, type, default, range, unit and description; the parser, the
 * validation, --help and docs/configuration.md all follow that table.
 *
 * Sources, later ones winning: built-in default < config file (--config FILE, lines
 * "KEY = value", '#' comments) < environment < command-line flags < run-time changes
 * kept in the data directory (config_persist_load). Environment: every
 * key is read from VRAMD_<KEY> (VRAMD_QUEUE_MAX_SIZE); the keys of the original design
 * (OLLAMA_BASE_URL, VRAM_SAFETY_MARGIN_MB, ...) are also read under their bare name, and
 * VRAMD_<KEY> wins over the bare name.
 *
 * The seeds' names are aliases (config.c, config_aliases[]): CPU_FALLBACK_ENABLED is
 * ALLOW_CPU, seed 002's temp_throttle is TEMP_CRITICAL_C, and so on; an alias works
 * wherever its key does (file, environment, PUT /api/gpu/config).
 *
 * Units: an INT key whose unit is "ms" or "s" takes a duration ("100ms", "0.1s", "5m",
 * "1h"), one whose unit is "MiB" a size ("6GiB", "512MiB"). A bare number means the key's
 * unit, except for the few keys whose seed documents seconds (SCHEDULER_LOOP_INTERVAL,
 * MEMORY_MONITORING_INTERVAL): given by key name (file, environment, API) a bare number
 * is seconds there; given with the flag it stays the flag's unit (ms).
 *
 * An empty CUDA_VISIBLE_DEVICES in the environment means "no GPUs": vramd runs on the
 * CPU only (GPU_SOURCE none, no VRAM_BUDGET) when ALLOW_CPU is on, and refuses to start
 * otherwise.
 *
 * Runtime changes (PUT /api/gpu/config) go through config_set_many(): all keys
 * validated first, then applied together, or nothing changes. Only keys marked runtime
 * may change while running. Key names are matched case-insensitively, so JSON may use
 * "critical_pause_seconds".
 *
 * Getters take an enum config_key and never fail: the type is checked with an assert
 * (a wrong getter is a programming error).
 */
#ifndef VRAMD_CONFIG_H
#define VRAMD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_key {
	/* Daemon and backends. */
	CONFIG_OLLAMA_BASE_URL,
	/* The fleet: Ollama servers ("nodes") and the ones vramd runs itself (issue 9). */
	CONFIG_OLLAMA_NODES,
	CONFIG_NODES_FILE,
	CONFIG_SUPERVISE,
	CONFIG_OLLAMA_BIN,
	CONFIG_MAX_REPLICAS,
	CONFIG_LISTEN,
	CONFIG_DATA_DIR,
	CONFIG_LOG_FILE,
	CONFIG_LOG_FORMAT,
	CONFIG_SYNC,
	CONFIG_STORE,
	CONFIG_REQUEST_TIMEOUT,
	CONFIG_LOAD_TIMEOUT,
	CONFIG_MAX_BODY_BYTES,
	CONFIG_OLLAMA_POLL_INTERVAL,
	/* The HTTP server and who may talk to it. */
	CONFIG_MAX_CONNECTIONS,
	CONFIG_HTTP_HEAD_TIMEOUT,
	CONFIG_HTTP_BODY_TIMEOUT,
	CONFIG_HTTP_IDLE_TIMEOUT,
	CONFIG_MAX_EVENT_CLIENTS,
	CONFIG_ALLOWED_HOSTS,
	CONFIG_CORS_ORIGINS,
	CONFIG_API_KEYS_FILE,
	CONFIG_METRICS_REQUIRE_KEY,
	/* vramd answering as Ollama (issue 10). */
	CONFIG_OLLAMA_LISTEN,
	CONFIG_CLIENT_KEEP_ALIVE,
	CONFIG_NORMALIZE_OPTIONS,
	/* Scheduling (issue 3). */
	CONFIG_VRAM_SAFETY_MARGIN_MB,
	CONFIG_VRAM_ESTIMATION_MULTIPLIER,
	CONFIG_SCHEDULER_LOOP_INTERVAL,
	CONFIG_MODEL_KEEP_ALIVE,
	CONFIG_MAX_CONCURRENT_PER_MODEL,
	CONFIG_QUEUE_MAX_SIZE,
	CONFIG_QUEUE_MAX_BYTES,
	CONFIG_MAX_BATCH_WAIT,
	CONFIG_ALLOW_CPU,
	CONFIG_MAX_LOADED_MODELS,
	CONFIG_MIN_SWAP_BATCH,
	CONFIG_PRIORITY_AGING_S,
	CONFIG_PREWARM,
	CONFIG_HOST_MEMORY_MIN_MB,
	CONFIG_OLLAMA_CONTEXT_LENGTH,
	CONFIG_PIN_MODELS,
	CONFIG_GPU_PRIORITY_MODELS,
	CONFIG_OPTIMIZER_INTERVAL,
	CONFIG_PLACEMENT,
	CONFIG_MODEL_GPU_MAP,
	CONFIG_DEADLINE_POLICY,
	CONFIG_MODEL_PLACEMENT, /* issue 11: per-model default of a job's placement */
	CONFIG_WAIT_WARN_S,	/* issue 11: job_waiting event, then any falls back to CPU */
	/* GPU telemetry. */
	CONFIG_NVML_LIB,
	CONFIG_GPU_SOURCE,
	CONFIG_GPU_REMOTE_URL,
	CONFIG_GPUS,
	CONFIG_VRAM_BUDGET,
	CONFIG_MEMORY_MONITORING_INTERVAL,
	CONFIG_GPU_HISTORY_LENGTH,
	/* GPU state machine and throttling (issue 4; runtime-changeable). */
	CONFIG_TEMP_NORMAL_C,
	CONFIG_TEMP_THROTTLED_C,
	CONFIG_TEMP_CRITICAL_C,
	CONFIG_MEMORY_NORMAL_PCT,
	CONFIG_MEMORY_THROTTLED_PCT,
	CONFIG_MEMORY_CRITICAL_PCT,
	CONFIG_HYSTERESIS_C,
	CONFIG_SPEED_OPTIMAL,
	CONFIG_SPEED_NORMAL,
	CONFIG_SPEED_THROTTLED,
	CONFIG_SPEED_CRITICAL,
	CONFIG_CRITICAL_PAUSE_SECONDS,
	CONFIG_THROTTLE_COOLDOWN_SECONDS,
	CONFIG_MEMORY_LIMIT_MB,
	CONFIG_MEMORY_RESERVE_MB,
	CONFIG_RESERVATION_DEFAULT_TTL_S,
	CONFIG_WEBHOOK_URLS,
	/* Several instances on one PostgreSQL database (issue 14). */
	CONFIG_LEADER_TAKEOVER_S,
	CONFIG_INSTANCE_ID,
	/* The seeds' own keys that have no vramd equivalent (issue 13). */
	CONFIG_TEMP_SHUTDOWN_C,
	CONFIG_GPU_MEMORY_FRACTION,
	CONFIG_DYNAMIC_LOADING_ENABLED,
	CONFIG_MODEL_CACHE_SIZE,
	CONFIG_SCHEDULER_STRATEGY,
	CONFIG_NKEYS
};

enum config_type {
	CONFIG_TYPE_STRING, /* free text; may be empty */
	CONFIG_TYPE_URLS, /* comma-separated http:// or https:// URLs, at most max; may be empty */
	CONFIG_TYPE_INT,  /* int64 within [min, max] */
	CONFIG_TYPE_DOUBLE, /* within [min, max] */
	CONFIG_TYPE_BOOL,   /* true/false, yes/no, on/off, 1/0 */
	CONFIG_TYPE_SIZE,   /* bytes: "8GiB", "512MB", "4096" */
	CONFIG_TYPE_ENUM,   /* one of the '|'-separated names in choices */
};

/* Where a key's current value came from. */
enum config_source {
	CONFIG_SRC_DEFAULT,
	CONFIG_SRC_FILE,
	CONFIG_SRC_ENV,
	CONFIG_SRC_FLAG,
	CONFIG_SRC_RUNTIME
};

struct config_def {
	const char *name; /* "QUEUE_MAX_SIZE" */
	const char *env;  /* bare environment alias, or NULL (VRAMD_<name> always works) */
	const char *flag; /* "--queue-max-size" */
	enum config_type type;
	const char *def;     /* default, as text */
	double min, max;     /* range for INT, DOUBLE and SIZE */
	const char *choices; /* ENUM: "auto|nvml|nvidia-smi|none" */
	const char *unit;    /* "ms", "s", "MiB", "C", "%", "bytes", or "" */
	bool runtime;	     /* may change through PUT /api/gpu/config */
	const char *help;    /* one sentence */
};

/* The table, CONFIG_NKEYS entries indexed by enum config_key. */
const struct config_def *config_def(enum config_key key);
/* Looks a key up by name or seed alias, case-insensitively, with or without a VRAMD_
 * prefix. */
int config_key_from_name(const char *name); /* enum config_key, or -1 */
/* The i-th seed alias (static string) and its key, or NULL past the last. */
const char *config_alias_at(size_t i, enum config_key *key);

struct config;

/* A configuration holding every default. */
struct config *config_new(void);
void config_free(struct config *cfg);

/*
 * Loads every source into cfg: parses argv for --config FILE and the key flags
 * (--flag VALUE or --flag=VALUE; a BOOL flag alone means true; --ollama may be repeated,
 * see OLLAMA_NODES in config.c), reads the file, then
 * the environment envp (NULL = environ), then applies the flags. --help/-h and
 * --version set *help / *version (either may be NULL to reject them) and stop nothing.
 * Returns 0, or -EINVAL with *cause naming the key, the source ("flag --queue-max-size",
 * "environment VRAMD_QUEUE_MAX_SIZE", "/etc/vramd.conf:12") and the accepted range,
 * or naming an unknown flag / file key.
 */
int config_load(struct config *cfg, int argc, char **argv, char **envp, bool *help, bool *version,
		char **cause);
/* Reads a config file only (part of config_load; exposed for tests and the fuzzer). */
int config_load_file(struct config *cfg, const char *path, char **cause);
/* Parses file text (label names it in messages). */
int config_load_text(struct config *cfg, const char *text, const char *label, char **cause);

/* Sets one key from text (validated; any key, runtime or not; source becomes runtime).
 * Returns 0, -ENOENT (unknown key) or -EINVAL with *cause naming the key and range. */
int config_set(struct config *cfg, const char *key, const char *value, char **cause);
/*
 * PUT /api/gpu/config: obj maps key names to values (JSON numbers, strings, booleans).
 * Every key must exist and be runtime-changeable, every value valid, and the thresholds
 * must stay ordered; then all are applied at once. On error nothing changes and the
 * return is -ENOENT (unknown key) or -EINVAL with *cause naming the key.
 * *changed (may be NULL) receives a new JSON object of the keys whose value changed.
 */
int config_set_many(struct config *cfg, const json_t *obj, json_t **changed, char **cause);
/*
 * config_set_many, with the result written to DATA_DIR/runtime-config.json before it
 * takes effect (persist first, then apply): a change the next start would not see is
 * not made. On a bad key or value: as config_set_many, *persist_failed false. When the
 * file cannot be written: -errno, *cause naming the file and the error, *persist_failed
 * true, and nothing changed. persist_failed may be NULL.
 */
int config_set_many_kept(struct config *cfg, const json_t *obj, json_t **changed,
			 bool *persist_failed, char **cause);

/* Typed getters. Strings are borrowed until the key changes. */
const char *config_str(const struct config *cfg, enum config_key key);
int64_t config_int(const struct config *cfg, enum config_key key);
double config_double(const struct config *cfg, enum config_key key);
bool config_bool(const struct config *cfg, enum config_key key);
uint64_t config_size(const struct config *cfg, enum config_key key);
enum config_source config_source_of(const struct config *cfg, enum config_key key);
const char *config_source_name(enum config_source source);

/* {"KEY": value, ...} with typed values; runtime_only limits it to runtime keys. URL lists
 * are shown with credentials and queries masked (vd_url_redact), never as given. */
json_t *config_to_json(const struct config *cfg, bool runtime_only);
/* A URL list value as a JSON array with credentials and queries masked (vd_url_redact). */
json_t *config_urls_json(const char *urls);

/*
 * SIGHUP: loads the sources again as config_load was given them (argv, environment, the
 * file read anew) and applies every run-time key whose value from the sources changed
 * since the last load; such a key's run-time change (source runtime) is replaced, since
 * the file is now the newer word. Keys the sources change that are not run-time keep
 * their running value and are listed in *needs_restart (until vramd restarts). On error
 * (the file unreadable or invalid, thresholds out of order) nothing changes and *cause
 * names the problem. On success *changed (an object of the keys whose running value
 * changed, typed) and *needs_restart (an array of key names) are new references.
 */
int config_reload_file(struct config *cfg, json_t **changed, json_t **needs_restart, char **cause);
/* The config file config_load read (borrowed), or NULL. */
const char *config_file_path(const struct config *cfg);

/*
 * Run-time changes that survive a restart: DATA_DIR/runtime-config.json holds every key
 * whose source is runtime, {"version": 1, "config": {"KEY": "value"}}. The order of the
 * sources at start is defaults < file < environment < flags < this file: a change made
 * while running is the newest word until the file changes that key and vramd reloads it
 * (config_reload_file), which drops the run-time change.
 */
#define CONFIG_PERSIST_FILE "runtime-config.json"
/* The path of that file (caller frees). */
char *config_persist_path(const struct config *cfg);
/* Writes the file atomically (temporary file, fsync, rename). -errno with *cause. */
int config_persist_save(const struct config *cfg, char **cause);
/*
 * Applies the file at start, after config_load. A missing file is no error. Entries that
 * no longer apply (an unknown or no longer run-time key, a value out of range) are
 * skipped and described in *skipped (a new array of strings, for the log); thresholds
 * out of order, or a file that is not JSON, fail with *cause and change nothing.
 */
int config_persist_load(struct config *cfg, json_t **skipped, char **cause);

/*
 * Several instances (cluster.c) keep the run-time changes in their shared store too.
 * config_runtime_doc: the document runtime-config.json holds (caller frees).
 * config_set_keeper: config_set_many_kept hands that document of the new values to fn
 * before it writes the file (a failure there fails the change: nothing changes).
 * config_apply_runtime_doc: applies such a document (where names it in errors), as
 * config_persist_load does; *changed (may be NULL) as config_set_many's, entries that no
 * longer apply are appended to skipped.
 */
typedef int config_keep_fn(const char *doc, void *arg, char **cause);
char *config_runtime_doc(const struct config *cfg);
void config_set_keeper(struct config *cfg, config_keep_fn *fn, void *arg);
int config_apply_runtime_doc(struct config *cfg, const char *text, const char *where,
			     json_t **changed, json_t *skipped, char **cause);

/* The --help text from the table. */
void config_print_help(FILE *out, const char *progname);
/* Markdown table of every key (docs/configuration.md is written from it). */
void config_print_markdown(FILE *out);
/* The installed vramd.conf: every key commented out at its default, with its help. */
void config_print_conf(FILE *out);
/* The KEYS section of vramd.conf(5): one roff .TP entry per key. */
void config_print_man(FILE *out);

#endif
