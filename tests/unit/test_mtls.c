/* tests/unit/test_mtls.c — SPIFFE mTLS helpers (client/mtls.c) and the
 * snapshots of static X.509 sources (client/watch.c), without the daemon.
 *
 * SVIDs are minted with the project's CA (core/ca.h) in a temp data dir; a
 * second CA in another temp dir (same trust domain name, other key) plays the
 * foreign issuer.  Each case drives a real TLS 1.3 handshake over a
 * socketpair: the server runs on a thread with blocking I/O, the client on
 * the test thread; a connection counts as working when a line makes the
 * round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/ca.h"
#include "core/keys.h"
#include "core/svid.h"
#include "wimse/mtls.h"
#include "wimse/watch.h"
#include "wimse/wimse.h"

#define TD "example.org"
#define ID_SERVER "spiffe://example.org/server"
#define ID_CLIENT "spiffe://example.org/client"
#define ID_OTHER "spiffe://example.org/other"
#define SVID_TTL 3600

/* ---- fixture: two CAs, SVIDs minted once for the whole run ----------------- */

typedef struct fx {
	char own_dir[256], foreign_dir[256];
	wi_ca *own, *foreign;
	wi_x509_svid *server, *server2, *client, *other, *foreign_client, *expired;
	EVP_PKEY *own_key; /* the CA's private key, to forge leaves with OpenSSL */
	X509 *own_cert;
} fx;

static fx F;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static wi_ca *open_ca(char *dir, size_t cap, time_t now)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, cap, "%s/wi-mtls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return NULL;
	wi_ca_options o = {.trust_domain = TD, .data_dir = dir, .ttl = 365LL * 24 * 3600, .max_svid_ttl = SVID_TTL};
	wi_ca *ca = NULL;
	if (wi_ca_open(&o, now, &ca) != 0) {
		fprintf(stderr, "wi_ca_open: %s\n", wi_error_detail());
		return NULL;
	}
	return ca;
}

