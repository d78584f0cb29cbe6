/*
 * relaymsg_test: relay messages (parser and builders, NIP-01/42/45), OK/CLOSED prefixes, relay
 * URLs and the dedupe LRU (relay-client/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "relay-client/lru.h"
#include "relay-client/relaymsg.h"
#include "relay-client/relayurl.h"
#include "tests/unit/test.h"

static struct keypair *g_kp;

/* signed_event_json: a signed kind-1 event as JSON (free with free()). */
static char *signed_event_json(const char *content, uint8_t id[32])
{
	struct event *ev = NULL;
	char *json = NULL;
	size_t len;
	if (event_new(&ev, 1, 1700000000, content, strlen(content)) != 0 ||
	    event_add_tagv(ev, "t", "test", NULL) != 0 || event_sign(ev, g_kp) != 0 ||
	    event_to_json(&json, &len, ev) != 0) {
		event_free(ev);
		return NULL;
	}
	if (id)
		memcpy(id, ev->id, 32);
	event_free(ev);
	return json;
}

static char *fmt(const char *f, const char *a, const char *b)
{
	size_t n = strlen(f) + (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, f, a ? a : "", b ? b : "");
	return s;
}

static int parse(struct relaymsg *m, enum relaymsg_reject *why, const char *s)
{
	const char *reason;
	return relaymsg_parse(m, why, &reason, s, strlen(s), 0);
}

static void test_parse_valid(void)
{
	struct relaymsg m;
	enum relaymsg_reject why;
	uint8_t id[32];
	char idhex[65];
	char *ev = signed_event_json("hello \"relay\" \n ✓", id);
	CHECK(ev != NULL);
	hex_encode(idhex, id, 32);

	char *msg = fmt("[\"EVENT\",\"sub1\",%s]", ev, NULL);
	CHECK_OK(parse(&m, &why, msg));
	CHECK(m.type == RELAYMSG_EVENT);
	CHECK_STR(m.subid, "sub1");
	CHECK(m.subid_len == 4);
	CHECK(m.event && memcmp(m.event->id, id, 32) == 0);
	CHECK(m.event && strcmp(m.event->content, "hello \"relay\" \n ✓") == 0);
	CHECK_OK(event_verify(m.event));
	relaymsg_clear(&m);
	free(msg);

	/* whitespace everywhere is fine */
	msg = fmt(" [ \"EVENT\" ,\t\"s\\u0031\" ,\n%s ] \n", ev, NULL);
	CHECK_OK(parse(&m, &why, msg));
	CHECK_STR(m.subid, "s1");
	relaymsg_clear(&m);
	free(msg);

	msg = fmt("[\"OK\",\"%s\",true,\"\"]", idhex, NULL);
	CHECK_OK(parse(&m, &why, msg));
	CHECK(m.type == RELAYMSG_OK && m.accepted == 1 && memcmp(m.id, id, 32) == 0);
	CHECK_STR(m.text, "");
	relaymsg_clear(&m);
	free(msg);

	msg = fmt("[\"OK\",\"%s\",false,\"invalid: signature is wrong\"]", idhex, NULL);
	CHECK_OK(parse(&m, &why, msg));
	CHECK(m.type == RELAYMSG_OK && m.accepted == 0);
	CHECK_STR(m.text, "invalid: signature is wrong");
	CHECK(relaymsg_prefix_of(m.text, m.text_len) == RELAYMSG_P_INVALID);
	relaymsg_clear(&m);
	free(msg);

	CHECK_OK(parse(&m, &why, "[\"EOSE\",\"abc\"]"));
	CHECK(m.type == RELAYMSG_EOSE);
	CHECK_STR(m.subid, "abc");
	relaymsg_clear(&m);

	CHECK_OK(parse(&m, &why, "[\"CLOSED\",\"abc\",\"auth-required: please\"]"));
	CHECK(m.type == RELAYMSG_CLOSED);
	CHECK_STR(m.subid, "abc");
	CHECK_STR(m.text, "auth-required: please");
	relaymsg_clear(&m);

	CHECK_OK(parse(&m, &why, "[\"NOTICE\",\"hi \\u00e9\\ud83d\\ude00\"]"));
	CHECK(m.type == RELAYMSG_NOTICE);
	CHECK_STR(m.text, "hi é😀");
	relaymsg_clear(&m);

	CHECK_OK(parse(&m, &why, "[\"AUTH\",\"challenge-123\"]"));
	CHECK(m.type == RELAYMSG_AUTH);
	CHECK_STR(m.text, "challenge-123");
	relaymsg_clear(&m);

	CHECK_OK(parse(&m, &why, "[\"COUNT\",\"c\",{\"count\":42}]"));
	CHECK(m.type == RELAYMSG_COUNT && m.count == 42 && m.approximate == 0);
	relaymsg_clear(&m);
	CHECK_OK(parse(&m, &why, "[\"COUNT\",\"c\",{\"approximate\":true,\"extra\":[1,{}],\"count\":7}]"));
	CHECK(m.type == RELAYMSG_COUNT && m.count == 7 && m.approximate == 1);
	relaymsg_clear(&m);

	/* a 64-character subscription id is the maximum */
	char sid[65];
	memset(sid, 'x', 64);
	sid[64] = 0;
	msg = fmt("[\"EOSE\",\"%s\"]", sid, NULL);
	CHECK_OK(parse(&m, &why, msg));
	CHECK(m.subid_len == 64);
	relaymsg_clear(&m);
	free(msg);

	relaymsg_clear(NULL);
	free(ev);
}

