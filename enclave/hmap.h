/*
 * hmap.h: a bounded hash map from 32-byte keys (event ids, pubkeys,
 * payment hashes: all attacker-chosen) to pointers, hashed with a
 * per-map random SipHash-2-4 key (libsodium crypto_shorthash) so that
 * colliding keys cannot be ground offline. Chaining; the bucket array
 * doubles when the load passes 3/4. Not thread-safe: one owner.
 */
#ifndef ENCLAVE_HMAP_H
#define ENCLAVE_HMAP_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define HMAP_MAX_ENTRIES (1u << 24) /* hard cap of any map */

struct hmap;

/* hmap_new: an empty map of at most max entries (1..HMAP_MAX_ENTRIES). Returns 0, APP_EINVAL, APP_ENOMEM. */
int hmap_new(struct hmap **out, size_t max) APP_WUR;

/* hmap_free: frees the map (values are the caller's; free_val may be NULL). NULL is a no-op. */
void hmap_free(struct hmap *m, void (*free_val)(void *val));

/* hmap_get: the value stored under key, or NULL. */
void *hmap_get(const struct hmap *m, const uint8_t key[32]);

/*
 * hmap_put: stores val (not NULL) under key. Returns 0; APP_EEXIST (key
 * present: nothing changes); APP_ELIMIT (max entries); APP_ENOMEM.
 */
int hmap_put(struct hmap *m, const uint8_t key[32], void *val) APP_WUR;

/* hmap_del: removes key; returns its value, or NULL when absent. */
void *hmap_del(struct hmap *m, const uint8_t key[32]);

/* hmap_count: entries stored. */
size_t hmap_count(const struct hmap *m);

/*
 * hmap_foreach: calls fn for every entry (any order) until it returns
 * non-zero (which hmap_foreach then returns). fn must not change the map.
 */
int hmap_foreach(const struct hmap *m, int (*fn)(void *arg, const uint8_t key[32], void *val), void *arg);

#endif
