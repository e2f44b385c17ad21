/* tests/unit/test_ca.c — signer, keys, SVIDs, the CA and X.509-SVID minting.
 *
 * Every minted certificate is parsed back with OpenSSL and checked field by
 * field against the profile in core/ca.h, then verified as a chain with
 * X509_STORE, as `openssl verify` and the SPIFFE libraries would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/ca.h"
#include "core/fsutil.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/signer.h"
#include "core/svid.h"

#define TD "example.org"
#define CA_TTL (365LL * 24 * 3600)
#define MAX_SVID_TTL 3600
#define BACKDATE WI_CERT_BACKDATE_SECONDS

/* ---- fixture: a fresh temp data dir per test ------------------------------ */

typedef struct fx {
	char dir[512];           /* data_dir (short: paths built from it fit PATH_MAX) */
	char key_path[PATH_MAX]; /* <dir>/ca/ca.key.pem */
	char crt_path[PATH_MAX]; /* <dir>/ca/ca.crt.pem */
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "ca"));
	snprintf(f->key_path, sizeof(f->key_path), "%s/ca/ca.key.pem", f->dir);
	snprintf(f->crt_path, sizeof(f->crt_path), "%s/ca/ca.crt.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	wi_test_rmtree(f->dir);
	free(f);
	return 0;
}

static wi_ca_options opts_for(const fx *f)
{
	wi_ca_options o = {
		.trust_domain = TD,
		.data_dir = f->dir,
		.ttl = CA_TTL,
		.max_svid_ttl = MAX_SVID_TTL,
	};
	return o;
}

static wi_ca *open_ca(const wi_ca_options *o, time_t now)
{
	wi_ca *ca = NULL;
	int r = wi_ca_open(o, now, &ca);
	if (r != 0)
		fail_msg("wi_ca_open: %d %s", r, wi_error_detail());
	assert_non_null(ca);
	return ca;
}

static wi_x509_svid *mint(wi_ca *ca, const char *id, int64_t ttl, time_t now)
{
	wi_x509_svid *s = NULL;
	int r = wi_ca_mint_x509_svid(ca, id, ttl, now, &s);
	if (r != 0)
		fail_msg("mint %s: %d %s", id, r, wi_error_detail());
	assert_non_null(s);
	return s;
}

/* ---- parsing helpers -------------------------------------------------------- */

static time_t t_of(const ASN1_TIME *t)
{
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return timegm(&tm);
}

/* Concatenated DER certificates, every byte consumed. */
static STACK_OF(X509) *parse_ders(const uint8_t *der, size_t len)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	assert_non_null(sk);
	const unsigned char *p = der;
	while (p < der + len) {
		X509 *x = d2i_X509(NULL, &p, (long)(der + len - p));
		assert_non_null(x);
		assert_true(sk_X509_push(sk, x) > 0);
	}
	assert_ptr_equal(p, der + len);
	return sk;
}

static STACK_OF(X509) *svid_chain(const wi_x509_svid *s)
{
	size_t len = 0;
	const uint8_t *der = wi_x509_svid_chain_der(s, &len);
	return parse_ders(der, len);
}

static STACK_OF(X509) *ca_bundle(const wi_ca *ca)
{
	size_t len = 0;
	const uint8_t *der = wi_ca_bundle_der(ca, &len);
	assert_true(len > 0);
	return parse_ders(der, len);
}

static void free_certs(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

static uint8_t *bundle_copy(const wi_ca *ca, size_t *ret_len)
{
	size_t len = 0;
	const uint8_t *der = wi_ca_bundle_der(ca, &len);
	uint8_t *c = malloc(len);
	assert_non_null(c);
	memcpy(c, der, len);
	*ret_len = len;
	return c;
}

static X509_EXTENSION *only_ext(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	assert_true(i >= 0);
	assert_int_equal(X509_get_ext_by_NID(x, nid, i), -1); /* exactly once */
	return X509_get_ext(x, i);
}

static bool is_p256(EVP_PKEY *k)
{
	char g[64];
	size_t n = 0;
	return EVP_PKEY_is_a(k, "EC") &&
	       EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof(g), &n) == 1 &&
	       strcmp(g, "prime256v1") == 0;
}

static void check_sig_alg(X509 *x)
{
	/* ecdsa-with-SHA256, parameters absent, outer and TBS alike. */
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	const ASN1_BIT_STRING *sig = NULL;
	const X509_ALGOR *outer = NULL;
	X509_get0_signature(&sig, &outer, x);
	const X509_ALGOR *algs[2] = {outer, X509_get0_tbs_sigalg(x)};
	for (int i = 0; i < 2; i++) {
		const ASN1_OBJECT *obj = NULL;
		int ptype = -1;
		const void *pval = NULL;
		X509_ALGOR_get0(&obj, &ptype, &pval, algs[i]);
		assert_int_equal(OBJ_obj2nid(obj), NID_ecdsa_with_SHA256);
		assert_int_equal(ptype, V_ASN1_UNDEF);
	}
	assert_true(ASN1_STRING_length(sig) > 8);
}

/* Exactly one SAN entry in total, a URI equal to `uri`. */
static void check_only_uri_san(X509 *x, const char *uri)
{
	only_ext(x, NID_subject_alt_name);
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(g->type, GEN_URI);
	const ASN1_IA5STRING *s = g->d.uniformResourceIdentifier;
	assert_int_equal(ASN1_STRING_length(s), strlen(uri));
	assert_memory_equal(ASN1_STRING_get0_data(s), uri, strlen(uri));
	GENERAL_NAMES_free(gens);
}

static void check_basic_constraints(X509 *x, bool want_ca)
{
	X509_EXTENSION *e = only_ext(x, NID_basic_constraints);
	assert_int_equal(X509_EXTENSION_get_critical(e), 1);
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_int_equal(bc->ca != 0, want_ca);
	assert_null(bc->pathlen);
	BASIC_CONSTRAINTS_free(bc);
	/* Exact DER of the value: SEQUENCE { BOOLEAN 0xFF } for a CA (X.690
	 * §11.1: TRUE is 0xFF; Go and Rust reject 0x01), an empty SEQUENCE for a
	 * leaf (DEFAULT FALSE is omitted). */
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(e);
	static const unsigned char ca_der[] = {0x30, 0x03, 0x01, 0x01, 0xff};
	static const unsigned char leaf_der[] = {0x30, 0x00};
	const unsigned char *want = want_ca ? ca_der : leaf_der;
	int want_len = want_ca ? (int)sizeof(ca_der) : (int)sizeof(leaf_der);
	assert_int_equal(ASN1_STRING_length(v), want_len);
	assert_memory_equal(ASN1_STRING_get0_data(v), want, (size_t)want_len);
}

/* keyUsage present, critical, with exactly the bits in `want` (bit numbers). */
static void check_key_usage(X509 *x, const int *want, int nwant)
{
	X509_EXTENSION *e = only_ext(x, NID_key_usage);
	assert_int_equal(X509_EXTENSION_get_critical(e), 1);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
	assert_non_null(ku);
	for (int bit = 0; bit < 16; bit++) {
		bool wanted = false;
		for (int i = 0; i < nwant; i++)
			wanted |= want[i] == bit;
		assert_int_equal(ASN1_BIT_STRING_get_bit(ku, bit), wanted ? 1 : 0);
	}
	ASN1_BIT_STRING_free(ku);
}

