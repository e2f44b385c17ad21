/* core/verified_cache.c — see verified_cache.h. */
#include "core/verified_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/digest.h"
#include "core/limits.h"

typedef struct entry {
	uint8_t digest[WI_VERIFIED_DIGEST_LEN];
	bool used;
	time_t until;
	const void *owner;
	wi_jwks *keys;
	json_t *claims;
} entry;

struct wi_verified_cache {
	pthread_mutex_t lock;
	entry *slots;
	size_t n;
	atomic_uint_fast64_t hits, misses;
};

int wi_verified_cache_new(size_t slots, wi_verified_cache **ret)
{
	WI_CHECK(slots > 0, WI_E_INVAL, "verified cache needs a slot");
	wi_verified_cache *c = calloc(1, sizeof(*c));
	WI_CHECK_ALLOC(c);
	c->slots = calloc(slots, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	c->n = slots;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

/* Under the lock (or alone): empties a slot. */
static void entry_clear(entry *e)
{
	wi_jwks_unref(e->keys);
	json_decref(e->claims);
	memset(e, 0, sizeof(*e));
}

wi_verified_cache *wi_verified_cache_free(wi_verified_cache *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		entry_clear(&c->slots[i]);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

int wi_verified_cache_digest(const char *token, size_t len, uint8_t ret[WI_VERIFIED_DIGEST_LEN])
{
	_Static_assert(WI_VERIFIED_DIGEST_LEN == WI_SHA256_LEN, "the cache key is a SHA-256");
	return wi_digest_sha256(token, len, ret);
}

static entry *slot_of(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN])
{
	uint64_t h;
	memcpy(&h, digest, sizeof(h)); /* a cryptographic digest: any 8 bytes are uniform */
	return &c->slots[h % c->n];
}

int wi_verified_cache_get(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], time_t now,
			  const wi_jwks *expect, const void **ret_owner, wi_jwks **ret_keys, json_t **ret_claims)
{
	const void *owner = NULL;
	wi_jwks *keys = NULL;
	json_t *shared = NULL;
	pthread_mutex_lock(&c->lock);
	entry *e = slot_of(c, digest);
	if (e->used && CRYPTO_memcmp(e->digest, digest, WI_VERIFIED_DIGEST_LEN) == 0) {
		if (e->until > now && (!expect || e->keys == expect)) {
			owner = e->owner;
			keys = wi_jwks_ref(e->keys);
			shared = json_incref(e->claims); /* atomic: copied below, outside the lock */
		} else {
			entry_clear(e); /* expired, or verified under a key set gone */
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!keys) {
		atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
		return WI_E_NOT_FOUND;
	}
	/* The caller gets its own copy: nothing it does can change the entry. */
	json_t *copy = json_deep_copy(shared);
	json_decref(shared);
	if (!copy) {
		wi_jwks_unref(keys);
		atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
		return WI_E_NOT_FOUND;
	}
	atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
	*ret_owner = owner;
	*ret_keys = keys;
	*ret_claims = copy;
	return 0;
}

void wi_verified_cache_reject(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN],
			      const wi_jwks *keys)
{
	entry old = {0};
	pthread_mutex_lock(&c->lock);
	entry *e = slot_of(c, digest);
	if (e->used && e->keys == keys && CRYPTO_memcmp(e->digest, digest, WI_VERIFIED_DIGEST_LEN) == 0) {
		old = *e;
		memset(e, 0, sizeof(*e));
	}
	pthread_mutex_unlock(&c->lock);
	entry_clear(&old); /* outside the lock: the last reference may free a key set */
	atomic_fetch_sub_explicit(&c->hits, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
}

void wi_verified_cache_put(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], const void *owner,
			  wi_jwks *keys, const json_t *claims, time_t now, time_t until)
{
	if (until <= now || !keys || !claims)
		return;
	json_t *copy = json_deep_copy(claims);
	if (!copy)
		return;
	entry fresh = {.used = true, .until = until, .owner = owner, .keys = wi_jwks_ref(keys), .claims = copy};
	memcpy(fresh.digest, digest, WI_VERIFIED_DIGEST_LEN);
	entry old;
	pthread_mutex_lock(&c->lock);
	entry *e = slot_of(c, digest);
	old = *e;
	*e = fresh;
	pthread_mutex_unlock(&c->lock);
	entry_clear(&old); /* frees outside the lock */
}

void wi_verified_cache_stats(wi_verified_cache *c, uint64_t *ret_hits, uint64_t *ret_misses)
{
	*ret_hits = atomic_load(&c->hits);
	*ret_misses = atomic_load(&c->misses);
}

int wi_verified_cache_lookup(wi_verified_cache *c, const char *token, size_t len, const wi_jwks *keys, time_t now,
			     uint8_t ret_digest[WI_VERIFIED_DIGEST_LEN], json_t **ret_claims)
{
	if (!c)
		return 0;
	/* Refused before any hashing, as every verifier refuses it. */
	WI_CHECK(len <= WI_JWT_MAX_LEN, WI_E_TOO_BIG, "token longer than %u bytes", (unsigned)WI_JWT_MAX_LEN);
	WI_TRY(wi_verified_cache_digest(token, len, ret_digest));
	const void *owner = NULL;
	wi_jwks *was = NULL;
	if (wi_verified_cache_get(c, ret_digest, now, keys, &owner, &was, ret_claims) < 0)
		return 0;
	wi_jwks_unref(was);
	return 1;
}

void wi_verified_cache_remember(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], const void *owner,
				wi_jwks *keys, const json_t *claims, time_t now, int64_t exp)
{
	if (!c)
		return;
	int64_t cap = (int64_t)now + WI_VERIFIED_CACHE_TTL_MAX;
	wi_verified_cache_put(c, digest, owner, keys, claims, now, (time_t)(exp < cap ? exp : cap));
}
