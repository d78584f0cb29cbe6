/*
 * keystore_test: the keystore's request handling (keystore/kscore.h) and
 * its wire format (appliance/ksrpc.h), in process: attestations from the
 * NSM emulator (parent/nsm_emu.h) with a development CA, one emulator per
 * "build" (different measured bytes give different PCR0/1/2; a different
 * instance id gives a different PCR4). Every refusal of DESIGN §7 and
 * issue 9, the happy paths, caps, TTL and revocations.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/nec.h"
#include "appliance/nsm.h"
#include "keystore/kscore.h"
#include "parent/devca.h"
#include "parent/nsm_emu.h"
#include "tests/unit/test.h"

#define REPO "https://github.com/appliance/appliance"

/* One emulated enclave: its NSM and its PCRs. */
struct build {
	struct nsm_emu *emu;
	struct nsm *nsm;
	uint8_t pcr[3][48];
	uint8_t pcr4[48];
};

static struct devca *g_ca;
static struct attest_verifier *g_v;
static struct keypair *g_maint[4]; /* 0, 1: maintainers; 2, 3: strangers */
static uint64_t g_now;

static void build_init(struct build *b, const char *image, const char *instance)
{
	struct nsm_emu_config cfg;
	memset(&cfg, 0, sizeof cfg);
	memset(b, 0, sizeof *b);
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)image, strlen(image));
	snprintf(cfg.instance_id, sizeof cfg.instance_id, "%s", instance);
	CHECK_OK(nsm_emu_new(&b->emu, g_ca, &cfg));
	CHECK_OK(nsm_open_custom(&b->nsm, nsm_emu_transport, b->emu));
	for (int k = 0; k < 3; k++)
		memcpy(b->pcr[k], cfg.pcr[k], 48);
	int locked = 0;
	CHECK_OK(nsm_describe_pcr(b->nsm, 4, &locked, b->pcr4));
}

static void build_free(struct build *b)
{
	nsm_close(b->nsm);
	nsm_emu_free(b->emu);
}

/* A client session: a fresh key and its attestation from build b. */
struct session {
	struct keypair *kp;
	uint8_t pub[32];
	uint8_t *doc;
	size_t doc_len;
};

static void session_init(struct session *s, struct build *b)
{
	memset(s, 0, sizeof *s);
	CHECK_OK(keys_generate(&s->kp));
	keys_pubkey(s->kp, s->pub);
	CHECK_OK(nsm_attestation(b->nsm, &s->doc, &s->doc_len, NULL, 0, NULL, 0, s->pub, 32));
}

static void session_free(struct session *s)
{
	keys_free(s->kp);
	free(s->doc);
}

static struct ksrpc_request *req_new(enum ksrpc_method m, const struct session *s)
{
	struct ksrpc_request *r = NULL;
	CHECK_OK(ksrpc_request_new(&r));
	if (!r)
		abort();
	snprintf(r->id, sizeof r->id, "req-%d", (int)m);
	r->method = m;
	if (s) {
		r->attestation = malloc(s->doc_len);
		memcpy(r->attestation, s->doc, s->doc_len);
		r->attestation_len = s->doc_len;
	}
	return r;
}

static void policy_set(struct ksrpc_request *r, size_t nmaint, size_t threshold, const char *version, int dev)
{
	r->policy.present = 1;
	snprintf(r->policy.repo, sizeof r->policy.repo, "%s", REPO);
	snprintf(r->policy.version, sizeof r->policy.version, "%s", version);
	for (size_t i = 0; i < nmaint; i++)
		keys_pubkey(g_maint[i], r->policy.maintainers[i]);
	r->policy.nmaintainers = nmaint;
	r->policy.threshold = threshold;
	r->policy.t = dev ? KSRPC_T_DEV : KSRPC_T_PROD;
}

/*
 * call: builds req, hands it to the keystore as `client` at time now, parses
 * the reply. Returns the reply's err (0 ok), *rep (may be NULL) gets it.
 */
static int call(struct kscore *ks, struct ksrpc_request *req, const uint8_t client[32], uint64_t now,
		struct ksrpc_reply **rep, struct kscore_outcome *oc)
{
	char *json = NULL, *reply = NULL;
	size_t jl = 0, rl = 0;
	struct ksrpc_reply *p = NULL;
	struct kscore_outcome loc;
	enum ksrpc_method m = req->method;
	CHECK_OK(ksrpc_request_build(&json, &jl, req));
	ksrpc_request_free(req);
	CHECK_OK(kscore_handle(ks, &reply, &rl, oc ? oc : &loc, client, json, jl, now));
	ksrpc_text_free(json, jl);
	const char *why = NULL;
	int r = reply ? ksrpc_reply_parse(&p, &why, m, reply, rl) : APP_EINTERNAL;
	CHECKM(r == 0, "reply parse: %s", why ? why : "?");
	ksrpc_text_free(reply, rl);
	int err = p ? p->err : APP_EINTERNAL;
	if (rep)
		*rep = p;
	else
		ksrpc_reply_free(p);
	return err;
}

