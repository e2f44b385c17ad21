/* txn-token/http.c — the TTS HTTP front end on libh2o 2.2.5 (Debian's libuv
 * build) and the daemon's libuv loop.
 *
 * Threading.  The daemon's loop (`loop` of the options) owns the listening
 * sockets: it accepts, reads a Unix caller's credentials (wi_peer) and hands
 * the descriptor to the worker holding the fewest connections, through that
 * worker's inbox and uv_async_t.  Each worker is a thread with its own libuv
 * loop and h2o context (h2o's model: one context per thread, one shared
 * globalconf).  Everything about a connection happens on its worker: h2o
 * parses, on_req runs the application handler in place and answers.  So a
 * request crosses no thread; a connection crosses once.
 *
 * Lifetimes.
 * - conn: one per accepted socket, on its worker; embeds the uv handle, owns
 *   the wi_peer (Unix) or the TLS peer ID.  Reference-counted on the worker:
 *   one reference for the open handle (dropped in the uv close callback that
 *   h2o calls after its own socket is freed, so the handle memory is released
 *   only in its close callback) and one while the socket lingers after h2o
 *   closed it.
 * - worker: one reference for itself until it is told to stop and one per
 *   conn record; the last one disposes its h2o context, closes its async
 *   handle, and its loop then ends: the thread marks itself done and wakes
 *   the server's `done` async on the daemon's loop, which joins it.
 * - server: counted references (daemon's loop) for itself until stop, each
 *   listener handle and each worker not yet joined; the last one closes the
 *   server's own handles and frees the object from their close callbacks
 *   (see finish()), after the h2o config, which every context shared.
 * h2o keeps small per-thread caches of request-pool chunks and socket buffers
 * (h2o_mem_alloc_recycle); libh2o 2.2.5 has no call to empty them, so a
 * worker thread that ends leaves them behind (tests/lsan.supp names them).
 *
 * Connection records are reached from an h2o request through the socket's
 * public `on_close.data` field (h2o's HTTP server path leaves it unused).
 *
 * Bounds, and which h2o limits apply:
 * - body: h2o's max_request_entity_size is max_body + 1, so a Content-Length
 *   beyond it is refused by h2o before any body byte is buffered, and a
 *   chunked body as soon as its decoded size reaches it; both give 413 and
 *   close the connection.  Exactly max_body + 1 bytes reach on_req, which
 *   answers 413 itself.  h2o's own error answers (413, 400 for a broken
 *   Content-Length or chunked encoding, 417) are rewritten to RFC 6749 JSON
 *   with no-store by a response filter, and the connection then closes
 *   lingering (linger_start) so that a client still sending its body reads
 *   the 413 instead of failing its write.
 * - headers: h2o 2.2.5 parses at most H2O_MAX_HEADERS (100) header fields and
 *   H2O_MAX_REQLEN (8192 + 4096 * 100 bytes) of request line plus headers.
 *   Beyond either, h2o writes a fixed "400 Bad Request" (text/plain) straight
 *   to the socket and closes; that answer bypasses filters and is the one
 *   error that is not JSON.
 * - time: io_timeout_ms is h2o's http1.req_timeout (a deadline for a whole
 *   request, headers and body, and for an idle keep-alive connection; it is
 *   not re-armed by each read, so slow clients cannot trickle), the TLS
 *   handshake timeout and the HTTP/2 idle timeout.  h2o 2.2.5 has no write
 *   timeout; our answers are small and fit in the socket buffer.
 * - connections: max_connections sockets accepted and not yet disposed by
 *   h2o (or still lingering), per listener, so that network callers cannot
 *   take the local ones' room; of these at most max_per_peer per peer (a
 *   uid on the Unix socket, read with SO_PEERCRED before h2o sees a byte; an
 *   IPv4 address or IPv6 /64 on TCP), so that one peer cannot take them all.
 *   Beyond either a new connection is closed at once; refusals are logged
 *   at most once a second, with the count since the last line.  An accept
 *   that fails for want of descriptors or memory pauses accepting for
 *   ACCEPT_BACKOFF_MS.  A lingering socket holds its slot, and a
 *   descriptor, for at most io_timeout_ms.
 * HTTP/2 (h2c upgrade, prior knowledge) is disabled: we serve HTTP/1.1.
 *
 * SIGPIPE: libuv writes with write(2), so a client that goes away before its
 * answer raises SIGPIPE; the process must ignore it (daemon/main.c does).
 *
 * libh2o 2.2.5 specifics (no public API exists for these):
 * - the SSL object of a socket is read from the head of h2o's private
 *   struct st_h2o_socket_ssl_t, { SSL_CTX *ssl_ctx; SSL *ossl; ... }, and is
 *   trusted only when ssl_ctx is the context we gave h2o;
 * - h2o_context_dispose ends with uv_run(NOWAIT), which must not be called
 *   from a loop callback, so context_dispose() below does the same steps
 *   without it and we wait for the timers' close callbacks ourselves;
 * - h2o cannot close an HTTP/1 connection on request: stop shuts the
 *   sockets down and h2o closes them on the end-of-file it then reads. */
#include "txn-token/http.h"

#include "core/clock.h"
#include "core/slots.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/cleanup.h"
#include "core/hostport.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/spiffe_id.h"

/* RFC 6749 §5.2 limits error_description to printable ASCII; we also cap its
 * length. */
#define OAUTH_DESCRIPTION_MAX 1024
/* Most bytes a lingering close discards before it gives up on a client. */
#define LINGER_DISCARD_MAX (8u * 1024u * 1024u)

/* An accept that fails for want of descriptors or memory pauses accepting
 * this long (a level-triggered listener would spin otherwise). */
#define ACCEPT_BACKOFF_MS 100
/* Most connections taken from one listener per readiness event. */
#define ACCEPT_BATCH 32

typedef enum lkind { L_UNIX = 0, L_TLS, L_TCP, L_KINDS } lkind;
static const char *const lkind_names[L_KINDS] = {"unix", "https", "tcp"};

typedef union any_stream {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_pipe_t pipe;
	uv_tcp_t tcp;
} any_stream;

typedef struct worker worker;

/* A listening socket, watched on the daemon's loop. */
typedef struct listener {
	uv_poll_t poll;
	wi_tts_http *server;
	int fd;      /* -1: none */
	lkind kind;
	bool inited; /* poll handle initialised (closed by stop) */
} listener;

