/*
 * crypto_test: BIP-340 (all 19 official vectors, sign and verify), NIP-44 v2
 * (every group of the official vector file), NIP-04, HKDF (RFC 5869), keys.
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/b64.h"
#include "appliance/fileio.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip04.h"
#include "appliance/nip44.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

static const char *item_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_bip340_vectors(void)
{
	char *csv = tu_read_file("tests/vectors/nostr/bip340-test-vectors.csv", NULL);
	CHECK(csv != NULL);
	if (!csv)
		return;
	int count = 0;
	char *save = NULL;
	strtok_r(csv, "\n", &save); /* header */
	for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[8] = {0};
		int nf = 0;
		char *p = line;
		while (nf < 8) {
			f[nf++] = p;
			char *c = strchr(p, ',');
			if (!c)
				break;
			*c = 0;
			p = c + 1;
		}
		CHECK(nf >= 7);
		size_t publen, msglen, siglen;
		uint8_t *pub = tu_unhex(f[2], &publen), *msg = tu_unhex(f[4], &msglen), *sig = tu_unhex(f[5], &siglen);
		int expect = strncmp(f[6], "TRUE", 4) == 0;
		CHECK(pub && publen == 32 && sig && siglen == 64 && msg);
		if (f[1][0]) { /* a signing vector: reproduce the signature exactly */
			uint8_t sec[32], aux[32], out[64], pub2[32];
			CHECK(tu_unhex32(sec, f[1]) == 0 && tu_unhex32(aux, f[3]) == 0);
			struct keypair *kp;
			CHECK_OK(keys_from_secret(&kp, sec));
			keys_pubkey(kp, pub2);
			CHECKM(memcmp(pub2, pub, 32) == 0, "vector %s: public key", f[0]);
			CHECK_OK(keys_sign_aux(kp, out, msg, msglen, aux));
			CHECKM(memcmp(out, sig, 64) == 0, "vector %s: signature", f[0]);
			keys_free(kp);
		}
		int r = keys_verify(pub, sig, msg, msglen);
		CHECKM((r == 0) == expect, "vector %s: verify gave %d, expected %s", f[0], r, expect ? "TRUE" : "FALSE");
		free(pub);
		free(msg);
		free(sig);
		count++;
	}
	CHECKM(count == 19, "%d BIP-340 vectors", count);
	free(csv);
}

static void test_keys(void)
{
	uint8_t zero[32] = {0}, ff[32];
	memset(ff, 0xff, 32);
	struct keypair *kp = NULL;
	CHECK_ERR(keys_from_secret(&kp, zero), APP_EBADKEY);
	CHECK_ERR(keys_from_secret(&kp, ff), APP_EBADKEY);
	CHECK(kp == NULL);
	CHECK_ERR(keys_parse_secret(&kp, "xyz", 3), APP_EPARSE);
	const char *nsec = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5";
	CHECK_OK(keys_parse_secret(&kp, nsec, strlen(nsec)));
	uint8_t sec[32], want[32];
	keys_secret(kp, sec);
	tu_unhex32(want, "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa");
	CHECK_MEM(sec, want, 32);
	keys_free(kp);
	const char *hexsec = "  67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa\n";
	CHECK_OK(keys_parse_secret(&kp, hexsec, strlen(hexsec)));
	keys_free(kp);
	/* sign/verify round trip with fresh randomness */
	CHECK_OK(keys_generate(&kp));
	uint8_t msg[32], sig[64], pub[32];
	keys_random(msg, 32);
	CHECK_OK(keys_sign(kp, sig, msg));
	keys_pubkey(kp, pub);
	CHECK_OK(keys_verify(pub, sig, msg, 32));
	msg[0] ^= 1;
	CHECK_ERR(keys_verify(pub, sig, msg, 32), APP_EBADSIG);
	keys_free(kp);
	keys_free(NULL);
}