static struct event *release(const struct keypair *kp, const struct build *b, const char *version, int dev,
			     const char *repo)
{
	struct nec_release rel;
	struct event *ev = NULL;
	memset(&rel, 0, sizeof rel);
	snprintf(rel.repo, sizeof rel.repo, "%s", repo ? repo : REPO);
	snprintf(rel.version, sizeof rel.version, "%s", version);
	rel.dev = dev;
	memcpy(rel.pcr, b->pcr, sizeof rel.pcr);
	CHECK_OK(nec_release_create(&ev, kp, &rel, g_now));
	return ev;
}

static struct event *revocation(const struct keypair *kp, const struct build *b)
{
	struct nec_release rel;
	struct event *ev = NULL;
	memset(&rel, 0, sizeof rel);
	snprintf(rel.repo, sizeof rel.repo, "%s", REPO);
	memcpy(rel.pcr, b->pcr, sizeof rel.pcr);
	CHECK_OK(ksrpc_revocation_create(&ev, kp, &rel, "vulnerable", g_now));
	return ev;
}

static struct kscore *ks_new(void)
{
	struct kscore_config c;
	struct kscore *ks = NULL;
	kscore_config_default(&c);
	c.allow_dev = 1;
	c.max_entries = 8;
	c.max_per_pubkey = 2;
	c.max_per_pcrs = 3;
	CHECK_OK(kscore_new(&ks, &c, g_v, g_now));
	return ks;
}

/* set_from: stores data (a C string) from build b with the standard policy (2-of-2, v1.0.0, prod). */
static int set_from(struct kscore *ks, struct build *b, const char *data, uint64_t epoch, struct kscore_outcome *oc)
{
	struct session s;
	session_init(&s, b);
	struct ksrpc_request *r = req_new(KSRPC_SET, &s);
	memcpy(r->data, data, strlen(data));
	r->data_len = strlen(data);
	r->epoch = epoch;
	policy_set(r, 2, 2, "1.0.0", 0);
	int err = call(ks, r, s.pub, g_now, NULL, oc);
	session_free(&s);
	return err;
}

/* get_from: a get from build b with the given release signatures (borrowed, copied). */
static int get_from(struct kscore *ks, struct build *b, struct event **sigs, size_t n, struct ksrpc_reply **rep,
		    struct kscore_outcome *oc)
{
	struct session s;
	session_init(&s, b);
	struct ksrpc_request *r = req_new(KSRPC_GET, &s);
	for (size_t i = 0; i < n; i++) {
		char *j = NULL;
		size_t jl = 0;
		CHECK_OK(event_to_json(&j, &jl, sigs[i]));
		CHECK_OK(event_parse(&r->sigs[i], NULL, j, jl));
		free(j);
	}
	r->nsigs = n;
	int err = call(ks, r, s.pub, g_now, rep, oc);
	session_free(&s);
	return err;
}

static void free_events(struct event **ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		event_free(ev[i]);
}

/* ---- wire format ---- */