typedef struct conn {
	any_stream h; /* first: the close callback casts the handle back */
	worker *w;
	h2o_linklist_t link; /* in w->conns while h2o holds the socket */
	h2o_socket_t *sock;  /* NULL once h2o disposed of it */
	wi_peer *peer;       /* Unix listener */
	char *tls_peer_id;   /* TLS listener: verified SVID's SPIFFE ID, or NULL */
	lkind kind;
	bool tls_peer_checked;
	bool counted;        /* holds a slot of max_connections (and `key`'s) */
	bool keyed;          /* `key` holds a per-peer slot */
	wi_slot_key key;
	unsigned refs;
	/* Lingering close after an error h2o answers by itself (see linger_start). */
	int linger_fd;          /* a dup of the socket, or -1 */
	uv_poll_t linger_poll;
	uv_timer_t linger_timer;
	size_t linger_left;     /* bytes still to discard */
	int linger_open;        /* linger handles not yet closed */
} conn;

/* An accepted descriptor on its way to a worker. */
typedef struct handoff {
	struct handoff *next;
	int fd;
	lkind kind;
	wi_peer *peer;
	bool keyed;
	wi_slot_key key;
} handoff;

struct worker {
	wi_tts_http *server;
	uv_loop_t loop;
	uv_async_t async; /* inbox and stop */
	uv_thread_t thread;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept[L_KINDS];
	bool loop_inited, async_inited, started, joined; /* daemon's loop */
	pthread_mutex_t lock;
	handoff *inbox; /* under lock */
	handoff **inbox_tail;
	bool stop;      /* under lock */
	/* the worker's own thread: */
	bool stopping;
	bool responding; /* set while our own answer passes the filters */
	h2o_linklist_t conns;
	h2o_linklist_t lingering; /* conns draining a client after h2o closed them */
	size_t refs;              /* see the file comment */
	atomic_size_t load;       /* connections it holds; read by the acceptor */
	atomic_bool done;         /* its loop has ended */
};

typedef struct our_handler {
	h2o_handler_t super;
	wi_tts_http *server;
} our_handler;

typedef struct our_filter {
	h2o_filter_t super;
	wi_tts_http *server;
} our_filter;

struct wi_tts_http {
	uv_loop_t *loop; /* the daemon's */
	wi_http_handler handler;
	void *handler_ud;
	size_t max_body;
	size_t max_connections;
	uint64_t io_timeout_ms;
	SSL_CTX *tls_ctx;

	h2o_globalconf_t config;
	bool config_inited;

	listener listeners[L_KINDS];
	char *unix_path;
	bool unix_bound; /* the socket file at unix_path is ours (dev/ino) */
	dev_t unix_dev;
	ino_t unix_ino;

	worker *workers;
	size_t n_workers;
	size_t next_worker;  /* round-robin start among equally loaded workers */
	uv_async_t done;     /* a worker's loop ended */
	uv_timer_t backoff;  /* accepting paused (EMFILE ...) */
	bool handles_inited;
	int handles_open;    /* done + backoff, while closing */

	atomic_size_t n_open[L_KINDS]; /* connections counted against max_connections */
	wi_slots *per_peer;            /* NULL: no per-peer bound */
	time_t refused_logged;         /* daemon's loop: the last refusal line's second */
	unsigned long refused_since;   /* refusals not logged since */
	size_t refs;          /* see the file comment */
	bool stopping;
};

static void server_unref(wi_tts_http *s);
static void worker_unref(worker *w);
static void conn_unref(conn *c);

/* ---- responses --------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	}
	return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* A header value we emit must not break the response framing. */
static bool header_value_ok(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || (unsigned char)*v == 0x7f)
			return false;
	return true;
}

static bool oauth_char_ok(unsigned char c)
{
	/* RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E */
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

void wi_http_oauth_error(wi_http_response *resp, int status, const char *error, const char *description)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
	resp->status = status;
	resp->content_type = "application/json";
	resp->no_store = true; /* RFC 6749 §5.1/§5.2 */

	bool error_ok = error && *error;
	for (const char *e = error; error_ok && *e; e++)
		error_ok = oauth_char_ok((unsigned char)*e);
	if (!error_ok)
		error = "server_error";

	json_auto_t *o = json_object();
	if (!o || json_object_set_new(o, "error", json_string(error)) < 0)
		return;
	if (description) {
		char d[OAUTH_DESCRIPTION_MAX + 1];
		size_t n = 0;
		for (; description[n] && n < OAUTH_DESCRIPTION_MAX; n++) {
			unsigned char c = (unsigned char)description[n];
			d[n] = c == '"' ? '\'' : oauth_char_ok(c) ? (char)c : '?';
		}
		d[n] = '\0';
		if (json_object_set_new(o, "error_description", json_string(d)) < 0)
			return;
	}
	char *text = json_dumps(o, JSON_COMPACT);
	if (!text)
		return; /* the status still goes out, with an empty body */
	resp->body = text;
	resp->body_len = strlen(text);
}

/* The handler's body, lent to h2o until the request's pool is cleared. */
typedef struct body_loan {
	char *body;
	size_t len;
} body_loan;

static void on_body_loan_dispose(void *data)
{
	body_loan *l = data;
	/* An issued token must not linger in freed memory. */
	OPENSSL_cleanse(l->body, l->len);
	free(l->body);
}

/* The worker whose context serves `req`. */
static worker *req_worker(h2o_req_t *req)
{
	return H2O_STRUCT_FROM_MEMBER(worker, ctx, req->conn->ctx);
}

