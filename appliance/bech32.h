/*
 * bech32.h: BIP-173 bech32 (checksum constant 1; not bech32m), without
 * BIP-173's 90-character limit, which NIP-19 and BOLT-11 both lift. Callers
 * pass their own length cap instead.
 */
#ifndef APPLIANCE_BECH32_H
#define APPLIANCE_BECH32_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define BECH32_HRP_MAX 83 /* BIP-173: 1..83 characters */

/*
 * bech32_encode_words: "hrp" "1" data-words checksum, lowercase, into a new
 * NUL-terminated string (free with free()). words are 5-bit values.
 * Returns 0, APP_EINVAL (bad hrp or a word > 31), APP_ENOMEM.
 */
int bech32_encode_words(char **out, const char *hrp, const uint8_t *words, size_t nwords) APP_WUR;

/*
 * bech32_decode_words: splits s[0..len) at its last '1', checks characters,
 * case (all lower or all upper), and the checksum. Writes the lowercase hrp
 * (NUL-terminated) and the data words without the checksum into a new
 * buffer (*words, free with free()).
 * Returns 0; APP_ETOOBIG (len > max_len); APP_EPARSE (no separator, bad
 * character, mixed case, too short, hrp longer than BECH32_HRP_MAX);
 * APP_ECHECKSUM; APP_ENOMEM.
 */
int bech32_decode_words(char hrp[BECH32_HRP_MAX + 1], uint8_t **words, size_t *nwords, const char *s,
			size_t len, size_t max_len) APP_WUR;

/*
 * bech32_convert_bits: regroups in[] of `frombits`-bit values into
 * `tobits`-bit values (BIP-173 convertbits). out must hold
 * (inlen*frombits + tobits-1)/tobits values. With pad = 0, leftover bits
 * must be fewer than frombits and zero.
 * Returns 0 with *outlen set, or APP_EPARSE.
 */
int bech32_convert_bits(uint8_t *out, size_t *outlen, int tobits, const uint8_t *in, size_t inlen,
			int frombits, int pad) APP_WUR;

/* bech32_encode: bech32 of 8-bit data (converted to words, padded). */
int bech32_encode(char **out, const char *hrp, const uint8_t *data, size_t len) APP_WUR;

/*
 * bech32_decode: bech32 into 8-bit data (*data, free with free()); the
 * padding bits must be zero. Errors as bech32_decode_words.
 */
int bech32_decode(char hrp[BECH32_HRP_MAX + 1], uint8_t **data, size_t *len, const char *s, size_t slen,
		  size_t max_len) APP_WUR;

#endif