static void test_parse(void)
{
	struct ksrpc_request *r = NULL;
	const char *why = NULL;
	char id[KSRPC_ID_MAX + 1];
	static const struct {
		const char *json;
		int err;
	} bad[] = {
		{"[]", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"ping\",\"x\":1}", APP_EPARSE},
		{"{\"id\":\"1\",\"id\":\"2\",\"method\":\"ping\"}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"nope\"}", APP_EUNSUPPORTED},
		{"{\"id\":\"\",\"method\":\"ping\"}", APP_EPARSE},
		{"{\"id\":1,\"method\":\"ping\"}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"get\",\"params\":{}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"get\",\"params\":{\"attestation\":\"!!\"}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\"}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"status\",\"params\":{\"data\":\"x\"}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"epoch\":-1}}", APP_ERANGE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"epoch\":1.5}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"policy\":{\"t\":\"beta\"}}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"policy\":{\"release_pubkeys\":[\"00\"]}}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"policy\":{\"threshold\":1}}}", APP_ERANGE},
		{"{\"id\":\"1\",\"method\":\"has\",\"params\":{\"PCR4\":\"00\"}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"get\",\"params\":{\"attestation\":\"AAAA\",\"release_signatures\":[1]}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"get\",\"params\":{\"attestation\":\"AAAA\",\"release_signatures\":{}}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"revoke\",\"params\":{}}", APP_EPARSE},
		{"{\"id\":\"1\",\"method\":\"ping\"} x", APP_EPARSE},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int e = ksrpc_request_parse(&r, &why, id, bad[i].json, strlen(bad[i].json));
		CHECKM(e == bad[i].err, "case %zu: %d (%s), expected %d", i, e, why ? why : "", bad[i].err);
		CHECK(r == NULL);
	}
	/* the id is recovered from a bad request so that the error can be answered */
	const char *j = "{\"id\":\"abc\",\"method\":\"get\",\"params\":{}}";
	CHECK(ksrpc_request_parse(&r, &why, id, j, strlen(j)) == APP_EPARSE);
	CHECK_STR(id, "abc");
	/* data over 1024 bytes */
	char big[1200 + 100];
	char data[1100];
	memset(data, 'a', sizeof data - 1);
	data[sizeof data - 1] = 0;
	snprintf(big, sizeof big, "{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"%s\"}}",
		 data);
	CHECK_ERR(ksrpc_request_parse(&r, &why, id, big, strlen(big)), APP_ETOOBIG);
	/* more than 16 signatures */
	char many[4096];
	size_t o = (size_t)snprintf(many, sizeof many,
				    "{\"id\":\"1\",\"method\":\"get\",\"params\":{\"attestation\":\"AAAA\",\"release_signatures\":[");
	for (int i = 0; i < 17; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "%s{}", i ? "," : "");
	snprintf(many + o, sizeof many - o, "]}}");
	CHECK_ERR(ksrpc_request_parse(&r, &why, id, many, strlen(many)), APP_ERANGE);
	/* over the plaintext cap */
	CHECK_ERR(ksrpc_request_parse(&r, &why, id, big, KSRPC_PLAIN_MAX + 1), APP_ETOOBIG);
	/* keycrux-style: no params for ping, result strings */
	j = "{\"id\":\"7\",\"method\":\"ping\"}";
	CHECK_OK(ksrpc_request_parse(&r, &why, id, j, strlen(j)));
	CHECK(r && r->method == KSRPC_PING);
	ksrpc_request_free(r);
	r = NULL;
	/* a policy with release_pubkeys needs repo and version; threshold defaults to all */
	char pk[65];
	uint8_t pub[32];
	keys_pubkey(g_maint[0], pub);
	hex_encode(pk, pub, 32);
	char pj[512];
	snprintf(pj, sizeof pj,
		 "{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"policy\":"
		 "{\"ref\":\"r\",\"release_pubkeys\":[\"%s\"],\"version\":\"1.2\"}}}",
		 pk);
	CHECK_OK(ksrpc_request_parse(&r, &why, id, pj, strlen(pj)));
	CHECK(r && r->policy.threshold == 1 && r->policy.nmaintainers == 1 && !strcmp(r->policy.repo, "r"));
	ksrpc_request_free(r);
	r = NULL;
	snprintf(pj, sizeof pj,
		 "{\"id\":\"1\",\"method\":\"set\",\"params\":{\"attestation\":\"AAAA\",\"data\":\"x\",\"policy\":"
		 "{\"release_pubkeys\":[\"%s\"]}}}",
		 pk);
	CHECK_ERR(ksrpc_request_parse(&r, &why, id, pj, strlen(pj)), APP_EPARSE);
}

static void test_reply_parse(void)
{
	struct ksrpc_reply *p = NULL;
	const char *j = "{\"id\":\"1\",\"error\":\"Not found\"}";
	CHECK_OK(ksrpc_reply_parse(&p, NULL, KSRPC_GET, j, strlen(j)));
	CHECK(p && p->err == APP_ENOTFOUND);
	ksrpc_reply_free(p);
	j = "{\"id\":\"1\",\"error\":\"Bad\",\"code\":\"EREFUSED\"}";
	CHECK_OK(ksrpc_reply_parse(&p, NULL, KSRPC_GET, j, strlen(j)));
	CHECK(p && p->err == APP_EREFUSED && !strcmp(p->error, "Bad"));
	ksrpc_reply_free(p);
	j = "{\"id\":\"1\",\"error\":\"x\",\"code\":\"EWHAT\"}";
	CHECK_OK(ksrpc_reply_parse(&p, NULL, KSRPC_GET, j, strlen(j)));
	CHECK(p && p->err == APP_EPROTO);
	ksrpc_reply_free(p);
	j = "{\"id\":\"1\",\"result\":\"secret\"}"; /* keycrux: the data string */
	CHECK_OK(ksrpc_reply_parse(&p, NULL, KSRPC_GET, j, strlen(j)));
	CHECK(p && p->err == 0 && p->has_data && p->data_len == 6 && !memcmp(p->data, "secret", 6));
	ksrpc_reply_free(p);
	j = "{\"id\":\"1\",\"result\":{\"epoch\":3}}";
	CHECK_ERR(ksrpc_reply_parse(&p, NULL, KSRPC_GET, j, strlen(j)), APP_EPARSE);
	j = "{\"id\":\"1\",\"result\":{\"count\":2,\"countDebug\":0}}";
	CHECK_OK(ksrpc_reply_parse(&p, NULL, KSRPC_HAS, j, strlen(j)));
	CHECK(p && p->found == 1);
	ksrpc_reply_free(p);
	j = "{\"id\":\"1\"}";
	CHECK_ERR(ksrpc_reply_parse(&p, NULL, KSRPC_STATUS, j, strlen(j)), APP_EPARSE);
	CHECK_ERR(ksrpc_reply_parse(&p, NULL, KSRPC_STATUS, "nope", 4), APP_EPARSE);
}

