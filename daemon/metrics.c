/* daemon/metrics.c — GET /metrics (Prometheus text format 0.0.4) and
 * GET /status (JSON) on the admin socket.  See metrics.h. */
#include "daemon/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "txn-token/http.h"
#include "workload-api/stats.h"

#define WI_VERSION "0.1.0"
/* Admin requests are tiny GETs from the operator: a small body cap and a few
 * connections at once are plenty.  (Candidates for core/limits.h.) */
#define ADMIN_BODY_MAX 1024u
#define ADMIN_CONNECTIONS_MAX 16u
#define METRICS_TEXT_MAX (256u * 1024u)

struct wi_daemon_metrics {
	wi_daemon_metrics_options o; /* trust_domain points at `td` */
	char *td;
	time_t started; /* wall clock when the daemon began serving */
	wi_tts_http *http;
	wi_tts_http *tcp_http; /* metrics_listen: GET /metrics only, or NULL */
};

int wi_daemon_metrics_admin_path(const char *workload_socket, char *buf, size_t size)
{
	const char *slash = strrchr(workload_socket, '/');
	size_t dir_len = slash ? (size_t)(slash - workload_socket) + 1 : 0;
	int n = snprintf(buf, size, "%.*sadmin.sock", (int)dir_len, workload_socket);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* ---- Prometheus text ------------------------------------------------------- */

typedef struct text {
	wi_buf b;
	bool failed;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || wi_buf_append(&t->b, line, (size_t)n) < 0)
		t->failed = true;
}

/* One unlabelled sample with its HELP and TYPE lines. */
static void metric(text *t, const char *name, const char *type, const char *help, uint64_t v)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

/* The HELP and TYPE lines of a family whose samples follow. */
static void family(text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The samples of one histogram series; `labels` is "" or `k="v",` (with the
 * trailing comma) and must not need escaping (our own static names). */
static void histogram_series(text *t, const char *name, const char *labels, const wi_hist_snapshot *h)
{
	for (int i = 0; i <= WI_HIST_BUCKETS; i++)
		put(t, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", name, labels, wi_hist_bound_label(i), h->cumulative[i]);
	/* Without the trailing comma for _sum and _count. */
	size_t n = strlen(labels);
	put(t, "%s_sum%s%.*s%s %.9f\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels, n ? "}" : "",
	    h->sum_seconds);
	put(t, "%s_count%s%.*s%s %" PRIu64 "\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels, n ? "}" : "",
	    h->count);
}

/* Implemented methods always get their series (zero before the first call),
 * others only once called. */
static bool method_shown(int meth, uint64_t activity)
{
	static const char *const always[] = {"FetchX509SVID", "FetchX509Bundles", "FetchJWTSVID", "FetchJWTBundles",
					     "ValidateJWTSVID", "grpc.health.v1.Health/Check"};
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (strcmp(wi_wl_rpc_method_name(meth), always[i]) == 0)
			return true;
	return activity > 0;
}

static void render_rpc(const wi_daemon_metrics *m, text *t)
{
	wi_wl_rpc_stats *r = calloc(1, sizeof(*r));
	if (!r) {
		t->failed = true;
		return;
	}
	wi_wl_server_get_rpc_stats(m->o.wl, r);
	family(t, "wimsed_rpc_requests_total", "counter",
	       "Workload API calls finished, by method and final gRPC status (CANCELLED: ended by the client).");
	for (int meth = 0; meth < WI_WL_RPC_METHODS; meth++)
		for (int k = 0; k < WI_WL_RPC_CODES; k++)
			if (r->calls[meth][k] || (k == 0 && method_shown(meth, r->latency[meth].count)))
				put(t, "wimsed_rpc_requests_total{method=\"%s\",code=\"%s\"} %" PRIu64 "\n",
				    wi_wl_rpc_method_name(meth), wi_wl_rpc_code_name(k), r->calls[meth][k]);
	family(t, "wimsed_rpc_duration_seconds", "histogram",
	       "Workload API latency: unary calls to their status, streams to their first message.");
	for (int meth = 0; meth < WI_WL_RPC_METHODS; meth++) {
		if (!method_shown(meth, r->latency[meth].count))
			continue;
		char labels[96];
		snprintf(labels, sizeof(labels), "method=\"%s\",", wi_wl_rpc_method_name(meth));
		histogram_series(t, "wimsed_rpc_duration_seconds", labels, &r->latency[meth]);
	}
	family(t, "wimsed_rpc_streams_open", "gauge", "Workload API server streams open now, by method.");
	for (int meth = 0; meth < WI_WL_RPC_METHODS; meth++) {
		const char *name = wi_wl_rpc_method_name(meth);
		bool stream = strcmp(name, "FetchX509SVID") == 0 || strcmp(name, "FetchX509Bundles") == 0 ||
			      strcmp(name, "FetchJWTBundles") == 0;
		if (stream || r->streams_open[meth])
			put(t, "wimsed_rpc_streams_open{method=\"%s\"} %" PRIu64 "\n", name, r->streams_open[meth]);
	}
	free(r);
}

