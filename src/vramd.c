/*
 * vramd.c: main(). Loads the configuration (defaults < file < environment < flags <
 * run-time changes kept in the data directory), opens the log, builds the daemon and
 * runs its loop until SIGINT or SIGTERM.
 *
 * It also speaks to the service manager (service.h): READY=1 once the daemon is built
 * (the store open, jobs recovered, the API listening) and the first GPU sample is in,
 * WATCHDOG=1 at half the interval systemd asks for, RELOADING=1 / READY=1 around a
 * SIGHUP reload of the configuration file, and STOPPING=1 on the way out.
 */
#include "config.h"
#include "daemon.h"
#include "fleet.h"
#include "gpu.h"
#include "log.h"
#include "service.h"
#include "util.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How long READY=1 waits for the first GPU sample (nvidia-smi may hang): after this the
 * daemon reports ready anyway, and STATUS= says the GPUs are not read yet. */
#define VRAMD_READY_WAIT_MS 10000
#define VRAMD_READY_POLL_MS 20

/* What main() wires around the daemon: the service manager's events. */
struct vramd_main {
	struct daemon *d;
	struct event *hup;
	struct event *ready_timer;
	struct event *watchdog_timer;
	int64_t started_mono_ms;
};

/* Texts main() prints for the packaging (CMakeLists.txt, scripts/update-config-doc.sh). */
static const struct vramd_print {
	const char *flag;
	void (*print)(FILE *out);
} vramd_prints[] = {
    {"--help-markdown", config_print_markdown}, /* docs/configuration.md's table */
    {"--help-conf", config_print_conf},		/* the installed /etc/vramd/vramd.conf */
    {"--help-man", config_print_man},		/* the keys of vramd.conf(5) */
};

static void
vramd_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct vramd_main *m = arg;
	struct daemon *d = m->d;
	bool sampled = gpu_monitor_sample_count(d->gpus) > 0 ||
		       strcmp(gpu_monitor_source(d->gpus), "none") == 0;
	bool waited = vd_now_mono_ms() - m->started_mono_ms >= VRAMD_READY_WAIT_MS;
	if (!sampled && !waited) {
		struct timeval tv = {0, VRAMD_READY_POLL_MS * 1000};
		evtimer_add(m->ready_timer, &tv);
		return;
	}
	size_t ngpus = gpu_monitor_count(d->gpus), nodes = fleet_count(d->fleet);
	service_notify("READY=1", "ready: %zu node%s, %zu GPU%s (%s%s), API on %s", nodes,
		       nodes == 1 ? "" : "s", ngpus, ngpus == 1 ? "" : "s",
		       gpu_monitor_source(d->gpus), sampled ? "" : ", no sample yet",
		       config_str(d->config, CONFIG_LISTEN));
	vd_log(SYSTEM, "ready (%s)", sampled ? "first GPU sample in" : "no GPU sample yet");
}

static void
vramd_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	/* Sent from the loop itself: a loop stuck in a handler stops the pets and systemd
	 * restarts vramd, which is the point. */
	service_notify("WATCHDOG=1", NULL);
}

/* SIGHUP: the configuration file again, run-time keys only (config_reload_file). */
static void
vramd_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct vramd_main *m = arg;
	struct daemon *d = m->d;
	const char *path = config_file_path(d->config);
	service_notify("RELOADING=1", "reloading the configuration");
	vd_log(CONFIG, "SIGHUP: reloading %s",
	       path != NULL ? path : "the environment and flags (no --config file)");
	json_t *changed = NULL, *restart = NULL;
	char *cause = NULL;
	if (config_reload_file(d->config, &changed, &restart, &cause) < 0) {
		vd_error(CONFIG, "SIGHUP: configuration not reloaded, nothing changed: %s", cause);
		service_notify("READY=1", "ready; the last reload failed: %s", cause);
		free(cause);
		return;
	}
	for (size_t i = 0; i < json_array_size(restart); i++) {
		const char *name = json_string_value(json_array_get(restart, i));
		enum config_key k = (enum config_key)config_key_from_name(name);
		vd_warn(CONFIG, "%s changed in the configuration but needs a restart (still %s)",
			name, config_str(d->config, k));
	}
	daemon_config_changed(d, changed, "SIGHUP");
	/* The keys the file took back leave runtime-config.json (also one whose value the
	 * file repeated, so it is in no "changed"). The reload already happened, so a
	 * failure here is only logged. */
	if (config_persist_save(d->config, &cause) < 0) {
		vd_warn(CONFIG, "run-time configuration not kept for the next start: %s", cause);
		free(cause);
		cause = NULL;
	}
	vd_log(CONFIG, "SIGHUP: %zu run-time key%s changed, %zu key%s need a restart",
	       json_object_size(changed), json_object_size(changed) == 1 ? "" : "s",
	       json_array_size(restart), json_array_size(restart) == 1 ? "" : "s");
	service_notify("READY=1", "ready; configuration reloaded (%zu changed, %zu need a restart)",
		       json_object_size(changed), json_array_size(restart));
	json_decref(changed);
	json_decref(restart);
}

