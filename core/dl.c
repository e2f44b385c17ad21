/* core/dl.c — see dl.h. */
#include "core/dl.h"

#include <dlfcn.h>
#include <string.h>

int wi_dl_open(const char *soname, void **ret)
{
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		WI_FAIL(WI_E_UNAVAILABLE, "%.200s", e ? e : "?");
	}
	*ret = lib;
	return 0;
}

int wi_dl_function(void *lib, const char *name, void *ret_fn, size_t fn_size)
{
	void *p = dlsym(lib, name);
	WI_CHECK(p && fn_size == sizeof(p), WI_E_UNAVAILABLE, "lacks %.64s", name);
	memcpy(ret_fn, &p, fn_size);
	return 0;
}
