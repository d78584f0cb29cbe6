/*
 * nsm_test: the NSM client and the development emulator: AWS's on-hardware
 * check list (nsm-api nsm-check.rs) over the unix-socket transport and
 * in-process, the message codec (every request, response and error code),
 * the socket framing, and emulator documents verifying with the dev root
 * and only with it. When APPLIANCE_BIN is set (tests/run.sh) the
 * appliance-parent program itself is exercised too.
 */
#include <cbor.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "appliance/attest.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/nsm.h"
#include "appliance/strictcbor.h"
#include "parent/devca.h"
#include "parent/nsm_emu.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

extern char **environ;

static char tmpdir[256];

static const uint8_t zero48[48];

/* A running emulator served on a socket by a thread. */
struct served {
	struct devca *ca;
	struct nsm_emu *emu;
	char path[300];
	int lfd, stop[2];
	pthread_t th;
	int rc;
};

static void *serve_thread(void *arg)
{
	struct served *s = arg;
	s->rc = nsm_emu_serve(s->emu, s->lfd, s->stop[0]);
	return NULL;
}

static int served_start(struct served *s, const char *name, const struct nsm_emu_config *cfg_in)
{
	memset(s, 0, sizeof *s);
	struct nsm_emu_config cfg;
	if (cfg_in) {
		cfg = *cfg_in;
	} else {
		memset(&cfg, 0, sizeof cfg);
		nsm_emu_measure_bytes(&cfg, (const uint8_t *)"enclave image", 13);
	}
	snprintf(s->path, sizeof s->path, "%s/%s", tmpdir, name);
	if (devca_new_ephemeral(&s->ca, 0) != 0 || nsm_emu_new(&s->emu, s->ca, &cfg) != 0 ||
	    nsm_emu_listen(s->path, &s->lfd) != 0 || pipe(s->stop) != 0)
		return -1;
	return pthread_create(&s->th, NULL, serve_thread, s) == 0 ? 0 : -1;
}

static void served_stop(struct served *s)
{
	if (write(s->stop[1], "x", 1) != 1)
		perror("write");
	pthread_join(s->th, NULL);
	CHECK(s->rc == 0);
	close(s->stop[0]);
	close(s->stop[1]);
	close(s->lfd);
	unlink(s->path);
	nsm_emu_free(s->emu);
	devca_free(s->ca);
}

/* The AWS on-hardware check list, step by step, against any transport. */
static void check_list(struct nsm *n)
{
	struct nsm_response d;
	CHECK_OK(nsm_describe(n, &d));
	CHECK(d.max_pcrs == 32);
	CHECK(d.module_id[0] != 0);
	CHECK(d.locked_pcrs == 0xffffu); /* [0..16) */
	CHECK(d.digest == NSM_DIGEST_SHA384);
	CHECK(d.version_major == 1);
	nsm_response_clear(&d);

	uint8_t *doc = NULL;
	size_t dl = 0;
	CHECK_OK(nsm_attestation(n, &doc, &dl, NULL, 0, NULL, 0, NULL, 0));
	CHECK(doc && dl > 0);
	free(doc);

	/* initial PCRs */
	for (uint16_t i = 0; i < 32; i++) {
		uint8_t pcr[48];
		int locked = -1;
		CHECK_OK(nsm_describe_pcr(n, i, &locked, pcr));
		if (i < 5 && i != 3)
			CHECKM(memcmp(pcr, zero48, 48) != 0, "PCR%u must not be empty", i);
		else
			CHECKM(memcmp(pcr, zero48, 48) == 0, "PCR%u must be empty", i);
		CHECKM(locked == (i < 16), "PCR%u lock", i);
	}
	/* locks */
	for (uint16_t i = 0; i < 16; i++)
		CHECK_ERR(nsm_lock_pcr(n, i), APP_EREFUSED);
	uint8_t prev[32][48];
	for (int loop = 0; loop < 10; loop++)
		for (uint16_t i = 16; i < 32; i++) {
			uint8_t pcr[48], expect[96];
			int locked;
			CHECK_OK(nsm_describe_pcr(n, i, &locked, expect));
			memcpy(expect + 48, (const uint8_t[]){1, 2, 3}, 3);
			uint8_t want[48];
			hash_sha384(want, expect, 51);
			CHECK_OK(nsm_extend_pcr(n, i, (const uint8_t[]){1, 2, 3}, 3, pcr));
			CHECK(memcmp(pcr, zero48, 48) != 0);
			CHECKM(memcmp(pcr, want, 48) == 0, "extend = SHA384(old || data), PCR%u", i);
			memcpy(prev[i], pcr, 48);
		}
	for (uint16_t i = 16; i < 32; i++)
		CHECK_OK(nsm_lock_pcr(n, i));
	CHECK_OK(nsm_lock_pcr(n, 20)); /* locking again is fine */
	CHECK_OK(nsm_lock_pcrs(n, 32));
	CHECK_ERR(nsm_lock_pcrs(n, 33), APP_ERANGE);
	for (uint16_t i = 0; i < 32; i++)
		CHECK_ERR(nsm_extend_pcr(n, i, (const uint8_t[]){1, 2, 3}, 3, NULL), APP_EREFUSED);
	for (int loop = 0; loop < 10; loop++)
		for (uint16_t i = 0; i < 32; i++) {
			uint8_t pcr[48];
			int locked = 0;
			CHECK_OK(nsm_describe_pcr(n, i, &locked, pcr));
			if (i == 3 || (i >= 5 && i <= 15))
				CHECK(memcmp(pcr, zero48, 48) == 0);
			else
				CHECK(memcmp(pcr, zero48, 48) != 0);
			if (i >= 16)
				CHECK(memcmp(pcr, prev[i], 48) == 0);
			CHECK(locked);
		}
	/* attestations with the largest fields, one at a time and all together */
	uint8_t big[1024];
	memset(big, 128, sizeof big);
	CHECK_OK(nsm_attestation(n, &doc, &dl, big, 1024, NULL, 0, NULL, 0));
	free(doc);
	CHECK_OK(nsm_attestation(n, &doc, &dl, big, 1024, big, 1024, NULL, 0));
	free(doc);
	CHECK_OK(nsm_attestation(n, &doc, &dl, big, 1024, big, 1024, big, 1024));
	free(doc);
	/* random: non-empty and different every time */
	uint8_t r1[64], r2[64];
	CHECK_OK(nsm_get_random(n, r1, sizeof r1));
	for (int i = 0; i < 16; i++) {
		CHECK_OK(nsm_get_random(n, r2, sizeof r2));
		CHECK(memcmp(r1, r2, sizeof r1) != 0);
		memcpy(r1, r2, sizeof r1);
	}
	uint8_t r3[1000];
	CHECK_OK(nsm_get_random(n, r3, sizeof r3)); /* several answers */
	/* out-of-range indices */
	uint8_t pcr[48];
	CHECK_ERR(nsm_describe_pcr(n, 32, NULL, pcr), APP_ERANGE);
	CHECK_ERR(nsm_extend_pcr(n, 40, big, 1, NULL), APP_ERANGE);
	CHECK_ERR(nsm_lock_pcr(n, 32), APP_ERANGE);
	CHECK_ERR(nsm_lock_pcr(n, 65535), APP_ERANGE);
	/* over 1024 bytes: refused by the client before sending */
	CHECK_ERR(nsm_attestation(n, &doc, &dl, big, 1024, NULL, 0, (const uint8_t *)big, 1025), APP_ETOOBIG);
}

