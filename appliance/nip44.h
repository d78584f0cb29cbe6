/*
 * nip44.h: NIP-44 v2 encrypted payloads (reference nostr-protocol.md §3).
 *
 * conversation_key = HKDF-Extract(salt "nip44-v2", ECDH shared x);
 * per message: HKDF-Expand(conversation_key, nonce, 76) -> ChaCha20 key,
 * ChaCha20 nonce, HMAC key; payload = base64(0x02 ‖ nonce ‖ ciphertext ‖
 * HMAC-SHA256(hmac_key, nonce ‖ ciphertext)). Plaintext 1..65535 bytes (the
 * extended u32 length prefix is not accepted, matching the official vector
 * file and deployed clients). The MAC is checked in constant time before
 * anything is decrypted.
 */
#ifndef APPLIANCE_NIP44_H
#define APPLIANCE_NIP44_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct keypair;

#define NIP44_MIN_PLAINTEXT 1
#define NIP44_MAX_PLAINTEXT 65535
#define NIP44_MIN_PAYLOAD 132   /* base64 characters */
#define NIP44_MAX_PAYLOAD 87472 /* base64 characters of a 65535-byte plaintext */

/*
 * nip44_conversation_key: the 32-byte key shared by kp and pub (symmetric).
 * Returns 0 or APP_EBADKEY (pub not a valid x coordinate). The caller
 * wipes ck after use.
 */
int nip44_conversation_key(uint8_t ck[32], const struct keypair *kp, const uint8_t pub[32]) APP_WUR;

/*
 * nip44_message_keys: the per-message keys derived from ck and a nonce
 * (exposed for the official test vectors).
 */
void nip44_message_keys(uint8_t chacha_key[32], uint8_t chacha_nonce[12], uint8_t hmac_key[32],
			const uint8_t ck[32], const uint8_t nonce[32]);

/* nip44_calc_padded_len: the padded length of a plaintext of len bytes (len >= 1). */
size_t nip44_calc_padded_len(size_t len);

/*
 * nip44_encrypt: the base64 payload (new NUL-terminated string, free with
 * free()) of pt[0..len). nonce: 32 bytes, or NULL for a fresh random one
 * (always NULL outside tests). Returns 0; APP_ERANGE (len outside
 * 1..65535); APP_ENOMEM.
 */
int nip44_encrypt(char **out, size_t *outlen, const uint8_t ck[32], const uint8_t *pt, size_t len,
		  const uint8_t *nonce) APP_WUR;

/*
 * nip44_decrypt: the plaintext of a payload (new buffer with a trailing NUL
 * not counted in *outlen, free with free(); wipe first if sensitive).
 * Returns 0; APP_EVERSION (payload starts with '#' or version != 2);
 * APP_ETOOBIG / APP_EPARSE (length outside 132..87472, bad base64, decoded
 * shorter than 99 bytes); APP_EBADMAC; APP_EBADPAD (length prefix 0,
 * inconsistent with the padded size); APP_ENOMEM.
 */
int nip44_decrypt(uint8_t **out, size_t *outlen, const uint8_t ck[32], const char *payload, size_t len) APP_WUR;

#endif
