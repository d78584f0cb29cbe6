/*
 * nip04.h: NIP-04 (legacy) encrypted content, for NIP-47 wallets that lack
 * nip44_v2: key = unhashed ECDH x coordinate, AES-256-CBC with PKCS#7
 * padding (OpenSSL), content = base64(ciphertext) "?iv=" base64(iv16).
 * NIP-04 has no MAC: use NIP-44 for everything else.
 */
#ifndef APPLIANCE_NIP04_H
#define APPLIANCE_NIP04_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct keypair;

#define NIP04_MAX_PLAINTEXT 65536
#define NIP04_MAX_CONTENT 87600 /* characters of the content we accept */

/*
 * nip04_encrypt: content for pub from kp (new string, free with free()).
 * iv: 16 bytes or NULL for a random one (always NULL outside tests).
 * Returns 0, APP_ERANGE (len > NIP04_MAX_PLAINTEXT), APP_EBADKEY, APP_ENOMEM,
 * APP_EINTERNAL (OpenSSL failure).
 */
int nip04_encrypt(char **out, const struct keypair *kp, const uint8_t pub[32], const uint8_t *pt, size_t len,
		  const uint8_t *iv) APP_WUR;

/*
 * nip04_decrypt: the plaintext (new buffer, NUL-terminated, not counted).
 * Returns 0; APP_ETOOBIG; APP_EPARSE (no "?iv=", bad base64, iv not 16
 * bytes, ciphertext not a multiple of 16); APP_EBADPAD (wrong key or
 * tampered: PKCS#7 check failed); APP_EBADKEY; APP_ENOMEM.
 */
int nip04_decrypt(uint8_t **out, size_t *outlen, const struct keypair *kp, const uint8_t pub[32],
		  const char *content, size_t len) APP_WUR;

#endif