static void test_check_list_socket(void)
{
	struct served s;
	CHECK(served_start(&s, "nsm1.sock", NULL) == 0);
	struct nsm *n = NULL;
	CHECK_OK(nsm_open_unix(&n, s.path));
	if (n)
		check_list(n);
	nsm_close(n);
	served_stop(&s);
}

static void test_check_list_in_process(void)
{
	struct devca *ca = NULL;
	struct nsm_emu *emu = NULL;
	struct nsm_emu_config cfg = {0};
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)"x", 1);
	CHECK_OK(devca_new_ephemeral(&ca, 0));
	CHECK_OK(nsm_emu_new(&emu, ca, &cfg));
	struct nsm *n = NULL;
	CHECK_OK(nsm_open_custom(&n, nsm_emu_transport, emu));
	if (n)
		check_list(n);
	nsm_close(n);
	nsm_emu_free(emu);
	devca_free(ca);
}

static void test_measure(void)
{
	/* PCR2 of a single-ramdisk EIF: SHA384(0^48 || SHA384("")) (reference §4.1). */
	uint8_t m[48], want[48];
	nsm_emu_measure(m, NULL, 0);
	size_t wl = 0;
	uint8_t *w = tu_unhex("21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b9"
			      "64fc500a",
			      &wl);
	CHECK(w && wl == 48 && memcmp(m, w, 48) == 0);
	free(w);
	/* PCR4 = SHA384(0^48 || instance id): the value of a real document (evervault debug sample). */
	struct nsm_emu_config cfg = {0};
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)"img", 3);
	snprintf(cfg.instance_id, sizeof cfg.instance_id, "i-03ad7cdb817437eeb");
	struct devca *ca = NULL;
	struct nsm_emu *emu = NULL;
	CHECK_OK(devca_new_ephemeral(&ca, 0));
	CHECK_OK(nsm_emu_new(&emu, ca, &cfg));
	struct nsm *n = NULL;
	CHECK_OK(nsm_open_custom(&n, nsm_emu_transport, emu));
	uint8_t pcr[48];
	CHECK_OK(nsm_describe_pcr(n, 4, NULL, pcr));
	w = tu_unhex("615fa5b1a8838d392d8e54aacc3d9ac0db87d63cb826516c4cc94307c986fe465b29f3f54a55a2f121265528ae0aa6a7",
		     &wl);
	CHECK(w && memcmp(pcr, w, 48) == 0);
	free(w);
	/* PCR0/1/2 from the image */
	uint8_t img[48];
	hash_sha384(img, "img", 3);
	uint8_t ext[96] = {0};
	memcpy(ext + 48, img, 48);
	hash_sha384(want, ext, 96);
	CHECK_OK(nsm_describe_pcr(n, 0, NULL, pcr));
	CHECK(memcmp(pcr, want, 48) == 0);
	CHECK_OK(nsm_describe_pcr(n, 2, NULL, pcr));
	CHECK(memcmp(pcr, want, 48) == 0);
	CHECK_OK(nsm_describe_pcr(n, 1, NULL, pcr));
	nsm_emu_measure(m, NULL, 0);
	CHECK(memcmp(pcr, m, 48) == 0);
	CHECK(strncmp(nsm_emu_module_id(emu), "i-03ad7cdb817437eeb-enc", 23) == 0 &&
	      strlen(nsm_emu_module_id(emu)) == 19 + 4 + 16);
	nsm_close(n);
	nsm_emu_free(emu);
	/* PCR0/1/2 must be set; instance ids are checked */
	struct nsm_emu_config bad = {0};
	CHECK_ERR(nsm_emu_new(&emu, ca, &bad), APP_EINVAL);
	snprintf(cfg.instance_id, sizeof cfg.instance_id, "i-XYZ");
	CHECK_ERR(nsm_emu_new(&emu, ca, &cfg), APP_EINVAL);
	snprintf(cfg.instance_id, sizeof cfg.instance_id, "x-0123");
	CHECK_ERR(nsm_emu_new(&emu, ca, &cfg), APP_EINVAL);
	/* measuring a file equals measuring its bytes */
	char path[300];
	snprintf(path, sizeof path, "%s/image.bin", tmpdir);
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite("img", 1, 3, f) == 3);
	if (f)
		fclose(f);
	struct nsm_emu_config c2 = {0};
	CHECK_OK(nsm_emu_measure_file(&c2, path));
	CHECK(memcmp(c2.pcr[0], want, 48) == 0 && (c2.pcr_set & 7) == 7);
	CHECK_ERR(nsm_emu_measure_file(&c2, "/nonexistent/image"), APP_ENOENT);
	devca_free(ca);
}

