/* workload-api/rpc_stats.c — see rpc_stats.h. */
#include "workload-api/rpc_stats.h"

#include "core/error.h"

#include "workload-api/internal.h"

_Static_assert(WI__M_HEALTH_WATCH + 1 == WI_WL_RPC_METHODS, "one metrics row per wi__method");
_Static_assert(GRPC_STATUS_UNAUTHENTICATED + 1 == WI_WL_RPC_CODES, "one metrics column per gRPC status");

static size_t method_index(const wi__call *c)
{
	return (size_t)c->method < WI_WL_RPC_METHODS ? (size_t)c->method : 0;
}

void wi__rpc_begin(wi__call *c)
{
	c->rpc.start_ns = wi_hist_now_ns();
}

static void observe_once(wi__call *c)
{
	if (atomic_exchange_explicit(&c->rpc.timed, true, memory_order_relaxed))
		return;
	wi_hist_observe_since(&c->srv->rpc_stats.latency[method_index(c)], c->rpc.start_ns);
}

void wi__rpc_first_message(wi__call *c)
{
	observe_once(c);
}

void wi__rpc_end(wi__call *c, grpc_status_code code)
{
	if (atomic_exchange_explicit(&c->rpc.counted, true, memory_order_relaxed))
		return;
	size_t k = (unsigned)code < WI_WL_RPC_CODES ? (size_t)code : (size_t)GRPC_STATUS_UNKNOWN;
	atomic_fetch_add_explicit(&c->srv->rpc_stats.calls[method_index(c)][k], 1, memory_order_relaxed);
	observe_once(c);
}

void wi__rpc_stream_delta(wi__call *c, int delta)
{
	atomic_fetch_add_explicit(&c->srv->rpc_stats.streams[method_index(c)], delta, memory_order_relaxed);
}

/* ---- reading (stats.h) ----------------------------------------------------- */

static const char *const method_names[WI_WL_RPC_METHODS] = {
	[WI__M_UNKNOWN] = "unknown",
	[WI__M_FETCH_X509_SVID] = "FetchX509SVID",
	[WI__M_FETCH_X509_BUNDLES] = "FetchX509Bundles",
	[WI__M_FETCH_JWT_SVID] = "FetchJWTSVID",
	[WI__M_FETCH_JWT_BUNDLES] = "FetchJWTBundles",
	[WI__M_VALIDATE_JWT_SVID] = "ValidateJWTSVID",
	[WI__M_FETCH_WIT_SVID] = "FetchWITSVID",
	[WI__M_FETCH_WIT_BUNDLES] = "FetchWITBundles",
	[WI__M_HEALTH_CHECK] = "grpc.health.v1.Health/Check",
	[WI__M_HEALTH_WATCH] = "grpc.health.v1.Health/Watch",
};


const char *wi_wl_rpc_method_name(int method)
{
	return method >= 0 && method < WI_WL_RPC_METHODS ? method_names[method] : "unknown";
}

const char *wi_wl_rpc_code_name(int code)
{
	return wi_grpc_status_name(code);
}

void wi_wl_server_get_rpc_stats(wi_wl_server *s, wi_wl_rpc_stats *ret)
{
	const wi__rpc_stats *r = &s->rpc_stats;
	for (int m = 0; m < WI_WL_RPC_METHODS; m++) {
		for (int k = 0; k < WI_WL_RPC_CODES; k++)
			ret->calls[m][k] = atomic_load_explicit(&r->calls[m][k], memory_order_relaxed);
		wi_hist_read(&r->latency[m], &ret->latency[m]);
		int_fast64_t n = atomic_load_explicit(&r->streams[m], memory_order_relaxed);
		ret->streams_open[m] = n > 0 ? (uint64_t)n : 0;
	}
}
