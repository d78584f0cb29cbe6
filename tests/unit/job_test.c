/*
 * job_test: the job request parser (enclave/job.h): the table of
 * parameters out of range, each with its own error text; tags; the private
 * form (NIP-44 content) and its failures; addressing; caps; the state
 * machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip44.h"
#include "enclave/job.h"
#include "tests/unit/test.h"

#define BC "https://data.example/bc.csv"

static struct keypair *service, *client;
static char service_hex[65];

/* A table row: params as "name=value" (NULL-terminated), the expected code and error text. */
struct row {
	const char *params[4];
	int code;
	const char *text; /* exact text, or prefix when it ends in '*' */
};

static const struct row rows[] = {
	{{"epochs=0"}, APP_ERANGE, "epochs: 0 is out of range 1..10000"},
	{{"epochs=10001"}, APP_ERANGE, "epochs: 10001 is out of range 1..10000"},
	{{"epochs=ten"}, APP_EINVAL, "epochs: 'ten' is not an integer"},
	{{"epochs=-1"}, APP_EINVAL, "epochs: '-1' is not an integer"},
	{{"learning_rate=0"}, APP_ERANGE, "learning_rate: 0 is out of range (0, 10]"},
	{{"learning_rate=10.01"}, APP_ERANGE, "learning_rate: 10.01 is out of range (0, 10]"},
	{{"learning_rate=inf"}, APP_EINVAL, "learning_rate: 'inf' is not a decimal number"},
	{{"learning_rate=0x1p-3"}, APP_EINVAL, "learning_rate: '0x1p-3' is not a decimal number"},
	{{"batch_size=0"}, APP_ERANGE, "batch_size: 0 is out of range 1..65536"},
	{{"batch_size=65537"}, APP_ERANGE, "batch_size: 65537 is out of range 1..65536"},
	{{"validation_split=0.91"}, APP_ERANGE, "validation_split: 0.91 is out of range [0, 0.9]"},
	{{"validation_split=-0.5"}, APP_ERANGE, "validation_split: -0.5 is out of range [0, 0.9]"},
	{{"optimizer=sgd", "momentum=1"}, APP_ERANGE, "momentum: 1 is out of range [0, 0.999]"},
	{{"momentum=0.5"}, APP_EINVAL, "momentum: only with optimizer=sgd"},
	{{"l2=1000.5"}, APP_ERANGE, "l2: 1000.5 is out of range [0, 1000]"},
	{{"l2=-0.1"}, APP_ERANGE, "l2: -0.1 is out of range [0, 1000]"},
	{{"patience=1001"}, APP_ERANGE, "patience: 1001 is out of range 0..1000"},
	{{"patience=3", "validation_split=0"}, APP_EINVAL, "patience: needs validation_split > 0"},
	{{"threads=0"}, APP_ERANGE, "threads: 0 is out of range 1..64"},
	{{"threads=65"}, APP_ERANGE, "threads: 65 is out of range 1..64"},
	{{"threads=3"}, APP_ERANGE, "threads: 3 is above this instance's limit of 2"},
	{{"seed=18446744073709551616"}, APP_EINVAL, "seed: '18446744073709551616' is not an integer in 0..18446744073709551615"},
	{{"seed=x"}, APP_EINVAL, "seed: 'x' is not an integer in 0..18446744073709551615"},
	{{"model=svm"}, APP_EINVAL, "model: 'svm' is not logreg or mlp"},
	{{"model=mlp", "hidden=0"}, APP_ERANGE, "hidden: 0 is out of range 1..4 comma-separated widths of 1..4096"},
	{{"model=mlp", "hidden=4097"}, APP_ERANGE, "hidden: 4097 is out of range 1..4 comma-separated widths of 1..4096"},
	{{"model=mlp", "hidden=1,2,3,4,5"}, APP_ERANGE, "hidden: 1,2,3,4,5 is out of range*"},
	{{"model=mlp", "hidden=8,,8"}, APP_EINVAL, "hidden: '8,,8' is not 1..4 comma-separated widths of 1..4096"},
	{{"hidden=64"}, APP_EINVAL, "hidden: only with model=mlp"},
	{{"activation=relu"}, APP_EINVAL, "activation: only with model=mlp"},
	{{"model=mlp", "activation=gelu"}, APP_EINVAL, "activation: 'gelu' is not relu, tanh or sigmoid"},
	{{"optimizer=rmsprop"}, APP_EINVAL, "optimizer: 'rmsprop' is not sgd or adam"},
	{{"label_column="}, APP_ERANGE, "label_column: 'last', a 0-based column index or a header name of 1..256 bytes"},
	{{"label_column=a", "label_column=b"}, APP_EINVAL, "label_column: given twice"},
	{{"dataset_key=00"}, APP_EINVAL, "dataset_key: not 64 hex digits"},
	{{"sha256=zz"}, APP_EINVAL, "sha256: 'zz' is not 64 hex digits"},
	{{"epochs=3", "epochs=4"}, APP_EINVAL, "epochs: given twice"},
	{{"frobnicate=1"}, APP_EINVAL, "frobnicate: unknown parameter"},
	{{"=1"}, APP_EINVAL, "(empty name): unknown parameter"},
	{{"bad'name\x01=1"}, APP_EINVAL, "bad?name?: unknown parameter"},
	{{("epochs=1" "0000000000000000000000000000000000000000000000000000000000000000000")}, APP_ERANGE,
	 "epochs: value longer than 64 bytes"},
};

