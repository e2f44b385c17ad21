/* core/ca.c — the trust domain's X.509 CA and X.509-SVID minting.
 *
 * The CA key is only ever used through wi_signer_sign (STYLE §11): a
 * certificate is signed by encoding its TBSCertificate, hashing it, asking the
 * signer for a DER ECDSA signature and installing that signature, rather than
 * handing the key to X509_sign.
 *
 * Files on disk (self-signed and upstream mode alike):
 *   <data_dir>/ca/ca.key.pem  PKCS#8 PEM, 0600
 *   <data_dir>/ca/ca.crt.pem  our CA certificate (root or intermediate), 0644
 * Both are written atomically, the key first.  On open:
 *   - either file absent                     -> generate a new CA;
 *   - a file present but unparseable         -> fail (WI_E_PARSE), files
 *     untouched: a damaged key is the operator's to inspect, and silently
 *     replacing a trust anchor is worse than refusing to start;
 *   - a key file group/others may access     -> fail (WI_E_CONFIG);
 *   - both parse but are unsuitable (key does not match the cert, not P-256,
 *     another trust domain, not a CA, not issued by the current issuer,
 *     expiring within 2 * max_svid_ttl)     -> generate a new CA.  A crash
 *     between the two writes leaves exactly such a mismatch.
 *
 * Thread-safety: after open every field is read-only.  Minting copies the
 * issuer name from a decoded (never modified, so never re-encoded) X509_NAME,
 * duplicates the SKI, and signs with a per-call EVP_PKEY_CTX. */
#include "core/ca.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/digest.h"
#include "core/fsutil.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/rotation.h"
#include "core/signer.h"
#include "core/spiffe_id.h"

#define CA_DIR "ca"
#define CA_CERT_FILE "ca.crt.pem"
#define CA_KEY_FILE "ca.key.pem"
#define CA_CERT_MODE 0644
#define SUBJECT_O "wimsed"
/* RFC 5280 Appendix A: ub-common-name is 64 characters. */
#define CN_MAX 64
/* X509-SVID §4/§5 via SPIRE: 128 random bits of serial. */
#define SERIAL_BYTES 16
/* Key usage bit numbers (RFC 5280 §4.2.1.3). */
#define KU_BIT_DIGITAL_SIGNATURE 0
#define KU_BIT_KEY_CERT_SIGN 5
#define KU_BIT_CRL_SIGN 6

/* An immutable view for minting and for the bundle: swapped whole when the
 * CA rotates, referenced by whoever reads it. */
struct wi_ca_snapshot {
	atomic_int refs;
	uint64_t generation;     /* of the bundle's content */
	wi_signer *signer;       /* the active CA key (root or intermediate) */
	X509_NAME *subject;      /* issuer name of every leaf */
	ASN1_OCTET_STRING *ski;  /* its SKI: every leaf's AKI */
	uint8_t *intermediate;   /* upstream mode: its cert, appended to chains */
	size_t intermediate_len;
	uint8_t *bundle;         /* concatenated DER of the trust anchors */
	size_t bundle_len;
	time_t not_after;        /* of the active CA */
	uint64_t active_seq;
	time_t next_activation;  /* of a published successor; 0 when none */
};

/* One CA of the rotating set (core/rotation.h). */
typedef struct ca_slot {
	uint64_t seq;
	X509 *cert;
	EVP_PKEY *key;
} ca_slot;

/* The upstream CA of upstream-disk mode: its certificate(s) and a signer. */
typedef struct upstream {
	STACK_OF(X509) *certs; /* [0] signs our intermediate; all go to the bundle */
	wi_signer *signer;
	time_t not_after;
} upstream;

struct wi_ca {
	char *td;                /* "example.org" */
	char dir[PATH_MAX];      /* <data_dir>/ca */
	int64_t ttl, max_svid_ttl;
	upstream up;             /* upstream mode; certs NULL otherwise */
	wi_rotation *rot;
	ca_slot slots[WI_ROTATION_SLOTS_MAX];
	size_t n;
	uint64_t generation;
	atomic_uint_fast64_t events;
	pthread_mutex_t lock;    /* guards `cur` swaps */
	wi_ca_snapshot *cur;
};

static void ca_freep(wi_ca **p)
{
	wi_ca_free(*p);
}

static void signer_freep(wi_signer **p)
{
	wi_signer_free(*p);
}

static void spiffe_id_freep(wi_spiffe_id **p)
{
	wi_spiffe_id_free(*p);
}

static void x509_stack_freep(STACK_OF(X509) **p)
{
	sk_X509_pop_free(*p, X509_free);
}

static void openssl_freep(void *p)
{
	OPENSSL_free(*(void **)p);
}

WI_DEFINE_FREEP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)
WI_DEFINE_FREEP(ASN1_BIT_STRING, ASN1_BIT_STRING_free)
WI_DEFINE_FREEP(ASN1_IA5STRING, ASN1_IA5STRING_free)
WI_DEFINE_FREEP(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free)
WI_DEFINE_FREEP(AUTHORITY_KEYID, AUTHORITY_KEYID_free)
WI_DEFINE_FREEP(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free)
WI_DEFINE_FREEP(GENERAL_NAME, GENERAL_NAME_free)

/* --- small certificate pieces --------------------------------------------- */

static int time_from_asn1(const ASN1_TIME *t, time_t *ret)
{
	struct tm tm;
	WI_CHECK_SSL(t != NULL && ASN1_TIME_to_tm(t, &tm) == 1, "certificate time");
	*ret = timegm(&tm);
	return 0;
}

/* A random positive serial with exactly 128 bits of entropy.  The 16 bytes
 * are read as an unsigned big-endian number, so a set top bit stays entropy
 * (DER then adds one 0x00 sign octet: at most 17 content octets, within
 * RFC 5280 §4.1.2.2's 20) instead of being cleared to keep the value
 * positive.  Zero is not a valid serial (RFC 5280 §4.1.2.2: positive). */