/* ---- the keystore ---- */

static void test_ping_status(void)
{
	struct kscore *ks = ks_new();
	struct ksrpc_reply *p = NULL;
	uint8_t who[32] = {1};
	CHECK_OK(call(ks, req_new(KSRPC_PING, NULL), who, g_now, &p, NULL));
	CHECK(p && !strcmp(p->result, "\"pong\""));
	ksrpc_reply_free(p);
	CHECK_OK(call(ks, req_new(KSRPC_STATUS, NULL), who, g_now, &p, NULL));
	CHECK(p && strstr(p->result, "\"entries\":0") && strstr(p->result, "\"name\":\"keystore\""));
	ksrpc_reply_free(p);
	/* garbage gets an error reply, not a crash */
	char *reply = NULL;
	size_t rl = 0;
	struct kscore_outcome oc;
	CHECK_OK(kscore_handle(ks, &reply, &rl, &oc, who, "{\"id\":\"z\",\"method\":5}", 21, g_now));
	CHECK(reply && strstr(reply, "\"id\":\"z\"") && strstr(reply, "EPARSE"));
	ksrpc_text_free(reply, rl);
	kscore_free(ks);
}

static void test_same_image_restart(void)
{
	struct kscore *ks = ks_new();
	struct build a;
	struct ksrpc_reply *p = NULL;
	struct kscore_outcome oc;
	build_init(&a, "image-A", "i-00000000000000001");
	CHECK_OK(set_from(ks, &a, "disk-key-1", 5, &oc));
	CHECK(oc.replaced == 0);
	/* a restart: new session key, new attestation, same PCRs */
	CHECK_OK(get_from(ks, &a, NULL, 0, &p, &oc));
	CHECK(p && p->has_data && p->data_len == 10 && !memcmp(p->data, "disk-key-1", 10) && p->epoch == 5);
	CHECK(oc.match == 1);
	ksrpc_reply_free(p);
	/* anti-rollback: a lower epoch is refused, loudly; equal and higher replace */
	CHECK_ERR(set_from(ks, &a, "disk-key-old", 4, &oc), APP_EROLLBACK);
	CHECK(strstr(oc.reason, "anti-rollback") != NULL);
	CHECK_OK(set_from(ks, &a, "disk-key-1", 5, &oc));
	CHECK(oc.replaced == 1);
	CHECK_OK(set_from(ks, &a, "disk-key-2", 9, &oc));
	CHECK_OK(get_from(ks, &a, NULL, 0, &p, NULL));
	CHECK(p && p->data_len == 10 && !memcmp(p->data, "disk-key-2", 10) && p->epoch == 9);
	ksrpc_reply_free(p);
	/* has, by attestation and by PCR values */
	struct session s;
	session_init(&s, &a);
	CHECK_OK(call(ks, req_new(KSRPC_HAS, &s), s.pub, g_now, &p, NULL));
	CHECK(p && p->found == 1 && p->epoch == 9);
	ksrpc_reply_free(p);
	struct ksrpc_request *r = req_new(KSRPC_HAS, NULL);
	memcpy(r->pcrs, a.pcr, sizeof r->pcrs);
	r->has_pcrs = 1;
	CHECK_OK(call(ks, r, s.pub, g_now, &p, NULL));
	CHECK(p && p->found == 1);
	ksrpc_reply_free(p);
	r = req_new(KSRPC_HAS, NULL);
	memcpy(r->pcr4, a.pcr4, 48);
	r->has_pcr4 = 1;
	CHECK_OK(call(ks, r, s.pub, g_now, &p, NULL));
	CHECK(p && p->found == 1 && strstr(p->result, "\"count\":1"));
	ksrpc_reply_free(p);
	session_free(&s);
	build_free(&a);
	kscore_free(ks);
}

