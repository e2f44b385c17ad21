/* Fuzz target: the admin API's entry path on arbitrary bytes — strict JSON
 * (core/json.h), then the one entry parser (core/entry.h), then the store's
 * round trip (the canonical body parses back to the same entry). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/entry.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	if (wi_json_parse_document((const char *)data, size, "fuzz", &j) < 0)
		return 0;
	wi_entry *e = NULL;
	wi_entry_error err;
	if (wi_entry_from_json(j, "example.org", WI_ENTRY_SOURCE_CONFIG, 1, &e, &err) == 0) {
		wi_entry *back = NULL;
		if (wi_entry_from_stored(wi_entry_id(e), wi_entry_body(e), WI_ENTRY_SOURCE_CONFIG, 1, "example.org",
					 &back) != 0 ||
		    strcmp(wi_entry_body(back), wi_entry_body(e)) != 0 || strcmp(wi_entry_id(back), wi_entry_id(e)) != 0)
			abort(); /* what is stored must load back identically */
		json_t *out = wi_entry_to_json(back);
		if (!out)
			abort();
		json_decref(out);
		wi_entry_free(back);
		wi_entry_free(e);
	}
	json_decref(j);
	return 0;
}
