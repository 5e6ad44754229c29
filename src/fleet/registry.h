/*
 * registry.h: the models one Ollama server has installed, what each costs in VRAM and
 * where it was last seen. One registry per Ollama server.
 *
 * Footprint: until a model has been loaded, file size x VRAM_ESTIMATION_MULTIPLIER (the
 * estimate). Once /api/ps shows it loaded, its size_vram (the measured footprint; size if
 * it was partly on CPU),
 * plus the runner overhead NVML showed beyond size_vram (registry_record_runner: the CUDA
 * context costs memory Ollama does not count), raised to the NVML memory delta of its
 * load when that delta is plausible. A model loaded on CPU (size_vram 0) keeps
 * its estimate for GPU placement.
 *
 * Names: "llama3.2" and "llama3.2:latest" are the same model; lookups normalise a
 * missing tag to ":latest". The display name is the one /api/tags gave.
 *
 * The registry owns its models; a struct registry_model pointer stays valid until
 * registry_free (a model that disappears is marked not installed, never freed), so
 * other modules may keep pointers. All fields are read-only outside registry.c.
 * The registry does no I/O: the monitor feeds it what it parsed from Ollama.
 */
#ifndef VRAMD_REGISTRY_H
#define VRAMD_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capabilities (bits), as Ollama's /api/show "capabilities" names them. */
enum registry_cap {
	REGISTRY_CAP_COMPLETION = 1 << 0, /* generate and chat */
	REGISTRY_CAP_EMBEDDING = 1 << 1,  /* embed */
	REGISTRY_CAP_VISION = 1 << 2,	  /* images */
	REGISTRY_CAP_TOOLS = 1 << 3,
	REGISTRY_CAP_INSERT = 1 << 4,
	REGISTRY_CAP_THINKING = 1 << 5,
};

struct registry_model {
	char *name;	/* display name as /api/tags gave it */
	char *key;	/* normalised name ("x:latest"), the lookup key */
	bool installed; /* in the last /api/tags listing */
	uint64_t file_bytes;
	char *family, *parameter_size, *quantization; /* may be NULL */
	unsigned caps;				      /* REGISTRY_CAP_* bits; 0 = unknown */

	/* Architecture from /api/show (0 = unknown), to size the KV cache. */
	int64_t ctx_train, block_count, head_count, head_count_kv, embedding_length;
	uint64_t kv_bytes;		/* KV cache at the server's context and parallelism */
	uint64_t estimate_bytes;	/* file_bytes x multiplier + kv_bytes */
	bool measured;			/* measured_bytes is known */
	uint64_t measured_bytes;	/* learned footprint (see above) */
	int64_t nvml_delta_bytes;	/* last NVML delta of a load; -1 unknown */
	uint64_t runner_overhead_bytes; /* its runner's NVML memory beyond size_vram (the CUDA
					   context), as last measured; 0 = unknown */

	/* Residency as last observed in /api/ps. */
	bool loaded;
	uint64_t size_bytes;	  /* total size Ollama reports */
	uint64_t size_vram_bytes; /* of which in VRAM; size - size_vram is on CPU */
	int64_t observed_at_ms;	  /* monotonic, last /api/ps seen */

	/* Load-time statistics (ms). */
	int64_t load_count;
	int64_t load_ms_last;
	double load_ms_mean;

	int64_t last_used_ms; /* monotonic; set by registry_touch; 0 = never */
};

struct registry;

/* multiplier: VRAM_ESTIMATION_MULTIPLIER (> 0). */
struct registry *registry_new(double multiplier);
void registry_free(struct registry *reg);
/* Changes the multiplier; every estimate is recomputed. */
void registry_set_multiplier(struct registry *reg, double multiplier);

/* Writes the normalised form of name ("x" -> "x:latest") into buf; returns buf. */
char *registry_normalize_name(const char *name, char *buf, size_t size);

/*
 * An /api/tags refresh: registry_begin_tags(), then registry_set_installed() once per
 * listed model, then registry_end_tags(), which marks every model not seen since begin
 * as not installed. Returns the model (created or updated). Strings are copied; family,
 * parameter_size and quantization may be NULL; caps 0 keeps what was known.
 */
void registry_begin_tags(struct registry *reg);
struct registry_model *registry_set_installed(struct registry *reg, const char *name,
					      uint64_t file_bytes, const char *family,
					      const char *parameter_size, const char *quantization,
					      unsigned caps);
/* Returns the number of models that went from installed to not installed. */
size_t registry_end_tags(struct registry *reg);
/* Sets a model's architecture (from /api/show; 0 = unknown) and recomputes its estimate. */
void registry_set_arch(struct registry *reg, const char *name, int64_t ctx_train,
		       int64_t block_count, int64_t head_count, int64_t head_count_kv,
		       int64_t embedding_length);
/*
 * The context every load is given (the server's default num_ctx; a model trained on less
 * gets its own) and the parallel slots per model: the KV cache of each model is
 * 2 x layers x kv_heads x (embedding / heads) x ctx x parallel x 2 bytes (f16), as
 * Ollama predicts it. Every estimate is recomputed when these change.
 */
