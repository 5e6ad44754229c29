/*
 * service.h: telling the service manager how vramd is doing (systemd's Type=notify
 * protocol: READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1, STATUS=...). vramd.c calls it
 * at start, on SIGHUP and on shutdown. Only service.c includes libsystemd's header; built
 * without libsystemd, or started without $NOTIFY_SOCKET, every call does nothing.
 */
#ifndef VRAMD_SERVICE_H
#define VRAMD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

/* True when vramd was built with libsystemd (sd_notify). */
bool service_has_notify(void);
/* Sends one notification: state lines such as "READY=1" joined by '\n', and a STATUS=
 * line from fmt when fmt is not NULL. */
void service_notify(const char *state, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The watchdog interval systemd asked for (WatchdogSec, through $WATCHDOG_USEC for this
 * process), in microseconds; 0 when there is none. */
uint64_t service_watchdog_usec(void);

#endif
