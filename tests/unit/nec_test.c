/*
 * nec_test: NEC events: attestation 23793, announcement 13793, release
 * signature 63794 and the release policy, on documents from the NSM
 * emulator (dev root) and the real AWS vectors.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "appliance/attest.h"
#include "appliance/b64.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nec.h"
#include "appliance/nsm.h"
#include "parent/devca.h"
#include "parent/nsm_emu.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

struct fx {
	struct devca *ca;
	struct nsm_emu *emu;
	struct nsm *nsm;
	struct attest_verifier *v;
	struct keypair *kp, *other;
	uint8_t pub[32];
	uint8_t *doc;
	size_t doc_len;
	struct attest_verify_opts o;
	uint64_t now;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	f->now = (uint64_t)time(NULL);
	struct nsm_emu_config cfg = {0};
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)"appliance-enclave", 17);
	CHECK_OK(devca_new_ephemeral(&f->ca, 0));
	CHECK_OK(nsm_emu_new(&f->emu, f->ca, &cfg));
	CHECK_OK(nsm_open_custom(&f->nsm, nsm_emu_transport, f->emu));
	CHECK_OK(attest_verifier_new(&f->v));
	uint8_t *root = NULL;
	size_t rl = 0;
	CHECK_OK(devca_root_der(f->ca, &root, &rl));
	CHECK_OK(attest_verifier_add_dev_root(f->v, root, rl));
	free(root);
	CHECK_OK(keys_generate(&f->kp));
	CHECK_OK(keys_generate(&f->other));
	keys_pubkey(f->kp, f->pub);
	CHECK_OK(nsm_attestation(f->nsm, &f->doc, &f->doc_len, NULL, 0, NULL, 0, f->pub, 32));
	f->o = (struct attest_verify_opts){.allow_dev = 1};
}

static void fx_free(struct fx *f)
{
	free(f->doc);
	keys_free(f->kp);
	keys_free(f->other);
	attest_verifier_free(f->v);
	nsm_close(f->nsm);
	nsm_emu_free(f->emu);
	devca_free(f->ca);
}

/* att_event: a hand-made 23793 (tags as given, NULL-separated pairs) signed by kp. */
static struct event *att_event(const struct keypair *kp, const uint8_t *doc, size_t len, const char *t, const char *exp,
			       int dash)
{
	char *b = b64_encode_alloc(doc, len);
	struct event *ev = NULL;
	CHECK_OK(event_new(&ev, NEC_KIND_ATTESTATION, (uint64_t)time(NULL), b, strlen(b)));
	free(b);
	if (!ev)
		return NULL;
	if (dash)
		CHECK_OK(event_add_tagv(ev, "-", NULL));
	if (t)
		CHECK_OK(event_add_tagv(ev, "t", t, NULL));
	if (exp)
		CHECK_OK(event_add_tagv(ev, "expiration", exp, NULL));
	CHECK_OK(event_sign(ev, kp));
	return ev;
}

#define EXPECT_ATT(f, ev, err, what)                                                                                    \
	do {                                                                                                            \
		const char *why_ = NULL;                                                                                \
		struct attest_result ar_;                                                                               \
		int r_ = (ev) ? nec_attestation_verify((f)->v, &why_, &ar_, NULL, (ev), &(f)->o) : -999;                \
		CHECKM(r_ == (err), "%s: %d (%s; %s), want %d", what, r_, why_ ? why_ : "", ar_.reason, (int)(err));    \
	} while (0)

