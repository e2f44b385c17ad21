/* bench/echo_http.c — the HTTP ceiling: a bare libh2o (libuv build) server on
 * a Unix socket, one libuv loop thread, answering every request with a body
 * of the size named in the query (`?size=N`) and Cache-Control: no-store, as
 * the token endpoint does.  h2o reads the whole request body first, as it
 * does for the daemon.
 *
 *   wi-bench-echo-http SOCKET_PATH      (runs until SIGTERM/SIGINT) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <h2o.h>
#include <uv.h>

#define RESP_MAX (1024 * 1024)

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
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

static void on_conn_close(uv_handle_t *h)
{
	free(h);
}

static void on_accept(uv_stream_t *listener, int status)
{
	if (status != 0)
		return;
	uv_pipe_t *conn = calloc(1, sizeof(*conn));
	if (!conn)
		return;
	(void)uv_pipe_init(listener->loop, conn, 0);
	if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
		uv_close((uv_handle_t *)conn, on_conn_close);
		return;
	}
	h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_close);
	h2o_accept(&accept_ctx, sock);
}

static void on_signal(uv_signal_t *h, int sig)
{
	(void)sig;
	uv_stop(h->loop);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: wi-bench-echo-http SOCKET_PATH\n");
		return 2;
	}
	memset(payload, 'e', sizeof(payload));
	uv_loop_t *loop = uv_default_loop();
	h2o_config_init(&config);
	config.server_name = h2o_iovec_init(H2O_STRLIT(""));
	config.http1.upgrade_to_http2 = 0;
	h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_handler_t *hd = h2o_create_handler(&host->fallback_path, sizeof(*hd));
	hd->on_req = on_req;
	h2o_context_init(&ctx, loop, &config);
	accept_ctx = (h2o_accept_ctx_t){.ctx = &ctx, .hosts = config.hosts};

	static uv_pipe_t listener;
	unlink(argv[1]);
	int r = uv_pipe_init(loop, &listener, 0);
	if (r == 0)
		r = uv_pipe_bind(&listener, argv[1]);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&listener, 512, on_accept);
	if (r != 0) {
		fprintf(stderr, "echo-http: %s: %s\n", argv[1], uv_strerror(r));
		return 1;
	}
	static uv_signal_t sigs[2];
	(void)uv_signal_init(loop, &sigs[0]);
	(void)uv_signal_init(loop, &sigs[1]);
	(void)uv_signal_start(&sigs[0], on_signal, SIGTERM);
	(void)uv_signal_start(&sigs[1], on_signal, SIGINT);
	printf("ready\n");
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	unlink(argv[1]);
	_exit(0);
}
