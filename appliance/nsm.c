#include "nsm.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "strictcbor.h"

/* linux/nsm.h (uapi since 6.8); declared here because older headers lack it. */
struct nsm_iovec_uapi {
	uint64_t addr;
	uint64_t len;
};
struct nsm_raw_uapi {
	struct nsm_iovec_uapi request;
	struct nsm_iovec_uapi response;
};
#define NSM_MAGIC 0x0A
#define NSM_IOCTL_RAW _IOWR(NSM_MAGIC, 0x0, struct nsm_raw_uapi)
_Static_assert(sizeof(struct nsm_raw_uapi) == 32, "struct nsm_raw is 32 bytes");
_Static_assert(NSM_IOCTL_RAW == 0xC0200A00u, "NSM_IOCTL_RAW value");

/* Nesting of NSM messages: {Name: {field: [u16...]}} is depth 3. */
#define NSM_CBOR_DEPTH 4

static const char *const status_names[] = {
	"Success",	"InvalidArgument",  "InvalidIndex",	"InvalidResponse", "ReadOnlyIndex",
	"InvalidOperation", "BufferTooSmall", "InputTooLarge", "InternalError",
};
#define N_STATUS (sizeof status_names / sizeof status_names[0])

static const char *const request_names[] = {
	"Error", "DescribePCR", "ExtendPCR", "LockPCR", "LockPCRs", "DescribeNSM", "Attestation", "GetRandom",
};
#define N_REQ (sizeof request_names / sizeof request_names[0])

const char *nsm_status_name(enum nsm_status st)
{
	return (unsigned)st < N_STATUS ? status_names[st] : "Unknown";
}

const char *nsm_request_name(enum nsm_request_type t)
{
	return (unsigned)t < N_REQ ? request_names[t] : "Unknown";
}

int nsm_status_to_err(enum nsm_status st)
{
	switch (st) {
	case NSM_SUCCESS:
		return 0;
	case NSM_INVALID_ARGUMENT:
		return APP_EINVAL;
	case NSM_INVALID_INDEX:
		return APP_ERANGE;
	case NSM_INVALID_RESPONSE:
		return APP_EPROTO;
	case NSM_READ_ONLY_INDEX:
		return APP_EREFUSED;
	case NSM_INVALID_OPERATION:
		return APP_EUNSUPPORTED;
	case NSM_BUFFER_TOO_SMALL:
	case NSM_INPUT_TOO_LARGE:
		return APP_ETOOBIG;
	case NSM_INTERNAL_ERROR:
		return APP_EINTERNAL;
	}
	return APP_EPROTO;
}

/* ---- generic field-table decoding of {field: value} maps ---- */

enum ftype { F_UINT, F_BYTES, F_BYTES_OR_NULL, F_BOOL, F_TEXT, F_UINT_ARRAY };

struct field {
	const char *name;
	enum ftype type;
	bool optional;
};

struct fval {
	bool present;
	bool is_null;
	uint64_t u;
	bool b;
	const uint8_t *p; /* bytes/text content, inside the libcbor tree */
	size_t len;
	const cbor_item_t *item;
};

/* decode_fields: the pairs of map into v[] per the table; refuses unknown, duplicate, missing, mistyped. */
static int decode_fields(const cbor_item_t *map, const struct field *f, size_t nf, struct fval *v)
{
	if (!cbor_isa_map(map))
		return APP_EPARSE;
	memset(v, 0, nf * sizeof *v);
	size_t n = cbor_map_size(map);
	struct cbor_pair *pairs = cbor_map_handle(map);
	for (size_t i = 0; i < n; i++) {
		size_t k = nf;
		for (size_t j = 0; j < nf; j++)
			if (strictcbor_text_is(pairs[i].key, f[j].name)) {
				k = j;
				break;
			}
		if (k == nf || v[k].present)
			return APP_EPARSE; /* unknown or duplicate */
		const cbor_item_t *val = pairs[i].value;
		struct fval *o = &v[k];
		o->present = true;
		o->item = val;
		switch (f[k].type) {
		case F_UINT:
			if (strictcbor_get_uint(val, &o->u) != 0)
				return APP_EPARSE;
			break;
		case F_BYTES_OR_NULL:
			if (cbor_is_null(val)) {
				o->is_null = true;
				break;
			}
			__attribute__((fallthrough));
		case F_BYTES:
			if (strictcbor_bytes_of(val, &o->p, &o->len) != 0)
				return APP_EPARSE;
			break;
		case F_BOOL:
			if (!cbor_is_bool(val))
				return APP_EPARSE;
			o->b = cbor_get_bool(val);
			break;
		case F_TEXT:
			if (!cbor_isa_string(val) || !cbor_string_is_definite(val))
				return APP_EPARSE;
			o->p = cbor_string_handle(val);
			o->len = cbor_string_length(val);
			break;
		case F_UINT_ARRAY:
			if (!cbor_isa_array(val))
				return APP_EPARSE;
			break;
		}
	}
	for (size_t j = 0; j < nf; j++)
		if (!v[j].present && !f[j].optional)
			return APP_EPARSE;
	return 0;
}

