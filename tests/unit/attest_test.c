/*
 * attest_test: attestation documents: the real AWS documents of
 * tests/vectors/nitro (SAMPLES.json), a mutation corpus generated here
 * (flipped bytes in every region of a real document; re-signed dev-CA
 * documents breaking one rule each), the intermediate cache, PCR policy,
 * text decoding.
 */
#include <cJSON.h>
#include <pthread.h>
#include <cbor.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/strictcbor.h"
#include "parent/devca.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

#define DOC_2026 "base-nitro-validator_2026-01-03_attestation_repaired.bin"
#define DOC_2022 "evervault_beta_valid-attestation-doc.bin"
#define DOC_DEBUG "evervault_beta_debug-mode-attestation-doc.bin"
#define DOC_CORRUPT "base-nitro-validator_2026-01-03_attestation_AS-PUBLISHED-corrupted.b64"

static struct attest_verifier *V; /* AWS root only, cache on */

static uint8_t *load(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "tests/vectors/nitro/%s", name);
	return (uint8_t *)tu_read_file(path, len);
}

static const struct attest_verify_opts AS_OF = {.time_mode = ATTEST_TIME_AS_OF_DOCUMENT};

/* expect: verifying doc gives exactly (err, check). */
static void expect_at(struct attest_verifier *v, const uint8_t *doc, size_t len, const struct attest_verify_opts *o,
		      int err, enum attest_check chk, const char *what, int line)
{
	struct attest_result res;
	int r = attest_verify_bytes(v, &res, NULL, doc, len, o);
	CHECKM(r == err && res.err == err && res.check == chk, "line %d %s: got %d/%s (%s), want %d/%s", line, what, r,
	       attest_check_name(res.check), res.reason, err, attest_check_name(chk));
}
#define EXPECT(v, doc, len, o, err, chk, what) expect_at((v), (doc), (len), (o), (err), (chk), (what), __LINE__)

static uint64_t ts_of(const uint8_t *doc, size_t len)
{
	struct attest_doc *d = NULL;
	uint64_t ts = 0;
	if (attest_doc_parse(&d, NULL, doc, len) == 0)
		ts = d->timestamp_ms;
	attest_doc_free(d);
	return ts;
}

/* ---- real documents ---- */

static void test_samples_json(void)
{
	cJSON *all = tu_load_json("tests/vectors/nitro/SAMPLES.json");
	CHECK(all && cJSON_IsArray(all) && cJSON_GetArraySize(all) == 3);
	cJSON *s;
	cJSON_ArrayForEach(s, all)
	{
		const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(s, "file"));
		size_t len = 0;
		uint8_t *buf = load(file, &len);
		CHECKM(buf != NULL, "%s", file);
		if (!buf)
			continue;
		CHECK(len == (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "cose_len")));
		uint8_t h[32], want[32];
		hash_sha256(h, buf, len);
		CHECK(tu_unhex32(want, cJSON_GetStringValue(cJSON_GetObjectItem(s, "sha256_of_file"))) == 0);
		CHECK_MEM(h, want, 32);
		struct attest_doc *d = NULL;
		struct attest_result res;
		CHECK_OK(attest_doc_parse(&d, &res, buf, len));
		if (!d) {
			free(buf);
			continue;
		}
		CHECK_STR(d->module_id, cJSON_GetStringValue(cJSON_GetObjectItem(s, "module_id")));
		CHECK(d->timestamp_ms == (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "timestamp_ms")));
		CHECK(__builtin_popcount(d->pcr_mask) == (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "pcr_count")));
		CHECK(d->cabundle_n == (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "cabundle_len")));
		cJSON *pcr;
		cJSON_ArrayForEach(pcr, cJSON_GetObjectItem(s, "pcrs"))
		{
			int idx = (int)strtol(pcr->string, NULL, 10);
			size_t pl = 0;
			uint8_t *pv = tu_unhex(cJSON_GetStringValue(pcr), &pl);
			CHECKM(pv && pl == 48 && ((d->pcr_mask >> idx) & 1u) && memcmp(d->pcrs[idx], pv, 48) == 0,
			       "%s PCR%d", file, idx);
			free(pv);
		}
		struct {
			const char *key;
			const uint8_t *p;
			size_t len;
		} opt[] = {{"public_key_len", d->public_key, d->public_key_len},
			   {"user_data_len", d->user_data, d->user_data_len},
			   {"nonce_len", d->nonce, d->nonce_len}};
		for (int i = 0; i < 3; i++) {
			cJSON *j = cJSON_GetObjectItem(s, opt[i].key);
			if (cJSON_IsNull(j))
				CHECKM(opt[i].p == NULL, "%s %s should be null", file, opt[i].key);
			else
				CHECKM(opt[i].p && opt[i].len == (size_t)cJSON_GetNumberValue(j), "%s %s", file, opt[i].key);
		}
		const char *enc = cJSON_GetStringValue(cJSON_GetObjectItem(s, "payload_map_encoding"));
		CHECK(d->payload_indefinite == (strstr(enc, "indefinite") != NULL));
		CHECK(d->tagged == 0);
		CHECK(attest_doc_root_is_aws(d));
		/* Chain info: 5 certificates, the leaf subject as recorded. */
		struct attest_chain_info ci;
		CHECK_OK(attest_doc_chain_info(d, &ci));
		CHECK(ci.n == 5);
		CHECK(strstr(ci.cert[4].subject, "CN=aws.nitro-enclaves") != NULL);
		const char *leaf_subject = cJSON_GetStringValue(cJSON_GetObjectItem(s, "leaf_subject"));
		CHECKM(strcmp(ci.cert[0].subject, leaf_subject) == 0, "%s vs %s", ci.cert[0].subject, leaf_subject);
		/* As of its own time: verified (the debug document: refused as debug). */
		int debug = attest_doc_is_debug(d);
		struct attest_result vr;
		int r = attest_verify(V, &vr, d, &AS_OF);
		if (debug)
			CHECKM(r == APP_EDEBUG && vr.check == ATTEST_CHECK_DEBUG, "%s: %s", file, vr.reason);
		else
			CHECKM(r == 0 && vr.check == ATTEST_CHECK_NONE && !vr.dev, "%s: %s", file, vr.reason);
		CHECK(vr.time == d->timestamp_ms / 1000);
		CHECK(vr.leaf_not_before <= vr.time && vr.time <= vr.leaf_not_after);
		CHECK(vr.leaf_not_after - vr.leaf_not_before > 3 * 3600 - 60);
		/* Now: expired. */
		r = attest_verify(V, &vr, d, NULL);
		CHECKM(r == APP_EEXPIRED && vr.check == ATTEST_CHECK_VALIDITY, "%s now: %s", file, vr.reason);
		attest_doc_free(d);
		free(buf);
	}
	cJSON_Delete(all);
}

