/* bench/crypto.c — the crypto ceiling: OpenSSL (EVP API) ES256 sign, ES256
 * and RS256 verify and P-256 key generation, each in a timing loop.  With
 * --threads 1 (the default) that is a per-core rate; with --threads N, N
 * threads run each loop at the same time (each with its own contexts, the
 * keys shared as the daemon shares them) and the rates are their sum: the
 * machine's measured all-core ceiling, not one core times N.  The signing
 * input is a SHA-256 digest, as the daemon's signer interface takes one
 * (STYLE §11); the digest of a ~500-byte JWS signing input is included in
 * every operation.
 *
 *   wi-bench crypto [--duration S] [--threads N]   (seconds per operation) */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "bench/bench.h"
#include "bench/common.h"

#define MSG_LEN 500

static unsigned char msg[MSG_LEN];

typedef int (*op_fn)(void *ud);

static double rate(op_fn fn, void *ud, double seconds)
{
	uint64_t t0 = wi_bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), now;
	uint64_t n = 0;
	do {
		for (int i = 0; i < 16; i++)
			if (fn(ud) != 0)
				return -1;
		n += 16;
		now = wi_bench_now_ns();
	} while (now < end);
	return (double)n / ((double)(now - t0) / 1e9);
}

typedef struct sig_ud {
	EVP_PKEY_CTX *ctx;
	unsigned char sig[1024];
	size_t sig_len;
	int padding; /* RSA only */
} sig_ud;

static int sign_op(void *p)
{
	sig_ud *u = p;
	unsigned char d[32];
	if (!EVP_Digest(msg, sizeof(msg), d, NULL, EVP_sha256(), NULL))
		return -1;
	u->sig_len = sizeof(u->sig);
	return EVP_PKEY_sign(u->ctx, u->sig, &u->sig_len, d, sizeof(d)) == 1 ? 0 : -1;
}

static int verify_op(void *p)
{
	sig_ud *u = p;
	unsigned char d[32];
	if (!EVP_Digest(msg, sizeof(msg), d, NULL, EVP_sha256(), NULL))
		return -1;
	return EVP_PKEY_verify(u->ctx, u->sig, u->sig_len, d, sizeof(d)) == 1 ? 0 : -1;
}

static int keygen_op(void *p)
{
	(void)p;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	EVP_PKEY_free(k);
	return k ? 0 : -1;
}

/* Signs once with `key` (to get a signature) and sets up a verify context. */
static int prepare(EVP_PKEY *key, int padding, sig_ud *sign, sig_ud *verify)
{
	memset(sign, 0, sizeof(*sign));
	memset(verify, 0, sizeof(*verify));
	sign->ctx = EVP_PKEY_CTX_new(key, NULL);
	verify->ctx = EVP_PKEY_CTX_new(key, NULL);
	if (!sign->ctx || !verify->ctx || EVP_PKEY_sign_init(sign->ctx) != 1 ||
	    EVP_PKEY_verify_init(verify->ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(sign->ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(verify->ctx, EVP_sha256()) != 1)
		return -1;
	if (padding && (EVP_PKEY_CTX_set_rsa_padding(sign->ctx, padding) != 1 ||
			EVP_PKEY_CTX_set_rsa_padding(verify->ctx, padding) != 1))
		return -1;
	if (sign_op(sign) != 0)
		return -1;
	memcpy(verify->sig, sign->sig, sign->sig_len);
	verify->sig_len = sign->sig_len;
	return 0;
}

#define THREADS_MAX 64
#define N_OPS 4

/* One timing thread: its own contexts over the shared keys; each loop
 * starts when every thread is ready for it (a barrier), so the threads
 * measure the same operation at the same time. */
typedef struct worker {
	pthread_t tid;
	EVP_PKEY *ec, *rsa; /* shared, read-only */
	double seconds;
	pthread_barrier_t *go;
	double rates[N_OPS]; /* sign, verify, rs256 verify, keygen; -1 on failure */
} worker;

static void *worker_main(void *p)
{
	worker *w = p;
	sig_ud es_s, es_v, rs_s, rs_v;
	bool ok = prepare(w->ec, 0, &es_s, &es_v) == 0 && prepare(w->rsa, RSA_PKCS1_PADDING, &rs_s, &rs_v) == 0;
	op_fn fns[N_OPS] = {sign_op, verify_op, verify_op, keygen_op};
	void *uds[N_OPS] = {&es_s, &es_v, &rs_v, NULL};
	for (int i = 0; i < N_OPS; i++) {
		pthread_barrier_wait(w->go); /* every thread waits, ok or not */
		w->rates[i] = ok ? rate(fns[i], uds[i], w->seconds) : -1;
	}
	EVP_PKEY_CTX_free(es_s.ctx);
	EVP_PKEY_CTX_free(es_v.ctx);
	EVP_PKEY_CTX_free(rs_s.ctx);
	EVP_PKEY_CTX_free(rs_v.ctx);
	return NULL;
}

int wi_bench_crypto(int argc, char **argv)
{
	static const struct option opts[] = {
		{"duration", required_argument, NULL, 'd'}, {"threads", required_argument, NULL, 't'}, {0}};
	double seconds = 1.0, threads = 1;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			seconds = wi_bench_num("--duration", optarg);
		else if (ch == 't')
			threads = wi_bench_num("--threads", optarg);
		else
			return 2;
	}
	if (threads < 1 || threads > THREADS_MAX) {
		fprintf(stderr, "wi-bench crypto: --threads 1..%d\n", THREADS_MAX);
		return 2;
	}
	memset(msg, 'm', sizeof(msg));
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	if (!ec || !rsa) {
		fprintf(stderr, "wi-bench crypto: OpenSSL setup failed\n");
		EVP_PKEY_free(ec);
		EVP_PKEY_free(rsa);
		return 1;
	}
	size_t n = (size_t)threads;
	static worker ws[THREADS_MAX];
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (size_t i = 0; i < n; i++) {
		ws[i] = (worker){.ec = ec, .rsa = rsa, .seconds = seconds, .go = &go};
		/* Threads already started would wait at the barrier for ever:
		 * exit without joining them. */
		if (i > 0 && pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "wi-bench crypto: cannot start %zu threads\n", n);
			return 1;
		}
	}
	worker_main(&ws[0]); /* this thread is the first worker */
	for (size_t i = 1; i < n; i++)
		pthread_join(ws[i].tid, NULL);
	double total[N_OPS] = {0};
	bool ok = true;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < N_OPS; k++) {
			ok = ok && ws[i].rates[k] > 0;
			total[k] += ws[i].rates[k];
		}
	pthread_barrier_destroy(&go);
	printf("{\"es256_sign\":%.0f,\"es256_verify\":%.0f,\"rs256_verify\":%.0f,\"p256_keygen\":%.0f,"
	       "\"seconds_each\":%.2f,\"threads\":%zu}\n",
	       total[0], total[1], total[2], total[3], seconds, n);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	return ok ? 0 : 1;
}
