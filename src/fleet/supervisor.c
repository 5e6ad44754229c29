/*
 * supervisor.c: child Ollama servers kept alive on the loop (see supervisor.h).
 *
 * Each child has a pidfd (readable once it exits), a pipe carrying its stdout and
 * stderr (read line by line into the log), and a restart timer. Invariant: a child is
 * running exactly when pid > 0; its pidfd event exists exactly then. Only shutdown in
 * supervisor_free() waits, bounded, for children to exit.
 */
#include "supervisor.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SUPERVISOR_BACKOFF_MIN_MS 1000
#define SUPERVISOR_BACKOFF_MAX_MS 30000
#define SUPERVISOR_HEALTHY_MS	  60000
#define SUPERVISOR_STOP_MS	  5000
#define SUPERVISOR_LINE_MAX	  4096

struct supervisor_child {
	struct supervisor *s;
	char *name;
	char **env; /* the full environment of the child, NULL-terminated */
	pid_t pid;
	int pidfd;
	struct event *exit_event;
	struct bufferevent *output;
	struct event *restart_timer;
	int64_t started_ms;
	int64_t backoff_ms;
	uint64_t starts;
	int last_status;
};

struct supervisor {
	struct event_base *base;
	char **argv;
	struct supervisor_child **children;
	size_t nchildren;
};

static void supervisor_start(struct supervisor_child *c);

static char **
supervisor_strv_copy(const char *const *v)
{
	size_t n = 0;
	while (v[n] != NULL)
		n++;
	char **out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void
supervisor_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* The inherited environment with the entries of extra replacing those of the same name. */
static char **
supervisor_env_build(const char *const *extra)
{
	size_t ninherit = 0, nextra = 0;
	while (environ[ninherit] != NULL)
		ninherit++;
	while (extra[nextra] != NULL)
		nextra++;
	char **env = xcalloc(ninherit + nextra + 1, sizeof(*env));
	size_t n = 0;
	for (size_t i = 0; i < ninherit; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;
		for (size_t j = 0; j < nextra && !replaced; j++)
			replaced =
			    strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=';
		if (!replaced)
			env[n++] = xstrdup(environ[i]);
	}
	for (size_t j = 0; j < nextra; j++)
		env[n++] = xstrdup(extra[j]);
	return env;
}

struct supervisor *
supervisor_new(struct event_base *base, const char *const *argv)
{
	struct supervisor *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->argv = supervisor_strv_copy(argv);
	return s;
}

/* --- Output ----------------------------------------------------------------------- */

static void
supervisor_output_cb(struct bufferevent *bev, void *arg)
{
	struct supervisor_child *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		vd_log(NODE, "%s: %s", c->name, line);
		free(line);
	}
	/* A line longer than the cap is logged in pieces rather than buffered forever. */
	while (evbuffer_get_length(in) > SUPERVISOR_LINE_MAX) {
		char piece[SUPERVISOR_LINE_MAX + 1];
		int n = evbuffer_remove(in, piece, SUPERVISOR_LINE_MAX);
		piece[n > 0 ? n : 0] = '\0';
		vd_log(NODE, "%s: %s", c->name, piece);
	}
}

static void
supervisor_output_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	struct supervisor_child *c = arg;
	supervisor_output_cb(bev, c); /* what is left */
	bufferevent_free(c->output);
	c->output = NULL;
}

/* --- Exit and restart -------------------------------------------------------------- */

static void
supervisor_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	supervisor_start(arg);
}

static void
supervisor_reaped(struct supervisor_child *c, int status)
{
	c->last_status = status;
	int64_t ran = vd_now_mono_ms() - c->started_ms;
	if (WIFEXITED(status))
		vd_warn(NODE, "%s (pid %d) exited with status %d after %lld ms", c->name,
			(int)c->pid, WEXITSTATUS(status), (long long)ran);
	else
		vd_warn(NODE, "%s (pid %d) was killed by signal %d after %lld ms", c->name,
			(int)c->pid, WTERMSIG(status), (long long)ran);
	c->pid = 0;
	event_free(c->exit_event);
	c->exit_event = NULL;
	close(c->pidfd);
	c->pidfd = -1;
	c->backoff_ms = ran >= SUPERVISOR_HEALTHY_MS || c->backoff_ms == 0
			    ? SUPERVISOR_BACKOFF_MIN_MS
			    : c->backoff_ms * 2;
	if (c->backoff_ms > SUPERVISOR_BACKOFF_MAX_MS)
		c->backoff_ms = SUPERVISOR_BACKOFF_MAX_MS;
	vd_log(NODE, "restarting %s in %lld ms", c->name, (long long)c->backoff_ms);
	struct timeval tv = {(time_t)(c->backoff_ms / 1000),
			     (suseconds_t)((c->backoff_ms % 1000) * 1000)};
	evtimer_add(c->restart_timer, &tv);
}