static void test_real_time_windows(void)
{
	size_t len = 0;
	uint8_t *buf = load(DOC_2026, &len);
	CHECK(buf != NULL);
	if (!buf)
		return;
	uint64_t t = ts_of(buf, len) / 1000;
	struct attest_verify_opts o = {.time_mode = ATTEST_TIME_AT, .at = t};
	EXPECT(V, buf, len, &o, 0, ATTEST_CHECK_NONE, "at its timestamp");
	o.at = t + 4 * 3600;
	EXPECT(V, buf, len, &o, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "4 h later: leaf expired");
	o.at = t + 301;
	EXPECT(V, buf, len, &o, APP_EEXPIRED, ATTEST_CHECK_FRESHNESS, "301 s later: stale");
	o.max_age = 3600;
	EXPECT(V, buf, len, &o, 0, ATTEST_CHECK_NONE, "301 s later with a 1 h window");
	o.max_age = 0;
	o.at = t - 30; /* timestamp 30 s ahead of T: within the skew, leaf already valid (issued ~42 s before) */
	EXPECT(V, buf, len, &o, 0, ATTEST_CHECK_NONE, "30 s before (skew)");
	o.at = t - 3600;
	EXPECT(V, buf, len, &o, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "1 h before: leaf not yet valid");
	/* The same with the cache off. */
	struct attest_verifier *nc = NULL;
	CHECK_OK(attest_verifier_new(&nc));
	attest_verifier_set_cache(nc, 0);
	o.at = t + 4 * 3600;
	EXPECT(nc, buf, len, &o, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "uncached, 4 h later");
	o.at = t;
	struct attest_result res;
	CHECK_OK(attest_verify_bytes(nc, &res, NULL, buf, len, &o));
	CHECK(!res.cached);
	CHECK_OK(attest_verify_bytes(nc, &res, NULL, buf, len, &o));
	CHECK(!res.cached);
	attest_verifier_free(nc);
	free(buf);
}

static void test_tagged_and_trailing(void)
{
	size_t len = 0;
	uint8_t *buf = load(DOC_2026, &len);
	CHECK(buf != NULL);
	if (!buf)
		return;
	uint8_t *t = malloc(len + 2);
	t[0] = 0xd2;
	memcpy(t + 1, buf, len);
	struct attest_doc *d = NULL;
	CHECK_OK(attest_doc_parse(&d, NULL, t, len + 1));
	CHECK(d && d->tagged);
	attest_doc_free(d);
	EXPECT(V, t, len + 1, &AS_OF, 0, ATTEST_CHECK_NONE, "tagged copy");
	t[0] = 0xd1; /* tag 17 (COSE_Mac0) */
	EXPECT(V, t, len + 1, &AS_OF, APP_EPARSE, ATTEST_CHECK_COSE, "tag 17");
	t[0] = 0xd2;
	t[len + 1] = 0x00;
	EXPECT(V, t, len + 2, &AS_OF, APP_EPARSE, ATTEST_CHECK_COSE, "tagged + trailing byte");
	memcpy(t, buf, len);
	t[len] = 0xf6;
	EXPECT(V, t, len + 1, &AS_OF, APP_EPARSE, ATTEST_CHECK_COSE, "trailing null");
	/* Double tag. */
	uint8_t *tt = malloc(len + 2);
	tt[0] = 0xd2;
	tt[1] = 0xd2;
	memcpy(tt + 2, buf, len);
	EXPECT(V, tt, len + 2, &AS_OF, APP_EPARSE, ATTEST_CHECK_COSE, "two tags");
	/* Every strict prefix fails cleanly. */
	int bad = 0;
	for (size_t n = 0; n < len; n += (n < 64 ? 1 : 97)) {
		struct attest_doc *p = NULL;
		if (attest_doc_parse(&p, NULL, buf, n) == 0)
			bad++;
		attest_doc_free(p);
	}
	CHECK(bad == 0);
	free(tt);
	free(t);
	free(buf);
}

static void test_corrupted(void)
{
	size_t len = 0;
	uint8_t *txt = load(DOC_CORRUPT, &len);
	CHECK(txt != NULL);
	if (!txt)
		return;
	uint8_t *doc = NULL;
	size_t dlen = 0;
	int r = attest_decode_text(&doc, &dlen, txt, len);
	if (r == 0) {
		struct attest_result res;
		struct attest_doc *d = NULL;
		r = attest_doc_parse(&d, &res, doc, dlen);
		CHECKM(r == APP_EPARSE && d == NULL && res.check != ATTEST_CHECK_NONE, "corrupted: %d %s", r, res.reason);
		/* 3 bytes missing inside: a truncated CBOR item, refused by the parser proper. */
		CHECK(dlen == 4482 - 3);
	} else {
		CHECK(r == APP_EPARSE);
	}
	free(doc);
	free(txt);
}

