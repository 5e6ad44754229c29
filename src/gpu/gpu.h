/*
 * gpu.h: GPU telemetry. The monitor (gpu.c) samples every GPU through one provider
 * (gpu-nvml.c: NVML loaded with dlopen; gpu-smi.c: nvidia-smi run as a child process;
 * gpu-remote.c: another vramd's GET /api/gpu/status/all; or none) plus host memory
 * (gpu-host.c: /proc/meminfo, or the remote vramd's host figures) on a libevent timer, without
 * ever blocking the loop, and keeps per GPU the static identity, the latest sample, a
 * history ring and a temperature trend. The daemon's monitor and the /api/gpu handlers
 * read it; after each complete sample the monitor calls the owner's sample callback so
 * the scheduler can run again.
 *
 * Units everywhere: memory in bytes, power in milliwatts, temperature in degrees C,
 * utilisation and fan in percent, clocks in MHz, times in milliseconds.
 *
 * A field a GPU cannot report is "unknown": its GPU_HAS_* bit is clear in
 * gpu_sample.valid and its value is 0 and must not be used. Never read a value without
 * checking its bit.
 *
 * Threading: everything here runs on the loop thread; nothing is thread-safe.
 */
#ifndef VRAMD_GPU_H
#define VRAMD_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct gpu_monitor;

#define GPU_MAX_DEVICES	  16
#define GPU_MAX_PROCESSES 64
#define GPU_NAME_LEN	  96
#define GPU_UUID_LEN	  96
#define GPU_BUS_ID_LEN	  32
#define GPU_PROC_NAME_LEN 64

#define GPU_DEFAULT_INTERVAL_MS	   1000 /* MEMORY_MONITORING_INTERVAL */
#define GPU_DEFAULT_HISTORY	   200
#define GPU_DEFAULT_SMI_TIMEOUT_MS 5000

/* Validity bits of gpu_sample.valid: the field was reported by the GPU this sample. */
enum gpu_field {
	GPU_HAS_MEM_TOTAL = 1u << 0,
	GPU_HAS_MEM_USED = 1u << 1,
	GPU_HAS_MEM_FREE = 1u << 2,
	GPU_HAS_MEM_RESERVED = 1u << 3, /* NVML v2 / nvidia-smi memory.reserved */
	GPU_HAS_UTIL_GPU = 1u << 4,
	GPU_HAS_UTIL_MEM = 1u << 5,
	GPU_HAS_TEMPERATURE = 1u << 6,
	GPU_HAS_SLOWDOWN = 1u << 7, /* card's own HW slowdown threshold */
	GPU_HAS_SHUTDOWN = 1u << 8, /* card's own HW shutdown threshold */
	GPU_HAS_GPU_MAX = 1u << 9,  /* card's max operating temperature (SW throttle) */
	GPU_HAS_MARGIN = 1u << 10,  /* degrees left before the slowdown threshold */
	GPU_HAS_POWER_DRAW = 1u << 11,
	GPU_HAS_POWER_LIMIT = 1u << 12,
	GPU_HAS_FAN = 1u << 13,
	GPU_HAS_SM_CLOCK = 1u << 14,
	GPU_HAS_CLOCK_EVENTS = 1u << 15,
	GPU_HAS_PROCESSES = 1u << 16, /* the process list is known (it may be empty) */
};

/* NVML clock event ("throttle") reason bits, as nvml.md section 2.5 lists them. */
#define GPU_CLOCK_EVENT_IDLE	       0x1ull
#define GPU_CLOCK_EVENT_SW_POWER_CAP   0x4ull
#define GPU_CLOCK_EVENT_HW_SLOWDOWN    0x8ull
#define GPU_CLOCK_EVENT_SW_THERMAL     0x20ull
#define GPU_CLOCK_EVENT_HW_THERMAL     0x40ull
#define GPU_CLOCK_EVENT_HW_POWER_BRAKE 0x80ull
#define GPU_CLOCK_EVENT_THERMAL_MASK   (GPU_CLOCK_EVENT_SW_THERMAL | GPU_CLOCK_EVENT_HW_THERMAL)

/* A process using a GPU. */
struct gpu_process {
	uint32_t pid;	 /* as the GPU's own host reports it: from the remote provider, a pid on
			  * that machine, not a local one (match runners per node, never kill) */
	bool used_known; /* false when the driver does not say (Windows WDDM, [N/A]) */
	uint64_t used_bytes;
	char name[GPU_PROC_NAME_LEN]; /* "" when unknown */
	bool is_ollama;		      /* name looks like an Ollama runner (gpu_process_is_ollama) */
};

