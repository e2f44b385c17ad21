/* workload-api/server.c — socket, gRPC C-core plumbing and the call state
 * machine.  Handlers live in handlers.c. */
#include "workload-api/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <openssl/crypto.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"

static const struct {
	const char *path;
	wi__method m;
} methods[] = {
	{"/SpiffeWorkloadAPI/FetchX509SVID", WI__M_FETCH_X509_SVID},
	{"/SpiffeWorkloadAPI/FetchX509Bundles", WI__M_FETCH_X509_BUNDLES},
	{"/SpiffeWorkloadAPI/FetchJWTSVID", WI__M_FETCH_JWT_SVID},
	{"/SpiffeWorkloadAPI/FetchJWTBundles", WI__M_FETCH_JWT_BUNDLES},
	{"/SpiffeWorkloadAPI/ValidateJWTSVID", WI__M_VALIDATE_JWT_SVID},
	{"/SpiffeWorkloadAPI/FetchWITSVID", WI__M_FETCH_WIT_SVID},
	{"/SpiffeWorkloadAPI/FetchWITBundles", WI__M_FETCH_WIT_BUNDLES},
	{"/grpc.health.v1.Health/Check", WI__M_HEALTH_CHECK},
	{"/grpc.health.v1.Health/Watch", WI__M_HEALTH_WATCH},
};

static const char wl_prefix[] = "/SpiffeWorkloadAPI/";

/* ---- call lifetime ------------------------------------------------------ */

/* Said once per process: every connection would say it again. */
static atomic_bool said_degraded;

static void call_unref(wi__call *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (c->gc)
		grpc_call_unref(c->gc);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->recv_bb)
		grpc_byte_buffer_destroy(c->recv_bb);
	grpc_slice_unref(c->status_details);
	wi__conns_release(c->srv->conns, c->conn);
	wi_identities_free(c->ids);
	wi_registry_unref(c->reg);
	wi_selector_set_unref(c->sel);
	pthread_mutex_destroy(&c->send_lock);
	wi_wl_server *s = c->srv;
	free(c);
	pthread_mutex_lock(&s->shutdown_lock);
	if (--s->live_calls == 0)
		pthread_cond_broadcast(&s->shutdown_cond);
	pthread_mutex_unlock(&s->shutdown_lock);
}

static void call_ref(wi__call *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Starts a batch holding one reference; on failure to start, drops it. */
static void start_batch(wi__call *c, const grpc_op *ops, size_t n, wi__tag *tag)
{
	call_ref(c);
	grpc_call_error e = grpc_call_start_batch(c->gc, ops, n, tag, NULL);
	if (e != GRPC_CALL_OK) {
		wi_log(WI_LOG_ERROR, "grpc_batch_failed", "method=%s error=%d", c->method_name, (int)e);
		call_unref(c);
	}
}

static void on_new_call(wi__call *c, bool ok);

static void request_call(wi_wl_server *s)
{
	if (atomic_load(&s->stopping))
		return;
	wi__call *c = calloc(1, sizeof(*c));
	if (!c) {
		wi_log(WI_LOG_ERROR, "oom", "cannot allocate a call slot");
		return;
	}
	c->srv = s;
	pthread_mutex_lock(&s->shutdown_lock);
	s->live_calls++;
	pthread_mutex_unlock(&s->shutdown_lock);
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->send_lock, NULL);
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	c->status_details = grpc_empty_slice();
	c->t_new = (wi__tag){c, on_new_call};
	c->method_name = "?";
	grpc_call_error e = grpc_server_request_call(s->server, &c->gc, &c->details, &c->md, s->cq, s->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		wi_log(WI_LOG_ERROR, "grpc_request_call_failed", "error=%d", (int)e);
		call_unref(c);
	}
}

/* ---- finishing ------------------------------------------------------------ */

static void on_send_done(wi__call *c, bool ok)
{
	call_unref(c);
}

static void stream_close(wi__call *c)
{
	wi_wl_server *s = c->srv;
	pthread_mutex_lock(&s->streams_lock);
	if (c->is_stream_open) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->streams = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->is_stream_open = false;
		if (c->counts_stream) { /* limits */
			c->conn->streams--;
			c->counts_stream = false;
		}
		atomic_fetch_sub(&s->n_streams, 1);
		wi__rpc_stream_delta(c, -1); /* metrics */
		pthread_mutex_unlock(&s->streams_lock);
		call_unref(c); /* the stream list's reference */
		return;
	}
	pthread_mutex_unlock(&s->streams_lock);
}

