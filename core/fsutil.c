/* core/fsutil.c — private directories, atomic writes, capped reads (DESIGN §6).
 *
 * Every fd is O_CLOEXEC (STYLE §12).  An atomic write works relative to one
 * dirfd, so the temp file, the rename and the directory fsync all refer to the
 * same directory even if the path is renamed meanwhile. */
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/cleanup.h"

/* Temp names are "<base>.tmp.<16 hex>": a '.' prefix would hide them from
 * ls, which makes a leftover after a crash harder to spot, so none is used. */
#define TMP_SUFFIX ".tmp."
#define TMP_RAND_BYTES 8
#define TMP_ATTEMPTS 16

static int mkdir_one(const char *path, bool last)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	/* A parent we may not create (EACCES on /var) but that exists is fine;
	 * mkdir reports EEXIST before EACCES only sometimes, so check. */
	struct stat st;
	if (!last && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	WI_FAIL(WI_E_IO, "mkdir %s: %s", path, strerror(errno));
}

int wi_fs_mkdir_private(const char *path)
{
	WI_CHECK(path != NULL && path[0] != '\0', WI_E_INVAL, "empty directory path");
	size_t len = strnlen(path, PATH_MAX);
	WI_CHECK(len < PATH_MAX, WI_E_TOO_BIG, "directory path too long");

	char buf[PATH_MAX];
	memcpy(buf, path, len + 1);
	/* Strip trailing slashes ("/var/lib/wimsed/" names the same dir). */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	/* Create each missing parent, then the directory itself, all 0700. */
	for (size_t i = 1; i < len; i++) {
		if (buf[i] != '/' || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		int r = mkdir_one(buf, false);
		buf[i] = '/';
		WI_TRY(r);
	}
	WI_TRY(mkdir_one(buf, true));

	_cleanup_(closep) int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	WI_CHECK_ERRNO(fd >= 0, "open %s: %s", buf, strerror(errno));
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "stat %s: %s", buf, strerror(errno));
	/* DESIGN §6: the data directory is ours alone. */
	WI_CHECK(st.st_uid == geteuid(), WI_E_IO, "%s is owned by uid %u, not %u", buf,
		 (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 077) != 0)
		WI_CHECK_ERRNO(fchmod(fd, st.st_mode & 0700) == 0, "chmod %s: %s", buf, strerror(errno));
	return 0;
}

int wi_fs_join(char *buf, size_t cap, const char *dir, const char *name)
{
	WI_CHECK(buf != NULL && dir != NULL && name != NULL, WI_E_INVAL, "join: NULL argument");
	size_t dl = strlen(dir);
	const char *sep = (dl > 0 && dir[dl - 1] == '/') ? "" : "/";
	int n = snprintf(buf, cap, "%s%s%s", dir, sep, name);
	WI_CHECK(n >= 0 && (size_t)n < cap, WI_E_TOO_BIG, "path \"%s/%s\" longer than %zu bytes", dir,
		 name, cap ? cap - 1 : 0);
	return 0;
}

/* Splits path into a directory (opened as a dirfd) and a base name. */
static int open_parent(const char *path, int *ret_dirfd, const char **ret_base)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	WI_CHECK(base[0] != '\0' && strcmp(base, ".") != 0 && strcmp(base, "..") != 0, WI_E_INVAL,
		 "%s does not name a file", path);
	char dir[PATH_MAX];
	if (!slash) {
		memcpy(dir, ".", 2);
	} else if (slash == path) {
		memcpy(dir, "/", 2);
	} else {
		size_t dl = (size_t)(slash - path);
		WI_CHECK(dl < sizeof(dir), WI_E_TOO_BIG, "path too long");
		memcpy(dir, path, dl);
		dir[dl] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	WI_CHECK_ERRNO(fd >= 0, "open directory %s: %s", dir, strerror(errno));
	*ret_dirfd = fd;
	*ret_base = base;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		WI_CHECK_ERRNO(w > 0, "write %s: %s", path, w < 0 ? strerror(errno) : "wrote nothing");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Creates a fresh temp file next to `base` (O_EXCL: never an existing file,
 * never through a symlink planted under that name). */
static int create_temp(int dirfd, const char *base, mode_t mode, char *tmp, size_t cap, int *ret_fd)
{
	for (int attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
		uint8_t rnd[TMP_RAND_BYTES];
		WI_CHECK_ERRNO(getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd), "getrandom: %s",
			       strerror(errno));
		char hex[2 * TMP_RAND_BYTES + 1];
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
		int n = snprintf(tmp, cap, "%s" TMP_SUFFIX "%s", base, hex);
		WI_CHECK(n >= 0 && (size_t)n < cap, WI_E_TOO_BIG, "file name %s too long", base);
		/* Created with at most 0600 so a secret is never briefly wider
		 * than asked; the exact mode is set with fchmod below. */
		int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				mode & 0600);
		if (fd >= 0) {
			*ret_fd = fd;
			return 0;
		}
		WI_CHECK_ERRNO(errno == EEXIST, "create %s: %s", tmp, strerror(errno));
	}
	WI_FAIL(WI_E_IO, "no free temp name for %s", base);
}

