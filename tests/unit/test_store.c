/* tests/unit/test_store.c — the SQLite state store: file mode, revocation
 * rows, values stored verbatim, refusal of damaged files, crash safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/fsutil.h"
#include "core/limits.h"
#include "core/store.h"

typedef struct fx {
	char dir[PATH_MAX];
	char db[PATH_MAX];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "store"));
	assert_int_equal(wi_fs_join(f->db, sizeof(f->db), f->dir, "state.db"), 0);
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

static wi_store *open_ok(const fx *f)
{
	wi_store *s = NULL;
	int r = wi_store_open(f->dir, &s);
	if (r != 0)
		fail_msg("wi_store_open: %d %s", r, wi_error_detail());
	assert_non_null(s);
	return s;
}

/* --- collecting rows ---------------------------------------------------------- */

#define ROWS_MAX 64
typedef struct rows {
	size_t n;
	wi_revocation_kind kind[ROWS_MAX];
	char *value[ROWS_MAX];
	time_t until[ROWS_MAX];
} rows;

static int collect(wi_revocation_kind kind, const char *value, time_t until, void *ud)
{
	rows *r = ud;
	if (r->n == ROWS_MAX)
		return -100;
	r->kind[r->n] = kind;
	r->value[r->n] = strdup(value);
	r->until[r->n] = until;
	r->n++;
	return 0;
}

static void rows_free(rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->value[i]);
	r->n = 0;
}

static void read_all(wi_store *s, time_t now, rows *r)
{
	*r = (rows){0};
	assert_int_equal(wi_store_each_revocation(s, now, collect, r), 0);
}

/* until of (kind, value), or -1 when absent. */
static time_t find(const rows *r, wi_revocation_kind kind, const char *value)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->kind[i] == kind && strcmp(r->value[i], value) == 0)
			return r->until[i];
	return -1;
}

static mode_t mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	return st.st_mode & 07777;
}

/* --- tests -------------------------------------------------------------------------- */

static void test_create_mode(void **state)
{
	fx *f = *state;
	assert_int_equal(chmod(f->dir, 0750), 0);
	/* A permissive umask must not widen the file (DESIGN §6: 0600). */
	mode_t old = umask(0);
	wi_store *s = open_ok(f);
	umask(old);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "t", 100), 0);
	assert_int_equal(mode_of(f->db), 0600);
	/* SQLite gives its side files the mode of the main file. */
	char side[PATH_MAX];
	path_in(f, "state.db-wal", side);
	assert_int_equal(mode_of(side), 0600);
	path_in(f, "state.db-shm", side);
	assert_int_equal(mode_of(side), 0600);
	/* The data directory is the daemon's business, not the store's. */
	assert_int_equal(mode_of(f->dir), 0750);
	s = wi_store_close(s);
	assert_null(s);
	assert_null(wi_store_close(NULL));

	/* An existing file with group/other bits is tightened on open. */
	assert_int_equal(chmod(f->db, 0644), 0);
	s = open_ok(f);
	assert_int_equal(mode_of(f->db), 0600);
	wi_store_close(s);
}

static void test_missing_dir(void **state)
{
	fx *f = *state;
	char p[PATH_MAX];
	path_in(f, "absent", p);
	wi_store *s = NULL;
	assert_int_equal(wi_store_open(p, &s), WI_E_IO);
	assert_null(s);
	assert_non_null(strstr(wi_error_detail(), "absent"));
	assert_int_equal(wi_store_open(NULL, &s), WI_E_INVAL);
	assert_int_equal(wi_store_open("", &s), WI_E_INVAL);
	assert_int_equal(wi_store_open(f->dir, NULL), WI_E_INVAL);
}

static void test_put_each_prune(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "txn-1", 100), 0);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_ACTOR, "spiffe://example.org/agent", 200), 0);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_PRINCIPAL, "https://idp.example alice", 300), 0);
	/* Same value, another kind: a separate row. */
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "spiffe://example.org/agent", 150), 0);

	rows r;
	read_all(s, 0, &r);
	assert_int_equal(r.n, 4);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "txn-1"), 100);
	assert_int_equal(find(&r, WI_REVOKE_ACTOR, "spiffe://example.org/agent"), 200);
	assert_int_equal(find(&r, WI_REVOKE_PRINCIPAL, "https://idp.example alice"), 300);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "spiffe://example.org/agent"), 150);
	rows_free(&r);

	/* each: only until > now. */
	read_all(s, 150, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "txn-1"), -1);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "spiffe://example.org/agent"), -1);
	rows_free(&r);
	read_all(s, 300, &r);
	assert_int_equal(r.n, 0);

	/* each stops early and returns the callback's value as is. */
	assert_int_equal(wi_store_each_revocation(s, 0, collect, &(rows){.n = ROWS_MAX}), -100);

	/* prune: until <= now goes. */
	assert_int_equal(wi_store_prune_revocations(s, 150), 0);
	read_all(s, 0, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(find(&r, WI_REVOKE_ACTOR, "spiffe://example.org/agent"), 200);
	assert_int_equal(find(&r, WI_REVOKE_PRINCIPAL, "https://idp.example alice"), 300);
	rows_free(&r);
	assert_int_equal(wi_store_prune_revocations(s, 1000), 0);
	read_all(s, 0, &r);
	assert_int_equal(r.n, 0);
	wi_store_close(s);
}

