/* txn-token/service.c — authentication, routing and the endpoints of the
 * Transaction Token Service. */
#include "txn-token/service.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "core/b64url.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/jws.h"
#include "core/rand.h"
#include "core/jwt_claims.h"
#include "core/jwt_svid.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/spiffe_id.h"
#include "core/verified_cache.h"
#include "txn-token/exchange.h"
#include "txn-token/form.h"

#define FORM_FIELDS_MAX 32
#define CLIENT_ASSERTION_JWT_SPIFFE "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
#define DEV_TOKEN_TTL 600

struct wi_tts {
	wi_tts_options o;
	/* metrics (wi_tts_get_stats): relaxed atomics, no lock */
	atomic_uint_fast64_t issued[WI_TTS_GRANTS];
	atomic_uint_fast64_t refused[WI_TTS_ENDPOINTS][WI_TTS_REASONS];
	atomic_uint_fast64_t intro_active, intro_inactive, revocations;
	pthread_mutex_t reg_lock;
	wi_registry *registry;
	wi_ratelimit *ratelimit; /* limits: /token per authenticated actor */
	wi_verified_cache *svids; /* JWT-SVIDs sent to us (client assertions, actor
				     tokens, autonomous subjects) that passed */
	wi_verified_cache *txns;  /* Txn-Tokens that passed (introspection, replacement) */
};

int wi_tts_new(const wi_tts_options *o, wi_tts **ret)
{
	wi_tts *t = calloc(1, sizeof(*t));
	WI_CHECK_ALLOC(t);
	t->o = *o;
	/* limits (issue 5 item 7) */
	int rc = wi_ratelimit_new(WI_TTS_RATE_PER_ACTOR, WI_TTS_RATE_BURST, WI_RATELIMIT_SLOTS,
				  WI_RATELIMIT_CONTENDED, &t->ratelimit);
	if (rc == 0)
		rc = wi_verified_cache_new(WI_SVID_VALIDATION_CACHE_SLOTS, &t->svids);
	if (rc == 0)
		rc = wi_verified_cache_new(WI_TXN_VERIFIED_CACHE_SLOTS, &t->txns);
	if (rc < 0) {
		wi_verified_cache_free(t->svids);
		wi_ratelimit_free(t->ratelimit);
		free(t);
		return rc;
	}
	t->registry = wi_registry_ref(o->registry);
	pthread_mutex_init(&t->reg_lock, NULL);
	*ret = t;
	return 0;
}

wi_tts *wi_tts_free(wi_tts *t)
{
	if (!t)
		return NULL;
	wi_registry_unref(t->registry);
	wi_ratelimit_free(t->ratelimit); /* limits */
	wi_verified_cache_free(t->svids);
	wi_verified_cache_free(t->txns);
	pthread_mutex_destroy(&t->reg_lock);
	free(t);
	return NULL;
}

void wi_tts_set_registry(wi_tts *t, wi_registry *r)
{
	pthread_mutex_lock(&t->reg_lock);
	wi_registry *old = t->registry;
	t->registry = wi_registry_ref(r);
	pthread_mutex_unlock(&t->reg_lock);
	wi_registry_unref(old);
}

static wi_registry *registry(wi_tts *t)
{
	pthread_mutex_lock(&t->reg_lock);
	wi_registry *r = wi_registry_ref(t->registry);
	pthread_mutex_unlock(&t->reg_lock);
	return r;
}

/* ---- responses ----------------------------------------------------------- */

