/* core/dl.h — opening a shared library at run time, for dependencies the
 * daemon maps only when a feature needs them (txn-token/jwks_fetch.c,
 * daemon/notify.c).  A library opened here stays mapped until exit. */
#ifndef WI_CORE_DL_H
#define WI_CORE_DL_H

#include <stddef.h>

#include "core/error.h"

/* dlopen(soname, RTLD_NOW | RTLD_LOCAL): its symbols serve only the pointers
 * taken from it.  0 with *ret; WI_E_UNAVAILABLE with dlerror's text as the
 * whole detail (callers say what they wanted it for). */
int wi_dl_open(const char *soname, void **ret) WI_WUR;

/* The function `name` of `lib` copied into *ret_fn, a function pointer of
 * fn_size bytes (dlsym hands back a data pointer).  WI_E_UNAVAILABLE with
 * the detail "lacks <name>"; nothing written then. */
int wi_dl_function(void *lib, const char *name, void *ret_fn, size_t fn_size) WI_WUR;

#endif