/* Emulator documents: verify with the dev root and only with it; PCRs as described; all nine keys. */
static void test_documents(void)
{
	struct nsm_emu_config cfg = {0};
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)"enclave", 7);
	memset(cfg.pcr[8], 0x88, 48);
	cfg.pcr_set |= 1u << 8;
	struct devca *ca = NULL, *other = NULL;
	struct nsm_emu *emu = NULL;
	CHECK_OK(devca_new_ephemeral(&ca, 0));
	CHECK_OK(devca_new_ephemeral(&other, 0));
	CHECK_OK(nsm_emu_new(&emu, ca, &cfg));
	struct nsm *n = NULL;
	CHECK_OK(nsm_open_custom(&n, nsm_emu_transport, emu));
	uint8_t pub[32];
	memset(pub, 0xab, sizeof pub);
	CHECK_OK(nsm_extend_pcr(n, 16, (const uint8_t *)"app", 3, NULL));
	CHECK_OK(nsm_lock_pcr(n, 16));
	uint8_t *doc = NULL;
	size_t dl = 0;
	CHECK_OK(nsm_attestation(n, &doc, &dl, (const uint8_t *)"ud", 2, NULL, 0, pub, sizeof pub));
	CHECK(doc && doc[0] == 0x84); /* untagged COSE_Sign1 */

	struct attest_verifier *aws = NULL, *dev = NULL, *wrong = NULL;
	CHECK_OK(attest_verifier_new(&aws));
	CHECK_OK(attest_verifier_new(&dev));
	CHECK_OK(attest_verifier_new(&wrong));
	uint8_t *root = NULL;
	size_t rl = 0;
	CHECK_OK(devca_root_der(ca, &root, &rl));
	CHECK_OK(attest_verifier_add_dev_root(dev, root, rl));
	free(root);
	CHECK_OK(devca_root_der(other, &root, &rl));
	CHECK_OK(attest_verifier_add_dev_root(wrong, root, rl));
	free(root);

	struct attest_verify_opts o = {.allow_dev = 1};
	struct attest_result res;
	struct attest_doc *d = NULL;
	CHECK_OK(attest_verify_bytes(dev, &res, &d, doc, dl, &o));
	CHECKM(res.check == ATTEST_CHECK_NONE && res.dev == 1, "%s", res.reason);
	CHECK_ERR(attest_verify_bytes(aws, &res, NULL, doc, dl, &o), APP_ECHAIN);
	CHECK(res.check == ATTEST_CHECK_ROOT);
	CHECK_ERR(attest_verify_bytes(wrong, &res, NULL, doc, dl, &o), APP_ECHAIN);
	CHECK(res.check == ATTEST_CHECK_ROOT);
	o.allow_dev = 0;
	CHECK_ERR(attest_verify_bytes(dev, &res, NULL, doc, dl, &o), APP_EREFUSED);
	CHECK(res.check == ATTEST_CHECK_DEV_ROOT);
	if (d) {
		CHECK_STR(d->module_id, nsm_emu_module_id(emu));
		CHECK(d->pcr_mask == (0xffffu | (1u << 16)));
		for (uint16_t i = 0; i < 17; i++) {
			uint8_t pcr[48];
			CHECK_OK(nsm_describe_pcr(n, i, NULL, pcr));
			CHECKM(memcmp(pcr, d->pcrs[i], 48) == 0, "PCR%u in the document", i);
		}
		CHECK(memcmp(d->pcrs[8], cfg.pcr[8], 48) == 0);
		CHECK(d->public_key_len == 32 && memcmp(d->public_key, pub, 32) == 0);
		CHECK(d->user_data_len == 2 && memcmp(d->user_data, "ud", 2) == 0);
		CHECK(d->nonce == NULL);
		CHECK(!d->payload_indefinite && !d->tagged && d->cabundle_n == 4);
		struct attest_chain_info ci;
		CHECK_OK(attest_doc_chain_info(d, &ci));
		CHECK(ci.n == 5 && strstr(ci.cert[4].subject, "CN=dev.nitro-enclaves") != NULL);
		CHECK(ci.cert[0].not_after - ci.cert[0].not_before == DEVCA_LEAF_LIFETIME + DEVCA_LEAF_BACKDATE);
		CHECK(strstr(ci.cert[0].subject, d->module_id) != NULL);
		uint64_t now = (uint64_t)time(NULL);
		CHECK(d->timestamp_ms / 1000 + 5 >= now && d->timestamp_ms / 1000 <= now + 5);
	}
	/* All nine payload keys present, absent ones as null. */
	struct cbor_load_result lr;
	cbor_item_t *cose = cbor_load(doc, dl, &lr);
	const uint8_t *pl = NULL;
	size_t pll = 0;
	CHECK(cose && cbor_isa_array(cose) && strictcbor_bytes_of(cbor_array_handle(cose)[2], &pl, &pll) == 0);
	cbor_item_t *payload = pl ? cbor_load(pl, pll, &lr) : NULL;
	CHECK(payload && cbor_map_size(payload) == 9);
	if (payload) {
		static const char *const keys[] = {"module_id",   "digest",   "timestamp",  "pcrs",	   "certificate",
						   "cabundle",	   "public_key", "user_data", "nonce"};
		for (size_t i = 0; i < 9; i++)
			CHECK(strictcbor_text_is(cbor_map_handle(payload)[i].key, keys[i]));
		CHECK(cbor_is_null(cbor_map_handle(payload)[8].value));
		cbor_decref(&payload);
	}
	if (cose)
		cbor_decref(&cose);
	free(doc);
	attest_doc_free(d);
	nsm_close(n);
	nsm_emu_free(emu);

	/* The indefinite-map option, and a debug-free dev document's leaf rotating per document. */
	cfg.indefinite_map = 1;
	CHECK_OK(nsm_emu_new(&emu, ca, &cfg));
	CHECK_OK(nsm_open_custom(&n, nsm_emu_transport, emu));
	uint8_t *doc2 = NULL;
	size_t dl2 = 0;
	CHECK_OK(nsm_attestation(n, &doc, &dl, NULL, 0, (const uint8_t *)"n", 1, NULL, 0));
	CHECK_OK(nsm_attestation(n, &doc2, &dl2, NULL, 0, (const uint8_t *)"n", 1, NULL, 0));
	o.allow_dev = 1;
	struct attest_doc *d2 = NULL;
	CHECK_OK(attest_verify_bytes(dev, &res, &d, doc, dl, &o));
	CHECK_OK(attest_verify_bytes(dev, &res, &d2, doc2, dl2, &o));
	CHECK(res.cached == 1); /* same intermediates: the second hits the cache */
	CHECK(d && d->payload_indefinite && d->nonce_len == 1);
	CHECK(d && d2 &&
	      (d->certificate_len != d2->certificate_len || memcmp(d->certificate, d2->certificate, d->certificate_len)));
	attest_doc_free(d);
	attest_doc_free(d2);
	free(doc);
	free(doc2);
	nsm_close(n);
	nsm_emu_free(emu);
	attest_verifier_free(aws);
	attest_verifier_free(dev);
	attest_verifier_free(wrong);
	devca_free(ca);
	devca_free(other);
}

