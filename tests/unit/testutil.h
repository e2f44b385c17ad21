/* tests/unit/testutil.h — the small test-only helpers every unit test needs
 * (STYLE §14): private temporary directories and their removal. */
#ifndef WI_TESTS_TESTUTIL_H
#define WI_TESTS_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes a fresh directory $TMPDIR/wi-<tag>-XXXXXX (or under /tmp) into buf;
 * returns buf, or NULL on failure. */
static inline char *wi_test_mkdtemp(char *buf, size_t cap, const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	if ((size_t)snprintf(buf, cap, "%s/wi-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag) >= cap)
		return NULL;
	return mkdtemp(buf);
}

static inline int wi__test_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

/* Removes a directory tree (never following symlinks). */
static inline int wi_test_rmtree(const char *dir)
{
	return nftw(dir, wi__test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
