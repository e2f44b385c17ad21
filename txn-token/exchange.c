/* txn-token/exchange.c — the token exchange policy and the Txn-Token claims. */
#include "txn-token/exchange.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64url.h"
#include "core/rand.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/digest.h"
#include "core/json.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/jwt_svid.h"
#include "core/limits.h"
#include "core/spiffe_id.h"

#define MAX_SCOPES 64
#define JSON_PARAM_MAX (8u * 1024u)

static int oauth_fail(wi_oauth_err *err, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int oauth_fail(wi_oauth_err *err, int status, const char *error, const char *fmt, ...)
{
	err->status = status;
	err->error = error;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->description, sizeof(err->description), fmt, ap);
	va_end(ap);
	return WI_E_INVAL;
}

/* The tail of wi_error_detail(): our own short reason, never token bytes. */
static const char *reason(void)
{
	const char *d = wi_error_detail();
	const char *p = strstr(d, ": ");
	p = p ? strstr(p + 2, ": ") : NULL;
	return p ? p + 2 : d;
}

void wi_txn_issued_clear(wi_txn_issued *t)
{
	if (t->token)
		wi_secret_free(t->token, strlen(t->token)); /* a bearer credential */
	free(t->txn);
	free(t->actor);
	memset(t, 0, sizeof(*t));
}

/* ---- scopes ------------------------------------------------------------- */

typedef struct scopes {
	char *buf;
	const char *v[MAX_SCOPES];
	size_t n;
} scopes;

static void scopes_clear(scopes *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static bool scopes_has(const scopes *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], x) == 0)
			return true;
	return false;
}

/* RFC 6749 §3.3: space-delimited scope-tokens of %x21 / %x23-5B / %x5D-7E;
 * duplicates collapse. */
static int scopes_parse(const char *text, scopes *ret)
{
	memset(ret, 0, sizeof(*ret));
	WI_CHECK(strlen(text) <= 4096, WI_E_INVAL, "scope too long");
	ret->buf = strdup(text);
	WI_CHECK_ALLOC(ret->buf);
	char *save = NULL;
	for (char *t = strtok_r(ret->buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		for (const unsigned char *p = (const unsigned char *)t; *p; p++)
			if (!(*p == 0x21 || (*p >= 0x23 && *p <= 0x5b) || (*p >= 0x5d && *p <= 0x7e))) {
				scopes_clear(ret);
				WI_FAIL(WI_E_INVAL, "scope has an invalid character");
			}
		if (scopes_has(ret, t))
			continue;
		if (ret->n == MAX_SCOPES) {
			scopes_clear(ret);
			WI_FAIL(WI_E_INVAL, "more than %d scopes", MAX_SCOPES);
		}
		ret->v[ret->n++] = t;
	}
	return 0;
}

/* The scope a user token grants: `scope` (space-separated) or `scp` (array,
 * or a string).  WI_E_NOT_FOUND when the claim is absent. */
static int scopes_from_claims(const json_t *claims, const char *claim, scopes *ret)
{
	const json_t *v = json_object_get(claims, claim);
	if (!v)
		return WI_E_NOT_FOUND;
	if (json_is_string(v))
		return scopes_parse(json_string_value(v), ret);
	WI_CHECK(json_is_array(v), WI_E_INVAL, "%s claim must be a string or an array", claim);
	wi_buf b;
	wi_buf_init(&b, 8192, false);
	size_t i;
	json_t *e;
	int rc = 0;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e) || strchr(json_string_value(e), ' ')) {
			rc = wi__error_set(WI_E_INVAL, __FILE__, __LINE__, "%s claim must hold scope tokens", claim);
			break;
		}
		if (rc == 0 && i)
			rc = wi_buf_append(&b, " ", 1);
		if (rc == 0)
			rc = wi_buf_append_str(&b, json_string_value(e));
	}
	if (rc == 0)
		rc = wi_buf_append(&b, "", 1);
	if (rc == 0)
		rc = scopes_parse(b.len ? (const char *)b.data : "", ret);
	wi_buf_free(&b);
	return rc;
}

