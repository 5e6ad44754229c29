/*
 * gpu-smi.c: the nvidia-smi telemetry provider, the fallback when NVML cannot be
 * loaded (shared/reference/nvml.md section 3). Each sample runs
 *     nvidia-smi --query-gpu=GPU_SMI_QUERY_GPU --format=csv,noheader,nounits
 * and then the --query-compute-apps query, each as a child process whose stdout is a
 * pipe watched by the libevent loop: nothing here blocks or sleeps. A child that runs
 * longer than the timeout (5 s) is killed with SIGKILL and the sample fails; children
 * are reaped with waitpid(WNOHANG) from a short poll timer, so a child stuck in the
 * kernel never blocks the loop. Exit codes are checked before parsing: 9 = driver not
 * loaded and 12 = no NVML fail the sample; 15 = a GPU fell off the bus: the lines of
 * the healthy GPUs are kept and the monitor marks the missing one lost.
 *
 * The parsers are pure functions (declared in gpu.h) so tests and the fuzzer call them
 * on recorded outputs. Called by gpu.c through gpu_provider_smi.
 */
#include "buf.h"
#include "gpu.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#define SMI_OUTPUT_CAP	     (1024 * 1024)
#define SMI_REAP_POLL_MS     5
#define SMI_MAX_ZOMBIES	     8
#define SMI_GPU_FIELDS	     16
#define SMI_APP_FIELDS	     4
#define SMI_EXIT_NO_DRIVER   9
#define SMI_EXIT_NO_NVML     12
#define SMI_EXIT_GPU_IS_LOST 15

extern char **environ;

/* --- parsers ------------------------------------------------------------------------------ */

struct smi_field {
	const char *p;
	size_t len;
};

