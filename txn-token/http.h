/* txn-token/http.h — the Transaction Token Service's HTTP front end: libh2o
 * (the libuv build) on the daemon's loop, serving HTTP/1.1 on a Unix socket
 * (callers attested like Workload API callers) and, when configured,
 * HTTPS on TCP where the client may present an X.509-SVID.
 *
 * Threading: the daemon's loop only accepts (and, on the Unix socket, reads
 * the caller's credentials); each accepted connection is handed to one of the
 * server's worker threads (the one holding the fewest connections), each with
 * its own libuv loop and h2o context.  A worker parses, runs the application
 * handler in place and answers, so a request costs no thread hand-off; only a
 * new connection crosses threads.  Handlers run on several workers at once.
 *
 * Bounds (hostile clients): body size (413 beyond, checked before buffering
 * the whole body when Content-Length says so), header size, connections at
 * once (new ones closed beyond), idle/slow-client timeout.  Every error
 * response is RFC 6749 §5.2 JSON with Cache-Control: no-store. */
#ifndef WI_TXN_TOKEN_HTTP_H
#define WI_TXN_TOKEN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "attestors/peer.h"
#include "core/error.h"

typedef enum wi_http_authn {
	WI_HTTP_AUTHN_UNIX = 1, /* Unix socket: `peer` is set */
	WI_HTTP_AUTHN_TLS = 2,  /* TLS: `tls_peer_id` set when the client presented a verified SVID */
	WI_HTTP_AUTHN_TCP = 3,  /* plain TCP (tcp_listen): nothing is known of the caller */
} wi_http_authn;

/* Who sent a request, as the transport established it. */
typedef struct wi_http_caller {
	wi_http_authn authn;
	const wi_peer *peer;     /* Unix: credentials captured at accept (pidfd etc.) */
	const char *tls_peer_id; /* TLS: the SPIFFE ID of the verified client certificate, or NULL */
} wi_http_caller;

typedef struct wi_http_request {
	const char *method; /* "GET", "POST", ... NUL-terminated copies */
	const char *path;   /* without the query string */
	const char *query;  /* after '?', or "" */
	const char *content_type; /* media type without parameters, lowercase, or "" */
	const uint8_t *body;
	size_t body_len;
	const wi_http_caller *caller;
} wi_http_request;

typedef struct wi_http_response {
	int status;               /* default 200 */
	const char *content_type; /* static string; default "application/json" */
	char *body;               /* malloc'd by the handler; freed by the server */
	size_t body_len;
	bool no_store;            /* adds Cache-Control: no-store and Pragma: no-cache */
	const char *allow;        /* for 405: the Allow header value (static) */
} wi_http_response;

/* Runs on one of the server's worker threads, several at once.  Must fill
 * `resp`; must not keep pointers into `req` after returning.  A handler that
 * blocks (a JWKS fetch, bounded by its own timeouts) delays only the other
 * connections of its worker. */
typedef void (*wi_http_handler)(void *ud, const wi_http_request *req, wi_http_response *resp);

typedef struct wi_tts_http_options {
	uv_loop_t *loop;
	const char *unix_socket_path; /* NULL: no Unix listener */
	unsigned unix_socket_mode;    /* e.g. 0777 for the exchange socket, 0600 for admin */
	const char *tls_listen;       /* "127.0.0.1:8443" / "[::1]:8443", or NULL */
	SSL_CTX *tls_ctx;             /* borrowed; required with tls_listen */
	const char *tcp_listen;       /* plain HTTP on TCP (no TLS, anonymous callers: serve
					 only public data), "127.0.0.1:9464" / "[::1]:9464", or NULL */
	wi_http_handler handler;
	void *handler_ud;
	size_t max_body;          /* e.g. 64 KiB */
	size_t max_connections;   /* per listener (Unix, TLS, TCP): one cannot starve another */
	size_t max_per_peer;      /* per uid (Unix) or address (TCP: IPv4, IPv6 /64) on a
				     listener, 0: none; so no one peer takes them all */
	uint64_t io_timeout_ms;   /* idle and slow-client timeout */
	unsigned workers;         /* worker threads; 0: one per online CPU (at most
				     WI_HTTP_WORKERS_MAX) */
} wi_tts_http_options;

typedef struct wi_tts_http wi_tts_http;

/* Binds the listeners (a stale Unix socket file is replaced; another kind of
 * file is an error) and starts accepting on the loop. */
int wi_tts_http_start(const wi_tts_http_options *opts, wi_tts_http **ret) WI_WUR;
/* Stops accepting and closes connections; a request being handled is
 * answered first (its connection then closes).  The workers finish on their
 * own threads; the object is freed from its last close callback on the loop
 * (so call it on the loop, then run the loop until it is idle). */
void wi_tts_http_stop(wi_tts_http *h);

/* Fills an RFC 6749 §5.2 error response: {"error":..., "error_description":...}
 * with no-store.  `description` must not contain token material. */
void wi_http_oauth_error(wi_http_response *resp, int status, const char *error, const char *description);

#endif
