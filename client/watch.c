/* client/watch.c — wimse_x509_source: the FetchX509SVID stream watched on a
 * thread of its own, and the immutable snapshots it produces.
 *
 * Concurrency: `mu` guards the current snapshot pointer, the stop flag, the
 * live call and the last error; it is held only to swap or reference a
 * pointer, never while parsing, calling back or waiting on gRPC, so readers
 * and the updater never wait on each other's work.  `cb_mu` (recursive)
 * serialises callbacks with wimse_x509_source_set_callback. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "client/internal.h"
#include "core/cleanup.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/spiffe_id.h"
#include "wimse/mtls.h"
#include "wimse/watch.h"
#include "wimse/wimse.h"
#include "workload.pb-c.h"

#define fail wi__client_fail

/* gRPC status numbers (grpc_status_code) used for the retry policy. */
#define ST_CANCELLED 1
#define ST_INVALID_ARGUMENT 3
#define ST_PERMISSION_DENIED 7
#define ST_UNIMPLEMENTED 12
#define ST_UNAVAILABLE 14

#define BACKOFF_INITIAL_MS 100
#define BACKOFF_MAX_MS 5000
/* Largest FetchX509SVID response we accept (as the other Workload API calls). */
#define RECV_MAX (4 * 1024 * 1024)
/* Certificates in one SVID chain or one bundle. */
#define CERTS_MAX 64
/* Federated bundles in one response. */
#define FEDERATED_MAX 1024

/* ---- snapshots ---------------------------------------------------------- */

/* OSSL_STACK_OF_X509_free is OpenSSL 3.2+; Debian 12 has 3.0. */
static void certs_free(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

typedef struct parsed_svid {
	X509 *leaf;
	STACK_OF(X509) *intermediates;
	EVP_PKEY *key;
} parsed_svid;

typedef struct td_bundle {
	char *td; /* bare trust domain name */
	uint8_t *der;
	size_t len;
	STACK_OF(X509) *anchors;
} td_bundle;

struct wimse_x509_snapshot {
	atomic_uint refs;
	uint64_t generation;
	wimse_x509_context ctx; /* svids owned; ctx.n_svids == n */
	parsed_svid *parsed;
	td_bundle *bundles;
	size_t n_bundles;
};

/* One SVID as found in a message or a caller's context (borrowed bytes). */
typedef struct svid_in {
	const char *id;
	const char *hint;
	const uint8_t *chain, *key, *bundle;
	size_t chain_len, key_len, bundle_len;
} svid_in;

typedef struct fed_in {
	const char *td;
	const uint8_t *der;
	size_t len;
} fed_in;

static void snapshot_free(wimse_x509_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ctx.n_svids; i++) {
		wimse_x509_svid *v = &s->ctx.svids[i];
		free(v->spiffe_id);
		free(v->hint);
		free(v->chain_der);
		if (v->key_der)
			OPENSSL_cleanse(v->key_der, v->key_len);
		free(v->key_der);
		free(v->bundle_der);
		if (s->parsed) {
			X509_free(s->parsed[i].leaf);
			certs_free(s->parsed[i].intermediates);
			EVP_PKEY_free(s->parsed[i].key); /* OpenSSL wipes key material */
		}
	}
	for (size_t i = 0; i < s->n_bundles; i++) {
		free(s->bundles[i].td);
		free(s->bundles[i].der);
		certs_free(s->bundles[i].anchors);
	}
	free(s->ctx.svids);
	free(s->parsed);
	free(s->bundles);
	free(s);
}

