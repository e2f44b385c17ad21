/* tests/unit/test_rotation.c — the rotation schedule (core/rotation.h) and
 * the rotating CA (core/ca.h) and JWT key sets (core/jwt_keys.h), driven
 * through explicit clocks: prepare/publish before activation, activation,
 * retirement after everything signed has expired, persistence, and the
 * leftovers of a crash at any step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/ca.h"
#include "core/fsutil.h"
#include "core/jwt_keys.h"
#include "core/jwt_svid.h"
#include "core/limits.h"
#include "core/rotation.h"
#include "testutil.h"

#define TD "example.org"
#define T0 1900000000 /* 2030: far from any real certificate's dates */

typedef struct fx {
	char dir[512];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_non_null(wi_test_mkdtemp(f->dir, sizeof(f->dir), "rot"));
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

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	assert_int_equal(wi_fs_join(p, sizeof(p), dir, name), 0);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static bool exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	assert_int_equal(wi_fs_join(p, sizeof(p), dir, name), 0);
	return access(p, F_OK) == 0;
}

/* ---- the schedule ------------------------------------------------------------ */

static void test_schedule(void **state)
{
	fx *f = *state;
	wi_rotation_policy p = {.rotate_every = 100, .lead = 10, .linger = 15};
	wi_rotation *r = NULL;
	assert_int_equal(wi_rotation_open(f->dir, "keys", &p, &r), 0);
	assert_int_equal(wi_rotation_active(r, T0), -1);
	time_t act = 0;
	uint64_t seq = 99;
	assert_false(wi_rotation_prepare_due(r, T0, &act));
	assert_int_equal(wi_rotation_add(r, 0, T0, T0), 0);
	assert_int_equal(wi_rotation_active(r, T0), 0);

	/* Not before activate + R - L; then to activate at activate + R. */
	assert_false(wi_rotation_prepare_due(r, T0 + 89, &act));
	assert_true(wi_rotation_prepare_due(r, T0 + 90, &act));
	assert_int_equal(act, T0 + 100);
	assert_int_equal(wi_rotation_next_seq(r), 1);
	assert_int_equal(wi_rotation_add(r, 1, T0 + 90, act), 0);
	/* A successor waits: nothing more is due. */
	assert_false(wi_rotation_prepare_due(r, T0 + 95, &act));
	assert_int_equal(wi_rotation_active(r, T0 + 99), 0);
	assert_int_equal(wi_rotation_active(r, T0 + 100), 1);
	/* The predecessor lingers K after the successor activated. */
	assert_false(wi_rotation_retire_due(r, T0 + 99, &seq));
	assert_false(wi_rotation_retire_due(r, T0 + 114, &seq));
	assert_true(wi_rotation_retire_due(r, T0 + 115, &seq));
	assert_int_equal(seq, 0);

	/* The manifest is what a restart sees. */
	wi_rotation_free(r);
	assert_int_equal(wi_rotation_open(f->dir, "keys", &p, &r), 0);
	assert_int_equal(wi_rotation_count(r), 2);
	assert_int_equal(wi_rotation_slot_at(r, 1)->seq, 1);
	assert_int_equal(wi_rotation_slot_at(r, 1)->prepared, T0 + 90);
	assert_int_equal(wi_rotation_slot_at(r, 1)->activate, T0 + 100);
	assert_int_equal(wi_rotation_remove(r, 0), 0);
	assert_int_equal(wi_rotation_remove(r, 0), WI_E_NOT_FOUND);
	assert_int_equal(wi_rotation_count(r), 1);

	/* Late (the daemon was down): published now, active after the lead. */
	assert_true(wi_rotation_prepare_due(r, T0 + 1000, &act));
	assert_int_equal(act, T0 + 1010);
	wi_rotation_free(r);

	/* Never rotating. */
	wi_rotation_policy never = {.rotate_every = 0, .lead = 10, .linger = 10};
	assert_int_equal(wi_rotation_open(f->dir, "keys", &never, &r), 0);
	assert_false(wi_rotation_prepare_due(r, T0 + 100000, &act));
	wi_rotation_free(r);
}

