/*
 * egress.h: the enclave's egress bridge (DESIGN §2): how code inside the
 * enclave reaches the network, which it can only do through the parent's
 * egress service (SOCKS5 over the channel: parent/proxy.h).
 *
 * Debian's libwebsockets 4.1.6 has no SOCKS support, so the bridge offers
 * local TCP listeners on 127.0.0.1 inside the enclave:
 *   - upstream listeners, one per "host:port": each accepted connection
 *     opens a channel connection to the parent's egress service, sends the
 *     SOCKS5 greeting and a CONNECT for that host:port (domain names are
 *     resolved by the parent), checks the reply strictly (socks5.h) and then
 *     copies bytes both ways. The relay pool uses one per relay:
 *     relay_pool_add_relay(pool, NULL, url, "127.0.0.1:PORT"), keeping the
 *     URL's host for Host, SNI and the certificate check;
 *   - a SOCKS5 passthrough listener for libcurl (CURLOPT_PROXY
 *     "socks5h://127.0.0.1:PORT"): the client's own SOCKS5 handshake goes to
 *     the parent unchanged, so curl sees the parent's real reply codes
 *     ("connection not allowed by ruleset").
 * A refusal by the parent closes the local connection and is logged:
 *   event=egress_refused upstream=HOST:PORT rep=2 reason="connection not allowed by ruleset"
 * A parent that answers with anything but a well-formed RFC 1928 reply is
 * counted (malformed) and the connection dropped.
 *
 * One thread (poll), at most max_conns connections (more are closed at
 * accept), two buffers of buf_size bytes per connection. Listeners may be
 * added before or after egress_start (thread-safe).
 *
 * egress_lo_up brings the loopback interface up (SIOCSIFFLAGS): a Nitro
 * enclave, like the dev-mode network namespace, starts with `lo` down.
 */
#ifndef ENCLAVE_EGRESS_H
#define ENCLAVE_EGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define EGRESS_MAX_LISTENERS 64
#define EGRESS_MAX_CONNS 1024 /* upper bound of max_conns */

struct egress_opts {
	const char *parent;           /* channel address of the parent's egress service (channel.h) */
	size_t max_conns;             /* default 128 */
	size_t buf_size;              /* per direction, 4 KiB..4 MiB (default 256 KiB) */
	unsigned handshake_timeout_ms; /* channel connect + SOCKS5 reply (default 15000) */
};

struct egress_stats {
	uint64_t accepted, active, busy;
	uint64_t parent_failures;   /* the parent's egress service could not be reached */
	uint64_t refused;           /* the parent answered with a failure code */
	uint64_t malformed;         /* the parent's answer broke RFC 1928 */
	uint64_t timeouts;          /* handshake timeouts */
	uint64_t bytes_up, bytes_down;
};

struct egress;

/* egress_opts_default: NULL parent and the defaults above. */
void egress_opts_default(struct egress_opts *o);

/*
 * egress_new: a bridge to the parent at o->parent. Returns 0; APP_EINVAL
 * (bad address or option); APP_EIO (no wake pipe); APP_ENOMEM.
 */
int egress_new(struct egress **out, const struct egress_opts *o) APP_WUR;

/*
 * egress_add_upstream: a listener on 127.0.0.1 (a free port) bound to
 * host:port (host: a domain name, IPv4 literal or IPv6 literal); the same
 * host:port again returns the existing listener's port. Returns 0 with
 * *local_port; APP_EINVAL; APP_ELIMIT (EGRESS_MAX_LISTENERS); APP_EIO.
 */
int egress_add_upstream(struct egress *e, const char *host, uint16_t port, uint16_t *local_port) APP_WUR;

/* egress_add_socks: the SOCKS5 passthrough listener (one per bridge; again returns the same port). */
int egress_add_socks(struct egress *e, uint16_t *local_port) APP_WUR;

/*
 * egress_connect_to: for a relay URL (ws:// or wss://), the connect address
 * "127.0.0.1:PORT" of its upstream listener (added when missing) into
 * out[0..cap). Returns 0; the errors of egress_add_upstream; APP_EINVAL (bad
 * URL); APP_ETOOBIG (cap).
 */
int egress_connect_to(struct egress *e, const char *url, char *out, size_t cap) APP_WUR;

/* egress_start: starts the bridge thread. Returns 0, APP_ESTATE (already started), APP_EINTERNAL. */
int egress_start(struct egress *e) APP_WUR;

/* egress_get_stats: a snapshot. */
void egress_get_stats(struct egress *e, struct egress_stats *out);

/* egress_free: stops the thread, closes every connection and listener, frees; NULL is a no-op. */
void egress_free(struct egress *e);

/*
 * egress_set_default: makes e the process-wide bridge used by
 * egress_default_connect_to (appliance-enclave sets it once at start; NULL
 * clears it). Not thread-safe against concurrent egress_default_connect_to:
 * set it before the threads that use it start.
 */
void egress_set_default(struct egress *e);

/*
 * egress_default_connect_to: the connect_to address for relay URL `url`
 * through the default bridge, written into buf[0..cap), for
 *   relay_pool_add_relay(pool, NULL, url, egress_default_connect_to(url, ct, sizeof ct));
 * Returns buf, or NULL when there is no default bridge (a process run without
 * a parent: tests, tools) or the URL cannot be bridged (the relay pool then
 * refuses the URL itself or connects directly, which fails inside an enclave).
 */
const char *egress_default_connect_to(const char *url, char *buf, size_t cap);

/*
 * egress_lo_up: sets IFF_UP on "lo" (ioctl SIOCGIFFLAGS/SIOCSIFFLAGS; needs
 * CAP_NET_ADMIN in the network namespace). Returns 0 (also when it was up);
 * APP_EIO with errno kept.
 */
int egress_lo_up(void) APP_WUR;

#endif
