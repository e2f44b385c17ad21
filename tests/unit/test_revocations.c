/* tests/unit/test_revocations.c — the revocation index: per-kind lookups,
 * actor chains, expiry, prune, persistence, a failing store, and readers
 * running while a writer adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <malloc.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "core/fsutil.h"
#include "core/limits.h"
#include "core/store.h"
#include "txn-token/revocations.h"

#define NOW ((time_t)1700000000)
#define LATER (NOW + 300)

#define AGENT "spiffe://example.org/agent/planner"
#define SUB_AGENT "spiffe://example.org/agent/search"
#define TOOL "spiffe://example.org/tool/mail"
#define ALICE "https://idp.example.com alice"

typedef struct fx {
	char dir[PATH_MAX];
	wi_store *store;
	wi_revocations *revs;
} fx;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static void open_all(fx *f, time_t now)
{
	int r = wi_store_open(f->dir, &f->store);
	if (r != 0)
		fail_msg("wi_store_open: %s", wi_error_detail());
	r = wi_revocations_open(f->store, now, &f->revs);
	if (r != 0)
		fail_msg("wi_revocations_open: %s", wi_error_detail());
}

static void close_all(fx *f)
{
	f->revs = wi_revocations_free(f->revs);
	f->store = wi_store_close(f->store);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/wi-revocations-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	open_all(f, NOW);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	close_all(f);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static bool txn_revoked(fx *f, const char *txn, time_t now)
{
	return wi_revocations_is_revoked(f->revs, txn, NULL, NULL, 0, now);
}

static bool principal_revoked(fx *f, const char *p, time_t now)
{
	return wi_revocations_is_revoked(f->revs, NULL, p, NULL, 0, now);
}

static bool actor_revoked(fx *f, const char *a, time_t now)
{
	const char *const chain[] = {a};
	return wi_revocations_is_revoked(f->revs, NULL, NULL, chain, 1, now);
}

/* --- tests -------------------------------------------------------------------- */

static void test_per_kind(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_count(f->revs), 0);
	assert_false(wi_revocations_is_revoked(f->revs, "txn-1", ALICE, NULL, 0, NOW));

	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "txn-1", LATER), 0);
	assert_true(txn_revoked(f, "txn-1", NOW));
	assert_false(txn_revoked(f, "txn-2", NOW));
	assert_false(txn_revoked(f, "txn-", NOW));
	assert_false(txn_revoked(f, "txn-11", NOW));
	/* Kinds are separate sets: the same string as a principal is not revoked. */
	assert_false(principal_revoked(f, "txn-1", NOW));
	assert_false(actor_revoked(f, "txn-1", NOW));

	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_PRINCIPAL, ALICE, LATER), 0);
	assert_true(principal_revoked(f, ALICE, NOW));
	assert_false(principal_revoked(f, "https://idp.example.com bob", NOW));
	assert_false(txn_revoked(f, ALICE, NOW));
	/* The principal revokes any of her runs, whatever the txn. */
	assert_true(wi_revocations_is_revoked(f->revs, "txn-9", ALICE, NULL, 0, NOW));

	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, AGENT, LATER), 0);
	assert_true(actor_revoked(f, AGENT, NOW));
	assert_false(actor_revoked(f, SUB_AGENT, NOW));
	assert_int_equal(wi_revocations_count(f->revs), 3);

	/* Re-adding does not duplicate. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, AGENT, LATER), 0);
	assert_int_equal(wi_revocations_count(f->revs), 3);
}

static void test_actor_chain(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, SUB_AGENT, LATER), 0);
	const char *const outer[] = {TOOL, AGENT};
	const char *const middle[] = {TOOL, SUB_AGENT, AGENT};
	const char *const first[] = {SUB_AGENT, TOOL};
	const char *const last[] = {AGENT, TOOL, SUB_AGENT};
	assert_false(wi_revocations_is_revoked(f->revs, "t", ALICE, outer, 2, NOW));
	assert_true(wi_revocations_is_revoked(f->revs, "t", ALICE, middle, 3, NOW));
	assert_true(wi_revocations_is_revoked(f->revs, "t", ALICE, first, 2, NOW));
	assert_true(wi_revocations_is_revoked(f->revs, "t", ALICE, last, 3, NOW));
	/* Only the first n_actors count. */
	assert_false(wi_revocations_is_revoked(f->revs, "t", ALICE, last, 2, NOW));
	/* A NULL hop is skipped, not a match. */
	const char *const holey[] = {NULL, AGENT};
	assert_false(wi_revocations_is_revoked(f->revs, "t", ALICE, holey, 2, NOW));
}