static const ASN1_OCTET_STRING *ski_of(X509 *x)
{
	only_ext(x, NID_subject_key_identifier);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	assert_non_null(ski);
	assert_true(ASN1_STRING_length(ski) > 0);
	return ski;
}

/* The X.509-SVID leaf profile of core/ca.h, one field at a time. */
static void check_leaf(X509 *leaf, X509 *issuer, const char *id, time_t now, int64_t ttl,
		       time_t ca_not_after)
{
	/* version 3 */
	assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
	/* serial: positive, non-zero, at most 16 magnitude bytes (<= 20 octets) */
	const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
	assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bytes(bn) <= 16);
	BN_free(bn);
	/* validity */
	assert_int_equal(t_of(X509_get0_notBefore(leaf)), now - BACKDATE);
	time_t want_na = now + ttl < ca_not_after ? now + ttl : ca_not_after;
	assert_int_equal(t_of(X509_get0_notAfter(leaf)), want_na);
	/* subject O=wimsed, nothing else; issuer = the CA's subject */
	X509_NAME *subj = X509_get_subject_name(leaf);
	assert_int_equal(X509_NAME_entry_count(subj), 1);
	char o[32];
	assert_int_equal(X509_NAME_get_text_by_NID(subj, NID_organizationName, o, sizeof(o)), 6);
	assert_string_equal(o, "wimsed");
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(issuer)), 0);
	/* exactly one SAN, a URI, the ID */
	check_only_uri_san(leaf, id);
	/* basicConstraints present, critical, CA:FALSE */
	check_basic_constraints(leaf, false);
	/* keyUsage present, critical, digitalSignature only */
	const int ku[] = {0};
	check_key_usage(leaf, ku, 1);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	/* EKU: exactly serverAuth and clientAuth */
	only_ext(leaf, NID_ext_key_usage);
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
	bool server = false, client = false;
	for (int i = 0; i < 2; i++) {
		int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
		server |= nid == NID_server_auth;
		client |= nid == NID_client_auth;
	}
	assert_true(server && client);
	EXTENDED_KEY_USAGE_free(eku);
	/* SKI, and AKI = the issuer's SKI */
	ski_of(leaf);
	only_ext(leaf, NID_authority_key_identifier);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski_of(issuer)), 0);
	/* and no other extension */
	assert_int_equal(X509_get_ext_count(leaf), 6);
	/* signature ecdsa-with-SHA256, key P-256, signed by the issuer */
	check_sig_alg(leaf);
	assert_true(is_p256(X509_get0_pubkey(leaf)));
	assert_int_equal(X509_verify(leaf, X509_get0_pubkey(issuer)), 1);
	/* a leaf by OpenSSL's own reading too */
	assert_int_equal(X509_check_ca(leaf), 0);
}

/* The PKCS#8 DER key parses and is the leaf's key. */
static void check_key_matches(const wi_x509_svid *s, X509 *leaf)
{
	size_t len = 0;
	const uint8_t *der = wi_x509_svid_key_der(s, &len);
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	assert_non_null(p8);
	assert_ptr_equal(p, der + len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)len);
	assert_non_null(k);
	assert_true(is_p256(k));
	assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(leaf)), 1);
	EVP_PKEY_free(k);
	p = der;
	k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)len);
	assert_non_null(k);
	EVP_PKEY_free(k);
}

/* Path validation as `openssl verify -purpose ...` does, for both TLS roles:
 * trust anchors = the bundle, untrusted = the chain after the leaf. */
static int verify_chain(STACK_OF(X509) *chain, STACK_OF(X509) *anchors, time_t at, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	assert_non_null(store);
	for (int i = 0; i < sk_X509_num(anchors); i++)
		assert_int_equal(X509_STORE_add_cert(store, sk_X509_value(anchors, i)), 1);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	for (int i = 1; i < sk_X509_num(chain); i++)
		sk_X509_push(untrusted, sk_X509_value(chain, i));
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted), 1);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	if (at)
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
	int ok = X509_verify_cert(ctx);
	int err = X509_STORE_CTX_get_error(ctx);
	if (ok != 1)
		print_message("verify: %s\n", X509_verify_cert_error_string(err));
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	return ok == 1 ? 0 : err;
}

static void check_chain_verifies(STACK_OF(X509) *chain, STACK_OF(X509) *anchors, time_t at)
{
	assert_int_equal(verify_chain(chain, anchors, at, X509_PURPOSE_SSL_CLIENT), 0);
	assert_int_equal(verify_chain(chain, anchors, at, X509_PURPOSE_SSL_SERVER), 0);
}

static mode_t mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_mode & 07777;
}

static X509 *read_cert_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(wi_fs_write_atomic(path, text, strlen(text), mode), 0);
}

/* ---- an upstream CA made with plain OpenSSL (test code may use X509_sign) - */

static void add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for `key` named CN=<cn>, issued by issuer/issuer_key (NULL:
 * self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       time_t nb, time_t na, bool ca)
{
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	static long serial = 1000;
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Upstream", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), na));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_conf_ext(x, issuer ? issuer : x, NID_basic_constraints,
		     ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_conf_ext(x, issuer ? issuer : x, NID_key_usage,
		     ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	add_conf_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (issuer)
		add_conf_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_certs_pem(const char *path, X509 **certs, int n)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < n; i++)
		assert_int_equal(PEM_write_X509(fp, certs[i]), 1);
	assert_int_equal(fclose(fp), 0);
}

static EVP_PKEY *gen_p256(void)
{
	EVP_PKEY *k = NULL;
	assert_int_equal(wi_key_generate_p256(&k), 0);
	return k;
}

typedef struct upstream_files {
	char cert[PATH_MAX];
	char key[PATH_MAX];
	X509 *root;
	EVP_PKEY *root_key;
} upstream_files;

/* A self-signed upstream root valid [now - 1 h, na], written to the fixture
 * dir as up.crt.pem (0644) and up.key.pem (0600). */
static void make_upstream(const fx *f, time_t now, time_t na, upstream_files *u)
{
	u->root_key = gen_p256();
	u->root = make_cert(u->root_key, "Upstream Root", NULL, NULL, now - 3600, na, true);
	snprintf(u->cert, sizeof(u->cert), "%s/up.crt.pem", f->dir);
	snprintf(u->key, sizeof(u->key), "%s/up.key.pem", f->dir);
	write_certs_pem(u->cert, &u->root, 1);
	assert_int_equal(wi_key_save_pem(u->root_key, u->key), 0);
}

static void upstream_free(upstream_files *u)
{
	X509_free(u->root);
	EVP_PKEY_free(u->root_key);
}

/* ==== signer ================================================================= */

