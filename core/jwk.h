/* core/jwk.h — public keys as JWKs and key sets (RFC 7517, RFC 7518 §6).
 *
 * Supported: EC P-256/P-384/P-521 ("kty":"EC"), RSA ≥ 2048 bits ("kty":"RSA"),
 * Ed25519 ("kty":"OKP","crv":"Ed25519").  Private members ("d", "p", ...) are
 * never emitted, and a JWK carrying them is refused when parsed as a public key.
 *
 * A wi_jwks is an immutable, reference-counted set of (kid, public key) — the
 * JWT bundle of a trust domain, or an issuer's published keys. */
#ifndef WI_CORE_JWK_H
#define WI_CORE_JWK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/error.h"

/* A JWK object for a public key: kty, kid, and the key members (no "use",
 * as SPIRE's FetchJWTBundles output).  `pub` may hold a private key; only the
 * public half is written. */
int wi_jwk_from_pkey(EVP_PKEY *pub, const char *kid, json_t **ret) WI_WUR;
/* Parses one JWK into a public key (checks curve points, RSA size ≥ 2048,
 * e odd and > 1).  WI_E_UNIMPLEMENTED for a kty, curve or RSA size we do not
 * support, WI_E_INVAL when private members are present, WI_E_PARSE when
 * malformed. */
int wi_jwk_to_pkey(const json_t *jwk, EVP_PKEY **ret) WI_WUR;
/* RFC 7638 thumbprint (SHA-256, base64url): a stable `kid` for a key. */
int wi_jwk_thumbprint(EVP_PKEY *pub, char **ret_kid) WI_WUR;

typedef struct wi_jwks wi_jwks;

int wi_jwks_new(wi_jwks **ret) WI_WUR;
/* Adds a key (the set takes its own reference on `pub`); a duplicate kid is
 * WI_E_EXISTS.  Only before the set is shared. */
int wi_jwks_add(wi_jwks *s, const char *kid, EVP_PKEY *pub) WI_WUR;
/* Parses a JWK Set document ({"keys":[...]}, at most `max_len` bytes, depth
 * and key count bounded).  Keys without kid, or of unsupported kty, or with a
 * "use" other than "sig"/"jwt-svid", are skipped; a malformed document is
 * WI_E_PARSE. */
int wi_jwks_parse(const char *json, size_t len, size_t max_len, wi_jwks **ret) WI_WUR;
/* Serialises as {"keys":[...]} (compact); *ret malloc'd. */
int wi_jwks_to_json(const wi_jwks *s, char **ret) WI_WUR;
/* The key with this kid (borrowed), or NULL. */
EVP_PKEY *wi_jwks_find(const wi_jwks *s, const char *kid);
size_t wi_jwks_count(const wi_jwks *s);
wi_jwks *wi_jwks_ref(wi_jwks *s);
/* Accepts NULL; returns NULL. */
wi_jwks *wi_jwks_unref(wi_jwks *s);
/* For _cleanup_(wi_jwks_unrefp). */
static inline void wi_jwks_unrefp(wi_jwks **p)
{
	wi_jwks_unref(*p);
}

#endif
