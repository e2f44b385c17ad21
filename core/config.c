/* core/config.c — config loading with errors that name the offending key. */
#include "core/config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/entry.h"
#include "core/fsutil.h"
#include "core/hostport.h"
#include "core/jws.h"
#include "core/limits.h"
#include "core/selector.h"
#include "core/spiffe_id.h"

struct wi_config {
	char *trust_domain;
	char *data_dir;
	char *workload_socket;
	wi_log_level log_level;
	bool log_json;
	int64_t x509_svid_ttl;
	int64_t max_x509_svid_ttl;
	int64_t jwt_svid_ttl;
	int jwt_key_type;
	int64_t jwt_key_rotate_every;
	int64_t ca_ttl;
	int64_t ca_rotate_every; /* -1 until set: then derived from the TTLs */
	char *ca_upstream_cert;
	char *ca_upstream_key;
	wi_registry *registry;
	wi_entry **entries; /* the same entries, as data (core/entry.h) */
	size_t n_entries;
	/* Transaction Token Service */
	char *exchange_socket;
	char *https_listen;
	char *metrics_listen; /* NULL: off */
	int64_t txn_default_ttl;
	int64_t txn_key_rotate_every;
	int txn_max_hops;
	wi_selector_set *admin_selectors;
	bool dev_issuer;
	wi_issuer_config *issuers;
	size_t n_issuers;
	char **strings; /* every string the issuers point at */
	size_t n_strings, alloc_strings;
};

/* Keeps a copy owned by the config; NULL on allocation failure. */
static const char *keep(wi_config *c, const char *s)
{
	if (c->n_strings == c->alloc_strings) {
		size_t na = c->alloc_strings ? c->alloc_strings * 2 : 32;
		char **n = realloc(c->strings, na * sizeof(*n));
		if (!n)
			return NULL;
		c->strings = n;
		c->alloc_strings = na;
	}
	char *d = strdup(s);
	if (d)
		c->strings[c->n_strings++] = d;
	return d;
}

/* Parsing context: the source text (for line numbers) and its name. */
typedef struct ctx {
	const char *text;
	const char *name;
} ctx;

/* The line of the first `"key"` followed by ':' in the text: jansson keeps no
 * positions for values, so this locates the key for the operator. */
static int key_line(const ctx *cx, const char *key)
{
	size_t kl = strlen(key);
	const char *p = cx->text;
	while ((p = strchr(p, '"')) != NULL) {
		if (strncmp(p + 1, key, kl) == 0 && p[1 + kl] == '"') {
			const char *q = p + 2 + kl;
			while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
				q++;
			if (*q == ':') {
				int line = 1;
				for (const char *t = cx->text; t < p; t++)
					line += *t == '\n';
				return line;
			}
		}
		p++;
	}
	return 0;
}

#define CFG_FAIL(cx, key, path, ...)                                                       \
	do {                                                                               \
		char m__[256];                                                             \
		snprintf(m__, sizeof(m__), __VA_ARGS__);                                   \
		WI_FAIL(WI_E_CONFIG, "%s:%d: %s: %s", (cx)->name, key_line((cx), (key)), (path), m__); \
	} while (0)

int wi_duration_parse(const char *s, int64_t *ret_seconds)
{
	WI_CHECK(s && *s, WI_E_PARSE, "empty duration");
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		WI_CHECK(*p >= '0' && *p <= '9', WI_E_PARSE, "duration \"%.32s\": expected a number", s);
		int64_t n = 0;
		while (*p >= '0' && *p <= '9') {
			WI_CHECK(n <= (INT64_MAX - 9) / 10, WI_E_PARSE, "duration \"%.32s\" overflows", s);
			n = n * 10 + (*p++ - '0');
		}
		int64_t unit;
		switch (*p) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		default: WI_FAIL(WI_E_PARSE, "duration \"%.32s\": unit must be s, m, h or d", s);
		}
		p++;
		WI_CHECK(n <= (INT64_MAX - total) / unit, WI_E_PARSE, "duration \"%.32s\" overflows", s);
		total += n * unit;
	}
	*ret_seconds = total;
	return 0;
}

