/*
 * nwc_test: NIP-47 connection URIs (the nip47.examples.json cases and our
 * own refusals) and the message layer: requests a simulated wallet can read,
 * responses and notifications from it (nip44_v2 and nip04), tampering,
 * wallet errors, payment confirmation.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip04.h"
#include "appliance/nip44.h"
#include "billing/nwc.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

static void test_uri_vectors(void)
{
	char path[512];
	cJSON *v = tu_load_json(test_vector_path(path, sizeof path, "nostr/nip47.examples.json"));
	CHECK(v != NULL);
	if (!v)
		return;
	const cJSON *uris = cJSON_GetObjectItem(v, "uris"), *it;
	int n = 0;
	cJSON_ArrayForEach(it, uris)
	{
		const char *s = cJSON_GetObjectItem(it, "uri")->valuestring;
		struct nwc_uri *u = NULL;
		const char *why = NULL;
		CHECKM(nwc_uri_parse(&u, &why, s, strlen(s)) == 0, "%s: %s", s, why ? why : "");
		if (!u)
			continue;
		n++;
		char hex[65];
		hex_encode(hex, nwc_uri_wallet_pubkey(u), 32);
		CHECK_STR(hex, cJSON_GetObjectItem(it, "pubkey")->valuestring);
		const cJSON *relays = cJSON_GetObjectItem(it, "relays");
		CHECK(nwc_uri_relay_count(u) == (size_t)cJSON_GetArraySize(relays));
		for (int i = 0; i < cJSON_GetArraySize(relays); i++)
			CHECK_STR(nwc_uri_relay(u, (size_t)i), cJSON_GetArrayItem(relays, i)->valuestring);
		uint8_t sec[32], pub[32];
		keys_secret(nwc_uri_keypair(u), sec);
		hex_encode(hex, sec, 32);
		CHECK_STR(hex, cJSON_GetObjectItem(it, "secret")->valuestring);
		const cJSON *cp = cJSON_GetObjectItem(it, "client_pubkey_from_secret");
		if (cp) {
			nwc_uri_client_pubkey(u, pub);
			hex_encode(hex, pub, 32);
			CHECK_STR(hex, cp->valuestring);
		}
		CHECK(nwc_uri_lud16(u) == NULL);
		nwc_uri_free(u);
	}
	CHECK(n == 3);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(v, "invalid_uris"))
	{
		const char *s = cJSON_GetObjectItem(it, "uri")->valuestring;
		struct nwc_uri *u = NULL;
		const char *why = NULL;
		CHECKM(nwc_uri_parse(&u, &why, s, strlen(s)) != 0 && u == NULL && why, "accepted: %s",
		       cJSON_GetObjectItem(it, "why")->valuestring);
	}
	cJSON_Delete(v);
}

#define PK "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
#define SEC "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"

static void test_uri_own(void)
{
	static const struct {
		const char *uri;
		int ok;
	} cases[] = {
		{"nostr+walletconnect://" PK "?relay=ws%3A%2F%2F127.0.0.1%3A7777&secret=" SEC "&lud16=alice%40example.com", 1},
		{"  nostr+walletconnect://" PK "?relay=wss://relay.example&secret=" SEC "\n", 1},
		{"NOSTR+WALLETCONNECT://" PK "?relay=wss://r&secret=" SEC "&unknown=1&flag", 1},
		{"nostr+walletconnect://" PK "?relay=https%3A%2F%2Fx&secret=" SEC, 0},  /* not ws */
		{"nostr+walletconnect://" PK "?relay=wss://r&secret=" SEC "&secret=" SEC, 0}, /* two secrets */
		{"nostr+walletconnect://" PK "?relay=wss://r&secret=" SEC "00", 0},      /* long secret */
		{"nostr+walletconnect://" PK "?relay=wss://r&secret=zz" SEC, 0},
		{"nostr+walletconnect://" PK "?relay=wss://r&secret="
		 "0000000000000000000000000000000000000000000000000000000000000000", 0}, /* zero key */
		{"nostr+walletconnect://" PK "?relay=wss%3&secret=" SEC, 0},             /* bad % */
		{"nostr+walletconnect://" PK "?relay=wss%3A%00&secret=" SEC, 0},          /* NUL */
		{"nostr+walletconnect://" PK "00?relay=wss://r&secret=" SEC, 0},
		{"nostr+walletconnect://" PK, 0},
		{"nostr+walletconnect://?relay=wss://r&secret=" SEC, 0},
		{"nostr+walletconnect://eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34?relay=wss://r&secret=" SEC,
		 0}, /* not on the curve */
		{"nostr:" PK "?relay=wss://r&secret=" SEC, 0},
		{"", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct nwc_uri *u = NULL;
		const char *why = NULL;
		int r = nwc_uri_parse(&u, &why, cases[i].uri, strlen(cases[i].uri));
		CHECKM((r == 0) == cases[i].ok, "case %zu: %d %s", i, r, why ? why : "");
		if (r)
			CHECKM(why && !strstr(why, SEC), "reason leaks the secret");
		if (i == 0 && u)
			CHECK_STR(nwc_uri_lud16(u), "alice@example.com");
		nwc_uri_free(u);
	}
	/* more relays than the cap */
	char big[NWC_URI_MAX + 100];
	int n = snprintf(big, sizeof big, "nostr+walletconnect://%s?secret=%s", PK, SEC);
	for (int i = 0; i <= NWC_MAX_RELAYS; i++)
		n += snprintf(big + n, sizeof big - (size_t)n, "&relay=wss://r%d", i);
	struct nwc_uri *u = NULL;
	CHECK_ERR(nwc_uri_parse(&u, NULL, big, (size_t)n), APP_ETOOBIG);
	/* environment */
	setenv(NWC_ENV_URI, "nostr+walletconnect://" PK "?relay=wss://r&secret=" SEC, 1);
	CHECK_OK(nwc_uri_load(&u, NULL, NULL));
	nwc_uri_free(u);
	unsetenv(NWC_ENV_URI);
	CHECK_ERR(nwc_uri_load(&u, NULL, NULL), APP_ENOENT);
	CHECK_ERR(nwc_uri_load(&u, NULL, "/nonexistent/nwc"), APP_ENOENT);
}

