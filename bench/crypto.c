/* bench/crypto.c — the crypto ceiling: OpenSSL (EVP API) ES256 sign, ES256
 * and RS256 verify and P-256 key generation, each in a single-thread timing
 * loop (a per-core rate).  The signing input is a SHA-256 digest, as the
 * daemon's signer interface takes one (STYLE §11); the digest of a ~500-byte
 * JWS signing input is included in every operation.
 *
 *   wi-bench crypto [--duration S]      (seconds per operation) */
#include <getopt.h>
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

int wi_bench_crypto(int argc, char **argv)
{
	static const struct option opts[] = {{"duration", required_argument, NULL, 'd'}, {0}};
	double seconds = 1.0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'd')
			return 2;
		seconds = wi_bench_num("--duration", optarg);
	}
	memset(msg, 'm', sizeof(msg));
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	sig_ud es_s, es_v, rs_s, rs_v;
	if (!ec || !rsa || prepare(ec, 0, &es_s, &es_v) < 0 || prepare(rsa, RSA_PKCS1_PADDING, &rs_s, &rs_v) < 0) {
		fprintf(stderr, "wi-bench crypto: OpenSSL setup failed\n");
		return 1;
	}
	double sign = rate(sign_op, &es_s, seconds);
	double verify = rate(verify_op, &es_v, seconds);
	double rs_verify = rate(verify_op, &rs_v, seconds);
	double keygen = rate(keygen_op, NULL, seconds);
	printf("{\"es256_sign\":%.0f,\"es256_verify\":%.0f,\"rs256_verify\":%.0f,\"p256_keygen\":%.0f,"
	       "\"seconds_each\":%.2f}\n",
	       sign, verify, rs_verify, keygen, seconds);
	EVP_PKEY_CTX_free(es_s.ctx);
	EVP_PKEY_CTX_free(es_v.ctx);
	EVP_PKEY_CTX_free(rs_s.ctx);
	EVP_PKEY_CTX_free(rs_v.ctx);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	return sign > 0 && verify > 0 && rs_verify > 0 && keygen > 0 ? 0 : 1;
}