/* Sends `resp` on `req` and takes resp->body.  On req's worker. */
static void respond(worker *w, h2o_req_t *req, wi_http_response *resp, bool head)
{
	static h2o_generator_t generator = {NULL, NULL}; /* one final h2o_send */
	int status = resp->status ? resp->status : 200;
	const char *ct = resp->content_type ? resp->content_type : "application/json";
	if (status < 200 || status > 599 || !header_value_ok(ct) ||
	    (resp->allow && !header_value_ok(resp->allow))) {
		wi_http_oauth_error(resp, 500, "server_error", "invalid response from handler");
		status = 500;
		ct = resp->content_type;
	}
	bool bodyless = status == 204 || status == 304;
	char *body = resp->body;
	size_t len = body ? resp->body_len : 0;
	resp->body = NULL;

	req->res.status = status;
	req->res.reason = reason_phrase(status);
	req->res.content_length = bodyless ? SIZE_MAX : len;
	if (!bodyless)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
	if (resp->no_store) {
		/* RFC 6749 §5.1: Cache-Control: no-store and Pragma: no-cache */
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
			       H2O_STRLIT("no-store"));
		h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("pragma"), 0, NULL,
				      H2O_STRLIT("no-cache"));
	}
	if (resp->allow)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, resp->allow,
			       strlen(resp->allow));

	h2o_iovec_t buf = {NULL, 0};
	if (body) {
		body_loan *loan = h2o_mem_alloc_shared(&req->pool, sizeof(*loan), on_body_loan_dispose);
		loan->body = body;
		loan->len = resp->body_len;
		buf = h2o_iovec_init(body, len);
	}
	w->responding = true;
	h2o_start_response(req, &generator);
	w->responding = false;
	if (head || bodyless || len == 0)
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void respond_error(worker *w, h2o_req_t *req, int status, const char *error,
			  const char *description)
{
	/* One line per refusal, with the reason (never request bytes). */
	wi_log(WI_LOG_INFO, "http_refused", "status=%d error=%s reason=\"%s\"", status, error, description);
	wi_http_response r = {0};
	wi_http_oauth_error(&r, status, error, description);
	respond(w, req, &r, h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")));
}

/* ---- the filter that turns h2o's own error answers into RFC 6749 JSON -------- */

typedef struct replace_ostream {
	h2o_ostream_t super;
	h2o_iovec_t body;
	bool sent;
} replace_ostream;

static void replace_do_send(h2o_ostream_t *self_, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
			    h2o_send_state_t state)
{
	replace_ostream *self = (replace_ostream *)self_;
	h2o_iovec_t out = self->body;
	size_t n = 0;
	/* h2o sends its error text in one call (none for HEAD): swap it for ours. */
	if (bufcnt != 0 && !self->sent) {
		self->sent = true;
		n = 1;
	}
	h2o_ostream_send_next(&self->super, req, n ? &out : NULL, n, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
	wi_tts_http *s = ((our_filter *)self)->server;
	worker *w = req_worker(req);
	if (!w->responding && req->res.status >= 400) {
		/* h2o closes the connection after this answer, possibly with body
		 * bytes unread: keep a way to drain them (see linger_start). */
		h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
		conn *c = sock ? sock->on_close.data : NULL;
		int fd = c && c->w == w && w->server == s && c->linger_fd < 0 ? h2o_socket_get_fd(sock) : -1;
		if (fd >= 0)
			c->linger_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		wi_http_response r = {0};
		wi_log(WI_LOG_INFO, "http_refused", "status=%d reason=\"%s\"", req->res.status,
		       req->res.status == 413 ? "request body too large" : "malformed HTTP request");
		wi_http_oauth_error(&r, req->res.status, req->res.status >= 500 ? "server_error" : "invalid_request",
				    req->res.status == 413 ? "request body too large" : "malformed HTTP request");
		if (r.body) {
			h2o_iovec_t body = h2o_strdup(&req->pool, r.body, r.body_len);
			free(r.body);
			req->res.headers = (h2o_headers_t){NULL, 0, 0};
			req->res.content_length = body.len;
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
				       H2O_STRLIT("application/json"));
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
				       H2O_STRLIT("no-store"));
			h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("pragma"), 0, NULL,
					      H2O_STRLIT("no-cache"));
			replace_ostream *o = (replace_ostream *)h2o_add_ostream(req, sizeof(*o), slot);
			o->super.do_send = replace_do_send;
			o->body = body;
			o->sent = false;
			slot = &o->super.next;
		}
	}
	h2o_setup_next_ostream(req, slot);
}

/* ---- TLS peer identity -------------------------------------------------------- */

/* The head of libh2o 2.2.5's private struct st_h2o_socket_ssl_t
 * (lib/common/socket.c); no accessor exists for the SSL object. */
struct h2o_ssl_head {
	SSL_CTX *ssl_ctx;
	SSL *ossl;
};

/* The SPIFFE ID of an X.509-SVID: X509-SVID §2, exactly one URI SAN, and it
 * must be a SPIFFE ID with a path (a leaf, not a signing certificate). */
static char *svid_spiffe_id(X509 *cert)
{
	int crit = 0;
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!sans)
		return NULL;
	const ASN1_IA5STRING *uri = NULL;
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type != GEN_URI)
			continue;
		if (uri)
			return NULL;
		uri = g->d.uniformResourceIdentifier;
	}
	if (!uri)
		return NULL;
	const char *id = (const char *)ASN1_STRING_get0_data(uri);
	int len = ASN1_STRING_length(uri);
	if (len <= 0 || len > WI_SPIFFE_ID_MAX || wi_spiffe_id_validate(id, (size_t)len, true) < 0) {
		wi_error_clear(); /* not a failure of the request: just no identity */
		return NULL;
	}
	return strndup(id, (size_t)len);
}

/* NULL unless the client presented a certificate that OpenSSL verified under
 * the daemon's SSL_CTX and that is an X.509-SVID. */
static char *tls_peer_id(h2o_socket_t *sock, SSL_CTX *expected)
{
	if (!sock || !sock->ssl)
		return NULL;
	const struct h2o_ssl_head *head = (const struct h2o_ssl_head *)sock->ssl;
	if (head->ssl_ctx != expected || !head->ossl)
		return NULL;
	SSL *ssl = head->ossl;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	return svid_spiffe_id(cert);
}

/* ---- requests ------------------------------------------------------------------ */

/* Gives back a connection's slots: its listener's and its peer's. */
static void slots_release(worker *w, lkind kind, bool keyed, const wi_slot_key *key)
{
	atomic_fetch_sub(&w->server->n_open[kind], 1);
	atomic_fetch_sub(&w->load, 1);
	if (keyed)
		wi_slots_release(w->server->per_peer, key);
}

static void conn_unref(conn *c)
{
	if (--c->refs > 0)
		return;
	worker *w = c->w;
	if (c->counted)
		slots_release(w, c->kind, c->keyed, &c->key);
	wi_peer_free(c->peer);
	free(c->tls_peer_id);
	free(c);
	worker_unref(w);
}