static void test_manifest_refusals(void **state)
{
	fx *f = *state;
	wi_rotation_policy p = {.rotate_every = 100, .lead = 10, .linger = 10};
	wi_rotation *r = (wi_rotation *)0x1;
	static const char *const bad[] = {
		"not json",
		"{\"version\":2,\"slots\":[]}",
		"{\"version\":1}",
		"{\"version\":1,\"slots\":[{\"seq\":-1,\"prepared\":0,\"activate\":0}]}",
		"{\"version\":1,\"slots\":[{\"seq\":1,\"prepared\":0}]}",
		"{\"version\":1,\"slots\":[{\"seq\":1,\"prepared\":0,\"activate\":0,\"x\":1}]}",
		("{\"version\":1,\"slots\":[{\"seq\":1,\"prepared\":0,\"activate\":0},"
		 "{\"seq\":1,\"prepared\":0,\"activate\":5}]}"),
		"{\"version\":1,\"version\":1,\"slots\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(f->dir, "keys.json", bad[i]);
		assert_int_equal(wi_rotation_open(f->dir, "keys", &p, &r), WI_E_PARSE);
		assert_ptr_equal(r, (wi_rotation *)0x1);
	}
	/* More slots than the limit. */
	char big[4096] = "{\"version\":1,\"slots\":[";
	for (int i = 0; i <= WI_ROTATION_SLOTS_MAX; i++) {
		char one[96];
		snprintf(one, sizeof(one), "%s{\"seq\":%d,\"prepared\":0,\"activate\":%d}", i ? "," : "", i, i);
		strncat(big, one, sizeof(big) - strlen(big) - 1);
	}
	strncat(big, "]}", sizeof(big) - strlen(big) - 1);
	write_text(f->dir, "keys.json", big);
	assert_int_equal(wi_rotation_open(f->dir, "keys", &p, &r), WI_E_PARSE);
	wi_rotation_policy neg = {.rotate_every = -1};
	assert_int_equal(wi_rotation_open(f->dir, "other", &neg, &r), WI_E_INVAL);
}

/* ---- the CA ---------------------------------------------------------------------- */

#define SVID_TTL 20
#define CA_R 100
#define CA_TTL 200

static STACK_OF(X509) *parse_ders(const uint8_t *der, size_t len)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	const uint8_t *p = der, *end = der + len;
	while (p < end) {
		X509 *x = d2i_X509(NULL, &p, (long)(end - p));
		assert_non_null(x);
		sk_X509_push(s, x);
	}
	return s;
}

static int bundle_count(wi_ca *ca)
{
	size_t len = 0;
	const uint8_t *der = wi_ca_bundle_der(ca, &len);
	STACK_OF(X509) *s = parse_ders(der, len);
	int n = sk_X509_num(s);
	sk_X509_pop_free(s, X509_free);
	return n;
}

/* Whether the SVID's leaf verifies against the bundle `der` at time `at`. */
static bool verifies(const wi_x509_svid *svid, const uint8_t *der, size_t len, time_t at)
{
	size_t clen = 0;
	const uint8_t *chain = wi_x509_svid_chain_der(svid, &clen);
	STACK_OF(X509) *leafs = parse_ders(chain, clen);
	STACK_OF(X509) *anchors = parse_ders(der, len);
	X509_STORE *store = X509_STORE_new();
	for (int i = 0; i < sk_X509_num(anchors); i++)
		X509_STORE_add_cert(store, sk_X509_value(anchors, i));
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_CTX_init(ctx, store, sk_X509_value(leafs, 0), NULL), 1);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
	bool ok = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(anchors, X509_free);
	sk_X509_pop_free(leafs, X509_free);
	return ok;
}

static wi_ca *open_ca_in(const char *dir, time_t now)
{
	wi_ca_options o = {.trust_domain = TD,
			   .data_dir = dir,
			   .ttl = CA_TTL,
			   .max_svid_ttl = SVID_TTL,
			   .rotate_every = CA_R};
	wi_ca *ca = NULL;
	if (wi_ca_open(&o, now, &ca) != 0)
		fail_msg("open: %s", wi_error_detail());
	return ca;
}

static wi_ca *open_ca(const fx *f, time_t now)
{
	return open_ca_in(f->dir, now);
}

static wi_x509_svid *mint(wi_ca *ca, time_t now)
{
	wi_x509_svid *s = NULL;
	if (wi_ca_mint_x509_svid(ca, "spiffe://" TD "/w", SVID_TTL, now, &s) != 0)
		fail_msg("mint: %s", wi_error_detail());
	return s;
}

