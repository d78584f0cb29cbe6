#include "attest.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "hash.h"
#include "hex.h"
#include "strictcbor.h"

/* AWS Nitro Enclaves Root G1 (DER), as published by AWS; SHA-256 = ATTEST_AWS_ROOT_SHA256_HEX. */
static const uint8_t aws_root_g1_der[] = {
	0x30, 0x82, 0x02, 0x11, 0x30, 0x82, 0x01, 0x96, 0xa0, 0x03, 0x02, 0x01,
	0x02, 0x02, 0x11, 0x00, 0xf9, 0x31, 0x75, 0x68, 0x1b, 0x90, 0xaf, 0xe1,
	0x1d, 0x46, 0xcc, 0xb4, 0xe4, 0xe7, 0xf8, 0x56, 0x30, 0x0a, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03, 0x30, 0x49, 0x31, 0x0b,
	0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x31,
	0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x06, 0x41, 0x6d,
	0x61, 0x7a, 0x6f, 0x6e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04,
	0x0b, 0x0c, 0x03, 0x41, 0x57, 0x53, 0x31, 0x1b, 0x30, 0x19, 0x06, 0x03,
	0x55, 0x04, 0x03, 0x0c, 0x12, 0x61, 0x77, 0x73, 0x2e, 0x6e, 0x69, 0x74,
	0x72, 0x6f, 0x2d, 0x65, 0x6e, 0x63, 0x6c, 0x61, 0x76, 0x65, 0x73, 0x30,
	0x1e, 0x17, 0x0d, 0x31, 0x39, 0x31, 0x30, 0x32, 0x38, 0x31, 0x33, 0x32,
	0x38, 0x30, 0x35, 0x5a, 0x17, 0x0d, 0x34, 0x39, 0x31, 0x30, 0x32, 0x38,
	0x31, 0x34, 0x32, 0x38, 0x30, 0x35, 0x5a, 0x30, 0x49, 0x31, 0x0b, 0x30,
	0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x31, 0x0f,
	0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x06, 0x41, 0x6d, 0x61,
	0x7a, 0x6f, 0x6e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x0b,
	0x0c, 0x03, 0x41, 0x57, 0x53, 0x31, 0x1b, 0x30, 0x19, 0x06, 0x03, 0x55,
	0x04, 0x03, 0x0c, 0x12, 0x61, 0x77, 0x73, 0x2e, 0x6e, 0x69, 0x74, 0x72,
	0x6f, 0x2d, 0x65, 0x6e, 0x63, 0x6c, 0x61, 0x76, 0x65, 0x73, 0x30, 0x76,
	0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
	0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04, 0xfc, 0x02,
	0x54, 0xeb, 0xa6, 0x08, 0xc1, 0xf3, 0x68, 0x70, 0xe2, 0x9a, 0xda, 0x90,
	0xbe, 0x46, 0x38, 0x32, 0x92, 0x73, 0x6e, 0x89, 0x4b, 0xff, 0xf6, 0x72,
	0xd9, 0x89, 0x44, 0x4b, 0x50, 0x51, 0xe5, 0x34, 0xa4, 0xb1, 0xf6, 0xdb,
	0xe3, 0xc0, 0xbc, 0x58, 0x1a, 0x32, 0xb7, 0xb1, 0x76, 0x07, 0x0e, 0xde,
	0x12, 0xd6, 0x9a, 0x3f, 0xea, 0x21, 0x1b, 0x66, 0xe7, 0x52, 0xcf, 0x7d,
	0xd1, 0xdd, 0x09, 0x5f, 0x6f, 0x13, 0x70, 0xf4, 0x17, 0x08, 0x43, 0xd9,
	0xdc, 0x10, 0x01, 0x21, 0xe4, 0xcf, 0x63, 0x01, 0x28, 0x09, 0x66, 0x44,
	0x87, 0xc9, 0x79, 0x62, 0x84, 0x30, 0x4d, 0xc5, 0x3f, 0xf4, 0xa3, 0x42,
	0x30, 0x40, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff,
	0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0xff, 0x30, 0x1d, 0x06, 0x03, 0x55,
	0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14, 0x90, 0x25, 0xb5, 0x0d, 0xd9, 0x05,
	0x47, 0xe7, 0x96, 0xc3, 0x96, 0xfa, 0x72, 0x9d, 0xcf, 0x99, 0xa9, 0xdf,
	0x4b, 0x96, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff,
	0x04, 0x04, 0x03, 0x02, 0x01, 0x86, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
	0x48, 0xce, 0x3d, 0x04, 0x03, 0x03, 0x03, 0x69, 0x00, 0x30, 0x66, 0x02,
	0x31, 0x00, 0xa3, 0x7f, 0x2f, 0x91, 0xa1, 0xc9, 0xbd, 0x5e, 0xe7, 0xb8,
	0x62, 0x7c, 0x16, 0x98, 0xd2, 0x55, 0x03, 0x8e, 0x1f, 0x03, 0x43, 0xf9,
	0x5b, 0x63, 0xa9, 0x62, 0x8c, 0x3d, 0x39, 0x80, 0x95, 0x45, 0xa1, 0x1e,
	0xbc, 0xbf, 0x2e, 0x3b, 0x55, 0xd8, 0xae, 0xee, 0x71, 0xb4, 0xc3, 0xd6,
	0xad, 0xf3, 0x02, 0x31, 0x00, 0xa2, 0xf3, 0x9b, 0x16, 0x05, 0xb2, 0x70,
	0x28, 0xa5, 0xdd, 0x4b, 0xa0, 0x69, 0xb5, 0x01, 0x6e, 0x65, 0xb4, 0xfb,
	0xde, 0x8f, 0xe0, 0x06, 0x1d, 0x6a, 0x53, 0x19, 0x7f, 0x9c, 0xda, 0xf5,
	0xd9, 0x43, 0xbc, 0x61, 0xfc, 0x2b, 0xeb, 0x03, 0xcb, 0x6f, 0xee, 0x8d,
	0x23, 0x02, 0xf3, 0xdf, 0xf6
};