struct bad {
	const char *name;
	const char *msg; /* "%s" = a valid event, "%2" = not used */
	int rc;
	enum relaymsg_reject why;
};

static void test_parse_malformed(void)
{
	char *ev = signed_event_json("x", NULL);
	CHECK(ev != NULL);
	static const struct bad table[] = {
		{"empty input", "", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"plain text", "hello", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"truncated", "[\"EVENT\",\"s\",{\"id\":", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"unterminated array", "[\"EOSE\",\"s\"", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"trailing data", "[\"EOSE\",\"s\"] x", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"two messages", "[\"EOSE\",\"s\"][\"EOSE\",\"s\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"invalid utf-8", "[\"NOTICE\",\"\xff\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"raw control char", "[\"NOTICE\",\"a\x01\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"NUL escape", "[\"NOTICE\",\"a\\u0000\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"lone surrogate", "[\"NOTICE\",\"\\ud800\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"bad escape", "[\"NOTICE\",\"\\q\"]", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"single quotes", "['EOSE','s']", APP_EPARSE, RELAYMSG_R_NOTJSON},
		{"object", "{\"EOSE\":\"s\"}", APP_EPARSE, RELAYMSG_R_NOTARRAY},
		{"string", "\"EOSE\"", APP_EPARSE, RELAYMSG_R_NOTARRAY},
		{"number", "42", APP_EPARSE, RELAYMSG_R_NOTARRAY},
		{"empty array", "[]", APP_EPARSE, RELAYMSG_R_NOTARRAY},
		{"type number", "[1,\"s\"]", APP_EPARSE, RELAYMSG_R_TYPE},
		{"type null", "[null]", APP_EPARSE, RELAYMSG_R_TYPE},
		{"type array", "[[\"EOSE\"],\"s\"]", APP_EPARSE, RELAYMSG_R_TYPE},
		{"unknown type", "[\"FOO\",\"s\"]", APP_EUNSUPPORTED, RELAYMSG_R_UNKNOWN},
		{"lowercase type", "[\"eose\",\"s\"]", APP_EUNSUPPORTED, RELAYMSG_R_UNKNOWN},
		{"client message REQ", "[\"REQ\",\"s\",{}]", APP_EUNSUPPORTED, RELAYMSG_R_UNKNOWN},
		{"escaped type", "[\"E\\u004fSE\",\"s\"]", APP_EUNSUPPORTED, RELAYMSG_R_UNKNOWN},
		{"EVENT arity 1", "[\"EVENT\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"EVENT arity 2", "[\"EVENT\",\"s\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"EVENT arity 4", "[\"EVENT\",\"s\",%s,1]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"OK arity 3", "[\"OK\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",true]", APP_EPARSE,
		 RELAYMSG_R_ARITY},
		{"OK arity 5",
		 "[\"OK\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",true,\"\",\"\"]", APP_EPARSE,
		 RELAYMSG_R_ARITY},
		{"EOSE arity 1", "[\"EOSE\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"EOSE arity 3", "[\"EOSE\",\"s\",\"t\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"CLOSED arity 2", "[\"CLOSED\",\"s\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"NOTICE arity 1", "[\"NOTICE\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"NOTICE arity 3", "[\"NOTICE\",\"a\",\"b\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"AUTH arity 1", "[\"AUTH\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"COUNT arity 2", "[\"COUNT\",\"s\"]", APP_EPARSE, RELAYMSG_R_ARITY},
		{"OK id number", "[\"OK\",1,true,\"\"]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"OK id short", "[\"OK\",\"abcd\",true,\"\"]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"OK id uppercase",
		 "[\"OK\",\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",true,\"\"]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"OK id not hex",
		 "[\"OK\",\"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\",true,\"\"]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"OK flag string",
		 "[\"OK\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"true\",\"\"]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"OK flag number",
		 "[\"OK\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",1,\"\"]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"OK message null",
		 "[\"OK\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",true,null]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"EVENT subid number", "[\"EVENT\",1,%s]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"EVENT event not object", "[\"EVENT\",\"s\",\"ev\"]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"EVENT event array", "[\"EVENT\",\"s\",[]]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"EOSE subid object", "[\"EOSE\",{}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"CLOSED message number", "[\"CLOSED\",\"s\",5]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"NOTICE number", "[\"NOTICE\",5]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"AUTH object", "[\"AUTH\",{}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT not object", "[\"COUNT\",\"s\",3]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT without count", "[\"COUNT\",\"s\",{}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT negative", "[\"COUNT\",\"s\",{\"count\":-1}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT fraction", "[\"COUNT\",\"s\",{\"count\":1.5}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT duplicate count", "[\"COUNT\",\"s\",{\"count\":1,\"count\":2}]", APP_EPARSE, RELAYMSG_R_FIELD},
		{"COUNT approximate string", "[\"COUNT\",\"s\",{\"count\":1,\"approximate\":\"y\"}]", APP_EPARSE,
		 RELAYMSG_R_FIELD},
		{"EOSE empty subid", "[\"EOSE\",\"\"]", APP_EPARSE, RELAYMSG_R_SUBID},
		{"EOSE 65-char subid", "[\"EOSE\",\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]", APP_EPARSE,
		 RELAYMSG_R_SUBID},
		{"EVENT empty subid", "[\"EVENT\",\"\",%s]", APP_EPARSE, RELAYMSG_R_SUBID},
		{"EVENT event missing sig", "[\"EVENT\",\"s\",{\"id\":\"00\"}]", APP_EPARSE, RELAYMSG_R_EVENT},
		{"EVENT event bad kind",
		 "[\"EVENT\",\"s\",{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"kind\":-1}]",
		 APP_EPARSE, RELAYMSG_R_EVENT},
		{"deep nesting", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", APP_EPARSE,
		 RELAYMSG_R_NOTJSON},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		char *msg = strstr(table[i].msg, "%s") ? fmt(table[i].msg, ev, NULL) : strdup(table[i].msg);
		struct relaymsg m;
		enum relaymsg_reject why = RELAYMSG_R_NONE;
		const char *reason = NULL;
		int r = relaymsg_parse(&m, &why, &reason, msg, strlen(msg), 0);
		CHECKM(r == table[i].rc && why == table[i].why, "%s: rc %d (want %d) why %s (want %s) reason %s",
		       table[i].name, r, table[i].rc, relaymsg_reject_name(why), relaymsg_reject_name(table[i].why),
		       reason ? reason : "(null)");
		CHECKM(reason && reason[0], "%s: no reason", table[i].name);
		CHECKM(m.type == RELAYMSG_NONE && m.event == NULL && m.text == NULL, "%s: output not cleared",
		       table[i].name);
		free(msg);
	}
	free(ev);
}

static void test_parse_caps(void)
{
	struct relaymsg m;
	enum relaymsg_reject why;
	const char *reason;
	const char *small = "[\"NOTICE\",\"0123456789\"]";
	/* the size cap is checked first */
	CHECK_ERR(relaymsg_parse(&m, &why, &reason, small, strlen(small), 10), APP_ETOOBIG);
	CHECK(why == RELAYMSG_R_TOOBIG);
	CHECK_OK(relaymsg_parse(&m, &why, &reason, small, strlen(small), strlen(small)));
	relaymsg_clear(&m);
	/* garbage over the cap is refused without being read */
	size_t big = RELAYMSG_MAX_LEN + 1;
	char *buf = malloc(big);
	CHECK(buf != NULL);
	memset(buf, '[', big);
	CHECK_ERR(relaymsg_parse(&m, &why, &reason, buf, big, 0), APP_ETOOBIG);
	CHECK(why == RELAYMSG_R_TOOBIG);
	/* a NOTICE just under the cap parses; a cap larger than RELAYMSG_MAX_LEN is clamped */
	size_t n = RELAYMSG_MAX_LEN;
	memcpy(buf, "[\"NOTICE\",\"", 11);
	memset(buf + 11, 'a', n - 13);
	memcpy(buf + n - 2, "\"]", 2);
	CHECK_OK(relaymsg_parse(&m, &why, &reason, buf, n, SIZE_MAX));
	CHECK(m.text_len == n - 13);
	relaymsg_clear(&m);
	/* an event over EVENT_MAX_JSON inside a message under the cap */
	size_t off = (size_t)snprintf(buf, n, "[\"EVENT\",\"s\",{\"content\":\"");
	memset(buf + off, 'a', EVENT_MAX_JSON);
	memcpy(buf + off + EVENT_MAX_JSON, "\"}]", 3);
	CHECK(off + EVENT_MAX_JSON + 3 <= RELAYMSG_MAX_LEN);
	CHECK_ERR(relaymsg_parse(&m, &why, &reason, buf, off + EVENT_MAX_JSON + 3, 0), APP_ETOOBIG);
	CHECK(why == RELAYMSG_R_EVENT);
	free(buf);
	/* AUTH challenge cap */
	char chal[RELAYMSG_MAX_CHALLENGE + 32];
	memcpy(chal, "[\"AUTH\",\"", 9);
	memset(chal + 9, 'c', RELAYMSG_MAX_CHALLENGE + 1);
	memcpy(chal + 9 + RELAYMSG_MAX_CHALLENGE + 1, "\"]", 3);
	CHECK_ERR(parse(&m, &why, chal), APP_ETOOBIG);
	CHECK(why == RELAYMSG_R_TEXT);
	memcpy(chal + 9 + RELAYMSG_MAX_CHALLENGE, "\"]", 3);
	CHECK_OK(parse(&m, &why, chal));
	CHECK(m.text_len == RELAYMSG_MAX_CHALLENGE);
	relaymsg_clear(&m);
	/* an escaped 64-character subid (long raw text) is accepted; 65 is not */
	char esc[64 * 6 + 32];
	size_t k = 0;
	k += (size_t)snprintf(esc, sizeof esc, "[\"EOSE\",\"");
	for (int i = 0; i < 64; i++)
		k += (size_t)snprintf(esc + k, sizeof esc - k, "\\u0061");
	snprintf(esc + k, sizeof esc - k, "\"]");
	CHECK_OK(parse(&m, &why, esc));
	CHECK(m.subid_len == 64 && m.subid[0] == 'a' && m.subid[63] == 'a');
	relaymsg_clear(&m);
	char esc2[65 * 6 + 32];
	k = (size_t)snprintf(esc2, sizeof esc2, "[\"EOSE\",\"");
	for (int i = 0; i < 65; i++)
		k += (size_t)snprintf(esc2 + k, sizeof esc2 - k, "\\u0061");
	snprintf(esc2 + k, sizeof esc2 - k, "\"]");
	CHECK_ERR(parse(&m, &why, esc2), APP_EPARSE);
	CHECK(why == RELAYMSG_R_SUBID);
}

static void test_prefix(void)
{
	static const struct {
		const char *text;
		enum relaymsg_prefix p;
	} t[] = {
		{"", RELAYMSG_P_NONE},
		{"no prefix here", RELAYMSG_P_NONE},
		{"duplicate: already have it", RELAYMSG_P_DUPLICATE},
		{"pow: difficulty 25>=24", RELAYMSG_P_POW},
		{"blocked: you are banned", RELAYMSG_P_BLOCKED},
		{"rate-limited: slow down", RELAYMSG_P_RATE_LIMITED},
		{"invalid: bad sig", RELAYMSG_P_INVALID},
		{"restricted: not allowed", RELAYMSG_P_RESTRICTED},
		{"auth-required: do AUTH", RELAYMSG_P_AUTH_REQUIRED},
		{"mute: no one listening", RELAYMSG_P_MUTE},
		{"error: internal", RELAYMSG_P_ERROR},
		{"unsupported: filter", RELAYMSG_P_UNSUPPORTED},
		{"payment-required: pay", RELAYMSG_P_OTHER},
		{"Invalid: capital", RELAYMSG_P_NONE},
		{"invalid", RELAYMSG_P_NONE},
		{":x", RELAYMSG_P_NONE},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		CHECKM(relaymsg_prefix_of(t[i].text, strlen(t[i].text)) == t[i].p, "prefix of '%s'", t[i].text);
	CHECK_STR(relaymsg_prefix_name(RELAYMSG_P_RATE_LIMITED), "rate-limited");
	CHECK_STR(relaymsg_prefix_name(RELAYMSG_P_AUTH_REQUIRED), "auth-required");
	CHECK_STR(relaymsg_prefix_name(RELAYMSG_P_NONE), "");
	CHECK_STR(relaymsg_type_name(RELAYMSG_CLOSED), "CLOSED");
	CHECK_STR(relaymsg_reject_name(RELAYMSG_R_ARITY), "arity");
}

static void test_builders(void)
{
	struct event *ev = NULL;
	char *out = NULL;
	size_t len;
	CHECK_OK(event_new(&ev, 1, 1700000000, "hi", 2));
	CHECK_OK(event_sign(ev, g_kp));
	CHECK_OK(relaymsg_event(&out, &len, ev));
	char *evj = NULL;
	size_t evl;
	CHECK_OK(event_to_json(&evj, &evl, ev));
	char *want = fmt("[\"EVENT\",%s]", evj, NULL);
	CHECK_STR(out, want);
	CHECK(len == strlen(want));
	free(out);
	free(want);
	CHECK_OK(relaymsg_auth(&out, &len, ev));
	want = fmt("[\"AUTH\",%s]", evj, NULL);
	CHECK_STR(out, want);
	free(out);
	free(want);
	free(evj);

	struct filter *f1 = NULL, *f2 = NULL;
	const char *j1 = "{\"kinds\":[1,7],\"since\":100,\"limit\":5}", *j2 = "{\"#t\":[\"a\"]}";
	CHECK_OK(filter_parse(&f1, NULL, j1, strlen(j1)));
	CHECK_OK(filter_parse(&f2, NULL, j2, strlen(j2)));
	const struct filter *fs[2] = {f1, f2};
	CHECK_OK(relaymsg_req(&out, &len, "s1", fs, 2, 0));
	CHECK_STR(out, "[\"REQ\",\"s1\",{\"kinds\":[1,7],\"since\":100,\"limit\":5},{\"#t\":[\"a\"]}]");
	free(out);
	/* since_floor raises since where it is lower or absent, never lowers it */
	CHECK_OK(relaymsg_req(&out, &len, "s1", fs, 2, 50));
	CHECK_STR(out, "[\"REQ\",\"s1\",{\"kinds\":[1,7],\"since\":100,\"limit\":5},{\"#t\":[\"a\"],\"since\":50}]");
	free(out);
	CHECK_OK(relaymsg_req(&out, &len, "s1", fs, 2, 200));
	CHECK_STR(out, "[\"REQ\",\"s1\",{\"kinds\":[1,7],\"since\":200,\"limit\":5},{\"#t\":[\"a\"],\"since\":200}]");
	free(out);
	CHECK(f1->since == 100 && !f2->has_since); /* the filters are untouched */
	CHECK_OK(relaymsg_count(&out, &len, "c\"1", fs, 1));
	CHECK_STR(out, "[\"COUNT\",\"c\\\"1\",{\"kinds\":[1,7],\"since\":100,\"limit\":5}]");
	free(out);
	CHECK_OK(relaymsg_close(&out, &len, "s1"));
	CHECK_STR(out, "[\"CLOSE\",\"s1\"]");
	free(out);

	char sid[66];
	memset(sid, 'x', 65);
	sid[65] = 0;
	CHECK_ERR(relaymsg_close(&out, &len, sid), APP_EINVAL);
	CHECK(out == NULL);
	CHECK_ERR(relaymsg_close(&out, &len, ""), APP_EINVAL);
	CHECK_ERR(relaymsg_req(&out, &len, "s", fs, 0, 0), APP_EINVAL);
	CHECK_ERR(relaymsg_req(&out, &len, "s", fs, RELAYMSG_MAX_FILTERS + 1, 0), APP_EINVAL);
	sid[64] = 0;
	CHECK_OK(relaymsg_req(&out, &len, sid, fs, 1, 0));
	free(out);

	/* what the builders write, the parser of the other side reads back: a REQ is not a relay
	 * message, but an EVENT built for a relay wraps the same event text the parser accepts */
	struct relaymsg m;
	enum relaymsg_reject why;
	CHECK_OK(relaymsg_event(&out, &len, ev));
	char *relay_side = fmt("[\"EVENT\",\"s1\",%s", out + 9, NULL);
	CHECK_OK(parse(&m, &why, relay_side));
	CHECK(m.event && memcmp(m.event->id, ev->id, 32) == 0);
	relaymsg_clear(&m);
	free(relay_side);
	free(out);
	filter_free(f1);
	filter_free(f2);
	event_free(ev);
}

static void test_url(void)
{
	struct relayurl u;
	const char *why;
	CHECK_OK(relayurl_parse(&u, &why, "wss://Relay.Example.com"));
	CHECK(u.tls == 1 && u.port == 443);
	CHECK_STR(u.host, "relay.example.com");
	CHECK_STR(u.path, "/");
	CHECK_STR(u.hostport, "relay.example.com");
	CHECK_OK(relayurl_parse(&u, &why, "ws://127.0.0.1:7777/nostr?x=1"));
	CHECK(u.tls == 0 && u.port == 7777);
	CHECK_STR(u.host, "127.0.0.1");
	CHECK_STR(u.path, "/nostr?x=1");
	CHECK_STR(u.hostport, "127.0.0.1:7777");
	CHECK_OK(relayurl_parse(&u, &why, "WSS://[::1]:8443"));
	CHECK_STR(u.host, "::1");
	CHECK_STR(u.hostport, "[::1]:8443");
	CHECK_OK(relayurl_parse(&u, &why, "ws://h?q"));
	CHECK_STR(u.path, "/?q");
	CHECK(u.port == 80);
	static const char *const bad[] = {
		"http://relay.example.com", "wss://", "wss://:443", "wss://a b", "wss://user@host", "wss://h:0",
		"wss://h:65536", "wss://h:x", "wss://h#frag", "wss://[::1", "wss://h\x01", "relay.example.com",
		"wss://h_x", "wss://[zz]:1", NULL,
	};
	for (size_t i = 0; bad[i]; i++)
		CHECKM(relayurl_parse(&u, &why, bad[i]) == APP_EINVAL, "url '%s' accepted", bad[i]);
	CHECK(relayurl_parse(&u, NULL, NULL) == APP_EINVAL);
	char longurl[RELAYURL_MAX + 16];
	memcpy(longurl, "wss://", 6);
	memset(longurl + 6, 'a', sizeof longurl - 7);
	longurl[sizeof longurl - 1] = 0;
	CHECK(relayurl_parse(&u, &why, longurl) == APP_EINVAL);

	char host[RELAYURL_HOST_MAX + 1];
	uint16_t port;
	CHECK_OK(relayurl_parse_hostport(host, sizeof host, &port, "127.0.0.1:4000"));
	CHECK_STR(host, "127.0.0.1");
	CHECK(port == 4000);
	CHECK_OK(relayurl_parse_hostport(host, sizeof host, &port, "[::1]:5"));
	CHECK_STR(host, "::1");
	CHECK(relayurl_parse_hostport(host, sizeof host, &port, "127.0.0.1") == APP_EINVAL);
	CHECK(relayurl_parse_hostport(host, sizeof host, &port, "h:") == APP_EINVAL);
	CHECK(relayurl_parse_hostport(host, 4, &port, "longhost:1") == APP_EINVAL);
}

static void test_lru(void)
{
	struct lru *l = NULL;
	CHECK_ERR(lru_new(&l, 0), APP_ERANGE);
	CHECK_ERR(lru_new(&l, (size_t)LRU_MAX_ENTRIES + 1), APP_ERANGE);
	CHECK_OK(lru_new(&l, 3));
	CHECK(lru_capacity(l) == 3 && lru_size(l) == 0);
	uint8_t id[5][32];
	for (int i = 0; i < 5; i++) {
		memset(id[i], 0, 32);
		id[i][0] = (uint8_t)i;
		id[i][31] = 0xaa;
	}
	CHECK(lru_insert(l, id[0], 1) == 0);
	CHECK(lru_insert(l, id[1], 1) == 0);
	CHECK(lru_insert(l, id[2], 1) == 0);
	CHECK(lru_contains(l, id[0], 1) == 1);
	CHECK(lru_contains(l, id[0], 2) == 0); /* another subscription (tag) */
	CHECK(lru_size(l) == 3);
	/* id[1] is now the least recently used: inserting id[3] evicts it */
	CHECK(lru_insert(l, id[3], 1) == 1);
	CHECK(lru_contains(l, id[1], 1) == 0);
	CHECK(lru_contains(l, id[0], 1) == 1);
	CHECK(lru_contains(l, id[2], 1) == 1);
	CHECK(lru_contains(l, id[3], 1) == 1);
	/* re-inserting refreshes without evicting */
	CHECK(lru_insert(l, id[0], 1) == 0);
	CHECK(lru_size(l) == 3);
	CHECK(lru_insert(l, id[4], 2) == 1); /* evicts id[2] (LRU after the touches above) */
	CHECK(lru_contains(l, id[2], 1) == 0);
	CHECK(lru_contains(l, id[4], 2) == 1);
	lru_free(l);
	lru_free(NULL);

	/* many keys through a small set: size stays at the cap, recent keys stay */
	CHECK_OK(lru_new(&l, 1000));
	uint8_t k[32];
	size_t evictions = 0;
	for (uint32_t i = 0; i < 100000; i++) {
		memset(k, 0, 32);
		memcpy(k, &i, sizeof i);
		k[20] = (uint8_t)(i * 7);
		evictions += (size_t)lru_insert(l, k, i % 3);
	}
	CHECK(lru_size(l) == 1000);
	CHECK(evictions == 99000);
	int recent = 1, old = 0;
	for (uint32_t i = 99000; i < 100000; i++) {
		memset(k, 0, 32);
		memcpy(k, &i, sizeof i);
		k[20] = (uint8_t)(i * 7);
		recent &= lru_contains(l, k, i % 3);
	}
	for (uint32_t i = 0; i < 1000; i++) {
		memset(k, 0, 32);
		memcpy(k, &i, sizeof i);
		k[20] = (uint8_t)(i * 7);
		old |= lru_contains(l, k, i % 3);
	}
	CHECK(recent == 1 && old == 0);
	lru_free(l);
}

int main(void)
{
	if (keys_generate(&g_kp) != 0) {
		fprintf(stderr, "keys_generate failed\n");
		return 1;
	}
	RUN(test_parse_valid);
	RUN(test_parse_malformed);
	RUN(test_parse_caps);
	RUN(test_prefix);
	RUN(test_builders);
	RUN(test_url);
	RUN(test_lru);
	keys_free(g_kp);
	return test_summary();
}