static void on_close(wi__call *c, bool ok)
{
	/* The call is over: finished by us, cancelled by the client, or the
	 * connection died.  Nothing more will be sent. */
	pthread_mutex_lock(&c->send_lock);
	c->done = true;
	pthread_mutex_unlock(&c->send_lock);
	/* metrics: a call we did not finish ourselves was ended by the peer. */
	wi__rpc_end(c, c->cancelled ? GRPC_STATUS_CANCELLED : GRPC_STATUS_OK);
	stream_close(c);
	call_unref(c);
}

void wi__call_finish(wi__call *c, grpc_status_code code, const char *msg)
{
	wi__rpc_end(c, code); /* metrics */
	pthread_mutex_lock(&c->send_lock);
	bool md = !c->initial_md_sent;
	c->initial_md_sent = true;
	c->done = true;
	pthread_mutex_unlock(&c->send_lock);
	grpc_slice_unref(c->status_details);
	c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (md)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details = &c->status_details;
	n++;
	c->t_send = (wi__tag){c, on_send_done};
	start_batch(c, ops, n, &c->t_send);
}

typedef struct secret_box {
	uint8_t *p;
	size_t n;
	bool secret;
} secret_box;

static void box_destroy(void *ud)
{
	secret_box *b = ud;
	if (b->secret)
		OPENSSL_cleanse(b->p, b->n);
	free(b->p);
	free(b);
}

/* Wraps a payload in a byte buffer without copying; a secret one (private
 * keys, bearer tokens) is wiped when gRPC releases the slice.  Takes
 * `payload`; NULL on OOM. */
static grpc_byte_buffer *wrap_payload(uint8_t *payload, size_t len, bool secret)
{
	secret_box *box = malloc(sizeof(*box));
	if (!box) {
		if (secret)
			OPENSSL_cleanse(payload, len);
		free(payload);
		return NULL;
	}
	*box = (secret_box){payload, len, secret};
	grpc_slice sl = grpc_slice_new_with_user_data(payload, len, box_destroy, box);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	return bb;
}

void wi__call_reply(wi__call *c, uint8_t *payload, size_t len, bool secret)
{
	grpc_byte_buffer *bb = wrap_payload(payload, len, secret);
	if (!bb) {
		wi_log(WI_LOG_ERROR, "reply_failed", "method=%s reason=\"out of memory\"", c->method_name);
		wi__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	wi__rpc_end(c, GRPC_STATUS_OK); /* metrics */
	pthread_mutex_lock(&c->send_lock);
	c->initial_md_sent = true;
	c->done = true;
	pthread_mutex_unlock(&c->send_lock);
	grpc_op ops[3];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
	ops[2].data.send_status_from_server.status_details = &c->status_details;
	c->t_send = (wi__tag){c, on_send_done};
	start_batch(c, ops, 3, &c->t_send);
	grpc_byte_buffer_destroy(bb); /* the batch holds its own reference */
}

static void stream_push(wi__call *c);

static void on_stream_sent(wi__call *c, bool ok)
{
	pthread_mutex_lock(&c->send_lock);
	c->send_busy = false;
	if (!ok)
		c->done = true;
	bool again = c->send_dirty && !c->done;
	c->send_dirty = false;
	pthread_mutex_unlock(&c->send_lock);
	if (again)
		stream_push(c);
	call_unref(c);
}

/* Builds and sends the stream's full state, or marks it dirty when a send is
 * still in flight (gRPC allows one SEND_MESSAGE at a time per call); the
 * completion then sends the newest state. */
static void stream_push(wi__call *c)
{
	pthread_mutex_lock(&c->send_lock);
	if (c->done) {
		pthread_mutex_unlock(&c->send_lock);
		return;
	}
	if (c->send_busy) {
		c->send_dirty = true;
		pthread_mutex_unlock(&c->send_lock);
		return;
	}
	uint8_t *out = NULL;
	size_t len = 0;
	bool secret = false;
	time_t next = 0;
	int rc = c->build(c, wi_clock_now(), &out, &len, &secret, &next);
	grpc_byte_buffer *bb = rc == 0 ? wrap_payload(out, len, secret) : NULL;
	if (!bb) {
		c->done = true;
		pthread_mutex_unlock(&c->send_lock);
		wi_log(WI_LOG_ERROR, "stream_build_failed", "method=%s: %s", c->method_name,
		       rc < 0 ? wi_error_detail() : "out of memory");
		wi__rpc_end(c, rc == WI_E_TOO_BIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE);
		grpc_call_cancel_with_status(c->gc,
					     rc == WI_E_TOO_BIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE,
					     rc == WI_E_TOO_BIG ? "response too large: the caller holds too many identities"
								: "internal error; retry",
					     NULL);
		return;
	}
	c->next_refresh = next;
	if (!c->initial_md_sent)
		wi__rpc_first_message(c); /* metrics: time to first message */
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->initial_md_sent)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	c->initial_md_sent = true;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	c->send_busy = true;
	c->t_stream_send = (wi__tag){c, on_stream_sent};
	start_batch(c, ops, n, &c->t_stream_send);
	pthread_mutex_unlock(&c->send_lock);
	grpc_byte_buffer_destroy(bb);
}

