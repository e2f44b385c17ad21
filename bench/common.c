/* bench/common.c — see common.h. */
#include "bench/common.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t wi_bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double wi_bench_self_cpu_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return -1;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wi_bench_proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields follow the last ')'. */
	char *p = strrchr(buf, ')');
	long tck = sysconf(_SC_CLK_TCK);
	if (!p || tck <= 0)
		return -1;
	unsigned long long utime, stime;
	/* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)tck;
}

int wi_bench_lat_init(wi_bench_lat *l, size_t initial)
{
	memset(l, 0, sizeof(*l));
	if (initial < 1024)
		initial = 1024;
	if (initial > WI_BENCH_SAMPLES_MAX)
		initial = WI_BENCH_SAMPLES_MAX;
	l->us = malloc(initial * sizeof(*l->us));
	if (!l->us)
		return -ENOMEM;
	l->cap = initial;
	return 0;
}

void wi_bench_lat_add(wi_bench_lat *l, uint64_t ns)
{
	l->ok++;
	if (l->n == l->cap) {
		if (l->cap >= WI_BENCH_SAMPLES_MAX)
			return;
		size_t cap = l->cap * 2 > WI_BENCH_SAMPLES_MAX ? WI_BENCH_SAMPLES_MAX : l->cap * 2;
		uint32_t *p = realloc(l->us, cap * sizeof(*p));
		if (!p)
			return;
		l->us = p;
		l->cap = cap;
	}
	uint64_t us = ns / 1000u;
	l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

int wi_bench_lat_merge(wi_bench_lat *dst, const wi_bench_lat *src)
{
	size_t room = WI_BENCH_SAMPLES_MAX - dst->n, k = src->n < room ? src->n : room;
	if (dst->n + k > dst->cap) {
		uint32_t *p = realloc(dst->us, (dst->n + k) * sizeof(*p));
		if (!p)
			return -ENOMEM;
		dst->us = p;
		dst->cap = dst->n + k;
	}
	if (k)
		memcpy(dst->us + dst->n, src->us, k * sizeof(*src->us));
	dst->n += k;
	dst->ok += src->ok;
	dst->errors += src->errors;
	return 0;
}

void wi_bench_lat_free(wi_bench_lat *l)
{
	free(l->us);
	memset(l, 0, sizeof(*l));
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

double wi_bench_lat_pct_ms(wi_bench_lat *l, double p)
{
	static const wi_bench_lat *sorted;
	static size_t sorted_n;
	if (l->n == 0)
		return 0;
	if (sorted != l || sorted_n != l->n) {
		qsort(l->us, l->n, sizeof(*l->us), cmp_u32);
		sorted = l;
		sorted_n = l->n;
	}
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	if (i >= l->n)
		i = l->n - 1;
	return (double)l->us[i] / 1000.0;
}

void wi_bench_print_result(wi_bench_lat *l, double seconds, const char *extra)
{
	double p50 = wi_bench_lat_pct_ms(l, 0.50), p99 = wi_bench_lat_pct_ms(l, 0.99),
	       p999 = wi_bench_lat_pct_ms(l, 0.999), max = wi_bench_lat_pct_ms(l, 1.0);
	printf("{\"ops\":%llu,\"errors\":%llu,\"seconds\":%.4f,\"ops_per_s\":%.1f,\"p50_ms\":%.4f,"
	       "\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f%s}\n",
	       (unsigned long long)l->ok, (unsigned long long)l->errors, seconds,
	       seconds > 0 ? (double)l->ok / seconds : 0.0, p50, p99, p999, max, extra ? extra : "");
	fflush(stdout);
}

long wi_bench_proc_kb(int pid, const char *field)
{
	return wi_bench_proc_file_kb(pid, "status", field);
}

long wi_bench_proc_file_kb(int pid, const char *file, const char *field)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			char *end;
			errno = 0;
			long v = strtol(line + fl + 1, &end, 10);
			if (errno == 0 && end != line + fl + 1)
				kb = v;
			break;
		}
	}
	fclose(f);
	return kb;
}

long wi_bench_proc_libraries(int pid)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	/* A library is mapped in a few consecutive pieces; distinct names are
	 * counted by comparing with the ones already seen (a few hundred). */
	enum { SEEN_MAX = 1024 };
	char **seen = calloc(SEEN_MAX, sizeof(*seen));
	long n = seen ? 0 : -1;
	char line[4352];
	while (seen && n < SEEN_MAX && fgets(line, sizeof(line), f)) {
		char *name = strchr(line, '/');
		if (!name)
			continue;
		name[strcspn(name, "\n")] = '\0';
		const char *base = strrchr(name, '/') + 1;
		if (!strstr(base, ".so"))
			continue;
		bool known = false;
		for (long i = n - 1; i >= 0 && !known; i--)
			known = strcmp(seen[i], name) == 0;
		if (!known && !(seen[n++] = strdup(name)))
			n = -1;
		if (n < 0)
			break;
	}
	for (long i = 0; seen && i < SEEN_MAX && seen[i]; i++)
		free(seen[i]);
	free(seen);
	fclose(f);
	return n;
}

double wi_bench_num(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	double d = v ? strtod(v, &end) : 0;
	if (!v || errno || end == v || *end || d < 0) {
		fprintf(stderr, "wi-bench: %s needs a non-negative number\n", opt);
		exit(2);
	}
	return d;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

int wi_bench_rmtree(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
