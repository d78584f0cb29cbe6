/*
 * result_test: the job result (enclave/result.h, enclave/reply.h): numbers
 * written as JSON.stringify writes them (jw_f64), the result digest against
 * an independent computation and a fixed vector, the metrics and content
 * JSON, feedback and result events (clear and encrypted forms).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nip44.h"
#include "enclave/reply.h"
#include "enclave/result.h"
#include "tests/unit/test.h"

static void test_f64(void)
{
	/* expectations from node: JSON.stringify(v) */
	static const struct {
		double v;
		const char *js;
	} t[] = {
		{0.1, "0.1"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1.0 / 3, "0.3333333333333333"},
		{123456789012345680000.0, "123456789012345680000"},
		{1e21, "1e+21"},
		{1.5e-7, "1.5e-7"},
		{0.000001, "0.000001"},
		{1e-7, "1e-7"},
		{-2.5, "-2.5"},
		{100, "100"},
		{0.9649122807017544, "0.9649122807017544"},
		{5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{123.456, "123.456"},
		{0.00001234, "0.00001234"},
		{9007199254740992.0, "9007199254740992"},
		{0.0, "0"},
		{-0.0, "0"},
		{1.0, "1"},
		{-1e-300, "-1e-300"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct jw w;
		char *out = NULL;
		size_t len;
		jw_init(&w, 0);
		jw_f64(&w, t[i].v);
		CHECK_OK(jw_finish(&w, &out, &len));
		CHECKM(out && !strcmp(out, t[i].js), "%.17g -> %s, expected %s", t[i].v, out ? out : "(null)", t[i].js);
		free(out);
	}
	struct jw w;
	char *out = NULL;
	size_t len;
	jw_init(&w, 0);
	jw_f64(&w, 0.0 / 0.0);
	CHECK_OK(jw_finish(&w, &out, &len));
	CHECK_STR(out, "null");
	free(out);
}

static void metrics_fixture(struct train_metrics *m, struct model *mod, char *labels[2], uint64_t conf[4], uint64_t sup[2])
{
	memset(m, 0, sizeof *m);
	memset(mod, 0, sizeof *mod);
	m->accuracy = 0.9525483304042179;
	m->log_loss = 0.2532546086951912;
	m->auc = 0.9896015009777496;
	m->has_auc = 1;
	m->metrics_on_train = 1;
	m->samples = m->train_samples = m->evaluated = 569;
	m->features = 30;
	m->classes = 2;
	m->epochs_run = 20;
	m->train_ms = 0.5815719999372959;
	m->train_loss = 0.257150401571361;
	conf[0] = 198, conf[1] = 14, conf[2] = 13, conf[3] = 344;
	sup[0] = 212, sup[1] = 357;
	m->confusion = conf;
	m->support = sup;
	mod->classes = 2;
	labels[0] = "B";
	labels[1] = "M\"q";
	mod->labels = labels;
}

static void test_metrics_and_digest(void)
{
	struct train_metrics m;
	struct model mod;
	char *labels[2];
	uint64_t conf[4], sup[2];
	metrics_fixture(&m, &mod, labels, conf, sup);
	char *js = NULL;
	size_t len = 0;
	CHECK_OK(result_metrics_json(&js, &len, &m, &mod));
	CHECK_STR(js, "{\"accuracy\":0.9525483304042179,\"log_loss\":0.2532546086951912,\"auc\":0.9896015009777496,"
		      "\"samples\":569,\"train_samples\":569,\"validation_samples\":0,\"evaluated\":569,"
		      "\"metrics_on\":\"train\",\"features\":30,\"classes\":2,\"epochs_run\":20,"
		      "\"train_ms\":0.5815719999372959,\"train_loss\":0.257150401571361,\"class_labels\":[\"B\",\"M\\\"q\"],"
		      "\"support\":[212,357],\"confusion\":[[198,14],[13,344]]}");
	/* the digest: recomputed here by concatenation */
	uint8_t job[32], ds[2][32], msha[32], d1[32], d2[32];
	for (int i = 0; i < 32; i++) {
		job[i] = (uint8_t)i;
		ds[0][i] = (uint8_t)(0x40 + i);
		ds[1][i] = (uint8_t)(0x80 + i);
		msha[i] = (uint8_t)(0xc0 + i);
	}
	CHECK_OK(result_digest(d1, job, (const uint8_t(*)[32])ds, 2, msha, js, len));
	size_t tl = strlen(RESULT_DIGEST_TAG), total = tl + 32 + 4 + 64 + 32 + len;
	uint8_t *buf = malloc(total), *p = buf;
	memcpy(p, RESULT_DIGEST_TAG, tl), p += tl;
	memcpy(p, job, 32), p += 32;
	*p++ = 0, *p++ = 0, *p++ = 0, *p++ = 2;
	memcpy(p, ds, 64), p += 64;
	memcpy(p, msha, 32), p += 32;
	memcpy(p, js, len);
	hash_sha256(d2, buf, total);
	free(buf);
	CHECK_MEM(d1, d2, 32);
	/* a fixed vector, computed with node: JSON.stringify(metrics) and the same concatenation */
	char hexd[65];
	hex_encode(hexd, d1, 32);
	CHECK_STR(hexd, "a3582402bc6656cac247f2039fc433677826b9521da4014cd077a3970ef5223b");
	/* any change changes it */
	ds[1][0] ^= 1;
	CHECK_OK(result_digest(d2, job, (const uint8_t(*)[32])ds, 2, msha, js, len));
	CHECK(memcmp(d1, d2, 32) != 0);
	ds[1][0] ^= 1;
	CHECK_OK(result_digest(d2, job, (const uint8_t(*)[32])ds, 1, msha, js, len));
	CHECK(memcmp(d1, d2, 32) != 0);

	/* the content JSON parses and re-serializes (JSON.stringify) to the same metrics */
	struct result_model rm;
	struct result_dataset rd[2];
	uint8_t model[5] = {'A', 'P', 'M', 'O', 'D'};
	memset(&rm, 0, sizeof rm);
	memcpy(rm.sha256, msha, 32);
	rm.bytes = 5;
	rm.data = model;
	memcpy(rd[0].sha256, ds[0], 32);
	rd[0].bytes = 10;
	memcpy(rd[1].sha256, ds[1], 32);
	rd[1].bytes = 20;
	char *content = NULL;
	size_t clen = 0;
	CHECK_OK(result_content_json(&content, &clen, 65535, job, js, len, &rm, rd, 2, d1));
	cJSON *c = cJSON_Parse(content);
	CHECK(c != NULL);
	if (c) {
		CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "model"), "data")->valuestring, "QVBNT0Q=");
		CHECK_STR(cJSON_GetObjectItem(c, "digest")->valuestring, hexd);
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(c, "datasets")) == 2);
		cJSON_Delete(c);
	}
	CHECK(strstr(content, js) != NULL); /* metrics verbatim */
	free(content);
	CHECK_ERR(result_content_json(&content, &clen, 100, job, js, len, &rm, rd, 2, d1), APP_ETOOBIG);
	/* by reference */
	rm.data = NULL;
	rm.url = "https://blobs.example/x";
	memset(rm.key, 0x5a, 32);
	CHECK_OK(result_content_json(&content, &clen, 65535, job, js, len, &rm, rd, 2, d1));
	CHECK(strstr(content, "\"url\":\"https://blobs.example/x\",\"sealed_sha256\":") != NULL);
	CHECK(strstr(content, "5a5a5a5a") != NULL && strstr(content, "\"data\"") == NULL);
	free(content);
	free(js);
}