static void test_attestation_event(void)
{
	struct fx f;
	fx_init(&f);
	struct event *ev = NULL;
	CHECK_OK(nec_attestation_create(&ev, f.kp, f.doc, f.doc_len, f.now));
	CHECK(ev && ev->kind == NEC_KIND_ATTESTATION);
	if (!ev) {
		fx_free(&f);
		return;
	}
	CHECK_STR(event_tag_value(ev, "t"), "dev");
	size_t pos = 0;
	CHECK(event_tag_find(ev, &pos, "-", 1) != NULL);
	uint64_t exp = 0;
	CHECK_OK(event_expiration(ev, &exp));
	const char *why = NULL;
	struct attest_result ar;
	struct attest_doc *d = NULL;
	CHECK_OK(nec_attestation_verify(f.v, &why, &ar, &d, ev, &f.o));
	CHECK(d && exp == ar.leaf_not_after && ar.dev);
	CHECK(exp > f.now + 3 * 3600 - 60 && exp <= f.now + 3 * 3600 + 5);
	attest_doc_free(d);
	/* JSON round trip */
	char *json = NULL;
	size_t jl = 0;
	CHECK_OK(event_to_json(&json, &jl, ev));
	struct event *back = NULL;
	CHECK_OK(event_parse(&back, NULL, json, jl));
	EXPECT_ATT(&f, back, 0, "parsed back");
	event_free(back);
	free(json);
	/* dev not allowed */
	f.o.allow_dev = 0;
	EXPECT_ATT(&f, ev, APP_EREFUSED, "dev root without allow_dev");
	f.o.allow_dev = 1;
	/* too late: the leaf (and the event) expired */
	f.o.time_mode = ATTEST_TIME_AT;
	f.o.at = exp + 1;
	f.o.max_age = 4 * 3600;
	EXPECT_ATT(&f, ev, APP_EEXPIRED, "after expiration");
	f.o = (struct attest_verify_opts){.allow_dev = 1};
	/* tampered content */
	ev->content[10] ^= 1;
	EXPECT_ATT(&f, ev, APP_EBADID, "content changed after signing");
	ev->content[10] ^= 1;
	/* wrong kind */
	ev->kind = NEC_KIND_RELEASE;
	EXPECT_ATT(&f, ev, APP_EINVAL, "kind 63794");
	ev->kind = NEC_KIND_ATTESTATION;
	event_free(ev);

	char expstr[24];
	snprintf(expstr, sizeof expstr, "%llu", (unsigned long long)exp);
	char exp1[24];
	snprintf(exp1, sizeof exp1, "%llu", (unsigned long long)exp + 1);
	struct event *e;
	e = att_event(f.kp, f.doc, f.doc_len, "dev", expstr, 1);
	EXPECT_ATT(&f, e, 0, "hand-made, correct");
	event_free(e);
	e = att_event(f.kp, f.doc, f.doc_len, "dev", expstr, 0);
	EXPECT_ATT(&f, e, APP_EPARSE, "no [\"-\"] tag");
	event_free(e);
	e = att_event(f.kp, f.doc, f.doc_len, "prod", expstr, 1);
	EXPECT_ATT(&f, e, APP_EREFUSED, "t prod on a dev document");
	event_free(e);
	e = att_event(f.kp, f.doc, f.doc_len, NULL, expstr, 1);
	EXPECT_ATT(&f, e, APP_EREFUSED, "no t tag");
	event_free(e);
	e = att_event(f.kp, f.doc, f.doc_len, "dev", exp1, 1);
	EXPECT_ATT(&f, e, APP_EREFUSED, "expiration != leaf notAfter");
	event_free(e);
	e = att_event(f.kp, f.doc, f.doc_len, "dev", NULL, 1);
	EXPECT_ATT(&f, e, APP_EREFUSED, "no expiration");
	event_free(e);
	e = att_event(f.other, f.doc, f.doc_len, "dev", expstr, 1);
	EXPECT_ATT(&f, e, APP_EREFUSED, "signed by a key other than public_key");
	event_free(e);
	/* content that is not base64 */
	CHECK_OK(event_new(&e, NEC_KIND_ATTESTATION, f.now, "not base64!", 11));
	CHECK_OK(event_add_tagv(e, "-", NULL));
	CHECK_OK(event_sign(e, f.kp));
	EXPECT_ATT(&f, e, APP_EPARSE, "content not base64");
	event_free(e);
	/* creation refuses a document for another key, and debug documents */
	CHECK_ERR(nec_attestation_create(&e, f.other, f.doc, f.doc_len, f.now), APP_EREFUSED);
	uint8_t *nopk = NULL;
	size_t nl = 0;
	CHECK_OK(nsm_attestation(f.nsm, &nopk, &nl, NULL, 0, NULL, 0, NULL, 0));
	CHECK_ERR(nec_attestation_create(&e, f.kp, nopk, nl, f.now), APP_EREFUSED);
	free(nopk);
	/* a real AWS document (public_key null) in an event: refused, whoever signs */
	size_t rl = 0;
	uint8_t *real = (uint8_t *)tu_read_file("tests/vectors/nitro/base-nitro-validator_2026-01-03_attestation_repaired.bin", &rl);
	CHECK(real != NULL);
	if (real) {
		e = att_event(f.kp, real, rl, "prod", "1767483628", 1);
		f.o.time_mode = ATTEST_TIME_AS_OF_DOCUMENT;
		EXPECT_ATT(&f, e, APP_EREFUSED, "real document, public_key null");
		f.o.time_mode = ATTEST_TIME_NOW;
		EXPECT_ATT(&f, e, APP_EEXPIRED, "real document, now");
		event_free(e);
		free(real);
	}
	fx_free(&f);
}

