/* cli/wimsectl.c — the command-line client of wimsed's sockets.
 * Exit 0 on success; otherwise one line on stderr and a non-zero status. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/x509_out.h"
#include "core/error.h"
#include "wimse/wimse.h"

#define DEFAULT_TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f, "usage: wimsectl [--socket unix:///path] [--timeout MS] COMMAND\n"
		   "commands:\n"
		   "  fetch x509 [--write DIR]   fetch this process's X.509-SVIDs\n"
		   "  healthcheck                check that wimsed is serving\n"
		   "The socket defaults to $SPIFFE_ENDPOINT_SOCKET.\n");
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int parse_timeout(const char *arg, int *ret)
{
	char *end;
	long v = strtol(arg, &end, 10);
	if (*end || v <= 0 || v > 600000) {
		fprintf(stderr, "wimsectl: --timeout must be 1..600000 ms\n");
		return -1;
	}
	*ret = (int)v;
	return 0;
}

/* Options valid after any subcommand: --socket, --timeout, and the
 * subcommand's own --write.  Returns 0, or an exit status. */
static int parse_sub_opts(int argc, char **argv, bool allow_write, const char **socket, int *timeout_ms,
			  const char **write_dir)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"write", required_argument, NULL, 'w'},
		{0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:t:w:", opts, NULL)) != -1) {
		switch (ch) {
		case 's': *socket = optarg; break;
		case 't':
			if (parse_timeout(optarg, timeout_ms) < 0)
				return 2;
			break;
		case 'w':
			if (allow_write) {
				*write_dir = optarg;
				break;
			}
			/* fall through */
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int cmd_fetch_x509(const char *socket, int timeout_ms, int argc, char **argv)
{
	const char *dir = NULL;
	int st = parse_sub_opts(argc, argv, true, &socket, &timeout_ms, &dir);
	if (st)
		return st;
	wimse_client *c = NULL;
	if (wimse_client_open(socket, &c) < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return 1;
	}
	double t0 = now_ms();
	wimse_x509_context *ctx = NULL;
	int rc = wimse_fetch_x509_context(c, timeout_ms, &ctx);
	double elapsed = now_ms() - t0;
	wimse_client_close(c);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return 1;
	}
	rc = dir ? wi_cli_write_x509(dir, ctx) : wi_cli_print_x509(stdout, ctx, elapsed);
	if (rc == 0 && dir)
		printf("Wrote %zu SVID(s) to %s\n", ctx->n_svids, dir);
	wimse_x509_context_free(ctx);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: %s\n", wi_error_detail());
		return 1;
	}
	return 0;
}

static int cmd_healthcheck(const char *socket, int timeout_ms, int argc, char **argv)
{
	const char *unused = NULL;
	int st = parse_sub_opts(argc, argv, false, &socket, &timeout_ms, &unused);
	if (st)
		return st;
	wimse_client *c = NULL;
	if (wimse_client_open(socket, &c) < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return 1;
	}
	int serving = 0;
	int rc = wimse_healthcheck(c, timeout_ms, &serving);
	wimse_client_close(c);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: wimsed is unhealthy: %s\n", wimse_last_error());
		return 1;
	}
	if (!serving) {
		fprintf(stderr, "wimsectl: wimsed is not serving\n");
		return 1;
	}
	printf("wimsed is healthy.\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *socket = NULL;
	int timeout_ms = DEFAULT_TIMEOUT_MS;
	int ch;
	/* '+' stops at the first non-option: the subcommand parses the rest. */
	while ((ch = getopt_long(argc, argv, "+s:t:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': socket = optarg; break;
		case 't':
			if (parse_timeout(optarg, &timeout_ms) < 0)
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int rest = argc - optind;
	char **av = argv + optind;
	if (rest >= 2 && strcmp(av[0], "fetch") == 0 && strcmp(av[1], "x509") == 0)
		return cmd_fetch_x509(socket, timeout_ms, rest - 1, av + 1);
	if (rest >= 1 && strcmp(av[0], "healthcheck") == 0)
		return cmd_healthcheck(socket, timeout_ms, rest, av);
	usage(stderr);
	return 2;
}
