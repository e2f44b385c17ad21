/* Unit tests: selectors, selector sets, entries, templates and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/registry.h"
#include "core/selector.h"

static wi_selector_set *set_of(const char *const *sels)
{
	wi_selector_set *s = NULL;
	assert_int_equal(wi_selector_set_new(&s), 0);
	for (; *sels; sels++)
		if (wi_selector_set_add_string(s, *sels) != 0)
			fail_msg("cannot add %s: %s", *sels, wi_error_detail());
	return s;
}

static void test_selector_parse(void **state)
{
	wi_selector_kind k;
	const char *v;
	assert_int_equal(wi_selector_parse("unix:uid:1000", &k, &v), 0);
	assert_int_equal(k, WI_SEL_UNIX_UID);
	assert_string_equal(v, "1000");
	assert_int_equal(wi_selector_parse("cgroup:path:/system.slice/a:b.service", &k, &v), 0);
	assert_int_equal(k, WI_SEL_CGROUP_PATH);
	assert_string_equal(v, "/system.slice/a:b.service");
	assert_int_equal(wi_selector_parse("unix:supplementary_group:wheel", &k, &v), 0);
	assert_int_equal(k, WI_SEL_UNIX_SUPPLEMENTARY_GROUP);

	static const char *const bad[] = {
		"unix",		     "unix:uid",	   "unix:uid:",		   "unix:uid:-1",
		"unix:uid:01",	     "unix:uid:abc",	   "unix:uid:4294967295", "unix:uid:99999999999",
		"k8s:ns:default",    "unix:nope:1",	   "unix:sha256:ABC",	   ("unix:sha256:" "0123"),
		"unix:path:relative", "cgroup:path:x",	   "container:id:xyz",	   "container:id:abc",
		"unix:user:a/b",     "systemd:unit:a b",   "unix:user:a\nb",	   "unix:gid: 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (wi_selector_parse(bad[i], &k, &v) != WI_E_SELECTOR)
			fail_msg("accepted bad selector %s", bad[i]);
	char big[WI_SELECTOR_MAX + 32];
	snprintf(big, sizeof(big), "unix:path:/");
	memset(big + 11, 'a', WI_SELECTOR_MAX);
	big[11 + WI_SELECTOR_MAX] = '\0';
	assert_int_equal(wi_selector_parse(big, &k, &v), WI_E_SELECTOR);
	char sha[80] = "unix:sha256:";
	memset(sha + 12, 'a', 64);
	sha[76] = '\0';
	assert_int_equal(wi_selector_parse(sha, &k, &v), 0);
}

static void test_set_ops(void **state)
{
	static const char *const a_sel[] = {"unix:uid:0", "unix:gid:0", "unix:path:/bin/x", NULL};
	static const char *const b_sel[] = {"unix:uid:0", "unix:path:/bin/x", NULL};
	static const char *const c_sel[] = {"unix:uid:1", NULL};
	wi_selector_set *a = set_of(a_sel), *b = set_of(b_sel), *c = set_of(c_sel);
	assert_int_equal(wi_selector_set_count(a), 3);
	assert_true(wi_selector_set_is_subset(b, a));
	assert_false(wi_selector_set_is_subset(a, b));
	assert_false(wi_selector_set_is_subset(c, a));
	assert_true(wi_selector_set_contains(a, "unix:gid:0"));
	assert_false(wi_selector_set_contains(a, "unix:gid:1"));
	/* duplicates collapse; order is sorted */
	assert_int_equal(wi_selector_set_add_string(a, "unix:gid:0"), 0);
	assert_int_equal(wi_selector_set_count(a), 3);
	for (size_t i = 1; i < wi_selector_set_count(a); i++)
		assert_true(strcmp(wi_selector_set_at(a, i - 1), wi_selector_set_at(a, i)) < 0);
	size_t n;
	assert_string_equal(wi_selector_set_value(a, WI_SEL_UNIX_UID, &n), "0");
	assert_int_equal(n, 1);
	assert_null(wi_selector_set_value(a, WI_SEL_SYSTEMD_UNIT, &n));
	assert_int_equal(n, 0);
	/* unix:uid must not match unix:user values by prefix */
	static const char *const u_sel[] = {"unix:user:root", NULL};
	wi_selector_set *u = set_of(u_sel);
	assert_null(wi_selector_set_value(u, WI_SEL_UNIX_UID, &n));
	/* refcounting */
	wi_selector_set *r = wi_selector_set_ref(a);
	assert_ptr_equal(r, a);
	wi_selector_set_unref(r);
	wi_selector_set_unref(a);
	wi_selector_set_unref(b);
	wi_selector_set_unref(c);
	wi_selector_set_unref(u);
}

