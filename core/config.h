/* core/config.h — the daemon's one JSON config file (DESIGN §5).
 *
 * Keys (unknown keys, wrong types and bad values are errors whose detail names
 * the JSON path and the line where the key appears):
 *   trust_domain      string, required        "example.org"
 *   data_dir          string, required        state directory (0700)
 *   workload_socket   string, required        Workload API Unix socket path
 *   log_level         "debug"|"info"|"warn"|"error"   (default "info")
 *   log_format        "text"|"json"                    (default "text")
 *   metrics_listen    "127.0.0.1:9464" / "[::1]:9464": plain-HTTP GET /metrics
 *                     on TCP (optional; core/hostport.h syntax)
 *   x509_svid_ttl     duration                (default 1h)
 *   jwt_svid_ttl      duration                (default 5m)
 *   jwt_key_type      "ec-p256"|"rsa-2048"|"rsa-3072"  (default "ec-p256")
 *   jwt_key_rotate_every  duration, 0 = never (default 24h; core/jwt_keys.h)
 *   ca                object: ttl (duration, default 8760h),
 *                     rotate_every (duration, 0 = never; default half the
 *                     ttl, at most ttl - 2 * the longest X.509-SVID ttl),
 *                     upstream_cert, upstream_key (strings, both or neither)
 *   entries           array of {spiffe_id, selectors[], hint?, x509_svid_ttl?,
 *                     txn? (core/txn_policy.h)}, parsed by core/entry.h (the
 *                     parser the admin API shares); no two with the same
 *                     spiffe_id and selectors
 *   txn               object (Transaction Token Service; absent = disabled):
 *                       exchange_socket   HTTP Unix socket path (required)
 *                       https_listen      "127.0.0.1:8443" (optional)
 *                       default_ttl       duration (default 5m), max_hops (default 4)
 *                       key_rotate_every  Txn-Token signing keys (default 24h)
 *                       admin_selectors   selectors a caller needs for /revoke
 *                                         (default ["unix:uid:0"])
 *                       dev_issuer        bool: the built-in development user-token
 *                                         issuer (default false)
 *                       issuers           array of trusted user-token issuers:
 *                         {issuer, jwks_file | jwks_url, audiences[],
 *                          algorithms[] (default ["RS256","ES256"]),
 *                          token_type? ("at+jwt"), scope_claim? ("scope"),
 *                          scope_optional? (false)}
 * A duration is a non-negative integer of seconds or a string of
 * <number><unit> groups, unit s, m, h or d ("1h30m").  Relative paths are
 * resolved against the working directory at load time.  The selector value
 * "@daemon" in unix:uid, unix:gid, unix:user and unix:group means the daemon's
 * own effective user or group (so a self-contained dev config can match the
 * invoking user). */
#ifndef WI_CORE_CONFIG_H
#define WI_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/entry.h"
#include "core/error.h"
#include "core/registry.h"

typedef struct wi_config wi_config;

typedef enum wi_log_level {
	WI_LOG_DEBUG = 0,
	WI_LOG_INFO = 1,
	WI_LOG_WARN = 2,
	WI_LOG_ERROR = 3,
} wi_log_level;

/* Loads and validates a config file. */
int wi_config_load_file(const char *path, wi_config **ret) WI_WUR;
/* Same from a NUL-terminated buffer; `name` is used in messages. */
int wi_config_load_string(const char *text, const char *name, wi_config **ret) WI_WUR;
wi_config *wi_config_free(wi_config *c);

const char *wi_config_trust_domain(const wi_config *c);
const char *wi_config_data_dir(const wi_config *c);
const char *wi_config_workload_socket(const wi_config *c);
wi_log_level wi_config_log_level(const wi_config *c);
bool wi_config_log_json(const wi_config *c);
int64_t wi_config_x509_svid_ttl(const wi_config *c);
int64_t wi_config_jwt_svid_ttl(const wi_config *c);
/* 0 = EC P-256, 1 = RSA-2048, 2 = RSA-3072 (wi_jwt_key_type values). */
int wi_config_jwt_key_type(const wi_config *c);
int64_t wi_config_ca_ttl(const wi_config *c);
/* Rotation periods in seconds; 0 = never. */
int64_t wi_config_ca_rotate_every(const wi_config *c);
int64_t wi_config_jwt_key_rotate_every(const wi_config *c);
int64_t wi_config_txn_key_rotate_every(const wi_config *c);
/* NULL unless upstream-disk mode. */
const char *wi_config_ca_upstream_cert(const wi_config *c);
const char *wi_config_ca_upstream_key(const wi_config *c);
/* The largest X.509-SVID TTL of any entry (or the default). */
int64_t wi_config_max_x509_svid_ttl(const wi_config *c);
/* A trusted issuer of user tokens. */
typedef struct wi_issuer_config {
	const char *issuer;
	const char *jwks_file; /* exactly one of jwks_file and jwks_url */
	const char *jwks_url;
	const char *const *audiences;
	size_t n_audiences;
	unsigned algorithms;     /* WI_JWS_* bits */
	const char *token_type;  /* required typ header, or NULL */
	const char *scope_claim; /* "scope" (space-separated) or "scp" (array) */
	bool scope_optional;     /* a token without the claim is refused (invalid_scope)
				    unless set; then only the actor's policy caps the scope */
} wi_issuer_config;

/* NULL when the Transaction Token Service is off. */
const char *wi_config_exchange_socket(const wi_config *c);
const char *wi_config_https_listen(const wi_config *c);
/* NULL unless `metrics_listen` is set. */
const char *wi_config_metrics_listen(const wi_config *c);
int64_t wi_config_txn_default_ttl(const wi_config *c);
int wi_config_txn_max_hops(const wi_config *c);
/* Selectors a caller must hold to use /revoke (borrowed). */
const wi_selector_set *wi_config_admin_selectors(const wi_config *c);
bool wi_config_dev_issuer(const wi_config *c);
size_t wi_config_issuer_count(const wi_config *c);
const wi_issuer_config *wi_config_issuer_at(const wi_config *c, size_t i);

/* The entries; the caller gets a new reference. */
wi_registry *wi_config_registry(const wi_config *c);
/* The same entries as data, in file order (source CONFIG, content-hash ids;
 * see core/entry.h), borrowed from the config.  Two entries with the same
 * spiffe_id and selectors are refused at load. */
size_t wi_config_entry_count(const wi_config *c);
const wi_entry *wi_config_entry_at(const wi_config *c, size_t i);

/* Parses a duration string ("90s", "1h30m", "7d"); exposed for tests and CLI. */
int wi_duration_parse(const char *s, int64_t *ret_seconds) WI_WUR;

static inline void wi_config_freep(wi_config **c)
{
	wi_config_free(*c);
}

#endif