static void reply_json(wi_http_response *resp, int status, json_t *body, bool no_store)
{
	/* The body may carry the issued token: serialise it with no stray copy
	 * (the server cleanses resp->body once sent). */
	char *text = NULL;
	size_t len = 0;
	int r = body ? wi_json_dump_alloc(body, JSON_COMPACT, &text, &len) : WI_E_NOMEM;
	json_decref(body);
	if (r < 0) {
		wi_log(WI_LOG_ERROR, "txn_reply_failed", "status=500 reason=\"out of memory\"");
		wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = text;
	resp->body_len = len;
	resp->no_store = no_store;
}

/* 200, no-store, {"access_token": token, then the members of `rest`}
 * (`rest` is taken; NULL: out of memory).  The token's JSON string is wiped
 * once the reply has been serialised; the caller wipes its own copy. */
static void reply_token(wi_http_response *resp, const char *token, json_t *rest)
{
	json_t *tok = wi_json_secret_string(token, strlen(token));
	json_t *body = tok && rest ? json_pack("{s:O}", "access_token", tok) : NULL;
	if (body && json_object_update(body, rest) < 0) {
		json_decref(body);
		body = NULL;
	}
	json_decref(rest);
	reply_json(resp, 200, body, true);
	wi_json_secret_release(tok);
}

/* ---- metrics ------------------------------------------------------------- */

static const char *const grant_names[WI_TTS_GRANTS] = {"delegated", "autonomous", "replacement"};
static const char *const endpoint_names[WI_TTS_ENDPOINTS] = {"/token", "/introspect", "/revoke", "other"};
static const char *const reason_names[WI_TTS_REASONS] = {
	"invalid_request",	   "invalid_grant",	     "invalid_scope",	     "invalid_target",
	"invalid_client",	   "unauthorized_client",    "unsupported_grant_type", "rate_limited",
	"temporarily_unavailable", "server_error",	     "other",
};

const char *wi_tts_grant_name(int g)
{
	return g >= 0 && g < WI_TTS_GRANTS ? grant_names[g] : "other";
}

const char *wi_tts_endpoint_name(int e)
{
	return e >= 0 && e < WI_TTS_ENDPOINTS ? endpoint_names[e] : "other";
}

const char *wi_tts_reason_name(int r)
{
	return r >= 0 && r < WI_TTS_REASONS ? reason_names[r] : "other";
}

static void count_refusal(wi_tts *t, const char *endpoint, int status, const char *error)
{
	if (!t)
		return;
	size_t e = WI_TTS_EP_OTHER;
	for (size_t i = 0; i < WI_TTS_EP_OTHER; i++)
		if (strcmp(endpoint, endpoint_names[i]) == 0)
			e = i;
	size_t r = WI_TTS_R_OTHER;
	if (status == 429)
		r = WI_TTS_R_RATE_LIMITED;
	else
		for (size_t i = 0; i < WI_TTS_R_OTHER; i++)
			if (i != WI_TTS_R_RATE_LIMITED && strcmp(error, reason_names[i]) == 0)
				r = i;
	atomic_fetch_add_explicit(&t->refused[e][r], 1, memory_order_relaxed);
}

void wi_tts_get_stats(const wi_tts *t, wi_tts_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!t)
		return;
	for (int g = 0; g < WI_TTS_GRANTS; g++)
		ret->issued[g] = atomic_load_explicit(&t->issued[g], memory_order_relaxed);
	for (int e = 0; e < WI_TTS_ENDPOINTS; e++)
		for (int r = 0; r < WI_TTS_REASONS; r++)
			ret->refused[e][r] = atomic_load_explicit(&t->refused[e][r], memory_order_relaxed);
	ret->introspections_active = atomic_load_explicit(&t->intro_active, memory_order_relaxed);
	ret->introspections_inactive = atomic_load_explicit(&t->intro_inactive, memory_order_relaxed);
	ret->revocations = atomic_load_explicit(&t->revocations, memory_order_relaxed);
	if (t->o.issuers)
		wi_issuers_cache_stats(t->o.issuers, &ret->subject_hits, &ret->subject_misses);
	wi_verified_cache_stats(t->svids, &ret->svid_hits, &ret->svid_misses);
	wi_verified_cache_stats(t->txns, &ret->txn_hits, &ret->txn_misses);
}

/* One log line and one count per refusal. */
static void refuse(wi_tts *t, wi_http_response *resp, const char *endpoint, const char *who, int status,
		   const char *error, const char *description)
{
	count_refusal(t, endpoint, status, error);
	/* One line per refusal, with the reason and no token material. */
	wi_log(WI_LOG_INFO, "txn_refused", "endpoint=%s caller=%s status=%d error=%s reason=\"%s\"", endpoint,
	       who ? who : "-", status, error, description);
	wi_http_oauth_error(resp, status, error, description);
}

