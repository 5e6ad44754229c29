/*
 * config.c: the configuration table and its sources (see config.h). vramd.c calls
 * config_load() once at start; the API calls config_set_many() for PUT /api/gpu/config
 * and config_to_json() for GET; every component reads values through the typed getters.
 *
 * Every key is one row of config_table[], indexed by enum config_key (checked at
 * start by config_new). A value is kept both as the text it was given and parsed into
 * its type, so GET shows typed JSON and --help shows the default text.
 *
 * SIGHUP calls config_reload_file() (the sources again, run-time keys only); the
 * run-time changes are kept in DATA_DIR/runtime-config.json (config_persist_save after
 * each change, config_persist_load at start, after every other source).
 *
 * Invariant: the values in a struct config are always valid and the ordered groups
 * (temperature and memory thresholds, speed multipliers) always ordered; every change
 * is checked on a copy first and applied only when the whole copy is valid.
 */
#include "config.h"

#include "job.h"

#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

extern char **environ;

/* clang-format off */
static const struct config_def config_table[CONFIG_NKEYS] = {
	[CONFIG_OLLAMA_BASE_URL] = {"OLLAMA_BASE_URL", "OLLAMA_BASE_URL", "--ollama", CONFIG_TYPE_STRING,
		"http://127.0.0.1:11434", 0, 0, NULL, "", false,
		"Base URL of the Ollama server vramd schedules for: the one-node form, used when "
		"OLLAMA_NODES and NODES_FILE are empty (set beside them, it must be one of their "
		"nodes); the first --ollama sets it."},
	[CONFIG_OLLAMA_NODES] = {"OLLAMA_NODES", "OLLAMA_NODES", "--ollama-nodes", CONFIG_TYPE_URLS,
		"", 0, 64, NULL, "", false,
		"Ollama servers (nodes) as comma-separated http:// or https:// URLs, named node0, "
		"node1, ... in this order; each --ollama URL adds one (the first replaces a list from "
		"the file or environment). Takes the place of OLLAMA_BASE_URL."},
	[CONFIG_NODES_FILE] = {"NODES_FILE", NULL, "--nodes-file", CONFIG_TYPE_STRING, "", 0, 0,
		NULL, "", false,
		"JSON file listing every node with its settings (name, url, gpus, vram_budget, "
		"telemetry_url, labels, local; see docs/fleet.md); OLLAMA_NODES and --ollama must then "
		"be unset."},
	[CONFIG_SUPERVISE] = {"SUPERVISE", NULL, "--supervise", CONFIG_TYPE_ENUM, "off", 0, 0,
		"off|per-gpu", "", false,
		"per-gpu: vramd starts one \"OLLAMA_BIN serve\" per GPU of this host, each with "
		"CUDA_VISIBLE_DEVICES set to its GPU and its own loopback OLLAMA_HOST port, and "
		"keeps them running; off: the Ollama servers are started by someone else."},
	[CONFIG_OLLAMA_BIN] = {"OLLAMA_BIN", NULL, "--ollama-bin", CONFIG_TYPE_STRING, "ollama", 0,
		0, NULL, "", false,
		"The Ollama program SUPERVISE=per-gpu starts (looked up in PATH unless it has a /)."},
	[CONFIG_MAX_REPLICAS] = {"MAX_REPLICAS", NULL, "--max-replicas", CONFIG_TYPE_INT, "1", 1, 16,
		NULL, "", false,
		"Nodes one model may run on at once: a model is loaded on another node too when its "
		"queue is long and that node has room."},
	[CONFIG_LISTEN] = {"LISTEN", NULL, "--listen", CONFIG_TYPE_STRING, "127.0.0.1:5001", 0, 0,
		NULL, "", false, "Address and port of vramd's HTTP API (HOST:PORT)."},
	[CONFIG_DATA_DIR] = {"DATA_DIR", NULL, "--data-dir", CONFIG_TYPE_STRING, "./vramd-data", 0, 0,
		NULL, "", false, "Directory of the job database (created if missing)."},
	[CONFIG_LOG_FILE] = {"LOG_FILE", NULL, "--log-file", CONFIG_TYPE_STRING, "", 0, 0, NULL, "",
		false, "Append the log to this file; - is stderr. Empty: stderr, unless stderr goes "
		"nowhere (closed or /dev/null, as when started in the background), then "
		"DATA_DIR/vramd.log."},
	[CONFIG_LOG_FORMAT] = {"LOG_FORMAT", NULL, "--log-format", CONFIG_TYPE_ENUM, "text", 0, 0,
		"text|json", "", false,
		"text: [HH:MM:SS.mmm] [COMPONENT] message; json: one object per line with time "
		"(UTC, ms), level, component and msg, for log shippers."},
	[CONFIG_SYNC] = {"SYNC", NULL, "--sync", CONFIG_TYPE_ENUM, "full", 0, 0, "full|normal", "",
		false, "Commit durability: full survives power loss, normal only a vramd crash."},
	[CONFIG_STORE] = {"STORE", NULL, "--store", CONFIG_TYPE_STRING, "", 0, 0, NULL, "", false,
		"Where jobs and reservations are kept: empty, a SQLite database in DATA_DIR; a "
		"postgresql:// or postgres:// URL, that PostgreSQL database (libpq's URL form and "
		"PG* environment variables; the password is never shown). SYNC applies to SQLite "
		"only: PostgreSQL commits always wait for the server's flush."},
	[CONFIG_REQUEST_TIMEOUT] = {"REQUEST_TIMEOUT", NULL, "--request-timeout", CONFIG_TYPE_INT,
		"600", 1, 86400, NULL, "s", false,
		"Timeout of one job run on Ollama; after a run times out, nothing more is sent to "
		"the server until it answers a probe."},
	[CONFIG_LOAD_TIMEOUT] = {"LOAD_TIMEOUT", NULL, "--load-timeout", CONFIG_TYPE_INT, "0", 0,
		86400, NULL, "s", false,
		"A model load taking longer is abandoned and the model unloaded (0 = automatic: 4x "
		"the file size over the measured load bandwidth, 30 s to 10 min)."},
	[CONFIG_MAX_BODY_BYTES] = {"MAX_BODY_BYTES", NULL, "--max-body-bytes", CONFIG_TYPE_SIZE,
		"8MiB", 1024, 1073741824.0, NULL, "bytes", false,
		"Largest accepted request body (bigger ones get 413)."},
	[CONFIG_OLLAMA_POLL_INTERVAL] = {"OLLAMA_POLL_INTERVAL", NULL, "--ollama-poll-interval",
		CONFIG_TYPE_INT, "1000", 50, 600000, NULL, "ms", false,
		"How often /api/ps and /api/version of each Ollama server are polled."},
	[CONFIG_MAX_CONNECTIONS] = {"MAX_CONNECTIONS", NULL, "--max-connections", CONFIG_TYPE_INT,
		"1024", 1, 1000000, NULL, "", false,
		"Client connections at once (also at most the descriptor limit less 64); more get 503."},
	[CONFIG_HTTP_HEAD_TIMEOUT] = {"HTTP_HEAD_TIMEOUT", NULL, "--http-head-timeout",
		CONFIG_TYPE_INT, "10", 1, 3600, NULL, "s", false,
		"A request's line and headers must arrive within this long (else 408)."},
	[CONFIG_HTTP_BODY_TIMEOUT] = {"HTTP_BODY_TIMEOUT", NULL, "--http-body-timeout",
		CONFIG_TYPE_INT, "60", 1, 3600, NULL, "s", false,
		"A request's body must arrive within this long after its headers (else 408)."},
	[CONFIG_HTTP_IDLE_TIMEOUT] = {"HTTP_IDLE_TIMEOUT", NULL, "--http-idle-timeout",
		CONFIG_TYPE_INT, "60", 1, 86400, NULL, "s", false,
		"A keep-alive connection with no request is closed after this long."},
	[CONFIG_MAX_EVENT_CLIENTS] = {"MAX_EVENT_CLIENTS", NULL, "--max-event-clients",
		CONFIG_TYPE_INT, "64", 0, 100000, NULL, "", false,
		"GET /api/events streams at once; more get 503."},
	[CONFIG_ALLOWED_HOSTS] = {"ALLOWED_HOSTS", NULL, "--allowed-hosts", CONFIG_TYPE_STRING, "",
		0, 0, NULL, "", false,
		"Host header names accepted besides localhost and the listen address, comma-separated "
		"(* accepts any)."},
	[CONFIG_CORS_ORIGINS] = {"CORS_ORIGINS", NULL, "--cors-origins", CONFIG_TYPE_STRING, "", 0,
		0, NULL, "", false,
		"Browser origins (scheme://host[:port], comma-separated, * for any) allowed to call "
		"the API; empty: none besides localhost pages."},
	[CONFIG_API_KEYS_FILE] = {"API_KEYS_FILE", NULL, "--api-keys-file", CONFIG_TYPE_STRING, "",
		0, 0, NULL, "", false,
		"JSON file of API keys (docs/api.md, \"API keys\"): every endpoint but GET "
		"/api/health then needs \"Authorization: Bearer KEY\"; empty: no keys, anyone who "
		"can reach LISTEN may call (keep it on loopback)."},
	[CONFIG_METRICS_REQUIRE_KEY] = {"METRICS_REQUIRE_KEY", NULL, "--metrics-require-key",
		CONFIG_TYPE_BOOL, "false", 0, 0, NULL, "", false,
		"With API_KEYS_FILE, GET /metrics needs a key too (any key); false: it is public "
		"like /api/health, as Prometheus scrapers expect (docs/operations.md)."},
	[CONFIG_OLLAMA_LISTEN] = {"OLLAMA_LISTEN", "OLLAMA_LISTEN", "--ollama-listen",
		CONFIG_TYPE_STRING, "", 0, 0, NULL, "", false,
		"A second address (HOST:PORT) serving the same API, e.g. 127.0.0.1:11434 with Ollama "
		"moved to another port, so Ollama clients keep their default; empty: none."},
	[CONFIG_CLIENT_KEEP_ALIVE] = {"CLIENT_KEEP_ALIVE", NULL, "--client-keep-alive",
		CONFIG_TYPE_ENUM, "hint", 0, 0, "ignore|hint", "", true,
		"hint: an Ollama request's keep_alive keeps its model loaded at least that long after "
		"the job (at most 4 x MODEL_KEEP_ALIVE; never against a load that needs the memory); "
		"ignore: only MODEL_KEEP_ALIVE counts."},
	[CONFIG_NORMALIZE_OPTIONS] = {"NORMALIZE_OPTIONS", NULL, "--normalize-options",
		CONFIG_TYPE_BOOL, "true", 0, 0, NULL, "", true,
		"Give a job on a loaded model the runner's own num_ctx, num_batch, num_gpu, main_gpu, "
		"use_mmap and num_thread, so differing options do not make Ollama reload it; a job "
		"asking a larger num_ctx gets the model reloaded with it once."},
	[CONFIG_VRAM_SAFETY_MARGIN_MB] = {"VRAM_SAFETY_MARGIN_MB", "VRAM_SAFETY_MARGIN_MB",
		"--safety-margin-mb", CONFIG_TYPE_INT, "1024", 0, 1048576, NULL, "MiB", true,
		"GPU memory always left free when deciding whether a model fits; at least 1024 "
		"against Ollama 0.30+, whose llama-server keeps that much free and spills the rest "
		"to the CPU."},
	[CONFIG_VRAM_ESTIMATION_MULTIPLIER] = {"VRAM_ESTIMATION_MULTIPLIER",
		"VRAM_ESTIMATION_MULTIPLIER", "--estimation-multiplier", CONFIG_TYPE_DOUBLE, "1.3",
		0.1, 10, NULL, "", true,
		"VRAM estimate of a never-loaded model: file size times this, plus its KV cache, "
		"plus the runner overhead (CUDA context) measured on other models."},
	[CONFIG_SCHEDULER_LOOP_INTERVAL] = {"SCHEDULER_LOOP_INTERVAL", "SCHEDULER_LOOP_INTERVAL",
		"--loop-interval", CONFIG_TYPE_INT, "100", 1, 60000, NULL, "ms", false,
		"The scheduler runs on every change and at least this often; a bare number is "
		"seconds by key name (seed 001's SCHEDULER_LOOP_INTERVAL = 0.1), ms with the flag."},
	[CONFIG_MODEL_KEEP_ALIVE] = {"MODEL_KEEP_ALIVE", "MODEL_KEEP_ALIVE", "--keep-alive",
		CONFIG_TYPE_INT, "300", 0, 31536000, NULL, "s", true,
		"Idle models are unloaded after this long."},
	[CONFIG_MAX_CONCURRENT_PER_MODEL] = {"MAX_CONCURRENT_PER_MODEL", "MAX_CONCURRENT_PER_MODEL",
		"--max-concurrent", CONFIG_TYPE_INT, "1", 1, 1024, NULL, "", true,
		"Jobs of one model at once; match the Ollama server's OLLAMA_NUM_PARALLEL."},
	[CONFIG_QUEUE_MAX_SIZE] = {"QUEUE_MAX_SIZE", "QUEUE_MAX_SIZE", "--queue-max-size",
		CONFIG_TYPE_INT, "1000", 1, 10000000, NULL, "", false,
		"Jobs waiting at most; more submissions get 429 with Retry-After."},
	[CONFIG_QUEUE_MAX_BYTES] = {"QUEUE_MAX_BYTES", NULL, "--queue-max-bytes", CONFIG_TYPE_SIZE,
		"256MiB", 1024, 1099511627776.0, NULL, "bytes", false,
		"Request bytes (stored JSON) of all jobs not yet final at most; more get 429."},
	[CONFIG_MAX_BATCH_WAIT] = {"MAX_BATCH_WAIT", "MAX_BATCH_WAIT", "--max-batch-wait",
		CONFIG_TYPE_INT, "30", 0, 86400, NULL, "s", true,
		"The longest a job waits behind jobs of already loaded models."},
	[CONFIG_ALLOW_CPU] = {"ALLOW_CPU", NULL, "--allow-cpu", CONFIG_TYPE_BOOL, "false", 0, 0,
		NULL, "", true, "Let a model that fits no GPU run on CPU (host memory)."},
	[CONFIG_OLLAMA_CONTEXT_LENGTH] = {"OLLAMA_CONTEXT_LENGTH", NULL, "--ollama-context-length",
		CONFIG_TYPE_INT, "0", 0, 16777216, NULL, "tokens", true,
		"The server's default num_ctx, for sizing KV caches; match its OLLAMA_CONTEXT_LENGTH "
		"(0 = Ollama's VRAM tier: 4096, 32768 from 23 GiB, 262144 from 47 GiB)."},
	[CONFIG_MIN_SWAP_BATCH] = {"MIN_SWAP_BATCH", NULL, "--min-swap-batch", CONFIG_TYPE_INT, "2",
		0, 1000, NULL, "jobs", true,
		"A load that needs another model unloaded waits until this many of its jobs queue "
		"(or one is high priority, or one waited MAX_BATCH_WAIT); 0 or 1 = never waits."},
	[CONFIG_PRIORITY_AGING_S] = {"PRIORITY_AGING_S", NULL, "--priority-aging", CONFIG_TYPE_INT,
		"60", 0, 86400, NULL, "s", true,
		"A waiting job's priority rises one class per this many seconds waited (low to "
		"normal to high), within its model's queue and across models, so low never starves; "
		"0 = never."},
	[CONFIG_PREWARM] = {"PREWARM", NULL, "--prewarm", CONFIG_TYPE_BOOL, "false", 0, 0, NULL, "",
		true,
		"When no job waits and a GPU has room, load the model most likely to be asked for "
		"next (learned arrival rates), never evicting for it; it is the first unloaded when "
		"room is needed. Off by default: it spends loads and memory on a guess."},
	[CONFIG_HOST_MEMORY_MIN_MB] = {"HOST_MEMORY_MIN_MB", NULL, "--host-memory-min",
		CONFIG_TYPE_INT, "0", 0, 16777216, NULL, "MiB", true,
		"Below this much available host memory (MemAvailable), idle models on the CPU are "
		"unloaded, least valuable first, and no CPU load takes it below; 0 = off."},
	[CONFIG_MAX_LOADED_MODELS] = {"MAX_LOADED_MODELS", NULL, "--max-loaded-models",
		CONFIG_TYPE_INT, "0", 0, 1000, NULL, "", true,
		"Most models resident at once on the Ollama server; match its OLLAMA_MAX_LOADED_MODELS "
		"(0 = Ollama's default, 3 per GPU)."},
	[CONFIG_PIN_MODELS] = {"PIN_MODELS", NULL, "--pin-models", CONFIG_TYPE_STRING, "", 0, 0,
		NULL, "", false,
		"Models (comma-separated) loaded at start and again whenever the server lost them, "
		"never unloaded by keep-alive or to make room."},
	[CONFIG_GPU_PRIORITY_MODELS] = {"GPU_PRIORITY_MODELS", NULL, "--gpu-priority-models",
		CONFIG_TYPE_STRING, "", 0, 0, NULL, "", false,
		"Models (comma-separated) the GPU optimizer moves from the CPU back to a GPU once "
		"idle, when a GPU has or can make room."},
	[CONFIG_PLACEMENT] = {"PLACEMENT", NULL, "--placement", CONFIG_TYPE_ENUM, "spread", 0, 0,
		"spread|pack", "", false,
		"Which GPU a model loads on: spread takes the one with the most free memory (then "
		"the fewest models and least work, the cooler); pack the one with the least free "
		"memory that fits, keeping others free for big models."},
	[CONFIG_MODEL_GPU_MAP] = {"MODEL_GPU_MAP", NULL, "--model-gpu-map", CONFIG_TYPE_STRING, "",
		0, 0, NULL, "", false,
		"JSON file: model -> ordered list of GPU indexes or UUIDs tried before the others, "
		"e.g. {\"llama3.2:1b\": [1, 0]}; a bad file stops vramd at start."},
	[CONFIG_DEADLINE_POLICY] = {"DEADLINE_POLICY", NULL, "--deadline-policy", CONFIG_TYPE_ENUM,
		"best_effort", 0, 0, "reject|best_effort", "", true,
		"A job with a deadline (deadline_s, X-Vramd-Deadline) that the ETA says cannot start "
		"and run before it: reject answers 429 with the ETA and stores nothing; best_effort "
		"accepts it (it runs first in its class, late)."},
	[CONFIG_MODEL_PLACEMENT] = {"MODEL_PLACEMENT", NULL, "--model-placement",
		CONFIG_TYPE_STRING, "", 0, 0, NULL, "", false,
		"Where jobs of a model run when they name no placement: comma-separated "
		"model=placement (gpu, cpu or any), e.g. llama3.1:70b=cpu,phi3:mini=gpu; other "
		"models: any with ALLOW_CPU on, else gpu. A bad entry stops vramd at start."},
	[CONFIG_WAIT_WARN_S] = {"WAIT_WARN_S", NULL, "--wait-warn", CONFIG_TYPE_INT, "60", 1, 86400,
		NULL, "s", true,
		"A job whose model cannot fit now (memory held by other programs, a reservation, a "
		"paused GPU) gets a job_waiting event after waiting this long; a job of placement "
		"any then falls back to the CPU."},
	[CONFIG_OPTIMIZER_INTERVAL] = {"OPTIMIZER_INTERVAL", NULL, "--optimizer-interval",
		CONFIG_TYPE_INT, "300", 1, 86400, NULL, "s", true,
		"How often the GPU optimizer looks for GPU_PRIORITY_MODELS on the CPU (also after "
		"every unload)."},
	[CONFIG_NVML_LIB] = {"NVML_LIB", NULL, "--nvml-lib", CONFIG_TYPE_STRING, "", 0, 0, NULL, "",
		false, "Path of libnvidia-ml; empty tries libnvidia-ml.so.1 then libnvidia-ml.so."},
	[CONFIG_GPU_SOURCE] = {"GPU_SOURCE", NULL, "--gpu-source", CONFIG_TYPE_ENUM, "auto", 0, 0,
		"auto|nvml|nvidia-smi|none|vramd", "", false,
		"GPU telemetry: auto tries NVML, then nvidia-smi, then none; vramd reads the GPUs of "
		"another machine from the vramd at GPU_REMOTE_URL (never chosen by auto)."},
	[CONFIG_GPU_REMOTE_URL] = {"GPU_REMOTE_URL", NULL, "--gpu-remote-url", CONFIG_TYPE_URLS, "",
		0, 1, NULL, "", false,
		"Base URL of the vramd whose GPUs GPU_SOURCE=vramd reads (its GET "
		"/api/gpu/status/all, once per MEMORY_MONITORING_INTERVAL, 5 s timeout), e.g. "
		"http://10.0.0.2:5001; required with GPU_SOURCE=vramd."},
	[CONFIG_GPUS] = {"GPUS", NULL, "--gpus", CONFIG_TYPE_STRING, "", 0, 0, NULL, "", false,
		"GPUs to use, by index or UUID, comma-separated (empty: all)."},
	[CONFIG_VRAM_BUDGET] = {"VRAM_BUDGET", NULL, "--vram-budget", CONFIG_TYPE_SIZE, "0", 0,
		1125899906842624.0, NULL, "bytes", false,
		"GPU memory to plan with when there is no GPU telemetry (0: CPU only)."},
	[CONFIG_MEMORY_MONITORING_INTERVAL] = {"MEMORY_MONITORING_INTERVAL",
		"MEMORY_MONITORING_INTERVAL", "--monitor-interval", CONFIG_TYPE_INT, "1000", 50,
		600000, NULL, "ms", true,
		"How often GPUs are sampled; a bare number is seconds by key name (seed 002's "
		"monitor_interval), ms with the flag."},
	[CONFIG_GPU_HISTORY_LENGTH] = {"GPU_HISTORY_LENGTH", NULL, "--gpu-history", CONFIG_TYPE_INT,
		"200", 1, 100000, NULL, "samples", true,
		"Samples kept per GPU for history and trends (a change at run time resizes the "
		"ring, keeping the newest samples)."},
	[CONFIG_TEMP_NORMAL_C] = {"TEMP_NORMAL_C", NULL, "--temp-normal", CONFIG_TYPE_INT, "65", 0,
		150, NULL, "C", true, "A GPU at or above this temperature is NORMAL (below: OPTIMAL)."},
	[CONFIG_TEMP_THROTTLED_C] = {"TEMP_THROTTLED_C", NULL, "--temp-throttled", CONFIG_TYPE_INT,
		"75", 0, 150, NULL, "C", true, "At or above this temperature a GPU is THROTTLED."},
	[CONFIG_TEMP_CRITICAL_C] = {"TEMP_CRITICAL_C", NULL, "--temp-critical", CONFIG_TYPE_INT,
		"85", 0, 150, NULL, "C", true,
		"Above this temperature a GPU is CRITICAL (never above the card's slowdown - 2)."},
	[CONFIG_MEMORY_NORMAL_PCT] = {"MEMORY_NORMAL_PCT", NULL, "--memory-normal-pct",
		CONFIG_TYPE_DOUBLE, "70", 0, 100, NULL, "%", true,
		"Memory used by others at or above this share makes a GPU NORMAL."},
	[CONFIG_MEMORY_THROTTLED_PCT] = {"MEMORY_THROTTLED_PCT", NULL, "--memory-throttled-pct",
		CONFIG_TYPE_DOUBLE, "85", 0, 100, NULL, "%", true,
		"Memory used by others at or above this share makes a GPU THROTTLED."},
	[CONFIG_MEMORY_CRITICAL_PCT] = {"MEMORY_CRITICAL_PCT", NULL, "--memory-critical-pct",
		CONFIG_TYPE_DOUBLE, "95", 0, 100, NULL, "%", true,
		"Memory used by others above this share makes a GPU CRITICAL."},
	[CONFIG_HYSTERESIS_C] = {"HYSTERESIS_C", NULL, "--hysteresis", CONFIG_TYPE_INT, "3", 0, 50,
		NULL, "C", true, "A GPU leaves a hotter state only this far below its threshold."},
	[CONFIG_SPEED_OPTIMAL] = {"SPEED_OPTIMAL", NULL, "--speed-optimal", CONFIG_TYPE_DOUBLE, "1.0",
		0, 1, NULL, "", true, "Concurrency multiplier of an OPTIMAL GPU."},
	[CONFIG_SPEED_NORMAL] = {"SPEED_NORMAL", NULL, "--speed-normal", CONFIG_TYPE_DOUBLE, "0.8", 0,
		1, NULL, "", true, "Concurrency multiplier of a NORMAL GPU."},
	[CONFIG_SPEED_THROTTLED] = {"SPEED_THROTTLED", NULL, "--speed-throttled", CONFIG_TYPE_DOUBLE,
		"0.5", 0, 1, NULL, "", true, "Concurrency multiplier of a THROTTLED GPU."},
	[CONFIG_SPEED_CRITICAL] = {"SPEED_CRITICAL", NULL, "--speed-critical", CONFIG_TYPE_DOUBLE,
		"0.0", 0, 1, NULL, "", true, "Concurrency multiplier of a CRITICAL GPU (0: paused)."},
	[CONFIG_CRITICAL_PAUSE_SECONDS] = {"CRITICAL_PAUSE_SECONDS", NULL, "--critical-pause",
		CONFIG_TYPE_INT, "60", 0, 86400, NULL, "s", true,
		"A CRITICAL GPU gets no new work for this long, then is re-evaluated."},
	[CONFIG_THROTTLE_COOLDOWN_SECONDS] = {"THROTTLE_COOLDOWN_SECONDS", NULL,
		"--throttle-cooldown", CONFIG_TYPE_INT, "30", 0, 86400, NULL, "s", true,
		"A GPU leaves THROTTLED only after this long below its threshold."},
	[CONFIG_MEMORY_LIMIT_MB] = {"MEMORY_LIMIT_MB", NULL, "--memory-limit-mb", CONFIG_TYPE_INT,
		"0", 0, 16777216, NULL, "MiB", true,
		"GPU memory vramd may hand out per GPU, models and reservations (0: all of it)."},
	[CONFIG_MEMORY_RESERVE_MB] = {"MEMORY_RESERVE_MB", NULL, "--memory-reserve-mb",
		CONFIG_TYPE_INT, "0", 0, 16777216, NULL, "MiB", true,
		"GPU memory reservations may never take (kept for the system)."},
	[CONFIG_RESERVATION_DEFAULT_TTL_S] = {"RESERVATION_DEFAULT_TTL_S", NULL,
		"--reservation-default-ttl", CONFIG_TYPE_INT, "3600", 1, 604800, NULL, "s", true,
		"Lifetime of a VRAM reservation (POST /api/gpu/memory/allocate) that gives no ttl_s; "
		"reservation_default_ttl_s in PUT /api/gpu/config."},
	[CONFIG_WEBHOOK_URLS] = {"WEBHOOK_URLS", NULL, "--webhook-urls", CONFIG_TYPE_URLS, "", 0, 16,
		NULL, "", false,
		"Comma-separated http:// or https:// URLs (at most 16) that receive GPU events as JSON "
		"POSTs; not changeable through the API."},
	[CONFIG_LEADER_TAKEOVER_S] = {"LEADER_TAKEOVER_S", NULL, "--leader-takeover",
		CONFIG_TYPE_INT, "5", 3, 600, NULL, "s", false,
		"With several instances on one PostgreSQL database: the longest a crashed or cut-off "
		"leader keeps the others waiting before one of them leads. The leader heartbeats "
		"every tenth of it, stops acting after about a third of it without an answer from "
		"the database, and the database drops its lock after about three quarters."},
	[CONFIG_INSTANCE_ID] = {"INSTANCE_ID", NULL, "--instance-id", CONFIG_TYPE_STRING, "", 0, 0,
		NULL, "", false,
		"With several instances on one PostgreSQL database: this instance's name in GET "
		"/api/cluster and vramctl cluster; unique among them (empty: HOST:PORT of LISTEN)."},
	[CONFIG_TEMP_SHUTDOWN_C] = {"TEMP_SHUTDOWN_C", NULL, "--temp-shutdown", CONFIG_TYPE_INT,
		"0", 0, 150, NULL, "C", true,
		"Seed 002's temp_critical (90 there): at or above it a GPU is SHUTDOWN: its jobs "
		"are stopped and queued again, vramd's models there unloaded, and nothing is "
		"placed there until it is below TEMP_CRITICAL_C; must be above TEMP_CRITICAL_C "
		"(0: no such state)."},
	[CONFIG_GPU_MEMORY_FRACTION] = {"GPU_MEMORY_FRACTION", "GPU_MEMORY_FRACTION",
		"--gpu-memory-fraction", CONFIG_TYPE_DOUBLE, "1.0", 0.01, 1, NULL, "", true,
		"Share of each GPU's memory vramd may fill with its models, beside reservations "
		"(seed 004); with MEMORY_LIMIT_MB the lower bound wins."},
	[CONFIG_DYNAMIC_LOADING_ENABLED] = {"DYNAMIC_LOADING_ENABLED", "DYNAMIC_LOADING_ENABLED",
		"--dynamic-loading", CONFIG_TYPE_BOOL, "true", 0, 0, NULL, "", true,
		"false: only the PIN_MODELS are loaded; a job for any other model is refused at "
		"submission with a message saying so, and PREWARM loads none (seed 004)."},
	[CONFIG_MODEL_CACHE_SIZE] = {"MODEL_CACHE_SIZE", "MODEL_CACHE_SIZE", "--model-cache-size",
		CONFIG_TYPE_INT, "0", 0, 1000, NULL, "models", true,
		"Models resident on each GPU at most (seed 004): a GPU holding this many takes no "
		"further load while another GPU may, else an idle model there is unloaded first "
		"(MAX_LOADED_MODELS still caps the node); 0 = no cap of its own."},
	[CONFIG_SCHEDULER_STRATEGY] = {"SCHEDULER_STRATEGY", "SCHEDULER_STRATEGY",
		"--scheduler-strategy", CONFIG_TYPE_ENUM, "demand_based", 0, 0, "demand_based", "",
		false,
		"Seed 001's strategy: demand_based (the only one, and what vramd does: the models "
		"with the most waiting work load first, idle ones make room)."},
};
/* clang-format on */

