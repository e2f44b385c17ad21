/* workload-api/handlers.c — the Workload API and health methods. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/cleanup.h"
#include "core/limits.h"
#include "core/log.h"
#include "grpc/health/v1/health.pb-c.h"
#include "workload-api/internal.h"
#include "workload.pb-c.h"

int wi__call_unpack(wi__call *c, const ProtobufCMessageDescriptor *desc, const uint8_t *req, size_t len,
		    ProtobufCMessage **ret)
{
	int rc = wi__request_unpack(desc, req, len, ret);
	if (rc == 0)
		return 0;
	wi_log(WI_LOG_WARN, "bad_request", "method=%s reason=\"%s\"", c->method_name, wi_error_detail());
	wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
			rc == WI_E_PARSE ? "malformed request" : "a string field holds a NUL byte");
	return rc;
}

/* Packs a message into a fresh buffer, refusing responses that clients could
 * not receive (4 MiB default limit). */
static int pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	WI_CHECK(n <= WI_GRPC_RESPONSE_MAX, WI_E_TOO_BIG,
		 "response of %zu bytes exceeds the %u-byte limit", n, (unsigned)WI_GRPC_RESPONSE_MAX);
	uint8_t *buf = malloc(n ? n : 1);
	WI_CHECK_ALLOC(buf);
	protobuf_c_message_pack(m, buf);
	*ret = buf;
	*ret_len = n;
	return 0;
}

int wi__build_x509_svid(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			time_t *ret_next)
{
	wi_wl_server *s = c->srv;
	const wi_identities *ids = c->ids;
	size_t n = wi_identities_count(ids);
	/* One snapshot for the whole message: its bundle verifies every SVID
	 * minted below (an SVID's CA is published before it signs). */
	wi_ca_snapshot *cas = wi_ca_snapshot_get(s->ca);
	size_t bundle_len;
	const uint8_t *bundle = wi_ca_snapshot_bundle_der(cas, &bundle_len);
	c->bundle_gen = wi_ca_snapshot_generation(cas);
	wi_x509_svid **svids = calloc(n, sizeof(*svids));
	X509SVID *items = calloc(n, sizeof(*items));
	X509SVID **ptrs = calloc(n, sizeof(*ptrs));
	int rc = svids && items && ptrs ? 0 : WI_E_NOMEM;
	time_t next = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const wi_identity *id = wi_identities_at(ids, i);
		int64_t ttl = id->x509_ttl ? id->x509_ttl : s->default_ttl;
		time_t refresh = 0;
		rc = wi_x509_cache_get(s->x509_cache, id->spiffe_id, ttl, now, &svids[i], &refresh);
		if (rc < 0)
			break;
		if (!next || refresh < next)
			next = refresh;
		X509SVID init = X509_SVID__INIT;
		items[i] = init;
		items[i].spiffe_id = (char *)id->spiffe_id;
		items[i].x509_svid.data = (uint8_t *)wi_x509_svid_chain_der(svids[i], &items[i].x509_svid.len);
		items[i].x509_svid_key.data = (uint8_t *)wi_x509_svid_key_der(svids[i], &items[i].x509_svid_key.len);
		items[i].bundle.data = (uint8_t *)bundle;
		items[i].bundle.len = bundle_len;
		items[i].hint = (char *)id->hint;
		ptrs[i] = &items[i];
	}
	if (rc == 0) {
		X509SVIDResponse resp = X509_SVIDRESPONSE__INIT;
		resp.n_svids = n;
		resp.svids = ptrs;
		rc = pack(&resp.base, ret, ret_len);
	}
	for (size_t i = 0; svids && i < n; i++)
		wi_x509_svid_unref(svids[i]);
	free(svids);
	free(items);
	free(ptrs);
	wi_ca_snapshot_unref(cas);
	if (rc < 0)
		return rc;
	*ret_secret = true; /* the message carries private keys */
	*ret_next = next;
	wi_log(WI_LOG_INFO, "x509_svid_sent", "pid=%d uid=%u svids=%zu default=%s", (int)wi_peer_pid(c->conn->peer),
	       (unsigned)wi_peer_uid(c->conn->peer), n, wi_identities_at(ids, 0)->spiffe_id);
	return 0;
}