void wi__stream_start(wi__call *c, wi__builder build, wi_selector_set *sel, wi_registry *reg,
		      wi_identities *ids)
{
	wi_wl_server *s = c->srv;
	c->build = build;
	c->sel = sel;
	c->reg = reg;
	c->ids = ids;
	/* --- limits: streams per connection (issue 5 item 7) */
	pthread_mutex_lock(&s->streams_lock);
	if (c->conn->streams >= WI_STREAMS_PER_CONNECTION_MAX) {
		pthread_mutex_unlock(&s->streams_lock);
		wi_log(WI_LOG_WARN, "request_refused", "method=%s pid=%d uid=%u reason=\"streams per connection limit (%d)\"",
		       c->method_name, (int)wi_peer_pid(c->conn->peer), (unsigned)wi_peer_uid(c->conn->peer),
		       WI_STREAMS_PER_CONNECTION_MAX);
		wi__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many streams open on this connection");
		return;
	}
	c->conn->streams++;
	c->counts_stream = true;
	/* --- end limits */
	call_ref(c); /* the stream list's reference */
	c->is_stream_open = true;
	c->prev = NULL;
	c->next = s->streams;
	if (s->streams)
		s->streams->prev = c;
	s->streams = c;
	atomic_fetch_add(&s->n_streams, 1);
	wi__rpc_stream_delta(c, 1); /* metrics */
	pthread_mutex_unlock(&s->streams_lock);
	/* The client may have gone before we registered: on_close then found
	 * nothing to remove, so remove it here (stream_close is idempotent). */
	pthread_mutex_lock(&c->send_lock);
	bool done = c->done;
	pthread_mutex_unlock(&c->send_lock);
	if (done) {
		stream_close(c);
		return;
	}
	stream_push(c);
}

/* The generation of the bundle a stream's messages carry: the CA's for the
 * X.509 streams, the JWT keys' for FetchJWTBundles. */
typedef struct bundle_gens {
	uint64_t ca, jwt;
} bundle_gens;

static bundle_gens current_gens(wi_wl_server *s)
{
	wi_ca_snapshot *cas = wi_ca_snapshot_get(s->ca);
	wi_jwt_keyset *ks = wi_jwt_keys_get(s->jwt_keys);
	bundle_gens g = {wi_ca_snapshot_generation(cas), wi_jwt_keyset_generation(ks)};
	wi_ca_snapshot_unref(cas);
	wi_jwt_keyset_unref(ks);
	return g;
}

/* Whether the stream's last message carries an outdated bundle (guarded by
 * the caller holding send_lock). */
static bool bundle_stale(const wi__call *c, bundle_gens g)
{
	if (!c->bundle_gen)
		return false;
	return c->bundle_gen != (c->method == WI__M_FETCH_JWT_BUNDLES ? g.jwt : g.ca);
}

/* Re-evaluates one stream after time passed or the registry changed. */
static void stream_update(wi__call *c, wi_registry *reg, time_t now, bundle_gens g)
{
	pthread_mutex_lock(&c->send_lock);
	bool done = c->done;
	bool rematch = c->reg != reg;
	bool due = (c->next_refresh && now >= c->next_refresh) || bundle_stale(c, g);
	pthread_mutex_unlock(&c->send_lock);
	if (done)
		return;
	if (rematch) {
		wi_identities *ids = NULL;
		if (wi_registry_match(reg, c->sel, &ids) < 0) {
			wi_log(WI_LOG_ERROR, "rematch_failed", "%s", wi_error_detail());
			return;
		}
		if (wi_identities_count(ids) == 0) {
			/* Workload API §5: identities gone → PermissionDenied; the
			 * client drops what it received on this stream. */
			wi_identities_free(ids);
			wi_log(WI_LOG_INFO, "stream_revoked", "method=%s pid=%d reason=\"no identity left\"",
			       c->method_name, c->conn ? (int)wi_peer_pid(c->conn->peer) : 0);
			pthread_mutex_lock(&c->send_lock);
			c->done = true;
			pthread_mutex_unlock(&c->send_lock);
			wi__rpc_end(c, GRPC_STATUS_PERMISSION_DENIED); /* metrics */
			grpc_call_cancel_with_status(c->gc, GRPC_STATUS_PERMISSION_DENIED, "no identity issued", NULL);
			return;
		}
		pthread_mutex_lock(&c->send_lock);
		bool changed = !wi_identities_equal(ids, c->ids);
		wi_registry_unref(c->reg);
		c->reg = wi_registry_ref(reg);
		if (changed) {
			wi_identities_free(c->ids);
			c->ids = ids;
			ids = NULL;
		}
		pthread_mutex_unlock(&c->send_lock);
		wi_identities_free(ids);
		if (changed)
			due = true;
	}
	if (due)
		stream_push(c);
}

