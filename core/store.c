/* core/store.c — the state store: one SQLite connection on <data_dir>/state.db.
 *
 * Durability (DESIGN §6, survive `kill -9` and power loss): WAL journal with
 * synchronous=FULL, so a commit is on disk (WAL fsynced) before the call
 * returns 0, and every change runs inside BEGIN IMMEDIATE ... COMMIT, so a
 * crash leaves the old or the new state, never half of it.
 *
 * Refusal over loss: a file that is not a SQLite database, fails
 * `PRAGMA quick_check`, is read-only, belongs to another program or has a
 * newer schema is refused with an error naming the file.  Starting empty
 * instead would silently forget revocations (the kill switch).
 *
 * Locking: our own mutex serialises the connection (opened NOMUTEX): a
 * transaction spans several SQLite calls (BEGIN, step, COMMIT) and the error
 * text must be read by the thread that caused it, which SQLite's per-call
 * FULLMUTEX serialisation would not give.
 *
 * Every value reaches SQL as a bound parameter; the only SQL text is the
 * constant strings below. */
#include "core/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/limits.h"

#define STORE_FILE "state.db"
/* Marks the file as ours ("wims" as a big-endian int32; PRAGMA takes it in
 * decimal).  A database with another id is not adopted. */
#define STORE_APPLICATION_ID 2003398003
#define STR_(x) #x
#define STR(x) STR_(x)

/* Schema migrations: migrations[v] takes user_version v to v + 1.  Each step
 * sets user_version itself, inside the same transaction as its DDL, so a
 * crash never leaves a half-migrated file.  Append only: never edit a step
 * that has shipped. */
static const char *const migrations[] = {
	/* 0 -> 1: revocations.  (kind, value) is the key so that re-revoking
	 * updates one row; the index on `until` serves prune and load. */
	"CREATE TABLE revocations ("
	" kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),"
	" value TEXT NOT NULL CHECK (length(value) > 0),"
	" until INTEGER NOT NULL,"
	" PRIMARY KEY (kind, value)"
	") WITHOUT ROWID;"
	"CREATE INDEX revocations_until ON revocations (until);"
	"PRAGMA application_id = " STR(STORE_APPLICATION_ID) ";"
	"PRAGMA user_version = 1;",
	/* 1 -> 2: registration entries.  `body` is the entry's canonical JSON
	 * (core/entry.h), re-validated when loaded; spiffe_id and selectors
	 * (sorted, as a JSON array) are copies that make a duplicate a
	 * constraint violation.  Order served: config entries in file order
	 * (seq), then API entries in creation order (rowid). */
	"CREATE TABLE entries ("
	" id TEXT PRIMARY KEY CHECK (length(id) = 32),"
	" spiffe_id TEXT NOT NULL CHECK (length(spiffe_id) > 0),"
	" selectors TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" source INTEGER NOT NULL CHECK (source IN (1, 2)),"
	" seq INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" UNIQUE (spiffe_id, selectors)"
	");"
	"PRAGMA user_version = 2;",
	/* 2 -> 3: revocations become an append-only log in rowid order.  With
	 * (kind, value) as the key, every new txn (a random string) landed on a
	 * random B-tree page, so a batch of n revocations wrote about n pages
	 * to the WAL: 40 µs a row once 200 000 were held, and growing.  Now a
	 * batch appends to the last pages.  A value re-revoked to a later
	 * `until` gets a row of its own; readers keep the greatest (store.h),
	 * and prune drops each row as it expires, so the longest one stays. */
	"CREATE TABLE revocation_log ("
	" id INTEGER PRIMARY KEY,"
	" kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),"
	" value TEXT NOT NULL CHECK (length(value) > 0),"
	" until INTEGER NOT NULL"
	");"
	"INSERT INTO revocation_log (kind, value, until)"
	" SELECT kind, value, until FROM revocations ORDER BY until;"
	"DROP TABLE revocations;"
	"CREATE INDEX revocation_log_until ON revocation_log (until);"
	"PRAGMA user_version = 3;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* store.h: a put appends a row; readers see every row in force. */
#define SQL_PUT "INSERT INTO revocation_log (kind, value, until) VALUES (?1, ?2, ?3)"
#define SQL_EACH "SELECT kind, value, until FROM revocation_log WHERE until > ?1"
#define SQL_PRUNE "DELETE FROM revocation_log WHERE until <= ?1"
#define SQL_ENTRY_INSERT                                                                    \
	"INSERT INTO entries (id, spiffe_id, selectors, body, source, seq, created)"        \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
#define SQL_ENTRY_COUNT "SELECT count(*) FROM entries"
#define SQL_ENTRY_EACH "SELECT id, body, source, created FROM entries ORDER BY source, seq, rowid"
#define SQL_ENTRY_GET "SELECT id, body, source, created FROM entries WHERE id = ?1"
#define SQL_ENTRY_DELETE "DELETE FROM entries WHERE id = ?1 AND source = ?2"
/* Config sync (rare: start and SIGHUP), prepared when used. */
#define SQL_SYNC_MARK "UPDATE entries SET seq = -1 WHERE source = 1"
#define SQL_SYNC_TAKEOVER "DELETE FROM entries WHERE spiffe_id = ?1 AND selectors = ?2 AND id <> ?3"
/* A config entry is "created" when first seeded (the file gives no time). */
#define SQL_SYNC_UPSERT                                                                     \
	"INSERT INTO entries (id, spiffe_id, selectors, body, source, seq, created)"        \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6,"                                                   \
	" CASE WHEN ?7 > 0 THEN ?7 ELSE CAST(strftime('%s', 'now') AS INTEGER) END)"        \
	" ON CONFLICT (id) DO UPDATE SET body = excluded.body, source = 1, seq = excluded.seq"
