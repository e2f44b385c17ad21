/* client/client.c — libwimse on gRPC C core (client side). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "client/internal.h"
#include "core/error.h"
#include "core/limits.h"
#include "google/protobuf/struct.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "wimse/wimse.h"
#include "workload.pb-c.h"

static _Thread_local char last_error[512];
static _Thread_local int last_status;

#define fail wi__client_fail

int wi__client_fail(int code, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	last_status = status;
	return code;
}

const char *wimse_last_error(void)
{
	return last_error;
}

int wimse_last_status(void)
{
	return last_status;
}

/* Workload Endpoint §4: unix:///abs/path (also unix:/abs/path); no
 * authority, query or fragment.  NULL means SPIFFE_ENDPOINT_SOCKET. */
int wi__client_make_target(const char *addr, char *target, size_t cap)
{
	const char *path;
	if (!addr)
		addr = getenv("SPIFFE_ENDPOINT_SOCKET");
	if (!addr || !*addr)
		return fail(WI_E_INVAL, 0, "no socket: pass --socket or set SPIFFE_ENDPOINT_SOCKET");
	if (strncmp(addr, "unix://", 7) == 0) {
		if (addr[7] != '/')
			return fail(WI_E_INVAL, 0, "address %s: a unix address must have no authority (unix:///abs/path)",
				    addr);
		path = addr + 7;
	} else if (strncmp(addr, "unix:", 5) == 0 && addr[5] == '/') {
		path = addr + 5;
	} else {
		return fail(WI_E_INVAL, 0, "address \"%s\": expected unix:///absolute/path", addr);
	}
	if (strpbrk(path, "?#"))
		return fail(WI_E_INVAL, 0, "address %s: query and fragment are not allowed", addr);
	int n = snprintf(target, cap, "unix:%s", path);
	if (n < 0 || (size_t)n >= cap)
		return fail(WI_E_INVAL, 0, "address too long");
	return 0;
}

int wimse_client_open(const char *address, wimse_client **ret)
{
	char target[4200];
	int rc = wi__client_make_target(address, target, sizeof(target));
	if (rc < 0)
		return rc;
	wimse_client *c = calloc(1, sizeof(*c));
	if (!c)
		return fail(WI_E_NOMEM, 0, "out of memory");
	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_arg args[1] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
			     .value.integer = 4 * 1024 * 1024}};
	grpc_channel_args ch = {.num_args = 1, .args = args};
	c->channel = grpc_channel_create(target, creds, &ch);
	grpc_channel_credentials_release(creds);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	*ret = c;
	return 0;
}

void wimse_client_close(wimse_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->channel);
	grpc_completion_queue_shutdown(c->cq);
	grpc_completion_queue_destroy(c->cq);
	free(c);
	grpc_shutdown();
}

