/*
 * sealed.h: the sealed-data format (DESIGN §5.4; PROTOCOL.md "Sealed data
 * format"): a 40-byte header followed by libsodium secretstream
 * (XChaCha20-Poly1305) chunks. Used for datasets at rest and in flight,
 * journal records and large results.
 *
 *   offset size  field
 *   0      6     magic "APSEAL"
 *   6      1     version = 1
 *   7      1     algorithm = 1 (crypto_secretstream_xchacha20poly1305)
 *   8      4     chunk size: plaintext bytes per chunk, u32 little-endian,
 *                SEALED_CHUNK_MIN..SEALED_CHUNK_MAX
 *   12     4     reserved, must be 0
 *   16     24    secretstream header (random nonce material)
 *   40     ...   chunks: each is crypto_secretstream_xchacha20poly1305_push
 *                of exactly `chunk size` plaintext bytes (MESSAGE tag), the
 *                last one of 0..chunk size bytes with the FINAL tag; every
 *                chunk is its plaintext length + 17 bytes.
 *
 * The additional data of every chunk is the 40 header bytes followed by the
 * caller's additional data (may be empty): the header is authenticated and a
 * blob sealed for one context (journal position, dataset) does not open in
 * another. A wrong key, a modified, truncated, reordered or extended
 * ciphertext is refused.
 *
 * Streaming: sealed_enc / sealed_dec take input in pieces of any size and
 * hand their output to a sink callback, so neither side holds a whole blob.
 * Plaintext given to the sink by sealed_dec is authenticated chunk by chunk,
 * but the stream is complete and untruncated only when sealed_dec_final()
 * returns 0: a consumer must discard what it received otherwise.
 *
 * Keys are SEALED_KEY_LEN (32) bytes. Stream state (which holds the key) is
 * kept in sodium_malloc memory and wiped on free.
 */
#ifndef APPLIANCE_SEALED_H
#define APPLIANCE_SEALED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

#define SEALED_KEY_LEN 32
#define SEALED_HEADER_LEN 40
#define SEALED_MAGIC "APSEAL"
#define SEALED_MAGIC_LEN 6
#define SEALED_VERSION 1
#define SEALED_ALG_XCHACHA20POLY1305 1
#define SEALED_ABYTES 17                  /* per-chunk overhead */
#define SEALED_CHUNK_MIN 64               /* bytes of plaintext per chunk */
#define SEALED_CHUNK_DEFAULT (64 * 1024)
#define SEALED_CHUNK_MAX (16 * 1024 * 1024)
#define SEALED_AD_MAX 4096 /* caller additional data, bytes */

/*
 * sealed_sink_fn: receives output bytes (header and ciphertext from
 * sealed_enc, plaintext from sealed_dec). Returns 0, or a negative APP_E*
 * code that aborts the operation and is returned to the caller.
 */
typedef int (*sealed_sink_fn)(void *arg, const uint8_t *data, size_t len);

struct sealed_enc;
struct sealed_dec;

/*
 * sealed_key_generate: fills key with 32 random bytes (libsodium
 * randombytes). Returns 0, or APP_EINTERNAL if libsodium cannot initialize.
 */
int sealed_key_generate(uint8_t key[SEALED_KEY_LEN]) APP_WUR;

/*
 * sealed_enc_new: starts sealing; writes the 40-byte header to the sink.
 * Returns 0; APP_EINVAL (NULL key or sink, chunk_size outside
 * SEALED_CHUNK_MIN..SEALED_CHUNK_MAX, ad longer than SEALED_AD_MAX);
 * APP_ENOMEM; APP_EINTERNAL; or the sink's error.
 * Args: chunk_size in plaintext bytes (0 = SEALED_CHUNK_DEFAULT); ad may be
 * NULL when adlen is 0 and is copied. *out must be freed with sealed_enc_free.
 */
int sealed_enc_new(struct sealed_enc **out, const uint8_t key[SEALED_KEY_LEN], size_t chunk_size,
		   const uint8_t *ad, size_t adlen, sealed_sink_fn sink, void *arg) APP_WUR;

/*
 * sealed_enc_update: seals in[0..len) (any length; chunks are emitted to
 * the sink as they fill). Returns 0, APP_ESTATE after final or an earlier
 * error, or the sink's error.
 */
int sealed_enc_update(struct sealed_enc *e, const uint8_t *in, size_t len) APP_WUR;