static void test_fail_closed(void **state)
{
	fx *f = *state;
	/* A caller's bug must not read as "not revoked". */
	assert_true(wi_revocations_is_revoked(NULL, "t", ALICE, NULL, 0, NOW));
	assert_true(wi_revocations_is_revoked(f->revs, "t", ALICE, NULL, 1, NOW));
	assert_false(wi_revocations_is_revoked(f->revs, NULL, NULL, NULL, 0, NOW));
	assert_int_equal(wi_revocations_count(NULL), 0);
	assert_null(wi_revocations_free(NULL));
}

static void test_bad_arguments(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(NULL, WI_REVOKE_TXN, "t", LATER), WI_E_INVAL);
	assert_int_equal(wi_revocations_add(f->revs, (wi_revocation_kind)0, "t", LATER), WI_E_INVAL);
	assert_int_equal(wi_revocations_add(f->revs, (wi_revocation_kind)9, "t", LATER), WI_E_INVAL);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, NULL, LATER), WI_E_INVAL);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "", LATER), WI_E_INVAL);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "t", 0), WI_E_INVAL);
	char big[WI_REVOCATION_VALUE_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, big, LATER), WI_E_TOO_BIG);
	assert_int_equal(wi_revocations_count(f->revs), 0);
	wi_revocations *r = NULL;
	assert_int_equal(wi_revocations_open(NULL, NOW, &r), WI_E_INVAL);
	assert_int_equal(wi_revocations_open(f->store, NOW, NULL), WI_E_INVAL);
	assert_null(r);
	assert_int_equal(wi_revocations_prune(NULL, NOW), WI_E_INVAL);
}

static void test_expiry_and_extend(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "t", NOW + 10), 0);
	assert_true(txn_revoked(f, "t", NOW));
	assert_true(txn_revoked(f, "t", NOW + 9));
	/* until <= now: no longer in force. */
	assert_false(txn_revoked(f, "t", NOW + 10));
	assert_false(txn_revoked(f, "t", NOW + 11));
	/* Re-revoking extends... */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "t", NOW + 100), 0);
	assert_true(txn_revoked(f, "t", NOW + 50));
	/* ...and never shortens. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "t", NOW + 20), 0);
	assert_true(txn_revoked(f, "t", NOW + 50));
	assert_int_equal(wi_revocations_count(f->revs), 1);
	/* Already expired when added: recorded, never in force. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "old", NOW - 1), 0);
	assert_false(txn_revoked(f, "old", NOW));
}

static int count_rows(wi_revocation_kind kind, const char *value, time_t until, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

static int store_rows(fx *f)
{
	int n = 0;
	assert_int_equal(wi_store_each_revocation(f->store, 0, count_rows, &n), 0);
	return n;
}

static void test_prune(void **state)
{
	fx *f = *state;
	char v[32];
	/* Enough to grow the tables past their first size. */
	for (int i = 0; i < 150; i++) {
		snprintf(v, sizeof(v), "txn-%d", i);
		assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, v, NOW + (i % 2 ? 10 : 1000)), 0);
	}
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, AGENT, NOW + 10), 0);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_PRINCIPAL, ALICE, NOW + 1000), 0);
	assert_int_equal(wi_revocations_count(f->revs), 152);
	assert_int_equal(store_rows(f), 152);

	assert_int_equal(wi_revocations_prune(f->revs, NOW + 10), 0);
	assert_int_equal(wi_revocations_count(f->revs), 76);
	assert_int_equal(store_rows(f), 76);
	for (int i = 0; i < 150; i++) {
		snprintf(v, sizeof(v), "txn-%d", i);
		assert_int_equal(txn_revoked(f, v, NOW), i % 2 == 0);
	}
	assert_false(actor_revoked(f, AGENT, NOW));
	assert_true(principal_revoked(f, ALICE, NOW));

	assert_int_equal(wi_revocations_prune(f->revs, NOW + 1000), 0);
	assert_int_equal(wi_revocations_count(f->revs), 0);
	assert_int_equal(store_rows(f), 0);
	/* Still usable after emptying. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "again", LATER), 0);
	assert_true(txn_revoked(f, "again", NOW));
}

/* A prune that unlinks in many holds of the read-write lock (a few hundred
 * buckets each): every expired entry goes, in memory and in the store, and
 * every live one stays, across the holds' boundaries. */
