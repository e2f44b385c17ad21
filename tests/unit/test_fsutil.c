/* tests/unit/test_fsutil.c — private directories, atomic writes, capped reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"

typedef struct fx {
	char dir[PATH_MAX];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "fsutil"));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	wi_test_rmtree(f->dir);
	free(f);
	return 0;
}

static void path_in(const fx *f, const char *name, char *buf)
{
	assert_int_equal(wi_fs_join(buf, PATH_MAX, f->dir, name), 0);
}

static mode_t mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_mode & 07777;
}

/* Names in a directory other than "." and "..". */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void read_expect(const char *p, const char *want)
{
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(wi_fs_read_file(p, 1 << 20, &data, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(data, want, len);
	assert_int_equal(data[len], '\0');
	free(data);
}

static void test_write_creates_with_mode(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	mode_t old = umask(077);
	path_in(f, "public", p);
	/* The umask must not narrow what was asked. */
	assert_int_equal(wi_fs_write_atomic(p, "hello", 5, 0644), 0);
	assert_int_equal(mode_of(p), 0644);
	umask(022);
	path_in(f, "secret", p);
	assert_int_equal(wi_fs_write_atomic(p, "key", 3, 0600), 0);
	assert_int_equal(mode_of(p), 0600);
	umask(old);
	read_expect(p, "key");
}

static void test_write_replaces_content(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "state", p);
	assert_int_equal(wi_fs_write_atomic(p, "first version", 13, 0600), 0);
	struct stat st1;
	assert_int_equal(stat(p, &st1), 0);
	assert_int_equal(wi_fs_write_atomic(p, "v2", 2, 0640), 0);
	read_expect(p, "v2");
	assert_int_equal(mode_of(p), 0640);
	/* Replaced by rename (a new inode), not rewritten in place. */
	struct stat st2;
	assert_int_equal(stat(p, &st2), 0);
	assert_true(st1.st_ino != st2.st_ino);
}

static void test_write_leaves_no_temp(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "only", p);
	for (int i = 0; i < 5; i++)
		assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0600), 0);
	assert_int_equal(count_entries(f->dir), 1);
}

static void test_write_empty(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "empty", p);
	assert_int_equal(wi_fs_write_atomic(p, NULL, 0, 0600), 0);
	read_expect(p, "");
}

static void test_write_failures(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	/* Missing directory. */
	path_in(f, "nodir/file", p);
	assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0600), WI_E_IO);
	/* Not a file name. */
	path_in(f, "dir/", p);
	assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0600), WI_E_INVAL);
	/* The rename fails (a directory is in the way): the temp file is
	 * removed and the directory left alone. */
	path_in(f, "busy", p);
	assert_int_equal(mkdir(p, 0700), 0);
	char inner[PATH_MAX];
	assert_int_equal(wi_fs_join(inner, sizeof(inner), p, "keep"), 0);
	assert_int_equal(wi_fs_write_atomic(inner, "k", 1, 0600), 0);
	assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0600), WI_E_IO);
	assert_int_equal(count_entries(f->dir), 1);
	read_expect(inner, "k");
	/* Mode bits beyond 07777. */
	path_in(f, "m", p);
	assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0170600), WI_E_INVAL);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_write_relative_path(void **state)
{
	fx *f = *state;
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->dir), 0);
	int r = wi_fs_write_atomic("rel", "abc", 3, 0600);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(r, 0);
	char p[PATH_MAX];
	path_in(f, "rel", p);
	read_expect(p, "abc");
}

static void test_read_cap(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "hundred", p);
	char buf[100];
	memset(buf, 'a', sizeof(buf));
	assert_int_equal(wi_fs_write_atomic(p, buf, sizeof(buf), 0600), 0);
	uint8_t *data = (uint8_t *)0x1;
	size_t len = 77;
	assert_int_equal(wi_fs_read_file(p, 99, &data, &len), WI_E_TOO_BIG);
	/* Outputs untouched on failure. */
	assert_ptr_equal(data, (uint8_t *)0x1);
	assert_int_equal(len, 77);
	data = NULL;
	assert_int_equal(wi_fs_read_file(p, 100, &data, &len), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(data, buf, 100);
	assert_int_equal(data[100], '\0');
	free(data);
}

