/*
 * reconcile.c: the reconciliation rules of one Ollama server's /api/ps listing against
 * the engine's model states (reconcile.h). Pure and small on purpose, so the rules read
 * in one place and tests/test-reconcile.c covers them on hand-written states. The
 * engine (engine_observe_ps) calls it and acts on the verdicts.
 */
#include "reconcile.h"

#include <string.h>

static bool
reconcile_is_listed(const struct reconcile_listing *ps, const char *key)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->keys[i], key) == 0)
			return true;
	return false;
}

void
reconcile_server(const struct reconcile_listing *ps, const struct reconcile_model *models,
		 size_t nmodels, enum reconcile_verdict *verdicts, struct reconcile_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (size_t i = 0; i < nmodels; i++) {
		const struct reconcile_model *m = &models[i];
		bool listed = reconcile_is_listed(ps, m->key);
		verdicts[i] = RECONCILE_KEEP;
		/* LOADING (Ollama v0.33 lists a runner only once loaded) and UNLOADING (the
		 * engine confirms its own unloads) are in flight: the engine's to finish. */
		if (listed && m->residency == SCHED_UNLOADED && ps->sent_ms > m->unloaded_ms) {
			verdicts[i] = RECONCILE_ADOPT;
			sum->adopted++;
		} else if (!listed && m->residency == SCHED_LOADED &&
			   ps->sent_ms > m->load_done_ms && (m->running == 0 || ps->after_outage)) {
			verdicts[i] = RECONCILE_GONE;
			sum->gone++;
		}
	}
	sum->restarted = sum->gone > 0 && (ps->after_outage || ps->n == 0);
}

int
reconcile_match_runner(const uint64_t *bytes, size_t n, uint64_t size_vram)
{
	int best = -1;
	for (size_t i = 0; i < n; i++)
		if (bytes[i] >= size_vram && (best < 0 || bytes[i] < bytes[best]))
			best = (int)i;
	return best;
}
