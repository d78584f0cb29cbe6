#include "bolt11.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/bech32.h"
#include "appliance/hash.h"
#include "appliance/json.h"
#include "appliance/keys.h"

/* Tagged field types (BOLT-11 "Tagged Fields"). */
enum {
	F_P = 1,  /* payment_hash */
	F_R = 3,  /* route hints */
	F_9 = 5,  /* features */
	F_X = 6,  /* expiry */
	F_F = 9,  /* fallback address */
	F_D = 13, /* description */
	F_S = 16, /* payment_secret */
	F_N = 19, /* payee node pubkey */
	F_H = 23, /* description hash */
	F_C = 24, /* min_final_cltv_expiry_delta */
	F_M = 27, /* payment_metadata */
};

#define TIMESTAMP_WORDS 7
#define SIGNATURE_WORDS 104 /* 520 bits: 64-byte signature + recovery id */
#define HOP_BYTES 51        /* 33 + 8 + 4 + 4 + 2 */
#define FIELD_MAX_BYTES 640 /* 1023 words * 5 bits, rounded up to bytes */

/* Feature bits this reader knows (BOLT-9, context 9): an unknown even bit refuses the invoice. */
static int feature_known(unsigned bit)
{
	switch (bit) {
	case 8: case 9:   /* var_onion_optin */
	case 14: case 15: /* payment_secret */
	case 16: case 17: /* basic_mpp */
	case 24: case 25: /* option_route_blinding */
	case 48: case 49: /* option_payment_metadata */
		return 1;
	default:
		return 0;
	}
}

void bolt11_free(struct bolt11 *inv)
{
	if (!inv)
		return;
	free(inv->description);
	free(inv->metadata);
	free(inv->features);
	for (size_t i = 0; i < inv->nroutes; i++)
		free(inv->routes[i].hops);
	free(inv);
}

const char *bolt11_network_name(enum bolt11_network n)
{
	switch (n) {
	case BOLT11_MAINNET: return "mainnet";
	case BOLT11_TESTNET: return "testnet";
	case BOLT11_SIGNET: return "signet";
	case BOLT11_REGTEST: return "regtest";
	}
	return "?";
}

uint64_t bolt11_expires_at(const struct bolt11 *inv)
{
	uint64_t t;
	if (__builtin_add_overflow(inv->timestamp, inv->expiry, &t))
		return UINT64_MAX;
	return t;
}

int bolt11_expired(const struct bolt11 *inv, uint64_t now)
{
	return now > bolt11_expires_at(inv);
}

static int feature_bit(const uint8_t *words, size_t nwords, unsigned bit)
{
	size_t w = bit / 5;
	if (w >= nwords)
		return 0;
	return (words[nwords - 1 - w] >> (bit % 5)) & 1;
}

int bolt11_feature(const struct bolt11 *inv, unsigned bit)
{
	return inv->has_features ? feature_bit(inv->features, inv->nfeature_words, bit) : 0;
}

int bolt11_check_description(const struct bolt11 *inv, const char *desc, size_t len)
{
	if (inv->has_description)
		return inv->description_len == len && memcmp(inv->description, desc, len) == 0 ? 0 : APP_EREFUSED;
	if (inv->has_description_hash) {
		uint8_t h[32];
		hash_sha256(h, desc, len);
		return crypto_verify_32(h, inv->description_hash) == 0 ? 0 : APP_EREFUSED;
	}
	return APP_EREFUSED;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), no NUL. */
static int utf8_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (k > n - i - 1)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* Words -> bytes without padding (leftover bits must be zero). */
static int words_to_bytes(uint8_t out[FIELD_MAX_BYTES], size_t *outlen, const uint8_t *w, size_t n)
{
	if (n > 1023)
		return APP_EPARSE;
	return bech32_convert_bits(out, outlen, 8, w, n, 5, 0);
}

/* Big-endian unsigned value of 5-bit words. */
static int words_to_u64(uint64_t *out, const uint8_t *w, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (v > (UINT64_MAX >> 5))
			return APP_ERANGE;
		v = (v << 5) | w[i];
	}
	*out = v;
	return 0;
}