static int set_random_serial(X509 *x)
{
	uint8_t raw[SERIAL_BYTES];
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	do {
		WI_CHECK_SSL(RAND_bytes(raw, sizeof(raw)) == 1, "random serial");
		BN_free(bn);
		bn = BN_bin2bn(raw, sizeof(raw), NULL);
		WI_CHECK_SSL(bn != NULL, "serial");
	} while (BN_is_zero(bn));
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
	WI_CHECK_SSL(serial != NULL, "serial");
	WI_CHECK_SSL(X509_set_serialNumber(x, serial) == 1, "set serial");
	return 0;
}

static int set_validity(X509 *x, time_t not_before, time_t not_after)
{
	/* ASN1_TIME_set picks UTCTime before 2050, GeneralizedTime after
	 * (RFC 5280 §4.1.2.5). */
	WI_CHECK_SSL(ASN1_TIME_set(X509_getm_notBefore(x), not_before) != NULL, "notBefore");
	WI_CHECK_SSL(ASN1_TIME_set(X509_getm_notAfter(x), not_after) != NULL, "notAfter");
	return 0;
}

/* O=wimsed[, CN=<cn>] */
static int make_name(const char *cn, X509_NAME **ret)
{
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();
	WI_CHECK_ALLOC(name);
	WI_CHECK_SSL(X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
						(const unsigned char *)SUBJECT_O, -1, -1, 0) == 1,
		     "subject O");
	if (cn)
		WI_CHECK_SSL(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
							(const unsigned char *)cn, -1, -1, 0) == 1,
			     "subject CN");
	*ret = TAKE_PTR(name);
	return 0;
}

static int add_ext(X509 *x, int nid, void *value, bool critical)
{
	WI_CHECK_SSL(X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) == 1,
		     OBJ_nid2sn(nid));
	return 0;
}

static int add_basic_constraints(X509 *x, bool is_ca)
{
	_cleanup_(BASIC_CONSTRAINTS_freep) BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	WI_CHECK_ALLOC(bc);
	/* X509-SVID §4.1: signing certs cA=TRUE, leaves cA=FALSE; present and
	 * critical in both (py-spiffe requires the extension on leaves; for
	 * CA:FALSE DER omits the DEFAULT FALSE field: an empty SEQUENCE). */
	/* DER (X.690 §11.1): BOOLEAN TRUE is encoded 0xFF, and OpenSSL writes the
	 * int as given; strict parsers (Go, Rust) reject 0x01. */
	bc->ca = is_ca ? 0xFF : 0;
	return add_ext(x, NID_basic_constraints, bc, true);
}

static int add_key_usage(X509 *x, bool is_ca)
{
	_cleanup_(ASN1_BIT_STRING_freep) ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	WI_CHECK_ALLOC(ku);
	if (is_ca) {
		/* X509-SVID §4.3: signing certs MUST set keyCertSign, MAY cRLSign. */
		WI_CHECK_SSL(ASN1_BIT_STRING_set_bit(ku, KU_BIT_KEY_CERT_SIGN, 1) == 1 &&
				     ASN1_BIT_STRING_set_bit(ku, KU_BIT_CRL_SIGN, 1) == 1,
			     "keyUsage");
	} else {
		/* X509-SVID §4.3: leaves MUST set digitalSignature and MUST NOT
		 * set keyCertSign/cRLSign; DESIGN §3: digitalSignature only. */
		WI_CHECK_SSL(ASN1_BIT_STRING_set_bit(ku, KU_BIT_DIGITAL_SIGNATURE, 1) == 1, "keyUsage");
	}
	/* X509-SVID §4.3: keyUsage MUST be critical. */
	return add_ext(x, NID_key_usage, ku, true);
}

static int add_ext_key_usage(X509 *x)
{
	_cleanup_(EXTENDED_KEY_USAGE_freep) EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	WI_CHECK_ALLOC(eku);
	/* X509-SVID §4.4: when EKU is present it MUST hold both serverAuth and
	 * clientAuth.  The objects are OpenSSL's static ones (free is a no-op). */
	WI_CHECK_ALLOC(sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) > 0);
	WI_CHECK_ALLOC(sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)) > 0);
	return add_ext(x, NID_ext_key_usage, eku, false);
}

/* RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING.
 * The public key must already be set. */
static int add_ski(X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	WI_CHECK_SSL(X509_pubkey_digest(x, EVP_sha1(), md, &md_len) == 1, "SKI digest");
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *ski = ASN1_OCTET_STRING_new();
	WI_CHECK_ALLOC(ski);
	WI_CHECK_SSL(ASN1_OCTET_STRING_set(ski, md, (int)md_len) == 1, "SKI");
	return add_ext(x, NID_subject_key_identifier, ski, false);
}

/* RFC 5280 §4.2.1.1: AKI keyIdentifier = the issuer's SKI. */
static int add_aki(X509 *x, const ASN1_OCTET_STRING *issuer_ski)
{
	_cleanup_(AUTHORITY_KEYID_freep) AUTHORITY_KEYID *aki = AUTHORITY_KEYID_new();
	WI_CHECK_ALLOC(aki);
	aki->keyid = ASN1_OCTET_STRING_dup(issuer_ski);
	WI_CHECK_ALLOC(aki->keyid);
	return add_ext(x, NID_authority_key_identifier, aki, false);
}

/* Exactly one SAN, a URI (X509-SVID §2: exactly one URI SAN). */
static int add_uri_san(X509 *x, const char *uri)
{
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	WI_CHECK_ALLOC(gens);
	_cleanup_(GENERAL_NAME_freep) GENERAL_NAME *gen = GENERAL_NAME_new();
	WI_CHECK_ALLOC(gen);
	_cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	WI_CHECK_ALLOC(ia5);
	WI_CHECK_SSL(ASN1_STRING_set(ia5, uri, (int)strlen(uri)) == 1, "SAN URI");
	GENERAL_NAME_set0_value(gen, GEN_URI, TAKE_PTR(ia5));
	WI_CHECK_ALLOC(sk_GENERAL_NAME_push(gens, gen) > 0);
	gen = NULL; /* owned by gens now */
	/* Subject is non-empty (O=wimsed), so the SAN need not be critical
	 * (RFC 5280 §4.2.1.6). */
	return add_ext(x, NID_subject_alt_name, gens, false);
}

