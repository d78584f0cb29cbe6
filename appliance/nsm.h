/*
 * nsm.h: the Nitro Secure Module (NSM) client: one request/response API over
 * two transports that carry identical CBOR.
 *
 *   device   /dev/nsm, ioctl NSM_IOCTL_RAW (Linux uapi linux/nsm.h; reference
 *            nitro-enclaves.md §1.1): request <= 4096 bytes, response <= 12288.
 *   unix     a stream socket to the development emulator (parent/nsm_emu.h),
 *            one frame per message: a 4-byte big-endian length N, then N
 *            bytes of CBOR. Requests: 1 <= N <= NSM_REQUEST_MAX; responses:
 *            1 <= N <= NSM_RESPONSE_MAX. One response per request, in order;
 *            a connection carries any number of requests. A frame that breaks
 *            these rules ends the connection (the emulator first answers an
 *            oversized request with {"Error":"InputTooLarge"}).
 *
 * Messages (serde externally tagged enums, reference §1.2): a unit request is
 * a bare text string ("DescribeNSM", "GetRandom"); a request with fields is
 * a one-entry map {Name: {field: value, ...}}; Option::None is CBOR null;
 * byte fields are bstr. Responses likewise, errors as {"Error": "<Code>"}.
 * Encoders write fields in declaration order with the smallest integer
 * widths; decoders accept any integer width and any field order, and refuse
 * unknown, duplicate, missing or mistyped fields.
 *
 * Error codes (ErrorCode enum) map to APP_E* as follows; the raw code is kept
 * in struct nsm_response.status:
 *   InvalidArgument -> APP_EINVAL      InvalidIndex     -> APP_ERANGE
 *   InvalidResponse -> APP_EPROTO      ReadOnlyIndex    -> APP_EREFUSED
 *   InvalidOperation-> APP_EUNSUPPORTED BufferTooSmall  -> APP_ETOOBIG
 *   InputTooLarge   -> APP_ETOOBIG     InternalError    -> APP_EINTERNAL
 */
#ifndef APPLIANCE_NSM_H
#define APPLIANCE_NSM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NSM_DEVICE_PATH "/dev/nsm"
#define NSM_REQUEST_MAX 4096   /* NSM_REQUEST_MAX_SIZE */
#define NSM_RESPONSE_MAX 12288 /* NSM_RESPONSE_MAX_SIZE */
#define NSM_FRAME_HEADER 4     /* unix transport: big-endian u32 length */
#define NSM_PCR_COUNT 32       /* max_pcrs of real hardware */
#define NSM_PCR_LEN 48         /* SHA-384 PCR bank */
#define NSM_PCR_LEN_MAX 64     /* SHA-512 banks, accepted by the decoder */
#define NSM_FIELD_MAX 1024     /* Attestation: user_data, nonce, public_key each */
#define NSM_MODULE_ID_MAX 256  /* DescribeNSM module_id */
#define NSM_IO_TIMEOUT_MS 30000 /* unix transport: per-message send/receive timeout */

enum nsm_request_type {
	NSM_REQ_NONE = 0, /* in a response: the Error response */
	NSM_REQ_DESCRIBE_PCR,
	NSM_REQ_EXTEND_PCR,
	NSM_REQ_LOCK_PCR,
	NSM_REQ_LOCK_PCRS,
	NSM_REQ_DESCRIBE_NSM,
	NSM_REQ_ATTESTATION,
	NSM_REQ_GET_RANDOM,
};

/* ErrorCode, in the C enum order of nsm-api. */
enum nsm_status {
	NSM_SUCCESS = 0,
	NSM_INVALID_ARGUMENT = 1,
	NSM_INVALID_INDEX = 2,
	NSM_INVALID_RESPONSE = 3,
	NSM_READ_ONLY_INDEX = 4,
	NSM_INVALID_OPERATION = 5,
	NSM_BUFFER_TOO_SMALL = 6,
	NSM_INPUT_TOO_LARGE = 7,
	NSM_INTERNAL_ERROR = 8,
};

enum nsm_digest { NSM_DIGEST_SHA256 = 1, NSM_DIGEST_SHA384, NSM_DIGEST_SHA512 };

/*
 * A request. Pointers are borrowed (encode) or point into the request's own
 * storage (decode; release with nsm_request_clear). For Attestation a NULL
 * pointer is CBOR null (absent); a non-NULL pointer with length 0 is an
 * empty bstr.
 */
struct nsm_request {
	enum nsm_request_type type;
	uint16_t index; /* DescribePCR, ExtendPCR, LockPCR */
	uint16_t range; /* LockPCRs: locks [0, range) */
	const uint8_t *data; /* ExtendPCR */
	size_t data_len;
	const uint8_t *user_data; /* Attestation */
	size_t user_data_len;
	const uint8_t *nonce;
	size_t nonce_len;
	const uint8_t *public_key;
	size_t public_key_len;
	void *priv_; /* decoder-owned storage */
};

