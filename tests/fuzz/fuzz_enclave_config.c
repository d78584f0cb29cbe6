/*
 * fuzz_enclave_config: appliance-enclave's INI configuration parser and
 * validation (enclave/econfig.h). In an enclave the configuration reaches
 * the daemon through the untrusted parent, so it is parsed as untrusted
 * input. Invariants: success gives a configuration that satisfies the
 * documented rules; failure gives a non-empty error; no leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/econfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct econfig *c = NULL;
	char err[ECONFIG_ERR_MAX];
	err[0] = 0;
	int r = econfig_parse(&c, err, sizeof err, "fuzz.ini", (const char *)data, size);
	if (r == 0) {
		if (!c || !c->journal || c->relay.n < 1 || !c->inbox || c->allowed_host.n < 1 || !c->nwc_uri_file ||
		    c->max_queue < 1 || c->max_concurrent_jobs < 1 || c->inline_max > c->max_result_bytes)
			abort();
		(void)econfig_host_allowed(c, "127.0.0.1", 80);
		econfig_free(c);
	} else if (c || !err[0]) {
		abort();
	}
	return 0;
}
