/* core/slots.c — see slots.h.  Linear probing; a release that empties a
 * key deletes it by shifting later members of its cluster back (no
 * tombstones, so the table never fills with dead entries). */
#include "core/slots.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	wi_slot_key key;
	uint32_t count; /* 0: empty */
} entry;

struct wi_slots {
	pthread_mutex_t lock;
	entry *tab;
	size_t mask; /* capacity - 1, capacity a power of two */
	size_t per_key, max_keys, keys;
};

/* FNV-1a over the key: short fixed keys, no adversarial collisions worth a
 * keyed hash (a peer controls at most its own address's low bits, and a
 * cluster is bounded by max_keys). */
static size_t hash_key(const wi_slot_key *k)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < WI_SLOT_KEY_LEN; i++) {
		h ^= k->b[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

int wi_slots_new(size_t per_key, size_t max_keys, wi_slots **ret)
{
	WI_CHECK(per_key > 0 && per_key <= UINT32_MAX && max_keys > 0 && max_keys <= (SIZE_MAX / 4) / sizeof(entry),
		 WI_E_INVAL, "slots: per_key %zu, max_keys %zu", per_key, max_keys);
	size_t cap = 8;
	while (cap < max_keys * 2)
		cap *= 2;
	wi_slots *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->tab = calloc(cap, sizeof(*s->tab));
	if (!s->tab) {
		free(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	pthread_mutex_init(&s->lock, NULL);
	s->mask = cap - 1;
	s->per_key = per_key;
	s->max_keys = max_keys;
	*ret = s;
	return 0;
}

void wi_slots_free(wi_slots *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->tab);
	free(s);
}

/* The slot of `k`, or the empty one where it would go; under the lock. */
static size_t find(const wi_slots *s, const wi_slot_key *k)
{
	size_t i = hash_key(k) & s->mask;
	while (s->tab[i].count != 0 && memcmp(&s->tab[i].key, k, sizeof(*k)) != 0)
		i = (i + 1) & s->mask;
	return i;
}

bool wi_slots_take(wi_slots *s, const wi_slot_key *k)
{
	pthread_mutex_lock(&s->lock);
	size_t i = find(s, k);
	entry *e = &s->tab[i];
	bool ok;
	if (e->count != 0) {
		ok = e->count < s->per_key;
		if (ok)
			e->count++;
	} else {
		ok = s->keys < s->max_keys;
		if (ok) {
			e->key = *k;
			e->count = 1;
			s->keys++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

void wi_slots_release(wi_slots *s, const wi_slot_key *k)
{
	pthread_mutex_lock(&s->lock);
	size_t i = find(s, k);
	if (s->tab[i].count == 0 || --s->tab[i].count > 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->keys--;
	/* Backward-shift deletion: every later member of the cluster that may
	 * sit at `i` (its home is not cyclically within (i, j]) moves there. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & s->mask;
		if (s->tab[j].count == 0)
			break;
		size_t home = hash_key(&s->tab[j].key) & s->mask;
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			s->tab[i] = s->tab[j];
			s->tab[j].count = 0;
			i = j;
		}
	}
	s->tab[i].count = 0;
	pthread_mutex_unlock(&s->lock);
}

size_t wi_slots_held(wi_slots *s, const wi_slot_key *k)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->tab[find(s, k)].count;
	pthread_mutex_unlock(&s->lock);
	return n;
}