static void test_signer_sign_verify(void **state)
{
	(void)state;
	EVP_PKEY *key = gen_p256();
	wi_signer *s = NULL;
	assert_int_equal(wi_signer_from_pkey(key, &s), 0);
	assert_int_equal(wi_signer_alg(s), WI_SIG_ECDSA_P256_SHA256);
	EVP_PKEY *pub = wi_signer_public_key(s);
	assert_non_null(pub);
	assert_int_equal(EVP_PKEY_eq(pub, key), 1);

	uint8_t digest[32];
	unsigned int dlen = 0;
	assert_int_equal(EVP_Digest("message", 7, digest, &dlen, EVP_sha256(), NULL), 1);
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	assert_int_equal(wi_signer_sign(s, WI_SIG_ECDSA_P256_SHA256, digest, 32, &sig, &sig_len), 0);
	/* A DER ECDSA-Sig-Value that verifies against the public key. */
	const unsigned char *p = sig;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
	assert_non_null(es);
	ECDSA_SIG_free(es);
	EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new(pub, NULL);
	assert_int_equal(EVP_PKEY_verify_init(vctx), 1);
	assert_int_equal(EVP_PKEY_verify(vctx, sig, sig_len, digest, 32), 1);
	digest[0] ^= 1;
	assert_int_not_equal(EVP_PKEY_verify(vctx, sig, sig_len, digest, 32), 1);
	ERR_clear_error();
	EVP_PKEY_CTX_free(vctx);
	free(sig);

	/* The public half cannot sign. */
	EVP_PKEY_CTX *sctx = EVP_PKEY_CTX_new(pub, NULL);
	uint8_t buf[256];
	size_t n = sizeof(buf);
	assert_true(EVP_PKEY_sign_init(sctx) != 1 || EVP_PKEY_sign(sctx, buf, &n, digest, 32) != 1);
	ERR_clear_error();
	EVP_PKEY_CTX_free(sctx);

	/* Wrong algorithm, wrong digest length: refused, outputs untouched. */
	sig = (uint8_t *)0x1;
	assert_int_equal(wi_signer_sign(s, WI_SIG_RSA_PKCS1_SHA256, digest, 32, &sig, &sig_len),
			 WI_E_INVAL);
	assert_int_equal(wi_signer_sign(s, WI_SIG_ECDSA_P256_SHA256, digest, 31, &sig, &sig_len),
			 WI_E_INVAL);
	assert_ptr_equal(sig, (uint8_t *)0x1);
	assert_null(wi_signer_free(s));
	assert_null(wi_signer_free(NULL));
}

static void test_signer_rejects_other_keys(void **state)
{
	(void)state;
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(p384);
	wi_signer *s = NULL;
	assert_int_equal(wi_signer_from_pkey(p384, &s), WI_E_INVAL);
	assert_null(s);
	EVP_PKEY_free(p384); /* not taken on failure */
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	assert_int_equal(wi_signer_from_pkey(ed, &s), WI_E_INVAL);
	EVP_PKEY_free(ed);
	/* RSA below 2048 bits is refused; 2048 and up is accepted (RS256 JWT
	 * keys; tests/unit/test_jwt_keys.c covers signing). */
	EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_non_null(rsa1024);
	assert_int_equal(wi_signer_from_pkey(rsa1024, &s), WI_E_INVAL);
	assert_null(s);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	assert_non_null(rsa);
	assert_int_equal(wi_signer_from_pkey(rsa, &s), 0);
	assert_int_equal(wi_signer_alg(s), WI_SIG_RSA_PKCS1_SHA256);
	wi_signer_free(s);
}

/* ==== keys ==================================================================== */

static void test_keys_pkcs8_and_pem(void **state)
{
	fx *f = *state;
	EVP_PKEY *key = gen_p256();
	assert_true(is_p256(key));

	uint8_t *der = NULL;
	size_t len = 0;
	assert_int_equal(wi_key_to_pkcs8_der(key, &der, &len), 0);
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	assert_non_null(p8);
	assert_ptr_equal(p, der + len);
	EVP_PKEY *back = EVP_PKCS82PKEY(p8);
	assert_non_null(back);
	assert_int_equal(EVP_PKEY_eq(back, key), 1);
	EVP_PKEY_free(back);
	PKCS8_PRIV_KEY_INFO_free(p8);
	wi_secret_free(der, len);

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/k.pem", f->dir);
	mode_t old = umask(0);
	assert_int_equal(wi_key_save_pem(key, path), 0);
	umask(old);
	assert_int_equal(mode_of(path), 0600);
	uint8_t *text = NULL;
	assert_int_equal(wi_fs_read_file(path, 4096, &text, &len), 0);
	assert_memory_equal(text, "-----BEGIN PRIVATE KEY-----\n", 28);
	free(text);
	EVP_PKEY *loaded = NULL;
	assert_int_equal(wi_key_load_pem(path, &loaded), 0);
	assert_int_equal(EVP_PKEY_eq(loaded, key), 1);
	EVP_PKEY_free(loaded);

	/* Group- or other-accessible key files are refused. */
	loaded = NULL;
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_CONFIG);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_CONFIG);
	assert_int_equal(chmod(path, 0620), 0);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_CONFIG);
	assert_null(loaded);

	/* Missing, garbage, encrypted (never prompts). */
	snprintf(path, sizeof(path), "%s/absent.pem", f->dir);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_NOT_FOUND);
	snprintf(path, sizeof(path), "%s/junk.pem", f->dir);
	write_file(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0600);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_PARSE);
	snprintf(path, sizeof(path), "%s/enc.pem", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PKCS8PrivateKey(fp, key, EVP_aes_256_cbc(), "pw", 2, NULL, NULL), 1);
	fclose(fp);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(wi_key_load_pem(path, &loaded), WI_E_PARSE);
	assert_null(loaded);
	EVP_PKEY_free(key);
}

/* ==== svid ==================================================================== */

static void test_svid_refcount(void **state)
{
	(void)state;
	const uint8_t chain[] = {0x30, 0x03, 1, 2, 3};
	const uint8_t key[] = {0x30, 0x01, 9};
	wi_x509_svid *s = NULL;
	assert_int_equal(wi_x509_svid_new("spiffe://example.org/a", chain, sizeof(chain), key,
					  sizeof(key), 1000, 1100, &s),
			 0);
	assert_string_equal(wi_x509_svid_spiffe_id(s), "spiffe://example.org/a");
	size_t n = 0;
	assert_memory_equal(wi_x509_svid_chain_der(s, &n), chain, sizeof(chain));
	assert_int_equal(n, sizeof(chain));
	assert_memory_equal(wi_x509_svid_key_der(s, &n), key, sizeof(key));
	assert_int_equal(n, sizeof(key));
	assert_int_equal(wi_x509_svid_not_before(s), 1000);
	assert_int_equal(wi_x509_svid_not_after(s), 1100);
	assert_int_equal(wi_x509_svid_refresh_at(s), 1050);
	assert_ptr_equal(wi_x509_svid_ref(s), s);
	assert_null(wi_x509_svid_unref(s));
	assert_string_equal(wi_x509_svid_spiffe_id(s), "spiffe://example.org/a"); /* still held */
	assert_null(wi_x509_svid_unref(s));
	assert_null(wi_x509_svid_unref(NULL));
	assert_null(wi_x509_svid_ref(NULL));

	wi_x509_svid *bad = (wi_x509_svid *)0x1;
	assert_int_equal(wi_x509_svid_new("x", chain, sizeof(chain), key, sizeof(key), 1100, 1100, &bad),
			 WI_E_INVAL);
	assert_int_equal(wi_x509_svid_new("x", chain, 0, key, sizeof(key), 1, 2, &bad), WI_E_INVAL);
	assert_int_equal(wi_x509_svid_new("x", chain, sizeof(chain), key, 0, 1, 2, &bad), WI_E_INVAL);
	assert_ptr_equal(bad, (wi_x509_svid *)0x1);
}

