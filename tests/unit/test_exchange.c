/* Unit tests: the token exchange policy and claims (txn-token/exchange.c):
 * delegated, autonomous and replacement exchanges, down-scoping, targets,
 * actor tokens, hops and loops, revocation, and every OAuth error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/sha.h>

#include "core/b64url.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/jwk.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/limits.h"
#include "core/jwt_keys.h"
#include "core/jwt_svid.h"
#include "core/keys.h"
#include "core/signer.h"
#include "core/store.h"
#include "txn-token/exchange.h"
#include "txn-token/form.h"
#include "txn-token/issuers.h"
#include "txn-token/revocations.h"

#define TD "example.org"
#define ISSUER_ID "spiffe://example.org/wimsed/test"
#define IDP "https://idp.test"
#define AGENT "spiffe://example.org/agent"
#define SUB_AGENT "spiffe://example.org/sub-agent"
#define ORCH "spiffe://example.org/orchestrator"
#define NOPOL "spiffe://example.org/no-policy"

typedef struct fx {
	char dir[64];
	wi_config *config;
	wi_registry *reg;
	wi_jwt_keys *txn_keys, *svid_keys;
	wi_signer *idp_signer;
	char *idp_kid;
	wi_issuers *issuers;
	wi_store *store;
	wi_revocations *rev;
	wi_txn_ctx cx;
	time_t now;
} fx;

static fx F;

static char *user_token_of(const char *iss, const char *sub, const char *aud, const char *scope, time_t iat,
			   time_t exp)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", iss, "sub", sub, "aud", aud, "iat", (json_int_t)iat,
			      "exp", (json_int_t)exp);
	if (scope)
		json_object_set_new(c, "scope", json_string(scope));
	char *t = NULL;
	assert_int_equal(wi_jws_sign(F.idp_signer, F.idp_kid, "at+jwt", c, &t), 0);
	json_decref(c);
	return t;
}

static char *user_token(const char *iss, const char *aud, const char *scope, time_t iat, time_t exp)
{
	return user_token_of(iss, "alice", aud, scope, iat, exp);
}

static char *svid(const char *id, const char *aud)
{
	const char *a[1] = {aud};
	char *t = NULL;
	time_t exp;
	assert_int_equal(wi_jwt_svid_mint(wi_jwt_keys_signer(F.svid_keys), wi_jwt_keys_kid(F.svid_keys), id, a, 1, F.now,
					  300, &t, &exp),
			 0);
	return t;
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	F.now = time(NULL);
	assert_non_null(wi_test_mkdtemp(F.dir, sizeof(F.dir), "exch"));
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/txn", F.dir);
	assert_int_equal(wi_fs_mkdir_private(sub), 0);
	assert_int_equal(wi_jwt_keys_open(sub, WI_JWT_KEY_EC_P256, &F.txn_keys), 0);
	snprintf(sub, sizeof(sub), "%s/svid", F.dir);
	assert_int_equal(wi_fs_mkdir_private(sub), 0);
	assert_int_equal(wi_jwt_keys_open(sub, WI_JWT_KEY_EC_P256, &F.svid_keys), 0);

	/* The user's IdP: a P-256 key published as a JWKS file. */
	EVP_PKEY *k = NULL;
	assert_int_equal(wi_key_generate_p256(&k), 0);
	assert_int_equal(wi_jwk_thumbprint(k, &F.idp_kid), 0);
	json_t *jwk = NULL;
	assert_int_equal(wi_jwk_from_pkey(k, F.idp_kid, &jwk), 0);
	json_t *set = json_pack("{s:[o]}", "keys", jwk);
	char *text = json_dumps(set, JSON_COMPACT);
	json_decref(set);
	char jwks_path[128];
	snprintf(jwks_path, sizeof(jwks_path), "%s/idp.jwks", F.dir);
	assert_int_equal(wi_fs_write_atomic(jwks_path, text, strlen(text), 0644), 0);
	free(text);
	assert_int_equal(wi_signer_from_pkey(k, &F.idp_signer), 0);

	char cfg[4096];
	snprintf(cfg, sizeof(cfg),
		 "{\"trust_domain\": \"" TD "\", \"data_dir\": \"%s\", \"workload_socket\": \"%s/w.sock\","
		 " \"txn\": {\"exchange_socket\": \"%s/x.sock\", \"issuers\": ["
		 "   {\"issuer\": \"" IDP "\", \"jwks_file\": \"%s\", \"audiences\": [\"wimsed\"], \"algorithms\": [\"ES256\"],"
		 "    \"token_type\": \"at+jwt\"},"
		 "   {\"issuer\": \"https://lax.test\", \"jwks_file\": \"%s\", \"audiences\": [\"wimsed\"], \"algorithms\": [\"ES256\"],"
		 "    \"scope_optional\": true},"
		 "   {\"issuer\": \"https://lax-scp.test\", \"jwks_file\": \"%s\", \"audiences\": [\"wimsed\"],"
		 "    \"algorithms\": [\"ES256\"], \"scope_claim\": \"scp\", \"scope_optional\": true}]},"
		 " \"entries\": ["
		 "  {\"spiffe_id\": \"" AGENT "\", \"selectors\": [\"unix:uid:1\"], \"txn\": {\"allowed_scopes\": [\"read\", \"write\"],"
		 "    \"allowed_resources\": [\"https://api.test/\"], \"max_ttl\": \"4m\"}},"
		 "  {\"spiffe_id\": \"" SUB_AGENT "\", \"selectors\": [\"unix:uid:2\"], \"txn\": {\"allowed_scopes\": [\"read\", \"write\"],"
		 "    \"allowed_resources\": [\"https://api.test/\"]}},"
		 "  {\"spiffe_id\": \"" ORCH "\", \"selectors\": [\"unix:uid:3\"], \"txn\": {\"allowed_scopes\": [\"read\"],"
		 "    \"may_exchange_for\": [\"" AGENT "\"]}},"
		 "  {\"spiffe_id\": \"" NOPOL "\", \"selectors\": [\"unix:uid:4\"]}]}",
		 F.dir, F.dir, F.dir, jwks_path, jwks_path, jwks_path);
	if (wi_config_load_string(cfg, "test", &F.config) != 0)
		fail_msg("%s", wi_error_detail());
	F.reg = wi_config_registry(F.config);
	assert_int_equal(wi_issuers_new(F.config, &F.issuers), 0);
	assert_int_equal(wi_store_open(F.dir, &F.store), 0);
	assert_int_equal(wi_revocations_open(F.store, F.now, &F.rev), 0);
	F.cx = (wi_txn_ctx){.trust_domain = TD, .issuer_id = ISSUER_ID, .node = "test", .txn_keys = F.txn_keys,
			    .svid_keys = F.svid_keys, .issuers = F.issuers, .revocations = F.rev,
			    .registry = F.reg, .default_ttl = 300, .max_hops = 3};
	return 0;
}