static void render_txn(const wi_daemon_metrics *m, text *t)
{
	wi_tts_stats ts;
	wi_tts_get_stats(m->o.tts, &ts); /* zeros without a token service */
	family(t, "wimsed_txn_tokens_issued_total", "counter",
	       "Transaction Tokens issued, by grant (delegated, autonomous, replacement).");
	for (int g = 0; g < WI_TTS_GRANTS; g++)
		put(t, "wimsed_txn_tokens_issued_total{grant=\"%s\"} %" PRIu64 "\n", wi_tts_grant_name(g),
		    ts.issued[g]);
	family(t, "wimsed_txn_refusals_total", "counter",
	       "Token service requests refused, by endpoint and OAuth error (rate_limited: HTTP 429).");
	for (int e = 0; e < WI_TTS_ENDPOINTS; e++)
		for (int r = 0; r < WI_TTS_REASONS; r++)
			if (ts.refused[e][r] || (e == WI_TTS_EP_TOKEN && r == WI_TTS_R_INVALID_REQUEST))
				put(t, "wimsed_txn_refusals_total{endpoint=\"%s\",error=\"%s\"} %" PRIu64 "\n",
				    wi_tts_endpoint_name(e), wi_tts_reason_name(r), ts.refused[e][r]);
	family(t, "wimsed_txn_introspections_total", "counter", "Token introspections, by answer.");
	put(t, "wimsed_txn_introspections_total{active=\"true\"} %" PRIu64 "\n", ts.introspections_active);
	put(t, "wimsed_txn_introspections_total{active=\"false\"} %" PRIu64 "\n", ts.introspections_inactive);
	metric(t, "wimsed_txn_revocations_total", "counter", "Revocations stored through /revoke.", ts.revocations);
	family(t, "wimsed_txn_verified_cache_hits_total", "counter",
	       "Tokens presented to the token service that had passed before (no signature check), by kind.");
	put(t, "wimsed_txn_verified_cache_hits_total{token=\"subject\"} %" PRIu64 "\n", ts.subject_hits);
	put(t, "wimsed_txn_verified_cache_hits_total{token=\"jwt_svid\"} %" PRIu64 "\n", ts.svid_hits);
	put(t, "wimsed_txn_verified_cache_hits_total{token=\"txn_token\"} %" PRIu64 "\n", ts.txn_hits);
	family(t, "wimsed_txn_verified_cache_misses_total", "counter",
	       "Tokens presented to the token service whose signature was checked, by kind.");
	put(t, "wimsed_txn_verified_cache_misses_total{token=\"subject\"} %" PRIu64 "\n", ts.subject_misses);
	put(t, "wimsed_txn_verified_cache_misses_total{token=\"jwt_svid\"} %" PRIu64 "\n", ts.svid_misses);
	put(t, "wimsed_txn_verified_cache_misses_total{token=\"txn_token\"} %" PRIu64 "\n", ts.txn_misses);
}