static wi_x509_svid *mint(wi_ca *ca, const char *id, time_t now)
{
	wi_x509_svid *s = NULL;
	if (wi_ca_mint_x509_svid(ca, id, SVID_TTL, now, &s) != 0) {
		fprintf(stderr, "mint %s: %s\n", id, wi_error_detail());
		return NULL;
	}
	return s;
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	time_t now = time(NULL);
	F.own = open_ca(F.own_dir, sizeof(F.own_dir), now);
	F.foreign = open_ca(F.foreign_dir, sizeof(F.foreign_dir), now);
	if (!F.own || !F.foreign)
		return -1;
	F.server = mint(F.own, ID_SERVER, now);
	F.server2 = mint(F.own, ID_SERVER, now);
	F.client = mint(F.own, ID_CLIENT, now);
	F.other = mint(F.own, ID_OTHER, now);
	F.foreign_client = mint(F.foreign, ID_CLIENT, now);
	/* Minted two TTLs ago: expired an hour ago (the CA signs it regardless). */
	F.expired = mint(F.own, ID_CLIENT, now - 2 * SVID_TTL);
	if (!F.server || !F.server2 || !F.client || !F.other || !F.foreign_client || !F.expired)
		return -1;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ca/ca.key.pem", F.own_dir);
	if (wi_key_load_pem(path, &F.own_key) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/ca/ca.crt.pem", F.own_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	F.own_cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return F.own_cert ? 0 : -1;
}

static int group_teardown(void **state)
{
	wi_x509_svid *all[] = {F.server, F.server2, F.client, F.other, F.foreign_client, F.expired};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		wi_x509_svid_unref(all[i]);
	EVP_PKEY_free(F.own_key);
	X509_free(F.own_cert);
	wi_ca_free(F.own);
	wi_ca_free(F.foreign);
	nftw(F.own_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	nftw(F.foreign_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- contexts and sources ---------------------------------------------------- */

/* A one-SVID context that borrows the minted bytes (sources copy them). */
typedef struct one_ctx {
	wimse_x509_svid svid;
	wimse_x509_context ctx;
} one_ctx;

static const wimse_x509_context *ctx_of(one_ctx *o, const wi_x509_svid *s, const wi_ca *ca)
{
	memset(o, 0, sizeof(*o));
	o->svid.spiffe_id = (char *)wi_x509_svid_spiffe_id(s);
	o->svid.hint = (char *)"";
	o->svid.chain_der = (uint8_t *)wi_x509_svid_chain_der(s, &o->svid.chain_len);
	o->svid.key_der = (uint8_t *)wi_x509_svid_key_der(s, &o->svid.key_len);
	o->svid.bundle_der = (uint8_t *)wi_ca_bundle_der(ca, &o->svid.bundle_len);
	o->ctx.n_svids = 1;
	o->ctx.svids = &o->svid;
	return &o->ctx;
}

static wimse_x509_source *static_source(const wi_x509_svid *s, const wi_ca *ca)
{
	one_ctx o;
	wimse_x509_source *src = NULL;
	int rc = wimse_x509_source_new_static(ctx_of(&o, s, ca), &src);
	if (rc != 0)
		fail_msg("wimse_x509_source_new_static: %s", wimse_last_error());
	return src;
}

static wimse_authorizer *authz_id(const char *id)
{
	wimse_authorizer *a = NULL;
	if (wimse_authorize_id(id, &a) != 0)
		fail_msg("wimse_authorize_id(%s): %s", id, wimse_last_error());
	return a;
}

static SSL_CTX *tls_ctx(wimse_tls_role role, wimse_x509_source *src, wimse_authorizer *a)
{
	SSL_CTX *ctx = NULL;
	wimse_tls_options o = {.role = role, .source = src, .authorizer = a};
	if (wimse_tls_ctx_new(&o, &ctx) != 0)
		fail_msg("wimse_tls_ctx_new: %s", wimse_last_error());
	/* The context keeps its own references: drop ours at once. */
	wimse_authorizer_free(a);
	return ctx;
}

/* A server context for ID_SERVER that allows `a`. */
static SSL_CTX *server_ctx(wimse_authorizer *a)
{
	wimse_x509_source *src = static_source(F.server, F.own);
	SSL_CTX *ctx = tls_ctx(WIMSE_TLS_SERVER, src, a);
	wimse_x509_source_free(src);
	return ctx;
}

/* A client context presenting `svid` (issued by `ca`) that expects ID_SERVER. */
static SSL_CTX *client_ctx(const wi_x509_svid *svid, const wi_ca *ca)
{
	wimse_x509_source *src = static_source(svid, ca);
	SSL_CTX *ctx = tls_ctx(WIMSE_TLS_CLIENT, src, authz_id(ID_SERVER));
	wimse_x509_source_free(src);
	return ctx;
}

/* A plain OpenSSL client: presents cert/key if given, trusts nothing,
 * checks nothing (the server's checks are under test). */
static SSL_CTX *plain_client_ctx(X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cert) {
		assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	}
	return ctx;
}

/* ---- one connection ------------------------------------------------------------- */

typedef struct side {
	SSL_CTX *ctx;
	int fd;
	bool ok;        /* handshake done and the line made the round trip */
	int peer_rc;    /* wimse_tls_peer_id */
	char peer[2100];
	char err[700];  /* wimse_tls_verify_error, else OpenSSL's reason */
	X509 *peer_cert;
} side;

static void record_err(side *s, SSL *ssl)
{
	const char *v = ssl ? wimse_tls_verify_error(ssl) : NULL;
	unsigned long e = ERR_peek_last_error();
	snprintf(s->err, sizeof(s->err), "%s", v ? v : e ? ERR_reason_error_string(e) : "closed");
	ERR_clear_error();
}

static void *server_main(void *arg)
{
	side *s = arg;
	SSL *ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, s->fd);
	if (SSL_accept(ssl) == 1) {
		char buf[64];
		int n = SSL_read(ssl, buf, sizeof(buf));
		s->ok = n > 0 && SSL_write(ssl, buf, n) == n;
		s->peer_rc = wimse_tls_peer_id(ssl, s->peer, sizeof(s->peer));
	} else {
		s->peer_rc = wimse_tls_peer_id(ssl, s->peer, sizeof(s->peer));
	}
	if (!s->ok)
		record_err(s, ssl);
	SSL_free(ssl);
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static void run_conn(SSL_CTX *sctx, SSL_CTX *cctx, side *srv, side *cli)
{
	memset(srv, 0, sizeof(*srv));
	memset(cli, 0, sizeof(*cli));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct timeval tv = {.tv_sec = 10};
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(sv[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	srv->ctx = sctx;
	srv->fd = sv[0];
	cli->ctx = cctx;
	cli->fd = sv[1];
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, server_main, srv), 0);

	SSL *ssl = SSL_new(cctx);
	SSL_set_fd(ssl, cli->fd);
	if (SSL_connect(ssl) == 1) {
		cli->peer_cert = SSL_get1_peer_certificate(ssl);
		cli->peer_rc = wimse_tls_peer_id(ssl, cli->peer, sizeof(cli->peer));
		char buf[64];
		/* TLS 1.3: the server judges our certificate after our Finished;
		 * its verdict shows on the first read. */
		cli->ok = SSL_write(ssl, "ping\n", 5) == 5 && SSL_read(ssl, buf, sizeof(buf)) == 5 &&
			  memcmp(buf, "ping\n", 5) == 0;
	} else {
		cli->peer_rc = wimse_tls_peer_id(ssl, cli->peer, sizeof(cli->peer));
	}
	if (!cli->ok)
		record_err(cli, ssl);
	SSL_free(ssl);
	shutdown(cli->fd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void conn_done(side *srv, side *cli)
{
	X509_free(cli->peer_cert);
	X509_free(srv->peer_cert);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* The server refused the client, saying `why`; the client saw it fail. */
static void assert_refused_by_server(SSL_CTX *sctx, SSL_CTX *cctx, const char *why)
{
	side srv, cli;
	run_conn(sctx, cctx, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_contains(srv.err, why);
	assert_int_not_equal(srv.peer_rc, 0);
	conn_done(&srv, &cli);
}

static bool same_cert(X509 *x, const wi_x509_svid *s)
{
	size_t len = 0;
	const uint8_t *der = wi_x509_svid_chain_der(s, &len);
	const unsigned char *p = der;
	X509 *leaf = d2i_X509(NULL, &p, (long)len);
	bool eq = leaf && x && X509_cmp(leaf, x) == 0;
	X509_free(leaf);
	return eq;
}

/* ---- forged leaves (OpenSSL directly, signed by our CA) ------------------------ */

static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, F.own_cert, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A leaf for a fresh P-256 key with the given SAN, basicConstraints and
 * keyUsage values (NULL omits the extension), signed by our CA. */
static X509 *forge(const char *san, const char *bc, const char *ku, EVP_PKEY **ret_key)
{
	EVP_PKEY *key = NULL;
	assert_int_equal(wi_key_generate_p256(&key), 0);
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"forged", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(F.own_cert));
	X509_set_pubkey(x, key);
	if (san)
		add_ext(x, NID_subject_alt_name, san);
	if (bc)
		add_ext(x, NID_basic_constraints, bc);
	if (ku)
		add_ext(x, NID_key_usage, ku);
	add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth");
	assert_true(X509_sign(x, F.own_key, EVP_sha256()) > 0);
	*ret_key = key;
	return x;
}

/* ---- cases -------------------------------------------------------------------- */

static void test_allowed_id(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = client_ctx(F.client, F.own);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	if (!srv.ok || !cli.ok)
		fail_msg("server: %s / client: %s", srv.err, cli.err);
	assert_int_equal(srv.peer_rc, 0);
	assert_string_equal(srv.peer, ID_CLIENT);
	assert_int_equal(cli.peer_rc, 0);
	assert_string_equal(cli.peer, ID_SERVER);
	assert_true(same_cert(cli.peer_cert, F.server));
	conn_done(&srv, &cli);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_tls13_only(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = client_ctx(F.client, F.own);
	assert_int_equal(SSL_CTX_get_min_proto_version(s), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_min_proto_version(c), TLS1_3_VERSION);
	/* A TLS 1.2 client gets nowhere. */
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	cert = forge("URI:" ID_CLIENT, "critical,CA:FALSE", "critical,digitalSignature", &key);
	SSL_CTX *old = plain_client_ctx(cert, key);
	SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION);
	side srv, cli;
	run_conn(s, old, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	conn_done(&srv, &cli);
	X509_free(cert);
	EVP_PKEY_free(key);
	SSL_CTX_free(old);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_other_id_refused(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = client_ctx(F.other, F.own);
	assert_refused_by_server(s, c, "peer " ID_OTHER " is not authorized");
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_client_refuses_wrong_server(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	wimse_x509_source *src = static_source(F.client, F.own);
	SSL_CTX *c = tls_ctx(WIMSE_TLS_CLIENT, src, authz_id(ID_OTHER));
	wimse_x509_source_free(src);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	assert_false(cli.ok);
	assert_false(srv.ok);
	assert_contains(cli.err, "peer " ID_SERVER " is not authorized");
	assert_int_not_equal(cli.peer_rc, 0);
	conn_done(&srv, &cli);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_no_client_certificate_refused(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = plain_client_ctx(NULL, NULL);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_contains(srv.err, "peer did not return a certificate");
	assert_int_not_equal(srv.peer_rc, 0);
	conn_done(&srv, &cli);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

/* A plain client presenting a minted SVID (leaf only) and accepting any
 * server: the server's verdict alone is under test. */
static SSL_CTX *plain_client_with(const wi_x509_svid *s)
{
	size_t len = 0, klen = 0;
	const unsigned char *p = wi_x509_svid_chain_der(s, &len);
	X509 *leaf = d2i_X509(NULL, &p, (long)len);
	const unsigned char *kp = wi_x509_svid_key_der(s, &klen);
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &kp, (long)klen);
	assert_non_null(leaf);
	assert_non_null(key);
	SSL_CTX *ctx = plain_client_ctx(leaf, key);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return ctx;
}

static void test_foreign_ca_refused(void **state)
{
	/* Same trust domain name and SPIFFE ID, other CA key. */
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = plain_client_with(F.foreign_client);
	assert_refused_by_server(s, c, "does not verify against the bundle of example.org");
	SSL_CTX_free(c);

	/* And the other way round: a client that trusts only the foreign CA
	 * refuses our server (TLS 1.3: the client judges first). */
	c = client_ctx(F.foreign_client, F.foreign);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	assert_false(cli.ok);
	assert_false(srv.ok);
	assert_contains(cli.err, "peer " ID_SERVER ": certificate does not verify against the bundle of example.org");
	conn_done(&srv, &cli);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_expired_refused(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = plain_client_with(F.expired);
	assert_refused_by_server(s, c, "certificate has expired");
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_member_of(void **state)
{
	wimse_authorizer *a = NULL;
	assert_int_equal(wimse_authorize_member_of(TD, &a), 0);
	SSL_CTX *s = server_ctx(a);
	const wi_x509_svid *ok[] = {F.client, F.other};
	for (size_t i = 0; i < 2; i++) {
		SSL_CTX *c = client_ctx(ok[i], F.own);
		side srv, cli;
		run_conn(s, c, &srv, &cli);
		if (!srv.ok || !cli.ok)
			fail_msg("server: %s / client: %s", srv.err, cli.err);
		assert_string_equal(srv.peer, wi_x509_svid_spiffe_id(ok[i]));
		conn_done(&srv, &cli);
		SSL_CTX_free(c);
	}
	SSL_CTX_free(s);

	assert_int_equal(wimse_authorize_member_of("spiffe://other.org", &a), 0);
	s = server_ctx(a);
	SSL_CTX *c = client_ctx(F.client, F.own);
	assert_refused_by_server(s, c, "is not authorized");
	SSL_CTX_free(s);
	SSL_CTX_free(c);

	/* The predicate itself: the trust domain must match exactly. */
	assert_int_equal(wimse_authorize_member_of("example.org", &a), 0);
	assert_true(wimse_authorizer_allows(a, "spiffe://example.org/x"));
	assert_false(wimse_authorizer_allows(a, "spiffe://example.org.evil/x"));
	assert_false(wimse_authorizer_allows(a, "spiffe://xexample.org/x"));
	assert_false(wimse_authorizer_allows(a, "spiffe://example.or/x"));
	assert_false(wimse_authorizer_allows(a, NULL));
	wimse_authorizer_free(a);
}

static void test_one_of(void **state)
{
	const char *ids[] = {"spiffe://example.org/a", ID_CLIENT, "spiffe://example.org/b"};
	wimse_authorizer *a = NULL;
	assert_int_equal(wimse_authorize_one_of(ids, 3, &a), 0);
	SSL_CTX *s = server_ctx(a);
	SSL_CTX *c = client_ctx(F.client, F.own);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	if (!srv.ok || !cli.ok)
		fail_msg("server: %s / client: %s", srv.err, cli.err);
	assert_string_equal(srv.peer, ID_CLIENT);
	conn_done(&srv, &cli);
	SSL_CTX_free(c);
	c = client_ctx(F.other, F.own);
	assert_refused_by_server(s, c, "peer " ID_OTHER " is not authorized");
	SSL_CTX_free(c);
	SSL_CTX_free(s);

	/* Exact comparison, no prefix match. */
	assert_int_equal(wimse_authorize_one_of(ids, 2, &a), 0);
	assert_false(wimse_authorizer_allows(a, ID_CLIENT "/sub"));
	assert_false(wimse_authorizer_allows(a, "spiffe://example.org/clien"));
	assert_false(wimse_authorizer_allows(a, "spiffe://example.org/b"));
	wimse_authorizer_free(a);
}

static void test_any_and_func(void **state)
{
	wimse_authorizer *a = NULL;
	assert_int_equal(wimse_authorize_any(&a), 0);
	SSL_CTX *s = server_ctx(a);
	SSL_CTX *c = client_ctx(F.other, F.own);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	assert_true(srv.ok && cli.ok);
	assert_string_equal(srv.peer, ID_OTHER);
	conn_done(&srv, &cli);
	SSL_CTX_free(c);
	/* "any" still needs a chain to the bundle. */
	c = plain_client_with(F.foreign_client);
	assert_refused_by_server(s, c, "does not verify");
	SSL_CTX_free(c);
	SSL_CTX_free(s);
}

static bool only_other(const char *id, void *ud)
{
	(*(int *)ud)++;
	return strcmp(id, ID_OTHER) == 0;
}

static void test_func_authorizer(void **state)
{
	int calls = 0;
	wimse_authorizer *a = NULL;
	assert_int_equal(wimse_authorize_func(only_other, &calls, &a), 0);
	SSL_CTX *s = server_ctx(a);
	SSL_CTX *c = client_ctx(F.client, F.own);
	assert_refused_by_server(s, c, "not authorized");
	SSL_CTX_free(c);
	assert_int_equal(calls, 1);
	SSL_CTX_free(s);
}

static void test_two_uri_sans_refused(void **state)
{
	EVP_PKEY *key = NULL;
	X509 *x = forge("URI:" ID_CLIENT ",URI:spiffe://example.org/evil", "critical,CA:FALSE",
			"critical,digitalSignature", &key);
	/* The leaf check alone... */
	char id[256];
	assert_int_not_equal(wimse_x509_svid_leaf_id(x, id, sizeof(id)), 0);
	assert_contains(wimse_last_error(), "2 URI SANs");
	/* ...and in a handshake against an otherwise valid chain. */
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = plain_client_ctx(x, key);
	assert_refused_by_server(s, c, "2 URI SANs");
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_forged_leaf_baseline_accepted(void **state)
{
	/* The forging helper itself makes an acceptable SVID: so the refusals
	 * of the other forged leaves are due to the one rule each breaks. */
	EVP_PKEY *key = NULL;
	X509 *x = forge("URI:" ID_CLIENT, "critical,CA:FALSE", "critical,digitalSignature", &key);
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = plain_client_ctx(x, key);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	if (!srv.ok || !cli.ok)
		fail_msg("server: %s / client: %s", srv.err, cli.err);
	assert_string_equal(srv.peer, ID_CLIENT);
	conn_done(&srv, &cli);
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_leaf_rules(void **state)
{
	struct {
		const char *san, *bc, *ku, *why;
	} cases[] = {
		{"URI:" ID_CLIENT ",URI:" ID_OTHER, "critical,CA:FALSE", "critical,digitalSignature", "2 URI SANs"},
		{"DNS:client.example.org", "critical,CA:FALSE", "critical,digitalSignature", "0 URI SANs"},
		{NULL, "critical,CA:FALSE", "critical,digitalSignature", "no URI SAN"},
		{"URI:spiffe://example.org", "critical,CA:FALSE", "critical,digitalSignature", "with a path"},
		{"URI:https://example.org/client", "critical,CA:FALSE", "critical,digitalSignature", "not a SPIFFE ID"},
		{"URI:spiffe://Example.org/client", "critical,CA:FALSE", "critical,digitalSignature",
		 "not a SPIFFE ID"},
		{"URI:" ID_CLIENT, NULL, "critical,digitalSignature", "no basicConstraints"},
		{"URI:" ID_CLIENT, "critical,CA:TRUE", "critical,digitalSignature,keyCertSign", "CA certificate"},
		{"URI:" ID_CLIENT, "critical,CA:FALSE", NULL, "no keyUsage"},
		{"URI:" ID_CLIENT, "critical,CA:FALSE", "critical,keyEncipherment", "lacks digitalSignature"},
		{"URI:" ID_CLIENT, "critical,CA:FALSE", "critical,digitalSignature,cRLSign", "keyCertSign or cRLSign"},
	};
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY *key = NULL;
		X509 *x = forge(cases[i].san, cases[i].bc, cases[i].ku, &key);
		char id[256];
		if (wimse_x509_svid_leaf_id(x, id, sizeof(id)) == 0)
			fail_msg("case %zu accepted as %s", i, id);
		assert_contains(wimse_last_error(), cases[i].why);
		SSL_CTX *c = plain_client_ctx(x, key);
		side srv, cli;
		run_conn(s, c, &srv, &cli);
		if (srv.ok)
			fail_msg("case %zu (%s): server accepted the client", i, cases[i].why);
		assert_contains(srv.err, cases[i].why);
		conn_done(&srv, &cli);
		SSL_CTX_free(c);
		X509_free(x);
		EVP_PKEY_free(key);
	}
	/* The CA certificate itself is no SVID either. */
	char id[256];
	assert_int_not_equal(wimse_x509_svid_leaf_id(F.own_cert, id, sizeof(id)), 0);
	SSL_CTX *c = plain_client_ctx(F.own_cert, F.own_key);
	assert_refused_by_server(s, c, "not an X509-SVID");
	SSL_CTX_free(c);
	SSL_CTX_free(s);
	/* A buffer too small for the ID. */
	assert_int_not_equal(wimse_x509_svid_leaf_id(F.own_cert, id, 4), 0);
}

typedef struct cb_log {
	int updated, dropped;
	uint64_t last_generation;
} cb_log;

static void on_update(const wimse_x509_update *u, void *ud)
{
	cb_log *l = ud;
	if (u->event == WIMSE_X509_UPDATED) {
		l->updated++;
		l->last_generation = wimse_x509_snapshot_generation(u->snapshot);
	} else if (u->event == WIMSE_X509_DROPPED) {
		l->dropped++;
	}
}

static void test_rotation(void **state)
{
	wimse_x509_source *src = static_source(F.server, F.own);
	cb_log log = {0};
	wimse_x509_source_set_callback(src, on_update, &log);
	SSL_CTX *s = tls_ctx(WIMSE_TLS_SERVER, src, authz_id(ID_CLIENT));
	SSL_CTX *c = client_ctx(F.client, F.own);
	side srv, cli;
	run_conn(s, c, &srv, &cli);
	assert_true(srv.ok && cli.ok);
	assert_true(same_cert(cli.peer_cert, F.server));
	conn_done(&srv, &cli);

	/* A reader holding the old snapshot keeps it across the swap. */
	wimse_x509_snapshot *held = NULL;
	assert_int_equal(wimse_x509_source_get(src, &held), 0);
	assert_int_equal(wimse_x509_snapshot_generation(held), 1);

	one_ctx o;
	assert_int_equal(wimse_x509_source_set_static(src, ctx_of(&o, F.server2, F.own)), 0);
	assert_int_equal(log.updated, 1);
	assert_int_equal(log.last_generation, 2);
	run_conn(s, c, &srv, &cli);
	assert_true(srv.ok && cli.ok);
	assert_true(same_cert(cli.peer_cert, F.server2));
	assert_false(same_cert(cli.peer_cert, F.server));
	conn_done(&srv, &cli);
	assert_string_equal(wimse_x509_snapshot_context(held)->svids[0].spiffe_id, ID_SERVER);
	wimse_x509_snapshot_unref(held);

	/* Dropped (PERMISSION_DENIED): the server has nothing to present. */
	assert_int_equal(wimse_x509_source_set_static(src, NULL), 0);
	assert_int_equal(log.dropped, 1);
	assert_int_not_equal(wimse_x509_source_get(src, &held), 0);
	run_conn(s, c, &srv, &cli);
	assert_false(srv.ok);
	assert_false(cli.ok);
	assert_contains(srv.err, "no SVID to present");
	conn_done(&srv, &cli);

	/* Back again; the caller's free stops the callback, the context keeps
	 * the source alive. */
	assert_int_equal(wimse_x509_source_set_static(src, ctx_of(&o, F.server, F.own)), 0);
	assert_int_equal(log.updated, 2);
	wimse_x509_source_free(src);
	run_conn(s, c, &srv, &cli);
	assert_true(srv.ok && cli.ok);
	assert_true(same_cert(cli.peer_cert, F.server));
	conn_done(&srv, &cli);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

static void test_static_source_validation(void **state)
{
	one_ctx o;
	wimse_x509_source *src = NULL;
	const wimse_x509_context *ctx;

	/* A good one, with accessors. */
	ctx = ctx_of(&o, F.client, F.own);
	assert_int_equal(wimse_x509_source_new_static(ctx, &src), 0);
	assert_int_equal(wimse_x509_source_wait(src, 0), 0);
	wimse_x509_snapshot *snap = NULL;
	assert_int_equal(wimse_x509_source_get(src, &snap), 0);
	assert_non_null(wimse_x509_snapshot_svid(snap, NULL));
	assert_non_null(wimse_x509_snapshot_svid(snap, ID_CLIENT));
	assert_null(wimse_x509_snapshot_svid(snap, ID_OTHER));
	const uint8_t *der = NULL;
	size_t len = 0;
	assert_int_equal(wimse_x509_snapshot_bundle(snap, TD, &der, &len), 0);
	assert_int_equal(wimse_x509_snapshot_bundle(snap, "spiffe://" TD, &der, &len), 0);
	assert_int_not_equal(wimse_x509_snapshot_bundle(snap, "other.org", &der, &len), 0);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	assert_int_equal(wimse_x509_snapshot_svid_openssl(snap, 0, &leaf, &chain, &key), 0);
	assert_true(same_cert(leaf, F.client));
	assert_int_equal(sk_X509_num(chain), 0);
	assert_int_not_equal(wimse_x509_snapshot_svid_openssl(snap, 1, &leaf, &chain, &key), 0);
	wimse_x509_snapshot_unref(wimse_x509_snapshot_ref(snap));
	wimse_x509_snapshot_unref(snap);
	/* A static source cannot be fed a broken context either. */
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.key_len = 10;
	assert_int_not_equal(wimse_x509_source_set_static(src, ctx), 0);
	wimse_x509_source_free(src);
	src = NULL;

	/* Key of another SVID. */
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.key_der = (uint8_t *)wi_x509_svid_key_der(F.other, &o.svid.key_len);
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	assert_contains(wimse_last_error(), "does not match");
	/* spiffe_id field differs from the certificate. */
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.spiffe_id = (char *)ID_OTHER;
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	/* Truncated chain, empty bundle, trailing garbage, empty context. */
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.chain_len -= 1;
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.bundle_len = 0;
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	ctx = ctx_of(&o, F.client, F.own);
	o.ctx.n_svids = 0;
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	assert_null(src);
	/* A leaf with two URI SANs is refused when loaded as an SVID too. */
	EVP_PKEY *fk = NULL;
	X509 *fx509 = forge("URI:" ID_CLIENT ",URI:" ID_OTHER, "critical,CA:FALSE", "critical,digitalSignature", &fk);
	unsigned char *cder = NULL, *kder = NULL;
	int clen = i2d_X509(fx509, &cder);
	int klen = i2d_PrivateKey(fk, &kder);
	assert_true(clen > 0 && klen > 0);
	ctx = ctx_of(&o, F.client, F.own);
	o.svid.chain_der = cder;
	o.svid.chain_len = (size_t)clen;
	assert_int_not_equal(wimse_x509_source_new_static(ctx, &src), 0);
	assert_contains(wimse_last_error(), "2 URI SANs");
	OPENSSL_free(cder);
	OPENSSL_clear_free(kder, (size_t)klen);
	X509_free(fx509);
	EVP_PKEY_free(fk);
}

static void test_authorizer_arguments(void **state)
{
	wimse_authorizer *a = NULL;
	assert_int_not_equal(wimse_authorize_id("spiffe://example.org", &a), 0); /* root ID never matches */
	assert_int_not_equal(wimse_authorize_id("spiffe://Example.org/x", &a), 0);
	assert_int_not_equal(wimse_authorize_id("https://example.org/x", &a), 0);
	assert_int_not_equal(wimse_authorize_id("spiffe://example.org/x/", &a), 0);
	assert_int_not_equal(wimse_authorize_id(NULL, &a), 0);
	assert_int_not_equal(wimse_authorize_one_of(NULL, 0, &a), 0);
	const char *bad[] = {"spiffe://example.org/a", "nope"};
	assert_int_not_equal(wimse_authorize_one_of(bad, 2, &a), 0);
	assert_int_not_equal(wimse_authorize_member_of("Example.org", &a), 0);
	assert_int_not_equal(wimse_authorize_member_of("", &a), 0);
	assert_int_not_equal(wimse_authorize_member_of("example.org/x", &a), 0);
	assert_int_not_equal(wimse_authorize_func(NULL, NULL, &a), 0);
	assert_null(a);
	wimse_authorizer_free(NULL);

	wimse_tls_options o = {.role = WIMSE_TLS_SERVER};
	SSL_CTX *ctx = NULL;
	assert_int_not_equal(wimse_tls_ctx_new(&o, &ctx), 0);
	assert_null(ctx);
	/* Presenting an SVID the source does not hold fails the handshake. */
	wimse_x509_source *src = static_source(F.server, F.own);
	assert_int_equal(wimse_authorize_any(&a), 0);
	o.source = src;
	o.authorizer = a;
	o.svid_id = "spiffe://example.org/nobody";
	assert_int_equal(wimse_tls_ctx_new(&o, &ctx), 0);
	wimse_authorizer_free(a);
	wimse_x509_source_free(src);
	SSL_CTX *c = client_ctx(F.client, F.own);
	side srv, cli;
	run_conn(ctx, c, &srv, &cli);
	assert_false(srv.ok);
	assert_contains(srv.err, "no SVID for spiffe://example.org/nobody");
	conn_done(&srv, &cli);
	SSL_CTX_free(c);
	SSL_CTX_free(ctx);
	/* wimse_tls_peer_id before any handshake. */
	ctx = client_ctx(F.client, F.own);
	SSL *ssl = SSL_new(ctx);
	char buf[64];
	assert_int_not_equal(wimse_tls_peer_id(ssl, buf, sizeof(buf)), 0);
	assert_null(wimse_tls_verify_error(ssl));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void test_peer_id_buffer(void **state)
{
	SSL_CTX *s = server_ctx(authz_id(ID_CLIENT));
	SSL_CTX *c = client_ctx(F.client, F.own);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	side srv = {.ctx = s, .fd = sv[0]};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, server_main, &srv), 0);
	SSL *ssl = SSL_new(c);
	SSL_set_fd(ssl, sv[1]);
	assert_int_equal(SSL_connect(ssl), 1);
	char small[8], exact[sizeof(ID_SERVER)];
	assert_int_not_equal(wimse_tls_peer_id(ssl, small, sizeof(small)), 0);
	assert_int_equal(wimse_tls_peer_id(ssl, exact, sizeof(exact)), 0);
	assert_string_equal(exact, ID_SERVER);
	char buf[8];
	assert_int_equal(SSL_write(ssl, "x\n", 2), 2);
	assert_int_equal(SSL_read(ssl, buf, sizeof(buf)), 2);
	SSL_free(ssl);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	assert_true(srv.ok);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

/* Handshakes on several threads while another thread rotates the source. */
typedef struct stress {
	SSL_CTX *s, *c;
	int ok, n;
} stress;

static void *stress_main(void *arg)
{
	stress *st = arg;
	for (int i = 0; i < st->n; i++) {
		side srv, cli;
		run_conn(st->s, st->c, &srv, &cli);
		if (srv.ok && cli.ok && (same_cert(cli.peer_cert, F.server) || same_cert(cli.peer_cert, F.server2)))
			st->ok++;
		conn_done(&srv, &cli);
	}
	return NULL;
}

static void test_concurrent_rotation(void **state)
{
	wimse_x509_source *src = static_source(F.server, F.own);
	stress st = {.s = tls_ctx(WIMSE_TLS_SERVER, src, authz_id(ID_CLIENT)),
		     .c = client_ctx(F.client, F.own),
		     .n = 15};
	stress st2 = st;
	pthread_t t1, t2;
	assert_int_equal(pthread_create(&t1, NULL, stress_main, &st), 0);
	assert_int_equal(pthread_create(&t2, NULL, stress_main, &st2), 0);
	for (int i = 0; i < 40; i++) {
		one_ctx o;
		assert_int_equal(wimse_x509_source_set_static(src, ctx_of(&o, i % 2 ? F.server : F.server2, F.own)), 0);
		usleep(2000);
	}
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(st.ok, st.n);
	assert_int_equal(st2.ok, st2.n);
	wimse_x509_source_free(src);
	SSL_CTX_free(st.s);
	SSL_CTX_free(st.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_id),
		cmocka_unit_test(test_tls13_only),
		cmocka_unit_test(test_other_id_refused),
		cmocka_unit_test(test_client_refuses_wrong_server),
		cmocka_unit_test(test_no_client_certificate_refused),
		cmocka_unit_test(test_foreign_ca_refused),
		cmocka_unit_test(test_expired_refused),
		cmocka_unit_test(test_member_of),
		cmocka_unit_test(test_one_of),
		cmocka_unit_test(test_any_and_func),
		cmocka_unit_test(test_func_authorizer),
		cmocka_unit_test(test_two_uri_sans_refused),
		cmocka_unit_test(test_forged_leaf_baseline_accepted),
		cmocka_unit_test(test_leaf_rules),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_static_source_validation),
		cmocka_unit_test(test_authorizer_arguments),
		cmocka_unit_test(test_peer_id_buffer),
		cmocka_unit_test(test_concurrent_rotation),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