/* A decoded (or to-be-encoded) response. */
struct nsm_response {
	enum nsm_request_type type; /* NSM_REQ_NONE for {"Error": ...} */
	enum nsm_status status;     /* NSM_SUCCESS unless type == NSM_REQ_NONE */
	/* DescribePCR (lock, pcr), ExtendPCR (pcr) */
	int lock;
	uint8_t pcr[NSM_PCR_LEN_MAX];
	size_t pcr_len; /* 32, 48 or 64 */
	/* DescribeNSM */
	uint16_t version_major, version_minor, version_patch;
	char module_id[NSM_MODULE_ID_MAX + 1];
	uint16_t max_pcrs;      /* 1..NSM_PCR_COUNT */
	uint32_t locked_pcrs;   /* bit i set when PCR i is locked (i < max_pcrs) */
	enum nsm_digest digest;
	/* Attestation (document) and GetRandom (random): owned, freed by nsm_response_clear */
	uint8_t *document;
	size_t document_len;
	uint8_t *random;
	size_t random_len;
};

/* nsm_status_name: "InvalidArgument", ...; "Unknown" for other values. */
const char *nsm_status_name(enum nsm_status st);

/* nsm_status_to_err: the APP_E* code of an NSM error (table above); 0 for NSM_SUCCESS. */
int nsm_status_to_err(enum nsm_status st);

/* nsm_request_name: "DescribePCR", ... for a request type; "Error" for NSM_REQ_NONE. */
const char *nsm_request_name(enum nsm_request_type t);

/*
 * nsm_request_encode: the CBOR of req into out[0..cap), *len set.
 * Returns 0; APP_EINVAL (unknown type, NULL data with a length);
 * APP_ETOOBIG (an Attestation field over NSM_FIELD_MAX, or the encoding
 * over cap or NSM_REQUEST_MAX: the Rust library's InputTooLarge);
 * APP_ENOMEM.
 */
int nsm_request_encode(uint8_t *out, size_t cap, size_t *len, const struct nsm_request *req) APP_WUR;

/*
 * nsm_request_decode: parses a request (the emulator's side). On success
 * *out owns copies of its byte fields (nsm_request_clear). Returns 0;
 * APP_ETOOBIG (len > NSM_REQUEST_MAX); APP_EPARSE (malformed CBOR or an
 * unknown field, a mistyped field or a missing one: the NSM answers
 * InvalidArgument); APP_EUNSUPPORTED (well-formed but not one of the seven
 * requests: InvalidOperation); APP_ENOMEM.
 */
int nsm_request_decode(struct nsm_request *out, const uint8_t *buf, size_t len) APP_WUR;

/* nsm_request_clear: frees decoder storage and zeroes *req; NULL is a no-op. */
void nsm_request_clear(struct nsm_request *req);

/*
 * nsm_response_encode: the CBOR of resp into out[0..cap) (the emulator's
 * side). Returns 0; APP_EINVAL (inconsistent fields); APP_ETOOBIG (over cap
 * or NSM_RESPONSE_MAX); APP_ENOMEM.
 */
int nsm_response_encode(uint8_t *out, size_t cap, size_t *len, const struct nsm_response *resp) APP_WUR;

/*
 * nsm_response_decode: parses a response from the device or the emulator
 * (untrusted bytes in the sense that they are checked, not believed).
 * Strict: one item, no trailing bytes, depth <= 4, every field present once
 * with its type, PCR values 32/48/64 bytes, locked_pcrs ascending and below
 * max_pcrs <= 32, module_id printable ASCII <= NSM_MODULE_ID_MAX, document
 * 1..NSM_RESPONSE_MAX bytes, random 1..NSM_RESPONSE_MAX bytes, error codes
 * from the list. On success *out owns document/random (nsm_response_clear).
 * Returns 0; APP_ETOOBIG (len > NSM_RESPONSE_MAX); APP_EPARSE; APP_ENOMEM.
 */
int nsm_response_decode(struct nsm_response *out, const uint8_t *buf, size_t len) APP_WUR;

/* nsm_response_clear: frees document/random and zeroes *resp; NULL is a no-op. */
void nsm_response_clear(struct nsm_response *resp);

/* A connection to an NSM (opaque; not shared between threads without its own lock: it has one). */
struct nsm;

/*
 * nsm_transport_fn: a custom transport (tests, fuzzing, in-process
 * emulation): sends req[0..req_len) and writes the response into
 * resp[0..*resp_len) (*resp_len holds the capacity, NSM_RESPONSE_MAX, on
 * entry and the length on return). Returns 0 or an APP_E* code.
 */
typedef int (*nsm_transport_fn)(void *arg, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len);

/*
 * nsm_open_device: opens the NSM device (path NULL = /dev/nsm) O_RDWR.
 * Returns 0; APP_ENOENT (no such device: not inside a Nitro enclave);
 * APP_EIO (other open errors, e.g. EACCES: the ioctl needs CAP_SYS_ADMIN);
 * APP_ENOMEM.
 */
