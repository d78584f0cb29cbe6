/*
 * bench_attest: verification latency of one attestation document (the real
 * AWS document of 2026-01-03, as of its own timestamp) against the raw cost
 * of the five P-384 ECDSA verifications it contains, measured in the same
 * run, interleaved:
 *   uncached  parse + attest_verify with the intermediate cache off
 *             (4 certificate signatures in X509_verify_cert + the COSE one)
 *   cached    the same with the intermediate chain cached (leaf + COSE)
 *   limit     5 x EVP_PKEY_verify (P-384, ecdsa-with-SHA384) over the
 *             precomputed SHA-384 digests of the same 5 signed messages
 *             (regional by root, zonal by regional, instance by zonal, leaf
 *             by instance, COSE_Sign1 by leaf), keys decoded beforehand
 * Prints medians in microseconds and the ratios; one line per figure as
 * key=value, then "ratio_uncached=R ratio_cached=R".
 * Usage: bench_attest [DOC] [ITERATIONS]
 */
#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "tests/lib/testutil.h"

#define DEFAULT_DOC "tests/vectors/nitro/base-nitro-validator_2026-01-03_attestation_repaired.bin"

struct sigcase {
	EVP_PKEY *key;
	uint8_t digest[48];
	unsigned char *sig;
	size_t siglen;
};

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static X509 *d2i(const uint8_t *p, size_t n)
{
	const unsigned char *q = p;
	return d2i_X509(NULL, &q, (long)n);
}

/* cert_case: the signature on `child` by `issuer`'s key, over SHA-384 of the TBS. */
static int cert_case(struct sigcase *c, X509 *child, X509 *issuer)
{
	unsigned char *tbs = NULL;
	int tl = i2d_re_X509_tbs(child, &tbs);
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	X509_get0_signature(&sig, &alg, child);
	if (tl <= 0 || !sig)
		return -1;
	unsigned dl = 0;
	int ok = EVP_Digest(tbs, (size_t)tl, c->digest, &dl, EVP_sha384(), NULL) == 1;
	OPENSSL_free(tbs);
	c->siglen = (size_t)ASN1_STRING_length(sig);
	c->sig = OPENSSL_memdup(ASN1_STRING_get0_data(sig), c->siglen);
	c->key = X509_get_pubkey(issuer);
	return ok && c->sig && c->key ? 0 : -1;
}

/* cose_case: the COSE_Sign1 signature by the leaf key over SHA-384 of Sig_structure. */
static int cose_case(struct sigcase *c, const uint8_t *doc, size_t len, X509 *leaf)
{
	struct cbor_load_result lr;
	cbor_item_t *a = cbor_load(doc, len, &lr);
	if (!a || !cbor_isa_array(a) || cbor_array_size(a) != 4)
		return -1;
	cbor_item_t **it = cbor_array_handle(a);
	cbor_item_t *s = cbor_new_definite_array(4);
	cbor_item_t *x[4] = {cbor_build_string("Signature1"),
			     cbor_build_bytestring(cbor_bytestring_handle(it[0]), cbor_bytestring_length(it[0])),
			     cbor_build_bytestring((const unsigned char *)"", 0),
			     cbor_build_bytestring(cbor_bytestring_handle(it[2]), cbor_bytestring_length(it[2]))};
	for (int i = 0; i < 4; i++) {
		if (!cbor_array_push(s, x[i]))
			return -1;
		cbor_decref(&x[i]);
	}
	unsigned char *tbs = NULL;
	size_t cap = 0, tl = cbor_serialize_alloc(s, &tbs, &cap);
	unsigned dl = 0;
	int ok = tl > 0 && EVP_Digest(tbs, tl, c->digest, &dl, EVP_sha384(), NULL) == 1;
	free(tbs);
	const unsigned char *raw = cbor_bytestring_handle(it[3]);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ok = ok && es && ECDSA_SIG_set0(es, BN_bin2bn(raw, 48, NULL), BN_bin2bn(raw + 48, 48, NULL)) == 1;
	unsigned char *der = NULL;
	int n = ok ? i2d_ECDSA_SIG(es, &der) : 0;
	ECDSA_SIG_free(es);
	c->sig = der;
	c->siglen = n > 0 ? (size_t)n : 0;
	c->key = X509_get_pubkey(leaf);
	cbor_decref(&s);
	cbor_decref(&a);
	return ok && n > 0 && c->key ? 0 : -1;
}