/* Largest root file read by attest_verifier_add_dev_root_file. */
#define ROOT_FILE_MAX 65536

static const char *const payload_keys[] = {
	"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce",
};
enum { K_MODULE_ID, K_DIGEST, K_TIMESTAMP, K_PCRS, K_CERTIFICATE, K_CABUNDLE, K_PUBLIC_KEY, K_USER_DATA, K_NONCE, K_N };
#define K_MANDATORY 6 /* keys 0..5 */

/* Private part of a parsed document: the received byte strings the signature covers. */
struct doc_priv {
	uint8_t *store;
	const uint8_t *prot;
	size_t prot_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *sig;
	uint8_t root_hash[32];   /* SHA-256 of cabundle[0] */
	uint8_t bundle_hash[32]; /* SHA-256 over (u32be len || DER) of every cabundle entry: the cache key */
};

const char *attest_check_name(enum attest_check c)
{
	static const char *const names[] = {
		"ok",	     "cose",	  "alg",   "payload",	"digest",    "root",  "dev_root",
		"certificate", "signature", "chain", "validity", "freshness", "debug", "pcr",
	};
	return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "unknown";
}

static void result_init(struct attest_result *res)
{
	memset(res, 0, sizeof *res);
}

/* refuse: records the failing check and a formatted reason; returns err. */
__attribute__((format(printf, 4, 5))) static int refuse(struct attest_result *res, int err, enum attest_check c,
							 const char *fmt, ...)
{
	va_list ap;
	res->err = err;
	res->check = c;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof res->reason, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- parsing ---- */

/* check_protected: the protected header must be exactly {1: -35}. */
static int check_protected(struct attest_result *res, const uint8_t *p, size_t len)
{
	cbor_item_t *m = NULL;
	const char *why = NULL;
	int r;
	if (len == 0 || len > ATTEST_PROTECTED_MAX)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_ALG, "protected header is %zu bytes", len);
	if (strictcbor_load(&m, p, len, 1, &why) != 0)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_ALG, "protected header: %s", why ? why : "malformed");
	uint64_t key = 0;
	if (!cbor_isa_map(m) || cbor_map_size(m) != 1 ||
	    strictcbor_get_uint(cbor_map_handle(m)[0].key, &key) != 0 || key != 1) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_ALG, "protected header is not {1: alg}");
		goto out;
	}
	const cbor_item_t *alg = cbor_map_handle(m)[0].value;
	if (cbor_isa_negint(alg) && cbor_get_int(alg) == 34) {
		r = 0;
		goto out;
	}
	if (cbor_isa_negint(alg))
		r = refuse(res, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "alg -%llu is not ES384 (-35)",
			   (unsigned long long)cbor_get_int(alg) + 1);
	else if (cbor_isa_uint(alg))
		r = refuse(res, APP_EUNSUPPORTED, ATTEST_CHECK_ALG, "alg %llu is not ES384 (-35)",
			   (unsigned long long)cbor_get_int(alg));
	else
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_ALG, "alg is not an integer");
out:
	cbor_decref(&m);
	return r;
}

/* A bump allocator over the document's storage. */
struct arena {
	uint8_t *p, *end;
};

/*
 * take_bytes: copies p[0..len) into the arena; NULL when it does not fit
 * (cannot happen: the copies are disjoint parts of the payload, which the
 * arena holds twice over; checked anyway).
 */
static const uint8_t *take_bytes(struct arena *a, const uint8_t *p, size_t len)
{
	if (len > (size_t)(a->end - a->p))
		return NULL;
	uint8_t *dst = a->p;
	if (len)
		memcpy(dst, p, len);
	a->p += len;
	return dst;
}

static int parse_pcrs(struct attest_doc *doc, struct attest_result *res, const cbor_item_t *m)
{
	if (!cbor_isa_map(m))
		return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "pcrs is not a map");
	size_t n = cbor_map_size(m);
	if (n == 0)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "pcrs is empty");
	if (n > ATTEST_PCR_COUNT)
		return refuse(res, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "pcrs has %zu entries (max %d)", n, ATTEST_PCR_COUNT);
	struct cbor_pair *pairs = cbor_map_handle(m);
	for (size_t i = 0; i < n; i++) {
		uint64_t idx;
		const uint8_t *v;
		size_t vlen;
		if (strictcbor_get_uint(pairs[i].key, &idx) != 0 || idx >= ATTEST_PCR_COUNT)
			return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR index is not an integer in 0..31");
		if ((doc->pcr_mask >> idx) & 1u)
			return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR%llu appears twice",
				      (unsigned long long)idx);
		if (strictcbor_bytes_of(pairs[i].value, &v, &vlen) != 0 || vlen != ATTEST_PCR_LEN)
			return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR%llu is not a 48-byte string",
				      (unsigned long long)idx);
		memcpy(doc->pcrs[idx], v, ATTEST_PCR_LEN);
		doc->pcr_mask |= 1u << idx;
	}
	if ((doc->pcr_mask & 0x7u) != 0x7u)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "PCR0, PCR1 or PCR2 is missing");
	return 0;
}

static int cert_bytes(struct attest_result *res, const cbor_item_t *it, const char *what, const uint8_t **p,
		      size_t *len)
{
	if (strictcbor_bytes_of(it, p, len) != 0)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "%s is not a byte string", what);
	if (*len == 0)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "%s is empty", what);
	if (*len > ATTEST_CERT_MAX)
		return refuse(res, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "%s is %zu bytes (max %d)", what, *len,
			      ATTEST_CERT_MAX);
	return 0;
}

