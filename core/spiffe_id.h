/* core/spiffe_id.h — SPIFFE IDs and trust domain names (SPIFFE-ID.md).
 *
 * A wi_spiffe_id is immutable once parsed and always valid:
 *   spiffe://<trust-domain>[/<segment>...]
 * trust domain: 1..255 bytes of [a-z0-9._-] (lowercase only);
 * segments: non-empty, not "." or "..", chars [a-zA-Z0-9._-];
 * no trailing '/', no query, fragment, userinfo, port or percent-encoding;
 * whole ID at most WI_SPIFFE_ID_MAX bytes.  Scheme must be lowercase "spiffe"
 * (go-spiffe and py-spiffe reject other casings). */
#ifndef WI_CORE_SPIFFE_ID_H
#define WI_CORE_SPIFFE_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct wi_spiffe_id wi_spiffe_id;

/* Parses s[0..len).  WI_E_SPIFFE_ID with the violated rule in the detail. */
int wi_spiffe_id_parse(const char *s, size_t len, wi_spiffe_id **ret) WI_WUR;
/* Destroys; accepts NULL; returns NULL. */
wi_spiffe_id *wi_spiffe_id_free(wi_spiffe_id *id);

/* The full ID, NUL-terminated; owned by id. */
const char *wi_spiffe_id_string(const wi_spiffe_id *id);
/* The trust domain name ("example.org"); owned by id. */
const char *wi_spiffe_id_trust_domain(const wi_spiffe_id *id);
/* The path ("/a/b", or "" for a trust-domain ID); owned by id. */
const char *wi_spiffe_id_path(const wi_spiffe_id *id);
/* True when the ID belongs to trust domain `td` (a bare name). */
bool wi_spiffe_id_is_member_of(const wi_spiffe_id *id, const char *td);

/* Validates a whole ID string without allocating.  When `need_path` is true a
 * root ID (no path) is refused, as X509-SVID leaves require. */
int wi_spiffe_id_validate(const char *s, size_t len, bool need_path) WI_WUR;
/* Validates a bare trust domain name ("example.org"). */
int wi_trust_domain_validate(const char *s, size_t len) WI_WUR;
/* Validates one path segment (used by ID templates after substitution). */
int wi_spiffe_id_validate_segment(const char *s, size_t len) WI_WUR;

#endif