#define PRUNE_MANY 6000

static void test_prune_many(void **state)
{
	fx *f = *state;
	static char ids[PRUNE_MANY / 2][32];
	const char *values[PRUNE_MANY / 2];
	time_t untils[PRUNE_MANY / 2];
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < PRUNE_MANY / 2; i++) {
			int n = b * (PRUNE_MANY / 2) + i;
			snprintf(ids[i], sizeof(ids[i]), "run-%d", n);
			values[i] = ids[i];
			untils[i] = NOW + (n % 2 ? 10 : 1000);
		}
		assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, PRUNE_MANY / 2), 0);
	}
	assert_int_equal(wi_revocations_count(f->revs), PRUNE_MANY);
	assert_int_equal(wi_revocations_prune(f->revs, NOW + 10), 0);
	assert_int_equal(wi_revocations_count(f->revs), PRUNE_MANY / 2);
	assert_int_equal(store_rows(f), PRUNE_MANY / 2);
	char v[32];
	for (int n = 0; n < PRUNE_MANY; n++) {
		snprintf(v, sizeof(v), "run-%d", n);
		/* At NOW the odd ones would still be in force: gone means pruned. */
		assert_int_equal(txn_revoked(f, v, NOW), n % 2 == 0);
	}
	close_all(f);
	open_all(f, NOW);
	assert_int_equal(wi_revocations_count(f->revs), PRUNE_MANY / 2);
	assert_true(txn_revoked(f, "run-5998", NOW));
	assert_false(txn_revoked(f, "run-5999", NOW));
}

static void test_persistence(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "txn-1", LATER), 0);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, AGENT, LATER), 0);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_PRINCIPAL, ALICE, LATER), 0);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "short", NOW + 5), 0);
	close_all(f);

	open_all(f, NOW);
	assert_int_equal(wi_revocations_count(f->revs), 4);
	assert_true(txn_revoked(f, "txn-1", NOW));
	assert_true(actor_revoked(f, AGENT, NOW));
	assert_true(principal_revoked(f, ALICE, NOW));
	assert_true(txn_revoked(f, "short", NOW));
	assert_true(txn_revoked(f, "short", NOW + 4));
	assert_false(txn_revoked(f, "short", NOW + 5));
	close_all(f);

	/* Loaded later: what expired meanwhile is not loaded. */
	open_all(f, NOW + 5);
	assert_int_equal(wi_revocations_count(f->revs), 3);
	assert_false(txn_revoked(f, "short", NOW));
	assert_true(txn_revoked(f, "txn-1", NOW + 5));
}

static void raw_exec(const fx *f, const char *sql)
{
	char db[PATH_MAX];
	assert_int_equal(wi_fs_join(db, sizeof(db), f->dir, "state.db"), 0);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_close(h);
}

/* The store refuses the write.  Tests run as root here, so a read-only mode
 * bit would not stop SQLite; instead another connection installs a trigger
 * that aborts every write to the table, as a full disk or an I/O error
 * would, after our connection and statements are set up. */
