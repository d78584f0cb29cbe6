/*
 * nec.h: NEC events (nostrband "NECs"; DESIGN §5.1; reference
 * enclaved-family.md §1), made strict:
 *
 *   23793 attestation (NEC-01), signed by the service key, never published
 *         alone: content = base64 of the attestation document, whose
 *         public_key is the 32-byte x-only event pubkey; tags ["-"],
 *         ["t","prod"|"dev"] (by the document's root), ["expiration", leaf
 *         notAfter], ["alt", ...].
 *   13793 instance announcement (NEC-02, replaceable), signed by the same
 *         service key: ["tee_root", JSON of the 23793], ["x", hex, "PCRn"] for
 *         PCR0, PCR1, PCR2 (and PCR4/PCR8 when non-zero), ["t"], ["name"],
 *         ["v"], ["r"], ["relay"], ["expiration"], ["o","true"|"false"],
 *         ["k","5720"], ["price", base_msat, msat_per_unit, unit],
 *         ["release", JSON of a 63794] + ["p", maintainer, "releaser"] per
 *         release, ["keystore", pubkey].
 *   63794 release signature (NEC-05), signed by a maintainer: content "",
 *         ["t","prod"|"dev"], ["r", repo], ["v", version], ["x", hex, "PCRn"]
 *         for PCR0, PCR1, PCR2.
 *
 * Verification fixes keycrux's gaps: kind, t, r and version are checked;
 * every x tag must equal the attested PCR; expired events are refused; the
 * attestation's public_key must be the signer.
 *
 * Reasons (`const char **reason`, may be NULL) are static texts naming the
 * failed check; for the embedded document, struct attest_result has the
 * details (attest.h).
 */
#ifndef APPLIANCE_NEC_H
#define APPLIANCE_NEC_H

#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "err.h"

struct event;
struct keypair;

#define NEC_KIND_ATTESTATION 23793
#define NEC_KIND_ANNOUNCEMENT 13793
#define NEC_KIND_RELEASE 63794
#define NEC_KIND_JOB 5720

/*
 * Freshness window of an embedded attestation: the document may be as old
 * as its leaf certificate (AWS issues ~3 h leaves; the attestation event
 * expires with the leaf), plus 10 minutes of clock skew.
 */
#define NEC_ATTESTATION_MAX_AGE (3 * 3600 + 600)

#define NEC_REPO_MAX 256      /* bytes of an r tag */
#define NEC_VERSION_MAX 32    /* bytes of a v tag */
#define NEC_RELEASES_MAX 16   /* release tags per announcement */
#define NEC_TEXT_MAX 256      /* name, relay, price unit */

/*
 * nec_attestation_create: the 23793 event carrying doc, signed by kp at
 * created_at (unix seconds). The document is parsed (not verified) and must
 * carry public_key = kp's 32-byte x-only pubkey. t = "prod" when cabundle[0]
 * is AWS's root, else "dev"; expiration = the leaf's notAfter.
 * Returns 0 with *out (event_free); APP_EREFUSED (public_key is not kp's);
 * APP_EDEBUG (a debug-mode document); the errors of attest_doc_parse;
 * APP_ENOMEM; APP_EINTERNAL.
 */
int nec_attestation_create(struct event **out, const struct keypair *kp, const uint8_t *doc, size_t len,
			   uint64_t created_at) APP_WUR;

/*
 * nec_attestation_verify: checks a 23793 event: kind; id and signature
 * (APP_EBADID, APP_EBADSIG, APP_EBADKEY); ["-"] present and content base64
 * (APP_EPARSE, APP_ETOOBIG); the document (attest_verify with opts, whose
 * max_age 0 means NEC_ATTESTATION_MAX_AGE; the codes of attest_verify, with
 * ares filled); public_key equal to the event pubkey (APP_EREFUSED); one t
 * tag equal to the document's root kind (APP_EREFUSED); one expiration tag
 * equal to the leaf's notAfter (APP_EREFUSED) and after T (APP_EEXPIRED).
 * Wrong kind: APP_EINVAL. On success *doc (may be NULL) gets the document.
 */
int nec_attestation_verify(struct attest_verifier *v, const char **reason, struct attest_result *ares,
			   struct attest_doc **doc, const struct event *ev, const struct attest_verify_opts *opts) APP_WUR;

/* What an instance announces besides its attestation (nec_announcement_create). */
struct nec_announcement {
	const char *name;    /* ["name"], e.g. "appliance" */
	const char *version; /* ["v"] */
	const char *repo;    /* ["r"] */
	const char *relay;   /* ["relay"]: the inbox relay URL (NULL: none) */
	int open;            /* ["o","true"|"false"] */
	const char *content; /* free text (NULL: "") */
	uint64_t price_base_msat, price_msat_per_unit;
	const char *price_unit; /* NULL: no price tag */
	const struct event *const *releases; /* 63794 events to embed */
	size_t nreleases;
	const char *keystore; /* hex pubkey of the keystore used (NULL: none) */
	uint64_t expiration;  /* 0: the attestation's expiration */
};

