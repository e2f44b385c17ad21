/* core/malloc_tune.c — see malloc_tune.h. */
#include "core/malloc_tune.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

/* Whether the colon-separated list `list` names tunable `name` ("name=…"). */
static bool names_tunable(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > n && memcmp(p, name, n) == 0 && p[n] == '=')
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

int wi_malloc_tunables_for(const char *current, char *out, size_t cap)
{
	if (current && names_tunable(current, WI_MALLOC_TUNE_NAME))
		return 0;
	int n = current && *current
			? snprintf(out, cap, "%s:%s=%s", current, WI_MALLOC_TUNE_NAME, WI_MALLOC_TUNE_VALUE)
			: snprintf(out, cap, "%s=%s", WI_MALLOC_TUNE_NAME, WI_MALLOC_TUNE_VALUE);
	WI_CHECK(n >= 0 && (size_t)n < cap, WI_E_TOO_BIG, "GLIBC_TUNABLES would be longer than %zu bytes",
		 cap ? cap - 1 : 0);
	return 1;
}

int wi_malloc_tune_reexec(char *const argv[])
{
	if (getauxval(AT_SECURE))
		return 0;
	const char *current = getenv("GLIBC_TUNABLES");
	char tunables[WI_MALLOC_TUNABLES_MAX];
	int rc = wi_malloc_tunables_for(current, tunables, sizeof(tunables));
	if (rc <= 0)
		return rc;
	/* Kept to put back if the exec fails. */
	char *saved = current ? strdup(current) : NULL;
	WI_CHECK(!current || saved, WI_E_NOMEM, "GLIBC_TUNABLES: allocation");
	if (setenv("GLIBC_TUNABLES", tunables, 1) < 0) {
		int e = errno;
		free(saved);
		WI_FAIL(WI_E_IO, "setenv GLIBC_TUNABLES: %s", strerror(e));
	}
	execve("/proc/self/exe", argv, environ);
	int e = errno;
	int restored = saved ? setenv("GLIBC_TUNABLES", saved, 1) : unsetenv("GLIBC_TUNABLES");
	free(saved);
	WI_FAIL(WI_E_IO, "re-executing /proc/self/exe with %s=%s: %s%s", WI_MALLOC_TUNE_NAME, WI_MALLOC_TUNE_VALUE,
		strerror(e), restored < 0 ? " (and GLIBC_TUNABLES could not be put back)" : "");
}
