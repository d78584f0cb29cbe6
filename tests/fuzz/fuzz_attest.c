/*
 * fuzz_attest: the attestation document parser (appliance/attest.h) and the
 * verifier behind it, on arbitrary bytes. Every input must be parsed or
 * refused cleanly; a parsed document must be self-consistent, describable
 * and verifiable (refused or not) without crashing; the text decoder
 * (raw/hex/base64) runs on the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct attest_verifier *verifier(void)
{
	static struct attest_verifier *v;
	if (!v && attest_verifier_new(&v) != 0)
		abort();
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_doc *d = NULL;
	struct attest_result res;
	int r = attest_doc_parse(&d, &res, data, size);
	if ((r == 0) != (d != NULL) || (r != 0 && (res.err != r || res.check == ATTEST_CHECK_NONE)))
		abort();
	if (d) {
		if ((d->pcr_mask & 7u) != 7u || d->cabundle_n == 0 || d->cabundle_n > ATTEST_CABUNDLE_MAX ||
		    d->certificate_len == 0 || d->certificate_len > ATTEST_CERT_MAX || !d->module_id[0] ||
		    d->public_key_len > ATTEST_FIELD_MAX || d->user_data_len > ATTEST_FIELD_MAX ||
		    d->nonce_len > ATTEST_FIELD_MAX)
			abort();
		struct attest_chain_info ci;
		if (attest_doc_chain_info(d, &ci) == 0 && ci.n != d->cabundle_n + 1)
			abort();
		struct attest_verify_opts o = {.time_mode = ATTEST_TIME_AS_OF_DOCUMENT};
		r = attest_verify(verifier(), &res, d, &o);
		if (r != res.err || (r == 0) != (res.check == ATTEST_CHECK_NONE))
			abort();
		attest_doc_free(d);
	}
	uint8_t *raw = NULL;
	size_t rl = 0;
	if (attest_decode_text(&raw, &rl, data, size) == 0) {
		if (rl > ATTEST_DOC_MAX)
			abort();
		if (attest_doc_parse(&d, NULL, raw, rl) == 0)
			attest_doc_free(d);
		free(raw);
	}
	return 0;
}
