/* core/svid.c — immutable, reference-counted X.509-SVIDs (DESIGN §7: one SVID
 * is shared by every connection of one identity, across threads). */
#include "core/svid.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

struct wi_x509_svid {
	atomic_uint refs;
	char *spiffe_id;
	uint8_t *chain;
	size_t chain_len;
	uint8_t *key; /* secret: PKCS#8 DER */
	size_t key_len;
	time_t not_before;
	time_t not_after;
};

static wi_x509_svid *destroy(wi_x509_svid *s)
{
	free(s->spiffe_id);
	free(s->chain);
	wi_secret_free(s->key, s->key_len); /* STYLE §10: wipe on free */
	free(s);
	return NULL;
}

int wi_x509_svid_new(const char *spiffe_id, const uint8_t *chain_der, size_t chain_len,
		     const uint8_t *key_der, size_t key_len, time_t not_before, time_t not_after,
		     wi_x509_svid **ret)
{
	WI_CHECK(spiffe_id != NULL && chain_der != NULL && chain_len > 0 && key_der != NULL &&
			 key_len > 0 && ret != NULL,
		 WI_E_INVAL, "svid: missing part");
	WI_CHECK(not_before < not_after, WI_E_INVAL, "svid: notAfter is not after notBefore");
	size_t id_len = strnlen(spiffe_id, WI_SPIFFE_ID_MAX + 1);
	WI_CHECK(id_len <= WI_SPIFFE_ID_MAX, WI_E_TOO_BIG, "svid: SPIFFE ID too long");

	wi_x509_svid *s = calloc(1, sizeof(*s));
	WI_CHECK_ALLOC(s);
	s->spiffe_id = malloc(id_len + 1);
	s->chain = malloc(chain_len);
	s->key = malloc(key_len);
	if (!s->spiffe_id || !s->chain || !s->key) {
		s->key_len = key_len;
		destroy(s);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	memcpy(s->spiffe_id, spiffe_id, id_len + 1);
	memcpy(s->chain, chain_der, chain_len);
	memcpy(s->key, key_der, key_len);
	s->chain_len = chain_len;
	s->key_len = key_len;
	s->not_before = not_before;
	s->not_after = not_after;
	atomic_init(&s->refs, 1);
	*ret = s;
	return 0;
}

wi_x509_svid *wi_x509_svid_ref(wi_x509_svid *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

wi_x509_svid *wi_x509_svid_unref(wi_x509_svid *s)
{
	if (!s)
		return NULL;
	/* Release our writes; the last owner acquires everyone's before freeing. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) != 1)
		return NULL;
	atomic_thread_fence(memory_order_acquire);
	return destroy(s);
}

const char *wi_x509_svid_spiffe_id(const wi_x509_svid *s)
{
	return s->spiffe_id;
}

const uint8_t *wi_x509_svid_chain_der(const wi_x509_svid *s, size_t *ret_len)
{
	*ret_len = s->chain_len;
	return s->chain;
}

const uint8_t *wi_x509_svid_key_der(const wi_x509_svid *s, size_t *ret_len)
{
	*ret_len = s->key_len;
	return s->key;
}

time_t wi_x509_svid_not_before(const wi_x509_svid *s)
{
	return s->not_before;
}

time_t wi_x509_svid_not_after(const wi_x509_svid *s)
{
	return s->not_after;
}

time_t wi_x509_svid_refresh_at(const wi_x509_svid *s)
{
	/* SPIRE rotates at half-life (rotationutil.go); written to not overflow. */
	return s->not_before + (s->not_after - s->not_before) / 2;
}
