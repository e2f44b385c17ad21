/* core/jwk.c — public keys as JWKs (RFC 7517, RFC 7518 §6, RFC 8037 §2),
 * RFC 7638 thumbprints and immutable, reference-counted key sets.
 *
 * Keys are built and read through OpenSSL 3's parameter API (EVP_PKEY_fromdata,
 * EVP_PKEY_get_bn_param), never through deprecated EC_KEY/RSA structs. */
#include "core/jwk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "core/b64url.h"
#include "core/cleanup.h"
#include "core/digest.h"
#include "core/json.h"
#include "core/limits.h"

WI_DEFINE_FREEP(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free)
WI_DEFINE_FREEP(OSSL_PARAM, OSSL_PARAM_free)

/* RFC 7518 §6.2.1.1 curve names, OpenSSL's names, and the coordinate size
 * (§6.2.1.2: "the full size of a coordinate for the curve"). */
typedef struct curve {
	const char *jwk;
	const char *ossl;
	size_t size;
} curve;

static const curve curves[] = {
	{"P-256", "prime256v1", 32},
	{"P-384", "secp384r1", 48},
	{"P-521", "secp521r1", 66},
};

#define ED25519_LEN 32
/* RSA public exponents above 32 bits are refused (as Go's crypto/rsa does);
 * every real key uses 65537. */
#define RSA_E_MAX_BYTES 4

static const curve *curve_by_jwk(const char *name)
{
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].jwk, name) == 0)
			return &curves[i];
	return NULL;
}

/* The curve of an EC key, or NULL (with a reason) when unsupported. */
static int curve_of(EVP_PKEY *key, const curve **ret)
{
	char group[64];
	size_t glen = 0;
	WI_CHECK_SSL(EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), &glen) == 1,
		     "jwk: EC group name");
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].ossl, group) == 0 || strcmp(curves[i].jwk, group) == 0) {
			*ret = &curves[i];
			return 0;
		}
	WI_FAIL(WI_E_UNIMPLEMENTED, "jwk: EC curve %s is not supported", group);
}

/* Refuses keys outside the supported set (see jwk.h); WI_E_UNIMPLEMENTED. */
static int check_supported(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "EC")) {
		const curve *c;
		return curve_of(key, &c);
	}
	if (EVP_PKEY_is_a(key, "RSA")) {
		int bits = EVP_PKEY_get_bits(key);
		/* RFC 7518 §3.3: a key of 2048 bits or larger MUST be used. */
		WI_CHECK(bits >= WI_RSA_BITS_MIN && bits <= WI_RSA_BITS_MAX, WI_E_UNIMPLEMENTED,
			 "jwk: RSA key of %d bits (want %d to %d)", bits, WI_RSA_BITS_MIN,
			 WI_RSA_BITS_MAX);
		return 0;
	}
	if (EVP_PKEY_is_a(key, "ED25519"))
		return 0;
	WI_FAIL(WI_E_UNIMPLEMENTED, "jwk: key type %s is not supported",
		EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?");
}

/* ---- building ------------------------------------------------------------ */

static int set_str(json_t *obj, const char *name, const char *value)
{
	WI_CHECK(json_object_set_new(obj, name, json_string(value)) == 0, WI_E_NOMEM,
		 "jwk: set %s", name);
	return 0;
}

static int set_b64(json_t *obj, const char *name, const uint8_t *p, size_t n)
{
	_cleanup_(freep) char *enc = NULL;
	size_t enc_len = 0;
	WI_TRY(wi_b64url_encode(p, n, &enc, &enc_len));
	return set_str(obj, name, enc);
}

/* A BIGNUM member: big-endian, `width` bytes (zero-padded) or, when width is
 * 0, the minimal number of octets (RFC 7518 §6.3.1.1). */
