/* core/cleanup.h — scope-bound cleanup (STYLE §6).
 *
 *   _cleanup_(wi_evp_pkey_freep) EVP_PKEY *key = NULL;
 *   ...
 *   *ret_key = TAKE_PTR(key);    // ownership moves: no cleanup at scope exit
 */
#ifndef WI_CORE_CLEANUP_H
#define WI_CORE_CLEANUP_H

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* `unused`: a guard that exists only for its cleanup (a held lock, a
 * statement to reset) is never read, which clang would otherwise warn of. */
#define _cleanup_(f) __attribute__((cleanup(f), unused))

/* Returns *p and clears it, so a cleanup attribute no longer frees it. */
#define TAKE_PTR(p)                                                                        \
	({                                                                                 \
		__typeof__(p) *wi__pp = &(p);                                              \
		__typeof__(p) wi__v = *wi__pp;                                             \
		*wi__pp = NULL;                                                            \
		wi__v;                                                                     \
	})

/* Returns fd and sets it to -1. */
#define TAKE_FD(fd)                                                                        \
	({                                                                                 \
		int *wi__pf = &(fd);                                                       \
		int wi__f = *wi__pf;                                                       \
		*wi__pf = -1;                                                              \
		wi__f;                                                                     \
	})

#define WI_DEFINE_FREEP(type, fn)                                                          \
	static inline void fn##p(type **p)                                                 \
	{                                                                                  \
		if (*p)                                                                    \
			fn(*p);                                                            \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}

/* Scope-bound locking:
 *   _cleanup_(wi_mutex_unlockp) pthread_mutex_t *locked = wi_mutex_lock(&m);
 */
static inline pthread_mutex_t *wi_mutex_lock(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	return m;
}

static inline void wi_mutex_unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

static inline void wi_rwlock_unlockp(pthread_rwlock_t **l)
{
	if (*l)
		pthread_rwlock_unlock(*l);
}

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* json_decrefp comes from jansson itself (json_auto_t). */

WI_DEFINE_FREEP(EVP_PKEY, EVP_PKEY_free)
WI_DEFINE_FREEP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
WI_DEFINE_FREEP(EVP_MD_CTX, EVP_MD_CTX_free)
WI_DEFINE_FREEP(X509, X509_free)
WI_DEFINE_FREEP(X509_NAME, X509_NAME_free)
WI_DEFINE_FREEP(X509_EXTENSION, X509_EXTENSION_free)
WI_DEFINE_FREEP(BIO, BIO_free)
WI_DEFINE_FREEP(BIGNUM, BN_free)
WI_DEFINE_FREEP(ASN1_INTEGER, ASN1_INTEGER_free)
WI_DEFINE_FREEP(GENERAL_NAMES, GENERAL_NAMES_free)

#endif
