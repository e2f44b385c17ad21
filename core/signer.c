/* core/signer.c — an in-memory wi_signer (STYLE §11).
 *
 * The private key never leaves this file: callers get the public half and a
 * sign-this-digest operation.
 *
 * Speed: making an EVP_PKEY_CTX and initialising it for signing costs
 * OpenSSL 3 a provider fetch of the signature algorithm (name-map and method
 * store look-ups) and several allocations — more than the P-256 sign itself
 * on the cold JWT-SVID path.  So each signer keeps a small pool of contexts
 * already initialised for its key (padding and digest set): a call takes one
 * under a mutex (held for a pointer pop, never while signing), signs, and
 * gives it back.  A context is used by one thread at a time, so one signer
 * may still sign from many threads at once.  The pool dies with the signer,
 * so no copy of a rotated-out private key outlives it. */
#include "core/signer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/cleanup.h"
#include "core/digest.h"
#include "core/limits.h"

struct wi_signer {
	EVP_PKEY *key; /* private; only used in wi_signer_sign */
	EVP_PKEY *pub; /* public-only copy handed out */
	wi_sig_alg alg;
	pthread_mutex_t pool_lock; /* guards pool and n_pool only */
	EVP_PKEY_CTX *pool[WI_SIGNER_CTX_POOL_MAX]; /* idle contexts, sign-initialised */
	size_t n_pool;
};

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
	if (pthread_mutex_init(&s->pool_lock, NULL) != 0) {
		free(s);
		WI_FAIL(WI_E_NOMEM, "signer: mutex");
	}
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
	/* The contexts hold references to the key: freed first. */
	for (size_t i = 0; i < s->n_pool; i++)
		EVP_PKEY_CTX_free(s->pool[i]);
	pthread_mutex_destroy(&s->pool_lock);
	EVP_PKEY_free(s->key); /* OpenSSL clears private key material on free */
	EVP_PKEY_free(s->pub);
	free(s);
	return NULL;
}

/* A context initialised for signing with this signer's key: from the pool,
 * or a new one.  The caller owns it until ctx_put. */
static int ctx_get(wi_signer *s, EVP_PKEY_CTX **ret)
{
	EVP_PKEY_CTX *ctx = NULL;
	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool > 0)
		ctx = s->pool[--s->n_pool];
	pthread_mutex_unlock(&s->pool_lock);
	if (ctx) {
		*ret = ctx;
		return 0;
	}
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *n = EVP_PKEY_CTX_new_from_pkey(NULL, s->key, NULL);
	WI_CHECK_SSL(n != NULL, "sign: context");
	WI_CHECK_SSL(EVP_PKEY_sign_init(n) == 1, "sign: init");
	/* RSA: PKCS#1 v1.5 (RFC 8017 §8.2), never PSS, whatever the default. */
	if (s->alg == WI_SIG_RSA_PKCS1_SHA256)
		WI_CHECK_SSL(EVP_PKEY_CTX_set_rsa_padding(n, RSA_PKCS1_PADDING) == 1, "sign: RSA padding");
	/* Tells the provider the digest is SHA-256 so it checks the length
	 * (and, for RSA, writes the SHA-256 DigestInfo). */
	const EVP_MD *sha256 = wi_digest_md("SHA256");
	WI_CHECK_SSL(sha256 != NULL && EVP_PKEY_CTX_set_signature_md(n, sha256) == 1, "sign: digest type");
	*ret = TAKE_PTR(n);
	return 0;
}

/* Returns a context that signed successfully to the pool (or frees it when
 * the pool is full). */
static void ctx_put(wi_signer *s, EVP_PKEY_CTX *ctx)
{
	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool < WI_SIGNER_CTX_POOL_MAX) {
		s->pool[s->n_pool++] = ctx;
		ctx = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	EVP_PKEY_CTX_free(ctx);
}

int wi_signer_sign(wi_signer *s, wi_sig_alg alg, const uint8_t *digest, size_t digest_len,
		   uint8_t **ret_sig, size_t *ret_sig_len)
{
	WI_CHECK(s != NULL && digest != NULL && ret_sig != NULL && ret_sig_len != NULL, WI_E_INVAL,
		 "sign: NULL argument");
	WI_CHECK(alg == s->alg, WI_E_INVAL, "sign: algorithm %d does not match the key", (int)alg);
	WI_CHECK(digest_len == WI_SHA256_LEN, WI_E_INVAL, "sign: digest is %zu bytes, want %d", digest_len,
		 WI_SHA256_LEN);

	/* Freed on every error path: a context whose sign failed is not
	 * trusted back into the pool. */
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	WI_TRY(ctx_get(s, &ctx));
	/* The maximum signature size is fixed by the key: no sizing call. */
	int max = EVP_PKEY_get_size(s->key);
	WI_CHECK_SSL(max > 0, "sign: size");
	size_t cap = (size_t)max;
	uint8_t *sig = malloc(cap);
	WI_CHECK_ALLOC(sig);
	size_t len = cap;
	if (EVP_PKEY_sign(ctx, sig, &len, digest, digest_len) != 1) {
		free(sig);
		WI_CHECK_SSL(0, "sign");
	}
	ctx_put(s, TAKE_PTR(ctx));
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
