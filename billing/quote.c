#include "quote.h"

#include <string.h>

#include "appliance/hash.h"

int quote_config_check(const struct quote_config *cfg)
{
	if (!cfg || cfg->ttl_s == 0 || cfg->ttl_s > QUOTE_MAX_TTL)
		return APP_EINVAL;
	if (cfg->max_msat && cfg->min_msat > cfg->max_msat)
		return APP_EINVAL;
	return 0;
}

int quote_units(uint64_t *units, uint64_t dataset_bytes, uint32_t epochs)
{
	if (epochs == 0)
		return APP_EINVAL;
	uint64_t mib = dataset_bytes / QUOTE_UNIT_BYTES + (dataset_bytes % QUOTE_UNIT_BYTES != 0);
	if (mib == 0)
		mib = 1;
	uint64_t u;
	if (__builtin_mul_overflow(mib, (uint64_t)epochs, &u) || u > QUOTE_MAX_UNITS)
		return APP_ELIMIT;
	*units = u;
	return 0;
}

int quote_price(uint64_t *msat, const struct quote_config *cfg, uint64_t units)
{
	uint64_t v;
	if (quote_config_check(cfg) != 0)
		return APP_EINVAL;
	if (__builtin_mul_overflow(units, cfg->msat_per_unit, &v) || __builtin_add_overflow(v, cfg->base_msat, &v))
		return APP_ERANGE;
	if (v < cfg->min_msat)
		v = cfg->min_msat;
	if (cfg->max_msat && v > cfg->max_msat)
		return APP_ELIMIT;
	*msat = v;
	return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int quote_make(struct quote *q, const struct quote_config *cfg, const uint8_t job[32], const uint8_t client[32],
	       uint64_t dataset_bytes, uint32_t epochs, uint64_t now)
{
	static const char tag[] = "appliance-quote-v1";
	struct quote t;
	uint8_t buf[sizeof tag - 1 + 32 + 32 + 8 + 8], h[32];
	int r;
	memset(&t, 0, sizeof t);
	if ((r = quote_units(&t.units, dataset_bytes, epochs)) != 0)
		return r;
	if ((r = quote_price(&t.amount_msat, cfg, t.units)) != 0)
		return r;
	if (__builtin_add_overflow(now, (uint64_t)cfg->ttl_s, &t.expires_at))
		return APP_ERANGE;
	memcpy(t.job, job, 32);
	memcpy(t.client, client, 32);
	t.created_at = now;
	memcpy(buf, tag, sizeof tag - 1);
	memcpy(buf + sizeof tag - 1, job, 32);
	memcpy(buf + sizeof tag - 1 + 32, client, 32);
	put_be64(buf + sizeof tag - 1 + 64, t.amount_msat);
	put_be64(buf + sizeof tag - 1 + 72, now);
	hash_sha256(h, buf, sizeof buf);
	memcpy(t.id, h, QUOTE_ID_LEN);
	*q = t;
	return 0;
}

int quote_check_bid(const struct quote *q, uint64_t bid_msat)
{
	return bid_msat >= q->amount_msat ? 0 : APP_ERANGE;
}

int quote_expired(const struct quote *q, uint64_t now)
{
	return now > q->expires_at;
}
