/* txn-token/jwks_fetch.h — one bounded HTTP(S) GET of a JWKS document, with
 * libcurl loaded into the process only when an issuer needs it.
 *
 * The daemon does not link libcurl: it is opened (dlopen) by
 * wi_jwks_fetch_init, which the issuer set calls when the config names a
 * `jwks_url`.  A node whose issuers are all `jwks_file` (or none) never maps
 * libcurl and what it pulls in (GnuTLS, Kerberos, LDAP, SSH, RTMP …): less
 * memory, a shorter start, and less code in a process that holds keys.
 *
 * A fetch: http or https only, no redirects, WI_JWKS_CONNECT_TIMEOUT_MS /
 * WI_JWKS_TOTAL_TIMEOUT_MS, the body capped at WI_JWKS_DOC_MAX (the transfer
 * stops at the cap), libcurl's signal use off.  Runs on the calling thread. */
#ifndef WI_TXN_TOKEN_JWKS_FETCH_H
#define WI_TXN_TOKEN_JWKS_FETCH_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/error.h"

/* Loads and initialises libcurl once per process; later calls return the
 * first call's result.  Thread-safe (libcurl must report CURL_VERSION_THREADSAFE,
 * since other threads may be running).  WI_E_UNAVAILABLE when the library
 * cannot be opened, lacks a symbol, is not thread-safe or fails to start. */
int wi_jwks_fetch_init(void) WI_WUR;

/* Whether libcurl is loaded in this process (for tests and diagnostics). */
bool wi_jwks_fetch_loaded(void);

/* GETs `url`.  `cancelled(ud)` is polled during the transfer; true aborts it.
 * On success *ret_doc (initialised here, capped at WI_JWKS_DOC_MAX; free with
 * wi_buf_free) holds the body of a 200 reply and *ret_max_age the reply's
 * Cache-Control max-age in seconds (RFC 9111 §5.2.2.1), 0 for no-store or
 * no-cache, -1 when absent.  Errors, WI_E_UNAVAILABLE with the reason in the
 * detail: not initialised, document too large, transfer failed or cancelled,
 * a status other than 200; WI_E_NOMEM.  Nothing is written on failure. */
int wi_jwks_fetch_get(const char *url, bool (*cancelled)(void *ud), void *ud, wi_buf *ret_doc,
		      long *ret_max_age) WI_WUR;

#endif
