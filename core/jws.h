/* core/jws.h — JWS compact serialization (RFC 7515) with the rules of
 * RFC 8725 (JWT BCP): the algorithm comes from a caller-given allow-list,
 * never from the token alone; "none" and every HMAC algorithm are refused
 * always; the key is chosen by `kid` from a caller-given key set and must
 * match the algorithm's family; "jku", "x5u", "jwk", "x5c" and "crit" headers
 * are refused (never followed).
 *
 * Untrusted input is bounded: token length, decoded sizes, JSON depth
 * (WI_JSON_DEPTH_MAX) and duplicate object keys (refused). */
#ifndef WI_CORE_JWS_H
#define WI_CORE_JWS_H

#include <stddef.h>

#include <jansson.h>

#include "core/error.h"
#include "core/jwk.h"
#include "core/signer.h"

/* Algorithm bit flags for allow-lists. */
enum {
	WI_JWS_RS256 = 1u << 0,
	WI_JWS_RS384 = 1u << 1,
	WI_JWS_RS512 = 1u << 2,
	WI_JWS_ES256 = 1u << 3,
	WI_JWS_ES384 = 1u << 4,
	WI_JWS_ES512 = 1u << 5,
	WI_JWS_PS256 = 1u << 6,
	WI_JWS_PS384 = 1u << 7,
	WI_JWS_PS512 = 1u << 8,
	WI_JWS_EDDSA = 1u << 9,
};
/* JWT-SVID §3: the nine algorithms a JWT-SVID may use. */
#define WI_JWS_SPIFFE_ALGS                                                                 \
	(WI_JWS_RS256 | WI_JWS_RS384 | WI_JWS_RS512 | WI_JWS_ES256 | WI_JWS_ES384 | WI_JWS_ES512 | \
	 WI_JWS_PS256 | WI_JWS_PS384 | WI_JWS_PS512)

/* Signs `claims` as a compact JWS.  The protected header is
 * {"alg":<from the signer's key>,"kid":kid,"typ":typ} (typ omitted if NULL).
 * ES* signatures are converted from DER to JOSE R‖S.  *ret malloc'd. */
int wi_jws_sign(wi_signer *signer, const char *kid, const char *typ, const json_t *claims, char **ret) WI_WUR;

typedef struct wi_jws_verify_opts {
	unsigned allowed_algs; /* WI_JWS_* bits; 0 means WI_JWS_SPIFFE_ALGS */
	size_t max_token_len;  /* 0 means 16 KiB */
} wi_jws_verify_opts;

/* Verifies a compact JWS (exactly three parts) against `keys` and returns the
 * parsed header and claims objects (new references).  Checks no claims.
 * Errors: WI_E_PARSE (malformed), WI_E_TOO_BIG, WI_E_INVAL (alg not allowed,
 * forbidden header, unknown kid, key/alg mismatch), WI_E_CRYPTO (bad
 * signature), with the reason in the detail. */
int wi_jws_verify(const char *token, size_t len, const wi_jwks *keys, const wi_jws_verify_opts *opts,
		  json_t **ret_header, json_t **ret_claims) WI_WUR;

/* Chooses the key set, and the algorithms allowed with it, for a token from
 * its parsed but unverified header and claims (e.g. by `iss` and `kid`):
 * they only say which keys to try.  On 0, *ret_keys is a key set that `ctx`
 * keeps alive until wi_jws_verify_pick returns and *ret_algs WI_JWS_* bits
 * (0: the opts' allow-list); an error is returned by wi_jws_verify_pick as
 * it is. */
typedef int (*wi_jws_pick_keys_fn)(void *ctx, const json_t *header, const json_t *claims, const wi_jwks **ret_keys,
				   unsigned *ret_algs);

/* wi_jws_verify with the key set chosen by `pick`.  The header and claims
 * are decoded and parsed once (under the same bounds) and returned only if
 * the signature verifies; errors as wi_jws_verify, plus pick's own. */
int wi_jws_verify_pick(const char *token, size_t len, wi_jws_pick_keys_fn pick, void *ctx,
		       const wi_jws_verify_opts *opts, json_t **ret_header, json_t **ret_claims) WI_WUR;

#endif