static struct event *release(const struct keypair *kp, const char *repo, const char *ver, int dev, const uint8_t pcrs[][48])
{
	struct nec_release rel = {.dev = dev};
	snprintf(rel.repo, sizeof rel.repo, "%s", repo);
	snprintf(rel.version, sizeof rel.version, "%s", ver);
	memcpy(rel.pcr, pcrs, sizeof rel.pcr);
	struct event *ev = NULL;
	CHECK_OK(nec_release_create(&ev, kp, &rel, (uint64_t)time(NULL)));
	return ev;
}

static const char REPO[] = "https://github.com/example/appliance";

static void test_announcement(void)
{
	struct fx f;
	fx_init(&f);
	struct event *att = NULL, *ann = NULL, *rel = NULL;
	struct attest_doc *d = NULL;
	CHECK_OK(nec_attestation_create(&att, f.kp, f.doc, f.doc_len, f.now));
	CHECK_OK(attest_doc_parse(&d, NULL, f.doc, f.doc_len));
	if (!att || !d)
		goto out;
	rel = release(f.other, REPO, "1.2.0", 1, (const uint8_t(*)[48])d->pcrs);
	const struct event *rels[] = {rel};
	struct nec_announcement a = {.name = "appliance",
				     .version = "1.2.0",
				     .repo = REPO,
				     .relay = "wss://relay.example",
				     .open = 1,
				     .price_base_msat = 1000,
				     .price_msat_per_unit = 2,
				     .price_unit = "mb_epoch",
				     .releases = rels,
				     .nreleases = 1,
				     .keystore = "ab"};
	CHECK_OK(nec_announcement_create(&ann, f.kp, att, &a, f.now));
	if (!ann)
		goto out;
	const char *why = NULL;
	struct attest_result ar;
	struct attest_doc *ad = NULL;
	CHECK_OK(nec_announcement_verify(f.v, &why, &ar, &ad, ann, &f.o));
	CHECK(ad && memcmp(ad->pcrs[0], d->pcrs[0], 48) == 0);
	attest_doc_free(ad);
	CHECK_STR(event_tag_value(ann, "k"), "5720");
	CHECK_STR(event_tag_value(ann, "o"), "true");
	CHECK_STR(event_tag_value(ann, "t"), "dev");
	size_t pos = 0, nx = 0;
	while (event_tag_find(ann, &pos, "x", 3))
		nx++;
	CHECK(nx == 4); /* PCR0, 1, 2 and 4 (PCR8 is zero) */
	/* releases come back out */
	struct event *out_rel[NEC_RELEASES_MAX];
	size_t nr = 0;
	CHECK_OK(nec_announcement_releases(out_rel, NEC_RELEASES_MAX, &nr, ann));
	CHECK(nr == 1);
	if (nr == 1) {
		CHECK(memcmp(out_rel[0]->id, rel->id, 32) == 0);
		event_free(out_rel[0]);
	}
	CHECK_ERR(nec_announcement_releases(out_rel, 0, &nr, ann), APP_ELIMIT);
	/* an expired announcement */
	struct nec_announcement a2 = a;
	a2.expiration = f.now - 1;
	struct event *e = NULL;
	CHECK_OK(nec_announcement_create(&e, f.kp, att, &a2, f.now - 100));
	CHECK_ERR(nec_announcement_verify(f.v, &why, NULL, NULL, e, &f.o), APP_EEXPIRED);
	event_free(e);
	/* creation refuses to outlive the attestation, and foreign attestations */
	uint64_t aexp = 0;
	CHECK_OK(event_expiration(att, &aexp));
	a2.expiration = aexp + 1;
	CHECK_ERR(nec_announcement_create(&e, f.kp, att, &a2, f.now), APP_EINVAL);
	CHECK_ERR(nec_announcement_create(&e, f.other, att, &a, f.now), APP_EINVAL);
	/* expired at a later time (the whole thing) */
	struct attest_verify_opts late = f.o;
	late.time_mode = ATTEST_TIME_AT;
	late.at = aexp + 10;
	CHECK_ERR(nec_announcement_verify(f.v, &why, NULL, NULL, ann, &late), APP_EEXPIRED);
	CHECK_STR(why, "announcement expired");
	/* hand-made announcements with one thing wrong each */
	char *json = NULL;
	size_t jl = 0;
	CHECK_OK(event_to_json(&json, &jl, att));
	char hx[3][97], bad[97], exps[24], exps1[24];
	for (int i = 0; i < 3; i++)
		hex_encode(hx[i], d->pcrs[i], 48);
	memcpy(bad, hx[1], 97);
	bad[5] = bad[5] == '0' ? '1' : '0';
	snprintf(exps, sizeof exps, "%llu", (unsigned long long)aexp);
	snprintf(exps1, sizeof exps1, "%llu", (unsigned long long)aexp + 1);
	static const struct {
		int variant;
		int err;
		const char *what;
	} cases[] = {
		{0, 0, "minimal correct"},
		{1, APP_EREFUSED, "x PCR1 differs"},
		{2, APP_EPARSE, "x PCR1 missing"},
		{3, APP_EPARSE, "x PCR1 twice"},
		{4, APP_EREFUSED, "x PCR20 not attested"},
		{5, APP_EPARSE, "x with a bad label"},
		{6, APP_EPARSE, "x with uppercase hex"},
		{7, APP_EREFUSED, "t prod"},
		{8, APP_EREFUSED, "expires after the attestation"},
		{9, APP_EPARSE, "no expiration"},
		{10, APP_EPARSE, "no tee_root"},
		{11, APP_EPARSE, "tee_root not JSON"},
		{12, APP_EREFUSED, "signed by another key than tee_root"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int k = cases[i].variant;
		e = NULL;
		CHECK_OK(event_new(&e, NEC_KIND_ANNOUNCEMENT, f.now, "", 0));
		if (k != 10)
			CHECK_OK(event_add_tagv(e, "tee_root", k == 11 ? "{not json" : json, NULL));
		CHECK_OK(event_add_tagv(e, "x", hx[0], "PCR0", NULL));
		if (k != 2)
			CHECK_OK(event_add_tagv(e, "x", k == 1 ? bad : hx[1], "PCR1", NULL));
		if (k == 3)
			CHECK_OK(event_add_tagv(e, "x", hx[1], "PCR1", NULL));
		CHECK_OK(event_add_tagv(e, "x", hx[2], k == 5 ? "PCR02" : "PCR2", NULL));
		if (k == 4)
			CHECK_OK(event_add_tagv(e, "x", hx[2], "PCR20", NULL));
		if (k == 6) {
			char up[97];
			for (int j = 0; j < 97; j++)
				up[j] = (hx[0][j] >= 'a' && hx[0][j] <= 'f') ? (char)(hx[0][j] - 32) : hx[0][j];
			CHECK_OK(event_add_tagv(e, "x", up, "PCR3", NULL));
		}
		CHECK_OK(event_add_tagv(e, "t", k == 7 ? "prod" : "dev", NULL));
		if (k != 9)
			CHECK_OK(event_add_tagv(e, "expiration", k == 8 ? exps1 : exps, NULL));
		CHECK_OK(event_sign(e, k == 12 ? f.other : f.kp));
		int r = nec_announcement_verify(f.v, &why, NULL, NULL, e, &f.o);
		CHECKM(r == cases[i].err, "%s: %d (%s), want %d", cases[i].what, r, why ? why : "", cases[i].err);
		event_free(e);
	}
	free(json);
	/* not an announcement */
	CHECK_ERR(nec_announcement_verify(f.v, &why, NULL, NULL, att, &f.o), APP_EINVAL);
out:
	attest_doc_free(d);
	event_free(rel);
	event_free(ann);
	event_free(att);
	fx_free(&f);
}

static void test_release(void)
{
	struct keypair *m[4] = {0};
	for (int i = 0; i < 4; i++)
		CHECK_OK(keys_generate(&m[i]));
	uint8_t pcrs[3][48], other[3][48];
	for (int i = 0; i < 3; i++) {
		memset(pcrs[i], 0x40 + i, 48);
		memset(other[i], 0x50 + i, 48);
	}
	struct event *ev = release(m[0], REPO, "v1.2.3", 0, (const uint8_t(*)[48])pcrs);
	struct nec_release rel;
	const char *why = NULL;
	CHECK_OK(nec_release_verify(&rel, &why, ev));
	CHECK_STR(rel.repo, REPO);
	CHECK_STR(rel.version, "v1.2.3");
	CHECK(rel.dev == 0 && memcmp(rel.pcr, pcrs, sizeof pcrs) == 0);
	uint8_t pk[32];
	keys_pubkey(m[0], pk);
	CHECK(memcmp(rel.pubkey, pk, 32) == 0);
	CHECK_STR(event_tag_value(ev, "t"), "prod");
	CHECK(ev->content_len == 0);
	ev->created_at++;
	CHECK_ERR(nec_release_verify(&rel, &why, ev), APP_EBADID);
	event_free(ev);
	/* creation checks */
	struct nec_release bad = {.version = "1.x"};
	snprintf(bad.repo, sizeof bad.repo, "%s", REPO);
	CHECK_ERR(nec_release_create(&ev, m[0], &bad, 0), APP_EINVAL);
	snprintf(bad.version, sizeof bad.version, "1.0");
	bad.repo[0] = 0;
	CHECK_ERR(nec_release_create(&ev, m[0], &bad, 0), APP_EINVAL);
	/* hand-made releases with one thing wrong each */
	char h0[97], h1[97], h2[97];
	hex_encode(h0, pcrs[0], 48);
	hex_encode(h1, pcrs[1], 48);
	hex_encode(h2, pcrs[2], 48);
	for (int k = 0; k < 8; k++) {
		struct event *e = NULL;
		CHECK_OK(event_new(&e, NEC_KIND_RELEASE, 1, "", 0));
		if (k != 1)
			CHECK_OK(event_add_tagv(e, "t", k == 2 ? "staging" : "prod", NULL));
		if (k != 3)
			CHECK_OK(event_add_tagv(e, "r", REPO, NULL));
		if (k == 4)
			CHECK_OK(event_add_tagv(e, "r", "other", NULL));
		CHECK_OK(event_add_tagv(e, "v", k == 5 ? "1.2.3-rc1" : "1.2.3", NULL));
		CHECK_OK(event_add_tagv(e, "x", h0, "PCR0", NULL));
		CHECK_OK(event_add_tagv(e, "x", h1, k == 6 ? "PCR0" : "PCR1", NULL));
		if (k != 7)
			CHECK_OK(event_add_tagv(e, "x", h2, "PCR2", NULL));
		CHECK_OK(event_add_tagv(e, "alt", "release", NULL)); /* other tags are ignored */
		CHECK_OK(event_sign(e, m[0]));
		int r = nec_release_verify(&rel, &why, e);
		CHECKM(r == (k == 0 ? 0 : APP_EPARSE), "release variant %d: %d (%s)", k, r, why ? why : "");
		event_free(e);
	}
	/* versions */
	int c = 9;
	CHECK_OK(nec_version_cmp("1.2.3", "1.2.3", &c));
	CHECK(c == 0);
	CHECK_OK(nec_version_cmp("1.10", "1.9.9", &c));
	CHECK(c == 1);
	CHECK_OK(nec_version_cmp("v2", "2.0.0.1", &c));
	CHECK(c == -1);
	CHECK_OK(nec_version_cmp("1.0", "1", &c));
	CHECK(c == 0);
	static const char *const badv[] = {"", "v", "1.", ".1", "1..2", "1.2.3.4.5", "-1", "1.2a", "1234567890", "1.2 "};
	for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++)
		CHECKM(nec_version_cmp(badv[i], "1", &c) == APP_EPARSE, "version '%s'", badv[i]);
	for (int i = 0; i < 4; i++)
		keys_free(m[i]);
}