/* Copies s[0..len) into *cursor as a C string and advances it. */
static const char *put_string(char **cursor, const char *src, size_t len)
{
	char *dst = *cursor;
	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
	*cursor = dst + len + 1;
	return dst;
}

/* The media type of a Content-Type value: before any ';', without
 * surrounding whitespace (RFC 9110 §8.3.1); lowercased by the caller. */
static h2o_iovec_t media_type(h2o_iovec_t v)
{
	size_t end = 0;
	while (end < v.len && v.base[end] != ';')
		end++;
	size_t start = 0;
	while (start < end && (v.base[start] == ' ' || v.base[start] == '\t'))
		start++;
	while (end > start && (v.base[end - 1] == ' ' || v.base[end - 1] == '\t'))
		end--;
	return h2o_iovec_init(v.base + start, end - start);
}

/* Requests up to this size are copied to the stack, larger ones to the heap. */
#define REQUEST_COPY_STACK 4096

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	wi_tts_http *s = ((our_handler *)self)->server;
	worker *w = req_worker(req);
	h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
	conn *c = sock ? sock->on_close.data : NULL;
	if (!c || c->w != w || w->server != s) {
		respond_error(w, req, 500, "server_error", "connection state lost");
		return 0;
	}

	size_t body_len = req->entity.base ? req->entity.len : 0;
	if (body_len > s->max_body) {
		respond_error(w, req, 413, "invalid_request", "request body too large");
		return 0;
	}

	h2o_iovec_t ct = {NULL, 0};
	ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
	if (at != -1) {
		if (h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, at) != -1) {
			respond_error(w, req, 400, "invalid_request", "more than one Content-Type");
			return 0;
		}
		ct = media_type(req->headers.entries[at].value);
	}

	if (c->kind == L_TLS && !c->tls_peer_checked) {
		c->tls_peer_id = tls_peer_id(sock, s->tls_ctx);
		c->tls_peer_checked = true;
	}

	size_t path_len = req->query_at != SIZE_MAX && req->query_at <= req->path.len ? req->query_at : req->path.len;
	size_t query_len = path_len < req->path.len ? req->path.len - path_len - 1 : 0;
	/* The handler gets NUL-terminated copies, never h2o memory.  All parts
	 * are bounded: headers by H2O_MAX_REQLEN, the body by max_body (checked
	 * at start to leave room for this sum). */
	size_t strings_len = req->method.len + path_len + query_len + ct.len + body_len + 5;
	char on_stack[REQUEST_COPY_STACK];
	char *strings = strings_len <= sizeof(on_stack) ? on_stack : malloc(strings_len);
	if (!strings) {
		respond_error(w, req, 503, "temporarily_unavailable", "out of memory");
		return 0;
	}
	wi_http_caller caller = {
		.authn = c->kind == L_TLS ? WI_HTTP_AUTHN_TLS : c->kind == L_TCP ? WI_HTTP_AUTHN_TCP : WI_HTTP_AUTHN_UNIX,
		.peer = c->peer,
		.tls_peer_id = c->tls_peer_id,
	};
	wi_http_request request = {.caller = &caller};
	char *cur = strings;
	request.method = put_string(&cur, req->method.base, req->method.len);
	request.path = put_string(&cur, req->path.base, path_len);
	request.query = put_string(&cur, req->path.base + path_len + (query_len ? 1 : 0), query_len);
	char *mt = (char *)put_string(&cur, ct.base, ct.len);
	h2o_strtolower(mt, ct.len);
	request.content_type = mt;
	request.body = (const uint8_t *)put_string(&cur, req->entity.base, body_len);
	request.body_len = body_len;
	bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));

	wi_http_response response = {.status = 200, .content_type = "application/json"};
	s->handler(s->handler_ud, &request, &response);

	OPENSSL_cleanse(strings, strings_len); /* the body holds tokens */
	/* ... and so does h2o's copy, in the socket's input buffer (or its
	 * chunked decoder's), which h2o recycles without wiping.  Only its
	 * bytes are cleared: h2o consumes the buffer by length afterwards. */
	if (req->entity.base && req->entity.len)
		OPENSSL_cleanse(req->entity.base, req->entity.len);
	if (strings != on_stack)
		free(strings);
	/* Stopping: this answer still goes out (a token may have been issued),
	 * then h2o closes the connection instead of waiting for another request. */
	if (w->stopping)
		req->http1_is_persistent = 0;
	respond(w, req, &response, head);
	return 0;
}

/* ---- connections (on their worker) --------------------------------------------------- */

static void on_linger_closed(uv_handle_t *h)
{
	conn *c = h->data;
	if (--c->linger_open > 0)
		return;
	/* the poll handle is closed: now the descriptor may go */
	close(c->linger_fd);
	c->linger_fd = -1;
	conn_unref(c);
}