static void render_metrics(const wi_daemon_metrics *m, text *t)
{
	wi_wl_stats wl = {0};
	wi_attestor_stats at = {0};
	wi_wl_cache_stats cs = {0};
	wi_wl_server_get_stats(m->o.wl, &wl);
	wi_attestor_get_stats(m->o.attestor, &at);
	wi_wl_server_get_cache_stats(m->o.wl, &cs);
	uint64_t revocations = m->o.revocations ? wi_revocations_count(m->o.revocations) : 0;

	metric(t, "wimsed_connections_accepted_total", "counter", "Workload API connections accepted.",
	       wl.connections_accepted);
	metric(t, "wimsed_connections_refused_total", "counter",
	       "Workload API connections refused (peer unidentifiable or over a limit).", wl.connections_refused);
	metric(t, "wimsed_connections_open", "gauge", "Workload API connections open now.", wl.connections_open);
	metric(t, "wimsed_rpc_calls_total", "counter", "Workload API calls started (all methods).", wl.calls);
	metric(t, "wimsed_streams_open", "gauge", "Workload API server streams open now.", wl.streams_open);
	metric(t, "wimsed_attestations_total", "counter", "Workload attestations requested.", at.attestations);
	metric(t, "wimsed_attestation_cache_hits_total", "counter",
	       "Attestations answered from the per-process cache.", at.cache_hits);
	metric(t, "wimsed_attestation_cache_misses_total", "counter",
	       "Attestations that had to read /proc (not in the per-process cache).", at.cache_misses);
	family(t, "wimsed_attestation_duration_seconds", "histogram",
	       "Duration of workload attestations (cache hits, misses and failures).");
	histogram_series(t, "wimsed_attestation_duration_seconds", "", &at.latency);
	metric(t, "wimsed_executable_hashes_total", "counter", "Executables hashed for unix:sha256 selectors.",
	       at.hash_computed);
	metric(t, "wimsed_x509_svids_minted_total", "counter", "X.509-SVIDs signed for workloads.", cs.x509_minted);
	metric(t, "wimsed_x509_cache_hits_total", "counter", "X.509-SVIDs served from the shared cache.",
	       cs.x509_hits);
	metric(t, "wimsed_jwt_cache_hits_total", "counter", "JWT-SVIDs served from the cache.", cs.jwt_hits);
	metric(t, "wimsed_jwt_cache_misses_total", "counter", "JWT-SVIDs that had to be signed.", cs.jwt_misses);
	metric(t, "wimsed_jwt_validation_cache_hits_total", "counter",
	       "ValidateJWTSVID calls whose token had passed before (no signature check).", cs.validation_hits);
	metric(t, "wimsed_jwt_validation_cache_misses_total", "counter",
	       "ValidateJWTSVID calls that checked the token's signature.", cs.validation_misses);
	metric(t, "wimsed_entries", "gauge", "Registration entries in force.", (uint64_t)cs.entries);
	metric(t, "wimsed_revocations", "gauge", "Transaction-token revocations in force.", revocations);
	metric(t, "wimsed_revocations_unpersisted", "gauge",
	       "Revocations in force that the store has not taken yet (lost at restart).",
	       (uint64_t)(m->o.revocations ? wi_revocations_unpersisted(m->o.revocations) : 0));
	metric(t, "wimsed_ca_not_after_seconds", "gauge", "Expiry of the signing CA, Unix time.",
	       (uint64_t)wi_ca_not_after(m->o.ca));
	put(t, "# HELP wimsed_build_info The running version.\n# TYPE wimsed_build_info gauge\n"
	       "wimsed_build_info{version=\"%s\"} 1\n",
	    WI_VERSION);
	render_rpc(m, t);
	render_txn(m, t);
	/* Each step of a rotation: a successor prepared (published), activated,
	 * a predecessor retired; counted by the key sets themselves. */
	family(t, "wimsed_rotations_total", "counter", "Key and CA rotation steps (prepare, activate, retire), by kind.");
	put(t, "wimsed_rotations_total{kind=\"x509_ca\"} %" PRIu64 "\n", wi_ca_rotation_events(m->o.ca));
	put(t, "wimsed_rotations_total{kind=\"jwt_key\"} %" PRIu64 "\n", wi_jwt_keys_rotation_events(m->o.jwt_keys));
	if (m->o.txn_keys)
		put(t, "wimsed_rotations_total{kind=\"txn_key\"} %" PRIu64 "\n",
		    wi_jwt_keys_rotation_events(m->o.txn_keys));
	metric(t, "wimsed_ready", "gauge", "1 while health is SERVING (0: the state directory takes no writes).",
	       wi_wl_server_serving(m->o.wl) ? 1 : 0);
	metric(t, "process_start_time_seconds", "gauge", "When the daemon began serving, Unix time.",
	       (uint64_t)m->started);
}