/* ==== CA: persistence ========================================================= */

static void test_open_fresh(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/ca", f->dir);
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(f->key_path), 0600);
	assert_int_equal(mode_of(f->crt_path), 0644);
	assert_int_equal(wi_ca_not_after(ca), now + CA_TTL);
	/* The bundle is exactly the certificate on disk. */
	STACK_OF(X509) *b = ca_bundle(ca);
	assert_int_equal(sk_X509_num(b), 1);
	X509 *disk = read_cert_file(f->crt_path);
	assert_int_equal(X509_cmp(disk, sk_X509_value(b, 0)), 0);
	/* And the key on disk is its key. */
	EVP_PKEY *k = NULL;
	assert_int_equal(wi_key_load_pem(f->key_path, &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(disk)), 1);
	EVP_PKEY_free(k);
	X509_free(disk);
	free_certs(b);
	/* Only the key, the cert and the rotation manifest: no temp files. */
	DIR *d = opendir(dir);
	assert_non_null(d);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		count += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(count, 3);
	assert_null(wi_ca_free(ca));
	assert_null(wi_ca_free(NULL));
}

static void test_open_persists(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	size_t len1 = 0;
	uint8_t *b1 = bundle_copy(ca, &len1);
	time_t na = wi_ca_not_after(ca);
	wi_ca_free(ca);

	/* Restart later (still far from expiry): the same CA. */
	ca = open_ca(&o, now + 86400);
	size_t len2 = 0;
	const uint8_t *b2 = wi_ca_bundle_der(ca, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(b1, b2, len1);
	assert_int_equal(wi_ca_not_after(ca), na);
	/* An SVID minted after the restart chains to the old bundle. */
	wi_x509_svid *s = mint(ca, "spiffe://" TD "/after/restart", 600, time(NULL));
	STACK_OF(X509) *chain = svid_chain(s);
	STACK_OF(X509) *anchors = parse_ders(b1, len1);
	check_chain_verifies(chain, anchors, 0);
	free_certs(anchors);
	free_certs(chain);
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
	free(b1);
}

static void test_mismatched_key_regenerates(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	size_t len1 = 0;
	uint8_t *b1 = bundle_copy(ca, &len1);
	wi_ca_free(ca);

	/* What a crash between the key write and the cert write leaves. */
	EVP_PKEY *other = gen_p256();
	assert_int_equal(wi_key_save_pem(other, f->key_path), 0);
	EVP_PKEY_free(other);

	ca = open_ca(&o, now);
	size_t len2 = 0;
	const uint8_t *b2 = wi_ca_bundle_der(ca, &len2);
	assert_false(len1 == len2 && memcmp(b1, b2, len1) == 0);
	X509 *disk = read_cert_file(f->crt_path);
	EVP_PKEY *k = NULL;
	assert_int_equal(wi_key_load_pem(f->key_path, &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(disk)), 1);
	EVP_PKEY_free(k);
	X509_free(disk);
	/* And it mints SVIDs that chain to the new bundle. */
	wi_x509_svid *s = mint(ca, "spiffe://" TD "/x", 600, time(NULL));
	STACK_OF(X509) *chain = svid_chain(s);
	STACK_OF(X509) *anchors = ca_bundle(ca);
	check_chain_verifies(chain, anchors, 0);
	free_certs(anchors);
	free_certs(chain);
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
	free(b1);
}

static void test_missing_file_regenerates(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	size_t len1 = 0;
	uint8_t *b1 = bundle_copy(ca, &len1);
	wi_ca_free(ca);
	assert_int_equal(unlink(f->crt_path), 0);
	ca = open_ca(&o, now);
	size_t len2 = 0;
	const uint8_t *b2 = wi_ca_bundle_der(ca, &len2);
	assert_false(len1 == len2 && memcmp(b1, b2, len1) == 0);
	assert_int_equal(access(f->crt_path, R_OK), 0);
	wi_ca_free(ca);
	free(b1);
}

/* Documented choice (core/ca.c): an unparseable key or cert is a clear error
 * that leaves the files as they are; a parseable but unsuitable pair is
 * regenerated. */
static void test_corrupt_files_fail_clearly(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca_free(open_ca(&o, now));
	uint8_t *crt_before = NULL;
	size_t crt_len = 0;
	assert_int_equal(wi_fs_read_file(f->crt_path, 1 << 16, &crt_before, &crt_len), 0);

	const char *junk = "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n";
	write_file(f->key_path, junk, 0600);
	wi_ca *ca = (wi_ca *)0x1;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_PARSE);
	assert_ptr_equal(ca, (wi_ca *)0x1);
	assert_non_null(strstr(wi_error_detail(), "private key"));
	/* Untouched. */
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(wi_fs_read_file(f->key_path, 1 << 16, &data, &len), 0);
	assert_string_equal((char *)data, junk);
	free(data);
	assert_int_equal(wi_fs_read_file(f->crt_path, 1 << 16, &data, &len), 0);
	assert_int_equal(len, crt_len);
	assert_memory_equal(data, crt_before, len);
	free(data);

	/* A damaged certificate likewise. */
	write_file(f->crt_path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_PARSE);
	write_file(f->crt_path, "hello\n", 0644);
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_PARSE);
	assert_ptr_equal(ca, (wi_ca *)0x1);
	free(crt_before);
}

static void test_open_key_too_open(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca_free(open_ca(&o, now));
	assert_int_equal(chmod(f->key_path, 0644), 0);
	wi_ca *ca = NULL;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	assert_null(ca);
}

static void test_expiring_regenerates(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	size_t len1 = 0;
	uint8_t *b1 = bundle_copy(ca, &len1);
	time_t na = wi_ca_not_after(ca);
	wi_ca_free(ca);

	/* Exactly 2 * max SVID TTL before expiry: kept. */
	ca = open_ca(&o, na - 2 * MAX_SVID_TTL);
	size_t len2 = 0;
	const uint8_t *b2 = wi_ca_bundle_der(ca, &len2);
	assert_true(len1 == len2 && memcmp(b1, b2, len1) == 0);
	wi_ca_free(ca);

	/* Within 2 * max SVID TTL: a new CA, valid from then for ttl. */
	time_t later = na - 2 * MAX_SVID_TTL + 1;
	ca = open_ca(&o, later);
	b2 = wi_ca_bundle_der(ca, &len2);
	assert_false(len1 == len2 && memcmp(b1, b2, len1) == 0);
	assert_int_equal(wi_ca_not_after(ca), later + CA_TTL);
	wi_ca_free(ca);
	free(b1);
}

static void test_other_trust_domain_regenerates(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca_free(open_ca(&o, now));
	o.trust_domain = "other.test";
	wi_ca *ca = open_ca(&o, now);
	STACK_OF(X509) *b = ca_bundle(ca);
	check_only_uri_san(sk_X509_value(b, 0), "spiffe://other.test");
	free_certs(b);
	wi_x509_svid *s = NULL;
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://" TD "/a", 600, now, &s), WI_E_SPIFFE_ID);
	s = mint(ca, "spiffe://other.test/a", 600, now);
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
}

