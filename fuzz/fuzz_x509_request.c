/* Fuzz target: the protobuf parsing the Workload API applies to requests
 * (protobuf-c under our strict unpacker, request.h), and a response type
 * with nested messages and a map for the unpacker's walk. */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "workload-api/request.h"
#include "workload.pb-c.h"

static void unpack_one(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	if (wi__request_unpack(d, data, size, &m) == 0)
		wi__request_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unpack_one(&x509_svidrequest__descriptor, data, size);
	unpack_one(&x509_svidresponse__descriptor, data, size);
	unpack_one(&jwtsvidrequest__descriptor, data, size);
	unpack_one(&validate_jwtsvidrequest__descriptor, data, size);
	unpack_one(&grpc__health__v1__health_check_request__descriptor, data, size);
	return 0;
}