int wi_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	WI_CHECK(path != NULL && (data != NULL || len == 0), WI_E_INVAL, "write: NULL argument");
	WI_CHECK((mode & ~(mode_t)07777) == 0, WI_E_INVAL, "bad file mode %o", (unsigned)mode);
	_cleanup_(closep) int dirfd = -1;
	const char *base = NULL;
	WI_TRY(open_parent(path, &dirfd, &base));

	char tmp[NAME_MAX + 1];
	_cleanup_(closep) int fd = -1;
	WI_TRY(create_temp(dirfd, base, mode, tmp, sizeof(tmp), &fd));

	int r = 0;
	/* fchmod, not the open mode: the umask must not change what we asked. */
	if (fchmod(fd, mode) != 0)
		r = wi__error_set(WI_E_IO, __FILE__, __LINE__, "chmod %s: %s", tmp, strerror(errno));
	if (r == 0)
		r = write_all(fd, data, len, tmp);
	/* DESIGN §6: the data must be on disk before the name points at it, or
	 * a crash could leave an empty file under the real name. */
	if (r == 0 && fsync(fd) != 0)
		r = wi__error_set(WI_E_IO, __FILE__, __LINE__, "fsync %s: %s", tmp, strerror(errno));
	if (r == 0 && close(TAKE_FD(fd)) != 0)
		r = wi__error_set(WI_E_IO, __FILE__, __LINE__, "close %s: %s", tmp, strerror(errno));
	if (r == 0 && renameat(dirfd, tmp, dirfd, base) != 0)
		r = wi__error_set(WI_E_IO, __FILE__, __LINE__, "rename %s: %s", path, strerror(errno));
	if (r < 0) {
		(void)unlinkat(dirfd, tmp, 0);
		return r;
	}
	/* The rename itself is durable only once the directory is synced. */
	WI_CHECK_ERRNO(fsync(dirfd) == 0, "fsync directory of %s: %s", path, strerror(errno));
	return 0;
}

int wi_fs_read_file(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len)
{
	WI_CHECK(path != NULL && ret_data != NULL && ret_len != NULL, WI_E_INVAL, "read: NULL argument");
	WI_CHECK(max < SIZE_MAX, WI_E_INVAL, "read: bad cap");
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		WI_FAIL(WI_E_NOT_FOUND, "%s does not exist", path);
	WI_CHECK_ERRNO(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "stat %s: %s", path, strerror(errno));
	WI_CHECK(S_ISREG(st.st_mode), WI_E_IO, "%s is not a regular file", path);
	WI_CHECK(st.st_size >= 0 && (uint64_t)st.st_size <= max, WI_E_TOO_BIG,
		 "%s is larger than %zu bytes", path, max);

	/* The file may be a key: the buffer is secret, so every reallocation
	 * and every failure path wipes it.  The cap counts the NUL. */
	_cleanup_(wi_buf_freep) wi_buf b;
	wi_buf_init(&b, max + 1, true);
	uint8_t chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			OPENSSL_cleanse(chunk, sizeof(chunk));
			WI_FAIL(WI_E_IO, "read %s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		/* Checked as `n > avail` (STYLE §9); the file may have grown
		 * since fstat. */
		if ((size_t)n > max - b.len) {
			OPENSSL_cleanse(chunk, sizeof(chunk));
			WI_FAIL(WI_E_TOO_BIG, "%s is larger than %zu bytes", path, max);
		}
		int r = wi_buf_append(&b, chunk, (size_t)n);
		if (r < 0) {
			OPENSSL_cleanse(chunk, sizeof(chunk));
			return r;
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	WI_TRY(wi_buf_append(&b, "", 1));
	uint8_t *data = NULL;
	size_t len = 0;
	wi_buf_steal(&b, &data, &len);
	*ret_data = data;
	*ret_len = len - 1;
	return 0;
}
