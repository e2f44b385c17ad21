/* core/jwt_keys.c — a rotating set of JWT signing keys under <dir>/jwt/,
 * published as a JWKS.  See jwt_keys.h.
 *
 * The object keeps every published key (EVP_PKEY, kid) in slot order and an
 * immutable snapshot for readers; a tick that changes the set builds a new
 * snapshot and swaps it under `lock`, so readers on other threads only ever
 * take a reference. */
#include "core/jwt_keys.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/fsutil.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/rotation.h"

#define JWT_DIR "jwt"
#define MANIFEST_NAME "keys"

struct wi_jwt_keyset {
	atomic_int refs;
	uint64_t generation;
	wi_signer *signer; /* the active key */
	char *kid;
	wi_jwks *jwks; /* every published key */
	char *jwks_json;
	uint64_t active_seq;
	time_t active_since;
	time_t next_activation;
};

typedef struct slot_key {
	uint64_t seq;
	EVP_PKEY *key;
	char *kid;
} slot_key;

struct wi_jwt_keys {
	char dir[PATH_MAX];
	wi_jwt_key_type type;
	wi_rotation *rot;
	slot_key keys[WI_ROTATION_SLOTS_MAX]; /* same set as the manifest's slots */
	size_t n;
	uint64_t generation;
	atomic_uint_fast64_t events;
	pthread_mutex_t lock; /* guards `cur` swaps */
	wi_jwt_keyset *cur;
};

static void jwt_keys_freep(wi_jwt_keys **p)
{
	wi_jwt_keys_free(*p);
}

/* ---- snapshots ------------------------------------------------------------- */

wi_jwt_keyset *wi_jwt_keyset_ref(wi_jwt_keyset *ks)
{
	if (ks)
		atomic_fetch_add(&ks->refs, 1);
	return ks;
}

wi_jwt_keyset *wi_jwt_keyset_unref(wi_jwt_keyset *ks)
{
	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return NULL;
	wi_signer_free(ks->signer);
	free(ks->kid);
	wi_jwks_unref(ks->jwks);
	free(ks->jwks_json);
	free(ks);
	return NULL;
}

wi_signer *wi_jwt_keyset_signer(const wi_jwt_keyset *ks) { return ks->signer; }
const char *wi_jwt_keyset_kid(const wi_jwt_keyset *ks) { return ks->kid; }
wi_jwks *wi_jwt_keyset_jwks(const wi_jwt_keyset *ks) { return ks->jwks; }
const char *wi_jwt_keyset_jwks_json(const wi_jwt_keyset *ks) { return ks->jwks_json; }
uint64_t wi_jwt_keyset_generation(const wi_jwt_keyset *ks) { return ks->generation; }
time_t wi_jwt_keyset_active_since(const wi_jwt_keyset *ks) { return ks->active_since; }
time_t wi_jwt_keyset_next_activation(const wi_jwt_keyset *ks) { return ks->next_activation; }

static const slot_key *key_of(const wi_jwt_keys *k, uint64_t seq)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->keys[i].seq == seq)
			return &k->keys[i];
	return NULL;
}

/* The active key first (relying parties that pick the first key get the one
 * that signs), then the others in slot order. */
static int build_snapshot(wi_jwt_keys *k, time_t now, wi_jwt_keyset **ret)
{
	ssize_t a = wi_rotation_active(k->rot, now);
	WI_CHECK(a >= 0, WI_E_INTERNAL, "jwt keys: no key");
	const wi_rotation_slot *as = wi_rotation_slot_at(k->rot, (size_t)a);
	const slot_key *active = key_of(k, as->seq);
	WI_CHECK(active != NULL, WI_E_INTERNAL, "jwt keys: slot %" PRIu64 " has no key", as->seq);
	wi_jwt_keyset *ks = calloc(1, sizeof(*ks));
	WI_CHECK_ALLOC(ks);
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *owned = ks;
	atomic_init(&ks->refs, 1);
	ks->active_seq = as->seq;
	ks->active_since = as->activate;
	const wi_rotation_slot *next = wi_rotation_slot_at(k->rot, (size_t)a + 1);
	ks->next_activation = next ? next->activate : 0;
	ks->kid = strdup(active->kid);
	WI_CHECK_ALLOC(ks->kid);
	WI_CHECK_SSL(EVP_PKEY_up_ref(active->key) == 1, "key reference");
	int rc = wi_signer_from_pkey(active->key, &ks->signer);
	if (rc < 0) {
		EVP_PKEY_free(active->key);
		return rc;
	}
	WI_TRY(wi_jwks_new(&ks->jwks));
	WI_TRY(wi_jwks_add(ks->jwks, active->kid, active->key));
	for (size_t i = 0; i < wi_rotation_count(k->rot); i++) {
		const slot_key *sk = key_of(k, wi_rotation_slot_at(k->rot, i)->seq);
		if (sk && sk != active)
			WI_TRY(wi_jwks_add(ks->jwks, sk->kid, sk->key));
	}
	WI_TRY(wi_jwks_to_json(ks->jwks, &ks->jwks_json));
	/* The generation tells bundle streams to push: it moves only when the
	 * published document does. */
	bool same = k->cur && strcmp(k->cur->jwks_json, ks->jwks_json) == 0;
	ks->generation = same ? k->cur->generation : k->generation + 1;
	*ret = TAKE_PTR(owned);
	return 0;
}

