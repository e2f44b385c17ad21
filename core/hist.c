/* core/hist.c — see hist.h. */
#include "core/hist.h"

#include <time.h>

static const uint64_t bounds_ns[WI_HIST_BUCKETS] = {
	100000ull,    250000ull,    500000ull,    1000000ull,   2500000ull,   5000000ull,   10000000ull,
	25000000ull,  50000000ull,  100000000ull, 250000000ull, 500000000ull, 1000000000ull,
};
static const char *const labels[WI_HIST_BUCKETS + 1] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
	"0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",     "+Inf",
};

double wi_hist_bound_seconds(int i)
{
	return i >= 0 && i < WI_HIST_BUCKETS ? (double)bounds_ns[i] / 1e9 : 0.0;
}

const char *wi_hist_bound_label(int i)
{
	return i >= 0 && i <= WI_HIST_BUCKETS ? labels[i] : "+Inf";
}

uint64_t wi_hist_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void wi_hist_observe_ns(wi_hist *h, uint64_t ns)
{
	int i = 0;
	while (i < WI_HIST_BUCKETS && ns > bounds_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
}

void wi_hist_observe_since(wi_hist *h, uint64_t start_ns)
{
	uint64_t now = wi_hist_now_ns();
	wi_hist_observe_ns(h, now > start_ns ? now - start_ns : 0);
}

void wi_hist_read(const wi_hist *h, wi_hist_snapshot *ret)
{
	uint64_t acc = 0;
	for (int i = 0; i <= WI_HIST_BUCKETS; i++) {
		acc += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		ret->cumulative[i] = acc;
	}
	ret->count = acc;
	ret->sum_seconds = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}
