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
 * Rotation (rotate_every > 0; core/rotation.h): a successor CA is generated
 * and published in the bundle at least max_svid_ttl before it starts
 * signing, and a replaced CA stays in the bundle for max_svid_ttl after it
 * stopped, so no SVID outlives its anchor in the bundle.  Slot 0 keeps the
 * file names above; slot n is ca.<n>.key.pem / ca.<n>.crt.pem; the schedule
 * is ca/ca.json.  In upstream mode the intermediate rotates the same way and
 * the bundle (the upstream certificates) does not change.
 *
 * Thread-safety: after wi_ca_open, wi_ca_mint_x509_svid, wi_ca_snapshot_get
 * and wi_ca_not_after may be called from many threads at once; wi_ca_tick from
 * one (the owner's).  wi_ca_bundle_der borrows from the
 * current snapshot: valid until the next tick, for single-threaded owners. */
#ifndef WI_CORE_CA_H
#define WI_CORE_CA_H

#include <stdbool.h>
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
	int64_t rotate_every;           /* seconds a CA signs before its successor; 0 = never */
} wi_ca_options;

/* An immutable, referenced view of the CA set: the bundle, and what signs. */
typedef struct wi_ca_snapshot wi_ca_snapshot;

int wi_ca_open(const wi_ca_options *opts, time_t now, wi_ca **ret) WI_WUR;
wi_ca *wi_ca_free(wi_ca *ca);

/* Mints a fresh X.509-SVID (new key pair each call) for `spiffe_id` (must be a
 * member of the CA's trust domain, with a path). */
int wi_ca_mint_x509_svid(wi_ca *ca, const char *spiffe_id, int64_t ttl, time_t now,
			 wi_x509_svid **ret) WI_WUR;

/* Prepares, activates and retires CAs due at `now`; *ret_changed (may be
 * NULL) tells whether the snapshot changed.  On error (e.g. a read-only
 * disk) the current CAs stay in use; retried at the next tick. */
int wi_ca_tick(wi_ca *ca, time_t now, bool *ret_changed) WI_WUR;
/* CAs prepared, activated and retired since open, for metrics. */
uint64_t wi_ca_rotation_events(wi_ca *ca);

/* The current snapshot, referenced. */
wi_ca_snapshot *wi_ca_snapshot_get(wi_ca *ca);
wi_ca_snapshot *wi_ca_snapshot_unref(wi_ca_snapshot *v);
/* Concatenated DER of the trust anchors (Workload API `bundle`), owned by v. */
const uint8_t *wi_ca_snapshot_bundle_der(const wi_ca_snapshot *v, size_t *ret_len);
/* Increases whenever the bundle's content changes. */
uint64_t wi_ca_snapshot_generation(const wi_ca_snapshot *v);
/* notAfter of the active CA; when a published successor takes over (0: none). */
time_t wi_ca_snapshot_not_after(const wi_ca_snapshot *v);
time_t wi_ca_snapshot_next_activation(const wi_ca_snapshot *v);

/* Borrowed from the current snapshot; valid until the next tick (above). */
const uint8_t *wi_ca_bundle_der(const wi_ca *ca, size_t *ret_len);
/* notAfter of the active CA certificate. */
time_t wi_ca_not_after(wi_ca *ca);

#endif
