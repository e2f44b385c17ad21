/* Fuzz target: JSON serialisation (wi_json_dump_alloc, wi_json_dump_into)
 * against jansson's own encoder.  Any JSON jansson parses (NULs in strings
 * allowed, so that the fallback is reached too) must serialise to exactly
 * jansson's JSON_COMPACT bytes, on whichever path takes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
	if (!j)
		return 0;
	char *want = json_dumps(j, JSON_COMPACT);
	char *got = NULL;
	size_t len = 0;
	int r = wi_json_dump_alloc(j, JSON_COMPACT, &got, &len);
	if (want ? r != 0 || len != strlen(want) || memcmp(got, want, len) != 0 : r == 0)
		abort();
	char buf[256], *heap = NULL;
	const char *text = NULL;
	r = wi_json_dump_into(j, JSON_COMPACT, buf, sizeof(buf), &heap, &text, &len);
	if (want ? r != 0 || len != strlen(want) || memcmp(text, want, len) != 0 : r == 0)
		abort();
	free(heap);
	free(got);
	free(want);
	json_decref(j);
	return 0;
}