static int parse_payload(struct attest_doc *doc, struct attest_result *res, const uint8_t *payload, size_t len,
			 struct arena *cursor)
{
	struct doc_priv *priv = doc->priv_;
	cbor_item_t *m = NULL;
	const char *why = NULL;
	const cbor_item_t *val[K_N] = {0};
	int r;
	if ((r = strictcbor_load(&m, payload, len, ATTEST_CBOR_DEPTH, &why)) != 0)
		return refuse(res, r, ATTEST_CHECK_PAYLOAD, "payload: %s", why ? why : "malformed CBOR");
	if (!cbor_isa_map(m)) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "payload is not a map");
		goto out;
	}
	doc->payload_indefinite = cbor_map_is_indefinite(m);
	size_t n = cbor_map_size(m);
	struct cbor_pair *pairs = cbor_map_handle(m);
	for (size_t i = 0; i < n; i++) {
		size_t k = K_N;
		for (size_t j = 0; j < K_N; j++)
			if (strictcbor_text_is(pairs[i].key, payload_keys[j]))
				k = j;
		if (k == K_N) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "unknown key in payload");
			goto out;
		}
		if (val[k]) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "duplicate key %s", payload_keys[k]);
			goto out;
		}
		val[k] = pairs[i].value;
	}
	for (size_t k = 0; k < K_MANDATORY; k++) {
		if (!val[k]) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "missing key %s", payload_keys[k]);
			goto out;
		}
		if (cbor_is_null(val[k])) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "%s is null", payload_keys[k]);
			goto out;
		}
	}
	/* module_id: non-empty printable ASCII. */
	const cbor_item_t *mid = val[K_MODULE_ID];
	if (!cbor_isa_string(mid) || !cbor_string_is_definite(mid)) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "module_id is not a text string");
		goto out;
	}
	size_t mlen = cbor_string_length(mid);
	const uint8_t *mp = cbor_string_handle(mid);
	if (mlen == 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "module_id is empty");
		goto out;
	}
	if (mlen > ATTEST_MODULE_ID_MAX) {
		r = refuse(res, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "module_id is %zu bytes (max %d)", mlen,
			   ATTEST_MODULE_ID_MAX);
		goto out;
	}
	for (size_t i = 0; i < mlen; i++)
		if (mp[i] < 0x21 || mp[i] > 0x7e) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "module_id is not printable ASCII");
			goto out;
		}
	memcpy(doc->module_id, mp, mlen);
	doc->module_id[mlen] = 0;
	/* digest */
	if (!cbor_isa_string(val[K_DIGEST]) || !cbor_string_is_definite(val[K_DIGEST])) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "digest is not a text string");
		goto out;
	}
	if (!strictcbor_text_is(val[K_DIGEST], "SHA384")) {
		r = refuse(res, APP_EUNSUPPORTED, ATTEST_CHECK_DIGEST, "digest is not SHA384");
		goto out;
	}
	/* timestamp */
	if (strictcbor_get_uint(val[K_TIMESTAMP], &doc->timestamp_ms) != 0 || doc->timestamp_ms == 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "timestamp is not a positive integer");
		goto out;
	}
	if ((r = parse_pcrs(doc, res, val[K_PCRS])) != 0)
		goto out;
	/* certificate and cabundle */
	const uint8_t *p;
	size_t plen;
	if ((r = cert_bytes(res, val[K_CERTIFICATE], "certificate", &p, &plen)) != 0)
		goto out;
	if (!(doc->certificate = take_bytes(cursor, p, plen))) {
		r = refuse(res, APP_EINTERNAL, ATTEST_CHECK_PAYLOAD, "storage overflow");
		goto out;
	}
	doc->certificate_len = plen;
	const cbor_item_t *cab = val[K_CABUNDLE];
	if (!cbor_isa_array(cab)) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "cabundle is not an array");
		goto out;
	}
	size_t nb = cbor_array_size(cab);
	if (nb == 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "cabundle is empty");
		goto out;
	}
	if (nb > ATTEST_CABUNDLE_MAX) {
		r = refuse(res, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "cabundle has %zu entries (max %d)", nb,
			   ATTEST_CABUNDLE_MAX);
		goto out;
	}
	struct hash_sha256_ctx *hc = hash_sha256_new();
	if (!hc) {
		r = refuse(res, APP_ENOMEM, ATTEST_CHECK_PAYLOAD, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		char what[32];
		snprintf(what, sizeof what, "cabundle[%zu]", i);
		if ((r = cert_bytes(res, cbor_array_handle(cab)[i], what, &p, &plen)) != 0) {
			hash_sha256_free(hc);
			goto out;
		}
		if (!(doc->cabundle[i] = take_bytes(cursor, p, plen))) {
			hash_sha256_free(hc);
			r = refuse(res, APP_EINTERNAL, ATTEST_CHECK_PAYLOAD, "storage overflow");
			goto out;
		}
		doc->cabundle_len[i] = plen;
		uint8_t l4[4] = {(uint8_t)(plen >> 24), (uint8_t)(plen >> 16), (uint8_t)(plen >> 8), (uint8_t)plen};
		hash_sha256_update(hc, l4, sizeof l4);
		hash_sha256_update(hc, p, plen);
	}
	hash_sha256_final(hc, priv->bundle_hash);
	hash_sha256_free(hc);
	doc->cabundle_n = nb;
	hash_sha256(priv->root_hash, doc->cabundle[0], doc->cabundle_len[0]);
	/* optional fields: null or absent = none */
	const uint8_t **optp[3] = {&doc->public_key, &doc->user_data, &doc->nonce};
	size_t *optl[3] = {&doc->public_key_len, &doc->user_data_len, &doc->nonce_len};
	for (size_t k = K_PUBLIC_KEY; k <= K_NONCE; k++) {
		const cbor_item_t *it = val[k];
		if (!it || cbor_is_null(it))
			continue;
		if (strictcbor_bytes_of(it, &p, &plen) != 0) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "%s is not a byte string or null",
				   payload_keys[k]);
			goto out;
		}
		if (plen > ATTEST_FIELD_MAX) {
			r = refuse(res, APP_ETOOBIG, ATTEST_CHECK_PAYLOAD, "%s is %zu bytes (max %d)", payload_keys[k],
				   plen, ATTEST_FIELD_MAX);
			goto out;
		}
		if (k == K_PUBLIC_KEY && plen == 0) {
			r = refuse(res, APP_EPARSE, ATTEST_CHECK_PAYLOAD, "public_key is empty");
			goto out;
		}
		if (!(*optp[k - K_PUBLIC_KEY] = take_bytes(cursor, p, plen))) {
			r = refuse(res, APP_EINTERNAL, ATTEST_CHECK_PAYLOAD, "storage overflow");
			goto out;
		}
		*optl[k - K_PUBLIC_KEY] = plen;
	}
	r = 0;
