/* core/json.c — strict parsing of untrusted JSON objects. */
#include "core/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

int wi_json_dump_into(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_heap, const char **ret_text,
		      size_t *ret_len)
{
	WI_CHECK(j, WI_E_INVAL, "JSON serialisation: no value");
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
