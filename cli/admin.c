/* cli/admin.c — HTTP requests on the admin socket with libcurl. */
#include "cli/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/buf.h"

#define DEFAULT_ADMIN_SOCKET "./run/admin.sock"

const char *wi_cli_admin_socket(const char *given)
{
	if (given && *given)
		return given;
	const char *env = getenv("WIMSED_ADMIN_SOCKET");
	return env && *env ? env : DEFAULT_ADMIN_SOCKET;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	wi_buf *b = ud;
	return wi_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

int wi_cli_admin_request(const char *socket, int timeout_ms, const char *method, const char *path, const char *body,
			 size_t max_response, long *ret_status, char **ret_body)
{
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "wimsectl: cannot start libcurl\n");
		return -1;
	}
	char url[512];
	snprintf(url, sizeof(url), "http://localhost%s", path);
	wi_buf resp;
	wi_buf_init(&resp, max_response, false);
	struct curl_slist *headers = NULL;
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	int rc = -1;
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR) {
		fprintf(stderr, "wimsectl: %s: response larger than %zu bytes\n", socket, max_response);
	} else if (cc != CURLE_OK) {
		fprintf(stderr, "wimsectl: %s: %s\n", socket, curl_easy_strerror(cc));
	} else if (wi_buf_append(&resp, "", 1) < 0) {
		fprintf(stderr, "wimsectl: %s: response larger than %zu bytes\n", socket, max_response);
	} else {
		uint8_t *d;
		size_t l;
		wi_buf_steal(&resp, &d, &l);
		*ret_body = (char *)d;
		*ret_status = status;
		rc = 0;
	}
	wi_buf_free(&resp);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	return rc;
}

void wi_cli_admin_print_error(const char *what, long status, const char *body)
{
	json_error_t err;
	json_t *j = body ? json_loads(body, 0, &err) : NULL;
	const char *desc = json_string_value(json_object_get(j, "error_description"));
	fprintf(stderr, "wimsectl: %s: %s (HTTP %ld)\n", what, desc ? desc : "request refused", status);
	json_decref(j);
}
