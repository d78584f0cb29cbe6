/*
 * ksserver.c: the keystore daemon's loop (ksserver.h).
 */
#include "keystore/ksserver.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/fileio.h"
#include "appliance/attest.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/nip19.h"
#include "appliance/nip44.h"
#include "keystore/ksconfig.h"
#include "keystore/kscore.h"
#include "keystore/ksident.h"
#include "enclave/runtime/identity.h"
#include "relay-client/pool.h"

#define GC_INTERVAL_S 10
#define STATS_INTERVAL_S 300
#define REVOCATION_FILE_MAX (64 * 1024)
#define ANNOUNCE_MARGIN_S 300 /* re-announce this long before the attestation expires */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Per-pubkey fixed-window counters, open addressing keyed by a random SipHash-like hash. */
struct rl_slot {
	uint8_t pubkey[32];
	uint64_t window; /* window start (unix seconds) */
	uint32_t count;
	int used;
};

struct server {
	const struct ksconfig *cfg;
	struct identity *id;
	struct attest_verifier *v;
	struct kscore *core;
	struct relay_pool *pool;
	char mehex[65];
	uint8_t me[32];
	struct rl_slot *rl;
	uint8_t rl_key[crypto_shorthash_KEYBYTES];
	uint64_t global_sec;
	uint32_t global_count;
	uint64_t next_announce, next_gc, next_stats, last_announce;
	int reannounce; /* a relay (re)connected: announce again (relays may have lost it) */
	/* counters */
	uint64_t ignored_old, ignored_rate, ignored_undecryptable, replies, reply_failures;
};

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/* rate_ok: 1 when the request may be served (and counts it). */
static int rate_ok(struct server *s, const uint8_t pk[32], uint64_t now)
{
	if (s->global_sec != now) {
		s->global_sec = now;
		s->global_count = 0;
	}
	if (s->global_count >= s->cfg->rate_global)
		return 0;
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, pk, 32, s->rl_key);
	uint64_t start;
	memcpy(&start, h, sizeof start);
	start %= KSSERVER_RATE_KEYS;
	/* the pubkey's slot among 16 probes; else a free or expired one; else the oldest (forgotten) */
	struct rl_slot *victim = NULL, *spare = NULL;
	for (size_t probe = 0; probe < 16; probe++) {
		struct rl_slot *sl = &s->rl[(start + probe) % KSSERVER_RATE_KEYS];
		if (sl->used && memcmp(sl->pubkey, pk, 32) == 0) {
			victim = sl;
			break;
		}
		int reusable = !sl->used || sl->window + s->cfg->rate_window <= now;
		if (!spare || (reusable && spare->used && spare->window + s->cfg->rate_window > now) ||
		    (!reusable && spare->used && sl->window < spare->window))
			spare = sl;
	}
	if (!victim)
		victim = spare;
	if (!victim->used || memcmp(victim->pubkey, pk, 32) != 0 || victim->window + s->cfg->rate_window <= now) {
		memcpy(victim->pubkey, pk, 32);
		victim->used = 1;
		victim->window = now;
		victim->count = 0;
	}
	if (victim->count >= s->cfg->rate_requests)
		return 0;
	victim->count++;
	s->global_count++;
	return 1;
}

static int publish_reply(struct server *s, const struct event *req, const char *reply, size_t len, uint64_t now)
{
	uint8_t ck[32];
	char *payload = NULL;
	size_t plen = 0;
	struct event *ev = NULL;
	char eid[65], pk[65];
	int r = nip44_conversation_key(ck, identity_keypair(s->id), req->pubkey);
	if (r)
		goto out;
	if ((r = nip44_encrypt(&payload, &plen, ck, (const uint8_t *)reply, len, NULL)) != 0)
		goto out;
	hex_encode(eid, req->id, 32);
	hex_encode(pk, req->pubkey, 32);
	if ((r = event_new(&ev, KSRPC_KIND, now, payload, plen)) != 0 || (r = event_add_tagv(ev, "e", eid, NULL)) != 0 ||
	    (r = event_add_tagv(ev, "p", pk, NULL)) != 0 || (r = event_sign(ev, identity_keypair(s->id))) != 0)
		goto out;
	r = relay_publish(s->pool, NULL, ev, NULL, 0, NULL, NULL);
out:
	sodium_memzero(ck, sizeof ck);
	free(payload);
	event_free(ev);
	return r;
}

