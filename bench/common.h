/* bench/common.h — shared helpers of the benchmark drivers: a monotonic
 * clock, a bounded latency recorder and one-line JSON results.
 *
 * Every driver prints exactly one JSON object on stdout (bench/run parses
 * it) and diagnostics on stderr. */
#ifndef WI_BENCH_COMMON_H
#define WI_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Latency samples kept per run; beyond this, samples are counted but not
 * kept (percentiles then describe the first WI_BENCH_SAMPLES_MAX calls). */
#define WI_BENCH_SAMPLES_MAX (8u * 1024u * 1024u)

typedef struct wi_bench_lat {
	uint32_t *us;  /* microseconds, saturated at UINT32_MAX */
	size_t n, cap;
	uint64_t ok, errors;
} wi_bench_lat;

uint64_t wi_bench_now_ns(void);
/* CPU seconds (user + system) of this process, all threads; -1 on error. */
double wi_bench_self_cpu_s(void);
/* The same of another process, from /proc/<pid>/stat (in clock ticks, so to
 * 1 / sysconf(_SC_CLK_TCK) s); -1 if unreadable. */
double wi_bench_proc_cpu_s(int pid);
/* Initial capacity only; grows up to WI_BENCH_SAMPLES_MAX. */
int wi_bench_lat_init(wi_bench_lat *l, size_t initial) __attribute__((warn_unused_result));
void wi_bench_lat_add(wi_bench_lat *l, uint64_t ns);
/* Appends src's samples and counts to dst (up to WI_BENCH_SAMPLES_MAX). */
int wi_bench_lat_merge(wi_bench_lat *dst, const wi_bench_lat *src) __attribute__((warn_unused_result));
void wi_bench_lat_free(wi_bench_lat *l);
/* Sorts the samples; p in [0,1]; returns milliseconds (0 without samples). */
double wi_bench_lat_pct_ms(wi_bench_lat *l, double p);

/* Prints {"ops":…,"errors":…,"seconds":…,"ops_per_s":…,"p50_ms":…,…} plus
 * `extra` (a JSON fragment starting with ',' or NULL) and a newline. */
void wi_bench_print_result(wi_bench_lat *l, double seconds, const char *extra);

/* VmRSS / VmHWM of a process in kB; -1 if unreadable. */
long wi_bench_proc_kb(int pid, const char *field);
/* The same from another /proc/<pid> file ("smaps_rollup": Pss, Private_Dirty). */
long wi_bench_proc_file_kb(int pid, const char *file, const char *field);

/* How many distinct shared objects (a mapped file whose name has ".so") the
 * process maps now, from /proc/<pid>/maps; -1 if unreadable. */
long wi_bench_proc_libraries(int pid);

/* Parses a positive number or dies with a usage message. */
double wi_bench_num(const char *opt, const char *v);

/* Removes a temporary directory and everything in it (an in-process
 * scenario's store); 0, or -1 when something could not be removed. */
int wi_bench_rmtree(const char *dir);

#endif
