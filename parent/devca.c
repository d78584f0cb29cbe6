#include "devca.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/fileio.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/strictcbor.h"

enum { LVL_ROOT = 0, LVL_REGIONAL = 1, LVL_ZONAL = 2, LVL_INSTANCE = 3 };

struct ca_cert {
	X509 *cert;
	EVP_PKEY *key;
	uint64_t not_after;
};

struct devca {
	struct ca_cert lvl[DEVCA_CHAIN_LEN];
	char instance_id[64]; /* the instance the current instance certificate names */
};

struct devca_leaf {
	EVP_PKEY *key;
	uint8_t *der;
	size_t der_len;
	uint64_t not_after;
	uint8_t *chain[DEVCA_CHAIN_LEN];
	size_t chain_len[DEVCA_CHAIN_LEN];
};

static const uint8_t es384_protected[] = {0xa1, 0x01, 0x38, 0x22};

static uint64_t clock_now(uint64_t now)
{
	return now ? now : (uint64_t)time(NULL);
}

static void ca_cert_clear(struct ca_cert *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	memset(c, 0, sizeof *c);
}

static EVP_PKEY *p384_keygen(void)
{
	return EVP_EC_gen("P-384");
}

static int is_p384(EVP_PKEY *k)
{
	char name[64];
	size_t n = 0;
	return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_group_name(k, name, sizeof name, &n) == 1 && strcmp(name, "secp384r1") == 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return APP_EINTERNAL;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : APP_EINTERNAL;
}

static int set_name(X509_NAME *name, const char *cn, int with_locality)
{
	struct {
		const char *k, *v;
	} rdn[] = {
		{"C", "US"}, {"ST", "Washington"}, {"L", "Seattle"}, {"O", "Appliance Dev"}, {"OU", "dev"}, {"CN", cn},
	};
	for (size_t i = 0; i < sizeof rdn / sizeof rdn[0]; i++) {
		if (!with_locality && (i == 1 || i == 2))
			continue;
		if (X509_NAME_add_entry_by_txt(name, rdn[i].k, MBSTRING_ASC, (const unsigned char *)rdn[i].v, -1, -1,
					       0) != 1)
			return APP_EINTERNAL;
	}
	return 0;
}

static int set_serial(X509 *x, const uint8_t *bytes, size_t len)
{
	BIGNUM *bn = BN_bin2bn(bytes, (int)len, NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : APP_EINTERNAL;
}

/* make_cert: a certificate for `key` named cn, signed by issuer (NULL = self) with SHA-384. */
static int make_cert(X509 **out, const char *cn, int with_locality, const uint8_t *serial, size_t serial_len,
		     uint64_t not_before, uint64_t not_after, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
		     const char *bc, const char *ku, int ids, const EVP_MD *md)
{
	X509 *x = X509_new();
	int r = APP_EINTERNAL;
	*out = NULL;
	if (!x)
		return APP_ENOMEM;
	if (X509_set_version(x, 2) != 1 || set_serial(x, serial, serial_len) != 0 ||
	    set_name(X509_get_subject_name(x), cn, with_locality) != 0)
		goto out;
	if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x)) != 1)
		goto out;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) || X509_set_pubkey(x, key) != 1)
		goto out;
	if (add_ext(x, issuer, NID_basic_constraints, bc) != 0 || add_ext(x, issuer, NID_key_usage, ku) != 0)
		goto out;
	if (ids && (add_ext(x, issuer, NID_subject_key_identifier, "hash") != 0 ||
		    add_ext(x, issuer, NID_authority_key_identifier, "keyid:always") != 0))
		goto out;
	if (X509_sign(x, issuer_key ? issuer_key : key, md) <= 0)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	X509_free(x);
	return r;
}

static void random_serial(uint8_t s[16])
{
	keys_random(s, 16);
	s[0] = (uint8_t)((s[0] & 0x7f) | 0x01); /* positive, 16 bytes */
}

