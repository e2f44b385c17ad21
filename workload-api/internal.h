/* workload-api/internal.h — shared between the files of the workload-api
 * module: the server body, the call object and the handler entry points. */
#ifndef WI_WORKLOAD_API_INTERNAL_H
#define WI_WORKLOAD_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <grpc/grpc.h>

#include "attestors/attest.h"
#include "core/ca.h"
#include "core/jwt_cache.h"
#include "core/ratelimit.h"
#include "core/registry.h"
#include "core/verified_cache.h"
#include "core/x509_cache.h"
#include "workload-api/conns.h"
#include "workload-api/request.h"
#include "workload-api/rpc_stats.h"
#include "workload-api/server.h"

typedef enum wi__method {
	WI__M_UNKNOWN = 0,
	WI__M_FETCH_X509_SVID,
	WI__M_FETCH_X509_BUNDLES,
	WI__M_FETCH_JWT_SVID,
	WI__M_FETCH_JWT_BUNDLES,
	WI__M_VALIDATE_JWT_SVID,
	WI__M_FETCH_WIT_SVID,
	WI__M_FETCH_WIT_BUNDLES,
	WI__M_HEALTH_CHECK,
	WI__M_HEALTH_WATCH,
} wi__method;

typedef struct wi__call wi__call;
typedef void (*wi__step)(wi__call *c, bool ok);
/* Builds a stream's full-state message for the call's current identities.
 * Sets *ret_secret when the payload holds private keys, and *ret_next to the
 * time the message should be rebuilt (0 = only on events). */
typedef int (*wi__builder)(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			   time_t *ret_next);

/* A completion-queue tag: the call it belongs to and what to do next. */
typedef struct wi__tag {
	wi__call *call;
	wi__step step;
} wi__tag;

struct wi__call {
	wi_wl_server *srv;
	atomic_int refs; /* one per outstanding batch, plus the handler's */
	grpc_call *gc;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv_bb;
	int cancelled;
	wi__method method;
	const char *method_name;
	wi__conn *conn;
	wi__tag t_new, t_recv, t_send, t_close;
	wi__rpc_mark rpc; /* metrics: counted and timed once */
	grpc_slice status_details;
	/* streams: the list links are guarded by the server's streams_lock */
	bool is_stream_open; /* registered in the server's stream list */
	bool counts_stream;  /* limits: counted in conn->streams (under streams_lock) */
	wi__call *prev, *next;
	/* stream state, guarded by send_lock */
	pthread_mutex_t send_lock;
	bool initial_md_sent; /* SEND_INITIAL_METADATA may go out only once */
	bool send_busy;       /* one SEND_MESSAGE in flight at a time */
	bool send_dirty;      /* state changed while a send was in flight */
	bool done;            /* the call is over; send nothing more */
	wi__tag t_stream_send;
	wi__builder build;
	wi_selector_set *sel; /* attested when the stream opened */
	wi_registry *reg;     /* the snapshot `ids` were matched in */
	wi_identities *ids;
	time_t next_refresh;
	uint64_t bundle_gen; /* of the bundle in the last message; 0 = none */
};

struct wi_wl_server {
	char *socket_path;
	int listen_fd;
	int64_t default_ttl;
	wi_attestor *attestor;
	wi_ca *ca;
	wi_x509_cache *x509_cache;
	wi_jwt_keys *jwt_keys;
	wi_jwt_cache *jwt_cache;
	wi_verified_cache *validated; /* ValidateJWTSVID: tokens that passed, by digest */
	int64_t jwt_ttl;
	wi__conns *conns;
	/* limits: per-identity request budget (FetchJWTSVID, ValidateJWTSVID,
	 * stream opens), checked in wi__call_identities */
	wi_ratelimit *ratelimit;

	pthread_mutex_t reg_lock; /* guards `registry` pointer swaps */
	wi_registry *registry;

	grpc_server *server;
	grpc_completion_queue *cq;
	grpc_server_credentials *creds;
	pthread_t *threads;
	int n_threads;
	atomic_bool stopping;
	atomic_bool not_serving; /* health: NOT_SERVING (e.g. the state disk is unwritable) */
	bool stopped;
	bool grpc_inited;
	wi__tag shutdown_tag;
	pthread_mutex_t shutdown_lock;
	pthread_cond_t shutdown_cond;
	bool shutdown_done; /* the shutdown tag came back */
	size_t live_calls;  /* wi__call objects not yet freed (under shutdown_lock) */

	pthread_mutex_t streams_lock;
	wi__call *streams; /* open server streams */
	atomic_uint_fast64_t n_streams;

	atomic_uint_fast64_t accepted, refused, calls;
	wi__rpc_stats rpc_stats; /* metrics (rpc_stats.h) */
};

/* Current registry snapshot, referenced. */
wi_registry *wi__server_registry(wi_wl_server *s);

/* Handlers: each finishes the call (status, or first stream message).
 * `req` is the request payload (already size-checked). */
void wi__handle_fetch_x509_svid(wi__call *c, const uint8_t *req, size_t len);
void wi__handle_fetch_x509_bundles(wi__call *c, const uint8_t *req, size_t len);
void wi__handle_health_check(wi__call *c, const uint8_t *req, size_t len);
void wi__handle_fetch_jwt_svid(wi__call *c, const uint8_t *req, size_t len);
void wi__handle_fetch_jwt_bundles(wi__call *c, const uint8_t *req, size_t len);
void wi__handle_validate_jwt_svid(wi__call *c, const uint8_t *req, size_t len);
/* Unpacks a handler's request strictly (request.h); on failure logs it,
 * finishes the call with INVALID_ARGUMENT and returns < 0 (handlers.c). */
int wi__call_unpack(wi__call *c, const ProtobufCMessageDescriptor *desc, const uint8_t *req, size_t len,
		    ProtobufCMessage **ret) WI_WUR;

/* Finishing helpers (server.c). */
void wi__call_finish(wi__call *c, grpc_status_code code, const char *msg);
/* Sends the one message of a unary call with OK status.  Takes `payload`;
 * `secret` (it holds bearer tokens or keys): wiped when gRPC releases it. */
void wi__call_reply(wi__call *c, uint8_t *payload, size_t len, bool secret);
/* Opens a server stream: the call takes `sel`, `reg` and `ids`, registers
 * in the stream list, and sends the first message built by `build` at once
 * (Workload API §5); later messages follow rotation and registry changes.
 * A connection already holding WI_STREAMS_PER_CONNECTION_MAX streams gets
 * RESOURCE_EXHAUSTED instead (the call still takes sel, reg and ids). */
void wi__stream_start(wi__call *c, wi__builder build, wi_selector_set *sel, wi_registry *reg,
		      wi_identities *ids);

/* Attests the caller and, when it holds an identity, starts the stream
 * (handlers.c).  On refusal the call is finished with the right status. */
void wi__stream_open(wi__call *c, wi__builder build);

/* Attests the caller of `c` and matches its identities (never empty), then
 * takes one token from the per-identity rate limit (key: the default, i.e.
 * first, identity's SPIFFE ID; "uid:<n>" for a caller holding none).
 * On failure the call is finished with the right status (RESOURCE_EXHAUSTED
 * over the limit) and a negative code is returned.  ret_sel and ret_reg are
 * optional. */
int wi__call_identities(wi__call *c, wi_identities **ret_ids, wi_selector_set **ret_sel, wi_registry **ret_reg);

/* Builders (handlers.c). */
int wi__build_x509_svid(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			time_t *ret_next);
int wi__build_x509_bundles(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			   time_t *ret_next);
int wi__build_jwt_bundles(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			  time_t *ret_next);

#endif
