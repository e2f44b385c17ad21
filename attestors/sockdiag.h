/* attestors/sockdiag.h — the other end of an accepted Unix connection, and
 * whether a process holds it (attestors/ only; not part of the public API).
 *
 * Without SO_PEERPIDFD (Linux < 6.5) the peer is pinned by pidfd_open on the
 * pid SO_PEERCRED names, which a successor may hold by then.  Asking the
 * kernel for the peer socket's inode (sock_diag, unix_diag(7)) and finding it
 * among the pinned process's open files proves the pinned process holds the
 * connecting end, which a process that merely reused the pid does not. */
#ifndef WI_ATTESTORS_SOCKDIAG_H
#define WI_ATTESTORS_SOCKDIAG_H

#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

/* The inode of the socket at the other end of the connected Unix socket
 * `fd`, asked of the kernel through NETLINK_SOCK_DIAG (UDIAG_SHOW_PEER), and
 * the device both live on (sockfs', from fstat of `fd`; set on any answer).
 * WI_E_UNAUTHENTICATED when the peer has closed its end (the kernel reports
 * no inode for it); WI_E_UNIMPLEMENTED when this kernel or network namespace
 * cannot answer (no unix_diag); WI_E_IO on any other failure or a reply that
 * does not parse. */
int wi__unix_peer_ino(int fd, dev_t *ret_dev, uint64_t *ret_ino) WI_WUR;

/* Whether the process behind `procfd` (/proc/<pid>) has a socket with inode
 * `ino` on device `dev` (sockfs') among its open files, looking at no more
 * than WI_PEER_FDS_SCAN_MAX of them.  0 when it has; WI_E_UNAUTHENTICATED when
 * it has not, or holds more files than the bound (fail closed); WI_E_UNIMPLEMENTED
 * when its fd table cannot be read by us (EACCES/EPERM: not ptrace-readable);
 * WI_E_IO otherwise (the process may be gone: the caller decides with
 * wi_peer_check_alive). */
int wi__proc_holds_socket(int procfd, dev_t dev, uint64_t ino) WI_WUR;

#endif
