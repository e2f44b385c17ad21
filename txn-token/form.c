/* txn-token/form.c — strict application/x-www-form-urlencoded parsing.
 *
 * Grammar accepted (RFC 6749 appendix B, WHATWG URL "urlencoded parser"):
 *   body  = [ field *( "&" field ) ]
 *   field = name [ "=" value ]
 * - An empty piece between two '&' (or a leading/trailing '&') is skipped, as
 *   the WHATWG parser does; it is not a field.
 * - A piece without '=' is a name with the empty value ("a" == "a=").
 * - The value runs to the next '&': a further '=' belongs to the value.
 * - An empty name ("=x") is refused: no parameter of ours has one.
 * - '+' is a space; '%' must be followed by two hex digits (libh2o's
 *   h2o_hex_decode decodes and checks each pair); the decoded bytes
 *   must be valid UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF)
 *   without NUL.
 * Values carry tokens: every copy we make of one is wiped when freed, and no
 * error detail ever quotes a value (names only, sanitised and shortened). */
#include "txn-token/form.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <h2o/string_.h>
#include <openssl/crypto.h>

#include "core/cleanup.h"

/* How much of a parameter name an error detail quotes. */
#define NAME_IN_DETAIL_MAX 64

typedef struct field {
	char *name;  /* NUL-free, valid UTF-8 */
	char *value; /* wiped when freed */
	size_t value_len;
} field;

struct wi_form {
	size_t n;
	field *fields; /* sorted by name (strcmp), names unique */
};

static void field_clear(field *f)
{
	free(f->name);
	if (f->value) {
		OPENSSL_cleanse(f->value, f->value_len);
		free(f->value);
	}
	f->name = f->value = NULL;
}

wi_form *wi_form_free(wi_form *f)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		field_clear(&f->fields[i]);
	free(f->fields);
	free(f);
	return NULL;
}

static void wi_form_freep(wi_form **f)
{
	wi_form_free(*f);
}

/* A printable, bounded copy of a name for an error detail (the detail may be
 * logged or echoed to the client in error_description). */
static const char *name_for_detail(const char *name, char buf[static NAME_IN_DETAIL_MAX + 4])
{
	size_t i = 0;
	for (; name[i] && i < NAME_IN_DETAIL_MAX; i++) {
		unsigned char c = (unsigned char)name[i];
		buf[i] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
	}
	if (name[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* RFC 3629 §4 UTF8-octets: shortest form only, no surrogates, at most U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* UTF-16 surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* beyond U+10FFFF */
		} else {
			return false; /* continuation byte, 0xc0/0xc1, 0xf5.. */
		}
		if (n > len - i - 1)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

/* Decodes one name or value.  `what` and `name` only feed the error detail. */
static int decode(const char *s, size_t len, const char *what, const char *name, char **ret,
		  size_t *ret_len)
{
	char nbuf[NAME_IN_DETAIL_MAX + 4];
	/* Decoded is never longer than encoded; +1 for the NUL. */
	char *out = malloc(len + 1);
	WI_CHECK_ALLOC(out);
	size_t out_len = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[out_len++] = ' '; /* RFC 6749 appendix B; "%2B" stays a '+' */
		} else if (s[i] != '%') {
			out[out_len++] = s[i];
		} else if (2 > len - i - 1 || h2o_hex_decode(out + out_len, s + i + 1, 2) != 0) {
			/* Strict: exactly two hex digits follow every '%'. */
			OPENSSL_cleanse(out, out_len);
			free(out);
			if (name)
				WI_FAIL(WI_E_PARSE, "bad percent-encoding in the %s of \"%s\"", what,
					name_for_detail(name, nbuf));
			WI_FAIL(WI_E_PARSE, "bad percent-encoding in a parameter %s", what);
		} else {
			out_len++;
			i += 2;
		}
	}
	out[out_len] = '\0';

	const char *why = NULL;
	if (memchr(out, '\0', out_len))
		why = "NUL";
	else if (!utf8_valid((const unsigned char *)out, out_len))
		why = "invalid UTF-8";
	if (why) {
		OPENSSL_cleanse(out, out_len);
		free(out);
		if (name)
			WI_FAIL(WI_E_PARSE, "%s in the %s of \"%s\"", why, what, name_for_detail(name, nbuf));
		WI_FAIL(WI_E_PARSE, "%s in a parameter %s", why, what);
	}
	*ret = out;
	*ret_len = out_len;
	return 0;
}

