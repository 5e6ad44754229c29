/*
 * bench-queue.c: the queue's hot path, push and pop, with the fair share between API
 * keys: 100 000 jobs over 100 models and three priorities are pushed, then every model
 * is drained with queue_pop_model, each pop charging its key as the engine does when a
 * run ends. Rows: jobs without a key (every job in the one NULL-key flow: the FIFO of
 * before fair share), then 1, 10 and 100 keys spread over the jobs. A pop costs
 * O(keys with jobs in that model's FIFO), so the last rows show that term.
 *
 * Build with -DBENCH_QUEUE_NO_KEYS to run the first row alone against a queue without
 * keys (the comparison before and after fair share in bench/README.md).
 */
#include "queue.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BENCH_JOBS = 100000, BENCH_MODELS = 100, BENCH_ROUNDS = 5 };

struct bench_result {
	double push_ns, pop_ns; /* per job, best round */
};

static void
bench_run(int nkeys, struct bench_result *out)
{
	char names[BENCH_MODELS][16];
	for (int m = 0; m < BENCH_MODELS; m++)
		snprintf(names[m], sizeof(names[m]), "model-%d", m);
	char(*keys)[16] = xcalloc(nkeys > 0 ? (size_t)nkeys : 1, sizeof(*keys));
	for (int k = 0; k < nkeys; k++)
		snprintf(keys[k], sizeof(keys[k]), "key-%d", k);
	struct job **jobs = xcalloc(BENCH_JOBS, sizeof(*jobs));
	out->push_ns = out->pop_ns = 1e18;
	for (int round = 0; round < BENCH_ROUNDS; round++) {
		uint64_t rng = 42;
		struct queue *q = queue_new(BENCH_JOBS);
		for (int i = 0; i < BENCH_JOBS; i++) {
			jobs[i] =
			    job_new(i + 1, names[vd_rand64(&rng) % BENCH_MODELS], JOB_KIND_GENERATE,
				    (enum job_priority)(vd_rand64(&rng) % 3), NULL, NULL);
#ifndef BENCH_QUEUE_NO_KEYS
			if (nkeys > 0)
				jobs[i]->key = xstrdup(keys[vd_rand64(&rng) % (uint64_t)nkeys]);
#endif
			jobs[i]->enqueued_mono_ms = 1;
		}
		int64_t t0 = vd_now_mono_ns();
		for (int i = 0; i < BENCH_JOBS; i++)
			queue_push(q, jobs[i]);
		int64_t t1 = vd_now_mono_ns();
		size_t popped = 0;
		for (int m = 0; m < BENCH_MODELS; m++) {
			struct job *job;
			while ((job = queue_pop_model(q, names[m])) != NULL) {
#ifndef BENCH_QUEUE_NO_KEYS
				queue_charge(q, job->key, 100 + (uint64_t)(job->seq % 50));
#endif
				job_unref(job);
				popped++;
			}
		}
		int64_t t2 = vd_now_mono_ns();
		if (popped != BENCH_JOBS) {
			fprintf(stderr, "bench-queue: popped %zu of %d jobs\n", popped, BENCH_JOBS);
			exit(1);
		}
		double push = (double)(t1 - t0) / BENCH_JOBS, pop = (double)(t2 - t1) / BENCH_JOBS;
		out->push_ns = push < out->push_ns ? push : out->push_ns;
		out->pop_ns = pop < out->pop_ns ? pop : out->pop_ns;
		for (int i = 0; i < BENCH_JOBS; i++)
			job_unref(jobs[i]);
		queue_free(q);
	}
	free(jobs);
	free(keys);
}

int
main(void)
{
#ifdef BENCH_QUEUE_NO_KEYS
	static const int rows[] = {0};
#else
	static const int rows[] = {0, 1, 10, 100};
#endif
	printf("queue: %d jobs over %d models x 3 priorities, pushed then drained model by "
	       "model; best of %d rounds\n\n",
	       BENCH_JOBS, BENCH_MODELS, BENCH_ROUNDS);
	printf("%-20s %12s %12s\n", "keys", "push ns/job", "pop ns/job");
	for (size_t r = 0; r < VD_ARRAY_LEN(rows); r++) {
		struct bench_result res;
		bench_run(rows[r], &res);
		char label[32];
		if (rows[r] == 0)
			snprintf(label, sizeof(label), "none (FIFO)");
		else
			snprintf(label, sizeof(label), "%d", rows[r]);
		printf("%-20s %12.1f %12.1f\n", label, res.push_ns, res.pop_ns);
	}
	return 0;
}
