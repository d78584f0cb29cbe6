/*
 * event_test: NIP-01 events (the 60 real valid events, the must-reject
 * events, a table of malformed events each refused with its own reason,
 * JSON.stringify-compatible serialization), filters, NIP-19 and bech32.
 */
#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/bech32.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nip19.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

static void test_valid_vectors(void)
{
	cJSON *root = tu_load_json("tests/vectors/nostr/nip01-events.valid.json");
	CHECK(root != NULL);
	if (!root)
		return;
	const cJSON *e;
	int n = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "events"))
	{
		char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "event"));
		struct event *ev = NULL;
		const char *why = NULL;
		int r = event_parse(&ev, &why, text, strlen(text));
		CHECKM(r == 0, "valid event %d: parse: %s", n, why);
		if (r == 0) {
			CHECKM(event_verify(ev) == 0, "valid event %d does not verify", n);
			/* Re-serializing the parsed event gives an event with the same id. */
			char *out;
			size_t len;
			CHECK_OK(event_to_json(&out, &len, ev));
			struct event *ev2 = NULL;
			CHECK_OK(event_parse(&ev2, NULL, out, len));
			CHECK(ev2 && memcmp(ev2->id, ev->id, 32) == 0 && event_verify(ev2) == 0);
			event_free(ev2);
			free(out);
		}
		event_free(ev);
		free(text);
		n++;
	}
	CHECKM(n == 60, "%d valid events", n);
	cJSON_Delete(root);
}

static void test_invalid_vectors(void)
{
	cJSON *root = tu_load_json("tests/vectors/nostr/nip01-events.invalid.json");
	CHECK(root != NULL);
	if (!root)
		return;
	const cJSON *e;
	int n = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "events"))
	{
		char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "event"));
		struct event *ev = NULL;
		int r = event_parse(&ev, NULL, text, strlen(text));
		if (r == 0)
			r = event_verify(ev);
		CHECKM(r != 0, "invalid event %d accepted: %s", n,
		       cJSON_GetObjectItemCaseSensitive(e, "reason")->valuestring);
		event_free(ev);
		free(text);
		n++;
	}
	CHECK(n == 7);
	cJSON_Delete(root);
}

#define PK "a48380f4cfcc1ad5378294fcac36439770f9c878dd880ffa94bb74ea54a6f243"
#define ID "000006d8c378af1779d2feebc7603a125d99eca0ccf1085959b307f64e5dd358"
#define SIG "284622fc0a3f4f1303455d5175f7ba962a3300d136085b9566801bc2e0699de0c7e31e44c81fb40ad9049173742e904713c3594a1da0fc5d2382a25c11aba977"
#define EV(id, pk, ca, kind, tags, content, sig)                                                        \
	"{\"id\":" id ",\"pubkey\":" pk ",\"created_at\":" ca ",\"kind\":" kind ",\"tags\":" tags \
	",\"content\":" content ",\"sig\":" sig "}"
#define OKID "\"" ID "\""
#define OKPK "\"" PK "\""
#define OKSIG "\"" SIG "\""

struct malformed {
	const char *json;
	int code;
	const char *reason; /* substring of the reason */
};

