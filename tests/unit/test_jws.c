/* tests/unit/test_jws.c — base64url, JWK/JWKS, JWS and the JWT-SVID profile.
 *
 * Tokens under test are mostly built here by hand with OpenSSL primitives and
 * an independent base64url encoder (not with wi_jws_sign), so the verifier is
 * not only checked against our own signer; and what wi_jws_sign produces is
 * checked with raw OpenSSL verification.  Every rejection path of the
 * validator has its own case. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "core/b64url.h"
#include "core/error.h"
#include "core/jwk.h"
#include "core/jws.h"
#include "core/jwt_svid.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/signer.h"

#define TD "example.org"
#define SUB "spiffe://example.org/workload"
#define AUD "svc"
#define NOW ((time_t)1700000000)

/* ---- shared keys (generated once) --------------------------------------- */

static EVP_PKEY *k_ec, *k_rsa, *k_p384, *k_p521, *k_ed, *k_other;
static wi_jwks *g_set; /* kids: ec rsa p384 p521 ed */

static int group_setup(void **state)
{
	(void)state;
	k_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	k_p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k_ec || !k_other || !k_p384 || !k_p521 || !k_rsa || !k_ed)
		return -1;
	if (wi_jwks_new(&g_set) < 0 || wi_jwks_add(g_set, "ec", k_ec) < 0 ||
	    wi_jwks_add(g_set, "rsa", k_rsa) < 0 || wi_jwks_add(g_set, "p384", k_p384) < 0 ||
	    wi_jwks_add(g_set, "p521", k_p521) < 0 || wi_jwks_add(g_set, "ed", k_ed) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	wi_jwks_unref(g_set);
	EVP_PKEY_free(k_ec);
	EVP_PKEY_free(k_other);
	EVP_PKEY_free(k_p384);
	EVP_PKEY_free(k_p521);
	EVP_PKEY_free(k_rsa);
	EVP_PKEY_free(k_ed);
	return 0;
}

/* A signer over its own reference to `key`. */
static wi_signer *signer_for(EVP_PKEY *key)
{
	assert_int_equal(EVP_PKEY_up_ref(key), 1);
	wi_signer *s = NULL;
	assert_int_equal(wi_signer_from_pkey(key, &s), 0);
	return s;
}

/* ---- an independent base64url encoder (the oracle) ------------------------- */

static char *ref_b64(const void *data, size_t n)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const uint8_t *p = data;
	char *out = malloc(n / 3 * 4 + 5);
	assert_non_null(out);
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
		out[o++] = A[v >> 6 & 63];
		out[o++] = A[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
		out[o++] = A[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static char *cat3(const char *a, const char *sep, const char *b)
{
	size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
	char *s = malloc(n);
	assert_non_null(s);
	snprintf(s, n, "%s%s%s", a, sep, b);
	return s;
}

/* ---- hand-made signatures with OpenSSL primitives ------------------------- */

static const EVP_MD *md_for(const char *alg)
{
	if (strstr(alg, "256"))
		return EVP_sha256();
	if (strstr(alg, "384"))
		return EVP_sha384();
	if (strstr(alg, "512"))
		return EVP_sha512();
	return NULL; /* EdDSA */
}

/* Signs `input` for JWS algorithm `alg` with `key`; *ret_len bytes. */
static uint8_t *sign_raw(const char *alg, EVP_PKEY *key, const char *input, size_t *ret_len)
{
	if (strncmp(alg, "HS", 2) == 0) {
		/* RFC 8725 §2.1 key confusion: the "secret" is the public key PEM. */
		BIO *b = BIO_new(BIO_s_mem());
		assert_int_equal(PEM_write_bio_PUBKEY(b, key), 1);
		char *pem = NULL;
		long pem_len = BIO_get_mem_data(b, &pem);
		uint8_t *mac = malloc(EVP_MAX_MD_SIZE);
		unsigned int mac_len = 0;
		assert_non_null(HMAC(md_for(alg), pem, (int)pem_len, (const unsigned char *)input,
				     strlen(input), mac, &mac_len));
		BIO_free(b);
		*ret_len = mac_len;
		return mac;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	assert_int_equal(EVP_DigestSignInit(md, &pctx, md_for(alg), NULL, key), 1);
	if (alg[0] == 'P') {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	}
	size_t len = 0;
	assert_int_equal(EVP_DigestSign(md, NULL, &len, (const unsigned char *)input, strlen(input)), 1);
	uint8_t *sig = malloc(len);
	assert_int_equal(EVP_DigestSign(md, sig, &len, (const unsigned char *)input, strlen(input)), 1);
	EVP_MD_CTX_free(md);
	if (alg[0] == 'E' && alg[1] == 'S') {
		/* DER → R‖S, written here independently of core/jws.c. */
		size_t coord = strstr(alg, "256") ? 32 : strstr(alg, "384") ? 48 : 66;
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
		assert_non_null(es);
		uint8_t *raw = calloc(1, 2 * coord);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)coord), (int)coord);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + coord, (int)coord), (int)coord);
		ECDSA_SIG_free(es);
		free(sig);
		*ret_len = 2 * coord;
		return raw;
	}
	*ret_len = len;
	return sig;
}

/* header.payload.signature with the given raw signature bytes. */
static char *tok_sig(const char *hdr, const char *claims, const uint8_t *sig, size_t sig_len)
{
	char *h = ref_b64(hdr, strlen(hdr));
	char *c = ref_b64(claims, strlen(claims));
	char *s = ref_b64(sig, sig_len);
	char *hc = cat3(h, ".", c);
	char *t = cat3(hc, ".", s);
	free(h);
	free(c);
	free(s);
	free(hc);
	return t;
}

/* A token signed by hand: `alg` picks the algorithm, `key` the key. */
static char *tok(const char *hdr, const char *claims, const char *alg, EVP_PKEY *key)
{
	char *h = ref_b64(hdr, strlen(hdr));
	char *c = ref_b64(claims, strlen(claims));
	char *input = cat3(h, ".", c);
	size_t sig_len = 0;
	uint8_t *sig = sign_raw(alg, key, input, &sig_len);
	char *s = ref_b64(sig, sig_len);
	char *t = cat3(input, ".", s);
	free(h);
	free(c);
	free(input);
	free(sig);
	free(s);
	return t;
}

/* The usual claims, with `extra` members appended (",\"nbf\":1" ...). */
static char *claims_with(const char *sub_json, const char *aud_json, const char *extra)
{
	size_t n = strlen(sub_json) + strlen(aud_json) + (extra ? strlen(extra) : 0) + 128;
	char *buf = malloc(n);
	assert_non_null(buf);
	snprintf(buf, n, "{\"sub\":%s,\"aud\":%s,\"exp\":%lld,\"iat\":%lld%s}", sub_json, aud_json,
		 (long long)NOW + 300, (long long)NOW, extra ? extra : "");
	return buf;
}

static char *good_claims(void)
{
	return claims_with("\"" SUB "\"", "\"" AUD "\"", NULL);
}

#define HDR_ES256 "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JWT\"}"

static int verify_default(const char *t)
{
	json_t *h = NULL, *c = NULL;
	int r = wi_jws_verify(t, strlen(t), g_set, NULL, &h, &c);
	if (r == 0) {
		assert_true(json_is_object(h));
		assert_true(json_is_object(c));
	} else {
		assert_null(h);
		assert_null(c);
	}
	json_decref(h);
	json_decref(c);
	return r;
}

static int validate_aud(const char *t, const char *aud)
{
	char *id = (char *)0x1;
	json_t *claims = (json_t *)0x1;
	int r = wi_jwt_svid_validate(t, strlen(t), g_set, TD, aud, NOW, &id, &claims);
	if (r == 0) {
		assert_true(json_is_object(claims));
		free(id);
		json_decref(claims);
	} else {
		/* ret_* are written only on success. */
		assert_ptr_equal(id, (char *)0x1);
		assert_ptr_equal(claims, (json_t *)0x1);
	}
	return r;
}

static int validate(const char *t)
{
	return validate_aud(t, AUD);
}

static void expect_detail(const char *needle)
{
	if (!strstr(wi_error_detail(), needle))
		fail_msg("detail \"%s\" does not contain \"%s\"", wi_error_detail(), needle);
}

/* Hand-signs hdr/claims with `alg`/`key` and expects `code` + reason from the
 * JWT-SVID validator. */
static void expect_reject(const char *hdr, const char *claims, const char *alg, EVP_PKEY *key,
			  int code, const char *reason)
{
	char *t = tok(hdr, claims, alg, key);
	int r = validate(t);
	if (r != code)
		fail_msg("want %d got %d (%s) for %s / %s", code, r, wi_error_detail(), hdr, claims);
	expect_detail(reason);
	free(t);
}

/* ==== base64url ============================================================ */

static void test_b64url_rfc4648_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10, with padding removed (RFC 7515 §2). */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char *e = NULL;
		size_t elen = 99;
		assert_int_equal(wi_b64url_encode((const uint8_t *)plain[i], strlen(plain[i]), &e, &elen), 0);
		assert_string_equal(e, enc[i]);
		assert_int_equal(elen, strlen(enc[i]));
		free(e);
		uint8_t *d = NULL;
		size_t dlen = 99;
		assert_int_equal(wi_b64url_decode(enc[i], strlen(enc[i]), 64, &d, &dlen), 0);
		assert_int_equal(dlen, strlen(plain[i]));
		assert_memory_equal(d, plain[i], dlen);
		assert_int_equal(d[dlen], 0); /* the spare NUL */
		free(d);
	}
	/* The URL-safe characters: 0xfb 0xff is "+/8=" in base64. */
	const uint8_t u[] = {0xfb, 0xff};
	char *e = NULL;
	size_t elen = 0;
	assert_int_equal(wi_b64url_encode(u, 2, &e, &elen), 0);
	assert_string_equal(e, "-_8");
	free(e);
	uint8_t *d = NULL;
	size_t dlen = 0;
	assert_int_equal(wi_b64url_decode("-_8", 3, 2, &d, &dlen), 0);
	assert_int_equal(dlen, 2);
	assert_memory_equal(d, u, 2);
	free(d);
}

