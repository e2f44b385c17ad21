/* core/verified_cache.h — tokens whose signature verified, remembered.
 *
 * The same token is verified again and again: an agent exchanges the same
 * user token for a Txn-Token at every step of a run, and a service validates
 * the JWT-SVID a caller keeps presenting until its half-life.  Verifying the
 * signature each time is most of the work.  This cache remembers, per token,
 * that it verified: keyed by the SHA-256 of the token's bytes (the token
 * itself is never stored), with an owner tag (e.g. the issuer it verified
 * under), the exact key set that verified it (referenced) and the verified
 * claims.  A hit is only an answer to "did these bytes verify under that key
 * set?": the caller must still check that its current key set is the same
 * object (a re-fetched or rotated JWKS misses), re-check the times, and do
 * every check that is not about the signature (audience, revocation, policy)
 * as for a fresh token.  Entries live until `until` (the caller bounds it by
 * the token's exp).  Failures are never cached.
 *
 * Fixed size, direct-mapped by digest: a colliding token replaces the entry.
 * Thread-safe; a short mutex per operation (no crypto under it). */
#ifndef WI_CORE_VERIFIED_CACHE_H
#define WI_CORE_VERIFIED_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/error.h"
#include "core/jwk.h"

#define WI_VERIFIED_DIGEST_LEN 32

typedef struct wi_verified_cache wi_verified_cache;

/* `slots` > 0. */
int wi_verified_cache_new(size_t slots, wi_verified_cache **ret) WI_WUR;
wi_verified_cache *wi_verified_cache_free(wi_verified_cache *c);

/* SHA-256 of the token bytes. */
int wi_verified_cache_digest(const char *token, size_t len, uint8_t ret[WI_VERIFIED_DIGEST_LEN]) WI_WUR;

/* An entry for `digest` still live at `now`: 0 with its owner (the issuer
 * tag given to put), its key set (new reference) and a deep copy of its
 * claims (new reference); WI_E_NOT_FOUND otherwise (nothing written).  With
 * `expect` not NULL, an entry put with another key set is a miss (and is
 * dropped): for callers that know the key set they verify with. */
int wi_verified_cache_get(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], time_t now,
			  const wi_jwks *expect, const void **ret_owner, wi_jwks **ret_keys, json_t **ret_claims) WI_WUR;

/* For a caller that learns from a hit's owner which key set it should have
 * been (get with `expect` NULL) and finds another: drops the entry for
 * `digest` if it still holds `keys`, and counts the get that found it as a
 * miss instead of a hit. */
void wi_verified_cache_reject(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN],
			      const wi_jwks *keys);

/* Remembers a verified token until `until` (ignored unless > now): takes a
 * reference on `keys` and keeps a deep copy of `claims`.  Out of memory just
 * means the token is not remembered. */
void wi_verified_cache_put(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], const void *owner,
			  wi_jwks *keys, const json_t *claims, time_t now, time_t until);

/* For a caller that verifies with a known key set: *ret_digest is the
 * token's SHA-256 (for wi_verified_cache_remember), and 1 with a private copy
 * of the claims (*ret_claims) when these bytes passed before under `keys`,
 * 0 when they must be verified (always, and nothing hashed, when `c` is
 * NULL); WI_E_TOO_BIG past WI_JWT_MAX_LEN (nothing is hashed), < 0 when they
 * cannot be hashed. */
int wi_verified_cache_lookup(wi_verified_cache *c, const char *token, size_t len, const wi_jwks *keys, time_t now,
			     uint8_t ret_digest[WI_VERIFIED_DIGEST_LEN], json_t **ret_claims) WI_WUR;
/* After a full verification and every check passed: remembers the token
 * (with `owner`, as put) until its `exp`, WI_VERIFIED_CACHE_TTL_MAX from now
 * at most.  Nothing when `c` is NULL. */
void wi_verified_cache_remember(wi_verified_cache *c, const uint8_t digest[WI_VERIFIED_DIGEST_LEN], const void *owner,
				wi_jwks *keys, const json_t *claims, time_t now, int64_t exp);

/* Hits and misses so far (tests, metrics). */
void wi_verified_cache_stats(wi_verified_cache *c, uint64_t *ret_hits, uint64_t *ret_misses);

#endif
