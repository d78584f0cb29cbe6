#include "nwc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/nip04.h"
#include "appliance/nip44.h"
#include "relay-client/pool.h"
#include "relay-client/relayurl.h"

/* --- names ------------------------------------------------------------------------------------- */

static const char *const method_names[NWC_METHOD_COUNT] = {
	"pay_invoice", "make_invoice", "lookup_invoice", "get_balance", "get_info", "list_transactions", "pay_keysend",
};

static const char *const code_names[] = {
	"OK",	  "RATE_LIMITED", "NOT_IMPLEMENTED",	    "INSUFFICIENT_BALANCE", "QUOTA_EXCEEDED", "RESTRICTED",
	"UNAUTHORIZED", "INTERNAL", "UNSUPPORTED_ENCRYPTION", "OTHER", "PAYMENT_FAILED", "NOT_FOUND", "UNKNOWN",
};

const char *nwc_method_name(enum nwc_method m)
{
	return (unsigned)m < NWC_METHOD_COUNT ? method_names[m] : "?";
}

const char *nwc_code_name(enum nwc_code c)
{
	return (unsigned)c <= NWC_E_UNKNOWN ? code_names[c] : "UNKNOWN";
}

static int method_from(const char *s, enum nwc_method *m)
{
	for (int i = 0; i < NWC_METHOD_COUNT; i++)
		if (strcmp(s, method_names[i]) == 0) {
			*m = (enum nwc_method)i;
			return 0;
		}
	return -1;
}

static enum nwc_code code_from(const char *s)
{
	for (int i = 1; i < NWC_E_UNKNOWN; i++)
		if (strcmp(s, code_names[i]) == 0)
			return (enum nwc_code)i;
	return NWC_E_UNKNOWN;
}

static void copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* --- 1. URI -------------------------------------------------------------------------------------- */

struct nwc_uri {
	uint8_t wallet[32];
	struct keypair *kp;
	char *relays[NWC_MAX_RELAYS];
	size_t nrelays;
	char *lud16;
};

void nwc_uri_free(struct nwc_uri *u)
{
	if (!u)
		return;
	keys_free(u->kp);
	for (size_t i = 0; i < u->nrelays; i++)
		free(u->relays[i]);
	free(u->lud16);
	sodium_memzero(u, sizeof *u);
	free(u);
}

const uint8_t *nwc_uri_wallet_pubkey(const struct nwc_uri *u) { return u->wallet; }
const struct keypair *nwc_uri_keypair(const struct nwc_uri *u) { return u->kp; }
void nwc_uri_client_pubkey(const struct nwc_uri *u, uint8_t pub[32]) { keys_pubkey(u->kp, pub); }
size_t nwc_uri_relay_count(const struct nwc_uri *u) { return u->nrelays; }
const char *nwc_uri_relay(const struct nwc_uri *u, size_t i) { return i < u->nrelays ? u->relays[i] : NULL; }
const char *nwc_uri_lud16(const struct nwc_uri *u) { return u->lud16; }

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (room for n+1); '+' stays '+'. Refuses NUL. Returns length or -1. */
static long pct_decode(char *out, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return -1;
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		if (c == 0)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return (long)o;
}