static void test_release_policy(void)
{
	struct keypair *m[4] = {0}, *stranger = NULL;
	uint8_t trusted[3][32];
	for (int i = 0; i < 4; i++)
		CHECK_OK(keys_generate(&m[i]));
	CHECK_OK(keys_generate(&stranger));
	for (int i = 0; i < 3; i++)
		keys_pubkey(m[i], trusted[i]);
	/* the document whose PCRs releases must name */
	struct fx f;
	fx_init(&f);
	struct attest_doc *d = NULL;
	CHECK_OK(attest_doc_parse(&d, NULL, f.doc, f.doc_len));
	if (!d)
		goto out;
	const uint8_t(*p)[48] = (const uint8_t(*)[48])d->pcrs;
	uint8_t wrong[3][48];
	memcpy(wrong, d->pcrs, sizeof wrong);
	wrong[2][0] ^= 1;
	struct event *good0 = release(m[0], REPO, "1.3.0", 1, p), *good1 = release(m[1], REPO, "1.4", 1, p),
		     *good0b = release(m[0], REPO, "1.3.1", 1, p), *prod = release(m[2], REPO, "1.3.0", 0, p),
		     *repo = release(m[2], "https://github.com/example/fork", "1.3.0", 1, p),
		     *old = release(m[2], REPO, "1.1.9", 1, p), *pcr = release(m[2], REPO, "1.3.0", 1, (const uint8_t(*)[48])wrong),
		     *untrusted = release(stranger, REPO, "1.3.0", 1, p), *good2 = release(m[2], REPO, "1.3.0", 1, p);
	struct nec_release_policy pol = {.trusted = (const uint8_t(*)[32])trusted,
					 .ntrusted = 3,
					 .threshold = 2,
					 .repo = REPO,
					 .dev = 1,
					 .min_version = "1.2.0"};
	size_t valid = 0;
	const char *why = NULL;
	const struct event *s1[] = {good0, good1};
	CHECK_OK(nec_release_policy_check(&pol, d, s1, 2, &valid, &why));
	CHECK(valid == 2);
	const struct event *s2[] = {good0, good0b};
	CHECK_ERR(nec_release_policy_check(&pol, d, s2, 2, &valid, &why), APP_EREFUSED);
	CHECK(valid == 1);
	CHECK_STR(why, "two release signatures by the same maintainer");
	static const char *const reasons[] = {"release is not a dev release", "release is for another repository",
					       "release version is lower than the minimum (downgrade)",
					       "release is for other PCRs", "release signed by an untrusted key"};
	const struct event *bads[] = {prod, repo, old, pcr, untrusted};
	for (int i = 0; i < 5; i++) {
		const struct event *s[] = {good0, bads[i]};
		CHECK_ERR(nec_release_policy_check(&pol, d, s, 2, &valid, &why), APP_EREFUSED);
		CHECK(valid == 1);
		CHECK_STR(why, reasons[i]);
	}
	/* a 23793 is not a release */
	struct event *att = NULL;
	CHECK_OK(nec_attestation_create(&att, f.kp, f.doc, f.doc_len, f.now));
	const struct event *s3[] = {att, good0, good2};
	CHECK_OK(nec_release_policy_check(&pol, d, s3, 3, &valid, &why));
	CHECK(valid == 2);
	/* threshold 3 of 3 */
	pol.threshold = 3;
	CHECK_ERR(nec_release_policy_check(&pol, d, s3, 3, &valid, &why), APP_EREFUSED);
	const struct event *s4[] = {good0, good1, good2};
	CHECK_OK(nec_release_policy_check(&pol, d, s4, 3, &valid, &why));
	/* prod policy refuses dev releases (a dev release never unlocks a prod key) */
	pol.threshold = 1;
	pol.dev = 0;
	CHECK_ERR(nec_release_policy_check(&pol, d, s4, 3, &valid, &why), APP_EREFUSED);
	const struct event *s5[] = {prod};
	CHECK_OK(nec_release_policy_check(&pol, d, s5, 1, &valid, &why));
	/* invalid policies */
	pol.threshold = 0;
	CHECK_ERR(nec_release_policy_check(&pol, d, s5, 1, &valid, &why), APP_EINVAL);
	pol.threshold = 4;
	CHECK_ERR(nec_release_policy_check(&pol, d, s5, 1, &valid, &why), APP_EINVAL);
	pol.threshold = 1;
	pol.min_version = "latest";
	CHECK_ERR(nec_release_policy_check(&pol, d, s5, 1, &valid, &why), APP_EINVAL);
	pol.min_version = NULL;
	pol.repo = NULL;
	CHECK_ERR(nec_release_policy_check(&pol, d, s5, 1, &valid, &why), APP_EINVAL);
	event_free(att);
	struct event *all[] = {good0, good1, good0b, prod, repo, old, pcr, untrusted, good2};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		event_free(all[i]);
out:
	attest_doc_free(d);
	fx_free(&f);
	for (int i = 0; i < 4; i++)
		keys_free(m[i]);
	keys_free(stranger);
}

