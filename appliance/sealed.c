/*
 * sealed.c: the sealed-data format (see sealed.h and PROTOCOL.md).
 */
#include "sealed.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef crypto_secretstream_xchacha20poly1305_state ss_state;

_Static_assert(crypto_secretstream_xchacha20poly1305_HEADERBYTES == 24, "secretstream header");
_Static_assert(crypto_secretstream_xchacha20poly1305_ABYTES == SEALED_ABYTES, "secretstream abytes");
_Static_assert(crypto_secretstream_xchacha20poly1305_KEYBYTES == SEALED_KEY_LEN, "key length");

/* Secret part, kept in sodium_malloc memory. */
struct sealed_secret {
	ss_state st;
	uint8_t key[SEALED_KEY_LEN]; /* sealed_dec: until the header arrives */
};

struct sealed_enc {
	struct sealed_secret *sec;
	sealed_sink_fn sink;
	void *arg;
	size_t chunk;       /* plaintext bytes per chunk */
	uint8_t *buf;       /* chunk plaintext being filled */
	size_t fill;
	uint8_t *ct;        /* chunk + ABYTES */
	uint8_t *ad;        /* header || caller ad */
	size_t adlen;
	int state;          /* 0 open, 1 finished, <0 error */
};

struct sealed_dec {
	struct sealed_secret *sec;
	sealed_sink_fn sink;
	void *arg;
	uint8_t hdr[SEALED_HEADER_LEN];
	size_t hdr_fill;
	size_t chunk;
	uint8_t *ct;        /* chunk + ABYTES being filled */
	size_t fill;
	uint8_t *pt;        /* decrypted chunk */
	uint8_t *ad;
	size_t adlen;       /* header + caller ad */
	int final_seen;
	int err;            /* sticky error */
};