static void linger_end(conn *c)
{
	if (!h2o_linklist_is_linked(&c->link))
		return; /* already ending */
	h2o_linklist_unlink(&c->link);
	uv_close((uv_handle_t *)&c->linger_poll, on_linger_closed);
	uv_close((uv_handle_t *)&c->linger_timer, on_linger_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
	linger_end(t->data);
}

static void on_linger_readable(uv_poll_t *p, int status, int events)
{
	(void)events;
	conn *c = p->data;
	if (status < 0) {
		linger_end(c);
		return;
	}
	char buf[16384];
	for (;;) {
		ssize_t n = read(c->linger_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (size_t)n >= c->linger_left) {
			linger_end(c); /* end of file, error, or enough discarded */
			return;
		}
		c->linger_left -= (size_t)n;
	}
}

/* Lingering close.  When h2o answers an error by itself (a body too large
 * by its Content-Length, a broken one) it closes the socket with the
 * client's body unread: the client then fails its write (EPIPE on a Unix
 * socket, a reset on TCP) and may never read the 413.  So before h2o's answer
 * the filter dups the descriptor; once h2o has written the answer and closed
 * its own descriptor, we half-close ours (the client sees end-of-file after
 * the answer) and read and discard what the client still sends, until it
 * closes, io_timeout_ms passes or LINGER_DISCARD_MAX bytes were dropped. */
static void linger_start(conn *c)
{
	worker *w = c->w;
	(void)shutdown(c->linger_fd, SHUT_WR);
	c->linger_poll.data = c;
	c->linger_timer.data = c;
	if (w->stopping || uv_poll_init(&w->loop, &c->linger_poll, c->linger_fd) != 0) {
		close(c->linger_fd);
		c->linger_fd = -1;
		return;
	}
	(void)uv_timer_init(&w->loop, &c->linger_timer);
	c->linger_open = 2;
	c->linger_left = LINGER_DISCARD_MAX;
	c->refs++;
	h2o_linklist_insert(&w->lingering, &c->link);
	if (uv_poll_start(&c->linger_poll, UV_READABLE | UV_DISCONNECT, on_linger_readable) != 0 ||
	    uv_timer_start(&c->linger_timer, on_linger_timeout, w->server->io_timeout_ms, 0) != 0)
		linger_end(c);
}

/* h2o disposed of the socket; the uv handle is closing (its fd is closed). */
static void on_sock_dispose(void *data)
{
	conn *c = data;
	c->sock = NULL;
	h2o_linklist_unlink(&c->link);
	if (c->linger_fd >= 0) {
		linger_start(c); /* keeps its slots until the linger ends */
		return;
	}
	if (c->counted) {
		c->counted = false;
		slots_release(c->w, c->kind, c->keyed, &c->key);
	}
}

/* The uv close callback of a connection's handle (h2o freed its socket first). */
static void on_conn_closed(uv_handle_t *h)
{
	conn_unref((conn *)h);
}

/* A descriptor that never became a connection: its slot is given back. */
static void handoff_drop(worker *w, handoff *h)
{
	close(h->fd);
	wi_peer_free(h->peer);
	slots_release(w, h->kind, h->keyed, &h->key);
}

/* Starts serving an accepted descriptor on worker `w` (its thread). */
static void worker_take(worker *w, handoff *h)
{
	conn *c = w->stopping ? NULL : calloc(1, sizeof(*c));
	if (!c) {
		handoff_drop(w, h);
		return;
	}
	c->w = w;
	c->kind = h->kind;
	c->linger_fd = -1;
	c->refs = 1;
	int r;
	if (h->kind == L_UNIX) {
		(void)uv_pipe_init(&w->loop, &c->h.pipe, 0);
		r = uv_pipe_open(&c->h.pipe, h->fd);
	} else {
		(void)uv_tcp_init(&w->loop, &c->h.tcp);
		r = uv_tcp_open(&c->h.tcp, h->fd);
		if (r == 0)
			(void)uv_tcp_nodelay(&c->h.tcp, 1); /* answers are one write each */
	}
	if (r != 0) {
		/* The handle does not own the descriptor: close both. */
		handoff_drop(w, h);
		w->refs++;
		uv_close(&c->h.handle, on_conn_closed);
		return;
	}
	c->peer = h->peer;
	c->counted = true;
	c->keyed = h->keyed;
	c->key = h->key;
	w->refs++;
	h2o_socket_t *sock = h2o_uv_socket_create(&c->h.stream, on_conn_closed);
	sock->on_close.cb = on_sock_dispose;
	sock->on_close.data = c;
	c->sock = sock;
	h2o_linklist_insert(&w->conns, &c->link);
	h2o_accept(&w->accept[h->kind], sock);
}

/* ---- workers ------------------------------------------------------------------------- */

/* h2o_context_dispose of libh2o 2.2.5 without its trailing uv_run (we are in
 * a callback of the context's loop). */
static void context_dispose(h2o_context_t *ctx)
{
	h2o_globalconf_t *config = ctx->globalconf;
	for (size_t i = 0; config->hosts[i] != NULL; i++) {
		h2o_hostconf_t *hostconf = config->hosts[i];
		for (size_t j = 0; j != hostconf->paths.size; j++)
			h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
		h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
	}
	free(ctx->_pathconfs_inited.entries);
	free(ctx->_module_configs);
	/* h2o_context_request_shutdown arms HTTP/2's GOAWAY resend timer even
	 * without HTTP/2 connections; h2o_context_dispose leaves that to the
	 * application, and a linked entry must not outlive its timeout. */
	if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
		h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->zero_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->one_sec_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->hundred_ms_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->handshake_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->http1.req_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->http2.idle_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->http2.graceful_shutdown_timeout);
	h2o_timeout_dispose(ctx->loop, &ctx->proxy.io_timeout);
	h2o_filecache_destroy(ctx->filecache);
	ctx->filecache = NULL;
	for (size_t i = 0; i != ctx->storage.size; i++)
		if (ctx->storage.entries[i].dispose)
			ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
	free(ctx->storage.entries);
	h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
	h2o_multithread_destroy_queue(ctx->queue);
	if (ctx->_timestamp_cache.value)
		h2o_mem_release_shared(ctx->_timestamp_cache.value);
}

/* Last reference of a worker gone (its thread): no connection is left.  The
 * loop ends once the context's timers and the async handle are closed. */
static void worker_unref(worker *w)
{
	if (--w->refs > 0)
		return;
	context_dispose(&w->ctx);
	uv_close((uv_handle_t *)&w->async, NULL);
}

/* Told to stop (its thread): idle connections are shut down, so h2o sees
 * end-of-file and closes them through its own path; lingering ones end. */
static void worker_stop(worker *w)
{
	w->stopping = true;
	h2o_context_request_shutdown(&w->ctx);
	for (h2o_linklist_t *n = w->conns.next; n != &w->conns; n = n->next) {
		conn *c = H2O_STRUCT_FROM_MEMBER(conn, link, n);
		int fd = c->sock ? h2o_socket_get_fd(c->sock) : -1;
		if (fd >= 0)
			(void)shutdown(fd, SHUT_RDWR);
	}
	while (!h2o_linklist_is_empty(&w->lingering))
		linger_end(H2O_STRUCT_FROM_MEMBER(conn, link, w->lingering.next));
	worker_unref(w);
}

static void on_worker_async(uv_async_t *a)
{
	worker *w = a->data;
	pthread_mutex_lock(&w->lock);
	handoff *q = w->inbox;
	w->inbox = NULL;
	w->inbox_tail = &w->inbox;
	bool stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	while (q) {
		handoff *next = q->next;
		worker_take(w, q);
		free(q);
		q = next;
	}
	if (stop && !w->stopping)
		worker_stop(w);
}

