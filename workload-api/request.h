/* workload-api/request.h — unpacking a workload's request message, strictly.
 *
 * protobuf-c copies a string field's wire bytes and NUL-terminates them, so a
 * string holding a NUL byte (valid proto3) would read as its prefix: an
 * audience "backend\0x" as "backend", a SPIFFE ID "…/db\0x" as "…/db".  A
 * Go, Java or C++ server would see the whole string; we refuse it instead
 * (every string we take from a request ends up in C strings).  The
 * allocator used for the unpack records each allocation's size, which for a
 * string is its wire length plus one, and wipes every allocation when the
 * message is freed (a request may carry a bearer token). */
#ifndef WI_WORKLOAD_API_REQUEST_H
#define WI_WORKLOAD_API_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/error.h"

/* Unpacks len bytes as a message of type desc.  WI_E_PARSE if they are not
 * one, WI_E_INVAL if a string field (at any depth) holds a NUL byte; the
 * detail says which field.  Free *ret with wi__request_free. */
int wi__request_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
		       ProtobufCMessage **ret) WI_WUR;
/* Wipes and frees a message from wi__request_unpack; NULL is a no-op. */
void wi__request_free(ProtobufCMessage *m);

#endif
