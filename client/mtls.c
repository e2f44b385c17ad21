/* client/mtls.c — SPIFFE mutual TLS on OpenSSL 3 (TLS 1.3 only): the
 * certificate callback presents the source's current SVID, the
 * certificate-verify callback checks the X509-SVID rules, verifies the chain
 * against the current bundle of the peer's trust domain and authorizes the
 * peer's SPIFFE ID. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "client/internal.h"
#include "core/cleanup.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/spiffe_id.h"
#include "wimse/mtls.h"
#include "wimse/watch.h"

#define fail wi__client_fail

/* Certificates a peer may send in its chain (leaf included). */
#define PEER_CHAIN_DEPTH_MAX 8

WI_DEFINE_FREEP(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free)
WI_DEFINE_FREEP(SSL_CTX, SSL_CTX_free)
WI_DEFINE_FREEP(wimse_x509_snapshot, wimse_x509_snapshot_unref)

/* ---- X509-SVID leaf rules ------------------------------------------------- */

int wimse_x509_svid_leaf_id(X509 *leaf, char *buf, size_t cap)
{
	if (!leaf)
		return fail(WI_E_PARSE, 0, "no certificate");
	uint32_t flags = X509_get_extension_flags(leaf); /* also caches the extensions */
	if (flags & EXFLAG_INVALID)
		return fail(WI_E_PARSE, 0, "certificate has malformed or duplicate extensions");

	/* X509-SVID §4.1: exactly one URI SAN (validators MUST reject more). */
	int crit = 0;
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (!sans) {
		ERR_clear_error();
		return fail(WI_E_PARSE, 0, crit == -2 ? "certificate has more than one SAN extension"
						    : "certificate has no URI SAN (no SPIFFE ID)");
	}
	const ASN1_IA5STRING *uri = NULL;
	int n_uri = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type == GEN_URI) {
			uri = g->d.uniformResourceIdentifier;
			n_uri++;
		}
	}
	if (n_uri != 1)
		return fail(WI_E_PARSE, 0, "certificate has %d URI SANs, an X509-SVID must have exactly one", n_uri);
	int len = ASN1_STRING_length(uri);
	const unsigned char *s = ASN1_STRING_get0_data(uri);
	if (len <= 0 || (size_t)len > WI_SPIFFE_ID_MAX || memchr(s, '\0', (size_t)len))
		return fail(WI_E_PARSE, 0, "certificate URI SAN is empty, too long or holds a NUL byte");
	/* X509-SVID §2, §5: a leaf's SPIFFE ID has a non-root path. */
	if (wi_spiffe_id_validate((const char *)s, (size_t)len, true) < 0)
		return fail(WI_E_SPIFFE_ID, 0, "certificate URI SAN is not a SPIFFE ID with a path: %s",
			    wi_error_detail());

	/* X509-SVID §4.3: leaf cA=FALSE; py-spiffe also requires the extension. */
	_cleanup_(BASIC_CONSTRAINTS_freep) BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit,
									      NULL);
	if (!bc) {
		ERR_clear_error();
		return fail(WI_E_PARSE, 0, "certificate has no basicConstraints extension");
	}
	if (bc->ca || (flags & EXFLAG_CA))
		return fail(WI_E_PARSE, 0, "certificate is a CA certificate, not an X509-SVID leaf");

	/* X509-SVID §4.3: keyUsage MUST be present; leaf sets digitalSignature
	 * and MUST NOT set keyCertSign or cRLSign. */
	if (!(flags & EXFLAG_KUSAGE))
		return fail(WI_E_PARSE, 0, "certificate has no keyUsage extension");
	uint32_t ku = X509_get_key_usage(leaf);
	if (!(ku & KU_DIGITAL_SIGNATURE))
		return fail(WI_E_PARSE, 0, "certificate keyUsage lacks digitalSignature");
	if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))
		return fail(WI_E_PARSE, 0, "leaf certificate keyUsage has keyCertSign or cRLSign");

	if ((size_t)len >= cap)
		return fail(WI_E_TOO_BIG, 0, "SPIFFE ID does not fit the buffer");
	memcpy(buf, s, (size_t)len);
	buf[len] = '\0';
	return 0;
}

