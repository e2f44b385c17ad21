/* Unit tests: config loading, and errors that name the offending key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/jws.h"

#define BASE "\"trust_domain\": \"example.org\", \"data_dir\": \"/tmp/d\", \"workload_socket\": \"/tmp/s.sock\""

static void expect_error(const char *text, const char *needle)
{
	wi_config *c = NULL;
	int rc = wi_config_load_string(text, "test.json", &c);
	if (rc != WI_E_CONFIG)
		fail_msg("accepted: %s", text);
	assert_null(c);
	if (!strstr(wi_error_detail(), needle))
		fail_msg("error \"%s\" does not mention \"%s\"", wi_error_detail(), needle);
}

static void test_minimal(void **state)
{
	wi_config *c = NULL;
	assert_int_equal(wi_config_load_string("{" BASE "}", "t", &c), 0);
	assert_string_equal(wi_config_trust_domain(c), "example.org");
	assert_string_equal(wi_config_data_dir(c), "/tmp/d");
	assert_string_equal(wi_config_workload_socket(c), "/tmp/s.sock");
	assert_int_equal(wi_config_x509_svid_ttl(c), 3600);
	assert_int_equal(wi_config_ca_ttl(c), 365 * 86400);
	assert_int_equal(wi_config_log_level(c), WI_LOG_INFO);
	assert_null(wi_config_ca_upstream_cert(c));
	wi_registry *r = wi_config_registry(c);
	assert_int_equal(wi_registry_count(r), 0);
	wi_registry_unref(r);
	wi_config_free(c);
}

static void test_full(void **state)
{
	const char *text = "{" BASE ", \"log_level\": \"debug\", \"log_format\": \"json\", \"x509_svid_ttl\": \"30m\","
			   "\"ca\": {\"ttl\": \"720h\", \"upstream_cert\": \"/etc/ca.pem\", \"upstream_key\": \"/etc/ca.key\"},"
			   "\"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:@daemon\"],"
			   " \"hint\": \"h\", \"x509_svid_ttl\": 7200}]}";
	wi_config *c = NULL;
	if (wi_config_load_string(text, "t", &c) != 0)
		fail_msg("%s", wi_error_detail());
	assert_int_equal(wi_config_log_level(c), WI_LOG_DEBUG);
	assert_true(wi_config_log_json(c));
	assert_int_equal(wi_config_x509_svid_ttl(c), 1800);
	assert_int_equal(wi_config_max_x509_svid_ttl(c), 7200);
	assert_int_equal(wi_config_ca_ttl(c), 720 * 3600);
	assert_string_equal(wi_config_ca_upstream_cert(c), "/etc/ca.pem");
	wi_registry *r = wi_config_registry(c);
	assert_int_equal(wi_registry_count(r), 1);
	/* @daemon became our own uid */
	char sel[64];
	snprintf(sel, sizeof(sel), "unix:uid:%u", (unsigned)geteuid());
	wi_selector_set *att = NULL;
	assert_int_equal(wi_selector_set_new(&att), 0);
	assert_int_equal(wi_selector_set_add_string(att, sel), 0);
	wi_identities *ids = NULL;
	assert_int_equal(wi_registry_match(r, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 1);
	assert_int_equal(wi_identities_at(ids, 0)->x509_ttl, 7200);
	wi_identities_free(ids);
	wi_selector_set_unref(att);
	wi_registry_unref(r);
	wi_config_free(c);
}

static void test_relative_paths(void **state)
{
	wi_config *c = NULL;
	assert_int_equal(wi_config_load_string("{\"trust_domain\": \"example.org\", \"data_dir\": \"./run/data\","
					       "\"workload_socket\": \"run/w.sock\"}",
					       "t", &c),
			 0);
	char cwd[4096], want[4200];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/run/data", cwd);
	assert_string_equal(wi_config_data_dir(c), want);
	snprintf(want, sizeof(want), "%s/run/w.sock", cwd);
	assert_string_equal(wi_config_workload_socket(c), want);
	wi_config_free(c);
}

