/* core/hist.h — a fixed-bucket latency histogram for metrics, safe to update
 * from any thread on a hot path: no allocation, no lock, relaxed atomics only.
 *
 * Embed a wi_hist in a zero-initialised (calloc'd or static) object; nothing
 * needs freeing.  Buckets are fixed for every histogram of the daemon (100 µs
 * to 1 s, see WI_HIST_BOUNDS_NS) so the exposition is uniform.  A reader gets
 * a snapshot whose buckets are cumulative and whose count is the +Inf bucket
 * (Prometheus' histogram contract); the sum may trail the buckets slightly
 * while observations race, never the other way round in count. */
#ifndef WI_CORE_HIST_H
#define WI_CORE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds, in seconds: 0.0001 … 1 (13 finite buckets, then +Inf). */
#define WI_HIST_BUCKETS 13

typedef struct wi_hist {
	atomic_uint_fast64_t bucket[WI_HIST_BUCKETS + 1]; /* per bucket, not cumulative; last = above 1 s */
	atomic_uint_fast64_t sum_ns;
} wi_hist;

typedef struct wi_hist_snapshot {
	uint64_t cumulative[WI_HIST_BUCKETS + 1]; /* [i] = observations <= bound i; last = +Inf = count */
	uint64_t count;
	double sum_seconds;
} wi_hist_snapshot;

/* The finite upper bound of bucket i (0 <= i < WI_HIST_BUCKETS), seconds. */
double wi_hist_bound_seconds(int i);
/* The label text of bound i ("0.0001", ..., "1"); "+Inf" for WI_HIST_BUCKETS. */
const char *wi_hist_bound_label(int i);
/* Monotonic clock in nanoseconds (for the start of a measured interval). */
uint64_t wi_hist_now_ns(void);
/* Records one duration in nanoseconds. */
void wi_hist_observe_ns(wi_hist *h, uint64_t ns);
/* Records the time elapsed since `start_ns` (from wi_hist_now_ns). */
void wi_hist_observe_since(wi_hist *h, uint64_t start_ns);
/* Reads the histogram; any thread. */
void wi_hist_read(const wi_hist *h, wi_hist_snapshot *ret);

#endif
