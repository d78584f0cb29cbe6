/*
 * appliance discover: finds instances (13793 announcements offering kind
 * 5720) on relays, checks each against the client's trust policy and prints
 * a table (or JSON). Also the client plumbing shared with submit and job
 * (client.h): options, relay pool, fetching, the trust policy.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/cli/client.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"

#define DISCOVER_MAX 256           /* announcements examined */
#define DISCOVER_TIMEOUT_DEFAULT 10 /* seconds */
#define DISCOVER_INSTANCES_MAX 64  /* --instance filters */
#define NAME_COLS 20               /* table column widths */
#define VERSION_COLS 9

const char cli_client_help[] =
	"  --relay URL          a relay (ws:// or wss://); repeat for several (at least one)\n"
	"  --trust NPUB         a maintainer key (npub or hex); repeatable. Then an instance is\n"
	"                       accepted only when at least K of these maintainers signed a release\n"
	"                       (kind 63794, in the announcement or on the relays) naming its\n"
	"                       attested PCR0/1/2, and none of them revoked it (kind 63798)\n"
	"  --threshold K        how many trusted release signatures (default 1)\n"
	"  --allow-dev          also accept development instances (attestations from a development\n"
	"                       root given with --root); debug-mode enclaves are always refused\n"
	"  --root PEM           a development root certificate (appliance-parent's\n"
	"                       STATE/dev-ca/root.pem); repeatable\n"
	"  --ca-file FILE       also trust these CA certificates for wss:// and https:// (tests)\n"
	"  --timeout SECONDS    give up after this long\n"
	"  --json               machine-readable output on stdout\n"
	"  --verbose            log relay connections on stderr\n";

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

void cli_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void)
{
	return g_stop != 0;
}

uint64_t cli_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cli_parse_pubkey(uint8_t out[32], const char *s)
{
	size_t n = strlen(s);
	if (n == 64)
		return hex_decode(out, 32, s, n, 0) == 0 && keys_pubkey_valid(out) == 0 ? 0 : -1;
	return nip19_decode_bare(out, "npub", s, n) == 0 ? 0 : -1;
}

void cli_npub_short(char *buf, size_t cap, const uint8_t pub[32])
{
	char *npub = NULL;
	if (nip19_encode_bare(&npub, "npub", pub) != 0 || strlen(npub) < 20) {
		snprintf(buf, cap, "?");
	} else {
		size_t n = strlen(npub);
		snprintf(buf, cap, "%.11s..%s", npub, npub + n - 4);
	}
	free(npub);
}

void cli_client_init(struct cli_client *c, const char *cmd)
{
	memset(c, 0, sizeof *c);
	c->cmd = cmd;
}

int cli_client_opt(struct cli_client *c, int opt, const char *arg)
{
	unsigned long long v;
	switch (opt) {
	case CLI_O_RELAY:
		if (c->nurls == RELAY_POOL_MAX_RELAYS)
			return cli_error(CLI_USAGE, c->cmd, "at most %d --relay", RELAY_POOL_MAX_RELAYS);
		c->urls[c->nurls++] = arg;
		return 0;
	case CLI_O_CA_FILE:
		c->ca_file = arg;
		return 0;
	case CLI_O_TRUST:
		if (c->ntrusted == CLI_TRUST_MAX || cli_parse_pubkey(c->trusted[c->ntrusted], arg) != 0)
			return cli_error(CLI_USAGE, c->cmd, "--trust takes an npub or 64 hex digits (at most %d keys)",
					 CLI_TRUST_MAX);
		for (size_t i = 0; i < c->ntrusted; i++)
			if (!memcmp(c->trusted[i], c->trusted[c->ntrusted], 32))
				return 0; /* the same key twice counts once */
		c->ntrusted++;
		return 0;
	case CLI_O_THRESHOLD:
		if (cli_parse_u64(&v, arg, CLI_TRUST_MAX) != 0 || v == 0)
			return cli_error(CLI_USAGE, c->cmd, "--threshold takes 1..%d", CLI_TRUST_MAX);
		c->threshold = v;
		return 0;
	case CLI_O_ALLOW_DEV:
		c->allow_dev = 1;
		return 0;
	case CLI_O_ROOT:
		if (c->nroots == CLI_ROOTS_MAX)
			return cli_error(CLI_USAGE, c->cmd, "at most %d --root", CLI_ROOTS_MAX);
		c->roots[c->nroots++] = arg;
		return 0;
	case CLI_O_TIMEOUT:
		if (cli_parse_u64(&v, arg, 86400ULL * 7) != 0 || v == 0)
			return cli_error(CLI_USAGE, c->cmd, "--timeout takes 1..604800 seconds");
		c->timeout_s = v;
		return 0;
	case CLI_O_JSON:
		c->json = 1;
		return 0;
	case CLI_O_VERBOSE:
		c->verbose++;
		return 0;
	}
	return -1;
}

