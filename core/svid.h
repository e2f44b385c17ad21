/* core/svid.h — a minted X.509-SVID, shared by every caller of one identity.
 * Immutable and reference-counted; the private key bytes are wiped on the
 * last unref. */
#ifndef WI_CORE_SVID_H
#define WI_CORE_SVID_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"

typedef struct wi_x509_svid wi_x509_svid;

/* Builds an SVID from its parts; copies everything.  `chain_der` is the DER
 * leaf followed by any intermediates; `key_der` PKCS#8 DER. */
int wi_x509_svid_new(const char *spiffe_id, const uint8_t *chain_der, size_t chain_len,
		     const uint8_t *key_der, size_t key_len, time_t not_before, time_t not_after,
		     wi_x509_svid **ret) WI_WUR;
wi_x509_svid *wi_x509_svid_ref(wi_x509_svid *s);
/* Accepts NULL; returns NULL. */
wi_x509_svid *wi_x509_svid_unref(wi_x509_svid *s);

const char *wi_x509_svid_spiffe_id(const wi_x509_svid *s);
const uint8_t *wi_x509_svid_chain_der(const wi_x509_svid *s, size_t *ret_len);
const uint8_t *wi_x509_svid_key_der(const wi_x509_svid *s, size_t *ret_len);
time_t wi_x509_svid_not_before(const wi_x509_svid *s);
time_t wi_x509_svid_not_after(const wi_x509_svid *s);
/* notBefore + half the lifetime: after this, callers should get a fresh one. */
time_t wi_x509_svid_refresh_at(const wi_x509_svid *s);

static inline void wi_x509_svid_unrefp(wi_x509_svid **s)
{
	wi_x509_svid_unref(*s);
}

#endif
