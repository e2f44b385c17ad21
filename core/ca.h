/* core/ca.h — the trust domain's X.509 CA.
 *
 * Self-signed mode (default): on first start generate an EC P-256 root,
 * subject O=wimsed, CN=<trust domain> CA, URI SAN spiffe://<td> (X509-SVID
 * §4: signing certs' SPIFFE ID has no path), basicConstraints critical CA:TRUE,
 * keyUsage critical keyCertSign+cRLSign, SKI; persist as
 * <data_dir>/ca/ca.crt.pem (0644) and <data_dir>/ca/ca.key.pem (0600), both
 * written atomically; on later starts load them (and regenerate if the cert
 * expires within 2 * max SVID TTL, or the key does not match the cert).
 *
 * Upstream-disk mode (upstream_cert_path + upstream_key_path set): the
 * operator's CA signs our own intermediate (same profile, persisted in the same
 * files); the bundle is the upstream certificate(s), and every SVID chain is
 * leaf + intermediate.
 *
 * X.509-SVID leaf profile (DESIGN §3, X509-SVID §4/§5):
 *   EC P-256 key; random positive 128-bit serial; notBefore = now - 10 s;
 *   notAfter = min(now + ttl, CA notAfter); subject O=wimsed; exactly one URI
 *   SAN = the SPIFFE ID; basicConstraints CA:FALSE (present, critical);
 *   keyUsage critical digitalSignature only; extendedKeyUsage serverAuth +
 *   clientAuth; SKI, AKI; signature ecdsa-with-SHA256 made through the signer.
 *
 * Thread-safety: after wi_ca_open, wi_ca_mint_x509_svid and the getters may be
 * called from many threads at once. */
#ifndef WI_CORE_CA_H
#define WI_CORE_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"
#include "core/svid.h"

typedef struct wi_ca wi_ca;

typedef struct wi_ca_options {
	const char *trust_domain;       /* "example.org" */
	const char *data_dir;           /* must exist, 0700 */
	int64_t ttl;                    /* CA certificate lifetime, seconds */
	int64_t max_svid_ttl;           /* the largest SVID TTL that will be asked */
	const char *upstream_cert_path; /* NULL for self-signed mode */
	const char *upstream_key_path;
} wi_ca_options;

int wi_ca_open(const wi_ca_options *opts, time_t now, wi_ca **ret) WI_WUR;
wi_ca *wi_ca_free(wi_ca *ca);

/* Mints a fresh X.509-SVID (new key pair each call) for `spiffe_id` (must be a
 * member of the CA's trust domain, with a path). */
int wi_ca_mint_x509_svid(wi_ca *ca, const char *spiffe_id, int64_t ttl, time_t now,
			 wi_x509_svid **ret) WI_WUR;

/* Concatenated DER of the trust anchors (Workload API `bundle`); owned by ca. */
const uint8_t *wi_ca_bundle_der(const wi_ca *ca, size_t *ret_len);
/* notAfter of the CA certificate. */
time_t wi_ca_not_after(const wi_ca *ca);

#endif
