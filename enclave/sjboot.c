/*
 * sjboot.c: the sealed journal from the instance configuration (sjboot.h).
 */
#include "enclave/sjboot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "enclave/announce.h"
#include "enclave/econfig.h"
#include "enclave/releases.h"
#include "enclave/runtime/journal.h"
#include "enclave/runtime/ksset.h"
#include "enclave/runtime/sjournal.h"
#include "relay-client/relayurl.h"

static struct parentlink *g_link;

struct sjboot {
	struct ksset *ks;
	struct sj_store *store;
	struct sjournal *sj; /* owned by the journal */
};

void sjboot_set_parent_link(struct parentlink *pl)
{
	g_link = pl;
}

int sjboot_enabled(const struct econfig *cfg)
{
	return cfg->ks_keystore.n > 0 || cfg->ks_image.n > 0;
}

static int pubkey_of(uint8_t out[32], const char *s)
{
	size_t l = strlen(s);
	if (hex_decode(out, 32, s, l, 1) != 0 && nip19_decode_bare(out, "npub", s, l) != 0)
		return APP_EINVAL;
	return keys_pubkey_valid(out) == 0 ? 0 : APP_EINVAL;
}

int sjboot_validate(const struct econfig *c, char *err, size_t errcap)
{
	uint8_t pk[32], p0[48];
	int cmp;
#define BAD(...)                                         \
	do {                                             \
		if (err)                                 \
			snprintf(err, errcap, __VA_ARGS__); \
		return APP_EINVAL;                       \
	} while (0)
	if (c->ks_keystore.n > KSSET_MAX || c->ks_image.n > KSSET_MAX)
		BAD("[keystore] keystore/image: at most %d", KSSET_MAX);
	for (size_t i = 0; i < c->ks_keystore.n; i++)
		if (pubkey_of(pk, c->ks_keystore.v[i]) != 0)
			BAD("[keystore] keystore: '%.80s' is not a pubkey (64 hex or npub)", c->ks_keystore.v[i]);
	for (size_t i = 0; i < c->ks_image.n; i++)
		if (hex_decode(p0, 48, c->ks_image.v[i], strlen(c->ks_image.v[i]), 1) != 0)
			BAD("[keystore] image: a PCR0 is 96 lowercase hex digits");
	if (c->ks_relay.n > KSCLIENT_RELAYS_MAX)
		BAD("[keystore] relay: at most %d", KSCLIENT_RELAYS_MAX);
	for (size_t i = 0; i < c->ks_relay.n; i++) {
		struct relayurl u;
		if (relayurl_parse(&u, NULL, c->ks_relay.v[i]) != 0)
			BAD("[keystore] relay: '%.80s' is not a ws:// or wss:// URL", c->ks_relay.v[i]);
	}
	if (!c->ks_relay.n && c->relay.n > KSCLIENT_RELAYS_MAX)
		BAD("[keystore] relay: set it ([relays] has more than %d)", KSCLIENT_RELAYS_MAX);
	if (c->ks_allow_dev != (c->ks_dev_root != NULL))
		BAD("[keystore] dev_root: required with allow_dev, and only then");
	if (c->ks_store && strcmp(c->ks_store, "parent") != 0 && (strncmp(c->ks_store, "dir:", 4) != 0 || !c->ks_store[4]))
		BAD("[keystore] store: \"parent\" or \"dir:PATH\"");
	if (c->ks_maintainer.n > KSRPC_MAINTAINERS_MAX)
		BAD("[keystore] maintainer: at most %d", KSRPC_MAINTAINERS_MAX);
	for (size_t i = 0; i < c->ks_maintainer.n; i++)
		if (pubkey_of(pk, c->ks_maintainer.v[i]) != 0)
			BAD("[keystore] maintainer: '%.80s' is not a pubkey (64 hex or npub)", c->ks_maintainer.v[i]);
	if (c->ks_threshold > c->ks_maintainer.n)
		BAD("[keystore] threshold: %u is above the number of maintainers (%zu)", c->ks_threshold, c->ks_maintainer.n);
	const char *version = c->ks_version ? c->ks_version : c->version;
	if (c->ks_maintainer.n && version && nec_version_cmp(version, version, &cmp) != 0)
		BAD("[keystore] version: dotted numbers like 1.2.3");
	const char *repo = c->ks_repo ? c->ks_repo : c->repo;
	if (c->ks_maintainer.n && (!repo || strlen(repo) > NEC_REPO_MAX))
		BAD("[keystore] repo: required with maintainers (at most %d bytes)", NEC_REPO_MAX);
	if (c->ks_type && strcmp(c->ks_type, "prod") != 0 && strcmp(c->ks_type, "dev") != 0)
		BAD("[keystore] type: prod or dev");
#undef BAD
	return 0;
}