static void test_errors(void **state)
{
	expect_error("", "test.json:");
	expect_error("[]", "must be a JSON object");
	expect_error("{\"trust_domain\": \"example.org\"", "test.json:1:");
	expect_error("{" BASE ", \"bogus\": 1}", "unknown key \"bogus\"");
	expect_error("{\n" BASE ",\n\n \"bogus\": 1}", "test.json:4:");
	expect_error("{\"data_dir\": \"/d\", \"workload_socket\": \"/s\"}", "missing required key \"trust_domain\"");
	expect_error("{\"trust_domain\": 5, \"data_dir\": \"/d\", \"workload_socket\": \"/s\"}",
		     "\"trust_domain\" must be a string");
	expect_error("{\"trust_domain\": \"Example.org\", \"data_dir\": \"/d\", \"workload_socket\": \"/s\"}",
		     "lowercase");
	expect_error("{" BASE ", \"trust_domain\": \"x.org\"}", "duplicate");
	expect_error("{" BASE ", \"log_level\": \"loud\"}", "log_level");
	expect_error("{" BASE ", \"x509_svid_ttl\": \"1y\"}", "x509_svid_ttl");
	expect_error("{" BASE ", \"x509_svid_ttl\": 1}", "between");
	expect_error("{" BASE ", \"x509_svid_ttl\": true}", "x509_svid_ttl");
	expect_error("{" BASE ", \"ca\": {\"ttl\": \"1h\"}}", "ca: ");
	expect_error("{" BASE ", \"ca\": {\"upstream_cert\": \"/x\"}}", "go together");
	expect_error("{" BASE ", \"ca\": {\"tll\": \"1h\"}}", "unknown key \"tll\"");
	expect_error("{" BASE ", \"entries\": {}}", "\"entries\" must be an array");
	expect_error("{" BASE ", \"entries\": [5]}", "entries[0]");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": []}]}",
		     "non-empty array");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:uid:x\"]}]}",
		     "entries[0]: selectors[0]");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"k8s:ns:default\"]}]}",
		     "unknown selector kind");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:path:@daemon\"]}]}",
		     "@daemon");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:uid:0\"]}, {\"spiffe_id\": \"spiffe://other.org/b\", \"selectors\": [\"unix:uid:0\"]}]}",
		     "entries[1]");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:uid:0\"], \"ttl\": 5}]}",
		     "unknown key \"ttl\"");
	/* The same SPIFFE ID and selectors twice (in another order): one entry
	 * too many, named with its line. */
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:uid:0\", \"unix:gid:0\"]},\n{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:gid:0\", \"unix:uid:0\"], \"hint\": \"x\"}]}",
		     "entries[1]: repeats entries[0]");
	expect_error("{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": "
		     "[\"unix:uid:0\"], \"x509_svid_ttl\": \"200d\"}]}",
		     "x509_svid_ttl");
	expect_error("{\"trust_domain\": \"example.org\", \"data_dir\": \"/d\", \"workload_socket\": "
		     "\"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"}",
		     "longer than 107");
	/* nesting deeper than the limit */
	char deep[512] = "{" BASE ", \"ca\": ";
	size_t n = strlen(deep);
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	expect_error(deep, "nested deeper");
}

static void test_durations(void **state)
{
	int64_t s;
	assert_int_equal(wi_duration_parse("90s", &s), 0);
	assert_int_equal(s, 90);
	assert_int_equal(wi_duration_parse("1h30m", &s), 0);
	assert_int_equal(s, 5400);
	assert_int_equal(wi_duration_parse("7d", &s), 0);
	assert_int_equal(s, 7 * 86400);
	assert_int_equal(wi_duration_parse("", &s), WI_E_PARSE);
	assert_int_equal(wi_duration_parse("h", &s), WI_E_PARSE);
	assert_int_equal(wi_duration_parse("5", &s), WI_E_PARSE);
	assert_int_equal(wi_duration_parse("-5s", &s), WI_E_PARSE);
	assert_int_equal(wi_duration_parse("99999999999999999999s", &s), WI_E_PARSE);
	assert_int_equal(wi_duration_parse("9223372036854775807d", &s), WI_E_PARSE);
}

static void test_file_errors(void **state)
{
	wi_config *c = NULL;
	assert_int_equal(wi_config_load_file("/nonexistent/wimsed.json", &c), WI_E_CONFIG);
	assert_non_null(strstr(wi_error_detail(), "/nonexistent/wimsed.json: cannot read: "));
	/* The cause, wrapped: the read's own reason. */
	assert_non_null(strstr(wi_error_detail(), "core/fsutil.c:"));
	assert_non_null(strstr(wi_error_detail(), "/nonexistent/wimsed.json does not exist"));
	/* the shipped dev config loads */
	if (wi_config_load_file("../../conf/dev.json", &c) != 0)
		fail_msg("conf/dev.json: %s", wi_error_detail());
	wi_config_free(c);
}

