/*
 * ksident.h: the keystore's service identity (DESIGN §7): a secp256k1
 * service key made inside the enclave at start, secret = SHA-256(NSM
 * GetRandom 32 bytes || getrandom() 32 bytes) (neither source alone decides
 * it), in guarded memory; a new one at every start (the keystore keeps
 * nothing across restarts). Attestations bind it (public_key = the x-only
 * pubkey), and its announcement is a NEC-02 kind 13793 with
 * ["name","keystore"] and ["k","29525"].
 */
#ifndef KEYSTORE_KSIDENT_H
#define KEYSTORE_KSIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct event;
struct keypair;
struct ksident;

/*
 * ksident_new: opens the NSM at nsm_spec (nsm_open_spec: "/dev/nsm",
 * "unix:PATH") and makes the service key. Returns 0 with *out
 * (ksident_free); the errors of nsm_open_spec / nsm_get_random; APP_EIO
 * (getrandom); APP_ENOMEM.
 */
int ksident_new(struct ksident **out, const char *nsm_spec) APP_WUR;

/* ksident_free: wipes the key, closes the NSM; NULL is a no-op. */
void ksident_free(struct ksident *id);

/* ksident_keypair: the service key (borrowed). */
const struct keypair *ksident_keypair(const struct ksident *id);

/* ksident_pubkey: the 32-byte x-only service pubkey. */
const uint8_t *ksident_pubkey(const struct ksident *id);

/* What the announcement says besides the attestation. */
struct ksident_announce {
	const char *name;    /* "keystore" */
	const char *version; /* dotted numbers */
	const char *repo;
	const char *inbox;   /* the relay clients send requests to (NULL: none) */
	const char *content; /* free text (NULL: "") */
};

/*
 * ksident_announcement: a fresh attestation (public_key = the service
 * pubkey) wrapped as a 23793 and embedded in a signed 13793 announcement
 * (nec_announcement_create, with ["k","29525"] instead of the job kind) at
 * `now`. *expires_at (may be NULL) gets its expiration.
 * Returns 0 with *out (event_free); the errors of nsm_attestation,
 * nec_attestation_create (APP_EDEBUG), nec_announcement_create; APP_ENOMEM.
 */
int ksident_announcement(struct ksident *id, struct event **out, uint64_t *expires_at,
			 const struct ksident_announce *a, uint64_t now) APP_WUR;

#endif