/* Checks that `obj` has only `allowed` keys. */
static int check_keys(const ctx *cx, json_t *obj, const char *path, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(*a, k) == 0;
		if (!ok)
			CFG_FAIL(cx, k, path, "unknown key \"%s\"", k);
	}
	return 0;
}

static int get_string(const ctx *cx, json_t *obj, const char *key, const char *path, bool required,
		      const char **ret)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			CFG_FAIL(cx, key, path, "missing required key \"%s\"", key);
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		CFG_FAIL(cx, key, path, "\"%s\" must be a string", key);
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		CFG_FAIL(cx, key, path, "\"%s\" contains a NUL byte", key);
	*ret = s;
	return 0;
}

static int get_duration(const ctx *cx, json_t *obj, const char *key, const char *path, int64_t min,
			int64_t max, int64_t *ret)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0; /* keep the default already in *ret */
	int64_t secs;
	if (json_is_integer(v)) {
		secs = json_integer_value(v);
	} else if (json_is_string(v)) {
		if (wi_duration_parse(json_string_value(v), &secs) < 0)
			CFG_FAIL(cx, key, path, "\"%s\": %s", key, wi_error_detail());
	} else {
		CFG_FAIL(cx, key, path, "\"%s\" must be a duration string (\"1h\") or seconds", key);
	}
	if (secs < min || secs > max)
		CFG_FAIL(cx, key, path, "\"%s\" must be between %lld and %lld seconds", key, (long long)min,
			 (long long)max);
	*ret = secs;
	return 0;
}

/* A rotation period: 0 (never) or at least WI_ROTATION_PERIOD_MIN. */
static int get_rotation(const ctx *cx, json_t *obj, const char *key, const char *path, int64_t *ret)
{
	WI_TRY(get_duration(cx, obj, key, path, 0, WI_ROTATION_PERIOD_MAX, ret));
	if (*ret != 0 && *ret < WI_ROTATION_PERIOD_MIN)
		CFG_FAIL(cx, key, path, "\"%s\" must be 0 (never) or at least %d seconds", key,
			 WI_ROTATION_PERIOD_MIN);
	return 0;
}

static int abs_path(const ctx *cx, const char *key, const char *path, const char *in, char **ret)
{
	if (!*in)
		CFG_FAIL(cx, key, path, "\"%s\" is empty", key);
	if (in[0] == '/') {
		*ret = strdup(in);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			CFG_FAIL(cx, key, path, "cannot resolve relative path: working directory unknown");
		const char *rel = in;
		while (rel[0] == '.' && rel[1] == '/')
			rel += 2;
		size_t cl = strlen(cwd), rl = strlen(rel);
		if (cl + 1 + rl + 1 > PATH_MAX)
			CFG_FAIL(cx, key, path, "\"%s\" is too long", key);
		*ret = malloc(cl + 1 + rl + 1);
		if (*ret) {
			memcpy(*ret, cwd, cl);
			(*ret)[cl] = '/';
			memcpy(*ret + cl + 1, rel, rl + 1);
		}
	}
	WI_CHECK_ALLOC(*ret);
	return 0;
}

/* One entry object, through the parser the admin API shares (core/entry.h);
 * its error is placed at the key's line in this file. */
