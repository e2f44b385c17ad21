/* core/entry.h — one registration entry as data: parsed from its JSON object,
 * identified, serialised for the state store and the admin API, and added to a
 * registry snapshot (core/registry.h).
 *
 * The one parser of an entry object, shared by the config file (`entries[]`),
 * the admin API (`POST /entries`, `POST /entries/import`) and what the store
 * gives back:
 *   {"spiffe_id": ID or template, "selectors": ["kind:value", ...] (1..64),
 *    "hint": "...", "x509_svid_ttl": duration, "txn": {core/txn_policy.h}}
 * Unknown keys, wrong types and bad values are refused.  Validation is the
 * registry's own (the entry is test-added to a scratch registry of the trust
 * domain), so an entry that parses is one the registry accepts.  The selector
 * value "@daemon" of unix:uid/gid/user/group is replaced by the daemon's own
 * value at parse time: a stored entry holds concrete selectors.
 *
 * Identity: a config entry's id is the first 128 bits (32 lowercase hex) of
 * SHA-256(spiffe_id "\n" selector "\n" ...) over the sorted selectors, so the
 * same entry keeps its id across reloads; an API entry gets 128 random bits.
 * Two entries with the same SPIFFE ID and selector set are duplicates.
 *
 * A wi_entry is immutable once built; not reference counted. */
#ifndef WI_CORE_ENTRY_H
#define WI_CORE_ENTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/error.h"
#include "core/registry.h"

#define WI_ENTRY_ID_LEN 32 /* hex characters */

typedef enum wi_entry_source {
	WI_ENTRY_SOURCE_CONFIG = 1, /* from the config file; replaced on every load */
	WI_ENTRY_SOURCE_API = 2,    /* created on the admin socket; kept until deleted */
} wi_entry_source;

typedef struct wi_entry wi_entry;

/* Where a parse failed.  Filled only on failure (an explicit error output,
 * not a result): `key` is the offending member name (a copy, truncated; for
 * the config's line lookup), "" when the failure was not the input's fault
 * (out of memory); `message` is relative to the entry ("selectors[0] \"x\":
 * ...") and never contains secrets.  Initialise with {0}. */
typedef struct wi_entry_error {
	char key[128];
	char message[384];
} wi_entry_error;

/* Parses one entry object for `trust_domain`.  The new entry has the given
 * source, an id from wi_entry_id rules (content hash for CONFIG, random for
 * API) and `created`.  Errors: WI_E_CONFIG with `err` filled (bad input),
 * WI_E_NOMEM, WI_E_CRYPTO (no randomness). */
int wi_entry_from_json(const json_t *obj, const char *trust_domain, wi_entry_source source, int64_t created,
		       wi_entry **ret, wi_entry_error *err) WI_WUR;

/* Rebuilds an entry the store returned: `body` is what wi_entry_body gave
 * when it was stored.  Re-validated against `trust_domain` (a file edited by
 * hand, or a trust domain changed since, is caught here).  WI_E_PARSE or
 * WI_E_CONFIG with the reason. */
int wi_entry_from_stored(const char *id, const char *body, wi_entry_source source, int64_t created,
			 const char *trust_domain, wi_entry **ret) WI_WUR;

wi_entry *wi_entry_free(wi_entry *e);

const char *wi_entry_id(const wi_entry *e);
const char *wi_entry_spiffe_id(const wi_entry *e);
wi_entry_source wi_entry_source_of(const wi_entry *e);
int64_t wi_entry_created(const wi_entry *e);
/* The canonical entry object as compact JSON text (no id, source, created):
 * what the store keeps.  Owned by the entry. */
const char *wi_entry_body(const wi_entry *e);
/* The sorted selectors as a compact JSON array text: the uniqueness key with
 * the SPIFFE ID.  Owned by the entry. */
const char *wi_entry_selectors_key(const wi_entry *e);
/* The entry as the admin API shows it: the body plus "id", "source"
 * ("config"|"api") and "created" (unix seconds).  New reference; NULL when
 * out of memory. */
json_t *wi_entry_to_json(const wi_entry *e);
/* "config" or "api". */
const char *wi_entry_source_name(wi_entry_source s);
/* True when `id` is 32 lowercase hex characters. */
bool wi_entry_id_valid(const char *id);

/* Appends the entry (and its txn policy) to `r`.  Errors as wi_registry_add. */
int wi_entry_add_to_registry(const wi_entry *e, wi_registry *r) WI_WUR;

/* Expands "kind:@daemon" (unix:uid, unix:gid, unix:user, unix:group) into the
 * daemon's own value in buf; other selectors are returned as is (*ret points
 * at `sel`).  WI_E_SELECTOR for "@daemon" on another kind. */
int wi_entry_expand_selector(const char *sel, char *buf, size_t cap, const char **ret) WI_WUR;

static inline void wi_entry_freep(wi_entry **e)
{
	wi_entry_free(*e);
}

#endif
