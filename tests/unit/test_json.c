/* Unit tests: core/json serialisation (wi_json_dump_into, wi_json_dump_alloc),
 * compared with jansson's own json_dumps, and secret string values
 * (wi_json_secret_string, wi_json_secret_release), watched through jansson's
 * allocator hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* jansson's free, watched: when it frees `watch_ptr`, records whether its
 * first `watch_len` bytes were all zero. */
static const char *watch_ptr;
static size_t watch_len;
static int watch_freed; /* 0 not yet, 1 freed wiped, 2 freed with text */

static void watching_free(void *p)
{
	if (p && p == watch_ptr) {
		bool zero = true;
		for (size_t i = 0; i < watch_len; i++)
			zero = zero && watch_ptr[i] == 0;
		watch_freed = zero ? 1 : 2;
	}
	free(p);
}

static void watch(const json_t *s)
{
	watch_ptr = json_string_value(s);
	watch_len = json_string_length(s);
	watch_freed = 0;
}

static const char TOKEN[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.MEUCIQDx-_9";

/* A token's string value: the same bytes and the same serialisation as
 * jansson's checked json_string; anything but printable ASCII refused. */
static void test_secret_string_is_a_plain_string(void **state)
{
	(void)state;
	json_t *s = wi_json_secret_string(TOKEN, strlen(TOKEN));
	assert_non_null(s);
	assert_true(json_is_string(s));
	assert_string_equal(json_string_value(s), TOKEN);
	assert_int_equal(json_string_length(s), strlen(TOKEN));
	json_t *body = json_pack("{s:O, s:s}", "access_token", s, "token_type", "N_A");
	json_t *same = json_pack("{s:s, s:s}", "access_token", TOKEN, "token_type", "N_A");
	char *a = json_dumps(body, JSON_COMPACT), *b = json_dumps(same, JSON_COMPACT);
	assert_string_equal(a, b);
	free(a);
	free(b);
	json_decref(body);
	json_decref(same);
	wi_json_secret_release(s);

	assert_null(wi_json_secret_string("caf\xc3\xa9", 5));
	assert_null(wi_json_secret_string("tab\there", 8));
	assert_null(wi_json_secret_string("del\x7f", 4));
	assert_null(wi_json_secret_string("nul\0x", 5)); /* a NUL inside the length */
	assert_null(wi_json_secret_string(NULL, 0));
	/* A quote is printable: jansson escapes it when dumping. */
	json_t *q = wi_json_secret_string("a\"b", 3);
	assert_non_null(q);
	char *qt = json_dumps(q, JSON_ENCODE_ANY);
	assert_string_equal(qt, "\"a\\\"b\"");
	free(qt);
	wi_json_secret_release(q);
	wi_json_secret_release(NULL);
}

/* The last release wipes the text before jansson frees it; a release while
 * a body still holds the value leaves the text to that holder. */
static void test_secret_release_wipes_the_last_reference(void **state)
{
	(void)state;
	json_set_alloc_funcs(malloc, watching_free);
	json_t *s = wi_json_secret_string(TOKEN, strlen(TOKEN));
	assert_non_null(s);
	watch(s);
	wi_json_secret_release(s);
	assert_int_equal(watch_freed, 1);

	/* Held by a body as well: the first release must neither wipe nor
	 * free; the body still serialises the token. */
	s = wi_json_secret_string(TOKEN, strlen(TOKEN));
	json_t *body = json_pack("{s:O}", "access_token", s);
	assert_non_null(body);
	watch(s);
	wi_json_secret_release(s);
	assert_int_equal(watch_freed, 0);
	assert_string_equal(json_string_value(json_object_get(body, "access_token")), TOKEN);
	/* json_decref of the body frees it unwiped, which is what the
	 * service's order (body first, then the release) avoids. */
	json_decref(body);
	assert_int_equal(watch_freed, 2);

	/* The service's order: body gone first, then the release wipes. */
	s = wi_json_secret_string(TOKEN, strlen(TOKEN));
	body = json_pack("{s:O}", "access_token", s);
	watch(s);
	json_decref(body);
	assert_int_equal(watch_freed, 0);
	wi_json_secret_release(s);
	assert_int_equal(watch_freed, 1);
	json_set_alloc_funcs(malloc, free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump_alloc_matches_json_dumps),
		cmocka_unit_test(test_dump_into_uses_the_buffer_when_it_fits),
		cmocka_unit_test(test_secret_string_is_a_plain_string),
		cmocka_unit_test(test_secret_release_wipes_the_last_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