/* on_relay_state: says once per relay that it cannot be reached (and when it comes back). */
static void on_relay_state(void *user, size_t relay, enum relay_state state, const char *detail)
{
	struct cli_client *c = user;
	static unsigned char failed[RELAY_POOL_MAX_RELAYS];
	if (relay >= RELAY_POOL_MAX_RELAYS)
		return;
	struct relay_status st;
	if (relay_pool_relay_status(c->pool, relay, &st) != 0)
		return;
	if (state == RELAY_BACKOFF && !failed[relay]) {
		failed[relay] = 1;
		fprintf(stderr, "appliance %s: relay %s: cannot connect or connection lost: %s\n", c->cmd, st.url,
			detail ? detail : "?");
	} else if (state == RELAY_CONNECTED) {
		if (failed[relay] || c->verbose)
			fprintf(stderr, "appliance %s: relay %s: connected\n", c->cmd, st.url);
		failed[relay] = 0;
	}
}

int cli_client_start(struct cli_client *c)
{
	int r;
	if (c->nurls == 0)
		return cli_error(CLI_USAGE, c->cmd, "at least one --relay URL is needed");
	if (c->threshold && !c->ntrusted)
		return cli_error(CLI_USAGE, c->cmd, "--threshold needs --trust");
	if (c->threshold > c->ntrusted && c->ntrusted)
		return cli_error(CLI_USAGE, c->cmd, "--threshold %llu exceeds the %zu --trust keys", c->threshold,
				 c->ntrusted);
	if (c->nroots && !c->allow_dev)
		fprintf(stderr, "appliance %s: note: --root without --allow-dev: development instances stay refused\n",
			c->cmd);
	if (c->ntrusted && !c->threshold)
		c->threshold = 1;
	log_set_level(c->verbose >= 2 ? LOG_DEBUG : c->verbose ? LOG_INFO : LOG_ERROR);
	if ((r = attest_verifier_new(&c->v)) != 0)
		return cli_error(CLI_USAGE, c->cmd, "cannot set up the attestation verifier: %s", app_strerror(r));
	for (size_t i = 0; i < c->nroots; i++)
		if ((r = attest_verifier_add_dev_root_file(c->v, c->roots[i])) != 0 && r != APP_EEXIST)
			return cli_error(CLI_USAGE, c->cmd, "--root %s: %s", c->roots[i],
					 r == APP_EPARSE ? "not a P-384 CA certificate (PEM or DER)" : app_strerror(r));
	struct relay_pool_opts o;
	relay_pool_opts_default(&o);
	o.ca_file = c->ca_file;
	o.connect_timeout_ms = 5000;
	o.backoff_min_ms = 250;
	o.backoff_max_ms = 3000;
	o.on_relay = on_relay_state;
	o.user = c;
	if ((r = relay_pool_new(&c->pool, &o)) != 0)
		return cli_error(CLI_USAGE, c->cmd, "cannot start the relay pool: %s",
				 r == APP_ENOENT ? "--ca-file is unreadable" : app_strerror(r));
	for (size_t i = 0; i < c->nurls; i++) {
		r = relay_pool_add_relay(c->pool, NULL, c->urls[i], NULL);
		if (r != 0 && r != APP_EEXIST)
			return cli_error(CLI_USAGE, c->cmd, "bad relay URL '%s' (ws:// or wss://)", c->urls[i]);
	}
	cli_install_signals();
	return 0;
}

void cli_client_free(struct cli_client *c)
{
	relay_pool_free(c->pool);
	c->pool = NULL;
	attest_verifier_free(c->v);
	c->v = NULL;
	for (size_t i = 0; i < c->nreleases; i++)
		event_free(c->releases[i]);
	for (size_t i = 0; i < c->nrevocations; i++)
		event_free(c->revocations[i]);
	c->nreleases = c->nrevocations = 0;
}

struct fetch_state {
	struct cli_client *c;
	void (*cb)(void *, struct event **);
	void *arg;
	int all;
	size_t answered;
	unsigned char done[RELAY_POOL_MAX_RELAYS];
};

static void fetch_on_event(void *user, uint64_t sub, size_t relay, struct event **ev)
{
	(void)sub;
	(void)relay;
	struct fetch_state *st = user;
	st->cb(st->arg, ev);
}