out:
	cbor_decref(&m);
	return r;
}

int attest_doc_parse(struct attest_doc **out, struct attest_result *res, const uint8_t *buf, size_t len)
{
	struct attest_result tmp;
	struct attest_doc *doc = NULL;
	struct doc_priv *priv = NULL;
	cbor_item_t *top = NULL;
	const char *why = NULL;
	int r;
	if (!res)
		res = &tmp;
	result_init(res);
	*out = NULL;
	if (!buf || len == 0)
		return refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "empty document");
	if (len > ATTEST_DOC_MAX)
		return refuse(res, APP_ETOOBIG, ATTEST_CHECK_COSE, "document is %zu bytes (max %d)", len, ATTEST_DOC_MAX);
	/* Tag 18 (COSE_Sign1, RFC 9052 §4.2) in its one-byte form, stripped here: libcbor 0.8 cannot decode 0xd2. */
	int tagged = buf[0] == 0xd2;
	if ((r = strictcbor_load(&top, buf + tagged, len - (size_t)tagged, 3, &why)) != 0)
		return refuse(res, r, ATTEST_CHECK_COSE, "COSE_Sign1: %s", why ? why : "malformed CBOR");
	const cbor_item_t *cose = top;
	if (!cbor_isa_array(cose) || cbor_array_size(cose) != 4) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "COSE_Sign1 is not an array of 4");
		goto out;
	}
	cbor_item_t **it = cbor_array_handle(cose);
	const uint8_t *prot, *payload, *sig;
	size_t prot_len, payload_len, sig_len;
	if (strictcbor_bytes_of(it[0], &prot, &prot_len) != 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "protected header is not a byte string");
		goto out;
	}
	if ((r = check_protected(res, prot, prot_len)) != 0)
		goto out;
	if (!cbor_isa_map(it[1]) || cbor_map_size(it[1]) != 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "unprotected header is not an empty map");
		goto out;
	}
	if (strictcbor_bytes_of(it[2], &payload, &payload_len) != 0) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "payload is not a byte string");
		goto out;
	}
	if (payload_len == 0 || payload_len > ATTEST_PAYLOAD_MAX) {
		r = refuse(res, payload_len ? APP_ETOOBIG : APP_EPARSE, ATTEST_CHECK_COSE, "payload is %zu bytes",
			   payload_len);
		goto out;
	}
	if (strictcbor_bytes_of(it[3], &sig, &sig_len) != 0 || sig_len != ATTEST_SIG_LEN) {
		r = refuse(res, APP_EPARSE, ATTEST_CHECK_COSE, "signature is not a %d-byte string", ATTEST_SIG_LEN);
		goto out;
	}
	r = APP_ENOMEM;
	doc = calloc(1, sizeof *doc);
	priv = calloc(1, sizeof *priv);
	/* protected + payload + signature + field copies (a subset of the payload) */
	size_t store_len = prot_len + 2 * payload_len + ATTEST_SIG_LEN;
	if (!doc || !priv || !(priv->store = malloc(store_len))) {
		refuse(res, r, ATTEST_CHECK_COSE, "out of memory");
		goto out;
	}
	doc->priv_ = priv;
	doc->tagged = tagged;
	struct arena ar = {priv->store, priv->store + store_len};
	priv->prot = take_bytes(&ar, prot, prot_len);
	priv->prot_len = prot_len;
	priv->sig = take_bytes(&ar, sig, sig_len);
	priv->payload = take_bytes(&ar, payload, payload_len);
	priv->payload_len = payload_len;
	if (!priv->prot || !priv->sig || !priv->payload) {
		r = refuse(res, APP_EINTERNAL, ATTEST_CHECK_COSE, "storage overflow");
		goto out;
	}
	if ((r = parse_payload(doc, res, priv->payload, payload_len, &ar)) != 0)
		goto out;
	*out = doc;
	doc = NULL;
	r = 0;
out:
	if (top)
		cbor_decref(&top);
	if (doc)
		attest_doc_free(doc);
	else if (priv && r != 0) {
		free(priv->store);
		free(priv);
	}
	return r;
}

void attest_doc_free(struct attest_doc *doc)
{
	if (!doc)
		return;
	struct doc_priv *priv = doc->priv_;
	if (priv)
		free(priv->store);
	free(priv);
	free(doc);
}

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int attest_decode_text(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen)
{
	*out = NULL;
	*outlen = 0;
	if (!in || inlen == 0)
		return APP_EPARSE;
	if (in[0] == 0x84 || in[0] == 0xd2) {
		if (inlen > ATTEST_DOC_MAX)
			return APP_ETOOBIG;
		uint8_t *p = malloc(inlen);
		if (!p)
			return APP_ENOMEM;
		memcpy(p, in, inlen);
		*out = p;
		*outlen = inlen;
		return 0;
	}
	while (inlen && is_space(in[inlen - 1]))
		inlen--;
	while (inlen && is_space(in[0])) {
		in++;
		inlen--;
	}
	if (inlen == 0)
		return APP_EPARSE;
	int hex = inlen % 2 == 0;
	for (size_t i = 0; hex && i < inlen; i++)
		hex = is_hex(in[i]);
	if (hex) {
		if (inlen / 2 > ATTEST_DOC_MAX)
			return APP_ETOOBIG;
		uint8_t *p = malloc(inlen / 2);
		if (!p)
			return APP_ENOMEM;
		if (hex_decode(p, inlen / 2, (const char *)in, inlen, 0) != 0) {
			free(p);
			return APP_EPARSE;
		}
		*out = p;
		*outlen = inlen / 2;
		return 0;
	}
	return b64_decode_alloc(out, outlen, (const char *)in, inlen, ATTEST_DOC_MAX);
}

int attest_doc_is_debug(const struct attest_doc *doc)
{
	return sodium_is_zero(doc->pcrs[0], ATTEST_PCR_LEN) != 0;
}

