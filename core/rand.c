/* core/rand.c — identifier bytes from a per-thread buffer (see rand.h).
 *
 * The buffer is consumed from the front and each handed-out byte is wiped
 * at once, so no byte is ever handed out twice, and none that was handed out
 * stays in memory here.  A fork bumps a generation counter (atfork child
 * handler); a thread whose buffer was filled under an older generation
 * throws it away, so a forked child cannot repeat its parent's bytes. */
#include "core/rand.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/limits.h"

_Static_assert(WI_RAND_ID_MAX <= WI_RAND_ID_POOL, "one call must fit a refill");

typedef struct pool {
	uint8_t bytes[WI_RAND_ID_POOL];
	size_t used; /* bytes[0..used) are handed out (and wiped) */
	unsigned gen;
	bool filled;
} pool;

static _Thread_local pool tls_pool;
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
	/* Only fails with ENOMEM; then a fork would share bytes, so refuse
	 * the buffer (every call goes to OpenSSL) rather than risk it. */
	if (pthread_atfork(NULL, NULL, on_fork_child) != 0)
		atomic_store(&fork_gen, ~0u);
}

int wi_rand_id_bytes(uint8_t *out, size_t len)
{
	WI_CHECK(out != NULL && len <= WI_RAND_ID_MAX, WI_E_INVAL, "rand: %zu identifier bytes", len);
	pthread_once(&atfork_once, register_atfork);
	unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
	if (gen == ~0u) {
		WI_CHECK_SSL(RAND_bytes(out, (int)len) == 1, "RAND_bytes");
		return 0;
	}
	pool *p = &tls_pool;
	if (!p->filled || p->gen != gen || len > sizeof(p->bytes) - p->used) {
		OPENSSL_cleanse(p->bytes, sizeof(p->bytes));
		p->filled = false;
		WI_CHECK_SSL(RAND_bytes(p->bytes, (int)sizeof(p->bytes)) == 1, "RAND_bytes");
		p->used = 0;
		p->gen = gen;
		p->filled = true;
	}
	memcpy(out, p->bytes + p->used, len);
	OPENSSL_cleanse(p->bytes + p->used, len);
	p->used += len;
	return 0;
}
