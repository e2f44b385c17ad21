/* cli/txn.h — wimsectl's commands for the Transaction Token Service (HTTP on
 * the exchange socket, through libcurl). */
#ifndef WI_CLI_TXN_H
#define WI_CLI_TXN_H

/* Each returns the process exit status.  argv[0] is the subcommand name. */
int wi_cli_exchange(const char *socket, int timeout_ms, int argc, char **argv);
int wi_cli_introspect(const char *socket, int timeout_ms, int argc, char **argv);
int wi_cli_revoke(const char *socket, int timeout_ms, int argc, char **argv);
int wi_cli_dev_user_token(const char *socket, int timeout_ms, int argc, char **argv);
int wi_cli_token_decode(int argc, char **argv);
int wi_cli_token_verify(const char *socket, int timeout_ms, int argc, char **argv);

#endif