wimse_x509_snapshot *wimse_x509_snapshot_ref(wimse_x509_snapshot *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void wimse_x509_snapshot_unref(wimse_x509_snapshot *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snapshot_free(s);
}

const wimse_x509_context *wimse_x509_snapshot_context(const wimse_x509_snapshot *s)
{
	return s ? &s->ctx : NULL;
}

uint64_t wimse_x509_snapshot_generation(const wimse_x509_snapshot *s)
{
	return s ? s->generation : 0;
}

const wimse_x509_svid *wimse_x509_snapshot_svid(const wimse_x509_snapshot *s, const char *spiffe_id)
{
	if (!s || s->ctx.n_svids == 0)
		return NULL;
	if (!spiffe_id)
		return &s->ctx.svids[0];
	for (size_t i = 0; i < s->ctx.n_svids; i++)
		if (strcmp(s->ctx.svids[i].spiffe_id, spiffe_id) == 0)
			return &s->ctx.svids[i];
	return NULL;
}

/* "spiffe://example.org" or "example.org" -> "example.org". */
static const char *bare_td(const char *td)
{
	return strncmp(td, "spiffe://", 9) == 0 ? td + 9 : td;
}

static const td_bundle *find_bundle(const wimse_x509_snapshot *s, const char *td)
{
	td = bare_td(td);
	for (size_t i = 0; i < s->n_bundles; i++)
		if (strcmp(s->bundles[i].td, td) == 0)
			return &s->bundles[i];
	return NULL;
}

int wimse_x509_snapshot_bundle(const wimse_x509_snapshot *s, const char *trust_domain, const uint8_t **ret_der,
			       size_t *ret_len)
{
	if (!s || !trust_domain)
		return fail(WI_E_INVAL, 0, "wimse_x509_snapshot_bundle: NULL argument");
	const td_bundle *b = find_bundle(s, trust_domain);
	if (!b)
		return fail(WI_E_NOT_FOUND, 0, "no X.509 bundle for trust domain %s", bare_td(trust_domain));
	*ret_der = b->der;
	*ret_len = b->len;
	return 0;
}

int wimse_x509_snapshot_svid_openssl(const wimse_x509_snapshot *s, size_t i, X509 **ret_leaf,
				     STACK_OF(X509) **ret_intermediates, EVP_PKEY **ret_key)
{
	if (!s || i >= s->ctx.n_svids)
		return fail(WI_E_NOT_FOUND, 0, "no SVID number %zu in the X.509 context", i);
	if (ret_leaf)
		*ret_leaf = s->parsed[i].leaf;
	if (ret_intermediates)
		*ret_intermediates = s->parsed[i].intermediates;
	if (ret_key)
		*ret_key = s->parsed[i].key;
	return 0;
}

int wimse_x509_snapshot_bundle_openssl(const wimse_x509_snapshot *s, const char *trust_domain,
				       STACK_OF(X509) **ret_anchors)
{
	if (!s || !trust_domain)
		return fail(WI_E_INVAL, 0, "wimse_x509_snapshot_bundle_openssl: NULL argument");
	const td_bundle *b = find_bundle(s, trust_domain);
	if (!b)
		return fail(WI_E_NOT_FOUND, 0, "no X.509 bundle for trust domain %s", bare_td(trust_domain));
	*ret_anchors = b->anchors;
	return 0;
}

/* Concatenated DER certificates (Workload API: x509_svid, bundle), every byte
 * consumed, 1..CERTS_MAX of them. */
static int parse_certs(const uint8_t *der, size_t len, const char *what, STACK_OF(X509) **ret)
{
	if (len == 0)
		return fail(WI_E_PARSE, 0, "%s is empty", what);
	if (len > RECV_MAX)
		return fail(WI_E_TOO_BIG, 0, "%s is too large", what);
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!sk)
		return fail(WI_E_NOMEM, 0, "out of memory");
	const unsigned char *p = der;
	size_t left = len;
	while (left > 0) {
		if (sk_X509_num(sk) >= CERTS_MAX) {
			certs_free(sk);
			return fail(WI_E_TOO_BIG, 0, "%s holds more than %d certificates", what, CERTS_MAX);
		}
		const unsigned char *start = p;
		X509 *x = d2i_X509(NULL, &p, (long)left);
		if (!x) {
			ERR_clear_error();
			certs_free(sk);
			return fail(WI_E_PARSE, 0, "%s: certificate %d is not DER X.509", what, sk_X509_num(sk));
		}
		/* Fill OpenSSL's lazily computed extension cache now, before the
		 * snapshot is published: handshakes on many threads then only read
		 * these shared certificates. */
		(void)X509_get_extension_flags(x);
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			certs_free(sk);
			return fail(WI_E_NOMEM, 0, "out of memory");
		}
		left -= (size_t)(p - start);
	}
	*ret = sk;
	return 0;
}

static int copy_bytes(const uint8_t *src, size_t len, uint8_t **ret)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return fail(WI_E_NOMEM, 0, "out of memory");
	if (len)
		memcpy(p, src, len);
	*ret = p;
	return 0;
}

/* Validates one SVID (Workload API §5.1 mandatory fields; X509-SVID §4/§5;
 * go-spiffe x509svid.ParseRaw; py-spiffe X509Svid.parse_raw) and fills
 * out/parsed. */