/* unwrap: a message is a bare text (unit variant) or a one-entry map {Name: body}. */
static int unwrap(const cbor_item_t *top, const char *const *names, size_t nnames, size_t *which,
		  const cbor_item_t **body)
{
	const cbor_item_t *name = top;
	*body = NULL;
	if (cbor_isa_map(top)) {
		if (cbor_map_size(top) != 1)
			return APP_EPARSE;
		name = cbor_map_handle(top)[0].key;
		*body = cbor_map_handle(top)[0].value;
	} else if (!cbor_isa_string(top)) {
		return APP_EPARSE;
	}
	if (!cbor_isa_string(name) || !cbor_string_is_definite(name))
		return APP_EPARSE;
	for (size_t i = 0; i < nnames; i++)
		if (strictcbor_text_is(name, names[i])) {
			*which = i;
			return 0;
		}
	return APP_EUNSUPPORTED;
}

/* ---- requests ---- */

static cbor_item_t *opt_bytes(const uint8_t *p, size_t len)
{
	return p ? strictcbor_bytes(p, len) : cbor_new_null();
}

/* wrap: {name: body} (body consumed); a bare text when body is NULL. */
static cbor_item_t *wrap(const char *name, cbor_item_t *body)
{
	if (!body)
		return strictcbor_text(name);
	cbor_item_t *m = cbor_new_definite_map(1);
	if (!m || strictcbor_map_put(m, strictcbor_text(name), body) != 0) {
		if (m)
			cbor_decref(&m);
		return NULL;
	}
	return m;
}

static int put(cbor_item_t *m, const char *k, cbor_item_t *v)
{
	return strictcbor_map_put(m, strictcbor_text(k), v);
}

static int finish_encode(cbor_item_t *item, uint8_t *out, size_t cap, size_t *len, size_t max)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int r = APP_ENOMEM;
	if (!item)
		goto out;
	if ((r = strictcbor_serialize(&buf, &n, item, max)) != 0)
		goto out;
	if (n > cap) {
		r = APP_ETOOBIG;
		goto out;
	}
	memcpy(out, buf, n);
	*len = n;
	r = 0;
out:
	free(buf);
	if (item)
		cbor_decref(&item);
	return r;
}

int nsm_request_encode(uint8_t *out, size_t cap, size_t *len, const struct nsm_request *req)
{
	cbor_item_t *body = NULL, *top = NULL;
	int r = APP_ENOMEM;
	*len = 0;
	switch (req->type) {
	case NSM_REQ_DESCRIBE_PCR:
	case NSM_REQ_LOCK_PCR:
		if (!(body = cbor_new_definite_map(1)) || put(body, "index", strictcbor_uint(req->index)) != 0)
			goto out;
		break;
	case NSM_REQ_LOCK_PCRS:
		if (!(body = cbor_new_definite_map(1)) || put(body, "range", strictcbor_uint(req->range)) != 0)
			goto out;
		break;
	case NSM_REQ_EXTEND_PCR:
		if (!req->data && req->data_len) {
			r = APP_EINVAL;
			goto out;
		}
		if (req->data_len > NSM_REQUEST_MAX) {
			r = APP_ETOOBIG;
			goto out;
		}
		if (!(body = cbor_new_definite_map(2)) || put(body, "index", strictcbor_uint(req->index)) != 0 ||
		    put(body, "data", strictcbor_bytes(req->data, req->data_len)) != 0)
			goto out;
		break;
	case NSM_REQ_ATTESTATION:
		if (req->user_data_len > NSM_FIELD_MAX || req->nonce_len > NSM_FIELD_MAX ||
		    req->public_key_len > NSM_FIELD_MAX) {
			r = APP_ETOOBIG;
			goto out;
		}
		if (!(body = cbor_new_definite_map(3)) ||
		    put(body, "user_data", opt_bytes(req->user_data, req->user_data_len)) != 0 ||
		    put(body, "nonce", opt_bytes(req->nonce, req->nonce_len)) != 0 ||
		    put(body, "public_key", opt_bytes(req->public_key, req->public_key_len)) != 0)
			goto out;
		break;
	case NSM_REQ_DESCRIBE_NSM:
	case NSM_REQ_GET_RANDOM:
		break;
	default:
		r = APP_EINVAL;
		goto out;
	}
	top = wrap(nsm_request_name(req->type), body);
	body = NULL;
	r = finish_encode(top, out, cap, len, NSM_REQUEST_MAX);
	top = NULL;
out:
	if (body)
		cbor_decref(&body);
	return r;
}

