/* tests/unit/test_entry.c — registration entries as data (core/entry.h) and
 * in the state store (core/store.h): the shared parser and its refusals, ids,
 * canonical forms, add/list/get/delete, duplicates, all-or-nothing batches,
 * config sync, reopen, and migration of a schema-1 file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/entry.h"
#include "core/fsutil.h"
#include "core/store.h"

#define TD "example.org"

static json_t *obj(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, e.text);
	return j;
}

static wi_entry *parse_ok(const char *text, wi_entry_source src)
{
	json_t *j = obj(text);
	wi_entry *e = NULL;
	wi_entry_error err = {0};
	int r = wi_entry_from_json(j, TD, src, 1700000000, &e, &err);
	json_decref(j);
	if (r != 0)
		fail_msg("parse %s: %s", text, err.message);
	return e;
}

static void parse_bad(const char *text, const char *key, const char *msg)
{
	json_t *j = obj(text);
	wi_entry *e = NULL;
	wi_entry_error err = {0};
	assert_int_equal(wi_entry_from_json(j, TD, WI_ENTRY_SOURCE_API, 0, &e, &err), WI_E_CONFIG);
	json_decref(j);
	assert_null(e);
	if (strcmp(err.key, key) != 0 || !strstr(err.message, msg))
		fail_msg("%s: got key %s message \"%s\", want key %s and \"%s\"", text, err.key, err.message, key, msg);
}

static void test_parse(void **state)
{
	(void)state;
	wi_entry *a = parse_ok("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:@daemon\","
			       " \"unix:path:/bin/x\"], \"hint\": \"h\", \"x509_svid_ttl\": \"30m\","
			       " \"txn\": {\"allowed_scopes\": [\"s1\"]}}",
			       WI_ENTRY_SOURCE_CONFIG);
	char uidsel[64];
	snprintf(uidsel, sizeof(uidsel), "unix:uid:%u", (unsigned)geteuid());
	/* @daemon is expanded; selectors are sorted. */
	char want[256];
	snprintf(want, sizeof(want), "[\"unix:path:/bin/x\",\"%s\"]", uidsel);
	assert_string_equal(wi_entry_selectors_key(a), want);
	assert_true(wi_entry_id_valid(wi_entry_id(a)));
	assert_int_equal(wi_entry_source_of(a), WI_ENTRY_SOURCE_CONFIG);
	json_t *j = wi_entry_to_json(a);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "id")), wi_entry_id(a));
	assert_string_equal(json_string_value(json_object_get(j, "source")), "config");
	assert_int_equal(json_integer_value(json_object_get(j, "x509_svid_ttl")), 1800);
	assert_string_equal(json_string_value(json_object_get(j, "hint")), "h");
	assert_non_null(json_object_get(json_object_get(j, "txn"), "allowed_scopes"));
	assert_int_equal(json_integer_value(json_object_get(j, "created")), 1700000000);
	json_decref(j);

	/* The config id depends on the SPIFFE ID and the selector set only. */
	char text[512];
	snprintf(text, sizeof(text),
		 "{\"selectors\": [\"unix:path:/bin/x\", \"%s\"], \"spiffe_id\": \"spiffe://example.org/a\"}", uidsel);
	wi_entry *b = parse_ok(text, WI_ENTRY_SOURCE_CONFIG);
	assert_string_equal(wi_entry_id(a), wi_entry_id(b));
	assert_string_not_equal(wi_entry_body(a), wi_entry_body(b));
	wi_entry *c = parse_ok("{\"spiffe_id\": \"spiffe://example.org/c\", \"selectors\": [\"unix:uid:1\"]}",
			       WI_ENTRY_SOURCE_CONFIG);
	assert_string_not_equal(wi_entry_id(a), wi_entry_id(c));
	/* API ids are random. */
	wi_entry *r1 = parse_ok(text, WI_ENTRY_SOURCE_API), *r2 = parse_ok(text, WI_ENTRY_SOURCE_API);
	assert_true(wi_entry_id_valid(wi_entry_id(r1)));
	assert_string_not_equal(wi_entry_id(r1), wi_entry_id(r2));
	assert_string_not_equal(wi_entry_id(r1), wi_entry_id(a));

	/* What is stored parses back to the same entry. */
	wi_entry *back = NULL;
	assert_int_equal(wi_entry_from_stored(wi_entry_id(a), wi_entry_body(a), WI_ENTRY_SOURCE_CONFIG, 5, TD, &back), 0);
	assert_string_equal(wi_entry_id(back), wi_entry_id(a));
	assert_string_equal(wi_entry_body(back), wi_entry_body(a));
	assert_int_equal(wi_entry_created(back), 5);
	wi_entry_free(back);
	/* ... and is re-validated: another trust domain refuses it. */
	back = NULL;
	assert_int_equal(wi_entry_from_stored(wi_entry_id(a), wi_entry_body(a), WI_ENTRY_SOURCE_CONFIG, 5,
					      "other.org", &back),
			 WI_E_CONFIG);
	assert_null(back);
	assert_int_equal(wi_entry_from_stored("xyz", wi_entry_body(a), WI_ENTRY_SOURCE_CONFIG, 5, TD, &back),
			 WI_E_PARSE);
	assert_int_equal(wi_entry_from_stored(wi_entry_id(a), "{", WI_ENTRY_SOURCE_CONFIG, 5, TD, &back), WI_E_PARSE);

	/* The registry gets the same entry. */
	wi_registry *reg = NULL;
	assert_int_equal(wi_registry_new(TD, &reg), 0);
	assert_int_equal(wi_entry_add_to_registry(a, reg), 0);
	assert_int_equal(wi_registry_count(reg), 1);
	assert_non_null(wi_registry_txn_policy_for(reg, "spiffe://example.org/a"));
	wi_registry_unref(reg);

	assert_null(wi_entry_free(NULL));
	wi_entry_free(a);
	wi_entry_free(b);
	wi_entry_free(c);
	wi_entry_free(r1);
	wi_entry_free(r2);
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_bad("[1]", "entries", "must be an object");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:1\"], \"extra\": 1}", "extra",
		  "unknown key \"extra\"");
	parse_bad("{\"selectors\": [\"unix:uid:1\"]}", "spiffe_id", "missing required key \"spiffe_id\"");
	parse_bad("{\"spiffe_id\": 5, \"selectors\": [\"unix:uid:1\"]}", "spiffe_id", "must be a string");
	parse_bad("{\"spiffe_id\": \"spiffe://other.org/a\", \"selectors\": [\"unix:uid:1\"]}", "spiffe_id",
		  "trust domain");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": []}", "selectors", "non-empty array");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [1]}", "selectors",
		  "selectors[0] must be a string");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"k8s:ns:x\"]}", "selectors",
		  "selectors[0]");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:path:@daemon\"]}", "selectors",
		  "@daemon");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:1\"], \"x509_svid_ttl\": 1}",
		  "x509_svid_ttl", "between");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:1\"], \"hint\": false}", "hint",
		  "must be a string");
	parse_bad("{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [\"unix:uid:1\"], \"txn\": 5}", "txn",
		  "txn");
	/* More selectors than an entry may hold: refused before any is parsed. */
	char big[8192] = "{\"spiffe_id\": \"spiffe://example.org/a\", \"selectors\": [";
	for (int i = 0; i < 65; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s\"unix:gid:%d\"", i ? "," : "", i);
	strcat(big, "]}");
	parse_bad(big, "selectors", "more than 64");
}