static void test_read_large(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "large", p);
	size_t n = 3 * 4096 + 123;
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(wi_fs_write_atomic(p, buf, n, 0600), 0);
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(wi_fs_read_file(p, n, &data, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(data, buf, n);
	free(data);
	assert_int_equal(wi_fs_read_file(p, n - 1, &data, &len), WI_E_TOO_BIG);
	free(buf);
}

static void test_read_missing_and_not_regular(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	uint8_t *data = NULL;
	size_t len = 0;
	path_in(f, "absent", p);
	assert_int_equal(wi_fs_read_file(p, 100, &data, &len), WI_E_NOT_FOUND);
	assert_null(data);
	assert_int_equal(wi_fs_read_file(f->dir, 100, &data, &len), WI_E_IO);
	assert_null(data);
}

static void test_read_proc_file(void **state)
{
	/* /proc files report size 0: the read loop must not trust st_size. */
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(wi_fs_read_file("/proc/self/status", 1 << 16, &data, &len), 0);
	assert_true(len > 0);
	assert_non_null(strstr((char *)data, "Pid:"));
	free(data);
	assert_int_equal(wi_fs_read_file("/proc/self/status", 8, &data, &len), WI_E_TOO_BIG);
}

static void test_mkdir_private_creates(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "a/b/c", p);
	assert_int_equal(wi_fs_mkdir_private(p), 0);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	path_in(f, "a", p);
	assert_int_equal(mode_of(p), 0700);
	path_in(f, "a/b", p);
	assert_int_equal(mode_of(p), 0700);
	/* Again: idempotent; a trailing slash names the same directory. */
	path_in(f, "a/b/c/", p);
	assert_int_equal(wi_fs_mkdir_private(p), 0);
}

static void test_mkdir_private_tightens(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "open", p);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(wi_fs_mkdir_private(p), 0);
	assert_int_equal(mode_of(p), 0700);
	/* Owner bits are kept as they were; only group/other go. */
	assert_int_equal(chmod(p, 0577), 0);
	assert_int_equal(wi_fs_mkdir_private(p), 0);
	assert_int_equal(mode_of(p), 0500);
	assert_int_equal(chmod(p, 0700), 0);
}

static void test_mkdir_private_rejects(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "file", p);
	assert_int_equal(wi_fs_write_atomic(p, "x", 1, 0600), 0);
	assert_int_equal(wi_fs_mkdir_private(p), WI_E_IO);
	path_in(f, "file/sub", p);
	assert_int_equal(wi_fs_mkdir_private(p), WI_E_IO);
	assert_int_equal(wi_fs_mkdir_private(""), WI_E_INVAL);
	if (geteuid() != 0)
		return; /* the ownership check needs a directory of another uid */
	path_in(f, "theirs", p);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(wi_fs_mkdir_private(p), WI_E_IO);
	assert_int_equal(mode_of(p), 0755); /* not touched */
}

static void test_join(void **state)
{
	(void)state;
	char buf[16];
	assert_int_equal(wi_fs_join(buf, sizeof(buf), "/a/b", "c"), 0);
	assert_string_equal(buf, "/a/b/c");
	assert_int_equal(wi_fs_join(buf, sizeof(buf), "/a/", "c"), 0);
	assert_string_equal(buf, "/a/c");
	/* 15 characters fit in 16 bytes; 16 do not. */
	assert_int_equal(wi_fs_join(buf, sizeof(buf), "/0123456789", "abc"), 0);
	assert_int_equal(wi_fs_join(buf, sizeof(buf), "/0123456789", "abcd"), WI_E_TOO_BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_creates_with_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_replaces_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_leaves_no_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_relative_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_missing_and_not_regular, setup, teardown),
		cmocka_unit_test(test_read_proc_file),
		cmocka_unit_test_setup_teardown(test_mkdir_private_creates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_private_tightens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_private_rejects, setup, teardown),
		cmocka_unit_test(test_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
