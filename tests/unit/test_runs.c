/* Unit tests: runs die with their agent (txn-token/runs.c): the first run of
 * a process starts a pidfd watch on the loop, later runs join it without the
 * loop, expired runs are swept as a list grows, and the exit of the process
 * revokes every live run it held; a process already gone is revoked at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "core/store.h"
#include "txn-token/revocations.h"
#include "txn-token/runs.h"

static int pidfd_of(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(fd >= 0);
	return fd;
}

/* Runs the loop until cond() holds or 5 s pass. */
static bool loop_until(uv_loop_t *loop, bool (*cond)(void *), void *arg)
{
	for (int i = 0; i < 500; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (cond(arg))
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static wi_runs *R;

static bool tracked_one(void *arg)
{
	(void)arg;
	return wi_runs_tracked(R) >= 1;
}

static bool revoked_n(void *arg)
{
	return wi_runs_revoked(R) >= *(uint64_t *)arg;
}

/* A store, its revocations, a loop with R on it, and an agent: a child
 * process that exits when agent_exit() closes the write end of its pipe. */
typedef struct fx {
	char dir[64];
	time_t now;
	wi_store *store;
	wi_revocations *rev;
	uv_loop_t loop;
	int gate;
	pid_t child;
	int pidfd;
} fx;

static void fx_open(fx *f)
{
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "runs"));
	f->now = time(NULL);
	assert_int_equal(wi_store_open(f->dir, &f->store), 0);
	assert_int_equal(wi_revocations_open(f->store, f->now, &f->rev), 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(wi_runs_new(&f->loop, f->rev, 3, &R), 0);
	int gate[2];
	assert_int_equal(pipe(gate), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		char b;
		close(gate[1]);
		ssize_t k = read(gate[0], &b, 1); /* until the parent closes its end */
		_exit(k == 0 ? 0 : 1);
	}
	close(gate[0]);
	f->gate = gate[1];
	f->pidfd = pidfd_of(f->child);
}

static void agent_exit(fx *f)
{
	close(f->gate);
	assert_int_equal(waitpid(f->child, NULL, 0), f->child);
}

static void fx_close(fx *f)
{
	close(f->pidfd);
	wi_runs_free(R);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	wi_revocations_free(f->rev);
	wi_store_close(f->store);
	wi_test_rmtree(f->dir);
}

static void test_runs_die_with_agent(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	time_t now = f.now;

	/* the first run crosses to the loop */
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-1", now + 300), 0);
	assert_true(loop_until(&f.loop, tracked_one, NULL));
	/* the next joins the watch at once, no loop iteration needed */
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-2", now + 300), 0);
	assert_int_equal(wi_runs_tracked(R), 2);
	/* many expired runs: swept as the list grows, the live two stay */
	for (int i = 0; i < 300; i++) {
		char txn[32];
		snprintf(txn, sizeof(txn), "old-%d", i);
		assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, txn, now - 10), 0);
	}
	size_t n = wi_runs_tracked(R);
	if (n < 2 || n > 65)
		fail_msg("%zu runs held after the sweep", n);
	/* the same pid with another start time is another process: its own watch */
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 43, "txn-3", now + 300), 0);
	assert_false(wi_revocations_is_revoked(f.rev, "txn-1", NULL, NULL, 0, now));

	/* the agent exits: every live run of both watches is revoked */
	agent_exit(&f);
	uint64_t want = 3;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_int_equal(wi_runs_revoked(R), 3); /* the expired ones are not */
	assert_true(wi_revocations_is_revoked(f.rev, "txn-1", NULL, NULL, 0, now));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-2", NULL, NULL, 0, now));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-3", NULL, NULL, 0, now));
	assert_int_equal(wi_runs_tracked(R), 0);

	/* a process already gone: revoked as soon as the loop sees it */
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-late", now + 300), 0);
	want = 4;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-late", NULL, NULL, 0, now));
	fx_close(&f);
}

static bool tracked_n(void *arg);