/*
 * The seeds' names for vramd's keys. Matched like key names (case-insensitively) in the
 * config file, in PUT /api/gpu/config and, for those with env set, as a bare environment
 * variable. Seed 002 names each state's upper bound (temp_optimal = 65: OPTIMAL below
 * it), which is where vramd's next state starts; its temp_critical is the shutdown-side
 * bound beyond those (TEMP_SHUTDOWN_C). docs/configuration.md lists them.
 */
static const struct config_alias {
	const char *name;
	enum config_key key;
	bool env; /* also read as a bare environment variable */
} config_aliases[] = {
    {"CPU_FALLBACK_ENABLED", CONFIG_ALLOW_CPU, true},
    {"temp_optimal", CONFIG_TEMP_NORMAL_C, false},
    {"temp_normal", CONFIG_TEMP_THROTTLED_C, false},
    {"temp_throttle", CONFIG_TEMP_CRITICAL_C, false},
    {"temp_critical", CONFIG_TEMP_SHUTDOWN_C, false},
    {"memory_optimal", CONFIG_MEMORY_NORMAL_PCT, false},
    {"memory_normal", CONFIG_MEMORY_THROTTLED_PCT, false},
    {"memory_critical", CONFIG_MEMORY_CRITICAL_PCT, false},
    {"monitor_interval", CONFIG_MEMORY_MONITORING_INTERVAL, false},
    {"history_size", CONFIG_GPU_HISTORY_LENGTH, false},
};