static void test_b64url_round_trip_vs_reference(void **state)
{
	(void)state;
	uint8_t buf[300];
	assert_int_equal(RAND_bytes(buf, sizeof(buf)), 1);
	for (size_t n = 0; n <= sizeof(buf); n++) {
		char *e = NULL;
		size_t elen = 0;
		assert_int_equal(wi_b64url_encode(buf, n, &e, &elen), 0);
		char *ref = ref_b64(buf, n);
		assert_string_equal(e, ref);
		uint8_t *d = NULL;
		size_t dlen = 0;
		assert_int_equal(wi_b64url_decode(e, elen, n, &d, &dlen), 0);
		assert_int_equal(dlen, n);
		assert_memory_equal(d, buf, n);
		free(d);
		free(e);
		free(ref);
	}
}

static void test_b64url_strict_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"Zg==",     /* padding */
		"Zm8=",     /* padding */
		"Zm9v\n",   /* whitespace */
		"Zm 9v",    /* whitespace */
		" Zm9v",    /* leading whitespace */
		"Zm+v",     /* standard alphabet */
		"Zm/v",     /* standard alphabet */
		"Z",        /* len % 4 == 1 */
		"Zm9vY",    /* len % 4 == 1 */
		"Zh",       /* non-zero trailing bits (1 byte) */
		"Zm9",      /* non-zero trailing bits (2 bytes) */
		"Zm9v!A",   /* other characters */
		"Zm9v.A",   /* a dot */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *d = (uint8_t *)0x1;
		size_t dlen = 77;
		int r = wi_b64url_decode(bad[i], strlen(bad[i]), 64, &d, &dlen);
		if (r != WI_E_PARSE)
			fail_msg("\"%s\" gave %d", bad[i], r);
		assert_ptr_equal(d, (uint8_t *)0x1);
		assert_int_equal(dlen, 77);
	}
	/* An embedded NUL is just another invalid character. */
	uint8_t *d = NULL;
	size_t dlen = 0;
	assert_int_equal(wi_b64url_decode("Zm\0v", 4, 64, &d, &dlen), WI_E_PARSE);
	/* The size cap is checked before decoding. */
	assert_int_equal(wi_b64url_decode("Zm9vYmFy", 8, 5, &d, &dlen), WI_E_TOO_BIG);
	assert_int_equal(wi_b64url_decode("Zm9vYmFy", 8, 6, &d, &dlen), 0);
	assert_int_equal(dlen, 6);
	free(d);
	/* Empty input decodes to an empty, NUL-terminated buffer. */
	assert_int_equal(wi_b64url_decode("", 0, 0, &d, &dlen), 0);
	assert_int_equal(dlen, 0);
	assert_int_equal(d[0], 0);
	free(d);
}

/* ==== JWK =================================================================== */

static json_t *jwk_of(EVP_PKEY *key, const char *kid)
{
	json_t *j = NULL;
	assert_int_equal(wi_jwk_from_pkey(key, kid, &j), 0);
	return j;
}

static void assert_round_trip(EVP_PKEY *key)
{
	json_t *j = jwk_of(key, "k1");
	EVP_PKEY *back = NULL;
	assert_int_equal(wi_jwk_to_pkey(j, &back), 0);
	assert_int_equal(EVP_PKEY_eq(back, key), 1);
	/* Never a private member, even from a private key. */
	assert_null(json_object_get(j, "d"));
	assert_null(json_object_get(j, "p"));
	assert_null(json_object_get(j, "use"));
	EVP_PKEY_free(back);
	json_decref(j);
}

static void test_jwk_round_trips(void **state)
{
	(void)state;
	assert_round_trip(k_ec);
	assert_round_trip(k_p384);
	assert_round_trip(k_p521);
	assert_round_trip(k_rsa);
	assert_round_trip(k_ed);

	/* Member order as SPIRE's FetchJWTBundles output; fixed-width coordinates
	 * (RFC 7518 §6.2.1.2). */
	json_t *j = jwk_of(k_ec, "k1");
	char *s = json_dumps(j, JSON_COMPACT);
	const char *prefix = "{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"P-256\",\"x\":\"";
	assert_int_equal(strncmp(s, prefix, strlen(prefix)), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "x"))), 43);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "y"))), 43);
	free(s);
	json_decref(j);
	j = jwk_of(k_p521, "k1");
	assert_string_equal(json_string_value(json_object_get(j, "crv")), "P-521");
	assert_int_equal(strlen(json_string_value(json_object_get(j, "x"))), 88); /* 66 bytes */
	json_decref(j);
	j = jwk_of(k_rsa, "k1");
	assert_string_equal(json_string_value(json_object_get(j, "kty")), "RSA");
	assert_string_equal(json_string_value(json_object_get(j, "e")), "AQAB");
	assert_int_equal(strlen(json_string_value(json_object_get(j, "n"))), 342); /* 256 bytes */
	json_decref(j);
	j = jwk_of(k_ed, "k1");
	assert_string_equal(json_string_value(json_object_get(j, "kty")), "OKP");
	assert_string_equal(json_string_value(json_object_get(j, "crv")), "Ed25519");
	json_decref(j);

	/* A non-minimal n (leading zero octet, as some issuers publish) is read
	 * as the same key; we only ever emit the minimal form. */
	j = jwk_of(k_rsa, "k1");
	const char *n64 = json_string_value(json_object_get(j, "n"));
	uint8_t *n = NULL;
	size_t nlen = 0;
	assert_int_equal(wi_b64url_decode(n64, strlen(n64), 1024, &n, &nlen), 0);
	uint8_t padded[257] = {0};
	memcpy(padded + 1, n, nlen);
	char *p64 = ref_b64(padded, nlen + 1);
	json_object_set_new(j, "n", json_string(p64));
	EVP_PKEY *back = NULL;
	assert_int_equal(wi_jwk_to_pkey(j, &back), 0);
	assert_int_equal(EVP_PKEY_eq(back, k_rsa), 1);
	EVP_PKEY_free(back);
	free(p64);
	free(n);
	json_decref(j);

	/* No kid, or an unsupported key: refused. */
	assert_int_equal(wi_jwk_from_pkey(k_ec, "", &j), WI_E_INVAL);
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_int_equal(wi_jwk_from_pkey(weak, "w", &j), WI_E_UNIMPLEMENTED);
	EVP_PKEY_free(weak);
}

static void test_jwk_thumbprint_rfc7638(void **state)
{
	(void)state;
	/* RFC 7638 §3.1: the example RSA key (extra members are ignored). */
	const char *doc =
		"{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAt"
		"VT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArw"
		"l93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQv"
		"RL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw"
		"0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";
	json_t *j = json_loads(doc, 0, NULL);
	assert_non_null(j);
	EVP_PKEY *key = NULL;
	assert_int_equal(wi_jwk_to_pkey(j, &key), 0);
	char *kid = NULL;
	assert_int_equal(wi_jwk_thumbprint(key, &kid), 0);
	assert_string_equal(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(kid);
	/* And the JWK we emit for it has the same n and e. */
	json_t *out = jwk_of(key, "2011-04-29");
	assert_true(json_equal(json_object_get(out, "n"), json_object_get(j, "n")));
	assert_true(json_equal(json_object_get(out, "e"), json_object_get(j, "e")));
	json_decref(out);
	EVP_PKEY_free(key);
	json_decref(j);

	/* EC: computed by hand from the required members in lexicographic order. */
	json_t *ec = jwk_of(k_ec, "x");
	char text[256];
	snprintf(text, sizeof(text), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 json_string_value(json_object_get(ec, "x")), json_string_value(json_object_get(ec, "y")));
	uint8_t md[32];
	unsigned int mdlen = 0;
	assert_int_equal(EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL), 1);
	char *want = ref_b64(md, mdlen);
	assert_int_equal(wi_jwk_thumbprint(k_ec, &kid), 0);
	assert_string_equal(kid, want);
	free(kid);
	free(want);
	json_decref(ec);
	/* Private and public halves give the same kid. */
	char *a = NULL, *b = NULL;
	wi_signer *s = signer_for(k_other);
	assert_int_equal(wi_jwk_thumbprint(k_other, &a), 0);
	assert_int_equal(wi_jwk_thumbprint(wi_signer_public_key(s), &b), 0);
	assert_string_equal(a, b);
	free(a);
	free(b);
	wi_signer_free(s);
}

/* A JWK of `key` with member `name` replaced by `value` (NULL: removed). */
static json_t *jwk_with(EVP_PKEY *key, const char *name, json_t *value)
{
	json_t *j = jwk_of(key, "k");
	if (value)
		json_object_set_new(j, name, value);
	else
		json_object_del(j, name);
	return j;
}

static void expect_jwk(json_t *j, int code)
{
	EVP_PKEY *k = (EVP_PKEY *)0x1;
	int r = wi_jwk_to_pkey(j, &k);
	if (r != code)
		fail_msg("want %d got %d (%s)", code, r, wi_error_detail());
	if (code < 0)
		assert_ptr_equal(k, (EVP_PKEY *)0x1);
	else
		EVP_PKEY_free(k);
	json_decref(j);
}

/* base64url of `n` bytes of `fill`. */
static json_t *b64_fill(size_t n, uint8_t fill)
{
	uint8_t buf[2048];
	memset(buf, fill, n);
	char *s = ref_b64(buf, n);
	json_t *j = json_string(s);
	free(s);
	return j;
}

