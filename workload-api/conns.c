/* workload-api/conns.c — the fd-indexed connection table, with a per-uid
 * count of its records (core/slots) so that the per-uid connection cap,
 * checked on every accept, costs O(1) rather than a scan of the table. */
#include "workload-api/conns.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/limits.h"
#include "core/slots.h"

struct wi__conns {
	pthread_mutex_t lock;
	wi__conn **by_fd; /* index = fd */
	size_t cap;
	size_t count;
	wi_slots *uids; /* records per uid */
};

int wi__conns_new(wi__conns **ret)
{
	wi__conns *t = calloc(1, sizeof(*t));
	WI_CHECK_ALLOC(t);
	/* As many uids as connections; the table is calloc'd, so untouched
	 * pages cost nothing. */
	int r = wi_slots_new(WI_CONNECTIONS_PER_UID_MAX, WI_CONNECTIONS_MAX, &t->uids);
	if (r < 0) {
		free(t);
		return r;
	}
	pthread_mutex_init(&t->lock, NULL);
	*ret = t;
	return 0;
}

static void uid_dec(wi__conns *t, uid_t uid)
{
	wi_slot_key k = wi_slot_key_uid(uid);
	wi_slots_release(t->uids, &k);
}

static void conn_drop_locked(wi__conns *t, wi__conn *c)
{
	if (--c->refs == 0) {
		wi_peer_free(c->peer);
		free(c);
	}
	(void)t;
}

void wi__conns_free(wi__conns *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		if (t->by_fd[i])
			conn_drop_locked(t, t->by_fd[i]);
	free(t->by_fd);
	wi_slots_free(t->uids);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static bool same_socket(int fd, ino_t ino)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

int wi__conns_add(wi__conns *t, int fd, wi_peer *peer)
{
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	WI_CHECK(fd >= 0 && fd < 1 << 24, WI_E_INVAL, "fd out of range");
	wi__conn *c = calloc(1, sizeof(*c));
	WI_CHECK_ALLOC(c);
	c->fd = fd;
	c->ino = st.st_ino;
	c->peer = peer;
	c->refs = 1;
	pthread_mutex_lock(&t->lock);
	if ((size_t)fd >= t->cap) {
		size_t nc = t->cap ? t->cap : 256;
		while (nc <= (size_t)fd)
			nc *= 2;
		wi__conn **n = realloc(t->by_fd, nc * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&t->lock);
			free(c);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
		memset(n + t->cap, 0, (nc - t->cap) * sizeof(*n));
		t->by_fd = n;
		t->cap = nc;
	}
	if (t->by_fd[fd]) {
		/* accept() reused the number: the old socket is closed. */
		uid_dec(t, wi_peer_uid(t->by_fd[fd]->peer));
		conn_drop_locked(t, t->by_fd[fd]);
		t->count--;
	}
	wi_slot_key k = wi_slot_key_uid(wi_peer_uid(peer));
	if (!wi_slots_take(t->uids, &k)) {
		pthread_mutex_unlock(&t->lock);
		free(c); /* the peer stays the caller's */
		WI_FAIL(WI_E_TOO_BIG, "uid %u holds %d connections, or %d uids hold some", (unsigned)wi_peer_uid(peer),
			WI_CONNECTIONS_PER_UID_MAX, WI_CONNECTIONS_MAX);
	}
	t->by_fd[fd] = c;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int wi__conns_lookup(wi__conns *t, const char *grpc_peer, wi__conn **ret)
{
	WI_CHECK(grpc_peer && strncmp(grpc_peer, "fd:", 3) == 0, WI_E_UNAUTHENTICATED,
		 "unexpected gRPC peer \"%.40s\"", grpc_peer ? grpc_peer : "");
	char *end;
	errno = 0;
	long fd = strtol(grpc_peer + 3, &end, 10);
	WI_CHECK(errno == 0 && *end == '\0' && end != grpc_peer + 3 && fd >= 0, WI_E_UNAUTHENTICATED,
		 "unexpected gRPC peer \"%.40s\"", grpc_peer);
	pthread_mutex_lock(&t->lock);
	/* No fstat here: a call holds its transport, and so its fd, open while it
	 * runs, so by_fd[fd] is this call's socket.  A record whose socket closed
	 * was either replaced by wi__conns_add (accept reused the number) or is
	 * stale and swept later; a call cannot be on a closed fd. */
	wi__conn *c = (size_t)fd < t->cap ? t->by_fd[fd] : NULL;
	if (c)
		c->refs++;
	pthread_mutex_unlock(&t->lock);
	WI_CHECK(c, WI_E_UNAUTHENTICATED, "no connection record for %s", grpc_peer);
	*ret = c;
	return 0;
}

void wi__conns_release(wi__conns *t, wi__conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	conn_drop_locked(t, c);
	pthread_mutex_unlock(&t->lock);
}

size_t wi__conns_sweep(wi__conns *t)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->cap; i++) {
		wi__conn *c = t->by_fd[i];
		if (c && !same_socket(c->fd, c->ino)) {
			t->by_fd[i] = NULL;
			t->count--;
			uid_dec(t, wi_peer_uid(c->peer));
			conn_drop_locked(t, c);
		}
	}
	size_t n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t wi__conns_count_uid(wi__conns *t, uid_t uid)
{
	wi_slot_key k = wi_slot_key_uid(uid);
	return wi_slots_held(t->uids, &k);
}
