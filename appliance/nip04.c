#include "nip04.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "keys.h"

static int aes_cbc(uint8_t *out, int *outlen, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in,
		   size_t inlen, int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return APP_ENOMEM;
	int r = APP_EINTERNAL, n1 = 0, n2 = 0;
	if (inlen > INT32_MAX - 32)
		goto out;
	if (EVP_CipherInit_ex(c, EVP_aes_256_cbc(), NULL, key, iv, enc) != 1)
		goto out;
	if (EVP_CipherUpdate(c, out, &n1, in, (int)inlen) != 1)
		goto out;
	if (EVP_CipherFinal_ex(c, out + n1, &n2) != 1) {
		r = enc ? APP_EINTERNAL : APP_EBADPAD;
		goto out;
	}
	*outlen = n1 + n2;
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return r;
}

int nip04_encrypt(char **out, const struct keypair *kp, const uint8_t pub[32], const uint8_t *pt, size_t len,
		  const uint8_t *iv_in)
{
	*out = NULL;
	if (len > NIP04_MAX_PLAINTEXT)
		return APP_ERANGE;
	uint8_t key[32], iv[16];
	int r = keys_ecdh_x(kp, key, pub);
	if (r)
		return r;
	if (iv_in)
		memcpy(iv, iv_in, 16);
	else
		keys_random(iv, 16);
	uint8_t *ct = malloc(len + 16);
	char *s = NULL;
	int ctlen = 0;
	r = APP_ENOMEM;
	if (!ct)
		goto out;
	if ((r = aes_cbc(ct, &ctlen, key, iv, pt, len, 1)) != 0)
		goto out;
	size_t a = b64_encoded_len((size_t)ctlen), b = b64_encoded_len(16);
	s = malloc(a + 4 + b + 1);
	r = APP_ENOMEM;
	if (!s)
		goto out;
	if (b64_encode(s, a + 1, ct, (size_t)ctlen) || b64_encode(s + a + 4, b + 1, iv, 16)) {
		r = APP_EINTERNAL;
		goto out;
	}
	memcpy(s + a, "?iv=", 4);
	*out = s;
	s = NULL;
	r = 0;
out:
	sodium_memzero(key, sizeof key);
	free(ct);
	free(s);
	return r;
}

int nip04_decrypt(uint8_t **out, size_t *outlen, const struct keypair *kp, const uint8_t pub[32],
		  const char *content, size_t len)
{
	*out = NULL;
	*outlen = 0;
	if (len > NIP04_MAX_CONTENT)
		return APP_ETOOBIG;
	const char *sep = memmem(content, len, "?iv=", 4);
	if (!sep)
		return APP_EPARSE;
	size_t ctb64 = (size_t)(sep - content), ivb64 = len - ctb64 - 4;
	uint8_t iv[18], key[32];
	size_t ivlen;
	if (b64_decode(iv, sizeof iv, &ivlen, sep + 4, ivb64) != 0 || ivlen != 16)
		return APP_EPARSE;
	uint8_t *ct;
	size_t ctlen;
	int r = b64_decode_alloc(&ct, &ctlen, content, ctb64, NIP04_MAX_CONTENT);
	if (r)
		return r == APP_ENOMEM ? r : APP_EPARSE;
	uint8_t *pt = NULL;
	int ptlen = 0;
	if (ctlen == 0 || ctlen % 16 != 0) {
		r = APP_EPARSE;
		goto out;
	}
	if ((r = keys_ecdh_x(kp, key, pub)) != 0)
		goto out;
	pt = malloc(ctlen + 1);
	if (!pt) {
		r = APP_ENOMEM;
		goto out;
	}
	if ((r = aes_cbc(pt, &ptlen, key, iv, ct, ctlen, 0)) != 0)
		goto out;
	pt[ptlen] = 0;
	*out = pt;
	*outlen = (size_t)ptlen;
	pt = NULL;
out:
	sodium_memzero(key, sizeof key);
	if (pt) {
		sodium_memzero(pt, ctlen + 1);
		free(pt);
	}
	free(ct);
	return r;
}
