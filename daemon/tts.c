/* daemon/tts.c — starts and stops the Transaction Token Service. */
#include "daemon/tts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/fsutil.h"
#include "core/jws.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/store.h"
#include "txn-token/http.h"
#include "txn-token/issuers.h"
#include "txn-token/revocations.h"
#include "txn-token/runs.h"
#include "txn-token/service.h"

#define DEV_ISSUER "https://dev-issuer.wimsed.invalid"
#define DEV_AUDIENCE "wimsed"
#define PRUNE_EVERY_TICKS 300

struct wi_daemon_tts {
	const wi_config *config;
	wi_ca *ca;
	wi_store *store;
	wi_revocations *revocations;
	wi_jwt_keys *txn_keys;
	wi_jwt_keys *dev_keys;
	wi_issuer_config dev_cfg;
	const char *dev_aud[1];
	wi_issuers *issuers;
	wi_runs *runs;
	wi_tts *tts;
	wi_tts_http *http;
	SSL_CTX *tls;
	uint64_t tls_bundle_gen; /* of the CA bundle its verify store holds */
	time_t tls_refresh_at;
	int64_t tls_ttl;
	char node[128];
	char issuer_id[WI_SPIFFE_ID_MAX + 1];
	unsigned long ticks;
	unsigned long persist_failed_at; /* tick of the last logged persist failure */
};