static int load_svid(const svid_in *in, size_t idx, wimse_x509_svid *out, parsed_svid *parsed)
{
	char what[64];
	if (!in->id || !*in->id)
		return fail(WI_E_PARSE, 0, "svids[%zu]: spiffe_id is empty", idx);
	size_t id_len = strlen(in->id);
	if (id_len > WI_SPIFFE_ID_MAX || wi_spiffe_id_validate(in->id, id_len, true) < 0)
		return fail(WI_E_SPIFFE_ID, 0, "svids[%zu]: spiffe_id is not a SPIFFE ID with a path: %s", idx,
			    wi_error_detail());
	if (in->hint && strlen(in->hint) > WI_HINT_MAX)
		return fail(WI_E_TOO_BIG, 0, "svids[%zu]: hint longer than %d bytes", idx, WI_HINT_MAX);
	if (in->key_len == 0)
		return fail(WI_E_PARSE, 0, "svids[%zu] (%s): x509_svid_key is empty", idx, in->id);

	snprintf(what, sizeof(what), "svids[%zu].x509_svid", idx);
	STACK_OF(X509) *chain = NULL;
	int rc = parse_certs(in->chain, in->chain_len, what, &chain);
	if (rc < 0)
		return rc;
	X509 *leaf = sk_X509_shift(chain);
	parsed->leaf = leaf;
	parsed->intermediates = chain;

	char leaf_id[WI_SPIFFE_ID_MAX + 1];
	rc = wimse_x509_svid_leaf_id(leaf, leaf_id, sizeof(leaf_id));
	if (rc < 0) {
		char why[256]; /* the reason lives in the buffer fail() writes */
		snprintf(why, sizeof(why), "%s", wimse_last_error());
		return fail(rc, 0, "svids[%zu] (%s): %s", idx, in->id, why);
	}
	if (strcmp(leaf_id, in->id) != 0)
		return fail(WI_E_PARSE, 0, "svids[%zu]: spiffe_id %s differs from the certificate's %s", idx, in->id,
			    leaf_id);
	/* go-spiffe: every certificate after the leaf is a CA with keyCertSign. */
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		uint32_t fl = X509_get_extension_flags(x);
		if (!(fl & EXFLAG_CA) || !(fl & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
			return fail(WI_E_PARSE, 0, "svids[%zu] (%s): intermediate %d is not a CA with keyCertSign", idx,
				    in->id, i + 1);
	}

	/* The key: unencrypted PKCS#8 that matches the leaf. */
	const unsigned char *kp = in->key;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &kp, (long)in->key_len);
	if (!p8 || kp != in->key + in->key_len) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		ERR_clear_error();
		return fail(WI_E_PARSE, 0, "svids[%zu] (%s): x509_svid_key is not PKCS#8 DER", idx, in->id);
	}
	parsed->key = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8); /* frees with cleanse */
	if (!parsed->key) {
		ERR_clear_error();
		return fail(WI_E_PARSE, 0, "svids[%zu] (%s): x509_svid_key: unsupported key", idx, in->id);
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), parsed->key) != 1) {
		ERR_clear_error();
		return fail(WI_E_PARSE, 0, "svids[%zu] (%s): private key does not match the certificate", idx,
			    in->id);
	}

	/* The bundle must parse; it is kept per trust domain by the caller. */
	snprintf(what, sizeof(what), "svids[%zu].bundle", idx);
	STACK_OF(X509) *bundle = NULL;
	rc = parse_certs(in->bundle, in->bundle_len, what, &bundle);
	if (rc < 0)
		return rc;
	certs_free(bundle);

	out->spiffe_id = strdup(in->id);
	out->hint = strdup(in->hint ? in->hint : "");
	if (!out->spiffe_id || !out->hint)
		return fail(WI_E_NOMEM, 0, "out of memory");
	out->chain_len = in->chain_len;
	out->key_len = in->key_len;
	out->bundle_len = in->bundle_len;
	if ((rc = copy_bytes(in->chain, in->chain_len, &out->chain_der)) < 0 ||
	    (rc = copy_bytes(in->key, in->key_len, &out->key_der)) < 0 ||
	    (rc = copy_bytes(in->bundle, in->bundle_len, &out->bundle_der)) < 0)
		return rc;
	return 0;
}

static int add_bundle(wimse_x509_snapshot *s, const char *td, size_t td_len, const uint8_t *der, size_t len,
		      const char *what)
{
	char name[WI_TRUST_DOMAIN_MAX + 1];
	if (td_len > WI_TRUST_DOMAIN_MAX || wi_trust_domain_validate(td, td_len) < 0)
		return fail(WI_E_PARSE, 0, "%s: invalid trust domain", what);
	memcpy(name, td, td_len);
	name[td_len] = '\0';
	if (find_bundle(s, name))
		return 0; /* the own trust domain's bundle wins; duplicates are ignored */
	td_bundle *b = &s->bundles[s->n_bundles];
	int rc = parse_certs(der, len, what, &b->anchors);
	if (rc < 0)
		return rc;
	s->n_bundles++; /* from here on b is freed with the snapshot */
	b->td = strdup(name);
	if (!b->td)
		return fail(WI_E_NOMEM, 0, "out of memory");
	b->len = len;
	return copy_bytes(der, len, &b->der);
}

/* Builds and validates a snapshot.  Later SVIDs whose non-empty hint repeats
 * an earlier one are skipped (Workload API §5.1, as go-spiffe does). */