static int teardown(void **state)
{
	wi_revocations_free(F.rev);
	wi_store_close(F.store);
	wi_issuers_free(F.issuers);
	wi_signer_free(F.idp_signer);
	free(F.idp_kid);
	wi_jwt_keys_free(F.txn_keys);
	wi_jwt_keys_free(F.svid_keys);
	wi_registry_unref(F.reg);
	wi_config_free(F.config);
	return wi_test_rmtree(F.dir);
}

/* The same fixture with the token service's caches of tokens that passed
 * (JWT-SVIDs, Txn-Tokens): every test runs both ways, so a cached answer can
 * never differ from a full verification. */
static int setup_cached(void **state)
{
	int rc = setup(state);
	if (rc == 0 && (wi_verified_cache_new(64, &F.cx.svid_cache) < 0 ||
			wi_verified_cache_new(64, &F.cx.txn_cache) < 0))
		rc = -1;
	return rc;
}

static int teardown_cached(void **state)
{
	wi_verified_cache_free(F.cx.svid_cache);
	wi_verified_cache_free(F.cx.txn_cache);
	F.cx.svid_cache = F.cx.txn_cache = NULL;
	return teardown(state);
}

static wi_txn_caller caller_for(const char *id)
{
	return (wi_txn_caller){.spiffe_id = id, .policy = wi_registry_txn_policy_for(F.reg, id), .transport = "uds",
			       .authn = "unix-attestation"};
}

/* Builds a form from NULL-terminated name/value pairs (values escaped). */
static wi_form *form_of(const char *first, ...)
{
	char body[65536] = "";
	size_t n = 0;
	va_list ap;
	va_start(ap, first);
	for (const char *name = first; name; name = va_arg(ap, const char *)) {
		const char *value = va_arg(ap, const char *);
		if (!value)
			continue;
		char *e = curl_easy_escape(NULL, value, 0);
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s%s=%s", n ? "&" : "", name, e);
		curl_free(e);
	}
	va_end(ap);
	wi_form *f = NULL;
	if (wi_form_parse(body, strlen(body), 64, &f) != 0)
		fail_msg("form: %s", wi_error_detail());
	return f;
}

#define BASE_FORM(scope, st, stt)                                                                            \
	"grant_type", WI_GRANT_TOKEN_EXCHANGE, "requested_token_type", WI_TOKEN_TYPE_TXN, "audience", TD, "scope", \
		(scope), "subject_token", (st), "subject_token_type", (stt)

static int run(const wi_txn_caller *c, wi_form *f, wi_txn_issued *out, wi_oauth_err *err)
{
	int rc = wi_txn_exchange(&F.cx, f, c, F.now, out, err);
	wi_form_free(f);
	return rc;
}

static json_t *claims_of(const char *token)
{
	json_t *c = NULL;
	assert_int_equal(wi_txn_verify(&F.cx, token, F.now, &c), 0);
	return c;
}

