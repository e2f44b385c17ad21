/* core/log.c — formats a log line and hands it to the installed sink. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static wi_log_sink sink;
static wi_log_level min_level = WI_LOG_INFO;

void wi_log_set_sink(wi_log_sink s, wi_log_level level)
{
	sink = s;
	min_level = level;
}

bool wi_log_enabled(wi_log_level level)
{
	return sink && level >= min_level;
}

__attribute__((format(printf, 3, 0))) static void log_v(wi_log_level level, const char *event, const char *fmt,
							  va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	sink(level, event, msg);
}

void wi_log(wi_log_level level, const char *event, const char *fmt, ...)
{
	if (!wi_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v(level, event, fmt, ap);
	va_end(ap);
}

void wi_log_once(atomic_bool *said, wi_log_level level, const char *event, const char *fmt, ...)
{
	if (!wi_log_enabled(level) || atomic_exchange(said, true))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v(level, event, fmt, ap);
	va_end(ap);
}
