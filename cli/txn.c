/* cli/txn.c — exchange, introspect, revoke, token decode/verify and the
 * development user token, as a client of the exchange socket. */
#include "cli/txn.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/b64url.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/jws.h"
#include "core/jwt_claims.h"
#include "core/limits.h"

#define RESPONSE_MAX (1024u * 1024u)
#define DEFAULT_EXCHANGE_SOCKET "./run/exchange.sock"

static const char *exchange_socket(const char *given)
{
	if (given)
		return given;
	const char *env = getenv("WIMSED_EXCHANGE_SOCKET");
	return env && *env ? env : DEFAULT_EXCHANGE_SOCKET;
}

typedef struct form {
	wi_buf b;
	CURL *h;
	bool failed;
} form;

static void form_add(form *f, const char *name, const char *value)
{
	if (!value)
		return;
	char *e = curl_easy_escape(f->h, value, (int)strlen(value));
	if (!e || (f->b.len && wi_buf_append(&f->b, "&", 1) < 0) || wi_buf_append_str(&f->b, name) < 0 ||
	    wi_buf_append(&f->b, "=", 1) < 0 || wi_buf_append_str(&f->b, e) < 0)
		f->failed = true;
	curl_free(e);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	wi_buf *b = ud;
	return wi_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* One request on the exchange socket.  *ret_body NUL-terminated JSON (or
 * NULL); returns the HTTP status, or -1 with a message printed. */
static long http(const char *socket, int timeout_ms, const char *method, const char *path, form *f,
		 char **ret_body)
{
	*ret_body = NULL;
	CURL *h = f ? f->h : curl_easy_init();
	if (!h) {
		fprintf(stderr, "wimsectl: cannot start libcurl\n");
		return -1;
	}
	wi_buf body;
	wi_buf_init(&body, RESPONSE_MAX, false);
	char url[512];
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, exchange_socket(socket));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, f && f->b.len ? (const char *)f->b.data : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, f ? (long)f->b.len : 0L);
	}
	CURLcode cc = curl_easy_perform(h);
	long status = -1;
	if (cc != CURLE_OK) {
		fprintf(stderr, "wimsectl: %s: %s\n", exchange_socket(socket), curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (wi_buf_append(&body, "", 1) == 0) {
			uint8_t *d;
			size_t l;
			wi_buf_steal(&body, &d, &l);
			*ret_body = (char *)d;
		}
	}
	wi_buf_free(&body);
	if (!f)
		curl_easy_cleanup(h);
	return status;
}

/* Prints an RFC 6749 error body as one line. */
static int report_error(long status, const char *body)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
	const char *d = j ? json_string_value(json_object_get(j, "error_description")) : NULL;
	fprintf(stderr, "wimsectl: HTTP %ld: %s%s%s\n", status, e ? e : "error", d ? ": " : "", d ? d : "");
	json_decref(j);
	return 1;
}

/* "@file" reads a token from a file (keeps it out of argv and ps). */
static char *token_arg(const char *arg)
{
	if (!arg)
		return NULL;
	if (arg[0] != '@')
		return strdup(arg);
	uint8_t *data = NULL;
	size_t len = 0;
	if (wi_fs_read_file(arg + 1, WI_JWT_MAX_LEN + 64, &data, &len) < 0) {
		fprintf(stderr, "wimsectl: cannot read %s: %s\n", arg + 1, wi_error_detail());
		return NULL;
	}
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
		data[--len] = '\0';
	return (char *)data;
}

static const char *token_type_urn(const char *t)
{
	static const char *const short_names[] = {"access_token", "id_token", "jwt", "txn_token"};
	for (size_t i = 0; i < 4; i++)
		if (strcmp(t, short_names[i]) == 0) {
			static char buf[96];
			snprintf(buf, sizeof(buf), "urn:ietf:params:oauth:token-type:%s", t);
			return buf;
		}
	return t;
}

/* The trust domain, from the service's metadata (issuer spiffe://td/...). */
static char *discover_trust_domain(const char *socket, int timeout_ms)
{
	char *body = NULL;
	long st = http(socket, timeout_ms, "GET", "/.well-known/oauth-authorization-server", NULL, &body);
	char *td = NULL;
	json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
	const char *iss = j ? json_string_value(json_object_get(j, "issuer")) : NULL;
	if (iss && strncmp(iss, "spiffe://", 9) == 0) {
		const char *slash = strchr(iss + 9, '/');
		td = strndup(iss + 9, slash ? (size_t)(slash - iss - 9) : strlen(iss + 9));
	}
	json_decref(j);
	free(body);
	return td;
}