/* ---- callers --------------------------------------------------------------- */

typedef struct caller {
	char id[WI_SPIFFE_ID_MAX + 1];
	wi_txn_caller c;
	wi_identities *ids;
	wi_selector_set *sel;
	wi_registry *reg;
} caller;

static void caller_clear(caller *c)
{
	wi_identities_free(c->ids);
	wi_selector_set_unref(c->sel);
	wi_registry_unref(c->reg);
	memset(c, 0, sizeof(*c));
}

/* Authenticates; on failure fills resp and returns < 0. */
static int authenticate(wi_tts *t, const wi_http_request *req, const wi_form *form, const char *endpoint,
			caller *out, wi_http_response *resp)
{
	memset(out, 0, sizeof(*out));
	out->reg = registry(t);
	const wi_http_caller *hc = req->caller;
	const char *cat = form ? wi_form_get(form, "client_assertion_type") : NULL;
	const char *ca = form ? wi_form_get(form, "client_assertion") : NULL;
	if (hc->authn == WI_HTTP_AUTHN_UNIX) {
		int rc = wi_attestor_attest(t->o.attestor, hc->peer, &out->sel);
		if (rc < 0) {
			refuse(t, resp, endpoint, NULL, rc == WI_E_UNAUTHENTICATED ? 401 : 503,
			       rc == WI_E_UNAUTHENTICATED ? "invalid_client" : "temporarily_unavailable",
			       rc == WI_E_UNAUTHENTICATED ? "the calling process could not be verified"
							  : "attestation failed; retry");
			return -1;
		}
		if (wi_registry_match(out->reg, out->sel, &out->ids) < 0) {
			refuse(t, resp, endpoint, NULL, 503, "temporarily_unavailable", "matching failed; retry");
			return -1;
		}
		if (wi_identities_count(out->ids) == 0) {
			/* An operator (admin selectors, e.g. root) needs no SPIFFE ID to
			 * pull the kill switch. */
			if (strcmp(endpoint, "/revoke") == 0 && wi_selector_set_is_subset(t->o.admin_selectors, out->sel)) {
				snprintf(out->id, sizeof(out->id), "admin(uid=%u)", (unsigned)wi_peer_uid(hc->peer));
				out->c = (wi_txn_caller){.spiffe_id = out->id, .transport = "uds", .authn = "unix-attestation"};
				return 0;
			}
			refuse(t, resp, endpoint, NULL, 401, "invalid_client", "no identity for the calling process");
			return -1;
		}
		const wi_identity *d = wi_identities_at(out->ids, 0);
		snprintf(out->id, sizeof(out->id), "%s", d->spiffe_id);
		out->c = (wi_txn_caller){.spiffe_id = out->id, .policy = d->txn, .transport = "uds",
					 .authn = "unix-attestation", .held = out->ids};
		return 0;
	}
	/* HTTPS: an X.509-SVID verified by the TLS layer, or a JWT-SVID client
	 * assertion whose audience is our issuer id. */
	if (hc->tls_peer_id) {
		snprintf(out->id, sizeof(out->id), "%s", hc->tls_peer_id);
		out->c.authn = "x509-svid";
	} else if (cat && ca && strcmp(cat, CLIENT_ASSERTION_JWT_SPIFFE) == 0) {
		char *id = NULL;
		json_auto_t *claims = NULL;
		_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(t->o.svid_keys);
		if (wi_jwt_svid_validate_cached(t->svids, ca, strlen(ca), wi_jwt_keyset_jwks(ks), t->o.trust_domain,
						t->o.issuer_id, wi_clock_now(), &id, &claims) < 0) {
			refuse(t, resp, endpoint, NULL, 401, "invalid_client", "the client assertion is not valid");
			return -1;
		}
		snprintf(out->id, sizeof(out->id), "%s", id);
		free(id);
		out->c.authn = "jwt-svid";
	} else {
		refuse(t, resp, endpoint, NULL, 401, "invalid_client",
		       "authenticate with an X.509-SVID or a jwt-spiffe client assertion");
		return -1;
	}
	out->c.spiffe_id = out->id;
	out->c.transport = "https";
	out->c.policy = wi_registry_txn_policy_for(out->reg, out->id);
	return 0;
}

