/* core/json.c — strict parsing of untrusted JSON objects, and serialisation. */
#include "core/json.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "core/limits.h"

/* The deepest nesting of s[0..len), counted on the text: '{' and '[' outside
 * strings open a level.  For valid JSON this equals the depth of the value
 * jansson would build (strings are skipped with their escapes exactly as the
 * grammar defines them); invalid JSON is refused by jansson afterwards, so a
 * miscount there cannot let anything through.  Stops counting past `limit`. */
static size_t text_depth(const char *s, size_t len, size_t limit)
{
	size_t depth = 0, max = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++; /* the escaped character cannot end the string */
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
			if (max > limit)
				return max;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return max;
}

/* Both parsers: the depth bound before jansson, duplicates refused. */
static int parse_any(const char *s, size_t len, const char *what, json_t **ret)
{
	WI_CHECK(ret != NULL && what != NULL && (s != NULL || len == 0), WI_E_INVAL,
		 "json: NULL argument");
	/* DESIGN §6: nesting depth is a client-controlled size; bounded before
	 * jansson recurses into it. */
	WI_CHECK(text_depth(s, len, WI_JSON_DEPTH_MAX) <= WI_JSON_DEPTH_MAX, WI_E_TOO_BIG,
		 "%s is nested deeper than %d levels", what, WI_JSON_DEPTH_MAX);
	json_error_t err;
	/* RFC 7515 §4, RFC 7519 §4: names MUST be unique; we take the "reject"
	 * branch.  No JSON_ALLOW_NUL: "\u0000" in a string is refused. */
	json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
	WI_CHECK(j != NULL, WI_E_PARSE, "%s is not valid JSON: %s (position %d)", what, err.text,
		 err.position);
	*ret = j;
	return 0;
}

int wi_json_parse_object(const char *s, size_t len, const char *what, json_t **ret)
{
	json_t *j = NULL;
	WI_TRY(parse_any(s, len, what, &j));
	if (!json_is_object(j)) {
		json_decref(j);
		WI_FAIL(WI_E_PARSE, "%s is not a JSON object", what);
	}
	*ret = j;
	return 0;
}

int wi_json_parse_document(const char *s, size_t len, const char *what, json_t **ret)
{
	json_t *j = NULL;
	WI_TRY(parse_any(s, len, what, &j));
	if (!json_is_object(j) && !json_is_array(j)) {
		json_decref(j);
		WI_FAIL(WI_E_PARSE, "%s is not a JSON object or array", what);
	}
	*ret = j;
	return 0;
}

/* ---- serialisation ---------------------------------------------------------
 *
 * jansson's encoder takes every string code point by code point through its
 * UTF-8 decoder (about 70 instructions a byte: a quarter of a token
 * exchange's instructions went there, mostly on the kilobyte-long token in the
 * reply and on the claims it signs).  cJSON's printer copies a string that
 * needs no escape with memcpy.  So a JSON_COMPACT dump mirrors the value as a
 * cJSON tree that points at jansson's own keys and strings (no text is copied,
 * so nothing more needs wiping) and has cJSON print it into a buffer of the
 * exact size, counted on the way.  Only values whose cJSON text is byte for
 * byte jansson's go this way; anything else is dumped by jansson as before:
 * a real, a control character that jansson writes as \u00XX in capitals and
 * cJSON in lower case, a NUL, nesting deeper than FAST_DEPTH_MAX.  Integers
 * are formatted as jansson formats them and handed to cJSON as raw text.
 * jansson has already checked every string to be UTF-8 when it was made. */
#define FAST_DEPTH_MAX 32
#define FAST_SLACK 8		       /* cJSON's bounds check wants room past the NUL */
#define NOT_FAST 1		       /* a value jansson must dump */

/* s[0..len) as a JSON string: its size with the quotes and escapes, or 0 when
 * cJSON would not write it as jansson does (a NUL, or a control character
 * without a short escape). */
static size_t string_size(const char *s, size_t len)
{
	/* Eight bytes at a time while none is below 0x20, '"' or '\\' (the
	 * usual case: a token, a SPIFFE ID, a scope), then byte by byte. */
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;
	for (; len - i >= 8; i += 8) {
		uint64_t w, q, b;
		memcpy(&w, s + i, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		/* A byte below 0x20 in w, a zero byte in q or b (exact as a test
		 * of the word; the loop below finds which byte). */
		if ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs)
			break;
	}
	size_t extra = 0;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
			extra++;
		else
			return 0;
	}
	return len + extra + 2;
}

