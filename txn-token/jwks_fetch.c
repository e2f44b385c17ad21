/* txn-token/jwks_fetch.c — JWKS documents over HTTP(S), libcurl opened on
 * first need. */
#include "txn-token/jwks_fetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Types and constants only: the functions are reached through `api`. */
#include <curl/curl.h>

#include "core/dl.h"
#include "core/limits.h"

/* The soname Debian's libcurl4 (the OpenSSL flavour, the one the headers
 * describe) installs. */
#define LIBCURL_SONAME "libcurl.so.4"

static struct {
	CURLcode (*global_init)(long flags);
	curl_version_info_data *(*version_info)(CURLversion v);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption o, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO i, ...);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode c);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static atomic_int load_rc = WI_E_UNAVAILABLE; /* written once, inside load_once */
static char load_why[256] = "not initialised";

static bool resolve(void *lib, const char *name, void *ret_fn, size_t fn_size)
{
	if (wi_dl_function(lib, name, ret_fn, fn_size) == 0)
		return true;
	snprintf(load_why, sizeof(load_why), "%s %s", LIBCURL_SONAME, wi_error_detail());
	return false;
}

#define RESOLVE(lib, field, name) resolve((lib), (name), &api.field, sizeof(api.field))

static void load(void)
{
	void *lib = NULL;
	if (wi_dl_open(LIBCURL_SONAME, &lib) < 0) {
		snprintf(load_why, sizeof(load_why), "cannot load %s: %s", LIBCURL_SONAME, wi_error_detail());
		return;
	}
	if (!RESOLVE(lib, global_init, "curl_global_init") || !RESOLVE(lib, version_info, "curl_version_info") ||
	    !RESOLVE(lib, easy_init, "curl_easy_init") || !RESOLVE(lib, easy_setopt, "curl_easy_setopt") ||
	    !RESOLVE(lib, easy_perform, "curl_easy_perform") || !RESOLVE(lib, easy_getinfo, "curl_easy_getinfo") ||
	    !RESOLVE(lib, easy_cleanup, "curl_easy_cleanup") ||
	    !RESOLVE(lib, easy_strerror, "curl_easy_strerror")) {
		memset(&api, 0, sizeof(api));
		return; /* the library stays mapped: dlclose of a half-used one buys nothing */
	}
	/* curl_global_init(3): thread-safe only where the library says so; the
	 * daemon may already run gRPC's and libuv's threads. */
	const curl_version_info_data *v = api.version_info(CURLVERSION_NOW);
	if (!v || !(v->features & CURL_VERSION_THREADSAFE)) {
		snprintf(load_why, sizeof(load_why), "%s %s cannot be initialised with threads running", LIBCURL_SONAME,
			 v && v->version ? v->version : "?");
		memset(&api, 0, sizeof(api));
		return;
	}
	if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(load_why, sizeof(load_why), "%s failed to initialise", LIBCURL_SONAME);
		memset(&api, 0, sizeof(api));
		return;
	}
	atomic_store(&load_rc, 0);
}

int wi_jwks_fetch_init(void)
{
	pthread_once(&load_once, load);
	WI_CHECK(atomic_load(&load_rc) == 0, WI_E_UNAVAILABLE, "%s", load_why);
	return 0;
}

bool wi_jwks_fetch_loaded(void)
{
	return atomic_load(&load_rc) == 0;
}

typedef struct fetch_state {
	wi_buf b;
	bool too_big;
	long max_age; /* -1 absent */
	bool (*cancelled)(void *ud);
	void *ud;
} fetch_state;

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	const fetch_state *f = ud;
	return f->cancelled && f->cancelled(f->ud) ? 1 : 0; /* non-zero aborts the transfer */
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	fetch_state *f = ud;
	size_t len = size * n;
	if (wi_buf_append(&f->b, p, len) < 0) {
		f->too_big = true;
		return 0; /* aborts the transfer: a 50 MB "JWKS" costs at most the cap */
	}
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	fetch_state *f = ud;
	size_t len = size * n;
	/* RFC 9111 §5.2.2.1: Cache-Control: max-age=N */
	if (len > 14 && strncasecmp(p, "cache-control:", 14) == 0) {
		char line[512];
		size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
		memcpy(line, p, l);
		line[l] = '\0';
		for (char *q = line; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		if (strstr(line, "no-store") || strstr(line, "no-cache"))
			f->max_age = 0;
		char *m = strstr(line, "max-age=");
		if (m && f->max_age != 0)
			f->max_age = strtol(m + 8, NULL, 10);
	}
	return len;
}

int wi_jwks_fetch_get(const char *url, bool (*cancelled)(void *ud), void *ud, wi_buf *ret_doc, long *ret_max_age)
{
	WI_CHECK(url, WI_E_INVAL, "no URL");
	WI_TRY(wi_jwks_fetch_init());
	CURL *h = api.easy_init();
	WI_CHECK(h, WI_E_UNAVAILABLE, "cannot start a fetch");
	fetch_state f = {.max_age = -1, .cancelled = cancelled, .ud = ud};
	wi_buf_init(&f.b, WI_JWKS_DOC_MAX, false);
	/* Through a pointer curl's type-checking macros do not apply: every
	 * argument below has the exact type curl_easy_setopt(3) names. */
	CURLcode cc = CURLE_OK;
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_URL, url);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)WI_JWKS_CONNECT_TIMEOUT_MS);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WI_JWKS_TOTAL_TIMEOUT_MS);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)WI_JWKS_DOC_MAX);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_WRITEDATA, (void *)&f);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_HEADERDATA, (void *)&f);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_USERAGENT, "wimsed");
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	if (cc == CURLE_OK)
		cc = api.easy_setopt(h, CURLOPT_XFERINFODATA, (void *)&f);
	bool set_up = cc == CURLE_OK;
	if (set_up)
		cc = api.easy_perform(h);
	long status = 0;
	if (cc == CURLE_OK && api.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	api.easy_cleanup(h);
	int rc = 0;
	if (!set_up)
		rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "cannot set up the fetch: %s",
				   api.easy_strerror(cc));
	else if (f.too_big || cc == CURLE_FILESIZE_EXCEEDED)
		rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "document larger than %u bytes",
				   (unsigned)WI_JWKS_DOC_MAX);
	else if (cc != CURLE_OK)
		rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "%s", api.easy_strerror(cc));
	else if (status != 200)
		rc = wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "HTTP status %ld", status);
	if (rc < 0) {
		wi_buf_free(&f.b);
		return rc;
	}
	*ret_doc = f.b;
	*ret_max_age = f.max_age;
	return 0;
}