int wi_cli_exchange(const char *socket, int timeout_ms, int argc, char **argv)
{
	static const struct option opts[] = {
		{"subject-token", required_argument, NULL, 's'}, {"subject-token-type", required_argument, NULL, 'S'},
		{"actor-token", required_argument, NULL, 'a'},	 {"scope", required_argument, NULL, 'c'},
		{"resource", required_argument, NULL, 'r'},	 {"details", required_argument, NULL, 'd'},
		{"context", required_argument, NULL, 'x'},	 {"audience", required_argument, NULL, 'A'},
		{"exchange-socket", required_argument, NULL, 'E'}, {0},
	};
	const char *subject = NULL, *stt = "access_token", *actor = NULL, *scope = NULL, *resource = NULL,
		   *details = NULL, *context = NULL, *audience = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': subject = optarg; break;
		case 'S': stt = optarg; break;
		case 'a': actor = optarg; break;
		case 'c': scope = optarg; break;
		case 'r': resource = optarg; break;
		case 'd': details = optarg; break;
		case 'x': context = optarg; break;
		case 'A': audience = optarg; break;
		case 'E': socket = optarg; break;
		default: return 2;
		}
	}
	if (!subject || !scope || optind != argc) {
		fprintf(stderr, "wimsectl: usage: exchange --subject-token T|@file --scope S [--subject-token-type T]"
				" [--actor-token T|@file] [--resource R] [--details JSON] [--context JSON] [--audience TD]\n");
		return 2;
	}
	_cleanup_(freep) char *st = token_arg(subject);
	_cleanup_(freep) char *at = token_arg(actor);
	_cleanup_(freep) char *td = audience ? strdup(audience) : discover_trust_domain(socket, timeout_ms);
	if (!st || (actor && !at))
		return 1;
	if (!td) {
		fprintf(stderr, "wimsectl: cannot learn the trust domain: pass --audience\n");
		return 1;
	}
	form f = {.h = curl_easy_init()};
	wi_buf_init(&f.b, 256 * 1024, true);
	form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
	form_add(&f, "requested_token_type", "urn:ietf:params:oauth:token-type:txn_token");
	form_add(&f, "audience", td);
	form_add(&f, "scope", scope);
	form_add(&f, "subject_token", st);
	form_add(&f, "subject_token_type", token_type_urn(stt));
	if (at) {
		form_add(&f, "actor_token", at);
		form_add(&f, "actor_token_type", "urn:ietf:params:oauth:token-type:jwt");
	}
	form_add(&f, "resource", resource);
	form_add(&f, "request_details", details);
	form_add(&f, "request_context", context);
	char *body = NULL;
	long status = f.failed ? -1 : http(socket, timeout_ms, "POST", "/token", &f, &body);
	curl_easy_cleanup(f.h);
	wi_buf_free(&f.b);
	int rc = 0;
	if (status == 200)
		printf("%s\n", body);
	else if (status > 0)
		rc = report_error(status, body);
	else
		rc = 1;
	free(body);
	return rc;
}

static int one_token_form(const char *socket, int timeout_ms, const char *path, const char *name, const char *value,
			  char **ret_body, long *ret_status)
{
	form f = {.h = curl_easy_init()};
	wi_buf_init(&f.b, 64 * 1024, true);
	form_add(&f, name, value);
	*ret_status = f.failed ? -1 : http(socket, timeout_ms, "POST", path, &f, ret_body);
	curl_easy_cleanup(f.h);
	wi_buf_free(&f.b);
	return 0;
}

int wi_cli_introspect(const char *socket, int timeout_ms, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "wimsectl: usage: introspect TOKEN|@file\n");
		return 2;
	}
	_cleanup_(freep) char *t = token_arg(argv[1]);
	if (!t)
		return 1;
	char *body = NULL;
	long status;
	(void)one_token_form(socket, timeout_ms, "/introspect", "token", t, &body, &status);
	int rc = 1;
	if (status == 200) {
		printf("%s\n", body);
		json_t *j = json_loads(body, 0, NULL);
		rc = json_is_true(json_object_get(j, "active")) ? 0 : 1; /* exit 1: inactive */
		json_decref(j);
	} else if (status > 0) {
		rc = report_error(status, body);
	}
	free(body);
	return rc;
}

int wi_cli_revoke(const char *socket, int timeout_ms, int argc, char **argv)
{
	form f = {.h = curl_easy_init()};
	wi_buf_init(&f.b, 16 * 1024, false);
	int rc = 2;
	if (argc == 3 && strcmp(argv[1], "--txn") == 0) {
		form_add(&f, "txn", argv[2]);
		rc = 0;
	} else if (argc == 3 && strcmp(argv[1], "--spiffe-id") == 0) {
		form_add(&f, "spiffe_id", argv[2]);
		rc = 0;
	} else if (argc == 4 && strcmp(argv[1], "--principal") == 0) {
		form_add(&f, "principal_iss", argv[2]);
		form_add(&f, "principal_sub", argv[3]);
		rc = 0;
	}
	if (rc) {
		fprintf(stderr, "wimsectl: usage: revoke --txn ID | --spiffe-id ID | --principal ISS SUB\n");
		curl_easy_cleanup(f.h);
		wi_buf_free(&f.b);
		return 2;
	}
	char *body = NULL;
	long status = f.failed ? -1 : http(socket, timeout_ms, "POST", "/revoke", &f, &body);
	curl_easy_cleanup(f.h);
	wi_buf_free(&f.b);
	if (status == 200)
		printf("%s\n", body);
	else
		rc = status > 0 ? report_error(status, body) : 1;
	free(body);
	return rc;
}

