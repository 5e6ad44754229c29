/*
 * log.h: one line per event, "[HH:MM:SS.mmm] [COMPONENT] message" (or one JSON object
 * per line, LOG_FORMAT=json, for log shippers), to stderr or a file, so `grep SCHEDULER`
 * follows one component. Not thread-safe by design: only the loop thread logs.
 */
#ifndef VRAMD_LOG_H
#define VRAMD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vd_log_component {
	VD_LOG_SYSTEM,
	VD_LOG_API,
	VD_LOG_QUEUE,
	VD_LOG_SCHEDULER,
	VD_LOG_ENGINE,
	VD_LOG_MONITOR,
	VD_LOG_REGISTRY,
	VD_LOG_STORE,
	VD_LOG_CONFIG,
	VD_LOG_GPU,
	VD_LOG_EVENTS,
	VD_LOG_SIM,
	VD_LOG_NODE,
	VD_LOG_FLEET,
	VD_LOG_NCOMPONENTS
};

enum vd_log_level { VD_LOG_ERROR, VD_LOG_WARN, VD_LOG_INFO, VD_LOG_DEBUG };

enum vd_log_format {
	VD_LOG_TEXT, /* [HH:MM:SS.mmm] [COMPONENT] message, local time */
	VD_LOG_JSON, /* {"time":RFC 3339 UTC ms,"level","component","msg"} */
};

/* Opens path for appending (NULL = stderr). Returns 0 or -errno with *cause set. */
int vd_log_open(const char *path, char **cause);
void vd_log_close(void);
void vd_log_set_format(enum vd_log_format format);
/* Whether a log that goes to stderr would be lost: stderr closed or /dev/null (started in
 * the background without a redirection). A terminal, a pipe, a file or systemd's journal
 * keep it. */
bool vd_log_stderr_is_lost(void);
/* The formatted line for one message into buf (with its newline); returns its length.
 * now_ns: wall clock. Exposed for the unit test. */
size_t vd_log_format_line(char *buf, size_t size, enum vd_log_format format, int64_t now_ns,
			  enum vd_log_level level, enum vd_log_component component,
			  const char *msg);
/* Messages above this level are dropped before formatting. Default: VD_LOG_INFO. */
void vd_log_set_level(enum vd_log_level level);
bool vd_log_enabled(enum vd_log_level level);
/* Reads VRAMD_LOG_LEVEL (error|warn|info|debug) if set. */
void vd_log_level_from_env(void);
const char *vd_log_component_name(enum vd_log_component component);

void vd_log_write(enum vd_log_level level, enum vd_log_component component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define vd_log(component, ...)	 vd_log_write(VD_LOG_INFO, VD_LOG_##component, __VA_ARGS__)
#define vd_warn(component, ...)	 vd_log_write(VD_LOG_WARN, VD_LOG_##component, __VA_ARGS__)
#define vd_error(component, ...) vd_log_write(VD_LOG_ERROR, VD_LOG_##component, __VA_ARGS__)
#define vd_debug(component, ...)                                                                   \
	do {                                                                                       \
		if (vd_log_enabled(VD_LOG_DEBUG))                                                  \
			vd_log_write(VD_LOG_DEBUG, VD_LOG_##component, __VA_ARGS__);               \
	} while (0)

#endif
