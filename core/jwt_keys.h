/* core/jwt_keys.h — the trust domain's JWT signing keys.
 *
 * One active key (EC P-256 by default; RSA-2048/3072 selectable for relying
 * parties that need RS256), persisted as <data_dir>/jwt/signing.key.pem (0600,
 * atomic) and reused on restart; its kid is the RFC 7638 thumbprint, so it is
 * stable across restarts.  The JWT bundle (JWKS) lists the active key (and, in
 * future, prepared and retiring ones, for rotation).
 * Thread-safe after open. */
#ifndef WI_CORE_JWT_KEYS_H
#define WI_CORE_JWT_KEYS_H

#include "core/error.h"
#include "core/jwk.h"
#include "core/signer.h"

typedef enum wi_jwt_key_type {
	WI_JWT_KEY_EC_P256 = 0,
	WI_JWT_KEY_RSA_2048 = 1,
	WI_JWT_KEY_RSA_3072 = 2,
} wi_jwt_key_type;

typedef struct wi_jwt_keys wi_jwt_keys;

/* Loads or generates.  A persisted key of another type than asked is replaced
 * (and the change is visible as a new kid). */
int wi_jwt_keys_open(const char *data_dir, wi_jwt_key_type type, wi_jwt_keys **ret) WI_WUR;
wi_jwt_keys *wi_jwt_keys_free(wi_jwt_keys *k);

/* The active signer and its kid (both owned by k). */
wi_signer *wi_jwt_keys_signer(const wi_jwt_keys *k);
const char *wi_jwt_keys_kid(const wi_jwt_keys *k);
/* The public key set (owned by k; take a ref to keep it). */
wi_jwks *wi_jwt_keys_jwks(const wi_jwt_keys *k);
/* The JWKS document as FetchJWTBundles sends it (owned by k). */
const char *wi_jwt_keys_jwks_json(const wi_jwt_keys *k);

#endif