static void fetch_on_eose(void *user, uint64_t sub, size_t relay)
{
	(void)sub;
	struct fetch_state *st = user;
	if (relay == RELAY_ALL) {
		st->all = 1;
	} else if (relay < RELAY_POOL_MAX_RELAYS && !st->done[relay]) {
		st->done[relay] = 1;
		st->answered++;
	}
}

static void fetch_on_closed(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix, const char *message)
{
	(void)sub;
	(void)prefix;
	struct fetch_state *st = user;
	struct relay_status rs;
	if (relay_pool_relay_status(st->c->pool, relay, &rs) == 0)
		fprintf(stderr, "appliance %s: relay %s closed the subscription: %s\n", st->c->cmd, rs.url, message);
}

int cli_fetch(struct cli_client *c, const struct filter *const *filters, size_t n, unsigned timeout_ms,
	      void (*on_event)(void *arg, struct event **ev), void *arg)
{
	struct fetch_state st;
	memset(&st, 0, sizeof st);
	st.c = c;
	st.cb = on_event;
	st.arg = arg;
	struct relay_sub_cbs cbs = {fetch_on_event, fetch_on_eose, fetch_on_closed};
	uint64_t sub;
	int r = relay_sub_open(c->pool, &sub, filters, n, NULL, 0, &cbs, &st);
	if (r)
		return r;
	uint64_t deadline = cli_mono_ms() + timeout_ms;
	while (!st.all && !g_stop && cli_mono_ms() < deadline)
		if ((r = relay_pool_service(c->pool, 100)) != 0)
			break;
	if (relay_sub_close(c->pool, sub) != 0) {
		/* already gone (the pool closed it): nothing to do */
	}
	if (relay_pool_service(c->pool, 0) != 0) {
		/* sends the CLOSE; a stopped pool has nothing left to send */
	}
	if (g_stop)
		return APP_ECANCELED;
	if (!st.all)
		return APP_ETIMEOUT;
	return st.answered ? 0 : APP_ECONN;
}

/* ---- releases from the relays ---- */

static void releases_on_event(void *arg, struct event **ev)
{
	struct cli_client *c = arg;
	struct event *e = *ev;
	if (e->kind == NEC_KIND_RELEASE) {
		struct nec_release rel;
		if (c->nreleases < CLI_RELEASES_MAX && nec_release_verify(&rel, NULL, e) == 0) {
			c->releases[c->nreleases++] = e;
			*ev = NULL;
		}
	} else if (e->kind == KSRPC_KIND_REVOCATION) {
		struct ksrpc_revocation rv;
		if (c->nrevocations < CLI_RELEASES_MAX && ksrpc_revocation_verify(&rv, NULL, e) == 0) {
			c->revocations[c->nrevocations++] = e;
			*ev = NULL;
		}
	}
}

int cli_client_load_releases(struct cli_client *c)
{
	struct filter *f = NULL;
	int r;
	if (!c->ntrusted)
		return 0;
	if ((r = filter_new(&f)) != 0)
		return r;
	if ((r = filter_add_kind(f, NEC_KIND_RELEASE)) != 0 || (r = filter_add_kind(f, KSRPC_KIND_REVOCATION)) != 0)
		goto out;
	for (size_t i = 0; i < c->ntrusted; i++)
		if ((r = filter_add_author(f, c->trusted[i])) != 0)
			goto out;
	const struct filter *fs[1] = {f};
	unsigned to = (unsigned)((c->timeout_s ? c->timeout_s : DISCOVER_TIMEOUT_DEFAULT) * 1000u);
	r = cli_fetch(c, fs, 1, to, releases_on_event, c);
	if (r == APP_ETIMEOUT)
		r = 0;
out:
	filter_free(f);
	return r;
}

/* ---- the trust policy ---- */

void cli_verdict_clear(struct cli_verdict *v)
{
	attest_doc_free(v->doc);
	memset(v, 0, sizeof *v);
}

static void refuse(struct cli_verdict *out, const char *check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct cli_verdict *out, const char *check, const char *fmt, ...)
{
	va_list ap;
	out->ok = 0;
	snprintf(out->check, sizeof out->check, "%s", check);
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof out->reason, fmt, ap);
	va_end(ap);
}

static int pcrs_equal(const struct attest_doc *doc, const uint8_t pcr[3][ATTEST_PCR_LEN])
{
	int diff = 0;
	for (int i = 0; i < 3; i++)
		diff |= sodium_memcmp(doc->pcrs[i], pcr[i], ATTEST_PCR_LEN);
	return diff == 0;
}