/* One reading of one GPU. */
struct gpu_sample {
	int64_t wall_ms; /* Unix time of the reading */
	int64_t mono_ms; /* monotonic time of the reading */
	/* When the GPU was measured, on our monotonic clock: a remote reading may already
	 * have been that old when it was served (0: mono_ms). */
	int64_t measured_mono_ms;
	uint32_t valid; /* GPU_HAS_* bits */
	uint64_t mem_total_bytes;
	uint64_t mem_used_bytes; /* excludes reserved memory when GPU_HAS_MEM_RESERVED is set */
	uint64_t mem_free_bytes;
	uint64_t mem_reserved_bytes;
	uint32_t util_gpu_pct;
	uint32_t util_mem_pct;
	int32_t temperature_c;
	int32_t slowdown_c;
	int32_t shutdown_c;
	int32_t gpu_max_c;
	int32_t margin_c;
	uint32_t power_draw_mw;
	uint32_t power_limit_mw;
	uint32_t fan_pct;
	uint32_t sm_clock_mhz;
	uint64_t clock_event_reasons; /* GPU_CLOCK_EVENT_* bits */
	size_t nprocesses;
	struct gpu_process processes[GPU_MAX_PROCESSES];
};

enum gpu_device_state {
	GPU_DEVICE_AVAILABLE,
	GPU_DEVICE_LOST, /* NVML_ERROR_GPU_IS_LOST / nvidia-smi exit 15, or vanished: probed again
			  */
};

/* What a provider reports for one device per sample (also the parsers' output). */
struct gpu_reading {
	uint32_t index; /* the provider's index (NVML order) */
	char name[GPU_NAME_LEN];
	char uuid[GPU_UUID_LEN];
	char bus_id[GPU_BUS_ID_LEN];
	bool lost;
	struct gpu_sample sample;
};

/* A compact history point; the ring keeps these, not whole samples. */
struct gpu_history_point {
	int64_t wall_ms;
	int64_t mono_ms;
	uint32_t valid; /* GPU_HAS_* bits of the fields below */
	uint64_t mem_used_bytes;
	uint64_t mem_free_bytes;
	uint32_t util_gpu_pct;
	int32_t temperature_c;
	uint32_t power_draw_mw;
};

enum gpu_trend_direction { GPU_TREND_STABLE, GPU_TREND_RISING, GPU_TREND_FALLING };

struct gpu_temp_trend {
	size_t nsamples; /* samples with a temperature in the window; 0: nothing known */
	int32_t min_c, max_c;
	double avg_c;
	double slope_c_per_min; /* least-squares slope */
	enum gpu_trend_direction direction;
};

/* The rise (or fall) across the window, in degrees C, that makes a trend not stable. */
#define GPU_TREND_THRESHOLD_C 2.0

/* A GPU as the monitor knows it. Borrowed from the monitor: the pointer stays valid
 * until gpu_monitor_free (a device keeps its slot, even when lost); the contents change
 * at every sample. */
struct gpu_device {
	uint32_t index; /* provider index */
	char name[GPU_NAME_LEN];
	char uuid[GPU_UUID_LEN];
	char bus_id[GPU_BUS_ID_LEN];
	enum gpu_device_state state;
	int64_t state_since_ms;	  /* monotonic time of the last state change */
	bool unified_memory;	  /* memory comes from host RAM (no dedicated framebuffer) */
	bool has_sample;	  /* latest is meaningful */
	struct gpu_sample latest; /* the last successful reading */
	/* private to gpu.c: the history ring */
	struct gpu_history_point *ring;
	size_t ring_len, ring_head, ring_count;
};

struct gpu_host_memory {
	bool valid;
	uint64_t total_bytes;	  /* MemTotal */
	uint64_t available_bytes; /* MemAvailable */
};

enum gpu_provider_pref {
	GPU_PROVIDER_AUTO, /* NVML, else nvidia-smi, else none */
	GPU_PROVIDER_NVML,
	GPU_PROVIDER_SMI,
	GPU_PROVIDER_NONE,
	GPU_PROVIDER_REMOTE, /* another vramd over HTTP (remote_url); never chosen by auto */
};

typedef void (*gpu_sample_cb)(struct gpu_monitor *mon, void *arg);