/* Signs x through the signer (STYLE §11) instead of X509_sign, so the CA key
 * is never handed to OpenSSL's certificate code:
 *   1. AlgorithmIdentifier ecdsa-with-SHA256, parameters absent (RFC 5758
 *      §3.2), in both the TBSCertificate and the outer Certificate
 *      (RFC 5280 §4.1.1.2: the two MUST match);
 *   2. DER of the TBSCertificate (i2d_re_X509_tbs drops any cached encoding);
 *   3. SHA-256 of it, signed by the signer: a DER ECDSA-Sig-Value
 *      (RFC 3279 §2.2.3), which is the BIT STRING's content. */
static int sign_cert(X509 *x, wi_signer *signer)
{
	WI_CHECK(wi_signer_alg(signer) == WI_SIG_ECDSA_P256_SHA256, WI_E_INVAL,
		 "CA key algorithm not supported for certificates");
	/* OpenSSL exposes the two AlgorithmIdentifiers and the signature only
	 * through const getters; they point into x, which we own and are
	 * building, so writing through them is sound (ASN1_item_sign writes the
	 * same fields). */
	X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
	const ASN1_BIT_STRING *csig = NULL;
	const X509_ALGOR *calg = NULL;
	X509_get0_signature(&csig, &calg, x);
	ASN1_BIT_STRING *sig = (ASN1_BIT_STRING *)csig;
	X509_ALGOR *outer_alg = (X509_ALGOR *)calg;
	WI_CHECK(tbs_alg != NULL && sig != NULL && outer_alg != NULL, WI_E_INTERNAL,
		 "certificate has no signature fields");
	WI_CHECK_SSL(X509_ALGOR_set0(tbs_alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF,
				     NULL) == 1,
		     "TBS signature algorithm");
	WI_CHECK_SSL(X509_ALGOR_set0(outer_alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF,
				     NULL) == 1,
		     "signature algorithm");

	_cleanup_(openssl_freep) unsigned char *tbs = NULL;
	int tbs_len = i2d_re_X509_tbs(x, &tbs);
	WI_CHECK_SSL(tbs_len > 0 && tbs != NULL, "encode TBSCertificate");
	uint8_t md[WI_SHA256_LEN];
	WI_TRY(wi_digest_sha256(tbs, (size_t)tbs_len, md));

	_cleanup_(freep) uint8_t *der_sig = NULL;
	size_t der_sig_len = 0;
	WI_TRY(wi_signer_sign(signer, WI_SIG_ECDSA_P256_SHA256, md, sizeof(md), &der_sig, &der_sig_len));
	WI_CHECK_SSL(ASN1_BIT_STRING_set(sig, der_sig, (int)der_sig_len) == 1, "install signature");
	/* As ASN1_item_sign does: a whole number of octets, "0 unused bits". */
	sig->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	return 0;
}

static int cert_der(X509 *x, uint8_t **ret, size_t *ret_len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	WI_CHECK_SSL(n > 0 && der != NULL, "encode certificate");
	uint8_t *copy = malloc((size_t)n);
	if (copy)
		memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	WI_CHECK_ALLOC(copy);
	*ret = copy;
	*ret_len = (size_t)n;
	return 0;
}

/* --- the CA certificate ---------------------------------------------------- */

/* Builds our CA certificate for `pub`, issued by `issuer` (NULL: self-signed)
 * and signed by `issuer_signer`. */
static int build_ca_cert(const char *td, EVP_PKEY *pub, X509 *issuer, wi_signer *issuer_signer,
			 time_t now, time_t not_after, X509 **ret)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	WI_CHECK_ALLOC(x);
	WI_CHECK_SSL(X509_set_version(x, X509_VERSION_3) == 1, "version");
	WI_TRY(set_random_serial(x));

	/* CN "<td> CA", the trust domain shortened to fit ub-common-name; the
	 * identity itself is the URI SAN, which is never shortened. */
	char cn[CN_MAX + 1];
	int td_room = CN_MAX - 3;
	snprintf(cn, sizeof(cn), "%.*s CA", td_room, td);
	_cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
	WI_TRY(make_name(cn, &subject));
	WI_CHECK_SSL(X509_set_subject_name(x, subject) == 1, "subject");
	WI_CHECK_SSL(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) == 1,
		     "issuer");
	WI_TRY(set_validity(x, now - WI_CERT_BACKDATE_SECONDS, not_after));
	WI_CHECK_SSL(X509_set_pubkey(x, pub) == 1, "public key");

	WI_TRY(add_basic_constraints(x, true));
	WI_TRY(add_key_usage(x, true));
	WI_TRY(add_ski(x));
	if (issuer) {
		const ASN1_OCTET_STRING *issuer_ski = X509_get0_subject_key_id(issuer);
		if (issuer_ski)
			WI_TRY(add_aki(x, issuer_ski));
	}
	/* X509-SVID §4.1 / SPIFFE-ID: a signing certificate's SPIFFE ID is the
	 * trust domain with no path. */
	char uri[sizeof("spiffe://") + WI_TRUST_DOMAIN_MAX];
	WI_CHECK(snprintf(uri, sizeof(uri), "spiffe://%s", td) < (int)sizeof(uri), WI_E_TOO_BIG,
		 "trust domain too long");
	WI_TRY(add_uri_san(x, uri));
	WI_TRY(sign_cert(x, issuer_signer));
	*ret = TAKE_PTR(x);
	return 0;
}

/* Reads every PEM certificate of a file, in order.  WI_E_NOT_FOUND when the
 * file is absent, WI_E_PARSE when it holds no certificate or garbage. */
