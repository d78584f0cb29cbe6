/*
 * limits.c: per-pubkey rate limiting (limits.h).
 */
#include "enclave/limits.h"

#include <stdlib.h>
#include <string.h>

#include "enclave/hmap.h"

struct entry {
	uint64_t start;
	uint32_t count;
	int warned;
};

struct ratelim {
	struct hmap *m;
	uint32_t limit, window;
};

int ratelim_new(struct ratelim **out, uint32_t limit, uint32_t window, size_t max_keys)
{
	*out = NULL;
	if (!limit || !window)
		return APP_EINVAL;
	struct ratelim *rl = calloc(1, sizeof *rl);
	if (!rl)
		return APP_ENOMEM;
	int r = hmap_new(&rl->m, max_keys);
	if (r) {
		free(rl);
		return r;
	}
	rl->limit = limit;
	rl->window = window;
	*out = rl;
	return 0;
}

void ratelim_free(struct ratelim *rl)
{
	if (!rl)
		return;
	hmap_free(rl->m, free);
	free(rl);
}

int ratelim_hit(struct ratelim *rl, const uint8_t pubkey[32], uint64_t now, int *first)
{
	if (first)
		*first = 0;
	struct entry *e = hmap_get(rl->m, pubkey);
	if (e && now >= e->start + rl->window) {
		e->start = now;
		e->count = 0;
		e->warned = 0;
	}
	if (!e) {
		if (!(e = calloc(1, sizeof *e)))
			return APP_ELIMIT;
		e->start = now;
		int r = hmap_put(rl->m, pubkey, e);
		if (r == APP_ELIMIT) {
			(void)ratelim_expire(rl, now);
			r = hmap_put(rl->m, pubkey, e);
		}
		if (r) {
			free(e);
			return APP_ELIMIT;
		}
	}
	if (e->count >= rl->limit) {
		if (first && !e->warned)
			*first = 1;
		e->warned = 1;
		return APP_ELIMIT;
	}
	e->count++;
	return 0;
}

struct exp_ctx {
	uint64_t before;
	uint8_t (*keys)[32];
	size_t n, cap;
};

static int collect(void *arg, const uint8_t key[32], void *val)
{
	struct exp_ctx *c = arg;
	struct entry *e = val;
	if (e->start < c->before && c->n < c->cap)
		memcpy(c->keys[c->n++], key, 32);
	return 0;
}

size_t ratelim_expire(struct ratelim *rl, uint64_t now)
{
	size_t total = hmap_count(rl->m);
	if (!total || now < rl->window)
		return 0;
	struct exp_ctx c = {now - rl->window, malloc(total * 32), 0, total};
	if (!c.keys)
		return 0;
	(void)hmap_foreach(rl->m, collect, &c);
	for (size_t i = 0; i < c.n; i++)
		free(hmap_del(rl->m, c.keys[i]));
	free(c.keys);
	return c.n;
}

size_t ratelim_count(const struct ratelim *rl)
{
	return hmap_count(rl->m);
}