void nsm_request_clear(struct nsm_request *req)
{
	if (!req)
		return;
	free(req->priv_);
	memset(req, 0, sizeof *req);
}

/* copy_field: duplicates a byte field into the request's storage at *cursor. */
static const uint8_t *copy_field(uint8_t **cursor, const struct fval *v)
{
	if (!v->present || v->is_null)
		return NULL;
	uint8_t *dst = *cursor;
	if (v->len)
		memcpy(dst, v->p, v->len);
	*cursor += v->len;
	return dst;
}

int nsm_request_decode(struct nsm_request *out, const uint8_t *buf, size_t len)
{
	cbor_item_t *top = NULL;
	const cbor_item_t *body = NULL;
	size_t which = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (len > NSM_REQUEST_MAX)
		return APP_ETOOBIG;
	if ((r = strictcbor_load(&top, buf, len, NSM_CBOR_DEPTH, NULL)) != 0)
		goto out;
	if ((r = unwrap(top, request_names, N_REQ, &which, &body)) != 0)
		goto out;
	r = APP_EPARSE;
	enum nsm_request_type t = (enum nsm_request_type)which;
	bool unit = t == NSM_REQ_DESCRIBE_NSM || t == NSM_REQ_GET_RANDOM;
	if (t == NSM_REQ_NONE) {
		r = APP_EUNSUPPORTED; /* "Error" is not a request */
		goto out;
	}
	if (unit != (body == NULL))
		goto out;
	out->type = t;
	struct fval v[3];
	switch (t) {
	case NSM_REQ_DESCRIBE_PCR:
	case NSM_REQ_LOCK_PCR: {
		static const struct field f[] = {{"index", F_UINT, false}};
		if (decode_fields(body, f, 1, v) != 0 || v[0].u > UINT16_MAX)
			goto out;
		out->index = (uint16_t)v[0].u;
		break;
	}
	case NSM_REQ_LOCK_PCRS: {
		static const struct field f[] = {{"range", F_UINT, false}};
		if (decode_fields(body, f, 1, v) != 0 || v[0].u > UINT16_MAX)
			goto out;
		out->range = (uint16_t)v[0].u;
		break;
	}
	case NSM_REQ_EXTEND_PCR: {
		static const struct field f[] = {{"index", F_UINT, false}, {"data", F_BYTES, false}};
		if (decode_fields(body, f, 2, v) != 0 || v[0].u > UINT16_MAX)
			goto out;
		out->index = (uint16_t)v[0].u;
		uint8_t *store = malloc(v[1].len + 1), *cur = store;
		if (!store) {
			r = APP_ENOMEM;
			goto out;
		}
		out->priv_ = store;
		out->data = copy_field(&cur, &v[1]);
		out->data_len = v[1].len;
		break;
	}
	case NSM_REQ_ATTESTATION: {
		/* serde fills a missing Option field with None: absent is accepted as null. */
		static const struct field f[] = {{"user_data", F_BYTES_OR_NULL, true},
						 {"nonce", F_BYTES_OR_NULL, true},
						 {"public_key", F_BYTES_OR_NULL, true}};
		if (decode_fields(body, f, 3, v) != 0)
			goto out;
		uint8_t *store = malloc(v[0].len + v[1].len + v[2].len + 1), *cur = store;
		if (!store) {
			r = APP_ENOMEM;
			goto out;
		}
		out->priv_ = store;
		out->user_data = copy_field(&cur, &v[0]);
		out->user_data_len = v[0].len;
		out->nonce = copy_field(&cur, &v[1]);
		out->nonce_len = v[1].len;
		out->public_key = copy_field(&cur, &v[2]);
		out->public_key_len = v[2].len;
		break;
	}
	default:
		break;
	}
	r = 0;
out:
	if (top)
		cbor_decref(&top);
	if (r != 0)
		nsm_request_clear(out);
	return r;
}