#define SQL_SYNC_SWEEP "DELETE FROM entries WHERE source = 1 AND seq = -1"

struct wi_store {
	pthread_mutex_t lock; /* serialises every use of db and the statements */
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback;
	sqlite3_stmt *put, *each, *prune;
	sqlite3_stmt *e_insert, *e_count, *e_each, *e_get, *e_delete;
	char path[PATH_MAX];
};

static void stmt_finalizep(sqlite3_stmt **p)
{
	sqlite3_finalize(*p); /* a no-op on NULL */
}

/* Leaves a statement ready for its next use with no value still bound (the
 * text is bound SQLITE_STATIC: it must not outlive the caller's string). */
static void stmt_resetp(sqlite3_stmt **p)
{
	if (*p) {
		sqlite3_reset(*p);
		sqlite3_clear_bindings(*p);
	}
}


static void store_closep(wi_store **p)
{
	wi_store_close(*p);
}

/* Our code for a SQLite result code. */
static int sql_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return WI_E_NOMEM;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return WI_E_PARSE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return WI_E_UNAVAILABLE; /* another connection holds the file lock */
	case SQLITE_TOOBIG:
		return WI_E_TOO_BIG;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return WI_E_INTERNAL;
	default:
		return WI_E_IO;
	}
}

static int sql_check(wi_store *s, int rc, int want, const char *what)
{
	WI_CHECK(rc == want, sql_code(rc), "%s: %s: %s (SQLite code %d)", s->path, what,
		 sqlite3_errmsg(s->db), sqlite3_extended_errcode(s->db));
	return 0;
}

static int prepare(wi_store *s, const char *sql, sqlite3_stmt **ret_stmt)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	WI_TRY(sql_check(s, rc, SQLITE_OK, "prepare statement"));
	*ret_stmt = st;
	return 0;
}

/* Steps a statement that returns no rows (the caller's guard resets it). */
static int step_done(wi_store *s, sqlite3_stmt *st, const char *what)
{
	return sql_check(s, sqlite3_step(st), SQLITE_DONE, what);
}

static int exec_stmt(wi_store *s, sqlite3_stmt *st, const char *what)
{
	_cleanup_(stmt_resetp) sqlite3_stmt *guard = st;
	return step_done(s, st, what);
}