void registry_set_context(struct registry *reg, int64_t num_ctx, int64_t parallel);
/* Sets capabilities learnt later (e.g. from /api/show). */
void registry_set_caps(struct registry *reg, const char *name, unsigned caps);

/*
 * An /api/ps refresh: registry_observe_loaded() for each listed model (creating an
 * entry, not installed, if /api/tags has not shown it yet), registry_observe_unloaded()
 * for a model known to be gone. size_vram > 0 becomes the measured footprint.
 * now_ms is monotonic.
 */
void registry_observe_loaded(struct registry *reg, const char *name, uint64_t size_bytes,
			     uint64_t size_vram_bytes, int64_t now_ms);
void registry_observe_unloaded(struct registry *reg, const char *name);
/* Helpers for a full /api/ps listing: begin, observe_loaded each, end marks the rest
 * unloaded. */
void registry_begin_ps(struct registry *reg);
void registry_end_ps(struct registry *reg);

/* Records a finished load: its duration, and the NVML free-memory drop it caused
 * (-1 when unknown). The delta refines the footprint when plausible. */
void registry_record_load(struct registry *reg, const char *name, int64_t load_ms,
			  int64_t nvml_delta_bytes);
/*
 * Records what NVML shows its runner process holding (runner_bytes) for a model that
 * /api/ps lists as loaded now. What exceeds size_vram (the CUDA context, which /api/ps
 * does not show) is the model's runner overhead: its footprint becomes /api/ps size plus
 * it, and estimates of models not measured yet include it too. Returns 0, or -1 (nothing
 * learnt) when the model is not listed on a GPU or the overhead is implausible (more
 * than size_vram plus 512 MiB).
 */
int registry_record_runner(struct registry *reg, const char *name, uint64_t runner_bytes);

/* The load bandwidth measured so far in bytes/s: the file sizes of every recorded load
 * over their summed durations (so slow loads weigh most); 0 before a load was timed. */
double registry_load_bandwidth(const struct registry *reg);

/*
 * How long a load of model may take before it is abandoned (LOAD_TIMEOUT 0 =
 * automatic): SLACK x its file size over the measured load bandwidth (ASSUMED_BW until
 * one is measured), never below FLOOR nor above CAP. CAP for an unknown model or size.
 */
#define REGISTRY_LOAD_TIMEOUT_SLACK    4
#define REGISTRY_ASSUMED_LOAD_BW       (100.0 * 1000 * 1000) /* bytes/s: a slow disk */
#define REGISTRY_LOAD_TIMEOUT_FLOOR_MS (30 * 1000)
#define REGISTRY_LOAD_TIMEOUT_CAP_MS   (10 * 60 * 1000)
int64_t registry_load_timeout_ms(const struct registry *reg, const struct registry_model *model);

/* Marks the model used now (job start or end). */
void registry_touch(struct registry *reg, const char *name, int64_t now_ms);

/* Finds a model by name (with or without tag); NULL if unknown. Not installed models
 * are returned too: check model->installed. */
struct registry_model *registry_find(const struct registry *reg, const char *name);
/* Changes whenever a model is added (models are never removed before registry_free, so a
 * registry_model pointer stays valid): a caller may cache registry_find's answer for a
 * name and look again only when this moved (the engine does, once per model). */
uint64_t registry_generation(const struct registry *reg);
/* How many times registry_find ran: a decision must not look every model up again
 * (issue 12; tests/test-engine.c counts them). */
size_t registry_find_count(const struct registry *reg);
/* The footprint to plan with: measured if known, else the estimate. */
uint64_t registry_footprint(const struct registry_model *model);
/*
 * The footprint of model when loaded with context num_ctx (a job's options.num_ctx):
 * registry_footprint() plus the KV cache beyond the one at the server's context, which
 * the estimate already holds (a measured footprint was measured at that context too).
 * A num_ctx at or below the server's context (or 0) changes nothing; the training
 * context caps it as Ollama does.
 */
/* The f16 KV cache Ollama predicts for model at context num_ctx (capped by its training
 * context) and the registry's parallelism; 0 when its architecture is unknown. */
uint64_t registry_kv_bytes_at(const struct registry *reg, const struct registry_model *model,
			      int64_t num_ctx);
uint64_t registry_footprint_at_ctx(const struct registry *reg, const struct registry_model *model,
				   int64_t num_ctx);
/* Whether the model can do a job kind (enum job_kind value). Unknown caps (0) allow
 * everything. */
bool registry_supports_kind(const struct registry_model *model, int job_kind);
/* The kind a job for this model gets when the client gives none (and no field says):
 * embed for embedding-only models, else generate. */
int registry_default_kind(const struct registry_model *model);

/* Iteration in insertion order: models 0 .. registry_count()-1. */
size_t registry_count(const struct registry *reg);
struct registry_model *registry_at(const struct registry *reg, size_t index);

/* Capability bit for an Ollama capability name ("completion", ...); 0 if unknown. */
unsigned registry_cap_from_name(const char *name);

/* GET /api/models: {"models": [...]} with estimate, footprint, residency and load
 * stats; installed_only drops models no longer installed. A new reference. */
json_t *registry_to_json(const struct registry *reg, bool installed_only);
json_t *registry_model_to_json(const struct registry_model *model);

#endif
