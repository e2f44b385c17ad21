/* tests/unit/test_http.c — the TTS HTTP front end (txn-token/http.h) driven
 * by libcurl from the test thread while the server's uv loop runs in a
 * background thread.  The handler echoes what it was given as JSON.
 *
 * Every server is stopped through the loop, which must then hold no handle of
 * it any more: that checks the asynchronous teardown.
 * Run under ASan (-DWI_SANITIZE=ON) the disconnect cases check for
 * use-after-free. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "core/ca.h"
#include "core/error.h"
#include "core/log.h"
#include "core/limits.h"
#include "core/svid.h"
#include "txn-token/http.h"

#define TD "example.org"
#define MAX_BODY (64u * 1024u)

/* ---- time and files ------------------------------------------------------------ */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void make_tmpdir(char *buf, size_t len, const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(buf, len, "%s/wi-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
	assert_non_null(mkdtemp(buf));
}

/* ---- the handler ------------------------------------------------------------------ */

typedef struct handler_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int waiting;  /* handlers parked on /wait */
	int finished; /* /wait handlers that returned */
	bool release;
	int calls;
} handler_state;

static handler_state H = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void handler_reset(void)
{
	pthread_mutex_lock(&H.mu);
	H.waiting = H.finished = H.calls = 0;
	H.release = false;
	pthread_mutex_unlock(&H.mu);
}

static void echo_handler(void *ud, const wi_http_request *req, wi_http_response *resp)
{
	assert_ptr_equal(ud, &H);
	pthread_mutex_lock(&H.mu);
	H.calls++;
	pthread_mutex_unlock(&H.mu);

	if (strcmp(req->path, "/wait") == 0) {
		pthread_mutex_lock(&H.mu);
		H.waiting++;
		pthread_cond_broadcast(&H.cv);
		while (!H.release)
			pthread_cond_wait(&H.cv, &H.mu);
		pthread_mutex_unlock(&H.mu);
	}
	if (strcmp(req->path, "/error") == 0) {
		wi_http_oauth_error(resp, 400, "invalid_request", "bad \"thing\"");
		return;
	}
	if (strcmp(req->path, "/only-post") == 0 && strcmp(req->method, "POST") != 0) {
		wi_http_oauth_error(resp, 405, "invalid_request", "use POST");
		resp->allow = "POST";
		return;
	}
	if (strcmp(req->path, "/empty") == 0) {
		resp->status = 204;
		return;
	}

	json_t *o = json_object();
	json_object_set_new(o, "method", json_string(req->method));
	json_object_set_new(o, "path", json_string(req->path));
	json_object_set_new(o, "query", json_string(req->query));
	json_object_set_new(o, "content_type", json_string(req->content_type));
	json_t *b = json_stringn((const char *)req->body, req->body_len);
	json_object_set_new(o, "body", b ? b : json_string("<binary>"));
	json_object_set_new(o, "body_len", json_integer((json_int_t)req->body_len));
	/* the server NUL-terminates the body copy */
	json_object_set_new(o, "body_nul", json_boolean(req->body[req->body_len] == '\0'));
	json_object_set_new(o, "authn", json_integer(req->caller->authn));
	if (req->caller->peer) {
		json_object_set_new(o, "pid", json_integer(wi_peer_pid(req->caller->peer)));
		json_object_set_new(o, "uid", json_integer(wi_peer_uid(req->caller->peer)));
	}
	json_object_set_new(o, "tls_peer_id",
			    req->caller->tls_peer_id ? json_string(req->caller->tls_peer_id) : json_null());
	resp->body = json_dumps(o, JSON_COMPACT);
	resp->body_len = strlen(resp->body);
	resp->no_store = strcmp(req->path, "/token") == 0;
	json_decref(o);

	if (strcmp(req->path, "/wait") == 0) {
		pthread_mutex_lock(&H.mu);
		H.finished++;
		pthread_cond_broadcast(&H.cv);
		pthread_mutex_unlock(&H.mu);
	}
}

/* Waits (bounded) until pred holds on H. */
static bool wait_for(bool (*pred)(void), long max_ms)
{
	long deadline = now_ms() + max_ms;
	pthread_mutex_lock(&H.mu);
	bool ok;
	while (!(ok = pred())) {
		long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&H.cv, &H.mu, &ts);
	}
	pthread_mutex_unlock(&H.mu);
	return ok;
}

static bool one_waiting(void)
{
	return H.waiting >= 1;
}

static bool one_finished(void)
{
	return H.finished >= 1;
}

static void release_handlers(void)
{
	pthread_mutex_lock(&H.mu);
	H.release = true;
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
}

/* ---- one loop thread for the whole run ----------------------------------------------
 *
 * As in the daemon, the loop lives as long as the process: h2o keeps
 * per-thread memory caches that are only reachable from the loop thread.
 * Tests talk to the loop through a mailbox and a uv_async_t. */

typedef enum cmd_op { CMD_START = 1, CMD_STOP, CMD_COUNT } cmd_op;

typedef struct server {
	char dir[200];
	char sock[300];
	wi_tts_http_options opts;
	wi_tts_http *h;
	int start_rc;
	char detail[512];
} server;

