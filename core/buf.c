/* core/buf.c — bounded buffers. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void wi_buf_init(wi_buf *b, size_t cap, bool secret)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
	b->secret = secret;
}

int wi_buf_append(wi_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	WI_CHECK(n <= b->cap && b->len <= b->cap - n, WI_E_TOO_BIG, "buffer cap %zu", b->cap);
	if (n > b->alloc - b->len) {
		size_t want = b->alloc ? b->alloc : 256;
		while (want - b->len < n)
			want = want > b->cap / 2 ? b->cap : want * 2;
		uint8_t *nd = malloc(want);
		WI_CHECK_ALLOC(nd);
		if (b->len)
			memcpy(nd, b->data, b->len);
		if (b->secret && b->data)
			OPENSSL_cleanse(b->data, b->alloc);
		free(b->data);
		b->data = nd;
		b->alloc = want;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int wi_buf_append_str(wi_buf *b, const char *s)
{
	return wi_buf_append(b, s, strlen(s));
}

void wi_buf_free(wi_buf *b)
{
	if (b->data && b->secret)
		OPENSSL_cleanse(b->data, b->alloc);
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void wi_buf_steal(wi_buf *b, uint8_t **ret_data, size_t *ret_len)
{
	*ret_data = b->data;
	*ret_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

int wi_cursor_take(wi_cursor *c, size_t n, const uint8_t **ret)
{
	WI_CHECK(n <= c->avail, WI_E_PARSE, "need %zu bytes, %zu left", n, c->avail);
	*ret = c->p;
	c->p += n;
	c->avail -= n;
	return 0;
}

void wi_secret_free(void *p, size_t n)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}