static void test_txn_section(void **state)
{
	const char *text =
		"{" BASE ", \"txn\": {\"exchange_socket\": \"/tmp/x.sock\", \"https_listen\": \"127.0.0.1:8443\","
		" \"default_ttl\": \"2m\", \"max_hops\": 3, \"dev_issuer\": true, \"admin_selectors\": [\"unix:uid:0\", \"unix:gid:0\"],"
		" \"issuers\": [{\"issuer\": \"https://idp.example\", \"jwks_url\": \"https://idp.example/jwks\","
		"   \"audiences\": [\"wimsed\"], \"algorithms\": [\"RS256\", \"PS256\"], \"token_type\": \"at+jwt\"},"
		"  {\"issuer\": \"local\", \"jwks_file\": \"/etc/jwks.json\", \"audiences\": [\"a\", \"b\"], \"scope_claim\": \"scp\","
		"   \"scope_optional\": true}]},"
		" \"entries\": [{\"spiffe_id\": \"spiffe://example.org/agent\", \"selectors\": [\"unix:uid:0\"],"
		"   \"txn\": {\"allowed_scopes\": [\"calendar.read\", \"mail.send\"], \"allowed_resources\": [\"https://cal.example/\"],"
		"   \"max_ttl\": \"1m\", \"may_exchange_for\": [\"spiffe://example.org/agents/*\", \"spiffe://example.org/x\"]}},"
		"  {\"spiffe_id\": \"spiffe://example.org/plain\", \"selectors\": [\"unix:uid:0\"]}]}";
	wi_config *c = NULL;
	if (wi_config_load_string(text, "t", &c) != 0)
		fail_msg("%s", wi_error_detail());
	assert_string_equal(wi_config_exchange_socket(c), "/tmp/x.sock");
	assert_string_equal(wi_config_https_listen(c), "127.0.0.1:8443");
	assert_int_equal(wi_config_txn_default_ttl(c), 120);
	assert_int_equal(wi_config_txn_max_hops(c), 3);
	assert_true(wi_config_dev_issuer(c));
	assert_int_equal(wi_selector_set_count(wi_config_admin_selectors(c)), 2);
	assert_int_equal(wi_config_issuer_count(c), 2);
	const wi_issuer_config *i0 = wi_config_issuer_at(c, 0), *i1 = wi_config_issuer_at(c, 1);
	assert_string_equal(i0->issuer, "https://idp.example");
	assert_string_equal(i0->jwks_url, "https://idp.example/jwks");
	assert_null(i0->jwks_file);
	assert_int_equal(i0->algorithms, WI_JWS_RS256 | WI_JWS_PS256);
	assert_string_equal(i0->token_type, "at+jwt");
	assert_string_equal(i0->scope_claim, "scope");
	assert_false(i0->scope_optional);
	assert_string_equal(i1->jwks_file, "/etc/jwks.json");
	assert_int_equal(i1->n_audiences, 2);
	assert_string_equal(i1->audiences[1], "b");
	assert_int_equal(i1->algorithms, WI_JWS_RS256 | WI_JWS_ES256);
	assert_string_equal(i1->scope_claim, "scp");
	assert_true(i1->scope_optional);
	assert_null(wi_config_issuer_at(c, 2));

	wi_registry *r = wi_config_registry(c);
	wi_selector_set *att = NULL;
	assert_int_equal(wi_selector_set_new(&att), 0);
	assert_int_equal(wi_selector_set_add_string(att, "unix:uid:0"), 0);
	wi_identities *ids = NULL;
	assert_int_equal(wi_registry_match(r, att, &ids), 0);
	assert_int_equal(wi_identities_count(ids), 2);
	const wi_txn_policy *p = wi_identities_at(ids, 0)->txn;
	assert_non_null(p);
	assert_null(wi_identities_at(ids, 1)->txn); /* no txn: deny by default */
	assert_true(wi_txn_policy_allows_scope(p, "mail.send"));
	assert_false(wi_txn_policy_allows_scope(p, "mail"));
	assert_false(wi_txn_policy_allows_scope(NULL, "mail.send"));
	assert_true(wi_txn_policy_allows_resource(p, "https://cal.example/"));
	assert_false(wi_txn_policy_allows_resource(p, "https://cal.example"));
	assert_int_equal(wi_txn_policy_max_ttl(p), 60);
	assert_true(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/agents/a"));
	assert_true(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/agents/a/b"));
	assert_false(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/agents"));
	assert_false(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/agentsX/a"));
	assert_true(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/x"));
	assert_false(wi_txn_policy_may_exchange_for(p, "spiffe://example.org/x/y"));
	wi_identities_free(ids);
	wi_selector_set_unref(att);
	wi_registry_unref(r);
	wi_config_free(c);
}

static void test_txn_errors(void **state)
{
#define TXN(body) "{" BASE ", \"txn\": {\"exchange_socket\": \"/tmp/x.sock\"" body "}}"
#define ISS(body) TXN(", \"issuers\": [{\"issuer\": \"https://i\", \"audiences\": [\"a\"]" body "}]")
#define ENT(body) "{" BASE ", \"entries\": [{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:0\"], \"txn\": " body "}]}"
	expect_error("{" BASE ", \"txn\": {}}", "missing required key \"exchange_socket\"");
	expect_error("{" BASE ", \"txn\": {\"exchange_socket\": \"/tmp/s.sock\"}}", "must differ");
	expect_error(TXN(", \"bogus\": 1"), "txn: unknown key \"bogus\"");
	expect_error(TXN(", \"max_hops\": 0"), "max_hops");
	expect_error(TXN(", \"max_hops\": 99"), "max_hops");
	expect_error(TXN(", \"default_ttl\": \"2h\""), "default_ttl");
	expect_error(TXN(", \"https_listen\": \"8443\""), "https_listen");
	expect_error(TXN(", \"https_listen\": \"127.0.0.1:99999\""), "https_listen");
	expect_error(TXN(", \"dev_issuer\": \"yes\""), "dev_issuer");
	expect_error(TXN(", \"admin_selectors\": [\"k8s:x:y\"]"), "admin_selectors[0]");
	expect_error(ISS(""), "exactly one of");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"jwks_url\": \"https://b\""), "exactly one of");
	expect_error(ISS(", \"jwks_url\": \"http://idp.example/jwks\""), "https://");
	expect_error(ISS(", \"jwks_url\": \"http://localhost.evil.example/jwks\""), "https://");
	expect_error(ISS(", \"jwks_url\": \"http://127.0.0.1.nip.example/jwks\""), "https://");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"algorithms\": [\"none\"]"), "algorithms[0]");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"algorithms\": [\"HS256\"]"), "algorithms[0]");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"scope_claim\": \"roles\""), "scope_claim");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"audiences\": []"), "audiences");
	expect_error(ISS(", \"jwks_file\": \"/a\", \"extra\": 1"), "txn.issuers[0]: unknown key \"extra\"");
	expect_error(TXN(", \"issuers\": [{\"issuer\": \"https://i\", \"audiences\": [\"a\"], \"jwks_file\": \"/a\"},"
			 " {\"issuer\": \"https://i\", \"audiences\": [\"a\"], \"jwks_file\": \"/a\"}]"),
		     "listed twice");
	expect_error(ENT("5"), "entries[0]: txn");
	expect_error(ENT("{\"allowed_scopes\": [\"a b\"]}"), "allowed_scopes[0]");
	expect_error(ENT("{\"allowed_scopes\": \"a\"}"), "allowed_scopes");
	expect_error(ENT("{\"allowed_resources\": [\"no-scheme\"]}"), "allowed_resources[0]");
	expect_error(ENT("{\"allowed_resources\": [\"https://x/#frag\"]}"), "allowed_resources[0]");
	expect_error(ENT("{\"may_exchange_for\": [\"spiffe://Example.org/a\"]}"), "may_exchange_for[0]");
	expect_error(ENT("{\"max_ttl\": \"2h\"}"), "max_ttl");
	expect_error(ENT("{\"scopes\": []}"), "unknown key \"scopes\"");
