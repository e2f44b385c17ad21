/* daemon/metrics.h — the operator's view of a running wimsed:
 * Prometheus text metrics (GET /metrics, exposition format 0.0.4), a JSON
 * status document (GET /status) and, when given, the registration-entry
 * routes under /entries (daemon/admin_entries.h), served over HTTP/1.1 on the admin Unix
 * socket `<directory of workload_socket>/admin.sock`, mode 0600 (the
 * operator's uid only; a peer of another uid is also refused with 403 should
 * the mode ever be widened).
 *
 * Requests are answered on the libuv thread pool (txn-token/http.h), so the
 * handler reads only thread-safe accessors of the objects it borrows.
 * start/stop on the loop thread. */
#ifndef WI_DAEMON_METRICS_H
#define WI_DAEMON_METRICS_H

#include <stddef.h>

#include <uv.h>

#include "attestors/attest.h"
#include "core/ca.h"
#include "core/error.h"
#include "core/jwt_keys.h"
#include "daemon/admin_entries.h"
#include "txn-token/revocations.h"
#include "txn-token/service.h"
#include "workload-api/server.h"

typedef struct wi_daemon_metrics_options {
	uv_loop_t *loop;
	const char *workload_socket; /* the admin socket goes next to it */
	const char *trust_domain;    /* copied */
	wi_wl_server *wl;            /* borrowed, like the rest: must outlive */
	wi_attestor *attestor;       /*   wi_daemon_metrics_free */
	wi_ca *ca;
	wi_jwt_keys *jwt_keys;
	wi_revocations *revocations; /* NULL without a token service */
	wi_admin_entries *entries;   /* NULL: no /entries routes (daemon/admin_entries.h) */
	wi_tts *tts;                 /* NULL without a token service */
	wi_jwt_keys *txn_keys;       /* Txn-Token keys; NULL without a token service */
	const char *metrics_listen;  /* "127.0.0.1:9464" / "[::1]:9464": plain-HTTP GET
					/metrics only (never /status); NULL = off */
} wi_daemon_metrics_options;

typedef struct wi_daemon_metrics wi_daemon_metrics;

/* `<dir of workload_socket>/admin.sock` ("admin.sock" when it has no
 * directory) into buf; -1 when it does not fit. */
int wi_daemon_metrics_admin_path(const char *workload_socket, char *buf, size_t size) WI_WUR;

/* Binds the admin socket (replacing a stale socket file) and serves. */
int wi_daemon_metrics_start(const wi_daemon_metrics_options *opts, wi_daemon_metrics **ret) WI_WUR;
/* Stops accepting and closes connections (handles close on the loop); the
 * socket file is removed.  Accepts NULL. */
void wi_daemon_metrics_stop(wi_daemon_metrics *m);
/* After the loop has drained.  Accepts NULL; returns NULL. */
wi_daemon_metrics *wi_daemon_metrics_free(wi_daemon_metrics *m);

#endif
