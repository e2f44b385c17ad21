/* core/ratelimit.h — token-bucket rate limits keyed by a string (a caller's
 * SPIFFE ID, or "uid:<n>" for a caller without one).
 *
 * Each key has a bucket of `burst` tokens refilled at `rate` tokens per second
 * on the monotonic clock; a request takes one token or is refused.  Memory is
 * bounded: at most `slots` buckets exist; a new key evicts the least recently
 * used *idle* bucket (one that has refilled to `burst`, so forgetting it loses
 * nothing), or, when none of the oldest few is idle, the least recently used
 * bucket (that key then starts again with a full bucket).
 *
 * WI_RATELIMIT_CONTENDED makes the limiter work-conserving: a key over its
 * budget is refused only while another key has asked within the last
 * WI_RATELIMIT_CONTENTION_MS, so a lone caller (a benchmark, a batch job on
 * an otherwise idle node) is never slowed, and a flooding caller is throttled
 * as soon as anybody else needs service.  Without the flag every key is held
 * to its budget.
 *
 * Thread-safe: every call may come from any thread. */
#ifndef WI_CORE_RATELIMIT_H
#define WI_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct wi_ratelimit wi_ratelimit;

enum {
	WI_RATELIMIT_STRICT = 0,
	WI_RATELIMIT_CONTENDED = 1 << 0,
};

/* rate > 0 (tokens per second), burst >= 1, 1 <= slots <= 1<<20.
 * WI_E_INVAL for anything else, WI_E_NOMEM. */
int wi_ratelimit_new(double rate, double burst, size_t slots, unsigned flags, wi_ratelimit **ret) WI_WUR;
/* Accepts NULL; returns NULL. */
wi_ratelimit *wi_ratelimit_free(wi_ratelimit *rl);
/* Takes one token from `key`'s bucket: true when the request may proceed.
 * Out of memory refuses (false).  `key` is copied when first seen. */
bool wi_ratelimit_take(wi_ratelimit *rl, const char *key);
/* Buckets currently held (at most `slots`). */
size_t wi_ratelimit_count(wi_ratelimit *rl);

/* wi_ratelimit_take at an explicit monotonic time in nanoseconds; for tests,
 * which inject the clock instead of sleeping.  Times must not go backwards
 * by more than a bucket's last use (earlier times are treated as equal). */
bool wi__ratelimit_take_at(wi_ratelimit *rl, const char *key, uint64_t now_ns);
/* True if `key` currently has a bucket (tests: eviction). */
bool wi__ratelimit_has(wi_ratelimit *rl, const char *key);

#endif
