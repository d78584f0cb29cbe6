/*
 * enclave_test: appliance-enclave's configuration (enclave/econfig.h: every
 * kind of error names the file, line, section and key; defaults; the host
 * allowlist), the dataset URL policy (enclave/fetch.h fetch_url_check), the
 * per-pubkey rate limiter (enclave/limits.h) and the bounded hash map
 * (enclave/hmap.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/econfig.h"
#include "enclave/fetch.h"
#include "enclave/hmap.h"
#include "enclave/limits.h"
#include "tests/unit/test.h"

#define BASE                                                                                                           \
	"[service]\njournal = /tmp/j\n[relays]\nrelay = wss://relay.example\n[wallet]\nnwc_uri_file = /tmp/nwc\n"     \
	"[fetch]\nallowed_host = data.example\n"

static int parse(struct econfig **c, char *err, const char *text)
{
	return econfig_parse(c, err, ECONFIG_ERR_MAX, "t.ini", text, strlen(text));
}

static void test_defaults(void)
{
	struct econfig *c = NULL;
	char err[ECONFIG_ERR_MAX];
	CHECK_OK(parse(&c, err, BASE));
	if (!c)
		return;
	CHECK_STR(c->name, "appliance");
	CHECK_STR(c->nsm, "/dev/nsm");
	CHECK_STR(c->inbox, "wss://relay.example");
	CHECK(c->announce_interval == 3600 && c->invoice_expiry == 600 && c->lookup_interval == 10);
	CHECK(c->base_msat == 1000 && c->msat_per_unit == 1000 && c->max_msat == 0);
	CHECK(c->max_concurrent_jobs == 2 && c->max_queue == 64 && c->rate_requests == 20 && c->rate_window == 60);
	CHECK(c->max_dataset_bytes == 64u << 20 && c->max_datasets == 8 && c->job_timeout == 600);
	CHECK(c->inline_max == 32768 && c->max_result_bytes == 64u << 20);
	CHECK(!c->allow_http && !c->open && c->put_url == NULL && c->walrus_aggregator == NULL);
	CHECK(c->log_level == LOG_INFO);
	FILE *f = tmpfile();
	econfig_print(c, f);
	CHECK(ftell(f) > 500);
	fclose(f);
	econfig_free(c);
	/* lists, byte sizes, booleans, comments */
	CHECK_OK(parse(&c, err,
		       BASE "[relays]\nrelay = ws://127.0.0.1:7000\ninbox = wss://inbox.example\n; comment\n"
			    "[limits]\nmax_dataset_bytes = 3M\nmax_result_bytes=2k\n[fetch]\nallow_http = yes\n"
			    "allowed_host = 127.0.0.1:8080\nallowed_host = [::1]\n"
			    "[blobstore]\nput_url = http://127.0.0.1:8080/b/{sha256}\ninline_max = 1k\n"
			    "[service]\nopen = on\nlog_level = debug\n"));
	if (c) {
		CHECK(c->relay.n == 2 && c->allowed_host.n == 3 && c->max_dataset_bytes == 3u << 20);
		CHECK(c->max_result_bytes == 2048 && c->inline_max == 1024 && c->allow_http && c->open);
		CHECK_STR(c->get_url, "http://127.0.0.1:8080/b/{sha256}");
		CHECK(econfig_host_allowed(c, "data.example", 443) && econfig_host_allowed(c, "DATA.example", 80));
		CHECK(econfig_host_allowed(c, "127.0.0.1", 8080) && !econfig_host_allowed(c, "127.0.0.1", 8081));
		CHECK(econfig_host_allowed(c, "::1", 5) && !econfig_host_allowed(c, "evil.example", 443));
		CHECK(c->log_level == LOG_DEBUG);
		econfig_free(c);
	}
}

