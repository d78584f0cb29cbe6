/*
 * keys.h: secp256k1 keys for Nostr (BIP-340 x-only) via libsecp256k1.
 *
 * One randomized secp256k1 context per process (keys_ctx). Secret keys live
 * in an opaque struct keypair allocated with sodium_malloc (guarded pages,
 * mlocked, wiped and freed by keys_free).
 */
#ifndef APPLIANCE_KEYS_H
#define APPLIANCE_KEYS_H

#include <secp256k1.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct keypair;

/* Environment variable read by keys_load when no file is given. */
#define KEYS_ENV_SECRET "APPLIANCE_SEC"
/* Largest secret-key file accepted by keys_load (hex/nsec plus whitespace). */
#define KEYS_FILE_MAX 4096

/*
 * keys_ctx: the process-wide context, created and randomized (with 32 bytes
 * from libsodium's CSPRNG) on first use. Thread-safe; never freed.
 * Aborts (fatal) if libsodium cannot initialise.
 */
const secp256k1_context *keys_ctx(void);

/* keys_generate: a new random secret key. Returns 0 or APP_ENOMEM. */
int keys_generate(struct keypair **out) APP_WUR;

/*
 * keys_from_secret: a keypair from a 32-byte secret.
 * Returns 0; APP_EBADKEY if sec is 0 or >= the curve order; APP_ENOMEM.
 */
int keys_from_secret(struct keypair **out, const uint8_t sec[32]) APP_WUR;

/*
 * keys_parse_secret: a keypair from text: 64 hex digits or an NIP-19 nsec,
 * surrounding whitespace ignored. Returns 0, APP_EPARSE (not hex/nsec),
 * APP_EBADKEY, APP_ENOMEM. The text is not copied; the caller wipes it.
 */
int keys_parse_secret(struct keypair **out, const char *text, size_t len) APP_WUR;

/*
 * keys_load: the secret from `path` (a file holding hex or nsec) or, when
 * path is NULL, from the environment variable APPLIANCE_SEC.
 * Returns 0; APP_ENOENT (no file / variable unset); APP_EIO; APP_ETOOBIG
 * (file over KEYS_FILE_MAX); APP_EPARSE; APP_EBADKEY; APP_ENOMEM.
 */
int keys_load(struct keypair **out, const char *path) APP_WUR;

/* keys_pubkey: the 32-byte x-only public key (BIP-340). */
void keys_pubkey(const struct keypair *kp, uint8_t pub[32]);

/* keys_secret: copies the 32-byte secret into sec (caller wipes it). */
void keys_secret(const struct keypair *kp, uint8_t sec[32]);

/* keys_free: wipes and frees; NULL is a no-op. */
void keys_free(struct keypair *kp);

/*
 * keys_sign: BIP-340 Schnorr signature over a 32-byte message (for Nostr:
 * the event id itself) with fresh auxiliary randomness.
 * Returns 0 or APP_EINTERNAL. The signature is verified before returning.
 */
int keys_sign(const struct keypair *kp, uint8_t sig[64], const uint8_t msg32[32]) APP_WUR;

/*
 * keys_sign_aux: as keys_sign with caller-chosen auxiliary randomness
 * (BIP-340 test vectors; never use fixed aux in production).
 */
int keys_sign_aux(const struct keypair *kp, uint8_t sig[64], const uint8_t *msg, size_t msglen,
		  const uint8_t aux32[32]) APP_WUR;

/*
 * keys_verify: BIP-340 verification of sig over msg[0..msglen) under the
 * x-only pubkey. Returns 0; APP_EBADKEY if pub is not a valid x coordinate;
 * APP_EBADSIG if the signature does not verify.
 */
int keys_verify(const uint8_t pub[32], const uint8_t sig[64], const uint8_t *msg, size_t msglen) APP_WUR;

/*
 * keys_pubkey_valid: 0 if pub is a valid BIP-340 x-only key, else APP_EBADKEY.
 */
int keys_pubkey_valid(const uint8_t pub[32]) APP_WUR;

/*
 * keys_ecdh_x: the unhashed x coordinate of sec·P where P is the even-y
 * point with x = pub (NIP-04 and NIP-44 shared secret).
 * Returns 0; APP_EBADKEY if pub is not on the curve.
 */
int keys_ecdh_x(const struct keypair *kp, uint8_t shared_x[32], const uint8_t pub[32]) APP_WUR;

/* keys_random: fills buf with CSPRNG bytes (libsodium randombytes). */
void keys_random(void *buf, size_t len);

#endif