/*
 * Keys whose seed documents another unit for a bare number than the key's own: given by
 * key name (file, environment, API) a bare number is in seconds; the flag keeps ms.
 */
static const struct config_bare_unit {
	enum config_key key;
	const char *unit;
} config_bare_units[] = {
    {CONFIG_SCHEDULER_LOOP_INTERVAL, "s"},
    {CONFIG_MEMORY_MONITORING_INTERVAL, "s"},
};

/* Duration units, in ms. */
static const struct config_duration_unit {
	const char *name;
	double ms;
} config_duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"sec", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000},
};

/*
 * Flags that may be repeated. Each use of key's flag also adds its value to the URL list
 * list: the first addition on the command line replaces a list from the file or the
 * environment (flags win), later ones append. Only the first use sets key itself. So
 * "--ollama A --ollama B" gives OLLAMA_NODES "A,B" and OLLAMA_BASE_URL "A", and a single
 * --ollama still overrides an OLLAMA_NODES from the environment.
 */
static const struct config_flag_list {
	enum config_key key, list;
} config_flag_lists[] = {
    {CONFIG_OLLAMA_BASE_URL, CONFIG_OLLAMA_NODES},
};

/* Groups that must stay strictly increasing (thresholds) or non-increasing (speeds). */
static const enum config_key config_ascending[][3] = {
    {CONFIG_TEMP_NORMAL_C, CONFIG_TEMP_THROTTLED_C, CONFIG_TEMP_CRITICAL_C},
    {CONFIG_MEMORY_NORMAL_PCT, CONFIG_MEMORY_THROTTLED_PCT, CONFIG_MEMORY_CRITICAL_PCT},
};
static const enum config_key config_speeds[] = {CONFIG_SPEED_OPTIMAL, CONFIG_SPEED_NORMAL,
						CONFIG_SPEED_THROTTLED, CONFIG_SPEED_CRITICAL};