/* Runs a one-row PRAGMA and returns its first column. */
static int pragma_int(wi_store *s, const char *sql, int *ret_value)
{
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	WI_TRY(prepare(s, sql, &st));
	WI_TRY(sql_check(s, sqlite3_step(st), SQLITE_ROW, sql));
	*ret_value = sqlite3_column_int(st, 0);
	return 0;
}

/* --- transactions ---------------------------------------------------------- */

/* BEGIN IMMEDIATE takes the write lock up front, so a transaction never
 * fails half-way on a lock upgrade (the busy timeout covers the wait). */
static int tx_begin(wi_store *s, wi_store **ret_tx)
{
	WI_TRY(exec_stmt(s, s->begin, "begin transaction"));
	*ret_tx = s;
	return 0;
}

static int tx_commit(wi_store *s, wi_store **tx)
{
	WI_TRY(exec_stmt(s, s->commit, "commit"));
	*tx = NULL;
	return 0;
}

/* Scope guard: a transaction not committed is rolled back (SQLite may
 * already have rolled it back itself after an I/O error). */
static void tx_rollbackp(wi_store **tx)
{
	if (*tx && (*tx)->rollback && !sqlite3_get_autocommit((*tx)->db)) {
		sqlite3_stmt *st = (*tx)->rollback;
		(void)sqlite3_step(st);
		sqlite3_reset(st);
	}
}

/* --- open -------------------------------------------------------------------- */

/* Group/other bits off an existing file (never through a symlink); a name
 * that is not a regular file of ours is refused. */
static int tighten(const char *path, bool must_exist)
{
	/* O_NONBLOCK: a FIFO planted under the name must not hang the open. */
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !must_exist)
		return 0;
	WI_CHECK_ERRNO(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "stat %s: %s", path, strerror(errno));
	WI_CHECK(S_ISREG(st.st_mode), WI_E_IO, "%s is not a regular file", path);
	WI_CHECK(st.st_uid == geteuid(), WI_E_IO, "%s is owned by uid %u, not %u", path,
		 (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 077) != 0)
		WI_CHECK_ERRNO(fchmod(fd, st.st_mode & 0700) == 0, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* Creates the database file 0600 ourselves, before SQLite sees it: SQLite
 * would create it 0644 minus the umask, and it gives the -wal and -shm files
 * the mode of the main file, so this one fchmod covers all three. */
static int prepare_file(const char *path, const char *data_dir)
{
	_cleanup_(closep) int fd =
		open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		WI_TRY(tighten(path, true));
	} else {
		WI_CHECK_ERRNO(fd >= 0, "create %s: %s", path, strerror(errno));
		/* fchmod, not the open mode: the umask must not change it. */
		WI_CHECK_ERRNO(fchmod(fd, 0600) == 0, "chmod %s: %s", path, strerror(errno));
		/* The new name must survive power loss with the data SQLite
		 * fsyncs into it, so the directory entry is synced too. */
		_cleanup_(closep) int dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		WI_CHECK_ERRNO(dirfd >= 0, "open %s: %s", data_dir, strerror(errno));
		WI_CHECK_ERRNO(fsync(dirfd) == 0, "fsync %s: %s", data_dir, strerror(errno));
	}
	/* Left by an older run: same treatment, and never a symlink. */
	char side[PATH_MAX];
	WI_TRY(wi_fs_join(side, sizeof(side), data_dir, STORE_FILE "-wal"));
	WI_TRY(tighten(side, false));
	WI_TRY(wi_fs_join(side, sizeof(side), data_dir, STORE_FILE "-shm"));
	WI_TRY(tighten(side, false));
	return 0;
}

