/*
 * event.h: NIP-01 events: parse, canonical serialization, id, sign, verify.
 *
 * The id is sha256 of [0,pubkey,created_at,kind,tags,content] serialized
 * exactly as JavaScript's JSON.stringify does (NIP-01; reference
 * nostr-protocol.md §1.1): short escapes \b \t \n \f \r \" \\, other
 * U+0000..U+001F as lowercase \u00xx, everything else verbatim UTF-8.
 * Verification recomputes the id, compares it, then checks the BIP-340
 * signature over the 32-byte id.
 *
 * An event owns all its strings (freed by event_free); strings are
 * NUL-terminated and never contain NUL (events whose strings decode to NUL
 * are refused), lengths are kept anyway.
 */
#ifndef APPLIANCE_EVENT_H
#define APPLIANCE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct cJSON;
struct keypair;

/* Hard caps, checked before allocating. */
#define EVENT_MAX_JSON (512 * 1024) /* bytes of one event's JSON text */
#define EVENT_MAX_TAGS 4096         /* tags per event */
#define EVENT_MAX_TAG_FIELDS 256    /* strings per tag */
#define EVENT_MAX_KIND 65535

struct event_id {
	uint8_t b[32];
};

struct event_tag {
	size_t n;       /* number of strings, >= 1 for parsed events */
	char **v;       /* v[i] NUL-terminated */
	size_t *len;    /* len[i] = strlen(v[i]) */
};

struct event {
	uint8_t id[32];
	uint8_t pubkey[32];
	uint8_t sig[64];
	uint64_t created_at; /* unix seconds */
	uint32_t kind;       /* 0..65535 */
	char *content;
	size_t content_len;
	struct event_tag *tags;
	size_t ntags;
	int packed_; /* private: tags and content share the event's allocation */
};

/*
 * event_parse: a complete event from JSON text json[0..len) (need not be
 * NUL-terminated), read by a strict single-pass scanner (jscan.h) into one
 * allocation. Checks the shape only (not id or signature; call
 * event_verify). Strings must be valid UTF-8. Refused, with *reason set to a static text naming the
 * field: input over EVENT_MAX_JSON (APP_ETOOBIG); not JSON or not an object
 * (APP_EPARSE); missing, duplicate or wrongly typed fields; id/pubkey/sig not
 * lowercase hex of the right length; kind not an integer in 0..65535;
 * created_at not a non-negative integer below 2^53; tags not an array of
 * non-empty arrays of strings; any string that decodes to NUL; caps
 * exceeded (APP_ETOOBIG). Unknown extra fields are ignored.
 * Returns 0 with *out set (free with event_free), or a negative APP_E*.
 * `reason` may be NULL; it stays valid until the next parse on this thread.
 */
int event_parse(struct event **out, const char **reason, const char *json, size_t len) APP_WUR;

/*
 * event_parse_scan: as event_parse for the event object at the scanner's
 * position (inside a larger message such as ["EVENT",subid,{...}]); on
 * success the scanner is left just after the object.
 */
struct jscan;
int event_parse_scan(struct event **out, const char **reason, struct jscan *s) APP_WUR;

/*
 * event_from_cjson: as event_parse for an already-parsed cJSON object (for
 * relay messages that embed events). The caller must have refused input in
 * which a string decodes to NUL (json_has_nul_escape) before parsing it.
 */
int event_from_cjson(struct event **out, const char **reason, const struct cJSON *obj) APP_WUR;

/*
 * event_new: an unsigned event with no tags. content may be NULL (empty).
 * Returns 0, APP_ERANGE (kind > 65535), APP_EPARSE (content contains NUL),
 * APP_ETOOBIG, APP_ENOMEM.
 */
int event_new(struct event **out, uint32_t kind, uint64_t created_at, const char *content, size_t content_len) APP_WUR;

/*
 * event_add_tag: appends a tag of n strings (each NUL-terminated; NULL
 * entries not allowed). Returns 0, APP_EINVAL (n == 0), APP_ETOOBIG (caps),
 * APP_ENOMEM. Invalidates the event's id/sig (sign again).
 */
int event_add_tag(struct event *ev, size_t n, const char *const *fields) APP_WUR;

/* event_add_tagv: event_add_tag with the strings as arguments, NULL-terminated. */
int event_add_tagv(struct event *ev, const char *first, ...) __attribute__((sentinel)) APP_WUR;

/*
 * event_set_content: replaces the content. Returns 0, APP_EPARSE (contains
 * NUL), APP_ETOOBIG, APP_ENOMEM.
 */
int event_set_content(struct event *ev, const char *content, size_t len) APP_WUR;

/*
 * event_serialize_commitment: the canonical [0,pubkey,created_at,kind,tags,
 * content] text into a new buffer (*out NUL-terminated, free with free()).
 * Returns 0 or APP_ENOMEM.
 */
int event_serialize_commitment(char **out, size_t *outlen, const struct event *ev) APP_WUR;

/* event_compute_id: the id the event's fields commit to. Returns 0 or APP_ENOMEM. */
int event_compute_id(const struct event *ev, uint8_t id[32]) APP_WUR;

/*
 * event_sign: sets pubkey from kp, computes the id and signs it (BIP-340).
 * Returns 0, APP_ENOMEM, APP_EINTERNAL.
 */
int event_sign(struct event *ev, const struct keypair *kp) APP_WUR;

/*
 * event_verify: recomputes the id and compares it with ev->id (APP_EBADID),
 * checks the pubkey is a valid x-only key (APP_EBADKEY) and the BIP-340
 * signature over the id (APP_EBADSIG). Returns 0 when valid; APP_ENOMEM.
 */
int event_verify(const struct event *ev) APP_WUR;

/*
 * event_to_json: the full event as compact JSON, keys in the order
 * id, pubkey, created_at, kind, tags, content, sig, strings escaped as
 * JSON.stringify does. *out is NUL-terminated (free with free()).
 * Returns 0 or APP_ENOMEM.
 */
int event_to_json(char **out, size_t *outlen, const struct event *ev) APP_WUR;

/* event_free: frees ev and its strings; NULL is a no-op. */
void event_free(struct event *ev);

/*
 * event_tag_find: the first tag at index >= *pos whose name (v[0]) is
 * `name` and which has at least `min_fields` strings; *pos is set past it so
 * repeated calls iterate. Returns NULL when there is none.
 */
const struct event_tag *event_tag_find(const struct event *ev, size_t *pos, const char *name, size_t min_fields);

/* event_tag_value: v[1] of the first tag named `name` (with >= 2 strings), or NULL. */
const char *event_tag_value(const struct event *ev, const char *name);

/*
 * event_expiration: the NIP-40 expiration of ev: 0 and *out set when an
 * `expiration` tag holds a decimal timestamp; APP_ENOTFOUND when there is no
 * such tag; APP_EPARSE when its value is not a plain decimal.
 */
int event_expiration(const struct event *ev, uint64_t *out) APP_WUR;

/* Kind classes (NIP-01 §kinds). */
int event_kind_is_replaceable(uint32_t kind);
int event_kind_is_ephemeral(uint32_t kind);
int event_kind_is_addressable(uint32_t kind);

#endif