/* ---- responses ---- */

static const char *const digest_names[] = {"", "SHA256", "SHA384", "SHA512"};

static size_t digest_len(enum nsm_digest d)
{
	return d == NSM_DIGEST_SHA256 ? 32 : d == NSM_DIGEST_SHA384 ? 48 : d == NSM_DIGEST_SHA512 ? 64 : 0;
}

int nsm_response_encode(uint8_t *out, size_t cap, size_t *len, const struct nsm_response *resp)
{
	cbor_item_t *body = NULL, *top = NULL, *arr = NULL;
	int r = APP_ENOMEM;
	*len = 0;
	switch (resp->type) {
	case NSM_REQ_NONE:
		if (resp->status == NSM_SUCCESS || (unsigned)resp->status >= N_STATUS) {
			r = APP_EINVAL;
			goto out;
		}
		if (!(body = strictcbor_text(nsm_status_name(resp->status))))
			goto out;
		break;
	case NSM_REQ_DESCRIBE_PCR:
	case NSM_REQ_EXTEND_PCR:
		if (resp->pcr_len != 32 && resp->pcr_len != 48 && resp->pcr_len != 64) {
			r = APP_EINVAL;
			goto out;
		}
		if (resp->type == NSM_REQ_DESCRIBE_PCR) {
			if (!(body = cbor_new_definite_map(2)) || put(body, "lock", cbor_build_bool(resp->lock != 0)) != 0)
				goto out;
		} else if (!(body = cbor_new_definite_map(1))) {
			goto out;
		}
		if (put(body, "data", strictcbor_bytes(resp->pcr, resp->pcr_len)) != 0)
			goto out;
		break;
	case NSM_REQ_LOCK_PCR:
	case NSM_REQ_LOCK_PCRS:
		break;
	case NSM_REQ_DESCRIBE_NSM: {
		if (resp->max_pcrs == 0 || resp->max_pcrs > NSM_PCR_COUNT || !digest_len(resp->digest) ||
		    memchr(resp->module_id, 0, sizeof resp->module_id) == NULL) {
			r = APP_EINVAL;
			goto out;
		}
		size_t nlocked = 0;
		for (unsigned i = 0; i < NSM_PCR_COUNT; i++)
			nlocked += (resp->locked_pcrs >> i) & 1u;
		if (!(arr = cbor_new_definite_array(nlocked)))
			goto out;
		for (unsigned i = 0; i < resp->max_pcrs; i++) {
			if (!((resp->locked_pcrs >> i) & 1u))
				continue;
			cbor_item_t *x = strictcbor_uint(i);
			bool ok = x && cbor_array_push(arr, x);
			if (x)
				cbor_decref(&x);
			if (!ok)
				goto out;
		}
		if (cbor_array_size(arr) != nlocked) {
			r = APP_EINVAL; /* a locked bit at or above max_pcrs */
			goto out;
		}
		if (!(body = cbor_new_definite_map(7)) || put(body, "version_major", strictcbor_uint(resp->version_major)) != 0 ||
		    put(body, "version_minor", strictcbor_uint(resp->version_minor)) != 0 ||
		    put(body, "version_patch", strictcbor_uint(resp->version_patch)) != 0 ||
		    put(body, "module_id", strictcbor_text(resp->module_id)) != 0 ||
		    put(body, "max_pcrs", strictcbor_uint(resp->max_pcrs)) != 0)
			goto out;
		r = put(body, "locked_pcrs", arr);
		arr = NULL;
		if (r != 0 || put(body, "digest", strictcbor_text(digest_names[resp->digest])) != 0) {
			r = APP_ENOMEM;
			goto out;
		}
		break;
	}
	case NSM_REQ_ATTESTATION:
		if (!resp->document || resp->document_len == 0) {
			r = APP_EINVAL;
			goto out;
		}
		if (resp->document_len > NSM_RESPONSE_MAX) {
			r = APP_ETOOBIG;
			goto out;
		}
		if (!(body = cbor_new_definite_map(1)) ||
		    put(body, "document", strictcbor_bytes(resp->document, resp->document_len)) != 0)
			goto out;
		break;
	case NSM_REQ_GET_RANDOM:
		if (!resp->random || resp->random_len == 0) {
			r = APP_EINVAL;
			goto out;
		}
		if (resp->random_len > NSM_RESPONSE_MAX) {
			r = APP_ETOOBIG;
			goto out;
		}
		if (!(body = cbor_new_definite_map(1)) ||
		    put(body, "random", strictcbor_bytes(resp->random, resp->random_len)) != 0)
			goto out;
		break;
	default:
		r = APP_EINVAL;
		goto out;
	}
	top = wrap(nsm_request_name(resp->type), body);
	body = NULL;
	r = finish_encode(top, out, cap, len, NSM_RESPONSE_MAX);
out:
	if (body)
		cbor_decref(&body);
	if (arr)
		cbor_decref(&arr);
	return r;
}

