/* daemon/tts.h — wiring of the Transaction Token Service: state store,
 * revocations, keys, issuers, the run tracker, the HTTP listeners and the
 * daemon's own TLS certificate (an X.509-SVID for its issuer id, re-minted at
 * half-life).  All calls on the loop thread. */
#ifndef WI_DAEMON_TTS_H
#define WI_DAEMON_TTS_H

#include <uv.h>

#include "attestors/attest.h"
#include "core/ca.h"
#include "core/config.h"
#include "core/jwt_keys.h"
#include "core/registry.h"
#include "core/store.h"
#include "txn-token/revocations.h"
#include "txn-token/service.h"

typedef struct wi_daemon_tts wi_daemon_tts;

/* Starts the service when the config has a `txn` section (*ret NULL and 0
 * when it has none).  Borrows everything, the store included; the config
 * must outlive it (a reload keeps the old one alive for the service's
 * issuers). */
int wi_daemon_tts_start(uv_loop_t *loop, const wi_config *c, wi_store *store, wi_attestor *attestor,
			wi_jwt_keys *svid_keys, wi_ca *ca, wi_daemon_tts **ret);
void wi_daemon_tts_set_registry(wi_daemon_tts *t, wi_registry *r);
/* Once a second: prune expired revocations now and then, rotate the TLS
 * certificate at half-life. */
void wi_daemon_tts_tick(wi_daemon_tts *t);
/* Closes the listeners and watchers (their handles close on the loop). */
void wi_daemon_tts_stop(wi_daemon_tts *t);
/* The revocation index (thread-safe), for metrics; NULL when `t` is NULL.
 * Valid until wi_daemon_tts_free. */
wi_revocations *wi_daemon_tts_revocations(const wi_daemon_tts *t);
/* The token service (thread-safe stats), for metrics; NULL when `t` is NULL
 * or the service is off.  Valid until wi_daemon_tts_free. */
wi_tts *wi_daemon_tts_service(const wi_daemon_tts *t);
/* The Txn-Token signing keys (for metrics); NULL when t is NULL. */
wi_jwt_keys *wi_daemon_tts_txn_keys(const wi_daemon_tts *t);
/* After the loop has drained (every request finished): closes the last
 * loop handles; run the loop once more, then call wi_daemon_tts_free. */
void wi_daemon_tts_close(wi_daemon_tts *t);
/* Frees the rest. */
void wi_daemon_tts_free(wi_daemon_tts *t);

#endif
