/* core/fsutil.h — the few file operations the state needs (DESIGN §6).
 * Everything is opened O_CLOEXEC; writes are atomic (temp file in the same
 * directory, fsync, rename, fsync of the directory). */
#ifndef WI_CORE_FSUTIL_H
#define WI_CORE_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

/* Creates `path` (and missing parents) with mode 0700 if absent; if present,
 * it must be a directory owned by the current euid, and group/other
 * permission bits are removed.  WI_E_IO otherwise. */
int wi_fs_mkdir_private(const char *path) WI_WUR;

/* Writes `len` bytes to `path` atomically with file mode `mode`. */
int wi_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode) WI_WUR;

/* Reads a whole regular file of at most `max` bytes.  *ret_data is
 * NUL-terminated (not counted in *ret_len) and owned by the caller.
 * WI_E_NOT_FOUND if absent, WI_E_TOO_BIG over `max`. */
int wi_fs_read_file(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len) WI_WUR;

/* Joins dir and name into buf ("dir/name"); WI_E_TOO_BIG if it does not fit. */
int wi_fs_join(char *buf, size_t cap, const char *dir, const char *name) WI_WUR;

#endif
