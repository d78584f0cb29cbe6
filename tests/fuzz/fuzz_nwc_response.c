/*
 * fuzz_nwc_response: the NIP-47 message layer (billing/nwc.h): decrypted
 * response payloads for every method, notification payloads, and
 * connection URIs. The first byte picks the method.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/nwc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum nwc_method m = (enum nwc_method)(data[0] % NWC_METHOD_COUNT);
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	const char *why = NULL;
	struct nwc_response r;
	if (nwc_response_parse_json(&r, &why, m, s, n) == 0) {
		if (r.method != m)
			abort();
		uint8_t ph[32] = {0};
		(void)nwc_payment_check(&r.tx, &why, ph, 1);
		nwc_response_clear(&r);
	} else if (!why) {
		abort();
	}
	struct nwc_notification no;
	if (nwc_notification_parse_json(&no, &why, s, n) == 0)
		nwc_notification_clear(&no);
	struct nwc_uri *u = NULL;
	if (nwc_uri_parse(&u, &why, s, n) == 0) {
		if (nwc_uri_relay_count(u) == 0 || !nwc_uri_keypair(u))
			abort();
		nwc_uri_free(u);
	}
	return 0;
}
