/* cli/admin.h — talking to the daemon's admin socket (HTTP/1.1 on a Unix
 * socket, owner-only; see daemon/metrics.h and daemon/admin_entries.h): one
 * helper shared by `wimsectl status` and `wimsectl entry`. */
#ifndef WI_CLI_ADMIN_H
#define WI_CLI_ADMIN_H

#include <stddef.h>

/* `given` (--admin-socket) if set, else $WIMSED_ADMIN_SOCKET, else
 * ./run/admin.sock. */
const char *wi_cli_admin_socket(const char *given);

/* One request: `method` on `path`, with `body` (JSON, may be NULL).  On 0,
 * *ret_status is the HTTP status and *ret_body the NUL-terminated response
 * body (malloc'd, the caller frees).  On -1 one line was printed on stderr
 * (socket unreachable, timeout, response larger than `max_response`). */
int wi_cli_admin_request(const char *socket, int timeout_ms, const char *method, const char *path, const char *body,
			 size_t max_response, long *ret_status, char **ret_body);

/* Prints one line for an error answer: "wimsectl: WHAT: DESCRIPTION (HTTP N)",
 * the description taken from the RFC 6749-style JSON body when there is one. */
void wi_cli_admin_print_error(const char *what, long status, const char *body);

#endif
