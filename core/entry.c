/* core/entry.c — the one parser of a registration entry object, its ids and
 * its canonical forms.  See entry.h. */
#include "core/entry.h"

#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/cleanup.h"
#include "core/config.h"
#include "core/digest.h"
#include "core/json.h"
#include "core/limits.h"
#include "core/selector.h"
#include "core/txn_policy.h"

struct wi_entry {
	char id[WI_ENTRY_ID_LEN + 1];
	char *spiffe_id;
	wi_selector_set *selectors;
	char *hint; /* NULL when none */
	int64_t x509_ttl;
	json_t *txn; /* NULL when none */
	wi_entry_source source;
	int64_t created;
	char *body;          /* canonical JSON text */
	char *selectors_key; /* sorted selectors as a JSON array text */
};

WI_DEFINE_FREEP(wi_txn_policy, wi_txn_policy_free)

__attribute__((format(printf, 3, 4))) static int bad(wi_entry_error *err, const char *key, const char *fmt, ...)
{
	char m[sizeof(err->message)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (err) {
		snprintf(err->key, sizeof(err->key), "%s", key);
		snprintf(err->message, sizeof(err->message), "%s", m);
	}
	WI_FAIL(WI_E_CONFIG, "%s", m);
}

int wi_entry_expand_selector(const char *sel, char *buf, size_t cap, const char **ret)
{
	const char *at = strstr(sel, ":@daemon");
	if (!at || at[8] != '\0') {
		*ret = sel;
		return 0;
	}
	size_t kl = (size_t)(at - sel);
	char value[256];
	if (kl == 8 && strncmp(sel, "unix:uid", kl) == 0) {
		snprintf(value, sizeof(value), "%u", (unsigned)geteuid());
	} else if (kl == 8 && strncmp(sel, "unix:gid", kl) == 0) {
		snprintf(value, sizeof(value), "%u", (unsigned)getegid());
	} else if (kl == 9 && strncmp(sel, "unix:user", kl) == 0) {
		struct passwd pw, *res = NULL;
		char pb[4096];
		WI_CHECK(getpwuid_r(geteuid(), &pw, pb, sizeof(pb), &res) == 0 && res, WI_E_SELECTOR,
			 "the daemon's user has no name");
		snprintf(value, sizeof(value), "%s", pw.pw_name);
	} else if (kl == 10 && strncmp(sel, "unix:group", kl) == 0) {
		struct group gr, *res = NULL;
		char gb[16384];
		WI_CHECK(getgrgid_r(getegid(), &gr, gb, sizeof(gb), &res) == 0 && res, WI_E_SELECTOR,
			 "the daemon's group has no name");
		snprintf(value, sizeof(value), "%s", gr.gr_name);
	} else {
		WI_FAIL(WI_E_SELECTOR, "\"@daemon\" applies only to unix:uid, unix:gid, unix:user, unix:group");
	}
	int n = snprintf(buf, cap, "%.*s:%s", (int)kl, sel, value);
	WI_CHECK(n > 0 && (size_t)n < cap, WI_E_SELECTOR, "selector too long");
	*ret = buf;
	return 0;
}

/* The last failure's reason without its "file:line: " head (an API client
 * is told what is wrong with its entry, not where in our code). */
static const char *why(void)
{
	const char *d = wi_error_detail();
	const char *colon = strchr(d, ':');
	if (colon && colon[1] >= '0' && colon[1] <= '9') {
		const char *p = colon + 1;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p[0] == ':' && p[1] == ' ')
			return p + 2;
	}
	return d;
}

/* A string member: NULL when absent (or an error when required). */
static int get_string(const json_t *obj, const char *key, bool required, const char **ret, wi_entry_error *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			return bad(err, key, "missing required key \"%s\"", key);
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return bad(err, key, "\"%s\" must be a string", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, key, "\"%s\" contains a NUL byte", key);
	*ret = json_string_value(v);
	return 0;
}

static int get_ttl(const json_t *obj, int64_t *ret, wi_entry_error *err)
{
	static const char key[] = "x509_svid_ttl";
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*ret = 0;
		return 0;
	}
	int64_t secs;
	if (json_is_integer(v)) {
		secs = json_integer_value(v);
	} else if (json_is_string(v)) {
		if (wi_duration_parse(json_string_value(v), &secs) < 0)
			return bad(err, key, "\"%s\": %s", key, why());
	} else {
		return bad(err, key, "\"%s\" must be a duration string (\"1h\") or seconds", key);
	}
	if (secs < WI_X509_TTL_MIN || secs > WI_X509_TTL_MAX)
		return bad(err, key, "\"%s\" must be between %lld and %lld seconds", key, (long long)WI_X509_TTL_MIN,
			   (long long)WI_X509_TTL_MAX);
	*ret = secs;
	return 0;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* entry.h: SHA-256 over the SPIFFE ID and the sorted selectors, each ended by
 * a newline (neither may contain one), truncated to 128 bits. */
