/* core/selector.c — selector validation and sorted, shared selector sets. */
#include "core/selector.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

static const struct {
	const char *name;
	bool multi;
} kinds[] = {
#define WI__SEL_TAB(name, str, multi) {str, multi},
	WI_SELECTOR_KINDS(WI__SEL_TAB)
#undef WI__SEL_TAB
};

int wi_selector_kind_from_name(const char *name, size_t len, wi_selector_kind *ret)
{
	for (size_t i = 0; i < WI_SEL__COUNT; i++) {
		if (strlen(kinds[i].name) == len && memcmp(kinds[i].name, name, len) == 0) {
			*ret = (wi_selector_kind)i;
			return 0;
		}
	}
	WI_FAIL(WI_E_SELECTOR, "unknown selector kind \"%.*s\"", (int)(len > 64 ? 64 : len), name);
}

const char *wi_selector_kind_name(wi_selector_kind kind)
{
	return (unsigned)kind < WI_SEL__COUNT ? kinds[kind].name : "?";
}

bool wi_selector_kind_is_multi(wi_selector_kind kind)
{
	return (unsigned)kind < WI_SEL__COUNT && kinds[kind].multi;
}

static bool all_digits(const char *v, size_t len)
{
	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	if (len > 1 && v[0] == '0')
		return false;
	/* uid_t/gid_t: (uid_t)-1 is "no id" and never a real one. */
	unsigned long long n = strtoull(v, NULL, 10);
	return n < 4294967295ULL;
}

static bool lower_hex(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	return true;
}

int wi_selector_validate(wi_selector_kind kind, const char *v, size_t len)
{
	const char *kn = wi_selector_kind_name(kind);
	WI_CHECK((unsigned)kind < WI_SEL__COUNT, WI_E_SELECTOR, "unknown selector kind");
	WI_CHECK(len > 0, WI_E_SELECTOR, "%s: empty value", kn);
	WI_CHECK(len <= WI_SELECTOR_MAX, WI_E_SELECTOR, "%s: value longer than %d bytes", kn,
		 WI_SELECTOR_MAX);
	for (size_t i = 0; i < len; i++)
		WI_CHECK((unsigned char)v[i] >= 0x20 && v[i] != 0x7f, WI_E_SELECTOR,
			 "%s: value has a control character", kn);
	switch (kind) {
	case WI_SEL_UNIX_UID:
	case WI_SEL_UNIX_GID:
	case WI_SEL_UNIX_SUPPLEMENTARY_GID:
		WI_CHECK(all_digits(v, len), WI_E_SELECTOR, "%s: value must be a decimal id", kn);
		return 0;
	case WI_SEL_UNIX_SHA256:
		WI_CHECK(len == 64 && lower_hex(v, len), WI_E_SELECTOR,
			 "%s: value must be 64 lowercase hex digits", kn);
		return 0;
	case WI_SEL_UNIX_PATH:
	case WI_SEL_CGROUP_PATH:
		WI_CHECK(v[0] == '/', WI_E_SELECTOR, "%s: value must be an absolute path", kn);
		return 0;
	case WI_SEL_CONTAINER_ID:
		WI_CHECK(len >= 12 && len <= 64 && lower_hex(v, len), WI_E_SELECTOR,
			 "%s: value must be 12 to 64 lowercase hex digits", kn);
		return 0;
	case WI_SEL_UNIX_USER:
	case WI_SEL_UNIX_GROUP:
	case WI_SEL_UNIX_SUPPLEMENTARY_GROUP:
	case WI_SEL_SYSTEMD_UNIT:
		WI_CHECK(memchr(v, '/', len) == NULL && memchr(v, ' ', len) == NULL, WI_E_SELECTOR,
			 "%s: value must not contain '/' or spaces", kn);
		return 0;
	case WI_SEL__COUNT:
		break;
	}
	WI_FAIL(WI_E_SELECTOR, "unknown selector kind");
}

int wi_selector_parse(const char *s, wi_selector_kind *ret_kind, const char **ret_value)
{
	WI_CHECK(s != NULL, WI_E_SELECTOR, "selector is missing");
	const char *c1 = strchr(s, ':');
	WI_CHECK(c1, WI_E_SELECTOR, "selector must be \"type:name:value\"");
	const char *c2 = strchr(c1 + 1, ':');
	WI_CHECK(c2, WI_E_SELECTOR, "selector must be \"type:name:value\"");
	wi_selector_kind kind = WI_SEL__COUNT;
	WI_TRY(wi_selector_kind_from_name(s, (size_t)(c2 - s), &kind));
	WI_TRY(wi_selector_validate(kind, c2 + 1, strlen(c2 + 1)));
	*ret_kind = kind;
	*ret_value = c2 + 1;
	return 0;
}