struct gpu_options {
	enum gpu_provider_pref provider;
	const char *nvml_lib;	   /* --nvml-lib; NULL: libnvidia-ml.so.1, then libnvidia-ml.so */
	const char *smi_path;	   /* NULL: "nvidia-smi" from PATH */
	const char *device_filter; /* "0,1", "GPU-8a3...", CUDA_VISIBLE_DEVICES style; NULL: all */
	int64_t interval_ms;	   /* 0: GPU_DEFAULT_INTERVAL_MS */
	size_t history_len;	   /* 0: GPU_DEFAULT_HISTORY */
	int64_t smi_timeout_ms;	   /* 0: GPU_DEFAULT_SMI_TIMEOUT_MS */
	const char *meminfo_path;  /* NULL: /proc/meminfo */
	const char *remote_url;	   /* GPU_PROVIDER_REMOTE: base URL of the vramd whose GPUs
				      to read ("http://10.0.0.2:5001"); NULL otherwise */
	gpu_sample_cb on_sample;   /* called on the loop after every complete sample; may be NULL */
	void *on_sample_arg;
};

/* --- The monitor (gpu.c) ----------------------------------------------------------- */

/*
 * Creates a monitor on base and opens the provider (probing NVML, then nvidia-smi, for
 * AUTO). Strings in opts are copied. No provider is not an error: the monitor then
 * reports source "none" and a reason, and still samples host memory. Returns NULL with
 * *cause set only for invalid options (a bad device filter). Monitoring starts at once;
 * the first sample is taken on the loop (gpu_monitor_sample_now for one at once).
 * Free with gpu_monitor_free before the event_base.
 */
struct gpu_monitor *gpu_monitor_new(struct event_base *base, const struct gpu_options *opts,
				    char **cause);
void gpu_monitor_free(struct gpu_monitor *mon);

/* Start and stop periodic sampling (/api/gpu/monitoring/start|stop). Stopping keeps the
 * last readings. Idempotent. */
void gpu_monitor_start(struct gpu_monitor *mon);
void gpu_monitor_stop(struct gpu_monitor *mon);
bool gpu_monitor_is_running(const struct gpu_monitor *mon);
int64_t gpu_monitor_interval_ms(const struct gpu_monitor *mon);
/* Changes the sampling interval (ms > 0); takes effect at the next tick. */
void gpu_monitor_set_interval_ms(struct gpu_monitor *mon, int64_t interval_ms);
/* Resizes every GPU's history ring to len points (GPU_HISTORY_LENGTH changed at run
 * time), keeping the newest; len 0 is ignored. */
void gpu_monitor_set_history_len(struct gpu_monitor *mon, size_t len);
size_t gpu_monitor_history_len(const struct gpu_monitor *mon);

/* Starts a sample now unless one is in flight. With NVML (synchronous) it completes
 * before this returns; with nvidia-smi it completes later on the loop. */
void gpu_monitor_sample_now(struct gpu_monitor *mon);
/* Number of complete samples taken so far. */
uint64_t gpu_monitor_sample_count(const struct gpu_monitor *mon);
/* Number of samples in which the provider answered (rc >= 0): a hung or failing
 * nvidia-smi completes samples that say nothing about memory, and those are not
 * counted here. 0 with no provider. */
uint64_t gpu_monitor_reading_count(const struct gpu_monitor *mon);

/* "nvml", "nvidia-smi", "vramd" or "none" (static string). */
const char *gpu_monitor_source(const struct gpu_monitor *mon);
/* Why there is no GPU telemetry (or the last provider error); NULL when all is well.
 * Borrowed until the next sample. */
const char *gpu_monitor_reason(const struct gpu_monitor *mon);

/* The GPUs that pass the filter, in provider index order. */
size_t gpu_monitor_count(const struct gpu_monitor *mon);
const struct gpu_device *gpu_monitor_device(const struct gpu_monitor *mon, size_t i);
/* By provider index or UUID; NULL if none. */
const struct gpu_device *gpu_monitor_find(const struct gpu_monitor *mon, uint32_t index);
const struct gpu_device *gpu_monitor_find_uuid(const struct gpu_monitor *mon, const char *uuid);
const struct gpu_host_memory *gpu_monitor_host(const struct gpu_monitor *mon);