static int load_entry(const ctx *cx, wi_config *c, json_t *e, size_t idx)
{
	char path[64];
	snprintf(path, sizeof(path), "entries[%zu]", idx);
	wi_entry *ent = NULL;
	wi_entry_error err = {0};
	int rc = wi_entry_from_json(e, c->trust_domain, WI_ENTRY_SOURCE_CONFIG, 0, &ent, &err);
	if (rc < 0 && err.key[0])
		CFG_FAIL(cx, err.key, path, "%.250s", err.message);
	WI_TRY(rc); /* not the input's fault: out of memory */
	c->entries[c->n_entries++] = ent;
	/* Same SPIFFE ID and selectors: the same id, and a useless repeat
	 * (the second identity would be dropped at every match). */
	for (size_t i = 0; i + 1 < c->n_entries; i++)
		if (strcmp(wi_entry_id(c->entries[i]), wi_entry_id(ent)) == 0)
			CFG_FAIL(cx, "spiffe_id", path, "repeats entries[%zu] (same spiffe_id and selectors)", i);
	if (wi_entry_add_to_registry(ent, c->registry) < 0)
		CFG_FAIL(cx, "spiffe_id", path, "%s", wi_error_detail());
	json_t *ttl = json_object_get(e, "x509_svid_ttl");
	int64_t secs = 0;
	if (json_is_integer(ttl))
		secs = json_integer_value(ttl);
	else if (json_is_string(ttl) && wi_duration_parse(json_string_value(ttl), &secs) < 0)
		secs = 0;
	if (secs > c->max_x509_svid_ttl)
		c->max_x509_svid_ttl = secs;
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
} alg_names[] = {
	{"RS256", WI_JWS_RS256}, {"RS384", WI_JWS_RS384}, {"RS512", WI_JWS_RS512}, {"ES256", WI_JWS_ES256},
	{"ES384", WI_JWS_ES384}, {"ES512", WI_JWS_ES512}, {"PS256", WI_JWS_PS256}, {"PS384", WI_JWS_PS384},
	{"PS512", WI_JWS_PS512}, {"EdDSA", WI_JWS_EDDSA},
};

/* http://127.0.0.1, http://localhost or http://[::1], with an optional port
 * and path, and nothing else ("http://localhost.evil" is not loopback). */
static bool loopback_http(const char *url)
{
	static const char *const hosts[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(hosts[i]);
		if (strncmp(url, hosts[i], n) == 0 && (url[n] == '\0' || url[n] == ':' || url[n] == '/'))
			return true;
	}
	return false;
}

