#include "strictcbor.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Nesting limit of the scanner's fixed stack (callers ask for less). */
#define SCAN_DEPTH_LIMIT 32

struct scan_frame {
	uint64_t remaining; /* items still expected (definite containers) */
	uint64_t seen;      /* items seen (parity check of indefinite maps) */
	bool indefinite;
	bool is_map;
};

struct scan {
	struct scan_frame frame[SCAN_DEPTH_LIMIT];
	unsigned depth, max_depth;
	size_t off;  /* offset of the item being decoded */
	size_t left; /* bytes from off to the end of the input */
	bool called; /* a callback ran during the current decode step */
	bool done;   /* the top-level item is complete */
	const char *err;
};

static void fail(struct scan *s, const char *why)
{
	if (!s->err)
		s->err = why;
}

/* item_complete: one item ended; close every definite container it fills. */
static void item_complete(struct scan *s)
{
	for (;;) {
		if (s->depth == 0) {
			s->done = true;
			return;
		}
		struct scan_frame *f = &s->frame[s->depth - 1];
		f->seen++;
		if (f->indefinite)
			return;
		if (--f->remaining > 0)
			return;
		s->depth--;
	}
}

static void on_item(struct scan *s)
{
	s->called = true;
	if (s->done)
		fail(s, "bytes after the CBOR item");
	else
		item_complete(s);
}

static void open_container(struct scan *s, size_t size, bool indefinite, bool is_map)
{
	s->called = true;
	if (s->done) {
		fail(s, "bytes after the CBOR item");
		return;
	}
	if (s->depth >= s->max_depth) {
		fail(s, "CBOR nesting too deep");
		return;
	}
	uint64_t n = size;
	if (!indefinite) {
		/* Every element takes at least one byte: refuse counts the input cannot hold. */
		if (size > s->left || (is_map && size > s->left / 2)) {
			fail(s, "CBOR container count exceeds the input");
			return;
		}
		if (is_map)
			n = (uint64_t)size * 2;
		if (n == 0) {
			item_complete(s);
			return;
		}
	}
	s->frame[s->depth++] = (struct scan_frame){.remaining = n, .indefinite = indefinite, .is_map = is_map};
}

static struct scan *S(void *ctx) { return ctx; }

static void cb_u8(void *c, uint8_t v) { (void)v; on_item(S(c)); }
static void cb_u16(void *c, uint16_t v) { (void)v; on_item(S(c)); }
static void cb_u32(void *c, uint32_t v) { (void)v; on_item(S(c)); }
static void cb_u64(void *c, uint64_t v) { (void)v; on_item(S(c)); }
static void cb_str(void *c, cbor_data d, size_t n) { (void)d; (void)n; on_item(S(c)); }
static void cb_null(void *c) { on_item(S(c)); }
static void cb_bool(void *c, bool v) { (void)v; on_item(S(c)); }

static void cb_indef_str(void *c)
{
	S(c)->called = true;
	fail(S(c), "indefinite-length string");
}

static void cb_array(void *c, size_t n) { open_container(S(c), n, false, false); }
static void cb_indef_array(void *c) { open_container(S(c), 0, true, false); }
static void cb_map(void *c, size_t n) { open_container(S(c), n, false, true); }
static void cb_indef_map(void *c) { open_container(S(c), 0, true, true); }

static void cb_tag(void *c, uint64_t v)
{
	(void)v;
	S(c)->called = true;
	fail(S(c), "unexpected CBOR tag");
}

static void cb_float(void *c, float v)
{
	(void)v;
	S(c)->called = true;
	fail(S(c), "floating-point value");
}

static void cb_double(void *c, double v)
{
	(void)v;
	S(c)->called = true;
	fail(S(c), "floating-point value");
}

static void cb_undef(void *c)
{
	S(c)->called = true;
	fail(S(c), "undefined value");
}

static void cb_break(void *c)
{
	struct scan *s = S(c);
	s->called = true;
	if (s->depth == 0 || !s->frame[s->depth - 1].indefinite) {
		fail(s, "unexpected break");
		return;
	}
	struct scan_frame *f = &s->frame[s->depth - 1];
	if (f->is_map && f->seen % 2 != 0) {
		fail(s, "indefinite map with a key but no value");
		return;
	}
	s->depth--;
	on_item(s);
}

static const struct cbor_callbacks scan_callbacks = {
	.uint8 = cb_u8,
	.uint16 = cb_u16,
	.uint32 = cb_u32,
	.uint64 = cb_u64,
	.negint8 = cb_u8,
	.negint16 = cb_u16,
	.negint32 = cb_u32,
	.negint64 = cb_u64,
	.byte_string = cb_str,
	.byte_string_start = cb_indef_str,
	.string = cb_str,
	.string_start = cb_indef_str,
	.array_start = cb_array,
	.indef_array_start = cb_indef_array,
	.map_start = cb_map,
	.indef_map_start = cb_indef_map,
	.tag = cb_tag,
	.float2 = cb_float,
	.float4 = cb_float,
	.float8 = cb_double,
	.undefined = cb_undef,
	.null = cb_null,
	.boolean = cb_bool,
	.indef_break = cb_break,
};