static bool wait_tag(wimse_client *c, void *tag, gpr_timespec deadline)
{
	grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, deadline, NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Sends one request and reads the first response message.  For a stream the
 * call is then cancelled.  *ret_msg is a slice the caller unrefs. */
static int call_first(wimse_client *c, const char *method, bool workload, const uint8_t *req, size_t req_len,
		      int timeout_ms, grpc_slice *ret_msg)
{
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(timeout_ms > 0 ? timeout_ms : 10000, GPR_TIMESPAN));
	grpc_slice mslice = grpc_slice_from_static_string(method);
	grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, mslice, NULL,
						   deadline, NULL);
	grpc_metadata md = {.key = grpc_slice_from_static_string("workload.spiffe.io"),
			    .value = grpc_slice_from_static_string("true")};
	grpc_slice rs = grpc_slice_from_copied_buffer((const char *)req, req_len);
	grpc_byte_buffer *send_bb = grpc_raw_byte_buffer_create(&rs, 1);
	grpc_slice_unref(rs);
	grpc_byte_buffer *recv_bb = NULL;
	grpc_metadata_array init_md, trail_md;
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	grpc_status_code status = GRPC_STATUS_OK;
	grpc_slice details = grpc_empty_slice();

	grpc_op ops[5];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = workload ? 1 : 0;
	ops[0].data.send_initial_metadata.metadata = workload ? &md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	int tag1 = 1, tag2 = 2;
	int rc = 0;
	if (grpc_call_start_batch(call, ops, 5, &tag1, NULL) != GRPC_CALL_OK) {
		rc = fail(WI_E_IO, 13, "%s: cannot start the call", method);
	} else {
		wait_tag(c, &tag1, gpr_inf_future(GPR_CLOCK_MONOTONIC));
	}
	grpc_byte_buffer_destroy(send_bb);
	if (rc == 0 && recv_bb) {
		grpc_byte_buffer_reader rd;
		if (grpc_byte_buffer_reader_init(&rd, recv_bb)) {
			*ret_msg = grpc_byte_buffer_reader_readall(&rd);
			grpc_byte_buffer_reader_destroy(&rd);
		} else {
			rc = fail(WI_E_PARSE, 13, "%s: unreadable response", method);
		}
		/* Done with the stream (or unary call): stop it and collect. */
		grpc_call_cancel(call, NULL);
	}
	grpc_op st;
	memset(&st, 0, sizeof(st));
	st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	st.data.recv_status_on_client.trailing_metadata = &trail_md;
	st.data.recv_status_on_client.status = &status;
	st.data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, &st, 1, &tag2, NULL) == GRPC_CALL_OK)
		wait_tag(c, &tag2, gpr_inf_future(GPR_CLOCK_MONOTONIC));
	if (rc == 0 && !recv_bb) {
		char *d = grpc_slice_to_c_string(details);
		rc = fail(status == GRPC_STATUS_PERMISSION_DENIED ? WI_E_PERMISSION
			  : status == GRPC_STATUS_UNAVAILABLE	  ? WI_E_UNAVAILABLE
								  : WI_E_IO,
			  (int)status, "%s: %s (gRPC status %d)", method + 1, d && *d ? d : "no response",
			  (int)status);
		gpr_free(d);
	}
	if (recv_bb)
		grpc_byte_buffer_destroy(recv_bb);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(call);
	return rc;
}

/* Packs `req`, makes the call, and unpacks the first response as `rd`.
 * `secret`: the response holds private keys or tokens; its bytes are wiped. */
static int call_msg(wimse_client *c, const char *method, bool workload, const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *rd, bool secret, int timeout_ms, ProtobufCMessage **ret)
{
	size_t len = protobuf_c_message_get_packed_size(req);
	if (len > 64 * 1024)
		return fail(WI_E_TOO_BIG, 0, "%s: request too large", method + 1);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return fail(WI_E_NOMEM, 0, "out of memory");
	protobuf_c_message_pack(req, buf);
	grpc_slice msg;
	int rc = call_first(c, method, workload, buf, len, timeout_ms, &msg);
	OPENSSL_cleanse(buf, len); /* requests may carry a token (ValidateJWTSVID) */
	free(buf);
	if (rc < 0)
		return rc;
	ProtobufCMessage *m = protobuf_c_message_unpack(rd, NULL, GRPC_SLICE_LENGTH(msg), GRPC_SLICE_START_PTR(msg));
	if (secret && !GRPC_SLICE_IS_EMPTY(msg))
		OPENSSL_cleanse(GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
	grpc_slice_unref(msg);
	if (!m)
		return fail(WI_E_PARSE, 0, "%s: malformed response", method + 1);
	*ret = m;
	return 0;
}

static char *dup_str(const char *s)
{
	return strdup(s ? s : "");
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *b)
{
	uint8_t *p = malloc(b->len ? b->len : 1);
	if (p && b->len)
		memcpy(p, b->data, b->len);
	return p;
}

void wimse_x509_context_free(wimse_x509_context *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; i < ctx->n_svids; i++) {
		wimse_x509_svid *s = &ctx->svids[i];
		free(s->spiffe_id);
		free(s->hint);
		free(s->chain_der);
		if (s->key_der)
			OPENSSL_cleanse(s->key_der, s->key_len);
		free(s->key_der);
		free(s->bundle_der);
	}
	free(ctx->svids);
	free(ctx);
}