extern char **environ;

static int run_cli(char *const argv[])
{
	pid_t pid;
	int st = 0;
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(p, 1, n, f) == n;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* `appliance attest verify` on 23793 and 13793 events (with releases), when tests/run.sh gives APPLIANCE_BIN. */
static void test_cli_events(void)
{
	const char *bin = getenv("APPLIANCE_BIN");
	if (!bin) {
		printf("  (APPLIANCE_BIN not set: skipped)\n");
		return;
	}
	char dir[] = "/tmp/nec_test.XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	char cli[512], root[64], attp[64], annp[64], trusted[65], stranger[65];
	snprintf(cli, sizeof cli, "%s/appliance", bin);
	snprintf(root, sizeof root, "%s/root.der", dir);
	snprintf(attp, sizeof attp, "%s/att.json", dir);
	snprintf(annp, sizeof annp, "%s/ann.json", dir);
	struct fx f;
	fx_init(&f);
	struct keypair *m = NULL;
	CHECK_OK(keys_generate(&m));
	uint8_t mp[32], op[32];
	keys_pubkey(m, mp);
	keys_pubkey(f.other, op);
	hex_encode(trusted, mp, 32);
	hex_encode(stranger, op, 32);
	uint8_t *der = NULL;
	size_t dl = 0;
	struct event *att = NULL, *ann = NULL, *rel = NULL;
	struct attest_doc *d = NULL;
	char *j1 = NULL, *j2 = NULL;
	size_t l1 = 0, l2 = 0;
	CHECK_OK(devca_root_der(f.ca, &der, &dl));
	CHECK_OK(nec_attestation_create(&att, f.kp, f.doc, f.doc_len, f.now));
	CHECK_OK(attest_doc_parse(&d, NULL, f.doc, f.doc_len));
	if (!att || !d || !der)
		goto out;
	rel = release(m, REPO, "2.0.0", 1, (const uint8_t(*)[48])d->pcrs);
	const struct event *rels[] = {rel};
	struct nec_announcement a = {.name = "appliance", .version = "2.0.0", .repo = REPO, .releases = rels, .nreleases = 1};
	CHECK_OK(nec_announcement_create(&ann, f.kp, att, &a, f.now));
	CHECK_OK(event_to_json(&j1, &l1, att));
	CHECK_OK(event_to_json(&j2, &l2, ann));
	CHECK(write_file(root, der, dl) == 0 && write_file(attp, j1, l1) == 0 && write_file(annp, j2, l2) == 0);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", attp, "--root", root, "--allow-dev", NULL}) == 0);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", attp, "--root", root, NULL}) == 1);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", annp, "--root", root, "--allow-dev", NULL}) == 0);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", annp, "--root", root, "--allow-dev", "--trust", trusted,
				      NULL}) == 0);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", annp, "--root", root, "--allow-dev", "--trust", stranger,
				      NULL}) == 1);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", annp, "--root", root, "--allow-dev", "--trust", trusted,
				      "--trust", stranger, "--threshold", "2", NULL}) == 1);
	CHECK(run_cli((char *const[]){cli, "attest", "verify", attp, "--root", root, "--allow-dev", "--trust", trusted,
				      NULL}) == 2);
	CHECK(run_cli((char *const[]){cli, "attest", "show", annp, NULL}) == 0);
out:
	free(j1);
	free(j2);
	free(der);
	attest_doc_free(d);
	event_free(rel);
	event_free(ann);
	event_free(att);
	keys_free(m);
	fx_free(&f);
	unlink(root);
	unlink(attp);
	unlink(annp);
	rmdir(dir);
}

int main(void)
{
	RUN(test_attestation_event);
	RUN(test_announcement);
	RUN(test_release);
	RUN(test_release_policy);
	RUN(test_cli_events);
	return test_summary();
}