int nsm_open_device(struct nsm **out, const char *path) APP_WUR;

/*
 * nsm_open_unix: a connection to the emulator listening on a unix socket.
 * Connects immediately and reconnects on the next call after a transport
 * error. Returns 0; APP_EINVAL (path too long for sun_path); APP_ENOENT;
 * APP_ECONN; APP_ENOMEM.
 */
int nsm_open_unix(struct nsm **out, const char *path) APP_WUR;

/* nsm_open_custom: an NSM reached through fn(arg, ...). Returns 0 or APP_ENOMEM. */
int nsm_open_custom(struct nsm **out, nsm_transport_fn fn, void *arg) APP_WUR;

/*
 * nsm_open_spec: "dev" or "device" (/dev/nsm), "dev:PATH", or "unix:PATH".
 * Returns what the chosen nsm_open_* returns, or APP_EINVAL for another form.
 */
int nsm_open_spec(struct nsm **out, const char *spec) APP_WUR;

/* nsm_close: closes and frees; NULL is a no-op. */
void nsm_close(struct nsm *n);

/*
 * nsm_raw: one raw exchange: req[0..req_len) CBOR out, the response into
 * resp[0..*resp_len) (capacity in, length out). Returns 0; APP_ETOOBIG
 * (req_len > NSM_REQUEST_MAX, or EMSGSIZE from the device: InputTooLarge);
 * APP_EPROTO (response frame longer than the capacity or NSM_RESPONSE_MAX,
 * or empty); APP_EIO / APP_ECONN / APP_ETIMEOUT (transport);
 * APP_EINTERNAL (other ioctl failures: InternalError).
 */
int nsm_raw(struct nsm *n, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len) APP_WUR;

/*
 * nsm_call: encodes req, exchanges it, decodes the answer into *resp (clear
 * it with nsm_response_clear whatever the result). Returns 0 when the NSM
 * answered with the response of the request's type; the mapped code of an
 * {"Error": code} answer (resp->status holds the code); APP_EPROTO (an answer
 * of another type, or undecodable); the errors of nsm_request_encode and
 * nsm_raw.
 */
int nsm_call(struct nsm *n, struct nsm_response *resp, const struct nsm_request *req) APP_WUR;

/* Convenience wrappers around nsm_call (same returns). PCR values are NSM_PCR_LEN bytes. */

/* nsm_describe_pcr: *locked and pcr[] of PCR index. APP_EPROTO if the bank is not SHA-384. */
int nsm_describe_pcr(struct nsm *n, uint16_t index, int *locked, uint8_t pcr[NSM_PCR_LEN]) APP_WUR;

/* nsm_extend_pcr: PCR[index] = SHA384(PCR[index] || data); the new value into pcr (may be NULL). */
int nsm_extend_pcr(struct nsm *n, uint16_t index, const uint8_t *data, size_t len, uint8_t pcr[NSM_PCR_LEN]) APP_WUR;

/* nsm_lock_pcr: makes PCR index read-only. */
int nsm_lock_pcr(struct nsm *n, uint16_t index) APP_WUR;

/* nsm_lock_pcrs: makes PCRs [0, range) read-only. */
int nsm_lock_pcrs(struct nsm *n, uint16_t range) APP_WUR;

/* nsm_describe: the DescribeNSM answer into *out (its document/random stay NULL). */
int nsm_describe(struct nsm *n, struct nsm_response *out) APP_WUR;

/*
 * nsm_attestation: an attestation document (COSE_Sign1 bytes, *doc, *len;
 * free with free()) embedding the given fields; NULL = absent (null), each
 * <= NSM_FIELD_MAX bytes (APP_ETOOBIG before anything is sent).
 */
int nsm_attestation(struct nsm *n, uint8_t **doc, size_t *len, const uint8_t *user_data, size_t user_data_len,
		    const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key, size_t public_key_len) APP_WUR;

/* nsm_get_random: fills buf[0..len) from GetRandom answers (as many calls as needed). */
int nsm_get_random(struct nsm *n, uint8_t *buf, size_t len) APP_WUR;

/*
 * nsm_frame_read / nsm_frame_write: the unix transport's framing on a
 * blocking stream socket, shared with the emulator. read: one frame of
 * 1..max bytes into buf (*len set). Returns 0; APP_ECONN (peer closed
 * before a header: *len = 0, a clean end between frames; or mid-frame);
 * APP_ETOOBIG (declared length over max: the body is left unread, the
 * caller must drop the connection); APP_EPROTO (declared length 0);
 * APP_ETIMEOUT; APP_EIO. write: Returns 0, APP_EINVAL (len 0 or > 2^32-1),
 * APP_ECONN, APP_ETIMEOUT, APP_EIO.
 */
int nsm_frame_read(int fd, uint8_t *buf, size_t max, size_t *len) APP_WUR;
int nsm_frame_write(int fd, const uint8_t *buf, size_t len) APP_WUR;

#endif
