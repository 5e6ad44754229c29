/*
 * bench-proxy.c: what vramd's front door adds to a request (issue 10). The same requests
 * are sent straight to ollama-sim and through a vramd in front of that same ollama-sim,
 * one at a time, each server on its own keep-alive connection (libcurl easy handles),
 * taking turns request by request (the order reverses every round) so that the shared
 * machine's noise falls on both columns alike. vramd then idles while ollama-sim answers
 * directly, so the empty prompt is also sent 100 in a row to each server in turn (back to
 * back, as a busy front door sees it). The requests:
 *
 *   not streamed  /api/generate with an empty prompt (Ollama's load request: the node
 *                 answers at once, with no generation timer, so this row is vramd's own
 *                 cost), /api/generate and /api/chat with num_predict 1 on the loaded
 *                 model, and OpenAI's /v1/chat/completions (max_tokens 1) through vramd
 *                 set against the direct /api/chat (ollama-sim has no /v1): p50 and p99;
 *   streamed      the longest reply ollama-sim writes (its replies are 20-120 tokens; the
 *                 prompts are searched for at start): time to the first chunk (an NDJSON
 *                 object, or a server-sent event on /v1), time to the last, and chunks per
 *                 second from the first chunk to the last.
 *
 * It runs twice, each time with a fresh ollama-sim and vramd on free loopback ports (the
 * simulated NVML reading the sim's machine file, as the integration tests run them), and
 * stops them. Run 1, ollama-sim at --time-scale (default 1000: a token costs 4 us), gives
 * the latencies: a reply is ready at the sim's first pacing tick. Run 2, at
 * --stream-time-scale (default 4: 1000 tokens/s), gives the chunk rate. ollama-sim paces
 * with a timer of at least 1 ms, which libevent's coarse clock turns into the kernel's
 * tick (4 ms on the development machine): a generated reply takes 1-4 ms however fast the
 * model, and tokens come a few per tick (run 2: about four), all of a reply at once in
 * run 1. The chunk rate within such a burst would measure how lines share a read, so run
 * 1 prints the time to the last chunk instead. ollama-sim runs with --keep-alive -1 so
 * the direct requests never unload the model; the loads it counts while measuring are
 * printed (they must be 0: a reload would be timed).
 *
 * The client's own cost (libcurl on a reused connection) is in both columns; the "floor"
 * row is a trivial request each server answers itself. Under the table, the CPU time
 * vramd and ollama-sim spent per request (/proc/PID/schedstat).
 *
 * usage: bench-proxy [--build DIR] [--requests N] [--streams N] [--long-streams N]
 *                    [--warmup N] [--time-scale S] [--stream-time-scale S] [--model M]
 *                    [--vramd PATH] [--keep] [-- VRAMD_ARGS...]
 * Arguments after "--" are passed to vramd (e.g. --max-batch-wait 0 --sync normal); --vramd
 * puts another vramd program in front (to compare two builds); --keep keeps the servers'
 * logs and data (a failed run always keeps them).
 */
#include "util.h"

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_BODY	    (1u << 20) /* a reply longer than this is an error */
#define BENCH_READY_S	    30	       /* a server must answer within this long */
#define BENCH_STOP_S	    10	       /* SIGTERM, then SIGKILL after this long */
#define BENCH_PROMPT_TRIALS 2000       /* prompts tried for the longest reply */
#define BENCH_LONGEST_REPLY 120	       /* ollama-sim's longest reply, in tokens */

struct bench_opts {
	char build[PATH_MAX];
	const char *vramd; /* the vramd program; NULL: BUILD/src/vramd */
	const char *model;
	int64_t requests;     /* not-streamed requests of each kind, measured */
	int64_t streams;      /* streamed requests of each kind in the first run */
	int64_t long_streams; /* streamed requests of each kind in the paced run */
	int64_t warmup;	      /* requests of each kind sent first and not counted */
	double time_scale;
	double stream_time_scale;
	bool keep; /* keep the logs and data directories */
	char **vramd_args;
	int nvramd_args;
};

/* --- Processes ------------------------------------------------------------------------- */

struct bench_proc {
	const char *name;
	pid_t pid;
	char log_path[PATH_MAX];
};

/* Starts argv with stdout and stderr to log_path, and env_name=env_value (if given) in its
 * environment. The child dies with the benchmark (PR_SET_PDEATHSIG), so an interrupted
 * run leaves no server behind. */
static void
bench_spawn(struct bench_proc *p, const char *name, char *const argv[], const char *log_path,
	    const char *env_name, const char *env_value)
{
	p->name = name;
	vd_strlcpy(p->log_path, log_path, sizeof(p->log_path));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bench-proxy: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || dup2(null, 0) < 0)
			_exit(126);
		if (env_name != NULL)
			setenv(env_name, env_value, 1);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	p->pid = pid;
}

static bool
bench_proc_alive(struct bench_proc *p)
{
	if (p->pid <= 0)
		return false;
	int status;
	if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
		fprintf(stderr, "bench-proxy: %s exited (status %d); its log: %s\n", p->name,
			status, p->log_path);
		p->pid = 0;
		return false;
	}
	return true;
}

static void
bench_sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void
bench_proc_stop(struct bench_proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGTERM);
	int64_t deadline = vd_now_mono_ms() + BENCH_STOP_S * 1000;
	while (waitpid(p->pid, NULL, WNOHANG) == 0) {
		if (vd_now_mono_ms() > deadline) {
			fprintf(stderr, "bench-proxy: %s ignored SIGTERM; killed\n", p->name);
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			break;
		}
		bench_sleep_ms(10);
	}
	p->pid = 0;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick). */
static int
bench_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "bench-proxy: no free loopback port: %s\n", strerror(errno));
		exit(1);
	}
	close(fd);
	return ntohs(sa.sin_port);
}