int strictcbor_scan(const uint8_t *buf, size_t len, unsigned max_depth, const char **reason)
{
	struct scan s = {.max_depth = max_depth < SCAN_DEPTH_LIMIT ? max_depth : SCAN_DEPTH_LIMIT};
	const char *why = NULL;
	if (!buf || len == 0) {
		why = "empty input";
		goto out;
	}
	while (s.off < len) {
		if (s.done) {
			why = "bytes after the CBOR item";
			goto out;
		}
		s.left = len - s.off;
		s.called = false;
		struct cbor_decoder_result res = cbor_stream_decode(buf + s.off, s.left, &scan_callbacks, &s);
		if (s.err) {
			why = s.err;
			goto out;
		}
		if (res.status == CBOR_DECODER_NEDATA) {
			why = "truncated CBOR";
			goto out;
		}
		if (res.status != CBOR_DECODER_FINISHED || !s.called || res.read == 0 || res.read > s.left) {
			why = "malformed CBOR";
			goto out;
		}
		s.off += res.read;
	}
	if (!s.done)
		why = "truncated CBOR";
out:
	if (reason)
		*reason = why;
	return why ? APP_EPARSE : 0;
}

int strictcbor_load(cbor_item_t **out, const uint8_t *buf, size_t len, unsigned max_depth, const char **reason)
{
	*out = NULL;
	int r = strictcbor_scan(buf, len, max_depth, reason);
	if (r != 0)
		return r;
	struct cbor_load_result res;
	cbor_item_t *item = cbor_load(buf, len, &res);
	if (!item) {
		if (reason)
			*reason = res.error.code == CBOR_ERR_MEMERROR ? "out of memory" : "malformed CBOR";
		return res.error.code == CBOR_ERR_MEMERROR ? APP_ENOMEM : APP_EPARSE;
	}
	if (res.read != len) {
		/* Unreachable after the scan; kept because the scan and libcbor are separate code. */
		cbor_decref(&item);
		if (reason)
			*reason = "bytes after the CBOR item";
		return APP_EPARSE;
	}
	*out = item;
	return 0;
}

cbor_item_t *strictcbor_uint(uint64_t v)
{
	if (v <= UINT8_MAX)
		return cbor_build_uint8((uint8_t)v);
	if (v <= UINT16_MAX)
		return cbor_build_uint16((uint16_t)v);
	if (v <= UINT32_MAX)
		return cbor_build_uint32((uint32_t)v);
	return cbor_build_uint64(v);
}

cbor_item_t *strictcbor_bytes(const uint8_t *p, size_t len)
{
	static const uint8_t empty[1];
	return cbor_build_bytestring(len ? p : empty, len);
}

cbor_item_t *strictcbor_text(const char *s)
{
	return cbor_build_string(s);
}

int strictcbor_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value)
{
	bool ok = map && key && value && cbor_map_add(map, (struct cbor_pair){.key = key, .value = value});
	if (key)
		cbor_decref(&key);
	if (value)
		cbor_decref(&value);
	return ok ? 0 : APP_ENOMEM;
}

int strictcbor_serialize(uint8_t **out, size_t *len, const cbor_item_t *item, size_t max)
{
	*out = NULL;
	*len = 0;
	unsigned char *buf = NULL;
	size_t cap = 0;
	size_t n = cbor_serialize_alloc(item, &buf, &cap);
	if (n == 0 || !buf) {
		free(buf);
		return APP_ENOMEM;
	}
	if (n > max) {
		free(buf);
		return APP_ETOOBIG;
	}
	*out = buf;
	*len = n;
	return 0;
}

int strictcbor_get_uint(const cbor_item_t *item, uint64_t *out)
{
	*out = 0;
	if (!item || !cbor_isa_uint(item))
		return APP_EPARSE;
	*out = cbor_get_int(item);
	return 0;
}

int strictcbor_text_is(const cbor_item_t *item, const char *s)
{
	if (!item || !cbor_isa_string(item) || !cbor_string_is_definite(item))
		return 0;
	size_t n = strlen(s);
	return cbor_string_length(item) == n && (n == 0 || memcmp(cbor_string_handle(item), s, n) == 0);
}

int strictcbor_bytes_of(const cbor_item_t *item, const uint8_t **p, size_t *len)
{
	static const uint8_t empty[1];
	*p = NULL;
	*len = 0;
	if (!item || !cbor_isa_bytestring(item) || !cbor_bytestring_is_definite(item))
		return APP_EPARSE;
	*len = cbor_bytestring_length(item);
	*p = *len ? cbor_bytestring_handle(item) : empty;
	return 0;
}
