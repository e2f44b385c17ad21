/* tests/unit/test_form.c — the strict application/x-www-form-urlencoded parser
 * (txn-token/form.h): RFC 8693 requests, encodings, and every refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "txn-token/form.h"

static wi_form *parse_ok(const char *body, size_t max_fields)
{
	wi_form *f = NULL;
	int rc = wi_form_parse(body, strlen(body), max_fields, &f);
	if (rc != 0)
		fail_msg("parse of \"%s\" failed: %s", body, wi_error_detail());
	assert_non_null(f);
	return f;
}

static void expect_fail(const char *body, int code)
{
	wi_form *f = NULL;
	int rc = wi_form_parse(body, strlen(body), 100, &f);
	if (rc != code)
		fail_msg("\"%s\": got %d, want %d (%s)", body, rc, code, wi_error_detail());
	assert_null(f);
}

static void test_rfc8693_request(void **state)
{
	(void)state;
	const char *body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
			   "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Atxn_token"
			   "&audience=example.org&scope=read+write"
			   "&subject_token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
			   "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
			   "&request_context=%7B%22req_ip%22%3A%2210.0.0.1%22%7D";
	wi_form *f = parse_ok(body, 32);
	assert_int_equal(wi_form_count(f), 7);
	assert_string_equal(wi_form_get(f, "grant_type"), "urn:ietf:params:oauth:grant-type:token-exchange");
	assert_string_equal(wi_form_get(f, "requested_token_type"),
			    "urn:ietf:params:oauth:token-type:txn_token");
	assert_string_equal(wi_form_get(f, "audience"), "example.org");
	assert_string_equal(wi_form_get(f, "scope"), "read write");
	assert_string_equal(wi_form_get(f, "subject_token"), "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln");
	assert_string_equal(wi_form_get(f, "request_context"), "{\"req_ip\":\"10.0.0.1\"}");
	assert_null(wi_form_get(f, "actor_token"));
	assert_null(wi_form_get(f, "Audience")); /* names are case-sensitive */
	wi_form_free(f);
}

static void test_space_and_plus(void **state)
{
	(void)state;
	wi_form *f = parse_ok("a=x+y&b=x%20y&c=x%2By&d=%2b&e=+", 10);
	assert_string_equal(wi_form_get(f, "a"), "x y");
	assert_string_equal(wi_form_get(f, "b"), "x y");
	assert_string_equal(wi_form_get(f, "c"), "x+y");
	assert_string_equal(wi_form_get(f, "d"), "+"); /* lowercase hex too */
	assert_string_equal(wi_form_get(f, "e"), " ");
	wi_form_free(f);

	/* names are decoded like values */
	f = parse_ok("my+name=1&x%5Fy=2", 10);
	assert_string_equal(wi_form_get(f, "my name"), "1");
	assert_string_equal(wi_form_get(f, "x_y"), "2");
	wi_form_free(f);
}

static void test_utf8(void **state)
{
	(void)state;
	wi_form *f = parse_ok("name=Ren%C3%A9e&emoji=%F0%9F%98%80&raw=caf\xc3\xa9", 10);
	assert_string_equal(wi_form_get(f, "name"), "Ren\xc3\xa9" "e");
	assert_string_equal(wi_form_get(f, "emoji"), "\xf0\x9f\x98\x80");
	assert_string_equal(wi_form_get(f, "raw"), "caf\xc3\xa9");
	wi_form_free(f);
}

