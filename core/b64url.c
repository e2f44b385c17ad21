/* core/b64url.c — strict base64url without padding (RFC 7515 §2, RFC 4648 §5).
 *
 * The base64 itself is OpenSSL's (EVP_EncodeBlock / EVP_DecodeBlock); this
 * file only translates the alphabet and the padding around it, and does the
 * strictness checks OpenSSL's block decoder does not (it skips whitespace and
 * ignores the unused bits of the last quantum). */
#include "core/b64url.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/buf.h"

/* Large enough for any JOSE object we handle, small enough that every length
 * computation below stays inside an int for OpenSSL's block API. */
#define B64_INPUT_MAX ((size_t)INT_MAX / 4 * 3 - 3)

int wi_b64url_encode_into(const uint8_t *in, size_t len, char *out, size_t cap, size_t *ret_len)
{
	WI_CHECK(out != NULL && ret_len != NULL && (in != NULL || len == 0), WI_E_INVAL,
		 "base64url: NULL argument");
	WI_CHECK(len <= B64_INPUT_MAX, WI_E_TOO_BIG, "base64url: %zu bytes to encode", len);
	WI_CHECK(WI_B64URL_ENCODE_CAP(len) <= cap, WI_E_TOO_BIG, "base64url: %zu bytes do not fit %zu", len, cap);
	int n = len ? EVP_EncodeBlock((unsigned char *)out, in, (int)len) : 0;
	/* RFC 4648 §5: '+' → '-', '/' → '_'; RFC 7515 §2: padding omitted. */
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		char c = out[i];
		if (c == '=')
			break;
		out[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[o] = '\0';
	*ret_len = o;
	return 0;
}

int wi_b64url_encode(const uint8_t *in, size_t len, char **ret, size_t *ret_len)
{
	WI_CHECK(ret != NULL && ret_len != NULL && (in != NULL || len == 0), WI_E_INVAL,
		 "base64url: NULL argument");
	WI_CHECK(len <= B64_INPUT_MAX, WI_E_TOO_BIG, "base64url: %zu bytes to encode", len);
	size_t cap = WI_B64URL_ENCODE_CAP(len);
	char *out = malloc(cap);
	WI_CHECK_ALLOC(out);
	size_t n = 0;
	int r = wi_b64url_encode_into(in, len, out, cap, &n);
	if (r < 0) {
		free(out);
		return r;
	}
	*ret = out;
	*ret_len = n;
	return 0;
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int wi_b64url_decode(const char *in, size_t len, size_t max_out, uint8_t **ret, size_t *ret_len)
{
	WI_CHECK(ret != NULL && ret_len != NULL && (in != NULL || len == 0), WI_E_INVAL,
		 "base64url: NULL argument");
	/* A lone trailing character carries only 6 bits: no byte string encodes
	 * to it (RFC 4648 §4). */
	size_t rem = len % 4;
	WI_CHECK(rem != 1, WI_E_PARSE, "base64url: impossible length %zu", len);
	size_t out_len = len / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
	WI_CHECK(out_len <= max_out, WI_E_TOO_BIG, "base64url: decodes to %zu bytes, limit %zu",
		 out_len, max_out);
	WI_CHECK(len <= B64_INPUT_MAX, WI_E_TOO_BIG, "base64url: %zu characters to decode", len);

	/* RFC 7515 §2: the URL-safe alphabet without '=' padding; no whitespace
	 * or other characters are allowed anywhere. */
	for (size_t i = 0; i < len; i++)
		WI_CHECK(b64url_value((unsigned char)in[i]) >= 0, WI_E_PARSE,
			 "base64url: invalid character 0x%02x at offset %zu", (unsigned char)in[i], i);
	/* RFC 4648 §3.5: the unused low bits of the last character must be zero,
	 * so one byte string has exactly one accepted encoding. */
	if (rem == 2)
		WI_CHECK((b64url_value((unsigned char)in[len - 1]) & 0x0f) == 0, WI_E_PARSE,
			 "base64url: non-zero trailing bits");
	if (rem == 3)
		WI_CHECK((b64url_value((unsigned char)in[len - 1]) & 0x03) == 0, WI_E_PARSE,
			 "base64url: non-zero trailing bits");

	/* Standard alphabet, padded, for OpenSSL. */
	size_t padded = len + (rem ? 4 - rem : 0);
	char *tmp = malloc(padded + 1);
	WI_CHECK_ALLOC(tmp);
	for (size_t i = 0; i < len; i++)
		tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	for (size_t i = len; i < padded; i++)
		tmp[i] = '=';
	tmp[padded] = '\0';
	/* EVP_DecodeBlock writes 3 bytes per quantum, padding included. */
	uint8_t *out = malloc(padded / 4 * 3 + 1);
	if (!out) {
		wi_secret_free(tmp, padded + 1);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	int n = padded ? EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)padded) : 0;
	wi_secret_free(tmp, padded + 1);
	if (n < 0 || (size_t)n != padded / 4 * 3) {
		wi_secret_free(out, padded / 4 * 3 + 1);
		WI_FAIL(WI_E_PARSE, "base64url: decoder refused the input");
	}
	/* Bytes past out_len decoded from the padding; clear them. */
	OPENSSL_cleanse(out + out_len, padded / 4 * 3 + 1 - out_len);
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return 0;
}
