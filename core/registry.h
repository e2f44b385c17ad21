/* core/registry.h — registration entries and matching callers to identities.
 *
 * An entry is a SPIFFE ID (or ID template), a set of selectors that must ALL
 * be among the caller's attested selectors, an optional hint and an optional
 * X.509-SVID TTL.  A template names attested values in braces:
 *   spiffe://example.org/uid/{unix:uid}
 * Placeholders may appear only in the path, only for single-valued selector
 * kinds, and a substituted value must consist of SPIFFE path characters
 * [A-Za-z0-9._-] (so a value can never add or remove path segments); an entry
 * whose substitution fails simply does not apply to that caller.
 *
 * A registry is an immutable, reference-counted snapshot once published:
 * build it with wi_registry_add, then share it with wi_registry_ref; readers
 * never block writers, a change builds a new snapshot.
 *
 * Matching returns identities in entry order (first = the default identity,
 * Workload API §5), drops a later identity whose SPIFFE ID or non-empty hint
 * repeats an earlier one (hints must be unique within a response), and caps the
 * result at WI_IDENTITIES_PER_CALLER_MAX. */
#ifndef WI_CORE_REGISTRY_H
#define WI_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/selector.h"
#include "core/txn_policy.h"

typedef struct wi_registry wi_registry;

/* An empty registry for trust domain `td` (a validated bare name). */
int wi_registry_new(const char *td, wi_registry **ret) WI_WUR;
wi_registry *wi_registry_ref(wi_registry *r);
/* Accepts NULL; returns NULL. */
wi_registry *wi_registry_unref(wi_registry *r);

/* Appends an entry.  `selectors` must be non-empty; the registry takes its own
 * reference.  `hint` may be NULL; `x509_ttl` 0 means "the default".
 * Errors: WI_E_SPIFFE_ID (bad ID or template, wrong trust domain, root ID),
 * WI_E_SELECTOR (empty set, unknown placeholder kind, multi-valued kind),
 * WI_E_INVAL (hint too long), WI_E_TOO_BIG (too many entries). */
int wi_registry_add(wi_registry *r, const char *spiffe_id, wi_selector_set *selectors,
		    const char *hint, int64_t x509_ttl) WI_WUR;

/* Attaches a Transaction Token policy to the entry added last (the registry
 * takes ownership of `p`, also on failure).  WI_E_INVAL if there is no entry. */
int wi_registry_attach_txn_policy(wi_registry *r, wi_txn_policy *p) WI_WUR;

/* The Transaction Token policy of the first entry whose (literal, not
 * templated) SPIFFE ID is `spiffe_id`; NULL when none.  Used for workloads
 * known by ID rather than by attestation (mTLS peers, actor tokens).  The
 * policy lives as long as the registry. */
const wi_txn_policy *wi_registry_txn_policy_for(const wi_registry *r, const char *spiffe_id);

size_t wi_registry_count(const wi_registry *r);
const char *wi_registry_trust_domain(const wi_registry *r);
/* True when some entry uses a selector (or placeholder) of `kind`; lets the
 * attestor skip work nobody asked for (hashing executables). */
bool wi_registry_uses_kind(const wi_registry *r, wi_selector_kind kind);

/* One identity a caller holds. */
typedef struct wi_identity {
	const char *spiffe_id; /* owned by the wi_identities list */
	const char *hint;      /* "" when none; owned by the registry */
	int64_t x509_ttl;      /* 0 = default */
	uint32_t entry_index;  /* position of the entry in the registry */
	const wi_txn_policy *txn; /* NULL: no Transaction Tokens; owned by the registry */
} wi_identity;

typedef struct wi_identities wi_identities;

/* Matches `attested` against every entry.  A caller with no identity gets an
 * empty list (not an error).  The list holds a reference on the registry. */
int wi_registry_match(wi_registry *r, const wi_selector_set *attested, wi_identities **ret) WI_WUR;
size_t wi_identities_count(const wi_identities *l);
/* True when more entries matched than WI_IDENTITIES_PER_CALLER_MAX (the
 * first ones, in entry order, are kept). */
bool wi_identities_truncated(const wi_identities *l);
const wi_identity *wi_identities_at(const wi_identities *l, size_t i);
/* Finds an identity by SPIFFE ID; NULL when the list does not hold it. */
const wi_identity *wi_identities_find(const wi_identities *l, const char *spiffe_id);
/* True when both lists hold the same identities (ID, hint, TTL) in the same
 * order. */
bool wi_identities_equal(const wi_identities *a, const wi_identities *b);
wi_identities *wi_identities_free(wi_identities *l);

static inline void wi_identities_freep(wi_identities **l)
{
	wi_identities_free(*l);
}
static inline void wi_registry_unrefp(wi_registry **r)
{
	wi_registry_unref(*r);
}

#endif
