/*
 * nip19.h: NIP-19 bech32-encoded entities: npub, nsec, note (bare 32 bytes)
 * and nprofile, nevent, naddr (TLV). Bech32 per BIP-173 without the
 * 90-character limit (NIP19_MAX_LEN instead). TLV: T(1) L(1) V; type 0
 * special (pubkey / event id / d-tag identifier), 1 relay (ASCII, repeats),
 * 2 author (32 bytes), 3 kind (u32 big-endian). Unknown types are ignored;
 * a truncated TLV fails.
 */
#ifndef APPLIANCE_NIP19_H
#define APPLIANCE_NIP19_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NIP19_MAX_LEN 5000  /* characters of an encoded string (NIP-19's SHOULD) */
#define NIP19_MAX_RELAYS 32 /* relay entries kept from one TLV */

enum nip19_type { NIP19_NPUB, NIP19_NSEC, NIP19_NOTE, NIP19_NPROFILE, NIP19_NEVENT, NIP19_NADDR };

struct nip19 {
	enum nip19_type type;
	uint8_t key[32];    /* npub/nprofile: pubkey; nsec: secret; note/nevent: event id */
	uint8_t author[32]; /* nevent (optional) / naddr (required) */
	int has_author;
	uint32_t kind; /* nevent (optional) / naddr (required) */
	int has_kind;
	char *identifier; /* naddr: the d tag (may be empty), NUL-terminated */
	size_t identifier_len;
	char *relays[NIP19_MAX_RELAYS]; /* NUL-terminated */
	size_t nrelays;
};

/* nip19_type_name: "npub", "nsec", ... for a type. */
const char *nip19_type_name(enum nip19_type t);

/*
 * nip19_decode: any NIP-19 string. Returns 0 with *out (free with
 * nip19_free); APP_ETOOBIG (over NIP19_MAX_LEN); APP_EPARSE (bech32 syntax,
 * unknown prefix, wrong payload length, truncated or malformed TLV, missing
 * required TLV, relay with NUL); APP_ECHECKSUM; APP_ENOMEM.
 */
int nip19_decode(struct nip19 **out, const char *s, size_t len) APP_WUR;

/*
 * nip19_encode: the string for v (new, NUL-terminated, free with free()).
 * TLV order: special, relays, author, kind (as nostr-tools writes).
 * Returns 0, APP_EINVAL (a relay or identifier over 255 bytes, naddr without
 * author/kind), APP_ENOMEM.
 */
int nip19_encode(char **out, const struct nip19 *v) APP_WUR;

/* nip19_free: frees (wiping an nsec's key); NULL is a no-op. */
void nip19_free(struct nip19 *v);

/*
 * nip19_decode_bare: a bare npub/nsec/note of the given hrp into out[32].
 * Returns 0, APP_EPARSE (other hrp or length), APP_ECHECKSUM, APP_ETOOBIG.
 * Intermediate buffers are wiped (nsec).
 */
int nip19_decode_bare(uint8_t out[32], const char *hrp, const char *s, size_t len) APP_WUR;

/* nip19_encode_bare: hrp + 32 bytes as bech32 (new string). Returns 0 or APP_ENOMEM. */
int nip19_encode_bare(char **out, const char *hrp, const uint8_t in[32]) APP_WUR;

#endif
