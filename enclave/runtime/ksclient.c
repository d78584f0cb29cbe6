/*
 * ksclient.c: the keystore client (ksclient.h).
 */
#include "enclave/runtime/ksclient.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip44.h"
#include "appliance/nsm.h"
#include "enclave/runtime/egress.h"
#include "relay-client/pool.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DISCOVER_EVENTS_MAX 256   /* announcements examined by one discovery */
#define DISCOVER_WINDOW_S (4 * 3600) /* announcements older than this are stale (AWS leaves last 3 h) */

struct pending {
	int active;
	uint8_t event_id[32];
	uint8_t keystore[32];
	char id[KSRPC_ID_MAX + 1];
	enum ksrpc_method method;
	uint64_t publish_id;
	int publish_failed;
	int done; /* reply set */
	struct ksrpc_reply *reply;
};

struct discovery {
	int active, eose, all, answered;
	uint64_t sub;
	struct event *ev[DISCOVER_EVENTS_MAX];
	size_t n;
};

struct ksclient {
	struct relay_pool *pool;
	struct keypair *kp;
	uint8_t pub[32];
	struct nsm *nsm;
	unsigned timeout_ms;
	uint64_t sub;
	int live; /* the reply subscription reached EOSE (or closed) everywhere */
	struct pending p;
	struct discovery d;
	uint64_t ignored;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *ksclient_answer_name(enum ksclient_answer a)
{
	switch (a) {
	case KSCLIENT_FOUND: return "found";
	case KSCLIENT_NOT_FOUND: return "not_found";
	case KSCLIENT_REFUSED: return "refused";
	case KSCLIENT_NO_ANSWER: return "no_answer";
	}
	return "?";
}

const uint8_t *ksclient_pubkey(const struct ksclient *c)
{
	return c->pub;
}

static int has_e_tag(const struct event *ev, const uint8_t id[32])
{
	char hx[65];
	size_t pos = 0;
	const struct event_tag *t;
	hex_encode(hx, id, 32);
	while ((t = event_tag_find(ev, &pos, "e", 2)) != NULL)
		if (t->len[1] == 64 && memcmp(t->v[1], hx, 64) == 0)
			return 1;
	return 0;
}

static void on_reply(void *user, uint64_t sub, size_t relay, struct event **evp)
{
	struct ksclient *c = user;
	const struct event *ev = *evp;
	uint8_t ck[32];
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct ksrpc_reply *rep = NULL;
	const char *why = NULL;
	(void)sub;
	(void)relay;
	if (!c->p.active || c->p.reply || ev->kind != KSRPC_KIND || memcmp(ev->pubkey, c->p.keystore, 32) != 0 ||
	    !has_e_tag(ev, c->p.event_id)) {
		c->ignored++;
		return;
	}
	int r = nip44_conversation_key(ck, c->kp, ev->pubkey);
	if (r == 0)
		r = nip44_decrypt(&plain, &plen, ck, ev->content, ev->content_len);
	sodium_memzero(ck, sizeof ck);
	if (r == 0)
		r = ksrpc_reply_parse(&rep, &why, c->p.method, (const char *)plain, plen);
	if (plain) {
		sodium_memzero(plain, plen);
		free(plain);
	}
	if (r || strcmp(rep->id, c->p.id) != 0) {
		char k[17];
		hex_encode(k, ev->pubkey, 8);
		log_warn("event=keystore_reply_ignored keystore=%s err=%s reason=\"%s\"", k, app_errname(r ? r : APP_EPROTO),
			 r ? (why ? why : "undecryptable") : "id mismatch");
		ksrpc_reply_free(rep);
		c->ignored++;
		return;
	}
	c->p.reply = rep;
	c->p.done = 1;
}

/*
 * on_eose: a relay's own EOSE makes the reply subscription live and counts
 * as a discovery answer. "EOSE from all" (RELAY_ALL) also fires when every
 * relay failed to connect, so it only ends a discovery that some relay
 * really answered; otherwise the pool keeps reconnecting while we wait.
 */
static void on_eose(void *user, uint64_t sub, size_t relay)
{
	struct ksclient *c = user;
	if (sub == c->sub) {
		if (relay != RELAY_ALL)
			c->live = 1;
	} else if (c->d.active && sub == c->d.sub) {
		if (relay == RELAY_ALL)
			c->d.all = 1;
		else
			c->d.answered = 1;
		c->d.eose = c->d.all && c->d.answered;
	}
}

static void on_closed(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix, const char *message)
{
	(void)user;
	(void)prefix;
	log_warn("event=keystore_sub_closed sub=%llu relay=%zu message=\"%.80s\"", (unsigned long long)sub, relay,
		 message ? message : "");
}

static void on_publish(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *results,
		       size_t n)
{
	struct ksclient *c = user;
	(void)id;
	if (!c->p.active || publish_id != c->p.publish_id)
		return;
	for (size_t i = 0; i < n; i++)
		if (results[i].status == RELAY_PUB_ACCEPTED)
			return;
	c->p.publish_failed = 1;
}

static void on_discovered(void *user, uint64_t sub, size_t relay, struct event **evp)
{
	struct ksclient *c = user;
	(void)relay;
	if (!c->d.active || sub != c->d.sub || c->d.n >= DISCOVER_EVENTS_MAX)
		return;
	c->d.ev[c->d.n++] = *evp;
	*evp = NULL;
}

static const struct relay_sub_cbs reply_cbs = {on_reply, on_eose, on_closed};
static const struct relay_sub_cbs discover_cbs = {on_discovered, on_eose, on_closed};

static int open_sub(struct ksclient *c, uint64_t *sub, const char *json, const struct relay_sub_cbs *cbs)
{
	struct filter *f = NULL;
	const char *why = NULL;
	int r = filter_parse(&f, &why, json, strlen(json));
	if (r)
		return r;
	const struct filter *fs[1] = {f};
	r = relay_sub_open(c->pool, sub, fs, 1, NULL, 0, cbs, c);
	filter_free(f);
	return r;
}

int ksclient_new(struct ksclient **out, const struct ksclient_opts *o)
{
	struct ksclient *c = NULL;
	struct relay_pool_opts po;
	char json[256], pubhex[65];
	int r = APP_EINVAL;
	*out = NULL;
	if (!o || o->nrelays == 0 || o->nrelays > KSCLIENT_RELAYS_MAX || !o->relays)
		return APP_EINVAL;
	if (!(c = calloc(1, sizeof *c)))
		return APP_ENOMEM;
	c->nsm = o->nsm;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	if (o->session_key) {
		uint8_t sec[32];
		keys_secret(o->session_key, sec);
		r = keys_from_secret(&c->kp, sec);
		sodium_memzero(sec, sizeof sec);
	} else {
		r = keys_generate(&c->kp);
	}
	if (r)
		goto out;
	keys_pubkey(c->kp, c->pub);
	relay_pool_opts_default(&po);
	po.ca_file = o->ca_file;
	po.connect_timeout_ms = 5000;
	po.publish_timeout_ms = 5000;
	po.publish_attempts = 2;
	po.backoff_max_ms = 2000;
	if ((r = relay_pool_new(&c->pool, &po)) != 0)
		goto out;
	for (size_t i = 0; i < o->nrelays; i++) {
		char ct[64];
		const char *via = egress_default_connect_to(o->relays[i], ct, sizeof ct);
		r = relay_pool_add_relay(c->pool, NULL, o->relays[i], via);
		if (r && r != APP_EEXIST)
			goto out;
	}
	hex_encode(pubhex, c->pub, 32);
	uint64_t now = (uint64_t)time(NULL);
	snprintf(json, sizeof json, "{\"kinds\":[%d],\"#p\":[\"%s\"],\"since\":%llu}", KSRPC_KIND, pubhex,
		 (unsigned long long)(now - 60));
	if ((r = open_sub(c, &c->sub, json, &reply_cbs)) != 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	ksclient_free(c);
	return r;
}

void ksclient_free(struct ksclient *c)
{
	if (!c)
		return;
	relay_pool_free(c->pool);
	ksrpc_reply_free(c->p.reply);
	for (size_t i = 0; i < c->d.n; i++)
		event_free(c->d.ev[i]);
	keys_free(c->kp);
	free(c);
}

static int needs_attestation(const struct ksrpc_request *req)
{
	return req->method == KSRPC_SET || req->method == KSRPC_GET ||
	       (req->method == KSRPC_HAS && !req->has_pcrs && !req->has_pcr4);
}

/* service_until: drives the pool until *flag or the deadline (mono ms). */
static void service_until(struct ksclient *c, const int *flag, const int *flag2, uint64_t deadline)
{
	for (;;) {
		if (*flag || (flag2 && *flag2))
			return;
		uint64_t now = mono_ms();
		if (now >= deadline)
			return;
		uint64_t left = deadline - now;
		if (relay_pool_service(c->pool, (int)(left < 100 ? left : 100)) != 0)
			return;
	}
}

int ksclient_call(struct ksclient *c, struct ksrpc_reply **rep, const uint8_t keystore[32], struct ksrpc_request *req,
		  unsigned timeout_ms)
{
	uint8_t rnd[8], ck[32];
	char *json = NULL, *payload = NULL;
	size_t jl = 0, pl = 0;
	struct event *ev = NULL;
	char kshex[65], k8[17], e8[17];
	int r;
	*rep = NULL;
	uint64_t deadline = mono_ms() + (timeout_ms ? timeout_ms : c->timeout_ms);
	if (needs_attestation(req) && !req->attestation) {
		if (!c->nsm)
			return APP_EINVAL;
		if ((r = nsm_attestation(c->nsm, &req->attestation, &req->attestation_len, NULL, 0, NULL, 0, c->pub, 32)) != 0) {
			log_error("event=keystore_attestation err=%s", app_errname(r));
			return r;
		}
	}
	keys_random(rnd, sizeof rnd);
	hex_encode(req->id, rnd, sizeof rnd);
	if ((r = ksrpc_request_build(&json, &jl, req)) != 0)
		goto out;
	if ((r = nip44_conversation_key(ck, c->kp, keystore)) != 0)
		goto out;
	r = nip44_encrypt(&payload, &pl, ck, (const uint8_t *)json, jl, NULL);
	sodium_memzero(ck, sizeof ck);
	if (r)
		goto out;
	hex_encode(kshex, keystore, 32);
	if ((r = event_new(&ev, KSRPC_KIND, (uint64_t)time(NULL), payload, pl)) != 0 ||
	    (r = event_add_tagv(ev, "p", kshex, NULL)) != 0 || (r = event_sign(ev, c->kp)) != 0)
		goto out;
	/* the reply is ephemeral: our subscription must be live at the relays before it is sent */
	service_until(c, &c->live, NULL, deadline);
	ksrpc_reply_free(c->p.reply);
	memset(&c->p, 0, sizeof c->p);
	c->p.active = 1;
	memcpy(c->p.event_id, ev->id, 32);
	memcpy(c->p.keystore, keystore, 32);
	memcpy(c->p.id, req->id, sizeof c->p.id);
	c->p.method = req->method;
	if ((r = relay_publish(c->pool, &c->p.publish_id, ev, NULL, 0, on_publish, c)) != 0)
		goto out;
	service_until(c, &c->p.done, &c->p.publish_failed, deadline);
	hex_encode(k8, keystore, 8);
	hex_encode(e8, ev->id, 8);
	if (c->p.reply) {
		*rep = c->p.reply;
		c->p.reply = NULL;
		log_debug("event=keystore_answer keystore=%s request=%s method=%s result=%s", k8, e8,
			  ksrpc_method_name(req->method), (*rep)->err ? app_errname((*rep)->err) : "ok");
		r = 0;
	} else {
		r = c->p.publish_failed ? APP_ECONN : APP_ETIMEOUT;
		log_warn("event=keystore_no_answer keystore=%s request=%s method=%s err=%s", k8, e8,
			 ksrpc_method_name(req->method), app_errname(r));
	}
out:
	c->p.active = 0;
	ksrpc_text_free(json, jl);
	free(payload);
	event_free(ev);
	return r;
}

static void set_why(char *why, size_t cap, const char *text)
{
	if (why && cap)
		snprintf(why, cap, "%s", text);
}

static enum ksclient_answer classify(int r, const struct ksrpc_reply *rep, char *why, size_t whycap)
{
	if (r) {
		set_why(why, whycap, app_strerror(r));
		return KSCLIENT_NO_ANSWER;
	}
	if (rep->err == APP_ENOTFOUND) {
		set_why(why, whycap, KSRPC_NOT_FOUND);
		return KSCLIENT_NOT_FOUND;
	}
	if (rep->err) {
		set_why(why, whycap, rep->error);
		return KSCLIENT_REFUSED;
	}
	set_why(why, whycap, "ok");
	return KSCLIENT_FOUND;
}

int ksclient_get(struct ksclient *c, enum ksclient_answer *ans, uint8_t *data, size_t *len, uint64_t *epoch,
		 char *why, size_t whycap, const uint8_t keystore[32], struct event *const *sigs, size_t nsigs,
		 unsigned timeout_ms)
{
	struct ksrpc_request *req = NULL;
	struct ksrpc_reply *rep = NULL;
	int r;
	*ans = KSCLIENT_NO_ANSWER;
	*len = 0;
	*epoch = 0;
	if (nsigs > KSRPC_SIGS_MAX)
		return APP_EINVAL;
	if ((r = ksrpc_request_new(&req)) != 0)
		return r;
	req->method = KSRPC_GET;
	for (size_t i = 0; i < nsigs; i++) {
		char *j = NULL;
		size_t jl = 0;
		if ((r = event_to_json(&j, &jl, sigs[i])) != 0)
			goto out;
		r = event_parse(&req->sigs[i], NULL, j, jl);
		free(j);
		if (r)
			goto out;
		req->nsigs++;
	}
	r = ksclient_call(c, &rep, keystore, req, timeout_ms);
	if (r && r != APP_ETIMEOUT && r != APP_ECONN)
		goto out;
	*ans = classify(r, rep, why, whycap);
	if (*ans == KSCLIENT_FOUND) {
		if (!rep->has_data || rep->data_len > KSRPC_DATA_MAX) {
			*ans = KSCLIENT_REFUSED;
			set_why(why, whycap, "answer without data");
		} else {
			memcpy(data, rep->data, rep->data_len);
			*len = rep->data_len;
			*epoch = rep->epoch;
			set_why(why, whycap, strstr(rep->result, "\"match\":\"release\"") ? "release" : "exact");
		}
	}
	r = 0;
out:
	ksrpc_reply_free(rep);
	ksrpc_request_free(req);
	return r;
}

int ksclient_set(struct ksclient *c, enum ksclient_answer *ans, char *why, size_t whycap, const uint8_t keystore[32],
		 const uint8_t *data, size_t len, uint64_t epoch, const struct ksrpc_policy *policy, unsigned timeout_ms)
{
	struct ksrpc_request *req = NULL;
	struct ksrpc_reply *rep = NULL;
	int r;
	*ans = KSCLIENT_NO_ANSWER;
	if (len == 0 || len > KSRPC_DATA_MAX)
		return APP_EINVAL;
	if ((r = ksrpc_request_new(&req)) != 0)
		return r;
	req->method = KSRPC_SET;
	memcpy(req->data, data, len);
	req->data_len = len;
	req->epoch = epoch;
	if (policy)
		req->policy = *policy;
	r = ksclient_call(c, &rep, keystore, req, timeout_ms);
	if (r && r != APP_ETIMEOUT && r != APP_ECONN)
		goto out;
	*ans = classify(r, rep, why, whycap);
	if (*ans == KSCLIENT_NOT_FOUND) { /* a set never answers not found: treat as a refusal */
		*ans = KSCLIENT_REFUSED;
		set_why(why, whycap, "unexpected not found");
	}
	r = 0;
out:
	ksrpc_reply_free(rep);
	ksrpc_request_free(req);
	return r;
}

/* ---- discovery ---- */

static int tag_is(const struct event *ev, const char *name, const char *value)
{
	const char *v = event_tag_value(ev, name);
	return v && strcmp(v, value) == 0;
}

int ksclient_discover(struct ksclient *c, struct ksclient_keystore *out, size_t max, size_t *n,
		      struct attest_verifier *v, int allow_dev, const uint8_t (*images)[48], size_t nimages,
		      const char *repo, unsigned timeout_ms)
{
	char json[NEC_REPO_MAX + 128];
	int r;
	*n = 0;
	uint64_t now = (uint64_t)time(NULL);
	if (repo && (strlen(repo) > NEC_REPO_MAX || strchr(repo, '"') || strchr(repo, '\\')))
		return APP_EINVAL;
	if (repo)
		snprintf(json, sizeof json, "{\"kinds\":[%d],\"#r\":[\"%s\"],\"since\":%llu}", NEC_KIND_ANNOUNCEMENT, repo,
			 (unsigned long long)(now - DISCOVER_WINDOW_S));
	else
		snprintf(json, sizeof json, "{\"kinds\":[%d],\"since\":%llu}", NEC_KIND_ANNOUNCEMENT,
			 (unsigned long long)(now - DISCOVER_WINDOW_S));
	memset(&c->d, 0, sizeof c->d);
	c->d.active = 1;
	if ((r = open_sub(c, &c->d.sub, json, &discover_cbs)) != 0) {
		c->d.active = 0;
		return r;
	}
	service_until(c, &c->d.eose, NULL, mono_ms() + (timeout_ms ? timeout_ms : c->timeout_ms));
	int answered = c->d.answered;
	if (relay_sub_close(c->pool, c->d.sub) != 0)
		log_debug("event=keystore_discover_close err=ENOTFOUND");
	c->d.active = 0;
	struct attest_verify_opts o;
	memset(&o, 0, sizeof o);
	o.allow_dev = allow_dev;
	for (size_t i = 0; i < c->d.n; i++) {
		struct event *ev = c->d.ev[i];
		struct attest_doc *doc = NULL;
		const char *why = NULL;
		struct attest_result ares;
		uint64_t exp = 0;
		if (!tag_is(ev, "name", "keystore") || !tag_is(ev, "k", "29525"))
			continue;
		if (nec_announcement_verify(v, &why, &ares, &doc, ev, &o) != 0) {
			char k[17];
			hex_encode(k, ev->pubkey, 8);
			log_info("event=keystore_announcement_refused keystore=%s reason=\"%s\"", k, why ? why : "");
			continue;
		}
		int ok = 0;
		for (size_t k = 0; k < nimages && !ok; k++)
			ok = sodium_memcmp(images[k], doc->pcrs[0], 48) == 0;
		if (ok && (r = event_expiration(ev, &exp)) != 0)
			ok = 0;
		if (ok) {
			uint8_t p4[48] = {0};
			if (doc->pcr_mask >> 4 & 1u)
				memcpy(p4, doc->pcrs[4], 48);
			size_t slot = SIZE_MAX;
			for (size_t k = 0; k < *n; k++)
				if (!memcmp(out[k].pcr0, doc->pcrs[0], 48) && !memcmp(out[k].pcr4, p4, 48))
					slot = k;
			if (slot == SIZE_MAX && *n < max) {
				slot = (*n)++;
				memset(&out[slot], 0, sizeof out[slot]);
			}
			if (slot != SIZE_MAX &&
			    (ev->created_at > out[slot].created_at ||
			     (ev->created_at == out[slot].created_at && doc->timestamp_ms >= out[slot].attested_ms))) {
				out[slot].attested_ms = doc->timestamp_ms;
				memcpy(out[slot].pubkey, ev->pubkey, 32);
				memcpy(out[slot].pcr0, doc->pcrs[0], 48);
				memcpy(out[slot].pcr4, p4, 48);
				out[slot].created_at = ev->created_at;
				out[slot].expires_at = exp;
			}
		}
		attest_doc_free(doc);
	}
	for (size_t i = 0; i < c->d.n; i++)
		event_free(c->d.ev[i]);
	c->d.n = 0;
	return answered || *n ? 0 : APP_ETIMEOUT;
}