/* --- the store ---------------------------------------------------------------- */

typedef struct fx {
	char dir[PATH_MAX];
	char db[PATH_MAX];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "entry"));
	assert_int_equal(wi_fs_join(f->db, sizeof(f->db), f->dir, "state.db"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	wi_test_rmtree(f->dir);
	free(f);
	return 0;
}

static wi_store *open_ok(const fx *f)
{
	wi_store *s = NULL;
	int r = wi_store_open(f->dir, &s);
	if (r != 0)
		fail_msg("wi_store_open: %d %s", r, wi_error_detail());
	return s;
}

#define LIST_MAX 16
typedef struct list {
	size_t n;
	char id[LIST_MAX][WI_ENTRY_ID_LEN + 1];
	char spiffe_id[LIST_MAX][128];
	wi_entry_source source[LIST_MAX];
	int64_t created[LIST_MAX];
} list;

static int collect(const wi_store_entry_row *row, void *ud)
{
	list *l = ud;
	assert_true(l->n < LIST_MAX);
	wi_entry *e = NULL;
	if (wi_entry_from_stored(row->id, row->body, row->source, row->created, TD, &e) != 0)
		fail_msg("stored row does not parse: %s", wi_error_detail());
	snprintf(l->id[l->n], sizeof(l->id[0]), "%s", wi_entry_id(e));
	snprintf(l->spiffe_id[l->n], sizeof(l->spiffe_id[0]), "%s", wi_entry_spiffe_id(e));
	l->source[l->n] = row->source;
	l->created[l->n] = row->created;
	l->n++;
	wi_entry_free(e);
	return 0;
}

static list list_all(wi_store *s)
{
	list l = {0};
	assert_int_equal(wi_store_each_entry(s, NULL, collect, &l), 0);
	return l;
}

static wi_entry *mk(const char *path, const char *sel, wi_entry_source src)
{
	char text[256];
	snprintf(text, sizeof(text), "{\"spiffe_id\": \"spiffe://example.org/%s\", \"selectors\": [\"%s\"]}", path, sel);
	if (src == WI_ENTRY_SOURCE_API)
		return parse_ok(text, src);
	/* As the config gives them: no creation time. */
	json_t *j = obj(text);
	wi_entry *e = NULL;
	wi_entry_error err = {0};
	if (wi_entry_from_json(j, TD, src, 0, &e, &err) != 0)
		fail_msg("parse %s: %s", text, err.message);
	json_decref(j);
	return e;
}

static void test_store_crud(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	wi_entry *a = mk("a", "unix:uid:1", WI_ENTRY_SOURCE_API);
	wi_entry *b = mk("b", "unix:uid:2", WI_ENTRY_SOURCE_API);
	assert_int_equal(wi_store_add_entries(s, &a, 1), 0);
	assert_int_equal(wi_store_add_entries(s, &b, 1), 0);
	list l = list_all(s);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], wi_entry_id(a)); /* creation order */
	assert_string_equal(l.spiffe_id[1], "spiffe://example.org/b");
	assert_int_equal(l.source[0], WI_ENTRY_SOURCE_API);

	/* get one */
	list one = {0};
	assert_int_equal(wi_store_each_entry(s, wi_entry_id(b), collect, &one), 0);
	assert_int_equal(one.n, 1);
	assert_string_equal(one.id[0], wi_entry_id(b));
	assert_int_equal(wi_store_each_entry(s, "00000000000000000000000000000000", collect, &one), WI_E_NOT_FOUND);

	/* A duplicate (same SPIFFE ID and selectors, another id) is refused. */
	wi_entry *dup = mk("a", "unix:uid:1", WI_ENTRY_SOURCE_API);
	assert_int_equal(wi_store_add_entries(s, &dup, 1), WI_E_EXISTS);
	assert_non_null(strstr(wi_error_detail(), "already exists"));
	/* A batch is all or nothing. */
	wi_entry *c = mk("c", "unix:uid:3", WI_ENTRY_SOURCE_API);
	wi_entry *batch[2] = {c, dup};
	assert_int_equal(wi_store_add_entries(s, batch, 2), WI_E_EXISTS);
	assert_int_equal(list_all(s).n, 2);
	wi_entry *c2 = mk("c", "unix:uid:3", WI_ENTRY_SOURCE_API);
	wi_entry *twice[2] = {c, c2}; /* duplicates within one batch */
	assert_int_equal(wi_store_add_entries(s, twice, 2), WI_E_EXISTS);
	assert_int_equal(list_all(s).n, 2);

	/* delete */
	assert_int_equal(wi_store_delete_entry(s, wi_entry_id(a), WI_ENTRY_SOURCE_API), 0);
	assert_int_equal(wi_store_delete_entry(s, wi_entry_id(a), WI_ENTRY_SOURCE_API), WI_E_NOT_FOUND);
	l = list_all(s);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.id[0], wi_entry_id(b));
	/* Now the pair is free again. */
	assert_int_equal(wi_store_add_entries(s, &dup, 1), 0);

	/* Reopen: all there, in order. */
	s = wi_store_close(s);
	s = open_ok(f);
	l = list_all(s);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], wi_entry_id(b));
	assert_string_equal(l.id[1], wi_entry_id(dup));
	assert_int_equal(l.created[1], 1700000000);

	assert_int_equal(wi_store_add_entries(NULL, &a, 1), WI_E_INVAL);
	assert_int_equal(wi_store_delete_entry(s, NULL, WI_ENTRY_SOURCE_API), WI_E_INVAL);
	wi_store_close(s);
	wi_entry_free(a);
	wi_entry_free(b);
	wi_entry_free(c);
	wi_entry_free(c2);
	wi_entry_free(dup);
}