/* ---- endpoints --------------------------------------------------------------- */

static void fill_ctx(wi_tts *t, const caller *c, wi_txn_ctx *cx)
{
	*cx = (wi_txn_ctx){
		.trust_domain = t->o.trust_domain,
		.issuer_id = t->o.issuer_id,
		.node = t->o.node,
		.txn_keys = t->o.txn_keys,
		.txn_cache = t->txns,
		.svid_keys = t->o.svid_keys,
		.svid_cache = t->svids,
		.issuers = t->o.issuers,
		.revocations = t->o.revocations,
		.registry = c->reg,
		.default_ttl = t->o.default_ttl,
		.max_hops = t->o.max_hops,
	};
}

static void do_token(wi_tts *t, const wi_http_request *req, const wi_form *f, const caller *c,
		     wi_http_response *resp)
{
	/* --- limits: per-actor rate (issue 5 item 7).  RFC 6749 §5.2 has no
	 * code for this; 429 (RFC 6585) with temporarily_unavailable. */
	if (!wi_ratelimit_take(t->ratelimit, c->id)) {
		refuse(t, resp, "/token", c->id, 429, "temporarily_unavailable", "rate limit exceeded for this caller; retry later");
		return;
	}
	/* --- end limits */
	wi_txn_ctx cx;
	fill_ctx(t, c, &cx);
	wi_txn_issued out;
	wi_oauth_err err = {0};
	if (wi_txn_exchange(&cx, f, &c->c, wi_clock_now(), &out, &err) < 0) {
		refuse(t, resp, "/token", c->id, err.status, err.error, err.description);
		return;
	}
	/* A local agent's run dies with it (not a sub-agent's replacement: the
	 * run belongs to the agent that started it). */
	if (t->o.runs && req->caller->authn == WI_HTTP_AUTHN_UNIX && !out.replacement) {
		const wi_peer *p = req->caller->peer;
		if (wi_runs_track(t->o.runs, wi_peer_pidfd(p), (int)wi_peer_pid(p), wi_peer_start_time(p), out.txn,
				  out.exp) < 0) {
			/* Fail closed: a token whose run could outlive its agent
			 * is not handed out (it is wiped unseen). */
			wi_log(WI_LOG_WARN, "run_track_failed", "txn=%s: %s", out.txn, wi_error_detail());
			wi_txn_issued_clear(&out);
			refuse(t, resp, "/token", c->id, 503, "temporarily_unavailable",
			       "the run cannot be tied to this process now; retry later");
			return;
		}
	}
	wi_tts_grant g = out.replacement ? WI_TTS_GRANT_REPLACEMENT
			 : out.autonomous ? WI_TTS_GRANT_AUTONOMOUS
					  : WI_TTS_GRANT_DELEGATED;
	atomic_fetch_add_explicit(&t->issued[g], 1, memory_order_relaxed);
	wi_log(WI_LOG_INFO, "txn_issued", "caller=%s actor=%s txn=%s grant=%s expires_in=%lld", c->id, out.actor,
	       out.txn, grant_names[g], (long long)out.expires_in);
	/* RFC 8693 §2.2.1 and the Txn-Token draft §6.2: token_type N_A, no
	 * refresh token, no-store. */
	reply_token(resp, out.token,
		    json_pack("{s:s, s:s, s:I}", "issued_token_type", WI_TOKEN_TYPE_TXN, "token_type", "N_A",
			      "expires_in", (json_int_t)out.expires_in));
	wi_txn_issued_clear(&out);
}

