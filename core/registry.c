/* core/registry.c — entries, ID templates and matching. */
#include "core/registry.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/spiffe_id.h"

/* A template is a list of parts: literal text or a placeholder kind. */
typedef struct part {
	bool placeholder;
	wi_selector_kind kind;
	char *text; /* literal */
} part;

typedef struct entry {
	char *spiffe_id; /* the literal ID, or the template text */
	part *parts;     /* NULL for a literal ID */
	size_t n_parts;
	wi_selector_set *selectors;
	char *hint;
	int64_t x509_ttl;
	wi_txn_policy *txn;
} entry;

struct wi_registry {
	atomic_int ref;
	char *td;
	entry *entries;
	size_t n, alloc;
	unsigned kinds_used; /* bit per wi_selector_kind */
};

struct wi_identities {
	wi_registry *reg;
	size_t n;
	wi_identity *items;
	char **ids; /* owned strings behind items[i].spiffe_id */
	bool truncated; /* more entries matched than WI_IDENTITIES_PER_CALLER_MAX */
};

int wi_registry_new(const char *td, wi_registry **ret)
{
	WI_TRY(wi_trust_domain_validate(td, strlen(td)));
	wi_registry *r = calloc(1, sizeof(*r));
	WI_CHECK_ALLOC(r);
	r->td = strdup(td);
	if (!r->td) {
		free(r);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	atomic_init(&r->ref, 1);
	*ret = r;
	return 0;
}

wi_registry *wi_registry_ref(wi_registry *r)
{
	if (r)
		atomic_fetch_add_explicit(&r->ref, 1, memory_order_relaxed);
	return r;
}

static void entry_clear(entry *e)
{
	free(e->spiffe_id);
	for (size_t i = 0; i < e->n_parts; i++)
		free(e->parts[i].text);
	free(e->parts);
	wi_selector_set_unref(e->selectors);
	free(e->hint);
	wi_txn_policy_free(e->txn);
}

wi_registry *wi_registry_unref(wi_registry *r)
{
	if (!r)
		return NULL;
	if (atomic_fetch_sub_explicit(&r->ref, 1, memory_order_acq_rel) != 1)
		return NULL;
	for (size_t i = 0; i < r->n; i++)
		entry_clear(&r->entries[i]);
	free(r->entries);
	free(r->td);
	free(r);
	return NULL;
}

static int parts_push(entry *e, size_t *alloc, bool placeholder, wi_selector_kind kind,
		      const char *text, size_t len)
{
	if (e->n_parts == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 4;
		part *np = realloc(e->parts, na * sizeof(*np));
		WI_CHECK_ALLOC(np);
		e->parts = np;
		*alloc = na;
	}
	part *p = &e->parts[e->n_parts];
	memset(p, 0, sizeof(*p));
	p->placeholder = placeholder;
	p->kind = kind;
	if (!placeholder) {
		p->text = strndup(text, len);
		WI_CHECK_ALLOC(p->text);
	}
	e->n_parts++;
	return 0;
}

/* Splits a template into parts and checks it renders to a valid ID when every
 * placeholder holds a sample value. */
static int parse_template(entry *e, const char *td)
{
	const char *s = e->spiffe_id;
	size_t len = strlen(s);
	size_t alloc = 0;
	char sample[WI_SPIFFE_ID_MAX + 1];
	size_t slen = 0;
	const char *lit = s;
	const char *p = s;
	size_t prefix = strlen("spiffe://") + strlen(td);

	while (*p) {
		if (*p == '}')
			WI_FAIL(WI_E_SPIFFE_ID, "template has '}' without '{'");
		if (*p != '{') {
			p++;
			continue;
		}
		WI_CHECK((size_t)(p - s) > prefix, WI_E_SPIFFE_ID,
			 "template placeholders are allowed only in the path");
		const char *close = strchr(p, '}');
		WI_CHECK(close, WI_E_SPIFFE_ID, "template has '{' without '}'");
		WI_CHECK(memchr(p + 1, '{', (size_t)(close - p - 1)) == NULL, WI_E_SPIFFE_ID,
			 "template placeholders cannot nest");
		wi_selector_kind kind;
		if (wi_selector_kind_from_name(p + 1, (size_t)(close - p - 1), &kind) < 0)
			WI_FAIL(WI_E_SELECTOR, "template placeholder {%.*s} is not a selector kind",
				(int)(close - p - 1 > 64 ? 64 : close - p - 1), p + 1);
		WI_CHECK(!wi_selector_kind_is_multi(kind), WI_E_SELECTOR,
			 "template placeholder {%s} may have several values", wi_selector_kind_name(kind));
		WI_TRY(parts_push(e, &alloc, false, 0, lit, (size_t)(p - lit)));
		WI_TRY(parts_push(e, &alloc, true, kind, NULL, 0));
		WI_CHECK(slen + (size_t)(p - lit) + 1 <= WI_SPIFFE_ID_MAX, WI_E_SPIFFE_ID, "template too long");
		memcpy(sample + slen, lit, (size_t)(p - lit));
		slen += (size_t)(p - lit);
		sample[slen++] = 'x';
		p = close + 1;
		lit = p;
	}
	if (e->n_parts == 0)
		return 0; /* a literal ID */
	WI_TRY(parts_push(e, &alloc, false, 0, lit, (size_t)(s + len - lit)));
	WI_CHECK(slen + (size_t)(s + len - lit) <= WI_SPIFFE_ID_MAX, WI_E_SPIFFE_ID, "template too long");
	memcpy(sample + slen, lit, (size_t)(s + len - lit));
	slen += (size_t)(s + len - lit);
	return wi_spiffe_id_validate(sample, slen, true);
}

int wi_registry_add(wi_registry *r, const char *spiffe_id, wi_selector_set *selectors, const char *hint,
		    int64_t x509_ttl)
{
	WI_CHECK(spiffe_id, WI_E_SPIFFE_ID, "entry has no SPIFFE ID");
	WI_CHECK(selectors && wi_selector_set_count(selectors) > 0, WI_E_SELECTOR,
		 "entry must have at least one selector");
	WI_CHECK(wi_selector_set_count(selectors) <= WI_SELECTORS_PER_ENTRY_MAX, WI_E_SELECTOR,
		 "entry has more than %d selectors", WI_SELECTORS_PER_ENTRY_MAX);
	WI_CHECK(!hint || strlen(hint) <= WI_HINT_MAX, WI_E_INVAL, "hint longer than %d bytes", WI_HINT_MAX);
	WI_CHECK(x509_ttl >= 0, WI_E_INVAL, "negative TTL");
	WI_CHECK(r->n < WI_ENTRIES_MAX, WI_E_TOO_BIG, "more than %d entries", WI_ENTRIES_MAX);

	size_t idlen = strlen(spiffe_id);
	WI_CHECK(idlen <= WI_SPIFFE_ID_MAX, WI_E_SPIFFE_ID, "ID longer than %d bytes", WI_SPIFFE_ID_MAX);
	/* The trust domain is checked on the text before the first placeholder. */
	size_t tdl = strlen(r->td);
	WI_CHECK(idlen > 9 + tdl && strncmp(spiffe_id, "spiffe://", 9) == 0 &&
			 strncmp(spiffe_id + 9, r->td, tdl) == 0 && spiffe_id[9 + tdl] == '/',
		 WI_E_SPIFFE_ID, "ID must be in trust domain %s and have a path", r->td);

	if (r->n == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 8;
		entry *ne = realloc(r->entries, na * sizeof(*ne));
		WI_CHECK_ALLOC(ne);
		r->entries = ne;
		r->alloc = na;
	}
	entry e = {0};
	e.spiffe_id = strdup(spiffe_id);
	e.hint = strdup(hint ? hint : "");
	e.x509_ttl = x509_ttl;
	if (!e.spiffe_id || !e.hint) {
		entry_clear(&e);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	int rc = strchr(spiffe_id, '{') || strchr(spiffe_id, '}') ? parse_template(&e, r->td)
								   : wi_spiffe_id_validate(spiffe_id, idlen, true);
	if (rc < 0) {
		entry_clear(&e);
		return rc;
	}
	e.selectors = wi_selector_set_ref(selectors);
	for (size_t i = 0; i < wi_selector_set_count(selectors); i++) {
		wi_selector_kind k;
		const char *v;
		if (wi_selector_parse(wi_selector_set_at(selectors, i), &k, &v) == 0)
			r->kinds_used |= 1u << k;
	}
	for (size_t i = 0; i < e.n_parts; i++)
		if (e.parts[i].placeholder)
			r->kinds_used |= 1u << e.parts[i].kind;
	r->entries[r->n++] = e;
	return 0;
}

int wi_registry_attach_txn_policy(wi_registry *r, wi_txn_policy *p)
{
	if (r->n == 0) {
		wi_txn_policy_free(p);
		WI_FAIL(WI_E_INVAL, "no entry to attach a policy to");
	}
	wi_txn_policy_free(r->entries[r->n - 1].txn);
	r->entries[r->n - 1].txn = p;
	return 0;
}

const wi_txn_policy *wi_registry_txn_policy_for(const wi_registry *r, const char *spiffe_id)
{
	for (size_t i = 0; r && i < r->n; i++)
		if (!r->entries[i].parts && r->entries[i].txn && strcmp(r->entries[i].spiffe_id, spiffe_id) == 0)
			return r->entries[i].txn;
	return NULL;
}

size_t wi_registry_count(const wi_registry *r)
{
	return r->n;
}

const char *wi_registry_trust_domain(const wi_registry *r)
{
	return r->td;
}

bool wi_registry_uses_kind(const wi_registry *r, wi_selector_kind kind)
{
	return r && (r->kinds_used & (1u << kind));
}

static bool value_is_path_safe(const char *v)
{
	if (!*v)
		return false;
	for (; *v; v++) {
		char c = *v;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Renders a template for one caller; 1 when it does not apply, 0 on success. */
static int render(const entry *e, const wi_selector_set *attested, char **ret)
{
	char buf[WI_SPIFFE_ID_MAX + 1];
	size_t len = 0;
	for (size_t i = 0; i < e->n_parts; i++) {
		const char *piece;
		if (e->parts[i].placeholder) {
			size_t count = 0;
			piece = wi_selector_set_value(attested, e->parts[i].kind, &count);
			if (!piece || count != 1 || !value_is_path_safe(piece))
				return 1;
		} else {
			piece = e->parts[i].text;
		}
		size_t pl = strlen(piece);
		if (pl > WI_SPIFFE_ID_MAX - len)
			return 1;
		memcpy(buf + len, piece, pl);
		len += pl;
	}
	buf[len] = '\0';
	if (wi_spiffe_id_validate(buf, len, true) < 0)
		return 1;
	*ret = strdup(buf);
	WI_CHECK_ALLOC(*ret);
	return 0;
}

int wi_registry_match(wi_registry *r, const wi_selector_set *attested, wi_identities **ret)
{
	wi_identities *l = calloc(1, sizeof(*l));
	WI_CHECK_ALLOC(l);
	l->reg = wi_registry_ref(r);
	size_t alloc = 0;
	for (size_t i = 0; i < r->n && l->n < WI_IDENTITIES_PER_CALLER_MAX; i++) {
		const entry *e = &r->entries[i];
		if (!wi_selector_set_is_subset(e->selectors, attested))
			continue;
		char *id = NULL;
		if (e->parts) {
			int rc = render(e, attested, &id);
			if (rc < 0) {
				wi_identities_free(l);
				return rc;
			}
			if (rc > 0)
				continue;
		} else {
			id = strdup(e->spiffe_id);
			if (!id) {
				wi_identities_free(l);
				WI_FAIL(WI_E_NOMEM, "allocation");
			}
		}
		bool dup = false;
		for (size_t j = 0; j < l->n && !dup; j++)
			dup = strcmp(l->items[j].spiffe_id, id) == 0 ||
			      (e->hint[0] && strcmp(l->items[j].hint, e->hint) == 0);
		if (dup) {
			free(id);
			continue;
		}
		if (l->n == alloc) {
			size_t na = alloc ? alloc * 2 : 4;
			wi_identity *ni = realloc(l->items, na * sizeof(*ni));
			char **nids = ni ? realloc(l->ids, na * sizeof(*nids)) : NULL;
			if (ni)
				l->items = ni;
			if (!ni || !nids) {
				free(id);
				wi_identities_free(l);
				WI_FAIL(WI_E_NOMEM, "allocation");
			}
			l->ids = nids;
			alloc = na;
		}
		l->ids[l->n] = id;
		l->items[l->n] = (wi_identity){
			.spiffe_id = id, .hint = e->hint, .x509_ttl = e->x509_ttl, .entry_index = (uint32_t)i,
			.txn = e->txn};
		l->n++;
	}
	/* The cap keeps every response far below the 4 MiB gRPC default
	 * (256 SVIDs of at most ~12 KiB each); a cut is reported
	 * (wi_identities_truncated) for the server to log, never silent. */
	for (size_t i = 0; i < r->n && l->n == WI_IDENTITIES_PER_CALLER_MAX && !l->truncated; i++)
		l->truncated = i > l->items[l->n - 1].entry_index &&
			       wi_selector_set_is_subset(r->entries[i].selectors, attested);
	*ret = l;
	return 0;
}

bool wi_identities_truncated(const wi_identities *l)
{
	return l && l->truncated;
}

size_t wi_identities_count(const wi_identities *l)
{
	return l ? l->n : 0;
}

const wi_identity *wi_identities_at(const wi_identities *l, size_t i)
{
	return l && i < l->n ? &l->items[i] : NULL;
}

const wi_identity *wi_identities_find(const wi_identities *l, const char *spiffe_id)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (strcmp(l->items[i].spiffe_id, spiffe_id) == 0)
			return &l->items[i];
	return NULL;
}

bool wi_identities_equal(const wi_identities *a, const wi_identities *b)
{
	if (wi_identities_count(a) != wi_identities_count(b))
		return false;
	for (size_t i = 0; i < wi_identities_count(a); i++) {
		const wi_identity *x = &a->items[i], *y = &b->items[i];
		/* Stream-relevant fields only: a reload that changes nothing a
		 * workload receives pushes nothing. */
		if (strcmp(x->spiffe_id, y->spiffe_id) || strcmp(x->hint, y->hint) || x->x509_ttl != y->x509_ttl)
			return false;
	}
	return true;
}

wi_identities *wi_identities_free(wi_identities *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
	free(l->items);
	wi_registry_unref(l->reg);
	free(l);
	return NULL;
}