static uint64_t be_read(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The human-readable part: "ln" network [amount [multiplier]]. */
static int parse_hrp(struct bolt11 *inv, const char **why, const char *hrp)
{
	static const struct {
		const char *p;
		enum bolt11_network n;
	} nets[] = {{"bcrt", BOLT11_REGTEST}, {"tbs", BOLT11_SIGNET}, {"bc", BOLT11_MAINNET}, {"tb", BOLT11_TESTNET}};
	if (strncmp(hrp, "ln", 2) != 0) {
		*why = "not a lightning invoice (prefix is not ln)";
		return APP_EUNSUPPORTED;
	}
	const char *rest = NULL;
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
		size_t l = strlen(nets[i].p);
		if (strncmp(hrp + 2, nets[i].p, l) == 0 && (hrp[2 + l] == 0 || (hrp[2 + l] >= '0' && hrp[2 + l] <= '9'))) {
			inv->network = nets[i].n;
			rest = hrp + 2 + l;
			break;
		}
	}
	if (!rest) {
		*why = "unknown network prefix (expected lnbc, lntb, lntbs or lnbcrt)";
		return APP_EUNSUPPORTED;
	}
	if (!*rest)
		return 0; /* no amount */
	if (rest[0] == '0') {
		*why = "amount has a leading zero";
		return APP_ERANGE;
	}
	uint64_t v = 0;
	size_t i = 0;
	for (; rest[i] >= '0' && rest[i] <= '9'; i++) {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(rest[i] - '0'), &v)) {
			*why = "amount too large";
			return APP_ERANGE;
		}
	}
	uint64_t msat;
	int ovf = 0;
	if (rest[i] == 0) {
		ovf = __builtin_mul_overflow(v, 100000000000ULL, &msat); /* 1 BTC = 10^11 msat */
	} else if (rest[i + 1] != 0) {
		*why = "invalid amount multiplier";
		return APP_ERANGE;
	} else {
		switch (rest[i]) {
		case 'm': ovf = __builtin_mul_overflow(v, 100000000ULL, &msat); break;
		case 'u': ovf = __builtin_mul_overflow(v, 100000ULL, &msat); break;
		case 'n': ovf = __builtin_mul_overflow(v, 100ULL, &msat); break;
		case 'p':
			if (v % 10 != 0) {
				*why = "amount in p is not a whole number of msat (sub-millisatoshi precision)";
				return APP_ERANGE;
			}
			msat = v / 10;
			break;
		default:
			*why = "invalid amount multiplier";
			return APP_ERANGE;
		}
	}
	if (ovf) {
		*why = "amount too large";
		return APP_ERANGE;
	}
	if (msat == 0) {
		*why = "amount is zero";
		return APP_ERANGE;
	}
	inv->has_amount = 1;
	inv->amount_msat = msat;
	return 0;
}

static int skip_field(struct bolt11 *inv, const char **why, uint8_t type, size_t dl)
{
	if (inv->nskipped == BOLT11_MAX_SKIPPED) {
		*why = "too many unknown fields";
		return APP_ETOOBIG;
	}
	inv->skipped[inv->nskipped].type = type;
	inv->skipped[inv->nskipped].data_length = (uint16_t)dl;
	inv->nskipped++;
	return 0;
}

static int parse_fallback(struct bolt11 *inv, const char **why, const uint8_t *w, size_t dl)
{
	uint8_t buf[FIELD_MAX_BYTES];
	size_t n;
	if (dl < 1) {
		*why = "empty f field";
		return APP_EPARSE;
	}
	uint8_t version = w[0];
	if (version > 18)
		return skip_field(inv, why, F_F, dl); /* unknown version: skipped (BOLT-11 reader) */
	if (words_to_bytes(buf, &n, w + 1, dl - 1) != 0) {
		*why = "f field has non-zero padding";
		return APP_EPARSE;
	}
	int ok = (version == 17 || version == 18) ? n == 20
		 : version == 0			   ? (n == 20 || n == 32)
						   : (n >= 2 && n <= 40);
	if (!ok) {
		*why = "f field has a bad address length";
		return APP_EPARSE;
	}
	if (inv->nfallbacks == BOLT11_MAX_FALLBACKS) {
		*why = "too many f fields";
		return APP_ETOOBIG;
	}
	struct bolt11_fallback *f = &inv->fallbacks[inv->nfallbacks++];
	f->version = version;
	f->len = n;
	memcpy(f->addr, buf, n);
	return 0;
}