/* A simulated wallet: its key, the client's URI. */
struct sim {
	struct keypair *wallet;
	struct nwc_uri *u;
	uint8_t wpub[32], cpub[32];
};

static int sim_init(struct sim *s)
{
	char uri[512], whex[65];
	memset(s, 0, sizeof *s);
	if (keys_generate(&s->wallet))
		return -1;
	keys_pubkey(s->wallet, s->wpub);
	hex_encode(whex, s->wpub, 32);
	snprintf(uri, sizeof uri, "nostr+walletconnect://%s?relay=ws%%3A%%2F%%2F127.0.0.1%%3A1&secret=%s", whex, SEC);
	if (nwc_uri_parse(&s->u, NULL, uri, strlen(uri)))
		return -1;
	nwc_uri_client_pubkey(s->u, s->cpub);
	return 0;
}

static void sim_free(struct sim *s)
{
	keys_free(s->wallet);
	nwc_uri_free(s->u);
}

/* The wallet's event of `kind` with content encrypted (enc) to the client, tags e (optional) and p. */
static struct event *sim_event(struct sim *s, uint32_t kind, enum nwc_encryption enc, const char *json,
			       const uint8_t *e_id, const uint8_t *p_key)
{
	char *ct = NULL, hex[65];
	struct event *ev = NULL;
	if (enc == NWC_NIP04) {
		if (nip04_encrypt(&ct, s->wallet, s->cpub, (const uint8_t *)json, strlen(json), NULL))
			return NULL;
	} else {
		uint8_t ck[32];
		size_t n;
		if (nip44_conversation_key(ck, s->wallet, s->cpub) ||
		    nip44_encrypt(&ct, &n, ck, (const uint8_t *)json, strlen(json), NULL))
			return NULL;
	}
	if (event_new(&ev, kind, 1700000000, ct, strlen(ct)) == 0) {
		if (e_id) {
			hex_encode(hex, e_id, 32);
			if (event_add_tagv(ev, "e", hex, NULL)) {
				event_free(ev);
				ev = NULL;
			}
		}
		hex_encode(hex, p_key ? p_key : s->cpub, 32);
		if (ev && (event_add_tagv(ev, "p", hex, NULL) || event_sign(ev, s->wallet))) {
			event_free(ev);
			ev = NULL;
		}
	}
	free(ct);
	return ev;
}

