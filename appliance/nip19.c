#include "nip19.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bech32.h"

static const char *const type_names[] = {"npub", "nsec", "note", "nprofile", "nevent", "naddr"};

const char *nip19_type_name(enum nip19_type t)
{
	return (unsigned)t < sizeof type_names / sizeof type_names[0] ? type_names[t] : "?";
}

void nip19_free(struct nip19 *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->nrelays; i++)
		free(v->relays[i]);
	free(v->identifier);
	sodium_memzero(v, sizeof *v);
	free(v);
}

int nip19_decode_bare(uint8_t out[32], const char *hrp, const char *s, size_t len)
{
	char got[BECH32_HRP_MAX + 1];
	uint8_t *data;
	size_t n;
	int r = bech32_decode(got, &data, &n, s, len, NIP19_MAX_LEN);
	if (r)
		return r;
	if (strcmp(got, hrp) != 0 || n != 32)
		r = APP_EPARSE;
	else
		memcpy(out, data, 32);
	sodium_memzero(data, n);
	free(data);
	return r;
}

int nip19_encode_bare(char **out, const char *hrp, const uint8_t in[32])
{
	return bech32_encode(out, hrp, in, 32);
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int parse_tlv(struct nip19 *v, const uint8_t *p, size_t n)
{
	int have_special = 0;
	size_t i = 0;
	while (i < n) {
		if (n - i < 2)
			return APP_EPARSE;
		uint8_t t = p[i], l = p[i + 1];
		i += 2;
		if (l > n - i)
			return APP_EPARSE;
		const uint8_t *val = p + i;
		i += l;
		switch (t) {
		case 0:
			if (have_special)
				break; /* first one wins, as nostr-tools */
			have_special = 1;
			if (v->type == NIP19_NADDR) {
				if (memchr(val, 0, l))
					return APP_EPARSE;
				v->identifier = dup_bytes(val, l);
				if (!v->identifier)
					return APP_ENOMEM;
				v->identifier_len = l;
			} else {
				if (l != 32)
					return APP_EPARSE;
				memcpy(v->key, val, 32);
			}
			break;
		case 1:
			if (memchr(val, 0, l))
				return APP_EPARSE;
			for (size_t k = 0; k < l; k++)
				if (val[k] >= 0x80)
					return APP_EPARSE;
			if (v->nrelays < NIP19_MAX_RELAYS) {
				char *r = dup_bytes(val, l);
				if (!r)
					return APP_ENOMEM;
				v->relays[v->nrelays++] = r;
			}
			break;
		case 2:
			if (l != 32)
				return APP_EPARSE;
			if (!v->has_author) {
				memcpy(v->author, val, 32);
				v->has_author = 1;
			}
			break;
		case 3:
			if (l != 4)
				return APP_EPARSE;
			if (!v->has_kind) {
				v->kind = (uint32_t)val[0] << 24 | (uint32_t)val[1] << 16 | (uint32_t)val[2] << 8 | val[3];
				v->has_kind = 1;
			}
			break;
		default:
			break; /* unknown types are ignored (NIP-19) */
		}
	}
	if (!have_special)
		return APP_EPARSE;
	if (v->type == NIP19_NADDR && (!v->has_author || !v->has_kind))
		return APP_EPARSE;
	return 0;
}

int nip19_decode(struct nip19 **out, const char *s, size_t len)
{
	*out = NULL;
	char hrp[BECH32_HRP_MAX + 1];
	uint8_t *data = NULL;
	size_t n = 0;
	int r = bech32_decode(hrp, &data, &n, s, len, NIP19_MAX_LEN);
	if (r)
		return r;
	struct nip19 *v = calloc(1, sizeof *v);
	if (!v) {
		r = APP_ENOMEM;
		goto out;
	}
	r = APP_EPARSE;
	int found = 0;
	for (unsigned t = 0; t < sizeof type_names / sizeof type_names[0]; t++)
		if (strcmp(hrp, type_names[t]) == 0) {
			v->type = (enum nip19_type)t;
			found = 1;
		}
	if (!found)
		goto out;
	if (v->type <= NIP19_NOTE) {
		if (n != 32)
			goto out;
		memcpy(v->key, data, 32);
		r = 0;
	} else {
		r = parse_tlv(v, data, n);
	}
	if (r == 0) {
		*out = v;
		v = NULL;
	}
out:
	if (data) {
		sodium_memzero(data, n);
		free(data);
	}
	nip19_free(v);
	return r;
}

static int tlv_put(uint8_t *buf, size_t *pos, size_t cap, uint8_t t, const void *val, size_t l)
{
	if (l > 255 || cap - *pos < 2 + l)
		return APP_EINVAL;
	buf[(*pos)++] = t;
	buf[(*pos)++] = (uint8_t)l;
	memcpy(buf + *pos, val, l);
	*pos += l;
	return 0;
}

int nip19_encode(char **out, const struct nip19 *v)
{
	*out = NULL;
	const char *hrp = nip19_type_name(v->type);
	if (v->type <= NIP19_NOTE)
		return bech32_encode(out, hrp, v->key, 32);
	if (v->type > NIP19_NADDR)
		return APP_EINVAL;
	if (v->type == NIP19_NADDR && (!v->has_author || !v->has_kind))
		return APP_EINVAL;
	size_t cap = 2 + 255 + v->nrelays * 257 + 34 + 6;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return APP_ENOMEM;
	size_t pos = 0;
	int r;
	if (v->type == NIP19_NADDR)
		r = tlv_put(buf, &pos, cap, 0, v->identifier ? v->identifier : "", v->identifier ? v->identifier_len : 0);
	else
		r = tlv_put(buf, &pos, cap, 0, v->key, 32);
	for (size_t i = 0; r == 0 && i < v->nrelays; i++)
		r = tlv_put(buf, &pos, cap, 1, v->relays[i], strlen(v->relays[i]));
	if (r == 0 && v->has_author && v->type != NIP19_NPROFILE)
		r = tlv_put(buf, &pos, cap, 2, v->author, 32);
	if (r == 0 && v->has_kind && v->type != NIP19_NPROFILE) {
		uint8_t k[4] = {(uint8_t)(v->kind >> 24), (uint8_t)(v->kind >> 16), (uint8_t)(v->kind >> 8), (uint8_t)v->kind};
		r = tlv_put(buf, &pos, cap, 3, k, 4);
	}
	if (r == 0)
		r = bech32_encode(out, hrp, buf, pos);
	free(buf);
	return r;
}
