/* Unit tests: core/error (the one table of codes, and the thread-local detail
 * that callers wrap with their own context). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "core/limits.h"

static int fail_inner(void)
{
	WI_FAIL(WI_E_IO, "open /x: %s", "No such file or directory");
}

/* The caller's context, then the cause it wraps, read from the very slot
 * being rewritten. */
static int fail_wrapped(void)
{
	if (fail_inner() < 0)
		WI_FAIL(WI_E_CONFIG, "/etc/w.json: cannot read: %s", wi_error_detail());
	return 0;
}

static void test_wrap_keeps_the_cause(void **state)
{
	(void)state;
	assert_int_equal(fail_wrapped(), WI_E_CONFIG);
	const char *d = wi_error_detail();
	const char *outer = strstr(d, "test_error.c:");
	assert_non_null(outer);
	outer = strstr(outer, ": invalid configuration: /etc/w.json: cannot read: ");
	assert_non_null(outer);
	const char *inner = strstr(outer, "test_error.c:");
	assert_non_null(inner);
	assert_non_null(strstr(inner, ": I/O error: open /x: No such file or directory"));
	/* Said once: no echo of the outer text after the cause. */
	assert_null(strstr(inner, "cannot read"));
}

/* A cause as long as the slot: the result is cut at the bound, still a
 * string, and begins with the outer context. */
static void test_wrap_is_bounded(void **state)
{
	(void)state;
	char big[WI_ERROR_DETAIL_MAX * 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	(void)wi__error_set(WI_E_PARSE, "core/x.c", 1, "%s", big);
	assert_int_equal(strlen(wi_error_detail()), WI_ERROR_DETAIL_MAX - 1);
	for (int i = 0; i < 3; i++)
		(void)wi__error_set(WI_E_INVAL, "core/y.c", 2, "wrap %d: %s", i, wi_error_detail());
	const char *d = wi_error_detail();
	assert_int_equal(strlen(d), WI_ERROR_DETAIL_MAX - 1);
	assert_ptr_equal(strstr(d, "core/y.c:2: invalid argument: wrap 2: core/y.c:2: invalid argument: wrap 1: "), d);
}

/* Recording a failure leaves errno as the failing call set it. */
static void test_errno_kept(void **state)
{
	(void)state;
	errno = ENOENT;
	(void)wi__error_set(WI_E_IO, "core/z.c", 3, "%s", "x");
	assert_int_equal(errno, ENOENT);
	wi_error_clear();
	assert_string_equal(wi_error_detail(), "");
}

static void *other_thread(void *arg)
{
	(void)arg;
	(void)wi__error_set(WI_E_NOMEM, "core/t.c", 4, "%s", "elsewhere");
	return NULL;
}

/* The slot is per thread: another thread's failure does not touch ours. */
static void test_per_thread(void **state)
{
	(void)state;
	(void)wi__error_set(WI_E_EXPIRED, "core/m.c", 5, "%s", "here");
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(wi_error_detail(), "core/m.c:5: expired: here");
}

/* One row of the table, both mappings, and the fallbacks. */
static void test_table(void **state)
{
	(void)state;
	assert_int_equal(wi_error_grpc_status(WI_E_PERMISSION), 7);
	assert_string_equal(wi_error_oauth(WI_E_PERMISSION), "unauthorized_client");
	assert_string_equal(wi_error_oauth(WI_E_REVOKED), "invalid_grant");
	assert_string_equal(wi_error_oauth(WI_OK), "server_error");
	assert_int_equal(wi_error_grpc_status(-1000), 13);
	assert_string_equal(wi_error_text(-1000), "unknown error");
	assert_string_equal(wi_grpc_status_name(16), "UNAUTHENTICATED");
	assert_string_equal(wi_grpc_status_name(17), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrap_keeps_the_cause), cmocka_unit_test(test_wrap_is_bounded),
		cmocka_unit_test(test_errno_kept),	     cmocka_unit_test(test_per_thread),
		cmocka_unit_test(test_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