void wi_wl_server_tick(wi_wl_server *s)
{
	time_t now = wi_clock_now();
	_cleanup_(wi_registry_unrefp) wi_registry *reg = wi__server_registry(s);
	bundle_gens g = current_gens(s);
	/* Take references under the list lock, work outside it: stream pushes
	 * mint and pack, and must not block streams opening or closing. */
	size_t n = 0, cap = 0;
	wi__call **due = NULL;
	pthread_mutex_lock(&s->streams_lock);
	for (wi__call *c = s->streams; c; c = c->next) {
		pthread_mutex_lock(&c->send_lock);
		bool want = !c->done && (c->reg != reg || (c->next_refresh && now >= c->next_refresh) ||
					 bundle_stale(c, g));
		pthread_mutex_unlock(&c->send_lock);
		if (!want)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			wi__call **nd = realloc(due, nc * sizeof(*nd));
			if (!nd)
				break; /* the rest waits for the next tick */
			due = nd;
			cap = nc;
		}
		call_ref(c);
		due[n++] = c;
	}
	pthread_mutex_unlock(&s->streams_lock);
	for (size_t i = 0; i < n; i++) {
		stream_update(due[i], reg, now, g);
		call_unref(due[i]);
	}
	free(due);
}

/* ---- dispatch --------------------------------------------------------------- */

wi_registry *wi__server_registry(wi_wl_server *s)
{
	pthread_mutex_lock(&s->reg_lock);
	wi_registry *r = wi_registry_ref(s->registry);
	pthread_mutex_unlock(&s->reg_lock);
	return r;
}

/* Workload Endpoint §4: exactly one `workload.spiffe.io` value, "true". */
static bool security_header_ok(const grpc_metadata_array *md)
{
	int seen = 0;
	bool ok = false;
	for (size_t i = 0; i < md->count; i++) {
		if (grpc_slice_str_cmp(md->metadata[i].key, "workload.spiffe.io") == 0) {
			seen++;
			ok = grpc_slice_str_cmp(md->metadata[i].value, "true") == 0;
		}
	}
	return seen == 1 && ok;
}