static int sodium_ready(void)
{
	return sodium_init() < 0 ? APP_EINTERNAL : 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sealed_key_generate(uint8_t key[SEALED_KEY_LEN])
{
	if (!key)
		return APP_EINVAL;
	if (sodium_ready() != 0)
		return APP_EINTERNAL;
	crypto_secretstream_xchacha20poly1305_keygen(key);
	return 0;
}

int sealed_is_sealed(const uint8_t *buf, size_t len)
{
	return buf && len >= SEALED_MAGIC_LEN && memcmp(buf, SEALED_MAGIC, SEALED_MAGIC_LEN) == 0;
}

int sealed_len(size_t *out, size_t plain_len, size_t chunk_size)
{
	if (chunk_size == 0)
		chunk_size = SEALED_CHUNK_DEFAULT;
	if (!out || chunk_size < SEALED_CHUNK_MIN || chunk_size > SEALED_CHUNK_MAX)
		return APP_EINVAL;
	/* Full MESSAGE chunks, then a FINAL chunk of 1..chunk bytes (0 only
	 * for empty input). */
	size_t nchunks = plain_len == 0 ? 1 : (plain_len - 1) / chunk_size + 1;
	size_t over, total;
	if (__builtin_mul_overflow(nchunks, (size_t)SEALED_ABYTES, &over) ||
	    __builtin_add_overflow(plain_len, over, &total) ||
	    __builtin_add_overflow(total, (size_t)SEALED_HEADER_LEN, &total))
		return APP_ETOOBIG;
	*out = total;
	return 0;
}

static void secret_free(struct sealed_secret *s)
{
	if (s)
		sodium_free(s); /* sodium_free wipes */
}

static void enc_free_bufs(struct sealed_enc *e)
{
	if (e->buf) {
		sodium_memzero(e->buf, e->chunk);
		free(e->buf);
	}
	free(e->ct);
	free(e->ad);
}

void sealed_enc_free(struct sealed_enc *e)
{
	if (!e)
		return;
	secret_free(e->sec);
	enc_free_bufs(e);
	free(e);
}

int sealed_enc_new(struct sealed_enc **out, const uint8_t key[SEALED_KEY_LEN], size_t chunk_size,
		   const uint8_t *ad, size_t adlen, sealed_sink_fn sink, void *arg)
{
	int r = APP_EINTERNAL;
	struct sealed_enc *e = NULL;
	if (!out)
		return APP_EINVAL;
	*out = NULL;
	if (chunk_size == 0)
		chunk_size = SEALED_CHUNK_DEFAULT;
	if (!key || !sink || chunk_size < SEALED_CHUNK_MIN || chunk_size > SEALED_CHUNK_MAX ||
	    adlen > SEALED_AD_MAX || (adlen && !ad))
		return APP_EINVAL;
	if ((r = sodium_ready()) != 0)
		return r;
	r = APP_ENOMEM;
	if (!(e = calloc(1, sizeof *e)))
		goto out;
	e->sink = sink;
	e->arg = arg;
	e->chunk = chunk_size;
	e->adlen = SEALED_HEADER_LEN + adlen;
	if (!(e->sec = sodium_malloc(sizeof *e->sec)) || !(e->buf = malloc(chunk_size)) ||
	    !(e->ct = malloc(chunk_size + SEALED_ABYTES)) || !(e->ad = malloc(e->adlen)))
		goto out;
	uint8_t *h = e->ad;
	memcpy(h, SEALED_MAGIC, SEALED_MAGIC_LEN);
	h[6] = SEALED_VERSION;
	h[7] = SEALED_ALG_XCHACHA20POLY1305;
	put_le32(h + 8, (uint32_t)chunk_size);
	put_le32(h + 12, 0);
	r = APP_EINTERNAL;
	if (crypto_secretstream_xchacha20poly1305_init_push(&e->sec->st, h + 16, key) != 0)
		goto out;
	if (adlen)
		memcpy(e->ad + SEALED_HEADER_LEN, ad, adlen);
	if ((r = sink(arg, h, SEALED_HEADER_LEN)) != 0)
		goto out;
	*out = e;
	e = NULL;
	r = 0;
out:
	sealed_enc_free(e);
	return r;
}

static int enc_push(struct sealed_enc *e, uint8_t tag)
{
	unsigned long long clen = 0;
	if (crypto_secretstream_xchacha20poly1305_push(&e->sec->st, e->ct, &clen, e->buf, e->fill, e->ad,
						       e->adlen, tag) != 0)
		return APP_EINTERNAL;
	e->fill = 0;
	return e->sink(e->arg, e->ct, (size_t)clen);
}

int sealed_enc_update(struct sealed_enc *e, const uint8_t *in, size_t len)
{
	int r;
	if (!e || (len && !in))
		return APP_EINVAL;
	if (e->state != 0)
		return APP_ESTATE;
	while (len) {
		/* A full buffer is pushed only when more data follows, so the
		 * FINAL chunk always carries the tail. */
		if (e->fill == e->chunk) {
			if ((r = enc_push(e, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)) != 0) {
				e->state = r;
				return r;
			}
		}
		size_t n = e->chunk - e->fill;
		if (n > len)
			n = len;
		memcpy(e->buf + e->fill, in, n);
		e->fill += n;
		in += n;
		len -= n;
	}
	return 0;
}

int sealed_enc_final(struct sealed_enc *e)
{
	if (!e)
		return APP_EINVAL;
	if (e->state != 0)
		return APP_ESTATE;
	int r = enc_push(e, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
	e->state = r ? r : 1;
	return r;
}

void sealed_dec_free(struct sealed_dec *d)
{
	if (!d)
		return;
	secret_free(d->sec);
	if (d->pt) {
		sodium_memzero(d->pt, d->chunk);
		free(d->pt);
	}
	free(d->ct);
	free(d->ad);
	sodium_memzero(d, sizeof *d);
	free(d);
}

int sealed_dec_new(struct sealed_dec **out, const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad,
		   size_t adlen, sealed_sink_fn sink, void *arg)
{
	int r;
	struct sealed_dec *d = NULL;
	if (!out)
		return APP_EINVAL;
	*out = NULL;
	if (!key || !sink || adlen > SEALED_AD_MAX || (adlen && !ad))
		return APP_EINVAL;
	if ((r = sodium_ready()) != 0)
		return r;
	r = APP_ENOMEM;
	if (!(d = calloc(1, sizeof *d)))
		goto out;
	d->sink = sink;
	d->arg = arg;
	d->adlen = SEALED_HEADER_LEN + adlen;
	if (!(d->sec = sodium_malloc(sizeof *d->sec)) || !(d->ad = malloc(d->adlen)))
		goto out;
	if (adlen)
		memcpy(d->ad + SEALED_HEADER_LEN, ad, adlen);
	/* The secretstream state needs the header: keep the key in guarded
	 * memory until then (wiped in dec_header). */
	memcpy(d->sec->key, key, SEALED_KEY_LEN);
	*out = d;
	d = NULL;
	r = 0;
out:
	sealed_dec_free(d);
	return r;
}

static int dec_header(struct sealed_dec *d)
{
	const uint8_t *h = d->hdr;
	int r = APP_EPARSE;
	if (memcmp(h, SEALED_MAGIC, SEALED_MAGIC_LEN) != 0)
		goto out;
	r = APP_EVERSION;
	if (h[6] != SEALED_VERSION || h[7] != SEALED_ALG_XCHACHA20POLY1305)
		goto out;
	r = APP_ERANGE;
	uint32_t chunk = get_le32(h + 8);
	if (chunk < SEALED_CHUNK_MIN || chunk > SEALED_CHUNK_MAX)
		goto out;
	r = APP_EPARSE;
	if (get_le32(h + 12) != 0)
		goto out;
	d->chunk = chunk;
	r = APP_ENOMEM;
	if (!(d->ct = malloc(d->chunk + SEALED_ABYTES)) || !(d->pt = malloc(d->chunk)))
		goto out;
	r = APP_EINTERNAL;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&d->sec->st, h + 16, d->sec->key) != 0)
		goto out;
	memcpy(d->ad, h, SEALED_HEADER_LEN);
	r = 0;
out:
	sodium_memzero(d->sec->key, sizeof d->sec->key);
	return r;
}