struct config_value {
	char *text; /* as given (normalised for bools and enums) */
	int64_t i;  /* INT; SIZE as bytes fits int64 too */
	uint64_t size;
	double d;
	bool b;
	enum config_source source;
};

struct config_origin;

struct config {
	struct config_value v[CONFIG_NKEYS];
	struct config_origin *origin; /* set by config_load, for config_reload_file */
	config_keep_fn *keeper;	      /* config_set_keeper: a second place run-time changes go */
	void *keeper_arg;
};

static void config_origin_free(struct config_origin *origin);
static void config_origin_save(struct config *cfg, int argc, char **argv, char **envp,
			       const char *path);

const struct config_def *
config_def(enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS);
	return &config_table[key];
}

int
config_key_from_name(const char *name)
{
	if (strncasecmp(name, "VRAMD_", 6) == 0)
		name += 6;
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (strcasecmp(config_table[k].name, name) == 0)
			return k;
	for (size_t i = 0; i < VD_ARRAY_LEN(config_aliases); i++)
		if (strcasecmp(config_aliases[i].name, name) == 0)
			return config_aliases[i].key;
	return -1;
}

const char *
config_alias_at(size_t i, enum config_key *key)
{
	if (i >= VD_ARRAY_LEN(config_aliases))
		return NULL;
	*key = config_aliases[i].key;
	return config_aliases[i].name;
}

const char *
config_source_name(enum config_source source)
{
	static const char *const names[] = {"default", "file", "environment", "flag", "runtime"};
	return (unsigned)source < VD_ARRAY_LEN(names) ? names[source] : "?";
}

static bool
config_unit_is_duration(const char *unit)
{
	return strcmp(unit, "ms") == 0 || strcmp(unit, "s") == 0;
}

/* The unit of a bare number for def: by_flag, the key's own; else the seed's, if any. */
static const char *
config_bare_unit(const struct config_def *def, bool by_flag)
{
	if (!by_flag)
		for (size_t i = 0; i < VD_ARRAY_LEN(config_bare_units); i++)
			if (&config_table[config_bare_units[i].key] == def)
				return config_bare_units[i].unit;
	return def->unit;
}

/* Converts x (in unit from) into whole units of to; false if not a whole number. */
static bool
config_whole(double x, double from, double to, long long *out)
{
	double v = x * from / to;
	if (!isfinite(v) || fabs(v) > 9e15)
		return false;
	double r = nearbyint(v);
	if (fabs(v - r) > 1e-6 * (fabs(r) > 1 ? fabs(r) : 1))
		return false;
	*out = (long long)r;
	return true;
}

/*
 * Parses an INT value with units: a duration ("100ms", "0.1s", "5m") for a key in ms or s,
 * a size ("6GiB", "512MiB") for a key in MiB; a bare number is in bare_unit. Returns
 * NULL with *n set, or why the text is not one.
 */
static const char *
config_parse_units(const struct config_def *def, const char *text, const char *bare_unit,
		   long long *n)
{
	char *end;
	errno = 0;
	double x = strtod(text, &end);
	if (end == text || errno != 0 || !isfinite(x) || isspace((unsigned char)text[0]))
		return "is not a number";
	while (*end == ' ')
		end++;
	if (strcmp(def->unit, "MiB") == 0) {
		double bytes_per = (double)VD_MIB;
		if (*end != '\0') {
			uint64_t bytes;
			char *why = NULL;
			if (x < 0 || vd_parse_size(text, &bytes, &why) < 0) {
				free(why);
				return "is not a size (use B, KB, MB, GB, KiB, MiB, GiB or TiB)";
			}
			x = (double)bytes;
			bytes_per = 1;
		}
		if (!config_whole(x, bytes_per, (double)VD_MIB, n))
			return "is not a whole number of MiB";
		return NULL;
	}
	double from = -1, to = strcmp(def->unit, "ms") == 0 ? 1 : 1000;
	const char *unit = *end != '\0' ? end : bare_unit;
	for (size_t i = 0; i < VD_ARRAY_LEN(config_duration_units); i++)
		if (strcasecmp(unit, config_duration_units[i].name) == 0)
			from = config_duration_units[i].ms;
	if (from < 0)
		return "has an unknown unit (use ms, s, m or h)";
	if (!config_whole(x, from, to, n))
		return strcmp(def->unit, "ms") == 0 ? "is not a whole number of milliseconds"
						    : "is not a whole number of seconds";
	return NULL;
}

/* "an integer from 1 to 1000 (ms)" and the like, for error messages. */
static char *
config_expected(const struct config_def *def)
{
	const char *unit = def->unit[0] != '\0' ? def->unit : NULL;
	switch (def->type) {
	case CONFIG_TYPE_INT:
		if (config_unit_is_duration(def->unit) || strcmp(def->unit, "MiB") == 0)
			return xasprintf("%s from %.0f to %.0f %s (%s; a bare number is %s)",
					 strcmp(def->unit, "MiB") == 0 ? "a size" : "a duration",
					 def->min, def->max, def->unit,
					 strcmp(def->unit, "MiB") == 0 ? "512MiB, 6GiB"
								       : "100ms, 0.1s, 30s, 5m",
					 config_bare_unit(def, false));
		return xasprintf("an integer from %.0f to %.0f%s%s%s", def->min, def->max,
				 unit ? " (" : "", unit ? unit : "", unit ? ")" : "");
	case CONFIG_TYPE_DOUBLE:
		return xasprintf("a number from %g to %g%s%s%s", def->min, def->max,
				 unit ? " (" : "", unit ? unit : "", unit ? ")" : "");
	case CONFIG_TYPE_SIZE:
		return xasprintf("a size from %.0f to %.0f bytes, e.g. 8GiB or 512MB", def->min,
				 def->max);
	case CONFIG_TYPE_BOOL:
		return xstrdup("true or false");
	case CONFIG_TYPE_ENUM:
		return xasprintf("one of %s", def->choices);
	case CONFIG_TYPE_URLS:
		if (def->max == 1)
			return xstrdup("one http:// or https:// URL");
		return xasprintf("comma-separated http:// or https:// URLs, at most %.0f",
				 def->max);
	case CONFIG_TYPE_STRING:
		if (def == &config_table[CONFIG_MODEL_PLACEMENT])
			return xstrdup("comma-separated model=gpu|cpu|any");
		break;
	}
	return xstrdup("text");
}

static int
config_bad(const struct config_def *def, const char *where, const char *text, const char *why,
	   char **cause)
{
	char *expected = config_expected(def);
	int rc = vd_fail(cause, -EINVAL, "invalid %s (%s): \"%s\" %s; expected %s", def->name,
			 where, text, why, expected);
	free(expected);
	return rc;
}

static bool
config_enum_has(const char *choices, const char *text)
{
	size_t n = strlen(text);
	for (const char *p = choices; *p != '\0';) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && n > 0 && strncasecmp(p, text, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

static bool
config_parse_bool(const char *text, bool *out)
{
	if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0 ||
	    strcasecmp(text, "on") == 0 || strcmp(text, "1") == 0)
		*out = true;
	else if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0 ||
		 strcasecmp(text, "off") == 0 || strcmp(text, "0") == 0)
		*out = false;
	else
		return false;
	return true;
}

/* What is wrong with the port of the authority [host, end) ("host", "host:port",
 * "[v6]:port"), or NULL: a port must be 1 to 65535, digits only. */
static const char *
config_url_port_problem(const char *host, const char *end)
{
	const char *p = host;
	if (*p == '[') {
		while (p < end && *p != ']')
			p++;
		if (p == end)
			return "has an unclosed [IPv6] host";
		p++;
	} else
		while (p < end && *p != ':')
			p++;
	if (p == end)
		return NULL;
	if (*p != ':')
		return "has text after its [IPv6] host";
	long port = 0;
	if (++p == end)
		return "has an empty port";
	for (; p < end; p++) {
		if (!isdigit((unsigned char)*p))
			return "has a port that is not a number";
		port = port * 10 + (*p - '0');
		if (port > 65535)
			return "has a port above 65535";
	}
	return port == 0 ? "has port 0" : NULL;
}

/* Checks a URL list: each item an http:// or https:// URL with a host, no whitespace or
 * control characters, at most 2048 bytes; at most def->max items. Messages show items
 * redacted (a URL may carry credentials). */
