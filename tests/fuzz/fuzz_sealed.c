/*
 * fuzz_sealed: opening sealed data (appliance/sealed.h) with a fixed key
 * on arbitrary bytes, whole and in two pieces: both must agree, and
 * anything that opens must re-seal and open to the same plaintext.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "appliance/sealed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[SEALED_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int null_sink(void *arg, const uint8_t *d, size_t n)
{
	(void)d;
	*(size_t *)arg += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *pt = NULL;
	size_t plen = 0, streamed = 0;
	int r1 = sealed_open_mem(&pt, &plen, data, size, key, NULL, 0, 1 << 20);
	struct sealed_dec *d = NULL;
	if (sealed_dec_new(&d, key, NULL, 0, null_sink, &streamed) != 0)
		abort();
	size_t cut = size / 3;
	int r2 = sealed_dec_update(d, data, cut);
	if (r2 == 0)
		r2 = sealed_dec_update(d, data + cut, size - cut);
	if (r2 == 0)
		r2 = sealed_dec_final(d);
	sealed_dec_free(d);
	if ((r1 == 0) != (r2 == 0))
		abort();
	if (r1 == 0) {
		if (streamed != plen)
			abort();
		uint8_t *ct = NULL, *back = NULL;
		size_t clen, blen;
		if (sealed_seal_mem(&ct, &clen, pt, plen, key, 64, NULL, 0) != 0 ||
		    sealed_open_mem(&back, &blen, ct, clen, key, NULL, 0, 1 << 20) != 0 || blen != plen ||
		    (plen && memcmp(back, pt, plen) != 0))
			abort();
		free(ct);
		free(back);
	}
	free(pt);
	return 0;
}
