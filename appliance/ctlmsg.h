/*
 * ctlmsg.h: the messages of the control service on the parent <-> enclave
 * channel (PROTOCOL.md "Parent ↔ enclave channel"). Each message is one
 * channel frame (appliance/channel.h: type u8, length u32 BE, payload);
 * integers are big-endian; names are length-prefixed (u8), never
 * NUL-terminated on the wire.
 *
 * enclave -> parent
 *   0x01 HELLO     version u8 (=1) | idlen u8 | instance id          (first frame)
 *   0x02 LOG       level u8 (0 error..3 debug) | line (1..CTLMSG_LOG_MAX)
 *   0x03 PUT       req u32 | nlen u8 | name | data (0..CTLMSG_BLOB_MAX)
 *   0x04 GET       req u32 | nlen u8 | name
 *   0x05 LIST      req u32 | alen u8 | after (0..CTLMSG_NAME_MAX: names > after)
 *   0x06 BYE       (empty) the enclave flushed its journal and is exiting
 * parent -> enclave
 *   0x81 WELCOME   version u8 (=1)
 *   0x82 RESULT    req u32 | status u8 | body
 *                  GET ok: the blob; LIST ok: more u8 (0/1) | entries
 *                  (nlen u8 | name | size u64)*; otherwise empty
 *   0x83 SHUTDOWN  grace_ms u32: flush the journal, send BYE, exit
 *
 * Names (blob names, instance ids): 1..CTLMSG_NAME_MAX (ids:
 * CTLMSG_ID_MAX) bytes of [A-Za-z0-9._-], not starting with '.'.
 * A log line: bytes 0x20..0x7e only (anything else makes the frame
 * malformed). Every decoder checks exact lengths: a field that runs past
 * the payload, trailing bytes, a bad name or an unknown type is APP_EPARSE
 * (untrusted input on both sides; fuzzed by tests/fuzz/fuzz_channel_frame.c).
 */
#ifndef APPLIANCE_CTLMSG_H
#define APPLIANCE_CTLMSG_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "err.h"

#define CTLMSG_VERSION 1
#define CTLMSG_NAME_MAX 128 /* bytes of a blob name */
#define CTLMSG_ID_MAX 64    /* bytes of an instance id */
#define CTLMSG_LOG_MAX 1024 /* bytes of one log line */
#define CTLMSG_BLOB_MAX (CHANNEL_MAX_FRAME - 256) /* bytes of one blob */
#define CTLMSG_LIST_MAX 1024 /* entries in one LIST answer */

enum ctlmsg_type {
	CTLMSG_HELLO = 0x01,
	CTLMSG_LOG = 0x02,
	CTLMSG_PUT = 0x03,
	CTLMSG_GET = 0x04,
	CTLMSG_LIST = 0x05,
	CTLMSG_BYE = 0x06,
	CTLMSG_WELCOME = 0x81,
	CTLMSG_RESULT = 0x82,
	CTLMSG_SHUTDOWN = 0x83,
};

/* RESULT status codes. */
enum ctlmsg_status {
	CTLMSG_OK = 0,
	CTLMSG_S_EXISTS = 1,    /* PUT of a name that exists (never overwritten) */
	CTLMSG_S_NOTFOUND = 2,  /* GET of an unknown name */
	CTLMSG_S_QUOTA = 3,     /* the instance's byte or count quota */
	CTLMSG_S_INVALID = 4,   /* bad name */
	CTLMSG_S_TOOBIG = 5,    /* blob over the store's limit */
	CTLMSG_S_IO = 6,        /* the parent's storage failed */
	CTLMSG_S__COUNT = 7
};

/* A decoded message: pointers into the payload it was decoded from. */
struct ctlmsg {
	uint8_t type;
	uint8_t version;            /* HELLO, WELCOME */
	const char *id;             /* HELLO */
	size_t id_len;
	uint8_t level;              /* LOG */
	const char *line;           /* LOG */
	size_t line_len;
	uint32_t req;               /* PUT, GET, LIST, RESULT */
	const char *name;           /* PUT, GET; LIST: after (may be empty) */
	size_t name_len;
	const uint8_t *data;        /* PUT: the blob; RESULT: the body */
	size_t data_len;
	uint8_t status;             /* RESULT */
	uint32_t grace_ms;          /* SHUTDOWN */
};

/* ctlmsg_type_name: "HELLO", ...; "?" for unknown types. */
const char *ctlmsg_type_name(uint8_t type);

/* ctlmsg_name_valid: 1 when s[0..len) is a valid name of at most max bytes. */
int ctlmsg_name_valid(const char *s, size_t len, size_t max);

/*
 * ctlmsg_decode: one message of `type` from payload p[0..len).
 * Returns 0 with *out; APP_EPARSE (malformed, see above); APP_EVERSION
 * (HELLO/WELCOME with another version); APP_EUNSUPPORTED (unknown type).
 */
int ctlmsg_decode(struct ctlmsg *out, uint8_t type, const uint8_t *p, size_t len) APP_WUR;

/*
 * ctlmsg_encode: the payload of m (m->type selects the fields) into a new
 * buffer (*out, free with free(); *len). Returns 0; APP_EINVAL (a field
 * invalid for the type: bad name, empty or non-printable log line, unknown
 * type); APP_ETOOBIG (over CHANNEL_MAX_FRAME or a field cap); APP_ENOMEM.
 */
int ctlmsg_encode(uint8_t **out, size_t *len, const struct ctlmsg *m) APP_WUR;

/*
 * ctlmsg_list_next: the next entry of a LIST body (after its `more` byte):
 * *p advances. Returns 0 with name/name_len (pointing into the body) and
 * *size; APP_ENOTFOUND at the end; APP_EPARSE (truncated or bad name).
 */
int ctlmsg_list_next(const uint8_t **p, const uint8_t *end, const char **name, size_t *name_len, uint64_t *size) APP_WUR;

/* ctlmsg_status_to_err: the APP_E* code of a status (0 for CTLMSG_OK; APP_EPROTO for unknown ones). */
int ctlmsg_status_to_err(uint8_t status);

/* ctlmsg_err_to_status: the status for an APP_E* code of the blob store. */
uint8_t ctlmsg_err_to_status(int err);

#endif