static void test_store_failure(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "kept", NOW + 10), 0);
	raw_exec(f, "CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log"
		    " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END");

	int r = wi_revocations_add(f->revs, WI_REVOKE_TXN, "lost", LATER);
	assert_int_equal(r, WI_E_IO);
	assert_non_null(strstr(wi_error_detail(), "injected write failure"));
	/* Not persisted, so not indexed: no revocation that a restart would forget. */
	assert_false(txn_revoked(f, "lost", NOW));
	assert_int_equal(wi_revocations_count(f->revs), 1);
	/* An extension that fails leaves the old until. */
	assert_true(wi_revocations_add(f->revs, WI_REVOKE_TXN, "kept", LATER) < 0);
	assert_false(txn_revoked(f, "kept", NOW + 10));
	assert_true(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, AGENT, LATER) < 0);
	assert_false(actor_revoked(f, AGENT, NOW));

	/* The store works again once the fault is gone; nothing half-done stayed. */
	raw_exec(f, "DROP TRIGGER wi_test_fail");
	assert_int_equal(store_rows(f), 1);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "lost", LATER), 0);
	assert_true(txn_revoked(f, "lost", NOW));
	close_all(f);
	open_all(f, NOW);
	assert_int_equal(wi_revocations_count(f->revs), 2);
	assert_true(txn_revoked(f, "lost", NOW));
	assert_true(txn_revoked(f, "kept", NOW + 9));
	assert_false(txn_revoked(f, "kept", NOW + 10));
}

/* --- batches (a dead agent's runs) -------------------------------------------- */

#define BATCH 1000

static void test_add_many(void **state)
{
	fx *f = *state;
	static char names[BATCH][24];
	const char *values[BATCH];
	time_t untils[BATCH];
	for (int i = 0; i < BATCH; i++) {
		snprintf(names[i], sizeof(names[i]), "run-%d", i);
		values[i] = names[i];
		untils[i] = LATER;
	}
	/* One already in force with a shorter until: extended, not doubled;
	 * one value twice in the batch: one entry, the later until. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "run-7", NOW + 5), 0);
	values[BATCH - 1] = "run-3";
	untils[BATCH - 1] = LATER + 100;
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, BATCH), 0);
	assert_int_equal(wi_revocations_count(f->revs), BATCH - 1);
	for (int i = 0; i < BATCH - 1; i++)
		assert_true(txn_revoked(f, names[i], NOW));
	assert_true(txn_revoked(f, "run-7", NOW + 10));
	assert_true(txn_revoked(f, "run-3", LATER + 50));
	assert_false(txn_revoked(f, "run-3", LATER + 100));
	assert_false(txn_revoked(f, "run-999", NOW)); /* replaced by the duplicate */
	/* The store appends (store.h): 998 new values, run-7's extension beside
	 * its first row, and run-3 twice (it was new to both of its items). */
	assert_int_equal(store_rows(f), BATCH + 1);
	/* Durable: a restart holds exactly the same, whatever the row order. */
	close_all(f);
	open_all(f, NOW);
	assert_int_equal(wi_revocations_count(f->revs), BATCH - 1);
	assert_true(txn_revoked(f, "run-998", NOW));
	assert_true(txn_revoked(f, "run-3", LATER + 50));
	assert_false(txn_revoked(f, "run-3", LATER + 100));
	assert_true(txn_revoked(f, "run-7", NOW + 10));
	/* What changes nothing writes nothing: a value in force as long or
	 * longer costs no row; only a later until adds one. */
	const char *again[] = {"run-5", "run-6"};
	time_t same[] = {LATER, NOW + 1};
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, again, same, 2), 0);
	assert_int_equal(store_rows(f), BATCH + 1);
	assert_true(txn_revoked(f, "run-6", NOW + 10));
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "run-5", LATER + 7), 0);
	assert_int_equal(store_rows(f), BATCH + 2);
	/* Prune drops run-7's first row as it expires; the longer one holds,
	 * also across a restart. */
	assert_int_equal(wi_revocations_prune(f->revs, NOW + 6), 0);
	assert_int_equal(store_rows(f), BATCH + 1);
	close_all(f);
	open_all(f, NOW + 6);
	assert_int_equal(wi_revocations_count(f->revs), BATCH - 1);
	assert_true(txn_revoked(f, "run-7", NOW + 10));
	assert_true(txn_revoked(f, "run-5", LATER + 5));
	assert_false(txn_revoked(f, "run-5", LATER + 7));
	/* Nothing is nothing; a NULL list is refused. */
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, NULL, NULL, 0), 0);
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, NULL, untils, 2), WI_E_INVAL);
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, NULL, 2), WI_E_INVAL);
}

/* A batch is all or none: one bad value, or a store failure half way
 * through, leaves neither memory nor store with any of it. */
