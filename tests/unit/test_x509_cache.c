/* tests/unit/test_x509_cache.c — the shared X.509-SVID cache: one SVID per
 * (SPIFFE ID, TTL) until its jittered refresh point, which falls in the 10 %
 * of the lifetime before half-life, one daemon tick early (so a push made at
 * the next tick still reaches streams before half-life), then a new one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "core/ca.h"
#include "core/limits.h"
#include "core/x509_cache.h"
#include "testutil.h"

#define TD "example.org"
#define ID "spiffe://" TD "/w"

typedef struct fx {
	char dir[512];
	wi_ca *ca;
	wi_x509_cache *cache;
	time_t now;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "x509c"));
	f->now = time(NULL);
	wi_ca_options o = {.trust_domain = TD, .data_dir = f->dir, .ttl = 86400, .max_svid_ttl = 3600};
	assert_int_equal(wi_ca_open(&o, f->now, &f->ca), 0);
	assert_int_equal(wi_x509_cache_new(f->ca, &f->cache), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	wi_x509_cache_free(f->cache);
	wi_ca_free(f->ca);
	wi_test_rmtree(f->dir);
	free(f);
	return 0;
}

/* Over many identities (each its own jitter), every refresh point lies in
 * [half - 10 % - tick, half - tick], measured from the mint. */
static void test_refresh_window(void **state)
{
	fx *f = *state;
	static const int64_t ttls[] = {10, 60, 3600};
	for (size_t t = 0; t < sizeof(ttls) / sizeof(ttls[0]); t++) {
		int64_t ttl = ttls[t];
		time_t half = f->now + (time_t)ttl / 2;
		time_t hi = half - WI_TICK_SECONDS, lo = hi - (time_t)ttl / 10;
		for (int i = 0; i < 20; i++) {
			char id[64];
			snprintf(id, sizeof(id), ID "/%d/%d", (int)ttl, i);
			wi_x509_svid *s = NULL;
			time_t refresh = 0;
			assert_int_equal(wi_x509_cache_get(f->cache, id, ttl, f->now, &s, &refresh), 0);
			assert_true(refresh >= lo && refresh <= hi);
			wi_x509_svid_unref(s);
		}
	}
}

/* The same SVID until the refresh point, a new one from then on. */
static void test_shared_then_renewed(void **state)
{
	fx *f = *state;
	wi_x509_svid *a = NULL, *b = NULL, *c = NULL;
	time_t r1 = 0, r2 = 0, r3 = 0;
	assert_int_equal(wi_x509_cache_get(f->cache, ID, 60, f->now, &a, &r1), 0);
	assert_int_equal(wi_x509_cache_get(f->cache, ID, 60, r1 - 1, &b, &r2), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(r1, r2);
	assert_int_equal(wi_x509_cache_get(f->cache, ID, 60, r1, &c, &r3), 0);
	assert_ptr_not_equal(a, c);
	assert_true(r3 > r1);
	/* Another TTL is another SVID. */
	wi_x509_svid *d = NULL;
	assert_int_equal(wi_x509_cache_get(f->cache, ID, 120, f->now, &d, NULL), 0);
	assert_ptr_not_equal(d, a);
	wi_x509_cache_stats st;
	wi_x509_cache_get_stats(f->cache, &st);
	assert_int_equal(st.minted, 3);
	assert_int_equal(st.hits, 1);
	wi_x509_svid_unref(a);
	wi_x509_svid_unref(b);
	wi_x509_svid_unref(c);
	wi_x509_svid_unref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refresh_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_then_renewed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
