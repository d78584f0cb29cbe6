#include "hex.h"

#include <stdlib.h>

static const char hex_digits[] = "0123456789abcdef";

void hex_encode(char *out, const uint8_t *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex_digits[in[i] >> 4];
		out[2 * i + 1] = hex_digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

/* Digit values: 0..15 for 0-9 a-f, 16..31 (value + 16) for A-F, -1 otherwise. */
static const int8_t hex_table[256] = {
	['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7,
	['8'] = 8, ['9'] = 9, ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
	['A'] = 26, ['B'] = 27, ['C'] = 28, ['D'] = 29, ['E'] = 30, ['F'] = 31,
};

static int hex_val(char c, int strict)
{
	unsigned char u = (unsigned char)c;
	int v = hex_table[u];
	if (v == 0 && u != '0')
		return -1;
	if (v >= 16)
		return strict ? -1 : v - 16;
	return v;
}

int hex_decode(uint8_t *out, size_t outlen, const char *in, size_t inlen, int strict)
{
	if (inlen / 2 != outlen || inlen % 2 != 0)
		return APP_EPARSE;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hex_val(in[2 * i], strict), lo = hex_val(in[2 * i + 1], strict);
		if (hi < 0 || lo < 0)
			return APP_EPARSE;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int hex_decode_alloc(uint8_t **out, size_t *outlen, const char *in, size_t inlen, size_t max)
{
	*out = 0;
	*outlen = 0;
	if (inlen % 2 != 0)
		return APP_EPARSE;
	if (inlen / 2 > max)
		return APP_ETOOBIG;
	uint8_t *p = malloc(inlen / 2 + 1);
	if (!p)
		return APP_ENOMEM;
	int r = hex_decode(p, inlen / 2, in, inlen, 0);
	if (r != 0) {
		free(p);
		return r;
	}
	*out = p;
	*outlen = inlen / 2;
	return 0;
}

int hex_is_lower(const char *in, size_t len)
{
	if (len == 0 || len % 2 != 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (hex_val(in[i], 1) < 0)
			return 0;
	return 1;
}
