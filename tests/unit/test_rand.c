/* Unit tests: core/rand (identifier bytes from a per-thread buffer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/rand.h"

#define ID 16

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, ID);
}

/* n ids of ID bytes, sorted, must all differ. */
static void assert_all_distinct(uint8_t (*ids)[ID], size_t n)
{
	qsort(ids, n, ID, cmp_id);
	for (size_t i = 1; i < n; i++)
		if (memcmp(ids[i - 1], ids[i], ID) == 0)
			fail_msg("identifier %zu repeats", i);
}

static void test_bounds(void **state)
{
	(void)state;
	uint8_t buf[WI_RAND_ID_MAX + 1];
	memset(buf, 0xAA, sizeof(buf));
	assert_int_equal(wi_rand_id_bytes(buf, WI_RAND_ID_MAX + 1), WI_E_INVAL);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xAA);
	assert_int_equal(wi_rand_id_bytes(NULL, 1), WI_E_INVAL);
	assert_int_equal(wi_rand_id_bytes(buf, 0), 0);
	assert_int_equal(wi_rand_id_bytes(buf, WI_RAND_ID_MAX), 0);
	/* 64 random bytes that are all 0xAA: the buffer was written. */
	size_t same = 0;
	for (size_t i = 0; i < WI_RAND_ID_MAX; i++)
		same += buf[i] == 0xAA;
	assert_true(same < WI_RAND_ID_MAX);
}

/* Many draws, of sizes that do not divide the refill, so draws straddle
 * refills: no identifier repeats, and bytes look random (each bit set about
 * half the time over 20 000 draws). */
static void test_distinct_across_refills(void **state)
{
	(void)state;
	enum { N = 20000 };
	uint8_t (*ids)[ID] = calloc(N, ID);
	assert_non_null(ids);
	unsigned ones[ID * 8] = {0};
	uint8_t odd[37];
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(wi_rand_id_bytes(ids[i], ID), 0);
		if (i % 7 == 0)
			assert_int_equal(wi_rand_id_bytes(odd, sizeof(odd)), 0);
		for (size_t b = 0; b < ID * 8; b++)
			ones[b] += (ids[i][b / 8] >> (b % 8)) & 1;
	}
	for (size_t b = 0; b < ID * 8; b++)
		if (ones[b] < N / 2 - N / 20 || ones[b] > N / 2 + N / 20)
			fail_msg("bit %zu set %u times of %d", b, ones[b], N);
	assert_all_distinct(ids, N);
	free(ids);
}

enum { PER_THREAD = 5000 };

static void *draw_many(void *arg)
{
	uint8_t (*ids)[ID] = arg;
	for (size_t i = 0; i < PER_THREAD; i++)
		if (wi_rand_id_bytes(ids[i], ID) < 0)
			return (void *)1;
	return NULL;
}

/* Each thread has its own buffer: no two threads hand out the same bytes. */
static void test_threads_distinct(void **state)
{
	(void)state;
	enum { T = 4 };
	uint8_t (*ids)[ID] = calloc(T * PER_THREAD, ID);
	assert_non_null(ids);
	pthread_t th[T];
	for (int t = 0; t < T; t++)
		assert_int_equal(pthread_create(&th[t], NULL, draw_many, ids + t * PER_THREAD), 0);
	for (int t = 0; t < T; t++) {
		void *r = (void *)1;
		assert_int_equal(pthread_join(th[t], &r), 0);
		assert_null(r);
	}
	assert_all_distinct(ids, T * PER_THREAD);
	free(ids);
}

/* After a fork, the child must not hand out what the parent hands out next
 * from the same (copied) buffer. */
static void test_fork_does_not_repeat(void **state)
{
	(void)state;
	uint8_t first[ID];
	assert_int_equal(wi_rand_id_bytes(first, ID), 0); /* the buffer is full now */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t c[4][ID];
		int ok = 1;
		for (int i = 0; i < 4; i++)
			ok &= wi_rand_id_bytes(c[i], ID) == 0;
		ssize_t w = ok ? write(fds[1], c, sizeof(c)) : -1;
		_exit(w == (ssize_t)sizeof(c) ? 0 : 1);
	}
	close(fds[1]);
	uint8_t parent[4][ID], child[4][ID];
	for (int i = 0; i < 4; i++)
		assert_int_equal(wi_rand_id_bytes(parent[i], ID), 0);
	size_t got = 0;
	while (got < sizeof(child)) {
		ssize_t r = read(fds[0], (uint8_t *)child + got, sizeof(child) - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fds[0]);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			assert_memory_not_equal(parent[i], child[j], ID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_distinct_across_refills),
		cmocka_unit_test(test_threads_distinct),
		cmocka_unit_test(test_fork_does_not_repeat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