static void test_jwk_rejects(void **state)
{
	(void)state;
	/* A point off the curve (y changed). */
	json_t *j = jwk_of(k_ec, "k");
	uint8_t *y = NULL;
	size_t ylen = 0;
	const char *ys = json_string_value(json_object_get(j, "y"));
	assert_int_equal(wi_b64url_decode(ys, strlen(ys), 32, &y, &ylen), 0);
	y[31] ^= 1;
	char *y2 = ref_b64(y, ylen);
	json_object_set_new(j, "y", json_string(y2));
	free(y2);
	free(y);
	expect_jwk(j, WI_E_PARSE);
	/* Coordinates of the wrong width; missing; not strings; not base64url. */
	expect_jwk(jwk_with(k_ec, "x", b64_fill(31, 1)), WI_E_PARSE);
	expect_jwk(jwk_with(k_ec, "x", b64_fill(33, 1)), WI_E_PARSE);
	expect_jwk(jwk_with(k_ec, "y", NULL), WI_E_PARSE);
	expect_jwk(jwk_with(k_ec, "x", json_integer(5)), WI_E_PARSE);
	expect_jwk(jwk_with(k_ec, "x", json_string("AAAA=")), WI_E_PARSE);
	/* The point at infinity / all zero. */
	json_t *z = jwk_with(k_ec, "x", b64_fill(32, 0));
	json_object_set_new(z, "y", b64_fill(32, 0));
	expect_jwk(z, WI_E_PARSE);
	/* Unsupported curves and types. */
	expect_jwk(jwk_with(k_ec, "crv", json_string("secp256k1")), WI_E_UNIMPLEMENTED);
	expect_jwk(jwk_with(k_ec, "kty", json_string("XX")), WI_E_UNIMPLEMENTED);
	expect_jwk(jwk_with(k_ed, "crv", json_string("X25519")), WI_E_UNIMPLEMENTED);
	expect_jwk(jwk_with(k_ec, "kty", NULL), WI_E_PARSE);
	expect_jwk(jwk_with(k_ec, "kty", json_integer(1)), WI_E_PARSE);
	/* Private members. */
	expect_jwk(jwk_with(k_ec, "d", json_string("AAAA")), WI_E_INVAL);
	expect_jwk(jwk_with(k_rsa, "p", json_string("AAAA")), WI_E_INVAL);
	expect_jwk(jwk_with(k_rsa, "k", json_string("AAAA")), WI_E_INVAL);
	/* RSA: e even, e = 1, n even, too small, e too large. */
	expect_jwk(jwk_with(k_rsa, "e", json_string("AQAA")), WI_E_PARSE);
	expect_jwk(jwk_with(k_rsa, "e", json_string("AQ")), WI_E_PARSE);
	expect_jwk(jwk_with(k_rsa, "e", json_string("AQAAAAE")), WI_E_PARSE); /* 5 bytes */
	expect_jwk(jwk_with(k_rsa, "n", b64_fill(256, 0xf0)), WI_E_PARSE);
	expect_jwk(jwk_with(k_rsa, "n", b64_fill(128, 0xf1)), WI_E_UNIMPLEMENTED);
	expect_jwk(jwk_with(k_rsa, "n", b64_fill(WI_RSA_BITS_MAX / 8 + 1, 0xf1)), WI_E_UNIMPLEMENTED);
	expect_jwk(jwk_with(k_rsa, "n", b64_fill(WI_RSA_BITS_MAX / 8 + 2, 0xf1)), WI_E_PARSE);
	/* Ed25519 of the wrong size. */
	expect_jwk(jwk_with(k_ed, "x", b64_fill(31, 1)), WI_E_PARSE);
	/* Not an object. */
	json_t *arr = json_array();
	expect_jwk(arr, WI_E_PARSE);
}

/* ==== JWKS =================================================================== */

static void test_jwks_add_find_serialise(void **state)
{
	(void)state;
	assert_int_equal(wi_jwks_count(g_set), 5);
	assert_ptr_equal(wi_jwks_find(g_set, "ec"), k_ec);
	assert_null(wi_jwks_find(g_set, "nope"));
	assert_null(wi_jwks_find(NULL, "ec"));
	assert_int_equal(wi_jwks_add(g_set, "ec", k_other), WI_E_EXISTS);
	assert_int_equal(wi_jwks_count(g_set), 5);

	char *json = NULL;
	assert_int_equal(wi_jwks_to_json(g_set, &json), 0);
	const char *prefix = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\",";
	assert_int_equal(strncmp(json, prefix, strlen(prefix)), 0);
	assert_null(strstr(json, "\"use\""));
	assert_null(strstr(json, "\"d\""));
	assert_null(strchr(json, ' '));
	wi_jwks *back = NULL;
	assert_int_equal(wi_jwks_parse(json, strlen(json), 0, &back), 0);
	assert_int_equal(wi_jwks_count(back), 5);
	const char *kids[] = {"ec", "rsa", "p384", "p521", "ed"};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(EVP_PKEY_eq(wi_jwks_find(back, kids[i]), wi_jwks_find(g_set, kids[i])), 1);
	/* Reference counting. */
	assert_ptr_equal(wi_jwks_ref(back), back);
	assert_null(wi_jwks_unref(back));
	assert_int_equal(wi_jwks_count(back), 5);
	assert_null(wi_jwks_unref(back));
	assert_null(wi_jwks_unref(NULL));
	free(json);

	/* Unsupported keys cannot be added. */
	wi_jwks *s = NULL;
	assert_int_equal(wi_jwks_new(&s), 0);
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_int_equal(wi_jwks_add(s, "w", weak), WI_E_UNIMPLEMENTED);
	assert_int_equal(wi_jwks_add(s, "", k_ec), WI_E_INVAL);
	EVP_PKEY_free(weak);
	char *empty = NULL;
	assert_int_equal(wi_jwks_to_json(s, &empty), 0);
	assert_string_equal(empty, "{\"keys\":[]}");
	free(empty);
	wi_jwks_unref(s);
}

static char *jwk_text(EVP_PKEY *key, const char *kid, const char *use)
{
	json_t *j = jwk_of(key, kid);
	if (use)
		json_object_set_new(j, "use", json_string(use));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static void test_jwks_parse_mixed(void **state)
{
	(void)state;
	char *ec = jwk_text(k_ec, "a", "jwt-svid");
	char *rsa = jwk_text(k_rsa, "b", "sig");
	char *ed = jwk_text(k_ed, "c", NULL);
	char *nokid = jwk_text(k_p384, "x", NULL);
	char *enc = jwk_text(k_p384, "d", "enc");
	char *x509 = jwk_text(k_p384, "e", "x509-svid");
	/* A 1024-bit RSA key (skipped as unsupported), written by hand. */
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	BIGNUM *n = NULL;
	assert_int_equal(EVP_PKEY_get_bn_param(weak, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	uint8_t nb[128];
	assert_int_equal(BN_bn2binpad(n, nb, 128), 128);
	char *n64 = ref_b64(nb, 128);
	char weak_jwk[512];
	snprintf(weak_jwk, sizeof(weak_jwk), "{\"kty\":\"RSA\",\"kid\":\"w\",\"n\":\"%s\",\"e\":\"AQAB\"}",
		 n64);
	BN_free(n);
	EVP_PKEY_free(weak);
	free(n64);
	/* Remove the kid of one key. */
	json_t *nk = json_loads(nokid, 0, NULL);
	json_object_del(nk, "kid");
	free(nokid);
	nokid = json_dumps(nk, JSON_COMPACT);
	json_decref(nk);

	char doc[8192];
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[%s,%s,%s,%s,%s,%s,%s,"
		 "{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"},"
		 "{\"kty\":\"OKP\",\"kid\":\"x25519\",\"crv\":\"X25519\",\"x\":\"AA\"},"
		 "{\"kty\":\"future\",\"kid\":\"f\"},{\"kty\":\"EC\",\"kid\":\"\"}],"
		 "\"spiffe_sequence\":7,\"spiffe_refresh_hint\":300}",
		 ec, rsa, ed, nokid, enc, x509, weak_jwk);
	wi_jwks *s = NULL;
	int r = wi_jwks_parse(doc, strlen(doc), 0, &s);
	if (r != 0)
		fail_msg("%s", wi_error_detail());
	assert_int_equal(wi_jwks_count(s), 3);
	assert_int_equal(EVP_PKEY_eq(wi_jwks_find(s, "a"), k_ec), 1);
	assert_int_equal(EVP_PKEY_eq(wi_jwks_find(s, "b"), k_rsa), 1);
	assert_int_equal(EVP_PKEY_eq(wi_jwks_find(s, "c"), k_ed), 1);
	assert_null(wi_jwks_find(s, "d"));
	assert_null(wi_jwks_find(s, "e"));
	assert_null(wi_jwks_find(s, "w"));
	wi_jwks_unref(s);

	/* An empty set is valid (SPIFFE bundle: all keys revoked). */
	assert_int_equal(wi_jwks_parse("{\"keys\":[]}", 11, 0, &s), 0);
	assert_int_equal(wi_jwks_count(s), 0);
	wi_jwks_unref(s);

	/* Duplicate kid among accepted keys: ambiguous, refused. */
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", ec, ec);
	s = (wi_jwks *)0x1;
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), WI_E_PARSE);
	expect_detail("duplicate kid");
	assert_ptr_equal(s, (wi_jwks *)0x1);
	/* A malformed key of a supported type is ignored (RFC 7517 §5): the
	 * good key stays usable, the bad kid is not. */
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,{\"kty\":\"EC\",\"kid\":\"z\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}", ec);
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), 0);
	assert_int_equal(wi_jwks_count(s), 1);
	assert_null(wi_jwks_find(s, "z"));
	wi_jwks_unref(s);
	/* A private key in a public set. */
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}");
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), WI_E_PARSE);
	free(ec);
	free(rsa);
	free(ed);
	free(nokid);
	free(enc);
	free(x509);
}

/* An EC JWK whose x coordinate lost its leading zero byte (as PyJWT 2.6
 * writes about one key in 128) still parses, to the same key. */
static void test_jwk_short_ec_coordinate(void **state)
{
	(void)state;
	for (int tries = 0; tries < 20000; tries++) {
		EVP_PKEY *k = NULL;
		assert_int_equal(wi_key_generate_p256(&k), 0);
		json_t *jwk = NULL;
		assert_int_equal(wi_jwk_from_pkey(k, "kid", &jwk), 0);
		const char *x = json_string_value(json_object_get(jwk, "x"));
		uint8_t *raw = NULL;
		size_t len = 0;
		assert_int_equal(wi_b64url_decode(x, strlen(x), 64, &raw, &len), 0);
		assert_int_equal(len, 32);
		if (raw[0] != 0) {
			free(raw);
			json_decref(jwk);
			EVP_PKEY_free(k);
			continue;
		}
		char *shortx = NULL;
		size_t sl;
		assert_int_equal(wi_b64url_encode(raw + 1, 31, &shortx, &sl), 0);
		json_object_set_new(jwk, "x", json_string(shortx));
		EVP_PKEY *back = NULL;
		assert_int_equal(wi_jwk_to_pkey(jwk, &back), 0);
		assert_int_equal(EVP_PKEY_eq(k, back), 1);
		EVP_PKEY_free(back);
		/* one byte too long is still refused */
		uint8_t longer[33] = {0};
		memcpy(longer + 1, raw, 32);
		char *longx = NULL;
		assert_int_equal(wi_b64url_encode(longer, 33, &longx, &sl), 0);
		json_object_set_new(jwk, "x", json_string(longx));
		assert_int_not_equal(wi_jwk_to_pkey(jwk, &back), 0);
		free(longx);
		free(shortx);
		free(raw);
		json_decref(jwk);
		EVP_PKEY_free(k);
		return;
	}
	fail_msg("no key with a leading zero in x after 20000 tries");
}

