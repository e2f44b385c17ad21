/* core/jwt_svid.c — the JWT-SVID profile (SPIFFE JWT-SVID.md) on top of JWS.
 *
 * Validation follows what go-spiffe, py-spiffe and SPIRE check (reference
 * §2.4, §3, §4.10), each failure with its own reason, because callers of
 * ValidateJWTSVID see nothing but that reason. */
#include "core/jwt_svid.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/b64url.h"
#include "core/rand.h"
#include "core/cleanup.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/limits.h"
#include "core/spiffe_id.h"

/* 128-bit random jti (RFC 7519 §4.1.7: unique with negligible collision). */
#define JTI_BYTES 16

static void spiffe_id_freep(wi_spiffe_id **p)
{
	wi_spiffe_id_free(*p);
}

static int set(json_t *obj, const char *name, json_t *value)
{
	WI_CHECK(json_object_set_new(obj, name, value) == 0, WI_E_NOMEM, "jwt-svid: set %s", name);
	return 0;
}

int wi_jwt_svid_mint(wi_signer *signer, const char *kid, const char *spiffe_id, const char *const *aud,
		     size_t n_aud, time_t now, int64_t ttl, char **ret_token, time_t *ret_exp)
{
	WI_CHECK(signer != NULL && kid != NULL && spiffe_id != NULL && ret_token != NULL &&
			 ret_exp != NULL && (aud != NULL || n_aud == 0),
		 WI_E_INVAL, "jwt-svid mint: NULL argument");
	/* JWT-SVID §3.1: sub is the SPIFFE ID. */
	WI_TRY(wi_spiffe_id_validate(spiffe_id, strnlen(spiffe_id, WI_SPIFFE_ID_MAX + 1), false));
	/* JWT-SVID §3.2: aud MUST have at least one value. */
	WI_CHECK(n_aud >= 1 && n_aud <= WI_JWT_AUDIENCES_MAX, WI_E_INVAL,
		 "jwt-svid mint: %zu audiences (want 1 to %d)", n_aud, WI_JWT_AUDIENCES_MAX);
	for (size_t i = 0; i < n_aud; i++) {
		WI_CHECK(aud[i] != NULL, WI_E_INVAL, "jwt-svid mint: audience %zu is NULL", i);
		size_t n = strnlen(aud[i], WI_JWT_AUDIENCE_MAX + 1);
		WI_CHECK(n >= 1 && n <= WI_JWT_AUDIENCE_MAX, WI_E_INVAL,
			 "jwt-svid mint: audience %zu must be 1 to %d bytes", i, WI_JWT_AUDIENCE_MAX);
		/* RFC 7519 §7.1 / RFC 8725 §3.7: JSON text is UTF-8; jansson
		 * refuses to make a string of anything else. */
		json_t *probe = json_string(aud[i]);
		WI_CHECK(probe != NULL, WI_E_INVAL, "jwt-svid mint: audience %zu is not valid UTF-8", i);
		json_decref(probe);
	}
	WI_CHECK(ttl >= WI_JWT_TTL_MIN && ttl <= WI_JWT_TTL_MAX, WI_E_INVAL,
		 "jwt-svid mint: ttl %lld outside [%d, %lld] seconds", (long long)ttl, WI_JWT_TTL_MIN,
		 (long long)WI_JWT_TTL_MAX);
	WI_CHECK(now > 0, WI_E_INVAL, "jwt-svid mint: invalid time");

	uint8_t jti_raw[JTI_BYTES];
	WI_TRY(wi_rand_id_bytes(jti_raw, sizeof(jti_raw)));
	_cleanup_(freep) char *jti = NULL;
	size_t jti_len = 0;
	WI_TRY(wi_b64url_encode(jti_raw, sizeof(jti_raw), &jti, &jti_len));

	time_t exp = now + (time_t)ttl;
	json_auto_t *claims = json_object();
	WI_CHECK_ALLOC(claims);
	WI_TRY(set(claims, "sub", json_string(spiffe_id)));
	/* RFC 7519 §4.1.3: a single audience may be a string (what most relying
	 * parties expect); several are an array. */
	if (n_aud == 1) {
		WI_TRY(set(claims, "aud", json_string(aud[0])));
	} else {
		json_t *arr = json_array();
		WI_CHECK_ALLOC(arr);
		WI_TRY(set(claims, "aud", arr));
		for (size_t i = 0; i < n_aud; i++)
			WI_CHECK(json_array_append_new(arr, json_string(aud[i])) == 0, WI_E_NOMEM,
				 "jwt-svid mint: aud");
	}
	WI_TRY(set(claims, "exp", json_integer((json_int_t)exp)));
	/* java-spiffe's CachedJwtSource computes the half-life from iat
	 * (reference §3): always present. */
	WI_TRY(set(claims, "iat", json_integer((json_int_t)now)));
	WI_TRY(set(claims, "jti", json_string(jti)));

	/* JWT-SVID §2.3: typ, when set, is "JWT" (as SPIRE sets it). */
	char *token = NULL;
	WI_TRY(wi_jws_sign(signer, kid, "JWT", claims, &token));
	*ret_token = token;
	*ret_exp = exp;
	return 0;
}

