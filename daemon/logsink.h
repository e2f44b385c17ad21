/* daemon/logsink.h — the daemon's log sink: one line per event on stderr,
 * as text or as JSON. */
#ifndef WI_DAEMON_LOGSINK_H
#define WI_DAEMON_LOGSINK_H

#include <stdbool.h>

#include "core/config.h"

/* Installs the sink for wi_log(). */
void wi_logsink_install(wi_log_level min_level, bool json);

#endif