static void test_open_bad_options(void **state)
{
	fx *f = *state;
	time_t now = time(NULL);
	wi_ca *ca = NULL;
	wi_ca_options o = opts_for(f);
	o.trust_domain = "Example.org";
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_SPIFFE_ID);
	o = opts_for(f);
	o.trust_domain = "";
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_SPIFFE_ID);
	o = opts_for(f);
	o.data_dir = NULL;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_INVAL);
	o = opts_for(f);
	o.ttl = WI_CA_TTL_MIN - 1;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o = opts_for(f);
	o.ttl = WI_CA_TTL_MAX + 1;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o = opts_for(f);
	o.max_svid_ttl = 0;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o = opts_for(f);
	o.ttl = 2 * 3600 - 1;
	o.max_svid_ttl = 3600;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o = opts_for(f);
	o.upstream_cert_path = "/nonexistent.pem";
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	assert_int_equal(wi_ca_open(NULL, now, &ca), WI_E_INVAL);
	assert_null(ca);
	/* Nothing was created for a refused configuration. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/ca", f->dir);
	assert_int_not_equal(access(dir, F_OK), 0);
}

/* ==== CA: certificate profiles ================================================ */

static void test_ca_cert_profile(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	STACK_OF(X509) *b = ca_bundle(ca);
	X509 *c = sk_X509_value(b, 0);
	assert_int_equal(X509_get_version(c), X509_VERSION_3);
	/* Self-signed, O=wimsed, CN=<td> CA. */
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)), 0);
	char text[128];
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_organizationName, text,
					      sizeof(text)) > 0);
	assert_string_equal(text, "wimsed");
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, text,
					      sizeof(text)) > 0);
	assert_string_equal(text, TD " CA");
	/* Positive random serial. */
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bytes(bn) <= 16);
	BN_free(bn);
	/* Validity. */
	assert_int_equal(t_of(X509_get0_notBefore(c)), now - BACKDATE);
	assert_int_equal(t_of(X509_get0_notAfter(c)), now + CA_TTL);
	/* CA:TRUE critical; keyCertSign + cRLSign critical; SKI; URI SAN with
	 * no path. */
	check_basic_constraints(c, true);
	const int ku[] = {5, 6};
	check_key_usage(c, ku, 2);
	ski_of(c);
	check_only_uri_san(c, "spiffe://" TD);
	assert_int_equal(X509_get_ext_by_NID(c, NID_ext_key_usage, -1), -1);
	assert_int_equal(X509_get_ext_count(c), 4);
	check_sig_alg(c);
	assert_true(is_p256(X509_get0_pubkey(c)));
	/* Signed through the signer, verifiable by anyone. */
	assert_int_equal(X509_verify(c, X509_get0_pubkey(c)), 1);
	assert_int_equal(X509_check_ca(c), 1);
	assert_int_equal(X509_check_issued(c, c), X509_V_OK);
	/* DER round trip is byte-exact (signature BIT STRING well formed). */
	size_t len = 0;
	const uint8_t *der = wi_ca_bundle_der(ca, &len);
	unsigned char *re = NULL;
	int relen = i2d_X509(c, &re);
	assert_int_equal(relen, len);
	assert_memory_equal(re, der, len);
	OPENSSL_free(re);
	free_certs(b);
	wi_ca_free(ca);
}

static void test_ca_long_trust_domain(void **state)
{
	fx *f = *state;
	char td[WI_TRUST_DOMAIN_MAX + 1];
	memset(td, 'a', WI_TRUST_DOMAIN_MAX);
	td[WI_TRUST_DOMAIN_MAX] = '\0';
	wi_ca_options o = opts_for(f);
	o.trust_domain = td;
	wi_ca *ca = open_ca(&o, time(NULL));
	STACK_OF(X509) *b = ca_bundle(ca);
	char uri[300];
	snprintf(uri, sizeof(uri), "spiffe://%s", td);
	check_only_uri_san(sk_X509_value(b, 0), uri); /* the SAN is never shortened */
	free_certs(b);
	char id[320];
	snprintf(id, sizeof(id), "spiffe://%s/w", td);
	wi_x509_svid *s = mint(ca, id, 600, time(NULL));
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
}

static void test_mint_profile(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	const char *id = "spiffe://" TD "/ns/prod/sa/web";
	wi_x509_svid *s = mint(ca, id, 3600, now);
	assert_string_equal(wi_x509_svid_spiffe_id(s), id);
	assert_int_equal(wi_x509_svid_not_before(s), now - BACKDATE);
	assert_int_equal(wi_x509_svid_not_after(s), now + 3600);
	assert_int_equal(wi_x509_svid_refresh_at(s), now - BACKDATE + (3600 + BACKDATE) / 2);

	STACK_OF(X509) *chain = svid_chain(s);
	assert_int_equal(sk_X509_num(chain), 1); /* self-signed mode: leaf only */
	STACK_OF(X509) *anchors = ca_bundle(ca);
	X509 *leaf = sk_X509_value(chain, 0);
	X509 *root = sk_X509_value(anchors, 0);
	check_leaf(leaf, root, id, now, 3600, wi_ca_not_after(ca));
	check_key_matches(s, leaf);
	check_chain_verifies(chain, anchors, 0);
	/* The leaf is not a CA: nothing it signs verifies. */
	STACK_OF(X509) *fake = sk_X509_new_null();
	sk_X509_push(fake, leaf);
	assert_int_not_equal(verify_chain(chain, fake, 0, X509_PURPOSE_SSL_CLIENT), 0);
	sk_X509_free(fake);
	/* DER round trip is byte-exact. */
	size_t len = 0;
	const uint8_t *der = wi_x509_svid_chain_der(s, &len);
	unsigned char *re = NULL;
	int relen = i2d_X509(leaf, &re);
	assert_int_equal(relen, len);
	assert_memory_equal(re, der, len);
	OPENSSL_free(re);

	free_certs(anchors);
	free_certs(chain);
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
}

static void test_mint_capped_by_ca(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	time_t na = wi_ca_not_after(ca);
	time_t late = na - 100;
	wi_x509_svid *s = mint(ca, "spiffe://" TD "/late", 3600, late);
	assert_int_equal(wi_x509_svid_not_after(s), na);
	STACK_OF(X509) *chain = svid_chain(s);
	STACK_OF(X509) *anchors = ca_bundle(ca);
	check_leaf(sk_X509_value(chain, 0), sk_X509_value(anchors, 0), "spiffe://" TD "/late", late,
		   3600, na);
	check_chain_verifies(chain, anchors, late);
	free_certs(anchors);
	free_certs(chain);
	wi_x509_svid_unref(s);
	/* At or after the CA's notAfter nothing is minted. */
	s = (wi_x509_svid *)0x1;
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://" TD "/late", 3600, na, &s), WI_E_EXPIRED);
	assert_ptr_equal(s, (wi_x509_svid *)0x1);
	wi_ca_free(ca);
}

