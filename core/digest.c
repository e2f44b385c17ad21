/* core/digest.c — see digest.h. */
#include "core/digest.h"

#include <pthread.h>
#include <string.h>

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256, *md_sha384, *md_sha512;

static void md_fetch_all(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
	md_sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
}

const EVP_MD *wi_digest_md(const char *name)
{
	if (!name)
		return NULL;
	pthread_once(&md_once, md_fetch_all);
	if (strcmp(name, "SHA256") == 0)
		return md_sha256;
	if (strcmp(name, "SHA384") == 0)
		return md_sha384;
	if (strcmp(name, "SHA512") == 0)
		return md_sha512;
	return NULL;
}

int wi_digest_sha256(const void *data, size_t len, uint8_t out[WI_SHA256_LEN])
{
	const EVP_MD *md = wi_digest_md("SHA256");
	unsigned n = 0;
	WI_CHECK_SSL(md && EVP_Digest(data, len, out, &n, md, NULL) == 1 && n == WI_SHA256_LEN, "SHA-256");
	return 0;
}