static void expect_err(const wi_txn_caller *c, wi_form *f, int status, const char *error, const char *needle)
{
	wi_txn_issued out;
	wi_oauth_err err = {0};
	int rc = run(c, f, &out, &err);
	if (rc == 0)
		fail_msg("issued, wanted %s", error);
	assert_int_equal(err.status, status);
	assert_string_equal(err.error, error);
	if (needle && !strstr(err.description, needle))
		fail_msg("\"%s\" lacks \"%s\"", err.description, needle);
}

static void test_delegated(void **state)
{
	char *ut = user_token(IDP, "wimsed", "read write admin", F.now - 10, F.now + 120);
	wi_txn_caller c = caller_for(AGENT);
	wi_txn_issued out;
	wi_oauth_err err = {0};
	wi_form *f = form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "resource", "https://api.test/",
			     "request_details", "{\"action\":\"list\"}", "request_context", "{\"run\":\"r1\"}", NULL);
	if (run(&c, f, &out, &err) != 0)
		fail_msg("%s: %s", err.error, err.description);
	assert_false(out.replacement);
	assert_int_equal(out.expires_in, 120); /* capped by the user token's exp */
	json_t *cl = claims_of(out.token);
	assert_string_equal(json_string_value(json_object_get(cl, "iss")), ISSUER_ID);
	assert_string_equal(json_string_value(json_object_get(cl, "aud")), TD);
	assert_string_equal(json_string_value(json_object_get(cl, "sub")), "alice");
	assert_string_equal(json_string_value(json_object_get(cl, "sub_profile")), "user");
	json_t *sid = json_object_get(cl, "sub_id");
	assert_string_equal(json_string_value(json_object_get(sid, "format")), "iss_sub");
	assert_string_equal(json_string_value(json_object_get(sid, "iss")), IDP);
	assert_string_equal(json_string_value(json_object_get(cl, "scope")), "read");
	assert_string_equal(json_string_value(json_object_get(cl, "req_wl")), AGENT);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cl, "act"), "sub")), AGENT);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cl, "act"), "sub_profile")), "ai_agent");
	assert_string_equal(json_string_value(json_object_get(cl, "txn")), out.txn);
	json_t *tctx = json_object_get(cl, "tctx");
	assert_string_equal(json_string_value(json_array_get(json_object_get(tctx, "resource"), 0)), "https://api.test/");
	assert_string_equal(json_string_value(json_object_get(json_object_get(tctx, "details"), "action")), "list");
	json_t *consent = json_object_get(tctx, "consent");
	assert_string_equal(json_string_value(json_object_get(consent, "issuer")), IDP);
	assert_non_null(json_string_value(json_object_get(consent, "token_hash")));
	char *all = json_dumps(cl, 0);
	assert_non_null(all);
	assert_null(strstr(all, ut)); /* never the user token itself */
	free(all);
	json_t *rctx = json_object_get(cl, "rctx");
	assert_string_equal(json_string_value(json_object_get(rctx, "transport")), "uds");
	assert_string_equal(json_string_value(json_object_get(json_object_get(rctx, "request"), "run")), "r1");
	json_t *cm = json_object_get(json_object_get(cl, "agentic_ctx"), "chain_metadata");
	assert_int_equal(json_integer_value(json_object_get(cm, "hop_count")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(cm, "txn_path"), 0)), AGENT);
	json_decref(cl);
	wi_txn_issued_clear(&out);

	/* The policy's max_ttl (4 m) caps a long-lived user token. */
	char *ut2 = user_token(IDP, "wimsed", "read", F.now, F.now + 3600);
	f = form_of(BASE_FORM("read", ut2, WI_TOKEN_TYPE_ACCESS), NULL);
	assert_int_equal(run(&c, f, &out, &err), 0);
	assert_int_equal(out.expires_in, 240);
	wi_txn_issued_clear(&out);
	free(ut);
	free(ut2);
}