static int load_certs(const char *path, STACK_OF(X509) **ret)
{
	_cleanup_(freep) uint8_t *data = NULL;
	size_t len = 0;
	WI_TRY(wi_fs_read_file(path, WI_PEM_FILE_MAX, &data, &len));
	ERR_clear_error(); /* the end-of-input check below reads the queue */
	_cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(data, (int)len);
	WI_CHECK_SSL(bio != NULL, "BIO");
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = sk_X509_new_null();
	WI_CHECK_ALLOC(certs);
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (sk_X509_push(certs, x) <= 0) {
			X509_free(x);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
	}
	/* Stopping at the end of the input is "no start line"; anything else
	 * is a damaged certificate. */
	unsigned long e = ERR_peek_last_error();
	if (sk_X509_num(certs) > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		ERR_clear_error();
	else if (sk_X509_num(certs) == 0 || e != 0)
		return wi__error_set_ssl(WI_E_PARSE, __FILE__, __LINE__, path);
	*ret = TAKE_PTR(certs);
	return 0;
}

static bool is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;
	return EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					      &glen) == 1 &&
	       strcmp(group, "prime256v1") == 0;
}

/* True when the certificate's only URI SAN is exactly `uri`. */
static bool has_only_uri(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (!gens)
		return false;
	int uris = 0;
	bool match = false;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_URI)
			continue;
		uris++;
		const ASN1_IA5STRING *s = g->d.uniformResourceIdentifier;
		match = (size_t)ASN1_STRING_length(s) == strlen(uri) &&
			memcmp(ASN1_STRING_get0_data(s), uri, strlen(uri)) == 0;
	}
	GENERAL_NAMES_free(gens);
	return uris == 1 && match;
}

/* Why a parsed CA cert + key on disk cannot be reused, or NULL.  (Expiry is
 * judged apart: an expiring CA is succeeded, not overwritten.) */
static const char *unsuitable(X509 *cert, EVP_PKEY *key, const char *td, X509 *issuer)
{
	if (!is_p256(key))
		return "the CA key is not EC P-256";
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1)
		return "the CA key does not match the CA certificate";
	if (X509_check_ca(cert) != 1)
		return "the certificate is not a CA";
	if (!X509_get0_subject_key_id(cert))
		return "the certificate has no subject key identifier";
	char uri[sizeof("spiffe://") + WI_TRUST_DOMAIN_MAX];
	snprintf(uri, sizeof(uri), "spiffe://%s", td);
	if (!has_only_uri(cert, uri))
		return "the certificate belongs to another trust domain";
	X509 *signer_cert = issuer ? issuer : cert;
	EVP_PKEY *signer_key = issuer ? X509_get0_pubkey(issuer) : key;
	if (X509_check_issued(signer_cert, cert) != X509_V_OK || X509_verify(cert, signer_key) != 1) {
		ERR_clear_error();
		return issuer ? "the certificate was not issued by the upstream CA"
			      : "the certificate is not self-signed";
	}
	time_t not_after = 0;
	if (time_from_asn1(X509_get0_notAfter(cert), &not_after) < 0)
		return "the certificate's notAfter is unreadable";
	return NULL;
}

static int save_cert(X509 *cert, const char *cert_path)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	WI_CHECK_SSL(bio != NULL && PEM_write_bio_X509(bio, cert) == 1, "encode CA certificate");
	char *pem = NULL;
	long n = BIO_get_mem_data(bio, &pem);
	WI_CHECK_SSL(n > 0 && pem != NULL, "encode CA certificate");
	return wi_fs_write_atomic(cert_path, pem, (size_t)n, CA_CERT_MODE);
}

/* Loads the persisted pair.  The outputs stay NULL when either file is
 * absent (generate); parse failures are errors. */
static int load_ca(const char *key_path, const char *cert_path, X509 **ret_cert, EVP_PKEY **ret_key)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
	int r = load_certs(cert_path, &certs);
	if (r == WI_E_NOT_FOUND)
		return 0;
	WI_TRY(r);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	r = wi_key_load_pem(key_path, &key);
	if (r == WI_E_NOT_FOUND)
		return 0;
	WI_TRY(r);
	*ret_cert = sk_X509_shift(certs);
	*ret_key = TAKE_PTR(key);
	return 0;
}

static void upstream_done(upstream *u)
{
	sk_X509_pop_free(u->certs, X509_free);
	wi_signer_free(u->signer);
}

static int upstream_load(const wi_ca_options *o, time_t now, upstream *u)
{
	WI_TRY(load_certs(o->upstream_cert_path, &u->certs));
	X509 *up = sk_X509_value(u->certs, 0);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	WI_TRY(wi_key_load_pem(o->upstream_key_path, &key));
	WI_CHECK(EVP_PKEY_eq(X509_get0_pubkey(up), key) == 1, WI_E_CONFIG,
		 "upstream key %s does not match the first certificate of %s", o->upstream_key_path,
		 o->upstream_cert_path);
	/* X509-SVID §4.3: a signing certificate must be a CA with keyCertSign. */
	WI_CHECK(X509_check_ca(up) == 1, WI_E_CONFIG, "upstream certificate %s is not a CA",
		 o->upstream_cert_path);
	WI_CHECK(is_p256(key), WI_E_CONFIG,
		 "upstream key %s is not EC P-256 (the only algorithm the signer supports)",
		 o->upstream_key_path);
	WI_TRY(time_from_asn1(X509_get0_notAfter(up), &u->not_after));
	WI_CHECK(now < u->not_after, WI_E_EXPIRED, "upstream certificate %s has expired",
		 o->upstream_cert_path);
	WI_TRY(wi_signer_from_pkey(key, &u->signer));
	key = NULL; /* owned by the signer */
	return 0;
}