void nsm_response_clear(struct nsm_response *resp)
{
	if (!resp)
		return;
	free(resp->document);
	if (resp->random)
		sodium_memzero(resp->random, resp->random_len); /* may seed keys */
	free(resp->random);
	sodium_memzero(resp, sizeof *resp);
}

static int dup_bytes(uint8_t **dst, size_t *dlen, const struct fval *v, size_t max)
{
	if (v->len == 0 || v->len > max)
		return APP_EPARSE;
	if (!(*dst = malloc(v->len)))
		return APP_ENOMEM;
	memcpy(*dst, v->p, v->len);
	*dlen = v->len;
	return 0;
}

static int decode_describe_nsm(struct nsm_response *out, const cbor_item_t *body)
{
	static const struct field f[] = {
		{"version_major", F_UINT, false}, {"version_minor", F_UINT, false}, {"version_patch", F_UINT, false},
		{"module_id", F_TEXT, false},	   {"max_pcrs", F_UINT, false},	     {"locked_pcrs", F_UINT_ARRAY, false},
		{"digest", F_TEXT, false},
	};
	struct fval v[7];
	if (decode_fields(body, f, 7, v) != 0)
		return APP_EPARSE;
	if (v[0].u > UINT16_MAX || v[1].u > UINT16_MAX || v[2].u > UINT16_MAX || v[4].u == 0 ||
	    v[4].u > NSM_PCR_COUNT)
		return APP_EPARSE;
	out->version_major = (uint16_t)v[0].u;
	out->version_minor = (uint16_t)v[1].u;
	out->version_patch = (uint16_t)v[2].u;
	out->max_pcrs = (uint16_t)v[4].u;
	if (v[3].len == 0 || v[3].len > NSM_MODULE_ID_MAX)
		return APP_EPARSE;
	for (size_t i = 0; i < v[3].len; i++)
		if (v[3].p[i] < 0x20 || v[3].p[i] > 0x7e)
			return APP_EPARSE;
	memcpy(out->module_id, v[3].p, v[3].len);
	out->module_id[v[3].len] = 0;
	out->digest = 0;
	for (int d = NSM_DIGEST_SHA256; d <= NSM_DIGEST_SHA512; d++)
		if (strictcbor_text_is(v[6].item, digest_names[d]))
			out->digest = (enum nsm_digest)d;
	if (!out->digest)
		return APP_EPARSE;
	/* locked_pcrs: a BTreeSet<u16>, so strictly ascending. */
	size_t n = cbor_array_size(v[5].item);
	cbor_item_t **items = cbor_array_handle(v[5].item);
	int64_t prev = -1;
	for (size_t i = 0; i < n; i++) {
		uint64_t idx;
		if (strictcbor_get_uint(items[i], &idx) != 0 || idx >= out->max_pcrs || (int64_t)idx <= prev)
			return APP_EPARSE;
		prev = (int64_t)idx;
		out->locked_pcrs |= 1u << idx;
	}
	return 0;
}

