/*
 * job.h: job requests (kind 5720) and the job state machine (DESIGN §5.2,
 * §5.3; PROTOCOL.md "Job protocol (kinds 5720/6720/7000)").
 *
 * The parser is a pure function from a verified 5720 event (signature and id
 * were checked by the relay pool) to a job specification, or to an error text
 * that names the offending tag or parameter; that text is what the client
 * receives in its `error` feedback. Nothing is silently defaulted or clamped.
 *
 * Request shapes (NIP-90):
 *   public   ["i", URL, "url"]... ["param", name, value]... ["bid", msat]
 *            ["output", "application/json"] ["relays", ...] ["p", instance]
 *   private  only ["p", instance] and ["encrypted"] in clear (["bid"] may
 *            also be clear); content = NIP-44 v2 (client -> instance) of a
 *            JSON array of the i / param / bid / output / relays tags.
 *
 * Dataset keys (`dataset_key`) are secrets: they live in a struct job_keys
 * (sodium_malloc, wiped on free) and are never echoed in error texts.
 */
#ifndef ENCLAVE_JOB_H
#define ENCLAVE_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "enclave/train/train.h"

struct event;
struct keypair;

#define JOB_KIND_REQUEST 5720
#define JOB_KIND_RESULT 6720
#define JOB_KIND_FEEDBACK 7000

/* Hard caps (checked before allocating). */
#define JOB_MAX_DATASETS 64        /* i tags of one request (configuration may lower it) */
#define JOB_URL_MAX 2048           /* bytes of one dataset URL */
#define JOB_MAX_TAGS 256           /* tags of a request, clear and encrypted together */
#define JOB_MAX_PARAMS 64          /* param tags */
#define JOB_MAX_FIELDS 2048        /* strings of all tags of the encrypted content */
#define JOB_CONTENT_MAX 87472      /* bytes of a request's content (NIP-44 payload of 65535 bytes) */
#define JOB_LABEL_MAX 256          /* bytes of label_column */
#define JOB_ERR_MAX 768            /* bytes of an error text, NUL included */

/* One dataset of a request, in `i` order. */
struct job_dataset {
	char *url;          /* as given: https://..., http://... or walrus:BLOBID */
	int has_sha256;     /* a sha256 pin was given for it */
	uint8_t sha256[32]; /* of the bytes as fetched (before opening a sealed blob) */
};

struct job_keys; /* opaque: dataset keys, sodium_malloc */

/* A validated request. Free with job_spec_free. */
struct job_spec {
	uint8_t id[32];      /* the request event id (= job id) */
	uint8_t client[32];  /* the request's pubkey */
	uint64_t created_at; /* of the request event */
	int encrypted;       /* the private form: replies are encrypted to the client */
	size_t ndatasets;    /* 1..JOB_MAX_DATASETS */
	struct job_dataset *ds;
	struct train_params params;
	char label_column[JOB_LABEL_MAX + 1]; /* "" = last column */
	int has_bid;
	uint64_t bid_msat;
	struct job_keys *keys; /* NULL when no dataset_key was given */
};

/* What the instance accepts (from its configuration). */
struct job_policy {
	size_t max_datasets;  /* 1..JOB_MAX_DATASETS */
	uint32_t max_threads; /* highest `threads` parameter accepted, 1..TRAIN_THREADS_MAX */
	int open;             /* accept requests that carry no p tag */
	/*
	 * url_check: 0 when url may be fetched (scheme, host allowlist, form);
	 * else an APP_E* code with a reason in why[0..whycap) (no secrets).
	 * NULL: every URL of at most JOB_URL_MAX bytes is accepted.
	 */
	int (*url_check)(void *arg, const char *url, char *why, size_t whycap);
	void *url_arg;
};

/*
 * job_request_parse: validates the 5720 event ev addressed to the instance
 * whose key is `service` (for the private form's NIP-44 content) and builds
 * *out. The event's id and signature must already have been verified.
 * Returns 0 with *out (job_spec_free); APP_ENOTFOUND when the request is not
 * for this instance (p tags that do not name it, or no p tag while the
 * policy is not open): no feedback is due; otherwise an error for the
 * client with err (NUL-terminated, at most errcap bytes, naming the tag or
 * parameter; PROTOCOL.md lists the texts): APP_EINVAL (wrong kind, malformed
 * tag, unknown or repeated parameter, bad combination), APP_ERANGE (a value
 * outside its range), APP_ETOOBIG (over a cap), APP_EPARSE (encrypted
 * content is not a JSON array of string arrays), APP_EBADMAC/APP_EVERSION
 * (content does not decrypt), APP_EREFUSED (URL refused by url_check),
 * APP_ENOMEM.
 */
int job_request_parse(struct job_spec **out, char *err, size_t errcap, const struct event *ev,
		      const struct keypair *service, const struct job_policy *pol) APP_WUR;

/*
 * job_tags_parse: the tag layer of job_request_parse, without the event and
 * the encryption: tags[0..ntags) are the request's i / param / bid / output
 * / relays / p / t tags (each tags[k] is an array of nfields[k] NUL-terminated
 * strings). id, client, created_at and encrypted are left zero. Same
 * returns (APP_ENOTFOUND is not used). Exposed for tests and fuzzing.
 */
int job_tags_parse(struct job_spec **out, char *err, size_t errcap, const char *const *const *tags,
		   const size_t *nfields, size_t ntags, const struct job_policy *pol) APP_WUR;

/* job_spec_free: wipes the keys and frees; NULL is a no-op. */
void job_spec_free(struct job_spec *s);

/*
 * job_keys_get: the dataset key of dataset `index` (0-based) into key (one
 * key given for all datasets, or one per dataset). Returns 0, or
 * APP_ENOTFOUND when none was given. The caller wipes key.
 */
int job_keys_get(const struct job_spec *s, size_t index, uint8_t key[32]) APP_WUR;

/*
 * Job states (DESIGN §5.3): received -> quoted -> invoiced -> paid ->
 * fetching -> training -> publishing -> done, or failed from any state but
 * done. quoted -> paid directly when prepaid credit covers the price.
 */
enum job_state {
	JOB_RECEIVED = 0,
	JOB_QUOTED,
	JOB_INVOICED,
	JOB_PAID,
	JOB_FETCHING,
	JOB_TRAINING,
	JOB_PUBLISHING,
	JOB_DONE,
	JOB_FAILED,
	JOB_STATE_COUNT
};

/* job_state_name: "received", "quoted", ..., "failed"; "?" for others. */
const char *job_state_name(enum job_state s);

/* job_state_parse: the state named s[0..len). Returns 0 or APP_EPARSE. */
int job_state_parse(enum job_state *out, const char *s, size_t len) APP_WUR;

/* job_state_terminal: 1 for done and failed, else 0. */
int job_state_terminal(enum job_state s);

/*
 * job_transition_ok: 1 when the state machine allows from -> to (the arrows
 * above; failed from every non-terminal state), else 0.
 */
int job_transition_ok(enum job_state from, enum job_state to);

#endif
