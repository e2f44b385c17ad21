/* core/signer.c — an in-memory wi_signer (STYLE §11).
 *
 * The private key never leaves this file: callers get the public half and a
 * sign-this-digest operation.  An EVP_PKEY_CTX is made per call, so one signer
 * may sign from many threads at once (OpenSSL 3 allows concurrent use of an
 * EVP_PKEY that nobody modifies). */
#include "core/signer.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/cleanup.h"
#include "core/limits.h"

struct wi_signer {
	EVP_PKEY *key; /* private; only used in wi_signer_sign */
	EVP_PKEY *pub; /* public-only copy handed out */
	wi_sig_alg alg;
};

#define SHA256_LEN 32

static int key_alg(EVP_PKEY *key, wi_sig_alg *ret_alg)
{
	/* "RSA" only: an RSA-PSS-restricted key cannot make PKCS#1 v1.5
	 * signatures. */
	if (EVP_PKEY_is_a(key, "RSA")) {
		int bits = EVP_PKEY_get_bits(key);
		/* RFC 7518 §3.3: a key of 2048 bits or larger MUST be used. */
		WI_CHECK(bits >= WI_RSA_BITS_MIN && bits <= WI_RSA_BITS_MAX, WI_E_INVAL,
			 "signer: RSA key of %d bits (want %d to %d)", bits, WI_RSA_BITS_MIN,
			 WI_RSA_BITS_MAX);
		*ret_alg = WI_SIG_RSA_PKCS1_SHA256;
		return 0;
	}
	WI_CHECK(EVP_PKEY_is_a(key, "EC"), WI_E_INVAL, "signer: key type %s is not supported",
		 EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?");
	char group[64];
	size_t glen = 0;
	WI_CHECK_SSL(EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), &glen) == 1,
		     "signer: EC group name");
	WI_CHECK(strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0, WI_E_INVAL,
		 "signer: EC group %s is not supported (P-256 only)", group);
	*ret_alg = WI_SIG_ECDSA_P256_SHA256;
	return 0;
}

/* A public-only EVP_PKEY with the same public key (SubjectPublicKeyInfo
 * round trip), so a caller holding it can never sign. */
static int public_copy(EVP_PKEY *key, EVP_PKEY **ret)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	WI_CHECK_SSL(n > 0, "signer: encode public key");
	const unsigned char *p = der;
	EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	WI_CHECK_SSL(pub != NULL, "signer: decode public key");
	*ret = pub;
	return 0;
}

int wi_signer_from_pkey(EVP_PKEY *key, wi_signer **ret)
{
	WI_CHECK(key != NULL && ret != NULL, WI_E_INVAL, "signer: NULL argument");
	wi_sig_alg alg = WI_SIG_ECDSA_P256_SHA256; /* set by key_alg on success */
	WI_TRY(key_alg(key, &alg));
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	WI_TRY(public_copy(key, &pub));
	wi_signer *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->key = key; /* ownership moves only now, on success */
	s->pub = TAKE_PTR(pub);
	s->alg = alg;
	*ret = s;
	return 0;
}

wi_signer *wi_signer_free(wi_signer *s)
{
	if (!s)
		return NULL;
	EVP_PKEY_free(s->key); /* OpenSSL clears private key material on free */
	EVP_PKEY_free(s->pub);
	free(s);
	return NULL;
}

int wi_signer_sign(wi_signer *s, wi_sig_alg alg, const uint8_t *digest, size_t digest_len,
		   uint8_t **ret_sig, size_t *ret_sig_len)
{
	WI_CHECK(s != NULL && digest != NULL && ret_sig != NULL && ret_sig_len != NULL, WI_E_INVAL,
		 "sign: NULL argument");
	WI_CHECK(alg == s->alg, WI_E_INVAL, "sign: algorithm %d does not match the key", (int)alg);
	WI_CHECK(digest_len == SHA256_LEN, WI_E_INVAL, "sign: digest is %zu bytes, want %d", digest_len,
		 SHA256_LEN);

	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, s->key, NULL);
	WI_CHECK_SSL(ctx != NULL, "sign: context");
	WI_CHECK_SSL(EVP_PKEY_sign_init(ctx) == 1, "sign: init");
	/* RSA: PKCS#1 v1.5 (RFC 8017 §8.2), never PSS, whatever the default. */
	if (s->alg == WI_SIG_RSA_PKCS1_SHA256)
		WI_CHECK_SSL(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1,
			     "sign: RSA padding");
	/* Tells the provider the digest is SHA-256 so it checks the length
	 * (and, for RSA, writes the SHA-256 DigestInfo). */
	WI_CHECK_SSL(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1, "sign: digest type");
	size_t cap = 0;
	WI_CHECK_SSL(EVP_PKEY_sign(ctx, NULL, &cap, digest, digest_len) == 1 && cap > 0,
		     "sign: size");
	uint8_t *sig = malloc(cap);
	WI_CHECK_ALLOC(sig);
	size_t len = cap;
	if (EVP_PKEY_sign(ctx, sig, &len, digest, digest_len) != 1) {
		free(sig);
		WI_CHECK_SSL(0, "sign");
	}
	/* Output: DER ECDSA-Sig-Value (RFC 3279 §2.2.3), as X.509 wants it; or
	 * the RSA signature, as long as the modulus. */
	*ret_sig = sig;
	*ret_sig_len = len;
	return 0;
}

EVP_PKEY *wi_signer_public_key(const wi_signer *s)
{
	return s ? s->pub : NULL;
}

wi_sig_alg wi_signer_alg(const wi_signer *s)
{
	return s->alg;
}
