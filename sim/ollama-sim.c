/*
 * ollama-sim.c: a simulated Ollama server with simulated GPUs, for trying and
 * testing vramd without a GPU. main() reads the environment (Ollama's own variable
 * names) and the flags (which override it), builds the catalogue, the hardware, the
 * scheduler and the HTTP API on one libevent loop, ticks the thermal model, and on
 * SIGINT/SIGTERM tears everything down in reverse order. docs/ollama-sim.md is the
 * user's guide; --help lists every option.
 */
#include "http-util.h"
#include "httpd.h"
#include "log.h"
#include "sim-api.h"
#include "sim-catalogue.h"
#include "sim-fault.h"
#include "sim-hw.h"
#include "sim-sched.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SIM_VERSION	 "0.33.0"
#define SIM_TICK_REAL_MS 200

static const char sim_usage[] =
    "Usage: ollama-sim [serve] [OPTION]...\n"
    "A simulated Ollama server (API of Ollama " SIM_VERSION ") with simulated GPUs.\n"
    "\"ollama-sim serve\" starts like \"ollama serve\": from the environment alone, its\n"
    "machine file named by OLLAMA_SIM_STATE (the variable the simulated NVML reads).\n"
    "\n"
    "Options (flags override the environment variables in brackets):\n"
    "  --listen ADDR:PORT     address to serve on (default 127.0.0.1:11434) [OLLAMA_HOST]\n"
    "  --gpus LIST            GPU memory sizes, e.g. 24GiB,24GiB, or \"none\" for a CPU-only\n"
    "                         node (default 24GiB)\n"
    "  --ram SIZE             host memory for CPU-placed models (default 64GiB)\n"
    "  --models FILE          model catalogue JSON (default: the built-in ten small models,\n"
    "                         sim/catalogues/default.json; see also large.json)\n"
    "                         [OLLAMA_MODELS: the file, or DIR/catalogue.json]\n"
    "  --load-bw RATE         model load bandwidth in bytes/s, e.g. 2GB (default 2GB)\n"
    "  --pull-bw RATE         /api/pull download bandwidth in bytes/s (default 100MB)\n"
    "  --start-cost DURATION  fixed llama-server start cost per load (default 300ms)\n"
    "  --time-scale N         divide every simulated wait by N (default 1); reported\n"
    "                         durations stay real-world values\n"
    "  --state FILE           create a new machine file here (replacing FILE) that\n"
    "                         the simulated NVML reads; this server is its only one\n"
    "  --machine FILE         attach to the simulated machine in FILE, shared with other\n"
    "                         ollama-sim processes; with --gpus, create it if absent\n"
    "                         [OLLAMA_SIM_STATE with serve]\n"
    "  --create               with --machine and --gpus: only create the machine, exit\n"
    "  --seed N               seed for GPU names/UUIDs (default 1)\n"
    "  --num-parallel N       parallel slots per model [OLLAMA_NUM_PARALLEL, default 1]\n"
    "  --max-loaded-models N  resident runner cap, 0 = 3 x GPUs\n"
    "                         [OLLAMA_MAX_LOADED_MODELS, default 0]\n"
    "  --max-queue N          pending-queue size; 503 when full [OLLAMA_MAX_QUEUE, 512]\n"
    "  --keep-alive DURATION  default keep_alive, Go duration or seconds, negative =\n"
    "                         forever [OLLAMA_KEEP_ALIVE, default 5m]\n"
    "  --context-length N     default num_ctx, 0 = VRAM tier 4k/32k/256k\n"
    "                         [OLLAMA_CONTEXT_LENGTH, default 0]\n"
    "  --ollama-version V     behave like Ollama 0.33 (default: llama-server --fit spills\n"
    "                         layers to the CPU, one OOM retry, VRAM recovery waits) or\n"
    "                         0.12 (500 on overcommit, no retry); /api/version reports V\n"
    "  --cuda-context SIZE    NVML-only CUDA context per runner per GPU (default 400MiB)\n"
    "  --release-delay DUR    the driver frees an unloaded runner's memory after DUR\n"
    "                         (default 300ms)\n"
    "  OLLAMA_SCHED_SPREAD=1  spread every model over all GPUs\n"
    "  --fault-rate R         inject a random fault (crash, hang, error, slow,\n"
    "                         oom_runtime, reset) into this share of Ollama requests,\n"
    "                         0 to 1 (default 0)\n"
    "  --fault-seed N         seed of the random faults (default 1)\n"
    "  --fault-kinds LIST     the random faults to draw from, e.g. error,reset (default all)\n"
    "  CUDA_VISIBLE_DEVICES   the machine's GPUs this server uses (indexes or UUIDs),\n"
    "                         renumbered from 0\n"
    "  --no-host-check        accept any Host header even on loopback\n"
    "  --log-level LEVEL      error|warn|info|debug [VRAMD_LOG_LEVEL]\n"
    "  -h, --help             this text\n"
    "\n"
    "Ollama endpoints: GET/HEAD /, GET/HEAD /api/version, GET/HEAD /api/tags,\n"
    "POST /api/show, GET /api/ps, POST /api/generate, POST /api/chat, POST /api/embed,\n"
    "POST /api/embeddings, POST /api/pull, DELETE /api/delete, POST /api/copy,\n"
    "HEAD /api/blobs/DIGEST.\n"
    "\n"
    "Control endpoints (not part of Ollama's API):\n"
    "  GET  /sim/state        GPUs (index, total, used, used_by_models, used_by_others,\n"
    "                         free, temperature, utilization, power_mw, fan_pct,\n"
    "                         sm_clock_mhz, clock_event_reasons, lost, unsupported),\n"
    "                         loaded models (placement gpu|partial|cpu, bytes per GPU,\n"
    "                         RAM bytes), pending, counters (requests, loads, unloads,\n"
    "                         evictions, oom_failures, rejected_503, cpu_spills,\n"
    "                         load_retries, aborted_loads, recovery_waits, runtime_ooms)\n"
    "  POST /sim/gpu/INDEX    JSON object with any of: other_mb (number), other_bytes\n"
    "                         (integer): memory held by another process; process_name\n"
    "                         (string, default python3); temperature_c (number, null =\n"
    "                         follow load); utilization_pct (0-100, null = follow load);\n"
    "                         lost (bool); unsupported (list of: temperature, power, fan,\n"
    "                         utilization, clocks, thresholds, processes, memory_v2,\n"
    "                         clock_events)\n"
    "  POST /sim/reset        unload every model, clear GPU settings, counters and faults\n"
    "  POST /sim/fault        queue a fault for the next matching requests: {\"type\":\n"
    "                         crash|hang|error|slow|oom_runtime|reset, \"count\", \"model\",\n"
    "                         \"endpoint\", \"after_chunks\", \"seconds\", \"status\", \"body\",\n"
    "                         \"factor\"}\n"
    "  GET  /sim/faults       pending faults and counters (DELETE: drop the pending ones\n"
    "                         and end a hang)\n"
    "\n"
    "0.33: layers that do not fit the GPUs run on the CPU (200, size_vram < size); only\n"
    "an explicit num_gpu above what fits fails, after one retry, with HTTP 500\n"
    "\"llama-server reported out-of-memory during startup: ...\". 0.12: a load whose real\n"
    "footprint does not fit the chosen GPU fails with that 500 at once.\n"
    "See docs/ollama-sim.md.\n";