static void test_errors(void)
{
	static const struct {
		const char *text;
		int code;
		const char *err;
	} t[] = {
		{BASE "[service]\nfoo = 1\n", APP_EINVAL, "t.ini:10: [service] foo: unknown key"},
		{BASE "[nope]\nx = 1\n", APP_EINVAL, "t.ini:10: [nope]: unknown section (key x)"},
		{BASE "[service]\njournal = /tmp/k\n", APP_EINVAL, "t.ini:10: [service] journal: given twice"},
		{BASE "[limits]\nmax_queue = 0\n", APP_EINVAL, "t.ini:10: [limits] max_queue: 0 is out of range 1..100000"},
		{BASE "[limits]\nmax_queue = many\n", APP_EINVAL, "t.ini:10: [limits] max_queue: 'many' is not a decimal integer"},
		{BASE "[limits]\nmax_dataset_bytes = 1T\n", APP_EINVAL,
		 "t.ini:10: [limits] max_dataset_bytes: '1T' is not a byte size (digits, optional k/M/G)"},
		{BASE "[limits]\nmax_concurrent_jobs = 65\n", APP_EINVAL,
		 "t.ini:10: [limits] max_concurrent_jobs: 65 is out of range 1..64"},
		{BASE "[price]\nbase_msat = 99999999999999999999\n", APP_EINVAL,
		 "t.ini:10: [price] base_msat: '99999999999999999999' is not a decimal integer"},
		{BASE "[service]\nopen = maybe\n", APP_EINVAL, "t.ini:10: [service] open: 'maybe' is not a boolean (true/false)"},
		{BASE "[service]\nlog_level = loud\n", APP_EINVAL,
		 "t.ini:10: [service] log_level: 'loud' is not error, warn, info or debug"},
		{BASE "[service]\nname = \n", APP_EINVAL, "t.ini:10: [service] name: length 0 is out of range 1..64 bytes"},
		{BASE "this is not ini\n", APP_EPARSE, "t.ini:9: syntax error"},
		{"[relays]\nrelay = wss://r\n[wallet]\nnwc_uri_file = /x\n[fetch]\nallowed_host = a\n", APP_EINVAL,
		 "t.ini: [service] journal: required"},
		{"[service]\njournal = /j\n[wallet]\nnwc_uri_file = /x\n[fetch]\nallowed_host = a\n", APP_EINVAL,
		 "t.ini: [relays] relay: required"},
		{"[service]\njournal = /j\n[relays]\nrelay = wss://r\n[fetch]\nallowed_host = a\n", APP_EINVAL,
		 "t.ini: [wallet] nwc_uri_file: required"},
		{"[service]\njournal = /j\n[relays]\nrelay = wss://r\n[wallet]\nnwc_uri_file = /x\n", APP_EINVAL,
		 "t.ini: [fetch] allowed_host: required"},
		{BASE "[relays]\nrelay = https://not-a-relay\n", APP_EINVAL, "t.ini: [relays] relay: 'https://not-a-relay':"},
		{BASE "[relays]\nrelay = wss://relay.example\n", APP_EINVAL, "t.ini: [relays] relay: 'wss://relay.example' given twice"},
		{BASE "[service]\nnsm = /dev/tty\n", APP_EINVAL, "t.ini: [service] nsm: expected /dev/nsm, dev:PATH or unix:PATH"},
		{BASE "[service]\nkeystore = ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\n", APP_EINVAL,
		 "t.ini: [service] keystore: not 64 lowercase hex digits"},
		{BASE "[price]\nmin_msat = 10\nmax_msat = 5\n", APP_EINVAL, "t.ini: [price] min_msat: 10 is above max_msat 5"},
		{BASE "[fetch]\nallowed_host = *.example\n", APP_EINVAL, "t.ini: [fetch] allowed_host: '*.example': * only alone"},
		{BASE "[fetch]\nallowed_host = Evil_Host\n", APP_EINVAL, "t.ini: [fetch] allowed_host: 'Evil_Host'"},
		{BASE "[blobstore]\nput_url = http://x/{sha256}\n", APP_EINVAL,
		 "t.ini: [blobstore] put_url: must be an https:// URL (http:// only with allow_http)"},
		{BASE "[blobstore]\nget_url = https://x/{sha256}\n", APP_EINVAL, "t.ini: [blobstore] get_url: needs put_url"},
		{BASE "[limits]\nmax_result_bytes = 1k\n[blobstore]\ninline_max = 2k\n", APP_EINVAL,
		 "t.ini: [blobstore] inline_max: above [limits] max_result_bytes"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct econfig *c = NULL;
		char err[ECONFIG_ERR_MAX] = "";
		int r = parse(&c, err, t[i].text);
		CHECKM(r == t[i].code, "case %zu: code %d, expected %d (%s)", i, r, t[i].code, err);
		CHECKM(!strncmp(err, t[i].err, strlen(t[i].err)), "case %zu: \"%s\", expected \"%s...\"", i, err, t[i].err);
		CHECK(c == NULL);
		econfig_free(c);
	}
	struct econfig *c = NULL;
	char err[ECONFIG_ERR_MAX];
	CHECK_ERR(econfig_load(&c, err, sizeof err, "/nonexistent/enclave.ini"), APP_ENOENT);
	CHECK(strstr(err, "/nonexistent/enclave.ini") != NULL);
}

static void test_url_policy(void)
{
	struct econfig *c = NULL;
	char err[ECONFIG_ERR_MAX], why[FETCH_WHY_MAX];
	CHECK_OK(parse(&c, err, BASE "[fetch]\nallowed_host = 127.0.0.1:8080\nwalrus_aggregator = https://agg.example\n"));
	if (!c)
		return;
	CHECK_OK(fetch_url_check(c, "https://data.example/x.csv", why, sizeof why));
	CHECK_OK(fetch_url_check(c, "https://DATA.example:443/x.csv?token=1", why, sizeof why));
	CHECK_ERR(fetch_url_check(c, "http://data.example/x.csv", why, sizeof why), APP_EREFUSED);
	CHECK_STR(why, "http:// is not allowed by this instance (use https://)");
	CHECK_ERR(fetch_url_check(c, "https://127.0.0.1:9090/x", why, sizeof why), APP_EREFUSED);
	CHECK_STR(why, "host '127.0.0.1' port 9090 is not allowed by this instance");
	CHECK_ERR(fetch_url_check(c, "file:///etc/passwd", why, sizeof why), APP_EREFUSED);
	CHECK_ERR(fetch_url_check(c, "https://", why, sizeof why), APP_EREFUSED);
	CHECK_ERR(fetch_url_check(c, "gopher://data.example/", why, sizeof why), APP_EREFUSED);
	CHECK_OK(fetch_url_check(c, "walrus:AbC_-09", why, sizeof why));
	CHECK_OK(fetch_url_check(c, "https://agg.example/v1/blobs/x", why, sizeof why)); /* the aggregator itself */
	CHECK_ERR(fetch_url_check(c, "walrus:a/b", why, sizeof why), APP_EREFUSED);
	CHECK_ERR(fetch_url_check(c, "walrus:", why, sizeof why), APP_EREFUSED);
	CHECK_ERR(fetch_url_check(c, "https://user@evil.example@data.example/", why, sizeof why), APP_EREFUSED);
	econfig_free(c);
	CHECK_OK(parse(&c, err, BASE));
	CHECK_ERR(fetch_url_check(c, "walrus:abc", why, sizeof why), APP_EREFUSED);
	CHECK_STR(why, "walrus: URLs are not supported by this instance");
	econfig_free(c);
}

static void test_ratelim(void)
{
	struct ratelim *rl = NULL;
	uint8_t a[32], b[32];
	int first;
	memset(a, 1, 32);
	memset(b, 2, 32);
	CHECK_OK(ratelim_new(&rl, 2, 10, 3));
	CHECK_OK(ratelim_hit(rl, a, 100, &first));
	CHECK_OK(ratelim_hit(rl, a, 101, &first));
	CHECK_ERR(ratelim_hit(rl, a, 102, &first), APP_ELIMIT);
	CHECK(first == 1);
	CHECK_ERR(ratelim_hit(rl, a, 103, &first), APP_ELIMIT);
	CHECK(first == 0);
	CHECK_OK(ratelim_hit(rl, b, 103, &first));
	CHECK_OK(ratelim_hit(rl, a, 110, &first)); /* a new window */
	uint8_t k[32];
	memset(k, 3, 32);
	CHECK_OK(ratelim_hit(rl, k, 111, &first));
	memset(k, 4, 32);
	CHECK_ERR(ratelim_hit(rl, k, 111, &first), APP_ELIMIT); /* table full, nothing expired */
	CHECK(ratelim_expire(rl, 120) == 1);                     /* b's window ended at 113 */
	CHECK_OK(ratelim_hit(rl, k, 120, &first));
	CHECK(ratelim_count(rl) == 3);
	ratelim_free(rl);
	CHECK_ERR(ratelim_new(&rl, 0, 10, 3), APP_EINVAL);
}

static int count_cb(void *arg, const uint8_t key[32], void *val)
{
	(void)key;
	(void)val;
	(*(size_t *)arg)++;
	return 0;
}

static void test_hmap(void)
{
	struct hmap *m = NULL;
	uint8_t k[32];
	CHECK_OK(hmap_new(&m, 5000));
	int putbad = 0;
	for (int i = 0; i < 5000; i++) {
		memset(k, 0, 32);
		memcpy(k, &i, sizeof i);
		if (hmap_put(m, k, (void *)(intptr_t)(i + 1)) != 0)
			putbad++;
	}
	CHECK(putbad == 0);
	memset(k, 0xff, 32);
	CHECK_ERR(hmap_put(m, k, (void *)1), APP_ELIMIT);
	memset(k, 0, 32);
	CHECK_ERR(hmap_put(m, k, (void *)1), APP_EEXIST);
	CHECK_ERR(hmap_put(m, k, NULL), APP_EINVAL);
	int bad = 0;
	for (int i = 0; i < 5000; i++) {
		memset(k, 0, 32);
		memcpy(k, &i, sizeof i);
		if ((intptr_t)hmap_get(m, k) != i + 1)
			bad++;
	}
	CHECK(bad == 0);
	size_t n = 0;
	CHECK_OK(hmap_foreach(m, count_cb, &n));
	CHECK(n == 5000 && hmap_count(m) == 5000);
	memset(k, 0, 32);
	CHECK((intptr_t)hmap_del(m, k) == 1 && hmap_get(m, k) == NULL && hmap_del(m, k) == NULL);
	CHECK(hmap_count(m) == 4999);
	hmap_free(m, NULL);
	CHECK_ERR(hmap_new(&m, 0), APP_EINVAL);
}

int main(void)
{
	if (fetch_global_init() != 0)
		return 1;
	RUN(test_defaults);
	RUN(test_errors);
	RUN(test_url_policy);
	RUN(test_ratelim);
	RUN(test_hmap);
	fetch_global_cleanup();
	return test_summary();
}
