/* Unit tests: workload-api/conns (the fd-indexed connection table and its
 * O(1) per-uid count, which the per-uid connection cap reads on accept). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attestors/peer.h"
#include "core/limits.h"
#include "workload-api/conns.h"

/* A connected socket whose peer is this process; *ret_other is its end. */
static int conn_pair(int *ret_other)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*ret_other = sv[1];
	return sv[0];
}

static void add_conn(wi__conns *t, int fd)
{
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(fd, &p), 0);
	assert_int_equal(wi__conns_add(t, fd, p), 0);
}

static void test_count_follows_adds_and_sweeps(void **state)
{
	(void)state;
	wi__conns *t = NULL;
	assert_int_equal(wi__conns_new(&t), 0);
	uid_t me = getuid(), other = me == 4242 ? 4243 : 4242;
	assert_int_equal(wi__conns_count_uid(t, me), 0);
	int fd[40], peer[40];
	for (int i = 0; i < 40; i++) {
		fd[i] = conn_pair(&peer[i]);
		add_conn(t, fd[i]);
	}
	assert_int_equal(wi__conns_count_uid(t, me), 40);
	assert_int_equal(wi__conns_count_uid(t, other), 0);
	/* accept() reusing a number replaces the old record: no double count. */
	int old = fd[0];
	close(fd[0]);
	close(peer[0]);
	fd[0] = conn_pair(&peer[0]);
	assert_int_equal(fd[0], old); /* the lowest free number */
	add_conn(t, fd[0]);
	assert_int_equal(wi__conns_count_uid(t, me), 40);
	/* Closed connections count until the sweep drops them. */
	for (int i = 1; i < 10; i++) {
		close(fd[i]);
		close(peer[i]);
	}
	assert_int_equal(wi__conns_count_uid(t, me), 40);
	assert_int_equal(wi__conns_sweep(t), 31);
	assert_int_equal(wi__conns_count_uid(t, me), 31);
	for (int i = 0; i < 40; i++) {
		if (i == 0 || i >= 10) {
			close(fd[i]);
			close(peer[i]);
		}
	}
	assert_int_equal(wi__conns_sweep(t), 0);
	assert_int_equal(wi__conns_count_uid(t, me), 0);
	/* The table keeps working after its entries dropped to zero. */
	int f = conn_pair(&peer[0]);
	add_conn(t, f);
	assert_int_equal(wi__conns_count_uid(t, me), 1);
	close(f);
	close(peer[0]);
	wi__conns_free(t);
}

/* The table itself refuses a uid past WI_CONNECTIONS_PER_UID_MAX records (the
 * server checks first and sweeps, so this is the last line), and the refused
 * peer stays the caller's. */
static void test_add_refuses_past_the_uid_cap(void **state)
{
	(void)state;
	wi__conns *t = NULL;
	assert_int_equal(wi__conns_new(&t), 0);
	enum { N = WI_CONNECTIONS_PER_UID_MAX };
	static int fd[N + 1], peer[N + 1];
	/* Two descriptors a connection, and a few besides. */
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * N + 64) {
		rl.rlim_cur = rl.rlim_max;
		if (rl.rlim_cur < 2 * N + 64 || setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			wi__conns_free(t);
			skip();
		}
	}
	for (int i = 0; i < N; i++) {
		fd[i] = conn_pair(&peer[i]);
		add_conn(t, fd[i]);
	}
	assert_int_equal(wi__conns_count_uid(t, getuid()), N);
	fd[N] = conn_pair(&peer[N]);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(fd[N], &p), 0);
	assert_int_equal(wi__conns_add(t, fd[N], p), WI_E_TOO_BIG);
	assert_int_equal(wi_peer_pid(p), getpid()); /* still ours, still whole */
	wi_peer_free(p);
	assert_int_equal(wi__conns_count_uid(t, getuid()), N);
	/* One closed and swept: room for one again. */
	close(fd[0]);
	close(peer[0]);
	assert_int_equal(wi__conns_sweep(t), N - 1);
	add_conn(t, fd[N]);
	assert_int_equal(wi__conns_count_uid(t, getuid()), N);
	for (int i = 1; i <= N; i++) {
		close(fd[i]);
		close(peer[i]);
	}
	assert_int_equal(wi__conns_sweep(t), 0);
	assert_int_equal(wi__conns_count_uid(t, getuid()), 0);
	wi__conns_free(t);
}

static void lookup_fails(wi__conns *t, const char *grpc_peer)
{
	wi__conn *c = (wi__conn *)0x1;
	assert_int_equal(wi__conns_lookup(t, grpc_peer, &c), WI_E_UNAUTHENTICATED);
	assert_ptr_equal(c, (wi__conn *)0x1); /* untouched on failure */
}

static void test_lookup_finds_the_record_for_the_fd(void **state)
{
	(void)state;
	wi__conns *t = NULL;
	assert_int_equal(wi__conns_new(&t), 0);
	int other = -1, fd = conn_pair(&other);
	add_conn(t, fd);
	char name[32];
	snprintf(name, sizeof(name), "fd:%d", fd);
	wi__conn *c = NULL;
	assert_int_equal(wi__conns_lookup(t, name, &c), 0);
	assert_non_null(c);
	assert_int_equal(c->fd, fd);
	assert_int_equal(wi_peer_pid(c->peer), getpid());
	/* Peer strings that are not ours are refused, never guessed at. */
	lookup_fails(t, NULL);
	lookup_fails(t, "");
	lookup_fails(t, "fd:");
	lookup_fails(t, "fd:-1");
	lookup_fails(t, "fd:12x");
	lookup_fails(t, "fd:99999999999999999999999");
	lookup_fails(t, "ipv4:127.0.0.1:1");
	lookup_fails(t, "unix:/run/x");
	lookup_fails(t, "fd:100000"); /* beyond the table */
	/* A held record outlives the sweep that drops it from the table. */
	close(fd);
	close(other);
	assert_int_equal(wi__conns_sweep(t), 0);
	lookup_fails(t, name);
	assert_int_equal(wi_peer_pid(c->peer), getpid());
	wi__conns_release(t, c);
	/* accept() reusing the number: the lookup finds the new connection. */
	int fd2 = conn_pair(&other);
	assert_int_equal(fd2, fd);
	add_conn(t, fd2);
	wi__conn *c2 = NULL;
	assert_int_equal(wi__conns_lookup(t, name, &c2), 0);
	assert_int_equal(c2->fd, fd2);
	wi__conns_release(t, c2);
	close(fd2);
	close(other);
	wi__conns_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_follows_adds_and_sweeps),
		cmocka_unit_test(test_add_refuses_past_the_uid_cap),
		cmocka_unit_test(test_lookup_finds_the_record_for_the_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