static void test_store_sync(void **state)
{
	fx *f = *state;
	wi_store *s = open_ok(f);
	wi_entry *api = mk("api", "unix:uid:9", WI_ENTRY_SOURCE_API);
	wi_entry *taken = mk("t", "unix:uid:8", WI_ENTRY_SOURCE_API);
	wi_entry *both[2] = {api, taken};
	assert_int_equal(wi_store_add_entries(s, both, 2), 0);

	wi_entry *c1 = mk("c1", "unix:uid:1", WI_ENTRY_SOURCE_CONFIG);
	wi_entry *c2 = mk("c2", "unix:uid:2", WI_ENTRY_SOURCE_CONFIG);
	wi_entry *ct = mk("t", "unix:uid:8", WI_ENTRY_SOURCE_CONFIG); /* the file now lists the API one */
	wi_entry *cfg[3] = {c2, c1, ct};
	size_t removed = 99;
	assert_int_equal(wi_store_sync_config_entries(s, cfg, 3, &removed), 0);
	assert_int_equal(removed, 1); /* the API row replaced by the config's */
	list l = list_all(s);
	assert_int_equal(l.n, 4);
	/* config entries first, in file order; then API entries */
	assert_string_equal(l.spiffe_id[0], "spiffe://example.org/c2");
	assert_string_equal(l.spiffe_id[1], "spiffe://example.org/c1");
	assert_string_equal(l.spiffe_id[2], "spiffe://example.org/t");
	assert_int_equal(l.source[2], WI_ENTRY_SOURCE_CONFIG);
	assert_string_equal(l.id[3], wi_entry_id(api));
	/* Config entries are dated when first seeded, and keep that date. */
	int64_t c2_created = l.created[0];
	assert_true(c2_created >= (int64_t)time(NULL) - 60 && c2_created <= (int64_t)time(NULL));

	/* A config entry cannot be deleted as an API one. */
	assert_int_equal(wi_store_delete_entry(s, wi_entry_id(c1), WI_ENTRY_SOURCE_API), WI_E_PERMISSION);
	assert_non_null(strstr(wi_error_detail(), "managed by the config file"));

	/* Reload with c1 gone: c1 deleted, c2 kept, API entry kept. */
	wi_entry *cfg2[2] = {ct, c2};
	assert_int_equal(wi_store_sync_config_entries(s, cfg2, 2, &removed), 0);
	assert_int_equal(removed, 1);
	l = list_all(s);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.spiffe_id[0], "spiffe://example.org/t");
	assert_string_equal(l.spiffe_id[1], "spiffe://example.org/c2");
	assert_string_equal(l.id[2], wi_entry_id(api));
	assert_int_equal(l.created[1], c2_created);
	/* Syncing nothing removes the config entries only. */
	assert_int_equal(wi_store_sync_config_entries(s, NULL, 0, &removed), 0);
	assert_int_equal(removed, 2);
	l = list_all(s);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.id[0], wi_entry_id(api));
	/* API entries are not accepted as config ones. */
	assert_int_equal(wi_store_sync_config_entries(s, &api, 1, NULL), WI_E_INVAL);
	wi_store_close(s);
	wi_entry_free(api);
	wi_entry_free(taken);
	wi_entry_free(c1);
	wi_entry_free(c2);
	wi_entry_free(ct);
}

