/* core/slots.h — bounded slots per key: how many connections one peer (a
 * uid, an address) holds, so that no single peer can take all of a
 * listener's connections.  Thread-safe (one mutex; a take or release is a
 * probe into a table sized at creation, no allocation). */
#ifndef WI_CORE_SLOTS_H
#define WI_CORE_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "core/error.h"

/* A key: a kind byte and up to 16 bytes (an IPv6 address, a uid). */
#define WI_SLOT_KEY_LEN 17

typedef struct wi_slot_key {
	uint8_t b[WI_SLOT_KEY_LEN];
} wi_slot_key;

/* The key for a local uid (kind 'u'). */
static inline wi_slot_key wi_slot_key_uid(uid_t uid)
{
	wi_slot_key k;
	memset(&k, 0, sizeof(k));
	k.b[0] = 'u';
	memcpy(k.b + 1, &uid, sizeof(uid));
	return k;
}

typedef struct wi_slots wi_slots;

/* At most `per_key` slots per key, and at most `max_keys` keys holding one
 * at once (the table has room for twice that). */
int wi_slots_new(size_t per_key, size_t max_keys, wi_slots **ret) WI_WUR;
void wi_slots_free(wi_slots *s);

/* Takes one slot of `k`; false when `k` holds per_key already or max_keys
 * keys hold slots. */
bool wi_slots_take(wi_slots *s, const wi_slot_key *k) WI_WUR;
/* Gives back one slot taken by wi_slots_take. */
void wi_slots_release(wi_slots *s, const wi_slot_key *k);
/* Slots `k` holds now (tests, metrics). */
size_t wi_slots_held(wi_slots *s, const wi_slot_key *k);

#endif