/* --- One HTTP connection ----------------------------------------------------------------- */

/* One server's keep-alive connection and the reply being read on it. A chunk is a
 * complete NDJSON line starting with '{' or a server-sent event line "data: {"; the times
 * of the first and the last one are taken as they arrive. */
struct bench_conn {
	CURL *curl;
	struct curl_slist *headers;
	char base[64]; /* http://127.0.0.1:PORT */
	char *body;
	size_t len;
	size_t scanned; /* bytes of body looked at for line ends */
	size_t line_start;
	bool overflow;
	int64_t chunks;
	int64_t first_ns;
	int64_t last_ns;
};

/* The timings of one request. */
struct bench_sample {
	int64_t total_ns;
	int64_t first_ns;  /* to the first chunk (streamed) */
	double chunk_rate; /* chunks per second from the first to the last (streamed) */
	int64_t chunks;
};

static size_t
bench_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct bench_conn *c = arg;
	size_t n = size * nmemb;
	if (c->len + n + 1 > BENCH_MAX_BODY) {
		c->overflow = true;
		return 0;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
	c->body[c->len] = '\0';
	bool completed = false;
	for (; c->scanned < c->len; c->scanned++) {
		if (c->body[c->scanned] != '\n')
			continue;
		const char *line = c->body + c->line_start;
		if (line[0] == '{' || strncmp(line, "data: {", 7) == 0) {
			c->chunks++;
			completed = true;
		}
		c->line_start = c->scanned + 1;
	}
	if (completed) {
		int64_t now = vd_now_mono_ns();
		if (c->first_ns == 0)
			c->first_ns = now;
		c->last_ns = now;
	}
	return n;
}

static void
bench_conn_init(struct bench_conn *c, int port)
{
	snprintf(c->base, sizeof(c->base), "http://127.0.0.1:%d", port);
	c->curl = curl_easy_init();
	c->body = xmalloc(BENCH_MAX_BODY);
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, bench_write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
}

static void
bench_conn_cleanup(struct bench_conn *c)
{
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->body);
	*c = (struct bench_conn){0};
}

/* One request: POST body to path (GET when body is NULL). Returns the HTTP status, or -1
 * when no reply came (*out is filled either way). The reply is in c->body. */
static int
bench_request(struct bench_conn *c, const char *path, const char *body, struct bench_sample *out)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	c->len = c->scanned = c->line_start = 0;
	c->overflow = false;
	c->chunks = c->first_ns = c->last_ns = 0;
	c->body[0] = '\0';
	int64_t start = vd_now_mono_ns();
	CURLcode rc = curl_easy_perform(c->curl);
	int64_t end = vd_now_mono_ns();
	long status = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	*out = (struct bench_sample){.total_ns = end - start, .chunks = c->chunks};
	if (c->first_ns > 0) {
		out->first_ns = c->first_ns - start;
		if (c->chunks > 1 && c->last_ns > c->first_ns)
			out->chunk_rate =
			    (double)(c->chunks - 1) * 1e9 / (double)(c->last_ns - c->first_ns);
	}
	if (rc != CURLE_OK || c->overflow)
		return -1;
	return (int)status;
}

/* --- The servers ---------------------------------------------------------------------------- */

struct bench_world {
	char dir[PATH_MAX]; /* logs, the machine file, vramd's data */
	double time_scale;
	struct bench_proc sim;
	struct bench_proc vramd;
	struct bench_conn direct; /* to ollama-sim */
	struct bench_conn proxy;  /* to vramd */
};

/* Waits until path answers on c with any HTTP status. */
static void
bench_wait_ready(struct bench_world *w, struct bench_conn *c, struct bench_proc *p,
		 const char *path)
{
	int64_t deadline = vd_now_mono_ms() + BENCH_READY_S * 1000;
	struct bench_sample s;
	while (bench_request(c, path, NULL, &s) <= 0) {
		if (!bench_proc_alive(p) || vd_now_mono_ms() > deadline) {
			fprintf(stderr,
				"bench-proxy: %s did not answer %s%s within %d s; logs in %s\n",
				p->name, c->base, path, BENCH_READY_S, w->dir);
			exit(1);
		}
		bench_sleep_ms(20);
	}
}