static int load_issuer(const ctx *cx, wi_config *c, json_t *o, size_t idx)
{
	char path[64];
	snprintf(path, sizeof(path), "txn.issuers[%zu]", idx);
	if (!json_is_object(o))
		CFG_FAIL(cx, "issuers", path, "each issuer must be an object");
	static const char *const keys[] = {"issuer", "jwks_file", "jwks_url", "audiences", "algorithms",
					   "token_type", "scope_claim", "scope_optional", NULL};
	WI_TRY(check_keys(cx, o, path, keys));
	wi_issuer_config *is = &c->issuers[idx];
	const char *iss, *file, *url, *typ, *sc;
	WI_TRY(get_string(cx, o, "issuer", path, true, &iss));
	WI_TRY(get_string(cx, o, "jwks_file", path, false, &file));
	WI_TRY(get_string(cx, o, "jwks_url", path, false, &url));
	WI_TRY(get_string(cx, o, "token_type", path, false, &typ));
	WI_TRY(get_string(cx, o, "scope_claim", path, false, &sc));
	if (!*iss)
		CFG_FAIL(cx, "issuer", path, "\"issuer\" is empty");
	for (size_t i = 0; i < idx; i++)
		if (strcmp(c->issuers[i].issuer, iss) == 0)
			CFG_FAIL(cx, "issuer", path, "issuer \"%.64s\" is listed twice", iss);
	if (!file == !url)
		CFG_FAIL(cx, "jwks_file", path, "exactly one of \"jwks_file\" and \"jwks_url\" is required");
	/* RFC 8725 §3.10 and our threat model: keys over plain HTTP only from
	 * this machine (a test IdP); anything else must be HTTPS. */
	if (url && strncmp(url, "https://", 8) != 0 && !loopback_http(url))
		CFG_FAIL(cx, "jwks_url", path, "\"jwks_url\" must be https:// (or http:// on loopback)");
	if (sc && strcmp(sc, "scope") && strcmp(sc, "scp"))
		CFG_FAIL(cx, "scope_claim", path, "\"scope_claim\" must be \"scope\" or \"scp\"");
	is->issuer = keep(c, iss);
	char *abs = NULL;
	if (file) {
		WI_TRY(abs_path(cx, "jwks_file", path, file, &abs));
		is->jwks_file = keep(c, abs);
		free(abs);
	} else {
		is->jwks_url = keep(c, url);
	}
	is->token_type = typ ? keep(c, typ) : NULL;
	is->scope_claim = keep(c, sc ? sc : "scope");
	WI_CHECK_ALLOC(is->issuer && is->scope_claim && (is->jwks_file || is->jwks_url) && (!typ || is->token_type));
	json_t *opt = json_object_get(o, "scope_optional");
	if (opt && !json_is_boolean(opt))
		CFG_FAIL(cx, "scope_optional", path, "\"scope_optional\" must be true or false");
	is->scope_optional = json_is_true(opt);

	json_t *auds = json_object_get(o, "audiences");
	if (!json_is_array(auds) || json_array_size(auds) == 0 || json_array_size(auds) > WI_JWT_AUDIENCES_MAX)
		CFG_FAIL(cx, "audiences", path, "\"audiences\" must be a non-empty array of at most %d strings",
			 WI_JWT_AUDIENCES_MAX);
	const char **al = calloc(json_array_size(auds), sizeof(*al));
	WI_CHECK_ALLOC(al);
	is->audiences = al;
	size_t i;
	json_t *a;
	json_array_foreach(auds, i, a)
	{
		if (!json_is_string(a) || !*json_string_value(a))
			CFG_FAIL(cx, "audiences", path, "audiences[%zu] must be a non-empty string", i);
		al[i] = keep(c, json_string_value(a));
		WI_CHECK_ALLOC(al[i]);
		is->n_audiences++;
	}
	json_t *algs = json_object_get(o, "algorithms");
	if (!algs) {
		is->algorithms = WI_JWS_RS256 | WI_JWS_ES256;
	} else {
		if (!json_is_array(algs) || json_array_size(algs) == 0)
			CFG_FAIL(cx, "algorithms", path, "\"algorithms\" must be a non-empty array");
		json_array_foreach(algs, i, a)
		{
			unsigned bit = 0;
			for (size_t k = 0; json_is_string(a) && k < sizeof(alg_names) / sizeof(alg_names[0]); k++)
				if (strcmp(json_string_value(a), alg_names[k].name) == 0)
					bit = alg_names[k].bit;
			/* RFC 8725 §3.1: no "none", no HMAC with public keys. */
			if (!bit)
				CFG_FAIL(cx, "algorithms", path,
					 "algorithms[%zu] must be one of RS256/384/512, PS256/384/512, ES256/384/512, EdDSA", i);
			is->algorithms |= bit;
		}
	}
	return 0;
}