static struct {
	pthread_t th;
	uv_loop_t loop;
	uv_async_t cmd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	cmd_op op;      /* 0: mailbox empty */
	server *sv;
	int result;
	bool done;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void count_handle(uv_handle_t *h, void *arg)
{
	(void)h;
	(*(int *)arg)++;
}

static void on_cmd(uv_async_t *a)
{
	(void)a;
	pthread_mutex_lock(&L.mu);
	cmd_op op = L.op;
	server *sv = L.sv;
	pthread_mutex_unlock(&L.mu);
	if (!op)
		return;
	int result = 0;
	switch (op) {
	case CMD_START:
		sv->opts.loop = &L.loop;
		sv->start_rc = wi_tts_http_start(&sv->opts, &sv->h);
		snprintf(sv->detail, sizeof(sv->detail), "%s", wi_error_detail());
		result = sv->start_rc;
		break;
	case CMD_STOP:
		wi_tts_http_stop(sv->h);
		break;
	case CMD_COUNT:
		uv_walk(&L.loop, count_handle, &result);
		break;
	}
	pthread_mutex_lock(&L.mu);
	L.op = 0;
	L.result = result;
	L.done = true;
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&L.loop, UV_RUN_DEFAULT); /* runs until the process exits */
	return NULL;
}

static void loop_init(void)
{
	assert_int_equal(uv_loop_init(&L.loop), 0);
	assert_int_equal(uv_async_init(&L.loop, &L.cmd, on_cmd), 0);
	assert_int_equal(pthread_create(&L.th, NULL, loop_main, NULL), 0);
	pthread_detach(L.th);
}

static int loop_call(cmd_op op, server *sv)
{
	pthread_mutex_lock(&L.mu);
	L.op = op;
	L.sv = sv;
	L.done = false;
	pthread_mutex_unlock(&L.mu);
	uv_async_send(&L.cmd);
	pthread_mutex_lock(&L.mu);
	while (!L.done)
		pthread_cond_wait(&L.cv, &L.mu);
	int r = L.result;
	pthread_mutex_unlock(&L.mu);
	return r;
}

/* Waits until the loop holds nothing but the mailbox handle: every listener,
 * connection and h2o timer of the stopped server was closed (and, the last
 * close callback being the one that frees it, the server is gone). */
static void loop_wait_idle(void)
{
	long deadline = now_ms() + 5000;
	int n;
	while ((n = loop_call(CMD_COUNT, NULL)) != 1) {
		if (now_ms() > deadline)
			fail_msg("%d handles left on the loop after stop", n - 1);
		usleep(5 * 1000);
	}
}

static void server_defaults(server *sv)
{
	memset(sv, 0, sizeof(*sv));
	make_tmpdir(sv->dir, sizeof(sv->dir), "http");
	snprintf(sv->sock, sizeof(sv->sock), "%s/tts.sock", sv->dir);
	sv->opts.unix_socket_path = sv->sock;
	sv->opts.unix_socket_mode = 0777;
	sv->opts.handler = echo_handler;
	sv->opts.handler_ud = &H;
	sv->opts.max_body = MAX_BODY;
	sv->opts.max_connections = 64;
	sv->opts.io_timeout_ms = 5000;
	sv->opts.workers = 2; /* not the machine's core count: the tests need two */
	handler_reset();
}

/* Returns wi_tts_http_start's code; a failed start cleans up on the loop. */
static int server_run(server *sv)
{
	int rc = loop_call(CMD_START, sv);
	if (rc != 0)
		loop_wait_idle();
	return rc;
}

/* Servers still running, stopped by the per-test teardown when a test fails
 * half-way (so that one failure does not cascade). */
static server *running[4];

static void server_start(server *sv)
{
	if (server_run(sv) != 0)
		fail_msg("wi_tts_http_start: %d %s", sv->start_rc, sv->detail);
	for (size_t i = 0; i < 4; i++) {
		if (!running[i]) {
			running[i] = sv;
			break;
		}
	}
}

/* Stop without waiting for the teardown. */
static void server_stop_async(server *sv)
{
	for (size_t i = 0; i < 4; i++)
		if (running[i] == sv)
			running[i] = NULL;
	loop_call(CMD_STOP, sv);
}