static int parse_route(struct bolt11 *inv, const char **why, const uint8_t *w, size_t dl)
{
	uint8_t buf[FIELD_MAX_BYTES];
	size_t n;
	if (words_to_bytes(buf, &n, w, dl) != 0 || n == 0 || n % HOP_BYTES != 0) {
		*why = "r field is not a whole number of hops";
		return APP_EPARSE;
	}
	if (inv->nroutes == BOLT11_MAX_ROUTES) {
		*why = "too many r fields";
		return APP_ETOOBIG;
	}
	size_t nh = n / HOP_BYTES; /* <= 12: no overflow */
	struct bolt11_hop *hops = calloc(nh, sizeof *hops);
	if (!hops) {
		*why = "out of memory";
		return APP_ENOMEM;
	}
	for (size_t i = 0; i < nh; i++) {
		const uint8_t *p = buf + i * HOP_BYTES;
		memcpy(hops[i].pubkey, p, 33);
		hops[i].short_channel_id = be_read(p + 33, 8);
		hops[i].fee_base_msat = (uint32_t)be_read(p + 41, 4);
		hops[i].fee_proportional_millionths = (uint32_t)be_read(p + 45, 4);
		hops[i].cltv_expiry_delta = (uint16_t)be_read(p + 49, 2);
	}
	inv->routes[inv->nroutes].hops = hops;
	inv->routes[inv->nroutes].nhops = nh;
	inv->nroutes++;
	return 0;
}

static int parse_features(struct bolt11 *inv, const char **why, const uint8_t *w, size_t dl)
{
	if (inv->has_features) {
		*why = "duplicate 9 field";
		return APP_EPARSE;
	}
	for (unsigned bit = 0; bit < dl * 5; bit++) {
		if (feature_bit(w, dl, bit) && bit % 2 == 0 && !feature_known(bit)) {
			*why = "unknown required (even) feature bit";
			return APP_EUNSUPPORTED;
		}
	}
	/* BOLT-9 dependencies: payment_secret needs var_onion_optin; basic_mpp needs payment_secret. */
	int onion = feature_bit(w, dl, 8) | feature_bit(w, dl, 9);
	int secret = feature_bit(w, dl, 14) | feature_bit(w, dl, 15);
	int mpp = feature_bit(w, dl, 16) | feature_bit(w, dl, 17);
	if ((secret && !onion) || (mpp && !secret)) {
		*why = "feature bits miss a dependency (BOLT-9)";
		return APP_EUNSUPPORTED;
	}
	inv->features = malloc(dl ? dl : 1);
	if (!inv->features) {
		*why = "out of memory";
		return APP_ENOMEM;
	}
	memcpy(inv->features, w, dl);
	inv->nfeature_words = dl;
	inv->has_features = 1;
	return 0;
}

