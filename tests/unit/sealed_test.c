/* sealed_test: the sealed-data format (appliance/sealed.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "appliance/sealed.h"
#include "tests/unit/test.h"

static uint8_t key[SEALED_KEY_LEN], key2[SEALED_KEY_LEN];

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + (i >> 8));
	return p;
}

static void test_roundtrip_sizes(void)
{
	const size_t chunk = 64;
	const size_t sizes[] = {0, 1, 63, 64, 65, 127, 128, 129, 1000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i], clen, exp, plen;
		uint8_t *pt = pattern(n), *ct = NULL, *back = NULL;
		CHECK_OK(sealed_seal_mem(&ct, &clen, pt, n, key, chunk, NULL, 0));
		CHECK_OK(sealed_len(&exp, n, chunk));
		CHECKM(clen == exp, "size %zu: sealed %zu, sealed_len %zu", n, clen, exp);
		CHECK(sealed_is_sealed(ct, clen));
		CHECK_OK(sealed_open_mem(&back, &plen, ct, clen, key, NULL, 0, 1 << 20));
		CHECK(plen == n && back && memcmp(back, pt, n) == 0);
		free(pt);
		free(ct);
		free(back);
	}
}

struct acc {
	uint8_t *p;
	size_t len;
};

static int acc_sink(void *arg, const uint8_t *d, size_t n)
{
	struct acc *a = arg;
	uint8_t *np = realloc(a->p, a->len + n + 1);
	if (!np)
		return APP_ENOMEM;
	a->p = np;
	memcpy(a->p + a->len, d, n);
	a->len += n;
	return 0;
}

/* Streaming in odd pieces gives the same bytes as one call. */
static void test_streaming_pieces(void)
{
	size_t n = 5000;
	uint8_t *pt = pattern(n);
	struct acc a = {0}, b = {0};
	struct sealed_enc *e = NULL;
	struct sealed_dec *d = NULL;
	CHECK_OK(sealed_enc_new(&e, key, 100, (const uint8_t *)"ctx", 3, acc_sink, &a));
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 97 + 1)
		CHECK_OK(sealed_enc_update(e, pt + off, off + step > n ? n - off : step));
	CHECK_OK(sealed_enc_final(e));
	CHECK_ERR(sealed_enc_update(e, pt, 1), APP_ESTATE);
	CHECK_ERR(sealed_enc_final(e), APP_ESTATE);
	sealed_enc_free(e);
	size_t exp;
	CHECK_OK(sealed_len(&exp, n, 100));
	CHECK(a.len == exp);
	CHECK_OK(sealed_dec_new(&d, key, (const uint8_t *)"ctx", 3, acc_sink, &b));
	for (size_t off = 0, step = 7; off < a.len; off += step, step = step * 5 % 113 + 1)
		CHECK_OK(sealed_dec_update(d, a.p + off, off + step > a.len ? a.len - off : step));
	CHECK_OK(sealed_dec_final(d));
	sealed_dec_free(d);
	CHECK(b.len == n && memcmp(b.p, pt, n) == 0);
	/* wrong additional data */
	uint8_t *out = NULL;
	size_t olen;
	CHECK_ERR(sealed_open_mem(&out, &olen, a.p, a.len, key, (const uint8_t *)"cty", 3, 1 << 20), APP_EBADMAC);
	CHECK_ERR(sealed_open_mem(&out, &olen, a.p, a.len, key, NULL, 0, 1 << 20), APP_EBADMAC);
	CHECK(out == NULL);
	free(a.p);
	free(b.p);
	free(pt);
}

static int open_blob(const uint8_t *ct, size_t clen, const uint8_t *k)
{
	uint8_t *out = NULL;
	size_t olen;
	int r = sealed_open_mem(&out, &olen, ct, clen, k, NULL, 0, 1 << 20);
	free(out);
	return r;
}