/* Mirrors j into *ret and adds the size of its text to *size: 0, NOT_FAST (nothing
 * built), or WI_E_NOMEM. */
static int mirror(json_t *j, int depth, cJSON **ret, size_t *size)
{
	cJSON *c = NULL;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
	case JSON_ARRAY: {
		if (depth >= FAST_DEPTH_MAX)
			return NOT_FAST;
		bool object = json_is_object(j);
		size_t n = object ? json_object_size(j) : json_array_size(j);
		c = object ? cJSON_CreateObject() : cJSON_CreateArray();
		WI_CHECK_ALLOC(c);
		*size += 2 + (n ? n - 1 : 0); /* brackets and commas */
		const char *key;
		size_t key_len, i;
		json_t *v;
		int r = 0;
		if (object) {
			json_object_keylen_foreach(j, key, key_len, v)
			{
				size_t ks = string_size(key, key_len);
				cJSON *cv = NULL;
				if (ks == 0) {
					r = NOT_FAST;
					break;
				}
				*size += ks + 1; /* the key and its colon */
				if ((r = mirror(v, depth + 1, &cv, size)) != 0)
					break;
				if (!cJSON_AddItemToObjectCS(c, key, cv)) {
					cJSON_Delete(cv);
					r = WI_E_NOMEM;
					break;
				}
			}
		} else {
			json_array_foreach(j, i, v)
			{
				cJSON *cv = NULL;
				if ((r = mirror(v, depth + 1, &cv, size)) != 0)
					break;
				if (!cJSON_AddItemToArray(c, cv)) {
					cJSON_Delete(cv);
					r = WI_E_NOMEM;
					break;
				}
			}
		}
		if (r != 0) {
			cJSON_Delete(c);
			return r == WI_E_NOMEM ? wi__error_set(r, __FILE__, __LINE__, "allocation") : r;
		}
		break;
	}
	case JSON_STRING: {
		size_t ss = string_size(json_string_value(j), json_string_length(j));
		if (ss == 0)
			return NOT_FAST;
		/* No NUL inside: jansson makes none without JSON_ALLOW_NUL, and
		 * string_size refuses one. */
		c = cJSON_CreateStringReference(json_string_value(j));
		WI_CHECK_ALLOC(c);
		*size += ss;
		break;
	}
	case JSON_INTEGER: {
		/* As jansson writes it, and as raw text: cJSON would hold it
		 * as a double and print it through "%1.15g" and sscanf. */
		char digits[24];
		int n = snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		if (n <= 0 || (size_t)n >= sizeof(digits))
			return NOT_FAST;
		c = cJSON_CreateRaw(digits);
		WI_CHECK_ALLOC(c);
		*size += (size_t)n;
		break;
	}
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_NULL:
		c = json_is_true(j) ? cJSON_CreateTrue() : json_is_false(j) ? cJSON_CreateFalse() : cJSON_CreateNull();
		WI_CHECK_ALLOC(c);
		*size += json_is_false(j) ? 5 : 4;
		break;
	default: /* JSON_REAL */
		return NOT_FAST;
	}
	*ret = c;
	return 0;
}

/* The fast path's tree and its text's exact size: 0, NOT_FAST, WI_E_NOMEM. */
static int fast_mirror(const json_t *j, size_t flags, cJSON **ret, size_t *ret_size)
{
	/* jansson dumps only an object or an array without JSON_ENCODE_ANY. */
	if (flags != JSON_COMPACT || (!json_is_object(j) && !json_is_array(j)))
		return NOT_FAST;
	size_t size = 0;
	cJSON *c = NULL;
	/* mirror only reads j; jansson's iteration macros want it non-const. */
	int r = mirror((json_t *)j, 0, &c, &size);
	if (r != 0)
		return r;
	if (size > (size_t)INT_MAX - FAST_SLACK) {
		cJSON_Delete(c);
		return NOT_FAST;
	}
	*ret = c;
	*ret_size = size;
	return 0;
}