static void
vramd_main_start(struct vramd_main *m, struct daemon *d)
{
	*m = (struct vramd_main){.d = d, .started_mono_ms = vd_now_mono_ms()};
	m->hup = evsignal_new(d->base, SIGHUP, vramd_hup_cb, m);
	evsignal_add(m->hup, NULL);
	m->ready_timer = evtimer_new(d->base, vramd_ready_cb, m);
	struct timeval now = {0, 0};
	evtimer_add(m->ready_timer, &now);
	uint64_t usec = service_watchdog_usec();
	if (usec > 0) {
		uint64_t half = usec / 2;
		m->watchdog_timer = event_new(d->base, -1, EV_PERSIST, vramd_watchdog_cb, m);
		struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};
		evtimer_add(m->watchdog_timer, &tv);
		vd_log(SYSTEM, "watchdog: pinging systemd every %llu ms",
		       (unsigned long long)(half / 1000));
	}
}

static void
vramd_main_stop(struct vramd_main *m)
{
	if (m->hup != NULL)
		event_free(m->hup);
	if (m->ready_timer != NULL)
		event_free(m->ready_timer);
	if (m->watchdog_timer != NULL)
		event_free(m->watchdog_timer);
}

/* The run-time changes of earlier runs, after every other source. A bad file is logged
 * and vramd starts without it: the next change through the API rewrites it. */
static void
vramd_load_persisted(struct config *cfg)
{
	json_t *skipped = NULL;
	char *cause = NULL;
	char *path = config_persist_path(cfg);
	if (config_persist_load(cfg, &skipped, &cause) < 0) {
		vd_warn(CONFIG, "run-time configuration of earlier runs not applied: %s", cause);
		free(cause);
	}
	for (size_t i = 0; i < json_array_size(skipped); i++)
		vd_warn(CONFIG, "%s: skipped %s", path,
			json_string_value(json_array_get(skipped, i)));
	for (int k = 0; k < CONFIG_NKEYS; k++)
		if (config_source_of(cfg, (enum config_key)k) == CONFIG_SRC_RUNTIME)
			vd_log(CONFIG, "%s = %s (run-time change kept in %s)",
			       config_def((enum config_key)k)->name,
			       config_str(cfg, (enum config_key)k), path);
	json_decref(skipped);
	free(path);
}

/* Where the log goes (LOG_FILE): a file, "-" for stderr, or empty: stderr, unless stderr
 * goes nowhere (a daemon started in the background), when the log would be lost; then
 * DATA_DIR/vramd.log, the file seed 001's users look for next to their data. */
static int
vramd_log_open(const struct config *cfg, char **cause)
{
	vd_log_set_format(strcmp(config_str(cfg, CONFIG_LOG_FORMAT), "json") == 0 ? VD_LOG_JSON
										  : VD_LOG_TEXT);
	const char *path = config_str(cfg, CONFIG_LOG_FILE);
	if (strcmp(path, "-") == 0 || (path[0] == '\0' && !vd_log_stderr_is_lost()))
		return 0;
	if (path[0] != '\0')
		return vd_log_open(path, cause);
	const char *dir = config_str(cfg, CONFIG_DATA_DIR);
	(void)mkdir(dir, 0700); /* the store makes the whole path later; the log needs it now */
	char *file = xasprintf("%s/vramd.log", dir);
	int rc = vd_log_open(file, cause);
	free(file);
	return rc;
}

int
main(int argc, char **argv)
{
	struct config *cfg = config_new();
	for (size_t i = 0; argc == 2 && i < VD_ARRAY_LEN(vramd_prints); i++)
		if (strcmp(argv[1], vramd_prints[i].flag) == 0) {
			vramd_prints[i].print(stdout);
			config_free(cfg);
			return 0;
		}
	bool help = false, version = false;
	char *cause = NULL;
	if (config_load(cfg, argc, argv, NULL, &help, &version, &cause) < 0) {
		fprintf(stderr, "vramd: %s\n", cause);
		fprintf(stderr, "Try 'vramd --help'.\n");
		free(cause);
		config_free(cfg);
		return 2;
	}
	if (help || version) {
		if (help)
			config_print_help(stdout, "vramd");
		else
			printf("vramd %s\n", VRAMD_VERSION);
		config_free(cfg);
		return 0;
	}
	vd_log_level_from_env();
	if (vramd_log_open(cfg, &cause) < 0) {
		fprintf(stderr, "vramd: %s\n", cause);
		free(cause);
		config_free(cfg);
		return 1;
	}
	vd_log(SYSTEM, "vramd %s starting", VRAMD_VERSION);
	service_notify(NULL, "starting: opening the job store");
	vramd_load_persisted(cfg);
	struct daemon *d;
	if (daemon_new(cfg, &d, &cause) < 0) {
		vd_error(SYSTEM, "%s", cause);
		fprintf(stderr, "vramd: %s\n", cause);
		service_notify(NULL, "failed: %s", cause);
		free(cause);
		vd_log_close();
		return 1;
	}
	struct vramd_main m;
	vramd_main_start(&m, d);
	int status = daemon_run(d);
	service_notify("STOPPING=1", "stopping: committing the job store");
	vramd_main_stop(&m);
	daemon_free(d);
	vd_log(SYSTEM, "vramd stopped");
	vd_log_close();
	return status;
}