static void on_recv(wi__call *c, bool ok)
{
	if (!ok || !c->recv_bb) {
		/* The client half-closed without a request, or the call died. */
		if (ok) {
			wi_log(WI_LOG_WARN, "bad_request", "method=%s reason=\"missing request message\"",
			       c->method_name);
			wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "missing request message");
		}
		call_unref(c);
		return;
	}
	size_t len = grpc_byte_buffer_length(c->recv_bb);
	if (len > WI_GRPC_REQUEST_MAX) {
		wi_log(WI_LOG_WARN, "request_too_large", "method=%s bytes=%zu", c->method_name, len);
		wi__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "request too large");
		call_unref(c);
		return;
	}
	grpc_byte_buffer_reader rd;
	if (!grpc_byte_buffer_reader_init(&rd, c->recv_bb)) {
		wi_log(WI_LOG_WARN, "bad_request", "method=%s reason=\"unreadable request\"", c->method_name);
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "unreadable request");
		call_unref(c);
		return;
	}
	grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	const uint8_t *p = GRPC_SLICE_START_PTR(all);
	size_t n = GRPC_SLICE_LENGTH(all);
	switch (c->method) {
	case WI__M_FETCH_X509_SVID:
		wi__handle_fetch_x509_svid(c, p, n);
		break;
	case WI__M_FETCH_X509_BUNDLES:
		wi__handle_fetch_x509_bundles(c, p, n);
		break;
	case WI__M_HEALTH_CHECK:
		wi__handle_health_check(c, p, n);
		break;
	case WI__M_FETCH_JWT_SVID:
		wi__handle_fetch_jwt_svid(c, p, n);
		break;
	case WI__M_FETCH_JWT_BUNDLES:
		wi__handle_fetch_jwt_bundles(c, p, n);
		break;
	case WI__M_VALIDATE_JWT_SVID:
		wi__handle_validate_jwt_svid(c, p, n);
		break;
	default:
		wi__call_finish(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented");
		break;
	}
	/* readall made this copy; a request may carry a bearer token
	 * (ValidateJWTSVID), so every one is wiped (STYLE §10; a few hundred
	 * bytes). */
	OPENSSL_cleanse(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
	grpc_slice_unref(all);
	call_unref(c);
}

static void on_new_call(wi__call *c, bool ok)
{
	wi_wl_server *s = c->srv;
	if (!ok) {
		/* Server shutting down: the slot comes back unused. */
		call_unref(c);
		return;
	}
	wi__rpc_begin(c); /* metrics */
	request_call(s); /* keep the pool of pending slots full */
	atomic_fetch_add(&s->calls, 1);

	c->method = WI__M_UNKNOWN;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (grpc_slice_str_cmp(c->details.method, methods[i].path) == 0) {
			c->method = methods[i].m;
			c->method_name = methods[i].path;
			break;
		}
	}

	/* Learn when the call ends, whatever happens next. */
	grpc_op close_op;
	memset(&close_op, 0, sizeof(close_op));
	close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	close_op.data.recv_close_on_server.cancelled = &c->cancelled;
	c->t_close = (wi__tag){c, on_close};
	start_batch(c, &close_op, 1, &c->t_close);

	bool is_wl = GRPC_SLICE_LENGTH(c->details.method) >= sizeof(wl_prefix) - 1 &&
		     memcmp(GRPC_SLICE_START_PTR(c->details.method), wl_prefix, sizeof(wl_prefix) - 1) == 0;
	if (is_wl && !security_header_ok(&c->md)) {
		/* Checked before any attestation, for every Workload API method. */
		wi_log(WI_LOG_WARN, "security_header_missing", "method=%.*s",
		       (int)(GRPC_SLICE_LENGTH(c->details.method) > 128 ? 128 : GRPC_SLICE_LENGTH(c->details.method)),
		       (const char *)GRPC_SLICE_START_PTR(c->details.method));
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "security header missing from request");
		call_unref(c);
		return;
	}
	switch (c->method) {
	case WI__M_FETCH_X509_SVID:
	case WI__M_FETCH_X509_BUNDLES:
	case WI__M_FETCH_JWT_SVID:
	case WI__M_FETCH_JWT_BUNDLES:
	case WI__M_VALIDATE_JWT_SVID:
	case WI__M_HEALTH_CHECK:
		break;
	case WI__M_FETCH_WIT_SVID:
	case WI__M_FETCH_WIT_BUNDLES:
		/* Workload API §7: servers without the WIT profile answer Unimplemented. */
		wi__call_finish(c, GRPC_STATUS_UNIMPLEMENTED, "WIT-SVIDs are not supported");
		call_unref(c);
		return;
	default:
		wi__call_finish(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented");
		call_unref(c);
		return;
	}

	grpc_op recv_op;
	memset(&recv_op, 0, sizeof(recv_op));
	recv_op.op = GRPC_OP_RECV_MESSAGE;
	recv_op.data.recv_message.recv_message = &c->recv_bb;
	c->t_recv = (wi__tag){c, on_recv};
	start_batch(c, &recv_op, 1, &c->t_recv);
	call_unref(c); /* the handler's reference; batches hold their own */
}

/* limits: one log line per refusal; the key is a SPIFFE ID or uid, not a secret. */
static void rate_limited(wi__call *c, const wi_peer *p, const char *key)
{
	wi_log(WI_LOG_WARN, "request_refused", "method=%s pid=%d uid=%u caller=%s reason=\"rate limit\"",
	       c->method_name, (int)wi_peer_pid(p), (unsigned)wi_peer_uid(p), key);
	wi__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "rate limit exceeded for this identity; retry later");
}

