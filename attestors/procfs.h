/* attestors/procfs.h — internal /proc readers and pure parsers (attestors/
 * only; not part of the public API).
 *
 * The readers go through a /proc/<pid> dirfd so that every read hits the
 * directory opened at accept (STYLE §12) and never re-resolves "/proc/<pid>"
 * by name, which could name a successor after pid reuse.  The parsers take
 * (text, len), never read past len, need no NUL terminator, and reject
 * anything the kernel would not have written with WI_E_PARSE, because a
 * misread id would be an identity. */
#ifndef WI_ATTESTORS_PROCFS_H
#define WI_ATTESTORS_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

/* Opens /proc/<pid> as a directory fd (O_DIRECTORY|O_CLOEXEC|O_NOFOLLOW).
 * WI_E_UNAUTHENTICATED when the process does not exist, WI_E_IO otherwise. */
int wi__proc_open_pid(pid_t pid, int *ret_dirfd) WI_WUR;

/* Reads the whole file `name` under dirfd (openat O_RDONLY|O_CLOEXEC|
 * O_NOFOLLOW) into a new heap buffer, NUL-terminated for convenience (the NUL
 * is not counted in *ret_len).  Caller frees *ret_text.  WI_E_TOO_BIG when the
 * file holds WI_PROC_FILE_MAX bytes or more, WI_E_NOT_FOUND when it does not
 * exist (ENOENT), WI_E_IO for other failures (the process may be gone: the
 * caller decides with wi_peer_check_alive). */
int wi__proc_read(int dirfd, const char *name, char **ret_text, size_t *ret_len) WI_WUR;

/* Parses /proc/<pid>/stat: the leading pid and field 22 (starttime, clock
 * ticks since boot).  The comm field (2) is skipped up to the LAST ')' since a
 * process controls its comm and may put ") (" or spaces in it. */
int wi__proc_parse_stat(const char *text, size_t len, pid_t *ret_pid, uint64_t *ret_start_time) WI_WUR;

/* The credentials in /proc/<pid>/status. */
typedef struct wi__proc_status {
	uid_t euid; /* 2nd column of "Uid:" (real, effective, saved, fs) */
	gid_t egid; /* 2nd column of "Gid:" */
	gid_t *groups; /* "Groups:" in kernel order; heap, may be NULL when ngroups == 0 */
	size_t ngroups;
} wi__proc_status;

/* Parses /proc/<pid>/status.  "Uid:" and "Gid:" must each appear once with
 * four decimal columns; "Groups:" is optional (empty when absent) and at most
 * once.  Ids are decimal below 2^32-1 ((uid_t)-1 is "no id").  On success
 * ret->groups is owned by the caller (wi__proc_status_done). */
int wi__proc_parse_status(const char *text, size_t len, wi__proc_status *ret) WI_WUR;
/* Frees ret->groups; accepts a zeroed struct. */
void wi__proc_status_done(wi__proc_status *s);

/* Finds the cgroup v2 line "0::<path>" in /proc/<pid>/cgroup; the path is
 * returned as a slice of `text`.  Every line must look like
 * "<digits>:<controllers>:<path>"; v1 lines (hybrid hosts) are skipped.
 * WI_E_NOT_FOUND when the file is well formed but has no v2 line (a v1-only
 * host); WI_E_PARSE for malformed lines, a duplicate "0::" line or a path that
 * is not absolute. */
int wi__proc_parse_cgroup(const char *text, size_t len, const char **ret_path, size_t *ret_path_len) WI_WUR;

/* The system manager's unit of a cgroup path, as systemd's sd_pid_get_unit
 * finds it: the first component below the leading "*.slice" ones, when it is
 * a unit name ending in ".service" or ".scope" (slice of `path`);
 * WI_E_NOT_FOUND when none.  Never a deeper one: below a unit the cgroup tree
 * may be delegated (user@UID.service to its user, Delegate=yes services), and
 * whoever holds it may name sub-cgroups "agent.service" at will. */
int wi__cgroup_systemd_unit(const char *path, size_t len, const char **ret, size_t *ret_len) WI_WUR;

/* The container id (64 lowercase hex) of the deepest path component that names
 * a container: "<id>", "docker-<id>[.scope]", "cri-containerd-<id>[.scope]",
 * "containerd-<id>[.scope]", "crio-<id>[.scope]", "libpod-<id>[.scope]".
 * Runtime helpers ("crio-conmon-<id>", "libpod-conmon-<id>") are not the
 * container and do not match.  WI_E_NOT_FOUND when none. */
int wi__cgroup_container_id(const char *path, size_t len, const char **ret, size_t *ret_len) WI_WUR;

#endif
