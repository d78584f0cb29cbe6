#include "jscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void jscan_init(struct jscan *s, const char *text, size_t len)
{
	s->p = text;
	s->end = text + len;
	s->depth = 0;
	s->err = "ok";
}

size_t jscan_remaining(const struct jscan *s)
{
	return (size_t)(s->end - s->p);
}

static void skip_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

int jscan_peek(struct jscan *s)
{
	skip_ws(s);
	return s->p < s->end ? (unsigned char)*s->p : -1;
}

int jscan_expect(struct jscan *s, char c)
{
	skip_ws(s);
	if (s->p >= s->end || *s->p != c)
		return APP_EPARSE;
	s->p++;
	return 0;
}

int jscan_at_end(struct jscan *s)
{
	skip_ws(s);
	return s->p == s->end;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* utf8_seq: length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	if (c >= 0xc2 && c <= 0xdf)
		return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (avail < 3 || (p[2] & 0xc0) != 0x80)
			return 0;
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (avail < 4 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi ? 4 : 0;
	}
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * scan_string: the core of jscan_string and of skipping: validates the
 * string at s->p (which is at the opening quote) and, when out is not NULL,
 * writes the decoded bytes.
 */
#define FAIL(text)                 \
	do {                       \
		s->err = (text);   \
		return APP_EPARSE; \
	} while (0)

static int scan_string(struct jscan *s, char *out, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)s->p, *end = (const unsigned char *)s->end;
	if (p >= end || *p != '"')
		FAIL("expected a string");
	p++;
	size_t n = 0;
	for (;;) {
		/* Fast path: a run of plain ASCII. */
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (out && p > run) {
			memcpy(out + n, run, (size_t)(p - run));
		}
		n += (size_t)(p - run);
		if (p >= end)
			FAIL("unterminated string");
		unsigned char c = *p;
		if (c == '"') {
			p++;
			break;
		}
		if (c < 0x20)
			FAIL("raw control character in string");
		if (c >= 0x80) {
			size_t k = utf8_seq(p, (size_t)(end - p));
			if (!k)
				FAIL("invalid UTF-8 in string");
			if (out)
				memcpy(out + n, p, k);
			n += k;
			p += k;
			continue;
		}
		/* escape */
		if (end - p < 2)
			FAIL("unterminated string");
		char e = (char)p[1], d;
		p += 2;
		switch (e) {
		case '"': d = '"'; break;
		case '\\': d = '\\'; break;
		case '/': d = '/'; break;
		case 'b': d = '\b'; break;
		case 'f': d = '\f'; break;
		case 'n': d = '\n'; break;
		case 'r': d = '\r'; break;
		case 't': d = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (end - p < 4 || hex4((const char *)p, &cp) != 0)
				FAIL("bad \\u escape in string");
			p += 4;
			if (cp == 0)
				FAIL("string decodes to NUL (\\u0000)");
			if (cp >= 0xdc00 && cp <= 0xdfff)
				FAIL("lone surrogate in string");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4((const char *)p + 2, &lo) != 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					FAIL("lone surrogate in string");
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (out)
				n += put_utf8(out + n, cp);
			else
				n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
			continue;
		}
		default:
			FAIL("bad escape in string");
		}
		if (out)
			out[n] = d;
		n++;
	}
	if (out)
		out[n] = 0;
	if (outlen)
		*outlen = n;
	s->p = (const char *)p;
	return 0;
}

int jscan_string(struct jscan *s, char *out, size_t *outlen)
{
	skip_ws(s);
	return scan_string(s, out, outlen);
}

/* scan_number: validates RFC 8259 number syntax; sets *integral_only when it
 * has neither fraction nor exponent. */
static int scan_number(struct jscan *s, const char **start, size_t *len, int *integral_only)
{
	const char *p = s->p, *end = s->end, *b = p;
	*integral_only = 1;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return APP_EPARSE;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return APP_EPARSE;
	}
	if (p < end && *p == '.') {
		*integral_only = 0;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return APP_EPARSE;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*integral_only = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return APP_EPARSE;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	*start = b;
	*len = (size_t)(p - b);
	s->p = p;
	return 0;
}

int jscan_u64(struct jscan *s, uint64_t max, uint64_t *out)
{
	skip_ws(s);
	const char *tok;
	size_t len;
	int integral;
	int r = scan_number(s, &tok, &len, &integral);
	if (r)
		return r;
	const uint64_t limit = 9007199254740992ULL; /* 2^53: the last exactly representable integer */
	if (integral) {
		if (tok[0] == '-')
			return len == 2 && tok[1] == '0' ? (*out = 0, 0) : APP_ERANGE;
		uint64_t v = 0;
		for (size_t i = 0; i < len; i++) {
			v = v * 10 + (uint64_t)(tok[i] - '0');
			if (v > limit)
				return APP_ERANGE;
		}
		if (v > max)
			return APP_ERANGE;
		*out = v;
		return 0;
	}
	/* Fraction or exponent: read it as JSON.parse would (a double) and
	 * accept it only when that double is an integer in range. */
	char buf[64];
	if (len >= sizeof buf)
		return APP_EPARSE;
	memcpy(buf, tok, len);
	buf[len] = 0;
	double d = strtod(buf, NULL);
	if (!isfinite(d) || d != floor(d))
		return isfinite(d) ? APP_EPARSE : APP_ERANGE;
	if (d < 0 || d > (double)limit || (uint64_t)d > max)
		return APP_ERANGE;
	*out = (uint64_t)d;
	return 0;
}

static int skip_lit(struct jscan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return APP_EPARSE;
	s->p += n;
	return 0;
}

int jscan_skip_value(struct jscan *s)
{
	int c = jscan_peek(s);
	const char *tok;
	size_t len;
	int integral, r;
	switch (c) {
	case '"':
		return scan_string(s, NULL, NULL);
	case 't':
		return skip_lit(s, "true", 4);
	case 'f':
		return skip_lit(s, "false", 5);
	case 'n':
		return skip_lit(s, "null", 4);
	case '[':
	case '{':
		if (++s->depth > JSCAN_MAX_DEPTH)
			return APP_ETOOBIG;
		s->p++;
		if (jscan_peek(s) == (c == '[' ? ']' : '}')) {
			s->p++;
			s->depth--;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				if ((r = jscan_string(s, NULL, NULL)) != 0 || (r = jscan_expect(s, ':')) != 0)
					return r;
			}
			if ((r = jscan_skip_value(s)) != 0)
				return r;
			int n = jscan_peek(s);
			if (n < 0)
				return APP_EPARSE;
			s->p++;
			if (n == ',')
				continue;
			if (n == (c == '[' ? ']' : '}'))
				break;
			return APP_EPARSE;
		}
		s->depth--;
		return 0;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return scan_number(s, &tok, &len, &integral);
		return APP_EPARSE;
	}
}