static int check_text(const char *got, const char *want)
{
	size_t n = strlen(want);
	if (n && want[n - 1] == '*')
		return strncmp(got, want, n - 1) == 0;
	return strcmp(got, want) == 0;
}

static int url_ok(void *arg, const char *url, char *why, size_t cap)
{
	(void)arg;
	if (strncmp(url, "https://", 8)) {
		snprintf(why, cap, "URL scheme not supported");
		return APP_EREFUSED;
	}
	return 0;
}

static const struct job_policy pol = {8, 2, 0, url_ok, NULL};

/* Parses tags given as arrays of strings; returns the code, err filled. */
static int parse_tags(struct job_spec **out, char *err, size_t cap, const char *const *const *tags, const size_t *nf,
		      size_t n)
{
	return job_tags_parse(out, err, cap, tags, nf, n, &pol);
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const char *t_i[3] = {"i", BC, "url"};
		const char *names[4][3];
		char bufs[4][256];
		const char *const *tags[5];
		size_t nf[5], n = 0;
		tags[n] = t_i;
		nf[n++] = 3;
		for (size_t k = 0; k < 4 && rows[i].params[k]; k++) {
			snprintf(bufs[k], sizeof bufs[k], "%s", rows[i].params[k]);
			char *eq = strchr(bufs[k], '=');
			*eq = 0;
			names[k][0] = "param";
			names[k][1] = bufs[k];
			names[k][2] = eq + 1;
			tags[n] = names[k];
			nf[n++] = 3;
		}
		struct job_spec *s = NULL;
		char err[JOB_ERR_MAX];
		int r = parse_tags(&s, err, sizeof err, tags, nf, n);
		CHECKM(r == rows[i].code, "row %zu (%s): code %d, expected %d (%s)", i, rows[i].params[0], r, rows[i].code, err);
		CHECKM(check_text(err, rows[i].text), "row %zu: text \"%s\", expected \"%s\"", i, err, rows[i].text);
		CHECK(s == NULL);
	}
}

static void test_good(void)
{
	const char *t1[] = {"i", BC, "url"}, *t2[] = {"i", "https://data.example/b.csv", "url", "wss://r", "m"};
	const char *p1[] = {"param", "model", "mlp"}, *p2[] = {"param", "hidden", "64,32"},
		   *p3[] = {"param", "epochs", "7"}, *p4[] = {"param", "dataset_key", NULL},
		   *p5[] = {"param", "sha256", NULL}, *p6[] = {"param", "sha256", NULL}, *b[] = {"bid", "5000"},
		   *o[] = {"output", "application/json"}, *rl[] = {"relays", "wss://a", "wss://b"}, *pp[] = {"p", "x"},
		   *lc[] = {"param", "label_column", "diagnosis"}, *th[] = {"param", "threads", "2"};
	char key[65], sh1[65], sh2[65];
	memset(key, 'a', 64);
	key[64] = 0;
	memset(sh1, '1', 64);
	sh1[64] = 0;
	memset(sh2, 'B', 64);
	sh2[64] = 0;
	p4[2] = key;
	p5[2] = sh1;
	p6[2] = sh2;
	const char *const *tags[] = {t1, t2, p1, p2, p3, p4, p5, p6, b, o, rl, pp, lc, th};
	size_t nf[] = {3, 5, 3, 3, 3, 3, 3, 3, 2, 2, 3, 2, 3, 3};
	struct job_spec *s = NULL;
	char err[JOB_ERR_MAX];
	CHECK_OK(parse_tags(&s, err, sizeof err, tags, nf, sizeof nf / sizeof nf[0]));
	if (!s)
		return;
	CHECK(s->ndatasets == 2);
	CHECK_STR(s->ds[1].url, "https://data.example/b.csv");
	CHECK(s->params.model == MODEL_MLP && s->params.nhidden == 2 && s->params.hidden[1] == 32);
	CHECK(s->params.epochs == 7 && s->params.threads == 2);
	CHECK(s->has_bid && s->bid_msat == 5000);
	CHECK_STR(s->label_column, "diagnosis");
	CHECK(s->ds[0].has_sha256 && s->ds[0].sha256[0] == 0x11 && s->ds[1].sha256[31] == 0xbb);
	uint8_t k[32];
	CHECK_OK(job_keys_get(s, 0, k));
	CHECK(k[0] == 0xaa);
	CHECK_OK(job_keys_get(s, 1, k)); /* one key for all */
	job_spec_free(s);
}

