/*
 * vramd.c: main(). Loads the configuration (file < environment < flags), opens the log,
 * builds the daemon and runs its loop until SIGINT or SIGTERM.
 */
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	struct config *cfg = config_new();
	if (argc == 2 && strcmp(argv[1], "--help-markdown") == 0) {
		/* The table of docs/configuration.md (scripts/update-config-doc.sh). */
		config_print_markdown(stdout);
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
	const char *log_file = config_str(cfg, CONFIG_LOG_FILE);
	if (*log_file && vd_log_open(log_file, &cause) < 0) {
		fprintf(stderr, "vramd: %s\n", cause);
		free(cause);
		config_free(cfg);
		return 1;
	}
	vd_log(SYSTEM, "vramd %s starting", VRAMD_VERSION);
	struct daemon *d;
	if (daemon_new(cfg, &d, &cause) < 0) {
		vd_error(SYSTEM, "%s", cause);
		fprintf(stderr, "vramd: %s\n", cause);
		free(cause);
		vd_log_close();
		return 1;
	}
	daemon_run(d);
	daemon_free(d);
	vd_log(SYSTEM, "vramd stopped");
	vd_log_close();
	return 0;
}
