/* bench/echo_http.c — the HTTP ceilings: a bare libh2o (libuv build) server
 * answering every request with a body of the size named in the query
 * (`?size=N`) and Cache-Control: no-store, as the token endpoint does.  h2o
 * reads the whole request body first, as it does for the daemon.
 *
 *   wi-bench-echo-http SOCKET_PATH [--threads N]
 *                      [--tls HOST:PORT --cert PEM --key PEM --cacert PEM]
 *
 * It is threaded as the daemon's token service is: one thread accepts and
 * hands each connection to the worker holding the fewest (round-robin among
 * equals), and each of the N workers (default 1) runs its own libuv loop and
 * h2o context.  SOCKET_PATH is a Unix socket (HTTP/1.1); --tls adds a TCP
 * listener (IPv4 HOST:PORT) with TLS 1.3 and SPIFFE-style mTLS as the
 * daemon's HTTPS listener has it: the server presents --cert/--key, verifies
 * the client's certificate chain against --cacert, no session cache, and
 * TCP_NODELAY on every connection.  The Unix socket is created last, so its
 * existence means both listeners are up.  Runs until SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/ssl.h>
#include <uv.h>

#define RESP_MAX (1024 * 1024)
#define THREADS_MAX 64
#define INBOX_MAX 1024

enum { K_UNIX, K_TLS, K_KINDS };

typedef struct worker {
	pthread_t th;
	uv_loop_t loop;
	uv_async_t inbox_async;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept[K_KINDS];
	pthread_mutex_t lock; /* guards the inbox and conns */
	int inbox_fd[INBOX_MAX];
	int inbox_kind[INBOX_MAX];
	size_t inbox_n;
	size_t conns; /* open connections, for the hand-off */
} worker;

typedef struct conn {
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h; /* first: h2o's close callback gets &h */
	worker *w;
} conn;

static h2o_globalconf_t config;
static SSL_CTX *tls_ctx;
static worker workers[THREADS_MAX];
static size_t n_workers = 1, next_worker;
static char payload[RESP_MAX];

static size_t wanted_size(h2o_iovec_t path)
{
	const char *q = memchr(path.base, '?', path.len);
	if (!q)
		return 0;
	size_t off = (size_t)(q - path.base) + 1, n = 0;
	if (path.len - off < 5 || memcmp(path.base + off, "size=", 5) != 0)
		return 0;
	for (off += 5; off < path.len && path.base[off] >= '0' && path.base[off] <= '9'; off++) {
		n = n * 10 + (size_t)(path.base[off] - '0');
		if (n > RESP_MAX)
			return RESP_MAX;
	}
	return n;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	(void)self;
	size_t n = wanted_size(req->path);
	req->res.status = 200;
	req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
	h2o_send_inline(req, payload, n);
	return 0;
}

/* ---- workers --------------------------------------------------------------- */

static void on_conn_close(uv_handle_t *h)
{
	conn *c = (conn *)h;
	pthread_mutex_lock(&c->w->lock);
	c->w->conns--;
	pthread_mutex_unlock(&c->w->lock);
	free(c);
}

static void conn_refused(worker *w, int fd)
{
	pthread_mutex_lock(&w->lock);
	w->conns--;
	pthread_mutex_unlock(&w->lock);
	close(fd);
}

static void serve_fd(worker *w, int fd, int kind)
{
	conn *c = calloc(1, sizeof(*c));
	if (!c || (kind == K_UNIX ? uv_pipe_init(&w->loop, &c->h.pipe, 0) : uv_tcp_init(&w->loop, &c->h.tcp)) != 0) {
		free(c);
		conn_refused(w, fd);
		return;
	}
	c->w = w;
	if ((kind == K_UNIX ? uv_pipe_open(&c->h.pipe, fd) : uv_tcp_open(&c->h.tcp, fd)) != 0) {
		close(fd);
		uv_close((uv_handle_t *)&c->h, on_conn_close); /* counts the connection out */
		return;
	}
	if (kind == K_TLS)
		(void)uv_tcp_nodelay(&c->h.tcp, 1); /* answers are one write each, as in the daemon */
	h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->h, on_conn_close);
	h2o_accept(&w->accept[kind], sock);
}

static void on_inbox(uv_async_t *a)
{
	worker *w = a->data;
	int fds[INBOX_MAX], kinds[INBOX_MAX];
	pthread_mutex_lock(&w->lock);
	size_t n = w->inbox_n;
	memcpy(fds, w->inbox_fd, n * sizeof(*fds));
	memcpy(kinds, w->inbox_kind, n * sizeof(*kinds));
	w->inbox_n = 0;
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < n; i++)
		serve_fd(w, fds[i], kinds[i]);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int worker_start(worker *w)
{
	pthread_mutex_init(&w->lock, NULL);
	if (uv_loop_init(&w->loop) != 0 || uv_async_init(&w->loop, &w->inbox_async, on_inbox) != 0)
		return -1;
	w->inbox_async.data = w;
	h2o_context_init(&w->ctx, &w->loop, &config);
	w->accept[K_UNIX] = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = config.hosts};
	w->accept[K_TLS] = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = config.hosts, .ssl_ctx = tls_ctx};
	return pthread_create(&w->th, NULL, worker_main, w) == 0 ? 0 : -1;
}

/* ---- accepting (main thread) ----------------------------------------------- */