static int
config_check_urls(const struct config_def *def, const char *text, const char *where, char **cause)
{
	char *copy = xstrdup(text);
	char *save = NULL;
	int rc = 0;
	size_t n = 0;
	for (char *tok = strtok_r(copy, ", ", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ", ", &save)) {
		n++;
		const char *why = NULL;
		const char *rest = vd_str_has_prefix(tok, "http://")	? tok + 7
				   : vd_str_has_prefix(tok, "https://") ? tok + 8
									: NULL;
		if (rest == NULL)
			why = "is not an http:// or https:// URL";
		else if (strlen(tok) > 2048)
			why = "is longer than 2048 bytes";
		for (const char *p = tok; why == NULL && *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
				why = "contains whitespace, a control or a non-ASCII character";
		if (why == NULL) {
			const char *host = rest + strcspn(rest, "/?#");
			for (const char *p = rest; p < host; p++)
				if (*p == '@')
					rest = p + 1;
			if (rest == host || *rest == ':')
				why = "has no host";
			else
				why = config_url_port_problem(rest, host);
		}
		if (why != NULL) {
			char *shown = vd_url_redact(tok);
			char *expected = config_expected(def);
			rc = vd_fail(cause, -EINVAL,
				     "invalid %s (%s): item %zu \"%.200s\" %s; expected %s",
				     def->name, where, n, shown, why, expected);
			free(expected);
			free(shown);
		}
	}
	free(copy);
	if (rc == 0 && (double)n > def->max) {
		char *expected = config_expected(def);
		rc = vd_fail(cause, -EINVAL, "invalid %s (%s): %zu URLs; expected %s", def->name,
			     where, n, expected);
		free(expected);
	}
	return rc;
}

/* Parses text for def into out (out->text is replaced). where names the source. */
static int
config_parse(const struct config_def *def, const char *text, const char *where, bool by_flag,
	     struct config_value *out, char **cause)
{
	char *end;
	struct config_value v = {0};
	switch (def->type) {
	case CONFIG_TYPE_STRING:
		if (def == &config_table[CONFIG_MODEL_PLACEMENT]) {
			char *why = NULL;
			if (job_placement_list_check(text, &why) < 0) {
				int rc = config_bad(def, where, text, why, cause);
				free(why);
				return rc;
			}
		}
		/* STORE: empty (SQLite in DATA_DIR) or a PostgreSQL URL, which libpq checks
		 * further at start. Shown redacted: it may hold a password. */
		if (def == &config_table[CONFIG_STORE] && text[0] != '\0' &&
		    !vd_str_has_prefix(text, "postgresql://") &&
		    !vd_str_has_prefix(text, "postgres://")) {
			/* Not a URL (perhaps "host=... password=..."): not shown at all. */
			char *shown = strstr(text, "://") != NULL ? vd_url_redact(text)
								  : xstrdup("(value not shown)");
			int rc = config_bad(def, where, shown, "is not a postgresql:// URL", cause);
			free(shown);
			return rc;
		}
		/* OLLAMA_BASE_URL is one URL, shown as text (not as a list): checked as one. */
		if (def == &config_table[CONFIG_OLLAMA_BASE_URL]) {
			struct config_def one = *def;
			one.type = CONFIG_TYPE_URLS;
			one.max = 1;
			if (text[0] == '\0')
				return config_bad(&one, where, text, "is empty", cause);
			if (config_check_urls(&one, text, where, cause) < 0)
				return -EINVAL;
		}
		break;
	case CONFIG_TYPE_URLS:
		if (config_check_urls(def, text, where, cause) < 0)
			return -EINVAL;
		break;
	case CONFIG_TYPE_INT: {
		errno = 0;
		long long n = 0;
		if (config_unit_is_duration(def->unit) || strcmp(def->unit, "MiB") == 0) {
			const char *why =
			    config_parse_units(def, text, config_bare_unit(def, by_flag), &n);
			if (why != NULL)
				return config_bad(def, where, text, why, cause);
		} else {
			n = strtoll(text, &end, 10);
			if (text[0] == '\0' || *end != '\0' || isspace((unsigned char)text[0]))
				return config_bad(def, where, text, "is not an integer", cause);
		}
		if (errno == ERANGE || (double)n < def->min || (double)n > def->max)
			return config_bad(def, where, text, "is out of range", cause);
		v.i = n;
		v.d = (double)n;
		break;
	}
	case CONFIG_TYPE_DOUBLE: {
		errno = 0;
		double d = strtod(text, &end);
		if (text[0] == '\0' || *end != '\0' || isspace((unsigned char)text[0]) ||
		    !isfinite(d))
			return config_bad(def, where, text, "is not a number", cause);
		if (d < def->min || d > def->max)
			return config_bad(def, where, text, "is out of range", cause);
		v.d = d;
		break;
	}
	case CONFIG_TYPE_SIZE: {
		uint64_t bytes;
		char *why = NULL;
		if (vd_parse_size(text, &bytes, &why) < 0) {
			free(why);
			return config_bad(def, where, text, "is not a size", cause);
		}
		if ((double)bytes < def->min || (double)bytes > def->max)
			return config_bad(def, where, text, "is out of range", cause);
		v.size = bytes;
		v.i = (int64_t)bytes;
		break;
	}
	case CONFIG_TYPE_BOOL:
		if (!config_parse_bool(text, &v.b))
			return config_bad(def, where, text, "is not a boolean", cause);
		break;
	case CONFIG_TYPE_ENUM:
		if (!config_enum_has(def->choices, text))
			return config_bad(def, where, text, "is not a valid choice", cause);
		break;
	}
	if (def->type == CONFIG_TYPE_BOOL)
		v.text = xstrdup(v.b ? "true" : "false");
	else if (def->type == CONFIG_TYPE_ENUM) {
		v.text = xstrdup(text);
		for (char *p = v.text; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	} else
		v.text = xstrdup(text);
	v.source = out->source;
	free(out->text);
	*out = v;
	return 0;
}

static void
config_values_copy(struct config_value *dst, const struct config_value *src)
{
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		dst[k] = src[k];
		dst[k].text = xstrdup(src[k].text);
	}
}

static void
config_values_free(struct config_value *v)
{
	for (int k = 0; k < CONFIG_NKEYS; k++)
		vd_free(v[k].text);
}

static double
config_number(const struct config_value *v, enum config_key k)
{
	return config_table[k].type == CONFIG_TYPE_INT ? (double)v[k].i : v[k].d;
}

/* Checks the relations between keys; names the offending keys. */
static int
config_check_order(const struct config_value *v, char **cause)
{
	for (size_t g = 0; g < VD_ARRAY_LEN(config_ascending); g++)
		for (int i = 0; i + 1 < 3; i++) {
			enum config_key a = config_ascending[g][i], b = config_ascending[g][i + 1];
			if (!(config_number(v, a) < config_number(v, b)))
				return vd_fail(
				    cause, -EINVAL, "invalid %s: %s (%g) must be below %s (%g)",
				    config_table[a].name, config_table[a].name, config_number(v, a),
				    config_table[b].name, config_number(v, b));
		}
	for (size_t i = 0; i + 1 < VD_ARRAY_LEN(config_speeds); i++) {
		enum config_key a = config_speeds[i], b = config_speeds[i + 1];
		if (v[a].d < v[b].d)
			return vd_fail(cause, -EINVAL,
				       "invalid %s: %s (%g) must not be below %s (%g)",
				       config_table[b].name, config_table[a].name, v[a].d,
				       config_table[b].name, v[b].d);
	}
	if (v[CONFIG_TEMP_SHUTDOWN_C].i != 0 &&
	    !(v[CONFIG_TEMP_CRITICAL_C].i < v[CONFIG_TEMP_SHUTDOWN_C].i))
		return vd_fail(cause, -EINVAL,
			       "invalid TEMP_SHUTDOWN_C: TEMP_CRITICAL_C (%lld) must "
			       "be below TEMP_SHUTDOWN_C (%lld)",
			       (long long)v[CONFIG_TEMP_CRITICAL_C].i,
			       (long long)v[CONFIG_TEMP_SHUTDOWN_C].i);
	if (strcmp(v[CONFIG_GPU_SOURCE].text, "vramd") == 0 &&
	    v[CONFIG_GPU_REMOTE_URL].text[0] == '\0')
		return vd_fail(cause, -EINVAL,
			       "invalid GPU_SOURCE: vramd reads another vramd's GPUs and needs "
			       "GPU_REMOTE_URL (--gpu-remote-url), which is empty");
	return 0;
}

struct config *
config_new(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		assert(config_table[k].name != NULL);
		int rc = config_parse(&config_table[k], config_table[k].def, "default", true,
				      &cfg->v[k], NULL);
		assert(rc == 0);
		(void)rc;
		cfg->v[k].source = CONFIG_SRC_DEFAULT;
	}
	return cfg;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	config_values_free(cfg->v);
	config_origin_free(cfg->origin);
	free(cfg);
}

/* Sets key k in v from text; where names the source for messages. */
static int
config_assign(struct config_value *v, enum config_key k, const char *text,
	      enum config_source source, const char *where, char **cause)
{
	int rc =
	    config_parse(&config_table[k], text, where, source == CONFIG_SRC_FLAG, &v[k], cause);
	if (rc == 0)
		v[k].source = source;
	return rc;
}

static char *
config_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Parses file text into v. */
static int
config_text_into(struct config_value *v, const char *text, const char *label, char **cause)
{
	char *copy = xstrdup(text);
	int rc = 0, lineno = 0;
	/* strtok_r would merge empty lines and shift line numbers: split by hand. */
	for (char *line = copy; line != NULL;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		lineno++;
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = config_trim(line);
		if (*s != '\0') {
			char *eq = strchr(s, '=');
			if (eq == NULL) {
				rc = vd_fail(cause, -EINVAL,
					     "%s:%d: expected KEY = value, got \"%s\"", label,
					     lineno, s);
				goto out;
			}
			*eq = '\0';
			char *key = config_trim(s), *value = config_trim(eq + 1);
			size_t vn = strlen(value);
			if (vn >= 2 && ((value[0] == '"' && value[vn - 1] == '"') ||
					(value[0] == '\'' && value[vn - 1] == '\''))) {
				value[vn - 1] = '\0';
				value++;
			}
			int k = config_key_from_name(key);
			if (k < 0) {
				rc = vd_fail(cause, -EINVAL,
					     "%s:%d: unknown configuration key \"%s\"", label,
					     lineno, key);
				goto out;
			}
			char *where = xasprintf("%s:%d", label, lineno);
			rc = config_assign(v, k, value, CONFIG_SRC_FILE, where, cause);
			free(where);
			if (rc < 0)
				goto out;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
out:
	free(copy);
	return rc;
}

int
config_load_text(struct config *cfg, const char *text, const char *label, char **cause)
{
	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	int rc = config_text_into(tmp, text, label, cause);
	if (rc == 0)
		rc = config_check_order(tmp, cause);
	if (rc == 0) {
		config_values_free(cfg->v);
		memcpy(cfg->v, tmp, sizeof(tmp));
	} else
		config_values_free(tmp);
	return rc;
}

#define CONFIG_FILE_MAX (1024 * 1024)

static int
config_read_file(const char *path, char **text, char **cause)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return vd_fail(cause, -errno, "cannot open config file %s: %s", path,
			       strerror(errno));
	char *buf = xmalloc(CONFIG_FILE_MAX + 1);
	size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		return vd_fail(cause, -EIO, "cannot read config file %s", path);
	}
	if (n > CONFIG_FILE_MAX) {
		free(buf);
		return vd_fail(cause, -EFBIG, "config file %s is over %d bytes", path,
			       CONFIG_FILE_MAX);
	}
	if (memchr(buf, '\0', n) != NULL) {
		free(buf);
		return vd_fail(cause, -EINVAL, "config file %s contains a NUL byte", path);
	}
	buf[n] = '\0';
	*text = buf;
	return 0;
}

