/* core/jws.c — JWS compact serialization (RFC 7515 §7.1) under the rules of
 * RFC 8725.
 *
 * Verification order: sizes and shape first, then the protected header (alg
 * allow-list, forbidden members, kid lookup, key/alg match), then the
 * signature, and only then the claims JSON, so unauthenticated bytes reach
 * the JSON parser only as far as the header (wi_jws_verify_pick, whose
 * caller chooses keys by `iss`, parses the bounded claims before the
 * signature, once).
 *
 * Speed: OpenSSL 3 fetches an algorithm implementation (name map, method
 * store) whenever an operation is set up from a name or a legacy EVP_MD, and
 * that costs as much as a P-256 verify.  So the digests are fetched once per
 * process, and each thread keeps a few verification contexts, initialised
 * for one (key, algorithm) pair, in a small cache (WI_JWS_VERIFY_CACHE_MAX).
 * A cached context holds a reference to its public key, so the key's address
 * cannot be reused by another key while the entry lives: a pointer match is
 * a key match. */
#include "core/jws.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "core/b64url.h"
#include "core/cleanup.h"
#include "core/digest.h"
#include "core/json.h"
#include "core/limits.h"

WI_DEFINE_FREEP(ECDSA_SIG, ECDSA_SIG_free)

typedef enum family { FAM_RSA, FAM_PSS, FAM_EC, FAM_ED } family;

/* RFC 7518 §3.1 (and RFC 8037 §3.1 for EdDSA): name, digest, family; for
 * ECDSA the curve (OpenSSL name) and coordinate size. */
typedef struct alg_info {
	const char *name;
	unsigned flag;
	family fam;
	const char *md; /* NULL: EdDSA hashes internally */
	const char *curve;
	size_t coord;
} alg_info;

static const alg_info algs[] = {
	{"RS256", WI_JWS_RS256, FAM_RSA, "SHA256", NULL, 0},
	{"RS384", WI_JWS_RS384, FAM_RSA, "SHA384", NULL, 0},
	{"RS512", WI_JWS_RS512, FAM_RSA, "SHA512", NULL, 0},
	{"ES256", WI_JWS_ES256, FAM_EC, "SHA256", "prime256v1", 32},
	{"ES384", WI_JWS_ES384, FAM_EC, "SHA384", "secp384r1", 48},
	{"ES512", WI_JWS_ES512, FAM_EC, "SHA512", "secp521r1", 66},
	{"PS256", WI_JWS_PS256, FAM_PSS, "SHA256", NULL, 0},
	{"PS384", WI_JWS_PS384, FAM_PSS, "SHA384", NULL, 0},
	{"PS512", WI_JWS_PS512, FAM_PSS, "SHA512", NULL, 0},
	{"EdDSA", WI_JWS_EDDSA, FAM_ED, NULL, NULL, 0},
};

#define ES256_COORD 32
#define ED25519_SIG_LEN 64

static const alg_info *alg_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strcmp(algs[i].name, name) == 0) /* RFC 7515 §4.1.1: case-sensitive */
			return &algs[i];
	return NULL;
}

/* ---- signing ------------------------------------------------------------ */

/* DER ECDSA-Sig-Value → JOSE R‖S, each zero-padded to `coord` bytes
 * (RFC 7518 §3.4). */
static int ecdsa_der_to_raw(const uint8_t *der, size_t der_len, size_t coord, uint8_t *out)
{
	const unsigned char *p = der;
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	WI_CHECK_SSL(sig != NULL && p == der + der_len, "jws: decode ECDSA signature");
	const BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG_get0(sig, &r, &s);
	WI_CHECK((size_t)BN_num_bytes(r) <= coord && (size_t)BN_num_bytes(s) <= coord, WI_E_CRYPTO,
		 "jws: ECDSA signature component longer than %zu bytes", coord);
	WI_CHECK_SSL(BN_bn2binpad(r, out, (int)coord) == (int)coord &&
			     BN_bn2binpad(s, out + coord, (int)coord) == (int)coord,
		     "jws: encode ECDSA signature");
	return 0;
}

