/*
 * relaymsg.h: NIP-01 / NIP-42 / NIP-45 websocket messages between a client
 * and a relay (reference nostr-protocol.md §1.4, §2.2).
 *
 * Relay -> client (parsed here, strictly, allocation-free except for the
 * embedded event and text fields):
 *   ["EVENT", subid, event]          ["OK", id, true|false, message]
 *   ["EOSE", subid]                  ["CLOSED", subid, message]
 *   ["NOTICE", message]              ["AUTH", challenge]
 *   ["COUNT", subid, {"count": N, "approximate"?: bool}]
 * Client -> relay (built here with the canonical writer, json.h):
 *   ["EVENT", event]  ["REQ", subid, filter...]  ["CLOSE", subid]
 *   ["AUTH", event]   ["COUNT", subid, filter...]
 *
 * Every refusal has a reason class (enum relaymsg_reject, for counters) and a
 * static text naming the problem. The parser checks the message size cap
 * before reading anything, scans the message once with jscan (the event with
 * event_parse_scan), requires exactly the NIP-01 arity, and classifies a
 * failure as "not JSON" only when the whole text is not valid JSON (a second
 * pass that runs only on the error path).
 */
#ifndef RELAY_CLIENT_RELAYMSG_H
#define RELAY_CLIENT_RELAYMSG_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/event.h"

struct filter;

/* Hard caps. */
#define RELAYMSG_MAX_LEN (EVENT_MAX_JSON + 4096) /* bytes of one relay message (default cap) */
#define RELAYMSG_MAX_SUBID 64        /* characters of a subscription id (NIP-01) */
#define RELAYMSG_MAX_CHALLENGE 1024  /* bytes of a NIP-42 challenge */
#define RELAYMSG_MAX_FILTERS 32      /* filters in one REQ we build */

enum relaymsg_type {
	RELAYMSG_NONE = 0,
	RELAYMSG_EVENT,
	RELAYMSG_OK,
	RELAYMSG_EOSE,
	RELAYMSG_CLOSED,
	RELAYMSG_NOTICE,
	RELAYMSG_AUTH,
	RELAYMSG_COUNT
};

/* Why a relay message was refused: one counter per class. */
enum relaymsg_reject {
	RELAYMSG_R_NONE = 0,
	RELAYMSG_R_TOOBIG,   /* over the size cap (checked before parsing) */
	RELAYMSG_R_NOTJSON,  /* not valid JSON (or not UTF-8, or a \u0000 string) */
	RELAYMSG_R_NOTARRAY, /* valid JSON but not a non-empty array */
	RELAYMSG_R_TYPE,     /* the first element is not a string */
	RELAYMSG_R_UNKNOWN,  /* a message type we do not know */
	RELAYMSG_R_ARITY,    /* wrong number of elements for the type */
	RELAYMSG_R_FIELD,    /* an element of the wrong JSON type or form */
	RELAYMSG_R_SUBID,    /* subscription id empty or over RELAYMSG_MAX_SUBID */
	RELAYMSG_R_EVENT,    /* the embedded event is malformed (event_parse reasons) */
	RELAYMSG_R_TEXT,     /* a text field over its cap (AUTH challenge) */
	RELAYMSG_R__COUNT
};

/* Machine-readable prefixes of OK/CLOSED messages (NIP-01, NIP-42). */
enum relaymsg_prefix {
	RELAYMSG_P_NONE = 0, /* empty message or no "word:" prefix */
	RELAYMSG_P_DUPLICATE,
	RELAYMSG_P_POW,
	RELAYMSG_P_BLOCKED,
	RELAYMSG_P_RATE_LIMITED,
	RELAYMSG_P_INVALID,
	RELAYMSG_P_RESTRICTED,
	RELAYMSG_P_AUTH_REQUIRED,
	RELAYMSG_P_MUTE,
	RELAYMSG_P_ERROR,
	RELAYMSG_P_UNSUPPORTED,
	RELAYMSG_P_OTHER /* a "word:" prefix not listed above */
};

/*
 * struct relaymsg: one parsed relay message. Which fields are set depends on
 * type; relaymsg_clear frees what it owns.
 */
