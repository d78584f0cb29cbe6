#include "bech32.h"

#include <stdlib.h>
#include <string.h>

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/* Character to 5-bit value (both cases); -1 for characters outside the charset. */
static const int8_t charset_rev_table[128] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	15, -1, 10, 17, 21, 20, 26, 30,  7,  5, -1, -1, -1, -1, -1, -1,
	-1, 29, -1, 24, 13, 25,  9,  8, 23, -1, 18, 22, 31, 27, 19, -1,
	 1,  0,  3, 16, 11, 28, 12, 14,  6,  4,  2, -1, -1, -1, -1, -1,
	-1, 29, -1, 24, 13, 25,  9,  8, 23, -1, 18, 22, 31, 27, 19, -1,
	 1,  0,  3, 16, 11, 28, 12, 14,  6,  4,  2, -1, -1, -1, -1, -1,
};

static int8_t charset_rev(unsigned char c)
{
	return c < 128 ? charset_rev_table[c] : -1;
}

static uint32_t polymod_step(uint32_t pre)
{
	uint8_t b = (uint8_t)(pre >> 25);
	return ((pre & 0x1FFFFFF) << 5) ^ (-((b >> 0) & 1) & 0x3b6a57b2UL) ^
	       (-((b >> 1) & 1) & 0x26508e6dUL) ^ (-((b >> 2) & 1) & 0x1ea119faUL) ^
	       (-((b >> 3) & 1) & 0x3d4233ddUL) ^ (-((b >> 4) & 1) & 0x2a1462b3UL);
}

static uint32_t hrp_polymod(const char *hrp, size_t n)
{
	uint32_t chk = 1;
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk) ^ ((unsigned char)hrp[i] >> 5);
	chk = polymod_step(chk);
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk) ^ ((unsigned char)hrp[i] & 0x1f);
	return chk;
}

int bech32_encode_words(char **out, const char *hrp, const uint8_t *words, size_t nwords)
{
	*out = NULL;
	size_t hl = strlen(hrp);
	if (hl == 0 || hl > BECH32_HRP_MAX)
		return APP_EINVAL;
	for (size_t i = 0; i < hl; i++)
		if (hrp[i] < 33 || hrp[i] > 126 || (hrp[i] >= 'A' && hrp[i] <= 'Z'))
			return APP_EINVAL;
	if (nwords > (SIZE_MAX - hl - 8))
		return APP_EINVAL;
	char *s = malloc(hl + 1 + nwords + 6 + 1);
	if (!s)
		return APP_ENOMEM;
	uint32_t chk = hrp_polymod(hrp, hl);
	memcpy(s, hrp, hl);
	s[hl] = '1';
	char *o = s + hl + 1;
	for (size_t i = 0; i < nwords; i++) {
		if (words[i] > 31) {
			free(s);
			return APP_EINVAL;
		}
		chk = polymod_step(chk) ^ words[i];
		*o++ = charset[words[i]];
	}
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		*o++ = charset[(chk >> ((5 - i) * 5)) & 0x1f];
	*o = 0;
	*out = s;
	return 0;
}

int bech32_decode_words(char hrp[BECH32_HRP_MAX + 1], uint8_t **words, size_t *nwords, const char *s,
			size_t len, size_t max_len)
{
	*words = NULL;
	*nwords = 0;
	hrp[0] = 0;
	if (len > max_len)
		return APP_ETOOBIG;
	int lower = 0, upper = 0;
	size_t sep = SIZE_MAX;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126)
			return APP_EPARSE;
		if (c >= 'a' && c <= 'z')
			lower = 1;
		if (c >= 'A' && c <= 'Z')
			upper = 1;
		if (c == '1')
			sep = i;
	}
	if (lower && upper)
		return APP_EPARSE;
	if (sep == SIZE_MAX || sep == 0 || sep > BECH32_HRP_MAX || len - sep - 1 < 6)
		return APP_EPARSE;
	for (size_t i = 0; i < sep; i++)
		hrp[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
	hrp[sep] = 0;
	size_t n = len - sep - 1;
	uint8_t *w = malloc(n);
	if (!w)
		return APP_ENOMEM;
	uint32_t chk = hrp_polymod(hrp, sep);
	for (size_t i = 0; i < n; i++) {
		int8_t v = charset_rev((unsigned char)s[sep + 1 + i]);
		if (v < 0) {
			free(w);
			hrp[0] = 0;
			return APP_EPARSE;
		}
		w[i] = (uint8_t)v;
		chk = polymod_step(chk) ^ (uint32_t)v;
	}
	if (chk != 1) {
		free(w);
		hrp[0] = 0;
		return APP_ECHECKSUM;
	}
	*words = w;
	*nwords = n - 6;
	return 0;
}

int bech32_convert_bits(uint8_t *out, size_t *outlen, int tobits, const uint8_t *in, size_t inlen,
			int frombits, int pad)
{
	uint32_t val = 0;
	int bits = 0;
	uint32_t maxv = (1u << tobits) - 1;
	size_t n = 0;
	for (size_t i = 0; i < inlen; i++) {
		if (in[i] >> frombits)
			return APP_EPARSE;
		val = (val << frombits) | in[i];
		bits += frombits;
		while (bits >= tobits) {
			bits -= tobits;
			out[n++] = (uint8_t)((val >> bits) & maxv);
		}
		val &= (1u << bits) - 1;
	}
	if (pad) {
		if (bits)
			out[n++] = (uint8_t)((val << (tobits - bits)) & maxv);
	} else if (bits >= frombits || ((val << (tobits - bits)) & maxv)) {
		return APP_EPARSE;
	}
	*outlen = n;
	return 0;
}

int bech32_encode(char **out, const char *hrp, const uint8_t *data, size_t len)
{
	*out = NULL;
	if (len > SIZE_MAX / 8 - 1)
		return APP_EINVAL;
	uint8_t *w = malloc((len * 8 + 4) / 5 + 1);
	if (!w)
		return APP_ENOMEM;
	size_t nw;
	int r = bech32_convert_bits(w, &nw, 5, data, len, 8, 1);
	if (r == 0)
		r = bech32_encode_words(out, hrp, w, nw);
	free(w);
	return r;
}

int bech32_decode(char hrp[BECH32_HRP_MAX + 1], uint8_t **data, size_t *len, const char *s, size_t slen,
		  size_t max_len)
{
	*data = NULL;
	*len = 0;
	uint8_t *w;
	size_t nw;
	int r = bech32_decode_words(hrp, &w, &nw, s, slen, max_len);
	if (r)
		return r;
	uint8_t *d = malloc(nw * 5 / 8 + 1);
	if (!d) {
		free(w);
		return APP_ENOMEM;
	}
	size_t n;
	r = bech32_convert_bits(d, &n, 8, w, nw, 5, 0);
	free(w);
	if (r) {
		free(d);
		return r;
	}
	*data = d;
	*len = n;
	return 0;
}