static void test_hkdf_rfc5869(void)
{
	/* RFC 5869 test case 1 */
	uint8_t ikm[22], prk[32], okm[42];
	memset(ikm, 0x0b, sizeof ikm);
	size_t sl, il, pl, ol;
	uint8_t *salt = tu_unhex("000102030405060708090a0b0c", &sl);
	uint8_t *info = tu_unhex("f0f1f2f3f4f5f6f7f8f9", &il);
	uint8_t *wprk = tu_unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", &pl);
	uint8_t *wokm = tu_unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", &ol);
	hkdf_sha256_extract(prk, salt, sl, ikm, sizeof ikm);
	CHECK_MEM(prk, wprk, 32);
	CHECK_OK(hkdf_sha256_expand(okm, sizeof okm, prk, info, il));
	CHECK_MEM(okm, wokm, 42);
	CHECK_ERR(hkdf_sha256_expand(okm, 255 * 32 + 1, prk, info, il), APP_EINVAL);
	free(salt);
	free(info);
	free(wprk);
	free(wokm);
	uint8_t d[32], want[32];
	hash_sha256(d, "abc", 3);
	tu_unhex32(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK_MEM(d, want, 32);
	struct hash_sha256_ctx *c = hash_sha256_new();
	CHECK(c != NULL);
	hash_sha256_update(c, "a", 1);
	hash_sha256_update(c, "bc", 2);
	hash_sha256_final(c, d);
	hash_sha256_free(c);
	CHECK_MEM(d, want, 32);
}

static const cJSON *nip44_group(const cJSON *root, const char *validity, const char *name)
{
	const cJSON *v2 = cJSON_GetObjectItemCaseSensitive(root, "v2");
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v2, validity), name);
}

static void test_nip44_conversation_keys(const cJSON *root)
{
	const cJSON *g = nip44_group(root, "valid", "get_conversation_key"), *v;
	int n = 0;
	cJSON_ArrayForEach(v, g)
	{
		uint8_t sec[32], pub[32], want[32], ck[32];
		CHECK(tu_unhex32(sec, item_str(v, "sec1")) == 0 && tu_unhex32(pub, item_str(v, "pub2")) == 0 &&
		      tu_unhex32(want, item_str(v, "conversation_key")) == 0);
		struct keypair *kp;
		CHECK_OK(keys_from_secret(&kp, sec));
		CHECK_OK(nip44_conversation_key(ck, kp, pub));
		CHECKM(memcmp(ck, want, 32) == 0, "conversation key %d", n);
		keys_free(kp);
		n++;
	}
	CHECK(n == 35);
	g = nip44_group(root, "invalid", "get_conversation_key");
	n = 0;
	cJSON_ArrayForEach(v, g)
	{
		uint8_t sec[32], pub[32], ck[32];
		CHECK(tu_unhex32(sec, item_str(v, "sec1")) == 0 && tu_unhex32(pub, item_str(v, "pub2")) == 0);
		struct keypair *kp = NULL;
		int r = keys_from_secret(&kp, sec);
		if (r == 0)
			r = nip44_conversation_key(ck, kp, pub);
		CHECKM(r == APP_EBADKEY, "invalid conversation key %d (%s) gave %d", n, item_str(v, "note"), r);
		keys_free(kp);
		n++;
	}
	CHECK(n == 8);
}

static void test_nip44_message_keys_and_padding(const cJSON *root)
{
	const cJSON *g = nip44_group(root, "valid", "get_message_keys");
	uint8_t ck[32];
	CHECK(tu_unhex32(ck, item_str(g, "conversation_key")) == 0);
	const cJSON *v;
	int n = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(g, "keys"))
	{
		uint8_t nonce[32], key[32], cn[12], hk[32], wkey[32], whk[32];
		size_t cnl;
		CHECK(tu_unhex32(nonce, item_str(v, "nonce")) == 0);
		CHECK(tu_unhex32(wkey, item_str(v, "chacha_key")) == 0 && tu_unhex32(whk, item_str(v, "hmac_key")) == 0);
		uint8_t *wcn = tu_unhex(item_str(v, "chacha_nonce"), &cnl);
		nip44_message_keys(key, cn, hk, ck, nonce);
		CHECK(memcmp(key, wkey, 32) == 0 && memcmp(hk, whk, 32) == 0 && wcn && cnl == 12 &&
		      memcmp(cn, wcn, 12) == 0);
		free(wcn);
		n++;
	}
	CHECK(n == 32);
	n = 0;
	cJSON_ArrayForEach(v, nip44_group(root, "valid", "calc_padded_len"))
	{
		size_t len = (size_t)cJSON_GetArrayItem(v, 0)->valuedouble;
		size_t want = (size_t)cJSON_GetArrayItem(v, 1)->valuedouble;
		CHECKM(nip44_calc_padded_len(len) == want, "padded len of %zu", len);
		n++;
	}
	CHECK(n == 24);
}