int attest_doc_root_is_aws(const struct attest_doc *doc)
{
	uint8_t pin[32];
	const struct doc_priv *priv = doc->priv_;
	if (hex_decode(pin, sizeof pin, ATTEST_AWS_ROOT_SHA256_HEX, 64, 1) != 0)
		return 0;
	return sodium_memcmp(pin, priv->root_hash, 32) == 0;
}

/* ---- certificates ---- */

/* d2i_exact: a certificate that occupies all of der[0..len). */
static X509 *d2i_exact(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	if (len > LONG_MAX)
		return NULL;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (x && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int asn1_to_unix(const ASN1_TIME *t, uint64_t *out)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return APP_EPARSE;
	time_t s = timegm(&tm);
	if (s < 0)
		return APP_EPARSE;
	*out = (uint64_t)s;
	return 0;
}

static int is_p384(EVP_PKEY *k)
{
	char name[64];
	size_t n = 0;
	return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_group_name(k, name, sizeof name, &n) == 1 && strcmp(name, "secp384r1") == 0;
}

/* cert_profile: NULL if x fits AWS's profile for a CA (want_ca) or the leaf, else the reason. */
static const char *cert_profile(X509 *x, int want_ca)
{
	if (!is_p384(X509_get0_pubkey(x)))
		return "key is not EC P-384";
	if (X509_get_signature_nid(x) != NID_ecdsa_with_SHA384)
		return "signature algorithm is not ecdsa-with-SHA384";
	uint32_t fl = X509_get_extension_flags(x); /* also caches the extensions */
	if (fl & EXFLAG_INVALID)
		return "invalid or duplicate extensions";
	if (fl & EXFLAG_PROXY)
		return "proxy certificate";
	if (want_ca) {
		if (!(fl & EXFLAG_CA))
			return "CA without basicConstraints CA:TRUE";
		int i = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
		if (i < 0 || !X509_EXTENSION_get_critical(X509_get_ext(x, i)))
			return "CA basicConstraints is not critical";
		if (!(fl & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
			return "CA without keyUsage keyCertSign";
	} else {
		if (fl & EXFLAG_CA)
			return "leaf is a CA";
		if (!(fl & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE))
			return "leaf without keyUsage digitalSignature";
	}
	return NULL;
}

static int has_constraints(X509 *x)
{
	return X509_get_ext_by_NID(x, NID_name_constraints, -1) >= 0 ||
	       X509_get_ext_by_NID(x, NID_policy_constraints, -1) >= 0 ||
	       X509_get_ext_by_NID(x, NID_inhibit_any_policy, -1) >= 0;
}

static void subject_line(X509 *x, char *out, size_t cap)
{
	out[0] = 0;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		if (n > 0) {
			size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
			memcpy(out, p, k);
			out[k] = 0;
		}
	}
	BIO_free(b);
}

int attest_doc_chain_info(const struct attest_doc *doc, struct attest_chain_info *out)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i <= doc->cabundle_n; i++) {
		const uint8_t *der = i == 0 ? doc->certificate : doc->cabundle[doc->cabundle_n - i];
		size_t len = i == 0 ? doc->certificate_len : doc->cabundle_len[doc->cabundle_n - i];
		X509 *x = d2i_exact(der, len);
		if (!x)
			return APP_EPARSE;
		struct attest_cert_info *ci = &out->cert[i];
		subject_line(x, ci->subject, sizeof ci->subject);
		int r = asn1_to_unix(X509_get0_notBefore(x), &ci->not_before);
		if (r == 0)
			r = asn1_to_unix(X509_get0_notAfter(x), &ci->not_after);
		X509_free(x);
		if (r != 0)
			return r;
		out->n = i + 1;
	}
	return 0;
}

/* ---- PCR policy ---- */

int attest_pcr_policy_check(const struct attest_doc *doc, const struct attest_pcr_policy *policy,
			    struct attest_result *res)
{
	struct attest_result tmp;
	if (!res)
		res = &tmp;
	if (!policy || policy->mask == 0)
		return refuse(res, APP_EINVAL, ATTEST_CHECK_PCR, "empty PCR policy");
	int diff = 0, first = -1;
	for (int i = 0; i < ATTEST_PCR_COUNT; i++) {
		if (!((policy->mask >> i) & 1u))
			continue;
		int bad = !((doc->pcr_mask >> i) & 1u);
		/* Compare even when absent (against itself) so timing does not depend on the values. */
		bad |= sodium_memcmp(doc->pcrs[i], policy->pcrs[i], ATTEST_PCR_LEN) != 0;
		if (bad && first < 0)
			first = i;
		diff |= bad;
	}
	if (diff)
		return refuse(res, APP_EREFUSED, ATTEST_CHECK_PCR, "PCR%d differs from the expected value", first);
	return 0;
}

/* ---- verifier ---- */

struct root {
	uint8_t sha256[32];
	X509 *cert;
	X509_STORE *store;
	uint64_t not_before, not_after;
	int dev;
};

struct cache_entry {
	int used;
	uint8_t key[32];
	X509 *issuer;       /* cabundle[n-1]: the leaf's issuer */
	uint64_t nb, na;    /* validity common to every CA certificate of the chain */
	uint64_t stamp;     /* last use, for replacement */
};

struct attest_verifier {
	pthread_mutex_t lock;
	struct root roots[ATTEST_ROOTS_MAX];
	size_t nroots;
	int cache_on;
	struct cache_entry cache[ATTEST_CACHE_MAX];
	uint64_t tick;
};

