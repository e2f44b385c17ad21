/* examples/mtls-echo/server.c — an echo server over SPIFFE mutual TLS.
 *
 *   mtls_echo_server [--socket unix:///path] --listen 127.0.0.1:PORT \
 *                    --allow spiffe://example.org/client [--allow ...]
 *
 * Gets its own X.509-SVID from the Workload API through a wimse_x509_source
 * (which follows rotations), listens on TCP, accepts only clients whose
 * SPIFFE ID is one of the --allow IDs, and echoes every line back.  Prints
 * "listening on HOST:PORT as SPIFFE-ID" on stdout once ready (PORT 0 picks a
 * free port), one line per connection on stderr, and exits 0 on SIGTERM or
 * SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wimse/mtls.h"
#include "wimse/watch.h"
#include "wimse/wimse.h"

#define PROG "mtls_echo_server"
#define ALLOW_MAX 64
#define CONNS_MAX 64
#define LINE_MAX_BYTES 4096
#define IO_TIMEOUT_S 10

static atomic_int active;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&log_mu);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
	va_end(ap);
}

static int usage(void)
{
	fprintf(stderr, "usage: " PROG " [--socket unix:///path] [--timeout-ms MS] --listen HOST:PORT "
			"--allow SPIFFE-ID [--allow SPIFFE-ID ...]\n");
	return 2;
}

/* The reason a handshake or read failed, as one line. */
static const char *why(SSL *ssl, char *buf, size_t cap)
{
	const char *v = wimse_tls_verify_error(ssl);
	unsigned long e = ERR_peek_last_error();
	if (v)
		snprintf(buf, cap, "%s", v);
	else if (e)
		snprintf(buf, cap, "%s", ERR_reason_error_string(e));
	else
		snprintf(buf, cap, "connection closed (%s)", errno ? strerror(errno) : "EOF");
	ERR_clear_error();
	return buf;
}

static void on_update(const wimse_x509_update *u, void *ud)
{
	switch (u->event) {
	case WIMSE_X509_UPDATED: {
		const wimse_x509_svid *s = wimse_x509_snapshot_svid(u->snapshot, NULL);
		logf_("SVID %s installed (generation %llu)", s->spiffe_id,
		      (unsigned long long)wimse_x509_snapshot_generation(u->snapshot));
		break;
	}
	case WIMSE_X509_DROPPED:
		logf_("identity withdrawn, refusing handshakes until it returns: %s", u->detail);
		break;
	case WIMSE_X509_ERROR:
		logf_("Workload API: %s", u->detail);
		break;
	case WIMSE_X509_STOPPED:
		logf_("Workload API watch stopped: %s", u->detail);
		break;
	}
}

typedef struct conn {
	SSL_CTX *ctx;
	int fd;
	char peer_addr[64];
} conn;

static void *serve(void *arg)
{
	conn *c = arg;
	char reason[600];
	SSL *ssl = SSL_new(c->ctx);
	if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
		logf_("%s: out of memory", c->peer_addr);
		goto out;
	}
	errno = 0;
	if (SSL_accept(ssl) != 1) {
		logf_("%s: rejected: %s", c->peer_addr, why(ssl, reason, sizeof(reason)));
		goto out;
	}
	char id[2100];
	if (wimse_tls_peer_id(ssl, id, sizeof(id)) != 0) {
		logf_("%s: rejected: %s", c->peer_addr, wimse_last_error());
		goto out;
	}
	/* TLS 1.3: a client we refuse only learns it on its first read, so the
	 * verdict for a refused client is logged above, by SSL_accept. */
	logf_("%s: accepted %s", c->peer_addr, id);
	char line[LINE_MAX_BYTES];
	size_t len = 0;
	for (;;) {
		errno = 0;
		int n = SSL_read(ssl, line + len, (int)(sizeof(line) - len));
		if (n <= 0) {
			int e = SSL_get_error(ssl, n);
			if (e != SSL_ERROR_ZERO_RETURN && !(e == SSL_ERROR_SYSCALL && errno == 0))
				logf_("%s: %s: read failed: %s", c->peer_addr, id, why(ssl, reason, sizeof(reason)));
			break;
		}
		len += (size_t)n;
		/* Echo every complete line; a line longer than the buffer is
		 * echoed in pieces. */
		char *nl;
		while ((nl = memchr(line, '\n', len)) || len == sizeof(line)) {
			size_t take = nl ? (size_t)(nl - line) + 1 : len;
			if (SSL_write(ssl, line, (int)take) != (int)take) {
				logf_("%s: %s: write failed: %s", c->peer_addr, id, why(ssl, reason, sizeof(reason)));
				goto out;
			}
			memmove(line, line + take, len - take);
			len -= take;
		}
	}
	if (len > 0)
		SSL_write(ssl, line, (int)len);
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	close(c->fd);
	free(c);
	atomic_fetch_sub(&active, 1);
	return NULL;
}

