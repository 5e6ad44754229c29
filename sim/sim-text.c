/*
 * sim-text.c: deterministic text and embeddings for ollama-sim.
 *
 * Everything derives from vd_hash64 over the model name, the input and the seed
 * option, so tests can compute the expected reply by asking twice and comparing,
 * and two sims with the same inputs agree. Callers: sim-api.c.
 */
#include "sim-text.h"

#include "util.h"

#include <math.h>
#include <string.h>

static const char *const sim_words[] = {
    " the",    " model",   " answer",	 " is",	    " a",      " simulated", " response", " from",
    " ollama", " sim",	   " with",	 " tokens", " that",   " look",	     " like",	  " text",
    " and",    " are",	   " always",	 " the",    " same",   " for",	     " one",	  " prompt",
    " GPU",    " memory",  " scheduler", " keeps",  " loaded", " models",    " warm",	  " in",
    " VRAM",   " until",   " their",	 " keep",   "_alive",  " ends",	     " quickly",  " slowly",
    " every",  " request", " waits",	 " its",    " turn",   " on",	     " runner",	  " slot",
    " then",   " streams", " words",	 " back",
};

uint64_t
sim_text_seed(const char *model, const char *prompt, int64_t seed_option)
{
	uint64_t h = vd_hash64(model, strlen(model), (uint64_t)seed_option);
	return vd_hash64(prompt, strlen(prompt), h);
}

int64_t
sim_text_default_length(uint64_t seed)
{
	return 20 + (int64_t)(seed % 101);
}

const char *
sim_text_token(uint64_t seed, int64_t i)
{
	uint64_t state = seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
	uint64_t r = vd_rand64(&state);
	if (i > 0 && r % 9 == 0)
		return ".";
	return sim_words[(r >> 8) % VD_ARRAY_LEN(sim_words)];
}

int64_t
sim_text_count_tokens(const char *text)
{
	size_t len = strlen(text);
	return len == 0 ? 0 : (int64_t)(len + 3) / 4;
}

void
sim_text_embed(const char *model, const char *text, double *out, size_t dims)
{
	uint64_t state = sim_text_seed(model, text, 0);
	double norm = 0;
	for (size_t i = 0; i < dims; i++) {
		/* Uniform in [-1, 1): enough for cosine similarity to behave. */
		double v = (double)(vd_rand64(&state) >> 11) / (double)(UINT64_C(1) << 52) - 1.0;
		out[i] = v;
		norm += v * v;
	}
	norm = sqrt(norm);
	for (size_t i = 0; i < dims && norm > 0; i++)
		out[i] /= norm;
}
