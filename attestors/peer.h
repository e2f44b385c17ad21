/* attestors/peer.h — who is on the other end of an accepted Unix socket.
 *
 * Captured once at accept: SO_PEERCRED (pid, euid, egid at connect time), a
 * pidfd pinned to that exact process (SO_PEERPIDFD on Linux >= 6.5; otherwise
 * pidfd_open(pid) plus a start-time check that the process started no later
 * than the accept and a search of its open files for the connecting socket,
 * whose inode unix_diag gives), the process start time (field 22 of /proc/<pid>/stat) and
 * a dirfd on /proc/<pid> (O_DIRECTORY|O_CLOEXEC) used for every later read.
 *
 * Thread-safety: a wi_peer is immutable after wi_peer_from_socket and may be
 * read from several threads at once. */
#ifndef WI_ATTESTORS_PEER_H
#define WI_ATTESTORS_PEER_H

#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

typedef struct wi_peer wi_peer;

/* Reads the credentials of the peer of connected AF_UNIX socket `fd` (the fd
 * itself is not kept).  WI_E_UNAUTHENTICATED when the peer is gone or pid 0,
 * WI_E_IO for other failures. */
int wi_peer_from_socket(int fd, wi_peer **ret) WI_WUR;
/* Same, for a process by pid (tests, and the admin paths): pidfd_open + stat. */
int wi_peer_from_pid(pid_t pid, wi_peer **ret) WI_WUR;
/* Closes the pidfd and dirfd; accepts NULL; returns NULL. */
wi_peer *wi_peer_free(wi_peer *p);

pid_t wi_peer_pid(const wi_peer *p);
uid_t wi_peer_uid(const wi_peer *p);
gid_t wi_peer_gid(const wi_peer *p);
/* Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
uint64_t wi_peer_start_time(const wi_peer *p);
/* The /proc/<pid> directory fd (owned by p). */
int wi_peer_proc_dirfd(const wi_peer *p);
/* The pidfd (owned by p). */
int wi_peer_pidfd(const wi_peer *p);
/* NULL, or why the pid-reuse defence for this peer was the start-time check
 * alone (a kernel without SO_PEERPIDFD, and the connecting socket could not
 * be looked for among the process's open files); static text, for a log line. */
const char *wi_peer_degraded(const wi_peer *p);

/* 0 when the original process is still alive (pidfd not readable, i.e. not
 * exited); WI_E_UNAUTHENTICATED when it has exited or been reaped.  One
 * poll(2) with zero timeout.  Call it after reading /proc to prove that what
 * was read belonged to this process and not to a successor with the same pid. */
int wi_peer_check_alive(const wi_peer *p) WI_WUR;

#endif