/*
 * nec_announcement_create: a 13793 event signed by kp (the key that signed
 * attestation, a 23793) embedding it as tee_root, with x tags from its
 * document's PCRs. Returns 0 with *out; APP_EINVAL (attestation is not a
 * 23793 signed by kp, missing name/version/repo, too many releases, a
 * release that is not a 63794, expiration later than the attestation's);
 * APP_EPARSE (the attestation's content); APP_ENOMEM; APP_EINTERNAL.
 */
int nec_announcement_create(struct event **out, const struct keypair *kp, const struct event *attestation,
			    const struct nec_announcement *a, uint64_t created_at) APP_WUR;

/*
 * nec_announcement_verify: checks a 13793 event: kind (APP_EINVAL); id and
 * signature; one tee_root tag holding a 23793 by the same pubkey
 * (APP_EPARSE, APP_EREFUSED) that passes nec_attestation_verify; x tags
 * ["x", 96 lowercase hex, "PCRn"], at most one per n, PCR0..2 present, each
 * equal to the attested value (APP_EPARSE, APP_EREFUSED); t equal to the
 * attestation's (APP_EREFUSED); an expiration tag, after T (APP_EEXPIRED)
 * and not later than the attestation's (APP_EREFUSED).
 * On success *doc (may be NULL) gets the attested document.
 */
int nec_announcement_verify(struct attest_verifier *v, const char **reason, struct attest_result *ares,
			    struct attest_doc **doc, const struct event *ev, const struct attest_verify_opts *opts) APP_WUR;

/*
 * nec_announcement_releases: the 63794 events of an announcement's release
 * tags, parsed (not verified) into out[0..*n) (event_free each). At most
 * `max` (<= NEC_RELEASES_MAX). Returns 0; APP_EPARSE (a release tag is not
 * an event); APP_ELIMIT (more than max); APP_ENOMEM.
 */
int nec_announcement_releases(struct event **out, size_t max, size_t *n, const struct event *ann) APP_WUR;

/* A release: what a maintainer signs. */
struct nec_release {
	char repo[NEC_REPO_MAX + 1];
	char version[NEC_VERSION_MAX + 1];
	int dev; /* ["t","dev"] (1) or ["t","prod"] (0) */
	uint8_t pcr[3][ATTEST_PCR_LEN]; /* PCR0, PCR1, PCR2 */
	uint8_t pubkey[32];             /* the signer (set by nec_release_verify) */
};

/*
 * nec_release_create: the 63794 event for rel signed by kp. repo and
 * version must pass the checks of nec_release_verify. Returns 0, APP_EINVAL,
 * APP_ENOMEM, APP_EINTERNAL.
 */
int nec_release_create(struct event **out, const struct keypair *kp, const struct nec_release *rel,
		       uint64_t created_at) APP_WUR;

/*
 * nec_release_verify: checks a 63794 event and extracts it: kind
 * (APP_EINVAL); id and signature (APP_EBADID, APP_EBADSIG, APP_EBADKEY);
 * exactly one t ("prod"|"dev"), one r (1..NEC_REPO_MAX bytes, printable), one
 * v (a version, nec_version_cmp), and x tags for exactly PCR0, PCR1, PCR2,
 * each once, 96 lowercase hex (APP_EPARSE). Other tags are ignored.
 */
int nec_release_verify(struct nec_release *out, const char **reason, const struct event *ev) APP_WUR;

/*
 * nec_version_cmp: compares dotted numeric versions ("1.2.3", optional
 * leading "v", 1..4 components of 1..9 digits, no signs, suffixes or empty
 * components): *cmp = -1, 0, 1. Returns 0 or APP_EPARSE.
 */
int nec_version_cmp(const char *a, const char *b, int *cmp) APP_WUR;

/* Who may sign releases, and what they must say (DESIGN §7 "get"). */
struct nec_release_policy {
	const uint8_t (*trusted)[32]; /* maintainer pubkeys */
	size_t ntrusted;
	size_t threshold;        /* k: 1..ntrusted distinct trusted signers */
	const char *repo;        /* required r */
	int dev;                 /* required t: 1 dev, 0 prod */
	const char *min_version; /* NULL: any; else v must not be lower (no downgrade) */
};

/*
 * nec_release_policy_check: 0 when at least policy->threshold distinct
 * trusted maintainers signed a valid 63794 release (nec_release_verify) for
 * doc's PCR0, PCR1 and PCR2 (constant-time compare) with the policy's t, r
 * and a version >= min_version. Untrusted, invalid, mismatching and
 * duplicate signers are skipped; *valid (may be NULL) gets the count.
 * Returns 0; APP_EREFUSED (too few, *reason names the last rejection);
 * APP_EINVAL (threshold 0 or above ntrusted, no repo, bad min_version).
 */
int nec_release_policy_check(const struct nec_release_policy *policy, const struct attest_doc *doc,
			     const struct event *const *sigs, size_t nsigs, size_t *valid, const char **reason) APP_WUR;

#endif