static void test_duplicates(void **state)
{
	(void)state;
	wi_form *f = NULL;
	const char *body = "scope=a&audience=x&scope=b";
	assert_int_equal(wi_form_parse(body, strlen(body), 10, &f), WI_E_INVAL);
	assert_null(f);
	assert_non_null(strstr(wi_error_detail(), "\"scope\""));

	/* audience and resource may repeat (RFC 8693, RFC 8707): counted */
	body = "resource=r1&audience=a&scope=x&audience=b&resource=r2&resource=r3";
	assert_int_equal(wi_form_parse(body, strlen(body), 10, &f), 0);
	assert_int_equal(wi_form_count_of(f, "audience"), 2);
	assert_int_equal(wi_form_count_of(f, "resource"), 3);
	assert_int_equal(wi_form_count_of(f, "scope"), 1);
	assert_int_equal(wi_form_count_of(f, "nothing"), 0);
	assert_int_equal(wi_form_count_of(NULL, "scope"), 0);
	wi_form_free(f);
	f = NULL;

	/* the same name spelled two ways is still the same name */
	body = "scope=a&sc%6Fpe=b";
	assert_int_equal(wi_form_parse(body, strlen(body), 10, &f), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "\"scope\""));

	/* a name in the detail is sanitised and shortened */
	char big[400];
	size_t n = 0;
	n += (size_t)snprintf(big + n, sizeof(big) - n, "%%0A");
	for (int i = 0; i < 100; i++)
		big[n++] = 'n';
	big[n] = '\0';
	char body2[1000];
	snprintf(body2, sizeof(body2), "%s=1&%s=2", big, big);
	assert_int_equal(wi_form_parse(body2, strlen(body2), 10, &f), WI_E_INVAL);
	assert_null(strchr(wi_error_detail(), '\n'));
	assert_non_null(strstr(wi_error_detail(), "?nnnn"));
	assert_non_null(strstr(wi_error_detail(), "...\""));
}

static void test_missing_equals_and_empty(void **state)
{
	(void)state;
	/* "a" alone is the name a with the empty value */
	wi_form *f = parse_ok("a&b=&c=1", 10);
	assert_int_equal(wi_form_count(f), 3);
	assert_string_equal(wi_form_get(f, "a"), "");
	assert_string_equal(wi_form_get(f, "b"), "");
	assert_string_equal(wi_form_get(f, "c"), "1");
	wi_form_free(f);

	/* a '=' after the first belongs to the value */
	f = parse_ok("k=a=b==", 10);
	assert_string_equal(wi_form_get(f, "k"), "a=b==");
	wi_form_free(f);

	/* empty pieces are skipped (WHATWG), they are not fields */
	f = parse_ok("&&a=1&&b=2&", 2);
	assert_int_equal(wi_form_count(f), 2);
	wi_form_free(f);

	/* empty body: zero fields; also with a NULL pointer */
	f = parse_ok("", 0);
	assert_int_equal(wi_form_count(f), 0);
	assert_null(wi_form_get(f, "a"));
	wi_form_free(f);
	f = NULL;
	assert_int_equal(wi_form_parse(NULL, 0, 5, &f), 0);
	assert_int_equal(wi_form_count(f), 0);
	wi_form_free(f);

	/* a value of length 0 at the end of a piece must not read on */
	f = parse_ok("a=&bb=zz", 10);
	assert_string_equal(wi_form_get(f, "a"), "");
	wi_form_free(f);

	expect_fail("=value", WI_E_PARSE);
	expect_fail("a=1&=2", WI_E_PARSE);
	assert_null(wi_form_free(NULL));
	assert_int_equal(wi_form_count(NULL), 0);
}

static void test_bad_percent(void **state)
{
	(void)state;
	expect_fail("a=%", WI_E_PARSE);
	expect_fail("a=%G1", WI_E_PARSE);
	expect_fail("a=%1G", WI_E_PARSE);
	expect_fail("a=%0", WI_E_PARSE);
	expect_fail("a=x%0&b=1", WI_E_PARSE);
	expect_fail("a=100%", WI_E_PARSE);
	expect_fail("%=1", WI_E_PARSE);
	expect_fail("a%2=1", WI_E_PARSE);
	expect_fail("a=%%41", WI_E_PARSE);

	/* the detail names the parameter, never the value */
	wi_form *f = NULL;
	const char *body = "subject_token=secret%ZZtoken";
	assert_int_equal(wi_form_parse(body, strlen(body), 10, &f), WI_E_PARSE);
	assert_non_null(strstr(wi_error_detail(), "subject_token"));
	assert_null(strstr(wi_error_detail(), "secret"));
}

