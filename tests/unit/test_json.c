/* Unit tests: core/json serialisation (wi_json_dump_into, wi_json_dump_alloc),
 * compared byte for byte with jansson's own json_dumps, on cJSON's printer
 * (watched through cJSON's allocator hooks) or jansson's, and secret string values
 * (wi_json_secret_string, wi_json_secret_release), watched through jansson's
 * allocator hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

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

/* cJSON's allocations, counted (the fast path builds its mirror with them);
 * fail_after > 0 makes the fail_after-th one fail. */
static size_t cjson_allocs;
static size_t cjson_fail_after;

static void *counting_malloc(size_t n)
{
	cjson_allocs++;
	if (cjson_fail_after && cjson_allocs >= cjson_fail_after)
		return NULL;
	return malloc(n);
}

static void count_cjson(void)
{
	cJSON_Hooks h = {.malloc_fn = counting_malloc, .free_fn = free};
	cJSON_InitHooks(&h);
	cjson_allocs = 0;
	cjson_fail_after = 0;
}

/* jansson's allocations, counted: its encoder makes a table of the values
 * it is inside (loop detection), the fast path allocates nothing of jansson's. */
static size_t jansson_allocs;

static void *counting_json_malloc(size_t n)
{
	jansson_allocs++;
	return malloc(n);
}

/* dump_alloc of j: the same bytes as json_dumps, by cJSON when `fast`. */
static void assert_dumps_as_jansson(json_t *j, bool fast, const char *what)
{
	char *want = json_dumps(j, JSON_COMPACT);
	assert_non_null(want);
	count_cjson();
	char *got = NULL;
	size_t len = 0;
	jansson_allocs = 0;
	json_set_alloc_funcs(counting_json_malloc, free);
	int r = wi_json_dump_alloc(j, JSON_COMPACT, &got, &len);
	json_set_alloc_funcs(malloc, free);
	assert_int_equal(r, 0);
	bool by_cjson = cjson_allocs > 0 && jansson_allocs == 0;
	if (strlen(want) != len || strcmp(got, want) != 0 || by_cjson != fast)
		fail_msg("%s: want %s (%s), got %s (cJSON allocations %zu, jansson's %zu)", what, want,
			 fast ? "cJSON" : "jansson", got, cjson_allocs, jansson_allocs);
	char buf[8192], *heap = NULL;
	const char *text = NULL;
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT, buf, sizeof(buf), &heap, &text, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(text, want, len);
	free(heap);
	free(got);
	free(want);
	cJSON_InitHooks(NULL);
}

/* Every kind of value: cJSON writes what jansson would, and the values it
 * cannot write as jansson does are left to jansson. */
