/*
 * runner.h: what worker threads do for a job (DESIGN §5.3 steps 2, 5, 6):
 *
 *   probe  before the quote: the size of each dataset (fetch_probe, HEAD),
 *          within [limits] max_dataset_bytes in total -> EMSG_PROBED
 *   run    after payment: fetch every dataset (streaming: sha256 of the
 *          bytes as fetched, sha256 pin check, sealed datasets opened with
 *          their dataset_key, CSV parsed into one pooled dataset), train with
 *          the job's parameters (progress -> EMSG_PROGRESS at most every
 *          feedback_interval seconds; EMSG_STAGE when training starts),
 *          serialize the model, compute the metrics JSON and the result
 *          digest, get a fresh attestation with user_data = the digest, put
 *          the model inline or sealed in the blob store, and build the signed
 *          6720 result -> EMSG_RUN_DONE (ev, or rc + an error text for the
 *          client).
 *
 * The context is made by the main thread, which keeps a pointer to it and
 * may set `cancel` at any time (wall-time limit, shutdown). The worker
 * posts EMSG_PROBED / EMSG_RUN_DONE as its very last action and never
 * touches the context afterwards; the main thread frees the context when it
 * takes that message.
 */
#ifndef ENCLAVE_RUNNER_H
#define ENCLAVE_RUNNER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "enclave/job.h"

struct econfig;
struct event;
struct identity;
struct mbox;

struct run_ctx {
	atomic_int cancel;            /* set by the main thread: stop as soon as possible */
	_Atomic uint64_t started_ms;  /* set by the worker when it starts (CLOCK_MONOTONIC ms) */
	const struct econfig *cfg;    /* borrowed */
	struct identity *id;          /* borrowed */
	struct mbox *mb;              /* borrowed */
	struct job_spec *spec;        /* owned */
	struct event *request;        /* owned: the 5720 (for the result's request tag) */
	uint64_t *sizes;              /* run: per dataset, the size the quote was made for (owned) */
	uint64_t paid_msat;           /* the result's amount tag */
};

/* run_ctx_free: frees what the context owns; NULL is a no-op. */
void run_ctx_free(struct run_ctx *c);

/* runner_probe: workq item: probes the datasets of c->spec and posts EMSG_PROBED. */
void runner_probe(void *arg);

/* runner_run: workq item: runs the job of c and posts EMSG_RUN_DONE. */
void runner_run(void *arg);

/*
 * runner_drop_probe / runner_drop_run: workq drop callbacks (the queue was
 * freed before the item started): post the item's final message with
 * rc = APP_ECANCELED.
 */
void runner_drop_probe(void *arg);
void runner_drop_run(void *arg);

#endif
