/*
 * devca.h: the development certificate authority that signs the NSM
 * emulator's attestation documents, shaped like AWS's (reference
 * nitro-enclaves.md §2.2 "Observed certificate profile", §6.2):
 *
 *   root      CN=dev.nitro-enclaves, O=Appliance Dev; P-384, self-signed,
 *             30 years; BC critical CA:TRUE (no pathlen); KU critical
 *             digitalSignature|keyCertSign|cRLSign; SKID.
 *   regional  CN=<16hex>.dev-local.dev.nitro-enclaves; 20 days; pathlen:2;
 *             KU critical digitalSignature|keyCertSign|cRLSign; SKID, AKID.
 *   zonal     CN=<16hex>.zonal.dev-local.dev.nitro-enclaves; 6 days; pathlen:1.
 *   instance  CN=<instance id>.dev-local.dev.nitro-enclaves; 1 day; pathlen:0;
 *             KU critical keyCertSign.
 *   leaf      CN=<module_id>.dev-local; notBefore = issue - 3 s, notAfter =
 *             issue + 3 h; BC critical CA:FALSE; KU (not critical)
 *             digitalSignature|nonRepudiation; no AKID/SKID; serial =
 *             8 bytes of the enclave id || 00000000 || u32 issue second.
 *
 * Every key is EC P-384 and every signature ecdsa-with-SHA384. Only the
 * root persists (DIR/root.key, mode 0600, and DIR/root.pem); intermediates
 * are issued in memory when first needed and re-issued before they could
 * expire under a leaf; each document gets a fresh leaf.
 *
 * This is development PKI: verifiers accept it only when explicitly allowed
 * (attest.h, --allow-dev), and its documents are marked ["t","dev"].
 */
#ifndef PARENT_DEVCA_H
#define PARENT_DEVCA_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define DEVCA_ROOT_KEY_FILE "root.key"
#define DEVCA_ROOT_CERT_FILE "root.pem"
#define DEVCA_ROOT_LIFETIME (30ull * 365 * 86400)
#define DEVCA_REGIONAL_LIFETIME (20ull * 86400)
#define DEVCA_ZONAL_LIFETIME (6ull * 86400)
#define DEVCA_INSTANCE_LIFETIME (86400ull)
#define DEVCA_LEAF_LIFETIME (3ull * 3600)
#define DEVCA_LEAF_BACKDATE 3ull   /* seconds between a leaf's notBefore and its issue */
#define DEVCA_CHAIN_LEN 4          /* cabundle entries: root, regional, zonal, instance */
#define DEVCA_FILE_MAX 16384       /* largest root.key / root.pem read */
#define DEVCA_COSE_MAX 16384       /* ATTEST_DOC_MAX */

struct devca;
struct devca_leaf;

/*
 * devca_create: a new root key and certificate in directory dir (created
 * with mode 0700 if missing): DIR/root.key (PEM PKCS#8, 0600) and
 * DIR/root.pem. now is unix seconds (0 = the clock). Returns 0; APP_EEXIST
 * (a root already exists there: never overwritten); APP_EIO; APP_EINTERNAL.
 */
int devca_create(const char *dir, uint64_t now) APP_WUR;

/*
 * devca_load: the CA from a directory made by devca_create. Checks that
 * the key matches the certificate and that the root is P-384 CA.
 * Returns 0; APP_ENOENT; APP_EIO; APP_ETOOBIG; APP_EPARSE (not PEM, or a
 * mismatched or non-P-384 pair); APP_ENOMEM.
 */
int devca_load(struct devca **out, const char *dir) APP_WUR;

/* devca_new_ephemeral: an in-memory CA with a fresh root (tests). Returns 0, APP_EINTERNAL, APP_ENOMEM. */
int devca_new_ephemeral(struct devca **out, uint64_t now) APP_WUR;

/* devca_free: frees keys (OpenSSL wipes them) and certificates; NULL is a no-op. */
void devca_free(struct devca *ca);

/* devca_root_der: a copy of the root certificate's DER (*der, free with free()). Returns 0 or APP_ENOMEM. */
int devca_root_der(const struct devca *ca, uint8_t **der, size_t *len) APP_WUR;