static void
bench_world_start(struct bench_world *w, const struct bench_opts *o, double time_scale)
{
	*w = (struct bench_world){.time_scale = time_scale};
	vd_strlcpy(w->dir, "/tmp/bench-proxy-XXXXXX", sizeof(w->dir));
	if (mkdtemp(w->dir) == NULL) {
		fprintf(stderr, "bench-proxy: mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	int sim_port = bench_free_port(), vramd_port = bench_free_port();
	char *sim_bin = xasprintf("%s/sim/ollama-sim", o->build);
	char *vramd_bin =
	    o->vramd != NULL ? xstrdup(o->vramd) : xasprintf("%s/src/vramd", o->build);
	char *nvml = xasprintf("%s/nvml/libnvidia-ml.so.1", o->build);
	char *state = xasprintf("%s/machine", w->dir);
	char *data = xasprintf("%s/data", w->dir);
	char *sim_log = xasprintf("%s/ollama-sim.log", w->dir);
	char *vramd_log = xasprintf("%s/vramd.log", w->dir);
	char *sim_listen = xasprintf("127.0.0.1:%d", sim_port);
	char *vramd_listen = xasprintf("127.0.0.1:%d", vramd_port);
	char *sim_url = xasprintf("http://%s", sim_listen);
	char *scale = xasprintf("%g", time_scale);

	char *sim_argv[] = {sim_bin, "--listen", sim_listen, "--time-scale", scale, "--state",
			    state,   "--gpus",	 "24GiB",    "--keep-alive", "-1",  NULL};
	bench_spawn(&w->sim, "ollama-sim", sim_argv, sim_log, NULL, NULL);
	bench_conn_init(&w->direct, sim_port);
	bench_wait_ready(w, &w->direct, &w->sim, "/");

	char *fixed[] = {vramd_bin,    "--listen", vramd_listen, "--ollama", sim_url,
			 "--data-dir", data,	   "--nvml-lib", nvml};
	size_t nfixed = VD_ARRAY_LEN(fixed);
	char **vramd_argv = xcalloc(nfixed + (size_t)o->nvramd_args + 1, sizeof(char *));
	memcpy(vramd_argv, fixed, sizeof(fixed));
	for (int i = 0; i < o->nvramd_args; i++)
		vramd_argv[nfixed + (size_t)i] = o->vramd_args[i];
	bench_spawn(&w->vramd, "vramd", vramd_argv, vramd_log, "OLLAMA_SIM_STATE", state);
	bench_conn_init(&w->proxy, vramd_port);
	bench_wait_ready(w, &w->proxy, &w->vramd, "/api/health");

	free(vramd_argv);
	free(sim_bin);
	free(vramd_bin);
	free(nvml);
	free(state);
	free(data);
	free(sim_log);
	free(vramd_log);
	free(sim_listen);
	free(vramd_listen);
	free(sim_url);
	free(scale);
}

static int
bench_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
bench_world_stop(struct bench_world *w, bool keep)
{
	bench_conn_cleanup(&w->proxy);
	bench_conn_cleanup(&w->direct);
	bench_proc_stop(&w->vramd);
	bench_proc_stop(&w->sim);
	if (keep)
		printf("logs and data of the run at scale %g: %s\n", w->time_scale, w->dir);
	else
		nftw(w->dir, bench_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ollama-sim's count of model loads (GET /sim/state), or -1. */
static int64_t
bench_sim_loads(struct bench_world *w)
{
	struct bench_sample s;
	if (bench_request(&w->direct, "/sim/state", NULL, &s) != 200)
		return -1;
	json_t *state = json_loads(w->direct.body, 0, NULL);
	json_t *loads = json_object_get(json_object_get(state, "counters"), "loads");
	int64_t n = json_is_integer(loads) ? (int64_t)json_integer_value(loads) : -1;
	json_decref(state);
	return n;
}

/* --- The requests ------------------------------------------------------------------------- */

enum bench_target { BENCH_DIRECT, BENCH_VRAMD };

/* One kind of request measured: where it goes and what it sends. */
struct bench_kind {
	const char *label;
	enum bench_target target;
	const char *path;
	char *body;
	bool streamed;
	const char *done_marker; /* in every good reply */
	int64_t nsamples;
	struct bench_sample *samples;
	int64_t expect_chunks; /* every streamed reply of this kind has as many */
};

#define BENCH_KIND(l, t, p, b, s, m)                                                               \
	{                                                                                          \
		.label = (l), .target = (t), .path = (p), .body = (b), .streamed = (s),            \
		.done_marker = (m)                                                                 \
	}

static struct bench_conn *
bench_conn_of(struct bench_world *w, enum bench_target t)
{
	return t == BENCH_DIRECT ? &w->direct : &w->proxy;
}

/* Sends one request of kind k; a failed or unexpected reply ends the benchmark, since
 * its timing would mean nothing. */
static void
bench_send(struct bench_world *w, struct bench_kind *k, struct bench_sample *out)
{
	struct bench_conn *c = bench_conn_of(w, k->target);
	struct bench_sample s;
	int status = bench_request(c, k->path, k->body, &s);
	const char *why = NULL;
	if (status != 200)
		why = "not 200";
	else if (strstr(c->body, k->done_marker) == NULL)
		why = "the reply is not complete";
	else if (k->streamed && (s.chunks < 2 || s.first_ns <= 0))
		why = "the reply came in fewer than 2 chunks";
	else if (k->streamed && k->expect_chunks > 0 && s.chunks != k->expect_chunks)
		why = "the reply has another number of chunks than the first one";
	if (why != NULL) {
		fprintf(stderr,
			"bench-proxy: %s %s%s: %s (status %d, %" PRId64 " chunks): %.300s\n"
			"logs in %s\n",
			k->label, c->base, k->path, why, status, s.chunks, c->body, w->dir);
		exit(1);
	}
	if (k->streamed && k->expect_chunks == 0)
		k->expect_chunks = s.chunks;
	if (out != NULL)
		*out = s;
}

/* Sends body to path on c until it answers 200 (vramd needs to learn the models and load
 * the model first). */
static void
bench_until_ok(struct bench_world *w, enum bench_target t, const char *path, const char *body)
{
	struct bench_conn *c = bench_conn_of(w, t);
	int64_t deadline = vd_now_mono_ms() + 60 * 1000;
	struct bench_sample s;
	int status;
	while ((status = bench_request(c, path, body, &s)) != 200) {
		if (vd_now_mono_ms() > deadline) {
			fprintf(stderr, "bench-proxy: %s%s still answers %d after 60 s: %.300s\n",
				c->base, path, status, c->body);
			exit(1);
		}
		bench_sleep_ms(50);
	}
}

/* A prompt (chat: false) or chat message (chat: true) for which ollama-sim writes its
 * longest reply: its text depends only on the model and the prompt. Returns the prompt
 * (caller frees) and its length in tokens in *tokens. */
static char *
bench_long_prompt(struct bench_world *w, const char *model, bool chat, int64_t *tokens,
		  double *tokens_per_s)
{
	char *best = NULL;
	*tokens = 0;
	for (int i = 0; i < BENCH_PROMPT_TRIALS && *tokens < BENCH_LONGEST_REPLY; i++) {
		char prompt[64];
		snprintf(prompt, sizeof(prompt), "tell me a long story %d", i);
		char *body =
		    chat ? xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
				     "\"content\":\"%s\"}],\"stream\":false}",
				     model, prompt)
			 : xasprintf("{\"model\":\"%s\",\"prompt\":\"%s\",\"stream\":false}", model,
				     prompt);
		struct bench_sample s;
		int status =
		    bench_request(&w->direct, chat ? "/api/chat" : "/api/generate", body, &s);
		free(body);
		json_t *reply = status == 200 ? json_loads(w->direct.body, 0, NULL) : NULL;
		json_t *count = json_object_get(reply, "eval_count");
		json_t *ns = json_object_get(reply, "eval_duration");
		if (json_is_integer(count) && json_integer_value(count) > *tokens) {
			*tokens = (int64_t)json_integer_value(count);
			free(best);
			best = xstrdup(prompt);
			if (json_is_integer(ns) && json_integer_value(ns) > 0)
				*tokens_per_s =
				    (double)*tokens * 1e9 / (double)json_integer_value(ns);
		}
		json_decref(reply);
	}
	if (best == NULL) {
		fprintf(stderr, "bench-proxy: ollama-sim gave no reply with eval_count\n");
		exit(1);
	}
	return best;
}

/* Runs warmup requests of every kind, then n measured ones each. With block 1 the kinds
 * take turns request by request; with a larger block each sends that many back to back
 * before the next kind's turn. The order of the kinds reverses every round. */
static void
bench_measure(struct bench_world *w, struct bench_kind *kinds, size_t nkinds, int64_t n,
	      int64_t warmup, int64_t block)
{
	for (size_t k = 0; k < nkinds; k++) {
		kinds[k].samples = xcalloc((size_t)n, sizeof(struct bench_sample));
		kinds[k].nsamples = 0;
	}
	int64_t round = 0;
	for (int64_t from = -warmup; from < n; from += block, round++) {
		for (size_t i = 0; i < nkinds; i++) {
			size_t k = round % 2 == 0 ? i : nkinds - 1 - i;
			for (int64_t j = from; j < from + block && j < n; j++)
				bench_send(w, &kinds[k], j >= 0 ? &kinds[k].samples[j] : NULL);
		}
	}
	for (size_t k = 0; k < nkinds; k++)
		kinds[k].nsamples = n;
}

/* --- Statistics and the table ------------------------------------------------------------- */

static int
bench_cmp_double_cb(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of one field of k's samples, in ms for times. */
enum bench_field { BENCH_TOTAL_MS, BENCH_FIRST_MS, BENCH_RATE };

static double
bench_pct(const struct bench_kind *k, enum bench_field f, double p)
{
	if (k->nsamples == 0)
		return 0;
	double *v = xcalloc((size_t)k->nsamples, sizeof(double));
	for (int64_t i = 0; i < k->nsamples; i++) {
		const struct bench_sample *s = &k->samples[i];
		v[i] = f == BENCH_TOTAL_MS   ? (double)s->total_ns / 1e6
		       : f == BENCH_FIRST_MS ? (double)s->first_ns / 1e6
					     : s->chunk_rate;
	}
	qsort(v, (size_t)k->nsamples, sizeof(double), bench_cmp_double_cb);
	int64_t rank = (int64_t)(p / 100.0 * (double)k->nsamples + 0.999999);
	if (rank < 1)
		rank = 1;
	double x = v[rank - 1];
	free(v);
	return x;
}

/* --- The two runs ------------------------------------------------------------------------- */

#define BENCH_ADDED_P50_MS 0.3	/* issue 10: at most 0.3 ms added at p50 */
#define BENCH_STREAM_RATIO 0.95 /* issue 10: at least 0.95 x the direct chunk rate */

/* The request bodies: a one-token reply, and the long streamed replies. */
struct bench_bodies {
	char *generate_load;
	char *generate_one;
	char *chat_one;
	char *openai_one;
	char *generate_long;
	char *chat_long;
	char *openai_long;
	int64_t generate_tokens;
	int64_t chat_tokens;
	double tokens_per_s; /* the model's pace in simulated time (eval_count / eval_duration) */
};

static void
bench_bodies_make(struct bench_bodies *b, const char *model, const char *gen_prompt,
		  const char *chat_prompt)
{
	b->generate_load = xasprintf("{\"model\":\"%s\",\"prompt\":\"\",\"stream\":false}", model);
	b->generate_one = xasprintf("{\"model\":\"%s\",\"prompt\":\"hello\",\"stream\":false,"
				    "\"options\":{\"num_predict\":1}}",
				    model);
	b->chat_one = xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
				"\"hello\"}],\"stream\":false,\"options\":{\"num_predict\":1}}",
				model);
	b->openai_one = xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
				  "\"hello\"}],\"max_tokens\":1}",
				  model);
	b->generate_long = xasprintf("{\"model\":\"%s\",\"prompt\":\"%s\"}", model, gen_prompt);
	b->chat_long =
	    xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
		      model, chat_prompt);
	b->openai_long = xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
				   "\"%s\"}],\"stream\":true}",
				   model, chat_prompt);
}