static int is_trusted(const struct cli_client *c, const uint8_t pub[32])
{
	for (size_t i = 0; i < c->ntrusted; i++)
		if (!memcmp(c->trusted[i], pub, 32))
			return 1;
	return 0;
}

/* note_signer: one valid release of this build by pub. */
static void note_signer(const struct cli_client *c, struct cli_verdict *out, const uint8_t pub[32])
{
	for (size_t i = 0; i < out->nsigners; i++)
		if (!memcmp(out->signers[i], pub, 32))
			return;
	if (out->nsigners == CLI_SIGNERS_MAX)
		return;
	memcpy(out->signers[out->nsigners], pub, 32);
	out->signer_trusted[out->nsigners] = (uint8_t)is_trusted(c, pub);
	if (out->signer_trusted[out->nsigners])
		out->nvalid++;
	out->nsigners++;
}

int cli_check_build(struct cli_client *c, const struct attest_doc *doc, int dev, const char *repo,
		    const struct event *ann, struct cli_verdict *out)
{
	struct event *emb[NEC_RELEASES_MAX];
	const struct event *all[NEC_RELEASES_MAX + CLI_RELEASES_MAX];
	size_t nemb = 0, nall = 0;
	int r;
	out->nvalid = out->nsigners = 0;
	if (ann && nec_announcement_releases(emb, NEC_RELEASES_MAX, &nemb, ann) != 0)
		nemb = 0; /* malformed release tags: they count for nothing */
	for (size_t i = 0; i < nemb; i++)
		all[nall++] = emb[i];
	for (size_t i = 0; i < c->nreleases; i++)
		all[nall++] = c->releases[i];
	for (size_t i = 0; i < nall; i++) {
		struct nec_release rel;
		if (nec_release_verify(&rel, NULL, all[i]) != 0 || rel.dev != dev || !repo || strcmp(rel.repo, repo) != 0 ||
		    !pcrs_equal(doc, (const uint8_t(*)[ATTEST_PCR_LEN])rel.pcr))
			continue;
		note_signer(c, out, rel.pubkey);
	}
	for (size_t i = 0; i < c->nrevocations; i++) {
		struct ksrpc_revocation rv;
		if (ksrpc_revocation_verify(&rv, NULL, c->revocations[i]) != 0 || !is_trusted(c, rv.pubkey) || !repo ||
		    strcmp(rv.repo, repo) != 0 || !pcrs_equal(doc, (const uint8_t(*)[ATTEST_PCR_LEN])rv.pcr))
			continue;
		char who[32], p0[2 * ATTEST_PCR_LEN + 1];
		cli_npub_short(who, sizeof who, rv.pubkey);
		hex_encode(p0, doc->pcrs[0], ATTEST_PCR_LEN);
		refuse(out, "revoked", "maintainer %s revoked this build (PCR0 %.16s..)", who, p0);
		r = APP_EREFUSED;
		goto done;
	}
	if (c->ntrusted) {
		size_t valid = 0;
		const char *why = NULL;
		struct nec_release_policy pol = {.trusted = (const uint8_t(*)[32])c->trusted,
						 .ntrusted = c->ntrusted,
						 .threshold = (size_t)c->threshold,
						 .repo = repo,
						 .dev = dev};
		if (!repo) {
			refuse(out, "release", "the announcement names no repository (r tag): no release can match");
			r = APP_EREFUSED;
			goto done;
		}
		r = nec_release_policy_check(&pol, doc, all, nall, &valid, &why);
		if (r != 0) {
			char p0[2 * ATTEST_PCR_LEN + 1];
			hex_encode(p0, doc->pcrs[0], ATTEST_PCR_LEN);
			refuse(out, "release",
			       "no release signature: %zu of the %llu trusted maintainers needed signed this build "
			       "(PCR0 %.16s.., %s, r=%s)",
			       valid, c->threshold, p0, dev ? "dev" : "prod", repo);
			r = APP_EREFUSED;
			goto done;
		}
		out->nvalid = valid;
	}
	out->ok = 1;
	snprintf(out->check, sizeof out->check, "ok");
	out->reason[0] = 0;
	r = 0;
done:
	for (size_t i = 0; i < nemb; i++)
		event_free(emb[i]);
	return r;
}