static int check_integrity(wi_store *s)
{
	/* quick_check: the O(N) structural checks of integrity_check without
	 * the index-content cross-check, fast enough for every start. */
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	WI_TRY(prepare(s, "PRAGMA quick_check", &st));
	WI_TRY(sql_check(s, sqlite3_step(st), SQLITE_ROW, "integrity check"));
	const char *res = (const char *)sqlite3_column_text(st, 0);
	/* It answers "ok", or a list of problems. */
	if (res != NULL && strcmp(res, "ok") == 0)
		return 0;
	/* The list spans lines; the detail is logged as one line. */
	char why[160];
	snprintf(why, sizeof(why), "%s", res ? res : "no answer");
	for (char *c = why; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	WI_FAIL(WI_E_PARSE, "%s fails its integrity check (%s): refusing a damaged state file", s->path,
		why);
}

/* Whether the file is ours to write: a file we created, or a new empty one;
 * and not from a newer wimsed.  Reads only. */
static int check_identity(wi_store *s, int *ret_version)
{
	int version = 0, app_id = 0, objects = 0;
	WI_TRY(pragma_int(s, "PRAGMA user_version", &version));
	WI_TRY(pragma_int(s, "PRAGMA application_id", &app_id));
	WI_TRY(pragma_int(s, "SELECT count(*) FROM sqlite_schema", &objects));
	WI_CHECK(version >= 0 && version <= SCHEMA_VERSION, WI_E_IO,
		 "%s has schema version %d; this wimsed knows versions up to %d: refusing to use it",
		 s->path, version, SCHEMA_VERSION);
	WI_CHECK(version == 0 ? (app_id == 0 && objects == 0) : app_id == STORE_APPLICATION_ID,
		 WI_E_PARSE, "%s is not a wimsed state database (application_id %d, version %d)",
		 s->path, app_id, version);
	*ret_version = version;
	return 0;
}

static int use_wal(wi_store *s)
{
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	WI_TRY(prepare(s, "PRAGMA journal_mode = WAL", &st));
	WI_TRY(sql_check(s, sqlite3_step(st), SQLITE_ROW, "journal_mode"));
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	/* The pragma answers the mode in force; it stays "delete" on a file
	 * system without shared memory, and we do not run without WAL. */
	WI_CHECK(mode != NULL && strcmp(mode, "wal") == 0, WI_E_IO,
		 "%s: cannot use the WAL journal (journal mode %s)", s->path, mode ? mode : "unknown");
	return 0;
}

static int configure(wi_store *s)
{
	WI_TRY(sql_check(s, sqlite3_busy_timeout(s->db, WI_STORE_BUSY_TIMEOUT_MS), SQLITE_OK,
			 "busy timeout"));
	/* Defensive mode: no writable_schema or other ways to corrupt the
	 * file through SQL; untrusted schema: triggers and views in the file
	 * may not call functions with side effects. */
	WI_TRY(sql_check(s, sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL),
			 SQLITE_OK, "defensive mode"));
	WI_TRY(sql_check(s, sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL),
			 SQLITE_OK, "untrusted schema"));
	/* Integrity first, before anything writes to the file. */
	WI_TRY(check_integrity(s));
	/* A read-only file would fail every revocation later: refuse now. */
	WI_CHECK(sqlite3_db_readonly(s->db, "main") == 0, WI_E_IO, "%s is read-only", s->path);
	/* And a file that is not ours is refused before the journal-mode
	 * switch below writes to it. */
	int version = 0;
	WI_TRY(check_identity(s, &version));
	WI_TRY(use_wal(s));
	/* FULL: the WAL is fsynced at every commit, so a commit that returned
	 * survives power loss as well as kill -9 (NORMAL would not). */
	WI_TRY(sql_check(s, sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL),
			 SQLITE_OK, "synchronous"));
	return 0;
}

static int migrate(wi_store *s)
{
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	/* The version is read again inside the write transaction, so that two
	 * processes opening one file cannot both run a step. */
	WI_TRY(tx_begin(s, &tx));
	int version = 0;
	WI_TRY(check_identity(s, &version));
	for (int v = version; v < SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
		WI_TRY(sql_check(s, rc, SQLITE_OK, "schema migration"));
	}
	WI_TRY(tx_commit(s, &tx));
	return 0;
}