static void test_decode_text(void)
{
	size_t len = 0;
	uint8_t *buf = load(DOC_2022, &len);
	CHECK(buf != NULL);
	if (!buf)
		return;
	char *hx = malloc(2 * len + 4);
	hex_encode(hx + 1, buf, len);
	hx[0] = ' ';
	hx[2 * len + 1] = '\n';
	hx[2 * len + 2] = 0;
	uint8_t *out = NULL;
	size_t olen = 0;
	CHECK_OK(attest_decode_text(&out, &olen, (uint8_t *)hx, strlen(hx)));
	CHECK(olen == len && out && memcmp(out, buf, len) == 0);
	free(out);
	char *b = malloc(len * 2 + 8);
	size_t bl = 0;
	{
		static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		for (size_t i = 0; i < len; i += 3) {
			uint32_t v = (uint32_t)buf[i] << 16 | (i + 1 < len ? (uint32_t)buf[i + 1] << 8 : 0) |
				     (i + 2 < len ? buf[i + 2] : 0);
			b[bl++] = tbl[(v >> 18) & 63];
			b[bl++] = tbl[(v >> 12) & 63];
			b[bl++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
			b[bl++] = i + 2 < len ? tbl[v & 63] : '=';
		}
		b[bl++] = '\n';
	}
	CHECK_OK(attest_decode_text(&out, &olen, (uint8_t *)b, bl));
	CHECK(olen == len && out && memcmp(out, buf, len) == 0);
	free(out);
	CHECK_OK(attest_decode_text(&out, &olen, buf, len));
	CHECK(olen == len && out && memcmp(out, buf, len) == 0);
	free(out);
	CHECK_ERR(attest_decode_text(&out, &olen, (const uint8_t *)"not a doc!", 10), APP_EPARSE);
	CHECK_ERR(attest_decode_text(&out, &olen, (const uint8_t *)"   ", 3), APP_EPARSE);
	free(b);
	free(hx);
	free(buf);
}

/* find: offset of needle in hay, or SIZE_MAX. */
static size_t find(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
	const uint8_t *p = memmem(hay, hlen, needle, nlen);
	return p ? (size_t)(p - hay) : SIZE_MAX;
}

static void flip_expect(const uint8_t *buf, size_t len, size_t off, uint8_t x, int err, enum attest_check chk,
			const char *what)
{
	CHECKM(off < len, "%s: region not found", what);
	if (off >= len)
		return;
	uint8_t *m = malloc(len);
	memcpy(m, buf, len);
	m[off] ^= x;
	EXPECT(V, m, len, &AS_OF, err, chk, what);
	free(m);
}

/* A flipped byte in every region of the real 2026 document. */
static void test_flip_regions(void)
{
	size_t len = 0;
	uint8_t *buf = load(DOC_2026, &len), *b22 = NULL;
	struct attest_doc *d = NULL;
	CHECK(buf != NULL);
	if (!buf || attest_doc_parse(&d, NULL, buf, len) != 0)
		goto out;
	/* envelope */
	flip_expect(buf, len, 0, 0x01, APP_EPARSE, ATTEST_CHECK_COSE, "array(4) -> array(5)");
	flip_expect(buf, len, 1, 0x01, APP_EPARSE, ATTEST_CHECK_COSE, "protected bstr head");
	flip_expect(buf, len, 2, 0x01, APP_EPARSE, ATTEST_CHECK_ALG, "protected map(1) -> map(0)");
	flip_expect(buf, len, 3, 0x01, APP_EPARSE, ATTEST_CHECK_ALG, "protected key 1 -> 0");
	flip_expect(buf, len, 5, 0x01, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "alg -35 -> -36");
	flip_expect(buf, len, 5, 0x28, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "alg -35 -> -7 (ES256)");
	flip_expect(buf, len, 6, 0x01, APP_EPARSE, ATTEST_CHECK_COSE, "unprotected {} -> {k: ...}");
	/* payload fields */
	size_t o = find(buf, len, (const uint8_t *)d->module_id, strlen(d->module_id));
	flip_expect(buf, len, o + 5, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "module_id");
	o = find(buf, len, (const uint8_t *)"SHA384", 6);
	flip_expect(buf, len, o + 5, 0x01, APP_EUNSUPPORTED, ATTEST_CHECK_DIGEST, "digest SHA384 -> SHA385");
	o = find(buf, len, (const uint8_t *)"timestamp", 9);
	flip_expect(buf, len, o + 9 + 8, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "timestamp (low byte)");
	for (int i = 0; i < 16; i += 5) {
		char what[32];
		snprintf(what, sizeof what, "PCR%d", i);
		o = find(buf, len, d->pcrs[i], 48);
		if (i == 3 || i == 8) /* zero PCRs are not unique */
			continue;
		flip_expect(buf, len, o + 17, 0x80, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, what);
	}
	o = find(buf, len, d->pcrs[4], 48);
	flip_expect(buf, len, o + 47, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "PCR4 last byte");
	o = find(buf, len, d->certificate, d->certificate_len);
	flip_expect(buf, len, o + d->certificate_len - 1, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE,
		    "certificate (its signature)");
	size_t cn = find(d->certificate, d->certificate_len, (const uint8_t *)"i-0368fa67e156d6d23", 19);
	flip_expect(buf, len, o + cn + 5, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "certificate (subject CN)");
	flip_expect(buf, len, o, 0x01, APP_ECHAIN, ATTEST_CHECK_CERT, "certificate (DER head)");
	o = find(buf, len, d->cabundle[0], d->cabundle_len[0]);
	flip_expect(buf, len, o + 100, 0x01, APP_ECHAIN, ATTEST_CHECK_ROOT, "cabundle[0]");
	for (size_t i = 1; i < d->cabundle_n; i++) {
		char what[32];
		snprintf(what, sizeof what, "cabundle[%zu]", i);
		o = find(buf, len, d->cabundle[i], d->cabundle_len[i]);
		flip_expect(buf, len, o + d->cabundle_len[i] - 1, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, what);
	}
	o = find(buf, len, d->user_data, d->user_data_len);
	flip_expect(buf, len, o, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "user_data");
	flip_expect(buf, len, len - 1, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "signature (s)");
	flip_expect(buf, len, len - 96, 0x01, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "signature (r)");
	flip_expect(buf, len, len - 97, 0x01, APP_EPARSE, ATTEST_CHECK_COSE, "signature length");
	/* nonce: the 2022 document carries one */
	size_t l22 = 0;
	b22 = load(DOC_2022, &l22);
	struct attest_doc *d22 = NULL;
	if (b22 && attest_doc_parse(&d22, NULL, b22, l22) == 0 && d22->nonce) {
		o = find(b22, l22, d22->nonce, d22->nonce_len);
		CHECK(o < l22);
		if (o < l22) {
			b22[o + 7] ^= 0x40;
			EXPECT(V, b22, l22, &AS_OF, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "nonce");
		}
	} else {
		CHECK(!"2022 document with a nonce");
	}
	attest_doc_free(d22);
out:
	attest_doc_free(d);
	free(b22);
	free(buf);
}

/* No single-byte change anywhere makes a real document verify (sampled every 3rd byte, two patterns). */
static void test_flip_sweep(void)
{
	size_t len = 0;
	uint8_t *buf = load(DOC_2026, &len);
	CHECK(buf != NULL);
	if (!buf)
		return;
	uint8_t *m = malloc(len);
	int accepted = 0, n = 0;
	for (size_t i = 0; i < len; i += 3) {
		memcpy(m, buf, len);
		m[i] ^= (i % 2) ? 0x01 : 0xff;
		struct attest_result res;
		if (attest_verify_bytes(V, &res, NULL, m, len, &AS_OF) == 0)
			accepted++;
		n++;
	}
	CHECKM(accepted == 0, "%d of %d mutations accepted", accepted, n);
	free(m);
	free(buf);
}

/* ---- re-signed development documents ---- */

struct fx {
	struct devca *ca;
	struct devca_leaf *leaf;
	struct attest_verifier *v; /* AWS + the dev root */
	uint8_t pcrs[32][48];
	struct devca_doc d;
	uint64_t now;
	struct attest_verify_opts o; /* allow_dev, T = now */
};

static const char MODULE_ID[] = "i-0123456789abcdef0-enc019b8596b1a9dad6";

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	f->now = (uint64_t)time(NULL);
	CHECK_OK(devca_new_ephemeral(&f->ca, f->now));
	CHECK_OK(devca_issue_leaf(f->ca, &f->leaf, "i-0123456789abcdef0", MODULE_ID, f->now));
	CHECK_OK(attest_verifier_new(&f->v));
	uint8_t *root = NULL;
	size_t rl = 0;
	CHECK_OK(devca_root_der(f->ca, &root, &rl));
	CHECK_OK(attest_verifier_add_dev_root(f->v, root, rl));
	CHECK_ERR(attest_verifier_add_dev_root(f->v, root, rl), APP_EEXIST);
	free(root);
	for (int i = 0; i < 32; i++)
		memset(f->pcrs[i], i < 16 && i != 3 && i < 5 ? 0x10 + i : 0, 48);
	static const uint8_t pk[32] = {1, 2, 3};
	f->d = (struct devca_doc){.module_id = MODULE_ID,
				  .digest = "SHA384",
				  .timestamp_ms = f->now * 1000 + 123,
				  .pcr_mask = 0xffff,
				  .pcrs = (const uint8_t(*)[48])f->pcrs,
				  .public_key = pk,
				  .public_key_len = sizeof pk};
	f->o = (struct attest_verify_opts){.time_mode = ATTEST_TIME_AT, .at = f->now, .allow_dev = 1};
}

