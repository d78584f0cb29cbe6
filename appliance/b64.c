#include "b64.h"

#include <sodium.h>
#include <stdlib.h>

size_t b64_encoded_len(size_t len)
{
	return sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) - 1;
}

int b64_encode(char *out, size_t outcap, const uint8_t *in, size_t len)
{
	if (len > (SIZE_MAX / 4) * 3 - 3 || outcap < b64_encoded_len(len) + 1)
		return APP_ETOOBIG;
	sodium_bin2base64(out, outcap, in, len, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

char *b64_encode_alloc(const uint8_t *in, size_t len)
{
	if (len > (SIZE_MAX / 4) * 3 - 3)
		return NULL;
	size_t n = b64_encoded_len(len) + 1;
	char *s = malloc(n);
	if (s)
		sodium_bin2base64(s, n, in, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

int b64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *in, size_t inlen)
{
	const char *end = NULL;
	*outlen = 0;
	if (inlen % 4 != 0)
		return APP_EPARSE;
	if (inlen / 4 * 3 > outcap + 2)
		return APP_ETOOBIG;
	if (sodium_base642bin(out, outcap, in, inlen, NULL, outlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return inlen / 4 * 3 > outcap ? APP_ETOOBIG : APP_EPARSE;
	if (end != in + inlen)
		return APP_EPARSE;
	return 0;
}

int b64_decode_alloc(uint8_t **out, size_t *outlen, const char *in, size_t inlen, size_t max)
{
	*out = NULL;
	*outlen = 0;
	if (inlen % 4 != 0)
		return APP_EPARSE;
	size_t cap = inlen / 4 * 3;
	if (cap > max + 2)
		return APP_ETOOBIG;
	uint8_t *p = malloc(cap + 1);
	if (!p)
		return APP_ENOMEM;
	int r = b64_decode(p, cap, outlen, in, inlen);
	if (r == 0 && *outlen > max)
		r = APP_ETOOBIG;
	if (r != 0) {
		free(p);
		*outlen = 0;
		return r;
	}
	*out = p;
	return 0;
}