/* The protected header for one (alg, kid, typ) is the same bytes on every
 * sign, so each thread keeps the base64url of the last one it built: a
 * signer signs with one kid until it rotates.  Longer kids or typs than fit
 * are built every time. */
#define HDR_KID_MAX 128
#define HDR_TYP_MAX 64
#define HDR_TEXT_MAX 512
#define HDR_B64_CAP WI_B64URL_ENCODE_CAP(HDR_TEXT_MAX)

typedef struct hdr_cache {
	const char *alg; /* one of the static names; NULL: empty */
	bool has_typ;
	char kid[HDR_KID_MAX + 1];
	char typ[HDR_TYP_MAX + 1];
	char b64[HDR_B64_CAP];
	size_t b64_len;
} hdr_cache;

static _Thread_local hdr_cache hdr_tls;

static bool hdr_cache_hit(const hdr_cache *h, const char *alg, const char *kid, const char *typ)
{
	return h->alg == alg && strcmp(h->kid, kid) == 0 && h->has_typ == (typ != NULL) &&
	       (typ == NULL || strcmp(h->typ, typ) == 0);
}

/* The base64url protected header {"alg","kid","typ"} (sorted, compact),
 * from this thread's cache or built (and cached when it fits). */
static int header_b64(const char *alg, const char *kid, const char *typ, char **ret_heap, const char **ret_b64,
		      size_t *ret_len)
{
	hdr_cache *c = &hdr_tls;
	if (hdr_cache_hit(c, alg, kid, typ)) {
		*ret_b64 = c->b64;
		*ret_len = c->b64_len;
		return 0;
	}
	json_auto_t *hdr = json_object();
	WI_CHECK_ALLOC(hdr);
	/* json_string is NULL for text that is not UTF-8 (RFC 8725 §3.7). */
	json_auto_t *jkid = json_string(kid);
	json_auto_t *jtyp = typ ? json_string(typ) : NULL;
	WI_CHECK(jkid != NULL && (typ == NULL || jtyp != NULL), WI_E_INVAL, "jws sign: kid and typ must be UTF-8");
	WI_CHECK(json_object_set_new(hdr, "alg", json_string(alg)) == 0 && json_object_set(hdr, "kid", jkid) == 0 &&
			 (jtyp == NULL || json_object_set(hdr, "typ", jtyp) == 0),
		 WI_E_NOMEM, "jws sign: header");
	char text[HDR_TEXT_MAX];
	_cleanup_(freep) char *heap_text = NULL;
	const char *t = NULL;
	size_t tl = 0;
	/* Deterministic: sorted and compact. */
	WI_TRY(wi_json_dump_into(hdr, JSON_COMPACT | JSON_SORT_KEYS, text, sizeof(text), &heap_text, &t, &tl));
	bool cacheable = strlen(kid) <= HDR_KID_MAX && (!typ || strlen(typ) <= HDR_TYP_MAX) &&
			 WI_B64URL_ENCODE_CAP(tl) <= sizeof(c->b64);
	if (cacheable) {
		c->alg = NULL; /* invalid while half-written */
		WI_TRY(wi_b64url_encode_into((const uint8_t *)t, tl, c->b64, sizeof(c->b64), &c->b64_len));
		snprintf(c->kid, sizeof(c->kid), "%s", kid);
		snprintf(c->typ, sizeof(c->typ), "%s", typ ? typ : "");
		c->has_typ = typ != NULL;
		c->alg = alg;
		*ret_b64 = c->b64;
		*ret_len = c->b64_len;
		return 0;
	}
	char *b = NULL;
	WI_TRY(wi_b64url_encode((const uint8_t *)t, tl, &b, ret_len));
	*ret_heap = b;
	*ret_b64 = b;
	return 0;
}

