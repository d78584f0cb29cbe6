/*
 * bolt11.h: BOLT #11 Lightning invoices: decoding and checks.
 *
 * An invoice is bech32 (BIP-173 checksum, no 90-character limit, all lower
 * or all upper case, an optional "lightning:" URI prefix) whose
 * human-readable part is "ln" + network ("bc" mainnet, "tb" testnet, "tbs"
 * signet, "bcrt" regtest) + an optional amount, and whose data part is a
 * 35-bit timestamp, tagged fields and a 520-bit recoverable secp256k1
 * signature over sha256(hrp bytes ‖ data words packed into bytes, zero
 * padded).
 *
 * bolt11_decode checks everything a payer must check before paying (BOLT-11
 * "A reader"): checksum, prefix, amount (multipliers m/u/n/p; p only in
 * whole msat), field lengths, exactly one p, a d or an h, UTF-8 of d,
 * unknown even feature bits, feature dependencies, and the signature
 * (recovered with libsecp256k1's recovery module, or verified against the
 * `n` field when there is one). Unknown fields, `p`/`h`/`s`/`n` fields of
 * other lengths and `f` fields of unknown versions are skipped as the
 * specification says and listed in `skipped`. Expiry is not a decoding
 * matter: see bolt11_expired.
 *
 * Nothing in an invoice is secret (the payment_secret is shared with every
 * payer); still, library code logs payment_hash prefixes only.
 */
#ifndef BILLING_BOLT11_H
#define BILLING_BOLT11_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

/* Hard caps, checked before allocating. */
#define BOLT11_MAX_LEN 8192      /* characters of an invoice (without "lightning:") */
#define BOLT11_MAX_ROUTES 16     /* `r` fields kept */
#define BOLT11_MAX_FALLBACKS 8   /* `f` fields kept */
#define BOLT11_MAX_SKIPPED 64    /* skipped fields listed */
#define BOLT11_DEFAULT_EXPIRY 3600 /* seconds, when there is no `x` field */
#define BOLT11_DEFAULT_MIN_FINAL_CLTV 18 /* blocks, when there is no `c` field */

enum bolt11_network {
	BOLT11_MAINNET = 0, /* lnbc */
	BOLT11_TESTNET = 1, /* lntb */
	BOLT11_SIGNET = 2,  /* lntbs */
	BOLT11_REGTEST = 3, /* lnbcrt */
};

/* One hop of an `r` field (BOLT-11, BOLT-7 channel_update terms). */
struct bolt11_hop {
	uint8_t pubkey[33];
	uint64_t short_channel_id; /* block << 40 | tx << 16 | output */
	uint32_t fee_base_msat;
	uint32_t fee_proportional_millionths;
	uint16_t cltv_expiry_delta;
};

struct bolt11_route {
	size_t nhops; /* >= 1 */
	struct bolt11_hop *hops;
};

/* An `f` field: version 17 = P2PKH, 18 = P2SH (20-byte hashes), 0..16 = witness program. */
struct bolt11_fallback {
	uint8_t version;
	size_t len; /* bytes in addr: 20 for 17/18, 2..40 for witness programs */
	uint8_t addr[40];
};

/* A field that was skipped (unknown type, unexpected length, unknown f version). */
struct bolt11_skipped {
	uint8_t type;         /* 5-bit field type */
	uint16_t data_length; /* in 5-bit words */
};