int wi_store_open(const char *data_dir, wi_store **ret)
{
	WI_CHECK(data_dir != NULL && data_dir[0] != '\0' && ret != NULL, WI_E_INVAL,
		 "store: NULL argument");
	/* Our mutex relies on SQLite's own internal locks being compiled in
	 * (the connection is used from several threads, one at a time). */
	WI_CHECK(sqlite3_threadsafe() != 0, WI_E_INTERNAL, "SQLite is built without thread support");

	wi_store *raw = calloc(1, sizeof(*raw));
	WI_CHECK_ALLOC(raw);
	int rc = pthread_mutex_init(&raw->lock, NULL);
	if (rc != 0) {
		free(raw);
		WI_FAIL(WI_E_NOMEM, "mutex: %s", strerror(rc));
	}
	_cleanup_(store_closep) wi_store *s = raw;
	WI_TRY(wi_fs_join(s->path, sizeof(s->path), data_dir, STORE_FILE));
	WI_TRY(prepare_file(s->path, data_dir));

	/* NOFOLLOW: never through a symlink; no CREATE: the file is ours
	 * (prepare_file), and one that vanished meanwhile is an error. */
	rc = sqlite3_open_v2(s->path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	WI_CHECK(rc == SQLITE_OK, sql_code(rc), "open %s: %s", s->path,
		 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	WI_TRY(configure(s));
	WI_TRY(prepare(s, "BEGIN IMMEDIATE", &s->begin));
	WI_TRY(prepare(s, "COMMIT", &s->commit));
	WI_TRY(prepare(s, "ROLLBACK", &s->rollback));
	WI_TRY(migrate(s));
	WI_TRY(prepare(s, SQL_PUT, &s->put));
	WI_TRY(prepare(s, SQL_EACH, &s->each));
	WI_TRY(prepare(s, SQL_PRUNE, &s->prune));
	WI_TRY(prepare(s, SQL_ENTRY_INSERT, &s->e_insert));
	WI_TRY(prepare(s, SQL_ENTRY_COUNT, &s->e_count));
	WI_TRY(prepare(s, SQL_ENTRY_EACH, &s->e_each));
	WI_TRY(prepare(s, SQL_ENTRY_GET, &s->e_get));
	WI_TRY(prepare(s, SQL_ENTRY_DELETE, &s->e_delete));
	*ret = TAKE_PTR(s);
	return 0;
}

wi_store *wi_store_close(wi_store *s)
{
	if (!s)
		return NULL;
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_finalize(s->rollback);
	sqlite3_finalize(s->put);
	sqlite3_finalize(s->each);
	sqlite3_finalize(s->prune);
	sqlite3_finalize(s->e_insert);
	sqlite3_finalize(s->e_count);
	sqlite3_finalize(s->e_each);
	sqlite3_finalize(s->e_get);
	sqlite3_finalize(s->e_delete);
	/* Every statement is finalized, so this closes now; the last
	 * connection checkpoints the WAL into the main file. */
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

/* --- revocations ----------------------------------------------------------- */

static int check_revocation(wi_revocation_kind kind, const char *value, size_t *ret_len)
{
	WI_CHECK(kind == WI_REVOKE_TXN || kind == WI_REVOKE_ACTOR || kind == WI_REVOKE_PRINCIPAL,
		 WI_E_INVAL, "unknown revocation kind %d", (int)kind);
	WI_CHECK(value != NULL && value[0] != '\0', WI_E_INVAL, "empty revocation value");
	size_t len = strnlen(value, WI_REVOCATION_VALUE_MAX + 1);
	WI_CHECK(len <= WI_REVOCATION_VALUE_MAX, WI_E_TOO_BIG, "revocation value longer than %d bytes",
		 WI_REVOCATION_VALUE_MAX);
	*ret_len = len;
	return 0;
}

static int bind_check(wi_store *s, int rc)
{
	return sql_check(s, rc, SQLITE_OK, "bind parameter");
}

static int put_locked(wi_store *s, wi_revocation_kind kind, const char *value, size_t len, time_t until)
{
	_cleanup_(stmt_resetp) sqlite3_stmt *st = s->put;
	WI_TRY(bind_check(s, sqlite3_bind_int(st, 1, (int)kind)));
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 2, value, (int)len, SQLITE_STATIC)));
	WI_TRY(bind_check(s, sqlite3_bind_int64(st, 3, (sqlite3_int64)until)));
	return step_done(s, st, "record revocation");
}

