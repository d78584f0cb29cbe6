/*
 * kscore.c: keystore state and request handling (kscore.h).
 */
#include "keystore/kscore.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/attest.h"
#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/log.h"
#include "appliance/nec.h"

#define ENTRY_DOMAIN "appliance-keystore-entry-v1"
#define RESULT_MAX 4096 /* bytes of a result JSON (data is at most 1024 bytes, escaped <= 6x) */

struct entry {
	int used;
	uint8_t id[32];
	uint8_t pcr[3][ATTEST_PCR_LEN];
	uint8_t pcr4[ATTEST_PCR_LEN];
	int bound;
	int dev_root;
	int dev_t; /* the entry's release type: 1 dev, 0 prod */
	char repo[NEC_REPO_MAX + 1];
	uint8_t maint[KSRPC_MAINTAINERS_MAX][32];
	size_t nmaint, threshold;
	char version[NEC_VERSION_MAX + 1];
	uint64_t epoch, created_at, updated_at, expires_at;
	uint8_t creator[32];
	size_t data_len;
};

/* A revocation, compact: who, which repository, which build. */
struct revocation {
	uint8_t pubkey[32];
	uint8_t repo_hash[32];
	uint8_t pcr_hash[32];
};

struct kscore {
	struct kscore_config cfg;
	uint8_t trusted[KSCORE_TRUSTED_MAX][32];
	struct attest_verifier *v;
	struct entry *entries;
	uint8_t *arena; /* sodium_malloc: max_entries * KSRPC_DATA_MAX */
	struct revocation *revs;
	size_t nrevs;
	struct kscore_stats st;
};

void kscore_config_default(struct kscore_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->name = "keystore";
	cfg->version = "0.1.0";
	cfg->attestation_max_age = ATTEST_MAX_AGE_DEFAULT;
	cfg->ttl = 72 * 3600;
	cfg->max_entries = 4096;
	cfg->max_per_pcrs = 16;
	cfg->max_per_pubkey = 4;
	cfg->max_revocations = 4096;
}

int kscore_new(struct kscore **out, const struct kscore_config *cfg, struct attest_verifier *v, uint64_t now)
{
	*out = NULL;
	if (!cfg || !v || cfg->attestation_max_age == 0 || cfg->attestation_max_age > 86400 || cfg->ttl < 60 ||
	    cfg->max_entries == 0 || cfg->max_entries > KSCORE_ENTRIES_MAX || cfg->max_per_pcrs == 0 ||
	    cfg->max_per_pubkey == 0 || cfg->max_revocations > KSCORE_REVOCATIONS_MAX ||
	    cfg->ntrusted > KSCORE_TRUSTED_MAX || (cfg->ntrusted && !cfg->trusted))
		return APP_EINVAL;
	if (sodium_init() < 0)
		return APP_EINTERNAL;
	struct kscore *ks = calloc(1, sizeof *ks);
	if (!ks)
		return APP_ENOMEM;
	ks->cfg = *cfg;
	ks->cfg.trusted = NULL;
	if (cfg->ntrusted)
		memcpy(ks->trusted, cfg->trusted, cfg->ntrusted * 32);
	ks->v = v;
	size_t arena = cfg->max_entries * KSRPC_DATA_MAX; /* <= 64 MiB: no overflow */
	ks->entries = calloc(cfg->max_entries, sizeof *ks->entries);
	ks->arena = sodium_malloc(arena);
	ks->revs = cfg->max_revocations ? calloc(cfg->max_revocations, sizeof *ks->revs) : NULL;
	if (!ks->entries || !ks->arena || (cfg->max_revocations && !ks->revs)) {
		kscore_free(ks);
		return APP_ENOMEM;
	}
	sodium_memzero(ks->arena, arena);
	ks->st.started_at = now;
	*out = ks;
	return 0;
}

static uint8_t *slot(struct kscore *ks, size_t i)
{
	return ks->arena + i * KSRPC_DATA_MAX;
}

static void entry_clear(struct kscore *ks, size_t i)
{
	sodium_memzero(slot(ks, i), KSRPC_DATA_MAX);
	memset(&ks->entries[i], 0, sizeof ks->entries[i]);
	ks->st.entries--;
}

