/*
 * socks5.c: RFC 1928 codecs (socks5.h).
 */
#include "appliance/socks5.h"

#include <arpa/inet.h>
#include <string.h>

const char *socks5_rep_text(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_SUCCEEDED:
		return "succeeded";
	case SOCKS5_REP_GENERAL_FAILURE:
		return "general SOCKS server failure";
	case SOCKS5_REP_NOT_ALLOWED:
		return "connection not allowed by ruleset";
	case SOCKS5_REP_NET_UNREACHABLE:
		return "network unreachable";
	case SOCKS5_REP_HOST_UNREACHABLE:
		return "host unreachable";
	case SOCKS5_REP_CONN_REFUSED:
		return "connection refused";
	case SOCKS5_REP_TTL_EXPIRED:
		return "TTL expired";
	case SOCKS5_REP_CMD_UNSUPPORTED:
		return "command not supported";
	case SOCKS5_REP_ATYP_UNSUPPORTED:
		return "address type not supported";
	default:
		return "unassigned";
	}
}

int socks5_host_valid(const char *name, size_t len)
{
	size_t label = 0;
	if (len == 0 || len > SOCKS5_HOST_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0; /* no empty last label (a trailing dot) */
}

int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed, int *noauth)
{
	if (len < 1)
		return APP_EAGAIN;
	if (buf[0] != SOCKS5_VER)
		return APP_EVERSION;
	if (len < 2)
		return APP_EAGAIN;
	size_t n = buf[1];
	if (n == 0)
		return APP_EPARSE;
	if (n > len - 2)
		return APP_EAGAIN;
	*noauth = memchr(buf + 2, SOCKS5_METHOD_NOAUTH, n) != NULL;
	*consumed = 2 + n;
	return 0;
}

