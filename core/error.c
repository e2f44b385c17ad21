/* core/error.c — error table lookups and the thread-local failure detail. */
#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "core/limits.h"

static _Thread_local char detail[WI_ERROR_DETAIL_MAX];

const char *wi_error_text(int code)
{
	switch (code) {
#define WI__ERR_TEXT(name, value, grpc, oauth, text)                                       \
	case (value):                                                                      \
		return (text);
		WI_ERRORS(WI__ERR_TEXT)
#undef WI__ERR_TEXT
	}
	return "unknown error";
}

int wi_error_grpc_status(int code)
{
	switch (code) {
#define WI__ERR_GRPC(name, value, grpc, oauth, text)                                       \
	case (value):                                                                      \
		return (grpc);
		WI_ERRORS(WI__ERR_GRPC)
#undef WI__ERR_GRPC
	}
	return 13;
}

const char *wi_error_oauth(int code)
{
	switch (code) {
#define WI__ERR_OAUTH(name, value, grpc, oauth, text)                                      \
	case (value):                                                                      \
		return (oauth) ? (oauth) : "server_error";
		WI_ERRORS(WI__ERR_OAUTH)
#undef WI__ERR_OAUTH
	}
	return "server_error";
}

const char *wi_grpc_status_name(int status)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	};
	return status >= 0 && status < (int)(sizeof(names) / sizeof(names[0])) ? names[status] : "UNKNOWN";
}

const char *wi_error_detail(void)
{
	return detail;
}

void wi_error_clear(void)
{
	detail[0] = '\0';
}

static const char *base_name(const char *file)
{
	/* Keep "core/ca.c" rather than an absolute build path. */
	const char *p = strstr(file, "/core/");
	if (!p)
		p = strstr(file, "/attestors/");
	if (!p)
		p = strstr(file, "/workload-api/");
	if (!p)
		p = strstr(file, "/daemon/");
	if (!p)
		p = strstr(file, "/client/");
	if (!p)
		p = strstr(file, "/txn-token/");
	if (!p)
		p = strstr(file, "/cli/");
	return p ? p + 1 : file;
}

int wi__error_set(int code, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	/* Formatted aside, then copied: an argument may be wi_error_detail()
	 * itself (the cause a caller wraps), which must be read whole before
	 * the slot is overwritten. */
	char text[sizeof(detail)];
	int n = snprintf(text, sizeof(text), "%s:%d: %s: ", base_name(file), line, wi_error_text(code));
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(text)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	text[sizeof(text) - 1] = '\0';
	memcpy(detail, text, strlen(text) + 1);
	errno = saved;
	return code;
}

int wi__error_set_ssl(int code, const char *file, int line, const char *what)
{
	char reason[256] = "no OpenSSL reason";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	return wi__error_set(code, file, line, "%s: %s", what, reason);
}
