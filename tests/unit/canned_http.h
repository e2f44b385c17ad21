/* tests/unit/canned_http.h — a canned HTTP peer on 127.0.0.1 for unit tests
 * of code that fetches (txn-token/jwks_fetch.c and its users).
 *
 * It accepts one connection per reply, in order, reads up to the end of the
 * request head and sends the reply's bytes verbatim, then closes: each test
 * states exactly what a client would see.  Not an HTTP implementation.
 * Sends with MSG_NOSIGNAL: a client that stops reading (past its cap) must
 * not kill the test process with SIGPIPE. */
#ifndef WI_TESTS_CANNED_HTTP_H
#define WI_TESTS_CANNED_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WI_CANNED_REPLIES_MAX 4

typedef struct wi_canned_reply {
	const char *head;  /* sent first, verbatim */
	const char *body;  /* then this, or … */
	size_t body_len;   /* … this many bytes of 'x' when body is NULL */
	bool silent;       /* read the request, never answer: wait for the client to go */
} wi_canned_reply;

typedef struct wi_canned {
	wi_canned_reply replies[WI_CANNED_REPLIES_MAX];
	size_t n_replies;   /* 0 means 1 */
	size_t served;      /* connections accepted so far */
	char request[2048]; /* the last request head as received */
	int lfd;
	unsigned short port;
	pthread_t thread;
} wi_canned;

static inline void wi__canned_reply(int fd, const wi_canned_reply *r)
{
	if (r->silent) {
		char b[64];
		while (read(fd, b, sizeof(b)) > 0)
			;
		return;
	}
	if (send(fd, r->head, strlen(r->head), MSG_NOSIGNAL) < 0)
		return;
	if (r->body) {
		if (send(fd, r->body, strlen(r->body), MSG_NOSIGNAL) < 0)
			return;
		return;
	}
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	for (size_t left = r->body_len; left;) {
		size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
		ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the client stopped reading: expected past its cap */
		left -= (size_t)w;
	}
}

static inline void *wi__canned_serve(void *ud)
{
	wi_canned *c = ud;
	size_t n = c->n_replies ? c->n_replies : 1;
	for (size_t i = 0; i < n; i++) {
		int fd = accept(c->lfd, NULL, NULL);
		if (fd < 0)
			return NULL; /* stopped before the client came */
		c->served++;
		size_t got = 0;
		c->request[0] = '\0';
		while (got < sizeof(c->request) - 1 && !strstr(c->request, "\r\n\r\n")) {
			ssize_t r = read(fd, c->request + got, sizeof(c->request) - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			c->request[got] = '\0';
		}
		wi__canned_reply(fd, &c->replies[i]);
		close(fd);
	}
	return NULL;
}

/* Listens on an ephemeral loopback port and serves in a thread; 0 or -1. */
static inline int wi_canned_start(wi_canned *c)
{
	c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(c->lfd, 4) < 0 ||
	    getsockname(c->lfd, (struct sockaddr *)&a, &l) < 0 ||
	    pthread_create(&c->thread, NULL, wi__canned_serve, c) != 0) {
		close(c->lfd);
		return -1;
	}
	c->port = ntohs(a.sin_port);
	return 0;
}

/* Stops serving (a pending accept wakes up) and joins the thread. */
static inline void wi_canned_stop(wi_canned *c)
{
	shutdown(c->lfd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->lfd);
}

/* "http://127.0.0.1:<port><path>" into buf. */
static inline const char *wi_canned_url(const wi_canned *c, const char *path, char *buf, size_t cap)
{
	snprintf(buf, cap, "http://127.0.0.1:%u%s", (unsigned)c->port, path);
	return buf;
}

#endif
