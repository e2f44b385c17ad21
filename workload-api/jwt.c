/* workload-api/jwt.c — FetchJWTSVID, FetchJWTBundles and ValidateJWTSVID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/jwt_svid.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/spiffe_id.h"
#include "google/protobuf/struct.pb-c.h"
#include "workload-api/internal.h"
#include "workload.pb-c.h"

static int pack_msg(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	WI_CHECK(n <= WI_GRPC_RESPONSE_MAX, WI_E_TOO_BIG, "response of %zu bytes exceeds the limit", n);
	uint8_t *buf = malloc(n ? n : 1);
	WI_CHECK_ALLOC(buf);
	protobuf_c_message_pack(m, buf);
	*ret = buf;
	*ret_len = n;
	return 0;
}

static void refuse(wi__call *c, grpc_status_code code, const char *reason)
{
	wi_log(WI_LOG_INFO, "request_refused", "method=%s status=%d reason=\"%s\"", c->method_name, (int)code,
	       reason);
	wi__call_finish(c, code, reason);
}

/* Audiences come from the caller: bounded, non-empty, valid UTF-8 (a JSON
 * string must be). */
static const char *check_audiences(char **aud, size_t n)
{
	if (n == 0)
		return "audience must be specified";
	if (n > WI_JWT_AUDIENCES_MAX)
		return "too many audiences";
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(aud[i]);
		if (len == 0)
			return "audience must not be empty";
		if (len > WI_JWT_AUDIENCE_MAX)
			return "audience too long";
		json_t *probe = json_stringn(aud[i], len);
		if (!probe)
			return "audience is not valid UTF-8";
		json_decref(probe);
	}
	return NULL;
}

/* A token for one identity: from the cache, or signed and cached until half
 * its lifetime. */
static int token_for(wi_wl_server *s, const char *spiffe_id, const char *const *aud, size_t n_aud, time_t now,
		     char **ret)
{
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(s->jwt_keys);
	const char *kid = wi_jwt_keyset_kid(ks);
	_cleanup_(freep) char *key = NULL;
	WI_TRY(wi_jwt_cache_key(kid, spiffe_id, aud, n_aud, &key));
	if (wi_jwt_cache_get(s->jwt_cache, key, now, ret) == 0)
		return 0;
	char *token = NULL;
	time_t exp = 0;
	WI_TRY(wi_jwt_svid_mint(wi_jwt_keyset_signer(ks), kid, spiffe_id, aud, n_aud, now, s->jwt_ttl,
				&token, &exp));
	/* Re-sign at half-life, so a cached token always has at least half its
	 * lifetime left (java-spiffe and spiffe-helper refresh at half-life too). */
	if (wi_jwt_cache_put(s->jwt_cache, key, token, now + (exp - now) / 2) < 0)
		wi_log(WI_LOG_WARN, "jwt_cache", "cannot cache a token: %s", wi_error_detail());
	*ret = token;
	return 0;
}

