/* core/jwt_cache.h — signed JWT-SVIDs kept for reuse (DESIGN §7).
 *
 * Keyed by (signing kid, SPIFFE ID, sorted de-duplicated audience set); a
 * token is handed out again until half its lifetime has passed, so repeated
 * fetches cost no signature and return byte-identical tokens.  Bounded: the
 * least recently used entry goes when full.  Cleared when the registry changes
 * (an identity a caller no longer holds must not linger).  Thread-safe. */
#ifndef WI_CORE_JWT_CACHE_H
#define WI_CORE_JWT_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"

typedef struct wi_jwt_cache wi_jwt_cache;

int wi_jwt_cache_new(size_t max_entries, wi_jwt_cache **ret) WI_WUR;
wi_jwt_cache *wi_jwt_cache_free(wi_jwt_cache *c);

/* Builds the cache key; audiences are sorted and de-duplicated, and each
 * part is length-prefixed so no two inputs share a key.  *ret malloc'd. */
int wi_jwt_cache_key(const char *kid, const char *spiffe_id, const char *const *aud, size_t n_aud,
		     char **ret) WI_WUR;
/* A copy of the cached token if `now` is before its refresh time;
 * WI_E_NOT_FOUND otherwise (not recorded as an error detail).  The copy is a
 * bearer token: the caller wipes it (wi_secret_free). */
int wi_jwt_cache_get(wi_jwt_cache *c, const char *key, time_t now, char **ret_token) WI_WUR;
/* Stores a copy of a token until `refresh_at` (replacing any previous one);
 * the cache wipes its copy when it evicts, replaces or clears it. */
int wi_jwt_cache_put(wi_jwt_cache *c, const char *key, const char *token, time_t refresh_at) WI_WUR;
void wi_jwt_cache_clear(wi_jwt_cache *c);

typedef struct wi_jwt_cache_stats {
	uint64_t hits, misses, evictions, size;
} wi_jwt_cache_stats;
void wi_jwt_cache_get_stats(wi_jwt_cache *c, wi_jwt_cache_stats *ret);

#endif
