#include "nec.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "event.h"
#include "hex.h"
#include "keys.h"

#define NEC_TRUSTED_MAX 256 /* maintainer keys in one policy */

static const char ALT_PROD[] = "attestation certificate by AWS Nitro Enclave";
static const char ALT_DEV[] = "attestation certificate by a development Nitro emulator";

static void set_reason(const char **reason, const char *why)
{
	if (reason)
		*reason = why;
}

/* one_tag: the value (v[1]) of the only tag named name; NULL if none; *count = how many there are. */
static const char *one_tag(const struct event *ev, const char *name, size_t *count)
{
	size_t pos = 0, n = 0;
	const struct event_tag *t, *first = NULL;
	while ((t = event_tag_find(ev, &pos, name, 1)) != NULL) {
		if (!first)
			first = t;
		n++;
	}
	*count = n;
	return n == 1 && first->n >= 2 ? first->v[1] : NULL;
}

static int has_tag(const struct event *ev, const char *name)
{
	size_t pos = 0;
	return event_tag_find(ev, &pos, name, 1) != NULL;
}

/* pcr_label: n of "PCRn" (0..31, no leading zeros), or -1. */
static int pcr_label(const char *s)
{
	if (strncmp(s, "PCR", 3) != 0 || !s[3])
		return -1;
	const char *p = s + 3;
	if (p[0] == '0' && p[1])
		return -1;
	int n = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || n > 3)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n < ATTEST_PCR_COUNT ? n : -1;
}

static int printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* expiration_of: the one expiration tag of ev. */
static int expiration_of(const struct event *ev, uint64_t *out)
{
	size_t n = 0;
	one_tag(ev, "expiration", &n);
	if (n != 1)
		return n == 0 ? APP_ENOTFOUND : APP_EPARSE;
	return event_expiration(ev, out);
}

/* ---- 23793 ---- */