struct sim_main {
	struct event_base *base;
	struct vd_httpd *http;
	struct sim_hw hw;
	struct sim_catalogue *cat;
	struct sim_sched *sched;
	struct sim_api *api;
	struct event *tick;
	struct event *sigint, *sigterm;
	int64_t last_tick_ns;
};

static void
sim_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim_main *sm = arg;
	int64_t now = vd_now_mono_ns();
	int64_t dt = (int64_t)((double)(now - sm->last_tick_ns) * sm->sched->cfg.time_scale);
	sm->last_tick_ns = now;
	if (sim_hw_tick(&sm->hw, dt))
		sim_sched_publish(sm->sched);
}

static void
sim_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct sim_main *sm = arg;
	vd_log(SIM, "signal %d: shutting down", (int)sig);
	event_base_loopexit(sm->base, NULL);
}

static int
sim_env_int(const char *name, int64_t min, int64_t max, int *out, char **cause)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return 0;
	int64_t n;
	int rc = vd_parse_int64(v, min, max, &n, name, cause);
	if (rc == 0)
		*out = (int)n;
	return rc;
}

/* OLLAMA_KEEP_ALIVE and --keep-alive: a Go duration or plain integer seconds. */
static int
sim_parse_default_keep_alive(const char *text, int64_t *ns, char **cause)
{
	int64_t secs;
	if (vd_parse_int64(text, INT64_MIN / VD_NS_PER_S, INT64_MAX / VD_NS_PER_S, &secs, "",
			   NULL) == 0) {
		*ns = secs < 0 ? SIM_FOREVER_NS : secs * VD_NS_PER_S;
		return 0;
	}
	int64_t d;
	int rc = vd_parse_go_duration(text, &d, cause);
	if (rc == 0)
		*ns = d < 0 ? SIM_FOREVER_NS : d;
	return rc;
}

