/* bench/prune.c — how long a token check waits while the daemon prunes
 * expired revocations (txn-token/revocations.c; the daemon's tick does it
 * every 5 minutes).
 *
 *   wi-bench prune --revocations N
 *
 * In process, on the library: a store in a temporary directory and its
 * revocation index with N txn revocations (in batches, a busy heap's
 * allocations between them), every other one expired by the time of the
 * prune.  One thread checks tokens (never revoked ones: a full look-up) in a
 * loop, timing each check, while the main thread prunes.  Prints
 * {"revocations", "expired", "prune_ms", "checks", "longest_check_ms",
 * "left"}. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "bench/common.h"
#include "core/store.h"
#include "txn-token/revocations.h"

#define PRUNE_REV_MAX 1000000
#define PRUNE_BATCH 4096

typedef struct checker {
	wi_revocations *rev;
	time_t at;
	atomic_bool measuring;
	atomic_bool stop;
	uint64_t checks;
	uint64_t longest_ns;
} checker;

static void *check_loop(void *arg)
{
	checker *c = arg;
	char v[40];
	unsigned i = 0;
	while (!atomic_load(&c->stop)) {
		snprintf(v, sizeof(v), "never-%u", i++);
		uint64_t a = wi_bench_now_ns();
		(void)wi_revocations_is_revoked(c->rev, v, NULL, NULL, 0, c->at);
		uint64_t d = wi_bench_now_ns() - a;
		if (atomic_load(&c->measuring)) {
			c->checks++;
			if (d > c->longest_ns)
				c->longest_ns = d;
		}
	}
	return NULL;
}

static int fill(wi_revocations *rev, size_t n, time_t now)
{
	static char ids[PRUNE_BATCH][40];
	const char *values[PRUNE_BATCH];
	time_t untils[PRUNE_BATCH];
	void *junk[64] = {0};
	for (size_t done = 0; done < n;) {
		size_t k = n - done < PRUNE_BATCH ? n - done : PRUNE_BATCH;
		for (size_t i = 0; i < k; i++) {
			snprintf(ids[i], sizeof(ids[i]), "run-%010zu-0123456", done + i);
			values[i] = ids[i];
			untils[i] = now + ((done + i) % 2 ? 60 : 3600);
		}
		for (size_t j = 0; j < 64; j++) {
			free(junk[j]);
			junk[j] = malloc(100 + (done / PRUNE_BATCH * 64 + j) * 37 % 900);
		}
		if (wi_revocations_add_many(rev, WI_REVOKE_TXN, values, untils, k) < 0)
			return -1;
		done += k;
	}
	for (size_t j = 0; j < 64; j++)
		free(junk[j]);
	return 0;
}

int wi_bench_prune(int argc, char **argv)
{
	static const struct option opts[] = {{"revocations", required_argument, NULL, 'n'}, {0}};
	double n = 0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			n = wi_bench_num("--revocations", optarg);
		else
			return 2;
	}
	if (n < 2 || n > PRUNE_REV_MAX) {
		fprintf(stderr, "wi-bench prune: --revocations 2..%d\n", PRUNE_REV_MAX);
		return 2;
	}
	char dir[PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/wi-bench-prune-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "wi-bench prune: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	time_t now = time(NULL);
	wi_store *st = NULL;
	wi_revocations *rev = NULL;
	int rc = wi_store_open(dir, &st) < 0 || wi_revocations_open(st, now, &rev) < 0 || fill(rev, (size_t)n, now) < 0
			 ? -1
			 : 0;
	checker c = {.rev = rev, .at = now + 120};
	pthread_t th;
	bool started = false;
	uint64_t prune_ns = 0;
	if (rc == 0) {
		started = pthread_create(&th, NULL, check_loop, &c) == 0;
		rc = started ? 0 : -1;
	}
	if (rc == 0) {
		struct timespec settle = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
		nanosleep(&settle, NULL);
		atomic_store(&c.measuring, true);
		uint64_t a = wi_bench_now_ns();
		rc = wi_revocations_prune(rev, now + 120);
		prune_ns = wi_bench_now_ns() - a;
		atomic_store(&c.measuring, false);
	}
	if (started) {
		atomic_store(&c.stop, true);
		pthread_join(th, NULL);
	}
	if (rc < 0)
		fprintf(stderr, "wi-bench prune: %s\n", wi_error_detail());
	else
		printf("{\"revocations\":%zu,\"expired\":%zu,\"prune_ms\":%.3f,\"checks\":%llu,"
		       "\"longest_check_ms\":%.3f,\"left\":%zu}\n",
		       (size_t)n, (size_t)n / 2, (double)prune_ns / 1e6, (unsigned long long)c.checks,
		       (double)c.longest_ns / 1e6, wi_revocations_count(rev));
	wi_revocations_free(rev);
	wi_store_close(st);
	if (wi_bench_rmtree(dir) < 0)
		fprintf(stderr, "wi-bench prune: could not remove %s\n", dir);
	return rc < 0 ? 1 : 0;
}