static void test_fast_path_writes_what_jansson_writes(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		bool fast;
	} cases[] = {
		{"{}", true},
		{"[]", true},
		{"{\"a\":{},\"b\":[],\"c\":[[]],\"d\":[{}]}", true},
		{"{\"sub\":\"alice\",\"iat\":1765000000,\"exp\":-1765000000,\"n\":0,\"t\":true,\"f\":false,\"z\":null}", true},
		{"{\"big\":999999999999999,\"neg\":-999999999999999,\"x\":2147483648,\"y\":-2147483649}", true},
		{"{\"past doubles\":9223372036854775807,\"and\":-9223372036854775808,\"p\":9007199254740993}", true},
		{"{\"real\":1.5}", false},
		{"[1,2.0]", false},
		{"{\"esc\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\"}", true},
		{"{\"k\\\"ey\\n\":\"v\"}", true},
		{"{\"ctl\":\"a\\u0001b\"}", false},
		{"{\"k\\u001f\":1}", false},
		{"{\"del\":\"\x7f\",\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91\",\"sep\":\"\xe2\x80\xa8\"}", true},
		{"{\"act\":{\"sub\":\"spiffe://example.org/a\",\"act\":{\"sub\":\"spiffe://example.org/b\"}},"
		 "\"scope\":\"calendar.read mail.send\",\"aud\":[\"https://calendar.example.com/\"]}",
		 true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t err;
		json_t *j = json_loads(cases[i].json, 0, &err);
		if (!j)
			fail_msg("case %zu does not parse: %s", i, err.text);
		assert_dumps_as_jansson(j, cases[i].fast, cases[i].json);
		json_decref(j);
	}
	/* A NUL inside a string or a key (jansson makes them only when told). */
	json_t *j = json_loads("{\"a\":\"x\\u0000y\"}", JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	assert_dumps_as_jansson(j, false, "NUL in a string");
	json_decref(j);
	j = json_object();
	assert_int_equal(json_object_setn_new(j, "k\0ey", 4, json_true()), 0);
	assert_dumps_as_jansson(j, false, "NUL in a key");
	json_decref(j);
	/* Nesting: 32 levels by cJSON, 33 by jansson. */
	for (int depth = 31; depth <= 33; depth++) {
		json_t *root = json_array(), *at = root;
		for (int d = 1; d < depth; d++) {
			json_t *inner = json_array();
			assert_int_equal(json_array_append_new(at, inner), 0);
			at = inner;
		}
		assert_int_equal(json_array_append_new(at, json_string("deep")), 0);
		assert_dumps_as_jansson(root, depth <= 32, "nested arrays");
		json_decref(root);
	}
	/* One byte to escape (or to leave to jansson) at every offset of a
	 * string longer than the eight-byte scan's words, and none. */
	static const char special[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f'};
	for (size_t k = 0; k < sizeof(special); k++) {
		for (size_t at = 0; at <= 41; at++) {
			char text[42];
			memset(text, 'a', sizeof(text));
			if (at < sizeof(text))
				text[at] = special[k];
			j = json_pack("{s:s%}", "s", text, sizeof(text));
			assert_non_null(j);
			bool fast = at == sizeof(text) || (special[k] != '\x01' && special[k] != '\x1f');
			assert_dumps_as_jansson(j, fast, "one special byte");
			json_decref(j);
		}
	}
	/* Not an object or an array: jansson refuses it without JSON_ENCODE_ANY. */
	j = json_string("alone");
	char *got = NULL;
	size_t len = 0;
	assert_int_not_equal(wi_json_dump_alloc(j, JSON_COMPACT, &got, &len), 0);
	json_decref(j);
}

/* Random trees of keys and strings drawn from bytes that need escapes and
 * bytes that do not, integers at the edges: the same text as jansson's. */
static json_t *random_value(unsigned *seed, int depth, bool *fast)
{
	static const char alphabet[] = "aZ09-_./+= \"\\\b\f\n\r\t\x01\x1f\x7f\xc3\xa9";
	int kind = depth > 4 ? 2 + rand_r(seed) % 4 : rand_r(seed) % 6;
	switch (kind) {
	case 0:
	case 1: {
		json_t *c = kind == 0 ? json_object() : json_array();
		int n = rand_r(seed) % 5;
		for (int i = 0; i < n; i++) {
			json_t *v = random_value(seed, depth + 1, fast);
			if (kind == 0) {
				char key[8];
				snprintf(key, sizeof(key), "k%d%c", i, "a\"\\\n"[rand_r(seed) % 4]);
				assert_int_equal(json_object_set_new(c, key, v), 0);
			} else {
				assert_int_equal(json_array_append_new(c, v), 0);
			}
		}
		return c;
	}
	case 2: {
		char s[24];
		size_t n = (size_t)(rand_r(seed) % 20), k = 0;
		while (k < n) {
			size_t a = (size_t)rand_r(seed) % (sizeof(alphabet) - 1);
			if (alphabet[a] == '\xc3') { /* é, whole */
				s[k++] = '\xc3';
				s[k++] = '\xa9';
				continue;
			}
			if (alphabet[a] == '\xa9')
				continue;
			if (alphabet[a] == '\x01' || alphabet[a] == '\x1f')
				*fast = false;
			s[k++] = alphabet[a];
		}
		json_t *v = json_stringn(s, k);
		assert_non_null(v);
		return v;
	}
	case 3: {
		static const json_int_t edges[] = {0, 1, -1, 9, 10, 2147483647, 2147483648LL, -2147483648LL,
						   999999999999999LL, -999999999999999LL, 1000000000000000LL,
						   9007199254740993LL, INT64_MAX, INT64_MIN};
		return json_integer(edges[rand_r(seed) % (sizeof(edges) / sizeof(edges[0]))]);
	}
	case 4:
		return rand_r(seed) % 2 ? json_true() : json_false();
	default:
		return json_null();
	}
}

static void test_fast_path_random_trees(void **state)
{
	(void)state;
	unsigned seed = 20261207;
	size_t fast_trees = 0;
	for (int i = 0; i < 3000; i++) {
		bool fast = true;
		json_t *j = json_object();
		assert_int_equal(json_object_set_new(j, "v", random_value(&seed, 0, &fast)), 0);
		char what[32];
		snprintf(what, sizeof(what), "random tree %d", i);
		assert_dumps_as_jansson(j, fast, what);
		fast_trees += fast;
		json_decref(j);
	}
	assert_true(fast_trees > 1000);
}

/* dump_into on the fast path: the caller's buffer when the text fits with
 * cJSON's slack, else the heap and the buffer untouched. */
static void test_fast_dump_into_buffer_or_heap(void **state)
{
	(void)state;
	json_t *j = body_with(100);
	char *want = json_dumps(j, JSON_COMPACT);
	size_t want_len = strlen(want);
	char buf[512];
	char *heap = NULL;
	const char *text = NULL;
	size_t len = 0;
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT, buf, sizeof(buf), &heap, &text, &len), 0);
	assert_null(heap);
	assert_ptr_equal(text, buf);
	assert_int_equal(len, want_len);
	assert_memory_equal(text, want, len);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(wi_json_dump_into(j, JSON_COMPACT, buf, want_len, &heap, &text, &len), 0);
	assert_non_null(heap);
	assert_ptr_equal(text, heap);
	assert_int_equal(len, want_len);
	assert_memory_equal(text, want, len);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'x');
	free(heap);
	free(want);
	json_decref(j);
}

