/* core/x509_cache.h — minted X.509-SVIDs shared by every caller of one
 * identity (DESIGN §7): one SVID per (SPIFFE ID, TTL), handed out until a
 * jittered point in the 10 % of its lifetime before half-life, one daemon tick
 * (WI_TICK_SECONDS) early (so a fresh caller never
 * receives an SVID past half-life, and identities minted together spread their
 * rotations), then re-minted.  Misses are minted one at a time, so a crowd of
 * callers of one identity costs one signature, not one each.
 * Thread-safe. */
#ifndef WI_CORE_X509_CACHE_H
#define WI_CORE_X509_CACHE_H

#include <stdint.h>
#include <time.h>

#include "core/ca.h"
#include "core/error.h"
#include "core/svid.h"

typedef struct wi_x509_cache wi_x509_cache;

/* The cache borrows `ca`, which must outlive it. */
int wi_x509_cache_new(wi_ca *ca, wi_x509_cache **ret) WI_WUR;
wi_x509_cache *wi_x509_cache_free(wi_x509_cache *c);

/* A new reference to a current SVID for (spiffe_id, ttl) at time `now`, and
 * (if ret_refresh_at) the time from which the cache will hand out a new one:
 * in the 10 % of its lifetime before half-life minus one tick, jittered per
 * SVID (so the push made at the next tick still lands before half-life). */
int wi_x509_cache_get(wi_x509_cache *c, const char *spiffe_id, int64_t ttl, time_t now,
		      wi_x509_svid **ret, time_t *ret_refresh_at) WI_WUR;
/* Drops SVIDs past their refresh time. */
void wi_x509_cache_prune(wi_x509_cache *c, time_t now);

typedef struct wi_x509_cache_stats {
	uint64_t hits;
	uint64_t minted;
	uint64_t size;
} wi_x509_cache_stats;
void wi_x509_cache_get_stats(wi_x509_cache *c, wi_x509_cache_stats *ret);

#endif
