/* wimse/mtls.h — SPIFFE mutual TLS with OpenSSL 3, fed by a wimse_x509_source.
 *
 * wimse_tls_ctx_new builds an SSL_CTX (TLS 1.3 only) that
 *   - presents the source's *current* SVID (chain and key) on every handshake,
 *     chosen in a certificate callback, so a rotation needs no new SSL_CTX;
 *   - verifies the peer against the *current* X.509 bundle of the peer's own
 *     trust domain (taken from the peer's SPIFFE ID; no bundle: untrusted,
 *     Workload API §5: federated bundles are picked by trust domain), in a
 *     certificate-verify callback, after checking the X509-SVID leaf rules:
 *     exactly one URI SAN, a valid SPIFFE ID with a path, basicConstraints
 *     cA=FALSE, keyUsage with digitalSignature and without keyCertSign or
 *     cRLSign (X509-SVID §4, §5);
 *   - authorizes the peer by its SPIFFE ID with a wimse_authorizer.
 * Hostname verification does not apply: SPIFFE certificates carry no DNS
 * names to check; the authorizer takes its place.  Do not enable OpenSSL's
 * hostname checks (SSL_set1_host) on these contexts.
 *
 * A server context requires a client certificate (SSL_VERIFY_PEER |
 * SSL_VERIFY_FAIL_IF_NO_PEER_CERT).  Session resumption is disabled (no
 * tickets, no session cache) so that every connection is verified and
 * authorized against the current bundle and policy.
 *
 * The returned SSL_CTX may be shared by many threads; each SSL made from it
 * follows rotations.  Do not replace its cert_cb or cert-verify callback.
 *
 * Errors: functions that can fail return 0 or a negative code; the reason is
 * available from wimse_last_error() on the calling thread. */
#ifndef WIMSE_MTLS_H
#define WIMSE_MTLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "wimse/watch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Authorizers ---------------------------------------------------------
 * An authorizer decides whether an authenticated peer SPIFFE ID may talk to
 * us.  It is immutable and reference-counted: a TLS context keeps its own
 * reference, so the caller may free its authorizer right after building the
 * context.  Comparison is exact on the whole ID (SPIFFE-ID §2: the path is
 * case-sensitive; IDs are stored in canonical lowercase-scheme form). */
typedef struct wimse_authorizer wimse_authorizer;

/* Exactly this ID.  WI_E_SPIFFE_ID if `id` is not a valid SPIFFE ID. */
int wimse_authorize_id(const char *id, wimse_authorizer **ret) WIMSE_WUR;
/* Any of these n IDs (n >= 1; each must be valid). */
int wimse_authorize_one_of(const char *const *ids, size_t n, wimse_authorizer **ret) WIMSE_WUR;
/* Any ID of this trust domain ("example.org" or "spiffe://example.org"). */
int wimse_authorize_member_of(const char *trust_domain, wimse_authorizer **ret) WIMSE_WUR;
/* Any peer that presents a valid SVID of a trusted trust domain. */
int wimse_authorize_any(wimse_authorizer **ret) WIMSE_WUR;
/* A caller-supplied policy: returns true to allow.  Called during handshakes,
 * possibly from many threads at once; `userdata` must outlive every context
 * built with this authorizer. */
typedef bool (*wimse_authorize_fn)(const char *peer_id, void *userdata);
int wimse_authorize_func(wimse_authorize_fn fn, void *userdata, wimse_authorizer **ret) WIMSE_WUR;
/* True when `a` allows `peer_id`. */
bool wimse_authorizer_allows(const wimse_authorizer *a, const char *peer_id);
/* Drops the caller's reference.  Accepts NULL. */
void wimse_authorizer_free(wimse_authorizer *a);

/* ---- TLS contexts -------------------------------------------------------- */
typedef enum wimse_tls_role {
	WIMSE_TLS_SERVER = 1,
	WIMSE_TLS_CLIENT = 2,
} wimse_tls_role;

typedef struct wimse_tls_options {
	wimse_tls_role role;
	wimse_x509_source *source;          /* required; the context holds a reference */
	const wimse_authorizer *authorizer; /* required; the context holds a reference */
	const char *svid_id; /* SPIFFE ID of the SVID to present; NULL: the default (first) SVID */
} wimse_tls_options;

/* A new SSL_CTX as described above; free it with SSL_CTX_free.  The context
 * keeps the source and the authorizer alive.  If the source has no SVID at
 * handshake time (not yet, or dropped after PERMISSION_DENIED) the handshake
 * fails. */
int wimse_tls_ctx_new(const wimse_tls_options *opts, SSL_CTX **ret) WIMSE_WUR;
/* Shorthands with the default SVID. */
int wimse_tls_server_ctx_new(wimse_x509_source *src, const wimse_authorizer *authz, SSL_CTX **ret) WIMSE_WUR;
int wimse_tls_client_ctx_new(wimse_x509_source *src, const wimse_authorizer *authz, SSL_CTX **ret) WIMSE_WUR;

/* After a successful handshake on an SSL of such a context: copies the peer's
 * authenticated and authorized SPIFFE ID into buf (NUL-terminated).
 * WI_E_NOT_FOUND if no peer was authenticated on this connection, WI_E_TOO_BIG
 * if cap is too small. */
int wimse_tls_peer_id(const SSL *ssl, char *buf, size_t cap) WIMSE_WUR;

/* Why our verification refused the peer on this connection ("peer
 * spiffe://example.org/x is not authorized", "peer certificate has 2 URI
 * SANs", ...), or NULL if it did not.  Owned by the SSL. */
const char *wimse_tls_verify_error(const SSL *ssl);

/* ---- X.509 building blocks ------------------------------------------------ */

/* Checks the X509-SVID rules of a leaf (exactly one URI SAN that is a valid
 * SPIFFE ID with a path; basicConstraints present with cA=FALSE; keyUsage
 * present with digitalSignature and without keyCertSign/cRLSign) and copies
 * its SPIFFE ID into buf.  Does not verify the chain.  WI_E_PARSE with the
 * violated rule as the reason. */
int wimse_x509_svid_leaf_id(X509 *leaf, char *buf, size_t cap) WIMSE_WUR;

/* The parsed form of svids[i] of a snapshot: leaf, intermediates (possibly
 * empty) and private key.  Borrowed: valid while the snapshot is referenced;
 * do not modify (take your own reference with X509_up_ref/EVP_PKEY_up_ref).
 * WI_E_NOT_FOUND if i is out of range. */
int wimse_x509_snapshot_svid_openssl(const wimse_x509_snapshot *s, size_t i, X509 **ret_leaf,
				     STACK_OF(X509) **ret_intermediates, EVP_PKEY **ret_key) WIMSE_WUR;
/* The trust anchors of `trust_domain` as parsed certificates (borrowed as
 * above).  WI_E_NOT_FOUND when the snapshot holds no bundle for it. */
int wimse_x509_snapshot_bundle_openssl(const wimse_x509_snapshot *s, const char *trust_domain,
				       STACK_OF(X509) **ret_anchors) WIMSE_WUR;

#ifdef __cplusplus
}
#endif

#endif