static void test_not_found_is_definitive(void)
{
	struct kscore *ks = ks_new();
	struct build a, b;
	struct ksrpc_reply *p = NULL;
	build_init(&a, "image-A", "i-00000000000000001");
	build_init(&b, "image-B", "i-00000000000000001");
	/* nothing stored: Not found */
	CHECK_ERR(get_from(ks, &a, NULL, 0, &p, NULL), APP_ENOTFOUND);
	CHECK(p && !strcmp(p->error, KSRPC_NOT_FOUND));
	ksrpc_reply_free(p);
	CHECK_OK(set_from(ks, &a, "k", 1, NULL));
	/* different PCRs without release signatures: no key, a positive not found for these PCRs */
	CHECK_ERR(get_from(ks, &b, NULL, 0, &p, NULL), APP_ENOTFOUND);
	CHECK(p && !p->has_data);
	ksrpc_reply_free(p);
	/* valid signatures for a repository nobody stored: not found either */
	struct event *sigs[2] = {release(g_maint[0], &b, "2.0.0", 0, "https://example.org/other"),
				 release(g_maint[1], &b, "2.0.0", 0, "https://example.org/other")};
	CHECK_ERR(get_from(ks, &b, sigs, 2, NULL, NULL), APP_ENOTFOUND);
	free_events(sigs, 2);
	build_free(&a);
	build_free(&b);
	kscore_free(ks);
}

static void test_upgrade(void)
{
	struct kscore *ks = ks_new();
	struct build a, b, c;
	struct ksrpc_reply *p = NULL;
	struct kscore_outcome oc;
	build_init(&a, "image-A v1.0.0", "i-00000000000000001");
	build_init(&b, "image-B v1.1.0", "i-00000000000000001");
	build_init(&c, "image-C v1.2.0", "i-00000000000000002"); /* another host */
	CHECK_OK(set_from(ks, &a, "the-disk-key", 7, NULL));

	/* happy path: 2 of 2 maintainers signed B's release, version 1.1.0 >= 1.0.0, prod */
	struct event *ok[2] = {release(g_maint[0], &b, "1.1.0", 0, NULL), release(g_maint[1], &b, "1.1.0", 0, NULL)};
	CHECK_OK(get_from(ks, &b, ok, 2, &p, &oc));
	CHECK(p && p->has_data && p->data_len == 12 && !memcmp(p->data, "the-disk-key", 12) && p->epoch == 7);
	CHECK(oc.match == 2 && strstr(p->result, "\"match\":\"release\""));
	ksrpc_reply_free(p);
	/* the same version as the entry's is not a downgrade */
	struct event *same[2] = {release(g_maint[0], &b, "1.0.0", 0, NULL), release(g_maint[1], &b, "1.0.0", 0, NULL)};
	CHECK_OK(get_from(ks, &b, same, 2, NULL, NULL));
	free_events(same, 2);

	/* below threshold: one of the two */
	CHECK_ERR(get_from(ks, &b, ok, 1, &p, &oc), APP_EREFUSED);
	CHECK(strstr(p->error, "1 of 2") != NULL);
	ksrpc_reply_free(p);
	/* the same maintainer twice does not count twice */
	struct event *twice[2] = {release(g_maint[0], &b, "1.1.0", 0, NULL), release(g_maint[0], &b, "1.1.1", 0, NULL)};
	CHECK_ERR(get_from(ks, &b, twice, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "same maintainer") != NULL);
	ksrpc_reply_free(p);
	free_events(twice, 2);
	/* from non-maintainers */
	struct event *strangers[2] = {release(g_maint[2], &b, "1.1.0", 0, NULL), release(g_maint[3], &b, "1.1.0", 0, NULL)};
	CHECK_ERR(get_from(ks, &b, strangers, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "not a maintainer") != NULL);
	ksrpc_reply_free(p);
	free_events(strangers, 2);
	/* wrong kind: the same tags in a kind-1 note signed by the maintainers */
	struct event *wrong[2];
	for (int i = 0; i < 2; i++) {
		struct event *src = ok[i];
		CHECK_OK(event_new(&wrong[i], 1, g_now, "", 0));
		for (size_t t = 0; t < src->ntags; t++)
			CHECK_OK(event_add_tag(wrong[i], src->tags[t].n, (const char *const *)src->tags[t].v));
		CHECK_OK(event_sign(wrong[i], g_maint[i]));
	}
	CHECK_ERR(get_from(ks, &b, wrong, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "kind 63794") != NULL);
	ksrpc_reply_free(p);
	free_events(wrong, 2);
	/* a dev release never unlocks a prod entry */
	struct event *dev[2] = {release(g_maint[0], &b, "1.1.0", 1, NULL), release(g_maint[1], &b, "1.1.0", 1, NULL)};
	CHECK_ERR(get_from(ks, &b, dev, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "dev release for a prod entry") != NULL);
	ksrpc_reply_free(p);
	free_events(dev, 2);
	/* an older version: no downgrade */
	struct event *old[2] = {release(g_maint[0], &b, "0.9.9", 0, NULL), release(g_maint[1], &b, "0.9.9", 0, NULL)};
	CHECK_ERR(get_from(ks, &b, old, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "downgrade") != NULL);
	ksrpc_reply_free(p);
	free_events(old, 2);
	/* signatures for other PCRs (A's) presented by B */
	struct event *other[2] = {release(g_maint[0], &a, "1.1.0", 0, NULL), release(g_maint[1], &a, "1.1.0", 0, NULL)};
	CHECK_ERR(get_from(ks, &b, other, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "other PCRs") != NULL);
	ksrpc_reply_free(p);
	free_events(other, 2);
	/* a tampered release (version changed after signing) */
	struct event *bad[2] = {release(g_maint[0], &b, "1.1.0", 0, NULL), release(g_maint[1], &b, "1.1.0", 0, NULL)};
	for (size_t t = 0; t < bad[1]->ntags; t++)
		if (!strcmp(bad[1]->tags[t].v[0], "v"))
			bad[1]->tags[t].v[1][0] = '9';
	CHECK_ERR(get_from(ks, &b, bad, 2, &p, NULL), APP_EREFUSED);
	ksrpc_reply_free(p);
	free_events(bad, 2);

	/* a host-bound entry is not given to another host (C, on host 2) */
	struct session s;
	session_init(&s, &a);
	struct ksrpc_request *r = req_new(KSRPC_SET, &s);
	memcpy(r->data, "bound", 5);
	r->data_len = 5;
	policy_set(r, 2, 1, "1.0.0", 0);
	r->policy.bind_host = 1;
	CHECK_OK(call(ks, r, s.pub, g_now, NULL, NULL));
	session_free(&s);
	struct event *forc[2] = {release(g_maint[0], &c, "1.2.0", 0, NULL), release(g_maint[1], &c, "1.2.0", 0, NULL)};
	CHECK_OK(get_from(ks, &c, forc, 2, &p, NULL)); /* the unbound entry, not the bound one */
	CHECK(p && p->data_len == 12 && !memcmp(p->data, "the-disk-key", 12));
	ksrpc_reply_free(p);
	/* A itself now gets the bound entry first */
	CHECK_OK(get_from(ks, &a, NULL, 0, &p, NULL));
	CHECK(p && p->data_len == 5 && !memcmp(p->data, "bound", 5));
	ksrpc_reply_free(p);
	free_events(forc, 2);
	free_events(ok, 2);
	build_free(&a);
	build_free(&b);
	build_free(&c);
	kscore_free(ks);
}