static int config_id(const wi_entry *e, char *out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	WI_CHECK_SSL(md != NULL, "EVP_MD_CTX_new");
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	const EVP_MD *sha256 = wi_digest_md("SHA256");
	int ok = sha256 != NULL && EVP_DigestInit_ex(md, sha256, NULL) == 1 &&
		 EVP_DigestUpdate(md, e->spiffe_id, strlen(e->spiffe_id)) == 1 && EVP_DigestUpdate(md, "\n", 1) == 1;
	for (size_t i = 0; ok && i < wi_selector_set_count(e->selectors); i++) {
		const char *s = wi_selector_set_at(e->selectors, i);
		ok = EVP_DigestUpdate(md, s, strlen(s)) == 1 && EVP_DigestUpdate(md, "\n", 1) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl >= WI_ENTRY_ID_LEN / 2;
	EVP_MD_CTX_free(md);
	WI_CHECK_SSL(ok, "SHA-256 of an entry");
	hex(d, WI_ENTRY_ID_LEN / 2, out);
	return 0;
}

static int random_id(char *out)
{
	unsigned char r[WI_ENTRY_ID_LEN / 2];
	WI_CHECK_SSL(RAND_bytes(r, sizeof(r)) == 1, "RAND_bytes");
	hex(r, sizeof(r), out);
	return 0;
}

bool wi_entry_id_valid(const char *id)
{
	if (!id || strlen(id) != WI_ENTRY_ID_LEN)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* The canonical texts, computed once. */
static int canonicalise(wi_entry *e)
{
	_cleanup_(json_decrefp) json_t *sels = json_array();
	WI_CHECK_ALLOC(sels);
	for (size_t i = 0; i < wi_selector_set_count(e->selectors); i++)
		WI_CHECK_ALLOC(json_array_append_new(sels, json_string(wi_selector_set_at(e->selectors, i))) == 0);
	e->selectors_key = json_dumps(sels, JSON_COMPACT);
	WI_CHECK_ALLOC(e->selectors_key);
	_cleanup_(json_decrefp) json_t *body = json_pack("{s:s, s:O}", "spiffe_id", e->spiffe_id, "selectors", sels);
	WI_CHECK_ALLOC(body);
	if (e->hint)
		WI_CHECK_ALLOC(json_object_set_new(body, "hint", json_string(e->hint)) == 0);
	if (e->x509_ttl)
		WI_CHECK_ALLOC(json_object_set_new(body, "x509_svid_ttl", json_integer(e->x509_ttl)) == 0);
	if (e->txn)
		WI_CHECK_ALLOC(json_object_set(body, "txn", e->txn) == 0);
	e->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	WI_CHECK_ALLOC(e->body);
	return 0;
}

static int parse(const json_t *obj, const char *td, wi_entry *e, wi_entry_error *err)
{
	if (!json_is_object(obj))
		return bad(err, "entries", "each entry must be an object");
	static const char *const keys[] = {"spiffe_id", "selectors", "hint", "x509_svid_ttl", "txn", NULL};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		bool ok = false;
		for (const char *const *a = keys; *a && !ok; a++)
			ok = strcmp(*a, k) == 0;
		if (!ok)
			return bad(err, k, "unknown key \"%.64s\"", k);
	}
	const char *id, *hint;
	WI_TRY(get_string(obj, "spiffe_id", true, &id, err));
	WI_TRY(get_string(obj, "hint", false, &hint, err));
	WI_TRY(get_ttl(obj, &e->x509_ttl, err));
	json_t *sels = json_object_get(obj, "selectors");
	if (!json_is_array(sels) || json_array_size(sels) == 0)
		return bad(err, "selectors", "\"selectors\" must be a non-empty array of strings");
	if (json_array_size(sels) > WI_SELECTORS_PER_ENTRY_MAX)
		return bad(err, "selectors", "\"selectors\" holds more than %d selectors", WI_SELECTORS_PER_ENTRY_MAX);
	WI_TRY(wi_selector_set_new(&e->selectors));
	size_t i;
	json_t *s;
	json_array_foreach(sels, i, s)
	{
		if (!json_is_string(s))
			return bad(err, "selectors", "selectors[%zu] must be a string", i);
		char buf[WI_SELECTOR_MAX + 64];
		const char *sel = NULL;
		if (wi_entry_expand_selector(json_string_value(s), buf, sizeof(buf), &sel) < 0 ||
		    wi_selector_set_add_string(e->selectors, sel) < 0)
			return bad(err, "selectors", "selectors[%zu] \"%.64s\": %s", i, json_string_value(s),
				   why());
	}
	e->spiffe_id = strdup(id);
	e->hint = hint && *hint ? strdup(hint) : NULL;
	WI_CHECK_ALLOC(e->spiffe_id && (!hint || !*hint || e->hint));
	/* The registry's own checks (ID syntax, trust domain, templates, hint
	 * length), on a scratch registry, so that what parses also loads. */
	_cleanup_(wi_registry_unrefp) wi_registry *scratch = NULL;
	WI_TRY(wi_registry_new(td, &scratch));
	if (wi_registry_add(scratch, e->spiffe_id, e->selectors, e->hint, e->x509_ttl) < 0)
		return bad(err, "spiffe_id", "%s", why());
	json_t *txn = json_object_get(obj, "txn");
	if (txn) {
		_cleanup_(wi_txn_policy_freep) wi_txn_policy *pol = NULL;
		if (wi_txn_policy_from_json(txn, &pol) < 0) {
			const char *d = wi_error_detail();
			const char *m = strstr(d, "invalid configuration: ");
			return bad(err, "txn", "txn: %s", m ? m + 23 : d);
		}
		e->txn = json_deep_copy(txn);
		WI_CHECK_ALLOC(e->txn);
	}
	return canonicalise(e);
}

int wi_entry_from_json(const json_t *obj, const char *trust_domain, wi_entry_source source, int64_t created,
		       wi_entry **ret, wi_entry_error *err)
{
	WI_CHECK(trust_domain && ret && (source == WI_ENTRY_SOURCE_CONFIG || source == WI_ENTRY_SOURCE_API),
		 WI_E_INVAL, "entry: bad argument");
	_cleanup_(wi_entry_freep) wi_entry *e = calloc(1, sizeof(*e));
	WI_CHECK_ALLOC(e);
	e->source = source;
	e->created = created;
	WI_TRY(parse(obj, trust_domain, e, err));
	if (source == WI_ENTRY_SOURCE_CONFIG)
		WI_TRY(config_id(e, e->id));
	else
		WI_TRY(random_id(e->id));
	*ret = TAKE_PTR(e);
	return 0;
}

int wi_entry_from_stored(const char *id, const char *body, wi_entry_source source, int64_t created,
			 const char *trust_domain, wi_entry **ret)
{
	WI_CHECK(wi_entry_id_valid(id) && body, WI_E_PARSE, "stored entry: malformed id");
	_cleanup_(json_decrefp) json_t *obj = NULL;
	WI_TRY(wi_json_parse_object(body, strlen(body), "stored entry", &obj));
	_cleanup_(wi_entry_freep) wi_entry *e = NULL;
	wi_entry_error err;
	WI_TRY(wi_entry_from_json(obj, trust_domain, source, created, &e, &err));
	memcpy(e->id, id, WI_ENTRY_ID_LEN + 1);
	*ret = TAKE_PTR(e);
	return 0;
}

wi_entry *wi_entry_free(wi_entry *e)
{
	if (!e)
		return NULL;
	free(e->spiffe_id);
	wi_selector_set_unref(e->selectors);
	free(e->hint);
	json_decref(e->txn);
	free(e->body);
	free(e->selectors_key);
	free(e);
	return NULL;
}

const char *wi_entry_id(const wi_entry *e) { return e->id; }
const char *wi_entry_spiffe_id(const wi_entry *e) { return e->spiffe_id; }
wi_entry_source wi_entry_source_of(const wi_entry *e) { return e->source; }
int64_t wi_entry_created(const wi_entry *e) { return e->created; }
const char *wi_entry_body(const wi_entry *e) { return e->body; }
const char *wi_entry_selectors_key(const wi_entry *e) { return e->selectors_key; }

const char *wi_entry_source_name(wi_entry_source s)
{
	return s == WI_ENTRY_SOURCE_CONFIG ? "config" : "api";
}

json_t *wi_entry_to_json(const wi_entry *e)
{
	json_error_t jerr;
	json_t *j = json_loads(e->body, 0, &jerr);
	if (!j)
		return NULL;
	if (json_object_set_new(j, "id", json_string(e->id)) < 0 ||
	    json_object_set_new(j, "source", json_string(wi_entry_source_name(e->source))) < 0 ||
	    json_object_set_new(j, "created", json_integer(e->created)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int wi_entry_add_to_registry(const wi_entry *e, wi_registry *r)
{
	WI_TRY(wi_registry_add(r, e->spiffe_id, e->selectors, e->hint, e->x509_ttl));
	if (e->txn) {
		wi_txn_policy *pol = NULL;
		WI_TRY(wi_txn_policy_from_json(e->txn, &pol));
		WI_TRY(wi_registry_attach_txn_policy(r, pol));
	}
	return 0;
}
