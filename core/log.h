/* core/log.h — the logging dispatch point.
 *
 * Library code in core/ and attestors/ never logs (it returns errors with a
 * detail).  The edges (workload-api handlers, the daemon) log through
 * wi_log(), which hands one formatted line to the sink the daemon installed
 * (text or JSON, to stderr).  Never pass a token or key; log its id or a hash
 * prefix. */
#ifndef WI_CORE_LOG_H
#define WI_CORE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "core/config.h"

/* Receives one event: `event` is a short machine-readable name
 * ("x509_svid_issued"), `msg` the formatted "key=value ..." text. */
typedef void (*wi_log_sink)(wi_log_level level, const char *event, const char *msg);

/* Installs the sink and the minimum level (not thread-safe: call at start). */
void wi_log_set_sink(wi_log_sink sink, wi_log_level min_level);
/* True when `level` would be emitted (to skip building costly messages). */
bool wi_log_enabled(wi_log_level level);
void wi_log(wi_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* wi_log, the first time only for this `said` flag (one flag per kind of line
 * that every connection would repeat). */
void wi_log_once(atomic_bool *said, wi_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