static int check_options(const wi_ca_options *o)
{
	WI_CHECK(o != NULL && o->trust_domain != NULL && o->data_dir != NULL, WI_E_INVAL,
		 "CA options: trust domain and data directory are required");
	WI_TRY(wi_trust_domain_validate(o->trust_domain,
					strnlen(o->trust_domain, WI_TRUST_DOMAIN_MAX + 1)));
	WI_CHECK(o->ttl >= WI_CA_TTL_MIN && o->ttl <= WI_CA_TTL_MAX, WI_E_CONFIG,
		 "CA ttl %lld outside [%lld, %lld] seconds", (long long)o->ttl,
		 (long long)WI_CA_TTL_MIN, (long long)WI_CA_TTL_MAX);
	WI_CHECK(o->max_svid_ttl >= WI_X509_TTL_MIN && o->max_svid_ttl <= WI_X509_TTL_MAX,
		 WI_E_CONFIG, "max SVID ttl %lld outside [%lld, %lld] seconds",
		 (long long)o->max_svid_ttl, (long long)WI_X509_TTL_MIN, (long long)WI_X509_TTL_MAX);
	/* Else a fresh CA would already count as "expiring soon". */
	WI_CHECK(o->ttl >= 2 * o->max_svid_ttl, WI_E_CONFIG,
		 "CA ttl %lld must be at least twice the max SVID ttl %lld", (long long)o->ttl,
		 (long long)o->max_svid_ttl);
	/* A CA is published `lead` = max SVID ttl before it signs, signs for
	 * rotate_every, and must outlive its last SVIDs by max SVID ttl. */
	WI_CHECK(o->rotate_every == 0 ||
			 (o->rotate_every >= WI_ROTATION_PERIOD_MIN &&
			  o->ttl >= o->rotate_every + 2 * o->max_svid_ttl),
		 WI_E_CONFIG,
		 "CA rotate_every %lld must be at least %d and at most the CA ttl %lld minus twice the max SVID ttl %lld",
		 (long long)o->rotate_every, WI_ROTATION_PERIOD_MIN, (long long)o->ttl, (long long)o->max_svid_ttl);
	WI_CHECK((o->upstream_cert_path == NULL) == (o->upstream_key_path == NULL), WI_E_CONFIG,
		 "upstream certificate and key must be given together");
	return 0;
}

/* ---- the rotating set: files and slots ------------------------------------ */

/* Slot 0 keeps the historic names ca.key.pem/ca.crt.pem; slot n is
 * ca.<n>.key.pem/ca.<n>.crt.pem. */
static int slot_paths(const wi_ca *ca, uint64_t seq, char *key_path, char *cert_path)
{
	char kn[64], cn[64];
	if (seq == 0) {
		snprintf(kn, sizeof(kn), "%s", CA_KEY_FILE);
		snprintf(cn, sizeof(cn), "%s", CA_CERT_FILE);
	} else {
		snprintf(kn, sizeof(kn), "ca.%" PRIu64 ".key.pem", seq);
		snprintf(cn, sizeof(cn), "ca.%" PRIu64 ".crt.pem", seq);
	}
	WI_TRY(wi_fs_join(key_path, PATH_MAX, ca->dir, kn));
	return wi_fs_join(cert_path, PATH_MAX, ca->dir, cn);
}

static X509 *issuer_of(const wi_ca *ca)
{
	return ca->up.certs ? sk_X509_value(ca->up.certs, 0) : NULL;
}

static ca_slot *slot_of(wi_ca *ca, uint64_t seq)
{
	for (size_t i = 0; i < ca->n; i++)
		if (ca->slots[i].seq == seq)
			return &ca->slots[i];
	return NULL;
}

static void slot_clear(ca_slot *s)
{
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
	s->cert = NULL;
	s->key = NULL;
}

static void drop_slot(wi_ca *ca, uint64_t seq)
{
	size_t j = 0;
	for (size_t i = 0; i < ca->n; i++) {
		if (ca->slots[i].seq == seq)
			slot_clear(&ca->slots[i]);
		else
			ca->slots[j++] = ca->slots[i];
	}
	ca->n = j;
}

/* A fresh key and certificate for slot `seq`, written key first (DESIGN §6:
 * 0600, atomic): a crash before the certificate leaves a mismatch, which the
 * next open regenerates (slot 0) or removes as an orphan. */
static int generate_slot(wi_ca *ca, uint64_t seq, time_t now, ca_slot *ret)
{
	char key_path[PATH_MAX], cert_path[PATH_MAX];
	WI_TRY(slot_paths(ca, seq, key_path, cert_path));
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	WI_TRY(wi_key_generate_p256(&key));
	WI_TRY(wi_key_save_pem(key, key_path));
	time_t not_after = now + (time_t)ca->ttl;
	if (ca->up.certs && ca->up.not_after < not_after)
		not_after = ca->up.not_after;
	_cleanup_(signer_freep) wi_signer *self = NULL;
	if (!ca->up.certs) {
		WI_CHECK_SSL(EVP_PKEY_up_ref(key) == 1, "key reference");
		int rc = wi_signer_from_pkey(key, &self);
		if (rc < 0) {
			EVP_PKEY_free(key);
			return rc;
		}
	}
	_cleanup_(X509_freep) X509 *cert = NULL;
	WI_TRY(build_ca_cert(ca->td, key, issuer_of(ca), ca->up.certs ? ca->up.signer : self, now, not_after,
			     &cert));
	WI_TRY(save_cert(cert, cert_path));
	*ret = (ca_slot){seq, TAKE_PTR(cert), TAKE_PTR(key)};
	return 0;
}

/* Loads slot `seq`; *ret stays empty when a file is absent or the pair is
 * unsuitable (the reason in *ret_why).  Parse errors are errors. */
static int load_slot(wi_ca *ca, uint64_t seq, ca_slot *ret, const char **ret_why)
{
	char key_path[PATH_MAX], cert_path[PATH_MAX];
	WI_TRY(slot_paths(ca, seq, key_path, cert_path));
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	WI_TRY(load_ca(key_path, cert_path, &cert, &key));
	*ret_why = cert ? unsuitable(cert, key, ca->td, issuer_of(ca)) : "a file is missing";
	if (!*ret_why)
		*ret = (ca_slot){seq, TAKE_PTR(cert), TAKE_PTR(key)};
	return 0;
}