static void server_stop(server *sv)
{
	server_stop_async(sv);
	loop_wait_idle();
	nftw(sv->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int teardown(void **state)
{
	(void)state;
	release_handlers();
	for (size_t i = 0; i < 4; i++)
		if (running[i])
			server_stop(running[i]);
	return 0;
}

/* ---- libcurl client ------------------------------------------------------------------- */

typedef struct reply {
	CURLcode rc;
	long status;
	char *body;
	size_t len;
	char headers[8192]; /* lowercased */
	size_t hlen;
} reply;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	reply *r = ud;
	size_t add = sz * n;
	char *nb = realloc(r->body, r->len + add + 1);
	assert_non_null(nb);
	memcpy(nb + r->len, p, add);
	r->body = nb;
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	reply *r = ud;
	size_t add = sz * n;
	for (size_t i = 0; i < add && r->hlen + 1 < sizeof(r->headers); i++)
		r->headers[r->hlen++] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
	r->headers[r->hlen] = '\0';
	return add;
}

static void reply_free(reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

typedef struct req_opts {
	const char *method; /* NULL: GET, or POST when a body is given */
	const char *body;
	size_t body_len;
	const char *ctype;
	long timeout_ms;
	bool chunked;
	/* TLS */
	const char *cainfo;
	const char *cert;
	const char *key;
} req_opts;

typedef struct chunk_src {
	const char *p;
	size_t left;
} chunk_src;

static size_t read_chunked(char *buf, size_t sz, size_t n, void *ud)
{
	chunk_src *s = ud;
	size_t k = sz * n < s->left ? sz * n : s->left;
	memcpy(buf, s->p, k);
	s->p += k;
	s->left -= k;
	return k;
}

/* One request on a fresh connection.  `sock` NULL: url is https. */
static void request(const char *sock, const char *url, const req_opts *o, reply *r)
{
	memset(r, 0, sizeof(*r));
	CURL *c = curl_easy_init();
	assert_non_null(c);
	struct curl_slist *hdrs = NULL;
	chunk_src src = {0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o && o->timeout_ms ? o->timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	if (o && o->body) {
		if (o->chunked) {
			src.p = o->body;
			src.left = o->body_len;
			curl_easy_setopt(c, CURLOPT_POST, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, read_chunked);
			curl_easy_setopt(c, CURLOPT_READDATA, &src);
			hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
		} else {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
		}
	}
	if (o && o->method) {
		if (strcmp(o->method, "HEAD") == 0)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		else
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
	}
	if (o && o->ctype) {
		char h[256];
		snprintf(h, sizeof(h), "Content-Type: %s", o->ctype);
		hdrs = curl_slist_append(hdrs, h);
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (o && o->cainfo) {
		curl_easy_setopt(c, CURLOPT_CAINFO, o->cainfo);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		/* SPIFFE: the server is identified by its URI SAN, not a host name */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	}
	if (o && o->cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
	}
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
}

static json_t *reply_json(const reply *r)
{
	json_error_t err;
	json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &err);
	if (!j)
		fail_msg("reply is not JSON (%s): %.*s", err.text, (int)r->len, r->body ? r->body : "");
	return j;
}

static void assert_oauth_error(const reply *r, long status, const char *error)
{
	if (r->rc != CURLE_OK || r->status != status)
		fail_msg("want %ld, got rc=%d (%s) status=%ld", status, r->rc, curl_easy_strerror(r->rc), r->status);
	assert_non_null(strstr(r->headers, "content-type: application/json"));
	assert_non_null(strstr(r->headers, "cache-control: no-store"));
	assert_non_null(strstr(r->headers, "pragma: no-cache"));
	json_t *j = reply_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), error);
	assert_true(json_is_string(json_object_get(j, "error_description")));
	assert_int_equal(json_object_size(j), 2);
	json_decref(j);
}

/* ---- raw sockets ------------------------------------------------------------------------ */

static int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Milliseconds until the server closes fd (EOF or reset), or -1 after max_ms. */
static long wait_closed(int fd, long max_ms)
{
	long t0 = now_ms();
	for (;;) {
		long left = max_ms - (now_ms() - t0);
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, (int)left);
		if (n <= 0)
			continue;
		char buf[4096];
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return now_ms() - t0;
	}
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_get_post(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	server_start(&sv);

	/* the socket has the configured mode */
	struct stat st;
	assert_int_equal(lstat(sv.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0777);

	reply r;
	request(sv.sock, "http://localhost/hello/world?x=1&y=%20", NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "content-type: application/json"));
	assert_null(strstr(r.headers, "cache-control"));
	assert_null(strstr(r.headers, "server:"));
	json_t *j = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/hello/world");
	assert_string_equal(json_string_value(json_object_get(j, "query")), "x=1&y=%20");
	assert_string_equal(json_string_value(json_object_get(j, "content_type")), "");
	assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "authn")), WI_HTTP_AUTHN_UNIX);
	/* the caller, attested at accept, is this very process */
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
	assert_int_equal(json_integer_value(json_object_get(j, "uid")), getuid());
	assert_true(json_is_null(json_object_get(j, "tls_peer_id")));
	json_decref(j);
	reply_free(&r);

	const char *form = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&scope=a+b";
	req_opts po = {.body = form, .body_len = strlen(form),
		       .ctype = "Application/X-WWW-Form-URLencoded ; charset=UTF-8"};
	request(sv.sock, "http://localhost/token", &po, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	/* no_store from the handler */
	assert_non_null(strstr(r.headers, "cache-control: no-store"));
	assert_non_null(strstr(r.headers, "pragma: no-cache"));
	j = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/token");
	assert_string_equal(json_string_value(json_object_get(j, "query")), "");
	assert_string_equal(json_string_value(json_object_get(j, "content_type")),
			    "application/x-www-form-urlencoded");
	assert_string_equal(json_string_value(json_object_get(j, "body")), form);
	assert_true(json_is_true(json_object_get(j, "body_nul")));
	json_decref(j);
	reply_free(&r);

	/* a handler error: RFC 6749 JSON, status and no-store */
	request(sv.sock, "http://localhost/error", NULL, &r);
	assert_oauth_error(&r, 400, "invalid_request");
	reply_free(&r);

	/* 405 carries Allow */
	request(sv.sock, "http://localhost/only-post", NULL, &r);
	assert_oauth_error(&r, 405, "invalid_request");
	assert_non_null(strstr(r.headers, "allow: post"));
	reply_free(&r);

	/* HEAD: headers with the length, no body */
	req_opts ho = {.method = "HEAD"};
	request(sv.sock, "http://localhost/hello", &ho, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_non_null(strstr(r.headers, "content-length: "));
	reply_free(&r);

	/* 204: no body at all */
	request(sv.sock, "http://localhost/empty", NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.len, 0);
	reply_free(&r);

	/* keep-alive: two requests on one connection */
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sv.sock);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	memset(&r, 0, sizeof(r));
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/one");
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/two");
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	long conns = -1;
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	assert_int_equal(conns, 0); /* the second request reused the connection */
	curl_easy_cleanup(c);
	assert_non_null(strstr(r.body, "\"/two\""));
	reply_free(&r);

	server_stop(&sv);
	/* stop removed our socket file */
	assert_int_equal(lstat(sv.sock, &st), -1);
}