static const struct malformed malformed_table[] = {
	{"", APP_EPARSE, "not a JSON object"},
	{"not json", APP_EPARSE, "not a JSON object"},
	{"[1,2,3]", APP_EPARSE, "not a JSON object"},
	{"{\"id\":1} trailing", APP_EPARSE, "id: not 64 lowercase hex"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"x\"", OKSIG) " x", APP_EPARSE, "not valid JSON"},
	{"{\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "id: missing"},
	{"{\"id\":" OKID ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "pubkey: missing"},
	{"{\"id\":" OKID ",\"pubkey\":" OKPK ",\"kind\":1,\"tags\":[],\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "created_at: missing"},
	{"{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"tags\":[],\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "kind: missing"},
	{"{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "tags: missing"},
	{"{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"tags\":[],\"sig\":" OKSIG "}", APP_EPARSE, "content: missing"},
	{"{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\"}", APP_EPARSE, "sig: missing"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"x\"", OKSIG) "", 0, NULL},
	{"{\"id\":" OKID ",\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"tags\":[],\"content\":\"\",\"sig\":" OKSIG "}", APP_EPARSE, "duplicate field"},
	{EV("\"000006D8C378AF1779D2FEEBC7603A125D99ECA0CCF1085959B307F64E5DD358\"", OKPK, "1", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "id: not 64 lowercase hex"},
	{EV("\"00\"", OKPK, "1", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "id: not 64 lowercase hex"},
	{EV("123", OKPK, "1", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "id: not 64 lowercase hex"},
	{EV(OKID, "\"" PK "00\"", "1", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "pubkey: not 64 lowercase hex"},
	{EV(OKID, "\"zz8380f4cfcc1ad5378294fcac36439770f9c878dd880ffa94bb74ea54a6f243\"", "1", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "pubkey: not 64 lowercase hex"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"x\"", "\"abcd\""), APP_EPARSE, "sig: not 128 lowercase hex"},
	{EV(OKID, OKPK, "1", "-1", "[]", "\"x\"", OKSIG), APP_ERANGE, "kind: not an integer in 0..65535"},
	{EV(OKID, OKPK, "1", "65536", "[]", "\"x\"", OKSIG), APP_ERANGE, "kind: not an integer in 0..65535"},
	{EV(OKID, OKPK, "1", "1.5", "[]", "\"x\"", OKSIG), APP_EPARSE, "kind: not an integer in 0..65535"},
	{EV(OKID, OKPK, "1", "\"1\"", "[]", "\"x\"", OKSIG), APP_EPARSE, "kind: not an integer in 0..65535"},
	{EV(OKID, OKPK, "-5", "1", "[]", "\"x\"", OKSIG), APP_ERANGE, "created_at: not a non-negative integer"},
	{EV(OKID, OKPK, "1.25", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "created_at: not a non-negative integer"},
	{EV(OKID, OKPK, "1e300", "1", "[]", "\"x\"", OKSIG), APP_ERANGE, "created_at: not a non-negative integer"},
	{EV(OKID, OKPK, "null", "1", "[]", "\"x\"", OKSIG), APP_EPARSE, "created_at: not a non-negative integer"},
	{EV(OKID, OKPK, "1", "1", "{}", "\"x\"", OKSIG), APP_EPARSE, "tags: not an array"},
	{EV(OKID, OKPK, "1", "1", "[\"p\"]", "\"x\"", OKSIG), APP_EPARSE, "tags: a tag is not an array"},
	{EV(OKID, OKPK, "1", "1", "[[]]", "\"x\"", OKSIG), APP_EPARSE, "tags: a tag is empty"},
	{EV(OKID, OKPK, "1", "1", "[[\"p\",1]]", "\"x\"", OKSIG), APP_EPARSE, "tags: a tag element is not a string"},
	{EV(OKID, OKPK, "1", "1", "[[\"p\",null]]", "\"x\"", OKSIG), APP_EPARSE, "tags: a tag element is not a string"},
	{EV(OKID, OKPK, "1", "1", "[]", "5", OKSIG), APP_EPARSE, "content: not a string"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"a\\u0000b\"", OKSIG), APP_EPARSE, "decodes to NUL"},
	{EV(OKID, OKPK, "1", "1", "[[\"p\",\"\\u0000\"]]", "\"x\"", OKSIG), APP_EPARSE, "decodes to NUL"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"raw\x01control\"", OKSIG), APP_EPARSE, "content: raw control character"},
	{EV(OKID, OKPK, "1", "1", "[[[\"x\"]]]", "\"x\"", OKSIG), APP_EPARSE, "tags: a tag element is not a string"},
	{"{\"extra\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", APP_ETOOBIG, "not valid JSON"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"bad \\x escape\"", OKSIG), APP_EPARSE, "content: bad escape"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"lone \\ud800 surrogate\"", OKSIG), APP_EPARSE, "content: lone surrogate"},
	{EV(OKID, OKPK, "1", "1", "[]", "\"bad utf8 \xc3\x28\"", OKSIG), APP_EPARSE, "content: invalid UTF-8"},
	{"{\"content\":\"unterminated", APP_EPARSE, "content: unterminated string"},
	{EV(OKID, OKPK, "1e3", "1", "[]", "\"x\"", OKSIG), 0, NULL},
};

static void test_malformed_table(void)
{
	for (size_t i = 0; i < sizeof malformed_table / sizeof malformed_table[0]; i++) {
		const struct malformed *m = &malformed_table[i];
		struct event *ev = NULL;
		const char *why = NULL;
		int r = event_parse(&ev, &why, m->json, strlen(m->json));
		CHECKM(r == m->code, "case %zu: got %d (%s), expected %d", i, r, why, m->code);
		if (m->reason)
			CHECKM(why && strstr(why, m->reason), "case %zu: reason \"%s\", expected \"%s\"", i, why, m->reason);
		CHECK((r == 0) == (ev != NULL));
		event_free(ev);
	}
	/* Over the size cap: refused before parsing. */
	size_t big = EVENT_MAX_JSON + 1;
	char *s = malloc(big);
	memset(s, ' ', big);
	struct event *ev = NULL;
	const char *why;
	CHECK_ERR(event_parse(&ev, &why, s, big), APP_ETOOBIG);
	free(s);
	/* Too many tags */
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"content\":\"\",\"sig\":" OKSIG ",\"tags\":[", 0);
	w.len = 0;
	const char *head = "{\"id\":" OKID ",\"pubkey\":" OKPK ",\"created_at\":1,\"kind\":1,\"content\":\"\",\"sig\":" OKSIG ",\"tags\":[";
	jw_raw(&w, head, strlen(head));
	for (int i = 0; i <= EVENT_MAX_TAGS; i++)
		jw_raw(&w, i ? ",[\"t\"]" : "[\"t\"]", i ? 6 : 5);
	jw_raw(&w, "]}", 2);
	char *txt;
	size_t len;
	CHECK_OK(jw_finish(&w, &txt, &len));
	CHECK_ERR(event_parse(&ev, &why, txt, len), APP_ETOOBIG);
	CHECK(strstr(why, "too many tags") != NULL);
	free(txt);
}

/* The serialization the id commits to, byte for byte as JSON.stringify. */
static void test_serialization(void)
{
	struct event *ev;
	const char content[] = "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/<>é✓🍕\xe2\x80\xa8";
	CHECK_OK(event_new(&ev, 1, 1700000000, content, sizeof content - 1));
	CHECK_OK(event_add_tagv(ev, "e", "x\ny", NULL));
	CHECK_OK(event_add_tagv(ev, "empty", "", NULL));
	memset(ev->pubkey, 0xab, 32);
	char *s;
	size_t len;
	CHECK_OK(event_serialize_commitment(&s, &len, ev));
	const char *want = "[0,\"abababababababababababababababababababababababababababababababab\",1700000000,1,"
			   "[[\"e\",\"x\\ny\"],[\"empty\",\"\"]],"
			   "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/<>é✓🍕\xe2\x80\xa8\"]";
	CHECK_STR(s, want);
	CHECK(len == strlen(want));
	free(s);
	/* NUL in content is refused when building. */
	CHECK_ERR(event_set_content(ev, "a\0b", 3), APP_EPARSE);
	CHECK_ERR(event_new(&(struct event *){0}, 65536, 0, NULL, 0), APP_ERANGE);
	CHECK_ERR(event_add_tag(ev, 0, NULL), APP_EINVAL);
	event_free(ev);
}

static void test_sign_verify(void)
{
	struct keypair *kp;
	CHECK_OK(keys_generate(&kp));
	struct event *ev;
	CHECK_OK(event_new(&ev, 5720, 1700000001, "job", 3));
	CHECK_OK(event_add_tagv(ev, "p", "00", NULL));
	CHECK_OK(event_sign(ev, kp));
	CHECK_OK(event_verify(ev));
	char *json;
	size_t len;
	CHECK_OK(event_to_json(&json, &len, ev));
	struct event *p;
	CHECK_OK(event_parse(&p, NULL, json, len));
	CHECK_OK(event_verify(p));
	/* Any change is caught: id first, then signature. */
	p->created_at++;
	CHECK_ERR(event_verify(p), APP_EBADID);
	p->created_at--;
	p->sig[10] ^= 1;
	CHECK_ERR(event_verify(p), APP_EBADSIG);
	p->sig[10] ^= 1;
	p->tags[0].v[1][0] = '1';
	CHECK_ERR(event_verify(p), APP_EBADID);
	event_free(p);
	/* pubkey that is not a curve point, with a consistent id */
	memset(ev->pubkey, 0xff, 32);
	CHECK_OK(event_compute_id(ev, ev->id));
	CHECK_ERR(event_verify(ev), APP_EBADKEY);
	free(json);
	event_free(ev);
	keys_free(kp);
}

static void test_tags_expiration(void)
{
	struct event *ev;
	CHECK_OK(event_new(&ev, 13793, 1, NULL, 0));
	CHECK_OK(event_add_tagv(ev, "x", "aa", "PCR0", NULL));
	CHECK_OK(event_add_tagv(ev, "x", "bb", "PCR1", NULL));
	CHECK_OK(event_add_tagv(ev, "expiration", "1700000000", NULL));
	size_t pos = 0, n = 0;
	while (event_tag_find(ev, &pos, "x", 3))
		n++;
	CHECK(n == 2);
	CHECK_STR(event_tag_value(ev, "x"), "aa");
	CHECK(event_tag_value(ev, "nope") == NULL);
	uint64_t exp;
	CHECK_OK(event_expiration(ev, &exp));
	CHECK(exp == 1700000000);
	event_free(ev);
	CHECK_OK(event_new(&ev, 1, 1, NULL, 0));
	CHECK_ERR(event_expiration(ev, &exp), APP_ENOTFOUND);
	CHECK_OK(event_add_tagv(ev, "expiration", "12a", NULL));
	CHECK_ERR(event_expiration(ev, &exp), APP_EPARSE);
	event_free(ev);
	CHECK(event_kind_is_replaceable(13793) && event_kind_is_replaceable(0) && !event_kind_is_replaceable(1));
	CHECK(event_kind_is_ephemeral(23194) && !event_kind_is_ephemeral(5720));
	CHECK(event_kind_is_addressable(31990));
}

static void test_filters(void)
{
	struct keypair *kp;
	CHECK_OK(keys_generate(&kp));
	struct event *ev;
	CHECK_OK(event_new(&ev, 5720, 1000, "x", 1));
	CHECK_OK(event_add_tagv(ev, "p", "0000000000000000000000000000000000000000000000000000000000000001", NULL));
	CHECK_OK(event_add_tagv(ev, "t", "ml", NULL));
	CHECK_OK(event_sign(ev, kp));
	char idhex[65], pkhex[65], buf[1024];
	hex_encode(idhex, ev->id, 32);
	hex_encode(pkhex, ev->pubkey, 32);
	struct {
		const char *json;
		int match;
	} cases[] = {
		{"{}", 1},
		{"{\"kinds\":[5720]}", 1},
		{"{\"kinds\":[1,2]}", 0},
		{"{\"since\":1000,\"until\":1000}", 1},
		{"{\"since\":1001}", 0},
		{"{\"until\":999}", 0},
		{"{\"#t\":[\"ml\",\"x\"]}", 1},
		{"{\"#t\":[\"x\"]}", 0},
		{"{\"#p\":[\"0000000000000000000000000000000000000000000000000000000000000001\"]}", 1},
		{"{\"#e\":[\"0000000000000000000000000000000000000000000000000000000000000001\"]}", 0},
		{"{\"kinds\":[5720],\"#t\":[\"ml\"],\"limit\":5}", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct filter *f;
		const char *why = "";
		CHECK_OK(filter_parse(&f, &why, cases[i].json, strlen(cases[i].json)));
		CHECKM(f && filter_match(f, ev) == cases[i].match, "filter %s", cases[i].json);
		filter_free(f);
	}
	snprintf(buf, sizeof buf, "{\"ids\":[\"%s\"],\"authors\":[\"%s\"]}", idhex, pkhex);
	struct filter *f;
	CHECK_OK(filter_parse(&f, NULL, buf, strlen(buf)));
	CHECK(filter_match(f, ev) == 1);
	char *out;
	size_t len;
	CHECK_OK(filter_to_json(&out, &len, f));
	CHECK_STR(out, buf);
	free(out);
	struct filter *c;
	CHECK_OK(filter_copy(&c, f));
	CHECK(filter_match(c, ev));
	filter_free(c);
	filter_free(f);
	/* Malformed filters, each with its reason. */
	const char *bad[][2] = {
		{"[]", "not a JSON object"},
		{"{\"ids\":[]}", "ids: not a non-empty array"},
		{"{\"ids\":[\"abc\"]}", "ids: not 64 lowercase hex"},
		{"{\"authors\":[1]}", "authors: not 64 lowercase hex"},
		{"{\"kinds\":[70000]}", "kinds: not an integer"},
		{"{\"#p\":[\"xyz\"]}", "#e/#p"},
		{"{\"#t\":[1]}", "#tag: a value is not a string"},
		{"{\"since\":-1}", "since/until/limit"},
		{"{\"foo\":1}", "unknown key"},
		{"{\"#tt\":[\"a\"]}", "unknown key"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *why = NULL;
		f = NULL;
		int r = filter_parse(&f, &why, bad[i][0], strlen(bad[i][0]));
		CHECKM(r != 0 && f == NULL && why && strstr(why, bad[i][1]), "bad filter %s: %d %s", bad[i][0], r, why);
	}
	event_free(ev);
	keys_free(kp);
}

static void test_nip19_vectors(void)
{
	cJSON *root = tu_load_json("tests/vectors/nostr/nip19.vectors.json");
	CHECK(root != NULL);
	if (!root)
		return;
	const cJSON *v;
	int n = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "valid"))
	{
		const char *s = cJSON_GetObjectItemCaseSensitive(v, "bech32")->valuestring;
		const cJSON *dec = cJSON_GetObjectItemCaseSensitive(v, "decoded");
		struct nip19 *d;
		int r = nip19_decode(&d, s, strlen(s));
		CHECKM(r == 0, "nip19 %s: %d", s, r);
		if (r)
			continue;
		uint8_t want[32];
		const cJSON *hexv = cJSON_GetObjectItemCaseSensitive(dec, "hex");
		const cJSON *special = cJSON_GetObjectItemCaseSensitive(dec, "special");
		if (hexv) {
			CHECK(tu_unhex32(want, hexv->valuestring) == 0 && memcmp(d->key, want, 32) == 0);
		} else if (d->type == NIP19_NADDR) {
			CHECK_STR(d->identifier, special->valuestring);
		} else {
			CHECK(tu_unhex32(want, special->valuestring) == 0 && memcmp(d->key, want, 32) == 0);
		}
		const cJSON *relays = cJSON_GetObjectItemCaseSensitive(dec, "relays");
		CHECK((size_t)cJSON_GetArraySize(relays) == d->nrelays);
		for (size_t i = 0; i < d->nrelays; i++)
			CHECK_STR(d->relays[i], cJSON_GetArrayItem(relays, (int)i)->valuestring);
		const cJSON *author = cJSON_GetObjectItemCaseSensitive(dec, "author");
		if (author)
			CHECK(d->has_author && tu_unhex32(want, author->valuestring) == 0 && memcmp(d->author, want, 32) == 0);
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(dec, "kind");
		if (kind)
			CHECK(d->has_kind && d->kind == (uint32_t)kind->valuedouble);
		/* Round trip: encode and decode again gives the same entity. */
		char *enc;
		CHECK_OK(nip19_encode(&enc, d));
		struct nip19 *d2;
		CHECK_OK(nip19_decode(&d2, enc, strlen(enc)));
		CHECK(d2 && d2->type == d->type && memcmp(d2->key, d->key, 32) == 0 && d2->nrelays == d->nrelays &&
		      d2->has_kind == d->has_kind && d2->kind == d->kind);
		if (d->type <= NIP19_NOTE)
			CHECK_STR(enc, s);
		nip19_free(d2);
		free(enc);
		nip19_free(d);
		n++;
	}
	CHECK(n == 9);
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "invalid"))
	{
		const char *s = cJSON_GetObjectItemCaseSensitive(v, "bech32")->valuestring;
		struct nip19 *d = NULL;
		CHECKM(nip19_decode(&d, s, strlen(s)) != 0 && d == NULL, "invalid %s accepted", s);
	}
	cJSON_Delete(root);
}