static int publish(wi_jwt_keys *k, time_t now)
{
	wi_jwt_keyset *ks = NULL;
	WI_TRY(build_snapshot(k, now, &ks));
	k->generation = ks->generation;
	pthread_mutex_lock(&k->lock);
	wi_jwt_keyset *old = k->cur;
	k->cur = ks;
	pthread_mutex_unlock(&k->lock);
	wi_jwt_keyset_unref(old);
	return 0;
}

wi_jwt_keyset *wi_jwt_keys_get(wi_jwt_keys *k)
{
	pthread_mutex_lock(&k->lock);
	wi_jwt_keyset *ks = wi_jwt_keyset_ref(k->cur);
	pthread_mutex_unlock(&k->lock);
	return ks;
}

/* ---- key files -------------------------------------------------------------- */

static int key_path(const wi_jwt_keys *k, uint64_t seq, char *buf, size_t size)
{
	char name[64];
	if (seq == 0)
		snprintf(name, sizeof(name), "signing.key.pem"); /* the first key's historic name */
	else
		snprintf(name, sizeof(name), "signing.%" PRIu64 ".key.pem", seq);
	return wi_fs_join(buf, size, k->dir, name);
}

/* Whether a persisted key is the type asked for. */
static bool is_type(EVP_PKEY *key, wi_jwt_key_type type)
{
	switch (type) {
	case WI_JWT_KEY_EC_P256: {
		if (!EVP_PKEY_is_a(key, "EC"))
			return false;
		char group[64];
		size_t glen = 0;
		return EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						      sizeof(group), &glen) == 1 &&
		       strcmp(group, "prime256v1") == 0;
	}
	case WI_JWT_KEY_RSA_2048:
		return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == 2048;
	case WI_JWT_KEY_RSA_3072:
		return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == 3072;
	}
	return false;
}

static int generate(wi_jwt_key_type type, EVP_PKEY **ret)
{
	switch (type) {
	case WI_JWT_KEY_EC_P256:
		return wi_key_generate_p256(ret);
	case WI_JWT_KEY_RSA_2048:
		return wi_key_generate_rsa(2048, ret);
	case WI_JWT_KEY_RSA_3072:
		return wi_key_generate_rsa(3072, ret);
	}
	WI_FAIL(WI_E_INVAL, "jwt keys: unknown key type %d", (int)type);
}

static int hold_key(wi_jwt_keys *k, uint64_t seq, EVP_PKEY *key)
{
	WI_CHECK(k->n < WI_ROTATION_SLOTS_MAX, WI_E_TOO_BIG, "jwt keys: too many keys");
	char *kid = NULL;
	/* RFC 7638 thumbprint: the same key gives the same kid after restart. */
	WI_TRY(wi_jwk_thumbprint(key, &kid));
	k->keys[k->n++] = (slot_key){seq, key, kid};
	return 0;
}

static void drop_key(wi_jwt_keys *k, uint64_t seq)
{
	size_t j = 0;
	for (size_t i = 0; i < k->n; i++) {
		if (k->keys[i].seq == seq) {
			EVP_PKEY_free(k->keys[i].key);
			free(k->keys[i].kid);
		} else {
			k->keys[j++] = k->keys[i];
		}
	}
	k->n = j;
}

