/* daemon/admin_entries.c — entries in the store, the /entries admin routes,
 * and publication of registry snapshots on the loop.  See admin_entries.h. */
#include "daemon/admin_entries.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/entry.h"
#include "core/json.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/store.h"

struct wi_admin_entries {
	char *td;
	wi_store *store;
	/* Publication.  `lock` guards everything below. */
	pthread_mutex_t lock;
	pthread_cond_t published; /* signalled when done_gen moves */
	wi_registry *current;     /* served now */
	uint64_t want_gen, done_gen;
	uv_async_t async;
	bool async_live; /* initialised and not closing: uv_async_send is allowed */
	wi_wl_server *wl;
	wi_daemon_tts *tts;
};

/* ---- the registry from the store ------------------------------------------ */

typedef struct build_ctx {
	const char *td;
	wi_registry *reg;
	size_t skipped;
} build_ctx;

static int add_row(const wi_store_entry_row *row, void *ud)
{
	build_ctx *b = ud;
	wi_entry *e = NULL;
	/* A row that no longer validates (trust domain changed, file edited by
	 * hand) is skipped and said, not fatal: the others still serve. */
	if (wi_entry_from_stored(row->id, row->body, row->source, row->created, b->td, &e) < 0 ||
	    wi_entry_add_to_registry(e, b->reg) < 0) {
		wi_log(WI_LOG_WARN, "entry_skipped", "id=%s source=%s reason=\"%s\"", row->id,
		       wi_entry_source_name(row->source), wi_error_detail());
		b->skipped++;
	}
	wi_entry_free(e);
	return 0;
}

static int build_registry(wi_admin_entries *a, wi_registry **ret)
{
	build_ctx b = {.td = a->td};
	WI_TRY(wi_registry_new(a->td, &b.reg));
	int rc = wi_store_each_entry(a->store, NULL, add_row, &b);
	if (rc < 0) {
		wi_registry_unref(b.reg);
		return rc;
	}
	*ret = b.reg;
	return 0;
}

/* Loop thread: the store's state becomes the served registry. */
static void publish_now(wi_admin_entries *a)
{
	wi_registry *reg = NULL;
	if (build_registry(a, &reg) < 0) {
		wi_log(WI_LOG_ERROR, "entries_publish_failed", "keeping the served entries: %s", wi_error_detail());
		return;
	}
	pthread_mutex_lock(&a->lock);
	wi_registry *old = a->current;
	a->current = reg;
	pthread_mutex_unlock(&a->lock);
	wi_registry_unref(old);
	if (a->wl)
		wi_wl_server_set_registry(a->wl, reg);
	wi_daemon_tts_set_registry(a->tts, reg);
	/* Streams are otherwise re-evaluated once a second. */
	if (a->wl)
		wi_wl_server_tick(a->wl);
	wi_log(WI_LOG_DEBUG, "entries_published", "entries=%zu", wi_registry_count(reg));
}

static void on_async(uv_async_t *h)
{
	wi_admin_entries *a = h->data;
	pthread_mutex_lock(&a->lock);
	uint64_t gen = a->want_gen;
	pthread_mutex_unlock(&a->lock);
	publish_now(a);
	pthread_mutex_lock(&a->lock);
	if (gen > a->done_gen)
		a->done_gen = gen;
	pthread_cond_broadcast(&a->published);
	pthread_mutex_unlock(&a->lock);
}

