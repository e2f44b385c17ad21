/* Unit tests: core/clock (the wall-clock second, exact). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include "core/clock.h"

/* Just past a second boundary, where the daemon's tick runs (2 ms after
 * it), the second is already the new one.  time(2) fails this on a kernel
 * whose coarse clock lags (Linux 6.x at HZ=250: still the old second up to
 * ~4 ms in). */
static void test_new_second_just_past_the_boundary(void **state)
{
	(void)state;
	for (long ms = 1; ms <= 3; ms++) {
		struct timespec ts;
		assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
		struct timespec at = {ts.tv_sec + 1, ms * 1000000L};
		assert_int_equal(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL), 0);
		time_t now = wi_clock_now();
		assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
		/* Read between the sleep's end (at.tv_sec or later) and ts. */
		assert_true(now >= at.tv_sec);
		assert_true(now <= ts.tv_sec);
	}
}

/* Never ahead of, never behind CLOCK_REALTIME read around it. */
static void test_between_readings(void **state)
{
	(void)state;
	for (int i = 0; i < 100000; i++) {
		struct timespec a, b;
		assert_int_equal(clock_gettime(CLOCK_REALTIME, &a), 0);
		time_t now = wi_clock_now();
		assert_int_equal(clock_gettime(CLOCK_REALTIME, &b), 0);
		if (now < a.tv_sec || now > b.tv_sec)
			fail_msg("wi_clock_now %lld outside [%lld, %lld]", (long long)now, (long long)a.tv_sec,
				 (long long)b.tv_sec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_second_just_past_the_boundary),
		cmocka_unit_test(test_between_readings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
