/* core/x509_cache.c — a chained hash table of minted SVIDs. */
#include "core/x509_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/limits.h"

#define BUCKETS 1024u

typedef struct slot {
	struct slot *next;
	uint64_t hash;
	int64_t ttl;
	time_t refresh_at; /* jittered, never past half-life */
	wi_x509_svid *svid;
	char id[];
} slot;

struct wi_x509_cache {
	wi_ca *ca;
	pthread_mutex_t lock;      /* guards the table and stats */
	pthread_mutex_t mint_lock; /* serialises misses */
	slot *buckets[BUCKETS];
	size_t size;
	uint64_t hits, minted;
};

static uint64_t hash_key(const char *id, int64_t ttl)
{
	/* FNV-1a: keys are operator/attestation derived IDs, and a collision only
	 * costs a longer chain walk. */
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ (uint64_t)ttl) * 1099511628211ULL;
	return h;
}

int wi_x509_cache_new(wi_ca *ca, wi_x509_cache **ret)
{
	wi_x509_cache *c = calloc(1, sizeof(*c));
	WI_CHECK_ALLOC(c);
	c->ca = ca;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->mint_lock, NULL);
	*ret = c;
	return 0;
}

static void slot_free(slot *s)
{
	wi_x509_svid_unref(s->svid);
	free(s);
}

wi_x509_cache *wi_x509_cache_free(wi_x509_cache *c)
{
	if (!c)
		return NULL;
	for (unsigned b = 0; b < BUCKETS; b++) {
		slot *s = c->buckets[b];
		while (s) {
			slot *n = s->next;
			slot_free(s);
			s = n;
		}
	}
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->mint_lock);
	free(c);
	return NULL;
}

/* When to re-mint: in the 10 % of the lifetime before half-life, at random,
 * so that identities minted together do not all rotate together (Workload
 * API: servers should splay widespread updates), and one daemon tick early,
 * so that the push (made at the first tick at or after this time) still
 * reaches the stream before half-life. */
static time_t jittered_refresh(const wi_x509_svid *svid, time_t minted_at)
{
	/* Measured from the mint, not from notBefore, which is backdated for
	 * clock skew: a 10 s SVID must not look half-used the moment it is made. */
	time_t start = minted_at > wi_x509_svid_not_before(svid) ? minted_at : wi_x509_svid_not_before(svid);
	time_t life = wi_x509_svid_not_after(svid) - start;
	time_t half = start + life / 2;
	if (half - WI_TICK_SECONDS > start)
		half -= WI_TICK_SECONDS;
	uint32_t r = 0;
	if (life <= 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return half;
	int64_t span = (int64_t)life / 10; /* 10 % of the lifetime */
	return half - (span > 0 ? (time_t)(r % (uint64_t)(span + 1)) : 0);
}

/* Under c->lock: a current SVID for the key, referenced, or NULL. */
static wi_x509_svid *lookup_locked(wi_x509_cache *c, uint64_t h, const char *id, int64_t ttl, time_t now,
				   time_t *ret_refresh)
{
	for (slot *s = c->buckets[h % BUCKETS]; s; s = s->next)
		if (s->hash == h && s->ttl == ttl && strcmp(s->id, id) == 0 && now < s->refresh_at) {
			*ret_refresh = s->refresh_at;
			return wi_x509_svid_ref(s->svid);
		}
	return NULL;
}

static void prune_locked(wi_x509_cache *c, time_t now)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
		slot **pp = &c->buckets[b];
		while (*pp) {
			slot *s = *pp;
			if (now >= s->refresh_at) {
				*pp = s->next;
				slot_free(s);
				c->size--;
			} else {
				pp = &s->next;
			}
		}
	}
}

/* Under c->lock: replaces any slot of the key with `svid` (takes a ref). */
static void insert_locked(wi_x509_cache *c, uint64_t h, const char *id, int64_t ttl, wi_x509_svid *svid,
			  time_t refresh_at, time_t now)
{
	slot **pp = &c->buckets[h % BUCKETS];
	while (*pp) {
		slot *s = *pp;
		if (s->hash == h && s->ttl == ttl && strcmp(s->id, id) == 0) {
			*pp = s->next;
			slot_free(s);
			c->size--;
		} else {
			pp = &s->next;
		}
	}
	if (c->size >= WI_X509_CACHE_MAX)
		prune_locked(c, now);
	if (c->size >= WI_X509_CACHE_MAX)
		return; /* still full of live SVIDs: serve uncached rather than evict */
	size_t idlen = strlen(id);
	slot *s = malloc(sizeof(*s) + idlen + 1);
	if (!s)
		return;
	s->hash = h;
	s->ttl = ttl;
	s->refresh_at = refresh_at;
	s->svid = wi_x509_svid_ref(svid);
	memcpy(s->id, id, idlen + 1);
	s->next = c->buckets[h % BUCKETS];
	c->buckets[h % BUCKETS] = s;
	c->size++;
}

int wi_x509_cache_get(wi_x509_cache *c, const char *spiffe_id, int64_t ttl, time_t now, wi_x509_svid **ret,
		      time_t *ret_refresh_at)
{
	uint64_t h = hash_key(spiffe_id, ttl);
	time_t refresh = 0;
	pthread_mutex_lock(&c->lock);
	wi_x509_svid *svid = lookup_locked(c, h, spiffe_id, ttl, now, &refresh);
	if (svid)
		c->hits++;
	pthread_mutex_unlock(&c->lock);
	if (svid) {
		*ret = svid;
		if (ret_refresh_at)
			*ret_refresh_at = refresh;
		return 0;
	}

	pthread_mutex_lock(&c->mint_lock);
	pthread_mutex_lock(&c->lock);
	svid = lookup_locked(c, h, spiffe_id, ttl, now, &refresh); /* minted while we waited? */
	if (svid)
		c->hits++;
	pthread_mutex_unlock(&c->lock);
	if (!svid) {
		int rc = wi_ca_mint_x509_svid(c->ca, spiffe_id, ttl, now, &svid);
		if (rc < 0) {
			pthread_mutex_unlock(&c->mint_lock);
			return rc;
		}
		refresh = jittered_refresh(svid, now);
		pthread_mutex_lock(&c->lock);
		c->minted++;
		insert_locked(c, h, spiffe_id, ttl, svid, refresh, now);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&c->mint_lock);
	*ret = svid;
	if (ret_refresh_at)
		*ret_refresh_at = refresh;
	return 0;
}

void wi_x509_cache_prune(wi_x509_cache *c, time_t now)
{
	pthread_mutex_lock(&c->lock);
	prune_locked(c, now);
	pthread_mutex_unlock(&c->lock);
}

void wi_x509_cache_get_stats(wi_x509_cache *c, wi_x509_cache_stats *ret)
{
	pthread_mutex_lock(&c->lock);
	ret->hits = c->hits;
	ret->minted = c->minted;
	ret->size = c->size;
	pthread_mutex_unlock(&c->lock);
}
