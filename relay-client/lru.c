/* lru.c: bounded (id, tag) set with LRU eviction: hash chains + a doubly linked recency list. */
#include "lru.h"

#include <stdlib.h>
#include <string.h>

#include "appliance/keys.h"

#define NIL UINT32_MAX

struct lru_entry {
	uint8_t id[32];
	uint32_t tag;
	uint32_t chain; /* next entry in the same bucket */
	uint32_t prev, next; /* recency list: head = most recent */
};

struct lru {
	struct lru_entry *e;
	uint32_t *bucket;
	uint32_t nbuckets_log2;
	uint32_t cap, used;
	uint32_t head, tail;
	uint64_t seed1, seed2;
};

int lru_new(struct lru **out, size_t cap)
{
	*out = NULL;
	if (cap == 0 || cap > LRU_MAX_ENTRIES)
		return APP_ERANGE;
	struct lru *l = calloc(1, sizeof *l);
	if (!l)
		return APP_ENOMEM;
	uint32_t lg = 4;
	while (((size_t)1 << lg) < 2 * cap)
		lg++;
	l->nbuckets_log2 = lg;
	l->e = malloc(cap * sizeof *l->e);
	l->bucket = malloc(((size_t)1 << lg) * sizeof *l->bucket);
	if (!l->e || !l->bucket) {
		lru_free(l);
		return APP_ENOMEM;
	}
	memset(l->bucket, 0xff, ((size_t)1 << lg) * sizeof *l->bucket);
	l->cap = (uint32_t)cap;
	l->head = l->tail = NIL;
	keys_random(&l->seed1, sizeof l->seed1);
	keys_random(&l->seed2, sizeof l->seed2);
	*out = l;
	return 0;
}

void lru_free(struct lru *l)
{
	if (!l)
		return;
	free(l->e);
	free(l->bucket);
	free(l);
}

size_t lru_size(const struct lru *l)
{
	return l->used;
}

size_t lru_capacity(const struct lru *l)
{
	return l->cap;
}

static uint32_t bucket_of(const struct lru *l, const uint8_t id[32], uint32_t tag)
{
	uint64_t a, b;
	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	uint64_t h = (a ^ l->seed1) * 0x9e3779b97f4a7c15ULL;
	h ^= (b ^ l->seed2 ^ ((uint64_t)tag << 17)) * 0xc2b2ae3d27d4eb4fULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(h >> (64 - l->nbuckets_log2));
}

static void unlink_recency(struct lru *l, uint32_t i)
{
	struct lru_entry *x = &l->e[i];
	if (x->prev != NIL)
		l->e[x->prev].next = x->next;
	else
		l->head = x->next;
	if (x->next != NIL)
		l->e[x->next].prev = x->prev;
	else
		l->tail = x->prev;
}

static void push_front(struct lru *l, uint32_t i)
{
	struct lru_entry *x = &l->e[i];
	x->prev = NIL;
	x->next = l->head;
	if (l->head != NIL)
		l->e[l->head].prev = i;
	l->head = i;
	if (l->tail == NIL)
		l->tail = i;
}

static uint32_t find(const struct lru *l, uint32_t b, const uint8_t id[32], uint32_t tag)
{
	for (uint32_t i = l->bucket[b]; i != NIL; i = l->e[i].chain)
		if (l->e[i].tag == tag && memcmp(l->e[i].id, id, 32) == 0)
			return i;
	return NIL;
}

int lru_contains(struct lru *l, const uint8_t id[32], uint32_t tag)
{
	uint32_t i = find(l, bucket_of(l, id, tag), id, tag);
	if (i == NIL)
		return 0;
	if (l->head != i) {
		unlink_recency(l, i);
		push_front(l, i);
	}
	return 1;
}

/* remove_from_bucket: unchains entry i from its bucket. */
static void remove_from_bucket(struct lru *l, uint32_t i)
{
	uint32_t b = bucket_of(l, l->e[i].id, l->e[i].tag);
	uint32_t *pp = &l->bucket[b];
	while (*pp != NIL && *pp != i)
		pp = &l->e[*pp].chain;
	if (*pp == i)
		*pp = l->e[i].chain;
}

int lru_insert(struct lru *l, const uint8_t id[32], uint32_t tag)
{
	uint32_t b = bucket_of(l, id, tag);
	uint32_t i = find(l, b, id, tag);
	if (i != NIL) {
		if (l->head != i) {
			unlink_recency(l, i);
			push_front(l, i);
		}
		return 0;
	}
	int evicted = 0;
	if (l->used < l->cap) {
		i = l->used++;
	} else {
		i = l->tail;
		unlink_recency(l, i);
		remove_from_bucket(l, i);
		evicted = 1;
	}
	memcpy(l->e[i].id, id, 32);
	l->e[i].tag = tag;
	l->e[i].chain = l->bucket[b];
	l->bucket[b] = i;
	push_front(l, i);
	return evicted;
}
