/* Fuzz target: the token endpoint's form parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "txn-token/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wi_form *f = NULL;
	if (wi_form_parse((const char *)data, size, 64, &f) == 0) {
		if (wi_form_count(f) > 64)
			abort();
		(void)wi_form_get(f, "grant_type");
		wi_form_free(f);
	}
	return 0;
}
