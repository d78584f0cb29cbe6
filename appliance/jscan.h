/*
 * jscan.h: a strict, allocation-free JSON scanner (RFC 8259) for the hot
 * protocol paths: NIP-01 events and relay messages. It reads values in
 * place from a length-bounded buffer; the caller drives it by the shape it
 * expects. Strings are decoded into caller memory (a decoded string is never
 * longer than its JSON text) and must be valid UTF-8 without NUL, raw
 * control characters or lone surrogates. Everything else (configuration,
 * RPC bodies) uses cJSON.
 */
#ifndef APPLIANCE_JSCAN_H
#define APPLIANCE_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define JSCAN_MAX_DEPTH 32

struct jscan {
	const char *p;   /* next byte */
	const char *end; /* one past the last byte */
	int depth;       /* used by jscan_skip_value */
	const char *err; /* static text: why the last call failed */
};

/* jscan_init: scan s[0..len). */
void jscan_init(struct jscan *s, const char *text, size_t len);

/* jscan_peek: skips whitespace and returns the next byte, or -1 at the end. */
int jscan_peek(struct jscan *s);

/* jscan_expect: skips whitespace and consumes `c`. Returns 0 or APP_EPARSE. */
int jscan_expect(struct jscan *s, char c) APP_WUR;

/*
 * jscan_string: consumes a string (after whitespace) and writes its decoded
 * bytes to out, which must have room for the raw length of the token
 * (jscan_remaining() bytes is always enough), plus a NUL.
 * Returns 0 with *outlen set; APP_EPARSE for anything malformed: not a
 * string, bad escape, raw control byte, \u0000, lone surrogate, invalid
 * UTF-8, unterminated.
 */
int jscan_string(struct jscan *s, char *out, size_t *outlen) APP_WUR;

/*
 * jscan_u64: consumes a number that is a non-negative integer <= max
 * (exponent or fraction allowed when the value is integral, as JSON.parse
 * would read it). Returns 0, APP_EPARSE (not a number / not integral), or
 * APP_ERANGE (negative, over max or over 2^53).
 */
int jscan_u64(struct jscan *s, uint64_t max, uint64_t *out) APP_WUR;

/*
 * jscan_skip_value: consumes any JSON value (nesting up to JSCAN_MAX_DEPTH),
 * checking its syntax and string rules. Returns 0, APP_EPARSE, APP_ETOOBIG
 * (too deep).
 */
int jscan_skip_value(struct jscan *s) APP_WUR;

/* jscan_at_end: 1 if only whitespace remains. */
int jscan_at_end(struct jscan *s);

/* jscan_remaining: bytes left to scan. */
size_t jscan_remaining(const struct jscan *s);

#endif