/* add_root: pins a self-issued P-384 CA. */
static int add_root(struct attest_verifier *v, const uint8_t *der, size_t len, int dev)
{
	X509 *x = d2i_exact(der, len);
	X509_STORE *st = NULL;
	int r = APP_EPARSE;
	uint8_t h[32];
	if (!x || cert_profile(x, 1) != NULL || X509_check_issued(x, x) != X509_V_OK ||
	    X509_verify(x, X509_get0_pubkey(x)) != 1)
		goto out;
	struct root tmp = {0};
	if (asn1_to_unix(X509_get0_notBefore(x), &tmp.not_before) != 0 ||
	    asn1_to_unix(X509_get0_notAfter(x), &tmp.not_after) != 0)
		goto out;
	hash_sha256(h, der, len);
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->nroots; i++)
		if (memcmp(v->roots[i].sha256, h, 32) == 0) {
			pthread_mutex_unlock(&v->lock);
			r = APP_EEXIST;
			goto out;
		}
	if (v->nroots == ATTEST_ROOTS_MAX) {
		pthread_mutex_unlock(&v->lock);
		r = APP_ELIMIT;
		goto out;
	}
	r = APP_ENOMEM;
	if (!(st = X509_STORE_new()) || X509_STORE_add_cert(st, x) != 1) {
		pthread_mutex_unlock(&v->lock);
		goto out;
	}
	struct root *rt = &v->roots[v->nroots++];
	*rt = tmp;
	memcpy(rt->sha256, h, 32);
	rt->cert = x;
	rt->store = st;
	rt->dev = dev;
	x = NULL;
	st = NULL;
	pthread_mutex_unlock(&v->lock);
	r = 0;
out:
	X509_STORE_free(st);
	X509_free(x);
	return r;
}

int attest_verifier_new(struct attest_verifier **out)
{
	*out = NULL;
	struct attest_verifier *v = calloc(1, sizeof *v);
	if (!v)
		return APP_ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	v->cache_on = 1;
	uint8_t pin[32], h[32];
	hash_sha256(h, aws_root_g1_der, sizeof aws_root_g1_der);
	int r = hex_decode(pin, sizeof pin, ATTEST_AWS_ROOT_SHA256_HEX, 64, 1);
	if (r != 0 || memcmp(pin, h, 32) != 0) {
		attest_verifier_free(v);
		return APP_EINTERNAL;
	}
	r = add_root(v, aws_root_g1_der, sizeof aws_root_g1_der, 0);
	if (r != 0) {
		attest_verifier_free(v);
		return r == APP_ENOMEM ? r : APP_EINTERNAL;
	}
	*out = v;
	return 0;
}

static void cache_clear(struct attest_verifier *v)
{
	for (size_t i = 0; i < ATTEST_CACHE_MAX; i++) {
		X509_free(v->cache[i].issuer);
		memset(&v->cache[i], 0, sizeof v->cache[i]);
	}
}

void attest_verifier_free(struct attest_verifier *v)
{
	if (!v)
		return;
	cache_clear(v);
	for (size_t i = 0; i < v->nroots; i++) {
		X509_STORE_free(v->roots[i].store);
		X509_free(v->roots[i].cert);
	}
	pthread_mutex_destroy(&v->lock);
	free(v);
}

int attest_verifier_add_dev_root(struct attest_verifier *v, const uint8_t *der, size_t len)
{
	if (!v || !der || len == 0)
		return APP_EINVAL;
	return add_root(v, der, len, 1);
}

int attest_verifier_add_dev_root_file(struct attest_verifier *v, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	int r = APP_EIO;
	uint8_t *buf = NULL;
	unsigned char *der = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if (st.st_size > ROOT_FILE_MAX) {
		r = APP_ETOOBIG;
		goto out;
	}
	size_t n = (size_t)st.st_size, got = 0;
	r = APP_ENOMEM;
	if (!(buf = malloc(n + 1)))
		goto out;
	r = APP_EIO;
	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto out;
		got += (size_t)k;
	}
	buf[n] = 0;
	r = APP_EPARSE;
	if (n > 0 && buf[0] == 0x30) {
		r = attest_verifier_add_dev_root(v, buf, n);
		goto out;
	}
	if (!(b = BIO_new_mem_buf(buf, (int)n)) || !(x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		goto out;
	int dl = i2d_X509(x, &der);
	if (dl <= 0)
		goto out;
	r = attest_verifier_add_dev_root(v, der, (size_t)dl);
out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(b);
	free(buf);
	close(fd);
	return r;
}

void attest_verifier_set_cache(struct attest_verifier *v, int on)
{
	pthread_mutex_lock(&v->lock);
	v->cache_on = on != 0;
	if (!on)
		cache_clear(v);
	pthread_mutex_unlock(&v->lock);
}

/* cache_get: a new reference to the cached issuer of a chain valid at t, or NULL. */
static X509 *cache_get(struct attest_verifier *v, const uint8_t key[32], uint64_t t)
{
	X509 *x = NULL;
	pthread_mutex_lock(&v->lock);
	if (v->cache_on)
		for (size_t i = 0; i < ATTEST_CACHE_MAX; i++) {
			struct cache_entry *e = &v->cache[i];
			if (e->used && memcmp(e->key, key, 32) == 0 && t >= e->nb && t <= e->na &&
			    X509_up_ref(e->issuer) == 1) {
				x = e->issuer;
				e->stamp = ++v->tick;
				break;
			}
		}
	pthread_mutex_unlock(&v->lock);
	return x;
}

static void cache_put(struct attest_verifier *v, const uint8_t key[32], X509 *issuer, uint64_t nb, uint64_t na)
{
	pthread_mutex_lock(&v->lock);
	if (!v->cache_on)
		goto out;
	struct cache_entry *slot = NULL;
	for (size_t i = 0; i < ATTEST_CACHE_MAX; i++) {
		struct cache_entry *e = &v->cache[i];
		if (e->used && memcmp(e->key, key, 32) == 0)
			goto out; /* another thread got there first */
		if (!slot || !e->used || (slot->used && e->stamp < slot->stamp))
			slot = e;
	}
	if (X509_up_ref(issuer) != 1)
		goto out;
	X509_free(slot->issuer);
	*slot = (struct cache_entry){.used = 1, .issuer = issuer, .nb = nb, .na = na, .stamp = ++v->tick};
	memcpy(slot->key, key, 32);
out:
	pthread_mutex_unlock(&v->lock);
}

/* cose_verify: ES384 over Sig_structure ["Signature1", protected, h'', payload] (RFC 9052 §4.4). */
static int cose_verify(const struct doc_priv *p, EVP_PKEY *key)
{
	uint8_t head[32];
	size_t h = 0, k;
	int r = APP_EINTERNAL;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *der = NULL;
	/* 84 6a "Signature1" <bstr head of protected> */
	if (!(k = cbor_encode_array_start(4, head + h, sizeof head - h)))
		goto out;
	h += k;
	if (!(k = cbor_encode_string_start(10, head + h, sizeof head - h)) || sizeof head - h - k < 10)
		goto out;
	h += k;
	memcpy(head + h, "Signature1", 10);
	h += 10;
	if (!(k = cbor_encode_bytestring_start(p->prot_len, head + h, sizeof head - h)))
		goto out;
	h += k;
	uint8_t mid[16];
	size_t m = 0;
	if (!(k = cbor_encode_bytestring_start(0, mid, sizeof mid)))
		goto out;
	m += k;
	if (!(k = cbor_encode_bytestring_start(p->payload_len, mid + m, sizeof mid - m)))
		goto out;
	m += k;
	/* raw r||s -> DER */
	if (!(es = ECDSA_SIG_new()) || !(br = BN_bin2bn(p->sig, 48, NULL)) || !(bs = BN_bin2bn(p->sig + 48, 48, NULL)))
		goto out;
	if (ECDSA_SIG_set0(es, br, bs) != 1)
		goto out;
	br = bs = NULL;
	int dl = i2d_ECDSA_SIG(es, &der);
	if (dl <= 0)
		goto out;
	if (!(md = EVP_MD_CTX_new()) || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestVerifyUpdate(md, head, h) != 1 || EVP_DigestVerifyUpdate(md, p->prot, p->prot_len) != 1 ||
	    EVP_DigestVerifyUpdate(md, mid, m) != 1 || EVP_DigestVerifyUpdate(md, p->payload, p->payload_len) != 1)
		goto out;
	r = EVP_DigestVerifyFinal(md, der, (size_t)dl) == 1 ? 0 : APP_EBADSIG;
out:
	OPENSSL_free(der);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return r;
}

static uint64_t umax(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t umin(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* verify_cached: the leaf against a cached, previously fully verified issuer. */
static int verify_cached(struct attest_result *res, X509 *issuer, X509 *leaf, uint64_t t)
{
	if (X509_check_issued(issuer, leaf) != X509_V_OK)
		return refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "certificate is not issued by cabundle[n-1]");
	if (X509_verify(leaf, X509_get0_pubkey(issuer)) != 1)
		return refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "certificate signature failure (depth 0)");
	if (X509_get_extension_flags(leaf) & EXFLAG_CRITICAL)
		return refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "unhandled critical extension (depth 0)");
	if (t < res->leaf_not_before)
		return refuse(res, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "certificate is not yet valid (depth 0) at %llu",
			      (unsigned long long)t);
	if (t > res->leaf_not_after)
		return refuse(res, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "certificate has expired (depth 0) at %llu",
			      (unsigned long long)t);
	return 0;
}

