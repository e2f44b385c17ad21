/* cli/entry.h — `wimsectl entry create|list|show|delete|import`: registration
 * entries through the admin socket (daemon/admin_entries.h).  Every
 * subcommand takes --admin-socket PATH (default as `wimsectl status`). */
#ifndef WI_CLI_ENTRY_H
#define WI_CLI_ENTRY_H

/* argv[0] is "entry".  Returns the exit status: 0 on success, 1 when the
 * daemon refused or could not be reached (one line on stderr), 2 on bad
 * usage. */
int wi_cli_entry(int timeout_ms, int argc, char **argv);

#endif