enum {
	OPT_LISTEN = 1000,
	OPT_GPUS,
	OPT_RAM,
	OPT_MODELS,
	OPT_LOAD_BW,
	OPT_PULL_BW,
	OPT_START_COST,
	OPT_TIME_SCALE,
	OPT_STATE,
	OPT_MACHINE,
	OPT_CREATE,
	OPT_SEED,
	OPT_NUM_PARALLEL,
	OPT_MAX_LOADED,
	OPT_MAX_QUEUE,
	OPT_KEEP_ALIVE,
	OPT_CONTEXT_LENGTH,
	OPT_OLLAMA_VERSION,
	OPT_CUDA_CONTEXT,
	OPT_RELEASE_DELAY,
	OPT_NO_HOST_CHECK,
	OPT_LOG_LEVEL,
	OPT_FAULT_RATE,
	OPT_FAULT_SEED,
	OPT_FAULT_KINDS,
};

static const struct option sim_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"ram", required_argument, NULL, OPT_RAM},
    {"models", required_argument, NULL, OPT_MODELS},
    {"load-bw", required_argument, NULL, OPT_LOAD_BW},
    {"pull-bw", required_argument, NULL, OPT_PULL_BW},
    {"start-cost", required_argument, NULL, OPT_START_COST},
    {"time-scale", required_argument, NULL, OPT_TIME_SCALE},
    {"state", required_argument, NULL, OPT_STATE},
    {"machine", required_argument, NULL, OPT_MACHINE},
    {"create", no_argument, NULL, OPT_CREATE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"num-parallel", required_argument, NULL, OPT_NUM_PARALLEL},
    {"max-loaded-models", required_argument, NULL, OPT_MAX_LOADED},
    {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
    {"keep-alive", required_argument, NULL, OPT_KEEP_ALIVE},
    {"context-length", required_argument, NULL, OPT_CONTEXT_LENGTH},
    {"ollama-version", required_argument, NULL, OPT_OLLAMA_VERSION},
    {"cuda-context", required_argument, NULL, OPT_CUDA_CONTEXT},
    {"release-delay", required_argument, NULL, OPT_RELEASE_DELAY},
    {"no-host-check", no_argument, NULL, OPT_NO_HOST_CHECK},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"fault-rate", required_argument, NULL, OPT_FAULT_RATE},
    {"fault-seed", required_argument, NULL, OPT_FAULT_SEED},
    {"fault-kinds", required_argument, NULL, OPT_FAULT_KINDS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct sim_args {
	char *listen;
	const char *gpus, *models, *state, *machine;
	char *models_env; /* from OLLAMA_MODELS */
	uint64_t ram;
	uint64_t seed;
	bool gpus_given, time_scale_given, create;
	bool no_host_check;
	double fault_rate;
	uint64_t fault_seed;
	unsigned fault_kinds;
	double pull_bytes_per_s; /* --pull-bw */
	char version[32];	 /* reported by /api/version */
	struct sim_sched_config cfg;
};

static int
sim_parse_args(int argc, char **argv, struct sim_args *a, char **cause)
{
	int rc;
	int64_t n;
	double d;
	uint64_t bytes;
	int opt;
	if ((rc = sim_env_int("OLLAMA_NUM_PARALLEL", 0, 1024, &a->cfg.num_parallel, cause)) < 0 ||
	    (rc = sim_env_int("OLLAMA_MAX_LOADED_MODELS", 0, 1024, &a->cfg.max_loaded, cause)) <
		0 ||
	    (rc = sim_env_int("OLLAMA_MAX_QUEUE", 0, 1 << 24, &a->cfg.max_queue, cause)) < 0)
		return rc;
	if (a->cfg.num_parallel == 0)
		a->cfg.num_parallel = 1;
	const char *env = getenv("OLLAMA_KEEP_ALIVE");
	if (env != NULL && *env &&
	    (rc = sim_parse_default_keep_alive(env, &a->cfg.keep_alive_ns, cause)) < 0)
		return rc;
	env = getenv("OLLAMA_CONTEXT_LENGTH");
	if (env != NULL && *env) {
		if ((rc = vd_parse_int64(env, 0, 1 << 24, &n, "OLLAMA_CONTEXT_LENGTH", cause)) < 0)
			return rc;
		a->cfg.context_length = n;
	}
	env = getenv("OLLAMA_SCHED_SPREAD");
	a->cfg.sched_spread =
	    env != NULL && *env && strcmp(env, "0") != 0 && strcasecmp(env, "false") != 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", sim_options, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			free(a->listen);
			a->listen = xstrdup(optarg);
			break;
		case OPT_GPUS:
			a->gpus = optarg;
			a->gpus_given = true;
			break;
		case OPT_RAM:
			if ((rc = vd_parse_size(optarg, &a->ram, cause)) < 0)
				return rc;
			break;
		case OPT_MODELS:
			a->models = optarg;
			break;
		case OPT_LOAD_BW:
			if ((rc = vd_parse_size(optarg, &bytes, cause)) < 0)
				return rc;
			if (bytes == 0)
				return vd_fail(cause, -EINVAL, "--load-bw must be positive");
			a->cfg.load_bytes_per_s = (double)bytes;
			break;
		case OPT_PULL_BW:
			if ((rc = vd_parse_size(optarg, &bytes, cause)) < 0)
				return rc;
			if (bytes == 0)
				return vd_fail(cause, -EINVAL, "--pull-bw must be positive");
			a->pull_bytes_per_s = (double)bytes;
			break;
		case OPT_START_COST:
			if ((rc = vd_parse_go_duration(optarg, &n, cause)) < 0)
				return rc;
			a->cfg.start_cost_ns = n < 0 ? 0 : n;
			break;
		case OPT_TIME_SCALE:
			if ((rc = vd_parse_double(optarg, 1e-3, 1e9, &d, "--time-scale", cause)) <
			    0)
				return rc;
			a->cfg.time_scale = d;
			a->time_scale_given = true;
			break;
		case OPT_STATE:
			a->state = optarg;
			break;
		case OPT_MACHINE:
			a->machine = optarg;
			break;
		case OPT_CREATE:
			a->create = true;
			break;
		case OPT_SEED:
			if ((rc = vd_parse_int64(optarg, 0, INT64_MAX, &n, "--seed", cause)) < 0)
				return rc;
			a->seed = (uint64_t)n;
			break;
		case OPT_NUM_PARALLEL:
			if ((rc = vd_parse_int64(optarg, 1, 1024, &n, "--num-parallel", cause)) < 0)
				return rc;
			a->cfg.num_parallel = (int)n;
			break;
		case OPT_MAX_LOADED:
			if ((rc = vd_parse_int64(optarg, 0, 1024, &n, "--max-loaded-models",
						 cause)) < 0)
				return rc;
			a->cfg.max_loaded = (int)n;
			break;
		case OPT_MAX_QUEUE:
			if ((rc = vd_parse_int64(optarg, 0, 1 << 24, &n, "--max-queue", cause)) < 0)
				return rc;
			a->cfg.max_queue = (int)n;
			break;
		case OPT_KEEP_ALIVE:
			if ((rc = sim_parse_default_keep_alive(optarg, &a->cfg.keep_alive_ns,
							       cause)) < 0)
				return rc;
			break;
		case OPT_CONTEXT_LENGTH:
			if ((rc = vd_parse_int64(optarg, 0, 1 << 24, &n, "--context-length",
						 cause)) < 0)
				return rc;
			a->cfg.context_length = n;
			break;
		case OPT_OLLAMA_VERSION:
			if ((rc = sim_sched_parse_version(optarg, &a->cfg.ollama_minor, a->version,
							  sizeof(a->version), cause)) < 0)
				return rc;
			break;
		case OPT_CUDA_CONTEXT:
			if ((rc = vd_parse_size(optarg, &bytes, cause)) < 0)
				return rc;
			a->cfg.cuda_context_bytes = bytes;
			break;
		case OPT_RELEASE_DELAY:
			if ((rc = vd_parse_go_duration(optarg, &n, cause)) < 0)
				return rc;
			a->cfg.release_delay_ns = n < 0 ? 0 : n;
			break;
		case OPT_NO_HOST_CHECK:
			a->no_host_check = true;
			break;
		case OPT_FAULT_RATE:
			if ((rc = vd_parse_double(optarg, 0, 1, &d, "--fault-rate", cause)) < 0)
				return rc;
			a->fault_rate = d;
			break;
		case OPT_FAULT_SEED:
			if ((rc = vd_parse_int64(optarg, 0, INT64_MAX, &n, "--fault-seed", cause)) <
			    0)
				return rc;
			a->fault_seed = (uint64_t)n;
			break;
		case OPT_FAULT_KINDS:
			if ((rc = sim_fault_kinds_parse(optarg, &a->fault_kinds, cause)) < 0)
				return rc;
			break;
		case OPT_LOG_LEVEL:
			if (strcmp(optarg, "debug") == 0)
				vd_log_set_level(VD_LOG_DEBUG);
			else if (strcmp(optarg, "info") == 0)
				vd_log_set_level(VD_LOG_INFO);
			else if (strcmp(optarg, "warn") == 0)
				vd_log_set_level(VD_LOG_WARN);
			else if (strcmp(optarg, "error") == 0)
				vd_log_set_level(VD_LOG_ERROR);
			else
				return vd_fail(cause, -EINVAL, "--log-level: unknown level \"%s\"",
					       optarg);
			break;
		case 'h':
			fputs(sim_usage, stdout);
			exit(0);
		default:
			return vd_fail(cause, -EINVAL, "try --help");
		}
	}
	if (optind < argc)
		return vd_fail(cause, -EINVAL, "unexpected argument \"%s\" (try --help)",
			       argv[optind]);
	return 0;
}

