/* bench/main.c — wi-bench: the load generator and ceiling probes behind
 * bench/run.  Subcommands: grpc, http, crypto, ready, seed, runs, prune (see
 * each file). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/bench.h"

int main(int argc, char **argv)
{
	/* Thousands of connections (streams scenario): the soft fd limit up
	 * to the hard one. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			perror("wi-bench: setrlimit(RLIMIT_NOFILE)");
	}
	if (argc >= 2) {
		if (strcmp(argv[1], "grpc") == 0)
			return wi_bench_grpc(argc - 1, argv + 1);
		if (strcmp(argv[1], "http") == 0)
			return wi_bench_http(argc - 1, argv + 1);
		if (strcmp(argv[1], "crypto") == 0)
			return wi_bench_crypto(argc - 1, argv + 1);
		if (strcmp(argv[1], "ready") == 0)
			return wi_bench_ready(argc - 1, argv + 1);
		if (strcmp(argv[1], "seed") == 0)
			return wi_bench_seed(argc - 1, argv + 1);
		if (strcmp(argv[1], "runs") == 0)
			return wi_bench_runs(argc - 1, argv + 1);
		if (strcmp(argv[1], "prune") == 0)
			return wi_bench_prune(argc - 1, argv + 1);
	}
	fprintf(stderr, "usage: wi-bench grpc|http|crypto|ready|seed|runs|prune [options]\n");
	return 2;
}
