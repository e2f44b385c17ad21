/* cli/x509_out.c — DER to PEM and human output. */
#include "cli/x509_out.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fsutil.h"

/* Calls fn on every certificate of a DER concatenation. */
static int each_cert(const uint8_t *der, size_t len, int (*fn)(X509 *, void *), void *ud)
{
	const uint8_t *p = der;
	const uint8_t *end = der + len;
	int n = 0;
	while (p < end) {
		_cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)(end - p));
		WI_CHECK_SSL(x, "certificate DER");
		WI_TRY(fn(x, ud));
		n++;
	}
	WI_CHECK(n > 0, WI_E_PARSE, "no certificate");
	return 0;
}

static int append_pem(X509 *x, void *ud)
{
	BIO *b = ud;
	WI_CHECK_SSL(PEM_write_bio_X509(b, x) == 1, "PEM encode");
	return 0;
}

static int der_to_pem_file(const uint8_t *der, size_t len, const char *path)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
	WI_CHECK_SSL(b, "BIO");
	WI_TRY(each_cert(der, len, append_pem, b));
	char *data;
	long n = BIO_get_mem_data(b, &data);
	return wi_fs_write_atomic(path, data, (size_t)n, 0644);
}

static int key_to_pem_file(const uint8_t *der, size_t len, const char *path)
{
	const uint8_t *p = der;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)len);
	WI_CHECK_SSL(k, "private key DER");
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_secmem());
	WI_CHECK_SSL(b, "BIO");
	/* PKCS#8 "PRIVATE KEY", unencrypted. */
	WI_CHECK_SSL(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1, "PEM encode key");
	char *data;
	long n = BIO_get_mem_data(b, &data);
	return wi_fs_write_atomic(path, data, (size_t)n, 0600);
}

int wi_cli_write_x509(const char *dir, const wimse_x509_context *ctx)
{
	WI_TRY(wi_fs_mkdir_private(dir));
	for (size_t i = 0; i < ctx->n_svids; i++) {
		const wimse_x509_svid *s = &ctx->svids[i];
		char name[64], path[4096];
		snprintf(name, sizeof(name), "svid.%zu.pem", i);
		WI_TRY(wi_fs_join(path, sizeof(path), dir, name));
		WI_TRY(der_to_pem_file(s->chain_der, s->chain_len, path));
		snprintf(name, sizeof(name), "svid.%zu.key", i);
		WI_TRY(wi_fs_join(path, sizeof(path), dir, name));
		WI_TRY(key_to_pem_file(s->key_der, s->key_len, path));
		snprintf(name, sizeof(name), "bundle.%zu.pem", i);
		WI_TRY(wi_fs_join(path, sizeof(path), dir, name));
		WI_TRY(der_to_pem_file(s->bundle_der, s->bundle_len, path));
	}
	return 0;
}

static void print_time(FILE *out, const char *label, const ASN1_TIME *t)
{
	struct tm tm;
	char buf[64] = "?";
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
	fprintf(out, "%-22s%s\n", label, buf);
}

typedef struct ca_print {
	FILE *out;
	int n;
} ca_print;

static int print_ca(X509 *x, void *ud)
{
	ca_print *cp = ud;
	char label[64];
	cp->n++;
	snprintf(label, sizeof(label), "CA #%d Valid After:", cp->n);
	print_time(cp->out, label, X509_get0_notBefore(x));
	snprintf(label, sizeof(label), "CA #%d Valid Until:", cp->n);
	print_time(cp->out, label, X509_get0_notAfter(x));
	return 0;
}

int wi_cli_print_x509(FILE *out, const wimse_x509_context *ctx, double elapsed_ms)
{
	fprintf(out, "Received %zu svid after %.3fms\n", ctx->n_svids, elapsed_ms);
	for (size_t i = 0; i < ctx->n_svids; i++) {
		const wimse_x509_svid *s = &ctx->svids[i];
		const uint8_t *p = s->chain_der;
		_cleanup_(X509_freep) X509 *leaf = d2i_X509(NULL, &p, (long)s->chain_len);
		WI_CHECK_SSL(leaf, "leaf certificate");
		fprintf(out, "\n%-22s%s\n", "SPIFFE ID:", s->spiffe_id);
		if (s->hint[0])
			fprintf(out, "%-22s%s\n", "Hint:", s->hint);
		print_time(out, "SVID Valid After:", X509_get0_notBefore(leaf));
		print_time(out, "SVID Valid Until:", X509_get0_notAfter(leaf));
		ca_print cp = {out, 0};
		WI_TRY(each_cert(s->bundle_der, s->bundle_len, print_ca, &cp));
	}
	return 0;
}