int
config_load_file(struct config *cfg, const char *path, char **cause)
{
	char *text;
	int rc = config_read_file(path, &text, cause);
	if (rc < 0)
		return rc;
	rc = config_load_text(cfg, text, path, cause);
	free(text);
	return rc;
}

static const char *
config_getenv(char **envp, const char *name)
{
	size_t n = strlen(name);
	for (char **e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static int
config_env_into(struct config_value *v, char **envp, char **cause)
{
	char name[96];
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = &config_table[k];
		snprintf(name, sizeof(name), "VRAMD_%s", def->name);
		const char *value = config_getenv(envp, name);
		const char *used = name;
		if (value == NULL && def->env != NULL) {
			value = config_getenv(envp, def->env);
			used = def->env;
		}
		for (size_t i = 0; value == NULL && i < VD_ARRAY_LEN(config_aliases); i++)
			if (config_aliases[i].env && config_aliases[i].key == (enum config_key)k) {
				value = config_getenv(envp, config_aliases[i].name);
				used = config_aliases[i].name;
			}
		if (value == NULL)
			continue;
		char *where = xasprintf("environment %s", used);
		int rc = config_assign(v, k, value, CONFIG_SRC_ENV, where, cause);
		free(where);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
config_flag_key(const char *flag, size_t len)
{
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (strlen(config_table[k].flag) == len &&
		    strncmp(config_table[k].flag, flag, len) == 0)
			return k;
	return -1;
}

/* The entry of config_flag_lists whose key is k, or NULL. */
static const struct config_flag_list *
config_flag_list_of(enum config_key k)
{
	for (size_t i = 0; i < VD_ARRAY_LEN(config_flag_lists); i++)
		if (config_flag_lists[i].key == k)
			return &config_flag_lists[i];
	return NULL;
}

/* Applies one use of a repeatable flag (see config_flag_lists); first says whether it
 * is the first use of that flag on this command line. */
static int
config_flag_list_add(struct config_value *v, const struct config_flag_list *fl, const char *value,
		     bool first, const char *where, char **cause)
{
	int rc = 0;
	if (first)
		rc = config_assign(v, fl->key, value, CONFIG_SRC_FLAG, where, cause);
	if (rc < 0)
		return rc;
	/* A list set earlier on this command line (by this flag or the list's own) grows. */
	bool append = v[fl->list].source == CONFIG_SRC_FLAG && v[fl->list].text[0] != '\0';
	char *joined = append ? xasprintf("%s,%s", v[fl->list].text, value) : xstrdup(value);
	rc = config_assign(v, fl->list, joined, CONFIG_SRC_FLAG, where, cause);
	free(joined);
	return rc;
}

/*
 * One pass over argv. With v == NULL it only finds --config (into *config_path) and
 * checks the syntax; with v it applies the key flags.
 */
static int
config_args(struct config_value *v, int argc, char **argv, const char **config_path, bool *help,
	    bool *version, char **cause)
{
	bool list_used[VD_ARRAY_LEN(config_flag_lists)] = {false};
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			if (help == NULL)
				return vd_fail(cause, -EINVAL, "unknown option %s", arg);
			*help = true;
			continue;
		}
		if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
			if (version == NULL)
				return vd_fail(cause, -EINVAL, "unknown option %s", arg);
			*version = true;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0)
			return vd_fail(cause, -EINVAL, "unexpected argument \"%s\" (see --help)",
				       arg);
		const char *eq = strchr(arg, '=');
		size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		const char *value = eq != NULL ? eq + 1 : NULL;
		bool is_config = len == 8 && strncmp(arg, "--config", 8) == 0;
		int k = is_config ? -1 : config_flag_key(arg, len);
		if (!is_config && k < 0)
			return vd_fail(cause, -EINVAL, "unknown option %.*s (see --help)", (int)len,
				       arg);
		bool ignored;
		if (value == NULL) {
			/* A bool flag alone means true; "--allow-cpu false" is also accepted. */
			if (k >= 0 && config_table[k].type == CONFIG_TYPE_BOOL &&
			    (i + 1 >= argc || !config_parse_bool(argv[i + 1], &ignored))) {
				value = "true";
			} else if (i + 1 < argc) {
				value = argv[++i];
			} else {
				return vd_fail(cause, -EINVAL, "option %.*s needs a value",
					       (int)len, arg);
			}
		}
		if (is_config) {
			*config_path = value;
			continue;
		}
		if (v == NULL)
			continue;
		char *where = xasprintf("flag %s", config_table[k].flag);
		const struct config_flag_list *fl = config_flag_list_of(k);
		int rc;
		if (fl != NULL) {
			size_t li = (size_t)(fl - config_flag_lists);
			rc = config_flag_list_add(v, fl, value, !list_used[li], where, cause);
			list_used[li] = true;
		} else
			rc = config_assign(v, k, value, CONFIG_SRC_FLAG, where, cause);
		free(where);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * An empty CUDA_VISIBLE_DEVICES (seed 004's way of saying "no GPUs", as CUDA reads it)
 * hides every GPU: vramd then plans for the CPU only, which needs ALLOW_CPU. A telemetry
 * source or budget chosen explicitly contradicts it and is named.
 */
static int
config_no_gpus(struct config_value *v, const char *cuda_visible, char **cause)
{
	if (cuda_visible == NULL)
		return 0;
	while (isspace((unsigned char)*cuda_visible))
		cuda_visible++;
	if (*cuda_visible != '\0')
		return 0;
	if (!v[CONFIG_ALLOW_CPU].b)
		return vd_fail(cause, -EINVAL,
			       "CUDA_VISIBLE_DEVICES is empty, so no GPU may be used, and "
			       "ALLOW_CPU (CPU_FALLBACK_ENABLED) is false, so nothing could run a "
			       "model: set ALLOW_CPU=true for CPU only, or unset "
			       "CUDA_VISIBLE_DEVICES");
	if (v[CONFIG_GPU_SOURCE].source != CONFIG_SRC_DEFAULT &&
	    strcmp(v[CONFIG_GPU_SOURCE].text, "none") != 0)
		return vd_fail(cause, -EINVAL,
			       "CUDA_VISIBLE_DEVICES is empty (no GPUs) but GPU_SOURCE is %s",
			       v[CONFIG_GPU_SOURCE].text);
	if (v[CONFIG_VRAM_BUDGET].size > 0)
		return vd_fail(cause, -EINVAL,
			       "CUDA_VISIBLE_DEVICES is empty (no GPUs) but VRAM_BUDGET is %s",
			       v[CONFIG_VRAM_BUDGET].text);
	int rc = config_assign(v, CONFIG_GPU_SOURCE, "none", CONFIG_SRC_ENV,
			       "environment CUDA_VISIBLE_DEVICES", cause);
	assert(rc == 0);
	return rc;
}

int
config_load(struct config *cfg, int argc, char **argv, char **envp, bool *help, bool *version,
	    char **cause)
{
	const char *config_path = NULL;
	char *text = NULL;
	int rc = config_args(NULL, argc, argv, &config_path, help, version, cause);
	if (rc < 0)
		return rc;
	if (envp == NULL)
		envp = environ;
	if (config_path == NULL)
		config_path = config_getenv(envp, "VRAMD_CONFIG");
	if (config_path != NULL) {
		rc = config_read_file(config_path, &text, cause);
		if (rc < 0)
			return rc;
	}

	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	if (text != NULL)
		rc = config_text_into(tmp, text, config_path, cause);
	if (rc == 0)
		rc = config_env_into(tmp, envp, cause);
	bool seen_help = false, seen_version = false; /* reported by the first pass */
	if (rc == 0)
		rc = config_args(tmp, argc, argv, &config_path, help ? &seen_help : NULL,
				 version ? &seen_version : NULL, cause);
	if (rc == 0)
		rc = config_check_order(tmp, cause);
	if (rc == 0)
		rc = config_no_gpus(tmp, config_getenv(envp, "CUDA_VISIBLE_DEVICES"), cause);
	free(text);
	if (rc < 0) {
		config_values_free(tmp);
		return rc;
	}
	config_values_free(cfg->v);
	memcpy(cfg->v, tmp, sizeof(tmp));
	config_origin_save(cfg, argc, argv, envp == environ ? NULL : envp, config_path);
	return 0;
}

int
config_set(struct config *cfg, const char *key, const char *value, char **cause)
{
	int k = config_key_from_name(key);
	if (k < 0)
		return vd_fail(cause, -ENOENT, "unknown configuration key \"%s\"", key);
	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	int rc = config_assign(tmp, k, value, CONFIG_SRC_RUNTIME, "runtime", cause);
	if (rc == 0)
		rc = config_check_order(tmp, cause);
	if (rc < 0) {
		config_values_free(tmp);
		return rc;
	}
	config_values_free(cfg->v);
	memcpy(cfg->v, tmp, sizeof(tmp));
	return 0;
}

/* The text form of a JSON value for parsing, or NULL if the type cannot be a value. */
static char *
config_json_text(const json_t *value)
{
	switch (json_typeof(value)) {
	case JSON_STRING:
		return xstrdup(json_string_value(value));
	case JSON_INTEGER:
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
	case JSON_REAL: /* the shortest form people write: 0.8, not 0.80000000000000004 */
		return xasprintf("%.15g", json_real_value(value));
	case JSON_TRUE:
		return xstrdup("true");
	case JSON_FALSE:
		return xstrdup("false");
	default:
		return NULL;
	}
}

json_t *
config_urls_json(const char *urls)
{
	json_t *a = json_array();
	char *copy = xstrdup(urls);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		char *shown = vd_url_redact(tok);
		json_array_append_new(a, json_string(shown));
		free(shown);
	}
	free(copy);
	return a;
}

static json_t *
config_value_json(const struct config_value *v, enum config_key k)
{
	switch (config_table[k].type) {
	case CONFIG_TYPE_INT:
		return json_integer(v[k].i);
	case CONFIG_TYPE_SIZE:
		return json_integer((json_int_t)v[k].size);
	case CONFIG_TYPE_DOUBLE:
		return json_real(v[k].d);
	case CONFIG_TYPE_BOOL:
		return json_boolean(v[k].b);
	case CONFIG_TYPE_URLS:
		return config_urls_json(v[k].text);
	case CONFIG_TYPE_STRING:
		if (k == CONFIG_STORE) { /* its URL may hold a password */
			char *shown = vd_url_redact(v[k].text);
			json_t *j = json_string(shown);
			free(shown);
			return j;
		}
		break;
	case CONFIG_TYPE_ENUM:
		break;
	}
	return json_string(v[k].text);
}

static int config_persist_save_values(const struct config_value *v, char **cause);

/* Replaces cfg's values with tmp's (taking them); *changed (when not NULL) receives a new
 * object of the keys whose value differs, typed. */
static void
config_take_values(struct config *cfg, struct config_value *tmp, json_t **changed)
{
	if (changed != NULL) {
		*changed = json_object();
		for (int k = 0; k < CONFIG_NKEYS; k++)
			if (strcmp(tmp[k].text, cfg->v[k].text) != 0)
				json_object_set_new(*changed, config_table[k].name,
						    config_value_json(tmp, k));
	}
	config_values_free(cfg->v);
	memcpy(cfg->v, tmp, sizeof(cfg->v));
}
static char *config_runtime_doc_of(const struct config_value *v);

/* config_set_many and config_set_many_kept: with keep, the new values are written to
 * runtime-config.json before they replace cfg's (*persist_failed tells that failure from
 * a bad request). */
static int
config_set_many_do(struct config *cfg, const json_t *obj, json_t **changed, bool keep,
		   bool *persist_failed, char **cause)
{
	if (persist_failed != NULL)
		*persist_failed = false;
	if (!json_is_object(obj))
		return vd_fail(cause, -EINVAL, "configuration must be a JSON object");
	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	int rc = 0;
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)obj, key, value)
	{
		int k = config_key_from_name(key);
		if (k < 0) {
			rc = vd_fail(cause, -ENOENT, "unknown configuration key \"%s\"", key);
			goto out;
		}
		if (!config_table[k].runtime) {
			rc = vd_fail(cause, -EINVAL,
				     "%s cannot be changed at run time (set it at start)",
				     config_table[k].name);
			goto out;
		}
		char *text = config_json_text(value);
		if (text == NULL) {
			char *expected = config_expected(&config_table[k]);
			rc = vd_fail(cause, -EINVAL, "invalid %s (runtime): expected %s",
				     config_table[k].name, expected);
			free(expected);
			goto out;
		}
		rc = config_assign(tmp, k, text, CONFIG_SRC_RUNTIME, "runtime", cause);
		free(text);
		if (rc < 0)
			goto out;
	}
	rc = config_check_order(tmp, cause);
	if (rc < 0)
		goto out;
	if (keep && cfg->keeper != NULL) { /* the shared copy first: it outlives this file */
		char *doc = config_runtime_doc_of(tmp);
		rc = cfg->keeper(doc, cfg->keeper_arg, cause);
		free(doc);
		if (rc < 0) {
			if (persist_failed != NULL)
				*persist_failed = true;
			goto out;
		}
	}
	if (keep) {
		rc = config_persist_save_values(tmp, cause);
		if (rc < 0) {
			if (persist_failed != NULL)
				*persist_failed = true;
			goto out;
		}
	}
	config_take_values(cfg, tmp, changed);
	return 0;
out:
	config_values_free(tmp);
	return rc;
}

