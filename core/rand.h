/* core/rand.h — random bytes for identifiers (`jti`, `txn`): unpredictable
 * and unique, but not key material.  Served from a small per-thread buffer
 * that OpenSSL's RAND_bytes refills WI_RAND_ID_POOL bytes at a time, so a
 * request does not pay OpenSSL's per-call DRBG set-up (a lock, a fork check
 * with getpid, the generate) for 16 bytes.  Bytes are wiped from the buffer
 * as they are handed out; a fork (pthread_atfork) discards the child's
 * buffer so parent and child never hand out the same bytes.
 *
 * Never use this for keys, nonces or anything secret: those come from
 * RAND_priv_bytes / the signer. */
#ifndef WI_CORE_RAND_H
#define WI_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Fills out[0..len); len <= WI_RAND_ID_MAX, else WI_E_INVAL.  WI_E_CRYPTO if
 * OpenSSL cannot refill (nothing written then). */
int wi_rand_id_bytes(uint8_t *out, size_t len) WI_WUR;

#endif
