#include "testutil.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/hex.h"

char *tu_read_file(const char *path, size_t *len)
{
	char full[4096];
	const char *root = getenv("APPLIANCE_ROOT");
	if (path[0] != '/' && root)
		snprintf(full, sizeof full, "%s/%s", root, path);
	else
		snprintf(full, sizeof full, "%s", path);
	FILE *f = fopen(full, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", full);
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	if (buf) {
		buf[n] = 0;
		if (len)
			*len = n;
	}
	return buf;
}

cJSON *tu_load_json(const char *path)
{
	size_t len;
	char *s = tu_read_file(path, &len);
	if (!s)
		return NULL;
	cJSON *j = cJSON_ParseWithLength(s, len);
	if (!j)
		fprintf(stderr, "cannot parse %s as JSON\n", path);
	free(s);
	return j;
}

uint8_t *tu_unhex(const char *hex, size_t *len)
{
	uint8_t *out;
	if (hex_decode_alloc(&out, len, hex, strlen(hex), 1 << 26) != 0)
		return NULL;
	return out;
}

int tu_unhex32(uint8_t out[32], const char *hex)
{
	return hex && hex_decode(out, 32, hex, strlen(hex), 0) == 0 ? 0 : -1;
}

double tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
