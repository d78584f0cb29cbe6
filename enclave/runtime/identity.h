/*
 * identity.h: the enclave's service identity (DESIGN §2, §5.1): a secp256k1
 * service key made inside the enclave at start, and attestation documents
 * from the NSM that bind it.
 *
 * Key: secret = SHA-256(NSM GetRandom 32 bytes ‖ getrandom() 32 bytes), so
 * neither source alone decides it (a broken NSM emulator or a weak kernel
 * RNG is not enough); retried in the negligible case of an invalid scalar.
 * The key lives in a struct keypair (sodium_malloc, mlocked, wiped);
 * temporaries are wiped. It exists only in this process: every start makes a
 * new one (the keystore work will persist the *disk* key, never this one).
 *
 * Attestations: NSM Attestation with public_key = the 32-byte x-only
 * service pubkey and optional user_data (the job result digest), wrapped in
 * a signed kind-23793 event (appliance/nec.h). The NSM connection has its own
 * lock, so worker threads may attest concurrently with the main thread.
 */
#ifndef ENCLAVE_IDENTITY_H
#define ENCLAVE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct event;
struct keypair;
struct identity;

/*
 * identity_new: opens the NSM at `nsm_spec` ("/dev/nsm", "dev:PATH",
 * "unix:PATH": nsm_open_spec) and makes the service key.
 * Returns 0 with *out (identity_free); the errors of nsm_open_spec and
 * nsm_get_random (APP_ENOENT, APP_ECONN, APP_EIO, ...); APP_EIO (getrandom
 * failed); APP_ENOMEM; APP_EINTERNAL.
 */
int identity_new(struct identity **out, const char *nsm_spec) APP_WUR;

/* identity_free: wipes the key, closes the NSM; NULL is a no-op. */
void identity_free(struct identity *id);

/* identity_keypair: the service key (borrowed). */
const struct keypair *identity_keypair(const struct identity *id);

/* identity_pubkey: the 32-byte x-only service pubkey. */
const uint8_t *identity_pubkey(const struct identity *id);

/*
 * identity_attest: a fresh kind-23793 attestation event (NEC-01) signed by
 * the service key at `now` whose document has public_key = the service
 * pubkey and user_data = user_data[0..len) (NULL: none; at most 1024
 * bytes). *expires_at (may be NULL) gets the event's expiration (the leaf
 * certificate's notAfter). Thread-safe.
 * Returns 0 with *out (event_free); the errors of nsm_attestation and
 * nec_attestation_create (APP_EDEBUG for a debug-mode document).
 */
int identity_attest(struct identity *id, struct event **out, uint64_t *expires_at, const uint8_t *user_data,
		    size_t len, uint64_t now) APP_WUR;

#endif
