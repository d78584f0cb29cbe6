/*
 * quote.h: price quotes for jobs (DESIGN §5.3 step 2, §6).
 *
 * Price (integer msat) = base_msat + units × msat_per_unit, where
 *   units = ceil(dataset bytes / 1 MiB) × epochs        (QUOTE_UNIT "MiB-epoch")
 * raised to min_msat when below it; a job whose price exceeds max_msat (or
 * whose units exceed QUOTE_MAX_UNITS) is refused, never silently capped.
 * The announcement advertises ["price", base_msat, msat_per_unit, QUOTE_UNIT].
 * Every sum and product is overflow-checked (__builtin_*_overflow).
 *
 * A quote names the job (the request event id), the client pubkey, the
 * amount and an expiry; its id is deterministic (the first 16 bytes of
 * sha256("appliance-quote-v1" ‖ job ‖ client ‖ amount ‖ created_at), all
 * integers big-endian u64), so the same request quoted at the same second
 * gets the same id (replays change nothing).
 */
#ifndef BILLING_QUOTE_H
#define BILLING_QUOTE_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define QUOTE_UNIT "MiB-epoch"
#define QUOTE_UNIT_BYTES (1024u * 1024u)
#define QUOTE_MAX_UNITS 100000000ULL /* 10^8 MiB-epochs */
#define QUOTE_MAX_TTL (7u * 24 * 3600) /* seconds */
#define QUOTE_ID_LEN 16

struct quote_config {
	uint64_t base_msat;     /* per job */
	uint64_t msat_per_unit; /* per MiB-epoch */
	uint64_t min_msat;      /* floor of a price (0 = none) */
	uint64_t max_msat;      /* ceiling: a dearer job is refused (0 = no ceiling) */
	uint32_t ttl_s;         /* seconds a quote (and its invoice) stays valid; 1..QUOTE_MAX_TTL */
};

struct quote {
	uint8_t id[QUOTE_ID_LEN];
	uint8_t job[32];    /* job request event id */
	uint8_t client[32]; /* client pubkey */
	uint64_t units;     /* MiB-epochs */
	uint64_t amount_msat;
	uint64_t created_at; /* unix seconds */
	uint64_t expires_at; /* unix seconds */
};

/*
 * quote_config_check: 0 when cfg is usable: ttl_s in 1..QUOTE_MAX_TTL,
 * min_msat <= max_msat when max_msat is set. Returns APP_EINVAL otherwise.
 */
int quote_config_check(const struct quote_config *cfg) APP_WUR;

/*
 * quote_units: ceil(dataset_bytes / QUOTE_UNIT_BYTES) × epochs (at least 1
 * MiB for a non-empty job). Returns 0, APP_EINVAL (epochs == 0),
 * APP_ELIMIT (over QUOTE_MAX_UNITS or overflow).
 */
int quote_units(uint64_t *units, uint64_t dataset_bytes, uint32_t epochs) APP_WUR;

/*
 * quote_price: base + units × per_unit, floored at min_msat.
 * Returns 0 with *msat; APP_ERANGE (arithmetic overflow); APP_ELIMIT (over
 * max_msat); APP_EINVAL (cfg invalid).
 */
int quote_price(uint64_t *msat, const struct quote_config *cfg, uint64_t units) APP_WUR;

/*
 * quote_make: a quote for job `job` of client `client` over dataset_bytes
 * (the sum of its datasets) and epochs, created at `now` (unix seconds).
 * Returns 0 or the errors of quote_units / quote_price.
 */
int quote_make(struct quote *q, const struct quote_config *cfg, const uint8_t job[32], const uint8_t client[32],
	       uint64_t dataset_bytes, uint32_t epochs, uint64_t now) APP_WUR;

/*
 * quote_check_bid: 0 when bid_msat covers the quote; APP_ERANGE when it is
 * below (the feedback names the price).
 */
int quote_check_bid(const struct quote *q, uint64_t bid_msat) APP_WUR;

/* quote_expired: 1 when now (unix seconds) is past q->expires_at, else 0. */
int quote_expired(const struct quote *q, uint64_t now);

#endif