static void test_mint_rejects(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	wi_x509_svid *s = (wi_x509_svid *)0x1;
	/* Another trust domain. */
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://other.org/w", 600, now, &s),
			 WI_E_SPIFFE_ID);
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://example.org.evil/w", 600, now, &s),
			 WI_E_SPIFFE_ID);
	/* A root ID (no path). */
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://" TD, 600, now, &s), WI_E_SPIFFE_ID);
	assert_int_equal(wi_ca_mint_x509_svid(ca, "spiffe://" TD "/", 600, now, &s), WI_E_SPIFFE_ID);
	/* Malformed. */
	const char *bad[] = {
		"",
		"example.org/w",
		"https://" TD "/w",
		"SPIFFE://" TD "/w",
		"spiffe://Example.org/w",
		"spiffe://" TD "/a//b",
		"spiffe://" TD "/a/../b",
		"spiffe://" TD "/w?x=1",
		"spiffe://" TD "/w#f",
		"spiffe://" TD ":443/w",
		"spiffe://user@" TD "/w",
		"spiffe://" TD "/a%20b",
		"spiffe://" TD "/a b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = wi_ca_mint_x509_svid(ca, bad[i], 600, now, &s);
		if (r != WI_E_SPIFFE_ID)
			fail_msg("accepted or wrong error for \"%s\": %d", bad[i], r);
	}
	/* Too long. */
	size_t big = WI_SPIFFE_ID_MAX + 10;
	char *longid = malloc(big + 1);
	assert_non_null(longid);
	memcpy(longid, "spiffe://" TD "/", strlen("spiffe://" TD "/"));
	memset(longid + strlen("spiffe://" TD "/"), 'a', big - strlen("spiffe://" TD "/"));
	longid[big] = '\0';
	assert_int_equal(wi_ca_mint_x509_svid(ca, longid, 600, now, &s), WI_E_SPIFFE_ID);
	free(longid);
	/* TTL out of range. */
	const char *ok = "spiffe://" TD "/w";
	assert_int_equal(wi_ca_mint_x509_svid(ca, ok, 0, now, &s), WI_E_INVAL);
	assert_int_equal(wi_ca_mint_x509_svid(ca, ok, -1, now, &s), WI_E_INVAL);
	assert_int_equal(wi_ca_mint_x509_svid(ca, ok, WI_X509_TTL_MIN - 1, now, &s), WI_E_INVAL);
	assert_int_equal(wi_ca_mint_x509_svid(ca, ok, WI_X509_TTL_MAX + 1, now, &s), WI_E_INVAL);
	assert_int_equal(wi_ca_mint_x509_svid(ca, NULL, 600, now, &s), WI_E_INVAL);
	assert_ptr_equal(s, (wi_x509_svid *)0x1); /* never written on failure */
	/* The edges of the range are fine. */
	s = mint(ca, ok, WI_X509_TTL_MIN, now);
	wi_x509_svid_unref(s);
	s = mint(ca, ok, WI_X509_TTL_MAX, now);
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
}

static void test_mint_unique(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	const char *id = "spiffe://" TD "/same";
	wi_x509_svid *a = mint(ca, id, 600, now);
	wi_x509_svid *b = mint(ca, id, 600, now);
	STACK_OF(X509) *ca_ = svid_chain(a);
	STACK_OF(X509) *cb = svid_chain(b);
	X509 *la = sk_X509_value(ca_, 0);
	X509 *lb = sk_X509_value(cb, 0);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(la), X509_get0_serialNumber(lb)),
			     0);
	assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(la), X509_get0_pubkey(lb)), 1);
	size_t ka = 0, kb = 0;
	const uint8_t *da = wi_x509_svid_key_der(a, &ka);
	const uint8_t *db = wi_x509_svid_key_der(b, &kb);
	assert_false(ka == kb && memcmp(da, db, ka) == 0);
	free_certs(ca_);
	free_certs(cb);
	wi_x509_svid_unref(a);
	wi_x509_svid_unref(b);
	wi_ca_free(ca);
}

/* ==== CA: concurrency ========================================================= */

#define THREADS 4
#define PER_THREAD 25

typedef struct worker {
	wi_ca *ca;
	EVP_PKEY *ca_pub;
	time_t now;
	int index;
	int failures;
	char serials[PER_THREAD][80];
} worker;

static void *mint_many(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char id[128];
		snprintf(id, sizeof(id), "spiffe://" TD "/t%d/n%d", w->index, i);
		wi_x509_svid *s = NULL;
		if (wi_ca_mint_x509_svid(w->ca, id, 600, w->now, &s) != 0) {
			w->failures++;
			continue;
		}
		size_t len = 0;
		const unsigned char *p = wi_x509_svid_chain_der(s, &len);
		X509 *leaf = d2i_X509(NULL, &p, (long)len);
		size_t klen = 0;
		const unsigned char *kp = wi_x509_svid_key_der(s, &klen);
		EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &kp, (long)klen);
		if (!leaf || !k || X509_verify(leaf, w->ca_pub) != 1 ||
		    EVP_PKEY_eq(k, X509_get0_pubkey(leaf)) != 1) {
			w->failures++;
		} else {
			BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
			char *hex = BN_bn2hex(bn);
			snprintf(w->serials[i], sizeof(w->serials[i]), "%s", hex);
			OPENSSL_free(hex);
			BN_free(bn);
		}
		EVP_PKEY_free(k);
		X509_free(leaf);
		wi_x509_svid_unref(s);
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_mint_concurrent(void **state)
{
	fx *f = *state;
	wi_ca_options o = opts_for(f);
	time_t now = time(NULL);
	wi_ca *ca = open_ca(&o, now);
	STACK_OF(X509) *b = ca_bundle(ca);
	EVP_PKEY *ca_pub = X509_get0_pubkey(sk_X509_value(b, 0));

	worker *w = calloc(THREADS, sizeof(*w));
	assert_non_null(w);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){.ca = ca, .ca_pub = ca_pub, .now = now, .index = i};
		assert_int_equal(pthread_create(&th[i], NULL, mint_many, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);

	char(*all)[80] = calloc(THREADS * PER_THREAD, 80);
	assert_non_null(all);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		memcpy(all[i * PER_THREAD], w[i].serials, sizeof(w[i].serials));
	}
	qsort(all, THREADS * PER_THREAD, 80, cmp_str);
	for (int i = 1; i < THREADS * PER_THREAD; i++) {
		assert_true(all[i][0] != '\0');
		assert_int_not_equal(strcmp(all[i - 1], all[i]), 0);
	}
	free(all);
	free(w);
	free_certs(b);
	wi_ca_free(ca);
}

/* ==== CA: upstream-disk mode ================================================== */

static void check_intermediate(X509 *inter, X509 *up, time_t now, time_t up_na)
{
	assert_int_equal(X509_get_version(inter), X509_VERSION_3);
	check_basic_constraints(inter, true);
	const int ku[] = {5, 6};
	check_key_usage(inter, ku, 2);
	check_only_uri_san(inter, "spiffe://" TD);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(inter), X509_get_subject_name(up)), 0);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(inter);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(up)), 0);
	check_sig_alg(inter);
	assert_true(is_p256(X509_get0_pubkey(inter)));
	assert_int_equal(X509_verify(inter, X509_get0_pubkey(up)), 1);
	assert_int_equal(X509_check_ca(inter), 1);
	assert_int_equal(t_of(X509_get0_notBefore(inter)), now - BACKDATE);
	time_t want = now + CA_TTL < up_na ? now + CA_TTL : up_na;
	assert_int_equal(t_of(X509_get0_notAfter(inter)), want);
}