static void test_add_many_all_or_none(void **state)
{
	fx *f = *state;
	const char *values[] = {"a-1", "a-2", "", "a-4"};
	time_t untils[] = {LATER, LATER, LATER, LATER};
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, 4), WI_E_INVAL);
	assert_false(txn_revoked(f, "a-1", NOW));
	values[2] = "a-3";
	untils[3] = 0;
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, 4), WI_E_INVAL);
	assert_false(txn_revoked(f, "a-1", NOW));
	untils[3] = LATER;
	assert_int_equal(wi_revocations_count(f->revs), 0);
	assert_int_equal(store_rows(f), 0);

	/* The store aborts on the third row: the first two are rolled back. */
	raw_exec(f, "CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log WHEN NEW.value = 'a-3'"
		    " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END");
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, 4), WI_E_IO);
	for (int i = 0; i < 4; i++)
		assert_false(txn_revoked(f, values[i], NOW));
	assert_int_equal(wi_revocations_count(f->revs), 0);
	raw_exec(f, "DROP TRIGGER wi_test_fail");
	assert_int_equal(store_rows(f), 0);
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, 4), 0);
	assert_int_equal(store_rows(f), 4);
	for (int i = 0; i < 4; i++)
		assert_true(txn_revoked(f, values[i], NOW));
}

/* A dead agent's runs die even when the store refuses them: in force in
 * memory at once, not durable, written by wi_revocations_persist once the
 * store takes them again, and then kept across a restart. */
static void test_add_many_now(void **state)
{
	fx *f = *state;
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "kept", NOW + 10), 0);
	raw_exec(f, "CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log"
		    " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END");
	const char *values[] = {"run-1", "run-2", "kept"};
	time_t untils[] = {LATER, LATER, LATER};
	bool durable = true;
	assert_int_equal(wi_revocations_add_many_now(f->revs, WI_REVOKE_TXN, values, untils, 3, &durable), 0);
	assert_false(durable);
	assert_non_null(strstr(wi_error_detail(), "injected write failure"));
	assert_true(txn_revoked(f, "run-1", NOW));
	assert_true(txn_revoked(f, "run-2", LATER - 1));
	assert_true(txn_revoked(f, "kept", LATER - 1)); /* extended, in memory */
	assert_int_equal(wi_revocations_unpersisted(f->revs), 3);
	assert_int_equal(wi_revocations_count(f->revs), 3);

	/* Still refused: nothing written, all still counted as not durable. */
	size_t left = 0;
	assert_int_equal(wi_revocations_persist(f->revs, NOW, &left), WI_E_IO);
	assert_int_equal(left, 3);
	/* The strict add still refuses what it cannot write, even though memory
	 * holds the value already. */
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "run-1", LATER), WI_E_IO);
	assert_int_equal(store_rows(f), 1);

	raw_exec(f, "DROP TRIGGER wi_test_fail");
	assert_int_equal(wi_revocations_persist(f->revs, NOW, &left), 0);
	assert_int_equal(left, 0);
	assert_int_equal(wi_revocations_unpersisted(f->revs), 0);
	assert_int_equal(wi_revocations_persist(f->revs, NOW, &left), 0); /* nothing to do */
	/* Durable now: an add asking no more writes nothing. */
	int rows = store_rows(f);
	assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, "run-2", LATER), 0);
	assert_int_equal(store_rows(f), rows);
	close_all(f);
	open_all(f, NOW);
	assert_true(txn_revoked(f, "run-1", LATER - 1));
	assert_true(txn_revoked(f, "run-2", LATER - 1));
	assert_true(txn_revoked(f, "kept", LATER - 1)); /* the extension was written too */
	assert_int_equal(wi_revocations_unpersisted(f->revs), 0);

	/* Not durable, then over: nothing left to write; pruned: not counted. */
	raw_exec(f, "CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log"
		    " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END");
	const char *brief[] = {"brief-1", "brief-2"};
	time_t soon[] = {NOW + 2, NOW + 4};
	assert_int_equal(wi_revocations_add_many_now(f->revs, WI_REVOKE_TXN, brief, soon, 2, &durable), 0);
	assert_false(durable);
	assert_int_equal(wi_revocations_unpersisted(f->revs), 2);
	assert_int_equal(wi_revocations_persist(f->revs, NOW + 3, &left), WI_E_IO);
	assert_int_equal(left, 1); /* brief-1 is over */
	assert_int_equal(wi_revocations_prune(f->revs, NOW + 5), 0);
	assert_int_equal(wi_revocations_unpersisted(f->revs), 0);
	assert_int_equal(wi_revocations_persist(f->revs, NOW + 5, &left), 0);
	/* Another kind, and a value error: refused whole, as the strict add. */
	const char *bad[] = {"spiffe://example.org/ok", ""};
	time_t u2[] = {LATER, LATER};
	assert_int_equal(wi_revocations_add_many_now(f->revs, WI_REVOKE_ACTOR, bad, u2, 2, &durable), WI_E_INVAL);
	assert_false(actor_revoked(f, "spiffe://example.org/ok", NOW));
	assert_int_equal(wi_revocations_add_many_now(f->revs, WI_REVOKE_ACTOR, bad, u2, 1, NULL), WI_E_INVAL);
	assert_int_equal(wi_revocations_add_many_now(f->revs, WI_REVOKE_ACTOR, bad, u2, 1, &durable), 0);
	assert_false(durable);
	assert_true(actor_revoked(f, "spiffe://example.org/ok", NOW));
	raw_exec(f, "DROP TRIGGER wi_test_fail");
	assert_int_equal(wi_revocations_persist(f->revs, NOW, &left), 0);
	close_all(f);
	open_all(f, NOW);
	assert_true(actor_revoked(f, "spiffe://example.org/ok", NOW));
}

