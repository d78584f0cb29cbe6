/*
 * mbox.h: the main thread's completion queue. The wallet thread and the
 * worker threads post messages (results of what the main thread asked them
 * to do); the main thread takes them all at once in its loop. Posting wakes
 * the main thread through a callback (the relay pool's lws_cancel_service).
 * Thread-safe.
 */
#ifndef ENCLAVE_MBOX_H
#define ENCLAVE_MBOX_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "enclave/job.h"

struct event;

enum emsg_type {
	EMSG_PROBED = 1,   /* worker: dataset sizes (sizes[], a = total bytes) or rc + why */
	EMSG_STAGE,        /* worker: the job reached `stage` (training) */
	EMSG_PROGRESS,     /* worker: a = epoch, b = epochs */
	EMSG_RUN_DONE,     /* worker: ev = the signed result, or rc + why */
	EMSG_INVOICE,      /* wallet: text = bolt11, hash = payment_hash, a = amount, b = expires_at; or rc + why */
	EMSG_PAID,         /* wallet: hash = payment_hash, a = amount received, b = settled_at */
	EMSG_EXPIRED,      /* wallet: hash = payment_hash: expired unpaid */
};

struct emsg {
	struct emsg *next;
	enum emsg_type type;
	uint8_t job[32];
	uint8_t hash[32];
	int rc;
	char why[JOB_ERR_MAX];
	uint64_t a, b;
	enum job_state stage;
	char *text;          /* owned */
	struct event *ev;    /* owned */
	uint64_t *sizes;     /* owned */
	size_t nsizes;
};

struct mbox;

/* mbox_new: an empty queue; wake(arg) runs after every post (any thread). Returns 0 or APP_ENOMEM. */
int mbox_new(struct mbox **out, void (*wake)(void *arg), void *arg) APP_WUR;

/* mbox_set_wake: replaces the wake callback (before other threads post). */
void mbox_set_wake(struct mbox *m, void (*wake)(void *arg), void *arg);

/* mbox_free: frees the queue and every message left in it; NULL is a no-op. */
void mbox_free(struct mbox *m);

/* emsg_new: a zeroed message of type t for job (may be NULL), or NULL on ENOMEM. */
struct emsg *emsg_new(enum emsg_type t, const uint8_t job[32]);

/* emsg_free: frees a message and what it owns; NULL is a no-op. */
void emsg_free(struct emsg *m);

/* mbox_post: appends msg (ownership passes) and wakes the main thread. */
void mbox_post(struct mbox *m, struct emsg *msg);

/* mbox_take: every queued message, oldest first, as a list (NULL when empty). */
struct emsg *mbox_take(struct mbox *m);

#endif
