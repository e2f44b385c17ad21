/* client/internal.h — shared between the files of libwimse. */
#ifndef WI_CLIENT_INTERNAL_H
#define WI_CLIENT_INTERNAL_H

#include <grpc/grpc.h>

#include "wimse/wimse.h"

struct wimse_client {
	grpc_channel *channel;
	grpc_completion_queue *cq; /* pluck queue for unary/first-message calls */
};

/* Records the thread's last error and returns `code`. */
int wi__client_fail(int code, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
