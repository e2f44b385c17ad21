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

static void fail_internal(wi__call *c, int rc, const char *what)
{
	wi_log(WI_LOG_ERROR, what, "method=%s: %s", c->method_name, wi_error_detail());
	if (rc == WI_E_TOO_BIG)
		wi__call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
				"response too large: the caller holds too many identities");
	else
		wi__call_finish(c, GRPC_STATUS_UNAVAILABLE, "internal error; retry");
}

static char *td_id(wi_wl_server *s)
{
	wi_registry *reg = wi__server_registry(s);
	const char *td = wi_registry_trust_domain(reg);
	size_t n = strlen("spiffe://") + strlen(td) + 1;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "spiffe://%s", td);
	wi_registry_unref(reg);
	return out;
}

void wi__handle_fetch_x509_svid(wi__call *c, const uint8_t *req, size_t len)
{
	X509SVIDRequest *in = x509_svidrequest__unpack(NULL, len, req);
	if (!in) {
		wi_log(WI_LOG_WARN, "bad_request", "method=%s reason=\"malformed protobuf\"", c->method_name);
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	x509_svidrequest__free_unpacked(in, NULL);

	_cleanup_(wi_identities_freep) wi_identities *ids = NULL;
	if (wi__call_identities(c, &ids) < 0)
		return;

	wi_wl_server *s = c->srv;
	size_t n = wi_identities_count(ids);
	size_t bundle_len;
	const uint8_t *bundle = wi_ca_bundle_der(s->ca, &bundle_len);
	time_t now = time(NULL);
	wi_x509_svid **svids = calloc(n, sizeof(*svids));
	X509SVID *items = calloc(n, sizeof(*items));
	X509SVID **ptrs = calloc(n, sizeof(*ptrs));
	int rc = svids && items && ptrs ? 0 : WI_E_NOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const wi_identity *id = wi_identities_at(ids, i);
		int64_t ttl = id->x509_ttl ? id->x509_ttl : s->default_ttl;
		rc = wi_x509_cache_get(s->x509_cache, id->spiffe_id, ttl, now, &svids[i]);
		if (rc < 0)
			break;
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
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (rc == 0) {
		X509SVIDResponse resp = X509_SVIDRESPONSE__INIT;
		resp.n_svids = n;
		resp.svids = ptrs;
		rc = pack(&resp.base, &out, &out_len);
	}
	for (size_t i = 0; svids && i < n; i++)
		wi_x509_svid_unref(svids[i]);
	free(svids);
	free(items);
	free(ptrs);
	if (rc < 0) {
		fail_internal(c, rc, "x509_svid_failed");
		return;
	}
	wi_log(WI_LOG_INFO, "x509_svid_sent", "pid=%d uid=%u svids=%zu default=%s", (int)wi_peer_pid(c->conn->peer),
	       (unsigned)wi_peer_uid(c->conn->peer), n, wi_identities_at(ids, 0)->spiffe_id);
	/* Workload API §5: the first message goes out at once; the stream then
	 * stays open for updates. */
	wi__call_stream_open(c);
	wi__call_send(c, out, out_len, true, false);
}

void wi__handle_fetch_x509_bundles(wi__call *c, const uint8_t *req, size_t len)
{
	X509BundlesRequest *in = x509_bundles_request__unpack(NULL, len, req);
	if (!in) {
		wi_log(WI_LOG_WARN, "bad_request", "method=%s reason=\"malformed protobuf\"", c->method_name);
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	x509_bundles_request__free_unpacked(in, NULL);

	_cleanup_(wi_identities_freep) wi_identities *ids = NULL;
	if (wi__call_identities(c, &ids) < 0)
		return;

	wi_wl_server *s = c->srv;
	_cleanup_(freep) char *key = td_id(s);
	if (!key) {
		wi__call_finish(c, GRPC_STATUS_UNAVAILABLE, "out of memory; retry");
		return;
	}
	X509BundlesResponse__BundlesEntry entry = X509_BUNDLES_RESPONSE__BUNDLES_ENTRY__INIT;
	entry.key = key; /* "spiffe://<td>", as SPIRE emits */
	entry.value.data = (uint8_t *)wi_ca_bundle_der(s->ca, &entry.value.len);
	X509BundlesResponse__BundlesEntry *entries[1] = {&entry};
	X509BundlesResponse resp = X509_BUNDLES_RESPONSE__INIT;
	resp.n_bundles = 1;
	resp.bundles = entries;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int rc = pack(&resp.base, &out, &out_len);
	if (rc < 0) {
		fail_internal(c, rc, "x509_bundles_failed");
		return;
	}
	wi_log(WI_LOG_DEBUG, "x509_bundles_sent", "pid=%d", (int)wi_peer_pid(c->conn->peer));
	wi__call_stream_open(c);
	wi__call_send(c, out, out_len, false, false);
}

void wi__handle_health_check(wi__call *c, const uint8_t *req, size_t len)
{
	Grpc__Health__V1__HealthCheckRequest *in = grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (!in) {
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		return;
	}
	bool known = !in->service || !*in->service || strcmp(in->service, "SpiffeWorkloadAPI") == 0;
	grpc__health__v1__health_check_request__free_unpacked(in, NULL);
	if (!known) {
		/* gRPC health checking protocol: unknown service → NOT_FOUND. */
		wi__call_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service");
		return;
	}
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (pack(&resp.base, &out, &out_len) < 0) {
		fail_internal(c, WI_E_NOMEM, "health_failed");
		return;
	}
	wi__call_send(c, out, out_len, false, true);
}
