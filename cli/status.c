/* cli/status.c — `wimsectl status [--admin-socket PATH]`. */
#include "cli/status.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/admin.h"

#define STATUS_RESPONSE_MAX (64u * 1024u)

/* GET /status; the NUL-terminated body or NULL with one line printed. */
static char *get_status(const char *socket, int timeout_ms)
{
	long status = 0;
	char *body = NULL;
	if (wi_cli_admin_request(socket, timeout_ms, "GET", "/status", NULL, STATUS_RESPONSE_MAX, &status, &body) < 0)
		return NULL;
	if (status != 200) {
		fprintf(stderr, "wimsectl: %s: HTTP %ld from /status\n", socket, status);
		free(body);
		return NULL;
	}
	return body;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static json_int_t int_or0(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* When a published successor (CA or key) starts signing; "none" when no
 * rotation is under way. */
static void print_next(const char *label, json_int_t when)
{
	char iso[32] = "none (no successor published)";
	time_t t = (time_t)when;
	struct tm tm;
	if (when > 0 && gmtime_r(&t, &tm))
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s %s\n", label, iso);
}

int wi_cli_status(int timeout_ms, int argc, char **argv)
{
	static const struct option opts[] = {
		{"admin-socket", required_argument, NULL, 'a'},
		{0},
	};
	const char *socket = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': socket = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "wimsectl: usage: status [--admin-socket PATH]\n");
		return 2;
	}
	socket = wi_cli_admin_socket(socket);
	char *body = get_status(socket, timeout_ms);
	if (!body)
		return 1;
	json_error_t err;
	json_t *j = json_loads(body, 0, &err);
	free(body);
	if (!json_is_object(j)) {
		fprintf(stderr, "wimsectl: %s: /status is not a JSON object\n", socket);
		json_decref(j);
		return 1;
	}
	json_t *conns = json_object_get(j, "connections");
	const char *health = str_or(j, "health", "UNKNOWN");
	printf("trust domain:  %s\n", str_or(j, "trust_domain", "?"));
	printf("CA expires:    %s\n", str_or(j, "ca_not_after", "?"));
	print_next("next CA:      ", int_or0(j, "ca_next_activation_unix"));
	printf("JWT key kid:   %s\n", str_or(j, "jwt_kid", "?"));
	print_next("next JWT key: ", int_or0(j, "jwt_next_activation_unix"));
	printf("entries:       %" PRId64 "\n", (int64_t)int_or0(j, "entries"));
	printf("streams open:  %" PRId64 "\n", (int64_t)int_or0(j, "streams_open"));
	printf("connections:   %" PRId64 " open, %" PRId64 " accepted, %" PRId64 " refused\n",
	       (int64_t)int_or0(conns, "open"), (int64_t)int_or0(conns, "accepted"),
	       (int64_t)int_or0(conns, "refused"));
	printf("revocations:   %" PRId64 "\n", (int64_t)int_or0(j, "revocations"));
	printf("health:        %s\n", health);
	int rc = strcmp(health, "SERVING") == 0 ? 0 : 1;
	json_decref(j);
	return rc;
}
