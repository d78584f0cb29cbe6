/*
 * socks5.h: the SOCKS Protocol Version 5 subset the appliance speaks
 * (RFC 1928): no authentication (method 0x00), CONNECT only, address types
 * IPv4 (0x01), DOMAINNAME (0x03) and IPv6 (0x04). Pure codecs, no I/O: the
 * parent's egress proxy parses greetings and requests (untrusted bytes from
 * the enclave: fuzzed), the enclave's bridge encodes them and parses the
 * parent's replies (untrusted too).
 *
 * Wire shapes (RFC 1928 §3, §4, §6):
 *   greeting  VER=5 | NMETHODS (1..255) | METHODS[NMETHODS]
 *   choice    VER=5 | METHOD (0x00 no auth, 0xFF none acceptable)
 *   request   VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT (u16 BE)
 *             DST.ADDR: 4 bytes (IPv4), 16 bytes (IPv6), or LEN (1..255) +
 *             LEN bytes of a domain name (no terminating NUL)
 *   reply     VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT
 *
 * Strictness beyond the RFC (documented in PROTOCOL.md): a domain name is
 * 1..253 bytes of letters, digits, '-', '_' and '.', with no empty label
 * and no label over 63 bytes (case folded to lowercase); RSV must be 0; a
 * greeting must offer at least one method. Parsers are incremental: they
 * return APP_EAGAIN while the bytes seen so far are a valid prefix.
 */
#ifndef APPLIANCE_SOCKS5_H
#define APPLIANCE_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SOCKS5_VER 5
#define SOCKS5_METHOD_NOAUTH 0x00
#define SOCKS5_METHOD_NONE 0xFF
#define SOCKS5_CMD_CONNECT 1
#define SOCKS5_ATYP_IPV4 1
#define SOCKS5_ATYP_DOMAIN 3
#define SOCKS5_ATYP_IPV6 4
#define SOCKS5_HOST_MAX 253      /* bytes of a domain name we accept */
#define SOCKS5_GREETING_MAX 257  /* 2 + 255 methods */
#define SOCKS5_REQUEST_MAX 262   /* 4 + 1 + 255 + 2 */
#define SOCKS5_REPLY_MAX 262     /* a reply may carry a domain BND.ADDR */
#define SOCKS5_CONNECT_MAX (3 + SOCKS5_REQUEST_MAX) /* greeting + request, as the bridge sends them */

/* Reply codes (REP), RFC 1928 §6. */
enum socks5_rep {
	SOCKS5_REP_SUCCEEDED = 0x00,
	SOCKS5_REP_GENERAL_FAILURE = 0x01,
	SOCKS5_REP_NOT_ALLOWED = 0x02, /* connection not allowed by ruleset */
	SOCKS5_REP_NET_UNREACHABLE = 0x03,
	SOCKS5_REP_HOST_UNREACHABLE = 0x04,
	SOCKS5_REP_CONN_REFUSED = 0x05,
	SOCKS5_REP_TTL_EXPIRED = 0x06,
	SOCKS5_REP_CMD_UNSUPPORTED = 0x07,
	SOCKS5_REP_ATYP_UNSUPPORTED = 0x08,
};

/* A parsed CONNECT request. */
struct socks5_request {
	uint8_t cmd;  /* always SOCKS5_CMD_CONNECT on success */
	uint8_t atyp; /* SOCKS5_ATYP_* */
	char host[SOCKS5_HOST_MAX + 1]; /* lowercase domain name, or the IP literal in text form (IPv6 without brackets) */
	uint8_t addr[16]; /* the address bytes for IPv4 (4) and IPv6 (16) */
	uint16_t port;    /* DST.PORT, host order */
};

/* socks5_rep_text: RFC 1928's meaning of a reply code ("connection not allowed by ruleset"); "unassigned" otherwise. */
const char *socks5_rep_text(uint8_t rep);

/*
 * socks5_parse_greeting: the client's method selection message in
 * buf[0..len). Returns 0 with *consumed and *noauth (1 when method 0x00 is
 * offered); APP_EAGAIN (incomplete); APP_EVERSION (VER != 5); APP_EPARSE
 * (NMETHODS = 0).
 */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed, int *noauth) APP_WUR;

/*
 * socks5_parse_request: a request in buf[0..len). Returns 0 with *out and
 * *consumed; APP_EAGAIN (incomplete); APP_EVERSION (VER != 5); APP_EPARSE
 * (RSV != 0, domain length 0 or a bad domain name: answer
 * SOCKS5_REP_GENERAL_FAILURE); APP_EUNSUPPORTED with out->cmd set (CMD not
 * CONNECT: answer SOCKS5_REP_CMD_UNSUPPORTED) or with out->atyp set (unknown
 * ATYP: answer SOCKS5_REP_ATYP_UNSUPPORTED). The command is checked only
 * once the whole request is parsed, so *consumed is valid for it too.
 */
int socks5_parse_request(struct socks5_request *out, const uint8_t *buf, size_t len, size_t *consumed) APP_WUR;

/*
 * socks5_encode_reply: a reply with code rep and BND.ADDR 0.0.0.0:0 (the
 * proxy does not reveal the address it connected from) into out[0..10).
 * Returns 10.
 */
size_t socks5_encode_reply(uint8_t out[10], uint8_t rep);

/*
 * socks5_encode_connect: the client side's greeting (no auth only) followed
 * by a CONNECT request for host:port, into out[0..cap) (*len set). host is
 * an IPv4 literal (ATYP 1), an IPv6 literal with or without brackets (ATYP
 * 4), or a domain name (ATYP 3; validated as above). Returns 0; APP_EINVAL
 * (bad host, port 0); APP_ETOOBIG (cap too small: SOCKS5_CONNECT_MAX is
 * always enough).
 */
int socks5_encode_connect(uint8_t *out, size_t cap, size_t *len, const char *host, uint16_t port) APP_WUR;

/*
 * socks5_parse_choice: the server's method choice. Returns 0 (no auth
 * chosen, *consumed = 2); APP_EAGAIN; APP_EREFUSED (0xFF: no acceptable
 * method); APP_EPROTO (VER != 5 or any other method).
 */
int socks5_parse_choice(const uint8_t *buf, size_t len, size_t *consumed) APP_WUR;

/*
 * socks5_parse_reply: the server's reply to a CONNECT. Returns 0 with *rep
 * (SOCKS5_REP_SUCCEEDED or a failure code: the caller decides) and
 * *consumed; APP_EAGAIN; APP_EPROTO (VER != 5, RSV != 0, unknown ATYP, a
 * zero-length domain).
 */
int socks5_parse_reply(uint8_t *rep, const uint8_t *buf, size_t len, size_t *consumed) APP_WUR;

/*
 * socks5_host_valid: 1 when name[0..len) is a domain name we accept
 * (letters, digits, '-', '_', '.'; 1..253 bytes; labels 1..63), else 0.
 */
int socks5_host_valid(const char *name, size_t len);

#endif