/*
 * sealed_enc_final: emits the last (FINAL-tagged) chunk. Returns 0,
 * APP_ESTATE if called twice or after an error, or the sink's error.
 */
int sealed_enc_final(struct sealed_enc *e) APP_WUR;

/* sealed_enc_free: wipes and frees e; NULL is a no-op. */
void sealed_enc_free(struct sealed_enc *e);

/*
 * sealed_dec_new: starts opening a sealed stream with `key` and the same
 * additional data that sealed it. Plaintext goes to the sink.
 * Returns 0; APP_EINVAL (NULL key or sink, ad too long); APP_ENOMEM;
 * APP_EINTERNAL.
 */
int sealed_dec_new(struct sealed_dec **out, const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad,
		   size_t adlen, sealed_sink_fn sink, void *arg) APP_WUR;

/*
 * sealed_dec_update: consumes in[0..len) (any length).
 * Returns 0; APP_EPARSE (bad magic, reserved bytes not 0, data after the
 * FINAL chunk); APP_EVERSION (unknown version or algorithm); APP_ERANGE
 * (chunk size outside the allowed range); APP_EBADMAC (wrong key or
 * additional data, modified or reordered chunk); APP_ESTATE after an
 * earlier error; or the sink's error. Errors are sticky.
 */
int sealed_dec_update(struct sealed_dec *d, const uint8_t *in, size_t len) APP_WUR;

/*
 * sealed_dec_final: ends the stream. Returns 0 when a FINAL chunk was
 * authenticated and nothing followed it; APP_EPARSE if the stream is
 * truncated (header incomplete, partial chunk, no FINAL chunk); the sticky
 * error of an earlier update otherwise; APP_EBADMAC for a bad last chunk.
 */
int sealed_dec_final(struct sealed_dec *d) APP_WUR;

/* sealed_dec_free: wipes and frees d; NULL is a no-op. */
void sealed_dec_free(struct sealed_dec *d);

/*
 * sealed_is_sealed: 1 if buf[0..len) starts with the sealed magic
 * (len >= SEALED_MAGIC_LEN), else 0. For format detection only.
 */
int sealed_is_sealed(const uint8_t *buf, size_t len);

/*
 * sealed_len: the exact size of the sealed form of `plain_len` bytes with
 * `chunk_size` (0 = default). Returns 0 and sets *out, or APP_EINVAL for a
 * bad chunk size, APP_ETOOBIG on size_t overflow.
 */
int sealed_len(size_t *out, size_t plain_len, size_t chunk_size) APP_WUR;

/*
 * sealed_seal_mem: seals in[0..inlen) into a new buffer (*out, *outlen;
 * free with free()). Returns 0 or the errors of sealed_enc_new, APP_ETOOBIG
 * on size overflow, APP_ENOMEM.
 */
int sealed_seal_mem(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen,
		    const uint8_t key[SEALED_KEY_LEN], size_t chunk_size, const uint8_t *ad,
		    size_t adlen) APP_WUR;

/*
 * sealed_open_mem: opens a sealed blob into a new buffer (*out, *outlen;
 * free with free(); plaintext of 0 bytes gives a non-NULL buffer). Nothing
 * is returned unless the whole blob authenticates. Returns 0, the errors of
 * sealed_dec_update/final, APP_ETOOBIG if the plaintext exceeds `max`
 * bytes, APP_ENOMEM.
 */
int sealed_open_mem(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen,
		    const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad, size_t adlen,
		    size_t max) APP_WUR;

/*
 * sealed_seal_file: seals everything read from `in` until EOF and writes
 * the sealed stream to `out` (not flushed or closed). Returns 0,
 * APP_EIO (read or write error) or the errors of sealed_enc_*.
 */
int sealed_seal_file(FILE *out, FILE *in, const uint8_t key[SEALED_KEY_LEN], size_t chunk_size,
		     const uint8_t *ad, size_t adlen) APP_WUR;

/*
 * sealed_open_file: opens the sealed stream read from `in` until EOF and
 * writes plaintext to `out` as chunks authenticate. Returns 0, APP_EIO, or
 * the errors of sealed_dec_*. On error `out` holds a partial plaintext the
 * caller must discard (write to a temporary file and rename on success).
 */
int sealed_open_file(FILE *out, FILE *in, const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad,
		     size_t adlen) APP_WUR;

#endif
