/* cli/status.h — `wimsectl status`: the daemon's state from GET /status on
 * the admin socket (owner-only; see daemon/metrics.h). */
#ifndef WI_CLI_STATUS_H
#define WI_CLI_STATUS_H

/* argv[0] is "status".  Returns the exit status: 0 when the daemon reports
 * SERVING, 1 otherwise (or when it cannot be reached), 2 on bad usage. */
int wi_cli_status(int timeout_ms, int argc, char **argv);

#endif
