/*
 * ksset.c: the keystores of an enclave (ksset.h).
 */
#include "enclave/runtime/ksset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/log.h"
#include "appliance/nsm.h"
#include "enclave/runtime/ksclient.h"

struct ksset {
	struct ksclient *c;
	struct nsm *nsm;
	struct attest_verifier *v;
	int allow_dev;
	uint8_t fixed[KSSET_MAX][32];
	size_t nfixed;
	uint8_t images[KSSET_MAX][48];
	size_t nimages;
	char *repo;
	struct ksclient_keystore found[KSCLIENT_DISCOVER_MAX];
	size_t nfound;
	uint8_t list[KSSET_MAX][32];
	size_t n;
	struct ksrpc_policy policy;
	struct event *sigs[KSRPC_SIGS_MAX];
	size_t nsigs;
	unsigned timeout_ms, rediscover_s;
	uint64_t last_discovery;
	int discovered, missed;
};

static void rebuild(struct ksset *k, uint64_t now)
{
	k->n = 0;
	for (size_t i = 0; i < k->nfixed && k->n < KSSET_MAX; i++)
		memcpy(k->list[k->n++], k->fixed[i], 32);
	for (size_t i = 0; i < k->nfound && k->n < KSSET_MAX; i++) {
		int dup = 0;
		if (k->found[i].expires_at && k->found[i].expires_at <= now)
			continue;
		for (size_t j = 0; j < k->n; j++)
			dup |= memcmp(k->list[j], k->found[i].pubkey, 32) == 0;
		if (!dup)
			memcpy(k->list[k->n++], k->found[i].pubkey, 32);
	}
}

static int ks_refresh(void *arg)
{
	struct ksset *k = arg;
	uint64_t now = (uint64_t)time(NULL);
	if (k->nimages && (!k->discovered || k->missed || k->n == 0 || now >= k->last_discovery + k->rediscover_s)) {
		size_t n = 0;
		struct ksclient_keystore tmp[KSCLIENT_DISCOVER_MAX];
		int r = ksclient_discover(k->c, tmp, KSCLIENT_DISCOVER_MAX, &n, k->v, k->allow_dev,
					  (const uint8_t(*)[48])k->images, k->nimages, k->repo, k->timeout_ms);
		k->last_discovery = now;
		if (r == 0) {
			if (n != k->nfound || (n && memcmp(tmp, k->found, n * sizeof tmp[0]) != 0))
				log_info("event=keystores_discovered count=%zu", n);
			if (n)
				memcpy(k->found, tmp, n * sizeof tmp[0]);
			k->nfound = n;
			k->discovered = 1;
			k->missed = 0;
		} else {
			k->missed = 1;
		}
		rebuild(k, now);
		return r;
	}
	rebuild(k, now);
	return 0;
}

static size_t ks_count(void *arg)
{
	return ((struct ksset *)arg)->n;
}

static void ks_name(void *arg, size_t i, char *out, size_t cap)
{
	struct ksset *k = arg;
	char hx[17] = "?";
	if (i < k->n)
		hex_encode(hx, k->list[i], 8);
	snprintf(out, cap, "%s", hx);
}

static int ks_get(void *arg, size_t i, enum ksclient_answer *ans, uint8_t *data, size_t *len, uint64_t *epoch,
		  char *why, size_t whycap)
{
	struct ksset *k = arg;
	if (i >= k->n)
		return APP_EINVAL;
	int r = ksclient_get(k->c, ans, data, len, epoch, why, whycap, k->list[i], k->sigs, k->nsigs, k->timeout_ms);
	if (r == 0 && *ans == KSCLIENT_NO_ANSWER)
		k->missed = 1;
	return r;
}

static int ks_set(void *arg, size_t i, enum ksclient_answer *ans, char *why, size_t whycap, const uint8_t *data,
		  size_t len, uint64_t epoch)
{
	struct ksset *k = arg;
	if (i >= k->n)
		return APP_EINVAL;
	int r = ksclient_set(k->c, ans, why, whycap, k->list[i], data, len, epoch, &k->policy, k->timeout_ms);
	if (r == 0 && *ans == KSCLIENT_NO_ANSWER)
		k->missed = 1;
	return r;
}

static const struct sj_keystores_ops ops = {ks_refresh, ks_count, ks_name, ks_get, ks_set};

const struct sj_keystores_ops *ksset_ops(void)
{
	return &ops;
}

int ksset_new(struct ksset **out, const struct ksset_opts *o)
{
	struct ksset *k = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	if (!o || (!o->npubkeys && !o->nimages) || o->npubkeys > KSSET_MAX || o->nimages > KSSET_MAX ||
	    o->nsigs > KSRPC_SIGS_MAX || !o->nsm || (o->allow_dev && !o->dev_root))
		return APP_EINVAL;
	if (!(k = calloc(1, sizeof *k)))
		return APP_ENOMEM;
	if (o->npubkeys)
		memcpy(k->fixed, o->pubkeys, o->npubkeys * 32);
	k->nfixed = o->npubkeys;
	if (o->nimages)
		memcpy(k->images, o->images, o->nimages * 48);
	k->nimages = o->nimages;
	k->policy = o->policy;
	k->allow_dev = o->allow_dev;
	k->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	k->rediscover_s = o->rediscover_s ? o->rediscover_s : 60;
	if (o->repo && !(k->repo = strdup(o->repo))) {
		r = APP_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < o->nsigs; i++) {
		char *j = NULL;
		size_t jl = 0;
		if ((r = event_to_json(&j, &jl, o->sigs[i])) != 0)
			goto out;
		r = event_parse(&k->sigs[i], NULL, j, jl);
		free(j);
		if (r)
			goto out;
		k->nsigs++;
	}
	if ((r = nsm_open_spec(&k->nsm, o->nsm)) != 0) {
		log_error("event=keystore_nsm_open err=%s", app_errname(r));
		goto out;
	}
	if ((r = attest_verifier_new(&k->v)) != 0 ||
	    (o->allow_dev && (r = attest_verifier_add_dev_root_file(k->v, o->dev_root)) != 0))
		goto out;
	struct ksclient_opts co = {o->relays, o->nrelays, o->ca_file, k->nsm, k->timeout_ms, NULL};
	if ((r = ksclient_new(&k->c, &co)) != 0)
		goto out;
	rebuild(k, (uint64_t)time(NULL));
	*out = k;
	k = NULL;
	r = 0;
out:
	ksset_free(k);
	return r;
}

void ksset_free(struct ksset *k)
{
	if (!k)
		return;
	ksclient_free(k->c);
	attest_verifier_free(k->v);
	nsm_close(k->nsm);
	for (size_t i = 0; i < k->nsigs; i++)
		event_free(k->sigs[i]);
	free(k->repo);
	free(k);
}