/* Trims spaces and a trailing CR. */
static struct smi_field
smi_trim(const char *p, size_t len)
{
	while (len > 0 && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\r' || p[len - 1] == '\t'))
		len--;
	return (struct smi_field){p, len};
}

/* Copies a field into a NUL-terminated buffer (truncating), for the number parsers. */
static void
smi_copy(const struct smi_field *f, char *buf, size_t size)
{
	size_t n = f->len < size - 1 ? f->len : size - 1;
	memcpy(buf, f->p, n);
	buf[n] = '\0';
}

static bool
smi_is_unknown(const struct smi_field *f)
{
	return f->len == 0 || f->p[0] == '[';
}

/* A non-negative decimal number (fractions allowed); false for "[N/A]", "nan", "-1". */
static bool
smi_number(const struct smi_field *f, double *out)
{
	char buf[48];
	if (smi_is_unknown(f) || f->len >= sizeof(buf))
		return false;
	smi_copy(f, buf, sizeof(buf));
	for (const char *c = buf; *c; c++)
		if (!((*c >= '0' && *c <= '9') || *c == '.'))
			return false;
	double v;
	if (vd_parse_double(buf, 0, 1e18, &v, "value", NULL) != 0)
		return false;
	*out = v;
	return true;
}

static bool
smi_uint(const struct smi_field *f, uint32_t max, uint32_t *out)
{
	double v;
	if (!smi_number(f, &v) || v > max)
		return false;
	*out = (uint32_t)(v + 0.5);
	return true;
}

static bool
smi_mib(const struct smi_field *f, uint64_t *bytes)
{
	double v;
	if (!smi_number(f, &v) || v > 1e12)
		return false;
	*bytes = (uint64_t)(v * (double)VD_MIB);
	return true;
}

static bool
smi_watts(const struct smi_field *f, uint32_t *mw)
{
	double v;
	if (!smi_number(f, &v) || v > 1e6)
		return false;
	*mw = (uint32_t)(v * 1000.0 + 0.5);
	return true;
}

static bool
smi_hex(const struct smi_field *f, uint64_t *out)
{
	char buf[24];
	if (smi_is_unknown(f) || f->len < 3 || f->len >= sizeof(buf) || f->p[0] != '0' ||
	    (f->p[1] != 'x' && f->p[1] != 'X'))
		return false;
	smi_copy(f, buf, sizeof(buf));
	uint64_t v = 0;
	for (const char *c = buf + 2; *c; c++) {
		int d;
		if (*c >= '0' && *c <= '9')
			d = *c - '0';
		else if (*c >= 'a' && *c <= 'f')
			d = *c - 'a' + 10;
		else if (*c >= 'A' && *c <= 'F')
			d = *c - 'A' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}

/*
 * Splits a line into nfields fields separated by ", ", where field free_field (the
 * name) may itself contain ", ": fields before it are taken from the left, fields after
 * it from the right. Returns false if there are too few separators.
 */
static bool
smi_split(const char *line, size_t len, struct smi_field *fields, size_t nfields, size_t free_field)
{
	const char *p = line, *end = line + len;
	for (size_t i = 0; i < free_field; i++) {
		const char *sep = NULL;
		for (const char *c = p; c + 1 < end; c++) {
			if (c[0] == ',' && c[1] == ' ') {
				sep = c;
				break;
			}
		}
		if (sep == NULL)
			return false;
		fields[i] = smi_trim(p, (size_t)(sep - p));
		p = sep + 2;
	}
	const char *q = end;
	for (size_t i = nfields - 1; i > free_field; i--) {
		const char *sep = NULL;
		for (const char *c = q - 2; c >= p; c--) {
			if (c[0] == ',' && c[1] == ' ') {
				sep = c;
				break;
			}
		}
		if (sep == NULL)
			return false;
		fields[i] = smi_trim(sep + 2, (size_t)(q - sep - 2));
		q = sep;
	}
	if (q < p)
		return false;
	fields[free_field] = smi_trim(p, (size_t)(q - p));
	return true;
}

/* Finds the next line of [*pos, end): sets *line and *line_len and advances *pos. */
static bool
smi_next_line(const char **pos, const char *end, const char **line, size_t *line_len)
{
	if (*pos >= end)
		return false;
	const char *nl = memchr(*pos, '\n', (size_t)(end - *pos));
	*line = *pos;
	*line_len = nl != NULL ? (size_t)(nl - *pos) : (size_t)(end - *pos);
	*pos = nl != NULL ? nl + 1 : end;
	return true;
}

static bool
smi_parse_gpu_line(const char *line, size_t len, struct gpu_reading *r)
{
	struct smi_field f[SMI_GPU_FIELDS];
	uint32_t u;

	if (!smi_split(line, len, f, SMI_GPU_FIELDS, 1))
		return false;
	memset(r, 0, offsetof(struct gpu_reading, sample) + offsetof(struct gpu_sample, processes));
	if (!smi_uint(&f[0], GPU_MAX_DEVICES * 64, &r->index))
		return false;
	if (smi_is_unknown(&f[2]) || f[2].len >= sizeof(r->uuid))
		return false; /* the UUID is how GPUs are matched: required */
	smi_copy(&f[2], r->uuid, sizeof(r->uuid));
	if (!smi_is_unknown(&f[1]))
		smi_copy(&f[1], r->name, sizeof(r->name));
	if (!smi_is_unknown(&f[3]))
		smi_copy(&f[3], r->bus_id, sizeof(r->bus_id));

	struct gpu_sample *s = &r->sample;
	if (smi_mib(&f[4], &s->mem_total_bytes))
		s->valid |= GPU_HAS_MEM_TOTAL;
	if (smi_mib(&f[5], &s->mem_used_bytes))
		s->valid |= GPU_HAS_MEM_USED;
	if (smi_mib(&f[6], &s->mem_free_bytes))
		s->valid |= GPU_HAS_MEM_FREE;
	if (smi_mib(&f[7], &s->mem_reserved_bytes))
		s->valid |= GPU_HAS_MEM_RESERVED;
	if (smi_uint(&f[8], 100, &s->util_gpu_pct))
		s->valid |= GPU_HAS_UTIL_GPU;
	if (smi_uint(&f[9], 100, &s->util_mem_pct))
		s->valid |= GPU_HAS_UTIL_MEM;
	if (smi_uint(&f[10], 200, &u)) {
		s->temperature_c = (int32_t)u;
		s->valid |= GPU_HAS_TEMPERATURE;
	}
	if (smi_watts(&f[11], &s->power_draw_mw))
		s->valid |= GPU_HAS_POWER_DRAW;
	if (smi_watts(&f[12], &s->power_limit_mw))
		s->valid |= GPU_HAS_POWER_LIMIT;
	if (smi_uint(&f[13], 1000, &s->fan_pct))
		s->valid |= GPU_HAS_FAN;
	if (smi_uint(&f[14], 100000, &s->sm_clock_mhz))
		s->valid |= GPU_HAS_SM_CLOCK;
	if (smi_hex(&f[15], &s->clock_event_reasons))
		s->valid |= GPU_HAS_CLOCK_EVENTS;
	return true;
}

size_t
gpu_smi_parse_gpus(const char *text, size_t len, struct gpu_reading *out, size_t max, size_t *bad)
{
	size_t n = 0, nbad = 0, line_len;
	const char *pos = text, *line;
	while (smi_next_line(&pos, text + len, &line, &line_len)) {
		struct smi_field t = smi_trim(line, line_len);
		if (t.len == 0)
			continue;
		if (n < max && smi_parse_gpu_line(t.p, t.len, &out[n]))
			n++;
		else
			nbad++;
	}
	if (bad != NULL)
		*bad = nbad;
	return n;
}

size_t
gpu_smi_parse_apps(const char *text, size_t len, struct gpu_smi_app *out, size_t max, size_t *bad)
{
	size_t n = 0, nbad = 0, line_len;
	const char *pos = text, *line;
	while (smi_next_line(&pos, text + len, &line, &line_len)) {
		struct smi_field t = smi_trim(line, line_len), f[SMI_APP_FIELDS];
		if (t.len == 0)
			continue;
		if (n >= max || !smi_split(t.p, t.len, f, SMI_APP_FIELDS, SMI_APP_FIELDS - 1) ||
		    smi_is_unknown(&f[0]) || f[0].len >= GPU_UUID_LEN) {
			nbad++;
			continue;
		}
		struct gpu_smi_app *a = &out[n];
		memset(a, 0, sizeof(*a));
		smi_copy(&f[0], a->gpu_uuid, sizeof(a->gpu_uuid));
		uint32_t pid;
		if (smi_is_unknown(&f[1])) {
			/* "[Not Supported]": this GPU cannot list processes (pid stays 0). */
			n++;
			continue;
		}
		if (!smi_uint(&f[1], UINT32_MAX, &pid) || pid == 0) {
			nbad++;
			continue;
		}
		a->process.pid = pid;
		a->process.used_known = smi_mib(&f[2], &a->process.used_bytes);
		if (!smi_is_unknown(&f[3]))
			smi_copy(&f[3], a->process.name, sizeof(a->process.name));
		a->process.is_ollama = gpu_process_is_ollama(a->process.name);
		n++;
	}
	if (bad != NULL)
		*bad = nbad;
	return n;
}

void
gpu_smi_join_apps(struct gpu_reading *readings, size_t n, const struct gpu_smi_app *apps,
		  size_t napps)
{
	for (size_t i = 0; i < n; i++) {
		struct gpu_sample *s = &readings[i].sample;
		bool known = true;
		s->nprocesses = 0;
		for (size_t j = 0; j < napps; j++) {
			if (strcmp(apps[j].gpu_uuid, readings[i].uuid) != 0)
				continue;
			if (apps[j].process.pid == 0)
				known = false;
			else if (s->nprocesses < GPU_MAX_PROCESSES)
				s->processes[s->nprocesses++] = apps[j].process;
		}
		if (known)
			s->valid |= GPU_HAS_PROCESSES;
		else
			s->nprocesses = 0;
	}
}

/* --- the provider: child processes on the loop ------------------------------------------- */

enum smi_step { SMI_IDLE, SMI_GPUS, SMI_APPS };

struct smi_provider {
	struct event_base *base;
	char *path;
	int64_t timeout_ms;

	enum smi_step step;
	pid_t pid;
	int fd;
	bool eof;
	struct event *read_ev;
	struct event *timeout_ev;
	struct event *reap_ev;
	struct vd_buf out;
	int exit_code;

	gpu_provider_done_cb done;
	void *done_arg;
	struct gpu_reading readings[GPU_MAX_DEVICES];
	size_t nreadings;
	char *warning;
	struct gpu_smi_app apps[GPU_MAX_DEVICES * 8];

	pid_t zombies[SMI_MAX_ZOMBIES]; /* killed children not yet reaped */
};

static void smi_finish(struct smi_provider *p, int rc, const char *cause);
static void smi_step_done(struct smi_provider *p);

static void
smi_reap_zombies(struct smi_provider *p)
{
	for (size_t i = 0; i < SMI_MAX_ZOMBIES; i++) {
		if (p->zombies[i] > 0 && waitpid(p->zombies[i], NULL, WNOHANG) != 0)
			p->zombies[i] = 0;
	}
}

/* Stops watching the current child; with kill_it, kills it and leaves it to be reaped. */
static void
smi_child_cleanup(struct smi_provider *p, bool kill_it)
{
	event_del(p->read_ev);
	event_del(p->timeout_ev);
	event_del(p->reap_ev);
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->pid > 0 && kill_it) {
		kill(p->pid, SIGKILL);
		if (waitpid(p->pid, NULL, WNOHANG) == 0) {
			size_t i;
			for (i = 0; i < SMI_MAX_ZOMBIES && p->zombies[i] > 0; i++)
				;
			if (i < SMI_MAX_ZOMBIES)
				p->zombies[i] = p->pid;
		}
	}
	p->pid = -1;
}

static int
smi_spawn(struct smi_provider *p, const char *query_arg, char **cause)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return vd_fail(cause, -errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	char *argv[] = {p->path, (char *)query_arg, (char *)"--format=csv,noheader,nounits", NULL};
	pid_t pid;
	int err = strchr(p->path, '/') != NULL
		      ? posix_spawn(&pid, p->path, &fa, NULL, argv, environ)
		      : posix_spawnp(&pid, p->path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (err != 0) {
		close(pipefd[0]);
		return vd_fail(cause, -err, "cannot run %s: %s", p->path, strerror(err));
	}
	fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
	p->pid = pid;
	p->fd = pipefd[0];
	p->eof = false;
	p->exit_code = -1;
	vd_buf_reset(&p->out);
	return 0;
}

static void
smi_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smi_provider *p = arg;
	int status;
	(void)fd, (void)what;
	pid_t r = waitpid(p->pid, &status, WNOHANG);
	if (r == 0) {
		struct timeval tv = {0, SMI_REAP_POLL_MS * 1000};
		event_add(p->reap_ev, &tv);
		return;
	}
	p->exit_code = r == p->pid && WIFEXITED(status) ? WEXITSTATUS(status) : 255;
	p->pid = -1;
	smi_child_cleanup(p, false);
	smi_step_done(p);
}

static void
smi_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smi_provider *p = arg;
	char chunk[4096];
	(void)what;
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r > 0) {
			if (vd_buf_append(&p->out, chunk, (size_t)r) != 0) {
				smi_child_cleanup(p, true);
				smi_finish(p, -E2BIG, "nvidia-smi output exceeds 1 MiB");
				return;
			}
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error: wait for the exit status */
	}
	event_del(p->read_ev);
	close(p->fd);
	p->fd = -1;
	smi_reap_cb(-1, 0, p);
}

