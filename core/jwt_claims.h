/* core/jwt_claims.h — the registered-claim checks every JWT profile shares
 * (RFC 7519 §4.1): JWT-SVIDs, users' access and ID tokens, Transaction
 * Tokens.  Each failure has its own short reason in the error detail. */
#ifndef WI_CORE_JWT_CLAIMS_H
#define WI_CORE_JWT_CLAIMS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/error.h"

/* A NumericDate claim, floored; *ret_present false (and *ret 0) if absent.
 * WI_E_INVAL if not a number or out of range. */
int wi_jwt_numeric_date(const json_t *claims, const char *name, bool *ret_present, int64_t *ret) WI_WUR;
/* aud is a string or a non-empty array of strings containing `audience`. */
int wi_jwt_check_audience(const json_t *claims, const char *audience) WI_WUR;
/* exp present and after now - leeway (WI_E_EXPIRED "token has expired"); nbf
 * and iat, when present, not after now + leeway.  *ret_exp gets exp. */
int wi_jwt_check_times(const json_t *claims, time_t now, int64_t *ret_exp) WI_WUR;
/* A string claim (NUL-free), or NULL when absent or not a string. */
const char *wi_jwt_string_claim(const json_t *claims, const char *name);

#endif
