/*
 * ksset.h: the keystores an enclave uses (DESIGN §7-§8), as the
 * struct sj_keystores_ops of the sealed journal (enclave/runtime/sjournal.h), over
 * one keystore client session (enclave/runtime/ksclient.h).
 *
 * The set is the configured pubkeys plus, when images are given, every
 * keystore discovered by its announcement (ksclient_discover: verified
 * attestation, ["name","keystore"], PCR0 among the images; the newest per
 * host, since a restarted keystore has a new key). Discovery runs at the
 * first refresh, after any round in which a keystore did not answer, and
 * at most every rediscover_s otherwise. Expired announcements drop out.
 *
 * Every get carries the release signatures of this build (so a new build
 * can take over its predecessor's entry); every set carries the policy
 * (repository, maintainers, threshold, version, t, bind_host) the entry is
 * stored with.
 *
 * Not thread-safe (one user at a time: the journal's opener, then its
 * checkpoint thread).
 */
#ifndef ENCLAVE_KSSET_H
#define ENCLAVE_KSSET_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/ksrpc.h"
#include "enclave/runtime/sjournal.h"

struct event;

#define KSSET_MAX 32 /* keystores in a set */

struct ksset_opts {
	const char *const *relays; /* where keystores are reached and discovered */
	size_t nrelays;
	const char *ca_file;
	const char *nsm;           /* NSM spec for attestations (its own connection) */
	const uint8_t (*pubkeys)[32]; /* fixed keystores */
	size_t npubkeys;
	const uint8_t (*images)[48];  /* PCR0 of acceptable keystore builds (discovery); none: no discovery */
	size_t nimages;
	const char *repo;          /* discovery filter on the r tag (NULL: any) */
	int allow_dev;             /* accept dev-root keystore attestations (dev mode) */
	const char *dev_root;      /* the development root file, with allow_dev */
	struct ksrpc_policy policy;           /* sent with every set */
	struct event *const *sigs; /* release signatures for this build (copied) */
	size_t nsigs;
	unsigned timeout_ms;       /* per request (default 10000) */
	unsigned rediscover_s;     /* default 60 */
};

struct ksset;

/*
 * ksset_new: opens the NSM, the client session and the verifier.
 * Returns 0 with *out (ksset_free); APP_EINVAL (no keystore source, too
 * many); the errors of nsm_open_spec, ksclient_new,
 * attest_verifier_add_dev_root_file; APP_ENOMEM.
 */
int ksset_new(struct ksset **out, const struct ksset_opts *o) APP_WUR;

/* ksset_free: frees; NULL is a no-op. */
void ksset_free(struct ksset *k);

/* ksset_ops: the sj_keystores_ops of a ksset (arg = the ksset). */
const struct sj_keystores_ops *ksset_ops(void);

#endif
