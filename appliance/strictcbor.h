/*
 * strictcbor.h: the strict CBOR checks libcbor cannot express, and small
 * libcbor helpers shared by the NSM messages and attestation documents.
 *
 * libcbor 0.8 decodes any well-formed CBOR into a tree but has no notion of
 * "one item and nothing after it", no nesting limit (its decref recurses),
 * and allocates declared container sizes before reading them. strictcbor_scan
 * runs libcbor's own streaming decoder over the bytes first and refuses,
 * before any tree is built:
 *   - truncated or malformed items, and any byte after the single top item;
 *   - nesting deeper than max_depth;
 *   - array/map counts larger than the bytes left (each element needs >= 1);
 *   - indefinite-length byte and text strings;
 *   - tags (callers that accept one, like COSE_Sign1's tag 18, strip it
 *     first: libcbor 0.8 cannot even decode the one-byte form 0xd2);
 *   - floats, undefined and simple values other than false/true/null.
 * Integers of any width are accepted (encoders differ; values are checked
 * by the caller). Definite and indefinite arrays and maps are accepted.
 */
#ifndef APPLIANCE_STRICTCBOR_H
#define APPLIANCE_STRICTCBOR_H

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/*
 * strictcbor_scan: checks that buf[0..len) is exactly one CBOR item within
 * the rules above. Returns 0; APP_EPARSE with *reason (static text) set;
 * `reason` may be NULL. Never allocates.
 */
int strictcbor_scan(const uint8_t *buf, size_t len, unsigned max_depth, const char **reason) APP_WUR;

/*
 * strictcbor_load: strictcbor_scan, then cbor_load. Returns 0 with *out (a
 * libcbor item, release with cbor_decref); APP_EPARSE with *reason;
 * APP_ENOMEM.
 */
int strictcbor_load(cbor_item_t **out, const uint8_t *buf, size_t len, unsigned max_depth,
		    const char **reason) APP_WUR;

/*
 * strictcbor_uint: a new unsigned integer item in the smallest encoding
 * (RFC 8949 §4.2.1 preferred serialization; libcbor does not pick widths).
 * Returns NULL on ENOMEM.
 */
cbor_item_t *strictcbor_uint(uint64_t v);

/* strictcbor_bytes: a new definite byte string copying p[0..len); NULL on ENOMEM. */
cbor_item_t *strictcbor_bytes(const uint8_t *p, size_t len);

/* strictcbor_text: a new definite text string copying s; NULL on ENOMEM. */
cbor_item_t *strictcbor_text(const char *s);

/*
 * strictcbor_map_put: adds key -> value to a map and drops the caller's
 * references to both (whether or not it succeeds; NULL arguments are
 * accepted and make it fail). Returns 0 or APP_ENOMEM.
 */
int strictcbor_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) APP_WUR;

/*
 * strictcbor_serialize: the encoding of item into a new buffer (*out, *len;
 * free with free()), refused when longer than max. Returns 0, APP_ETOOBIG,
 * APP_ENOMEM. (libcbor 0.8's cbor_serialize_alloc returns the length; its
 * size out-parameter is the allocation's capacity.)
 */
int strictcbor_serialize(uint8_t **out, size_t *len, const cbor_item_t *item, size_t max) APP_WUR;

/*
 * strictcbor_get_uint: the value of an unsigned integer item of any width.
 * Returns 0, or APP_EPARSE if the item is not an unsigned integer.
 */
int strictcbor_get_uint(const cbor_item_t *item, uint64_t *out) APP_WUR;

/*
 * strictcbor_text_is: 1 if item is a definite text string equal to s
 * (byte for byte, same length), else 0.
 */
int strictcbor_text_is(const cbor_item_t *item, const char *s);

/*
 * strictcbor_bytes_of: the content of a definite byte string item
 * (*p points into the item). Returns 0, or APP_EPARSE for any other item.
 */
int strictcbor_bytes_of(const cbor_item_t *item, const uint8_t **p, size_t *len) APP_WUR;

#endif
