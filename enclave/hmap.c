/*
 * hmap.c: bounded SipHash-keyed hash map (hmap.h).
 */
#include "enclave/hmap.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *next;
	uint8_t key[32];
	void *val;
};

struct hmap {
	struct node **b;
	size_t nb; /* power of two */
	size_t n, max;
	uint8_t k[crypto_shorthash_KEYBYTES];
};

static size_t slot(const struct hmap *m, const uint8_t key[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;
	crypto_shorthash(h, key, 32, m->k);
	memcpy(&v, h, sizeof v);
	return (size_t)(v & (m->nb - 1));
}

int hmap_new(struct hmap **out, size_t max)
{
	*out = NULL;
	if (max < 1 || max > HMAP_MAX_ENTRIES)
		return APP_EINVAL;
	if (sodium_init() < 0)
		return APP_EINTERNAL;
	struct hmap *m = calloc(1, sizeof *m);
	if (!m)
		return APP_ENOMEM;
	m->nb = 64;
	m->max = max;
	if (!(m->b = calloc(m->nb, sizeof *m->b))) {
		free(m);
		return APP_ENOMEM;
	}
	randombytes_buf(m->k, sizeof m->k);
	*out = m;
	return 0;
}

void hmap_free(struct hmap *m, void (*free_val)(void *val))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++)
		for (struct node *n = m->b[i], *nx; n; n = nx) {
			nx = n->next;
			if (free_val)
				free_val(n->val);
			free(n);
		}
	free(m->b);
	free(m);
}

void *hmap_get(const struct hmap *m, const uint8_t key[32])
{
	for (struct node *n = m->b[slot(m, key)]; n; n = n->next)
		if (!memcmp(n->key, key, 32))
			return n->val;
	return NULL;
}

static void grow(struct hmap *m)
{
	if (m->nb > SIZE_MAX / 2 / sizeof *m->b)
		return;
	size_t onb = m->nb;
	struct node **ob = m->b, **nbk = calloc(onb * 2, sizeof *nbk);
	if (!nbk)
		return; /* keep the longer chains */
	m->b = nbk;
	m->nb = onb * 2;
	for (size_t i = 0; i < onb; i++)
		for (struct node *n = ob[i], *nx; n; n = nx) {
			nx = n->next;
			size_t s = slot(m, n->key);
			n->next = m->b[s];
			m->b[s] = n;
		}
	free(ob);
}

int hmap_put(struct hmap *m, const uint8_t key[32], void *val)
{
	if (!val)
		return APP_EINVAL;
	if (hmap_get(m, key))
		return APP_EEXIST;
	if (m->n >= m->max)
		return APP_ELIMIT;
	struct node *n = malloc(sizeof *n);
	if (!n)
		return APP_ENOMEM;
	memcpy(n->key, key, 32);
	n->val = val;
	size_t s = slot(m, key);
	n->next = m->b[s];
	m->b[s] = n;
	m->n++;
	if (m->n > m->nb / 4 * 3)
		grow(m);
	return 0;
}

void *hmap_del(struct hmap *m, const uint8_t key[32])
{
	struct node **pp = &m->b[slot(m, key)];
	for (; *pp; pp = &(*pp)->next)
		if (!memcmp((*pp)->key, key, 32)) {
			struct node *n = *pp;
			void *v = n->val;
			*pp = n->next;
			free(n);
			m->n--;
			return v;
		}
	return NULL;
}

size_t hmap_count(const struct hmap *m)
{
	return m->n;
}

int hmap_foreach(const struct hmap *m, int (*fn)(void *arg, const uint8_t key[32], void *val), void *arg)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct node *n = m->b[i]; n; n = n->next) {
			int r = fn(arg, n->key, n->val);
			if (r)
				return r;
		}
	return 0;
}
