/* relayurl.c: ws:// and wss:// URLs, host:port connect addresses. */
#include "relayurl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define FAIL(text)                     \
	do {                           \
		if (reason)            \
			*reason = (text); \
		return APP_EINVAL;     \
	} while (0)

static int parse_port(uint16_t *port, const char *p, size_t n)
{
	if (n == 0 || n > 5)
		return APP_EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return APP_EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return APP_EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* parse_host: host[:port] in s[0..n) (no path); lowercase copy into host. */
static int parse_host(char *host, size_t cap, uint16_t *port, int *has_port, const char *s, size_t n,
		      const char **reason)
{
	size_t hl;
	const char *h, *rest;
	*has_port = 0;
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			FAIL("IPv6 literal without ']'");
		h = s + 1;
		hl = (size_t)(close - h);
		for (size_t i = 0; i < hl; i++)
			if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f') ||
			      (h[i] >= 'A' && h[i] <= 'F') || h[i] == ':' || h[i] == '.'))
				FAIL("bad character in IPv6 literal");
		if (hl < 2)
			FAIL("empty IPv6 literal");
		rest = close + 1;
	} else {
		const char *colon = memchr(s, ':', n);
		h = s;
		hl = colon ? (size_t)(colon - s) : n;
		for (size_t i = 0; i < hl; i++)
			if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'z') ||
			      (h[i] >= 'A' && h[i] <= 'Z') || h[i] == '-' || h[i] == '.'))
				FAIL("bad character in host name");
		rest = h + hl;
	}
	if (hl == 0)
		FAIL("empty host");
	if (hl >= cap || hl > RELAYURL_HOST_MAX)
		FAIL("host name too long");
	size_t restn = n - (size_t)(rest - s);
	if (restn) {
		if (rest[0] != ':' || parse_port(port, rest + 1, restn - 1) != 0)
			FAIL("bad port");
		*has_port = 1;
	}
	for (size_t i = 0; i < hl; i++)
		host[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] - 'A' + 'a') : h[i];
	host[hl] = 0;
	return 0;
}

int relayurl_parse(struct relayurl *out, const char **reason, const char *url)
{
	memset(out, 0, sizeof *out);
	if (!url)
		FAIL("no URL");
	size_t len = strnlen(url, RELAYURL_MAX + 1);
	if (len > RELAYURL_MAX)
		FAIL("URL too long");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			FAIL("space, control or non-ASCII character in URL");
	const char *p;
	if (!strncasecmp(url, "wss://", 6)) {
		out->tls = 1;
		p = url + 6;
	} else if (!strncasecmp(url, "ws://", 5)) {
		p = url + 5;
	} else {
		FAIL("not a ws:// or wss:// URL");
	}
	if (strchr(p, '#'))
		FAIL("URL has a fragment");
	size_t auth_len = strcspn(p, "/?");
	if (memchr(p, '@', auth_len))
		FAIL("URL has user info");
	int has_port;
	out->port = out->tls ? 443 : 80;
	if (parse_host(out->host, sizeof out->host, &out->port, &has_port, p, auth_len, reason) != 0)
		return APP_EINVAL;
	const char *path = p + auth_len;
	int n;
	if (*path == '/')
		n = snprintf(out->path, sizeof out->path, "%s", path);
	else
		n = snprintf(out->path, sizeof out->path, "/%s", path);
	if (n < 0 || (size_t)n >= sizeof out->path)
		FAIL("path too long");
	int v6 = strchr(out->host, ':') != NULL;
	int dflt = out->port == (out->tls ? 443 : 80);
	n = snprintf(out->hostport, sizeof out->hostport, "%s%s%s", v6 ? "[" : "", out->host, v6 ? "]" : "");
	if (n > 0 && !dflt && (size_t)n < sizeof out->hostport)
		n += snprintf(out->hostport + n, sizeof out->hostport - (size_t)n, ":%u", out->port);
	if (n < 0 || (size_t)n >= sizeof out->hostport)
		FAIL("host too long");
	return 0;
}

int relayurl_parse_hostport(char *host, size_t cap, uint16_t *port, const char *text)
{
	const char **reason = NULL;
	if (!text)
		FAIL("no address");
	size_t n = strnlen(text, RELAYURL_HOST_MAX + 10);
	if (n > RELAYURL_HOST_MAX + 8)
		FAIL("address too long");
	int has_port;
	if (parse_host(host, cap, port, &has_port, text, n, reason) != 0 || !has_port)
		return APP_EINVAL;
	return 0;
}
