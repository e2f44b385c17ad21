/* core/jwt_keys.c — the trust domain's JWT signing key, persisted under
 * <data_dir>/jwt/ and published as a JWKS.
 *
 * Everything is built in open() and read-only afterwards, so the object may
 * be shared by threads without locks (the signer makes a fresh EVP context
 * per signature). */
#include "core/jwt_keys.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>

#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/keys.h"
#include "core/limits.h"

#define JWT_DIR "jwt"
#define JWT_KEY_FILE "signing.key.pem"

struct wi_jwt_keys {
	wi_signer *signer;
	char *kid;
	wi_jwks *jwks;
	char *jwks_json;
};

static void jwt_keys_freep(wi_jwt_keys **p)
{
	wi_jwt_keys_free(*p);
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

int wi_jwt_keys_open(const char *data_dir, wi_jwt_key_type type, wi_jwt_keys **ret)
{
	WI_CHECK(data_dir != NULL && ret != NULL, WI_E_INVAL, "jwt keys: NULL argument");
	WI_CHECK(type == WI_JWT_KEY_EC_P256 || type == WI_JWT_KEY_RSA_2048 ||
			 type == WI_JWT_KEY_RSA_3072,
		 WI_E_INVAL, "jwt keys: unknown key type %d", (int)type);
	char dir[PATH_MAX], path[PATH_MAX];
	WI_TRY(wi_fs_join(dir, sizeof(dir), data_dir, JWT_DIR));
	WI_TRY(wi_fs_join(path, sizeof(path), dir, JWT_KEY_FILE));
	/* DESIGN §6: key directories 0700. */
	WI_TRY(wi_fs_mkdir_private(dir));

	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r = wi_key_load_pem(path, &key);
	if (r != WI_E_NOT_FOUND)
		WI_TRY(r); /* unreadable, too open or corrupt: the operator decides */
	if (key && !is_type(key, type))
		EVP_PKEY_free(TAKE_PTR(key)); /* another type asked: replaced, new kid */
	if (!key) {
		WI_TRY(generate(type, &key));
		/* DESIGN §6: key files 0600, written atomically (survives kill -9). */
		WI_TRY(wi_key_save_pem(key, path));
	}

	_cleanup_(jwt_keys_freep) wi_jwt_keys *k = calloc(1, sizeof(*k));
	WI_CHECK_ALLOC(k);
	/* RFC 7638 thumbprint: the same key gives the same kid after restart. */
	WI_TRY(wi_jwk_thumbprint(key, &k->kid));
	WI_TRY(wi_signer_from_pkey(key, &k->signer));
	key = NULL; /* owned by the signer */
	WI_TRY(wi_jwks_new(&k->jwks));
	WI_TRY(wi_jwks_add(k->jwks, k->kid, wi_signer_public_key(k->signer)));
	WI_TRY(wi_jwks_to_json(k->jwks, &k->jwks_json));
	*ret = TAKE_PTR(k);
	return 0;
}

wi_jwt_keys *wi_jwt_keys_free(wi_jwt_keys *k)
{
	if (!k)
		return NULL;
	wi_signer_free(k->signer);
	free(k->kid);
	wi_jwks_unref(k->jwks);
	free(k->jwks_json);
	free(k);
	return NULL;
}

wi_signer *wi_jwt_keys_signer(const wi_jwt_keys *k)
{
	return k ? k->signer : NULL;
}

const char *wi_jwt_keys_kid(const wi_jwt_keys *k)
{
	return k ? k->kid : NULL;
}

wi_jwks *wi_jwt_keys_jwks(const wi_jwt_keys *k)
{
	return k ? k->jwks : NULL;
}

const char *wi_jwt_keys_jwks_json(const wi_jwt_keys *k)
{
	return k ? k->jwks_json : NULL;
}
