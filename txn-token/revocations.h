/* txn-token/revocations.h — the kill switch: an in-memory index of revoked
 * runs (by txn), actors (SPIFFE IDs) and principals, written through to the
 * state store so revocations survive restarts.
 *
 * Lookups are lock-free for readers in spirit (a read-write lock; writes are
 * rare) and O(1) per key.  A revocation takes effect for every later check the
 * moment wi_revocations_add returns (persisted first, then indexed).
 * Thread-safe. */
#ifndef WI_TXN_TOKEN_REVOCATIONS_H
#define WI_TXN_TOKEN_REVOCATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/error.h"
#include "core/store.h"

typedef struct wi_revocations wi_revocations;

/* Loads every revocation in force from the store (which it borrows). */
int wi_revocations_open(wi_store *store, time_t now, wi_revocations **ret) WI_WUR;
wi_revocations *wi_revocations_free(wi_revocations *r);

/* Revokes; persisted before it returns 0. */
int wi_revocations_add(wi_revocations *r, wi_revocation_kind kind, const char *value, time_t until) WI_WUR;
/* Revokes n values of one kind at once (a dead agent's runs): one store
 * transaction, so one fsync; all of them persisted and in force when it
 * returns 0, none on error.  values[i] is revoked until untils[i]. */
int wi_revocations_add_many(wi_revocations *r, wi_revocation_kind kind, const char *const *values,
			    const time_t *untils, size_t n) WI_WUR;

/* The same, for a kill switch that must not wait for the disk (a dead agent's
 * runs, which no caller would retry): where the store refuses the batch, the
 * values are in force anyway, in memory only, *ret_durable is false and
 * wi_error_detail() gives the store's reason.  wi_revocations_persist writes
 * them later.  Errors other than the store's leave nothing in force. */
int wi_revocations_add_many_now(wi_revocations *r, wi_revocation_kind kind, const char *const *values,
				const time_t *untils, size_t n, bool *ret_durable) WI_WUR;
/* Writes every revocation in force only in memory to the store (one
 * transaction per kind); *ret_left (may be NULL) is how many are still not
 * durable: 0 on success.  Cheap when there are none (the daemon's tick). */
int wi_revocations_persist(wi_revocations *r, time_t now, size_t *ret_left) WI_WUR;
/* How many revocations in force are not durable yet.  Never waits for a
 * writer (one may be in the store's fsync). */
size_t wi_revocations_unpersisted(wi_revocations *r);

/* True when a token with this txn, principal ("iss sub") and actor chain
 * (SPIFFE IDs, any order) is revoked at `now`. */
bool wi_revocations_is_revoked(wi_revocations *r, const char *txn, const char *principal,
			       const char *const *actors, size_t n_actors, time_t now);

/* Drops expired entries from memory and store. */
int wi_revocations_prune(wi_revocations *r, time_t now) WI_WUR;
size_t wi_revocations_count(wi_revocations *r);

#endif
