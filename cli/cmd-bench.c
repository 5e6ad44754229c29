/*
 * cmd-bench.c: `vramctl bench`, the test-submission modes of the original tool:
 *   --batch      four predefined jobs (generate, chat, embed, generate; three priorities)
 *   --random N   N jobs over the installed models (GET /api/models) with random kinds
 *                the model supports and random priorities; --seed makes it repeatable
 *   --spam N     like --random, but never waits for results
 * --delay S sleeps between submissions; --no-check skips waiting. By default bench waits
 * for every job and prints a summary table (submitted, completed, failed, p50/p99 wait
 * per priority) and exits 1 if any job was rejected, failed, or did not finish in time.
 *
 * Waiting long-polls each job in submission order, so the total wait is about the
 * makespan of the batch, not the sum of the jobs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "table.h"
#include "util.h"
#include "vramctl.h"

enum bench_prio { BENCH_HIGH, BENCH_NORMAL, BENCH_LOW, BENCH_NPRIO };
static const char *const bench_prio_names[BENCH_NPRIO] = {"high", "normal", "low"};

/* A job bench submitted, and what became of it. */
struct bench_job {
	char *id; /* owned; NULL when the submission was rejected */
	enum bench_prio prio;
	char *status; /* owned final status; NULL when unknown (not checked, not finished) */
	int64_t wait_ms;
};

/* What bench knows about an installed model. */
struct bench_model {
	const char *name; /* borrowed from the /api/models reply or argv */
	bool embed_only;
};

static const char *const bench_prompts[] = {
    "Why is the sky blue?",	      "Explain what a GPU is in one sentence.",
    "Write a haiku about memory.",    "List three uses of a scheduler.",
    "What is the capital of France?", "Summarise the plot of Hamlet in two sentences.",
};

/* The --batch jobs: model, kind, priority, text. */
static const struct {
	const char *model, *kind;
	enum bench_prio prio;
	const char *text;
} bench_batch[] = {
    {"qwen2.5:0.5b", "generate", BENCH_HIGH, "Explain what a GPU is in one sentence."},
    {"llama3.2:1b", "chat", BENCH_NORMAL, "Write a haiku about memory."},
    {"all-minilm:latest", "embed", BENCH_LOW, "vramd schedules models onto GPUs"},
    {"phi3:mini", "generate", BENCH_NORMAL, "List three uses of a scheduler."},
};

static json_t *
bench_job_body(const char *model, const char *kind, enum bench_prio prio, const char *text)
{
	json_t *body = json_pack("{s:s, s:s}", "model", model, "priority", bench_prio_names[prio]);
	if (strcmp(kind, "chat") == 0)
		json_object_set_new(body, "messages",
				    json_pack("[{s:s, s:s}]", "role", "user", "content", text));
	else if (strcmp(kind, "embed") == 0)
		json_object_set_new(body, "input", json_string(text));
	else
		json_object_set_new(body, "prompt", json_string(text));
	json_object_set_new(body, "metadata", json_pack("{s:s}", "source", "vramctl bench"));
	return body;
}

/* The (i mod n)-th name of a comma-separated list, newly allocated; NULL if empty. */
static char *
bench_nth_model(const char *list, size_t i)
{
	char *copy = xstrdup(list), *save = NULL, *result = NULL;
	size_t n = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		n++;
	free(copy);
	if (n == 0)
		return NULL;
	copy = xstrdup(list);
	save = NULL;
	size_t k = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		if (k++ == i % n)
			result = xstrdup(tok);
	free(copy);
	return result;
}

