/* bench/seed.c — a stopped daemon's state with many revocations in force.
 *
 *   wi-bench seed --data-dir DIR --revocations N [--ttl S]
 *
 * Appends N txn revocations (random identifiers, in force for S seconds,
 * default 3600) to DIR/state.db through the store's own interface, in
 * batches of SEED_BATCH, as a busy node's dead agents leave them.  The
 * daemon must not be running.  bench/run then measures start-to-ready and
 * idle RSS with that state: the daemon checks the file and loads every
 * revocation in force before it answers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "bench/common.h"
#include "core/b64url.h"
#include "core/rand.h"
#include "core/store.h"

#define SEED_BATCH 4096
#define SEED_MAX 1000000
#define SEED_ID_BYTES 16

int wi_bench_seed(int argc, char **argv)
{
	static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
					     {"revocations", required_argument, NULL, 'n'},
					     {"ttl", required_argument, NULL, 't'},
					     {0}};
	const char *dir = NULL;
	double n = 0, ttl = 3600;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'n')
			n = wi_bench_num("--revocations", optarg);
		else if (ch == 't')
			ttl = wi_bench_num("--ttl", optarg);
		else
			return 2;
	}
	if (!dir || n < 1 || n > SEED_MAX || ttl < 1) {
		fprintf(stderr, "wi-bench seed: --data-dir DIR --revocations 1..%d [--ttl S]\n", SEED_MAX);
		return 2;
	}
	wi_store *s = NULL;
	if (wi_store_open(dir, &s) < 0) {
		fprintf(stderr, "wi-bench seed: %s\n", wi_error_detail());
		return 1;
	}
	static char ids[SEED_BATCH][WI_B64URL_ENCODE_CAP(SEED_ID_BYTES)];
	const char *values[SEED_BATCH];
	time_t untils[SEED_BATCH];
	size_t total = (size_t)n, done = 0;
	time_t until = time(NULL) + (time_t)ttl;
	uint64_t t0 = wi_bench_now_ns();
	int rc = 0;
	while (rc == 0 && done < total) {
		size_t k = total - done < SEED_BATCH ? total - done : SEED_BATCH;
		for (size_t i = 0; rc == 0 && i < k; i++) {
			uint8_t r[SEED_ID_BYTES];
			size_t len = 0;
			rc = wi_rand_id_bytes(r, sizeof(r));
			if (rc == 0)
				rc = wi_b64url_encode_into(r, sizeof(r), ids[i], sizeof(ids[i]), &len);
			values[i] = ids[i];
			untils[i] = until;
		}
		if (rc == 0)
			rc = wi_store_put_revocations(s, WI_REVOKE_TXN, values, untils, k);
		done += k;
	}
	double ms = (double)(wi_bench_now_ns() - t0) / 1e6;
	if (rc < 0)
		fprintf(stderr, "wi-bench seed: %s\n", wi_error_detail());
	wi_store_close(s);
	if (rc < 0)
		return 1;
	printf("{\"revocations\":%zu,\"ms\":%.1f}\n", total, ms);
	return 0;
}
