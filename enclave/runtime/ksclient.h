/*
 * ksclient.h: the keystore client (DESIGN §7; PROTOCOL.md "Keystore RPC
 * (kind 29525)"), used by appliance-enclave (enclave/runtime/sjournal.h) at start
 * and for its checkpoints, and by `appliance keystore status|has|get|set`.
 *
 * A client is a session: a fresh secp256k1 key made at ksclient_new (never
 * stored), a relay pool of its own and one subscription to kind-29525
 * events p-tagging the session key. Each call:
 *   - builds the request (appliance/ksrpc.h); for set, get and has-by-
 *     attestation a fresh attestation from the NSM with public_key = the
 *     session pubkey, so only this enclave can read the answer;
 *   - publishes a kind-29525 event, content = NIP-44 v2 to the keystore,
 *     tags ["p", keystore], to every relay of the pool;
 *   - waits (driving the pool) for the keystore's answer: kind 29525 by
 *     that keystore with ["e", request id], NIP-44 from it, whose id is the
 *     request's; anything else is ignored (counted).
 * The relays reach the keystore through the enclave's egress bridge when
 * there is one (egress_default_connect_to), directly otherwise.
 *
 * Results: a call returns 0 when the keystore answered; the answer's err
 * (struct ksrpc_reply) then tells success (0), a definitive "not found"
 * (APP_ENOTFOUND) or a refusal (any other code). No answer in time is
 * APP_ETIMEOUT; no relay reachable APP_ECONN: neither is ever a "not found".
 *
 * Discovery: ksclient_discover reads kind-13793 announcements, verifies
 * them (nec_announcement_verify: attestation, x tags, expiration) and keeps
 * those named "keystore" whose PCR0 is one of the expected images; one per
 * identity (PCR0, PCR4): the newest (created_at, then the attestation's
 * millisecond timestamp), since a restarted keystore has a new service key.
 *
 * Not thread-safe: one thread at a time (the owner may hand it over).
 * Logs: keystore pubkey prefix, request id prefix, method, outcome.
 */
#ifndef ENCLAVE_KSCLIENT_H
#define ENCLAVE_KSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/ksrpc.h"

struct nsm;
struct event;
struct keypair;
struct attest_verifier;

#define KSCLIENT_RELAYS_MAX 16
#define KSCLIENT_DISCOVER_MAX 32 /* keystores kept by one discovery */

struct ksclient_opts {
	const char *const *relays; /* relay URLs (copied by the pool) */
	size_t nrelays;            /* 1..KSCLIENT_RELAYS_MAX */
	const char *ca_file;       /* extra CA for wss:// (tests); NULL = system store */
	struct nsm *nsm;           /* attestations (borrowed); NULL: only status, has {pcrs}, revoke */
	unsigned timeout_ms;       /* default per-call wait; 0 = 10000 */
	const struct keypair *session_key; /* NULL (always, in an enclave): a fresh one; else this key
					      (copied; for replaying a saved attestation in tests and debugging) */
};

struct ksclient;

/*
 * ksclient_new: a session key, a pool on the relays and the reply
 * subscription. Returns 0 with *out (ksclient_free); APP_EINVAL (no or too
 * many relays, a bad URL); APP_ENOENT (ca_file); APP_ENOMEM; APP_EINTERNAL.
 */
int ksclient_new(struct ksclient **out, const struct ksclient_opts *o) APP_WUR;

/* ksclient_free: closes the pool, wipes the session key; NULL is a no-op. */
void ksclient_free(struct ksclient *c);

/* ksclient_pubkey: the session pubkey (32 bytes). */
const uint8_t *ksclient_pubkey(const struct ksclient *c);

/*
 * ksclient_call: sends req (its id is set here; for set, get and has
 * without pcrs the attestation is made here) to keystore and waits up to
 * timeout_ms (0: the default) for the answer, *rep (ksrpc_reply_free).
 * req stays the caller's. Returns 0 with *rep (whose err may be non-zero:
 * the keystore's answer); APP_ETIMEOUT (no answer); APP_ECONN (every relay
 * failed the publish); APP_EINVAL (no NSM for a method that needs an
 * attestation); the NSM's errors; APP_ENOMEM.
 */
int ksclient_call(struct ksclient *c, struct ksrpc_reply **rep, const uint8_t keystore[32], struct ksrpc_request *req,
		  unsigned timeout_ms) APP_WUR;

/* Outcome of one keystore in a startup or checkpoint round. */
enum ksclient_answer {
	KSCLIENT_FOUND = 1,   /* data and epoch */
	KSCLIENT_NOT_FOUND,   /* a definitive "Not found" */
	KSCLIENT_REFUSED,     /* an error answer (policy, rollback, limits, ...) */
	KSCLIENT_NO_ANSWER,   /* timeout or transport failure */
};

/* ksclient_answer_name: "found", "not_found", "refused", "no_answer". */
const char *ksclient_answer_name(enum ksclient_answer a);

/*
 * ksclient_get: get with the release signatures sigs[0..nsigs) (borrowed,
 * copied into the request). *ans says what the keystore answered; on
 * KSCLIENT_FOUND, data[0..*len) (cap >= KSRPC_DATA_MAX; the caller wipes
 * it), *epoch and why = "exact" or "release" (the entry of another build,
 * given through release signatures); otherwise the reason in why[0..whycap).
 * Returns 0 (see *ans), or a local failure (APP_ENOMEM, NSM errors).
 */
int ksclient_get(struct ksclient *c, enum ksclient_answer *ans, uint8_t *data, size_t *len, uint64_t *epoch,
		 char *why, size_t whycap, const uint8_t keystore[32], struct event *const *sigs, size_t nsigs,
		 unsigned timeout_ms) APP_WUR;

/*
 * ksclient_set: set data[0..len) (1..KSRPC_DATA_MAX) at epoch with policy
 * (may be NULL). *ans: KSCLIENT_FOUND means stored; KSCLIENT_REFUSED with
 * the reason (e.g. APP_EROLLBACK), KSCLIENT_NO_ANSWER. Returns as
 * ksclient_get.
 */
int ksclient_set(struct ksclient *c, enum ksclient_answer *ans, char *why, size_t whycap, const uint8_t keystore[32],
		 const uint8_t *data, size_t len, uint64_t epoch, const struct ksrpc_policy *policy,
		 unsigned timeout_ms) APP_WUR;

/* A keystore found by discovery. */
struct ksclient_keystore {
	uint8_t pubkey[32];
	uint8_t pcr0[48];
	uint8_t pcr4[48];
	uint64_t created_at, expires_at;
	uint64_t attested_ms; /* the attestation's timestamp: breaks created_at ties (same second) */
};

/*
 * ksclient_discover: waits up to timeout_ms for the relays' stored
 * kind-13793 events (EOSE from all) and keeps valid keystore
 * announcements whose PCR0 is in images[0..nimages) (48 bytes each),
 * verified with v (allow_dev as given), the newest per (PCR0, PCR4), into
 * out[0..*n) (at most max). repo (NULL: any) filters on the r tag.
 * Returns 0 (also with *n = 0); APP_ETIMEOUT (no relay answered at all);
 * APP_ENOMEM.
 */
int ksclient_discover(struct ksclient *c, struct ksclient_keystore *out, size_t max, size_t *n,
		      struct attest_verifier *v, int allow_dev, const uint8_t (*images)[48], size_t nimages,
		      const char *repo, unsigned timeout_ms) APP_WUR;

#endif