static void
smi_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smi_provider *p = arg;
	(void)fd, (void)what;
	smi_child_cleanup(p, true);
	char *msg =
	    xasprintf("nvidia-smi did not answer within %lld ms; killed", (long long)p->timeout_ms);
	smi_finish(p, -ETIMEDOUT, msg);
	free(msg);
}

static int
smi_start_child(struct smi_provider *p, const char *query_arg, char **cause)
{
	int rc = smi_spawn(p, query_arg, cause);
	if (rc < 0)
		return rc;
	event_assign(p->read_ev, p->base, p->fd, EV_READ | EV_PERSIST, smi_read_cb, p);
	event_add(p->read_ev, NULL);
	struct timeval tv = {p->timeout_ms / 1000, (p->timeout_ms % 1000) * 1000};
	event_add(p->timeout_ev, &tv);
	return 0;
}

static const char *
smi_exit_reason(int code)
{
	switch (code) {
	case SMI_EXIT_NO_DRIVER:
		return "the NVIDIA driver is not loaded";
	case SMI_EXIT_NO_NVML:
		return "the NVML library was not found";
	case SMI_EXIT_GPU_IS_LOST:
		return "a GPU has fallen off the bus";
	case 2:
		return "invalid argument (an old nvidia-smi without these fields?)";
	case 3:
		return "not supported";
	case 4:
		return "no permission";
	default:
		return "failed";
	}
}

