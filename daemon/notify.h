/* daemon/notify.h — telling the service manager how we are (sd_notify(3)),
 * with libsystemd opened only when one is listening.
 *
 * The daemon does not link libsystemd: wi_daemon_notify_open opens it when
 * NOTIFY_SOCKET is set (systemd's Type=notify), so a daemon started any other
 * way (a container, a shell, the benchmark) never maps it and the libraries it
 * pulls in (libgcrypt, liblzma, libzstd, liblz4, libcap).  Without
 * NOTIFY_SOCKET sd_notify does nothing anyway, and the watchdog needs it too.
 * Loop thread only. */
#ifndef WI_DAEMON_NOTIFY_H
#define WI_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Call once, before anything else here.  0 when NOTIFY_SOCKET is unset
 * (everything below is then a no-op) or libsystemd was opened;
 * WI_E_UNAVAILABLE when NOTIFY_SOCKET is set and libsystemd.so.0 cannot be
 * opened or lacks a symbol (the manager would wait for a READY=1 that cannot
 * come: better to fail at once, saying why). */
int wi_daemon_notify_open(void) WI_WUR;

/* sd_notify(0, state): newline-separated assignments ("READY=1\nSTATUS=…").
 * A state longer than WI_NOTIFY_STATE_MAX is cut short. */
void wi_daemon_notify(const char *state);
void wi_daemon_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sd_watchdog_enabled(0, …): true with the interval when the manager asks
 * this very process (WATCHDOG_PID) for keep-alives. */
bool wi_daemon_notify_watchdog(uint64_t *ret_usec);

#endif