int nsm_response_decode(struct nsm_response *out, const uint8_t *buf, size_t len)
{
	cbor_item_t *top = NULL;
	const cbor_item_t *body = NULL;
	size_t which = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (len > NSM_RESPONSE_MAX)
		return APP_ETOOBIG;
	if ((r = strictcbor_load(&top, buf, len, NSM_CBOR_DEPTH, NULL)) != 0)
		goto out;
	if ((r = unwrap(top, request_names, N_REQ, &which, &body)) != 0) {
		r = APP_EPARSE;
		goto out;
	}
	r = APP_EPARSE;
	out->type = (enum nsm_request_type)which;
	bool unit = out->type == NSM_REQ_LOCK_PCR || out->type == NSM_REQ_LOCK_PCRS;
	if (unit != (body == NULL))
		goto out;
	struct fval v[2];
	switch (out->type) {
	case NSM_REQ_NONE: {
		size_t code = N_STATUS;
		for (size_t i = 1; i < N_STATUS; i++)
			if (strictcbor_text_is(body, status_names[i]))
				code = i;
		if (code == N_STATUS)
			goto out;
		out->status = (enum nsm_status)code;
		break;
	}
	case NSM_REQ_DESCRIBE_PCR:
	case NSM_REQ_EXTEND_PCR: {
		static const struct field fd[] = {{"lock", F_BOOL, false}, {"data", F_BYTES, false}};
		static const struct field fe[] = {{"data", F_BYTES, false}};
		bool d = out->type == NSM_REQ_DESCRIBE_PCR;
		if (decode_fields(body, d ? fd : fe, d ? 2 : 1, v) != 0)
			goto out;
		const struct fval *data = &v[d ? 1 : 0];
		if (data->len != 32 && data->len != 48 && data->len != 64)
			goto out;
		out->lock = d ? v[0].b : 0;
		memcpy(out->pcr, data->p, data->len);
		out->pcr_len = data->len;
		break;
	}
	case NSM_REQ_DESCRIBE_NSM:
		if (decode_describe_nsm(out, body) != 0)
			goto out;
		break;
	case NSM_REQ_ATTESTATION: {
		static const struct field f[] = {{"document", F_BYTES, false}};
		if (decode_fields(body, f, 1, v) != 0 ||
		    (r = dup_bytes(&out->document, &out->document_len, &v[0], NSM_RESPONSE_MAX)) != 0)
			goto out;
		break;
	}
	case NSM_REQ_GET_RANDOM: {
		static const struct field f[] = {{"random", F_BYTES, false}};
		if (decode_fields(body, f, 1, v) != 0 ||
		    (r = dup_bytes(&out->random, &out->random_len, &v[0], NSM_RESPONSE_MAX)) != 0)
			goto out;
		break;
	}
	default:
		break;
	}
	r = 0;
out:
	if (top)
		cbor_decref(&top);
	if (r != 0)
		nsm_response_clear(out);
	return r;
}

/* ---- framing (unix transport) ---- */

static int io_err(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK)
		return APP_ETIMEOUT;
	if (e == EPIPE || e == ECONNRESET || e == ENOTCONN)
		return APP_ECONN;
	return APP_EIO;
}

static int read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, buf + *got, len - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_err(errno);
		if (n == 0)
			return APP_ECONN;
		*got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_err(errno);
		off += (size_t)n;
	}
	return 0;
}

int nsm_frame_read(int fd, uint8_t *buf, size_t max, size_t *len)
{
	uint8_t hdr[NSM_FRAME_HEADER];
	size_t got = 0;
	*len = 0;
	int r = read_full(fd, hdr, sizeof hdr, &got);
	if (r != 0)
		return r;
	size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (n == 0)
		return APP_EPROTO;
	if (n > max)
		return APP_ETOOBIG;
	if ((r = read_full(fd, buf, n, &got)) != 0)
		return r;
	*len = n;
	return 0;
}

int nsm_frame_write(int fd, const uint8_t *buf, size_t len)
{
	if (len == 0 || len > UINT32_MAX)
		return APP_EINVAL;
	uint8_t hdr[NSM_FRAME_HEADER] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
					 (uint8_t)len};
	int r = write_full(fd, hdr, sizeof hdr);
	return r ? r : write_full(fd, buf, len);
}

/* ---- connections ---- */

enum nsm_kind { NSM_KIND_DEVICE = 1, NSM_KIND_UNIX, NSM_KIND_CUSTOM };

struct nsm {
	enum nsm_kind kind;
	int fd;
	struct sockaddr_un addr;
	nsm_transport_fn fn;
	void *arg;
	pthread_mutex_t lock;
};

static struct nsm *nsm_alloc(enum nsm_kind kind)
{
	struct nsm *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->kind = kind;
	n->fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	return n;
}

