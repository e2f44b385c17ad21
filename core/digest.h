/* core/digest.h — message digests fetched from OpenSSL's default provider
 * once per process.  OpenSSL 3 resolves a legacy `EVP_sha256()` through an
 * implicit fetch (a name look-up under a lock) on every EVP_Digest or
 * DigestInit that uses it; hot paths hash with these instead. */
#ifndef WI_CORE_DIGEST_H
#define WI_CORE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/error.h"

#define WI_SHA256_LEN 32

/* The fetched digest for "SHA256", "SHA384" or "SHA512"; NULL for any
 * other name or if OpenSSL could not fetch it (the caller reports that as
 * a crypto error).  Never freed: it lives as long as the process. */
const EVP_MD *wi_digest_md(const char *name);

/* out = SHA-256(data[0..len)).  WI_E_CRYPTO if OpenSSL fails. */
int wi_digest_sha256(const void *data, size_t len, uint8_t out[WI_SHA256_LEN]) WI_WUR;

#endif
