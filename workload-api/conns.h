/* workload-api/conns.h — connection records, found by the fd number gRPC
 * reports as a call's peer ("fd:<n>").
 *
 * A record is replaced when accept() hands out the same fd number again
 * (which proves the old socket was closed), and dropped by a sweep when the fd
 * no longer refers to the socket inode we accepted.  A call holds its
 * transport (and so its fd) open while it runs, so the record found for a
 * running call's "fd:<n>" is that call's connection: a lookup costs no
 * syscall. */
#ifndef WI_WORKLOAD_API_CONNS_H
#define WI_WORKLOAD_API_CONNS_H

#include <stdint.h>
#include <sys/types.h>

#include "attestors/peer.h"
#include "core/error.h"

typedef struct wi__conn {
	int fd;
	ino_t ino;
	wi_peer *peer;
	int refs; /* guarded by the table lock */
	int streams; /* open server streams; guarded by the server's streams_lock (limits) */
} wi__conn;

typedef struct wi__conns wi__conns;

int wi__conns_new(wi__conns **ret) WI_WUR;
void wi__conns_free(wi__conns *t);
/* Records an accepted connection (takes ownership of peer on success). */
int wi__conns_add(wi__conns *t, int fd, wi_peer *peer) WI_WUR;
/* Finds the record for a gRPC peer string and takes a reference. */
int wi__conns_lookup(wi__conns *t, const char *grpc_peer, wi__conn **ret) WI_WUR;
void wi__conns_release(wi__conns *t, wi__conn *c);
/* Drops records whose fd was closed; returns how many remain. */
size_t wi__conns_sweep(wi__conns *t);
/* Records for a uid (connection cap). */
size_t wi__conns_count_uid(wi__conns *t, uid_t uid);

#endif
