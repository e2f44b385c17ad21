/* core/spiffe_id.c — SPIFFE ID parsing (SPIFFE-ID.md §2). */
#include "core/spiffe_id.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

struct wi_spiffe_id {
	char *str;      /* "spiffe://td/path" */
	char *td;       /* "td" */
	size_t path_at; /* offset of the path within str */
};

static const char scheme[] = "spiffe://";
#define SCHEME_LEN (sizeof(scheme) - 1)

static bool td_char(char c)
{
	/* SPIFFE-ID §2.1: trust domain chars are lowercase letters, digits, '.', '-', '_' */
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
	/* SPIFFE-ID §2.2: path segment chars are letters, digits, '.', '-', '_' */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '-' || c == '_';
}

int wi_trust_domain_validate(const char *s, size_t len)
{
	WI_CHECK(len > 0, WI_E_SPIFFE_ID, "trust domain is empty");
	WI_CHECK(len <= WI_TRUST_DOMAIN_MAX, WI_E_SPIFFE_ID, "trust domain longer than %d bytes",
		 WI_TRUST_DOMAIN_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (td_char(c))
			continue;
		if (c >= 'A' && c <= 'Z')
			WI_FAIL(WI_E_SPIFFE_ID, "trust domain must be lowercase");
		if (c == ':')
			WI_FAIL(WI_E_SPIFFE_ID, "trust domain must not have a port");
		if (c == '@')
			WI_FAIL(WI_E_SPIFFE_ID, "trust domain must not have userinfo");
		if (c == '%')
			WI_FAIL(WI_E_SPIFFE_ID, "percent-encoding is not allowed");
		WI_FAIL(WI_E_SPIFFE_ID, "trust domain has an invalid character (0x%02x)", (unsigned char)c);
	}
	return 0;
}

int wi_spiffe_id_validate_segment(const char *s, size_t len)
{
	WI_CHECK(len > 0, WI_E_SPIFFE_ID, "path has an empty segment");
	WI_CHECK(!(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.'), WI_E_SPIFFE_ID,
		 "path segments '.' and '..' are not allowed");
	for (size_t i = 0; i < len; i++) {
		if (path_char(s[i]))
			continue;
		if (s[i] == '%')
			WI_FAIL(WI_E_SPIFFE_ID, "percent-encoding is not allowed");
		WI_FAIL(WI_E_SPIFFE_ID, "path has an invalid character (0x%02x)", (unsigned char)s[i]);
	}
	return 0;
}

/* Splits and checks; on success *ret_td_len is the trust domain length. */
static int validate(const char *s, size_t len, bool need_path, size_t *ret_td_len)
{
	WI_CHECK(s != NULL && len > 0, WI_E_SPIFFE_ID, "ID is empty");
	WI_CHECK(len <= WI_SPIFFE_ID_MAX, WI_E_SPIFFE_ID, "ID longer than %d bytes", WI_SPIFFE_ID_MAX);
	WI_CHECK(memchr(s, '\0', len) == NULL, WI_E_SPIFFE_ID, "ID contains a NUL byte");
	WI_CHECK(len >= SCHEME_LEN && memcmp(s, scheme, SCHEME_LEN) == 0, WI_E_SPIFFE_ID,
		 "scheme must be \"spiffe://\"");
	const char *td = s + SCHEME_LEN;
	size_t rest = len - SCHEME_LEN;
	const char *slash = memchr(td, '/', rest);
	size_t td_len = slash ? (size_t)(slash - td) : rest;
	for (size_t i = 0; i < rest; i++) {
		WI_CHECK(td[i] != '?', WI_E_SPIFFE_ID, "query is not allowed");
		WI_CHECK(td[i] != '#', WI_E_SPIFFE_ID, "fragment is not allowed");
	}
	WI_TRY(wi_trust_domain_validate(td, td_len));
	if (!slash) {
		WI_CHECK(!need_path, WI_E_SPIFFE_ID, "ID must have a path");
		*ret_td_len = td_len;
		return 0;
	}
	const char *p = slash;
	const char *end = s + len;
	WI_CHECK(p + 1 < end, WI_E_SPIFFE_ID, "path must not end with '/'");
	while (p < end) {
		/* p points at a '/' */
		const char *seg = p + 1;
		const char *next = memchr(seg, '/', (size_t)(end - seg));
		size_t seg_len = next ? (size_t)(next - seg) : (size_t)(end - seg);
		if (!next && seg_len == 0)
			WI_FAIL(WI_E_SPIFFE_ID, "path must not end with '/'");
		WI_TRY(wi_spiffe_id_validate_segment(seg, seg_len));
		p = next ? next : end;
	}
	*ret_td_len = td_len;
	return 0;
}

int wi_spiffe_id_validate(const char *s, size_t len, bool need_path)
{
	size_t td_len;
	return validate(s, len, need_path, &td_len);
}

int wi_spiffe_id_parse(const char *s, size_t len, wi_spiffe_id **ret)
{
	size_t td_len;
	WI_TRY(validate(s, len, false, &td_len));
	wi_spiffe_id *id = calloc(1, sizeof(*id));
	WI_CHECK_ALLOC(id);
	id->str = strndup(s, len);
	id->td = strndup(s + SCHEME_LEN, td_len);
	if (!id->str || !id->td) {
		wi_spiffe_id_free(id);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	id->path_at = SCHEME_LEN + td_len;
	*ret = id;
	return 0;
}

wi_spiffe_id *wi_spiffe_id_free(wi_spiffe_id *id)
{
	if (!id)
		return NULL;
	free(id->str);
	free(id->td);
	free(id);
	return NULL;
}

const char *wi_spiffe_id_string(const wi_spiffe_id *id)
{
	return id->str;
}

const char *wi_spiffe_id_trust_domain(const wi_spiffe_id *id)
{
	return id->td;
}

const char *wi_spiffe_id_path(const wi_spiffe_id *id)
{
	return id->str + id->path_at;
}

bool wi_spiffe_id_is_member_of(const wi_spiffe_id *id, const char *td)
{
	return td && strcmp(id->td, td) == 0;
}