static int load_txn(const ctx *cx, wi_config *c, json_t *t)
{
	if (!json_is_object(t))
		CFG_FAIL(cx, "txn", "$", "\"txn\" must be an object");
	static const char *const keys[] = {"exchange_socket", "https_listen", "default_ttl", "max_hops",
					   "admin_selectors", "dev_issuer", "issuers", "key_rotate_every", NULL};
	WI_TRY(check_keys(cx, t, "txn", keys));
	const char *sock, *listen;
	WI_TRY(get_string(cx, t, "exchange_socket", "txn", true, &sock));
	WI_TRY(abs_path(cx, "exchange_socket", "txn", sock, &c->exchange_socket));
	if (strlen(c->exchange_socket) >= 108)
		CFG_FAIL(cx, "exchange_socket", "txn", "socket path longer than 107 bytes");
	if (strcmp(c->exchange_socket, c->workload_socket) == 0)
		CFG_FAIL(cx, "exchange_socket", "txn", "must differ from workload_socket");
	WI_TRY(get_string(cx, t, "https_listen", "txn", false, &listen));
	if (listen) {
		const char *colon = strrchr(listen, ':');
		char *end = NULL;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;
		if (!colon || colon == listen || !end || *end || port <= 0 || port > 65535)
			CFG_FAIL(cx, "https_listen", "txn", "\"https_listen\" must be ADDRESS:PORT (127.0.0.1:8443, [::1]:8443)");
		c->https_listen = strdup(listen);
		WI_CHECK_ALLOC(c->https_listen);
	}
	c->txn_default_ttl = WI_TXN_TTL_DEFAULT;
	WI_TRY(get_duration(cx, t, "default_ttl", "txn", WI_TXN_TTL_MIN, WI_TXN_TTL_MAX, &c->txn_default_ttl));
	c->txn_key_rotate_every = WI_KEY_ROTATE_DEFAULT;
	WI_TRY(get_rotation(cx, t, "key_rotate_every", "txn", &c->txn_key_rotate_every));
	json_t *hops = json_object_get(t, "max_hops");
	c->txn_max_hops = WI_TXN_MAX_HOPS_DEFAULT;
	if (hops) {
		if (!json_is_integer(hops) || json_integer_value(hops) < 1 ||
		    json_integer_value(hops) > WI_TXN_MAX_HOPS_MAX)
			CFG_FAIL(cx, "max_hops", "txn", "\"max_hops\" must be an integer from 1 to %d", WI_TXN_MAX_HOPS_MAX);
		c->txn_max_hops = (int)json_integer_value(hops);
	}
	json_t *dev = json_object_get(t, "dev_issuer");
	if (dev && !json_is_boolean(dev))
		CFG_FAIL(cx, "dev_issuer", "txn", "\"dev_issuer\" must be true or false");
	c->dev_issuer = json_is_true(dev);

	WI_TRY(wi_selector_set_new(&c->admin_selectors));
	json_t *adm = json_object_get(t, "admin_selectors");
	if (!adm) {
		WI_TRY(wi_selector_set_add_string(c->admin_selectors, "unix:uid:0"));
	} else {
		if (!json_is_array(adm) || json_array_size(adm) == 0)
			CFG_FAIL(cx, "admin_selectors", "txn", "\"admin_selectors\" must be a non-empty array");
		size_t i;
		json_t *s;
		json_array_foreach(adm, i, s)
		{
			char buf[WI_SELECTOR_MAX + 64];
			const char *sel = NULL;
			if (!json_is_string(s) || wi_entry_expand_selector(json_string_value(s), buf, sizeof(buf), &sel) < 0 ||
			    wi_selector_set_add_string(c->admin_selectors, sel) < 0)
				CFG_FAIL(cx, "admin_selectors", "txn", "admin_selectors[%zu]: %s", i, wi_error_detail());
		}
	}
	json_t *iss = json_object_get(t, "issuers");
	if (iss) {
		if (!json_is_array(iss))
			CFG_FAIL(cx, "issuers", "txn", "\"issuers\" must be an array");
		if (json_array_size(iss) > WI_ISSUERS_MAX)
			CFG_FAIL(cx, "issuers", "txn", "more than %d issuers", WI_ISSUERS_MAX);
		c->issuers = calloc(json_array_size(iss) ? json_array_size(iss) : 1, sizeof(*c->issuers));
		WI_CHECK_ALLOC(c->issuers);
		size_t i;
		json_t *o;
		json_array_foreach(iss, i, o)
		{
			c->n_issuers++; /* counted first: a half-loaded one is freed too */
			WI_TRY(load_issuer(cx, c, o, i));
		}
	}
	return 0;
}

static int json_depth_ok(json_t *j, int depth)
{
	if (depth > WI_JSON_DEPTH_MAX)
		return 0;
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v) if (!json_depth_ok(v, depth + 1)) return 0;
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) if (!json_depth_ok(v, depth + 1)) return 0;
	}
	return 1;
}

/* metrics_listen: plain-HTTP GET /metrics on TCP (off when absent). */
static int load_metrics_listen(const ctx *cx, json_t *root, wi_config *c)
{
	const char *ml;
	WI_TRY(get_string(cx, root, "metrics_listen", "$", false, &ml));
	if (!ml)
		return 0;
	struct sockaddr_storage ss;
	if (wi_hostport_parse(ml, &ss) < 0) {
		/* The detail is "file:line: kind: message"; keep the message. */
		const char *d = wi_error_detail(), *m = strstr(d, ": ");
		m = m ? strstr(m + 2, ": ") : NULL;
		CFG_FAIL(cx, "metrics_listen", "$",
			 "\"metrics_listen\" must be IPV4:PORT or [IPV6]:PORT (127.0.0.1:9464, [::1]:9464): %s",
			 m ? m + 2 : d);
	}
	c->metrics_listen = strdup(ml);
	WI_CHECK_ALLOC(c->metrics_listen);
	return 0;
}

