/*
 * fuzz_bolt11: BOLT #11 decoding (billing/bolt11.h). Whatever decodes must
 * serialize to JSON, answer its accessors, and decode again identically
 * (decoding is a pure function of the text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/bolt11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bolt11 *inv = NULL, *again = NULL;
	const char *why = NULL;
	int r = bolt11_decode(&inv, &why, (const char *)data, size);
	if (r) {
		if (inv || !why)
			abort();
		return 0;
	}
	char *json = NULL;
	size_t n;
	if (bolt11_to_json(&json, &n, inv) != 0 || strlen(json) != n)
		abort();
	free(json);
	(void)bolt11_expired(inv, 0);
	(void)bolt11_feature(inv, 100);
	if (inv->has_description && bolt11_check_description(inv, inv->description, inv->description_len) != 0)
		abort();
	if (bolt11_decode(&again, &why, (const char *)data, size) != 0 || again->amount_msat != inv->amount_msat ||
	    memcmp(again->payment_hash, inv->payment_hash, 32) != 0 || memcmp(again->payee, inv->payee, 33) != 0)
		abort();
	bolt11_free(again);
	bolt11_free(inv);
	return 0;
}