static void do_introspect(wi_tts *t, const wi_form *f, const caller *c, wi_http_response *resp)
{
	const char *token = wi_form_get(f, "token");
	if (!token) {
		refuse(t, resp, "/introspect", c->id, 400, "invalid_request", "token is required");
		return;
	}
	wi_txn_ctx cx;
	fill_ctx(t, c, &cx);
	json_t *claims = NULL;
	/* RFC 7662 §2.2: anything not active (revoked, expired, not ours,
	 * malformed) is just {"active": false}. */
	if (wi_txn_verify(&cx, token, wi_clock_now(), &claims) < 0) {
		atomic_fetch_add_explicit(&t->intro_inactive, 1, memory_order_relaxed);
		wi_log(WI_LOG_INFO, "introspect_inactive", "caller=%s reason=\"%s\"", c->id, wi_error_detail());
		reply_json(resp, 200, json_pack("{s:b}", "active", 0), true);
		return;
	}
	atomic_fetch_add_explicit(&t->intro_active, 1, memory_order_relaxed);
	json_object_set_new(claims, "active", json_true());
	json_object_set_new(claims, "token_type", json_string(WI_TOKEN_TYPE_TXN));
	reply_json(resp, 200, claims, true);
}

static bool is_admin(wi_tts *t, const caller *c, const wi_http_request *req)
{
	return req->caller->authn == WI_HTTP_AUTHN_UNIX && c->sel &&
	       wi_selector_set_is_subset(t->o.admin_selectors, c->sel);
}

static void do_revoke(wi_tts *t, const wi_http_request *req, const wi_form *f, const caller *c,
		      wi_http_response *resp)
{
	if (!is_admin(t, c, req)) {
		refuse(t, resp, "/revoke", c->id, 403, "unauthorized_client", "revocation needs an admin caller");
		return;
	}
	const char *txn = wi_form_get(f, "txn");
	const char *id = wi_form_get(f, "spiffe_id");
	const char *piss = wi_form_get(f, "principal_iss");
	const char *psub = wi_form_get(f, "principal_sub");
	int given = (txn != NULL) + (id != NULL) + (piss != NULL || psub != NULL);
	if (given != 1 || (piss && !psub) || (psub && !piss)) {
		refuse(t, resp, "/revoke", c->id, 400, "invalid_request",
		       "give exactly one of txn, spiffe_id, or principal_iss with principal_sub");
		return;
	}
	char value[WI_REVOCATION_VALUE_MAX];
	wi_revocation_kind kind;
	const char *one = txn ? txn : id;
	if (one && strlen(one) >= sizeof(value)) {
		/* Never revoke a truncated value: it would be another one. */
		refuse(t, resp, "/revoke", c->id, 400, "invalid_request", "value too long");
		return;
	}
	if (txn) {
		kind = WI_REVOKE_TXN;
		snprintf(value, sizeof(value), "%s", txn);
	} else if (id) {
		kind = WI_REVOKE_ACTOR;
		if (wi_spiffe_id_validate(id, strlen(id), true) < 0) {
			refuse(t, resp, "/revoke", c->id, 400, "invalid_request", "spiffe_id is not a valid SPIFFE ID");
			return;
		}
		snprintf(value, sizeof(value), "%s", id);
	} else {
		kind = WI_REVOKE_PRINCIPAL;
		if ((size_t)snprintf(value, sizeof(value), "%s %s", piss, psub) >= sizeof(value)) {
			refuse(t, resp, "/revoke", c->id, 400, "invalid_request", "principal too long");
			return;
		}
	}
	if (!*value) {
		refuse(t, resp, "/revoke", c->id, 400, "invalid_request", "empty value");
		return;
	}
	/* A run is dead once its last token could have expired.  An agent or
	 * a person also gets no new tokens while it is in force, and their
	 * credentials outlive any Txn-Token, hence a longer default. */
	const long min_s = WI_TXN_TTL_MAX + WI_JWT_LEEWAY_SECONDS;
	long life = kind == WI_REVOKE_TXN ? min_s : WI_REVOKE_SUBJECT_DEFAULT_SECONDS;
	const char *ei = wi_form_get(f, "expires_in");
	if (ei) {
		char *end = NULL;
		errno = 0;
		long v = kind == WI_REVOKE_TXN ? -1 : strtol(ei, &end, 10);
		if (kind == WI_REVOKE_TXN || errno != 0 || end == ei || *end != '\0' || ei[0] == '+' || ei[0] == '-' ||
		    v < min_s || v > WI_REVOKE_SUBJECT_MAX_SECONDS) {
			refuse(t, resp, "/revoke", c->id, 400, "invalid_request",
			       "expires_in (spiffe_id or principal only) must be 3630..31622400 seconds");
			return;
		}
		life = v;
	}
	time_t until = wi_clock_now() + life;
	/* A kill switch acts first: in force now even if the store refuses it,
	 * and then the caller is told it is not durable yet (the tick keeps
	 * trying; the caller's retry does too). */
	bool durable = true;
	const char *values[1] = {value};
	if (wi_revocations_add_many_now(t->o.revocations, kind, values, &until, 1, &durable) < 0) {
		wi_log(WI_LOG_ERROR, "revoke_failed", "caller=%s: %s", c->id, wi_error_detail());
		count_refusal(t, "/revoke", 503, "temporarily_unavailable");
		wi_http_oauth_error(resp, 503, "temporarily_unavailable", "the revocation could not be made");
		return;
	}
	if (!durable) {
		wi_log(WI_LOG_ERROR, "revoke_not_durable", "caller=%s: in force, not stored: %s", c->id,
		       wi_error_detail());
		count_refusal(t, "/revoke", 503, "temporarily_unavailable");
		wi_http_oauth_error(resp, 503, "temporarily_unavailable",
				    "revoked, but not stored: a restart would forget it; retry");
		return;
	}
	static const char *const kinds[] = {"", "txn", "spiffe_id", "principal"};
	atomic_fetch_add_explicit(&t->revocations, 1, memory_order_relaxed);
	wi_log(WI_LOG_INFO, "revoked", "caller=%s kind=%s until=%lld", c->id, kinds[kind], (long long)until);
	reply_json(resp, 200, json_pack("{s:b, s:s, s:I}", "revoked", 1, "kind", kinds[kind], "expires_at", (json_int_t)until),
		   true);
}