static void test_nip44_encrypt_decrypt(const cJSON *root)
{
	const cJSON *v;
	int n = 0;
	cJSON_ArrayForEach(v, nip44_group(root, "valid", "encrypt_decrypt"))
	{
		uint8_t s1[32], s2[32], want_ck[32], nonce[32], ck[32], ck2[32], pub2[32], pub1[32];
		CHECK(tu_unhex32(s1, item_str(v, "sec1")) == 0 && tu_unhex32(s2, item_str(v, "sec2")) == 0 &&
		      tu_unhex32(want_ck, item_str(v, "conversation_key")) == 0 &&
		      tu_unhex32(nonce, item_str(v, "nonce")) == 0);
		struct keypair *k1, *k2;
		CHECK_OK(keys_from_secret(&k1, s1));
		CHECK_OK(keys_from_secret(&k2, s2));
		keys_pubkey(k1, pub1);
		keys_pubkey(k2, pub2);
		CHECK_OK(nip44_conversation_key(ck, k1, pub2));
		CHECK_OK(nip44_conversation_key(ck2, k2, pub1));
		CHECK(memcmp(ck, want_ck, 32) == 0 && memcmp(ck2, want_ck, 32) == 0);
		const char *pt = item_str(v, "plaintext"), *payload = item_str(v, "payload");
		char *out;
		size_t outlen;
		CHECK_OK(nip44_encrypt(&out, &outlen, ck, (const uint8_t *)pt, strlen(pt), nonce));
		CHECKM(out && strcmp(out, payload) == 0, "payload %d", n);
		uint8_t *dec;
		size_t declen;
		CHECK_OK(nip44_decrypt(&dec, &declen, ck2, payload, strlen(payload)));
		CHECK(declen == strlen(pt) && memcmp(dec, pt, declen) == 0);
		free(out);
		free(dec);
		keys_free(k1);
		keys_free(k2);
		n++;
	}
	CHECK(n == 10);
	n = 0;
	cJSON_ArrayForEach(v, nip44_group(root, "valid", "encrypt_decrypt_long_msg"))
	{
		uint8_t ck[32], nonce[32], want_pt[32], want_pl[32], d[32];
		CHECK(tu_unhex32(ck, item_str(v, "conversation_key")) == 0 && tu_unhex32(nonce, item_str(v, "nonce")) == 0 &&
		      tu_unhex32(want_pt, item_str(v, "plaintext_sha256")) == 0 &&
		      tu_unhex32(want_pl, item_str(v, "payload_sha256")) == 0);
		const char *pat = item_str(v, "pattern");
		size_t rep = (size_t)cJSON_GetObjectItemCaseSensitive(v, "repeat")->valuedouble, pl = strlen(pat);
		char *pt = malloc(pl * rep + 1);
		for (size_t i = 0; i < rep; i++)
			memcpy(pt + i * pl, pat, pl);
		hash_sha256(d, pt, pl * rep);
		CHECK_MEM(d, want_pt, 32);
		char *out;
		size_t outlen;
		CHECK_OK(nip44_encrypt(&out, &outlen, ck, (const uint8_t *)pt, pl * rep, nonce));
		hash_sha256(d, out, outlen);
		CHECKM(memcmp(d, want_pl, 32) == 0, "long payload %d", n);
		uint8_t *dec;
		size_t declen;
		CHECK_OK(nip44_decrypt(&dec, &declen, ck, out, outlen));
		CHECK(declen == pl * rep && memcmp(dec, pt, declen) == 0);
		free(dec);
		free(out);
		free(pt);
		n++;
	}
	CHECK(n == 3);
}

