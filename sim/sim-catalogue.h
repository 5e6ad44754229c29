/*
 * sim-catalogue.h: the models ollama-sim pretends to have pulled, loaded from a JSON
 * catalogue (sim/catalogues/default.json is built in). Each model carries what
 * Ollama's API reports (name, size, digest, details, capabilities) and what the
 * simulation needs (actual VRAM footprint, KV geometry, tokens/s on GPU and CPU).
 */
#ifndef VRAMD_SIM_CATALOGUE_H
#define VRAMD_SIM_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_CAP_COMPLETION (1u << 0)
#define SIM_CAP_EMBEDDING  (1u << 1)
#define SIM_CAP_VISION	   (1u << 2)
#define SIM_CAP_TOOLS	   (1u << 3)
#define SIM_CAP_THINKING   (1u << 4)
#define SIM_CAP_INSERT	   (1u << 5)

struct sim_model {
	char *name;		  /* "llama3.2:1b": always with a tag */
	uint64_t file_bytes;	  /* size on disk: /api/tags size, Ollama's estimate base */
	uint64_t footprint_bytes; /* real VRAM of weights + compute buffers, KV cache excluded */
	char *family;
	char *parameter_size;
	char *quantization_level;
	unsigned capabilities; /* SIM_CAP_* */
	int64_t embedding_length;
	int64_t context_length; /* n_ctx_train */
	int64_t vocab_size;	/* n_vocab: the logits part of the compute buffer */
	int64_t block_count;	/* layers; llama.cpp offloads block_count + 1 (the output layer) */
	int64_t head_count;
	int64_t head_count_kv;
	double gpu_tokens_per_s;
	double cpu_tokens_per_s;
	char digest[65];      /* 64 hex characters, derived from the name */
	int64_t modified_ns;  /* wall time, deterministic */
	char blob_digest[65]; /* the weights blob (HEAD /api/blobs/sha256:<this>) */
	bool installed;	      /* pulled: listed by /api/tags, found by sim_catalogue_find */
	bool pullable;	      /* in the simulated registry: /api/pull can fetch it */
};

/*
 * The models of one ollama-sim. models[] are installed at start; pullable[] are in the
 * simulated registry only until /api/pull installs them; copies[] are made by
 * /api/copy. /api/delete clears `installed`, never frees a record, so pointers held by
 * runners and jobs stay valid until sim_catalogue_free.
 */
struct sim_catalogue {
	struct sim_model *models;
	size_t nmodels;
	struct sim_model *pullable;
	size_t npullable;
	struct sim_model **copies;
	size_t ncopies;
};

/* At most this many /api/copy records per catalogue (deleted ones included). */
#define SIM_CATALOGUE_MAX_COPIES 4096

/* Parses a catalogue from JSON text ({"models":[...]}, see docs/ollama-sim.md).
 * Returns 0 and a new catalogue (free with sim_catalogue_free), or -EINVAL with
 * *cause naming the model and field at fault. */
int sim_catalogue_parse(const char *text, size_t len, struct sim_catalogue **out, char **cause);
/* Reads and parses a catalogue file. Errors as above, or -errno when unreadable. */
int sim_catalogue_load(const char *path, struct sim_catalogue **out, char **cause);
/* The built-in catalogue (the same ten models as sim/catalogues/default.json). */
struct sim_catalogue *sim_catalogue_default(void);
void sim_catalogue_free(struct sim_catalogue *cat);

/* Looks an installed model up the way Ollama resolves names: "NAME" means
 * "NAME:latest", a "registry.ollama.ai/library/" prefix is ignored, case does not
 * matter. Returns a borrowed pointer valid while the catalogue lives, or NULL. */
const struct sim_model *sim_catalogue_find(const struct sim_catalogue *cat, const char *name);
/* As sim_catalogue_find, over every record: installed only when installed_only, else
 * also the ones /api/pull can fetch (pullable, installed or not). Borrowed pointer. */
struct sim_model *sim_catalogue_lookup(struct sim_catalogue *cat, const char *name,
				       bool installed_only);
/* The number of records and the i-th (models, then pullable, then copies), installed or
 * not: for listing. Borrowed pointer. */
size_t sim_catalogue_count(const struct sim_catalogue *cat);
const struct sim_model *sim_catalogue_at(const struct sim_catalogue *cat, size_t i);
/* /api/copy: a new installed record named name (already canonical: with a tag) with
 * the data, digests and blob of src and modified_ns = now. Returns it (borrowed), or
 * NULL when SIM_CATALOGUE_MAX_COPIES records exist. */
struct sim_model *sim_catalogue_add_copy(struct sim_catalogue *cat, const struct sim_model *src,
					 const char *name, int64_t now_wall_ns);
/* Ollama's canonical short name: "registry.ollama.ai/library/" or "library/" dropped, ":latest"
 * added when there is no tag. Caller frees. */
char *sim_catalogue_canonical_name(const char *name);

/* Ollama's KV-cache estimate for ctx tokens (f16):
 * 2 x block_count x head_count_kv x (embedding_length / head_count) x ctx x 2 bytes. */
uint64_t sim_model_kv_bytes(const struct sim_model *m, int64_t ctx);
/* Ollama's pre-flight estimate: file size + KV cache for ctx tokens in total. */
uint64_t sim_model_estimate_bytes(const struct sim_model *m, int64_t ctx);
/* The compute buffer llama.cpp allocates per device for a micro-batch of ubatch tokens:
 * the logits (n_vocab x ubatch x 4 B) plus the activations (4 x embedding_length x
 * ubatch x 4 B). */
uint64_t sim_model_compute_bytes(const struct sim_model *m, int64_t ubatch);
/* The real footprint for ctx tokens in total: footprint + KV, always above the estimate
 * by footprint - file size (the gap that makes estimate-trusting clients run out of memory). */
uint64_t sim_model_actual_bytes(const struct sim_model *m, int64_t ctx);

#endif