/* Thread pool: asks the loop to publish and waits (bounded) until it has. */
static void request_publish(wi_admin_entries *a)
{
	pthread_mutex_lock(&a->lock);
	uint64_t mine = ++a->want_gen;
	if (!a->async_live) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	uv_async_send(&a->async);
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += WI_ADMIN_PUBLISH_WAIT_MS / 1000;
	until.tv_nsec += (long)(WI_ADMIN_PUBLISH_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (a->done_gen < mine && a->async_live)
		if (pthread_cond_timedwait(&a->published, &a->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&a->lock);
}

/* ---- lifecycle -------------------------------------------------------------- */

static int sync_config(wi_admin_entries *a, const wi_config *c, size_t *ret_removed)
{
	size_t n = wi_config_entry_count(c);
	_cleanup_(freep) wi_entry **list = calloc(n ? n : 1, sizeof(*list));
	WI_CHECK_ALLOC(list);
	for (size_t i = 0; i < n; i++)
		list[i] = (wi_entry *)wi_config_entry_at(c, i);
	return wi_store_sync_config_entries(a->store, list, n, ret_removed);
}

int wi_admin_entries_open(const wi_config *c, wi_store *store, wi_admin_entries **ret)
{
	wi_admin_entries *a = calloc(1, sizeof(*a));
	WI_CHECK_ALLOC(a);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&a->lock, NULL) != 0 || pthread_cond_init(&a->published, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(a);
		WI_FAIL(WI_E_NOMEM, "mutex");
	}
	pthread_condattr_destroy(&ca);
	a->td = strdup(wi_config_trust_domain(c));
	int rc = a->td ? 0 : WI_E_NOMEM;
	size_t removed = 0;
	a->store = store;
	if (rc == 0)
		rc = sync_config(a, c, &removed);
	if (rc == 0)
		rc = build_registry(a, &a->current);
	if (rc < 0) {
		wi_admin_entries_free(a);
		return rc;
	}
	wi_log(WI_LOG_INFO, "entries_loaded", "entries=%zu from_config=%zu config_removed=%zu",
	       wi_registry_count(a->current), wi_config_entry_count(c), removed);
	*ret = a;
	return 0;
}

wi_registry *wi_admin_entries_registry(wi_admin_entries *a)
{
	pthread_mutex_lock(&a->lock);
	wi_registry *r = wi_registry_ref(a->current);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int wi_admin_entries_attach(wi_admin_entries *a, uv_loop_t *loop, wi_wl_server *wl, wi_daemon_tts *tts)
{
	int rc = uv_async_init(loop, &a->async, on_async);
	WI_CHECK(rc == 0, WI_E_INTERNAL, "uv_async_init: %s", uv_strerror(rc));
	a->async.data = a;
	pthread_mutex_lock(&a->lock);
	a->wl = wl;
	a->tts = tts;
	a->async_live = true;
	wi_registry *reg = wi_registry_ref(a->current);
	pthread_mutex_unlock(&a->lock);
	wi_daemon_tts_set_registry(tts, reg);
	wi_registry_unref(reg);
	return 0;
}

int wi_admin_entries_reload(wi_admin_entries *a, const wi_config *c)
{
	size_t removed = 0;
	WI_TRY(sync_config(a, c, &removed));
	publish_now(a);
	wi_log(WI_LOG_INFO, "entries_reloaded", "from_config=%zu config_removed=%zu", wi_config_entry_count(c),
	       removed);
	return 0;
}

static void close_noop(uv_handle_t *h)
{
	(void)h;
}

void wi_admin_entries_stop(wi_admin_entries *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	bool live = a->async_live;
	a->async_live = false;
	pthread_cond_broadcast(&a->published); /* waiters answer now */
	pthread_mutex_unlock(&a->lock);
	if (live)
		uv_close((uv_handle_t *)&a->async, close_noop);
}

wi_admin_entries *wi_admin_entries_free(wi_admin_entries *a)
{
	if (!a)
		return NULL;
	wi_registry_unref(a->current);
	free(a->td);
	pthread_cond_destroy(&a->published);
	pthread_mutex_destroy(&a->lock);
	free(a);
	return NULL;
}

/* ---- HTTP ------------------------------------------------------------------- */

/* The reason of the last failure without its "file:line: code text: " head. */
static const char *reason(int code)
{
	const char *d = wi_error_detail();
	const char *t = strstr(d, wi_error_text(code));
	if (t && t[strlen(wi_error_text(code))] == ':' && t[strlen(wi_error_text(code)) + 1] == ' ')
		return t + strlen(wi_error_text(code)) + 2;
	return d;
}

static void refuse(wi_http_response *resp, const wi_http_request *req, int status, const char *error,
		   const char *why)
{
	wi_log(WI_LOG_WARN, "entry_refused", "method=%s path=%.80s status=%d reason=\"%s\"", req->method, req->path,
	       status, why);
	wi_http_oauth_error(resp, status, error, why);
}

/* A store failure as an HTTP answer. */
static void refuse_code(wi_http_response *resp, const wi_http_request *req, int code)
{
	const char *why = reason(code);
	switch (code) {
	case WI_E_NOT_FOUND: refuse(resp, req, 404, "not_found", why); break;
	case WI_E_EXISTS: refuse(resp, req, 409, "conflict", why); break;
	case WI_E_PERMISSION: refuse(resp, req, 409, "conflict", why); break;
	case WI_E_TOO_BIG: refuse(resp, req, 413, "invalid_request", why); break;
	case WI_E_UNAVAILABLE: refuse(resp, req, 503, "temporarily_unavailable", why); break;
	case WI_E_PARSE:
	case WI_E_CONFIG:
	case WI_E_INVAL: refuse(resp, req, 400, "invalid_request", why); break;
	default: refuse(resp, req, 500, "server_error", why); break;
	}
}

static void reply(wi_http_response *resp, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	resp->status = status;
	resp->body = text;
	resp->body_len = strlen(text);
	resp->content_type = "application/json";
	resp->no_store = true;
}

typedef struct list_ctx {
	const char *td;
	json_t *arr;
	bool failed;
} list_ctx;

static int list_row(const wi_store_entry_row *row, void *ud)
{
	list_ctx *l = ud;
	wi_entry *e = NULL;
	json_t *j = NULL;
	if (wi_entry_from_stored(row->id, row->body, row->source, row->created, l->td, &e) == 0) {
		j = wi_entry_to_json(e);
	} else {
		/* Shown as stored, flagged: the operator must be able to see
		 * (and delete) what no longer loads. */
		json_error_t jerr;
		j = json_loads(row->body, 0, &jerr);
		if (json_is_object(j)) {
			json_object_set_new(j, "id", json_string(row->id));
			json_object_set_new(j, "source", json_string(wi_entry_source_name(row->source)));
			json_object_set_new(j, "created", json_integer(row->created));
			json_object_set_new(j, "invalid", json_true());
		}
	}
	wi_entry_free(e);
	if (!j || json_array_append_new(l->arr, j) < 0)
		l->failed = true;
	return 0;
}

static void get_entries(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp, const char *id)
{
	list_ctx l = {.td = a->td, .arr = json_array()};
	if (!l.arr) {
		wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	int rc = wi_store_each_entry(a->store, id, list_row, &l);
	if (rc < 0 || l.failed) {
		json_decref(l.arr);
		if (rc < 0)
			refuse_code(resp, req, rc);
		else
			wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	if (id) {
		json_t *one = json_incref(json_array_get(l.arr, 0));
		json_decref(l.arr);
		reply(resp, 200, one);
	} else {
		reply(resp, 200, json_pack("{s:o}", "entries", l.arr));
	}
}

/* Parses the request body; refuses (and logs) a bad one. */
static json_t *body_json(const wi_http_request *req, wi_http_response *resp, size_t max)
{
	if (strcmp(req->content_type, "application/json") != 0) {
		refuse(resp, req, 415, "invalid_request", "the body must be application/json");
		return NULL;
	}
	if (req->body_len > max) {
		char why[96];
		snprintf(why, sizeof(why), "request body larger than %zu bytes", max);
		refuse(resp, req, 413, "invalid_request", why);
		return NULL;
	}
	json_t *j = NULL;
	int rc = wi_json_parse_document((const char *)req->body, req->body_len, "request body", &j);
	if (rc < 0) {
		/* Too deep is malformed for us, not too large: 400. */
		refuse(resp, req, 400, "invalid_request", reason(rc));
		return NULL;
	}
	return j;
}

static void create_entry(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp)
{
	_cleanup_(json_decrefp) json_t *j = body_json(req, resp, WI_ADMIN_ENTRY_BODY_MAX);
	if (!j)
		return;
	_cleanup_(wi_entry_freep) wi_entry *e = NULL;
	wi_entry_error err = {0};
	int rc = wi_entry_from_json(j, a->td, WI_ENTRY_SOURCE_API, (int64_t)wi_clock_now(), &e, &err);
	if (rc < 0) {
		if (err.key[0])
			refuse(resp, req, 400, "invalid_request", err.message);
		else
			refuse_code(resp, req, rc);
		return;
	}
	rc = wi_store_add_entries(a->store, &e, 1);
	if (rc < 0) {
		refuse_code(resp, req, rc);
		return;
	}
	wi_log(WI_LOG_INFO, "entry_created", "id=%s spiffe_id=%s source=api", wi_entry_id(e), wi_entry_spiffe_id(e));
	request_publish(a);
	reply(resp, 201, wi_entry_to_json(e));
}

static void import_entries(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp)
{
	_cleanup_(json_decrefp) json_t *j = body_json(req, resp, WI_ADMIN_BODY_MAX);
	if (!j)
		return;
	json_t *arr = j;
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
		{
			if (strcmp(k, "entries") != 0) {
				char why[128];
				snprintf(why, sizeof(why), "unknown key \"%.64s\" (want {\"entries\": [...]})", k);
				refuse(resp, req, 400, "invalid_request", why);
				return;
			}
		}
		arr = json_object_get(j, "entries");
	}
	if (!json_is_array(arr)) {
		refuse(resp, req, 400, "invalid_request", "want an array of entries or {\"entries\": [...]}");
		return;
	}
	size_t n = json_array_size(arr);
	if (n > WI_ADMIN_IMPORT_ENTRIES_MAX) {
		char why[96];
		snprintf(why, sizeof(why), "more than %d entries in one import", WI_ADMIN_IMPORT_ENTRIES_MAX);
		refuse(resp, req, 413, "invalid_request", why);
		return;
	}
	wi_entry **list = calloc(n ? n : 1, sizeof(*list));
	_cleanup_(json_decrefp) json_t *out = json_array();
	if (!list || !out) {
		free(list);
		wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	int64_t now = (int64_t)wi_clock_now();
	int rc = 0;
	size_t i;
	for (i = 0; i < n && rc == 0; i++) {
		wi_entry_error err = {0};
		rc = wi_entry_from_json(json_array_get(arr, i), a->td, WI_ENTRY_SOURCE_API, now, &list[i], &err);
		if (rc < 0 && err.key[0]) {
			char why[sizeof(err.message) + 32];
			snprintf(why, sizeof(why), "entries[%zu]: %s", i, err.message);
			refuse(resp, req, 400, "invalid_request", why);
		} else if (rc < 0) {
			refuse_code(resp, req, rc);
		}
	}
	if (rc == 0) {
		rc = wi_store_add_entries(a->store, list, n);
		if (rc < 0)
			refuse_code(resp, req, rc);
	}
	for (i = 0; rc == 0 && i < n; i++)
		if (json_array_append_new(out, wi_entry_to_json(list[i])) < 0)
			rc = WI_E_NOMEM;
	for (i = 0; i < n; i++)
		wi_entry_free(list[i]);
	free(list);
	if (rc < 0) {
		if (rc == WI_E_NOMEM && !resp->body)
			wi_http_oauth_error(resp, 500, "server_error", "out of memory");
		return;
	}
	wi_log(WI_LOG_INFO, "entries_imported", "count=%zu source=api", n);
	request_publish(a);
	reply(resp, 201, json_pack("{s:I, s:O}", "imported", (json_int_t)n, "entries", out));
}

static void delete_entry(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp, const char *id)
{
	int rc = wi_store_delete_entry(a->store, id, WI_ENTRY_SOURCE_API);
	if (rc == WI_E_PERMISSION) {
		refuse(resp, req, 409, "conflict",
		       "the entry is managed by the config file: remove it there and reload (SIGHUP)");
		return;
	}
	if (rc < 0) {
		refuse_code(resp, req, rc);
		return;
	}
	wi_log(WI_LOG_INFO, "entry_deleted", "id=%s source=api", id);
	request_publish(a);
	reply(resp, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

static void method_not_allowed(wi_http_response *resp, const wi_http_request *req, const char *allow)
{
	char why[64];
	snprintf(why, sizeof(why), "use %s", allow);
	refuse(resp, req, 405, "invalid_request", why);
	resp->allow = allow;
}

bool wi_admin_entries_handle(wi_admin_entries *a, const wi_http_request *req, wi_http_response *resp)
{
	static const char base[] = "/entries";
	if (strncmp(req->path, base, sizeof(base) - 1) != 0)
		return false;
	const char *rest = req->path + sizeof(base) - 1;
	if (*rest == '\0') {
		if (strcmp(req->method, "GET") == 0)
			get_entries(a, req, resp, NULL);
		else if (strcmp(req->method, "POST") == 0)
			create_entry(a, req, resp);
		else
			method_not_allowed(resp, req, "GET, POST");
		return true;
	}
	if (*rest != '/')
		return false; /* "/entriesX": not ours */
	rest++;
	if (strcmp(rest, "import") == 0) {
		if (strcmp(req->method, "POST") == 0)
			import_entries(a, req, resp);
		else
			method_not_allowed(resp, req, "POST");
		return true;
	}
	if (!wi_entry_id_valid(rest)) {
		refuse(resp, req, 404, "not_found", "no such entry (an id is 32 lowercase hex characters)");
		return true;
	}
	if (strcmp(req->method, "GET") == 0)
		get_entries(a, req, resp, rest);
	else if (strcmp(req->method, "DELETE") == 0)
		delete_entry(a, req, resp, rest);
	else
		method_not_allowed(resp, req, "GET, DELETE");
	return true;
}