static void test_revoked(void)
{
	struct kscore *ks = ks_new();
	struct build a, b;
	struct ksrpc_reply *p = NULL;
	build_init(&a, "image-A", "i-00000000000000001");
	build_init(&b, "image-B", "i-00000000000000001");
	CHECK_OK(set_from(ks, &a, "key", 1, NULL));
	struct event *ok[2] = {release(g_maint[0], &b, "1.1.0", 0, NULL), release(g_maint[1], &b, "1.1.0", 0, NULL)};
	/* a stranger's revocation is refused */
	struct ksrpc_request *r = req_new(KSRPC_REVOKE, NULL);
	r->revocations[0] = revocation(g_maint[2], &b);
	r->nrevocations = 1;
	uint8_t who[32] = {9};
	CHECK_ERR(call(ks, r, who, g_now, NULL, NULL), APP_EREFUSED);
	CHECK_OK(get_from(ks, &b, ok, 2, NULL, NULL));
	/* one maintainer revokes B: B no longer gets the key */
	r = req_new(KSRPC_REVOKE, NULL);
	r->revocations[0] = revocation(g_maint[1], &b);
	r->nrevocations = 1;
	CHECK_OK(call(ks, r, who, g_now, &p, NULL));
	CHECK(p && strstr(p->result, "\"accepted\":1"));
	ksrpc_reply_free(p);
	CHECK_ERR(get_from(ks, &b, ok, 2, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "revoked") != NULL);
	ksrpc_reply_free(p);
	/* revoking A stops even A's own exact gets */
	r = req_new(KSRPC_REVOKE, NULL);
	r->revocations[0] = revocation(g_maint[0], &a);
	r->nrevocations = 1;
	CHECK_OK(call(ks, r, who, g_now, NULL, NULL));
	CHECK_ERR(get_from(ks, &a, NULL, 0, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "revoked") != NULL);
	ksrpc_reply_free(p);
	/* a malformed revocation inside a get refuses the request */
	struct session s;
	session_init(&s, &b);
	r = req_new(KSRPC_GET, &s);
	r->revocations[0] = revocation(g_maint[0], &b);
	r->revocations[0]->content[0] ^= 1; /* breaks the id */
	r->nrevocations = 1;
	CHECK_ERR(call(ks, r, s.pub, g_now, NULL, NULL), APP_EPARSE);
	session_free(&s);
	free_events(ok, 2);
	build_free(&a);
	build_free(&b);
	kscore_free(ks);
}