static char *scopes_join(const scopes *s)
{
	wi_buf b;
	wi_buf_init(&b, 8192, false);
	int rc = 0;
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		if (i)
			rc = wi_buf_append(&b, " ", 1);
		if (rc == 0)
			rc = wi_buf_append_str(&b, s->v[i]);
	}
	if (rc == 0)
		rc = wi_buf_append(&b, "", 1);
	if (rc < 0) {
		wi_buf_free(&b);
		return NULL;
	}
	uint8_t *out;
	size_t len;
	wi_buf_steal(&b, &out, &len);
	return (char *)out;
}

/* ---- helpers --------------------------------------------------------------- */

static int random_id(char **ret)
{
	uint8_t r[16];
	WI_TRY(wi_rand_id_bytes(r, sizeof(r)));
	size_t len;
	return wi_b64url_encode(r, sizeof(r), ret, &len);
}

/* A short, non-reversible name for a token in claims and logs: the first
 * 128 bits of its SHA-256, base64url. */
static int token_hash(const uint8_t digest[WI_SHA256_LEN], char **ret)
{
	size_t len;
	return wi_b64url_encode(digest, 16, ret, &len);
}

/* An optional JSON-object parameter (request_details, request_context):
 * plain JSON as the current draft says, bounded in size and depth. */
static int json_param(const wi_form *f, const char *name, json_t **ret, wi_oauth_err *err)
{
	const char *v = wi_form_get(f, name);
	*ret = NULL;
	if (!v)
		return 0;
	size_t n = strlen(v);
	if (n > JSON_PARAM_MAX)
		return oauth_fail(err, 400, "invalid_request", "%s is larger than %u bytes", name, JSON_PARAM_MAX);
	if (wi_json_parse_object(v, n, name, ret) < 0)
		return oauth_fail(err, 400, "invalid_request", "%s must be a JSON object: %s", name, reason());
	return 0;
}

/* The policy of `actor`: the caller's own, or (orchestrator case) the entry
 * of the actor by ID. */
static const wi_txn_policy *policy_of(const wi_txn_ctx *cx, const wi_txn_caller *caller, const char *actor)
{
	if (strcmp(actor, caller->spiffe_id) == 0)
		return caller->policy;
	const wi_identity *own = caller->held ? wi_identities_find(caller->held, actor) : NULL;
	if (own)
		return own->txn;
	return wi_registry_txn_policy_for(cx->registry, actor);
}

/* The caller itself, under any identity it holds. */
static bool is_self(const wi_txn_caller *caller, const char *id)
{
	return strcmp(id, caller->spiffe_id) == 0 || (caller->held && wi_identities_find(caller->held, id));
}

/* Verifies a JWT-SVID sent to us (actor token, autonomous subject).  An
 * agent presents the same one at every step of a run: one that passed under
 * the current bundle skips the signature check (core/jwt_svid.h). */
static int verify_svid_to_us(const wi_txn_ctx *cx, const char *token, time_t now, char **ret_id)
{
	json_auto_t *claims = NULL;
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(cx->svid_keys);
	return wi_jwt_svid_validate_cached(cx->svid_cache, token, strlen(token), wi_jwt_keyset_jwks(ks),
					   cx->trust_domain, cx->issuer_id, now, ret_id, &claims);
}

static bool claims_have_iss(const char *token)
{
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d2)
		return true; /* malformed: let the issuer path report it */
	uint8_t *c = NULL;
	size_t cl = 0;
	if (wi_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), WI_JWT_MAX_LEN, &c, &cl) < 0)
		return true;
	json_t *claims = NULL;
	bool has = true;
	if (wi_json_parse_object((const char *)c, cl, "JWT claims", &claims) == 0) {
		has = json_object_get(claims, "iss") != NULL;
		json_decref(claims);
	}
	free(c);
	return has;
}