int nec_attestation_create(struct event **out, const struct keypair *kp, const uint8_t *doc, size_t len,
			   uint64_t created_at)
{
	struct attest_doc *d = NULL;
	struct attest_chain_info ci;
	struct event *ev = NULL;
	char *b64 = NULL;
	uint8_t pub[32];
	int r;
	*out = NULL;
	if ((r = attest_doc_parse(&d, NULL, doc, len)) != 0)
		goto out;
	keys_pubkey(kp, pub);
	r = APP_EREFUSED;
	if (!d->public_key || d->public_key_len != 32 || sodium_memcmp(d->public_key, pub, 32) != 0)
		goto out;
	r = APP_EDEBUG;
	if (attest_doc_is_debug(d))
		goto out;
	if ((r = attest_doc_chain_info(d, &ci)) != 0)
		goto out;
	r = APP_ENOMEM;
	if (!(b64 = b64_encode_alloc(doc, len)))
		goto out;
	int prod = attest_doc_root_is_aws(d);
	char exp[24];
	snprintf(exp, sizeof exp, "%llu", (unsigned long long)ci.cert[0].not_after);
	if ((r = event_new(&ev, NEC_KIND_ATTESTATION, created_at, b64, strlen(b64))) != 0 ||
	    (r = event_add_tagv(ev, "-", NULL)) != 0 || (r = event_add_tagv(ev, "t", prod ? "prod" : "dev", NULL)) != 0 ||
	    (r = event_add_tagv(ev, "expiration", exp, NULL)) != 0 ||
	    (r = event_add_tagv(ev, "alt", prod ? ALT_PROD : ALT_DEV, NULL)) != 0 || (r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
	r = 0;
out:
	event_free(ev);
	free(b64);
	attest_doc_free(d);
	return r;
}

int nec_attestation_verify(struct attest_verifier *v, const char **reason, struct attest_result *ares,
			   struct attest_doc **doc, const struct event *ev, const struct attest_verify_opts *opts)
{
	struct attest_result tmp;
	struct attest_verify_opts o = {0};
	struct attest_doc *d = NULL;
	uint8_t *raw = NULL;
	size_t rawlen = 0, n = 0;
	int r;
	if (!ares)
		ares = &tmp;
	memset(ares, 0, sizeof *ares);
	if (doc)
		*doc = NULL;
	if (opts)
		o = *opts;
	if (!o.max_age)
		o.max_age = NEC_ATTESTATION_MAX_AGE;
	if (ev->kind != NEC_KIND_ATTESTATION) {
		set_reason(reason, "not an attestation event (kind 23793)");
		return APP_EINVAL;
	}
	if ((r = event_verify(ev)) != 0) {
		set_reason(reason, "attestation event: bad id or signature");
		return r;
	}
	if (!has_tag(ev, "-")) {
		set_reason(reason, "attestation event without the [\"-\"] tag");
		return APP_EPARSE;
	}
	if ((r = b64_decode_alloc(&raw, &rawlen, ev->content, ev->content_len, ATTEST_DOC_MAX)) != 0) {
		set_reason(reason, "attestation event content is not a base64 document");
		return r;
	}
	if ((r = attest_verify_bytes(v, ares, &d, raw, rawlen, &o)) != 0) {
		set_reason(reason, "attestation document refused");
		goto out;
	}
	r = APP_EREFUSED;
	if (!d->public_key || d->public_key_len != 32 || sodium_memcmp(d->public_key, ev->pubkey, 32) != 0) {
		set_reason(reason, "attestation public_key is not the event's pubkey");
		goto out;
	}
	const char *t = one_tag(ev, "t", &n);
	if (n != 1 || !t || strcmp(t, ares->dev ? "dev" : "prod") != 0) {
		set_reason(reason, ares->dev ? "t tag is not \"dev\" for a development root" : "t tag is not \"prod\" for AWS's root");
		goto out;
	}
	uint64_t exp = 0;
	if (expiration_of(ev, &exp) != 0 || exp != ares->leaf_not_after) {
		set_reason(reason, "expiration tag is not the leaf certificate's notAfter");
		goto out;
	}
	if (exp <= ares->time) {
		set_reason(reason, "attestation event expired");
		r = APP_EEXPIRED;
		goto out;
	}
	if (doc) {
		*doc = d;
		d = NULL;
	}
	set_reason(reason, "verified");
	r = 0;
out:
	attest_doc_free(d);
	free(raw);
	return r;
}

/* ---- 13793 ---- */

static int doc_of_event(struct attest_doc **d, const struct event *ev)
{
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int r = b64_decode_alloc(&raw, &rawlen, ev->content, ev->content_len, ATTEST_DOC_MAX);
	if (r == 0)
		r = attest_doc_parse(d, NULL, raw, rawlen);
	free(raw);
	return r == APP_ENOMEM ? r : (r ? APP_EPARSE : 0);
}

int nec_announcement_create(struct event **out, const struct keypair *kp, const struct event *attestation,
			    const struct nec_announcement *a, uint64_t created_at)
{
	struct attest_doc *d = NULL;
	struct event *ev = NULL;
	char *json = NULL;
	size_t jl = 0, n = 0;
	uint8_t pub[32];
	int r = APP_EINVAL;
	*out = NULL;
	keys_pubkey(kp, pub);
	if (attestation->kind != NEC_KIND_ATTESTATION || memcmp(attestation->pubkey, pub, 32) != 0 || !a->name ||
	    !a->version || !a->repo || a->nreleases > NEC_RELEASES_MAX || (a->nreleases && !a->releases))
		goto out;
	const char *t = one_tag(attestation, "t", &n);
	uint64_t exp = 0;
	if (!t || expiration_of(attestation, &exp) != 0 || (a->expiration && a->expiration > exp))
		goto out;
	if (a->expiration)
		exp = a->expiration;
	for (size_t i = 0; i < a->nreleases; i++)
		if (!a->releases[i] || a->releases[i]->kind != NEC_KIND_RELEASE)
			goto out;
	if ((r = doc_of_event(&d, attestation)) != 0)
		goto out;
	if ((r = event_to_json(&json, &jl, attestation)) != 0)
		goto out;
	char num[24], num2[24];
	snprintf(num, sizeof num, "%llu", (unsigned long long)exp);
	if ((r = event_new(&ev, NEC_KIND_ANNOUNCEMENT, created_at, a->content ? a->content : "",
			   a->content ? strlen(a->content) : 0)) != 0 ||
	    (r = event_add_tagv(ev, "r", a->repo, NULL)) != 0 || (r = event_add_tagv(ev, "name", a->name, NULL)) != 0 ||
	    (r = event_add_tagv(ev, "v", a->version, NULL)) != 0 || (r = event_add_tagv(ev, "t", t, NULL)) != 0 ||
	    (a->relay && (r = event_add_tagv(ev, "relay", a->relay, NULL)) != 0) ||
	    (r = event_add_tagv(ev, "expiration", num, NULL)) != 0 ||
	    (r = event_add_tagv(ev, "o", a->open ? "true" : "false", NULL)) != 0 ||
	    (r = event_add_tagv(ev, "k", "5720", NULL)) != 0 || (r = event_add_tagv(ev, "tee_root", json, NULL)) != 0)
		goto out;
	if (a->price_unit) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)a->price_base_msat);
		snprintf(num2, sizeof num2, "%llu", (unsigned long long)a->price_msat_per_unit);
		if ((r = event_add_tagv(ev, "price", num, num2, a->price_unit, NULL)) != 0)
			goto out;
	}
	static const int xs[] = {0, 1, 2, 4, 8};
	for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
		int k = xs[i];
		if (!((d->pcr_mask >> k) & 1u) || (k > 2 && sodium_is_zero(d->pcrs[k], ATTEST_PCR_LEN)))
			continue;
		char hx[2 * ATTEST_PCR_LEN + 1], label[8];
		hex_encode(hx, d->pcrs[k], ATTEST_PCR_LEN);
		snprintf(label, sizeof label, "PCR%d", k);
		if ((r = event_add_tagv(ev, "x", hx, label, NULL)) != 0)
			goto out;
	}
	for (size_t i = 0; i < a->nreleases; i++) {
		char *rj = NULL, pk[65];
		size_t rl = 0;
		if ((r = event_to_json(&rj, &rl, a->releases[i])) != 0)
			goto out;
		hex_encode(pk, a->releases[i]->pubkey, 32);
		r = event_add_tagv(ev, "release", rj, NULL);
		free(rj);
		if (r != 0 || (r = event_add_tagv(ev, "p", pk, "releaser", NULL)) != 0)
			goto out;
	}
	if (a->keystore && (r = event_add_tagv(ev, "keystore", a->keystore, NULL)) != 0)
		goto out;
	if ((r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
	r = 0;
out:
	event_free(ev);
	free(json);
	attest_doc_free(d);
	return r;
}

/* check_x_tags: every x tag names a PCR once and equals the attested value; PCR0..2 present. */
static int check_x_tags(const struct event *ev, const struct attest_doc *d, const char **reason)
{
	uint32_t seen = 0;
	int diff = 0;
	size_t pos = 0;
	const struct event_tag *t;
	while ((t = event_tag_find(ev, &pos, "x", 1)) != NULL) {
		uint8_t v[ATTEST_PCR_LEN];
		int k = t->n == 3 ? pcr_label(t->v[2]) : -1;
		if (k < 0 || hex_decode(v, sizeof v, t->v[1], t->len[1], 1) != 0) {
			set_reason(reason, "x tag is not [\"x\", 96 lowercase hex, \"PCRn\"]");
			return APP_EPARSE;
		}
		if ((seen >> k) & 1u) {
			set_reason(reason, "two x tags for the same PCR");
			return APP_EPARSE;
		}
		seen |= 1u << k;
		if (!((d->pcr_mask >> k) & 1u)) {
			set_reason(reason, "x tag for a PCR the attestation does not have");
			return APP_EREFUSED;
		}
		diff |= sodium_memcmp(v, d->pcrs[k], ATTEST_PCR_LEN) != 0;
	}
	if ((seen & 7u) != 7u) {
		set_reason(reason, "x tags for PCR0, PCR1 and PCR2 are required");
		return APP_EPARSE;
	}
	if (diff) {
		set_reason(reason, "an x tag differs from the attested PCR");
		return APP_EREFUSED;
	}
	return 0;
}

int nec_announcement_verify(struct attest_verifier *v, const char **reason, struct attest_result *ares,
			    struct attest_doc **doc, const struct event *ev, const struct attest_verify_opts *opts)
{
	struct attest_result tmp;
	struct event *att = NULL;
	struct attest_doc *d = NULL;
	size_t n = 0;
	int r;
	if (!ares)
		ares = &tmp;
	memset(ares, 0, sizeof *ares);
	if (doc)
		*doc = NULL;
	if (ev->kind != NEC_KIND_ANNOUNCEMENT) {
		set_reason(reason, "not an announcement (kind 13793)");
		return APP_EINVAL;
	}
	if ((r = event_verify(ev)) != 0) {
		set_reason(reason, "announcement: bad id or signature");
		return r;
	}
	uint64_t exp = 0;
	if (expiration_of(ev, &exp) != 0) {
		set_reason(reason, "announcement without one valid expiration tag");
		return APP_EPARSE;
	}
	/* Expired announcements are refused before looking further (T known unless "as of the document"). */
	if (!opts || opts->time_mode != ATTEST_TIME_AS_OF_DOCUMENT) {
		uint64_t t = opts && opts->time_mode == ATTEST_TIME_AT ? opts->at : (uint64_t)time(NULL);
		if (exp <= t) {
			set_reason(reason, "announcement expired");
			return APP_EEXPIRED;
		}
	}
	const char *root = one_tag(ev, "tee_root", &n);
	if (n != 1 || !root) {
		set_reason(reason, "announcement without one tee_root tag");
		return APP_EPARSE;
	}
	const char *why = NULL;
	if ((r = event_parse(&att, &why, root, strlen(root))) != 0) {
		set_reason(reason, "tee_root is not an event");
		return r == APP_ENOMEM ? r : APP_EPARSE;
	}
	if (memcmp(att->pubkey, ev->pubkey, 32) != 0) {
		set_reason(reason, "tee_root is signed by another key than the announcement");
		r = APP_EREFUSED;
		goto out;
	}
	if ((r = nec_attestation_verify(v, reason, ares, &d, att, opts)) != 0)
		goto out;
	if ((r = check_x_tags(ev, d, reason)) != 0)
		goto out;
	r = APP_EREFUSED;
	const char *t = one_tag(ev, "t", &n), *at = one_tag(att, "t", &n);
	if (!t || !at || strcmp(t, at) != 0) {
		set_reason(reason, "announcement t differs from its attestation's");
		goto out;
	}
	uint64_t aexp = 0;
	if (expiration_of(att, &aexp) != 0 || exp > aexp) {
		set_reason(reason, "announcement expires after its attestation");
		goto out;
	}
	if (exp <= ares->time) {
		set_reason(reason, "announcement expired");
		r = APP_EEXPIRED;
		goto out;
	}
	if (doc) {
		*doc = d;
		d = NULL;
	}
	set_reason(reason, "verified");
	r = 0;
out:
	attest_doc_free(d);
	event_free(att);
	return r;
}

int nec_announcement_releases(struct event **out, size_t max, size_t *n, const struct event *ann)
{
	size_t pos = 0, k = 0;
	const struct event_tag *t;
	int r = 0;
	*n = 0;
	if (max > NEC_RELEASES_MAX)
		max = NEC_RELEASES_MAX;
	while ((t = event_tag_find(ann, &pos, "release", 2)) != NULL) {
		if (k == max) {
			r = APP_ELIMIT;
			break;
		}
		const char *why = NULL;
		if ((r = event_parse(&out[k], &why, t->v[1], t->len[1])) != 0) {
			r = r == APP_ENOMEM ? r : APP_EPARSE;
			break;
		}
		k++;
	}
	if (r != 0) {
		for (size_t i = 0; i < k; i++) {
			event_free(out[i]);
			out[i] = NULL;
		}
		return r;
	}
	*n = k;
	return 0;
}

/* ---- 63794 ---- */

#define VERSION_PARTS 4

static int version_parse(const char *s, uint32_t part[VERSION_PARTS], int *nparts)
{
	if (!s || strlen(s) > NEC_VERSION_MAX)
		return APP_EPARSE;
	if (*s == 'v')
		s++;
	int k = 0;
	memset(part, 0, VERSION_PARTS * sizeof part[0]);
	for (;;) {
		int digits = 0;
		uint32_t x = 0;
		while (*s >= '0' && *s <= '9') {
			if (++digits > 9)
				return APP_EPARSE;
			x = x * 10 + (uint32_t)(*s++ - '0');
		}
		if (digits == 0 || k == VERSION_PARTS)
			return APP_EPARSE;
		part[k++] = x;
		if (*s == 0)
			break;
		if (*s++ != '.')
			return APP_EPARSE;
	}
	*nparts = k;
	return 0;
}

int nec_version_cmp(const char *a, const char *b, int *cmp)
{
	uint32_t pa[VERSION_PARTS], pb[VERSION_PARTS];
	int na, nb;
	*cmp = 0;
	if (version_parse(a, pa, &na) != 0 || version_parse(b, pb, &nb) != 0)
		return APP_EPARSE;
	for (int i = 0; i < VERSION_PARTS; i++)
		if (pa[i] != pb[i]) {
			*cmp = pa[i] < pb[i] ? -1 : 1;
			return 0;
		}
	return 0;
}

static int release_fields_ok(const char *repo, const char *version)
{
	uint32_t p[VERSION_PARTS];
	int n;
	return printable(repo, NEC_REPO_MAX) && version_parse(version, p, &n) == 0;
}

int nec_release_create(struct event **out, const struct keypair *kp, const struct nec_release *rel,
		       uint64_t created_at)
{
	struct event *ev = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	if (!release_fields_ok(rel->repo, rel->version))
		goto out;
	if ((r = event_new(&ev, NEC_KIND_RELEASE, created_at, "", 0)) != 0 ||
	    (r = event_add_tagv(ev, "t", rel->dev ? "dev" : "prod", NULL)) != 0 ||
	    (r = event_add_tagv(ev, "r", rel->repo, NULL)) != 0 || (r = event_add_tagv(ev, "v", rel->version, NULL)) != 0)
		goto out;
	for (int i = 0; i < 3; i++) {
		char hx[2 * ATTEST_PCR_LEN + 1], label[8];
		hex_encode(hx, rel->pcr[i], ATTEST_PCR_LEN);
		snprintf(label, sizeof label, "PCR%d", i);
		if ((r = event_add_tagv(ev, "x", hx, label, NULL)) != 0)
			goto out;
	}
	if ((r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
	r = 0;
out:
	event_free(ev);
	return r;
}

int nec_release_verify(struct nec_release *out, const char **reason, const struct event *ev)
{
	size_t n = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (ev->kind != NEC_KIND_RELEASE) {
		set_reason(reason, "not a release signature (kind 63794)");
		return APP_EINVAL;
	}
	if ((r = event_verify(ev)) != 0) {
		set_reason(reason, "release signature: bad id or signature");
		return r;
	}
	const char *t = one_tag(ev, "t", &n);
	if (n != 1 || !t || (strcmp(t, "prod") != 0 && strcmp(t, "dev") != 0)) {
		set_reason(reason, "release signature needs one t tag, \"prod\" or \"dev\"");
		return APP_EPARSE;
	}
	const char *repo = one_tag(ev, "r", &n);
	if (n != 1 || !repo || !printable(repo, NEC_REPO_MAX)) {
		set_reason(reason, "release signature needs one r tag (the repository)");
		return APP_EPARSE;
	}
	const char *ver = one_tag(ev, "v", &n);
	uint32_t parts[VERSION_PARTS];
	int np;
	if (n != 1 || !ver || version_parse(ver, parts, &np) != 0) {
		set_reason(reason, "release signature needs one v tag holding a version like 1.2.3");
		return APP_EPARSE;
	}
	uint32_t seen = 0;
	size_t pos = 0;
	const struct event_tag *x;
	while ((x = event_tag_find(ev, &pos, "x", 1)) != NULL) {
		int k = x->n == 3 ? pcr_label(x->v[2]) : -1;
		if (k < 0 || k > 2 || ((seen >> k) & 1u) || hex_decode(out->pcr[k], ATTEST_PCR_LEN, x->v[1], x->len[1], 1) != 0) {
			set_reason(reason, "release signature x tags must be PCR0, PCR1, PCR2 once each, 96 lowercase hex");
			return APP_EPARSE;
		}
		seen |= 1u << k;
	}
	if (seen != 7u) {
		set_reason(reason, "release signature lacks an x tag for PCR0, PCR1 or PCR2");
		return APP_EPARSE;
	}
	out->dev = strcmp(t, "dev") == 0;
	memcpy(out->repo, repo, strlen(repo) + 1);
	memcpy(out->version, ver, strlen(ver) + 1);
	memcpy(out->pubkey, ev->pubkey, 32);
	set_reason(reason, "verified");
	return 0;
}

int nec_release_policy_check(const struct nec_release_policy *policy, const struct attest_doc *doc,
			     const struct event *const *sigs, size_t nsigs, size_t *valid, const char **reason)
{
	uint8_t used[NEC_TRUSTED_MAX] = {0};
	size_t count = 0;
	int cmp;
	const char *last = NULL;
	if (valid)
		*valid = 0;
	if (!policy || !doc || policy->threshold == 0 || policy->threshold > policy->ntrusted ||
	    policy->ntrusted > NEC_TRUSTED_MAX || !policy->trusted || !policy->repo ||
	    (policy->min_version && nec_version_cmp(policy->min_version, policy->min_version, &cmp) != 0)) {
		set_reason(reason, "invalid release policy");
		return APP_EINVAL;
	}
	for (size_t i = 0; i < nsigs; i++) {
		struct nec_release rel;
		const char *why = NULL;
		if (!sigs[i] || nec_release_verify(&rel, &why, sigs[i]) != 0) {
			last = why ? why : "invalid release signature";
			continue;
		}
		size_t who = policy->ntrusted;
		for (size_t k = 0; k < policy->ntrusted; k++)
			if (memcmp(policy->trusted[k], rel.pubkey, 32) == 0)
				who = k;
		if (who == policy->ntrusted) {
			last = "release signed by an untrusted key";
			continue;
		}
		if (used[who]) {
			last = "two release signatures by the same maintainer";
			continue;
		}
		if (rel.dev != policy->dev) {
			last = policy->dev ? "release is not a dev release" : "release is not a prod release";
			continue;
		}
		if (strcmp(rel.repo, policy->repo) != 0) {
			last = "release is for another repository";
			continue;
		}
		if (policy->min_version && (nec_version_cmp(rel.version, policy->min_version, &cmp) != 0 || cmp < 0)) {
			last = "release version is lower than the minimum (downgrade)";
			continue;
		}
		int diff = 0;
		for (int k = 0; k < 3; k++)
			diff |= sodium_memcmp(rel.pcr[k], doc->pcrs[k], ATTEST_PCR_LEN) != 0;
		if (diff) {
			last = "release is for other PCRs";
			continue;
		}
		used[who] = 1;
		count++;
	}
	if (valid)
		*valid = count;
	if (count < policy->threshold) {
		set_reason(reason, last ? last : nsigs ? "too few trusted release signatures" : "no release signatures");
		return APP_EREFUSED;
	}
	set_reason(reason, "enough release signatures");
	return 0;
}
