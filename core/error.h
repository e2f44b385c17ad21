/* core/error.h — the one table of domain errors, and the guard macros.
 *
 * A fallible function returns int: 0 on success or a negative WI_E_* code.
 * Each code maps, in exactly one place (WI_ERRORS below), to a gRPC status
 * number and an OAuth 2.0 `error` string, so transports never invent their own
 * mapping.  core/ never logs: a failing guard records "file:line: reason" in a
 * thread-local slot that the caller at the edge reads with wi_error_detail()
 * and logs once. */
#ifndef WI_CORE_ERROR_H
#define WI_CORE_ERROR_H

#include <stddef.h>

#define WI_WUR __attribute__((warn_unused_result))

/* X(name, value, grpc_status, oauth_error, text)
 * gRPC status numbers: 0 OK, 3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS,
 * 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 INTERNAL,
 * 14 UNAVAILABLE, 16 UNAUTHENTICATED. */
#define WI_ERRORS(X)                                                                       \
	X(WI_OK, 0, 0, NULL, "success")                                                          \
	X(WI_E_NOMEM, -1, 8, "server_error", "out of memory")                                   \
	X(WI_E_INVAL, -2, 3, "invalid_request", "invalid argument")                             \
	X(WI_E_PARSE, -3, 3, "invalid_request", "malformed input")                              \
	X(WI_E_TOO_BIG, -4, 8, "invalid_request", "input exceeds a limit")                      \
	X(WI_E_IO, -5, 14, "server_error", "I/O error")                                         \
	X(WI_E_CRYPTO, -6, 13, "server_error", "cryptographic operation failed")                \
	X(WI_E_NOT_FOUND, -7, 5, "invalid_request", "not found")                                \
	X(WI_E_PERMISSION, -8, 7, "unauthorized_client", "no identity for this caller")        \
	X(WI_E_UNAUTHENTICATED, -9, 16, "invalid_client", "caller could not be verified")      \
	X(WI_E_UNAVAILABLE, -10, 14, "temporarily_unavailable", "temporarily unavailable")     \
	X(WI_E_CONFIG, -11, 3, "invalid_request", "invalid configuration")                      \
	X(WI_E_EXISTS, -12, 6, "invalid_request", "already exists")                             \
	X(WI_E_UNIMPLEMENTED, -13, 12, "unsupported_grant_type", "not implemented")            \
	X(WI_E_SPIFFE_ID, -14, 3, "invalid_request", "invalid SPIFFE ID")                      \
	X(WI_E_SELECTOR, -15, 3, "invalid_request", "invalid selector")                        \
	X(WI_E_EXPIRED, -16, 3, "invalid_grant", "expired")                                     \
	X(WI_E_INTERNAL, -17, 13, "server_error", "internal error")                             \
	X(WI_E_REVOKED, -18, 7, "invalid_grant", "revoked")

enum wi_error {
#define WI__ERR_ENUM(name, value, grpc, oauth, text) name = (value),
	WI_ERRORS(WI__ERR_ENUM)
#undef WI__ERR_ENUM
};

/* Static text for a code ("invalid SPIFFE ID"); never NULL. */
const char *wi_error_text(int code);
/* gRPC status number for a code; 13 (INTERNAL) for unknown codes. */
int wi_error_grpc_status(int code);
/* OAuth `error` value for a code; "server_error" for unknown codes. */
const char *wi_error_oauth(int code);
/* The canonical name of a gRPC status code ("PERMISSION_DENIED"; gRPC's
 * doc/statuscodes.md), "UNKNOWN" outside 0..16.  Static. */
const char *wi_grpc_status_name(int status);

/* The calling thread's last recorded failure: "file:line: code text: detail".
 * Valid until the next failure on the same thread.  Never NULL. */
const char *wi_error_detail(void);
/* Clears the calling thread's detail. */
void wi_error_clear(void);

/* Records a failure with a printf-style detail and returns `code` (for
 * `return wi__error_set(...)`).  Used through the macros below.  The
 * arguments may include wi_error_detail(): a caller wraps the cause it got
 * with WI_FAIL(rc, "reading %s: %s", path, wi_error_detail()), and the
 * cause is read before the slot is rewritten.  Truncated to
 * WI_ERROR_DETAIL_MAX - 1 bytes. */
int wi__error_set(int code, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like wi__error_set but appends the reason of OpenSSL's error queue and
 * clears it. */
int wi__error_set_ssl(int code, const char *file, int line, const char *what);

/* --- The guard macros (six, no more) ---------------------------------- */

/* Fails with `code` and a formatted reason. */
#define WI_FAIL(code, ...) return wi__error_set((code), __FILE__, __LINE__, __VA_ARGS__)

/* Evaluates a fallible call; returns its error unchanged (the callee already
 * recorded why). */
#define WI_TRY(expr)                                                                       \
	do {                                                                               \
		int wi__r = (expr);                                                        \
		if (wi__r < 0)                                                             \
			return wi__r;                                                      \
	} while (0)

/* Returns `code` with a reason unless `cond` holds. */
#define WI_CHECK(cond, code, ...)                                                          \
	do {                                                                               \
		if (!(cond))                                                               \
			return wi__error_set((code), __FILE__, __LINE__, __VA_ARGS__);     \
	} while (0)

/* Returns WI_E_NOMEM unless `ptr` is non-NULL. */
#define WI_CHECK_ALLOC(ptr)                                                                \
	do {                                                                               \
		if (!(ptr))                                                                \
			return wi__error_set(WI_E_NOMEM, __FILE__, __LINE__, "allocation"); \
	} while (0)

/* Returns WI_E_CRYPTO with OpenSSL's queued reason unless `cond` holds. */
#define WI_CHECK_SSL(cond, what)                                                           \
	do {                                                                               \
		if (!(cond))                                                               \
			return wi__error_set_ssl(WI_E_CRYPTO, __FILE__, __LINE__, (what)); \
	} while (0)

/* Returns -errno as WI_E_IO with the failing operation named, unless `cond`. */
#define WI_CHECK_ERRNO(cond, ...)                                                          \
	do {                                                                               \
		if (!(cond))                                                               \
			return wi__error_set(WI_E_IO, __FILE__, __LINE__, __VA_ARGS__);    \
	} while (0)

#endif
