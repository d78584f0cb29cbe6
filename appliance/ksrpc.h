/*
 * ksrpc.h: the keystore RPC wire format (DESIGN §7; PROTOCOL.md "Keystore
 * RPC (kind 29525)"), shared by the keystore (keystore/), its client
 * (enclave/runtime/ksclient.h) and the `appliance keystore` command.
 *
 * Transport: a kind-29525 event whose content is the NIP-44 v2 encryption
 * of a JSON request, addressed to the keystore with ["p", keystore]; the
 * answer is a kind-29525 event by the keystore with ["e", request id] and
 * ["p", client], content = NIP-44 of the JSON reply, encrypted to the
 * request's pubkey (the key the attestation names).
 *
 *   request  {"id": ID, "method": M, "params": {...}}
 *   reply    {"id": ID, "result": VALUE}            success
 *            {"id": ID, "error": TEXT, "code": NAME} failure; NAME is the
 *            app_errname of the APP_E* code ("ENOTFOUND", "EREFUSED", ...).
 *            A definitive "no entry for these PCRs" is exactly
 *            error "Not found" with code "ENOTFOUND" (keycrux's text);
 *            nothing else uses that code.
 *
 * Methods and params (every key optional unless marked; unknown keys,
 * duplicate keys, wrong types and out-of-range values are refused):
 *   ping                                       -> "pong"
 *   status                                     -> {name, version, started_at, entries, ...}
 *   has    {attestation} | {pcrs:{PCR0,PCR1,PCR2[,PCR4]}} | {PCR4}
 *                                              -> {found, epoch} | {count, countDebug}
 *   set    {attestation*, data*, epoch, policy, input, revocations}
 *                                              -> "ok"
 *   get    {attestation*, release_signatures, input, revocations}
 *                                              -> {data, epoch, match, version}
 *   revoke {revocations*}                      -> {accepted, total}
 * where attestation is the base64 attestation document (public_key = the
 * request's pubkey), data a string of 1..KSRPC_DATA_MAX bytes, epoch an
 * integer 0..2^53, policy {repo|ref, release_pubkeys:[hex], threshold,
 * version, t:"prod"|"dev", bind_host:bool}, input keycrux's {ref,
 * release_signatures}, release_signatures and revocations arrays of event
 * objects (kind 63794 release signatures; kind 63798 revocations).
 *
 * Secrets: `data` is the stored secret. The parser copies it into a
 * request held in sodium_malloc memory and wipes the JSON tree's copy;
 * callers wipe the plaintext they passed in.
 */
#ifndef APPLIANCE_KSRPC_H
#define APPLIANCE_KSRPC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "nec.h"

struct event;

#define KSRPC_KIND 29525            /* requests and replies (ephemeral) */
#define KSRPC_KIND_REVOCATION 63798 /* a maintainer's revocation of a release (PROTOCOL.md) */
#define KSRPC_PLAIN_MAX 65535       /* bytes of a request or reply JSON (the NIP-44 cap) */
#define KSRPC_ID_MAX 64             /* bytes of a request id (printable ASCII) */
#define KSRPC_DATA_MAX 1024         /* bytes of stored data */
#define KSRPC_SIGS_MAX 16           /* release signatures in one request */
#define KSRPC_REVOCATIONS_MAX 16    /* revocations in one request */
#define KSRPC_MAINTAINERS_MAX 16    /* release_pubkeys of a policy */
#define KSRPC_ATTEST_B64_MAX 21848  /* base64 characters of an ATTEST_DOC_MAX document */
#define KSRPC_REASON_MAX 200        /* bytes of an error text */
#define KSRPC_DEPTH 8               /* JSON nesting */
#define KSRPC_REVOKE_REASON_MAX 256 /* bytes of a revocation's content */

#define KSRPC_NOT_FOUND "Not found"

enum ksrpc_method {
	KSRPC_PING = 1,
	KSRPC_STATUS,
	KSRPC_HAS,
	KSRPC_SET,
	KSRPC_GET,
	KSRPC_REVOKE,
};

