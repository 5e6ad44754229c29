/*
 * log.c: the log writer. Each line is "[HH:MM:SS.mmm] [COMPONENT] message" in local
 * time; warnings and errors carry "WARN:"/"ERROR:" before the message. Control
 * characters in messages (which may hold client text) are written as \xNN so one
 * event is always one line. A log file vramd creates is mode 0600. LOG_FORMAT=json
 * writes one JSON object per line instead (UTC time with milliseconds, level,
 * component, msg), escaped the same way JSON escapes, for journald/Loki/Elastic.
 */
#include "log.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static FILE *vd_log_file;
static enum vd_log_level vd_log_level = VD_LOG_INFO;
static enum vd_log_format vd_log_format = VD_LOG_TEXT;

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
vd_log_set_format(enum vd_log_format format)
{
	vd_log_format = format;
}

bool
vd_log_stderr_is_lost(void)
{
	struct stat st, null;
	if (fstat(STDERR_FILENO, &st) < 0)
		return true; /* closed */
	/* /dev/null: the same character device */
	return S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 && st.st_rdev == null.st_rdev;
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

/* Appends msg to line at n, control characters as \xNN (text) or \u00NN (JSON, which
 * also escapes " and \); stops short of the end. Returns the new length. */
static size_t
vd_log_append_msg(char *line, size_t size, size_t n, const char *msg, bool json)
{
	for (const unsigned char *p = (const unsigned char *)msg; *p && n + 8 < size; p++) {
		if (*p < 0x20 || *p == 0x7f)
			n += (size_t)snprintf(line + n, size - n, json ? "\\u%04x" : "\\x%02x", *p);
		else if (json && (*p == '"' || *p == '\\')) {
			line[n++] = '\\';
			line[n++] = (char)*p;
		} else
			line[n++] = (char)*p;
	}
	return n;
}

size_t
vd_log_format_line(char *line, size_t size, enum vd_log_format format, int64_t now_ns,
		   enum vd_log_level level, enum vd_log_component component, const char *msg)
{
	static const char *const prefixes[] = {"ERROR: ", "WARN: ", "", "DEBUG: "};
	static const char *const names[] = {"error", "warn", "info", "debug"};
	size_t n;
	if (format == VD_LOG_JSON) {
		char ts[40];
		vd_format_rfc3339_ms(now_ns / VD_NS_PER_MS, ts, sizeof(ts));
		n = (size_t)snprintf(
		    line, size, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
		    ts, names[level], vd_log_component_name(component));
		n = vd_log_append_msg(line, size, n, msg, true);
		line[n++] = '"';
		line[n++] = '}';
	} else {
		time_t secs = (time_t)(now_ns / VD_NS_PER_S);
		struct tm tm;
		localtime_r(&secs, &tm);
		n = (size_t)snprintf(line, size, "[%02d:%02d:%02d.%03d] [%s] %s", tm.tm_hour,
				     tm.tm_min, tm.tm_sec, (int)((now_ns / VD_NS_PER_MS) % 1000),
				     vd_log_component_name(component), prefixes[level]);
		n = vd_log_append_msg(line, size, n, msg, false);
	}
	line[n++] = '\n';
	return n;
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

	char line[sizeof(msg) * 6 + 128];
	size_t n = vd_log_format_line(line, sizeof(line), vd_log_format, vd_now_wall_ns(), level,
				      component, msg);
	fwrite(line, 1, n, vd_log_file != NULL ? vd_log_file : stderr);
}