/* A new key file (written before the manifest names it), then the slot. */
static int add_slot(wi_jwt_keys *k, time_t prepared, time_t activate)
{
	uint64_t seq = wi_rotation_next_seq(k->rot);
	char path[PATH_MAX];
	WI_TRY(key_path(k, seq, path, sizeof(path)));
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	WI_TRY(generate(k->type, &key));
	/* DESIGN §6: key files 0600, written atomically (survives kill -9). */
	WI_TRY(wi_key_save_pem(key, path));
	int rc = wi_rotation_add(k->rot, seq, prepared, activate);
	if (rc == 0)
		rc = hold_key(k, seq, key);
	if (rc < 0) {
		if (!wi_rotation_has_seq(k->rot, seq))
			(void)unlink(path); /* an orphan otherwise; removed at the next open */
		return rc;
	}
	key = NULL; /* held */
	atomic_fetch_add(&k->events, 1);
	return 0;
}

static int retire_slot(wi_jwt_keys *k, uint64_t seq)
{
	char path[PATH_MAX];
	WI_TRY(key_path(k, seq, path, sizeof(path)));
	WI_TRY(wi_rotation_remove(k->rot, seq));
	drop_key(k, seq);
	/* After the manifest: a crash here leaves an orphan, removed at open. */
	if (unlink(path) < 0 && errno != ENOENT)
		WI_FAIL(WI_E_IO, "jwt keys: remove %s: %s", path, strerror(errno));
	atomic_fetch_add(&k->events, 1);
	return 0;
}

/* Loads every slot's key.  A manifest-less directory with the historic
 * signing.key.pem adopts it as slot 0. */
static int load_slots(wi_jwt_keys *k, time_t now)
{
	if (wi_rotation_count(k->rot) == 0) {
		char path[PATH_MAX];
		WI_TRY(key_path(k, 0, path, sizeof(path)));
		if (access(path, F_OK) == 0)
			WI_TRY(wi_rotation_add(k->rot, 0, now, now));
	}
	for (size_t i = 0; i < wi_rotation_count(k->rot); i++) {
		uint64_t seq = wi_rotation_slot_at(k->rot, i)->seq;
		char path[PATH_MAX];
		WI_TRY(key_path(k, seq, path, sizeof(path)));
		EVP_PKEY *key = NULL;
		int r = wi_key_load_pem(path, &key);
		if (r == WI_E_NOT_FOUND) {
			/* The manifest names it but the file is gone (removed by
			 * hand): forget the slot rather than refuse to start. */
			WI_TRY(wi_rotation_remove(k->rot, seq));
			i--;
			continue;
		}
		WI_TRY(r); /* unreadable, too open or corrupt: the operator decides */
		r = hold_key(k, seq, key);
		if (r < 0) {
			EVP_PKEY_free(key);
			return r;
		}
	}
	return 0;
}

int wi_jwt_keys_open_rotating(const wi_jwt_keys_options *o, time_t now, wi_jwt_keys **ret)
{
	WI_CHECK(o != NULL && o->dir != NULL && ret != NULL, WI_E_INVAL, "jwt keys: NULL argument");
	WI_CHECK(o->type == WI_JWT_KEY_EC_P256 || o->type == WI_JWT_KEY_RSA_2048 ||
			 o->type == WI_JWT_KEY_RSA_3072,
		 WI_E_INVAL, "jwt keys: unknown key type %d", (int)o->type);
	WI_CHECK(o->rotate_every == 0 || o->rotate_every >= WI_ROTATION_PERIOD_MIN, WI_E_INVAL,
		 "jwt keys: rotation period %lld below %d seconds", (long long)o->rotate_every,
		 WI_ROTATION_PERIOD_MIN);
	WI_CHECK(o->token_ttl > 0, WI_E_INVAL, "jwt keys: token ttl must be positive");
	_cleanup_(jwt_keys_freep) wi_jwt_keys *k = calloc(1, sizeof(*k));
	WI_CHECK_ALLOC(k);
	pthread_mutex_init(&k->lock, NULL);
	k->type = o->type;
	WI_TRY(wi_fs_join(k->dir, sizeof(k->dir), o->dir, JWT_DIR));
	/* DESIGN §6: key directories 0700. */
	WI_TRY(wi_fs_mkdir_private(k->dir));
	wi_rotation_policy p = {.rotate_every = o->rotate_every,
				.lead = o->token_ttl,
				.linger = o->token_ttl + WI_JWT_LEEWAY_SECONDS};
	WI_TRY(wi_rotation_open(k->dir, MANIFEST_NAME, &p, &k->rot));
	WI_TRY(load_slots(k, now));
	static const char *const key_suffixes[] = {".key.pem", NULL};
	static const char *const key_seq0[] = {"signing.key.pem", NULL};
	WI_TRY(wi_rotation_remove_orphans(k->rot, k->dir, "signing.", key_suffixes, key_seq0));
	/* A successor of another type than now asked must not take over. */
	for (size_t i = 0; i < wi_rotation_count(k->rot); i++) {
		const wi_rotation_slot *s = wi_rotation_slot_at(k->rot, i);
		if (s->activate > now && !is_type(key_of(k, s->seq)->key, o->type)) {
			WI_TRY(retire_slot(k, s->seq));
			i--;
		}
	}
	ssize_t a = wi_rotation_active(k->rot, now);
	if (a < 0 || !is_type(key_of(k, wi_rotation_slot_at(k->rot, (size_t)a)->seq)->key, o->type)) {
		/* First start, or another type asked: a key that signs at once.
		 * A replaced key stays published until its tokens expired. */
		WI_TRY(add_slot(k, now, now));
		atomic_store(&k->events, 0); /* not a rotation */
	}
	WI_TRY(wi_jwt_keys_tick(k, now, NULL)); /* publishes the first snapshot */
	*ret = TAKE_PTR(k);
	return 0;
}

