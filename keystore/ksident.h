/*
 * ksident.h: the keystore's announcement (DESIGN §7). The service identity
 * itself is the enclave runtime's (enclave/runtime/identity.h: a key made
 * inside the enclave from NSM GetRandom and getrandom(), in guarded memory,
 * new at every start since the keystore keeps nothing across restarts);
 * this module adds the NEC-02 kind 13793 announcement with
 * ["name","keystore"] and ["k","29525"].
 */
#ifndef KEYSTORE_KSIDENT_H
#define KEYSTORE_KSIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct event;
struct identity;

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
int ksident_announcement(struct identity *id, struct event **out, uint64_t *expires_at,
			 const struct ksident_announce *a, uint64_t now) APP_WUR;

#endif