int wi_jws_sign(wi_signer *signer, const char *kid, const char *typ, const json_t *claims, char **ret)
{
	WI_CHECK(signer != NULL && kid != NULL && kid[0] != '\0' && claims != NULL && ret != NULL,
		 WI_E_INVAL, "jws sign: NULL argument or empty kid");
	WI_CHECK(json_is_object(claims), WI_E_INVAL, "jws sign: claims must be a JSON object");
	wi_sig_alg sa = wi_signer_alg(signer);
	const char *alg = sa == WI_SIG_ECDSA_P256_SHA256 ? "ES256"
			  : sa == WI_SIG_RSA_PKCS1_SHA256 ? "RS256"
							   : NULL;
	WI_CHECK(alg != NULL, WI_E_INVAL, "jws sign: signer algorithm %d has no JWS name", (int)sa);

	_cleanup_(freep) char *h_heap = NULL;
	const char *h64 = NULL;
	size_t h64_len = 0;
	WI_TRY(header_b64(alg, kid, typ, &h_heap, &h64, &h64_len));
	/* Claims in the caller's insertion order, compact: same input, same
	 * bytes.  Serialised once, on the stack when small (the usual case). */
	char ctext_buf[4096];
	_cleanup_(freep) char *c_heap = NULL;
	const char *ctext = NULL;
	size_t ctext_len = 0;
	WI_TRY(wi_json_dump_into(claims, JSON_COMPACT, ctext_buf, sizeof(ctext_buf), &c_heap, &ctext, &ctext_len));

	/* One allocation for the whole token: b64(header) '.' b64(payload) '.'
	 * b64(signature), each part encoded in place. */
	WI_CHECK(ctext_len <= WI_JWT_MAX_LEN, WI_E_TOO_BIG, "jws sign: claims of %zu bytes", ctext_len);
	size_t c64_cap = WI_B64URL_ENCODE_CAP(ctext_len);
	size_t s64_cap = WI_B64URL_ENCODE_CAP(WI_JWS_SIG_MAX);
	size_t cap = h64_len + 1 + c64_cap + 1 + s64_cap;
	_cleanup_(freep) char *out = malloc(cap);
	WI_CHECK_ALLOC(out);
	memcpy(out, h64, h64_len);
	out[h64_len] = '.';
	size_t c64_len = 0;
	WI_TRY(wi_b64url_encode_into((const uint8_t *)ctext, ctext_len, out + h64_len + 1, c64_cap, &c64_len));
	/* RFC 7515 §5.1 step 8: JWS Signing Input = b64(header) '.' b64(payload). */
	size_t input_len = h64_len + 1 + c64_len;

	uint8_t digest[WI_SHA256_LEN];
	WI_TRY(wi_digest_sha256(out, input_len, digest));
	_cleanup_(freep) uint8_t *sig = NULL;
	size_t sig_len = 0;
	WI_TRY(wi_signer_sign(signer, sa, digest, sizeof(digest), &sig, &sig_len));

	const uint8_t *sig_bytes = sig;
	uint8_t raw[2 * ES256_COORD];
	if (sa == WI_SIG_ECDSA_P256_SHA256) {
		/* RFC 7518 §3.4: the JWS signature is R‖S, not DER. */
		WI_TRY(ecdsa_der_to_raw(sig, sig_len, ES256_COORD, raw));
		sig_bytes = raw;
		sig_len = sizeof(raw);
	}
	WI_CHECK(sig_len <= WI_JWS_SIG_MAX, WI_E_CRYPTO, "jws sign: %zu-byte signature", sig_len);
	out[input_len] = '.';
	size_t s64_len = 0;
	WI_TRY(wi_b64url_encode_into(sig_bytes, sig_len, out + input_len + 1, s64_cap, &s64_len));
	*ret = TAKE_PTR(out);
	return 0;
}

/* ---- verification ---------------------------------------------------------- */

