/* core/jwt_svid.h — the JWT-SVID profile (SPIFFE JWT-SVID.md) on top of JWS.
 *
 * Minted: header {alg, kid, typ:"JWT"}; claims sub (SPIFFE ID), aud (a string
 * for one audience, else an array), exp, iat, jti (128-bit random, base64url).
 * Validated (for ValidateJWTSVID): signature by kid against the bundle, alg in
 * the SPIFFE allow-list, typ absent or "JWT"/"JOSE", sub a valid SPIFFE ID of
 * the bundle's trust domain, aud contains `audience`, exp present and in the
 * future (leeway WI_JWT_LEEWAY_SECONDS), nbf/iat (if present) not in the
 * future beyond the leeway. */
#ifndef WI_CORE_JWT_SVID_H
#define WI_CORE_JWT_SVID_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/error.h"
#include "core/jwk.h"
#include "core/signer.h"
#include "core/verified_cache.h"

int wi_jwt_svid_mint(wi_signer *signer, const char *kid, const char *spiffe_id, const char *const *aud,
		     size_t n_aud, time_t now, int64_t ttl, char **ret_token, time_t *ret_exp) WI_WUR;

/* On success: *ret_spiffe_id (malloc'd) and *ret_claims (new reference).
 * Any failure is WI_E_INVAL/WI_E_PARSE/WI_E_CRYPTO/WI_E_EXPIRED/WI_E_TOO_BIG
 * with a reason suitable for the caller ("token has expired", "audience
 * mismatch", ...). */
int wi_jwt_svid_validate(const char *token, size_t len, const wi_jwks *bundle, const char *trust_domain,
			 const char *audience, time_t now, char **ret_spiffe_id, json_t **ret_claims) WI_WUR;

/* The same validation, remembering tokens that passed in `cache` (NULL: no
 * cache).  A token that passed before under this very `bundle` object skips
 * the signature and header checks; sub, the trust domain, the audience and
 * the times are checked on every call, so a cached token for audience A is
 * still refused for B, and an expired one is refused.  Entries live until the
 * token's exp, WI_VERIFIED_CACHE_TTL_MAX at most.  Give each kind of
 * validation a cache of its own (the entries carry no algorithm list or
 * typ rule). */
int wi_jwt_svid_validate_cached(wi_verified_cache *cache, const char *token, size_t len, wi_jwks *bundle,
				const char *trust_domain, const char *audience, time_t now, char **ret_spiffe_id,
				json_t **ret_claims) WI_WUR;

#endif
