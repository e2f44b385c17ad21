/* workload-api/stats.h — counters of the server's caches and the size of its
 * current registry snapshot, for the daemon's metrics and status endpoints.
 * Kept apart from server.h so that metrics need no edit of the server. */
#ifndef WI_WORKLOAD_API_STATS_H
#define WI_WORKLOAD_API_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "workload-api/server.h"

typedef struct wi_wl_cache_stats {
	uint64_t x509_minted; /* X.509-SVIDs signed by the CA for this server */
	uint64_t x509_hits;   /* served from the shared per-identity cache */
	uint64_t jwt_hits;
	uint64_t jwt_misses;
	size_t entries; /* registration entries in the current snapshot */
} wi_wl_cache_stats;

/* Thread-safe: any thread, while the server is not yet freed. */
void wi_wl_server_get_cache_stats(wi_wl_server *s, wi_wl_cache_stats *ret);

#endif