static void on_request(void *user, uint64_t sub, size_t relay, struct event **evp)
{
	struct server *s = user;
	const struct event *ev = *evp;
	uint64_t now = now_s();
	char eid[17], cid[17];
	uint8_t ck[32];
	uint8_t *plain = NULL;
	size_t plen = 0;
	char *reply = NULL;
	size_t rlen = 0;
	struct kscore_outcome oc;
	(void)sub;
	(void)relay;
	hex_encode(eid, ev->id, 8);
	hex_encode(cid, ev->pubkey, 8);
	if (ev->kind != KSRPC_KIND)
		return;
	uint64_t age = ev->created_at > now ? ev->created_at - now : now - ev->created_at;
	if (age > s->cfg->request_max_age) {
		s->ignored_old++;
		log_info("event=request_ignored id=%s client=%s reason=created_at_out_of_window", eid, cid);
		return;
	}
	if (!rate_ok(s, ev->pubkey, now)) {
		s->ignored_rate++;
		log_warn("event=request_ignored id=%s client=%s reason=rate_limited", eid, cid);
		return;
	}
	int r = nip44_conversation_key(ck, identity_keypair(s->id), ev->pubkey);
	if (r == 0)
		r = nip44_decrypt(&plain, &plen, ck, ev->content, ev->content_len);
	sodium_memzero(ck, sizeof ck);
	if (r) {
		s->ignored_undecryptable++;
		log_info("event=request_ignored id=%s client=%s reason=undecryptable err=%s", eid, cid, app_errname(r));
		return;
	}
	r = kscore_handle(s->core, &reply, &rlen, &oc, ev->pubkey, (const char *)plain, plen, now);
	sodium_memzero(plain, plen);
	free(plain);
	if (r) {
		log_error("event=request_failed id=%s client=%s err=%s", eid, cid, app_errname(r));
		return;
	}
	log_info("event=request id=%s client=%s method=%s result=%s reason=\"%s\" entry=%s pcr0=%s", eid, cid,
		 oc.method ? ksrpc_method_name(oc.method) : "?", oc.err ? app_errname(oc.err) : "ok", oc.reason,
		 oc.entry[0] ? oc.entry : "-", oc.pcr0[0] ? oc.pcr0 : "-");
	r = publish_reply(s, ev, reply, rlen, now);
	ksrpc_text_free(reply, rlen);
	if (r) {
		s->reply_failures++;
		log_error("event=reply_failed id=%s err=%s", eid, app_errname(r));
	} else {
		s->replies++;
	}
}

static void on_relay(void *user, size_t relay, enum relay_state state, const char *detail)
{
	struct server *s = user;
	(void)relay;
	(void)detail;
	if (state == RELAY_CONNECTED)
		s->reannounce = 1;
}

static void announce(struct server *s, uint64_t now)
{
	s->last_announce = now;
	s->reannounce = 0;
	struct event *ev = NULL;
	uint64_t exp = 0;
	struct ksident_announce a = {s->cfg->name, s->cfg->version, s->cfg->repo, s->cfg->inbox, s->cfg->about};
	int r = ksident_announcement(s->id, &ev, &exp, &a, now);
	if (r == 0)
		r = relay_publish(s->pool, NULL, ev, NULL, 0, NULL, NULL);
	if (r) {
		log_error("event=announce_failed err=%s", app_errname(r));
		s->next_announce = now + 30;
	} else {
		char idh[17];
		hex_encode(idh, ev->id, 8);
		log_info("event=announce id=%s expires=%llu", idh, (unsigned long long)exp);
		s->next_announce = now + s->cfg->announce_interval;
		if (exp > ANNOUNCE_MARGIN_S && exp - ANNOUNCE_MARGIN_S < s->next_announce)
			s->next_announce = exp - ANNOUNCE_MARGIN_S > now ? exp - ANNOUNCE_MARGIN_S : now + 30;
	}
	event_free(ev);
}