int wimse_fetch_x509_context(wimse_client *c, int timeout_ms, wimse_x509_context **ret)
{
	X509SVIDRequest req = X509_SVIDREQUEST__INIT;
	X509SVIDResponse *resp = NULL;
	int rc = call_msg(c, "/SpiffeWorkloadAPI/FetchX509SVID", true, &req.base, &x509_svidresponse__descriptor, true,
			  timeout_ms, (ProtobufCMessage **)&resp);
	if (rc < 0)
		return rc;
	if (resp->n_svids == 0) {
		x509_svidresponse__free_unpacked(resp, NULL);
		return fail(WI_E_PARSE, 0, "FetchX509SVID: response holds no SVID");
	}
	wimse_x509_context *ctx = calloc(1, sizeof(*ctx));
	wimse_x509_svid *svids = calloc(resp->n_svids, sizeof(*svids));
	if (!ctx || !svids) {
		free(ctx);
		free(svids);
		x509_svidresponse__free_unpacked(resp, NULL);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	ctx->svids = svids;
	ctx->n_svids = resp->n_svids;
	bool ok = true;
	for (size_t i = 0; i < resp->n_svids; i++) {
		X509SVID *in = resp->svids[i];
		wimse_x509_svid *o = &svids[i];
		o->spiffe_id = dup_str(in->spiffe_id);
		o->hint = dup_str(in->hint);
		o->chain_der = dup_bytes(&in->x509_svid);
		o->chain_len = in->x509_svid.len;
		o->key_der = dup_bytes(&in->x509_svid_key);
		o->key_len = in->x509_svid_key.len;
		o->bundle_der = dup_bytes(&in->bundle);
		o->bundle_len = in->bundle.len;
		ok = ok && o->spiffe_id && o->hint && o->chain_der && o->key_der && o->bundle_der;
		if (in->x509_svid_key.len)
			OPENSSL_cleanse(in->x509_svid_key.data, in->x509_svid_key.len);
	}
	x509_svidresponse__free_unpacked(resp, NULL);
	if (!ok) {
		wimse_x509_context_free(ctx);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	*ret = ctx;
	return 0;
}

int wimse_healthcheck(wimse_client *c, int timeout_ms, int *ret_serving)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *resp = NULL;
	int rc = call_msg(c, "/grpc.health.v1.Health/Check", false, &req.base,
			  &grpc__health__v1__health_check_response__descriptor, false, timeout_ms,
			  (ProtobufCMessage **)&resp);
	if (rc < 0)
		return rc;
	*ret_serving = resp->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
	return 0;
}

/* ---- JWT ------------------------------------------------------------------ */

void wimse_jwt_svids_free(wimse_jwt_svids *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_svids; i++) {
		free(s->svids[i].spiffe_id);
		free(s->svids[i].hint);
		if (s->svids[i].token)
			OPENSSL_cleanse(s->svids[i].token, strlen(s->svids[i].token));
		free(s->svids[i].token);
	}
	free(s->svids);
	free(s);
}

int wimse_fetch_jwt_svids(wimse_client *c, const char *const *audiences, size_t n_audiences, const char *spiffe_id,
			  int timeout_ms, wimse_jwt_svids **ret)
{
	if (n_audiences == 0)
		return fail(WI_E_INVAL, 0, "at least one audience is required");
	JWTSVIDRequest req = JWTSVIDREQUEST__INIT;
	req.n_audience = n_audiences;
	req.audience = (char **)audiences;
	req.spiffe_id = (char *)(spiffe_id ? spiffe_id : "");
	JWTSVIDResponse *resp = NULL;
	int rc = call_msg(c, "/SpiffeWorkloadAPI/FetchJWTSVID", true, &req.base, &jwtsvidresponse__descriptor, true,
			  timeout_ms, (ProtobufCMessage **)&resp);
	if (rc < 0)
		return rc;
	if (resp->n_svids == 0) {
		jwtsvidresponse__free_unpacked(resp, NULL);
		return fail(WI_E_PARSE, 0, "FetchJWTSVID: response holds no SVID");
	}
	wimse_jwt_svids *out = calloc(1, sizeof(*out));
	if (out)
		out->svids = calloc(resp->n_svids, sizeof(*out->svids));
	bool ok = out && out->svids;
	for (size_t i = 0; ok && i < resp->n_svids; i++) {
		wimse_jwt_svid *o = &out->svids[i];
		out->n_svids++;
		o->spiffe_id = dup_str(resp->svids[i]->spiffe_id);
		o->hint = dup_str(resp->svids[i]->hint);
		o->token = dup_str(resp->svids[i]->svid);
		ok = o->spiffe_id && o->hint && o->token;
		if (resp->svids[i]->svid)
			OPENSSL_cleanse(resp->svids[i]->svid, strlen(resp->svids[i]->svid));
	}
	jwtsvidresponse__free_unpacked(resp, NULL);
	if (!ok) {
		if (out && !out->svids) {
			free(out);
			out = NULL;
		}
		wimse_jwt_svids_free(out);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	*ret = out;
	return 0;
}

void wimse_jwt_bundles_free(wimse_jwt_bundles *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_bundles; i++) {
		free(b->trust_domains[i]);
		free(b->jwks[i]);
	}
	free(b->trust_domains);
	free(b->jwks);
	free(b);
}

