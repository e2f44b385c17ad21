/* daemon/notify.c — sd_notify(3) through a libsystemd opened on need. */
#include "daemon/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dl.h"
#include "core/limits.h"

#define LIBSYSTEMD_SONAME "libsystemd.so.0"

static struct {
	int (*notify)(int unset_environment, const char *state);
	int (*watchdog_enabled)(int unset_environment, uint64_t *usec);
} api;

int wi_daemon_notify_open(void)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	if (!sock || !*sock)
		return 0;
	if (api.notify)
		return 0;
	void *lib = NULL;
	if (wi_dl_open(LIBSYSTEMD_SONAME, &lib) < 0)
		WI_FAIL(WI_E_UNAVAILABLE, "NOTIFY_SOCKET is set but %s cannot be loaded: %s", LIBSYSTEMD_SONAME,
			wi_error_detail());
	if (wi_dl_function(lib, "sd_notify", &api.notify, sizeof(api.notify)) < 0 ||
	    wi_dl_function(lib, "sd_watchdog_enabled", &api.watchdog_enabled, sizeof(api.watchdog_enabled)) < 0) {
		memset(&api, 0, sizeof(api));
		WI_FAIL(WI_E_UNAVAILABLE, "%s %s", LIBSYSTEMD_SONAME, wi_error_detail());
	}
	return 0;
}

void wi_daemon_notify(const char *state)
{
	if (api.notify)
		(void)api.notify(0, state); /* best effort, as sd_notify(3) intends */
}

void wi_daemon_notifyf(const char *fmt, ...)
{
	if (!api.notify)
		return;
	char state[WI_NOTIFY_STATE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	if (n >= 0)
		wi_daemon_notify(state);
}

bool wi_daemon_notify_watchdog(uint64_t *ret_usec)
{
	uint64_t usec = 0;
	if (!api.watchdog_enabled || api.watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return false;
	*ret_usec = usec;
	return true;
}
