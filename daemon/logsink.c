/* daemon/logsink.c — formats log events for stderr. */
#include "daemon/logsink.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"

static bool as_json;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_name(wi_log_level l)
{
	switch (l) {
	case WI_LOG_DEBUG: return "debug";
	case WI_LOG_INFO: return "info";
	case WI_LOG_WARN: return "warn";
	case WI_LOG_ERROR: return "error";
	}
	return "info";
}

/* Escapes control and non-ASCII bytes: values in messages can come from
 * callers (executable paths, cgroup names) and must not forge log lines. */
static void sanitize(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < cap; p++) {
		if (*p >= 0x20 && *p < 0x7f) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

static void sink(wi_log_level level, const char *event, const char *raw)
{
	char msg[4096];
	sanitize(raw, msg, sizeof(msg));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[64];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	if (as_json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level", level_name(level), "event",
				      event, "msg", msg);
		char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
		pthread_mutex_lock(&out_lock);
		if (line)
			fprintf(stderr, "%s\n", line);
		pthread_mutex_unlock(&out_lock);
		free(line);
		json_decref(o);
		return;
	}
	pthread_mutex_lock(&out_lock);
	fprintf(stderr, "%s %-5s %s %s\n", when, level_name(level), event, msg);
	pthread_mutex_unlock(&out_lock);
}

void wi_logsink_install(wi_log_level min_level, bool json)
{
	as_json = json;
	wi_log_set_sink(sink, min_level);
}