static int snapshot_build(const svid_in *in, size_t n, const fed_in *fed, size_t nfed, wimse_x509_snapshot **ret)
{
	if (n == 0)
		return fail(WI_E_PARSE, 0, "the X.509 context holds no SVID");
	if (n > WI_IDENTITIES_PER_CALLER_MAX)
		return fail(WI_E_TOO_BIG, 0, "the X.509 context holds more than %d SVIDs",
			    WI_IDENTITIES_PER_CALLER_MAX);
	if (nfed > FEDERATED_MAX)
		return fail(WI_E_TOO_BIG, 0, "more than %d federated bundles", FEDERATED_MAX);
	wimse_x509_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(WI_E_NOMEM, 0, "out of memory");
	atomic_init(&s->refs, 1);
	s->ctx.svids = calloc(n, sizeof(*s->ctx.svids));
	s->parsed = calloc(n, sizeof(*s->parsed));
	s->bundles = calloc(n + nfed, sizeof(*s->bundles));
	if (!s->ctx.svids || !s->parsed || !s->bundles) {
		snapshot_free(s);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool dup = false;
		for (size_t j = 0; j < s->ctx.n_svids && in[i].hint && *in[i].hint; j++)
			dup = dup || strcmp(s->ctx.svids[j].hint, in[i].hint) == 0;
		if (dup)
			continue;
		size_t k = s->ctx.n_svids++; /* counted first: a half-built entry is freed too */
		rc = load_svid(&in[i], i, &s->ctx.svids[k], &s->parsed[k]);
		if (rc == 0) {
			const char *td = in[i].id + 9; /* validated: "spiffe://" td ["/" path] */
			char what[64];
			snprintf(what, sizeof(what), "svids[%zu].bundle", i);
			rc = add_bundle(s, td, strcspn(td, "/"), in[i].bundle, in[i].bundle_len, what);
		}
	}
	for (size_t i = 0; i < nfed && rc == 0; i++) {
		const char *td = bare_td(fed[i].td ? fed[i].td : "");
		rc = add_bundle(s, td, strlen(td), fed[i].der, fed[i].len, "federated_bundles");
	}
	if (rc < 0) {
		snapshot_free(s);
		return rc;
	}
	*ret = s;
	return 0;
}

static int snapshot_from_context(const wimse_x509_context *ctx, wimse_x509_snapshot **ret)
{
	if (!ctx)
		return fail(WI_E_INVAL, 0, "NULL X.509 context");
	if (ctx->n_svids > WI_IDENTITIES_PER_CALLER_MAX)
		return fail(WI_E_TOO_BIG, 0, "the X.509 context holds more than %d SVIDs",
			    WI_IDENTITIES_PER_CALLER_MAX);
	_cleanup_(freep) svid_in *in = calloc(ctx->n_svids ? ctx->n_svids : 1, sizeof(*in));
	if (!in)
		return fail(WI_E_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < ctx->n_svids; i++) {
		const wimse_x509_svid *v = &ctx->svids[i];
		in[i] = (svid_in){.id = v->spiffe_id,
				  .hint = v->hint,
				  .chain = v->chain_der,
				  .chain_len = v->chain_len,
				  .key = v->key_der,
				  .key_len = v->key_len,
				  .bundle = v->bundle_der,
				  .bundle_len = v->bundle_len};
	}
	return snapshot_build(in, ctx->n_svids, NULL, 0, ret);
}

static int snapshot_from_response(const X509SVIDResponse *r, wimse_x509_snapshot **ret)
{
	if (r->n_svids > WI_IDENTITIES_PER_CALLER_MAX)
		return fail(WI_E_TOO_BIG, 0, "the response holds more than %d SVIDs", WI_IDENTITIES_PER_CALLER_MAX);
	if (r->n_federated_bundles > FEDERATED_MAX)
		return fail(WI_E_TOO_BIG, 0, "more than %d federated bundles", FEDERATED_MAX);
	_cleanup_(freep) svid_in *in = calloc(r->n_svids ? r->n_svids : 1, sizeof(*in));
	_cleanup_(freep) fed_in *fed = calloc(r->n_federated_bundles ? r->n_federated_bundles : 1, sizeof(*fed));
	if (!in || !fed)
		return fail(WI_E_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < r->n_svids; i++) {
		const X509SVID *v = r->svids[i];
		in[i] = (svid_in){.id = v->spiffe_id,
				  .hint = v->hint,
				  .chain = v->x509_svid.data,
				  .chain_len = v->x509_svid.len,
				  .key = v->x509_svid_key.data,
				  .key_len = v->x509_svid_key.len,
				  .bundle = v->bundle.data,
				  .bundle_len = v->bundle.len};
	}
	for (size_t i = 0; i < r->n_federated_bundles; i++) {
		const X509SVIDResponse__FederatedBundlesEntry *e = r->federated_bundles[i];
		fed[i] = (fed_in){.td = e->key, .der = e->value.data, .len = e->value.len};
	}
	return snapshot_build(in, r->n_svids, fed, r->n_federated_bundles, ret);
}

/* ---- the source ---------------------------------------------------------- */

struct wimse_x509_source {
	atomic_uint refs;
	bool is_static;

	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on snapshot change and stop */
	wimse_x509_snapshot *current;
	uint64_t generation;
	int stop_code;   /* non-zero once stopped for good */
	bool stopping;   /* the last reference is gone: the thread must exit */
	bool self_reap;  /* the last reference went on the thread itself */
	grpc_call *call; /* the live call, cancelled on stop */
	int last_code;   /* error of the last failed attempt */
	int last_status; /* its gRPC status */
	char last_error[512];

	pthread_mutex_t cb_mu; /* recursive */
	wimse_x509_source_cb cb;
	void *userdata;

