/* Fuzz target: the config loader on arbitrary JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	wi_config *c = NULL;
	if (wi_config_load_string(s, "fuzz", &c) == 0)
		wi_config_free(c);
	free(s);
	return 0;
}