static int set_bn_param(json_t *obj, const char *name, EVP_PKEY *key, const char *param,
			size_t width)
{
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	WI_CHECK_SSL(EVP_PKEY_get_bn_param(key, param, &bn) == 1, "jwk: read key parameter");
	size_t need = (size_t)BN_num_bytes(bn);
	size_t n = width ? width : (need ? need : 1);
	WI_CHECK(need <= n, WI_E_INTERNAL, "jwk: %s is %zu bytes, want %zu", name, need, n);
	uint8_t buf[WI_RSA_BITS_MAX / 8];
	WI_CHECK(n <= sizeof(buf), WI_E_INTERNAL, "jwk: %s too long", name);
	WI_CHECK_SSL(BN_bn2binpad(bn, buf, (int)n) == (int)n, "jwk: encode key parameter");
	return set_b64(obj, name, buf, n);
}

/* kty, then kid (when given), then the key members: the order SPIRE's
 * FetchJWTBundles output uses. */
static int build_jwk(EVP_PKEY *key, const char *kid, json_t **ret)
{
	WI_TRY(check_supported(key));
	json_auto_t *obj = json_object();
	WI_CHECK_ALLOC(obj);
	if (EVP_PKEY_is_a(key, "EC")) {
		const curve *c;
		WI_TRY(curve_of(key, &c));
		WI_TRY(set_str(obj, "kty", "EC"));
		if (kid)
			WI_TRY(set_str(obj, "kid", kid));
		WI_TRY(set_str(obj, "crv", c->jwk));
		/* RFC 7518 §6.2.1.2-3: x and y are full-width coordinates. */
		WI_TRY(set_bn_param(obj, "x", key, OSSL_PKEY_PARAM_EC_PUB_X, c->size));
		WI_TRY(set_bn_param(obj, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, c->size));
	} else if (EVP_PKEY_is_a(key, "RSA")) {
		WI_TRY(set_str(obj, "kty", "RSA"));
		if (kid)
			WI_TRY(set_str(obj, "kid", kid));
		/* RFC 7518 §6.3.1.1-2: n and e with the minimum number of octets. */
		WI_TRY(set_bn_param(obj, "n", key, OSSL_PKEY_PARAM_RSA_N, 0));
		WI_TRY(set_bn_param(obj, "e", key, OSSL_PKEY_PARAM_RSA_E, 0));
	} else {
		uint8_t x[ED25519_LEN];
		size_t xlen = sizeof(x);
		WI_CHECK_SSL(EVP_PKEY_get_raw_public_key(key, x, &xlen) == 1 && xlen == sizeof(x),
			     "jwk: Ed25519 public key");
		/* RFC 8037 §2: kty OKP, crv Ed25519, x the raw public key. */
		WI_TRY(set_str(obj, "kty", "OKP"));
		if (kid)
			WI_TRY(set_str(obj, "kid", kid));
		WI_TRY(set_str(obj, "crv", "Ed25519"));
		WI_TRY(set_b64(obj, "x", x, xlen));
	}
	*ret = TAKE_PTR(obj);
	return 0;
}

int wi_jwk_from_pkey(EVP_PKEY *pub, const char *kid, json_t **ret)
{
	WI_CHECK(pub != NULL && kid != NULL && kid[0] != '\0' && ret != NULL, WI_E_INVAL,
		 "jwk: NULL argument or empty kid");
	return build_jwk(pub, kid, ret);
}

int wi_jwk_thumbprint(EVP_PKEY *pub, char **ret_kid)
{
	WI_CHECK(pub != NULL && ret_kid != NULL, WI_E_INVAL, "jwk thumbprint: NULL argument");
	json_auto_t *obj = NULL;
	/* RFC 7638 §3.2: only the required members (we emit no others without a
	 * kid), sorted by name, no whitespace. */
	WI_TRY(build_jwk(pub, NULL, &obj));
	_cleanup_(freep) char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	WI_CHECK_ALLOC(text);
	/* RFC 7638 §3: SHA-256 over the UTF-8 of that JSON, base64url. */
	uint8_t digest[WI_SHA256_LEN];
	WI_TRY(wi_digest_sha256(text, strlen(text), digest));
	size_t kid_len = 0;
	return wi_b64url_encode(digest, sizeof(digest), ret_kid, &kid_len);
}

/* ---- parsing --------------------------------------------------------------- */

