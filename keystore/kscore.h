/*
 * kscore.h: the keystore's state and request handling (DESIGN §7;
 * PROTOCOL.md "Keystore RPC (kind 29525)"), without any network: a request's
 * plaintext and its sender's pubkey in, the reply's plaintext out. The
 * network side (relays, NIP-44, rate limits, announcements) is ksserver.h.
 *
 * Entries live in RAM only. An entry is identified by
 *   SHA-256("appliance-keystore-entry-v1" || PCR0 || PCR1 || PCR2 ||
 *           (bind_host ? PCR4 : 48 zero bytes) || bind_host || root kind)
 * where root kind says whether the setter's attestation chained to AWS's
 * root or to a development root: an entry made under the development root
 * (which anyone holding the dev CA can imitate) is never readable with an
 * AWS attestation and vice versa. Its data (1..KSRPC_DATA_MAX bytes) is
 * kept in one sodium_malloc arena (guarded, wiped on removal); everything
 * else in ordinary memory.
 *
 * Every attestation is verified in full (attest.h: chain to a pinned root,
 * COSE signature, certificate profile and validity, timestamp within
 * attestation_max_age of now, PCR0 not all zero) and its public_key must be
 * the request's 32-byte pubkey.
 *
 * set   stores data under the attester's PCRs. An existing entry (same
 *       identity, thus the same PCRs) is replaced only with an epoch >= its
 *       own: a lower one is refused with APP_EROLLBACK. Replacements are
 *       logged. Caps: max_entries in all, max_per_pcrs entries sharing
 *       PCR0/1/2 (several hosts or policies), max_per_pubkey entries created
 *       by one request pubkey. An entry expires ttl seconds after its last
 *       set.
 * get   returns {data, epoch} of the entry with the attester's identity
 *       (bound to the attester's PCR4 first, then unbound), unless its
 *       policy's maintainers revoked this build. Otherwise, with release
 *       signatures, from the best entry whose policy they satisfy: at least
 *       `threshold` distinct maintainers of that policy signed a valid kind
 *       63794 release (nec_release_verify) with t = the entry's t, r = the
 *       entry's repo, version >= the entry's version, x = the attester's
 *       PCR0/1/2, for a build none of the entry's maintainers revoked; the
 *       entry must have the attester's root kind (and PCR4 when bound).
 *       The best is the one with the highest version, then epoch, then the
 *       latest set. "Not found" (APP_ENOTFOUND) is answered only when no
 *       entry has the attester's identity and either no release signature
 *       was given or all given are valid and no entry of their repositories
 *       exists; any other failure is a refusal (APP_EREFUSED) naming why.
 * has, status, revoke, ping: see ksrpc.h.
 *
 * Revocations (ksrpc.h, kind 63798) are accepted when their signer is a
 * maintainer of a stored entry with the same repo, or one of the
 * configured trusted maintainers; they never expire; at most
 * max_revocations are kept (more: refused).
 *
 * Logs: method, outcome, entry id prefix and PCR0 prefix; never data.
 * Not thread-safe: one owner.
 */
#ifndef KEYSTORE_KSCORE_H
#define KEYSTORE_KSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/ksrpc.h"

struct attest_verifier;
struct event;

#define KSCORE_ENTRIES_MAX 65536       /* cap on max_entries (arena: 64 MiB) */
#define KSCORE_REVOCATIONS_MAX 65536   /* cap on max_revocations */
#define KSCORE_TRUSTED_MAX 64          /* configured trusted maintainers */
#define KSCORE_DETAIL_MAX 200          /* bytes of an outcome's reason */

struct kscore_config {
	const char *name;             /* reported by status (borrowed) */
	const char *version;          /* reported by status (borrowed) */
	uint64_t attestation_max_age; /* seconds; 1..86400 */
	int allow_dev;                /* accept attestations chaining to a pinned development root */
	uint64_t ttl;                 /* seconds an entry lives after its last set; >= 60 */
	size_t max_entries;           /* 1..KSCORE_ENTRIES_MAX */
	size_t max_per_pcrs;          /* >= 1 */
	size_t max_per_pubkey;        /* >= 1 */
	size_t max_revocations;       /* 0..KSCORE_REVOCATIONS_MAX */
	const uint8_t (*trusted)[32]; /* maintainers whose revocations are always accepted (copied) */
	size_t ntrusted;              /* 0..KSCORE_TRUSTED_MAX */
};

/* What a request did (for logs and counters). */
struct kscore_outcome {
	enum ksrpc_method method; /* 0 when the request did not parse */
	int err;                  /* 0 or the APP_E* code answered */
	char reason[KSCORE_DETAIL_MAX];
	char entry[17];           /* hex prefix of the entry id concerned, "" if none */
	char pcr0[17];            /* hex prefix of the attester's PCR0, "" if none */
	int match;                /* get: 1 exact, 2 by release signatures */
	int replaced;             /* set: an existing entry was replaced */
};

struct kscore_stats {
	uint64_t started_at;
	size_t entries, revocations;
	uint64_t requests, refused, not_found;
	uint64_t sets, replaced, gets, upgrades, expired;
};

struct kscore;

/* kscore_config_default: name "keystore", version "0.1.0", 300 s, no dev, 72 h, 4096/16/4 entries, 4096 revocations. */
void kscore_config_default(struct kscore_config *cfg);

/*
 * kscore_new: an empty keystore. v (borrowed, must outlive it) verifies
 * attestations (pin a development root on it for allow_dev).
 * Returns 0 with *out (kscore_free); APP_EINVAL (a value out of range);
 * APP_ENOMEM.
 */
int kscore_new(struct kscore **out, const struct kscore_config *cfg, struct attest_verifier *v, uint64_t now) APP_WUR;

/* kscore_free: wipes every entry's data and frees; NULL is a no-op. */
void kscore_free(struct kscore *ks);

/*
 * kscore_handle: answers one request: plain[0..plen) is the decrypted
 * content of a 29525 event from `client` (its pubkey) received at `now`
 * (unix seconds). *reply (free with ksrpc_text_free) is the reply JSON,
 * also for refusals (an error reply); oc (may be NULL) says what happened.
 * Returns 0, or APP_ENOMEM / APP_EINTERNAL when no reply could be made.
 */
int kscore_handle(struct kscore *ks, char **reply, size_t *reply_len, struct kscore_outcome *oc,
		  const uint8_t client[32], const char *plain, size_t plen, uint64_t now) APP_WUR;

/*
 * kscore_add_revocation: records a revocation (ksrpc.h) if it verifies and
 * its signer is trusted (above). Returns 0 (also when already known);
 * the errors of ksrpc_revocation_verify; APP_EREFUSED (signer not a
 * maintainer of any entry of that repo, nor trusted); APP_ELIMIT (full);
 * APP_ENOMEM. *reason (may be NULL) is static text.
 */
int kscore_add_revocation(struct kscore *ks, const char **reason, const struct event *ev) APP_WUR;

/*
 * kscore_preload_revocation: as kscore_add_revocation without the signer
 * check, for revocations the configuration names (revocation_file): a
 * revocation can only take access away, and the files are few.
 */
int kscore_preload_revocation(struct kscore *ks, const char **reason, const struct event *ev) APP_WUR;

/* kscore_gc: removes (and wipes) entries expired at now. Returns how many. */
size_t kscore_gc(struct kscore *ks, uint64_t now);

/* kscore_get_stats: counters. */
void kscore_get_stats(const struct kscore *ks, struct kscore_stats *out);

#endif
