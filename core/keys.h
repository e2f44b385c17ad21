/* core/keys.h — key generation and (de)serialisation. */
#ifndef WI_CORE_KEYS_H
#define WI_CORE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/error.h"

/* Generates an EC P-256 key pair. */
int wi_key_generate_p256(EVP_PKEY **ret) WI_WUR;
/* Generates an RSA key pair of `bits` (WI_RSA_BITS_MIN..WI_RSA_BITS_MAX, a
 * multiple of 8; e = 65537).  WI_E_INVAL for other sizes. */
int wi_key_generate_rsa(unsigned bits, EVP_PKEY **ret) WI_WUR;
/* Unencrypted PKCS#8 PrivateKeyInfo DER (Workload API x509_svid_key).
 * *ret_der is secret: free with wi_secret_free(der, len). */
int wi_key_to_pkcs8_der(EVP_PKEY *key, uint8_t **ret_der, size_t *ret_len) WI_WUR;
/* Writes the private key as PKCS#8 PEM to `path` atomically, mode 0600. */
int wi_key_save_pem(EVP_PKEY *key, const char *path) WI_WUR;
/* Loads a PEM private key file (at most WI_PEM_FILE_MAX); refuses a file that
 * group or others may read.  WI_E_NOT_FOUND when absent. */
int wi_key_load_pem(const char *path, EVP_PKEY **ret) WI_WUR;

#endif
