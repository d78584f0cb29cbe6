/*
 * reply.h: the events the instance answers a job request with (NIP-90;
 * PROTOCOL.md "Job protocol (kinds 5720/6720/7000)"): feedback (kind 7000)
 * and the result (kind 6720), signed by the service key.
 *
 * Public request: every tag in clear, content "" (feedback) or the result
 * JSON (result).
 * Private request (["encrypted"]): these stay in clear so a generic NIP-90
 * client can follow the job: ["status", STATUS] (without the human text),
 * ["amount", msat, bolt11], ["expiration", t], ["e", request], ["p", client],
 * ["encrypted"]; a result also keeps ["request", ...], ["amount"] and
 * ["tee_root"]. Encrypted with NIP-44 v2 (instance -> client): a feedback's
 * content = the JSON array of the tags that carry text:
 * [["status", STATUS, TEXT]]; a result's content = the result JSON. A
 * private result carries no i tags.
 */
#ifndef ENCLAVE_REPLY_H
#define ENCLAVE_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct event;
struct keypair;

/* Who is answered, and how. */
struct reply_to {
	uint8_t request_id[32];
	uint8_t client[32];
	int encrypted;
};

/*
 * reply_feedback: a signed 7000 event: status ("payment-required",
 * "processing", "error", "success"), text (human-readable, may be NULL),
 * amount_msat with bolt11 (both only when amount_msat > 0; bolt11 may be
 * NULL), expiration (0: none), created at `now`.
 * Returns 0 with *out (event_free); APP_EBADKEY (client key), APP_ERANGE
 * (text over NIP-44's plaintext cap), APP_ENOMEM, APP_EINTERNAL.
 */
int reply_feedback(struct event **out, const struct keypair *kp, const struct reply_to *to, const char *status,
		   const char *text, uint64_t amount_msat, const char *bolt11, uint64_t expiration,
		   uint64_t now) APP_WUR;

/*
 * reply_result: a signed 6720 event answering `request` with content
 * content[0..len) (the result JSON; encrypted for a private request),
 * ["amount", amount_msat] (when > 0) and ["tee_root", tee_root_json].
 * Returns 0 with *out; APP_ERANGE (content over 65535 bytes for a private
 * request); APP_EBADKEY; APP_ENOMEM; APP_EINTERNAL.
 */
int reply_result(struct event **out, const struct keypair *kp, const struct reply_to *to, const struct event *request,
		 const char *content, size_t len, uint64_t amount_msat, const char *tee_root_json, uint64_t now) APP_WUR;

#endif
