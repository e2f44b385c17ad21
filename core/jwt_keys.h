/* core/jwt_keys.h — a rotating set of JWT signing keys (JWT-SVIDs, Txn-Tokens).
 *
 * Keys are EC P-256 by default (RSA-2048/3072 selectable for relying parties
 * that need RS256), persisted in <dir>/jwt/ as signing.key.pem (the first key,
 * seq 0) and signing.<seq>.key.pem (0600, atomic), with the rotation manifest
 * keys.json (core/rotation.h).  A kid is the RFC 7638 thumbprint, so
 * it is stable across restarts.
 *
 * Rotation (rotate_every > 0): a successor key is generated and published in
 * the JWKS at least `token_ttl` before it starts signing, and a replaced key
 * stays published for token_ttl + WI_JWT_LEEWAY_SECONDS after it stopped, so
 * a relying party holding the current bundle verifies every live token.
 *
 * Threading: wi_jwt_keys_get may be called from any thread; it returns an
 * immutable, reference-counted snapshot (the active signer, its kid, the
 * published JWKS) that stays valid however the set rotates.  wi_jwt_keys_tick
 * (rotation) runs on one thread, the owner's.  The borrowed-pointer getters
 * (wi_jwt_keys_signer, _kid, _jwks, _jwks_json) read the current snapshot
 * and are valid only until the next tick: for single-threaded owners (tests,
 * the never-rotating development issuer, start-up logging). */
#ifndef WI_CORE_JWT_KEYS_H
#define WI_CORE_JWT_KEYS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"
#include "core/jwk.h"
#include "core/signer.h"

typedef enum wi_jwt_key_type {
	WI_JWT_KEY_EC_P256 = 0,
	WI_JWT_KEY_RSA_2048 = 1,
	WI_JWT_KEY_RSA_3072 = 2,
} wi_jwt_key_type;

typedef struct wi_jwt_keys wi_jwt_keys;
typedef struct wi_jwt_keyset wi_jwt_keyset;

typedef struct wi_jwt_keys_options {
	const char *dir;      /* keys go to <dir>/jwt/ (created 0700) */
	wi_jwt_key_type type;
	int64_t rotate_every; /* seconds between key changes; 0 = never */
	int64_t token_ttl;    /* the longest lifetime of a token these keys sign */
} wi_jwt_keys_options;

/* Loads or generates; the first key ever is active at once.  A persisted key
 * of another type than asked is replaced at once (a new kid).  Orphan key
 * files (a crash between a key write and the manifest) are removed. */
int wi_jwt_keys_open_rotating(const wi_jwt_keys_options *opts, time_t now, wi_jwt_keys **ret) WI_WUR;
/* A never-rotating set in `dir`. */
int wi_jwt_keys_open(const char *dir, wi_jwt_key_type type, wi_jwt_keys **ret) WI_WUR;
wi_jwt_keys *wi_jwt_keys_free(wi_jwt_keys *k);

/* Prepares, activates and retires keys due at `now`; *ret_changed (may be
 * NULL) tells whether the snapshot changed (new JWKS or new active key).  On
 * error (e.g. a read-only disk) the current keys stay in use; retried at the
 * next tick. */
int wi_jwt_keys_tick(wi_jwt_keys *k, time_t now, bool *ret_changed) WI_WUR;
/* Key changes so far (prepared, activated, retired), for metrics. */
uint64_t wi_jwt_keys_rotation_events(wi_jwt_keys *k);

/* The current snapshot, referenced (never NULL after a successful open). */
wi_jwt_keyset *wi_jwt_keys_get(wi_jwt_keys *k);
wi_jwt_keyset *wi_jwt_keyset_ref(wi_jwt_keyset *ks);
wi_jwt_keyset *wi_jwt_keyset_unref(wi_jwt_keyset *ks);
static inline void wi_jwt_keyset_unrefp(wi_jwt_keyset **p)
{
	wi_jwt_keyset_unref(*p);
}
/* Owned by the snapshot. */
wi_signer *wi_jwt_keyset_signer(const wi_jwt_keyset *ks);
const char *wi_jwt_keyset_kid(const wi_jwt_keyset *ks);
wi_jwks *wi_jwt_keyset_jwks(const wi_jwt_keyset *ks);
const char *wi_jwt_keyset_jwks_json(const wi_jwt_keyset *ks);
/* Increases whenever the JWKS document changes (starts at 1). */
uint64_t wi_jwt_keyset_generation(const wi_jwt_keyset *ks);
/* When the active key started signing, and when its successor will (0: none). */
time_t wi_jwt_keyset_active_since(const wi_jwt_keyset *ks);
time_t wi_jwt_keyset_next_activation(const wi_jwt_keyset *ks);

/* Borrowed from the current snapshot; valid until the next tick (above). */
wi_signer *wi_jwt_keys_signer(const wi_jwt_keys *k);
const char *wi_jwt_keys_kid(const wi_jwt_keys *k);
wi_jwks *wi_jwt_keys_jwks(const wi_jwt_keys *k);
const char *wi_jwt_keys_jwks_json(const wi_jwt_keys *k);

#endif
