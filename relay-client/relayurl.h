/*
 * relayurl.h: relay URLs (ws:// and wss://) and connect addresses.
 *
 * A relay is named by its URL (what goes into NIP-42 relay tags, the Host
 * header, TLS SNI and the certificate host-name check) and may be reached at
 * another address (DESIGN §2: the enclave connects to a local bridge port on
 * 127.0.0.1 that makes the SOCKS5 CONNECT; Debian's libwebsockets 4.1.6 has
 * no proxy support).
 */
#ifndef RELAY_CLIENT_RELAYURL_H
#define RELAY_CLIENT_RELAYURL_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define RELAYURL_MAX 512      /* bytes of a relay URL */
#define RELAYURL_HOST_MAX 253 /* bytes of a host name (DNS limit) */

struct relayurl {
	int tls;                          /* 1 for wss:// */
	char host[RELAYURL_HOST_MAX + 1]; /* lowercase name or IP literal, IPv6 without brackets */
	uint16_t port;                    /* explicit, else 80 (ws) or 443 (wss) */
	char path[RELAYURL_MAX + 1];      /* "/" when absent; includes any ?query */
	char hostport[RELAYURL_HOST_MAX + 10]; /* Host header: host ([v6]) plus ":port" when not the default */
};

/*
 * relayurl_parse: "ws[s]://host[:port][/path][?query]". The scheme and
 * host are case-insensitive (stored lowercase); the host is a DNS name
 * (letters, digits, '-', '.'), a dotted IPv4 address or a bracketed IPv6
 * literal; user info, fragments, spaces and control characters are refused.
 * Returns 0 or APP_EINVAL (with *reason, a static text; reason may be NULL).
 */
int relayurl_parse(struct relayurl *out, const char **reason, const char *url) APP_WUR;

/*
 * relayurl_parse_hostport: "host:port" or "[v6]:port" (a connect address)
 * into host (cap bytes incl. NUL) and *port (1..65535).
 * Returns 0 or APP_EINVAL.
 */
int relayurl_parse_hostport(char *host, size_t cap, uint16_t *port, const char *text) APP_WUR;

#endif