static void test_tags(void)
{
	struct job_spec *s = NULL;
	char err[JOB_ERR_MAX];
	const char *ni[] = {"i", BC}, *ti[] = {"i", "note1", "event"}, *ok[] = {"i", BC, "url"},
		   *ftp[] = {"i", "ftp://x", "url"}, *pm[] = {"param", "epochs"}, *bid[] = {"bid", "012"},
		   *bid2[] = {"bid", "5"}, *out[] = {"output", "text/plain"};
	{
		const char *const *t[] = {ni};
		size_t nf[] = {2};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 1), APP_EINVAL);
		CHECK_STR(err, "i: dataset 1: no input type (expected [\"i\", URL, \"url\"])");
	}
	{
		const char *const *t[] = {ti};
		size_t nf[] = {3};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 1), APP_EINVAL);
		CHECK_STR(err, "i: dataset 1: input type 'event' is not supported (only url)");
	}
	{
		const char *const *t[] = {ok, ftp};
		size_t nf[] = {3, 3};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 2), APP_EREFUSED);
		CHECK_STR(err, "i: dataset 2: URL scheme not supported");
	}
	{
		const char *const *t[] = {ok, pm};
		size_t nf[] = {3, 2};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 2), APP_EINVAL);
		CHECK_STR(err, "param: malformed tag (expected [\"param\", name, value])");
	}
	{
		const char *const *t[] = {ok, bid};
		size_t nf[] = {3, 2};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 2), APP_EINVAL);
		CHECK_STR(err, "bid: '012' is not an amount in msat (a decimal integer)");
	}
	{
		const char *const *t[] = {ok, bid2, bid2};
		size_t nf[] = {3, 2, 2};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 3), APP_EINVAL);
		CHECK_STR(err, "bid: given twice");
	}
	{
		const char *const *t[] = {ok, out};
		size_t nf[] = {3, 2};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 2), APP_EINVAL);
		CHECK_STR(err, "output: only one [\"output\", \"application/json\"] is supported");
	}
	{
		const char *const *t[] = {pm};
		size_t nf[] = {3};
		const char *p[] = {"param", "epochs", "3"};
		t[0] = p;
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 1), APP_EINVAL);
		CHECK_STR(err, "i: no dataset (add [\"i\", URL, \"url\"])");
	}
	{ /* 9 datasets over a policy of 8 */
		const char *const *t[9];
		size_t nf[9];
		for (int i = 0; i < 9; i++) {
			t[i] = ok;
			nf[i] = 3;
		}
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 9), APP_ETOOBIG);
		CHECK_STR(err, "i: at most 8 datasets per job");
	}
	{ /* keys and pins must match the datasets */
		char key[65];
		memset(key, 'c', 64);
		key[64] = 0;
		const char *k[] = {"param", "dataset_key", key}, *h[] = {"param", "sha256", key};
		const char *const *t[] = {ok, ok, ok, k, k};
		size_t nf[] = {3, 3, 3, 3, 3};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 5), APP_EINVAL);
		CHECK_STR(err, "dataset_key: give one key for all datasets or one per dataset (3)");
		const char *const *t2[] = {ok, ok, h};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t2, nf, 3), APP_EINVAL);
		CHECK_STR(err, "sha256: give one per dataset (2)");
		CHECK(strstr(err, key) == NULL);
	}
	{ /* a dataset key is never echoed */
		const char *k[] = {"param", "dataset_key", "secretsecretsecret"};
		const char *const *t[] = {ok, k};
		size_t nf[] = {3, 3};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 2), APP_EINVAL);
		CHECK(strstr(err, "secret") == NULL);
	}
	{ /* URL over the cap */
		char *big = malloc(JOB_URL_MAX + 10);
		memcpy(big, "https://", 8);
		memset(big + 8, 'a', JOB_URL_MAX);
		big[JOB_URL_MAX + 8] = 0;
		const char *u[] = {"i", big, "url"};
		const char *const *t[] = {u};
		size_t nf[] = {3};
		CHECK_ERR(parse_tags(&s, err, sizeof err, t, nf, 1), APP_ETOOBIG);
		CHECK_STR(err, "i: dataset 1: URL longer than 2048 bytes");
		free(big);
	}
	CHECK(s == NULL);
}

