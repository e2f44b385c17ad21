/* Unit tests: core/digest (digests fetched once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/digest.h"

static void hex_of(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* FIPS 180-4 example vectors (NIST CSRC, SHA256.pdf): "abc", the empty
 * string and the two-block 448-bit message. */
static void test_sha256_known_answers(void **state)
{
	(void)state;
	static const struct {
		const char *msg, *hex;
	} kat[] = {
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	};
	for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		uint8_t d[WI_SHA256_LEN];
		char hex[2 * WI_SHA256_LEN + 1];
		memset(d, 0, sizeof(d));
		assert_int_equal(wi_digest_sha256(kat[i].msg, strlen(kat[i].msg), d), 0);
		hex_of(d, sizeof(d), hex);
		assert_string_equal(hex, kat[i].hex);
	}
}

static void test_md_by_name(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int size;
	} mds[] = {{"SHA256", 32}, {"SHA384", 48}, {"SHA512", 64}};
	for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
		const EVP_MD *m = wi_digest_md(mds[i].name);
		assert_non_null(m);
		assert_int_equal(EVP_MD_get_size(m), mds[i].size);
		assert_ptr_equal(wi_digest_md(mds[i].name), m); /* fetched once */
	}
	/* Names are exact: no aliases, no case folding, no legacy digests. */
	assert_null(wi_digest_md("sha256"));
	assert_null(wi_digest_md("SHA1"));
	assert_null(wi_digest_md("MD5"));
	assert_null(wi_digest_md(""));
	assert_null(wi_digest_md(NULL));
}

/* The first use may come from several threads at once. */
static void *first_use(void *arg)
{
	uint8_t *d = arg;
	return wi_digest_sha256("abc", 3, d) == 0 ? d : NULL;
}

static void test_concurrent_first_use(void **state)
{
	(void)state;
	enum { N = 8 };
	pthread_t th[N];
	uint8_t d[N][WI_SHA256_LEN];
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, first_use, d[i]), 0);
	for (int i = 0; i < N; i++) {
		void *r = NULL;
		assert_int_equal(pthread_join(th[i], &r), 0);
		assert_ptr_equal(r, d[i]);
		assert_memory_equal(d[i], d[0], WI_SHA256_LEN);
	}
	assert_int_equal(d[0][0], 0xba);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_first_use), /* first: the once must not have run */
		cmocka_unit_test(test_sha256_known_answers),
		cmocka_unit_test(test_md_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