/* A base64url member decoded, at most `max` bytes. */
static int get_b64(const json_t *jwk, const char *name, size_t max, uint8_t **ret, size_t *ret_len)
{
	const json_t *v = json_object_get(jwk, name);
	WI_CHECK(v != NULL, WI_E_PARSE, "jwk: member \"%s\" is missing", name);
	WI_CHECK(json_is_string(v), WI_E_PARSE, "jwk: member \"%s\" is not a string", name);
	int r = wi_b64url_decode(json_string_value(v), json_string_length(v), max, ret, ret_len);
	WI_CHECK(r == 0, r == WI_E_NOMEM ? WI_E_NOMEM : WI_E_PARSE,
		 "jwk: member \"%s\" is not base64url of at most %zu bytes", name, max);
	return 0;
}

static int from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret)
{
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	WI_CHECK_SSL(params != NULL, "jwk: parameters");
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	WI_CHECK_SSL(ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1, "jwk: key context");
	EVP_PKEY *key = NULL;
	if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1 || key == NULL) {
		EVP_PKEY_free(key);
		return wi__error_set_ssl(WI_E_PARSE, __FILE__, __LINE__, "jwk: not a valid public key");
	}
	*ret = key;
	return 0;
}

static int ec_from_jwk(const json_t *jwk, EVP_PKEY **ret)
{
	const json_t *crv = json_object_get(jwk, "crv");
	WI_CHECK(json_is_string(crv), WI_E_PARSE, "jwk: EC key without a \"crv\" string");
	const curve *c = curve_by_jwk(json_string_value(crv));
	WI_CHECK(c != NULL, WI_E_UNIMPLEMENTED, "jwk: EC curve \"%.32s\" is not supported",
		 json_string_value(crv));
	_cleanup_(freep) uint8_t *x = NULL;
	_cleanup_(freep) uint8_t *y = NULL;
	size_t xlen = 0, ylen = 0;
	WI_TRY(get_b64(jwk, "x", c->size, &x, &xlen));
	WI_TRY(get_b64(jwk, "y", c->size, &y, &ylen));
	/* RFC 7518 §6.2.1.2-3 wants each coordinate at the curve's full size;
	 * some producers (e.g. PyJWT 2.6) drop leading zero bytes, about one key
	 * in 128.  Shorter values are left-padded (the point is validated on the
	 * curve below); longer ones are refused. */
	WI_CHECK(xlen >= 1 && ylen >= 1 && xlen <= c->size && ylen <= c->size, WI_E_PARSE,
		 "jwk: %s coordinates must be at most %zu bytes (x %zu, y %zu)", c->jwk, c->size, xlen, ylen);
	uint8_t point[1 + 2 * 66];
	memset(point, 0, sizeof(point));
	point[0] = 0x04; /* SEC 1 §2.3.3: uncompressed point */
	memcpy(point + 1 + (c->size - xlen), x, xlen);
	memcpy(point + 1 + c->size + (c->size - ylen), y, ylen);
	xlen = ylen = c->size;

	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	WI_CHECK_ALLOC(bld);
	WI_CHECK_SSL(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->ossl, 0) == 1 &&
			     OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
							      1 + xlen + ylen) == 1,
		     "jwk: EC parameters");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	WI_TRY(from_params("EC", bld, &key));
	/* RFC 8725 §3.4 (invalid-curve attacks): the point must be on the
	 * curve and not the point at infinity. */
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	WI_CHECK_SSL(chk != NULL, "jwk: check context");
	if (EVP_PKEY_public_check(chk) != 1)
		return wi__error_set_ssl(WI_E_PARSE, __FILE__, __LINE__,
					 "jwk: EC point is not a valid public key on the curve");
	*ret = TAKE_PTR(key);
	return 0;
}

