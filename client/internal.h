/* client/internal.h — shared between the files of libwimse. */
#ifndef WI_CLIENT_INTERNAL_H
#define WI_CLIENT_INTERNAL_H

#include <grpc/grpc.h>

#include "wimse/wimse.h"

struct wimse_client {
	grpc_channel *channel;
	grpc_completion_queue *cq; /* pluck queue for unary/first-message calls */
};

/* The gRPC target for a Workload API address ("unix:///abs/path"; NULL means
 * $SPIFFE_ENDPOINT_SOCKET), or a negative code with the error recorded. */
int wi__client_make_target(const char *addr, char *target, size_t cap);

/* Records the thread's last error and returns `code`. */
int wi__client_fail(int code, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
