/* workload-api/stats.c — see stats.h.  Reads only thread-safe accessors: the
 * caches' own counters and a referenced registry snapshot. */
#include "workload-api/stats.h"

#include "workload-api/internal.h"

void wi_wl_server_get_cache_stats(wi_wl_server *s, wi_wl_cache_stats *ret)
{
	wi_x509_cache_stats xs = {0};
	wi_jwt_cache_stats js = {0};
	wi_x509_cache_get_stats(s->x509_cache, &xs);
	wi_jwt_cache_get_stats(s->jwt_cache, &js);
	uint64_t vh = 0, vm = 0;
	wi_verified_cache_stats(s->validated, &vh, &vm);
	wi_registry *reg = wi__server_registry(s);
	*ret = (wi_wl_cache_stats){
		.x509_minted = xs.minted,
		.x509_hits = xs.hits,
		.jwt_hits = js.hits,
		.jwt_misses = js.misses,
		.validation_hits = vh,
		.validation_misses = vm,
		.entries = reg ? wi_registry_count(reg) : 0,
	};
	wi_registry_unref(reg);
}
