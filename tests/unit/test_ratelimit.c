/* Unit tests: core/ratelimit (token buckets with an injected clock; no sleeps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/limits.h"
#include "core/ratelimit.h"

#define MS 1000000ULL
#define T0 (1000ULL * 1000 * MS) /* an arbitrary monotonic start */

static void test_new_rejects_bad_args(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(0, 10, 8, 0, &rl), WI_E_INVAL);
	assert_int_equal(wi_ratelimit_new(-1, 10, 8, 0, &rl), WI_E_INVAL);
	assert_int_equal(wi_ratelimit_new(1, 0.5, 8, 0, &rl), WI_E_INVAL);
	assert_int_equal(wi_ratelimit_new(1, 10, 0, 0, &rl), WI_E_INVAL);
	assert_null(rl);
	assert_null(wi_ratelimit_free(NULL));
}

static void test_burst_then_refusal(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(10, 5, 8, WI_RATELIMIT_STRICT, &rl), 0);
	for (int i = 0; i < 5; i++)
		assert_true(wi__ratelimit_take_at(rl, "spiffe://td/a", T0));
	assert_false(wi__ratelimit_take_at(rl, "spiffe://td/a", T0));
	assert_false(wi__ratelimit_take_at(rl, "spiffe://td/a", T0 + 50 * MS)); /* half a token */
	wi_ratelimit_free(rl);
}

static void test_refill(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(10, 5, 8, 0, &rl), 0);
	for (int i = 0; i < 5; i++)
		assert_true(wi__ratelimit_take_at(rl, "k", T0));
	assert_false(wi__ratelimit_take_at(rl, "k", T0));
	/* 10/s: one token every 100 ms. */
	assert_true(wi__ratelimit_take_at(rl, "k", T0 + 100 * MS));
	assert_false(wi__ratelimit_take_at(rl, "k", T0 + 150 * MS));
	assert_true(wi__ratelimit_take_at(rl, "k", T0 + 200 * MS));
	/* A long pause refills to the burst, never beyond. */
	for (int i = 0; i < 5; i++)
		assert_true(wi__ratelimit_take_at(rl, "k", T0 + 3600000 * MS));
	assert_false(wi__ratelimit_take_at(rl, "k", T0 + 3600000 * MS));
	/* A clock read that went backwards (another thread) adds nothing. */
	assert_false(wi__ratelimit_take_at(rl, "k", T0));
	/* Sustained: over 10 s at 10/s, about 100 more. */
	int ok = 0;
	for (uint64_t t = 0; t < 10000; t++)
		ok += wi__ratelimit_take_at(rl, "k", T0 + 3600000 * MS + t * MS);
	assert_in_range(ok, 99, 101);
	wi_ratelimit_free(rl);
}

static void test_independent_keys(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(1, 3, 8, 0, &rl), 0);
	for (int i = 0; i < 3; i++)
		assert_true(wi__ratelimit_take_at(rl, "spiffe://td/a", T0));
	assert_false(wi__ratelimit_take_at(rl, "spiffe://td/a", T0));
	for (int i = 0; i < 3; i++)
		assert_true(wi__ratelimit_take_at(rl, "spiffe://td/b", T0));
	assert_true(wi__ratelimit_take_at(rl, "uid:1000", T0));
	assert_false(wi__ratelimit_take_at(rl, "spiffe://td/a", T0));
	assert_false(wi__ratelimit_take_at(rl, "spiffe://td/b", T0));
	assert_int_equal(wi_ratelimit_count(rl), 3);
	wi_ratelimit_free(rl);
}

