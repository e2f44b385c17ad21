/* daemon/metrics.c — GET /metrics (Prometheus text format 0.0.4) and
 * GET /status (JSON) on the admin socket.  See metrics.h. */
#include "daemon/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/limits.h"
#include "txn-token/http.h"
#include "workload-api/stats.h"

#define WI_VERSION "0.1.0"
/* Admin requests are tiny GETs from the operator: a small body cap and a few
 * connections at once are plenty.  (Candidates for core/limits.h.) */
#define ADMIN_BODY_MAX 1024u
#define ADMIN_CONNECTIONS_MAX 16u
#define METRICS_TEXT_MAX (64u * 1024u)

struct wi_daemon_metrics {
	wi_daemon_metrics_options o; /* trust_domain points at `td` */
	char *td;
	time_t started; /* wall clock when the daemon began serving */
	wi_tts_http *http;
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
	metric(t, "wimsed_executable_hashes_total", "counter", "Executables hashed for unix:sha256 selectors.",
	       at.hash_computed);
	metric(t, "wimsed_x509_svids_minted_total", "counter", "X.509-SVIDs signed for workloads.", cs.x509_minted);
	metric(t, "wimsed_x509_cache_hits_total", "counter", "X.509-SVIDs served from the shared cache.",
	       cs.x509_hits);
	metric(t, "wimsed_jwt_cache_hits_total", "counter", "JWT-SVIDs served from the cache.", cs.jwt_hits);
	metric(t, "wimsed_jwt_cache_misses_total", "counter", "JWT-SVIDs that had to be signed.", cs.jwt_misses);
	metric(t, "wimsed_entries", "gauge", "Registration entries in force.", (uint64_t)cs.entries);
	metric(t, "wimsed_revocations", "gauge", "Transaction-token revocations in force.", revocations);
	metric(t, "wimsed_ca_not_after_seconds", "gauge", "Expiry of the signing CA, Unix time.",
	       (uint64_t)wi_ca_not_after(m->o.ca));
	metric(t, "wimsed_ca_rotation_events_total", "counter", "CAs prepared, activated or retired.",
	       wi_ca_rotation_events(m->o.ca));
	metric(t, "wimsed_jwt_key_rotation_events_total", "counter", "JWT-SVID keys prepared, activated or retired.",
	       wi_jwt_keys_rotation_events(m->o.jwt_keys));
	put(t, "# HELP wimsed_build_info The running version.\n# TYPE wimsed_build_info gauge\n"
	       "wimsed_build_info{version=\"%s\"} 1\n",
	    WI_VERSION);
	metric(t, "wimsed_ready", "gauge", "1 while the daemon is serving.", 1);
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
		(json_int_t)(m->o.revocations ? wi_revocations_count(m->o.revocations) : 0), "health", "SERVING");
	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* ---- HTTP handler (thread pool) ------------------------------------------- */

static bool caller_is_operator(const wi_http_caller *c)
{
	if (!c || c->authn != WI_HTTP_AUTHN_UNIX || !c->peer)
		return false;
	uid_t uid = wi_peer_uid(c->peer);
	return uid == 0 || uid == geteuid();
}

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
	m->started = time(NULL);
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
	};
	int rc = wi_tts_http_start(&ho, &m->http);
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