static void test_jwks_parse_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{\"keys\":{}}",
		"{}",
		"{\"keys\":[1]}",
		"{\"keys\":[{\"kty\":\"EC\",\"kid\":7}]}",
		"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"a\",\"use\":1}]}",
		"{\"keys\":[],\"keys\":[]}",
		"{\"keys\":[]} x",
		"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"a\",\"kid\":\"b\"}]}",
		"{\"keys\":[\"\\u0000\"]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wi_jwks *s = (wi_jwks *)0x1;
		int r = wi_jwks_parse(bad[i], strlen(bad[i]), 0, &s);
		if (r != WI_E_PARSE)
			fail_msg("%s: got %d", bad[i], r);
		assert_ptr_equal(s, (wi_jwks *)0x1);
	}
	wi_jwks *s = NULL;
	/* Oversize: the caller's cap, and the default one. */
	const char *small = "{\"keys\":[],\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
	assert_int_equal(wi_jwks_parse(small, strlen(small), 20, &s), WI_E_TOO_BIG);
	size_t big_len = WI_JWKS_DOC_MAX + 1;
	char *big = malloc(big_len + 1);
	memset(big, ' ', big_len);
	memcpy(big, "{\"keys\":[]}", 11);
	big[big_len] = '\0';
	assert_int_equal(wi_jwks_parse(big, big_len, 0, &s), WI_E_TOO_BIG);
	assert_int_equal(wi_jwks_parse(big, big_len, big_len, &s), 0); /* whitespace is fine */
	wi_jwks_unref(s);
	free(big);
	/* Too many keys (the limit counts every element, even skipped ones). */
	char doc[4096];
	size_t o = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[");
	for (int i = 0; i < WI_JWKS_KEYS_MAX + 1; i++)
		o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%s{\"kty\":\"x\"}", i ? "," : "");
	snprintf(doc + o, sizeof(doc) - o, "]}");
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), WI_E_TOO_BIG);
	/* Exactly the limit is fine. */
	o = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[");
	for (int i = 0; i < WI_JWKS_KEYS_MAX; i++)
		o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%s{\"kty\":\"x\"}", i ? "," : "");
	snprintf(doc + o, sizeof(doc) - o, "]}");
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), 0);
	assert_int_equal(wi_jwks_count(s), 0);
	wi_jwks_unref(s);
	/* Deep nesting. */
	o = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[],\"x\":");
	for (int i = 0; i < WI_JSON_DEPTH_MAX; i++)
		doc[o++] = '[';
	for (int i = 0; i < WI_JSON_DEPTH_MAX; i++)
		doc[o++] = ']';
	snprintf(doc + o, sizeof(doc) - o, "}");
	assert_int_equal(wi_jwks_parse(doc, strlen(doc), 0, &s), WI_E_TOO_BIG);
}

/* ==== JWS sign / verify ======================================================= */

static void test_jws_sign_verify_es256(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	json_t *claims = json_pack("{s:s, s:s, s:I}", "sub", SUB, "aud", AUD, "exp", (json_int_t)NOW + 60);
	char *t = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t), 0);

	json_t *h = NULL, *c = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, NULL, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "ec");
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_int_equal(json_object_size(h), 3);
	assert_true(json_equal(c, claims));
	json_decref(h);
	json_decref(c);

	/* The header bytes are fixed; the signature is raw R‖S of 64 bytes. */
	const char *d1 = strchr(t, '.');
	const char *d2 = strchr(d1 + 1, '.');
	uint8_t *hb = NULL, *sig = NULL;
	size_t hlen = 0, slen = 0;
	assert_int_equal(wi_b64url_decode(t, (size_t)(d1 - t), 256, &hb, &hlen), 0);
	assert_string_equal((char *)hb, "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JWT\"}");
	assert_int_equal(wi_b64url_decode(d2 + 1, strlen(d2 + 1), 256, &sig, &slen), 0);
	assert_int_equal(slen, 64);

	/* Verified independently: R‖S → DER, EVP_DigestVerify over the input. */
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int der_len = i2d_ECDSA_SIG(es, &der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k_ec), 1);
	assert_int_equal(EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)t,
					  (size_t)(d2 - t)),
			 1);
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);

	/* Same input, same first two parts. */
	char *t2 = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t2), 0);
	assert_int_equal(strncmp(t, t2, (size_t)(d2 - t) + 1), 0);
	/* No typ: omitted. */
	char *t3 = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", NULL, claims, &t3), 0);
	assert_int_equal(wi_jws_verify(t3, strlen(t3), g_set, NULL, &h, &c), 0);
	assert_null(json_object_get(h, "typ"));
	json_decref(h);
	json_decref(c);
	/* Refused arguments. */
	char *none = (char *)0x1;
	json_t *arr = json_array();
	assert_int_equal(wi_jws_sign(s, "ec", NULL, arr, &none), WI_E_INVAL);
	assert_int_equal(wi_jws_sign(s, "", NULL, claims, &none), WI_E_INVAL);
	assert_ptr_equal(none, (char *)0x1);
	json_decref(arr);

	free(hb);
	free(sig);
	free(t);
	free(t2);
	free(t3);
	json_decref(claims);
	wi_signer_free(s);
}

/* The decoded protected header of a compact JWS (caller frees). */
static char *header_of(const char *t)
{
	const char *d1 = strchr(t, '.');
	assert_non_null(d1);
	uint8_t *hb = NULL;
	size_t hlen = 0;
	assert_int_equal(wi_b64url_decode(t, (size_t)(d1 - t), 1024, &hb, &hlen), 0);
	return (char *)hb;
}

/* Each thread remembers the header of its last (alg, kid, typ): every change
 * of kid or typ, and kids too long to remember, must still give exactly the
 * header asked for. */
static void test_jws_sign_header_per_kid_and_typ(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	json_t *claims = json_pack("{s:s}", "sub", SUB);
	char long_kid[201];
	memset(long_kid, 'k', 200);
	long_kid[200] = '\0';
	struct {
		const char *kid, *typ, *want;
	} seq[] = {
		{"ec", "JWT", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JWT\"}"},
		{"ec", "JWT", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JWT\"}"},
		{"ec", NULL, "{\"alg\":\"ES256\",\"kid\":\"ec\"}"},
		{"ec", "", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"\"}"},
		{"ec", "txn_token", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"txn_token\"}"},
		{"ec2", "txn_token", "{\"alg\":\"ES256\",\"kid\":\"ec2\",\"typ\":\"txn_token\"}"},
		{"e\"c", NULL, "{\"alg\":\"ES256\",\"kid\":\"e\\\"c\"}"},
		{"ec", "JWT", "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JWT\"}"},
	};
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		char *t = NULL;
		assert_int_equal(wi_jws_sign(s, seq[i].kid, seq[i].typ, claims, &t), 0);
		char *h = header_of(t);
		if (strcmp(h, seq[i].want) != 0)
			fail_msg("step %zu: header %s, want %s", i, h, seq[i].want);
		free(h);
		free(t);
	}
	/* Too long to remember: built every time, still exact. */
	for (int i = 0; i < 2; i++) {
		char *t = NULL;
		assert_int_equal(wi_jws_sign(s, long_kid, "JWT", claims, &t), 0);
		char *h = header_of(t);
		json_t *hj = json_loads(h, 0, NULL);
		assert_non_null(hj);
		assert_string_equal(json_string_value(json_object_get(hj, "kid")), long_kid);
		json_decref(hj);
		free(h);
		free(t);
	}
	/* A kid that is not UTF-8 is refused even right after a good one. */
	char *t = NULL, *none = (char *)0x1;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t), 0);
	assert_int_equal(wi_jws_sign(s, "ec\xff", "JWT", claims, &none), WI_E_INVAL);
	assert_int_equal(wi_jws_sign(s, "ec", "JWT\xff", claims, &none), WI_E_INVAL);
	assert_ptr_equal(none, (char *)0x1);
	free(t);
	json_decref(claims);
	wi_signer_free(s);
}

/* Claims larger than the on-stack serialisation buffer take the heap path;
 * claims past WI_JWT_MAX_LEN are refused. */
static void test_jws_sign_large_claims(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	char *big = malloc(9001);
	memset(big, 'x', 9000);
	big[9000] = '\0';
	json_t *claims = json_pack("{s:s, s:s}", "sub", SUB, "pad", big);
	char *t = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t), 0);
	json_t *h = NULL, *c = NULL;
	wi_jws_verify_opts o = {.max_token_len = 32 * 1024};
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &o, &h, &c), 0);
	assert_true(json_equal(c, claims));
	json_decref(h);
	json_decref(c);
	free(t);
	json_decref(claims);
	char *huge = malloc(WI_JWT_MAX_LEN + 2);
	memset(huge, 'y', WI_JWT_MAX_LEN + 1);
	huge[WI_JWT_MAX_LEN + 1] = '\0';
	claims = json_pack("{s:s}", "pad", huge);
	char *none = (char *)0x1;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &none), WI_E_TOO_BIG);
	assert_ptr_equal(none, (char *)0x1);
	json_decref(claims);
	free(huge);
	free(big);
	wi_signer_free(s);
}