static void
supervisor_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct supervisor_child *c = arg;
	int status = 0;
	if (waitpid(c->pid, &status, WNOHANG) == c->pid)
		supervisor_reaped(c, status);
}

static void
supervisor_start(struct supervisor_child *c)
{
	struct supervisor *s = c->s;
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		vd_error(NODE, "cannot start %s: pipe: %s", c->name, strerror(errno));
		goto out_retry;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, s->argv[0], &fa, NULL, s->argv, c->env);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		vd_error(NODE, "cannot start %s: %s: %s", c->name, s->argv[0], strerror(rc));
		goto out_retry;
	}
	c->pid = pid;
	c->starts++;
	c->started_ms = vd_now_mono_ms();
	c->pidfd = pidfd_open(pid, 0);
	if (c->pidfd < 0) {
		/* Linux older than 5.3: the child cannot be watched; stop it rather than lose it.
		 */
		vd_error(NODE, "cannot watch %s: pidfd_open: %s", c->name, strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		c->pid = 0;
		close(pipefd[0]);
		goto out_retry;
	}
	c->exit_event = event_new(s->base, c->pidfd, EV_READ, supervisor_exit_cb, c);
	event_add(c->exit_event, NULL);
	evutil_make_socket_nonblocking(pipefd[0]);
	if (c->output != NULL)
		bufferevent_free(c->output);
	c->output = bufferevent_socket_new(s->base, pipefd[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->output, supervisor_output_cb, NULL, supervisor_output_event_cb, c);
	bufferevent_enable(c->output, EV_READ);
	vd_log(NODE, "started %s (pid %d): %s", c->name, (int)pid, s->argv[0]);
	return;
out_retry:
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : SUPERVISOR_BACKOFF_MIN_MS;
	if (c->backoff_ms > SUPERVISOR_BACKOFF_MAX_MS)
		c->backoff_ms = SUPERVISOR_BACKOFF_MAX_MS;
	struct timeval tv = {(time_t)(c->backoff_ms / 1000),
			     (suseconds_t)((c->backoff_ms % 1000) * 1000)};
	evtimer_add(c->restart_timer, &tv);
}

size_t
supervisor_add(struct supervisor *s, const char *name, const char *const *env)
{
	struct supervisor_child *c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->name = xstrdup(name);
	c->env = supervisor_env_build(env);
	c->pidfd = -1;
	c->last_status = -1;
	c->restart_timer = evtimer_new(s->base, supervisor_restart_cb, c);
	s->children = xreallocarray(s->children, s->nchildren + 1, sizeof(*s->children));
	s->children[s->nchildren] = c;
	supervisor_start(c);
	return s->nchildren++;
}

size_t
supervisor_count(const struct supervisor *s)
{
	return s->nchildren;
}

void
supervisor_child(const struct supervisor *s, size_t i, struct supervisor_child_info *out)
{
	const struct supervisor_child *c = s->children[i];
	*out = (struct supervisor_child_info){
	    .name = c->name,
	    .pid = c->pid,
	    .running = c->pid > 0,
	    .starts = c->starts,
	    .last_status = c->last_status,
	};
}

/* --- Shutdown ---------------------------------------------------------------------- */

static bool
supervisor_reap_all(struct supervisor *s)
{
	bool all = true;
	for (size_t i = 0; i < s->nchildren; i++) {
		struct supervisor_child *c = s->children[i];
		if (c->pid <= 0)
			continue;
		int status;
		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			c->last_status = status;
			c->pid = 0;
		} else {
			all = false;
		}
	}
	return all;
}

void
supervisor_free(struct supervisor *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nchildren; i++)
		if (s->children[i]->pid > 0)
			kill(s->children[i]->pid, SIGTERM);
	int64_t deadline = vd_now_mono_ms() + SUPERVISOR_STOP_MS;
	while (!supervisor_reap_all(s) && vd_now_mono_ms() < deadline) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < s->nchildren; i++) {
		struct supervisor_child *c = s->children[i];
		if (c->pid > 0) {
			vd_warn(NODE, "%s (pid %d) ignored SIGTERM for %d ms; killing it", c->name,
				(int)c->pid, SUPERVISOR_STOP_MS);
			kill(c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
		}
		if (c->output != NULL) {
			supervisor_output_cb(c->output, c);
			bufferevent_free(c->output);
		}
		if (c->exit_event != NULL)
			event_free(c->exit_event);
		if (c->pidfd >= 0)
			close(c->pidfd);
		event_free(c->restart_timer);
		free(c->name);
		supervisor_strv_free(c->env);
		free(c);
	}
	free(s->children);
	supervisor_strv_free(s->argv);
	free(s);
}
