/*
 * bench-store.c: durable job throughput of the store. For batch sizes 1, 10, 100 and
 * 1000 it saves jobs (a typical generate request with metadata) and commits after each
 * batch, as the daemon does once per loop turn, and prints jobs/s and the cost of one
 * commit, for SYNC=full and SYNC=normal (SQLite), or with --store URL for a PostgreSQL
 * database (where SYNC does not apply: every commit waits for the server's flush).
 *
 * usage: bench-store [DIR] [JOBS]   (default: a temporary directory, 20000 jobs)
 *        bench-store --store postgresql://... [JOBS]
 */
#include "log.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double
bench_run(const char *dir, enum store_sync sync, int batch, int jobs)
{
	struct store *st;
	char *cause = NULL;
	if (store_open(dir, sync, &st, &cause) < 0) {
		fprintf(stderr, "bench-store: %s\n", cause);
		exit(1);
	}
	int64_t start = vd_now_mono_ns();
	for (int i = 0; i < jobs; i++) {
		json_t *req = json_pack("{s:s,s:{s:f,s:i}}", "prompt",
					"Summarise the following paragraph in one sentence.",
					"options", "temperature", 0.7, "num_predict", 128);
		json_t *meta = json_pack("{s:s,s:i}", "client", "bench", "n", i);
		struct job *job = job_new(store_next_seq(st, NULL), "llama3.2:latest",
					  JOB_KIND_GENERATE, (enum job_priority)(i % 3), req, meta);
		job->submitted_at_ms = vd_now_wall_ms();
		if (store_job_save(st, job, &cause) < 0) {
			fprintf(stderr, "bench-store: %s\n", cause);
			exit(1);
		}
		job_unref(job);
		if ((i + 1) % batch == 0 && store_commit(st, &cause) < 0) {
			fprintf(stderr, "bench-store: %s\n", cause);
			exit(1);
		}
	}
	if (store_commit(st, &cause) < 0) {
		fprintf(stderr, "bench-store: %s\n", cause);
		exit(1);
	}
	double secs = (double)(vd_now_mono_ns() - start) / 1e9;
	store_close(st);
	return secs;
}

int
main(int argc, char **argv)
{
	const char *url = NULL;
	if (argc > 2 && strcmp(argv[1], "--store") == 0) {
		url = argv[2];
		argv += 2;
		argc -= 2;
	}
	char tmpl[] = "/tmp/vramd-bench-store-XXXXXX";
	const char *base = url != NULL ? url : argc > 1 ? argv[1] : mkdtemp(tmpl);
	int jobs =
	    argc > (url != NULL ? 1 : 2) ? (int)strtol(argv[url != NULL ? 1 : 2], NULL, 10) : 20000;
	if (base == NULL || jobs <= 0) {
		fprintf(stderr, "usage: bench-store [DIR] [JOBS] | --store URL [JOBS]\n");
		return 2;
	}
	vd_log_set_level(VD_LOG_WARN);
	const int batches[] = {1, 10, 100, 1000};
	if (url != NULL) {
		printf("store throughput: %d jobs per run, PostgreSQL\n\n", jobs);
		printf("%-7s %6s %12s %14s %10s\n", "store", "batch", "jobs/s", "commit (us)",
		       "time (s)");
		for (size_t b = 0; b < VD_ARRAY_LEN(batches); b++) {
			int n = batches[b] == 1 && jobs > 2000 ? 2000 : jobs;
			double secs = bench_run(url, STORE_SYNC_FULL, batches[b], n);
			printf("%-7s %6d %12.0f %14.1f %10.2f\n", "pg", batches[b], n / secs,
			       secs * 1e6 / ((double)n / batches[b]), secs);
		}
		return 0;
	}
	printf("store throughput: %d jobs per run, data under %s\n\n", jobs, base);
	printf("%-7s %6s %12s %14s %10s\n", "sync", "batch", "jobs/s", "commit (us)", "time (s)");
	for (int s = 0; s < 2; s++) {
		enum store_sync sync = s == 0 ? STORE_SYNC_FULL : STORE_SYNC_NORMAL;
		for (size_t b = 0; b < VD_ARRAY_LEN(batches); b++) {
			/* Batch 1 with fsync is slow: fewer jobs keep the run short. */
			int n = batches[b] == 1 && jobs > 2000 ? 2000 : jobs;
			char *dir =
			    xasprintf("%s/%s-%d", base, s == 0 ? "full" : "normal", batches[b]);
			double secs = bench_run(dir, sync, batches[b], n);
			double commits = (double)n / batches[b];
			printf("%-7s %6d %12.0f %14.1f %10.2f\n", s == 0 ? "full" : "normal",
			       batches[b], n / secs, secs * 1e6 / commits, secs);
			free(dir);
		}
	}
	if (argc <= 1) {
		char *cmd = xasprintf("rm -rf '%s'", base);
		if (system(cmd) != 0)
			fprintf(stderr, "bench-store: could not remove %s\n", base);
		free(cmd);
	}
	return 0;
}