static void raw_exec(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_close(h);
}

static int count_rev(wi_revocation_kind kind, const char *value, time_t until, void *ud)
{
	(void)kind;
	(void)until;
	assert_string_equal(value, "txn-kept");
	(*(int *)ud)++;
	return 0;
}

/* A state.db written by the schema-1 wimsed (revocations only) opens,
 * keeps its revocations and gains the entries table. */
static void test_migration(void **state)
{
	fx *f = *state;
	/* Schema 1 exactly as the shipped migration created it. */
	raw_exec(f->db, WI_TEST_SCHEMA_V1_REVOCATIONS
			"PRAGMA application_id = 2003398003;"
			"PRAGMA user_version = 1;"
			"INSERT INTO revocations VALUES (1, 'txn-kept', 4000000000);");
	assert_int_equal(chmod(f->db, 0600), 0);
	wi_store *s = open_ok(f);
	int n = 0;
	assert_int_equal(wi_store_each_revocation(s, 1, count_rev, &n), 0);
	assert_int_equal(n, 1);
	wi_entry *a = mk("a", "unix:uid:1", WI_ENTRY_SOURCE_API);
	assert_int_equal(wi_store_add_entries(s, &a, 1), 0);
	s = wi_store_close(s);

	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3); /* through v2 to the current schema */
	sqlite3_finalize(st);
	sqlite3_close(h);

	s = open_ok(f);
	n = 0;
	assert_int_equal(wi_store_each_revocation(s, 1, count_rev, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list_all(s).n, 1);
	wi_store_close(s);
	wi_entry_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test_setup_teardown(test_store_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
