/* Unit tests: the cache of verified tokens (core/verified_cache.c):
 * hits return the owner, the key set and a private copy of the claims; an
 * entry dies at `until`; a colliding digest replaces it; nothing is cached
 * without a future `until`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/jwk.h"
#include "core/verified_cache.h"

static void digest_of(const char *s, uint8_t d[WI_VERIFIED_DIGEST_LEN])
{
	assert_int_equal(wi_verified_cache_digest(s, strlen(s), d), 0);
}

/* The cache's hit and miss counts are exactly these. */
static void expect_stats(wi_verified_cache *c, uint64_t hits, uint64_t misses)
{
	uint64_t h, m;
	wi_verified_cache_stats(c, &h, &m);
	assert_int_equal(h, hits);
	assert_int_equal(m, misses);
}

static void test_hit_miss_expiry(void **state)
{
	(void)state;
	wi_verified_cache *c = NULL;
	assert_int_equal(wi_verified_cache_new(64, &c), 0);
	wi_jwks *keys = NULL;
	assert_int_equal(wi_jwks_new(&keys), 0);
	uint8_t a[WI_VERIFIED_DIGEST_LEN], b[WI_VERIFIED_DIGEST_LEN];
	digest_of("token-a", a);
	digest_of("token-b", b);
	assert_memory_not_equal(a, b, sizeof(a));
	/* SHA-256 of "abc" (FIPS 180-2 example): the digest is the real one */
	uint8_t abc[WI_VERIFIED_DIGEST_LEN];
	digest_of("abc", abc);
	static const uint8_t want[4] = {0xba, 0x78, 0x16, 0xbf};
	assert_memory_equal(abc, want, sizeof(want));

	const void *owner = NULL;
	wi_jwks *got = NULL;
	json_t *claims = NULL;
	assert_int_equal(wi_verified_cache_get(c, a, 100, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);
	assert_null(got);

	int tag = 7;
	json_t *cl = json_pack("{s:s}", "sub", "alice");
	wi_verified_cache_put(c, a, &tag, keys, cl, 100, 160);
	json_decref(cl);
	assert_int_equal(wi_verified_cache_get(c, a, 159, NULL, &owner, &got, &claims), 0);
	assert_ptr_equal(owner, &tag);
	assert_ptr_equal(got, keys);
	assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
	/* a private copy */
	json_object_set_new(claims, "sub", json_string("mallory"));
	json_decref(claims);
	wi_jwks_unref(got);
	assert_int_equal(wi_verified_cache_get(c, a, 159, NULL, &owner, &got, &claims), 0);
	assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
	json_decref(claims);
	wi_jwks_unref(got);
	/* another digest misses */
	assert_int_equal(wi_verified_cache_get(c, b, 150, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);
	/* dead at until */
	assert_int_equal(wi_verified_cache_get(c, a, 160, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);
	/* a past or present until caches nothing */
	cl = json_pack("{s:s}", "sub", "bob");
	wi_verified_cache_put(c, b, &tag, keys, cl, 200, 200);
	wi_verified_cache_put(c, b, &tag, keys, cl, 200, 150);
	json_decref(cl);
	assert_int_equal(wi_verified_cache_get(c, b, 200, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);

	expect_stats(c, 2, 4);
	wi_verified_cache_free(c);
	wi_jwks_unref(keys);
}

static void test_collision_replaces(void **state)
{
	(void)state;
	wi_verified_cache *c = NULL;
	assert_int_equal(wi_verified_cache_new(1, &c), 0); /* every digest in one slot */
	wi_jwks *k1 = NULL, *k2 = NULL;
	assert_int_equal(wi_jwks_new(&k1), 0);
	assert_int_equal(wi_jwks_new(&k2), 0);
	uint8_t a[WI_VERIFIED_DIGEST_LEN], b[WI_VERIFIED_DIGEST_LEN];
	digest_of("token-a", a);
	digest_of("token-b", b);
	json_t *cl = json_object();
	wi_verified_cache_put(c, a, NULL, k1, cl, 0, 100);
	wi_verified_cache_put(c, b, NULL, k2, cl, 0, 100);
	json_decref(cl);
	const void *owner;
	wi_jwks *got = NULL;
	json_t *claims = NULL;
	assert_int_equal(wi_verified_cache_get(c, a, 1, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);
	assert_int_equal(wi_verified_cache_get(c, b, 1, NULL, &owner, &got, &claims), 0);
	assert_ptr_equal(got, k2);
	wi_jwks_unref(got);
	json_decref(claims);
	/* the cache held references: the sets outlive our own */
	wi_jwks_unref(k1);
	wi_jwks_unref(k2);
	wi_verified_cache_free(c);
	assert_int_not_equal(wi_verified_cache_new(0, &c), 0);
}

/* A cache of 8 slots holding token-a, put under k1 (until 100); k2 is
 * another key set. */
typedef struct one_entry {
	wi_verified_cache *c;
	wi_jwks *k1, *k2;
	uint8_t a[WI_VERIFIED_DIGEST_LEN];
} one_entry;

static void one_entry_init(one_entry *f)
{
	assert_int_equal(wi_verified_cache_new(8, &f->c), 0);
	assert_int_equal(wi_jwks_new(&f->k1), 0);
	assert_int_equal(wi_jwks_new(&f->k2), 0);
	digest_of("token-a", f->a);
	json_t *cl = json_pack("{s:s}", "sub", "x");
	wi_verified_cache_put(f->c, f->a, NULL, f->k1, cl, 0, 100);
	json_decref(cl);
}

static void one_entry_clear(one_entry *f)
{
	wi_jwks_unref(f->k1);
	wi_jwks_unref(f->k2);
	wi_verified_cache_free(f->c);
}

/* A caller that names the key set it verifies with gets no entry put under
 * another one, and that entry goes. */
static void test_expected_key_set(void **state)
{
	(void)state;
	one_entry f;
	one_entry_init(&f);
	wi_verified_cache *c = f.c;
	wi_jwks *k1 = f.k1, *k2 = f.k2;
	const uint8_t *a = f.a;
	const void *owner;
	wi_jwks *got = NULL;
	json_t *claims = NULL;
	assert_int_equal(wi_verified_cache_get(c, a, 1, k1, &owner, &got, &claims), 0);
	assert_ptr_equal(got, k1);
	wi_jwks_unref(got);
	json_decref(claims);
	got = NULL;
	claims = NULL;
	/* the key set rotated: a miss, nothing written, and the entry dropped */
	assert_int_equal(wi_verified_cache_get(c, a, 1, k2, &owner, &got, &claims), WI_E_NOT_FOUND);
	assert_null(got);
	assert_null(claims);
	assert_int_equal(wi_verified_cache_get(c, a, 1, k1, &owner, &got, &claims), WI_E_NOT_FOUND);
	expect_stats(c, 1, 2);
	one_entry_clear(&f);
}

/* A caller that finds a hit's key set stale (learnt from the owner) rejects
 * it: the entry goes, and the find counts as a miss, not a hit. */
static void test_reject(void **state)
{
	(void)state;
	one_entry f;
	one_entry_init(&f);
	wi_verified_cache *c = f.c;
	const uint8_t *a = f.a;
	const void *owner;
	wi_jwks *got = NULL;
	json_t *claims = NULL;
	assert_int_equal(wi_verified_cache_get(c, a, 1, NULL, &owner, &got, &claims), 0);
	expect_stats(c, 1, 0);
	/* rejected with another key set than the entry's: the entry stays (a
	 * newer put may have replaced the one this caller saw) */
	wi_verified_cache_reject(c, a, f.k2);
	expect_stats(c, 0, 1);
	wi_jwks_unref(got);
	json_decref(claims);
	assert_int_equal(wi_verified_cache_get(c, a, 1, NULL, &owner, &got, &claims), 0);
	/* rejected with the entry's own: gone */
	wi_verified_cache_reject(c, a, got);
	wi_jwks_unref(got);
	json_decref(claims);
	got = NULL;
	claims = NULL;
	assert_int_equal(wi_verified_cache_get(c, a, 1, NULL, &owner, &got, &claims), WI_E_NOT_FOUND);
	assert_null(got);
	expect_stats(c, 0, 3);
	one_entry_clear(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_expiry),
		cmocka_unit_test(test_collision_replaces),
		cmocka_unit_test(test_expected_key_set),
		cmocka_unit_test(test_reject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