/* JOSE R‖S → DER ECDSA-Sig-Value for EVP verification. */
static int ecdsa_raw_to_der(const uint8_t *raw, size_t coord, uint8_t **ret, size_t *ret_len)
{
	_cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = ECDSA_SIG_new();
	WI_CHECK_ALLOC(sig);
	BIGNUM *r = BN_bin2bn(raw, (int)coord, NULL);
	BIGNUM *s = BN_bin2bn(raw + coord, (int)coord, NULL);
	if (!r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		WI_FAIL(WI_E_NOMEM, "jws: ECDSA signature");
	}
	unsigned char *der = NULL;
	int n = i2d_ECDSA_SIG(sig, &der);
	WI_CHECK_SSL(n > 0, "jws: encode ECDSA signature");
	*ret = der; /* OPENSSL_free */
	*ret_len = (size_t)n;
	return 0;
}

/* RFC 8725 §3.1: the key must be of the family the algorithm names, and an
 * ECDSA key of the curve the algorithm names (RFC 7518 §3.4). */
static int check_key_matches(const alg_info *a, EVP_PKEY *key)
{
	bool ok = false;
	switch (a->fam) {
	case FAM_RSA:
	case FAM_PSS:
		ok = EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= WI_RSA_BITS_MIN;
		break;
	case FAM_EC:
		if (EVP_PKEY_is_a(key, "EC")) {
			char group[64];
			size_t glen = 0;
			ok = EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
							    sizeof(group), &glen) == 1 &&
			     strcmp(group, a->curve) == 0;
			ERR_clear_error();
		}
		break;
	case FAM_ED:
		ok = EVP_PKEY_is_a(key, "ED25519");
		break;
	}
	WI_CHECK(ok, WI_E_INVAL, "key type %s does not match alg %s",
		 EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?", a->name);
	return 0;
}

/* The exact signature length for this algorithm and key. */
static size_t sig_len_for(const alg_info *a, EVP_PKEY *key)
{
	switch (a->fam) {
	case FAM_EC:
		return 2 * a->coord; /* RFC 7518 §3.4: R‖S, fixed width */
	case FAM_ED:
		return ED25519_SIG_LEN; /* RFC 8032 §5.1.6 */
	default:
		/* RFC 8017 §8.2.2 step 1, §8.1.2 step 1: k octets. */
		return (size_t)EVP_PKEY_get_size(key);
	}
}

/* ---- per-thread verification contexts -------------------------------------- */

typedef struct vslot {
	EVP_PKEY *key; /* identity only; the reference is held by ctx */
	const alg_info *alg;
	EVP_PKEY_CTX *ctx; /* verify-initialised, padding and digest set */
} vslot;

typedef struct vcache {
	vslot slot[WI_JWS_VERIFY_CACHE_MAX];
	size_t next; /* round-robin victim */
} vcache;

static pthread_once_t vcache_once = PTHREAD_ONCE_INIT;
static pthread_key_t vcache_key;
static bool vcache_ok;

static void vcache_free(void *p)
{
	vcache *c = p;
	if (!c)
		return;
	for (size_t i = 0; i < WI_JWS_VERIFY_CACHE_MAX; i++)
		EVP_PKEY_CTX_free(c->slot[i].ctx);
	free(c);
}

static void vcache_init(void)
{
	vcache_ok = pthread_key_create(&vcache_key, vcache_free) == 0;
}

/* This thread's cache, or NULL (no cache: contexts are then per call). */
static vcache *vcache_get(void)
{
	pthread_once(&vcache_once, vcache_init);
	if (!vcache_ok)
		return NULL;
	vcache *c = pthread_getspecific(vcache_key);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c && pthread_setspecific(vcache_key, c) != 0) {
			free(c);
			c = NULL;
		}
	}
	return c;
}

/* A new context for verifying `a` signatures over a digest with `key`
 * (not EdDSA, which has no pre-hashed form). */
