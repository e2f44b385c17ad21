/* cli/entry.c — `wimsectl entry ...` on the admin socket. */
#include "cli/entry.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/admin.h"
#include "core/fsutil.h"
#include "core/limits.h"

/* An entry list of WI_ENTRIES_MAX entries of a few hundred bytes each. */
#define ENTRY_RESPONSE_MAX (256u * 1024u * 1024u)

#define USAGE                                                                                              \
	"usage: wimsectl entry create --spiffe-id ID --selector S [--selector S ...] [--hint H]\n"           \
	"                             [--x509-svid-ttl SECS] [--admin-socket PATH]\n"                      \
	"       wimsectl entry list|show ID|delete ID|import FILE [--admin-socket PATH]\n"

static int usage_error(const char *why)
{
	fprintf(stderr, "wimsectl: entry: %s\n%s", why, USAGE);
	return 2;
}

/* Sends one request; on a 2xx answer returns its JSON (a new reference),
 * else prints one line and returns NULL. */
static json_t *call(const char *socket, int timeout_ms, const char *what, const char *method, const char *path,
		    const char *body)
{
	long status = 0;
	char *resp = NULL;
	if (wi_cli_admin_request(socket, timeout_ms, method, path, body, ENTRY_RESPONSE_MAX, &status, &resp) < 0)
		return NULL;
	if (status < 200 || status > 299) {
		wi_cli_admin_print_error(what, status, resp);
		free(resp);
		return NULL;
	}
	json_error_t err;
	json_t *j = json_loads(resp, 0, &err);
	free(resp);
	if (!j)
		fprintf(stderr, "wimsectl: %s: the daemon's answer is not JSON\n", what);
	return j;
}

static int print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!text) {
		fprintf(stderr, "wimsectl: out of memory\n");
		return 1;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

/* "/entries/<id>" for an id that is safe in a URL path (the daemon checks
 * the format; this only keeps the request line intact). */
static int entry_path(const char *id, char *buf, size_t cap)
{
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return -1;
	int n = snprintf(buf, cap, "/entries/%s", id);
	return n > 0 && (size_t)n < cap && *id ? 0 : -1;
}

static int cmd_create(const char *socket, int timeout_ms, const char *spiffe_id, json_t *selectors, const char *hint,
		      const char *ttl)
{
	if (!spiffe_id)
		return usage_error("create needs --spiffe-id");
	if (json_array_size(selectors) == 0)
		return usage_error("create needs at least one --selector");
	json_t *e = json_pack("{s:s, s:O}", "spiffe_id", spiffe_id, "selectors", selectors);
	if (!e)
		return usage_error("--spiffe-id and --selector must be UTF-8 text");
	if (hint)
		json_object_set_new(e, "hint", json_string(hint));
	if (ttl) {
		char *end = NULL;
		long long secs = strtoll(ttl, &end, 10);
		/* Plain seconds go as a number; "30m" style goes as given and
		 * the daemon's duration parser judges it. */
		json_object_set_new(e, "x509_svid_ttl", *ttl && !*end ? json_integer(secs) : json_string(ttl));
	}
	char *body = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	if (!body) {
		fprintf(stderr, "wimsectl: out of memory\n");
		return 1;
	}
	json_t *j = call(socket, timeout_ms, "entry create", "POST", "/entries", body);
	free(body);
	return j ? print_json(j) : 1;
}

static int cmd_list(const char *socket, int timeout_ms)
{
	json_t *j = call(socket, timeout_ms, "entry list", "GET", "/entries", NULL);
	if (!j)
		return 1;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(j, "entries"), i, e)
	{
		printf("%s  %-6s  %s ", json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "source")), json_string_value(json_object_get(e, "spiffe_id")));
		size_t k;
		json_t *s;
		json_array_foreach(json_object_get(e, "selectors"), k, s) printf("%s%s", k ? "," : " ", json_string_value(s));
		const char *hint = json_string_value(json_object_get(e, "hint"));
		if (hint)
			printf("  hint=%s", hint);
		if (json_is_true(json_object_get(e, "invalid")))
			printf("  (invalid: not served)");
		printf("\n");
	}
	json_decref(j);
	return 0;
}

