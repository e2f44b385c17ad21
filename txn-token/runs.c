/* txn-token/runs.c — pidfd watchers that revoke a dead agent's runs. */
#include "txn-token/runs.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

typedef struct run {
	struct run *next;
	time_t exp;
	char txn[];
} run;

/* One watched process. */
typedef struct watch {
	uv_poll_t poll;
	struct watch *next;
	int pidfd;
	int pid;
	uint64_t start_time;
	run *runs;
	struct wi_runs *owner;
	bool closing;
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
	pthread_mutex_t lock; /* guards `queue` */
	pending *queue;
	watch *watches; /* loop thread only */
	atomic_uint_fast64_t revoked;
	atomic_bool stopping;
};

static void revoke_all(wi_runs *r, watch *w)
{
	for (run *x = w->runs; x; x = x->next) {
		if (wi_revocations_add(r->rev, WI_REVOKE_TXN, x->txn, x->exp) < 0) {
			wi_log(WI_LOG_ERROR, "run_revoke_failed", "pid=%d: %s", w->pid, wi_error_detail());
			continue;
		}
		atomic_fetch_add(&r->revoked, 1);
		wi_log(WI_LOG_INFO, "run_revoked", "pid=%d reason=\"agent process exited\"", w->pid);
	}
}

static void on_watch_closed(uv_handle_t *h)
{
	watch *w = h->data;
	while (w->runs) {
		run *n = w->runs->next;
		free(w->runs);
		w->runs = n;
	}
	close(w->pidfd);
	free(w);
}

static void drop_watch(wi_runs *r, watch *w)
{
	for (watch **pp = &r->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	w->closing = true;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static void on_exit_readable(uv_poll_t *h, int status, int events)
{
	watch *w = h->data;
	/* A pidfd polls readable once its process has exited. */
	revoke_all(w->owner, w);
	drop_watch(w->owner, w);
}

static void start_watch(wi_runs *r, pending *p)
{
	for (watch *w = r->watches; w; w = w->next) {
		if (w->pid == p->pid && w->start_time == p->start_time) {
			size_t n = strlen(p->txn);
			run *x = malloc(sizeof(*x) + n + 1);
			if (x) {
				x->exp = p->exp;
				memcpy(x->txn, p->txn, n + 1);
				x->next = w->runs;
				w->runs = x;
			}
			close(p->pidfd);
			return;
		}
	}
	size_t tl = strlen(p->txn);
	watch *w = calloc(1, sizeof(*w));
	run *x = malloc(sizeof(*x) + tl + 1);
	if (!w || !x || uv_poll_init(r->loop, &w->poll, p->pidfd) != 0) {
		/* Cannot watch: fail safe by revoking now rather than let the run
		 * outlive its agent unnoticed. */
		free(w);
		free(x);
		wi_log(WI_LOG_WARN, "run_watch_failed", "pid=%d: revoking the run at once", p->pid);
		if (wi_revocations_add(r->rev, WI_REVOKE_TXN, p->txn, p->exp) < 0)
			wi_log(WI_LOG_ERROR, "run_revoke_failed", "pid=%d: %s", p->pid, wi_error_detail());
		close(p->pidfd);
		return;
	}
	x->exp = p->exp;
	memcpy(x->txn, p->txn, tl + 1);
	x->next = NULL;
	w->pidfd = p->pidfd;
	w->pid = p->pid;
	w->start_time = p->start_time;
	w->runs = x;
	w->owner = r;
	w->poll.data = w;
	w->next = r->watches;
	r->watches = w;
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
		if (!atomic_load(&r->stopping))
			start_watch(r, q);
		else
			close(q->pidfd);
		free(q);
		q = n;
	}
}

int wi_runs_new(uv_loop_t *loop, wi_revocations *rev, wi_runs **ret)
{
	wi_runs *r = calloc(1, sizeof(*r));
	WI_CHECK_ALLOC(r);
	r->loop = loop;
	r->rev = rev;
	pthread_mutex_init(&r->lock, NULL);
	if (uv_async_init(loop, &r->async, on_async) != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		WI_FAIL(WI_E_IO, "uv_async_init");
	}
	r->async.data = r;
	*ret = r;
	return 0;
}

int wi_runs_track(wi_runs *r, int pidfd, int pid, uint64_t start_time, const char *txn, time_t exp)
{
	size_t n = strlen(txn);
	pending *p = malloc(sizeof(*p) + n + 1);
	WI_CHECK_ALLOC(p);
	p->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (p->pidfd < 0) {
		free(p);
		WI_FAIL(WI_E_IO, "dup pidfd");
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
	free(r);
}

void wi_runs_stop(wi_runs *r)
{
	if (!r || atomic_load(&r->stopping))
		return;
	atomic_store(&r->stopping, true);
	on_async(&r->async); /* drain: close queued pidfds */
	while (r->watches)
		drop_watch(r, r->watches);
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