	bool has_thread;
	pthread_t thread;
	char target[4200];
	grpc_channel *channel; /* replaced after every failed attempt */
	grpc_completion_queue *cq;
	int backoff_initial_ms, backoff_max_ms;
	uint64_t rng;
};

static void source_destroy(wimse_x509_source *src)
{
	if (src->channel)
		grpc_channel_destroy(src->channel);
	if (src->cq) {
		grpc_completion_queue_shutdown(src->cq);
		grpc_completion_queue_destroy(src->cq);
	}
	wimse_x509_snapshot_unref(src->current);
	pthread_mutex_destroy(&src->mu);
	pthread_mutex_destroy(&src->cb_mu);
	pthread_cond_destroy(&src->cond);
	bool grpc = !src->is_static;
	free(src);
	if (grpc)
		grpc_shutdown();
}

static int source_alloc(wimse_x509_source **ret)
{
	wimse_x509_source *src = calloc(1, sizeof(*src));
	if (!src)
		return fail(WI_E_NOMEM, 0, "out of memory");
	atomic_init(&src->refs, 1);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&src->mu, NULL) != 0 || pthread_mutex_init(&src->cb_mu, &ma) != 0 ||
	    pthread_cond_init(&src->cond, &ca) != 0) {
		free(src);
		pthread_mutexattr_destroy(&ma);
		pthread_condattr_destroy(&ca);
		return fail(WI_E_NOMEM, 0, "cannot create the source's locks");
	}
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_destroy(&ca);
	*ret = src;
	return 0;
}

wimse_x509_source *wimse_x509_source_ref(wimse_x509_source *src)
{
	if (src)
		atomic_fetch_add_explicit(&src->refs, 1, memory_order_relaxed);
	return src;
}

void wimse_x509_source_unref(wimse_x509_source *src)
{
	if (!src || atomic_fetch_sub_explicit(&src->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (!src->has_thread) {
		source_destroy(src);
		return;
	}
	pthread_mutex_lock(&src->mu);
	src->stopping = true;
	if (src->call)
		grpc_call_cancel(src->call, NULL);
	bool on_thread = pthread_equal(pthread_self(), src->thread);
	src->self_reap = on_thread;
	pthread_cond_broadcast(&src->cond);
	pthread_mutex_unlock(&src->mu);
	if (on_thread)
		return; /* the thread frees the source when it unwinds */
	pthread_join(src->thread, NULL);
	source_destroy(src);
}

void wimse_x509_source_free(wimse_x509_source *src)
{
	if (!src)
		return;
	wimse_x509_source_set_callback(src, NULL, NULL);
	wimse_x509_source_unref(src);
}

void wimse_x509_source_set_callback(wimse_x509_source *src, wimse_x509_source_cb cb, void *userdata)
{
	if (!src)
		return;
	pthread_mutex_lock(&src->cb_mu);
	src->cb = cb;
	src->userdata = userdata;
	pthread_mutex_unlock(&src->cb_mu);
}

static void notify(wimse_x509_source *src, wimse_x509_event ev, wimse_x509_snapshot *snap, int status,
		   const char *detail)
{
	pthread_mutex_lock(&src->cb_mu);
	if (src->cb) {
		wimse_x509_update u = {.event = ev, .snapshot = snap, .grpc_status = status, .detail = detail};
		src->cb(&u, src->userdata);
	}
	pthread_mutex_unlock(&src->cb_mu);
}

/* Installs `s` (NULL: drop) as current; consumes the caller's reference.
 * Returns whether a snapshot was replaced. */
static bool install(wimse_x509_source *src, wimse_x509_snapshot *s)
{
	pthread_mutex_lock(&src->mu);
	wimse_x509_snapshot *old = src->current;
	if (s)
		s->generation = ++src->generation;
	src->current = s;
	pthread_cond_broadcast(&src->cond);
	pthread_mutex_unlock(&src->mu);
	wimse_x509_snapshot_unref(old); /* outside the lock: may free a large context */
	return old != NULL;
}

static void record_error(wimse_x509_source *src, int code, int status, const char *msg)
{
	pthread_mutex_lock(&src->mu);
	src->last_code = code;
	src->last_status = status;
	snprintf(src->last_error, sizeof(src->last_error), "%.*s", (int)sizeof(src->last_error) - 1, msg);
	pthread_cond_broadcast(&src->cond);
	pthread_mutex_unlock(&src->mu);
}

int wimse_x509_source_get(wimse_x509_source *src, wimse_x509_snapshot **ret)
{
	if (!src)
		return fail(WI_E_INVAL, 0, "wimse_x509_source_get: NULL source");
	pthread_mutex_lock(&src->mu);
	wimse_x509_snapshot *s = wimse_x509_snapshot_ref(src->current);
	int code = src->last_code, status = src->last_status;
	char why[sizeof(src->last_error)];
	if (!s)
		memcpy(why, src->last_error, sizeof(why));
	pthread_mutex_unlock(&src->mu);
	if (!s)
		return fail(code == WI_E_PERMISSION ? WI_E_PERMISSION : WI_E_UNAVAILABLE, status,
			    "no X.509-SVID available%s%s", *why ? ": " : "", why);
	*ret = s;
	return 0;
}

int wimse_x509_source_status(wimse_x509_source *src)
{
	if (!src)
		return WI_E_INVAL;
	pthread_mutex_lock(&src->mu);
	int code = src->stop_code;
	pthread_mutex_unlock(&src->mu);
	return code;
}

int wimse_x509_source_wait(wimse_x509_source *src, int timeout_ms)
{
	if (!src)
		return fail(WI_E_INVAL, 0, "wimse_x509_source_wait: NULL source");
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&src->mu);
	int rc = 0;
	while (!src->current && !src->stop_code && !src->is_static) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&src->cond, &src->mu);
		} else if (pthread_cond_timedwait(&src->cond, &src->mu, &dl) == ETIMEDOUT) {
			break;
		}
	}
	if (!src->current) {
		int code = src->stop_code	     ? src->stop_code
			   : src->last_code == WI_E_PERMISSION ? WI_E_PERMISSION
							       : WI_E_UNAVAILABLE;
		rc = fail(code, src->last_status, "no X.509-SVID%s%s%s",
			  src->stop_code || src->is_static ? "" : " within the timeout",
			  *src->last_error ? ": " : "", src->last_error);
	}
	pthread_mutex_unlock(&src->mu);
	return rc;
}

