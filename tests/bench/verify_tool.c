/*
 * verify_tool: helper for bench_verify.sh.
 *   verify_tool gen N AUTHORS   writes N real-shaped signed events (JSON lines) to stdout:
 *                               kind 1 notes with e/p tags and unicode text, kind 7
 *                               reactions, kind 0 profiles, kind 3 contact lists, kind
 *                               5720 job requests; signed by AUTHORS distinct keys.
 *   verify_tool bare FILE       the baseline: parses every line first (untimed), then
 *                               times a bare secp256k1_schnorrsig_verify loop over the
 *                               same (pubkey, id, sig) triples; prints "bare_verify_per_s X"
 *                               (per CPU second of this process).
 */
#include <cJSON.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"

/* CPU time of this process: robust against other load on a shared machine. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned rnd(unsigned n)
{
	uint32_t x;
	keys_random(&x, sizeof x);
	return x % n;
}

static const char *const words[] = {"nostr", "relay", "zap", "sats", "enclave", "model", "training", "lightning",
				    "gm", "pura vida", "✓", "🍕", "ñandú", "日本語", "\"quoted\"", "line\nbreak",
				    "tab\there", "https://example.com/a?b=c", "#bitcoin", "🤙"};

static void text(char *buf, size_t cap, unsigned nwords)
{
	size_t n = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < nwords; i++) {
		const char *w = words[rnd(sizeof words / sizeof words[0])];
		size_t l = strlen(w);
		if (n + l + 2 >= cap)
			break;
		memcpy(buf + n, w, l);
		n += l;
		buf[n++] = ' ';
		buf[n] = 0;
	}
}

static int gen(unsigned long n, unsigned authors)
{
	struct keypair **keys = calloc(authors, sizeof *keys);
	char (*pubs)[65] = calloc(authors, 65);
	for (unsigned i = 0; i < authors; i++) {
		uint8_t pub[32];
		if (keys_generate(&keys[i]) != 0)
			return 1;
		keys_pubkey(keys[i], pub);
		hex_encode(pubs[i], pub, 32);
	}
	char content[4096], idhex[65];
	uint64_t ts = 1760000000;
	for (unsigned long i = 0; i < n; i++) {
		unsigned a = rnd(authors), kindsel = rnd(100);
		struct event *ev = NULL;
		uint32_t kind = kindsel < 60 ? 1 : kindsel < 80 ? 7 : kindsel < 88 ? 0 : kindsel < 93 ? 3 : 5720;
		if (kind == 1)
			text(content, sizeof content, 5 + rnd(60));
		else if (kind == 7)
			snprintf(content, sizeof content, "%s", rnd(2) ? "+" : "🤙");
		else if (kind == 0)
			snprintf(content, sizeof content,
				 "{\"name\":\"user%u\",\"about\":\"a nostr user ✓\",\"picture\":\"https://example.com/%u.png\"}",
				 a, a);
		else
			content[0] = 0;
		if (event_new(&ev, kind, ts + i, content, strlen(content)) != 0)
			return 1;
		keys_random(idhex, 32);
		uint8_t rid[32];
		keys_random(rid, 32);
		hex_encode(idhex, rid, 32);
		int r = 0;
		if (kind == 1 || kind == 7) {
			r |= event_add_tagv(ev, "e", idhex, "wss://relay.example.com", "root", NULL);
			r |= event_add_tagv(ev, "p", pubs[rnd(authors)], NULL);
		} else if (kind == 3) {
			unsigned m = 50 + rnd(200);
			for (unsigned k = 0; k < m; k++)
				r |= event_add_tagv(ev, "p", pubs[rnd(authors)], "wss://relay.example.com", NULL);
		} else if (kind == 5720) {
			r |= event_add_tagv(ev, "p", pubs[rnd(authors)], NULL);
			r |= event_add_tagv(ev, "encrypted", NULL);
		}
		if (r || event_sign(ev, keys[a]) != 0)
			return 1;
		char *json;
		size_t len;
		if (event_to_json(&json, &len, ev) != 0)
			return 1;
		fwrite(json, 1, len, stdout);
		fputc('\n', stdout);
		free(json);
		event_free(ev);
	}
	for (unsigned i = 0; i < authors; i++)
		keys_free(keys[i]);
	free(keys);
	free(pubs);
	return 0;
}

struct triple {
	secp256k1_xonly_pubkey pub;
	uint8_t id[32], sig[64];
};

static int bare(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 2;
	size_t cap = 1024, n = 0;
	struct triple *t = malloc(cap * sizeof *t);
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	const secp256k1_context *ctx = keys_ctx();
	while ((len = getline(&line, &lcap, f)) > 0) {
		struct event *ev;
		if (event_parse(&ev, NULL, line, (size_t)len) != 0)
			return 3;
		if (n == cap)
			t = realloc(t, (cap *= 2) * sizeof *t);
		if (!secp256k1_xonly_pubkey_parse(ctx, &t[n].pub, ev->pubkey))
			return 4;
		memcpy(t[n].id, ev->id, 32);
		memcpy(t[n].sig, ev->sig, 64);
		n++;
		event_free(ev);
	}
	free(line);
	fclose(f);
	double t0 = now_s();
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		ok += (size_t)secp256k1_schnorrsig_verify(ctx, t[i].sig, t[i].id, 32, &t[i].pub);
	double dt = now_s() - t0;
	printf("bare_verify_per_s %.0f (%zu/%zu valid, %.3f s)\n", (double)n / dt, ok, n, dt);
	free(t);
	return ok == n ? 0 : 5;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return gen(strtoul(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "bare"))
		return bare(argv[2]);
	fprintf(stderr, "usage: verify_tool gen N AUTHORS | bare FILE\n");
	return 2;
}