int wi_jwt_keys_open(const char *dir, wi_jwt_key_type type, wi_jwt_keys **ret)
{
	WI_CHECK(dir != NULL, WI_E_INVAL, "jwt keys: NULL argument");
	wi_jwt_keys_options o = {.dir = dir, .type = type, .rotate_every = 0, .token_ttl = WI_JWT_TTL_MAX};
	return wi_jwt_keys_open_rotating(&o, wi_clock_now(), ret);
}

wi_jwt_keys *wi_jwt_keys_free(wi_jwt_keys *k)
{
	if (!k)
		return NULL;
	wi_jwt_keyset_unref(k->cur);
	for (size_t i = 0; i < k->n; i++) {
		EVP_PKEY_free(k->keys[i].key);
		free(k->keys[i].kid);
	}
	wi_rotation_free(k->rot);
	pthread_mutex_destroy(&k->lock);
	free(k);
	return NULL;
}

/* ---- rotation ---------------------------------------------------------------- */

int wi_jwt_keys_tick(wi_jwt_keys *k, time_t now, bool *ret_changed)
{
	bool changed = false;
	uint64_t seq;
	int rc = 0;
	while (rc == 0 && wi_rotation_retire_due(k->rot, now, &seq)) {
		rc = retire_slot(k, seq);
		changed = changed || rc == 0;
	}
	time_t activate;
	if (rc == 0 && wi_rotation_prepare_due(k->rot, now, &activate)) {
		rc = add_slot(k, now, activate);
		changed = changed || rc == 0;
	}
	/* Activation needs no write: the schedule says when. */
	if (k->cur) {
		ssize_t a = wi_rotation_active(k->rot, now);
		if (a >= 0 && k->cur->active_seq != wi_rotation_slot_at(k->rot, (size_t)a)->seq) {
			changed = true;
			atomic_fetch_add(&k->events, 1);
		}
	}
	if (changed || !k->cur) {
		int prc = publish(k, now);
		if (rc == 0)
			rc = prc;
	}
	if (ret_changed)
		*ret_changed = changed;
	return rc;
}

uint64_t wi_jwt_keys_rotation_events(wi_jwt_keys *k)
{
	return atomic_load(&k->events);
}

/* ---- borrowed getters ------------------------------------------------------ */

wi_signer *wi_jwt_keys_signer(const wi_jwt_keys *k) { return k && k->cur ? k->cur->signer : NULL; }
const char *wi_jwt_keys_kid(const wi_jwt_keys *k) { return k && k->cur ? k->cur->kid : NULL; }
wi_jwks *wi_jwt_keys_jwks(const wi_jwt_keys *k) { return k && k->cur ? k->cur->jwks : NULL; }
const char *wi_jwt_keys_jwks_json(const wi_jwt_keys *k) { return k && k->cur ? k->cur->jwks_json : NULL; }