/* Splits "ADDR:PORT" ("[::1]:11434" too). */
static int
sim_split_listen(char *listen, char **addr, uint16_t *port, char **cause)
{
	char *colon = strrchr(listen, ':');
	if (colon == NULL)
		return vd_fail(cause, -EINVAL, "--listen %s: expected ADDR:PORT", listen);
	*colon = '\0';
	int64_t p;
	if (vd_parse_int64(colon + 1, 0, 65535, &p, "--listen port", cause) < 0)
		return -EINVAL;
	*port = (uint16_t)p;
	*addr = listen;
	if (**addr == '[') {
		(*addr)++;
		char *end = strchr(*addr, ']');
		if (end != NULL)
			*end = '\0';
	}
	return 0;
}

static bool
sim_addr_is_loopback(const char *addr)
{
	return vd_str_has_prefix(addr, "127.") || strcmp(addr, "::1") == 0 ||
	       strcmp(addr, "localhost") == 0;
}

/*
 * OLLAMA_HOST as Ollama reads it (envconfig.Host): an optional http:// or https://
 * scheme (default port 80 / 443, else 11434), then HOST:PORT, HOST, :PORT or an IP;
 * a path is ignored. Returns "ADDR:PORT" for sim_split_listen (the caller's).
 */
static char *
sim_listen_from_host(const char *value)
{
	const char *port = "11434";
	const char *hostport = value;
	const char *scheme_end = strstr(value, "://");
	if (scheme_end != NULL) {
		port =
		    scheme_end - value == 5 && strncasecmp(value, "https", 5) == 0 ? "443" : "80";
		hostport = scheme_end + 3;
	}
	char *copy = xstrdup(hostport);
	copy[strcspn(copy, "/")] = '\0';
	char *colon = strrchr(copy, ':');
	char *bracket = strchr(copy, ']');
	bool has_port = colon != NULL && (copy[0] == '[' ? bracket != NULL && colon > bracket
							 : strchr(copy, ':') == colon);
	char *out;
	if (has_port) {
		*colon = '\0';
		out = xasprintf("%s:%s", *copy ? copy : "0.0.0.0", colon + 1);
	} else if (strchr(copy, ':') != NULL && copy[0] != '[') {
		out = xasprintf("[%s]:%s", copy, port); /* a bare IPv6 address */
	} else {
		out = xasprintf("%s:%s", *copy ? copy : "127.0.0.1", port);
	}
	free(copy);
	return out;
}