/* History: number of points and the i-th, oldest first. */
size_t gpu_device_history_count(const struct gpu_device *dev);
const struct gpu_history_point *gpu_device_history_at(const struct gpu_device *dev, size_t i);
/* The temperature trend over the last window_ms before now_mono_ms. */
void gpu_device_temp_trend(const struct gpu_device *dev, int64_t now_mono_ms, int64_t window_ms,
			   struct gpu_temp_trend *out);
/* Memory used by programs other than Ollama runners: used - sum(runner processes).
 * Returns false (and sets nothing) when memory used or the process list is unknown. */
bool gpu_device_used_by_others(const struct gpu_device *dev, uint64_t *bytes);
const char *gpu_device_state_name(enum gpu_device_state state);
const char *gpu_trend_name(enum gpu_trend_direction direction);

/* --- Pure helpers (gpu.c), exposed for tests ------------------------------------------ */

/* Appends point to a ring of ring_len entries (head = next slot, count = filled). */
void gpu_ring_push(struct gpu_history_point *ring, size_t ring_len, size_t *head, size_t *count,
		   const struct gpu_history_point *point);
/* The trend of the given points (any order in time, oldest first preferred) within
 * [now - window, now]. */
void gpu_temp_trend_compute(const struct gpu_history_point *points, size_t n, int64_t now_mono_ms,
			    int64_t window_ms, struct gpu_temp_trend *out);
/* Validates a device filter: comma-separated indices ("0,1") or UUIDs ("GPU-..."; a
 * unique prefix is enough, as CUDA allows). NULL, "" and "all" mean all GPUs. Returns 0
 * or -EINVAL with *cause. */
int gpu_filter_validate(const char *filter, char **cause);
/* Whether a device with this index and uuid passes a valid filter. */
bool gpu_filter_match(const char *filter, uint32_t index, const char *uuid);
/* Whether a process name looks like an Ollama runner ("ollama", "llama-server", "llama"). */
bool gpu_process_is_ollama(const char *name);
const char *gpu_provider_pref_name(enum gpu_provider_pref pref);

/* The API names of the clock event reason bits ("gpu_idle", "sw_power_cap", ...): one
 * table for /api/gpu (which prints them) and the remote provider (which reads them
 * back). Returns the number of entries; *names points to a static table. */
struct gpu_clock_event_name {
	uint64_t bit;
	const char *name;
};
size_t gpu_clock_event_names(const struct gpu_clock_event_name **names);
/* Parses "auto", "nvml", "nvidia-smi" (or "smi"), "none", "vramd" (GPU_PROVIDER_REMOTE).
 * Returns 0 or -EINVAL. */
int gpu_provider_pref_parse(const char *text, enum gpu_provider_pref *out, char **cause);

/* --- Providers (gpu-*.c); only gpu.c and tests call these ---------------------------- */

/*
 * One provider interface, one table (gpu.c). open() probes the provider and returns 0
 * with *state set, or a negative errno with *cause saying why it is unusable.
 * sample() starts a reading of all devices; it calls done(readings, n, rc, cause, arg)
 * exactly once, synchronously or later on the loop, unless the provider is closed
 * first. readings and cause are borrowed for the call. rc < 0 means the provider
 * failed as a whole (for example nvidia-smi exit 9); a cause with rc 0 is a warning
 * (nvidia-smi exit 15: the lost GPU is simply missing from readings). close() cancels anything in
 * flight.
 */
typedef void (*gpu_provider_done_cb)(const struct gpu_reading *readings, size_t n, int rc,
				     const char *cause, void *arg);

struct gpu_provider_config {
	struct event_base *base;
	const char *nvml_lib;
	const char *smi_path;
	int64_t smi_timeout_ms; /* also the remote provider's request timeout */
	const char *remote_url; /* the remote provider's vramd base URL */
};

struct gpu_provider {
	const char *name; /* "nvml", "nvidia-smi", "vramd" */
	int (*open)(const struct gpu_provider_config *config, void **state, char **cause);
	void (*sample)(void *state, gpu_provider_done_cb done, void *arg);
	void (*close)(void *state);
	/* The memory of the host the GPUs are in, as of the last sample (borrowed until the
	 * next one), for providers whose GPUs are on another machine; NULL for the local
	 * providers, whose host memory the monitor reads from /proc/meminfo. */
	const struct gpu_host_memory *(*host)(void *state);
};

extern const struct gpu_provider gpu_provider_nvml;
extern const struct gpu_provider gpu_provider_smi;
extern const struct gpu_provider gpu_provider_remote;