static int make_root(struct ca_cert *root, uint64_t now)
{
	uint8_t serial[16];
	int r;
	random_serial(serial);
	if (!(root->key = p384_keygen()))
		return APP_EINTERNAL;
	r = make_cert(&root->cert, "dev.nitro-enclaves", 0, serial, sizeof serial, now - 60, now + DEVCA_ROOT_LIFETIME,
		      root->key, NULL, NULL, "critical,CA:TRUE", "critical,digitalSignature,keyCertSign,cRLSign", 0, EVP_sha384());
	if (r == 0)
		r = add_ext(root->cert, NULL, NID_subject_key_identifier, "hash");
	if (r == 0 && X509_sign(root->cert, root->key, EVP_sha384()) <= 0)
		r = APP_EINTERNAL;
	root->not_after = now + DEVCA_ROOT_LIFETIME;
	return r;
}

static int write_new_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST ? APP_EEXIST : APP_EIO;
	size_t off = 0;
	while (off < len) {
		ssize_t k = write(fd, data + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			close(fd);
			unlink(path);
			return APP_EIO;
		}
		off += (size_t)k;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		unlink(path);
		return APP_EIO;
	}
	return 0;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= cap ? APP_EINVAL : 0;
}

int devca_create(const char *dir, uint64_t now)
{
	struct ca_cert root = {0};
	char kpath[4096], cpath[4096];
	BIO *kb = NULL, *cb = NULL;
	int r;
	int key_written = 0;
	if ((r = path_join(kpath, sizeof kpath, dir, DEVCA_ROOT_KEY_FILE)) != 0 ||
	    (r = path_join(cpath, sizeof cpath, dir, DEVCA_ROOT_CERT_FILE)) != 0)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		r = APP_EIO;
		goto out;
	}
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0) {
		r = APP_EEXIST;
		goto out;
	}
	if ((r = make_root(&root, clock_now(now))) != 0)
		goto out;
	r = APP_EINTERNAL;
	kb = BIO_new(BIO_s_secmem()); /* wiped when freed */
	cb = BIO_new(BIO_s_mem());
	if (!kb || !cb || PEM_write_bio_PrivateKey(kb, root.key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cb, root.cert) != 1)
		goto out;
	char *kp, *cp;
	long kl = BIO_get_mem_data(kb, &kp), cl = BIO_get_mem_data(cb, &cp);
	if (kl <= 0 || cl <= 0)
		goto out;
	if ((r = write_new_file(kpath, kp, (size_t)kl, 0600)) != 0)
		goto out;
	key_written = 1;
	if ((r = write_new_file(cpath, cp, (size_t)cl, 0644)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0 && key_written)
		unlink(kpath);
	BIO_free(kb);
	BIO_free(cb);
	ca_cert_clear(&root);
	return r;
}

static struct devca *devca_alloc(void)
{
	return calloc(1, sizeof(struct devca));
}

int devca_load(struct devca **out, const char *dir)
{
	struct devca *ca = NULL;
	char kpath[4096], cpath[4096];
	char *kt = NULL, *ct = NULL;
	size_t kl = 0, cl = 0;
	BIO *kb = NULL, *cb = NULL;
	int r;
	*out = NULL;
	if ((r = path_join(kpath, sizeof kpath, dir, DEVCA_ROOT_KEY_FILE)) != 0 ||
	    (r = path_join(cpath, sizeof cpath, dir, DEVCA_ROOT_CERT_FILE)) != 0)
		goto out;
	if ((r = file_read_all(&kt, &kl, kpath, DEVCA_FILE_MAX)) != 0 || (r = file_read_all(&ct, &cl, cpath, DEVCA_FILE_MAX)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(ca = devca_alloc()))
		goto out;
	kb = BIO_new_mem_buf(kt, (int)kl);
	cb = BIO_new_mem_buf(ct, (int)cl);
	if (!kb || !cb)
		goto out;
	r = APP_EPARSE;
	ca->lvl[LVL_ROOT].key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	ca->lvl[LVL_ROOT].cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!ca->lvl[LVL_ROOT].key || !ca->lvl[LVL_ROOT].cert || !is_p384(ca->lvl[LVL_ROOT].key) ||
	    X509_check_private_key(ca->lvl[LVL_ROOT].cert, ca->lvl[LVL_ROOT].key) != 1 ||
	    X509_check_ca(ca->lvl[LVL_ROOT].cert) == 0)
		goto out;
	const ASN1_TIME *na = X509_get0_notAfter(ca->lvl[LVL_ROOT].cert);
	struct tm tm;
	if (ASN1_TIME_to_tm(na, &tm) != 1)
		goto out;
	ca->lvl[LVL_ROOT].not_after = (uint64_t)timegm(&tm);
	*out = ca;
	ca = NULL;
	r = 0;
out:
	BIO_free(kb);
	BIO_free(cb);
	if (kt) {
		OPENSSL_cleanse(kt, kl);
		free(kt);
	}
	free(ct);
	devca_free(ca);
	return r;
}

