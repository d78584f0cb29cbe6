/*
 * attest.h: AWS Nitro Enclaves attestation documents: strict parsing,
 * verification with OpenSSL 3, and PCR policy.
 *
 * Specification: aws-nitro-enclaves-nsm-api docs/attestation_process.md,
 * RFC 9052 (COSE_Sign1), made concrete in reference nitro-enclaves.md §2.
 *
 * A document is a COSE_Sign1, tagged (18, as the byte 0xd2) or not:
 *   [ bstr protected = {1: -35} (ES384), {} , bstr payload, bstr r||s (96) ]
 * whose payload is a CBOR map (definite or indefinite) with exactly the keys
 * module_id (tstr), digest ("SHA384"), timestamp (uint, ms), pcrs ({uint <
 * 32: bstr 48}), certificate (bstr DER), cabundle ([bstr DER], root first),
 * and optionally public_key, user_data, nonce (bstr <= 1024, or null =
 * absent).
 *
 * Verification order (the first failing check is the reported one):
 *   1. parse (attest_doc_parse)                     ATTEST_CHECK_COSE/ALG/PAYLOAD/DIGEST
 *   2. cabundle[0] byte-identical to a pinned root  ATTEST_CHECK_ROOT
 *      (SHA-256 of its DER); a dev root only when allowed   ATTEST_CHECK_DEV_ROOT
 *   3. every certificate's profile: EC P-384 key, ecdsa-with-SHA384; CAs:
 *      critical basicConstraints CA:TRUE and keyCertSign; the leaf: not a CA,
 *      keyUsage digitalSignature                    ATTEST_CHECK_CERT
 *   4. ES384 over Sig_structure ["Signature1", protected, h'', payload] rebuilt
 *      from the received byte strings, raw r||s converted to DER
 *                                                   ATTEST_CHECK_SIGNATURE
 *   5. X509_verify_cert: store = the pinned root only, untrusted =
 *      cabundle[1..], at time T; no X509_STRICT (the real leaf has no AKID), no
 *      PARTIAL_CHAIN, no CRLs; the built chain must be exactly leaf,
 *      cabundle[n-1], ..., cabundle[0]             ATTEST_CHECK_CHAIN / VALIDITY
 *   6. freshness: T - max_age <= timestamp <= T + ATTEST_CLOCK_SKEW
 *                                                   ATTEST_CHECK_FRESHNESS
 *   7. debug mode (PCR0 all zero): always refused    ATTEST_CHECK_DEBUG
 *   8. the caller's PCR policy, if any               ATTEST_CHECK_PCR
 * T is the current time, an explicit time (ATTEST_TIME_AT), or the
 * document's own timestamp (ATTEST_TIME_AS_OF_DOCUMENT: test vectors only,
 * since it lets an old document verify forever; no freshness check then).
 */
#ifndef APPLIANCE_ATTEST_H
#define APPLIANCE_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Hard caps, checked before allocating. */
#define ATTEST_DOC_MAX 16384       /* whole COSE_Sign1 */
#define ATTEST_PAYLOAD_MAX 16383   /* payload bstr (AWS/Sui: 1..16383) */
#define ATTEST_PROTECTED_MAX 64    /* protected header bstr */
#define ATTEST_CERT_MAX 1024       /* certificate and each cabundle entry */
#define ATTEST_CABUNDLE_MAX 8      /* cabundle entries (chain <= 9 with the leaf) */
#define ATTEST_FIELD_MAX 1024      /* public_key, user_data, nonce */
#define ATTEST_MODULE_ID_MAX 256   /* module_id */
#define ATTEST_PCR_COUNT 32
#define ATTEST_PCR_LEN 48          /* SHA-384 */
#define ATTEST_SIG_LEN 96          /* ES384 r||s */
#define ATTEST_CBOR_DEPTH 3        /* payload: map -> pcrs/cabundle -> bstr */
#define ATTEST_ROOTS_MAX 8         /* pinned roots per verifier */
#define ATTEST_CACHE_MAX 16        /* cached verified intermediate chains */
#define ATTEST_SUBJECT_MAX 256     /* one-line subject text */

/* Freshness: default window on `timestamp` and tolerated clock skew, seconds. */
#define ATTEST_MAX_AGE_DEFAULT 300
#define ATTEST_CLOCK_SKEW 60

/* SHA-256 of the DER of AWS Nitro Enclaves Root G1 (not of AWS's ZIP download). */
#define ATTEST_AWS_ROOT_SHA256_HEX "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