static void worker_main(void *arg)
{
	worker *w = arg;
	wi_tts_http *s = w->server;
	h2o_context_init(&w->ctx, &w->loop, &s->config);
	w->accept[L_UNIX] = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = s->config.hosts};
	w->accept[L_TLS] = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = s->config.hosts, .ssl_ctx = s->tls_ctx};
	w->accept[L_TCP] = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = s->config.hosts};
	(void)uv_run(&w->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&w->loop);
	atomic_store(&w->done, true);
	uv_async_send(&s->done); /* the server outlives every worker it has not joined */
}

/* Daemon's loop: joins the workers whose loops have ended. */
static void on_done(uv_async_t *a)
{
	wi_tts_http *s = a->data;
	size_t joined = 0;
	for (size_t i = 0; i < s->n_workers; i++) {
		worker *w = &s->workers[i];
		if (!w->started || w->joined || !atomic_load(&w->done))
			continue;
		/* Returns once the thread is past its uv_async_send on `done`. */
		(void)uv_thread_join(&w->thread);
		pthread_mutex_destroy(&w->lock);
		w->joined = true;
		joined++;
	}
	while (joined--)
		server_unref(s); /* the last one may free s */
}

/* Asks worker `w` to stop (any thread but its own). */
static void worker_request_stop(worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

/* Builds and starts worker i; on failure nothing of it is left. */
static int worker_start(wi_tts_http *s, worker *w)
{
	w->server = s;
	w->refs = 1;
	w->inbox_tail = &w->inbox;
	h2o_linklist_init_anchor(&w->conns);
	h2o_linklist_init_anchor(&w->lingering);
	int r = uv_loop_init(&w->loop);
	WI_CHECK(r == 0, WI_E_IO, "worker loop: %s", uv_strerror(r));
	r = uv_async_init(&w->loop, &w->async, on_worker_async);
	if (r == 0) {
		w->async.data = w;
		pthread_mutex_init(&w->lock, NULL);
		r = uv_thread_create(&w->thread, worker_main, w);
		if (r == 0) {
			w->started = true;
			s->refs++;
			return 0;
		}
		pthread_mutex_destroy(&w->lock);
		uv_close((uv_handle_t *)&w->async, NULL);
		(void)uv_run(&w->loop, UV_RUN_DEFAULT); /* not this loop's callback: fine */
	}
	(void)uv_loop_close(&w->loop);
	WI_FAIL(WI_E_IO, "worker thread: %s", uv_strerror(r));
}

/* The worker holding the fewest connections (round robin among equals).
 * Only after a successful start: every worker is running. */
static worker *pick_worker(wi_tts_http *s)
{
	worker *best = NULL;
	size_t best_load = SIZE_MAX;
	for (size_t k = 0; k < s->n_workers; k++) {
		worker *w = &s->workers[(s->next_worker + k) % s->n_workers];
		size_t load = atomic_load_explicit(&w->load, memory_order_relaxed);
		if (load < best_load) {
			best = w;
			best_load = load;
		}
	}
	s->next_worker = (s->next_worker + 1) % s->n_workers;
	return best;
}

/* ---- accepting (daemon's loop) ---------------------------------------------------------- */

static void listeners_poll(wi_tts_http *s, bool on);

static void on_listener_readable(uv_poll_t *p, int status, int events);

static void on_backoff(uv_timer_t *t)
{
	wi_tts_http *s = t->data;
	if (!s->stopping)
		listeners_poll(s, true);
}

static void listeners_poll(wi_tts_http *s, bool on)
{
	for (size_t i = 0; i < L_KINDS; i++) {
		listener *l = &s->listeners[i];
		if (!l->inited)
			continue;
		if (on)
			(void)uv_poll_start(&l->poll, UV_READABLE, on_listener_readable);
		else
			(void)uv_poll_stop(&l->poll);
	}
}

/* A refusal at a cap: one line a second at most, with how many there were
 * (a flood of connections must not become a flood of log lines). */
static void log_capped(wi_tts_http *s, lkind kind, const char *why)
{
	time_t now = wi_clock_now();
	if (now == s->refused_logged) {
		s->refused_since++;
		return;
	}
	wi_log(WI_LOG_WARN, "connection_refused", "listener=%s reason=\"%s\" refused_since_last_line=%lu",
	       lkind_names[kind], why, s->refused_since);
	s->refused_logged = now;
	s->refused_since = 0;
}

/* The peer of an accepted TCP connection: its IPv4 address or IPv6 /64 (one
 * host is given a /64 as readily as one address). */
static bool tcp_peer_key(const struct sockaddr_storage *ss, wi_slot_key *k)
{
	memset(k, 0, sizeof(*k));
	if (ss->ss_family == AF_INET) {
		k->b[0] = 4;
		memcpy(k->b + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			k->b[0] = 4;
			memcpy(k->b + 1, a->s6_addr + 12, 4);
		} else {
			k->b[0] = 6;
			memcpy(k->b + 1, a->s6_addr, 8);
		}
		return true;
	}
	return false;
}

/* Said once per process: every connection would say it again. */
static atomic_bool said_degraded;

/* Hands one accepted descriptor to a worker, or closes it. */
static void dispatch(wi_tts_http *s, lkind kind, int fd, const struct sockaddr_storage *from)
{
	wi_peer *peer = NULL;
	worker *w = NULL;
	handoff *h = NULL;
	if (s->stopping) { /* shutting down: not worth a line */
		close(fd);
		return;
	}
	const char *why = NULL;
	bool capped = false, keyed = false;
	wi_slot_key key;
	if (atomic_load(&s->n_open[kind]) >= s->max_connections) {
		why = "connection cap";
		capped = true;
	} else if (kind == L_UNIX && wi_peer_from_socket(fd, &peer) < 0) {
		/* Who is calling, read before h2o sees a byte (DESIGN §4:
		 * attested like a Workload API caller). */
		why = wi_error_detail();
	}
	const char *weak = peer ? wi_peer_degraded(peer) : NULL;
	if (weak)
		wi_log_once(&said_degraded, WI_LOG_WARN, "peer_check_degraded", "listener=unix reason=\"%s\"", weak);
	if (!why && s->per_peer) {
		if (kind == L_UNIX) {
			key = wi_slot_key_uid(wi_peer_uid(peer));
			keyed = true;
		} else {
			keyed = tcp_peer_key(from, &key);
		}
		if (keyed && !wi_slots_take(s->per_peer, &key)) {
			keyed = false;
			why = kind == L_UNIX ? "connection cap for this uid" : "connection cap for this address";
			capped = true;
		}
	}
	if (!why && ((w = pick_worker(s)) == NULL || (h = malloc(sizeof(*h))) == NULL))
		why = "out of memory";
	if (why) {
		if (capped)
			log_capped(s, kind, why);
		else
			wi_log(WI_LOG_WARN, "connection_refused", "listener=%s reason=\"%s\"", lkind_names[kind], why);
		if (keyed)
			wi_slots_release(s->per_peer, &key);
		wi_peer_free(peer);
		close(fd);
		return;
	}
	*h = (handoff){.fd = fd, .kind = kind, .peer = peer, .keyed = keyed};
	if (keyed)
		h->key = key;
	atomic_fetch_add(&s->n_open[kind], 1);
	atomic_fetch_add(&w->load, 1);
	pthread_mutex_lock(&w->lock);
	*w->inbox_tail = h;
	w->inbox_tail = &h->next;
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

static void on_listener_readable(uv_poll_t *p, int status, int events)
{
	(void)events;
	listener *l = (listener *)p;
	wi_tts_http *s = l->server;
	if (status < 0 || s->stopping)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		memset(&from, 0, sizeof(from));
		int fd = accept4(l->fd, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				listeners_poll(s, false);
				(void)uv_timer_start(&s->backoff, on_backoff, ACCEPT_BACKOFF_MS, 0);
			}
			return; /* EAGAIN: drained */
		}
		dispatch(s, l->kind, fd, &from);
	}
}