/* The checks on the claims against this call's trust domain, audience and
 * clock: run on every call, whether the signature was checked now or found
 * in the cache. */
static int check_claims(const json_t *claims, const char *trust_domain, const char *audience, time_t now,
			char **ret_spiffe_id, int64_t *ret_exp)
{
	const json_t *sub = json_object_get(claims, "sub");
	/* JWT-SVID §3.1: sub MUST be the SPIFFE ID of the workload. */
	WI_CHECK(sub != NULL, WI_E_INVAL, "sub claim is missing");
	WI_CHECK(json_is_string(sub), WI_E_INVAL, "sub is not a valid SPIFFE ID");
	_cleanup_(spiffe_id_freep) wi_spiffe_id *id = NULL;
	if (wi_spiffe_id_parse(json_string_value(sub), json_string_length(sub), &id) < 0)
		WI_FAIL(WI_E_INVAL, "sub is not a valid SPIFFE ID");
	/* Reference §4.10: a bundle only vouches for its own trust domain. */
	WI_CHECK(wi_spiffe_id_is_member_of(id, trust_domain), WI_E_INVAL,
		 "sub is not in trust domain %.255s", trust_domain);

	/* JWT-SVID §3.2: aud MUST contain the validator's audience. */
	WI_TRY(wi_jwt_check_audience(claims, audience));
	/* JWT-SVID §3.3: exp MUST be present and not past (small leeway). */
	WI_TRY(wi_jwt_check_times(claims, now, ret_exp));

	char *s = strdup(wi_spiffe_id_string(id));
	WI_CHECK_ALLOC(s);
	*ret_spiffe_id = s;
	return 0;
}

/* The signature and header checks, which depend on the bytes and the bundle
 * alone: *ret_claims on success. */
static int verify_signed(const char *token, size_t len, const wi_jwks *bundle, json_t **ret_claims)
{
	/* JWT-SVID §2.1, §5.1: compact JWS, one of the nine algorithms; the key
	 * by kid from the bundle. */
	wi_jws_verify_opts opts = {.allowed_algs = WI_JWS_SPIFFE_ALGS, .max_token_len = WI_JWT_MAX_LEN};
	json_auto_t *hdr = NULL;
	json_auto_t *claims = NULL;
	WI_TRY(wi_jws_verify(token, len, bundle, &opts, &hdr, &claims));

	/* JWT-SVID §2.3: typ, if present, MUST be "JWT" or "JOSE" (go-spiffe and
	 * py-spiffe compare exactly). */
	const json_t *typ = json_object_get(hdr, "typ");
	WI_CHECK(typ == NULL || (json_is_string(typ) && (strcmp(json_string_value(typ), "JWT") == 0 ||
							  strcmp(json_string_value(typ), "JOSE") == 0)),
		 WI_E_INVAL, "typ must be JWT or JOSE");
	*ret_claims = TAKE_PTR(claims);
	return 0;
}

static int check_args(const char *token, const wi_jwks *bundle, const char *trust_domain, const char *audience,
		      char **ret_spiffe_id, json_t **ret_claims)
{
	WI_CHECK(token != NULL && bundle != NULL && trust_domain != NULL && audience != NULL &&
			 ret_spiffe_id != NULL && ret_claims != NULL,
		 WI_E_INVAL, "jwt-svid validate: NULL argument");
	WI_CHECK(audience[0] != '\0', WI_E_INVAL, "jwt-svid validate: empty audience");
	return 0;
}

int wi_jwt_svid_validate(const char *token, size_t len, const wi_jwks *bundle, const char *trust_domain,
			 const char *audience, time_t now, char **ret_spiffe_id, json_t **ret_claims)
{
	WI_TRY(check_args(token, bundle, trust_domain, audience, ret_spiffe_id, ret_claims));
	json_auto_t *claims = NULL;
	WI_TRY(verify_signed(token, len, bundle, &claims));
	WI_TRY(check_claims(claims, trust_domain, audience, now, ret_spiffe_id, NULL));
	*ret_claims = TAKE_PTR(claims);
	return 0;
}

int wi_jwt_svid_validate_cached(wi_verified_cache *cache, const char *token, size_t len, wi_jwks *bundle,
				const char *trust_domain, const char *audience, time_t now, char **ret_spiffe_id,
				json_t **ret_claims)
{
	WI_TRY(check_args(token, bundle, trust_domain, audience, ret_spiffe_id, ret_claims));
	/* Only an entry verified under this very bundle object hits (the entry
	 * holds a reference, so the address was not reused): a rotated or
	 * reloaded bundle is another object. */
	uint8_t digest[WI_VERIFIED_DIGEST_LEN];
	json_auto_t *claims = NULL;
	int hit = wi_verified_cache_lookup(cache, token, len, bundle, now, digest, &claims);
	WI_TRY(hit);
	if (!hit)
		WI_TRY(verify_signed(token, len, bundle, &claims));
	int64_t exp = 0;
	WI_TRY(check_claims(claims, trust_domain, audience, now, ret_spiffe_id, &exp));
	/* Only a token valid in full is remembered. */
	if (!hit)
		wi_verified_cache_remember(cache, digest, NULL, bundle, claims, now, exp);
	*ret_claims = TAKE_PTR(claims);
	return 0;
}
