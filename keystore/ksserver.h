/*
 * ksserver.h: appliance-keystore's network side (DESIGN §7; PROTOCOL.md
 * "Keystore RPC (kind 29525)"): one relay pool, one subscription to kind
 * 29525 events p-tagging the service key, and announcements.
 *
 * For each request event (verified by the pool: id, signature, filter):
 *   1. created_at within request_max_age of now (else ignored: counted);
 *   2. rate limits: rate_global requests per second for everyone, then
 *      rate_requests per pubkey per rate_window (else ignored: counted);
 *   3. content: NIP-44 v2 from the request's pubkey (undecryptable:
 *      ignored: counted; there is nobody to answer safely);
 *   4. kscore_handle answers (kscore.h);
 *   5. the reply: kind 29525, ["e", request id], ["p", client], content =
 *      NIP-44 of the reply JSON to the request's pubkey (the attested key
 *      for every method that checks an attestation), published to every
 *      relay.
 * Announcement (ksident.h) at start, every announce_interval, always
 * before the previous one expires, and when a relay (re)connects (at most
 * every 10 s: a restarted relay may have lost it). Expired entries are removed
 * every 10 s.
 *
 * Logs: one line per request (event id prefix, client prefix, method,
 * outcome and reason, entry and PCR0 prefixes), never data or keys. The
 * line "event=ready pubkey=HEX npub=NPUB" tells that requests are taken.
 */
#ifndef KEYSTORE_KSSERVER_H
#define KEYSTORE_KSSERVER_H

#include "appliance/err.h"

struct ksconfig;

#define KSSERVER_RATE_KEYS 4096 /* pubkeys tracked by the per-pubkey limiter */

/*
 * ksserver_run: runs the keystore until SIGINT/SIGTERM. Returns 0 after a
 * clean stop, or an APP_E* code for a startup failure (NSM, dev root,
 * revocation file, relay pool).
 */
int ksserver_run(const struct ksconfig *cfg) APP_WUR;

#endif
