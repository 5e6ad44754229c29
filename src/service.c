/*
 * service.c: the service manager's notification protocol (see service.h), through
 * libsystemd's sd_notify when vramd is built with it (VRAMD_HAVE_LIBSYSTEMD), else
 * nothing. Messages go to $NOTIFY_SOCKET, which systemd sets for Type=notify units; a
 * test may set it too.
 */
#include "service.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef VRAMD_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

bool
service_has_notify(void)
{
#ifdef VRAMD_HAVE_LIBSYSTEMD
	return true;
#else
	return false;
#endif
}

void
service_notify(const char *state, const char *fmt, ...)
{
#ifdef VRAMD_HAVE_LIBSYSTEMD
	char *status = NULL;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		char *text = NULL;
		if (vasprintf(&text, fmt, ap) < 0)
			text = NULL;
		va_end(ap);
		status = text != NULL ? xasprintf("STATUS=%s", text) : NULL;
		free(text);
	}
	char *msg =
	    xasprintf("%s%s%s", state != NULL ? state : "",
		      state != NULL && status != NULL ? "\n" : "", status != NULL ? status : "");
	/* No error to act on: systemd not listening only means nobody asked. */
	(void)sd_notify(0, msg);
	free(msg);
	free(status);
#else
	(void)state;
	(void)fmt;
#endif
}

uint64_t
service_watchdog_usec(void)
{
#ifdef VRAMD_HAVE_LIBSYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}
