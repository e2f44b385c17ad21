/* txn-token/runs.c — pidfd watchers that revoke a dead agent's runs.
 *
 * One watch per live agent process, on the loop.  A run of a process already
 * watched is added to its watch under the lock by the calling thread (no
 * syscall, no wake of the loop): an agent making many exchanges costs one
 * hash probe and one list insert each.  Only the first run of a process
 * crosses to the loop, which starts polling a duplicate of its pidfd.
 *
 * The lock is taken by every exchange, so nothing done under it grows with
 * the node's load: the watches are found through a table sized for
 * max_processes (a list walk cost 16 384 steps per exchange with that many
 * agents), and expired runs are swept a few at a time with each insert
 * (a sweep of the whole list each time it doubled held every exchange for
 * 70-90 ms at half a million runs of one agent, its nodes spread over a busy
 * heap).  The sweep looks at two runs per insert, so one lap takes as many
 * inserts as half the list, and a watch's list holds its live runs and at most
 * as many expired ones, the bound the doubling sweep kept. */
#include "txn-token/runs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

/* Runs a watch's sweep looks at per insert: more than one, so the sweep
 * laps the list faster than inserts grow it; each one more is a cache miss
 * more per exchange (4 cost 0.35 us more per insert than 2). */
#define RUNS_SWEEP_STEP 2

typedef struct run {
	struct run *next;
	time_t exp;
	char txn[];
} run;

/* One watched process. */
typedef struct watch {
	uv_poll_t poll;
	struct watch *next; /* hash chain */
	int pidfd;
	int pid;
	uint64_t start_time;
	run *runs;    /* under the lock, newest first */
	run **sweep;  /* under the lock: the link the sweep looks at next */
	size_t n_runs; /* under the lock */
	struct wi_runs *owner;
} watch;

/* A track request on its way to the loop. */
typedef struct pending {
	struct pending *next;
	int pidfd;
	int pid;
	uint64_t start_time;
	time_t exp;
	char txn[];
} pending;

struct wi_runs {
	uv_loop_t *loop;
	uv_async_t async;
	wi_revocations *rev;
	pthread_mutex_t lock; /* guards `queue`, `watches` and every watch's runs */
	pending *queue;
	/* Chained by (pid, start time); changed on the loop thread only, always
	 * under the lock.  A power of two of buckets, at least max_held. */
	watch **watches;
	size_t mask;
	size_t n_runs;  /* under the lock: runs across the watches */
	size_t held;    /* under the lock: watches plus queued new ones */
	size_t max_held;
	atomic_uint_fast64_t revoked;
	atomic_bool stopping;
};

static void free_runs(run *x)
{
	while (x) {
		run *n = x->next;
		free(x);
		x = n;
	}
}

static run *run_new(const char *txn, time_t exp)
{
	size_t n = strlen(txn);
	run *x = malloc(sizeof(*x) + n + 1);
	if (x) {
		x->exp = exp;
		memcpy(x->txn, txn, n + 1);
	}
	return x;
}

/* Under the lock: adds `x` to `w` (at the head), then sweeps the next few
 * runs after the sweep's link, dropping expired ones; at the end of the list
 * the sweep starts again at the head.  The link stays valid: only the sweep
 * unlinks single runs (the one after its link, never the run holding it),
 * and a head insert only changes what &w->runs points at. */
static void watch_add_run(wi_runs *r, watch *w, run *x, time_t now)
{
	x->next = w->runs;
	w->runs = x;
	w->n_runs++;
	r->n_runs++;
	run **pp = w->sweep ? w->sweep : &w->runs;
	for (int i = 0; i < RUNS_SWEEP_STEP; i++) {
		run *y = *pp;
		if (!y) {
			pp = &w->runs;
			break;
		}
		if (y->exp < now) { /* expired: nothing left to revoke */
			*pp = y->next;
			free(y);
			w->n_runs--;
			r->n_runs--;
		} else {
			pp = &y->next;
		}
	}
	w->sweep = pp;
}

static size_t watch_bucket(const wi_runs *r, int pid, uint64_t start_time)
{
	/* Pids come from the kernel, not the caller; a multiplicative mix of
	 * both keys spreads them over the table. */
	uint64_t h = ((uint64_t)(uint32_t)pid ^ (start_time * 0x9e3779b97f4a7c15u)) * 0xbf58476d1ce4e5b9u;
	return (size_t)(h >> 32) & r->mask;
}

static watch *find_watch(wi_runs *r, int pid, uint64_t start_time)
{
	for (watch *w = r->watches[watch_bucket(r, pid, start_time)]; w; w = w->next)
		if (w->pid == pid && w->start_time == start_time)
			return w;
	return NULL;
}