/* The host name as a SPIFFE path segment: [a-z0-9._-], lowercase. */
static void node_name(char *out, size_t cap)
{
	char host[256] = "localhost";
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	size_t o = 0;
	for (const char *p = host; *p && o + 1 < cap; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
			ch = '-';
		out[o++] = ch;
	}
	out[o] = '\0';
	if (o == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		snprintf(out, cap, "node");
}

/* Loads a fresh SVID for our issuer id into the TLS context. */
static int tls_rotate(wi_daemon_tts *t, time_t now)
{
	wi_x509_svid *svid = NULL;
	WI_TRY(wi_ca_mint_x509_svid(t->ca, t->issuer_id, t->tls_ttl, now, &svid));
	size_t clen, klen;
	const uint8_t *chain = wi_x509_svid_chain_der(svid, &clen);
	const uint8_t *key = wi_x509_svid_key_der(svid, &klen);
	const uint8_t *p = chain;
	const uint8_t *end = chain + clen;
	int rc = 0;
	X509 *leaf = d2i_X509(NULL, &p, (long)(end - p));
	const uint8_t *kp = key;
	EVP_PKEY *pk = d2i_AutoPrivateKey(NULL, &kp, (long)klen);
	if (!leaf || !pk || SSL_CTX_use_certificate(t->tls, leaf) != 1 || SSL_CTX_use_PrivateKey(t->tls, pk) != 1)
		rc = wi__error_set_ssl(WI_E_CRYPTO, __FILE__, __LINE__, "TLS certificate");
	SSL_CTX_clear_chain_certs(t->tls);
	while (rc == 0 && p < end) {
		X509 *ic = d2i_X509(NULL, &p, (long)(end - p));
		if (!ic || SSL_CTX_add0_chain_cert(t->tls, ic) != 1) {
			X509_free(ic);
			rc = wi__error_set_ssl(WI_E_CRYPTO, __FILE__, __LINE__, "TLS chain");
		}
	}
	X509_free(leaf);
	EVP_PKEY_free(pk);
	/* Re-mint at half-life, as for every other SVID. */
	t->tls_refresh_at = now + (wi_x509_svid_not_after(svid) - now) / 2;
	wi_x509_svid_unref(svid);
	return rc;
}

/* X509-SVID §5: a client leaf has exactly one URI SAN; chain checks are
 * OpenSSL's, against our bundle. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	if (!ok || X509_STORE_CTX_get_error_depth(ctx) != 0)
		return ok;
	X509 *leaf = X509_STORE_CTX_get_current_cert(ctx);
	GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int uris = 0;
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++)
		uris += sk_GENERAL_NAME_value(sans, i)->type == GEN_URI;
	GENERAL_NAMES_free(sans);
	if (uris != 1) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* A verify store of the CA's current bundle: every published CA, so client
 * SVIDs of the outgoing and of the incoming CA both verify. */
static int tls_load_bundle(wi_daemon_tts *t)
{
	wi_ca_snapshot *v = wi_ca_snapshot_get(t->ca);
	size_t blen;
	const uint8_t *b = wi_ca_snapshot_bundle_der(v, &blen);
	const uint8_t *p = b, *end = b + blen;
	X509_STORE *store = X509_STORE_new();
	int rc = store ? 0 : WI_E_NOMEM;
	while (rc == 0 && p < end) {
		X509 *x = d2i_X509(NULL, &p, (long)(end - p));
		if (!x || X509_STORE_add_cert(store, x) != 1)
			rc = wi__error_set_ssl(WI_E_CRYPTO, __FILE__, __LINE__, "bundle");
		X509_free(x);
	}
	if (rc == 0) {
		SSL_CTX_set_cert_store(t->tls, store); /* takes it; frees the old one */
		t->tls_bundle_gen = wi_ca_snapshot_generation(v);
	} else {
		X509_STORE_free(store);
	}
	wi_ca_snapshot_unref(v);
	return rc;
}

static int tls_setup(wi_daemon_tts *t, time_t now)
{
	t->tls = SSL_CTX_new(TLS_server_method());
	WI_CHECK_SSL(t->tls, "SSL_CTX_new");
	SSL_CTX_set_min_proto_version(t->tls, TLS1_3_VERSION);
	/* The client certificate is optional: a jwt-spiffe client assertion is
	 * the other way in; when presented, it must verify. */
	SSL_CTX_set_verify(t->tls, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_session_cache_mode(t->tls, SSL_SESS_CACHE_OFF);
	WI_TRY(tls_load_bundle(t));
	return tls_rotate(t, now);
}

int wi_daemon_tts_start(uv_loop_t *loop, const wi_config *c, wi_store *store, wi_attestor *attestor,
			wi_jwt_keys *svid_keys, wi_ca *ca, wi_daemon_tts **ret)
{
	*ret = NULL;
	if (!wi_config_exchange_socket(c))
		return 0;
	wi_daemon_tts *t = calloc(1, sizeof(*t));
	WI_CHECK_ALLOC(t);
	t->config = c;
	t->ca = ca;
	t->tls_ttl = wi_config_x509_svid_ttl(c);
	node_name(t->node, sizeof(t->node));
	snprintf(t->issuer_id, sizeof(t->issuer_id), "spiffe://%s/wimsed/%s", wi_config_trust_domain(c), t->node);
	time_t now = wi_clock_now();
	char dir[4096];
	t->store = store;
	int rc = wi_revocations_open(t->store, now, &t->revocations);
	if (rc == 0)
		rc = wi_fs_join(dir, sizeof(dir), wi_config_data_dir(c), "txn");
	if (rc == 0)
		rc = wi_fs_mkdir_private(dir);
	if (rc == 0)
		rc = wi_jwt_keys_open_rotating(
			&(wi_jwt_keys_options){.dir = dir,
					       .type = WI_JWT_KEY_EC_P256,
					       .rotate_every = wi_config_txn_key_rotate_every(c),
					       /* any entry's max_ttl may reach the ceiling */
					       .token_ttl = WI_TXN_TTL_MAX},
			now, &t->txn_keys);
	if (rc == 0)
		rc = wi_issuers_new(c, &t->issuers);
	if (rc == 0 && wi_config_dev_issuer(c)) {
		rc = wi_fs_join(dir, sizeof(dir), wi_config_data_dir(c), "dev-issuer");
		if (rc == 0)
			rc = wi_fs_mkdir_private(dir);
		if (rc == 0)
			rc = wi_jwt_keys_open(dir, WI_JWT_KEY_EC_P256, &t->dev_keys);
		t->dev_aud[0] = DEV_AUDIENCE;
		t->dev_cfg = (wi_issuer_config){.issuer = DEV_ISSUER, .audiences = t->dev_aud, .n_audiences = 1,
						.algorithms = WI_JWS_ES256, .token_type = "at+jwt", .scope_claim = "scope"};
		if (rc == 0)
			rc = wi_issuers_add_static(t->issuers, &t->dev_cfg, wi_jwt_keys_jwks(t->dev_keys));
		if (rc == 0)
			wi_log(WI_LOG_WARN, "dev_issuer", "the development user-token issuer is ON (iss=%s): not for production",
			       DEV_ISSUER);
	}
	if (rc == 0)
		rc = wi_runs_new(loop, t->revocations, WI_RUNS_PROCESSES_MAX, &t->runs);
	wi_registry *reg = wi_config_registry(c);
	if (rc == 0) {
		wi_tts_options o = {
			.trust_domain = wi_config_trust_domain(c),
			.issuer_id = t->issuer_id,
			.node = t->node,
			.attestor = attestor,
			.txn_keys = t->txn_keys,
			.svid_keys = svid_keys,
			.issuers = t->issuers,
			.revocations = t->revocations,
			.runs = t->runs,
			.registry = reg,
			.admin_selectors = wi_config_admin_selectors(c),
			.default_ttl = wi_config_txn_default_ttl(c),
			.max_hops = wi_config_txn_max_hops(c),
			.dev_keys = t->dev_keys,
			.dev_issuer = DEV_ISSUER,
			.dev_audience = DEV_AUDIENCE,
		};
		rc = wi_tts_new(&o, &t->tts);
	}
	wi_registry_unref(reg);
	if (rc == 0 && wi_config_https_listen(c))
		rc = tls_setup(t, now);
	if (rc == 0) {
		wi_tts_http_options ho = {
			.loop = loop,
			.unix_socket_path = wi_config_exchange_socket(c),
			.unix_socket_mode = 0777, /* access is decided by attestation */
			.tls_listen = wi_config_https_listen(c),
			.tls_ctx = t->tls,
			.handler = wi_tts_handle,
			.handler_ud = t->tts,
			.max_body = WI_TTS_BODY_MAX,
			.max_connections = WI_TTS_CONNECTIONS_MAX,
			.max_per_peer = WI_TTS_CONNECTIONS_PER_PEER_MAX,
			.io_timeout_ms = WI_TTS_IO_TIMEOUT_MS,
			.workers = 0, /* one per core: exchanges are CPU-bound */
		};
		rc = wi_tts_http_start(&ho, &t->http);
	}
	if (rc < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", wi_error_detail());
		wi_daemon_tts_stop(t);
		wi_daemon_tts_close(t);
		uv_run(loop, UV_RUN_NOWAIT);
		wi_daemon_tts_free(t);
		WI_FAIL(rc, "transaction token service: %s", why);
	}
	wi_log(WI_LOG_INFO, "tts_ready", "issuer=%s socket=%s https=%s txn_kid=%s revocations=%zu", t->issuer_id,
	       wi_config_exchange_socket(c), wi_config_https_listen(c) ? wi_config_https_listen(c) : "off",
	       wi_jwt_keys_kid(t->txn_keys), wi_revocations_count(t->revocations));
	*ret = t;
	return 0;
}

void wi_daemon_tts_set_registry(wi_daemon_tts *t, wi_registry *r)
{
	if (t && t->tts)
		wi_tts_set_registry(t->tts, r);
}

/* Revocations the store refused when a dead agent's runs were revoked are in
 * force in memory only: written here once the store takes them.  A failure
 * is logged once a minute while it lasts. */
#define PERSIST_LOG_EVERY_TICKS 60

static void persist_revocations(wi_daemon_tts *t, time_t now)
{
	if (wi_revocations_unpersisted(t->revocations) == 0)
		return;
	size_t left = 0;
	if (wi_revocations_persist(t->revocations, now, &left) == 0) {
		wi_log(WI_LOG_INFO, "revocations_persisted", "the revocations held only in memory are written");
		t->persist_failed_at = 0;
		return;
	}
	if (t->persist_failed_at == 0 || t->ticks - t->persist_failed_at >= PERSIST_LOG_EVERY_TICKS) {
		wi_log(WI_LOG_ERROR, "revocations_persist_failed",
		       "count=%zu: in force now, but a restart would forget them: %s", left, wi_error_detail());
		t->persist_failed_at = t->ticks ? t->ticks : 1;
	}
}

void wi_daemon_tts_tick(wi_daemon_tts *t)
{
	if (!t)
		return;
	time_t now = wi_clock_now();
	bool changed = false;
	if (wi_jwt_keys_tick(t->txn_keys, now, &changed) < 0)
		wi_log(WI_LOG_ERROR, "txn_key_rotation_failed", "keeping the current keys: %s", wi_error_detail());
	else if (changed)
		wi_log(WI_LOG_INFO, "txn_keys_rotated", "active_kid=%s", wi_jwt_keys_kid(t->txn_keys));
	if (t->tls) {
		wi_ca_snapshot *v = wi_ca_snapshot_get(t->ca);
		bool stale = wi_ca_snapshot_generation(v) != t->tls_bundle_gen;
		wi_ca_snapshot_unref(v);
		if (stale && tls_load_bundle(t) < 0)
			wi_log(WI_LOG_ERROR, "tls_bundle_failed", "%s", wi_error_detail());
	}
	if (t->tls && now >= t->tls_refresh_at && tls_rotate(t, now) < 0)
		wi_log(WI_LOG_ERROR, "tls_rotate_failed", "%s", wi_error_detail());
	if (++t->ticks % PRUNE_EVERY_TICKS == 0 && wi_revocations_prune(t->revocations, now) < 0)
		wi_log(WI_LOG_WARN, "revocations_prune_failed", "%s", wi_error_detail());
	persist_revocations(t, now);
}

void wi_daemon_tts_stop(wi_daemon_tts *t)
{
	if (!t)
		return;
	/* A slow IdP must not hold up the stop beyond the in-flight grace. */
	wi_issuers_abort(t->issuers, WI_SHUTDOWN_GRACE_MS);
	if (t->http)
		wi_tts_http_stop(t->http);
	t->http = NULL;
	/* Requests still running on the HTTP workers may track a run: keep the
	 * tracker alive (but idle) until they are done (wi_daemon_tts_close). */
	wi_runs_stop(t->runs);
}

void wi_daemon_tts_close(wi_daemon_tts *t)
{
	if (!t)
		return;
	wi_runs_free(t->runs);
	t->runs = NULL;
	/* Last chance for revocations held only in memory. */
	size_t left = 0;
	if (wi_revocations_unpersisted(t->revocations) > 0 &&
	    wi_revocations_persist(t->revocations, wi_clock_now(), &left) < 0)
		wi_log(WI_LOG_ERROR, "revocations_lost",
		       "count=%zu: in force until now, but the store refused them, so they end with this process: %s",
		       left, wi_error_detail());
}

wi_revocations *wi_daemon_tts_revocations(const wi_daemon_tts *t)
{
	return t ? t->revocations : NULL;
}

wi_jwt_keys *wi_daemon_tts_txn_keys(const wi_daemon_tts *t)
{
	return t ? t->txn_keys : NULL;
}

wi_tts *wi_daemon_tts_service(const wi_daemon_tts *t)
{
	return t ? t->tts : NULL;
}

void wi_daemon_tts_free(wi_daemon_tts *t)
{
	if (!t)
		return;
	wi_tts_free(t->tts);
	wi_issuers_free(t->issuers);
	wi_jwt_keys_free(t->dev_keys);
	wi_jwt_keys_free(t->txn_keys);
	wi_revocations_free(t->revocations);
	SSL_CTX_free(t->tls);
	free(t);
}