static void test_nul_and_utf8_refused(void **state)
{
	(void)state;
	expect_fail("a=%00", WI_E_PARSE);
	expect_fail("a%00b=1", WI_E_PARSE);
	expect_fail("a=x%00y", WI_E_PARSE);
	expect_fail("a=%FF", WI_E_PARSE);
	expect_fail("a=%C3", WI_E_PARSE);          /* truncated sequence */
	expect_fail("a=%C3%28", WI_E_PARSE);       /* bad continuation */
	expect_fail("a=%C0%AF", WI_E_PARSE);       /* overlong '/' */
	expect_fail("a=%E0%80%AF", WI_E_PARSE);    /* overlong */
	expect_fail("a=%ED%A0%80", WI_E_PARSE);    /* surrogate U+D800 */
	expect_fail("a=%F4%90%80%80", WI_E_PARSE); /* beyond U+10FFFF */
	expect_fail("a=%80", WI_E_PARSE);          /* lone continuation */
	expect_fail("a=\xff", WI_E_PARSE);         /* raw invalid byte */
	expect_fail("%FF=1", WI_E_PARSE);

	/* raw NUL inside the body (length given explicitly) */
	wi_form *f = NULL;
	static const char body[] = "a=x\0y";
	assert_int_equal(wi_form_parse(body, sizeof(body) - 1, 10, &f), WI_E_PARSE);
	assert_null(f);

	/* the largest valid code points pass */
	f = parse_ok("a=%EF%BF%BF&b=%F4%8F%BF%BF&c=%ED%9F%BF", 10);
	assert_string_equal(wi_form_get(f, "b"), "\xf4\x8f\xbf\xbf");
	wi_form_free(f);
}

static void test_too_many_fields(void **state)
{
	(void)state;
	size_t cap = 10000 * 12;
	char *body = malloc(cap);
	assert_non_null(body);
	size_t n = 0;
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(body + n, cap - n, "%sf%d=v", i ? "&" : "", i);
	wi_form *f = NULL;
	assert_int_equal(wi_form_parse(body, n, 100, &f), WI_E_TOO_BIG);
	assert_null(f);
	/* the same body within a larger cap parses, and lookups work */
	assert_int_equal(wi_form_parse(body, n, 10000, &f), 0);
	assert_int_equal(wi_form_count(f), 10000);
	assert_string_equal(wi_form_get(f, "f9999"), "v");
	assert_string_equal(wi_form_get(f, "f0"), "v");
	assert_null(wi_form_get(f, "f10000"));
	wi_form_free(f);
	/* exactly max fields is fine, one more is not */
	assert_int_equal(wi_form_parse("a=1&b=2&c=3", 11, 3, &f), 0);
	wi_form_free(f);
	f = NULL;
	assert_int_equal(wi_form_parse("a=1&b=2&c=3", 11, 2, &f), WI_E_TOO_BIG);
	assert_null(f);
	free(body);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_big_body_fast(void **state)
{
	(void)state;
	size_t len = 1024 * 1024;
	char *body = malloc(len + 1);
	assert_non_null(body);
	/* one 1 MiB value, mixed '+' and escapes */
	memcpy(body, "subject_token=", 14);
	for (size_t i = 14; i < len; i++)
		body[i] = (i % 7 == 0) ? '+' : 'a';
	memcpy(body + len - 6, "%C3%A9", 6);
	double t0 = now_s();
	wi_form *f = NULL;
	assert_int_equal(wi_form_parse(body, len, 10, &f), 0);
	double t1 = now_s();
	const char *v = wi_form_get(f, "subject_token");
	assert_non_null(v);
	assert_int_equal(strlen(v), len - 14 - 6 + 2);
	wi_form_free(f);

	/* 1 MiB of short fields, all distinct */
	size_t n = 0;
	int i = 0;
	while (n + 16 < len) {
		n += (size_t)snprintf(body + n, len + 1 - n, "%sk%d=%%41", i ? "&" : "", i);
		i++;
	}
	double t2 = now_s();
	assert_int_equal(wi_form_parse(body, n, (size_t)i, &f), 0);
	double t3 = now_s();
	assert_int_equal(wi_form_count(f), (size_t)i);
	assert_string_equal(wi_form_get(f, "k7"), "A");
	wi_form_free(f);
	/* generous bounds: milliseconds in practice, also under ASan */
	if (t1 - t0 > 2.0 || t3 - t2 > 5.0)
		fail_msg("1 MiB parse too slow: %.3f s and %.3f s", t1 - t0, t3 - t2);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8693_request),
		cmocka_unit_test(test_space_and_plus),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_missing_equals_and_empty),
		cmocka_unit_test(test_bad_percent),
		cmocka_unit_test(test_nul_and_utf8_refused),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_big_body_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
