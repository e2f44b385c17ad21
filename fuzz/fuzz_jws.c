/* Fuzz target: JWS compact verification and the JWT-SVID profile must never
 * crash or leak on any input; what they accept must be internally
 * consistent; and base64url decoding must be canonical (what decodes
 * re-encodes to the same text, so one byte string has one encoding).
 *
 * The key set is fixed (public keys only; the corpus holds tokens signed by
 * the matching private keys, which are not kept), so replays are
 * deterministic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/b64url.h"
#include "core/jwk.h"
#include "core/jws.h"
#include "core/jwt_svid.h"

/* kids: ec (P-256), rsa (2048), ed (Ed25519), p384 */
static const char keys_doc[] =
	"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":\"AsQACZ5o3FCWXu15Prujdju_hnI_h"
	"m7ZOK5n8rmuqrg\",\"y\":\"ziH0WGn0I1ij1KHoR95v-9T7MgYhPbISTjNDrXBcI_Y\"},{\"kty\":\"RSA\","
	"\"kid\":\"rsa\",\"n\":\"0A7m0x98oNm415GXft58uE2mbdQzdY4rf8gHXDZJQsHW3kq4fZ_wfed7smhhUOA"
	"3lxddW9t_F0x16fwS9wjtw2s1ced0VE6kS780pyOFShsTLAfsqZhJ20bcHR7JKyGjEdH6eAxjP7cbcy1"
	"Ij91W5pZOiDO9TyvY5S8LbCW4Yt_GYKSjBKWTn2P5LAHPaet4WUBWHlS3AOqI5T1iCHIrXnlU1AWJk3q"
	"eeKmj-zqZ5FuxQjJAVGB2crsQ39IWuOM-W7wXgJyb7eGkYXvR64tGEoDDm0ETMnGVNY4vjRZWzzzD9Xr"
	"uh-_IFlzTzJEuDQzCEkH4XCavFTLBfuKii-d2pw\",\"e\":\"AQAB\"},{\"kty\":\"OKP\",\"kid\":\"ed\",\"cr"
	"v\":\"Ed25519\",\"x\":\"lNJjduPOHFWqErCgwPSd4ygYeUi-PNgDk14tyEF1lV0\"},{\"kty\":\"EC\",\"kid"
	"\":\"p384\",\"crv\":\"P-384\",\"x\":\"TAN9-lPHYa6Ru__r7Ks3uyCM1u1X94ISSOS0lYqz7zlFTOdTA77Z"
	"IXVBvZkMl4rD\",\"y\":\"2tv6kyEhuyngLg-l3vMEpKPzCZI0uaw-NgM2ZixmCNMsVkPrKO1HqPEqlRVwP"
	"A8q\"}]}";

/* The corpus tokens were minted at this time with a 24 h lifetime. */
#define FUZZ_NOW ((time_t)1700000000)

static wi_jwks *keys(void)
{
	static wi_jwks *set;
	if (!set && wi_jwks_parse(keys_doc, sizeof(keys_doc) - 1, 0, &set) != 0)
		abort();
	return set;
}

static void check_b64url(const uint8_t *data, size_t size)
{
	uint8_t *dec = NULL;
	size_t dec_len = 0;
	if (wi_b64url_decode((const char *)data, size, size, &dec, &dec_len) != 0)
		return;
	char *enc = NULL;
	size_t enc_len = 0;
	if (wi_b64url_encode(dec, dec_len, &enc, &enc_len) != 0)
		abort();
	if (enc_len != size || memcmp(enc, data, size) != 0)
		abort(); /* strictness: exactly one accepted encoding */
	free(enc);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_b64url(data, size);

	json_t *h = NULL, *c = NULL;
	wi_jws_verify_opts all = {.allowed_algs = WI_JWS_SPIFFE_ALGS | WI_JWS_EDDSA,
				  .max_token_len = 64 * 1024};
	if (wi_jws_verify((const char *)data, size, keys(), &all, &h, &c) == 0) {
		const char *kid = json_string_value(json_object_get(h, "kid"));
		if (!json_is_object(h) || !json_is_object(c) || !kid || !wi_jwks_find(keys(), kid) ||
		    !json_is_string(json_object_get(h, "alg")) || json_object_get(h, "jku") ||
		    json_object_get(h, "crit"))
			abort();
		json_decref(h);
		json_decref(c);
	} else if (h || c) {
		abort(); /* outputs are written only on success */
	}

	char *id = NULL;
	if (wi_jwt_svid_validate((const char *)data, size, keys(), "example.org", "svc", FUZZ_NOW, &id,
				 &c) == 0) {
		if (strncmp(id, "spiffe://example.org", 20) != 0 || (id[20] != '\0' && id[20] != '/') ||
		    size > 16 * 1024 || !json_is_object(c))
			abort();
		free(id);
		json_decref(c);
	}
	return 0;
}