static int rsa_from_jwk(const json_t *jwk, EVP_PKEY **ret)
{
	_cleanup_(freep) uint8_t *n = NULL;
	_cleanup_(freep) uint8_t *e = NULL;
	size_t nlen = 0, elen = 0;
	/* One spare byte so that a (non-minimal) leading zero octet is not
	 * mistaken for an oversize modulus. */
	WI_TRY(get_b64(jwk, "n", WI_RSA_BITS_MAX / 8 + 1, &n, &nlen));
	WI_TRY(get_b64(jwk, "e", RSA_E_MAX_BYTES, &e, &elen));
	_cleanup_(BN_freep) BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL);
	_cleanup_(BN_freep) BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL);
	WI_CHECK_ALLOC(bn_n && bn_e);
	int bits = BN_num_bits(bn_n);
	/* RFC 7518 §3.3: 2048 bits or larger; smaller keys are skipped in a set,
	 * like an unknown kty. */
	WI_CHECK(bits >= WI_RSA_BITS_MIN, WI_E_UNIMPLEMENTED, "jwk: RSA key of %d bits (minimum %d)",
		 bits, WI_RSA_BITS_MIN);
	WI_CHECK(bits <= WI_RSA_BITS_MAX, WI_E_UNIMPLEMENTED, "jwk: RSA key of %d bits (maximum %d)",
		 bits, WI_RSA_BITS_MAX);
	WI_CHECK(BN_is_odd(bn_n), WI_E_PARSE, "jwk: RSA modulus is even");
	/* RFC 8017 §3.1: 3 <= e <= n - 1, and e odd. */
	WI_CHECK(BN_is_odd(bn_e) && !BN_is_one(bn_e), WI_E_PARSE,
		 "jwk: RSA exponent must be odd and greater than 1");

	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	WI_CHECK_ALLOC(bld);
	WI_CHECK_SSL(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
			     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1,
		     "jwk: RSA parameters");
	/* No EVP_PKEY_public_check here: for RSA it runs a Miller-Rabin test on
	 * n, costly for large keys from an untrusted set, and a malformed RSA
	 * public key can only make verifications fail. */
	return from_params("RSA", bld, ret);
}

static int okp_from_jwk(const json_t *jwk, EVP_PKEY **ret)
{
	const json_t *crv = json_object_get(jwk, "crv");
	WI_CHECK(json_is_string(crv), WI_E_PARSE, "jwk: OKP key without a \"crv\" string");
	/* RFC 8037 §2: Ed25519 only (Ed448/X25519/X448 are not signature keys we
	 * support). */
	WI_CHECK(strcmp(json_string_value(crv), "Ed25519") == 0, WI_E_UNIMPLEMENTED,
		 "jwk: OKP curve \"%.32s\" is not supported", json_string_value(crv));
	_cleanup_(freep) uint8_t *x = NULL;
	size_t xlen = 0;
	WI_TRY(get_b64(jwk, "x", ED25519_LEN, &x, &xlen));
	WI_CHECK(xlen == ED25519_LEN, WI_E_PARSE, "jwk: Ed25519 x must be %d bytes", ED25519_LEN);
	EVP_PKEY *key = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
	if (!key)
		return wi__error_set_ssl(WI_E_PARSE, __FILE__, __LINE__, "jwk: Ed25519 public key");
	*ret = key;
	return 0;
}

int wi_jwk_to_pkey(const json_t *jwk, EVP_PKEY **ret)
{
	WI_CHECK(jwk != NULL && ret != NULL, WI_E_INVAL, "jwk: NULL argument");
	WI_CHECK(json_is_object(jwk), WI_E_PARSE, "jwk: not a JSON object");
	/* RFC 7518 §6.2.2, §6.3.2, §6.4.1, RFC 8037 §2: private (and symmetric)
	 * key members.  A public key set carrying them is a leak, not a key. */
	static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
	for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++)
		WI_CHECK(json_object_get(jwk, private_members[i]) == NULL, WI_E_INVAL,
			 "jwk: private key member \"%s\" present", private_members[i]);
	const json_t *kty = json_object_get(jwk, "kty");
	/* RFC 7517 §4.1: kty MUST be present. */
	WI_CHECK(json_is_string(kty), WI_E_PARSE, "jwk: \"kty\" missing or not a string");
	const char *t = json_string_value(kty);
	if (strcmp(t, "EC") == 0)
		return ec_from_jwk(jwk, ret);
	if (strcmp(t, "RSA") == 0)
		return rsa_from_jwk(jwk, ret);
	if (strcmp(t, "OKP") == 0)
		return okp_from_jwk(jwk, ret);
	WI_FAIL(WI_E_UNIMPLEMENTED, "jwk: kty \"%.32s\" is not supported", t);
}