/* verify_full: decode cabundle[1..], check profiles and order, X509_verify_cert at t; caches on success. */
static int verify_full(struct attest_verifier *v, struct attest_result *res, const struct root *root,
		       const struct attest_doc *doc, X509 *leaf, uint64_t t, int use_cache)
{
	const struct doc_priv *priv = doc->priv_;
	size_t n = doc->cabundle_n;
	X509 *certs[ATTEST_CABUNDLE_MAX] = {0};
	STACK_OF(X509) *inter = sk_X509_new_null();
	X509_STORE_CTX *ctx = NULL;
	int r = APP_ENOMEM;
	if (!inter) {
		refuse(res, r, ATTEST_CHECK_CHAIN, "out of memory");
		goto out;
	}
	certs[0] = root->cert; /* byte-identical to cabundle[0] (pinned by hash) */
	int constrained = has_constraints(root->cert);
	uint64_t nb = root->not_before, na = root->not_after;
	for (size_t i = 1; i < n; i++) {
		X509 *x = d2i_exact(doc->cabundle[i], doc->cabundle_len[i]);
		if (!x) {
			r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "cabundle[%zu] is not a DER certificate", i);
			goto out;
		}
		if (!sk_X509_push(inter, x)) {
			X509_free(x);
			r = refuse(res, APP_ENOMEM, ATTEST_CHECK_CHAIN, "out of memory");
			goto out;
		}
		certs[i] = x;
		const char *why = cert_profile(x, 1);
		if (why) {
			r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "cabundle[%zu]: %s", i, why);
			goto out;
		}
		uint64_t a, b;
		if (asn1_to_unix(X509_get0_notBefore(x), &a) != 0 || asn1_to_unix(X509_get0_notAfter(x), &b) != 0) {
			r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "cabundle[%zu]: unreadable validity", i);
			goto out;
		}
		nb = umax(nb, a);
		na = umin(na, b);
		constrained |= has_constraints(x);
	}
	/* cabundle is root first: each entry issues the next, the last issues the leaf. */
	for (size_t i = 1; i < n; i++)
		if (X509_check_issued(certs[i - 1], certs[i]) != X509_V_OK) {
			r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN,
				   "cabundle[%zu] is not issued by cabundle[%zu] (order must be root first)", i, i - 1);
			goto out;
		}
	if (X509_check_issued(certs[n - 1], leaf) != X509_V_OK) {
		r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "certificate is not issued by cabundle[%zu]", n - 1);
		goto out;
	}
	if (!(ctx = X509_STORE_CTX_new()) || X509_STORE_CTX_init(ctx, root->store, leaf, inter) != 1) {
		r = refuse(res, APP_ENOMEM, ATTEST_CHECK_CHAIN, "out of memory");
		goto out;
	}
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)t);
	X509_VERIFY_PARAM_set_depth(param, ATTEST_CABUNDLE_MAX);
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx), d = X509_STORE_CTX_get_error_depth(ctx);
		if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID)
			r = refuse(res, APP_EEXPIRED, ATTEST_CHECK_VALIDITY, "%s (depth %d) at %llu",
				   X509_verify_cert_error_string(e), d, (unsigned long long)t);
		else
			r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "%s (depth %d)", X509_verify_cert_error_string(e),
				   d);
		goto out;
	}
	/* The chain OpenSSL built must be the document's, entry for entry. */
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	int ok = chain && (size_t)sk_X509_num(chain) == n + 1 && X509_cmp(sk_X509_value(chain, 0), leaf) == 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = X509_cmp(sk_X509_value(chain, (int)(n - i)), certs[i]) == 0;
	if (!ok) {
		r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CHAIN, "verified chain differs from cabundle");
		goto out;
	}
	if (use_cache && !constrained)
		cache_put(v, priv->bundle_hash, certs[n - 1], nb, na);
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(inter, X509_free);
	return r;
}

