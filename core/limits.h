/* core/limits.h — every bound on client-controlled or operator-controlled size,
 * in one place (STYLE §12).  Change a limit here, nowhere else. */
#ifndef WI_CORE_LIMITS_H
#define WI_CORE_LIMITS_H

/* SPIFFE-ID §2.x: implementations MUST support IDs up to 2048 bytes. */
#define WI_SPIFFE_ID_MAX 2048
/* SPIFFE-ID: trust domain names are at most 255 bytes. */
#define WI_TRUST_DOMAIN_MAX 255
/* Workload API: hints SHOULD NOT exceed 1024 bytes. */
#define WI_HINT_MAX 1024

/* Selectors: "kind:value"; values are paths, names, digests, ids. */
#define WI_SELECTOR_MAX 4096
#define WI_SELECTORS_PER_ENTRY_MAX 64
#define WI_SELECTORS_PER_PROCESS_MAX 512

/* Registration entries held at once. */
#define WI_ENTRIES_MAX 100000
/* Identities (SVIDs) one caller may receive in one response. */
#define WI_IDENTITIES_PER_CALLER_MAX 256

/* Config file size and JSON nesting. */
#define WI_CONFIG_FILE_MAX (8u * 1024u * 1024u)
#define WI_JSON_DEPTH_MAX 32

/* X.509-SVID TTL bounds, seconds. */
#define WI_X509_TTL_MIN 10
#define WI_X509_TTL_MAX (30LL * 24 * 3600)
#define WI_X509_TTL_DEFAULT 3600
/* CA certificate TTL bounds, seconds. */
/* (Short CA lifetimes are for rotation tests and demos.) */
#define WI_CA_TTL_MIN 30
#define WI_CA_TTL_MAX (20LL * 365 * 24 * 3600)
#define WI_CA_TTL_DEFAULT (365LL * 24 * 3600)
/* Key rotation (core/rotation.h): slots of one key set (active, successor,
 * lingering predecessors), the manifest's size, and the shortest period. */
#define WI_ROTATION_SLOTS_MAX 8
#define WI_ROTATION_MANIFEST_MAX 4096
#define WI_ROTATION_PERIOD_MIN 10
#define WI_ROTATION_PERIOD_MAX (10LL * 365 * 24 * 3600)
/* Default period of the JWT-SVID and Txn-Token signing keys. */
#define WI_KEY_ROTATE_DEFAULT (24LL * 3600)
/* The state directory counts as full below this many free bytes (health
 * turns NOT_SERVING): room for SQLite's WAL and a key rotation. */
#define WI_STORAGE_FREE_MIN (256u * 1024u)
/* The daemon's tick: stream pushes, rotation steps and health checks run at
 * most this long after they fall due. */
#define WI_TICK_SECONDS 1
/* Backdating of notBefore against clock skew (as SPIRE does). */
#define WI_CERT_BACKDATE_SECONDS 10

/* /proc reads: a single status/stat/cgroup file. */
#define WI_PROC_FILE_MAX (64u * 1024u)
/* Executables larger than this are not hashed (unix:sha256 omitted). */
#define WI_EXE_HASH_SIZE_MAX (1024LL * 1024 * 1024)
/* Cache of executable digests keyed by (dev, ino, mtime, size). */
#define WI_EXE_HASH_CACHE_SLOTS 256
/* getpwuid_r/getgrgid_r buffer cap (groups with huge member lists). */
#define WI_NSS_BUFFER_MAX (1024u * 1024u)
/* Kernels without SO_PEERPIDFD: open files of a peer process searched for
 * the connecting socket; a process holding more is refused (fail closed). */
#define WI_PEER_FDS_SCAN_MAX 65536
/* Cache of attestation results keyed by process identity. */
#define WI_ATTEST_CACHE_SLOTS 1024

/* gRPC: largest request we parse, largest response we build (clients default
 * to a 4 MiB receive limit). */
#define WI_GRPC_REQUEST_MAX (64u * 1024u)
#define WI_GRPC_RESPONSE_MAX (4u * 1024u * 1024u - 64u * 1024u)
/* Workload API connections open at once, and per uid. */
#define WI_CONNECTIONS_MAX 16384
#define WI_CONNECTIONS_PER_UID_MAX 1024
/* SIGTERM: in-flight unary calls get this long to finish before every call
 * left is cancelled, then this long more (the stop budget is 5 s). */
#define WI_SHUTDOWN_GRACE_MS 3000
#define WI_SHUTDOWN_CANCEL_WAIT_MS 1500
/* Listen backlog of the Unix sockets. */
#define WI_LISTEN_BACKLOG 512