static void test_request(void)
{
	struct sim s;
	CHECK_OK(sim_init(&s));
	for (int e = NWC_NIP04; e <= NWC_NIP44; e++) {
		struct event *req = NULL;
		CHECK_OK(nwc_request_event(&req, s.u, (enum nwc_encryption)e, NWC_MAKE_INVOICE,
					   "{\"amount\":21000,\"description\":\"job quote\",\"expiry\":600}", 1700000000, 60));
		if (!req)
			continue;
		CHECK(req->kind == NWC_KIND_REQUEST);
		CHECK(memcmp(req->pubkey, s.cpub, 32) == 0);
		CHECK_OK(event_verify(req));
		char whex[65];
		hex_encode(whex, s.wpub, 32);
		CHECK_STR(event_tag_value(req, "p"), whex);
		CHECK_STR(event_tag_value(req, "expiration"), "1700000060");
		if (e == NWC_NIP44)
			CHECK_STR(event_tag_value(req, "encryption"), "nip44_v2");
		else
			CHECK(event_tag_value(req, "encryption") == NULL);
		/* the wallet decrypts it */
		uint8_t *pt = NULL;
		size_t n = 0;
		if (e == NWC_NIP04) {
			CHECK_OK(nip04_decrypt(&pt, &n, s.wallet, s.cpub, req->content, req->content_len));
		} else {
			uint8_t ck[32];
			CHECK_OK(nip44_conversation_key(ck, s.wallet, s.cpub));
			CHECK_OK(nip44_decrypt(&pt, &n, ck, req->content, req->content_len));
		}
		if (pt)
			CHECK_STR((char *)pt, "{\"method\":\"make_invoice\",\"params\":{\"amount\":21000,\"description\":"
					      "\"job quote\",\"expiry\":600}}");
		free(pt);
		event_free(req);
	}
	sim_free(&s);
}

static void test_info(void)
{
	struct sim s;
	struct event *ev;
	struct nwc_info in;
	CHECK_OK(sim_init(&s));
	CHECK_OK(event_new(&ev, NWC_KIND_INFO, 1, "pay_invoice get_balance make_invoice lookup_invoice notifications", 65));
	CHECK_OK(event_add_tagv(ev, "encryption", "nip44_v2 nip04", NULL));
	CHECK_OK(event_sign(ev, s.wallet));
	CHECK_OK(nwc_info_parse(&in, ev, s.wpub));
	CHECK(in.nip44 && in.nip04 && in.notifications);
	CHECK(in.methods == ((1u << NWC_PAY_INVOICE) | (1u << NWC_GET_BALANCE) | (1u << NWC_MAKE_INVOICE) |
			     (1u << NWC_LOOKUP_INVOICE)));
	CHECK(nwc_pick_encryption(&in) == NWC_NIP44);
	event_free(ev);
	/* no encryption tag: nip04 only (legacy wallet) */
	CHECK_OK(event_new(&ev, NWC_KIND_INFO, 1, "get_info", 8));
	CHECK_OK(event_sign(ev, s.wallet));
	CHECK_OK(nwc_info_parse(&in, ev, s.wpub));
	CHECK(!in.nip44 && in.nip04 && nwc_pick_encryption(&in) == NWC_NIP04);
	/* another author */
	CHECK_ERR(nwc_info_parse(&in, ev, s.cpub), APP_EPROTO);
	event_free(ev);
	sim_free(&s);
}