/* explain: a refusal of nec_*_verify in words a client can act on. */
static void explain(struct cli_client *c, struct cli_verdict *out, int r, const struct attest_result *ares,
		    const char *why, const char *what)
{
	if (ares->err != 0 && ares->check != ATTEST_CHECK_NONE) {
		switch (ares->check) {
		case ATTEST_CHECK_ROOT:
			refuse(out, "root", "the attestation does not chain to AWS Nitro Enclaves Root G1%s",
			       c->allow_dev && c->nroots ? " nor to a --root"
			       : c->allow_dev	       ? " (a development instance? give its root with --root PEM)"
						       : " (a development instance? --allow-dev --root PEM accepts it)");
			return;
		case ATTEST_CHECK_DEV_ROOT:
			refuse(out, "dev", "a development instance (attested by a development root): refused without --allow-dev");
			return;
		case ATTEST_CHECK_DEBUG:
			refuse(out, "debug", "a debug-mode enclave (PCR0 all zero): always refused");
			return;
		case ATTEST_CHECK_FRESHNESS:
		case ATTEST_CHECK_VALIDITY:
			refuse(out, "stale", "the attestation is stale or expired (%s)", ares->reason);
			return;
		default:
			refuse(out, "attestation", "the attestation is invalid (%s: %s)", attest_check_name(ares->check),
			       ares->reason);
			return;
		}
	}
	if (r == APP_EEXPIRED)
		refuse(out, "expired", "the %s has expired (%s)", what, why ? why : "expiration");
	else
		refuse(out, "event", "the %s is invalid: %s (%s)", what, why ? why : app_strerror(r), app_errname(r));
}

int cli_check_attestation(struct cli_client *c, const struct event *att, uint64_t at, struct cli_verdict *out)
{
	struct attest_result ares;
	struct attest_verify_opts o = {.time_mode = at ? ATTEST_TIME_AT : ATTEST_TIME_NOW, .at = at, .allow_dev = c->allow_dev};
	const char *why = NULL;
	memset(out, 0, sizeof *out);
	memset(&ares, 0, sizeof ares);
	int r = nec_attestation_verify(c->v, &why, &ares, &out->doc, att, &o);
	if (r == APP_ENOMEM)
		return r;
	if (r != 0) {
		explain(c, out, r, &ares, why, "attestation event");
		return APP_EREFUSED;
	}
	out->dev = ares.dev;
	out->ok = 1;
	snprintf(out->check, sizeof out->check, "ok");
	return 0;
}

int cli_check_announcement(struct cli_client *c, const struct event *ann, struct cli_verdict *out)
{
	struct attest_result ares;
	struct attest_verify_opts o = {.time_mode = ATTEST_TIME_NOW, .allow_dev = c->allow_dev};
	const char *why = NULL;
	memset(out, 0, sizeof *out);
	memset(&ares, 0, sizeof ares);
	int r = nec_announcement_verify(c->v, &why, &ares, &out->doc, ann, &o);
	if (r == APP_ENOMEM)
		return r;
	if (r != 0) {
		explain(c, out, r, &ares, why, "announcement");
		return APP_EREFUSED;
	}
	out->dev = ares.dev;
	int k = 0;
	size_t pos = 0;
	const struct event_tag *t;
	while ((t = event_tag_find(ann, &pos, "k", 2)) != NULL)
		k |= !strcmp(t->v[1], "5720");
	if (!k) {
		refuse(out, "kind", "the instance does not offer kind 5720 (no [\"k\",\"5720\"] tag)");
		return APP_EREFUSED;
	}
	return cli_check_build(c, out->doc, out->dev, event_tag_value(ann, "r"), ann, out);
}

/* ---- discover ---- */

static const char discover_usage[] =
	"usage: appliance discover --relay URL [--relay URL ...] [--trust NPUB ... [--threshold K]]\n"
	"                          [--allow-dev --root PEM] [--instance NPUB ...] [--json]\n"
	"\n"
	"Finds the instances that offer ML training jobs (kind 13793 announcements with\n"
	"[\"k\",\"5720\"]) on the relays and checks each one: the announcement's signature and\n"
	"expiration, its attestation document (AWS Nitro root, or a development root with\n"
	"--allow-dev; debug-mode enclaves are always refused; public_key = the instance's key),\n"
	"the PCR x tags against the attested PCRs, and with --trust the maintainers' release\n"
	"signatures of the attested build. Prints one line per instance: name, npub, t,\n"
	"PCR0 prefix, version, price, release signers, keystore and the verdict, with the reason\n"
	"for any refusal.\n"
	"Exit status: 0 when at least one instance was accepted, 1 when none was (or none was\n"
	"found), 2 on usage errors or when no relay could be reached.\n"
	"\n"
	"options:\n"
	"  --instance NPUB      only this instance (npub or hex); repeatable\n";

struct found {
	struct event *ev[DISCOVER_MAX];
	size_t n;
	size_t dropped;
};

