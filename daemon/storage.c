/* daemon/storage.c — the state directory's writability.  See storage.h. */
#include "daemon/storage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "core/limits.h"

bool wi_daemon_storage_writable(const char *dir, char *why, size_t size)
{
	struct statvfs st;
	if (statvfs(dir, &st) < 0) {
		snprintf(why, size, "cannot stat %s: %s", dir, strerror(errno));
		return false;
	}
	if (st.f_flag & ST_RDONLY) {
		snprintf(why, size, "%s is on a read-only file system", dir);
		return false;
	}
	uint64_t avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
	if (avail < WI_STORAGE_FREE_MIN) {
		snprintf(why, size, "%s has %" PRIu64 " bytes free (below %u)", dir, avail, (unsigned)WI_STORAGE_FREE_MIN);
		return false;
	}
	if (st.f_favail == 0 && st.f_files != 0) {
		snprintf(why, size, "%s has no free inodes", dir);
		return false;
	}
	return true;
}