static void test_b64url_encode_into_bounds(void **state)
{
	(void)state;
	char out[16];
	size_t n = 99;
	/* "foobar" needs 8 + NUL: 9 bytes. */
	assert_int_equal(WI_B64URL_ENCODE_CAP(6), 9);
	assert_int_equal(wi_b64url_encode_into((const uint8_t *)"foobar", 6, out, 9, &n), 0);
	assert_string_equal(out, "Zm9vYmFy");
	assert_int_equal(n, 8);
	memset(out, '#', sizeof(out));
	n = 99;
	assert_int_equal(wi_b64url_encode_into((const uint8_t *)"foobar", 6, out, 8, &n), WI_E_TOO_BIG);
	assert_int_equal(n, 99);
	assert_int_equal(out[0], '#');
	/* "fooba" pads to 8 characters, so needs 9 bytes even though the
	 * result is 7. */
	assert_int_equal(wi_b64url_encode_into((const uint8_t *)"fooba", 5, out, 8, &n), WI_E_TOO_BIG);
	assert_int_equal(wi_b64url_encode_into((const uint8_t *)"fooba", 5, out, 9, &n), 0);
	assert_string_equal(out, "Zm9vYmE");
	assert_int_equal(wi_b64url_encode_into(NULL, 0, out, 1, &n), 0);
	assert_string_equal(out, "");
	assert_int_equal(n, 0);
}

typedef struct picker {
	int calls;
	int fail;	  /* error to return, 0 for none */
	unsigned algs;	  /* returned allow-list */
	const wi_jwks *keys;
	char iss[64], kid[16];
} picker;

static int pick_for_test(void *ctx, const json_t *hdr, const json_t *claims, const wi_jwks **ret_keys,
			 unsigned *ret_algs)
{
	picker *p = ctx;
	p->calls++;
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	snprintf(p->iss, sizeof(p->iss), "%s", iss ? iss : "");
	snprintf(p->kid, sizeof(p->kid), "%s", kid ? kid : "");
	if (p->fail)
		return wi__error_set(p->fail, __FILE__, __LINE__, "picker says no");
	*ret_keys = p->keys;
	*ret_algs = p->algs;
	return 0;
}

/* The picker sees the parsed, unverified header and claims; what it returns
 * (keys, algorithms, error) decides, and the claims come back only verified. */
static void test_jws_verify_pick(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	json_t *claims = json_pack("{s:s, s:s}", "iss", "https://idp.example", "sub", SUB);
	char *t = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t), 0);
	json_t *h = NULL, *c = NULL;

	picker p = {.keys = g_set};
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), pick_for_test, &p, NULL, &h, &c), 0);
	assert_int_equal(p.calls, 1);
	assert_string_equal(p.iss, "https://idp.example");
	assert_string_equal(p.kid, "ec");
	assert_true(json_equal(c, claims));
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "ec");
	json_decref(h);
	json_decref(c);

	/* The picker's allow-list replaces the caller's. */
	h = c = (json_t *)0x1;
	picker rs_only = {.keys = g_set, .algs = WI_JWS_RS256};
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), pick_for_test, &rs_only, NULL, &h, &c), WI_E_INVAL);
	wi_jws_verify_opts es_only = {.allowed_algs = WI_JWS_ES256};
	picker rs_only2 = {.keys = g_set, .algs = WI_JWS_RS256};
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), pick_for_test, &rs_only2, &es_only, &h, &c), WI_E_INVAL);
	/* Its error is returned as it is. */
	picker no = {.keys = g_set, .fail = WI_E_UNAVAILABLE};
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), pick_for_test, &no, NULL, &h, &c), WI_E_UNAVAILABLE);
	expect_detail("picker says no");
	/* A key set without the kid. */
	wi_jwks *other = NULL;
	assert_int_equal(wi_jwks_new(&other), 0);
	assert_int_equal(wi_jwks_add(other, "rsa", k_rsa), 0);
	picker wrong = {.keys = other};
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), pick_for_test, &wrong, NULL, &h, &c), WI_E_INVAL);
	/* A tampered payload: parsed for the picker, never returned. */
	char *bad = strdup(t);
	char *d1 = strchr(bad, '.');
	d1[1] = d1[1] == 'e' ? 'f' : 'e';
	picker p2 = {.keys = g_set};
	int r = wi_jws_verify_pick(bad, strlen(bad), pick_for_test, &p2, NULL, &h, &c);
	assert_true(r == WI_E_CRYPTO || r == WI_E_PARSE);
	/* Not a JWS: the picker is never called. */
	picker p3 = {.keys = g_set};
	assert_int_equal(wi_jws_verify_pick("a.b", 3, pick_for_test, &p3, NULL, &h, &c), WI_E_PARSE);
	assert_int_equal(p3.calls, 0);
	assert_ptr_equal(h, (json_t *)0x1);
	assert_ptr_equal(c, (json_t *)0x1);
	assert_int_equal(wi_jws_verify_pick(t, strlen(t), NULL, &p3, NULL, &h, &c), WI_E_INVAL);

	free(bad);
	wi_jwks_unref(other);
	free(t);
	json_decref(claims);
	wi_signer_free(s);
}

static void test_jws_sign_verify_rs256(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_rsa);
	assert_int_equal(wi_signer_alg(s), WI_SIG_RSA_PKCS1_SHA256);
	json_t *claims = json_pack("{s:s, s:[s,s], s:I, s:{s:i}}", "sub", SUB, "aud", "a", "b", "exp",
				   (json_int_t)NOW + 60, "nested", "x", 1);
	char *t = NULL;
	assert_int_equal(wi_jws_sign(s, "rsa", "JWT", claims, &t), 0);
	json_t *h = NULL, *c = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, NULL, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "rsa");
	assert_true(json_equal(c, claims));
	json_decref(h);
	json_decref(c);

	/* Independently: PKCS#1 v1.5 over the signing input. */
	const char *d2 = strrchr(t, '.');
	uint8_t *sig = NULL;
	size_t slen = 0;
	assert_int_equal(wi_b64url_decode(d2 + 1, strlen(d2 + 1), 1024, &sig, &slen), 0);
	assert_int_equal(slen, 256);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k_rsa), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, slen, (const unsigned char *)t, (size_t)(d2 - t)), 1);
	EVP_MD_CTX_free(md);
	free(sig);

	/* Signed with kid "rsa" but the set maps it to another key type. */
	char *t2 = NULL;
	assert_int_equal(wi_jws_sign(s, "ec", "JWT", claims, &t2), 0);
	assert_int_equal(verify_default(t2), WI_E_INVAL);
	expect_detail("does not match alg RS256");
	free(t2);
	free(t);
	json_decref(claims);
	wi_signer_free(s);
}

static void test_jws_verify_hand_built(void **state)
{
	(void)state;
	char *c = good_claims();
	struct {
		const char *hdr, *alg;
		EVP_PKEY *key;
	} ok[] = {
		{HDR_ES256, "ES256", k_ec},
		{"{\"alg\":\"ES384\",\"kid\":\"p384\"}", "ES384", k_p384},
		{"{\"alg\":\"ES512\",\"kid\":\"p521\"}", "ES512", k_p521},
		{"{\"alg\":\"RS256\",\"kid\":\"rsa\"}", "RS256", k_rsa},
		{"{\"alg\":\"RS384\",\"kid\":\"rsa\"}", "RS384", k_rsa},
		{"{\"alg\":\"RS512\",\"kid\":\"rsa\"}", "RS512", k_rsa},
		{"{\"alg\":\"PS256\",\"kid\":\"rsa\"}", "PS256", k_rsa},
		{"{\"alg\":\"PS384\",\"kid\":\"rsa\"}", "PS384", k_rsa},
		{"{\"alg\":\"PS512\",\"kid\":\"rsa\"}", "PS512", k_rsa},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *t = tok(ok[i].hdr, c, ok[i].alg, ok[i].key);
		int r = verify_default(t);
		if (r != 0)
			fail_msg("%s: %s", ok[i].alg, wi_error_detail());
		assert_int_equal(validate(t), 0);
		free(t);
	}
	/* EdDSA: only when the caller allows it (not a JWT-SVID algorithm). */
	char *t = tok("{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", c, "EdDSA", k_ed);
	assert_int_equal(verify_default(t), WI_E_INVAL);
	expect_detail("alg EdDSA is not allowed");
	assert_int_equal(validate(t), WI_E_INVAL);
	wi_jws_verify_opts o = {.allowed_algs = WI_JWS_EDDSA};
	json_t *h = NULL, *cl = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &o, &h, &cl), 0);
	json_decref(h);
	json_decref(cl);
	free(t);
	/* The allow-list is the caller's: ES256 refused when only RS256 is. */
	t = tok(HDR_ES256, c, "ES256", k_ec);
	o.allowed_algs = WI_JWS_RS256;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &o, &h, &cl), WI_E_INVAL);
	expect_detail("alg ES256 is not allowed");
	free(t);
	free(c);
}

static void test_jws_alg_none_and_hmac(void **state)
{
	(void)state;
	char *c = good_claims();
	/* alg none, with and without a signature. */
	char *t = tok_sig("{\"alg\":\"none\",\"kid\":\"ec\"}", c, (const uint8_t *)"", 0);
	assert_int_equal(verify_default(t), WI_E_INVAL);
	expect_detail("alg none is not allowed");
	assert_int_equal(validate(t), WI_E_INVAL);
	expect_detail("alg none is not allowed");
	free(t);
	t = tok_sig("{\"alg\":\"none\"}", c, (const uint8_t *)"x", 1);
	assert_int_equal(validate(t), WI_E_INVAL);
	expect_detail("alg none is not allowed");
	free(t);
	/* Case variants are unknown algorithms. */
	t = tok_sig("{\"alg\":\"None\",\"kid\":\"ec\"}", c, (const uint8_t *)"", 0);
	assert_int_equal(validate(t), WI_E_INVAL);
	expect_detail("not supported");
	free(t);
	/* RFC 8725 key confusion: HS256 keyed with the RSA/EC public key. */
	const char *hs[] = {"HS256", "HS384", "HS512"};
	for (size_t i = 0; i < 3; i++) {
		char hdr[64];
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"rsa\"}", hs[i]);
		t = tok(hdr, c, hs[i], k_rsa);
		assert_int_equal(validate(t), WI_E_INVAL);
		expect_detail("HMAC");
		wi_jws_verify_opts all = {.allowed_algs = ~0u};
		json_t *h = NULL, *cl = NULL;
		assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &all, &h, &cl), WI_E_INVAL);
		free(t);
	}
	t = tok("{\"alg\":\"HS256\",\"kid\":\"ec\"}", c, "HS256", k_ec);
	assert_int_equal(validate(t), WI_E_INVAL);
	expect_detail("HMAC");
	free(t);
	/* alg missing or not a string. */
	expect_reject("{\"kid\":\"ec\"}", c, "ES256", k_ec, WI_E_INVAL, "alg header is missing");
	expect_reject("{\"alg\":7,\"kid\":\"ec\"}", c, "ES256", k_ec, WI_E_INVAL, "must be a string");
	free(c);
}