static void discover_on_event(void *arg, struct event **ev)
{
	struct found *f = arg;
	struct event *e = *ev;
	for (size_t i = 0; i < f->n; i++) {
		if (memcmp(f->ev[i]->pubkey, e->pubkey, 32) != 0)
			continue;
		/* replaceable: the newest wins (ties: the lower id, NIP-01) */
		if (e->created_at > f->ev[i]->created_at ||
		    (e->created_at == f->ev[i]->created_at && memcmp(e->id, f->ev[i]->id, 32) < 0)) {
			event_free(f->ev[i]);
			f->ev[i] = e;
			*ev = NULL;
		}
		return;
	}
	if (f->n == DISCOVER_MAX) {
		f->dropped++;
		return;
	}
	f->ev[f->n++] = e;
	*ev = NULL;
}

/* safe_text: src with anything but printable ASCII replaced by '?', cut to `cols` characters. */
static void safe_text(char *dst, size_t cap, const char *src, size_t cols)
{
	size_t n = 0;
	if (!src)
		src = "-";
	for (const unsigned char *p = (const unsigned char *)src; *p && n + 1 < cap && n < cols; p++)
		dst[n++] = (char)(*p >= 0x20 && *p < 0x7f ? *p : '?');
	if (src[0] && strlen(src) > cols && n >= 2 && n + 1 < cap) {
		dst[n - 2] = '.';
		dst[n - 1] = '.';
	}
	dst[n] = 0;
}

struct row {
	const struct event *ev;
	struct cli_verdict v;
};

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->v.ok != y->v.ok)
		return y->v.ok - x->v.ok;
	const char *nx = event_tag_value(x->ev, "name"), *ny = event_tag_value(y->ev, "name");
	int k = strcmp(nx ? nx : "", ny ? ny : "");
	return k ? k : memcmp(x->ev->pubkey, y->ev->pubkey, 32);
}

static void price_text(char *buf, size_t cap, const struct event *ev)
{
	size_t pos = 0;
	const struct event_tag *t = event_tag_find(ev, &pos, "price", 4);
	if (!t) {
		snprintf(buf, cap, "-");
		return;
	}
	char a[24], b[24], u[16];
	safe_text(a, sizeof a, t->v[1], 20);
	safe_text(b, sizeof b, t->v[2], 20);
	safe_text(u, sizeof u, t->v[3], 12);
	snprintf(buf, cap, "%s+%s/%s", a, b, u);
}

static void releases_text(char *buf, size_t cap, const struct cli_client *c, const struct cli_verdict *v)
{
	if (!v->doc) {
		snprintf(buf, cap, "-");
		return;
	}
	if (c->ntrusted) {
		size_t untrusted = v->nsigners - v->nvalid;
		snprintf(buf, cap, "%zu/%llu trusted%s", v->nvalid, c->threshold, untrusted ? " +others" : "");
		return;
	}
	if (!v->nsigners) {
		snprintf(buf, cap, "none");
		return;
	}
	char who[24];
	cli_npub_short(who, sizeof who, v->signers[0]);
	if (v->nsigners == 1)
		snprintf(buf, cap, "%s", who);
	else
		snprintf(buf, cap, "%s +%zu", who, v->nsigners - 1);
}