/* Authenticates and emits the buffered chunk. */
static int dec_chunk(struct sealed_dec *d)
{
	unsigned long long plen = 0;
	unsigned char tag = 0;
	if (d->fill < SEALED_ABYTES)
		return APP_EPARSE;
	if (crypto_secretstream_xchacha20poly1305_pull(&d->sec->st, d->pt, &plen, &tag, d->ct, d->fill,
						       d->ad, d->adlen) != 0)
		return APP_EBADMAC;
	d->fill = 0;
	if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
		d->final_seen = 1;
	else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
		return APP_EPARSE; /* we never write PUSH or REKEY tags */
	int r = plen ? d->sink(d->arg, d->pt, (size_t)plen) : 0;
	sodium_memzero(d->pt, (size_t)plen);
	return r;
}

int sealed_dec_update(struct sealed_dec *d, const uint8_t *in, size_t len)
{
	int r = 0;
	if (!d || (len && !in))
		return APP_EINVAL;
	if (d->err)
		return APP_ESTATE;
	while (len) {
		if (d->hdr_fill < SEALED_HEADER_LEN) {
			size_t n = SEALED_HEADER_LEN - d->hdr_fill;
			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_fill, in, n);
			d->hdr_fill += n;
			in += n;
			len -= n;
			if (d->hdr_fill == SEALED_HEADER_LEN && (r = dec_header(d)) != 0)
				goto out;
			continue;
		}
		if (d->final_seen) {
			r = APP_EPARSE; /* extended after the FINAL chunk */
			goto out;
		}
		size_t cap = d->chunk + SEALED_ABYTES;
		size_t n = cap - d->fill;
		if (n > len)
			n = len;
		memcpy(d->ct + d->fill, in, n);
		d->fill += n;
		in += n;
		len -= n;
		if (d->fill == cap && (r = dec_chunk(d)) != 0)
			goto out;
	}
out:
	if (r)
		d->err = r;
	return r;
}

int sealed_dec_final(struct sealed_dec *d)
{
	int r;
	if (!d)
		return APP_EINVAL;
	if (d->err)
		return d->err;
	r = APP_EPARSE;
	if (d->hdr_fill < SEALED_HEADER_LEN)
		goto out;
	if (!d->final_seen) {
		if (d->fill == 0)
			goto out; /* ends on a chunk boundary without FINAL */
		if ((r = dec_chunk(d)) != 0)
			goto out;
		r = APP_EPARSE;
		if (!d->final_seen)
			goto out; /* a short MESSAGE chunk: truncated */
	}
	r = 0;
out:
	if (r)
		d->err = r;
	return r;
}

/* ---- memory and FILE* helpers ---- */

struct membuf {
	uint8_t *p;
	size_t len, cap, max;
};

static int mem_sink(void *arg, const uint8_t *data, size_t len)
{
	struct membuf *m = arg;
	size_t need;
	if (__builtin_add_overflow(m->len, len, &need) || need > m->max)
		return APP_ETOOBIG;
	if (need > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < need)
			cap = cap > m->max / 2 ? m->max : cap * 2;
		uint8_t *np = malloc(cap);
		if (!np)
			return APP_ENOMEM;
		if (m->len)
			memcpy(np, m->p, m->len);
		if (m->p) {
			sodium_memzero(m->p, m->len);
			free(m->p);
		}
		m->p = np;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, len);
	m->len = need;
	return 0;
}

