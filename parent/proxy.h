/*
 * proxy.h: the parent's egress proxy (DESIGN §2; PROTOCOL.md "Parent ↔
 * enclave channel", egress service): a SOCKS5 server (RFC 1928: no
 * authentication, CONNECT only, IPv4 / IPv6 / domain address types; strict
 * parsing, appliance/socks5.h) listening on the channel. Every outbound TCP
 * connection of the enclave passes here; TLS runs end to end from inside the
 * enclave, so the proxy sees ciphertext only.
 *
 * Policy, checked before any connection is made:
 *   - deny by default: the requested host (the domain name as sent, or the
 *     IP literal) and port must match an allow rule from the configuration:
 *     "HOST:PORT", "HOST:*", "*.SUFFIX:PORT" (any name ending in .SUFFIX,
 *     not SUFFIX itself), "*:PORT", "[V6]:PORT". Names compare
 *     case-insensitively. Refused: REP 0x02 "connection not allowed by
 *     ruleset".
 *   - domain names are resolved by the parent (getaddrinfo); unless
 *     allow_private is set, addresses in loopback, RFC 1918, CGNAT,
 *     link-local (169.254.0.0/16: the EC2 instance metadata service),
 *     unique-local, multicast and reserved ranges are skipped, so an allowed
 *     name that resolves to the host's own services is refused (REP 0x02).
 *   - caps: max_connections at once (more are closed at accept and
 *     counted), max_bytes per connection and direction (the connection is
 *     closed when passed), handshake, connect and idle timeouts.
 * A malformed greeting or request is answered when RFC 1928 has a code for
 * it (0x01 general failure, 0x07 command, 0x08 address type), the
 * connection dropped and counted; it never affects other connections.
 *
 * One log line per connection when it ends:
 *   event=egress conn=N dest=HOST:PORT verdict=allowed|denied|failed|malformed
 *   reason=TEXT bytes_up=N bytes_down=N duration_ms=N
 * (bytes_up: enclave -> destination). No content is ever logged.
 *
 * Threads: proxy_serve runs the accept loop on the caller's thread and one
 * thread per connection; everything else is thread-safe.
 */
#ifndef PARENT_PROXY_H
#define PARENT_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/socks5.h"

#define PROXY_RULES_MAX 256
#define PROXY_RULE_TEXT_MAX (SOCKS5_HOST_MAX + 10)
#define PROXY_MAX_CONNECTIONS 4096 /* upper bound of max_connections */
#define PROXY_BUF_MIN 4096
#define PROXY_BUF_MAX (4u << 20)

struct proxy_rule {
	char host[SOCKS5_HOST_MAX + 1]; /* lowercase name, IP literal, or the SUFFIX of "*.SUFFIX" */
	int any_host;                   /* "*" */
	int suffix;                     /* "*.SUFFIX" */
	uint16_t port;
	int any_port;                   /* ":*" */
};

struct proxy_config {
	struct proxy_rule rules[PROXY_RULES_MAX];
	size_t nrules;
	size_t max_connections;        /* concurrent; 1..PROXY_MAX_CONNECTIONS (default 64) */
	uint64_t max_bytes;            /* per connection and direction (default 1 GiB) */
	unsigned handshake_timeout_ms; /* greeting + request (default 10000) */
	unsigned connect_timeout_ms;   /* per resolved address (default 10000) */
	unsigned idle_timeout_ms;      /* no byte either way (default 300000) */
	size_t buf_size;               /* bytes per direction (default 256 KiB) */
	int allow_private;             /* permit loopback/private/link-local destinations (tests, dev) */
};

struct proxy_stats {
	uint64_t accepted;     /* connections accepted */
	uint64_t active;       /* open now */
	uint64_t allowed;      /* CONNECT succeeded */
	uint64_t denied;       /* refused by the allowlist or the private-address rule, or no no-auth method */
	uint64_t malformed;    /* broken greeting or request, or a timeout during them */
	uint64_t failed;       /* allowed, but resolution or connection failed */
	uint64_t busy;         /* closed at accept: max_connections reached */
	uint64_t capped;       /* closed for passing max_bytes */
	uint64_t bytes_up;     /* enclave -> destination */
	uint64_t bytes_down;   /* destination -> enclave */
};

struct proxy;

/* proxy_config_default: empty allowlist (everything denied) and the defaults above. */
void proxy_config_default(struct proxy_config *c);

/*
 * proxy_rule_parse: one allow rule (syntax above; at most
 * PROXY_RULE_TEXT_MAX bytes). Returns 0 or APP_EINVAL.
 */
int proxy_rule_parse(struct proxy_rule *out, const char *text) APP_WUR;

/*
 * proxy_allowed: 1 when host (a lowercase name as parsed by socks5.h, or an
 * IP literal without brackets) and port match a rule of c, else 0.
 */
int proxy_allowed(const struct proxy_config *c, const char *host, uint16_t port);

/*
 * proxy_addr_private: 1 when the address (AF_INET / AF_INET6 sockaddr) is
 * in a range refused without allow_private (see above), else 0.
 */
int proxy_addr_private(const void *sockaddr);

/*
 * proxy_new: a proxy with a copy of cfg. Returns 0; APP_EINVAL (a cap out of
 * range); APP_ENOMEM.
 */
int proxy_new(struct proxy **out, const struct proxy_config *cfg) APP_WUR;

/*
 * proxy_serve: accepts on listen_fd until stop_fd is readable (never read:
 * a pipe or eventfd that stays readable), one thread per connection; on stop,
 * every connection is closed and joined before it returns. Returns 0 when
 * stopped, APP_EIO when poll/accept fails for good.
 */
int proxy_serve(struct proxy *p, int listen_fd, int stop_fd) APP_WUR;

/*
 * proxy_handle: serves one accepted connection fd on the calling thread
 * (owns and closes fd), honouring stop_fd (-1 = none). Used by proxy_serve
 * and by tests.
 */
void proxy_handle(struct proxy *p, int fd, int stop_fd);

/* proxy_get_stats: a snapshot of the counters. */
void proxy_get_stats(struct proxy *p, struct proxy_stats *out);

/* proxy_free: frees (call after proxy_serve returned); NULL is a no-op. */
void proxy_free(struct proxy *p);

#endif