/* OLLAMA_MODELS names Ollama's model directory; the simulator's models are a
 * catalogue: the file itself, or DIR/catalogue.json. NULL: the built-in one. */
static char *
sim_catalogue_from_models_env(const char *value)
{
	struct stat st;
	if (value == NULL || *value == '\0' || stat(value, &st) != 0)
		return NULL;
	if (S_ISREG(st.st_mode))
		return xstrdup(value);
	if (!S_ISDIR(st.st_mode))
		return NULL;
	char *path = xasprintf("%s/catalogue.json", value);
	if (stat(path, &st) == 0)
		return path;
	free(path);
	return NULL;
}

/* Keeps the GPUs CUDA_VISIBLE_DEVICES names, as CUDA renumbers them. */
static void
sim_apply_visible_devices(struct sim_hw *hw)
{
	const char *env = getenv("CUDA_VISIBLE_DEVICES");
	if (env == NULL)
		return;
	const char *uuids[SIM_MAX_GPUS];
	for (unsigned i = 0; i < hw->ngpus; i++)
		uuids[i] = hw->gpus[i].uuid;
	unsigned sel[SIM_MAX_GPUS], n;
	sim_visible_devices_parse(env, uuids, hw->ngpus, sel, &n);
	sim_hw_select(hw, sel, n);
}