static void test_bech32(void)
{
	/* BIP-173 valid bech32 strings */
	const char *valid[] = {"A12UEL5L", "a12uel5l",
			       "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
			       "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
			       "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"};
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		char hrp[BECH32_HRP_MAX + 1];
		uint8_t *w;
		size_t nw;
		CHECKM(bech32_decode_words(hrp, &w, &nw, valid[i], strlen(valid[i]), 1000) == 0, "valid %s", valid[i]);
		free(w);
	}
	/* BIP-173 invalid: hrp char out of range, no separator, empty hrp, bad checksum, mixed case */
	const char *invalid[] = {" 1nwldj5", "pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3",
				 "A1G7SGD8", "10a06t8", "1qzzfhee", "A12uEL5L"};
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		char hrp[BECH32_HRP_MAX + 1];
		uint8_t *w = NULL;
		size_t nw;
		CHECKM(bech32_decode_words(hrp, &w, &nw, invalid[i], strlen(invalid[i]), 1000) != 0, "invalid %zu", i);
		CHECK(w == NULL);
	}
	/* The length cap is the caller's: no 90-character limit. */
	uint8_t data[200];
	for (int i = 0; i < 200; i++)
		data[i] = (uint8_t)i;
	char *s;
	CHECK_OK(bech32_encode(&s, "long", data, sizeof data));
	CHECK(strlen(s) > 300);
	char hrp[BECH32_HRP_MAX + 1];
	uint8_t *d;
	size_t dl;
	CHECK_OK(bech32_decode(hrp, &d, &dl, s, strlen(s), 5000));
	CHECK(dl == 200 && memcmp(d, data, 200) == 0);
	free(d);
	CHECK_ERR(bech32_decode(hrp, &d, &dl, s, strlen(s), 100), APP_ETOOBIG);
	free(s);
	/* Truncated TLV (nostr-tools regression): fails, does not loop. */
	struct nip19 *v = NULL;
	CHECK(nip19_decode(&v, "nevent1qq5v4rkz", 15) != 0);
	/* naddr without kind is refused on encode */
	struct nip19 e;
	memset(&e, 0, sizeof e);
	e.type = NIP19_NADDR;
	e.identifier = "d";
	e.identifier_len = 1;
	CHECK_ERR(nip19_encode(&s, &e), APP_EINVAL);
}