static int parse_field(struct bolt11 *inv, const char **why, uint8_t type, const uint8_t *w, size_t dl, int *have_p)
{
	uint8_t buf[FIELD_MAX_BYTES];
	size_t n;
	switch (type) {
	case F_P:
	case F_S:
	case F_H:
		if (dl != 52)
			return skip_field(inv, why, type, dl);
		if ((type == F_P && *have_p) || (type == F_S && inv->has_payment_secret) ||
		    (type == F_H && inv->has_description_hash)) {
			*why = type == F_P ? "duplicate p field" : type == F_S ? "duplicate s field" : "duplicate h field";
			return APP_EPARSE;
		}
		if (words_to_bytes(buf, &n, w, dl) != 0 || n != 32) {
			*why = "32-byte field has non-zero padding";
			return APP_EPARSE;
		}
		if (type == F_P) {
			memcpy(inv->payment_hash, buf, 32);
			*have_p = 1;
		} else if (type == F_S) {
			memcpy(inv->payment_secret, buf, 32);
			inv->has_payment_secret = 1;
		} else {
			memcpy(inv->description_hash, buf, 32);
			inv->has_description_hash = 1;
		}
		return 0;
	case F_N:
		if (dl != 53)
			return skip_field(inv, why, type, dl);
		if (inv->has_payee_field) {
			*why = "duplicate n field";
			return APP_EPARSE;
		}
		if (words_to_bytes(buf, &n, w, dl) != 0 || n != 33) {
			*why = "n field has non-zero padding";
			return APP_EPARSE;
		}
		memcpy(inv->payee, buf, 33);
		inv->has_payee_field = 1;
		return 0;
	case F_D:
		if (inv->has_description) {
			*why = "duplicate d field";
			return APP_EPARSE;
		}
		if (words_to_bytes(buf, &n, w, dl) != 0 || !utf8_ok(buf, n)) {
			*why = "d field is not UTF-8 text (or contains NUL)";
			return APP_EPARSE;
		}
		inv->description = malloc(n + 1);
		if (!inv->description) {
			*why = "out of memory";
			return APP_ENOMEM;
		}
		memcpy(inv->description, buf, n);
		inv->description[n] = 0;
		inv->description_len = n;
		inv->has_description = 1;
		return 0;
	case F_M:
		if (inv->has_metadata) {
			*why = "duplicate m field";
			return APP_EPARSE;
		}
		if (words_to_bytes(buf, &n, w, dl) != 0) {
			*why = "m field has non-zero padding";
			return APP_EPARSE;
		}
		inv->metadata = malloc(n ? n : 1);
		if (!inv->metadata) {
			*why = "out of memory";
			return APP_ENOMEM;
		}
		memcpy(inv->metadata, buf, n);
		inv->metadata_len = n;
		inv->has_metadata = 1;
		return 0;
	case F_X:
	case F_C: {
		uint64_t v;
		int *has = type == F_X ? &inv->has_expiry : &inv->has_min_final_cltv_expiry;
		if (*has) {
			*why = type == F_X ? "duplicate x field" : "duplicate c field";
			return APP_EPARSE;
		}
		if (words_to_u64(&v, w, dl) != 0) {
			*why = type == F_X ? "x field too large" : "c field too large";
			return APP_ERANGE;
		}
		if (type == F_X)
			inv->expiry = v;
		else
			inv->min_final_cltv_expiry = v;
		*has = 1;
		return 0;
	}
	case F_F:
		return parse_fallback(inv, why, w, dl);
	case F_R:
		return parse_route(inv, why, w, dl);
	case F_9:
		return parse_features(inv, why, w, dl);
	default:
		return skip_field(inv, why, type, dl);
	}
}

static int check_signature(struct bolt11 *inv, const char **why, const uint8_t *words, size_t nsigned,
			   const uint8_t *sigwords)
{
	const secp256k1_context *ctx = keys_ctx();
	uint8_t sig65[65], h[32];
	size_t n;
	int r = APP_EBADSIG;
	struct hash_sha256_ctx *hc = NULL;
	uint8_t *packed = NULL;

	if (bech32_convert_bits(sig65, &n, 8, sigwords, SIGNATURE_WORDS, 5, 0) != 0 || n != 65) {
		*why = "malformed signature";
		goto out;
	}
	memcpy(inv->signature, sig65, 64);
	if (sig65[64] > 3) {
		*why = "signature recovery id is not 0..3";
		goto out;
	}
	inv->recovery_id = sig65[64];

	/* sha256(hrp bytes ‖ data words before the signature, packed into bytes, zero padded) */
	size_t plen = (nsigned * 5 + 7) / 8;
	packed = malloc(plen ? plen : 1);
	if (!packed) {
		r = APP_ENOMEM;
		*why = "out of memory";
		goto out;
	}
	if (bech32_convert_bits(packed, &n, 8, words, nsigned, 5, 1) != 0) {
		r = APP_EINTERNAL;
		*why = "internal error packing the signed data";
		goto out;
	}
	hc = hash_sha256_new();
	if (!hc) {
		r = APP_ENOMEM;
		*why = "out of memory";
		goto out;
	}
	hash_sha256_update(hc, inv->hrp, strlen(inv->hrp));
	hash_sha256_update(hc, packed, n);
	hash_sha256_final(hc, h);

	secp256k1_ecdsa_recoverable_signature rsig;
	if (!secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &rsig, sig65, inv->recovery_id)) {
		*why = "signature is not a valid secp256k1 signature";
		goto out;
	}
	if (inv->has_payee_field) {
		/* BOLT-11: with a valid n field, verify against it instead of recovering. */
		secp256k1_pubkey pk;
		secp256k1_ecdsa_signature sig;
		if (!secp256k1_ec_pubkey_parse(ctx, &pk, inv->payee, 33)) {
			*why = "n field is not a valid public key";
			goto out;
		}
		if (!secp256k1_ecdsa_recoverable_signature_convert(ctx, &sig, &rsig)) {
			*why = "malformed signature";
			goto out;
		}
		secp256k1_ecdsa_signature_normalize(ctx, &sig, &sig); /* BOLT-11 allows high-S */
		if (!secp256k1_ecdsa_verify(ctx, &sig, h, &pk)) {
			*why = "signature does not verify for the n field's public key";
			goto out;
		}
	} else {
		secp256k1_pubkey pk;
		size_t pl = 33;
		if (!secp256k1_ecdsa_recover(ctx, &pk, &rsig, h)) {
			*why = "signature is not recoverable";
			goto out;
		}
		if (!secp256k1_ec_pubkey_serialize(ctx, inv->payee, &pl, &pk, SECP256K1_EC_COMPRESSED)) {
			r = APP_EINTERNAL;
			*why = "internal error serializing the payee key";
			goto out;
		}
	}
	r = 0;