static int vctx_new(const alg_info *a, EVP_PKEY *key, EVP_PKEY_CTX **ret)
{
	const EVP_MD *md = wi_digest_md(a->md);
	WI_CHECK_SSL(md != NULL, "jws: digest");
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	WI_CHECK_SSL(ctx != NULL, "jws: verify context");
	WI_CHECK_SSL(EVP_PKEY_verify_init(ctx) == 1, "jws: verify init");
	if (a->fam == FAM_RSA) {
		/* RFC 7518 §3.3: RSASSA-PKCS1-v1_5. */
		WI_CHECK_SSL(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1, "jws: RSA padding");
	} else if (a->fam == FAM_PSS) {
		/* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. */
		WI_CHECK_SSL(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
				     EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
				     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1,
			     "jws: RSA-PSS parameters");
	}
	WI_CHECK_SSL(EVP_PKEY_CTX_set_signature_md(ctx, md) == 1, "jws: signature digest");
	*ret = TAKE_PTR(ctx);
	return 0;
}

/* Verifies sig over `digest` with a cached context for (key, a), making and
 * caching one on a miss.  Returns 1 (valid), 0 (invalid) or a negative
 * error when no context could be made. */
static int verify_digest(const alg_info *a, EVP_PKEY *key, const uint8_t *digest, size_t dlen,
			 const uint8_t *sig, size_t sig_len)
{
	vcache *c = vcache_get();
	vslot *hit = NULL;
	if (c)
		for (size_t i = 0; i < WI_JWS_VERIFY_CACHE_MAX; i++)
			if (c->slot[i].ctx && c->slot[i].key == key && c->slot[i].alg == a) {
				hit = &c->slot[i];
				break;
			}
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *own = NULL; /* uncached context */
	EVP_PKEY_CTX *ctx = hit ? hit->ctx : NULL;
	if (!ctx) {
		WI_TRY(vctx_new(a, key, &own));
		ctx = own;
		if (c) {
			vslot *v = &c->slot[c->next];
			c->next = (c->next + 1) % WI_JWS_VERIFY_CACHE_MAX;
			EVP_PKEY_CTX_free(v->ctx);
			*v = (vslot){key, a, TAKE_PTR(own)};
		}
	}
	return EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen) == 1 ? 1 : 0;
}

static int verify_signature(const alg_info *a, EVP_PKEY *key, const char *input, size_t input_len,
			    const uint8_t *sig, size_t sig_len)
{
	int ok;
	if (a->fam == FAM_ED) {
		/* RFC 8032: Ed25519 hashes the message itself (one-shot only). */
		_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
		WI_CHECK_ALLOC(md);
		WI_CHECK_SSL(EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, key, NULL) == 1, "jws: verify init");
		ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
	} else {
		const EVP_MD *m = wi_digest_md(a->md);
		uint8_t digest[EVP_MAX_MD_SIZE];
		unsigned int dlen = 0;
		WI_CHECK_SSL(m != NULL && EVP_Digest(input, input_len, digest, &dlen, m, NULL) == 1, "jws: digest");
		uint8_t *der = NULL;
		size_t der_len = 0;
		if (a->fam == FAM_EC) {
			WI_TRY(ecdsa_raw_to_der(sig, a->coord, &der, &der_len));
			sig = der;
			sig_len = der_len;
		}
		ok = verify_digest(a, key, digest, dlen, sig, sig_len);
		OPENSSL_free(der);
		if (ok < 0)
			return ok;
	}
	ERR_clear_error();
	WI_CHECK(ok == 1, WI_E_CRYPTO, "signature verification failed");
	return 0;
}

/* RFC 7515 §4.1.2-6, §4.1.11 and RFC 8725 §3.10: key-locating and "crit"
 * members that make a verifier fetch or trust keys named by the token itself
 * (or require extensions we do not implement) are refused, never followed. */
static const char *const forbidden_headers[] = {"jku", "x5u", "jwk", "x5c", "crit"};

