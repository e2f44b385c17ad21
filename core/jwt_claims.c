/* core/jwt_claims.c — registered JWT claim checks. */
#include "core/jwt_claims.h"

#include <string.h>

#include "core/limits.h"

/* NumericDate values we accept: within ±2^53 seconds, the doubles that are
 * exact integers, far beyond any real date. */
#define NUMERIC_DATE_ABS_MAX 9007199254740992.0

int wi_jwt_numeric_date(const json_t *claims, const char *name, bool *ret_present, int64_t *ret)
{
	const json_t *v = json_object_get(claims, name);
	*ret_present = v != NULL;
	*ret = 0;
	if (!v)
		return 0;
	WI_CHECK(json_is_number(v), WI_E_INVAL, "%s claim must be a number", name);
	if (json_is_integer(v)) {
		*ret = (int64_t)json_integer_value(v);
		return 0;
	}
	double d = json_real_value(v);
	/* Written so that NaN fails too (no libm: compare, truncate, adjust). */
	WI_CHECK(d >= -NUMERIC_DATE_ABS_MAX && d <= NUMERIC_DATE_ABS_MAX, WI_E_INVAL, "%s claim is out of range",
		 name);
	int64_t i = (int64_t)d; /* toward zero */
	if ((double)i > d)
		i--; /* floor for negative non-integers */
	*ret = i;
	return 0;
}

int wi_jwt_check_audience(const json_t *claims, const char *audience)
{
	/* RFC 7519 §4.1.3: a string or an array of strings; ours must be in it. */
	const json_t *aud = json_object_get(claims, "aud");
	WI_CHECK(aud != NULL, WI_E_INVAL, "aud claim is missing");
	if (json_is_string(aud)) {
		WI_CHECK(strcmp(json_string_value(aud), audience) == 0, WI_E_INVAL, "audience mismatch");
		return 0;
	}
	WI_CHECK(json_is_array(aud), WI_E_INVAL, "aud claim must be a string or an array of strings");
	WI_CHECK(json_array_size(aud) > 0, WI_E_INVAL, "aud claim is empty");
	bool found = false;
	size_t i;
	const json_t *v;
	json_array_foreach(aud, i, v)
	{
		WI_CHECK(json_is_string(v), WI_E_INVAL, "aud claim must be a string or an array of strings");
		if (strcmp(json_string_value(v), audience) == 0)
			found = true;
	}
	WI_CHECK(found, WI_E_INVAL, "audience mismatch");
	return 0;
}

int wi_jwt_check_times(const json_t *claims, time_t now, int64_t *ret_exp)
{
	bool present = false;
	int64_t exp = 0, nbf = 0, iat = 0;
	int64_t t = (int64_t)now;
	WI_TRY(wi_jwt_numeric_date(claims, "exp", &present, &exp));
	WI_CHECK(present, WI_E_INVAL, "exp claim is missing");
	/* RFC 7519 §4.1.4: now MUST be before exp (with a small leeway).
	 * Written as t - leeway < exp so a huge exp cannot overflow. */
	WI_CHECK(t - WI_JWT_LEEWAY_SECONDS < exp, WI_E_EXPIRED, "token has expired");
	WI_TRY(wi_jwt_numeric_date(claims, "nbf", &present, &nbf));
	/* RFC 7519 §4.1.5: not before nbf (with leeway). */
	WI_CHECK(!present || nbf <= t + WI_JWT_LEEWAY_SECONDS, WI_E_INVAL, "token is not yet valid");
	WI_TRY(wi_jwt_numeric_date(claims, "iat", &present, &iat));
	/* An iat in the future is a clock or forgery problem; go-jose refuses it
	 * too ("issued in the future"). */
	WI_CHECK(!present || iat <= t + WI_JWT_LEEWAY_SECONDS, WI_E_INVAL,
		 "token is not yet valid (issued in the future)");
	if (ret_exp)
		*ret_exp = exp;
	return 0;
}

const char *wi_jwt_string_claim(const json_t *claims, const char *name)
{
	const json_t *v = json_object_get(claims, name);
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}
