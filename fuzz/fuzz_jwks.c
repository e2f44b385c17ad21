/* Fuzz target: JWK Set parsing must never crash or leak; a set it accepts
 * serialises to a document that parses back to the same set (the
 * serialisation is a fixed point), and every key has a thumbprint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwk.h"
#include "core/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wi_jwks *s = NULL;
	if (wi_jwks_parse((const char *)data, size, 0, &s) != 0) {
		if (s)
			abort(); /* outputs are written only on success */
		return 0;
	}
	if (wi_jwks_count(s) > WI_JWKS_KEYS_MAX || size > WI_JWKS_DOC_MAX)
		abort();
	char *doc = NULL;
	if (wi_jwks_to_json(s, &doc) != 0)
		abort();
	wi_jwks *back = NULL;
	if (wi_jwks_parse(doc, strlen(doc), 0, &back) != 0 || wi_jwks_count(back) != wi_jwks_count(s))
		abort();
	char *doc2 = NULL;
	if (wi_jwks_to_json(back, &doc2) != 0 || strcmp(doc, doc2) != 0)
		abort();
	/* Each key of the re-parsed set: its JWK round-trips, its thumbprint
	 * exists. */
	json_t *j = json_loads(doc, 0, NULL);
	json_t *arr = json_object_get(j, "keys");
	size_t i;
	json_t *k;
	json_array_foreach(arr, i, k) {
		const char *kid = json_string_value(json_object_get(k, "kid"));
		EVP_PKEY *pub = wi_jwks_find(back, kid);
		EVP_PKEY *again = NULL;
		char *tp = NULL;
		if (!pub || wi_jwk_to_pkey(k, &again) != 0 || EVP_PKEY_eq(pub, again) != 1 ||
		    wi_jwk_thumbprint(pub, &tp) != 0 || strlen(tp) != 43)
			abort();
		EVP_PKEY_free(again);
		free(tp);
	}
	json_decref(j);
	free(doc);
	free(doc2);
	wi_jwks_unref(back);
	wi_jwks_unref(s);
	return 0;
}
