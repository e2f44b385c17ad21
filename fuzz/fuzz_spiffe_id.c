/* Fuzz target: SPIFFE ID parsing must never crash, and what it accepts must
 * round-trip and satisfy the spec's character rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/spiffe_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wi_spiffe_id *id = NULL;
	if (wi_spiffe_id_parse((const char *)data, size, &id) == 0) {
		const char *s = wi_spiffe_id_string(id);
		if (strlen(s) != size || memcmp(s, data, size) != 0)
			abort();
		for (const char *p = wi_spiffe_id_trust_domain(id); *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		wi_spiffe_id_free(id);
	}
	if (wi_spiffe_id_validate((const char *)data, size, true) == 0 && size < 9)
		abort(); /* shorter than "spiffe://" cannot be valid */
	return 0;
}
