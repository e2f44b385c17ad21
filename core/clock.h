/* core/clock.h — the wall-clock second, exact.
 *
 * time(2) on Linux reads the kernel's coarse clock, which moves once per
 * kernel tick: up to one tick (4 ms at HZ=250) behind CLOCK_REALTIME.  The
 * daemon's tick runs 2 ms after each second boundary (daemon/main.c) so that
 * what falls due at second S (an SVID refresh, a key rotation, a revocation's
 * expiry) goes out at S plus a few milliseconds; read with time(2), S would
 * still look like S - 1 there, and all of it would wait a whole second.  So
 * every "now" the daemon decides by comes from here. */
#ifndef WI_CORE_CLOCK_H
#define WI_CORE_CLOCK_H

#include <time.h>

/* CLOCK_REALTIME's seconds (time(2) only if that clock cannot be read). */
time_t wi_clock_now(void);

#endif