static void test_refusals(void)
{
	const size_t chunk = 64, n = 200; /* chunks: 64, 64, 64, 8 (FINAL) */
	uint8_t *pt = pattern(n), *ct = NULL;
	size_t clen;
	CHECK_OK(sealed_seal_mem(&ct, &clen, pt, n, key, chunk, NULL, 0));
	const size_t H = SEALED_HEADER_LEN, C = chunk + SEALED_ABYTES;
	CHECK(clen == H + 3 * C + 8 + SEALED_ABYTES);
	CHECK_OK(open_blob(ct, clen, key));
	/* wrong key */
	CHECK_ERR(open_blob(ct, clen, key2), APP_EBADMAC);
	/* truncated: inside the header, at the header, mid-chunk, on a chunk boundary, mid-final */
	CHECK_ERR(open_blob(ct, 10, key), APP_EPARSE);
	CHECK_ERR(open_blob(ct, H, key), APP_EPARSE);
	CHECK_ERR(open_blob(ct, H + 30, key), APP_EBADMAC);
	CHECK_ERR(open_blob(ct, H + 5, key), APP_EPARSE);
	CHECK_ERR(open_blob(ct, H + C, key), APP_EPARSE);
	CHECK_ERR(open_blob(ct, H + 3 * C, key), APP_EPARSE);
	CHECK_ERR(open_blob(ct, clen - 1, key), APP_EBADMAC);
	CHECK_ERR(open_blob(ct, 0, key), APP_EPARSE);
	/* reordered chunks 1 and 2 */
	uint8_t *sw = malloc(clen);
	memcpy(sw, ct, clen);
	memcpy(sw + H, ct + H + C, C);
	memcpy(sw + H + C, ct + H, C);
	CHECK_ERR(open_blob(sw, clen, key), APP_EBADMAC);
	/* a chunk dropped */
	memcpy(sw, ct, H);
	memcpy(sw + H, ct + H + C, clen - H - C);
	CHECK_ERR(open_blob(sw, clen - C, key), APP_EBADMAC);
	/* extended: a byte, or a whole copy of the last chunk, after FINAL */
	uint8_t *ext = malloc(clen + C);
	memcpy(ext, ct, clen);
	ext[clen] = 0;
	/* (the short FINAL chunk then no longer authenticates) */
	CHECK_ERR(open_blob(ext, clen + 1, key), APP_EBADMAC);
	memcpy(ext + clen, ct + clen - 25, 25);
	CHECK_ERR(open_blob(ext, clen + 25, key), APP_EBADMAC);
	{
		/* a full-size FINAL chunk followed by anything */
		uint8_t *c2 = NULL;
		size_t c2len;
		CHECK_OK(sealed_seal_mem(&c2, &c2len, pt, 3 * chunk, key, chunk, NULL, 0));
		CHECK(c2len == H + 3 * C);
		uint8_t *e2 = malloc(c2len + 1);
		memcpy(e2, c2, c2len);
		e2[c2len] = 7;
		CHECK_OK(open_blob(e2, c2len, key));
		CHECK_ERR(open_blob(e2, c2len + 1, key), APP_EPARSE);
		free(e2);
		free(c2);
	}
	/* every single-bit flip is refused */
	int all = 1;
	for (size_t i = 0; i < clen; i++) {
		memcpy(sw, ct, clen);
		sw[i] ^= 0x10;
		int r = open_blob(sw, clen, key);
		if (r == 0) {
			all = 0;
			fprintf(stderr, "flip at %zu accepted\n", i);
		}
	}
	CHECK(all);
	/* header fields */
	memcpy(sw, ct, clen);
	sw[0] = 'X';
	CHECK_ERR(open_blob(sw, clen, key), APP_EPARSE);
	memcpy(sw, ct, clen);
	sw[6] = 2;
	CHECK_ERR(open_blob(sw, clen, key), APP_EVERSION);
	memcpy(sw, ct, clen);
	sw[7] = 9;
	CHECK_ERR(open_blob(sw, clen, key), APP_EVERSION);
	memcpy(sw, ct, clen);
	sw[8] = 1; /* chunk size 1: below the minimum */
	sw[9] = 0;
	CHECK_ERR(open_blob(sw, clen, key), APP_ERANGE);
	memcpy(sw, ct, clen);
	sw[8] = 65; /* another valid chunk size: header is authenticated */
	CHECK_ERR(open_blob(sw, clen, key), APP_EBADMAC);
	memcpy(sw, ct, clen);
	sw[13] = 1;
	CHECK_ERR(open_blob(sw, clen, key), APP_EPARSE);
	/* plaintext cap */
	uint8_t *out = NULL;
	size_t olen;
	CHECK_ERR(sealed_open_mem(&out, &olen, ct, clen, key, NULL, 0, n - 1), APP_ETOOBIG);
	free(sw);
	free(ext);
	free(ct);
	free(pt);
}

