/*
 * announce.h: what the instance publishes about itself (DESIGN §5.1;
 * PROTOCOL.md "Instance announcement"), signed by the service key:
 *
 *   13793  NEC-02 announcement: tee_root (a fresh 23793), x tags of the
 *          attested PCRs, t, name, v, r, relay, expiration (the attestation's),
 *          o, k=5720, price (base, per unit, "MiB-epoch"), release + p
 *          releaser (configured release files), keystore (configured)
 *   31990  NIP-89 handler for kind 5720: d="appliance-5720", k="5720",
 *          content = {"name","about","nip90Params":{...}} metadata
 *   0      profile: {"name","about"} (the about says "development
 *          attestation" when the document chains to a development root)
 *   10002  NIP-65 relay list: ["r", relay] per configured relay
 *
 * The daemon republishes them every announce_interval seconds and always
 * before the attestation expires.
 */
#ifndef ENCLAVE_ANNOUNCE_H
#define ENCLAVE_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct econfig;
struct event;
struct keypair;

#define ANNOUNCE_EVENTS 4
#define ANNOUNCE_HANDLER_D "appliance-5720"

/*
 * announce_load_releases: reads the configured release files (each one JSON
 * event, at most 64 KiB) and checks each with nec_release_verify. Returns 0
 * with out[0..*n) (event_free each); APP_ENOENT/APP_EIO, APP_EPARSE,
 * APP_EBADSIG..., with err naming the file; APP_ENOMEM.
 */
int announce_load_releases(struct event **out, size_t max, size_t *n, const struct econfig *cfg, char *err,
			   size_t errcap) APP_WUR;

/*
 * announce_build: the four events, in the order 13793, 31990, 0, 10002,
 * created at `now`, signed by kp, the 13793 embedding `attestation` (a 23793
 * by kp). Returns 0 with out[0..ANNOUNCE_EVENTS) (event_free each); the
 * errors of nec_announcement_create; APP_ENOMEM; APP_EINTERNAL.
 */
int announce_build(struct event *out[ANNOUNCE_EVENTS], const struct econfig *cfg, const struct keypair *kp,
		   const struct event *attestation, const struct event *const *releases, size_t nreleases, int dev,
		   uint64_t now) APP_WUR;

#endif
