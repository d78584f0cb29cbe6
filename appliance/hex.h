/*
 * hex.h: lowercase hexadecimal, as used by Nostr (ids, pubkeys, sigs).
 */
#ifndef APPLIANCE_HEX_H
#define APPLIANCE_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/*
 * hex_encode: writes 2*len lowercase hex digits and a NUL to out.
 * Args: out must hold 2*len+1 bytes.
 */
void hex_encode(char *out, const uint8_t *in, size_t len);

/*
 * hex_decode: decodes exactly 2*outlen hex digits from in[0..inlen).
 * Returns 0; APP_EPARSE if inlen != 2*outlen or a character is not a
 * hex digit. Uppercase is accepted only when `strict` is 0; Nostr fields
 * (id, pubkey, sig, e/p tags in filters) are decoded with strict = 1.
 */
int hex_decode(uint8_t *out, size_t outlen, const char *in, size_t inlen, int strict) APP_WUR;

/*
 * hex_decode_alloc: decodes any even-length hex string into a new buffer
 * (*out, *outlen; free with free()). Returns 0, APP_EPARSE, APP_ETOOBIG when
 * the decoded size would exceed `max`, or APP_ENOMEM.
 */
int hex_decode_alloc(uint8_t **out, size_t *outlen, const char *in, size_t inlen, size_t max) APP_WUR;

/* hex_is_lower: 1 if in[0..len) is non-empty lowercase hex of even length. */
int hex_is_lower(const char *in, size_t len);

#endif