int wimse_fetch_jwt_bundles(wimse_client *c, int timeout_ms, wimse_jwt_bundles **ret)
{
	JWTBundlesRequest req = JWTBUNDLES_REQUEST__INIT;
	JWTBundlesResponse *resp = NULL;
	int rc = call_msg(c, "/SpiffeWorkloadAPI/FetchJWTBundles", true, &req.base, &jwtbundles_response__descriptor,
			  false, timeout_ms, (ProtobufCMessage **)&resp);
	if (rc < 0)
		return rc;
	wimse_jwt_bundles *out = calloc(1, sizeof(*out));
	size_t n = resp->n_bundles;
	if (out) {
		out->trust_domains = calloc(n ? n : 1, sizeof(char *));
		out->jwks = calloc(n ? n : 1, sizeof(char *));
	}
	bool ok = out && out->trust_domains && out->jwks;
	for (size_t i = 0; ok && i < n; i++) {
		out->n_bundles++;
		out->trust_domains[i] = dup_str(resp->bundles[i]->key);
		out->jwks[i] = strndup((const char *)resp->bundles[i]->value.data, resp->bundles[i]->value.len);
		ok = out->trust_domains[i] && out->jwks[i];
	}
	jwtbundles_response__free_unpacked(resp, NULL);
	if (!ok) {
		wimse_jwt_bundles_free(out);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	*ret = out;
	return 0;
}

static json_t *struct_to_json(const Google__Protobuf__Struct *st, int depth);

static json_t *value_to_json(const Google__Protobuf__Value *v, int depth)
{
	if (!v || depth > 64)
		return NULL;
	switch (v->kind_case) {
	case GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE: return json_null();
	case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
		double d = v->number_value;
		/* Claims such as exp and iat are integers carried as doubles. */
		if (d > -9.0e15 && d < 9.0e15 && d == (double)(json_int_t)d)
			return json_integer((json_int_t)d);
		return json_real(d);
	}
	case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: return json_string(v->string_value);
	case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE: return json_boolean(v->bool_value);
	case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE: return struct_to_json(v->struct_value, depth + 1);
	case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE: {
		json_t *a = json_array();
		for (size_t i = 0; a && v->list_value && i < v->list_value->n_values; i++)
			if (json_array_append_new(a, value_to_json(v->list_value->values[i], depth + 1)) < 0) {
				json_decref(a);
				return NULL;
			}
		return a;
	}
	default: return NULL;
	}
}

static json_t *struct_to_json(const Google__Protobuf__Struct *st, int depth)
{
	json_t *o = json_object();
	for (size_t i = 0; o && st && i < st->n_fields; i++)
		if (json_object_set_new(o, st->fields[i]->key, value_to_json(st->fields[i]->value, depth + 1)) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

int wimse_validate_jwt_svid(wimse_client *c, const char *audience, const char *token, int timeout_ms,
			    char **ret_spiffe_id, char **ret_claims_json)
{
	ValidateJWTSVIDRequest req = VALIDATE_JWTSVIDREQUEST__INIT;
	req.audience = (char *)audience;
	req.svid = (char *)token;
	ValidateJWTSVIDResponse *resp = NULL;
	int rc = call_msg(c, "/SpiffeWorkloadAPI/ValidateJWTSVID", true, &req.base,
			  &validate_jwtsvidresponse__descriptor, false, timeout_ms, (ProtobufCMessage **)&resp);
	if (rc < 0)
		return rc;
	if (!resp->spiffe_id || !*resp->spiffe_id) {
		validate_jwtsvidresponse__free_unpacked(resp, NULL);
		return fail(WI_E_PARSE, 0, "ValidateJWTSVID: malformed response (no spiffe_id)");
	}
	json_t *claims = struct_to_json(resp->claims, 0);
	char *text = claims ? json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(claims);
	char *id = strdup(resp->spiffe_id);
	validate_jwtsvidresponse__free_unpacked(resp, NULL);
	if (!text || !id) {
		free(text);
		free(id);
		return fail(WI_E_NOMEM, 0, "out of memory");
	}
	*ret_spiffe_id = id;
	*ret_claims_json = text;
	return 0;
}
