/* core/b64url.h — base64url without padding (RFC 7515 §2, RFC 4648 §5),
 * strict: decoding refuses '=', characters outside the URL-safe alphabet,
 * whitespace, impossible lengths (len % 4 == 1) and non-zero trailing bits, so
 * that one byte string has exactly one accepted encoding. */
#ifndef WI_CORE_B64URL_H
#define WI_CORE_B64URL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Encodes; *ret is NUL-terminated and malloc'd. */
int wi_b64url_encode(const uint8_t *in, size_t len, char **ret, size_t *ret_len) WI_WUR;
/* The buffer wi_b64url_encode_into needs for `len` bytes: the padded
 * encoding plus a NUL (the result itself is shorter by the padding). */
#define WI_B64URL_ENCODE_CAP(len) (4 * (((size_t)(len) + 2) / 3) + 1)
/* Encodes into `out` (cap >= WI_B64URL_ENCODE_CAP(len), else WI_E_TOO_BIG
 * and nothing written), NUL-terminated; *ret_len is the length without NUL. */
int wi_b64url_encode_into(const uint8_t *in, size_t len, char *out, size_t cap, size_t *ret_len) WI_WUR;
/* Decodes at most `max_out` bytes (WI_E_TOO_BIG beyond); WI_E_PARSE when
 * malformed.  *ret is malloc'd (one spare NUL byte after the data). */
int wi_b64url_decode(const char *in, size_t len, size_t max_out, uint8_t **ret, size_t *ret_len) WI_WUR;

#endif