/* Random identifiers (core/rand.h): bytes drawn from OpenSSL per refill of
 * a thread's buffer, and the most one call takes. */
#define WI_RAND_ID_POOL 512
#define WI_RAND_ID_MAX 64

/* JWT: largest token accepted (JWT-SVID validation, subject tokens). */
#define WI_JWT_MAX_LEN (16u * 1024u)
/* Clock-skew leeway for exp/nbf/iat checks, seconds. */
#define WI_JWT_LEEWAY_SECONDS 30
/* JWT-SVID TTL bounds and default, seconds. */
#define WI_JWT_TTL_MIN 10
#define WI_JWT_TTL_MAX (24LL * 3600)
#define WI_JWT_TTL_DEFAULT 300
/* Audiences in one JWT-SVID request, and the length of one. */
#define WI_JWT_AUDIENCES_MAX 16
#define WI_JWT_AUDIENCE_MAX 1024
/* JWT-SVIDs kept signed (LRU), per daemon. */
#define WI_JWT_CACHE_MAX 10000
/* Keys in one JWK Set document we parse. */
#define WI_JWKS_KEYS_MAX 64
#define WI_JWKS_DOC_MAX (256u * 1024u)
/* Length of one JWK "kid" we accept in a key set. */
#define WI_JWK_KID_MAX 1024
/* RSA modulus sizes we sign with or accept in a JWK (RFC 7518 §3.3: at least
 * 2048 bits; the upper bound caps the cost of one verification). */
#define WI_RSA_BITS_MIN 2048
#define WI_RSA_BITS_MAX 8192
/* Largest JWS signature: an RSA signature of WI_RSA_BITS_MAX bits. */
#define WI_JWS_SIG_MAX (WI_RSA_BITS_MAX / 8)

/* Transaction Tokens: lifetime bounds (the draft: minutes or less). */
#define WI_TXN_TTL_MIN 10
#define WI_TXN_TTL_MAX 3600
/* How long /revoke keeps an agent (spiffe_id) or a person (principal) from
 * new tokens: their SVIDs and IdP tokens outlive any Txn-Token, so by
 * default 30 days; `expires_in` may ask for one hour (the longest Txn-Token
 * and leeway, which a revocation must cover) up to a year. */
#define WI_REVOKE_SUBJECT_DEFAULT_SECONDS (30 * 86400)
#define WI_REVOKE_SUBJECT_MAX_SECONDS (366 * 86400)
#define WI_TXN_TTL_DEFAULT 300
#define WI_TXN_MAX_HOPS_DEFAULT 4
#define WI_TXN_MAX_HOPS_MAX 32
/* JWKS URL fetching: timeouts, and cache lifetime bounds, seconds. */
#define WI_JWKS_CONNECT_TIMEOUT_MS 2000
#define WI_JWKS_TOTAL_TIMEOUT_MS 5000
#define WI_JWKS_CACHE_MIN_SECONDS 60
#define WI_JWKS_CACHE_MAX_SECONDS 86400
#define WI_JWKS_CACHE_DEFAULT_SECONDS 300
#define WI_JWKS_REFETCH_MIN_SECONDS 30

/* One sd_notify(3) state string (daemon/notify.c), bytes with the NUL. */
#define WI_NOTIFY_STATE_MAX 4096
/* The Transaction Token Service's HTTP listeners. */
#define WI_TTS_BODY_MAX (64u * 1024u)
#define WI_TTS_CONNECTIONS_MAX 1024 /* per listener (Unix socket, HTTPS) */
/* Of these, what one peer may hold: a uid on the Unix socket, an IPv4
 * address or IPv6 /64 on HTTPS; a quarter, so one peer cannot take them all. */
#define WI_TTS_CONNECTIONS_PER_PEER_MAX 256
#define WI_TTS_IO_TIMEOUT_MS 10000
/* Agent processes whose runs are watched at once (txn-token/runs.c), each
 * holding one pidfd: beyond it an exchange is refused (503), not issued
 * with a run that would outlive its agent; far below LimitNOFILE. */
#define WI_RUNS_PROCESSES_MAX 16384
/* Tokens that verified, remembered by SHA-256 (core/verified_cache.h), and
 * for how long at most: user tokens presented for exchange (subject cache),
 * JWT-SVIDs (ValidateJWTSVID; the token service's) and Txn-Tokens. */