static void test_upstream_mode(void **state)
{
	fx *f = *state;
	time_t now = time(NULL);
	upstream_files u;
	time_t up_na = now + 2 * CA_TTL;
	make_upstream(f, now, up_na, &u);
	wi_ca_options o = opts_for(f);
	o.upstream_cert_path = u.cert;
	o.upstream_key_path = u.key;
	wi_ca *ca = open_ca(&o, now);

	/* Bundle = the upstream certificate. */
	STACK_OF(X509) *anchors = ca_bundle(ca);
	assert_int_equal(sk_X509_num(anchors), 1);
	assert_int_equal(X509_cmp(sk_X509_value(anchors, 0), u.root), 0);

	/* Chain = leaf + intermediate, verifying up to the upstream root. */
	const char *id = "spiffe://" TD "/up/w";
	wi_x509_svid *s = mint(ca, id, 3600, now);
	STACK_OF(X509) *chain = svid_chain(s);
	assert_int_equal(sk_X509_num(chain), 2);
	X509 *leaf = sk_X509_value(chain, 0);
	X509 *inter = sk_X509_value(chain, 1);
	check_intermediate(inter, u.root, now, up_na);
	check_leaf(leaf, inter, id, now, 3600, wi_ca_not_after(ca));
	check_key_matches(s, leaf);
	check_chain_verifies(chain, anchors, 0);
	/* The intermediate is what is persisted. */
	X509 *disk = read_cert_file(f->crt_path);
	assert_int_equal(X509_cmp(disk, inter), 0);
	X509_free(disk);
	/* Without the intermediate the leaf does not verify. */
	STACK_OF(X509) *leaf_only = sk_X509_new_null();
	sk_X509_push(leaf_only, leaf);
	assert_int_not_equal(verify_chain(leaf_only, anchors, 0, X509_PURPOSE_SSL_CLIENT), 0);
	sk_X509_free(leaf_only);

	/* Restart: the same intermediate. */
	wi_ca_free(ca);
	ca = open_ca(&o, now + 60);
	wi_x509_svid *s2 = mint(ca, id, 3600, now + 60);
	STACK_OF(X509) *chain2 = svid_chain(s2);
	assert_int_equal(X509_cmp(sk_X509_value(chain2, 1), inter), 0);
	free_certs(chain2);
	wi_x509_svid_unref(s2);
	wi_ca_free(ca);

	/* Upstream rotated: a new intermediate under the new root. */
	upstream_files u2;
	make_upstream(f, now, up_na, &u2);
	ca = open_ca(&o, now);
	STACK_OF(X509) *anchors2 = ca_bundle(ca);
	assert_int_equal(X509_cmp(sk_X509_value(anchors2, 0), u2.root), 0);
	s2 = mint(ca, id, 3600, now);
	chain2 = svid_chain(s2);
	assert_int_not_equal(X509_cmp(sk_X509_value(chain2, 1), inter), 0);
	check_intermediate(sk_X509_value(chain2, 1), u2.root, now, up_na);
	check_chain_verifies(chain2, anchors2, 0);
	assert_int_not_equal(verify_chain(chain2, anchors, 0, X509_PURPOSE_SSL_CLIENT), 0);
	free_certs(chain2);
	free_certs(anchors2);
	wi_x509_svid_unref(s2);
	wi_ca_free(ca);

	free_certs(chain);
	free_certs(anchors);
	wi_x509_svid_unref(s);
	upstream_free(&u);
	upstream_free(&u2);
}

/* Upstream mode with rotation: the intermediate rotates on schedule while the
 * bundle (the upstream root) never changes, so bundle streams are not pushed;
 * SVIDs of the outgoing and of the incoming intermediate both verify. */
static void test_upstream_rotation(void **state)
{
	fx *f = *state;
	time_t now = time(NULL);
	upstream_files u;
	make_upstream(f, now, now + 2 * CA_TTL, &u);
	wi_ca_options o = opts_for(f);
	o.upstream_cert_path = u.cert;
	o.upstream_key_path = u.key;
	o.rotate_every = 86400;
	wi_ca *ca = open_ca(&o, now);
	wi_ca_snapshot *v = wi_ca_snapshot_get(ca);
	uint64_t gen = wi_ca_snapshot_generation(v);
	wi_ca_snapshot_unref(v);
	const char *id = "spiffe://" TD "/up/rot";
	wi_x509_svid *before = mint(ca, id, MAX_SVID_TTL, now);
	STACK_OF(X509) *c1 = svid_chain(before);

	bool changed = false;
	time_t prep = now + 86400 - MAX_SVID_TTL;
	assert_int_equal(wi_ca_tick(ca, prep, &changed), 0);
	assert_true(changed);
	v = wi_ca_snapshot_get(ca);
	assert_int_equal(wi_ca_snapshot_generation(v), gen); /* bundle untouched */
	assert_int_equal(wi_ca_snapshot_next_activation(v), now + 86400);
	wi_ca_snapshot_unref(v);
	assert_int_equal(wi_ca_tick(ca, now + 86400, &changed), 0);
	assert_true(changed);
	wi_x509_svid *after = mint(ca, id, MAX_SVID_TTL, now + 86400);
	STACK_OF(X509) *c2 = svid_chain(after);
	assert_int_not_equal(X509_cmp(sk_X509_value(c1, 1), sk_X509_value(c2, 1)), 0);
	check_intermediate(sk_X509_value(c2, 1), u.root, prep, now + 2 * CA_TTL); /* made when prepared */
	STACK_OF(X509) *anchors = ca_bundle(ca);
	assert_int_equal(sk_X509_num(anchors), 1);
	assert_int_equal(X509_cmp(sk_X509_value(anchors, 0), u.root), 0);
	check_chain_verifies(c1, anchors, now + 10);
	check_chain_verifies(c2, anchors, now + 86400 + 10);
	/* Retired after the last SVID of the old intermediate expired; the
	 * bundle is still the same. */
	assert_int_equal(wi_ca_tick(ca, now + 86400 + MAX_SVID_TTL, &changed), 0);
	assert_true(changed);
	v = wi_ca_snapshot_get(ca);
	assert_int_equal(wi_ca_snapshot_generation(v), gen);
	wi_ca_snapshot_unref(v);
	free_certs(anchors);
	free_certs(c1);
	free_certs(c2);
	wi_x509_svid_unref(before);
	wi_x509_svid_unref(after);
	wi_ca_free(ca);
	upstream_free(&u);
}

