/* wimse/watch.h — watching the caller's X.509 context (SPIFFE Workload API
 * FetchX509SVID stream) and keeping the latest one at hand.
 *
 * A wimse_x509_source runs one background thread with its own gRPC channel
 * and completion queue.  It keeps the FetchX509SVID stream open; every
 * message (the full state: SVIDs and bundles) is validated, turned into an
 * immutable, reference-counted snapshot and swapped in atomically, so readers
 * (wimse_x509_source_get, TLS handshakes of wimse/mtls.h) never wait for the
 * updater and an updater never waits for a reader.
 *
 * Reconnection (SPIFFE Workload API §5.2: clients reconnect when the server
 * closes the stream; behaviour of py-spiffe/go-spiffe):
 *   - UNAVAILABLE, a stream the server ended, and any other status: retry after
 *     an exponential backoff, 100 ms doubling to 5 s, each delay jittered by
 *     ±20 %; a received message resets the backoff.
 *   - PERMISSION_DENIED: the snapshot is dropped at once (Workload API §5.3:
 *     stop using SVIDs from that stream), the callback is told, and the
 *     source keeps retrying with backoff (an entry may come back).
 *   - INVALID_ARGUMENT and UNIMPLEMENTED: the source stops for good (a retry
 *     would get the same answer); the last snapshot, if any, stays available.
 *   - A message that breaks the X509-SVID rules is discarded (Workload API
 *     §5.1) and reported; the stream stays open and the previous snapshot
 *     stays current.
 *
 * Errors: functions that can fail return 0 or a negative code; the reason is
 * available from wimse_last_error() on the calling thread. */
#ifndef WIMSE_WATCH_H
#define WIMSE_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "wimse/wimse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the fallible functions of libwimse's headers: ignoring their result
 * is a bug (STYLE §4). */
#ifndef WIMSE_WUR
#define WIMSE_WUR __attribute__((warn_unused_result))
#endif

typedef struct wimse_x509_source wimse_x509_source;

/* An immutable X.509 context held by a source.  It is reference-counted and
 * separate from the wimse_x509_context that wimse_fetch_x509_context returns:
 * read its SVIDs through wimse_x509_snapshot_context(), release it with
 * wimse_x509_snapshot_unref(), and never pass that view to
 * wimse_x509_context_free(). */
typedef struct wimse_x509_snapshot wimse_x509_snapshot;

/* Takes another reference; returns `s`.  Accepts NULL. */
wimse_x509_snapshot *wimse_x509_snapshot_ref(wimse_x509_snapshot *s);
/* Drops a reference; the last one frees the snapshot and wipes its private
 * keys.  Accepts NULL. */
void wimse_x509_snapshot_unref(wimse_x509_snapshot *s);

/* The SVIDs (svids[0] is the default identity) as plain fields, owned by the
 * snapshot and valid while it is referenced.  The key bytes are secret. */
const wimse_x509_context *wimse_x509_snapshot_context(const wimse_x509_snapshot *s);
/* The SVID whose SPIFFE ID equals `spiffe_id`, or the default SVID when
 * `spiffe_id` is NULL; NULL when there is none.  Owned by the snapshot. */
const wimse_x509_svid *wimse_x509_snapshot_svid(const wimse_x509_snapshot *s, const char *spiffe_id);
/* The X.509 bundle (concatenated DER CA certificates) of `trust_domain`
 * ("example.org" or "spiffe://example.org"): the own trust domain's bundle
 * from the SVIDs, or a federated bundle.  WI_E_NOT_FOUND if the snapshot has
 * none: a peer of that trust domain must then be treated as untrusted. */
int wimse_x509_snapshot_bundle(const wimse_x509_snapshot *s, const char *trust_domain, const uint8_t **ret_der,
			       size_t *ret_len) WIMSE_WUR;
/* Increases by one with every snapshot a source installs (1 for the first). */
uint64_t wimse_x509_snapshot_generation(const wimse_x509_snapshot *s);

/* What happened; see wimse_x509_update. */
typedef enum wimse_x509_event {
	/* A new snapshot is current (update.snapshot is it). */
	WIMSE_X509_UPDATED = 1,
	/* PERMISSION_DENIED: the current snapshot was dropped; stop using its
	 * SVIDs.  update.snapshot is NULL.  The source keeps retrying. */
	WIMSE_X509_DROPPED = 2,
	/* A transient failure (stream ended, UNAVAILABLE, an invalid message, or
	 * PERMISSION_DENIED again while no snapshot is held); the current
	 * snapshot, if any, is unchanged.  The source keeps retrying. */
	WIMSE_X509_ERROR = 3,
	/* INVALID_ARGUMENT or UNIMPLEMENTED: the source stopped and will not
	 * retry; update.snapshot is the last snapshot (may be NULL). */
	WIMSE_X509_STOPPED = 4,
} wimse_x509_event;