/* cJSON out of memory at each of its allocations: WI_E_NOMEM, nothing
 * written, nothing leaked (the sanitizer build checks the last). */
static void test_fast_path_out_of_memory(void **state)
{
	(void)state;
	json_t *j = json_loads("{\"a\":[1,{\"b\":\"c\"}],\"d\":true}", 0, NULL);
	assert_non_null(j);
	count_cjson();
	char *got = NULL;
	size_t len = 0;
	assert_int_equal(wi_json_dump_alloc(j, JSON_COMPACT, &got, &len), 0);
	size_t n = cjson_allocs;
	free(got);
	assert_true(n >= 6);
	for (size_t k = 1; k <= n; k++) {
		count_cjson();
		cjson_fail_after = k;
		got = (char *)0x1;
		assert_int_equal(wi_json_dump_alloc(j, JSON_COMPACT, &got, &len), WI_E_NOMEM);
		assert_ptr_equal(got, (char *)0x1);
	}
	cJSON_InitHooks(NULL);
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
		cmocka_unit_test(test_fast_path_writes_what_jansson_writes),
		cmocka_unit_test(test_fast_path_random_trees),
		cmocka_unit_test(test_fast_dump_into_buffer_or_heap),
		cmocka_unit_test(test_fast_path_out_of_memory),
		cmocka_unit_test(test_secret_string_is_a_plain_string),
		cmocka_unit_test(test_secret_release_wipes_the_last_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