/* until of the row of (kind, value) with the greatest until, or -1. */
static time_t find_max(const rows *r, wi_revocation_kind kind, const char *value)
{
	time_t best = -1;
	for (size_t i = 0; i < r->n; i++)
		if (r->kind[i] == kind && strcmp(r->value[i], value) == 0 && r->until[i] > best)
			best = r->until[i];
	return best;
}

/* store.h: a re-revocation appends a row; the greatest until holds, and
 * prune never takes the longest row before it expires. */
static void test_reput_extends(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	rows r;
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "t", 100), 0);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "t", 500), 0);
	read_all(s, 0, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(find_max(&r, WI_REVOKE_TXN, "t"), 500);
	rows_free(&r);
	/* An earlier until never shortens a revocation in force. */
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "t", 200), 0);
	read_all(s, 0, &r);
	assert_int_equal(find_max(&r, WI_REVOKE_TXN, "t"), 500);
	rows_free(&r);
	assert_int_equal(wi_store_prune_revocations(s, 300), 0);
	read_all(s, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "t"), 500);
	rows_free(&r);
	/* And each reads only rows still in force. */
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "t", 700), 0);
	read_all(s, 600, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "t"), 700);
	rows_free(&r);
	wi_store_close(s);
}

static void raw_exec(const char *db, const char *sql);

/* A schema-2 file (revocations keyed by (kind, value)) becomes the log with
 * every row kept, entries untouched, and takes appends afterwards. */
static void test_migrate_v2_log(void **state)
{
	fx *f = *state;
	/* Schema 2 exactly as the shipped migrations created it. */
	raw_exec(f->db, WI_TEST_SCHEMA_V1_REVOCATIONS WI_TEST_SCHEMA_V2_ENTRIES
			"PRAGMA application_id = 2003398003;"
			"PRAGMA user_version = 2;"
			"INSERT INTO revocations VALUES (1, 'txn-a', 4000000000), (2, 'spiffe://example.org/a', 300),"
			" (3, 'https://idp.example alice', 4000000001), (1, 'gone', 50);");
	assert_int_equal(chmod(f->db, 0600), 0);
	wi_store *s = open_ok(f);
	rows r;
	read_all(s, 0, &r);
	assert_int_equal(r.n, 4);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "txn-a"), 4000000000);
	assert_int_equal(find(&r, WI_REVOKE_ACTOR, "spiffe://example.org/a"), 300);
	assert_int_equal(find(&r, WI_REVOKE_PRINCIPAL, "https://idp.example alice"), 4000000001);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "gone"), 50);
	rows_free(&r);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_ACTOR, "spiffe://example.org/a", 900), 0);
	assert_int_equal(wi_store_prune_revocations(s, 300), 0);
	read_all(s, 0, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(find(&r, WI_REVOKE_ACTOR, "spiffe://example.org/a"), 900);
	assert_int_equal(find(&r, WI_REVOKE_TXN, "gone"), -1);
	rows_free(&r);
	wi_store_close(s);

	/* The old table is gone and the file says version 3. */
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h,
					    "SELECT (SELECT count(*) FROM sqlite_schema WHERE name = 'revocations'),"
					    " (SELECT user_version FROM pragma_user_version)",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	assert_int_equal(sqlite3_column_int(st, 1), 3);
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static void test_verbatim_values(void **state)
{
	fx *f = *state;
	static const char *const nasty[] = {
		"x'); DROP TABLE revocation_log; --",
		"a;b;c",
		"\"double\" 'single' `back`",
		"Jos\xc3\xa9 \xf0\x9f\x9a\x80 \xe3\x83\xa6\xe3\x83\xbc\xe3\x82\xb6",
		"?1 ?2 :name @x $y",
		"percent %s %n %%",
		"back\\slash\nnew line\ttab",
		"\xff\xfe not utf-8",
	};
	size_t n = sizeof(nasty) / sizeof(nasty[0]);
	wi_store *s = open_ok(f);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_PRINCIPAL, nasty[i], 1000 + (time_t)i), 0);
	wi_store_close(s);

	/* Reopened: the table is still there and every value comes back as sent. */
	s = open_ok(f);
	rows r;
	read_all(s, 0, &r);
	assert_int_equal(r.n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(find(&r, WI_REVOKE_PRINCIPAL, nasty[i]), 1000 + (time_t)i);
	rows_free(&r);
	wi_store_close(s);
}

