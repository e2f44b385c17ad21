/* tests/unit/test_jwks_fetch.c — fetching a JWKS over HTTP (txn-token/jwks_fetch.h):
 * libcurl is opened only on first need, and a fetch keeps to its bounds.
 *
 * This binary does not link libcurl (it does not include its header), so the
 * first test can see that nothing maps it before wi_jwks_fetch_init.  The peer
 * is canned (canned_http.h): each test states exactly what the daemon would see. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/limits.h"
#include "txn-token/jwks_fetch.h"

#include "tests/unit/canned_http.h"
#include "tests/unit/testutil.h"

/* One reply per test; `canned` is the helper with its first reply spelt out. */
typedef wi_canned canned;
#define REPLY(...) .replies = {{__VA_ARGS__}}

static void canned_start(canned *c)
{
	assert_int_equal(wi_canned_start(c), 0);
}

static const char *url_of(const canned *c, char *buf, size_t cap)
{
	return wi_canned_url(c, "/jwks", buf, cap);
}

static int get(canned *c, wi_buf *ret_doc, long *ret_max_age)
{
	char url[64];
	return wi_jwks_fetch_get(url_of(c, url, sizeof(url)), NULL, NULL, ret_doc, ret_max_age);
}

static void expect_refused(canned *c, const char *why)
{
	wi_buf doc = {0};
	long age = 1234;
	canned_start(c);
	int rc = get(c, &doc, &age);
	wi_canned_stop(c);
	assert_int_equal(rc, WI_E_UNAVAILABLE);
	if (!strstr(wi_error_detail(), why))
		fail_msg("detail \"%s\" lacks \"%s\"", wi_error_detail(), why);
	assert_null(doc.data); /* nothing written on failure */
	assert_int_equal(age, 1234);
}

/* ---- tests -------------------------------------------------------------------- */

/* Must run first: it sees the process before anything opened libcurl. */
static void test_loaded_only_on_init(void **state)
{
	(void)state;
	assert_false(wi_test_library_mapped("libcurl.so"));
	assert_false(wi_jwks_fetch_loaded());
	assert_int_equal(wi_jwks_fetch_init(), 0);
	assert_true(wi_jwks_fetch_loaded());
	assert_true(wi_test_library_mapped("libcurl.so"));
	assert_int_equal(wi_jwks_fetch_init(), 0); /* once per process, then the same answer */
}

static void test_ok_with_max_age(void **state)
{
	(void)state;
	static const char body[] = "{\"keys\":[]}";
	canned c = {REPLY(.head = "HTTP/1.1 200 OK\r\nCache-Control: public, Max-Age=120\r\nContent-Length: 11\r\n"
			    "Connection: close\r\n\r\n",
		    .body = body)};
	canned_start(&c);
	wi_buf doc;
	long age = 0;
	int rc = get(&c, &doc, &age);
	wi_canned_stop(&c);
	if (rc < 0)
		fail_msg("fetch failed: %s", wi_error_detail());
	assert_int_equal(doc.len, strlen(body));
	assert_memory_equal(doc.data, body, doc.len);
	assert_int_equal(age, 120);
	wi_buf_free(&doc);
	/* A plain GET of the URL's path, naming us. */
	assert_true(strncmp(c.request, "GET /jwks HTTP/1.1\r\n", 20) == 0);
	assert_non_null(strstr(c.request, "User-Agent: wimsed\r\n"));
}

