/* Unit tests: runs die with their agent (txn-token/runs.c): the first run of
 * a process starts a pidfd watch on the loop, later runs join it without the
 * loop, expired runs are swept a few with each insert, many processes find
 * their own watches, and the exit of the process revokes every live run it
 * held; a process already gone is revoked at once. */
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

static void fx_open_cap(fx *f, size_t cap)
{
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "runs"));
	f->now = time(NULL);
	assert_int_equal(wi_store_open(f->dir, &f->store), 0);
	assert_int_equal(wi_revocations_open(f->store, f->now, &f->rev), 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(wi_runs_new(&f->loop, f->rev, cap, &R), 0);
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

static void fx_open(fx *f)
{
	fx_open_cap(f, 3);
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

/* Many agent processes at once: each run finds its own process's watch
 * (the table's chains, pids and start times mixed), the second run of each
 * joins at once without the loop, and the exit revokes every live run of
 * every watch.  One real process stands behind all the watches (its pidfd
 * duplicated for each): the keys are what differ. */
#define MANY_PROCS 500

static void test_many_processes(void **state)
{
	(void)state;
	fx f;
	fx_open_cap(&f, MANY_PROCS);
	time_t now = f.now;
	char txn[48];
	for (int p = 0; p < MANY_PROCS; p++) {
		snprintf(txn, sizeof(txn), "first-%d", p);
		/* pids and start times both vary; pairs share each of them */
		assert_int_equal(wi_runs_track(R, f.pidfd, 1000 + p / 2, 7 + (uint64_t)(p % 2), txn, now + 300), 0);
	}
	size_t want = MANY_PROCS;
	assert_true(loop_until(&f.loop, tracked_n, &want));
	for (int p = 0; p < MANY_PROCS; p++) {
		snprintf(txn, sizeof(txn), "second-%d", p);
		assert_int_equal(wi_runs_track(R, f.pidfd, 1000 + p / 2, 7 + (uint64_t)(p % 2), txn, now + 300), 0);
		/* joined its watch in place: counted before any loop turn */
		assert_int_equal(wi_runs_tracked(R), MANY_PROCS + (size_t)p + 1);
	}
	/* All are watched: one more process is refused. */
	assert_int_equal(wi_runs_track(R, f.pidfd, 99, 1, "refused", now + 300), WI_E_UNAVAILABLE);
	agent_exit(&f);
	uint64_t revoked = 2 * MANY_PROCS;
	assert_true(loop_until(&f.loop, revoked_n, &revoked));
	assert_int_equal(wi_runs_revoked(R), 2 * MANY_PROCS);
	assert_int_equal(wi_runs_tracked(R), 0);
	for (int p = 0; p < MANY_PROCS; p += 37) {
		snprintf(txn, sizeof(txn), "first-%d", p);
		assert_true(wi_revocations_is_revoked(f.rev, txn, NULL, NULL, 0, now));
		snprintf(txn, sizeof(txn), "second-%d", p);
		assert_true(wi_revocations_is_revoked(f.rev, txn, NULL, NULL, 0, now));
	}
	fx_close(&f);
}

/* The sweep drops expired runs a few at a time with each insert: a list
 * holds its live runs and at most as many expired ones again, however many
 * expired runs came through; the live ones all survive it. */
#define SWEPT_LIVE 1000
#define SWEPT_EXPIRED 20000

static void test_sweep_bound(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	time_t now = f.now;
	char txn[48];
	assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, "live-0", now + 300), 0);
	assert_true(loop_until(&f.loop, tracked_one, NULL));
	size_t most = 0;
	int live = 1;
	for (int i = 0; i < SWEPT_EXPIRED; i++) {
		/* expired ones, with a live one now and then */
		if (i % (SWEPT_EXPIRED / SWEPT_LIVE) == 0 && live < SWEPT_LIVE) {
			snprintf(txn, sizeof(txn), "live-%d", live++);
			assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, txn, now + 300), 0);
		}
		snprintf(txn, sizeof(txn), "expired-%d", i);
		assert_int_equal(wi_runs_track(R, f.pidfd, f.child, 42, txn, now - 1), 0);
		size_t n = wi_runs_tracked(R);
		if (n > most)
			most = n;
		if (n > 2 * (size_t)live + 2)
			fail_msg("%zu runs held with %d live, after %d expired ones", n, live, i + 1);
	}
	assert_int_equal(live, SWEPT_LIVE);
	assert_true(most >= (size_t)live); /* every live run is held */
	agent_exit(&f);
	uint64_t want = SWEPT_LIVE;
	assert_true(loop_until(&f.loop, revoked_n, &want));
	assert_int_equal(wi_runs_revoked(R), SWEPT_LIVE); /* the expired ones are not */
	assert_true(wi_revocations_is_revoked(f.rev, "live-0", NULL, NULL, 0, now));
	assert_true(wi_revocations_is_revoked(f.rev, "live-999", NULL, NULL, 0, now));
	assert_false(wi_revocations_is_revoked(f.rev, "expired-19999", NULL, NULL, 0, now));
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_die_with_agent),
		cmocka_unit_test(test_process_cap),
		cmocka_unit_test(test_runs_die_while_store_refuses),
		cmocka_unit_test(test_many_runs_die_together),
		cmocka_unit_test(test_many_processes),
		cmocka_unit_test(test_sweep_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