static void fail_store_writes(fx *f, bool on)
{
	char db[128];
	snprintf(db, sizeof(db), "%s/state.db", f->dir);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	const char *sql = on ? "CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log"
			       " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"
			     : "DROP TRIGGER wi_test_fail";
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

/* The store refuses writes (a full disk) when the agent exits: its runs die
 * anyway, in memory, and are written once the store takes them. */
static void test_runs_die_while_store_refuses(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	time_t now = f.now;
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-1", now + 300), 0);
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-2", now + 300), 0);
	size_t two = 2;
	assert_true(loop_until(&f.loop, tracked_n, &two));
	fail_store_writes(&f, true);
	agent_exit(&f);
	uint64_t want = 2;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-1", NULL, NULL, 0, now));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-2", NULL, NULL, 0, now));
	assert_int_equal(wi_revocations_unpersisted(f.rev), 2);
	/* A watch that cannot start revokes at once, in memory too. */
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "txn-late", now + 300), 0);
	want = 3;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_true(wi_revocations_is_revoked(f.rev, "txn-late", NULL, NULL, 0, now));
	assert_int_equal(wi_revocations_unpersisted(f.rev), 3);

	fail_store_writes(&f, false);
	size_t left = 9;
	assert_int_equal(wi_revocations_persist(f.rev, now, &left), 0);
	assert_int_equal(left, 0);
	/* Durable: a fresh index over the same store has them. */
	wi_revocations *again = NULL;
	assert_int_equal(wi_revocations_open(f.store, now, &again), 0);
	assert_true(wi_revocations_is_revoked(again, "txn-1", NULL, NULL, 0, now));
	assert_true(wi_revocations_is_revoked(again, "txn-late", NULL, NULL, 0, now));
	wi_revocations_free(again);
	fx_close(&f);
}

static bool tracked_n(void *arg)
{
	return wi_runs_tracked(R) >= *(size_t *)arg;
}

/* At most 3 processes (the fixture's cap) are watched at once: a fourth is
 * refused, so its token is never issued; more runs of a watched process are
 * not; once the watched ones exit there is room again. */
static void test_process_cap(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	time_t now = f.now;
	for (uint64_t st = 1; st <= 3; st++)
		assert_int_equal(wi_runs_track(R, f.pidfd, f.child, st, "txn-a", now + 300), 0);
	size_t want = 3;
	assert_true(loop_until(&f.loop, tracked_n, &want));
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 4, "txn-b", now + 300), WI_E_UNAVAILABLE);
	assert_non_null(strstr(wi_error_detail(), "3 agent processes"));
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 2, "txn-c", now + 300), 0);
	assert_int_equal(wi_runs_tracked(R), 4);
	agent_exit(&f);
	uint64_t revoked = 4;
	assert_true(loop_until(&f.loop, revoked_n, &revoked));
	assert_int_equal(wi_runs_tracked(R), 0);
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 4, "txn-d", now + 300), 0);
	revoked = 5;
	assert_true(loop_until(&f.loop, revoked_n, &revoked));
	assert_false(wi_revocations_is_revoked(f.rev, "txn-b", NULL, NULL, 0, now)); /* never issued */
	fx_close(&f);
}

/* An agent that made more exchanges than one store transaction takes: every
 * live run is revoked when it exits, across the batches. */
#define MANY_RUNS 1300 /* more than two batches of RUNS_REVOKE_BATCH */

static void test_many_runs_die_together(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	time_t now = f.now;
	char txn[32];
	for (int i = 0; i < MANY_RUNS; i++) {
		snprintf(txn, sizeof(txn), "many-%d", i);
		assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 7, txn, now + 300), 0);
		if (i == 0)
			assert_true(loop_until(&f.loop, tracked_one, NULL));
		if (i % 100 == 50) /* some expired ones among them: not revoked */
			assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 7, "gone", now - 1), 0);
	}
	assert_false(wi_revocations_is_revoked(f.rev, "many-0", NULL, NULL, 0, now));

	agent_exit(&f);
	uint64_t want = MANY_RUNS;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_int_equal(wi_runs_revoked(R), MANY_RUNS);
	assert_int_equal(wi_revocations_count(f.rev), MANY_RUNS);
	for (int i = 0; i < MANY_RUNS; i++) {
		snprintf(txn, sizeof(txn), "many-%d", i);
		assert_true(wi_revocations_is_revoked(f.rev, txn, NULL, NULL, 0, now));
	}
	assert_false(wi_revocations_is_revoked(f.rev, "gone", NULL, NULL, 0, now));
	/* Durable: an index loaded afresh from the store holds every one. */
	wi_revocations *again = NULL;
	assert_int_equal(wi_revocations_open(f.store, now, &again), 0);
	assert_int_equal(wi_revocations_count(again), MANY_RUNS);
	assert_true(wi_revocations_is_revoked(again, "many-1299", NULL, NULL, 0, now));
	wi_revocations_free(again);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_die_with_agent),
		cmocka_unit_test(test_process_cap),
		cmocka_unit_test(test_runs_die_while_store_refuses),
		cmocka_unit_test(test_many_runs_die_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