static void test_jws_kid_and_key_checks(void **state)
{
	(void)state;
	char *c = good_claims();
	expect_reject("{\"alg\":\"ES256\"}", c, "ES256", k_ec, WI_E_INVAL, "kid header is missing");
	expect_reject("{\"alg\":\"ES256\",\"kid\":1}", c, "ES256", k_ec, WI_E_INVAL,
		      "kid header must be a string");
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"nope\"}", c, "ES256", k_ec, WI_E_INVAL, "unknown kid");
	/* Key type must match alg. */
	expect_reject("{\"alg\":\"RS256\",\"kid\":\"ec\"}", c, "RS256", k_rsa, WI_E_INVAL,
		      "does not match alg RS256");
	expect_reject("{\"alg\":\"PS256\",\"kid\":\"ec\"}", c, "PS256", k_rsa, WI_E_INVAL,
		      "does not match alg PS256");
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"rsa\"}", c, "ES256", k_ec, WI_E_INVAL,
		      "does not match alg ES256");
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"p384\"}", c, "ES256", k_ec, WI_E_INVAL,
		      "does not match alg ES256");
	expect_reject("{\"alg\":\"ES384\",\"kid\":\"ec\"}", c, "ES384", k_p384, WI_E_INVAL,
		      "does not match alg ES384");
	expect_reject("{\"alg\":\"RS256\",\"kid\":\"ed\"}", c, "RS256", k_rsa, WI_E_INVAL,
		      "does not match alg RS256");
	/* A valid signature by another key under our kid. */
	expect_reject(HDR_ES256, c, "ES256", k_other, WI_E_CRYPTO, "signature verification failed");
	free(c);
}

static void test_jws_forbidden_headers(void **state)
{
	(void)state;
	char *c = good_claims();
	static const char *const hdrs[] = {
		"{\"alg\":\"ES256\",\"kid\":\"ec\",\"jku\":\"https://evil.example/jwks\"}",
		"{\"alg\":\"ES256\",\"kid\":\"ec\",\"x5u\":\"https://evil.example/cert\"}",
		"{\"alg\":\"ES256\",\"kid\":\"ec\",\"jwk\":{\"kty\":\"EC\"}}",
		"{\"alg\":\"ES256\",\"kid\":\"ec\",\"x5c\":[\"MIIB\"]}",
		"{\"alg\":\"ES256\",\"kid\":\"ec\",\"crit\":[\"exp\"],\"exp\":1}",
	};
	static const char *const names[] = {"jku", "x5u", "jwk", "x5c", "crit"};
	for (size_t i = 0; i < 5; i++) {
		char want[64];
		snprintf(want, sizeof(want), "header %s is not allowed", names[i]);
		expect_reject(hdrs[i], c, "ES256", k_ec, WI_E_INVAL, want);
	}
	free(c);
}

/* Replaces the signature part of `t` by `sig`. */
static char *with_sig(const char *t, const uint8_t *sig, size_t len)
{
	const char *d2 = strrchr(t, '.');
	char *prefix = strndup(t, (size_t)(d2 - t));
	char *s = ref_b64(sig, len);
	char *out = cat3(prefix, ".", s);
	free(prefix);
	free(s);
	return out;
}

static void test_jws_bad_signatures(void **state)
{
	(void)state;
	char *c = good_claims();
	char *t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	const char *d2 = strrchr(t, '.');
	uint8_t *sig = NULL;
	size_t slen = 0;
	assert_int_equal(wi_b64url_decode(d2 + 1, strlen(d2 + 1), 256, &sig, &slen), 0);
	assert_int_equal(slen, 64);
	/* One flipped byte, in R and in S. */
	for (size_t at = 0; at < 64; at += 40) {
		sig[at] ^= 0x01;
		char *bad = with_sig(t, sig, slen);
		assert_int_equal(validate(bad), WI_E_CRYPTO);
		expect_detail("signature verification failed");
		free(bad);
		sig[at] ^= 0x01;
	}
	/* Wrong lengths: short, long, empty, and the DER encoding. */
	size_t lens[] = {63, 65, 0, 32};
	uint8_t big[65] = {0};
	memcpy(big, sig, 64);
	for (size_t i = 0; i < 4; i++) {
		char *bad = with_sig(t, big, lens[i]);
		assert_int_equal(validate(bad), WI_E_CRYPTO);
		expect_detail("needs 64");
		free(bad);
	}
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	unsigned char *der = NULL;
	int der_len = i2d_ECDSA_SIG(es, &der);
	char *bad = with_sig(t, der, (size_t)der_len);
	assert_int_equal(validate(bad), WI_E_CRYPTO);
	free(bad);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	/* R or S zero. */
	memset(sig, 0, 32);
	bad = with_sig(t, sig, 64);
	assert_int_equal(validate(bad), WI_E_CRYPTO);
	free(bad);
	free(sig);
	free(t);

	/* RSA: one byte short of the modulus; a flipped byte. */
	t = tok("{\"alg\":\"RS256\",\"kid\":\"rsa\"}", c, "RS256", k_rsa);
	d2 = strrchr(t, '.');
	assert_int_equal(wi_b64url_decode(d2 + 1, strlen(d2 + 1), 1024, &sig, &slen), 0);
	assert_int_equal(slen, 256);
	bad = with_sig(t, sig + 1, 255);
	assert_int_equal(validate(bad), WI_E_CRYPTO);
	expect_detail("needs 256");
	free(bad);
	sig[100] ^= 0x80;
	bad = with_sig(t, sig, 256);
	assert_int_equal(validate(bad), WI_E_CRYPTO);
	expect_detail("signature verification failed");
	free(bad);
	/* A PS256 signature presented as RS256 (same key, other padding). */
	free(sig);
	char *ps = tok("{\"alg\":\"RS256\",\"kid\":\"rsa\"}", c, "PS256", k_rsa);
	assert_int_equal(validate(ps), WI_E_CRYPTO);
	free(ps);
	free(t);
	free(c);
}

static void test_jws_shape_and_base64(void **state)
{
	(void)state;
	char *c = good_claims();
	char *t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);

	/* 5 parts (JWE) and other part counts. */
	char *jwe = cat3(t, ".", "AAAA.BBBB");
	assert_int_equal(validate(jwe), WI_E_PARSE);
	expect_detail("JWE");
	free(jwe);
	static const char *const shapes[] = {"", ".", "a", "a.b", "a.b.c.d", "a.b.c.d.e.f", "..."};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		int r = verify_default(shapes[i]);
		if (r != WI_E_PARSE)
			fail_msg("\"%s\" gave %d", shapes[i], r);
	}
	char *four = cat3(t, ".", "AAAA");
	assert_int_equal(validate(four), WI_E_PARSE);
	expect_detail("exactly 3");
	free(four);

	/* Malformed base64url in each part. */
	size_t n = strlen(t);
	const char *d1 = strchr(t, '.');
	const char *d2 = strrchr(t, '.');
	size_t at[] = {3, (size_t)(d1 - t) + 3, (size_t)(d2 - t) + 3};
	const char bad_chars[] = {'+', '/', '=', ' ', '\n', '!'};
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < sizeof(bad_chars); j++) {
			char *m = strdup(t);
			m[at[i]] = bad_chars[j];
			int r = validate(m);
			if (r != WI_E_PARSE)
				fail_msg("part %zu char 0x%02x gave %d (%s)", i, bad_chars[j], r,
					 wi_error_detail());
			expect_detail("base64url");
			free(m);
		}
	/* Padding appended to the signature (64 bytes → 86 chars + "=="). */
	char *pad = cat3(t, "", "==");
	assert_int_equal(validate(pad), WI_E_PARSE);
	free(pad);
	/* Trailing whitespace or NUL inside the given length. */
	char *ws = cat3(t, "", "\n");
	assert_int_equal(validate(ws), WI_E_PARSE);
	free(ws);
	char *nul = malloc(n + 2);
	memcpy(nul, t, n);
	nul[n] = '\0';
	nul[n + 1] = '\0';
	char *id = NULL;
	json_t *cl = NULL;
	assert_int_equal(wi_jwt_svid_validate(nul, n + 1, g_set, TD, AUD, NOW, &id, &cl), WI_E_PARSE);
	free(nul);
	free(t);
	free(c);
}

static void test_jws_oversize(void **state)
{
	(void)state;
	/* A correctly signed token just over 16 KiB. */
	char *pad = malloc(WI_JWT_MAX_LEN);
	memset(pad, 'a', WI_JWT_MAX_LEN - 1);
	pad[WI_JWT_MAX_LEN - 1] = '\0';
	char extra[WI_JWT_MAX_LEN + 16];
	snprintf(extra, sizeof(extra), ",\"pad\":\"%s\"", pad);
	free(pad);
	char *c = claims_with("\"" SUB "\"", "\"" AUD "\"", extra);
	char *t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_true(strlen(t) > WI_JWT_MAX_LEN);
	assert_int_equal(validate(t), WI_E_TOO_BIG);
	expect_detail("exceeds the limit");
	assert_int_equal(verify_default(t), WI_E_TOO_BIG);
	/* The same token under a larger caller cap: only size was wrong. */
	wi_jws_verify_opts o = {.max_token_len = 64 * 1024};
	json_t *h = NULL, *cl = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &o, &h, &cl), 0);
	json_decref(h);
	json_decref(cl);
	/* And a caller cap below the default applies too. */
	char *small = tok(HDR_ES256, "{\"a\":1}", "ES256", k_ec);
	o.max_token_len = strlen(small) - 1;
	assert_int_equal(wi_jws_verify(small, strlen(small), g_set, &o, &h, &cl), WI_E_TOO_BIG);
	free(small);
	free(t);
	free(c);
}