int sjboot_open(struct journal **j, struct sjboot **out, const struct econfig *cfg, int (*should_stop)(void *),
		void *stop_arg, char *err, size_t errcap)
{
	struct sjboot *b = NULL;
	struct event *rel[NEC_RELEASES_MAX] = {0};
	size_t nrel = 0;
	uint8_t(*pubkeys)[32] = NULL;
	uint8_t(*images)[48] = NULL;
	struct sjournal *sj = NULL;
	int r = APP_ENOMEM;
	*j = NULL;
	*out = NULL;
	if ((r = sjboot_validate(cfg, err, errcap)) != 0)
		return r;
	if (!(b = calloc(1, sizeof *b)))
		return APP_ENOMEM;
	if ((cfg->ks_keystore.n && !(pubkeys = calloc(cfg->ks_keystore.n, sizeof *pubkeys))) ||
	    (cfg->ks_image.n && !(images = calloc(cfg->ks_image.n, sizeof *images))))
		goto out;
	for (size_t i = 0; i < cfg->ks_keystore.n; i++)
		if ((r = pubkey_of(pubkeys[i], cfg->ks_keystore.v[i])) != 0)
			goto out;
	for (size_t i = 0; i < cfg->ks_image.n; i++)
		if ((r = hex_decode(images[i], 48, cfg->ks_image.v[i], 96, 1)) != 0)
			goto out;
	if ((r = announce_load_releases(rel, NEC_RELEASES_MAX, &nrel, cfg, err, errcap)) != 0)
		goto out;
	/* the measured release_file cannot sign its own image: the upgrade's signatures come from the relays */
	if ((r = releases_fetch(rel, NEC_RELEASES_MAX, &nrel, cfg, cfg->ks_timeout_ms, should_stop, stop_arg)) != 0)
		log_warn("event=releases_fetch err=%s reason=\"continuing with the release_file signatures\"",
			 app_errname(r));
	r = APP_EINTERNAL;
	struct ksset_opts ko;
	memset(&ko, 0, sizeof ko);
	ko.relays = (const char *const *)(cfg->ks_relay.n ? cfg->ks_relay.v : cfg->relay.v);
	ko.nrelays = cfg->ks_relay.n ? cfg->ks_relay.n : cfg->relay.n;
	ko.ca_file = cfg->ca_file;
	ko.nsm = cfg->nsm;
	ko.pubkeys = (const uint8_t(*)[32])pubkeys;
	ko.npubkeys = cfg->ks_keystore.n;
	ko.images = (const uint8_t(*)[48])images;
	ko.nimages = cfg->ks_image.n;
	ko.allow_dev = cfg->ks_allow_dev;
	ko.dev_root = cfg->ks_dev_root;
	ko.timeout_ms = cfg->ks_timeout_ms;
	ko.sigs = rel;
	ko.nsigs = nrel > KSRPC_SIGS_MAX ? KSRPC_SIGS_MAX : nrel;
	struct ksrpc_policy *p = &ko.policy;
	p->present = 1;
	p->t = !cfg->ks_type ? KSRPC_T_DEFAULT : strcmp(cfg->ks_type, "dev") == 0 ? KSRPC_T_DEV : KSRPC_T_PROD;
	p->bind_host = cfg->ks_bind_host;
	for (size_t i = 0; i < cfg->ks_maintainer.n; i++)
		if ((r = pubkey_of(p->maintainers[i], cfg->ks_maintainer.v[i])) != 0)
			goto out;
	p->nmaintainers = cfg->ks_maintainer.n;
	p->threshold = cfg->ks_threshold ? cfg->ks_threshold : p->nmaintainers;
	if (p->nmaintainers) {
		snprintf(p->repo, sizeof p->repo, "%s", cfg->ks_repo ? cfg->ks_repo : cfg->repo);
		snprintf(p->version, sizeof p->version, "%s", cfg->ks_version ? cfg->ks_version : cfg->version);
	}
	if ((r = ksset_new(&b->ks, &ko)) != 0) {
		snprintf(err, errcap, "[keystore]: cannot start the keystore client: %s", app_strerror(r));
		goto out;
	}
	if (!cfg->ks_store || strcmp(cfg->ks_store, "parent") == 0) {
		if (!g_link) {
			r = APP_EINVAL;
			snprintf(err, errcap, "[keystore] store = parent, but there is no parent link (use dir:PATH)");
			goto out;
		}
		r = sj_store_parent_open(&b->store, g_link, 30000);
	} else {
		r = sj_store_dir_open(&b->store, cfg->ks_store + 4);
	}
	if (r) {
		snprintf(err, errcap, "[keystore] store: cannot open it: %s", app_strerror(r));
		goto out;
	}
	struct sjournal_opts so;
	memset(&so, 0, sizeof so);
	so.store = b->store;
	so.ks = ksset_ops();
	so.ks_arg = b->ks;
	so.start_timeout_s = cfg->ks_start_timeout;
	so.checkpoint_interval_s = cfg->ks_checkpoint_interval;
	so.should_stop = should_stop;
	so.stop_arg = stop_arg;
	if ((r = sjournal_open(&sj, NULL, err, errcap, &so)) != 0)
		goto out;
	if ((r = journal_open(j, sjournal_backend(), sj)) != 0) {
		sjournal_free(sj);
		goto out;
	}
	b->sj = sj;
	*out = b;
	b = NULL;
	r = 0;
out:
	for (size_t i = 0; i < nrel; i++)
		event_free(rel[i]);
	free(pubkeys);
	free(images);
	sjboot_free(b);
	return r;
}

int sjboot_start(struct sjboot *b)
{
	return sjournal_start(b->sj);
}

void sjboot_free(struct sjboot *b)
{
	if (!b)
		return;
	ksset_free(b->ks);
	sj_store_close(b->store);
	free(b);
}