int
config_set_many(struct config *cfg, const json_t *obj, json_t **changed, char **cause)
{
	return config_set_many_do(cfg, obj, changed, false, NULL, cause);
}

int
config_set_many_kept(struct config *cfg, const json_t *obj, json_t **changed, bool *persist_failed,
		     char **cause)
{
	return config_set_many_do(cfg, obj, changed, true, persist_failed, cause);
}

const char *
config_str(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS);
	return cfg->v[key].text;
}

int64_t
config_int(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS);
	assert(config_table[key].type == CONFIG_TYPE_INT ||
	       config_table[key].type == CONFIG_TYPE_SIZE);
	return cfg->v[key].i;
}

double
config_double(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS);
	assert(config_table[key].type == CONFIG_TYPE_DOUBLE ||
	       config_table[key].type == CONFIG_TYPE_INT);
	return config_number(cfg->v, key);
}

bool
config_bool(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS && config_table[key].type == CONFIG_TYPE_BOOL);
	return cfg->v[key].b;
}

uint64_t
config_size(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS && config_table[key].type == CONFIG_TYPE_SIZE);
	return cfg->v[key].size;
}

enum config_source
config_source_of(const struct config *cfg, enum config_key key)
{
	assert((unsigned)key < CONFIG_NKEYS);
	return cfg->v[key].source;
}

json_t *
config_to_json(const struct config *cfg, bool runtime_only)
{
	json_t *o = json_object();
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (!runtime_only || config_table[k].runtime)
			json_object_set_new(o, config_table[k].name, config_value_json(cfg->v, k));
	return o;
}

static const char *
config_type_name(const struct config_def *def)
{
	switch (def->type) {
	case CONFIG_TYPE_INT:
		return "N";
	case CONFIG_TYPE_DOUBLE:
		return "X";
	case CONFIG_TYPE_SIZE:
		return "SIZE";
	case CONFIG_TYPE_BOOL:
		return "[BOOL]";
	case CONFIG_TYPE_ENUM:
		return def->choices;
	case CONFIG_TYPE_URLS:
		return def->max == 1 ? "URL" : "URL,...";
	case CONFIG_TYPE_STRING:
		break;
	}
	return "TEXT";
}

void
config_print_help(FILE *out, const char *progname)
{
	fprintf(out,
		"usage: %s [--config FILE] [OPTIONS]\n\n"
		"vramd: a VRAM-aware job scheduler in front of Ollama servers.\n\n"
		"Every option is also a config file key (KEY = value) and an environment\n"
		"variable VRAMD_<KEY>; flags win over the environment, which wins over the file.\n"
		"Run-time changes (PUT /api/gpu/config), kept in DATA_DIR/" CONFIG_PERSIST_FILE
		",\n"
		"win over all of them. SIGHUP reloads the file (run-time keys only).\n\n"
		"  --config FILE  read KEY = value lines from FILE (or $VRAMD_CONFIG)\n"
		"  --help-conf    print a config file with every key at its default\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version\n\n",
		progname);
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = &config_table[k];
		char left[96];
		snprintf(left, sizeof(left), "%s %s", def->flag, config_type_name(def));
		fprintf(out, "  %-36s %s\n", left, def->help);
		fprintf(out, "  %-36s key %s", "", def->name);
		if (def->env != NULL)
			fprintf(out, ", env %s", def->env);
		fprintf(out, "; default %s%s%s", def->def[0] != '\0' ? def->def : "(none)",
			def->unit[0] != '\0' ? " " : "", def->unit);
		if (def->type == CONFIG_TYPE_INT || def->type == CONFIG_TYPE_DOUBLE)
			fprintf(out, "; range %g..%g", def->min, def->max);
		if (def->runtime)
			fprintf(out, "; runtime");
		fputc('\n', out);
	}
	fprintf(out, "\nThe seeds' names, accepted wherever their key is (file, API; * also as an\n"
		     "environment variable):\n");
	for (size_t i = 0; i < VD_ARRAY_LEN(config_aliases); i++)
		fprintf(out, "  alias %s = %s%s\n", config_aliases[i].name,
			config_table[config_aliases[i].key].name,
			config_aliases[i].env ? " *" : "");
}

void
config_print_markdown(FILE *out)
{
	fprintf(out, "| Key | Flag | Environment | Type | Default | Range | Unit | Runtime | "
		     "Description |\n");
	fprintf(out, "|---|---|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = &config_table[k];
		char range[64] = "";
		if (def->type == CONFIG_TYPE_INT || def->type == CONFIG_TYPE_DOUBLE ||
		    def->type == CONFIG_TYPE_SIZE)
			snprintf(range, sizeof(range), "%.15g .. %.15g", def->min, def->max);
		if (def->type == CONFIG_TYPE_ENUM) {
			size_t n = 0;
			for (const char *c = def->choices; *c != '\0' && n + 3 < sizeof(range);
			     c++) {
				if (*c == '|') {
					range[n++] = ',';
					range[n++] = ' ';
				} else
					range[n++] = *c;
			}
			range[n] = '\0';
		}
		fprintf(out, "| `%s` | `%s` | `VRAMD_%s`%s%s%s | %s | %s | %s | %s | %s | %s |\n",
			def->name, def->flag, def->name, def->env ? ", `" : "",
			def->env ? def->env : "", def->env ? "`" : "",
			def->type == CONFIG_TYPE_ENUM ? "choice" : config_type_name(def),
			def->def[0] != '\0' ? def->def : "(empty)", range, def->unit,
			def->runtime ? "yes" : "no", def->help);
	}
}

/* --- The installed config file and the man page ---------------------------------------- */

/* Writes text as '#' comment lines of at most width columns, broken at spaces. */
static void
config_print_wrapped(FILE *out, const char *prefix, const char *text, size_t width)
{
	size_t plen = strlen(prefix);
	const char *p = text;
	while (*p != '\0') {
		size_t len = strlen(p);
		size_t take = len;
		if (plen + len > width) {
			take = width - plen;
			while (take > 0 && p[take] != ' ')
				take--;
			if (take == 0) /* one word longer than a line */
				take = strcspn(p, " ");
		}
		fprintf(out, "%s%.*s\n", prefix, (int)take, p);
		p += take;
		while (*p == ' ')
			p++;
	}
}

/* "N, ms, 1..60000" and the like: what a value looks like, for the file and the page. */
static char *
config_value_summary(const struct config_def *def)
{
	char range[96] = "";
	if (def->type == CONFIG_TYPE_INT || def->type == CONFIG_TYPE_DOUBLE)
		snprintf(range, sizeof(range), ", %.15g to %.15g", def->min, def->max);
	else if (def->type == CONFIG_TYPE_SIZE)
		snprintf(range, sizeof(range), ", %.15g to %.15g bytes", def->min, def->max);
	return xasprintf("%s%s%s%s; default %s; %s", config_type_name(def),
			 def->unit[0] != '\0' ? " " : "", def->unit, range,
			 def->def[0] != '\0' ? def->def : "empty",
			 def->runtime ? "run-time (SIGHUP, PUT /api/gpu/config)" : "at start only");
}

void
config_print_conf(FILE *out)
{
	fprintf(out,
		"# vramd.conf: the configuration file of vramd (see vramd.conf(5)).\n"
		"#\n"
		"# Lines are KEY = value; '#' starts a comment. Every key is listed below at its\n"
		"# default, commented out: uncomment a line to change it. Later sources win:\n"
		"#   defaults < this file < environment (VRAMD_<KEY>) < flags < run-time changes\n"
		"# (PUT /api/gpu/config, kept in DATA_DIR/%s).\n"
		"# After editing, `systemctl reload vramd` (SIGHUP) applies the run-time keys;\n"
		"# the others need a restart. Generated from vramd's key table (vramd "
		"--help-conf).\n",
		CONFIG_PERSIST_FILE);
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = &config_table[k];
		char *summary = config_value_summary(def);
		fputc('\n', out);
		config_print_wrapped(out, "# ", def->help, 80);
		config_print_wrapped(out, "#   ", summary, 80);
		/* A default is in the key's own unit; by key name a bare number may mean
		 * another (config_bare_units), so such a default is written with its unit. */
		const char *unit =
		    strcmp(config_bare_unit(def, false), def->unit) != 0 && def->def[0] != '\0'
			? def->unit
			: "";
		fprintf(out, "#%s =%s%s%s\n", def->name, def->def[0] != '\0' ? " " : "", def->def,
			unit);
		free(summary);
	}
}