static void fx_free(struct fx *f)
{
	devca_leaf_free(f->leaf);
	devca_free(f->ca);
	attest_verifier_free(f->v);
}

static uint8_t *fx_doc(struct fx *f, const struct devca_doc *d, size_t *len)
{
	uint8_t *out = NULL;
	int r = devca_attest(f->leaf, &out, len, d);
	CHECKM(r == 0, "devca_attest %d", r);
	return out;
}

/* fx_payload: the payload of d as a libcbor map to mutate. */
static cbor_item_t *fx_payload(struct fx *f, const struct devca_doc *d)
{
	uint8_t *p = NULL;
	size_t n = 0;
	cbor_item_t *m = NULL;
	if (devca_payload_encode(f->leaf, &p, &n, d) == 0) {
		struct cbor_load_result lr;
		m = cbor_load(p, n, &lr);
	}
	free(p);
	CHECK(m != NULL);
	return m;
}

/* fx_sign: a COSE_Sign1 over the encoding of payload (consumed) with the fixture's leaf. */
static uint8_t *fx_sign_with(struct devca_leaf *leaf, cbor_item_t *payload, size_t *len, const uint8_t *prot,
			     size_t plen)
{
	uint8_t *p = NULL, *out = NULL;
	size_t n = 0;
	*len = 0;
	if (payload && strictcbor_serialize(&p, &n, payload, 1 << 20) == 0)
		CHECK_OK(devca_cose_sign1(leaf, &out, len, prot, plen, p, n, 0));
	free(p);
	if (payload)
		cbor_decref(&payload);
	return out;
}

static uint8_t *fx_sign(struct fx *f, cbor_item_t *payload, size_t *len)
{
	return fx_sign_with(f->leaf, payload, len, NULL, 0);
}

static struct cbor_pair *pair_of(cbor_item_t *m, const char *k)
{
	for (size_t i = 0; i < cbor_map_size(m); i++)
		if (strictcbor_text_is(cbor_map_handle(m)[i].key, k))
			return &cbor_map_handle(m)[i];
	return NULL;
}

/* set_val: replaces the value of key k (takes v). */
static void set_val(cbor_item_t *m, const char *k, cbor_item_t *v)
{
	struct cbor_pair *p = pair_of(m, k);
	CHECK(p != NULL && v != NULL);
	if (!p)
		return;
	cbor_decref(&p->value);
	p->value = v;
}

/* rebuild: a new definite map: m without key `drop` (may be NULL), plus (k, v) when k is given (takes m, v). */
static cbor_item_t *rebuild(cbor_item_t *m, const char *drop, const char *k, cbor_item_t *v)
{
	cbor_item_t *n = cbor_new_definite_map(cbor_map_size(m) + 1);
	for (size_t i = 0; i < cbor_map_size(m); i++) {
		struct cbor_pair p = cbor_map_handle(m)[i];
		if (drop && strictcbor_text_is(p.key, drop))
			continue;
		CHECK(cbor_map_add(n, p));
	}
	if (k)
		CHECK(strictcbor_map_put(n, strictcbor_text(k), v) == 0);
	cbor_decref(&m);
	return n;
}

/* bundle_of: a new cabundle array of the leaf's chain entries in `order` (-1 terminated; 9 = another root). */
static cbor_item_t *bundle_of(const struct devca_leaf *leaf, const int *order, const uint8_t *other, size_t olen)
{
	cbor_item_t *a = cbor_new_indefinite_array();
	for (const int *i = order; *i >= 0; i++) {
		const uint8_t *der;
		size_t dl;
		cbor_item_t *b;
		if (*i == 9) {
			b = strictcbor_bytes(other, olen);
		} else {
			CHECK_OK(devca_leaf_chain(leaf, (size_t)*i, &der, &dl));
			b = strictcbor_bytes(der, dl);
		}
		CHECK(cbor_array_push(a, b));
		cbor_decref(&b);
	}
	return a;
}