/* ---- codec ---- */

static size_t enc_req(uint8_t *buf, const struct nsm_request *rq)
{
	size_t n = 0;
	CHECK_OK(nsm_request_encode(buf, NSM_REQUEST_MAX, &n, rq));
	return n;
}

static void test_request_codec(void)
{
	uint8_t buf[NSM_REQUEST_MAX], data[40] = {7};
	struct nsm_request rq = {.type = NSM_REQ_GET_RANDOM}, back;
	size_t n = enc_req(buf, &rq);
	/* "GetRandom" bytes as the kernel sends them (reference §1.1) */
	CHECK(n == 10 && memcmp(buf, "\x69GetRandom", 10) == 0);
	rq = (struct nsm_request){.type = NSM_REQ_DESCRIBE_NSM};
	n = enc_req(buf, &rq);
	CHECK(n == 12 && memcmp(buf, "\x6b" "DescribeNSM", 12) == 0);
	rq = (struct nsm_request){.type = NSM_REQ_DESCRIBE_PCR, .index = 5};
	n = enc_req(buf, &rq);
	CHECK(n == 21 && memcmp(buf, "\xa1\x6b" "DescribePCR\xa1\x65index\x05", 21) == 0);
	rq = (struct nsm_request){.type = NSM_REQ_LOCK_PCRS, .range = 300};
	n = enc_req(buf, &rq);
	CHECK(memcmp(buf + n - 3, "\x19\x01\x2c", 3) == 0); /* u16 in its smallest width */
	/* round trips */
	struct nsm_request all[] = {
		{.type = NSM_REQ_DESCRIBE_PCR, .index = 31},
		{.type = NSM_REQ_EXTEND_PCR, .index = 17, .data = data, .data_len = sizeof data},
		{.type = NSM_REQ_EXTEND_PCR, .index = 17, .data = data, .data_len = 0},
		{.type = NSM_REQ_LOCK_PCR, .index = 65535},
		{.type = NSM_REQ_LOCK_PCRS, .range = 32},
		{.type = NSM_REQ_DESCRIBE_NSM},
		{.type = NSM_REQ_ATTESTATION, .user_data = data, .user_data_len = 3, .public_key = data, .public_key_len = 40},
		{.type = NSM_REQ_ATTESTATION},
		{.type = NSM_REQ_GET_RANDOM},
	};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		n = enc_req(buf, &all[i]);
		CHECK_OK(nsm_request_decode(&back, buf, n));
		CHECK(back.type == all[i].type && back.index == all[i].index && back.range == all[i].range);
		CHECK(back.data_len == all[i].data_len && (!all[i].data_len || memcmp(back.data, data, back.data_len) == 0));
		CHECK((back.user_data == NULL) == (all[i].user_data == NULL) && back.user_data_len == all[i].user_data_len);
		CHECK(back.nonce == NULL && (back.public_key == NULL) == (all[i].public_key == NULL));
		nsm_request_clear(&back);
	}
	/* strictness */
	static const struct {
		const char *hex;
		int err;
	} bad[] = {
		{"6b44657363726962654e534d00", APP_EPARSE},		/* trailing byte */
		{"63466f6f", APP_EUNSUPPORTED},				/* "Foo" */
		{"654572726f72", APP_EUNSUPPORTED},			/* "Error" is not a request */
		{"a16b4465736372696265504352a0", APP_EPARSE},		/* missing index */
		{"a16b4465736372696265504352a165696e6465781a00010000", APP_EPARSE}, /* index 65536 */
		{"a16b4465736372696265504352a265696e6465780165696e64657802", APP_EPARSE}, /* duplicate */
		{"a16b4465736372696265504352a265696e646578016178f6", APP_EPARSE},	     /* unknown field */
		{"a16b4465736372696265504352a165696e64657841ff", APP_EPARSE},		     /* bstr index */
		{"a16b44657363726962654e534da0", APP_EPARSE},		/* unit request with a body */
		{"a16947657452616e646f6d", APP_EPARSE},		/* a key without its value */
		{"f6", APP_EPARSE},
		{"fb3ff0000000000000", APP_EPARSE},				 /* float */
		{"7f6b44657363726962654e534dff", APP_EPARSE},		 /* indefinite text */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t bl = 0;
		uint8_t *b = tu_unhex(bad[i].hex, &bl);
		CHECKM(b != NULL, "hex %zu", i);
		if (!b)
			continue;
		int r = nsm_request_decode(&back, b, bl);
		CHECKM(r == bad[i].err, "bad request %zu: %d, want %d", i, r, bad[i].err);
		nsm_request_clear(&back);
		free(b);
	}
	/* caps */
	uint8_t big[NSM_REQUEST_MAX + 8];
	memset(big, 0, sizeof big);
	rq = (struct nsm_request){.type = NSM_REQ_EXTEND_PCR, .index = 16, .data = big, .data_len = NSM_REQUEST_MAX};
	CHECK_ERR(nsm_request_encode(buf, sizeof buf, &n, &rq), APP_ETOOBIG);
	rq = (struct nsm_request){.type = NSM_REQ_ATTESTATION, .nonce = big, .nonce_len = 1025};
	CHECK_ERR(nsm_request_encode(buf, sizeof buf, &n, &rq), APP_ETOOBIG);
	CHECK_ERR(nsm_request_decode(&back, big, NSM_REQUEST_MAX + 1), APP_ETOOBIG);
	rq = (struct nsm_request){.type = (enum nsm_request_type)42};
	CHECK_ERR(nsm_request_encode(buf, sizeof buf, &n, &rq), APP_EINVAL);
}