int wi_store_put_revocation(wi_store *s, wi_revocation_kind kind, const char *value, time_t until)
{
	return wi_store_put_revocations(s, kind, &value, &until, 1);
}

int wi_store_put_revocations(wi_store *s, wi_revocation_kind kind, const char *const *values, const time_t *untils,
			     size_t n)
{
	WI_CHECK(s != NULL && (n == 0 || (values != NULL && untils != NULL)), WI_E_INVAL, "store: NULL argument");
	/* Everything checked before the transaction opens. */
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		WI_TRY(check_revocation(kind, values[i], &len));
		WI_CHECK(untils[i] > 0, WI_E_INVAL, "revocation until %lld is not a time", (long long)untils[i]);
	}
	if (n == 0)
		return 0;

	/* Cleanups run in reverse: statement reset, rollback, then unlock. */
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	WI_TRY(tx_begin(s, &tx));
	for (size_t i = 0; i < n; i++)
		WI_TRY(put_locked(s, kind, values[i], strlen(values[i]), untils[i]));
	WI_TRY(tx_commit(s, &tx));
	return 0;
}

int wi_store_each_revocation(wi_store *s, time_t now,
			     int (*fn)(wi_revocation_kind kind, const char *value, time_t until, void *ud),
			     void *ud)
{
	WI_CHECK(s != NULL && fn != NULL, WI_E_INVAL, "store: NULL argument");
	/* fn runs with the store locked (one SELECT is one consistent
	 * snapshot); it must not call back into the store. */
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(stmt_resetp) sqlite3_stmt *st = s->each;
	WI_TRY(bind_check(s, sqlite3_bind_int64(st, 1, (sqlite3_int64)now)));
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			return 0;
		WI_TRY(sql_check(s, rc, SQLITE_ROW, "read revocations"));
		int kind = sqlite3_column_int(st, 0);
		const char *value = (const char *)sqlite3_column_text(st, 1);
		sqlite3_int64 until = sqlite3_column_int64(st, 2);
		/* The schema's CHECKs make these hold; a row that breaks them
		 * was not written by us. */
		WI_CHECK(kind >= WI_REVOKE_TXN && kind <= WI_REVOKE_PRINCIPAL && value != NULL, WI_E_PARSE,
			 "%s: malformed revocation row (kind %d)", s->path, kind);
		int r = fn((wi_revocation_kind)kind, value, (time_t)until, ud);
		if (r != 0)
			return r;
	}
}

int wi_store_prune_revocations(wi_store *s, time_t now)
{
	WI_CHECK(s != NULL, WI_E_INVAL, "store: NULL argument");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	WI_TRY(tx_begin(s, &tx));
	{
		_cleanup_(stmt_resetp) sqlite3_stmt *st = s->prune;
		WI_TRY(bind_check(s, sqlite3_bind_int64(st, 1, (sqlite3_int64)now)));
		WI_TRY(step_done(s, st, "prune revocations"));
	}
	WI_TRY(tx_commit(s, &tx));
	return 0;
}

/* --- registration entries -------------------------------------------------- */

/* Binds an entry's columns in SQL_ENTRY_INSERT order. */
static int bind_entry(wi_store *s, sqlite3_stmt *st, const wi_entry *e, int64_t seq)
{
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 1, wi_entry_id(e), -1, SQLITE_STATIC)));
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 2, wi_entry_spiffe_id(e), -1, SQLITE_STATIC)));
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 3, wi_entry_selectors_key(e), -1, SQLITE_STATIC)));
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 4, wi_entry_body(e), -1, SQLITE_STATIC)));
	WI_TRY(bind_check(s, sqlite3_bind_int(st, 5, (int)wi_entry_source_of(e))));
	WI_TRY(bind_check(s, sqlite3_bind_int64(st, 6, (sqlite3_int64)seq)));
	WI_TRY(bind_check(s, sqlite3_bind_int64(st, 7, (sqlite3_int64)wi_entry_created(e))));
	return 0;
}

