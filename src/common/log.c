/*
 * log.c: the log writer. Each line is "[HH:MM:SS.mmm] [COMPONENT] message" in local
 * time; warnings and errors carry "WARN:"/"ERROR:" before the message. Control
 * characters in messages (which may hold client text) are written as \xNN so one
 * event is always one line. A log file vramd creates is mode 0600.
 */
#include "log.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *vd_log_file;
static enum vd_log_level vd_log_level = VD_LOG_INFO;

static const char *const vd_log_component_names[VD_LOG_NCOMPONENTS] = {
    [VD_LOG_SYSTEM] = "SYSTEM",	    [VD_LOG_API] = "API",
    [VD_LOG_QUEUE] = "QUEUE",	    [VD_LOG_SCHEDULER] = "SCHEDULER",
    [VD_LOG_ENGINE] = "ENGINE",	    [VD_LOG_MONITOR] = "MONITOR",
    [VD_LOG_REGISTRY] = "REGISTRY", [VD_LOG_STORE] = "STORE",
    [VD_LOG_CONFIG] = "CONFIG",	    [VD_LOG_GPU] = "GPU",
    [VD_LOG_EVENTS] = "EVENTS",	    [VD_LOG_SIM] = "SIM",
    [VD_LOG_NODE] = "NODE",	    [VD_LOG_FLEET] = "FLEET",
};

int
vd_log_open(const char *path, char **cause)
{
	vd_log_close();
	if (path == NULL)
		return 0;
	/* Client text ends up in the log: a new file is readable by its owner only. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (f == NULL) {
		int rc =
		    vd_fail(cause, -errno, "cannot open log file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	vd_log_file = f;
	return 0;
}

void
vd_log_close(void)
{
	if (vd_log_file != NULL)
		fclose(vd_log_file);
	vd_log_file = NULL;
}

void
vd_log_set_level(enum vd_log_level level)
{
	vd_log_level = level;
}

bool
vd_log_enabled(enum vd_log_level level)
{
	return level <= vd_log_level;
}

void
vd_log_level_from_env(void)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	const char *v = getenv("VRAMD_LOG_LEVEL");
	if (v == NULL)
		return;
	for (size_t i = 0; i < VD_ARRAY_LEN(names); i++)
		if (strcmp(v, names[i]) == 0)
			vd_log_level = (enum vd_log_level)i;
}

const char *
vd_log_component_name(enum vd_log_component component)
{
	if (component >= VD_LOG_NCOMPONENTS)
		return "?";
	return vd_log_component_names[component];
}

void
vd_log_write(enum vd_log_level level, enum vd_log_component component, const char *fmt, ...)
{
	if (!vd_log_enabled(level))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	char line[sizeof(msg) * 4 + 64];
	int64_t now = vd_now_wall_ns();
	time_t secs = (time_t)(now / VD_NS_PER_S);
	struct tm tm;
	localtime_r(&secs, &tm);
	static const char *const prefixes[] = {"ERROR: ", "WARN: ", "", "DEBUG: "};
	size_t n = (size_t)snprintf(line, sizeof(line), "[%02d:%02d:%02d.%03d] [%s] %s", tm.tm_hour,
				    tm.tm_min, tm.tm_sec, (int)((now / VD_NS_PER_MS) % 1000),
				    vd_log_component_name(component), prefixes[level]);
	for (const unsigned char *p = (const unsigned char *)msg; *p && n + 5 < sizeof(line); p++) {
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "\\x%02x", *p);
		else
			line[n++] = (char)*p;
	}
	line[n++] = '\n';
	fwrite(line, 1, n, vd_log_file != NULL ? vd_log_file : stderr);
}
