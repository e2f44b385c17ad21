/* Fuzz target: selector parsing and set insertion. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	wi_selector_set *set = NULL;
	if (wi_selector_set_new(&set) == 0) {
		/* Each line is one selector. */
		char *save = NULL;
		for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (wi_selector_set_add_string(set, line) == 0 && !wi_selector_set_contains(set, line))
				abort();
		for (size_t i = 1; i < wi_selector_set_count(set); i++)
			if (strcmp(wi_selector_set_at(set, i - 1), wi_selector_set_at(set, i)) >= 0)
				abort();
		wi_selector_set_unref(set);
	}
	free(s);
	return 0;
}