static void
bench_bodies_free(struct bench_bodies *b)
{
	free(b->generate_load);
	free(b->generate_one);
	free(b->chat_one);
	free(b->openai_one);
	free(b->generate_long);
	free(b->chat_long);
	free(b->openai_long);
}

/* Every kind of request, in groups measured together (interleaved). */
enum bench_kind_id {
	BENCH_FLOOR_DIRECT,
	BENCH_FLOOR_VRAMD,
	BENCH_LOAD_DIRECT,
	BENCH_LOAD_VRAMD,
	BENCH_GEN_DIRECT,
	BENCH_GEN_VRAMD,
	BENCH_CHAT_DIRECT,
	BENCH_CHAT_VRAMD,
	BENCH_V1_VRAMD,
	BENCH_B2B_DIRECT,
	BENCH_B2B_VRAMD,
	BENCH_SGEN_DIRECT,
	BENCH_SGEN_VRAMD,
	BENCH_SCHAT_DIRECT,
	BENCH_SCHAT_VRAMD,
	BENCH_SV1_VRAMD,
	BENCH_NKINDS
};

static void
bench_kinds_make(struct bench_kind *k, const struct bench_bodies *b)
{
	const struct bench_kind kinds[BENCH_NKINDS] = {
	    /* The floor: a trivial request each server answers itself. */
	    [BENCH_FLOOR_DIRECT] =
		BENCH_KIND("floor", BENCH_DIRECT, "/api/version", NULL, false, "version"),
	    [BENCH_FLOOR_VRAMD] =
		BENCH_KIND("floor", BENCH_VRAMD, "/api/health", NULL, false, "status"),
	    [BENCH_LOAD_DIRECT] = BENCH_KIND("load", BENCH_DIRECT, "/api/generate",
					     b->generate_load, false, "\"done\":true"),
	    [BENCH_LOAD_VRAMD] = BENCH_KIND("load", BENCH_VRAMD, "/api/generate", b->generate_load,
					    false, "\"done\":true"),
	    [BENCH_GEN_DIRECT] = BENCH_KIND("generate", BENCH_DIRECT, "/api/generate",
					    b->generate_one, false, "\"done\":true"),
	    [BENCH_GEN_VRAMD] = BENCH_KIND("generate", BENCH_VRAMD, "/api/generate",
					   b->generate_one, false, "\"done\":true"),
	    [BENCH_CHAT_DIRECT] =
		BENCH_KIND("chat", BENCH_DIRECT, "/api/chat", b->chat_one, false, "\"done\":true"),
	    [BENCH_CHAT_VRAMD] =
		BENCH_KIND("chat", BENCH_VRAMD, "/api/chat", b->chat_one, false, "\"done\":true"),
	    [BENCH_V1_VRAMD] = BENCH_KIND("/v1 chat", BENCH_VRAMD, "/v1/chat/completions",
					  b->openai_one, false, "\"choices\""),
	    [BENCH_B2B_DIRECT] = BENCH_KIND("load back to back", BENCH_DIRECT, "/api/generate",
					    b->generate_load, false, "\"done\":true"),
	    [BENCH_B2B_VRAMD] = BENCH_KIND("load back to back", BENCH_VRAMD, "/api/generate",
					   b->generate_load, false, "\"done\":true"),
	    [BENCH_SGEN_DIRECT] = BENCH_KIND("generate streamed", BENCH_DIRECT, "/api/generate",
					     b->generate_long, true, "\"done\":true"),
	    [BENCH_SGEN_VRAMD] = BENCH_KIND("generate streamed", BENCH_VRAMD, "/api/generate",
					    b->generate_long, true, "\"done\":true"),
	    [BENCH_SCHAT_DIRECT] = BENCH_KIND("chat streamed", BENCH_DIRECT, "/api/chat",
					      b->chat_long, true, "\"done\":true"),
	    [BENCH_SCHAT_VRAMD] = BENCH_KIND("chat streamed", BENCH_VRAMD, "/api/chat",
					     b->chat_long, true, "\"done\":true"),
	    [BENCH_SV1_VRAMD] = BENCH_KIND("/v1 chat streamed", BENCH_VRAMD, "/v1/chat/completions",
					   b->openai_long, true, "data: [DONE]"),
	};
	memcpy(k, kinds, sizeof(kinds));
}