static void do_dev_user_token(wi_tts *t, const wi_form *f, const caller *c, wi_http_response *resp)
{
	const char *sub = wi_form_get(f, "sub");
	const char *scope = wi_form_get(f, "scope");
	if (!sub || !*sub || strlen(sub) > 256 || (scope && strlen(scope) > 4096)) {
		refuse(t, resp, "/dev/user-token", c->id, 400, "invalid_request", "sub (1..256 bytes) is required");
		return;
	}
	time_t now = wi_clock_now();
	uint8_t r[16];
	char *jti = NULL;
	size_t jl;
	if (wi_rand_id_bytes(r, sizeof(r)) < 0 || wi_b64url_encode(r, sizeof(r), &jti, &jl) < 0) {
		refuse(t, resp, "/dev/user-token", c->id, 500, "server_error", "no randomness");
		return;
	}
	json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "iss", t->o.dev_issuer, "sub", sub, "aud",
				   t->o.dev_audience, "iat", (json_int_t)now, "exp", (json_int_t)(now + DEV_TOKEN_TTL),
				   "jti", jti, "client_id", "wimsectl-dev");
	free(jti);
	if (claims && scope)
		json_object_set_new(claims, "scope", json_string(scope));
	char *token = NULL;
	int rc = claims ? wi_jws_sign(wi_jwt_keys_signer(t->o.dev_keys), wi_jwt_keys_kid(t->o.dev_keys), "at+jwt",
				      claims, &token)
			: WI_E_NOMEM;
	json_decref(claims);
	if (rc < 0) {
		refuse(t, resp, "/dev/user-token", c->id, 500, "server_error", "cannot sign");
		return;
	}
	wi_log(WI_LOG_INFO, "dev_user_token", "caller=%s sub=%s", c->id, sub);
	reply_token(resp, token,
		    json_pack("{s:s, s:I}", "token_type", "Bearer", "expires_in", (json_int_t)DEV_TOKEN_TTL));
	wi_secret_free(token, strlen(token));
}