/* The worker with the fewest connections; round-robin among equals. */
static worker *pick_worker(void)
{
	size_t best = next_worker % n_workers, best_n = (size_t)-1;
	for (size_t k = 0; k < n_workers; k++) {
		size_t i = (next_worker + k) % n_workers;
		pthread_mutex_lock(&workers[i].lock);
		size_t n = workers[i].conns;
		pthread_mutex_unlock(&workers[i].lock);
		if (n < best_n) {
			best = i;
			best_n = n;
		}
	}
	next_worker = best + 1;
	return &workers[best];
}

static void on_listener(uv_poll_t *p, int status, int events)
{
	(void)events;
	if (status < 0)
		return;
	int lfd = -1, kind = (int)(intptr_t)p->data;
	(void)uv_fileno((uv_handle_t *)p, &lfd);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN, or out of descriptors: the next readiness retries */
		}
		worker *w = pick_worker();
		pthread_mutex_lock(&w->lock);
		bool queued = w->inbox_n < INBOX_MAX;
		if (queued) {
			w->inbox_fd[w->inbox_n] = fd;
			w->inbox_kind[w->inbox_n++] = kind;
			w->conns++;
		}
		pthread_mutex_unlock(&w->lock);
		if (!queued)
			close(fd);
		else
			(void)uv_async_send(&w->inbox_async);
	}
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	(void)unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 512) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int listen_tcp4(const char *hostport)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 512) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static SSL_CTX *tls_setup(const char *cert, const char *key, const char *cacert)
{
	SSL_CTX *t = SSL_CTX_new(TLS_server_method());
	if (!t || SSL_CTX_set_min_proto_version(t, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(t, cert) != 1 || SSL_CTX_use_PrivateKey_file(t, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t) != 1 || SSL_CTX_load_verify_locations(t, cacert, NULL) != 1) {
		SSL_CTX_free(t);
		return NULL;
	}
	SSL_CTX_set_verify(t, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_cache_mode(t, SSL_SESS_CACHE_OFF);
	return t;
}

static const char *socket_path;

static void on_signal(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	unlink(socket_path);
	_exit(0); /* a benchmark ceiling: nothing to flush */
}

static int usage(void)
{
	fprintf(stderr, "usage: wi-bench-echo-http SOCKET_PATH [--threads N] "
			"[--tls HOST:PORT --cert PEM --key PEM --cacert PEM]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 'n'}, {"tls", required_argument, NULL, 'T'},
		{"cert", required_argument, NULL, 'E'},    {"key", required_argument, NULL, 'K'},
		{"cacert", required_argument, NULL, 'A'},  {0},
	};
	const char *tls_listen = NULL, *cert = NULL, *key = NULL, *cacert = NULL;
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': n_workers = (size_t)strtoul(optarg, NULL, 10); break;
		case 'T': tls_listen = optarg; break;
		case 'E': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'A': cacert = optarg; break;
		default: return usage();
		}
	}
	if (optind != argc - 1 || n_workers < 1 || n_workers > THREADS_MAX || (tls_listen && (!cert || !key || !cacert)))
		return usage();
	socket_path = argv[optind];
	memset(payload, 'e', sizeof(payload));
	signal(SIGPIPE, SIG_IGN);

	int lfd[K_KINDS] = {-1, -1};
	if (tls_listen) {
		if (!(tls_ctx = tls_setup(cert, key, cacert))) {
			fprintf(stderr, "echo-http: cannot load the TLS certificate, key or CA\n");
			return 1;
		}
		if ((lfd[K_TLS] = listen_tcp4(tls_listen)) < 0) {
			fprintf(stderr, "echo-http: %s: cannot listen (IPv4 HOST:PORT): %s\n", tls_listen, strerror(errno));
			return 1;
		}
	}
	h2o_config_init(&config);
	config.server_name = h2o_iovec_init(H2O_STRLIT(""));
	config.http1.upgrade_to_http2 = 0;
	h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_handler_t *hd = h2o_create_handler(&host->fallback_path, sizeof(*hd));
	hd->on_req = on_req;
	for (size_t i = 0; i < n_workers; i++) {
		if (worker_start(&workers[i]) < 0) {
			fprintf(stderr, "echo-http: cannot start worker %zu\n", i);
			return 1;
		}
	}
	if ((lfd[K_UNIX] = listen_unix(socket_path)) < 0) {
		fprintf(stderr, "echo-http: %s: cannot listen: %s\n", socket_path, strerror(errno));
		return 1;
	}

	uv_loop_t *loop = uv_default_loop();
	static uv_poll_t polls[K_KINDS];
	for (int k = 0; k < K_KINDS; k++) {
		if (lfd[k] < 0)
			continue;
		if (uv_poll_init(loop, &polls[k], lfd[k]) != 0) {
			fprintf(stderr, "echo-http: cannot poll listener %d\n", k);
			return 1;
		}
		polls[k].data = (void *)(intptr_t)k; /* after init: the handle is libuv's until then */
		if (uv_poll_start(&polls[k], UV_READABLE, on_listener) != 0) {
			fprintf(stderr, "echo-http: cannot poll listener %d\n", k);
			return 1;
		}
	}
	static uv_signal_t sigs[2];
	(void)uv_signal_init(loop, &sigs[0]);
	(void)uv_signal_init(loop, &sigs[1]);
	(void)uv_signal_start(&sigs[0], on_signal, SIGTERM);
	(void)uv_signal_start(&sigs[1], on_signal, SIGINT);
	printf("ready\n");
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	unlink(socket_path);
	_exit(0);
}
