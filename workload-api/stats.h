/* workload-api/stats.h — counters of the server's caches and the size of its
 * current registry snapshot, for the daemon's metrics and status endpoints.
 * Kept apart from server.h so that metrics need no edit of the server. */
#ifndef WI_WORKLOAD_API_STATS_H
#define WI_WORKLOAD_API_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/hist.h"
#include "workload-api/server.h"

typedef struct wi_wl_cache_stats {
	uint64_t x509_minted; /* X.509-SVIDs signed by the CA for this server */
	uint64_t x509_hits;   /* served from the shared per-identity cache */
	uint64_t jwt_hits;
	uint64_t jwt_misses;
	uint64_t validation_hits;   /* ValidateJWTSVID answered without a signature check */
	uint64_t validation_misses; /* ValidateJWTSVID that verified the signature */
	size_t entries; /* registration entries in the current snapshot */
} wi_wl_cache_stats;

/* Thread-safe: any thread, while the server is not yet freed. */
void wi_wl_server_get_cache_stats(wi_wl_server *s, wi_wl_cache_stats *ret);

/* Calls by method and final gRPC status, latency per method (unary: arrival
 * to status; streams: arrival to first message, or to status if refused), and
 * open streams per method.  Rows are methods 0..WI_WL_RPC_METHODS-1 (named by
 * wi_wl_rpc_method_name, row 0 = "unknown"), columns gRPC status codes (named
 * by wi_wl_rpc_code_name: "OK", "PERMISSION_DENIED", ...). */
#define WI_WL_RPC_METHODS 10
#define WI_WL_RPC_CODES 17
typedef struct wi_wl_rpc_stats {
	uint64_t calls[WI_WL_RPC_METHODS][WI_WL_RPC_CODES];
	wi_hist_snapshot latency[WI_WL_RPC_METHODS];
	uint64_t streams_open[WI_WL_RPC_METHODS];
} wi_wl_rpc_stats;

/* Static names; out-of-range values give "unknown" / "UNKNOWN". */
const char *wi_wl_rpc_method_name(int method);
const char *wi_wl_rpc_code_name(int code);
/* Thread-safe, lock-free: any thread, while the server is not yet freed.
 * The struct is large (a few KiB): allocate it or keep it static. */
void wi_wl_server_get_rpc_stats(wi_wl_server *s, wi_wl_rpc_stats *ret);

#endif