static void test_attestation_checks(void)
{
	struct kscore *ks = ks_new();
	struct build a;
	struct ksrpc_reply *p = NULL;
	struct kscore_outcome oc;
	build_init(&a, "image-A", "i-00000000000000001");
	CHECK_OK(set_from(ks, &a, "key", 1, NULL));
	struct session s;
	session_init(&s, &a);
	/* stale: the attestation's timestamp is older than the window (300 s) */
	CHECK_ERR(call(ks, req_new(KSRPC_GET, &s), s.pub, g_now + 400, &p, &oc), APP_EEXPIRED);
	CHECK(strstr(p->error, "freshness") != NULL);
	ksrpc_reply_free(p);
	/* public_key is not the request's pubkey (a copied attestation) */
	uint8_t other[32];
	memcpy(other, s.pub, 32);
	other[0] ^= 1;
	CHECK_ERR(call(ks, req_new(KSRPC_GET, &s), other, g_now, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "public_key") != NULL);
	ksrpc_reply_free(p);
	/* a debug-mode document (PCR0 all zero), signed with the dev CA */
	struct devca_leaf *leaf = NULL;
	uint8_t pcrs[16][48];
	memset(pcrs, 0, sizeof pcrs);
	memcpy(pcrs[4], a.pcr4, 48);
	CHECK_OK(devca_issue_leaf(g_ca, &leaf, "i-00000000000000001", "i-00000000000000001-enc0000000000000001", g_now));
	struct devca_doc d = {.module_id = "i-00000000000000001-enc0000000000000001",
			      .digest = "SHA384",
			      .timestamp_ms = g_now * 1000,
			      .pcr_mask = 0xffff,
			      .pcrs = (const uint8_t(*)[48])pcrs,
			      .public_key = s.pub,
			      .public_key_len = 32};
	uint8_t *dbg = NULL;
	size_t dl = 0;
	CHECK_OK(devca_attest(leaf, &dbg, &dl, &d));
	struct ksrpc_request *r = req_new(KSRPC_GET, NULL);
	r->attestation = dbg;
	r->attestation_len = dl;
	CHECK_ERR(call(ks, r, s.pub, g_now, &p, NULL), APP_EDEBUG);
	CHECK(strstr(p->error, "debug") != NULL);
	ksrpc_reply_free(p);
	/* the same document shape with real PCRs verifies (the debug flag was the only fault) */
	memcpy(pcrs[0], a.pcr[0], 48);
	memcpy(pcrs[1], a.pcr[1], 48);
	memcpy(pcrs[2], a.pcr[2], 48);
	CHECK_OK(devca_attest(leaf, &dbg, &dl, &d));
	r = req_new(KSRPC_GET, NULL);
	r->attestation = dbg;
	r->attestation_len = dl;
	CHECK_OK(call(ks, r, s.pub, g_now, NULL, NULL));
	/* a document from another CA (not pinned) */
	struct devca *ca2 = NULL;
	struct devca_leaf *leaf2 = NULL;
	CHECK_OK(devca_new_ephemeral(&ca2, 0));
	CHECK_OK(devca_issue_leaf(ca2, &leaf2, "i-00000000000000001", "i-00000000000000001-enc0000000000000001", g_now));
	CHECK_OK(devca_attest(leaf2, &dbg, &dl, &d));
	r = req_new(KSRPC_GET, NULL);
	r->attestation = dbg;
	r->attestation_len = dl;
	CHECK_ERR(call(ks, r, s.pub, g_now, &p, NULL), APP_EREFUSED);
	CHECK(strstr(p->error, "root") != NULL);
	ksrpc_reply_free(p);
	devca_leaf_free(leaf2);
	devca_free(ca2);
	devca_leaf_free(leaf);
	session_free(&s);
	build_free(&a);
	kscore_free(ks);

	/* without allow_dev the dev root is refused */
	struct kscore_config c;
	kscore_config_default(&c);
	CHECK_OK(kscore_new(&ks, &c, g_v, g_now));
	build_init(&a, "image-A", "i-00000000000000001");
	CHECK_ERR(set_from(ks, &a, "key", 1, &oc), APP_EREFUSED);
	CHECK(strstr(oc.reason, "dev_root") != NULL);
	build_free(&a);
	kscore_free(ks);
}

