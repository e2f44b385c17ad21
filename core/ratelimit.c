/* core/ratelimit.c — bounded, thread-safe token buckets (see ratelimit.h).
 *
 * Buckets live in one array allocated at creation; a hash index (chained
 * through the array) finds a key, and a doubly linked LRU list through the
 * same array picks the eviction victim, so nothing is allocated per request
 * except a key's copy when it is first seen. */
#include "core/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"

#define NIL (-1)
/* How many of the least recently used buckets are looked at for an idle one
 * before the oldest is evicted regardless (bounds the work per new key). */
#define EVICT_SCAN 16

typedef struct bucket {
	char *key; /* NULL: slot unused */
	uint64_t hash;
	double tokens;
	uint64_t last_ns; /* last refill */
	int32_t hnext;    /* hash chain */
	int32_t prev, next; /* LRU list: head = most recently used */
} bucket;

struct wi_ratelimit {
	pthread_mutex_t lock;
	double rate, burst;
	unsigned flags;
	bucket *b;
	size_t cap, used;
	int32_t *heads;
	size_t mask; /* heads has mask + 1 entries, a power of two */
	int32_t lru_head, lru_tail;
	/* WI_RATELIMIT_CONTENDED: the last key asking and when, and the last
	 * different key before it and when. */
	int32_t recent_a, recent_b;
	uint64_t recent_a_ns, recent_b_ns;
};

