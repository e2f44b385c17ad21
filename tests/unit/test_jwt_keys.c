/* tests/unit/test_jwt_keys.c — the JWT signing keys (persistence, kid, key
 * types, JWKS) and the RSA side of the signer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/error.h"
#include "core/jwk.h"
#include "core/jws.h"
#include "core/jwt_keys.h"
#include "core/jwt_svid.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/signer.h"

#define TD "example.org"
#define SUB "spiffe://example.org/w"
#define NOW ((time_t)1700000000)

typedef struct fx {
	char dir[512];
	char key_path[PATH_MAX];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "jwtkeys"));
	/* The data dir itself does not exist yet: open creates it. */
	strncat(f->dir, "/data", sizeof(f->dir) - strlen(f->dir) - 1);
	snprintf(f->key_path, sizeof(f->key_path), "%s/jwt/signing.key.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	char *slash = strrchr(f->dir, '/');
	*slash = '\0';
	wi_test_rmtree(f->dir);
	free(f);
	return 0;
}

static mode_t mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_mode & 07777;
}

static wi_jwt_keys *open_keys(const fx *f, wi_jwt_key_type type)
{
	wi_jwt_keys *k = NULL;
	int r = wi_jwt_keys_open(f->dir, type, &k);
	if (r != 0)
		fail_msg("open: %s", wi_error_detail());
	return k;
}

/* Mints with the keys' signer and validates against their own JWKS, both the
 * object and the serialised document (as a relying party would get it). */
static void mint_and_validate(const wi_jwt_keys *k, const char *want_alg)
{
	const char *aud[] = {"svc"};
	char *t = NULL;
	time_t exp = 0;
	assert_int_equal(wi_jwt_svid_mint(wi_jwt_keys_signer(k), wi_jwt_keys_kid(k), SUB, aud, 1, NOW,
					  300, &t, &exp),
			 0);
	char *id = NULL;
	json_t *c = NULL;
	assert_int_equal(
		wi_jwt_svid_validate(t, strlen(t), wi_jwt_keys_jwks(k), TD, "svc", NOW, &id, &c), 0);
	assert_string_equal(id, SUB);
	free(id);
	json_decref(c);

	const char *doc = wi_jwt_keys_jwks_json(k);
	wi_jwks *parsed = NULL;
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &parsed), 0);
	assert_non_null(wi_jwks_find(parsed, wi_jwt_keys_kid(k)));
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), parsed, TD, "svc", NOW, &id, &c), 0);
	free(id);
	json_decref(c);
	json_t *h = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), parsed, NULL, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), want_alg);
	assert_string_equal(json_string_value(json_object_get(h, "kid")), wi_jwt_keys_kid(k));
	json_decref(h);
	json_decref(c);
	wi_jwks_unref(parsed);
	free(t);
}

static void test_open_creates_and_persists(void **state)
{
	fx *f = *state;
	wi_jwt_keys *k = open_keys(f, WI_JWT_KEY_EC_P256);
	/* DESIGN §6: directory 0700, key 0600. */
	char jwt_dir[PATH_MAX];
	snprintf(jwt_dir, sizeof(jwt_dir), "%s/jwt", f->dir);
	assert_int_equal(mode_of(f->dir), 0700);
	assert_int_equal(mode_of(jwt_dir), 0700);
	assert_int_equal(mode_of(f->key_path), 0600);

	/* kid is the RFC 7638 thumbprint of the public key. */
	const char *kid = wi_jwt_keys_kid(k);
	assert_int_equal(strlen(kid), 43);
	char *tp = NULL;
	assert_int_equal(wi_jwk_thumbprint(wi_signer_public_key(wi_jwt_keys_signer(k)), &tp), 0);
	assert_string_equal(kid, tp);
	free(tp);
	assert_int_equal(wi_signer_alg(wi_jwt_keys_signer(k)), WI_SIG_ECDSA_P256_SHA256);

	/* The JWKS: one key, with our kid, as FetchJWTBundles sends it. */
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 1);
	assert_non_null(wi_jwks_find(wi_jwt_keys_jwks(k), kid));
	json_t *doc = json_loads(wi_jwt_keys_jwks_json(k), 0, NULL);
	assert_non_null(doc);
	json_t *key0 = json_array_get(json_object_get(doc, "keys"), 0);
	assert_string_equal(json_string_value(json_object_get(key0, "kty")), "EC");
	assert_string_equal(json_string_value(json_object_get(key0, "crv")), "P-256");
	assert_string_equal(json_string_value(json_object_get(key0, "kid")), kid);
	assert_null(json_object_get(key0, "d"));
	json_decref(doc);
	mint_and_validate(k, "ES256");

	/* Same kid after reopening: the key was reused, not regenerated. */
	char *kid1 = strdup(kid);
	wi_jwt_keys_free(k);
	k = open_keys(f, WI_JWT_KEY_EC_P256);
	assert_string_equal(wi_jwt_keys_kid(k), kid1);
	assert_int_equal(mode_of(f->key_path), 0600);
	/* The JWKS can outlive the keys object by reference. */
	wi_jwks *ref = wi_jwks_ref(wi_jwt_keys_jwks(k));
	assert_null(wi_jwt_keys_free(k));
	assert_non_null(wi_jwks_find(ref, kid1));
	wi_jwks_unref(ref);
	assert_null(wi_jwt_keys_free(NULL));
	free(kid1);
}

