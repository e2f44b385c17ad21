/* tests/unit/testutil.h — the small test-only helpers every unit test needs
 * (STYLE §14): private temporary directories and their removal, whether a
 * shared library is mapped, and the state.db schemas that shipped, for
 * migration tests. */
#ifndef WI_TESTS_TESTUTIL_H
#define WI_TESTS_TESTUTIL_H

#include <ftw.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

typedef struct wi__test_lib_probe {
	const char *name;
	bool found;
} wi__test_lib_probe;

static inline int wi__test_lib_one(struct dl_phdr_info *info, size_t size, void *ud)
{
	(void)size;
	wi__test_lib_probe *p = ud;
	if (info->dlpi_name && strstr(info->dlpi_name, p->name))
		p->found = true;
	return 0;
}

/* Whether a shared object whose path contains `name` ("libcurl.so") is
 * mapped into this process now. */
static inline bool wi_test_library_mapped(const char *name)
{
	wi__test_lib_probe p = {.name = name};
	dl_iterate_phdr(wi__test_lib_one, &p);
	return p.found;
}

/* The DDL of shipped state.db schemas, frozen here as they were (never taken
 * from core/store.c, which moves on): v1 made the revocations table. */
#define WI_TEST_SCHEMA_V1_REVOCATIONS                                                      \
	"CREATE TABLE revocations ("                                                       \
	" kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),"                                \
	" value TEXT NOT NULL CHECK (length(value) > 0),"                                  \
	" until INTEGER NOT NULL,"                                                         \
	" PRIMARY KEY (kind, value)"                                                       \
	") WITHOUT ROWID;"                                                                 \
	"CREATE INDEX revocations_until ON revocations (until);"
/* v2 added the entries table. */
#define WI_TEST_SCHEMA_V2_ENTRIES                                                          \
	"CREATE TABLE entries ("                                                           \
	" id TEXT PRIMARY KEY CHECK (length(id) = 32),"                                    \
	" spiffe_id TEXT NOT NULL CHECK (length(spiffe_id) > 0),"                          \
	" selectors TEXT NOT NULL,"                                                        \
	" body TEXT NOT NULL,"                                                             \
	" source INTEGER NOT NULL CHECK (source IN (1, 2)),"                               \
	" seq INTEGER NOT NULL DEFAULT 0,"                                                 \
	" created INTEGER NOT NULL,"                                                       \
	" UNIQUE (spiffe_id, selectors)"                                                   \
	");"

#endif