int nwc_uri_parse(struct nwc_uri **out, const char **reason, const char *s, size_t len)
{
	static const char scheme[] = "nostr+walletconnect:";
	const char *why = "malformed connection URI";
	struct nwc_uri *u = NULL;
	char *val = NULL;
	int r = APP_EPARSE, have_secret = 0;

	*out = NULL;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\t'))
		len--;
	while (len && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++, len--;
	if (len > NWC_URI_MAX) {
		r = APP_ETOOBIG;
		why = "connection URI longer than NWC_URI_MAX";
		goto out;
	}
	if (len < sizeof scheme - 1 || strncasecmp(s, scheme, sizeof scheme - 1) != 0) {
		why = "not a nostr+walletconnect: URI";
		goto out;
	}
	const char *p = s + sizeof scheme - 1, *end = s + len;
	if (end - p >= 2 && p[0] == '/' && p[1] == '/')
		p += 2;
	const char *q = memchr(p, '?', (size_t)(end - p));
	if (!q || q - p != 64) {
		why = "no wallet service pubkey (64 hex digits) before '?'";
		goto out;
	}
	u = calloc(1, sizeof *u);
	val = malloc(len + 1);
	if (!u || !val) {
		r = APP_ENOMEM;
		why = "out of memory";
		goto out;
	}
	if (hex_decode(u->wallet, 32, p, 64, 0) != 0) {
		why = "wallet service pubkey is not hex";
		goto out;
	}
	if (keys_pubkey_valid(u->wallet) != 0) {
		r = APP_EBADKEY;
		why = "wallet service pubkey is not a valid key";
		goto out;
	}
	for (p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		if (!eq) {
			p = amp ? amp + 1 : end;
			continue; /* a bare key: ignored */
		}
		size_t klen = (size_t)(eq - p);
		long vlen = pct_decode(val, eq + 1, (size_t)(pe - eq - 1));
		if (vlen < 0) {
			why = "bad percent-encoding in a parameter";
			goto out;
		}
		if (klen == 5 && memcmp(p, "relay", 5) == 0) {
			struct relayurl ru;
			const char *rwhy;
			if (u->nrelays == NWC_MAX_RELAYS) {
				r = APP_ETOOBIG;
				why = "more than NWC_MAX_RELAYS relays";
				goto out;
			}
			if ((size_t)vlen > RELAYURL_MAX || relayurl_parse(&ru, &rwhy, val) != 0) {
				why = "relay is not a ws:// or wss:// URL";
				goto out;
			}
			u->relays[u->nrelays] = strdup(val);
			if (!u->relays[u->nrelays]) {
				r = APP_ENOMEM;
				why = "out of memory";
				goto out;
			}
			u->nrelays++;
		} else if (klen == 6 && memcmp(p, "secret", 6) == 0) {
			uint8_t sec[32];
			if (have_secret) {
				why = "more than one secret";
				goto out;
			}
			have_secret = 1;
			if (vlen != 64 || hex_decode(sec, 32, val, 64, 0) != 0) {
				sodium_memzero(sec, sizeof sec);
				why = "secret is not 64 hex digits";
				goto out;
			}
			r = keys_from_secret(&u->kp, sec);
			sodium_memzero(sec, sizeof sec);
			if (r) {
				why = r == APP_ENOMEM ? "out of memory" : "secret is not a valid secret key";
				goto out;
			}
			r = APP_EPARSE;
		} else if (klen == 5 && memcmp(p, "lud16", 5) == 0 && !u->lud16) {
			u->lud16 = strdup(val);
			if (!u->lud16) {
				r = APP_ENOMEM;
				why = "out of memory";
				goto out;
			}
		}
		sodium_memzero(val, len + 1);
		p = amp ? amp + 1 : end;
	}
	if (!u->nrelays) {
		why = "no relay";
		goto out;
	}
	if (!u->kp) {
		why = "no secret";
		goto out;
	}
	*out = u;
	u = NULL;
	r = 0;
out:
	if (val) {
		sodium_memzero(val, len + 1);
		free(val);
	}
	nwc_uri_free(u);
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

int nwc_uri_load(struct nwc_uri **out, const char **reason, const char *path)
{
	char buf[NWC_URI_MAX + 2];
	size_t n = 0;
	int r;
	*out = NULL;
	if (path) {
		FILE *f = fopen(path, "rb");
		if (!f) {
			if (reason)
				*reason = "cannot open the connection URI file";
			return errno == ENOENT ? APP_ENOENT : APP_EIO;
		}
		n = fread(buf, 1, sizeof buf - 1, f);
		int bad = ferror(f);
		fclose(f);
		if (bad) {
			sodium_memzero(buf, sizeof buf);
			if (reason)
				*reason = "cannot read the connection URI file";
			return APP_EIO;
		}
	} else {
		const char *e = getenv(NWC_ENV_URI);
		if (!e || !*e) {
			if (reason)
				*reason = "no connection URI: give --nwc-file FILE or set " NWC_ENV_URI;
			return APP_ENOENT;
		}
		n = strnlen(e, sizeof buf - 1);
		memcpy(buf, e, n);
	}
	buf[n] = 0;
	/* the first non-empty line */
	size_t start = 0;
	while (start < n && (buf[start] == '\n' || buf[start] == '\r' || buf[start] == ' ' || buf[start] == '\t'))
		start++;
	char *nl = memchr(buf + start, '\n', n - start);
	size_t end = nl ? (size_t)(nl - buf) : n;
	r = nwc_uri_parse(out, reason, buf + start, end - start);
	sodium_memzero(buf, sizeof buf);
	return r;
}

/* --- 2. messages ---------------------------------------------------------------------------------- */

static int verify_from(const struct event *ev, const uint8_t wallet[32], uint32_t kind)
{
	if (ev->kind != kind || memcmp(ev->pubkey, wallet, 32) != 0)
		return APP_EPROTO;
	return event_verify(ev);
}

static int has_word(const char *list, const char *w)
{
	size_t wl = strlen(w);
	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ' ')
			e++;
		if ((size_t)(e - p) == wl && memcmp(p, w, wl) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int nwc_info_parse(struct nwc_info *out, const struct event *ev, const uint8_t wallet[32])
{
	int r = verify_from(ev, wallet, NWC_KIND_INFO);
	if (r)
		return r;
	memset(out, 0, sizeof *out);
	for (int i = 0; i < NWC_METHOD_COUNT; i++)
		if (has_word(ev->content, method_names[i]))
			out->methods |= 1u << i;
	out->notifications = has_word(ev->content, "notifications");
	const char *enc = event_tag_value(ev, "encryption");
	if (!enc) {
		out->nip04 = 1; /* NIP-47: no encryption tag = nip04 only */
	} else {
		out->nip44 = has_word(enc, "nip44_v2");
		out->nip04 = has_word(enc, "nip04");
	}
	out->created_at = ev->created_at;
	return 0;
}

enum nwc_encryption nwc_pick_encryption(const struct nwc_info *info)
{
	return info->nip44 ? NWC_NIP44 : NWC_NIP04;
}

static int encrypt_for(char **out, const struct nwc_uri *u, enum nwc_encryption enc, const char *pt, size_t len)
{
	if (enc == NWC_NIP04)
		return nip04_encrypt(out, u->kp, u->wallet, (const uint8_t *)pt, len, NULL);
	uint8_t ck[32];
	size_t n;
	int r = nip44_conversation_key(ck, u->kp, u->wallet);
	if (r == 0)
		r = nip44_encrypt(out, &n, ck, (const uint8_t *)pt, len, NULL);
	sodium_memzero(ck, sizeof ck);
	return r;
}

static int decrypt_from(uint8_t **out, size_t *outlen, const struct nwc_uri *u, enum nwc_encryption enc,
			const char *content, size_t len)
{
	if (enc == NWC_NIP04)
		return nip04_decrypt(out, outlen, u->kp, u->wallet, content, len);
	uint8_t ck[32];
	int r = nip44_conversation_key(ck, u->kp, u->wallet);
	if (r == 0)
		r = nip44_decrypt(out, outlen, ck, content, len);
	sodium_memzero(ck, sizeof ck);
	return r;
}

int nwc_request_event(struct event **out, const struct nwc_uri *u, enum nwc_encryption enc, enum nwc_method m,
		      const char *params_json, uint64_t now, uint32_t ttl_s)
{
	struct jw w;
	char *pt = NULL, *ct = NULL, wallet_hex[65], exp[24];
	size_t ptlen;
	struct event *ev = NULL;
	int r;

	*out = NULL;
	if ((unsigned)m >= NWC_METHOD_COUNT)
		return APP_EINVAL;
	jw_init(&w, NWC_PAYLOAD_MAX);
	jw_raw(&w, "{\"method\":", 10);
	jw_cstr(&w, method_names[m]);
	jw_raw(&w, ",\"params\":", 10);
	if (params_json)
		jw_raw(&w, params_json, strlen(params_json));
	else
		jw_raw(&w, "{}", 2);
	jw_char(&w, '}');
	if ((r = jw_finish(&w, &pt, &ptlen)) != 0)
		goto out;
	if ((r = encrypt_for(&ct, u, enc, pt, ptlen)) != 0)
		goto out;
	if ((r = event_new(&ev, NWC_KIND_REQUEST, now, ct, strlen(ct))) != 0)
		goto out;
	hex_encode(wallet_hex, u->wallet, 32);
	snprintf(exp, sizeof exp, "%llu", (unsigned long long)(now + ttl_s));
	if ((r = event_add_tagv(ev, "p", wallet_hex, NULL)) != 0)
		goto out;
	if (enc == NWC_NIP44 && (r = event_add_tagv(ev, "encryption", "nip44_v2", NULL)) != 0)
		goto out;
	if ((r = event_add_tagv(ev, "expiration", exp, NULL)) != 0)
		goto out;
	if ((r = event_sign(ev, u->kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
out:
	if (pt) {
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	free(ct);
	event_free(ev);
	return r;
}

void nwc_tx_clear(struct nwc_tx *tx)
{
	if (!tx)
		return;
	free(tx->invoice);
	free(tx->description);
	sodium_memzero(tx, sizeof *tx);
}

void nwc_response_clear(struct nwc_response *r)
{
	if (!r)
		return;
	nwc_tx_clear(&r->tx);
	sodium_memzero(r, sizeof *r);
}

void nwc_notification_clear(struct nwc_notification *n)
{
	if (!n)
		return;
	nwc_tx_clear(&n->tx);
	sodium_memzero(n, sizeof *n);
}

#define NWC_MAX_NUMBER 9007199254740991ULL /* 2^53 - 1 */

/* Optional number: absent or null leaves *v; otherwise an integer in 0..2^53-1. */
static int get_num(const cJSON *o, const char *key, uint64_t *v, const char **why)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!it || cJSON_IsNull(it))
		return 0;
	if (json_get_u64(it, NWC_MAX_NUMBER, v) != 0) {
		*why = "a number field is not an integer in 0..2^53-1";
		return APP_EPARSE;
	}
	return 0;
}

/* Optional string: NULL when absent or null; refused when not a string or over cap. */
static int get_str(const cJSON *o, const char *key, const char **v, size_t cap, const char **why)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	*v = NULL;
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsString(it) || !it->valuestring) {
		*why = "a string field has another type";
		return APP_EPARSE;
	}
	if (strnlen(it->valuestring, cap + 1) > cap) {
		*why = "a string field is too long";
		return APP_ETOOBIG;
	}
	*v = it->valuestring;
	return 0;
}

/* Optional 32-byte hex: empty string counts as absent. */
static int get_hex32(const cJSON *o, const char *key, uint8_t out[32], int *has, const char **why)
{
	const char *s;
	int r = get_str(o, key, &s, 64, why);
	*has = 0;
	if (r || !s || !*s)
		return r;
	if (strlen(s) != 64 || hex_decode(out, 32, s, 64, 0) != 0) {
		*why = "a hash or preimage is not 64 hex digits";
		return APP_EPARSE;
	}
	*has = 1;
	return 0;
}

static int parse_tx(struct nwc_tx *tx, const cJSON *o, const char **why)
{
	const char *s;
	int r;
	if (!cJSON_IsObject(o)) {
		*why = "transaction is not an object";
		return APP_EPARSE;
	}
	if ((r = get_str(o, "type", &s, 16, why)) != 0)
		return r;
	tx->outgoing = s && strcmp(s, "outgoing") == 0;
	if ((r = get_str(o, "state", &s, sizeof tx->state - 1, why)) != 0)
		return r;
	if (s)
		copy_text(tx->state, sizeof tx->state, s);
	if ((r = get_str(o, "invoice", &s, NWC_INVOICE_MAX, why)) != 0)
		return r;
	if (s && !(tx->invoice = strdup(s)))
		return APP_ENOMEM;
	if ((r = get_str(o, "description", &s, NWC_TEXT_MAX, why)) != 0)
		return r;
	if (s && !(tx->description = strdup(s)))
		return APP_ENOMEM;
	if ((r = get_hex32(o, "description_hash", tx->description_hash, &tx->has_description_hash, why)) != 0 ||
	    (r = get_hex32(o, "preimage", tx->preimage, &tx->has_preimage, why)) != 0 ||
	    (r = get_hex32(o, "payment_hash", tx->payment_hash, &tx->has_payment_hash, why)) != 0 ||
	    (r = get_num(o, "amount", &tx->amount_msat, why)) != 0 ||
	    (r = get_num(o, "fees_paid", &tx->fees_paid_msat, why)) != 0 ||
	    (r = get_num(o, "created_at", &tx->created_at, why)) != 0 ||
	    (r = get_num(o, "expires_at", &tx->expires_at, why)) != 0 ||
	    (r = get_num(o, "settled_at", &tx->settled_at, why)) != 0)
		return r;
	return 0;
}

static int parse_result(struct nwc_response *out, const cJSON *res, const char **why)
{
	int r, has;
	const char *s;
	if (!cJSON_IsObject(res)) {
		*why = "result is not an object";
		return APP_EPARSE;
	}
	switch (out->method) {
	case NWC_MAKE_INVOICE:
	case NWC_LOOKUP_INVOICE:
		return parse_tx(&out->tx, res, why);
	case NWC_GET_BALANCE:
		if (!cJSON_GetObjectItemCaseSensitive(res, "balance")) {
			*why = "get_balance result has no balance";
			return APP_EPARSE;
		}
		return get_num(res, "balance", &out->balance_msat, why);
	case NWC_PAY_INVOICE:
	case NWC_PAY_KEYSEND:
		if ((r = get_hex32(res, "preimage", out->preimage, &has, why)) != 0)
			return r;
		if (!has) {
			*why = "pay result has no preimage";
			return APP_EPARSE;
		}
		out->has_preimage = 1;
		return get_num(res, "fees_paid", &out->fees_paid_msat, why);
	case NWC_GET_INFO: {
		if ((r = get_str(res, "alias", &s, NWC_TEXT_MAX, why)) != 0)
			return r;
		if (s)
			copy_text(out->info.alias, sizeof out->info.alias, s);
		if ((r = get_str(res, "network", &s, 64, why)) != 0)
			return r;
		if (s)
			copy_text(out->info.network, sizeof out->info.network, s);
		if ((r = get_str(res, "pubkey", &s, 66, why)) != 0)
			return r;
		if (s)
			copy_text(out->info.pubkey, sizeof out->info.pubkey, s);
		if ((r = get_num(res, "block_height", &out->info.block_height, why)) != 0)
			return r;
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "methods"), *it;
		if (m && !cJSON_IsArray(m)) {
			*why = "methods is not an array";
			return APP_EPARSE;
		}
		cJSON_ArrayForEach(it, m)
		{
			enum nwc_method mm;
			if (cJSON_IsString(it) && method_from(it->valuestring, &mm) == 0)
				out->info.methods |= 1u << mm;
		}
		return 0;
	}
	default:
		return 0;
	}
}

int nwc_response_parse_json(struct nwc_response *out, const char **reason, enum nwc_method expect, const char *json,
			    size_t len)
{
	const char *why = "malformed response";
	cJSON *root = NULL;
	const char *s;
	int r;

	memset(out, 0, sizeof *out);
	if (len > NWC_PAYLOAD_MAX) {
		r = APP_ETOOBIG;
		why = "response over NWC_PAYLOAD_MAX";
		goto out;
	}
	if ((r = json_parse(&root, json, len, NWC_PAYLOAD_MAX, 16)) != 0) {
		why = r == APP_ENOMEM ? "out of memory" : "response is not JSON";
		goto out;
	}
	r = APP_EPARSE;
	if (!cJSON_IsObject(root)) {
		why = "response is not an object";
		goto out;
	}
	if ((r = get_str(root, "result_type", &s, 64, &why)) != 0)
		goto out;
	r = APP_EPARSE;
	if (!s || method_from(s, &out->method) != 0) {
		why = "result_type missing or unknown";
		goto out;
	}
	if (out->method != expect) {
		r = APP_EPROTO;
		why = "result_type is not the method asked for";
		goto out;
	}
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (err && !cJSON_IsNull(err)) {
		const char *code, *msg;
		if (!cJSON_IsObject(err)) {
			why = "error is not an object";
			goto out;
		}
		if ((r = get_str(err, "code", &code, 64, &why)) != 0 ||
		    (r = get_str(err, "message", &msg, NWC_TEXT_MAX, &why)) != 0)
			goto out;
		r = APP_EPARSE;
		if (!code) {
			why = "error without a code";
			goto out;
		}
		out->error.code = code_from(code);
		copy_text(out->error.code_text, sizeof out->error.code_text, code);
		copy_text(out->error.message, sizeof out->error.message, msg ? msg : "");
		r = 0;
		goto out;
	}
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!res || cJSON_IsNull(res)) {
		why = "neither a result nor an error";
		goto out;
	}
	if ((r = parse_result(out, res, &why)) != 0)
		goto out;
	copy_text(out->error.code_text, sizeof out->error.code_text, "OK");
	r = 0;
out:
	cJSON_Delete(root);
	if (r)
		nwc_response_clear(out);
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

int nwc_notification_parse_json(struct nwc_notification *out, const char **reason, const char *json, size_t len)
{
	const char *why = "malformed notification";
	cJSON *root = NULL;
	const char *s;
	int r;

	memset(out, 0, sizeof *out);
	if (len > NWC_PAYLOAD_MAX) {
		r = APP_ETOOBIG;
		why = "notification over NWC_PAYLOAD_MAX";
		goto out;
	}
	if ((r = json_parse(&root, json, len, NWC_PAYLOAD_MAX, 16)) != 0) {
		why = r == APP_ENOMEM ? "out of memory" : "notification is not JSON";
		goto out;
	}
	r = APP_EPARSE;
	if (!cJSON_IsObject(root)) {
		why = "notification is not an object";
		goto out;
	}
	if ((r = get_str(root, "notification_type", &s, 64, &why)) != 0)
		goto out;
	r = APP_EPARSE;
	if (!s) {
		why = "no notification_type";
		goto out;
	}
	out->type = strcmp(s, "payment_received") == 0	       ? NWC_PAYMENT_RECEIVED
		    : strcmp(s, "payment_sent") == 0	       ? NWC_PAYMENT_SENT
		    : strcmp(s, "hold_invoice_accepted") == 0 ? NWC_HOLD_INVOICE_ACCEPTED
							       : NWC_NOTIFY_OTHER;
	if ((r = parse_tx(&out->tx, cJSON_GetObjectItemCaseSensitive(root, "notification"), &why)) != 0)
		goto out;
	r = 0;
out:
	cJSON_Delete(root);
	if (r)
		nwc_notification_clear(out);
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

/* ["name", hex] tag check: some tag `name` whose value is hex(want). */
static int has_hex_tag(const struct event *ev, const char *name, const uint8_t want[32])
{
	char hex[65];
	size_t pos = 0;
	const struct event_tag *t;
	hex_encode(hex, want, 32);
	while ((t = event_tag_find(ev, &pos, name, 2)) != NULL)
		if (strcmp(t->v[1], hex) == 0)
			return 1;
	return 0;
}

static int open_payload(uint8_t **pt, size_t *ptlen, const char **why, const struct nwc_uri *u,
			const struct event *ev, uint32_t kind, enum nwc_encryption enc)
{
	uint8_t client[32];
	int r = verify_from(ev, u->wallet, kind);
	if (r) {
		*why = r == APP_EPROTO ? "event of another kind or author" : "event id or signature invalid";
		return r;
	}
	keys_pubkey(u->kp, client);
	/* A p tag naming someone else is refused. Its absence is tolerated on responses: @getalby/sdk 7's
	 * wallet service sends only ["e", request]; the e tag and the encryption to our key bind them. */
	size_t pos = 0;
	int any_p = event_tag_find(ev, &pos, "p", 2) != NULL;
	if ((any_p || kind != NWC_KIND_RESPONSE) && !has_hex_tag(ev, "p", client)) {
		*why = "event is not addressed to this client (p tag)";
		return APP_EPROTO;
	}
	if ((r = decrypt_from(pt, ptlen, u, enc, ev->content, ev->content_len)) != 0) {
		*why = "cannot decrypt the content";
		return r;
	}
	return 0;
}

int nwc_response_open(struct nwc_response *out, const char **reason, const struct nwc_uri *u,
		      const struct event *ev, const uint8_t request_id[32], enum nwc_method expect)
{
	const char *why = NULL;
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (!has_hex_tag(ev, "e", request_id)) {
		r = APP_EPROTO;
		why = "response does not name the request (e tag)";
		goto out;
	}
	enum nwc_encryption enc = strstr(ev->content, "?iv=") ? NWC_NIP04 : NWC_NIP44;
	if ((r = open_payload(&pt, &ptlen, &why, u, ev, NWC_KIND_RESPONSE, enc)) != 0)
		goto out;
	r = nwc_response_parse_json(out, &why, expect, (const char *)pt, ptlen);
out:
	if (pt) {
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

int nwc_notification_open(struct nwc_notification *out, const char **reason, const struct nwc_uri *u,
			  const struct event *ev)
{
	const char *why = NULL;
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (ev->kind != NWC_KIND_NOTIFICATION && ev->kind != NWC_KIND_NOTIFICATION_NIP04) {
		r = APP_EPROTO;
		why = "not a notification kind";
		goto out;
	}
	enum nwc_encryption enc = ev->kind == NWC_KIND_NOTIFICATION_NIP04 ? NWC_NIP04 : NWC_NIP44;
	if ((r = open_payload(&pt, &ptlen, &why, u, ev, ev->kind, enc)) != 0)
		goto out;
	r = nwc_notification_parse_json(out, &why, (const char *)pt, ptlen);
out:
	if (pt) {
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

static int preimage_matches(const uint8_t preimage[32], const uint8_t payment_hash[32])
{
	uint8_t h[32];
	hash_sha256(h, preimage, 32);
	return crypto_verify_32(h, payment_hash) == 0;
}

int nwc_payment_check(const struct nwc_tx *tx, const char **reason, const uint8_t payment_hash[32], uint64_t min_msat)
{
	const char *why;
	int r;
	if (!tx->has_payment_hash || sodium_memcmp(tx->payment_hash, payment_hash, 32) != 0) {
		r = APP_EPROTO;
		why = "transaction is for another payment_hash";
	} else if (!strcmp(tx->state, "expired") || !strcmp(tx->state, "failed")) {
		r = APP_EEXPIRED;
		why = "invoice expired or failed";
	} else if (!(strcmp(tx->state, "settled") == 0 || (tx->state[0] == 0 && tx->settled_at > 0))) {
		r = APP_EAGAIN;
		why = "not settled yet";
	} else if (tx->has_preimage && !preimage_matches(tx->preimage, payment_hash)) {
		r = APP_EBADMAC;
		why = "preimage does not hash to the payment_hash";
	} else if (tx->amount_msat < min_msat) {
		r = APP_ERANGE;
		why = "amount below the quote";
	} else {
		r = 0;
		why = NULL;
	}
	if (reason)
		*reason = why;
	return r;
}

/* --- 3. the client -------------------------------------------------------------------------------- */

#define MAX_ATTEMPTS 8
#define QUEUE_MAX 1024 /* notifications kept unread */

struct nwc_client {
	const struct nwc_uri *u;
	struct nwc_client_opts o;
	struct relay_pool *pool;
	uint64_t sub_info, sub_resp, sub_notif;
	int eose_info, eose_resp, eose_notif;
	int connected;                 /* relays connected now */
	int relay_up[NWC_MAX_RELAYS]; /* per relay index: connected */
	char last_error[160];
	struct nwc_info info;
	int has_info;
	enum nwc_encryption enc;
	/* the call in progress */
	uint8_t ids[MAX_ATTEMPTS][32];
	size_t nids;
	struct event *resp;
	int publish_failed; /* the last publish reached no relay */
	char publish_msg[160];
	/* notifications */
	struct nwc_notification *queue;
	size_t qhead, qn;
};

void nwc_client_opts_default(struct nwc_client_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout_ms = 10000;
	o->attempts = 2;
	o->connect_timeout_ms = 10000;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_relay(void *user, size_t relay, enum relay_state state, const char *detail)
{
	struct nwc_client *c = user;
	if (relay < NWC_MAX_RELAYS)
		c->relay_up[relay] = state == RELAY_CONNECTED;
	c->connected = 0;
	for (size_t i = 0; i < NWC_MAX_RELAYS; i++)
		c->connected += c->relay_up[i];
	if (state != RELAY_CONNECTED && detail)
		copy_text(c->last_error, sizeof c->last_error, detail);
}

static void on_event(void *user, uint64_t sub, size_t relay, struct event **evp)
{
	struct nwc_client *c = user;
	struct event *ev = *evp;
	(void)relay;
	if (sub == c->sub_info) {
		struct nwc_info in;
		if (nwc_info_parse(&in, ev, c->u->wallet) == 0 && (!c->has_info || in.created_at >= c->info.created_at)) {
			c->info = in;
			c->has_info = 1;
		}
	} else if (sub == c->sub_resp) {
		for (size_t i = 0; i < c->nids; i++) {
			if (has_hex_tag(ev, "e", c->ids[i]) && !c->resp) {
				c->resp = ev;
				*evp = NULL;
				return;
			}
		}
	} else if (sub == c->sub_notif) {
		struct nwc_notification n;
		const char *why;
		if (nwc_notification_open(&n, &why, c->u, ev) != 0) {
			log_warn("event=nwc_notification_refused id=%02x%02x%02x%02x reason=\"%s\"", ev->id[0], ev->id[1],
				 ev->id[2], ev->id[3], why);
			return;
		}
		if (c->qn == QUEUE_MAX) {
			log_warn("event=nwc_notification_dropped reason=queue_full");
			nwc_notification_clear(&n);
			return;
		}
		c->queue[(c->qhead + c->qn) % QUEUE_MAX] = n;
		c->qn++;
	}
}

static void on_eose(void *user, uint64_t sub, size_t relay)
{
	struct nwc_client *c = user;
	if (relay != RELAY_ALL)
		return;
	if (sub == c->sub_info)
		c->eose_info = 1;
	else if (sub == c->sub_resp)
		c->eose_resp = 1;
	else if (sub == c->sub_notif)
		c->eose_notif = 1;
}

static void on_closed(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix, const char *message)
{
	struct nwc_client *c = user;
	(void)sub;
	(void)relay;
	(void)prefix;
	copy_text(c->last_error, sizeof c->last_error, message ? message : "subscription closed");
}

static int open_sub(struct nwc_client *c, uint64_t *id, const uint32_t *kinds, size_t nkinds, int to_client,
		    uint64_t since)
{
	struct filter *f = NULL;
	char hex[65];
	uint8_t client[32];
	int r;
	static const struct relay_sub_cbs cbs = {on_event, on_eose, on_closed};
	if ((r = filter_new(&f)) != 0)
		return r;
	for (size_t i = 0; i < nkinds && r == 0; i++)
		r = filter_add_kind(f, kinds[i]);
	if (r == 0)
		r = filter_add_author(f, c->u->wallet);
	if (r == 0 && to_client) {
		keys_pubkey(c->u->kp, client);
		hex_encode(hex, client, 32);
		r = filter_add_tag_value(f, 'p', hex);
	}
	if (r == 0 && since) {
		f->since = since;
		f->has_since = 1;
	}
	if (r == 0) {
		const struct filter *fs[1] = {f};
		r = relay_sub_open(c->pool, id, fs, 1, NULL, 0, &cbs, c);
	}
	filter_free(f);
	return r;
}

void nwc_client_free(struct nwc_client *c)
{
	if (!c)
		return;
	relay_pool_free(c->pool);
	event_free(c->resp);
	if (c->queue) {
		for (size_t i = 0; i < c->qn; i++)
			nwc_notification_clear(&c->queue[(c->qhead + i) % QUEUE_MAX]);
		free(c->queue);
	}
	free(c);
}

/* Services the pool until done(c) or the deadline passes. Returns 0, APP_ETIMEOUT, APP_EINTERNAL. */
static int service_until(struct nwc_client *c, int (*done)(const struct nwc_client *), uint64_t deadline)
{
	while (!done(c)) {
		uint64_t t = now_ms();
		if (t >= deadline)
			return APP_ETIMEOUT;
		uint64_t left = deadline - t;
		if (relay_pool_service(c->pool, (int)(left < 50 ? left : 50)) != 0)
			return APP_EINTERNAL;
	}
	return 0;
}

static int done_subscribed(const struct nwc_client *c)
{
	return c->eose_info && c->eose_resp && c->eose_notif;
}

static int done_response(const struct nwc_client *c)
{
	return c->resp != NULL || (c->publish_failed && !c->connected);
}

static int done_notification(const struct nwc_client *c)
{
	return c->qn > 0;
}

enum nwc_encryption nwc_client_encryption(const struct nwc_client *c)
{
	return c->enc;
}

const struct nwc_info *nwc_client_info(const struct nwc_client *c)
{
	return c->has_info ? &c->info : NULL;
}

int nwc_client_new(struct nwc_client **out, const char **reason, const struct nwc_uri *u,
		   const struct nwc_client_opts *opts)
{
	const char *why = "cannot create the wallet client";
	struct nwc_client *c = calloc(1, sizeof *c);
	struct relay_pool_opts po;
	int r = APP_ENOMEM;

	*out = NULL;
	if (!c)
		goto out;
	c->u = u;
	if (opts)
		c->o = *opts;
	else
		nwc_client_opts_default(&c->o);
	if (!c->o.timeout_ms)
		c->o.timeout_ms = 10000;
	if (!c->o.attempts)
		c->o.attempts = 1;
	if (c->o.attempts > MAX_ATTEMPTS)
		c->o.attempts = MAX_ATTEMPTS;
	if (!c->o.connect_timeout_ms)
		c->o.connect_timeout_ms = 10000;
	c->queue = calloc(QUEUE_MAX, sizeof *c->queue);
	if (!c->queue)
		goto out;
	relay_pool_opts_default(&po);
	po.ca_file = c->o.ca_file;
	po.connect_timeout_ms = c->o.connect_timeout_ms;
	po.publish_timeout_ms = c->o.timeout_ms;
	po.publish_attempts = 2;
	po.publish_deadline_ms = c->o.timeout_ms + 1000;
	po.on_relay = on_relay;
	po.user = c;
	if ((r = relay_pool_new(&c->pool, &po)) != 0) {
		why = "cannot create the relay pool";
		goto out;
	}
	for (size_t i = 0; i < u->nrelays; i++) {
		r = relay_pool_add_relay(c->pool, NULL, u->relays[i], NULL);
		if (r && r != APP_EEXIST) {
			why = "cannot add a relay";
			goto out;
		}
	}
	uint64_t since = (uint64_t)time(NULL) - 60;
	static const uint32_t k_info[] = {NWC_KIND_INFO}, k_resp[] = {NWC_KIND_RESPONSE},
			      k_notif[] = {NWC_KIND_NOTIFICATION, NWC_KIND_NOTIFICATION_NIP04};
	if ((r = open_sub(c, &c->sub_info, k_info, 1, 0, 0)) != 0 ||
	    (r = open_sub(c, &c->sub_resp, k_resp, 1, 0, since)) != 0 || /* no #p: see open_payload */
	    (r = open_sub(c, &c->sub_notif, k_notif, 2, 1, since)) != 0) {
		why = "cannot subscribe";
		goto out;
	}
	if ((r = service_until(c, done_subscribed, now_ms() + c->o.connect_timeout_ms)) != 0) {
		why = c->connected ? "relays did not answer the subscriptions in time"
				   : "no relay of the connection URI is reachable";
		if (!c->connected && r == APP_ETIMEOUT)
			r = APP_ECONN;
		goto out;
	}
	if (!c->connected) {
		r = APP_ECONN;
		why = "no relay of the connection URI is reachable";
		goto out;
	}
	if (c->o.force) {
		c->enc = c->o.force;
	} else if (!c->has_info) {
		r = APP_ENOTFOUND;
		why = "the wallet service's info event (13194) is not on these relays";
		goto out;
	} else if (!c->info.nip44 && !c->info.nip04) {
		r = APP_EUNSUPPORTED;
		why = "the wallet offers neither nip44_v2 nor nip04";
		goto out;
	} else {
		c->enc = nwc_pick_encryption(&c->info);
	}
	log_debug("event=nwc_connected relays=%zu encryption=%s", u->nrelays, c->enc == NWC_NIP44 ? "nip44_v2" : "nip04");
	*out = c;
	c = NULL;
	r = 0;
out:
	nwc_client_free(c);
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

static void on_published(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *res,
			 size_t n)
{
	struct nwc_client *c = user;
	(void)publish_id;
	(void)id;
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status == RELAY_PUB_ACCEPTED)
			any = 1;
		else
			copy_text(c->publish_msg, sizeof c->publish_msg, res[i].message);
	}
	if (!any)
		c->publish_failed = 1;
}

int nwc_call(struct nwc_client *c, struct nwc_response *out, const char **reason, enum nwc_method m,
	     const char *params_json)
{
	const char *why = NULL;
	struct event *req = NULL;
	int r = APP_ETIMEOUT;
	unsigned attempts = m == NWC_PAY_INVOICE || m == NWC_PAY_KEYSEND ? 1 : c->o.attempts;

	memset(out, 0, sizeof *out);
	event_free(c->resp);
	c->resp = NULL;
	c->nids = 0;
	for (unsigned a = 0; a < attempts; a++) {
		c->publish_failed = 0;
		if ((r = nwc_request_event(&req, c->u, c->enc, m, params_json, (uint64_t)time(NULL), NWC_REQUEST_TTL)) != 0) {
			why = "cannot build the request";
			goto out;
		}
		memcpy(c->ids[c->nids++], req->id, 32);
		log_debug("event=nwc_request method=%s id=%02x%02x%02x%02x attempt=%u", method_names[m], req->id[0],
			  req->id[1], req->id[2], req->id[3], a + 1);
		if ((r = relay_publish(c->pool, NULL, req, NULL, 0, on_published, c)) != 0) {
			why = "cannot publish the request";
			goto out;
		}
		event_free(req);
		req = NULL;
		r = service_until(c, done_response, now_ms() + c->o.timeout_ms);
		if (r == APP_EINTERNAL) {
			why = "relay pool failure";
			goto out;
		}
		if (c->resp)
			break;
		if (c->publish_failed && !c->connected) {
			r = APP_ECONN;
			why = "no relay took the request (relays unreachable)";
			goto out;
		}
		struct relay_status st;
		memset(&st, 0, sizeof st);
		if (relay_pool_relay_status(c->pool, 0, &st) != 0)
			memset(&st, 0, sizeof st);
		log_warn("event=nwc_timeout method=%s attempt=%u of=%u timeout_ms=%u relay0_state=%s events_in=%llu "
			 "delivered=%llu unmatched=%llu invalid=%llu",
			 method_names[m], a + 1, attempts, c->o.timeout_ms, relay_state_name(st.state),
			 (unsigned long long)st.events_in, (unsigned long long)st.events_delivered,
			 (unsigned long long)st.events_unmatched, (unsigned long long)st.events_invalid);
	}
	if (!c->resp) {
		r = APP_ETIMEOUT;
		why = "no response from the wallet service (offline or too slow)";
		goto out;
	}
	/* the response may answer any attempt of this call */
	r = APP_EPROTO;
	for (size_t i = 0; i < c->nids; i++) {
		r = nwc_response_open(out, &why, c->u, c->resp, c->ids[i], m);
		if (r != APP_EPROTO || !why || strstr(why, "e tag") == NULL)
			break;
	}
	if (r == 0 && out->error.code != NWC_OK) {
		r = APP_EREFUSED;
		why = "the wallet answered with an error";
	}
out:
	event_free(req);
	event_free(c->resp);
	c->resp = NULL;
	c->nids = 0;
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

static void take_err(struct nwc_error *err, const struct nwc_response *resp)
{
	if (err)
		*err = resp->error;
}

int nwc_make_invoice(struct nwc_client *c, struct nwc_tx *out, struct nwc_error *err, const char **reason,
		     uint64_t amount_msat, const char *description, uint32_t expiry_s)
{
	struct nwc_response resp;
	struct jw w;
	char *params;
	size_t n;
	memset(out, 0, sizeof *out);
	jw_init(&w, NWC_PAYLOAD_MAX);
	jw_raw(&w, "{\"amount\":", 10);
	jw_u64(&w, amount_msat);
	if (description) {
		jw_key(&w, 1, "description");
		jw_cstr(&w, description);
	}
	if (expiry_s) {
		jw_key(&w, 1, "expiry");
		jw_u64(&w, expiry_s);
	}
	jw_char(&w, '}');
	int r = jw_finish(&w, &params, &n);
	if (r)
		return r;
	r = nwc_call(c, &resp, reason, NWC_MAKE_INVOICE, params);
	free(params);
	take_err(err, &resp);
	if (r == 0) {
		*out = resp.tx;
		memset(&resp.tx, 0, sizeof resp.tx);
		if (!out->invoice || !out->has_payment_hash) {
			nwc_tx_clear(out);
			r = APP_EPROTO;
			if (reason)
				*reason = "make_invoice result without invoice or payment_hash";
		}
	}
	nwc_response_clear(&resp);
	return r;
}

int nwc_lookup_invoice(struct nwc_client *c, struct nwc_tx *out, struct nwc_error *err, const char **reason,
		       const uint8_t payment_hash[32])
{
	struct nwc_response resp;
	char params[96], hex[65];
	memset(out, 0, sizeof *out);
	hex_encode(hex, payment_hash, 32);
	snprintf(params, sizeof params, "{\"payment_hash\":\"%s\"}", hex);
	int r = nwc_call(c, &resp, reason, NWC_LOOKUP_INVOICE, params);
	take_err(err, &resp);
	if (r == 0) {
		*out = resp.tx;
		memset(&resp.tx, 0, sizeof resp.tx);
	}
	nwc_response_clear(&resp);
	return r;
}

int nwc_pay_invoice(struct nwc_client *c, uint8_t preimage[32], uint64_t *fees_paid_msat, struct nwc_error *err,
		    const char **reason, const char *bolt11)
{
	struct nwc_response resp;
	struct jw w;
	char *params;
	size_t n;
	jw_init(&w, NWC_PAYLOAD_MAX);
	jw_raw(&w, "{\"invoice\":", 11);
	jw_cstr(&w, bolt11);
	jw_char(&w, '}');
	int r = jw_finish(&w, &params, &n);
	if (r)
		return r;
	r = nwc_call(c, &resp, reason, NWC_PAY_INVOICE, params);
	free(params);
	take_err(err, &resp);
	if (r == 0) {
		memcpy(preimage, resp.preimage, 32);
		if (fees_paid_msat)
			*fees_paid_msat = resp.fees_paid_msat;
	}
	nwc_response_clear(&resp);
	return r;
}

int nwc_get_balance(struct nwc_client *c, uint64_t *balance_msat, struct nwc_error *err, const char **reason)
{
	struct nwc_response resp;
	int r = nwc_call(c, &resp, reason, NWC_GET_BALANCE, NULL);
	take_err(err, &resp);
	if (r == 0)
		*balance_msat = resp.balance_msat;
	nwc_response_clear(&resp);
	return r;
}

int nwc_get_info(struct nwc_client *c, struct nwc_wallet_info *out, struct nwc_error *err, const char **reason)
{
	struct nwc_response resp;
	int r = nwc_call(c, &resp, reason, NWC_GET_INFO, NULL);
	take_err(err, &resp);
	if (r == 0)
		*out = resp.info;
	nwc_response_clear(&resp);
	return r;
}

int nwc_next_notification(struct nwc_client *c, struct nwc_notification *out, int timeout_ms)
{
	int r = service_until(c, done_notification, now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms));
	if (r)
		return r;
	*out = c->queue[c->qhead];
	memset(&c->queue[c->qhead], 0, sizeof c->queue[c->qhead]);
	c->qhead = (c->qhead + 1) % QUEUE_MAX;
	c->qn--;
	return 0;
}