/* ---- static sources ------------------------------------------------------ */

int wimse_x509_source_new_static(const wimse_x509_context *ctx, wimse_x509_source **ret)
{
	wimse_x509_snapshot *s = NULL;
	int rc = snapshot_from_context(ctx, &s);
	if (rc < 0)
		return rc;
	wimse_x509_source *src = NULL;
	rc = source_alloc(&src);
	if (rc < 0) {
		wimse_x509_snapshot_unref(s);
		return rc;
	}
	src->is_static = true;
	install(src, s);
	*ret = src;
	return 0;
}

int wimse_x509_source_set_static(wimse_x509_source *src, const wimse_x509_context *ctx)
{
	if (!src || !src->is_static)
		return fail(WI_E_INVAL, 0, "wimse_x509_source_set_static: not a static source");
	wimse_x509_snapshot *s = NULL;
	if (ctx) {
		int rc = snapshot_from_context(ctx, &s);
		if (rc < 0)
			return rc;
	}
	bool replaced = install(src, wimse_x509_snapshot_ref(s));
	bool dropped = replaced && !s;
	if (s) {
		notify(src, WIMSE_X509_UPDATED, s, 0, "X.509 context updated");
	} else {
		record_error(src, WI_E_PERMISSION, ST_PERMISSION_DENIED, "X.509 context dropped");
		if (dropped)
			notify(src, WIMSE_X509_DROPPED, NULL, ST_PERMISSION_DENIED, "X.509 context dropped");
	}
	wimse_x509_snapshot_unref(s);
	return 0;
}

/* ---- the watcher thread -------------------------------------------------- */

static void wipe_byte_buffer(grpc_byte_buffer *bb)
{
	/* The message holds private keys: wipe the received slices before gRPC
	 * releases them (uncompressed raw buffers only; nothing else reads them). */
	if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE)
		return;
	grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
	for (size_t i = 0; i < sb->count; i++)
		if (!GRPC_SLICE_IS_EMPTY(sb->slices[i]))
			OPENSSL_cleanse(GRPC_SLICE_START_PTR(sb->slices[i]), GRPC_SLICE_LENGTH(sb->slices[i]));
}