/* Which check refused a document. */
enum attest_check {
	ATTEST_CHECK_NONE = 0,  /* verified */
	ATTEST_CHECK_COSE,      /* envelope: CBOR, tag, array of 4, headers, sizes, trailing bytes */
	ATTEST_CHECK_ALG,       /* protected header is not exactly {1: -35} (ES384) */
	ATTEST_CHECK_PAYLOAD,   /* payload map: keys, types, sizes, nulls */
	ATTEST_CHECK_DIGEST,    /* digest is not "SHA384" */
	ATTEST_CHECK_ROOT,      /* cabundle[0] is not a pinned root */
	ATTEST_CHECK_DEV_ROOT,  /* pinned development root, dev not allowed */
	ATTEST_CHECK_CERT,      /* a certificate does not decode or breaks the profile */
	ATTEST_CHECK_SIGNATURE, /* COSE_Sign1 signature */
	ATTEST_CHECK_CHAIN,     /* path validation (issuer, signatures, order, path length) */
	ATTEST_CHECK_VALIDITY,  /* a certificate is expired or not yet valid at T */
	ATTEST_CHECK_FRESHNESS, /* timestamp too old or in the future */
	ATTEST_CHECK_DEBUG,     /* debug-mode enclave (PCR0 all zero) */
	ATTEST_CHECK_PCR,       /* PCR policy */
};

/* Outcome of a parse or verification: which check failed and why. */
struct attest_result {
	int err;                 /* 0 or the APP_E* code returned */
	enum attest_check check; /* ATTEST_CHECK_NONE when verified */
	char reason[200];        /* one line naming the check and the detail */
	int dev;                 /* the chain ends at a development root */
	uint64_t time;           /* T, unix seconds */
	uint64_t leaf_not_before, leaf_not_after; /* unix seconds (set once the leaf decoded) */
	int cached;              /* the intermediate chain came from the cache */
};

/* A parsed document. Read-only; every pointer points into its own storage. */
struct attest_doc {
	char module_id[ATTEST_MODULE_ID_MAX + 1];
	uint64_t timestamp_ms;
	uint32_t pcr_mask; /* bit i set when PCR i is present (0, 1 and 2 always are) */
	uint8_t pcrs[ATTEST_PCR_COUNT][ATTEST_PCR_LEN];
	const uint8_t *certificate;
	size_t certificate_len;
	size_t cabundle_n; /* 1..ATTEST_CABUNDLE_MAX */
	const uint8_t *cabundle[ATTEST_CABUNDLE_MAX];
	size_t cabundle_len[ATTEST_CABUNDLE_MAX];
	const uint8_t *public_key; /* NULL when null or absent */
	size_t public_key_len;
	const uint8_t *user_data;
	size_t user_data_len;
	const uint8_t *nonce;
	size_t nonce_len;
	int tagged;             /* carried COSE tag 18 */
	int payload_indefinite; /* the payload map was indefinite-length */
	void *priv_;
};

/*
 * attest_check_name: "cose", "alg", "payload", "digest", "root", "dev_root",
 * "certificate", "signature", "chain", "validity", "freshness", "debug",
 * "pcr" ("ok" for ATTEST_CHECK_NONE).
 */
const char *attest_check_name(enum attest_check c);

/*
 * attest_doc_parse: a document from buf[0..len) (raw CBOR; see
 * attest_decode_text for base64/hex). Strict: one CBOR item, nothing after
 * it; no tags but an outer 18 (0xd2); no indefinite strings, floats or simple
 * values; nesting <= ATTEST_CBOR_DEPTH; unknown, duplicate and missing keys
 * refused; null only for the optional fields; every cap above.
 * Returns 0 with *out (free with attest_doc_free); APP_ETOOBIG (a cap);
 * APP_EPARSE (syntax or types); APP_EUNSUPPORTED (alg not ES384, digest not
 * SHA384); APP_ENOMEM. res (may be NULL) receives the check and reason.
 */
int attest_doc_parse(struct attest_doc **out, struct attest_result *res, const uint8_t *buf, size_t len) APP_WUR;

/* attest_doc_free: frees; NULL is a no-op. */
void attest_doc_free(struct attest_doc *doc);

/*
 * attest_decode_text: the document bytes of text that is raw CBOR (first
 * byte 0x84 or 0xd2), hex (even length, [0-9a-fA-F]) or standard base64,
 * surrounding whitespace ignored, into a new buffer (*out, free with free()).
 * Returns 0; APP_ETOOBIG (over ATTEST_DOC_MAX); APP_EPARSE; APP_ENOMEM.
 */
int attest_decode_text(uint8_t **out, size_t *outlen, const uint8_t *in, size_t inlen) APP_WUR;

/* attest_doc_is_debug: 1 if PCR0 is all zero (a debug-mode enclave), else 0. */
int attest_doc_is_debug(const struct attest_doc *doc);

/* attest_doc_root_is_aws: 1 if cabundle[0] is AWS Nitro Enclaves Root G1 (by SHA-256), else 0. */
int attest_doc_root_is_aws(const struct attest_doc *doc);

/* Certificates of a document, described (not verified), leaf first then up to the root. */
struct attest_cert_info {
	char subject[ATTEST_SUBJECT_MAX]; /* RFC 2253 */
	uint64_t not_before, not_after;   /* unix seconds */
};
struct attest_chain_info {
	size_t n; /* 1 + cabundle_n */
	struct attest_cert_info cert[ATTEST_CABUNDLE_MAX + 1];
};