static void test_rsa_and_type_switch(void **state)
{
	fx *f = *state;
	wi_jwt_keys *k = open_keys(f, WI_JWT_KEY_EC_P256);
	char *ec_kid = strdup(wi_jwt_keys_kid(k));
	wi_jwt_keys_free(k);

	/* Asking for RSA replaces the EC key: new kid, RSA-2048, RS256. */
	k = open_keys(f, WI_JWT_KEY_RSA_2048);
	char *rsa_kid = strdup(wi_jwt_keys_kid(k));
	assert_string_not_equal(rsa_kid, ec_kid);
	EVP_PKEY *pub = wi_signer_public_key(wi_jwt_keys_signer(k));
	assert_true(EVP_PKEY_is_a(pub, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
	assert_int_equal(wi_signer_alg(wi_jwt_keys_signer(k)), WI_SIG_RSA_PKCS1_SHA256);
	assert_int_equal(mode_of(f->key_path), 0600);
	/* The replaced EC key stays published until its tokens have expired. */
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 2);
	assert_non_null(wi_jwks_find(wi_jwt_keys_jwks(k), ec_kid));
	json_t *doc = json_loads(wi_jwt_keys_jwks_json(k), 0, NULL);
	json_t *key0 = json_array_get(json_object_get(doc, "keys"), 0);
	assert_string_equal(json_string_value(json_object_get(key0, "kty")), "RSA");
	assert_string_equal(json_string_value(json_object_get(key0, "e")), "AQAB");
	json_decref(doc);
	mint_and_validate(k, "RS256");
	wi_jwt_keys_free(k);

	/* Persisted. */
	k = open_keys(f, WI_JWT_KEY_RSA_2048);
	assert_string_equal(wi_jwt_keys_kid(k), rsa_kid);
	wi_jwt_keys_free(k);

	/* RSA-3072 is another type. */
	k = open_keys(f, WI_JWT_KEY_RSA_3072);
	assert_string_not_equal(wi_jwt_keys_kid(k), rsa_kid);
	assert_int_equal(EVP_PKEY_get_bits(wi_signer_public_key(wi_jwt_keys_signer(k))), 3072);
	mint_and_validate(k, "RS256");
	wi_jwt_keys_free(k);

	/* Back to EC: a fresh key (the old EC key is gone). */
	k = open_keys(f, WI_JWT_KEY_EC_P256);
	assert_string_not_equal(wi_jwt_keys_kid(k), ec_kid);
	assert_string_not_equal(wi_jwt_keys_kid(k), rsa_kid);
	wi_jwt_keys_free(k);
	free(ec_kid);
	free(rsa_kid);
}

static void test_open_refusals(void **state)
{
	fx *f = *state;
	wi_jwt_keys *k = (wi_jwt_keys *)0x1;
	assert_int_equal(wi_jwt_keys_open(f->dir, (wi_jwt_key_type)9, &k), WI_E_INVAL);
	assert_int_equal(wi_jwt_keys_open(NULL, WI_JWT_KEY_EC_P256, &k), WI_E_INVAL);
	assert_ptr_equal(k, (wi_jwt_keys *)0x1);

	wi_jwt_keys_free(open_keys(f, WI_JWT_KEY_EC_P256));
	/* A key others may read is refused, not silently replaced. */
	assert_int_equal(chmod(f->key_path, 0644), 0);
	assert_int_equal(wi_jwt_keys_open(f->dir, WI_JWT_KEY_EC_P256, &k), WI_E_CONFIG);
	assert_ptr_equal(k, (wi_jwt_keys *)0x1);
	/* So is a corrupt one (the operator decides, the key is not lost). */
	FILE *fp = fopen(f->key_path, "w");
	assert_non_null(fp);
	fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", fp);
	fclose(fp);
	assert_int_equal(chmod(f->key_path, 0600), 0);
	assert_int_equal(wi_jwt_keys_open(f->dir, WI_JWT_KEY_EC_P256, &k), WI_E_PARSE);
	assert_ptr_equal(k, (wi_jwt_keys *)0x1);
	/* A P-384 key left there is "another type": replaced. */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_int_equal(wi_key_save_pem(p384, f->key_path), 0);
	EVP_PKEY_free(p384);
	k = open_keys(f, WI_JWT_KEY_EC_P256);
	assert_int_equal(wi_signer_alg(wi_jwt_keys_signer(k)), WI_SIG_ECDSA_P256_SHA256);
	wi_jwt_keys_free(k);
}

typedef struct sign_job {
	const wi_jwt_keys *k;
	int failures;
} sign_job;

static void *sign_many(void *arg)
{
	sign_job *j = arg;
	const char *aud[] = {"svc"};
	for (int i = 0; i < 50; i++) {
		char *t = NULL, *id = NULL;
		time_t exp = 0;
		json_t *c = NULL;
		if (wi_jwt_svid_mint(wi_jwt_keys_signer(j->k), wi_jwt_keys_kid(j->k), SUB, aud, 1, NOW, 300,
				     &t, &exp) != 0 ||
		    wi_jwt_svid_validate(t, strlen(t), wi_jwt_keys_jwks(j->k), TD, "svc", NOW, &id, &c) != 0)
			j->failures++;
		free(t);
		free(id);
		json_decref(c);
	}
	return NULL;
}

static void test_concurrent_signing(void **state)
{
	fx *f = *state;
	wi_jwt_keys *k = open_keys(f, WI_JWT_KEY_EC_P256);
	pthread_t th[4];
	sign_job jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (sign_job){k, 0};
		assert_int_equal(pthread_create(&th[i], NULL, sign_many, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].failures, 0);
	}
	wi_jwt_keys_free(k);
}