int devca_new_ephemeral(struct devca **out, uint64_t now)
{
	*out = NULL;
	struct devca *ca = devca_alloc();
	if (!ca)
		return APP_ENOMEM;
	int r = make_root(&ca->lvl[LVL_ROOT], clock_now(now));
	if (r != 0) {
		devca_free(ca);
		return r;
	}
	*out = ca;
	return 0;
}

void devca_free(struct devca *ca)
{
	if (!ca)
		return;
	for (int i = 0; i < DEVCA_CHAIN_LEN; i++)
		ca_cert_clear(&ca->lvl[i]);
	free(ca);
}

static int der_of(X509 *x, uint8_t **der, size_t *len)
{
	*der = NULL;
	*len = 0;
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);
	if (n <= 0)
		return APP_ENOMEM;
	uint8_t *copy = malloc((size_t)n);
	if (copy)
		memcpy(copy, p, (size_t)n);
	OPENSSL_free(p);
	if (!copy)
		return APP_ENOMEM;
	*der = copy;
	*len = (size_t)n;
	return 0;
}

int devca_root_der(const struct devca *ca, uint8_t **der, size_t *len)
{
	return der_of(ca->lvl[LVL_ROOT].cert, der, len);
}

/* refresh: (re)issues the intermediates that would expire under a new leaf. */
static int refresh(struct devca *ca, const char *instance_id, uint64_t now)
{
	static const uint64_t life[DEVCA_CHAIN_LEN] = {0, DEVCA_REGIONAL_LIFETIME, DEVCA_ZONAL_LIFETIME,
						      DEVCA_INSTANCE_LIFETIME};
	static const char *const bc[DEVCA_CHAIN_LEN] = {NULL, "critical,CA:TRUE,pathlen:2", "critical,CA:TRUE,pathlen:1",
						       "critical,CA:TRUE,pathlen:0"};
	static const char *const ku[DEVCA_CHAIN_LEN] = {NULL, "critical,digitalSignature,keyCertSign,cRLSign",
						       "critical,digitalSignature,keyCertSign,cRLSign",
						       "critical,keyCertSign"};
	uint64_t need = now + DEVCA_LEAF_LIFETIME + 600;
	if (ca->lvl[LVL_ROOT].not_after < need)
		return APP_EEXPIRED;
	int force = 0; /* a re-issued parent forces its children (their issuer key changed) */
	for (int i = LVL_REGIONAL; i < DEVCA_CHAIN_LEN; i++) {
		struct ca_cert *c = &ca->lvl[i], *parent = &ca->lvl[i - 1];
		if (!force && c->cert && c->not_after >= need &&
		    (i != LVL_INSTANCE || strcmp(ca->instance_id, instance_id) == 0))
			continue;
		force = 1;
		ca_cert_clear(c);
		uint8_t serial[16], rnd[8];
		char tag[17], cn[160];
		random_serial(serial);
		keys_random(rnd, sizeof rnd);
		hex_encode(tag, rnd, sizeof rnd);
		if (i == LVL_REGIONAL)
			snprintf(cn, sizeof cn, "%s.dev-local.dev.nitro-enclaves", tag);
		else if (i == LVL_ZONAL)
			snprintf(cn, sizeof cn, "%s.zonal.dev-local.dev.nitro-enclaves", tag);
		else
			snprintf(cn, sizeof cn, "%s.dev-local.dev.nitro-enclaves", instance_id);
		if (!(c->key = p384_keygen()))
			return APP_EINTERNAL;
		uint64_t na = now + life[i];
		if (na > parent->not_after)
			na = parent->not_after;
		int r = make_cert(&c->cert, cn, i == LVL_ZONAL, serial, sizeof serial, now - 60, na, c->key, parent->cert,
				  parent->key, bc[i], ku[i], 1, EVP_sha384());
		if (r != 0) {
			ca_cert_clear(c);
			return r;
		}
		c->not_after = na;
	}
	snprintf(ca->instance_id, sizeof ca->instance_id, "%s", instance_id);
	return 0;
}

