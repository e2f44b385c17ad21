/* Unit tests: workload-api/conns (the fd-indexed connection table and its
 * O(1) per-uid count, which the per-uid connection cap reads on accept). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attestors/peer.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_follows_adds_and_sweeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