out:
	hash_sha256_free(hc);
	free(packed);
	return r;
}

int bolt11_decode(struct bolt11 **out, const char **reason, const char *s, size_t len)
{
	const char *why = "malformed invoice";
	struct bolt11 *inv = NULL;
	uint8_t *words = NULL;
	size_t nwords = 0;
	char hrp[BECH32_HRP_MAX + 1];
	int r = APP_EINTERNAL;

	*out = NULL;
	if (len >= 10 && strncasecmp(s, "lightning:", 10) == 0) {
		s += 10;
		len -= 10;
	}
	if (len > BOLT11_MAX_LEN) {
		r = APP_ETOOBIG;
		why = "invoice longer than BOLT11_MAX_LEN";
		goto out;
	}
	r = bech32_decode_words(hrp, &words, &nwords, s, len, BOLT11_MAX_LEN);
	if (r) {
		why = r == APP_ECHECKSUM ? "bad bech32 checksum"
		      : r == APP_ENOMEM  ? "out of memory"
					 : "not bech32 (no separator, bad character, mixed case or too short)";
		goto out;
	}
	inv = calloc(1, sizeof *inv);
	if (!inv) {
		r = APP_ENOMEM;
		why = "out of memory";
		goto out;
	}
	memcpy(inv->hrp, hrp, strlen(hrp) + 1);
	inv->expiry = BOLT11_DEFAULT_EXPIRY;
	inv->min_final_cltv_expiry = BOLT11_DEFAULT_MIN_FINAL_CLTV;
	if ((r = parse_hrp(inv, &why, hrp)) != 0)
		goto out;
	if (nwords < TIMESTAMP_WORDS + SIGNATURE_WORDS) {
		r = APP_EPARSE;
		why = "too short for a timestamp and a signature";
		goto out;
	}
	size_t end = nwords - SIGNATURE_WORDS;
	(void)words_to_u64(&inv->timestamp, words, TIMESTAMP_WORDS); /* 35 bits: cannot overflow */
	int have_p = 0;
	for (size_t i = TIMESTAMP_WORDS; i < end;) {
		if (end - i < 3) {
			r = APP_EPARSE;
			why = "truncated tagged field";
			goto out;
		}
		uint8_t type = words[i];
		size_t dl = (size_t)words[i + 1] * 32 + words[i + 2];
		i += 3;
		if (dl > end - i) {
			r = APP_EPARSE;
			why = "truncated tagged field";
			goto out;
		}
		if ((r = parse_field(inv, &why, type, words + i, dl, &have_p)) != 0)
			goto out;
		i += dl;
	}
	if (!have_p) {
		r = APP_EPARSE;
		why = "no payment_hash (p) field";
		goto out;
	}
	if (inv->has_description == inv->has_description_hash) {
		r = APP_EPARSE;
		why = inv->has_description ? "both d and h fields" : "neither a d nor an h field";
		goto out;
	}
	if ((r = check_signature(inv, &why, words, end, words + end)) != 0)
		goto out;
	*out = inv;
	inv = NULL;
	r = 0;
out:
	free(words);
	bolt11_free(inv);
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

static void jw_hexkey(struct jw *w, const char *key, const uint8_t *b, size_t n)
{
	jw_key(w, 1, key);
	jw_hex(w, b, n);
}

int bolt11_to_json(char **out, size_t *outlen, const struct bolt11 *inv)
{
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "{\"network\":", 11);
	jw_cstr(&w, bolt11_network_name(inv->network));
	jw_key(&w, 1, "hrp");
	jw_cstr(&w, inv->hrp);
	if (inv->has_amount) {
		jw_key(&w, 1, "amount_msat");
		jw_u64(&w, inv->amount_msat);
	}
	jw_key(&w, 1, "timestamp");
	jw_u64(&w, inv->timestamp);
	jw_key(&w, 1, "expiry");
	jw_u64(&w, inv->expiry);
	jw_key(&w, 1, "expires_at");
	jw_u64(&w, bolt11_expires_at(inv));
	jw_key(&w, 1, "min_final_cltv_expiry");
	jw_u64(&w, inv->min_final_cltv_expiry);
	jw_hexkey(&w, "payment_hash", inv->payment_hash, 32);
	if (inv->has_payment_secret)
		jw_hexkey(&w, "payment_secret", inv->payment_secret, 32);
	if (inv->has_description) {
		jw_key(&w, 1, "description");
		jw_str(&w, inv->description, inv->description_len);
	}
	if (inv->has_description_hash)
		jw_hexkey(&w, "description_hash", inv->description_hash, 32);
	jw_hexkey(&w, "payee", inv->payee, 33);
	jw_key(&w, 1, "payee_from");
	jw_cstr(&w, inv->has_payee_field ? "n" : "signature");
	if (inv->has_metadata)
		jw_hexkey(&w, "metadata", inv->metadata, inv->metadata_len);
	if (inv->has_features) {
		jw_key(&w, 1, "features");
		jw_char(&w, '[');
		int first = 1;
		for (unsigned b = 0; b < inv->nfeature_words * 5; b++) {
			if (!bolt11_feature(inv, b))
				continue;
			if (!first)
				jw_char(&w, ',');
			first = 0;
			jw_u64(&w, b);
		}
		jw_char(&w, ']');
	}
	if (inv->nfallbacks) {
		jw_key(&w, 1, "fallbacks");
		jw_char(&w, '[');
		for (size_t i = 0; i < inv->nfallbacks; i++) {
			if (i)
				jw_char(&w, ',');
			jw_raw(&w, "{\"version\":", 11);
			jw_u64(&w, inv->fallbacks[i].version);
			jw_hexkey(&w, "address_hash", inv->fallbacks[i].addr, inv->fallbacks[i].len);
			jw_char(&w, '}');
		}
		jw_char(&w, ']');
	}
	if (inv->nroutes) {
		jw_key(&w, 1, "routes");
		jw_char(&w, '[');
		for (size_t i = 0; i < inv->nroutes; i++) {
			if (i)
				jw_char(&w, ',');
			jw_char(&w, '[');
			for (size_t j = 0; j < inv->routes[i].nhops; j++) {
				const struct bolt11_hop *h = &inv->routes[i].hops[j];
				char scid[64];
				snprintf(scid, sizeof scid, "%llux%llux%llu", (unsigned long long)(h->short_channel_id >> 40),
					 (unsigned long long)((h->short_channel_id >> 16) & 0xffffff),
					 (unsigned long long)(h->short_channel_id & 0xffff));
				if (j)
					jw_char(&w, ',');
				jw_raw(&w, "{\"pubkey\":", 10);
				jw_hex(&w, h->pubkey, 33);
				jw_key(&w, 1, "short_channel_id");
				jw_cstr(&w, scid);
				jw_key(&w, 1, "fee_base_msat");
				jw_u64(&w, h->fee_base_msat);
				jw_key(&w, 1, "fee_proportional_millionths");
				jw_u64(&w, h->fee_proportional_millionths);
				jw_key(&w, 1, "cltv_expiry_delta");
				jw_u64(&w, h->cltv_expiry_delta);
				jw_char(&w, '}');
			}
			jw_char(&w, ']');
		}
		jw_char(&w, ']');
	}
	if (inv->nskipped) {
		jw_key(&w, 1, "skipped");
		jw_char(&w, '[');
		for (size_t i = 0; i < inv->nskipped; i++) {
			if (i)
				jw_char(&w, ',');
			jw_raw(&w, "{\"type\":", 8);
			jw_u64(&w, inv->skipped[i].type);
			jw_key(&w, 1, "data_length");
			jw_u64(&w, inv->skipped[i].data_length);
			jw_char(&w, '}');
		}
		jw_char(&w, ']');
	}
	jw_hexkey(&w, "signature", inv->signature, 64);
	jw_key(&w, 1, "recovery_id");
	jw_u64(&w, (uint64_t)inv->recovery_id);
	jw_char(&w, '}');
	return jw_finish(&w, out, outlen);
}