/* CPU time a process has run so far (its main thread: vramd and ollama-sim are single
 * threaded), in ns, from /proc/PID/schedstat; -1 if unreadable. */
static int64_t
bench_cpu_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long long ns = -1;
	if (fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

/* One run: a fresh ollama-sim and vramd at one time scale, the kinds measured, and the CPU
 * each server spent per request in each group. */
struct bench_run {
	double time_scale;
	struct bench_kind kinds[BENCH_NKINDS];
	double vramd_cpu_us[4]; /* per request through vramd, by group */
	double sim_cpu_us[4];	/* per request ollama-sim served (direct or from vramd) */
	int64_t loads;		/* ollama-sim's model loads during the measured requests */
};

enum bench_group { BENCH_GROUP_FLOOR, BENCH_GROUP_ONE, BENCH_GROUP_B2B, BENCH_GROUP_STREAM };

#define BENCH_B2B_BLOCK 100 /* back-to-back requests to one server before the other's turn */

/* The kinds measured together, and how many of one kind go in a row. */
static const struct {
	enum bench_kind_id first, last;
	int64_t block;
} bench_groups[] = {
    [BENCH_GROUP_FLOOR] = {BENCH_FLOOR_DIRECT, BENCH_FLOOR_VRAMD, 1},
    [BENCH_GROUP_ONE] = {BENCH_LOAD_DIRECT, BENCH_V1_VRAMD, 1},
    [BENCH_GROUP_B2B] = {BENCH_B2B_DIRECT, BENCH_B2B_VRAMD, BENCH_B2B_BLOCK},
    [BENCH_GROUP_STREAM] = {BENCH_SGEN_DIRECT, BENCH_SV1_VRAMD, 1},
};

/* Measures one group of kinds and what the servers' CPU time grew by meanwhile. */
static void
bench_measure_group(struct bench_world *w, struct bench_run *r, enum bench_group g, int64_t n,
		    int64_t warmup)
{
	struct bench_kind *k = &r->kinds[bench_groups[g].first];
	size_t nk = (size_t)(bench_groups[g].last - bench_groups[g].first) + 1;
	int64_t vramd0 = bench_cpu_ns(w->vramd.pid), sim0 = bench_cpu_ns(w->sim.pid);
	bench_measure(w, k, nk, n, warmup, bench_groups[g].block);
	int64_t vramd1 = bench_cpu_ns(w->vramd.pid), sim1 = bench_cpu_ns(w->sim.pid);
	int64_t through = 0, at_sim = 0;
	for (size_t i = 0; i < nk; i++) {
		through += k[i].target == BENCH_VRAMD ? 1 : 0;
		at_sim += g == BENCH_GROUP_FLOOR && k[i].target == BENCH_VRAMD ? 0 : 1;
	}
	int64_t requests = n + warmup;
	r->vramd_cpu_us[g] = vramd0 < 0 || vramd1 < 0
				 ? -1
				 : (double)(vramd1 - vramd0) / 1e3 / (double)(through * requests);
	r->sim_cpu_us[g] =
	    sim0 < 0 || sim1 < 0 ? -1 : (double)(sim1 - sim0) / 1e3 / (double)(at_sim * requests);
}

static void
bench_free_kinds(struct bench_kind *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(k[i].samples);
}

/* Loads the model on ollama-sim directly, then through vramd (which adopts it or waits
 * for its own load), so that nothing measured waits for a load. */
static void
bench_warm(struct bench_world *w, const struct bench_bodies *b)
{
	bench_until_ok(w, BENCH_DIRECT, "/api/generate", b->generate_one);
	bench_until_ok(w, BENCH_VRAMD, "/api/generate", b->generate_one);
}

/* The first run: latencies and time to the first chunk, with ollama-sim fast. */
static void
bench_run_latency(const struct bench_opts *o, struct bench_bodies *b, struct bench_run *r)
{
	struct bench_world w;
	bench_world_start(&w, o, o->time_scale);
	bench_bodies_make(b, o->model, "hello", "hello");
	bench_warm(&w, b);
	char *gen_prompt =
	    bench_long_prompt(&w, o->model, false, &b->generate_tokens, &b->tokens_per_s);
	char *chat_prompt =
	    bench_long_prompt(&w, o->model, true, &b->chat_tokens, &b->tokens_per_s);
	bench_bodies_free(b);
	bench_bodies_make(b, o->model, gen_prompt, chat_prompt);
	free(gen_prompt);
	free(chat_prompt);

	r->time_scale = o->time_scale;
	bench_kinds_make(r->kinds, b);
	int64_t loads = bench_sim_loads(&w);
	bench_measure_group(&w, r, BENCH_GROUP_FLOOR, o->requests, o->warmup);
	bench_measure_group(&w, r, BENCH_GROUP_ONE, o->requests, o->warmup);
	bench_measure_group(&w, r, BENCH_GROUP_B2B, o->requests, o->warmup);
	bench_measure_group(&w, r, BENCH_GROUP_STREAM, o->streams, o->warmup);
	r->loads = bench_sim_loads(&w) - loads;
	bench_world_stop(&w, o->keep);
}

/* The second run: the chunk rate of the long streams, paced by ollama-sim. */
static void
bench_run_stream(const struct bench_opts *o, const struct bench_bodies *b, struct bench_run *r)
{
	struct bench_world w;
	bench_world_start(&w, o, o->stream_time_scale);
	bench_warm(&w, b);
	r->time_scale = o->stream_time_scale;
	bench_kinds_make(r->kinds, b);
	int64_t loads = bench_sim_loads(&w);
	/* Two warm-up rounds: these streams are long, and the model is warm already. */
	bench_measure_group(&w, r, BENCH_GROUP_STREAM, o->long_streams, 2);
	r->loads = bench_sim_loads(&w) - loads;
	bench_world_stop(&w, o->keep);
}

/* The table: one row per figure, the direct and the vramd column from two kinds. */
enum bench_row_type { BENCH_ROW_ADDED_MS, BENCH_ROW_RATIO };

static const struct bench_row {
	const char *label;
	int run; /* 0: the latency run, 1: the paced stream run */
	enum bench_field field;
	double pct;
	enum bench_kind_id direct, vramd;
	double target; /* ms added at most (BENCH_ROW_ADDED_MS) or ratio at least; 0: none */
} bench_rows[] = {
    {"floor: GET /api/version (sim), /api/health (vramd), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_FLOOR_DIRECT, BENCH_FLOOR_VRAMD, 0},
    {"/api/generate empty prompt (answered at once), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_LOAD_DIRECT, BENCH_LOAD_VRAMD, BENCH_ADDED_P50_MS},
    {"/api/generate empty prompt (answered at once), p99 ms", 0, BENCH_TOTAL_MS, 99,
     BENCH_LOAD_DIRECT, BENCH_LOAD_VRAMD, 0},
    {"/api/generate empty prompt, back to back (100 in a row), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_B2B_DIRECT, BENCH_B2B_VRAMD, BENCH_ADDED_P50_MS},
    {"/api/generate empty prompt, back to back (100 in a row), p99 ms", 0, BENCH_TOTAL_MS, 99,
     BENCH_B2B_DIRECT, BENCH_B2B_VRAMD, 0},
    {"/api/generate num_predict 1, p50 ms", 0, BENCH_TOTAL_MS, 50, BENCH_GEN_DIRECT,
     BENCH_GEN_VRAMD, BENCH_ADDED_P50_MS},
    {"/api/generate num_predict 1, p99 ms", 0, BENCH_TOTAL_MS, 99, BENCH_GEN_DIRECT,
     BENCH_GEN_VRAMD, 0},
    {"/api/chat num_predict 1, p50 ms", 0, BENCH_TOTAL_MS, 50, BENCH_CHAT_DIRECT, BENCH_CHAT_VRAMD,
     BENCH_ADDED_P50_MS},
    {"/api/chat num_predict 1, p99 ms", 0, BENCH_TOTAL_MS, 99, BENCH_CHAT_DIRECT, BENCH_CHAT_VRAMD,
     0},
    {"/v1/chat/completions max_tokens 1 (direct: /api/chat), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_CHAT_DIRECT, BENCH_V1_VRAMD, BENCH_ADDED_P50_MS},
    {"/v1/chat/completions max_tokens 1 (direct: /api/chat), p99 ms", 0, BENCH_TOTAL_MS, 99,
     BENCH_CHAT_DIRECT, BENCH_V1_VRAMD, 0},
    {"/api/generate streamed: first chunk, p50 ms", 0, BENCH_FIRST_MS, 50, BENCH_SGEN_DIRECT,
     BENCH_SGEN_VRAMD, 0},
    {"/api/generate streamed: first chunk, p99 ms", 0, BENCH_FIRST_MS, 99, BENCH_SGEN_DIRECT,
     BENCH_SGEN_VRAMD, 0},
    {"/api/generate streamed: whole reply (one burst), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_SGEN_DIRECT, BENCH_SGEN_VRAMD, 0},
    {"/api/chat streamed: first chunk, p50 ms", 0, BENCH_FIRST_MS, 50, BENCH_SCHAT_DIRECT,
     BENCH_SCHAT_VRAMD, 0},
    {"/api/chat streamed: first chunk, p99 ms", 0, BENCH_FIRST_MS, 99, BENCH_SCHAT_DIRECT,
     BENCH_SCHAT_VRAMD, 0},
    {"/api/chat streamed: whole reply (one burst), p50 ms", 0, BENCH_TOTAL_MS, 50,
     BENCH_SCHAT_DIRECT, BENCH_SCHAT_VRAMD, 0},
    {"/v1/chat/completions streamed (direct: /api/chat): first chunk, p50 ms", 0, BENCH_FIRST_MS,
     50, BENCH_SCHAT_DIRECT, BENCH_SV1_VRAMD, 0},
    {"/v1/chat/completions streamed (direct: /api/chat): first chunk, p99 ms", 0, BENCH_FIRST_MS,
     99, BENCH_SCHAT_DIRECT, BENCH_SV1_VRAMD, 0},
    {"/v1/chat/completions streamed (direct: /api/chat): whole reply (one burst), p50 ms", 0,
     BENCH_TOTAL_MS, 50, BENCH_SCHAT_DIRECT, BENCH_SV1_VRAMD, 0},
    {"/api/generate streamed, paced: first chunk, p50 ms", 1, BENCH_FIRST_MS, 50, BENCH_SGEN_DIRECT,
     BENCH_SGEN_VRAMD, 0},
    {"/api/chat streamed, paced: first chunk, p50 ms", 1, BENCH_FIRST_MS, 50, BENCH_SCHAT_DIRECT,
     BENCH_SCHAT_VRAMD, 0},
    {"/v1/chat/completions streamed, paced (direct: /api/chat): first chunk, p50 ms", 1,
     BENCH_FIRST_MS, 50, BENCH_SCHAT_DIRECT, BENCH_SV1_VRAMD, 0},
    {"/api/generate streamed, paced: chunks/s, p50", 1, BENCH_RATE, 50, BENCH_SGEN_DIRECT,
     BENCH_SGEN_VRAMD, BENCH_STREAM_RATIO},
    {"/api/chat streamed, paced: chunks/s, p50", 1, BENCH_RATE, 50, BENCH_SCHAT_DIRECT,
     BENCH_SCHAT_VRAMD, BENCH_STREAM_RATIO},
    {"/v1/chat/completions streamed, paced (direct: /api/chat): chunks/s, p50", 1, BENCH_RATE, 50,
     BENCH_SCHAT_DIRECT, BENCH_SV1_VRAMD, BENCH_STREAM_RATIO},
    {"/api/generate streamed, paced: whole reply, p50 ms", 1, BENCH_TOTAL_MS, 50, BENCH_SGEN_DIRECT,
     BENCH_SGEN_VRAMD, 0},
};

static void
bench_print(const struct bench_opts *o, const struct bench_bodies *b,
	    const struct bench_run runs[2])
{
	printf("\nrun 1: ollama-sim at time scale %g; %" PRId64 " not-streamed and %" PRId64
	       " streamed requests of each kind measured, after %" PRId64 " of each not counted\n",
	       runs[0].time_scale, o->requests, o->streams, o->warmup);
	printf("run 2 (paced): ollama-sim at time scale %g, %.0f tokens/s (the model's %.0f per "
	       "simulated second); %" PRId64 " streamed requests of each kind, after 2\n",
	       runs[1].time_scale, b->tokens_per_s * runs[1].time_scale, b->tokens_per_s,
	       o->long_streams);
	printf("streamed replies: %" PRId64 " tokens (generate), %" PRId64
	       " (chat), plus the final chunk; model loads by ollama-sim while measuring: %" PRId64
	       " and %" PRId64 "%s\n\n",
	       b->generate_tokens, b->chat_tokens, runs[0].loads, runs[1].loads,
	       runs[0].loads != 0 || runs[1].loads != 0
		   ? " (NOT 0: a reload was timed; see the logs with --keep)"
		   : "");
	printf("| measure | direct | through vramd | difference / ratio | target | met? |\n");
	printf("|---|--:|--:|--:|--:|:-:|\n");
	for (size_t i = 0; i < VD_ARRAY_LEN(bench_rows); i++) {
		const struct bench_row *row = &bench_rows[i];
		const struct bench_run *r = &runs[row->run];
		double direct = bench_pct(&r->kinds[row->direct], row->field, row->pct);
		double vramd = bench_pct(&r->kinds[row->vramd], row->field, row->pct);
		char target[32] = "-", met[8] = "-";
		if (row->field == BENCH_RATE) {
			double ratio = direct > 0 ? vramd / direct : 0;
			if (row->target > 0) {
				snprintf(target, sizeof(target), ">= %.2f x", row->target);
				vd_strlcpy(met, ratio >= row->target ? "yes" : "no", sizeof(met));
			}
			printf("| %s | %.0f | %.0f | %.3f x | %s | %s |\n", row->label, direct,
			       vramd, ratio, target, met);
		} else {
			double diff = vramd - direct;
			if (row->target > 0) {
				snprintf(target, sizeof(target), "<= +%.2f", row->target);
				vd_strlcpy(met, diff <= row->target ? "yes" : "no", sizeof(met));
			}
			printf("| %s | %.3f | %.3f | %+.3f | %s | %s |\n", row->label, direct,
			       vramd, diff, target, met);
		}
	}
	printf("\nCPU time per request (/proc/PID/schedstat over the measured and warm-up "
	       "requests; background polling included):\n");
	for (int server = 0; server < 2; server++) {
		const double *cpu = server == 0 ? runs[0].vramd_cpu_us : runs[0].sim_cpu_us;
		printf("  %s: %.0f us per not-streamed request (taking turns), %.0f us per empty "
		       "prompt back to back, %.0f us per streamed reply (run 1), %.0f us per "
		       "streamed reply (run 2), %.0f us per %s\n",
		       server == 0 ? "vramd" : "ollama-sim", cpu[BENCH_GROUP_ONE],
		       cpu[BENCH_GROUP_B2B], cpu[BENCH_GROUP_STREAM],
		       server == 0 ? runs[1].vramd_cpu_us[BENCH_GROUP_STREAM]
				   : runs[1].sim_cpu_us[BENCH_GROUP_STREAM],
		       cpu[BENCH_GROUP_FLOOR], server == 0 ? "/api/health" : "/api/version");
	}
}

/* --- main --------------------------------------------------------------------------------
 */

static void
bench_usage(void)
{
	fprintf(stderr,
		"usage: bench-proxy [--build DIR] [--requests N] [--streams N] "
		"[--long-streams N]\n"
		"                   [--warmup N] [--time-scale S] [--stream-time-scale S]\n"
		"                   [--model M] [--vramd PATH] [--keep] [-- VRAMD_ARGS...]\n");
	exit(2);
}

/* The build directory holding this program: DIR/bench/bench-proxy. */
static void
bench_default_build(char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		vd_strlcpy(out, "build", size);
		return;
	}
	exe[n] = '\0';
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
	}
	vd_strlcpy(out, exe, size);
}

int
main(int argc, char **argv)
{
	struct bench_opts o = {
	    .model = "smollm:360m",
	    .requests = 2000,
	    .streams = 300,
	    .long_streams = 20,
	    .warmup = 50,
	    .time_scale = 1000,
	    .stream_time_scale = 4,
	};
	bench_default_build(o.build, sizeof(o.build));
	static const struct option opts[] = {{"build", required_argument, NULL, 'b'},
					     {"requests", required_argument, NULL, 'n'},
					     {"streams", required_argument, NULL, 's'},
					     {"long-streams", required_argument, NULL, 'l'},
					     {"warmup", required_argument, NULL, 'w'},
					     {"time-scale", required_argument, NULL, 't'},
					     {"stream-time-scale", required_argument, NULL, 'T'},
					     {"model", required_argument, NULL, 'm'},
					     {"vramd", required_argument, NULL, 'v'},
					     {"keep", no_argument, NULL, 'k'},
					     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *cause = NULL;
		int rc = 0;
		switch (ch) {
		case 'b':
			vd_strlcpy(o.build, optarg, sizeof(o.build));
			break;
		case 'n':
			rc = vd_parse_int64(optarg, 1, 10000000, &o.requests, "--requests", &cause);
			break;
		case 's':
			rc = vd_parse_int64(optarg, 1, 10000000, &o.streams, "--streams", &cause);
			break;
		case 'l':
			rc = vd_parse_int64(optarg, 1, 100000, &o.long_streams, "--long-streams",
					    &cause);
			break;
		case 'w':
			rc = vd_parse_int64(optarg, 0, 100000, &o.warmup, "--warmup", &cause);
			break;
		case 't':
		case 'T': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end != '\0' || !(v > 0 && v <= 1e9))
				rc = vd_fail(&cause, -EINVAL, "%s: a number above 0, not \"%s\"",
					     ch == 't' ? "--time-scale" : "--stream-time-scale",
					     optarg);
			else if (ch == 't')
				o.time_scale = v;
			else
				o.stream_time_scale = v;
			break;
		}
		case 'm':
			o.model = optarg;
			break;
		case 'v':
			o.vramd = optarg;
			break;
		case 'k':
			o.keep = true;
			break;
		default:
			bench_usage();
		}
		if (rc < 0) {
			fprintf(stderr, "bench-proxy: %s\n", cause);
			free(cause);
			return 2;
		}
	}
	o.vramd_args = argv + optind;
	o.nvramd_args = argc - optind;
	curl_global_init(CURL_GLOBAL_DEFAULT);

	printf("bench-proxy: %s, model %s; %s with its defaults", o.build, o.model,
	       o.vramd != NULL ? o.vramd : "vramd");
	for (int i = 0; i < o.nvramd_args; i++)
		printf("%s%s", i == 0 ? " and " : " ", o.vramd_args[i]);
	printf("; ollama-sim --gpus 24GiB --keep-alive -1\n");
	fflush(stdout);

	struct bench_bodies b = {0};
	struct bench_run runs[2] = {0};
	bench_run_latency(&o, &b, &runs[0]);
	bench_run_stream(&o, &b, &runs[1]);
	bench_print(&o, &b, runs);
	for (size_t i = 0; i < VD_ARRAY_LEN(runs); i++)
		bench_free_kinds(runs[i].kinds, BENCH_NKINDS);
	bench_bodies_free(&b);
	curl_global_cleanup();
	return 0;
}