void wi__handle_fetch_jwt_svid(wi__call *c, const uint8_t *req, size_t len)
{
	ProtobufCMessage *m = NULL;
	if (wi__call_unpack(c, &jwtsvidrequest__descriptor, req, len, &m) < 0)
		return;
	JWTSVIDRequest *in = (JWTSVIDRequest *)m;
	const char *bad = check_audiences(in->audience, in->n_audience);
	if (!bad && in->spiffe_id && *in->spiffe_id &&
	    wi_spiffe_id_validate(in->spiffe_id, strlen(in->spiffe_id), true) < 0)
		bad = "spiffe_id is not a valid SPIFFE ID";
	if (bad) {
		refuse(c, GRPC_STATUS_INVALID_ARGUMENT, bad);
		wi__request_free(m);
		return;
	}
	_cleanup_(wi_identities_freep) wi_identities *ids = NULL;
	if (wi__call_identities(c, &ids, NULL, NULL) < 0) {
		wi__request_free(m);
		return;
	}
	/* Workload API §5: one identity when asked by ID (and only one the caller
	 * holds), else all of them. */
	size_t n = wi_identities_count(ids);
	const wi_identity *only = NULL;
	if (in->spiffe_id && *in->spiffe_id) {
		only = wi_identities_find(ids, in->spiffe_id);
		if (!only) {
			wi_log(WI_LOG_INFO, "request_refused",
			       "method=%s pid=%d reason=\"caller does not hold the requested SPIFFE ID\"",
			       c->method_name, (int)wi_peer_pid(c->conn->peer));
			wi__call_finish(c, GRPC_STATUS_PERMISSION_DENIED, "no identity issued for the requested SPIFFE ID");
			wi__request_free(m);
			return;
		}
		n = 1;
	}
	wi_wl_server *s = c->srv;
	time_t now = wi_clock_now();
	JWTSVID *items = calloc(n, sizeof(*items));
	JWTSVID **ptrs = calloc(n, sizeof(*ptrs));
	char **tokens = calloc(n, sizeof(*tokens));
	int rc = items && ptrs && tokens ? 0 : WI_E_NOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const wi_identity *id = only ? only : wi_identities_at(ids, i);
		rc = token_for(s, id->spiffe_id, (const char *const *)in->audience, in->n_audience, now, &tokens[i]);
		JWTSVID init = JWTSVID__INIT;
		items[i] = init;
		items[i].spiffe_id = (char *)id->spiffe_id;
		items[i].svid = tokens[i];
		items[i].hint = (char *)id->hint;
		ptrs[i] = &items[i];
	}
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (rc == 0) {
		JWTSVIDResponse resp = JWTSVIDRESPONSE__INIT;
		resp.n_svids = n;
		resp.svids = ptrs;
		rc = pack_msg(&resp.base, &out, &out_len);
	}
	if (rc == 0)
		wi_log(WI_LOG_INFO, "jwt_svid_sent", "pid=%d uid=%u svids=%zu first=%s audiences=%zu",
		       (int)wi_peer_pid(c->conn->peer), (unsigned)wi_peer_uid(c->conn->peer), n,
		       only ? only->spiffe_id : wi_identities_at(ids, 0)->spiffe_id, in->n_audience);
	/* JWT-SVIDs are bearer tokens (STYLE §10): every copy is wiped. */
	for (size_t i = 0; tokens && i < n; i++)
		if (tokens[i])
			wi_secret_free(tokens[i], strlen(tokens[i]));
	free(tokens);
	free(items);
	free(ptrs);
	wi__request_free(m);
	if (rc < 0) {
		wi_log(WI_LOG_ERROR, "jwt_svid_failed", "%s", wi_error_detail());
		wi__call_finish(c, rc == WI_E_TOO_BIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE,
				rc == WI_E_TOO_BIG ? "response too large" : "internal error; retry");
		return;
	}
	wi__call_reply(c, out, out_len, true);
}

int wi__build_jwt_bundles(wi__call *c, time_t now, uint8_t **ret, size_t *ret_len, bool *ret_secret,
			  time_t *ret_next)
{
	wi_wl_server *s = c->srv;
	char key[WI_TRUST_DOMAIN_MAX + 16];
	snprintf(key, sizeof(key), "spiffe://%s", wi_registry_trust_domain(c->reg));
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(s->jwt_keys);
	const char *jwks = wi_jwt_keyset_jwks_json(ks);
	c->bundle_gen = wi_jwt_keyset_generation(ks);
	JWTBundlesResponse__BundlesEntry entry = JWTBUNDLES_RESPONSE__BUNDLES_ENTRY__INIT;
	entry.key = key;
	entry.value.data = (uint8_t *)jwks; /* a plain JWKS: every key has a kid */
	entry.value.len = strlen(jwks);
	JWTBundlesResponse__BundlesEntry *entries[1] = {&entry};
	JWTBundlesResponse resp = JWTBUNDLES_RESPONSE__INIT;
	resp.n_bundles = 1;
	resp.bundles = entries;
	WI_TRY(pack_msg(&resp.base, ret, ret_len));
	*ret_secret = false;
	*ret_next = 0;
	return 0;
}