/* Prints the mirrored tree into out[0..size + FAST_SLACK). */
static int fast_print(cJSON *c, size_t size, char *out)
{
	if (!cJSON_PrintPreallocated(c, out, (int)(size + FAST_SLACK), 0) || strnlen(out, size + 1) != size) {
		OPENSSL_cleanse(out, size + FAST_SLACK);
		WI_FAIL(WI_E_INTERNAL, "JSON serialisation: %zu bytes expected", size);
	}
	return 0;
}

/* wi_json_dump_into's contract on the fast path (buf may be NULL with cap 0:
 * always the heap), or NOT_FAST with nothing written. */
static int fast_dump(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_heap, const char **ret_text,
		     size_t *ret_len)
{
	cJSON *c = NULL;
	size_t size = 0;
	int r = fast_mirror(j, flags, &c, &size);
	if (r != 0)
		return r;
	char *heap = NULL, *out = buf;
	if (size + FAST_SLACK > cap)
		out = heap = malloc(size + FAST_SLACK);
	r = out ? fast_print(c, size, out) : wi__error_set(WI_E_NOMEM, __FILE__, __LINE__, "allocation");
	cJSON_Delete(c);
	if (r < 0) {
		free(heap);
		return r;
	}
	*ret_heap = heap;
	*ret_text = out;
	*ret_len = size;
	return 0;
}

int wi_json_dump_into(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_heap, const char **ret_text,
		      size_t *ret_len)
{
	WI_CHECK(j, WI_E_INVAL, "JSON serialisation: no value");
	int r = fast_dump(j, flags, buf, cap, ret_heap, ret_text, ret_len);
	if (r <= 0)
		return r;
	size_t n = json_dumpb(j, buf, cap, flags);
	WI_CHECK(n > 0, WI_E_NOMEM, "JSON serialisation");
	if (n <= cap) {
		*ret_text = buf;
		*ret_len = n;
		return 0;
	}
	OPENSSL_cleanse(buf, cap); /* the partial text */
	char *heap = malloc(n);
	WI_CHECK_ALLOC(heap);
	if (json_dumpb(j, heap, n, flags) != n) {
		OPENSSL_cleanse(heap, n);
		free(heap);
		WI_FAIL(WI_E_INTERNAL, "JSON serialisation changed size");
	}
	*ret_heap = heap;
	*ret_text = heap;
	*ret_len = n;
	return 0;
}

/* Most bodies (a token response, an introspection reply) fit here. */
#define DUMP_STACK_CAP 4096

int wi_json_dump_alloc(const json_t *j, size_t flags, char **ret, size_t *ret_len)
{
	WI_CHECK(j, WI_E_INVAL, "JSON serialisation: no value");
	char *heap = NULL;
	const char *text = NULL;
	int r = fast_dump(j, flags, NULL, 0, &heap, &text, ret_len);
	if (r < 0)
		return r;
	if (r == 0) {
		*ret = heap; /* NUL-terminated: cJSON ends its text with one */
		return 0;
	}
	char buf[DUMP_STACK_CAP];
	size_t n = json_dumpb(j, buf, sizeof(buf), flags);
	WI_CHECK(n > 0, WI_E_NOMEM, "JSON serialisation");
	size_t held = n < sizeof(buf) ? n : sizeof(buf);
	char *out = malloc(n + 1);
	if (!out) {
		OPENSSL_cleanse(buf, held);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	if (n <= sizeof(buf)) {
		memcpy(out, buf, n);
	} else if (json_dumpb(j, out, n, flags) != n) {
		OPENSSL_cleanse(buf, held);
		OPENSSL_cleanse(out, n);
		free(out);
		WI_FAIL(WI_E_INTERNAL, "JSON serialisation changed size");
	}
	OPENSSL_cleanse(buf, held);
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	return 0;
}

json_t *wi_json_secret_string(const char *s, size_t len)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return NULL;
	return json_stringn_nocheck(s, len);
}

void wi_json_secret_release(json_t *s)
{
	if (!s)
		return;
	/* Only the last holder may wipe: another reference would see zeros. */
	if (json_is_string(s) && __atomic_load_n(&s->refcount, __ATOMIC_ACQUIRE) == 1)
		OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
	json_decref(s);
}
