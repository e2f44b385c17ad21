/* cli/status.c — `wimsectl status [--admin-socket PATH]`. */
#include "cli/status.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/buf.h"

#define DEFAULT_ADMIN_SOCKET "./run/admin.sock"
#define STATUS_RESPONSE_MAX (64u * 1024u)

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	wi_buf *b = ud;
	return wi_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* GET /status; the NUL-terminated body or NULL with one line printed. */
static char *get_status(const char *socket, int timeout_ms)
{
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "wimsectl: cannot start libcurl\n");
		return NULL;
	}
	wi_buf body;
	wi_buf_init(&body, STATUS_RESPONSE_MAX, false);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket);
	curl_easy_setopt(h, CURLOPT_URL, "http://localhost/status");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	char *ret = NULL;
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		fprintf(stderr, "wimsectl: %s: %s\n", socket, curl_easy_strerror(cc));
	} else if (status != 200) {
		fprintf(stderr, "wimsectl: %s: HTTP %ld from /status\n", socket, status);
	} else if (wi_buf_append(&body, "", 1) == 0) {
		uint8_t *d;
		size_t l;
		wi_buf_steal(&body, &d, &l);
		ret = (char *)d;
	}
	wi_buf_free(&body);
	curl_easy_cleanup(h);
	return ret;
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
	if (!socket) {
		const char *env = getenv("WIMSED_ADMIN_SOCKET");
		socket = env && *env ? env : DEFAULT_ADMIN_SOCKET;
	}
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
	printf("JWT key kid:   %s\n", str_or(j, "jwt_kid", "?"));
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
