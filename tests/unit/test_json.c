/* Unit tests: core/json serialisation (wi_json_dump_into, wi_json_dump_alloc),
 * compared with jansson's own json_dumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static json_t *body_with(size_t token_len)
{
	char *tok = malloc(token_len + 1);
	assert_non_null(tok);
	for (size_t i = 0; i < token_len; i++)
		tok[i] = (char)('a' + i % 26);
	tok[token_len] = '\0';
	json_t *j = json_pack("{s:s, s:s, s:i, s:s}", "access_token", tok, "token_type", "N_A", "expires_in", 300,
			      "issued_token_type", "urn:ietf:params:oauth:token-type:txn_token");
	free(tok);
	assert_non_null(j);
	return j;
}

/* dump_alloc gives exactly what json_dumps gives, NUL-terminated, at its
 * length, whether the text fits the stack buffer or not. */
static void test_dump_alloc_matches_json_dumps(void **state)
{
	(void)state;
	const size_t sizes[] = {0, 10, 1000, 4000, 4096, 5000, 70000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		json_t *j = body_with(sizes[i]);
		char *want = json_dumps(j, JSON_COMPACT);
		assert_non_null(want);
		char *got = NULL;
		size_t len = 0;
		assert_int_equal(wi_json_dump_alloc(j, JSON_COMPACT, &got, &len), 0);
		assert_int_equal(len, strlen(want));
		assert_int_equal(strlen(got), len);
		assert_string_equal(got, want);
		free(got);
		free(want);
		json_decref(j);
	}
	char *got = (char *)0x1;
	size_t len = 7;
	assert_int_equal(wi_json_dump_alloc(NULL, JSON_COMPACT, &got, &len), WI_E_INVAL);
	assert_ptr_equal(got, (char *)0x1);
	assert_int_equal(len, 7);
}

static void test_dump_into_uses_the_buffer_when_it_fits(void **state)
{
	(void)state;
	json_t *j = body_with(100);
	char *want = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	size_t want_len = strlen(want);
	char buf[512];
	char *heap = NULL;
	const char *text = NULL;
	size_t len = 0;
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT | JSON_SORT_KEYS, buf, sizeof(buf), &heap, &text, &len), 0);
	assert_null(heap);
	assert_ptr_equal(text, buf);
	assert_int_equal(len, want_len);
	assert_memory_equal(text, want, len);
	/* Exactly the size: still the buffer. */
	heap = NULL;
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT | JSON_SORT_KEYS, buf, want_len, &heap, &text, &len), 0);
	assert_null(heap);
	assert_ptr_equal(text, buf);
	/* One byte short: the heap, whole, and the partial text wiped. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT | JSON_SORT_KEYS, buf, want_len - 1, &heap, &text, &len), 0);
	assert_non_null(heap);
	assert_ptr_equal(text, heap);
	assert_int_equal(len, want_len);
	assert_memory_equal(text, want, len);
	for (size_t i = 0; i < want_len - 1; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(buf[want_len - 1], 'x');
	free(heap);
	free(want);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump_alloc_matches_json_dumps),
		cmocka_unit_test(test_dump_into_uses_the_buffer_when_it_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
