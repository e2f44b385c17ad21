/* workload-api/request.c — strict unpacking of request messages (see
 * request.h). */
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "workload-api/request.h"

/* Nesting checked below; the Workload API's requests have none, and
 * protobuf-c has already built whatever arrived. */
#define REQUEST_DEPTH_MAX 16

/* Each allocation is preceded by its size, aligned as malloc's result. */
typedef struct alloc_head {
	alignas(max_align_t) size_t size;
} alloc_head;

static void *request_alloc(void *data, size_t size)
{
	(void)data;
	if (size > SIZE_MAX - sizeof(alloc_head))
		return NULL;
	alloc_head *h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	h->size = size;
	return h + 1;
}

static void request_release(void *data, void *p)
{
	(void)data;
	if (!p)
		return;
	alloc_head *h = (alloc_head *)p - 1;
	OPENSSL_cleanse(p, h->size);
	free(h);
}

static ProtobufCAllocator request_allocator = {
	.alloc = request_alloc,
	.free = request_release,
	.allocator_data = NULL,
};

/* A string protobuf-c allocated holds its wire bytes and a terminator. */
static bool string_whole(const char *s)
{
	const alloc_head *h = (const alloc_head *)s - 1;
	return strlen(s) + 1 == h->size;
}

static int check_message(const ProtobufCMessage *m, unsigned depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	WI_CHECK(depth < REQUEST_DEPTH_MAX, WI_E_INVAL, "%s: messages nested too deeply", d->name);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue; /* not the member of its oneof that is set */
		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		size_t n = 1;
		const void *const *items = (const void *const *)(base + f->offset);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			items = *(const void *const *const *)(base + f->offset);
		}
		for (size_t j = 0; j < n; j++) {
			const void *v = items[j];
			/* Absent: NULL or the descriptor's default, which protobuf-c
			 * did not allocate (and does not free). */
			if (!v || (f->label != PROTOBUF_C_LABEL_REPEATED && v == f->default_value))
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING)
				WI_CHECK(string_whole(v), WI_E_INVAL, "%s.%s holds a NUL byte", d->name, f->name);
			else
				WI_TRY(check_message(v, depth + 1));
		}
	}
	return 0;
}

int wi__request_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
		       ProtobufCMessage **ret)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, &request_allocator, len, data);
	WI_CHECK(m != NULL, WI_E_PARSE, "not a %s message", desc->name);
	int rc = check_message(m, 0);
	if (rc < 0) {
		wi__request_free(m);
		return rc;
	}
	*ret = m;
	return 0;
}

void wi__request_free(ProtobufCMessage *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, &request_allocator);
}