static void test_nip44_invalid(const cJSON *root)
{
	const cJSON *v;
	uint8_t ck[32] = {1};
	cJSON_ArrayForEach(v, nip44_group(root, "invalid", "encrypt_msg_lengths"))
	{
		size_t len = (size_t)v->valuedouble;
		uint8_t *pt = calloc(1, len + 1);
		char *out = NULL;
		CHECKM(nip44_encrypt(&out, NULL, ck, pt, len, NULL) == APP_ERANGE, "length %zu refused", len);
		CHECK(out == NULL);
		free(pt);
	}
	int n = 0;
	cJSON_ArrayForEach(v, nip44_group(root, "invalid", "decrypt"))
	{
		uint8_t k[32];
		CHECK(tu_unhex32(k, item_str(v, "conversation_key")) == 0);
		const char *payload = item_str(v, "payload");
		uint8_t *dec = NULL;
		size_t declen;
		int r = nip44_decrypt(&dec, &declen, k, payload, strlen(payload));
		CHECKM(r < 0 && dec == NULL, "invalid payload %d (%s) accepted", n, item_str(v, "note"));
		n++;
	}
	CHECK(n == 12);
	/* Each failure class gives its own code. */
	uint8_t key[32];
	keys_random(key, 32);
	char *p;
	size_t plen;
	CHECK_OK(nip44_encrypt(&p, &plen, key, (const uint8_t *)"hello", 5, NULL));
	uint8_t *dec;
	size_t dl;
	p[0] = '#';
	CHECK_ERR(nip44_decrypt(&dec, &dl, key, p, plen), APP_EVERSION);
	p[0] = 'A';
	p[1] = 'Q'; /* first byte 0x01: version 1 */
	CHECK_ERR(nip44_decrypt(&dec, &dl, key, p, plen), APP_EVERSION);
	free(p);
	CHECK_OK(nip44_encrypt(&p, &plen, key, (const uint8_t *)"hello", 5, NULL));
	p[60] = p[60] == 'A' ? 'B' : 'A';
	CHECK_ERR(nip44_decrypt(&dec, &dl, key, p, plen), APP_EBADMAC);
	CHECK_ERR(nip44_decrypt(&dec, &dl, key, p, 100), APP_EPARSE);
	CHECK_ERR(nip44_decrypt(&dec, &dl, key, "!!!!", 4), APP_EPARSE);
	free(p);
}

static void test_nip04(void)
{
	cJSON *root = tu_load_json("tests/vectors/nostr/nip04.vectors.json");
	CHECK(root != NULL);
	if (!root)
		return;
	uint8_t ssec[32], rsec[32], spub[32], rpub[32];
	CHECK(tu_unhex32(ssec, item_str(root, "sender_sec")) == 0 && tu_unhex32(rsec, item_str(root, "recipient_sec")) == 0);
	struct keypair *sk, *rk;
	CHECK_OK(keys_from_secret(&sk, ssec));
	CHECK_OK(keys_from_secret(&rk, rsec));
	keys_pubkey(sk, spub);
	keys_pubkey(rk, rpub);
	const cJSON *v;
	int n = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
	{
		const char *ct = item_str(v, "ciphertext"), *pt = item_str(v, "plaintext");
		uint8_t *out;
		size_t outlen;
		/* Both directions share the key: decrypt as recipient and as sender. */
		CHECK_OK(nip04_decrypt(&out, &outlen, rk, spub, ct, strlen(ct)));
		CHECKM(outlen == strlen(pt) && memcmp(out, pt, outlen) == 0, "nip04 vector %d", n);
		free(out);
		CHECK_OK(nip04_decrypt(&out, &outlen, sk, rpub, ct, strlen(ct)));
		free(out);
		n++;
	}
	CHECK(n >= 2);
	/* round trip, wrong key, malformed */
	char *c;
	CHECK_OK(nip04_encrypt(&c, sk, rpub, (const uint8_t *)"hello nip04", 11, NULL));
	uint8_t *out;
	size_t outlen;
	CHECK_OK(nip04_decrypt(&out, &outlen, rk, spub, c, strlen(c)));
	CHECK(outlen == 11 && memcmp(out, "hello nip04", 11) == 0);
	free(out);
	struct keypair *other;
	CHECK_OK(keys_generate(&other));
	int r = nip04_decrypt(&out, &outlen, other, spub, c, strlen(c));
	CHECK(r == APP_EBADPAD || (r == 0 && (outlen != 11 || memcmp(out, "hello nip04", 11) != 0)));
	if (r == 0)
		free(out);
	CHECK_ERR(nip04_decrypt(&out, &outlen, rk, spub, "abc", 3), APP_EPARSE);
	CHECK_ERR(nip04_decrypt(&out, &outlen, rk, spub, "AAAA?iv=AAAA", 12), APP_EPARSE);
	free(c);
	keys_free(other);
	keys_free(sk);
	keys_free(rk);
	cJSON_Delete(root);
}