static void test_cache_control_no_store_and_absent(void **state)
{
	(void)state;
	canned c = {REPLY(.head = "HTTP/1.1 200 OK\r\nCache-Control: no-store, max-age=600\r\nContent-Length: 2\r\n"
			    "Connection: close\r\n\r\n",
		    .body = "{}")};
	canned_start(&c);
	wi_buf doc;
	long age = 99;
	assert_int_equal(get(&c, &doc, &age), 0);
	wi_canned_stop(&c);
	assert_int_equal(age, 0); /* no-store wins over max-age */
	wi_buf_free(&doc);

	canned d = {REPLY(.head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", .body = "{}")};
	canned_start(&d);
	assert_int_equal(get(&d, &doc, &age), 0);
	wi_canned_stop(&d);
	assert_int_equal(age, -1);
	wi_buf_free(&doc);
}

static void test_status_other_than_200(void **state)
{
	(void)state;
	canned nf = {REPLY(.head = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
		     .body = "{}")};
	expect_refused(&nf, "HTTP status 404");
	/* No redirects: a 302 is an answer, not a hop to another host. */
	canned rd = {REPLY(.head = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/evil\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n",
		     .body = "")};
	expect_refused(&rd, "HTTP status 302");
}

static void test_body_over_the_cap(void **state)
{
	(void)state;
	/* Declared too big: refused from the header. */
	char head[160];
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nConnection: close\r\n\r\n",
		 (unsigned)WI_JWKS_DOC_MAX + 1);
	canned declared = {REPLY(.head = head, .body_len = (size_t)WI_JWKS_DOC_MAX + 1)};
	expect_refused(&declared, "larger than");
	/* Undeclared (read to close): the transfer stops at the cap. */
	canned streamed = {REPLY(.head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
			   .body_len = 8u * WI_JWKS_DOC_MAX)};
	expect_refused(&streamed, "larger than");
	/* Exactly the cap is fine. */
	canned exact = {REPLY(.head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", .body_len = WI_JWKS_DOC_MAX)};
	canned_start(&exact);
	wi_buf doc;
	long age;
	assert_int_equal(get(&exact, &doc, &age), 0);
	wi_canned_stop(&exact);
	assert_int_equal(doc.len, WI_JWKS_DOC_MAX);
	wi_buf_free(&doc);
}

static bool always(void *ud)
{
	(*(int *)ud)++;
	return true;
}

static void test_cancelled(void **state)
{
	(void)state;
	canned c = {REPLY(.silent = true)};
	canned_start(&c);
	char url[64];
	wi_buf doc = {0};
	long age;
	int polls = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = wi_jwks_fetch_get(url_of(&c, url, sizeof(url)), always, &polls, &doc, &age);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wi_canned_stop(&c);
	assert_int_equal(rc, WI_E_UNAVAILABLE);
	assert_true(polls >= 1);
	assert_null(doc.data);
	/* Well before the total timeout: the callback, not the clock, ended it. */
	assert_true(t1.tv_sec - t0.tv_sec < WI_JWKS_TOTAL_TIMEOUT_MS / 1000);
}

static void test_other_schemes_and_dead_peers(void **state)
{
	(void)state;
	wi_buf doc = {0};
	long age;
	/* Only http and https: no file://, no gopher://, … */
	static const char *const others[] = {"file:///etc/hostname", "gopher://127.0.0.1/", "dict://127.0.0.1/"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_int_equal(wi_jwks_fetch_get(others[i], NULL, NULL, &doc, &age), WI_E_UNAVAILABLE);
		/* Refused before any transfer (a file:// read would end in "HTTP status 0"). */
		if (!strstr(wi_error_detail(), "Unsupported protocol"))
			fail_msg("%s: %s", others[i], wi_error_detail());
		assert_null(doc.data);
	}
	/* A closed port: refused, not hung. */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t l = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks", (unsigned)ntohs(a.sin_port));
	close(s); /* bound, never listened: nothing answers there now */
	assert_int_equal(wi_jwks_fetch_get(url, NULL, NULL, &doc, &age), WI_E_UNAVAILABLE);
	assert_null(doc.data);
	assert_int_equal(wi_jwks_fetch_get(NULL, NULL, NULL, &doc, &age), WI_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loaded_only_on_init),
		cmocka_unit_test(test_ok_with_max_age),
		cmocka_unit_test(test_cache_control_no_store_and_absent),
		cmocka_unit_test(test_status_other_than_200),
		cmocka_unit_test(test_body_over_the_cap),
		cmocka_unit_test(test_cancelled),
		cmocka_unit_test(test_other_schemes_and_dead_peers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
