/* core/clock.c — see clock.h. */
#include "core/clock.h"

time_t wi_clock_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return time(NULL);
	return ts.tv_sec;
}