/*
 * Opens the machine file of --machine / OLLAMA_SIM_STATE (attach, create with
 * --gpus) or --state (a new one) and replaces the machine-describing arguments with
 * the machine's. Returns 0 (with *machine NULL when there is no machine file) or a
 * negative errno with *cause.
 */
static int
sim_open_machine(struct sim_args *a, const char *path, uint64_t *sizes, unsigned *ngpus,
		 struct sim_machine **machine, char **cause)
{
	*machine = NULL;
	if (path == NULL)
		return 0;
	struct sim_machine_desc want = {
	    .ngpus = *ngpus, .ram_bytes = a->ram, .seed = a->seed, .time_scale = a->cfg.time_scale};
	memcpy(want.gpu_bytes, sizes, sizeof(uint64_t) * *ngpus);
	struct sim_machine_desc got;
	enum sim_machine_mode mode = a->create		? SIM_MACHINE_CREATE
				     : path == a->state ? SIM_MACHINE_REPLACE
							: SIM_MACHINE_ATTACH;
	int rc =
	    sim_machine_open(path, mode, a->gpus_given || mode != SIM_MACHINE_ATTACH ? &want : NULL,
			     machine, &got, cause);
	if (rc < 0)
		return rc;
	if (a->time_scale_given && got.time_scale != a->cfg.time_scale) {
		rc = vd_fail(cause, -EINVAL,
			     "%s: the machine runs at --time-scale %g; leave it out to attach",
			     path, got.time_scale);
		sim_machine_close(*machine);
		*machine = NULL;
		return rc;
	}
	a->cfg.time_scale = got.time_scale;
	a->ram = got.ram_bytes;
	a->seed = got.seed;
	*ngpus = got.ngpus;
	memcpy(sizes, got.gpu_bytes, sizeof(uint64_t) * got.ngpus);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sim_main sm;
	memset(&sm, 0, sizeof(sm));
	struct sim_args a = {.gpus = "24GiB",
			     .ram = 64 * VD_GIB,
			     .seed = 1,
			     .fault_seed = 1,
			     .version = SIM_VERSION};
	sim_sched_config_defaults(&a.cfg);
	char *cause = NULL;
	int status = 1;
	vd_log_level_from_env();
	signal(SIGPIPE, SIG_IGN);