static uint64_t gen_of(wi_ca *ca)
{
	wi_ca_snapshot *v = wi_ca_snapshot_get(ca);
	uint64_t g = wi_ca_snapshot_generation(v);
	wi_ca_snapshot_unref(v);
	return g;
}

static void test_ca_rotation(void **state)
{
	fx *f = *state;
	char cadir[PATH_MAX];
	assert_int_equal(wi_fs_join(cadir, sizeof(cadir), f->dir, "ca"), 0);
	wi_ca *ca = open_ca(f, T0);
	bool changed = true;
	assert_int_equal(bundle_count(ca), 1);
	uint64_t g1 = gen_of(ca);
	assert_int_equal(wi_ca_tick(ca, T0 + CA_R - SVID_TTL - 1, &changed), 0);
	assert_false(changed);

	/* Prepared one SVID lifetime before it signs: in the bundle, not signing. */
	assert_int_equal(wi_ca_tick(ca, T0 + CA_R - SVID_TTL, &changed), 0);
	assert_true(changed);
	assert_int_equal(bundle_count(ca), 2);
	assert_true(gen_of(ca) > g1);
	uint64_t g2 = gen_of(ca);
	wi_x509_svid *old = mint(ca, T0 + CA_R - 1); /* by the outgoing CA, to T0 + R + 19 */

	/* A crash now leaves a state the next open accepts as is. */
	wi_ca_free(ca);
	ca = open_ca(f, T0 + CA_R - 1);
	assert_int_equal(bundle_count(ca), 2);
	g2 = gen_of(ca); /* generations count within one process */

	/* Activation: new SVIDs chain to the new CA; the bundle is unchanged, so
	 * bundle streams are not pushed. */
	size_t blen = 0;
	uint8_t *bundle2 = NULL;
	assert_int_equal(wi_ca_tick(ca, T0 + CA_R, &changed), 0);
	assert_true(changed);
	assert_int_equal(gen_of(ca), g2);
	const uint8_t *b = wi_ca_bundle_der(ca, &blen);
	bundle2 = malloc(blen);
	memcpy(bundle2, b, blen);
	wi_x509_svid *neu = mint(ca, T0 + CA_R);
	STACK_OF(X509) *anchors = parse_ders(bundle2, blen);
	STACK_OF(X509) *nchain = NULL;
	{
		size_t clen = 0;
		const uint8_t *c = wi_x509_svid_chain_der(neu, &clen);
		nchain = parse_ders(c, clen);
	}
	/* Newest first: the new SVID was issued by anchors[0]. */
	assert_int_equal(X509_check_issued(sk_X509_value(anchors, 0), sk_X509_value(nchain, 0)), X509_V_OK);
	assert_int_not_equal(X509_check_issued(sk_X509_value(anchors, 1), sk_X509_value(nchain, 0)), X509_V_OK);
	sk_X509_pop_free(anchors, X509_free);
	sk_X509_pop_free(nchain, X509_free);
	/* Both verify against the bundle at every moment of their lives. */
	for (time_t t = T0 + CA_R; t < T0 + CA_R + SVID_TTL - 1; t += 3) {
		assert_int_equal(wi_ca_tick(ca, t, NULL), 0);
		b = wi_ca_bundle_der(ca, &blen);
		assert_true(verifies(old, b, blen, t));
		assert_true(verifies(neu, b, blen, t));
	}
	/* The outgoing CA stays published until all it signed has expired... */
	assert_int_equal(wi_ca_tick(ca, T0 + CA_R + SVID_TTL - 1, &changed), 0);
	assert_int_equal(bundle_count(ca), 2);
	assert_true(exists(cadir, "ca.key.pem"));
	/* ...then is retired, files and all. */
	assert_int_equal(wi_ca_tick(ca, T0 + CA_R + SVID_TTL, &changed), 0);
	assert_true(changed);
	assert_int_equal(bundle_count(ca), 1);
	assert_true(gen_of(ca) > g2);
	assert_false(exists(cadir, "ca.key.pem"));
	assert_false(exists(cadir, "ca.crt.pem"));
	assert_true(exists(cadir, "ca.1.key.pem"));
	b = wi_ca_bundle_der(ca, &blen);
	assert_true(verifies(neu, b, blen, T0 + CA_R + SVID_TTL - 1));
	assert_int_equal(wi_ca_rotation_events(ca), 2); /* since the reopen: activated, retired */
	wi_x509_svid_unref(old);
	wi_x509_svid_unref(neu);
	free(bundle2);
	wi_ca_free(ca);

	/* Orphans of a crash between a key write and the manifest go away. */
	write_text(cadir, "ca.7.key.pem", "junk");
	write_text(cadir, "ca.7.crt.pem", "junk");
	ca = open_ca(f, T0 + CA_R + SVID_TTL + 1);
	assert_false(exists(cadir, "ca.7.key.pem"));
	assert_false(exists(cadir, "ca.7.crt.pem"));
	assert_int_equal(bundle_count(ca), 1);
	wi_ca_free(ca);
}