static void test_downscoping_and_targets(void **state)
{
	wi_txn_caller c = caller_for(AGENT);
	char *ut = user_token(IDP, "wimsed", "read", F.now, F.now + 300);
	/* in the policy, not in the user's token */
	expect_err(&c, form_of(BASE_FORM("write", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", "write");
	char *ut2 = user_token(IDP, "wimsed", "read write admin", F.now, F.now + 300);
	/* in the user's token, not in the policy */
	expect_err(&c, form_of(BASE_FORM("read admin", ut2, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", "admin");
	/* no scope claim: refused (never unconstrained) */
	char *ns = user_token(IDP, "wimsed", NULL, F.now, F.now + 300);
	expect_err(&c, form_of(BASE_FORM("read", ns, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", "no scope");
	/* ... unless the issuer says scope is optional: then the policy caps */
	char *lax = user_token("https://lax.test", "wimsed", NULL, F.now, F.now + 300);
	wi_txn_issued out;
	wi_oauth_err err = {0};
	assert_int_equal(run(&c, form_of(BASE_FORM("read write", lax, WI_TOKEN_TYPE_ACCESS), NULL), &out, &err), 0);
	wi_txn_issued_clear(&out);
	expect_err(&c, form_of(BASE_FORM("admin", lax, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", NULL);
	/* ... but a scope claim that is there and empty grants nothing, even
	 * from that issuer: "scope": "" and "scp": [] */
	char *lax_empty = user_token("https://lax.test", "wimsed", "", F.now, F.now + 300);
	expect_err(&c, form_of(BASE_FORM("read", lax_empty, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", "read");
	json_t *cl = json_pack("{s:s, s:s, s:s, s:I, s:I, s:[]}", "iss", "https://lax-scp.test", "sub", "alice", "aud",
			       "wimsed", "iat", (json_int_t)F.now, "exp", (json_int_t)(F.now + 300), "scp");
	char *lax_scp = NULL;
	assert_int_equal(wi_jws_sign(F.idp_signer, F.idp_kid, "at+jwt", cl, &lax_scp), 0);
	json_decref(cl);
	expect_err(&c, form_of(BASE_FORM("read", lax_scp, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", "read");
	/* (the same issuer without the claim: the policy bounds it) */
	cl = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", "https://lax-scp.test", "sub", "alice", "aud", "wimsed",
		       "iat", (json_int_t)F.now, "exp", (json_int_t)(F.now + 300));
	char *lax_none = NULL;
	assert_int_equal(wi_jws_sign(F.idp_signer, F.idp_kid, "at+jwt", cl, &lax_none), 0);
	json_decref(cl);
	assert_int_equal(run(&c, form_of(BASE_FORM("read", lax_none, WI_TOKEN_TYPE_ACCESS), NULL), &out, &err), 0);
	wi_txn_issued_clear(&out);
	free(lax_empty), free(lax_scp), free(lax_none);
	/* targets */
	expect_err(&c,
		   form_of("grant_type", WI_GRANT_TOKEN_EXCHANGE, "requested_token_type", WI_TOKEN_TYPE_TXN, "audience",
			   "other.org", "scope", "read", "subject_token", ut, "subject_token_type", WI_TOKEN_TYPE_ACCESS, NULL),
		   400, "invalid_target", "trust domain");
	expect_err(&c, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "resource", "https://evil.test/", NULL), 400,
		   "invalid_target", NULL);
	/* several targets (RFC 8693 allows asking): one per Txn-Token */
	expect_err(&c,
		   form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "resource", "https://api.test/", "resource",
			   "https://api.test/", NULL),
		   400, "invalid_target", "one audience and one resource");
	expect_err(&c, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "audience", TD, NULL), 400, "invalid_target",
		   "one audience");
	/* a workload without policy */
	wi_txn_caller np = caller_for(NOPOL);
	expect_err(&np, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "unauthorized_client", NULL);
	free(ut), free(ut2), free(ns), free(lax);
}

static void test_subject_token_errors(void **state)
{
	wi_txn_caller c = caller_for(AGENT);
	char *expired = user_token(IDP, "wimsed", "read", F.now - 600, F.now - 300);
	expect_err(&c, form_of(BASE_FORM("read", expired, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request", "expired");
	char *wrong_aud = user_token(IDP, "other", "read", F.now, F.now + 300);
	expect_err(&c, form_of(BASE_FORM("read", wrong_aud, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request",
		   "audience");
	char *wrong_iss = user_token("https://evil.test", "wimsed", "read", F.now, F.now + 300);
	expect_err(&c, form_of(BASE_FORM("read", wrong_iss, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request",
		   "not trusted");
	/* Signed by the trusted IdP's key, but without a usable iss: the key
	 * set cannot be chosen, so the signature is never looked at. */
	json_t *no_iss = json_pack("{s:s, s:s, s:I, s:s}", "sub", "alice", "aud", "wimsed", "exp", (json_int_t)F.now + 300,
				   "scope", "read");
	json_t *num_iss = json_pack("{s:i, s:s, s:s, s:I, s:s}", "iss", 7, "sub", "alice", "aud", "wimsed", "exp",
				    (json_int_t)F.now + 300, "scope", "read");
	char *t_no_iss = NULL, *t_num_iss = NULL;
	assert_int_equal(wi_jws_sign(F.idp_signer, F.idp_kid, "at+jwt", no_iss, &t_no_iss), 0);
	assert_int_equal(wi_jws_sign(F.idp_signer, F.idp_kid, "at+jwt", num_iss, &t_num_iss), 0);
	expect_err(&c, form_of(BASE_FORM("read", t_no_iss, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request", "iss");
	expect_err(&c, form_of(BASE_FORM("read", t_num_iss, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request", "iss");
	json_decref(no_iss), json_decref(num_iss), free(t_no_iss), free(t_num_iss);
	/* alg none, unsigned */
	char *h = NULL, *b = NULL;
	size_t l;
	const char *hj = "{\"alg\":\"none\",\"typ\":\"at+jwt\"}";
	char cj[256];
	snprintf(cj, sizeof(cj), "{\"iss\":\"" IDP "\",\"sub\":\"alice\",\"aud\":\"wimsed\",\"exp\":%lld,\"scope\":\"read\"}",
		 (long long)F.now + 300);
	assert_int_equal(wi_b64url_encode((const uint8_t *)hj, strlen(hj), &h, &l), 0);
	assert_int_equal(wi_b64url_encode((const uint8_t *)cj, strlen(cj), &b, &l), 0);
	char none[1024];
	snprintf(none, sizeof(none), "%s.%s.", h, b);
	expect_err(&c, form_of(BASE_FORM("read", none, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request", NULL);
	expect_err(&c, form_of(BASE_FORM("read", "garbage", WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request", NULL);
	expect_err(&c, form_of(BASE_FORM("read", expired, WI_TOKEN_TYPE_REFRESH), NULL), 400, "invalid_request", "refresh");
	expect_err(&c, form_of(BASE_FORM("read", expired, "urn:x:unknown"), NULL), 400, "invalid_request", "unsupported");
	free(h), free(b), free(expired), free(wrong_aud), free(wrong_iss);
}

static void test_request_errors(void **state)
{
	wi_txn_caller c = caller_for(AGENT);
	char *ut = user_token(IDP, "wimsed", "read", F.now, F.now + 300);
	expect_err(&c, form_of("scope", "read", NULL), 400, "invalid_request", "grant_type");
	expect_err(&c, form_of("grant_type", "client_credentials", NULL), 400, "unsupported_grant_type", NULL);
	expect_err(&c,
		   form_of("grant_type", WI_GRANT_TOKEN_EXCHANGE, "requested_token_type", WI_TOKEN_TYPE_ACCESS, "audience",
			   TD, "scope", "read", "subject_token", ut, "subject_token_type", WI_TOKEN_TYPE_ACCESS, NULL),
		   400, "invalid_request", "requested_token_type");
	expect_err(&c,
		   form_of("grant_type", WI_GRANT_TOKEN_EXCHANGE, "requested_token_type", WI_TOKEN_TYPE_TXN, "audience",
			   TD, "subject_token", ut, "subject_token_type", WI_TOKEN_TYPE_ACCESS, NULL),
		   400, "invalid_scope", "scope is required");
	expect_err(&c, form_of(BASE_FORM("re\"ad", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_scope", NULL);
	expect_err(&c, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "request_details", "[1,2]", NULL), 400,
		   "invalid_request", "request_details");
	char deep[200];
	memset(deep, '[', 60);
	memset(deep + 60, ']', 60);
	deep[120] = 0;
	char deepobj[256];
	snprintf(deepobj, sizeof(deepobj), "{\"a\":%s}", deep);
	expect_err(&c, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "request_details", deepobj, NULL), 400,
		   "invalid_request", "request_details");
	expect_err(&c, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "actor_token", "x", NULL), 400,
		   "invalid_request", "actor_token_type");
	free(ut);
}

static char *issue(const wi_txn_caller *c, const char *subject, const char *stt, const char *scope)
{
	wi_txn_issued out;
	wi_oauth_err err = {0};
	if (run(c, form_of(BASE_FORM(scope, subject, stt), NULL), &out, &err) != 0)
		fail_msg("%s: %s", err.error, err.description);
	char *t = strdup(out.token);
	wi_txn_issued_clear(&out);
	return t;
}

static void test_replacement(void **state)
{
	char *ut = user_token(IDP, "wimsed", "read write", F.now, F.now + 200);
	wi_txn_caller agent = caller_for(AGENT), subagent = caller_for(SUB_AGENT);
	char *parent = issue(&agent, ut, WI_TOKEN_TYPE_ACCESS, "read write");
	json_t *pc = claims_of(parent);
	char *child = issue(&subagent, parent, WI_TOKEN_TYPE_TXN, "read");
	json_t *cc = claims_of(child);
	static const char *const kept[] = {"txn", "sub", "aud"};
	for (int i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_object_get(cc, kept[i])),
				    json_string_value(json_object_get(pc, kept[i])));
	assert_true(json_equal(json_object_get(cc, "sub_id"), json_object_get(pc, "sub_id")));
	assert_true(json_integer_value(json_object_get(cc, "exp")) <= json_integer_value(json_object_get(pc, "exp")));
	json_t *act = json_object_get(cc, "act");
	assert_string_equal(json_string_value(json_object_get(act, "sub")), SUB_AGENT); /* outermost = new actor */
	assert_string_equal(json_string_value(json_object_get(json_object_get(act, "act"), "sub")), AGENT);
	assert_string_equal(json_string_value(json_object_get(cc, "req_wl")), SUB_AGENT);
	json_t *cm = json_object_get(json_object_get(cc, "agentic_ctx"), "chain_metadata");
	assert_int_equal(json_integer_value(json_object_get(cm, "hop_count")), 2);
	json_t *path = json_object_get(cm, "txn_path");
	assert_int_equal(json_array_size(path), 2);
	assert_string_equal(json_string_value(json_array_get(path, 1)), SUB_AGENT);
	assert_string_equal(json_string_value(json_object_get(cc, "scope")), "read");

	/* widening beyond the parent */
	char *narrow = issue(&agent, ut, WI_TOKEN_TYPE_ACCESS, "read");
	expect_err(&subagent, form_of(BASE_FORM("write", narrow, WI_TOKEN_TYPE_TXN), NULL), 400, "invalid_scope", NULL);
	/* loop: the agent is already in the chain of `child` */
	expect_err(&agent, form_of(BASE_FORM("read", child, WI_TOKEN_TYPE_TXN), NULL), 400, "invalid_request", "loop");
	/* hops: max 3 — agent, sub-agent, orchestrator is the third; a fourth refused */
	wi_txn_caller orch = caller_for(ORCH);
	char *third = issue(&orch, child, WI_TOKEN_TYPE_TXN, "read");
	wi_txn_caller np = caller_for(NOPOL);
	(void)np;
	wi_txn_caller fourth = {.spiffe_id = "spiffe://example.org/fourth", .policy = agent.policy, .transport = "uds",
				.authn = "unix-attestation"};
	expect_err(&fourth, form_of(BASE_FORM("read", third, WI_TOKEN_TYPE_TXN), NULL), 400, "invalid_request", "hops");
	/* a revoked run: no replacement */
	assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_TXN, json_string_value(json_object_get(pc, "txn")),
					    F.now + 600),
			 0);
	expect_err(&subagent, form_of(BASE_FORM("read", parent, WI_TOKEN_TYPE_TXN), NULL), 400, "invalid_request",
		   "revoked");
	json_t *dummy = NULL;
	assert_int_equal(wi_txn_verify(&F.cx, parent, F.now, &dummy), WI_E_REVOKED);
	/* a token from another key is not ours */
	char *svid_tok = svid(AGENT, ISSUER_ID);
	assert_true(wi_txn_verify(&F.cx, svid_tok, F.now, &dummy) < 0);
	json_decref(pc);
	json_decref(cc);
	free(ut), free(parent), free(child), free(narrow), free(third), free(svid_tok);
}

static void test_autonomous_and_actor_tokens(void **state)
{
	(void)state;
	wi_txn_caller agent = caller_for(AGENT), orch = caller_for(ORCH);
	/* autonomous: the agent's own JWT-SVID, aud = our issuer id */
	char *own = svid(AGENT, ISSUER_ID);
	char *t = issue(&agent, own, WI_TOKEN_TYPE_JWT, "read");
	json_t *c = claims_of(t);
	assert_string_equal(json_string_value(json_object_get(c, "sub")), AGENT);
	assert_string_equal(json_string_value(json_object_get(c, "sub_profile")), "ai_agent");
	assert_null(json_object_get(c, "act"));
	assert_null(json_object_get(c, "sub_id"));
	json_decref(c);
	free(t);
	/* someone else's SVID as subject, or one for another audience */
	char *other = svid(SUB_AGENT, ISSUER_ID);
	expect_err(&agent, form_of(BASE_FORM("read", other, WI_TOKEN_TYPE_JWT), NULL), 400, "invalid_request", "itself");
	char *wrong_aud = svid(AGENT, "spiffe://example.org/else");
	expect_err(&agent, form_of(BASE_FORM("read", wrong_aud, WI_TOKEN_TYPE_JWT), NULL), 400, "invalid_request", NULL);

	/* orchestrator obtains a token for AGENT with AGENT's SVID as actor */
	char *ut = user_token(IDP, "wimsed", "read write", F.now, F.now + 300);
	wi_txn_issued out;
	wi_oauth_err err = {0};
	assert_int_equal(run(&orch,
			     form_of(BASE_FORM("write", ut, WI_TOKEN_TYPE_ACCESS), "actor_token", own, "actor_token_type",
				     WI_TOKEN_TYPE_JWT, NULL),
			     &out, &err),
			 0); /* AGENT's policy (read, write) applies, not the orchestrator's */
	c = claims_of(out.token);
	assert_string_equal(json_string_value(json_object_get(c, "req_wl")), AGENT);
	assert_string_equal(json_string_value(json_object_get(json_object_get(c, "rctx"), "exchanged_by")), ORCH);
	json_decref(c);
	wi_txn_issued_clear(&out);
	/* the agent may not act as the orchestrator's exchanger for SUB_AGENT */
	expect_err(&agent,
		   form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "actor_token", other, "actor_token_type",
			   WI_TOKEN_TYPE_JWT, NULL),
		   400, "unauthorized_client", NULL);
	/* a revoked orchestrator: its tokens die, and it obtains no new ones */
	{
		wi_txn_issued o2;
		assert_int_equal(run(&orch,
				     form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "actor_token", own,
					     "actor_token_type", WI_TOKEN_TYPE_JWT, NULL),
				     &o2, &err),
				 0);
		assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_ACTOR, ORCH, F.now + 600), 0);
		json_t *dead = NULL;
		assert_int_equal(wi_txn_verify(&F.cx, o2.token, F.now, &dead), WI_E_REVOKED);
		wi_txn_issued_clear(&o2);
		expect_err(&orch,
			   form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), "actor_token", own, "actor_token_type",
				   WI_TOKEN_TYPE_JWT, NULL),
			   400, "unauthorized_client", "revoked");
	}
	/* revoked actor */
	assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_ACTOR, AGENT, F.now + 600), 0);
	expect_err(&agent, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "unauthorized_client",
		   "revoked");
	free(own), free(other), free(wrong_aud), free(ut);
}


static void test_principal_revocation(void **state)
{
	wi_txn_caller sub = caller_for(SUB_AGENT);
	char *ut = user_token(IDP, "wimsed", "read", F.now, F.now + 300);
	char *t = issue(&sub, ut, WI_TOKEN_TYPE_ACCESS, "read");
	assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_PRINCIPAL, IDP " alice", F.now + 600), 0);
	json_t *c = NULL;
	assert_int_equal(wi_txn_verify(&F.cx, t, F.now, &c), WI_E_REVOKED);
	/* and no new run for that person */
	expect_err(&sub, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request",
		   "principal has been revoked");
	free(ut);
	free(t);

	/* A long sub (here 3000 bytes): the revocation names all of it, and so
	 * do the checks of new exchanges and of tokens already issued. */
	char longsub[3001];
	memset(longsub, 'b', sizeof(longsub) - 1);
	longsub[sizeof(longsub) - 1] = '\0';
	ut = user_token_of(IDP, longsub, "wimsed", "read", F.now, F.now + 300);
	t = issue(&sub, ut, WI_TOKEN_TYPE_ACCESS, "read");
	char principal[sizeof(IDP) + sizeof(longsub)];
	snprintf(principal, sizeof(principal), "%s %s", IDP, longsub);
	assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_PRINCIPAL, principal, F.now + 600), 0);
	assert_int_equal(wi_txn_verify(&F.cx, t, F.now, &c), WI_E_REVOKED);
	expect_err(&sub, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request",
		   "principal has been revoked");
	free(ut);
	free(t);
	/* One too long to be revoked is not exchanged at all. */
	char *huge = malloc(WI_REVOCATION_VALUE_MAX + 1);
	assert_non_null(huge);
	memset(huge, 'c', WI_REVOCATION_VALUE_MAX);
	huge[WI_REVOCATION_VALUE_MAX] = '\0';
	ut = user_token_of(IDP, huge, "wimsed", "read", F.now, F.now + 300);
	expect_err(&sub, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "invalid_request",
		   "sub is too long");
	free(ut);
	free(huge);
}

/* A subject token that verified is remembered by digest: the same bytes skip
 * the signature check, but never the clock, and only for a bounded time. */
static void test_verified_subject_cache(void **state)
{
	(void)state;
	char *ut = user_token(IDP, "wimsed", "read", F.now, F.now + 300);
	const wi_issuer_config *is = NULL;
	json_t *c = NULL;
	uint64_t hits, misses;
	/* The digest handed back, on a miss and on a hit, is the token's
	 * SHA-256 (the exchange names the consenting token by it). */
	uint8_t want[SHA256_DIGEST_LENGTH], got[WI_SHA256_LEN];
	assert_non_null(SHA256((const unsigned char *)ut, strlen(ut), want));
	memset(got, 0, sizeof(got));
	assert_int_equal(wi_issuers_verify(F.issuers, ut, F.now, &is, &c, got), 0);
	assert_memory_equal(got, want, sizeof(want));
	wi_issuers_cache_stats(F.issuers, &hits, &misses);
	assert_int_equal(hits, 0);
	assert_int_equal(misses, 1);
	/* the caller owns its copy: changing it changes nothing cached */
	assert_int_equal(json_object_set_new(c, "sub", json_string("mallory")), 0);
	json_decref(c);
	c = NULL;
	memset(got, 0, sizeof(got));
	assert_int_equal(wi_issuers_verify(F.issuers, ut, F.now + 1, &is, &c, got), 0);
	assert_memory_equal(got, want, sizeof(want));
	wi_issuers_cache_stats(F.issuers, &hits, &misses);
	assert_int_equal(hits, 1);
	assert_string_equal(is->issuer, IDP);
	assert_string_equal(wi_jwt_string_claim(c, "sub"), "alice");
	json_decref(c);
	c = NULL;

	/* other bytes are another token: one changed signature byte fails */
	char *bad = strdup(ut);
	size_t n = strlen(bad);
	bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
	assert_int_not_equal(wi_issuers_verify(F.issuers, bad, F.now + 1, &is, &c, NULL), 0);
	assert_null(c);
	assert_int_not_equal(wi_issuers_verify(F.issuers, bad, F.now + 1, &is, &c, NULL), 0); /* failures never cached */
	wi_issuers_cache_stats(F.issuers, &hits, &misses);
	assert_int_equal(hits, 1);
	assert_int_equal(misses, 3);

	/* remembered for WI_VERIFIED_CACHE_TTL_MAX at most: then verified again */
	assert_int_equal(wi_issuers_verify(F.issuers, ut, F.now + WI_VERIFIED_CACHE_TTL_MAX + 1, &is, &c, NULL), 0);
	json_decref(c);
	c = NULL;
	wi_issuers_cache_stats(F.issuers, &hits, &misses);
	assert_int_equal(hits, 1);
	assert_int_equal(misses, 4);

	/* never past the token's exp, whatever was cached */
	char *short_lived = user_token(IDP, "wimsed", "read", F.now, F.now + 20);
	assert_int_equal(wi_issuers_verify(F.issuers, short_lived, F.now, &is, &c, NULL), 0);
	json_decref(c);
	c = NULL;
	assert_int_equal(wi_issuers_verify(F.issuers, short_lived, F.now + 20 + WI_JWT_LEEWAY_SECONDS + 1, &is, &c, NULL),
			 WI_E_EXPIRED);
	assert_null(c);

	/* and a cached token still goes through the exchange's own checks */
	wi_txn_caller nopol = caller_for(NOPOL);
	expect_err(&nopol, form_of(BASE_FORM("read", ut, WI_TOKEN_TYPE_ACCESS), NULL), 400, "unauthorized_client", NULL);
	free(ut);
	free(bad);
	free(short_lived);
}

/* A Txn-Token introspected again: no second signature check, but the
 * revocation, audience and times are checked every time. */
static void test_txn_verify_cached(void **state)
{
	(void)state;
	wi_txn_caller agent = caller_for(AGENT);
	char *ut = user_token(IDP, "wimsed", "read", F.now, F.now + 300);
	char *t = issue(&agent, ut, WI_TOKEN_TYPE_ACCESS, "read");
	json_t *c = NULL;
	uint64_t hits, misses;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wi_txn_verify(&F.cx, t, F.now + i, &c), 0);
		json_decref(c);
		c = NULL;
	}
	wi_verified_cache_stats(F.cx.txn_cache, &hits, &misses);
	assert_int_equal(misses, 1);
	assert_int_equal(hits, 2);
	/* remembered, yet for another trust domain it is not a token */
	const char *td = F.cx.trust_domain;
	F.cx.trust_domain = "other.example";
	assert_int_not_equal(wi_txn_verify(&F.cx, t, F.now, &c), 0);
	assert_null(c);
	F.cx.trust_domain = td;
	/* remembered, and dead the moment its run is revoked */
	c = claims_of(t);
	char txn[128];
	snprintf(txn, sizeof(txn), "%s", json_string_value(json_object_get(c, "txn")));
	json_decref(c);
	c = NULL;
	assert_int_equal(wi_revocations_add(F.rev, WI_REVOKE_TXN, txn, F.now + 600), 0);
	assert_int_equal(wi_txn_verify(&F.cx, t, F.now, &c), WI_E_REVOKED);
	assert_null(c);
	wi_verified_cache_stats(F.cx.txn_cache, &hits, &misses);
	assert_int_equal(misses, 1); /* every call after the first was a hit */
	assert_int_equal(hits, 5);
	/* a JWT-SVID signed by another key set is not a Txn-Token, every time */
	char *sv = svid(AGENT, ISSUER_ID);
	for (int i = 0; i < 2; i++)
		assert_int_not_equal(wi_txn_verify(&F.cx, sv, F.now, &c), 0);
	wi_verified_cache_stats(F.cx.txn_cache, &hits, &misses);
	assert_int_equal(misses, 3);
	free(sv);
	free(t);
	free(ut);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delegated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downscoping_and_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subject_token_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replacement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_autonomous_and_actor_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_principal_revocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verified_subject_cache, setup, teardown),
	};
	const struct CMUnitTest cached[] = {
		cmocka_unit_test_setup_teardown(test_delegated, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_downscoping_and_targets, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_subject_token_errors, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_request_errors, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_replacement, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_autonomous_and_actor_tokens, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_principal_revocation, setup_cached, teardown_cached),
		cmocka_unit_test_setup_teardown(test_txn_verify_cached, setup_cached, teardown_cached),
	};
	int failed = cmocka_run_group_tests_name("exchange", tests, NULL, NULL);
	return failed + cmocka_run_group_tests_name("exchange, caches on", cached, NULL, NULL);
}