static void test_body_limits(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	server_start(&sv);

	size_t big = 1024 * 1024 + 1;
	char *body = malloc(big);
	assert_non_null(body);
	memset(body, 'a', big);
	reply r;

	/* exactly max_body: served */
	req_opts o = {.body = body, .body_len = MAX_BODY, .ctype = "text/plain"};
	request(sv.sock, "http://localhost/echo", &o, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	json_t *j = reply_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "body_len")), MAX_BODY);
	json_decref(j);
	reply_free(&r);

	/* one byte more: refused by our handler path */
	o.body_len = MAX_BODY + 1;
	request(sv.sock, "http://localhost/echo", &o, &r);
	assert_oauth_error(&r, 413, "invalid_request");
	reply_free(&r);

	/* 1 MiB and 1 MiB + 1 (curl then sends Expect: 100-continue): refused
	 * by h2o on Content-Length, before the body is read; same JSON */
	size_t sizes[] = {1024 * 1024, 1024 * 1024 + 1};
	for (size_t i = 0; i < 10; i++) {
		/* repeated: the server closes while the client may still be
		 * sending, and the lingering close must make the 413 arrive */
		o.body_len = sizes[i % 2];
		request(sv.sock, "http://localhost/echo", &o, &r);
		assert_oauth_error(&r, 413, "invalid_request");
		reply_free(&r);
		/* and the server still serves the next request */
		request(sv.sock, "http://localhost/after", NULL, &r);
		assert_int_equal(r.rc, CURLE_OK);
		assert_int_equal(r.status, 200);
		reply_free(&r);
	}

	/* chunked: refused once the decoded body reaches the limit */
	req_opts co = {.body = body, .body_len = 4 * MAX_BODY, .chunked = true};
	request(sv.sock, "http://localhost/echo", &co, &r);
	assert_oauth_error(&r, 413, "invalid_request");
	reply_free(&r);
	/* a small chunked body is fine */
	co.body_len = 1000;
	request(sv.sock, "http://localhost/echo", &co, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	reply_free(&r);

	/* a broken Content-Length: h2o's 400, rewritten to JSON */
	int fd = raw_connect(sv.sock);
	const char *bad = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12x\r\n\r\n";
	assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
	char buf[2048];
	size_t got = 0;
	for (;;) {
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	close(fd);
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
	assert_non_null(strstr(buf, "{\"error\":\"invalid_request\""));
	assert_non_null(strstr(buf, "no-store"));

	/* two Content-Type headers are refused */
	fd = raw_connect(sv.sock);
	const char *two = "GET /x HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n"
			  "Connection: close\r\n\r\n";
	assert_int_equal(write(fd, two, strlen(two)), (ssize_t)strlen(two));
	got = 0;
	for (;;) {
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	close(fd);
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
	assert_non_null(strstr(buf, "Content-Type"));

	/* lingering close: after h2o's 413 the client reads end-of-file, may
	 * still send (the server discards), and stop ends the lingering at once */
	fd = raw_connect(sv.sock);
	const char *hdr = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n";
	assert_int_equal(write(fd, hdr, strlen(hdr)), (ssize_t)strlen(hdr));
	assert_int_equal(write(fd, body, 1000), 1000);
	got = 0;
	for (;;) {
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (k <= 0)
			break; /* end-of-file after the answer: the server half-closed */
		got += (size_t)k;
	}
	buf[got] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	assert_non_null(strstr(buf, "request body too large"));
	assert_int_equal(write(fd, body, 4096), 4096); /* no EPIPE: still drained */
	long t0 = now_ms();
	free(body);
	server_stop(&sv);
	long stop_ms = now_ms() - t0;
	close(fd);
	if (stop_ms > 2000)
		fail_msg("stop waited %ld ms for a lingering connection", stop_ms);
}

static void test_idle_timeout(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	sv.opts.io_timeout_ms = 300;
	server_start(&sv);

	/* connects and sends nothing */
	int fd = raw_connect(sv.sock);
	long ms = wait_closed(fd, 5000);
	close(fd);
	if (ms < 200 || ms > 2500)
		fail_msg("idle connection closed after %ld ms (timeout 300)", ms);

	/* slow loris: a header trickle does not extend the deadline */
	fd = raw_connect(sv.sock);
	long t0 = now_ms();
	const char *parts[] = {"GET / HTTP/1.1\r\n", "Host: a\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n"};
	bool closed = false;
	for (size_t i = 0; i < 5 && !closed; i++) {
		if (write(fd, parts[i], strlen(parts[i])) < 0)
			closed = true;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 150) == 1)
			closed = true;
	}
	if (!closed)
		assert_true(wait_closed(fd, 5000) >= 0);
	long total = now_ms() - t0;
	close(fd);
	if (total > 2500)
		fail_msg("slow client kept for %ld ms", total);

	/* a keep-alive connection is closed after the same idle time */
	fd = raw_connect(sv.sock);
	const char *get = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(write(fd, get, strlen(get)), (ssize_t)strlen(get));
	char buf[2048];
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	assert_true(k > 0);
	buf[k] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 200 "));
	assert_non_null(strstr(buf, "Connection: keep-alive"));
	ms = wait_closed(fd, 5000);
	close(fd);
	if (ms < 200 || ms > 2500)
		fail_msg("idle keep-alive connection closed after %ld ms (timeout 300)", ms);

	server_stop(&sv);
}

typedef struct bg_request {
	pthread_t th;
	const char *sock;
	const char *url;
	long timeout_ms;
	reply r;
} bg_request;

static void *bg_main(void *arg)
{
	bg_request *b = arg;
	req_opts o = {.timeout_ms = b->timeout_ms};
	request(b->sock, b->url, &o, &b->r);
	return NULL;
}

static void test_client_gone(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	server_start(&sv);

	/* the client gives up while the handler is parked */
	bg_request b = {.sock = sv.sock, .url = "http://localhost/wait", .timeout_ms = 300};
	assert_int_equal(pthread_create(&b.th, NULL, bg_main, &b), 0);
	assert_true(wait_for(one_waiting, 5000));
	pthread_join(b.th, NULL);
	assert_int_equal(b.r.rc, CURLE_OPERATION_TIMEDOUT);
	reply_free(&b.r);
	/* now the handler answers into a closed connection */
	release_handlers();
	assert_true(wait_for(one_finished, 5000));

	/* the server is fine: several more requests */
	for (int i = 0; i < 3; i++) {
		reply r;
		request(sv.sock, "http://localhost/after", NULL, &r);
		assert_int_equal(r.rc, CURLE_OK);
		assert_int_equal(r.status, 200);
		reply_free(&r);
	}
	server_stop(&sv);
}