static int printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

int devca_issue_leaf(struct devca *ca, struct devca_leaf **out, const char *instance_id, const char *module_id,
		     uint64_t now)
{
	return devca_issue_leaf_test(ca, out, instance_id, module_id, now, 0);
}

int devca_issue_leaf_test(struct devca *ca, struct devca_leaf **out, const char *instance_id, const char *module_id,
			  uint64_t now, unsigned flags)
{
	struct devca_leaf *leaf = NULL;
	X509 *x = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	now = clock_now(now);
	if (!ca || !instance_id || !module_id || !printable(instance_id, 40) || !printable(module_id, 200))
		goto out;
	if ((r = refresh(ca, instance_id, now)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(leaf = calloc(1, sizeof *leaf)))
		goto out;
	r = APP_EINTERNAL;
	if (!(leaf->key = (flags & DEVCA_TEST_LEAF_P256) ? EVP_EC_gen("P-256") : p384_keygen()))
		goto out;
	/* AWS-style serial: enclave id (the 8 bytes after "-enc" in module_id, else random) || 0^4 || issue second. */
	uint8_t serial[16];
	const char *enc = strstr(module_id, "-enc");
	if (!enc || strlen(enc + 4) != 16 || hex_decode(serial, 8, enc + 4, 16, 0) != 0)
		keys_random(serial, 8);
	serial[0] &= 0x7f; /* a positive INTEGER */
	memset(serial + 8, 0, 4);
	serial[12] = (uint8_t)(now >> 24);
	serial[13] = (uint8_t)(now >> 16);
	serial[14] = (uint8_t)(now >> 8);
	serial[15] = (uint8_t)now;
	char cn[240];
	snprintf(cn, sizeof cn, "%s.dev-local", module_id);
	uint64_t na = now + DEVCA_LEAF_LIFETIME;
	if ((r = make_cert(&x, cn, 1, serial, sizeof serial, now - DEVCA_LEAF_BACKDATE, na, leaf->key,
			   ca->lvl[LVL_INSTANCE].cert, ca->lvl[LVL_INSTANCE].key,
			   (flags & DEVCA_TEST_LEAF_CA) ? "critical,CA:TRUE" : "critical,CA:FALSE",
			   (flags & DEVCA_TEST_LEAF_NO_DIGSIG) ? "keyCertSign" : "digitalSignature,nonRepudiation", 0,
			   (flags & DEVCA_TEST_LEAF_SHA256) ? EVP_sha256() : EVP_sha384())) != 0)
		goto out;
	leaf->not_after = na;
	if ((r = der_of(x, &leaf->der, &leaf->der_len)) != 0)
		goto out;
	for (int i = 0; i < DEVCA_CHAIN_LEN; i++)
		if ((r = der_of(ca->lvl[i].cert, &leaf->chain[i], &leaf->chain_len[i])) != 0)
			goto out;
	*out = leaf;
	leaf = NULL;
	r = 0;
out:
	X509_free(x);
	devca_leaf_free(leaf);
	return r;
}

void devca_leaf_free(struct devca_leaf *leaf)
{
	if (!leaf)
		return;
	EVP_PKEY_free(leaf->key);
	free(leaf->der);
	for (int i = 0; i < DEVCA_CHAIN_LEN; i++)
		free(leaf->chain[i]);
	free(leaf);
}

void devca_leaf_cert(const struct devca_leaf *leaf, const uint8_t **der, size_t *len)
{
	*der = leaf->der;
	*len = leaf->der_len;
}

uint64_t devca_leaf_not_after(const struct devca_leaf *leaf)
{
	return leaf->not_after;
}

int devca_leaf_chain(const struct devca_leaf *leaf, size_t i, const uint8_t **der, size_t *len)
{
	if (i >= DEVCA_CHAIN_LEN)
		return APP_ERANGE;
	*der = leaf->chain[i];
	*len = leaf->chain_len[i];
	return 0;
}

static cbor_item_t *opt_bytes(const uint8_t *p, size_t len)
{
	return p ? strictcbor_bytes(p, len) : cbor_new_null();
}

static int put(cbor_item_t *m, const char *k, cbor_item_t *v)
{
	return strictcbor_map_put(m, strictcbor_text(k), v);
}

int devca_payload_encode(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const struct devca_doc *doc)
{
	cbor_item_t *m = NULL, *pcrs = NULL, *bundle = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	*len = 0;
	if (!doc->module_id || !doc->digest || (doc->pcr_mask && !doc->pcrs))
		goto out;
	r = APP_ENOMEM;
	size_t npcr = (size_t)__builtin_popcount(doc->pcr_mask);
	m = doc->indefinite_map ? cbor_new_indefinite_map() : cbor_new_definite_map(9);
	pcrs = cbor_new_definite_map(npcr);
	bundle = cbor_new_definite_array(DEVCA_CHAIN_LEN);
	if (!m || !pcrs || !bundle)
		goto out;
	for (unsigned i = 0; i < 32; i++)
		if ((doc->pcr_mask >> i) & 1u)
			if (strictcbor_map_put(pcrs, strictcbor_uint(i), strictcbor_bytes(doc->pcrs[i], 48)) != 0)
				goto out;
	for (int i = 0; i < DEVCA_CHAIN_LEN; i++) {
		cbor_item_t *b = strictcbor_bytes(leaf->chain[i], leaf->chain_len[i]);
		bool ok = b && cbor_array_push(bundle, b);
		if (b)
			cbor_decref(&b);
		if (!ok)
			goto out;
	}
	if (put(m, "module_id", strictcbor_text(doc->module_id)) != 0 ||
	    put(m, "digest", strictcbor_text(doc->digest)) != 0 ||
	    put(m, "timestamp", strictcbor_uint(doc->timestamp_ms)) != 0)
		goto out;
	r = put(m, "pcrs", pcrs);
	pcrs = NULL;
	if (r != 0 || put(m, "certificate", strictcbor_bytes(leaf->der, leaf->der_len)) != 0) {
		r = APP_ENOMEM;
		goto out;
	}
	r = put(m, "cabundle", bundle);
	bundle = NULL;
	if (r != 0 || put(m, "public_key", opt_bytes(doc->public_key, doc->public_key_len)) != 0 ||
	    put(m, "user_data", opt_bytes(doc->user_data, doc->user_data_len)) != 0 ||
	    put(m, "nonce", opt_bytes(doc->nonce, doc->nonce_len)) != 0) {
		r = APP_ENOMEM;
		goto out;
	}
	r = strictcbor_serialize(out, len, m, DEVCA_COSE_MAX);
out:
	if (m)
		cbor_decref(&m);
	if (pcrs)
		cbor_decref(&pcrs);
	if (bundle)
		cbor_decref(&bundle);
	return r;
}

/* sig_structure: ["Signature1", protected, h'', payload] (RFC 9052 §4.4). */
static int sig_structure(uint8_t **out, size_t *len, const uint8_t *prot, size_t plen, const uint8_t *payload,
			 size_t paylen)
{
	cbor_item_t *a = cbor_new_definite_array(4);
	int r = APP_ENOMEM;
	cbor_item_t *items[4] = {strictcbor_text("Signature1"), strictcbor_bytes(prot, plen), strictcbor_bytes(NULL, 0),
				 strictcbor_bytes(payload, paylen)};
	bool ok = a != NULL;
	for (int i = 0; i < 4; i++) {
		ok = ok && items[i] && cbor_array_push(a, items[i]);
		if (items[i])
			cbor_decref(&items[i]);
	}
	if (ok)
		r = strictcbor_serialize(out, len, a, DEVCA_COSE_MAX + 64);
	if (a)
		cbor_decref(&a);
	return r;
}

int devca_cose_sign1(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const uint8_t *protected_hdr,
		     size_t protected_len, const uint8_t *payload, size_t payload_len, int tagged)
{
	uint8_t *tbs = NULL, sig[96];
	size_t tbs_len = 0;
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	ECDSA_SIG *es = NULL;
	cbor_item_t *arr = NULL;
	int r;
	*out = NULL;
	*len = 0;
	if (!protected_hdr) {
		protected_hdr = es384_protected;
		protected_len = sizeof es384_protected;
	}
	if ((r = sig_structure(&tbs, &tbs_len, protected_hdr, protected_len, payload, payload_len)) != 0)
		goto out;
	r = APP_EINTERNAL;
	size_t der_len = 0;
	if (!(md = EVP_MD_CTX_new()) || EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, leaf->key) != 1 ||
	    EVP_DigestSign(md, NULL, &der_len, tbs, tbs_len) != 1 || !(der = OPENSSL_malloc(der_len)) ||
	    EVP_DigestSign(md, der, &der_len, tbs, tbs_len) != 1)
		goto out;
	const unsigned char *p = der;
	const BIGNUM *sr, *ss;
	if (!(es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)))
		goto out;
	ECDSA_SIG_get0(es, &sr, &ss);
	if (BN_bn2binpad(sr, sig, 48) != 48 || BN_bn2binpad(ss, sig + 48, 48) != 48)
		goto out;
	r = APP_ENOMEM;
	if (!(arr = cbor_new_definite_array(4)))
		goto out;
	cbor_item_t *items[4] = {strictcbor_bytes(protected_hdr, protected_len), cbor_new_definite_map(0),
				 strictcbor_bytes(payload, payload_len), strictcbor_bytes(sig, sizeof sig)};
	bool ok = true;
	for (int i = 0; i < 4; i++) {
		ok = ok && items[i] && cbor_array_push(arr, items[i]);
		if (items[i])
			cbor_decref(&items[i]);
	}
	if (!ok)
		goto out;
	uint8_t *body = NULL;
	size_t blen = 0;
	if ((r = strictcbor_serialize(&body, &blen, arr, DEVCA_COSE_MAX - (tagged ? 1 : 0))) != 0)
		goto out;
	if (tagged) {
		/* tag 18 in its one-byte form */
		uint8_t *t = malloc(blen + 1);
		if (!t) {
			free(body);
			r = APP_ENOMEM;
			goto out;
		}
		t[0] = 0xd2;
		memcpy(t + 1, body, blen);
		free(body);
		body = t;
		blen++;
	}
	*out = body;
	*len = blen;
out:
	if (arr)
		cbor_decref(&arr);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	free(tbs);
	return r;
}

int devca_attest(const struct devca_leaf *leaf, uint8_t **out, size_t *len, const struct devca_doc *doc)
{
	uint8_t *payload = NULL;
	size_t plen = 0;
	*out = NULL;
	*len = 0;
	int r = devca_payload_encode(leaf, &payload, &plen, doc);
	if (r == 0)
		r = devca_cose_sign1(leaf, out, len, NULL, 0, payload, plen, 0);
	free(payload);
	return r;
}
