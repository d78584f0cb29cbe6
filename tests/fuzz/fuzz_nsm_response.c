/*
 * fuzz_nsm_response: the NSM response decoder (appliance/nsm.h), i.e. what
 * the client makes of bytes from /dev/nsm or the emulator socket. A decoded
 * response must re-encode and decode to the same thing. The same bytes go
 * through the request decoder (the emulator's side), whose result must
 * round-trip too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/nsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[NSM_RESPONSE_MAX];

static void check_response(const uint8_t *data, size_t size)
{
	struct nsm_response a, b;
	size_t n = 0;
	if (nsm_response_decode(&a, data, size) != 0)
		return;
	if (nsm_response_encode(buf, sizeof buf, &n, &a) != 0 || nsm_response_decode(&b, buf, n) != 0)
		abort();
	if (a.type != b.type || a.status != b.status || a.lock != b.lock || a.pcr_len != b.pcr_len ||
	    memcmp(a.pcr, b.pcr, a.pcr_len) != 0 || a.max_pcrs != b.max_pcrs || a.locked_pcrs != b.locked_pcrs ||
	    a.digest != b.digest || strcmp(a.module_id, b.module_id) != 0 || a.document_len != b.document_len ||
	    a.random_len != b.random_len || (a.document_len && memcmp(a.document, b.document, a.document_len) != 0) ||
	    (a.random_len && memcmp(a.random, b.random, a.random_len) != 0))
		abort();
	nsm_response_clear(&a);
	nsm_response_clear(&b);
}

static void check_request(const uint8_t *data, size_t size)
{
	struct nsm_request a, b;
	size_t n = 0;
	if (nsm_request_decode(&a, data, size) != 0)
		return;
	int r = nsm_request_encode(buf, NSM_REQUEST_MAX, &n, &a);
	/* Attestation fields over 1024 bytes decode (the NSM answers InputTooLarge) but do not encode. */
	if (r == APP_ETOOBIG && a.type == NSM_REQ_ATTESTATION) {
		nsm_request_clear(&a);
		return;
	}
	if (r != 0 || nsm_request_decode(&b, buf, n) != 0)
		abort();
	if (a.type != b.type || a.index != b.index || a.range != b.range || a.data_len != b.data_len ||
	    (a.user_data == NULL) != (b.user_data == NULL) || a.user_data_len != b.user_data_len ||
	    (a.nonce == NULL) != (b.nonce == NULL) || (a.public_key == NULL) != (b.public_key == NULL))
		abort();
	nsm_request_clear(&a);
	nsm_request_clear(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_response(data, size);
	check_request(data, size);
	return 0;
}