static int add_slot(wi_ca *ca, time_t now, time_t activate)
{
	WI_CHECK(ca->n < WI_ROTATION_SLOTS_MAX, WI_E_TOO_BIG, "CA: too many CAs in the set");
	uint64_t seq = wi_rotation_next_seq(ca->rot);
	ca_slot s = {0};
	WI_TRY(generate_slot(ca, seq, now, &s));
	int rc = wi_rotation_add(ca->rot, seq, now, activate);
	if (rc < 0) {
		slot_clear(&s);
		return rc; /* the files are orphans, removed at the next open */
	}
	ca->slots[ca->n++] = s;
	atomic_fetch_add(&ca->events, 1);
	return 0;
}

static int retire_slot(wi_ca *ca, uint64_t seq)
{
	char key_path[PATH_MAX], cert_path[PATH_MAX];
	WI_TRY(slot_paths(ca, seq, key_path, cert_path));
	WI_TRY(wi_rotation_remove(ca->rot, seq));
	drop_slot(ca, seq);
	/* After the manifest: a crash here leaves orphans, removed at open. */
	WI_CHECK_ERRNO(unlink(key_path) == 0 || errno == ENOENT, "remove %s", key_path);
	WI_CHECK_ERRNO(unlink(cert_path) == 0 || errno == ENOENT, "remove %s", cert_path);
	atomic_fetch_add(&ca->events, 1);
	return 0;
}

/* Every slot of the manifest, loaded.  The active slot is regenerated in
 * place when absent or unsuitable; another unusable slot is dropped. */
static int load_slots(wi_ca *ca, time_t now)
{
	if (wi_rotation_count(ca->rot) == 0) {
		/* No manifest: adopt a CA of an earlier version (slot 0). */
		char key_path[PATH_MAX], cert_path[PATH_MAX];
		WI_TRY(slot_paths(ca, 0, key_path, cert_path));
		if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0)
			WI_TRY(wi_rotation_add(ca->rot, 0, now, now));
	}
	ssize_t active = wi_rotation_active(ca->rot, now);
	for (size_t i = 0; i < wi_rotation_count(ca->rot); i++) {
		uint64_t seq = wi_rotation_slot_at(ca->rot, i)->seq;
		ca_slot s = {0};
		const char *why = NULL;
		WI_TRY(load_slot(ca, seq, &s, &why));
		if (why && (ssize_t)i == active)
			WI_TRY(generate_slot(ca, seq, now, &s));
		if (why && (ssize_t)i != active) {
			WI_TRY(wi_rotation_remove(ca->rot, seq));
			if ((ssize_t)i < active)
				active--;
			i--;
			continue;
		}
		ca->slots[ca->n++] = s;
	}
	return 0;
}

/* ---- snapshots ------------------------------------------------------------- */

static void ca_snapshot_free(wi_ca_snapshot *v)
{
	wi_signer_free(v->signer);
	X509_NAME_free(v->subject);
	ASN1_OCTET_STRING_free(v->ski);
	free(v->intermediate);
	free(v->bundle);
	free(v);
}

wi_ca_snapshot *wi_ca_snapshot_unref(wi_ca_snapshot *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		ca_snapshot_free(v);
	return NULL;
}

static void ca_snapshot_unrefp(wi_ca_snapshot **p)
{
	wi_ca_snapshot_unref(*p);
}

/* The trust anchors: the upstream certificates, or every CA of the set,
 * newest first. */
static int build_bundle(wi_ca *ca, uint8_t **ret, size_t *ret_len)
{
	_cleanup_(wi_buf_freep) wi_buf b;
	wi_buf_init(&b, WI_PEM_FILE_MAX, false);
	if (ca->up.certs) {
		for (int i = 0; i < sk_X509_num(ca->up.certs); i++) {
			_cleanup_(freep) uint8_t *der = NULL;
			size_t der_len = 0;
			WI_TRY(cert_der(sk_X509_value(ca->up.certs, i), &der, &der_len));
			WI_TRY(wi_buf_append(&b, der, der_len));
		}
	} else {
		for (size_t i = wi_rotation_count(ca->rot); i-- > 0;) {
			ca_slot *s = slot_of(ca, wi_rotation_slot_at(ca->rot, i)->seq);
			if (!s)
				continue;
			_cleanup_(freep) uint8_t *der = NULL;
			size_t der_len = 0;
			WI_TRY(cert_der(s->cert, &der, &der_len));
			WI_TRY(wi_buf_append(&b, der, der_len));
		}
	}
	wi_buf_steal(&b, ret, ret_len);
	return 0;
}

static int build_snapshot(wi_ca *ca, time_t now, wi_ca_snapshot **ret)
{
	ssize_t a = wi_rotation_active(ca->rot, now);
	WI_CHECK(a >= 0, WI_E_INTERNAL, "CA: no CA in the set");
	const wi_rotation_slot *as = wi_rotation_slot_at(ca->rot, (size_t)a);
	ca_slot *s = slot_of(ca, as->seq);
	WI_CHECK(s != NULL, WI_E_INTERNAL, "CA: slot %" PRIu64 " not loaded", as->seq);
	_cleanup_(ca_snapshot_unrefp) wi_ca_snapshot *v = calloc(1, sizeof(*v));
	WI_CHECK_ALLOC(v);
	atomic_init(&v->refs, 1);
	v->active_seq = as->seq;
	const wi_rotation_slot *next = wi_rotation_slot_at(ca->rot, (size_t)a + 1);
	v->next_activation = next ? next->activate : 0;
	/* A decoded copy: its cached encoding is never modified, so copying it
	 * into leaves from several threads only reads it. */
	v->subject = X509_NAME_dup(X509_get_subject_name(s->cert));
	WI_CHECK_ALLOC(v->subject);
	v->ski = ASN1_OCTET_STRING_dup(X509_get0_subject_key_id(s->cert));
	WI_CHECK_ALLOC(v->ski);
	WI_TRY(time_from_asn1(X509_get0_notAfter(s->cert), &v->not_after));
	if (ca->up.certs)
		WI_TRY(cert_der(s->cert, &v->intermediate, &v->intermediate_len));
	WI_TRY(build_bundle(ca, &v->bundle, &v->bundle_len));
	WI_CHECK_SSL(EVP_PKEY_up_ref(s->key) == 1, "key reference");
	int rc = wi_signer_from_pkey(s->key, &v->signer);
	if (rc < 0) {
		EVP_PKEY_free(s->key);
		return rc;
	}
	wi_ca_snapshot *old = ca->cur;
	bool same_bundle = old && old->bundle_len == v->bundle_len &&
			   memcmp(old->bundle, v->bundle, v->bundle_len) == 0;
	v->generation = same_bundle ? old->generation : ++ca->generation;
	*ret = TAKE_PTR(v);
	return 0;
}

