/* Unit tests: core/malloc_tune (GLIBC_TUNABLES for glibc's per-thread malloc
 * cache, and the re-exec in place that applies it).
 *
 * The re-exec is tested for real: a forked child calls it, this very binary
 * starts again in the child with --report, and writes what it runs with to a
 * pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/malloc_tune.h"

#define TUNE WI_MALLOC_TUNE_NAME "=" WI_MALLOC_TUNE_VALUE
#define REPORT_MAX 8192

static char *self_argv0;

static void assert_added(const char *current, const char *want)
{
	char out[WI_MALLOC_TUNABLES_MAX];
	assert_int_equal(wi_malloc_tunables_for(current, out, sizeof(out)), 1);
	assert_string_equal(out, want);
}

static void assert_kept(const char *current)
{
	char out[16] = "untouched";
	assert_int_equal(wi_malloc_tunables_for(current, out, sizeof(out)), 0);
	assert_string_equal(out, "untouched");
}

static void test_tunables_added(void **state)
{
	(void)state;
	assert_added(NULL, TUNE);
	assert_added("", TUNE);
	/* The operator's other tunables are kept, ours goes last. */
	assert_added("glibc.malloc.mxfast=0", "glibc.malloc.mxfast=0:" TUNE);
	assert_added("glibc.malloc.mxfast=0:glibc.malloc.arena_max=2",
		     "glibc.malloc.mxfast=0:glibc.malloc.arena_max=2:" TUNE);
	/* Only the exact name, at the start of an item, followed by '=', is ours. */
	assert_added(WI_MALLOC_TUNE_NAME, WI_MALLOC_TUNE_NAME ":" TUNE);
	assert_added(WI_MALLOC_TUNE_NAME "x=5", WI_MALLOC_TUNE_NAME "x=5:" TUNE);
	assert_added("x" WI_MALLOC_TUNE_NAME "=5", "x" WI_MALLOC_TUNE_NAME "=5:" TUNE);
	assert_added("a=1:" WI_MALLOC_TUNE_NAME, "a=1:" WI_MALLOC_TUNE_NAME ":" TUNE);
}

static void test_operator_choice_kept(void **state)
{
	(void)state;
	assert_kept(WI_MALLOC_TUNE_NAME "=7");
	assert_kept(WI_MALLOC_TUNE_NAME "=");
	assert_kept("glibc.malloc.mxfast=0:" WI_MALLOC_TUNE_NAME "=7");
	assert_kept("a=1:" WI_MALLOC_TUNE_NAME "=7:b=2");
}

static void test_too_big(void **state)
{
	(void)state;
	char out[sizeof(TUNE) + 8];
	/* Exactly fits (with its NUL), then one byte short. */
	assert_int_equal(wi_malloc_tunables_for(NULL, out, sizeof(TUNE)), 1);
	assert_string_equal(out, TUNE);
	assert_int_equal(wi_malloc_tunables_for(NULL, out, sizeof(TUNE) - 1), WI_E_TOO_BIG);
	assert_int_equal(wi_malloc_tunables_for("a=1", out, sizeof(TUNE) + 3), WI_E_TOO_BIG);
	assert_int_equal(wi_malloc_tunables_for("a=1", out, sizeof(TUNE) + 4), 1);
	assert_string_equal(out, "a=1:" TUNE);
	assert_int_equal(wi_malloc_tunables_for(NULL, out, 0), WI_E_TOO_BIG);
}

/* What a child run reports: its pid and GLIBC_TUNABLES as the binary
 * started again with --report sees them, and what a second call did. */
static void report(void)
{
	const char *t = getenv("GLIBC_TUNABLES");
	int again = wi_malloc_tune_reexec((char *[]){self_argv0, "--report", NULL});
	printf("exec pid=%ld tunables=%s again=%d\n", (long)getpid(), t ? t : "(unset)", again);
	fflush(stdout);
}

/* Forks; the child sets GLIBC_TUNABLES to `tunables` (NULL: unset), calls
 * the re-exec and, if that returns, reports "returned rc=… tunables=…".
 * Returns the child's report; *ret_pid is the child's pid. */
static char *run_child(const char *tunables, pid_t *ret_pid)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(90);
		close(p[1]);
		if (tunables ? setenv("GLIBC_TUNABLES", tunables, 1) : unsetenv("GLIBC_TUNABLES"))
			_exit(91);
		int rc = wi_malloc_tune_reexec((char *[]){self_argv0, "--report", NULL});
		const char *t = getenv("GLIBC_TUNABLES");
		printf("returned rc=%d tunables=%s\n", rc, t ? t : "(unset)");
		fflush(stdout);
		_exit(0);
	}
	close(p[1]);
	char *buf = calloc(1, REPORT_MAX);
	assert_non_null(buf);
	size_t n = 0;
	ssize_t r;
	while (n < REPORT_MAX - 1 && (r = read(p[0], buf + n, REPORT_MAX - 1 - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	*ret_pid = pid;
	return buf;
}

/* Without the tunable: the process becomes this binary again, in place
 * (same pid), with it set; there, a second call does nothing. */
static void test_reexec_in_place(void **state)
{
	(void)state;
	pid_t pid;
	char *r = run_child(NULL, &pid);
	char want[256];
	snprintf(want, sizeof(want), "exec pid=%ld tunables=" TUNE " again=0\n", (long)pid);
	assert_string_equal(r, want);
	free(r);

	r = run_child("glibc.malloc.mxfast=0", &pid);
	snprintf(want, sizeof(want), "exec pid=%ld tunables=glibc.malloc.mxfast=0:" TUNE " again=0\n", (long)pid);
	assert_string_equal(r, want);
	free(r);
}

/* The operator's own value: no exec at all. */
static void test_no_reexec_when_set(void **state)
{
	(void)state;
	pid_t pid;
	char *r = run_child(WI_MALLOC_TUNE_NAME "=7", &pid);
	assert_string_equal(r, "returned rc=0 tunables=" WI_MALLOC_TUNE_NAME "=7\n");
	free(r);
}

/* A GLIBC_TUNABLES too long to extend: an error, no exec, the environment
 * as it was. */
static void test_reexec_refused_when_too_long(void **state)
{
	(void)state;
	char *big = malloc(WI_MALLOC_TUNABLES_MAX);
	assert_non_null(big);
	memset(big, 'a', WI_MALLOC_TUNABLES_MAX - 1);
	memcpy(big, "x.y=", 4);
	big[WI_MALLOC_TUNABLES_MAX - 1] = '\0';
	pid_t pid;
	char *r = run_child(big, &pid);
	char *want = malloc(WI_MALLOC_TUNABLES_MAX + 64);
	assert_non_null(want);
	snprintf(want, WI_MALLOC_TUNABLES_MAX + 64, "returned rc=%d tunables=%s\n", WI_E_TOO_BIG, big);
	assert_string_equal(r, want);
	free(want);
	free(r);
	free(big);
}

int main(int argc, char **argv)
{
	self_argv0 = argv[0];
	if (argc == 2 && strcmp(argv[1], "--report") == 0) {
		report();
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tunables_added),
		cmocka_unit_test(test_operator_choice_kept),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_reexec_in_place),
		cmocka_unit_test(test_no_reexec_when_set),
		cmocka_unit_test(test_reexec_refused_when_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