static void test_table_bound_and_eviction(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(1, 2, 4, 0, &rl), 0);
	char key[32];
	/* LRU order after this, newest first: c, b, d, a.  a, b, c are drained;
	 * d has one token spent. */
	assert_true(wi__ratelimit_take_at(rl, "a", T0));
	assert_true(wi__ratelimit_take_at(rl, "a", T0));
	assert_true(wi__ratelimit_take_at(rl, "d", T0));
	const char *busy[] = {"b", "c"};
	for (size_t k = 0; k < 2; k++)
		for (int i = 0; i < 2; i++)
			assert_true(wi__ratelimit_take_at(rl, busy[k], T0));
	assert_int_equal(wi_ratelimit_count(rl), 4);
	/* 1 s later (1 token/s): d is full again (idle), a is not.  A new key
	 * evicts d, the least recently used idle bucket, not a, the oldest. */
	assert_true(wi__ratelimit_take_at(rl, "e", T0 + 1000 * MS));
	assert_int_equal(wi_ratelimit_count(rl), 4);
	assert_false(wi__ratelimit_has(rl, "d"));
	assert_true(wi__ratelimit_has(rl, "a"));
	/* a kept its state: one token, not a fresh burst of two. */
	assert_true(wi__ratelimit_take_at(rl, "a", T0 + 1000 * MS));
	assert_false(wi__ratelimit_take_at(rl, "a", T0 + 1000 * MS));

	/* Nothing idle now (newest first: a, e, c, b): the oldest, b, goes. */
	assert_true(wi__ratelimit_take_at(rl, "f", T0 + 1000 * MS));
	assert_int_equal(wi_ratelimit_count(rl), 4);
	assert_false(wi__ratelimit_has(rl, "b"));
	assert_true(wi__ratelimit_has(rl, "c"));
	assert_true(wi__ratelimit_has(rl, "e"));

	/* Many keys: the table never grows beyond its slots. */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "uid:%d", i);
		assert_true(wi__ratelimit_take_at(rl, key, T0 + 4000 * MS));
	}
	assert_int_equal(wi_ratelimit_count(rl), 4);
	assert_true(wi__ratelimit_has(rl, "uid:999"));
	assert_false(wi__ratelimit_has(rl, "uid:0"));
	wi_ratelimit_free(rl);
}

static void test_contended_mode(void **state)
{
	wi_ratelimit *rl = NULL;
	assert_int_equal(wi_ratelimit_new(1, 2, 8, WI_RATELIMIT_CONTENDED, &rl), 0);
	/* Alone, a key over budget is still served (work-conserving). */
	for (int i = 0; i < 10; i++)
		assert_true(wi__ratelimit_take_at(rl, "hog", T0));
	/* Another key asks: the hog is held to its budget at once... */
	assert_true(wi__ratelimit_take_at(rl, "quiet", T0 + 1 * MS));
	assert_false(wi__ratelimit_take_at(rl, "hog", T0 + 2 * MS));
	assert_false(wi__ratelimit_take_at(rl, "hog", T0 + 500 * MS));
	/* ...and for the contention window after the other key's last request. */
	uint64_t end = T0 + 1 * MS + (uint64_t)WI_RATELIMIT_CONTENTION_MS * MS;
	assert_false(wi__ratelimit_take_at(rl, "hog", T0 + 999 * MS));
	/* Past the window the hog is alone again. */
	assert_true(wi__ratelimit_take_at(rl, "hog", end + 1 * MS));
	assert_true(wi__ratelimit_take_at(rl, "hog", end + 1 * MS));
	assert_true(wi__ratelimit_take_at(rl, "hog", end + 1 * MS));
	wi_ratelimit_free(rl);
}

#define THREADS 4
#define PER_THREAD 20000
static wi_ratelimit *shared;
static atomic_int granted;

static void *hammer(void *arg)
{
	intptr_t id = (intptr_t)arg;
	char key[32];
	for (int i = 0; i < PER_THREAD; i++) {
		/* A shared key, and churn through more keys than slots. */
		if (wi_ratelimit_take(shared, "spiffe://td/shared"))
			atomic_fetch_add(&granted, 1);
		snprintf(key, sizeof(key), "uid:%d", (int)(id * PER_THREAD + i) % 300);
		(void)wi_ratelimit_take(shared, key);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	/* Rate 1/s, burst 100: whatever the interleaving and however long the
	 * run takes (< 60 s), the shared key is granted at most ~160 times. */
	assert_int_equal(wi_ratelimit_new(1, 100, 64, 0, &shared), 0);
	pthread_t t[THREADS];
	for (intptr_t i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	int g = atomic_load(&granted);
	assert_in_range(g, 100, 160);
	assert_int_equal(wi_ratelimit_count(shared), 64);
	shared = wi_ratelimit_free(shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects_bad_args),
		cmocka_unit_test(test_burst_then_refusal),
		cmocka_unit_test(test_refill),
		cmocka_unit_test(test_independent_keys),
		cmocka_unit_test(test_table_bound_and_eviction),
		cmocka_unit_test(test_contended_mode),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