static void
smi_step_done(struct smi_provider *p)
{
	if (p->step == SMI_GPUS) {
		int code = p->exit_code;
		if (code != 0 && code != SMI_EXIT_GPU_IS_LOST) {
			char *msg =
			    xasprintf("nvidia-smi exited with %d: %s", code, smi_exit_reason(code));
			smi_finish(p, code == SMI_EXIT_NO_DRIVER ? -ENODEV : -EIO, msg);
			free(msg);
			return;
		}
		p->nreadings = gpu_smi_parse_gpus(vd_buf_str(&p->out), p->out.len, p->readings,
						  GPU_MAX_DEVICES, NULL);
		int64_t wall = vd_now_wall_ms(), mono = vd_now_mono_ms();
		for (size_t i = 0; i < p->nreadings; i++) {
			p->readings[i].sample.wall_ms = wall;
			p->readings[i].sample.mono_ms = mono;
		}
		vd_free(p->warning);
		if (code == SMI_EXIT_GPU_IS_LOST)
			p->warning =
			    xasprintf("nvidia-smi exited with 15: %s", smi_exit_reason(15));
		char *cause = NULL;
		p->step = SMI_APPS;
		if (smi_start_child(p, "--query-compute-apps=" GPU_SMI_QUERY_APPS, &cause) < 0) {
			free(cause);
			smi_finish(p, 0, p->warning); /* readings without processes */
		}
		return;
	}
	if (p->exit_code == 0 || p->exit_code == SMI_EXIT_GPU_IS_LOST) {
		size_t napps = gpu_smi_parse_apps(vd_buf_str(&p->out), p->out.len, p->apps,
						  VD_ARRAY_LEN(p->apps), NULL);
		gpu_smi_join_apps(p->readings, p->nreadings, p->apps, napps);
	}
	smi_finish(p, 0, p->warning);
}

