/*
 * lru.h: a bounded set of (event id, tag) keys with least-recently-used
 * eviction: the relay pool's dedupe set (an event seen on several relays, or
 * again after a resubscription, is delivered once per subscription; the tag
 * is the subscription).
 *
 * Fixed memory chosen at creation (about 56 bytes per entry); no allocation
 * afterwards. Lookups hash the id with a per-set random seed, so ids chosen
 * by a relay cannot be aimed at one bucket. Not thread-safe (the pool uses
 * it from its service thread only).
 */
#ifndef RELAY_CLIENT_LRU_H
#define RELAY_CLIENT_LRU_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define LRU_MAX_ENTRIES (1u << 24) /* hard cap on the capacity of one set */

struct lru;

/*
 * lru_new: an empty set holding at most `cap` keys (1..LRU_MAX_ENTRIES).
 * Returns 0 with *out (free with lru_free), APP_ERANGE, APP_ENOMEM.
 */
int lru_new(struct lru **out, size_t cap) APP_WUR;

/* lru_free: frees; NULL is a no-op. */
void lru_free(struct lru *l);

/*
 * lru_contains: 1 if (id, tag) is in the set (and marks it most recently
 * used), else 0.
 */
int lru_contains(struct lru *l, const uint8_t id[32], uint32_t tag);

/*
 * lru_insert: adds (id, tag) as the most recently used key. When the set is
 * full the least recently used key is evicted first. Inserting a key that is
 * present only refreshes it. Returns 1 when a key was evicted, else 0.
 */
int lru_insert(struct lru *l, const uint8_t id[32], uint32_t tag);

/* lru_size: keys held now. */
size_t lru_size(const struct lru *l);

/* lru_capacity: the cap given to lru_new. */
size_t lru_capacity(const struct lru *l);

#endif