static void test_jws_json_shape(void **state)
{
	(void)state;
	char *c = good_claims();
	/* Non-object headers. */
	static const char *const hdrs[] = {"[\"ES256\"]", "\"ES256\"", "123", "null", "", "{",
					   "{\"alg\":\"ES256\",\"kid\":\"ec\"} x"};
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		char *t = tok(hdrs[i], c, "ES256", k_ec);
		int r = validate(t);
		if (r != WI_E_PARSE)
			fail_msg("header %s gave %d", hdrs[i], r);
		free(t);
	}
	/* Non-object claims, correctly signed. */
	static const char *const cls[] = {"[1]", "\"sub\"", "42", "true", "", "{\"sub\":"};
	for (size_t i = 0; i < sizeof(cls) / sizeof(cls[0]); i++) {
		char *t = tok(HDR_ES256, cls[i], "ES256", k_ec);
		int r = validate(t);
		if (r != WI_E_PARSE)
			fail_msg("claims %s gave %d", cls[i], r);
		free(t);
	}
	/* Duplicate names: header and claims. */
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"nope\",\"kid\":\"ec\"}", c, "ES256", k_ec, WI_E_PARSE,
		      "duplicate");
	expect_reject("{\"alg\":\"none\",\"alg\":\"ES256\",\"kid\":\"ec\"}", c, "ES256", k_ec, WI_E_PARSE,
		      "duplicate");
	char *dup = claims_with("\"spiffe://other.org/x\"", "\"" AUD "\"", ",\"sub\":\"" SUB "\"");
	expect_reject(HDR_ES256, dup, "ES256", k_ec, WI_E_PARSE, "duplicate");
	free(dup);
	/* Invalid UTF-8 in the claims. */
	expect_reject(HDR_ES256, "{\"sub\":\"\xc3\x28\"}", "ES256", k_ec, WI_E_PARSE, "JSON");
	/* NUL escaped in a string. */
	expect_reject(HDR_ES256, "{\"sub\":\"a\\u0000b\"}", "ES256", k_ec, WI_E_PARSE, "JSON");
	free(c);
}

static char *nested(int depth, const char *prefix, const char *suffix)
{
	size_t n = strlen(prefix) + strlen(suffix) + 2 * (size_t)depth + 8;
	char *s = malloc(n);
	size_t o = (size_t)snprintf(s, n, "%s", prefix);
	for (int i = 0; i < depth; i++)
		s[o++] = '[';
	for (int i = 0; i < depth; i++)
		s[o++] = ']';
	snprintf(s + o, n - o, "%s", suffix);
	return s;
}

static void test_jws_deep_nesting(void **state)
{
	(void)state;
	/* The top-level object is level 1; WI_JSON_DEPTH_MAX levels in all are
	 * accepted, one more is refused. */
	char *ok_tail = nested(WI_JSON_DEPTH_MAX - 1, ",\"deep\":", "");
	char *c = claims_with("\"" SUB "\"", "\"" AUD "\"", ok_tail);
	char *t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	free(t);
	free(c);
	free(ok_tail);
	char *bad_tail = nested(WI_JSON_DEPTH_MAX, ",\"deep\":", "");
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", bad_tail);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), WI_E_TOO_BIG);
	expect_detail("nested deeper");
	free(t);
	free(c);
	/* Far deeper than jansson's own limit: still a clean refusal. */
	char *very = nested(5000, ",\"deep\":", "");
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", very);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	wi_jws_verify_opts o = {.max_token_len = 64 * 1024};
	json_t *h = NULL, *cl = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, &o, &h, &cl), WI_E_TOO_BIG);
	free(t);
	free(c);
	free(very);
	free(bad_tail);
	/* In the header. */
	char *hdr = nested(WI_JSON_DEPTH_MAX, "{\"alg\":\"ES256\",\"kid\":\"ec\",\"x\":", "}");
	char *gc = good_claims();
	expect_reject(hdr, gc, "ES256", k_ec, WI_E_TOO_BIG, "nested deeper");
	free(hdr);
	/* Brackets inside strings (with escaped quotes) do not count. */
	char str[256];
	memset(str, '[', 100);
	str[100] = '\0';
	char extra[700];
	snprintf(extra, sizeof(extra), ",\"s\":\"\\\"%s\",\"t\":\"%s\\\\\"", str, str);
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", extra);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	int r = validate(t);
	if (r != 0)
		fail_msg("%s", wi_error_detail());
	free(t);
	free(c);
	free(gc);
}

/* ==== JWT-SVID validation ========================================================== */

static void test_svid_validate_ok(void **state)
{
	(void)state;
	char *c = good_claims();
	char *t = tok(HDR_ES256, c, "ES256", k_ec);
	char *id = NULL;
	json_t *claims = NULL;
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, AUD, NOW, &id, &claims), 0);
	assert_string_equal(id, SUB);
	assert_int_equal(json_integer_value(json_object_get(claims, "iat")), NOW);
	free(id);
	json_decref(claims);
	free(t);
	/* typ JOSE, no typ. */
	t = tok("{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"JOSE\"}", c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	free(t);
	t = tok("{\"alg\":\"ES256\",\"kid\":\"ec\"}", c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	free(t);
	free(c);
	/* aud as an array containing the audience. */
	c = claims_with("\"" SUB "\"", "[\"other\",\"" AUD "\"]", NULL);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	assert_int_equal(validate_aud(t, "other"), 0);
	assert_int_equal(validate_aud(t, "third"), WI_E_INVAL);
	expect_detail("audience mismatch");
	free(t);
	free(c);
	/* Within the leeway; non-integer NumericDates; other claims kept. */
	char extra[128];
	snprintf(extra, sizeof(extra), ",\"nbf\":%lld,\"x\":{\"y\":[1,2]}", (long long)NOW + 10);
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", extra);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	free(t);
	free(c);
	char buf[256];
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld.5}", SUB, AUD,
		 (long long)NOW - 10);
	t = tok(HDR_ES256, buf, "ES256", k_ec);
	assert_int_equal(validate(t), 0); /* expired 10 s ago: inside the leeway */
	free(t);
	/* A trust-domain ID is a SPIFFE ID too. */
	c = claims_with("\"spiffe://example.org\"", "\"" AUD "\"", NULL);
	t = tok(HDR_ES256, c, "ES256", k_ec);
	assert_int_equal(validate(t), 0);
	free(t);
	free(c);
}

static void test_svid_validate_rejects(void **state)
{
	(void)state;
	char buf[512];
	char *c;
	/* typ. */
	char *gc = good_claims();
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"at+jwt\"}", gc, "ES256", k_ec,
		      WI_E_INVAL, "typ must be JWT or JOSE");
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"jwt\"}", gc, "ES256", k_ec, WI_E_INVAL,
		      "typ must be JWT or JOSE");
	expect_reject("{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":1}", gc, "ES256", k_ec, WI_E_INVAL,
		      "typ must be JWT or JOSE");
	/* sub. */
	snprintf(buf, sizeof(buf), "{\"aud\":\"%s\",\"exp\":%lld}", AUD, (long long)NOW + 60);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "sub claim is missing");
	c = claims_with("\"https://example.org/w\"", "\"" AUD "\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "sub is not a valid SPIFFE ID");
	free(c);
	c = claims_with("\"spiffe://example.org/a/../b\"", "\"" AUD "\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "sub is not a valid SPIFFE ID");
	free(c);
	c = claims_with("42", "\"" AUD "\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "sub is not a valid SPIFFE ID");
	free(c);
	c = claims_with("\"spiffe://other.org/workload\"", "\"" AUD "\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "sub is not in trust domain example.org");
	free(c);
	c = claims_with("\"spiffe://example.org.evil.com/w\"", "\"" AUD "\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "sub is not in trust domain");
	free(c);
	/* aud. */
	c = claims_with("\"" SUB "\"", "\"wrong\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "audience mismatch");
	free(c);
	c = claims_with("\"" SUB "\"", "\"SVC\"", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "audience mismatch");
	free(c);
	c = claims_with("\"" SUB "\"", "[\"a\",\"b\"]", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "audience mismatch");
	free(c);
	c = claims_with("\"" SUB "\"", "[]", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "aud claim is empty");
	free(c);
	c = claims_with("\"" SUB "\"", "[\"" AUD "\",1]", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "array of strings");
	free(c);
	c = claims_with("\"" SUB "\"", "{\"x\":\"" AUD "\"}", NULL);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "array of strings");
	free(c);
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"exp\":%lld}", SUB, (long long)NOW + 60);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "aud claim is missing");
	/* exp. */
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\"}", SUB, AUD);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "exp claim is missing");
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":\"soon\"}", SUB, AUD);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "exp claim must be a number");
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}", SUB, AUD,
		 (long long)NOW - 100);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_EXPIRED, "token has expired");
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}", SUB, AUD,
		 (long long)NOW - WI_JWT_LEEWAY_SECONDS);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_EXPIRED, "token has expired");
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":-9.9e300}", SUB, AUD);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "out of range");
	/* Not yet valid: nbf and iat in the future. */
	char extra[64];
	snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)NOW + 100);
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", extra);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "token is not yet valid");
	free(c);
	snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"iat\":%lld}", SUB, AUD,
		 (long long)NOW + 600, (long long)NOW + 100);
	expect_reject(HDR_ES256, buf, "ES256", k_ec, WI_E_INVAL, "issued in the future");
	snprintf(extra, sizeof(extra), ",\"nbf\":\"x\"");
	c = claims_with("\"" SUB "\"", "\"" AUD "\"", extra);
	expect_reject(HDR_ES256, c, "ES256", k_ec, WI_E_INVAL, "nbf claim must be a number");
	free(c);
	/* Arguments. */
	char *t = tok(HDR_ES256, gc, "ES256", k_ec);
	char *id = NULL;
	json_t *cl = NULL;
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, "", NOW, &id, &cl), WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), NULL, TD, AUD, NOW, &id, &cl), WI_E_INVAL);
	/* Another trust domain's bundle view. */
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, "other.org", AUD, NOW, &id, &cl),
			 WI_E_INVAL);
	expect_detail("sub is not in trust domain other.org");
	free(t);
	free(gc);
}

