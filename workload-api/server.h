/* workload-api/server.h — the SPIFFE Workload API server (DESIGN §3).
 *
 * We accept connections on the Unix socket ourselves, read the peer's
 * credentials (attestors/peer.h), make the fd non-blocking and hand it to gRPC
 * C core with grpc_server_add_channel_from_fd; gRPC then names each call's peer
 * "fd:<n>", which maps the call back to our connection record.  Calls are
 * served by `threads` workers on one completion queue.
 *
 * Threading contract: wi_wl_server_accept, _sweep, _set_registry and _stop are
 * called from the daemon's loop thread; handlers run on the worker threads. */
#ifndef WI_WORKLOAD_API_SERVER_H
#define WI_WORKLOAD_API_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "attestors/attest.h"
#include "core/ca.h"
#include "core/jwt_keys.h"
#include "core/error.h"
#include "core/registry.h"

typedef struct wi_wl_server wi_wl_server;

typedef struct wi_wl_options {
	const char *socket_path;  /* absolute; parent directory must exist */
	int threads;              /* completion-queue workers; 0 = one per core */
	int64_t default_x509_ttl; /* for entries without their own TTL */
	wi_attestor *attestor;    /* borrowed; outlives the server */
	wi_ca *ca;                /* borrowed; outlives the server */
	wi_jwt_keys *jwt_keys;    /* borrowed; outlives the server */
	int64_t jwt_ttl;          /* JWT-SVID lifetime, seconds */
	wi_registry *registry;    /* the server takes its own reference */
} wi_wl_options;

/* Binds the socket (removing a stale socket file, never another kind of
 * file), sets it to mode 0777 (access is decided by attestation, as in SPIRE),
 * and starts gRPC and the workers. */
int wi_wl_server_start(const wi_wl_options *opts, wi_wl_server **ret) WI_WUR;
/* The listening fd, to watch for readability. */
int wi_wl_server_listen_fd(const wi_wl_server *s);
/* Accepts every pending connection.  Refused peers are logged and closed. */
void wi_wl_server_accept(wi_wl_server *s);
/* Pushes new state to open streams whose SVIDs reached their refresh time
 * (rotation) or whose identities changed with the registry (ending a stream
 * with PERMISSION_DENIED when none is left).  Call about once a second. */
void wi_wl_server_tick(wi_wl_server *s);
/* Forgets connections that gRPC has closed; cheap, call every few seconds. */
void wi_wl_server_sweep(wi_wl_server *s);
/* Publishes a new registry snapshot (takes a reference). */
void wi_wl_server_set_registry(wi_wl_server *s, wi_registry *r);
/* Health as grpc.health.v1 reports it (SERVING by default).  Any thread. */
void wi_wl_server_set_serving(wi_wl_server *s, bool serving);
bool wi_wl_server_serving(wi_wl_server *s);
/* Stops accepting, ends open streams with UNAVAILABLE, waits for the workers
 * and removes the socket file. */
void wi_wl_server_stop(wi_wl_server *s);
/* Stops if needed, then frees; accepts NULL; returns NULL. */
wi_wl_server *wi_wl_server_free(wi_wl_server *s);

typedef struct wi_wl_stats {
	uint64_t connections_accepted;
	uint64_t connections_refused;
	uint64_t connections_open;
	uint64_t calls;
	uint64_t streams_open;
} wi_wl_stats;
void wi_wl_server_get_stats(wi_wl_server *s, wi_wl_stats *ret);

#endif
