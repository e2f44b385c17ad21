/* core/store.h — the daemon's durable state: SQLite in <data_dir>/state.db.
 *
 * Crash safety (DESIGN §6): WAL journal, synchronous=FULL, every change in
 * one transaction, so `kill -9` at any moment leaves either the old or the
 * new state and never a torn one.  The file is created 0600.  A database that
 * cannot be opened or fails its integrity check is refused with a clear error
 * (the daemon does not silently start empty: it would forget revocations).
 *
 * Holds revocations (kind, value, until) and registration entries (id,
 * canonical entry JSON, source config|api, created; see core/entry.h).  Older
 * schemas (v1: revocations only; v2: revocations keyed by value) are migrated
 * to v3 (revocations as an append-only log) in place, keeping their rows.
 * Thread-safe (one connection, serialised by a mutex; writes are
 * rare and small). */
#ifndef WI_CORE_STORE_H
#define WI_CORE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/entry.h"
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
 * lifetime of a token it can affect).  A put appends a row, so a batch costs
 * a few page writes however many rows are held.  Re-revoking a value adds a
 * row beside the earlier one: the value is in force until the greatest
 * `until` among its rows (an earlier one never shortens it). */
int wi_store_put_revocation(wi_store *s, wi_revocation_kind kind, const char *value, time_t until) WI_WUR;
/* Records n revocations of one kind in one transaction (one fsync): all of
 * them or, on any error, none.  values[i] is in force until untils[i]. */
int wi_store_put_revocations(wi_store *s, wi_revocation_kind kind, const char *const *values, const time_t *untils,
			     size_t n) WI_WUR;
/* Calls fn for every row with until > now (a re-revoked value comes once per
 * row; the caller keeps the greatest until); stops early if fn returns
 * non-zero (returned as is).  fn runs with the store locked: it must not call
 * back into the store. */
int wi_store_each_revocation(wi_store *s, time_t now,
			     int (*fn)(wi_revocation_kind kind, const char *value, time_t until, void *ud),
			     void *ud) WI_WUR;
/* Deletes the rows with until <= now. */
int wi_store_prune_revocations(wi_store *s, time_t now) WI_WUR;

/* --- registration entries --------------------------------------------------
 * Served order: config entries in file order, then API entries in creation
 * order.  An entry is unique by id and by (SPIFFE ID, selector set). */

/* Adds entries, all or none, in one transaction.  WI_E_EXISTS when an id or
 * a (SPIFFE ID, selectors) pair is already stored (or repeats within the
 * batch), WI_E_TOO_BIG past WI_ENTRIES_MAX. */
int wi_store_add_entries(wi_store *s, wi_entry *const *entries, size_t n) WI_WUR;
/* Deletes the entry `id` if it has source `only`.  WI_E_NOT_FOUND when there
 * is none, WI_E_PERMISSION when it belongs to the other source. */
int wi_store_delete_entry(wi_store *s, const char *id, wi_entry_source only) WI_WUR;

/* One stored row; strings valid during the callback only. */
typedef struct wi_store_entry_row {
	const char *id;
	const char *body; /* for wi_entry_from_stored */
	wi_entry_source source;
	int64_t created;
} wi_store_entry_row;
typedef int (*wi_store_entry_fn)(const wi_store_entry_row *row, void *ud);
/* Calls fn for every entry in served order, or only for entry `id` when it
 * is not NULL (WI_E_NOT_FOUND when absent).  Stops early if fn returns
 * non-zero (returned as is).  fn runs with the store locked: it must not
 * call back into the store. */
int wi_store_each_entry(wi_store *s, const char *id, wi_store_entry_fn fn, void *ud) WI_WUR;

/* Makes the config-sourced entries exactly `entries` (source CONFIG, in file
 * order), in one transaction: new ones added, kept ones updated (their
 * `created` kept), ones no longer listed deleted; an API entry with the same
 * SPIFFE ID and selectors as a listed one is replaced by it.  API entries
 * are otherwise untouched.  *ret_removed (may be NULL): rows that went away. */
int wi_store_sync_config_entries(wi_store *s, wi_entry *const *entries, size_t n, size_t *ret_removed) WI_WUR;

#endif