/* ==== JWT-SVID minting =============================================================== */

static void test_svid_mint(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	const char *one[] = {AUD};
	char *t = NULL;
	time_t exp = 0;
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, one, 1, NOW, 300, &t, &exp), 0);
	assert_int_equal(exp, NOW + 300);
	char *id = NULL;
	json_t *c = NULL;
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, AUD, NOW, &id, &c), 0);
	assert_string_equal(id, SUB);
	/* Single audience: a string; iat always; 128-bit jti. */
	assert_true(json_is_string(json_object_get(c, "aud")));
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), NOW + 300);
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), NOW);
	const char *jti = json_string_value(json_object_get(c, "jti"));
	assert_non_null(jti);
	assert_int_equal(strlen(jti), 22);
	char *jti1 = strdup(jti);
	json_decref(c);
	free(id);
	json_t *h = NULL;
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, NULL, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "ec");
	json_decref(h);
	json_decref(c);
	/* Expired at exp (+ leeway), valid just before. */
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, AUD,
					      NOW + 300 + WI_JWT_LEEWAY_SECONDS - 1, &id, &c),
			 0);
	free(id);
	json_decref(c);
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, AUD,
					      NOW + 300 + WI_JWT_LEEWAY_SECONDS, &id, &c),
			 WI_E_EXPIRED);
	free(t);

	/* Two audiences: an array; a fresh jti each time. */
	const char *two[] = {"a", "b"};
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, two, 2, NOW, 60, &t, &exp), 0);
	assert_int_equal(wi_jwt_svid_validate(t, strlen(t), g_set, TD, "b", NOW, &id, &c), 0);
	assert_true(json_is_array(json_object_get(c, "aud")));
	assert_int_equal(json_array_size(json_object_get(c, "aud")), 2);
	assert_string_not_equal(json_string_value(json_object_get(c, "jti")), jti1);
	free(id);
	json_decref(c);
	free(t);
	free(jti1);

	/* Refusals; outputs untouched. */
	t = (char *)0x1;
	exp = 7;
	const char *empty[] = {""};
	const char *many[WI_JWT_AUDIENCES_MAX + 1];
	for (size_t i = 0; i < WI_JWT_AUDIENCES_MAX + 1; i++)
		many[i] = "x";
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, one, 0, NOW, 300, &t, &exp), WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, many, WI_JWT_AUDIENCES_MAX + 1, NOW, 300, &t, &exp),
			 WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, empty, 1, NOW, 300, &t, &exp), WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", "spiffe://Example.org/x", one, 1, NOW, 300, &t, &exp),
			 WI_E_SPIFFE_ID);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", "not an id", one, 1, NOW, 300, &t, &exp),
			 WI_E_SPIFFE_ID);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, one, 1, NOW, WI_JWT_TTL_MIN - 1, &t, &exp),
			 WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, one, 1, NOW, WI_JWT_TTL_MAX + 1, &t, &exp),
			 WI_E_INVAL);
	assert_int_equal(wi_jwt_svid_mint(s, "", SUB, one, 1, NOW, 300, &t, &exp), WI_E_INVAL);
	const char *bad_utf8[] = {"\xff"};
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, bad_utf8, 1, NOW, 300, &t, &exp), WI_E_INVAL);
	assert_ptr_equal(t, (char *)0x1);
	assert_int_equal(exp, 7);
	wi_signer_free(s);

	/* RS256 through the RSA signer. */
	s = signer_for(k_rsa);
	assert_int_equal(wi_jwt_svid_mint(s, "rsa", SUB, one, 1, NOW, 300, &t, &exp), 0);
	assert_int_equal(wi_jws_verify(t, strlen(t), g_set, NULL, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	json_decref(h);
	json_decref(c);
	assert_int_equal(validate(t), 0);
	free(t);
	wi_signer_free(s);
}

/* ValidateJWTSVID's cache: the second validation of the same bytes under
 * the same bundle object checks no signature (a cache hit), but every claim
 * check still runs; another bundle object, other bytes or a failure are
 * never answered from it. */
static void test_svid_validate_cached(void **state)
{
	(void)state;
	wi_signer *s = signer_for(k_ec);
	const char *one[] = {AUD};
	char *t = NULL;
	time_t exp = 0;
	assert_int_equal(wi_jwt_svid_mint(s, "ec", SUB, one, 1, NOW, 30, &t, &exp), 0);
	wi_verified_cache *vc = NULL;
	assert_int_equal(wi_verified_cache_new(16, &vc), 0);
	uint64_t hits, misses;
	char *id = NULL;
	json_t *c = NULL;

	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), g_set, TD, AUD, NOW, &id, &c), 0);
	wi_verified_cache_stats(vc, &hits, &misses);
	assert_int_equal(hits, 0);
	assert_int_equal(misses, 1);
	assert_string_equal(id, SUB);
	free(id);
	/* the caller's claims are its own: changing them changes no entry */
	assert_int_equal(json_object_set_new(c, "sub", json_string("spiffe://example.org/mallory")), 0);
	json_decref(c);
	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), g_set, TD, AUD, NOW + 1, &id, &c), 0);
	wi_verified_cache_stats(vc, &hits, &misses);
	assert_int_equal(hits, 1);
	assert_string_equal(id, SUB);
	assert_string_equal(json_string_value(json_object_get(c, "sub")), SUB);
	free(id);
	json_decref(c);

	/* Answered from the cache, still refused: another audience, another
	 * trust domain; outputs untouched. */
	id = (char *)0x1;
	c = (json_t *)0x1;
	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), g_set, TD, "other", NOW + 1, &id, &c),
			 WI_E_INVAL);
	expect_detail("audience mismatch");
	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), g_set, "other.org", AUD, NOW + 1, &id, &c),
			 WI_E_INVAL);
	expect_detail("trust domain");
	wi_verified_cache_stats(vc, &hits, &misses);
	assert_int_equal(hits, 3);
	assert_int_equal(misses, 1);
	assert_ptr_equal(id, (char *)0x1);
	assert_ptr_equal(c, (json_t *)0x1);

	/* Past exp + leeway: refused (the entry dies at exp, so this is a full
	 * check, not a cached answer). */
	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), g_set, TD, AUD,
						     NOW + 30 + WI_JWT_LEEWAY_SECONDS, &id, &c),
			 WI_E_EXPIRED);

	/* Another bundle object with the same keys (a reloaded bundle): a miss,
	 * verified in full, valid. */
	char *js = NULL;
	assert_int_equal(wi_jwks_to_json(g_set, &js), 0);
	wi_jwks *again = NULL;
	assert_int_equal(wi_jwks_parse(js, strlen(js), 1u << 20, &again), 0);
	free(js);
	wi_verified_cache_stats(vc, &hits, &misses);
	uint64_t m0 = misses;
	assert_int_equal(wi_jwt_svid_validate_cached(vc, t, strlen(t), again, TD, AUD, NOW + 2, &id, &c), 0);
	wi_verified_cache_stats(vc, &hits, &misses);
	assert_int_equal(misses, m0 + 1);
	free(id);
	json_decref(c);

	/* One signature byte changed: other bytes, verified and refused, every
	 * time (failures are not remembered). */
	char *bad = strdup(t);
	size_t n = strlen(bad);
	bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
	id = (char *)0x1;
	c = (json_t *)0x1;
	for (int i = 0; i < 2; i++)
		assert_int_not_equal(wi_jwt_svid_validate_cached(vc, bad, n, again, TD, AUD, NOW + 2, &id, &c), 0);
	wi_verified_cache_stats(vc, &hits, &misses);
	assert_int_equal(misses, m0 + 3);
	assert_ptr_equal(id, (char *)0x1);
	free(bad);

	/* Too long: refused before it is hashed; no cache: plain validation. */
	size_t big = WI_JWT_MAX_LEN + 1;
	char *huge = malloc(big + 1);
	memset(huge, 'a', big);
	huge[big] = '\0';
	assert_int_equal(wi_jwt_svid_validate_cached(vc, huge, big, g_set, TD, AUD, NOW, &id, &c), WI_E_TOO_BIG);
	free(huge);
	assert_int_equal(wi_jwt_svid_validate_cached(NULL, t, strlen(t), g_set, TD, AUD, NOW, &id, &c), 0);
	free(id);
	json_decref(c);

	wi_jwks_unref(again);
	wi_verified_cache_free(vc);
	wi_signer_free(s);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_rfc4648_vectors),
		cmocka_unit_test(test_b64url_encode_into_bounds),
		cmocka_unit_test(test_b64url_round_trip_vs_reference),
		cmocka_unit_test(test_b64url_strict_rejects),
		cmocka_unit_test(test_jwk_round_trips),
		cmocka_unit_test(test_jwk_thumbprint_rfc7638),
		cmocka_unit_test(test_jwk_rejects),
		cmocka_unit_test(test_jwks_add_find_serialise),
		cmocka_unit_test(test_jwks_parse_mixed),
		cmocka_unit_test(test_jwks_parse_rejects),
		cmocka_unit_test(test_jwk_short_ec_coordinate),
		cmocka_unit_test(test_jws_sign_verify_es256),
		cmocka_unit_test(test_jws_sign_header_per_kid_and_typ),
		cmocka_unit_test(test_jws_sign_large_claims),
		cmocka_unit_test(test_jws_verify_pick),
		cmocka_unit_test(test_jws_sign_verify_rs256),
		cmocka_unit_test(test_jws_verify_hand_built),
		cmocka_unit_test(test_jws_alg_none_and_hmac),
		cmocka_unit_test(test_jws_kid_and_key_checks),
		cmocka_unit_test(test_jws_forbidden_headers),
		cmocka_unit_test(test_jws_bad_signatures),
		cmocka_unit_test(test_jws_shape_and_base64),
		cmocka_unit_test(test_jws_oversize),
		cmocka_unit_test(test_jws_json_shape),
		cmocka_unit_test(test_jws_deep_nesting),
		cmocka_unit_test(test_svid_validate_ok),
		cmocka_unit_test(test_svid_validate_rejects),
		cmocka_unit_test(test_svid_mint),
		cmocka_unit_test(test_svid_validate_cached),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
