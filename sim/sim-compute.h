/*
 * sim-compute.h: how concurrent streams share a device's compute (hardware, not
 * Ollama): parallel slots of one runner and runners on one GPU slow each other down.
 */
#ifndef VRAMD_SIM_COMPUTE_H
#define VRAMD_SIM_COMPUTE_H

#include "sim-sched.h"

/* The streams busy on the busiest device r runs on (each GPU it holds bytes on, the
 * CPU when part of it is in host memory): the busy slots of every runner there.
 * At least 1. */
int sim_compute_streams(const struct sim_sched *s, const struct sim_runner *r);

/* Tokens/s of one stream of r now. n streams on a device share an aggregate of
 * single x sqrt(n) (the batching gain), so each gets r->tokens_per_s / sqrt(n). */
double sim_compute_stream_tps(const struct sim_sched *s, const struct sim_runner *r);

#endif