/* read_file: the revocation file, trailing whitespace removed. */
static int read_file(const char *path, char **out, size_t *len)
{
	int r = file_read_all(out, len, path, REVOCATION_FILE_MAX);
	if (r == 0) {
		while (*len && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r' || (*out)[*len - 1] == ' '))
			(*len)--;
		(*out)[*len] = 0;
	}
	return r;
}
static int load_revocations(struct server *s)
{
	for (size_t i = 0; i < s->cfg->revocation_file.n; i++) {
		const char *path = s->cfg->revocation_file.v[i];
		char *text = NULL;
		size_t len = 0;
		struct event *ev = NULL;
		const char *why = NULL;
		int r = read_file(path, &text, &len);
		if (r == 0)
			r = event_parse(&ev, &why, text, len);
		if (r == 0)
			r = kscore_preload_revocation(s->core, &why, ev);
		free(text);
		event_free(ev);
		if (r) {
			log_error("event=startup step=revocation_file file=%s err=%s reason=\"%s\"", path, app_errname(r),
				  why ? why : "");
			return r;
		}
	}
	return 0;
}

static int subscribe(struct server *s, uint64_t now)
{
	char json[256];
	struct filter *f = NULL;
	const char *why = NULL;
	uint64_t sub;
	snprintf(json, sizeof json, "{\"kinds\":[%d],\"#p\":[\"%s\"],\"since\":%llu}", KSRPC_KIND, s->mehex,
		 (unsigned long long)(now > s->cfg->request_max_age ? now - s->cfg->request_max_age : 0));
	int r = filter_parse(&f, &why, json, strlen(json));
	if (r)
		return r;
	static const struct relay_sub_cbs cbs = {on_request, NULL, NULL};
	const struct filter *fs[1] = {f};
	r = relay_sub_open(s->pool, &sub, fs, 1, NULL, 0, &cbs, s);
	filter_free(f);
	return r;
}

static void log_stats(struct server *s)
{
	struct kscore_stats st;
	kscore_get_stats(s->core, &st);
	log_info("event=stats entries=%zu revocations=%zu requests=%llu refused=%llu not_found=%llu sets=%llu "
		 "replaced=%llu gets=%llu upgrades=%llu expired=%llu replies=%llu reply_failures=%llu ignored_old=%llu "
		 "ignored_rate=%llu ignored_undecryptable=%llu",
		 st.entries, st.revocations, (unsigned long long)st.requests, (unsigned long long)st.refused,
		 (unsigned long long)st.not_found, (unsigned long long)st.sets, (unsigned long long)st.replaced,
		 (unsigned long long)st.gets, (unsigned long long)st.upgrades, (unsigned long long)st.expired,
		 (unsigned long long)s->replies, (unsigned long long)s->reply_failures,
		 (unsigned long long)s->ignored_old, (unsigned long long)s->ignored_rate,
		 (unsigned long long)s->ignored_undecryptable);
}

int ksserver_run(const struct ksconfig *cfg)
{
	struct server s;
	uint8_t trusted[KSCORE_TRUSTED_MAX][32];
	char *npub = NULL;
	int r;
	memset(&s, 0, sizeof s);
	s.cfg = cfg;
	got_signal = 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (sodium_init() < 0) {
		r = APP_EINTERNAL;
		goto out;
	}
	crypto_shorthash_keygen(s.rl_key);
	if (!(s.rl = calloc(KSSERVER_RATE_KEYS, sizeof *s.rl))) {
		r = APP_ENOMEM;
		goto out;
	}
	if ((r = identity_new(&s.id, cfg->nsm)) != 0) {
		log_error("event=startup step=identity err=%s", app_errname(r));
		goto out;
	}
	memcpy(s.me, identity_pubkey(s.id), 32);
	hex_encode(s.mehex, s.me, 32);
	if ((r = attest_verifier_new(&s.v)) != 0) {
		log_error("event=startup step=verifier err=%s", app_errname(r));
		goto out;
	}
	if (cfg->allow_dev && (r = attest_verifier_add_dev_root_file(s.v, cfg->dev_root)) != 0) {
		log_error("event=startup step=dev_root file=%s err=%s", cfg->dev_root, app_errname(r));
		goto out;
	}
	struct kscore_config kc;
	kscore_config_default(&kc);
	kc.name = cfg->name;
	kc.version = cfg->version;
	kc.attestation_max_age = cfg->attestation_max_age;
	kc.allow_dev = cfg->allow_dev;
	kc.ttl = cfg->ttl;
	kc.max_entries = cfg->max_entries;
	kc.max_per_pcrs = cfg->max_per_pcrs;
	kc.max_per_pubkey = cfg->max_per_pubkey;
	kc.max_revocations = cfg->max_revocations;
	for (size_t i = 0; i < cfg->trusted_maintainer.n && i < KSCORE_TRUSTED_MAX; i++)
		if ((r = hex_decode(trusted[i], 32, cfg->trusted_maintainer.v[i], 64, 1)) != 0)
			goto out;
	kc.trusted = (const uint8_t(*)[32])trusted;
	kc.ntrusted = cfg->trusted_maintainer.n;
	if ((r = kscore_new(&s.core, &kc, s.v, now_s())) != 0) {
		log_error("event=startup step=core err=%s", app_errname(r));
		goto out;
	}
	if ((r = load_revocations(&s)) != 0)
		goto out;
	struct relay_pool_opts po;
	relay_pool_opts_default(&po);
	po.ca_file = cfg->ca_file;
	po.backoff_max_ms = 5000; /* clients wait for us: reconnect soon */
	po.on_relay = on_relay;
	po.user = &s;
	if ((r = relay_pool_new(&s.pool, &po)) != 0) {
		log_error("event=startup step=relay_pool err=%s", app_errname(r));
		goto out;
	}
	for (size_t i = 0; i < cfg->relay.n; i++)
		if ((r = relay_pool_add_relay(s.pool, NULL, cfg->relay.v[i], NULL)) != 0 && r != APP_EEXIST) {
			log_error("event=startup step=add_relay index=%zu err=%s", i, app_errname(r));
			goto out;
		}
	uint64_t now = now_s();
	if ((r = subscribe(&s, now)) != 0) {
		log_error("event=startup step=subscribe err=%s", app_errname(r));
		goto out;
	}
	announce(&s, now);
	s.next_gc = now + GC_INTERVAL_S;
	s.next_stats = now + STATS_INTERVAL_S;
	if ((r = nip19_encode_bare(&npub, "npub", s.me)) != 0)
		goto out;
	log_info("event=ready pubkey=%s npub=%s relays=%zu allow_dev=%d", s.mehex, npub, cfg->relay.n, cfg->allow_dev);
	while (!got_signal) {
		r = relay_pool_service(s.pool, 250);
		if (r && r != APP_ECANCELED) {
			log_error("event=relay_pool_failed err=%s", app_errname(r));
			goto out;
		}
		now = now_s();
		if (now >= s.next_announce || (s.reannounce && now >= s.last_announce + 10))
			announce(&s, now);
		if (now >= s.next_gc) {
			(void)kscore_gc(s.core, now);
			s.next_gc = now + GC_INTERVAL_S;
		}
		if (now >= s.next_stats) {
			log_stats(&s);
			s.next_stats = now + STATS_INTERVAL_S;
		}
	}
	log_info("event=stopping signal=%d", (int)got_signal);
	/* give pending replies a moment */
	for (int i = 0; i < 8; i++) {
		struct relay_pool_stats ps;
		relay_pool_get_stats(s.pool, &ps);
		if (!ps.publishes_pending || relay_pool_service(s.pool, 50) != 0)
			break;
	}
	log_stats(&s);
	r = 0;
out:
	sodium_memzero(trusted, sizeof trusted);
	free(npub);
	relay_pool_free(s.pool);
	kscore_free(s.core);
	attest_verifier_free(s.v);
	identity_free(s.id);
	free(s.rl);
	return r;
}
