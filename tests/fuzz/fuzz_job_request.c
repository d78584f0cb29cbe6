/*
 * fuzz_job_request: the job request parser (enclave/job.h), the parser of
 * untrusted input the enclave runs on every request addressed to it. The
 * first byte picks the layer:
 *   0  the bytes are a whole event (JSON): event_parse, then
 *      job_request_parse for the fixed service key (open policy);
 *   1  the bytes are the decrypted content of a private request: they are
 *      NIP-44-encrypted from a fixed client key to the service key, put in
 *      a 5720 with ["p", service] and ["encrypted"], and parsed (so the
 *      inner JSON-array-of-tags layer is reached);
 *   2  the bytes are tags, one per line, fields separated by TAB:
 *      job_tags_parse.
 * Invariants: success gives a spec within the caps; failure gives a
 * non-empty error text; nothing leaks (ASan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip44.h"
#include "enclave/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct keypair *service, *client;
static char service_hex[65];
static uint8_t ck[32];

static int url_check(void *arg, const char *url, char *why, size_t cap)
{
	(void)arg;
	if (strncmp(url, "https://", 8) && strncmp(url, "walrus:", 7)) {
		snprintf(why, cap, "URL scheme not supported");
		return APP_EREFUSED;
	}
	return 0;
}

static const struct job_policy pol = {8, 4, 1, url_check, NULL};

static void init(void)
{
	uint8_t s1[32], s2[32], pub[32];
	memset(s1, 0x11, 32);
	memset(s2, 0x22, 32);
	if (keys_from_secret(&service, s1) || keys_from_secret(&client, s2))
		abort();
	keys_pubkey(service, pub);
	hex_encode(service_hex, pub, 32);
	if (nip44_conversation_key(ck, client, pub))
		abort();
}

static void check(int r, struct job_spec *s, const char *err)
{
	if (r == 0) {
		if (!s || s->ndatasets < 1 || s->ndatasets > 8 || !s->ds[0].url)
			abort();
		job_spec_free(s);
	} else if (s || (r != APP_ENOTFOUND && !err[0])) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!service)
		init();
	if (size < 1)
		return 0;
	struct job_spec *s = NULL;
	char err[JOB_ERR_MAX];
	int mode = data[0] % 3;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	if (mode == 0) {
		struct event *ev = NULL;
		const char *why;
		if (event_parse(&ev, &why, (const char *)p, n) != 0)
			return 0;
		err[0] = 0;
		check(job_request_parse(&s, err, sizeof err, ev, service, &pol), s, err);
		event_free(ev);
	} else if (mode == 1) {
		struct event *ev = NULL;
		char *enc = NULL;
		size_t enclen;
		uint8_t nonce[32] = {0};
		if (n < 1 || n > NIP44_MAX_PLAINTEXT || nip44_encrypt(&enc, &enclen, ck, p, n, nonce) != 0)
			return 0;
		if (event_new(&ev, JOB_KIND_REQUEST, 1700000000, enc, enclen) == 0 &&
		    event_add_tagv(ev, "p", service_hex, NULL) == 0 && event_add_tagv(ev, "encrypted", NULL) == 0) {
			keys_pubkey(client, ev->pubkey);
			err[0] = 0;
			check(job_request_parse(&s, err, sizeof err, ev, service, &pol), s, err);
		}
		event_free(ev);
		free(enc);
	} else {
		/* tags: lines of TAB-separated fields (copied, NUL-terminated) */
		char *buf = malloc(n + 1);
		if (!buf)
			return 0;
		memcpy(buf, p, n);
		buf[n] = 0;
		const char *fields[512];
		const char *const *tags[JOB_MAX_TAGS + 8];
		size_t nf[JOB_MAX_TAGS + 8], ntags = 0, nfields = 0;
		char *line = buf;
		while (line && ntags < JOB_MAX_TAGS + 8 && nfields < 512) {
			char *next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			tags[ntags] = &fields[nfields];
			size_t k = 0;
			for (char *f = line; f && nfields < 512;) {
				char *tab = strchr(f, '\t');
				if (tab)
					*tab++ = 0;
				fields[nfields++] = f;
				k++;
				f = tab;
			}
			nf[ntags++] = k;
			line = next;
		}
		err[0] = 0;
		check(job_tags_parse(&s, err, sizeof err, tags, nf, ntags, &pol), s, err);
		free(buf);
	}
	return 0;
}