typedef struct wimse_x509_update {
	wimse_x509_event event;
	/* Borrowed for the duration of the callback; take a reference with
	 * wimse_x509_snapshot_ref() to keep it. */
	wimse_x509_snapshot *snapshot;
	int grpc_status;    /* status that ended the stream (0 if none) */
	const char *detail; /* one line, for logs; never NULL */
} wimse_x509_update;

/* Called on the source's thread (or, for a static source, on the thread that
 * calls wimse_x509_source_set_static), one call at a time.  It must not block
 * for long and must not call wimse_x509_source_free on its own source. */
typedef void (*wimse_x509_source_cb)(const wimse_x509_update *update, void *userdata);

typedef struct wimse_x509_source_options {
	const char *address;          /* "unix:///abs/path"; NULL: SPIFFE_ENDPOINT_SOCKET */
	wimse_x509_source_cb callback; /* may be NULL; installed before the thread starts */
	void *userdata;
	int backoff_initial_ms; /* 0: 100 */
	int backoff_max_ms;     /* 0: 5000 */
} wimse_x509_source_options;

/* Starts watching the Workload API at `address` ("unix:///abs/path"; NULL
 * means SPIFFE_ENDPOINT_SOCKET).  Returns at once; use wimse_x509_source_wait
 * for the first snapshot.  On failure no thread runs and no callback is made. */
int wimse_x509_source_new(const char *address, wimse_x509_source **ret) WIMSE_WUR;
int wimse_x509_source_new_with(const wimse_x509_source_options *opts, wimse_x509_source **ret) WIMSE_WUR;

/* A source without a daemon, fed by the caller (tests, or SVIDs obtained by
 * other means).  `ctx` is validated like a stream message and copied; it
 * becomes snapshot 1. */
int wimse_x509_source_new_static(const wimse_x509_context *ctx, wimse_x509_source **ret) WIMSE_WUR;
/* Installs a copy of `ctx` as the next snapshot of a static source (a
 * rotation) and runs the callback; NULL drops the snapshot (like
 * PERMISSION_DENIED: WIMSE_X509_DROPPED if one was held).  WI_E_INVAL on a
 * watching source. */
int wimse_x509_source_set_static(wimse_x509_source *src, const wimse_x509_context *ctx) WIMSE_WUR;

/* Replaces the callback (NULL removes it).  When this returns, the previous
 * callback is not running and will not be called again.  No call is made for
 * the snapshot that is already current: read it with wimse_x509_source_get. */
void wimse_x509_source_set_callback(wimse_x509_source *src, wimse_x509_source_cb cb, void *userdata);

/* Waits until the source has a snapshot, at most timeout_ms (< 0: no limit).
 * WI_E_UNAVAILABLE on timeout, with the last stream error in the reason;
 * WI_E_PERMISSION if the last answer was PERMISSION_DENIED; the stop
 * reason's code if the source stopped without a snapshot. */
int wimse_x509_source_wait(wimse_x509_source *src, int timeout_ms) WIMSE_WUR;

/* A new reference to the current snapshot (release with
 * wimse_x509_snapshot_unref).  Never blocks on the updater.  Fails when there
 * is no snapshot (not yet, or dropped after PERMISSION_DENIED). */
int wimse_x509_source_get(wimse_x509_source *src, wimse_x509_snapshot **ret) WIMSE_WUR;

/* 0 while the source is watching (or static); the error code once it has
 * stopped for good (INVALID_ARGUMENT, UNIMPLEMENTED). */
int wimse_x509_source_status(wimse_x509_source *src);

/* Reference counting for code that shares a source (the TLS contexts of
 * wimse/mtls.h do).  wimse_x509_source_unref releases a reference taken with
 * wimse_x509_source_ref and leaves the callback alone; the last reference
 * stops and joins the thread.  Both accept NULL. */
wimse_x509_source *wimse_x509_source_ref(wimse_x509_source *src);
void wimse_x509_source_unref(wimse_x509_source *src);

/* Removes the callback and releases the caller's reference.  When this
 * returns no callback runs any more.  TLS contexts built from the source
 * (wimse/mtls.h) hold references of their own, so the source keeps watching
 * (and they keep rotating) until the last of them is freed too; then the
 * thread is stopped and joined.  Accepts NULL. */
void wimse_x509_source_free(wimse_x509_source *src);

#ifdef __cplusplus
}
#endif

#endif
