/*
 * fuzz_nip19: NIP-19 decode (bech32 + TLV) and bech32 word decoding;
 * whatever decodes must re-encode and decode to the same entity.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/bech32.h"
#include "appliance/nip19.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char hrp[BECH32_HRP_MAX + 1];
	uint8_t *words;
	size_t nwords;
	if (bech32_decode_words(hrp, &words, &nwords, s, size, 8192) == 0) {
		char *again;
		if (bech32_encode_words(&again, hrp, words, nwords) == 0) {
			if (strlen(again) != size || strncasecmp(again, s, size) != 0)
				abort();
			free(again);
		}
		free(words);
	}
	struct nip19 *v;
	if (nip19_decode(&v, s, size) == 0) {
		char *enc;
		if (nip19_encode(&enc, v) == 0) {
			struct nip19 *w;
			if (nip19_decode(&w, enc, strlen(enc)) != 0 || w->type != v->type ||
			    memcmp(w->key, v->key, 32) != 0 || w->nrelays != v->nrelays)
				abort();
			nip19_free(w);
			free(enc);
		}
		nip19_free(v);
	}
	return 0;
}