static void json_row(struct jw *w, const struct cli_client *c, const struct row *x)
{
	const struct event *ev = x->ev;
	char *npub = NULL;
	jw_char(w, '{');
	jw_key(w, 0, "pubkey");
	jw_hex(w, ev->pubkey, 32);
	jw_key(w, 1, "npub");
	if (nip19_encode_bare(&npub, "npub", ev->pubkey) == 0)
		jw_cstr(w, npub);
	else
		jw_raw(w, "null", 4);
	free(npub);
	static const char *const tags[] = {"name", "t", "v", "r", "relay", "keystore", "expiration", "o"};
	static const char *const keys[] = {"name", "t", "version", "repo", "relay", "keystore", "expiration", "open"};
	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
		const char *s = event_tag_value(ev, tags[i]);
		jw_key(w, 1, keys[i]);
		if (s)
			jw_cstr(w, s);
		else
			jw_raw(w, "null", 4);
	}
	size_t pos = 0;
	const struct event_tag *t = event_tag_find(ev, &pos, "price", 4);
	jw_key(w, 1, "price");
	if (t) {
		jw_char(w, '{');
		jw_key(w, 0, "base_msat");
		jw_cstr(w, t->v[1]);
		jw_key(w, 1, "msat_per_unit");
		jw_cstr(w, t->v[2]);
		jw_key(w, 1, "unit");
		jw_cstr(w, t->v[3]);
		jw_char(w, '}');
	} else {
		jw_raw(w, "null", 4);
	}
	for (int i = 0; i < 3; i++) {
		char k[8];
		snprintf(k, sizeof k, "pcr%d", i);
		jw_key(w, 1, k);
		if (x->v.doc)
			jw_hex(w, x->v.doc->pcrs[i], ATTEST_PCR_LEN);
		else
			jw_raw(w, "null", 4);
	}
	jw_key(w, 1, "dev");
	jw_raw(w, x->v.dev ? "true" : "false", x->v.dev ? 4 : 5);
	jw_key(w, 1, "releases");
	jw_char(w, '{');
	jw_key(w, 0, "trusted_valid");
	jw_u64(w, x->v.nvalid);
	jw_key(w, 1, "threshold");
	jw_u64(w, c->threshold);
	jw_key(w, 1, "signers");
	jw_char(w, '[');
	for (size_t i = 0; i < x->v.nsigners; i++) {
		if (i)
			jw_char(w, ',');
		jw_char(w, '{');
		jw_key(w, 0, "pubkey");
		jw_hex(w, x->v.signers[i], 32);
		jw_key(w, 1, "trusted");
		jw_raw(w, x->v.signer_trusted[i] ? "true" : "false", x->v.signer_trusted[i] ? 4 : 5);
		jw_char(w, '}');
	}
	jw_raw(w, "]}", 2);
	jw_key(w, 1, "verdict");
	jw_cstr(w, x->v.ok ? "accepted" : "refused");
	jw_key(w, 1, "check");
	jw_cstr(w, x->v.check);
	jw_key(w, 1, "reason");
	jw_cstr(w, x->v.reason);
	jw_char(w, '}');
}