static void test_dev_valid(void)
{
	struct fx f;
	fx_init(&f);
	size_t len = 0;
	uint8_t *doc = fx_doc(&f, &f.d, &len);
	struct attest_result res;
	struct attest_doc *d = NULL;
	CHECK_OK(attest_verify_bytes(f.v, &res, &d, doc, len, &f.o));
	CHECK(res.dev == 1 && res.check == ATTEST_CHECK_NONE && !res.cached);
	CHECK(d && d->public_key_len == 32 && d->user_data == NULL && d->nonce == NULL && !attest_doc_root_is_aws(d));
	CHECK(d && __builtin_popcount(d->pcr_mask) == 16 && memcmp(d->pcrs[1], f.pcrs[1], 48) == 0);
	CHECK(res.leaf_not_after == devca_leaf_not_after(f.leaf));
	CHECK(res.leaf_not_after - res.leaf_not_before == DEVCA_LEAF_LIFETIME + DEVCA_LEAF_BACKDATE);
	attest_doc_free(d);
	/* Second time: the intermediate chain comes from the cache. */
	CHECK_OK(attest_verify_bytes(f.v, &res, NULL, doc, len, &f.o));
	CHECK(res.cached == 1);
	/* Only with the dev root and only when allowed. */
	struct attest_verify_opts nodev = f.o;
	nodev.allow_dev = 0;
	EXPECT(f.v, doc, len, &nodev, APP_EREFUSED, ATTEST_CHECK_DEV_ROOT, "dev root, dev not allowed");
	EXPECT(V, doc, len, &f.o, APP_ECHAIN, ATTEST_CHECK_ROOT, "dev document, AWS-only verifier");
	/* Indefinite payload map and a tagged envelope verify too. */
	struct devca_doc di = f.d;
	di.indefinite_map = 1;
	free(doc);
	doc = fx_doc(&f, &di, &len);
	CHECK_OK(attest_verify_bytes(f.v, &res, &d, doc, len, &f.o));
	CHECK(d && d->payload_indefinite);
	attest_doc_free(d);
	free(doc);
	fx_free(&f);
}