/* ksrpc_method_name: "ping", "status", ...; "?" for other values. */
const char *ksrpc_method_name(enum ksrpc_method m);

enum ksrpc_t { KSRPC_T_DEFAULT = -1, KSRPC_T_PROD = 0, KSRPC_T_DEV = 1 };

/* An upgrade policy (set). */
struct ksrpc_policy {
	int present;
	char repo[NEC_REPO_MAX + 1];       /* "" = none */
	uint8_t maintainers[KSRPC_MAINTAINERS_MAX][32];
	size_t nmaintainers;               /* 0: no upgrades, exact PCRs only */
	size_t threshold;                  /* 1..nmaintainers (parse: default nmaintainers) */
	char version[NEC_VERSION_MAX + 1]; /* the setter's version; "" = none */
	enum ksrpc_t t;                    /* the entry's release type */
	int bind_host;                     /* key the entry by PCR4 too */
};

/* A request, parsed or to be built. Allocate with ksrpc_request_new (guarded memory). */
struct ksrpc_request {
	char id[KSRPC_ID_MAX + 1];
	enum ksrpc_method method;
	uint8_t *attestation; /* document bytes (decoded from base64), NULL = absent */
	size_t attestation_len;
	uint8_t data[KSRPC_DATA_MAX]; /* set */
	size_t data_len;
	uint64_t epoch;               /* set */
	struct ksrpc_policy policy;   /* set */
	char input_ref[NEC_REPO_MAX + 1]; /* keycrux input.ref ("" = none) */
	struct event *sigs[KSRPC_SIGS_MAX]; /* get: release signatures (owned) */
	size_t nsigs;
	struct event *revocations[KSRPC_REVOCATIONS_MAX]; /* owned */
	size_t nrevocations;
	int has_pcrs;                 /* has {pcrs} */
	uint8_t pcrs[3][48];
	int has_pcr4;                 /* has {pcrs:{PCR4}} or {PCR4} */
	uint8_t pcr4[48];
};

/*
 * ksrpc_request_new: a zeroed request in sodium_malloc memory.
 * Returns 0 or APP_ENOMEM.
 */
int ksrpc_request_new(struct ksrpc_request **out) APP_WUR;

/* ksrpc_request_free: frees the attestation and events, wipes and frees; NULL is a no-op. */
void ksrpc_request_free(struct ksrpc_request *req);

/*
 * ksrpc_request_parse: a request from untrusted JSON json[0..len).
 * Returns 0 with *out (ksrpc_request_free); APP_ETOOBIG (len over
 * KSRPC_PLAIN_MAX, a field over its cap); APP_EPARSE (not JSON, not an
 * object, missing id/method, unknown or duplicate key, wrong type, bad hex
 * or base64, an embedded event that is not an event); APP_ERANGE (a number
 * or count out of range); APP_EUNSUPPORTED (unknown method); APP_ENOMEM.
 * *reason (may be NULL) gets a static text naming the field. When the id
 * could be read it is copied into id_out (may be NULL; KSRPC_ID_MAX + 1
 * bytes) even on failure, so the error can be answered.
 */
int ksrpc_request_parse(struct ksrpc_request **out, const char **reason, char *id_out, const char *json,
			size_t len) APP_WUR;

/*
 * ksrpc_request_build: the JSON text of req (*out NUL-terminated, free
 * with ksrpc_text_free: it may hold data). Writes only the params the
 * method uses; events are embedded as objects. Returns 0; APP_EINVAL (no
 * id, missing required params, bad policy); APP_ETOOBIG (over
 * KSRPC_PLAIN_MAX); APP_ENOMEM.
 */
int ksrpc_request_build(char **out, size_t *len, const struct ksrpc_request *req) APP_WUR;

/* ksrpc_text_free: wipes text[0..len) and frees it; NULL is a no-op. */
void ksrpc_text_free(char *text, size_t len);

