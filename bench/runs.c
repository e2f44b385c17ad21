/* bench/runs.c — what tracking a run costs under the lock that every token
 * exchange over the Unix socket takes (txn-token/runs.c).
 *
 *   wi-bench runs --runs N --processes P
 *
 * In process, on the library: a store in a temporary directory, its
 * revocations, a loop and wi_runs.  One child process stands behind all P
 * watches (its pidfd, with P start times as the keys), so P is bounded by the
 * open-file limit, not by forking.  Then N runs are tracked round-robin over
 * the P watches, each call timed, with a busy heap's allocations between them
 * (four allocations of 40..1 039 bytes replacing earlier ones, as an
 * exchange's JSON and buffers do), so the runs' nodes are spread as they are
 * in the daemon.  Prints {"runs", "processes", "mean_us", "p999_us",
 * "max_ms", "tracked", "seconds"}. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "bench/bench.h"
#include "bench/common.h"
#include "core/store.h"
#include "txn-token/revocations.h"
#include "txn-token/runs.h"

#define RUNS_MAX 10000000
#define HEAP_RING (1 << 16)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct bench_fx {
	char dir[PATH_MAX];
	wi_store *store;
	wi_revocations *rev;
	uv_loop_t loop;
	bool loop_ok;
	wi_runs *runs;
	int gate;
	pid_t child;
	int pidfd;
} bench_fx;

static int fx_open(bench_fx *f, size_t processes)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/wi-bench-runs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -errno;
	}
	time_t now = time(NULL);
	if (wi_store_open(f->dir, &f->store) < 0 || wi_revocations_open(f->store, now, &f->rev) < 0)
		return -1;
	if (uv_loop_init(&f->loop) != 0)
		return -1;
	f->loop_ok = true;
	if (wi_runs_new(&f->loop, f->rev, processes, &f->runs) < 0)
		return -1;
	int gate[2];
	if (pipe2(gate, O_CLOEXEC) != 0)
		return -errno;
	f->child = fork();
	if (f->child < 0)
		return -errno;
	if (f->child == 0) {
		char b;
		close(gate[1]);
		ssize_t k = read(gate[0], &b, 1); /* until the parent closes its end */
		_exit(k == 0 ? 0 : 1);
	}
	close(gate[0]);
	f->gate = gate[1];
	f->pidfd = (int)syscall(SYS_pidfd_open, f->child, 0);
	return f->pidfd >= 0 ? 0 : -errno;
}

static void fx_close(bench_fx *f)
{
	if (f->child > 0) {
		close(f->gate);
		waitpid(f->child, NULL, 0);
	}
	if (f->pidfd >= 0)
		close(f->pidfd);
	if (f->runs) {
		wi_runs_free(f->runs);
		uv_run(&f->loop, UV_RUN_DEFAULT);
	}
	if (f->loop_ok)
		uv_loop_close(&f->loop);
	wi_revocations_free(f->rev);
	wi_store_close(f->store);
	if (f->dir[0])
		if (wi_bench_rmtree(f->dir) < 0)
			fprintf(stderr, "wi-bench runs: could not remove %s\n", f->dir);
}

static int run_bench(bench_fx *f, size_t n, size_t processes)
{
	time_t exp = time(NULL) + 3600;
	char txn[64];
	/* The first run of each process crosses to the loop. */
	for (size_t p = 0; p < processes; p++) {
		snprintf(txn, sizeof(txn), "first-%zu", p);
		if (wi_runs_track(f->runs, f->pidfd, f->child, 1 + p, txn, exp) < 0)
			return -1;
	}
	for (int i = 0; i < 100000 && wi_runs_tracked(f->runs) < processes; i++)
		uv_run(&f->loop, UV_RUN_NOWAIT);
	if (wi_runs_tracked(f->runs) < processes) {
		fprintf(stderr, "wi-bench runs: the loop did not start the %zu watches\n", processes);
		return -1;
	}
	uint64_t *ns = malloc(n * sizeof(*ns));
	void **ring = calloc(HEAP_RING, sizeof(*ring));
	if (!ns || !ring) {
		free(ns);
		free(ring);
		fprintf(stderr, "wi-bench runs: out of memory\n");
		return -1;
	}
	int rc = 0;
	uint64_t t0 = wi_bench_now_ns();
	for (size_t i = 0; i < n && rc == 0; i++) {
		for (unsigned j = 0; j < 4; j++) {
			size_t k = ((unsigned)i * 2654435761u + j * 40503u) & (HEAP_RING - 1);
			free(ring[k]);
			ring[k] = malloc(40 + (i * 7 + j * 13) % 1000);
		}
		snprintf(txn, sizeof(txn), "run-%010zu-0123456789ab", i);
		uint64_t a = wi_bench_now_ns();
		rc = wi_runs_track(f->runs, f->pidfd, f->child, 1 + i % processes, txn, exp);
		ns[i] = wi_bench_now_ns() - a;
	}
	double seconds = (double)(wi_bench_now_ns() - t0) / 1e9;
	for (size_t k = 0; k < HEAP_RING; k++)
		free(ring[k]);
	free(ring);
	if (rc < 0) {
		free(ns);
		fprintf(stderr, "wi-bench runs: track: %s\n", wi_error_detail());
		return -1;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += ns[i];
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("{\"runs\":%zu,\"processes\":%zu,\"mean_us\":%.3f,\"p999_us\":%.3f,\"max_ms\":%.3f,"
	       "\"tracked\":%zu,\"seconds\":%.3f}\n",
	       n, processes, (double)sum / (double)n / 1e3, (double)ns[(n - 1) * 999 / 1000] / 1e3,
	       (double)ns[n - 1] / 1e6, wi_runs_tracked(f->runs), seconds);
	free(ns);
	return 0;
}

int wi_bench_runs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"runs", required_argument, NULL, 'n'}, {"processes", required_argument, NULL, 'p'}, {0}};
	double n = 0, procs = 1;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			n = wi_bench_num("--runs", optarg);
		else if (ch == 'p')
			procs = wi_bench_num("--processes", optarg);
		else
			return 2;
	}
	/* Each watch holds a duplicate of the pidfd. */
	struct rlimit rl;
	double fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 1024;
	if (n < 1 || n > RUNS_MAX || procs < 1 || procs > fds - 64) {
		fprintf(stderr, "wi-bench runs: --runs 1..%d [--processes 1..%.0f (open files allow)]\n", RUNS_MAX,
			fds - 64);
		return 2;
	}
	bench_fx f = {.pidfd = -1};
	int rc = fx_open(&f, (size_t)procs);
	if (rc < 0)
		fprintf(stderr, "wi-bench runs: set-up: %s\n", rc == -1 ? wi_error_detail() : strerror(-rc));
	else
		rc = run_bench(&f, (size_t)n, (size_t)procs);
	fx_close(&f);
	return rc < 0 ? 1 : 0;
}
