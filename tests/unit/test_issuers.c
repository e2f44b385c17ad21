/* Unit tests: trusted issuers with a JWKS URL (txn-token/issuers.c) against a
 * canned IdP (canned_http.h): libcurl is opened when the set is built, the
 * keys at the first token; a token with an unknown kid re-fetches (at most
 * once per WI_JWKS_REFETCH_MIN_SECONDS); a token remembered under the old key
 * set is verified again under the new one, and that counts as a miss.
 *
 * This binary does not link libcurl (no test here includes its header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/config.h"
#include "core/jwk.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/signer.h"
#include "txn-token/issuers.h"
#include "txn-token/jwks_fetch.h"

#include "tests/unit/canned_http.h"
#include "tests/unit/testutil.h"

#define IDP "https://idp.test"

typedef struct idp_key {
	wi_signer *signer;
	char *kid;
	json_t *jwk;
} idp_key;

static void key_new(idp_key *k)
{
	EVP_PKEY *p = NULL;
	assert_int_equal(wi_key_generate_p256(&p), 0);
	assert_int_equal(wi_jwk_thumbprint(p, &k->kid), 0);
	assert_int_equal(wi_jwk_from_pkey(p, k->kid, &k->jwk), 0);
	assert_int_equal(wi_signer_from_pkey(p, &k->signer), 0); /* owns p now */
}

static void key_free(idp_key *k)
{
	wi_signer_free(k->signer);
	free(k->kid);
	json_decref(k->jwk);
}

static char *token(const idp_key *k, const char *sub, time_t now)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", IDP, "sub", sub, "aud", "wimsed", "iat",
			      (json_int_t)now, "exp", (json_int_t)now + 600);
	char *t = NULL;
	assert_int_equal(wi_jws_sign(k->signer, k->kid, NULL, c, &t), 0);
	json_decref(c);
	return t;
}

/* "HTTP/1.1 200 …" with a JWKS of the given keys as the body (into head/body). */
static void jwks_reply(wi_canned_reply *r, char *head, size_t head_cap, char **body, const idp_key *a,
		       const idp_key *b)
{
	json_t *keys = json_array();
	json_array_append(keys, a->jwk);
	if (b)
		json_array_append(keys, b->jwk);
	json_t *set = json_pack("{s:o}", "keys", keys);
	*body = json_dumps(set, JSON_COMPACT);
	json_decref(set);
	snprintf(head, head_cap, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
				 "Connection: close\r\n\r\n",
		 strlen(*body));
	r->head = head;
	r->body = *body;
}

static wi_config *config_for(const wi_canned *c)
{
	char url[64], cfg[1024];
	snprintf(cfg, sizeof(cfg),
		 "{\"trust_domain\": \"example.org\", \"data_dir\": \"/nonexistent\", \"workload_socket\": \"/nonexistent/w\","
		 " \"txn\": {\"exchange_socket\": \"/nonexistent/x\", \"issuers\": ["
		 "   {\"issuer\": \"" IDP "\", \"jwks_url\": \"%s\", \"audiences\": [\"wimsed\"], \"algorithms\": [\"ES256\"]}]}}",
		 wi_canned_url(c, "/jwks", url, sizeof(url)));
	wi_config *conf = NULL;
	if (wi_config_load_string(cfg, "test", &conf) != 0)
		fail_msg("%s", wi_error_detail());
	return conf;
}

static void verify_ok(wi_issuers *s, const char *tok, time_t now, const char *want_sub)
{
	const wi_issuer_config *is = NULL;
	json_t *claims = NULL;
	if (wi_issuers_verify(s, tok, now, &is, &claims, NULL) != 0)
		fail_msg("verify: %s", wi_error_detail());
	assert_string_equal(is->issuer, IDP);
	assert_string_equal(wi_jwt_string_claim(claims, "sub"), want_sub);
	json_decref(claims);
}

static void expect_stats(wi_issuers *s, uint64_t hits, uint64_t misses)
{
	uint64_t h, m;
	wi_issuers_cache_stats(s, &h, &m);
	if (h != hits || m != misses)
		fail_msg("cache: %llu hits, %llu misses; want %llu, %llu", (unsigned long long)h, (unsigned long long)m,
			 (unsigned long long)hits, (unsigned long long)misses);
}

