/* attestors/peer_internal.h — internals of attestors/peer.c shared with the
 * unit tests (not part of the public API). */
#ifndef WI_ATTESTORS_PEER_INTERNAL_H
#define WI_ATTESTORS_PEER_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "attestors/peer.h"
#include "core/error.h"

/* Fallback for kernels without SO_PEERPIDFD (< 6.5), as if SO_PEERCRED on the
 * accepted connection `fd` had named `pid`: pidfd_open(pid), open
 * /proc/<pid>, read its start time, and reject a process that started after
 * `accept_ticks` (boot-time clock ticks taken when the connection was
 * accepted), since it cannot be the process that connected.  Then look for
 * the connection's other end (its inode, from unix_diag) among the pinned
 * process's open files, and reject a process that does not hold it: it got
 * the pid after the one that connected exited.  That search is skipped, with
 * one warning, where the kernel has no unix_diag or the process's open files
 * are not readable by us (not ptrace-readable).  Last, check that the pidfd's
 * process is still alive so the dirfd is proven to be the same process.
 * uid/gid are the SO_PEERCRED values.  WI_E_UNAUTHENTICATED when the process
 * is gone or fails either check. */
int wi__peer_from_pid_fallback(int fd, pid_t pid, uid_t uid, gid_t gid, uint64_t accept_ticks,
			       wi_peer **ret) WI_WUR;

/* What a failed getsockopt(SO_PEERPIDFD) with errno `e` means: 0 when the
 * kernel lacks the option (ENOPROTOOPT, < 6.5) and the fallback must do;
 * WI_E_UNAUTHENTICATED for EINVAL, which 6.5 and later kernels return when
 * the connecting process has been reaped (its pid number may already be
 * another process's, so it is never looked up); WI_E_IO otherwise. */
int wi__peer_pidfd_refusal(int e) WI_WUR;

/* Now, in the clock of /proc/<pid>/stat field 22: CLOCK_BOOTTIME in USER_HZ
 * ticks (proc(5): "time the process started after system boot", which the
 * kernel takes from the task's boot-based start time). */
int wi__peer_boottime_ticks(uint64_t *ret) WI_WUR;

#endif