int wi_txn_verify(const wi_txn_ctx *cx, const char *token, time_t now, json_t **ret_claims)
{
	wi_jws_verify_opts opts = {.allowed_algs = WI_JWS_SPIFFE_ALGS, .max_token_len = WI_JWT_MAX_LEN};
	json_auto_t *claims = NULL;
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(cx->txn_keys);
	wi_jwks *keys = wi_jwt_keyset_jwks(ks);
	size_t len = strlen(token);
	/* A Txn-Token travels down a call chain and is introspected (or
	 * replaced) at each hop: one that passed under the current key set
	 * skips the signature and typ checks; everything below runs every time,
	 * the revocation check above all. */
	uint8_t digest[WI_VERIFIED_DIGEST_LEN];
	int hit = wi_verified_cache_lookup(cx->txn_cache, token, len, keys, now, digest, &claims);
	WI_TRY(hit);
	if (!hit) {
		json_auto_t *hdr = NULL;
		WI_TRY(wi_jws_verify(token, len, keys, &opts, &hdr, &claims));
		/* Txn-Token draft §4.2: typ MUST be txntoken+jwt (RFC 8725 §3.11: no
		 * confusion with other JWTs signed by the same keys). */
		const char *typ = wi_jwt_string_claim(hdr, "typ");
		WI_CHECK(typ && strcmp(typ, WI_TXN_TYP) == 0, WI_E_INVAL, "not a Txn-Token (typ)");
	}
	WI_TRY(wi_jwt_check_audience(claims, cx->trust_domain));
	int64_t exp = 0;
	WI_TRY(wi_jwt_check_times(claims, now, &exp));
	const char *txn = wi_jwt_string_claim(claims, "txn");
	const char *sub = wi_jwt_string_claim(claims, "sub");
	WI_CHECK(txn && sub, WI_E_INVAL, "txn or sub claim is missing");
	/* Revocation: the run, the principal, or any actor of the chain. */
	const json_t *sid = json_object_get(claims, "sub_id");
	/* The same bound as the revocation that names it, never truncated: a
	 * cut value would match no revocation. */
	char principal[WI_REVOCATION_VALUE_MAX] = "";
	if (json_is_object(sid) && wi_jwt_string_claim(sid, "iss") && wi_jwt_string_claim(sid, "sub")) {
		int pn = snprintf(principal, sizeof(principal), "%s %s", wi_jwt_string_claim(sid, "iss"),
				  wi_jwt_string_claim(sid, "sub"));
		WI_CHECK(pn >= 0 && (size_t)pn < sizeof(principal), WI_E_INVAL, "sub_id is too long");
	}
	const char *actors[WI_TXN_MAX_HOPS_MAX + 3];
	size_t n_actors = 0;
	const json_t *path =
		json_object_get(json_object_get(json_object_get(claims, "agentic_ctx"), "chain_metadata"), "txn_path");
	size_t i;
	const json_t *a;
	json_array_foreach(path, i, a) if (json_is_string(a) && n_actors < WI_TXN_MAX_HOPS_MAX + 1) actors[n_actors++] =
		json_string_value(a);
	const char *req_wl = wi_jwt_string_claim(claims, "req_wl");
	if (req_wl && n_actors < WI_TXN_MAX_HOPS_MAX + 2)
		actors[n_actors++] = req_wl;
	/* The orchestrator that obtained it is revocable too. */
	const char *exchanger = wi_jwt_string_claim(json_object_get(claims, "rctx"), "exchanged_by");
	if (exchanger && n_actors < WI_TXN_MAX_HOPS_MAX + 3)
		actors[n_actors++] = exchanger;
	if (wi_revocations_is_revoked(cx->revocations, txn, principal[0] ? principal : NULL, actors, n_actors, now))
		WI_FAIL(WI_E_REVOKED, "the transaction has been revoked");
	if (!hit)
		wi_verified_cache_remember(cx->txn_cache, digest, NULL, keys, claims, now, exp);
	*ret_claims = TAKE_PTR(claims);
	return 0;
}