/* Ends the sample: readings on rc 0, else none; calls done once. */
static void
smi_finish(struct smi_provider *p, int rc, const char *cause)
{
	gpu_provider_done_cb done = p->done;
	p->step = SMI_IDLE;
	p->done = NULL;
	if (done != NULL)
		done(rc == 0 ? p->readings : NULL, rc == 0 ? p->nreadings : 0, rc, cause,
		     p->done_arg);
}

/* Whether path names an executable, looking through PATH for a bare name. */
static bool
smi_executable_exists(const char *path)
{
	if (strchr(path, '/') != NULL)
		return access(path, X_OK) == 0;
	const char *env = getenv("PATH");
	if (env == NULL)
		return false;
	char *copy = xstrdup(env), *save = NULL;
	bool found = false;
	for (char *dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char *full = xasprintf("%s/%s", dir, path);
		struct stat st;
		found = stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0;
		free(full);
	}
	free(copy);
	return found;
}

static int
smi_provider_open(const struct gpu_provider_config *config, void **state, char **cause)
{
	const char *path = config->smi_path != NULL ? config->smi_path : "nvidia-smi";
	if (!smi_executable_exists(path))
		return vd_fail(cause, -ENOENT, "%s not found", path);
	struct smi_provider *p = xcalloc(1, sizeof(*p));
	p->base = config->base;
	p->path = xstrdup(path);
	p->timeout_ms =
	    config->smi_timeout_ms > 0 ? config->smi_timeout_ms : GPU_DEFAULT_SMI_TIMEOUT_MS;
	p->pid = -1;
	p->fd = -1;
	p->read_ev = event_new(p->base, -1, 0, smi_read_cb, p);
	p->timeout_ev = evtimer_new(p->base, smi_timeout_cb, p);
	p->reap_ev = evtimer_new(p->base, smi_reap_cb, p);
	vd_buf_init(&p->out, SMI_OUTPUT_CAP);
	*state = p;
	return 0;
}

static void
smi_provider_sample(void *state, gpu_provider_done_cb done, void *arg)
{
	struct smi_provider *p = state;
	char *cause = NULL;
	smi_reap_zombies(p);
	if (p->step != SMI_IDLE) {
		done(NULL, 0, -EBUSY, "an nvidia-smi sample is already running", arg);
		return;
	}
	p->done = done;
	p->done_arg = arg;
	p->nreadings = 0;
	p->step = SMI_GPUS;
	if (smi_start_child(p, "--query-gpu=" GPU_SMI_QUERY_GPU, &cause) < 0) {
		smi_finish(p, -ENOENT, cause);
		free(cause);
	}
}

static void
smi_provider_close(void *state)
{
	struct smi_provider *p = state;
	if (p == NULL)
		return;
	p->done = NULL;
	smi_child_cleanup(p, true);
	smi_reap_zombies(p);
	event_free(p->read_ev);
	event_free(p->timeout_ev);
	event_free(p->reap_ev);
	vd_buf_cleanup(&p->out);
	free(p->warning);
	free(p->path);
	free(p);
}

const struct gpu_provider gpu_provider_smi = {
    .name = "nvidia-smi",
    .open = smi_provider_open,
    .sample = smi_provider_sample,
    .close = smi_provider_close,
};