static int cmd_show_delete(const char *socket, int timeout_ms, const char *id, bool del)
{
	char path[128];
	if (entry_path(id, path, sizeof(path)) < 0)
		return usage_error("an entry id is 32 hexadecimal characters");
	json_t *j = call(socket, timeout_ms, del ? "entry delete" : "entry show", del ? "DELETE" : "GET", path, NULL);
	if (!j)
		return 1;
	if (!del)
		return print_json(j);
	printf("deleted %s\n", id);
	json_decref(j);
	return 0;
}

static int cmd_import(const char *socket, int timeout_ms, const char *file)
{
	uint8_t *data = NULL;
	size_t len = 0;
	if (wi_fs_read_file(file, WI_ADMIN_BODY_MAX, &data, &len) < 0) {
		fprintf(stderr, "wimsectl: entry import: cannot read %s: %s\n", file, wi_error_detail());
		return 1;
	}
	if (strlen((char *)data) != len) {
		free(data);
		fprintf(stderr, "wimsectl: entry import: %s contains a NUL byte\n", file);
		return 1;
	}
	json_t *j = call(socket, timeout_ms, "entry import", "POST", "/entries/import", (const char *)data);
	free(data);
	if (!j)
		return 1;
	printf("imported %" PRId64 " entries\n", (int64_t)json_integer_value(json_object_get(j, "imported")));
	json_decref(j);
	return 0;
}

int wi_cli_entry(int timeout_ms, int argc, char **argv)
{
	if (argc < 2)
		return usage_error("missing subcommand");
	const char *sub = argv[1];
	static const struct option opts[] = {
		{"admin-socket", required_argument, NULL, 'a'}, {"spiffe-id", required_argument, NULL, 'i'},
		{"selector", required_argument, NULL, 's'},     {"hint", required_argument, NULL, 'H'},
		{"x509-svid-ttl", required_argument, NULL, 't'}, {0},
	};
	const char *socket = NULL, *spiffe_id = NULL, *hint = NULL, *ttl = NULL;
	json_t *selectors = json_array();
	if (!selectors) {
		fprintf(stderr, "wimsectl: out of memory\n");
		return 1;
	}
	bool create = strcmp(sub, "create") == 0;
	int ch;
	/* 0, not 1: a full re-initialisation, so that the "+" (stop at the
	 * first non-option) of wimsectl's own options does not carry over and
	 * options may follow the subcommand's arguments. */
	optind = 0;
	while ((ch = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		if (ch == 'a') {
			socket = optarg;
		} else if (create && ch == 'i') {
			spiffe_id = optarg;
		} else if (create && ch == 's') {
			json_array_append_new(selectors, json_string(optarg));
		} else if (create && ch == 'H') {
			hint = optarg;
		} else if (create && ch == 't') {
			ttl = optarg;
		} else {
			json_decref(selectors);
			return usage_error("unknown or misplaced option");
		}
	}
	int nargs = argc - 1 - optind;
	char **args = argv + 1 + optind;
	socket = wi_cli_admin_socket(socket);
	int rc;
	if (create && nargs == 0)
		rc = cmd_create(socket, timeout_ms, spiffe_id, selectors, hint, ttl);
	else if (strcmp(sub, "list") == 0 && nargs == 0)
		rc = cmd_list(socket, timeout_ms);
	else if (strcmp(sub, "show") == 0 && nargs == 1)
		rc = cmd_show_delete(socket, timeout_ms, args[0], false);
	else if (strcmp(sub, "delete") == 0 && nargs == 1)
		rc = cmd_show_delete(socket, timeout_ms, args[0], true);
	else if (strcmp(sub, "import") == 0 && nargs == 1)
		rc = cmd_import(socket, timeout_ms, args[0]);
	else
		rc = usage_error("unknown subcommand or wrong arguments");
	json_decref(selectors);
	return rc;
}