int nsm_open_device(struct nsm **out, const char *path)
{
	*out = NULL;
	struct nsm *n = nsm_alloc(NSM_KIND_DEVICE);
	if (!n)
		return APP_ENOMEM;
	n->fd = open(path ? path : NSM_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (n->fd < 0) {
		int e = errno;
		nsm_close(n);
		return e == ENOENT || e == ENODEV || e == ENXIO ? APP_ENOENT : APP_EIO;
	}
	*out = n;
	return 0;
}

static int unix_connect(struct nsm *n)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return APP_EIO;
	struct timeval tv = {.tv_sec = NSM_IO_TIMEOUT_MS / 1000, .tv_usec = (NSM_IO_TIMEOUT_MS % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		close(fd);
		return APP_EIO;
	}
	int rc;
	do
		rc = connect(fd, (const struct sockaddr *)&n->addr, sizeof n->addr);
	while (rc != 0 && errno == EINTR);
	if (rc != 0) {
		int e = errno;
		close(fd);
		return e == ENOENT ? APP_ENOENT : APP_ECONN;
	}
	n->fd = fd;
	return 0;
}

int nsm_open_unix(struct nsm **out, const char *path)
{
	*out = NULL;
	if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) || !*path)
		return APP_EINVAL;
	struct nsm *n = nsm_alloc(NSM_KIND_UNIX);
	if (!n)
		return APP_ENOMEM;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, strlen(path) + 1);
	int r = unix_connect(n);
	if (r != 0) {
		nsm_close(n);
		return r;
	}
	*out = n;
	return 0;
}

int nsm_open_custom(struct nsm **out, nsm_transport_fn fn, void *arg)
{
	*out = NULL;
	if (!fn)
		return APP_EINVAL;
	struct nsm *n = nsm_alloc(NSM_KIND_CUSTOM);
	if (!n)
		return APP_ENOMEM;
	n->fn = fn;
	n->arg = arg;
	*out = n;
	return 0;
}

int nsm_open_spec(struct nsm **out, const char *spec)
{
	*out = NULL;
	if (!spec)
		return APP_EINVAL;
	if (!strcmp(spec, "dev") || !strcmp(spec, "device"))
		return nsm_open_device(out, NULL);
	if (!strncmp(spec, "dev:", 4))
		return nsm_open_device(out, spec + 4);
	if (!strncmp(spec, "unix:", 5))
		return nsm_open_unix(out, spec + 5);
	return APP_EINVAL;
}