/* Runs revoked per store transaction: a dead agent that made thousands of
 * exchanges costs a few fsyncs, not one each, so the last of its runs dies
 * within milliseconds of the first. */
#define RUNS_REVOKE_BATCH 512

/* In force at once even if the store refuses them (nobody would retry a dead
 * agent's revocation): the daemon's tick persists them later. */
static void revoke_batch(wi_runs *r, int pid, const char *const *txns, const time_t *exps, size_t n)
{
	if (n == 0)
		return;
	bool durable = true;
	if (wi_revocations_add_many_now(r->rev, WI_REVOKE_TXN, txns, exps, n, &durable) < 0) {
		wi_log(WI_LOG_ERROR, "run_revoke_failed", "pid=%d runs=%zu: %s", pid, n, wi_error_detail());
		return;
	}
	atomic_fetch_add(&r->revoked, n);
	if (!durable)
		wi_log(WI_LOG_WARN, "run_revoked_not_durable",
		       "pid=%d runs=%zu reason=\"agent process exited\": in force, not yet written (%s); retried each tick",
		       pid, n, wi_error_detail());
	else
		wi_log(WI_LOG_INFO, "run_revoked", "pid=%d runs=%zu reason=\"agent process exited\"", pid, n);
}

static void revoke_list(wi_runs *r, int pid, run *list)
{
	time_t now = wi_clock_now();
	const char *txns[RUNS_REVOKE_BATCH];
	time_t exps[RUNS_REVOKE_BATCH];
	size_t n = 0;
	for (run *x = list; x; x = x->next) {
		if (x->exp < now)
			continue; /* expired: dead already */
		txns[n] = x->txn;
		exps[n] = x->exp;
		if (++n == RUNS_REVOKE_BATCH) {
			revoke_batch(r, pid, txns, exps, n);
			n = 0;
		}
	}
	revoke_batch(r, pid, txns, exps, n);
}

static void on_watch_closed(uv_handle_t *h)
{
	watch *w = h->data;
	close(w->pidfd);
	free(w);
}

/* Loop thread: unlinks `w` and returns its runs (the caller owns them). */
static run *drop_watch(wi_runs *r, watch *w)
{
	pthread_mutex_lock(&r->lock);
	for (watch **pp = &r->watches[watch_bucket(r, w->pid, w->start_time)]; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	run *list = w->runs;
	w->runs = NULL;
	w->sweep = NULL;
	r->n_runs -= w->n_runs;
	w->n_runs = 0;
	r->held--;
	pthread_mutex_unlock(&r->lock);
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, on_watch_closed);
	return list;
}

static void on_exit_readable(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	watch *w = h->data;
	wi_runs *r = w->owner;
	int pid = w->pid;
	/* A pidfd polls readable once its process has exited.  Unlinked first,
	 * under the lock: a run tracked from now on starts a watch of its own,
	 * which finds the process gone and revokes at once. */
	run *list = drop_watch(r, w);
	revoke_list(r, pid, list);
	free_runs(list);
}

/* Loop thread: the first run of a process (or one more, if another request
 * started the watch meanwhile). */
static void start_watch(wi_runs *r, pending *p)
{
	run *x = run_new(p->txn, p->exp);
	pthread_mutex_lock(&r->lock);
	watch *have = find_watch(r, p->pid, p->start_time);
	if (have && x)
		watch_add_run(r, have, x, wi_clock_now());
	if (have)
		r->held--; /* joined a watch: this queued one is not a process of its own */
	pthread_mutex_unlock(&r->lock);
	if (have) {
		if (!x)
			wi_log(WI_LOG_WARN, "run_watch_failed", "pid=%d: out of memory; the run is not tracked", p->pid);
		close(p->pidfd);
		return;
	}
	watch *w = calloc(1, sizeof(*w));
	if (!w || !x || uv_poll_init(r->loop, &w->poll, p->pidfd) != 0) {
		/* Cannot watch: fail safe by revoking now rather than let the run
		 * outlive its agent unnoticed. */
		free(w);
		free(x);
		pthread_mutex_lock(&r->lock);
		r->held--;
		pthread_mutex_unlock(&r->lock);
		wi_log(WI_LOG_WARN, "run_watch_failed", "pid=%d: revoking the run at once", p->pid);
		const char *txn = p->txn;
		revoke_batch(r, p->pid, &txn, &p->exp, 1);
		close(p->pidfd);
		return;
	}
	x->next = NULL;
	w->pidfd = p->pidfd;
	w->pid = p->pid;
	w->start_time = p->start_time;
	w->runs = x;
	w->n_runs = 1;
	w->owner = r;
	w->poll.data = w;
	pthread_mutex_lock(&r->lock);
	watch **b = &r->watches[watch_bucket(r, w->pid, w->start_time)];
	w->next = *b;
	*b = w;
	r->n_runs++;
	pthread_mutex_unlock(&r->lock);
	uv_poll_start(&w->poll, UV_READABLE, on_exit_readable);
}

