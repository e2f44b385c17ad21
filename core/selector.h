/* core/selector.h — selectors and selector sets.
 *
 * A selector is "<kind>:<value>" where kind is one of the known two-part
 * kinds (e.g. "unix:uid", "systemd:unit") and value is kind-specific; values
 * may contain ':' (cgroup paths).  A set is sorted and duplicate-free, so two
 * sets compare by content and subset tests are a merge walk.
 *
 * Sets are reference-counted: an attestation result is shared by many calls.
 * A set must not be modified once it has been shared (ref > 1); the writers
 * are the attestor and the config loader, before publication. */
#ifndef WI_CORE_SELECTOR_H
#define WI_CORE_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

/* Known kinds.  `multi` kinds may carry several values in one set. */
#define WI_SELECTOR_KINDS(X)                                                               \
	X(UNIX_UID, "unix:uid", false)                                                     \
	X(UNIX_USER, "unix:user", false)                                                   \
	X(UNIX_GID, "unix:gid", false)                                                     \
	X(UNIX_GROUP, "unix:group", false)                                                 \
	X(UNIX_SUPPLEMENTARY_GID, "unix:supplementary_gid", true)                          \
	X(UNIX_SUPPLEMENTARY_GROUP, "unix:supplementary_group", true)                      \
	X(UNIX_PATH, "unix:path", false)                                                   \
	X(UNIX_SHA256, "unix:sha256", false)                                               \
	X(SYSTEMD_UNIT, "systemd:unit", false)                                             \
	X(CGROUP_PATH, "cgroup:path", false)                                               \
	X(CONTAINER_ID, "container:id", false)

typedef enum wi_selector_kind {
#define WI__SEL_ENUM(name, str, multi) WI_SEL_##name,
	WI_SELECTOR_KINDS(WI__SEL_ENUM)
#undef WI__SEL_ENUM
	WI_SEL__COUNT
} wi_selector_kind;

/* Looks up a kind by name ("unix:uid"); WI_E_SELECTOR if unknown. */
int wi_selector_kind_from_name(const char *name, size_t len, wi_selector_kind *ret) WI_WUR;
const char *wi_selector_kind_name(wi_selector_kind kind);
bool wi_selector_kind_is_multi(wi_selector_kind kind);

/* Checks a value for its kind: uid/gid decimal < 2^32-1, sha256 64 lowercase
 * hex, path/cgroup absolute, container id 12..64 lowercase hex, unit/user/group
 * names printable without '/', all at most WI_SELECTOR_MAX bytes, no control
 * characters. */
int wi_selector_validate(wi_selector_kind kind, const char *value, size_t len) WI_WUR;
/* Splits "unix:uid:1000" into kind and value (pointing inside s) and
 * validates both. */
int wi_selector_parse(const char *s, wi_selector_kind *ret_kind, const char **ret_value) WI_WUR;

typedef struct wi_selector_set wi_selector_set;

int wi_selector_set_new(wi_selector_set **ret) WI_WUR;
/* Drops one reference; frees at zero.  Accepts NULL; returns NULL. */
wi_selector_set *wi_selector_set_unref(wi_selector_set *s);
/* Takes a reference (thread-safe). */
wi_selector_set *wi_selector_set_ref(wi_selector_set *s);

/* Adds kind:value after validating the value; a duplicate is not an error.
 * Fails with WI_E_TOO_BIG past WI_SELECTORS_PER_PROCESS_MAX. */
int wi_selector_set_add(wi_selector_set *s, wi_selector_kind kind, const char *value) WI_WUR;
/* Adds a "kind:value" string. */
int wi_selector_set_add_string(wi_selector_set *s, const char *selector) WI_WUR;

size_t wi_selector_set_count(const wi_selector_set *s);
/* The i-th selector in sort order as "kind:value"; owned by s. */
const char *wi_selector_set_at(const wi_selector_set *s, size_t i);
bool wi_selector_set_contains(const wi_selector_set *s, const char *selector);
/* True when every selector of `sub` is in `super` (an empty sub is a subset). */
bool wi_selector_set_is_subset(const wi_selector_set *sub, const wi_selector_set *super);
/* The value of the first selector of `kind`, and how many the set holds of
 * that kind; NULL and 0 when none. */
const char *wi_selector_set_value(const wi_selector_set *s, wi_selector_kind kind, size_t *ret_count);
/* True when the set holds any selector of `kind`. */
bool wi_selector_set_has_kind(const wi_selector_set *s, wi_selector_kind kind);

static inline void wi_selector_set_unrefp(wi_selector_set **s)
{
	wi_selector_set_unref(*s);
}

#endif
