/*
 * b64.h: standard base64 with padding (RFC 4648 §4), via libsodium.
 * Used by NIP-44 payloads, NIP-04 content and attestation events.
 */
#ifndef APPLIANCE_B64_H
#define APPLIANCE_B64_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* b64_encoded_len: characters (without NUL) needed to encode len bytes. */
size_t b64_encoded_len(size_t len);

/*
 * b64_encode: writes the padded base64 of in[0..len) and a NUL to out.
 * Returns 0, or APP_ETOOBIG if outcap < b64_encoded_len(len) + 1.
 */
int b64_encode(char *out, size_t outcap, const uint8_t *in, size_t len) APP_WUR;

/*
 * b64_decode: decodes padded standard base64 (no whitespace, no other
 * characters, nothing after the padding) into out[0..outcap).
 * Returns 0 with *outlen set; APP_EPARSE for malformed input; APP_ETOOBIG if
 * the result does not fit.
 */
int b64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t inlen) APP_WUR;

/*
 * b64_decode_alloc: as b64_decode into a new buffer of at most `max` bytes
 * (free with free()). Returns 0, APP_EPARSE, APP_ETOOBIG or APP_ENOMEM.
 */
int b64_decode_alloc(uint8_t **out, size_t *outlen, const char *in, size_t inlen, size_t max) APP_WUR;

/* b64_encode_alloc: a new NUL-terminated string (free with free()); NULL on ENOMEM. */
char *b64_encode_alloc(const uint8_t *in, size_t len);

#endif
