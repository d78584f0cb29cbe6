/*
 * fuzz_parent_config: appliance-parent's INI configuration parser and
 * validation (parent/pconfig.h), in dev mode (the file's own mode, or
 * forced dev). Invariants: success gives a configuration (freed without
 * leaks); failure gives no configuration and a non-empty error text.
 */
#include <stdint.h>
#include <stdlib.h>

#include "parent/pconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pconfig *c = NULL;
	char err[PCONFIG_ERR_MAX];
	err[0] = 0;
	int r = pconfig_parse(&c, err, sizeof err, "fuzz.ini", (const char *)data, size, 0);
	if (r == 0) {
		if (!c)
			abort();
		pconfig_free(c);
	} else if (c || !err[0]) {
		abort();
	}
	return 0;
}