#undef TXN
#undef ISS
#undef ENT
}

static void test_metrics_listen(void **state)
{
	(void)state;
	wi_config *c = NULL;
	assert_int_equal(wi_config_load_string("{" BASE "}", "t", &c), 0);
	assert_null(wi_config_metrics_listen(c)); /* off by default */
	wi_config_free(c);
	assert_int_equal(wi_config_load_string("{" BASE ", \"metrics_listen\": \"127.0.0.1:9464\"}", "t", &c), 0);
	assert_string_equal(wi_config_metrics_listen(c), "127.0.0.1:9464");
	wi_config_free(c);
	assert_int_equal(wi_config_load_string("{" BASE ", \"metrics_listen\": \"[::1]:9464\"}", "t", &c), 0);
	assert_string_equal(wi_config_metrics_listen(c), "[::1]:9464");
	wi_config_free(c);
	/* file:line and the key; the reason from the parser */
	expect_error("{" BASE ",\n \"metrics_listen\": \"localhost:9464\"}", "test.json:2: $: \"metrics_listen\"");
	expect_error("{" BASE ", \"metrics_listen\": \"127.0.0.1:0\"}", "port must be 1 to 65535");
	expect_error("{" BASE ", \"metrics_listen\": \"::1:9464\"}", "brackets");
	expect_error("{" BASE ", \"metrics_listen\": \"9464\"}", "metrics_listen");
	expect_error("{" BASE ", \"metrics_listen\": 9464}", "metrics_listen");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),	   cmocka_unit_test(test_full),	     cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_errors),	   cmocka_unit_test(test_durations), cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_txn_section), cmocka_unit_test(test_txn_errors),
		cmocka_unit_test(test_metrics_listen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