static void test_response(void)
{
	struct sim s;
	uint8_t req_id[32], other_id[32], preimage[32], ph[32];
	char hex_pre[65], hex_ph[65], json[1024];
	CHECK_OK(sim_init(&s));
	memset(req_id, 7, 32);
	memset(other_id, 8, 32);
	memset(preimage, 0x42, 32);
	hash_sha256(ph, preimage, 32);
	hex_encode(hex_pre, preimage, 32);
	hex_encode(hex_ph, ph, 32);
	snprintf(json, sizeof json,
		 "{\"result_type\":\"lookup_invoice\",\"error\":null,\"result\":{\"type\":\"incoming\",\"state\":\"settled\","
		 "\"invoice\":\"lnbcrt1\",\"description\":\"job\",\"description_hash\":\"\",\"preimage\":\"%s\","
		 "\"payment_hash\":\"%s\",\"amount\":21000,\"fees_paid\":0,\"created_at\":1700000000,\"expires_at\":1700000600,"
		 "\"settled_at\":1700000100,\"metadata\":{\"x\":1}}}",
		 hex_pre, hex_ph);
	for (int e = NWC_NIP04; e <= NWC_NIP44; e++) {
		struct event *ev = sim_event(&s, NWC_KIND_RESPONSE, (enum nwc_encryption)e, json, req_id, NULL);
		struct nwc_response r;
		const char *why = NULL;
		CHECK(ev != NULL);
		if (!ev)
			continue;
		CHECKM(nwc_response_open(&r, &why, s.u, ev, req_id, NWC_LOOKUP_INVOICE) == 0, "%s", why ? why : "");
		CHECK(r.method == NWC_LOOKUP_INVOICE && r.error.code == NWC_OK);
		CHECK_STR(r.tx.state, "settled");
		CHECK(r.tx.amount_msat == 21000 && r.tx.settled_at == 1700000100 && r.tx.has_preimage &&
		      r.tx.has_payment_hash && !r.tx.has_description_hash && !r.tx.outgoing);
		CHECK_STR(r.tx.invoice, "lnbcrt1");
		CHECK_OK(nwc_payment_check(&r.tx, &why, ph, 21000));
		CHECK_ERR(nwc_payment_check(&r.tx, &why, ph, 21001), APP_ERANGE);
		CHECK_ERR(nwc_payment_check(&r.tx, &why, other_id, 1), APP_EPROTO);
		r.tx.preimage[0] ^= 1;
		CHECK_ERR(nwc_payment_check(&r.tx, &why, ph, 1), APP_EBADMAC);
		r.tx.has_preimage = 0;
		CHECK_OK(nwc_payment_check(&r.tx, &why, ph, 1)); /* no preimage given: state decides */
		memcpy(r.tx.state, "pending", 8);
		CHECK_ERR(nwc_payment_check(&r.tx, &why, ph, 1), APP_EAGAIN);
		memcpy(r.tx.state, "expired", 8);
		CHECK_ERR(nwc_payment_check(&r.tx, &why, ph, 1), APP_EEXPIRED);
		nwc_response_clear(&r);
		/* for another request, or a method not asked for */
		CHECK_ERR(nwc_response_open(&r, &why, s.u, ev, other_id, NWC_LOOKUP_INVOICE), APP_EPROTO);
		CHECK_ERR(nwc_response_open(&r, &why, s.u, ev, req_id, NWC_MAKE_INVOICE), APP_EPROTO);
		/* tampered content: id check fails */
		ev->content[10] ^= 1;
		CHECK(nwc_response_open(&r, &why, s.u, ev, req_id, NWC_LOOKUP_INVOICE) != 0);
		event_free(ev);
	}
	/* addressed to someone else */
	struct event *ev = sim_event(&s, NWC_KIND_RESPONSE, NWC_NIP44, json, req_id, s.wpub);
	struct nwc_response r;
	CHECK(ev && nwc_response_open(&r, NULL, s.u, ev, req_id, NWC_LOOKUP_INVOICE) == APP_EPROTO);
	event_free(ev);
	/* every NIP-47 error code surfaces */
	static const char *codes[] = {"RATE_LIMITED",	"NOT_IMPLEMENTED", "INSUFFICIENT_BALANCE", "QUOTA_EXCEEDED",
				      "RESTRICTED",	"UNAUTHORIZED",	   "INTERNAL",		   "UNSUPPORTED_ENCRYPTION",
				      "OTHER",		"PAYMENT_FAILED",  "NOT_FOUND"};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		snprintf(json, sizeof json,
			 "{\"result_type\":\"pay_invoice\",\"error\":{\"code\":\"%s\",\"message\":\"m%zu\"},\"result\":null}",
			 codes[i], i);
		CHECK_OK(nwc_response_parse_json(&r, NULL, NWC_PAY_INVOICE, json, strlen(json)));
		CHECK(r.error.code == (enum nwc_code)(i + 1));
		CHECK_STR(nwc_code_name(r.error.code), codes[i]);
		CHECK_STR(r.error.code_text, codes[i]);
		nwc_response_clear(&r);
	}
	snprintf(json, sizeof json, "{\"result_type\":\"get_info\",\"error\":{\"code\":\"WEIRD\",\"message\":\"x\"}}");
	CHECK_OK(nwc_response_parse_json(&r, NULL, NWC_GET_INFO, json, strlen(json)));
	CHECK(r.error.code == NWC_E_UNKNOWN);
	CHECK_STR(r.error.code_text, "WEIRD");
	/* results of the other methods */
	snprintf(json, sizeof json, "{\"result_type\":\"get_balance\",\"result\":{\"balance\":99979000}}");
	CHECK_OK(nwc_response_parse_json(&r, NULL, NWC_GET_BALANCE, json, strlen(json)));
	CHECK(r.balance_msat == 99979000);
	snprintf(json, sizeof json, "{\"result_type\":\"pay_invoice\",\"result\":{\"preimage\":\"%s\",\"fees_paid\":3}}",
		 hex_pre);
	CHECK_OK(nwc_response_parse_json(&r, NULL, NWC_PAY_INVOICE, json, strlen(json)));
	CHECK(r.has_preimage && memcmp(r.preimage, preimage, 32) == 0 && r.fees_paid_msat == 3);
	snprintf(json, sizeof json,
		 "{\"result_type\":\"get_info\",\"result\":{\"alias\":\"w\",\"network\":\"regtest\",\"pubkey\":\"03ab\","
		 "\"block_height\":1000,\"methods\":[\"get_info\",\"pay_invoice\",\"bogus\"]}}");
	CHECK_OK(nwc_response_parse_json(&r, NULL, NWC_GET_INFO, json, strlen(json)));
	CHECK_STR(r.info.network, "regtest");
	CHECK(r.info.block_height == 1000 && r.info.methods == ((1u << NWC_GET_INFO) | (1u << NWC_PAY_INVOICE)));
	/* malformed */
	static const char *bad[] = {
		"",
		"[]",
		"{\"result_type\":\"get_balance\"}",
		"{\"result_type\":\"get_balance\",\"result\":{\"balance\":-1}}",
		"{\"result_type\":\"get_balance\",\"result\":{\"balance\":1.5}}",
		"{\"result_type\":\"get_balance\",\"result\":{\"balance\":9007199254740993}}",
		"{\"result_type\":\"get_balance\",\"result\":{}}",
		"{\"result_type\":\"get_balance\",\"result\":[]}",
		"{\"result_type\":7,\"result\":{\"balance\":1}}",
		"{\"result_type\":\"nope\",\"result\":{\"balance\":1}}",
		"{\"result_type\":\"get_balance\",\"error\":{\"message\":\"no code\"}}",
		"{\"result_type\":\"get_balance\",\"error\":\"string\"}",
		"{\"result_type\":\"pay_invoice\",\"result\":{\"preimage\":\"abc\"}}",
		"{\"result_type\":\"pay_invoice\",\"result\":{}}",
		"{\"result_type\":\"get_balance\",\"result\":{\"balance\":1}} x",
		"{\"result_type\":\"get_balance\\u0000\",\"result\":{\"balance\":1}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *why = NULL;
		enum nwc_method m = strstr(bad[i], "pay_invoice") ? NWC_PAY_INVOICE : NWC_GET_BALANCE;
		int rc = nwc_response_parse_json(&r, &why, m, bad[i], strlen(bad[i]));
		CHECKM(rc != 0 && why, "bad[%zu] accepted", i);
	}
	sim_free(&s);
}

