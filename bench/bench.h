/* bench/bench.h — the subcommands of wi-bench (bench/main.c dispatches).
 * Each returns a process exit code and prints one JSON object on stdout. */
#ifndef WI_BENCH_BENCH_H
#define WI_BENCH_BENCH_H

int wi_bench_grpc(int argc, char **argv);
int wi_bench_http(int argc, char **argv);
int wi_bench_crypto(int argc, char **argv);
int wi_bench_ready(int argc, char **argv);
int wi_bench_seed(int argc, char **argv);
int wi_bench_runs(int argc, char **argv);
int wi_bench_prune(int argc, char **argv);

#endif
