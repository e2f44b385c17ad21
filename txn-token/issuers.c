/* txn-token/issuers.c — trusted issuers of users' tokens and their keys. */
#include "txn-token/issuers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "core/b64url.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/jwk.h"
#include "core/limits.h"
#include "core/verified_cache.h"
#include "txn-token/jwks_fetch.h"

typedef struct issuer {
	const wi_issuer_config *cfg;
	pthread_mutex_t lock;  /* guards the fields below; held across a fetch */
	wi_jwks *keys;         /* current set, or NULL */
	time_t fresh_until;    /* URL: cache lifetime */
	time_t last_attempt;   /* URL: last fetch, successful or not */
	int last_error;        /* URL: 0, or why the last fetch failed */
} issuer;

struct wi_issuers {
	issuer **v; /* pointers: an issuer's mutex never moves */
	size_t n;
	atomic_llong abort_at_ms; /* CLOCK_MONOTONIC ms from which fetches abort; 0 = never */
	wi_verified_cache *verified; /* tokens that verified, by digest (core/verified_cache.h) */
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool aborted(const atomic_llong *at)
{
	long long t = atomic_load(at);
	return t != 0 && mono_ms() >= t;
}

static int load_file(issuer *is)
{
	_cleanup_(freep) uint8_t *data = NULL;
	size_t len;
	WI_TRY(wi_fs_read_file(is->cfg->jwks_file, WI_JWKS_DOC_MAX, &data, &len));
	return wi_jwks_parse((const char *)data, len, WI_JWKS_DOC_MAX, &is->keys);
}

int wi_issuers_new(const wi_config *c, wi_issuers **ret)
{
	wi_issuers *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->n = wi_config_issuer_count(c);
	s->v = calloc(s->n ? s->n : 1, sizeof(*s->v));
	if (!s->v || wi_verified_cache_new(WI_SUBJECT_CACHE_SLOTS, &s->verified) < 0) {
		free(s->v);
		free(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	for (size_t i = 0; i < s->n; i++) {
		issuer *is = calloc(1, sizeof(*is));
		if (!is) {
			s->n = i;
			wi_issuers_free(s);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
		s->v[i] = is;
		is->cfg = wi_config_issuer_at(c, i);
		pthread_mutex_init(&is->lock, NULL);
		const char *what = NULL;
		if (is->cfg->jwks_file && load_file(is) < 0)
			what = "jwks_file";
		else if (is->cfg->jwks_url && wi_jwks_fetch_init() < 0)
			/* Now, not at the first token: a node that cannot fetch keys
			 * should not start as if it could. */
			what = "jwks_url";
		if (what) {
			/* The config (which the detail quotes) outlives the set; `is` does not. */
			const wi_issuer_config *cfg = is->cfg;
			char why[256];
			snprintf(why, sizeof(why), "%s", wi_error_detail());
			wi_issuers_free(s);
			WI_FAIL(WI_E_CONFIG, "issuer %.128s: %s: %s", cfg->issuer, what, why);
		}
	}
	*ret = s;
	return 0;
}

int wi_issuers_add_static(wi_issuers *s, const wi_issuer_config *cfg, wi_jwks *keys)
{
	for (size_t i = 0; i < s->n; i++)
		WI_CHECK(strcmp(s->v[i]->cfg->issuer, cfg->issuer) != 0, WI_E_EXISTS, "issuer %.128s is listed twice",
			 cfg->issuer);
	issuer **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
	WI_CHECK_ALLOC(nv);
	s->v = nv;
	issuer *is = calloc(1, sizeof(*is));
	WI_CHECK_ALLOC(is);
	s->v[s->n++] = is;
	is->cfg = cfg;
	pthread_mutex_init(&is->lock, NULL);
	is->keys = wi_jwks_ref(keys);
	return 0;
}

void wi_issuers_abort(wi_issuers *s, unsigned grace_ms)
{
	if (s)
		atomic_store(&s->abort_at_ms, mono_ms() + (long long)grace_ms + 1);
}

wi_issuers *wi_issuers_free(wi_issuers *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		if (!s->v[i])
			continue;
		wi_jwks_unref(s->v[i]->keys);
		pthread_mutex_destroy(&s->v[i]->lock);
		free(s->v[i]);
	}
	free(s->v);
	wi_verified_cache_free(s->verified);
	free(s);
	return NULL;
}

void wi_issuers_cache_stats(const wi_issuers *s, uint64_t *ret_hits, uint64_t *ret_misses)
{
	wi_verified_cache_stats(s->verified, ret_hits, ret_misses);
}

/* ---- fetching a JWKS URL ------------------------------------------------ */

static bool fetch_cancelled(void *ud)
{
	return aborted(ud);
}

/* Fetches and parses the issuer's JWKS; called with is->lock held. */
static int fetch(issuer *is, const atomic_llong *abort_at, time_t now)
{
	WI_CHECK(!aborted(abort_at), WI_E_UNAVAILABLE, "shutting down");
	is->last_attempt = now;
	wi_buf doc;
	long max_age;
	int rc = wi_jwks_fetch_get(is->cfg->jwks_url, fetch_cancelled, (void *)abort_at, &doc, &max_age);
	if (rc < 0)
		rc = wi__error_set(rc, __FILE__, __LINE__, "JWKS of %.128s: %s", is->cfg->issuer, wi_error_detail());
	wi_jwks *keys = NULL;
	if (rc == 0) {
		if (wi_jwks_parse((const char *)doc.data, doc.len, WI_JWKS_DOC_MAX, &keys) < 0)
			rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "JWKS of %.128s is malformed",
					   is->cfg->issuer);
		wi_buf_free(&doc);
	}
	is->last_error = rc;
	if (rc < 0)
		return rc;
	long age = max_age < 0 ? WI_JWKS_CACHE_DEFAULT_SECONDS : max_age;
	if (age < WI_JWKS_CACHE_MIN_SECONDS)
		age = WI_JWKS_CACHE_MIN_SECONDS;
	if (age > WI_JWKS_CACHE_MAX_SECONDS)
		age = WI_JWKS_CACHE_MAX_SECONDS;
	wi_jwks_unref(is->keys);
	is->keys = keys;
	is->fresh_until = now + age;
	return 0;
}

/* The issuer's current keys (referenced).  `need_kid`: the kid the token
 * names, to re-fetch once when it is unknown (key rotation at the IdP). */
static int current_keys(issuer *is, const atomic_llong *abort_at, const char *need_kid, time_t now, wi_jwks **ret)
{
	pthread_mutex_lock(&is->lock);
	int rc = 0;
	if (is->cfg->jwks_url) {
		bool stale = !is->keys || now >= is->fresh_until;
		bool unknown = is->keys && need_kid && !wi_jwks_find(is->keys, need_kid);
		bool may_retry = now - is->last_attempt >= WI_JWKS_REFETCH_MIN_SECONDS;
		if ((stale || unknown) && (may_retry || is->last_attempt == 0)) {
			rc = fetch(is, abort_at, now);
			if (rc < 0 && is->keys && now < is->fresh_until + WI_JWKS_CACHE_MAX_SECONDS)
				rc = 0; /* keep serving the last good set while the IdP is down */
		} else if (!is->keys && is->last_error < 0) {
			/* Failed moments ago: fail fast instead of stacking timeouts. */
			rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__,
					   "keys of issuer %.128s are unavailable (last fetch failed)", is->cfg->issuer);
		}
	}
	wi_jwks *k = rc == 0 ? wi_jwks_ref(is->keys) : NULL;
	pthread_mutex_unlock(&is->lock);
	if (rc < 0)
		return rc;
	WI_CHECK(k, WI_E_UNAVAILABLE, "issuer %.128s has no keys", is->cfg->issuer);
	*ret = k;
	return 0;
}

/* Chooses the issuer by the token's `iss` and its keys by the header's
 * `kid`, neither trusted: they only pick the keys (and algorithms) to try,
 * and the claims come back from wi_jws_verify_pick only if those keys
 * verify them. */
typedef struct pick_ctx {
	wi_issuers *s;
	time_t now;
	issuer *is;   /* out */
	wi_jwks *keys; /* out, referenced */
} pick_ctx;

static int pick_keys(void *ctx, const json_t *hdr, const json_t *claims, const wi_jwks **ret_keys,
		     unsigned *ret_algs)
{
	pick_ctx *p = ctx;
	const char *iss = wi_jwt_string_claim(claims, "iss");
	WI_CHECK(iss, WI_E_INVAL, "iss claim is missing");
	issuer *is = NULL;
	for (size_t i = 0; i < p->s->n && !is; i++)
		if (strcmp(p->s->v[i]->cfg->issuer, iss) == 0)
			is = p->s->v[i];
	WI_CHECK(is, WI_E_INVAL, "issuer is not trusted");
	WI_TRY(current_keys(is, &p->s->abort_at_ms, wi_jwt_string_claim(hdr, "kid"), p->now, &p->keys));
	p->is = is;
	*ret_keys = p->keys;
	*ret_algs = is->cfg->algorithms;
	return 0;
}

/* A token that verified moments ago under the issuer's current key set: its
 * claims, re-checked for time, without a signature check.  False (nothing
 * written) on a miss, a changed key set or expired claims. */
static bool verified_before(wi_issuers *s, const uint8_t *digest, time_t now, const wi_issuer_config **ret_issuer,
			    json_t **ret_claims)
{
	const void *owner = NULL;
	wi_jwks *was = NULL;
	json_t *claims = NULL;
	if (wi_verified_cache_get(s->verified, digest, now, NULL, &owner, &was, &claims) < 0)
		return false;
	issuer *is = (issuer *)owner;
	wi_jwks *cur = NULL;
	/* The same key set object, referenced by the entry, so its address was
	 * not reused: a re-fetched, reloaded or rotated JWKS is another object. */
	bool ok = current_keys(is, &s->abort_at_ms, NULL, now, &cur) == 0 && cur == was &&
		  wi_jwt_check_times(claims, now, NULL) == 0;
	wi_jwks_unref(cur);
	if (!ok)
		wi_verified_cache_reject(s->verified, digest, was); /* a miss after all */
	wi_jwks_unref(was);
	if (!ok) {
		json_decref(claims);
		wi_error_clear(); /* the full path below says why, if it fails */
		return false;
	}
	*ret_issuer = is->cfg;
	*ret_claims = claims;
	return true;
}

int wi_issuers_verify(wi_issuers *s, const char *token, time_t now, const wi_issuer_config **ret_issuer,
		      json_t **ret_claims, uint8_t ret_digest[WI_SHA256_LEN])
{
	size_t len = strlen(token);
	WI_CHECK(len <= WI_JWT_MAX_LEN, WI_E_TOO_BIG, "token longer than %u bytes", (unsigned)WI_JWT_MAX_LEN);
	uint8_t digest[WI_VERIFIED_DIGEST_LEN];
	WI_TRY(wi_verified_cache_digest(token, len, digest));
	if (verified_before(s, digest, now, ret_issuer, ret_claims)) {
		if (ret_digest)
			memcpy(ret_digest, digest, sizeof(digest));
		return 0;
	}

	pick_ctx pc = {.s = s, .now = now};
	json_auto_t *hdr = NULL;
	json_auto_t *claims = NULL;
	/* The algorithm allow-list is the chosen issuer's (pick_keys). */
	wi_jws_verify_opts opts = {.max_token_len = WI_JWT_MAX_LEN};
	int rc = wi_jws_verify_pick(token, len, pick_keys, &pc, &opts, &hdr, &claims);
	_cleanup_(wi_jwks_unrefp) wi_jwks *keys = pc.keys;
	if (rc < 0)
		return rc;
	/* The issuer was chosen from these very claims (one parse), and they
	 * verified under its keys. */
	issuer *is = pc.is;
	if (is->cfg->token_type) {
		/* RFC 8725 §3.11 / RFC 9068 §2.1: explicit typing, case-insensitive,
		 * with or without the "application/" prefix. */
		const char *typ = wi_jwt_string_claim(hdr, "typ");
		const char *t = typ && strncasecmp(typ, "application/", 12) == 0 ? typ + 12 : typ;
		WI_CHECK(t && strcasecmp(t, is->cfg->token_type) == 0, WI_E_INVAL, "typ must be %.32s",
			 is->cfg->token_type);
	}
	bool aud_ok = false;
	for (size_t i = 0; i < is->cfg->n_audiences && !aud_ok; i++)
		aud_ok = wi_jwt_check_audience(claims, is->cfg->audiences[i]) == 0;
	WI_CHECK(aud_ok, WI_E_INVAL, "audience mismatch");
	int64_t exp = 0;
	WI_TRY(wi_jwt_check_times(claims, now, &exp));
	const char *sub = wi_jwt_string_claim(claims, "sub");
	WI_CHECK(sub && *sub, WI_E_INVAL, "sub claim is missing");
	/* Everything above depends only on the bytes, the key set and the
	 * clock: remember it until the token expires (bounded), and recheck the
	 * clock and the key set on a hit. */
	wi_verified_cache_remember(s->verified, digest, is, keys, claims, now, exp);
	*ret_issuer = is->cfg;
	*ret_claims = TAKE_PTR(claims);
	if (ret_digest)
		memcpy(ret_digest, digest, sizeof(digest));
	return 0;
}
