/* bench/ready.c — start-to-ready time and idle RSS.
 *
 *   wi-bench ready --socket WORKLOAD_SOCKET [--settle S] -- DAEMON ARGS...
 *
 * Forks and execs the daemon (its stdout goes to our stderr), then polls:
 * a raw connect() on the socket every 200 µs, and once that succeeds a
 * grpc.health.v1.Health/Check on a fresh client until it answers SERVING.
 * ready_ms runs from just before fork() to that answer.  After --settle
 * seconds idle, reads VmRSS/VmHWM, sends SIGTERM and waits for the exit. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/common.h"
#include "wimse/wimse.h"

static int can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int wi_bench_ready(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"settle", required_argument, NULL, 'S'}, {0}};
	const char *socket = NULL;
	double settle = 1.0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch == 's')
			socket = optarg;
		else if (ch == 'S')
			settle = wi_bench_num("--settle", optarg);
		else
			return 2;
	}
	if (!socket || optind >= argc) {
		fprintf(stderr, "wi-bench ready: --socket PATH -- DAEMON ARGS...\n");
		return 2;
	}
	char addr[4200];
	snprintf(addr, sizeof(addr), "unix://%s", socket);
	uint64_t t0 = wi_bench_now_ns();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		dup2(2, 1);
		execv(argv[optind], argv + optind);
		fprintf(stderr, "wi-bench ready: exec %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	uint64_t deadline = t0 + 30ull * 1000000000ull;
	int serving = 0, attempts = 0;
	uint64_t t_ready = 0;
	while (!serving && wi_bench_now_ns() < deadline) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "wi-bench ready: the daemon exited (status %d)\n", st);
			return 1;
		}
		if (!can_connect(socket)) {
			usleep(200);
			continue;
		}
		wimse_client *c = NULL;
		attempts++;
		if (wimse_client_open(addr, &c) == 0) {
			if (wimse_healthcheck(c, 2000, &serving) < 0)
				serving = 0;
			wimse_client_close(c);
		}
		if (serving)
			t_ready = wi_bench_now_ns();
		else
			usleep(500);
	}
	long rss = -1, hwm = -1, anon = -1, file = -1, pss = -1, libs = -1;
	if (serving) {
		usleep((useconds_t)(settle * 1e6));
		rss = wi_bench_proc_kb(pid, "VmRSS");
		hwm = wi_bench_proc_kb(pid, "VmHWM");
		/* RSS splits into private memory and pages of shared libraries. */
		anon = wi_bench_proc_kb(pid, "RssAnon");
		file = wi_bench_proc_kb(pid, "RssFile");
		pss = wi_bench_proc_file_kb(pid, "smaps_rollup", "Pss");
		libs = wi_bench_proc_libraries(pid);
	}
	kill(pid, SIGTERM);
	uint64_t t_term = wi_bench_now_ns();
	int st = 0;
	(void)waitpid(pid, &st, 0);
	uint64_t t_exit = wi_bench_now_ns();
	printf("{\"ready\":%s,\"ready_ms\":%.2f,\"health_attempts\":%d,\"idle_rss_kb\":%ld,\"hwm_kb\":%ld,"
	       "\"rss_anon_kb\":%ld,\"rss_file_kb\":%ld,\"pss_kb\":%ld,\"libraries\":%ld,"
	       "\"stop_ms\":%.2f,\"exit_status\":%d}\n",
	       serving ? "true" : "false", serving ? (double)(t_ready - t0) / 1e6 : -1.0, attempts, rss, hwm, anon, file,
	       pss, libs,
	       (double)(t_exit - t_term) / 1e6, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return serving && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