static int verify_case(const struct sigcase *c)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(c->key, NULL);
	int ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, c->sig, c->siglen, c->digest, 48) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : DEFAULT_DOC;
	long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 300;
	if (iters < 11)
		iters = 11;
	size_t len = 0;
	uint8_t *doc = (uint8_t *)tu_read_file(path, &len);
	struct attest_doc *d = NULL;
	struct attest_verifier *vu = NULL, *vc = NULL;
	if (!doc || attest_doc_parse(&d, NULL, doc, len) != 0 || d->cabundle_n != 4 || attest_verifier_new(&vu) != 0 ||
	    attest_verifier_new(&vc) != 0) {
		fprintf(stderr, "bench_attest: cannot load %s\n", path);
		return 1;
	}
	attest_verifier_set_cache(vu, 0);
	struct attest_verify_opts o = {.time_mode = ATTEST_TIME_AS_OF_DOCUMENT};

	/* The five signatures of the document. */
	X509 *c[5] = {d2i(d->cabundle[0], d->cabundle_len[0]), d2i(d->cabundle[1], d->cabundle_len[1]),
		      d2i(d->cabundle[2], d->cabundle_len[2]), d2i(d->cabundle[3], d->cabundle_len[3]),
		      d2i(d->certificate, d->certificate_len)};
	struct sigcase sc[5];
	memset(sc, 0, sizeof sc);
	for (int i = 0; i < 4; i++)
		if (!c[i] || !c[i + 1] || cert_case(&sc[i], c[i + 1], c[i]) != 0)
			return fprintf(stderr, "bench_attest: certificate %d\n", i), 1;
	if (cose_case(&sc[4], doc, len, c[4]) != 0)
		return fprintf(stderr, "bench_attest: COSE\n"), 1;
	for (int i = 0; i < 5; i++)
		if (verify_case(&sc[i]) != 0)
			return fprintf(stderr, "bench_attest: baseline signature %d does not verify\n", i), 1;

	double *tu = calloc((size_t)iters, sizeof(double)), *tc = calloc((size_t)iters, sizeof(double)),
	       *tl = calloc((size_t)iters, sizeof(double)), *tp = calloc((size_t)iters, sizeof(double));
	struct attest_result res;
	/* warm up (and fill the cache) */
	for (int i = 0; i < 5; i++)
		if (attest_verify_bytes(vu, &res, NULL, doc, len, &o) != 0 || attest_verify_bytes(vc, &res, NULL, doc, len, &o) != 0)
			return fprintf(stderr, "bench_attest: document does not verify: %s\n", res.reason), 1;
	for (long i = 0; i < iters; i++) {
		double t0 = now_us();
		for (int k = 0; k < 5; k++)
			if (verify_case(&sc[k]) != 0)
				return 1;
		double t1 = now_us();
		if (attest_verify_bytes(vu, &res, NULL, doc, len, &o) != 0 || res.cached)
			return 1;
		double t2 = now_us();
		if (attest_verify_bytes(vc, &res, NULL, doc, len, &o) != 0 || !res.cached)
			return 1;
		double t3 = now_us();
		struct attest_doc *p = NULL;
		if (attest_doc_parse(&p, NULL, doc, len) != 0)
			return 1;
		attest_doc_free(p);
		double t4 = now_us();
		tl[i] = t1 - t0;
		tu[i] = t2 - t1;
		tc[i] = t3 - t2;
		tp[i] = t4 - t3;
	}
	double mu = median(tu, (size_t)iters), mc = median(tc, (size_t)iters), ml = median(tl, (size_t)iters),
	       mp = median(tp, (size_t)iters);
	printf("document=%s bytes=%zu iterations=%ld\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path, len, iters);
	printf("limit_5_ecdsa_p384_us=%.1f per_verify_us=%.1f\n", ml, ml / 5);
	printf("verify_uncached_us=%.1f\n", mu);
	printf("verify_cached_us=%.1f\n", mc);
	printf("parse_only_us=%.1f\n", mp);
	printf("ratio_uncached=%.2f ratio_cached=%.2f target=1.50\n", mu / ml, mc / ml);
	for (int i = 0; i < 5; i++) {
		EVP_PKEY_free(sc[i].key);
		OPENSSL_free(sc[i].sig);
		X509_free(c[i]);
	}
	free(tu);
	free(tc);
	free(tl);
	free(tp);
	attest_doc_free(d);
	attest_verifier_free(vu);
	attest_verifier_free(vc);
	free(doc);
	return 0;
}
