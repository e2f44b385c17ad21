/* examples/mtls-echo/client.c — one line over SPIFFE mutual TLS.
 *
 *   mtls_echo_client [--socket unix:///path] --connect 127.0.0.1:PORT \
 *                    --server-id spiffe://example.org/server [--message TEXT]
 *
 * Gets its own X.509-SVID from the Workload API, connects with it, accepts
 * the server only if its SPIFFE ID is --server-id, sends one line, prints the
 * echo on stdout and exits 0.  Any failure: exit 1 with one line on stderr
 * (2 for a usage error). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wimse/mtls.h"
#include "wimse/watch.h"
#include "wimse/wimse.h"

#define PROG "mtls_echo_client"
#define LINE_MAX_BYTES 4096

static int usage(void)
{
	fprintf(stderr, "usage: " PROG " [--socket unix:///path] [--timeout-ms MS] --connect HOST:PORT "
			"--server-id SPIFFE-ID [--message TEXT]\n");
	return 2;
}

static const char *why(SSL *ssl, int rc, char *buf, size_t cap)
{
	const char *v = wimse_tls_verify_error(ssl);
	unsigned long e = ERR_peek_last_error();
	int se = SSL_get_error(ssl, rc);
	if (v)
		snprintf(buf, cap, "%s", v);
	else if (e)
		snprintf(buf, cap, "%s", ERR_reason_error_string(e));
	else if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && errno == 0))
		snprintf(buf, cap, "connection closed by the server");
	else
		snprintf(buf, cap, "%s", errno ? strerror(errno) : "TLS error");
	return buf;
}

static int connect_to(const char *hostport, int timeout_ms)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) || !colon[1]) {
		fprintf(stderr, PROG ": --connect %s: expected HOST:PORT\n", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s: %s\n", hostport, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		fprintf(stderr, PROG ": cannot connect to %s: %s\n", hostport, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int main(int argc, char **argv)
{
	const char *socket_addr = NULL, *target = NULL, *server_id = NULL, *message = "hello over SPIFFE mTLS";
	int timeout_ms = 10000;
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},    {"connect", required_argument, NULL, 'c'},
		{"server-id", required_argument, NULL, 'i'}, {"message", required_argument, NULL, 'm'},
		{"timeout-ms", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			socket_addr = optarg;
			break;
		case 'c':
			target = optarg;
			break;
		case 'i':
			server_id = optarg;
			break;
		case 'm':
			message = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 3600000)
				return usage();
			timeout_ms = (int)v;
			break;
		}
		default:
			return usage();
		}
	}
	if (optind != argc || !target || !server_id)
		return usage();
	if (strchr(message, '\n') || strlen(message) >= LINE_MAX_BYTES) {
		fprintf(stderr, PROG ": --message must be one line shorter than %d bytes\n", LINE_MAX_BYTES);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	int exit_code = 1;
	wimse_authorizer *authz = NULL;
	wimse_x509_source *src = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = -1;
	char reason[700], my_id[2100] = "?";
	if (wimse_authorize_id(server_id, &authz) != 0) {
		fprintf(stderr, PROG ": --server-id: %s\n", wimse_last_error());
		return 2;
	}
	if (wimse_x509_source_new(socket_addr, &src) != 0 || wimse_x509_source_wait(src, timeout_ms) != 0) {
		fprintf(stderr, PROG ": no X.509-SVID from the Workload API: %s\n", wimse_last_error());
		goto out;
	}
	wimse_x509_snapshot *snap = NULL;
	if (wimse_x509_source_get(src, &snap) == 0) {
		snprintf(my_id, sizeof(my_id), "%s", wimse_x509_snapshot_svid(snap, NULL)->spiffe_id);
		wimse_x509_snapshot_unref(snap);
	}
	if (wimse_tls_client_ctx_new(src, authz, &ctx) != 0) {
		fprintf(stderr, PROG ": %s\n", wimse_last_error());
		goto out;
	}
	if ((fd = connect_to(target, timeout_ms)) < 0)
		goto out;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	errno = 0;
	int rc = SSL_connect(ssl);
	if (rc != 1) {
		fprintf(stderr, PROG ": TLS handshake with %s failed: %s\n", target,
			why(ssl, rc, reason, sizeof(reason)));
		goto out;
	}
	char line[LINE_MAX_BYTES + 1];
	int n = snprintf(line, sizeof(line), "%s\n", message);
	errno = 0;
	if ((rc = SSL_write(ssl, line, n)) != n) {
		fprintf(stderr, PROG ": %s refused our SVID %s: %s\n", target, my_id,
			why(ssl, rc, reason, sizeof(reason)));
		goto out;
	}
	/* TLS 1.3: the server judges our certificate after the handshake; a
	 * refusal arrives as an alert on this first read. */
	size_t len = 0;
	while (len < (size_t)n && !memchr(line, '\n', len)) {
		errno = 0;
		rc = SSL_read(ssl, line + len, (int)(sizeof(line) - 1 - len));
		if (rc <= 0) {
			fprintf(stderr, PROG ": %s refused our SVID %s: %s\n", target, my_id,
				why(ssl, rc, reason, sizeof(reason)));
			goto out;
		}
		len += (size_t)rc;
	}
	line[len] = '\0';
	fputs(line, stdout);
	if (fflush(stdout) != 0) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		goto out;
	}
	SSL_shutdown(ssl);
	exit_code = 0;
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	wimse_x509_source_free(src);
	wimse_authorizer_free(authz);
	return exit_code;
}
