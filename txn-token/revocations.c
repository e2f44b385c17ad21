/* txn-token/revocations.c — the kill switch's in-memory index (DESIGN §4:
 * revocation is immediate and binary).
 *
 * Three chained hash sets (txn, actor, principal), each entry carrying its
 * `until`.  Locks:
 *   - `lock`, a read-write lock: readers (every token check) share it; it is
 *     taken exclusively only for the pointer moves that publish a change.
 *   - `write_lock`, a mutex: serialises add and prune end to end, so the slow
 *     part (the fsync in the store) runs without blocking readers, and the
 *     set cannot change between preparing an entry and linking it.
 * Only a writer changes the sets, so a writer may read them holding
 * write_lock alone.
 *
 * Ordering: persist, then index.  Everything that can fail (allocation,
 * table growth, the capacity check) happens before the store write, so once
 * the revocation is durable the in-memory step cannot fail: the index never
 * lacks a revocation that the store holds.  It holds one the store refused
 * only when asked to (wi_revocations_add_many_now, for a dead agent's runs,
 * which no caller would retry): such entries are marked not durable, and
 * wi_revocations_persist writes them once the store accepts them. */
#include "txn-token/revocations.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/cleanup.h"
#include "core/limits.h"

#define N_KINDS 3
#define BUCKETS_MIN 64u

typedef struct entry {
	struct entry *next; /* hash chain */
	uint64_t hash;
	time_t until; /* in force while until > now */
	size_t len;
	bool durable; /* the store holds it until `until` (under write_lock); the value follows it at once */
	char value[];
} entry;

typedef struct set {
	entry **buckets;
	size_t n_buckets; /* a power of two, or 0 before the first entry */
	size_t size;
} set;

struct wi_revocations {
	pthread_rwlock_t lock;
	pthread_mutex_t write_lock;
	wi_store *store; /* borrowed */
	uint64_t key[2]; /* SipHash key, random per process */
	set sets[N_KINDS];
	size_t count; /* entries across the sets */
	/* Entries not durable: changed under write_lock only, read without it
	 * by wi_revocations_unpersisted (the tick, the metrics scrape), which
	 * must not wait behind a writer's fsync. */
	atomic_size_t n_volatile;
};

/* An entry with room for a value of len bytes and its NUL: the value starts
 * at its offset, not after sizeof(entry)'s tail padding (7 bytes here, which
 * put a 22-character run id into malloc's next size class: +16 bytes for
 * each revocation in force); never less than the struct itself, which the
 * compound-literal stores write whole. */
static entry *entry_alloc(size_t len)
{
	size_t size = offsetof(entry, value) + len + 1;
	return malloc(size < sizeof(entry) ? sizeof(entry) : size);
}

