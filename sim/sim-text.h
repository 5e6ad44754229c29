/*
 * sim-text.h: deterministic stand-ins for a model's output: text from model +
 * prompt + seed, a token count for any text, and L2-normalised embeddings.
 */
#ifndef VRAMD_SIM_TEXT_H
#define VRAMD_SIM_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The seed all generation for (model, prompt, seed option) derives from. */
uint64_t sim_text_seed(const char *model, const char *prompt, int64_t seed_option);
/* How many tokens a reply has when num_predict is not set: 20..120, from the seed. */
int64_t sim_text_default_length(uint64_t seed);
/* The i-th output token (a word with its leading space, or "." at sentence ends) for
 * the seed; i >= 0. Returns a borrowed static string. */
const char *sim_text_token(uint64_t seed, int64_t i);
/* Approximate tokens in a text (about 4 bytes per token, at least 1 for non-empty). */
int64_t sim_text_count_tokens(const char *text);
/* Fills out[dims] with a deterministic unit vector for (model, text). */
void sim_text_embed(const char *model, const char *text, double *out, size_t dims);

#endif