/* ---- start and stop ------------------------------------------------------------------ */

static void on_listener_closed(uv_handle_t *h)
{
	listener *l = (listener *)h;
	close(l->fd);
	l->fd = -1;
	server_unref(l->server);
}

static void free_server(wi_tts_http *s)
{
	if (s->config_inited)
		h2o_config_dispose(&s->config);
	wi_slots_free(s->per_peer);
	free(s->workers);
	free(s->unix_path);
	free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
	wi_tts_http *s = h->data;
	if (--s->handles_open == 0)
		free_server(s);
}

/* Last reference gone: no listener, worker or connection is left. */
static void finish(wi_tts_http *s)
{
	if (!s->handles_inited) {
		free_server(s);
		return;
	}
	s->handles_open = 2;
	uv_close((uv_handle_t *)&s->done, on_handle_closed);
	uv_close((uv_handle_t *)&s->backoff, on_handle_closed);
}

static void server_unref(wi_tts_http *s)
{
	if (--s->refs == 0)
		finish(s);
}

static int listen_fd(wi_tts_http *s, listener *l, lkind kind, int fd)
{
	l->server = s;
	l->kind = kind;
	l->fd = fd;
	int r = uv_poll_init(s->loop, &l->poll, fd);
	WI_CHECK(r == 0, WI_E_IO, "poll listener: %s", uv_strerror(r));
	l->inited = true;
	s->refs++;
	return 0;
}