int wi_cli_dev_user_token(const char *socket, int timeout_ms, int argc, char **argv)
{
	static const struct option opts[] = {{"sub", required_argument, NULL, 's'},
					     {"scope", required_argument, NULL, 'c'},
					     {"exchange-socket", required_argument, NULL, 'E'},
					     {0}};
	const char *sub = NULL, *scope = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 's')
			sub = optarg;
		else if (ch == 'c')
			scope = optarg;
		else if (ch == 'E')
			socket = optarg;
		else
			return 2;
	}
	if (!sub || optind != argc) {
		fprintf(stderr, "wimsectl: usage: dev user-token --sub NAME [--scope \"a b\"]\n");
		return 2;
	}
	form f = {.h = curl_easy_init()};
	wi_buf_init(&f.b, 16 * 1024, false);
	form_add(&f, "sub", sub);
	form_add(&f, "scope", scope);
	char *body = NULL;
	long status = f.failed ? -1 : http(socket, timeout_ms, "POST", "/dev/user-token", &f, &body);
	curl_easy_cleanup(f.h);
	wi_buf_free(&f.b);
	int rc = 0;
	if (status == 200) {
		json_t *j = json_loads(body, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "access_token"));
		if (t)
			printf("%s\n", t);
		else
			rc = 1;
		json_decref(j);
	} else {
		rc = status > 0 ? report_error(status, body) : 1;
	}
	free(body);
	return rc;
}

static int decode_part(const char *p, size_t n, const char *what, json_t **ret)
{
	_cleanup_(freep) uint8_t *raw = NULL;
	size_t len;
	WI_TRY(wi_b64url_decode(p, n, WI_JWT_MAX_LEN, &raw, &len));
	return wi_json_parse_object((const char *)raw, len, what, ret);
}

int wi_cli_token_decode(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "wimsectl: usage: token decode TOKEN|@file\n");
		return 2;
	}
	_cleanup_(freep) char *t = token_arg(argv[1]);
	if (!t)
		return 1;
	const char *d1 = strchr(t, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	json_t *h = NULL, *c = NULL;
	if (!d2 || decode_part(t, (size_t)(d1 - t), "header", &h) < 0 ||
	    decode_part(d1 + 1, (size_t)(d2 - d1 - 1), "claims", &c) < 0) {
		fprintf(stderr, "wimsectl: not a compact JWS: %s\n", d2 ? wi_error_detail() : "need three parts");
		json_decref(h);
		return 1;
	}
	json_t *out = json_pack("{s:o, s:o}", "header", h, "claims", c);
	char *text = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(out);
	return text ? 0 : 1;
}

int wi_cli_token_verify(const char *socket, int timeout_ms, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "wimsectl: usage: token verify TOKEN|@file\n");
		return 2;
	}
	_cleanup_(freep) char *t = token_arg(argv[1]);
	if (!t)
		return 1;
	char *body = NULL;
	long status = http(socket, timeout_ms, "GET", "/.well-known/jwks.json", NULL, &body);
	if (status != 200) {
		free(body);
		if (status > 0)
			fprintf(stderr, "wimsectl: cannot fetch the JWKS (HTTP %ld)\n", status);
		return 1;
	}
	wi_jwks *keys = NULL;
	int rc = wi_jwks_parse(body, strlen(body), WI_JWKS_DOC_MAX, &keys);
	free(body);
	json_t *h = NULL, *c = NULL;
	wi_jws_verify_opts vo = {.allowed_algs = WI_JWS_SPIFFE_ALGS, .max_token_len = WI_JWT_MAX_LEN};
	if (rc == 0)
		rc = wi_jws_verify(t, strlen(t), keys, &vo, &h, &c);
	wi_jwks_unref(keys);
	const char *typ = rc == 0 ? wi_jwt_string_claim(h, "typ") : NULL;
	if (rc == 0 && (!typ || strcmp(typ, "txntoken+jwt") != 0))
		rc = wi__error_set(WI_E_INVAL, __FILE__, __LINE__, "not a Txn-Token (typ)");
	if (rc == 0)
		rc = wi_jwt_check_times(c, time(NULL), NULL);
	if (rc < 0) {
		fprintf(stderr, "wimsectl: invalid: %s\n", wi_error_detail());
		json_decref(h);
		json_decref(c);
		return 1;
	}
	char *text = json_dumps(c, JSON_INDENT(2));
	printf("signature valid (kid %s)\n%s\n", wi_jwt_string_claim(h, "kid"), text ? text : "");
	free(text);
	json_decref(h);
	json_decref(c);
	return 0;
}
