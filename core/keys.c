/* core/keys.c — EC and RSA key generation and PKCS#8 (de)serialisation. */
#include "core/keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/pem.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/limits.h"

WI_DEFINE_FREEP(OSSL_ENCODER_CTX, OSSL_ENCODER_CTX_free)

int wi_key_generate_p256(EVP_PKEY **ret)
{
	WI_CHECK(ret != NULL, WI_E_INVAL, "keygen: NULL argument");
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	WI_CHECK_SSL(key != NULL, "generate P-256 key");
	*ret = key;
	return 0;
}

int wi_key_generate_rsa(unsigned bits, EVP_PKEY **ret)
{
	WI_CHECK(ret != NULL, WI_E_INVAL, "keygen: NULL argument");
	/* RFC 7518 §3.3: RSA keys of 2048 bits or larger. */
	WI_CHECK(bits >= WI_RSA_BITS_MIN && bits <= WI_RSA_BITS_MAX && bits % 8 == 0, WI_E_INVAL,
		 "keygen: RSA size %u bits (want %d to %d, a multiple of 8)", bits, WI_RSA_BITS_MIN,
		 WI_RSA_BITS_MAX);
	/* The default public exponent is 65537. */
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	WI_CHECK_SSL(key != NULL, "generate RSA key");
	*ret = key;
	return 0;
}

/* Encodes the private key as PKCS#8 PrivateKeyInfo in `format` ("DER" or
 * "PEM") into a malloc'd copy.  OpenSSL's own buffer grows through
 * BUF_MEM_grow_clean and is freed with OPENSSL_clear_free, so no stray copy
 * of the key is left behind. */
static int encode_pkcs8(EVP_PKEY *key, const char *format, uint8_t **ret, size_t *ret_len)
{
	WI_CHECK(key != NULL && ret != NULL && ret_len != NULL, WI_E_INVAL, "encode: NULL argument");
	_cleanup_(OSSL_ENCODER_CTX_freep) OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(
		key, EVP_PKEY_KEYPAIR, format, "PrivateKeyInfo", NULL);
	WI_CHECK_SSL(ctx != NULL && OSSL_ENCODER_CTX_get_num_encoders(ctx) > 0,
		     "no PKCS#8 encoder for this key");
	unsigned char *data = NULL;
	size_t len = 0;
	WI_CHECK_SSL(OSSL_ENCODER_to_data(ctx, &data, &len) == 1 && data != NULL && len > 0,
		     "encode PKCS#8 private key");
	uint8_t *copy = malloc(len);
	if (copy)
		memcpy(copy, data, len);
	OPENSSL_clear_free(data, len);
	WI_CHECK_ALLOC(copy);
	*ret = copy;
	*ret_len = len;
	return 0;
}

int wi_key_to_pkcs8_der(EVP_PKEY *key, uint8_t **ret_der, size_t *ret_len)
{
	/* Workload API x509_svid_key: unencrypted PKCS#8 DER (RFC 5208). */
	return encode_pkcs8(key, "DER", ret_der, ret_len);
}

int wi_key_save_pem(EVP_PKEY *key, const char *path)
{
	WI_CHECK(path != NULL, WI_E_INVAL, "save key: NULL path");
	uint8_t *pem = NULL;
	size_t len = 0;
	WI_TRY(encode_pkcs8(key, "PEM", &pem, &len));
	/* DESIGN §6: key files 0600, written atomically. */
	int r = wi_fs_write_atomic(path, pem, len, 0600);
	wi_secret_free(pem, len);
	return r;
}

/* Never prompt on a terminal for a passphrase: an encrypted key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int wi_key_load_pem(const char *path, EVP_PKEY **ret)
{
	WI_CHECK(path != NULL && ret != NULL, WI_E_INVAL, "load key: NULL argument");
	/* Checked by path before reading: whoever could race a chmod in between
	 * already owns the file, so this guards against operator mistakes, as
	 * OpenSSH's "permissions are too open" does.  Writable by group or
	 * others is refused too: such a key could be swapped. */
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			WI_FAIL(WI_E_NOT_FOUND, "%s does not exist", path);
		WI_FAIL(WI_E_IO, "stat %s: %s", path, strerror(errno));
	}
	WI_CHECK((st.st_mode & 077) == 0, WI_E_CONFIG,
		 "key file %s has mode %04o; group and others must have no access", path,
		 (unsigned)(st.st_mode & 07777));

	uint8_t *data = NULL;
	size_t len = 0;
	WI_TRY(wi_fs_read_file(path, WI_PEM_FILE_MAX, &data, &len));
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	wi_secret_free(data, len + 1);
	if (!key)
		return wi__error_set_ssl(WI_E_PARSE, __FILE__, __LINE__,
					 "no usable (unencrypted) PEM private key");
	*ret = key;
	return 0;
}