static void test_bad_arguments(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	assert_int_equal(wi_store_put_revocation(s, (wi_revocation_kind)0, "v", 10), WI_E_INVAL);
	assert_int_equal(wi_store_put_revocation(s, (wi_revocation_kind)4, "v", 10), WI_E_INVAL);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "", 10), WI_E_INVAL);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, NULL, 10), WI_E_INVAL);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, "v", 0), WI_E_INVAL);
	assert_int_equal(wi_store_put_revocation(NULL, WI_REVOKE_TXN, "v", 10), WI_E_INVAL);
	char *big = malloc(WI_REVOCATION_VALUE_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', WI_REVOCATION_VALUE_MAX + 1);
	big[WI_REVOCATION_VALUE_MAX + 1] = '\0';
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, big, 10), WI_E_TOO_BIG);
	big[WI_REVOCATION_VALUE_MAX] = '\0'; /* exactly at the limit: fine */
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, big, 10), 0);
	free(big);
	assert_int_equal(wi_store_each_revocation(s, 0, NULL, NULL), WI_E_INVAL);
	assert_int_equal(wi_store_prune_revocations(NULL, 0), WI_E_INVAL);
	wi_store_close(s);
}

static void write_file(const char *p, const void *data, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static size_t read_file(const char *p, char *buf, size_t cap)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap);
	assert_true(n >= 0);
	close(fd);
	return (size_t)n;
}

static void test_garbage_refused(void **state)
{
	fx *f = *state;
	char garbage[4096];
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)("this is not a database;"[i % 23]);
	write_file(f->db, garbage, sizeof(garbage));

	wi_store *s = NULL;
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_PARSE);
	assert_null(s);
	assert_non_null(strstr(wi_error_detail(), "state.db"));
	assert_non_null(strstr(wi_error_detail(), "not a database"));
	/* Refused, not repaired: the bytes are exactly as they were. */
	char back[8192];
	assert_int_equal(read_file(f->db, back, sizeof(back)), sizeof(garbage));
	assert_memory_equal(back, garbage, sizeof(garbage));
}

static void test_corrupt_page_refused(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	char v[160];
	/* Enough rows for a multi-page b-tree and index. */
	for (int i = 0; i < 150; i++) {
		snprintf(v, sizeof(v), "txn-%06d-%0120d", i, i);
		assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_TXN, v, 1000 + i), 0);
	}
	s = wi_store_close(s); /* last close checkpoints the WAL into the file */

	struct stat st;
	assert_int_equal(stat(f->db, &st), 0);
	assert_true(st.st_size >= 4 * 4096);
	/* Scribble over page 3 (a b-tree page), leaving the header intact. */
	int fd = open(f->db, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char junk[4096];
	memset(junk, 0xa5, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 2 * 4096), (ssize_t)sizeof(junk));
	close(fd);

	assert_int_equal(wi_store_open(f->dir, &s), WI_E_PARSE);
	assert_null(s);
	assert_non_null(strstr(wi_error_detail(), "state.db"));
	assert_null(strchr(wi_error_detail(), '\n')); /* one log line */
}

static void raw_exec(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	char *err = NULL;
	int rc = sqlite3_exec(h, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_close(h);
}

static void test_foreign_and_newer_refused(void **state)
{
	fx *f = *state;
	wi_store *s = wi_store_close(open_ok(f));
	/* A newer wimsed's file: not downgraded, not touched. */
	raw_exec(f->db, "PRAGMA user_version = 99");
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_IO);
	assert_non_null(strstr(wi_error_detail(), "schema version 99"));
	assert_null(s);

	/* Another program's database is not adopted. */
	assert_int_equal(unlink(f->db), 0);
	raw_exec(f->db, "CREATE TABLE other (x); PRAGMA user_version = 1");
	assert_int_equal(chmod(f->db, 0600), 0);
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_PARSE);
	assert_non_null(strstr(wi_error_detail(), "not a wimsed state database"));
	assert_int_equal(unlink(f->db), 0);
	raw_exec(f->db, "CREATE TABLE other (x)");
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_PARSE);
	assert_null(s);
	/* Refused before anything was written: still in its own journal mode. */
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "delete");
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static void test_symlink_refused(void **state)
{
	fx *f = *state;
	char target[PATH_MAX];
	path_in(f, "elsewhere.db", target);
	assert_int_equal(symlink(target, f->db), 0);
	wi_store *s = NULL;
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_IO);
	assert_null(s);
	assert_int_equal(access(target, F_OK), -1); /* nothing created through it */

	/* A planted side file too. */
	assert_int_equal(unlink(f->db), 0);
	char wal[PATH_MAX];
	path_in(f, "state.db-wal", wal);
	assert_int_equal(symlink(target, wal), 0);
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_IO);
	assert_null(s);
	assert_int_equal(unlink(wal), 0);

	/* And something that is not a regular file. */
	assert_int_equal(unlink(f->db), 0);
	assert_int_equal(mkfifo(f->db, 0600), 0);
	assert_int_equal(wi_store_open(f->dir, &s), WI_E_IO);
	assert_non_null(strstr(wi_error_detail(), "not a regular file"));
}