/* ---- JSON status ----------------------------------------------------------- */

static char *render_status(const wi_daemon_metrics *m)
{
	wi_wl_stats wl = {0};
	wi_wl_cache_stats cs = {0};
	wi_wl_server_get_stats(m->o.wl, &wl);
	wi_wl_server_get_cache_stats(m->o.wl, &cs);
	wi_ca_snapshot *cav = wi_ca_snapshot_get(m->o.ca);
	time_t na = wi_ca_snapshot_not_after(cav);
	time_t ca_next = wi_ca_snapshot_next_activation(cav);
	wi_ca_snapshot_unref(cav);
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(m->o.jwt_keys);
	char na_iso[32] = "";
	struct tm tm;
	if (gmtime_r(&na, &tm))
		strftime(na_iso, sizeof(na_iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	_cleanup_(json_decrefp) json_t *j = json_pack(
		"{s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:s}", "trust_domain", m->td,
		"ca_not_after", na_iso, "ca_not_after_unix", (json_int_t)na, "ca_next_activation_unix",
		(json_int_t)ca_next, "jwt_kid", wi_jwt_keyset_kid(ks), "jwt_next_activation_unix",
		(json_int_t)wi_jwt_keyset_next_activation(ks), "entries",
		(json_int_t)cs.entries, "streams_open", (json_int_t)wl.streams_open, "connections", "open",
		(json_int_t)wl.connections_open, "accepted", (json_int_t)wl.connections_accepted, "refused",
		(json_int_t)wl.connections_refused, "revocations",
		(json_int_t)(m->o.revocations ? wi_revocations_count(m->o.revocations) : 0), "health",
		wi_wl_server_serving(m->o.wl) ? "SERVING" : "NOT_SERVING");
	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* ---- HTTP handler (the admin server's worker thread) ------------------------------------------- */

static bool caller_is_operator(const wi_http_caller *c)
{
	if (!c || c->authn != WI_HTTP_AUTHN_UNIX || !c->peer)
		return false;
	uid_t uid = wi_peer_uid(c->peer);
	return uid == 0 || uid == geteuid();
}

static void serve_metrics(const wi_daemon_metrics *m, wi_http_response *resp);

static void handle(void *ud, const wi_http_request *req, wi_http_response *resp)
{
	const wi_daemon_metrics *m = ud;
	if (!caller_is_operator(req->caller)) {
		wi_http_oauth_error(resp, 403, "access_denied", "the admin socket is for the daemon's operator");
		return;
	}
	/* /entries...: registration entries (daemon/admin_entries.h). */
	if (m->o.entries && wi_admin_entries_handle(m->o.entries, req, resp))
		return;
	bool is_metrics = strcmp(req->path, "/metrics") == 0, is_status = strcmp(req->path, "/status") == 0;
	if (!is_metrics && !is_status) {
		wi_http_oauth_error(resp, 404, "not_found", "try /metrics, /status or /entries");
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		wi_http_oauth_error(resp, 405, "invalid_request", "use GET");
		resp->allow = "GET";
		return;
	}
	resp->no_store = true;
	if (is_status) {
		resp->body = render_status(m);
		if (!resp->body) {
			wi_http_oauth_error(resp, 500, "server_error", "out of memory");
			return;
		}
		resp->body_len = strlen(resp->body);
		resp->content_type = "application/json";
		return;
	}
	serve_metrics(m, resp);
}

/* GET /metrics into resp. */
static void serve_metrics(const wi_daemon_metrics *m, wi_http_response *resp)
{
	resp->no_store = true;
	text t = {.failed = false};
	wi_buf_init(&t.b, METRICS_TEXT_MAX, false);
	render_metrics(m, &t);
	if (t.failed || wi_buf_append(&t.b, "", 1) < 0) {
		wi_buf_free(&t.b);
		wi_http_oauth_error(resp, 500, "server_error", "cannot render metrics");
		return;
	}
	uint8_t *data;
	size_t len;
	wi_buf_steal(&t.b, &data, &len);
	resp->body = (char *)data;
	resp->body_len = len - 1; /* without the NUL */
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* metrics_listen (plain TCP, anonymous callers): GET /metrics and nothing
 * else — never /status or any admin route. */
static void handle_tcp(void *ud, const wi_http_request *req, wi_http_response *resp)
{
	const wi_daemon_metrics *m = ud;
	if (!req->caller || req->caller->authn != WI_HTTP_AUTHN_TCP || strcmp(req->path, "/metrics") != 0) {
		wi_log(WI_LOG_INFO, "metrics_refused", "path=%.64s status=404 reason=\"only /metrics on metrics_listen\"",
		       req->path);
		wi_http_oauth_error(resp, 404, "not_found", "only /metrics is served here");
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		wi_log(WI_LOG_INFO, "metrics_refused", "path=/metrics status=405 reason=\"use GET\"");
		wi_http_oauth_error(resp, 405, "invalid_request", "use GET");
		resp->allow = "GET";
		return;
	}
	serve_metrics(m, resp);
}

/* ---- lifecycle ------------------------------------------------------------- */

int wi_daemon_metrics_start(const wi_daemon_metrics_options *opts, wi_daemon_metrics **ret)
{
	char path[108]; /* sizeof(sockaddr_un.sun_path) */
	WI_CHECK(wi_daemon_metrics_admin_path(opts->workload_socket, path, sizeof(path)) == 0, WI_E_TOO_BIG,
		 "admin socket path next to %s is too long", opts->workload_socket);
	wi_daemon_metrics *m = calloc(1, sizeof(*m));
	WI_CHECK_ALLOC(m);
	m->o = *opts;
	m->td = strdup(opts->trust_domain);
	m->o.trust_domain = m->td;
	m->started = wi_clock_now();
	if (!m->td) {
		wi_daemon_metrics_free(m);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	wi_tts_http_options ho = {
		.loop = opts->loop,
		.unix_socket_path = path,
		.unix_socket_mode = 0600, /* the operator only */
		.handler = handle,
		.handler_ud = m,
		.max_body = opts->entries ? WI_ADMIN_BODY_MAX : ADMIN_BODY_MAX, /* entry imports */
		.max_connections = ADMIN_CONNECTIONS_MAX,
		.io_timeout_ms = WI_TTS_IO_TIMEOUT_MS,
		.workers = 1, /* operator traffic: one thread is plenty */
	};
	int rc = wi_tts_http_start(&ho, &m->http);
	if (rc == 0 && opts->metrics_listen) {
		wi_tts_http_options to = {
			.loop = opts->loop,
			.tcp_listen = opts->metrics_listen,
			.handler = handle_tcp,
			.handler_ud = m,
			.max_body = ADMIN_BODY_MAX,
			.max_connections = ADMIN_CONNECTIONS_MAX,
			.io_timeout_ms = WI_TTS_IO_TIMEOUT_MS,
			.workers = 1,
		};
		rc = wi_tts_http_start(&to, &m->tcp_http);
	}
	if (rc < 0) {
		wi_daemon_metrics_free(m);
		return rc;
	}
	*ret = m;
	return 0;
}

void wi_daemon_metrics_stop(wi_daemon_metrics *m)
{
	if (!m || !m->http)
		return;
	wi_tts_http_stop(m->http); /* frees itself from its last close callback */
	m->http = NULL;
	wi_tts_http_stop(m->tcp_http); /* accepts NULL */
	m->tcp_http = NULL;
}

wi_daemon_metrics *wi_daemon_metrics_free(wi_daemon_metrics *m)
{
	if (!m)
		return NULL;
	wi_daemon_metrics_stop(m);
	free(m->td);
	free(m);
	return NULL;
}
