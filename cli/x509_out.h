/* cli/x509_out.h — printing and writing X.509 contexts for wimsectl. */
#ifndef WI_CLI_X509_OUT_H
#define WI_CLI_X509_OUT_H

#include <stdio.h>

#include "core/error.h"
#include "wimse/wimse.h"

/* Prints each SVID's ID, hint, validity and CA validity, like
 * `spire-agent api fetch x509`. */
int wi_cli_print_x509(FILE *out, const wimse_x509_context *ctx, double elapsed_ms) WI_WUR;
/* Writes svid.N.pem (chain), svid.N.key (PKCS#8 PEM, 0600) and bundle.N.pem
 * into dir, atomically. */
int wi_cli_write_x509(const char *dir, const wimse_x509_context *ctx) WI_WUR;

#endif