static void
bench_sleep(double seconds)
{
	if (seconds <= 0)
		return;
	struct timespec ts = {.tv_sec = (time_t)seconds,
			      .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
	nanosleep(&ts, NULL);
}

static int
bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values; -1 when there are none. */
static int64_t
bench_percentile(const int64_t *sorted, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

/* Loads the installed models from vramd, keeping those named in filter (comma-separated)
 * when filter is set. Returns a ctl_exit code; *models points into *reply. */
static int
bench_load_models(const struct ctl *ctl, const char *filter, struct ctl_reply *reply,
		  struct bench_model **models, size_t *nmodels)
{
	int rc = ctl_api_print(ctl, "GET", "/api/models", NULL, CTL_DEFAULT_TIMEOUT_S, reply);
	if (rc != CTL_EXIT_OK)
		return rc;
	json_t *list = json_object_get(reply->json, "models");
	size_t i;
	json_t *m;
	*models = xcalloc(json_array_size(list) + 1, sizeof(**models));
	*nmodels = 0;
	json_array_foreach(list, i, m)
	{
		const char *name = ctl_json_str(m, "name");
		if (name == NULL)
			continue;
		if (filter != NULL) {
			char *copy = xstrdup(filter), *save = NULL;
			bool wanted = false;
			for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
			     tok = strtok_r(NULL, ",", &save))
				wanted = wanted || strcmp(tok, name) == 0;
			free(copy);
			if (!wanted)
				continue;
		}
		bool completion = false, embedding = false;
		size_t j;
		json_t *cap;
		json_array_foreach(json_object_get(m, "capabilities"), j, cap)
		{
			const char *c = json_string_value(cap);
			completion = completion || (c != NULL && strcmp(c, "completion") == 0);
			embedding = embedding || (c != NULL && strcmp(c, "embedding") == 0);
		}
		(*models)[*nmodels].name = name;
		(*models)[*nmodels].embed_only = embedding && !completion;
		(*nmodels)++;
	}
	if (*nmodels == 0) {
		fprintf(stderr, "vramctl: no %smodels to submit to (GET /api/models)\n",
			filter != NULL ? "matching " : "");
		return CTL_EXIT_API;
	}
	return CTL_EXIT_OK;
}

static void
bench_summary(const struct ctl *ctl, const struct bench_job *jobs, size_t njobs, bool checked,
	      uint64_t seed, double submit_s, double total_s)
{
	size_t submitted[BENCH_NPRIO + 1] = {0}, rejected[BENCH_NPRIO + 1] = {0};
	size_t complete[BENCH_NPRIO + 1] = {0}, failed[BENCH_NPRIO + 1] = {0};
	size_t cancelled[BENCH_NPRIO + 1] = {0}, unfinished[BENCH_NPRIO + 1] = {0};
	int64_t *waits[BENCH_NPRIO + 1];
	size_t nwaits[BENCH_NPRIO + 1] = {0};

	for (int p = 0; p <= BENCH_NPRIO; p++)
		waits[p] = xcalloc(njobs + 1, sizeof(int64_t));
	for (size_t i = 0; i < njobs; i++) {
		const struct bench_job *j = &jobs[i];
		for (int p = 0; p <= BENCH_NPRIO; p += 1) {
			if (p != (int)j->prio && p != BENCH_NPRIO)
				continue;
			if (j->id == NULL) {
				rejected[p]++;
				continue;
			}
			submitted[p]++;
			if (!checked)
				continue;
			if (j->status == NULL)
				unfinished[p]++;
			else if (strcmp(j->status, "complete") == 0) {
				complete[p]++;
				waits[p][nwaits[p]++] = j->wait_ms;
			} else if (strcmp(j->status, "failed") == 0)
				failed[p]++;
			else if (strcmp(j->status, "cancelled") == 0)
				cancelled[p]++;
			else
				unfinished[p]++;
		}
	}
	for (int p = 0; p <= BENCH_NPRIO; p++)
		qsort(waits[p], nwaits[p], sizeof(int64_t), bench_cmp_i64);

	if (ctl->json) {
		json_t *out = json_pack("{s:I, s:b, s:f, s:f}", "seed", (json_int_t)seed, "checked",
					checked, "submit_s", submit_s, "total_s", total_s);
		json_t *by = json_object();
		for (int p = 0; p <= BENCH_NPRIO; p++) {
			json_t *row = json_pack(
			    "{s:I, s:I, s:I, s:I, s:I, s:I}", "submitted", (json_int_t)submitted[p],
			    "rejected", (json_int_t)rejected[p], "complete",
			    (json_int_t)complete[p], "failed", (json_int_t)failed[p], "cancelled",
			    (json_int_t)cancelled[p], "unfinished", (json_int_t)unfinished[p]);
			int64_t p50 = bench_percentile(waits[p], nwaits[p], 50);
			int64_t p99 = bench_percentile(waits[p], nwaits[p], 99);
			json_object_set_new(row, "p50_wait_ms",
					    p50 < 0 ? json_null() : json_integer(p50));
			json_object_set_new(row, "p99_wait_ms",
					    p99 < 0 ? json_null() : json_integer(p99));
			if (p == BENCH_NPRIO)
				json_object_update(out, row);
			else
				json_object_set(by, bench_prio_names[p], row);
			json_decref(row);
		}
		json_object_set_new(out, "by_priority", by);
		json_t *ids = json_array();
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].id != NULL)
				json_array_append_new(ids, json_string(jobs[i].id));
		json_object_set_new(out, "job_ids", ids);
		char *text =
		    json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		printf("%s\n", text);
		free(text);
		json_decref(out);
	} else {
		struct ctl_table *t =
		    checked ? ctl_table_new(9, "PRIORITY", "SUBMITTED", "REJECTED", "COMPLETED",
					    "FAILED", "CANCELLED", "UNFINISHED", "P50_WAIT_MS",
					    "P99_WAIT_MS")
			    : ctl_table_new(3, "PRIORITY", "SUBMITTED", "REJECTED");
		for (int p = 0; p <= BENCH_NPRIO; p++) {
			ctl_table_cell(t, p == BENCH_NPRIO ? "all" : bench_prio_names[p]);
			ctl_table_cellf(t, "%zu", submitted[p]);
			ctl_table_cellf(t, "%zu", rejected[p]);
			if (!checked)
				continue;
			ctl_table_cellf(t, "%zu", complete[p]);
			ctl_table_cellf(t, "%zu", failed[p]);
			ctl_table_cellf(t, "%zu", cancelled[p]);
			ctl_table_cellf(t, "%zu", unfinished[p]);
			int64_t p50 = bench_percentile(waits[p], nwaits[p], 50);
			int64_t p99 = bench_percentile(waits[p], nwaits[p], 99);
			if (p50 < 0) {
				ctl_table_cell(t, NULL);
				ctl_table_cell(t, NULL);
			} else {
				ctl_table_cellf(t, "%lld", (long long)p50);
				ctl_table_cellf(t, "%lld", (long long)p99);
			}
		}
		printf("\nseed %llu; submitted in %.2f s; total %.2f s\n", (unsigned long long)seed,
		       submit_s, total_s);
		ctl_table_print(t, stdout);
		ctl_table_free(t);
	}
	for (int p = 0; p <= BENCH_NPRIO; p++)
		free(waits[p]);
}