static int publish(wi_ca *ca, time_t now)
{
	wi_ca_snapshot *v = NULL;
	WI_TRY(build_snapshot(ca, now, &v));
	pthread_mutex_lock(&ca->lock);
	wi_ca_snapshot *old = ca->cur;
	ca->cur = v;
	pthread_mutex_unlock(&ca->lock);
	wi_ca_snapshot_unref(old);
	return 0;
}

wi_ca_snapshot *wi_ca_snapshot_get(wi_ca *ca)
{
	pthread_mutex_lock(&ca->lock);
	wi_ca_snapshot *v = ca->cur;
	atomic_fetch_add(&v->refs, 1);
	pthread_mutex_unlock(&ca->lock);
	return v;
}

const uint8_t *wi_ca_snapshot_bundle_der(const wi_ca_snapshot *v, size_t *ret_len)
{
	*ret_len = v->bundle_len;
	return v->bundle;
}

uint64_t wi_ca_snapshot_generation(const wi_ca_snapshot *v)
{
	return v->generation;
}

time_t wi_ca_snapshot_not_after(const wi_ca_snapshot *v)
{
	return v->not_after;
}

time_t wi_ca_snapshot_next_activation(const wi_ca_snapshot *v)
{
	return v->next_activation;
}

/* ---- open, tick, free ------------------------------------------------------- */

int wi_ca_open(const wi_ca_options *opts, time_t now, wi_ca **ret)
{
	WI_CHECK(ret != NULL, WI_E_INVAL, "CA: NULL argument");
	WI_TRY(check_options(opts));
	_cleanup_(ca_freep) wi_ca *ca = calloc(1, sizeof(*ca));
	WI_CHECK_ALLOC(ca);
	pthread_mutex_init(&ca->lock, NULL);
	ca->td = strdup(opts->trust_domain);
	WI_CHECK_ALLOC(ca->td);
	ca->ttl = opts->ttl;
	ca->max_svid_ttl = opts->max_svid_ttl;
	WI_TRY(wi_fs_join(ca->dir, sizeof(ca->dir), opts->data_dir, CA_DIR));
	WI_TRY(wi_fs_mkdir_private(ca->dir));
	if (opts->upstream_cert_path)
		WI_TRY(upstream_load(opts, now, &ca->up));

	wi_rotation_policy p = {.rotate_every = opts->rotate_every,
				.lead = opts->max_svid_ttl,
				.linger = opts->max_svid_ttl};
	WI_TRY(wi_rotation_open(ca->dir, "ca", &p, &ca->rot));
	WI_TRY(load_slots(ca, now));
	static const char *const ca_suffixes[] = {".key.pem", ".crt.pem", NULL};
	static const char *const ca_seq0[] = {CA_KEY_FILE, CA_CERT_FILE, NULL};
	WI_TRY(wi_rotation_remove_orphans(ca->rot, ca->dir, "ca.", ca_suffixes, ca_seq0));
	if (ca->n == 0)
		WI_TRY(add_slot(ca, now, now)); /* first start */
	/* An active CA expiring within 2 * max SVID TTL (the daemon was down
	 * through its rotation) is succeeded at once — unless a new one could
	 * not live longer (upstream expiring first).  The old one stays
	 * published until what it signed has expired. */
	ca_slot *active = slot_of(ca, wi_rotation_slot_at(ca->rot, (size_t)wi_rotation_active(ca->rot, now))->seq);
	time_t na = 0, best = now + (time_t)opts->ttl;
	if (ca->up.certs && ca->up.not_after < best)
		best = ca->up.not_after;
	WI_TRY(time_from_asn1(X509_get0_notAfter(active->cert), &na));
	if (na - now < 2 * opts->max_svid_ttl && na < best) {
		for (size_t i = wi_rotation_count(ca->rot); i-- > 0;) {
			const wi_rotation_slot *s = wi_rotation_slot_at(ca->rot, i);
			if (s->activate > now) /* a waiting successor: too late */
				WI_TRY(retire_slot(ca, s->seq));
		}
		WI_TRY(add_slot(ca, now, now));
	}
	atomic_store(&ca->events, 0); /* start-up repairs are not rotations */
	WI_TRY(wi_ca_tick(ca, now, NULL));
	*ret = TAKE_PTR(ca);
	return 0;
}

int wi_ca_tick(wi_ca *ca, time_t now, bool *ret_changed)
{
	uint64_t seq;
	int rc = 0;
	bool edited = false;
	while (rc == 0 && wi_rotation_retire_due(ca->rot, now, &seq)) {
		rc = retire_slot(ca, seq);
		edited = edited || rc == 0;
	}
	time_t activate;
	if (rc == 0 && wi_rotation_prepare_due(ca->rot, now, &activate)) {
		rc = add_slot(ca, now, activate);
		edited = edited || rc == 0;
	}
	ssize_t a = wi_rotation_active(ca->rot, now);
	bool activated = ca->cur && a >= 0 && ca->cur->active_seq != wi_rotation_slot_at(ca->rot, (size_t)a)->seq;
	if (activated)
		atomic_fetch_add(&ca->events, 1);
	bool changed = edited || activated || !ca->cur;
	if (changed) {
		int prc = publish(ca, now);
		if (rc == 0)
			rc = prc;
	}
	if (ret_changed)
		*ret_changed = changed;
	return rc;
}

