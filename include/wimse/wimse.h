/* wimse/wimse.h — libwimse, the C client of the SPIFFE Workload API, for
 * agent runtimes and for wimsectl.
 *
 * Every function that can fail returns 0 or a negative error code; the
 * reason is available from wimse_last_error() on the same thread, and the
 * gRPC status of the last failed call from wimse_last_status().  Outputs are
 * written only on success.  A wimse_client may be used by one thread at a
 * time. */
#ifndef WIMSE_WIMSE_H
#define WIMSE_WIMSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wimse_client wimse_client;

/* Connects to `address` ("unix:///abs/path"); NULL means the environment
 * variable SPIFFE_ENDPOINT_SOCKET.  The connection itself is made lazily by
 * the first call. */
int wimse_client_open(const char *address, wimse_client **ret);
/* Accepts NULL. */
void wimse_client_close(wimse_client *c);

/* One X.509-SVID as the Workload API sends it: DER chain (leaf first),
 * PKCS#8 DER private key, DER bundle of its trust domain. */
typedef struct wimse_x509_svid {
	char *spiffe_id;
	char *hint;
	uint8_t *chain_der;
	size_t chain_len;
	uint8_t *key_der; /* secret: wiped by wimse_x509_context_free */
	size_t key_len;
	uint8_t *bundle_der;
	size_t bundle_len;
} wimse_x509_svid;

typedef struct wimse_x509_context {
	size_t n_svids; /* >= 1; svids[0] is the default identity */
	wimse_x509_svid *svids;
} wimse_x509_context;

/* Fetches the caller's current X.509 context (the first message of the
 * FetchX509SVID stream), waiting at most timeout_ms. */
int wimse_fetch_x509_context(wimse_client *c, int timeout_ms, wimse_x509_context **ret);
void wimse_x509_context_free(wimse_x509_context *ctx);

/* JWT-SVIDs (FetchJWTSVID). */
typedef struct wimse_jwt_svid {
	char *spiffe_id;
	char *hint;
	char *token; /* secret (a bearer token): wiped by wimse_jwt_svids_free */
} wimse_jwt_svid;

typedef struct wimse_jwt_svids {
	size_t n_svids;
	wimse_jwt_svid *svids;
} wimse_jwt_svids;

/* Fetches JWT-SVIDs for the audiences (at least one); `spiffe_id` NULL means
 * all of the caller's identities. */
int wimse_fetch_jwt_svids(wimse_client *c, const char *const *audiences, size_t n_audiences,
			  const char *spiffe_id, int timeout_ms, wimse_jwt_svids **ret);
void wimse_jwt_svids_free(wimse_jwt_svids *s);

/* JWT bundles (the first message of FetchJWTBundles): per trust domain
 * ("spiffe://td") a JWKS document. */
typedef struct wimse_jwt_bundles {
	size_t n_bundles;
	char **trust_domains;
	char **jwks; /* NUL-terminated JSON */
} wimse_jwt_bundles;

int wimse_fetch_jwt_bundles(wimse_client *c, int timeout_ms, wimse_jwt_bundles **ret);
void wimse_jwt_bundles_free(wimse_jwt_bundles *b);

/* ValidateJWTSVID: 0 when valid, with the subject and the claims as JSON
 * text (both malloc'd; free()).  An invalid token fails with the server's
 * reason in wimse_last_error() and status INVALID_ARGUMENT (3). */
int wimse_validate_jwt_svid(wimse_client *c, const char *audience, const char *token, int timeout_ms,
			    char **ret_spiffe_id, char **ret_claims_json);

/* grpc.health.v1 Check; *ret_serving is 1 when the server is SERVING. */
int wimse_healthcheck(wimse_client *c, int timeout_ms, int *ret_serving);

/* The last error on this thread, as one line. */
const char *wimse_last_error(void);
/* The gRPC status of the last failed call on this thread (0 if none). */
int wimse_last_status(void);

#ifdef __cplusplus
}
#endif

#include "wimse/watch.h"
#include "wimse/mtls.h"

#endif