	bool serve = argc > 1 && strcmp(argv[1], "serve") == 0;
	if (serve) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	const char *host_env = getenv("OLLAMA_HOST");
	a.listen = host_env != NULL && *host_env ? sim_listen_from_host(host_env)
						 : xstrdup("127.0.0.1:11434");
	a.models_env = sim_catalogue_from_models_env(getenv("OLLAMA_MODELS"));
	if (sim_parse_args(argc, argv, &a, &cause) < 0)
		goto out_usage;
	if (a.models == NULL)
		a.models = a.models_env;

	const char *machine_path = a.machine != NULL ? a.machine : a.state;
	const char *state_env = getenv("OLLAMA_SIM_STATE");
	if (machine_path == NULL && serve && state_env != NULL && *state_env)
		machine_path = state_env;
	if (a.state != NULL && a.machine != NULL) {
		cause = xstrdup("--state creates a machine of its own; use --machine alone");
		goto out_usage;
	}
	if (a.create && (a.machine == NULL || !a.gpus_given)) {
		cause = xstrdup("--create needs --machine FILE and --gpus LIST");
		goto out_usage;
	}
	uint64_t sizes[SIM_MAX_GPUS];
	unsigned ngpus;
	if (sim_hw_parse_gpus(a.gpus, sizes, &ngpus, &cause) < 0)
		goto out_usage;
	struct sim_machine *machine = NULL;
	if (sim_open_machine(&a, machine_path, sizes, &ngpus, &machine, &cause) < 0)
		goto out_usage;
	if (a.create) {
		vd_log(SIM, "created machine %s with %u GPU(s)", machine_path, ngpus);
		sim_machine_close(machine);
		free(a.listen);
		free(a.models_env);
		return 0;
	}
	if (a.models != NULL) {
		if (sim_catalogue_load(a.models, &sm.cat, &cause) < 0) {
			sim_machine_close(machine);
			goto out_usage;
		}
	} else {
		sm.cat = sim_catalogue_default();
	}
	sim_hw_init(&sm.hw, sizes, ngpus, a.ram, a.seed);
	sim_apply_visible_devices(&sm.hw);
	ngpus = sm.hw.ngpus;
	for (unsigned i = 0; i < ngpus; i++)
		sizes[i] = sm.hw.gpus[i].total_bytes;
	if (machine != NULL && sim_machine_join(machine, &sm.hw, &cause) < 0) {
		sim_machine_close(machine);
		goto out_usage;
	}

