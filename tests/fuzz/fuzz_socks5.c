/*
 * fuzz_socks5: the SOCKS5 parsers (appliance/socks5.h, RFC 1928) on bytes
 * from either side: the proxy's greeting and request parsers (what the
 * enclave sends the parent) and the bridge's choice and reply parsers (what
 * the parent sends the enclave). Every prefix of the input must be either a
 * valid prefix (EAGAIN) or the same verdict as the whole; a parsed request
 * must re-encode (as a client would send it) to something that parses to
 * the same destination.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t used = 0, used2 = 0;
	int noauth = 0;
	uint8_t rep = 0;
	struct socks5_request rq, rq2;
	int g = socks5_parse_greeting(data, size, &used, &noauth);
	if (g == 0 && (used > size || used < 3))
		abort();
	/* the request after a complete greeting, as the proxy reads them */
	const uint8_t *rp = g == 0 ? data + used : data;
	size_t rl = g == 0 ? size - used : size;
	int r = socks5_parse_request(&rq, rp, rl, &used2);
	if (r == 0 || r == APP_EUNSUPPORTED) {
		if (used2 > rl)
			abort();
		/* a shorter prefix never completes */
		if (used2 > 0) {
			size_t u3 = 0;
			struct socks5_request t;
			int r2 = socks5_parse_request(&t, rp, used2 - 1, &u3);
			if (r2 == 0)
				abort();
		}
	}
	if (r == 0) {
		uint8_t b[SOCKS5_CONNECT_MAX];
		size_t n = 0;
		if (rq.cmd != SOCKS5_CMD_CONNECT || rq.host[0] == 0)
			abort();
		if (rq.port != 0) {
			if (socks5_encode_connect(b, sizeof b, &n, rq.host, rq.port) != 0)
				abort();
			if (socks5_parse_request(&rq2, b + 3, n - 3, &used) != 0 || strcmp(rq.host, rq2.host) != 0 ||
			    rq.port != rq2.port)
				abort();
		}
	}
	/* the client side */
	(void)socks5_parse_choice(data, size, &used);
	if (socks5_parse_reply(&rep, data, size, &used) == 0 && used > size)
		abort();
	(void)socks5_host_valid((const char *)data, size);
	return 0;
}
