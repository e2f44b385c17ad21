/* txn-token/form.h — application/x-www-form-urlencoded bodies (RFC 6749
 * appendix B, the token endpoint's encoding), parsed strictly and bounded:
 * each parameter at most once (RFC 6749 §3.2: "MUST NOT be included more
 * than once"), at most `max_fields` fields, percent-encoding well-formed,
 * '+' is a space, names and values valid UTF-8 without NUL. */
#ifndef WI_TXN_TOKEN_FORM_H
#define WI_TXN_TOKEN_FORM_H

#include <stddef.h>

#include "core/error.h"

typedef struct wi_form wi_form;

/* WI_E_PARSE (bad encoding, invalid UTF-8, NUL), WI_E_INVAL (repeated
 * parameter: the detail names it), WI_E_TOO_BIG (too many fields).  Only
 * `audience` and `resource` may repeat (RFC 8693 §2.1, RFC 8707 §2): the
 * caller decides what several mean (wi_form_count_of). */
int wi_form_parse(const char *body, size_t len, size_t max_fields, wi_form **ret) WI_WUR;
/* The decoded value, or NULL when absent (an empty value is ""). */
const char *wi_form_get(const wi_form *f, const char *name);
size_t wi_form_count(const wi_form *f);
/* How many times `name` was given (0 when absent). */
size_t wi_form_count_of(const wi_form *f, const char *name);
wi_form *wi_form_free(wi_form *f);

#endif