static void test_reopen_keeps_data(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	assert_int_equal(wi_store_put_revocation(s, WI_REVOKE_ACTOR, "spiffe://example.org/a", 900), 0);
	wi_store_close(s);
	for (int i = 0; i < 3; i++) {
		s = open_ok(f);
		rows r;
		read_all(s, 0, &r);
		assert_int_equal(r.n, 1);
		assert_int_equal(find(&r, WI_REVOKE_ACTOR, "spiffe://example.org/a"), 900);
		rows_free(&r);
		wi_store_close(s);
	}
}

/* --- crash safety ------------------------------------------------------------- */

#define CRASH_ROUNDS 20

/* The child: opens its own store and revokes in a loop, one transaction per
 * call, reporting each index on the pipe only after the call returned 0. */
static void crash_child(const char *dir, int round, int wfd)
{
	wi_store *s = NULL;
	if (wi_store_open(dir, &s) != 0)
		_exit(2);
	for (uint32_t i = 0;; i++) {
		char v[64];
		snprintf(v, sizeof(v), "r%02d-%u", round, i);
		if (wi_store_put_revocation(s, WI_REVOKE_TXN, v, 4000000000) != 0)
			_exit(3);
		if (write(wfd, &i, sizeof(i)) != (ssize_t)sizeof(i))
			_exit(4);
	}
}

static void check_integrity_raw(const char *db)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(h);
}

/* Counts the rows of one round with an index below `reported`. */
typedef struct round_count {
	int round;
	uint32_t reported;
	uint32_t present, total;
} round_count;

static int count_round(wi_revocation_kind kind, const char *value, time_t until, void *ud)
{
	round_count *c = ud;
	int round = -1;
	unsigned idx = 0;
	char tail;
	if (kind != WI_REVOKE_TXN || sscanf(value, "r%d-%u%c", &round, &idx, &tail) != 2)
		return -100;
	if (round != c->round)
		return 0;
	c->total++;
	if (idx < c->reported)
		c->present++;
	return 0;
}

/* Reads one index from the child; false at EOF (the child is gone). */
static bool read_index(int fd, uint32_t want)
{
	uint32_t idx = 0;
	ssize_t got = read(fd, &idx, sizeof(idx));
	if (got == 0)
		return false;
	assert_int_equal(got, (ssize_t)sizeof(idx)); /* pipe writes <= PIPE_BUF are whole */
	assert_int_equal(idx, want);                 /* in order, none lost */
	return true;
}

static void test_crash_safety(void **state)
{
	fx *f = *state;
	/* Uneven, reproducible jitter (no rand(): STYLE §16). */
	uint32_t x = 0x9e3779b9u;
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			crash_child(f->dir, round, p[1]);
		}
		close(p[1]);
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		uint32_t n = 0;
		/* Every fourth round kills blind, 1-16 ms after the fork, which
		 * tends to land in the child's open (integrity check, WAL
		 * recovery, migration).  The others wait until the child has
		 * reported `round` commits and then kill 0-2 ms later, landing
		 * between or inside later transactions. */
		int target = round % 4 == 0 ? 0 : round;
		while (n < (uint32_t)target && read_index(p[0], n))
			n++;
		assert_int_equal(n, target); /* the child did not die on its own */
		usleep(target == 0 ? 1000 + x % 15000u : x % 2000u);
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		while (read_index(p[0], n))
			n++;
		close(p[0]);

		/* Our open accepts the file, a full integrity_check passes,
		 * and every commit the child saw return 0 is there (and at
		 * most one more it had no time to report). */
		wi_store *s = open_ok(f); /* recovers the WAL the child left */
		check_integrity_raw(f->db);
		round_count c = {.round = round, .reported = n};
		assert_int_equal(wi_store_each_revocation(s, 0, count_round, &c), 0);
		assert_int_equal(c.present, n);
		assert_true(c.total == n || c.total == n + 1);
		wi_store_close(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_each_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reput_extends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verbatim_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_page_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_and_newer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
