/*
 * fuzz_keystore_config: appliance-keystore's INI configuration parser and
 * validation (keystore/ksconfig.h); inside an enclave the file reaches the
 * daemon through the untrusted parent. Invariants: success gives a
 * configuration (freed without leaks); failure gives no configuration and
 * a non-empty error text.
 */
#include <stdint.h>
#include <stdlib.h>

#include "keystore/ksconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ksconfig *c = NULL;
	char err[KSCONFIG_ERR_MAX];
	err[0] = 0;
	int r = ksconfig_parse(&c, err, sizeof err, "fuzz.ini", (const char *)data, size);
	if (r == 0) {
		if (!c)
			abort();
		ksconfig_free(c);
	} else if (c || !err[0]) {
		abort();
	}
	return 0;
}