static void test_dev_chain_mutations(void)
{
	struct fx f;
	fx_init(&f);
	struct devca *other = NULL;
	uint8_t *oroot = NULL;
	size_t olen = 0, len = 0;
	CHECK_OK(devca_new_ephemeral(&other, f.now));
	CHECK_OK(devca_root_der(other, &oroot, &olen));
	static const struct {
		int order[6];
		int err;
		enum attest_check chk;
		const char *what;
	} cases[] = {
		{{0, 1, 2, 3, -1}, 0, ATTEST_CHECK_NONE, "indefinite cabundle array, in order"},
		{{0, 2, 1, 3, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "regional and zonal swapped"},
		{{0, 1, 3, 2, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "zonal and instance swapped"},
		{{3, 2, 1, 0, -1}, APP_ECHAIN, ATTEST_CHECK_ROOT, "reversed"},
		{{0, 2, 3, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "regional missing"},
		{{0, 1, 2, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "instance missing"},
		{{1, 2, 3, -1}, APP_ECHAIN, ATTEST_CHECK_ROOT, "root missing"},
		{{0, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "root only"},
		{{9, 1, 2, 3, -1}, APP_ECHAIN, ATTEST_CHECK_ROOT, "self-made root in cabundle[0]"},
		{{0, 1, 2, 3, 3, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "instance twice"},
		{{0, 1, 1, 2, 3, -1}, APP_ECHAIN, ATTEST_CHECK_CHAIN, "regional twice"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cbor_item_t *m = fx_payload(&f, &f.d);
		set_val(m, "cabundle", bundle_of(f.leaf, cases[i].order, oroot, olen));
		uint8_t *doc = fx_sign(&f, m, &len);
		EXPECT(f.v, doc, len, &f.o, cases[i].err, cases[i].chk, cases[i].what);
		free(doc);
	}
	/* The self-made root pinned as well: the chain under it still does not hold. */
	CHECK_OK(attest_verifier_add_dev_root(f.v, oroot, olen));
	cbor_item_t *m = fx_payload(&f, &f.d);
	static const int fake[] = {9, 1, 2, 3, -1};
	set_val(m, "cabundle", bundle_of(f.leaf, fake, oroot, olen));
	uint8_t *doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ECHAIN, ATTEST_CHECK_CHAIN, "pinned foreign root over our intermediates");
	free(doc);
	/* A leaf from another CA presented with our (cached) cabundle. */
	struct devca_leaf *ol = NULL;
	CHECK_OK(devca_issue_leaf(other, &ol, "i-0123456789abcdef0", MODULE_ID, f.now));
	size_t l1 = 0;
	uint8_t *good = fx_doc(&f, &f.d, &l1);
	struct attest_result res;
	CHECK_OK(attest_verify_bytes(f.v, &res, NULL, good, l1, &f.o)); /* fills the cache */
	m = fx_payload(&f, &f.d);
	const uint8_t *oc;
	size_t ocl;
	devca_leaf_cert(ol, &oc, &ocl);
	set_val(m, "certificate", strictcbor_bytes(oc, ocl));
	doc = fx_sign_with(ol, m, &len, NULL, 0);
	EXPECT(f.v, doc, len, &f.o, APP_ECHAIN, ATTEST_CHECK_CHAIN, "foreign leaf, cached cabundle");
	attest_verifier_set_cache(f.v, 0);
	EXPECT(f.v, doc, len, &f.o, APP_ECHAIN, ATTEST_CHECK_CHAIN, "foreign leaf, uncached");
	attest_verifier_set_cache(f.v, 1);
	free(doc);
	/* Signed by another key than the certificate's. */
	m = fx_payload(&f, &f.d);
	doc = fx_sign_with(ol, m, &len, NULL, 0);
	EXPECT(f.v, doc, len, &f.o, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "signed by a different leaf key");
	free(doc);
	/* Leaf expired / cached chain at a later time. */
	struct attest_verify_opts late = f.o;
	late.at = f.now + DEVCA_LEAF_LIFETIME + 10;
	late.max_age = 10 * 3600;
	EXPECT(f.v, good, l1, &late, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "leaf expired (cached chain)");
	late.at = f.now + 30 * 86400;
	EXPECT(f.v, good, l1, &late, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "intermediates expired");
	free(good);
	devca_leaf_free(ol);
	devca_free(other);
	free(oroot);
	fx_free(&f);
}

static void test_dev_leaf_profile(void)
{
	struct fx f;
	fx_init(&f);
	static const struct {
		unsigned flags;
		const char *what;
	} cases[] = {
		{DEVCA_TEST_LEAF_CA, "leaf CA:TRUE"},
		{DEVCA_TEST_LEAF_NO_DIGSIG, "leaf without digitalSignature"},
		{DEVCA_TEST_LEAF_P256, "leaf P-256 key"},
		{DEVCA_TEST_LEAF_SHA256, "leaf signed ecdsa-with-SHA256"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct devca_leaf *l = NULL;
		size_t len = 0;
		uint8_t *doc = NULL;
		CHECK_OK(devca_issue_leaf_test(f.ca, &l, "i-0123456789abcdef0", MODULE_ID, f.now, cases[i].flags));
		CHECK_OK(devca_attest(l, &doc, &len, &f.d));
		EXPECT(f.v, doc, len, &f.o, APP_ECHAIN, ATTEST_CHECK_CERT, cases[i].what);
		free(doc);
		devca_leaf_free(l);
	}
	fx_free(&f);
}

static void test_dev_payload_mutations(void)
{
	struct fx f;
	fx_init(&f);
	size_t len = 0;
	uint8_t *doc;
	uint8_t big[1100];
	memset(big, 0x5a, sizeof big);
	/* null mandatory fields */
	static const char *const mandatory[] = {"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"};
	for (size_t i = 0; i < 6; i++) {
		cbor_item_t *m = fx_payload(&f, &f.d);
		set_val(m, mandatory[i], cbor_new_null());
		doc = fx_sign(&f, m, &len);
		EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, mandatory[i]);
		free(doc);
		/* missing */
		m = rebuild(fx_payload(&f, &f.d), mandatory[i], NULL, NULL);
		doc = fx_sign(&f, m, &len);
		EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "missing mandatory key");
		free(doc);
	}
	/* optional fields absent altogether: fine */
	cbor_item_t *m = rebuild(rebuild(rebuild(fx_payload(&f, &f.d), "nonce", NULL, NULL), "user_data", NULL, NULL),
				 "public_key", NULL, NULL);
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, 0, ATTEST_CHECK_NONE, "optional keys absent");
	free(doc);
	/* unknown and duplicate keys */
	m = rebuild(fx_payload(&f, &f.d), NULL, "extra", cbor_new_null());
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "unknown key");
	free(doc);
	m = rebuild(fx_payload(&f, &f.d), NULL, "nonce", cbor_new_null());
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "duplicate key nonce");
	free(doc);
	m = rebuild(fx_payload(&f, &f.d), NULL, "pcrs", cbor_new_definite_map(0));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "duplicate key pcrs");
	free(doc);
	/* oversize fields */
	struct devca_doc d = f.d;
	d.user_data = big;
	d.user_data_len = 1025;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "user_data 1025 bytes");
	free(doc);
	d.user_data_len = 1024;
	d.nonce = big;
	d.nonce_len = 1024;
	d.public_key = big;
	d.public_key_len = 1024;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, 0, ATTEST_CHECK_NONE, "three 1024-byte fields");
	free(doc);
	d.nonce_len = 1025;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "nonce 1025 bytes");
	free(doc);
	d = f.d;
	d.public_key = big;
	d.public_key_len = 1025;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "public_key 1025 bytes");
	free(doc);
	d.public_key_len = 0;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "public_key empty");
	free(doc);
	char longid[300];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = 0;
	d = f.d;
	d.module_id = longid;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "module_id 299 bytes");
	free(doc);
	d.module_id = "";
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "module_id empty");
	free(doc);
	d.module_id = "i-01 space";
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "module_id with a space");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "certificate", strictcbor_bytes(big, 1025));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "certificate 1025 bytes");
	free(doc);
	static const int nine[] = {0, 1, 2, 3, 3, 3, 3, 3, 3, -1};
	m = fx_payload(&f, &f.d);
	set_val(m, "cabundle", bundle_of(f.leaf, nine, NULL, 0));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "cabundle of 9");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "cabundle", cbor_new_definite_array(0));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "cabundle empty");
	free(doc);
	/* A whole document over 16 KiB. */
	uint8_t *huge = calloc(1, ATTEST_DOC_MAX + 1);
	huge[0] = 0x84;
	EXPECT(f.v, huge, ATTEST_DOC_MAX + 1, &f.o, APP_ETOOBIG, ATTEST_CHECK_COSE, "document 16385 bytes");
	free(huge);
	/* wrong digest, wrong types */
	d = f.d;
	d.digest = "SHA256";
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EUNSUPPORTED, ATTEST_CHECK_DIGEST, "digest SHA256");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "digest", strictcbor_uint(384));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "digest not text");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "timestamp", strictcbor_uint(0));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "timestamp 0");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "timestamp", strictcbor_text("now"));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "timestamp text");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "user_data", strictcbor_text("text"));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "user_data text");
	free(doc);
	/* PCR map shape */
	d = f.d;
	d.pcr_mask = 0xfffe;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR0 missing");
	free(doc);
	m = fx_payload(&f, &f.d);
	cbor_item_t *pm = pair_of(m, "pcrs")->value;
	struct cbor_pair *pp = &cbor_map_handle(pm)[5];
	cbor_decref(&pp->value);
	pp->value = strictcbor_bytes(big, 32);
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR5 of 32 bytes");
	free(doc);
	m = fx_payload(&f, &f.d);
	pm = pair_of(m, "pcrs")->value;
	pp = &cbor_map_handle(pm)[5];
	cbor_decref(&pp->key);
	pp->key = strictcbor_uint(32);
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR index 32");
	free(doc);
	m = fx_payload(&f, &f.d);
	pm = pair_of(m, "pcrs")->value;
	pp = &cbor_map_handle(pm)[5];
	cbor_decref(&pp->key);
	pp->key = strictcbor_uint(4);
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR4 twice");
	free(doc);
	m = fx_payload(&f, &f.d);
	set_val(m, "pcrs", cbor_new_definite_map(0));
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "pcrs empty");
	free(doc);
	/* payload not a map; nested too deep */
	doc = fx_sign(&f, cbor_new_definite_array(0), &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "payload an array");
	free(doc);
	m = fx_payload(&f, &f.d);
	cbor_item_t *deep = cbor_new_definite_array(1), *deeper = cbor_new_definite_array(1), *z = cbor_new_null();
	CHECK(cbor_array_push(deeper, z) && cbor_array_push(deep, deeper));
	cbor_decref(&z);
	cbor_decref(&deeper);
	set_val(m, "nonce", deep);
	doc = fx_sign(&f, m, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "nesting depth 4");
	free(doc);
	fx_free(&f);
}