static void test_response_codec(void)
{
	static const char *const names[] = {"Success",	    "InvalidArgument", "InvalidIndex",
					    "InvalidResponse", "ReadOnlyIndex",   "InvalidOperation",
					    "BufferTooSmall",  "InputTooLarge",   "InternalError"};
	static const int errs[] = {0,		 APP_EINVAL,	  APP_ERANGE,  APP_EPROTO,   APP_EREFUSED,
				   APP_EUNSUPPORTED, APP_ETOOBIG, APP_ETOOBIG, APP_EINTERNAL};
	uint8_t buf[NSM_RESPONSE_MAX], rnd[300];
	size_t n = 0;
	struct nsm_response rs, back;
	for (int i = 0; i < 9; i++) {
		CHECK_STR(nsm_status_name((enum nsm_status)i), names[i]);
		CHECK(nsm_status_to_err((enum nsm_status)i) == errs[i]);
		rs = (struct nsm_response){.type = NSM_REQ_NONE, .status = (enum nsm_status)i};
		if (i == 0) {
			CHECK_ERR(nsm_response_encode(buf, sizeof buf, &n, &rs), APP_EINVAL);
			continue;
		}
		CHECK_OK(nsm_response_encode(buf, sizeof buf, &n, &rs));
		CHECK(n == 8 + strlen(names[i]) && memcmp(buf, "\xa1\x65" "Error", 7) == 0);
		CHECK_OK(nsm_response_decode(&back, buf, n));
		CHECK(back.type == NSM_REQ_NONE && back.status == (enum nsm_status)i);
		nsm_response_clear(&back);
	}
	memset(rnd, 0x33, sizeof rnd);
	struct nsm_response all[] = {
		{.type = NSM_REQ_DESCRIBE_PCR, .lock = 1, .pcr_len = 48},
		{.type = NSM_REQ_EXTEND_PCR, .pcr_len = 48},
		{.type = NSM_REQ_LOCK_PCR},
		{.type = NSM_REQ_LOCK_PCRS},
		{.type = NSM_REQ_DESCRIBE_NSM, .version_major = 1, .version_minor = 2, .version_patch = 3, .module_id = "i-1-enc2",
		 .max_pcrs = 32, .locked_pcrs = 0x8000ffffu, .digest = NSM_DIGEST_SHA384},
		{.type = NSM_REQ_ATTESTATION, .document = rnd, .document_len = 300},
		{.type = NSM_REQ_GET_RANDOM, .random = rnd, .random_len = 256},
	};
	memset(all[0].pcr, 0x11, 48);
	memset(all[1].pcr, 0x22, 48);
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		CHECK_OK(nsm_response_encode(buf, sizeof buf, &n, &all[i]));
		CHECK_OK(nsm_response_decode(&back, buf, n));
		CHECK(back.type == all[i].type && back.status == NSM_SUCCESS && back.lock == all[i].lock);
		CHECK(back.pcr_len == all[i].pcr_len && memcmp(back.pcr, all[i].pcr, all[i].pcr_len) == 0);
		CHECK(back.max_pcrs == all[i].max_pcrs && back.locked_pcrs == all[i].locked_pcrs &&
		      back.digest == all[i].digest && strcmp(back.module_id, all[i].module_id) == 0);
		CHECK(back.version_minor == all[i].version_minor && back.version_patch == all[i].version_patch);
		CHECK(back.document_len == all[i].document_len && back.random_len == all[i].random_len);
		nsm_response_clear(&back);
	}
	/* the LockPCR answer is a bare text */
	CHECK_OK(nsm_response_encode(buf, sizeof buf, &n, &all[2]));
	CHECK(n == 8 && memcmp(buf, "\x67LockPCR", 8) == 0);
	static const char *const bad[] = {
		"a1654572726f726753756363657373",	/* {"Error":"Success"} */
		"a1654572726f7263466f6f",		/* unknown error code */
		"a1654572726f7201",			/* error not text */
		"674c6f636b50435200",			/* trailing byte */
		"a16b4465736372696265504352a2646c6f636bf5646461746141aa",	    /* PCR of 1 byte */
		"a16b4465736372696265504352a1646461746141aa",		    /* lock missing */
		"a16947657452616e646f6da16672616e646f6d40",		    /* empty random */
		"a16b4174746573746174696f6ea168646f63756d656e7440",		    /* empty document */
		"a169457874656e64504352a16464617461f6",			    /* data null */
		"664c6f636b5043",					    /* truncated */
		"a1674c6f636b504352a0",					    /* unit with a body */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t bl = 0;
		uint8_t *b = tu_unhex(bad[i], &bl);
		CHECKM(b != NULL, "hex %zu", i);
		if (b)
			CHECKM(nsm_response_decode(&back, b, bl) == APP_EPARSE, "bad response %zu", i);
		nsm_response_clear(&back);
		free(b);
	}
	/* DescribeNSM consistency: locked_pcrs ascending, below max_pcrs; max_pcrs 1..32; module_id printable */
	struct nsm_response dn = all[4];
	dn.max_pcrs = 16;
	CHECK_ERR(nsm_response_encode(buf, sizeof buf, &n, &dn), APP_EINVAL);
	cbor_item_t *m = NULL;
	CHECK_OK(nsm_response_encode(buf, sizeof buf, &n, &all[4]));
	struct cbor_load_result lr;
	m = cbor_load(buf, n, &lr);
	if (m) {
		cbor_item_t *body = cbor_map_handle(m)[0].value;
		cbor_item_t *locked = cbor_map_handle(body)[5].value;
		cbor_item_t **items = cbor_array_handle(locked);
		cbor_item_t *tmp = items[0];
		items[0] = items[1];
		items[1] = tmp;
		uint8_t *out = NULL;
		size_t ol = 0;
		CHECK_OK(strictcbor_serialize(&out, &ol, m, NSM_RESPONSE_MAX));
		CHECK_ERR(nsm_response_decode(&back, out, ol), APP_EPARSE);
		free(out);
		cbor_decref(&m);
	}
	CHECK_ERR(nsm_response_decode(&back, buf, NSM_RESPONSE_MAX + 1), APP_ETOOBIG);
	CHECK_STR(nsm_request_name(NSM_REQ_ATTESTATION), "Attestation");
	CHECK_STR(nsm_status_name((enum nsm_status)99), "Unknown");
}