/* Text for roff: backslashes escaped, hyphens as \- (so they are not hyphenation points
 * and copy and paste as ASCII), a leading dot or quote protected. */
static void
config_print_roff_text(FILE *out, const char *text)
{
	if (*text == '.' || *text == '\'')
		fputs("\\&", out);
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
}

void
config_print_man(FILE *out)
{
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		const struct config_def *def = &config_table[k];
		fputs(".TP\n.B ", out);
		config_print_roff_text(out, def->name);
		fputs("\n", out);
		config_print_roff_text(out, def->help);
		fputs("\n.br\n", out);
		char *summary = config_value_summary(def);
		config_print_roff_text(out, summary);
		free(summary);
		fputs(".\nFlag \\fB", out);
		config_print_roff_text(out, def->flag);
		fputs("\\fR, environment \\fBVRAMD_", out);
		config_print_roff_text(out, def->name);
		fputs("\\fR", out);
		if (def->env != NULL) {
			fputs(" or \\fB", out);
			config_print_roff_text(out, def->env);
			fputs("\\fR", out);
		}
		fputs(".\n", out);
	}
}

/* --- Reloading the file (SIGHUP) ------------------------------------------------------- */

/*
 * What config_load was given, so that a reload layers the same sources again with the
 * file read anew, and base: the values those sources gave at the last (re)load, before
 * any run-time change. A reload applies a key only where the sources now give another
 * value than base: the file's newest word wins over an older run-time change, and a
 * run-time change survives a reload that does not touch its key.
 */
struct config_origin {
	int argc;
	char **argv;
	char **envp; /* NULL: environ at the time of the reload */
	char *path;  /* the config file, or NULL */
	struct config_value base[CONFIG_NKEYS];
};

static char **
config_strv_dup(char **v, int n)
{
	char **copy = xcalloc((size_t)n + 1, sizeof(*copy));
	for (int i = 0; i < n; i++)
		copy[i] = xstrdup(v[i]);
	return copy;
}

static void
config_strv_free(char **v)
{
	for (char **p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

static void
config_origin_free(struct config_origin *origin)
{
	if (origin == NULL)
		return;
	config_strv_free(origin->argv);
	config_strv_free(origin->envp);
	free(origin->path);
	config_values_free(origin->base);
	free(origin);
}

static void
config_origin_save(struct config *cfg, int argc, char **argv, char **envp, const char *path)
{
	struct config_origin *origin = xcalloc(1, sizeof(*origin));
	origin->argc = argc;
	origin->argv = config_strv_dup(argv, argc);
	if (envp != NULL) {
		int n = 0;
		while (envp[n] != NULL)
			n++;
		origin->envp = config_strv_dup(envp, n);
	}
	origin->path = path != NULL ? xstrdup(path) : NULL;
	config_values_copy(origin->base, cfg->v);
	config_origin_free(cfg->origin);
	cfg->origin = origin;
}

const char *
config_file_path(const struct config *cfg)
{
	return cfg->origin != NULL ? cfg->origin->path : NULL;
}

int
config_reload_file(struct config *cfg, json_t **changed, json_t **needs_restart, char **cause)
{
	*changed = NULL;
	*needs_restart = NULL;
	struct config_origin *origin = cfg->origin;
	if (origin == NULL)
		return vd_fail(cause, -EINVAL, "the configuration was not loaded from its sources");
	struct config *fresh = config_new();
	bool help = false, version = false;
	int rc =
	    config_load(fresh, origin->argc, origin->argv, origin->envp, &help, &version, cause);
	if (rc < 0) {
		config_free(fresh);
		return rc;
	}
	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	json_t *applied = json_object(), *restart = json_array();
	for (int k = 0; k < CONFIG_NKEYS; k++) {
		if (strcmp(fresh->v[k].text, origin->base[k].text) == 0)
			continue;
		if (!config_table[k].runtime) {
			json_array_append_new(restart, json_string(config_table[k].name));
			continue;
		}
		bool differs = strcmp(fresh->v[k].text, tmp[k].text) != 0;
		free(tmp[k].text);
		tmp[k] = fresh->v[k];
		tmp[k].text = xstrdup(fresh->v[k].text);
		if (differs)
			json_object_set_new(applied, config_table[k].name,
					    config_value_json(tmp, k));
	}
	rc = config_check_order(tmp, cause);
	if (rc < 0) {
		config_values_free(tmp);
		json_decref(applied);
		json_decref(restart);
		config_free(fresh);
		return rc;
	}
	config_values_free(cfg->v);
	memcpy(cfg->v, tmp, sizeof(tmp));
	/* The new base: what the sources say now (a restart-only key keeps its running value
	 * in cfg->v, and is reported again by the next reload until vramd restarts). */
	config_values_free(origin->base);
	config_values_copy(origin->base, fresh->v);
	for (size_t i = 0; i < json_array_size(restart); i++) {
		int k = config_key_from_name(json_string_value(json_array_get(restart, i)));
		free(origin->base[k].text);
		origin->base[k] = cfg->v[k];
		origin->base[k].text = xstrdup(cfg->v[k].text);
	}
	config_free(fresh);
	*changed = applied;
	*needs_restart = restart;
	return 0;
}

/* --- Run-time changes kept across restarts ---------------------------------------------- */

static char *
config_persist_path_of(const struct config_value *v)
{
	return xasprintf("%s/%s", v[CONFIG_DATA_DIR].text, CONFIG_PERSIST_FILE);
}

char *
config_persist_path(const struct config *cfg)
{
	return config_persist_path_of(cfg->v);
}

/* Writes text to path through path.tmp, fsync and rename, then syncs the directory, so
 * a crash leaves the old file or the new one, never a torn one. */
static int
config_write_atomic(const char *path, const char *text, char **cause)
{
	char *tmp_path = xasprintf("%s.tmp", path);
	int rc = 0;
	int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = vd_fail(cause, -errno, "cannot create %s: %s", tmp_path, strerror(errno));
		goto out;
	}
	size_t len = strlen(text), done = 0;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = vd_fail(cause, -errno, "cannot write %s: %s", tmp_path,
				     strerror(errno));
			goto out_close;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = vd_fail(cause, -errno, "cannot sync %s: %s", tmp_path, strerror(errno));
		goto out_close;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = vd_fail(cause, -errno, "cannot write %s: %s", tmp_path, strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp_path, path) < 0) {
		rc = vd_fail(cause, -errno, "cannot rename %s to %s: %s", tmp_path, path,
			     strerror(errno));
		goto out_unlink;
	}
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		int dfd = open(dir[0] != '\0' ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd); /* best effort: the file itself is complete */
			close(dfd);
		}
	}
	free(dir);
	goto out;
out_close:
	close(fd);
out_unlink:
	unlink(tmp_path);
out:
	free(tmp_path);
	return rc;
}

/* {"version": 1, "config": {...}}: every value of v whose source is runtime. */
static char *
config_runtime_doc_of(const struct config_value *v)
{
	json_t *keys = json_object();
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (v[k].source == CONFIG_SRC_RUNTIME)
			json_object_set_new(keys, config_table[k].name, json_string(v[k].text));
	json_t *doc = json_pack("{s:i, s:o}", "version", 1, "config", keys);
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

char *
config_runtime_doc(const struct config *cfg)
{
	return config_runtime_doc_of(cfg->v);
}

void
config_set_keeper(struct config *cfg, config_keep_fn *fn, void *arg)
{
	cfg->keeper = fn;
	cfg->keeper_arg = arg;
}

/* Writes every value of v whose source is runtime to runtime-config.json. */
static int
config_persist_save_values(const struct config_value *v, char **cause)
{
	char *text = config_runtime_doc_of(v);
	char *with_nl = xasprintf("%s\n", text);
	free(text);
	char *path = config_persist_path_of(v);
	int rc = config_write_atomic(path, with_nl, cause);
	free(path);
	free(with_nl);
	return rc;
}

int
config_persist_save(const struct config *cfg, char **cause)
{
	return config_persist_save_values(cfg->v, cause);
}

int
config_persist_load(struct config *cfg, json_t **skipped, char **cause)
{
	*skipped = json_array();
	char *path = config_persist_path(cfg);
	char *text = NULL;
	int rc = config_read_file(path, &text, cause);
	if (rc == -ENOENT) {
		if (cause != NULL)
			vd_free(*cause);
		free(path);
		return 0; /* nothing was ever changed at run time */
	}
	if (rc < 0)
		goto out;
	rc = config_apply_runtime_doc(cfg, text, path, NULL, *skipped, cause);
out:
	free(text);
	free(path);
	return rc;
}

int
config_apply_runtime_doc(struct config *cfg, const char *text, const char *where, json_t **changed,
			 json_t *skipped, char **cause)
{
	int rc = 0;
	const char *path = where;
	json_error_t jerr;
	json_t *doc = json_loads(text, 0, &jerr);
	json_t *keys = json_object_get(doc, "config");
	if (!json_is_object(keys) || json_integer_value(json_object_get(doc, "version")) != 1) {
		json_decref(doc);
		return vd_fail(cause, -EINVAL, "%s: not a vramd run-time configuration (version 1)",
			       path);
	}
	struct config_value tmp[CONFIG_NKEYS];
	config_values_copy(tmp, cfg->v);
	const char *key;
	json_t *value;
	json_object_foreach(keys, key, value)
	{
		int k = config_key_from_name(key);
		char *why = NULL;
		/* A key a newer or older vramd wrote, or one a later version made start-only,
		 * or a value out of a changed range: that one is skipped, the rest apply. */
		if (k < 0 || !config_table[k].runtime || !json_is_string(value))
			why = xasprintf("%s: not a run-time key", key);
		else if (config_assign(tmp, k, json_string_value(value), CONFIG_SRC_RUNTIME, path,
				       &why) < 0 &&
			 why == NULL)
			why = xasprintf("%s: invalid value", key);
		if (why != NULL)
			json_array_append_new(skipped, json_string(why));
		free(why);
	}
	json_decref(doc);
	rc = config_check_order(tmp, cause);
	if (rc < 0) {
		config_values_free(tmp);
		char *inner = *cause;
		*cause = xasprintf("%s: %s", path, inner);
		free(inner);
		return rc;
	}
	config_take_values(cfg, tmp, changed);
	return 0;
}