static void test_notification(void)
{
	struct sim s;
	CHECK_OK(sim_init(&s));
	const char *json = "{\"notification_type\":\"payment_received\",\"notification\":{\"type\":\"incoming\","
			   "\"state\":\"settled\",\"payment_hash\":"
			   "\"0001020304050607080900010203040506070809000102030405060708090102\",\"amount\":5000}}";
	struct event *ev = sim_event(&s, NWC_KIND_NOTIFICATION, NWC_NIP44, json, NULL, NULL);
	struct nwc_notification n;
	const char *why = NULL;
	CHECKM(ev && nwc_notification_open(&n, &why, s.u, ev) == 0, "%s", why ? why : "");
	CHECK(n.type == NWC_PAYMENT_RECEIVED && n.tx.amount_msat == 5000 && n.tx.has_payment_hash);
	nwc_notification_clear(&n);
	event_free(ev);
	ev = sim_event(&s, NWC_KIND_NOTIFICATION_NIP04, NWC_NIP04, json, NULL, NULL);
	CHECKM(ev && nwc_notification_open(&n, &why, s.u, ev) == 0, "%s", why ? why : "");
	nwc_notification_clear(&n);
	event_free(ev);
	/* wrong scheme for the kind: refused */
	ev = sim_event(&s, NWC_KIND_NOTIFICATION, NWC_NIP04, json, NULL, NULL);
	CHECK(ev && nwc_notification_open(&n, &why, s.u, ev) != 0);
	event_free(ev);
	/* a response kind is not a notification */
	ev = sim_event(&s, NWC_KIND_RESPONSE, NWC_NIP44, json, NULL, NULL);
	CHECK(ev && nwc_notification_open(&n, &why, s.u, ev) == APP_EPROTO);
	event_free(ev);
	const char *bad = "{\"notification_type\":\"payment_received\",\"notification\":5}";
	CHECK(nwc_notification_parse_json(&n, &why, bad, strlen(bad)) == APP_EPARSE);
	sim_free(&s);
}

int main(void)
{
	RUN(test_uri_vectors);
	RUN(test_uri_own);
	RUN(test_request);
	RUN(test_info);
	RUN(test_response);
	RUN(test_notification);
	return test_summary();
}
