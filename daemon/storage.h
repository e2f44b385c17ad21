/* daemon/storage.h — whether the state directory can take writes.
 *
 * Keys, the rotation schedule, entries and revocations are written to the
 * data directory; when it turns read-only or full, the daemon keeps serving
 * the identities it holds but reports NOT_SERVING (grpc.health.v1) so the
 * operator's probes notice, with one log line saying why (DESIGN §6, issue 5
 * item 3).  The check is a statvfs(2) — no write, so it is cheap enough for
 * every tick — combined with the outcome of the daemon's own last writes. */
#ifndef WI_DAEMON_STORAGE_H
#define WI_DAEMON_STORAGE_H

#include <stdbool.h>
#include <stddef.h>

/* True when `dir`'s file system is writable with at least WI_STORAGE_FREE_MIN
 * bytes available to us; otherwise false with the reason in why[0..size). */
bool wi_daemon_storage_writable(const char *dir, char *why, size_t size);

#endif
