/* txn-token/issuers.h — verifying users' tokens (the subject_token of a
 * delegated exchange) against the trusted issuers of the config.
 *
 * RFC 8725 discipline: the issuer is chosen by the token's `iss` among the
 * configured ones (an unknown iss is refused before any key is touched), and
 * then only that issuer's keys and algorithm allow-list apply; `jku`/`x5u`
 * are never followed; `typ` is enforced when the issuer entry names one; `aud`
 * must contain one of the issuer entry's audiences; exp/nbf/iat with leeway.
 *
 * Keys come from a JWKS file (read at start and on reload) or a JWKS URL
 * fetched with libcurl on the calling thread — never the event loop — with
 * connect/total timeouts, a size cap, no redirects, https (or loopback http);
 * cached for the response's Cache-Control max-age (bounded), re-fetched at most
 * once per WI_JWKS_REFETCH_MIN_SECONDS on an unknown kid, and a failed fetch is
 * remembered for as long, so a dead IdP costs one timeout, not one per request.
 *
 * A token that verified is remembered by its SHA-256 (core/verified_cache.h)
 * for at most WI_VERIFIED_CACHE_TTL_MAX seconds and never past its exp: the same
 * bytes presented again under the same key set object skip the signature
 * check, while typ, aud, iss and sub were settled by the bytes and the times
 * are checked again.  A re-fetched or reloaded JWKS starts afresh.
 * Thread-safe. */
#ifndef WI_TXN_TOKEN_ISSUERS_H
#define WI_TXN_TOKEN_ISSUERS_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/jwk.h"

typedef struct wi_issuers wi_issuers;

/* Builds from the config (which must outlive the set); reads JWKS files. */
int wi_issuers_new(const wi_config *c, wi_issuers **ret) WI_WUR;
wi_issuers *wi_issuers_free(wi_issuers *s);
/* Adds an issuer whose keys are given (the built-in development issuer);
 * `cfg` must outlive the set; the set takes a reference on `keys`.  Only
 * before the set is shared between threads. */
int wi_issuers_add_static(wi_issuers *s, const wi_issuer_config *cfg, wi_jwks *keys) WI_WUR;

/* Daemon stop: JWKS fetches still running `grace_ms` from now are aborted,
 * and none start after that, so a slow IdP cannot hold up shutdown while a
 * request that can still finish in time does.  Thread-safe. */
void wi_issuers_abort(wi_issuers *s, unsigned grace_ms);

/* Verifies `token`.  On success: the issuer entry, the verified claims
 * (new reference) and, when ret_digest is not NULL, the SHA-256 of the
 * token's bytes (what the verified cache keys on; a caller that names the
 * token by a hash uses it rather than hashing again).  Failures: WI_E_INVAL/WI_E_PARSE/WI_E_CRYPTO/WI_E_EXPIRED
 * (the token is bad: OAuth invalid_request) or WI_E_UNAVAILABLE (the
 * issuer's keys could not be fetched: temporarily_unavailable), with a reason
 * that holds no token material. */
int wi_issuers_verify(wi_issuers *s, const char *token, time_t now, const wi_issuer_config **ret_issuer,
		      json_t **ret_claims, uint8_t ret_digest[WI_SHA256_LEN]) WI_WUR;

/* Subject tokens answered from the verified cache, and those verified in full. */
void wi_issuers_cache_stats(const wi_issuers *s, uint64_t *ret_hits, uint64_t *ret_misses);

#endif
