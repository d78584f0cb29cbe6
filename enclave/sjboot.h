/*
 * sjboot.h: appliance-enclave's sealed journal from its configuration
 * (DESIGN §8; PROTOCOL.md "Sealed journal and checkpoints"): the glue
 * between the [keystore] section of the instance configuration
 * (enclave/econfig.h), the keystores (enclave/runtime/ksset.h), the store (the
 * parent's sealed-blob store, enclave/runtime/parentlink.h, or a local directory)
 * and the journal (enclave/runtime/sjournal.h, enclave/runtime/journal.h).
 *
 * [keystore] keys (econfig_print_help lists them with their defaults):
 *   keystore     a keystore's pubkey (hex or npub); repeatable
 *   image        PCR0 (96 hex) of keystore builds to discover (13793); repeatable
 *   relay        where keystores are reached (default: [relays] relay); repeatable
 *   allow_dev, dev_root   accept keystores attested by the development root
 *   store        "parent" (the parent's sealed-blob store) or "dir:PATH"
 *   repo, version, maintainer (repeatable), threshold, type, bind_host
 *                the upgrade policy stored with the key: which maintainers
 *                (threshold of them) must sign a newer build for it to get
 *                the key; release type (prod/dev, default by the root);
 *                bind the entry to this host (PCR4)
 *   checkpoint_interval   seconds between checkpoints (and after each money record)
 *   start_timeout         seconds to wait for the keystores at start (0 = forever)
 *   timeout_ms            one keystore request
 * The sealed journal is used when keystore or image is set; otherwise the
 * instance keeps its plain journal file ([service] journal).
 * The release signatures of this build go with every get, so an upgraded
 * build can take its predecessor's key: those of [service] release_file plus
 * those fetched from the keystore relays at start (enclave/releases.h; waits
 * for EOSE at most [keystore] timeout_ms; relay failures only warn).
 */
#ifndef ENCLAVE_SJBOOT_H
#define ENCLAVE_SJBOOT_H

#include <stddef.h>

#include "appliance/err.h"

struct econfig;
struct journal;
struct parentlink;
struct sjboot;

/* sjboot_enabled: 1 when the configuration names keystores (keystore or image). */
int sjboot_enabled(const struct econfig *cfg);

/*
 * sjboot_validate: checks the [keystore] values (called by econfig's
 * validation). Returns 0 or APP_EINVAL with err naming the key.
 */
int sjboot_validate(const struct econfig *cfg, char *err, size_t errcap) APP_WUR;

/*
 * sjboot_set_parent_link: the control link for store = parent (set once by
 * main() when there is a parent; borrowed, must outlive every sjboot).
 */
void sjboot_set_parent_link(struct parentlink *pl);

/*
 * sjboot_open: the keystores, the store, sjournal_open (which waits for
 * the keystores, replays and checks) and a journal over it, *j (close it
 * with journal_close before sjboot_free). should_stop (may be NULL) ends the
 * wait. Returns 0; APP_EINVAL (store = parent without a parent link); the
 * errors of ksset_new, the store and sjournal_open; err names the reason.
 */
int sjboot_open(struct journal **j, struct sjboot **out, const struct econfig *cfg, int (*should_stop)(void *),
		void *stop_arg, char *err, size_t errcap) APP_WUR;

/* sjboot_start: starts the checkpoint thread (after the replay). Returns 0 or sjournal_start's error. */
int sjboot_start(struct sjboot *b) APP_WUR;

/* sjboot_free: frees the keystores and the store (after journal_close); NULL is a no-op. */
void sjboot_free(struct sjboot *b);

#endif
