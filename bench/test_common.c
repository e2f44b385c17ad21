/* Unit tests: bench/common (the latency record behind every published
 * percentile, the merge of the HTTP load threads' records, and the /proc
 * readings beside them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/common.h"

static void add_ms(wi_bench_lat *l, unsigned from, unsigned to)
{
	for (unsigned i = from; i <= to; i++)
		wi_bench_lat_add(l, (uint64_t)i * 1000000u);
}

static void test_percentiles(void **state)
{
	(void)state;
	wi_bench_lat l;
	assert_int_equal(wi_bench_lat_init(&l, 0), 0);
	assert_true(wi_bench_lat_pct_ms(&l, 0.5) == 0.0); /* no samples */
	add_ms(&l, 1, 1000);
	assert_true(wi_bench_lat_pct_ms(&l, 0.0) == 1.0);
	assert_true(wi_bench_lat_pct_ms(&l, 0.5) == 501.0);
	assert_true(wi_bench_lat_pct_ms(&l, 0.99) == 990.0);
	assert_true(wi_bench_lat_pct_ms(&l, 1.0) == 1000.0);
	wi_bench_lat_free(&l);
}

/* Two threads' records, interleaved in time: the merged percentiles are
 * those of all samples, and the counts add up. */
static void test_merge(void **state)
{
	(void)state;
	wi_bench_lat a, b, all;
	assert_int_equal(wi_bench_lat_init(&a, 0), 0);
	assert_int_equal(wi_bench_lat_init(&b, 0), 0);
	assert_int_equal(wi_bench_lat_init(&all, 0), 0);
	add_ms(&a, 1, 600);
	add_ms(&b, 601, 3000); /* more than a's capacity: the merge grows it */
	b.errors = 3;
	assert_int_equal(wi_bench_lat_merge(&all, &a), 0);
	assert_int_equal(wi_bench_lat_merge(&all, &b), 0);
	assert_int_equal(all.ok, 3000);
	assert_int_equal(all.errors, 3);
	assert_int_equal(all.n, 3000);
	assert_true(wi_bench_lat_pct_ms(&all, 0.0) == 1.0);
	assert_true(wi_bench_lat_pct_ms(&all, 0.5) == 1501.0);
	assert_true(wi_bench_lat_pct_ms(&all, 1.0) == 3000.0);
	wi_bench_lat_free(&a);
	wi_bench_lat_free(&b);
	wi_bench_lat_free(&all);
}

/* Beyond WI_BENCH_SAMPLES_MAX samples are counted but not kept, merged or
 * not. */
static void test_merge_bounded(void **state)
{
	(void)state;
	wi_bench_lat a, b;
	assert_int_equal(wi_bench_lat_init(&a, WI_BENCH_SAMPLES_MAX), 0);
	assert_int_equal(wi_bench_lat_init(&b, 0), 0);
	for (size_t i = 0; i < WI_BENCH_SAMPLES_MAX - 10; i++)
		wi_bench_lat_add(&a, 1000);
	add_ms(&b, 1, 100);
	assert_int_equal(wi_bench_lat_merge(&a, &b), 0);
	assert_int_equal(a.n, WI_BENCH_SAMPLES_MAX);
	assert_int_equal(a.ok, WI_BENCH_SAMPLES_MAX - 10 + 100);
	assert_true(wi_bench_lat_pct_ms(&a, 1.0) == 10.0); /* b's first 10 kept */
	wi_bench_lat_free(&a);
	wi_bench_lat_free(&b);
}

static int count_loaded(struct dl_phdr_info *info, size_t size, void *ud)
{
	(void)size;
	if (info->dlpi_name && strchr(info->dlpi_name, '/'))
		(*(long *)ud)++;
	return 0;
}

/* The dynamic loader's own list of loaded objects (the executable and the
 * vDSO have no path) against the kernel's map of the process: the same
 * count, before and after a dlopen; no such process: -1. */
static void test_proc_libraries(void **state)
{
	(void)state;
	long loaded = 0;
	dl_iterate_phdr(count_loaded, &loaded);
	long n = wi_bench_proc_libraries((int)getpid());
	assert_true(n >= 2); /* libc, libcmocka */
	assert_int_equal(n, loaded);
	void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	loaded = 0;
	dl_iterate_phdr(count_loaded, &loaded);
	assert_int_equal(wi_bench_proc_libraries((int)getpid()), loaded);
	dlclose(h);
	assert_int_equal(wi_bench_proc_libraries(-1), -1);
}

/* Another process's CPU seconds from /proc against its own clock: a child
 * named with a space and a ')' (the name is parsed past the last ')') burns
 * CPU, reports CLOCK_PROCESS_CPUTIME_ID and waits; the two agree to a few
 * clock ticks.  No such process: -1. */
static void test_proc_cpu(void **state)
{
	(void)state;
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		(void)prctl(PR_SET_NAME, "x) 1 2 3", 0, 0, 0);
		volatile uint64_t spin = 0;
		while (wi_bench_self_cpu_s() < 0.3)
			spin++;
		double own = wi_bench_self_cpu_s();
		char go;
		_exit(write(up[1], &own, sizeof(own)) == (ssize_t)sizeof(own) && read(down[0], &go, 1) == 1 ? 0 : 1);
	}
	double own = 0;
	assert_int_equal(read(up[0], &own, sizeof(own)), (ssize_t)sizeof(own));
	double seen = wi_bench_proc_cpu_s((int)pid);
	double tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
	assert_true(own >= 0.3);
	assert_true(seen >= own - 3 * tick && seen <= own + 3 * tick);
	assert_int_equal(write(down[1], "x", 1), 1);
	int st = -1;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(wi_bench_proc_cpu_s((int)pid) < 0);
	assert_true(wi_bench_proc_cpu_s(-1) < 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_proc_libraries),
		cmocka_unit_test(test_proc_cpu),
		cmocka_unit_test(test_merge_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
