/*
 * hash.h: SHA-256, SHA-384 (OpenSSL EVP: SHA-NI when present, ~5x libsodium's
 * portable code on large inputs), HMAC-SHA256 and HKDF-SHA256 (RFC 5869,
 * built on libsodium's HMAC because libsodium 1.0.18 has no HKDF).
 */
#ifndef APPLIANCE_HASH_H
#define APPLIANCE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SHA256_LEN 32
#define SHA384_LEN 48

/* hash_sha256: out = SHA-256(in[0..len)). Aborts only if OpenSSL is broken. */
void hash_sha256(uint8_t out[SHA256_LEN], const void *in, size_t len);

/* hash_sha384: out = SHA-384(in[0..len)). */
void hash_sha384(uint8_t out[SHA384_LEN], const void *in, size_t len);

/* Streaming SHA-256 for large or chunked inputs (datasets, models, blobs). */
struct hash_sha256_ctx;
/* hash_sha256_new: a fresh context, or NULL on ENOMEM. */
struct hash_sha256_ctx *hash_sha256_new(void);
/* hash_sha256_update: absorbs in[0..len). */
void hash_sha256_update(struct hash_sha256_ctx *c, const void *in, size_t len);
/* hash_sha256_final: writes the digest; the context may then only be freed. */
void hash_sha256_final(struct hash_sha256_ctx *c, uint8_t out[SHA256_LEN]);
/* hash_sha256_free: frees c; NULL is a no-op. */
void hash_sha256_free(struct hash_sha256_ctx *c);

/* hmac_sha256: out = HMAC-SHA256(key, msg) (RFC 2104). */
void hmac_sha256(uint8_t out[32], const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen);

/* hkdf_sha256_extract: prk = HMAC-SHA256(salt, ikm) (RFC 5869 §2.2). */
void hkdf_sha256_extract(uint8_t prk[32], const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen);

/*
 * hkdf_sha256_expand: out[0..outlen) = HKDF-Expand(prk, info, outlen)
 * (RFC 5869 §2.3). Returns 0, or APP_EINVAL if outlen > 255*32.
 */
int hkdf_sha256_expand(uint8_t *out, size_t outlen, const uint8_t prk[32], const uint8_t *info, size_t infolen) APP_WUR;

#endif