static int load(const ctx *cx, json_t *root, wi_config *c)
{
	if (!json_is_object(root))
		WI_FAIL(WI_E_CONFIG, "%s: the config must be a JSON object", cx->name);
	if (!json_depth_ok(root, 0))
		WI_FAIL(WI_E_CONFIG, "%s: nested deeper than %d levels", cx->name, WI_JSON_DEPTH_MAX);
	static const char *const keys[] = {"trust_domain", "data_dir", "workload_socket", "log_level",
					   "log_format", "x509_svid_ttl", "jwt_svid_ttl", "jwt_key_type",
					   "jwt_key_rotate_every", "ca", "entries", "txn", "metrics_listen", NULL};
	WI_TRY(check_keys(cx, root, "$", keys));

	const char *td, *dd, *sock, *lvl, *fmt;
	WI_TRY(get_string(cx, root, "trust_domain", "$", true, &td));
	if (wi_trust_domain_validate(td, strlen(td)) < 0)
		CFG_FAIL(cx, "trust_domain", "$", "\"trust_domain\": %s", wi_error_detail());
	WI_TRY(get_string(cx, root, "data_dir", "$", true, &dd));
	WI_TRY(get_string(cx, root, "workload_socket", "$", true, &sock));
	WI_TRY(get_string(cx, root, "log_level", "$", false, &lvl));
	WI_TRY(get_string(cx, root, "log_format", "$", false, &fmt));
	c->trust_domain = strdup(td);
	WI_CHECK_ALLOC(c->trust_domain);
	WI_TRY(abs_path(cx, "data_dir", "$", dd, &c->data_dir));
	WI_TRY(abs_path(cx, "workload_socket", "$", sock, &c->workload_socket));
	/* sun_path holds 108 bytes including the NUL. */
	if (strlen(c->workload_socket) >= 108)
		CFG_FAIL(cx, "workload_socket", "$", "socket path longer than 107 bytes");

	c->log_level = WI_LOG_INFO;
	if (lvl) {
		static const char *const names[] = {"debug", "info", "warn", "error"};
		bool found = false;
		for (int i = 0; i < 4; i++)
			if (strcmp(lvl, names[i]) == 0) {
				c->log_level = (wi_log_level)i;
				found = true;
			}
		if (!found)
			CFG_FAIL(cx, "log_level", "$", "\"log_level\" must be debug, info, warn or error");
	}
	if (fmt) {
		if (strcmp(fmt, "json") == 0)
			c->log_json = true;
		else if (strcmp(fmt, "text") != 0)
			CFG_FAIL(cx, "log_format", "$", "\"log_format\" must be text or json");
	}
	WI_TRY(load_metrics_listen(cx, root, c));

	c->x509_svid_ttl = WI_X509_TTL_DEFAULT;
	WI_TRY(get_duration(cx, root, "x509_svid_ttl", "$", WI_X509_TTL_MIN, WI_X509_TTL_MAX,
			    &c->x509_svid_ttl));
	c->max_x509_svid_ttl = c->x509_svid_ttl;
	c->jwt_svid_ttl = WI_JWT_TTL_DEFAULT;
	WI_TRY(get_duration(cx, root, "jwt_svid_ttl", "$", WI_JWT_TTL_MIN, WI_JWT_TTL_MAX, &c->jwt_svid_ttl));
	const char *kt;
	WI_TRY(get_string(cx, root, "jwt_key_type", "$", false, &kt));
	if (kt) {
		static const char *const types[] = {"ec-p256", "rsa-2048", "rsa-3072"};
		c->jwt_key_type = -1;
		for (int i = 0; i < 3; i++)
			if (strcmp(kt, types[i]) == 0)
				c->jwt_key_type = i;
		if (c->jwt_key_type < 0)
			CFG_FAIL(cx, "jwt_key_type", "$", "\"jwt_key_type\" must be ec-p256, rsa-2048 or rsa-3072");
	}
	c->jwt_key_rotate_every = WI_KEY_ROTATE_DEFAULT;
	WI_TRY(get_rotation(cx, root, "jwt_key_rotate_every", "$", &c->jwt_key_rotate_every));

	c->ca_ttl = WI_CA_TTL_DEFAULT;
	c->ca_rotate_every = -1;
	json_t *ca = json_object_get(root, "ca");
	if (ca) {
		if (!json_is_object(ca))
			CFG_FAIL(cx, "ca", "$", "\"ca\" must be an object");
		static const char *const ca_keys[] = {"ttl", "rotate_every", "upstream_cert", "upstream_key", NULL};
		WI_TRY(check_keys(cx, ca, "ca", ca_keys));
		WI_TRY(get_duration(cx, ca, "ttl", "ca", WI_CA_TTL_MIN, WI_CA_TTL_MAX, &c->ca_ttl));
		if (json_object_get(ca, "rotate_every"))
			WI_TRY(get_rotation(cx, ca, "rotate_every", "ca", &c->ca_rotate_every));
		const char *uc, *uk;
		WI_TRY(get_string(cx, ca, "upstream_cert", "ca", false, &uc));
		WI_TRY(get_string(cx, ca, "upstream_key", "ca", false, &uk));
		if (!uc != !uk)
			CFG_FAIL(cx, uc ? "upstream_cert" : "upstream_key", "ca",
				 "\"upstream_cert\" and \"upstream_key\" go together");
		if (uc) {
			WI_TRY(abs_path(cx, "upstream_cert", "ca", uc, &c->ca_upstream_cert));
			WI_TRY(abs_path(cx, "upstream_key", "ca", uk, &c->ca_upstream_key));
		}
	}

	WI_TRY(wi_registry_new(c->trust_domain, &c->registry));
	json_t *entries = json_object_get(root, "entries");
	if (entries) {
		if (!json_is_array(entries))
			CFG_FAIL(cx, "entries", "$", "\"entries\" must be an array");
		size_t i;
		json_t *e;
		c->entries = calloc(json_array_size(entries) ? json_array_size(entries) : 1, sizeof(*c->entries));
		WI_CHECK_ALLOC(c->entries);
		json_array_foreach(entries, i, e) WI_TRY(load_entry(cx, c, e, i));
	}
	json_t *txn = json_object_get(root, "txn");
	if (txn)
		WI_TRY(load_txn(cx, c, txn));
	if (c->ca_ttl < 2 * c->max_x509_svid_ttl)
		CFG_FAIL(cx, "ttl", "ca", "the CA ttl must be at least twice the longest X.509-SVID ttl");
	/* A CA is published one SVID lifetime L before it signs, signs for R,
	 * and must outlive its last SVIDs by L: ttl >= R + 2L.  By default R is
	 * half the ttl, or what is left when L is long. */
	int64_t room = c->ca_ttl - 2 * c->max_x509_svid_ttl;
	if (c->ca_rotate_every < 0) {
		c->ca_rotate_every = c->ca_ttl / 2 < room ? c->ca_ttl / 2 : room;
		if (c->ca_rotate_every < WI_ROTATION_PERIOD_MIN)
			c->ca_rotate_every = 0;
	} else if (c->ca_rotate_every > room) {
		CFG_FAIL(cx, "rotate_every", "ca",
			 "\"rotate_every\" must leave twice the longest X.509-SVID ttl of the CA ttl (at most %lld seconds)",
			 (long long)room);
	}
	return 0;
}