/* ---- the exchange ------------------------------------------------------------- */

typedef enum { SUBJ_USER, SUBJ_AGENT, SUBJ_TXN } subject_kind;

static int set_new(json_t *o, const char *k, json_t *v)
{
	WI_CHECK(v && json_object_set_new(o, k, v) == 0, WI_E_NOMEM, "claims: %s", k);
	return 0;
}

int wi_txn_exchange(const wi_txn_ctx *cx, const wi_form *f, const wi_txn_caller *caller, time_t now,
		    wi_txn_issued *ret, wi_oauth_err *err)
{
	memset(ret, 0, sizeof(*ret));
	/* Txn-Token draft §6.1 / RFC 8693 §2.1: the required parameters. */
	const char *grant = wi_form_get(f, "grant_type");
	const char *rtt = wi_form_get(f, "requested_token_type");
	const char *aud = wi_form_get(f, "audience");
	const char *scope = wi_form_get(f, "scope");
	const char *st = wi_form_get(f, "subject_token");
	const char *stt = wi_form_get(f, "subject_token_type");
	const char *at = wi_form_get(f, "actor_token");
	const char *att = wi_form_get(f, "actor_token_type");
	const char *resource = wi_form_get(f, "resource");
	if (!grant)
		return oauth_fail(err, 400, "invalid_request", "grant_type is required");
	/* RFC 8693 §2.1 lets a client name several targets; a Txn-Token is for
	 * one (§2.2.2: invalid_target when unwilling to issue for them all). */
	if (wi_form_count_of(f, "audience") > 1 || wi_form_count_of(f, "resource") > 1)
		return oauth_fail(err, 400, "invalid_target", "one audience and one resource per Txn-Token");
	if (strcmp(grant, WI_GRANT_TOKEN_EXCHANGE) != 0)
		return oauth_fail(err, 400, "unsupported_grant_type", "only token exchange is supported");
	if (!rtt || strcmp(rtt, WI_TOKEN_TYPE_TXN) != 0)
		return oauth_fail(err, 400, "invalid_request", "requested_token_type must be %s", WI_TOKEN_TYPE_TXN);
	if (!st || !*st || !stt)
		return oauth_fail(err, 400, "invalid_request", "subject_token and subject_token_type are required");
	if (!scope || !*scope)
		return oauth_fail(err, 400, "invalid_scope", "scope is required");
	if (!aud)
		return oauth_fail(err, 400, "invalid_target", "audience is required");
	/* The Txn-Token's audience is our trust domain and nothing else. */
	if (strcmp(aud, cx->trust_domain) != 0)
		return oauth_fail(err, 400, "invalid_target", "audience must be the trust domain %s", cx->trust_domain);
	if (at && (!att || strcmp(att, WI_TOKEN_TYPE_JWT) != 0))
		return oauth_fail(err, 400, "invalid_request", "actor_token_type must be %s", WI_TOKEN_TYPE_JWT);
	if (!at && att)
		return oauth_fail(err, 400, "invalid_request", "actor_token_type without actor_token");

	scopes requested = {0};
	if (scopes_parse(scope, &requested) < 0 || requested.n == 0)
		return oauth_fail(err, 400, "invalid_scope", "scope is malformed");
	int rc = 0;
	scopes cap = {0};
	json_auto_t *details = NULL;
	json_auto_t *context = NULL;
	json_auto_t *subj = NULL;   /* verified subject claims */
	json_auto_t *claims = NULL; /* the Txn-Token being built */
	_cleanup_(freep) char *actor = NULL;
	_cleanup_(freep) char *exchanger = NULL;
	_cleanup_(freep) char *subject_svid = NULL;
	_cleanup_(freep) char *granted = NULL;
	_cleanup_(freep) char *consent_hash = NULL;
	uint8_t st_digest[WI_SHA256_LEN]; /* a user subject token's SHA-256 */
	const wi_issuer_config *issuer = NULL;
	subject_kind kind;
	int64_t subj_exp = 0;

	if ((rc = json_param(f, "request_details", &details, err)) < 0 ||
	    (rc = json_param(f, "request_context", &context, err)) < 0)
		goto out;

	/* 1. The actor: the caller, or the workload named by actor_token when
	 *    the caller is its configured exchanger (an orchestrator). */
	if (at) {
		if (verify_svid_to_us(cx, at, now, &actor) < 0) {
			rc = oauth_fail(err, 400, "invalid_request", "actor_token is not a valid JWT-SVID for %s: %s",
					cx->issuer_id, reason());
			goto out;
		}
		if (!is_self(caller, actor)) {
			if (!wi_txn_policy_may_exchange_for(caller->policy, actor)) {
				rc = oauth_fail(err, 400, "unauthorized_client", "the caller may not obtain tokens for %s",
						actor);
				goto out;
			}
			exchanger = strdup(caller->spiffe_id);
			if (!exchanger) {
				rc = oauth_fail(err, 500, "server_error", "out of memory");
				goto out;
			}
		}
	} else {
		actor = strdup(caller->spiffe_id);
		if (!actor) {
			rc = oauth_fail(err, 500, "server_error", "out of memory");
			goto out;
		}
	}
	const wi_txn_policy *policy = policy_of(cx, caller, actor);
	if (!policy) {
		rc = oauth_fail(err, 400, "unauthorized_client", "%s may not obtain Transaction Tokens", actor);
		goto out;
	}
	/* A revoked agent gets nothing, neither as actor nor as the exchanger
	 * obtaining tokens for another. */
	if (wi_revocations_is_revoked(cx->revocations, NULL, NULL, (const char *const[]){actor, caller->spiffe_id}, 2,
				      now)) {
		rc = oauth_fail(err, 400, "unauthorized_client", "%s has been revoked",
				wi_revocations_is_revoked(cx->revocations, NULL, NULL, (const char *const[]){actor}, 1, now)
					? actor
					: caller->spiffe_id);
		goto out;
	}

	/* 2. The subject. */
	if (strcmp(stt, WI_TOKEN_TYPE_TXN) == 0) {
		kind = SUBJ_TXN;
		if (wi_txn_verify(cx, st, now, &subj) < 0) {
			rc = oauth_fail(err, 400, "invalid_request", "subject_token: %s", reason());
			goto out;
		}
	} else if (strcmp(stt, WI_TOKEN_TYPE_JWT) == 0 && !claims_have_iss(st)) {
		kind = SUBJ_AGENT;
		if (verify_svid_to_us(cx, st, now, &subject_svid) < 0) {
			rc = oauth_fail(err, 400, "invalid_request", "subject_token is not a valid JWT-SVID for %s: %s",
					cx->issuer_id, reason());
			goto out;
		}
		/* An autonomous run is the agent acting as itself. */
		if (strcmp(subject_svid, actor) != 0) {
			rc = oauth_fail(err, 400, "invalid_request", "an autonomous subject must be the actor itself");
			goto out;
		}
	} else if (strcmp(stt, WI_TOKEN_TYPE_ACCESS) == 0 || strcmp(stt, WI_TOKEN_TYPE_ID) == 0 ||
		   strcmp(stt, WI_TOKEN_TYPE_JWT) == 0) {
		kind = SUBJ_USER;
		int vr = wi_issuers_verify(cx->issuers, st, now, &issuer, &subj, st_digest);
		if (vr == WI_E_UNAVAILABLE) {
			rc = oauth_fail(err, 503, "temporarily_unavailable", "%s", reason());
			goto out;
		}
		if (vr < 0) {
			rc = oauth_fail(err, 400, "invalid_request", "subject_token: %s", reason());
			goto out;
		}
		/* The kill switch for a human: no new runs on their behalf. */
		char principal[WI_REVOCATION_VALUE_MAX];
		int pn = snprintf(principal, sizeof(principal), "%s %s", wi_jwt_string_claim(subj, "iss"),
				  wi_jwt_string_claim(subj, "sub"));
		if (pn < 0 || (size_t)pn >= sizeof(principal)) {
			/* It could be neither revoked nor checked: refused. */
			rc = oauth_fail(err, 400, "invalid_request", "subject_token: sub is too long");
			goto out;
		}
		if (wi_revocations_is_revoked(cx->revocations, NULL, principal, NULL, 0, now)) {
			rc = oauth_fail(err, 400, "invalid_request", "the principal has been revoked");
			goto out;
		}
	} else if (strcmp(stt, WI_TOKEN_TYPE_REFRESH) == 0) {
		/* Txn-Token draft §6.1.1: refresh tokens MUST NOT be used. */
		rc = oauth_fail(err, 400, "invalid_request", "a refresh token cannot be exchanged");
		goto out;
	} else {
		rc = oauth_fail(err, 400, "invalid_request", "unsupported subject_token_type");
		goto out;
	}

	/* 3. What the subject allows: the user's scope, the parent's scope.
	 *    Only an absent claim from an issuer whose tokens may omit it leaves
	 *    the policy alone to bound the grant; a present but empty claim
	 *    ("scope": "", "scp": []) grants nothing. */
	bool policy_bounds_alone = false;
	if (kind == SUBJ_USER) {
		int sr = scopes_from_claims(subj, issuer->scope_claim, &cap);
		policy_bounds_alone = sr == WI_E_NOT_FOUND && issuer->scope_optional;
		if (sr == WI_E_NOT_FOUND && !issuer->scope_optional) {
			/* Txn-Token draft §7.1: an undeterminable scope MUST be
			 * rejected, never treated as unconstrained. */
			rc = oauth_fail(err, 400, "invalid_scope", "the subject token carries no scope");
			goto out;
		}
		if (sr < 0 && sr != WI_E_NOT_FOUND) {
			rc = oauth_fail(err, 400, "invalid_request", "subject_token: %s", reason());
			goto out;
		}
		bool pres;
		if (wi_jwt_numeric_date(subj, "exp", &pres, &subj_exp) < 0)
			subj_exp = now;
	} else if (kind == SUBJ_TXN) {
		const char *ps = wi_jwt_string_claim(subj, "scope");
		if (!ps || scopes_parse(ps, &cap) < 0) {
			rc = oauth_fail(err, 400, "invalid_request", "subject_token has no valid scope");
			goto out;
		}
		bool pres;
		if (wi_jwt_numeric_date(subj, "exp", &pres, &subj_exp) < 0)
			subj_exp = now;
	}
	for (size_t i = 0; i < requested.n; i++) {
		bool ok = wi_txn_policy_allows_scope(policy, requested.v[i]) &&
			  (kind == SUBJ_AGENT || policy_bounds_alone || scopes_has(&cap, requested.v[i]));
		if (!ok) {
			rc = oauth_fail(err, 400, "invalid_scope", "scope \"%.64s\" is not granted", requested.v[i]);
			goto out;
		}
	}
	granted = scopes_join(&requested);

	/* 4. Resource indicators (RFC 8707): allowed by the actor's policy, and
	 *    for a replacement within the parent's. */
	json_t *resources = json_array();
	if (!resources || !granted) {
		json_decref(resources);
		rc = oauth_fail(err, 500, "server_error", "out of memory");
		goto out;
	}
	if (resource) {
		bool ok = wi_txn_policy_allows_resource(policy, resource);
		if (ok && kind == SUBJ_TXN) {
			const json_t *pr = json_object_get(json_object_get(subj, "tctx"), "resource");
			bool found = false;
			size_t i;
			const json_t *v;
			json_array_foreach(pr, i, v) found = found || (json_is_string(v) && strcmp(json_string_value(v), resource) == 0);
			ok = found;
		}
		if (!ok) {
			json_decref(resources);
			rc = oauth_fail(err, 400, "invalid_target", "resource is not allowed");
			goto out;
		}
		json_array_append_new(resources, json_string(resource));
	}

	/* 5. Lifetime: the policy's, never past the subject's exp. */
	int64_t ttl = wi_txn_policy_max_ttl(policy) ? wi_txn_policy_max_ttl(policy) : cx->default_ttl;
	int64_t exp = (int64_t)now + ttl;
	if ((kind == SUBJ_USER || kind == SUBJ_TXN) && subj_exp < exp)
		exp = subj_exp;
	if (exp <= (int64_t)now) {
		json_decref(resources);
		rc = oauth_fail(err, 400, "invalid_request", "subject_token expires too soon");
		goto out;
	}

	/* 6. The claims. */
	claims = json_object();
	json_t *act = json_pack("{s:s, s:s}", "sub", actor, "sub_profile", "ai_agent");
	json_t *chain = json_array();
	json_t *tctx = NULL;
	json_t *rctx = json_pack("{s:s, s:s, s:s}", "transport", caller->transport, "node", cx->node, "authn",
				 caller->authn);
	char *txn = NULL;
	int hops = 1;
	rc = claims && act && chain && rctx ? 0 : WI_E_NOMEM;
	if (rc == 0 && exchanger)
		rc = set_new(rctx, "exchanged_by", json_string(exchanger));
	if (rc == 0 && context)
		rc = set_new(rctx, "request", json_incref(context));
	if (rc == 0 && kind == SUBJ_TXN) {
		/* Replacement: keep txn, sub, sub_id, sub_profile, aud, tctx; nest act;
		 * grow the path, refusing loops and too many hops. */
		const json_t *path = json_object_get(
			json_object_get(json_object_get(subj, "agentic_ctx"), "chain_metadata"), "txn_path");
		size_t i;
		const json_t *v;
		json_array_foreach(path, i, v)
		{
			if (json_is_string(v) && strcmp(json_string_value(v), actor) == 0) {
				json_decref(act), json_decref(chain), json_decref(rctx), json_decref(resources);
				rc = oauth_fail(err, 400, "invalid_request", "loop: %s is already in the call chain", actor);
				goto out;
			}
			json_array_append(chain, (json_t *)v);
		}
		hops = (int)json_array_size(chain) + 1;
		if (hops > cx->max_hops) {
			json_decref(act), json_decref(chain), json_decref(rctx), json_decref(resources);
			rc = oauth_fail(err, 400, "invalid_request", "more than %d hops", cx->max_hops);
			goto out;
		}
		const json_t *parent_act = json_object_get(subj, "act");
		if (parent_act)
			rc = set_new(act, "act", json_deep_copy(parent_act));
		txn = (char *)wi_jwt_string_claim(subj, "txn");
		static const char *const keep[] = {"sub", "sub_id", "sub_profile"};
		for (size_t k = 0; rc == 0 && k < 3; k++) {
			const json_t *kv = json_object_get(subj, keep[k]);
			if (kv)
				rc = set_new(claims, keep[k], json_deep_copy(kv));
		}
		tctx = json_deep_copy(json_object_get(subj, "tctx"));
		if (!tctx)
			tctx = json_object();
		if (rc == 0 && resource)
			rc = set_new(tctx, "resource", json_incref(resources));
		if (rc == 0 && details)
			rc = set_new(tctx, "replacement_details", json_incref(details));
	} else {
		tctx = json_object();
		if (rc == 0 && !tctx)
			rc = WI_E_NOMEM;
		if (rc == 0)
			rc = set_new(tctx, "resource", json_incref(resources));
		if (rc == 0 && details)
			rc = set_new(tctx, "details", json_incref(details));
		if (kind == SUBJ_USER) {
			const char *uiss = wi_jwt_string_claim(subj, "iss");
			const char *usub = wi_jwt_string_claim(subj, "sub");
			bool pres;
			int64_t uiat = 0;
			if (wi_jwt_numeric_date(subj, "iat", &pres, &uiat) < 0)
				uiat = 0;
			if (rc == 0)
				rc = token_hash(st_digest, &consent_hash);
			if (rc == 0)
				rc = set_new(claims, "sub", json_string(usub));
			if (rc == 0)
				rc = set_new(claims, "sub_id", json_pack("{s:s, s:s, s:s}", "format", "iss_sub", "iss", uiss, "sub", usub));
			if (rc == 0)
				rc = set_new(claims, "sub_profile", json_string("user"));
			/* The consent record: which user token delegated, issued when,
			 * exchanged when (a hash, never the token: draft §6.1). */
			if (rc == 0)
				rc = set_new(tctx, "consent",
					     json_pack("{s:s, s:s, s:I, s:I}", "issuer", uiss, "token_hash", consent_hash,
						       "token_iat", (json_int_t)uiat, "delegated_at", (json_int_t)now));
		} else {
			if (rc == 0)
				rc = set_new(claims, "sub", json_string(actor));
			if (rc == 0)
				rc = set_new(claims, "sub_profile", json_string("ai_agent"));
		}
	}
	if (rc == 0)
		rc = json_array_append_new(chain, json_string(actor)) == 0 ? 0 : WI_E_NOMEM;
	char *new_txn = NULL;
	if (rc == 0 && !txn) {
		rc = random_id(&new_txn);
		txn = new_txn;
	}
	if (rc == 0)
		rc = set_new(claims, "iss", json_string(cx->issuer_id));
	if (rc == 0)
		rc = set_new(claims, "iat", json_integer((json_int_t)now));
	if (rc == 0)
		rc = set_new(claims, "exp", json_integer((json_int_t)exp));
	if (rc == 0)
		rc = set_new(claims, "aud", json_string(cx->trust_domain));
	if (rc == 0)
		rc = set_new(claims, "txn", json_string(txn));
	if (rc == 0)
		rc = set_new(claims, "scope", json_string(granted));
	if (rc == 0)
		rc = set_new(claims, "req_wl", json_string(actor));
	/* Autonomous runs have no act (the agent is the subject). */
	if (rc == 0 && kind != SUBJ_AGENT)
		rc = set_new(claims, "act", json_incref(act));
	if (rc == 0)
		rc = set_new(claims, "tctx", json_incref(tctx));
	if (rc == 0)
		rc = set_new(claims, "rctx", json_incref(rctx));
	if (rc == 0)
		rc = set_new(claims, "agentic_ctx",
			     json_pack("{s:{s:i, s:O}}", "chain_metadata", "hop_count", hops, "txn_path", chain));
	json_decref(act);
	json_decref(chain);
	json_decref(tctx);
	json_decref(rctx);
	json_decref(resources);
	if (rc == 0) {
		wi_jwt_keyset *ks = wi_jwt_keys_get(cx->txn_keys);
		rc = wi_jws_sign(wi_jwt_keyset_signer(ks), wi_jwt_keyset_kid(ks), WI_TXN_TYP, claims, &ret->token);
		wi_jwt_keyset_unref(ks);
	}
	if (rc == 0) {
		ret->txn = strdup(txn);
		ret->actor = TAKE_PTR(actor);
		ret->exp = (time_t)exp;
		ret->expires_in = exp - (int64_t)now;
		ret->replacement = kind == SUBJ_TXN;
		ret->autonomous = kind == SUBJ_AGENT;
		if (!ret->txn)
			rc = WI_E_NOMEM;
	}
	free(new_txn);
	if (rc < 0) {
		wi_txn_issued_clear(ret);
		rc = oauth_fail(err, 500, "server_error", "cannot issue the token");
	}
out:
	scopes_clear(&requested);
	scopes_clear(&cap);
	return rc;
}