int sealed_seal_mem(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen,
		    const uint8_t key[SEALED_KEY_LEN], size_t chunk_size, const uint8_t *ad, size_t adlen)
{
	int r;
	struct sealed_enc *e = NULL;
	struct membuf m = {0};
	size_t total;
	if (!out || !outlen || (inlen && !in))
		return APP_EINVAL;
	*out = NULL;
	*outlen = 0;
	if ((r = sealed_len(&total, inlen, chunk_size)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(m.p = malloc(total)))
		goto out;
	m.cap = m.max = total;
	if ((r = sealed_enc_new(&e, key, chunk_size, ad, adlen, mem_sink, &m)) != 0 ||
	    (r = sealed_enc_update(e, in, inlen)) != 0 || (r = sealed_enc_final(e)) != 0)
		goto out;
	r = APP_EINTERNAL;
	if (m.len != total)
		goto out;
	*out = m.p;
	*outlen = m.len;
	m.p = NULL;
	r = 0;
out:
	sealed_enc_free(e);
	free(m.p);
	return r;
}

int sealed_open_mem(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen,
		    const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad, size_t adlen, size_t max)
{
	int r;
	struct sealed_dec *d = NULL;
	struct membuf m = {0};
	if (!out || !outlen || (inlen && !in))
		return APP_EINVAL;
	*out = NULL;
	*outlen = 0;
	m.max = max;
	/* Plaintext is never longer than the ciphertext. */
	r = APP_ENOMEM;
	m.cap = inlen < max ? inlen : max;
	if (!(m.p = malloc(m.cap ? m.cap : 1)))
		goto out;
	if ((r = sealed_dec_new(&d, key, ad, adlen, mem_sink, &m)) != 0 ||
	    (r = sealed_dec_update(d, in, inlen)) != 0 || (r = sealed_dec_final(d)) != 0)
		goto out;
	*out = m.p;
	*outlen = m.len;
	m.p = NULL;
	r = 0;
out:
	sealed_dec_free(d);
	if (m.p) {
		sodium_memzero(m.p, m.len);
		free(m.p);
	}
	return r;
}

static int file_sink(void *arg, const uint8_t *data, size_t len)
{
	return fwrite(data, 1, len, (FILE *)arg) == len ? 0 : APP_EIO;
}

#define SEALED_IO_BUF (64 * 1024)

int sealed_seal_file(FILE *out, FILE *in, const uint8_t key[SEALED_KEY_LEN], size_t chunk_size,
		     const uint8_t *ad, size_t adlen)
{
	int r;
	struct sealed_enc *e = NULL;
	uint8_t *buf = NULL;
	if (!out || !in)
		return APP_EINVAL;
	if ((r = sealed_enc_new(&e, key, chunk_size, ad, adlen, file_sink, out)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(buf = malloc(SEALED_IO_BUF)))
		goto out;
	for (;;) {
		size_t n = fread(buf, 1, SEALED_IO_BUF, in);
		if (n && (r = sealed_enc_update(e, buf, n)) != 0)
			goto out;
		if (n < SEALED_IO_BUF) {
			r = APP_EIO;
			if (ferror(in))
				goto out;
			break;
		}
	}
	r = sealed_enc_final(e);
out:
	if (buf) {
		sodium_memzero(buf, SEALED_IO_BUF);
		free(buf);
	}
	sealed_enc_free(e);
	return r;
}

int sealed_open_file(FILE *out, FILE *in, const uint8_t key[SEALED_KEY_LEN], const uint8_t *ad,
		     size_t adlen)
{
	int r;
	struct sealed_dec *d = NULL;
	uint8_t *buf = NULL;
	if (!out || !in)
		return APP_EINVAL;
	if ((r = sealed_dec_new(&d, key, ad, adlen, file_sink, out)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(buf = malloc(SEALED_IO_BUF)))
		goto out;
	for (;;) {
		size_t n = fread(buf, 1, SEALED_IO_BUF, in);
		if (n && (r = sealed_dec_update(d, buf, n)) != 0)
			goto out;
		if (n < SEALED_IO_BUF) {
			r = APP_EIO;
			if (ferror(in))
				goto out;
			break;
		}
	}
	r = sealed_dec_final(d);
out:
	free(buf);
	sealed_dec_free(d);
	return r;
}