/* The progress line while bench waits: done of njobs final, and the job waited on. */
struct bench_progress {
	struct ctl_progress line;
	size_t done;
	size_t njobs;
};

static void
bench_progress_cb(const json_t *job, void *arg)
{
	struct bench_progress *p = arg;
	ctl_progress_show(&p->line, p->done, p->njobs, job);
}

static int
cmd_bench_exec(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {{"batch", no_argument, NULL, 'b'},
						 {"random", required_argument, NULL, 'r'},
						 {"spam", required_argument, NULL, 's'},
						 {"delay", required_argument, NULL, 'd'},
						 {"no-check", no_argument, NULL, 'C'},
						 {"seed", required_argument, NULL, 'S'},
						 {"models", required_argument, NULL, 'm'},
						 {"timeout", required_argument, NULL, 't'},
						 CTL_COMMON_LONGOPTS,
						 {NULL, 0, NULL, 0}};
	int modes = 0;
	bool batch = false, spam = false, check = true;
	int64_t count = 0, seed_arg = -1;
	double delay = 0, timeout = 600;
	const char *filter = NULL;
	char *cause = NULL;
	struct ctl_reply models_reply = {0};
	struct bench_model *models = NULL;
	size_t nmodels = 0;
	struct bench_job *jobs = NULL;
	size_t njobs = 0;
	int opt, rc = CTL_EXIT_OK;

	while ((opt = ctl_getopt(ctl, cmd, argc, argv, "", longopts, &rc)) != -1) {
		switch (opt) {
		case -2:
			goto out;
		case 'b':
			batch = true;
			modes++;
			break;
		case 'r':
		case 's':
			spam = opt == 's';
			modes++;
			if (vd_parse_int64(optarg, 1, 1000000, &count, spam ? "--spam" : "--random",
					   &cause) != 0)
				goto usage;
			break;
		case 'd':
			if (vd_parse_double(optarg, 0, 3600, &delay, "--delay", &cause) != 0)
				goto usage;
			break;
		case 'C':
			check = false;
			break;
		case 'S':
			if (vd_parse_int64(optarg, 0, INT64_MAX, &seed_arg, "--seed", &cause) != 0)
				goto usage;
			break;
		case 'm':
			filter = optarg;
			break;
		case 't':
			if (vd_parse_double(optarg, 0, 1e7, &timeout, "--timeout", &cause) != 0)
				goto usage;
			break;
		}
	}
	if (optind < argc) {
		rc = ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (modes != 1) {
		rc =
		    ctl_usage_error(cmd, modes == 0 ? "one of --batch, --random N, --spam N is "
						      "required"
						    : "give only one of --batch, --random, --spam");
		goto out;
	}
	if (spam)
		check = false;

	uint64_t seed = seed_arg >= 0 ? (uint64_t)seed_arg
				      : (uint64_t)vd_now_wall_ns() ^ ((uint64_t)getpid() << 32);
	uint64_t rng = seed;
	if (!batch) {
		rc = bench_load_models(ctl, filter, &models_reply, &models, &nmodels);
		if (rc != CTL_EXIT_OK)
			goto out;
	} else {
		count = (int64_t)VD_ARRAY_LEN(bench_batch);
	}

	jobs = xcalloc((size_t)count, sizeof(*jobs));
	int64_t t0 = vd_now_mono_ms();
	size_t errors_shown = 0;
	for (int64_t i = 0; i < count; i++) {
		json_t *body;
		struct bench_job *j = &jobs[njobs++];
		if (batch) {
			const char *model = bench_batch[i].model;
			char *chosen = filter != NULL ? bench_nth_model(filter, (size_t)i) : NULL;
			if (chosen != NULL)
				model = chosen;
			j->prio = bench_batch[i].prio;
			body = bench_job_body(model, bench_batch[i].kind, j->prio,
					      bench_batch[i].text);
			free(chosen);
		} else {
			const struct bench_model *m = &models[vd_rand64(&rng) % nmodels];
			const char *text =
			    bench_prompts[vd_rand64(&rng) % VD_ARRAY_LEN(bench_prompts)];
			const char *kind = m->embed_only	      ? "embed"
					   : vd_rand64(&rng) % 4 == 0 ? "chat"
								      : "generate";
			j->prio = (enum bench_prio)(vd_rand64(&rng) % BENCH_NPRIO);
			body = bench_job_body(m->name, kind, j->prio, text);
		}
		struct ctl_reply reply;
		rc = ctl_api(ctl, "POST", "/api/submit", body, CTL_DEFAULT_TIMEOUT_S, &reply,
			     &cause);
		json_decref(body);
		if (rc == CTL_EXIT_UNREACHABLE) {
			fprintf(stderr, "vramctl: %s\n", cause);
			ctl_reply_cleanup(&reply);
			goto out;
		}
		if (rc == CTL_EXIT_OK && ctl_json_str(reply.json, "job_id") != NULL) {
			j->id = xstrdup(ctl_json_str(reply.json, "job_id"));
		} else if (errors_shown++ < 10) {
			fprintf(stderr, "vramctl: submit %lld rejected: %s\n", (long long)i + 1,
				cause != NULL ? cause : "no job_id in the reply");
		}
		rc = CTL_EXIT_OK;
		vd_free(cause);
		ctl_reply_cleanup(&reply);
		if (i + 1 < count)
			bench_sleep(delay);
	}
	double submit_s = (double)(vd_now_mono_ms() - t0) / 1000.0;
	if (!ctl->json)
		printf("submitted %zu jobs in %.2f s (seed %llu)%s\n", njobs, submit_s,
		       (unsigned long long)seed, check ? "; waiting for results" : "");
	fflush(stdout);

	if (check) {
		int64_t deadline = vd_now_mono_ms() + (int64_t)(timeout * 1000);
		/* On a terminal, a progress line on stderr: jobs done and the one waited on. */
		struct bench_progress progress = {.njobs = njobs};
		ctl_progress_init(&progress.line);
		for (size_t i = 0; i < njobs; i++) {
			progress.done = i;
			if (jobs[i].id == NULL)
				continue;
			double left = (double)(deadline - vd_now_mono_ms()) / 1000.0;
			struct ctl_reply reply;
			rc = ctl_job_wait_progress(ctl, jobs[i].id, left > 0 ? left : 0,
						   progress.line.on ? bench_progress_cb : NULL,
						   &progress, &reply, &cause);
			/* Cleared while messages print, drawn again after them. */
			ctl_progress_end(&progress.line);
			if (rc == CTL_EXIT_UNREACHABLE) {
				fprintf(stderr, "vramctl: %s\n", cause);
				ctl_reply_cleanup(&reply);
				goto out;
			}
			const char *status = ctl_json_str(reply.json, "status");
			if (rc == CTL_EXIT_OK && ctl_job_status_is_final(status)) {
				jobs[i].status = xstrdup(status);
				jobs[i].wait_ms = (int64_t)json_number_value(json_object_get(
				    json_object_get(reply.json, "metrics"), "wait_ms"));
				if (strcmp(status, "complete") != 0 && errors_shown++ < 10)
					fprintf(stderr, "vramctl: job %s %s: %s\n", jobs[i].id,
						status,
						ctl_json_str(reply.json, "error") != NULL
						    ? ctl_json_str(reply.json, "error")
						    : "no error message");
			} else if (rc != CTL_EXIT_OK && errors_shown++ < 10) {
				fprintf(stderr, "vramctl: job %s: %s\n", jobs[i].id, cause);
			}
			rc = CTL_EXIT_OK;
			vd_free(cause);
			ctl_reply_cleanup(&reply);
			ctl_progress_show(&progress.line, i + 1, njobs, NULL);
		}
		ctl_progress_end(&progress.line);
	}
	double total_s = (double)(vd_now_mono_ms() - t0) / 1000.0;
	bench_summary(ctl, jobs, njobs, check, seed, submit_s, total_s);
	for (size_t i = 0; i < njobs; i++) {
		bool ok = jobs[i].id != NULL;
		if (check)
			ok = jobs[i].status != NULL && strcmp(jobs[i].status, "complete") == 0;
		if (!ok)
			rc = CTL_EXIT_API;
	}
	goto out;
usage:
	rc = ctl_usage_error(cmd, "%s", cause);
out:
	for (size_t i = 0; i < njobs; i++) {
		free(jobs[i].id);
		free(jobs[i].status);
	}
	free(jobs);
	free(models);
	ctl_reply_cleanup(&models_reply);
	free(cause);
	return rc;
}

const struct ctl_cmd ctl_cmd_bench = {
    .name = "bench",
    .usage = "(--batch | --random N | --spam N) [--delay S] [--no-check] [--seed N] "
	     "[--models M,...] [--timeout S]",
    .help = "submit test jobs and summarise how they ran",
    .details =
	"  --batch          four predefined jobs: qwen2.5:0.5b generate (high), llama3.2:1b\n"
	"                   chat (normal), all-minilm:latest embed (low), phi3:mini generate\n"
	"                   (normal)\n"
	"  --random N       N jobs over the installed models, random priorities and kinds\n"
	"  --spam N         N random jobs, submitted without checking results\n"
	"  --delay S        sleep S seconds between submissions\n"
	"  --no-check       do not wait for results\n"
	"  --seed N         random seed (printed, so a run can be repeated)\n"
	"  --models M,...   only these models (with --batch: replace the predefined ones)\n"
	"  --timeout S      stop waiting for results after S seconds (default 600)\n"
	"Exit 1 if any submission was rejected or, when checking, any job failed, was\n"
	"cancelled or did not finish in time.\n",
    .exec = cmd_bench_exec,
};