/* ---- sets ------------------------------------------------------------- */

struct wi_selector_set {
	atomic_int ref;
	size_t n, alloc;
	char **items; /* sorted by strcmp, unique */
	unsigned kind_mask;
};

int wi_selector_set_new(wi_selector_set **ret)
{
	wi_selector_set *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	atomic_init(&s->ref, 1);
	*ret = s;
	return 0;
}

wi_selector_set *wi_selector_set_ref(wi_selector_set *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->ref, 1, memory_order_relaxed);
	return s;
}

wi_selector_set *wi_selector_set_unref(wi_selector_set *s)
{
	if (!s)
		return NULL;
	if (atomic_fetch_sub_explicit(&s->ref, 1, memory_order_acq_rel) != 1)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		free(s->items[i]);
	free(s->items);
	free(s);
	return NULL;
}

/* Binary search; returns true when found, *at = insertion point. */
static bool find(const wi_selector_set *s, const char *key, size_t *at)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->items[mid], key);
		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return false;
}

static int insert_owned(wi_selector_set *s, char *str, wi_selector_kind kind)
{
	size_t at;
	if (find(s, str, &at)) {
		free(str);
		return 0;
	}
	if (s->n >= WI_SELECTORS_PER_PROCESS_MAX) {
		free(str);
		WI_FAIL(WI_E_TOO_BIG, "more than %d selectors", WI_SELECTORS_PER_PROCESS_MAX);
	}
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 16;
		char **ni = realloc(s->items, na * sizeof(*ni));
		if (!ni) {
			free(str);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
		s->items = ni;
		s->alloc = na;
	}
	memmove(s->items + at + 1, s->items + at, (s->n - at) * sizeof(*s->items));
	s->items[at] = str;
	s->n++;
	s->kind_mask |= 1u << kind;
	return 0;
}

int wi_selector_set_add(wi_selector_set *s, wi_selector_kind kind, const char *value)
{
	size_t vlen = strlen(value);
	WI_TRY(wi_selector_validate(kind, value, vlen));
	const char *kn = wi_selector_kind_name(kind);
	size_t klen = strlen(kn);
	char *str = malloc(klen + 1 + vlen + 1);
	WI_CHECK_ALLOC(str);
	memcpy(str, kn, klen);
	str[klen] = ':';
	memcpy(str + klen + 1, value, vlen + 1);
	return insert_owned(s, str, kind);
}

int wi_selector_set_add_string(wi_selector_set *s, const char *selector)
{
	wi_selector_kind kind;
	const char *value;
	WI_TRY(wi_selector_parse(selector, &kind, &value));
	return wi_selector_set_add(s, kind, value);
}

size_t wi_selector_set_count(const wi_selector_set *s)
{
	return s ? s->n : 0;
}

const char *wi_selector_set_at(const wi_selector_set *s, size_t i)
{
	return i < s->n ? s->items[i] : NULL;
}

bool wi_selector_set_contains(const wi_selector_set *s, const char *selector)
{
	size_t at;
	return s && find(s, selector, &at);
}

bool wi_selector_set_is_subset(const wi_selector_set *sub, const wi_selector_set *super)
{
	if (!sub || sub->n == 0)
		return true;
	if (!super || sub->n > super->n || (sub->kind_mask & ~super->kind_mask))
		return false;
	size_t j = 0;
	for (size_t i = 0; i < sub->n; i++) {
		int c = 1;
		while (j < super->n && (c = strcmp(super->items[j], sub->items[i])) < 0)
			j++;
		if (j == super->n || c != 0)
			return false;
		j++;
	}
	return true;
}

const char *wi_selector_set_value(const wi_selector_set *s, wi_selector_kind kind, size_t *ret_count)
{
	const char *kn = wi_selector_kind_name(kind);
	size_t klen = strlen(kn);
	const char *first = NULL;
	size_t count = 0;
	if (s && (s->kind_mask & (1u << kind))) {
		for (size_t i = 0; i < s->n; i++) {
			if (strncmp(s->items[i], kn, klen) == 0 && s->items[i][klen] == ':') {
				if (!first)
					first = s->items[i] + klen + 1;
				count++;
			}
		}
	}
	if (ret_count)
		*ret_count = count;
	return first;
}

bool wi_selector_set_has_kind(const wi_selector_set *s, wi_selector_kind kind)
{
	return s && (s->kind_mask & (1u << kind));
}
