/*
 * json.h: JSON output in JavaScript's JSON.stringify form, and input checks
 * that cJSON does not make.
 *
 * The writer is what Nostr ids commit to (NIP-01; reference
 * nostr-protocol.md §1.1): strings get the short escapes \b \t \n \f \r \"
 * \\, other bytes below 0x20 become \u00xx (lowercase), everything else is
 * copied verbatim (UTF-8 as is, '/' and DEL unescaped). Numbers are written
 * from integers only; cJSON never formats our numbers.
 */
#ifndef APPLIANCE_JSON_H
#define APPLIANCE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct cJSON;

/*
 * struct jw: a growing output buffer. Errors are sticky: after the first
 * failed append every call is a no-op and jw_finish reports the error.
 */
struct jw {
	char *p;
	size_t len;
	size_t cap;
	size_t max; /* hard cap on len; 0 = no cap other than SIZE_MAX */
	int err;
};

/* jw_init: an empty writer that refuses to grow beyond `max` bytes (0 = unlimited). */
void jw_init(struct jw *w, size_t max);

/* jw_raw: appends s[0..len) verbatim. */
void jw_raw(struct jw *w, const char *s, size_t len);

/* jw_str: appends s[0..len) as a quoted, escaped JSON string. */
void jw_str(struct jw *w, const char *s, size_t len);

/* jw_cstr: jw_str of a NUL-terminated string. */
void jw_cstr(struct jw *w, const char *s);

/* jw_u64: appends a decimal unsigned integer. */
void jw_u64(struct jw *w, uint64_t v);

/* jw_i64: appends a decimal signed integer. */
void jw_i64(struct jw *w, int64_t v);

/*
 * jw_f64: appends a finite double as JavaScript's JSON.stringify writes it
 * (ECMAScript Number::toString: the shortest digits that read back as the
 * same double; plain notation for 1e-7 < |v| < 1e21, else "1.5e-7" /
 * "1e+21"; -0 as "0"). NaN and infinities become null, as JSON.stringify
 * does. So a JavaScript reader that re-serializes the value gets the same
 * bytes (the job result digest depends on this; PROTOCOL.md).
 */
void jw_f64(struct jw *w, double v);

/* jw_hex: appends bytes as a quoted lowercase hex string. */
void jw_hex(struct jw *w, const uint8_t *b, size_t len);

/* jw_char: appends one character. */
void jw_char(struct jw *w, char c);

/* jw_key: appends `"key":` (with a leading comma when `comma`). */
void jw_key(struct jw *w, int comma, const char *key);

/*
 * jw_finish: NUL-terminates and hands over the buffer (*out, *outlen; free
 * with free()). Returns 0, or the sticky error (APP_ENOMEM, APP_ETOOBIG),
 * in which case the buffer is freed and *out is NULL.
 */
int jw_finish(struct jw *w, char **out, size_t *outlen) APP_WUR;

/* jw_free: discards the buffer (after an error path). */
void jw_free(struct jw *w);

/*
 * json_has_nul_escape: 1 if the JSON text contains a \u0000 escape (a string
 * that would decode to NUL, which cJSON silently truncates), else 0.
 */
int json_has_nul_escape(const char *s, size_t len);

/*
 * json_parse: cJSON_ParseWithLengthOpts over s[0..len) requiring that
 * nothing but whitespace follows the value, refusing \u0000 escapes, raw
 * control bytes inside strings and nesting deeper than `max_depth`.
 * Returns 0 with *out (free with cJSON_Delete), APP_ETOOBIG (len > max),
 * APP_EPARSE, APP_ENOMEM.
 */
int json_parse(struct cJSON **out, const char *s, size_t len, size_t max, int max_depth) APP_WUR;

/*
 * json_get_u64: an integer-valued JSON number in 0..max into *out.
 * cJSON keeps numbers as doubles; this refuses fractions, exponents that do
 * not give an integer, negatives and values above 2^53 (not exact).
 * Returns 0, APP_EPARSE (not a number or not integral), APP_ERANGE.
 */
int json_get_u64(const struct cJSON *item, uint64_t max, uint64_t *out) APP_WUR;

#endif