static int check_header(const json_t *hdr, unsigned allowed, const wi_jwks *keys,
			const alg_info **ret_alg, EVP_PKEY **ret_key)
{
	const json_t *alg = json_object_get(hdr, "alg");
	/* RFC 7515 §4.1.1: alg MUST be present. */
	WI_CHECK(alg != NULL, WI_E_INVAL, "alg header is missing");
	WI_CHECK(json_is_string(alg), WI_E_INVAL, "alg header must be a string");
	const char *name = json_string_value(alg);
	/* RFC 8725 §3.1-3.2: unsecured JWS is never accepted. */
	WI_CHECK(strcmp(name, "none") != 0, WI_E_INVAL, "alg none is not allowed");
	/* RFC 8725 §2.1 / §3.1: HMAC with a public key as the "secret" is the
	 * classic key-confusion attack; a public-key verifier never does HMAC. */
	WI_CHECK(strncmp(name, "HS", 2) != 0, WI_E_INVAL, "alg %.16s (HMAC) is not allowed", name);
	const alg_info *a = alg_by_name(name);
	WI_CHECK(a != NULL, WI_E_INVAL, "alg %.32s is not supported", name);
	/* RFC 8725 §3.1: the caller's allow-list decides, not the token. */
	WI_CHECK((allowed & a->flag) != 0, WI_E_INVAL, "alg %s is not allowed", a->name);

	for (size_t i = 0; i < sizeof(forbidden_headers) / sizeof(forbidden_headers[0]); i++)
		WI_CHECK(json_object_get(hdr, forbidden_headers[i]) == NULL, WI_E_INVAL,
			 "header %s is not allowed", forbidden_headers[i]);

	const json_t *kid = json_object_get(hdr, "kid");
	/* Optional in RFC 7515 §4.1.4, but go-spiffe, py-spiffe and SPIRE require
	 * it when validating against a bundle (reference §2.4, §3). */
	WI_CHECK(kid != NULL, WI_E_INVAL, "kid header is missing");
	WI_CHECK(json_is_string(kid), WI_E_INVAL, "kid header must be a string");
	EVP_PKEY *key = wi_jwks_find(keys, json_string_value(kid));
	WI_CHECK(key != NULL, WI_E_INVAL, "unknown kid \"%.64s\"", json_string_value(kid));
	WI_TRY(check_key_matches(a, key));
	*ret_alg = a;
	*ret_key = key;
	return 0;
}

/* Decodes one base64url part; a failure names the part. */
static int decode_part(const char *p, size_t n, size_t max, const char *what, uint8_t **ret,
		       size_t *ret_len)
{
	int r = wi_b64url_decode(p, n, max, ret, ret_len);
	if (r == WI_E_NOMEM || r == WI_E_TOO_BIG)
		return r;
	WI_CHECK(r == 0, WI_E_PARSE, "%s is not valid base64url", what);
	return 0;
}

/* Both verify entry points: either `keys` is given, or `pick` chooses them
 * from the parsed (still unverified) header and claims. */