static void test_dev_envelope_mutations(void)
{
	struct fx f;
	fx_init(&f);
	size_t len = 0;
	static const struct {
		uint8_t prot[12];
		size_t len;
		int err;
		enum attest_check chk;
		const char *what;
	} cases[] = {
		{{0xa1, 0x01, 0x38, 0x22}, 4, 0, ATTEST_CHECK_NONE, "ES384"},
		{{0xa1, 0x01, 0x26}, 3, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "ES256 (-7)"},
		{{0xa1, 0x01, 0x38, 0x23}, 4, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "ES512 (-36)"},
		{{0xa1, 0x01, 0x01}, 3, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "alg 1"},
		{{0xa1, 0x01, 0x65, 'E', 'S', '3', '8', '4'}, 8, APP_EPARSE, ATTEST_CHECK_ALG, "alg as text"},
		{{0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x00}, 7, APP_EPARSE, ATTEST_CHECK_ALG, "alg + kid"},
		{{0xa0}, 1, APP_EPARSE, ATTEST_CHECK_ALG, "empty map"},
		{{0xa1, 0x01, 0x38, 0x22, 0x00}, 5, APP_EPARSE, ATTEST_CHECK_ALG, "trailing byte in header"},
		{{0xa1, 0x18, 0x01, 0x38, 0x22}, 5, 0, ATTEST_CHECK_NONE, "non-minimal key width (same map)"},
		{{0}, 0, APP_EPARSE, ATTEST_CHECK_ALG, "empty protected bstr"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cbor_item_t *m = fx_payload(&f, &f.d);
		uint8_t *doc = fx_sign_with(f.leaf, m, &len, cases[i].len ? cases[i].prot : (const uint8_t *)"", cases[i].len);
		EXPECT(f.v, doc, len, &f.o, cases[i].err, cases[i].chk, cases[i].what);
		free(doc);
	}
	/* Hand-made envelopes around a valid payload. */
	uint8_t *good = fx_doc(&f, &f.d, &len);
	struct attest_doc *d = NULL;
	CHECK_OK(attest_doc_parse(&d, NULL, good, len));
	struct cbor_load_result lr;
	cbor_item_t *arr = cbor_load(good, len, &lr);
	CHECK(arr && cbor_array_size(arr) == 4);
	/* unprotected header not empty */
	cbor_item_t *a2 = cbor_new_definite_array(4), *um = cbor_new_definite_map(1);
	CHECK(strictcbor_map_put(um, strictcbor_uint(4), strictcbor_bytes((const uint8_t *)"k", 1)) == 0);
	cbor_item_t *items[4] = {cbor_array_get(arr, 0), um, cbor_array_get(arr, 2), cbor_array_get(arr, 3)};
	for (int i = 0; i < 4; i++) {
		CHECK(cbor_array_push(a2, items[i]));
		cbor_decref(&items[i]);
	}
	uint8_t *out = NULL;
	size_t ol = 0;
	CHECK_OK(strictcbor_serialize(&out, &ol, a2, 1 << 20));
	EXPECT(f.v, out, ol, &f.o, APP_EPARSE, ATTEST_CHECK_COSE, "unprotected header not empty");
	free(out);
	cbor_decref(&a2);
	/* signature of 95 / 97 bytes, payload text, array of 3 */
	for (int k = 0; k < 4; k++) {
		a2 = k == 3 ? cbor_new_definite_array(3) : cbor_new_definite_array(4);
		for (size_t i = 0; i < (k == 3 ? 3u : 4u); i++) {
			cbor_item_t *x = cbor_array_get(arr, i);
			if (i == 3 && k < 2) {
				cbor_decref(&x);
				uint8_t s[97] = {0};
				x = strictcbor_bytes(s, k == 0 ? 95 : 97);
			}
			if (i == 2 && k == 2) {
				cbor_decref(&x);
				x = strictcbor_text("payload");
			}
			CHECK(cbor_array_push(a2, x));
			cbor_decref(&x);
		}
		CHECK_OK(strictcbor_serialize(&out, &ol, a2, 1 << 20));
		EXPECT(f.v, out, ol, &f.o, APP_EPARSE, ATTEST_CHECK_COSE, k < 2 ? "signature length" : k == 2 ? "payload text" : "array of 3");
		free(out);
		cbor_decref(&a2);
	}
	/* Signature r = 0, s = n (both out of range): refused as a bad signature. */
	uint8_t *z = malloc(len);
	memcpy(z, good, len);
	memset(z + len - 96, 0, 48);
	EXPECT(f.v, z, len, &f.o, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "r = 0");
	static const uint8_t n384[48] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2,
					0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73};
	memcpy(z, good, len);
	memcpy(z + len - 48, n384, 48);
	EXPECT(f.v, z, len, &f.o, APP_EBADSIG, ATTEST_CHECK_SIGNATURE, "s = n");
	free(z);
	cbor_decref(&arr);
	attest_doc_free(d);
	free(good);
	fx_free(&f);
}

