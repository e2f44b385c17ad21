/* Unit tests: the JWT-SVID cache (keys, reuse until half-life, LRU bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt_cache.h"

static char *key_of(const char *kid, const char *id, const char *const *aud, size_t n)
{
	char *k = NULL;
	assert_int_equal(wi_jwt_cache_key(kid, id, aud, n, &k), 0);
	return k;
}

static void test_keys(void **state)
{
	static const char *const ab[] = {"b", "a"};
	static const char *const ba[] = {"a", "b"};
	static const char *const aab[] = {"a", "b", "a"};
	static const char *const a_b[] = {"a:b"};
	static const char *const a[] = {"a"};
	char *k1 = key_of("kid", "spiffe://td/x", ab, 2);
	char *k2 = key_of("kid", "spiffe://td/x", ba, 2);
	char *k3 = key_of("kid", "spiffe://td/x", aab, 3);
	char *k4 = key_of("kid", "spiffe://td/x", a_b, 1);
	char *k5 = key_of("kid", "spiffe://td/x", a, 1);
	char *k6 = key_of("kid2", "spiffe://td/x", ab, 2);
	char *k7 = key_of("kid", "spiffe://td/y", ab, 2);
	/* The exact form: length-prefixed parts, audiences sorted. */
	assert_string_equal(k1, "3:kid13:spiffe://td/x1:a1:b");
	char long_aud[1201];
	memset(long_aud, 'q', sizeof(long_aud) - 1);
	long_aud[sizeof(long_aud) - 1] = '\0';
	const char *const la[] = {long_aud};
	char *kl = key_of("", "spiffe://td/x", la, 1);
	assert_memory_equal(kl, "0:13:spiffe://td/x1200:qq", 25);
	assert_int_equal(strlen(kl), 25 + 1198);
	free(kl);
	assert_string_equal(k1, k2); /* order does not matter */
	assert_string_equal(k1, k3); /* a set: duplicates collapse */
	assert_string_not_equal(k1, k4);
	assert_string_not_equal(k1, k5);
	assert_string_not_equal(k1, k6); /* a new signing key gives new tokens */
	assert_string_not_equal(k1, k7);
	free(k1), free(k2), free(k3), free(k4), free(k5), free(k6), free(k7);
	const char *many[17];
	for (int i = 0; i < 17; i++)
		many[i] = "x";
	char *k = NULL;
	assert_int_equal(wi_jwt_cache_key("kid", "id", many, 17, &k), WI_E_INVAL);
	assert_null(k);
}

static void test_get_put_refresh(void **state)
{
	wi_jwt_cache *c = NULL;
	assert_int_equal(wi_jwt_cache_new(4, &c), 0);
	char *tok = NULL;
	assert_int_equal(wi_jwt_cache_get(c, "k", 100, &tok), WI_E_NOT_FOUND);
	assert_int_equal(wi_jwt_cache_put(c, "k", "token-1", 250), 0);
	assert_int_equal(wi_jwt_cache_get(c, "k", 249, &tok), 0);
	assert_string_equal(tok, "token-1");
	free(tok);
	/* at the refresh time the entry is gone: the caller re-signs */
	assert_int_equal(wi_jwt_cache_get(c, "k", 250, &tok), WI_E_NOT_FOUND);
	assert_int_equal(wi_jwt_cache_get(c, "k", 100, &tok), WI_E_NOT_FOUND);
	/* replace */
	assert_int_equal(wi_jwt_cache_put(c, "k", "token-2", 500), 0);
	assert_int_equal(wi_jwt_cache_put(c, "k", "token-3", 500), 0);
	assert_int_equal(wi_jwt_cache_get(c, "k", 100, &tok), 0);
	assert_string_equal(tok, "token-3");
	free(tok);
	wi_jwt_cache_stats st;
	wi_jwt_cache_get_stats(c, &st);
	assert_int_equal(st.size, 1);
	assert_int_equal(st.hits, 2);
	wi_jwt_cache_clear(c);
	assert_int_equal(wi_jwt_cache_get(c, "k", 100, &tok), WI_E_NOT_FOUND);
	wi_jwt_cache_free(c);
}

static void test_lru_bound(void **state)
{
	wi_jwt_cache *c = NULL;
	assert_int_equal(wi_jwt_cache_new(3, &c), 0);
	assert_int_equal(wi_jwt_cache_put(c, "a", "A", 1000), 0);
	assert_int_equal(wi_jwt_cache_put(c, "b", "B", 1000), 0);
	assert_int_equal(wi_jwt_cache_put(c, "c", "C", 1000), 0);
	char *tok = NULL;
	assert_int_equal(wi_jwt_cache_get(c, "a", 1, &tok), 0); /* a is now most recent */
	free(tok);
	assert_int_equal(wi_jwt_cache_put(c, "d", "D", 1000), 0); /* evicts b */
	assert_int_equal(wi_jwt_cache_get(c, "b", 1, &tok), WI_E_NOT_FOUND);
	assert_int_equal(wi_jwt_cache_get(c, "a", 1, &tok), 0);
	free(tok);
	assert_int_equal(wi_jwt_cache_get(c, "c", 1, &tok), 0);
	free(tok);
	assert_int_equal(wi_jwt_cache_get(c, "d", 1, &tok), 0);
	free(tok);
	wi_jwt_cache_stats st;
	wi_jwt_cache_get_stats(c, &st);
	assert_int_equal(st.size, 3);
	assert_int_equal(st.evictions, 1);
	/* many more entries stay within the bound */
	char key[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(wi_jwt_cache_put(c, key, "T", 1000), 0);
	}
	wi_jwt_cache_get_stats(c, &st);
	assert_int_equal(st.size, 3);
	wi_jwt_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_get_put_refresh),
		cmocka_unit_test(test_lru_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
