/* txn-token/exchange.h — RFC 8693 token exchange for Transaction Tokens
 * (draft-ietf-oauth-transaction-tokens, with the agent extensions): the
 * policy and the claims, independent of the transport.
 *
 * Three kinds of exchange, by subject_token_type:
 *   delegated   …:access_token / …:id_token / …:jwt with an `iss`: the user's
 *               token from a trusted issuer; the Txn-Token's principal is the
 *               user (sub, sub_id iss_sub, sub_profile "user") and the actor
 *               the agent (act, req_wl).
 *   autonomous  …:jwt without `iss`: the agent's own JWT-SVID (aud = our
 *               issuer id); the agent is the subject, sub_profile "ai_agent",
 *               no act.
 *   replacement …:txn_token: one of our Txn-Tokens, for a sub-agent; txn,
 *               sub, sub_id, aud and tctx are kept, scope and resources may
 *               only narrow, exp never grows, act nests (outermost = the new
 *               actor), txn_path grows; loops and more than max_hops hops are
 *               refused.
 * Granted scope = requested ∩ the subject's scope ∩ the actor's policy; a
 * requested scope outside it is invalid_scope (never silently dropped). */
#ifndef WI_TXN_TOKEN_EXCHANGE_H
#define WI_TXN_TOKEN_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/error.h"
#include "core/jwk.h"
#include "core/jwt_keys.h"
#include "core/registry.h"
#include "core/txn_policy.h"
#include "core/verified_cache.h"
#include "txn-token/form.h"
#include "txn-token/issuers.h"
#include "txn-token/revocations.h"

#define WI_GRANT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define WI_TOKEN_TYPE_TXN "urn:ietf:params:oauth:token-type:txn_token"
#define WI_TOKEN_TYPE_ACCESS "urn:ietf:params:oauth:token-type:access_token"
#define WI_TOKEN_TYPE_ID "urn:ietf:params:oauth:token-type:id_token"
#define WI_TOKEN_TYPE_JWT "urn:ietf:params:oauth:token-type:jwt"
#define WI_TOKEN_TYPE_REFRESH "urn:ietf:params:oauth:token-type:refresh_token"
#define WI_TXN_TYP "txntoken+jwt"

/* Everything an exchange reads; all borrowed, all thread-safe to share. */
typedef struct wi_txn_ctx {
	const char *trust_domain; /* the Txn-Token aud */
	const char *issuer_id;    /* our iss, and the audience of JWT-SVIDs sent to us */
	const char *node;         /* rctx.node */
	wi_jwt_keys *txn_keys;    /* signs Txn-Tokens; its JWKS verifies them */
	wi_verified_cache *txn_cache; /* Txn-Tokens that passed (NULL: none) */
	wi_jwt_keys *svid_keys;   /* their JWKS verifies JWT-SVIDs (actor tokens, autonomous subjects) */
	wi_verified_cache *svid_cache; /* JWT-SVIDs sent to us that passed (NULL: none) */
	wi_issuers *issuers;
	wi_revocations *revocations;
	const wi_registry *registry; /* policies of actors named by actor_token */
	int64_t default_ttl;
	int max_hops;
} wi_txn_ctx;

/* The authenticated caller. */
typedef struct wi_txn_caller {
	const char *spiffe_id;
	const wi_txn_policy *policy; /* NULL: may not obtain Txn-Tokens */
	const char *transport;       /* "uds" or "https" */
	const char *authn;           /* "unix-attestation", "x509-svid" or "jwt-svid" */
	const wi_identities *held;   /* Unix callers: every identity they hold (an
					actor_token may pick one), else NULL */
} wi_txn_caller;

typedef struct wi_oauth_err {
	int status;         /* HTTP status */
	const char *error;  /* RFC 6749 §5.2 code */
	char description[256];
} wi_oauth_err;

typedef struct wi_txn_issued {
	char *token;  /* malloc'd: the Txn-Token */
	char *txn;    /* malloc'd */
	time_t exp;
	int64_t expires_in;
	bool replacement;
	bool autonomous; /* the agent's own run (subject = its JWT-SVID) */
	char *actor;  /* malloc'd: the actor the token was issued to */
} wi_txn_issued;

/* Runs one exchange.  0 with *ret filled, or a negative code with *err
 * filled (never both). */
int wi_txn_exchange(const wi_txn_ctx *cx, const wi_form *form, const wi_txn_caller *caller, time_t now,
		    wi_txn_issued *ret, wi_oauth_err *err) WI_WUR;
void wi_txn_issued_clear(wi_txn_issued *t);

/* Verifies one of our Txn-Tokens (signature, typ, aud, times) and its
 * revocation state; returns the claims (new reference).  WI_E_EXPIRED for an
 * expired one, WI_E_REVOKED for a revoked one. */
int wi_txn_verify(const wi_txn_ctx *cx, const char *token, time_t now, json_t **ret_claims) WI_WUR;

#endif