void nsm_close(struct nsm *n)
{
	if (!n)
		return;
	if (n->fd >= 0)
		close(n->fd);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static int raw_device(struct nsm *n, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	struct nsm_raw_uapi raw = {
		.request = {.addr = (uint64_t)(uintptr_t)req, .len = req_len},
		.response = {.addr = (uint64_t)(uintptr_t)resp, .len = *resp_len},
	};
	int rc;
	do
		rc = ioctl(n->fd, NSM_IOCTL_RAW, &raw);
	while (rc != 0 && errno == EINTR);
	if (rc != 0)
		return errno == EMSGSIZE ? APP_ETOOBIG : APP_EINTERNAL;
	if (raw.response.len == 0 || raw.response.len > *resp_len)
		return APP_EPROTO;
	*resp_len = (size_t)raw.response.len;
	return 0;
}

static int raw_unix(struct nsm *n, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	int r;
	if (n->fd < 0 && (r = unix_connect(n)) != 0)
		return r;
	size_t got = 0;
	if ((r = nsm_frame_write(n->fd, req, req_len)) != 0 ||
	    (r = nsm_frame_read(n->fd, resp, *resp_len, &got)) != 0) {
		/* The stream position is unknown now: reconnect on the next call. */
		close(n->fd);
		n->fd = -1;
		return r == APP_ETOOBIG ? APP_EPROTO : r;
	}
	*resp_len = got;
	return 0;
}

int nsm_raw(struct nsm *n, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	if (!n || !resp || !resp_len || !req || req_len == 0)
		return APP_EINVAL;
	if (req_len > NSM_REQUEST_MAX)
		return APP_ETOOBIG;
	if (*resp_len > NSM_RESPONSE_MAX)
		*resp_len = NSM_RESPONSE_MAX;
	int r = APP_EINTERNAL;
	pthread_mutex_lock(&n->lock);
	switch (n->kind) {
	case NSM_KIND_DEVICE:
		r = raw_device(n, resp, resp_len, req, req_len);
		break;
	case NSM_KIND_UNIX:
		r = raw_unix(n, resp, resp_len, req, req_len);
		break;
	case NSM_KIND_CUSTOM: {
		size_t cap = *resp_len;
		r = n->fn(n->arg, resp, resp_len, req, req_len);
		if (r == 0 && (*resp_len == 0 || *resp_len > cap))
			r = APP_EPROTO;
		break;
	}
	}
	pthread_mutex_unlock(&n->lock);
	return r;
}

int nsm_call(struct nsm *n, struct nsm_response *resp, const struct nsm_request *req)
{
	uint8_t reqbuf[NSM_REQUEST_MAX];
	uint8_t *rbuf = NULL;
	size_t reqlen = 0, rlen = NSM_RESPONSE_MAX;
	int r;
	memset(resp, 0, sizeof *resp);
	if ((r = nsm_request_encode(reqbuf, sizeof reqbuf, &reqlen, req)) != 0)
		goto out;
	if (!(rbuf = malloc(NSM_RESPONSE_MAX))) {
		r = APP_ENOMEM;
		goto out;
	}
	if ((r = nsm_raw(n, rbuf, &rlen, reqbuf, reqlen)) != 0)
		goto out;
	if ((r = nsm_response_decode(resp, rbuf, rlen)) != 0) {
		r = r == APP_ENOMEM ? r : APP_EPROTO;
		goto out;
	}
	if (resp->type == NSM_REQ_NONE) {
		r = nsm_status_to_err(resp->status);
		goto out;
	}
	r = resp->type == req->type ? 0 : APP_EPROTO;
out:
	free(rbuf);
	return r;
}

int nsm_describe_pcr(struct nsm *n, uint16_t index, int *locked, uint8_t pcr[NSM_PCR_LEN])
{
	struct nsm_request req = {.type = NSM_REQ_DESCRIBE_PCR, .index = index};
	struct nsm_response resp;
	int r = nsm_call(n, &resp, &req);
	if (r == 0 && resp.pcr_len != NSM_PCR_LEN)
		r = APP_EPROTO;
	if (r == 0) {
		if (locked)
			*locked = resp.lock;
		memcpy(pcr, resp.pcr, NSM_PCR_LEN);
	}
	nsm_response_clear(&resp);
	return r;
}

int nsm_extend_pcr(struct nsm *n, uint16_t index, const uint8_t *data, size_t len, uint8_t pcr[NSM_PCR_LEN])
{
	struct nsm_request req = {.type = NSM_REQ_EXTEND_PCR, .index = index, .data = data, .data_len = len};
	struct nsm_response resp;
	int r = nsm_call(n, &resp, &req);
	if (r == 0 && resp.pcr_len != NSM_PCR_LEN)
		r = APP_EPROTO;
	if (r == 0 && pcr)
		memcpy(pcr, resp.pcr, NSM_PCR_LEN);
	nsm_response_clear(&resp);
	return r;
}

int nsm_lock_pcr(struct nsm *n, uint16_t index)
{
	struct nsm_request req = {.type = NSM_REQ_LOCK_PCR, .index = index};
	struct nsm_response resp;
	int r = nsm_call(n, &resp, &req);
	nsm_response_clear(&resp);
	return r;
}

int nsm_lock_pcrs(struct nsm *n, uint16_t range)
{
	struct nsm_request req = {.type = NSM_REQ_LOCK_PCRS, .range = range};
	struct nsm_response resp;
	int r = nsm_call(n, &resp, &req);
	nsm_response_clear(&resp);
	return r;
}

int nsm_describe(struct nsm *n, struct nsm_response *out)
{
	struct nsm_request req = {.type = NSM_REQ_DESCRIBE_NSM};
	int r = nsm_call(n, out, &req);
	if (r != 0)
		nsm_response_clear(out);
	return r;
}

int nsm_attestation(struct nsm *n, uint8_t **doc, size_t *len, const uint8_t *user_data, size_t user_data_len,
		    const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key, size_t public_key_len)
{
	struct nsm_request req = {.type = NSM_REQ_ATTESTATION,
				  .user_data = user_data,
				  .user_data_len = user_data ? user_data_len : 0,
				  .nonce = nonce,
				  .nonce_len = nonce ? nonce_len : 0,
				  .public_key = public_key,
				  .public_key_len = public_key ? public_key_len : 0};
	struct nsm_response resp;
	*doc = NULL;
	*len = 0;
	int r = nsm_call(n, &resp, &req);
	if (r == 0) {
		*doc = resp.document;
		*len = resp.document_len;
		resp.document = NULL;
	}
	nsm_response_clear(&resp);
	return r;
}

int nsm_get_random(struct nsm *n, uint8_t *buf, size_t len)
{
	struct nsm_request req = {.type = NSM_REQ_GET_RANDOM};
	size_t off = 0;
	int r = 0;
	while (off < len) {
		struct nsm_response resp;
		r = nsm_call(n, &resp, &req);
		if (r == 0) {
			size_t take = resp.random_len < len - off ? resp.random_len : len - off;
			memcpy(buf + off, resp.random, take);
			off += take;
		}
		nsm_response_clear(&resp);
		if (r != 0)
			break;
	}
	return r;
}
