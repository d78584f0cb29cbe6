/*
 * fuzz_nip44: NIP-44 v2 payload decryption (and NIP-04 content) under a
 * fixed key. The first input byte selects NIP-44 or NIP-04. A payload made
 * by nip44_encrypt under the same key is also fed back for a round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/keys.h"
#include "appliance/nip04.h"
#include "appliance/nip44.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ck[32] = {0xc4, 0x1c, 0x77, 0x53, 0x56, 0xfd, 0x92, 0xea, 0xdc, 0x63, 0xff,
				       0x5a, 0x0d, 0xc1, 0xda, 0x21, 0x1b, 0x26, 0x8c, 0xbe, 0xa2, 0x23,
				       0x16, 0x76, 0x70, 0x95, 0xb2, 0x87, 0x1e, 0xa1, 0x41, 0x2d};
	if (size == 0)
		return 0;
	uint8_t *pt;
	size_t ptlen;
	if (data[0] & 1) {
		static struct keypair *kp;
		static uint8_t pub[32];
		if (!kp) {
			uint8_t sec[32] = {1};
			if (keys_from_secret(&kp, sec) != 0)
				abort();
			keys_pubkey(kp, pub);
		}
		if (nip04_decrypt(&pt, &ptlen, kp, pub, (const char *)data + 1, size - 1) == 0)
			free(pt);
		return 0;
	}
	if (nip44_decrypt(&pt, &ptlen, ck, (const char *)data + 1, size - 1) == 0)
		free(pt);
	/* Round trip of the input as plaintext. */
	if (size - 1 >= NIP44_MIN_PLAINTEXT && size - 1 <= NIP44_MAX_PLAINTEXT) {
		char *payload;
		size_t plen;
		if (nip44_encrypt(&payload, &plen, ck, data + 1, size - 1, NULL) != 0)
			abort();
		if (nip44_decrypt(&pt, &ptlen, ck, payload, plen) != 0 || ptlen != size - 1 ||
		    memcmp(pt, data + 1, ptlen) != 0)
			abort();
		free(pt);
		free(payload);
	}
	return 0;
}
