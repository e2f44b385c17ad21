/* tests/unit/test_log.c — the log dispatch: levels, and a line said once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"

static atomic_int lines;
static char last[256];

static void sink(wi_log_level level, const char *event, const char *msg)
{
	(void)level;
	atomic_fetch_add(&lines, 1);
	snprintf(last, sizeof(last), "%s %s", event, msg);
}

static void test_levels(void **state)
{
	(void)state;
	atomic_store(&lines, 0);
	wi_log_set_sink(sink, WI_LOG_WARN);
	wi_log(WI_LOG_INFO, "quiet", "n=%d", 1);
	assert_int_equal(atomic_load(&lines), 0);
	wi_log(WI_LOG_ERROR, "loud", "n=%d", 2);
	assert_int_equal(atomic_load(&lines), 1);
	assert_string_equal(last, "loud n=2");
	wi_log_set_sink(NULL, WI_LOG_INFO);
}

static atomic_bool said;

static void *say(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		wi_log_once(&said, WI_LOG_WARN, "once", "i=%d", i);
	return NULL;
}

static void test_once(void **state)
{
	(void)state;
	atomic_store(&lines, 0);
	wi_log_set_sink(sink, WI_LOG_INFO);
	/* Below the level: not said, and not spent either. */
	wi_log_set_sink(sink, WI_LOG_ERROR);
	wi_log_once(&said, WI_LOG_WARN, "once", "i=%d", -1);
	assert_int_equal(atomic_load(&lines), 0);
	assert_false(atomic_load(&said));
	wi_log_set_sink(sink, WI_LOG_INFO);

	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, say, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(atomic_load(&lines), 1);
	assert_string_equal(last, "once i=0");
	/* Another flag is another line. */
	atomic_bool other = false;
	wi_log_once(&other, WI_LOG_WARN, "other", "x");
	wi_log_once(&other, WI_LOG_WARN, "other", "x");
	assert_int_equal(atomic_load(&lines), 2);
	wi_log_set_sink(NULL, WI_LOG_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