struct relaymsg {
	enum relaymsg_type type;
	char subid[RELAYMSG_MAX_SUBID + 1]; /* EVENT, EOSE, CLOSED, COUNT (NUL-terminated) */
	size_t subid_len;
	struct event *event; /* EVENT: owned (shape checked only: call event_verify) */
	uint8_t id[32];      /* OK: the event id */
	int accepted;        /* OK: 1 = true, 0 = false */
	char *text;          /* OK/CLOSED message, NOTICE, AUTH challenge: owned, NUL-terminated, may be "" */
	size_t text_len;
	uint64_t count;      /* COUNT */
	int approximate;     /* COUNT: 1 when "approximate": true */
};

/*
 * relaymsg_parse: one relay->client message from msg[0..len) (need not be
 * NUL-terminated). Strings must be valid UTF-8 without NUL; subscription ids
 * 1..RELAYMSG_MAX_SUBID bytes; OK ids 64 lowercase hex; OK's flag a JSON
 * boolean; COUNT's count a non-negative integer; the arity exact.
 * Returns 0 with *out filled (release with relaymsg_clear), or:
 *   APP_ETOOBIG  len > max_len (max_len 0 = RELAYMSG_MAX_LEN, larger values
 *                are clamped to it), or an event or challenge over its cap;
 *   APP_EUNSUPPORTED  an unknown message type (why = RELAYMSG_R_UNKNOWN);
 *   APP_EPARSE   anything else malformed;
 *   APP_ENOMEM.
 * On failure *out is cleared, *why (may be NULL) gets the class and *reason
 * (may be NULL) a static text, valid until the next parse on this thread.
 */
int relaymsg_parse(struct relaymsg *out, enum relaymsg_reject *why, const char **reason, const char *msg,
		   size_t len, size_t max_len) APP_WUR;

/* relaymsg_clear: frees the event and text of m and zeroes it; NULL is a no-op. */
void relaymsg_clear(struct relaymsg *m);

/* relaymsg_type_name: "EVENT", "OK", ... or "?" (static). */
const char *relaymsg_type_name(enum relaymsg_type t);

/* relaymsg_reject_name: a short stable name ("toobig", "notjson", ...) for counters and --json. */
const char *relaymsg_reject_name(enum relaymsg_reject r);

/*
 * relaymsg_prefix_of: the machine-readable prefix of an OK or CLOSED message
 * text[0..len) (NIP-01 "prefix: human text"; NIP-42 adds auth-required and
 * restricted). A prefix is a lowercase word of letters and '-' followed by ':'.
 */
enum relaymsg_prefix relaymsg_prefix_of(const char *text, size_t len);

/* relaymsg_prefix_name: "duplicate", "rate-limited", ... ("" for NONE, "other"). */
const char *relaymsg_prefix_name(enum relaymsg_prefix p);

/*
 * relaymsg_event / relaymsg_auth: ["EVENT",<event>] (NIP-01) and
 * ["AUTH",<event>] (NIP-42) for a signed event, as a new NUL-terminated
 * string (*out, *outlen; free with free()). Returns 0 or APP_ENOMEM.
 */
int relaymsg_event(char **out, size_t *outlen, const struct event *ev) APP_WUR;
int relaymsg_auth(char **out, size_t *outlen, const struct event *ev) APP_WUR;

/*
 * relaymsg_req: ["REQ",subid,filter,...] (NIP-01) for 1..RELAYMSG_MAX_FILTERS
 * filters. When since_floor is non-zero, each filter is sent with
 * since = max(its own since, since_floor) (resubscription after a
 * reconnect); the filters themselves are not modified.
 * Returns 0, APP_EINVAL (subid not 1..RELAYMSG_MAX_SUBID bytes, no filters,
 * too many), APP_ENOMEM. *out is NUL-terminated; free with free().
 */
int relaymsg_req(char **out, size_t *outlen, const char *subid, const struct filter *const *filters,
		 size_t nfilters, uint64_t since_floor) APP_WUR;

/* relaymsg_count: ["COUNT",subid,filter,...] (NIP-45); as relaymsg_req without since_floor. */
int relaymsg_count(char **out, size_t *outlen, const char *subid, const struct filter *const *filters,
		   size_t nfilters) APP_WUR;

/* relaymsg_close: ["CLOSE",subid] (NIP-01). Returns 0, APP_EINVAL (bad subid), APP_ENOMEM. */
int relaymsg_close(char **out, size_t *outlen, const char *subid) APP_WUR;

#endif