int cmd_discover(int argc, char **argv)
{
	static const struct option opts[] = {CLI_CLIENT_LONGOPTS,
					     {"instance", required_argument, 0, 'i'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	struct cli_client c;
	struct found *f = NULL;
	struct row *rows = NULL;
	struct filter *flt = NULL;
	uint8_t inst[DISCOVER_INSTANCES_MAX][32];
	size_t ninst = 0, accepted = 0;
	int opt, rc = CLI_USAGE, r;
	cli_client_init(&c, "discover");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(discover_usage, stdout);
			fputs(cli_client_help, stdout);
			return CLI_OK;
		}
		if (opt == 'i') {
			if (ninst == DISCOVER_INSTANCES_MAX || cli_parse_pubkey(inst[ninst], optarg) != 0)
				return cli_error(CLI_USAGE, "discover", "--instance takes an npub or 64 hex digits");
			ninst++;
			continue;
		}
		int h = cli_client_opt(&c, opt, optarg);
		if (h == -1) {
			fputs(discover_usage, stderr);
			return CLI_USAGE;
		}
		if (h)
			return h;
	}
	if (optind != argc)
		return cli_error(CLI_USAGE, "discover", "unexpected argument '%s' (see --help)", argv[optind]);
	if ((rc = cli_client_start(&c)) != 0)
		goto out;
	rc = CLI_USAGE;
	if (!(f = calloc(1, sizeof *f))) {
		rc = cli_error(CLI_USAGE, "discover", "out of memory");
		goto out;
	}
	if ((r = filter_new(&flt)) != 0 || (r = filter_add_kind(flt, NEC_KIND_ANNOUNCEMENT)) != 0 ||
	    (r = filter_add_tag_value(flt, 'k', "5720")) != 0)
		goto oom;
	for (size_t i = 0; i < ninst; i++)
		if ((r = filter_add_author(flt, inst[i])) != 0)
			goto oom;
	const struct filter *fs[1] = {flt};
	unsigned to = (unsigned)((c.timeout_s ? c.timeout_s : DISCOVER_TIMEOUT_DEFAULT) * 1000u);
	r = cli_fetch(&c, fs, 1, to, discover_on_event, f);
	if (r == APP_ECONN) {
		rc = cli_error(CLI_USAGE, "discover", "no relay could be reached");
		goto out;
	}
	if (r == APP_ECANCELED) {
		rc = cli_error(CLI_USAGE, "discover", "interrupted");
		goto out;
	}
	if (r == APP_ETIMEOUT)
		fprintf(stderr, "appliance discover: not every relay answered within %u s; showing what arrived\n",
			to / 1000);
	else if (r != 0)
		goto oom;
	if ((r = cli_client_load_releases(&c)) != 0 && r != APP_ECONN && r != APP_ECANCELED)
		goto oom;
	if (f->dropped)
		fprintf(stderr, "appliance discover: more than %d instances; %zu not examined\n", DISCOVER_MAX, f->dropped);
	if (f->n && !(rows = calloc(f->n, sizeof *rows)))
		goto oom;
	for (size_t i = 0; i < f->n; i++) {
		rows[i].ev = f->ev[i];
		r = cli_check_announcement(&c, f->ev[i], &rows[i].v);
		if (r == APP_ENOMEM)
			goto oom;
		accepted += rows[i].v.ok != 0;
	}
	if (f->n)
		qsort(rows, f->n, sizeof *rows, row_cmp);
	if (c.json) {
		struct jw w;
		char *s = NULL;
		size_t sl = 0;
		jw_init(&w, 0);
		jw_raw(&w, "{\"instances\":[", 14);
		for (size_t i = 0; i < f->n; i++) {
			if (i)
				jw_char(&w, ',');
			json_row(&w, &c, &rows[i]);
		}
		jw_raw(&w, "],\"accepted\":", 13);
		jw_u64(&w, accepted);
		jw_key(&w, 1, "refused");
		jw_u64(&w, f->n - accepted);
		jw_key(&w, 1, "trusted_maintainers");
		jw_u64(&w, c.ntrusted);
		jw_char(&w, '}');
		if (jw_finish(&w, &s, &sl) != 0)
			goto oom;
		printf("%s\n", s);
		free(s);
	} else if (f->n == 0) {
		printf("no instance offering kind 5720 found on %zu relay%s\n", c.nurls, c.nurls == 1 ? "" : "s");
	} else {
		printf("%-*s %-17s %-4s %-14s %-*s %-22s %-17s %-11s %s\n", NAME_COLS, "NAME", "NPUB", "T", "PCR0",
		       VERSION_COLS, "VERSION", "PRICE (msat)", "RELEASES", "KEYSTORE", "VERDICT");
		for (size_t i = 0; i < f->n; i++) {
			const struct row *x = &rows[i];
			char name[NAME_COLS + 1], npub[32], t[8], pcr0[16], ver[VERSION_COLS + 1], price[64], rel[48],
				ks[16], reason[CLI_REASON_MAX];
			char rel2[64];
			safe_text(name, sizeof name, event_tag_value(x->ev, "name"), NAME_COLS);
			cli_npub_short(npub, sizeof npub, x->ev->pubkey);
			safe_text(t, sizeof t, event_tag_value(x->ev, "t"), 4);
			if (x->v.doc) {
				char hx[2 * ATTEST_PCR_LEN + 1];
				hex_encode(hx, x->v.doc->pcrs[0], ATTEST_PCR_LEN);
				snprintf(pcr0, sizeof pcr0, "%.12s..", hx);
			} else {
				snprintf(pcr0, sizeof pcr0, "-");
			}
			safe_text(ver, sizeof ver, event_tag_value(x->ev, "v"), VERSION_COLS);
			price_text(price, sizeof price, x->ev);
			releases_text(rel2, sizeof rel2, &c, &x->v);
			snprintf(rel, sizeof rel, "%.47s", rel2);
			const char *kst = event_tag_value(x->ev, "keystore");
			if (kst && strlen(kst) == 64 && hex_is_lower(kst, 64))
				snprintf(ks, sizeof ks, "%.8s..", kst);
			else
				snprintf(ks, sizeof ks, "%s", kst ? "?" : "-");
			safe_text(reason, sizeof reason, x->v.reason, sizeof reason - 1);
			printf("%-*s %-17s %-4s %-14s %-*s %-22s %-17s %-11s %s%s%s\n", NAME_COLS, name, npub, t, pcr0,
			       VERSION_COLS, ver, price, rel, ks, x->v.ok ? "accepted" : "REFUSED", x->v.ok ? "" : ": ",
			       reason);
		}
		printf("\n%zu instance%s: %zu accepted, %zu refused.%s\n", f->n, f->n == 1 ? "" : "s", accepted,
		       f->n - accepted,
		       c.ntrusted ? ""
				  : " No --trust given: the builds were not checked against maintainers' release"
				    " signatures.");
	}
	rc = accepted ? CLI_OK : CLI_REFUSED;
	goto out;
oom:
	rc = cli_error(CLI_USAGE, "discover", "%s", app_strerror(r ? r : APP_ENOMEM));
out:
	if (rows)
		for (size_t i = 0; f && i < f->n; i++)
			cli_verdict_clear(&rows[i].v);
	free(rows);
	if (f)
		for (size_t i = 0; i < f->n; i++)
			event_free(f->ev[i]);
	free(f);
	filter_free(flt);
	cli_client_free(&c);
	return rc;
}