/* ---- the RSA side of the signer ------------------------------------------------ */

static void test_signer_rsa(void **state)
{
	(void)state;
	EVP_PKEY *key = NULL;
	assert_int_equal(wi_key_generate_rsa(2048, &key), 0);
	assert_int_equal(EVP_PKEY_get_bits(key), 2048);
	wi_signer *s = NULL;
	assert_int_equal(wi_signer_from_pkey(key, &s), 0);
	assert_int_equal(wi_signer_alg(s), WI_SIG_RSA_PKCS1_SHA256);
	EVP_PKEY *pub = wi_signer_public_key(s);
	assert_int_equal(EVP_PKEY_eq(pub, key), 1);

	uint8_t digest[32];
	unsigned int dlen = 0;
	assert_int_equal(EVP_Digest("message", 7, digest, &dlen, EVP_sha256(), NULL), 1);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	assert_int_equal(wi_signer_sign(s, WI_SIG_RSA_PKCS1_SHA256, digest, 32, &sig, &sig_len), 0);
	assert_int_equal(sig_len, 256);
	/* PKCS#1 v1.5 with a SHA-256 DigestInfo: verifies as RS256 would. */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)"message", 7), 1);
	EVP_MD_CTX_free(md);
	/* Deterministic (v1.5 has no salt). */
	uint8_t *sig2 = NULL;
	size_t sig2_len = 0;
	assert_int_equal(wi_signer_sign(s, WI_SIG_RSA_PKCS1_SHA256, digest, 32, &sig2, &sig2_len), 0);
	assert_memory_equal(sig, sig2, sig_len);
	free(sig);
	free(sig2);
	/* The other algorithm, a wrong digest length: refused, outputs untouched. */
	sig = (uint8_t *)0x1;
	assert_int_equal(wi_signer_sign(s, WI_SIG_ECDSA_P256_SHA256, digest, 32, &sig, &sig_len),
			 WI_E_INVAL);
	assert_int_equal(wi_signer_sign(s, WI_SIG_RSA_PKCS1_SHA256, digest, 20, &sig, &sig_len),
			 WI_E_INVAL);
	assert_ptr_equal(sig, (uint8_t *)0x1);
	wi_signer_free(s);

	/* Under 2048 bits: refused by the signer and by generation. */
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_int_equal(wi_signer_from_pkey(weak, &s), WI_E_INVAL);
	EVP_PKEY_free(weak);
	assert_int_equal(wi_key_generate_rsa(1024, &key), WI_E_INVAL);
	assert_int_equal(wi_key_generate_rsa(2047, &key), WI_E_INVAL);
	assert_int_equal(wi_key_generate_rsa(WI_RSA_BITS_MAX + 8, &key), WI_E_INVAL);
	/* An RSA-PSS-only key cannot make PKCS#1 v1.5 signatures. */
	EVP_PKEY *pss = NULL;
	EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
	assert_non_null(kctx);
	assert_int_equal(EVP_PKEY_keygen_init(kctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(kctx, 2048), 1);
	assert_int_equal(EVP_PKEY_generate(kctx, &pss), 1);
	EVP_PKEY_CTX_free(kctx);
	assert_true(EVP_PKEY_is_a(pss, "RSA-PSS"));
	assert_int_equal(wi_signer_from_pkey(pss, &s), WI_E_INVAL);
	EVP_PKEY_free(pss);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_creates_and_persists),
		T(test_rsa_and_type_switch),
		T(test_open_refusals),
		T(test_concurrent_signing),
		cmocka_unit_test(test_signer_rsa),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