static void test_codecs(void)
{
	char hexs[9];
	uint8_t b[4] = {0xde, 0xad, 0xbe, 0xef}, d[4];
	hex_encode(hexs, b, 4);
	CHECK_STR(hexs, "deadbeef");
	CHECK_OK(hex_decode(d, 4, "DEADbeef", 8, 0));
	CHECK_ERR(hex_decode(d, 4, "DEADbeef", 8, 1), APP_EPARSE);
	CHECK_ERR(hex_decode(d, 4, "deadbee", 7, 0), APP_EPARSE);
	CHECK_ERR(hex_decode(d, 4, "deadbeeg", 8, 0), APP_EPARSE);
	char b64[16];
	CHECK_OK(b64_encode(b64, sizeof b64, (const uint8_t *)"hello", 5));
	CHECK_STR(b64, "aGVsbG8=");
	uint8_t o[16];
	size_t ol;
	CHECK_OK(b64_decode(o, sizeof o, &ol, "aGVsbG8=", 8));
	CHECK(ol == 5 && memcmp(o, "hello", 5) == 0);
	CHECK_ERR(b64_decode(o, sizeof o, &ol, "aGVsbG8", 7), APP_EPARSE);
	CHECK_ERR(b64_decode(o, sizeof o, &ol, "aGVs bG8=", 9), APP_EPARSE);
	CHECK_ERR(b64_decode(o, 2, &ol, "aGVsbG8=", 8), APP_ETOOBIG);
}

static void test_fileio(void)
{
	char path[] = "/tmp/fileio_test.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, "0123456789", 10) == 10);
	close(fd);
	char *buf = NULL;
	size_t len = 0;
	CHECK_OK(file_read_all(&buf, &len, path, 10)); /* exactly the cap */
	CHECK(buf && len == 10 && memcmp(buf, "0123456789", 10) == 0 && buf[10] == 0);
	free(buf);
	CHECK_ERR(file_read_all(&buf, &len, path, 9), APP_ETOOBIG);
	CHECK(buf == NULL && len == 0);
	unlink(path);
	CHECK_ERR(file_read_all(&buf, &len, path, 10), APP_ENOENT);
	CHECK_ERR(file_read_all(&buf, &len, "/", 10), APP_EIO); /* a directory cannot be read */
}

int main(void)
{
	RUN(test_bip340_vectors);
	RUN(test_keys);
	RUN(test_hkdf_rfc5869);
	RUN(test_codecs);
	RUN(test_fileio);
	cJSON *root = tu_load_json("tests/vectors/nostr/nip44.vectors.json");
	CHECK(root != NULL);
	if (root) {
		test_current_ = "nip44";
		RUN_ARG(test_nip44_conversation_keys, root);
		RUN_ARG(test_nip44_message_keys_and_padding, root);
		RUN_ARG(test_nip44_encrypt_decrypt, root);
		RUN_ARG(test_nip44_invalid, root);
		cJSON_Delete(root);
	}
	RUN(test_nip04);
	return test_summary();
}