/*
 * ksrpc_reply_ok: {"id":ID,"result":RESULT} where result_json is a JSON
 * value (copied verbatim). ksrpc_reply_error: {"id":ID,"error":TEXT,
 * "code":app_errname(err)}. *out is freed with ksrpc_text_free.
 * Returns 0, APP_EINVAL, APP_ETOOBIG, APP_ENOMEM.
 */
int ksrpc_reply_ok(char **out, size_t *len, const char *id, const char *result_json, size_t result_len) APP_WUR;
int ksrpc_reply_error(char **out, size_t *len, const char *id, int err, const char *text) APP_WUR;

/* A parsed reply. Allocate with ksrpc_reply_parse (guarded memory). */
struct ksrpc_reply {
	char id[KSRPC_ID_MAX + 1];
	int err;                          /* 0 or the APP_E* code of "code" */
	char error[KSRPC_REASON_MAX + 1]; /* sanitized (printable ASCII), "" on success */
	char *result;                     /* the result as compact JSON text (free with the reply) */
	size_t result_len;
	/* get: */
	int has_data;
	uint8_t data[KSRPC_DATA_MAX];
	size_t data_len;
	uint64_t epoch;
	/* has: */
	int found;
};

/*
 * ksrpc_reply_parse: a reply to a request of `method` from untrusted JSON.
 * A reply whose error carries no code is mapped as keycrux does: "Not
 * found" -> APP_ENOTFOUND, anything else -> APP_EREFUSED; an unknown code
 * -> APP_EPROTO. For get, a result without a data string, and for has, a
 * result without found/count, is APP_EPARSE.
 * Returns 0 with *out (ksrpc_reply_free); APP_ETOOBIG; APP_EPARSE;
 * APP_ENOMEM.
 */
int ksrpc_reply_parse(struct ksrpc_reply **out, const char **reason, enum ksrpc_method method, const char *json,
		      size_t len) APP_WUR;

/* ksrpc_reply_free: wipes and frees; NULL is a no-op. */
void ksrpc_reply_free(struct ksrpc_reply *rep);

/* ksrpc_err_from_name: the APP_E* code named `name` ("ENOTFOUND"), or 0 if none is. */
int ksrpc_err_from_name(const char *name);

/*
 * A release revocation (kind KSRPC_KIND_REVOCATION, signed by a
 * maintainer): content = a reason (0..KSRPC_REVOKE_REASON_MAX bytes);
 * tags ["r", repo], ["x", hex, "PCR0"], ["x", hex, "PCR1"], ["x", hex,
 * "PCR2"] (exactly once each), optionally ["v", version] (informative).
 * It revokes the build with these PCRs for every policy that lists its
 * signer among release_pubkeys with the same repo.
 */
struct ksrpc_revocation {
	uint8_t pubkey[32];
	char repo[NEC_REPO_MAX + 1];
	uint8_t pcr[3][48];
	uint64_t created_at;
};

/*
 * ksrpc_revocation_verify: checks a revocation event (kind; id and
 * signature; one r of 1..NEC_REPO_MAX printable bytes; x tags for exactly
 * PCR0..2, 96 lowercase hex each; content size) and extracts it.
 * Returns 0; APP_EINVAL (wrong kind); APP_EBADID, APP_EBADSIG, APP_EBADKEY;
 * APP_EPARSE; APP_ETOOBIG; APP_ENOMEM. *reason (may be NULL) is static text.
 */
int ksrpc_revocation_verify(struct ksrpc_revocation *out, const char **reason, const struct event *ev) APP_WUR;

/*
 * ksrpc_revocation_create: a signed revocation of rel's PCRs in rel's repo
 * (rel->version, when not empty, becomes a v tag) with content `reason`
 * (NULL = ""). Returns 0 with *out (event_free); APP_EINVAL; APP_ETOOBIG;
 * APP_ENOMEM; APP_EINTERNAL.
 */
struct keypair;
int ksrpc_revocation_create(struct event **out, const struct keypair *kp, const struct nec_release *rel,
			    const char *reason, uint64_t created_at) APP_WUR;

#endif
