/* daemon/admin_entries.h — registration entries at run time: the store is the
 * source of truth, the config file seeds it, the admin socket edits it, and
 * every change is published to the Workload API server and the token service.
 *
 * Seeding (start and SIGHUP): the config's entries are written to the store
 * with source "config" under their content-hash ids (core/entry.h); config
 * entries no longer in the file are deleted; API entries are kept.  The
 * registry served is always built from the store (config entries in file
 * order, then API entries in creation order).
 *
 * Admin API (HTTP/1.1 on the admin socket, mounted by daemon/metrics.c; JSON
 * bodies, Content-Type application/json, strict: unknown keys, duplicate
 * names, bad SPIFFE IDs or selectors are 400):
 *   GET    /entries            200 {"entries": [entry, ...]}
 *   GET    /entries/{id}       200 entry | 404
 *   POST   /entries            one entry object (the config's shape) →
 *                              201 entry (with "id", "source":"api", "created")
 *                              | 400 | 409 duplicate | 413 (over 64 KiB)
 *   DELETE /entries/{id}       200 {"id", "deleted": true} | 404
 *                              | 409 when the entry comes from the config file
 *                              (edit the file and reload instead: a SIGHUP would
 *                              bring it back otherwise)
 *   POST   /entries/import     [entry, ...] or {"entries": [...]}, all or nothing →
 *                              201 {"imported": n, "entries": [...]} | 400 naming
 *                              the entry ("entries[3]: ...") | 409 | 413
 * Errors are {"error", "error_description"} with Cache-Control: no-store.
 * One log line per change (entry_created, entry_deleted, entries_imported)
 * and per refusal (entry_refused); never a body.
 *
 * Propagation: a change is committed to the store (one transaction), then the
 * loop thread is woken (uv_async), rebuilds the registry from the store,
 * publishes it to both servers and ticks the Workload API server at once, so
 * affected streams get their new state and streams left without identity end
 * with PERMISSION_DENIED.  The API answers after that publication (or after
 * WI_ADMIN_PUBLISH_WAIT_MS if the loop is stopping).
 *
 * Threading: open, attach, reload, stop and free on the loop thread; handle on
 * the HTTP thread pool. */
#ifndef WI_DAEMON_ADMIN_ENTRIES_H
#define WI_DAEMON_ADMIN_ENTRIES_H

#include <stdbool.h>

#include <uv.h>

#include "core/config.h"
#include "core/error.h"
#include "core/registry.h"
#include "core/store.h"
#include "daemon/tts.h"
#include "txn-token/http.h"
#include "workload-api/server.h"

typedef struct wi_admin_entries wi_admin_entries;

/* Seeds the state store (borrowed: it must outlive the result) with the
 * config's entries and builds the first registry. */
int wi_admin_entries_open(const wi_config *c, wi_store *store, wi_admin_entries **ret) WI_WUR;
/* The registry served now (a new reference). */
wi_registry *wi_admin_entries_registry(wi_admin_entries *a);
/* Starts publishing changes to `wl` and `tts` (either may be NULL) from
 * `loop`; publishes the current registry to `tts` at once. */
int wi_admin_entries_attach(wi_admin_entries *a, uv_loop_t *loop, wi_wl_server *wl, wi_daemon_tts *tts) WI_WUR;
/* SIGHUP: re-seeds from `c` and publishes.  On error nothing changed. */
int wi_admin_entries_reload(wi_admin_entries *a, const wi_config *c) WI_WUR;
/* True when `req` is for /entries...; then `resp` is filled. */
bool wi_admin_entries_handle(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp);
/* Stops publishing (closes the async handle on the loop).  Accepts NULL. */
void wi_admin_entries_stop(wi_admin_entries *a);
/* After the loop has drained.  Accepts NULL; returns NULL. */
wi_admin_entries *wi_admin_entries_free(wi_admin_entries *a);

#endif
