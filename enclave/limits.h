/*
 * limits.h: per-pubkey request rate limiting and the instance's limit
 * counters (PROTOCOL.md "Limits").
 *
 * Rate: a fixed window per client pubkey: at most `limit` requests in each
 * `window` seconds (the window starts at the pubkey's first request). The
 * table of pubkeys is bounded; when it is full, requests from pubkeys not in
 * it are refused as if rate-limited (the instance is under a flood), and
 * expired windows are reclaimed first. Not thread-safe: the main thread.
 */
#ifndef ENCLAVE_LIMITS_H
#define ENCLAVE_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct ratelim;

/* ratelim_new: limit (>= 1) requests per window (>= 1 s) for at most max_keys pubkeys. Returns 0, APP_EINVAL, APP_ENOMEM. */
int ratelim_new(struct ratelim **out, uint32_t limit, uint32_t window, size_t max_keys) APP_WUR;

/* ratelim_free: NULL is a no-op. */
void ratelim_free(struct ratelim *rl);

/*
 * ratelim_hit: counts one request of pubkey at `now` (unix seconds).
 * Returns 0 when allowed; APP_ELIMIT when over the limit, with *first (may
 * be NULL) = 1 for the first refused request of this window (the one that
 * gets an error feedback; later ones are dropped silently), else 0.
 */
int ratelim_hit(struct ratelim *rl, const uint8_t pubkey[32], uint64_t now, int *first) APP_WUR;

/* ratelim_expire: forgets pubkeys whose window ended before now. Returns how many. */
size_t ratelim_expire(struct ratelim *rl, uint64_t now);

/* ratelim_count: pubkeys tracked. */
size_t ratelim_count(const struct ratelim *rl);

/* The counters of refusals and limit hits (the daemon logs them; all only grow). */
struct limit_counters {
	uint64_t requests;        /* 5720 events delivered by the relay pool */
	uint64_t not_for_us;      /* addressed to another instance */
	uint64_t stale;           /* created_at outside the accepted window */
	uint64_t replays;         /* already seen (another relay, re-sent) */
	uint64_t invalid;         /* refused by the parser (error feedback) */
	uint64_t rate_limited;    /* limit: per-pubkey rate */
	uint64_t busy;            /* limit: queue length */
	uint64_t request_too_big; /* limit: request size */
	uint64_t dataset_refused; /* probe failed: unreachable, size unknown, ... */
	uint64_t dataset_too_big; /* limit: dataset bytes */
	uint64_t price_refused;   /* bid below the price, price above max_msat */
	uint64_t wall_time;       /* limit: job wall time */
	uint64_t result_too_big;  /* limit: result size */
	uint64_t invoices, payments, duplicate_payments, credit_jobs, refunds;
	uint64_t jobs_done, jobs_failed;
};

#endif
