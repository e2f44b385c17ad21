/* cli/wimsectl.c — the command-line client of wimsed's sockets.
 * Exit 0 on success; otherwise one line on stderr and a non-zero status. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/entry.h"
#include "cli/status.h"
#include "cli/txn.h"
#include "cli/x509_out.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "wimse/wimse.h"

#define DEFAULT_TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f, "usage: wimsectl [--socket unix:///path] [--timeout MS] COMMAND\n"
		   "commands:\n"
		   "  fetch x509 [--write DIR]   fetch this process's X.509-SVIDs\n"
		   "  fetch jwt --audience A [--audience B ...] [--spiffe-id ID]\n"
		   "                             fetch JWT-SVIDs (printed one per line as ID and token)\n"
		   "  fetch jwt-bundles [--write FILE]\n"
		   "                             fetch the JWT bundles (JWKS)\n"
		   "  validate jwt --audience A TOKEN\n"
		   "                             validate a JWT-SVID (exit 0 valid, 1 invalid)\n"
		   "  healthcheck                check that wimsed is serving\n"
		   "  status [--admin-socket PATH]   trust domain, CA expiry, JWT kid, entries, streams,\n"
		   "                             connections, revocations, health (admin socket; default\n"
		   "                             $WIMSED_ADMIN_SOCKET, else ./run/admin.sock)\n"
		   "  entry create --spiffe-id ID --selector S [--selector S ...] [--hint H] [--x509-svid-ttl SECS]\n"
		   "  entry list | entry show ID | entry delete ID | entry import FILE\n"
		   "                             registration entries (admin socket; --admin-socket PATH)\n"
		   "transaction tokens (on the exchange socket):\n"
		   "  exchange --subject-token T|@file --scope S [--subject-token-type access_token|id_token|jwt|txn_token]\n"
		   "           [--actor-token T|@file] [--resource URI] [--details JSON] [--context JSON] [--audience TD]\n"
		   "  introspect TOKEN|@file     RFC 7662 (exit 0 active, 1 inactive)\n"
		   "  revoke --txn ID | --spiffe-id ID | --principal ISS SUB   (admin)\n"
		   "  token decode TOKEN|@file   print header and claims, no verification\n"
		   "  token verify TOKEN|@file   verify against the service's JWKS\n"
		   "  dev user-token --sub NAME [--scope \"a b\"]   (development issuer only)\n"
		   "The Workload API socket defaults to $SPIFFE_ENDPOINT_SOCKET; the exchange socket\n"
		   "to $WIMSED_EXCHANGE_SOCKET, else ./run/exchange.sock.\n");
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

#define MAX_AUDIENCES 16

/* What a subcommand may be given after its name. */
typedef struct sub_opts {
	const char *socket;
	int timeout_ms;
	const char *write;
	const char *spiffe_id;
	const char *audiences[MAX_AUDIENCES];
	size_t n_audiences;
	int n_args; /* positional arguments left, at argv[first_arg] */
	int first_arg;
} sub_opts;

enum { ALLOW_WRITE = 1, ALLOW_AUDIENCE = 2, ALLOW_SPIFFE_ID = 4 };

/* Options valid after any subcommand: --socket, --timeout; and those in
 * `allow`.  Returns 0, or an exit status. */
static int parse_sub(int argc, char **argv, unsigned allow, int max_args, sub_opts *o)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},    {"timeout", required_argument, NULL, 't'},
		{"write", required_argument, NULL, 'w'},     {"audience", required_argument, NULL, 'a'},
		{"spiffe-id", required_argument, NULL, 'i'}, {0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:t:w:a:i:", opts, NULL)) != -1) {
		if (ch == 's') {
			o->socket = optarg;
		} else if (ch == 't') {
			if (parse_timeout(optarg, &o->timeout_ms) < 0)
				return 2;
		} else if (ch == 'w' && (allow & ALLOW_WRITE)) {
			o->write = optarg;
		} else if (ch == 'a' && (allow & ALLOW_AUDIENCE)) {
			if (o->n_audiences == MAX_AUDIENCES) {
				fprintf(stderr, "wimsectl: at most %d audiences\n", MAX_AUDIENCES);
				return 2;
			}
			o->audiences[o->n_audiences++] = optarg;
		} else if (ch == 'i' && (allow & ALLOW_SPIFFE_ID)) {
			o->spiffe_id = optarg;
		} else {
			usage(stderr);
			return 2;
		}
	}
	o->first_arg = optind;
	o->n_args = argc - optind;
	if (o->n_args > max_args) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int parse_sub_opts(int argc, char **argv, bool allow_write, const char **socket, int *timeout_ms,
			  const char **write_dir)
{
	sub_opts o = {.socket = *socket, .timeout_ms = *timeout_ms};
	int st = parse_sub(argc, argv, allow_write ? ALLOW_WRITE : 0, 0, &o);
	if (st)
		return st;
	*socket = o.socket;
	*timeout_ms = o.timeout_ms;
	*write_dir = o.write;
	return 0;
}

static wimse_client *open_client(const char *socket)
{
	wimse_client *c = NULL;
	if (wimse_client_open(socket, &c) < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return NULL;
	}
	return c;
}

static int cmd_fetch_jwt(const char *socket, int timeout_ms, int argc, char **argv)
{
	sub_opts o = {.socket = socket, .timeout_ms = timeout_ms};
	int st = parse_sub(argc, argv, ALLOW_AUDIENCE | ALLOW_SPIFFE_ID, 0, &o);
	if (st)
		return st;
	if (o.n_audiences == 0) {
		fprintf(stderr, "wimsectl: fetch jwt needs --audience\n");
		return 2;
	}
	wimse_client *c = open_client(o.socket);
	if (!c)
		return 1;
	wimse_jwt_svids *svids = NULL;
	int rc = wimse_fetch_jwt_svids(c, o.audiences, o.n_audiences, o.spiffe_id, o.timeout_ms, &svids);
	wimse_client_close(c);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return 1;
	}
	for (size_t i = 0; i < svids->n_svids; i++)
		printf("%s %s\n", svids->svids[i].spiffe_id, svids->svids[i].token);
	wimse_jwt_svids_free(svids);
	return 0;
}