static void test_stop_with_work_in_flight(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	server_start(&sv);

	int idle = raw_connect(sv.sock);
	bg_request b = {.sock = sv.sock, .url = "http://localhost/wait", .timeout_ms = 5000};
	assert_int_equal(pthread_create(&b.th, NULL, bg_main, &b), 0);
	assert_true(wait_for(one_waiting, 5000));

	/* stop while a request is in the thread pool and a connection idles */
	server_stop_async(&sv);
	/* the idle connection is closed at once */
	assert_true(wait_closed(idle, 3000) >= 0);
	close(idle);
	/* new connections are refused: the socket file is gone */
	struct stat st;
	long deadline = now_ms() + 3000;
	while (lstat(sv.sock, &st) == 0 && now_ms() < deadline)
		usleep(10 * 1000);
	assert_int_equal(lstat(sv.sock, &st), -1);

	/* the server is freed only after the handler returns */
	release_handlers();
	pthread_join(b.th, NULL);
	/* the client got either nothing or the answer; never a crash */
	reply_free(&b.r);
	loop_wait_idle();
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool three_waiting(void)
{
	return H.waiting >= 3;
}

static bool two_waiting(void)
{
	return H.waiting >= 2;
}

/* Connections are spread over the workers, each running its handlers in
 * place: three workers run three handlers at once; one worker runs one at a
 * time.  The caller attested at accept reaches the handler on its worker. */
static void test_workers(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	sv.opts.workers = 3;
	server_start(&sv);
	bg_request b[3];
	for (int i = 0; i < 3; i++) {
		b[i] = (bg_request){.sock = sv.sock, .url = "http://localhost/wait", .timeout_ms = 5000};
		assert_int_equal(pthread_create(&b[i].th, NULL, bg_main, &b[i]), 0);
	}
	if (!wait_for(three_waiting, 5000))
		fail_msg("three workers ran %d handlers at once", H.waiting);
	release_handlers();
	for (int i = 0; i < 3; i++) {
		pthread_join(b[i].th, NULL);
		assert_int_equal(b[i].r.rc, CURLE_OK);
		assert_int_equal(b[i].r.status, 200);
		json_t *o = json_loads(b[i].r.body, 0, NULL);
		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
		json_decref(o);
		reply_free(&b[i].r);
	}
	server_stop(&sv);

	server_defaults(&sv);
	sv.opts.workers = 1;
	server_start(&sv);
	for (int i = 0; i < 2; i++) {
		b[i] = (bg_request){.sock = sv.sock, .url = "http://localhost/wait", .timeout_ms = 5000};
		assert_int_equal(pthread_create(&b[i].th, NULL, bg_main, &b[i]), 0);
	}
	assert_true(wait_for(one_waiting, 5000));
	assert_false(wait_for(two_waiting, 300)); /* the second waits for the worker */
	release_handlers();
	for (int i = 0; i < 2; i++) {
		pthread_join(b[i].th, NULL);
		assert_int_equal(b[i].r.status, 200);
		reply_free(&b[i].r);
	}
	server_stop(&sv);
}

/* Log events seen by the sink (it runs on the server's threads). */
static pthread_mutex_t refused_lock = PTHREAD_MUTEX_INITIALIZER;
static int refused_lines;
static char refused_last[256];

static void refused_sink(wi_log_level level, const char *event, const char *msg)
{
	if (level != WI_LOG_WARN || strcmp(event, "connection_refused") != 0)
		return;
	pthread_mutex_lock(&refused_lock);
	refused_lines++;
	snprintf(refused_last, sizeof(refused_last), "%s", msg);
	pthread_mutex_unlock(&refused_lock);
}

static void test_max_connections(void **state)
{
	(void)state;
	server sv;
	server_defaults(&sv);
	sv.opts.max_connections = 2;
	refused_lines = 0;
	wi_log_set_sink(refused_sink, WI_LOG_INFO);
	server_start(&sv);

	int a = raw_connect(sv.sock);
	int b = raw_connect(sv.sock);
	/* let the server accept both before the third arrives */
	reply r;
	int c = -1;
	long deadline = now_ms() + 3000;
	for (;;) {
		c = raw_connect(sv.sock);
		if (wait_closed(c, 300) >= 0)
			break; /* the third is closed at once */
		close(c);
		c = -1;
		assert_true(now_ms() < deadline);
	}
	close(c);
	/* a client beyond the cap gets nothing */
	request(sv.sock, "http://localhost/x", NULL, &r);
	/* closed unread: depending on timing curl sees a hang-up while
	 * connecting, an empty reply or a reset; never an answer */
	if (r.rc == CURLE_OK || r.status != 0)
		fail_msg("beyond the cap: %s, status %ld", curl_easy_strerror(r.rc), r.status);
	reply_free(&r);
	/* the held ones still work */
	const char *get = "GET /held HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	assert_int_equal(write(a, get, strlen(get)), (ssize_t)strlen(get));
	char buf[1024];
	ssize_t k = read(a, buf, sizeof(buf) - 1);
	assert_true(k > 12);
	buf[k] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 200 "));
	close(a);
	/* a slot is free again once the server saw the close */
	deadline = now_ms() + 3000;
	for (;;) {
		request(sv.sock, "http://localhost/x", NULL, &r);
		if (r.rc == CURLE_OK)
			break;
		reply_free(&r);
		assert_true(now_ms() < deadline);
		usleep(20 * 1000);
	}
	assert_int_equal(r.status, 200);
	reply_free(&r);
	close(b);
	server_stop(&sv);
	wi_log_set_sink(NULL, WI_LOG_INFO);
	/* The refusals were logged, at most a line a second, with the reason
	 * and the count of those not logged. */
	pthread_mutex_lock(&refused_lock);
	assert_true(refused_lines >= 1);
	assert_non_null(strstr(refused_last, "listener=unix"));
	assert_non_null(strstr(refused_last, "reason=\"connection cap\""));
	assert_non_null(strstr(refused_last, "refused_since_last_line="));
	pthread_mutex_unlock(&refused_lock);
}

static void test_start_errors(void **state)
{
	(void)state;
	server sv;

	/* another kind of file at the socket path: refused, left alone */
	server_defaults(&sv);
	FILE *f = fopen(sv.sock, "w");
	assert_non_null(f);
	fputs("keep", f);
	fclose(f);
	assert_int_equal(server_run(&sv), WI_E_IO);
	struct stat st;
	assert_int_equal(lstat(sv.sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 4);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	/* a stale socket is replaced; the mode is applied */
	server_defaults(&sv);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	assert_true(strlen(sv.sock) < sizeof(a.sun_path));
	memcpy(a.sun_path, sv.sock, strlen(sv.sock) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s);
	sv.opts.unix_socket_mode = 0600;
	server_start(&sv);
	assert_int_equal(lstat(sv.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	reply r;
	request(sv.sock, "http://localhost/x", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	server_stop(&sv);

	/* bad options */
	const char *bad_listen[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "1.2.3:80", "::1:80",
				    "[::1]80", "[]:80", "localhost:80", "127.0.0.1:8x"};
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
		server_defaults(&sv);
		sv.opts.tls_listen = bad_listen[i];
		sv.opts.tls_ctx = ctx;
		if (server_run(&sv) != WI_E_CONFIG)
			fail_msg("tls_listen \"%s\" accepted", bad_listen[i]);
		nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	SSL_CTX_free(ctx);
	server_defaults(&sv);
	sv.opts.tls_listen = "127.0.0.1:0";
	assert_int_equal(server_run(&sv), WI_E_CONFIG); /* no SSL_CTX */
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	server_defaults(&sv);
	sv.opts.unix_socket_path = NULL;
	assert_int_equal(server_run(&sv), WI_E_CONFIG); /* no listener */
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	server_defaults(&sv);
	sv.opts.max_connections = 0;
	assert_int_equal(server_run(&sv), WI_E_CONFIG);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	server_defaults(&sv);
	sv.opts.io_timeout_ms = 0;
	assert_int_equal(server_run(&sv), WI_E_CONFIG);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	server_defaults(&sv);
	sv.opts.workers = WI_HTTP_WORKERS_MAX + 1;
	assert_int_equal(server_run(&sv), WI_E_CONFIG);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	char longp[200];
	memset(longp, 'p', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	server_defaults(&sv);
	sv.opts.unix_socket_path = longp;
	assert_int_equal(server_run(&sv), WI_E_CONFIG);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	/* a directory that does not exist: bind fails after the loop objects exist */
	server_defaults(&sv);
	char missing[400];
	snprintf(missing, sizeof(missing), "%s/no/such/dir.sock", sv.dir);
	sv.opts.unix_socket_path = missing;
	assert_int_equal(server_run(&sv), WI_E_IO);
	nftw(sv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_oauth_error_json(void **state)
{
	(void)state;
	wi_http_response resp = {0};
	resp.body = strdup("previous body is freed");
	wi_http_oauth_error(&resp, 400, "invalid_request", "bad \"x\"\n\\ caf\xc3\xa9");
	assert_int_equal(resp.status, 400);
	assert_true(resp.no_store);
	assert_string_equal(resp.content_type, "application/json");
	json_error_t err;
	json_t *j = json_loadb(resp.body, resp.body_len, 0, &err);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 2);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_request");
	/* RFC 6749 §5.2 character set: no '"', '\\', controls or non-ASCII */
	const char *d = json_string_value(json_object_get(j, "error_description"));
	assert_non_null(d);
	for (const char *p = d; *p; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\');
	assert_non_null(strstr(d, "bad 'x'"));
	json_decref(j);

	wi_http_oauth_error(&resp, 500, "bad\"code", NULL);
	j = json_loadb(resp.body, resp.body_len, 0, &err);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "server_error");
	json_decref(j);
	free(resp.body);
}

/* ---- TLS ------------------------------------------------------------------------------------ */

typedef struct pki {
	char dir[200];
	char ca_pem[300];
	char cert_pem[300];
	char key_pem[300];
	char evil_cert[300];
	char evil_key[300];
	SSL_CTX *server_ctx;
} pki;

static void write_chain_pem(const char *path, const uint8_t *der, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	const unsigned char *p = der;
	while (p < der + len) {
		X509 *x = d2i_X509(NULL, &p, (long)(der + len - p));
		assert_non_null(x);
		assert_int_equal(PEM_write_X509(f, x), 1);
		X509_free(x);
	}
	fclose(f);
}

static void write_key_pem(const char *path, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)len);
	assert_non_null(k);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

static wi_ca *open_ca(const char *dir)
{
	wi_ca_options o = {.trust_domain = TD, .data_dir = dir, .ttl = 30 * 24 * 3600, .max_svid_ttl = 3600};
	wi_ca *ca = NULL;
	if (wi_ca_open(&o, time(NULL), &ca) != 0)
		fail_msg("wi_ca_open: %s", wi_error_detail());
	return ca;
}

static wi_x509_svid *mint(wi_ca *ca, const char *id)
{
	wi_x509_svid *s = NULL;
	if (wi_ca_mint_x509_svid(ca, id, 600, time(NULL), &s) != 0)
		fail_msg("mint: %s", wi_error_detail());
	return s;
}

static void pki_setup(pki *k)
{
	memset(k, 0, sizeof(*k));
	make_tmpdir(k->dir, sizeof(k->dir), "pki");
	char cadir[300], evildir[300];
	snprintf(cadir, sizeof(cadir), "%s/ca", k->dir);
	snprintf(evildir, sizeof(evildir), "%s/evil", k->dir);
	assert_int_equal(mkdir(cadir, 0700), 0);
	assert_int_equal(mkdir(evildir, 0700), 0);
	wi_ca *ca = open_ca(cadir);
	wi_ca *evil = open_ca(evildir);

	size_t len;
	const uint8_t *bundle = wi_ca_bundle_der(ca, &len);
	snprintf(k->ca_pem, sizeof(k->ca_pem), "%s/bundle.pem", k->dir);
	write_chain_pem(k->ca_pem, bundle, len);

	wi_x509_svid *client = mint(ca, "spiffe://" TD "/agent/a1");
	snprintf(k->cert_pem, sizeof(k->cert_pem), "%s/client.pem", k->dir);
	snprintf(k->key_pem, sizeof(k->key_pem), "%s/client.key", k->dir);
	const uint8_t *der = wi_x509_svid_chain_der(client, &len);
	write_chain_pem(k->cert_pem, der, len);
	der = wi_x509_svid_key_der(client, &len);
	write_key_pem(k->key_pem, der, len);
	wi_x509_svid_unref(client);

	wi_x509_svid *other = mint(evil, "spiffe://" TD "/agent/evil");
	snprintf(k->evil_cert, sizeof(k->evil_cert), "%s/evil.pem", k->dir);
	snprintf(k->evil_key, sizeof(k->evil_key), "%s/evil.key", k->dir);
	der = wi_x509_svid_chain_der(other, &len);
	write_chain_pem(k->evil_cert, der, len);
	der = wi_x509_svid_key_der(other, &len);
	write_key_pem(k->evil_key, der, len);
	wi_x509_svid_unref(other);

	/* the server: its own SVID, clients verified against the bundle, a
	 * certificate optional (no FAIL_IF_NO_PEER_CERT) */
	wi_x509_svid *srv = mint(ca, "spiffe://" TD "/wimsed");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	der = wi_x509_svid_chain_der(srv, &len);
	const unsigned char *p = der;
	X509 *leaf = d2i_X509(NULL, &p, (long)len);
	assert_non_null(leaf);
	assert_int_equal(SSL_CTX_use_certificate(ctx, leaf), 1);
	while (p < der + len) {
		X509 *x = d2i_X509(NULL, &p, (long)(der + len - p));
		assert_non_null(x);
		assert_int_equal(SSL_CTX_add0_chain_cert(ctx, x), 1);
	}
	X509_free(leaf);
	der = wi_x509_svid_key_der(srv, &len);
	p = der;
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, (long)len);
	assert_non_null(key);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	EVP_PKEY_free(key);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	bundle = wi_ca_bundle_der(ca, &len);
	p = bundle;
	while (p < bundle + len) {
		X509 *x = d2i_X509(NULL, &p, (long)(bundle + len - p));
		assert_non_null(x);
		assert_int_equal(X509_STORE_add_cert(store, x), 1);
		X509_free(x);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	k->server_ctx = ctx;
	wi_x509_svid_unref(srv);
	wi_ca_free(ca);
	wi_ca_free(evil);
}

static void pki_teardown(pki *k)
{
	SSL_CTX_free(k->server_ctx);
	nftw(k->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t l = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void test_tls(void **state)
{
	(void)state;
	pki k;
	pki_setup(&k);
	server sv;
	server_defaults(&sv);
	char listen[64], url[128];
	int port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/whoami", port);
	sv.opts.tls_listen = listen;
	sv.opts.tls_ctx = k.server_ctx;
	sv.opts.io_timeout_ms = 1500;
	server_start(&sv);

	/* with an SVID: its SPIFFE ID */
	reply r;
	req_opts o = {.cainfo = k.ca_pem, .cert = k.cert_pem, .key = k.key_pem};
	request(NULL, url, &o, &r);
	if (r.rc != CURLE_OK)
		fail_msg("TLS request: %s", curl_easy_strerror(r.rc));
	assert_int_equal(r.status, 200);
	json_t *j = reply_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "authn")), WI_HTTP_AUTHN_TLS);
	assert_string_equal(json_string_value(json_object_get(j, "tls_peer_id")), "spiffe://" TD "/agent/a1");
	assert_null(json_object_get(j, "pid"));
	json_decref(j);
	reply_free(&r);

	/* without a certificate: served, no identity */
	req_opts anon = {.cainfo = k.ca_pem};
	request(NULL, url, &anon, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	j = reply_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "authn")), WI_HTTP_AUTHN_TLS);
	assert_true(json_is_null(json_object_get(j, "tls_peer_id")));
	json_decref(j);
	reply_free(&r);

	/* a certificate from another CA: the handshake fails, no request */
	int calls_before;
	pthread_mutex_lock(&H.mu);
	calls_before = H.calls;
	pthread_mutex_unlock(&H.mu);
	req_opts evil = {.cainfo = k.ca_pem, .cert = k.evil_cert, .key = k.evil_key};
	request(NULL, url, &evil, &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	reply_free(&r);
	pthread_mutex_lock(&H.mu);
	assert_int_equal(H.calls, calls_before);
	pthread_mutex_unlock(&H.mu);

	/* the Unix listener runs beside it */
	request(sv.sock, "http://localhost/x", NULL, &r);
	assert_int_equal(r.status, 200);
	j = reply_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "authn")), WI_HTTP_AUTHN_UNIX);
	json_decref(j);
	reply_free(&r);

	/* a TCP client that never starts the handshake is dropped after the
	 * I/O timeout (h2o's handshake timeout) */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	long ms = wait_closed(s, 8000);
	close(s);
	if (ms < 1000 || ms > 6000)
		fail_msg("silent TLS client closed after %ld ms (timeout 1500)", ms);

	/* and stop closes a pending one at once */
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	server_stop(&sv);
	ms = wait_closed(s, 3000);
	assert_true(ms >= 0 && ms < 1000);
	close(s);
	pki_teardown(&k);
}

/* Held by the server (not closed within 300 ms)? */
static bool held(int fd)
{
	return wait_closed(fd, 300) < 0;
}

/* Until a new connection to `sock` is held (the server saw an earlier
 * one close and gave its slot back), for at most 3 s. */
static void wait_for_room(const char *sock)
{
	long deadline = now_ms() + 3000;
	for (;;) {
		int u = raw_connect(sock);
		bool ok = held(u);
		close(u);
		if (ok)
			return;
		assert_true(now_ms() < deadline);
	}
}

static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* Per listener and per peer: two connections per uid on the Unix socket and
 * per address on TCP, three per listener.  A third from the same uid or
 * address is closed at once; the other listener's room is its own; another
 * uid still gets in (as root); a slot comes back when its connection ends,
 * and a lingering one holds it until then. */
static void test_per_peer_caps(void **state)
{
	(void)state;
	pki k;
	pki_setup(&k);
	server sv;
	server_defaults(&sv);
	char listen[64];
	int port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	sv.opts.tls_listen = listen;
	sv.opts.tls_ctx = k.server_ctx;
	sv.opts.max_connections = 3;
	sv.opts.max_per_peer = 2;
	refused_lines = 0;
	wi_log_set_sink(refused_sink, WI_LOG_INFO);
	assert_int_equal(chmod(sv.dir, 0755), 0);
	server_start(&sv);

	int u1 = raw_connect(sv.sock), u2 = raw_connect(sv.sock);
	assert_true(held(u1) && held(u2));
	int u3 = raw_connect(sv.sock);
	assert_false(held(u3)); /* this uid's two are taken */
	close(u3);
	/* TCP has its own room: two from 127.0.0.1, not a third */
	int t1 = tcp_connect(port), t2 = tcp_connect(port);
	assert_true(held(t1) && held(t2));
	int t3 = tcp_connect(port);
	assert_false(held(t3));
	close(t3);
	pthread_mutex_lock(&refused_lock);
	assert_true(refused_lines >= 1);
	assert_non_null(strstr(refused_last, "connection cap for this"));
	pthread_mutex_unlock(&refused_lock);

	if (geteuid() == 0) {
		/* another uid: its own two slots */
		int gate[2];
		assert_int_equal(pipe(gate), 0);
		pid_t ch = fork();
		assert_true(ch >= 0);
		if (ch == 0) {
			close(gate[0]);
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(3);
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			struct sockaddr_un a = {.sun_family = AF_UNIX};
			memcpy(a.sun_path, sv.sock, strlen(sv.sock) + 1);
			if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
				_exit(4);
			struct pollfd p = {.fd = fd, .events = POLLIN};
			char r = poll(&p, 1, 300) == 0 ? 'h' : 'c'; /* held, or closed */
			_exit(write(gate[1], &r, 1) == 1 && r == 'h' ? 0 : 5);
		}
		close(gate[1]);
		int st = -1;
		assert_int_equal(waitpid(ch, &st, 0), ch);
		close(gate[0]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}

	/* a slot comes back once the server saw the close */
	close(u1);
	wait_for_room(sv.sock);
	/* A socket lingering after h2o's 413 still holds its slot: with it
	 * and u2 this uid has two; once the client goes, the slot is back. */
	int lg;
	long until = now_ms() + 3000;
	/* (the probes of wait_for_room may still hold a slot for a moment) */
	while (!held(lg = raw_connect(sv.sock))) {
		close(lg);
		assert_true(now_ms() < until);
	}
	const char *hdr = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n";
	char chunk[1000], buf[4096];
	memset(chunk, 'a', sizeof(chunk));
	assert_int_equal(write(lg, hdr, strlen(hdr)), (ssize_t)strlen(hdr));
	assert_int_equal(write(lg, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	size_t got = 0;
	for (;;) {
		ssize_t n = read(lg, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break; /* end-of-file after the 413: lingering now */
		got += (size_t)n;
	}
	buf[got] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	int u4 = raw_connect(sv.sock);
	assert_false(held(u4));
	close(u4);
	close(lg);
	wait_for_room(sv.sock);
	close(u2);
	close(t1);
	close(t2);
	server_stop(&sv);
	wi_log_set_sink(NULL, WI_LOG_INFO);
	pki_teardown(&k);
}

int main(void)
{
	/* a client that vanishes must not take the server down (the daemon
	 * ignores SIGPIPE the same way) */
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	loop_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_oauth_error_json, teardown),
		cmocka_unit_test_teardown(test_get_post, teardown),
		cmocka_unit_test_teardown(test_body_limits, teardown),
		cmocka_unit_test_teardown(test_idle_timeout, teardown),
		cmocka_unit_test_teardown(test_client_gone, teardown),
		cmocka_unit_test_teardown(test_stop_with_work_in_flight, teardown),
		cmocka_unit_test_teardown(test_workers, teardown),
		cmocka_unit_test_teardown(test_max_connections, teardown),
		cmocka_unit_test_teardown(test_per_peer_caps, teardown),
		cmocka_unit_test_teardown(test_start_errors, teardown),
		cmocka_unit_test_teardown(test_tls, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