void wi__handle_fetch_jwt_bundles(wi__call *c, const uint8_t *req, size_t len)
{
	ProtobufCMessage *in = NULL;
	if (wi__call_unpack(c, &jwtbundles_request__descriptor, req, len, &in) < 0)
		return;
	wi__request_free(in);
	wi__stream_open(c, wi__build_jwt_bundles);
}

/* ---- claims as google.protobuf.Struct ------------------------------------ */

static void value_free(Google__Protobuf__Value *v);

static void struct_free(Google__Protobuf__Struct *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_fields; i++) {
		if (!st->fields[i])
			continue;
		free(st->fields[i]->key);
		value_free(st->fields[i]->value);
		free(st->fields[i]);
	}
	free(st->fields);
	free(st);
}

static void value_free(Google__Protobuf__Value *v)
{
	if (!v)
		return;
	if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
		free(v->string_value);
	else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE)
		struct_free(v->struct_value);
	else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE && v->list_value) {
		for (size_t i = 0; i < v->list_value->n_values; i++)
			value_free(v->list_value->values[i]);
		free(v->list_value->values);
		free(v->list_value);
	}
	free(v);
}

static int to_struct(json_t *obj, int depth, Google__Protobuf__Struct **ret);

/* JSON → Value; numbers become doubles (proto3 JSON mapping). */
static int to_value(json_t *j, int depth, Google__Protobuf__Value **ret)
{
	WI_CHECK(depth <= WI_JSON_DEPTH_MAX, WI_E_TOO_BIG, "claims nested too deeply");
	Google__Protobuf__Value *v = malloc(sizeof(*v));
	WI_CHECK_ALLOC(v);
	Google__Protobuf__Value init = GOOGLE__PROTOBUF__VALUE__INIT;
	*v = init;
	int rc = 0;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
		rc = to_struct(j, depth + 1, &v->struct_value);
		break;
	case JSON_ARRAY: {
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
		Google__Protobuf__ListValue *l = calloc(1, sizeof(*l));
		Google__Protobuf__ListValue linit = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
		if (!l) {
			rc = WI_E_NOMEM;
			break;
		}
		*l = linit;
		v->list_value = l;
		size_t n = json_array_size(j);
		l->values = calloc(n ? n : 1, sizeof(*l->values));
		if (!l->values) {
			rc = WI_E_NOMEM;
			break;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			rc = to_value(json_array_get(j, i), depth + 1, &l->values[i]);
			if (rc == 0)
				l->n_values++;
		}
		break;
	}
	case JSON_STRING:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v->string_value = strndup(json_string_value(j), json_string_length(j));
		rc = v->string_value ? 0 : WI_E_NOMEM;
		break;
	case JSON_INTEGER:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
		v->number_value = (double)json_integer_value(j);
		break;
	case JSON_REAL:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
		v->number_value = json_real_value(j);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
		v->bool_value = json_is_true(j);
		break;
	case JSON_NULL:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
		v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
		break;
	}
	if (rc < 0) {
		value_free(v);
		return rc == WI_E_NOMEM ? wi__error_set(rc, __FILE__, __LINE__, "allocation") : rc;
	}
	*ret = v;
	return 0;
}

static int to_struct(json_t *obj, int depth, Google__Protobuf__Struct **ret)
{
	Google__Protobuf__Struct *st = calloc(1, sizeof(*st));
	WI_CHECK_ALLOC(st);
	Google__Protobuf__Struct init = GOOGLE__PROTOBUF__STRUCT__INIT;
	*st = init;
	size_t n = json_object_size(obj);
	st->fields = calloc(n ? n : 1, sizeof(*st->fields));
	if (!st->fields) {
		free(st);
		WI_FAIL(WI_E_NOMEM, "allocation");
	}
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		Google__Protobuf__Struct__FieldsEntry *e = malloc(sizeof(*e));
		Google__Protobuf__Struct__FieldsEntry einit = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
		if (!e) {
			struct_free(st);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
		*e = einit;
		st->fields[st->n_fields++] = e;
		e->key = strdup(k);
		if (!e->key) {
			struct_free(st);
			WI_FAIL(WI_E_NOMEM, "allocation");
		}
		int rc = to_value(v, depth, &e->value);
		if (rc < 0) {
			struct_free(st);
			return rc;
		}
	}
	*ret = st;
	return 0;
}