#define WI_SUBJECT_CACHE_SLOTS 1024
#define WI_SVID_VALIDATION_CACHE_SLOTS 1024
#define WI_TXN_VERIFIED_CACHE_SLOTS 1024
#define WI_VERIFIED_CACHE_TTL_MAX 60
/* HTTP worker threads (loops) one server may run. */
#define WI_HTTP_WORKERS_MAX 16
/* Trusted user-token issuers in one config. */
#define WI_ISSUERS_MAX 64
/* Items in one policy list, and the length of one. */
#define WI_TXN_POLICY_LIST_MAX 256
#define WI_TXN_POLICY_ITEM_MAX 2048

/* Admin socket (daemon/metrics.c, daemon/admin_entries.c): the largest
 * request body (an entry import), the largest body of one POST /entries, the
 * entries in one import, connections at once, and how long an API change
 * waits for the loop to publish the new registry before answering anyway. */
#define WI_ADMIN_BODY_MAX (1024u * 1024u)
#define WI_ADMIN_ENTRY_BODY_MAX (64u * 1024u)
#define WI_ADMIN_IMPORT_ENTRIES_MAX 10000
#define WI_ADMIN_PUBLISH_WAIT_MS 2000

/* X.509-SVIDs kept minted (one per identity and TTL). */
#define WI_X509_CACHE_MAX 65536
/* Outstanding "request a new call" slots on the gRPC server. */
#define WI_GRPC_PENDING_CALLS 64
/* Worker threads serving the gRPC completion queue (one per core, capped). */
#define WI_GRPC_THREADS_MAX 16

/* Error detail text kept per thread. */
#define WI_ERROR_DETAIL_MAX 512

/* Files the daemon reads (CA cert/key given by the operator). */
#define WI_PEM_FILE_MAX (1024u * 1024u)

/* --- State store and revocation index (core/store.c, txn-token/revocations.c) */
/* How long a store call waits for SQLite's file lock held by another
 * connection (e.g. `sqlite3` run by an operator) before failing with
 * WI_E_UNAVAILABLE, milliseconds.  Long enough to ride out a checkpoint. */
#define WI_STORE_BUSY_TIMEOUT_MS 5000
/* One revoked value: a txn claim, a SPIFFE ID (WI_SPIFFE_ID_MAX) or a
 * principal "<iss> <sub>" (an issuer URL plus a subject). */
#define WI_REVOCATION_VALUE_MAX 4096
/* Revocations in force at once, across kinds.  Entries expire with the
 * tokens they affect (minutes) and are pruned, so this bounds memory only
 * under abuse (about 100 MB at typical value sizes); beyond it an add fails
 * instead of being silently dropped. */
#define WI_REVOCATIONS_MAX 1000000

/* --- Limits against a hostile local user (core/ratelimit.c, issue 5 item 7).
 * Per-identity token buckets on the Workload API (FetchJWTSVID,
 * ValidateJWTSVID, and opening an X.509-SVID / X.509-bundle / JWT-bundle
 * stream), keyed by the caller's default SPIFFE ID ("uid:<n>" when it holds
 * none).  500/s is SPIRE's per-agent signing limit (SignLimitPerIP) given to
 * each identity; a well-behaved workload asks a few times per SVID lifetime,
 * so it never comes close.  The burst covers a service starting hundreds of
 * workers at once.  The buckets are work-conserving (WI_RATELIMIT_CONTENDED):
 * they bite only while another identity is asking, so a lone caller (a
 * benchmark on an idle node) runs at full speed and a flooding one is held to
 * its share as soon as somebody else needs the daemon. */
#define WI_WL_RATE_PER_IDENTITY 500.0
#define WI_WL_RATE_BURST 1000.0
/* /token of the Transaction Token Service, per authenticated actor:
 * exchanges cost a verify and a sign (about 0.2 ms of CPU each). */
#define WI_TTS_RATE_PER_ACTOR 500.0
#define WI_TTS_RATE_BURST 1000.0
/* Buckets kept per limiter (bounded memory: about 100 bytes each plus the
 * key); above the number of identities a node serves at once. */
#define WI_RATELIMIT_SLOTS 4096
/* A key over budget is refused while another key asked this recently. */
#define WI_RATELIMIT_CONTENTION_MS 1000
/* Server streams (FetchX509SVID, FetchX509Bundles, FetchJWTBundles, Health
 * Watch) open at once on one connection; a client needs one per method.
 * More are refused with RESOURCE_EXHAUSTED. */
#define WI_STREAMS_PER_CONNECTION_MAX 64

/* Idle signing contexts kept per signer (core/signer.c): one per thread that
 * signs at once is enough (gRPC workers + the thread pool). */
#define WI_SIGNER_CTX_POOL_MAX 16

/* Verification contexts cached per thread (core/jws.c), keyed by key and
 * algorithm; each holds a reference to its public key. */
#define WI_JWS_VERIFY_CACHE_MAX 8

#endif