/* ---- framing ---- */

static int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static enum nsm_status read_error(int fd)
{
	uint8_t buf[NSM_RESPONSE_MAX];
	size_t n = 0;
	struct nsm_response rs;
	if (nsm_frame_read(fd, buf, sizeof buf, &n) != 0 || nsm_response_decode(&rs, buf, n) != 0)
		return NSM_SUCCESS;
	enum nsm_status st = rs.type == NSM_REQ_NONE ? rs.status : NSM_SUCCESS;
	nsm_response_clear(&rs);
	return st;
}

static void test_framing(void)
{
	struct served s;
	CHECK(served_start(&s, "nsm2.sock", NULL) == 0);
	struct stat st;
	CHECK(stat(s.path, &st) == 0 && (st.st_mode & 0777) == 0600);
	int fd = raw_connect(s.path);
	CHECK(fd >= 0);
	/* a zero-length frame: InvalidArgument, the connection stays usable */
	CHECK(write(fd, "\0\0\0\0", 4) == 4);
	CHECK(read_error(fd) == NSM_INVALID_ARGUMENT);
	/* garbage CBOR: InvalidArgument */
	CHECK_OK(nsm_frame_write(fd, (const uint8_t *)"\xff\xff", 2));
	CHECK(read_error(fd) == NSM_INVALID_ARGUMENT);
	/* unknown request: InvalidOperation */
	CHECK_OK(nsm_frame_write(fd, (const uint8_t *)"\x63" "Foo", 4));
	CHECK(read_error(fd) == NSM_INVALID_OPERATION);
	/* a good request still works on the same connection */
	uint8_t buf[NSM_RESPONSE_MAX];
	size_t n = 0;
	CHECK_OK(nsm_frame_write(fd, (const uint8_t *)"\x69GetRandom", 10));
	CHECK_OK(nsm_frame_read(fd, buf, sizeof buf, &n));
	CHECK(n > 256 && memcmp(buf, "\xa1\x69GetRandom", 11) == 0);
	/* an oversized frame: InputTooLarge, then the connection is closed */
	CHECK(write(fd, "\0\0\x10\x01", 4) == 4);
	CHECK(read_error(fd) == NSM_INPUT_TOO_LARGE);
	CHECK_ERR(nsm_frame_read(fd, buf, sizeof buf, &n), APP_ECONN);
	close(fd);
	/* a client that dies mid-frame does not hurt the server */
	fd = raw_connect(s.path);
	CHECK(write(fd, "\0\0\0\x20\x01", 5) == 5);
	close(fd);
	/* many clients at once, beyond the connection limit, then normal service */
	int fds[NSM_EMU_MAX_CLIENTS + 2];
	for (int i = 0; i < NSM_EMU_MAX_CLIENTS + 2; i++)
		fds[i] = raw_connect(s.path);
	for (int i = 0; i < NSM_EMU_MAX_CLIENTS + 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	struct nsm *c = NULL;
	CHECK_OK(nsm_open_unix(&c, s.path));
	uint8_t r[16];
	CHECK_OK(nsm_get_random(c, r, sizeof r));
	/* raw exchange limits on the client side */
	size_t rl = sizeof buf;
	uint8_t big[NSM_REQUEST_MAX + 1] = {0};
	CHECK_ERR(nsm_raw(c, buf, &rl, big, sizeof big), APP_ETOOBIG);
	/* the server stops; the client reports the lost connection, and reconnects later */
	served_stop(&s);
	CHECK(nsm_get_random(c, r, sizeof r) != 0);
	CHECK(served_start(&s, "nsm2.sock", NULL) == 0);
	CHECK_OK(nsm_get_random(c, r, sizeof r));
	nsm_close(c);
	served_stop(&s);
	/* opening */
	CHECK_ERR(nsm_open_unix(&c, s.path), APP_ENOENT);
	CHECK_ERR(nsm_open_device(&c, "/nonexistent/nsm"), APP_ENOENT);
	CHECK_ERR(nsm_open_spec(&c, "tcp:1.2.3.4:5"), APP_EINVAL);
	CHECK_ERR(nsm_open_spec(&c, "dev:/nonexistent/nsm"), APP_ENOENT);
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = 0;
	CHECK_ERR(nsm_open_unix(&c, longp), APP_EINVAL);
	/* a socket path that is a regular file is not replaced */
	char fpath[300];
	snprintf(fpath, sizeof fpath, "%s/regular", tmpdir);
	FILE *f = fopen(fpath, "w");
	if (f)
		fclose(f);
	int lfd = -1;
	CHECK_ERR(nsm_emu_listen(fpath, &lfd), APP_EEXIST);
}

/* A transport that answers with canned bytes: the client's checks on answers. */
struct canned {
	const uint8_t *b;
	size_t n;
};

static int canned_fn(void *arg, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	(void)req;
	(void)req_len;
	struct canned *c = arg;
	if (c->n > *resp_len)
		return APP_EPROTO;
	memcpy(resp, c->b, c->n);
	*resp_len = c->n;
	return 0;
}

static void test_client_checks(void)
{
	struct canned c;
	struct nsm *n = NULL;
	CHECK_OK(nsm_open_custom(&n, canned_fn, &c));
	uint8_t pcr[48];
	/* an answer of another type */
	c = (struct canned){(const uint8_t *)"\x67LockPCR", 8};
	CHECK_ERR(nsm_describe_pcr(n, 1, NULL, pcr), APP_EPROTO);
	/* garbage */
	c = (struct canned){(const uint8_t *)"\xff", 1};
	CHECK_ERR(nsm_lock_pcr(n, 16), APP_EPROTO);
	/* an empty answer */
	c = (struct canned){(const uint8_t *)"", 0};
	CHECK_ERR(nsm_lock_pcr(n, 16), APP_EPROTO);
	/* errors mapped */
	c = (struct canned){(const uint8_t *)"\xa1\x65" "Error\x6dInternalError", 21};
	CHECK_ERR(nsm_lock_pcr(n, 16), APP_EINTERNAL);
	/* a SHA-256 bank answer to DescribePCR: not what the helpers accept */
	uint8_t b[64];
	size_t bl = 0;
	struct nsm_response rs = {.type = NSM_REQ_DESCRIBE_PCR, .pcr_len = 32};
	CHECK_OK(nsm_response_encode(b, sizeof b, &bl, &rs));
	c = (struct canned){b, bl};
	CHECK_ERR(nsm_describe_pcr(n, 1, NULL, pcr), APP_EPROTO);
	nsm_close(n);
}

/* ---- the appliance-parent program (when tests/run.sh gives APPLIANCE_BIN) ---- */

static int run(char *const argv[], pid_t *bg)
{
	pid_t pid;
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	if (bg) {
		*bg = pid;
		return 0;
	}
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_parent_program(void)
{
	const char *bin = getenv("APPLIANCE_BIN");
	if (!bin) {
		printf("  (APPLIANCE_BIN not set: skipped)\n");
		return;
	}
	char parent[512], cli[512], cadir[300], sock[300], rootpem[400], img[300], docp[300];
	snprintf(parent, sizeof parent, "%s/appliance-parent", bin);
	snprintf(cli, sizeof cli, "%s/appliance", bin);
	snprintf(cadir, sizeof cadir, "%s/ca", tmpdir);
	snprintf(sock, sizeof sock, "%s/emu.sock", tmpdir);
	snprintf(rootpem, sizeof rootpem, "%s/root.pem", cadir);
	snprintf(img, sizeof img, "%s/image.bin", tmpdir);
	snprintf(docp, sizeof docp, "%s/doc.cbor", tmpdir);
	CHECK(run((char *const[]){parent, "dev-ca", "create", cadir, NULL}, NULL) == 0);
	CHECK(run((char *const[]){parent, "dev-ca", "create", cadir, NULL}, NULL) == 1); /* never overwritten */
	struct stat st;
	CHECK(stat(cadir, &st) == 0);
	char keyp[400];
	snprintf(keyp, sizeof keyp, "%s/root.key", cadir);
	CHECK(stat(keyp, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(run((char *const[]){parent, "nsm-emulator", "--socket", sock, NULL}, NULL) == 2);
	CHECK(run((char *const[]){parent, "nsm-emulator", "--socket", sock, "--ca", cadir, "--image", img, "--pcr",
				  "0=00", NULL},
		  NULL) == 2);
	pid_t pid = 0;
	char pcr8[100];
	memset(pcr8, 'c', 96);
	pcr8[96] = 0;
	char pcrarg[110];
	snprintf(pcrarg, sizeof pcrarg, "8=%s", pcr8);
	CHECK(run((char *const[]){parent, "nsm-emulator", "--socket", sock, "--ca", cadir, "--image", img, "--pcr", pcrarg,
				  NULL},
		  &pid) == 0);
	struct nsm *n = NULL;
	for (int i = 0; i < 750 && nsm_open_unix(&n, sock) != 0; i++)
		usleep(20000);
	CHECK(n != NULL);
	uint8_t *doc = NULL;
	size_t dl = 0;
	if (n)
		CHECK_OK(nsm_attestation(n, &doc, &dl, NULL, 0, NULL, 0, (const uint8_t *)"pk", 2));
	nsm_close(n);
	struct attest_verifier *v = NULL;
	CHECK_OK(attest_verifier_new(&v));
	CHECK_OK(attest_verifier_add_dev_root_file(v, rootpem));
	struct attest_verify_opts o = {.allow_dev = 1};
	struct attest_result res;
	struct attest_doc *d = NULL;
	CHECK_OK(attest_verify_bytes(v, &res, &d, doc, dl, &o));
	struct nsm_emu_config cfg = {0};
	CHECK_OK(nsm_emu_measure_file(&cfg, img));
	CHECK(d && memcmp(d->pcrs[0], cfg.pcr[0], 48) == 0 && d->pcrs[8][0] == 0xcc);
	attest_doc_free(d);
	attest_verifier_free(v);
	/* the command line verifier on the same document */
	FILE *f = fopen(docp, "wb");
	CHECK(f && doc && fwrite(doc, 1, dl, f) == dl);
	if (f)
		fclose(f);
	if (access(cli, X_OK) == 0) {
		CHECK(run((char *const[]){cli, "attest", "verify", docp, "--root", rootpem, "--allow-dev", NULL}, NULL) == 0);
		CHECK(run((char *const[]){cli, "attest", "verify", docp, "--root", rootpem, NULL}, NULL) == 1);
		CHECK(run((char *const[]){cli, "attest", "verify", docp, NULL}, NULL) == 1);
	}
	free(doc);
	kill(pid, SIGTERM);
	int ws = 0;
	CHECK(waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	CHECK(access(sock, F_OK) != 0); /* removed on exit */
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/nsm_test.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_request_codec);
	RUN(test_response_codec);
	RUN(test_client_checks);
	RUN(test_measure);
	RUN(test_check_list_in_process);
	RUN(test_check_list_socket);
	RUN(test_documents);
	RUN(test_framing);
	RUN(test_parent_program);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return test_summary();
}