static int listen_unix(wi_tts_http *s, const char *path, unsigned mode, int *ret_fd)
{
	struct stat st;
	if (lstat(path, &st) == 0) {
		/* A stale socket of an earlier run is replaced; any other file is
		 * the operator's and stays. */
		WI_CHECK(S_ISSOCK(st.st_mode), WI_E_IO, "%s exists and is not a socket", path);
		WI_CHECK_ERRNO(unlink(path) == 0 || errno == ENOENT, "unlink %s: %s", path, strerror(errno));
	} else {
		WI_CHECK_ERRNO(errno == ENOENT, "lstat %s: %s", path, strerror(errno));
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memcpy(sun.sun_path, path, strlen(path) + 1); /* length checked by check_options */
	_cleanup_(closep) int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	WI_CHECK_ERRNO(fd >= 0, "socket: %s", strerror(errno));
	WI_CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, WI_E_IO, "bind %s: %s", path, strerror(errno));
	WI_CHECK_ERRNO(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "lstat %s: %s", path, strerror(errno));
	s->unix_bound = true;
	s->unix_dev = st.st_dev;
	s->unix_ino = st.st_ino;
	/* Mode before listen(): until then every connect is refused.  No
	 * symlink is followed (glibc does this through O_PATH). */
	WI_CHECK_ERRNO(fchmodat(AT_FDCWD, path, mode & 07777, AT_SYMLINK_NOFOLLOW) == 0, "chmod %s: %s", path,
		       strerror(errno));
	WI_CHECK(listen(fd, WI_LISTEN_BACKLOG) == 0, WI_E_IO, "listen %s: %s", path, strerror(errno));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* A TCP listener: with TLS (tls_listen) or plain HTTP (tcp_listen). */
static int listen_tcp(const char *spec, const struct sockaddr_storage *addr, int *ret_fd)
{
	_cleanup_(closep) int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	WI_CHECK_ERRNO(fd >= 0, "socket: %s", strerror(errno));
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	WI_CHECK(bind(fd, (const struct sockaddr *)addr, len) == 0, WI_E_IO, "bind %s: %s", spec, strerror(errno));
	WI_CHECK(listen(fd, WI_LISTEN_BACKLOG) == 0, WI_E_IO, "listen %s: %s", spec, strerror(errno));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int check_options(const wi_tts_http_options *o, struct sockaddr_storage *tls_addr,
			 struct sockaddr_storage *tcp_addr)
{
	WI_CHECK(o && o->loop && o->handler, WI_E_INVAL, "HTTP options incomplete");
	WI_CHECK(o->unix_socket_path || o->tls_listen || o->tcp_listen, WI_E_CONFIG, "no HTTP listener configured");
	WI_CHECK(o->max_connections > 0, WI_E_CONFIG, "max_connections must be positive");
	WI_CHECK(o->io_timeout_ms > 0, WI_E_CONFIG, "io_timeout_ms must be positive");
	WI_CHECK(o->workers <= WI_HTTP_WORKERS_MAX, WI_E_CONFIG, "at most %u HTTP workers", WI_HTTP_WORKERS_MAX);
	/* max_body + 1 goes to h2o, and request sizes are summed with it. */
	WI_CHECK(o->max_body <= SIZE_MAX / 4, WI_E_CONFIG, "max_body too large");
	if (o->unix_socket_path) {
		struct sockaddr_un sun;
		WI_CHECK(o->unix_socket_path[0] && strlen(o->unix_socket_path) < sizeof(sun.sun_path), WI_E_CONFIG,
			 "socket path \"%s\" empty or too long", o->unix_socket_path);
	}
	if (o->tls_listen) {
		WI_CHECK(o->tls_ctx, WI_E_CONFIG, "tls_listen needs an SSL_CTX");
		WI_TRY(wi_hostport_parse(o->tls_listen, tls_addr));
	}
	if (o->tcp_listen)
		WI_TRY(wi_hostport_parse(o->tcp_listen, tcp_addr));
	return 0;
}

static unsigned default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > WI_HTTP_WORKERS_MAX ? WI_HTTP_WORKERS_MAX : (unsigned)n;
}

/* The listening sockets, bound and listening but not yet watched. */
static int bind_listeners(wi_tts_http *s, const wi_tts_http_options *o, const struct sockaddr_storage *tls_addr,
			  const struct sockaddr_storage *tcp_addr, int fds[L_KINDS])
{
	if (o->unix_socket_path)
		WI_TRY(listen_unix(s, s->unix_path, o->unix_socket_mode, &fds[L_UNIX]));
	if (o->tls_listen)
		WI_TRY(listen_tcp(o->tls_listen, tls_addr, &fds[L_TLS]));
	if (o->tcp_listen)
		WI_TRY(listen_tcp(o->tcp_listen, tcp_addr, &fds[L_TCP]));
	return 0;
}

int wi_tts_http_start(const wi_tts_http_options *o, wi_tts_http **ret)
{
	struct sockaddr_storage tls_addr, tcp_addr;
	WI_TRY(check_options(o, &tls_addr, &tcp_addr));

	wi_tts_http *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->n_workers = o->workers ? o->workers : default_workers();
	s->workers = calloc(s->n_workers, sizeof(*s->workers));
	s->unix_path = o->unix_socket_path ? strdup(o->unix_socket_path) : NULL;
	if (!s->workers || (o->unix_socket_path && !s->unix_path)) {
		free_server(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	s->loop = o->loop;
	s->handler = o->handler;
	s->handler_ud = o->handler_ud;
	s->max_body = o->max_body;
	s->max_connections = o->max_connections;
	s->io_timeout_ms = o->io_timeout_ms;
	if (o->max_per_peer && wi_slots_new(o->max_per_peer, o->max_connections * L_KINDS, &s->per_peer) < 0) {
		free_server(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	s->tls_ctx = o->tls_ctx;
	s->refs = 1;
	for (size_t i = 0; i < L_KINDS; i++)
		s->listeners[i].fd = -1;

	h2o_config_init(&s->config);
	s->config_inited = true;
	s->config.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no Server header */
	s->config.max_request_entity_size = o->max_body + 1;
	s->config.handshake_timeout = o->io_timeout_ms;
	s->config.http1.req_timeout = o->io_timeout_ms;
	s->config.http1.upgrade_to_http2 = 0;
	s->config.http2.idle_timeout = o->io_timeout_ms;
	h2o_hostconf_t *host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	/* No path is registered: every request, and every error h2o emits on
	 * its own, goes through the fallback path's handler and filter. */
	our_handler *hd = (our_handler *)h2o_create_handler(&host->fallback_path, sizeof(*hd));
	hd->super.on_req = on_req;
	hd->server = s;
	our_filter *ft = (our_filter *)h2o_create_filter(&host->fallback_path, sizeof(*ft));
	ft->super.on_setup_ostream = on_setup_ostream;
	ft->server = s;

	/* Sockets first: a bad address or path fails before any thread exists. */
	int fds[L_KINDS] = {-1, -1, -1};
	int rc = bind_listeners(s, o, &tls_addr, &tcp_addr, fds);
	if (rc == 0) {
		(void)uv_async_init(s->loop, &s->done, on_done);
		(void)uv_timer_init(s->loop, &s->backoff);
		s->done.data = s;
		s->backoff.data = s;
		s->handles_inited = true;
	}
	for (size_t i = 0; rc == 0 && i < s->n_workers; i++)
		rc = worker_start(s, &s->workers[i]);
	for (size_t i = 0; i < L_KINDS; i++) {
		if (fds[i] < 0)
			continue;
		if (rc == 0)
			rc = listen_fd(s, &s->listeners[i], (lkind)i, fds[i]);
		if (!s->listeners[i].inited)
			close(fds[i]);
	}
	if (rc < 0) {
		/* Workers already started have no connection yet: stop and join
		 * them here, then let stop undo the rest on the loop. */
		for (size_t i = 0; i < s->n_workers; i++) {
			worker *w = &s->workers[i];
			if (!w->started)
				continue;
			worker_request_stop(w);
			(void)uv_thread_join(&w->thread);
			pthread_mutex_destroy(&w->lock);
			w->joined = true;
			s->refs--;
		}
		wi_tts_http_stop(s);
		return rc;
	}
	listeners_poll(s, true);
	*ret = s;
	return 0;
}

void wi_tts_http_stop(wi_tts_http *s)
{
	if (!s || s->stopping)
		return;
	s->stopping = true;
	for (size_t i = 0; i < L_KINDS; i++)
		if (s->listeners[i].inited)
			uv_close((uv_handle_t *)&s->listeners[i].poll, on_listener_closed);
	if (s->handles_inited)
		(void)uv_timer_stop(&s->backoff);
	struct stat st;
	if (s->unix_bound && lstat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
	    st.st_ino == s->unix_ino)
		(void)unlink(s->unix_path); /* only our own socket, never a successor's */
	/* h2o 2.2.5 cannot close an HTTP/1 connection from outside: each worker
	 * shuts its sockets down (worker_stop), after answering the request it
	 * may be handling. */
	for (size_t i = 0; i < s->n_workers; i++)
		if (s->workers[i].started && !s->workers[i].joined)
			worker_request_stop(&s->workers[i]);
	server_unref(s);
}