static const struct root *find_root(struct attest_verifier *v, const uint8_t h[32])
{
	const struct root *rt = NULL;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->nroots; i++)
		if (memcmp(v->roots[i].sha256, h, 32) == 0)
			rt = &v->roots[i];
	pthread_mutex_unlock(&v->lock);
	return rt;
}

int attest_verify(struct attest_verifier *v, struct attest_result *res, const struct attest_doc *doc,
		  const struct attest_verify_opts *opts)
{
	static const struct attest_verify_opts defaults = {0};
	struct attest_result tmp;
	X509 *leaf = NULL, *issuer = NULL;
	int r;
	if (!res)
		res = &tmp;
	result_init(res);
	if (!opts)
		opts = &defaults;
	if (!v || !doc || !doc->priv_)
		return refuse(res, APP_EINVAL, ATTEST_CHECK_COSE, "no document");
	const struct doc_priv *priv = doc->priv_;
	uint64_t now = (uint64_t)time(NULL), t;
	switch (opts->time_mode) {
	case ATTEST_TIME_AT:
		t = opts->at;
		break;
	case ATTEST_TIME_AS_OF_DOCUMENT:
		t = doc->timestamp_ms / 1000;
		break;
	default:
		t = now;
		break;
	}
	res->time = t;

	/* 2. root pin */
	const struct root *root = find_root(v, priv->root_hash);
	if (!root) {
		char hx[17];
		hex_encode(hx, priv->root_hash, 8);
		return refuse(res, APP_ECHAIN, ATTEST_CHECK_ROOT, "cabundle[0] is not a pinned root (sha256 %s...)", hx);
	}
	res->dev = root->dev;
	if (root->dev && !opts->allow_dev)
		return refuse(res, APP_EREFUSED, ATTEST_CHECK_DEV_ROOT, "document chains to a development root");

	/* 3. the leaf's profile */
	if (!(leaf = d2i_exact(doc->certificate, doc->certificate_len))) {
		r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "certificate is not a DER certificate");
		goto out;
	}
	const char *why = cert_profile(leaf, 0);
	if (why) {
		r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "certificate: %s", why);
		goto out;
	}
	if (asn1_to_unix(X509_get0_notBefore(leaf), &res->leaf_not_before) != 0 ||
	    asn1_to_unix(X509_get0_notAfter(leaf), &res->leaf_not_after) != 0) {
		r = refuse(res, APP_ECHAIN, ATTEST_CHECK_CERT, "certificate: unreadable validity");
		goto out;
	}

	/* 4. COSE_Sign1 signature with the leaf key */
	if ((r = cose_verify(priv, X509_get0_pubkey(leaf))) != 0) {
		refuse(res, r, ATTEST_CHECK_SIGNATURE,
		       r == APP_EBADSIG ? "COSE_Sign1 signature does not verify with the certificate's key"
					: "signature check failed (OpenSSL)");
		goto out;
	}

	/* 5. the chain, at T */
	if ((issuer = cache_get(v, priv->bundle_hash, t)) != NULL) {
		res->cached = 1;
		r = verify_cached(res, issuer, leaf, t);
	} else {
		r = verify_full(v, res, root, doc, leaf, t, 1);
	}
	if (r != 0)
		goto out;

	/* 6. freshness */
	if (opts->time_mode != ATTEST_TIME_AS_OF_DOCUMENT) {
		uint64_t ts = doc->timestamp_ms / 1000;
		uint64_t max_age = opts->max_age ? opts->max_age : ATTEST_MAX_AGE_DEFAULT;
		if (ts > t && ts - t > ATTEST_CLOCK_SKEW) {
			r = refuse(res, APP_ERANGE, ATTEST_CHECK_FRESHNESS, "timestamp is %llu s in the future",
				   (unsigned long long)(ts - t));
			goto out;
		}
		if (ts < t && t - ts > max_age) {
			r = refuse(res, APP_EEXPIRED, ATTEST_CHECK_FRESHNESS, "document is %llu s old (max %llu)",
				   (unsigned long long)(t - ts), (unsigned long long)max_age);
			goto out;
		}
	}

	/* 7. debug mode */
	if (attest_doc_is_debug(doc)) {
		r = refuse(res, APP_EDEBUG, ATTEST_CHECK_DEBUG, "debug-mode enclave (PCR0 is all zero)");
		goto out;
	}

	/* 8. PCR policy */
	if (opts->policy && (r = attest_pcr_policy_check(doc, opts->policy, res)) != 0)
		goto out;

	res->err = 0;
	res->check = ATTEST_CHECK_NONE;
	snprintf(res->reason, sizeof res->reason, "verified");
	r = 0;
out:
	X509_free(issuer);
	X509_free(leaf);
	return r;
}

int attest_verify_bytes(struct attest_verifier *v, struct attest_result *res, struct attest_doc **out,
			const uint8_t *buf, size_t len, const struct attest_verify_opts *opts)
{
	struct attest_doc *doc = NULL;
	if (out)
		*out = NULL;
	int r = attest_doc_parse(&doc, res, buf, len);
	if (r == 0)
		r = attest_verify(v, res, doc, opts);
	if (r == 0 && out) {
		*out = doc;
		doc = NULL;
	}
	attest_doc_free(doc);
	return r;
}