static void test_caps_ttl(void)
{
	struct kscore *ks = ks_new(); /* 8 entries, 2 per pubkey, 3 per PCR set */
	struct build b[10];
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "image-%d", i);
		build_init(&b[i], name, "i-00000000000000001");
	}
	/* per pubkey: one session key creating three entries (3 hosts' worth of the same PCRs is another cap) */
	struct session s;
	session_init(&s, &b[0]);
	struct kscore_outcome oc;
	for (int i = 0; i < 3; i++) {
		struct ksrpc_request *r = req_new(KSRPC_SET, &s);
		memcpy(r->data, "x", 1);
		r->data_len = 1;
		policy_set(r, 0, 0, "", 0);
		r->policy.present = 1;
		r->policy.repo[0] = 0;
		r->policy.version[0] = 0;
		r->policy.t = i == 0 ? KSRPC_T_PROD : KSRPC_T_DEFAULT;
		r->policy.bind_host = i >= 1; /* a second identity for the same PCRs */
		int e = call(ks, r, s.pub, g_now, NULL, &oc);
		if (i < 2)
			CHECKM(e == 0, "set %d: %s", i, oc.reason);
		else
			CHECK(e == 0 && oc.replaced == 1); /* the bound identity again: a replacement, not a new entry */
	}
	session_free(&s);
	/* total: 8 entries */
	for (int i = 1; i < 10; i++) {
		int e = set_from(ks, &b[i], "y", 0, &oc);
		if (i <= 6)
			CHECKM(e == 0, "set %d: %s", i, oc.reason);
		else
			CHECKM(e == APP_ELIMIT && strstr(oc.reason, "full"), "set %d: %d %s", i, e, oc.reason);
	}
	/* TTL: after 72 h everything is gone (and wiped), room again */
	CHECK_ERR(get_from(ks, &b[1], NULL, 0, NULL, NULL), 0);
	struct session s2;
	session_init(&s2, &b[9]);
	struct ksrpc_request *r = req_new(KSRPC_STATUS, NULL);
	struct ksrpc_reply *p = NULL;
	CHECK_OK(call(ks, r, s2.pub, g_now + 72 * 3600 + 1, &p, NULL));
	CHECK(p && strstr(p->result, "\"entries\":0"));
	ksrpc_reply_free(p);
	session_free(&s2);
	struct kscore_stats st;
	kscore_get_stats(ks, &st);
	CHECK(st.entries == 0 && st.expired == 8);
	for (int i = 0; i < 10; i++)
		build_free(&b[i]);
	kscore_free(ks);

	/* per PCR set: 3 entries sharing PCR0/1/2 (3 hosts with bound policies) */
	ks = ks_new();
	const char *hosts[4] = {"i-00000000000000001", "i-00000000000000002", "i-00000000000000003", "i-00000000000000004"};
	for (int i = 0; i < 4; i++) {
		struct build h;
		build_init(&h, "same-image", hosts[i]);
		session_init(&s, &h);
		r = req_new(KSRPC_SET, &s);
		memcpy(r->data, "z", 1);
		r->data_len = 1;
		r->policy.present = 1;
		r->policy.bind_host = 1;
		int e = call(ks, r, s.pub, g_now, NULL, &oc);
		if (i < 3)
			CHECKM(e == 0, "host %d: %s", i, oc.reason);
		else
			CHECKM(e == APP_ELIMIT && strstr(oc.reason, "these PCRs"), "host %d: %d %s", i, e, oc.reason);
		session_free(&s);
		build_free(&h);
	}
	kscore_free(ks);
}

static void test_revocation_events(void)
{
	struct build a;
	build_init(&a, "image-A", "i-00000000000000001");
	struct event *rv = revocation(g_maint[0], &a);
	struct ksrpc_revocation out;
	CHECK_OK(ksrpc_revocation_verify(&out, NULL, rv));
	CHECK(!strcmp(out.repo, REPO) && !memcmp(out.pcr, a.pcr, sizeof out.pcr));
	/* a release signature is not a revocation, nor the reverse */
	struct event *rel = release(g_maint[0], &a, "1.0.0", 0, NULL);
	CHECK_ERR(ksrpc_revocation_verify(&out, NULL, rel), APP_EINVAL);
	struct nec_release nr;
	CHECK_ERR(nec_release_verify(&nr, NULL, rv), APP_EINVAL);
	event_free(rel);
	event_free(rv);
	build_free(&a);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	g_now = (uint64_t)time(NULL);
	CHECK_OK(devca_new_ephemeral(&g_ca, 0));
	CHECK_OK(attest_verifier_new(&g_v));
	uint8_t *root = NULL;
	size_t rl = 0;
	CHECK_OK(devca_root_der(g_ca, &root, &rl));
	CHECK_OK(attest_verifier_add_dev_root(g_v, root, rl));
	free(root);
	for (int i = 0; i < 4; i++)
		CHECK_OK(keys_generate(&g_maint[i]));

	RUN(test_parse);
	RUN(test_reply_parse);
	RUN(test_ping_status);
	RUN(test_same_image_restart);
	RUN(test_not_found_is_definitive);
	RUN(test_upgrade);
	RUN(test_revoked);
	RUN(test_attestation_checks);
	RUN(test_caps_ttl);
	RUN(test_revocation_events);

	for (int i = 0; i < 4; i++)
		keys_free(g_maint[i]);
	attest_verifier_free(g_v);
	devca_free(g_ca);
	return test_summary();
}