int wi_config_load_string(const char *text, const char *name, wi_config **ret)
{
	ctx cx = {text, name};
	json_error_t jerr;
	/* RFC 8259 §4: duplicate names are ambiguous; refuse them. */
	_cleanup_(json_decrefp) json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		WI_FAIL(WI_E_CONFIG, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
	wi_config *c = calloc(1, sizeof(*c));
	WI_CHECK_ALLOC(c);
	int rc = load(&cx, root, c);
	if (rc < 0) {
		wi_config_free(c);
		return rc;
	}
	*ret = c;
	return 0;
}

int wi_config_load_file(const char *path, wi_config **ret)
{
	_cleanup_(freep) uint8_t *data = NULL;
	size_t len;
	int rc = wi_fs_read_file(path, WI_CONFIG_FILE_MAX, &data, &len);
	if (rc < 0)
		WI_FAIL(WI_E_CONFIG, "%s: cannot read: %s", path, wi_error_detail());
	WI_CHECK(strlen((char *)data) == len, WI_E_CONFIG, "%s: contains a NUL byte", path);
	return wi_config_load_string((const char *)data, path, ret);
}

wi_config *wi_config_free(wi_config *c)
{
	if (!c)
		return NULL;
	free(c->trust_domain);
	free(c->data_dir);
	free(c->workload_socket);
	free(c->ca_upstream_cert);
	free(c->ca_upstream_key);
	wi_registry_unref(c->registry);
	for (size_t i = 0; i < c->n_entries; i++)
		wi_entry_free(c->entries[i]);
	free(c->entries);
	free(c->exchange_socket);
	free(c->https_listen);
	free(c->metrics_listen);
	wi_selector_set_unref(c->admin_selectors);
	for (size_t i = 0; i < c->n_issuers; i++)
		free((void *)c->issuers[i].audiences);
	free(c->issuers);
	for (size_t i = 0; i < c->n_strings; i++)
		free(c->strings[i]);
	free(c->strings);
	free(c);
	return NULL;
}

const char *wi_config_trust_domain(const wi_config *c) { return c->trust_domain; }
const char *wi_config_data_dir(const wi_config *c) { return c->data_dir; }
const char *wi_config_workload_socket(const wi_config *c) { return c->workload_socket; }
wi_log_level wi_config_log_level(const wi_config *c) { return c->log_level; }
bool wi_config_log_json(const wi_config *c) { return c->log_json; }
int64_t wi_config_x509_svid_ttl(const wi_config *c) { return c->x509_svid_ttl; }
int64_t wi_config_ca_ttl(const wi_config *c) { return c->ca_ttl; }
int64_t wi_config_jwt_svid_ttl(const wi_config *c) { return c->jwt_svid_ttl; }
int64_t wi_config_jwt_key_rotate_every(const wi_config *c) { return c->jwt_key_rotate_every; }
int64_t wi_config_ca_rotate_every(const wi_config *c) { return c->ca_rotate_every; }
int64_t wi_config_txn_key_rotate_every(const wi_config *c) { return c->txn_key_rotate_every; }
int wi_config_jwt_key_type(const wi_config *c) { return c->jwt_key_type; }
const char *wi_config_ca_upstream_cert(const wi_config *c) { return c->ca_upstream_cert; }
const char *wi_config_ca_upstream_key(const wi_config *c) { return c->ca_upstream_key; }
int64_t wi_config_max_x509_svid_ttl(const wi_config *c) { return c->max_x509_svid_ttl; }
wi_registry *wi_config_registry(const wi_config *c) { return wi_registry_ref(c->registry); }
const char *wi_config_exchange_socket(const wi_config *c) { return c->exchange_socket; }
const char *wi_config_https_listen(const wi_config *c) { return c->https_listen; }
const char *wi_config_metrics_listen(const wi_config *c) { return c->metrics_listen; }
int64_t wi_config_txn_default_ttl(const wi_config *c) { return c->txn_default_ttl; }
int wi_config_txn_max_hops(const wi_config *c) { return c->txn_max_hops; }
const wi_selector_set *wi_config_admin_selectors(const wi_config *c) { return c->admin_selectors; }
bool wi_config_dev_issuer(const wi_config *c) { return c->dev_issuer; }
size_t wi_config_issuer_count(const wi_config *c) { return c->n_issuers; }
const wi_issuer_config *wi_config_issuer_at(const wi_config *c, size_t i) { return i < c->n_issuers ? &c->issuers[i] : NULL; }
size_t wi_config_entry_count(const wi_config *c) { return c->n_entries; }
const wi_entry *wi_config_entry_at(const wi_config *c, size_t i) { return i < c->n_entries ? c->entries[i] : NULL; }
