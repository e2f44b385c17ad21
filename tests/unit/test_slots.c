/* Unit tests: core/slots (connections per peer): the per-key bound, the
 * bound on keys, release and deletion from the probe table (checked against
 * a plain array model under random churn), and threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/slots.h"

static wi_slot_key key_of(unsigned v)
{
	wi_slot_key k;
	memset(&k, 0, sizeof(k));
	k.b[0] = 1;
	memcpy(k.b + 1, &v, sizeof(v));
	return k;
}

static void test_bounds(void **state)
{
	(void)state;
	wi_slots *s = NULL;
	assert_int_equal(wi_slots_new(0, 4, &s), WI_E_INVAL);
	assert_int_equal(wi_slots_new(2, 0, &s), WI_E_INVAL);
	assert_int_equal(wi_slots_new(2, 3, &s), 0);
	wi_slot_key a = key_of(1), b = key_of(2), c = key_of(3), d = key_of(4);
	assert_true(wi_slots_take(s, &a));
	assert_true(wi_slots_take(s, &a));
	assert_false(wi_slots_take(s, &a)); /* per key */
	assert_int_equal(wi_slots_held(s, &a), 2);
	assert_true(wi_slots_take(s, &b));
	assert_true(wi_slots_take(s, &c));
	assert_false(wi_slots_take(s, &d)); /* keys */
	wi_slots_release(s, &b);
	assert_int_equal(wi_slots_held(s, &b), 0);
	assert_true(wi_slots_take(s, &d)); /* b's key is gone: room */
	wi_slots_release(s, &a);
	assert_true(wi_slots_take(s, &a));
	/* a release of a key holding nothing changes nothing */
	wi_slots_release(s, &b);
	assert_int_equal(wi_slots_held(s, &a), 2);
	assert_int_equal(wi_slots_held(s, &c), 1);
	assert_int_equal(wi_slots_held(s, &d), 1);
	wi_slots_free(s);
}

/* Random takes and releases over many keys in a small table (long probe
 * clusters, wrap-around, backward-shift deletes) against a model. */
static void test_churn_against_model(void **state)
{
	(void)state;
	enum { KEYS = 200, PER = 3, MAXK = 64 };
	wi_slots *s = NULL;
	assert_int_equal(wi_slots_new(PER, MAXK, &s), 0);
	unsigned model[KEYS] = {0}, live = 0;
	srand(12345);
	for (int step = 0; step < 200000; step++) {
		unsigned k = (unsigned)rand() % KEYS;
		wi_slot_key key = key_of(k * 2654435761u);
		if (rand() % 2) {
			bool want = model[k] > 0 ? model[k] < PER : live < MAXK;
			bool got = wi_slots_take(s, &key);
			if (got != want)
				fail_msg("step %d: take of key %u gave %d, model %d", step, k, got, want);
			if (got) {
				if (model[k]++ == 0)
					live++;
			}
		} else if (model[k] > 0) {
			wi_slots_release(s, &key);
			if (--model[k] == 0)
				live--;
		}
		if (step % 997 == 0)
			for (unsigned i = 0; i < KEYS; i++) {
				wi_slot_key ki = key_of(i * 2654435761u);
				if (wi_slots_held(s, &ki) != model[i])
					fail_msg("step %d: key %u holds %zu, model %u", step, i, wi_slots_held(s, &ki),
						 model[i]);
			}
	}
	wi_slots_free(s);
}

struct hammer {
	wi_slots *s;
	unsigned base;
	int refused;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < 20000; i++) {
		wi_slot_key k = key_of(h->base + (unsigned)(i % 5));
		if (wi_slots_take(h->s, &k))
			wi_slots_release(h->s, &k);
		else
			h->refused++;
	}
	return NULL;
}

/* Four threads taking and giving back at once: nothing leaks, no key is
 * refused (each thread's keys are its own and it holds one at a time). */
static void test_threads(void **state)
{
	(void)state;
	wi_slots *s = NULL;
	assert_int_equal(wi_slots_new(1, 64, &s), 0);
	pthread_t t[4];
	struct hammer h[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){.s = s, .base = (unsigned)i * 100};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(h[i].refused, 0);
		for (unsigned j = 0; j < 5; j++) {
			wi_slot_key k = key_of(h[i].base + j);
			assert_int_equal(wi_slots_held(s, &k), 0);
		}
	}
	wi_slots_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_churn_against_model),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