/*
 * gpu-nvml.c, also callable directly: opens NVML (lib_path, or the default names),
 * resolves symbols and initialises it. Returns 0, or -ENOENT (no library), -ENODEV (no
 * driver / init failed), -ENOSYS (required symbol missing) with *cause. gpu_nvml_read
 * fills up to max readings (one per device, in NVML index order) and returns how many,
 * or a negative errno with *cause if NVML fails as a whole.
 */
struct gpu_nvml;
int gpu_nvml_open(const char *lib_path, struct gpu_nvml **out, char **cause);
int gpu_nvml_read(struct gpu_nvml *nv, struct gpu_reading *readings, size_t max, char **cause);
void gpu_nvml_close(struct gpu_nvml *nv);
/* The driver version string NVML reported ("" if unknown); borrowed until close. */
const char *gpu_nvml_driver_version(const struct gpu_nvml *nv);
/* Whether the optional v2 memory entry point was found (for tests and logs). */
bool gpu_nvml_has_memory_v2(const struct gpu_nvml *nv);

/*
 * gpu-smi.c parsers (pure). The --query-gpu fields, in order, are GPU_SMI_QUERY_GPU;
 * the --query-compute-apps fields GPU_SMI_QUERY_APPS; both with
 * --format=csv,noheader,nounits. Bracketed values ("[N/A]", "[Not Supported]", any
 * "[...]"), non-numbers and negative numbers are unknown. A name containing ", " is
 * handled (it is the one free-text field of a line). Return the number of records
 * parsed (lines that do not parse are skipped and counted in *bad if bad is non-NULL),
 * at most max.
 */
#define GPU_SMI_QUERY_GPU                                                                          \
	"index,name,uuid,pci.bus_id,memory.total,memory.used,memory.free,memory.reserved,"         \
	"utilization.gpu,utilization.memory,temperature.gpu,power.draw,enforced.power.limit,"      \
	"fan.speed,clocks.sm,clocks_event_reasons.active"
#define GPU_SMI_QUERY_APPS "gpu_uuid,pid,used_memory,process_name"

struct gpu_smi_app {
	char gpu_uuid[GPU_UUID_LEN];
	struct gpu_process process;
};

size_t gpu_smi_parse_gpus(const char *text, size_t len, struct gpu_reading *out, size_t max,
			  size_t *bad);
size_t gpu_smi_parse_apps(const char *text, size_t len, struct gpu_smi_app *out, size_t max,
			  size_t *bad);
/* Adds parsed apps to the readings with the same UUID and sets GPU_HAS_PROCESSES on all
 * readings (the app query succeeded, so an empty list means no processes). */
void gpu_smi_join_apps(struct gpu_reading *readings, size_t n, const struct gpu_smi_app *apps,
		       size_t napps);

/*
 * gpu-remote.c parsers (pure): the body of another vramd's GET /api/gpu/status/all
 * (docs/api.md). gpu_remote_parse fills up to max readings, one per GPU in the reply's
 * order (more are left out), and returns how many. Every field the reply carries as a
 * value sets its GPU_HAS_* bit; a missing or null field stays unknown. A GPU the remote
 * reports UNAVAILABLE (lost, or never sampled) is a lost reading. The driver's reserved
 * memory, not served as such, is total - used - free when that is above zero (NVML v2:
 * used excludes it). Process pids are the remote machine's, kept as reported.
 * Returns -EINVAL with *cause naming the field ("gpus[1].memory_used_bytes: expected a
 * non-negative integer, got string") for a body that is not JSON or has a wrong type
 * or an out-of-range value (out[] is then undefined).
 * gpu_remote_parse_host reads the reply's "host" object (out->valid false when its
 * figures are unknown); it returns -EINVAL with *cause for a body that is not JSON or
 * a "host" with wrong types.
 */
int gpu_remote_parse(const char *body, size_t len, struct gpu_reading *out, size_t max,
		     char **cause);
int gpu_remote_parse_host(const char *body, size_t len, struct gpu_host_memory *out, char **cause);

/* gpu-host.c: parses /proc/meminfo text (MemTotal, MemAvailable in kB). Returns 0, or
 * -EINVAL when either is missing or malformed (out->valid false). */
int gpu_host_parse_meminfo(const char *text, size_t len, struct gpu_host_memory *out);
/* Reads and parses path (NULL: /proc/meminfo). Returns 0 or a negative errno. */
int gpu_host_read_meminfo(const char *path, struct gpu_host_memory *out);

#endif