static int listen_on(const char *hostport, char *ret_bound, size_t cap)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) || !colon[1]) {
		fprintf(stderr, PROG ": --listen %s: expected HOST:PORT\n", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, PROG ": --listen %s: %s\n", hostport, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		fprintf(stderr, PROG ": cannot listen on %s: %s\n", hostport, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?", p[16] = "?";
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, a, sizeof(a), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(ret_bound, cap, "%s:%s", a, p);
	return fd;
}

int main(int argc, char **argv)
{
	const char *socket_addr = NULL, *listen_addr = NULL;
	const char *allow[ALLOW_MAX];
	size_t n_allow = 0;
	int timeout_ms = 10000;
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"listen", required_argument, NULL, 'l'},
		{"allow", required_argument, NULL, 'a'},  {"timeout-ms", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			socket_addr = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'a':
			if (n_allow == ALLOW_MAX) {
				fprintf(stderr, PROG ": at most %d --allow\n", ALLOW_MAX);
				return 2;
			}
			allow[n_allow++] = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 3600000)
				return usage();
			timeout_ms = (int)v;
			break;
		}
		default:
			return usage();
		}
	}
	if (optind != argc || !listen_addr || n_allow == 0)
		return usage();

	/* SIGTERM/SIGINT are blocked before any thread starts (the source's and
	 * gRPC's threads inherit the mask) and read from a signalfd next to the
	 * listening socket. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t stop_sigs;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	int sfd = signalfd(-1, &stop_sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
		return 1;
	}

	wimse_authorizer *authz = NULL;
	if (wimse_authorize_one_of(allow, n_allow, &authz) != 0) {
		fprintf(stderr, PROG ": --allow: %s\n", wimse_last_error());
		return 2;
	}
	wimse_x509_source_options so = {.address = socket_addr, .callback = on_update};
	wimse_x509_source *src = NULL;
	if (wimse_x509_source_new_with(&so, &src) != 0 || wimse_x509_source_wait(src, timeout_ms) != 0) {
		fprintf(stderr, PROG ": no X.509-SVID from the Workload API: %s\n", wimse_last_error());
		wimse_x509_source_free(src);
		wimse_authorizer_free(authz);
		return 1;
	}
	SSL_CTX *ctx = NULL;
	int rc = wimse_tls_server_ctx_new(src, authz, &ctx);
	wimse_authorizer_free(authz);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s\n", wimse_last_error());
		wimse_x509_source_free(src);
		return 1;
	}
	char bound[300];
	int lfd = listen_on(listen_addr, bound, sizeof(bound));
	if (lfd < 0) {
		SSL_CTX_free(ctx);
		wimse_x509_source_free(src);
		return 1;
	}
	wimse_x509_snapshot *snap = NULL;
	if (wimse_x509_source_get(src, &snap) == 0) {
		printf("listening on %s as %s\n", bound, wimse_x509_snapshot_svid(snap, NULL)->spiffe_id);
		wimse_x509_snapshot_unref(snap);
	}
	fflush(stdout);

	for (;;) {
		struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			logf_("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break; /* SIGTERM or SIGINT */
		if (!pfd[0].revents)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				logf_("accept: %s", strerror(errno));
			continue;
		}
		if (atomic_load(&active) >= CONNS_MAX) {
			logf_("too many connections, closing one");
			close(fd);
			continue;
		}
		struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->ctx = ctx;
		c->fd = fd;
		char a[INET6_ADDRSTRLEN] = "?", p[16] = "?";
		getnameinfo((struct sockaddr *)&ss, sl, a, sizeof(a), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(c->peer_addr, sizeof(c->peer_addr), "%s:%s", a, p);
		atomic_fetch_add(&active, 1);
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, serve, c) != 0) {
			atomic_fetch_sub(&active, 1);
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&at);
	}
	close(lfd);
	close(sfd);
	/* Give connections in flight a moment (each has an I/O timeout). */
	for (int i = 0; i < 200 && atomic_load(&active) > 0; i++)
		usleep(10000);
	if (atomic_load(&active) == 0) {
		SSL_CTX_free(ctx);
		wimse_x509_source_free(src);
	}
	return 0;
}
