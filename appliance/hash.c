#include "hash.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static EVP_MD *md_sha256, *md_sha384;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_init(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
	if (!md_sha256 || !md_sha384)
		fatal("event=hash_init error=openssl_fetch_failed");
}

static void digest(const EVP_MD *md, uint8_t *out, const void *in, size_t len)
{
	if (EVP_Digest(in, len, out, NULL, md, NULL) != 1)
		fatal("event=hash error=EVP_Digest_failed");
}

void hash_sha256(uint8_t out[SHA256_LEN], const void *in, size_t len)
{
	pthread_once(&md_once, md_init);
	digest(md_sha256, out, in, len);
}

void hash_sha384(uint8_t out[SHA384_LEN], const void *in, size_t len)
{
	pthread_once(&md_once, md_init);
	digest(md_sha384, out, in, len);
}

struct hash_sha256_ctx {
	EVP_MD_CTX *md;
};

struct hash_sha256_ctx *hash_sha256_new(void)
{
	pthread_once(&md_once, md_init);
	struct hash_sha256_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, md_sha256, NULL) != 1) {
		EVP_MD_CTX_free(c->md);
		free(c);
		return NULL;
	}
	return c;
}

void hash_sha256_update(struct hash_sha256_ctx *c, const void *in, size_t len)
{
	if (EVP_DigestUpdate(c->md, in, len) != 1)
		fatal("event=hash error=EVP_DigestUpdate_failed");
}

void hash_sha256_final(struct hash_sha256_ctx *c, uint8_t out[SHA256_LEN])
{
	if (EVP_DigestFinal_ex(c->md, out, NULL) != 1)
		fatal("event=hash error=EVP_DigestFinal_failed");
}

void hash_sha256_free(struct hash_sha256_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

void hmac_sha256(uint8_t out[32], const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, msg, msglen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

void hkdf_sha256_extract(uint8_t prk[32], const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen)
{
	hmac_sha256(prk, salt, saltlen, ikm, ikmlen);
}

int hkdf_sha256_expand(uint8_t *out, size_t outlen, const uint8_t prk[32], const uint8_t *info, size_t infolen)
{
	if (outlen > 255 * 32)
		return APP_EINVAL;
	uint8_t t[32];
	size_t tlen = 0, done = 0;
	uint8_t counter = 1;
	while (done < outlen) {
		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, prk, 32);
		crypto_auth_hmacsha256_update(&st, t, tlen);
		crypto_auth_hmacsha256_update(&st, info, infolen);
		crypto_auth_hmacsha256_update(&st, &counter, 1);
		crypto_auth_hmacsha256_final(&st, t);
		sodium_memzero(&st, sizeof st);
		tlen = 32;
		size_t n = outlen - done < 32 ? outlen - done : 32;
		memcpy(out + done, t, n);
		done += n;
		counter++;
	}
	sodium_memzero(t, sizeof t);
	return 0;
}