static void test_dev_freshness_debug_policy(void)
{
	struct fx f;
	fx_init(&f);
	size_t len = 0;
	struct devca_doc d = f.d;
	d.timestamp_ms = (f.now + 600) * 1000;
	uint8_t *doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_ERANGE, ATTEST_CHECK_FRESHNESS, "timestamp 10 min in the future");
	free(doc);
	d.timestamp_ms = (f.now - 400) * 1000;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EEXPIRED, ATTEST_CHECK_FRESHNESS, "timestamp 400 s old");
	free(doc);
	/* debug: PCR0 all zero (PCR1/2 too), authentic otherwise */
	uint8_t pcrs[32][48];
	memcpy(pcrs, f.pcrs, sizeof pcrs);
	memset(pcrs[0], 0, 48);
	memset(pcrs[1], 0, 48);
	memset(pcrs[2], 0, 48);
	d = f.d;
	d.pcrs = (const uint8_t(*)[48])pcrs;
	doc = fx_doc(&f, &d, &len);
	EXPECT(f.v, doc, len, &f.o, APP_EDEBUG, ATTEST_CHECK_DEBUG, "debug (dev)");
	struct attest_pcr_policy pol = {.mask = 1};
	memset(pol.pcrs[0], 0, 48);
	struct attest_verify_opts po = f.o;
	po.policy = &pol;
	EXPECT(f.v, doc, len, &po, APP_EDEBUG, ATTEST_CHECK_DEBUG, "debug even when the policy expects zeros");
	free(doc);
	/* policy */
	doc = fx_doc(&f, &f.d, &len);
	pol.mask = 0x17;
	for (int i = 0; i < 32; i++)
		memcpy(pol.pcrs[i], f.pcrs[i], 48);
	EXPECT(f.v, doc, len, &po, 0, ATTEST_CHECK_NONE, "policy PCR0,1,2,4 match");
	pol.pcrs[4][47] ^= 1;
	EXPECT(f.v, doc, len, &po, APP_EREFUSED, ATTEST_CHECK_PCR, "policy PCR4 differs");
	pol.pcrs[4][47] ^= 1;
	pol.mask = 1u << 20;
	EXPECT(f.v, doc, len, &po, APP_EREFUSED, ATTEST_CHECK_PCR, "policy PCR20 absent");
	struct attest_doc *pd = NULL;
	CHECK_OK(attest_doc_parse(&pd, NULL, doc, len));
	pol.mask = 0;
	CHECK_ERR(attest_pcr_policy_check(pd, &pol, NULL), APP_EINVAL);
	attest_doc_free(pd);
	free(doc);
	fx_free(&f);
}

static void test_verifier_roots(void)
{
	struct attest_verifier *v = NULL;
	CHECK_OK(attest_verifier_new(&v));
	size_t len = 0;
	uint8_t *der = load("aws_nitro_root_g1.der", &len);
	CHECK_ERR(attest_verifier_add_dev_root(v, der, len), APP_EEXIST);
	CHECK_ERR(attest_verifier_add_dev_root(v, der, len - 1), APP_EPARSE);
	free(der);
	char path[512];
	const char *root = getenv("APPLIANCE_ROOT");
	snprintf(path, sizeof path, "%s/tests/vectors/nitro/aws_nitro_root_g1.pem", root ? root : ".");
	CHECK_ERR(attest_verifier_add_dev_root_file(v, path), APP_EEXIST);
	CHECK_ERR(attest_verifier_add_dev_root_file(v, "/nonexistent/root.pem"), APP_ENOENT);
	/* A leaf-profile certificate is not a root. */
	struct devca *ca = NULL;
	struct devca_leaf *leaf = NULL;
	CHECK_OK(devca_new_ephemeral(&ca, 0));
	CHECK_OK(devca_issue_leaf(ca, &leaf, "i-0123456789abcdef0", MODULE_ID, 0));
	const uint8_t *lc;
	size_t ll;
	devca_leaf_cert(leaf, &lc, &ll);
	CHECK_ERR(attest_verifier_add_dev_root(v, lc, ll), APP_EPARSE);
	const uint8_t *inst;
	size_t il;
	CHECK_OK(devca_leaf_chain(leaf, 3, &inst, &il));
	CHECK_ERR(attest_verifier_add_dev_root(v, inst, il), APP_EPARSE); /* a CA, but not self-issued */
	CHECK_ERR(devca_leaf_chain(leaf, 4, &inst, &il), APP_ERANGE);
	devca_leaf_free(leaf);
	devca_free(ca);
	attest_verifier_free(v);
	CHECK_STR(attest_check_name(ATTEST_CHECK_DEV_ROOT), "dev_root");
	CHECK_STR(attest_check_name(ATTEST_CHECK_NONE), "ok");
}

/* One verifier shared by threads: cache insertions, hits and refusals at once. */
struct thr {
	const uint8_t *doc;
	size_t len;
	int ok, refused;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < 12; i++) {
		struct attest_result res;
		struct attest_verify_opts o = AS_OF;
		if (i % 3 == 2)
			o.time_mode = ATTEST_TIME_NOW; /* expired: refused */
		int r = attest_verify_bytes(V, &res, NULL, t->doc, t->len, &o);
		if (r == 0)
			t->ok++;
		else if (r == APP_EEXPIRED)
			t->refused++;
	}
	return NULL;
}

static void test_threads(void)
{
	size_t l1 = 0, l2 = 0;
	uint8_t *a = load(DOC_2026, &l1), *b = load(DOC_2022, &l2);
	CHECK(a && b);
	if (!a || !b) {
		free(a);
		free(b);
		return;
	}
	attest_verifier_set_cache(V, 0); /* start cold */
	attest_verifier_set_cache(V, 1);
	pthread_t th[4];
	struct thr t[4];
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){.doc = i % 2 ? b : a, .len = i % 2 ? l2 : l1};
		CHECK(pthread_create(&th[i], NULL, thr_main, &t[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECKM(t[i].ok == 8 && t[i].refused == 4, "thread %d: %d ok, %d refused", i, t[i].ok, t[i].refused);
	}
	free(a);
	free(b);
}

int main(void)
{
	if (attest_verifier_new(&V) != 0) {
		fprintf(stderr, "attest_verifier_new failed\n");
		return 1;
	}
	RUN(test_samples_json);
	RUN(test_real_time_windows);
	RUN(test_tagged_and_trailing);
	RUN(test_corrupted);
	RUN(test_decode_text);
	RUN(test_flip_regions);
	RUN(test_flip_sweep);
	RUN(test_dev_valid);
	RUN(test_dev_chain_mutations);
	RUN(test_dev_leaf_profile);
	RUN(test_dev_payload_mutations);
	RUN(test_dev_envelope_mutations);
	RUN(test_dev_freshness_debug_policy);
	RUN(test_verifier_roots);
	RUN(test_threads);
	attest_verifier_free(V);
	return test_summary();
}