/* Turns one stream message into the current snapshot, or reports why not. */
static void handle_message(wimse_x509_source *src, grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader rd;
	if (!grpc_byte_buffer_reader_init(&rd, bb)) {
		notify(src, WIMSE_X509_ERROR, NULL, 0, "FetchX509SVID: unreadable message");
		return;
	}
	grpc_slice msg = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	X509SVIDResponse *resp = x509_svidresponse__unpack(NULL, GRPC_SLICE_LENGTH(msg), GRPC_SLICE_START_PTR(msg));
	if (!GRPC_SLICE_IS_EMPTY(msg))
		OPENSSL_cleanse(GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
	grpc_slice_unref(msg);
	wimse_x509_snapshot *s = NULL;
	int rc = resp ? snapshot_from_response(resp, &s) : fail(WI_E_PARSE, 0, "malformed protobuf");
	if (resp) {
		for (size_t i = 0; i < resp->n_svids; i++)
			if (resp->svids[i]->x509_svid_key.len)
				OPENSSL_cleanse(resp->svids[i]->x509_svid_key.data, resp->svids[i]->x509_svid_key.len);
		x509_svidresponse__free_unpacked(resp, NULL);
	}
	if (rc < 0) {
		/* Workload API §5.1: a client SHOULD discard an invalid response. */
		char detail[600];
		snprintf(detail, sizeof(detail), "FetchX509SVID: message discarded: %s", wimse_last_error());
		record_error(src, rc, 0, detail);
		notify(src, WIMSE_X509_ERROR, NULL, 0, detail);
		return;
	}
	install(src, wimse_x509_snapshot_ref(s));
	record_error(src, 0, 0, "");
	notify(src, WIMSE_X509_UPDATED, s, 0, "X.509 context updated");
	wimse_x509_snapshot_unref(s);
}

static bool pluck(wimse_x509_source *src, void *tag)
{
	grpc_event ev = grpc_completion_queue_pluck(src->cq, tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* One FetchX509SVID stream, from start to status.  Returns its gRPC status
 * and details; *ret_got_message tells whether any message arrived. */
static int run_stream(wimse_x509_source *src, bool *ret_got_message, char *details, size_t cap)
{
	*ret_got_message = false;
	snprintf(details, cap, "%s", "");
	pthread_mutex_lock(&src->mu);
	if (src->stopping) {
		pthread_mutex_unlock(&src->mu);
		return ST_CANCELLED;
	}
	grpc_slice method = grpc_slice_from_static_string("/SpiffeWorkloadAPI/FetchX509SVID");
	grpc_call *call = grpc_channel_create_call(src->channel, NULL, GRPC_PROPAGATE_DEFAULTS, src->cq, method,
						   NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	src->call = call;
	pthread_mutex_unlock(&src->mu);

	X509SVIDRequest req = X509_SVIDREQUEST__INIT;
	uint8_t reqbuf[16];
	size_t reqlen = x509_svidrequest__pack(&req, reqbuf);
	grpc_slice rs = grpc_slice_from_copied_buffer((const char *)reqbuf, reqlen);
	grpc_byte_buffer *send_bb = grpc_raw_byte_buffer_create(&rs, 1);
	grpc_slice_unref(rs);
	grpc_metadata md = {.key = grpc_slice_from_static_string("workload.spiffe.io"),
			    .value = grpc_slice_from_static_string("true")};
	grpc_metadata_array init_md, trail_md;
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice st_details = grpc_empty_slice();

	grpc_op ops[4];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &md;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	grpc_op st;
	memset(&st, 0, sizeof(st));
	st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	st.data.recv_status_on_client.trailing_metadata = &trail_md;
	st.data.recv_status_on_client.status = &status;
	st.data.recv_status_on_client.status_details = &st_details;

	int tag_send, tag_status, tag_msg;
	bool send_started = grpc_call_start_batch(call, ops, 4, &tag_send, NULL) == GRPC_CALL_OK;
	bool status_started = grpc_call_start_batch(call, &st, 1, &tag_status, NULL) == GRPC_CALL_OK;
	if (!send_started || !status_started)
		grpc_call_cancel(call, NULL);
	while (send_started && status_started) {
		grpc_byte_buffer *bb = NULL;
		grpc_op rm;
		memset(&rm, 0, sizeof(rm));
		rm.op = GRPC_OP_RECV_MESSAGE;
		rm.data.recv_message.recv_message = &bb;
		if (grpc_call_start_batch(call, &rm, 1, &tag_msg, NULL) != GRPC_CALL_OK) {
			grpc_call_cancel(call, NULL);
			break;
		}
		bool ok = pluck(src, &tag_msg);
		if (!ok || !bb) {
			if (bb)
				grpc_byte_buffer_destroy(bb);
			break; /* the stream is over: the status tells why */
		}
		*ret_got_message = true;
		handle_message(src, bb);
		wipe_byte_buffer(bb);
		grpc_byte_buffer_destroy(bb);
	}
	if (send_started)
		pluck(src, &tag_send);
	if (status_started)
		pluck(src, &tag_status);
	grpc_byte_buffer_destroy(send_bb);

	pthread_mutex_lock(&src->mu);
	src->call = NULL;
	pthread_mutex_unlock(&src->mu);
	grpc_call_unref(call);

	int code = status_started ? (int)status : ST_UNAVAILABLE;
	char *d = grpc_slice_to_c_string(st_details);
	snprintf(details, cap, "%s", d && *d ? d : (status_started ? "stream ended" : "cannot start the call"));
	gpr_free(d);
	grpc_slice_unref(st_details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	return code;
}


/* xorshift64*: jitter only, not security relevant (the libc PRNG is banned). */
static uint64_t next_random(wimse_x509_source *src)
{
	uint64_t x = src->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	src->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Sleeps `ms` unless stopped first; returns false when stopping. */
static bool sleep_unless_stopped(wimse_x509_source *src, int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&src->mu);
	while (!src->stopping && pthread_cond_timedwait(&src->cond, &src->mu, &dl) != ETIMEDOUT) {
	}
	bool go_on = !src->stopping;
	pthread_mutex_unlock(&src->mu);
	return go_on;
}

/* A fresh channel.  A failed channel keeps its subchannel in gRPC's own
 * reconnect backoff, during which calls fail at once with the old error; a
 * new channel on a private subchannel pool connects on our schedule only, so
 * a restarted daemon is reached at our next attempt. */
static void new_channel(wimse_x509_source *src)
{
	grpc_arg args[] = {
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = RECV_MAX},
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
	};
	grpc_channel_args ch = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	if (src->channel)
		grpc_channel_destroy(src->channel);
	src->channel = grpc_channel_create(src->target, creds, &ch);
	grpc_channel_credentials_release(creds);
}

static void *watch_main(void *arg)
{
	wimse_x509_source *src = arg;
	int backoff = src->backoff_initial_ms;
	for (;;) {
		bool got = false;
		char details[256];
		int status = run_stream(src, &got, details, sizeof(details));
		pthread_mutex_lock(&src->mu);
		bool stopping = src->stopping;
		pthread_mutex_unlock(&src->mu);
		if (stopping)
			break;
		if (got)
			backoff = src->backoff_initial_ms; /* the stream worked: start over */
		char msg[400];
		snprintf(msg, sizeof(msg), "FetchX509SVID: %s (%s)", details, wi_grpc_status_name(status));
		if (status == ST_INVALID_ARGUMENT || status == ST_UNIMPLEMENTED) {
			/* py-spiffe/go-spiffe: not retryable; a retry gets the same answer. */
			int code = status == ST_INVALID_ARGUMENT ? WI_E_INVAL : WI_E_UNIMPLEMENTED;
			pthread_mutex_lock(&src->mu);
			src->stop_code = code;
			pthread_mutex_unlock(&src->mu);
			record_error(src, code, status, msg);
			wimse_x509_snapshot *cur = NULL;
			if (wimse_x509_source_get(src, &cur) < 0)
				cur = NULL;
			notify(src, WIMSE_X509_STOPPED, cur, status, msg);
			wimse_x509_snapshot_unref(cur);
			break;
		}
		if (status == ST_PERMISSION_DENIED) {
			/* Workload API §5.3: stop using every SVID from this stream.
			 * Later refusals while nothing is held are plain errors. */
			bool dropped = install(src, NULL);
			record_error(src, WI_E_PERMISSION, status, msg);
			notify(src, dropped ? WIMSE_X509_DROPPED : WIMSE_X509_ERROR, NULL, status, msg);
		} else {
			record_error(src, WI_E_UNAVAILABLE, status, msg);
			notify(src, WIMSE_X509_ERROR, NULL, status, msg);
		}
		if (status == ST_UNAVAILABLE)
			new_channel(src);
		/* ±20 % jitter so that many clients do not reconnect in step. */
		int span = backoff / 5;
		int delay = backoff - span + (span > 0 ? (int)(next_random(src) % (uint64_t)(2 * span + 1)) : 0);
		if (!sleep_unless_stopped(src, delay))
			break;
		backoff = backoff > src->backoff_max_ms / 2 ? src->backoff_max_ms : backoff * 2;
	}
	pthread_mutex_lock(&src->mu);
	bool reap = src->self_reap;
	pthread_mutex_unlock(&src->mu);
	if (reap) {
		pthread_detach(pthread_self());
		source_destroy(src);
	}
	return NULL;
}

int wimse_x509_source_new(const char *address, wimse_x509_source **ret)
{
	wimse_x509_source_options o = {.address = address};
	return wimse_x509_source_new_with(&o, ret);
}

int wimse_x509_source_new_with(const wimse_x509_source_options *o, wimse_x509_source **ret)
{
	if (!o || !ret)
		return fail(WI_E_INVAL, 0, "wimse_x509_source_new: NULL argument");
	if (o->backoff_initial_ms < 0 || o->backoff_max_ms < 0)
		return fail(WI_E_INVAL, 0, "wimse_x509_source_new: negative backoff");
	char target[4200];
	int rc = wi__client_make_target(o->address, target, sizeof(target));
	if (rc < 0)
		return rc;
	wimse_x509_source *src = NULL;
	rc = source_alloc(&src);
	if (rc < 0)
		return rc;
	src->backoff_initial_ms = o->backoff_initial_ms ? o->backoff_initial_ms : BACKOFF_INITIAL_MS;
	src->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : BACKOFF_MAX_MS;
	if (src->backoff_max_ms < src->backoff_initial_ms)
		src->backoff_max_ms = src->backoff_initial_ms;
	src->cb = o->callback;
	src->userdata = o->userdata;
	if (getrandom(&src->rng, sizeof(src->rng), GRND_NONBLOCK) != (ssize_t)sizeof(src->rng))
		src->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)src;
	src->rng |= 1;

	grpc_init();
	memcpy(src->target, target, sizeof(src->target));
	new_channel(src);
	src->cq = grpc_completion_queue_create_for_pluck(NULL);
	src->has_thread = true;
	int err = pthread_create(&src->thread, NULL, watch_main, src);
	if (err != 0) {
		src->has_thread = false;
		source_destroy(src);
		return fail(WI_E_NOMEM, 0, "cannot start the watcher thread: %s", strerror(err));
	}
	*ret = src;
	return 0;
}
