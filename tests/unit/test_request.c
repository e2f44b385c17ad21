/* Unit tests: workload-api/request (strict unpacking: a string field with a
 * NUL byte is refused instead of read as its prefix; nested messages, maps
 * and oneofs walked; absent and empty strings accepted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/error.h"
#include "google/protobuf/struct.pb-c.h"
#include "workload-api/request.h"
#include "workload.pb-c.h"

/* Packs m, then turns the 0x01 of every "~\x01~" (our marker inside
 * strings; never a tag and length, as 0x7e is no valid tag) into a NUL:
 * protobuf-c cannot pack a C string holding one. */
static uint8_t *pack_marked(const ProtobufCMessage *m, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), n);
	for (size_t i = 1; i + 1 < n; i++)
		if (buf[i] == 0x01 && buf[i - 1] == '~' && buf[i + 1] == '~')
			buf[i] = 0;
	*ret_len = n;
	return buf;
}

static int unpack_jwt_request(char **aud, size_t n_aud, char *spiffe_id, ProtobufCMessage **ret)
{
	JWTSVIDRequest r = JWTSVIDREQUEST__INIT;
	r.audience = aud;
	r.n_audience = n_aud;
	if (spiffe_id)
		r.spiffe_id = spiffe_id;
	size_t len;
	uint8_t *buf = pack_marked(&r.base, &len);
	int rc = wi__request_unpack(&jwtsvidrequest__descriptor, buf, len, ret);
	free(buf);
	return rc;
}

static void test_clean_request_unpacks_whole(void **state)
{
	(void)state;
	char *aud[] = {"spiffe://example.org/backend", "b"};
	ProtobufCMessage *m = NULL;
	assert_int_equal(unpack_jwt_request(aud, 2, "spiffe://example.org/me", &m), 0);
	const JWTSVIDRequest *in = (const JWTSVIDRequest *)m;
	assert_int_equal(in->n_audience, 2);
	assert_string_equal(in->audience[0], "spiffe://example.org/backend");
	assert_string_equal(in->audience[1], "b");
	assert_string_equal(in->spiffe_id, "spiffe://example.org/me");
	wi__request_free(m);
}

static void test_absent_and_empty_strings_accepted(void **state)
{
	(void)state;
	ProtobufCMessage *m = NULL;
	/* No bytes at all: every field absent (protobuf-c's default ""). */
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, (const uint8_t *)"", 0, &m), 0);
	assert_string_equal(((JWTSVIDRequest *)m)->spiffe_id, "");
	assert_int_equal(((JWTSVIDRequest *)m)->n_audience, 0);
	wi__request_free(m);
	/* Present but empty (field 2, length 0), and an empty audience. */
	const uint8_t wire[] = {0x12, 0x00, 0x0a, 0x00};
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, wire, sizeof(wire), &m), 0);
	assert_string_equal(((JWTSVIDRequest *)m)->spiffe_id, "");
	assert_int_equal(((JWTSVIDRequest *)m)->n_audience, 1);
	assert_string_equal(((JWTSVIDRequest *)m)->audience[0], "");
	wi__request_free(m);
}

static void test_nul_in_any_string_refused(void **state)
{
	(void)state;
	ProtobufCMessage *m = NULL;
	char *first[] = {"backend~\x01~evil"};
	assert_int_equal(unpack_jwt_request(first, 1, NULL, &m), WI_E_INVAL);
	assert_null(m);
	assert_non_null(strstr(wi_error_detail(), "audience"));
	char *second[] = {"fine", "x~\x01~"};
	assert_int_equal(unpack_jwt_request(second, 2, NULL, &m), WI_E_INVAL);
	char *lead[] = {"~\x01~x"};
	assert_int_equal(unpack_jwt_request(lead, 1, NULL, &m), WI_E_INVAL);
	char *ok[] = {"fine"};
	assert_int_equal(unpack_jwt_request(ok, 1, "spiffe://example.org/db~\x01~x", &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "spiffe_id"));
	assert_null(m);

	ValidateJWTSVIDRequest v = VALIDATE_JWTSVIDREQUEST__INIT;
	v.audience = "aud";
	v.svid = "eyJh.eyJi.c2ln~\x01~junk";
	size_t len;
	uint8_t *buf = pack_marked(&v.base, &len);
	assert_int_equal(wi__request_unpack(&validate_jwtsvidrequest__descriptor, buf, len, &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "svid"));
	free(buf);
}

static void test_repeated_field_last_value_wins(void **state)
{
	(void)state;
	/* spiffe_id twice: a proto parser keeps the last; the first (with a NUL)
	 * is replaced and freed by protobuf-c, so the message is clean. */
	const uint8_t wire[] = {0x12, 0x03, 'a', 0x00, 'b', 0x12, 0x02, 'y', 'z'};
	ProtobufCMessage *m = NULL;
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, wire, sizeof(wire), &m), 0);
	assert_string_equal(((JWTSVIDRequest *)m)->spiffe_id, "yz");
	wi__request_free(m);
	const uint8_t bad_last[] = {0x12, 0x02, 'y', 'z', 0x12, 0x03, 'a', 0x00, 'b'};
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, bad_last, sizeof(bad_last), &m),
			 WI_E_INVAL);
}

static void test_unknown_fields_are_not_strings(void **state)
{
	(void)state;
	/* Field 9 (unknown to JWTSVIDRequest) holding a NUL: kept as unknown
	 * bytes, not one of our strings. */
	const uint8_t wire[] = {0x0a, 0x01, 'a', 0x4a, 0x02, 0x00, 'x'};
	ProtobufCMessage *m = NULL;
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, wire, sizeof(wire), &m), 0);
	assert_string_equal(((JWTSVIDRequest *)m)->audience[0], "a");
	wi__request_free(m);
}

