/*
 * reconcile.h: the rules that reconcile the engine's model states with what one Ollama
 * server's GET /api/ps lists ("observe, don't remember"). Pure: no I/O, no clock, no
 * globals; the engine calls reconcile_server() for every fresh listing of a server and
 * acts on the verdicts.
 *
 *   adopt  a model the server lists that the engine holds as UNLOADED (loaded by another
 *          client, or before vramd restarted), unless the listing predates vramd's own
 *          unload of it: it becomes LOADED, its memory counts, jobs run on it.
 *   gone   a model the engine holds as LOADED that a listing requested after its load
 *          no longer shows, while vramd asked no unload (the server restarted, or
 *          another client or its own keep-alive unloaded it). A model with jobs running
 *          is only declared gone after an outage (its connections are dead then).
 *
 * The server restarted when models are gone and either the listing is the first since
 * a failed connection (an outage), or it lists nothing at all.
 */
#ifndef VRAMD_RECONCILE_H
#define VRAMD_RECONCILE_H

#include "scheduler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum reconcile_verdict {
	RECONCILE_KEEP,	 /* the engine's state stands */
	RECONCILE_ADOPT, /* listed but not known as resident: it is LOADED now */
	RECONCILE_GONE,	 /* believed LOADED, no longer listed: it is UNLOADED now */
};

/* One model the engine keeps state for on this server. */
struct reconcile_model {
	const char *key; /* normalised name ("x:latest"); borrowed for the call */
	enum sched_residency residency;
	int running;	      /* jobs in flight on it */
	int64_t load_done_ms; /* monotonic: its last load (or adoption) ended; 0 = never */
	int64_t unloaded_ms;  /* monotonic: its last unload was confirmed; 0 = never */
};

/* One /api/ps listing of the server. */
struct reconcile_listing {
	const char *const *keys; /* normalised names listed; borrowed for the call */
	size_t n;
	int64_t sent_ms;   /* monotonic: when the listing was requested */
	bool after_outage; /* the first listing since a connection to the server failed */
};

struct reconcile_summary {
	size_t adopted, gone;
	bool restarted; /* the server restarted: its runners are gone */
};

/*
 * Judges every model of the server against the listing: verdicts[i] for models[i]
 * (the caller's array of nmodels). Models the listing names but models[] lacks are the
 * caller's to add (as UNLOADED) before the call. Fills sum.
 */
void reconcile_server(const struct reconcile_listing *ps, const struct reconcile_model *models,
		      size_t nmodels, enum reconcile_verdict *verdicts,
		      struct reconcile_summary *sum);

/*
 * Which of a GPU's processes is the runner of an adopted model that /api/ps shows with
 * size_vram bytes on GPUs: among the candidates (Ollama processes whose memory is known
 * and that are no other model's runner), the smallest holding at least size_vram (a
 * runner holds its weights plus a CUDA context /api/ps does not count). Returns its
 * index in bytes[], or -1 when none holds that much.
 */
int reconcile_match_runner(const uint64_t *bytes, size_t n, uint64_t size_vram);

#endif