/* ---- key sets ---------------------------------------------------------------- */

typedef struct jwks_entry {
	char *kid;
	EVP_PKEY *pub;
} jwks_entry;

struct wi_jwks {
	unsigned refs; /* atomic */
	size_t n, cap;
	jwks_entry *e;
};

static void jwks_freep(wi_jwks **p)
{
	wi_jwks_unref(*p);
}

int wi_jwks_new(wi_jwks **ret)
{
	WI_CHECK(ret != NULL, WI_E_INVAL, "jwks: NULL argument");
	wi_jwks *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->refs = 1;
	*ret = s;
	return 0;
}

int wi_jwks_add(wi_jwks *s, const char *kid, EVP_PKEY *pub)
{
	WI_CHECK(s != NULL && kid != NULL && pub != NULL, WI_E_INVAL, "jwks: NULL argument");
	size_t kid_len = strnlen(kid, WI_JWK_KID_MAX + 1);
	/* SPIFFE bundle, JWT-SVID keys (reference §2.4): kid MUST be set;
	 * tokens select their key by it. */
	WI_CHECK(kid_len > 0 && kid_len <= WI_JWK_KID_MAX, WI_E_INVAL,
		 "jwks: kid must be 1 to %d bytes", WI_JWK_KID_MAX);
	WI_CHECK(wi_jwks_find(s, kid) == NULL, WI_E_EXISTS, "jwks: duplicate kid \"%.64s\"", kid);
	WI_CHECK(s->n < WI_JWKS_KEYS_MAX, WI_E_TOO_BIG, "jwks: more than %d keys", WI_JWKS_KEYS_MAX);
	WI_TRY(check_supported(pub));
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		jwks_entry *e = realloc(s->e, cap * sizeof(*e));
		WI_CHECK_ALLOC(e);
		s->e = e;
		s->cap = cap;
	}
	char *k = strdup(kid);
	WI_CHECK_ALLOC(k);
	if (EVP_PKEY_up_ref(pub) != 1) {
		free(k);
		WI_CHECK_SSL(0, "jwks: key reference");
	}
	s->e[s->n].kid = k;
	s->e[s->n].pub = pub;
	s->n++;
	return 0;
}

EVP_PKEY *wi_jwks_find(const wi_jwks *s, const char *kid)
{
	if (!s || !kid)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].kid, kid) == 0) /* a kid is public: no constant time */
			return s->e[i].pub;
	return NULL;
}

size_t wi_jwks_count(const wi_jwks *s)
{
	return s ? s->n : 0;
}

wi_jwks *wi_jwks_ref(wi_jwks *s)
{
	if (s)
		__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

wi_jwks *wi_jwks_unref(wi_jwks *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].kid);
		EVP_PKEY_free(s->e[i].pub);
	}
	free(s->e);
	free(s);
	return NULL;
}

/* Adds keys[i] to the set: 0 when added or skipped, an error when the key
 * (or the document) is malformed. */