struct bolt11 {
	enum bolt11_network network;
	char hrp[84];            /* lowercase human-readable part as signed */
	int has_amount;
	uint64_t amount_msat;    /* valid when has_amount */
	uint64_t timestamp;      /* unix seconds */
	uint64_t expiry;         /* seconds (x, default 3600) */
	int has_expiry;          /* an x field was present */
	uint64_t min_final_cltv_expiry; /* blocks (c, default 18) */
	int has_min_final_cltv_expiry;
	uint8_t payment_hash[32];
	int has_payment_secret;
	uint8_t payment_secret[32];
	int has_description;     /* d: description (UTF-8, no NUL) */
	char *description;       /* NUL-terminated when has_description */
	size_t description_len;
	int has_description_hash; /* h */
	uint8_t description_hash[32];
	int has_payee_field;     /* n was present (the signature was checked against it) */
	uint8_t payee[33];       /* compressed node pubkey: n, or recovered from the signature */
	int has_metadata;        /* m: payment_metadata */
	uint8_t *metadata;
	size_t metadata_len;
	int has_features;        /* 9 */
	uint8_t *features;       /* feature words (5-bit values, big-endian bit order) */
	size_t nfeature_words;
	struct bolt11_fallback fallbacks[BOLT11_MAX_FALLBACKS];
	size_t nfallbacks;
	struct bolt11_route routes[BOLT11_MAX_ROUTES];
	size_t nroutes;
	struct bolt11_skipped skipped[BOLT11_MAX_SKIPPED];
	size_t nskipped;
	uint8_t signature[64];   /* compact r ‖ s as in the invoice */
	int recovery_id;         /* 0..3 */
};

/*
 * bolt11_decode: decodes and checks invoice s[0..len) (BOLT-11; see the
 * file comment for what is checked).
 * Returns 0 with *out set (free with bolt11_free), or, with *reason set to
 * a static text naming the problem:
 *   APP_ETOOBIG     longer than BOLT11_MAX_LEN, or more fields than the caps
 *   APP_ECHECKSUM   bech32 checksum mismatch
 *   APP_EPARSE      not bech32 (no separator, bad character, mixed case),
 *                   too short, truncated tagged field, missing or duplicate
 *                   p/d/h, description not UTF-8 or with NUL, bad r/f data
 *   APP_EUNSUPPORTED unknown prefix/network, unknown even feature bit,
 *                   feature dependency missing
 *   APP_ERANGE      amount malformed (leading zero, bad multiplier, p not
 *                   a multiple of 10, zero, over 2^64 msat), x/c too large
 *   APP_EBADSIG     signature not recoverable, recovery id > 3, or not
 *                   valid for the `n` field
 *   APP_ENOMEM
 * reason may be NULL.
 */
int bolt11_decode(struct bolt11 **out, const char **reason, const char *s, size_t len) APP_WUR;

/* bolt11_free: frees an invoice; NULL is a no-op. */
void bolt11_free(struct bolt11 *inv);

/*
 * bolt11_expires_at: timestamp + expiry (unix seconds), saturating at
 * UINT64_MAX.
 */
uint64_t bolt11_expires_at(const struct bolt11 *inv);

/* bolt11_expired: 1 when `now` (unix seconds) is past timestamp + expiry, else 0. */
int bolt11_expired(const struct bolt11 *inv, uint64_t now);

/* bolt11_feature: 1 when feature bit `bit` (BOLT-9 numbering) is set, else 0. */
int bolt11_feature(const struct bolt11 *inv, unsigned bit);

/*
 * bolt11_check_description: 0 when the invoice commits to desc[0..len):
 * its d equals it, or its h is sha256 of it (BOLT-11 "MUST check that the
 * SHA2 256-bit hash in the h field exactly matches the hashed description").
 * Returns APP_EREFUSED otherwise.
 */
int bolt11_check_description(const struct bolt11 *inv, const char *desc, size_t len) APP_WUR;

/* bolt11_network_name: "mainnet", "testnet", "signet" or "regtest". */
const char *bolt11_network_name(enum bolt11_network n);

/*
 * bolt11_to_json: every decoded field as one compact JSON object (new
 * NUL-terminated string, free with free()): network, amount_msat (absent
 * when no amount), timestamp, expiry, expires_at, min_final_cltv_expiry,
 * payment_hash, payment_secret, description or description_hash, payee,
 * payee_from ("n" or "signature"), metadata, features (list of set bits),
 * fallbacks, routes, skipped, signature, recovery_id.
 * Returns 0, APP_ENOMEM.
 */
int bolt11_to_json(char **out, size_t *outlen, const struct bolt11 *inv) APP_WUR;

#endif