int wi__call_identities(wi__call *c, wi_identities **ret, wi_selector_set **ret_sel, wi_registry **ret_reg)
{
	wi_wl_server *s = c->srv;
	char *peer = grpc_call_get_peer(c->gc);
	int rc = wi__conns_lookup(s->conns, peer, &c->conn);
	if (rc < 0) {
		wi_log(WI_LOG_WARN, "caller_unknown", "method=%s peer=%s: %s", c->method_name, peer ? peer : "",
		       wi_error_detail());
		gpr_free(peer);
		wi__call_finish(c, GRPC_STATUS_UNAUTHENTICATED, "could not verify the caller");
		return rc;
	}
	gpr_free(peer);
	wi_peer *p = c->conn->peer;
	_cleanup_(wi_selector_set_unrefp) wi_selector_set *sel = NULL;
	rc = wi_attestor_attest(s->attestor, p, &sel);
	if (rc < 0) {
		int status = wi_error_grpc_status(rc == WI_E_UNAUTHENTICATED ? rc : WI_E_UNAVAILABLE);
		wi_log(WI_LOG_WARN, "attestation_failed", "method=%s pid=%d uid=%u: %s", c->method_name,
		       (int)wi_peer_pid(p), (unsigned)wi_peer_uid(p), wi_error_detail());
		wi__call_finish(c, (grpc_status_code)status,
				rc == WI_E_UNAUTHENTICATED ? "could not verify existence of the original caller"
							   : "attestation failed; retry");
		return rc;
	}
	_cleanup_(wi_registry_unrefp) wi_registry *reg = wi__server_registry(s);
	wi_identities *ids = NULL;
	rc = wi_registry_match(reg, sel, &ids);
	if (rc < 0) {
		wi_log(WI_LOG_ERROR, "match_failed", "method=%s: %s", c->method_name, wi_error_detail());
		wi__call_finish(c, GRPC_STATUS_UNAVAILABLE, "internal error; retry");
		return rc;
	}
	if (wi_identities_truncated(ids))
		wi_log(WI_LOG_WARN, "identities_truncated",
		       "method=%s pid=%d uid=%u served=%d reason=\"more entries match this caller than the per-caller limit\"",
		       c->method_name, (int)wi_peer_pid(p), (unsigned)wi_peer_uid(p), WI_IDENTITIES_PER_CALLER_MAX);
	if (wi_identities_count(ids) == 0) {
		wi_identities_free(ids);
		/* limits: a caller without identity is charged as "uid:<n>" so
		 * probing is throttled like fetching. */
		char key[32];
		snprintf(key, sizeof(key), "uid:%u", (unsigned)wi_peer_uid(p));
		if (!wi_ratelimit_take(s->ratelimit, key)) {
			rate_limited(c, p, key); /* its one log line */
			return WI_E_UNAVAILABLE;
		}
		wi_log(WI_LOG_INFO, "no_identity", "method=%s pid=%d uid=%u selectors=%zu reason=\"no matching entry\"",
		       c->method_name, (int)wi_peer_pid(p), (unsigned)wi_peer_uid(p), wi_selector_set_count(sel));
		wi__call_finish(c, GRPC_STATUS_PERMISSION_DENIED, "no identity issued");
		return WI_E_PERMISSION;
	}
	/* --- limits: per-identity rate (issue 5 item 7), keyed by the default
	 * identity so all of one workload's processes share one budget. */
	const char *key = wi_identities_at(ids, 0)->spiffe_id;
	if (!wi_ratelimit_take(s->ratelimit, key)) {
		rate_limited(c, p, key);
		wi_identities_free(ids);
		return WI_E_UNAVAILABLE;
	}
	/* --- end limits */
	*ret = ids;
	if (ret_sel)
		*ret_sel = TAKE_PTR(sel);
	if (ret_reg)
		*ret_reg = TAKE_PTR(reg);
	return 0;
}

/* ---- workers -------------------------------------------------------------- */

static void *worker(void *arg)
{
	wi_wl_server *s = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		wi__tag *t = ev.tag;
		if (t == &s->shutdown_tag) {
			pthread_mutex_lock(&s->shutdown_lock);
			s->shutdown_done = true;
			pthread_cond_broadcast(&s->shutdown_cond);
			pthread_mutex_unlock(&s->shutdown_lock);
			continue;
		}
		t->step(t->call, ev.success != 0);
	}
	return NULL;
}

/* ---- socket --------------------------------------------------------------- */

static int bind_socket(const char *path, int *ret_fd)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	WI_CHECK(strlen(path) < sizeof(addr.sun_path), WI_E_INVAL, "socket path too long");
	memcpy(addr.sun_path, path, strlen(path) + 1);
	struct stat st;
	if (lstat(path, &st) == 0) {
		/* A stale socket from a previous run is removed; anything else is the
		 * operator's file and is left alone. */
		WI_CHECK(S_ISSOCK(st.st_mode), WI_E_IO, "%s exists and is not a socket", path);
		WI_CHECK_ERRNO(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	WI_CHECK_ERRNO(fd >= 0, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		close(fd);
		WI_FAIL(WI_E_IO, "bind %s: %s", path, strerror(e));
	}
	/* Any local process may call; attestation decides (SPIRE does the same). */
	if (chmod(path, 0777) < 0 || listen(fd, WI_LISTEN_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		WI_FAIL(WI_E_IO, "listen %s: %s", path, strerror(e));
	}
	*ret_fd = fd;
	return 0;
}

void wi_wl_server_accept(wi_wl_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				wi_log(WI_LOG_WARN, "accept_failed", "error=%s", strerror(errno));
			return;
		}
		wi_peer *peer = NULL;
		if (wi_peer_from_socket(fd, &peer) < 0) {
			wi_log(WI_LOG_INFO, "connection_refused", "reason=\"%s\"", wi_error_detail());
			atomic_fetch_add(&s->refused, 1);
			close(fd);
			continue;
		}
		const char *weak = wi_peer_degraded(peer);
		if (weak)
			wi_log_once(&said_degraded, WI_LOG_WARN, "peer_check_degraded", "reason=\"%s\"", weak);
		/* Closed connections linger in the table until a sweep: sweep before
		 * refusing, so a burst of short connections does not lock a uid out. */
		if (wi__conns_count_uid(s->conns, wi_peer_uid(peer)) >= WI_CONNECTIONS_PER_UID_MAX)
			wi__conns_sweep(s->conns);
		if (wi__conns_count_uid(s->conns, wi_peer_uid(peer)) >= WI_CONNECTIONS_PER_UID_MAX) {
			wi_log(WI_LOG_WARN, "connection_refused", "uid=%u reason=\"per-uid connection cap\"",
			       (unsigned)wi_peer_uid(peer));
			atomic_fetch_add(&s->refused, 1);
			wi_peer_free(peer);
			close(fd);
			continue;
		}
		if (wi__conns_add(s->conns, fd, peer) < 0) {
			wi_log(WI_LOG_ERROR, "connection_refused", "reason=\"%s\"", wi_error_detail());
			atomic_fetch_add(&s->refused, 1);
			wi_peer_free(peer);
			close(fd);
			continue;
		}
		atomic_fetch_add(&s->accepted, 1);
		/* gRPC owns the fd from here and closes it with the transport. */
		grpc_server_add_channel_from_fd(s->server, fd, s->creds);
	}
}