static int count_locked(wi_store *s, int64_t *ret)
{
	_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_count;
	WI_TRY(sql_check(s, sqlite3_step(st), SQLITE_ROW, "count entries"));
	*ret = sqlite3_column_int64(st, 0);
	return 0;
}

static int insert_locked(wi_store *s, const wi_entry *e)
{
	_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_insert;
	WI_TRY(bind_entry(s, st, e, 0));
	int rc = sqlite3_step(st);
	/* store.h: the id or the (SPIFFE ID, selectors) pair is taken. */
	WI_CHECK((rc & 0xff) != SQLITE_CONSTRAINT, WI_E_EXISTS,
		 "an entry for %.256s with the same selectors already exists", wi_entry_spiffe_id(e));
	return sql_check(s, rc, SQLITE_DONE, "record entry");
}

int wi_store_add_entries(wi_store *s, wi_entry *const *entries, size_t n)
{
	WI_CHECK(s != NULL && (entries != NULL || n == 0), WI_E_INVAL, "store: NULL argument");
	for (size_t i = 0; i < n; i++)
		WI_CHECK(entries[i] != NULL, WI_E_INVAL, "store: NULL entry");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	WI_TRY(tx_begin(s, &tx));
	int64_t have = 0;
	WI_TRY(count_locked(s, &have));
	WI_CHECK(n <= WI_ENTRIES_MAX && have <= (int64_t)(WI_ENTRIES_MAX - n), WI_E_TOO_BIG,
		 "more than %d registration entries", WI_ENTRIES_MAX);
	for (size_t i = 0; i < n; i++)
		WI_TRY(insert_locked(s, entries[i]));
	WI_TRY(tx_commit(s, &tx));
	return 0;
}

int wi_store_delete_entry(wi_store *s, const char *id, wi_entry_source only)
{
	WI_CHECK(s != NULL && id != NULL, WI_E_INVAL, "store: NULL argument");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	WI_TRY(tx_begin(s, &tx));
	{
		_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_delete;
		WI_TRY(bind_check(s, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC)));
		WI_TRY(bind_check(s, sqlite3_bind_int(st, 2, (int)only)));
		WI_TRY(step_done(s, st, "delete entry"));
	}
	if (sqlite3_changes(s->db) == 0) {
		/* Nothing deleted: absent, or held by the other source. */
		_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_get;
		WI_TRY(bind_check(s, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC)));
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			WI_FAIL(WI_E_NOT_FOUND, "no entry with id %.40s", id);
		WI_TRY(sql_check(s, rc, SQLITE_ROW, "read entry"));
		WI_FAIL(WI_E_PERMISSION, "entry %.40s is managed by the %s", id,
			sqlite3_column_int(st, 2) == WI_ENTRY_SOURCE_CONFIG ? "config file" : "admin API");
	}
	WI_TRY(tx_commit(s, &tx));
	return 0;
}

/* Runs fn over the rows of a prepared SELECT (id, body, source, created). */
static int each_row(wi_store *s, sqlite3_stmt *st, wi_store_entry_fn fn, void *ud, size_t *ret_rows)
{
	size_t rows = 0;
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		WI_TRY(sql_check(s, rc, SQLITE_ROW, "read entries"));
		wi_store_entry_row row = {
			.id = (const char *)sqlite3_column_text(st, 0),
			.body = (const char *)sqlite3_column_text(st, 1),
			.source = (wi_entry_source)sqlite3_column_int(st, 2),
			.created = sqlite3_column_int64(st, 3),
		};
		WI_CHECK(row.id && row.body &&
				 (row.source == WI_ENTRY_SOURCE_CONFIG || row.source == WI_ENTRY_SOURCE_API),
			 WI_E_PARSE, "%s: malformed entry row", s->path);
		rows++;
		int r = fn(&row, ud);
		if (r != 0)
			return r;
	}
	*ret_rows = rows;
	return 0;
}