static int verify_impl(const char *token, size_t len, const wi_jwks *keys, wi_jws_pick_keys_fn pick, void *ctx,
		       const wi_jws_verify_opts *opts, json_t **ret_header, json_t **ret_claims)
{
	WI_CHECK(token != NULL && (keys != NULL || pick != NULL) && ret_header != NULL && ret_claims != NULL,
		 WI_E_INVAL, "jws verify: NULL argument");
	unsigned allowed = opts && opts->allowed_algs ? opts->allowed_algs : WI_JWS_SPIFFE_ALGS;
	size_t max_len = opts && opts->max_token_len ? opts->max_token_len : WI_JWT_MAX_LEN;
	/* DESIGN §6: the token size is client-controlled; bounded first. */
	WI_CHECK(len <= max_len, WI_E_TOO_BIG, "token of %zu bytes exceeds the limit of %zu", len,
		 max_len);

	/* RFC 7515 §7.1: compact serialization is exactly three parts. */
	const char *dots[4];
	size_t n_dots = 0;
	for (const char *p = token, *end = token + len; p < end; p++) {
		p = memchr(p, '.', (size_t)(end - p));
		if (!p)
			break;
		if (n_dots < sizeof(dots) / sizeof(dots[0]))
			dots[n_dots] = p;
		n_dots++;
	}
	/* RFC 7516 §7.1: five parts is a JWE; we never decrypt. */
	WI_CHECK(n_dots != 4, WI_E_PARSE, "token has 5 parts (a JWE); only JWS is accepted");
	WI_CHECK(n_dots == 2, WI_E_PARSE, "token has %zu parts; a JWS has exactly 3", n_dots + 1);
	const char *h64 = token, *c64 = dots[0] + 1, *s64 = dots[1] + 1;
	size_t h64_len = (size_t)(dots[0] - h64), c64_len = (size_t)(dots[1] - c64);
	size_t s64_len = (size_t)(token + len - s64);

	_cleanup_(freep) uint8_t *htext = NULL;
	_cleanup_(freep) uint8_t *ctext = NULL;
	_cleanup_(freep) uint8_t *sig = NULL;
	size_t htext_len = 0, ctext_len = 0, sig_len = 0;
	WI_TRY(decode_part(h64, h64_len, max_len, "header", &htext, &htext_len));
	json_auto_t *hdr = NULL;
	WI_TRY(wi_json_parse_object((const char *)htext, htext_len, "JWS header", &hdr));
	json_auto_t *claims = NULL;
	if (pick) {
		WI_TRY(decode_part(c64, c64_len, max_len, "payload", &ctext, &ctext_len));
		/* The picker needs `iss`: the claims are parsed (bounded) before
		 * the signature check, once, and returned only if it holds. */
		WI_TRY(wi_json_parse_object((const char *)ctext, ctext_len, "JWT claims", &claims));
		unsigned picked_algs = 0;
		WI_TRY(pick(ctx, hdr, claims, &keys, &picked_algs));
		WI_CHECK(keys != NULL, WI_E_INTERNAL, "jws verify: no key set picked");
		if (picked_algs)
			allowed = picked_algs;
	}
	const alg_info *a = NULL;
	EVP_PKEY *key = NULL;
	WI_TRY(check_header(hdr, allowed, keys, &a, &key));

	if (!ctext)
		WI_TRY(decode_part(c64, c64_len, max_len, "payload", &ctext, &ctext_len));
	WI_TRY(decode_part(s64, s64_len, WI_JWS_SIG_MAX, "signature", &sig, &sig_len));
	size_t want = sig_len_for(a, key);
	WI_CHECK(sig_len == want, WI_E_CRYPTO, "signature is %zu bytes; %s with this key needs %zu",
		 sig_len, a->name, want);
	/* RFC 7515 §5.2 step 8: over the ASCII of b64(header) '.' b64(payload). */
	WI_TRY(verify_signature(a, key, token, (size_t)(dots[1] - token), sig, sig_len));

	if (!claims)
		WI_TRY(wi_json_parse_object((const char *)ctext, ctext_len, "JWT claims", &claims));
	*ret_header = TAKE_PTR(hdr);
	*ret_claims = TAKE_PTR(claims);
	return 0;
}

int wi_jws_verify(const char *token, size_t len, const wi_jwks *keys, const wi_jws_verify_opts *opts,
		  json_t **ret_header, json_t **ret_claims)
{
	return verify_impl(token, len, keys, NULL, NULL, opts, ret_header, ret_claims);
}

int wi_jws_verify_pick(const char *token, size_t len, wi_jws_pick_keys_fn pick, void *ctx,
		       const wi_jws_verify_opts *opts, json_t **ret_header, json_t **ret_claims)
{
	return verify_impl(token, len, NULL, pick, ctx, opts, ret_header, ret_claims);
}
