/*
 * relay_bench_gen: helper for bench_relay.sh.
 *   relay_bench_gen N AUTHORS   writes N signed regular events (kind 1 notes with e/p/t tags
 *                               and ~200-400 bytes of mixed-script text) as JSON lines, by
 *                               AUTHORS keys, created_at spread over the last N seconds
 *                               (distinct, so a relay stores and returns every one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"

static const char *const words[] = {"nostr", "relay", "zap", "sats", "enclave", "model", "training", "lightning",
				    "gm", "pura vida", "✓", "🍕", "ñandú", "日本語", "\"quoted\"", "line\nbreak",
				    "tab\there", "https://example.com/a?b=c", "#bitcoin", "🤙"};

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: relay_bench_gen N AUTHORS\n");
		return 2;
	}
	char *e1, *e2;
	long n = strtol(argv[1], &e1, 10), na = strtol(argv[2], &e2, 10);
	if (*e1 || *e2 || n <= 0 || n > 10000000 || na <= 0 || na > 10000) {
		fprintf(stderr, "relay_bench_gen: bad arguments\n");
		return 2;
	}
	struct keypair **keys = calloc((size_t)na, sizeof *keys);
	if (!keys)
		return 1;
	for (long i = 0; i < na; i++)
		if (keys_generate(&keys[i]) != 0)
			return 1;
	uint64_t now = (uint64_t)time(NULL);
	uint8_t prev[32] = {0}, pub[32];
	char text[1024], hexid[65], hexpub[65];
	static char outbuf[1 << 16];
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	int rc = 0;
	for (long i = 0; i < n && rc == 0; i++) {
		uint32_t r;
		keys_random(&r, sizeof r);
		size_t len = 0, target = 200 + r % 200;
		text[0] = 0;
		while (len < target) {
			uint32_t w;
			keys_random(&w, sizeof w);
			const char *s = words[w % (sizeof words / sizeof words[0])];
			size_t l = strlen(s);
			if (len + l + 2 >= sizeof text)
				break;
			memcpy(text + len, s, l);
			len += l;
			text[len++] = ' ';
		}
		text[len] = 0;
		struct event *ev = NULL;
		const struct keypair *kp = keys[i % na];
		keys_pubkey(keys[(i + 1) % na], pub);
		hex_encode(hexid, prev, 32);
		hex_encode(hexpub, pub, 32);
		char *json = NULL;
		size_t jl;
		if (event_new(&ev, 1, now - (uint64_t)n + (uint64_t)i, text, len) != 0 ||
		    event_add_tagv(ev, "e", hexid, "", "reply", NULL) != 0 || event_add_tagv(ev, "p", hexpub, NULL) != 0 ||
		    event_add_tagv(ev, "t", "bench", NULL) != 0 || event_sign(ev, kp) != 0 ||
		    event_to_json(&json, &jl, ev) != 0) {
			rc = 1;
		} else {
			memcpy(prev, ev->id, 32);
			fwrite(json, 1, jl, stdout);
			fputc('\n', stdout);
		}
		free(json);
		event_free(ev);
	}
	for (long i = 0; i < na; i++)
		keys_free(keys[i]);
	free(keys);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}
