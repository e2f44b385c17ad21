/* core/malloc_tune.h — glibc's per-thread malloc cache, sized for the
 * request paths.
 *
 * One token exchange makes about 230 small allocations (jansson's trees,
 * cJSON's mirror, OpenSSL's scratch), most of a few sizes, and frees them all
 * before the next.  glibc's per-thread cache (tcache) keeps only 7 free
 * chunks of each size; the rest go through the arena's bins under its lock,
 * and a request of 1 KiB or more then consolidates them.  With 128 per size
 * an exchange costs 7 % fewer instructions and 6-26 % less daemon CPU at
 * concurrency 16 (docs/PERFORMANCE.md, round 15), with the same idle and
 * 10 000-stream RSS.
 *
 * glibc reads the size only from GLIBC_TUNABLES when the process starts
 * (there is no mallopt for it), so a daemon started without it re-executes
 * itself once, in place (same pid, same fds, same argv), with it added.  The
 * systemd unit sets it, so a daemon it starts never re-executes. */
#ifndef WI_CORE_MALLOC_TUNE_H
#define WI_CORE_MALLOC_TUNE_H

#include <stddef.h>

#include "core/error.h"

/* The tunable added, and the value it is given. */
#define WI_MALLOC_TUNE_NAME "glibc.malloc.tcache_count"
#define WI_MALLOC_TUNE_VALUE "128"
/* The longest GLIBC_TUNABLES value written. */
#define WI_MALLOC_TUNABLES_MAX 4096

/* The GLIBC_TUNABLES value to run with, given the current one (NULL when
 * unset): 1 with `out` set when the tunable must be added (appended after
 * the caller's own tunables, which are kept); 0 when `current` already sets
 * it (the operator's choice stands; `out` untouched); WI_E_TOO_BIG when the
 * result would not fit in `cap` bytes. */
int wi_malloc_tunables_for(const char *current, char *out, size_t cap) WI_WUR;

/* Call first in main, before any thread or fd is made.  Returns 0 without
 * doing anything when GLIBC_TUNABLES already sets the tunable, or when the
 * process is secure-exec (AT_SECURE: glibc ignores GLIBC_TUNABLES there, and
 * a re-exec could not change that); otherwise re-executes /proc/self/exe
 * with `argv` and the tunable added, and returns only when that fails
 * (WI_E_IO or WI_E_TOO_BIG, with the environment as it was): the caller
 * logs it and goes on with glibc's default cache. */
int wi_malloc_tune_reexec(char *const argv[]) WI_WUR;

#endif
