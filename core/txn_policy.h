/* core/txn_policy.h — what one registration entry's workload may obtain as
 * Transaction Tokens (DESIGN §4; config key `txn` of an entry).
 *
 *   allowed_scopes     scopes this actor may ever be granted (granted =
 *                      requested ∩ user token ∩ these; never wider)
 *   allowed_resources  RFC 8707 resource indicators it may name (exact match)
 *   max_ttl            cap on the token lifetime (0 = the global default)
 *   may_exchange_for   SPIFFE IDs (exact, or a prefix ending in "/ *" without the space) of other
 *                      workloads this one may obtain tokens for, as their
 *                      orchestrator (with their JWT-SVID as actor_token)
 *
 * An entry without `txn` gets no Transaction Tokens at all (deny by default).
 * Immutable once built; owned by the registry entry. */
#ifndef WI_CORE_TXN_POLICY_H
#define WI_CORE_TXN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/error.h"

typedef struct wi_txn_policy wi_txn_policy;

/* Builds from the entry's `txn` JSON object; the detail names the bad key
 * (relative: "allowed_scopes[2]: ..."). */
int wi_txn_policy_from_json(const json_t *obj, wi_txn_policy **ret) WI_WUR;
wi_txn_policy *wi_txn_policy_free(wi_txn_policy *p);

bool wi_txn_policy_allows_scope(const wi_txn_policy *p, const char *scope);
bool wi_txn_policy_allows_resource(const wi_txn_policy *p, const char *resource);
bool wi_txn_policy_may_exchange_for(const wi_txn_policy *p, const char *spiffe_id);
int64_t wi_txn_policy_max_ttl(const wi_txn_policy *p);

#endif
