/* core/signer.h — the narrow signing interface (STYLE §11).
 *
 * The CA key and the JWT keys are only ever used through a wi_signer, so a key
 * can later move into another process or an HSM without touching callers.
 * Signing takes a digest, never the message. */
#ifndef WI_CORE_SIGNER_H
#define WI_CORE_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/error.h"

typedef enum wi_sig_alg {
	WI_SIG_ECDSA_P256_SHA256 = 1, /* signature: DER ECDSA-Sig-Value */
	WI_SIG_RSA_PKCS1_SHA256 = 2,  /* signature: RSASSA-PKCS1-v1_5, modulus-sized */
} wi_sig_alg;

typedef struct wi_signer wi_signer;

/* Wraps an in-memory private key; takes ownership of `key` on success only.
 * Accepted: EC P-256 (WI_SIG_ECDSA_P256_SHA256) and RSA of WI_RSA_BITS_MIN to
 * WI_RSA_BITS_MAX bits (WI_SIG_RSA_PKCS1_SHA256); anything else is
 * WI_E_INVAL. */
int wi_signer_from_pkey(EVP_PKEY *key, wi_signer **ret) WI_WUR;
/* Frees (the private key is freed by OpenSSL, which wipes it); NULL-safe. */
wi_signer *wi_signer_free(wi_signer *s);

/* Signs `digest` (32 bytes for SHA-256).  *ret_sig is malloc'd (free()). */
int wi_signer_sign(wi_signer *s, wi_sig_alg alg, const uint8_t *digest, size_t digest_len,
		   uint8_t **ret_sig, size_t *ret_sig_len) WI_WUR;

/* The public half, owned by the signer (for certificates and JWKS). */
EVP_PKEY *wi_signer_public_key(const wi_signer *s);
/* The algorithm this signer's key supports. */
wi_sig_alg wi_signer_alg(const wi_signer *s);

#endif