static void test_args(void)
{
	struct sealed_enc *e = NULL;
	struct acc a = {0};
	uint8_t big[SEALED_AD_MAX + 1] = {0};
	CHECK_ERR(sealed_enc_new(&e, key, 10, NULL, 0, acc_sink, &a), APP_EINVAL);
	CHECK_ERR(sealed_enc_new(&e, key, SEALED_CHUNK_MAX + 1, NULL, 0, acc_sink, &a), APP_EINVAL);
	CHECK_ERR(sealed_enc_new(&e, key, 0, big, sizeof big, acc_sink, &a), APP_EINVAL);
	CHECK_ERR(sealed_enc_new(&e, NULL, 0, NULL, 0, acc_sink, &a), APP_EINVAL);
	CHECK(e == NULL);
	sealed_enc_free(NULL);
	sealed_dec_free(NULL);
	size_t x;
	CHECK_ERR(sealed_len(&x, SIZE_MAX - 10, 0), APP_ETOOBIG);
	CHECK_OK(sealed_len(&x, 0, 0));
	CHECK(x == SEALED_HEADER_LEN + SEALED_ABYTES);
	free(a.p);
}

/* Two seals of the same data differ (random header), both open. */
static void test_randomized(void)
{
	uint8_t *a = NULL, *b = NULL;
	size_t al, bl;
	CHECK_OK(sealed_seal_mem(&a, &al, (const uint8_t *)"same", 4, key, 0, NULL, 0));
	CHECK_OK(sealed_seal_mem(&b, &bl, (const uint8_t *)"same", 4, key, 0, NULL, 0));
	CHECK(al == bl && memcmp(a, b, al) != 0);
	free(a);
	free(b);
}

static void test_files(void)
{
	FILE *in = tmpfile(), *mid = tmpfile(), *out = tmpfile();
	size_t n = 300000;
	uint8_t *pt = pattern(n), *back = malloc(n + 1);
	CHECK(in && mid && out);
	CHECK(fwrite(pt, 1, n, in) == n);
	rewind(in);
	CHECK_OK(sealed_seal_file(mid, in, key, 0, NULL, 0));
	rewind(mid);
	CHECK_OK(sealed_open_file(out, mid, key, NULL, 0));
	rewind(out);
	CHECK(fread(back, 1, n + 1, out) == n && memcmp(back, pt, n) == 0);
	rewind(mid);
	FILE *out2 = tmpfile();
	CHECK_ERR(sealed_open_file(out2, mid, key2, NULL, 0), APP_EBADMAC);
	fclose(out2);
	fclose(in);
	fclose(mid);
	fclose(out);
	free(pt);
	free(back);
}

int main(void)
{
	if (sealed_key_generate(key) != 0 || sealed_key_generate(key2) != 0)
		return 2;
	RUN(test_roundtrip_sizes);
	RUN(test_streaming_pieces);
	RUN(test_refusals);
	RUN(test_args);
	RUN(test_randomized);
	RUN(test_files);
	return test_summary();
}
