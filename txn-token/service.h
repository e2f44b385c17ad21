/* txn-token/service.h — the Transaction Token Service: authenticates the
 * caller and serves the endpoints (DESIGN §4):
 *
 *   POST /token        RFC 8693 exchange for a Txn-Token (txn-token/exchange.h)
 *   POST /introspect   RFC 7662: {"active":false} for revoked, expired or
 *                      foreign tokens, else the claims with "active":true
 *   POST /revoke       the kill switch (admin only): txn=…, spiffe_id=…, or
 *                      principal_iss=…&principal_sub=…
 *   GET  /.well-known/jwks.json                  the Txn-Token keys
 *   GET  /.well-known/oauth-authorization-server RFC 8414 metadata
 *   POST /dev/user-token  (only with the development issuer) sub=…&scope=…
 *
 * Callers: on the Unix socket, attested like Workload API callers (their
 * default identity acts; an actor_token may pick another they hold); on
 * HTTPS, the verified X.509-SVID, or a jwt-spiffe client assertion
 * (draft-ietf-oauth-spiffe-client-auth).  Admin: a Unix caller whose
 * selectors include the config's admin_selectors.
 *
 * wi_tts_handle is a wi_http_handler: it runs on the HTTP worker threads,
 * several at once. */
#ifndef WI_TXN_TOKEN_SERVICE_H
#define WI_TXN_TOKEN_SERVICE_H

#include <stdint.h>

#include <uv.h>

#include "attestors/attest.h"
#include "core/config.h"
#include "core/error.h"
#include "core/jwk.h"
#include "core/jwt_keys.h"
#include "core/registry.h"
#include "txn-token/http.h"
#include "txn-token/issuers.h"
#include "txn-token/revocations.h"
#include "txn-token/runs.h"

typedef struct wi_tts wi_tts;

typedef struct wi_tts_options {
	const char *trust_domain;
	const char *issuer_id;  /* our iss: spiffe://<td>/wimsed/<node> */
	const char *node;
	wi_attestor *attestor;  /* borrowed */
	wi_jwt_keys *txn_keys;  /* borrowed: signs Txn-Tokens */
	wi_jwt_keys *svid_keys; /* borrowed: the JWT-SVID keys (their JWKS) */
	wi_issuers *issuers;    /* borrowed */
	wi_revocations *revocations; /* borrowed */
	wi_runs *runs;          /* borrowed; NULL: runs do not die with their agent */
	wi_registry *registry;  /* referenced */
	const wi_selector_set *admin_selectors; /* borrowed */
	int64_t default_ttl;
	int max_hops;
	wi_jwt_keys *dev_keys;  /* borrowed; NULL unless the dev issuer is on */
	const char *dev_issuer; /* its iss */
	const char *dev_audience;
} wi_tts_options;

int wi_tts_new(const wi_tts_options *o, wi_tts **ret) WI_WUR;
wi_tts *wi_tts_free(wi_tts *t);
/* Publishes a new registry snapshot (takes a reference). */
void wi_tts_set_registry(wi_tts *t, wi_registry *r);
/* The HTTP handler (ud = the wi_tts). */
void wi_tts_handle(void *ud, const wi_http_request *req, wi_http_response *resp);

/* ---- metrics ---------------------------------------------------------------- */

/* Kinds of issued Txn-Tokens: for a user (delegated), for the agent itself
 * (autonomous), and sub-agent replacements. */
typedef enum wi_tts_grant {
	WI_TTS_GRANT_DELEGATED = 0,
	WI_TTS_GRANT_AUTONOMOUS,
	WI_TTS_GRANT_REPLACEMENT,
	WI_TTS_GRANTS
} wi_tts_grant;

/* Endpoints whose refusals are counted (anything else is "other"). */
typedef enum wi_tts_endpoint {
	WI_TTS_EP_TOKEN = 0,
	WI_TTS_EP_INTROSPECT,
	WI_TTS_EP_REVOKE,
	WI_TTS_EP_OTHER,
	WI_TTS_ENDPOINTS
} wi_tts_endpoint;

/* Refusal reasons: the RFC 6749 error code sent, except that a 429 (rate
 * limit) is its own reason "rate_limited". */
typedef enum wi_tts_reason {
	WI_TTS_R_INVALID_REQUEST = 0,
	WI_TTS_R_INVALID_GRANT,
	WI_TTS_R_INVALID_SCOPE,
	WI_TTS_R_INVALID_TARGET,
	WI_TTS_R_INVALID_CLIENT,
	WI_TTS_R_UNAUTHORIZED_CLIENT,
	WI_TTS_R_UNSUPPORTED_GRANT_TYPE,
	WI_TTS_R_RATE_LIMITED,
	WI_TTS_R_TEMPORARILY_UNAVAILABLE,
	WI_TTS_R_SERVER_ERROR,
	WI_TTS_R_OTHER,
	WI_TTS_REASONS
} wi_tts_reason;

typedef struct wi_tts_stats {
	uint64_t issued[WI_TTS_GRANTS];
	uint64_t refused[WI_TTS_ENDPOINTS][WI_TTS_REASONS];
	uint64_t introspections_active, introspections_inactive;
	uint64_t revocations; /* revocations stored through /revoke */
	/* caches of tokens that passed: user tokens presented as subjects,
	 * JWT-SVIDs sent to us (client assertions, actor tokens, autonomous
	 * subjects) and our own Txn-Tokens; a hit skipped a signature check */
	uint64_t subject_hits, subject_misses, svid_hits, svid_misses;
	uint64_t txn_hits, txn_misses; /* Txn-Tokens introspected or replaced */
} wi_tts_stats;

/* Static label names ("delegated", "/token", "invalid_scope", ...). */
const char *wi_tts_grant_name(int g);
const char *wi_tts_endpoint_name(int e);
const char *wi_tts_reason_name(int r);
/* Lock-free; any thread while `t` lives.  HTTP-level refusals answered
 * before the service sees a request (413, malformed HTTP) are not counted. */
void wi_tts_get_stats(const wi_tts *t, wi_tts_stats *ret);

#endif