void wi__handle_validate_jwt_svid(wi__call *c, const uint8_t *req, size_t len)
{
	/* The request carries the caller's token (a bearer credential): freeing
	 * it wipes it (request.h). */
	ProtobufCMessage *m = NULL;
	if (wi__call_unpack(c, &validate_jwtsvidrequest__descriptor, req, len, &m) < 0)
		return;
	ValidateJWTSVIDRequest *in = (ValidateJWTSVIDRequest *)m;
	/* Workload API §5: every field is mandatory. */
	const char *bad = !in->audience || !*in->audience ? "audience must be specified"
			  : !in->svid || !*in->svid	  ? "svid must be specified"
							  : NULL;
	if (bad) {
		refuse(c, GRPC_STATUS_INVALID_ARGUMENT, bad);
		wi__request_free(m);
		return;
	}
	_cleanup_(wi_identities_freep) wi_identities *ids = NULL;
	_cleanup_(wi_registry_unrefp) wi_registry *reg = NULL;
	if (wi__call_identities(c, &ids, NULL, &reg) < 0) {
		wi__request_free(m);
		return;
	}
	wi_wl_server *s = c->srv;
	char *spiffe_id = NULL;
	_cleanup_(json_decrefp) json_t *claims = NULL;
	_cleanup_(wi_jwt_keyset_unrefp) wi_jwt_keyset *ks = wi_jwt_keys_get(s->jwt_keys);
	/* A caller presents the same JWT-SVID until its half-life: one that
	 * passed under the current bundle is not verified again (the claim
	 * checks are; core/jwt_svid.h). */
	int rc = wi_jwt_svid_validate_cached(s->validated, in->svid, strlen(in->svid), wi_jwt_keyset_jwks(ks),
					     wi_registry_trust_domain(reg), in->audience, wi_clock_now(), &spiffe_id,
					     &claims);
	wi__request_free(m);
	if (rc < 0) {
		/* The reason is ours (never the token), e.g. "token has expired". */
		const char *d = wi_error_detail();
		const char *reason = strstr(d, ": ");
		reason = reason ? strstr(reason + 2, ": ") : NULL;
		reason = reason ? reason + 2 : d;
		wi_log(WI_LOG_INFO, "jwt_svid_invalid", "pid=%d reason=\"%s\"", (int)wi_peer_pid(c->conn->peer), d);
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, reason);
		return;
	}
	/* SPIRE renders aud as a list even for one audience; clients rely on it. */
	json_t *aud = json_object_get(claims, "aud");
	if (json_is_string(aud)) {
		json_t *list = json_array();
		bool listed = list && json_array_append(list, aud) == 0;
		if (!listed)
			json_decref(list);
		/* set_new takes `list` even when it fails (and frees it then). */
		if (!listed || json_object_set_new(claims, "aud", list) < 0) {
			free(spiffe_id);
			wi_log(WI_LOG_ERROR, "validate_failed", "pid=%d reason=\"out of memory\"",
			       (int)wi_peer_pid(c->conn->peer));
			wi__call_finish(c, GRPC_STATUS_UNAVAILABLE, "internal error; retry");
			return;
		}
	}
	Google__Protobuf__Struct *st = NULL;
	rc = to_struct(claims, 1, &st);
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (rc == 0) {
		ValidateJWTSVIDResponse resp = VALIDATE_JWTSVIDRESPONSE__INIT;
		resp.spiffe_id = spiffe_id;
		resp.claims = st;
		rc = pack_msg(&resp.base, &out, &out_len);
	}
	if (rc == 0)
		wi_log(WI_LOG_INFO, "jwt_svid_valid", "pid=%d sub=%s", (int)wi_peer_pid(c->conn->peer), spiffe_id);
	struct_free(st);
	free(spiffe_id);
	if (rc < 0) {
		wi_log(WI_LOG_INFO, "request_refused", "method=%s pid=%d reason=\"claims cannot be represented\"",
		       c->method_name, (int)wi_peer_pid(c->conn->peer));
		wi__call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "claims cannot be represented");
		return;
	}
	wi__call_reply(c, out, out_len, false);
}