static void do_metadata(wi_tts *t, const wi_http_request *req, wi_http_response *resp)
{
	/* RFC 8414 §2.  Endpoint URLs as reached on this transport. */
	const char *base = req->caller->authn == WI_HTTP_AUTHN_UNIX ? "http://localhost" : "https://localhost";
	char tok[64], intro[64], jwks[80];
	snprintf(tok, sizeof(tok), "%s/token", base);
	snprintf(intro, sizeof(intro), "%s/introspect", base);
	snprintf(jwks, sizeof(jwks), "%s/.well-known/jwks.json", base);
	/* No revocation_endpoint: that names RFC 7009's (a client revoking its
	 * own token by `token=`), and /revoke is the admin's kill switch. */
	json_t *m = json_pack(
		"{s:s, s:s, s:s, s:s, s:[s], s:[s, s, s, s], s:[s], s:[s, s, s], s:[s]}", "issuer", t->o.issuer_id,
		"token_endpoint", tok, "introspection_endpoint", intro, "jwks_uri", jwks,
		"grant_types_supported", WI_GRANT_TOKEN_EXCHANGE, "subject_token_types_supported", WI_TOKEN_TYPE_ACCESS,
		WI_TOKEN_TYPE_ID, WI_TOKEN_TYPE_JWT, WI_TOKEN_TYPE_TXN, "issued_token_types_supported", WI_TOKEN_TYPE_TXN,
		"token_endpoint_auth_methods_supported", "spiffe_unix_attestation", "tls_client_auth_spiffe",
		CLIENT_ASSERTION_JWT_SPIFFE, "token_endpoint_auth_signing_alg_values_supported", "ES256");
	reply_json(resp, 200, m, false);
}

static void do_jwks(wi_tts *t, wi_http_response *resp)
{
	wi_jwt_keyset *ks = wi_jwt_keys_get(t->o.txn_keys);
	const char *j = wi_jwt_keyset_jwks_json(ks);
	resp->status = 200;
	resp->content_type = "application/jwk-set+json";
	resp->body = strdup(j);
	resp->body_len = resp->body ? strlen(j) : 0;
	wi_jwt_keyset_unref(ks);
	if (!resp->body)
		wi_http_oauth_error(resp, 500, "server_error", "out of memory");
}

void wi_tts_handle(void *ud, const wi_http_request *req, wi_http_response *resp)
{
	wi_tts *t = ud;
	const char *p = req->path;
	bool get = strcmp(req->method, "GET") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	if (strcmp(p, "/.well-known/jwks.json") == 0 || strcmp(p, "/.well-known/oauth-authorization-server") == 0) {
		if (!get) {
			resp->allow = "GET";
			refuse(t, resp, p, NULL, 405, "invalid_request", "use GET");
			return;
		}
		if (p[13] == 'j')
			do_jwks(t, resp);
		else
			do_metadata(t, req, resp);
		return;
	}
	bool known = strcmp(p, "/token") == 0 || strcmp(p, "/introspect") == 0 || strcmp(p, "/revoke") == 0 ||
		     (strcmp(p, "/dev/user-token") == 0 && t->o.dev_keys);
	if (!known) {
		refuse(t, resp, p, NULL, 404, "invalid_request", "no such endpoint");
		return;
	}
	if (!post) {
		resp->allow = "POST";
		refuse(t, resp, p, NULL, 405, "invalid_request", "use POST");
		return;
	}
	/* RFC 6749 §3.2: the token endpoint takes form-encoded parameters. */
	if (strcmp(req->content_type, "application/x-www-form-urlencoded") != 0) {
		refuse(t, resp, p, NULL, 415, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
		return;
	}
	wi_form *f = NULL;
	int rc = wi_form_parse((const char *)req->body, req->body_len, FORM_FIELDS_MAX, &f);
	if (rc < 0) {
		const char *d = wi_error_detail();
		const char *m = strstr(d, ": ");
		m = m ? strstr(m + 2, ": ") : NULL;
		refuse(t, resp, p, NULL, 400, "invalid_request", m ? m + 2 : "malformed form body");
		return;
	}
	caller c;
	if (authenticate(t, req, f, p, &c, resp) == 0) {
		if (strcmp(p, "/token") == 0)
			do_token(t, req, f, &c, resp);
		else if (strcmp(p, "/introspect") == 0)
			do_introspect(t, f, &c, resp);
		else if (strcmp(p, "/revoke") == 0)
			do_revoke(t, req, f, &c, resp);
		else
			do_dev_user_token(t, f, &c, resp);
	}
	caller_clear(&c);
	wi_form_free(f);
}