static int cmp_field(const void *a, const void *b)
{
	return strcmp(((const field *)a)->name, ((const field *)b)->name);
}

int wi_form_parse(const char *body, size_t len, size_t max_fields, wi_form **ret)
{
	WI_CHECK(body || len == 0, WI_E_INVAL, "form body missing");

	/* Count first so that a flood of fields costs one linear scan. */
	size_t count = 0;
	for (size_t i = 0; i < len;) {
		const char *amp = memchr(body + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - body) : len;
		if (end > i)
			count++;
		i = end + 1;
	}
	WI_CHECK(count <= max_fields, WI_E_TOO_BIG, "form has more than %zu fields", max_fields);

	_cleanup_(wi_form_freep) wi_form *f = calloc(1, sizeof(*f));
	WI_CHECK_ALLOC(f);
	if (count) {
		f->fields = calloc(count, sizeof(*f->fields));
		WI_CHECK_ALLOC(f->fields);
	}

	for (size_t i = 0; i < len;) {
		const char *amp = memchr(body + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - body) : len;
		const char *piece = body + i;
		size_t piece_len = end - i;
		i = end + 1;
		if (piece_len == 0)
			continue;

		const char *eq = memchr(piece, '=', piece_len);
		size_t name_len = eq ? (size_t)(eq - piece) : piece_len;
		WI_CHECK(name_len > 0, WI_E_PARSE, "form field with an empty name");

		field *fl = &f->fields[f->n];
		size_t dummy;
		WI_TRY(decode(piece, name_len, "name", NULL, &fl->name, &dummy));
		f->n++; /* owned by f from here, freed with it on any later failure */
		if (eq)
			WI_TRY(decode(eq + 1, piece_len - name_len - 1, "value", fl->name, &fl->value,
				      &fl->value_len));
		else /* "a" alone: the name with the empty value */
			WI_TRY(decode("", 0, "value", fl->name, &fl->value, &fl->value_len));
	}

	/* RFC 6749 §3.2: "Request and response parameters MUST NOT be included
	 * more than once", save those that RFC 8693 §2.1 and RFC 8707 §2 let
	 * repeat.  Sorting makes the check O(n log n) and lookups a binary
	 * search. */
	if (f->n > 1)
		qsort(f->fields, f->n, sizeof(*f->fields), cmp_field);
	for (size_t k = 1; k < f->n; k++) {
		if (strcmp(f->fields[k - 1].name, f->fields[k].name) == 0 && strcmp(f->fields[k].name, "audience") != 0 &&
		    strcmp(f->fields[k].name, "resource") != 0) {
			char nbuf[NAME_IN_DETAIL_MAX + 4];
			WI_FAIL(WI_E_INVAL, "parameter \"%s\" included more than once",
				name_for_detail(f->fields[k].name, nbuf));
		}
	}

	*ret = TAKE_PTR(f);
	return 0;
}

const char *wi_form_get(const wi_form *f, const char *name)
{
	if (!f || !name || f->n == 0)
		return NULL;
	field key = {.name = (char *)name};
	const field *hit = bsearch(&key, f->fields, f->n, sizeof(*f->fields), cmp_field);
	return hit ? hit->value : NULL;
}

size_t wi_form_count(const wi_form *f)
{
	return f ? f->n : 0;
}

size_t wi_form_count_of(const wi_form *f, const char *name)
{
	if (!f || !name || f->n == 0)
		return 0;
	field key = {.name = (char *)name};
	const field *hit = bsearch(&key, f->fields, f->n, sizeof(*f->fields), cmp_field);
	if (!hit)
		return 0;
	/* equal names sit together in the sorted array */
	const field *lo = hit, *hi = hit;
	while (lo > f->fields && strcmp(lo[-1].name, name) == 0)
		lo--;
	while (hi + 1 < f->fields + f->n && strcmp(hi[1].name, name) == 0)
		hi++;
	return (size_t)(hi - lo) + 1;
}
