/* core/rotation.h — the schedule of a rotating key set (the CA, the JWT
 * signing keys, the Txn-Token keys) and its crash-safe manifest.
 *
 * A set holds slots.  A slot is one key (for the CA, a key and its
 * certificate) named by a sequence number, with two times: `prepared`, when
 * it was made and published in the bundle, and `activate`, when it starts to
 * sign.  With the policy {rotate_every R (0: never), lead L, linger K}:
 *   - the active slot is the one with the greatest activate <= now (with a
 *     clock stepped back before every activation: the earliest one);
 *   - when R > 0, the active slot has no successor and now >= its activate +
 *     R - L, a successor is due, to activate at max(activate + R, now + L):
 *     published at least L (one token/SVID lifetime) before it signs;
 *   - a slot is retired at its successor's activate + K (K = the longest
 *     lifetime of what it signed), so nothing it signed outlives it in the
 *     bundle;
 *   - every slot of the manifest is published.
 *
 * The manifest is <dir>/<name>.json, {"version":1,"slots":[{"seq":N,
 * "prepared":T,"activate":T},...]}, written atomically (temp file, fsync,
 * rename).  Owners write a slot's key files BEFORE the manifest naming it and
 * delete them AFTER the manifest dropping it, so `kill -9` at any point leaves
 * either state, plus at worst orphan files, which the owner removes on open
 * (wi_rotation_has_seq tells them apart).
 *
 * Not thread-safe: one owner calls it, under its own lock. */
#ifndef WI_CORE_ROTATION_H
#define WI_CORE_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/error.h"

typedef struct wi_rotation_policy {
	int64_t rotate_every; /* seconds between activations; 0 = never rotate */
	int64_t lead;         /* publish a successor at least this long before it signs */
	int64_t linger;       /* keep a replaced slot published this long */
} wi_rotation_policy;

typedef struct wi_rotation_slot {
	uint64_t seq;
	time_t prepared;
	time_t activate;
} wi_rotation_slot;

typedef struct wi_rotation wi_rotation;

/* Loads <dir>/<name>.json (absent: an empty set).  WI_E_PARSE for a damaged
 * manifest (the operator inspects it; a key set is never silently reset). */
int wi_rotation_open(const char *dir, const char *name, const wi_rotation_policy *policy,
		     wi_rotation **ret) WI_WUR;
wi_rotation *wi_rotation_free(wi_rotation *r);

/* Slots, ordered by activate (then seq). */
size_t wi_rotation_count(const wi_rotation *r);
const wi_rotation_slot *wi_rotation_slot_at(const wi_rotation *r, size_t i);
bool wi_rotation_has_seq(const wi_rotation *r, uint64_t seq);
/* A sequence number no slot has used yet. */
uint64_t wi_rotation_next_seq(const wi_rotation *r);
/* Index of the active slot at `now`; -1 when the set is empty. */
ssize_t wi_rotation_active(const wi_rotation *r, time_t now);

/* Whether a successor is due at `now`; *ret_activate is when it will sign. */
bool wi_rotation_prepare_due(const wi_rotation *r, time_t now, time_t *ret_activate);
/* The seq of a slot due for retirement at `now`, if any. */
bool wi_rotation_retire_due(const wi_rotation *r, time_t now, uint64_t *ret_seq);

/* Removes from `dir` the key files of slots the manifest does not name (a
 * crash between a key write and the manifest, or between the manifest and
 * an unlink): files named <prefix><seq><suffix> for seq > 0 (decimal, no
 * leading zero) and each suffix of the NULL-terminated `suffixes`, and for
 * seq 0 the historic names in the NULL-terminated `seq0_names`.  Other files
 * are left alone. */
int wi_rotation_remove_orphans(const wi_rotation *r, const char *dir, const char *prefix,
			       const char *const *suffixes, const char *const *seq0_names) WI_WUR;

/* Adds a slot and rewrites the manifest (the slot's files must exist). */
int wi_rotation_add(wi_rotation *r, uint64_t seq, time_t prepared, time_t activate) WI_WUR;
/* Removes a slot and rewrites the manifest (delete its files afterwards). */
int wi_rotation_remove(wi_rotation *r, uint64_t seq) WI_WUR;

#endif