/* Rotation's configuration bounds: ttl >= R + 2 * max SVID ttl. */
static void test_ca_rotation_options(void **state)
{
	fx *f = *state;
	wi_ca_options o = {.trust_domain = TD, .data_dir = f->dir, .ttl = CA_TTL, .max_svid_ttl = SVID_TTL};
	wi_ca *ca = NULL;
	o.rotate_every = CA_TTL - 2 * SVID_TTL + 1;
	assert_int_equal(wi_ca_open(&o, T0, &ca), WI_E_CONFIG);
	o.rotate_every = WI_ROTATION_PERIOD_MIN - 1;
	assert_int_equal(wi_ca_open(&o, T0, &ca), WI_E_CONFIG);
	assert_null(ca);
	o.rotate_every = CA_TTL - 2 * SVID_TTL;
	assert_int_equal(wi_ca_open(&o, T0, &ca), 0);
	wi_ca_free(ca);
}

/* Down through a whole rotation period: the successor is published at once
 * and signs one SVID lifetime later; an almost expired CA is replaced at once. */
static void test_ca_late_start(void **state)
{
	fx *f = *state;
	wi_ca_free(open_ca(f, T0));
	time_t late = T0 + CA_R + 30;
	wi_ca *ca = open_ca(f, late);
	assert_int_equal(bundle_count(ca), 2);
	wi_ca_snapshot *v = wi_ca_snapshot_get(ca);
	assert_int_equal(wi_ca_snapshot_next_activation(v), late + SVID_TTL);
	wi_ca_snapshot_unref(v);
	wi_ca_free(ca);

	/* Reopened (never rotated) when the active CA expires within 2 * SVID
	 * TTL: a successor that signs at once, the old CA still published. */
	char other[PATH_MAX];
	assert_int_equal(wi_fs_join(other, sizeof(other), f->dir, "other"), 0);
	assert_int_equal(wi_fs_mkdir_private(other), 0);
	wi_ca_free(open_ca_in(other, T0));
	time_t later = T0 + CA_TTL - 2 * SVID_TTL + 1;
	ca = open_ca_in(other, later);
	assert_int_equal(wi_ca_not_after(ca), later + CA_TTL);
	assert_int_equal(bundle_count(ca), 2);
	wi_x509_svid *s = mint(ca, later);
	size_t blen = 0;
	const uint8_t *b = wi_ca_bundle_der(ca, &blen);
	assert_true(verifies(s, b, blen, later));
	wi_x509_svid_unref(s);
	wi_ca_free(ca);
}

/* ---- JWT keys ---------------------------------------------------------------------- */

#define JWT_TTL 10
#define JWT_R 100

static wi_jwt_keys *open_jwt(const fx *f, time_t now)
{
	wi_jwt_keys_options o = {.dir = f->dir, .type = WI_JWT_KEY_EC_P256, .rotate_every = JWT_R, .token_ttl = JWT_TTL};
	wi_jwt_keys *k = NULL;
	if (wi_jwt_keys_open_rotating(&o, now, &k) != 0)
		fail_msg("open: %s", wi_error_detail());
	return k;
}

static char *sign_at(wi_jwt_keys *k, time_t now)
{
	const char *aud[] = {"svc"};
	char *t = NULL;
	time_t exp = 0;
	wi_jwt_keyset *ks = wi_jwt_keys_get(k);
	assert_int_equal(wi_jwt_svid_mint(wi_jwt_keyset_signer(ks), wi_jwt_keyset_kid(ks), "spiffe://" TD "/w", aud,
					  1, now, JWT_TTL, &t, &exp),
			 0);
	wi_jwt_keyset_unref(ks);
	return t;
}

