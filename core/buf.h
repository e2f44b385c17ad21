/* core/buf.h — bounded byte buffers and read cursors (STYLE §9).
 *
 * wi_buf grows up to a cap fixed at init; appending past it fails with
 * WI_E_TOO_BIG and leaves the buffer as it was.  A buffer marked secret is
 * wiped (OPENSSL_cleanse) on every reallocation and on free. */
#ifndef WI_CORE_BUF_H
#define WI_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct wi_buf {
	uint8_t *data;
	size_t len;
	size_t alloc;
	size_t cap;
	bool secret;
} wi_buf;

/* Initialises an empty buffer that never grows past `cap` bytes. */
void wi_buf_init(wi_buf *b, size_t cap, bool secret);
/* Appends n bytes; WI_E_TOO_BIG past the cap, WI_E_NOMEM on allocation. */
int wi_buf_append(wi_buf *b, const void *p, size_t n) WI_WUR;
/* Appends a NUL-free C string (without its NUL). */
int wi_buf_append_str(wi_buf *b, const char *s) WI_WUR;
/* Releases the storage (wiping it first when secret); the buffer is empty and
 * reusable afterwards.  Accepts a zeroed or already-freed buffer. */
void wi_buf_free(wi_buf *b);
/* Moves the content out: *ret_data owns it (caller frees; wipe if secret). */
void wi_buf_steal(wi_buf *b, uint8_t **ret_data, size_t *ret_len);

static inline void wi_buf_freep(wi_buf *b)
{
	wi_buf_free(b);
}

/* A read-only cursor over untrusted bytes. */
typedef struct wi_cursor {
	const uint8_t *p;
	size_t avail;
} wi_cursor;

static inline wi_cursor wi_cursor_make(const void *p, size_t n)
{
	wi_cursor c = {(const uint8_t *)p, n};
	return c;
}

/* Takes n bytes from the cursor into *ret (pointing inside the input). */
int wi_cursor_take(wi_cursor *c, size_t n, const uint8_t **ret) WI_WUR;

/* Secret heap bytes: wiped then freed.  Accepts NULL. */
void wi_secret_free(void *p, size_t n);

#endif
