#include "nip44.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "hash.h"
#include "keys.h"

static const uint8_t salt[8] = {'n', 'i', 'p', '4', '4', '-', 'v', '2'};

int nip44_conversation_key(uint8_t ck[32], const struct keypair *kp, const uint8_t pub[32])
{
	uint8_t shared[32];
	int r = keys_ecdh_x(kp, shared, pub);
	if (r == 0)
		hkdf_sha256_extract(ck, salt, sizeof salt, shared, 32);
	sodium_memzero(shared, sizeof shared);
	return r;
}

void nip44_message_keys(uint8_t chacha_key[32], uint8_t chacha_nonce[12], uint8_t hmac_key[32],
			const uint8_t ck[32], const uint8_t nonce[32])
{
	uint8_t k[76];
	/* 76 <= 255*32: hkdf_sha256_expand cannot fail here. */
	if (hkdf_sha256_expand(k, sizeof k, ck, nonce, 32) != 0)
		abort();
	memcpy(chacha_key, k, 32);
	memcpy(chacha_nonce, k + 32, 12);
	memcpy(hmac_key, k + 44, 32);
	sodium_memzero(k, sizeof k);
}

size_t nip44_calc_padded_len(size_t len)
{
	if (len <= 32)
		return 32;
	size_t np = 1;
	while (np < len) /* next power of two >= len, i.e. 1 << (floor(log2(len-1)) + 1) */
		np <<= 1;
	size_t chunk = np <= 256 ? 32 : np / 8;
	return chunk * ((len - 1) / chunk + 1);
}

static void mac_of(uint8_t mac[32], const uint8_t hmac_key[32], const uint8_t nonce[32], const uint8_t *ct,
		   size_t ctlen)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, hmac_key, 32);
	crypto_auth_hmacsha256_update(&st, nonce, 32);
	crypto_auth_hmacsha256_update(&st, ct, ctlen);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof st);
}

int nip44_encrypt(char **out, size_t *outlen, const uint8_t ck[32], const uint8_t *pt, size_t len,
		  const uint8_t *nonce_in)
{
	*out = NULL;
	if (outlen)
		*outlen = 0;
	if (len < NIP44_MIN_PLAINTEXT || len > NIP44_MAX_PLAINTEXT)
		return APP_ERANGE;
	size_t padded = nip44_calc_padded_len(len);
	size_t total = 1 + 32 + 2 + padded + 32;
	uint8_t *raw = malloc(total);
	if (!raw)
		return APP_ENOMEM;
	uint8_t nonce[32], key[32], cnonce[12], hkey[32];
	if (nonce_in)
		memcpy(nonce, nonce_in, 32);
	else
		keys_random(nonce, 32);
	nip44_message_keys(key, cnonce, hkey, ck, nonce);
	raw[0] = 2;
	memcpy(raw + 1, nonce, 32);
	uint8_t *ct = raw + 33;
	ct[0] = (uint8_t)(len >> 8);
	ct[1] = (uint8_t)len;
	memcpy(ct + 2, pt, len);
	memset(ct + 2 + len, 0, padded - len);
	crypto_stream_chacha20_ietf_xor_ic(ct, ct, 2 + padded, cnonce, 0, key);
	mac_of(ct + 2 + padded, hkey, nonce, ct, 2 + padded);
	sodium_memzero(key, sizeof key);
	sodium_memzero(hkey, sizeof hkey);
	size_t n = b64_encoded_len(total);
	char *s = malloc(n + 1);
	int r = APP_ENOMEM;
	if (s && b64_encode(s, n + 1, raw, total) == 0) {
		*out = s;
		if (outlen)
			*outlen = n;
		s = NULL;
		r = 0;
	}
	free(s);
	free(raw);
	return r;
}

int nip44_decrypt(uint8_t **out, size_t *outlen, const uint8_t ck[32], const char *payload, size_t len)
{
	*out = NULL;
	*outlen = 0;
	if (len > 0 && payload[0] == '#')
		return APP_EVERSION;
	if (len > NIP44_MAX_PAYLOAD)
		return APP_ETOOBIG;
	if (len < NIP44_MIN_PAYLOAD)
		return APP_EPARSE;
	uint8_t *raw;
	size_t n;
	int r = b64_decode_alloc(&raw, &n, payload, len, NIP44_MAX_PAYLOAD);
	if (r)
		return r == APP_ENOMEM ? r : APP_EPARSE;
	uint8_t key[32], cnonce[12], hkey[32], mac[32];
	uint8_t *pt = NULL;
	r = APP_EPARSE;
	if (n < 99 || n > 1 + 32 + 2 + 65536 + 32)
		goto out;
	if (raw[0] != 2) {
		r = APP_EVERSION;
		goto out;
	}
	const uint8_t *nonce = raw + 1, *ct = raw + 33;
	size_t ctlen = n - 33 - 32;
	nip44_message_keys(key, cnonce, hkey, ck, nonce);
	mac_of(mac, hkey, nonce, ct, ctlen);
	if (crypto_verify_32(mac, raw + n - 32) != 0) {
		r = APP_EBADMAC;
		goto out;
	}
	pt = malloc(ctlen + 1);
	if (!pt) {
		r = APP_ENOMEM;
		goto out;
	}
	crypto_stream_chacha20_ietf_xor_ic(pt, ct, ctlen, cnonce, 0, key);
	size_t plen = (size_t)pt[0] << 8 | pt[1];
	r = APP_EBADPAD;
	if (plen == 0 || plen > ctlen - 2 || ctlen != 2 + nip44_calc_padded_len(plen))
		goto out;
	memmove(pt, pt + 2, plen);
	sodium_memzero(pt + plen, ctlen - plen);
	pt[plen] = 0;
	*out = pt;
	*outlen = plen;
	pt = NULL;
	r = 0;
out:
	if (pt) {
		sodium_memzero(pt, ctlen + 1);
		free(pt);
	}
	sodium_memzero(key, sizeof key);
	sodium_memzero(hkey, sizeof hkey);
	free(raw);
	return r;
}