/* The count of revocations not yet durable (the daemon's tick, the metrics
 * gauge) does not wait for a writer that is inside the store: here a second
 * connection holds SQLite's write lock, so the writer waits in the busy
 * handler, holding write_lock, until that lock is let go. */
typedef struct stalled {
	fx *f;
	atomic_bool started;
	int rc;
	bool durable;
} stalled;

static void *stalled_writer(void *arg)
{
	stalled *st = arg;
	const char *values[] = {"run-stalled"};
	time_t untils[] = {LATER};
	atomic_store(&st->started, true);
	st->rc = wi_revocations_add_many_now(st->f->revs, WI_REVOKE_TXN, values, untils, 1, &st->durable);
	return NULL;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_unpersisted_does_not_wait_for_the_store(void **state)
{
	fx *f = *state;
	char db[PATH_MAX];
	assert_int_equal(wi_fs_join(db, sizeof(db), f->dir, "state.db"), 0);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

	stalled st = {.f = f};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stalled_writer, &st), 0);
	while (!atomic_load(&st.started))
		sched_yield();
	/* Time for the writer to reach the busy handler (it waits there up to
	 * WI_STORE_BUSY_TIMEOUT_MS for the lock held above). */
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
	nanosleep(&pause, NULL);
	double t0 = mono_s();
	size_t n = wi_revocations_unpersisted(f->revs);
	double waited = mono_s() - t0;
	/* Before: this waited for the writer, which waited for the lock below,
	 * until the busy timeout failed the write. */
	assert_true(waited < (double)WI_STORE_BUSY_TIMEOUT_MS / 1000.0 / 4);
	assert_int_equal(n, 0);

	assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(st.rc, 0);
	assert_true(st.durable); /* the lock was let go well within the busy timeout */
	assert_true(txn_revoked(f, "run-stalled", NOW));
	assert_int_equal(wi_revocations_unpersisted(f->revs), 0);
}

/* What a revocation in force costs in memory, by glibc's own count of bytes
 * in use: a 22-character value (a run id, 16 random bytes in base64url) fits
 * one 64-byte heap chunk.  Allocating past sizeof(entry)'s tail padding took
 * 80 (3.2 MB more for 200 000 revocations in force).  The batch is indexed
 * in one pass after one store transaction.  SQLite's own heap (its page
 * cache grows with the file) is taken out by its own count, and earlier
 * batches grow the table to what the measured one needs. */
#define PER_ENTRY_N 4096

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks - (size_t)sqlite3_memory_used();
}

static void add_batch(fx *f, char (*ids)[32], int base)
{
	const char *values[PER_ENTRY_N];
	time_t untils[PER_ENTRY_N];
	for (int i = 0; i < PER_ENTRY_N; i++) {
		snprintf(ids[i], 32, "%022d", base + i);
		values[i] = ids[i];
		untils[i] = LATER;
	}
	assert_int_equal(wi_revocations_add_many(f->revs, WI_REVOKE_TXN, values, untils, PER_ENTRY_N), 0);
}