/* Must run first: it sees the process before anything opened libcurl. */
static void test_jwks_url_opens_libcurl_when_built(void **state)
{
	(void)state;
	assert_false(wi_test_library_mapped("libcurl.so"));
	wi_canned c = {.replies = {{.silent = true}}};
	assert_int_equal(wi_canned_start(&c), 0);
	wi_config *conf = config_for(&c);
	assert_false(wi_test_library_mapped("libcurl.so")); /* the config alone does not */
	wi_issuers *s = NULL;
	assert_int_equal(wi_issuers_new(conf, &s), 0);
	assert_true(wi_jwks_fetch_loaded());
	assert_true(wi_test_library_mapped("libcurl.so"));
	wi_issuers_free(s);
	wi_canned_stop(&c);
	assert_int_equal(c.served, 0); /* nothing fetched before a token needs keys */
	wi_config_free(conf);
}

static void test_rotation_refetch_and_cache_accounting(void **state)
{
	(void)state;
	idp_key a = {0}, b = {0};
	key_new(&a);
	key_new(&b);
	wi_canned c = {.n_replies = 2};
	char h1[256], h2[256];
	char *b1 = NULL, *b2 = NULL;
	jwks_reply(&c.replies[0], h1, sizeof(h1), &b1, &a, NULL); /* before the IdP rotates */
	jwks_reply(&c.replies[1], h2, sizeof(h2), &b2, &a, &b);   /* b added */
	assert_int_equal(wi_canned_start(&c), 0);
	wi_config *conf = config_for(&c);
	wi_issuers *s = NULL;
	assert_int_equal(wi_issuers_new(conf, &s), 0);
	time_t now = time(NULL);
	char *ta = token(&a, "alice", now);
	char *tb = token(&b, "bob", now);

	verify_ok(s, ta, now, "alice"); /* fetch 1, verified in full */
	assert_int_equal(c.served, 1);
	verify_ok(s, ta, now + 1, "alice"); /* remembered */
	expect_stats(s, 1, 1);

	/* kid b is unknown, and the last fetch was a second ago: no re-fetch yet */
	const wi_issuer_config *is = NULL;
	json_t *claims = NULL;
	assert_int_not_equal(wi_issuers_verify(s, tb, now + 1, &is, &claims, NULL), 0);
	assert_null(claims);
	assert_int_equal(c.served, 1);
	/* WI_JWKS_REFETCH_MIN_SECONDS later it re-fetches and b verifies */
	verify_ok(s, tb, now + WI_JWKS_REFETCH_MIN_SECONDS + 1, "bob");
	assert_int_equal(c.served, 2);
	expect_stats(s, 1, 3);

	/* ta is still remembered (WI_VERIFIED_CACHE_TTL_MAX has not passed), but
	 * under the key set that was replaced: verified again under the new one,
	 * and counted as a miss, not a hit */
	assert_true(WI_JWKS_REFETCH_MIN_SECONDS + 2 < WI_VERIFIED_CACHE_TTL_MAX);
	verify_ok(s, ta, now + WI_JWKS_REFETCH_MIN_SECONDS + 2, "alice");
	expect_stats(s, 1, 4);
	/* and remembered under the new set */
	verify_ok(s, ta, now + WI_JWKS_REFETCH_MIN_SECONDS + 3, "alice");
	expect_stats(s, 2, 4);
	assert_int_equal(c.served, 2);

	free(ta);
	free(tb);
	wi_issuers_free(s);
	wi_canned_stop(&c);
	wi_config_free(conf);
	free(b1);
	free(b2);
	key_free(&a);
	key_free(&b);
}

/* A JWKS file that cannot be read fails the set, naming the issuer (the
 * detail is built from the config, not from the freed issuer). */
static void test_unreadable_jwks_file(void **state)
{
	(void)state;
	wi_config *conf = NULL;
	if (wi_config_load_string("{\"trust_domain\": \"example.org\", \"data_dir\": \"/nonexistent\","
				  " \"workload_socket\": \"/nonexistent/w\", \"txn\": {\"exchange_socket\": \"/nonexistent/x\","
				  " \"issuers\": [{\"issuer\": \"" IDP "/first\", \"jwks_file\": \"/nonexistent/a.json\","
				  " \"audiences\": [\"wimsed\"]}, {\"issuer\": \"" IDP "/second\","
				  " \"jwks_file\": \"/nonexistent/b.json\", \"audiences\": [\"wimsed\"]}]}}",
				  "test", &conf) != 0)
		fail_msg("%s", wi_error_detail());
	wi_issuers *s = NULL;
	assert_int_equal(wi_issuers_new(conf, &s), WI_E_CONFIG);
	assert_null(s);
	const char *why = wi_error_detail();
	if (!strstr(why, "issuer " IDP "/first: jwks_file: "))
		fail_msg("detail: %s", why);
	wi_config_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwks_url_opens_libcurl_when_built),
		cmocka_unit_test(test_rotation_refetch_and_cache_accounting),
		cmocka_unit_test(test_unreadable_jwks_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
