/*
 * reply.c: feedback (7000) and result (6720) events (reply.h).
 */
#include "enclave/reply.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/nip44.h"
#include "enclave/job.h"

static int encrypt_to(char **out, size_t *outlen, const struct keypair *kp, const uint8_t client[32],
		      const char *pt, size_t len)
{
	uint8_t ck[32];
	int r = nip44_conversation_key(ck, kp, client);
	if (r == 0)
		r = nip44_encrypt(out, outlen, ck, (const uint8_t *)pt, len, NULL);
	sodium_memzero(ck, sizeof ck);
	return r;
}

static int add_ep(struct event *ev, const struct reply_to *to)
{
	char id[65], pk[65];
	hex_encode(id, to->request_id, 32);
	hex_encode(pk, to->client, 32);
	int r = event_add_tagv(ev, "e", id, NULL);
	if (r == 0)
		r = event_add_tagv(ev, "p", pk, NULL);
	return r;
}

int reply_feedback(struct event **out, const struct keypair *kp, const struct reply_to *to, const char *status,
		   const char *text, uint64_t amount_msat, const char *bolt11, uint64_t expiration, uint64_t now)
{
	struct event *ev = NULL;
	char *enc = NULL, *plain = NULL;
	size_t enclen = 0, plainlen = 0;
	char num[24];
	int r;
	*out = NULL;
	if ((r = event_new(&ev, JOB_KIND_FEEDBACK, now, NULL, 0)) != 0)
		goto out;
	if (to->encrypted) {
		struct jw w;
		jw_init(&w, NIP44_MAX_PLAINTEXT);
		jw_raw(&w, "[[\"status\",", 11);
		jw_cstr(&w, status);
		if (text) {
			jw_char(&w, ',');
			jw_cstr(&w, text);
		}
		jw_raw(&w, "]]", 2);
		if ((r = jw_finish(&w, &plain, &plainlen)) != 0) {
			r = r == APP_ETOOBIG ? APP_ERANGE : r;
			goto out;
		}
		if ((r = encrypt_to(&enc, &enclen, kp, to->client, plain, plainlen)) != 0 ||
		    (r = event_set_content(ev, enc, enclen)) != 0 || (r = event_add_tagv(ev, "status", status, NULL)) != 0)
			goto out;
	} else if ((r = text ? event_add_tagv(ev, "status", status, text, NULL) : event_add_tagv(ev, "status", status, NULL)) !=
		   0) {
		goto out;
	}
	if (amount_msat) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)amount_msat);
		if ((r = bolt11 ? event_add_tagv(ev, "amount", num, bolt11, NULL) : event_add_tagv(ev, "amount", num, NULL)) != 0)
			goto out;
	}
	if ((r = add_ep(ev, to)) != 0)
		goto out;
	if (expiration) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)expiration);
		if ((r = event_add_tagv(ev, "expiration", num, NULL)) != 0)
			goto out;
	}
	if (to->encrypted && (r = event_add_tagv(ev, "encrypted", NULL)) != 0)
		goto out;
	if ((r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
out:
	free(enc);
	if (plain) {
		sodium_memzero(plain, plainlen);
		free(plain);
	}
	event_free(ev);
	return r;
}

int reply_result(struct event **out, const struct keypair *kp, const struct reply_to *to, const struct event *request,
		 const char *content, size_t len, uint64_t amount_msat, const char *tee_root_json, uint64_t now)
{
	struct event *ev = NULL;
	char *enc = NULL, *reqjson = NULL;
	size_t enclen = 0, reqlen = 0;
	char num[24];
	int r;
	*out = NULL;
	if (to->encrypted) {
		if (len > NIP44_MAX_PLAINTEXT || len == 0)
			return APP_ERANGE;
		if ((r = encrypt_to(&enc, &enclen, kp, to->client, content, len)) != 0)
			return r;
		r = event_new(&ev, JOB_KIND_RESULT, now, enc, enclen);
	} else {
		r = event_new(&ev, JOB_KIND_RESULT, now, content, len);
	}
	if (r)
		goto out;
	if ((r = event_to_json(&reqjson, &reqlen, request)) != 0 || (r = event_add_tagv(ev, "request", reqjson, NULL)) != 0 ||
	    (r = add_ep(ev, to)) != 0)
		goto out;
	if (!to->encrypted)
		for (size_t i = 0; i < request->ntags; i++)
			if (!strcmp(request->tags[i].v[0], "i") &&
			    (r = event_add_tag(ev, request->tags[i].n, (const char *const *)request->tags[i].v)) != 0)
				goto out;
	if (amount_msat) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)amount_msat);
		if ((r = event_add_tagv(ev, "amount", num, NULL)) != 0)
			goto out;
	}
	if ((r = event_add_tagv(ev, "tee_root", tee_root_json, NULL)) != 0)
		goto out;
	if (to->encrypted && (r = event_add_tagv(ev, "encrypted", NULL)) != 0)
		goto out;
	if ((r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
out:
	free(enc);
	free(reqjson);
	event_free(ev);
	return r;
}
