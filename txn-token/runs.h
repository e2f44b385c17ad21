/* txn-token/runs.h — runs die with their agent (DESIGN §4): every
 * Transaction Token issued to a local process over the Unix socket is
 * remembered with that process's pidfd; when the pidfd becomes readable (the
 * process exited), its runs are revoked by txn until their expiry.
 *
 * wi_runs_track may be called from any thread; the pidfds are watched on the
 * loop (a process's first run is handed over with a uv_async_t; later runs of
 * a watched process are added in place).  Must be created and
 * freed on the loop thread. */
#ifndef WI_TXN_TOKEN_RUNS_H
#define WI_TXN_TOKEN_RUNS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "core/error.h"
#include "txn-token/revocations.h"

typedef struct wi_runs wi_runs;

/* Watches at most `max_processes` processes at once (WI_RUNS_PROCESSES_MAX). */
int wi_runs_new(uv_loop_t *loop, wi_revocations *rev, size_t max_processes, wi_runs **ret) WI_WUR;
/* Watches `pidfd` (duplicated; the caller keeps its own) for the process
 * identified by (pid, start_time), and revokes `txn` until `exp` when it
 * exits.  An already-exited process has the txn revoked at once.
 * WI_E_UNAVAILABLE when `max_processes` others are watched already; on any
 * failure the caller must not hand the token out. */
int wi_runs_track(wi_runs *r, int pidfd, int pid, uint64_t start_time, const char *txn, time_t exp) WI_WUR;
/* Daemon stop: closes the watchers and stops holding the loop open; later
 * track calls (from requests still finishing) just drop their pidfd.  The
 * object stays valid until wi_runs_free.  Loop thread. */
void wi_runs_stop(wi_runs *r);
/* Frees from the loop's close callbacks, after every request that could
 * call wi_runs_track has finished: run the loop afterwards.  Loop thread. */
void wi_runs_free(wi_runs *r);

/* Runs revoked so far because their process exited (tests, metrics). */
uint64_t wi_runs_revoked(wi_runs *r);
/* Runs held by the watches now (expired ones are swept as lists grow). */
size_t wi_runs_tracked(wi_runs *r);

#endif
