/* core/txn_policy.c — per-entry Transaction Token policy. */
#include "core/txn_policy.h"

#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/spiffe_id.h"

struct wi_txn_policy {
	char **scopes;
	size_t n_scopes;
	char **resources;
	size_t n_resources;
	char **exchange_for;
	size_t n_exchange_for;
	int64_t max_ttl;
};

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

wi_txn_policy *wi_txn_policy_free(wi_txn_policy *p)
{
	if (!p)
		return NULL;
	free_list(p->scopes, p->n_scopes);
	free_list(p->resources, p->n_resources);
	free_list(p->exchange_for, p->n_exchange_for);
	free(p);
	return NULL;
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static bool scope_token_ok(const char *s)
{
	if (!*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!(*p == 0x21 || (*p >= 0x23 && *p <= 0x5b) || (*p >= 0x5d && *p <= 0x7e)))
			return false;
	return true;
}

/* A SPIFFE ID, or a prefix pattern: an ID followed by a slash and a star. */
static bool pattern_ok(const char *s)
{
	size_t n = strlen(s);
	if (n > 2 && strcmp(s + n - 2, "/*") == 0)
		return wi_spiffe_id_validate(s, n - 2, false) == 0;
	return wi_spiffe_id_validate(s, n, true) == 0;
}

static int string_list(const json_t *obj, const char *key, bool (*valid)(const char *), const char *what,
		       char ***ret, size_t *ret_n)
{
	json_t *a = json_object_get(obj, key);
	*ret = NULL;
	*ret_n = 0;
	if (!a)
		return 0;
	WI_CHECK(json_is_array(a), WI_E_CONFIG, "\"%s\" must be an array of strings", key);
	size_t n = json_array_size(a);
	WI_CHECK(n <= WI_TXN_POLICY_LIST_MAX, WI_E_CONFIG, "\"%s\" has more than %d items", key,
		 WI_TXN_POLICY_LIST_MAX);
	char **l = calloc(n ? n : 1, sizeof(*l));
	WI_CHECK_ALLOC(l);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    json_string_length(v) > WI_TXN_POLICY_ITEM_MAX || !valid(json_string_value(v))) {
			free_list(l, i);
			WI_FAIL(WI_E_CONFIG, "%s[%zu] must be %s", key, i, what);
		}
		l[i] = strdup(json_string_value(v));
		if (!l[i]) {
			free_list(l, i);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
	}
	*ret = l;
	*ret_n = n;
	return 0;
}

static bool resource_ok(const char *s)
{
	/* RFC 8707 §2: an absolute URI without a fragment. */
	const char *colon = strchr(s, ':');
	return colon && colon != s && !strchr(s, '#') && !strpbrk(s, " \t\r\n");
}

int wi_txn_policy_from_json(const json_t *obj, wi_txn_policy **ret)
{
	WI_CHECK(json_is_object(obj), WI_E_CONFIG, "\"txn\" must be an object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		if (strcmp(k, "allowed_scopes") && strcmp(k, "allowed_resources") && strcmp(k, "max_ttl") &&
		    strcmp(k, "may_exchange_for"))
			WI_FAIL(WI_E_CONFIG, "unknown key \"%s\"", k);
	}
	wi_txn_policy *p = calloc(1, sizeof(*p));
	WI_CHECK_ALLOC(p);
	int rc = string_list(obj, "allowed_scopes", scope_token_ok, "a scope token (RFC 6749 §3.3)", &p->scopes,
			     &p->n_scopes);
	if (rc == 0)
		rc = string_list(obj, "allowed_resources", resource_ok, "an absolute URI without fragment",
				 &p->resources, &p->n_resources);
	if (rc == 0)
		rc = string_list(obj, "may_exchange_for", pattern_ok, "a SPIFFE ID or a \"spiffe://td/path/*\" prefix",
				 &p->exchange_for, &p->n_exchange_for);
	json_t *ttl = json_object_get(obj, "max_ttl");
	if (rc == 0 && ttl) {
		int64_t secs = -1;
		if (json_is_integer(ttl))
			secs = json_integer_value(ttl);
		else if (json_is_string(ttl) && wi_duration_parse(json_string_value(ttl), &secs) < 0)
			secs = -1;
		if (secs < WI_TXN_TTL_MIN || secs > WI_TXN_TTL_MAX)
			rc = wi__error_set(WI_E_CONFIG, __FILE__, __LINE__,
					   "\"max_ttl\" must be a duration between %d and %d seconds", WI_TXN_TTL_MIN,
					   WI_TXN_TTL_MAX);
		p->max_ttl = secs;
	}
	if (rc < 0) {
		wi_txn_policy_free(p);
		return rc;
	}
	*ret = p;
	return 0;
}

static bool in_list(char *const *l, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i], s) == 0)
			return true;
	return false;
}

bool wi_txn_policy_allows_scope(const wi_txn_policy *p, const char *scope)
{
	return p && in_list(p->scopes, p->n_scopes, scope);
}

bool wi_txn_policy_allows_resource(const wi_txn_policy *p, const char *resource)
{
	return p && in_list(p->resources, p->n_resources, resource);
}

bool wi_txn_policy_may_exchange_for(const wi_txn_policy *p, const char *spiffe_id)
{
	if (!p)
		return false;
	size_t idlen = strlen(spiffe_id);
	for (size_t i = 0; i < p->n_exchange_for; i++) {
		const char *pat = p->exchange_for[i];
		size_t n = strlen(pat);
		if (n > 2 && strcmp(pat + n - 2, "/*") == 0) {
			/* The pattern spiffe://td/agents + slash-star covers spiffe://td/agents/x and deeper,
			 * never spiffe://td/agentsX. */
			if (idlen > n - 1 && strncmp(spiffe_id, pat, n - 1) == 0)
				return true;
		} else if (strcmp(pat, spiffe_id) == 0) {
			return true;
		}
	}
	return false;
}

int64_t wi_txn_policy_max_ttl(const wi_txn_policy *p)
{
	return p ? p->max_ttl : 0;
}