static bool valid_at(wi_jwt_keys *k, const char *t, time_t now)
{
	char *id = NULL;
	json_t *c = NULL;
	wi_jwt_keyset *ks = wi_jwt_keys_get(k);
	int rc = wi_jwt_svid_validate(t, strlen(t), wi_jwt_keyset_jwks(ks), TD, "svc", now, &id, &c);
	wi_jwt_keyset_unref(ks);
	free(id);
	json_decref(c);
	return rc == 0;
}

static void test_jwt_rotation(void **state)
{
	fx *f = *state;
	char jdir[PATH_MAX];
	assert_int_equal(wi_fs_join(jdir, sizeof(jdir), f->dir, "jwt"), 0);
	wi_jwt_keys *k = open_jwt(f, T0);
	char *kid0 = strdup(wi_jwt_keys_kid(k));
	wi_jwt_keyset *ks0 = wi_jwt_keys_get(k); /* a reader holding the old snapshot */
	bool changed = true;
	assert_int_equal(wi_jwt_keys_tick(k, T0 + JWT_R - JWT_TTL - 1, &changed), 0);
	assert_false(changed);
	assert_int_equal(wi_jwt_keys_tick(k, T0 + JWT_R - JWT_TTL, &changed), 0);
	assert_true(changed);
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 2);
	assert_string_equal(wi_jwt_keys_kid(k), kid0); /* published, not yet signing */
	char *t_old = sign_at(k, T0 + JWT_R - 1);

	/* Restart mid-rotation: the same two keys, the same schedule. */
	wi_jwt_keys_free(k);
	k = open_jwt(f, T0 + JWT_R - 1);
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 2);
	assert_string_equal(wi_jwt_keys_kid(k), kid0);

	assert_int_equal(wi_jwt_keys_tick(k, T0 + JWT_R, &changed), 0);
	assert_true(changed);
	assert_string_not_equal(wi_jwt_keys_kid(k), kid0);
	char *t_new = sign_at(k, T0 + JWT_R);
	for (time_t t = T0 + JWT_R; t < T0 + JWT_R + JWT_TTL; t++) {
		assert_int_equal(wi_jwt_keys_tick(k, t, NULL), 0);
		assert_true(valid_at(k, t_old, t));
		assert_true(valid_at(k, t_new, t));
	}
	/* The old key lingers through the validation leeway, then goes. */
	time_t gone = T0 + JWT_R + JWT_TTL + WI_JWT_LEEWAY_SECONDS;
	assert_int_equal(wi_jwt_keys_tick(k, gone - 1, &changed), 0);
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 2);
	assert_int_equal(wi_jwt_keys_tick(k, gone, &changed), 0);
	assert_true(changed);
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 1);
	assert_false(exists(jdir, "signing.key.pem"));
	assert_true(exists(jdir, "signing.1.key.pem"));
	assert_false(valid_at(k, t_old, gone - 31)); /* its key is gone from the set */
	/* The old snapshot is still whole for whoever holds it. */
	assert_string_equal(wi_jwt_keyset_kid(ks0), kid0);
	assert_int_equal(wi_jwks_count(wi_jwt_keyset_jwks(ks0)), 1);
	wi_jwt_keyset_unref(ks0);

	/* The next rotation follows the schedule: the successor of the active
	 * key is published lead before its activation. */
	time_t next = T0 + JWT_R + JWT_R;
	assert_int_equal(wi_jwt_keys_tick(k, next - JWT_TTL, &changed), 0);
	assert_true(changed);
	assert_int_equal(wi_jwks_count(wi_jwt_keys_jwks(k)), 2);
	wi_jwt_keyset *ks = wi_jwt_keys_get(k);
	assert_int_equal(wi_jwt_keyset_next_activation(ks), next);
	wi_jwt_keyset_unref(ks);
	wi_jwt_keys_free(k);

	/* An orphan key file (crash before the manifest) is removed at open. */
	write_text(jdir, "signing.9.key.pem", "junk");
	k = open_jwt(f, next - JWT_TTL + 1);
	assert_false(exists(jdir, "signing.9.key.pem"));
	wi_jwt_keys_free(k);
	free(kid0);
	free(t_old);
	free(t_new);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schedule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_rotation_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_late_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jwt_rotation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