static void test_upstream_chain_file_and_cap(void **state)
{
	fx *f = *state;
	time_t now = time(NULL);
	/* Upstream file = [upstream intermediate, upstream root]; the
	 * upstream intermediate expires in 10 days, before our CA ttl. */
	EVP_PKEY *rk = gen_p256();
	X509 *root = make_cert(rk, "Root", NULL, NULL, now - 3600, now + 3 * CA_TTL, true);
	EVP_PKEY *ik = gen_p256();
	time_t up_na = now + 10 * 86400;
	X509 *uint_ = make_cert(ik, "Upstream Int", root, rk, now - 3600, up_na, true);
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/up.crt.pem", f->dir);
	snprintf(key, sizeof(key), "%s/up.key.pem", f->dir);
	X509 *pair[2] = {uint_, root};
	write_certs_pem(cert, pair, 2);
	assert_int_equal(wi_key_save_pem(ik, key), 0);

	wi_ca_options o = opts_for(f);
	o.upstream_cert_path = cert;
	o.upstream_key_path = key;
	wi_ca *ca = open_ca(&o, now);
	assert_int_equal(wi_ca_not_after(ca), up_na); /* capped by upstream */
	STACK_OF(X509) *anchors = ca_bundle(ca);
	assert_int_equal(sk_X509_num(anchors), 2);
	assert_int_equal(X509_cmp(sk_X509_value(anchors, 0), uint_), 0);
	assert_int_equal(X509_cmp(sk_X509_value(anchors, 1), root), 0);
	wi_x509_svid *s = mint(ca, "spiffe://" TD "/deep", 3600, now);
	STACK_OF(X509) *chain = svid_chain(s);
	assert_int_equal(sk_X509_num(chain), 2);
	check_intermediate(sk_X509_value(chain, 1), uint_, now, up_na);
	check_chain_verifies(chain, anchors, 0);
	/* Only the real root as anchor, the upstream intermediate supplied as
	 * untrusted: still a valid path. */
	STACK_OF(X509) *roots = sk_X509_new_null();
	sk_X509_push(roots, root);
	sk_X509_push(chain, uint_);
	assert_int_equal(verify_chain(chain, roots, 0, X509_PURPOSE_SSL_SERVER), 0);
	(void)sk_X509_pop(chain);
	sk_X509_free(roots);
	wi_ca_free(ca);

	/* Reopening near the upstream's expiry does not churn: a new
	 * intermediate could not live longer. */
	size_t l1 = 0;
	const uint8_t *inter1 = NULL;
	{
		size_t len = 0;
		const uint8_t *der = wi_x509_svid_chain_der(s, &len);
		const unsigned char *p = der;
		X509 *leaf = d2i_X509(NULL, &p, (long)len);
		X509_free(leaf);
		inter1 = p;
		l1 = (size_t)(der + len - p);
	}
	ca = open_ca(&o, up_na - 600);
	wi_x509_svid *s2 = mint(ca, "spiffe://" TD "/deep", 60, up_na - 600);
	size_t len2 = 0;
	const uint8_t *der2 = wi_x509_svid_chain_der(s2, &len2);
	assert_true(len2 > l1);
	assert_memory_equal(der2 + len2 - l1, inter1, l1);
	wi_x509_svid_unref(s2);
	wi_ca_free(ca);

	free_certs(chain);
	free_certs(anchors);
	wi_x509_svid_unref(s);
	X509_free(root);
	X509_free(uint_);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
}

static void test_upstream_rejects(void **state)
{
	fx *f = *state;
	time_t now = time(NULL);
	upstream_files u;
	make_upstream(f, now, now + 2 * CA_TTL, &u);
	wi_ca_options o = opts_for(f);
	o.upstream_cert_path = u.cert;
	o.upstream_key_path = u.key;
	wi_ca *ca = NULL;

	/* Key of another CA. */
	EVP_PKEY *other = gen_p256();
	char other_key[PATH_MAX];
	snprintf(other_key, sizeof(other_key), "%s/other.key.pem", f->dir);
	assert_int_equal(wi_key_save_pem(other, other_key), 0);
	o.upstream_key_path = other_key;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o.upstream_key_path = u.key;

	/* Only one of the two paths. */
	o.upstream_key_path = NULL;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	o.upstream_key_path = u.key;

	/* Missing files. */
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/absent.pem", f->dir);
	o.upstream_cert_path = missing;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_NOT_FOUND);
	o.upstream_cert_path = u.cert;

	/* Not a CA. */
	X509 *leafish = make_cert(other, "Not a CA", NULL, NULL, now - 60, now + CA_TTL, false);
	char leaf_path[PATH_MAX];
	snprintf(leaf_path, sizeof(leaf_path), "%s/leaf.crt.pem", f->dir);
	write_certs_pem(leaf_path, &leafish, 1);
	o.upstream_cert_path = leaf_path;
	o.upstream_key_path = other_key;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);

	/* Expired. */
	o.upstream_cert_path = u.cert;
	o.upstream_key_path = u.key;
	assert_int_equal(wi_ca_open(&o, now + 3 * CA_TTL, &ca), WI_E_EXPIRED);

	/* Not P-256: the signer cannot use it. */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	X509 *c384 = make_cert(p384, "P-384 root", NULL, NULL, now - 60, now + 2 * CA_TTL, true);
	char c384_path[PATH_MAX], k384_path[PATH_MAX];
	snprintf(c384_path, sizeof(c384_path), "%s/p384.crt.pem", f->dir);
	snprintf(k384_path, sizeof(k384_path), "%s/p384.key.pem", f->dir);
	write_certs_pem(c384_path, &c384, 1);
	assert_int_equal(wi_key_save_pem(p384, k384_path), 0);
	o.upstream_cert_path = c384_path;
	o.upstream_key_path = k384_path;
	assert_int_equal(wi_ca_open(&o, now, &ca), WI_E_CONFIG);
	assert_null(ca);

	/* A self-signed CA left in the data dir is replaced when switching to
	 * upstream mode. */
	wi_ca_options self = opts_for(f);
	wi_ca_free(open_ca(&self, now));
	o.upstream_cert_path = u.cert;
	o.upstream_key_path = u.key;
	ca = open_ca(&o, now);
	X509 *disk = read_cert_file(f->crt_path);
	assert_int_equal(X509_verify(disk, X509_get0_pubkey(u.root)), 1);
	X509_free(disk);
	wi_ca_free(ca);
	/* ... and back. */
	ca = open_ca(&self, now);
	disk = read_cert_file(f->crt_path);
	assert_int_equal(X509_check_issued(disk, disk), X509_V_OK);
	X509_free(disk);
	wi_ca_free(ca);

	X509_free(c384);
	EVP_PKEY_free(p384);
	X509_free(leafish);
	EVP_PKEY_free(other);
	upstream_free(&u);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signer_sign_verify),
		cmocka_unit_test(test_signer_rejects_other_keys),
		T(test_keys_pkcs8_and_pem),
		cmocka_unit_test(test_svid_refcount),
		T(test_open_fresh),
		T(test_open_persists),
		T(test_mismatched_key_regenerates),
		T(test_missing_file_regenerates),
		T(test_corrupt_files_fail_clearly),
		T(test_open_key_too_open),
		T(test_expiring_regenerates),
		T(test_other_trust_domain_regenerates),
		T(test_open_bad_options),
		T(test_ca_cert_profile),
		T(test_ca_long_trust_domain),
		T(test_mint_profile),
		T(test_mint_capped_by_ca),
		T(test_mint_rejects),
		T(test_mint_unique),
		T(test_mint_concurrent),
		T(test_upstream_mode),
		T(test_upstream_rotation),
		T(test_upstream_chain_file_and_cap),
		T(test_upstream_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