static void test_malformed_is_parse_error(void **state)
{
	(void)state;
	ProtobufCMessage *m = NULL;
	const uint8_t truncated[] = {0x0a, 0x05, 'a', 'b'};
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, truncated, sizeof(truncated), &m),
			 WI_E_PARSE);
	const uint8_t wrong_wire_type[] = {0x08, 0x01}; /* audience as a varint */
	assert_int_equal(
		wi__request_unpack(&jwtsvidrequest__descriptor, wrong_wire_type, sizeof(wrong_wire_type), &m),
		WI_E_PARSE);
	const uint8_t bad_varint[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(wi__request_unpack(&jwtsvidrequest__descriptor, bad_varint, sizeof(bad_varint), &m),
			 WI_E_PARSE);
	assert_null(m);
}

static void test_nested_messages_and_maps_walked(void **state)
{
	(void)state;
	X509SVID svid[2] = {X509_SVID__INIT, X509_SVID__INIT};
	X509SVID *svids[2] = {&svid[0], &svid[1]};
	svid[0].spiffe_id = "spiffe://example.org/a";
	svid[1].spiffe_id = "spiffe://example.org/b";
	X509SVIDResponse__FederatedBundlesEntry fb = X509_SVIDRESPONSE__FEDERATED_BUNDLES_ENTRY__INIT;
	X509SVIDResponse__FederatedBundlesEntry *fbs[1] = {&fb};
	fb.key = "spiffe://other.org";
	X509SVIDResponse r = X509_SVIDRESPONSE__INIT;
	r.svids = svids;
	r.n_svids = 2;
	r.federated_bundles = fbs;
	r.n_federated_bundles = 1;
	size_t len;
	ProtobufCMessage *m = NULL;
	uint8_t *buf = pack_marked(&r.base, &len);
	assert_int_equal(wi__request_unpack(&x509_svidresponse__descriptor, buf, len, &m), 0);
	assert_string_equal(((X509SVIDResponse *)m)->svids[1]->spiffe_id, "spiffe://example.org/b");
	wi__request_free(m);
	free(buf);

	svid[1].spiffe_id = "spiffe://example.org/b~\x01~";
	buf = pack_marked(&r.base, &len);
	assert_int_equal(wi__request_unpack(&x509_svidresponse__descriptor, buf, len, &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "X509SVID.spiffe_id"));
	free(buf);

	svid[1].spiffe_id = "spiffe://example.org/b";
	fb.key = "spiffe://other.org~\x01~";
	buf = pack_marked(&r.base, &len);
	assert_int_equal(wi__request_unpack(&x509_svidresponse__descriptor, buf, len, &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "key"));
	free(buf);
}

/* A Value holding a list holding a Value … depth times, the innermost a string. */
static uint8_t *pack_nested_value(unsigned depth, const char *leaf, size_t *ret_len)
{
	Google__Protobuf__Value *vals = calloc(depth + 1, sizeof(*vals));
	Google__Protobuf__ListValue *lists = calloc(depth, sizeof(*lists));
	Google__Protobuf__Value **items = calloc(depth, sizeof(*items));
	assert_true(vals && lists && items);
	for (unsigned i = 0; i <= depth; i++) {
		Google__Protobuf__Value init = GOOGLE__PROTOBUF__VALUE__INIT;
		vals[i] = init;
	}
	for (unsigned i = 0; i < depth; i++) {
		Google__Protobuf__ListValue init = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
		lists[i] = init;
		items[i] = &vals[i + 1];
		lists[i].values = &items[i];
		lists[i].n_values = 1;
		vals[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
		vals[i].list_value = &lists[i];
	}
	vals[depth].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	vals[depth].string_value = (char *)leaf;
	uint8_t *buf = pack_marked(&vals[0].base, ret_len);
	free(vals);
	free(lists);
	free(items);
	return buf;
}

static void test_oneof_and_depth(void **state)
{
	(void)state;
	size_t len;
	ProtobufCMessage *m = NULL;
	/* A oneof's other members share the union: only the set one is read. */
	Google__Protobuf__Value num = GOOGLE__PROTOBUF__VALUE__INIT;
	num.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
	num.number_value = 12345.678;
	uint8_t *buf = pack_marked(&num.base, &len);
	assert_int_equal(wi__request_unpack(&google__protobuf__value__descriptor, buf, len, &m), 0);
	wi__request_free(m);
	free(buf);

	buf = pack_nested_value(3, "leaf", &len);
	assert_int_equal(wi__request_unpack(&google__protobuf__value__descriptor, buf, len, &m), 0);
	wi__request_free(m);
	free(buf);
	buf = pack_nested_value(3, "le~\x01~af", &len);
	assert_int_equal(wi__request_unpack(&google__protobuf__value__descriptor, buf, len, &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "string_value"));
	free(buf);
	buf = pack_nested_value(40, "leaf", &len);
	assert_int_equal(wi__request_unpack(&google__protobuf__value__descriptor, buf, len, &m), WI_E_INVAL);
	assert_non_null(strstr(wi_error_detail(), "nested"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_request_unpacks_whole),
		cmocka_unit_test(test_absent_and_empty_strings_accepted),
		cmocka_unit_test(test_nul_in_any_string_refused),
		cmocka_unit_test(test_repeated_field_last_value_wins),
		cmocka_unit_test(test_unknown_fields_are_not_strings),
		cmocka_unit_test(test_malformed_is_parse_error),
		cmocka_unit_test(test_nested_messages_and_maps_walked),
		cmocka_unit_test(test_oneof_and_depth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
