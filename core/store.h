/* core/store.h — the daemon's durable state: SQLite in <data_dir>/state.db.
 *
 * Crash safety (DESIGN §6): WAL journal, synchronous=FULL, every change in
 * one transaction, so `kill -9` at any moment leaves either the old or the
 * new state and never a torn one.  The file is created 0600.  A database that
 * cannot be opened or fails its integrity check is refused with a clear error
 * (the daemon does not silently start empty: it would forget revocations).
 *
 * Holds today: revocations (kind, value, until).  Later: registration
 * entries.  Thread-safe (one connection, serialised by a mutex; writes are
 * rare and small). */
#ifndef WI_CORE_STORE_H
#define WI_CORE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"

typedef struct wi_store wi_store;

/* Opens (creating and migrating the schema as needed). */
int wi_store_open(const char *data_dir, wi_store **ret) WI_WUR;
wi_store *wi_store_close(wi_store *s);

typedef enum wi_revocation_kind {
	WI_REVOKE_TXN = 1,       /* value: the txn claim */
	WI_REVOKE_ACTOR = 2,     /* value: a SPIFFE ID (actor anywhere in the chain) */
	WI_REVOKE_PRINCIPAL = 3, /* value: "<iss> <sub>" of the human principal */
} wi_revocation_kind;

/* Records a revocation in force until `until` (unix seconds; the longest
 * lifetime of a token it can affect).  Re-revoking extends `until`. */
int wi_store_put_revocation(wi_store *s, wi_revocation_kind kind, const char *value, time_t until) WI_WUR;
/* Calls fn for every revocation with until > now; stops early if fn returns
 * non-zero (returned as is).  fn runs with the store locked: it must not call
 * back into the store. */
int wi_store_each_revocation(wi_store *s, time_t now,
			     int (*fn)(wi_revocation_kind kind, const char *value, time_t until, void *ud),
			     void *ud) WI_WUR;
/* Deletes revocations with until <= now. */
int wi_store_prune_revocations(wi_store *s, time_t now) WI_WUR;

#endif
