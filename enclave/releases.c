/*
 * releases.c: release signatures of this build from the relays (releases.h).
 */
#include "enclave/releases.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "appliance/nsm.h"
#include "enclave/econfig.h"
#include "relay-client/pool.h"

#define SERVICE_STEP_MS 100

/* One fetch: where kept events go and what they must say. */
struct fetch {
	struct event **out;
	size_t max;
	size_t *n;
	uint8_t pcr[3][NSM_PCR_LEN];
	uint8_t maintainers[KSRPC_MAINTAINERS_MAX][32];
	size_t nmaintainers;
	const char *repo;
	int t; /* required t: 1 dev, 0 prod, -1 any */
	int eose;
	size_t seen, kept, refused, dup, over;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int pubkey_of(uint8_t out[32], const char *s)
{
	size_t l = strlen(s);
	if (hex_decode(out, 32, s, l, 1) != 0 && nip19_decode_bare(out, "npub", s, l) != 0)
		return APP_EINVAL;
	return keys_pubkey_valid(out) == 0 ? 0 : APP_EINVAL;
}

/* check: NULL when ev is a release signature of this build the policy can count, else the reason. */
static const char *check(const struct fetch *f, const struct event *ev)
{
	struct nec_release rel;
	const char *why = NULL;
	int trusted = 0;
	for (size_t i = 0; i < f->nmaintainers; i++)
		trusted |= sodium_memcmp(ev->pubkey, f->maintainers[i], 32) == 0;
	if (!trusted)
		return "not a configured maintainer";
	if (nec_release_verify(&rel, &why, ev) != 0)
		return why ? why : "not a valid release signature";
	for (int i = 0; i < 3; i++)
		if (sodium_memcmp(rel.pcr[i], f->pcr[i], NSM_PCR_LEN) != 0)
			return "PCRs are not this build's";
	if (f->repo && strcmp(rel.repo, f->repo) != 0)
		return "another repository";
	if (f->t >= 0 && rel.dev != f->t)
		return "another release type";
	return NULL;
}

static void on_event(void *user, uint64_t sub, size_t relay, struct event **ev)
{
	struct fetch *f = user;
	char idp[17];
	(void)sub;
	hex_encode(idp, (*ev)->id, 8);
	f->seen++;
	const char *why = check(f, *ev);
	if (why) {
		f->refused++;
		log_debug("event=release_refused id=%s relay=%zu reason=\"%s\"", idp, relay, why);
		return;
	}
	for (size_t i = 0; i < *f->n; i++)
		if (memcmp(f->out[i]->id, (*ev)->id, 32) == 0) {
			f->dup++;
			return;
		}
	if (*f->n == f->max) {
		f->over++;
		return;
	}
	f->out[(*f->n)++] = *ev;
	*ev = NULL;
	f->kept++;
	log_debug("event=release_fetched id=%s relay=%zu", idp, relay);
}

static void on_eose(void *user, uint64_t sub, size_t relay)
{
	struct fetch *f = user;
	(void)sub;
	if (relay == RELAY_ALL)
		f->eose = 1;
}

int releases_fetch(struct event **out, size_t max, size_t *n, const struct econfig *cfg, unsigned timeout_ms,
		   int (*should_stop)(void *), void *stop_arg)
{
	struct fetch f;
	struct nsm *nsm = NULL;
	struct relay_pool *pool = NULL;
	struct filter *flt = NULL;
	char pcr0hex[2 * NSM_PCR_LEN + 1] = "";
	const char *const *relays = (const char *const *)(cfg->ks_relay.n ? cfg->ks_relay.v : cfg->relay.v);
	size_t nrelays = cfg->ks_relay.n ? cfg->ks_relay.n : cfg->relay.n;
	uint64_t sub = 0;
	int r = APP_EINVAL, locked = 0;

	if (*n > max)
		return APP_EINVAL;
	if (!cfg->ks_maintainer.n || !nrelays)
		return 0;
	memset(&f, 0, sizeof f);
	f.out = out;
	f.max = max;
	f.n = n;
	f.repo = cfg->ks_repo ? cfg->ks_repo : cfg->repo;
	f.t = !cfg->ks_type ? -1 : strcmp(cfg->ks_type, "dev") == 0 ? 1 : 0;
	if (cfg->ks_maintainer.n > KSRPC_MAINTAINERS_MAX)
		goto out;
	for (size_t i = 0; i < cfg->ks_maintainer.n; i++)
		if ((r = pubkey_of(f.maintainers[i], cfg->ks_maintainer.v[i])) != 0)
			goto out;
	f.nmaintainers = cfg->ks_maintainer.n;

	if ((r = nsm_open_spec(&nsm, cfg->nsm)) != 0)
		goto out;
	for (uint16_t i = 0; i < 3; i++)
		if ((r = nsm_describe_pcr(nsm, i, &locked, f.pcr[i])) != 0)
			goto out;
	hex_encode(pcr0hex, f.pcr[0], NSM_PCR_LEN);

	if ((r = filter_new(&flt)) != 0 || (r = filter_add_kind(flt, NEC_KIND_RELEASE)) != 0 ||
	    (r = filter_add_tag_value(flt, 'x', pcr0hex)) != 0)
		goto out;
	for (size_t i = 0; i < f.nmaintainers; i++)
		if ((r = filter_add_author(flt, f.maintainers[i])) != 0)
			goto out;

	struct relay_pool_opts po;
	relay_pool_opts_default(&po);
	po.ca_file = cfg->ca_file;
	po.connect_timeout_ms = timeout_ms ? timeout_ms : RELEASES_FETCH_TIMEOUT_MS;
	if ((r = relay_pool_new(&pool, &po)) != 0)
		goto out;
	for (size_t i = 0; i < nrelays; i++) {
		r = relay_pool_add_relay(pool, NULL, relays[i], NULL);
		if (r && r != APP_EEXIST)
			goto out;
	}
	struct relay_sub_cbs cbs = {.on_event = on_event, .on_eose = on_eose};
	const struct filter *fl[1] = {flt};
	if ((r = relay_sub_open(pool, &sub, fl, 1, NULL, 0, &cbs, &f)) != 0)
		goto out;
	uint64_t deadline = now_ms() + (timeout_ms ? timeout_ms : RELEASES_FETCH_TIMEOUT_MS);
	r = 0;
	while (!f.eose && now_ms() < deadline && !(should_stop && should_stop(stop_arg)))
		if ((r = relay_pool_service(pool, SERVICE_STEP_MS)) != 0)
			goto out;
	if (!f.eose)
		log_warn("event=releases_fetch_incomplete relays=%zu reason=\"no EOSE from every relay in time\"",
			 nrelays);
	r = 0;
out:
	if (pool)
		log_info("event=releases_fetch pcr0=%.16s relays=%zu seen=%zu kept=%zu refused=%zu duplicate=%zu over_cap=%zu "
			 "eose=%d",
			 pcr0hex, nrelays, f.seen, f.kept, f.refused, f.dup, f.over, f.eose);
	relay_pool_free(pool);
	filter_free(flt);
	nsm_close(nsm);
	return r;
}