/* parse_addr: ATYP + address + port at buf[3..len); sets atyp/host/addr/port and *end. */
static int parse_addr(struct socks5_request *out, const uint8_t *buf, size_t len, size_t *end, int *unsupported)
{
	size_t p = 4, alen;
	*unsupported = 0;
	out->atyp = buf[3];
	switch (buf[3]) {
	case SOCKS5_ATYP_IPV4:
		alen = 4;
		break;
	case SOCKS5_ATYP_IPV6:
		alen = 16;
		break;
	case SOCKS5_ATYP_DOMAIN:
		if (len < 5)
			return APP_EAGAIN;
		alen = buf[4];
		if (alen == 0)
			return APP_EPARSE;
		p = 5;
		break;
	default:
		*unsupported = 1;
		return APP_EUNSUPPORTED;
	}
	if (len - p < alen + 2)
		return APP_EAGAIN;
	if (buf[3] == SOCKS5_ATYP_DOMAIN) {
		if (!socks5_host_valid((const char *)buf + p, alen))
			return APP_EPARSE;
		for (size_t i = 0; i < alen; i++) {
			char c = (char)buf[p + i];
			out->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		out->host[alen] = 0;
	} else {
		memcpy(out->addr, buf + p, alen);
		if (!inet_ntop(alen == 4 ? AF_INET : AF_INET6, out->addr, out->host, sizeof out->host))
			return APP_EPARSE;
	}
	p += alen;
	out->port = (uint16_t)(buf[p] << 8 | buf[p + 1]);
	*end = p + 2;
	return 0;
}

int socks5_parse_request(struct socks5_request *out, const uint8_t *buf, size_t len, size_t *consumed)
{
	size_t end = 0;
	int r, unsupported = 0;
	memset(out, 0, sizeof *out);
	if (len < 1)
		return APP_EAGAIN;
	if (buf[0] != SOCKS5_VER)
		return APP_EVERSION;
	if (len < 4)
		return APP_EAGAIN;
	out->cmd = buf[1];
	if (buf[2] != 0)
		return APP_EPARSE;
	if ((r = parse_addr(out, buf, len, &end, &unsupported)) != 0)
		return r;
	*consumed = end;
	if (out->cmd != SOCKS5_CMD_CONNECT)
		return APP_EUNSUPPORTED;
	return 0;
}

size_t socks5_encode_reply(uint8_t out[10], uint8_t rep)
{
	static const uint8_t tail[7] = {SOCKS5_ATYP_IPV4, 0, 0, 0, 0, 0, 0};
	out[0] = SOCKS5_VER;
	out[1] = rep;
	out[2] = 0;
	memcpy(out + 3, tail, sizeof tail);
	return 10;
}

int socks5_encode_connect(uint8_t *out, size_t cap, size_t *len, const char *host, uint16_t port)
{
	uint8_t a[16];
	char h[SOCKS5_HOST_MAX + 1];
	size_t hl, n = 0;
	if (!host || port == 0)
		return APP_EINVAL;
	hl = strlen(host);
	if (hl > SOCKS5_HOST_MAX)
		return APP_EINVAL;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memcpy(h, host + 1, hl - 2);
		h[hl - 2] = 0;
	} else {
		memcpy(h, host, hl + 1);
	}
	int atyp;
	size_t alen, need;
	if (inet_pton(AF_INET, h, a) == 1) {
		atyp = SOCKS5_ATYP_IPV4;
		alen = 4;
	} else if (inet_pton(AF_INET6, h, a) == 1) {
		atyp = SOCKS5_ATYP_IPV6;
		alen = 16;
	} else {
		atyp = SOCKS5_ATYP_DOMAIN;
		alen = strlen(h);
		if (!socks5_host_valid(h, alen))
			return APP_EINVAL;
	}
	need = 3 + 4 + (atyp == SOCKS5_ATYP_DOMAIN ? 1u : 0u) + alen + 2;
	if (cap < need)
		return APP_ETOOBIG;
	out[n++] = SOCKS5_VER;
	out[n++] = 1;
	out[n++] = SOCKS5_METHOD_NOAUTH;
	out[n++] = SOCKS5_VER;
	out[n++] = SOCKS5_CMD_CONNECT;
	out[n++] = 0;
	out[n++] = (uint8_t)atyp;
	if (atyp == SOCKS5_ATYP_DOMAIN) {
		out[n++] = (uint8_t)alen;
		memcpy(out + n, h, alen);
	} else {
		memcpy(out + n, a, alen);
	}
	n += alen;
	out[n++] = (uint8_t)(port >> 8);
	out[n++] = (uint8_t)port;
	*len = n;
	return 0;
}

int socks5_parse_choice(const uint8_t *buf, size_t len, size_t *consumed)
{
	if (len < 2)
		return len == 1 && buf[0] != SOCKS5_VER ? APP_EPROTO : APP_EAGAIN;
	if (buf[0] != SOCKS5_VER)
		return APP_EPROTO;
	if (buf[1] == SOCKS5_METHOD_NONE)
		return APP_EREFUSED;
	if (buf[1] != SOCKS5_METHOD_NOAUTH)
		return APP_EPROTO;
	*consumed = 2;
	return 0;
}

int socks5_parse_reply(uint8_t *rep, const uint8_t *buf, size_t len, size_t *consumed)
{
	size_t need;
	if (len >= 1 && buf[0] != SOCKS5_VER)
		return APP_EPROTO;
	if (len >= 3 && buf[2] != 0)
		return APP_EPROTO;
	if (len < 4)
		return APP_EAGAIN;
	switch (buf[3]) {
	case SOCKS5_ATYP_IPV4:
		need = 4 + 4 + 2;
		break;
	case SOCKS5_ATYP_IPV6:
		need = 4 + 16 + 2;
		break;
	case SOCKS5_ATYP_DOMAIN:
		if (len < 5)
			return APP_EAGAIN;
		if (buf[4] == 0)
			return APP_EPROTO;
		need = 5 + (size_t)buf[4] + 2;
		break;
	default:
		return APP_EPROTO;
	}
	if (len < need)
		return APP_EAGAIN;
	*rep = buf[1];
	*consumed = need;
	return 0;
}