/* A signed request event from the client key. */
static struct event *request(const char *content, const char *const *extra_tags[], const size_t *nextra, size_t n,
			     int to_service)
{
	struct event *ev = NULL;
	if (event_new(&ev, JOB_KIND_REQUEST, 1700000000, content, content ? strlen(content) : 0) != 0)
		return NULL;
	if (to_service && event_add_tagv(ev, "p", service_hex, NULL) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (event_add_tag(ev, nextra[i], extra_tags[i]) != 0)
			goto fail;
	if (event_sign(ev, client) != 0)
		goto fail;
	return ev;
fail:
	event_free(ev);
	return NULL;
}

static char *encrypt_for_service(const char *pt)
{
	uint8_t ck[32], pub[32];
	char *out = NULL;
	size_t len;
	keys_pubkey(service, pub);
	if (nip44_conversation_key(ck, client, pub) != 0 ||
	    nip44_encrypt(&out, &len, ck, (const uint8_t *)pt, strlen(pt), NULL) != 0)
		return NULL;
	return out;
}

static void test_private(void)
{
	const char *enc[] = {"encrypted"};
	const char *const *tags[] = {enc};
	size_t nf[] = {1};
	struct job_spec *s = NULL;
	char err[JOB_ERR_MAX];
	char *c = encrypt_for_service("[[\"i\",\"" BC "\",\"url\"],[\"param\",\"epochs\",\"9\"],[\"bid\",\"77\"],"
				      "[\"param\",\"dataset_key\",\"0101010101010101010101010101010101010101010101010101010101010101\"]]");
	struct event *ev = request(c, tags, nf, 1, 1);
	CHECK(ev != NULL);
	CHECK_OK(job_request_parse(&s, err, sizeof err, ev, service, &pol));
	if (s) {
		CHECK(s->encrypted && s->ndatasets == 1 && s->params.epochs == 9 && s->bid_msat == 77);
		CHECK_MEM(s->id, ev->id, 32);
		CHECK_MEM(s->client, ev->pubkey, 32);
		uint8_t k[32];
		CHECK_OK(job_keys_get(s, 0, k));
		CHECK(k[31] == 1);
		job_spec_free(s);
		s = NULL;
	}
	event_free(ev);
	free(c);

	/* not a JSON array of tags */
	c = encrypt_for_service("{\"i\":1}");
	ev = request(c, tags, nf, 1, 1);
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &pol), APP_EPARSE);
	CHECK_STR(err, "encrypted: the decrypted content is not a JSON array of tags");
	event_free(ev);
	free(c);
	c = encrypt_for_service("[[\"i\",1]]");
	ev = request(c, tags, nf, 1, 1);
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &pol), APP_EPARSE);
	CHECK_STR(err, "encrypted: the decrypted content is not a JSON array of tags (arrays of strings)");
	event_free(ev);
	free(c);

	/* garbage content */
	ev = request("not nip44 at all, not nip44 at all, not nip44 at all, not nip44 at all, not nip44 at all, "
		     "not nip44 at all, not nip44 at all",
		     tags, nf, 1, 1);
	CHECK(job_request_parse(&s, err, sizeof err, ev, service, &pol) != 0);
	CHECK(!strncmp(err, "encrypted: the content does not decrypt with NIP-44 v2", 54));
	event_free(ev);

	/* i in clear next to encrypted */
	const char *i[] = {"i", BC, "url"};
	const char *const *tags2[] = {enc, i};
	size_t nf2[] = {1, 3};
	c = encrypt_for_service("[]");
	ev = request(c, tags2, nf2, 2, 1);
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &pol), APP_EINVAL);
	CHECK_STR(err, "encrypted: i and param tags must be inside the encrypted content");
	event_free(ev);
	free(c);

	/* encrypted to another key: the MAC fails */
	struct keypair *other = NULL;
	CHECK_OK(keys_generate(&other));
	c = encrypt_for_service("[[\"i\",\"" BC "\",\"url\"]]");
	ev = request(c, tags, nf, 1, 1);
	CHECK(job_request_parse(&s, err, sizeof err, ev, other, &pol) == APP_ENOTFOUND); /* p names the service */
	event_free(ev);
	free(c);
	keys_free(other);
	CHECK(s == NULL);
}