uint64_t wi_ca_rotation_events(wi_ca *ca)
{
	return atomic_load(&ca->events);
}

wi_ca *wi_ca_free(wi_ca *ca)
{
	if (!ca)
		return NULL;
	free(ca->td);
	upstream_done(&ca->up);
	for (size_t i = 0; i < ca->n; i++)
		slot_clear(&ca->slots[i]);
	wi_rotation_free(ca->rot);
	wi_ca_snapshot_unref(ca->cur);
	pthread_mutex_destroy(&ca->lock);
	free(ca);
	return NULL;
}

/* --- X.509-SVIDs ------------------------------------------------------------ */

static int build_leaf(const wi_ca_snapshot *v, const char *id, EVP_PKEY *leaf_key, time_t not_before,
		      time_t not_after, X509 **ret)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	WI_CHECK_ALLOC(x);
	WI_CHECK_SSL(X509_set_version(x, X509_VERSION_3) == 1, "version");
	WI_TRY(set_random_serial(x));
	WI_CHECK_SSL(X509_set_issuer_name(x, v->subject) == 1, "issuer");
	_cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
	WI_TRY(make_name(NULL, &subject));
	WI_CHECK_SSL(X509_set_subject_name(x, subject) == 1, "subject");
	WI_TRY(set_validity(x, not_before, not_after));
	WI_CHECK_SSL(X509_set_pubkey(x, leaf_key) == 1, "public key");

	WI_TRY(add_basic_constraints(x, false));
	WI_TRY(add_key_usage(x, false));
	WI_TRY(add_ext_key_usage(x));
	WI_TRY(add_ski(x));
	WI_TRY(add_aki(x, v->ski));
	WI_TRY(add_uri_san(x, id));
	WI_TRY(sign_cert(x, v->signer));
	*ret = TAKE_PTR(x);
	return 0;
}

int wi_ca_mint_x509_svid(wi_ca *ca, const char *spiffe_id, int64_t ttl, time_t now,
			 wi_x509_svid **ret)
{
	WI_CHECK(ca != NULL && spiffe_id != NULL && ret != NULL, WI_E_INVAL, "mint: NULL argument");
	WI_CHECK(ttl >= WI_X509_TTL_MIN && ttl <= WI_X509_TTL_MAX, WI_E_INVAL,
		 "SVID ttl %lld outside [%d, %lld] seconds", (long long)ttl, WI_X509_TTL_MIN,
		 (long long)WI_X509_TTL_MAX);
	_cleanup_(spiffe_id_freep) wi_spiffe_id *id = NULL;
	WI_TRY(wi_spiffe_id_parse(spiffe_id, strnlen(spiffe_id, WI_SPIFFE_ID_MAX + 1), &id));
	/* X509-SVID §2: a leaf's SPIFFE ID MUST have a non-root path. */
	WI_CHECK(wi_spiffe_id_path(id)[0] != '\0', WI_E_SPIFFE_ID,
		 "%s has no path; a leaf SVID needs one", wi_spiffe_id_string(id));
	/* X509-SVID §4 / Bundle: our CA only vouches for its own trust domain. */
	WI_CHECK(wi_spiffe_id_is_member_of(id, ca->td), WI_E_SPIFFE_ID,
		 "%s is not in trust domain %s", wi_spiffe_id_string(id), ca->td);
	_cleanup_(ca_snapshot_unrefp) wi_ca_snapshot *v = wi_ca_snapshot_get(ca);
	WI_CHECK(now < v->not_after, WI_E_EXPIRED, "the CA certificate has expired");

	/* SPIRE credtemplate: notBefore backdated against clock skew, notAfter
	 * capped at the CA's (a leaf must not outlive its issuer). */
	time_t not_before = now - WI_CERT_BACKDATE_SECONDS;
	time_t not_after = now + (time_t)ttl;
	if (not_after > v->not_after)
		not_after = v->not_after;

	_cleanup_(EVP_PKEY_freep) EVP_PKEY *leaf_key = NULL;
	WI_TRY(wi_key_generate_p256(&leaf_key));
	_cleanup_(X509_freep) X509 *leaf = NULL;
	WI_TRY(build_leaf(v, wi_spiffe_id_string(id), leaf_key, not_before, not_after, &leaf));

	/* Workload API: the chain is DER leaf first, then intermediates. */
	_cleanup_(freep) uint8_t *leaf_der = NULL;
	size_t leaf_len = 0;
	WI_TRY(cert_der(leaf, &leaf_der, &leaf_len));
	_cleanup_(freep) uint8_t *chain = malloc(leaf_len + v->intermediate_len);
	WI_CHECK_ALLOC(chain);
	memcpy(chain, leaf_der, leaf_len);
	if (v->intermediate_len)
		memcpy(chain + leaf_len, v->intermediate, v->intermediate_len);

	uint8_t *key_der = NULL;
	size_t key_len = 0;
	WI_TRY(wi_key_to_pkcs8_der(leaf_key, &key_der, &key_len));
	wi_x509_svid *svid = NULL;
	int r = wi_x509_svid_new(wi_spiffe_id_string(id), chain, leaf_len + v->intermediate_len,
				 key_der, key_len, not_before, not_after, &svid);
	wi_secret_free(key_der, key_len); /* STYLE §10: the copy inside svid remains */
	WI_TRY(r);
	*ret = svid;
	return 0;
}

const uint8_t *wi_ca_bundle_der(const wi_ca *ca, size_t *ret_len)
{
	*ret_len = ca->cur->bundle_len;
	return ca->cur->bundle;
}

time_t wi_ca_not_after(wi_ca *ca)
{
	_cleanup_(ca_snapshot_unrefp) wi_ca_snapshot *v = wi_ca_snapshot_get(ca);
	return v->not_after;
}