static void test_replies(void)
{
	struct keypair *svc = NULL, *cl = NULL;
	struct event *fb = NULL, *req = NULL, *res = NULL;
	struct reply_to to;
	uint8_t ck[32];
	CHECK_OK(keys_generate(&svc));
	CHECK_OK(keys_generate(&cl));
	memset(&to, 0, sizeof to);
	memset(to.request_id, 0x11, 32);
	keys_pubkey(cl, to.client);
	/* public: everything in clear */
	CHECK_OK(reply_feedback(&fb, svc, &to, "payment-required", "pay it", 3000, "lnbcrt1x", 1700000600, 1700000000));
	CHECK_OK(event_verify(fb));
	CHECK(fb->kind == 7000 && fb->content_len == 0);
	size_t pos = 0;
	const struct event_tag *t = event_tag_find(fb, &pos, "status", 3);
	CHECK(t && !strcmp(t->v[1], "payment-required") && !strcmp(t->v[2], "pay it"));
	pos = 0;
	t = event_tag_find(fb, &pos, "amount", 3);
	CHECK(t && !strcmp(t->v[1], "3000") && !strcmp(t->v[2], "lnbcrt1x"));
	CHECK_STR(event_tag_value(fb, "expiration"), "1700000600");
	CHECK(event_tag_value(fb, "encrypted") == NULL);
	event_free(fb);
	/* private: status without text in clear, the text encrypted */
	to.encrypted = 1;
	CHECK_OK(reply_feedback(&fb, svc, &to, "error", "epochs: 0 is out of range 1..10000", 0, NULL, 0, 1700000000));
	CHECK_OK(event_verify(fb));
	pos = 0;
	t = event_tag_find(fb, &pos, "status", 1);
	CHECK(t && t->n == 2 && !strcmp(t->v[1], "error"));
	pos = 0;
	CHECK(event_tag_find(fb, &pos, "encrypted", 1) != NULL);
	CHECK(strstr(fb->content, "epochs") == NULL);
	uint8_t spub[32], *pt = NULL;
	size_t ptlen = 0;
	keys_pubkey(svc, spub);
	CHECK_OK(nip44_conversation_key(ck, cl, spub));
	CHECK_OK(nip44_decrypt(&pt, &ptlen, ck, fb->content, fb->content_len));
	CHECK(pt && !strcmp((char *)pt, "[[\"status\",\"error\",\"epochs: 0 is out of range 1..10000\"]]"));
	free(pt);
	event_free(fb);
	/* result: request tag, e, p, amount, tee_root, encrypted content */
	CHECK_OK(event_new(&req, 5720, 1700000000, NULL, 0));
	CHECK_OK(event_add_tagv(req, "i", "https://x/y.csv", "url", NULL));
	CHECK_OK(event_sign(req, cl));
	memcpy(to.request_id, req->id, 32);
	CHECK_OK(reply_result(&res, svc, &to, req, "{\"job\":1}", 9, 3000, "{\"kind\":23793}", 1700000001));
	CHECK_OK(event_verify(res));
	CHECK(res->kind == 6720);
	CHECK(event_tag_value(res, "i") == NULL); /* private: no i tags */
	CHECK_STR(event_tag_value(res, "amount"), "3000");
	CHECK_STR(event_tag_value(res, "tee_root"), "{\"kind\":23793}");
	CHECK(event_tag_value(res, "request") != NULL);
	CHECK_OK(nip44_decrypt(&pt, &ptlen, ck, res->content, res->content_len));
	CHECK(pt && !strcmp((char *)pt, "{\"job\":1}"));
	free(pt);
	event_free(res);
	to.encrypted = 0;
	CHECK_OK(reply_result(&res, svc, &to, req, "{\"job\":1}", 9, 0, "{}", 1700000001));
	CHECK_STR(event_tag_value(res, "i"), "https://x/y.csv");
	CHECK(event_tag_value(res, "amount") == NULL);
	CHECK_STR(res->content, "{\"job\":1}");
	event_free(res);
	event_free(req);
	keys_free(svc);
	keys_free(cl);
}

int main(void)
{
	RUN(test_f64);
	RUN(test_metrics_and_digest);
	RUN(test_replies);
	return test_summary();
}