/* ---- authorizers ----------------------------------------------------------- */

typedef enum authz_kind { AUTHZ_IDS, AUTHZ_MEMBER_OF, AUTHZ_ANY, AUTHZ_FUNC } authz_kind;

struct wimse_authorizer {
	atomic_uint refs;
	authz_kind kind;
	size_t n_ids;
	char **ids;
	char *td; /* AUTHZ_MEMBER_OF: bare name */
	wimse_authorize_fn fn;
	void *userdata;
};

static wimse_authorizer *authz_ref(const wimse_authorizer *a)
{
	wimse_authorizer *m = (wimse_authorizer *)a; /* the count is the only mutable part */
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void wimse_authorizer_free(wimse_authorizer *a)
{
	if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < a->n_ids; i++)
		free(a->ids[i]);
	free(a->ids);
	free(a->td);
	free(a);
}
WI_DEFINE_FREEP(wimse_authorizer, wimse_authorizer_free)

static int authz_alloc(authz_kind kind, wimse_authorizer **ret)
{
	wimse_authorizer *a = calloc(1, sizeof(*a));
	if (!a)
		return fail(WI_E_NOMEM, 0, "out of memory");
	atomic_init(&a->refs, 1);
	a->kind = kind;
	*ret = a;
	return 0;
}

int wimse_authorize_one_of(const char *const *ids, size_t n, wimse_authorizer **ret)
{
	if (!ids || n == 0 || !ret)
		return fail(WI_E_INVAL, 0, "wimse_authorize_one_of: no SPIFFE ID given");
	for (size_t i = 0; i < n; i++) {
		if (!ids[i])
			return fail(WI_E_INVAL, 0, "wimse_authorize_one_of: NULL SPIFFE ID");
		size_t len = strlen(ids[i]);
		if (len > WI_SPIFFE_ID_MAX || wi_spiffe_id_validate(ids[i], len, false) < 0)
			return fail(WI_E_SPIFFE_ID, 0, "\"%s\" is not a SPIFFE ID: %s", ids[i], wi_error_detail());
		if (wi_spiffe_id_validate(ids[i], len, true) < 0)
			return fail(WI_E_SPIFFE_ID, 0,
				    "%s has no path and can never match an X509-SVID; authorize the trust domain "
				    "with wimse_authorize_member_of",
				    ids[i]);
	}
	_cleanup_(wimse_authorizer_freep) wimse_authorizer *a = NULL;
	int rc = authz_alloc(AUTHZ_IDS, &a);
	if (rc < 0)
		return rc;
	a->ids = calloc(n, sizeof(*a->ids));
	if (!a->ids)
		return fail(WI_E_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		a->ids[i] = strdup(ids[i]);
		if (!a->ids[i])
			return fail(WI_E_NOMEM, 0, "out of memory");
		a->n_ids++;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

int wimse_authorize_id(const char *id, wimse_authorizer **ret)
{
	return wimse_authorize_one_of(&id, 1, ret);
}

int wimse_authorize_member_of(const char *trust_domain, wimse_authorizer **ret)
{
	if (!trust_domain || !ret)
		return fail(WI_E_INVAL, 0, "wimse_authorize_member_of: NULL argument");
	const char *td = strncmp(trust_domain, "spiffe://", 9) == 0 ? trust_domain + 9 : trust_domain;
	size_t len = strlen(td);
	if (len > WI_TRUST_DOMAIN_MAX || wi_trust_domain_validate(td, len) < 0)
		return fail(WI_E_SPIFFE_ID, 0, "\"%s\" is not a trust domain name", trust_domain);
	_cleanup_(wimse_authorizer_freep) wimse_authorizer *a = NULL;
	int rc = authz_alloc(AUTHZ_MEMBER_OF, &a);
	if (rc < 0)
		return rc;
	a->td = strdup(td);
	if (!a->td)
		return fail(WI_E_NOMEM, 0, "out of memory");
	*ret = TAKE_PTR(a);
	return 0;
}

int wimse_authorize_any(wimse_authorizer **ret)
{
	if (!ret)
		return fail(WI_E_INVAL, 0, "wimse_authorize_any: NULL argument");
	return authz_alloc(AUTHZ_ANY, ret);
}

int wimse_authorize_func(wimse_authorize_fn fn, void *userdata, wimse_authorizer **ret)
{
	if (!fn || !ret)
		return fail(WI_E_INVAL, 0, "wimse_authorize_func: NULL argument");
	int rc = authz_alloc(AUTHZ_FUNC, ret);
	if (rc < 0)
		return rc;
	(*ret)->fn = fn;
	(*ret)->userdata = userdata;
	return 0;
}

/* The trust domain of a validated ID: "spiffe://" td ["/" path]. */
static size_t td_of(const char *id, const char **ret_td)
{
	*ret_td = id + 9;
	return strcspn(id + 9, "/");
}

bool wimse_authorizer_allows(const wimse_authorizer *a, const char *peer_id)
{
	if (!a || !peer_id)
		return false;
	switch (a->kind) {
	case AUTHZ_IDS:
		for (size_t i = 0; i < a->n_ids; i++)
			if (strcmp(a->ids[i], peer_id) == 0)
				return true;
		return false;
	case AUTHZ_MEMBER_OF: {
		if (strncmp(peer_id, "spiffe://", 9) != 0)
			return false;
		const char *td;
		size_t n = td_of(peer_id, &td);
		return n == strlen(a->td) && memcmp(td, a->td, n) == 0;
	}
	case AUTHZ_ANY:
		return true;
	case AUTHZ_FUNC:
		return a->fn(peer_id, a->userdata);
	}
	return false;
}

/* ---- per-context and per-connection state ---------------------------------- */

typedef struct tls_state {
	wimse_tls_role role;
	wimse_x509_source *src;
	wimse_authorizer *authz;
	char *svid_id; /* NULL: default SVID */
} tls_state;

typedef struct conn_state {
	bool authenticated;
	char peer_id[WI_SPIFFE_ID_MAX + 1];
	char error[512];
} conn_state;

static int ctx_index = -1, ssl_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void ctx_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	tls_state *st = ptr;
	if (!st)
		return;
	wimse_x509_source_unref(st->src);
	wimse_authorizer_free(st->authz);
	free(st->svid_id);
	free(st);
}

static void conn_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

/* SSL_dup must not share the per-connection state (it would be freed twice). */
static int conn_state_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl,
			  void *argp)
{
	*from_d = NULL;
	return 1;
}