static int cmd_fetch_jwt_bundles(const char *socket, int timeout_ms, int argc, char **argv)
{
	sub_opts o = {.socket = socket, .timeout_ms = timeout_ms};
	int st = parse_sub(argc, argv, ALLOW_WRITE, 0, &o);
	if (st)
		return st;
	wimse_client *c = open_client(o.socket);
	if (!c)
		return 1;
	wimse_jwt_bundles *b = NULL;
	int rc = wimse_fetch_jwt_bundles(c, o.timeout_ms, &b);
	wimse_client_close(c);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: %s\n", wimse_last_error());
		return 1;
	}
	rc = 0;
	if (o.write) {
		/* The bundle of the first (own) trust domain, as spiffe-helper's
		 * jwt_bundle_file_name holds it. */
		if (b->n_bundles == 0 || wi_fs_write_atomic(o.write, b->jwks[0], strlen(b->jwks[0]), 0644) < 0) {
			fprintf(stderr, "wimsectl: cannot write %s: %s\n", o.write,
				b->n_bundles ? wi_error_detail() : "no bundle received");
			rc = 1;
		}
	} else {
		for (size_t i = 0; i < b->n_bundles; i++)
			printf("%s %s\n", b->trust_domains[i], b->jwks[i]);
	}
	wimse_jwt_bundles_free(b);
	return rc;
}

static int cmd_validate_jwt(const char *socket, int timeout_ms, int argc, char **argv)
{
	sub_opts o = {.socket = socket, .timeout_ms = timeout_ms};
	int st = parse_sub(argc, argv, ALLOW_AUDIENCE, 1, &o);
	if (st)
		return st;
	if (o.n_audiences != 1 || o.n_args != 1) {
		fprintf(stderr, "wimsectl: usage: validate jwt --audience A TOKEN\n");
		return 2;
	}
	wimse_client *c = open_client(o.socket);
	if (!c)
		return 1;
	char *id = NULL, *claims = NULL;
	int rc = wimse_validate_jwt_svid(c, o.audiences[0], argv[o.first_arg], o.timeout_ms, &id, &claims);
	wimse_client_close(c);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: invalid: %s\n", wimse_last_error());
		return 1;
	}
	printf("SVID is valid.\nSPIFFE ID: %s\nClaims:    %s\n", id, claims);
	free(id);
	free(claims);
	return 0;
}

static int cmd_fetch_x509(const char *socket, int timeout_ms, int argc, char **argv)
{
	const char *dir = NULL;
	int st = parse_sub_opts(argc, argv, true, &socket, &timeout_ms, &dir);
	if (st)
		return st;
	wimse_client *c = open_client(socket);
	if (!c)
		return 1;
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
	wimse_client *c = open_client(socket);
	if (!c)
		return 1;
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
	if (rest >= 2 && strcmp(av[0], "fetch") == 0 && strcmp(av[1], "jwt") == 0)
		return cmd_fetch_jwt(socket, timeout_ms, rest - 1, av + 1);
	if (rest >= 2 && strcmp(av[0], "fetch") == 0 && strcmp(av[1], "jwt-bundles") == 0)
		return cmd_fetch_jwt_bundles(socket, timeout_ms, rest - 1, av + 1);
	if (rest >= 2 && strcmp(av[0], "validate") == 0 && strcmp(av[1], "jwt") == 0)
		return cmd_validate_jwt(socket, timeout_ms, rest - 1, av + 1);
	if (rest >= 1 && strcmp(av[0], "healthcheck") == 0)
		return cmd_healthcheck(socket, timeout_ms, rest, av);
	if (rest >= 1 && strcmp(av[0], "status") == 0) /* admin socket, not --socket */
		return wi_cli_status(timeout_ms, rest, av);
	if (rest >= 1 && strcmp(av[0], "entry") == 0) /* admin socket too */
		return wi_cli_entry(timeout_ms, rest, av);
	/* Transaction tokens: --socket is the exchange socket for these
	 * (default $WIMSED_EXCHANGE_SOCKET or ./run/exchange.sock). */
	const char *xs = socket && strncmp(socket, "unix://", 7) == 0 ? socket + 7 : socket;
	if (rest >= 1 && strcmp(av[0], "exchange") == 0)
		return wi_cli_exchange(xs, timeout_ms, rest, av);
	if (rest >= 1 && strcmp(av[0], "introspect") == 0)
		return wi_cli_introspect(xs, timeout_ms, rest, av);
	if (rest >= 1 && strcmp(av[0], "revoke") == 0)
		return wi_cli_revoke(xs, timeout_ms, rest, av);
	if (rest >= 2 && strcmp(av[0], "dev") == 0 && strcmp(av[1], "user-token") == 0)
		return wi_cli_dev_user_token(xs, timeout_ms, rest - 1, av + 1);
	if (rest >= 2 && strcmp(av[0], "token") == 0 && strcmp(av[1], "decode") == 0)
		return wi_cli_token_decode(rest - 1, av + 1);
	if (rest >= 2 && strcmp(av[0], "token") == 0 && strcmp(av[1], "verify") == 0)
		return wi_cli_token_verify(xs, timeout_ms, rest - 1, av + 1);
	usage(stderr);
	return 2;
}