static void test_addressing(void)
{
	const char *i[] = {"i", BC, "url"};
	const char *const *tags[] = {i};
	size_t nf[] = {3};
	struct job_spec *s = NULL;
	char err[JOB_ERR_MAX];
	struct event *ev = request(NULL, tags, nf, 1, 0); /* no p tag */
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &pol), APP_ENOTFOUND);
	struct job_policy open = pol;
	open.open = 1;
	CHECK_OK(job_request_parse(&s, err, sizeof err, ev, service, &open));
	job_spec_free(s);
	s = NULL;
	event_free(ev);
	const char *p[] = {"p", "0000000000000000000000000000000000000000000000000000000000000001"};
	const char *const *tags2[] = {i, p};
	size_t nf2[] = {3, 2};
	ev = request(NULL, tags2, nf2, 2, 0); /* addressed to someone else */
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &open), APP_ENOTFOUND);
	event_free(ev);
	ev = request(NULL, tags2, nf2, 2, 1); /* to us and someone else: ours */
	CHECK_OK(job_request_parse(&s, err, sizeof err, ev, service, &pol));
	job_spec_free(s);
	s = NULL;
	ev->kind = 5721;
	CHECK_ERR(job_request_parse(&s, err, sizeof err, ev, service, &pol), APP_EINVAL);
	CHECK_STR(err, "request: kind 5721 is not 5720");
	event_free(ev);
}

static void test_states(void)
{
	static const enum job_state path[] = {JOB_RECEIVED, JOB_QUOTED, JOB_INVOICED, JOB_PAID,
					     JOB_FETCHING, JOB_TRAINING, JOB_PUBLISHING, JOB_DONE};
	for (size_t i = 0; i + 1 < sizeof path / sizeof path[0]; i++) {
		CHECK(job_transition_ok(path[i], path[i + 1]));
		CHECK(job_transition_ok(path[i], JOB_FAILED));
		CHECK(!job_transition_ok(path[i + 1], path[i]));
	}
	CHECK(job_transition_ok(JOB_QUOTED, JOB_PAID)); /* credit */
	CHECK(job_transition_ok(JOB_RECEIVED, JOB_PAID)); /* free */
	CHECK(!job_transition_ok(JOB_RECEIVED, JOB_FETCHING));
	CHECK(!job_transition_ok(JOB_INVOICED, JOB_FETCHING));
	CHECK(!job_transition_ok(JOB_DONE, JOB_FAILED));
	CHECK(!job_transition_ok(JOB_FAILED, JOB_FAILED));
	CHECK(!job_transition_ok(JOB_FAILED, JOB_RECEIVED));
	for (unsigned s = 0; s < JOB_STATE_COUNT; s++) {
		enum job_state back;
		const char *n = job_state_name((enum job_state)s);
		CHECK_OK(job_state_parse(&back, n, strlen(n)));
		CHECK(back == (enum job_state)s);
	}
	enum job_state x;
	CHECK_ERR(job_state_parse(&x, "don", 3), APP_EPARSE);
	CHECK_STR(job_state_name((enum job_state)99), "?");
}

int main(void)
{
	uint8_t pub[32];
	if (keys_generate(&service) != 0 || keys_generate(&client) != 0)
		return 1;
	keys_pubkey(service, pub);
	hex_encode(service_hex, pub, 32);
	RUN(test_table);
	RUN(test_good);
	RUN(test_tags);
	RUN(test_private);
	RUN(test_addressing);
	RUN(test_states);
	keys_free(service);
	keys_free(client);
	return test_summary();
}