static void test_set_cap(void **state)
{
	wi_selector_set *s = NULL;
	assert_int_equal(wi_selector_set_new(&s), 0);
	char buf[64];
	int rc = 0;
	for (int i = 0; i <= WI_SELECTORS_PER_PROCESS_MAX && rc == 0; i++) {
		snprintf(buf, sizeof(buf), "unix:supplementary_gid:%d", i + 1);
		rc = wi_selector_set_add_string(s, buf);
	}
	assert_int_equal(rc, WI_E_TOO_BIG);
	assert_int_equal(wi_selector_set_count(s), WI_SELECTORS_PER_PROCESS_MAX);
	wi_selector_set_unref(s);
}

static wi_registry *reg_new(void)
{
	wi_registry *r = NULL;
	assert_int_equal(wi_registry_new("example.org", &r), 0);
	return r;
}

static int add(wi_registry *r, const char *id, const char *const *sels, const char *hint)
{
	wi_selector_set *s = set_of(sels);
	int rc = wi_registry_add(r, id, s, hint, 0);
	wi_selector_set_unref(s);
	return rc;
}

static void test_entry_validation(void **state)
{
	static const char *const uid0[] = {"unix:uid:0", NULL};
	wi_registry *r = reg_new();
	assert_int_equal(add(r, "spiffe://example.org/a", uid0, NULL), 0);
	assert_int_equal(add(r, "spiffe://other.org/a", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org.evil/a", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org/a/", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org/{unix:uid", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org/unix:uid}", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org/{k8s:ns}", uid0, NULL), WI_E_SELECTOR);
	assert_int_equal(add(r, "spiffe://example.org/{unix:supplementary_gid}", uid0, NULL), WI_E_SELECTOR);
	assert_int_equal(add(r, "spiffe://example.org/{{unix:uid}}", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://{unix:uid}/x", uid0, NULL), WI_E_SPIFFE_ID);
	assert_int_equal(add(r, "spiffe://example.org/a b/{unix:uid}", uid0, NULL), WI_E_SPIFFE_ID);
	/* no selectors */
	wi_selector_set *empty = NULL;
	assert_int_equal(wi_selector_set_new(&empty), 0);
	assert_int_equal(wi_registry_add(r, "spiffe://example.org/b", empty, NULL, 0), WI_E_SELECTOR);
	wi_selector_set_unref(empty);
	/* hint too long */
	char hint[WI_HINT_MAX + 2];
	memset(hint, 'h', sizeof(hint) - 1);
	hint[sizeof(hint) - 1] = '\0';
	assert_int_equal(add(r, "spiffe://example.org/c", uid0, hint), WI_E_INVAL);
	assert_int_equal(wi_registry_count(r), 1);
	wi_registry_unref(r);
}

static void test_match_order_and_hints(void **state)
{
	static const char *const uid0[] = {"unix:uid:0", NULL};
	static const char *const uid0_py[] = {"unix:uid:0", "unix:path:/usr/bin/python3.11", NULL};
	static const char *const uid1[] = {"unix:uid:1", NULL};
	wi_registry *r = reg_new();
	assert_int_equal(add(r, "spiffe://example.org/first", uid0, "a"), 0);
	assert_int_equal(add(r, "spiffe://example.org/py", uid0_py, "b"), 0);
	assert_int_equal(add(r, "spiffe://example.org/other", uid1, NULL), 0);
	assert_int_equal(add(r, "spiffe://example.org/duphint", uid0, "a"), 0);  /* dropped: hint a */
	assert_int_equal(add(r, "spiffe://example.org/first", uid0_py, "z"), 0); /* dropped: same ID */
	assert_int_equal(add(r, "spiffe://example.org/last", uid0, NULL), 0);

	static const char *const caller[] = {"unix:uid:0", "unix:gid:0", "unix:path:/usr/bin/python3.11", NULL};
	wi_selector_set *att = set_of(caller);
	wi_identities *ids = NULL;
	assert_int_equal(wi_registry_match(r, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 3);
	assert_string_equal(wi_identities_at(ids, 0)->spiffe_id, "spiffe://example.org/first");
	assert_string_equal(wi_identities_at(ids, 0)->hint, "a");
	assert_string_equal(wi_identities_at(ids, 1)->spiffe_id, "spiffe://example.org/py");
	assert_string_equal(wi_identities_at(ids, 2)->spiffe_id, "spiffe://example.org/last");
	assert_string_equal(wi_identities_at(ids, 2)->hint, "");
	assert_non_null(wi_identities_find(ids, "spiffe://example.org/py"));
	assert_null(wi_identities_find(ids, "spiffe://example.org/other"));

	/* the same caller matched twice gives equal lists */
	wi_identities *again = NULL;
	assert_int_equal(wi_registry_match(r, att, &again), 0);
	assert_true(wi_identities_equal(ids, again));
	wi_identities_free(again);

	/* another binary under uid 0 gets the uid entries but not /py */
	static const char *const other[] = {"unix:uid:0", "unix:path:/usr/bin/node", NULL};
	wi_selector_set *att2 = set_of(other);
	assert_int_equal(wi_registry_match(r, att2, &again), 0);
	assert_int_equal(wi_identities_count(again), 2);
	assert_null(wi_identities_find(again, "spiffe://example.org/py"));
	assert_false(wi_identities_equal(ids, again));
	wi_identities_free(again);

	/* nobody */
	static const char *const nobody[] = {"unix:uid:65534", NULL};
	wi_selector_set *att3 = set_of(nobody);
	assert_int_equal(wi_registry_match(r, att3, &again), 0);
	assert_int_equal(wi_identities_count(again), 0);
	wi_identities_free(again);

	/* the list keeps the registry alive */
	wi_registry_unref(r);
	assert_string_equal(wi_identities_at(ids, 1)->hint, "b");
	wi_identities_free(ids);
	wi_selector_set_unref(att);
	wi_selector_set_unref(att2);
	wi_selector_set_unref(att3);
}

/* At most WI_IDENTITIES_PER_CALLER_MAX identities per caller, the first in
 * entry order; a cut is reported, an exact fit is not. */
static void test_identities_cap(void **state)
{
	(void)state;
	static const char *const uid0[] = {"unix:uid:0", NULL};
	static const char *const caller[] = {"unix:uid:0", NULL};
	for (int extra = 0; extra <= 1; extra++) {
		wi_registry *r = reg_new();
		for (int i = 0; i < WI_IDENTITIES_PER_CALLER_MAX + extra; i++) {
			char id[64];
			snprintf(id, sizeof(id), "spiffe://example.org/w/%d", i);
			assert_int_equal(add(r, id, uid0, NULL), 0);
		}
		wi_selector_set *att = set_of(caller);
		wi_identities *ids = NULL;
		assert_int_equal(wi_registry_match(r, att, &ids), 0);
		assert_int_equal(wi_identities_count(ids), WI_IDENTITIES_PER_CALLER_MAX);
		assert_int_equal(wi_identities_truncated(ids), extra == 1);
		assert_string_equal(wi_identities_at(ids, 0)->spiffe_id, "spiffe://example.org/w/0");
		wi_identities_free(ids);
		wi_selector_set_unref(att);
		wi_registry_unref(r);
	}
}

static void test_templates(void **state)
{
	static const char *const any_uid_user[] = {"unix:gid:100", NULL};
	wi_registry *r = reg_new();
	assert_int_equal(add(r, "spiffe://example.org/uid/{unix:uid}", any_uid_user, NULL), 0);
	assert_int_equal(add(r, "spiffe://example.org/user-{unix:user}/unit/{systemd:unit}", any_uid_user, NULL), 0);
	assert_true(wi_registry_uses_kind(r, WI_SEL_UNIX_UID));
	assert_true(wi_registry_uses_kind(r, WI_SEL_SYSTEMD_UNIT));
	assert_true(wi_registry_uses_kind(r, WI_SEL_UNIX_GID));
	assert_false(wi_registry_uses_kind(r, WI_SEL_UNIX_SHA256));

	static const char *const alice[] = {"unix:gid:100", "unix:uid:1000", "unix:user:alice",
					    "systemd:unit:agent.service", NULL};
	wi_selector_set *att = set_of(alice);
	wi_identities *ids = NULL;
	assert_int_equal(wi_registry_match(r, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 2);
	assert_string_equal(wi_identities_at(ids, 0)->spiffe_id, "spiffe://example.org/uid/1000");
	assert_string_equal(wi_identities_at(ids, 1)->spiffe_id,
			    "spiffe://example.org/user-alice/unit/agent.service");
	wi_identities_free(ids);
	wi_selector_set_unref(att);

	/* A value that is not path-safe, or a missing value, disables the entry
	 * for that caller only: no path injection. */
	static const char *const weird[] = {"unix:gid:100", "unix:uid:7", "unix:user:a:b",
					    "systemd:unit:x\\x2fy.service", NULL};
	att = set_of(weird);
	assert_int_equal(wi_registry_match(r, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 1);
	assert_string_equal(wi_identities_at(ids, 0)->spiffe_id, "spiffe://example.org/uid/7");
	wi_identities_free(ids);
	wi_selector_set_unref(att);

	static const char *const dots[] = {"unix:gid:100", "unix:uid:1", "unix:user:..",
					   "systemd:unit:a.service", NULL};
	wi_registry *r2 = reg_new();
	static const char *const g[] = {"unix:gid:100", NULL};
	assert_int_equal(add(r2, "spiffe://example.org/{unix:user}", g, NULL), 0);
	att = set_of(dots);
	assert_int_equal(wi_registry_match(r2, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 0); /* "/.." is not a valid ID */
	wi_identities_free(ids);
	wi_selector_set_unref(att);
	wi_registry_unref(r2);
	wi_registry_unref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selector_parse),	    cmocka_unit_test(test_set_ops),
		cmocka_unit_test(test_set_cap),		    cmocka_unit_test(test_entry_validation),
		cmocka_unit_test(test_match_order_and_hints), cmocka_unit_test(test_templates),
		cmocka_unit_test(test_identities_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
