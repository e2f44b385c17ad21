/* attestors/attest.h — turns a peer into its selectors, with caching.
 *
 * Selectors produced (kinds from core/selector.h):
 *   unix:uid, unix:gid             effective ids (2nd column of Uid:/Gid: in
 *                                  /proc/<pid>/status)
 *   unix:user, unix:group          names of those ids (getpwuid_r/getgrgid_r);
 *                                  omitted when the id has no name
 *   unix:supplementary_gid/_group  from the Groups: line, and names
 *   unix:path                      readlinkat(dirfd, "exe")
 *   unix:sha256                    SHA-256 of the executable, read through
 *                                  openat(dirfd, "exe") so it hashes the very
 *                                  binary that runs; only when the attestor was
 *                                  created with hash_executables; cached by
 *                                  (st_dev, st_ino, mtime, size); omitted for
 *                                  files above WI_EXE_HASH_SIZE_MAX
 *   cgroup:path                    the cgroup v2 path ("0::<path>" line)
 *   systemd:unit                   the deepest path component of the cgroup
 *                                  path ending in .service or .scope
 *   container:id                   64-hex id found in the cgroup path
 *                                  (docker-<id>.scope, /docker/<id>,
 *                                  cri-containerd-<id>.scope, crio-<id>.scope,
 *                                  libpod-<id>.scope, /libpod-<id>, ...)
 *
 * Cache: results are kept per process identity (pid, start time, euid/egid
 * from SO_PEERCRED, st_dev/st_ino of /proc/<pid>/exe).  A repeat call costs a
 * stat of exe, the alive check, and a lookup; an exec into another binary
 * changes the exe inode and forces a fresh attestation.
 *
 * Thread-safety: wi_attestor_attest may be called from many threads at once. */
#ifndef WI_ATTESTORS_ATTEST_H
#define WI_ATTESTORS_ATTEST_H

#include <stdbool.h>

#include "attestors/peer.h"
#include "core/error.h"
#include "core/hist.h"
#include "core/selector.h"

typedef struct wi_attestor wi_attestor;

typedef struct wi_attestor_options {
	/* Compute unix:sha256 (costly on first sight of a binary). */
	bool hash_executables;
} wi_attestor_options;

int wi_attestor_new(const wi_attestor_options *opts, wi_attestor **ret) WI_WUR;
wi_attestor *wi_attestor_free(wi_attestor *a);

/* Attests the peer.  On success *ret is a new reference to an immutable
 * selector set (release with wi_selector_set_unref).  Errors:
 * WI_E_UNAUTHENTICATED when the process is gone (checked after the reads);
 * WI_E_UNAVAILABLE for transient failures reading /proc. */
int wi_attestor_attest(wi_attestor *a, const wi_peer *peer, wi_selector_set **ret) WI_WUR;

/* Counters for metrics and tests. */
typedef struct wi_attestor_stats {
	uint64_t attestations; /* calls */
	uint64_t cache_hits;
	uint64_t hash_computed;
	uint64_t hash_cache_hits;
	uint64_t cache_misses;      /* calls not answered from the cache on their first pass */
	wi_hist_snapshot latency;   /* duration of wi_attestor_attest, whatever its outcome */
} wi_attestor_stats;
void wi_attestor_get_stats(const wi_attestor *a, wi_attestor_stats *ret);

#endif