/*
 * attest_doc_chain_info: subjects and validity windows of the certificate
 * (cert[0]) and cabundle[n-1] .. cabundle[0] (cert[1..n]). Decoding only:
 * nothing is verified. Returns 0; APP_EPARSE (a certificate does not
 * decode); APP_ENOMEM.
 */
int attest_doc_chain_info(const struct attest_doc *doc, struct attest_chain_info *out) APP_WUR;

/* Expected PCR values (constant-time comparison). */
struct attest_pcr_policy {
	uint32_t mask; /* bit i: PCR i must equal pcrs[i] */
	uint8_t pcrs[ATTEST_PCR_COUNT][ATTEST_PCR_LEN];
};

/*
 * attest_pcr_policy_check: 0 when every PCR selected by policy is present
 * in doc and equal to the expected value (all compared, in constant time);
 * APP_EREFUSED otherwise (res, may be NULL: ATTEST_CHECK_PCR and the first
 * mismatching index); APP_EINVAL for an empty mask.
 */
int attest_pcr_policy_check(const struct attest_doc *doc, const struct attest_pcr_policy *policy,
			    struct attest_result *res) APP_WUR;

/* The trust anchors and the cache of verified intermediate chains. Thread-safe. */
struct attest_verifier;

/*
 * attest_verifier_new: a verifier trusting AWS Nitro Enclaves Root G1
 * (built in, checked against ATTEST_AWS_ROOT_SHA256_HEX). The intermediate
 * cache is on. Returns 0, APP_ENOMEM, APP_EINTERNAL.
 */
int attest_verifier_new(struct attest_verifier **out) APP_WUR;

/* attest_verifier_free: frees; NULL is a no-op. */
void attest_verifier_free(struct attest_verifier *v);

/*
 * attest_verifier_add_dev_root: pins a development root (DER). Documents
 * chaining to it verify only with opts.allow_dev, and report res.dev = 1.
 * The root must be a self-issued P-384 CA certificate signed with
 * ecdsa-with-SHA384. Returns 0; APP_EPARSE (not such a certificate);
 * APP_EEXIST (already pinned); APP_ELIMIT (ATTEST_ROOTS_MAX); APP_ENOMEM.
 */
int attest_verifier_add_dev_root(struct attest_verifier *v, const uint8_t *der, size_t len) APP_WUR;

/*
 * attest_verifier_add_dev_root_file: as above from a PEM or DER file (at
 * most 64 KiB; the first certificate of a PEM file). Returns also APP_ENOENT,
 * APP_EIO, APP_ETOOBIG.
 */
int attest_verifier_add_dev_root_file(struct attest_verifier *v, const char *path) APP_WUR;

/*
 * attest_verifier_set_cache: turns the intermediate cache on (1) or off (0,
 * which also empties it). A chain is cached only after a full
 * X509_verify_cert succeeded, keyed by the SHA-256 of the exact cabundle
 * bytes, and reused only while T lies inside the validity of all its CA
 * certificates; the leaf is then checked against the cached issuer with
 * X509_check_issued, X509_verify and its own validity. Chains carrying name
 * or policy constraints are never cached.
 */
void attest_verifier_set_cache(struct attest_verifier *v, int on);

enum attest_time_mode {
	ATTEST_TIME_NOW = 0,         /* T = the current time */
	ATTEST_TIME_AT,              /* T = opts.at (and freshness is relative to it) */
	ATTEST_TIME_AS_OF_DOCUMENT,  /* T = timestamp / 1000; TEST VECTORS ONLY; no freshness check */
};

struct attest_verify_opts {
	enum attest_time_mode time_mode;
	uint64_t at;       /* unix seconds, ATTEST_TIME_AT */
	uint64_t max_age;  /* seconds; 0 = ATTEST_MAX_AGE_DEFAULT */
	int allow_dev;     /* accept documents chaining to a pinned development root */
	const struct attest_pcr_policy *policy; /* NULL: no PCR policy */
};

/*
 * attest_verify: runs checks 2..8 on a parsed document (opts NULL =
 * defaults: now, 300 s, no dev, no policy). Returns 0 when verified, else:
 * APP_ECHAIN (root not pinned, certificate profile, path validation),
 * APP_EREFUSED (dev root not allowed; PCR policy), APP_EBADSIG, APP_EEXPIRED
 * (a certificate outside its validity at T; timestamp older than max_age),
 * APP_ERANGE (timestamp in the future), APP_EDEBUG, APP_ENOMEM,
 * APP_EINTERNAL. res (may be NULL) gets the check and a reason naming it.
 */
int attest_verify(struct attest_verifier *v, struct attest_result *res, const struct attest_doc *doc,
		  const struct attest_verify_opts *opts) APP_WUR;

/*
 * attest_verify_bytes: attest_doc_parse + attest_verify. On success *out
 * (may be NULL) receives the document (free with attest_doc_free).
 */
int attest_verify_bytes(struct attest_verifier *v, struct attest_result *res, struct attest_doc **out,
			const uint8_t *buf, size_t len, const struct attest_verify_opts *opts) APP_WUR;

#endif