	char *addr = NULL;
	uint16_t port = 0;
	if (sim_split_listen(a.listen, &addr, &port, &cause) < 0)
		goto out_usage;

	sm.base = event_base_new();
	sm.sched = sim_sched_new(sm.base, &sm.hw, sm.cat, &a.cfg);
	struct sim_api_config api_cfg = {
	    .check_host = !a.no_host_check && sim_addr_is_loopback(addr),
	    .version = a.version,
	    .fault_rate = a.fault_rate,
	    .fault_seed = a.fault_seed,
	    .fault_kinds = a.fault_kinds,
	    .pull_bytes_per_s = a.pull_bytes_per_s,
	};
	sm.api = sim_api_new(sm.base, sm.sched, &sm.hw, sm.cat, &api_cfg);
	/* Go's net/http has no body limit and generous timeouts; these only keep a test
	 * from exhausting the simulator. */
	struct vd_httpd_limits lim;
	vd_httpd_limits_default(&lim);
	lim.max_body_bytes = SIM_API_BODY_HARD;
	lim.max_head_bytes = 1024 * 1024;
	lim.max_uri_bytes = 1024 * 1024;
	lim.idle_timeout_ms = 5 * 60 * 1000;
	sm.http = vd_httpd_new(sm.base, &lim, sim_api_request_cb, sm.api);
	if (vd_httpd_listen(sm.http, addr, port, &cause) < 0)
		goto out_free;

	sm.sigint = evsignal_new(sm.base, SIGINT, sim_signal_cb, &sm);
	sm.sigterm = evsignal_new(sm.base, SIGTERM, sim_signal_cb, &sm);
	evsignal_add(sm.sigint, NULL);
	evsignal_add(sm.sigterm, NULL);
	sm.tick = event_new(sm.base, -1, EV_PERSIST, sim_tick_cb, &sm);
	struct timeval tick = {0, SIM_TICK_REAL_MS * 1000};
	sm.last_tick_ns = vd_now_mono_ns();
	evtimer_add(sm.tick, &tick);

	char gpus_desc[256] = "";
	for (unsigned i = 0; i < ngpus; i++) {
		char sz[32];
		vd_format_size(sizes[i], sz, sizeof(sz));
		size_t len = strlen(gpus_desc);
		snprintf(gpus_desc + len, sizeof(gpus_desc) - len, "%s%s", i ? ", " : "", sz);
	}
	vd_log(SIM, "ollama-sim %s listening on %s:%u: %u GPU(s) [%s], %zu models, time scale %g",
	       a.version, addr, port, ngpus, ngpus ? gpus_desc : "none", sm.cat->nmodels,
	       a.cfg.time_scale);
	event_base_dispatch(sm.base);
	status = 0;

out_free:
	vd_httpd_free(sm.http);
	if (sm.api != NULL)
		sim_api_free(sm.api);
	if (sm.tick != NULL)
		event_free(sm.tick);
	if (sm.sigint != NULL)
		event_free(sm.sigint);
	if (sm.sigterm != NULL)
		event_free(sm.sigterm);
	sim_sched_free(sm.sched);
	sim_hw_cleanup(&sm.hw);
	sim_catalogue_free(sm.cat);
	if (sm.base != NULL)
		event_base_free(sm.base);
	if (cause != NULL) {
		fprintf(stderr, "ollama-sim: %s\n", cause);
		free(cause);
		status = 1;
	}
	free(a.listen);
	free(a.models_env);
	return status;
out_usage:
	fprintf(stderr, "ollama-sim: %s\n", cause);
	free(cause);
	cause = NULL;
	status = 2;
	sim_catalogue_free(sm.cat);
	sim_hw_cleanup(&sm.hw);
	free(a.listen);
	free(a.models_env);
	return status;
}