static void make_indexes(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_state_free);
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, conn_state_dup, conn_state_free);
}

static conn_state *conn_of(SSL *ssl)
{
	conn_state *c = SSL_get_ex_data(ssl, ssl_index);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c && !SSL_set_ex_data(ssl, ssl_index, c)) {
			free(c);
			c = NULL;
		}
	}
	return c;
}

static void conn_error(SSL *ssl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(SSL *ssl, const char *fmt, ...)
{
	conn_state *c = conn_of(ssl);
	if (!c)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/* ---- callbacks --------------------------------------------------------------- */

/* Runs at every handshake (server: after ClientHello; client: on
 * CertificateRequest): presents the SVID that is current *now*. */
static int cert_cb(SSL *ssl, void *arg)
{
	tls_state *st = arg;
	_cleanup_(wimse_x509_snapshot_unrefp) wimse_x509_snapshot *snap = NULL;
	if (wimse_x509_source_get(st->src, &snap) < 0) {
		conn_error(ssl, "no SVID to present: %s", wimse_last_error());
		return 0;
	}
	const wimse_x509_context *ctx = wimse_x509_snapshot_context(snap);
	size_t idx = 0;
	if (st->svid_id) {
		for (idx = 0; idx < ctx->n_svids; idx++)
			if (strcmp(ctx->svids[idx].spiffe_id, st->svid_id) == 0)
				break;
		if (idx == ctx->n_svids) {
			conn_error(ssl, "no SVID for %s in the current X.509 context", st->svid_id);
			return 0;
		}
	}
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	if (wimse_x509_snapshot_svid_openssl(snap, idx, &leaf, &chain, &key) < 0) {
		conn_error(ssl, "%s", wimse_last_error());
		return 0;
	}
	/* Takes its own references to leaf, key and chain (override = 1). */
	if (SSL_use_cert_and_key(ssl, leaf, key, chain, 1) != 1) {
		conn_error(ssl, "cannot install the SVID: %s", ERR_reason_error_string(ERR_peek_last_error()));
		return 0;
	}
	return 1;
}

static int verify_cb(X509_STORE_CTX *xctx, void *arg)
{
	tls_state *st = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	conn_state *c = conn_of(ssl);
	if (!c) {
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_OUT_OF_MEM);
		return 0;
	}
	c->authenticated = false;
	X509 *leaf = X509_STORE_CTX_get0_cert(xctx);
	char id[WI_SPIFFE_ID_MAX + 1];
	if (wimse_x509_svid_leaf_id(leaf, id, sizeof(id)) < 0) {
		conn_error(ssl, "peer certificate is not an X509-SVID: %s", wimse_last_error());
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	STACK_OF(X509) *untrusted = X509_STORE_CTX_get0_untrusted(xctx);
	if (untrusted && sk_X509_num(untrusted) > PEER_CHAIN_DEPTH_MAX) {
		conn_error(ssl, "peer %s sent more than %d certificates", id, PEER_CHAIN_DEPTH_MAX);
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_CERT_CHAIN_TOO_LONG);
		return 0;
	}
	const char *td;
	size_t td_len = td_of(id, &td);
	char td_name[WI_TRUST_DOMAIN_MAX + 1];
	memcpy(td_name, td, td_len);
	td_name[td_len] = '\0';

	/* Workload API §5: the bundle of the peer's own trust domain, current at
	 * this handshake; none means untrusted. */
	_cleanup_(wimse_x509_snapshot_unrefp) wimse_x509_snapshot *snap = NULL;
	STACK_OF(X509) *anchors = NULL;
	if (wimse_x509_source_get(st->src, &snap) < 0) {
		conn_error(ssl, "cannot verify peer %s: %s", id, wimse_last_error());
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
		return 0;
	}
	if (wimse_x509_snapshot_bundle_openssl(snap, td_name, &anchors) < 0) {
		conn_error(ssl, "peer %s: no X.509 bundle for trust domain %s", id, td_name);
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
		return 0;
	}
	/* Path validation (RFC 5280) with libssl's parameters (purpose
	 * ssl_client/ssl_server, depth) against the bundle only.  Bundle entries
	 * are trust anchors whether or not they are self-signed (as in go-spiffe),
	 * hence PARTIAL_CHAIN.  The stack is borrowed from `snap`, which stays
	 * referenced until X509_verify_cert is done. */
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(xctx), X509_V_FLAG_PARTIAL_CHAIN);
	X509_STORE_CTX_set0_trusted_stack(xctx, anchors);
	int ok = X509_verify_cert(xctx);
	X509_STORE_CTX_set0_trusted_stack(xctx, NULL);
	if (ok <= 0) {
		int err = X509_STORE_CTX_get_error(xctx);
		conn_error(ssl, "peer %s: certificate does not verify against the bundle of %s: %s", id, td_name,
			   X509_verify_cert_error_string(err));
		if (err == X509_V_OK)
			X509_STORE_CTX_set_error(xctx, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	if (!wimse_authorizer_allows(st->authz, id)) {
		conn_error(ssl, "peer %s is not authorized", id);
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	memcpy(c->peer_id, id, strlen(id) + 1);
	c->authenticated = true;
	c->error[0] = '\0';
	return 1;
}

/* ---- contexts ------------------------------------------------------------------ */

int wimse_tls_ctx_new(const wimse_tls_options *o, SSL_CTX **ret)
{
	if (!o || !ret || !o->source || !o->authorizer)
		return fail(WI_E_INVAL, 0, "wimse_tls_ctx_new: source and authorizer are required");
	if (o->role != WIMSE_TLS_SERVER && o->role != WIMSE_TLS_CLIENT)
		return fail(WI_E_INVAL, 0, "wimse_tls_ctx_new: role must be WIMSE_TLS_SERVER or WIMSE_TLS_CLIENT");
	if (o->svid_id && wi_spiffe_id_validate(o->svid_id, strlen(o->svid_id), true) < 0)
		return fail(WI_E_SPIFFE_ID, 0, "svid_id \"%s\" is not a SPIFFE ID with a path", o->svid_id);
	pthread_once(&index_once, make_indexes);
	if (ctx_index < 0 || ssl_index < 0)
		return fail(WI_E_CRYPTO, 0, "cannot allocate OpenSSL ex_data indexes");

	bool server = o->role == WIMSE_TLS_SERVER;
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return fail(WI_E_CRYPTO, 0, "SSL_CTX_new: %s", ERR_reason_error_string(ERR_get_error()));
	tls_state *st = calloc(1, sizeof(*st));
	if (!st)
		return fail(WI_E_NOMEM, 0, "out of memory");
	if (o->svid_id && !(st->svid_id = strdup(o->svid_id))) {
		free(st);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	st->role = o->role;
	st->src = wimse_x509_source_ref(o->source);
	st->authz = authz_ref(o->authorizer);
	if (!SSL_CTX_set_ex_data(ctx, ctx_index, st)) {
		ctx_state_free(NULL, st, NULL, 0, 0, NULL);
		return fail(WI_E_NOMEM, 0, "SSL_CTX_set_ex_data failed");
	}
	/* From here the state is freed with the context. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		return fail(WI_E_CRYPTO, 0, "cannot restrict the context to TLS 1.3");
	/* Hostname checks do not apply; the SPIFFE ID is authorized instead. */
	SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify_depth(ctx, PEER_CHAIN_DEPTH_MAX);
	SSL_CTX_set_cert_verify_callback(ctx, verify_cb, st);
	SSL_CTX_set_cert_cb(ctx, cert_cb, st);
	/* No resumption: a resumed session would skip verification against the
	 * current bundle and the authorizer. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (server && SSL_CTX_set_num_tickets(ctx, 0) != 1)
		return fail(WI_E_CRYPTO, 0, "cannot disable session tickets");
	*ret = TAKE_PTR(ctx);
	return 0;
}

int wimse_tls_server_ctx_new(wimse_x509_source *src, const wimse_authorizer *authz, SSL_CTX **ret)
{
	wimse_tls_options o = {.role = WIMSE_TLS_SERVER, .source = src, .authorizer = authz};
	return wimse_tls_ctx_new(&o, ret);
}

int wimse_tls_client_ctx_new(wimse_x509_source *src, const wimse_authorizer *authz, SSL_CTX **ret)
{
	wimse_tls_options o = {.role = WIMSE_TLS_CLIENT, .source = src, .authorizer = authz};
	return wimse_tls_ctx_new(&o, ret);
}

int wimse_tls_peer_id(const SSL *ssl, char *buf, size_t cap)
{
	if (!ssl || !buf)
		return fail(WI_E_INVAL, 0, "wimse_tls_peer_id: NULL argument");
	const conn_state *c = ssl_index >= 0 ? SSL_get_ex_data(ssl, ssl_index) : NULL;
	if (!c || !c->authenticated || !SSL_is_init_finished(ssl) || SSL_get_verify_result(ssl) != X509_V_OK)
		return fail(WI_E_NOT_FOUND, 0, "no authenticated SPIFFE peer on this connection");
	size_t n = strlen(c->peer_id);
	if (n >= cap)
		return fail(WI_E_TOO_BIG, 0, "SPIFFE ID does not fit the buffer");
	memcpy(buf, c->peer_id, n + 1);
	return 0;
}

const char *wimse_tls_verify_error(const SSL *ssl)
{
	const conn_state *c = ssl && ssl_index >= 0 ? SSL_get_ex_data(ssl, ssl_index) : NULL;
	return c && c->error[0] ? c->error : NULL;
}
