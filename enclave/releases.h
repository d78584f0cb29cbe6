/*
 * releases.h: the release signatures (63794, NEC-05; PROTOCOL.md "Sealed
 * journal and checkpoints") of the running build, fetched from the relays at
 * start. On Nitro the configuration ([service] release_file) is inside the
 * measured image, so it can never hold a signature over the image's own
 * PCRs; the signatures that authorise an upgrade come from the relays instead.
 *
 * The enclave reads its own PCR0/1/2 from the NSM (DescribePCR), subscribes
 * on the keystore relays ([keystore] relay, else [relays] relay) to
 * {kinds:[63794], authors:[keystore maintainers], "#x":[own PCR0]} and keeps
 * the events that pass nec_release_verify, are signed by a configured
 * maintainer, name exactly its own PCR0, PCR1 and PCR2, carry the configured
 * repository ([keystore] repo, else [service] repo) and, when [keystore] type
 * is set, that release type. It waits for EOSE from every relay or the
 * bound, whichever comes first.
 */
#ifndef ENCLAVE_RELEASES_H
#define ENCLAVE_RELEASES_H

#include <stddef.h>

#include "appliance/err.h"

struct econfig;
struct event;

#define RELEASES_FETCH_TIMEOUT_MS 5000 /* default bound of the wait for EOSE */

/*
 * releases_fetch: appends the fetched release signatures of this build to
 * out[*n..max), skipping those whose id is already in out[0..*n) (e.g. from
 * release_file); *n is updated even on error (event_free each out[i]). Does
 * nothing without [keystore] maintainers. should_stop (may be NULL) ends the
 * wait early. timeout_ms: the bound (0: RELEASES_FETCH_TIMEOUT_MS).
 * Returns 0 (also when a relay failed or the bound passed: what was found is
 * kept); APP_EINVAL (*n > max); the errors of nsm_open_spec and
 * nsm_describe_pcr (own PCRs unknown), relay_pool_new, relay_pool_add_relay,
 * relay_sub_open and relay_pool_service; APP_ENOMEM. Callers treat every
 * error as a warning: an upgrade then lacks these signatures.
 */
int releases_fetch(struct event **out, size_t max, size_t *n, const struct econfig *cfg, unsigned timeout_ms,
		   int (*should_stop)(void *), void *stop_arg) APP_WUR;

#endif
