/* Unit tests: SPIFFE ID parsing (SPIFFE-ID.md), positive and negative. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/spiffe_id.h"

static void test_valid_ids(void **state)
{
	static const char *const ok[] = {
		"spiffe://example.org",
		"spiffe://example.org/workload",
		"spiffe://example.org/ns/prod/sa/api",
		"spiffe://a",
		"spiffe://1.2.3.4/x",
		"spiffe://my-td_1.example/A.b-c_D/0",
		"spiffe://example.org/..a",
		"spiffe://example.org/a..",
		"spiffe://example.org/.a",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		wi_spiffe_id *id = NULL;
		int rc = wi_spiffe_id_parse(ok[i], strlen(ok[i]), &id);
		if (rc != 0)
			fail_msg("%s rejected: %s", ok[i], wi_error_detail());
		assert_string_equal(wi_spiffe_id_string(id), ok[i]);
		wi_spiffe_id_free(id);
	}
}

static void test_parts(void **state)
{
	wi_spiffe_id *id = NULL;
	const char *s = "spiffe://example.org/ns/prod";
	assert_int_equal(wi_spiffe_id_parse(s, strlen(s), &id), 0);
	assert_string_equal(wi_spiffe_id_trust_domain(id), "example.org");
	assert_string_equal(wi_spiffe_id_path(id), "/ns/prod");
	assert_true(wi_spiffe_id_is_member_of(id, "example.org"));
	assert_false(wi_spiffe_id_is_member_of(id, "example.com"));
	assert_false(wi_spiffe_id_is_member_of(id, "example.or"));
	wi_spiffe_id_free(id);
	s = "spiffe://example.org";
	assert_int_equal(wi_spiffe_id_parse(s, strlen(s), &id), 0);
	assert_string_equal(wi_spiffe_id_path(id), "");
	wi_spiffe_id_free(id);
}

static void expect_bad(const char *s, size_t len, const char *why)
{
	wi_spiffe_id *id = (wi_spiffe_id *)0x1;
	int rc = wi_spiffe_id_parse(s, len, &id);
	if (rc != WI_E_SPIFFE_ID)
		fail_msg("accepted bad ID (%s): %.*s", why, (int)len, s);
	assert_ptr_equal(id, (wi_spiffe_id *)0x1); /* output untouched on failure */
	assert_non_null(strstr(wi_error_detail(), why));
}

static void test_invalid_ids(void **state)
{
	static const struct {
		const char *id, *why;
	} bad[] = {
		{"", "empty"},
		{"spiffe://", "trust domain is empty"},
		{"spiffe:///path", "trust domain is empty"},
		{"http://example.org/x", "scheme"},
		{"SPIFFE://example.org/x", "scheme"},
		{"spiffe:/example.org/x", "scheme"},
		{"example.org/x", "scheme"},
		{"spiffe://Example.org/x", "lowercase"},
		{"spiffe://example.org:8080/x", "port"},
		{"spiffe://user@example.org/x", "userinfo"},
		{"spiffe://exa%41mple.org/x", "percent"},
		{"spiffe://example.org/x?y=1", "query"},
		{"spiffe://example.org/x#frag", "fragment"},
		{"spiffe://example.org/", "end with '/'"},
		{"spiffe://example.org/x/", "end with '/'"},
		{"spiffe://example.org//x", "empty segment"},
		{"spiffe://example.org/./x", "'.' and '..'"},
		{"spiffe://example.org/x/..", "'.' and '..'"},
		{"spiffe://example.org/x%20y", "percent"},
		{"spiffe://example.org/x y", "invalid character"},
		{"spiffe://example.org/x*y", "invalid character"},
		{"spiffe://exa mple.org/x", "invalid character"},
		{"spiffe://[::1]/x", "invalid character"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad(bad[i].id, strlen(bad[i].id), bad[i].why);
	/* A NUL inside the length. */
	expect_bad("spiffe://example.org/a\0b", 24, "NUL");
}

static void test_lengths(void **state)
{
	/* Trust domain: 255 bytes ok, 256 not. */
	char buf[WI_SPIFFE_ID_MAX + 64];
	memcpy(buf, "spiffe://", 9);
	memset(buf + 9, 'a', 255);
	assert_int_equal(wi_spiffe_id_validate(buf, 9 + 255, false), 0);
	memset(buf + 9, 'a', 256);
	expect_bad(buf, 9 + 256, "longer than");
	/* Whole ID: exactly 2048 ok, 2049 not. */
	memcpy(buf, "spiffe://example.org/", 21);
	memset(buf + 21, 'p', WI_SPIFFE_ID_MAX - 21);
	assert_int_equal(wi_spiffe_id_validate(buf, WI_SPIFFE_ID_MAX, true), 0);
	buf[WI_SPIFFE_ID_MAX] = 'p';
	expect_bad(buf, WI_SPIFFE_ID_MAX + 1, "longer than");
}

static void test_need_path(void **state)
{
	assert_int_equal(wi_spiffe_id_validate("spiffe://example.org", 20, true), WI_E_SPIFFE_ID);
	assert_int_equal(wi_spiffe_id_validate("spiffe://example.org", 20, false), 0);
	assert_int_equal(wi_spiffe_id_validate("spiffe://example.org/a", 22, true), 0);
}

static void test_trust_domain(void **state)
{
	assert_int_equal(wi_trust_domain_validate("example.org", 11), 0);
	assert_int_equal(wi_trust_domain_validate("", 0), WI_E_SPIFFE_ID);
	assert_int_equal(wi_trust_domain_validate("Example.org", 11), WI_E_SPIFFE_ID);
	assert_int_equal(wi_trust_domain_validate("ex/ample", 8), WI_E_SPIFFE_ID);
	assert_int_equal(wi_spiffe_id_validate_segment("ok-1_2.x", 8), 0);
	assert_int_equal(wi_spiffe_id_validate_segment("..", 2), WI_E_SPIFFE_ID);
	assert_int_equal(wi_spiffe_id_validate_segment("", 0), WI_E_SPIFFE_ID);
	assert_int_equal(wi_spiffe_id_validate_segment("a/b", 3), WI_E_SPIFFE_ID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),   cmocka_unit_test(test_parts),
		cmocka_unit_test(test_invalid_ids), cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_need_path),   cmocka_unit_test(test_trust_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