int wi__build_x509_bundles(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			   time_t *ret_next)
{
	wi_wl_server *s = c->srv;
	const char *td = wi_registry_trust_domain(c->reg);
	char key[WI_TRUST_DOMAIN_MAX + 16];
	snprintf(key, sizeof(key), "spiffe://%s", td); /* map keys as SPIRE emits them */
	X509BundlesResponse__BundlesEntry entry = X509_BUNDLES_RESPONSE__BUNDLES_ENTRY__INIT;
	entry.key = key;
	wi_ca_snapshot *cas = wi_ca_snapshot_get(s->ca);
	entry.value.data = (uint8_t *)wi_ca_snapshot_bundle_der(cas, &entry.value.len);
	c->bundle_gen = wi_ca_snapshot_generation(cas);
	X509BundlesResponse__BundlesEntry *entries[1] = {&entry};
	X509BundlesResponse resp = X509_BUNDLES_RESPONSE__INIT;
	resp.n_bundles = 1;
	resp.bundles = entries;
	int rc = pack(&resp.base, ret, ret_len);
	wi_ca_snapshot_unref(cas);
	WI_TRY(rc);
	*ret_secret = false;
	*ret_next = 0; /* pushed again only on events (registry, CA changes) */
	wi_log(WI_LOG_DEBUG, "x509_bundles_sent", "pid=%d", (int)wi_peer_pid(c->conn->peer));
	return 0;
}

/* Opens a stream for `build` after the request parsed and the caller holds at
 * least one identity. */
void wi__stream_open(wi__call *c, wi__builder build)
{
	wi_identities *ids = NULL;
	wi_selector_set *sel = NULL;
	wi_registry *reg = NULL;
	if (wi__call_identities(c, &ids, &sel, &reg) < 0)
		return;
	wi__stream_start(c, build, sel, reg, ids);
}

void wi__handle_fetch_x509_svid(wi__call *c, const uint8_t *req, size_t len)
{
	ProtobufCMessage *in = NULL;
	if (wi__call_unpack(c, &x509_svidrequest__descriptor, req, len, &in) < 0)
		return;
	wi__request_free(in);
	wi__stream_open(c, wi__build_x509_svid);
}

void wi__handle_fetch_x509_bundles(wi__call *c, const uint8_t *req, size_t len)
{
	ProtobufCMessage *in = NULL;
	if (wi__call_unpack(c, &x509_bundles_request__descriptor, req, len, &in) < 0)
		return;
	wi__request_free(in);
	wi__stream_open(c, wi__build_x509_bundles);
}

void wi__handle_health_check(wi__call *c, const uint8_t *req, size_t len)
{
	ProtobufCMessage *m = NULL;
	if (wi__call_unpack(c, &grpc__health__v1__health_check_request__descriptor, req, len, &m) < 0)
		return;
	const Grpc__Health__V1__HealthCheckRequest *in = (const Grpc__Health__V1__HealthCheckRequest *)m;
	bool known = !in->service || !*in->service || strcmp(in->service, "SpiffeWorkloadAPI") == 0;
	wi__request_free(m);
	if (!known) {
		/* gRPC health checking protocol: unknown service → NOT_FOUND. */
		wi_log(WI_LOG_INFO, "request_refused", "method=%s status=NOT_FOUND reason=\"unknown health service\"",
		       c->method_name);
		wi__call_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service");
		return;
	}
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	/* NOT_SERVING tells the operator's probes that the daemon cannot persist
	 * (keys, entries, revocations); identities are still served. */
	resp.status = atomic_load(&c->srv->not_serving) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
							: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (pack(&resp.base, &out, &out_len) < 0) {
		wi__call_finish(c, GRPC_STATUS_UNAVAILABLE, "internal error; retry");
		return;
	}
	wi__call_reply(c, out, out_len, false);
}