static int parse_one(wi_jwks *s, const json_t *jwk, size_t i)
{
	WI_CHECK(json_is_object(jwk), WI_E_PARSE, "jwks: keys[%zu] is not an object", i);
	const json_t *kid = json_object_get(jwk, "kid");
	const json_t *use = json_object_get(jwk, "use");
	WI_CHECK(kid == NULL || json_is_string(kid), WI_E_PARSE, "jwks: keys[%zu].kid is not a string",
		 i);
	WI_CHECK(use == NULL || json_is_string(use), WI_E_PARSE, "jwks: keys[%zu].use is not a string",
		 i);
	/* SPIFFE bundle, JWT-SVID keys (reference §2.4): kid MUST be set; a key
	 * without one cannot be selected by any token, so it is skipped. */
	if (kid == NULL || json_string_length(kid) == 0)
		return 0;
	WI_CHECK(json_string_length(kid) <= WI_JWK_KID_MAX &&
			 strlen(json_string_value(kid)) == json_string_length(kid),
		 WI_E_PARSE, "jwks: keys[%zu].kid is longer than %d bytes or holds NUL", i,
		 WI_JWK_KID_MAX);
	/* RFC 7517 §4.2 and the SPIFFE bundle's "jwt-svid": other uses ("enc",
	 * "x509-svid") are not signature keys for tokens. */
	if (use != NULL && strcmp(json_string_value(use), "sig") != 0 &&
	    strcmp(json_string_value(use), "jwt-svid") != 0)
		return 0;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	int r = wi_jwk_to_pkey(jwk, &pub);
	/* SPIFFE bundle spec (reference §2.6): an element of unknown kty is
	 * ignored; so is a curve or size we do not support. */
	if (r == WI_E_UNIMPLEMENTED)
		return 0;
	/* RFC 7517 §5: keys that are missing required members or out of range
	 * SHOULD be ignored; one bad key must not take an issuer's good keys
	 * down with it.  A key with private or symmetric members still refuses
	 * the whole set: publishing secrets is a misconfiguration to stop at. */
	if (r == WI_E_PARSE)
		return 0;
	if (r < 0) {
		if (r == WI_E_NOMEM)
			return r;
		WI_FAIL(WI_E_PARSE, "jwks: keys[%zu] (kid \"%.64s\"): %s", i, json_string_value(kid),
			wi_error_detail());
	}
	/* An ambiguous set: which key would a token with this kid mean? */
	WI_CHECK(wi_jwks_find(s, json_string_value(kid)) == NULL, WI_E_PARSE,
		 "jwks: duplicate kid \"%.64s\"", json_string_value(kid));
	return wi_jwks_add(s, json_string_value(kid), pub);
}

int wi_jwks_parse(const char *json, size_t len, size_t max_len, wi_jwks **ret)
{
	WI_CHECK(json != NULL && ret != NULL, WI_E_INVAL, "jwks: NULL argument");
	if (max_len == 0)
		max_len = WI_JWKS_DOC_MAX;
	WI_CHECK(len <= max_len, WI_E_TOO_BIG, "jwks: document of %zu bytes, limit %zu", len, max_len);
	json_auto_t *doc = NULL;
	WI_TRY(wi_json_parse_object(json, len, "JWK Set", &doc));
	/* RFC 7517 §5.1: "keys" MUST be present (an empty set is valid). */
	const json_t *keys = json_object_get(doc, "keys");
	WI_CHECK(json_is_array(keys), WI_E_PARSE, "jwks: \"keys\" missing or not an array");
	WI_CHECK(json_array_size(keys) <= WI_JWKS_KEYS_MAX, WI_E_TOO_BIG,
		 "jwks: %zu keys, limit %d", json_array_size(keys), WI_JWKS_KEYS_MAX);
	_cleanup_(jwks_freep) wi_jwks *s = NULL;
	WI_TRY(wi_jwks_new(&s));
	for (size_t i = 0; i < json_array_size(keys); i++)
		WI_TRY(parse_one(s, json_array_get(keys, i), i));
	*ret = TAKE_PTR(s);
	return 0;
}

int wi_jwks_to_json(const wi_jwks *s, char **ret)
{
	WI_CHECK(s != NULL && ret != NULL, WI_E_INVAL, "jwks: NULL argument");
	json_auto_t *arr = json_array();
	WI_CHECK_ALLOC(arr);
	for (size_t i = 0; i < s->n; i++) {
		json_t *jwk = NULL;
		WI_TRY(wi_jwk_from_pkey(s->e[i].pub, s->e[i].kid, &jwk));
		WI_CHECK(json_array_append_new(arr, jwk) == 0, WI_E_NOMEM, "jwks: append");
	}
	json_auto_t *doc = json_object();
	WI_CHECK_ALLOC(doc);
	/* Workload API FetchJWTBundles: a plain JWKS, no "use", no
	 * spiffe_sequence (reference §2.6, as SPIRE marshals it). */
	WI_CHECK(json_object_set(doc, "keys", arr) == 0, WI_E_NOMEM, "jwks: set keys");
	char *text = json_dumps(doc, JSON_COMPACT);
	WI_CHECK_ALLOC(text);
	*ret = text;
	return 0;
}
