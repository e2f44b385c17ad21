/* Fuzz target: the protobuf parsers the Workload API applies to requests. */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "workload.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509SVIDRequest *a = x509_svidrequest__unpack(NULL, size, data);
	if (a)
		x509_svidrequest__free_unpacked(a, NULL);
	X509SVIDResponse *b = x509_svidresponse__unpack(NULL, size, data);
	if (b)
		x509_svidresponse__free_unpacked(b, NULL);
	JWTSVIDRequest *c = jwtsvidrequest__unpack(NULL, size, data);
	if (c)
		jwtsvidrequest__free_unpacked(c, NULL);
	Grpc__Health__V1__HealthCheckRequest *d = grpc__health__v1__health_check_request__unpack(NULL, size, data);
	if (d)
		grpc__health__v1__health_check_request__free_unpacked(d, NULL);
	return 0;
}