/* --- hashing ------------------------------------------------------------------
 * SipHash-2-4 with a random key: the values come from outside (a user's
 * `sub`, an operator's request), and a keyed hash keeps anyone from choosing
 * values that all land in one chain. */

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void sipround(uint64_t v[4])
{
	v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
	v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
	v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
	v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static uint64_t siphash(const uint64_t k[2], const char *data, size_t len)
{
	uint64_t v[4] = {0x736f6d6570736575ULL ^ k[0], 0x646f72616e646f6dULL ^ k[1],
			 0x6c7967656e657261ULL ^ k[0], 0x7465646279746573ULL ^ k[1]};
	const uint8_t *p = (const uint8_t *)data;
	size_t full = len - len % 8;
	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = 0;
		for (int j = 0; j < 8; j++) /* little-endian, whatever the host */
			m |= (uint64_t)p[i + (size_t)j] << (8 * j);
		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t j = 0; j < len % 8; j++)
		b |= (uint64_t)p[full + j] << (8 * j);
	v[3] ^= b;
	sipround(v);
	sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* --- sets ---------------------------------------------------------------------- */

static entry *set_find(const set *st, uint64_t h, const char *value, size_t len)
{
	if (st->n_buckets == 0)
		return NULL;
	for (entry *e = st->buckets[h & (st->n_buckets - 1)]; e; e = e->next)
		if (e->hash == h && e->len == len && memcmp(e->value, value, len) == 0)
			return e;
	return NULL;
}

/* Never fails: the caller made room with reserve() first. */
static void set_link(set *st, entry *e)
{
	entry **b = &st->buckets[e->hash & (st->n_buckets - 1)];
	e->next = *b;
	*b = e;
	st->size++;
}

static void set_clear(set *st)
{
	for (size_t i = 0; i < st->n_buckets; i++) {
		entry *e = st->buckets[i];
		while (e) {
			entry *n = e->next;
			free(e);
			e = n;
		}
	}
	free(st->buckets);
	*st = (set){0};
}

static pthread_rwlock_t *wrlock(wi_revocations *r)
{
	pthread_rwlock_wrlock(&r->lock);
	return &r->lock;
}

static pthread_rwlock_t *rdlock(wi_revocations *r)
{
	pthread_rwlock_rdlock(&r->lock);
	return &r->lock;
}


/* Makes room for `extra` more entries (load factor at most 1), so that
 * linking them later cannot fail.  Called with write_lock held. */
static int reserve(wi_revocations *r, set *st, size_t extra)
{
	if (st->size + extra <= st->n_buckets)
		return 0;
	size_t n = st->n_buckets ? st->n_buckets : BUCKETS_MIN;
	while (n < st->size + extra && n <= SIZE_MAX / 2 / sizeof(entry *))
		n *= 2;
	WI_CHECK(n >= st->size + extra && n <= SIZE_MAX / sizeof(entry *), WI_E_TOO_BIG, "revocation table size");
	entry **nb = calloc(n, sizeof(*nb));
	WI_CHECK_ALLOC(nb);
	/* Readers walk the chains: the rehash is a published change. */
	_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = wrlock(r);
	for (size_t i = 0; i < st->n_buckets; i++) {
		entry *e = st->buckets[i];
		while (e) {
			entry *next = e->next;
			entry **b = &nb[e->hash & (n - 1)];
			e->next = *b;
			*b = e;
			e = next;
		}
	}
	entry **old = st->buckets;
	st->buckets = nb;
	st->n_buckets = n;
	free(old);
	return 0;
}

static int check_value(wi_revocation_kind kind, const char *value, size_t *ret_len)
{
	WI_CHECK(kind == WI_REVOKE_TXN || kind == WI_REVOKE_ACTOR || kind == WI_REVOKE_PRINCIPAL,
		 WI_E_INVAL, "unknown revocation kind %d", (int)kind);
	WI_CHECK(value != NULL && value[0] != '\0', WI_E_INVAL, "empty revocation value");
	size_t len = strnlen(value, WI_REVOCATION_VALUE_MAX + 1);
	WI_CHECK(len <= WI_REVOCATION_VALUE_MAX, WI_E_TOO_BIG, "revocation value longer than %d bytes",
		 WI_REVOCATION_VALUE_MAX);
	*ret_len = len;
	return 0;
}

/* What add and load share: either the existing entry to extend (*ret_found)
 * or a new entry, with room reserved for it (*ret_fresh).  Changes nothing
 * that readers see.  Called with write_lock held. */
static int prepare_entry(wi_revocations *r, set *st, const char *value, size_t len, entry **ret_found,
			 entry **ret_fresh)
{
	uint64_t h = siphash(r->key, value, len);
	entry *found = set_find(st, h, value, len);
	if (found) {
		*ret_found = found;
		*ret_fresh = NULL;
		return 0;
	}
	/* Refuse rather than drop: a revocation we cannot hold is an error the
	 * caller sees, never a silent gap in the kill switch. */
	WI_CHECK(r->count < WI_REVOCATIONS_MAX, WI_E_TOO_BIG,
		 "%d revocations already in force: prune expired ones first", WI_REVOCATIONS_MAX);
	_cleanup_(freep) entry *e = entry_alloc(len);
	WI_CHECK_ALLOC(e);
	*e = (entry){.hash = h, .len = len};
	memcpy(e->value, value, len);
	e->value[len] = '\0';
	WI_TRY(reserve(r, st, 1));
	*ret_found = NULL;
	*ret_fresh = TAKE_PTR(e);
	return 0;
}

/* Publishes a prepared change read from the store; cannot fail. */
static void commit_entry(wi_revocations *r, set *st, entry *found, entry *fresh, time_t until)
{
	_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = wrlock(r);
	if (found) {
		/* store.h: re-revoking extends `until`, never shortens it. */
		if (until > found->until)
			found->until = until;
	} else {
		fresh->until = until;
		fresh->durable = true;
		set_link(st, fresh);
		r->count++;
	}
}

/* --- public ---------------------------------------------------------------------- */

static int load_one(wi_revocation_kind kind, const char *value, time_t until, void *ud)
{
	wi_revocations *r = ud;
	size_t len = 0;
	WI_TRY(check_value(kind, value, &len));
	set *st = &r->sets[kind - 1];
	entry *found = NULL, *fresh = NULL;
	WI_TRY(prepare_entry(r, st, value, len, &found, &fresh));
	commit_entry(r, st, found, fresh, until);
	return 0;
}

static void revocations_freep(wi_revocations **p)
{
	wi_revocations_free(*p);
}

static int init_locks(wi_revocations *r)
{
	pthread_rwlockattr_t attr;
	int rc = pthread_rwlockattr_init(&attr);
	WI_CHECK(rc == 0, WI_E_NOMEM, "rwlock attributes: %s", strerror(rc));
	/* glibc's default lets a steady stream of readers starve the writer;
	 * a revocation must not wait behind token checks. */
	rc = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (rc == 0)
		rc = pthread_rwlock_init(&r->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	WI_CHECK(rc == 0, WI_E_NOMEM, "rwlock: %s", strerror(rc));
	rc = pthread_mutex_init(&r->write_lock, NULL);
	if (rc != 0) {
		pthread_rwlock_destroy(&r->lock);
		WI_FAIL(WI_E_NOMEM, "mutex: %s", strerror(rc));
	}
	return 0;
}

int wi_revocations_open(wi_store *store, time_t now, wi_revocations **ret)
{
	WI_CHECK(store != NULL && ret != NULL, WI_E_INVAL, "revocations: NULL argument");
	wi_revocations *raw = calloc(1, sizeof(*raw));
	WI_CHECK_ALLOC(raw);
	int rc = init_locks(raw);
	if (rc < 0) {
		free(raw);
		return rc;
	}
	_cleanup_(revocations_freep) wi_revocations *r = raw;
	WI_CHECK_ERRNO(getrandom(r->key, sizeof(r->key), 0) == (ssize_t)sizeof(r->key), "getrandom: %s",
		       strerror(errno));
	r->store = store;
	/* Not shared yet: load_one's locking is only for form's sake. */
	WI_TRY(wi_store_each_revocation(store, now, load_one, r));
	*ret = TAKE_PTR(r);
	return 0;
}

wi_revocations *wi_revocations_free(wi_revocations *r)
{
	if (!r)
		return NULL;
	for (int k = 0; k < N_KINDS; k++)
		set_clear(&r->sets[k]);
	pthread_rwlock_destroy(&r->lock);
	pthread_mutex_destroy(&r->write_lock);
	free(r);
	return NULL;
}

static int add_many(wi_revocations *r, wi_revocation_kind kind, const char *const *values, const time_t *untils,
		    size_t n, bool *ret_durable);

int wi_revocations_add(wi_revocations *r, wi_revocation_kind kind, const char *value, time_t until)
{
	return add_many(r, kind, &value, &until, 1, NULL);
}

int wi_revocations_add_many(wi_revocations *r, wi_revocation_kind kind, const char *const *values,
			    const time_t *untils, size_t n)
{
	return add_many(r, kind, values, untils, n, NULL);
}

int wi_revocations_add_many_now(wi_revocations *r, wi_revocation_kind kind, const char *const *values,
				const time_t *untils, size_t n, bool *ret_durable)
{
	WI_CHECK(ret_durable != NULL, WI_E_INVAL, "revocations: NULL argument");
	return add_many(r, kind, values, untils, n, ret_durable);
}

/* One value of a batch: its hash and length, and the entry made for it
 * when the set did not hold it yet. */
typedef struct batch_item {
	uint64_t hash;
	size_t len;
	entry *fresh;
} batch_item;

typedef struct batch {
	batch_item *items;
	size_t n;
	const char **put_values; /* what the store must record: new or later */
	time_t *put_untils;
	size_t n_put;
} batch;

static void batch_clear(batch *b)
{
	for (size_t i = 0; b->items && i < b->n; i++)
		free(b->items[i].fresh);
	free(b->items);
	free(b->put_values);
	free(b->put_untils);
}

/* ret_durable NULL: persisted and indexed, or neither.  Otherwise indexed even
 * where the store refuses, with *ret_durable false. */
static int add_many(wi_revocations *r, wi_revocation_kind kind, const char *const *values, const time_t *untils,
		    size_t n, bool *ret_durable)
{
	if (ret_durable)
		*ret_durable = true;
	WI_CHECK(r != NULL && (n == 0 || (values != NULL && untils != NULL)), WI_E_INVAL,
		 "revocations: NULL argument");
	WI_CHECK(n <= WI_REVOCATIONS_MAX, WI_E_TOO_BIG, "%zu revocations in one batch", n);
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		WI_TRY(check_value(kind, values[i], &len));
		WI_CHECK(untils[i] > 0, WI_E_INVAL, "revocation until %lld is not a time", (long long)untils[i]);
	}
	if (n == 0)
		return 0;
	_cleanup_(batch_clear) batch b = {.items = calloc(n, sizeof(batch_item)),
					  .n = n,
					  .put_values = calloc(n, sizeof(char *)),
					  .put_untils = calloc(n, sizeof(time_t))};
	WI_CHECK_ALLOC(b.items && b.put_values && b.put_untils);

	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *writing = wi_mutex_lock(&r->write_lock);
	set *st = &r->sets[kind - 1];
	/* Everything that can fail, before the store write: an entry for each
	 * value the set lacks (a value twice in the batch gets two; the second
	 * finds the first when linking and is dropped), and room for them all.
	 * The store records only what changes something: a value new to the
	 * set, or one in force until earlier than asked (store.h: its rows'
	 * greatest until holds).  A value already in force as long is durable
	 * as it is (persist before index), so it costs no row. */
	size_t n_fresh = 0;
	for (size_t i = 0; i < n; i++) {
		batch_item *it = &b.items[i];
		it->len = strlen(values[i]);
		it->hash = siphash(r->key, values[i], it->len);
		const entry *have = set_find(st, it->hash, values[i], it->len);
		if (!have || have->until < untils[i] || !have->durable) {
			/* One not durable yet is written with all it holds. */
			b.put_values[b.n_put] = values[i];
			b.put_untils[b.n_put] = have && have->until > untils[i] ? have->until : untils[i];
			b.n_put++;
		}
		if (have)
			continue;
		it->fresh = entry_alloc(it->len);
		WI_CHECK_ALLOC(it->fresh);
		*it->fresh = (entry){.hash = it->hash, .len = it->len};
		memcpy(it->fresh->value, values[i], it->len + 1);
		n_fresh++;
	}
	/* Refuse rather than drop: a revocation we cannot hold is an error the
	 * caller sees, never a silent gap in the kill switch. */
	WI_CHECK(r->count + n_fresh <= WI_REVOCATIONS_MAX, WI_E_TOO_BIG,
		 "%d revocations already in force: prune expired ones first", WI_REVOCATIONS_MAX);
	WI_TRY(reserve(r, st, n_fresh));
	/* revocations.h: persisted before it returns 0.  If the store refuses,
	 * nothing is indexed: a revocation that would vanish at restart is not
	 * reported as in force. */
	int put = wi_store_put_revocations(r->store, kind, b.put_values, b.put_untils, b.n_put);
	if (put < 0 && !ret_durable)
		return put;
	bool durable = put >= 0;
	_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = wrlock(r);
	for (size_t i = 0; i < n; i++) {
		batch_item *it = &b.items[i];
		entry *e = set_find(st, it->hash, values[i], it->len);
		if (e) {
			/* store.h: re-revoking extends `until`, never shortens it.
			 * Written: durable with all it holds.  Refused: durable
			 * only if nothing was to be written for it. */
			bool extends = untils[i] > e->until;
			if (extends)
				e->until = untils[i];
			bool was = e->durable;
			e->durable = durable || (was && !extends);
			r->n_volatile += was && !e->durable;
			r->n_volatile -= !was && e->durable;
			continue;
		}
		e = it->fresh; /* absent before, and only a writer changes the set */
		it->fresh = NULL;
		e->until = untils[i];
		e->durable = durable;
		r->n_volatile += !durable;
		set_link(st, e);
		r->count++;
	}
	if (!durable)
		*ret_durable = false; /* the store's reason stays in wi_error_detail() */
	return 0;
}

int wi_revocations_persist(wi_revocations *r, time_t now, size_t *ret_left)
{
	WI_CHECK(r != NULL, WI_E_INVAL, "revocations: NULL argument");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *writing = wi_mutex_lock(&r->write_lock);
	if (ret_left)
		*ret_left = r->n_volatile;
	if (r->n_volatile == 0)
		return 0;
	/* Only a writer changes the sets, and this one holds write_lock: the
	 * entries' values may be pointed at without the read-write lock. */
	_cleanup_(freep) const char **values = calloc(r->n_volatile, sizeof(*values));
	_cleanup_(freep) time_t *untils = calloc(r->n_volatile, sizeof(*untils));
	_cleanup_(freep) entry **picked = calloc(r->n_volatile, sizeof(*picked));
	WI_CHECK_ALLOC(values && untils && picked);
	for (int k = 0; k < N_KINDS; k++) {
		set *st = &r->sets[k];
		size_t n = 0;
		for (size_t i = 0; i < st->n_buckets; i++)
			for (entry *e = st->buckets[i]; e; e = e->next) {
				if (e->durable || n == r->n_volatile)
					continue;
				if (e->until <= now) { /* over: nothing left to keep */
					e->durable = true;
					r->n_volatile--;
					continue;
				}
				picked[n] = e;
				values[n] = e->value;
				untils[n] = e->until;
				n++;
			}
		if (ret_left)
			*ret_left = r->n_volatile;
		if (n == 0)
			continue;
		WI_TRY(wi_store_put_revocations(r->store, (wi_revocation_kind)(k + 1), values, untils, n));
		for (size_t i = 0; i < n; i++)
			picked[i]->durable = true;
		r->n_volatile -= n;
		if (ret_left)
			*ret_left = r->n_volatile;
	}
	return 0;
}

size_t wi_revocations_unpersisted(wi_revocations *r)
{
	if (!r)
		return 0;
	return atomic_load_explicit(&r->n_volatile, memory_order_relaxed);
}

static bool in_force(const wi_revocations *r, wi_revocation_kind kind, const char *value, time_t now)
{
	size_t len = strlen(value);
	const entry *e = set_find(&r->sets[kind - 1], siphash(r->key, value, len), value, len);
	return e != NULL && e->until > now;
}

bool wi_revocations_is_revoked(wi_revocations *r, const char *txn, const char *principal,
			       const char *const *actors, size_t n_actors, time_t now)
{
	/* Fail closed: a caller's bug must not switch the kill switch off. */
	if (r == NULL || (n_actors > 0 && actors == NULL))
		return true;
	_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = rdlock(r);
	if (txn && in_force(r, WI_REVOKE_TXN, txn, now))
		return true;
	if (principal && in_force(r, WI_REVOKE_PRINCIPAL, principal, now))
		return true;
	/* DESIGN §4: an actor revoked anywhere in the chain (any hop, not only
	 * the current one) revokes the token. */
	for (size_t i = 0; i < n_actors; i++)
		if (actors[i] && in_force(r, WI_REVOKE_ACTOR, actors[i], now))
			return true;
	return false;
}

/* Buckets unlinked per hold of the read-write lock: readers (every token
 * check) wait for at most this many chains, not for the whole index.  With
 * 200 000 revocations half of them expired, one hold for all of them kept
 * a check waiting 12-14 ms. */
#define PRUNE_BUCKETS_PER_HOLD 256

/* Unlinks the expired entries of the buckets listed, under the read-write
 * lock, and frees them after letting the readers go. */
static void prune_buckets(wi_revocations *r, set *st, const size_t *dirty, size_t n_dirty, time_t now)
{
	if (n_dirty == 0)
		return;
	entry *dead = NULL;
	{
		_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = wrlock(r);
		for (size_t d = 0; d < n_dirty; d++) {
			for (entry **pp = &st->buckets[dirty[d]]; *pp;) {
				entry *e = *pp;
				if (e->until > now) {
					pp = &e->next;
					continue;
				}
				*pp = e->next;
				e->next = dead;
				dead = e;
				st->size--;
				r->count--;
				r->n_volatile -= !e->durable;
			}
		}
	}
	while (dead) {
		entry *n = dead->next;
		free(dead);
		dead = n;
	}
}

int wi_revocations_prune(wi_revocations *r, time_t now)
{
	WI_CHECK(r != NULL, WI_E_INVAL, "revocations: NULL argument");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *writing = wi_mutex_lock(&r->write_lock);
	/* Store first: if it fails, memory still mirrors it. */
	WI_TRY(wi_store_prune_revocations(r->store, now));
	/* Only a writer changes the sets, and this one holds write_lock: the
	 * chains are searched without the read-write lock, which is taken only
	 * to unlink, a few buckets at a time.  A reader between two holds sees
	 * some expired entries still linked, which are not in force anyway. */
	size_t dirty[PRUNE_BUCKETS_PER_HOLD];
	for (int k = 0; k < N_KINDS; k++) {
		set *st = &r->sets[k];
		size_t n_dirty = 0;
		for (size_t i = 0; i < st->n_buckets; i++) {
			bool expired = false;
			for (const entry *e = st->buckets[i]; e && !expired; e = e->next)
				expired = e->until <= now;
			if (!expired)
				continue;
			dirty[n_dirty++] = i;
			if (n_dirty == PRUNE_BUCKETS_PER_HOLD) {
				prune_buckets(r, st, dirty, n_dirty, now);
				n_dirty = 0;
			}
		}
		prune_buckets(r, st, dirty, n_dirty, now);
	}
	return 0;
}

size_t wi_revocations_count(wi_revocations *r)
{
	if (!r)
		return 0;
	_cleanup_(wi_rwlock_unlockp) pthread_rwlock_t *locked = rdlock(r);
	return r->count;
}