static void test_entry_size(void **state)
{
	fx *f = *state;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's allocator has redzones and no mallinfo2: the plain build's
	 * run of this test is the one that counts. */
	(void)f;
	skip();
#endif
	static char ids[PER_ENTRY_N][32];
	/* Three batches: 3 * 4096 entries, 16 384 buckets, room for a fourth. */
	for (int b = 0; b < 3; b++)
		add_batch(f, ids, b * PER_ENTRY_N);
	size_t before = heap_in_use();
	add_batch(f, ids, 3 * PER_ENTRY_N);
	size_t used = heap_in_use() - before;
	assert_int_equal(wi_revocations_count(f->revs), 4 * PER_ENTRY_N);
	/* One 64-byte chunk each, the table unchanged: at least the entries'
	 * own bytes (33 of fields, 23 of value), less than the next chunk size. */
	size_t per_entry = used / PER_ENTRY_N;
	printf("heap per revocation in force: %zu bytes\n", per_entry);
	assert_true(per_entry >= 56);
	assert_true(per_entry < 80);
}

/* --- readers while a writer adds ---------------------------------------------- */

#define READERS 4
#define WRITES 120 /* twice that many adds: past the first table size */
#define STALE 40

typedef struct shared {
	fx *f;
	atomic_uint published; /* adds that have returned 0 */
	atomic_bool done;
	atomic_uint checks;
	atomic_uint errors;
} shared;

static void *reader(void *arg)
{
	shared *sh = arg;
	wi_revocations *r = sh->f->revs;
	char v[32];
	unsigned i = 0;
	while (!atomic_load(&sh->done)) {
		unsigned k = atomic_load(&sh->published);
		bool bad = false;
		/* header: in force for every check once add has returned. */
		if (k > 0) {
			snprintf(v, sizeof(v), "run-%u", (i++ % k));
			const char *const chain[] = {TOOL, v};
			bad |= !wi_revocations_is_revoked(r, NULL, NULL, chain, 2, NOW);
			bad |= !wi_revocations_is_revoked(r, v, NULL, NULL, 0, NOW);
		}
		/* Never added, and expired-then-pruned: never in force. */
		snprintf(v, sizeof(v), "run-%u", WRITES + i % 50);
		bad |= wi_revocations_is_revoked(r, v, ALICE, NULL, 0, NOW);
		snprintf(v, sizeof(v), "stale-%u", i % STALE);
		bad |= wi_revocations_is_revoked(r, v, NULL, NULL, 0, NOW);
		if (bad)
			atomic_fetch_add(&sh->errors, 1);
		atomic_fetch_add(&sh->checks, 1);
		/* Four spinning readers on a small machine would starve the
		 * writer of CPU (not of the lock): let it run. */
		sched_yield();
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	fx *f = *state;
	char v[32];
	for (unsigned i = 0; i < STALE; i++) {
		snprintf(v, sizeof(v), "stale-%u", i);
		assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, v, NOW - 1), 0);
	}
	shared sh = {.f = f};
	pthread_t th[READERS];
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &sh), 0);
	for (unsigned i = 0; i < WRITES; i++) {
		snprintf(v, sizeof(v), "run-%u", i);
		/* Each value is revoked both as a txn and as an actor, and the
		 * tables grow (rehash) and shrink (prune) under the readers. */
		assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_ACTOR, v, LATER), 0);
		assert_int_equal(wi_revocations_add(f->revs, WI_REVOKE_TXN, v, LATER), 0);
		atomic_store(&sh.published, i + 1);
		if (i % 64 == 0)
			assert_int_equal(wi_revocations_prune(f->revs, NOW), 0);
	}
	atomic_store(&sh.done, true);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(atomic_load(&sh.errors), 0);
	assert_true(atomic_load(&sh.checks) > 0);
	assert_int_equal(wi_revocations_count(f->revs), 2 * WRITES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_per_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actor_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_and_extend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_many_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpersisted_does_not_wait_for_the_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_many_all_or_none, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
