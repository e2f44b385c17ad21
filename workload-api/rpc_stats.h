/* workload-api/rpc_stats.h — per-method, per-status call counters, latency
 * histograms and stream gauges of the Workload API (internal to the module;
 * read through wi_wl_server_get_rpc_stats in stats.h).
 *
 * Hot path: fixed arrays of atomics indexed by method and status; no
 * allocation and no lock.  Every call is counted exactly once, with the
 * status the server decided (or CANCELLED when the client or transport ended
 * it first), and timed once: unary calls from arrival to status, streams from
 * arrival to their first message (or to their status when refused). */
#ifndef WI_WORKLOAD_API_RPC_STATS_H
#define WI_WORKLOAD_API_RPC_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "core/hist.h"
#include "workload-api/stats.h"

/* Per call: embedded in wi__call (zeroed with it). */
typedef struct wi__rpc_mark {
	uint64_t start_ns;
	atomic_bool counted; /* status counted */
	atomic_bool timed;   /* latency observed */
} wi__rpc_mark;

/* Per server: embedded in wi_wl_server (zeroed with it). */
typedef struct wi__rpc_stats {
	atomic_uint_fast64_t calls[WI_WL_RPC_METHODS][WI_WL_RPC_CODES];
	wi_hist latency[WI_WL_RPC_METHODS];
	atomic_int_fast64_t streams[WI_WL_RPC_METHODS];
} wi__rpc_stats;

typedef struct wi__call wi__call;

/* The call arrived (its method is known). */
void wi__rpc_begin(wi__call *c);
/* A stream sent its first message. */
void wi__rpc_first_message(wi__call *c);
/* The call's final status; only the first report of a call counts. */
void wi__rpc_end(wi__call *c, grpc_status_code code);
/* A stream of the call's method opened (+1) or closed (-1). */
void wi__rpc_stream_delta(wi__call *c, int delta);

#endif