static uint64_t hash_key(const char *k)
{
	/* FNV-1a 64.  Keys are SPIFFE IDs from the operator's registry or uid
	 * numbers, not chosen freely by a caller, so flooding one chain is not
	 * a concern; chains are short with heads = 2 x slots. */
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

int wi_ratelimit_new(double rate, double burst, size_t slots, unsigned flags, wi_ratelimit **ret)
{
	WI_CHECK(rate > 0 && burst >= 1 && slots >= 1 && slots <= (1u << 20), WI_E_INVAL,
		 "rate limit: rate %g burst %g slots %zu out of range", rate, burst, slots);
	wi_ratelimit *rl = calloc(1, sizeof(*rl));
	WI_CHECK_ALLOC(rl);
	size_t nh = 1;
	while (nh < 2 * slots)
		nh <<= 1;
	rl->b = calloc(slots, sizeof(*rl->b));
	rl->heads = malloc(nh * sizeof(*rl->heads));
	if (!rl->b || !rl->heads) {
		free(rl->b);
		free(rl->heads);
		free(rl);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	for (size_t i = 0; i < nh; i++)
		rl->heads[i] = NIL;
	rl->mask = nh - 1;
	rl->cap = slots;
	rl->rate = rate;
	rl->burst = burst;
	rl->flags = flags;
	rl->lru_head = rl->lru_tail = NIL;
	rl->recent_a = rl->recent_b = NIL;
	pthread_mutex_init(&rl->lock, NULL);
	*ret = rl;
	return 0;
}

wi_ratelimit *wi_ratelimit_free(wi_ratelimit *rl)
{
	if (!rl)
		return NULL;
	for (size_t i = 0; i < rl->used; i++)
		free(rl->b[i].key);
	free(rl->b);
	free(rl->heads);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
	return NULL;
}

static void lru_unlink(wi_ratelimit *rl, int32_t i)
{
	bucket *e = &rl->b[i];
	if (e->prev != NIL)
		rl->b[e->prev].next = e->next;
	else
		rl->lru_head = e->next;
	if (e->next != NIL)
		rl->b[e->next].prev = e->prev;
	else
		rl->lru_tail = e->prev;
	e->prev = e->next = NIL;
}

static void lru_push_front(wi_ratelimit *rl, int32_t i)
{
	bucket *e = &rl->b[i];
	e->prev = NIL;
	e->next = rl->lru_head;
	if (rl->lru_head != NIL)
		rl->b[rl->lru_head].prev = i;
	rl->lru_head = i;
	if (rl->lru_tail == NIL)
		rl->lru_tail = i;
}

/* Refills `e` up to now; earlier times (another thread's stale clock read)
 * add nothing. */
static void refill(wi_ratelimit *rl, bucket *e, uint64_t now_ns)
{
	if (now_ns <= e->last_ns)
		return;
	double add = (double)(now_ns - e->last_ns) * rl->rate / 1e9;
	e->tokens = e->tokens + add >= rl->burst ? rl->burst : e->tokens + add;
	e->last_ns = now_ns;
}

static int32_t find(wi_ratelimit *rl, const char *key, uint64_t h)
{
	for (int32_t i = rl->heads[h & rl->mask]; i != NIL; i = rl->b[i].hnext)
		if (rl->b[i].hash == h && strcmp(rl->b[i].key, key) == 0)
			return i;
	return NIL;
}

static void evict(wi_ratelimit *rl, int32_t i)
{
	bucket *e = &rl->b[i];
	int32_t *pp = &rl->heads[e->hash & rl->mask];
	while (*pp != i)
		pp = &rl->b[*pp].hnext;
	*pp = e->hnext;
	lru_unlink(rl, i);
	free(e->key);
	e->key = NULL;
	if (rl->recent_a == i)
		rl->recent_a = NIL;
	if (rl->recent_b == i)
		rl->recent_b = NIL;
}

/* A slot for a new key: an unused one, else the least recently used idle
 * bucket among the EVICT_SCAN oldest, else the oldest. */
static int32_t victim(wi_ratelimit *rl, uint64_t now_ns)
{
	if (rl->used < rl->cap)
		return (int32_t)rl->used++;
	int32_t i = rl->lru_tail;
	for (int n = 0; i != NIL && n < EVICT_SCAN; n++, i = rl->b[i].prev) {
		refill(rl, &rl->b[i], now_ns);
		if (rl->b[i].tokens >= rl->burst)
			break;
	}
	if (i == NIL || rl->b[i].tokens < rl->burst)
		i = rl->lru_tail;
	evict(rl, i);
	return i;
}

/* WI_RATELIMIT_CONTENDED: notes that bucket i asked at now_ns and tells
 * whether a different bucket asked within the contention window. */
static bool contended(wi_ratelimit *rl, int32_t i, uint64_t now_ns)
{
	const uint64_t window = (uint64_t)WI_RATELIMIT_CONTENTION_MS * 1000000u;
	if (rl->recent_a != i) {
		rl->recent_b = rl->recent_a;
		rl->recent_b_ns = rl->recent_a_ns;
		rl->recent_a = i;
	}
	rl->recent_a_ns = now_ns;
	/* recent_b_ns may be a little ahead: another thread read the clock
	 * later but took the lock first. */
	return rl->recent_b != NIL && (rl->recent_b_ns >= now_ns || now_ns - rl->recent_b_ns <= window);
}

bool wi__ratelimit_take_at(wi_ratelimit *rl, const char *key, uint64_t now_ns)
{
	uint64_t h = hash_key(key);
	bool ok;
	pthread_mutex_lock(&rl->lock);
	int32_t i = find(rl, key, h);
	if (i == NIL) {
		char *k = strdup(key);
		if (!k) {
			pthread_mutex_unlock(&rl->lock);
			return false;
		}
		i = victim(rl, now_ns);
		bucket *e = &rl->b[i];
		*e = (bucket){.key = k, .hash = h, .tokens = rl->burst, .last_ns = now_ns};
		e->hnext = rl->heads[h & rl->mask];
		rl->heads[h & rl->mask] = i;
		lru_push_front(rl, i);
	} else {
		lru_unlink(rl, i);
		lru_push_front(rl, i);
		refill(rl, &rl->b[i], now_ns);
	}
	bucket *e = &rl->b[i];
	bool busy = !(rl->flags & WI_RATELIMIT_CONTENDED) || contended(rl, i, now_ns);
	if (e->tokens >= 1.0) {
		e->tokens -= 1.0;
		ok = true;
	} else {
		ok = !busy;
	}
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

bool wi_ratelimit_take(wi_ratelimit *rl, const char *key)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return wi__ratelimit_take_at(rl, key, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

size_t wi_ratelimit_count(wi_ratelimit *rl)
{
	pthread_mutex_lock(&rl->lock);
	size_t n = rl->used; /* an evicted slot is reused at once */
	pthread_mutex_unlock(&rl->lock);
	return n;
}

bool wi__ratelimit_has(wi_ratelimit *rl, const char *key)
{
	pthread_mutex_lock(&rl->lock);
	bool has = find(rl, key, hash_key(key)) != NIL;
	pthread_mutex_unlock(&rl->lock);
	return has;
}