/*
 * devca_issue_leaf: a fresh leaf (key + certificate) for module_id (printable
 * ASCII, <= 200 bytes) at time now (unix seconds), (re)issuing the
 * intermediates first when any of them would expire within a leaf's
 * lifetime. instance_id names the instance certificate ("i-..."). The leaf
 * keeps a copy of the chain (root first). Returns 0; APP_EINVAL;
 * APP_EEXPIRED (the root ends within a leaf lifetime); APP_EINTERNAL;
 * APP_ENOMEM.
 */
int devca_issue_leaf(struct devca *ca, struct devca_leaf **out, const char *instance_id, const char *module_id,
		     uint64_t now) APP_WUR;

/*
 * Test-only deviations from the leaf profile (devca_issue_leaf_test), one
 * per check a verifier must make on the leaf. Never used by the emulator.
 */
#define DEVCA_TEST_LEAF_CA 1u        /* basicConstraints CA:TRUE */
#define DEVCA_TEST_LEAF_NO_DIGSIG 2u /* keyUsage keyCertSign only */
#define DEVCA_TEST_LEAF_P256 4u      /* an EC P-256 key */
#define DEVCA_TEST_LEAF_SHA256 8u    /* signed with ecdsa-with-SHA256 */

/* devca_issue_leaf_test: devca_issue_leaf with the DEVCA_TEST_LEAF_* deviations in flags. */
int devca_issue_leaf_test(struct devca *ca, struct devca_leaf **out, const char *instance_id, const char *module_id,
			  uint64_t now, unsigned flags) APP_WUR;

/* devca_leaf_free: frees; NULL is a no-op. */
void devca_leaf_free(struct devca_leaf *leaf);

/* devca_leaf_cert: the leaf certificate DER (points into the leaf). */
void devca_leaf_cert(const struct devca_leaf *leaf, const uint8_t **der, size_t *len);

/* devca_leaf_not_after: the leaf's notAfter, unix seconds. */
uint64_t devca_leaf_not_after(const struct devca_leaf *leaf);

/* devca_leaf_chain: cabundle entry i (0 = root .. DEVCA_CHAIN_LEN-1 = instance); APP_ERANGE otherwise. */
int devca_leaf_chain(const struct devca_leaf *leaf, size_t i, const uint8_t **der, size_t *len) APP_WUR;

/* The nine payload fields of a document (AWS attestation_process.md §"Attestation document specification"). */
struct devca_doc {
	const char *module_id;
	const char *digest; /* "SHA384" */
	uint64_t timestamp_ms;
	uint32_t pcr_mask;  /* PCRs to include, ascending */
	const uint8_t (*pcrs)[48];
	const uint8_t *public_key; /* NULL: CBOR null */
	size_t public_key_len;
	const uint8_t *user_data;
	size_t user_data_len;
	const uint8_t *nonce;
	size_t nonce_len;
	int indefinite_map; /* encode the payload map as indefinite-length (0xbf .. 0xff) */
};

/*
 * devca_payload_encode: the payload map of doc with the leaf's certificate
 * and cabundle, keys in AWS's order (module_id, digest, timestamp, pcrs,
 * certificate, cabundle, public_key, user_data, nonce), all nine present.
 * *out is freed with free(). Returns 0, APP_EINVAL, APP_ETOOBIG, APP_ENOMEM.
 */
int devca_payload_encode(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const struct devca_doc *doc) APP_WUR;

/*
 * devca_cose_sign1: COSE_Sign1 (RFC 9052 §4.2) over payload with the leaf
 * key: [bstr protected, {}, bstr payload, bstr r||s (96 bytes)], tagged 18
 * when `tagged`. protected is the header bstr's content (NULL = a1 01 38 22,
 * {1: -35} = ES384; tests pass others). The signature is ES384 over
 * Sig_structure ["Signature1", protected, h'', payload]. *out is freed with
 * free(). Returns 0, APP_ETOOBIG (over DEVCA_COSE_MAX), APP_EINTERNAL,
 * APP_ENOMEM.
 */
int devca_cose_sign1(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const uint8_t *protected_hdr,
		     size_t protected_len, const uint8_t *payload, size_t payload_len, int tagged) APP_WUR;

/* devca_attest: devca_payload_encode + devca_cose_sign1 (untagged, ES384): a whole document. */
int devca_attest(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const struct devca_doc *doc) APP_WUR;

#endif
