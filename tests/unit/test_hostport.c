/* Unit tests: core/hostport (listen addresses) and core/hist (histograms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/hist.h"
#include "core/hostport.h"

static void test_ipv4(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	assert_int_equal(wi_hostport_parse("127.0.0.1:9464", &ss), 0);
	const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(ntohs(a->sin_port), 9464);
	assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000001u);
	assert_int_equal(wi_hostport_parse("0.0.0.0:1", &ss), 0);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&ss)->sin_port), 1);
	assert_int_equal(wi_hostport_parse("10.1.2.3:65535", &ss), 0);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&ss)->sin_port), 65535);
}

static void test_ipv6(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	assert_int_equal(wi_hostport_parse("[::1]:9464", &ss), 0);
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(a->sin6_family, AF_INET6);
	assert_int_equal(ntohs(a->sin6_port), 9464);
	struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;
	assert_memory_equal(&a->sin6_addr, &lo, sizeof(lo));
	assert_int_equal(wi_hostport_parse("[::]:80", &ss), 0);
	assert_int_equal(wi_hostport_parse("[fe80::1:2]:8080", &ss), 0);
	assert_int_equal(wi_hostport_parse("[::ffff:127.0.0.1]:8080", &ss), 0);
}

static void expect_bad(const char *spec)
{
	struct sockaddr_storage ss;
	memset(&ss, 0xab, sizeof(ss));
	struct sockaddr_storage before = ss;
	if (wi_hostport_parse(spec, &ss) != WI_E_CONFIG)
		fail_msg("accepted \"%s\"", spec);
	/* ret is written only on success */
	assert_memory_equal(&ss, &before, sizeof(ss));
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",		    /* empty */
		"9464",		    /* no host */
		":9464",	    /* empty host */
		"127.0.0.1",	    /* no port */
		"127.0.0.1:",	    /* empty port */
		"127.0.0.1:0",	    /* port 0 */
		"127.0.0.1:65536",  /* out of range */
		"127.0.0.1:99999",  /* out of range */
		"127.0.0.1:123456", /* too many digits */
		"127.0.0.1:+80",    /* sign */
		"127.0.0.1:-1",	    /* sign */
		"127.0.0.1: 80",    /* space */
		"127.0.0.1:80 ",    /* trailing space */
		"127.0.0.1:0x50",   /* hex port */
		"localhost:9464",   /* names are never resolved */
		"127.1:9464",	    /* not dotted-quad */
		"127.0.0.256:9464", /* octet out of range */
		"0x7f.0.0.1:9464",  /* hex octet */
		"::1:9464",	    /* IPv6 without brackets */
		"[::1]",	    /* no port */
		"[::1]9464",	    /* no colon */
		"[::1:9464",	    /* no closing bracket */
		"[]:9464",	    /* empty IPv6 */
		"[127.0.0.1]:9464", /* IPv4 in brackets */
		"[::1%lo]:9464",    /* zone index */
		"[:::1]:9464",	    /* malformed IPv6 */
		"1.2.3.4:80:90",    /* two ports */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad(bad[i]);
	struct sockaddr_storage ss;
	assert_int_equal(wi_hostport_parse(NULL, &ss), WI_E_CONFIG);
}

static void test_hist_buckets_cumulative(void **state)
{
	(void)state;
	static wi_hist h; /* zeroed, as embedded ones are */
	wi_hist_snapshot s;
	wi_hist_read(&h, &s);
	assert_int_equal(s.count, 0);
	wi_hist_observe_ns(&h, 50000);	    /* 50 µs: first bucket */
	wi_hist_observe_ns(&h, 100000);	    /* exactly 0.0001 s: still the first (le) */
	wi_hist_observe_ns(&h, 3000000);    /* 3 ms: le 0.005 */
	wi_hist_observe_ns(&h, 2000000000); /* 2 s: only +Inf */
	wi_hist_read(&h, &s);
	assert_int_equal(s.count, 4);
	assert_int_equal(s.cumulative[WI_HIST_BUCKETS], 4);
	assert_int_equal(s.cumulative[0], 2);
	assert_string_equal(wi_hist_bound_label(0), "0.0001");
	assert_string_equal(wi_hist_bound_label(5), "0.005");
	assert_int_equal(s.cumulative[4], 2); /* le 0.0025 */
	assert_int_equal(s.cumulative[5], 3); /* le 0.005 */
	assert_int_equal(s.cumulative[WI_HIST_BUCKETS - 1], 3); /* le 1 */
	assert_string_equal(wi_hist_bound_label(WI_HIST_BUCKETS - 1), "1");
	assert_string_equal(wi_hist_bound_label(WI_HIST_BUCKETS), "+Inf");
	for (int i = 1; i <= WI_HIST_BUCKETS; i++)
		assert_true(s.cumulative[i] >= s.cumulative[i - 1]);
	for (int i = 1; i < WI_HIST_BUCKETS; i++)
		assert_true(wi_hist_bound_seconds(i) > wi_hist_bound_seconds(i - 1));
	assert_true(s.sum_seconds > 2.003 && s.sum_seconds < 2.0032);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_hist_buckets_cumulative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