static void on_async(uv_async_t *a)
{
	wi_runs *r = a->data;
	pthread_mutex_lock(&r->lock);
	pending *q = r->queue;
	r->queue = NULL;
	pthread_mutex_unlock(&r->lock);
	while (q) {
		pending *n = q->next;
		if (!atomic_load(&r->stopping)) {
			start_watch(r, q);
		} else {
			close(q->pidfd);
			pthread_mutex_lock(&r->lock);
			r->held--;
			pthread_mutex_unlock(&r->lock);
		}
		free(q);
		q = n;
	}
}

int wi_runs_new(uv_loop_t *loop, wi_revocations *rev, size_t max_processes, wi_runs **ret)
{
	WI_CHECK(max_processes > 0, WI_E_INVAL, "runs: no room for a process");
	wi_runs *r = calloc(1, sizeof(*r));
	WI_CHECK_ALLOC(r);
	r->loop = loop;
	r->rev = rev;
	r->max_held = max_processes;
	size_t n = 16;
	while (n < max_processes && n <= SIZE_MAX / 2 / sizeof(*r->watches))
		n *= 2;
	/* Zeroed pages: untouched buckets cost no memory (calloc maps them). */
	r->watches = n >= max_processes ? calloc(n, sizeof(*r->watches)) : NULL;
	if (!r->watches) {
		free(r);
		WI_FAIL(WI_E_NOMEM, "runs: a table for %zu processes", max_processes);
	}
	r->mask = n - 1;
	pthread_mutex_init(&r->lock, NULL);
	if (uv_async_init(loop, &r->async, on_async) != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r->watches);
		free(r);
		WI_FAIL(WI_E_IO, "uv_async_init");
	}
	r->async.data = r;
	*ret = r;
	return 0;
}

int wi_runs_track(wi_runs *r, int pidfd, int pid, uint64_t start_time, const char *txn, time_t exp)
{
	if (atomic_load(&r->stopping))
		return 0; /* daemon stop: no watcher will run any more */
	/* Fast path: the process is watched already. */
	run *x = run_new(txn, exp);
	WI_CHECK_ALLOC(x);
	pthread_mutex_lock(&r->lock);
	watch *w = find_watch(r, pid, start_time);
	if (w)
		watch_add_run(r, w, x, wi_clock_now());
	pthread_mutex_unlock(&r->lock);
	if (w)
		return 0;
	free(x);

	size_t n = strlen(txn);
	pending *p = malloc(sizeof(*p) + n + 1);
	WI_CHECK_ALLOC(p);
	pthread_mutex_lock(&r->lock);
	bool room = r->held < r->max_held;
	if (room)
		r->held++;
	pthread_mutex_unlock(&r->lock);
	if (!room) {
		free(p);
		WI_FAIL(WI_E_UNAVAILABLE, "runs of %zu agent processes are watched already", r->max_held);
	}
	p->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (p->pidfd < 0) {
		int e = errno;
		free(p);
		pthread_mutex_lock(&r->lock);
		r->held--;
		pthread_mutex_unlock(&r->lock);
		WI_FAIL(WI_E_IO, "dup pidfd: %s", strerror(e));
	}
	p->pid = pid;
	p->start_time = start_time;
	p->exp = exp;
	memcpy(p->txn, txn, n + 1);
	pthread_mutex_lock(&r->lock);
	p->next = r->queue;
	r->queue = p;
	pthread_mutex_unlock(&r->lock);
	uv_async_send(&r->async);
	return 0;
}

static void on_async_closed(uv_handle_t *h)
{
	wi_runs *r = h->data;
	pthread_mutex_destroy(&r->lock);
	free(r->watches);
	free(r);
}

void wi_runs_stop(wi_runs *r)
{
	if (!r || atomic_load(&r->stopping))
		return;
	atomic_store(&r->stopping, true);
	on_async(&r->async); /* drain: close queued pidfds */
	for (size_t i = 0; i <= r->mask; i++)
		while (r->watches[i])
			free_runs(drop_watch(r, r->watches[i]));
	/* The async handle stays open for late wi_runs_track calls, but must
	 * not keep the loop running. */
	uv_unref((uv_handle_t *)&r->async);
}

void wi_runs_free(wi_runs *r)
{
	if (!r)
		return;
	wi_runs_stop(r);
	on_async(&r->async);
	uv_close((uv_handle_t *)&r->async, on_async_closed);
}

uint64_t wi_runs_revoked(wi_runs *r)
{
	return atomic_load(&r->revoked);
}

size_t wi_runs_tracked(wi_runs *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->n_runs;
	pthread_mutex_unlock(&r->lock);
	return n;
}