void wi_wl_server_sweep(wi_wl_server *s)
{
	wi__conns_sweep(s->conns);
	wi_x509_cache_prune(s->x509_cache, wi_clock_now());
}

void wi_wl_server_set_serving(wi_wl_server *s, bool serving)
{
	atomic_store(&s->not_serving, !serving);
}

bool wi_wl_server_serving(wi_wl_server *s)
{
	return !atomic_load(&s->not_serving);
}

int wi_wl_server_listen_fd(const wi_wl_server *s)
{
	return s->listen_fd;
}

void wi_wl_server_set_registry(wi_wl_server *s, wi_registry *r)
{
	wi_registry *old;
	pthread_mutex_lock(&s->reg_lock);
	old = s->registry;
	s->registry = wi_registry_ref(r);
	pthread_mutex_unlock(&s->reg_lock);
	wi_registry_unref(old);
	/* Tokens of identities that may no longer be held must not linger. */
	wi_jwt_cache_clear(s->jwt_cache);
}

int wi_wl_server_start(const wi_wl_options *o, wi_wl_server **ret)
{
	wi_wl_server *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->listen_fd = -1;
	s->default_ttl = o->default_x509_ttl;
	s->attestor = o->attestor;
	s->ca = o->ca;
	s->jwt_keys = o->jwt_keys;
	s->jwt_ttl = o->jwt_ttl;
	pthread_mutex_init(&s->reg_lock, NULL);
	pthread_mutex_init(&s->streams_lock, NULL);
	pthread_mutex_init(&s->shutdown_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the grace period ignores clock steps */
	pthread_cond_init(&s->shutdown_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->registry = wi_registry_ref(o->registry);
	s->socket_path = strdup(o->socket_path);
	int rc = s->socket_path ? 0 : WI_E_NOMEM;
	if (rc == 0)
		rc = wi__conns_new(&s->conns);
	if (rc == 0)
		rc = wi_x509_cache_new(o->ca, &s->x509_cache);
	if (rc == 0)
		rc = wi_jwt_cache_new(WI_JWT_CACHE_MAX, &s->jwt_cache);
	if (rc == 0)
		rc = wi_verified_cache_new(WI_SVID_VALIDATION_CACHE_SLOTS, &s->validated);
	if (rc == 0) /* limits */
		rc = wi_ratelimit_new(WI_WL_RATE_PER_IDENTITY, WI_WL_RATE_BURST, WI_RATELIMIT_SLOTS,
				      WI_RATELIMIT_CONTENDED, &s->ratelimit);
	if (rc == 0)
		rc = bind_socket(s->socket_path, &s->listen_fd);
	if (rc < 0) {
		s->stopped = true;
		wi_wl_server_free(s);
		return rc;
	}

	grpc_init();
	s->grpc_inited = true;
	grpc_arg args[2] = {
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		 .value.integer = (int)WI_GRPC_REQUEST_MAX},
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
		 .value.integer = (int)(4u * 1024u * 1024u)},
	};
	grpc_channel_args ch_args = {.num_args = 2, .args = args};
	s->server = grpc_server_create(&ch_args, NULL);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	s->creds = grpc_insecure_server_credentials_create();
	grpc_server_start(s->server);

	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->n_threads = o->threads > 0 ? o->threads : (int)(cores > 0 ? cores : 1);
	if (s->n_threads > WI_GRPC_THREADS_MAX)
		s->n_threads = WI_GRPC_THREADS_MAX;
	s->threads = calloc((size_t)s->n_threads, sizeof(*s->threads));
	if (!s->threads) {
		wi_wl_server_free(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	for (int i = 0; i < WI_GRPC_PENDING_CALLS; i++)
		request_call(s);
	for (int i = 0; i < s->n_threads; i++) {
		if (pthread_create(&s->threads[i], NULL, worker, s) != 0) {
			s->n_threads = i;
			wi_wl_server_free(s);
			WI_FAIL(WI_E_IO, "cannot start worker threads");
		}
	}
	*ret = s;
	return 0;
}

/* Waits at most ms milliseconds for the shutdown tag (workers running) or,
 * with calls_too, also for every call to be freed; true if that happened. */
static bool wait_shutdown(wi_wl_server *s, bool calls_too, long ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->shutdown_lock);
	while (!s->shutdown_done || (calls_too && s->live_calls > 0))
		if (pthread_cond_timedwait(&s->shutdown_cond, &s->shutdown_lock, &until) == ETIMEDOUT)
			break;
	bool done = s->shutdown_done && (!calls_too || s->live_calls == 0);
	pthread_mutex_unlock(&s->shutdown_lock);
	return done;
}

void wi_wl_server_stop(wi_wl_server *s)
{
	if (!s || s->stopped)
		return;
	s->stopped = true;
	atomic_store(&s->stopping, true);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		s->listen_fd = -1;
		unlink(s->socket_path);
	}
	if (s->server) {
		grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
		/* Open streams end with UNAVAILABLE: clients reconnect elsewhere or
		 * to our successor. */
		pthread_mutex_lock(&s->streams_lock);
		for (wi__call *c = s->streams; c; c = c->next) {
			wi__rpc_end(c, GRPC_STATUS_UNAVAILABLE); /* metrics */
			grpc_call_cancel_with_status(c->gc, GRPC_STATUS_UNAVAILABLE, "server shutting down", NULL);
		}
		pthread_mutex_unlock(&s->streams_lock);
		/* grpc_server_destroy requires the shutdown tag to have come back.
		 * Unary calls already running finish (the tag waits for them);
		 * whatever is still open after the grace period is cancelled. */
		if (s->n_threads == 0) {
			grpc_server_cancel_all_calls(s->server);
			grpc_completion_queue_pluck(s->cq, &s->shutdown_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		} else {
			/* Also every call freed: a handler still running would start a
			 * batch on the completion queue after its shutdown (an abort). */
			if (!wait_shutdown(s, true, WI_SHUTDOWN_GRACE_MS)) {
				wi_log(WI_LOG_WARN, "shutdown_grace_over", "cancelling the calls still open");
				grpc_server_cancel_all_calls(s->server);
				if (!wait_shutdown(s, true, WI_SHUTDOWN_CANCEL_WAIT_MS))
					wi_log(WI_LOG_WARN, "shutdown_calls_left", "handlers still running");
			}
			pthread_mutex_lock(&s->shutdown_lock);
			while (!s->shutdown_done)
				pthread_cond_wait(&s->shutdown_cond, &s->shutdown_lock);
			pthread_mutex_unlock(&s->shutdown_lock);
		}
		grpc_server_destroy(s->server);
		s->server = NULL;
	}
	if (s->cq)
		grpc_completion_queue_shutdown(s->cq);
	for (int i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	s->n_threads = 0;
	if (s->cq) {
		grpc_completion_queue_destroy(s->cq);
		s->cq = NULL;
	}
	if (s->creds) {
		grpc_server_credentials_release(s->creds);
		s->creds = NULL;
	}
	if (s->grpc_inited)
		grpc_shutdown();
	s->grpc_inited = false;
}

wi_wl_server *wi_wl_server_free(wi_wl_server *s)
{
	if (!s)
		return NULL;
	wi_wl_server_stop(s);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	wi_x509_cache_free(s->x509_cache);
	wi_jwt_cache_free(s->jwt_cache);
	wi_verified_cache_free(s->validated);
	wi_ratelimit_free(s->ratelimit); /* limits */
	wi__conns_free(s->conns);
	wi_registry_unref(s->registry);
	pthread_mutex_destroy(&s->reg_lock);
	pthread_mutex_destroy(&s->streams_lock);
	pthread_mutex_destroy(&s->shutdown_lock);
	pthread_cond_destroy(&s->shutdown_cond);
	free(s->threads);
	free(s->socket_path);
	free(s);
	return NULL;
}

void wi_wl_server_get_stats(wi_wl_server *s, wi_wl_stats *ret)
{
	ret->connections_accepted = atomic_load(&s->accepted);
	ret->connections_refused = atomic_load(&s->refused);
	ret->connections_open = wi__conns_sweep(s->conns);
	ret->calls = atomic_load(&s->calls);
	ret->streams_open = atomic_load(&s->n_streams);
}