int wi_store_each_entry(wi_store *s, const char *id, wi_store_entry_fn fn, void *ud)
{
	WI_CHECK(s != NULL && fn != NULL, WI_E_INVAL, "store: NULL argument");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	size_t rows = 0;
	if (!id) {
		_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_each;
		return each_row(s, st, fn, ud, &rows);
	}
	_cleanup_(stmt_resetp) sqlite3_stmt *st = s->e_get;
	WI_TRY(bind_check(s, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC)));
	WI_TRY(each_row(s, st, fn, ud, &rows));
	WI_CHECK(rows > 0, WI_E_NOT_FOUND, "no entry with id %.40s", id);
	return 0;
}

static int exec_sql(wi_store *s, const char *sql, const char *what)
{
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	WI_TRY(prepare(s, sql, &st));
	return step_done(s, st, what);
}

int wi_store_sync_config_entries(wi_store *s, wi_entry *const *entries, size_t n, size_t *ret_removed)
{
	WI_CHECK(s != NULL && (entries != NULL || n == 0), WI_E_INVAL, "store: NULL argument");
	for (size_t i = 0; i < n; i++)
		WI_CHECK(entries[i] && wi_entry_source_of(entries[i]) == WI_ENTRY_SOURCE_CONFIG, WI_E_INVAL,
			 "store: not a config entry");
	_cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&s->lock);
	_cleanup_(tx_rollbackp) wi_store *tx = NULL;
	WI_TRY(tx_begin(s, &tx));
	int64_t removed = 0;
	WI_TRY(exec_sql(s, SQL_SYNC_MARK, "mark config entries"));
	_cleanup_(stmt_finalizep) sqlite3_stmt *take = NULL;
	_cleanup_(stmt_finalizep) sqlite3_stmt *up = NULL;
	WI_TRY(prepare(s, SQL_SYNC_TAKEOVER, &take));
	WI_TRY(prepare(s, SQL_SYNC_UPSERT, &up));
	for (size_t i = 0; i < n; i++) {
		const wi_entry *e = entries[i];
		{
			/* The file takes over an API entry it now lists. */
			_cleanup_(stmt_resetp) sqlite3_stmt *st = take;
			WI_TRY(bind_check(s, sqlite3_bind_text(st, 1, wi_entry_spiffe_id(e), -1, SQLITE_STATIC)));
			WI_TRY(bind_check(s, sqlite3_bind_text(st, 2, wi_entry_selectors_key(e), -1, SQLITE_STATIC)));
			WI_TRY(bind_check(s, sqlite3_bind_text(st, 3, wi_entry_id(e), -1, SQLITE_STATIC)));
			WI_TRY(step_done(s, st, "replace entry"));
			removed += sqlite3_changes(s->db);
		}
		_cleanup_(stmt_resetp) sqlite3_stmt *st = up;
		WI_TRY(bind_entry(s, st, e, (int64_t)i));
		int rc = sqlite3_step(st);
		WI_CHECK((rc & 0xff) != SQLITE_CONSTRAINT, WI_E_EXISTS, "config entry for %.256s repeats another",
			 wi_entry_spiffe_id(e));
		WI_TRY(sql_check(s, rc, SQLITE_DONE, "record config entry"));
	}
	WI_TRY(exec_sql(s, SQL_SYNC_SWEEP, "remove stale config entries"));
	removed += sqlite3_changes(s->db);
	int64_t after = 0;
	WI_TRY(count_locked(s, &after));
	WI_CHECK(after <= WI_ENTRIES_MAX, WI_E_TOO_BIG, "more than %d registration entries", WI_ENTRIES_MAX);
	WI_TRY(tx_commit(s, &tx));
	if (ret_removed)
		*ret_removed = (size_t)removed;
	return 0;
}