/* Worker threads parse, sign and verify, then exit: their per-thread
 * buffers and key caches must be released (LeakSanitizer in make check). */
static void *thread_work(void *arg)
{
	struct keypair *kp = arg;
	int *ok = calloc(1, sizeof *ok);
	for (int i = 0; i < 50 && ok; i++) {
		struct event *ev = NULL, *back = NULL;
		char *json = NULL;
		size_t len;
		int r = event_new(&ev, 1, (uint64_t)i, "thread", 6);
		if (r == 0)
			r = event_sign(ev, kp);
		if (r == 0)
			r = event_to_json(&json, &len, ev);
		if (r == 0)
			r = event_parse(&back, NULL, json, len);
		if (r == 0)
			r = event_verify(back);
		*ok += r == 0;
		free(json);
		event_free(ev);
		event_free(back);
	}
	return ok;
}

static void test_threads(void)
{
	struct keypair *kp;
	CHECK_OK(keys_generate(&kp));
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, thread_work, kp) == 0);
	for (int i = 0; i < 4; i++) {
		void *res = NULL;
		CHECK(pthread_join(t[i], &res) == 0);
		CHECKM(res && *(int *)res == 50, "thread %d verified %d/50", i, res ? *(int *)res : -1);
		free(res);
	}
	keys_free(kp);
}

int main(void)
{
	RUN(test_valid_vectors);
	RUN(test_invalid_vectors);
	RUN(test_malformed_table);
	RUN(test_serialization);
	RUN(test_sign_verify);
	RUN(test_tags_expiration);
	RUN(test_filters);
	RUN(test_nip19_vectors);
	RUN(test_bech32);
	RUN(test_threads);
	return test_summary();
}