void kscore_free(struct kscore *ks)
{
	if (!ks)
		return;
	if (ks->arena)
		sodium_free(ks->arena); /* wipes */
	free(ks->entries);
	free(ks->revs);
	free(ks);
}

size_t kscore_gc(struct kscore *ks, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < ks->cfg.max_entries; i++)
		if (ks->entries[i].used && ks->entries[i].expires_at <= now) {
			char idh[17];
			hex_encode(idh, ks->entries[i].id, 8);
			log_info("event=entry_expired entry=%s", idh);
			entry_clear(ks, i);
			n++;
		}
	ks->st.expired += n;
	return n;
}

void kscore_get_stats(const struct kscore *ks, struct kscore_stats *out)
{
	*out = ks->st;
	out->revocations = ks->nrevs;
}

/* ---- helpers ---- */

static void reasonf(struct kscore_outcome *oc, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reasonf(struct kscore_outcome *oc, int err, const char *fmt, ...)
{
	va_list ap;
	oc->err = err;
	va_start(ap, fmt);
	vsnprintf(oc->reason, sizeof oc->reason, fmt, ap);
	va_end(ap);
}

static void entry_id(uint8_t id[32], const uint8_t pcr[3][ATTEST_PCR_LEN], const uint8_t pcr4[ATTEST_PCR_LEN], int bound,
		     int dev_root)
{
	uint8_t buf[sizeof ENTRY_DOMAIN - 1 + 4 * ATTEST_PCR_LEN + 2];
	size_t o = 0;
	memcpy(buf, ENTRY_DOMAIN, sizeof ENTRY_DOMAIN - 1);
	o += sizeof ENTRY_DOMAIN - 1;
	for (int k = 0; k < 3; k++, o += ATTEST_PCR_LEN)
		memcpy(buf + o, pcr[k], ATTEST_PCR_LEN);
	if (bound)
		memcpy(buf + o, pcr4, ATTEST_PCR_LEN);
	else
		memset(buf + o, 0, ATTEST_PCR_LEN);
	o += ATTEST_PCR_LEN;
	buf[o++] = (uint8_t)(bound != 0);
	buf[o++] = (uint8_t)(dev_root != 0);
	hash_sha256(id, buf, o);
}

static long find_entry(const struct kscore *ks, const uint8_t id[32])
{
	for (size_t i = 0; i < ks->cfg.max_entries; i++)
		if (ks->entries[i].used && sodium_memcmp(ks->entries[i].id, id, 32) == 0)
			return (long)i;
	return -1;
}

static int pcrs_equal(const uint8_t a[3][ATTEST_PCR_LEN], const uint8_t b[3][ATTEST_PCR_LEN])
{
	int diff = 0;
	for (int k = 0; k < 3; k++)
		diff |= sodium_memcmp(a[k], b[k], ATTEST_PCR_LEN) != 0;
	return !diff;
}

static void pcr_hash(uint8_t out[32], const uint8_t pcr[3][ATTEST_PCR_LEN])
{
	hash_sha256(out, pcr, 3 * ATTEST_PCR_LEN);
}

static int is_maintainer(const struct entry *e, const uint8_t pk[32])
{
	for (size_t k = 0; k < e->nmaint; k++)
		if (memcmp(e->maint[k], pk, 32) == 0)
			return 1;
	return 0;
}

/* revoked: 1 when a maintainer of e revoked the build with PCRs pcr in e's repository. */
static int revoked(const struct kscore *ks, const struct entry *e, const uint8_t pcr[3][ATTEST_PCR_LEN])
{
	if (!e->nmaint)
		return 0;
	uint8_t rh[32], ph[32];
	hash_sha256(rh, e->repo, strlen(e->repo));
	pcr_hash(ph, pcr);
	for (size_t i = 0; i < ks->nrevs; i++)
		if (memcmp(ks->revs[i].repo_hash, rh, 32) == 0 && memcmp(ks->revs[i].pcr_hash, ph, 32) == 0 &&
		    is_maintainer(e, ks->revs[i].pubkey))
			return 1;
	return 0;
}

static int add_revocation(struct kscore *ks, const char **reason, const struct event *ev, int preload)
{
	struct ksrpc_revocation rv;
	int r = ksrpc_revocation_verify(&rv, reason, ev);
	if (r)
		return r;
	int trusted = preload;
	for (size_t k = 0; k < ks->cfg.ntrusted && !trusted; k++)
		trusted = memcmp(ks->trusted[k], rv.pubkey, 32) == 0;
	for (size_t i = 0; i < ks->cfg.max_entries && !trusted; i++) {
		const struct entry *e = &ks->entries[i];
		trusted = e->used && strcmp(e->repo, rv.repo) == 0 && is_maintainer(e, rv.pubkey);
	}
	if (!trusted) {
		if (reason)
			*reason = "revocation signer is not a maintainer of any stored entry of that repository";
		return APP_EREFUSED;
	}
	struct revocation c;
	memcpy(c.pubkey, rv.pubkey, 32);
	hash_sha256(c.repo_hash, rv.repo, strlen(rv.repo));
	pcr_hash(c.pcr_hash, (const uint8_t(*)[ATTEST_PCR_LEN])rv.pcr);
	for (size_t i = 0; i < ks->nrevs; i++)
		if (memcmp(&ks->revs[i], &c, sizeof c) == 0) {
			if (reason)
				*reason = "already known";
			return 0;
		}
	if (ks->nrevs >= ks->cfg.max_revocations) {
		if (reason)
			*reason = "revocation table full";
		return APP_ELIMIT;
	}
	ks->revs[ks->nrevs++] = c;
	char pk[17], p0[17];
	hex_encode(pk, rv.pubkey, 8);
	hex_encode(p0, rv.pcr[0], 8);
	log_info("event=revocation_added signer=%s pcr0=%s", pk, p0);
	if (reason)
		*reason = "accepted";
	return 0;
}

int kscore_add_revocation(struct kscore *ks, const char **reason, const struct event *ev)
{
	return add_revocation(ks, reason, ev, 0);
}

int kscore_preload_revocation(struct kscore *ks, const char **reason, const struct event *ev)
{
	return add_revocation(ks, reason, ev, 1);
}

/* check_revocations: every revocation of the request verifies (they are added later). */
static int check_revocations(const struct ksrpc_request *req, struct kscore_outcome *oc)
{
	for (size_t i = 0; i < req->nrevocations; i++) {
		struct ksrpc_revocation rv;
		const char *why = NULL;
		int r = ksrpc_revocation_verify(&rv, &why, req->revocations[i]);
		if (r) {
			reasonf(oc, APP_EPARSE, "revocations[%zu]: %s", i, why ? why : app_strerror(r));
			return oc->err;
		}
	}
	return 0;
}

static void add_revocations(struct kscore *ks, const struct ksrpc_request *req)
{
	for (size_t i = 0; i < req->nrevocations; i++) {
		const char *why = NULL;
		int r = kscore_add_revocation(ks, &why, req->revocations[i]);
		if (r)
			log_info("event=revocation_ignored index=%zu err=%s reason=\"%s\"", i, app_errname(r), why ? why : "");
	}
}

/*
 * verify_attestation: the request's document, verified in full, with
 * public_key = client. Returns 0 with *doc (attest_doc_free) and *dev_root;
 * otherwise the code, oc->reason set.
 */
static int verify_attestation(struct kscore *ks, struct attest_doc **doc, int *dev_root, const struct ksrpc_request *req,
			      const uint8_t client[32], uint64_t now, struct kscore_outcome *oc)
{
	struct attest_result res;
	struct attest_verify_opts o;
	*doc = NULL;
	memset(&o, 0, sizeof o);
	o.time_mode = ATTEST_TIME_AT;
	o.at = now;
	o.max_age = ks->cfg.attestation_max_age;
	o.allow_dev = ks->cfg.allow_dev;
	int r = attest_verify_bytes(ks->v, &res, doc, req->attestation, req->attestation_len, &o);
	if (r) {
		reasonf(oc, r == APP_ENOMEM ? r : r == APP_EDEBUG ? APP_EDEBUG : r == APP_EEXPIRED ? APP_EEXPIRED : APP_EREFUSED,
			"attestation refused (%s): %s", attest_check_name(res.check), res.reason);
		return oc->err;
	}
	hex_encode(oc->pcr0, (*doc)->pcrs[0], 8);
	if (!(*doc)->public_key || (*doc)->public_key_len != 32 || sodium_memcmp((*doc)->public_key, client, 32) != 0) {
		reasonf(oc, APP_EREFUSED, "attestation refused (public_key): it is not the request's pubkey");
		attest_doc_free(*doc);
		*doc = NULL;
		return oc->err;
	}
	*dev_root = res.dev;
	return 0;
}

static int doc_pcr4(const struct attest_doc *doc, uint8_t out[ATTEST_PCR_LEN])
{
	if (doc->pcr_mask >> 4 & 1u) {
		memcpy(out, doc->pcrs[4], ATTEST_PCR_LEN);
		return 1;
	}
	memset(out, 0, ATTEST_PCR_LEN);
	return 0;
}

/* ---- results ---- */

static int result_finish(struct jw *w, char **out, size_t *len, int secret)
{
	if (w->err) {
		int r = w->err;
		if (w->p && secret)
			sodium_memzero(w->p, w->cap);
		jw_free(w);
		return r;
	}
	return jw_finish(w, out, len);
}

static void jw_secret_init(struct jw *w)
{
	jw_init(w, RESULT_MAX);
	w->p = malloc(RESULT_MAX + 1);
	if (w->p)
		w->cap = RESULT_MAX + 1;
	else
		w->err = APP_ENOMEM;
}

/* ---- methods ---- */

static int do_status(struct kscore *ks, char **res, size_t *len)
{
	struct jw w;
	jw_init(&w, RESULT_MAX);
	jw_char(&w, '{');
	jw_key(&w, 0, "name");
	jw_cstr(&w, ks->cfg.name ? ks->cfg.name : "keystore");
	jw_key(&w, 1, "version");
	jw_cstr(&w, ks->cfg.version ? ks->cfg.version : "");
	jw_key(&w, 1, "started_at");
	jw_u64(&w, ks->st.started_at);
	jw_key(&w, 1, "entries");
	jw_u64(&w, ks->st.entries);
	jw_key(&w, 1, "max_entries");
	jw_u64(&w, ks->cfg.max_entries);
	jw_key(&w, 1, "revocations");
	jw_u64(&w, ks->nrevs);
	jw_key(&w, 1, "requests");
	jw_u64(&w, ks->st.requests);
	jw_key(&w, 1, "ttl");
	jw_u64(&w, ks->cfg.ttl);
	jw_key(&w, 1, "attestation_max_age");
	jw_u64(&w, ks->cfg.attestation_max_age);
	jw_key(&w, 1, "allow_dev");
	jw_raw(&w, ks->cfg.allow_dev ? "true" : "false", ks->cfg.allow_dev ? 4 : 5);
	jw_char(&w, '}');
	return result_finish(&w, res, len, 0);
}

static int found_result(char **res, size_t *len, int found, uint64_t epoch)
{
	struct jw w;
	jw_init(&w, RESULT_MAX);
	jw_raw(&w, "{\"found\":", 9);
	jw_raw(&w, found ? "true" : "false", found ? 4 : 5);
	if (found) {
		jw_key(&w, 1, "epoch");
		jw_u64(&w, epoch);
	}
	jw_char(&w, '}');
	return result_finish(&w, res, len, 0);
}

/* exact_entry: the entry with the attester's identity (bound first), or -1. */
static long exact_entry(const struct kscore *ks, const uint8_t pcr[3][ATTEST_PCR_LEN], const uint8_t pcr4[ATTEST_PCR_LEN],
			int dev_root)
{
	uint8_t id[32];
	entry_id(id, pcr, pcr4, 1, dev_root);
	long i = find_entry(ks, id);
	if (i >= 0)
		return i;
	entry_id(id, pcr, pcr4, 0, dev_root);
	return find_entry(ks, id);
}

static int do_has(struct kscore *ks, const struct ksrpc_request *req, const uint8_t client[32], uint64_t now,
		  struct kscore_outcome *oc, char **res, size_t *len)
{
	if (req->attestation) {
		struct attest_doc *doc = NULL;
		int dev = 0;
		uint8_t p4[ATTEST_PCR_LEN];
		int r = verify_attestation(ks, &doc, &dev, req, client, now, oc);
		if (r)
			return r;
		(void)doc_pcr4(doc, p4);
		long i = exact_entry(ks, (const uint8_t(*)[ATTEST_PCR_LEN])doc->pcrs, p4, dev);
		attest_doc_free(doc);
		return found_result(res, len, i >= 0, i >= 0 ? ks->entries[i].epoch : 0);
	}
	if (req->has_pcrs) {
		int found = 0;
		uint64_t epoch = 0;
		for (size_t i = 0; i < ks->cfg.max_entries; i++) {
			const struct entry *e = &ks->entries[i];
			if (!e->used || !pcrs_equal(e->pcr, req->pcrs))
				continue;
			if (req->has_pcr4 && (!e->bound || sodium_memcmp(e->pcr4, req->pcr4, ATTEST_PCR_LEN) != 0))
				continue;
			if (!req->has_pcr4 && e->bound)
				continue;
			found = 1;
			if (e->epoch > epoch)
				epoch = e->epoch;
		}
		return found_result(res, len, found, epoch);
	}
	/* keycrux: {PCR4} -> {count, countDebug} */
	size_t count = 0;
	for (size_t i = 0; i < ks->cfg.max_entries; i++)
		if (ks->entries[i].used && sodium_memcmp(ks->entries[i].pcr4, req->pcr4, ATTEST_PCR_LEN) == 0)
			count++;
	struct jw w;
	jw_init(&w, RESULT_MAX);
	jw_raw(&w, "{\"count\":", 9);
	jw_u64(&w, count);
	jw_raw(&w, ",\"countDebug\":0}", 16);
	return result_finish(&w, res, len, 0);
}

static int do_set(struct kscore *ks, const struct ksrpc_request *req, const uint8_t client[32], uint64_t now,
		  struct kscore_outcome *oc, char **res, size_t *len)
{
	struct attest_doc *doc = NULL;
	int dev = 0, r;
	uint8_t p4[ATTEST_PCR_LEN], id[32];
	if ((r = check_revocations(req, oc)) != 0)
		return r;
	if ((r = verify_attestation(ks, &doc, &dev, req, client, now, oc)) != 0)
		return r;
	int has4 = doc_pcr4(doc, p4);
	const struct ksrpc_policy *p = &req->policy;
	if (p->bind_host && !has4) {
		reasonf(oc, APP_EREFUSED, "policy binds the host but the attestation has no PCR4");
		r = oc->err;
		goto out;
	}
	entry_id(id, (const uint8_t(*)[ATTEST_PCR_LEN])doc->pcrs, p4, p->bind_host, dev);
	hex_encode(oc->entry, id, 8);
	long i = find_entry(ks, id);
	if (i >= 0) {
		struct entry *e = &ks->entries[i];
		if (req->epoch < e->epoch) {
			reasonf(oc, APP_EROLLBACK, "epoch %llu is lower than the stored epoch %llu (anti-rollback)",
				(unsigned long long)req->epoch, (unsigned long long)e->epoch);
			r = oc->err;
			goto out;
		}
		oc->replaced = 1;
		log_info("event=entry_replace entry=%s epoch_old=%llu epoch_new=%llu", oc->entry,
			 (unsigned long long)e->epoch, (unsigned long long)req->epoch);
	} else {
		size_t same = 0, mine = 0, freei = ks->cfg.max_entries;
		for (size_t k = 0; k < ks->cfg.max_entries; k++) {
			const struct entry *e = &ks->entries[k];
			if (!e->used) {
				if (freei == ks->cfg.max_entries)
					freei = k;
				continue;
			}
			same += pcrs_equal(e->pcr, (const uint8_t(*)[ATTEST_PCR_LEN])doc->pcrs);
			mine += memcmp(e->creator, client, 32) == 0;
		}
		if (freei == ks->cfg.max_entries) {
			reasonf(oc, APP_ELIMIT, "keystore full (%zu entries)", ks->cfg.max_entries);
			r = oc->err;
			goto out;
		}
		if (same >= ks->cfg.max_per_pcrs) {
			reasonf(oc, APP_ELIMIT, "too many entries for these PCRs (%zu)", ks->cfg.max_per_pcrs);
			r = oc->err;
			goto out;
		}
		if (mine >= ks->cfg.max_per_pubkey) {
			reasonf(oc, APP_ELIMIT, "too many entries from this pubkey (%zu)", ks->cfg.max_per_pubkey);
			r = oc->err;
			goto out;
		}
		i = (long)freei;
		ks->entries[i].created_at = now;
		memcpy(ks->entries[i].creator, client, 32);
		ks->st.entries++;
	}
	struct entry *e = &ks->entries[i];
	e->used = 1;
	memcpy(e->id, id, 32);
	memcpy(e->pcr, doc->pcrs, sizeof e->pcr);
	memcpy(e->pcr4, p4, ATTEST_PCR_LEN);
	e->bound = p->bind_host;
	e->dev_root = dev;
	e->dev_t = p->t == KSRPC_T_DEFAULT ? dev : p->t == KSRPC_T_DEV;
	memcpy(e->repo, p->repo, sizeof e->repo);
	memcpy(e->maint, p->maintainers, sizeof e->maint);
	e->nmaint = p->nmaintainers;
	e->threshold = p->threshold ? p->threshold : p->nmaintainers;
	memcpy(e->version, p->version, sizeof e->version);
	e->epoch = req->epoch;
	e->updated_at = now;
	e->expires_at = now + ks->cfg.ttl;
	sodium_memzero(slot(ks, (size_t)i), KSRPC_DATA_MAX);
	memcpy(slot(ks, (size_t)i), req->data, req->data_len);
	e->data_len = req->data_len;
	ks->st.sets++;
	ks->st.replaced += (uint64_t)oc->replaced;
	add_revocations(ks, req);
	if (!(*res = strdup("\"ok\""))) {
		r = APP_ENOMEM;
		goto out;
	}
	*len = 4;
	snprintf(oc->reason, sizeof oc->reason, "%s epoch %llu", oc->replaced ? "replaced" : "stored",
		 (unsigned long long)req->epoch);
	r = 0;
out:
	attest_doc_free(doc);
	return r;
}

/* Evaluation of one candidate entry against the release signatures. */
struct cand_eval {
	size_t count;     /* distinct maintainers whose release counts */
	const char *why;  /* the last rejection */
	int is_revoked;
};

static void eval_candidate(const struct kscore *ks, const struct entry *e, const struct nec_release *rel,
			   const int *valid, size_t nsigs, const uint8_t pcr[3][ATTEST_PCR_LEN], struct cand_eval *ce)
{
	uint8_t used[KSRPC_MAINTAINERS_MAX] = {0};
	memset(ce, 0, sizeof *ce);
	ce->why = "no valid release signature";
	if (revoked(ks, e, pcr)) {
		ce->is_revoked = 1;
		ce->why = "this build was revoked by a maintainer";
		return;
	}
	for (size_t i = 0; i < nsigs; i++) {
		int cmp = 0;
		size_t who = e->nmaint;
		if (!valid[i])
			continue;
		for (size_t k = 0; k < e->nmaint; k++)
			if (memcmp(e->maint[k], rel[i].pubkey, 32) == 0)
				who = k;
		if (who == e->nmaint) {
			ce->why = "release signed by a key that is not a maintainer of the entry";
			continue;
		}
		if (used[who]) {
			ce->why = "two release signatures by the same maintainer";
			continue;
		}
		if (rel[i].dev != e->dev_t) {
			ce->why = e->dev_t ? "a prod release for a dev entry" : "a dev release for a prod entry";
			continue;
		}
		if (strcmp(rel[i].repo, e->repo) != 0) {
			ce->why = "release is for another repository";
			continue;
		}
		if (nec_version_cmp(rel[i].version, e->version, &cmp) != 0 || cmp < 0) {
			ce->why = "release version is lower than the entry's (downgrade)";
			continue;
		}
		if (!pcrs_equal((const uint8_t(*)[ATTEST_PCR_LEN])rel[i].pcr, pcr)) {
			ce->why = "release is for other PCRs than the attestation's";
			continue;
		}
		used[who] = 1;
		ce->count++;
	}
}

/* better: 1 when entry a should be preferred to b (higher version, then epoch, then latest set). */
static int better(const struct entry *a, const struct entry *b)
{
	int cmp = 0;
	if (nec_version_cmp(a->version, b->version, &cmp) == 0 && cmp != 0)
		return cmp > 0;
	if (a->epoch != b->epoch)
		return a->epoch > b->epoch;
	return a->updated_at > b->updated_at;
}

static int get_result(struct kscore *ks, size_t i, int match, char **res, size_t *len)
{
	const struct entry *e = &ks->entries[i];
	struct jw w;
	jw_secret_init(&w);
	jw_raw(&w, "{\"data\":", 8);
	jw_str(&w, (const char *)slot(ks, i), e->data_len);
	jw_key(&w, 1, "epoch");
	jw_u64(&w, e->epoch);
	jw_key(&w, 1, "match");
	jw_cstr(&w, match == 1 ? "exact" : "release");
	if (e->version[0]) {
		jw_key(&w, 1, "version");
		jw_cstr(&w, e->version);
	}
	jw_char(&w, '}');
	return result_finish(&w, res, len, 1);
}

static int do_get(struct kscore *ks, const struct ksrpc_request *req, const uint8_t client[32], uint64_t now,
		  struct kscore_outcome *oc, char **res, size_t *len)
{
	struct attest_doc *doc = NULL;
	struct nec_release rel[KSRPC_SIGS_MAX];
	int valid[KSRPC_SIGS_MAX];
	int dev = 0, r;
	uint8_t p4[ATTEST_PCR_LEN];
	if ((r = check_revocations(req, oc)) != 0)
		return r;
	if ((r = verify_attestation(ks, &doc, &dev, req, client, now, oc)) != 0)
		return r;
	add_revocations(ks, req);
	int has4 = doc_pcr4(doc, p4);
	const uint8_t(*pcr)[ATTEST_PCR_LEN] = (const uint8_t(*)[ATTEST_PCR_LEN])doc->pcrs;
	long i = exact_entry(ks, pcr, p4, dev);
	if (i >= 0) {
		hex_encode(oc->entry, ks->entries[i].id, 8);
		if (revoked(ks, &ks->entries[i], pcr)) {
			reasonf(oc, APP_EREFUSED, "this build was revoked by a maintainer of the entry");
			r = oc->err;
			goto out;
		}
		oc->match = 1;
		ks->st.gets++;
		snprintf(oc->reason, sizeof oc->reason, "exact epoch %llu", (unsigned long long)ks->entries[i].epoch);
		r = get_result(ks, (size_t)i, 1, res, len);
		goto out;
	}
	if (req->nsigs == 0) {
		reasonf(oc, APP_ENOTFOUND, "no entry for these PCRs and no release signatures");
		r = oc->err;
		goto out;
	}
	/* the release signatures, verified once */
	size_t nvalid = 0;
	const char *bad = NULL;
	for (size_t k = 0; k < req->nsigs; k++) {
		const char *why = NULL;
		valid[k] = nec_release_verify(&rel[k], &why, req->sigs[k]) == 0;
		if (valid[k])
			nvalid++;
		else if (!bad)
			bad = why;
	}
	long best = -1;
	size_t relevant = 0, best_count = 0;
	struct cand_eval top;
	memset(&top, 0, sizeof top);
	top.why = bad ? bad : "no valid release signature";
	for (size_t k = 0; k < ks->cfg.max_entries; k++) {
		const struct entry *e = &ks->entries[k];
		struct cand_eval ce;
		int repo_match = 0;
		if (!e->used || !e->nmaint || e->dev_root != dev)
			continue;
		if (e->bound && (!has4 || sodium_memcmp(e->pcr4, p4, ATTEST_PCR_LEN) != 0))
			continue;
		for (size_t s = 0; s < req->nsigs; s++)
			repo_match |= valid[s] && strcmp(rel[s].repo, e->repo) == 0;
		if (!repo_match)
			continue;
		relevant++;
		eval_candidate(ks, e, rel, valid, req->nsigs, pcr, &ce);
		if (ce.count >= e->threshold && !ce.is_revoked) {
			if (best < 0 || better(e, &ks->entries[best]))
				best = (long)k;
			continue;
		}
		if (relevant == 1 || ce.is_revoked || ce.count >= best_count) {
			best_count = ce.count;
			top = ce;
			snprintf(oc->entry, sizeof oc->entry, "%02x%02x%02x%02x%02x%02x%02x%02x", e->id[0], e->id[1],
				 e->id[2], e->id[3], e->id[4], e->id[5], e->id[6], e->id[7]);
			reasonf(oc, APP_EREFUSED, "release signatures refused: %zu of %zu required (%s)", ce.count,
				e->threshold, ce.is_revoked ? "this build was revoked by a maintainer" : ce.why);
		}
	}
	if (best >= 0) {
		hex_encode(oc->entry, ks->entries[best].id, 8);
		oc->match = 2;
		oc->err = 0;
		ks->st.gets++;
		ks->st.upgrades++;
		snprintf(oc->reason, sizeof oc->reason, "release-signed upgrade from version %s epoch %llu",
			 ks->entries[best].version, (unsigned long long)ks->entries[best].epoch);
		r = get_result(ks, (size_t)best, 2, res, len);
		goto out;
	}
	if (relevant == 0) {
		if (nvalid == req->nsigs) {
			reasonf(oc, APP_ENOTFOUND, "no entry for these PCRs or the signed repositories");
		} else {
			reasonf(oc, APP_EREFUSED, "release signatures refused: %s", top.why);
		}
	}
	r = oc->err ? oc->err : APP_EREFUSED;
out:
	attest_doc_free(doc);
	return r;
}

static int do_revoke(struct kscore *ks, const struct ksrpc_request *req, struct kscore_outcome *oc, char **res,
		     size_t *len)
{
	size_t accepted = 0;
	const char *why = NULL;
	int last = 0;
	for (size_t i = 0; i < req->nrevocations; i++) {
		int r = kscore_add_revocation(ks, &why, req->revocations[i]);
		if (r == 0)
			accepted++;
		else
			last = r;
	}
	if (!accepted) {
		reasonf(oc, last == APP_ELIMIT ? APP_ELIMIT : APP_EREFUSED, "no revocation accepted: %s", why ? why : "");
		return oc->err;
	}
	struct jw w;
	jw_init(&w, RESULT_MAX);
	jw_raw(&w, "{\"accepted\":", 12);
	jw_u64(&w, accepted);
	jw_key(&w, 1, "total");
	jw_u64(&w, ks->nrevs);
	jw_char(&w, '}');
	snprintf(oc->reason, sizeof oc->reason, "accepted %zu", accepted);
	return result_finish(&w, res, len, 0);
}

int kscore_handle(struct kscore *ks, char **reply, size_t *reply_len, struct kscore_outcome *oc,
		  const uint8_t client[32], const char *plain, size_t plen, uint64_t now)
{
	struct kscore_outcome local;
	struct ksrpc_request *req = NULL;
	char id[KSRPC_ID_MAX + 1];
	char *res = NULL;
	size_t rlen = 0;
	const char *why = NULL;
	int r;
	*reply = NULL;
	*reply_len = 0;
	if (!oc)
		oc = &local;
	memset(oc, 0, sizeof *oc);
	ks->st.requests++;
	(void)kscore_gc(ks, now);
	r = ksrpc_request_parse(&req, &why, id, plain, plen);
	if (r == APP_ENOMEM)
		return r;
	if (r) {
		reasonf(oc, r == APP_EUNSUPPORTED ? r : r == APP_ETOOBIG ? r : APP_EPARSE, "bad request: %s",
			why ? why : app_strerror(r));
	} else {
		oc->method = req->method;
		switch (req->method) {
		case KSRPC_PING:
			r = (res = strdup("\"pong\"")) ? 0 : APP_ENOMEM;
			rlen = 6;
			break;
		case KSRPC_STATUS: r = do_status(ks, &res, &rlen); break;
		case KSRPC_HAS: r = do_has(ks, req, client, now, oc, &res, &rlen); break;
		case KSRPC_SET: r = do_set(ks, req, client, now, oc, &res, &rlen); break;
		case KSRPC_GET: r = do_get(ks, req, client, now, oc, &res, &rlen); break;
		case KSRPC_REVOKE: r = do_revoke(ks, req, oc, &res, &rlen); break;
		}
		if (r == APP_ENOMEM || r == APP_EINTERNAL)
			goto out;
		if (r && !oc->err)
			reasonf(oc, r, "%s", app_strerror(r));
	}
	if (oc->err) {
		if (oc->err == APP_ENOTFOUND)
			ks->st.not_found++;
		else
			ks->st.refused++;
		r = ksrpc_reply_error(reply, reply_len, id, oc->err,
				      oc->err == APP_ENOTFOUND ? KSRPC_NOT_FOUND : oc->reason);
	} else {
		r = ksrpc_reply_ok(reply, reply_len, id, res, rlen);
	}
out:
	ksrpc_text_free(res, rlen);
	ksrpc_request_free(req);
	return r;
}
